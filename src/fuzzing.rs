//! The body of every fuzz target, in one place, so that three runners check the same
//! properties: cargo-fuzz for long runs (`fuzz/`, `scripts/fuzz.sh`), bounded property tests
//! in `cargo test`, and a replay of every saved input under `fuzz/regressions/<target>/`.
//!
//! Each body takes arbitrary bytes and panics only when a property fails: parsers of outside
//! input never panic, and what they accept means what it says.

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::dn::{to_rfc4514, DistinguishedName};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, as `scripts/fuzz.sh` and the tests run them.
pub const TARGETS: &[(&str, Target)] = &[
    ("form", form),
    ("dn", dn),
    ("forwarded", forwarded),
    ("identity", identity),
    ("config", config),
    ("assertion", assertion),
    ("crl", crl),
    ("upstream_answer", upstream_answer),
    ("authz", authz),
    ("jwt", jwt),
];

/// The token endpoint's form parser: what it accepts has at most 64 parameters, no name
/// twice, and no two names that differ only in ASCII case.
pub fn form(data: &[u8]) {
    if let Ok(form) = crate::form::parse_form(data) {
        assert!(form.pairs.len() <= crate::form::MAX_PARAMETERS);
        let mut names: Vec<String> = form
            .pairs
            .iter()
            .map(|(n, _, _)| n.to_ascii_lowercase())
            .collect();
        let before = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            before,
            names.len(),
            "a repeated or case-variant name was accepted"
        );
        for (_, _, raw) in &form.pairs {
            assert!(!raw.is_empty() && !raw.contains(&b'&'));
        }
    }
}

/// RFC 4514 parsing and printing: what is printed parses back to the same DN, whatever the
/// value (Unicode white space and a leading `#` included); the OpenSSL slash form's RFC 4514
/// spelling means the same DN.
pub fn dn(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((dn, rfc4514)) = DistinguishedName::parse_openssl_slash(text) {
        assert_eq!(
            DistinguishedName::parse_rfc4514(&rfc4514).as_ref().ok(),
            Some(&dn),
            "{rfc4514:?}"
        );
    }
    if let Ok(dn) = DistinguishedName::parse_rfc4514(text) {
        let _ = dn.looks_reversed();
        let _ = dn.is_reverse_of(&dn);
    }
    // The input as one attribute value, and split at NULs into several RDNs.
    let values: Vec<&str> = text.split('\0').collect();
    let rdns: Vec<Vec<(&str, &str)>> = values.iter().map(|v| vec![("2.5.4.3", *v)]).collect();
    let printed = to_rfc4514(rdns.clone());
    let direct = DistinguishedName::from_der_order(rdns);
    match DistinguishedName::parse_rfc4514(&printed) {
        Ok(reparsed) => assert_eq!(reparsed, direct, "{printed:?}"),
        Err(e) => panic!("{printed:?} does not parse back: {e}"),
    }
}

/// Forwarded-certificate headers in every format: never panic; every element of an accepted
/// chain after the leaf is a certificate (the leaf is refused later, with its reason).
pub fn forwarded(data: &[u8]) {
    use crate::forwarded::{read, HeaderFormat};
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    for name in [
        "client-cert",
        "x-forwarded-client-cert",
        "x-ssl-client-cert",
        "x-forwarded-tls-client-cert",
        "ssl-client-cert",
    ] {
        let Some(format) = HeaderFormat::parse(name) else {
            panic!("{name} is a documented header format");
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(format.header(), value.clone());
        headers.insert("client-cert-chain", value.clone());
        if let Ok(Some(chain)) = read(format, &headers) {
            for cert in chain.iter().skip(1) {
                assert!(
                    x509_parser::parse_x509_certificate(cert.as_ref()).is_ok(),
                    "{name}: a chain element that is not a certificate was accepted"
                );
            }
        }
    }
    let _ = crate::forwarded::Cidr::parse(&String::from_utf8_lossy(data));
}

/// Certificate identity extraction and chain verification from arbitrary DER: never panic;
/// the subject as printed parses back to the subject as compared.
pub fn identity(data: &[u8]) {
    let der = CertificateDer::from(data.to_vec());
    if let Ok(id) = crate::identity::ClientIdentity::from_der(der.clone()) {
        let _ = id.valid_at(0);
        if let Ok(reparsed) = DistinguishedName::parse_rfc4514(&id.subject_display) {
            // An opaque value never parses as text, so a DN that parsed has none.
            assert_eq!(reparsed, id.subject, "{:?}", id.subject_display);
        }
        if let Ok(peer) = crate::trust::PeerCertificate::new(&[der]) {
            if let Ok(trust) = crate::trust::ClientTrust::new(vec![], vec![], vec![]) {
                let _ = peer.trusted(&trust, 1, 0);
            }
        }
    }
}

struct NoEnv;

impl crate::config::Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// Configuration parsing and validation from arbitrary text: never panics.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("/nonexistent/mtls-gateway-fuzz/gateway.toml");
    let _ = crate::config::load_str(text, path, &NoEnv);
}

