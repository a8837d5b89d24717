//! The [`Authenticator`]: device state plus the CTAP2 and U2F command handlers,
//! behind the [`App`] trait.
//!
//! Signature counters are described in [`counters`]; the instrument API (seed,
//! list, delete and tune credentials, as a test rig does) in [`instrument`].

use rand_core::{CryptoRng, RngCore};

use crate::app::{App, CallContext, Message, Outcome, Protocol};
use crate::credential::{
    self, CredentialFlags, CredentialKey, ResidentCredentialInfo, MAX_CRED_BLOB_LENGTH,
};
use crate::crypto::{SecretKey, WrapKey};
use crate::ctap1::presence::{U2fPresence, U2fRequest};
use crate::ctap2::credential_management::CredMgmtState;
use crate::ctap2::extensions::ExtensionSecrets;
use crate::pin::{Features, PinKdfCost, PinUv};
use crate::platform::{Platform, PresenceStatus, Storage, StorageError, UserPresence};
use crate::store::{
    self, CredentialTable, DeviceState, SlotUse, StoreError, MAX_CREDENTIAL_RECORDS,
    MAX_RESIDENT_CREDENTIALS,
};

pub mod counters;
pub mod instrument;
mod lookup;

pub use counters::{CounterMode, COUNTER_BLOCK};
pub use instrument::ResponseOverrides;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

/// A batch attestation key and its certificate.
#[derive(Clone)]
pub struct Attestation {
    /// The P-256 private key (big-endian scalar).
    pub private_key: [u8; 32],
    /// The DER X.509 batch certificate for that key (x5c[0]; also the U2F
    /// REGISTER certificate).
    pub certificate: heapless::Vec<u8, 1024>,
    /// The DER certificate of the intermediate CA that issued `certificate`,
    /// sent after it in a packed statement's x5c; `None` when a root issued it.
    pub intermediate: Option<heapless::Vec<u8, 1024>>,
}

impl Drop for Attestation {
    fn drop(&mut self) {
        crate::wipe::wipe("Attestation private key", &mut self.private_key);
    }
}

impl core::fmt::Debug for Attestation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Attestation")
            .field("private_key", &"..")
            .field("certificate_len", &self.certificate.len())
            .field(
                "intermediate_len",
                &self.intermediate.as_ref().map(|c| c.len()),
            )
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
    /// makeCredential answers with the "none" attestation format (an empty
    /// statement) whatever the platform prefers. U2F REGISTER, which must carry
    /// a certificate, is unaffected (set `attestation` to `None` for a
    /// self-signed one there).
    pub none_attestation: bool,
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
    /// Backup eligibility (authData BE) of new credentials. Defaults to
    /// `false`: a device-bound key.
    pub default_backup_eligible: bool,
    /// Backup state (authData BS) of new credentials. Defaults to `false`.
    pub default_backup_state: bool,
    /// Whether the instrument API hands out private keys
    /// ([`instrument::CredentialView::private_key`]). Defaults to `false`.
    pub exportable: bool,
    /// How signature counters advance. Defaults to one counter per credential.
    pub counter_mode: CounterMode,
    /// The cost of the stored PIN verifier (PBKDF2 iterations; see
    /// [`crate::pin::verifier`]). Defaults to [`PinKdfCost::DEFAULT`].
    pub pin_kdf_cost: PinKdfCost,
    /// A simulated fingerprint sensor ([`crate::bio`]): authenticatorBioEnrollment,
    /// getInfo `bioEnroll` / `uvBioEnroll`, and built-in user verification by
    /// an enrolled finger (getInfo `uv` true once one is). Defaults to `false`.
    /// Leave `builtin_uv` off with it.
    pub bio: bool,
    /// Enterprise attestation (CTAP 2.1 §7.1): getInfo `ep`, authenticatorConfig
    /// enableEnterpriseAttestation and makeCredential enterpriseAttestation.
    /// `None` (the default): not capable.
    pub enterprise: Option<EnterpriseAttestation>,
    /// The kind of key presented: getInfo and the commands, extensions and
    /// quirks enforced. Set it with [`crate::profile::Profile::apply`], which
    /// also sets the behaviours above. Defaults to `security-key`.
    pub profile: crate::profile::Profile,
}

