//! An in-memory platform for tests and benchmarks (feature `test-platform`).
//!
//! [`MemoryStorage`] and [`ScriptedPresence`] are cheap handles onto shared
//! state: clone one before moving it into an [`crate::authenticator::Authenticator`]
//! to inspect or script it from the test, or to build a second authenticator on
//! the same storage (a simulated power cycle).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;

use rand_chacha::rand_core::SeedableRng;
pub use rand_chacha::ChaCha20Rng;

use crate::platform::{
    Platform, PresenceStatus, RecordKey, Storage, StorageError, UserPresence, UvStatus,
    MAX_RECORD_SIZE,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Default)]
struct StorageState {
    records: BTreeMap<RecordKey, Vec<u8>>,
    fail_writes: Option<StorageError>,
    fail_reads: Option<StorageError>,
    fail_writes_after: Option<usize>,
    writes: usize,
    // Failure points counting removes too (see `fail_mutations_after`).
    fail_mutations_after: Option<usize>,
    mutations: usize,
}

impl StorageState {
    /// Counts one write or remove against `fail_mutations_after`.
    fn mutation_allowed(&mut self) -> bool {
        match self.fail_mutations_after {
            Some(0) => false,
            Some(n) => {
                self.fail_mutations_after = Some(n - 1);
                true
            }
            None => true,
        }
    }
}

/// Records in memory, with failure injection. Clones share the same records.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<StorageState>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every write and remove fail with `error`, or with `None` lets
    /// them succeed again (also ending a [`MemoryStorage::fail_writes_after`]).
    pub fn set_fail_writes(&self, error: Option<StorageError>) {
        let mut state = lock(&self.state);
        state.fail_writes = error;
        if error.is_none() {
            state.fail_writes_after = None;
        }
    }

    /// Lets `n` more writes or removes succeed, then fails them with
    /// `StorageError::Io` (a crash or a dead medium at that point).
    pub fn fail_writes_after(&self, n: usize) {
        lock(&self.state).fail_writes_after = Some(n);
    }

    /// Lets `n` more writes *or removes* succeed, then fails both with
    /// `StorageError::Io` (the "Nth mutation fails" point of a failure-path
    /// test); `None` lifts it.
    pub fn fail_mutations_after(&self, n: Option<usize>) {
        lock(&self.state).fail_mutations_after = n;
    }

    /// How many writes and removes succeeded so far.
    pub fn mutation_count(&self) -> usize {
        lock(&self.state).mutations
    }

    /// A copy of every record (to compare whole states).
    pub fn snapshot(&self) -> BTreeMap<RecordKey, Vec<u8>> {
        lock(&self.state).records.clone()
    }

    /// Makes every read fail with `error` (or succeed again with `None`).
    pub fn set_fail_reads(&self, error: Option<StorageError>) {
        lock(&self.state).fail_reads = error;
    }

    /// The raw bytes of a record.
    pub fn get(&self, key: RecordKey) -> Option<Vec<u8>> {
        lock(&self.state).records.get(&key).cloned()
    }

    /// Replaces a record's raw bytes behind the core's back (to simulate corruption).
    pub fn put_raw(&self, key: RecordKey, value: &[u8]) {
        lock(&self.state).records.insert(key, value.to_vec());
    }

    /// The keys of all records.
    pub fn keys(&self) -> Vec<RecordKey> {
        lock(&self.state).records.keys().copied().collect()
    }

    /// How many successful writes and removes happened so far.
    pub fn write_count(&self) -> usize {
        lock(&self.state).writes
    }
}

impl Storage for MemoryStorage {
    fn read(&mut self, key: RecordKey, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
        let state = lock(&self.state);
        if let Some(e) = state.fail_reads {
            return Err(e);
        }
        match state.records.get(&key) {
            None => Ok(None),
            Some(v) => {
                let dst = buf.get_mut(..v.len()).ok_or(StorageError::TooLarge)?;
                dst.copy_from_slice(v);
                Ok(Some(v.len()))
            }
        }
    }

    fn write(&mut self, key: RecordKey, value: &[u8]) -> Result<(), StorageError> {
        let mut state = lock(&self.state);
        if let Some(e) = state.fail_writes {
            return Err(e);
        }
        if let Some(n) = state.fail_writes_after {
            if n == 0 {
                return Err(StorageError::Io);
            }
            state.fail_writes_after = Some(n - 1);
        }
        if value.len() > MAX_RECORD_SIZE {
            return Err(StorageError::TooLarge);
        }
        if !state.mutation_allowed() {
            return Err(StorageError::Io);
        }
        state.records.insert(key, value.to_vec());
        state.writes += 1;
        state.mutations += 1;
        Ok(())
    }

