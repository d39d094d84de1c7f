//! Validation of `[[clients]]`: the registration of each client, one function per concern.

use super::raw::*;
use super::*;

impl Cx {
    pub(super) fn client(
        &mut self,
        key: &str,
        c: RawClient,
        upstreams: &BTreeMap<String, UpstreamSpec>,
        credentials: &BTreeMap<String, Arc<Signer>>,
        default_rate: Option<&str>,
    ) -> Option<Registration> {
        // What identifies this registration across reloads, with its upstream's spec.
        let identity_text = format!("{c:?}\n{:?}", upstreams.get(&c.upstream));
        let mut ok = true;
        let credential = self.client_references(key, &c, upstreams, credentials, &mut ok);
        let rate_limit = self.client_rate_limit(key, &c, default_rate, &mut ok);
        if c.cache_tokens
            && c.grant_types
                .as_ref()
                .is_some_and(|g| !g.iter().any(|g| g == "client_credentials"))
        {
            self.warnings.push(format!(
                "{key}.cache_tokens: only client_credentials tokens are cached, and this client may not use that grant"
            ));
        }
        let method = match c.token_endpoint_auth_method.as_str() {
            "tls_client_auth" => self.pki_method(key, &c, &mut ok)?,
            "self_signed_tls_client_auth" => self.self_signed_method(key, &c, &mut ok)?,
            other => {
                self.problem(
                    &format!("{key}.token_endpoint_auth_method"),
                    format!(
                        "\"{other}\" is not \"tls_client_auth\" or \"self_signed_tls_client_auth\""
                    ),
                );
                return None;
            }
        };
        let grant_types = c
            .grant_types
            .unwrap_or_else(|| vec!["client_credentials".to_string()]);
        if grant_types.is_empty() {
            self.problem(
                &format!("{key}.grant_types"),
                "must allow at least one grant type",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        let credential = credential?;
        let fingerprint = fingerprint(&identity_text, rate_limit.as_ref(), &credential, &method);
        let state = crate::state::ClientState {
            rate_limit,
            assertions: Default::default(),
            token_cache: c.cache_tokens.then(crate::cache::TokenCache::default),
            upstream_slots: crate::state::upstream_slots(),
        };
        Some(Registration {
            client_id: c.client_id,
            upstream: c.upstream,
            credential,
            method,
            grant_types: grant_types.into_iter().collect(),
            scopes: c.scopes.into_iter().collect(),
            fingerprint,
            state: Arc::new(state),
        })
    }

    /// The client_id is usable and the upstream and credential it names exist.
    fn client_references(
        &mut self,
        key: &str,
        c: &RawClient,
        upstreams: &BTreeMap<String, UpstreamSpec>,
        credentials: &BTreeMap<String, Arc<Signer>>,
        ok: &mut bool,
    ) -> Option<Arc<Signer>> {
        if c.client_id.trim().is_empty() || c.client_id.chars().any(char::is_control) {
            self.problem(
                key,
                "client_id must be a non-empty string without control characters",
            );
            *ok = false;
        }
        match upstreams.get(&c.upstream) {
            None => {
                self.problem(
                    &format!("{key}.upstream"),
                    format!("no [upstreams.{}] is defined", c.upstream),
                );
                *ok = false;
            }
            Some(u) if matches!(u.kind, UpstreamKind::Entra { .. }) && !is_guid(&c.client_id) => {
                self.warnings.push(format!(
                    "{key}.client_id: \"{}\" is not a GUID; Entra knows an app registration by its Application (client) ID, a GUID such as 6f1c1a8e-1111-2222-3333-444455556666, and answers AADSTS700016 for anything else",
                    c.client_id
                ));
            }
            Some(_) => {}
        }
        let credential = credentials.get(&c.credential).cloned();
        if credential.is_none() {
            self.problem(
                &format!("{key}.credential"),
                format!("no usable [credentials.{}] is defined", c.credential),
            );
            *ok = false;
        }
        credential
    }

    /// A client's own rate_limit overrides the default; "" turns it off for this client.
    fn client_rate_limit(
        &mut self,
        key: &str,
        c: &RawClient,
        default_rate: Option<&str>,
        ok: &mut bool,
    ) -> Option<crate::state::RateLimit> {
        match c.rate_limit.as_deref().or(default_rate) {
            Some(r) if !r.trim().is_empty() => match crate::state::RateLimit::parse(r) {
                Ok(limit) => Some(limit),
                Err(e) => {
                    self.problem(&format!("{key}.rate_limit"), e);
                    *ok = false;
                    None
                }
            },
            _ => None,
        }
    }

    /// `tls_client_auth`: exactly one selector, and an optional CA pin.
    fn pki_method(&mut self, key: &str, c: &RawClient, ok: &mut bool) -> Option<AuthMethod> {
        if !c.self_signed_certs.is_empty() || !c.self_signed_thumbprints.is_empty() {
            self.problem(
                key,
                "self_signed_certs / self_signed_thumbprints belong to self_signed_tls_client_auth",
            );
            *ok = false;
        }
        let selector = match selectors(c).as_slice() {
            [(name, value)] => self.selector(key, name, value),
            [] => {
                self.problem(
                    key,
                    "tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email; none is set",
                );
                None
            }
            many => {
                let names: Vec<&str> = many.iter().map(|(n, _)| *n).collect();
                self.problem(
                    key,
                    format!(
                        "tls_client_auth needs exactly one tls_client_auth_* selector (RFC 8705 §2.1.2); {} are set: {}",
                        names.len(),
                        names.join(", ")
                    ),
                );
                None
            }
        };
        let pin = c
            .tls_client_auth_ca
            .as_ref()
            .and_then(|p| self.pin(key, p, ok));
        Some(AuthMethod::Pki {
            selector: selector?,
            pin,
        })
    }

    /// `tls_client_auth_ca`: every certificate of the file is a CA the client may chain to.
    fn pin(&mut self, key: &str, p: &Path, ok: &mut bool) -> Option<Arc<Anchors>> {
        let pin_key = format!("{key}.tls_client_auth_ca");
        let certs = self.certs(&pin_key, p);
        if certs.is_empty() {
            if self.path(p).exists() {
                self.problem(&pin_key, "holds no certificate");
            }
            *ok = false;
            return None;
        }
        match Anchors::new(certs) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                self.problem(&pin_key, e);
                *ok = false;
                None
            }
        }
    }

