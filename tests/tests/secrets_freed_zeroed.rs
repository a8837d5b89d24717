//! Issue 10 §1 defect 10, checked from outside: when an authenticator goes (a
//! power cycle, a key removed), or the file storage drops or replaces a
//! record, none of the memory given back still holds a secret.
//!
//! This test binary's global allocator looks at every block freed while it
//! is armed and counts the blocks that still hold one of the secrets the test
//! registered. The core allocates nothing itself, so its state lives inline
//! in the box the test puts it in: the device secret, the PIN verifier, and
//! the private key of a credential it found (kept between a getAssertion's
//! runs before and after presence). The test first checks that the live box
//! does hold all three (so the check can fail), and that the allocator does
//! see a secret in a block freed without wiping (so it is looking).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use ciborium::Value;
use ferrokey::app::{App, CallContext, Message, Outcome, Protocol};
use ferrokey::authenticator::instrument::{NewCredential, PrivateKey};
use ferrokey::authenticator::{Authenticator, Config};
use ferrokey::platform::{Platform, RecordKey};
use ferrokey::test_platform::{seeded_rng, MemoryStorage, PresenceScript, ScriptedPresence};

/// How many secrets can be registered, and their length.
const SLOTS: usize = 4;
const LEN: usize = 32;

static ARMED: AtomicBool = AtomicBool::new(false);
static HITS: AtomicUsize = AtomicUsize::new(0);
static SECRETS: Mutex<[Option<[u8; LEN]>; SLOTS]> = Mutex::new([None; SLOTS]);
/// One test at a time: the allocator and its counters are global.
static SERIAL: Mutex<()> = Mutex::new(());

/// The system allocator, with a look at every block freed while armed.
struct Scanning;

