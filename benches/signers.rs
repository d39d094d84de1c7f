//! Assertions per second per signer backend (SPEC §12), and what reuse saves:
//! - `local`: an RSA-2048 key (RS256) or a P-256 key (ES256) in the process (aws-lc-rs), on
//!   the blocking pool;
//! - `pkcs11`: the same key imported into a SoftHSM2 token (skipped without `softhsm2-util`);
//! - `key_vault`: the Key Vault + IMDS test double of `tests/support/keyvault.rs` on loopback
//!   HTTPS (its signatures come from `openssl pkeyutl`, so this measures the gateway's HTTP
//!   path plus a process spawn per signature, not Azure);
//! - `reused`: an assertion served from the per-client reuse cache.
//!   cargo bench --bench signers

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mtls_gateway::assertion::{Alg, AssertionCache, Signer};
use mtls_gateway::pki::Pem;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const CLIENT: &str = "6f1c1a8e-1111-2222-3333-444455556666";
const AUD: &str = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";

/// What the Key Vault double needs from the test support's PKI (it calls `super::pki()`).
pub struct Pki {
    pub ca: Pem,
    pub server: Pem,
}

impl Pki {
    pub fn get(&self, name: &str) -> &Pem {
        match name {
            "server" => &self.server,
            _ => &self.ca,
        }
    }
}

pub fn pki() -> &'static Pki {
    static PKI: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        let ca = mtls_gateway::pki::Ca::new("bench CA").unwrap();
        let server = ca
            .issue(
                &mtls_gateway::pki::server_params("localhost", &["localhost", "127.0.0.1"])
                    .unwrap(),
            )
            .unwrap();
        Pki {
            ca: ca.pem.clone(),
            server,
        }
    })
}

#[path = "../tests/support/keyvault.rs"]
#[allow(dead_code)]
mod keyvault;

fn cert_of(pem: &Pem) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.cert.as_bytes()).unwrap()
}

fn softhsm(dir: &std::path::Path, key_pem: &std::path::Path) -> Option<std::path::PathBuf> {
    let module = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())?;
    std::fs::create_dir_all(dir.join("tokens")).ok()?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .ok()?;
    // The module reads its configuration from the environment; this process is single-purpose.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let run = |args: &[&str]| {
        std::process::Command::new("softhsm2-util")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let key = key_pem.display().to_string();
    (run(&[
        "--init-token",
        "--free",
        "--label",
        "bench",
        "--pin",
        "bench-pin",
        "--so-pin",
        "bench-so",
    ]) && run(&[
        "--import",
        &key,
        "--token",
        "bench",
        "--label",
        "k",
        "--id",
        "01",
        "--pin",
        "bench-pin",
    ]))
    .then_some(module)
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir =
        std::env::temp_dir().join(format!("mtls-gateway-bench-signers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let signing = mtls_gateway::pki::signing_credential("bench signing").unwrap();
    let key_file = dir.join("signing-key.pem");
    std::fs::write(&key_file, &signing.key).unwrap();
    let cert = cert_of(&signing);
    let key = PrivateKeyDer::from_pem_slice(signing.key.as_bytes()).unwrap();
    let observe = |_: &'static str, _: Duration| {};

    let mut group = c.benchmark_group("assertion");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    let local = Arc::new(Signer::new(cert.clone(), &key, Alg::Rs256).unwrap());
    group.bench_function("local_rs256", |b| {
        b.iter(|| {
            runtime
                .block_on(local.sign_async(CLIENT, AUD, 1_800_000_000, &observe))
                .unwrap()
        })
    });
    let ec = mtls_gateway::pki::self_signed_client("bench es256").unwrap();
    let local_es = Arc::new(
        Signer::new(
            cert_of(&ec),
            &PrivateKeyDer::from_pem_slice(ec.key.as_bytes()).unwrap(),
            Alg::Es256,
        )
        .unwrap(),
    );
    group.bench_function("local_es256", |b| {
        b.iter(|| {
            runtime
                .block_on(local_es.sign_async(CLIENT, AUD, 1_800_000_000, &observe))
                .unwrap()
        })
    });
    let cache = AssertionCache::default();
    group.bench_function("reused", |b| {
        b.iter(|| {
            runtime
                .block_on(cache.get_async(&local, CLIENT, AUD, 1_800_000_000, &observe))
                .unwrap()
        })
    });
    if let Some(module) = softhsm(&dir, &key_file) {
        let hsm = mtls_gateway::pkcs11::Pkcs11Key::open(
            module.to_str().unwrap(),
            "bench",
            "k",
            "bench-pin".into(),
        )
        .unwrap();
        let signer = Arc::new(Signer::pkcs11(cert.clone(), hsm, Alg::Rs256).unwrap());
        group.bench_function("pkcs11_softhsm_rs256", |b| {
            b.iter(|| {
                runtime
                    .block_on(signer.sign_async(CLIENT, AUD, 1_800_000_000, &observe))
                    .unwrap()
            })
        });
    } else {
        eprintln!("softhsm2 not installed: pkcs11 skipped");
    }
    let vault = runtime.block_on(keyvault::VaultDouble::start(key_file.clone()));
    let settings = mtls_gateway::keyvault::VaultSettings {
        url: format!("https://localhost:{}", vault.vault.port()),
        key: "bench".into(),
        version: String::new(),
        identity: mtls_gateway::keyvault::VaultIdentity::Managed {
            endpoint: format!("http://{}/metadata/identity/oauth2/token", vault.imds),
        },
        ca: vec![cert_of(&pki().ca)],
        sign_timeout: Duration::from_secs(5),
    };
    let kv = Arc::new(
        Signer::vault(
            cert,
            mtls_gateway::keyvault::VaultKey::new(settings).unwrap(),
            Alg::Rs256,
        )
        .unwrap(),
    );
    group.bench_function("key_vault_double_rs256", |b| {
        b.iter(|| {
            runtime
                .block_on(kv.sign_async(CLIENT, AUD, 1_800_000_000, &observe))
                .unwrap()
        })
    });
    group.finish();
    drop(vault);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(signers, benches);
criterion_main!(signers);
