//! Logs: one audit event per token request; never a token, assertion, key or secret.

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
