//! SPEC §7: metrics, health, reload (SIGHUP, file changes, Kubernetes symlink swaps), graceful
//! shutdown, JSON logs.

use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::process::Served;
use crate::support::upstream::{Behaviour, FakeUpstream};
use crate::support::*;

#[tokio::test]
async fn requests_change_the_right_counters() {
    let h = Setup::new().start().await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    assert_eq!(h.token(Some("other"), &form(PKI_CLIENT)).await.status, 401);
    assert_eq!(h.token(None, &form(PKI_CLIENT)).await.status, 401);
    assert_eq!(h.token(Some("client"), &form("nobody")).await.status, 401);
    assert_eq!(
        h.client(None).get(&h.url("/nope")).await.unwrap().status,
        404
    );
    assert_eq!(
        h.client(None)
            .get(&h.url("/.well-known/openid-configuration"))
            .await
            .unwrap()
            .status,
        200
    );
    let (status, text) = http_get(&h.admin_url("/metrics")).await;
    assert_eq!(status, 200);
    let m = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no sample {s} in\n{text}"));
    assert_eq!(
        m("mtls_gateway_requests_total{route=\"token\",outcome=\"success\"}"),
        1.0
    );
    assert_eq!(
        m("mtls_gateway_requests_total{route=\"token\",outcome=\"invalid_client\"}"),
        3.0
    );
    assert_eq!(
        m("mtls_gateway_requests_total{route=\"other\",outcome=\"not_found\"}"),
        1.0
    );
    assert_eq!(
        m("mtls_gateway_requests_total{route=\"metadata\",outcome=\"success\"}"),
        1.0
    );
    assert_eq!(m("mtls_gateway_request_duration_seconds_count"), 6.0);
    assert_eq!(
        m(&format!(
            "mtls_gateway_client_auth_total{{client_id=\"{PKI_CLIENT}\",result=\"success\"}}"
        )),
        1.0
    );
    assert_eq!(
        m(&format!(
            "mtls_gateway_client_auth_total{{client_id=\"{PKI_CLIENT}\",result=\"mismatch\"}}"
        )),
        1.0
    );
    assert_eq!(m(&format!("mtls_gateway_client_auth_total{{client_id=\"{PKI_CLIENT}\",result=\"no_certificate\"}}")), 1.0);
    assert_eq!(
        m("mtls_gateway_client_auth_total{client_id=\"unknown\",result=\"unknown_client\"}"),
        1.0
    );
    assert_eq!(
        m("mtls_gateway_upstream_requests_total{upstream=\"dev\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        m("mtls_gateway_upstream_duration_seconds_count{upstream=\"dev\"}"),
        1.0
    );
    assert!(m("mtls_gateway_tls_handshakes_total{result=\"success\"}") >= 6.0);
    assert_eq!(m("mtls_gateway_config_last_reload_success"), 1.0);
    assert!(text.contains("mtls_gateway_open_connections"));
    assert!(text.ends_with("# EOF\n"));
    h.stop().await;
}

#[tokio::test]
async fn upstream_failures_are_counted_by_kind() {
    let upstream = FakeUpstream::start(Behaviour::Silent).await;
    let h = Setup::new()
        .upstream(&upstream.config("200ms"))
        .start()
        .await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 504);
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_requests_total{route=\"token\",outcome=\"upstream_timeout\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_upstream_requests_total{upstream=\"dev\",status=\"timeout\"}"
        ),
        Some(1.0)
    );
    h.stop().await;
}

fn not_after(pem: &str) -> f64 {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.validity().not_after.timestamp() as f64
}

