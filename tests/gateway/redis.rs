//! Several replicas sharing `[state]` on a real `redis-server` (SPEC §11): two gateway
//! processes, one scripted upstream counting the requests that reach it.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::binding::plain_request;
use crate::front_proxy::header_for;
use crate::support::process::{free_port, start_redis, start_redis_with, Served, Supervised};
use crate::support::upstream::{ok_answer, Behaviour, FakeUpstream};
use crate::support::*;

const KEY_ENV: &str = "MTLS_GATEWAY_STATE_KEY";

fn state_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

/// A replica: the gateway binary on `config`, with the state key in its environment.
struct Replica {
    served: Served,
    addr: SocketAddr,
    admin: SocketAddr,
    authz: Option<SocketAddr>,
}

impl Replica {
    fn start(config: &std::path::Path, authz: bool) -> Self {
        let mut served = Served::command(
            Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
                .env(KEY_ENV, state_key())
                .args(["--log-format", "json", "serve", "-c"])
                .arg(config),
        );
        let admin = served.addr("admin listener ready");
        let authz = authz.then(|| served.addr("authz decision listener ready"));
        let addr = served.addr("mTLS listener ready");
        Self {
            served,
            addr,
            admin,
            authz,
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/token", self.addr.port())
    }

    async fn token(&self, cert: &str, form: &str) -> mtls_gateway::client::Answer {
        client_for(Some(cert), false)
            .post_form(&self.url(), form)
            .await
            .unwrap()
    }

    async fn metrics(&self) -> String {
        http_get(&format!("http://{}/metrics", self.admin)).await.1
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.served.signal("TERM");
        let _ = self.served.wait_exit();
    }
}

/// A setup whose upstream is `upstream`, registrations `clients`, and a Redis of its own
/// (stopped with the returned handle); `extra` sections are appended with `[state]`.
fn shared_setup(
    upstream: &FakeUpstream,
    clients: &str,
    extra: &str,
) -> Option<(Setup, Supervised, u16)> {
    let setup = Setup::new()
        .upstream(&upstream.config("5s"))
        .only_clients(clients);
    let data = setup.dir.0.join("redis");
    std::fs::create_dir_all(&data).unwrap();
    let (redis, port) = start_redis(&data, None)?;
    let setup = setup.client(&state_block(port, extra));
    Some((setup, redis, port))
}

fn state_block(port: u16, extra: &str) -> String {
    format!("\n{extra}\n[state]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}/0\"\ntimeout = \"200ms\"\n")
}

/// Every key and value in the Redis on `port`.
async fn dump(port: u16) -> Vec<(String, Vec<u8>)> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out = Vec::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        if kind == "string" {
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap();
            out.push((k, v));
        }
    }
    out
}

#[tokio::test]
async fn a_token_cached_by_one_replica_is_served_by_the_other_and_redis_holds_no_token() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let Some((setup, _redis, port)) =
        shared_setup(&upstream, &pki_client_with("cache_tokens = true"), "")
    else {
        return;
    };
    let config = setup.write();
    let a = Replica::start(&config, false);
    let b = Replica::start(&config, false);
    let first = a.token("client", &form(PKI_CLIENT)).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(upstream.forms().len(), 1);
    let second = b.token("client", &form(PKI_CLIENT)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["access_token"], first.json()["access_token"]);
    assert_eq!(upstream.forms().len(), 1, "replica B asked the upstream");
    assert_metric(
        &b.metrics().await,
        "mtls_gateway_token_cache_hits_total",
        1.0,
    );
    assert_metric(&b.metrics().await, "mtls_gateway_state_store_up", 1.0);
    // Nothing in Redis holds the token.
    let token = first.json()["access_token"].as_str().unwrap().to_string();
    let entries = dump(port).await;
    assert!(!entries.is_empty());
    for (k, v) in &entries {
        assert!(k.starts_with("mtls-gateway:"), "{k}");
        assert!(!k.contains(&token));
        assert!(
            !v.windows(token.len()).any(|w| w == token.as_bytes()),
            "{k} holds the token"
        );
        assert!(
            !v.windows(12).any(|w| w == b"access_token"),
            "{k} is not sealed"
        );
    }
}

