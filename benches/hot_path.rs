//! Micro-benchmarks of the per-request work: assertion signing (against a raw aws-lc-rs RSA
//! signature and a naive jsonwebtoken call that parses the key each time), identity extraction,
//! chain verification, registry lookup + match at 1, 100 and 10,000 clients, form parsing,
//! and one `[authz]` binding decision (memory store allow, SPEC §10).
//!   cargo bench --bench hot_path

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mtls_gateway::assertion::{Alg, Signer};
use mtls_gateway::dn::DistinguishedName;
use mtls_gateway::identity::ClientIdentity;
use mtls_gateway::pki;
use mtls_gateway::registry::{AuthMethod, Registration, Registry, Selector};
use mtls_gateway::trust::{ClientTrust, PeerCertificate};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const AUD: &str = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
const CLIENT: &str = "6f1c1a8e-1111-2222-3333-444455556666";

struct Fixture {
    signing: pki::Pem,
    ca: pki::Pem,
    client: pki::Pem,
}

fn fixture() -> Fixture {
    let ca = pki::Ca::new("bench CA").unwrap();
    let client = ca
        .issue(&pki::client_params(
            &[
                (rcgen::DnType::OrganizationName, "Contoso"),
                (rcgen::DnType::CommonName, "billing-legacy"),
            ],
            vec![rcgen::SanType::DnsName(
                "billing.contoso.internal".try_into().unwrap(),
            )],
        ))
        .unwrap();
    Fixture {
        signing: pki::signing_credential("bench signing").unwrap(),
        ca: ca.pem.clone(),
        client,
    }
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn signing(c: &mut Criterion, f: &Fixture) {
    let cert = der(&f.signing.cert);
    let key = PrivateKeyDer::from_pem_slice(f.signing.key.as_bytes()).unwrap();
    let rs256 = Signer::new(cert.clone(), &key, Alg::Rs256).unwrap();
    let ps256 = Signer::new(cert, &key, Alg::Ps256).unwrap();
    let raw = match &key {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).unwrap(),
        _ => unreachable!("rcgen writes PKCS#8"),
    };
    let rng = SystemRandom::new();
    let message = vec![b'a'; 600];
    let mut group = c.benchmark_group("assertion");
    group.bench_function("raw_rsa2048_pkcs1_sha256_signature", |b| {
        let mut sig = vec![0u8; raw.public_modulus_len()];
        b.iter(|| {
            raw.sign(&RSA_PKCS1_SHA256, &rng, black_box(&message), &mut sig)
                .unwrap()
        })
    });
    group.bench_function("rs256_signer", |b| {
        b.iter(|| {
            rs256
                .sign_at(black_box(CLIENT), AUD, 1_800_000_000)
                .unwrap()
        })
    });
    group.bench_function("ps256_signer", |b| {
        b.iter(|| {
            ps256
                .sign_at(black_box(CLIENT), AUD, 1_800_000_000)
                .unwrap()
        })
    });
    // ES256 with a P-256 key (generic upstreams), against RS256 above.
    let ec = mtls_gateway::pki::self_signed_client("bench es256").unwrap();
    let es256 = Signer::new(
        der(&ec.cert),
        &PrivateKeyDer::from_pem_slice(ec.key.as_bytes()).unwrap(),
        Alg::Es256,
    )
    .unwrap();
    group.bench_function("es256_signer", |b| {
        b.iter(|| {
            es256
                .sign_at(black_box(CLIENT), AUD, 1_800_000_000)
                .unwrap()
        })
    });
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(f.signing.key.as_bytes()).unwrap();
    let claims = serde_json::json!({"aud": AUD, "iss": CLIENT, "sub": CLIENT, "jti": "x", "nbf": 1, "exp": 2});
    group.bench_function("jsonwebtoken_rs256_key_parsed_per_call", |b| {
        b.iter(|| {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
                black_box(&claims),
                &encoding,
            )
            .unwrap()
        })
    });
    let reuse = mtls_gateway::assertion::AssertionCache::default();
    group.bench_function("rs256_reused", |b| {
        b.iter(|| {
            reuse
                .get(&rs256, black_box(CLIENT), AUD, 1_800_000_000)
                .unwrap()
        })
    });
    group.finish();
}

fn identity(c: &mut Criterion, f: &Fixture) {
    let leaf = der(&f.client.cert);
    let trust = ClientTrust::new(vec![der(&f.ca.cert)], vec![], vec![]).unwrap();
    let mut group = c.benchmark_group("certificate");
    group.bench_function("identity_from_der", |b| {
        b.iter(|| ClientIdentity::from_der(black_box(leaf.clone())).unwrap())
    });
    let now = mtls_gateway::trust::now_secs();
    // What a chain seen for the first time in a generation costs.
    group.bench_function("chain_verification", |b| {
        b.iter(|| trust.verify_chain(black_box(&leaf), &[], now).unwrap())
    });
    // A new connection with a chain the generation verified before (any earlier connection),
    // its leaf parsed again.
    group.bench_function("new_connection_chain_known_to_generation", |b| {
        b.iter(|| {
            let peer = PeerCertificate::new(black_box(std::slice::from_ref(&leaf))).unwrap();
            peer.trusted(&trust, 1, now).unwrap()
        })
    });
    // The same as the listener does it: the leaf too is known to the generation.
    group.bench_function("new_connection_leaf_and_chain_known_to_generation", |b| {
        b.iter(|| {
            let peer = trust
                .peer_certificate(black_box(std::slice::from_ref(&leaf)))
                .unwrap();
            peer.trusted(&trust, 1, now).unwrap()
        })
    });
    // Later requests of one connection within one configuration generation.
    let peer = PeerCertificate::new(std::slice::from_ref(&leaf)).unwrap();
    group.bench_function("cached_trust_verdict", |b| {
        b.iter(|| peer.trusted(black_box(&trust), 1, now).unwrap())
    });
    group.finish();
}

