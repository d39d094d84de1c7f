//! Configuration parsing and validation from arbitrary text: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

struct NoEnv;
impl mtls_gateway::config::Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = std::path::Path::new("/nonexistent/mtls-gateway-fuzz/gateway.toml");
    let _ = mtls_gateway::config::load_str(text, path, &NoEnv);
});