/// The embedded IdP's client-assertion checks on arbitrary JWT text: never panic.
pub fn assertion(data: &[u8]) {
    use crate::idp::validate::{verify_assertion, RegisteredKey};
    let Ok(jwt) = std::str::from_utf8(data) else {
        return;
    };
    let keys = [RegisteredKey {
        x5t: "a".into(),
        x5t_s256: "b".into(),
        public_key: vec![0x30, 0x00],
        ec: false,
        kid: Some("k".into()),
    }];
    let _ = verify_assertion(jwt, "client", "https://idp/token", &keys, 1_800_000_000);
    // The other profiles' rules, kid required or not.
    for profile in [
        crate::config::IdpProfile::Okta,
        crate::config::IdpProfile::Keycloak,
    ] {
        let rules = crate::idp::profile::Rules::of(profile, "https://idp", "realm");
        let _ = crate::idp::profile::verify(jwt, "client", &rules, &keys, 1_800_000_000);
    }
    let _ = verify_assertion(jwt, "client", "https://idp/token", &keys, i64::MAX);
    let _ = verify_assertion(jwt, "client", "https://idp/token", &keys, i64::MIN);
}

/// CRL files (PEM or DER) as `server.crl` reads them: never panic.
pub fn crl(data: &[u8]) {
    if let Ok(crls) = crate::config::parse_crls(data) {
        let _ = crate::trust::ClientTrust::new(vec![], vec![], crls);
    }
    let der = CertificateRevocationListDer::from(data.to_vec());
    let _ = crate::trust::ClientTrust::new(vec![], vec![], vec![der]);
}

/// An upstream's token answer as the token cache reads it: never panic; a cached answer's
/// lifetime only ever goes down.
pub fn upstream_answer(data: &[u8]) {
    let Some(entry) = crate::cache::Entry::from_answer(data, None, 1_000) else {
        return;
    };
    let later = entry.body_at(1_010);
    let value: serde_json::Value = match serde_json::from_slice(&later) {
        Ok(v) => v,
        Err(e) => panic!("a cached answer is served as invalid JSON: {e}"),
    };
    assert!(value.get("access_token").is_some());
}

/// The decision listener's inputs (SPEC §10): `Authorization`, then after the first newline
/// the certificate header, in every format. Never panics; an accepted token is one non-empty
/// word; a record bound to the presented leaf allows, one bound to another certificate
/// never does.
pub fn authz(data: &[u8]) {
    use crate::binding::{token_hash, Bindings, MemoryBindings, Record};
    use crate::forwarded::HeaderFormat;
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    let Some(runtime) = RUNTIME
        .get_or_init(|| tokio::runtime::Builder::new_current_thread().build().ok())
        .as_ref()
    else {
        return;
    };
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (auth, cert) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let (Ok(auth), Ok(cert)) = (
        http::HeaderValue::from_bytes(auth),
        http::HeaderValue::from_bytes(cert),
    ) else {
        return;
    };
    for name in [
        "client-cert",
        "x-forwarded-client-cert",
        "x-ssl-client-cert",
        "x-forwarded-tls-client-cert",
        "ssl-client-cert",
    ] {
        let Some(format) = HeaderFormat::parse(name) else {
            panic!("{name} is a documented header format");
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, auth.clone());
        headers.insert(format.header(), cert.clone());
        let Ok(inputs) = crate::authz::inputs(format, &headers) else {
            continue;
        };
        assert!(!inputs.token.is_empty() && !inputs.token.contains(' '));
        let Some(leaf) = inputs.chain.first() else {
            panic!("{name}: an empty chain was accepted");
        };
        let leaf = crate::identity::sha256(leaf.as_ref());
        let store = Bindings::Memory(MemoryBindings::new(4));
        for (bound, allowed) in [(leaf, true), ([0u8; 32], false)] {
            let record = Record {
                cert_sha256: bound,
                client_id: "c".into(),
                exp: u64::MAX,
            };
            let decision = runtime.block_on(async {
                let _ = store.put(token_hash(&inputs.token), record, 0).await;
                crate::authz::by_record(&store, &inputs, 1).await
            });
            let allow = matches!(decision, Some(crate::authz::Decision::Allow { .. }));
            assert_eq!(allow, allowed, "{name}: {decision:?}");
        }
    }
}

/// A fixed key set (RFC 7515's example public keys): no fuzz input may verify under it, since
/// that would be a forged signature.
const FUZZ_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},{"kty":"RSA","kid":"r","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#;

/// JWTs and key sets as registration mode reads them: never panic; nothing the fuzzer makes
/// verifies under the fixed keys.
pub fn jwt(data: &[u8]) {
    use crate::jwt::{Jwt, KeySet};
    let fixed = match KeySet::from_json(FUZZ_JWKS.as_bytes()) {
        Ok(k) => k,
        Err(e) => panic!("the fixed key set is valid: {e}"),
    };
    let _ = KeySet::from_json(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = Jwt::parse(text) {
        assert_eq!(text.split('.').count(), 3);
        let _ = (token.kid(), token.str_claim("azp"), token.time_claim("exp"));
        assert!(
            fixed.verify(&token).is_err(),
            "an input verified under the fixed keys"
        );
    }
}
