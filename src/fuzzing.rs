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
        rsa_public_key: vec![0x30, 0x00],
    }];
    let _ = verify_assertion(jwt, "client", "https://idp/token", &keys, 1_800_000_000);
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
