//! Certificate-bound access tokens (SPEC §10): a real nginx (`auth_request`) in front of a
//! small resource server, over real mTLS, asks the gateway's `[authz]` listener; requests
//! shaped like Envoy's ext_authz HTTP service; RFC 7662 introspection.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::front_proxy::header_for;
use crate::support::process::{shipped_nginx, start_nginx, Supervised};
use crate::support::upstream::{Behaviour, FakeUpstream};
use crate::support::*;

pub const OTHER_CLIENT: &str = "0a1b2c3d-1111-2222-3333-444455556666";
const OTHER_DN: &str = "CN=other-app,O=Contoso,C=US";

/// The default setup plus a second registered client (certificate "other"), `[binding]` with
/// `binding`, `[authz]` on a free port with `authz_extra`, and introspection for the resource
/// server's certificate ("escaped").
fn bound_setup(binding: &str, authz_extra: &str) -> Setup {
    let resource = mtls_gateway::identity::x5t_s256(pki().cert_der("escaped").as_ref());
    // Introspection answers from records, which registration mode does not write.
    let introspection = if binding.contains("\"registration\"")
        && binding.contains("mode")
        && !binding.contains("on_unknown")
    {
        String::new()
    } else {
        format!("[introspection]\nclients = [\"{resource}\"]\n")
    };
    Setup::new().client(&format!(
        "{}\n[binding]\n{binding}\n\n[authz]\nlisten = \"127.0.0.1:0\"\n{authz_extra}\n\n{introspection}",
        pki_client(OTHER_CLIENT, &format!("tls_client_auth_subject_dn = \"{OTHER_DN}\""))
    ))
}

fn authz_addr(h: &Harness) -> SocketAddr {
    h.running.as_ref().unwrap().authz_addr.unwrap()
}

/// A token from the gateway for `client_id` with certificate `cert`.
async fn token_via_gateway(h: &Harness, cert: &str, client_id: &str) -> String {
    let answer = h.token(Some(cert), &form(client_id)).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()["access_token"].as_str().unwrap().to_string()
}

/// A token straight from the embedded identity provider (private_key_jwt with the credential's
/// key, as any holder of it could): no binding record.
async fn token_from_idp(h: &Harness) -> String {
    let running = h.running.as_ref().unwrap();
    let client =
        mtls_gateway::client::MtlsClient::new(&[running.idp_cas["dev"].clone()], None, false)
            .unwrap();
    let aud = format!(
        "https://{}/contoso.onmicrosoft.com/oauth2/v2.0/token",
        running.idp_addrs["dev"]
    );
    let now = crate::idp::now();
    let claims = json!({"aud": aud, "iss": PKI_CLIENT, "sub": PKI_CLIENT, "jti": crate::idp::uuid(), "nbf": now, "iat": now, "exp": now + 300});
    let jwt = crate::idp::sign(
        jsonwebtoken::Algorithm::RS256,
        &claims,
        "signing",
        "signing",
    );
    let answer = client
        .post_form(
            &aud,
            &format!("{}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}", form(PKI_CLIENT)),
        )
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()["access_token"].as_str().unwrap().to_string()
}

