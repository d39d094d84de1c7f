//! SPEC §7 "Reload": per-client state belongs to the client, not to the configuration
//! generation. A reload that changes nothing keeps cached tokens and spent allowances; a
//! changed credential starts the client afresh.

use crate::support::upstream::{ok_answer, FakeUpstream};
use crate::support::*;

/// A gateway whose one client caches tokens from a scripted upstream, after one request
/// that reached the upstream.
async fn cached_gateway() -> (Harness, FakeUpstream) {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let h = Setup::new()
        .upstream(&upstream.config("5s"))
        .only_clients(&pki_client_with("cache_tokens = true"))
        .start()
        .await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    assert_eq!(upstream.forms().len(), 1);
    (h, upstream)
}

#[tokio::test]
async fn a_cached_token_survives_a_reload_that_changed_nothing() {
    let (h, upstream) = cached_gateway().await;
    h.running.as_ref().unwrap().reload().unwrap();
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    assert_eq!(
        upstream.forms().len(),
        1,
        "served from the cache after the reload"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_reload_that_changes_the_credential_starts_the_cache_afresh() {
    let (h, upstream) = cached_gateway().await;
    let toml = h
        .setup
        .toml()
        .replace("cert = \"signing.pem\"", "cert = \"signing2.pem\"")
        .replace("key = \"signing-key.pem\"", "key = \"signing2-key.pem\"");
    assert!(toml.contains("signing2.pem"));
    h.setup.dir.write("gateway.toml", &toml);
    h.running.as_ref().unwrap().reload().unwrap();
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    assert_eq!(
        upstream.forms().len(),
        2,
        "a new credential: the cache starts afresh"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_spent_allowance_stays_spent_after_a_reload_that_changed_nothing() {
    let h = Setup::new().limits("rate_limit = \"2/m\"").start().await;
    for _ in 0..2 {
        assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    }
    assert_error(
        &h.token(Some("client"), &form(PKI_CLIENT)).await,
        429,
        "temporarily_unavailable",
    );
    h.running.as_ref().unwrap().reload().unwrap();
    assert_error(
        &h.token(Some("client"), &form(PKI_CLIENT)).await,
        429,
        "temporarily_unavailable",
    );
    h.stop().await;
}
