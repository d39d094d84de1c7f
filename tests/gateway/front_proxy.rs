//! SPEC §3 `[front_proxy]`: certificates forwarded by a trusted proxy, every header format,
//! and everything a hostile peer might send instead.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn der_b64(name: &str) -> String {
    STANDARD.encode(pki().cert_der(name).as_ref())
}

fn leaf_pem(name: &str) -> String {
    // The first certificate of the file (a chain file starts with its leaf).
    let pem = &pki().get(name).cert;
    let end = pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    pem[..end].to_string()
}

/// The header value each format would carry for test certificate `name`.
pub fn header_for(format: &str, name: &str) -> Vec<(&'static str, String)> {
    match format {
        "client-cert" => vec![("client-cert", format!(":{}:", der_b64(name)))],
        "x-forwarded-client-cert" => {
            let hash: String = mtls_gateway::identity::sha256(pki().cert_der(name).as_ref())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let cert = utf8_percent_encode(&leaf_pem(name), NON_ALPHANUMERIC).to_string();
            let chain = utf8_percent_encode(&pki().get(name).cert, NON_ALPHANUMERIC).to_string();
            vec![(
                "x-forwarded-client-cert",
                format!("By=spiffe://cluster/ns/x/sa/edge;Hash=0000,By=spiffe://cluster/ns/x/sa/gw;Hash={hash};Cert=\"{cert}\";Chain=\"{chain}\";Subject=\"CN=x,O=\\\"q\\\"\";URI=spiffe://c"),
            )]
        }
        "x-ssl-client-cert" => vec![(
            "x-ssl-client-cert",
            utf8_percent_encode(&leaf_pem(name), NON_ALPHANUMERIC).to_string(),
        )],
        // ingress-nginx's auth-tls-pass-certificate-to-upstream: the same value, its own name.
        "ssl-client-cert" => vec![(
            "ssl-client-cert",
            utf8_percent_encode(&leaf_pem(name), NON_ALPHANUMERIC).to_string(),
        )],
        "x-forwarded-tls-client-cert" => vec![(
            "x-forwarded-tls-client-cert",
            utf8_percent_encode(&der_b64(name), NON_ALPHANUMERIC).to_string(),
        )],
        other => panic!("{other}"),
    }
}

fn front_proxy(header: &str, peers: &str, extra: &str) -> String {
    format!("[front_proxy]\nheader = \"{header}\"\ntrusted_peers = [{peers}]\nplain_listen = \"127.0.0.1:0\"\n{extra}\n")
}

async fn start(front: String) -> Harness {
    let mut setup = Setup::new();
    setup.clients.push_str(&format!("\n{front}"));
    setup.start().await
}

/// A plain HTTP/1.1 token request with extra headers; returns status and JSON body.
pub async fn plain_token(
    addr: std::net::SocketAddr,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /token HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut out),
    )
    .await;
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or_default();
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("\r\ncache-control: no-store") && head.contains("\r\npragma: no-cache"),
        "{head}"
    );
    // Bodies here are small and not chunked.
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn plain_addr(h: &Harness) -> std::net::SocketAddr {
    h.running.as_ref().unwrap().plain_addr.unwrap()
}

