//! An upstream token answer as the token cache reads it: the body is `mtls_gateway::fuzzing::upstream_answer`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::upstream_answer(data));
