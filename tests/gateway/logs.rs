//! Logs: one audit event per token request; never a token, assertion, key or secret.

use std::time::Duration;

use crate::support::process::Served;
use crate::support::upstream::{ok_answer, FakeUpstream};
use crate::support::*;

#[tokio::test]
async fn no_token_assertion_key_or_secret_reaches_the_logs() {
    // Through the embedded IdP: a real access token comes back.
    let h = Setup::new().start().await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(answer.status, 200);
    let token = answer.json()["access_token"].as_str().unwrap().to_string();
    // A request carrying a secret is refused; the secret must not be logged either.
    let refused = h
        .token(
            Some("client"),
            &format!("{}&client_secret=Sup3rS3cretValue42", form(PKI_CLIENT)),
        )
        .await;
    assert_eq!(refused.status, 400);
    h.stop().await;

    // Through a recording upstream: the exact assertion the gateway sent is known.
    let upstream = FakeUpstream::start(ok_answer()).await;
    let h = Setup::new().upstream(&upstream.config("2s")).start().await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    h.stop().await;
    let forwarded = upstream.forms().pop().unwrap().1;
    let assertion = forwarded
        .split('&')
        .find_map(|p| p.strip_prefix("client_assertion="))
        .unwrap()
        .to_string();

    let logs = logs();
    assert!(
        logs.contains("\"token request\""),
        "the audit event is logged"
    );
    let signature = |jwt: &str| jwt.rsplit('.').next().unwrap().to_string();
    for (what, secret) in [
        ("access token", token.clone()),
        ("access token signature", signature(&token)),
        ("assertion", assertion.clone()),
        ("assertion signature", signature(&assertion)),
        ("client secret", "Sup3rS3cretValue42".to_string()),
    ] {
        assert!(!logs.contains(&secret), "the {what} was logged");
    }
    for name in ["signing", "server", "client"] {
        let key = &pki().get(name).key;
        for line in key
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
        {
            assert!(
                !logs.contains(line),
                "private key material of {name} was logged"
            );
        }
    }
}

#[tokio::test]
async fn the_audit_event_has_the_request_fields() {
    let h = Setup::new().start().await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    let id = answer.header("x-request-id").unwrap().to_string();
    h.stop().await;
    let logs = logs();
    let event = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["fields"]["request_id"] == id.as_str())
        .expect("an audit event with the response's request id");
    let f = &event["fields"];
    assert_eq!(event["target"], "audit");
    assert_eq!(f["client_id"], PKI_CLIENT);
    assert_eq!(f["auth_method"], "tls_client_auth");
    assert_eq!(f["cert_subject"], PKI_DN);
    assert_eq!(
        f["cert_x5t_s256"],
        mtls_gateway::identity::x5t_s256(pki().cert_der("client").as_ref())
    );
    assert_eq!(f["outcome"], "success");
    assert_eq!(f["status"], 200);
    assert_eq!(f["upstream_status"], 200);
    assert!(f["upstream_ms"].is_number() && f["duration_ms"].is_number());
}

/// The audit event of the request whose answer carried `id`.
fn audit_event(id: &str) -> serde_json::Value {
    logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["target"] == "audit" && e["fields"]["request_id"] == id)
        .unwrap_or_else(|| panic!("no audit event for {id}"))
}

#[tokio::test]
async fn a_traceparent_is_continued_to_the_upstream_and_its_trace_id_logged() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let mut setup = Setup::new();
    setup.upstream = upstream.config("5s");
    let h = setup.start().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming = format!("00-{trace}-00f067aa0ba902b7-01");
    let answer = post_with(
        Some("client"),
        &h.url("/token"),
        &form(PKI_CLIENT),
        [("traceparent", incoming.as_str())],
    )
    .await;
    assert_eq!(answer.status, 200);
    let id = answer.header("x-request-id").unwrap().to_string();
    // An invalid one is not forwarded (and starts nothing).
    let answer = post_with(
        Some("client"),
        &h.url("/token"),
        &form(PKI_CLIENT),
        [("traceparent", "00-not-a-trace-01")],
    )
    .await;
    assert_eq!(answer.status, 200);
    let bad_id = answer.header("x-request-id").unwrap().to_string();
    h.stop().await;
    let sent = upstream.headers.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    let forwarded = sent[0]["traceparent"].to_str().unwrap().to_string();
    let parsed = mtls_gateway::trace::TraceParent::parse(forwarded.as_bytes()).unwrap();
    assert_eq!(parsed.trace_id, trace);
    assert_eq!(parsed.flags, "01");
    assert_ne!(
        parsed.parent_id, "00f067aa0ba902b7",
        "the gateway's own span is the parent"
    );
    assert!(sent[1].get("traceparent").is_none());
    assert_eq!(audit_event(&id)["fields"]["trace_id"], trace);
    assert!(audit_event(&bad_id)["fields"].get("trace_id").is_none());
}

