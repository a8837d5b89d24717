//! The instrument API: what a test rig does to a key besides speaking CTAP
//! (the WebDriver virtual-authenticator commands and Chrome DevTools' extras,
//! served by the control API through the key's own task).
//!
//! - [`Authenticator::import_credential`]: seed a credential from a private key
//!   (WebDriver "Add Credential"). The key then uses it for real: a
//!   non-discoverable one is recognised by its given ID in an allowList, a
//!   discoverable one is found with an empty allowList and listed by
//!   credentialManagement. Its private key is sealed in its record under the
//!   device secret ([`crate::credential::sealed`]).
//! - [`Authenticator::visit_credentials`]: every credential the key holds or
//!   has issued and still tracks (discoverable, imported, and the
//!   non-discoverable ones made through CTAP, see [`crate::store::CredentialTable`]),
//!   with its current counter; private keys only when [`super::Config::exportable`].
//! - [`Authenticator::delete_credential`], [`Authenticator::delete_all_credentials`],
//!   [`Authenticator::set_credential_properties`] (BE, BS, signCount).
//! - [`Authenticator::set_default_backup_flags`], [`Authenticator::set_response_overrides`]
//!   (CDP's setResponseOverrideBits) and [`Authenticator::set_counter_mode`].
//!
//! Nothing here allocates; errors say what was wrong.

use rand_core::{CryptoRng, RngCore};

use super::Authenticator;
use crate::credential::large_blob::{self, LargeBlobError};
use crate::credential::{
    self, sealed, Algorithm, CredentialFlags, CredentialKey, CredentialRecord, RecordKind,
};
use crate::crypto::sha256;
use crate::ctap2::large_blobs;
use crate::platform::{Storage, StorageError, UserPresence};
use crate::store::{self, SlotUse, StoreError, MAX_CREDENTIAL_RECORDS, MAX_RESIDENT_CREDENTIALS};

/// A credential private key, as imported or exported: the P-256 scalar
/// (big-endian) or the Ed25519 seed. Zeroized on drop; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub enum PrivateKey {
    /// An ES256 (P-256) private scalar.
    Es256([u8; 32]),
    /// An Ed25519 seed.
    Ed25519([u8; 32]),
}

impl PrivateKey {
    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PrivateKey::Es256(_) => Algorithm::Es256,
            PrivateKey::Ed25519(_) => Algorithm::EdDsa,
        }
    }

    /// The 32 secret bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        match self {
            PrivateKey::Es256(b) | PrivateKey::Ed25519(b) => b,
        }
    }

    fn from_key(key: &CredentialKey) -> Self {
        match key {
            CredentialKey::Es256(k) => PrivateKey::Es256(*k.as_bytes()),
            CredentialKey::Ed25519(k) => PrivateKey::Ed25519(*k.as_bytes()),
        }
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        match self {
            PrivateKey::Es256(b) | PrivateKey::Ed25519(b) => crate::wipe::wipe("PrivateKey", b),
        }
    }
}

impl core::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PrivateKey({:?}, ..)", self.algorithm())
    }
}

/// A credential to import (WebDriver's Credential Parameters).
#[derive(Clone, Copy, Debug)]
pub struct NewCredential<'a> {
    /// The credential ID: any 1 to 255 bytes not already in use.
    pub id: &'a [u8],
    /// The RP ID (1 to 256 bytes).
    pub rp_id: &'a str,
    /// Discoverable (resident) or not.
    pub resident: bool,
    /// The private key.
    pub private_key: &'a PrivateKey,
    /// The user handle: 1 to 64 bytes for a discoverable credential, at most
    /// 64 (possibly empty) otherwise.
    pub user_handle: &'a [u8],
    /// The counter the credential starts from (its next signature is above it).
    pub sign_count: u32,
    /// The credential's large blob (discoverable credentials only; it goes
    /// into the large-blob array under the credential's largeBlobKey).
    pub large_blob: Option<&'a [u8]>,
    /// Backup eligibility; `None` takes the key's default.
    pub backup_eligible: Option<bool>,
    /// Backup state; `None` takes the key's default.
    pub backup_state: Option<bool>,
    /// The user name (at most 64 bytes).
    pub user_name: Option<&'a str>,
    /// The user display name (at most 64 bytes).
    pub user_display_name: Option<&'a str>,
}

