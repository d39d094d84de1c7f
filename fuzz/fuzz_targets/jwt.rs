//! JWTs and JWKS as binding's registration mode reads them: the body is `mtls_gateway::fuzzing::jwt`, shared with `cargo test`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mtls_gateway::fuzzing::jwt(data));