#[tokio::test]
async fn log_durations_are_rounded_to_the_microsecond() {
    let h = Setup::new().start().await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    let id = answer.header("x-request-id").unwrap().to_string();
    h.stop().await;
    let line = logs()
        .lines()
        .find(|l| l.contains(&format!("\"request_id\":\"{id}\"")))
        .unwrap()
        .to_string();
    for field in ["duration_ms", "upstream_ms"] {
        let start = line.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
        let value: String = line[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let decimals = value.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "{field}={value} in {line}");
    }
}

#[tokio::test]
async fn the_audit_event_of_an_unknown_client_id_names_the_certificate_presented() {
    let h = Setup::new().start().await;
    let answer = h
        .token(
            Some("client"),
            &form("99999999-0000-0000-0000-000000000000"),
        )
        .await;
    assert_eq!(answer.status, 401);
    let id = answer.header("x-request-id").unwrap().to_string();
    h.stop().await;
    let f = &audit_event(&id)["fields"];
    assert_eq!(f["client_id"], "99999999-0000-0000-0000-000000000000");
    assert_eq!(f["cert_subject"], PKI_DN);
    assert_eq!(
        f["cert_x5t_s256"],
        mtls_gateway::identity::x5t_s256(pki().cert_der("client").as_ref())
    );
    assert_eq!(f["authenticated"], false);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_address_comes_from_x_forwarded_for() {
    let mut setup = Setup::new();
    setup.clients.push_str("\n[front_proxy]\nheader = \"x-ssl-client-cert\"\ntrusted_peers = [\"127.0.0.1/32\"]\nplain_listen = \"127.0.0.1:0\"\n");
    let h = setup.start().await;
    let plain = h.running.as_ref().unwrap().plain_addr.unwrap();
    let mut headers = crate::front_proxy::header_for("x-ssl-client-cert", "client");
    // The client wrote the first entry itself; the proxy appended the last.
    headers.push(("x-forwarded-for", "203.0.113.9, 198.51.100.7".into()));
    headers.push(("x-request-id", "xff-trusted-1".into()));
    let (status, _) = crate::front_proxy::plain_token(plain, &headers, &form(PKI_CLIENT)).await;
    assert_eq!(status, 200);
    h.stop().await;
    let f = &audit_event("xff-trusted-1")["fields"];
    assert_eq!(f["client_addr"], "198.51.100.7");
    assert!(f["peer"].as_str().unwrap().starts_with("127.0.0.1:"));

    // From a peer that is not a trusted proxy the header is not believed.
    let mut setup = Setup::new();
    setup.clients.push_str(
        "\n[front_proxy]\nheader = \"x-ssl-client-cert\"\ntrusted_peers = [\"10.9.9.9/32\"]\n",
    );
    let h = setup.start().await;
    let answer = post_with(
        Some("client"),
        &h.url("/token"),
        &form(PKI_CLIENT),
        [
            ("x-forwarded-for", "198.51.100.7"),
            ("x-request-id", "xff-untrusted-1"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    h.stop().await;
    assert!(audit_event("xff-untrusted-1")["fields"]
        .get("client_addr")
        .is_none());
}

/// A log shipper that stops reading the gateway's standard error (the pipe holds 64 KiB) must
/// not stop token requests: lines wait in the gateway's own buffer, and every audit event is
/// written once the reader is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_reader_does_not_hold_token_requests_and_no_audit_event_is_lost() {
    let setup = Setup::new();
    let path = setup.write();
    let mut served = Served::start(&path);
    let addr = served.addr("mTLS listener ready");
    served.pause_reading(true);
    let url = format!("https://localhost:{}/token", addr.port());
    let client = client_for(Some("client"), false);
    // An unknown client_id: one audit event of ≈ 700 bytes each, no upstream involved; 600 of
    // them are several times what the pipe holds.
    let unknown = form("99999999-0000-0000-0000-000000000000");
    let ids = tokio::time::timeout(Duration::from_secs(60), async {
        let mut ids = Vec::new();
        for _ in 0..600 {
            let answer = client.post_form(&url, &unknown).await.unwrap();
            assert_eq!(answer.status, 401);
            ids.push(answer.header("x-request-id").unwrap().to_string());
        }
        ids
    })
    .await
    .expect("token requests waited for the stalled reader of standard error");
    served.pause_reading(false);
    served.signal("TERM");
    assert!(served.wait_exit().success());
    let logged: std::collections::HashSet<String> = served
        .seen()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "token request")
        .filter_map(|v| v["request_id"].as_str().map(str::to_string))
        .collect();
    for id in &ids {
        assert!(logged.contains(id), "the audit event of {id} was lost");
    }
}
