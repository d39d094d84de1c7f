//! SPEC §4/§5, trust decided per request: revocation and reloads reach open connections,
//! pinned clients get the serving configuration's CRLs and intermediates, the newest CRL of an
//! issuer counts, subject string types decode exactly, the scope allow-list holds for the v1
//! `resource`, case-variant parameter names are refused, and forms are bounded.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use crate::support::*;

/// One connection, kept open across requests (HTTP/1.1 keep-alive or HTTP/2).
enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    async fn open(h: &Harness, cert: &str, http2: bool) -> Self {
        let mut config = client_tls(Some(cert), &[&rustls::version::TLS13]);
        config.alpn_protocols = vec![if http2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        let tcp = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let io = TokioIo::new(tls);
        if http2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            Self::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Self::H1(send)
        }
    }

    async fn token(&mut self, client_id: &str) -> (u16, Value) {
        let body = form(client_id);
        let request = http::Request::post("https://localhost/token")
            .header("host", "localhost")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = match self {
            Self::H1(s) => s.send_request(request).await,
            Self::H2(s) => s.send_request(request).await,
        }
        .expect("the connection stays open");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn is_closed(&self) -> bool {
        match self {
            Self::H1(s) => s.is_closed(),
            Self::H2(s) => s.is_closed(),
        }
    }
}