    /// `self_signed_tls_client_auth`: registered certificates and thumbprints.
    fn self_signed_method(
        &mut self,
        key: &str,
        c: &RawClient,
        ok: &mut bool,
    ) -> Option<AuthMethod> {
        if !selectors(c).is_empty() || c.tls_client_auth_ca.is_some() {
            self.problem(
                key,
                "tls_client_auth_* keys belong to tls_client_auth; self-signed clients use self_signed_certs / self_signed_thumbprints",
            );
            *ok = false;
        }
        let mut thumbprints = HashSet::new();
        for (i, p) in c.self_signed_certs.iter().enumerate() {
            let k = format!("{key}.self_signed_certs[{i}]");
            let certs = self.certs(&k, p);
            if certs.is_empty() && self.path(p).exists() {
                self.problem(&k, "holds no certificate");
            }
            for cert in certs {
                thumbprints.insert(identity::sha256(cert.as_ref()));
            }
        }
        for (i, t) in c.self_signed_thumbprints.iter().enumerate() {
            match parse_thumbprint(t) {
                Some(d) => {
                    thumbprints.insert(d);
                }
                None => {
                    self.problem(
                        &format!("{key}.self_signed_thumbprints[{i}]"),
                        thumbprint_problem(t),
                    );
                    *ok = false;
                }
            }
        }
        if c.self_signed_certs.is_empty() && c.self_signed_thumbprints.is_empty() {
            self.problem(
                key,
                "self_signed_tls_client_auth needs self_signed_certs or self_signed_thumbprints",
            );
            return None;
        }
        Some(AuthMethod::SelfSigned { thumbprints })
    }

