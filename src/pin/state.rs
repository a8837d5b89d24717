//! Persistent PIN state (the `RecordKey::Pin` record) and its encoding.
//!
//! The record holds the PIN verifier (`CurrentStoredPIN` = LEFT(SHA-256(pin),
//! 16) salted and stretched, see [`super::verifier`]), the PIN's length in
//! code points (`PINCodePointLength`, needed when the minimum length rises),
//! `pinRetries`, `minPINLength`, the `forcePINChange` flag, the
//! `minPinLengthRPIDs` list, the `alwaysUv` setting (authenticatorConfig state
//! that, like the PIN, authenticatorReset returns to its default) and
//! `uvRetries`, the attempts left for built-in user verification.
//!
//! Encoding (version 3, written since the verifier was stretched), integers
//! single bytes unless said:
//!
//! ```text
//! [0]       version = 3
//! [1]       flags: bit 0 = PIN set, bit 1 = forcePINChange, bit 2 = alwaysUv
//! [2]       pinRetries (0..=8)
//! [3]       minPINLength (4..=63)
//! [4]       PINCodePointLength (0 when no PIN)
//! [5]       uvRetries (0..=8)
//! [6..22]   salt
//! [22..26]  PBKDF2 iterations, big-endian (1..=PinKdfCost::MAX_ITERATIONS)
//! [26..58]  verifier = PBKDF2-HMAC-SHA-256(LEFT(SHA-256(pin), 16), salt, iterations, 32)
//!           (salt, iterations and verifier all zero when no PIN is set)
//! [58]      number of minPinLengthRPIDs, n <= MAX_MIN_PIN_LENGTH_RP_IDS
//! then n times: length (1..=MAX_RP_ID_LENGTH), UTF-8 bytes
//! ```
//!
//! Older versions are still read, never written:
//!
//! - version 1: `[0..5]` as above without uvRetries (`[5..21]` LEFT(SHA-256(pin),
//!   16) itself, unsalted; zeros when no PIN), `[21]` the RP ID count and list;
//!   uvRetries = [`MAX_UV_RETRIES`];
//! - version 2: version 1 followed by one byte, uvRetries (0..=7).
//!
//! A loaded version 1 or 2 record holds the PIN hash unstretched
//! ([`PinState::has_legacy_pin`]); [`PinState::migrate`] stretches it (it
//! needs no PIN for that) and rewrites the record as version 3 in one atomic
//! write, which power-up does before anything else.
//!
//! Anything else (unknown version, out-of-range value, trailing bytes) is
//! [`StateError::Corrupt`]. A missing record means the factory state.

use heapless::{String, Vec};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;

use super::verifier::{PinKdfCost, PinVerifier, SALT_LEN, VERIFIER_LEN};
use crate::platform::{RecordKey, Storage, StorageError};

/// The maximum (and initial) value of pinRetries (CTAP 2.1 §6.5.2.2).
pub const MAX_PIN_RETRIES: u8 = 8;
/// The maximum (and initial) value of uvRetries, the built-in user
/// verification attempts left (CTAP 2.1 §6.5.2.2, getUVRetries).
pub const MAX_UV_RETRIES: u8 = 8;
/// Consecutive wrong PINs after which a power cycle is required (PIN_AUTH_BLOCKED).
pub const MAX_CONSECUTIVE_MISMATCHES: u8 = 3;
/// The default minPINLength, in Unicode code points.
pub const DEFAULT_MIN_PIN_LENGTH: u8 = 4;
/// The maximum PIN length in UTF-8 bytes (the padded PIN block is 64 bytes).
pub const MAX_PIN_BYTES: usize = 63;
/// How many RP IDs may receive the minPinLength extension (getInfo `maxRPIDsForSetMinPINLength`).
pub const MAX_MIN_PIN_LENGTH_RP_IDS: usize = 4;
/// The longest RP ID stored in the minPinLength RP ID list, in bytes.
pub const MAX_RP_ID_LENGTH: usize = 128;
/// The length of `CurrentStoredPIN` as the platform sends it (pinHash).
pub const PIN_HASH_LEN: usize = 16;

/// Version 1: the unsalted PIN hash (read only).
const RECORD_VERSION_1: u8 = 1;
/// Version 1 plus a trailing uvRetries byte (read only).
const RECORD_VERSION_2: u8 = 2;
/// The stretched verifier (written).
const RECORD_VERSION_3: u8 = 3;
const FLAG_PIN_SET: u8 = 0x01;
const FLAG_FORCE_CHANGE: u8 = 0x02;
const FLAG_ALWAYS_UV: u8 = 0x04;
const FLAGS: u8 = FLAG_PIN_SET | FLAG_FORCE_CHANGE | FLAG_ALWAYS_UV;
/// Versions 1 and 2: up to and including the RP ID count.
const LEGACY_HEADER_LEN: usize = 5 + PIN_HASH_LEN + 1;
/// Where version 3's verifier fields start, and how long they are.
const V3_SECRET_AT: usize = 6;
const V3_SECRET_LEN: usize = SALT_LEN + 4 + VERIFIER_LEN;
/// Version 3: up to and including the RP ID count.
const HEADER_LEN: usize = V3_SECRET_AT + V3_SECRET_LEN + 1;
/// The largest encoded record.
pub const MAX_ENCODED_LEN: usize = HEADER_LEN + MAX_MIN_PIN_LENGTH_RP_IDS * (1 + MAX_RP_ID_LENGTH);
/// The largest record of any version this code reads.
const MAX_READ_LEN: usize = MAX_ENCODED_LEN;