#[tokio::test]
async fn one_rate_limit_holds_across_replicas() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let Some((setup, _redis, _)) =
        shared_setup(&upstream, &pki_client_with("rate_limit = \"3/m\""), "")
    else {
        return;
    };
    let config = setup.write();
    let a = Replica::start(&config, false);
    let b = Replica::start(&config, false);
    let mut statuses = Vec::new();
    for replica in [&a, &a, &b, &b] {
        statuses.push(
            replica
                .token("client", &form(PKI_CLIENT))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn twenty_concurrent_identical_requests_across_replicas_make_one_upstream_request() {
    let upstream = FakeUpstream::start(Behaviour::Delayed(
        300,
        200,
        r#"{"token_type":"Bearer","expires_in":3599,"access_token":"slow.shared.token"}"#.into(),
    ))
    .await;
    let Some((setup, _redis, _)) =
        shared_setup(&upstream, &pki_client_with("cache_tokens = true"), "")
    else {
        return;
    };
    let config = setup.write();
    let a = Replica::start(&config, false);
    let b = Replica::start(&config, false);
    for answer in tokens_at_once(&[a.url(), b.url()], 20).await {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.json()["access_token"], "slow.shared.token");
    }
    assert_eq!(upstream.forms().len(), 1, "a stampede on the upstream");
}

fn bound_clients() -> String {
    format!(
        "{}{}",
        pki_client_with(""),
        pki_client(
            crate::binding::OTHER_CLIENT,
            "tls_client_auth_subject_dn = \"CN=other-app,O=Contoso,C=US\""
        )
    )
}

async fn ask(authz: SocketAddr, token: &str, cert: &str) -> u16 {
    let mut headers = vec![("authorization", format!("Bearer {token}"))];
    headers.extend(header_for("x-ssl-client-cert", cert));
    plain_request(authz, "GET", "/authz/", &headers)
        .await
        .status
}

#[tokio::test]
async fn a_token_bound_on_one_replica_is_enforced_by_the_other() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let Some((setup, _redis, port)) = shared_setup(
        &upstream,
        &bound_clients(),
        "[binding]\n[authz]\nlisten = \"127.0.0.1:0\"\n",
    ) else {
        return;
    };
    let config = setup.write();
    let a = Replica::start(&config, true);
    let b = Replica::start(&config, true);
    let answer = a.token("client", &form(PKI_CLIENT)).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let token = answer.json()["access_token"].as_str().unwrap().to_string();
    let authz_b = b.authz.unwrap();
    assert_eq!(ask(authz_b, &token, "client").await, 200);
    assert_eq!(ask(authz_b, &token, "other").await, 401);
    assert_eq!(ask(authz_b, "unknown-token", "client").await, 401);
    // The record is sealed: a writer of Redis cannot forge one by editing it.
    let entries = dump(port).await;
    let (key, value) = entries
        .iter()
        .find(|(k, _)| k.contains("binding:"))
        .expect("a binding record");
    let mut forged = value.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(forged)
        .query_async(&mut conn)
        .await
        .unwrap();
    // B read the record before; after 60 s it would ask again. A has never read it.
    assert_eq!(ask(a.authz.unwrap(), &token, "client").await, 401);
}

