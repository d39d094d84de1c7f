//! The mTLS listener's rustls configuration: client certificates requested but optional,
//! possession proven in the handshake, trust decided after it; no session resumption.

pub mod verifier;

use std::sync::Arc;

use rustls::server::NoServerSessionStorage;
use rustls::{DistinguishedName, ServerConfig};

use crate::config::Server;
use verifier::AcceptAnyClientCert;

/// Builds the rustls server configuration of the mTLS listener. `hints` are the CA names
/// offered in the CertificateRequest (`client_ca` and every client's pinned CA), so that a
/// client with several certificates chooses the right one.
pub fn server_config(
    server: &Server,
    hints: Vec<DistinguishedName>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if server.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let verifier = Arc::new(AcceptAnyClientCert::new(
        hints,
        provider.signature_verification_algorithms,
    ));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.cert_chain.clone(), server.key.clone_key())?;
    // A resumed session skips client-certificate verification: never resume.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