/// Why PIN state could not be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The storage back end failed.
    Storage(StorageError),
    /// The record exists but is not a valid PIN state record.
    Corrupt,
}

impl From<StorageError> for StateError {
    fn from(e: StorageError) -> Self {
        StateError::Storage(e)
    }
}

/// A list of RP IDs that may see the minPinLength extension output.
pub type RpIdList = Vec<String<MAX_RP_ID_LENGTH>, MAX_MIN_PIN_LENGTH_RP_IDS>;

/// What the key keeps of the PIN.
#[derive(Clone, PartialEq, Eq)]
enum StoredPin {
    /// LEFT(SHA-256(pin), 16) as a version 1 or 2 record held it, until
    /// [`PinState::migrate`] stretches it.
    Legacy([u8; PIN_HASH_LEN]),
    /// The salted, stretched verifier.
    Stretched(PinVerifier),
}

/// The unstretched hash is wiped when it goes (the verifier wipes itself).
impl Drop for StoredPin {
    fn drop(&mut self) {
        if let StoredPin::Legacy(hash) = self {
            crate::wipe::wipe("StoredPin::Legacy", hash);
        }
    }
}

/// The persistent PIN state. Deliberately no `Debug`: it holds the PIN
/// verifier, which is wiped from memory when a state goes (every
/// [`PinState::update`] drops the state it replaces).
#[derive(Clone, PartialEq, Eq)]
pub struct PinState {
    pin: Option<StoredPin>,
    code_point_length: u8,
    retries: u8,
    min_pin_length: u8,
    force_pin_change: bool,
    min_pin_length_rp_ids: RpIdList,
    always_uv: bool,
    uv_retries: u8,
}

impl Default for PinState {
    fn default() -> Self {
        PinState {
            pin: None,
            code_point_length: 0,
            retries: MAX_PIN_RETRIES,
            min_pin_length: DEFAULT_MIN_PIN_LENGTH,
            force_pin_change: false,
            min_pin_length_rp_ids: Vec::new(),
            always_uv: false,
            uv_retries: MAX_UV_RETRIES,
        }
    }
}

impl PinState {
    /// A state that refuses every PIN (used when the stored record is corrupt:
    /// fail closed until authenticatorReset).
    pub fn locked() -> Self {
        let mut state = PinState::default();
        let never =
            PinVerifier::from_parts([0xFF; SALT_LEN], PinKdfCost::TEST, [0xFF; VERIFIER_LEN]);
        state.pin = Some(StoredPin::Stretched(never));
        state.retries = 0;
        state.uv_retries = 0;
        state
    }

    /// Loads the state from storage; the factory state if there is no record.
    /// A version 1 or 2 record loads as it is (see [`PinState::migrate`]).
    pub fn load<S: Storage>(storage: &mut S) -> Result<Self, StateError> {
        Self::load_versioned(storage).map(|(state, _)| state)
    }

    /// Writes the state to storage (always as version 3).
    pub fn store<S: Storage>(&self, storage: &mut S) -> Result<(), StorageError> {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let result = match self.encode(&mut buf) {
            Some(len) => storage.write(RecordKey::Pin, &buf[..len]),
            // An unstretched PIN is never written back (migrate first).
            None => Err(StorageError::Corrupt),
        };
        crate::wipe::wipe("PinState::store buffer", &mut buf);
        result
    }

    /// Applies `change` to a copy, persists the copy, and only then adopts it, so
    /// the in-memory state never runs ahead of storage.
    pub fn update<S: Storage>(
        &mut self,
        storage: &mut S,
        change: impl FnOnce(&mut PinState),
    ) -> Result<(), StorageError> {
        let mut next = self.clone();
        change(&mut next);
        next.store(storage)?;
        *self = next;
        Ok(())
    }

    /// Whether the PIN is still held as the unsalted hash of a version 1 or 2
    /// record.
    pub fn has_legacy_pin(&self) -> bool {
        matches!(self.pin, Some(StoredPin::Legacy(_)))
    }

    /// Migrates a state loaded from a version 1 or 2 record: a stored PIN
    /// hash is stretched under a fresh salt at `cost` (no PIN needed), and the
    /// record is rewritten as version 3 in one atomic write; only then does
    /// the in-memory state change. (A record without a PIN is rewritten too,
    /// so no old-version record stays behind.)
    pub fn migrate<S: Storage, R: RngCore + CryptoRng>(
        &mut self,
        storage: &mut S,
        cost: PinKdfCost,
        rng: &mut R,
    ) -> Result<(), StorageError> {
        let stretched = match &self.pin {
            Some(StoredPin::Legacy(hash)) => Some(PinVerifier::new(hash, cost, rng)),
            _ => None,
        };
        self.update(storage, |s| {
            if let Some(verifier) = stretched {
                s.pin = Some(StoredPin::Stretched(verifier));
            }
        })
    }

