//! The admin listener's operator endpoints: `/version`, `/config` (the effective configuration,
//! secrets redacted), `mtls_gateway_build_info` and the standard `process_*` metrics.

use crate::support::*;

/// Secrets for the configuration below, as the environment would hold them.
struct Env;

const STATE_KEY: &str = "c2VhbGluZy1rZXktb2YtMzItYnl0ZXMtZm9yLXRlc3Q=";
const REDIS_PASSWORD: &str = "redis-password-from-env";
const URL_PASSWORD: &str = "password-in-the-url";

impl mtls_gateway::config::Env for Env {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "ADMIN_TEST_STATE_KEY" => Some(STATE_KEY.into()),
            "ADMIN_TEST_REDIS_PASSWORD" => Some(REDIS_PASSWORD.into()),
            _ => None,
        }
    }
}

#[tokio::test]
async fn version_and_build_info_name_this_binary() {
    let h = Setup::new().start().await;
    let (status, body) = http_get(&h.admin_url("/version")).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let rustls = v["rustls"].as_str().unwrap();
    assert!(
        lock.contains(&format!("name = \"rustls\"\nversion = \"{rustls}\"")),
        "{rustls}"
    );
    let commit = v["commit"].as_str().unwrap();
    let git = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match git {
        // Built from this checkout (build.rs reruns when a ref changes): HEAD's commit.
        Some(head) => assert!(
            commit.len() == 12 && head.starts_with(commit),
            "{commit} vs {head}"
        ),
        None => assert_eq!(commit, "unknown"),
    }
    let (_, metrics) = http_get(&h.admin_url("/metrics")).await;
    let line = format!(
        "mtls_gateway_build_info{{version=\"{}\",rustls=\"{rustls}\",commit=\"{commit}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&line), "{line}\n{metrics}");
    h.stop().await;
}

#[tokio::test]
async fn process_metrics_are_the_standard_unprefixed_families() {
    let h = Setup::new().start().await;
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    for (name, kind) in [
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}\n{text}"
        );
    }
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name}"))
    };
    // The test process is the gateway's process here: compare with what /proc says.
    let rss = value("process_resident_memory_bytes");
    assert!(rss > 1e6, "{rss}");
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_cpu_seconds_total") > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = value("process_start_time_seconds");
    assert!(
        start <= now + 1.0 && start > now - 24.0 * 3600.0,
        "{start} vs {now}"
    );
    // Still one exposition, one EOF, at the end.
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(text.ends_with("# EOF\n"));
    h.stop().await;
}

#[tokio::test]
async fn config_shows_the_effective_configuration_with_every_secret_redacted() {
    let mut setup = Setup::new();
    setup.clients.push_str(&format!(
        "\n[state]\nstore = \"redis\"\nredis_url = \"redis://default:{URL_PASSWORD}@127.0.0.1:1/0\"\nredis_password_env = \"ADMIN_TEST_REDIS_PASSWORD\"\nencryption_key_env = \"ADMIN_TEST_STATE_KEY\"\n"
    ));
    let path = setup.write();
    let config = mtls_gateway::config::load_with(&path, &Env).unwrap_or_else(|e| panic!("{e}"));
    let running = mtls_gateway::listener::start(config).await.unwrap();
    let url = format!("http://{}/config", running.admin_addr.unwrap());
    let (status, body) = http_get(&url).await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    // The effective values, defaults filled in.
    assert_eq!(doc["server"]["public_url"], "https://gateway.test");
    assert_eq!(doc["limits"]["max_body_bytes"], 65536);
    assert_eq!(doc["upstreams"]["dev"]["type"], "embedded");
    assert_eq!(doc["credentials"]["dev"]["backend"], "local");
    assert_eq!(doc["credentials"]["dev"]["alg"], "RS256");
    assert_eq!(doc["credentials"]["dev"]["x5c"], false);
    assert!(doc["credentials"]["dev"]["kid"].is_null());
    assert_eq!(
        doc["credentials"]["dev"]["cert"]["x5t#S256"],
        mtls_gateway::identity::x5t_s256(pki().cert_der("signing").as_ref())
    );
    let clients = doc["clients"].as_array().unwrap();
    let pki_client = clients
        .iter()
        .find(|c| c["client_id"] == PKI_CLIENT)
        .unwrap();
    assert_eq!(
        pki_client["tls_client_auth_subject_dn"],
        "CN=billing-legacy,O=contoso,C=us"
    );
    assert_eq!(doc["state"]["store"], "redis");
    assert_eq!(
        doc["state"]["redis_url"],
        "redis://default:REDACTED@127.0.0.1:1/0"
    );
    assert!(doc["generation"].as_u64().is_some());
    // No secret, key or key material anywhere in the document.
    let signing_key = std::fs::read_to_string(setup_file(&path, "signing-key.pem")).unwrap();
    let key_body: String = signing_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for secret in [
        URL_PASSWORD,
        REDIS_PASSWORD,
        STATE_KEY,
        "PRIVATE KEY",
        &key_body[..40],
    ] {
        assert!(!body.contains(secret), "{secret} is in /config");
    }
    running.shutdown().await;
}

fn setup_file(config: &std::path::Path, name: &str) -> std::path::PathBuf {
    config.parent().unwrap().join(name)
}

#[tokio::test]
async fn admin_endpoints_answer_get_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Setup::new().start().await;
    let addr = h.running.as_ref().unwrap().admin_addr.unwrap();
    for path in ["/metrics", "/config", "/version"] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("POST {path} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 405"), "{path}: {text}");
    }
    assert_eq!(http_get(&h.admin_url("/nothing")).await.0, 404);
    h.stop().await;
}
