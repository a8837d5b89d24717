//! Moving resident credentials out of and into a key's core: the one place
//! both the control API (on the key's own task) and the CLI (on a stopped
//! key's state) read and write them.
//!
//! - [`collect`]: the key's resident credentials as [`Passkey`]s. As CXF
//!   says, a passkey whose signature counter is not 0 is left out (a copy
//!   that restarts at 0 would look like a clone to a relying party that
//!   checks counters) unless `include_used` asks for it anyway.
//! - [`import_all`]: all or nothing: credentials are imported one by one
//!   and, if one is refused, those imported before it are deleted again.

use ferrokey::authenticator::instrument::{NewCredential, PrivateKey as CorePrivateKey};
use ferrokey::authenticator::Authenticator;
use ferrokey::platform::{Storage, UserPresence};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::cxf::{Blob, Passkey};
use crate::control::webauthn::binary;
use crate::control::webauthn::credential::PrivateKey;

/// A resident credential left out of an export, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its credential ID (base64url).
    pub credential_id: String,
    /// Its RP ID.
    pub rp_id: String,
    /// Its signature counter.
    pub sign_count: u32,
}

/// The resident credentials of an export.
#[derive(Debug, Default)]
pub struct Collected {
    /// Those exported.
    pub passkeys: Vec<Passkey>,
    /// Those left out (used: counter above 0).
    pub skipped: Vec<Skipped>,
}

/// The key's resident credentials (see the module documentation). Fails if
/// the core hands out no private keys (a device-bound key).
pub fn collect<S: Storage, U: UserPresence, R: RngCore + CryptoRng>(
    app: &mut Authenticator<S, U, R>,
    include_used: bool,
) -> Result<Collected, String> {
    let mut out = Collected::default();
    let mut failure = None;
    app.visit_credentials(|c| {
        if !c.resident || failure.is_some() {
            return;
        }
        let (Some(rp_id), Some(key)) = (c.rp_id, c.private_key) else {
            failure = Some("the key hands out no private keys (it is device-bound)".to_string());
            return;
        };
        if c.sign_count > 0 && !include_used {
            out.skipped.push(Skipped {
                credential_id: binary::encode(c.id),
                rp_id: rp_id.to_string(),
                sign_count: c.sign_count,
            });
            return;
        }
        out.passkeys.push(Passkey {
            credential_id: c.id.to_vec(),
            rp_id: rp_id.to_string(),
            user_handle: c.user_handle.to_vec(),
            user_name: c.user_name.unwrap_or_default().to_string(),
            user_display_name: c.user_display_name.unwrap_or_default().to_string(),
            private_key: match key {
                CorePrivateKey::Es256(s) => PrivateKey::P256(Zeroizing::new(*s)),
                CorePrivateKey::Ed25519(s) => PrivateKey::Ed25519(Zeroizing::new(*s)),
            },
            large_blob: c.large_blob.map(|b| Blob {
                deflated: b.deflated.to_vec(),
                original_size: b.original_size,
            }),
        });
    })
    .map_err(|e| format!("reading the credentials: {e:?}"))?;
    match failure {
        Some(why) => Err(why),
        None => Ok(out),
    }
}

/// Why an import was refused (nothing was imported).
#[derive(Debug, PartialEq, Eq)]
pub struct ImportFailure {
    /// The credential refused (base64url), if one was.
    pub credential_id: Option<String>,
    /// Why.
    pub reason: String,
    /// Whether the key was the cause (full, storage) rather than the input.
    pub key_side: bool,
}

impl std::fmt::Display for ImportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.credential_id {
            Some(id) => write!(
                f,
                "credential {id} refused: {}; nothing was imported",
                self.reason
            ),
            None => write!(f, "{}; nothing was imported", self.reason),
        }
    }
}

/// Imports every passkey with counter 0, BE and BS as `backed_up` says
/// (`None`: the key's defaults), or none of them. Returns their IDs.
pub fn import_all<S: Storage, U: UserPresence, R: RngCore + CryptoRng>(
    app: &mut Authenticator<S, U, R>,
    passkeys: &[Passkey],
    backed_up: Option<bool>,
) -> Result<Vec<String>, ImportFailure> {
    let mut done: Vec<&[u8]> = Vec::new();
    for passkey in passkeys {
        let id = binary::encode(&passkey.credential_id);
        let imported = import_one(app, passkey, backed_up);
        if let Err((reason, key_side)) = imported {
            let mut rollback = String::new();
            for earlier in done.iter().rev() {
                if let Err(e) = app.delete_credential(earlier) {
                    rollback = format!(
                        " (and deleting an earlier one again failed: {e:?}; the key may hold part of the import)"
                    );
                }
            }
            return Err(ImportFailure {
                credential_id: Some(id),
                reason: format!("{reason}{rollback}"),
                key_side,
            });
        }
        done.push(&passkey.credential_id);
    }
    Ok(passkeys
        .iter()
        .map(|p| binary::encode(&p.credential_id))
        .collect())
}

fn import_one<S: Storage, U: UserPresence, R: RngCore + CryptoRng>(
    app: &mut Authenticator<S, U, R>,
    passkey: &Passkey,
    backed_up: Option<bool>,
) -> Result<(), (String, bool)> {
    use ferrokey::authenticator::instrument::ImportError;
    let private_key = match &passkey.private_key {
        PrivateKey::P256(s) => CorePrivateKey::Es256(**s),
        PrivateKey::Ed25519(s) => CorePrivateKey::Ed25519(**s),
    };
    let blob = passkey.large_blob_bytes().map_err(|e| (e, false))?;
    let new = NewCredential {
        id: &passkey.credential_id,
        rp_id: &passkey.rp_id,
        resident: true,
        private_key: &private_key,
        user_handle: &passkey.user_handle,
        sign_count: 0,
        large_blob: blob.as_deref(),
        backup_eligible: backed_up,
        backup_state: backed_up,
        user_name: Some(passkey.user_name.as_str()).filter(|s| !s.is_empty()),
        user_display_name: Some(passkey.user_display_name.as_str()).filter(|s| !s.is_empty()),
    };
    app.import_credential(&new).map_err(|e| {
        let key_side = matches!(
            e,
            ImportError::DiscoverableFull
                | ImportError::NoRoom
                | ImportError::LargeBlobTooLarge
                | ImportError::Storage(_)
                | ImportError::LargeBlobArrayUnreadable
        );
        (e.to_string(), key_side)
    })
}
