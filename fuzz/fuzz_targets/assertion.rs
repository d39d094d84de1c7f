//! The embedded IdP's client-assertion checks on arbitrary JWT text: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtls_gateway::idp::validate::{verify_assertion, RegisteredKey};

fuzz_target!(|data: &[u8]| {
    let Ok(jwt) = std::str::from_utf8(data) else { return };
    let keys = [RegisteredKey { x5t: "a".into(), x5t_s256: "b".into(), rsa_public_key: vec![0x30, 0x00] }];
    let _ = verify_assertion(jwt, "client", "https://idp/token", &keys, 1_800_000_000);
});
