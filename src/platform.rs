//! The traits through which the core reaches the outside world.
//!
//! The core owns no I/O. The device shell (firmware-sim) and the tests implement
//! these traits; time is passed into every call as monotonic milliseconds.

/// Identifies one persistent record. Each record is read and written whole, and a
/// write is atomic: after a crash a record holds either its old or its new value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKey {
    /// Device-wide state: the device secret, the global sign counter, settings.
    Device,
    /// PIN state: PIN hash, retries, minimum length, force-change flag.
    Pin,
    /// The serialized large-blob array.
    LargeBlobs,
    /// Present while an authenticatorReset is under way (written first,
    /// removed last), so an interrupted reset is completed at the next
    /// request or power-up: reset is all or nothing.
    ResetJournal,
    /// One discoverable (resident) credential, by slot number.
    Credential(u16),
    /// The fingerprint templates of a key with a simulated sensor
    /// ([`crate::bio`]).
    Bio,
    /// Enterprise attestation enabled (authenticatorConfig
    /// enableEnterpriseAttestation); absent while disabled.
    EnterpriseAttestation,
}

impl RecordKey {
    /// A stable numeric id, for storage back ends that need one (file names, flash pages).
    pub fn id(self) -> u32 {
        match self {
            RecordKey::Device => 1,
            RecordKey::Pin => 2,
            RecordKey::LargeBlobs => 3,
            RecordKey::ResetJournal => 4,
            RecordKey::Credential(slot) => 0x1_0000 + u32::from(slot),
            RecordKey::Bio => 0x10,
            RecordKey::EnterpriseAttestation => 0x11,
        }
    }

    /// The inverse of [`RecordKey::id`].
    pub fn from_id(id: u32) -> Option<Self> {
        match id {
            1 => Some(RecordKey::Device),
            2 => Some(RecordKey::Pin),
            3 => Some(RecordKey::LargeBlobs),
            4 => Some(RecordKey::ResetJournal),
            0x10 => Some(RecordKey::Bio),
            0x11 => Some(RecordKey::EnterpriseAttestation),
            0x1_0000..=0x1_FFFF => Some(RecordKey::Credential((id - 0x1_0000) as u16)),
            _ => None,
        }
    }
}

/// The largest record the core ever writes, in bytes.
pub const MAX_RECORD_SIZE: usize = 4096;

/// Why a storage operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// The medium failed (I/O error); nothing was changed.
    Io,
    /// No room for the record.
    Full,
    /// The record is larger than [`MAX_RECORD_SIZE`] or the caller's buffer.
    TooLarge,
    /// A stored record could not be read back intact.
    Corrupt,
}

/// Persistent key-value records.
///
/// `write` and `remove` must be durable when they return `Ok`: the core relies on
/// that to persist sign counters before a response leaves the device.
pub trait Storage {
    /// Reads record `key` into `buf`; returns its length, or `None` if it does not exist.
    fn read(&mut self, key: RecordKey, buf: &mut [u8]) -> Result<Option<usize>, StorageError>;
    /// Atomically replaces (or creates) record `key`.
    fn write(&mut self, key: RecordKey, value: &[u8]) -> Result<(), StorageError>;
    /// Removes record `key`; removing an absent record is not an error.
    fn remove(&mut self, key: RecordKey) -> Result<(), StorageError>;
}

/// The answer to a request for user presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceStatus {
    /// No answer yet.
    Pending,
    /// The user approved (touched the key).
    Approved,
    /// The user (or policy) refused.
    Denied,
}

/// The answer to a request for built-in user verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UvStatus {
    /// The user was verified (for example, an enrolled finger matched).
    Verified,
    /// Verification failed (no match, refused, or no built-in method).
    Failed,
}

/// A test of user presence (the "touch" of a security key), and optionally a
/// built-in user-verification method (a fingerprint sensor).
pub trait UserPresence {
    /// Asks the user for presence. A new request replaces an outstanding one.
    fn request(&mut self, now_ms: u64);
    /// The answer to the outstanding request. An `Approved` answer is consumed:
    /// the next poll without a new request returns `Pending`.
    fn poll(&mut self, now_ms: u64) -> PresenceStatus;
    /// Withdraws the outstanding request (CTAPHID CANCEL, timeout, disconnect).
    fn cancel(&mut self);
    /// Performs built-in user verification once (CTAP 2.1 `performBuiltInUv`)
    /// and answers at once. The core calls it only when
    /// `Config::builtin_uv` is on; a successful verification also counts as
    /// user presence (the method is a touch of the sensor). The default has no
    /// built-in method and always fails.
    fn verify_user(&mut self, _now_ms: u64) -> UvStatus {
        UvStatus::Failed
    }
    /// Reads the fingerprint sensor of a key with biometrics ([`crate::bio`]):
    /// the finger on it (0 to [`crate::bio::MAX_FINGER`]; 0 is the finger
    /// that touches the key), or `None` when it reads nothing. Asked right
    /// after an approved presence request (an enrollment sample: the finger
    /// that gave the touch) and for built-in user verification (a match).
    /// The default: the touching finger.
    fn read_finger(&mut self, _now_ms: u64) -> Option<u8> {
        Some(0)
    }
}

/// Everything the core needs from its surroundings, as one value with public
/// fields so the core can borrow the parts independently.
pub struct Platform<S, U, R> {
    /// Persistent records.
    pub storage: S,
    /// The user-presence test.
    pub presence: U,
    /// A cryptographically secure random number generator.
    pub rng: R,
}