/// The most RP IDs of vendor-facilitated enterprise attestation.
pub const MAX_ENTERPRISE_RP_IDS: usize = 8;
/// The longest such RP ID, in bytes.
pub const MAX_ENTERPRISE_RP_ID_LENGTH: usize = 128;

/// Enterprise attestation: the key and certificate that identify this one
/// device (not a batch), and the RP IDs vendor-facilitated enterprise
/// attestation (enterpriseAttestation 1) is given to.
#[derive(Clone, Debug)]
pub struct EnterpriseAttestation {
    /// The device's own attestation key and certificate (and intermediate).
    pub attestation: Attestation,
    /// RP IDs of vendor-facilitated enterprise attestation.
    pub rp_ids: heapless::Vec<heapless::String<MAX_ENTERPRISE_RP_ID_LENGTH>, MAX_ENTERPRISE_RP_IDS>,
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

/// The credential a getAssertion found before asking for presence, kept for
/// the same request's run after presence (the transport runs a handler twice
/// per ceremony), so the ID is not opened twice.
pub(crate) struct LookupCache {
    /// The RP it was found for.
    pub(crate) rp_id_hash: [u8; 32],
    /// Its position in the allowList.
    pub(crate) index: usize,
    /// The credential.
    pub(crate) found: FoundCredential,
}

/// A credential of ours, found by ID.
pub(crate) struct FoundCredential {
    pub(crate) key: CredentialKey,
    pub(crate) id: heapless::Vec<u8, 255>,
    /// The slot of its record, if it has one (its counter lives there).
    pub(crate) slot: Option<u16>,
    /// For a discoverable credential: its slot and user handle.
    pub(crate) resident: Option<(u16, heapless::Vec<u8, 64>)>,
    /// Policy bits (credProtect, hmac-secret).
    pub(crate) flags: CredentialFlags,
    /// A discoverable credential's credBlob (empty otherwise).
    pub(crate) cred_blob: heapless::Vec<u8, MAX_CRED_BLOB_LENGTH>,
    /// The credential's authData BE flag.
    pub(crate) backup_eligible: bool,
    /// The credential's authData BS flag.
    pub(crate) backup_state: bool,
}

/// A FIDO2/U2F authenticator over a [`Platform`].
pub struct Authenticator<S: Storage, U: UserPresence, R: RngCore + CryptoRng> {
    pub(crate) platform: Platform<S, U, R>,
    pub(crate) config: Config,
    pub(crate) state: DeviceState,
    /// Seals credential private keys into credential IDs.
    pub(crate) wrap_key: WrapKey,
    /// Seals imported private keys into their records.
    pub(crate) import_key: WrapKey,
    /// The per-credential extension secrets' key (derived once per device secret).
    pub(crate) secrets: ExtensionSecrets,
    /// The tag of the device secret that current records carry.
    pub(crate) epoch: [u8; 4],
    /// The index of the credential records.
    pub(crate) table: CredentialTable,
    /// The largest counter value issued so far, by any credential (at least
    /// every value ever issued: the device record's mark after a restart).
    pub(crate) global_count: u32,
    /// Response overrides of the instrument API (volatile).
    pub(crate) overrides: ResponseOverrides,
    /// getAssertion's lookup, kept between its runs before and after presence.
    pub(crate) lookup_cache: Option<LookupCache>,
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
    /// The fingerprint sensor (with [`Config::bio`]).
    pub(crate) bio: Option<crate::ctap2::bio_enrollment::BioSensor>,
    /// Enterprise attestation is enabled (persisted; with [`Config::enterprise`]).
    pub(crate) ep_enabled: bool,
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Loads (or on first start creates and persists) device state: the device
    /// secret (32 random bytes) and the counter mark; indexes the credential
    /// records (headers only: no key is unwrapped, no point computed).
    pub fn new(mut platform: Platform<S, U, R>, config: Config) -> Result<Self, InitError> {
        if let Some(att) = &config.attestation {
            SecretKey::from_bytes(&att.private_key)
                .map_err(|_| InitError::InvalidAttestationKey)?;
        }
        // A new key reserves its first block of counter values with its record.
        let (state, global_count) = match store::load_device(&mut platform.storage) {
            Ok(Some(state)) => {
                let count = state.counter_mark;
                (state, count)
            }
            Ok(None) => {
                let mut state = DeviceState {
                    secret: [0; 32],
                    counter_mark: COUNTER_BLOCK - 1,
                    version: 2,
                };
                platform.rng.fill_bytes(&mut state.secret);
                store::save_device(&mut platform.storage, &state).map_err(init_error)?;
                (state, 0)
            }
            Err(e) => return Err(init_error(e)),
        };
        let keys = DeviceKeys::derive(&state.secret).ok_or(InitError::Corrupt)?;
        // Power-up of PIN/UV auth: fresh key agreement keys and tokens.
        let features = Features {
            builtin_uv: config.builtin_uv,
            bio_enroll: config.bio,
            cred_mgmt: config.profile.options.cred_mgmt,
            large_blobs: config.profile.options.large_blobs,
            authnr_cfg: config.profile.options.authnr_cfg,
        };
        let pin = PinUv::power_up(
            features,
            config.pin_kdf_cost,
            &mut platform.storage,
            &mut platform.rng,
        )
        .map_err(InitError::Storage)?;
        let mut this = Authenticator {
            platform,
            config,
            state,
            wrap_key: keys.wrap,
            import_key: keys.import,
            secrets: keys.secrets,
            epoch: keys.epoch,
            table: CredentialTable::default(),
            global_count,
            overrides: ResponseOverrides::default(),
            lookup_cache: None,
            pending: None,
            u2f_presence: U2fPresence::default(),
            pin,
            cred_mgmt: None,
            large_blob_writer: Default::default(),
            reset_pending: false,
            bio: None,
            ep_enabled: false,
        };
        this.scan_records().map_err(init_error)?;
        this.upgrade_device_record().map_err(init_error)?;
        // A reset interrupted by a crash is finished before anything else
        // (after the index and the counter mark are known, so the new device
        // record keeps a mark above every value ever issued).
        if this.reset_journal_exists().map_err(InitError::Storage)? {
            this.reset_pending = true;
            this.finish_pending_reset().map_err(init_error)?;
        }
        this.load_bio().map_err(InitError::Storage)?;
        this.load_enterprise().map_err(InitError::Storage)?;
        Ok(this)
    }

