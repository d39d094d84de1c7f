//! `[upstreams.NAME]`: Entra, a generic RFC 7523 server, or the embedded provider (in one of
//! its profiles), and the audience the assertions sent there carry.

use super::raw::RawUpstream;
use super::validate::{valid_tenant, Cx};
use super::*;

impl Cx {
    pub(super) fn upstream(&mut self, name: &str, mut u: RawUpstream) -> Option<UpstreamSpec> {
        let key = format!("upstreams.{name}");
        let timeout = self.duration(
            &format!("{key}.timeout"),
            u.timeout.as_deref(),
            Duration::from_secs(10),
        );
        let mut ca = Vec::new();
        for (i, p) in u.ca.iter().enumerate() {
            ca.extend(self.certs(&format!("{key}.ca[{i}]"), p));
        }
        let kind = self.upstream_kind(&key, &mut u)?;
        let audience = self.assertion_audience(&key, &u, &kind);
        if u.reuse_assertion == Some(true) && matches!(kind, UpstreamKind::Embedded { .. }) {
            self.problem(
                &format!("{key}.reuse_assertion"),
                "Entra only: the embedded identity provider refuses a replayed jti",
            );
        }
        let mut federated = Vec::new();
        for (i, f) in u.federated.into_iter().enumerate() {
            let fkey = format!("{key}.federated[{i}]");
            if !matches!(kind, UpstreamKind::Embedded { .. }) {
                self.problem(&fkey, "federated credentials are configured on the app registration in Entra; here only for an embedded identity provider");
                continue;
            }
            let Some(jwks) = self.read(&format!("{fkey}.jwks"), &f.jwks) else {
                continue;
            };
            if let Err(e) = crate::jwt::KeySet::from_json(&jwks) {
                self.problem(&format!("{fkey}.jwks"), e);
                continue;
            }
            federated.push(FederatedCredential {
                issuer: f.issuer,
                subject: f.subject,
                audience: f
                    .audience
                    .unwrap_or_else(|| FEDERATION_AUDIENCE.to_string()),
                jwks,
            });
        }
        Some(UpstreamSpec {
            name: name.to_string(),
            kind,
            timeout,
            ca,
            reuse_assertion: u.reuse_assertion == Some(true),
            reuse_explicit: u.reuse_assertion.is_some(),
            federated,
            audience,
        })
    }

