//! Forwarded-certificate headers in every format: the body is `mtls_gateway::fuzzing::forwarded`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::forwarded(data));
