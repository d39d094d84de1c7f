//! `[credentials.NAME]`: where the signing key of an app-registration credential lives
//! (SPEC §3, §12): a key file, PKCS#12, a PKCS#11 token, or a federated token file.

use super::raw::RawCredential;
use super::validate::Cx;
use super::*;

impl Cx {
    pub(super) fn credential(
        &mut self,
        name: &str,
        c: RawCredential,
        env: &dyn Env,
    ) -> Option<Signer> {
        let key = format!("credentials.{name}");
        let explicit = match c.alg.as_deref() {
            None => None,
            Some(s) => match Alg::parse(s) {
                Some(a) => Some(a),
                None => {
                    self.problem(
                        &format!("{key}.alg"),
                        format!("\"{s}\" is not \"RS256\", \"PS256\" or \"ES256\""),
                    );
                    return None;
                }
            },
        };
        let alg = explicit.unwrap_or(Alg::Rs256);
        if let Some(kid) = &c.kid {
            if kid.is_empty() || kid.chars().any(char::is_control) {
                self.problem(
                    &format!("{key}.kid"),
                    "must be non-empty, without control characters",
                );
                return None;
            }
        }
        let (kid, x5c) = (c.kid.clone(), c.x5c.unwrap_or(false));
        let (signer, chain) = if c.key_vault.is_some() {
            self.vault_credential(&key, c, alg, env)
        } else if c.pkcs11.is_some() {
            self.pkcs11_credential(&key, c, alg, env)
        } else if c.federated_token_file.is_some() {
            if kid.is_some() || x5c {
                self.problem(&key, "kid and x5c are header options of a signed assertion; a federated token file is not signed here");
                return None;
            }
            return self.federated_credential(&key, c);
        } else {
            self.file_credential(&key, c, explicit, env)
        }?;
        match signer.with_header(kid, chain, x5c) {
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(&key, e);
                None
            }
        }
    }

    /// A key file (cert and key) or a PKCS#12 file; without `alg`, the key decides: RS256
    /// for RSA, ES256 for P-256. With the certificate file's chain (PKCS#12: the leaf).
    fn file_credential(
        &mut self,
        key: &str,
        c: RawCredential,
        explicit: Option<Alg>,
        env: &dyn Env,
    ) -> Option<(Signer, Vec<CertificateDer<'static>>)> {
        let mut chain = Vec::new();
        let (cert, private_key) = match (c.cert, c.key, c.pkcs12) {
            (Some(cert), Some(k), None) => {
                let certs = self.certs(&format!("{key}.cert"), &cert);
                let pk = self.private_key(&format!("{key}.key"), &k);
                chain.clone_from(&certs);
                let Some(leaf) = certs.into_iter().next() else {
                    if self.path(&cert).exists() {
                        self.problem(&format!("{key}.cert"), "holds no certificate");
                    }
                    return None;
                };
                (leaf, pk?)
            }
            (None, None, Some(p12)) => {
                let Some(var) = c.pkcs12_password_env else {
                    self.problem(
                        &format!("{key}.pkcs12_password_env"),
                        "required with pkcs12: the environment variable that holds the password",
                    );
                    return None;
                };
                let Some(password) = env.var(&var) else {
                    self.problem(
                        &format!("{key}.pkcs12_password_env"),
                        format!("environment variable {var} is not set"),
                    );
                    return None;
                };
                self.check_private(&format!("{key}.pkcs12"), &p12);
                let bytes = self.read(&format!("{key}.pkcs12"), &p12)?;
                match read_pkcs12(&bytes, &password) {
                    Ok(pair) => pair,
                    Err(e) => {
                        self.problem(&format!("{key}.pkcs12"), e);
                        return None;
                    }
                }
            }
            _ => {
                self.problem(
                    key,
                    "give either cert and key, or pkcs12 (with pkcs12_password_env)",
                );
                return None;
            }
        };
        let alg = explicit.unwrap_or_else(|| {
            match crate::jwk::PublicJwk::from_certificate(cert.as_ref()) {
                Ok(crate::jwk::PublicJwk::Ec { .. }) => Alg::Es256,
                _ => Alg::Rs256,
            }
        });
        match Signer::new(cert, &private_key, alg) {
            Ok(s) => Some((s, chain)),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    fn pkcs11_credential(
        &mut self,
        key: &str,
        c: RawCredential,
        alg: Alg,
        env: &dyn Env,
    ) -> Option<(Signer, Vec<CertificateDer<'static>>)> {
        let p = c.pkcs11.as_ref()?;
        let Some(cert_path) = c
            .cert
            .as_ref()
            .filter(|_| c.key.is_none() && c.pkcs12.is_none() && c.federated_token_file.is_none())
        else {
            self.problem(key, "pkcs11 needs cert (the certificate registered in Entra) and replaces key, pkcs12 and federated_token_file");
            return None;
        };
        let chain = self.certs(&format!("{key}.cert"), cert_path);
        let leaf = chain.first().cloned()?;
        let Some(pin) = env.var(&p.pin_env).filter(|v| !v.is_empty()) else {
            self.problem(
                &format!("{key}.pkcs11.pin_env"),
                format!("the variable {} is not set", p.pin_env),
            );
            return None;
        };
        let opened = crate::pkcs11::Pkcs11Key::open(&p.module, &p.token_label, &p.key_label, pin)
            .map_err(crate::assertion::SignerError::Remote)
            .and_then(|hsm| Signer::pkcs11(leaf, hsm, alg));
        match opened {
            Ok(s) => Some((s, chain)),
            Err(e) => {
                self.problem(&format!("{key}.pkcs11"), e);
                None
            }
        }
    }

    fn federated_credential(&mut self, key: &str, c: RawCredential) -> Option<Signer> {
        let file = c.federated_token_file.as_ref()?;
        if c.cert.is_some() || c.key.is_some() || c.pkcs12.is_some() {
            self.problem(
                key,
                "federated_token_file replaces cert and key (or pkcs12): give one of them",
            );
            return None;
        }
        match Signer::federated(self.path(file)) {
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(&format!("{key}.federated_token_file"), e);
                None
            }
        }
    }

    fn vault_credential(
        &mut self,
        key: &str,
        c: RawCredential,
        alg: Alg,
        env: &dyn Env,
    ) -> Option<(Signer, Vec<CertificateDer<'static>>)> {
        use crate::keyvault::{VaultIdentity, VaultKey, VaultSettings, DEFAULT_IMDS};
        let v = c.key_vault.as_ref()?;
        let vkey = format!("{key}.key_vault");
        let Some(cert_path) = c.cert.as_ref().filter(|_| {
            c.key.is_none()
                && c.pkcs12.is_none()
                && c.pkcs11.is_none()
                && c.federated_token_file.is_none()
        }) else {
            self.problem(key, "key_vault needs cert (the certificate registered in Entra) and replaces key, pkcs12, pkcs11 and federated_token_file");
            return None;
        };
        let chain = self.certs(&format!("{key}.cert"), cert_path);
        let leaf = chain.first().cloned()?;
        let identity = match v.identity.as_deref().unwrap_or("managed") {
            "managed" => VaultIdentity::Managed {
                endpoint: v
                    .identity_endpoint
                    .clone()
                    .unwrap_or_else(|| DEFAULT_IMDS.to_string()),
            },
            "workload" => {
                let mut var = |name: &str| {
                    let value = env.var(name).filter(|v| !v.is_empty());
                    if value.is_none() {
                        self.problem(&format!("{vkey}.identity"), format!("workload identity needs the variable {name} (set by the AKS workload identity webhook)"));
                    }
                    value
                };
                let (client_id, tenant_id, file, host) = (
                    var("AZURE_CLIENT_ID"),
                    var("AZURE_TENANT_ID"),
                    var("AZURE_FEDERATED_TOKEN_FILE"),
                    var("AZURE_AUTHORITY_HOST"),
                );
                VaultIdentity::Workload {
                    client_id: client_id?,
                    tenant_id: tenant_id?,
                    token_file: file?.into(),
                    authority_host: host
                        .map(|h| if h.ends_with('/') { h } else { format!("{h}/") })?,
                }
            }
            other => {
                self.problem(
                    &format!("{vkey}.identity"),
                    format!("\"{other}\" is not \"managed\" or \"workload\""),
                );
                return None;
            }
        };
        let mut ca = Vec::new();
        for (i, p) in v.ca.iter().enumerate() {
            ca.extend(self.certs(&format!("{vkey}.ca[{i}]"), p));
        }
        let settings = VaultSettings {
            url: v.url.trim_end_matches('/').to_string(),
            key: v.key.clone(),
            version: v.version.clone(),
            identity,
            ca,
            sign_timeout: self.duration(
                &format!("{vkey}.sign_timeout"),
                v.sign_timeout.as_deref(),
                Duration::from_secs(2),
            ),
        };
        let made = VaultKey::new(settings)
            .map_err(crate::assertion::SignerError::Remote)
            .and_then(|vault| Signer::vault(leaf, vault, alg));
        match made {
            Ok(s) => Some((s, chain)),
            Err(e) => {
                self.problem(&vkey, e);
                None
            }
        }
    }
}
