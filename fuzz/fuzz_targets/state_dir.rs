//! Loading a key's state directory with the real loader (firmware-sim's
//! `KeyBuilder::build`: lock, identity, record files, the core's power-up)
//! after the input damaged a copy of a real state: files truncated, bytes
//! flipped, contents replaced, files swapped or deleted, files of another
//! key's state put in, foreign and leftover temporary files added.
//!
//! Invariants: no panic; the loader either refuses with an error or gives a
//! key that answers CTAPHID INIT and CTAP2 getInfo/getAssertion with
//! well-formed messages (checked by the test-support client's strict
//! parser), and survives a power cycle.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use ferrokey::authenticator::Authenticator;
use ferrokey::platform::Platform;
use ferrokey::test_platform::{seeded_rng, PresenceScript, ScriptedPresence};
use ferrokey_fuzz::*;
use ferrokey_test_support::ctap2::{get_info, GetAssertion};
use ferrokey_test_support::ctaphid_client::CtapHidClient;
use firmware_sim::events::{EventBus, KeyId};
use firmware_sim::key::build::KeyBuilder;
use firmware_sim::key::options::AttestationMode;
use firmware_sim::key::{KeyOptions, ReportCore};
use firmware_sim::storage::FileStorage;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Damage {
    Truncate {
        file: u8,
        at: u16,
    },
    Flip {
        file: u8,
        at: u16,
        xor: u8,
    },
    Replace {
        file: u8,
        data: Vec<u8>,
    },
    Swap {
        a: u8,
        b: u8,
    },
    Delete {
        file: u8,
    },
    /// The same file of the other key's state.
    FromOtherKey {
        file: u8,
    },
    /// A file the loader does not know.
    Foreign {
        name: String,
        data: Vec<u8>,
    },
    /// A leftover temporary file of a record.
    Leftover {
        file: u8,
        data: Vec<u8>,
    },
    /// A directory where a file should be.
    Directory {
        file: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    damage: Vec<Damage>,
    self_attestation: bool,
}

struct Setup {
    builder: KeyBuilder,
    /// Two keys' states: (file name, contents), sorted by name.
    states: [Vec<(String, Vec<u8>)>; 2],
    _root: tempfile::TempDir,
}

fn options(self_attestation: bool) -> KeyOptions {
    KeyOptions {
        attestation: if self_attestation {
            AttestationMode::SelfAttestation
        } else {
            KeyOptions::default().attestation
        },
        ..KeyOptions::default()
    }
}

/// A real key state: built by the loader, then given a PIN and credentials.
fn make_state(builder: &KeyBuilder, number: u32) -> Vec<(String, Vec<u8>)> {
    let key = builder
        .build(KeyId(u64::from(number)), number, &options(false))
        .unwrap_or_else(|e| panic!("template key: {e:#}"));
    let dir = key.dir.clone();
    drop(key);
    {
        let storage = FileStorage::open(&dir).unwrap_or_else(|e| panic!("open: {e}"));
        let platform = Platform {
            storage,
            presence: ScriptedPresence::new(PresenceScript::Approve),
            rng: seeded_rng(u64::from(number)),
        };
        let mut auth =
            Authenticator::new(platform, config()).unwrap_or_else(|e| panic!("template core: {e}"));
        populate(&mut auth);
    }
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_file())
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let data = std::fs::read(entry.path()).unwrap_or_default();
            (name, data)
        })
        .filter(|(name, _)| name != firmware_sim::storage::LOCK_FILE)
        .collect();
    files.sort();
    let _ = std::fs::remove_dir_all(&dir);
    files
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let builder = KeyBuilder::open(root.path(), "US", EventBus::new())
            .unwrap_or_else(|e| panic!("builder: {e:#}"));
        let states = [make_state(&builder, 1), make_state(&builder, 2)];
        Setup {
            builder,
            states,
            _root: root,
        }
    })
}

fn pick(files: &[(String, Vec<u8>)], n: u8) -> usize {
    usize::from(n) % files.len().max(1)
}

fn sane_name(name: &str) -> Option<String> {
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '/')
        .take(40)
        .collect();
    (!name.is_empty() && name != "." && name != ".." && name != firmware_sim::storage::LOCK_FILE)
        .then_some(name)
}

fn write_state(dir: &Path, input: &Input, setup: &Setup) {
    let mut files = setup.states[0].clone();
    let other = &setup.states[1];
    let mut dirs: Vec<String> = Vec::new();
    for damage in input.damage.iter().take(8) {
        if files.is_empty() {
            break;
        }
        match damage {
            Damage::Truncate { file, at } => {
                let i = pick(&files, *file);
                let len = files[i].1.len();
                files[i].1.truncate(usize::from(*at) % (len + 1));
            }
            Damage::Flip { file, at, xor } => {
                let i = pick(&files, *file);
                let len = files[i].1.len();
                if len > 0 {
                    files[i].1[usize::from(*at) % len] ^= xor | 1;
                }
            }
            Damage::Replace { file, data } => {
                let i = pick(&files, *file);
                files[i].1 = data.clone();
            }
            Damage::Swap { a, b } => {
                let (i, j) = (pick(&files, *a), pick(&files, *b));
                let first = files[i].1.clone();
                files[i].1 = std::mem::replace(&mut files[j].1, first);
            }
            Damage::Delete { file } => {
                let i = pick(&files, *file);
                files.remove(i);
            }
            Damage::FromOtherKey { file } => {
                let (name, data) = &other[pick(other, *file)];
                match files.iter_mut().find(|(n, _)| n == name) {
                    Some(entry) => entry.1 = data.clone(),
                    None => files.push((name.clone(), data.clone())),
                }
            }
            Damage::Foreign { name, data } => {
                if let Some(name) = sane_name(name) {
                    files.retain(|(n, _)| *n != name);
                    files.push((name, data.clone()));
                }
            }
            Damage::Leftover { file, data } => {
                let i = pick(&files, *file);
                let name = format!("{}.tmp", files[i].0);
                files.push((name, data.clone()));
            }
            Damage::Directory { file } => {
                let i = pick(&files, *file);
                dirs.push(files.remove(i).0);
            }
        }
    }
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    for (name, data) in &files {
        std::fs::write(dir.join(name), data).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in &dirs {
        let _ = std::fs::create_dir(dir.join(name));
    }
}

fn key_dir(root: &Path, number: u32) -> PathBuf {
    root.join(format!("key-{number}"))
}

fuzz_target!(|input: Input| {
    let setup = setup();
    static NEXT: AtomicU32 = AtomicU32::new(100);
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = key_dir(setup.builder.root(), number);
    write_state(&dir, &input, setup);
    let built = setup.builder.build(
        KeyId(u64::from(number)),
        number,
        &options(input.self_attestation),
    );
    if let Ok(mut key) = built {
        exercise(&mut key.core);
        key.core.power_off();
        if key.core.power_on() {
            exercise(&mut key.core);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});

/// INIT, getInfo and a getAssertion over CTAPHID, parsed strictly.
fn exercise<C: ReportCore>(core: &mut C) {
    let mut client = CtapHidClient::new(CoreTransport {
        core,
        now_ms: 1_000,
    });
    client.set_timeout(Duration::from_millis(10));
    client
        .init()
        .unwrap_or_else(|e| panic!("INIT on a loaded key: {e}"));
    get_info(&mut client).unwrap_or_else(|e| panic!("getInfo on a loaded key: {e}"));
    let _status = GetAssertion::new(RP)
        .cdh([5; 32])
        .send(&mut client)
        .unwrap_or_else(|e| panic!("getAssertion on a loaded key: {e}"));
}
