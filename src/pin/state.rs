//! Persistent PIN state (the `RecordKey::Pin` record) and its encoding.
//!
//! The record holds `CurrentStoredPIN` = LEFT(SHA-256(pin), 16), the PIN's
//! length in code points (`PINCodePointLength`, needed when the minimum length
//! rises), `pinRetries`, `minPINLength`, the `forcePINChange` flag, the
//! `minPinLengthRPIDs` list, the `alwaysUv` setting (authenticatorConfig
//! state that, like the PIN, authenticatorReset returns to its default) and
//! `uvRetries`, the attempts left for built-in user verification.
//!
//! Encoding (version 1), all integers single bytes:
//!
//! ```text
//! [0]      version = 1
//! [1]      flags: bit 0 = PIN set, bit 1 = forcePINChange, bit 2 = alwaysUv
//! [2]      pinRetries (0..=8)
//! [3]      minPINLength (4..=63)
//! [4]      PINCodePointLength (0 when no PIN)
//! [5..21]  LEFT(SHA-256(pin), 16) (zeros when no PIN)
//! [21]     number of minPinLengthRPIDs, n <= MAX_MIN_PIN_LENGTH_RP_IDS
//! then n times: length (1..=MAX_RP_ID_LENGTH), UTF-8 bytes
//! ```
//!
//! Version 2 is version 1 followed by one byte, uvRetries (0..=7). It is
//! written only while uvRetries is below [`MAX_UV_RETRIES`], so a key that
//! never failed built-in UV (or has none) keeps writing version-1 records;
//! version 1 means uvRetries = [`MAX_UV_RETRIES`].
//!
//! Anything else (unknown version, out-of-range value, trailing bytes) is
//! [`StateError::Corrupt`]. A missing record means the factory state.

use heapless::{String, Vec};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

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
/// The length of `CurrentStoredPIN`.
pub const PIN_HASH_LEN: usize = 16;

const RECORD_VERSION: u8 = 1;
/// Version 1 plus a trailing uvRetries byte.
const RECORD_VERSION_UV: u8 = 2;
const FLAG_PIN_SET: u8 = 0x01;
const FLAG_FORCE_CHANGE: u8 = 0x02;
const FLAG_ALWAYS_UV: u8 = 0x04;
const HEADER_LEN: usize = 5 + PIN_HASH_LEN + 1;
/// The largest encoded record.
pub const MAX_ENCODED_LEN: usize =
    HEADER_LEN + MAX_MIN_PIN_LENGTH_RP_IDS * (1 + MAX_RP_ID_LENGTH) + 1;

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

/// The persistent PIN state. Deliberately no `Debug`: it holds the PIN hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PinState {
    pin_hash: Option<[u8; PIN_HASH_LEN]>,
    code_point_length: u8,
    retries: u8,
    min_pin_length: u8,
    force_pin_change: bool,
    min_pin_length_rp_ids: RpIdList,
    always_uv: bool,
    uv_retries: u8,
}

/// The PIN verifier is wiped from memory when a state goes (every
/// [`PinState::update`] drops the state it replaces).
impl Drop for PinState {
    fn drop(&mut self) {
        if let Some(hash) = &mut self.pin_hash {
            hash.zeroize();
        }
    }
}

