//! The shipped gateway.toml runs out of the box, and the client examples work against it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::TestDir;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_shipped_config_serves_and_the_curl_and_python_examples_get_tokens() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = TestDir::new();
    // The shipped file, unmodified, in a folder of its own: its dev PKI is created there.
    std::fs::copy(root.join("gateway.toml"), dir.path("gateway.toml")).unwrap();
    let _serve = Child(
        Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
            .args(["serve", "-c"])
            .arg(dir.path("gateway.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pki = dir.path("dev-pki");
    let curl = Command::new("sh")
        .arg(root.join("examples/clients/curl.sh"))
        .env("PKI", &pki)
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
        .arg(root.join("examples/clients/python_requests.py"))
        .env("PKI", &pki)
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

fn ready() -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect("127.0.0.1:9090") else {
        return false;
    };
    let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}