#[tokio::test]
async fn with_redis_down_tokens_are_served_bound_tokens_are_not_and_both_recover() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let Some((setup, redis, port)) = shared_setup(&upstream, &pki_client_with(""), "") else {
        return;
    };
    let dir = setup.dir.0.clone();
    let plain_config = setup.write();
    let bound_config = setup.dir.write(
        "bound.toml",
        &std::fs::read_to_string(&plain_config).unwrap().replace(
            "[state]",
            "[binding]\n[authz]\nlisten = \"127.0.0.1:0\"\n\n[state]",
        ),
    );
    let plain = Replica::start(&plain_config, false);
    let bound = Replica::start(&bound_config, true);
    let issued = bound.token("client", &form(PKI_CLIENT)).await;
    assert_eq!(issued.status, 200);
    let token = issued.json()["access_token"].as_str().unwrap().to_string();
    let authz = bound.authz.unwrap();
    assert_eq!(ask(authz, &token, "client").await, 200);
    drop(redis);
    // Decisions: the allow read a moment ago holds (≤ 60 s); anything else needs the store.
    assert_eq!(ask(authz, &token, "client").await, 200);
    assert_eq!(ask(authz, &token, "other").await, 401);
    assert_eq!(ask(authz, "never-seen", "client").await, 503);
    let answer = plain.token("client", &form(PKI_CLIENT)).await;
    assert_eq!(answer.status, 200, "tokens are served with Redis down");
    let refused = bound.token("client", &form(PKI_CLIENT)).await;
    assert_error(&refused, 503, "temporarily_unavailable");
    assert!(refused.json().get("access_token").is_none());
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&bound.metrics().await, "mtls_gateway_state_store_up") != Some(0.0) {
        assert!(Instant::now() < deadline, "state_store_up stayed 1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = bound.metrics().await;
    assert!(
        metric(
            &metrics,
            "mtls_gateway_state_store_errors_total{op=\"binding_put\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_metric(
        &metrics,
        "mtls_gateway_binding_records_written_total{result=\"failure\"}",
        1.0,
    );
    // Redis back on the same port: binding issuance works again within seconds, no restart.
    let (_redis, _) = start_redis(&dir.join("redis"), Some(port)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = bound.token("client", &form(PKI_CLIENT)).await;
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after Redis came back",
            answer.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_metric(&bound.metrics().await, "mtls_gateway_state_store_up", 1.0);
    // The audit log never carried a token.
    drop(bound);
    drop(plain);
}

#[test]
fn a_missing_or_malformed_state_key_refuses_to_start_naming_the_variable() {
    let setup = Setup::new().client(&state_block(1, ""));
    let config = setup.write();
    for value in [None, Some("c2hvcnQ=")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtls-gateway"));
        cmd.env_remove(KEY_ENV).args(["check", "-c"]).arg(&config);
        if let Some(v) = value {
            cmd.env(KEY_ENV, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(KEY_ENV), "{text}");
        assert!(!text.contains("c2hvcnQ"), "the value was echoed: {text}");
    }
}

#[tokio::test]
async fn rediss_with_a_private_ca_and_a_password_from_the_environment() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let setup = Setup::new()
        .upstream(&upstream.config("5s"))
        .only_clients(&pki_client_with("cache_tokens = true"));
    let dir = setup.dir.0.clone();
    let data = dir.join("redis");
    std::fs::create_dir_all(&data).unwrap();
    let tls_port = free_port();
    let args: Vec<String> = [
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &dir.join("server.pem").display().to_string(),
        "--tls-key-file",
        &dir.join("server-key.pem").display().to_string(),
        "--tls-ca-cert-file",
        &dir.join("ca1.pem").display().to_string(),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "s3cret-redis-password",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let Some((_redis, _plain)) = start_redis_with(&data, None, &args) else {
        return;
    };
    let setup = setup.client(&format!(
        "\n[state]\nstore = \"redis\"\nredis_url = \"rediss://localhost:{tls_port}/0\"\nredis_ca = [\"ca1.pem\"]\nredis_password_env = \"TEST_REDIS_PASSWORD\"\n"
    ));
    let config = setup.write();
    let mut served = Served::command(
        Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
            .env(KEY_ENV, state_key())
            .env("TEST_REDIS_PASSWORD", "s3cret-redis-password")
            .args(["--log-format", "json", "serve", "-c"])
            .arg(&config),
    );
    let admin = served.addr("admin listener ready");
    let addr = served.addr("mTLS listener ready");
    let url = format!("https://localhost:{}/token", addr.port());
    for _ in 0..2 {
        let answer = client_for(Some("client"), false)
            .post_form(&url, &form(PKI_CLIENT))
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
    }
    assert_eq!(
        upstream.forms().len(),
        1,
        "the second token came from Redis over TLS"
    );
    let metrics = http_get(&format!("http://{admin}/metrics")).await.1;
    assert_metric(&metrics, "mtls_gateway_state_store_up", 1.0);
    assert_metric(&metrics, "mtls_gateway_token_cache_hits_total", 1.0);
    served.signal("TERM");
    served.wait_exit();
    assert!(!served.seen().join("\n").contains("s3cret-redis-password"));
}