#[tokio::test]
async fn expiry_gauges_equal_the_certificates_not_after() {
    let h = Setup::new().start().await;
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    let pki = pki();
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_certificate_expiry_timestamp_seconds{kind=\"credential\",name=\"dev\"}"
        ),
        Some(not_after(&pki.get("signing").cert))
    );
    assert_eq!(
        metric(&text, "mtls_gateway_certificate_expiry_timestamp_seconds{kind=\"server\",name=\"CN=localhost,O=mtls-gateway dev\"}"),
        Some(not_after(&pki.get("server").cert))
    );
    assert_eq!(
        metric(&text, "mtls_gateway_certificate_expiry_timestamp_seconds{kind=\"client_ca\",name=\"CN=Test CA Two,O=mtls-gateway dev\"}"),
        Some(not_after(&pki.get("ca2").cert))
    );
    h.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let h = Setup::new().start().await;
    assert_eq!(
        http_get(&h.admin_url("/healthz")).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        http_get(&h.admin_url("/readyz")).await,
        (200, "ready\n".into())
    );
    assert_eq!(http_get(&h.admin_url("/other")).await.0, 404);
    h.stop().await;
}

#[tokio::test]
async fn a_reload_applies_a_new_client_and_a_broken_one_keeps_the_old_config() {
    let h = Setup::new().start().await;
    let running = h.running.as_ref().unwrap();
    let new_id = "22222222-0000-0000-0000-000000000002";
    assert_eq!(h.token(Some("other"), &form(new_id)).await.status, 401);
    let added = Setup {
        clients: format!(
            "{}{}",
            h.setup.clients,
            pki_client(
                new_id,
                "tls_client_auth_subject_dn = \"CN=other-app,O=Contoso,C=US\""
            )
        ),
        ..Setup::new()
    };
    h.setup.dir.write("gateway.toml", &added.toml());
    running.reload().unwrap();
    assert_eq!(h.token(Some("other"), &form(new_id)).await.status, 200);
    // Broken: every problem reported, the running configuration kept, readiness kept.
    h.setup.dir.write(
        "gateway.toml",
        &added
            .toml()
            .replace("upstream = \"dev\"", "upstream = \"gone\""),
    );
    let err = running.reload().unwrap_err();
    // Typed: the problems of the configuration, each with its key.
    match &err {
        mtls_gateway::reload::ReloadError::Config(errors) => {
            assert!(
                errors.problems.iter().any(|p| p.key.ends_with(".upstream")
                    && p.message == "no [upstreams.gone] is defined"),
                "{err}"
            )
        }
        other => panic!("not a configuration error: {other}"),
    }
    assert_eq!(h.token(Some("other"), &form(new_id)).await.status, 200);
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_config_reloads_total{result=\"success\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_config_reloads_total{result=\"failure\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "mtls_gateway_config_last_reload_success"),
        Some(0.0)
    );
    assert_eq!(http_get(&h.admin_url("/readyz")).await.0, 200);
    h.stop().await;
}

