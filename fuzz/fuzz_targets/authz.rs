//! The [authz] decision inputs (Authorization and certificate headers): the body is `mtls_gateway::fuzzing::authz`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::authz(data));
