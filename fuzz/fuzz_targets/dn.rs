//! RFC 4514 parsing and printing: the body is `mtls_gateway::fuzzing::dn`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::dn(data));
