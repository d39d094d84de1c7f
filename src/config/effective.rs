//! The effective configuration as the admin listener's `GET /config` shows it: every setting
//! after defaults and validation, as JSON. Key material never appears: certificates are shown
//! by subject, `x5t#S256` and expiry; private keys, PINs, passwords and sealing keys only by
//! where they come from (the backend, the environment variable's name), never by value; a
//! password inside `redis_url` is replaced by `REDACTED`.

use serde_json::{json, Map, Value};

use super::{AssertionAudience, Config, StateStore, UpstreamKind};
use crate::identity::ClientIdentity;
use crate::registry::{AuthMethod, Selector};

/// What `/config` serves for `config`.
pub fn effective(config: &Config) -> Value {
    let mut out = Map::new();
    out.insert("source".into(), json!(config.source.display().to_string()));
    server_and_limits(config, &mut out);
    out.insert("upstreams".into(), upstreams(config));
    out.insert("credentials".into(), credentials(config));
    out.insert("clients".into(), clients(config));
    out.insert(
        "front_proxy".into(),
        config.front_proxy.as_ref().map_or(Value::Null, |f| {
            json!({
                "header": f.format.header(),
                "trusted_peers": f.trusted_peers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "trusted_proxy_certs": f.trusted_proxy_certs.len(),
                "plain_listen": f.plain_listen.map(|a| a.to_string()),
            })
        }),
    );
    out.insert(
        "binding".into(),
        config.binding.as_ref().map_or(Value::Null, |b| {
            json!({
                "mode": format!("{:?}", b.mode).to_ascii_lowercase(),
                "max_records": b.max_records,
                "on_unknown_token": format!("{:?}", b.on_unknown_token).to_ascii_lowercase(),
            })
        }),
    );
    out.insert(
        "authz".into(),
        config.authz.as_ref().map_or(Value::Null, |a| {
            json!({
                "listen": a.listen.to_string(),
                "header": a.format.header(),
                "trusted_peers": a.trusted_peers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        }),
    );
    out.insert(
        "introspection".into(),
        config
            .introspection
            .as_ref()
            .map_or(Value::Null, |i| json!({ "clients": i.clients.len() })),
    );
    out.insert(
        "state".into(),
        match &config.state {
            StateStore::Memory => json!({ "store": "memory" }),
            StateStore::Redis(r) => json!({
                "store": "redis",
                "redis_url": redact_url(&r.url),
                "redis_password": if r.password.is_some() { "(from the environment; not shown)" } else { "(none)" },
                "redis_ca": r.ca_pem.is_some(),
                "key_prefix": r.key_prefix,
                "timeout": secs(r.timeout),
                "encryption_key": "(from the environment; not shown)",
            }),
        },
    );
    out.insert(
        "dev_pki".into(),
        json!(config.dev_pki.as_ref().map(|p| p.display().to_string())),
    );
    out.insert("warnings".into(), json!(config.warnings));
    Value::Object(out)
}

/// `server`, `admin` and `limits`.
fn server_and_limits(config: &Config, out: &mut Map<String, Value>) {
    let s = &config.server;
    let l = &config.limits;
    out.insert(
        "server".into(),
        json!({
            "listen": s.listen.to_string(),
            "public_url": s.public_url,
            "cert": s.cert_chain.iter().map(|c| cert(c.as_ref())).collect::<Vec<_>>(),
            "key": "(loaded; not shown)",
            "client_ca": s.client_trust.anchors.certs.iter().map(|c| cert(c.as_ref())).collect::<Vec<_>>(),
            "min_tls_version": if s.tls13_only { "1.3" } else { "1.2" },
            "resumption": s.resumption,
        }),
    );
    out.insert(
        "admin".into(),
        config
            .admin
            .as_ref()
            .map_or(Value::Null, |a| json!({ "listen": a.listen.to_string() })),
    );
    out.insert(
        "limits".into(),
        json!({
            "max_body_bytes": l.max_body_bytes,
            "header_read_timeout": secs(l.header_read_timeout),
            "request_timeout": secs(l.request_timeout),
            "max_connections": l.max_connections,
            "shutdown_grace": secs(l.shutdown_grace),
            "shutdown_delay": secs(l.shutdown_delay),
            "max_connection_age": secs(l.max_connection_age),
            "max_connections_per_peer": l.max_connections_per_peer,
            "idle_timeout": secs(l.idle_timeout),
            "rate_limit": l.rate_limit,
        }),
    );
}

fn secs(d: std::time::Duration) -> Value {
    json!(d.as_secs_f64())
}

fn cert(der: &[u8]) -> Value {
    match ClientIdentity::from_der(rustls_pki_types::CertificateDer::from(der.to_vec())) {
        Ok(id) => json!({
            "subject": id.subject_display,
            "x5t#S256": id.x5t_s256,
            "not_after": crate::encoding::timestamp(id.not_after),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn upstreams(config: &Config) -> Value {
    let mut out = Map::new();
    for (name, u) in &config.upstreams {
        let mut v = match &u.kind {
            UpstreamKind::Entra { authority, tenant } => {
                json!({ "type": "entra", "authority": authority, "tenant": tenant })
            }
            UpstreamKind::Generic {
                token_endpoint,
                metadata_url,
            } => json!({
                "type": "generic",
                "token_endpoint": token_endpoint,
                "metadata_url": metadata_url,
            }),
            UpstreamKind::Embedded {
                listen,
                tenant,
                profile,
            } => json!({
                "type": "embedded",
                "listen": listen.to_string(),
                "tenant": tenant,
                "profile": profile.as_str(),
            }),
        };
        v["timeout"] = secs(u.timeout);
        v["ca"] = json!(u.ca.iter().map(|c| cert(c.as_ref())).collect::<Vec<_>>());
        v["reuse_assertion"] = json!(u.reuse_assertion);
        v["assertion_audience"] = match &u.audience {
            AssertionAudience::TokenEndpoint => json!("token_endpoint"),
            AssertionAudience::Issuer => json!("issuer"),
            AssertionAudience::Exact(url) => json!(url),
        };
        v["federated"] = json!(u
            .federated
            .iter()
            .map(|f| json!({ "issuer": f.issuer, "subject": f.subject, "audience": f.audience }))
            .collect::<Vec<_>>());
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

fn credentials(config: &Config) -> Value {
    let mut out = Map::new();
    for (name, c) in &config.credentials {
        let v = match c.federated_token() {
            Some(t) => json!({
                "backend": c.backend_name(),
                "federated_token_file": t.path.display().to_string(),
            }),
            None => json!({
                "backend": c.backend_name(),
                "alg": c.alg().as_str(),
                "cert": cert(c.cert.as_ref()),
                "x5t": c.x5t,
                "kid": c.kid,
                "x5c": c.x5c,
                "chain_length": c.chain.len(),
                "key": "(not shown)",
            }),
        };
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

fn clients(config: &Config) -> Value {
    let mut regs: Vec<_> = config.registry.iter().collect();
    regs.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let list: Vec<Value> = regs
        .iter()
        .map(|r| {
            let mut grants: Vec<&String> = r.grant_types.iter().collect();
            grants.sort();
            let mut scopes: Vec<&String> = r.scopes.iter().collect();
            scopes.sort();
            let mut v = json!({
                "client_id": r.client_id,
                "token_endpoint_auth_method": r.method.name(),
                "upstream": r.upstream,
                "credential": r.credential.name,
                "grant_types": grants,
                "scopes": scopes,
                "rate_limit": r.state.rate_limit.as_ref().map(|l| l.text.clone()),
                "cache_tokens": r.state.token_cache.is_some(),
            });
            match &r.method {
                AuthMethod::Pki { selector, pin } => {
                    let (key, value) = match selector {
                        Selector::SubjectDn(dn) => {
                            ("tls_client_auth_subject_dn", dn.to_rfc4514_string())
                        }
                        Selector::SanDns(d) => ("tls_client_auth_san_dns", d.clone()),
                        Selector::SanUri(u) => ("tls_client_auth_san_uri", u.clone()),
                        Selector::SanIp(i) => ("tls_client_auth_san_ip", i.to_string()),
                        Selector::SanEmail(e) => ("tls_client_auth_san_email", e.clone()),
                    };
                    v[key] = json!(value);
                    v["tls_client_auth_ca_pinned"] = json!(pin.is_some());
                }
                AuthMethod::SelfSigned { thumbprints } => {
                    v["self_signed_thumbprints"] = json!(thumbprints
                        .iter()
                        .map(crate::identity::x5t_s256_of_digest)
                        .collect::<Vec<_>>());
                }
            }
            v
        })
        .collect();
    Value::Array(list)
}

/// `redis_url` with the password of its user info replaced.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:REDACTED"),
                None => userinfo.to_string(),
            };
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_redis_urls_are_redacted() {
        assert_eq!(
            redact_url("rediss://default:s3cr%40t@cache:6380/0"),
            "rediss://default:REDACTED@cache:6380/0"
        );
        assert_eq!(
            redact_url("redis://:pw@cache:6379"),
            "redis://:REDACTED@cache:6379"
        );
        assert_eq!(redact_url("redis://user@cache/1"), "redis://user@cache/1");
        assert_eq!(redact_url("redis://cache"), "redis://cache");
    }
}
