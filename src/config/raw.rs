//! The file format: serde structs that refuse unknown keys. Validation turns them into the
//! domain types of [`super`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub(super) credentials: BTreeMap<String, RawCredential>,
    #[serde(default)]
    pub(super) clients: Vec<RawClient>,
    pub(super) front_proxy: Option<RawFrontProxy>,
    pub(super) binding: Option<RawBinding>,
    pub(super) authz: Option<RawAuthz>,
    pub(super) introspection: Option<RawIntrospection>,
    pub(super) state: Option<RawState>,
    pub(super) dev: Option<RawDev>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBinding {
    pub(super) mode: Option<String>,
    pub(super) max_records: Option<usize>,
    pub(super) on_unknown_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthz {
    pub(super) listen: String,
    pub(super) trusted_peers: Option<Vec<String>>,
    pub(super) header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntrospection {
    #[serde(default)]
    pub(super) clients: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFrontProxy {
    pub(super) header: Option<String>,
    #[serde(default)]
    pub(super) trusted_peers: Vec<String>,
    #[serde(default)]
    pub(super) trusted_proxy_certs: Vec<String>,
    pub(super) plain_listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: String,
    pub(super) public_url: Option<String>,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    #[serde(default)]
    pub(super) client_ca: Vec<PathBuf>,
    #[serde(default)]
    pub(super) client_intermediates: Vec<PathBuf>,
    #[serde(default)]
    pub(super) crl: Vec<PathBuf>,
    pub(super) min_tls_version: Option<String>,
    pub(super) resumption: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_body_bytes: Option<usize>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) max_connections: Option<usize>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) max_connection_age: Option<String>,
    pub(super) max_connections_per_peer: Option<usize>,
    pub(super) idle_timeout: Option<String>,
    pub(super) shutdown_delay: Option<String>,
    pub(super) rate_limit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) tenant: Option<String>,
    pub(super) authority: Option<String>,
    pub(super) token_endpoint: Option<String>,
    pub(super) metadata_url: Option<String>,
    pub(super) timeout: Option<String>,
    #[serde(default)]
    pub(super) ca: Vec<PathBuf>,
    pub(super) reuse_assertion: Option<bool>,
    pub(super) listen: Option<String>,
    #[serde(default)]
    pub(super) federated: Vec<RawFederated>,
    pub(super) profile: Option<String>,
    pub(super) assertion_audience: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFederated {
    pub(super) issuer: String,
    pub(super) subject: String,
    pub(super) audience: Option<String>,
    pub(super) jwks: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredential {
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
    pub(super) pkcs12: Option<PathBuf>,
    pub(super) pkcs12_password_env: Option<String>,
    pub(super) alg: Option<String>,
    pub(super) kid: Option<String>,
    pub(super) x5c: Option<bool>,
    pub(super) federated_token_file: Option<PathBuf>,
    pub(super) pkcs11: Option<RawPkcs11>,
    pub(super) key_vault: Option<RawKeyVault>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyVault {
    pub(super) url: String,
    pub(super) key: String,
    #[serde(default)]
    pub(super) version: String,
    pub(super) identity: Option<String>,
    pub(super) identity_endpoint: Option<String>,
    #[serde(default)]
    pub(super) ca: Vec<PathBuf>,
    pub(super) sign_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPkcs11 {
    pub(super) module: String,
    pub(super) token_label: String,
    pub(super) key_label: String,
    pub(super) pin_env: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub(super) client_id: String,
    pub(super) upstream: String,
    pub(super) credential: String,
    pub(super) token_endpoint_auth_method: String,
    pub(super) tls_client_auth_subject_dn: Option<String>,
    pub(super) tls_client_auth_san_dns: Option<String>,
    pub(super) tls_client_auth_san_uri: Option<String>,
    pub(super) tls_client_auth_san_ip: Option<String>,
    pub(super) tls_client_auth_san_email: Option<String>,
    pub(super) tls_client_auth_ca: Option<PathBuf>,
    #[serde(default)]
    pub(super) self_signed_certs: Vec<PathBuf>,
    #[serde(default)]
    pub(super) self_signed_thumbprints: Vec<String>,
    pub(super) grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    pub(super) rate_limit: Option<String>,
    #[serde(default)]
    pub(super) cache_tokens: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDev {
    pub(super) pki: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) store: Option<String>,
    pub(super) redis_url: Option<String>,
    pub(super) redis_password_env: Option<String>,
    #[serde(default)]
    pub(super) redis_ca: Vec<PathBuf>,
    pub(super) key_prefix: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) encryption_key_env: Option<String>,
}
