//! Configuration parsing and validation: the body is `mtls_gateway::fuzzing::config`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::config(data));
