//! mtls-gateway: RFC 8705 mutual-TLS client authentication in front of identity providers
//! that only accept `private_key_jwt` (Microsoft Entra ID first).
//!
//! One token request, file by file (data flows one way, down this list; docs/architecture.md
//! has the whole picture, and `tests/gateway/architecture.rs` keeps it free of cycles):
//! 1. [`listener`] accepts a TCP connection ([`net`]: immediate ACKs, first-byte deadline,
//!    the per-connection watchdog) and completes the TLS handshake ([`tls`]): the client
//!    proves it holds its certificate's key.
//! 2. [`service`] routes the request and decides which certificate it presents: the
//!    handshake's, or behind a trusted proxy one from a header ([`forwarded`]). [`gateway`]
//!    is the configuration generation serving it.
//! 3. [`token`] runs the ordered checks of SPEC §4: [`form`] parses the body; [`identity`]
//!    reads the leaf; [`trust`] verifies its chain against the serving generation (a
//!    connection reuses the verdict within one generation until the earliest notAfter / CRL
//!    nextUpdate); [`registry`] binds the certificate to the client_id (RFC 8705 §2, [`dn`]
//!    for DNs).
//! 4. [`state`] holds the client's rate limit, reused assertions and token cache ([`cache`]),
//!    which outlive reloads; [`assertion`] signs (or reuses) the `client_assertion`.
//! 5. [`upstream`] forwards the form to the identity provider, detached from the client's
//!    stream, and returns its answer unchanged; [`metadata`] serves discovery documents.
//!
//! Around it: [`config`] (validated `gateway.toml`; [`keys`] reads key material), [`reload`]
//! (generations swapped on SIGHUP or a file change), [`metrics`] and [`admin`], [`error`] and
//! [`encoding`]; for development [`idp`] (the embedded Entra-compatible identity provider),
//! [`pki`], [`client`] and [`commands`]; [`fuzzing`] holds the fuzz targets' bodies.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod assertion;
pub mod authz;
pub mod binding;
pub mod cache;
pub mod client;
pub mod commands;
pub mod config;
pub mod demo;
pub mod dn;
pub mod encoding;
pub mod error;
pub mod form;
pub mod forwarded;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod identity;
pub mod idp;
pub mod introspect;
pub mod jwk;
pub mod jwt;
pub mod keys;
pub mod keyvault;
pub mod listener;
pub mod log_writer;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod online;
pub mod pkcs11;
pub mod pki;
pub mod process;
pub mod registry;
pub mod reload;
pub mod seal;
pub mod service;
pub mod state;
pub mod store;
pub mod tls;
pub mod token;
pub mod trace;
pub mod trust;
pub mod upstream;
pub mod version;
