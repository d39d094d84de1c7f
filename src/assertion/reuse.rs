//! `reuse_assertion`: one signed assertion per audience, shared until near its `exp`.

use super::{Observe, SignFailure, Signer, LIFETIME_SECS};

/// Seconds before `exp` at which a reused assertion is re-signed.
pub const REUSE_MARGIN_SECS: u64 = 60;

/// While one caller re-signs, others keep the old assertion if it has at least this long left.
const STALE_OK_SECS: u64 = 10;

/// `reuse_assertion = true`: one signed assertion per audience, reused until
/// [`REUSE_MARGIN_SECS`] before its `exp`. When it nears expiry exactly one caller re-signs; the
/// others keep using the still-valid one meanwhile, so there is no thundering herd of signatures.
/// Entra does not check `jti`; identity providers that do must not use this.
#[derive(Debug, Default)]
pub struct AssertionCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Reusable>>>,
    /// Held while one caller signs: concurrent callers share its signature.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Reusable {
    jwt: std::sync::Arc<str>,
    exp: u64,
    refreshing: std::sync::atomic::AtomicBool,
}

impl AssertionCache {
    /// As [`AssertionCache::get`], signing off the request threads ([`Signer::sign_async`]);
    /// concurrent callers without a usable assertion wait for one signature.
    pub async fn get_async(
        &self,
        signer: &std::sync::Arc<Signer>,
        client_id: &str,
        aud: &str,
        now: u64,
        observe: Observe<'_>,
    ) -> Result<std::sync::Arc<str>, SignFailure> {
        let usable = |entries: &Self| {
            entries
                .entries
                .lock()
                .ok()
                .and_then(|m| m.get(aud).cloned())
                .filter(|c| now + REUSE_MARGIN_SECS < c.exp)
                .map(|c| c.jwt.clone())
        };
        if let Some(jwt) = usable(self) {
            return Ok(jwt);
        }
        let _flight = self.flight.lock().await;
        if let Some(jwt) = usable(self) {
            return Ok(jwt);
        }
        let jwt: std::sync::Arc<str> = signer
            .sign_async(client_id, aud, now, observe)
            .await?
            .into();
        self.keep(aud, &jwt, now);
        Ok(jwt)
    }

    /// Keeps `jwt`, signed at `now`, as the assertion for `aud`.
    fn keep(&self, aud: &str, jwt: &std::sync::Arc<str>, now: u64) {
        let fresh = std::sync::Arc::new(Reusable {
            jwt: jwt.clone(),
            exp: now + LIFETIME_SECS,
            refreshing: std::sync::atomic::AtomicBool::new(false),
        });
        if let Ok(mut m) = self.entries.lock() {
            m.insert(aud.to_string(), fresh);
        }
    }

    /// The assertion to send for (`client_id`, `aud`) at `now` (seconds since the epoch).
    pub fn get(
        &self,
        signer: &Signer,
        client_id: &str,
        aud: &str,
        now: u64,
    ) -> Result<std::sync::Arc<str>, aws_lc_rs::error::Unspecified> {
        use std::sync::atomic::Ordering;
        let current = self.entries.lock().ok().and_then(|m| m.get(aud).cloned());
        if let Some(c) = &current {
            if now + REUSE_MARGIN_SECS < c.exp {
                return Ok(c.jwt.clone());
            }
            if now + STALE_OK_SECS < c.exp && c.refreshing.swap(true, Ordering::AcqRel) {
                return Ok(c.jwt.clone());
            }
        }
        let jwt: std::sync::Arc<str> = signer.sign_at(client_id, aud, now)?.into();
        self.keep(aud, &jwt, now);
        Ok(jwt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assertion::tests::signer;

    #[test]
    fn a_reused_assertion_is_resigned_60_seconds_before_exp() {
        let signer = signer();
        let cache = AssertionCache::default();
        let t0 = 1_800_000_000;
        let first = cache.get(&signer, "c", "aud", t0).unwrap();
        let last_reuse = t0 + LIFETIME_SECS - REUSE_MARGIN_SECS - 1;
        assert_eq!(cache.get(&signer, "c", "aud", last_reuse).unwrap(), first);
        let renewed = cache.get(&signer, "c", "aud", last_reuse + 1).unwrap();
        assert_ne!(renewed, first, "re-signed inside the margin");
        // The new one is reused in turn, and audiences do not share.
        assert_eq!(
            cache.get(&signer, "c", "aud", last_reuse + 2).unwrap(),
            renewed
        );
        assert_ne!(
            cache.get(&signer, "c", "other", last_reuse + 2).unwrap(),
            renewed
        );
    }

    #[test]
    fn one_caller_resigns_while_others_keep_the_valid_assertion() {
        let signer = signer();
        let cache = AssertionCache::default();
        let t0 = 1_800_000_000;
        let first = cache.get(&signer, "c", "aud", t0).unwrap();
        let near = t0 + LIFETIME_SECS - 30;
        // Another caller is already re-signing: this one keeps the old, still-valid assertion.
        if let Some(entry) = cache.entries.lock().unwrap().get("aud") {
            entry
                .refreshing
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        assert_eq!(cache.get(&signer, "c", "aud", near).unwrap(), first);
        // Too close to exp to keep using it: sign regardless.
        assert_ne!(
            cache
                .get(&signer, "c", "aud", t0 + LIFETIME_SECS - 5)
                .unwrap(),
            first
        );
    }
}
