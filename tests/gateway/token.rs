//! SPEC §4: the token endpoint's ordered checks, statuses, codes and headers.

use crate::support::*;

#[tokio::test]
async fn pki_client_gets_a_token_with_no_store_headers_and_a_request_id() {
    let h = Setup::new().start().await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("pragma"), Some("no-cache"));
    assert!(answer
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    assert!(answer
        .header("x-request-id")
        .is_some_and(|id| id.len() == 32));
    h.stop().await;
}

#[tokio::test]
async fn self_signed_client_gets_a_token() {
    let h = Setup::new().start().await;
    let answer = h.token(Some("selfsigned"), &form(SELF_SIGNED_CLIENT)).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    h.stop().await;
}

#[tokio::test]
async fn http2_clients_are_served() {
    let h = Setup::new().start().await;
    let answer = client_for(Some("client"), true)
        .post_form(&h.url("/token"), &form(PKI_CLIENT))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn entra_shaped_paths_forward_to_the_matching_endpoint() {
    let h = Setup::new().start().await;
    let c = h.client(Some("client"));
    let v2 = c
        .post_form(
            &h.url("/contoso.onmicrosoft.com/oauth2/v2.0/token"),
            &form(PKI_CLIENT),
        )
        .await
        .unwrap();
    assert_eq!(v2.status, 200, "{}", String::from_utf8_lossy(&v2.body));
    // The tenant compares case-insensitively.
    let upper = c
        .post_form(
            &h.url("/Contoso.OnMicrosoft.com/oauth2/v2.0/token"),
            &form(PKI_CLIENT),
        )
        .await
        .unwrap();
    assert_eq!(upper.status, 200);
    // v1 takes `resource`; the embedded IdP checks that the assertion's aud is the v1 URL.
    let v1 = c
        .post_form(
            &h.url("/contoso.onmicrosoft.com/oauth2/token"),
            &format!(
                "grant_type=client_credentials&client_id={PKI_CLIENT}&resource=api%3A%2F%2Fbilling"
            ),
        )
        .await
        .unwrap();
    assert_eq!(v1.status, 200, "{}", String::from_utf8_lossy(&v1.body));
    h.stop().await;
}

#[tokio::test]
async fn a_tenant_other_than_the_clients_is_invalid_request() {
    let h = Setup::new().start().await;
    let answer = h
        .client(Some("client"))
        .post_form(
            &h.url("/fabrikam.onmicrosoft.com/oauth2/v2.0/token"),
            &form(PKI_CLIENT),
        )
        .await
        .unwrap();
    assert_error(&answer, 400, "invalid_request");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    h.stop().await;
}

#[tokio::test]
async fn methods_other_than_post_get_405_with_allow() {
    let h = Setup::new().start().await;
    let answer = h
        .client(Some("client"))
        .get(&h.url("/token"))
        .await
        .unwrap();
    assert_error(&answer, 405, "invalid_request");
    assert_eq!(answer.header("allow"), Some("POST"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    h.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_a_form_is_invalid_request() {
    let h = Setup::new().start().await;
    let json = format!("{{\"client_id\":\"{PKI_CLIENT}\"}}");
    let answer = post_with(
        Some("client"),
        &h.url("/token"),
        &json,
        [("content-type", "application/json")],
    )
    .await;
    assert_error(&answer, 400, "invalid_request");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("Content-Type"));
    // A charset parameter is fine.
    let charset = [(
        "content-type",
        "application/x-www-form-urlencoded; charset=UTF-8",
    )];
    assert_eq!(
        post_with(Some("client"), &h.url("/token"), &form(PKI_CLIENT), charset)
            .await
            .status,
        200
    );
    h.stop().await;
}

#[tokio::test]
async fn a_declared_oversized_body_gets_413() {
    let h = Setup::new().limits("max_body_bytes = 2048").start().await;
    let big = format!("{}&pad={}", form(PKI_CLIENT), "a".repeat(100_000));
    let answer = h.token(Some("client"), &big).await;
    assert_error(&answer, 413, "invalid_request");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    // Just under the limit is fine.
    let fits = format!("{}&pad={}", form(PKI_CLIENT), "a".repeat(1500));
    assert_eq!(h.token(Some("client"), &fits).await.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_gets_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Setup::new().limits("max_body_bytes = 2048").start().await;
    let mut tls = raw_tls(h.addr(), Some("client"), b"http/1.1").await;
    let mut req = String::from("POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\n\r\n");
    for _ in 0..10 {
        req.push_str(&format!("400\r\n{}\r\n", "a".repeat(0x400)));
    }
    req.push_str("0\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"invalid_request\""), "{text}");
    h.stop().await;
}

#[tokio::test]
async fn a_repeated_parameter_is_invalid_request_whatever_the_values() {
    let h = Setup::new().start().await;
    for body in [
        format!("{}&grant_type=client_credentials", form(PKI_CLIENT)),
        format!("{}&client_id={PKI_CLIENT}", form(PKI_CLIENT)),
        format!("{}&scope=", form(PKI_CLIENT)),
    ] {
        let answer = h.token(Some("client"), &body).await;
        assert_error(&answer, 400, "invalid_request");
        assert!(answer.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("more than once"));
    }
    h.stop().await;
}

#[tokio::test]
async fn empty_parameters_count_as_omitted() {
    let h = Setup::new().start().await;
    // An empty client_secret is no second authentication method (RFC 6749 §3.1).
    let answer = h
        .token(
            Some("client"),
            &format!("{}&client_secret=", form(PKI_CLIENT)),
        )
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // An empty client_id is a missing one.
    let answer = h
        .token(Some("client"), "grant_type=client_credentials&client_id=")
        .await;
    assert_error(&answer, 400, "invalid_request");
    h.stop().await;
}

#[tokio::test]
async fn an_authorization_header_gets_401_with_the_same_scheme() {
    let h = Setup::new().start().await;
    for (value, scheme) in [("Basic YTpi", "Basic"), ("Bearer abc", "Bearer")] {
        let answer = post_with(
            Some("client"),
            &h.url("/token"),
            &form(PKI_CLIENT),
            [("authorization", value)],
        )
        .await;
        assert_error(&answer, 401, "invalid_client");
        let www = answer.header("www-authenticate").unwrap();
        assert!(www.starts_with(scheme), "{www}");
    }
    h.stop().await;
}

#[tokio::test]
async fn client_id_and_grant_type_are_required() {
    let h = Setup::new().start().await;
    let answer = h
        .token(
            Some("client"),
            &format!("grant_type=client_credentials&scope={SCOPE}"),
        )
        .await;
    assert_error(&answer, 400, "invalid_request");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("client_id"));
    let answer = h
        .token(
            Some("client"),
            &format!("client_id={PKI_CLIENT}&scope={SCOPE}"),
        )
        .await;
    assert_error(&answer, 400, "invalid_request");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("grant_type"));
    h.stop().await;
}

#[tokio::test]
async fn another_authentication_method_in_the_body_is_invalid_request() {
    let h = Setup::new().start().await;
    for extra in [
        "client_secret=s3cret",
        "client_assertion=a.b.c",
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
    ] {
        let answer = h
            .token(Some("client"), &format!("{}&{extra}", form(PKI_CLIENT)))
            .await;
        assert_error(&answer, 400, "invalid_request");
        assert!(answer.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("more than one authentication method"));
    }
    h.stop().await;
}

#[tokio::test]
async fn an_unknown_client_id_is_invalid_client() {
    let h = Setup::new().start().await;
    let answer = h
        .token(
            Some("client"),
            &form("00000000-0000-0000-0000-000000000000"),
        )
        .await;
    assert_error(&answer, 401, "invalid_client");
    h.stop().await;
}

#[tokio::test]
async fn no_certificate_is_invalid_client() {
    let h = Setup::new().start().await;
    let answer = h.token(None, &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("no client certificate"));
    h.stop().await;
}

#[tokio::test]
async fn a_disallowed_grant_type_is_unauthorized_client() {
    let h = Setup::new().start().await;
    let answer = h
        .token(
            Some("client"),
            &format!("grant_type=refresh_token&refresh_token=x&client_id={PKI_CLIENT}"),
        )
        .await;
    assert_error(&answer, 400, "unauthorized_client");
    h.stop().await;
}

#[tokio::test]
async fn scopes_outside_the_allow_list_are_invalid_scope() {
    let h = Setup::new()
        .only_clients(&(pki_client(
            PKI_CLIENT,
            &format!("tls_client_auth_subject_dn = \"{PKI_DN}\"\nscopes = [\"api://billing/.default\"]"),
        )))
        .start()
        .await;
    let ok = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let answer = h
        .token(Some("client"), &format!("grant_type=client_credentials&client_id={PKI_CLIENT}&scope=api%3A%2F%2Fpayroll%2F.default"))
        .await;
    assert_error(&answer, 400, "invalid_scope");
    h.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_not_found_with_a_request_id() {
    let h = Setup::new().start().await;
    for path in [
        "/",
        "/tokens",
        "/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
        "//oauth2/v2.0/token",
    ] {
        let answer = h.client(Some("client")).get(&h.url(path)).await.unwrap();
        assert_error(&answer, 404, "not_found");
        assert!(answer.header("x-request-id").is_some());
    }
    h.stop().await;
}

#[tokio::test]
async fn a_short_incoming_request_id_is_kept_and_a_hostile_one_replaced() {
    let h = Setup::new().start().await;
    let url = h.url("/token");
    let body = form(PKI_CLIENT);
    let send = |id: &'static str| post_with(Some("client"), &url, &body, [("x-request-id", id)]);
    let kept = send("trace-abc_1.2").await;
    assert_eq!(kept.header("x-request-id"), Some("trace-abc_1.2"));
    let replaced = send("bad id; rm -rf").await;
    let id = replaced.header("x-request-id").unwrap();
    assert_ne!(id, "bad id; rm -rf");
    assert_eq!(id.len(), 32);
    h.stop().await;
}

#[tokio::test]
async fn an_upstream_error_is_passed_through_unchanged() {
    let h = Setup::new().start().await;
    // The embedded IdP refuses a client_credentials scope without /.default (AADSTS1002012).
    let answer = h
        .token(
            Some("client"),
            &format!(
                "grant_type=client_credentials&client_id={PKI_CLIENT}&scope=api%3A%2F%2Fbilling"
            ),
        )
        .await;
    assert_eq!(answer.status, 400);
    let body = answer.json();
    assert_eq!(body["error"], "invalid_scope");
    assert_eq!(body["error_codes"][0], 1002012);
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS1002012:"));
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    h.stop().await;
}
