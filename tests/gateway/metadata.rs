//! SPEC §4: the discovery endpoints.

use crate::support::upstream::{Behaviour, FakeUpstream};
use crate::support::*;

#[tokio::test]
async fn entra_metadata_points_mtls_clients_at_the_gateway_and_keeps_the_issuer() {
    let h = Setup::new().start().await;
    let c = h.client(None);
    for path in [
        "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let answer = c.get(&h.url(path)).await.unwrap();
        assert_eq!(answer.status, 200, "{path}");
        let doc = answer.json();
        assert_eq!(
            doc["mtls_endpoint_aliases"]["token_endpoint"],
            "https://gateway.test/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let methods = doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        for m in [
            "tls_client_auth",
            "self_signed_tls_client_auth",
            "private_key_jwt",
        ] {
            assert!(methods.iter().any(|v| v == m), "{m} missing: {methods:?}");
        }
        // The upstream issues the tokens: its issuer and token_endpoint stay.
        let idp = h.running.as_ref().unwrap().idp_addrs["dev"];
        assert_eq!(
            doc["issuer"],
            format!("https://{idp}/contoso.onmicrosoft.com/v2.0")
        );
        assert_eq!(
            doc["token_endpoint"],
            format!("https://{idp}/contoso.onmicrosoft.com/oauth2/v2.0/token")
        );
    }
    let other = c
        .get(&h.url("/fabrikam.onmicrosoft.com/v2.0/.well-known/openid-configuration"))
        .await
        .unwrap();
    assert_error(&other, 404, "not_found");
    let post = c
        .post_form(&h.url("/.well-known/openid-configuration"), "a=b")
        .await
        .unwrap();
    assert_error(&post, 405, "invalid_request");
    assert_eq!(post.header("allow"), Some("GET"));
    h.stop().await;
}

#[tokio::test]
async fn generic_metadata_is_fetched_once_and_cached() {
    let upstream = FakeUpstream::start(Behaviour::Answer(
        200,
        vec![("content-type", "application/json")],
        r#"{"issuer":"https://idp.test","token_endpoint":"https://idp.test/token","token_endpoint_auth_methods_supported":"not-a-list"}"#.into(),
    ))
    .await;
    let h = Setup::new().upstream(&upstream.config("2s")).start().await;
    let c = h.client(None);
    for _ in 0..3 {
        let doc = c
            .get(&h.url("/.well-known/openid-configuration"))
            .await
            .unwrap()
            .json();
        assert_eq!(doc["issuer"], "https://idp.test");
        assert_eq!(
            doc["mtls_endpoint_aliases"]["token_endpoint"],
            "https://gateway.test/token"
        );
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["tls_client_auth", "self_signed_tls_client_auth"])
        );
    }
    assert_eq!(upstream.forms().len(), 1, "cached for 10 minutes");
    h.stop().await;
}

#[tokio::test]
async fn metadata_that_is_not_json_gives_502() {
    let upstream = FakeUpstream::start(Behaviour::Answer(200, vec![], "<html/>".into())).await;
    let h = Setup::new().upstream(&upstream.config("2s")).start().await;
    let answer = h
        .client(None)
        .get(&h.url("/.well-known/openid-configuration"))
        .await
        .unwrap();
    assert_error(&answer, 502, "temporarily_unavailable");
    h.stop().await;
}

#[tokio::test]
async fn root_metadata_is_404_with_several_upstreams() {
    let setup = Setup::new();
    let second = "[upstreams.other]\ntype = \"entra\"\ntenant = \"fabrikam.onmicrosoft.com\"\n";
    let upstream = format!("{}{second}", setup.upstream);
    let h = setup.upstream(&upstream).start().await;
    let answer = h
        .client(None)
        .get(&h.url("/.well-known/openid-configuration"))
        .await
        .unwrap();
    assert_error(&answer, 404, "not_found");
    h.stop().await;
}

#[tokio::test]
async fn concurrent_metadata_requests_make_one_upstream_fetch() {
    let upstream = FakeUpstream::start(Behaviour::Delayed(
        300,
        200,
        r#"{"issuer":"https://idp.test"}"#.into(),
    ))
    .await;
    let h = Setup::new().upstream(&upstream.config("2s")).start().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = h.url("/.well-known/openid-configuration");
        tasks.push(tokio::spawn(async move {
            client_for(None, false)
                .get(&url)
                .await
                .map(|a| a.status.as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(200));
    }
    assert_eq!(upstream.forms().len(), 1);
    h.stop().await;
}
