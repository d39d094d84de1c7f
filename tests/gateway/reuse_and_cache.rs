//! SPEC §6 `reuse_assertion` and the `cache_tokens` token cache (issue 7), untimed.

use crate::support::upstream::{ok_answer, Behaviour, FakeUpstream};
use crate::support::*;

fn assertion_of(form: &str) -> String {
    form.split('&')
        .find_map(|p| p.strip_prefix("client_assertion="))
        .unwrap()
        .to_string()
}

fn entra(upstream: &FakeUpstream, reuse: bool) -> String {
    format!(
        "[upstreams.dev]\ntype = \"entra\"\nauthority = \"https://127.0.0.1:{}\"\ntenant = \"contoso.onmicrosoft.com\"\nca = [\"ca1.pem\"]\nreuse_assertion = {reuse}\n",
        upstream.addr.port()
    )
}

#[tokio::test]
async fn reuse_assertion_sends_one_assertion_per_audience_within_its_window() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let h = Setup::new().upstream(&entra(&upstream, true)).start().await;
    let c = h.client(Some("client"));
    for path in [
        "/token",
        "/token",
        "/contoso.onmicrosoft.com/oauth2/v2.0/token",
        "/contoso.onmicrosoft.com/oauth2/token",
    ] {
        assert_eq!(
            c.post_form(&h.url(path), &form(PKI_CLIENT))
                .await
                .unwrap()
                .status,
            200
        );
    }
    h.stop().await;
    let forms = upstream.forms();
    assert_eq!(forms[0].0, "/contoso.onmicrosoft.com/oauth2/v2.0/token");
    let a: Vec<String> = forms.iter().map(|(_, f)| assertion_of(f)).collect();
    assert_eq!(a[0], a[1], "reused within its window");
    assert_eq!(a[1], a[2], "/token and the v2 path share the audience");
    assert_ne!(a[2], a[3], "the v1 endpoint is another audience");
}

#[tokio::test]
async fn without_reuse_every_request_gets_a_fresh_assertion() {
    let upstream = FakeUpstream::start(ok_answer()).await;
    let h = Setup::new()
        .upstream(&entra(&upstream, false))
        .start()
        .await;
    for _ in 0..2 {
        assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    }
    h.stop().await;
    let forms = upstream.forms();
    assert_ne!(assertion_of(&forms[0].1), assertion_of(&forms[1].1));
}

#[test]
fn reuse_assertion_is_refused_where_jti_is_checked() {
    let setup = Setup::new().upstream(
        "[upstreams.dev]\ntype = \"embedded\"\nlisten = \"127.0.0.1:0\"\nreuse_assertion = true\n\n[upstreams.g]\ntype = \"generic\"\ntoken_endpoint = \"https://idp.example/token\"\nreuse_assertion = true\n",
    );
    let text = mtls_gateway::config::load(&setup.write())
        .unwrap_err()
        .to_string();
    assert!(text.contains("upstreams.dev.reuse_assertion"), "{text}");
    assert!(text.contains("upstreams.g.reuse_assertion"), "{text}");
}

fn caching_clients() -> String {
    format!(
        "{}cache_tokens = true\n\n[[clients]]\nclient_id = \"{SELF_SIGNED_CLIENT}\"\nupstream = \"dev\"\ncredential = \"dev\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\nself_signed_certs = [\"selfsigned.pem\", \"selfsigned2.pem\"]\ncache_tokens = true\n",
        pki_client(PKI_CLIENT, &format!("tls_client_auth_subject_dn = \"{PKI_DN}\""))
    )
}

async fn cached(behaviour: Behaviour) -> (Harness, FakeUpstream) {
    let upstream = FakeUpstream::start(behaviour).await;
    let h = Setup::new()
        .upstream(&upstream.config("5s"))
        .only_clients(&caching_clients())
        .start()
        .await;
    (h, upstream)
}

#[tokio::test]
async fn a_cached_token_is_served_after_a_miss_with_expires_in_adjusted() {
    let (h, upstream) = cached(ok_answer()).await;
    let first = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(first.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(second.status, 200);
    assert_eq!(
        upstream.forms().len(),
        1,
        "the second answer came from the cache"
    );
    assert_eq!(second.json()["access_token"], first.json()["access_token"]);
    let left = second.json()["expires_in"].as_u64().unwrap();
    assert!(left < 3599 && left > 3500, "expires_in adjusted: {left}");
    assert_eq!(second.header("cache-control"), Some("no-store"));
    assert!(second
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    // Scope order and duplicates do not matter; another scope is another entry.
    let reordered = "grant_type=client_credentials&client_id=".to_string()
        + PKI_CLIENT
        + "&scope=api%3A%2F%2Fbilling%2F.default+api%3A%2F%2Fbilling%2F.default";
    assert_eq!(h.token(Some("client"), &reordered).await.status, 200);
    assert_eq!(upstream.forms().len(), 1);
    let other_scope = format!(
        "grant_type=client_credentials&client_id={PKI_CLIENT}&scope=api%3A%2F%2Fpayroll%2F.default"
    );
    assert_eq!(h.token(Some("client"), &other_scope).await.status, 200);
    assert_eq!(upstream.forms().len(), 2, "another scope is not a hit");
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metric(&text, "mtls_gateway_token_cache_hits_total"),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, "mtls_gateway_token_cache_misses_total"),
        Some(2.0)
    );
    h.stop().await;
}

#[tokio::test]
async fn another_certificate_of_the_same_client_is_not_a_hit() {
    let (h, upstream) = cached(ok_answer()).await;
    assert_eq!(
        h.token(Some("selfsigned"), &form(SELF_SIGNED_CLIENT))
            .await
            .status,
        200
    );
    assert_eq!(
        h.token(Some("selfsigned2"), &form(SELF_SIGNED_CLIENT))
            .await
            .status,
        200
    );
    assert_eq!(
        h.token(Some("selfsigned2"), &form(SELF_SIGNED_CLIENT))
            .await
            .status,
        200
    );
    assert_eq!(upstream.forms().len(), 2);
    // And a failed authentication never reaches the cache.
    assert_eq!(
        h.token(Some("other"), &form(SELF_SIGNED_CLIENT))
            .await
            .status,
        401
    );
    h.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_misses_make_one_upstream_call() {
    let body = r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QifQ.e30.c2xvdw"}"#;
    let (h, upstream) = cached(Behaviour::Delayed(300, 200, body.into())).await;
    for answer in tokens_at_once(&[h.url("/token")], 50).await {
        assert_eq!(answer.status, 200);
    }
    assert_eq!(upstream.forms().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn errors_and_short_lived_tokens_are_never_cached() {
    let (h, upstream) = cached(Behaviour::Answer(
        400,
        vec![("content-type", "application/json")],
        r#"{"error":"invalid_scope","error_description":"AADSTS70011: bad scope"}"#.into(),
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 400);
    }
    assert_eq!(upstream.forms().len(), 3);
    h.stop().await;
    let (h, upstream) = cached(Behaviour::Answer(
        200,
        vec![("content-type", "application/json")],
        r#"{"token_type":"Bearer","expires_in":360,"access_token":"eyJ0eXAiOiJKV1QifQ.e30.c2hvcnQ"}"#.into(),
    ))
    .await;
    for _ in 0..2 {
        assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    }
    assert_eq!(
        upstream.forms().len(),
        2,
        "a token with ≤ 6 minutes left is not cached"
    );
    h.stop().await;
}