    fn remove(&mut self, key: RecordKey) -> Result<(), StorageError> {
        let mut state = lock(&self.state);
        if let Some(e) = state.fail_writes {
            return Err(e);
        }
        if let Some(n) = state.fail_writes_after {
            if n == 0 {
                return Err(StorageError::Io);
            }
            state.fail_writes_after = Some(n - 1);
        }
        if !state.mutation_allowed() {
            return Err(StorageError::Io);
        }
        state.records.remove(&key);
        state.writes += 1;
        state.mutations += 1;
        Ok(())
    }
}

/// How [`ScriptedPresence`] answers an outstanding request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceScript {
    /// The first poll after a request approves it.
    Approve,
    /// The first poll after a request denies it.
    Deny,
    /// Polls stay pending.
    Pending,
    /// The n-th poll after a request approves it (earlier polls are pending).
    ApproveAfterPolls(u32),
}

#[derive(Debug)]
struct PresenceState {
    script: PresenceScript,
    outstanding: bool,
    /// The user touched the key for the outstanding request ([`ScriptedPresence::touch`]).
    touched: bool,
    polls_since_request: u32,
    requests: u32,
    polls: u32,
    cancels: u32,
    uv: UvStatus,
    uv_requests: u32,
    /// What the fingerprint sensor reads ([`ScriptedPresence::set_finger`]).
    finger: Option<u8>,
    finger_reads: u32,
}

/// A user-presence test that answers as scripted and counts calls. Clones share state.
#[derive(Clone, Debug)]
pub struct ScriptedPresence {
    state: Arc<Mutex<PresenceState>>,
}

impl Default for ScriptedPresence {
    fn default() -> Self {
        Self::new(PresenceScript::Approve)
    }
}

impl ScriptedPresence {
    /// A presence test following `script`.
    pub fn new(script: PresenceScript) -> Self {
        Self {
            state: Arc::new(Mutex::new(PresenceState {
                script,
                outstanding: false,
                touched: false,
                polls_since_request: 0,
                requests: 0,
                polls: 0,
                cancels: 0,
                uv: UvStatus::Verified,
                uv_requests: 0,
                finger: Some(0),
                finger_reads: 0,
            })),
        }
    }

    /// Changes the script (an outstanding request stays outstanding).
    pub fn set_script(&self, script: PresenceScript) {
        lock(&self.state).script = script;
    }

    /// How built-in user verification answers from now on (initially `Verified`).
    pub fn set_uv(&self, answer: UvStatus) {
        lock(&self.state).uv = answer;
    }

    /// What the fingerprint sensor reads from now on (initially `Some(0)`,
    /// the touching finger; `None`: nothing).
    pub fn set_finger(&self, finger: Option<u8>) {
        lock(&self.state).finger = finger;
    }

    /// How many times the fingerprint sensor was read.
    pub fn finger_reads(&self) -> u32 {
        lock(&self.state).finger_reads
    }

    /// How many times built-in user verification was performed.
    pub fn uv_requests(&self) -> u32 {
        lock(&self.state).uv_requests
    }

    /// How many times presence was requested.
    pub fn requests(&self) -> u32 {
        lock(&self.state).requests
    }

    /// How many times presence was polled.
    pub fn polls(&self) -> u32 {
        lock(&self.state).polls
    }

    /// How many times a request was cancelled.
    pub fn cancels(&self) -> u32 {
        lock(&self.state).cancels
    }

    /// Whether a request is outstanding.
    pub fn outstanding(&self) -> bool {
        lock(&self.state).outstanding
    }

    /// The user touches the key: the outstanding request, and only that one,
    /// is approved at its next poll whatever the script says. A new request
    /// or a cancel forgets the touch; without a request it does nothing.
    pub fn touch(&self) {
        let mut s = lock(&self.state);
        s.touched = s.outstanding;
    }
}

impl UserPresence for ScriptedPresence {
    fn request(&mut self, _now_ms: u64) {
        let mut s = lock(&self.state);
        s.requests += 1;
        s.outstanding = true;
        s.touched = false;
        s.polls_since_request = 0;
    }