    pub(super) fn selector(&mut self, key: &str, name: &str, value: &str) -> Option<Selector> {
        let k = format!("{key}.{name}");
        if value.trim().is_empty() || value.chars().any(char::is_control) {
            self.problem(&k, "must be non-empty and free of control characters");
            return None;
        }
        match name {
            "tls_client_auth_subject_dn" => match DistinguishedName::parse_rfc4514(value) {
                Ok(dn) => {
                    if dn.looks_reversed() {
                        self.warnings.push(format!(
                            "{k}: \"{value}\" is written most general RDN first (OpenSSL's order); RFC 4514 puts the most specific first and a reversed DN does not match: write \"{}\"",
                            DistinguishedName::reversed_spelling(value)
                        ));
                    }
                    Some(Selector::SubjectDn(dn))
                }
                Err(DnError::SlashForm(_)) => match DistinguishedName::parse_openssl_slash(value) {
                    Ok((dn, rfc4514)) => {
                        self.warnings.push(format!(
                            "{k}: \"{value}\" is OpenSSL's /C=../CN=.. form; it is read as the RFC 4514 DN \"{rfc4514}\": write that instead"
                        ));
                        Some(Selector::SubjectDn(dn))
                    }
                    Err(e) => {
                        self.problem(&k, format!("\"{value}\" looks like OpenSSL's /C=../CN=.. form but cannot be read: {e}"));
                        None
                    }
                },
                Err(e) => {
                    self.problem(&k, e);
                    None
                }
            },
            "tls_client_auth_san_dns" => Some(Selector::SanDns(value.to_ascii_lowercase())),
            "tls_client_auth_san_uri" => Some(Selector::SanUri(value.to_string())),
            "tls_client_auth_san_email" => Some(Selector::SanEmail(value.to_string())),
            "tls_client_auth_san_ip" => match value.parse::<IpAddr>() {
                Ok(ip) => Some(Selector::SanIp(ip)),
                Err(_) => {
                    self.problem(&k, format!("\"{value}\" is not an IPv4 or IPv6 address"));
                    None
                }
            },
            _ => None,
        }
    }
}

/// The `tls_client_auth_*` keys that are set, by name.
fn selectors(c: &RawClient) -> Vec<(&'static str, &String)> {
    [
        (
            "tls_client_auth_subject_dn",
            c.tls_client_auth_subject_dn.as_ref(),
        ),
        (
            "tls_client_auth_san_dns",
            c.tls_client_auth_san_dns.as_ref(),
        ),
        (
            "tls_client_auth_san_uri",
            c.tls_client_auth_san_uri.as_ref(),
        ),
        ("tls_client_auth_san_ip", c.tls_client_auth_san_ip.as_ref()),
        (
            "tls_client_auth_san_email",
            c.tls_client_auth_san_email.as_ref(),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect()
}

/// What identifies a registration across reloads (see [`Registration::fingerprint`]).
fn fingerprint(
    identity_text: &str,
    rate_limit: Option<&crate::state::RateLimit>,
    credential: &Signer,
    method: &AuthMethod,
) -> [u8; 32] {
    // Hash sets print in a random order: the binding is written out sorted.
    let binding = match method {
        AuthMethod::Pki { selector, pin } => {
            format!("{selector:?} {:?}", pin.as_ref().map(|p| &p.certs))
        }
        AuthMethod::SelfSigned { thumbprints } => {
            let mut t: Vec<_> = thumbprints.iter().collect();
            t.sort();
            format!("{t:?}")
        }
    };
    let text = format!(
        "{identity_text}\n{:?}\n{}\n{credential:?}\n{binding}",
        rate_limit.map(|r| r.text.as_str()),
        credential.x5t_s256,
    );
    identity::sha256(text.as_bytes())
}

/// `8-4-4-4-12` hexadecimal digits, as Entra writes an Application (client) ID.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}
