//! Certificate identity extraction and chain verification from arbitrary DER: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;

fuzz_target!(|data: &[u8]| {
    let der = CertificateDer::from(data.to_vec());
    if let Ok(id) = mtls_gateway::identity::ClientIdentity::from_der(der.clone()) {
        let _ = id.valid_at(0);
        let trust = mtls_gateway::tls::verifier::ClientTrust::new(vec![], vec![], vec![]).unwrap();
        let _ = mtls_gateway::tls::verifier::PeerCertificate::new(&[der], &trust);
    }
});