    fn upstream_kind(&mut self, key: &str, u: &mut RawUpstream) -> Option<UpstreamKind> {
        let mut misplaced = |field: &str, present: bool, kind: &str| {
            if present {
                self.problems.push(ConfigError::new(
                    format!("{key}.{field}"),
                    format!("not a key of type = \"{kind}\""),
                ));
            }
        };
        if u.kind != "embedded" {
            misplaced("profile", u.profile.is_some(), &u.kind.clone());
        }
        let kind = match u.kind.as_str() {
            "entra" => {
                misplaced("token_endpoint", u.token_endpoint.is_some(), "entra");
                misplaced("metadata_url", u.metadata_url.is_some(), "entra");
                misplaced("listen", u.listen.is_some(), "entra");
                let authority = u
                    .authority
                    .take()
                    .unwrap_or_else(|| "https://login.microsoftonline.com".to_string());
                if !authority.starts_with("https://") {
                    self.problem(&format!("{key}.authority"), "must start with https://");
                }
                let Some(tenant) = u.tenant.take().filter(|t| valid_tenant(t)) else {
                    self.problem(
                        &format!("{key}.tenant"),
                        "required for type = \"entra\": the tenant GUID or domain (not common/organizations/consumers), letters, digits, '.', '-'",
                    );
                    return None;
                };
                UpstreamKind::Entra {
                    authority: authority.trim_end_matches('/').to_string(),
                    tenant,
                }
            }
            "generic" => {
                misplaced("tenant", u.tenant.is_some(), "generic");
                misplaced("authority", u.authority.is_some(), "generic");
                misplaced("listen", u.listen.is_some(), "generic");
                if u.reuse_assertion == Some(true) {
                    self.problem(
                        &format!("{key}.reuse_assertion"),
                        "Entra only: generic identity providers may refuse a replayed jti",
                    );
                }
                let Some(token_endpoint) = u.token_endpoint.take() else {
                    self.problem(
                        &format!("{key}.token_endpoint"),
                        "required for type = \"generic\"",
                    );
                    return None;
                };
                for (field, url) in [
                    ("token_endpoint", Some(&token_endpoint)),
                    ("metadata_url", u.metadata_url.as_ref()),
                ] {
                    if url.is_some_and(|u| !u.starts_with("https://")) {
                        self.problem(&format!("{key}.{field}"), "must start with https://");
                    }
                }
                UpstreamKind::Generic {
                    token_endpoint,
                    metadata_url: u.metadata_url.take(),
                }
            }
            "embedded" => {
                misplaced("token_endpoint", u.token_endpoint.is_some(), "embedded");
                misplaced("metadata_url", u.metadata_url.is_some(), "embedded");
                misplaced("authority", u.authority.is_some(), "embedded");
                let listen_text = u
                    .listen
                    .take()
                    .unwrap_or_else(|| "127.0.0.1:9443".to_string());
                let listen = self.socket_addr(&format!("{key}.listen"), &listen_text)?;
                let tenant = u.tenant.take().unwrap_or_else(|| "dev".to_string());
                if !valid_tenant(&tenant) {
                    self.problem(&format!("{key}.tenant"), "letters, digits, '.', '-' only");
                }
                let profile = match u.profile.as_deref() {
                    None => IdpProfile::Entra,
                    Some(p) => match IdpProfile::parse(p) {
                        Some(p) => p,
                        None => {
                            self.problem(
                                &format!("{key}.profile"),
                                format!("\"{p}\" is not one of {}", IdpProfile::NAMES),
                            );
                            return None;
                        }
                    },
                };
                UpstreamKind::Embedded {
                    listen,
                    tenant,
                    profile,
                }
            }
            other => {
                self.problem(
                    &format!("{key}.type"),
                    format!("\"{other}\" is not \"entra\", \"generic\" or \"embedded\""),
                );
                return None;
            }
        };
        Some(kind)
    }

    /// `assertion_audience`: generic upstreams and the embedded provider's non-Entra profiles.
    fn assertion_audience(
        &mut self,
        key: &str,
        u: &RawUpstream,
        kind: &UpstreamKind,
    ) -> AssertionAudience {
        let Some(text) = u.assertion_audience.as_deref() else {
            return AssertionAudience::TokenEndpoint;
        };
        let k = format!("{key}.assertion_audience");
        let generic = match kind {
            UpstreamKind::Generic { .. } => true,
            UpstreamKind::Embedded { profile, .. } => *profile != IdpProfile::Entra,
            UpstreamKind::Entra { .. } => false,
        };
        if !generic {
            self.problem(
                &k,
                "generic upstreams only: Entra requires the token endpoint as aud",
            );
            return AssertionAudience::TokenEndpoint;
        }
        match text {
            "token_endpoint" => AssertionAudience::TokenEndpoint,
            "issuer" => {
                if matches!(
                    kind,
                    UpstreamKind::Generic {
                        metadata_url: None,
                        ..
                    }
                ) {
                    self.problem(
                        &k,
                        "\"issuer\" is read from metadata_url's document: set metadata_url",
                    );
                }
                AssertionAudience::Issuer
            }
            url if url.starts_with("https://") || url.starts_with("http://") => {
                if url.chars().any(char::is_control) {
                    self.problem(&k, "control characters in the URL");
                }
                AssertionAudience::Exact(url.to_string())
            }
            other => {
                self.problem(
                    &k,
                    format!("\"{other}\" is not \"token_endpoint\", \"issuer\" or an absolute URL"),
                );
                AssertionAudience::TokenEndpoint
            }
        }
    }
}
