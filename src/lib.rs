//! mtls-gateway: RFC 8705 mutual-TLS client authentication in front of identity providers
//! that only accept `private_key_jwt` (Microsoft Entra ID first).
//!
//! One token request, file by file:
//! 1. [`listener`] accepts a TCP connection and completes the TLS handshake ([`tls`]): the
//!    client proves it holds its certificate's key.
//! 2. [`identity`] reads the leaf; [`trust`] verifies its chain per request against the
//!    configuration generation serving it (a connection reuses the verdict within one
//!    generation until the earliest notAfter / CRL nextUpdate).
//!    Behind a trusted proxy, [`forwarded`] reads the certificate from a header instead.
//! 3. [`service`] routes the request; [`token`] runs the ordered checks of SPEC §4.
//! 4. [`registry`] binds the certificate to the client_id (RFC 8705 §2, [`dn`] for DNs) and
//!    holds the client's rate limit.
//! 5. [`assertion`] signs (or reuses) a `client_assertion` with the app registration's credential;
//!    [`cache`] may answer a client-credentials request from memory instead.
//! 6. [`upstream`] forwards the form to the identity provider and returns its answer unchanged.
//!
//! Around it: [`config`] (validated `gateway.toml`), [`metrics`] and [`admin`], [`error`], and
//! for development [`idp`] (the embedded Entra-compatible identity provider), [`pki`],
//! [`client`] and [`commands`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod assertion;
pub mod cache;
pub mod client;
pub mod commands;
pub mod config;
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
pub mod keys;
pub mod listener;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod pki;
pub mod registry;
pub mod reload;
pub mod service;
pub mod state;
pub mod tls;
pub mod token;
pub mod trust;
pub mod upstream;