#[tokio::test]
async fn a_changed_file_is_reloaded_without_a_signal() {
    let h = Setup::new().start().await;
    let new_id = "33333333-0000-0000-0000-000000000003";
    let added = Setup {
        clients: format!(
            "{}{}",
            h.setup.clients,
            pki_client(
                new_id,
                "tls_client_auth_subject_dn = \"CN=other-app,O=Contoso,C=US\""
            )
        ),
        ..Setup::new()
    };
    h.setup.dir.write("gateway.toml", &added.toml());
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.token(Some("other"), &form(new_id)).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "the changed config was not picked up: {}",
            logs()
                .lines()
                .filter(|l| l.contains("reload") || l.contains("changed"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.stop().await;
}

fn tls_config() -> std::sync::Arc<rustls::ClientConfig> {
    std::sync::Arc::new(client_tls(Some("client"), rustls::DEFAULT_VERSIONS))
}

async fn connect(
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(tls_config())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// One keep-alive request on an open connection; returns the status line.
async fn request_on(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    let body = form(PKI_CLIENT);
    let request = format!(
        "POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 16384];
    let n = tls.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_kubernetes_style_secret_swap_rotates_the_server_certificate() {
    let setup = Setup::new();
    let dir = &setup.dir;
    let pki = pki();
    // secret/..data -> ..v1; secret/server.pem -> ..data/server.pem (what kubelet writes)
    let secret = dir.path("secret");
    for (version, name) in [("..v1", "server"), ("..v2", "server2")] {
        std::fs::create_dir_all(secret.join(version)).unwrap();
        std::fs::write(secret.join(version).join("server.pem"), &pki.get(name).cert).unwrap();
        std::fs::write(
            secret.join(version).join("server-key.pem"),
            &pki.get(name).key,
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("..v1", secret.join("..data")).unwrap();
    for f in ["server.pem", "server-key.pem"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), secret.join(f)).unwrap();
    }
    let toml = setup.toml().replace(
        "cert = \"server.pem\"\nkey = \"server-key.pem\"",
        "cert = \"secret/server.pem\"\nkey = \"secret/server-key.pem\"",
    );
    let setup = setup.server("");
    setup.dir.write("gateway.toml", &toml);
    let config = mtls_gateway::config::load(&setup.dir.path("gateway.toml")).unwrap();
    init_logs();
    let running = mtls_gateway::listener::start(config).await.unwrap();
    let addr = running.addr;
    let leaf = |tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        tls.get_ref().1.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    };

    let mut old = connect(addr).await;
    assert_eq!(leaf(&old), pki.cert_der("server"));
    assert!(request_on(&mut old).await.starts_with("HTTP/1.1 200"));

    // The atomic swap: a new ..data symlink renamed over the old one.
    std::os::unix::fs::symlink("..v2", secret.join("..data_tmp")).unwrap();
    std::fs::rename(secret.join("..data_tmp"), secret.join("..data")).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = connect(addr).await;
        if leaf(&fresh) == pki.cert_der("server2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new connections still see the old certificate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The connection opened before the swap still works.
    assert!(request_on(&mut old).await.starts_with("HTTP/1.1 200"));
    assert_eq!(
        metric(&running.metrics.encode(), "mtls_gateway_certificate_expiry_timestamp_seconds{kind=\"server\",name=\"CN=localhost-rotated,O=mtls-gateway dev\"}"),
        Some(not_after(&pki.get("server2").cert))
    );
    running.shutdown().await;
}

#[tokio::test]
async fn reloads_under_load_drop_no_request() {
    let h = Setup::new().start().await;
    let url = h.url("/token");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = client_for(Some("client"), false);
            let mut statuses = Vec::new();
            for _ in 0..25 {
                statuses.push(
                    client
                        .post_form(&url, &form(PKI_CLIENT))
                        .await
                        .map(|a| a.status.as_u16()),
                );
            }
            statuses
        }));
    }
    let running = h.running.as_ref().unwrap();
    for _ in 0..10 {
        running.reload().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in tasks {
        for status in task.await.unwrap() {
            assert_eq!(status, Ok(200));
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_config_keeps_serving_and_counts_the_error() {
    let setup = Setup::new();
    let path = setup.write();
    let mut served = Served::start(&path);
    let addr = served.addr("mTLS listener ready");
    let admin = served.addr("admin listener ready");
    let url = format!("https://localhost:{}/token", addr.port());
    let client = client_for(Some("client"), false);
    assert_eq!(
        client
            .post_form(&url, &form(PKI_CLIENT))
            .await
            .unwrap()
            .status,
        200
    );
    setup.dir.write("gateway.toml", "[server]\nlisten = ");
    served.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = http_get(&format!("http://{admin}/metrics")).await;
        if metric(
            &text,
            "mtls_gateway_config_reloads_total{result=\"failure\"}",
        ) == Some(1.0)
        {
            assert_eq!(
                metric(&text, "mtls_gateway_config_last_reload_success"),
                Some(0.0)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed reload was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        client
            .post_form(&url, &form(PKI_CLIENT))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(http_get(&format!("http://{admin}/readyz")).await.0, 200);
    served.signal("TERM");
    assert!(served.wait_exit().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_then_exits_0_with_json_logs() {
    let upstream = FakeUpstream::start(Behaviour::Delayed(
        1500,
        200,
        r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJhbGciOiJub25lIn0.e30.c2xvdw"}"#.into(),
    ))
    .await;
    let setup = Setup::new().upstream(&upstream.config("10s"));
    let path = setup.write();
    let mut served = Served::start(&path);
    let addr = served.addr("mTLS listener ready");
    let url = format!("https://localhost:{}/token", addr.port());
    let slow = tokio::spawn(async move {
        client_for(Some("client"), false)
            .post_form(&url, &form(PKI_CLIENT))
            .await
    });
    // SIGTERM once the request is in flight: the upstream has received it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.forms().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    served.signal("TERM");
    let answer = slow.await.unwrap().unwrap();
    assert_eq!(answer.status, 200, "the in-flight request finished");
    let status = served.wait_exit();
    assert!(status.success(), "{status:?}");
    // JSON logs: one object per line, with the audit fields.
    assert!(!served.seen().is_empty());
    for line in served.seen() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.is_object());
    }
    let audit = served.event("token request");
    assert_eq!(audit["target"], "audit");
    for field in [
        "request_id",
        "client_id",
        "auth_method",
        "cert_x5t_s256",
        "cert_subject",
        "outcome",
        "status",
        "upstream_status",
        "upstream_ms",
        "duration_ms",
    ] {
        assert!(
            !audit[field].is_null(),
            "audit field {field} missing: {audit}"
        );
    }
    assert_eq!(audit["outcome"], "success");
}

#[tokio::test]
async fn sigterm_keeps_the_embedded_identity_provider_up_until_the_requests_are_served() {
    // The embedded provider is the upstream: token requests that arrive during shutdown_delay
    // (and any still in flight at the drain) reach it, because it stops only after the
    // listeners drained.
    let setup = Setup::new().limits("shutdown_delay = \"1500ms\"");
    let path = setup.write();
    let mut served = Served::start(&path);
    let addr = served.addr("mTLS listener ready");
    let url = format!("https://localhost:{}/token", addr.port());
    let client = client_for(Some("client"), false);
    assert_eq!(
        client
            .post_form(&url, &form(PKI_CLIENT))
            .await
            .unwrap()
            .status,
        200
    );
    served.signal("TERM");
    let started = Instant::now();
    let mut served_during_delay = 0;
    while started.elapsed() < Duration::from_millis(1000) {
        // A fresh connection each time, as a legacy client makes.
        let answer = client_for(Some("client"), false)
            .post_form(&url, &form(PKI_CLIENT))
            .await
            .unwrap();
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        served_during_delay += 1;
    }
    assert!(served_during_delay >= 2, "{served_during_delay}");
    assert!(served.wait_exit().success());
}

#[tokio::test]
async fn a_reload_that_moves_the_embedded_provider_warns_that_it_needs_a_restart() {
    let h = Setup::new().start().await;
    let running = h.running.as_ref().unwrap();
    let moved = h.setup.toml().replace(
        "type = \"embedded\"\nlisten = \"127.0.0.1:0\"",
        "type = \"embedded\"\nlisten = \"127.0.0.1:1\"",
    );
    assert_ne!(moved, h.setup.toml());
    h.setup.dir.write("gateway.toml", &moved);
    running.reload().unwrap();
    // The provider keeps its socket: tokens are still issued.
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    h.stop().await;
    let logs = logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"key\":\"upstreams.dev.listen\"")
                && l.contains("this setting changes only on restart")),
        "no restart-only warning for upstreams.dev.listen"
    );
}

#[tokio::test]
async fn a_reload_that_changes_the_embedded_providers_profile_is_refused() {
    let h = Setup::new().start().await;
    let running = h.running.as_ref().unwrap();
    let changed = h.setup.toml().replace(
        "type = \"embedded\"\nlisten = \"127.0.0.1:0\"",
        "type = \"embedded\"\nlisten = \"127.0.0.1:0\"\nprofile = \"okta\"",
    );
    assert_ne!(changed, h.setup.toml());
    h.setup.dir.write("gateway.toml", &changed);
    let err = running.reload().unwrap_err().to_string();
    assert!(
        err.contains("upstreams.dev.profile: the embedded identity provider's profile changes only on restart"),
        "{err}"
    );
    // The running configuration serves on.
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    h.stop().await;
}
