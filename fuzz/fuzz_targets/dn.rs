//! RFC 4514 parsing and printing: never panics; what is printed parses back to the same DN.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtls_gateway::dn::{to_rfc4514, DistinguishedName};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The slash form's RFC 4514 spelling must mean the same DN.
    if let Ok((dn, rfc4514)) = DistinguishedName::parse_openssl_slash(text) {
        assert_eq!(DistinguishedName::parse_rfc4514(&rfc4514).as_ref().ok(), Some(&dn), "{rfc4514:?}");
    }
    if let Ok(dn) = DistinguishedName::parse_rfc4514(text) {
        let _ = dn.looks_reversed();
        let _ = dn.is_reverse_of(&dn);
    }
    // Treat the input as one attribute value: printing then parsing must round-trip.
    let value = text.replace('\0', "");
    let printed = to_rfc4514(vec![vec![("2.5.4.3", value.as_str())]]);
    let reparsed = DistinguishedName::parse_rfc4514(&printed);
    let direct = DistinguishedName::from_der_order(vec![vec![("2.5.4.3", value.as_str())]]);
    if !value.trim().is_empty() {
        assert_eq!(reparsed.as_ref().ok(), Some(&direct), "{printed:?}");
    }
});
