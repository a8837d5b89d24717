//! The [`Authenticator`]: device state plus the CTAP2 and U2F command handlers,
//! behind the [`App`] trait.
//!
//! # Signature counters
//!
//! Each discoverable (resident) credential keeps its own counter in its record.
//! All non-discoverable credentials (wrapped credential IDs, including U2F key
//! handles) share one device-wide counter in the device record, because nothing
//! is stored for them. Counters go up by one per signature, and the new value is
//! written to storage *before* the signature is made: a storage failure gives an
//! error response, never a signature with an unpersisted counter. A reset keeps
//! the global counter (it never goes backwards).

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::app::{App, CallContext, Message, Outcome, Protocol};
use crate::credential::{
    self, CredentialFlags, CredentialKey, ResidentCredential, ResidentCredentialInfo,
    MAX_CRED_BLOB_LENGTH,
};
use crate::crypto::{SecretKey, WrapKey};
use crate::ctap1::presence::{U2fPresence, U2fRequest};
use crate::ctap2::credential_management::CredMgmtState;
use crate::pin::{Features, PinUv};
use crate::platform::{Platform, PresenceStatus, Storage, StorageError, UserPresence};
use crate::store::{self, DeviceState, SlotMap, StoreError, MAX_RESIDENT_CREDENTIALS};

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

/// A batch attestation key and its certificate.
#[derive(Clone)]
pub struct Attestation {
    /// The P-256 private key (big-endian scalar).
    pub private_key: [u8; 32],
    /// The DER X.509 batch certificate for that key.
    pub certificate: heapless::Vec<u8, 1024>,
}

impl Drop for Attestation {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

impl core::fmt::Debug for Attestation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Attestation")
            .field("private_key", &"..")
            .field("certificate_len", &self.certificate.len())
            .finish()
    }
}

/// Static configuration of the authenticator.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The AAGUID reported in getInfo and attested credential data.
    pub aaguid: [u8; 16],
    /// Batch attestation. `None` gives self attestation ("packed" signed by the
    /// credential key; for U2F a self-signed certificate of the credential key).
    pub attestation: Option<Attestation>,
    /// Reported as getInfo firmwareVersion.
    pub firmware_version: u32,
    /// Enforce CTAP 2.1's rule that authenticatorReset is only allowed within
    /// 10 s of power-up (the transport's `now_ms` counts from power-up).
    /// Defaults to `false`: tools and test suites (`fido2-token -R`,
    /// python-fido2's device tests) reset a simulated key whenever they like,
    /// without replugging it first.
    pub reset_requires_fresh_power_up: bool,
    /// The key has a built-in user-verification method (reached through
    /// [`crate::platform::UserPresence::verify_user`]): getInfo `uv: true`,
    /// clientPIN getPinUvAuthTokenUsingUvWithPermissions and getUVRetries, and
    /// the `uv` option of makeCredential / getAssertion. Defaults to `false`:
    /// PIN-only, as without it.
    pub builtin_uv: bool,
}