    /// Builds the record index. A record that does not parse is kept (and
    /// never overwritten); a record of an old device secret (left over from an
    /// interrupted reset) is treated as free. Records of version 3 carry the
    /// secret's tag; older (discoverable) ones are checked by opening their ID,
    /// which computes no public key.
    fn scan_records(&mut self) -> Result<(), StoreError> {
        for slot in 0..MAX_CREDENTIAL_RECORDS {
            match store::load_credential(&mut self.platform.storage, slot) {
                Ok(None) => {}
                Ok(Some(rec)) => {
                    let current = match rec.epoch {
                        Some(epoch) => epoch == self.epoch,
                        None => {
                            credential::unwrap(&self.wrap_key, &rec.rp_id_hash, &rec.credential_id)
                                .is_ok_and(|c| c.slot == Some(slot))
                        }
                    };
                    if current {
                        self.table.set(slot, store::use_of_record(&rec), &rec);
                    }
                }
                Err(StoreError::Corrupt) => self.table.clear(slot, SlotUse::Unreadable),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A version 1 device record held the last counter of the non-discoverable
    /// credentials only; the mark must cover the discoverable ones' too.
    fn upgrade_device_record(&mut self) -> Result<(), StoreError> {
        if self.state.version == 2 {
            return Ok(());
        }
        let mut highest = self.state.counter_mark;
        for slot in 0..MAX_CREDENTIAL_RECORDS {
            if self.table.use_of(slot) != SlotUse::Free {
                highest = highest.max(self.table.mark(slot));
            }
        }
        let mut upgraded = self.state.clone();
        upgraded.counter_mark = highest;
        upgraded.version = 2;
        store::save_device(&mut self.platform.storage, &upgraded)?;
        self.state = upgraded;
        self.global_count = highest;
        Ok(())
    }

    /// The platform (storage, presence, RNG).
    pub fn platform(&self) -> &Platform<S, U, R> {
        &self.platform
    }

    /// The platform, mutably.
    pub fn platform_mut(&mut self) -> &mut Platform<S, U, R> {
        &mut self.platform
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many more discoverable credentials fit.
    pub fn remaining_discoverable_credentials(&self) -> u16 {
        MAX_RESIDENT_CREDENTIALS.saturating_sub(self.table.discoverable())
    }

    /// Visits each resident credential (for `ferrokey list`), in slot order,
    /// with its current counter. Records that do not parse are skipped.
    pub fn for_each_resident_credential(
        &mut self,
        mut f: impl FnMut(&ResidentCredentialInfo<'_>),
    ) -> Result<(), StoreError> {
        self.settle_reset()?;
        for slot in self
            .table
            .slots_of(SlotUse::Discoverable)
            .collect::<heapless::Vec<u16, { MAX_CREDENTIAL_RECORDS as usize }>>()
        {
            match store::load_credential(&mut self.platform.storage, slot) {
                Ok(Some(mut rec)) => {
                    rec.sign_count = self.table.count(slot);
                    f(&rec.info(slot))
                }
                Ok(None) | Err(StoreError::Corrupt) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Replaces the device secret (invalidating every credential ID issued so
    /// far and every imported key), deletes all credential records and the
    /// large-blob array. The counter mark is kept: counters never go backwards.
    pub(crate) fn wipe(&mut self) -> Result<(), StoreError> {
        let mut new_state = DeviceState {
            secret: [0; 32],
            counter_mark: self.state.counter_mark.max(self.global_count),
            version: 2,
        };
        self.platform.rng.fill_bytes(&mut new_state.secret);
        let keys = DeviceKeys::derive(&new_state.secret).ok_or(StoreError::Corrupt)?;
        store::save_device(&mut self.platform.storage, &new_state)?;
        self.state = new_state;
        self.wrap_key = keys.wrap;
        self.import_key = keys.import;
        self.secrets = keys.secrets;
        self.epoch = keys.epoch;
        self.pending = None;
        self.cred_mgmt = None;
        self.lookup_cache = None;
        // The large-blob array goes back to its initial value.
        self.large_blob_writer.clear();
        let mut result =
            crate::ctap2::large_blobs::remove(&mut self.platform.storage).map_err(StoreError::from);
        // Old records belong to the old secret now (free at the next start);
        // remove them all. A record that fails to go is harmless.
        for slot in 0..MAX_CREDENTIAL_RECORDS {
            if let Err(e) = store::remove_credential(&mut self.platform.storage, slot) {
                result = Err(e);
            }
            self.table.clear(slot, SlotUse::Free);
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

/// The keys derived from one device secret.
struct DeviceKeys {
    wrap: WrapKey,
    import: WrapKey,
    secrets: ExtensionSecrets,
    epoch: [u8; 4],
}

impl DeviceKeys {
    fn derive(secret: &[u8; 32]) -> Option<Self> {
        let secrets = ExtensionSecrets::derive(secret);
        Some(DeviceKeys {
            wrap: WrapKey::derive(secret).ok()?,
            import: WrapKey::derive_import(secret).ok()?,
            epoch: secrets.epoch(),
            secrets,
        })
    }
}

/// A clean stop (the key unplugged, the process shutting down) writes the
/// exact counters over their reservations, so the next start continues
/// without a jump. A crash skips this and costs only the jump.
impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Drop for Authenticator<S, U, R> {
    fn drop(&mut self) {
        // Best effort: on failure the reservations still hold every guarantee.
        let _ = self.persist_counters();
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
        if self.settle_reset().is_err() {
            // A decided reset could not be finished: show no half-reset state.
            let status: &[u8] = match protocol {
                Protocol::Cbor => &[ctap_types::ctap2::Error::Other as u8],
                Protocol::Msg => &[0x6F, 0x00],
            };
            response.extend_from_slice(status).ok();
            return Outcome::Response;
        }
        if !context.up_granted {
            // Only the run after presence of the same request may use it.
            self.lookup_cache = None;
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
                if self.pin.always_uv() || !self.config.profile.versions.u2f_v2 {
                    // CTAP 2.1 alwaysUv: U2F cannot verify the user, so the
                    // CTAP1/U2F interface is off (INIT also reports NMSG);
                    // a profile without U2F_V2 has none either.
                    let status = crate::ctap1::sw::INS_NOT_SUPPORTED.to_be_bytes();
                    response.extend_from_slice(&status).ok();
                    return Outcome::Response;
                }
                crate::ctap1::handle(self, request, context, response)
            }
        }
    }

    fn supports_ctap1(&self) -> bool {
        !self.pin.always_uv() && self.config.profile.versions.u2f_v2
    }

    fn supports_cbor(&self) -> bool {
        self.config.profile.versions.ctap2()
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