#[tokio::test]
async fn every_header_format_from_a_trusted_peer_gets_a_token() {
    for format in [
        "client-cert",
        "x-forwarded-client-cert",
        "x-ssl-client-cert",
        "x-forwarded-tls-client-cert",
        "ssl-client-cert",
    ] {
        let h = start(front_proxy(format, "\"127.0.0.1/32\"", "")).await;
        let (status, body) = plain_token(
            plain_addr(&h),
            &header_for(format, "client"),
            &form(PKI_CLIENT),
        )
        .await;
        assert_eq!(status, 200, "{format}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        // Self-signed clients work through a proxy too.
        let (status, body) = plain_token(
            plain_addr(&h),
            &header_for(format, "selfsigned"),
            &form(SELF_SIGNED_CLIENT),
        )
        .await;
        assert_eq!(status, 200, "{format} self-signed: {body}");
        // Another client's certificate is refused.
        let (status, body) = plain_token(
            plain_addr(&h),
            &header_for(format, "other"),
            &form(PKI_CLIENT),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{format}"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn a_forwarded_chain_is_verified_like_a_handshake_chain() {
    let h = start(front_proxy("client-cert", "\"127.0.0.1\"", "")).await;
    let addr = plain_addr(&h);
    let (status, body) = plain_token(
        addr,
        &header_for("client-cert", "untrusted"),
        &form(PKI_CLIENT),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not issued by a trusted CA"),
        "{body}"
    );
    let (status, body) = plain_token(
        addr,
        &header_for("client-cert", "expired"),
        &form(PKI_CLIENT),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    // Leaf only: the issuer is unknown unless the intermediate comes in Client-Cert-Chain ...
    let leaf_only = header_for("client-cert", "via-intermediate-leaf");
    assert_eq!(
        plain_token(addr, &leaf_only, &form(PKI_CLIENT)).await.0,
        401
    );
    let mut with_chain = leaf_only.clone();
    with_chain.push((
        "client-cert-chain",
        format!(":{}:", der_b64("intermediate")),
    ));
    assert_eq!(
        plain_token(addr, &with_chain, &form(PKI_CLIENT)).await.0,
        200
    );
    h.stop().await;
    // ... or client_intermediates completes it.
    let mut setup = Setup::new().server("client_intermediates = [\"intermediate.pem\"]");
    setup
        .clients
        .push_str(&front_proxy("client-cert", "\"127.0.0.1\"", ""));
    let h = setup.start().await;
    assert_eq!(
        plain_token(plain_addr(&h), &leaf_only, &form(PKI_CLIENT))
            .await
            .0,
        200
    );
    h.stop().await;
}

#[tokio::test]
async fn the_plain_listener_refuses_untrusted_peers_with_403() {
    let h = start(front_proxy("client-cert", "\"10.0.0.0/8\"", "")).await;
    let (status, body) = plain_token(
        plain_addr(&h),
        &header_for("client-cert", "client"),
        &form(PKI_CLIENT),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].is_string() && body["error_description"].is_string(),
        "{body}"
    );
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_forwarded_certificates_total{result=\"denied_peer\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_requests_total{route=\"token\",outcome=\"access_denied\"}"
        ),
        Some(1.0)
    );
    h.stop().await;
}

#[tokio::test]
async fn without_a_header_a_plain_request_has_no_certificate() {
    let h = start(front_proxy("x-ssl-client-cert", "\"127.0.0.1/32\"", "")).await;
    let (status, body) = plain_token(plain_addr(&h), &[], &form(PKI_CLIENT)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // nginx sends an empty value when the client had no certificate.
    let (status, _) = plain_token(
        plain_addr(&h),
        &[("x-ssl-client-cert", String::new())],
        &form(PKI_CLIENT),
    )
    .await;
    assert_eq!(status, 401);
    h.stop().await;
}

#[tokio::test]
async fn on_the_mtls_listener_a_header_counts_only_from_an_authenticated_trusted_proxy() {
    let proxy = mtls_gateway::identity::x5t_s256(pki().cert_der("other").as_ref());
    let h = start(front_proxy(
        "client-cert",
        "\"127.0.0.1/32\"",
        &format!("trusted_proxy_certs = [\"{proxy}\"]"),
    ))
    .await;
    let url = h.url("/token");
    let send = |cert: Option<&'static str>, header: Vec<(&'static str, String)>| {
        let url = url.clone();
        async move { post_with(cert, &url, &form(PKI_CLIENT), header).await }
    };
    // The proxy ("other") forwards the client's certificate: accepted.
    assert_eq!(
        send(Some("other"), header_for("client-cert", "client"))
            .await
            .status,
        200
    );
    // No handshake certificate: the header is ignored, so there is no certificate at all.
    let spoofed = send(None, header_for("client-cert", "client")).await;
    assert_error(&spoofed, 401, "invalid_client");
    assert!(spoofed.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("no client certificate"));
    // A client that is not the proxy: its own certificate counts, the header is ignored.
    assert_eq!(
        send(Some("selfsigned"), header_for("client-cert", "client"))
            .await
            .status,
        401
    );
    // And the client itself, without a header, still authenticates directly.
    assert_eq!(send(Some("client"), vec![]).await.status, 200);
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_forwarded_certificates_total{result=\"ignored\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_forwarded_certificates_total{result=\"accepted\"}"
        ),
        Some(1.0)
    );
    h.stop().await;
}

#[tokio::test]
async fn without_trusted_proxy_certs_the_mtls_listener_never_honours_a_header() {
    let h = start(front_proxy("client-cert", "\"127.0.0.1/32\"", "")).await;
    let answer = post_with(
        Some("other"),
        &h.url("/token"),
        &form(PKI_CLIENT),
        header_for("client-cert", "client"),
    )
    .await;
    assert_error(&answer, 401, "invalid_client");
    h.stop().await;
}

#[tokio::test]
async fn hostile_headers_get_400_and_never_a_panic() {
    let cases: Vec<(&str, Vec<(&'static str, String)>)> = vec![
        (
            "client-cert",
            vec![("client-cert", "not a byte sequence".into())],
        ),
        ("client-cert", vec![("client-cert", ":!!!:".into())]),
        (
            "client-cert",
            vec![(
                "client-cert",
                format!(":{}:, :{}:", der_b64("client"), der_b64("other")),
            )],
        ),
        (
            "client-cert",
            vec![
                ("client-cert", format!(":{}:", der_b64("client"))),
                ("client-cert", format!(":{}:", der_b64("client"))),
            ],
        ),
        (
            "client-cert",
            vec![
                ("client-cert", format!(":{}:", der_b64("client"))),
                ("client-cert-chain", "garbage".into()),
            ],
        ),
        (
            "client-cert",
            vec![("client-cert", format!(":{}:", "A".repeat(40_000)))],
        ),
        (
            "x-forwarded-client-cert",
            vec![("x-forwarded-client-cert", "Cert=\"unterminated".into())],
        ),
        (
            "x-forwarded-client-cert",
            vec![("x-forwarded-client-cert", "By=spiffe://a;URI=x".into())],
        ),
        (
            "x-forwarded-client-cert",
            vec![("x-forwarded-client-cert", "Cert=%zz".into())],
        ),
        ("x-forwarded-client-cert", {
            let mut v = header_for("x-forwarded-client-cert", "client");
            v[0].1 = v[0].1.replace("Hash=", "Hash=00");
            v
        }),
        ("x-forwarded-client-cert", {
            let v = header_for("x-forwarded-client-cert", "client");
            vec![v[0].clone(), v[0].clone()]
        }),
        (
            "x-ssl-client-cert",
            vec![(
                "x-ssl-client-cert",
                "-----BEGIN%20CERTIFICATE-----%0Agarbage".into(),
            )],
        ),
        (
            "x-ssl-client-cert",
            vec![("x-ssl-client-cert", "%E0%A4%A".into())],
        ),
        (
            "x-ssl-client-cert",
            vec![(
                "x-ssl-client-cert",
                utf8_percent_encode(
                    &format!("{}{}", leaf_pem("client"), leaf_pem("other")),
                    NON_ALPHANUMERIC,
                )
                .to_string(),
            )],
        ),
        (
            "x-forwarded-tls-client-cert",
            vec![("x-forwarded-tls-client-cert", "***".into())],
        ),
    ];
    for (format, headers) in cases {
        let h = start(front_proxy(format, "\"127.0.0.1/32\"", "")).await;
        let (status, body) = plain_token(plain_addr(&h), &headers, &form(PKI_CLIENT)).await;
        assert!(
            (status == 400 && body["error"] == "invalid_request")
                || (status == 401 && body["error"] == "invalid_client"),
            "{format} {:?}: {status} {body}",
            headers
                .iter()
                .map(|(k, v)| (k, v.chars().take(60).collect::<String>()))
                .collect::<Vec<_>>()
        );
        // The gateway is still there.
        assert_eq!(
            plain_token(
                plain_addr(&h),
                &header_for(format, "client"),
                &form(PKI_CLIENT)
            )
            .await
            .0,
            200
        );
        h.stop().await;
    }
}

#[test]
fn front_proxy_config_is_validated() {
    let mut setup = Setup::new();
    setup.clients.push_str("[front_proxy]\nheader = \"x-client-cert\"\ntrusted_peers = [\"10.0.0.0/40\"]\ntrusted_proxy_certs = [\"abc\"]\n");
    let text = mtls_gateway::config::load(&setup.write())
        .unwrap_err()
        .to_string();
    assert!(text.contains("front_proxy.header"), "{text}");
    assert!(text.contains("front_proxy.trusted_peers[0]"), "{text}");
    assert!(
        text.contains("front_proxy.trusted_proxy_certs[0]"),
        "{text}"
    );
    let mut setup = Setup::new();
    setup
        .clients
        .push_str("[front_proxy]\nheader = \"client-cert\"\n");
    let text = mtls_gateway::config::load(&setup.write())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("front_proxy.trusted_peers: required"),
        "{text}"
    );
}

#[tokio::test]
async fn only_token_requests_read_the_forwarded_certificate() {
    let h = start(front_proxy("client-cert", "\"127.0.0.1/32\"", "")).await;
    let mut tcp = tokio::net::TcpStream::connect(plain_addr(&h))
        .await
        .unwrap();
    let header = header_for("client-cert", "client").remove(0).1;
    tcp.write_all(format!("GET /.well-known/openid-configuration HTTP/1.1\r\nhost: g\r\nclient-cert: {header}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_forwarded_certificates_total{result=\"accepted\"}"
        ),
        Some(0.0),
        "a metadata request does not read the forwarded certificate"
    );
    assert_eq!(
        plain_token(
            plain_addr(&h),
            &header_for("client-cert", "client"),
            &form(PKI_CLIENT)
        )
        .await
        .0,
        200
    );
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &text,
            "mtls_gateway_forwarded_certificates_total{result=\"accepted\"}"
        ),
        Some(1.0)
    );
    h.stop().await;
}

#[tokio::test]
async fn removing_front_proxy_by_reload_closes_the_plain_listener_to_everyone() {
    let h = start(front_proxy("client-cert", "\"127.0.0.1/32\"", "")).await;
    let addr = plain_addr(&h);
    assert_eq!(
        plain_token(
            addr,
            &header_for("client-cert", "client"),
            &form(PKI_CLIENT)
        )
        .await
        .0,
        200
    );
    // The same configuration without [front_proxy]; the listener stays bound until restart.
    h.setup.dir.write("gateway.toml", &Setup::new().toml());
    h.running.as_ref().unwrap().reload().unwrap();
    let (status, _) = plain_token(
        addr,
        &header_for("client-cert", "client"),
        &form(PKI_CLIENT),
    )
    .await;
    assert_eq!(status, 403);
    h.stop().await;
}