/// An answer of the plain decision listener.
#[derive(Debug)]
pub struct Plain {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Plain {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over plain TCP to `addr`.
pub async fn plain_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> Plain {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: authz\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Plain {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Asks the decision listener as nginx does: the token and `$ssl_client_escaped_cert`.
async fn ask(h: &Harness, token: Option<&str>, cert: Option<&str>) -> Plain {
    let mut headers = Vec::new();
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    if let Some(c) = cert {
        headers.extend(header_for("x-ssl-client-cert", c));
    }
    plain_request(authz_addr(h), "GET", "/authz/", &headers).await
}

#[track_caller]
fn assert_invalid_token(answer: &Plain) {
    assert_eq!(answer.status, 401, "{answer:?}");
    let challenge = answer.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "{challenge}"
    );
}

/// A resource server: answers every request with the headers nginx added from the decision.
async fn resource_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        let body = json!({"client_id": h("x-mtls-client-id"), "thumbprint": h("x-mtls-cert-thumbprint"), "path": req.uri().path()});
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body.to_string())),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// nginx terminating mTLS for the resource server, asking the gateway with `auth_request`:
/// the shipped examples/deploy/nginx/resource-auth-request.conf, only ports and paths changed.
fn nginx_in_front(
    dir: &std::path::Path,
    authz: SocketAddr,
    resource: SocketAddr,
) -> Option<(Supervised, u16)> {
    let conf = |port: u16| {
        shipped_nginx(
            "resource-auth-request.conf",
            dir,
            port,
            &[
                ("server 127.0.0.1:9191;", format!("server {authz};")),
                ("server 127.0.0.1:8000;", format!("server {resource};")),
            ],
        )
    };
    start_nginx(dir, conf)
}

/// GET `url` through nginx with certificate `cert` and bearer `token`.
async fn through_nginx(
    url: &str,
    cert: Option<&str>,
    token: Option<&str>,
) -> mtls_gateway::client::Answer {
    let mut request = http::Request::get(url)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    if let Some(t) = token {
        request.headers_mut().insert(
            "authorization",
            http::HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    client_for(cert, false).send(request).await.unwrap()
}

#[track_caller]
fn assert_nginx_refused(answer: &mtls_gateway::client::Answer, with_error: bool) {
    assert_eq!(
        answer.status,
        401,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let challenge = answer.header("www-authenticate").unwrap_or_default();
    if with_error {
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    } else {
        assert_eq!(challenge, "Bearer");
    }
}

#[tokio::test]
async fn nginx_auth_request_lets_a_token_through_only_with_the_certificate_that_obtained_it() {
    let h = bound_setup("", "").start().await;
    let (resource, _task) = resource_server().await;
    let Some((_nginx, port)) = nginx_in_front(&h.setup.dir.0, authz_addr(&h), resource) else {
        return;
    };
    let url = format!("https://localhost:{port}/api/orders");
    let token = token_via_gateway(&h, "client", PKI_CLIENT).await;
    let other = token_via_gateway(&h, "other", OTHER_CLIENT).await;

    // The certificate that obtained it: the resource sees the client.
    let answer = through_nginx(&url, Some("client"), Some(&token)).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let seen = answer.json();
    assert_eq!(seen["client_id"], PKI_CLIENT);
    assert_eq!(
        seen["thumbprint"],
        mtls_gateway::identity::x5t_s256(pki().cert_der("client").as_ref())
    );
    assert_eq!(seen["path"], "/api/orders");
    // Another registered client's certificate, each way round.
    assert_nginx_refused(
        &through_nginx(&url, Some("other"), Some(&token)).await,
        true,
    );
    assert_nginx_refused(
        &through_nginx(&url, Some("client"), Some(&other)).await,
        true,
    );
    // Another certificate of the same client (same subject DN, other CA) did not obtain it.
    assert_nginx_refused(
        &through_nginx(&url, Some("same-dn-ca2"), Some(&token)).await,
        true,
    );
    // No certificate; no token; an unknown token; a token from the IdP directly.
    assert_nginx_refused(&through_nginx(&url, None, Some(&token)).await, true);
    assert_nginx_refused(&through_nginx(&url, Some("client"), None).await, false);
    assert_nginx_refused(
        &through_nginx(&url, Some("client"), Some("not-a-token-of-ours")).await,
        true,
    );
    let direct = token_from_idp(&h).await;
    assert_nginx_refused(
        &through_nginx(&url, Some("client"), Some(&direct)).await,
        true,
    );

    let metrics = http_get(&h.admin_url("/metrics")).await.1;
    assert_metric(
        &metrics,
        "mtls_gateway_binding_checks_total{result=\"allow\"}",
        1.0,
    );
    assert_metric(
        &metrics,
        "mtls_gateway_binding_checks_total{result=\"mismatch\"}",
        3.0,
    );
    assert_metric(
        &metrics,
        "mtls_gateway_binding_checks_total{result=\"no_certificate\"}",
        1.0,
    );
    assert_metric(
        &metrics,
        "mtls_gateway_binding_checks_total{result=\"no_token\"}",
        1.0,
    );
    assert_metric(
        &metrics,
        "mtls_gateway_binding_checks_total{result=\"unknown_token\"}",
        2.0,
    );
    assert_metric(
        &metrics,
        "mtls_gateway_binding_records_written_total{result=\"success\"}",
        2.0,
    );
    assert_metric(&metrics, "mtls_gateway_binding_records", 2.0);
    // Nothing logged the tokens.
    let logs = logs();
    for t in [&token, &other, &direct] {
        assert!(!logs.contains(t.as_str()), "a token was logged");
    }
    h.stop().await;
}

#[tokio::test]
async fn registration_mode_through_nginx_allows_any_matching_certificate_of_the_tokens_client() {
    let h = bound_setup("mode = \"registration\"", "").start().await;
    let (resource, _task) = resource_server().await;
    let Some((_nginx, port)) = nginx_in_front(&h.setup.dir.0, authz_addr(&h), resource) else {
        return;
    };
    let url = format!("https://localhost:{port}/r");
    let direct = token_from_idp(&h).await;
    for cert in ["client", "same-dn-ca2"] {
        let answer = through_nginx(&url, Some(cert), Some(&direct)).await;
        assert_eq!(
            answer.status,
            200,
            "{cert}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.json()["client_id"], PKI_CLIENT);
    }
    // Certificates that fail the client's match: another client's, an untrusted CA's.
    assert_nginx_refused(
        &through_nginx(&url, Some("other"), Some(&direct)).await,
        true,
    );
    assert_nginx_refused(
        &through_nginx(&url, Some("untrusted"), Some(&direct)).await,
        true,
    );
    // A token whose signature does not verify.
    let mut forged: Vec<char> = direct.chars().collect();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    assert_nginx_refused(
        &through_nginx(&url, Some("client"), Some(&forged)).await,
        true,
    );
    h.stop().await;
}

#[tokio::test]
async fn envoy_ext_authz_requests_with_xfcc_are_allowed_and_denied() {
    let h = bound_setup("", "header = \"x-forwarded-client-cert\"")
        .start()
        .await;
    let token = token_via_gateway(&h, "client", PKI_CLIENT).await;
    // Envoy's HTTP ext_authz service: the original method and path under path_prefix, the
    // allowed headers (authorization, x-forwarded-client-cert set by SANITIZE_SET).
    let envoy = |cert: &str, token: &str| {
        let mut headers = vec![
            ("authorization", format!("Bearer {token}")),
            ("x-envoy-internal", "true".to_string()),
            ("x-forwarded-proto", "https".to_string()),
            ("content-length", "0".to_string()),
        ];
        headers.extend(header_for("x-forwarded-client-cert", cert));
        headers
    };
    let addr = authz_addr(&h);
    let allow = plain_request(
        addr,
        "POST",
        "/authz/api/orders?id=7",
        &envoy("client", &token),
    )
    .await;
    assert_eq!(allow.status, 200, "{allow:?}");
    assert_eq!(allow.header("x-mtls-client-id"), Some(PKI_CLIENT));
    assert_eq!(
        allow.header("x-mtls-cert-thumbprint").map(str::to_string),
        Some(mtls_gateway::identity::x5t_s256(
            pki().cert_der("client").as_ref()
        ))
    );
    let deny = plain_request(
        addr,
        "DELETE",
        "/authz/api/orders/7",
        &envoy("other", &token),
    )
    .await;
    assert_invalid_token(&deny);
    assert_eq!(
        serde_json::from_str::<Value>(&deny.body).unwrap()["error"],
        "invalid_token"
    );
    // The nginx header is not this listener's format: no certificate.
    let mut wrong = vec![("authorization", format!("Bearer {token}"))];
    wrong.extend(header_for("x-ssl-client-cert", "client"));
    assert_invalid_token(&plain_request(addr, "GET", "/authz/x", &wrong).await);
    // Hostile XFCC values are refused, never crash.
    for hostile in [
        "Cert=\"%ZZ\"",
        "Cert=",
        "Hash=00;Cert=\"-----BEGIN CERTIFICATE-----\"",
        &"A".repeat(40_000),
    ] {
        let headers = vec![
            ("authorization", format!("Bearer {token}")),
            ("x-forwarded-client-cert", hostile.to_string()),
        ];
        let answer = plain_request(addr, "GET", "/authz/", &headers).await;
        assert!(matches!(answer.status, 401 | 431), "{answer:?}");
    }
    // Outside /authz/: not found.
    assert_eq!(
        plain_request(addr, "GET", "/token", &envoy("client", &token))
            .await
            .status,
        404
    );
    h.stop().await;
}

#[tokio::test]
async fn a_peer_outside_authz_trusted_peers_gets_403() {
    let h = bound_setup("", "trusted_peers = [\"10.0.0.0/8\"]")
        .start()
        .await;
    let token = token_via_gateway(&h, "client", PKI_CLIENT).await;
    let answer = ask(&h, Some(&token), Some("client")).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["error"], "access_denied");
    h.stop().await;
}

async fn introspect(h: &Harness, cert: Option<&str>, token: &str) -> mtls_gateway::client::Answer {
    h.client(cert)
        .post_form(&h.url("/introspect"), &format!("token={token}"))
        .await
        .unwrap()
}

/// `x5t#S256` as openssl computes it: base64url of the SHA-256 of the DER, no padding.
fn openssl_thumbprint(dir: &std::path::Path, cert: &str) -> Option<String> {
    let mut cmd = openssl()?;
    let der = cmd
        .args(["x509", "-in"])
        .arg(dir.join(format!("{cert}.pem")))
        .args(["-outform", "DER"])
        .output()
        .unwrap();
    assert!(der.status.success());
    let mut dgst = openssl()?
        .args(["dgst", "-sha256", "-binary"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    dgst.stdin.take().unwrap().write_all(&der.stdout).unwrap();
    let digest = dgst.wait_with_output().unwrap().stdout;
    use base64::Engine as _;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
}

#[tokio::test]
async fn introspection_tells_allowed_callers_the_binding_and_nobody_else() {
    let h = bound_setup("", "").start().await;
    let token = token_via_gateway(&h, "client", PKI_CLIENT).await;
    let answer = introspect(&h, Some("escaped"), &token).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = answer.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], PKI_CLIENT);
    assert_eq!(body["token_type"], "Bearer");
    let exp = body["exp"].as_u64().unwrap();
    let now = crate::idp::now() as u64;
    assert!(exp > now + 3000 && exp <= now + 3600, "{exp}");
    if let Some(expected) = openssl_thumbprint(&h.setup.dir.0, "client") {
        assert_eq!(body["cnf"]["x5t#S256"], expected.as_str());
    }
    // Unknown tokens: exactly {"active":false}.
    let unknown = introspect(&h, Some("escaped"), "no-such-token").await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.body.as_ref(), br#"{"active":false}"#);
    // Callers not listed: the client itself, no certificate.
    for cert in [Some("client"), None] {
        let refused = introspect(&h, cert, &token).await;
        assert_error(&refused, 401, "invalid_client");
    }
    // A request without the token parameter.
    let missing = h
        .client(Some("escaped"))
        .post_form(&h.url("/introspect"), "token_type_hint=access_token")
        .await
        .unwrap();
    assert_error(&missing, 400, "invalid_request");
    let metrics = http_get(&h.admin_url("/metrics")).await.1;
    assert_metric(
        &metrics,
        "mtls_gateway_introspection_requests_total{result=\"active\"}",
        1.0,
    );
    assert_metric(
        &metrics,
        "mtls_gateway_introspection_requests_total{result=\"inactive\"}",
        1.0,
    );
    assert_metric(
        &metrics,
        "mtls_gateway_introspection_requests_total{result=\"unauthorized\"}",
        2.0,
    );
    assert!(!logs().contains(&token));
    h.stop().await;
}

#[tokio::test]
async fn two_certificates_of_one_caching_client_get_distinct_tokens_each_bound_to_its_own() {
    let h = bound_setup("", "")
        .only_clients(&pki_client_with("cache_tokens = true"))
        .client("[binding]\n[authz]\nlisten = \"127.0.0.1:0\"\n")
        .start()
        .await;
    let a = token_via_gateway(&h, "client", PKI_CLIENT).await;
    let b = token_via_gateway(&h, "same-dn-ca2", PKI_CLIENT).await;
    assert_ne!(a, b);
    // Served from the cache again, each to its own certificate.
    assert_eq!(token_via_gateway(&h, "client", PKI_CLIENT).await, a);
    assert_eq!(token_via_gateway(&h, "same-dn-ca2", PKI_CLIENT).await, b);
    assert_eq!(ask(&h, Some(&a), Some("client")).await.status, 200);
    assert_eq!(ask(&h, Some(&b), Some("same-dn-ca2")).await.status, 200);
    assert_invalid_token(&ask(&h, Some(&a), Some("same-dn-ca2")).await);
    assert_invalid_token(&ask(&h, Some(&b), Some("client")).await);
    let metrics = http_get(&h.admin_url("/metrics")).await.1;
    assert_metric(&metrics, "mtls_gateway_token_cache_hits_total", 2.0);
    h.stop().await;
}

#[tokio::test]
async fn an_expired_record_is_refused_and_inactive() {
    let upstream = FakeUpstream::start(Behaviour::Answer(
        200,
        vec![("content-type", "application/json")],
        r#"{"token_type":"Bearer","expires_in":1,"access_token":"short-lived.token.value"}"#.into(),
    ))
    .await;
    let h = bound_setup("", "")
        .upstream(&upstream.config("5s"))
        .start()
        .await;
    let token = token_via_gateway(&h, "client", PKI_CLIENT).await;
    assert_eq!(token, "short-lived.token.value");
    assert_eq!(ask(&h, Some(&token), Some("client")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = ask(&h, Some(&token), Some("client")).await;
    assert_invalid_token(&answer);
    assert!(answer.body.contains("expired"), "{answer:?}");
    let inactive = introspect(&h, Some("escaped"), &token).await;
    assert_eq!(inactive.body.as_ref(), br#"{"active":false}"#);
    h.stop().await;
}

#[tokio::test]
async fn unknown_tokens_fall_back_to_the_registration_when_configured() {
    let h = bound_setup("on_unknown_token = \"registration\"", "")
        .start()
        .await;
    let issued = token_via_gateway(&h, "client", PKI_CLIENT).await;
    let direct = token_from_idp(&h).await;
    // A token with a record keeps its certificate, even for another matching certificate.
    assert_eq!(ask(&h, Some(&issued), Some("client")).await.status, 200);
    assert_invalid_token(&ask(&h, Some(&issued), Some("same-dn-ca2")).await);
    // A token without one is decided by the registration.
    assert_eq!(
        ask(&h, Some(&direct), Some("same-dn-ca2")).await.status,
        200
    );
    assert_invalid_token(&ask(&h, Some(&direct), Some("other")).await);
    // Opaque garbage is unknown either way.
    assert_invalid_token(&ask(&h, Some("opaque"), Some("client")).await);
    h.stop().await;
}

#[tokio::test]
async fn metadata_advertises_bound_tokens_and_introspection() {
    let h = bound_setup("", "").start().await;
    let doc = h
        .client(None)
        .get(&h.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json();
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        doc["introspection_endpoint"],
        "https://gateway.test/introspect"
    );
    assert_eq!(
        doc["mtls_endpoint_aliases"]["introspection_endpoint"],
        "https://gateway.test/introspect"
    );
    h.stop().await;
    // Without [binding], neither.
    let plain = Setup::new().start().await;
    let doc = plain
        .client(None)
        .get(&plain.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json();
    assert!(doc
        .get("tls_client_certificate_bound_access_tokens")
        .is_none());
    assert!(doc.get("introspection_endpoint").is_none());
    plain.stop().await;
}

#[tokio::test]
async fn the_decision_listener_closes_connections_that_send_nothing() {
    let h = bound_setup("", "")
        .limits("header_read_timeout = \"1s\"\nidle_timeout = \"2s\"")
        .start()
        .await;
    let started = std::time::Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(authz_addr(&h))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A slow head is cut as well.
    let mut tcp = tokio::net::TcpStream::connect(authz_addr(&h))
        .await
        .unwrap();
    tcp.write_all(b"GET /authz/ HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection was held");
    h.stop().await;
}
