//! SPEC §4 step 11 and §8: what the client sees when the upstream fails or refuses.

use crate::support::upstream::{Behaviour, FakeUpstream};
use crate::support::*;

async fn through(behaviour: Behaviour, timeout: &str) -> (client::Answer, FakeUpstream) {
    let upstream = FakeUpstream::start(behaviour).await;
    let h = Setup::new()
        .upstream(&upstream.config(timeout))
        .start()
        .await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    h.stop().await;
    (answer, upstream)
}

use mtls_gateway::client;

#[tokio::test]
async fn an_upstream_that_is_down_gives_502() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = Setup::new()
        .upstream(&format!(
            "[upstreams.dev]\ntype = \"generic\"\ntoken_endpoint = \"https://127.0.0.1:{port}/token\"\nca = [\"ca1.pem\"]\ntimeout = \"2s\"\n"
        ))
        .start()
        .await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 502, "temporarily_unavailable");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    h.stop().await;
}

#[tokio::test]
async fn a_silent_upstream_gives_504_after_its_timeout() {
    let (answer, _) = through(Behaviour::Silent, "300ms").await;
    assert_error(&answer, 504, "temporarily_unavailable");
}

#[tokio::test]
async fn an_upstream_answering_garbage_gives_502() {
    let (answer, _) = through(Behaviour::Garbage, "2s").await;
    assert_error(&answer, 502, "temporarily_unavailable");
}

#[tokio::test]
async fn an_upstream_reset_mid_answer_gives_502() {
    let (answer, _) = through(Behaviour::ResetMidBody, "2s").await;
    assert_error(&answer, 502, "temporarily_unavailable");
}

#[tokio::test]
async fn an_upstream_with_an_untrusted_certificate_gives_502() {
    let upstream = FakeUpstream::start(crate::support::upstream::ok_answer()).await;
    let config = upstream
        .config("2s")
        .replace("ca = [\"ca1.pem\"]", "ca = [\"ca2.pem\"]");
    let h = Setup::new().upstream(&config).start().await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 502, "temporarily_unavailable");
    h.stop().await;
    assert!(
        upstream.forms().is_empty(),
        "nothing may be sent to an unauthenticated upstream"
    );
}

#[tokio::test]
async fn throttling_429_and_retry_after_pass_through_unchanged() {
    let body =
        r#"{"error":"temporarily_unavailable","error_description":"AADSTS50196: loop detected"}"#;
    let (answer, upstream) = through(
        Behaviour::Answer(
            429,
            vec![("content-type", "application/json"), ("retry-after", "60")],
            body.into(),
        ),
        "2s",
    )
    .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("60"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(&answer.body[..], body.as_bytes());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(upstream.forms().len(), 1, "no retry of an answered request");
}

#[tokio::test]
async fn upstream_5xx_and_non_json_answers_pass_through_unchanged() {
    let body = "<html>Service Unavailable</html>";
    let (answer, upstream) = through(
        Behaviour::Answer(503, vec![("content-type", "text/html")], body.into()),
        "2s",
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("content-type"), Some("text/html"));
    assert_eq!(&answer.body[..], body.as_bytes());
    assert_eq!(upstream.forms().len(), 1);
}

#[tokio::test]
async fn an_oversized_upstream_answer_is_not_relayed() {
    let huge = "x".repeat(mtls_gateway::upstream::MAX_RESPONSE_BYTES + 10);
    let (answer, _) = through(
        Behaviour::Answer(200, vec![("content-type", "application/json")], huge),
        "5s",
    )
    .await;
    assert_error(&answer, 502, "temporarily_unavailable");
}

#[tokio::test]
async fn nothing_is_retried_once_the_upstream_was_reached() {
    use std::sync::atomic::Ordering;
    for (behaviour, timeout, status) in [
        (Behaviour::Garbage, "2s", 502),
        (Behaviour::ResetMidBody, "2s", 502),
        (Behaviour::Silent, "300ms", 504),
    ] {
        let (answer, upstream) = through(behaviour.clone(), timeout).await;
        assert_eq!(answer.status.as_u16(), status, "{behaviour:?}");
        assert_eq!(
            upstream.connections.load(Ordering::SeqCst),
            1,
            "{behaviour:?} was retried"
        );
    }
}

#[tokio::test]
async fn an_answer_declaring_more_than_1_mib_fails_at_once() {
    // With a 10 s upstream timeout, waiting for the body would give 504 after 10 s; the
    // declared length alone decides: 502 at once.
    let started = std::time::Instant::now();
    let (answer, _) = through(Behaviour::DeclaresHuge, "10s").await;
    assert_error(&answer, 502, "temporarily_unavailable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}