    fn poll(&mut self, _now_ms: u64) -> PresenceStatus {
        let mut s = lock(&self.state);
        s.polls += 1;
        if !s.outstanding {
            return PresenceStatus::Pending;
        }
        s.polls_since_request += 1;
        if s.touched {
            s.touched = false;
            s.outstanding = false;
            return PresenceStatus::Approved;
        }
        let answer = match s.script {
            PresenceScript::Approve => PresenceStatus::Approved,
            PresenceScript::Deny => PresenceStatus::Denied,
            PresenceScript::Pending => PresenceStatus::Pending,
            PresenceScript::ApproveAfterPolls(n) if s.polls_since_request >= n => {
                PresenceStatus::Approved
            }
            PresenceScript::ApproveAfterPolls(_) => PresenceStatus::Pending,
        };
        if answer != PresenceStatus::Pending {
            s.outstanding = false;
        }
        answer
    }

    fn cancel(&mut self) {
        let mut s = lock(&self.state);
        s.cancels += 1;
        s.outstanding = false;
        s.touched = false;
    }

    fn verify_user(&mut self, _now_ms: u64) -> UvStatus {
        let mut s = lock(&self.state);
        s.uv_requests += 1;
        s.uv
    }

    fn read_finger(&mut self, _now_ms: u64) -> Option<u8> {
        let mut s = lock(&self.state);
        s.finger_reads += 1;
        s.finger
    }
}

/// A deterministic RNG for tests.
pub fn seeded_rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The platform type the test helpers build.
pub type TestPlatform = Platform<MemoryStorage, ScriptedPresence, ChaCha20Rng>;

/// A platform with fresh storage, presence that approves, and a seeded RNG.
pub fn test_platform(seed: u64) -> TestPlatform {
    Platform {
        storage: MemoryStorage::new(),
        presence: ScriptedPresence::default(),
        rng: seeded_rng(seed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_roundtrip_and_failures() {
        let mut s = MemoryStorage::new();
        let view = s.clone();
        s.write(RecordKey::Device, b"abc").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(s.read(RecordKey::Device, &mut buf), Ok(Some(3)));
        assert_eq!(view.get(RecordKey::Device).unwrap(), b"abc");
        assert_eq!(
            s.read(RecordKey::Device, &mut [0u8; 2]),
            Err(StorageError::TooLarge)
        );
        view.set_fail_writes(Some(StorageError::Io));
        assert_eq!(s.write(RecordKey::Pin, b"x"), Err(StorageError::Io));
        view.set_fail_writes(None);
        view.fail_writes_after(1);
        s.write(RecordKey::Pin, b"x").unwrap();
        assert_eq!(s.write(RecordKey::Pin, b"y"), Err(StorageError::Io));
        assert_eq!(s.remove(RecordKey::Device), Err(StorageError::Io));
        view.set_fail_writes(None);
        s.remove(RecordKey::Device).unwrap();
        assert_eq!(s.read(RecordKey::Device, &mut buf), Ok(None));
    }

    #[test]
    fn mutation_failure_point_counts_writes_and_removes() {
        let mut s = MemoryStorage::new();
        let view = s.clone();
        view.fail_mutations_after(Some(2));
        s.write(RecordKey::Pin, b"x").unwrap();
        s.remove(RecordKey::Pin).unwrap();
        assert_eq!(s.write(RecordKey::Pin, b"y"), Err(StorageError::Io));
        assert_eq!(s.remove(RecordKey::Device), Err(StorageError::Io));
        assert_eq!(view.mutation_count(), 2);
        assert!(view.snapshot().is_empty());
        view.fail_mutations_after(None);
        s.write(RecordKey::Pin, b"z").unwrap();
        assert_eq!(view.snapshot().get(&RecordKey::Pin).unwrap(), b"z");
    }

    #[test]
    fn presence_script() {
        let mut p = ScriptedPresence::new(PresenceScript::ApproveAfterPolls(2));
        assert_eq!(p.poll(0), PresenceStatus::Pending);
        p.request(0);
        assert_eq!(p.poll(0), PresenceStatus::Pending);
        assert_eq!(p.poll(0), PresenceStatus::Approved);
        assert_eq!(p.poll(0), PresenceStatus::Pending);
        p.set_script(PresenceScript::Deny);
        p.request(0);
        assert_eq!(p.poll(0), PresenceStatus::Denied);
        assert_eq!(p.requests(), 2);
        // A touch answers the outstanding request only, once.
        p.set_script(PresenceScript::Pending);
        p.touch();
        p.request(0);
        assert_eq!(
            p.poll(0),
            PresenceStatus::Pending,
            "touched before the request"
        );
        p.touch();
        assert_eq!(p.poll(0), PresenceStatus::Approved);
        assert_eq!(p.poll(0), PresenceStatus::Pending);
        p.request(0);
        p.touch();
        p.cancel();
        p.request(0);
        assert_eq!(
            p.poll(0),
            PresenceStatus::Pending,
            "a cancel forgets the touch"
        );
    }
}