    /// Loads the state like [`PinState::load`], with the version of the
    /// record it came from (`None` without a record).
    pub fn load_versioned<S: Storage>(storage: &mut S) -> Result<(Self, Option<u8>), StateError> {
        let mut buf = [0u8; MAX_READ_LEN];
        let result = match storage.read(RecordKey::Pin, &mut buf) {
            Ok(None) => Ok((PinState::default(), None)),
            Ok(Some(len)) => buf
                .get(..len)
                .ok_or(StateError::Corrupt)
                .and_then(|bytes| Ok((Self::decode(bytes)?, bytes.first().copied()))),
            // A record too large for our buffer cannot be ours.
            Err(StorageError::TooLarge) | Err(StorageError::Corrupt) => Err(StateError::Corrupt),
            Err(e) => Err(StateError::Storage(e)),
        };
        crate::wipe::wipe("PinState::load buffer", &mut buf);
        result
    }

    /// What can be kept of a PIN record that does not decode, typically one
    /// torn by a crash in the middle of its write (finding F4: such a record
    /// used to leave the key PIN_BLOCKED until authenticatorReset, even when no
    /// PIN was set and only uvRetries was being written). Only version 3 is
    /// ever written, so only its fixed header is looked at:
    ///
    /// - the header (bytes 0..6) does not validate: `None`, nothing is known,
    ///   not even whether a PIN was set; the caller fails closed
    ///   ([`PinState::locked`], until authenticatorReset);
    /// - no PIN was set: the factory PIN state (pinRetries at its default,
    ///   there is no PIN to guard) with uvRetries, minPINLength, alwaysUv and
    ///   forcePINChange from the header, so none is raised or relaxed;
    /// - a PIN was set and its verifier (salt, iterations, hash) is whole: the
    ///   PIN, pinRetries and uvRetries as they were;
    /// - a PIN was set but its verifier is cut off: no PIN can ever match, so
    ///   the PIN stays set and is blocked (pinRetries 0: only a reset, which
    ///   the spec requires for a PIN nobody can enter, clears it); uvRetries
    ///   and everything else keep their header values, so built-in UV and the
    ///   operations that need no PIN are not blocked with it.
    ///
    /// The minPinLengthRPIDs list is dropped in every case (losing it only
    /// withholds the minPinLength extension output).
    pub fn salvage(bytes: &[u8]) -> Option<Self> {
        let header = bytes.get(..V3_SECRET_AT)?;
        let (version, flags, retries, min_len, cp_len, uv_retries) = (
            header[0], header[1], header[2], header[3], header[4], header[5],
        );
        if version != RECORD_VERSION_3
            || flags & !FLAGS != 0
            || retries > MAX_PIN_RETRIES
            || !(DEFAULT_MIN_PIN_LENGTH..=MAX_PIN_BYTES as u8).contains(&min_len)
            || usize::from(cp_len) > MAX_PIN_BYTES
            || uv_retries > MAX_UV_RETRIES
        {
            return None;
        }
        let mut state = PinState {
            min_pin_length: min_len,
            force_pin_change: flags & FLAG_FORCE_CHANGE != 0,
            always_uv: flags & FLAG_ALWAYS_UV != 0,
            uv_retries,
            ..PinState::default()
        };
        if flags & FLAG_PIN_SET == 0 {
            return Some(state);
        }
        let verifier = bytes
            .get(V3_SECRET_AT..V3_SECRET_AT + V3_SECRET_LEN)
            .and_then(|secret| {
                let mut iterations = [0u8; 4];
                iterations.copy_from_slice(&secret[SALT_LEN..SALT_LEN + 4]);
                let cost = PinKdfCost::iterations(u32::from_be_bytes(iterations))?;
                let mut salt = [0u8; SALT_LEN];
                salt.copy_from_slice(&secret[..SALT_LEN]);
                let mut hash = [0u8; VERIFIER_LEN];
                hash.copy_from_slice(&secret[SALT_LEN + 4..]);
                let verifier = PinVerifier::from_parts(salt, cost, hash);
                crate::wipe::wipe("PinState::salvage verifier", &mut hash);
                Some(verifier)
            });
        match verifier {
            Some(verifier) => {
                state.pin = Some(StoredPin::Stretched(verifier));
                state.code_point_length = cp_len;
                state.retries = retries;
            }
            None => {
                let locked = PinState::locked();
                state.pin = locked.pin.clone();
                state.retries = 0;
            }
        }
        Some(state)
    }

    /// Reads the PIN record raw and [`PinState::salvage`]s it; `None` when
    /// there are no bytes to look at or nothing can be kept.
    pub fn salvage_stored<S: Storage>(storage: &mut S) -> Option<Self> {
        let mut buf = [0u8; MAX_READ_LEN];
        let state = match storage.read(RecordKey::Pin, &mut buf) {
            Ok(Some(len)) => buf.get(..len).and_then(Self::salvage),
            _ => None,
        };
        crate::wipe::wipe("PinState::salvage buffer", &mut buf);
        state
    }

    /// Whether a record of `version` must be rewritten (versions 1 and 2).
    pub fn is_old_version(version: Option<u8>) -> bool {
        matches!(version, Some(RECORD_VERSION_1 | RECORD_VERSION_2))
    }

