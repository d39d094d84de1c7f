//! Signing keys held in an HSM (SPEC §12 `pkcs11 = { module, token_label, key_label, pin_env }`),
//! through any PKCS#11 module (SoftHSM, YubiHSM, cloud HSM clients) with cryptoki: the key
//! signs inside the device and never leaves it. A small pool of logged-in sessions; a session
//! that fails (token reset, logged out) is replaced, logged in again, and the signature retried
//! once.

use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

/// Sessions kept open and logged in.
pub const POOL: usize = 4;

/// The signature schemes of SPEC §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// CKM_SHA256_RSA_PKCS (RS256).
    Pkcs1Sha256,
    /// CKM_SHA256_RSA_PKCS_PSS with MGF1-SHA256 and a 32-byte salt (PS256).
    PssSha256,
}

/// A private key on a PKCS#11 token.
pub struct Pkcs11Key {
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    key_label: String,
    token_label: String,
    sessions: Mutex<Vec<Session>>,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the PIN.
        f.debug_struct("Pkcs11Key")
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .finish_non_exhaustive()
    }
}

fn words(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => "the PIN is wrong".into(),
        CkError::Pkcs11(RvError::PinLocked, _) => "the PIN is locked".into(),
        CkError::Pkcs11(rv, _) => format!("{rv:?}"),
        other => other.to_string(),
    }
}

impl Pkcs11Key {
    /// Loads `module`, finds the token labelled `token_label`, logs in with `pin` and finds the
    /// private key labelled `key_label`. Each failure says which of them is wrong.
    pub fn open(
        module: &str,
        token_label: &str,
        key_label: &str,
        pin: String,
    ) -> Result<Self, String> {
        let ctx = Pkcs11::new(module)
            .map_err(|e| format!("cannot load the PKCS#11 module {module}: {e}"))?;
        match ctx.initialize(CInitializeArgs::OsThreads) {
            Ok(()) | Err(CkError::AlreadyInitialized) => {}
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(format!(
                    "the PKCS#11 module {module} did not initialize: {}",
                    words(&e)
                ))
            }
        }
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| format!("the PKCS#11 module {module} lists no slots: {}", words(&e)))?;
        let slot = slots
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|t| t.label().trim() == token_label)
            })
            .ok_or_else(|| format!("no token labelled \"{token_label}\" in {module}"))?;
        let key = Self {
            ctx,
            slot,
            pin: AuthPin::new(pin),
            key_label: key_label.to_string(),
            token_label: token_label.to_string(),
            sessions: Mutex::new(Vec::new()),
        };
        let session = key.session()?;
        key.find_key(&session)?;
        key.give_back(session);
        Ok(key)
    }

    fn session(&self) -> Result<Session, String> {
        let pooled = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        if let Some(s) = pooled {
            return Ok(s);
        }
        let session = self.ctx.open_ro_session(self.slot).map_err(|e| {
            format!(
                "token \"{}\": cannot open a session: {}",
                self.token_label,
                words(&e)
            )
        })?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(format!(
                "token \"{}\": login failed: {}",
                self.token_label,
                words(&e)
            )),
        }
    }

    fn give_back(&self, session: Session) {
        let mut pool = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL {
            pool.push(session);
        }
    }

    fn find_key(&self, session: &Session) -> Result<cryptoki::object::ObjectHandle, String> {
        let template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(self.key_label.as_bytes().to_vec()),
        ];
        let found = session.find_objects(&template).map_err(|e| {
            format!(
                "token \"{}\": cannot search keys: {}",
                self.token_label,
                words(&e)
            )
        })?;
        found.into_iter().next().ok_or_else(|| {
            format!(
                "token \"{}\" has no private key labelled \"{}\"",
                self.token_label, self.key_label
            )
        })
    }

    fn sign_once(&self, scheme: Scheme, data: &[u8]) -> Result<Vec<u8>, (bool, String)> {
        let session = self.session().map_err(|e| (false, e))?;
        let mechanism = match scheme {
            Scheme::Pkcs1Sha256 => Mechanism::Sha256RsaPkcs,
            Scheme::PssSha256 => Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                hash_alg: MechanismType::SHA256,
                mgf: PkcsMgfType::MGF1_SHA256,
                s_len: 32.into(),
            }),
        };
        let result = self
            .find_key(&session)
            .map_err(|e| (true, e))
            .and_then(|key| {
                session.sign(&mechanism, key, data).map_err(|e| {
                    (
                        true,
                        format!(
                            "token \"{}\": signing failed: {}",
                            self.token_label,
                            words(&e)
                        ),
                    )
                })
            });
        match result {
            Ok(sig) => {
                self.give_back(session);
                Ok(sig)
            }
            // The session is dropped (closed): the next one is opened and logged in afresh.
            Err(e) => Err(e),
        }
    }

    /// Signs `data` inside the token; a failed session is replaced and the signature retried once.
    pub fn sign(&self, scheme: Scheme, data: &[u8]) -> Result<Vec<u8>, String> {
        match self.sign_once(scheme, data) {
            Ok(sig) => Ok(sig),
            Err((true, first)) => {
                tracing::warn!(token = %self.token_label, error = %first, "PKCS#11 signature failed; retrying on a new session");
                self.sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                self.sign_once(scheme, data).map_err(|(_, e)| e)
            }
            Err((false, e)) => Err(e),
        }
    }
}