/// Why [`Authenticator::new`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The storage back end failed; nothing was changed.
    Storage(StorageError),
    /// The stored device state is corrupt or of an unknown version. The device
    /// refuses to start and leaves the state untouched.
    Corrupt,
    /// `Config::attestation` holds an invalid private key.
    InvalidAttestationKey,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Storage(e) => write!(f, "storage failed: {e:?}"),
            InitError::Corrupt => {
                f.write_str("stored device state is corrupt or of an unknown version")
            }
            InitError::InvalidAttestationKey => f.write_str("invalid attestation private key"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for InitError {}

/// State kept between authenticatorGetAssertion and authenticatorGetNextAssertion.
#[derive(Debug)]
pub(crate) struct PendingAssertions {
    pub(crate) channel: u32,
    pub(crate) last_ms: u64,
    pub(crate) rp_id_hash: [u8; 32],
    pub(crate) client_data_hash: [u8; 32],
    pub(crate) flags: u8,
    /// Slots still to serve, the next one last.
    pub(crate) remaining: heapless::Vec<u16, { MAX_RESIDENT_CREDENTIALS as usize }>,
    /// The request's extensions, applied to every credential served.
    pub(crate) extensions: crate::ctap2::extensions::AssertionExtensions,
}

/// A credential of ours, found by ID.
pub(crate) struct FoundCredential {
    pub(crate) key: CredentialKey,
    pub(crate) id: heapless::Vec<u8, 255>,
    /// For a discoverable credential: its slot and user handle.
    pub(crate) resident: Option<(u16, heapless::Vec<u8, 64>)>,
    /// Policy bits from the credential ID (credProtect, hmac-secret).
    pub(crate) flags: CredentialFlags,
    /// A discoverable credential's credBlob (empty otherwise).
    pub(crate) cred_blob: heapless::Vec<u8, MAX_CRED_BLOB_LENGTH>,
}

/// A FIDO2/U2F authenticator over a [`Platform`].
pub struct Authenticator<S: Storage, U: UserPresence, R: RngCore + CryptoRng> {
    pub(crate) platform: Platform<S, U, R>,
    pub(crate) config: Config,
    pub(crate) state: DeviceState,
    pub(crate) wrap_key: WrapKey,
    pub(crate) slots: SlotMap,
    pub(crate) pending: Option<PendingAssertions>,
    /// The outstanding U2F presence request, bound to its request (U2F never
    /// blocks; see [`crate::ctap1::presence`]).
    pub(crate) u2f_presence: U2fPresence,
    /// PIN/UV auth state (PIN record, key agreement, pinUvAuthToken) and the
    /// alwaysUv setting.
    pub(crate) pin: PinUv,
    /// An authenticatorCredentialManagement enumeration in progress.
    pub(crate) cred_mgmt: Option<CredMgmtState>,
    /// An authenticatorLargeBlobs write in progress.
    pub(crate) large_blob_writer: crate::ctap2::large_blobs::LargeBlobWriter,
    /// An authenticatorReset was decided but not finished (see
    /// [`crate::ctap2`]'s reset module): nothing is served until it is.
    pub(crate) reset_pending: bool,
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Loads (or on first start creates and persists) device state: the device
    /// secret (32 random bytes) and the global counter; scans the credential slots.
    pub fn new(mut platform: Platform<S, U, R>, config: Config) -> Result<Self, InitError> {
        if let Some(att) = &config.attestation {
            SecretKey::from_bytes(&att.private_key)
                .map_err(|_| InitError::InvalidAttestationKey)?;
        }
        let state = match store::load_device(&mut platform.storage) {
            Ok(Some(state)) => state,
            Ok(None) => {
                let mut state = DeviceState {
                    secret: [0; 32],
                    global_counter: 0,
                };
                platform.rng.fill_bytes(&mut state.secret);
                store::save_device(&mut platform.storage, &state).map_err(init_error)?;
                state
            }
            Err(e) => return Err(init_error(e)),
        };
        let wrap_key = WrapKey::derive(&state.secret).map_err(|_| InitError::Corrupt)?;
        // Power-up of PIN/UV auth: fresh key agreement keys and tokens.
        let features = Features {
            builtin_uv: config.builtin_uv,
            ..Features::default()
        };
        let pin = PinUv::power_up(features, &mut platform.storage, &mut platform.rng)
            .map_err(InitError::Storage)?;
        let mut this = Authenticator {
            platform,
            config,
            state,
            wrap_key,
            slots: SlotMap::default(),
            pending: None,
            u2f_presence: U2fPresence::default(),
            pin,
            cred_mgmt: None,
            large_blob_writer: Default::default(),
            reset_pending: false,
        };
        // A reset interrupted by a crash is finished before anything else.
        if this.reset_journal_exists().map_err(InitError::Storage)? {
            this.reset_pending = true;
            this.finish_pending_reset().map_err(init_error)?;
        }
        this.scan_slots().map_err(init_error)?;
        Ok(this)
    }

    /// Builds the slot map. A record that does not parse is kept (and never
    /// overwritten); a record whose credential no longer opens (left over from an
    /// interrupted reset) is treated as free.
    fn scan_slots(&mut self) -> Result<(), StoreError> {
        for slot in 0..MAX_RESIDENT_CREDENTIALS {
            let used = match store::load_credential(&mut self.platform.storage, slot) {
                Ok(None) => false,
                Ok(Some(rec)) => self.opens(&rec, slot),
                Err(StoreError::Corrupt) => true,
                Err(e) => return Err(e),
            };
            self.slots.set(slot, used);
        }
        Ok(())
    }

    fn opens(&self, rec: &ResidentCredential, slot: u16) -> bool {
        credential::unwrap(&self.wrap_key, &rec.rp_id_hash, &rec.credential_id)
            .is_ok_and(|c| c.slot == Some(slot))
    }

    /// The platform (storage, presence, RNG).
    pub fn platform(&self) -> &Platform<S, U, R> {
        &self.platform
    }

    /// The platform, mutably.
    pub fn platform_mut(&mut self) -> &mut Platform<S, U, R> {
        &mut self.platform
    }

    /// Consumes the authenticator and returns its platform.
    pub fn into_platform(self) -> Platform<S, U, R> {
        self.platform
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many more discoverable credentials fit.
    pub fn remaining_discoverable_credentials(&self) -> u16 {
        MAX_RESIDENT_CREDENTIALS - self.slots.used()
    }

    /// Visits each resident credential (for `ferrokey list`), in slot order.
    /// Records that do not parse are skipped.
    pub fn for_each_resident_credential(
        &mut self,
        mut f: impl FnMut(&ResidentCredentialInfo<'_>),
    ) -> Result<(), StoreError> {
        for slot in 0..MAX_RESIDENT_CREDENTIALS {
            if !self.slots.is_used(slot) {
                continue;
            }
            match store::load_credential(&mut self.platform.storage, slot) {
                Ok(Some(rec)) if self.opens(&rec, slot) => f(&rec.info(slot)),
                Ok(_) | Err(StoreError::Corrupt) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Finds a credential of ours by ID for `rp_id_hash`. `Ok(None)` for IDs
    /// that are not ours (foreign, forged, other RP, deleted or overwritten).
    pub(crate) fn find_credential(
        &mut self,
        rp_id_hash: &[u8; 32],
        id: &[u8],
    ) -> Result<Option<FoundCredential>, StoreError> {
        let Ok(unwrapped) = credential::unwrap(&self.wrap_key, rp_id_hash, id) else {
            return Ok(None);
        };
        let Ok(id_vec) = heapless::Vec::from_slice(id) else {
            return Ok(None);
        };
        let mut cred_blob = heapless::Vec::new();
        let resident = match unwrapped.slot {
            None => None,
            Some(slot) => {
                if !self.slots.is_used(slot) {
                    return Ok(None);
                }
                match store::load_credential(&mut self.platform.storage, slot) {
                    Ok(Some(rec))
                        if rec.credential_id.as_slice() == id && rec.rp_id_hash == *rp_id_hash =>
                    {
                        cred_blob = rec.cred_blob;
                        Some((slot, rec.user_id))
                    }
                    Ok(_) | Err(StoreError::Corrupt) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(Some(FoundCredential {
            key: unwrapped.key,
            id: id_vec,
            resident,
            flags: unwrapped.flags,
            cred_blob,
        }))
    }

    /// Loads the resident credential in `slot` if it belongs to `rp_id_hash`.
    pub(crate) fn load_resident(
        &mut self,
        slot: u16,
        rp_id_hash: &[u8; 32],
    ) -> Result<Option<FoundCredential>, StoreError> {
        let rec = match store::load_credential(&mut self.platform.storage, slot) {
            Ok(Some(rec)) if rec.rp_id_hash == *rp_id_hash => rec,
            Ok(_) | Err(StoreError::Corrupt) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Ok(unwrapped) = credential::unwrap(&self.wrap_key, rp_id_hash, &rec.credential_id)
        else {
            return Ok(None);
        };
        if unwrapped.slot != Some(slot) {
            return Ok(None);
        }
        Ok(Some(FoundCredential {
            key: unwrapped.key,
            id: rec.credential_id,
            resident: Some((slot, rec.user_id)),
            flags: unwrapped.flags,
            cred_blob: rec.cred_blob,
        }))
    }

    /// Increments and persists the counter of a credential (its own for a
    /// resident one, else the global one); returns the new value. Nothing may be
    /// signed with the value unless this returned `Ok`.
    pub(crate) fn next_sign_count(
        &mut self,
        resident_slot: Option<u16>,
    ) -> Result<u32, StoreError> {
        match resident_slot {
            None => {
                let old = self.state.global_counter;
                let new = old.checked_add(1).ok_or(StoreError::CounterExhausted)?;
                self.state.global_counter = new;
                if let Err(e) = store::save_device(&mut self.platform.storage, &self.state) {
                    self.state.global_counter = old;
                    return Err(e);
                }
                Ok(new)
            }
            Some(slot) => {
                let mut rec = store::load_credential(&mut self.platform.storage, slot)?
                    .ok_or(StoreError::Corrupt)?;
                rec.sign_count = rec
                    .sign_count
                    .checked_add(1)
                    .ok_or(StoreError::CounterExhausted)?;
                store::save_credential(&mut self.platform.storage, slot, &rec)?;
                Ok(rec.sign_count)
            }
        }
    }

    /// Replaces the device secret (invalidating every credential ID issued so
    /// far) and deletes all resident credentials. The global counter is kept.
    pub(crate) fn wipe(&mut self) -> Result<(), StoreError> {
        let mut new_state = DeviceState {
            secret: [0; 32],
            global_counter: self.state.global_counter,
        };
        self.platform.rng.fill_bytes(&mut new_state.secret);
        let wrap_key = WrapKey::derive(&new_state.secret).map_err(|_| StoreError::Corrupt)?;
        store::save_device(&mut self.platform.storage, &new_state)?;
        self.state = new_state;
        self.wrap_key = wrap_key;
        self.pending = None;
        // The large-blob array goes back to its initial value.
        self.large_blob_writer.clear();
        let mut result =
            crate::ctap2::large_blobs::remove(&mut self.platform.storage).map_err(StoreError::from);
        // Old records can no longer be opened; remove them all. A record that
        // fails to go is harmless (it is never ours again) and its slot is reused.
        for slot in 0..MAX_RESIDENT_CREDENTIALS {
            if let Err(e) = store::remove_credential(&mut self.platform.storage, slot) {
                result = Err(e);
            }
            self.slots.set(slot, false);
        }
        result
    }

    /// The U2F user-presence test for `request`: never blocks. True when the
    /// user approved this very request; otherwise the request is (or stays)
    /// outstanding so a retry of the same command can succeed (see
    /// [`crate::ctap1::presence`]).
    pub(crate) fn u2f_user_present(&mut self, context: &CallContext, request: U2fRequest) -> bool {
        if context.up_granted {
            return true;
        }
        self.u2f_presence
            .check(&mut self.platform.presence, request, context.now_ms)
    }
}

fn init_error(e: StoreError) -> InitError {
    match e {
        StoreError::Storage(e) => InitError::Storage(e),
        StoreError::Corrupt | StoreError::CounterExhausted => InitError::Corrupt,
    }
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> App for Authenticator<S, U, R> {
    fn handle(
        &mut self,
        protocol: Protocol,
        request: &[u8],
        context: CallContext,
        response: &mut Message,
    ) -> Outcome {
        response.clear();
        if self.reset_pending && self.finish_pending_reset().is_err() {
            // A decided reset could not be finished: show no half-reset state.
            let status: &[u8] = match protocol {
                Protocol::Cbor => &[ctap_types::ctap2::Error::Other as u8],
                Protocol::Msg => &[0x6F, 0x00],
            };
            response.extend_from_slice(status).ok();
            return Outcome::Response;
        }
        match protocol {
            Protocol::Cbor => {
                // A CTAP2 request ends an outstanding U2F presence request.
                self.u2f_presence.withdraw(&mut self.platform.presence);
                crate::ctap2::handle(self, request, context, response)
            }
            Protocol::Msg => {
                self.pending = None;
                self.cred_mgmt = None;
                if self.pin.always_uv() {
                    // CTAP 2.1 alwaysUv: U2F cannot verify the user, so the
                    // CTAP1/U2F interface is off (INIT also reports NMSG).
                    let status = crate::ctap1::sw::INS_NOT_SUPPORTED.to_be_bytes();
                    response.extend_from_slice(&status).ok();
                    return Outcome::Response;
                }
                crate::ctap1::handle(self, request, context, response)
            }
        }
    }

    fn supports_ctap1(&self) -> bool {
        !self.pin.always_uv()
    }

    fn request_presence(&mut self, now_ms: u64) {
        self.u2f_presence.forget();
        self.platform.presence.request(now_ms);
    }

    fn poll_presence(&mut self, now_ms: u64) -> PresenceStatus {
        self.platform.presence.poll(now_ms)
    }

    fn cancel_presence(&mut self) {
        self.u2f_presence.forget();
        self.platform.presence.cancel();
    }

    /// A USB bus reset keeps the key powered: only the state of the host's
    /// sessions goes (a getNextAssertion or credentialManagement enumeration,
    /// an outstanding U2F presence request). PIN/UV state — the key agreement
    /// keys, the pinUvAuthToken and a PIN_AUTH_BLOCKED state after three wrong
    /// PINs — survives, as on a real key. Losing power is a different event:
    /// the device shell drops the authenticator and builds a new one from
    /// storage ([`Authenticator::new`]), which starts all of that afresh.
    fn transport_reset(&mut self) {
        self.pending = None;
        self.cred_mgmt = None;
        self.u2f_presence.withdraw(&mut self.platform.presence);
    }
}
