//! The token endpoint's form parser: never panics; what it accepts has no repeated name.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(form) = mtls_gateway::token::parse_form(data) {
        let mut names: Vec<&str> = form.pairs.iter().map(|(n, _, _)| n.as_str()).collect();
        let before = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(before, names.len(), "a repeated parameter was accepted");
        for (_, _, raw) in &form.pairs {
            assert!(!raw.is_empty() && !raw.contains(&b'&'));
        }
    }
});
