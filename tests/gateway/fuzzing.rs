//! The fuzz targets' properties (`mtls_gateway::fuzzing`) on every run of the suite: a bounded
//! number of generated inputs per target, with the seed printed on failure (set
//! `FUZZ_SEED=<hex>` to replay it), and every saved input under `fuzz/regressions/`.

use std::path::Path;

use mtls_gateway::fuzzing::TARGETS;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::support::pki;

/// Inputs per target: the whole property run stays within a few seconds on two cores.
const CASES: u32 = 2000;

/// Pieces that make a target's parser take its interesting branches, joined at random.
fn tokens(target: &str) -> Vec<Vec<u8>> {
    let text: &[&str] = match target {
        "dn" => &[
            "CN=",
            "O=",
            "2.5.4.3=",
            "OID.2.5.4.10=",
            ",",
            "+",
            "#",
            " ",
            "\u{2000}",
            "\u{3000}",
            "\u{a0}",
            "\\",
            "\\ ",
            "\\#",
            "\\2c",
            "\\e2\\80\\80",
            "a",
            "Z",
            "0c03616263",
            "1e02",
            "/",
            "/C=US",
            "\0",
            "é",
            "\n",
            "\t",
            "=",
            "\"",
            ";",
            "<>",
        ],
        "form" => &[
            "grant_type",
            "client_id",
            "scope",
            "Scope",
            "CLIENT_ID",
            "resource",
            "=",
            "&",
            "%",
            "%41",
            "%zz",
            "%ff",
            "%C3%A9",
            "+",
            "a",
            "b",
            "client_assertion",
        ],
        "forwarded" => &[
            "-----BEGIN CERTIFICATE-----",
            "-----END CERTIFICATE-----",
            "%0A",
            "%2B",
            ":",
            ",",
            ";",
            "\"",
            "Cert=",
            "Chain=",
            "Hash=",
            "By=",
            "MIIB",
            "AAAA",
            "=",
            " ",
            "*",
            "\\",
        ],
        "config" => &[
            "[server]\n",
            "listen = ",
            "\"127.0.0.1:0\"",
            "[[clients]]\n",
            "client_id = \"x\"\n",
            "[limits]\n",
            "rate_limit = \"5/s\"\n",
            "timeout = \"1s\"\n",
            "[upstreams.a]\n",
            "type = \"entra\"\n",
            "tenant = \"t\"\n",
            "=",
            "\"",
            "[",
            "]",
            "\n",
            "1e999",
            "-1",
        ],
        "assertion" => &[
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9",
            "eyJ4NXQiOiJhIn0",
            "eyJleHAiOjF9",
            "eyJuYmYiOjEsImV4cCI6OTIyMzM3MjAzNjg1NDc3NTgwN30",
            ".",
            "AAAA",
            "_-",
            "=",
            "",
        ],
        "crl" => &[
            "-----BEGIN X509 CRL-----\n",
            "-----END X509 CRL-----\n",
            "MIIB",
            "AAAA",
            "\n",
            "\x30\x7f",
            "\x30\x03\x02\x01\x01",
        ],
        "upstream_answer" => &[
            "{",
            "}",
            "\"access_token\":\"x\"",
            "\"expires_in\":",
            "3600",
            "\"3600\"",
            "1e400",
            "-1",
            "18446744073709551615",
            "\"ext_expires_in\":",
            ",",
            "null",
            "[]",
            "3599.5",
        ],
        "authz" => &[
            "Bearer ",
            "bearer ",
            "Basic ",
            "eyJhbGciOiJSUzI1NiJ9",
            ".",
            "~+/",
            "==",
            " ",
            "\n",
            "-----BEGIN CERTIFICATE-----",
            "-----END CERTIFICATE-----",
            "%0A",
            "Cert=\"",
            "\"",
            ";",
            ",",
            ":",
            "MIIB",
            "AAAA",
        ],
        "jwt" => &[
            "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ",
            "eyJhbGciOiJSUzI1NiIsImtpZCI6InIifQ",
            "eyJhbGciOiJub25lIn0",
            "eyJhenAiOiJjIiwiZXhwIjoxfQ",
            ".",
            "AAAA",
            "_-",
            "{\"keys\":[",
            "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}",
            "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
            "]}",
            ",",
        ],
        _ => &[],
    };
    text.iter().map(|t| t.as_bytes().to_vec()).collect()
}