fn registry(c: &mut Criterion, f: &Fixture) {
    let cert = der(&f.signing.cert);
    let key = PrivateKeyDer::from_pem_slice(f.signing.key.as_bytes()).unwrap();
    let signer = Arc::new(Signer::new(cert, &key, Alg::Rs256).unwrap());
    let trust = ClientTrust::new(vec![der(&f.ca.cert)], vec![], vec![]).unwrap();
    let peer = PeerCertificate::new(&[der(&f.client.cert)]).unwrap();
    let now = mtls_gateway::trust::now_secs();
    let mut group = c.benchmark_group("registry_lookup_and_match");
    for n in [1usize, 100, 10_000] {
        let mut registry = Registry::default();
        for i in 0..n {
            let id = if i == n / 2 {
                CLIENT.to_string()
            } else {
                format!("client-{i:05}")
            };
            registry.insert(Registration {
                client_id: id,
                upstream: "contoso".into(),
                credential: signer.clone(),
                method: AuthMethod::Pki {
                    selector: Selector::SubjectDn(
                        DistinguishedName::parse_rfc4514("CN=billing-legacy,O=Contoso").unwrap(),
                    ),
                    pin: None,
                },
                grant_types: HashSet::from(["client_credentials".to_string()]),
                scopes: HashSet::new(),
                fingerprint: [0; 32],
                state: Arc::new(mtls_gateway::state::ClientState::new(None, false)),
            });
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &registry, |b, r| {
            b.iter(|| {
                r.get(black_box(CLIENT))
                    .unwrap()
                    .authenticate(&peer, &trust, 1, now)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn form(c: &mut Criterion) {
    let body = format!("grant_type=client_credentials&client_id={CLIENT}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default");
    c.bench_function("form_parse", |b| {
        b.iter(|| {
            mtls_gateway::form::parse_form(black_box(body.as_bytes()))
                .unwrap()
                .pairs
                .len()
        })
    });
    // Worst cases within max_body_bytes (64 KiB): 64 distinct names, then the 65th refused;
    // one 64 KiB value full of escapes; 64 KiB of separators.
    let mut many = String::new();
    let mut i = 0;
    while many.len() < 65_000 {
        many.push_str(&format!("p{i}=&"));
        i += 1;
    }
    let escapes = format!("grant_type=client_credentials&x={}", "%41".repeat(21_800));
    let separators = "&".repeat(65_536);
    let mut group = c.benchmark_group("form_parse_64KiB");
    for (name, body) in [
        ("many_parameters", many),
        ("one_escaped_value", escapes),
        ("separators", separators),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| mtls_gateway::form::parse_form(black_box(body.as_bytes())).is_ok())
        });
    }
    group.finish();
}

/// One decision as the `[authz]` listener makes it for nginx: the bearer token and
/// `$ssl_client_escaped_cert` read from the headers, the record looked up among 100,000, the
/// certificate compared. Target: ≤ 5 µs.
fn decision(c: &mut Criterion, f: &Fixture) {
    use mtls_gateway::authz::{by_record, inputs, Decision};
    use mtls_gateway::binding::{token_hash, Bindings, MemoryBindings, Record};
    use mtls_gateway::forwarded::HeaderFormat;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let leaf = mtls_gateway::identity::sha256(der(&f.client.cert).as_ref());
    let store = Bindings::Memory(MemoryBindings::new(200_000));
    // An Entra-sized token (about 1.5 KB).
    let token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}.{}",
        "e".repeat(1100),
        "s".repeat(342)
    );
    runtime.block_on(async {
        for i in 0..100_000u32 {
            let record = Record {
                cert_sha256: leaf,
                client_id: CLIENT.into(),
                exp: u64::MAX,
            };
            let key = if i == 50_000 {
                token_hash(&token)
            } else {
                token_hash(&format!("token-{i}"))
            };
            store.put(key, record, 0).await.unwrap();
        }
    });
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let escaped =
        percent_encoding::utf8_percent_encode(&f.client.cert, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    headers.insert(
        "x-ssl-client-cert",
        http::HeaderValue::from_str(&escaped).unwrap(),
    );
    c.bench_function("authz_decision_memory_allow", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let i = inputs(HeaderFormat::NginxEscaped, black_box(&headers)).unwrap();
                let d = by_record(&store, &i, 1).await;
                assert!(matches!(d, Some(Decision::Allow { .. })));
            })
        })
    });
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    decision(c, &f);
    signing(c, &f);
    identity(c, &f);
    registry(c, &f);
    form(c);
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
