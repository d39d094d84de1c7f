//! The token endpoint's form parser: the body is `mtls_gateway::fuzzing::form`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::form(data));
