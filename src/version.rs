//! What this binary is: version, commit and TLS library, for `mtls_gateway_build_info` and
//! the admin listener's `GET /version` (written by build.rs at compile time).

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit it was built from (`unknown` when built without git metadata).
pub const COMMIT: &str = env!("MTLS_GATEWAY_BUILD_COMMIT");
/// The rustls version in Cargo.lock.
pub const RUSTLS: &str = env!("MTLS_GATEWAY_BUILD_RUSTLS");

/// `GET /version`.
pub fn json() -> serde_json::Value {
    serde_json::json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": VERSION,
        "commit": COMMIT,
        "rustls": RUSTLS,
        "crypto_provider": "aws-lc-rs",
    })
}