async fn revocation_reaches_an_open_connection(http2: bool) {
    let setup = Setup::new().server("crl = [\"crl-current.pem\"]");
    std::fs::copy(
        setup.dir.path("crl-empty.pem"),
        setup.dir.path("crl-current.pem"),
    )
    .unwrap();
    let h = setup.start().await;
    let mut conn = Conn::open(&h, "revoked", http2).await;
    // The CRL in force does not list it yet.
    assert_eq!(conn.token(PKI_CLIENT).await.0, 200);
    assert_eq!(conn.token(PKI_CLIENT).await.0, 200);
    std::fs::copy(
        h.setup.dir.path("crl-v2.pem"),
        h.setup.dir.path("crl-current.pem"),
    )
    .unwrap();
    h.running.as_ref().unwrap().reload().unwrap();
    // The same connection's next request is decided by the new configuration.
    let (status, body) = conn.token(PKI_CLIENT).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_crl_loaded_by_reload_revokes_on_an_open_http1_connection() {
    revocation_reaches_an_open_connection(false).await;
}

#[tokio::test]
async fn a_crl_loaded_by_reload_revokes_on_an_open_http2_connection() {
    revocation_reaches_an_open_connection(true).await;
}

#[tokio::test]
async fn removing_the_ca_by_reload_refuses_an_open_connection() {
    let setup = Setup::new();
    let h = setup.start().await;
    let mut conn = Conn::open(&h, "client", true).await;
    assert_eq!(conn.token(PKI_CLIENT).await.0, 200);
    let toml = h.setup.toml().replace(
        "client_ca = [\"ca1.pem\", \"ca2.pem\"]",
        "client_ca = [\"ca2.pem\"]",
    );
    h.setup.dir.write("gateway.toml", &toml);
    h.running.as_ref().unwrap().reload().unwrap();
    let (status, body) = conn.token(PKI_CLIENT).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    h.stop().await;
}

fn pinned_client(pin: &str) -> String {
    pki_client_with(&format!("tls_client_auth_ca = \"{pin}\""))
}

#[tokio::test]
async fn a_pinned_clients_revoked_certificate_is_refused() {
    let h = Setup::new()
        .server("crl = [\"crl.pem\"]")
        .only_clients(&pinned_client("ca1.pem"))
        .start()
        .await;
    let answer = h.token(Some("revoked"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    assert!(
        answer.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{}",
        answer.json()
    );
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn a_pinned_client_chains_through_the_configured_intermediates() {
    let h = Setup::new()
        .server("client_intermediates = [\"intermediate.pem\"]")
        .only_clients(&pinned_client("ca1.pem"))
        .start()
        .await;
    // The leaf alone: the intermediate comes from the serving configuration.
    let answer = h
        .token(Some("via-intermediate-leaf"), &form(PKI_CLIENT))
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    h.stop().await;
}

#[tokio::test]
async fn a_pin_file_with_several_cas_pins_to_any_of_them() {
    let setup = Setup::new();
    let ca2 = std::fs::read_to_string(setup.dir.path("ca2.pem")).unwrap();
    let ca1 = std::fs::read_to_string(setup.dir.path("ca1.pem")).unwrap();
    setup.dir.write("pins.pem", &format!("{ca2}{ca1}"));
    let h = setup.only_clients(&pinned_client("pins.pem")).start().await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    assert_eq!(
        h.token(Some("same-dn-ca2"), &form(PKI_CLIENT)).await.status,
        200
    );
    assert_error(
        &h.token(Some("untrusted"), &form(PKI_CLIENT)).await,
        401,
        "invalid_client",
    );
    h.stop().await;
}

/// Records the CA names a server's CertificateRequest offers, then presents `cert`.
#[derive(Debug)]
struct RecordHints {
    seen: std::sync::Mutex<Vec<Vec<u8>>>,
    key: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::client::ResolvesClientCert for RecordHints {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        *self.seen.lock().unwrap() = root_hint_subjects.iter().map(|h| h.to_vec()).collect();
        Some(self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn pinned_cas_are_offered_in_the_certificate_request() {
    let setup = Setup::new();
    // ca3 is no client_ca, only a pin.
    let h = setup
        .client(&pki_client(
            "8f1c1a8e-1111-2222-3333-444455556666",
            "tls_client_auth_san_dns = \"x.test\"\ntls_client_auth_ca = \"ca3.pem\"",
        ))
        .start()
        .await;
    let pem = pki().get("client");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let resolver = Arc::new(RecordHints {
        seen: Default::default(),
        key: Arc::new(rustls::sign::CertifiedKey::new(chain, signing)),
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki().cert_der("ca1")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(resolver.clone());
    let tcp = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let _tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let subject_of = |name: &str| {
        let der = pki().cert_der(name);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        cert.subject().as_raw().to_vec()
    };
    let seen = resolver.seen.lock().unwrap().clone();
    for ca in ["ca1", "ca2", "ca3"] {
        assert!(seen.contains(&subject_of(ca)), "{ca} is not offered");
    }
    h.stop().await;
}

async fn revoked_with_crls(crls: &str) -> (u16, Value, String) {
    let h = Setup::new()
        .server(&format!("crl = [{crls}]"))
        .start()
        .await;
    let answer = h.token(Some("revoked"), &form(PKI_CLIENT)).await;
    let config = mtls_gateway::config::load(&h.setup.dir.path("gateway.toml")).unwrap();
    let warnings = config.warnings.join("\n");
    h.stop().await;
    (answer.status.as_u16(), answer.json(), warnings)
}

#[tokio::test]
async fn of_two_crls_of_one_issuer_the_newest_counts_in_either_order() {
    for crls in [
        "\"crl-empty.pem\", \"crl-v2.pem\"",
        "\"crl-v2.pem\", \"crl-empty.pem\"",
    ] {
        let (status, body, warnings) = revoked_with_crls(crls).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{crls}: {body}"
        );
        assert!(
            warnings.contains("several CRLs have the same issuer")
                && warnings.contains("using ")
                && warnings.contains("crl-v2.pem")
                && warnings.contains("ignoring ")
                && warnings.contains("crl-empty.pem"),
            "{warnings}"
        );
    }
}

/// Rewrites the CommonName of `name`'s certificate as a TeletexString of the UTF-16 bytes of
/// its own text and signs it again with CA One: the attack of a certificate whose CN is
/// another client's name in another string type.
fn teletex_utf16_cn(name: &str, ca_key_pem: &str) -> String {
    let der = pki().cert_der(name).as_ref().to_vec();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let tbs = cert.tbs_certificate.as_ref().to_vec();
    // The CN's UTF8String TLV inside the TBS, replaced by a T61String twice as long.
    let old: Vec<u8> = [&[0x0c, cn.len() as u8][..], cn.as_bytes()].concat();
    let utf16: Vec<u8> = cn.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let new: Vec<u8> = [&[0x14, utf16.len() as u8][..], &utf16[..]].concat();
    let at = tbs.windows(old.len()).position(|w| w == old).unwrap();
    let grow = new.len() - old.len();
    let mut patched = tbs[..at].to_vec();
    patched.extend_from_slice(&new);
    patched.extend_from_slice(&tbs[at + old.len()..]);
    // Lengths of the enclosing SET, SEQUENCE (AVA), SEQUENCE (RDN sequence) and the TBS grow.
    fix_lengths(&mut patched, at, grow);
    let key = PrivateKeyDer::from_pem_slice(ca_key_pem.as_bytes()).unwrap();
    let signer = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        key.secret_der(),
    )
    .unwrap();
    let sig = signer
        .sign(&aws_lc_rs::rand::SystemRandom::new(), &patched)
        .unwrap();
    let alg = tlv_at(
        &der,
        outer_content_start(&der) + tlv_len(&der, outer_content_start(&der)),
    );
    let mut bits = vec![0u8];
    bits.extend_from_slice(sig.as_ref());
    let mut body = patched;
    body.extend_from_slice(alg);
    body.extend_from_slice(&encode(0x03, &bits));
    let cert = encode(0x30, &body);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &cert);
    format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
}

fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// (header length, content length) of the TLV at `at`.
fn header(der: &[u8], at: usize) -> (usize, usize) {
    match der[at + 1] {
        l if l < 0x80 => (2, l as usize),
        0x81 => (3, der[at + 2] as usize),
        0x82 => (4, ((der[at + 2] as usize) << 8) | der[at + 3] as usize),
        other => panic!("length form {other:#x}"),
    }
}

fn tlv_len(der: &[u8], at: usize) -> usize {
    let (h, l) = header(der, at);
    h + l
}

fn tlv_at(der: &[u8], at: usize) -> &[u8] {
    &der[at..at + tlv_len(der, at)]
}

fn outer_content_start(der: &[u8]) -> usize {
    header(der, 0).0
}

/// Re-encodes every constructed TLV of `tbs` that contains offset `at`, `grow` bytes longer.
fn fix_lengths(tbs: &mut Vec<u8>, at: usize, grow: usize) {
    fn walk(buf: &[u8], start: usize, end: usize, at: usize, grow: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = start;
        while i < end {
            let tag = buf[i];
            let (h, l) = header(buf, i);
            // Lengths are still the old ones: the content of the patched TLV ends `grow` later.
            let contains = i < at && at < i + h + l;
            let l_now = if contains { l + grow } else { l };
            let content = if tag & 0x20 != 0 && contains {
                walk(buf, i + h, i + h + l_now, at, grow)
            } else {
                buf[i + h..i + h + l_now].to_vec()
            };
            out.extend_from_slice(&encode(tag, &content));
            i += h + l_now;
        }
        out
    }
    let len = tbs.len();
    *tbs = walk(tbs, 0, len, at, grow);
}

#[tokio::test]
async fn a_teletex_cn_holding_utf16_of_a_registered_name_does_not_match() {
    let setup = Setup::new();
    let ca_key = std::fs::read_to_string(setup.dir.path("ca1-key.pem")).unwrap();
    let forged = teletex_utf16_cn("other", &ca_key);
    // The client registered for the forged name's text.
    let other_dn = "CN=other-app,O=Contoso,C=US";
    let key = std::fs::read_to_string(setup.dir.path("other-key.pem")).unwrap();
    setup.dir.write("forged.pem", &forged);
    setup.dir.write("forged-key.pem", &key);
    let id = "9a2b3c4d-1111-2222-3333-444455556666";
    let h = setup
        .client(&pki_client(
            id,
            &format!("tls_client_auth_subject_dn = \"{other_dn}\""),
        ))
        .start()
        .await;
    // The CA really signed it: the chain verifies, so only the string type stands between.
    let identity = mtls_gateway::identity::ClientIdentity::from_der(
        CertificateDer::from_pem_slice(forged.as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(
        identity.subject_display.starts_with("CN=#14"),
        "{}",
        identity.subject_display
    );
    let client = mtls_gateway::client::MtlsClient::new(
        &[pki().cert_der("ca1")],
        Some((
            CertificateDer::pem_slice_iter(forged.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )),
        false,
    )
    .unwrap();
    let answer = client.post_form(&h.url("/token"), &form(id)).await.unwrap();
    assert_error(&answer, 401, "invalid_client");
    assert!(
        answer.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{}",
        answer.json()
    );
    // The genuine certificate still authenticates.
    assert_eq!(h.token(Some("other"), &form(id)).await.status, 200);
    h.stop().await;
}

fn scoped_client(scopes: &str) -> String {
    pki_client_with(&format!("scopes = [{scopes}]"))
}

#[tokio::test]
async fn the_scope_allow_list_holds_for_the_v1_resource() {
    let h = Setup::new()
        .only_clients(&scoped_client("\"api://billing/.default\""))
        .start()
        .await;
    let c = h.client(Some("client"));
    let v1 = h.url("/contoso.onmicrosoft.com/oauth2/token");
    let post = |body: String| {
        let c = &c;
        let v1 = v1.clone();
        async move { c.post_form(&v1, &body).await.unwrap() }
    };
    let base = format!("grant_type=client_credentials&client_id={PKI_CLIENT}");
    // Outside the list: refused before anything is signed or forwarded.
    let outside = post(format!("{base}&resource=https%3A%2F%2Fgraph.microsoft.com")).await;
    assert_error(&outside, 400, "invalid_scope");
    // Neither scope nor resource: the request must name what it asks for.
    assert_error(&post(base.clone()).await, 400, "invalid_scope");
    // R is allowed when R/.default is listed.
    let allowed = post(format!("{base}&resource=api%3A%2F%2Fbilling")).await;
    assert_eq!(
        allowed.status,
        200,
        "{}",
        String::from_utf8_lossy(&allowed.body)
    );
    // A listed scope beside a resource outside the list is still refused.
    let mixed = post(format!(
        "{base}&scope=api%3A%2F%2Fbilling%2F.default&resource=https%3A%2F%2Fgraph.microsoft.com"
    ))
    .await;
    assert_error(&mixed, 400, "invalid_scope");
    h.stop().await;
}

#[tokio::test]
async fn case_variant_parameter_names_are_refused() {
    let h = Setup::new().start().await;
    for extra in [
        "&Scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
        "&Client_Assertion=eyJ.eyJ.sig",
        "&CLIENT_ID=someone-else",
        "&Resource=https%3A%2F%2Fgraph.microsoft.com",
        "&x=1&X=2",
    ] {
        let answer = h
            .token(Some("client"), &format!("{}{extra}", form(PKI_CLIENT)))
            .await;
        assert_error(&answer, 400, "invalid_request");
        assert!(
            answer.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("case"),
            "{extra}: {}",
            answer.json()
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parameter_bodies_in_flight_get_400_and_do_not_hold_a_legitimate_request() {
    let h = Setup::new().limits("max_body_bytes = 65536").start().await;
    // ~11,000 distinct parameters in 64 KiB, as in the report.
    let mut hostile = String::new();
    let mut i = 0;
    while hostile.len() < 65_000 {
        hostile.push_str(&format!("p{i}=&"));
        i += 1;
    }
    let url = h.url("/token");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let url = url.clone();
        let body = hostile.clone();
        tasks.push(tokio::spawn(async move {
            client_for(None, false)
                .post_form(&url, &body)
                .await
                .unwrap()
        }));
    }
    let legitimate = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_eq!(legitimate.status, 200);
    for t in tasks {
        let answer = t.await.unwrap();
        assert_error(&answer, 400, "invalid_request");
        assert!(
            answer.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("more than 64 parameters"),
            "{}",
            answer.json()
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn a_forwarded_chain_element_that_is_not_a_certificate_gets_400() {
    let mut setup = Setup::new();
    setup.clients.push_str(
        "\n[front_proxy]\nheader = \"client-cert\"\ntrusted_peers = [\"127.0.0.1/32\"]\nplain_listen = \"127.0.0.1:0\"\n",
    );
    let h = setup.start().await;
    let plain = h.running.as_ref().unwrap().plain_addr.unwrap();
    let mut headers = crate::front_proxy::header_for("client-cert", "client");
    headers.push((
        "client-cert-chain",
        ":bm90IGEgY2VydGlmaWNhdGU=:".to_string(),
    ));
    let (status, body) = crate::front_proxy::plain_token(plain, &headers, &form(PKI_CLIENT)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_fresh_gateway_exposes_every_spec_metric_family() {
    let h = Setup::new().start().await;
    let (_, text) = http_get(&h.admin_url("/metrics")).await;
    for family in [
        "mtls_gateway_requests_total",
        "mtls_gateway_request_duration_seconds",
        "mtls_gateway_upstream_requests_total",
        "mtls_gateway_upstream_duration_seconds",
        "mtls_gateway_tls_handshakes_total",
        "mtls_gateway_client_auth_total",
        "mtls_gateway_certificate_expiry_timestamp_seconds",
        "mtls_gateway_config_reloads_total",
        "mtls_gateway_config_last_reload_success",
        "mtls_gateway_open_connections",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(family) && !l.starts_with('#')),
            "{family} has no sample:\n{text}"
        );
    }
    for sample in [
        "mtls_gateway_config_reloads_total{result=\"success\"}",
        "mtls_gateway_config_reloads_total{result=\"failure\"}",
        "mtls_gateway_upstream_requests_total{upstream=\"dev\",status=\"error\"}",
        "mtls_gateway_upstream_duration_seconds_count{upstream=\"dev\"}",
    ] {
        assert_metric(&text, sample, 0.0);
    }
    h.stop().await;
}

#[tokio::test]
async fn an_http2_connection_is_closed_gracefully_at_max_connection_age() {
    let h = Setup::new()
        .limits("max_connection_age = \"1s\"")
        .start()
        .await;
    let mut conn = Conn::open(&h, "client", true).await;
    assert_eq!(conn.token(PKI_CLIENT).await.0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !conn.is_closed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection outlived max_connection_age"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    h.stop().await;
}