    /// Encodes into `out` as version 3; returns the length, or `None` for a
    /// state whose PIN is not stretched yet.
    pub fn encode(&self, out: &mut [u8; MAX_ENCODED_LEN]) -> Option<usize> {
        let mut flags = 0;
        if self.pin.is_some() {
            flags |= FLAG_PIN_SET;
        }
        if self.force_pin_change {
            flags |= FLAG_FORCE_CHANGE;
        }
        if self.always_uv {
            flags |= FLAG_ALWAYS_UV;
        }
        out[0] = RECORD_VERSION_3;
        out[1] = flags;
        out[2] = self.retries;
        out[3] = self.min_pin_length;
        out[4] = self.code_point_length;
        out[5] = self.uv_retries;
        let secret = &mut out[V3_SECRET_AT..V3_SECRET_AT + V3_SECRET_LEN];
        match &self.pin {
            None => secret.fill(0),
            Some(StoredPin::Legacy(_)) => return None,
            Some(StoredPin::Stretched(v)) => {
                let (salt, cost, verifier) = v.parts();
                secret[..SALT_LEN].copy_from_slice(salt);
                secret[SALT_LEN..SALT_LEN + 4].copy_from_slice(&cost.get().to_be_bytes());
                secret[SALT_LEN + 4..].copy_from_slice(verifier);
            }
        }
        out[HEADER_LEN - 1] = self.min_pin_length_rp_ids.len() as u8;
        let mut pos = HEADER_LEN;
        for id in &self.min_pin_length_rp_ids {
            // Lengths are bounded by the types: n * (1 + MAX_RP_ID_LENGTH) fits.
            out[pos] = id.len() as u8;
            out[pos + 1..pos + 1 + id.len()].copy_from_slice(id.as_bytes());
            pos += 1 + id.len();
        }
        Some(pos)
    }

    /// Decodes a record of any version this code reads, validating every field.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let version = *bytes.first().ok_or(StateError::Corrupt)?;
        let (header_len, uv_in_header) = match version {
            RECORD_VERSION_1 | RECORD_VERSION_2 => (LEGACY_HEADER_LEN, None),
            RECORD_VERSION_3 => (HEADER_LEN, Some(())),
            _ => return Err(StateError::Corrupt),
        };
        let header = bytes.get(..header_len).ok_or(StateError::Corrupt)?;
        let (flags, retries, min_len, cp_len) = (header[1], header[2], header[3], header[4]);
        if flags & !FLAGS != 0
            || retries > MAX_PIN_RETRIES
            || !(DEFAULT_MIN_PIN_LENGTH..=MAX_PIN_BYTES as u8).contains(&min_len)
            || usize::from(cp_len) > MAX_PIN_BYTES
        {
            return Err(StateError::Corrupt);
        }
        let pin_set = flags & FLAG_PIN_SET != 0;
        let pin = match uv_in_header {
            None => {
                let mut hash = [0u8; PIN_HASH_LEN];
                hash.copy_from_slice(&header[5..5 + PIN_HASH_LEN]);
                let stored = StoredPin::Legacy(hash);
                crate::wipe::wipe("PinState::decode hash", &mut hash);
                pin_set.then_some(stored)
            }
            Some(()) => {
                let secret = &header[V3_SECRET_AT..V3_SECRET_AT + V3_SECRET_LEN];
                if pin_set {
                    let mut salt = [0u8; SALT_LEN];
                    salt.copy_from_slice(&secret[..SALT_LEN]);
                    let mut iterations = [0u8; 4];
                    iterations.copy_from_slice(&secret[SALT_LEN..SALT_LEN + 4]);
                    let cost = PinKdfCost::iterations(u32::from_be_bytes(iterations))
                        .ok_or(StateError::Corrupt)?;
                    let mut verifier = [0u8; VERIFIER_LEN];
                    verifier.copy_from_slice(&secret[SALT_LEN + 4..]);
                    let stored =
                        StoredPin::Stretched(PinVerifier::from_parts(salt, cost, verifier));
                    crate::wipe::wipe("PinState::decode verifier", &mut verifier);
                    Some(stored)
                } else if secret.iter().any(|&b| b != 0) {
                    return Err(StateError::Corrupt);
                } else {
                    None
                }
            }
        };
        let count = usize::from(header[header_len - 1]);
        if count > MAX_MIN_PIN_LENGTH_RP_IDS {
            return Err(StateError::Corrupt);
        }
        let mut ids = RpIdList::new();
        let mut rest = &bytes[header_len..];
        for _ in 0..count {
            let (&len, tail) = rest.split_first().ok_or(StateError::Corrupt)?;
            let len = usize::from(len);
            if len == 0 || len > MAX_RP_ID_LENGTH {
                return Err(StateError::Corrupt);
            }
            let raw = tail.get(..len).ok_or(StateError::Corrupt)?;
            let text = core::str::from_utf8(raw).map_err(|_| StateError::Corrupt)?;
            let mut id = String::new();
            id.push_str(text).map_err(|_| StateError::Corrupt)?;
            ids.push(id).map_err(|_| StateError::Corrupt)?;
            rest = &tail[len..];
        }
        let uv_retries = match (version, rest) {
            (RECORD_VERSION_1, []) => MAX_UV_RETRIES,
            (RECORD_VERSION_2, [uv]) if *uv < MAX_UV_RETRIES => *uv,
            (RECORD_VERSION_3, []) if header[5] <= MAX_UV_RETRIES => header[5],
            _ => return Err(StateError::Corrupt),
        };
        Ok(PinState {
            code_point_length: if pin.is_some() { cp_len } else { 0 },
            pin,
            retries,
            min_pin_length: min_len,
            force_pin_change: flags & FLAG_FORCE_CHANGE != 0,
            min_pin_length_rp_ids: ids,
            always_uv: flags & FLAG_ALWAYS_UV != 0,
            uv_retries,
        })
    }

    /// Whether a PIN is set.
    pub fn is_pin_set(&self) -> bool {
        self.pin.is_some()
    }

    /// The remaining PIN attempts.
    pub fn retries(&self) -> u8 {
        self.retries
    }

    /// The minimum PIN length in code points.
    pub fn min_pin_length(&self) -> u8 {
        self.min_pin_length
    }

    /// Whether the PIN must be changed before a token is issued.
    pub fn force_pin_change(&self) -> bool {
        self.force_pin_change
    }

    /// The current PIN's length in code points (0 when no PIN is set).
    pub fn code_point_length(&self) -> u8 {
        self.code_point_length
    }

    /// The RP IDs allowed to receive the minPinLength extension output.
    pub fn min_pin_length_rp_ids(&self) -> &RpIdList {
        &self.min_pin_length_rp_ids
    }

    /// Whether user verification is always required (getInfo `alwaysUv`).
    pub fn always_uv(&self) -> bool {
        self.always_uv
    }

    /// The built-in user verification attempts left (uvRetries).
    pub fn uv_retries(&self) -> u8 {
        self.uv_retries
    }

    /// The cost of the stored verifier (`None` without a stretched PIN).
    pub fn pin_cost(&self) -> Option<PinKdfCost> {
        match &self.pin {
            Some(StoredPin::Stretched(v)) => Some(v.cost()),
            _ => None,
        }
    }

    /// Whether `candidate` (a decrypted pinHash, LEFT(SHA-256(pin), 16)) is
    /// the PIN's: CTAP's `CurrentStoredPIN` comparison, made on the verifiers
    /// in constant time. False when no PIN is set.
    pub fn pin_hash_matches(&self, candidate: &[u8]) -> bool {
        match &self.pin {
            Some(StoredPin::Stretched(v)) => v.matches(candidate),
            Some(StoredPin::Legacy(stored)) => bool::from(stored.as_slice().ct_eq(candidate)),
            None => false,
        }
    }

    pub(crate) fn set_retries(&mut self, retries: u8) {
        self.retries = retries.min(MAX_PIN_RETRIES);
    }

    /// Installs a new PIN: its verifier and code-point length, full retries,
    /// and clears forcePINChange.
    pub(crate) fn set_pin(&mut self, verifier: PinVerifier, code_points: u8) {
        self.pin = Some(StoredPin::Stretched(verifier));
        self.code_point_length = code_points;
        self.retries = MAX_PIN_RETRIES;
        self.force_pin_change = false;
    }

    /// Replaces the verifier of the PIN in place (same PIN, new salt or
    /// cost); retries and the other settings stay.
    pub(crate) fn restretch(&mut self, verifier: PinVerifier) {
        if self.pin.is_some() {
            self.pin = Some(StoredPin::Stretched(verifier));
        }
    }

    /// Removes the PIN: no verifier, full retries, forcePINChange off.
    pub(crate) fn clear_pin(&mut self) {
        self.pin = None;
        self.code_point_length = 0;
        self.retries = MAX_PIN_RETRIES;
        self.force_pin_change = false;
    }

    pub(crate) fn set_min_pin_length(&mut self, len: u8) {
        self.min_pin_length = len;
    }

    pub(crate) fn set_force_pin_change(&mut self, force: bool) {
        self.force_pin_change = force;
    }

    pub(crate) fn set_min_pin_length_rp_ids(&mut self, ids: RpIdList) {
        self.min_pin_length_rp_ids = ids;
    }

    pub(crate) fn set_always_uv(&mut self, always_uv: bool) {
        self.always_uv = always_uv;
    }

    pub(crate) fn set_uv_retries(&mut self, retries: u8) {
        self.uv_retries = retries.min(MAX_UV_RETRIES);
    }
}