impl Default for PinState {
    fn default() -> Self {
        PinState {
            pin_hash: None,
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
        state.pin_hash = Some([0xFF; PIN_HASH_LEN]);
        state.retries = 0;
        state.uv_retries = 0;
        state
    }

    /// Loads the state from storage; the factory state if there is no record.
    pub fn load<S: Storage>(storage: &mut S) -> Result<Self, StateError> {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let result = match storage.read(RecordKey::Pin, &mut buf) {
            Ok(None) => Ok(PinState::default()),
            Ok(Some(len)) => buf
                .get(..len)
                .ok_or(StateError::Corrupt)
                .and_then(Self::decode),
            // A record too large for our buffer cannot be ours.
            Err(StorageError::TooLarge) | Err(StorageError::Corrupt) => Err(StateError::Corrupt),
            Err(e) => Err(StateError::Storage(e)),
        };
        buf.zeroize();
        result
    }

    /// Writes the state to storage.
    pub fn store<S: Storage>(&self, storage: &mut S) -> Result<(), StorageError> {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let len = self.encode(&mut buf);
        let result = match buf.get(..len) {
            Some(record) => storage.write(RecordKey::Pin, record),
            None => Err(StorageError::TooLarge),
        };
        buf.zeroize();
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

    /// Encodes into `out` (at least [`MAX_ENCODED_LEN`] bytes); returns the length.
    pub fn encode(&self, out: &mut [u8; MAX_ENCODED_LEN]) -> usize {
        let mut flags = 0;
        if self.pin_hash.is_some() {
            flags |= FLAG_PIN_SET;
        }
        if self.force_pin_change {
            flags |= FLAG_FORCE_CHANGE;
        }
        if self.always_uv {
            flags |= FLAG_ALWAYS_UV;
        }
        // Version 2 only while uvRetries needs its byte (see the module docs).
        let uv_byte = (self.uv_retries < MAX_UV_RETRIES).then_some(self.uv_retries);
        out[0] = if uv_byte.is_some() {
            RECORD_VERSION_UV
        } else {
            RECORD_VERSION
        };
        out[1] = flags;
        out[2] = self.retries;
        out[3] = self.min_pin_length;
        out[4] = self.code_point_length;
        out[5..5 + PIN_HASH_LEN].copy_from_slice(&self.pin_hash.unwrap_or([0; PIN_HASH_LEN]));
        out[HEADER_LEN - 1] = self.min_pin_length_rp_ids.len() as u8;
        let mut pos = HEADER_LEN;
        for id in &self.min_pin_length_rp_ids {
            // Lengths are bounded by the types: n * (1 + MAX_RP_ID_LENGTH) fits.
            out[pos] = id.len() as u8;
            out[pos + 1..pos + 1 + id.len()].copy_from_slice(id.as_bytes());
            pos += 1 + id.len();
        }
        if let Some(uv_retries) = uv_byte {
            out[pos] = uv_retries;
            pos += 1;
        }
        pos
    }

    /// Decodes a record, validating every field.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let header = bytes.get(..HEADER_LEN).ok_or(StateError::Corrupt)?;
        let (version, flags, retries, min_len, cp_len) =
            (header[0], header[1], header[2], header[3], header[4]);
        if !matches!(version, RECORD_VERSION | RECORD_VERSION_UV)
            || flags & !(FLAG_PIN_SET | FLAG_FORCE_CHANGE | FLAG_ALWAYS_UV) != 0
            || retries > MAX_PIN_RETRIES
            || !(DEFAULT_MIN_PIN_LENGTH..=MAX_PIN_BYTES as u8).contains(&min_len)
            || usize::from(cp_len) > MAX_PIN_BYTES
        {
            return Err(StateError::Corrupt);
        }
        let pin_set = flags & FLAG_PIN_SET != 0;
        let mut hash = [0u8; PIN_HASH_LEN];
        hash.copy_from_slice(&header[5..5 + PIN_HASH_LEN]);
        let hash = zeroize::Zeroizing::new(hash);
        let count = usize::from(header[HEADER_LEN - 1]);
        if count > MAX_MIN_PIN_LENGTH_RP_IDS {
            return Err(StateError::Corrupt);
        }
        let mut ids = RpIdList::new();
        let mut rest = &bytes[HEADER_LEN..];
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
            (RECORD_VERSION, []) => MAX_UV_RETRIES,
            (RECORD_VERSION_UV, [uv]) if *uv < MAX_UV_RETRIES => *uv,
            _ => return Err(StateError::Corrupt),
        };
        Ok(PinState {
            pin_hash: if pin_set { Some(*hash) } else { None },
            code_point_length: if pin_set { cp_len } else { 0 },
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
        self.pin_hash.is_some()
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

    /// Compares `candidate` with `CurrentStoredPIN` in constant time. False when no PIN is set.
    pub fn pin_hash_matches(&self, candidate: &[u8]) -> bool {
        match &self.pin_hash {
            Some(stored) => bool::from(stored.as_slice().ct_eq(candidate)),
            None => false,
        }
    }

    pub(crate) fn set_retries(&mut self, retries: u8) {
        self.retries = retries.min(MAX_PIN_RETRIES);
    }

    /// Installs a new PIN: its hash and code-point length, full retries, and
    /// clears forcePINChange.
    pub(crate) fn set_pin(&mut self, hash: [u8; PIN_HASH_LEN], code_points: u8) {
        self.pin_hash = Some(hash);
        self.code_point_length = code_points;
        self.retries = MAX_PIN_RETRIES;
        self.force_pin_change = false;
    }

    /// Removes the PIN: no hash, full retries, forcePINChange off.
    pub(crate) fn clear_pin(&mut self) {
        self.pin_hash = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_platform::MemoryStorage;

    fn sample() -> PinState {
        let mut s = PinState::default();
        s.set_pin([0xAB; 16], 6);
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

    #[test]
    fn uv_retries_round_trip_and_keep_version_1_at_maximum() {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let full = sample();
        let len_full = full.encode(&mut buf);
        assert_eq!(buf[0], RECORD_VERSION, "uvRetries at maximum: version 1");
        let mut s = sample();
        s.set_uv_retries(3);
        let len = s.encode(&mut buf);
        assert_eq!(
            (buf[0], len, buf[len - 1]),
            (RECORD_VERSION_UV, len_full + 1, 3)
        );
        let back = PinState::decode(&buf[..len]).unwrap();
        assert_eq!(back.uv_retries(), 3);
        assert!(back == s);
        // Version 2 must carry a uvRetries byte below the maximum.
        assert!(PinState::decode(&buf[..len - 1]).is_err());
        let mut b = buf;
        b[len - 1] = MAX_UV_RETRIES;
        assert!(PinState::decode(&b[..len]).is_err());
        assert_eq!(PinState::locked().uv_retries(), 0);
    }

    #[test]
    fn round_trip() {
        for state in [PinState::default(), sample(), PinState::locked()] {
            let mut buf = [0u8; MAX_ENCODED_LEN];
            let len = state.encode(&mut buf);
            let back = PinState::decode(&buf[..len]).unwrap();
            assert!(back == state);
        }
    }

    #[test]
    fn decode_rejects_damage() {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let len = sample().encode(&mut buf);
        // Every strict prefix is invalid.
        for cut in 0..len {
            assert_eq!(
                PinState::decode(&buf[..cut]).err(),
                Some(StateError::Corrupt),
                "cut {cut}"
            );
        }
        // Trailing garbage.
        assert!(PinState::decode(&buf[..len + 1]).is_err());
        let bad = |i: usize, v: u8| {
            let mut b = buf;
            b[i] = v;
            PinState::decode(&b[..len]).err()
        };
        assert_eq!(bad(0, 2), Some(StateError::Corrupt)); // version
        assert_eq!(bad(1, 0x08), Some(StateError::Corrupt)); // unknown flag
        assert_eq!(bad(2, 9), Some(StateError::Corrupt)); // retries > 8
        assert_eq!(bad(3, 3), Some(StateError::Corrupt)); // minPINLength < 4
        assert_eq!(bad(3, 64), Some(StateError::Corrupt)); // minPINLength > 63
        assert_eq!(bad(HEADER_LEN - 1, 5), Some(StateError::Corrupt)); // too many RP IDs
        assert_eq!(bad(HEADER_LEN, 0), Some(StateError::Corrupt)); // empty RP ID
        assert_eq!(bad(HEADER_LEN + 1, 0xFF), Some(StateError::Corrupt)); // not UTF-8
    }

    #[test]
    fn load_store_and_update() {
        let mut storage = MemoryStorage::new();
        let mut state = PinState::load(&mut storage).unwrap();
        assert!(state == PinState::default());
        assert!(!state.is_pin_set());
        state
            .update(&mut storage, |s| s.set_pin([1; 16], 4))
            .unwrap();
        let loaded = PinState::load(&mut storage).unwrap();
        assert!(loaded.is_pin_set());
        assert!(loaded.pin_hash_matches(&[1; 16]));
        assert!(!loaded.pin_hash_matches(&[2; 16]));
        assert!(!loaded.pin_hash_matches(&[1; 15]));

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
}
