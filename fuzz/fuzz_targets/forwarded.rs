//! Forwarded-certificate headers in every format: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtls_gateway::forwarded::{read, HeaderFormat};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(data) else { return };
    for name in ["client-cert", "x-forwarded-client-cert", "x-ssl-client-cert", "x-forwarded-tls-client-cert"] {
        let format = HeaderFormat::parse(name).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(format.header(), value.clone());
        headers.insert("client-cert-chain", value.clone());
        let _ = read(format, &headers);
    }
    let _ = mtls_gateway::forwarded::Cidr::parse(&String::from_utf8_lossy(data));
});
