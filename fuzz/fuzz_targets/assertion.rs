//! The embedded IdP's client-assertion checks: the body is `mtls_gateway::fuzzing::assertion`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::assertion(data));
