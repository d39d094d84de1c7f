//! Sealing values kept in a shared store (SPEC §11): AES-256-GCM (aws-lc-rs) under the key
//! from `state.encryption_key_env`, authenticated together with the store key they live under.
//! A reader of the store learns no token; a writer cannot forge or move a value.
//!
//! A sealed value: version (1 byte, 1), key id (4 bytes: the start of SHA-256 of the key), a
//! random 96-bit nonce, then the ciphertext and its 16-byte tag. Keys rotate: the variable may
//! hold `new,old` (base64 each); values are sealed with the first and opened with any.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + NONCE_LEN;

/// Why the encryption key cannot be used. `Display` never shows key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The variable is not set or empty.
    #[error("the variable {0} is not set; it must hold a 32-byte key, base64 (e.g. `openssl rand -base64 32`)")]
    Missing(String),
    /// A key is not base64 of 32 bytes.
    #[error("the variable {0} does not hold 32-byte keys in base64 (\"new\" or \"new,old\"); key {1} is {2}")]
    Malformed(String, usize, &'static str),
}

/// The sealing keys: the first seals, all open.
pub struct Sealer {
    keys: Vec<([u8; 4], LessSafeKey)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Sealer {
    /// Keys from the value of variable `name` (`new` or `new,old,…`).
    pub fn from_env_value(name: &str, value: Option<&str>) -> Result<Self, KeyError> {
        let value = value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| KeyError::Missing(name.to_string()))?;
        let mut keys = Vec::new();
        for (i, part) in value.split(',').enumerate() {
            let part = part.trim();
            let bytes = STANDARD
                .decode(part)
                .or_else(|_| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')))
                .map_err(|_| KeyError::Malformed(name.to_string(), i + 1, "not base64"))?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| KeyError::Malformed(name.to_string(), i + 1, "not 32 bytes"))?;
            let id = crate::identity::sha256(&bytes);
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| KeyError::Malformed(name.to_string(), i + 1, "not an AES-256 key"))?;
            keys.push(([id[0], id[1], id[2], id[3]], LessSafeKey::new(unbound)));
        }
        Ok(Self { keys })
    }

    /// Seals `plain`, bound to `context` (the store key it is written under).
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        let (id, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(HEADER + plain.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    /// Opens a value sealed under `context`; `None` when it was not sealed by one of these keys
    /// for this context, or was changed.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < HEADER + 16 || sealed[0] != VERSION {
            return None;
        }
        let (_, key) = self.keys.iter().find(|(id, _)| id[..] == sealed[1..5])?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed[5..HEADER]).ok()?;
        let mut body = sealed[HEADER..].to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(context), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> String {
        STANDARD.encode([b; 32])
    }

    #[test]
    fn sealed_values_open_only_under_their_key_and_context() {
        let s = Sealer::from_env_value("K", Some(&key(1))).unwrap();
        let sealed = s.seal(b"ctx", b"secret token").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(s.open(b"ctx", &sealed).unwrap(), b"secret token");
        assert!(s.open(b"other", &sealed).is_none());
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(s.open(b"ctx", &changed).is_none());
        let other = Sealer::from_env_value("K", Some(&key(2))).unwrap();
        assert!(other.open(b"ctx", &sealed).is_none());
    }

    #[test]
    fn a_rotated_key_still_opens_what_the_old_one_sealed() {
        let old = Sealer::from_env_value("K", Some(&key(1))).unwrap();
        let sealed = old.seal(b"c", b"v").unwrap();
        let rotated = Sealer::from_env_value("K", Some(&format!("{},{}", key(2), key(1)))).unwrap();
        assert_eq!(rotated.open(b"c", &sealed).unwrap(), b"v");
        // New values use the new key.
        let new = rotated.seal(b"c", b"v").unwrap();
        assert!(old.open(b"c", &new).is_none());
    }

    #[test]
    fn missing_and_malformed_keys_name_the_variable_never_the_value() {
        assert_eq!(
            Sealer::from_env_value("MTLS_GATEWAY_STATE_KEY", None).unwrap_err(),
            KeyError::Missing("MTLS_GATEWAY_STATE_KEY".into())
        );
        let short = STANDARD.encode([7u8; 16]);
        let e = Sealer::from_env_value("K", Some(&short)).unwrap_err();
        assert!(e.to_string().contains("K") && !e.to_string().contains(&short));
        assert!(Sealer::from_env_value("K", Some("!!!")).is_err());
    }
}