/// PIN records of release 96f7afd (tests/fixtures/release-96f7afd/core/records),
/// the PIN "fixture-pin-1234", minPINLength 6, pinRetries 6, the RP ID list
/// `["fixtures.example"]`: `V2` with uvRetries 6, `V1` the same state before
/// the failed UVs.
#[cfg(test)]
pub(crate) mod fixtures {
    /// The PIN both records hold.
    pub(crate) const PIN: &str = "fixture-pin-1234";
    /// pin.bin (version 2).
    pub(crate) const V2: [u8; 40] = [
        0x02, 0x01, 0x06, 0x06, 0x10, 0x3c, 0xec, 0xad, 0x52, 0x24, 0x5e, 0x2b, 0xff, 0x49, 0x92,
        0x61, 0x75, 0xf6, 0xda, 0xf4, 0x4a, 0x01, 0x10, 0x66, 0x69, 0x78, 0x74, 0x75, 0x72, 0x65,
        0x73, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x06,
    ];
    /// pin-retries6.bin (version 1).
    pub(crate) const V1: [u8; 39] = [
        0x01, 0x01, 0x06, 0x06, 0x10, 0x3c, 0xec, 0xad, 0x52, 0x24, 0x5e, 0x2b, 0xff, 0x49, 0x92,
        0x61, 0x75, 0xf6, 0xda, 0xf4, 0x4a, 0x01, 0x10, 0x66, 0x69, 0x78, 0x74, 0x75, 0x72, 0x65,
        0x73, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_platform::{seeded_rng, MemoryStorage};
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    fn pin_hash(pin: &str) -> [u8; PIN_HASH_LEN] {
        Sha256::digest(pin.as_bytes())[..PIN_HASH_LEN]
            .try_into()
            .unwrap()
    }

    /// PBKDF2-HMAC-SHA-256 with one output block, written out from RFC 8018
    /// §5.2 with the hmac crate (not the pbkdf2 crate the key uses).
    fn pbkdf2_by_hand(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
        let mac = |data: &[&[u8]]| {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(password).unwrap();
            for d in data {
                m.update(d);
            }
            <[u8; 32]>::from(m.finalize().into_bytes())
        };
        let mut u = mac(&[salt, &1u32.to_be_bytes()]);
        let mut t = u;
        for _ in 1..iterations {
            u = mac(&[&u]);
            for (t, u) in t.iter_mut().zip(u) {
                *t ^= u;
            }
        }
        t
    }

    fn verifier(pin: &str) -> PinVerifier {
        PinVerifier::new(&pin_hash(pin), PinKdfCost::TEST, &mut seeded_rng(3))
    }

    fn sample() -> PinState {
        let mut s = PinState::default();
        s.set_pin(verifier("sample-pin"), 10);
        s.set_retries(5);
        s.set_min_pin_length(6);
        s.set_force_pin_change(true);
        let mut ids = RpIdList::new();
        for id in ["example.com", "login.example.org"] {
            let mut s = String::new();
            s.push_str(id).unwrap();
            ids.push(s).unwrap();
        }
        s.set_min_pin_length_rp_ids(ids);
        s.set_always_uv(true);
        s
    }

    fn encoded(state: &PinState) -> std::vec::Vec<u8> {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let len = state.encode(&mut buf).unwrap();
        buf[..len].to_vec()
    }

    #[test]
    fn the_record_holds_a_salted_stretched_verifier_not_the_pin_hash() {
        let state = sample();
        let bytes = encoded(&state);
        assert_eq!(bytes[0], RECORD_VERSION_3);
        let hash = pin_hash("sample-pin");
        assert!(
            !bytes.windows(PIN_HASH_LEN).any(|w| w == hash),
            "the PIN hash itself is stored"
        );
        let salt = &bytes[V3_SECRET_AT..V3_SECRET_AT + SALT_LEN];
        let iterations = u32::from_be_bytes(bytes[22..26].try_into().unwrap());
        assert_eq!(iterations, PinKdfCost::TEST.get());
        assert_eq!(bytes[26..58], pbkdf2_by_hand(&hash, salt, iterations));
        assert!(state.pin_hash_matches(&hash));
        assert!(!state.pin_hash_matches(&pin_hash("sample-pin!")));
    }

    #[test]
    fn uv_retries_round_trip_in_the_header() {
        for uv in 0..=MAX_UV_RETRIES {
            let mut s = sample();
            s.set_uv_retries(uv);
            let bytes = encoded(&s);
            assert_eq!(bytes[5], uv);
            let back = PinState::decode(&bytes).unwrap();
            assert_eq!(back.uv_retries(), uv);
            assert!(back == s);
        }
        assert_eq!(PinState::locked().uv_retries(), 0);
        let mut bytes = encoded(&sample());
        bytes[5] = MAX_UV_RETRIES + 1;
        assert!(PinState::decode(&bytes).is_err());
    }

    #[test]
    fn round_trip() {
        for state in [PinState::default(), sample(), PinState::locked()] {
            let back = PinState::decode(&encoded(&state)).unwrap();
            assert!(back == state);
        }
    }

    #[test]
    fn decode_rejects_damage() {
        let good = encoded(&sample());
        let len = good.len();
        // Every strict prefix is invalid.
        for cut in 0..len {
            assert_eq!(
                PinState::decode(&good[..cut]).err(),
                Some(StateError::Corrupt),
                "cut {cut}"
            );
        }
        // Trailing garbage.
        let mut longer = good.clone();
        longer.push(0);
        assert!(PinState::decode(&longer).is_err());
        let bad = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            PinState::decode(&b).err()
        };
        assert_eq!(bad(0, 4), Some(StateError::Corrupt)); // version
        assert_eq!(bad(0, 0), Some(StateError::Corrupt)); // version
        assert_eq!(bad(1, 0x08), Some(StateError::Corrupt)); // unknown flag
        assert_eq!(bad(2, 9), Some(StateError::Corrupt)); // retries > 8
        assert_eq!(bad(3, 3), Some(StateError::Corrupt)); // minPINLength < 4
        assert_eq!(bad(3, 64), Some(StateError::Corrupt)); // minPINLength > 63
        assert_eq!(bad(HEADER_LEN - 1, 5), Some(StateError::Corrupt)); // too many RP IDs
        assert_eq!(bad(HEADER_LEN, 0), Some(StateError::Corrupt)); // empty RP ID
        assert_eq!(bad(HEADER_LEN + 1, 0xFF), Some(StateError::Corrupt)); // not UTF-8
                                                                          // Iterations 0, or above the maximum (a tampered file must not stall
                                                                          // the key).
        let with_iterations = |n: u32| {
            let mut b = good.clone();
            b[22..26].copy_from_slice(&n.to_be_bytes());
            PinState::decode(&b).err()
        };
        assert_eq!(with_iterations(0), Some(StateError::Corrupt));
        assert_eq!(
            with_iterations(PinKdfCost::MAX_ITERATIONS + 1),
            Some(StateError::Corrupt)
        );
        assert_eq!(with_iterations(PinKdfCost::MAX_ITERATIONS), None);
        // Without a PIN, the verifier fields are all zero.
        let mut none = encoded(&PinState::default());
        assert!(PinState::decode(&none).is_ok());
        none[30] = 1;
        assert_eq!(PinState::decode(&none).err(), Some(StateError::Corrupt));
    }

