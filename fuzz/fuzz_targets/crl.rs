//! CRL files as server.crl reads them: the body is `mtls_gateway::fuzzing::crl`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::crl(data));
