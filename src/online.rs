//! `check --online`: for every client, one real client_credentials token request against its
//! upstream, signed with its credential exactly as `serve` would sign it, and an identity
//! provider's refusal turned into the fix (Entra's AADSTS codes, PROTOCOL.md §A). The token
//! itself is never printed: only that one was issued and for how long.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::assertion::ASSERTION_TYPE;
use crate::config::Config;
use crate::registry::Registration;
use crate::upstream::{TokenRoute, Upstream};

/// The scope asked for when a client has no `scopes` allow-list: every tenant has Microsoft
/// Graph, and client_credentials for its `.default` succeeds without any permission granted
/// (the token then carries no roles).
pub const DEFAULT_PROBE_SCOPE: &str = "https://graph.microsoft.com/.default";

/// What one client's probe found.
#[derive(Debug)]
pub struct Probe {
    /// The client.
    pub client_id: String,
    /// Its upstream's name.
    pub upstream: String,
    /// A token was issued.
    pub ok: bool,
    /// One line for the operator.
    pub line: String,
}

/// Probes every client of `config`; embedded identity providers are started for the time it
/// takes.
pub async fn probe(config: &Config) -> Result<Vec<Probe>, String> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (idps, tasks) = crate::listener::start_idps(config, &stopped)
        .await
        .map_err(|e| e.to_string())?;
    let mut upstreams: BTreeMap<&str, Result<Arc<Upstream>, String>> = BTreeMap::new();
    for (name, spec) in &config.upstreams {
        let embedded = idps.get(name).map(|e| (e.addr, e.ca.clone()));
        upstreams.insert(name, Upstream::new(spec.clone(), embedded).map(Arc::new));
    }
    let mut regs: Vec<&Arc<Registration>> = config.registry.iter().collect();
    regs.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let mut out = Vec::new();
    for reg in regs {
        let line = match upstreams.get(reg.upstream.as_str()) {
            Some(Ok(upstream)) => one(reg, upstream).await,
            Some(Err(e)) => Err(format!("the upstream cannot be used: {e}")),
            None => Err("no such upstream".into()),
        };
        let (ok, line) = match line {
            Ok(l) => (true, l),
            Err(l) => (false, l),
        };
        out.push(Probe {
            client_id: reg.client_id.clone(),
            upstream: reg.upstream.clone(),
            ok,
            line,
        });
    }
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(out)
}

/// The scope a probe asks for: the client's first allowed scope, else Graph's `.default`.
fn scope_of(reg: &Registration) -> String {
    let mut allowed: Vec<&String> = reg.scopes.iter().collect();
    allowed.sort();
    allowed
        .first()
        .map_or(DEFAULT_PROBE_SCOPE.to_string(), |s| s.to_string())
}

async fn one(reg: &Registration, upstream: &Upstream) -> Result<String, String> {
    let url = upstream
        .token_url(TokenRoute::Default)
        .ok_or("the upstream has no token endpoint")?
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aud = upstream
        .assertion_audience(&url)
        .await
        .map_err(|e| format!("the assertion's audience: {e}"))?;
    let assertion = reg
        .credential
        .sign_async(&reg.client_id, &aud, now, &|_, _| {})
        .await
        .map_err(|e| {
            let wait = e
                .retry_after
                .map_or(String::new(), |s| format!(" (asked to wait {s} s)"));
            format!(
                "credential {}: no assertion could be signed{wait}; the log above says why",
                reg.credential.name
            )
        })?;
    let scope = scope_of(reg);
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let body = format!(
        "grant_type=client_credentials&client_id={}&scope={}&client_assertion_type={}&client_assertion={}",
        enc(&reg.client_id),
        enc(&scope),
        enc(ASSERTION_TYPE),
        enc(&assertion)
    );
    let answer = upstream
        .post_form(&url, body.into())
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let status = answer.status.as_u16();
    if status == 200 && json["access_token"].is_string() {
        let expires = json["expires_in"]
            .as_u64()
            .or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok()));
        return Ok(format!(
            "token issued for scope {scope}{} by {url}",
            expires.map_or(String::new(), |e| format!(" (expires in {e} s)"))
        ));
    }
    let error = json["error"].as_str().unwrap_or("(no OAuth error)");
    let code = aadsts(&json);
    let mut line = format!("{url} answered {status} {error}");
    if let Some(code) = code {
        line.push_str(&format!(" AADSTS{code}"));
    }
    line.push_str(": ");
    line.push_str(&fix(code, reg, upstream, &scope, &json));
    Err(line)
}

/// Entra's AADSTS number: `error_codes[0]`, else the `AADSTSnnnn` that starts the description.
fn aadsts(json: &Value) -> Option<u64> {
    if let Some(code) = json["error_codes"].get(0).and_then(Value::as_u64) {
        return Some(code);
    }
    let description = json["error_description"].as_str()?;
    let digits: String = description
        .strip_prefix("AADSTS")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What to do about a refusal, in the operator's terms.
fn fix(
    code: Option<u64>,
    reg: &Registration,
    upstream: &Upstream,
    scope: &str,
    json: &Value,
) -> String {
    let cred = &reg.credential;
    let id = &reg.client_id;
    let tenant = upstream.spec.kind.tenant().unwrap_or("(generic)");
    let name = &upstream.spec.name;
    match code {
        Some(700027) => format!(
            "upload this certificate (credential {}, SHA-1 thumbprint {}, x5t#S256 {}) to app registration {id}: Certificates & secrets → Certificates → Upload certificate",
            cred.name,
            crate::encoding::hex_upper(&crate::identity::sha1(cred.cert.as_ref())),
            cred.x5t_s256
        ),
        Some(700016) => format!(
            "no app registration with Application (client) ID {id} in tenant {tenant}: copy the ID from the app's Overview page, or check [upstreams.{name}] tenant"
        ),
        Some(90002) => format!(
            "tenant {tenant} does not exist in this cloud: set [upstreams.{name}] tenant to the directory's GUID or a verified domain, and authority to the cloud it lives in"
        ),
        Some(50049) => format!(
            "the authority is not an Entra instance: set [upstreams.{name}] authority (https://login.microsoftonline.com, or the sovereign cloud's)"
        ),
        Some(7000215) | Some(7000222) => format!(
            "Entra read a client secret, not this assertion: app registration {id} must accept certificates; make sure nothing in front of Entra adds a client_secret"
        ),
        Some(700024) | Some(500133) => {
            "the assertion's times are outside what Entra accepts: set this host's clock (NTP)".into()
        }
        Some(70011) | Some(1002012) => format!(
            "scope {scope} is not valid for client_credentials: allow a scope of the form RESOURCE/.default in this client's scopes"
        ),
        Some(500011) => format!(
            "the resource of scope {scope} does not exist in tenant {tenant}: allow a scope of an API this tenant has, or consent the API in the tenant"
        ),
        Some(7000112) => format!("app registration {id} is disabled in tenant {tenant}: enable it (Enterprise applications → Properties)"),
        Some(700211) | Some(700212) | Some(700213) => format!(
            "the federated token does not match a federated credential of app registration {id}: compare its issuer, subject and audience with Certificates & secrets → Federated credentials"
        ),
        Some(50012) | Some(700025) => format!(
            "app registration {id} refused the assertion: check that credential {} is the one registered on it, and that the app is not a public client",
            cred.name
        ),
        _ => {
            let description = json["error_description"]
                .as_str()
                .map(|d| d.lines().next().unwrap_or_default().to_string())
                .unwrap_or_else(|| "no error description".into());
            format!("the identity provider refused: {description}")
        }
    }
}