fn holds_a_secret(block: &[u8]) -> bool {
    let secrets = SECRETS.lock().unwrap_or_else(|p| p.into_inner());
    secrets
        .iter()
        .flatten()
        .any(|secret| block.windows(LEN).any(|w| w == secret))
}

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) {
            // The block is still ours until System.dealloc below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if holds_a_secret(block) {
                HITS.fetch_add(1, Ordering::SeqCst);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

fn register(secrets: &[[u8; LEN]]) {
    let mut slots = SECRETS.lock().unwrap();
    *slots = [None; SLOTS];
    for (slot, secret) in slots.iter_mut().zip(secrets) {
        *slot = Some(*secret);
    }
}

/// Blocks holding a secret freed while `f` runs.
fn hits_during(f: impl FnOnce()) -> usize {
    HITS.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    HITS.load(Ordering::SeqCst)
}

fn bytes_of<T>(value: &T) -> &[u8] {
    // Reading a live value's bytes (padding included) for a search only.
    unsafe {
        std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

type Key = Authenticator<MemoryStorage, ScriptedPresence, ferrokey::test_platform::ChaCha20Rng>;

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

#[test]
fn a_dropped_authenticator_leaves_no_secret_in_freed_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // The allocator sees a secret in a block freed as it was.
    let canary = [0xC5u8; LEN];
    register(&[canary]);
    let plain = Box::new(canary);
    assert_eq!(
        hits_during(|| drop(plain)),
        1,
        "the scan finds an unwiped secret"
    );

    let storage = MemoryStorage::new();
    let platform = Platform {
        storage: storage.clone(),
        presence: ScriptedPresence::new(PresenceScript::Approve),
        rng: seeded_rng(77),
    };
    let config = Config {
        aaguid: *b"ferrokey-wipe-t!",
        ..Config::default()
    };
    let mut key: Box<Key> = Box::new(Authenticator::new(platform, config).unwrap());
    key.control_set_pin("wipe-test-pin-8642").unwrap();

    // A credential whose private key the test knows.
    let scalar = [0x5Du8; 32];
    let id = b"credential-seeded-for-the-wipe-test";
    key.import_credential(&NewCredential {
        id,
        rp_id: "wipe.example",
        resident: false,
        private_key: &PrivateKey::Es256(scalar),
        user_handle: b"",
        sign_count: 0,
        large_blob: None,
        backup_eligible: None,
        backup_state: None,
        user_name: None,
        user_display_name: None,
    })
    .unwrap();

    // getAssertion up to presence: the key keeps the credential it found
    // (its unsealed private key) for the run after presence.
    let mut request = vec![0x02];
    request.extend(cbor(&Value::Map(vec![
        (Value::from(1), Value::from("wipe.example")),
        (Value::from(2), Value::Bytes(vec![0x11; 32])),
        (
            Value::from(3),
            Value::Array(vec![Value::Map(vec![
                (Value::from("id"), Value::Bytes(id.to_vec())),
                (Value::from("type"), Value::from("public-key")),
            ])]),
        ),
    ])));
    let mut response = Message::new();
    let context = CallContext {
        now_ms: 1_000,
        up_granted: false,
        channel: 7,
    };
    let outcome = key.handle(Protocol::Cbor, &request, context, &mut response);
    assert_eq!(outcome, Outcome::NeedsPresence);

    let device_record = storage.get(RecordKey::Device).unwrap();
    let device_secret: [u8; 32] = device_record[3..35].try_into().unwrap();
    let pin_record = storage.get(RecordKey::Pin).unwrap();
    assert_eq!(pin_record[0], 3, "a version 3 PIN record");
    let verifier: [u8; 32] = pin_record[26..58].try_into().unwrap();

    // The live key does hold all three.
    let live = bytes_of::<Key>(&key);
    assert!(contains(live, &device_secret), "device secret in the key");
    assert!(contains(live, &verifier), "PIN verifier in the key");
    assert!(contains(live, &scalar), "the found credential's key");

    // Counters written now, so the drop has nothing to store (the test
    // platform's storage frees its own copies of records when replaced).
    key.persist_counters().unwrap();
    register(&[device_secret, verifier, scalar]);
    assert_eq!(
        hits_during(|| drop(key)),
        0,
        "a secret was left in freed memory"
    );
    drop(storage);
}

/// firmware-sim's `FileStorage` keeps every record in memory (its cache):
/// a record replaced or removed, and the whole cache when the store goes,
/// leave nothing behind; its `Debug` shows no record bytes.
#[test]
fn the_file_storage_cache_leaves_no_record_in_freed_memory() {
    use ferrokey::platform::Storage;
    use firmware_sim::storage::FileStorage;

    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let first = [0xA1u8; LEN];
    let second = [0xB2u8; LEN];
    let pin = [0xC3u8; LEN];
    register(&[first, second, pin]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("key-1");
    let mut record = [0u8; 40];
    let hits = hits_during(|| {
        let mut storage = FileStorage::open(&dir).unwrap();
        record[..LEN].copy_from_slice(&first);
        storage.write(RecordKey::Device, &record).unwrap();
        storage.write(RecordKey::Pin, &pin).unwrap();
        // Replaced and removed records.
        record[..LEN].copy_from_slice(&second);
        storage.write(RecordKey::Device, &record).unwrap();
        storage.remove(RecordKey::Pin).unwrap();
        storage.write(RecordKey::Pin, &pin).unwrap();
        let shown = format!("{storage:?}");
        assert!(!shown.contains("178, 178"), "{shown}");
        assert!(shown.contains("00000001"), "{shown}");
        drop(storage);
        // Loaded from the files, then dropped.
        let mut storage = FileStorage::open(&dir).unwrap();
        let mut buf = [0u8; 40];
        assert_eq!(storage.read(RecordKey::Device, &mut buf).unwrap(), Some(40));
        assert_eq!(buf[..LEN], second);
        drop(storage);
        let snapshot = FileStorage::open_snapshot(&dir).unwrap();
        drop(snapshot);
    });
    record.fill(0);
    assert_eq!(hits, 0, "a record was left in freed memory");
    // The check sees an unwiped copy.
    let copy = Box::new(pin);
    assert_eq!(hits_during(|| drop(copy)), 1);
}