    #[test]
    fn the_records_of_release_96f7afd_still_decode() {
        let hash = pin_hash(fixtures::PIN);
        for (bytes, uv) in [(&fixtures::V2[..], 6), (&fixtures::V1[..], 8)] {
            let state = PinState::decode(bytes).unwrap();
            assert!(state.has_legacy_pin());
            assert!(state.pin_hash_matches(&hash));
            assert!(!state.pin_hash_matches(&pin_hash("fixture-pin-1235")));
            assert_eq!(state.retries(), 6);
            assert_eq!(state.uv_retries(), uv);
            assert_eq!(state.min_pin_length(), 6);
            assert_eq!(state.code_point_length(), 16);
            assert_eq!(state.min_pin_length_rp_ids().len(), 1);
            assert_eq!(
                state.min_pin_length_rp_ids()[0].as_str(),
                "fixtures.example"
            );
            // Not written back as it is: only migrated.
            let mut buf = [0u8; MAX_ENCODED_LEN];
            assert_eq!(state.encode(&mut buf), None);
        }
        // Version 2 must carry a uvRetries byte below the maximum.
        assert!(PinState::decode(&fixtures::V2[..39]).is_err());
        let mut v2 = fixtures::V2;
        v2[39] = MAX_UV_RETRIES;
        assert!(PinState::decode(&v2).is_err());
        let mut v1_with_uv = fixtures::V2;
        v1_with_uv[0] = RECORD_VERSION_1;
        assert!(PinState::decode(&v1_with_uv).is_err());
    }