/// Why an import failed. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportError {
    /// The credential ID is empty or longer than 255 bytes (the most a CTAP
    /// credential descriptor carries); holds the length given.
    IdLength(usize),
    /// The RP ID is empty or longer than 256 bytes.
    RpIdLength(usize),
    /// The user handle is longer than 64 bytes, or empty for a discoverable
    /// credential; holds the length given.
    UserHandleLength(usize),
    /// A user name or display name is longer than 64 bytes.
    NameLength(usize),
    /// The private key is not a valid key (a P-256 scalar of zero or above
    /// the group order).
    InvalidPrivateKey,
    /// A credential with this ID already exists on the key.
    DuplicateId,
    /// The key already holds its maximum of discoverable credentials.
    DiscoverableFull,
    /// Every credential record is in use by discoverable or imported credentials.
    NoRoom,
    /// A large blob was given for a non-discoverable credential.
    LargeBlobNeedsResident,
    /// The large blob does not fit in the large-blob array.
    LargeBlobTooLarge,
    /// The stored large-blob array could not be read; it was left untouched.
    LargeBlobArrayUnreadable,
    /// Storage failed.
    Storage(StoreError),
}

impl core::fmt::Display for ImportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImportError::IdLength(n) => write!(
                f,
                "credentialId is {n} bytes; it must be 1 to 255 bytes (CTAP carries at most 255)"
            ),
            ImportError::RpIdLength(n) => write!(f, "rpId is {n} bytes; it must be 1 to 256"),
            ImportError::UserHandleLength(n) => write!(
                f,
                "userHandle is {n} bytes; it must be at most 64 (and at least 1 for a resident credential)"
            ),
            ImportError::NameLength(n) => {
                write!(f, "a user name is {n} bytes; at most 64 are allowed")
            }
            ImportError::InvalidPrivateKey => f.write_str("privateKey is not a valid key"),
            ImportError::DuplicateId => f.write_str("a credential with this ID already exists"),
            ImportError::DiscoverableFull => write!(
                f,
                "the key already holds {MAX_RESIDENT_CREDENTIALS} resident credentials"
            ),
            ImportError::NoRoom => f.write_str("every credential record is in use"),
            ImportError::LargeBlobNeedsResident => {
                f.write_str("largeBlob is only stored for resident credentials")
            }
            ImportError::LargeBlobTooLarge => f.write_str(
                "largeBlob does not fit in the key's large-blob array (2048 bytes in all)",
            ),
            ImportError::LargeBlobArrayUnreadable => {
                f.write_str("the stored large-blob array is unreadable; it was left untouched")
            }
            ImportError::Storage(e) => write!(f, "storage failed: {e:?}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ImportError {}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        ImportError::Storage(e)
    }
}

/// A credential's large blob as found in the large-blob array: its DEFLATE
/// data (as the client that wrote it compressed it) and original size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LargeBlob<'a> {
    /// The DEFLATE-compressed blob (RFC 1951, raw).
    pub deflated: &'a [u8],
    /// The size of the blob before compression.
    pub original_size: u64,
}

/// One credential, as [`Authenticator::visit_credentials`] shows it.
#[derive(Clone, Copy, Debug)]
pub struct CredentialView<'a> {
    /// The credential ID.
    pub id: &'a [u8],
    /// The RP ID (`None` for U2F registrations: only the application
    /// parameter is known, in `rp_id_hash`).
    pub rp_id: Option<&'a str>,
    /// SHA-256 of the RP ID (the U2F application parameter).
    pub rp_id_hash: &'a [u8; 32],
    /// Discoverable (resident).
    pub resident: bool,
    /// Imported through [`Authenticator::import_credential`].
    pub imported: bool,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The private key, when the key is exportable ([`super::Config::exportable`]).
    pub private_key: Option<&'a PrivateKey>,
    /// The user handle (empty when none was given).
    pub user_handle: &'a [u8],
    /// The user name.
    pub user_name: Option<&'a str>,
    /// The user display name.
    pub user_display_name: Option<&'a str>,
    /// The current signature counter (the last value signed, or the value the
    /// credential continues from).
    pub sign_count: u32,
    /// Backup eligibility (BE).
    pub backup_eligible: bool,
    /// Backup state (BS).
    pub backup_state: bool,
    /// The credProtect level (0 = not requested).
    pub cred_protect: u8,
    /// The large blob, for a discoverable credential that has one.
    pub large_blob: Option<LargeBlob<'a>>,
}

/// Properties [`Authenticator::set_credential_properties`] changes (`None`
/// leaves one as it is).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredentialProperties {
    /// Backup eligibility (BE).
    pub backup_eligible: Option<bool>,
    /// Backup state (BS).
    pub backup_state: Option<bool>,
    /// The counter: the next signature is above it.
    pub sign_count: Option<u32>,
}

