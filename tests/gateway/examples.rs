//! The shipped gateway.toml runs out of the box, and the client examples work against it.

use std::process::Command;

use crate::support::process::{tool_available, Served};
use crate::support::TestDir;

#[test]
fn the_shipped_config_serves_and_the_curl_and_python_examples_get_tokens() {
    if !tool_available("curl", "curl") || !tool_available("python3", "python3 python3-requests") {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = TestDir::new();
    // The shipped file in a folder of its own (its dev PKI is created there), changed only in
    // its ports, so that a `serve` of the shipped file beside the test suite does not clash.
    let shipped = std::fs::read_to_string(root.join("gateway.toml")).unwrap();
    let mut rewritten = shipped.clone();
    for port in ["8443", "9090", "9443"] {
        let from = format!("listen = \"127.0.0.1:{port}\"");
        assert!(
            rewritten.contains(&from),
            "gateway.toml no longer has {from}"
        );
        rewritten = rewritten.replace(&from, "listen = \"127.0.0.1:0\"");
    }
    std::fs::write(dir.path("gateway.toml"), rewritten).unwrap();
    let mut serve = Served::start(&dir.path("gateway.toml"));
    let addr = serve.addr("mTLS listener ready");
    let gateway_url = format!("https://localhost:{}", addr.port());
    // The examples copied to where they sit in a checkout (examples/clients beside the dev
    // PKI's folder) and run from their own folder without PKI: they find it on their own.
    let clients = dir.path("examples/clients");
    std::fs::create_dir_all(&clients).unwrap();
    for f in ["curl.sh", "python_requests.py"] {
        std::fs::copy(root.join("examples/clients").join(f), clients.join(f)).unwrap();
    }
    let curl = Command::new("sh")
        .arg("curl.sh")
        .current_dir(&clients)
        .env_remove("PKI")
        .env("GATEWAY_URL", &gateway_url)
        .output()
        .expect("sh and curl are installed by .ci/run");
    let out = String::from_utf8_lossy(&curl.stdout);
    assert!(
        curl.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let body: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let python = Command::new("python3")
        .arg("python_requests.py")
        .current_dir(&clients)
        .env_remove("PKI")
        .env("GATEWAY_URL", &gateway_url)
        .output()
        .expect("python3 with requests is installed by .ci/run");
    let out = String::from_utf8_lossy(&python.stdout);
    assert!(
        python.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&python.stderr)
    );
    assert!(out.contains("got a Bearer token"), "{out}");
}