    #[test]
    fn migration_stretches_the_old_hash_and_rewrites_the_record_atomically() {
        for old in [&fixtures::V1[..], &fixtures::V2[..]] {
            let mut storage = MemoryStorage::new();
            storage.put_raw(RecordKey::Pin, old);
            let (mut state, version) = PinState::load_versioned(&mut storage).unwrap();
            assert!(PinState::is_old_version(version));

            // A failed write changes nothing, on disk or in memory.
            storage.set_fail_writes(Some(StorageError::Io));
            assert_eq!(
                state.migrate(&mut storage, PinKdfCost::TEST, &mut seeded_rng(5)),
                Err(StorageError::Io)
            );
            assert!(state.has_legacy_pin());
            assert_eq!(storage.get(RecordKey::Pin).unwrap(), old);
            storage.set_fail_writes(None);

            state
                .migrate(&mut storage, PinKdfCost::TEST, &mut seeded_rng(5))
                .unwrap();
            assert!(!state.has_legacy_pin());
            let record = storage.get(RecordKey::Pin).unwrap();
            assert_eq!(record[0], RECORD_VERSION_3);
            let hash = pin_hash(fixtures::PIN);
            assert!(!record.windows(PIN_HASH_LEN).any(|w| w == hash));
            let salt = &record[V3_SECRET_AT..V3_SECRET_AT + SALT_LEN];
            assert_eq!(
                record[26..58],
                pbkdf2_by_hand(&hash, salt, PinKdfCost::TEST.get())
            );
            // Everything else is kept.
            let (reloaded, version) = PinState::load_versioned(&mut storage).unwrap();
            assert!(!PinState::is_old_version(version));
            assert!(reloaded == state);
            assert!(reloaded.pin_hash_matches(&hash));
            assert_eq!(reloaded.retries(), 6);
            assert_eq!(reloaded.min_pin_length(), 6);
            assert_eq!(reloaded.code_point_length(), 16);
        }
        // An old record without a PIN is rewritten too.
        let mut storage = MemoryStorage::new();
        let mut v1 = fixtures::V1;
        v1[1] = 0;
        v1[4] = 0;
        v1[5..21].fill(0);
        storage.put_raw(RecordKey::Pin, &v1);
        let mut state = PinState::load(&mut storage).unwrap();
        assert!(!state.is_pin_set());
        state
            .migrate(&mut storage, PinKdfCost::TEST, &mut seeded_rng(5))
            .unwrap();
        assert_eq!(storage.get(RecordKey::Pin).unwrap()[0], RECORD_VERSION_3);
        assert_eq!(PinState::load(&mut storage).unwrap().min_pin_length(), 6);
    }

    #[test]
    fn a_replaced_state_wipes_its_verifier() {
        let mut storage = MemoryStorage::new();
        let mut state = PinState::default();
        state
            .update(&mut storage, |s| s.set_pin(verifier("first-pin"), 9))
            .unwrap();
        crate::wipe::hook::take();
        // The old state (and the copy update made) go: their verifiers are wiped.
        state
            .update(&mut storage, |s| s.set_pin(verifier("second-pin"), 10))
            .unwrap();
        assert!(crate::wipe::hook::count("PinVerifier") >= 1);
        state.update(&mut storage, |s| s.clear_pin()).unwrap();
        assert!(crate::wipe::hook::count("PinVerifier") >= 1);
        // A legacy hash is wiped when its state goes.
        let legacy = PinState::decode(&fixtures::V2).unwrap();
        crate::wipe::hook::take();
        drop(legacy);
        assert_eq!(crate::wipe::hook::count("StoredPin::Legacy"), 1);
        // The load and store buffers are wiped after use.
        PinState::load(&mut storage).unwrap();
        assert_eq!(crate::wipe::hook::count("PinState::load buffer"), 1);
    }

