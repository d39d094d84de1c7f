//! Certificate identity extraction and chain verification: the body is `mtls_gateway::fuzzing::identity`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::identity(data));