/// Random bytes, joined tokens, and (for certificate parsers) a real certificate with bytes
/// changed.
fn inputs(target: &str) -> BoxedStrategy<Vec<u8>> {
    let bytes = prop::collection::vec(any::<u8>(), 0..256).boxed();
    let tokens = tokens(target);
    let joined = if tokens.is_empty() {
        bytes.clone()
    } else {
        prop::collection::vec(prop::sample::select(tokens), 0..24)
            .prop_map(|parts| parts.concat())
            .boxed()
    };
    let cert = pki().cert_der("client").as_ref().to_vec();
    let len = cert.len();
    let mutated = prop::collection::vec((0..len, any::<u8>()), 1..8)
        .prop_map(move |edits| {
            let mut c = cert.clone();
            for (i, b) in edits {
                c[i] = b;
            }
            c
        })
        .boxed();
    // A good decision request (token, then the nginx-format header), bytes changed.
    let mut request = b"Bearer abc.def\n".to_vec();
    request.extend(
        percent_encoding::utf8_percent_encode(
            &pki().get("client").cert,
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string()
        .into_bytes(),
    );
    let rlen = request.len();
    let request_mutated = prop::collection::vec((0..rlen, any::<u8>()), 0..3)
        .prop_map(move |edits| {
            let mut r = request.clone();
            for (i, b) in edits {
                r[i] = b;
            }
            r
        })
        .boxed();
    match target {
        "identity" => prop_oneof![bytes, mutated].boxed(),
        "authz" => prop_oneof![1 => bytes, 2 => joined, 2 => request_mutated].boxed(),
        _ => prop_oneof![1 => bytes, 3 => joined].boxed(),
    }
}

fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    match std::env::var("FUZZ_SEED") {
        Ok(hex) => {
            for (i, b) in seed.iter_mut().enumerate() {
                *b = hex
                    .get(2 * i..2 * i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .unwrap_or(0);
            }
        }
        Err(_) => aws_lc_rs::rand::fill(&mut seed).expect("the system RNG works"),
    }
    seed
}

#[test]
fn every_fuzz_target_holds_its_properties_on_generated_inputs() {
    let seed = seed();
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let mut failures = Vec::new();
    for (name, body) in TARGETS {
        let config = Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
        let mut runner = TestRunner::new_with_rng(config, rng);
        if let Err(e) = runner.run(&inputs(name), |data| {
            body(&data);
            Ok(())
        }) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "replay with FUZZ_SEED={hex}:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_saved_regression_input_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for (name, body) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{name}: {} fails again", path.display());
            replayed += 1;
        }
    }
    // The DN crash of issue 13 is the first; a missing folder would make this pass vacuously.
    assert!(
        replayed >= 1,
        "no regression input under {}",
        root.display()
    );
}

#[test]
fn the_first_dn_regression_is_a_unicode_space_before_a_hash() {
    let crash = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/dn/crash-65864190a70b1b406fabd59dd25505eeafe1c23d"),
    )
    .unwrap();
    let text = std::str::from_utf8(&crash).unwrap();
    let printed = mtls_gateway::dn::to_rfc4514(vec![vec![("2.5.4.3", text)]]);
    assert_eq!(
        mtls_gateway::dn::DistinguishedName::parse_rfc4514(&printed).ok(),
        Some(mtls_gateway::dn::DistinguishedName::from_der_order(vec![
            vec![("2.5.4.3", text)]
        ]))
    );
}