    #[test]
    fn load_store_and_update() {
        let mut storage = MemoryStorage::new();
        let mut state = PinState::load(&mut storage).unwrap();
        assert!(state == PinState::default());
        assert!(!state.is_pin_set());
        state
            .update(&mut storage, |s| s.set_pin(verifier("1111"), 4))
            .unwrap();
        let loaded = PinState::load(&mut storage).unwrap();
        assert!(loaded.is_pin_set());
        assert!(loaded.pin_hash_matches(&pin_hash("1111")));
        assert!(!loaded.pin_hash_matches(&pin_hash("2222")));
        assert!(!loaded.pin_hash_matches(&pin_hash("1111")[..15]));

        // A failed write leaves the in-memory state untouched.
        storage.set_fail_writes(Some(StorageError::Io));
        assert_eq!(
            state.update(&mut storage, |s| s.set_retries(3)),
            Err(StorageError::Io)
        );
        assert_eq!(state.retries(), MAX_PIN_RETRIES);
        storage.set_fail_writes(None);

        storage.put_raw(RecordKey::Pin, &[9, 9, 9]);
        assert_eq!(
            PinState::load(&mut storage).err(),
            Some(StateError::Corrupt)
        );
        storage.set_fail_reads(Some(StorageError::Io));
        assert_eq!(
            PinState::load(&mut storage).err(),
            Some(StateError::Storage(StorageError::Io))
        );
    }

    /// A version 3 header (no PIN) and nothing after it: what salvage reads.
    fn header(flags: u8, retries: u8, min_len: u8, cp_len: u8, uv_retries: u8) -> [u8; 6] {
        [
            RECORD_VERSION_3,
            flags,
            retries,
            min_len,
            cp_len,
            uv_retries,
        ]
    }

    #[test]
    fn salvage_refuses_a_header_with_any_one_field_out_of_range() {
        let good = header(0, MAX_PIN_RETRIES, 4, 0, MAX_UV_RETRIES);
        assert!(PinState::salvage(&good).is_some());
        // The largest values each field may hold are accepted...
        let edge = header(
            FLAGS & !FLAG_PIN_SET,
            MAX_PIN_RETRIES,
            63,
            63,
            MAX_UV_RETRIES,
        );
        assert!(PinState::salvage(&edge).is_some());
        // ...and each field alone one past them (or below) is refused.
        let mut bad: std::vec::Vec<([u8; 6], &str)> = std::vec::Vec::new();
        for version in [0, RECORD_VERSION_1, RECORD_VERSION_2, 4] {
            let mut h = good;
            h[0] = version;
            bad.push((h, "version"));
        }
        bad.push((header(0x08, 8, 4, 0, 8), "unknown flag"));
        bad.push((header(0, MAX_PIN_RETRIES + 1, 4, 0, 8), "pinRetries"));
        bad.push((header(0, 8, 3, 0, 8), "minPINLength below 4"));
        bad.push((header(0, 8, 64, 0, 8), "minPINLength above 63"));
        bad.push((header(0, 8, 4, 64, 8), "PIN length above 63"));
        bad.push((header(0, 8, 4, 0, MAX_UV_RETRIES + 1), "uvRetries"));
        for (h, what) in bad {
            assert!(PinState::salvage(&h).is_none(), "{what}: {h:?}");
        }
        assert!(PinState::salvage(&good[..5]).is_none(), "a cut header");
    }

    #[test]
    fn salvage_keeps_the_headers_settings() {
        let flags = FLAG_FORCE_CHANGE | FLAG_ALWAYS_UV;
        let state = PinState::salvage(&header(flags, 8, 9, 0, 3)).unwrap();
        assert!(!state.is_pin_set());
        assert!(state.force_pin_change());
        assert!(state.always_uv());
        assert_eq!(state.min_pin_length(), 9);
        assert_eq!(state.uv_retries(), 3);
        let state = PinState::salvage(&header(0, 8, 9, 0, 3)).unwrap();
        assert!(!state.force_pin_change());
        assert!(!state.always_uv());
    }

    /// A version 3 record without a PIN, as the key writes it.
    fn record_without_pin() -> std::vec::Vec<u8> {
        let mut out = [0u8; MAX_ENCODED_LEN];
        let len = PinState::default().encode(&mut out).unwrap();
        out[..len].to_vec()
    }

    #[test]
    fn decode_checks_the_pin_length_and_each_rp_ids_length() {
        let good = record_without_pin();
        assert!(PinState::decode(&good).is_ok());
        let with = |at: usize, value: u8| {
            let mut r = good.clone();
            r[at] = value;
            r
        };
        assert!(PinState::decode(&with(4, 63)).is_ok(), "PIN length 63");
        assert_eq!(
            PinState::decode(&with(4, 64)).err(),
            Some(StateError::Corrupt),
            "PIN length 64"
        );
        // One RP ID of length 0: refused (an empty RP ID is no RP ID).
        let mut empty_id = with(HEADER_LEN - 1, 1);
        empty_id.push(0);
        assert_eq!(PinState::decode(&empty_id).err(), Some(StateError::Corrupt));
        let mut one_id = with(HEADER_LEN - 1, 1);
        one_id.extend_from_slice(&[1, b'a']);
        let state = PinState::decode(&one_id).unwrap();
        assert_eq!(state.min_pin_length_rp_ids().len(), 1);
    }
}