/// CDP's setResponseOverrideBits: deliberate faults in makeCredential and
/// getAssertion responses, for testing relying parties. Volatile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseOverrides {
    /// The signature is wrong (well-formed, so a relying party's verifier
    /// rejects it rather than failing to parse it; CDP's own device sends
    /// zero bytes).
    pub bogus_signature: bool,
    /// The UV flag is cleared.
    pub bad_uv: bool,
    /// The UP flag is cleared.
    pub bad_up: bool,
}

impl ResponseOverrides {
    /// The authData flags after the overrides.
    pub(crate) fn flags(&self, flags: u8) -> u8 {
        let mut out = flags;
        if self.bad_uv {
            out &= !crate::ctap2::flags::UV;
        }
        if self.bad_up {
            out &= !crate::ctap2::flags::UP;
        }
        out
    }

    /// Corrupts `signature` when asked to: the last byte (the end of `s` in
    /// a DER ES256 signature, of `S` in an Ed25519 one) is flipped, which
    /// keeps the encoding valid and makes verification fail.
    pub(crate) fn signature(&self, signature: &mut [u8]) {
        if self.bogus_signature {
            if let Some(last) = signature.last_mut() {
                *last ^= 0xFF;
            }
        }
    }
}

/// The slots that hold credentials (not tombstones, free or unreadable).
const LIVE: [SlotUse; 3] = [SlotUse::Discoverable, SlotUse::Tracked, SlotUse::Imported];

