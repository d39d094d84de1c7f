//! `demo`: every step of a token request, in a temp dir, against the embedded provider in
//! one of its profiles.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::config::{self, IdpProfile};
use crate::identity::ClientIdentity;

/// Decodes the header and claims of a JWT for display (the signature is not shown).
pub fn decode_jwt(jwt: &str) -> Option<(serde_json::Value, serde_json::Value)> {
    let mut parts = jwt.split('.');
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
    Some((header, claims))
}

/// The config `demo` writes next to its dev PKI.
pub fn demo_config(client_id: &str, selfsigned_id: &str) -> String {
    profile_config(client_id, selfsigned_id, IdpProfile::Entra, None)
}

/// The demo's config for `profile`; `kid` names the credential's key (other profiles sign
/// ES256 with `pki/signing-es256.pem`, Entra RS256 with `pki/signing.pem`).
fn profile_config(
    client_id: &str,
    selfsigned_id: &str,
    profile: IdpProfile,
    kid: Option<&str>,
) -> String {
    let (upstream_extra, credential) = if profile == IdpProfile::Entra {
        (
            String::new(),
            "cert = \"pki/signing.pem\"\nkey = \"pki/signing-key.pem\"".to_string(),
        )
    } else {
        let audience = if profile == IdpProfile::Auth0 {
            "assertion_audience = \"issuer\"\n"
        } else {
            ""
        };
        (
            format!("profile = \"{}\"\n{audience}", profile.as_str()),
            format!(
                "cert = \"pki/signing-es256.pem\"\nkey = \"pki/signing-es256-key.pem\"\nalg = \"ES256\"\n{}",
                kid.map(|k| format!("kid = \"{k}\"")).unwrap_or_default()
            ),
        )
    };
    format!(
        r#"[server]
listen = "127.0.0.1:0"
public_url = "https://localhost"
cert = "pki/server.pem"
key = "pki/server-key.pem"
client_ca = ["pki/ca.pem"]

[upstreams.dev]
type = "embedded"
listen = "127.0.0.1:0"
{upstream_extra}
[credentials.dev]
{credential}

[[clients]]
client_id = "{client_id}"
upstream = "dev"
credential = "dev"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "{subject}"

[[clients]]
client_id = "{selfsigned_id}"
upstream = "dev"
credential = "dev"
token_endpoint_auth_method = "self_signed_tls_client_auth"
self_signed_certs = ["pki/client-selfsigned.pem"]
"#,
        subject = crate::pki::CLIENT_SUBJECT
    )
}

/// `demo [--profile NAME]`: dev PKI, embedded IdP (imitating `profile`), gateway, one real
/// mTLS token request, in a temp dir.
pub async fn demo(profile: &str) -> Result<String, String> {
    let profile = IdpProfile::parse(profile)
        .ok_or_else(|| format!("--profile {profile}: not one of {}", IdpProfile::NAMES))?;
    let dir = std::env::temp_dir().join(format!("mtls-gateway-demo-{}", std::process::id()));
    let result = demo_in(&dir, profile).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn demo_in(dir: &Path, profile: IdpProfile) -> Result<String, String> {
    const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
    const SELF_SIGNED_ID: &str = "11111111-2222-3333-4444-666666666666";
    let step = |n: u32, text: &str| println!("[{n}] {text}");
    step(
        1,
        &format!("writing a development PKI to {}", dir.join("pki").display()),
    );
    crate::pki::write_dev_pki(&dir.join("pki"))?;
    let kid = if profile == IdpProfile::Entra {
        None
    } else {
        Some(es256_credential(&dir.join("pki"))?)
    };
    let config_path = dir.join("gateway.toml");
    let text = profile_config(CLIENT_ID, SELF_SIGNED_ID, profile, kid.as_deref());
    std::fs::write(&config_path, text).map_err(|e| e.to_string())?;
    let config = config::load(&config_path).map_err(|e| e.to_string())?;
    let signer = config
        .credentials
        .get("dev")
        .cloned()
        .ok_or("the demo config has no credential")?;
    step(
        2,
        &format!(
            "starting the embedded identity provider ({} profile) and the gateway",
            profile.as_str()
        ),
    );
    let running = crate::listener::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let idp = running
        .idp_addrs
        .get("dev")
        .copied()
        .ok_or("no embedded IdP")?;
    println!("    gateway (mTLS):            https://{}", running.addr);
    let authority = crate::upstream::authority_of(idp);
    println!(
        "    identity provider (HTTPS): {authority}{}",
        profile.token_path("dev")
    );
    let result = async {
        let ca = config::parse_certs(&std::fs::read(dir.join("pki/ca.pem")).map_err(|e| e.to_string())?)?;
        let identity = crate::client::load_identity(&dir.join("pki/client.pem"), &dir.join("pki/client-key.pem"))?;
        let client_cert = ClientIdentity::from_der(identity.0[0].clone()).map_err(|e| e.to_string())?;
        step(3, "the legacy client connects with its certificate and sends only its client_id");
        println!("    certificate subject: {}", client_cert.subject_display);
        println!("    certificate x5t#S256: {}", client_cert.x5t_s256);
        let client = crate::client::MtlsClient::new(&ca, Some(identity), false)?;
        let url = format!("https://localhost:{}/token", running.addr.port());
        let form = format!("grant_type=client_credentials&client_id={CLIENT_ID}&scope=api%3A%2F%2Fdemo%2F.default");
        println!("    POST {url}\n    {form}");
        step(4, "the gateway verifies the chain to the client CA, matches the subject DN to the registration, and signs a client_assertion like this one:");
        let aud = if profile == IdpProfile::Auth0 {
            profile.issuer(&authority, "dev")
        } else {
            format!("{authority}{}", profile.token_path("dev"))
        };
        let example = signer.sign(CLIENT_ID, &aud).map_err(|_| "signing failed")?;
        if let Some((h, c)) = decode_jwt(&example) {
            println!("    header: {h}\n    claims: {c}");
        }
        let answer = client.post_form(&url, &form).await?;
        step(5, &format!("the identity provider checked the assertion and answered {}", answer.status));
        let body = answer.json();
        if !answer.status.is_success() {
            return Err(format!("the token request failed: {} {}", answer.status, String::from_utf8_lossy(&answer.body)));
        }
        let token = body.get("access_token").and_then(|t| t.as_str()).ok_or("no access_token in the answer")?;
        let (h, c) = decode_jwt(token).ok_or("the access token is not a JWT")?;
        println!("    token_type={} expires_in={}", body["token_type"], body["expires_in"]);
        println!("    access token header: {h}\n    access token claims: {c}");
        Ok::<String, String>("demo succeeded: a client that only did mTLS received an access token".to_string())
    }
    .await;
    running.shutdown().await;
    result
}

/// Writes a P-256 signing credential for the non-Entra profiles and returns its `kid` (the
/// RFC 7638 thumbprint, as Okta and Auth0 derive it when they take a key without one).
fn es256_credential(pki: &Path) -> Result<String, String> {
    let pem = crate::pki::self_signed_client("mtls-gateway demo ES256 credential")
        .map_err(|e| e.to_string())?;
    std::fs::write(pki.join("signing-es256.pem"), &pem.cert).map_err(|e| e.to_string())?;
    crate::pki::write_private(&pki.join("signing-es256-key.pem"), &pem.key)?;
    let der = config::parse_certs(pem.cert.as_bytes())?
        .into_iter()
        .next()
        .ok_or("no certificate")?;
    crate::jwk::PublicJwk::from_certificate(der.as_ref()).map(|k| k.thumbprint())
}