type SlotList = heapless::Vec<u16, { MAX_CREDENTIAL_RECORDS as usize }>;

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Imports a credential (see [`NewCredential`] and [`ImportError`]).
    pub fn import_credential(&mut self, new: &NewCredential<'_>) -> Result<(), ImportError> {
        check_new(new)?;
        self.settle_reset()?;
        let rp_id_hash = sha256(new.rp_id.as_bytes());
        let key =
            CredentialKey::from_bytes(new.private_key.algorithm(), new.private_key.as_bytes())
                .map_err(|_| ImportError::InvalidPrivateKey)?;
        if self.find_slot_by_id(new.id)?.is_some()
            || credential::unwrap(&self.wrap_key, &rp_id_hash, new.id).is_ok()
        {
            return Err(ImportError::DuplicateId);
        }
        if new.resident && self.table.discoverable() >= MAX_RESIDENT_CREDENTIALS {
            return Err(ImportError::DiscoverableFull);
        }
        let slot = self.table.slot_for_new().ok_or(ImportError::NoRoom)?;
        let sealed_key = sealed::seal(
            &self.import_key,
            &mut self.platform.rng,
            &rp_id_hash,
            new.id,
            &key,
        )
        .map_err(|_| ImportError::InvalidPrivateKey)?;
        let backup_eligible = new
            .backup_eligible
            .unwrap_or(self.config.default_backup_eligible);
        let backup_state = new.backup_state.unwrap_or(self.config.default_backup_state);
        let record = CredentialRecord {
            kind: if new.resident {
                RecordKind::Discoverable
            } else {
                RecordKind::NonDiscoverable
            },
            rp_id_hash,
            rp_id: heapless::String::try_from(new.rp_id)
                .map_err(|_| ImportError::RpIdLength(new.rp_id.len()))?,
            user_id: heapless::Vec::from_slice(new.user_handle)
                .map_err(|_| ImportError::UserHandleLength(new.user_handle.len()))?,
            user_name: short_string(new.user_name)?,
            display_name: short_string(new.user_display_name)?,
            credential_id: heapless::Vec::from_slice(new.id)
                .map_err(|_| ImportError::IdLength(new.id.len()))?,
            sign_count: new.sign_count,
            created: self.table.next_created(),
            algorithm: key.algorithm(),
            cred_protect: 0,
            flags: CredentialFlags::default().with_backup(backup_eligible, backup_state),
            backup_eligible,
            backup_state,
            cred_blob: heapless::Vec::new(),
            sealed_key: Some(sealed_key),
            epoch: Some(self.epoch),
        };
        if let Some(blob) = new.large_blob {
            self.store_large_blob(new.id, blob)?;
        }
        self.forget_sessions();
        if new.sign_count > self.state.counter_mark {
            // The device mark covers every counter the key may sign above.
            self.set_device_mark(new.sign_count)?;
        }
        self.put_record(slot, &record, new.sign_count)?;
        self.global_count = self.global_count.max(new.sign_count);
        Ok(())
    }

    fn set_device_mark(&mut self, mark: u32) -> Result<(), StoreError> {
        let mut state = self.state.clone();
        state.counter_mark = mark;
        store::save_device(&mut self.platform.storage, &state)?;
        self.state = state;
        Ok(())
    }

    /// Puts `blob` into the large-blob array as the entry of credential `id`,
    /// replacing an entry that credential had.
    fn store_large_blob(&mut self, id: &[u8], blob: &[u8]) -> Result<(), ImportError> {
        let key = self.secrets.large_blob_key(id);
        let array = large_blobs::load(&mut self.platform.storage)
            .map_err(|e| ImportError::Storage(e.into()))?;
        let entries =
            large_blob::entries(&array).map_err(|_| ImportError::LargeBlobArrayUnreadable)?;
        let kept: heapless::Vec<_, 64> = entries
            .iter()
            .filter(|e| large_blob::open(&key, e).is_none())
            .copied()
            .collect();
        let mut nonce = [0u8; large_blob::NONCE_LEN];
        self.platform.rng.fill_bytes(&mut nonce);
        let new_array =
            large_blob::build(&kept, Some((&key, nonce, blob))).map_err(|e| match e {
                LargeBlobError::Full => ImportError::LargeBlobTooLarge,
                LargeBlobError::Unreadable => ImportError::LargeBlobArrayUnreadable,
                LargeBlobError::Crypto => ImportError::Storage(StoreError::Corrupt),
            })?;
        large_blobs::save(&mut self.platform.storage, &new_array).map_err(|e| match e {
            StorageError::Full | StorageError::TooLarge => ImportError::LargeBlobTooLarge,
            other => ImportError::Storage(other.into()),
        })
    }

    /// Visits every credential the key holds or tracks, in slot order.
    /// Records that do not parse are skipped.
    pub fn visit_credentials(
        &mut self,
        mut f: impl FnMut(&CredentialView<'_>),
    ) -> Result<(), StoreError> {
        self.settle_reset()?;
        let array = large_blobs::load(&mut self.platform.storage)?;
        let entries = large_blob::entries(&array).unwrap_or_default();
        let slots: SlotList = (0..MAX_CREDENTIAL_RECORDS)
            .filter(|&s| LIVE.contains(&self.table.use_of(s)))
            .collect();
        for slot in slots {
            let rec = match store::load_credential(&mut self.platform.storage, slot) {
                Ok(Some(rec)) => rec,
                Ok(None) | Err(StoreError::Corrupt) => continue,
                Err(e) => return Err(e),
            };
            let private_key = if self.config.exportable {
                self.key_of(slot, &rec)
                    .map(|(key, _)| PrivateKey::from_key(&key))
            } else {
                None
            };
            let blob = if rec.is_discoverable() {
                let key = self.secrets.large_blob_key(&rec.credential_id);
                entries.iter().find_map(|e| large_blob::open(&key, e))
            } else {
                None
            };
            f(&CredentialView {
                id: &rec.credential_id,
                rp_id: (!rec.rp_id.is_empty()).then_some(rec.rp_id.as_str()),
                rp_id_hash: &rec.rp_id_hash,
                resident: rec.is_discoverable(),
                imported: rec.sealed_key.is_some(),
                algorithm: rec.algorithm,
                private_key: private_key.as_ref(),
                user_handle: &rec.user_id,
                user_name: rec.user_name.as_deref(),
                user_display_name: rec.display_name.as_deref(),
                sign_count: self.table.count(slot),
                backup_eligible: rec.backup_eligible,
                backup_state: rec.backup_state,
                cred_protect: rec.cred_protect,
                large_blob: blob.as_ref().map(|(data, size)| LargeBlob {
                    deflated: data,
                    original_size: *size,
                }),
            });
        }
        Ok(())
    }

    /// The slot of the credential with this ID (any RP), if the key holds it.
    fn find_slot_by_id(&mut self, id: &[u8]) -> Result<Option<u16>, StoreError> {
        let id_tag = store::tag(id);
        let slots: SlotList = (0..MAX_CREDENTIAL_RECORDS)
            .filter(|&s| LIVE.contains(&self.table.use_of(s)) && self.table.id_tag(s) == id_tag)
            .collect();
        for slot in slots {
            match store::load_credential(&mut self.platform.storage, slot) {
                Ok(Some(rec)) if rec.credential_id.as_slice() == id => return Ok(Some(slot)),
                Ok(_) | Err(StoreError::Corrupt) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Deletes the credential with this ID; `Ok(false)` when the key does not
    /// hold it. A non-discoverable credential made through CTAP leaves a
    /// tombstone behind (its ID would otherwise still work).
    pub fn delete_credential(&mut self, id: &[u8]) -> Result<bool, StoreError> {
        self.settle_reset()?;
        let Some(slot) = self.find_slot_by_id(id)? else {
            return Ok(false);
        };
        self.forget_sessions();
        if self.table.use_of(slot) == SlotUse::Tracked {
            let mut rec = store::load_credential(&mut self.platform.storage, slot)?
                .ok_or(StoreError::Corrupt)?;
            rec.kind = RecordKind::Tombstone;
            rec.user_id.clear();
            rec.user_name = None;
            rec.display_name = None;
            rec.epoch = Some(self.epoch);
            let live = self.table.count(slot);
            rec.sign_count = live;
            self.put_record(slot, &rec, live)?;
        } else {
            self.remove_record(slot)?;
        }
        Ok(true)
    }

    /// Deletes every credential, including every non-discoverable one ever
    /// issued (the device secret is replaced, as by a reset), and the
    /// large-blob array. The PIN and the counters' marks are kept.
    pub fn delete_all_credentials(&mut self) -> Result<(), StoreError> {
        self.settle_reset()?;
        self.forget_sessions();
        self.wipe()
    }

    /// Changes a credential's properties; `Ok(false)` when the key does not
    /// hold it.
    pub fn set_credential_properties(
        &mut self,
        id: &[u8],
        properties: &CredentialProperties,
    ) -> Result<bool, StoreError> {
        self.settle_reset()?;
        let Some(slot) = self.find_slot_by_id(id)? else {
            return Ok(false);
        };
        self.forget_sessions();
        if properties.backup_eligible.is_some() || properties.backup_state.is_some() {
            let mut rec = store::load_credential(&mut self.platform.storage, slot)?
                .ok_or(StoreError::Corrupt)?;
            rec.backup_eligible = properties.backup_eligible.unwrap_or(rec.backup_eligible);
            rec.backup_state = properties.backup_state.unwrap_or(rec.backup_state);
            rec.sign_count = self.table.mark(slot);
            rec.epoch = Some(self.epoch);
            let live = self.table.count(slot);
            self.put_record(slot, &rec, live)?;
        }
        if let Some(count) = properties.sign_count {
            self.set_sign_count(slot, count)?;
        }
        Ok(true)
    }

    /// The backup flags (BE, BS) new credentials get.
    pub fn set_default_backup_flags(&mut self, eligible: bool, backed_up: bool) {
        self.config.default_backup_eligible = eligible;
        self.config.default_backup_state = backed_up;
    }

    /// The response overrides in force.
    pub fn response_overrides(&self) -> ResponseOverrides {
        self.overrides
    }

    /// Sets the response overrides (CDP setResponseOverrideBits).
    pub fn set_response_overrides(&mut self, overrides: ResponseOverrides) {
        self.overrides = overrides;
    }

    /// Whether private keys are handed out.
    pub fn exportable(&self) -> bool {
        self.config.exportable
    }

    /// Ends the state a change of credentials invalidates: a getNextAssertion
    /// sequence and a credentialManagement enumeration.
    fn forget_sessions(&mut self) {
        self.pending = None;
        self.cred_mgmt = None;
        self.lookup_cache = None;
    }
}

/// An optional name as stored (at most 64 bytes).
fn short_string(name: Option<&str>) -> Result<Option<heapless::String<64>>, ImportError> {
    name.map(|n| heapless::String::try_from(n).map_err(|_| ImportError::NameLength(n.len())))
        .transpose()
}

fn check_new(new: &NewCredential<'_>) -> Result<(), ImportError> {
    if new.id.is_empty() || new.id.len() > 255 {
        return Err(ImportError::IdLength(new.id.len()));
    }
    if new.rp_id.is_empty() || new.rp_id.len() > 256 {
        return Err(ImportError::RpIdLength(new.rp_id.len()));
    }
    if new.user_handle.len() > 64 || (new.resident && new.user_handle.is_empty()) {
        return Err(ImportError::UserHandleLength(new.user_handle.len()));
    }
    for name in [new.user_name, new.user_display_name].into_iter().flatten() {
        if name.len() > 64 {
            return Err(ImportError::NameLength(name.len()));
        }
    }
    if new.large_blob.is_some() && !new.resident {
        return Err(ImportError::LargeBlobNeedsResident);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
