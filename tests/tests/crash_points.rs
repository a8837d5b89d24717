//! Crash consistency by enumeration (issue 10 §3).
//!
//! A key on a real state directory (`FileStorage`) runs a script of
//! operations: makeCredential resident and not, getAssertion,
//! getNextAssertion, setPIN, changePIN, wrong PINs, built-in UV failures,
//! credentialManagement update and delete, a largeBlobs write,
//! setMinPINLength, reset, and the power-up itself. The storage's test-only
//! crash points (`storage::failpoint`, feature `failpoints`) copy the state
//! directory at every write boundary: before the temporary file, with the
//! temporary file torn in half, with it complete but not renamed (also what a
//! power cut before the directory fsync leaves), after the rename before the
//! directory fsync, and before and after a record removal. After the script,
//! a key is started from each copy (as after a crash there) and checked
//! against what had been acknowledged before that moment:
//!
//! - the state loads;
//! - no credential's signature counter is at or below a value already returned;
//! - every acknowledged registration is there and signs with its public key,
//!   every acknowledged deletion stays deleted, a credential being created is
//!   either absent or whole (it signs with the key its registration returned);
//! - the PIN is the old or the new one, pinRetries and uvRetries are the old or
//!   the new value (or one lower during an attempt, persisted before the
//!   check), never higher;
//! - the largeBlobs array and minPINLength are the old or the new value;
//! - reset is all or nothing (credentials, PIN and large blobs together).
//!
//! Prints the number of crash points and of violations; fails on any violation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ciborium::Value;
use ferrokey::authenticator::{Authenticator, Config};
use ferrokey::pin::verifier::PinKdfCost;
use ferrokey::platform::{Platform, UvStatus};
use ferrokey::test_platform::{seeded_rng, ChaCha20Rng, ScriptedPresence};
use ferrokey_tests::cbor::{bytes, get, get_text, int, text};
use ferrokey_tests::ctap2::{
    self, cm, cmd, status, Assertion, Ctap2, GetAssertion, MakeCredential, PublicKey,
};
use ferrokey_tests::in_process::InProcess;
use ferrokey_tests::pin::{permission, ClientPin};
use firmware_sim::storage::failpoint::{self, Boundary};
use firmware_sim::storage::{FileStorage, LOCK_FILE};

type Key = InProcess<Authenticator<FileStorage, ScriptedPresence, ChaCha20Rng>>;

const RP: &str = "crash.example";
const PIN1: &str = "11112222";
const PIN2: &str = "33334444";
const WRONG: &str = "99990000";

/// Starts a key on `dir` (as the device does at power-up).
fn start(dir: &Path, seed: u64, presence: ScriptedPresence) -> Result<Key, String> {
    let storage = FileStorage::open(dir).map_err(|e| format!("state does not load: {e}"))?;
    let platform = Platform {
        storage,
        presence,
        rng: seeded_rng(seed),
    };
    let config = Config {
        aaguid: *b"crash-points-aag",
        builtin_uv: true,
        pin_kdf_cost: PinKdfCost::TEST,
        ..Config::default()
    };
    Authenticator::new(platform, config)
        .map(InProcess::new)
        .map_err(|e| format!("key does not start: {e:?}"))
}

fn cp() -> ClientPin {
    ClientPin::new(2)
}

/// One credential the script created.
#[derive(Clone, Debug)]
struct Cred {
    public_key: PublicKey,
    /// The highest signature counter the key returned for it.
    max_counter: u32,
    /// The user name (resident credentials).
    name: String,
}

/// What the key has acknowledged, after an operation.
#[derive(Clone, Debug, Default)]
struct Model {
    creds: BTreeMap<Vec<u8>, Cred>,
    /// Credentials whose deletion (or reset) was acknowledged.
    gone: Vec<Vec<u8>>,
    pin: Option<String>,
    retries: u8,
    uv_retries: u8,
    min_pin_length: u64,
    large_blobs: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    PowerUp,
    MakeCredential { resident: bool, user: &'static str },
    AssertAllowList(usize),
    AssertDiscoverable,
    SetPin,
    PinToken(&'static str),
    ChangePin,
    UvFailure,
    UvSuccess,
    UpdateUser(usize),
    Delete(usize),
    LargeBlobs(&'static [u8]),
    SetMinPinLength(u8),
    Reset,
}

impl Op {
    /// Whether the op checks a PIN (an attempt is persisted before the check,
    /// and a correct PIN restores the retries after it). With a PIN set the
    /// script takes a PIN token for every op that needs one.
    fn checks_pin(self, pin_set: bool) -> bool {
        match self {
            Op::PinToken(_) | Op::ChangePin => true,
            Op::MakeCredential { .. }
            | Op::UpdateUser(_)
            | Op::Delete(_)
            | Op::LargeBlobs(_)
            | Op::SetMinPinLength(_) => pin_set,
            _ => false,
        }
    }

    /// Whether the op performs built-in UV (an attempt is persisted first).
    fn performs_uv(self, pin_set: bool) -> bool {
        match self {
            Op::UvFailure | Op::UvSuccess => true,
            Op::MakeCredential { .. } => !pin_set,
            _ => false,
        }
    }
}

/// The script: every state-changing command, with a PIN and credentials in
/// place before the reset.
const SCRIPT: &[Op] = &[
    Op::PowerUp,
    Op::MakeCredential {
        resident: false,
        user: "nr-1",
    },
    Op::MakeCredential {
        resident: true,
        user: "alice",
    },
    Op::AssertAllowList(0),
    Op::AssertDiscoverable,
    Op::SetPin,
    Op::PinToken(WRONG),
    Op::PinToken(WRONG),
    Op::PinToken(PIN1),
    Op::MakeCredential {
        resident: true,
        user: "bob",
    },
    Op::MakeCredential {
        resident: true,
        user: "carol",
    },
    Op::AssertDiscoverable,
    Op::ChangePin,
    Op::UvFailure,
    Op::UvFailure,
    Op::UvSuccess,
    Op::UpdateUser(2),
    Op::Delete(3),
    Op::LargeBlobs(b"first blob"),
    Op::LargeBlobs(b"a second, longer large blob"),
    Op::SetMinPinLength(6),
    Op::AssertAllowList(1),
    Op::MakeCredential {
        resident: false,
        user: "nr-2",
    },
    Op::PinToken(WRONG),
    Op::Reset,
    Op::MakeCredential {
        resident: true,
        user: "dave",
    },
    Op::AssertAllowList(5),
];

/// A copy of the state directory at a crash point.
struct Image {
    op: usize,
    boundary: Boundary,
    file: String,
    files: Vec<(String, Vec<u8>)>,
}

fn copy_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name == LOCK_FILE {
            continue;
        }
        files.push((name, fs::read(entry.path()).unwrap()));
    }
    files.sort();
    files
}

fn restore(files: &[(String, Vec<u8>)], dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for (name, contents) in files {
        fs::write(dir.join(name), contents).unwrap();
    }
}

/// The running script: the key, the model after each op and the ids in order.
struct Run {
    key: Key,
    presence: ScriptedPresence,
    model: Model,
    /// Credential ids in creation order (ops refer to them by index).
    order: Vec<Vec<u8>>,
    cdh: u8,
}

impl Run {
    fn next_cdh(&mut self) -> [u8; 32] {
        self.cdh = self.cdh.wrapping_add(1);
        [self.cdh; 32]
    }

    fn token(&mut self, perm: u8, rp: Option<&str>) -> ferrokey_tests::pin::Token {
        let pin = self.model.pin.clone().unwrap();
        cp().token(&mut self.key, &pin, Some(perm), rp).unwrap()
    }

    fn saw(&mut self, a: &Assertion) {
        let cred = self.model.creds.get_mut(&a.credential_id).unwrap();
        a.verify(&cred.public_key).unwrap();
        assert!(a.auth_data.sign_count > cred.max_counter);
        cred.max_counter = a.auth_data.sign_count;
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::PowerUp => {}
            Op::MakeCredential { resident, user } => {
                let cdh = self.next_cdh();
                let mut mc = MakeCredential::new(RP, user.as_bytes())
                    .user(user, user)
                    .cdh(cdh);
                if resident {
                    mc = mc.rk();
                }
                if self.model.pin.is_some() {
                    let t = self.token(permission::MC, Some(RP));
                    mc = mc.pin_auth(&t);
                } else {
                    // Built-in UV protects the key: a registration needs UV.
                    mc = mc.option("uv", true);
                }
                let r = mc.must(&mut self.key);
                self.order.push(r.credential_id.clone());
                self.model.creds.insert(
                    r.credential_id,
                    Cred {
                        public_key: r.public_key,
                        max_counter: r.auth_data.sign_count,
                        name: user.to_string(),
                    },
                );
            }
            Op::AssertAllowList(i) => {
                let id = self.order[i].clone();
                let cdh = self.next_cdh();
                let a = GetAssertion::new(RP)
                    .allow(&id)
                    .cdh(cdh)
                    .send(&mut self.key)
                    .unwrap()
                    .unwrap();
                self.saw(&a);
            }
            Op::AssertDiscoverable => {
                let cdh = self.next_cdh();
                let a = GetAssertion::new(RP)
                    .cdh(cdh)
                    .send(&mut self.key)
                    .unwrap()
                    .unwrap();
                self.saw(&a);
                for _ in 1..a.number_of_credentials.unwrap_or(1) {
                    let next = ctap2::get_next_assertion(&mut self.key, &cdh, RP)
                        .unwrap()
                        .unwrap();
                    self.saw(&next);
                }
            }
            Op::SetPin => {
                assert_eq!(cp().set_pin(&mut self.key, PIN1).unwrap(), status::OK);
                self.model.pin = Some(PIN1.into());
            }
            Op::PinToken(pin) => {
                let r = cp().token(&mut self.key, pin, None, None);
                assert_eq!(r.is_ok(), Some(pin) == self.model.pin.as_deref());
            }
            Op::ChangePin => {
                let st = cp().change_pin(&mut self.key, PIN1, PIN2).unwrap();
                assert_eq!(st, status::OK);
                self.model.pin = Some(PIN2.into());
            }
            Op::UvFailure | Op::UvSuccess => {
                let ok = op == Op::UvSuccess;
                self.presence.set_uv(if ok {
                    UvStatus::Verified
                } else {
                    UvStatus::Failed
                });
                let r = cp().uv_token(&mut self.key, permission::GA, Some(RP));
                assert_eq!(r.is_ok(), ok, "{r:?}");
                self.presence.set_uv(UvStatus::Verified);
            }
            Op::UpdateUser(i) => {
                let id = self.order[i].clone();
                let t = self.token(permission::CM, None);
                let name = format!("{}-renamed", self.model.creds[&id].name);
                let user = Value::Map(vec![
                    (text("id"), bytes(self.model.creds[&id].name.as_bytes())),
                    (text("name"), text(&name)),
                    (text("displayName"), text(&name)),
                ]);
                let params = Value::Map(vec![(int(2), ctap2::descriptor(&id)), (int(3), user)]);
                let r = ctap2::credential_management(
                    &mut self.key,
                    Some(&t),
                    cm::UPDATE_USER_INFORMATION,
                    Some(params),
                )
                .unwrap();
                assert_eq!(r.status, status::OK);
                self.model.creds.get_mut(&id).unwrap().name = name;
            }
            Op::Delete(i) => {
                let id = self.order[i].clone();
                let t = self.token(permission::CM, None);
                let params = Value::Map(vec![(int(2), ctap2::descriptor(&id))]);
                let r = ctap2::credential_management(
                    &mut self.key,
                    Some(&t),
                    cm::DELETE_CREDENTIAL,
                    Some(params),
                )
                .unwrap();
                assert_eq!(r.status, status::OK);
                self.model.creds.remove(&id);
                self.model.gone.push(id);
            }
            Op::LargeBlobs(data) => {
                let t = self.token(permission::LBW, None);
                let array = ctap2::serialized_large_blob_array(&[bytes(data)]);
                let st = ctap2::write_large_blobs(&mut self.key, &array, 1000, Some(&t)).unwrap();
                assert_eq!(st, status::OK);
                self.model.large_blobs = array;
            }
            Op::SetMinPinLength(len) => {
                let t = self.token(permission::ACFG, None);
                let params = ctap2::min_pin_length_params(Some(len), &[], false);
                let r = ctap2::authenticator_config(
                    &mut self.key,
                    Some(&t),
                    ctap2::config::SET_MIN_PIN_LENGTH,
                    Some(params),
                )
                .unwrap();
                assert_eq!(r.status, status::OK);
            }
            Op::Reset => {
                let r = self.key.ctap2(cmd::RESET, None).unwrap();
                assert_eq!(r.status, status::OK);
                let ids: Vec<Vec<u8>> = self.model.creds.keys().cloned().collect();
                self.model.gone.extend(ids);
                self.model.creds.clear();
                self.model.pin = None;
            }
        }
        self.observe();
    }

    /// Reads the non-credential state the op may have changed (reads only:
    /// these calls write nothing).
    fn observe(&mut self) {
        let o = observe_plain(&mut self.key);
        self.model.retries = o.retries;
        self.model.uv_retries = o.uv_retries;
        self.model.min_pin_length = o.min_pin_length;
        self.model.large_blobs = o.large_blobs;
    }
}

/// State read without writing: retries, minPINLength, clientPin, large blobs.
struct Plain {
    retries: u8,
    uv_retries: u8,
    min_pin_length: u64,
    pin_set: bool,
    large_blobs: Vec<u8>,
}

fn observe_plain(key: &mut Key) -> Plain {
    let info = ctap2::get_info(key).unwrap();
    let pin_set = get(&info, 4)
        .and_then(|o| get_text(o, "clientPin"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Plain {
        retries: cp().retries(key).map(|r| r.0).unwrap_or(255),
        uv_retries: cp().uv_retries(key).unwrap_or(255),
        min_pin_length: get(&info, 0x0D)
            .and_then(|v| v.as_integer())
            .and_then(|i| u64::try_from(i).ok())
            .unwrap_or(0),
        pin_set,
        large_blobs: ctap2::read_large_blobs(key, 500).unwrap_or_default(),
    }
}

/// Runs the script with the crash points recording; returns the images and
/// the model before each op (`models[k]` before op k, `models[k + 1]` after).
fn record(dir: &Path) -> (Vec<Image>, Vec<Model>) {
    let images: Rc<RefCell<Vec<Image>>> = Rc::default();
    let current_op = Rc::new(RefCell::new(0usize));
    {
        let images = Rc::clone(&images);
        let current_op = Rc::clone(&current_op);
        let dir = dir.to_path_buf();
        failpoint::set_hook(move |boundary, path| {
            images.borrow_mut().push(Image {
                op: *current_op.borrow(),
                boundary,
                file: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                files: copy_dir(&dir),
            });
        });
    }
    let mut models = vec![Model {
        retries: 255,
        uv_retries: 255,
        large_blobs: Vec::new(),
        ..Model::default()
    }];
    let presence = ScriptedPresence::default();
    let key = start(dir, 1, presence.clone()).unwrap();
    let mut run = Run {
        key,
        presence,
        model: Model::default(),
        order: Vec::new(),
        cdh: 0,
    };
    run.observe();
    models.push(run.model.clone());
    for (k, &op) in SCRIPT.iter().enumerate().skip(1) {
        *current_op.borrow_mut() = k;
        run.apply(op);
        models.push(run.model.clone());
    }
    failpoint::clear_hook();
    // The final state is a crash point too (a crash right after the last answer).
    images.borrow_mut().push(Image {
        op: SCRIPT.len(),
        boundary: Boundary::BeforeTmp,
        file: "(end)".into(),
        files: copy_dir(dir),
    });
    drop(run);
    let images = Rc::try_unwrap(images).ok().unwrap().into_inner();
    (images, models)
}

/// Whether `id` signs now, with a counter above every value already returned.
/// `Ok(None)` when the key does not know it.
fn probe(key: &mut Key, id: &[u8], cred: &Cred, cdh: [u8; 32]) -> Result<Option<u32>, String> {
    match GetAssertion::new(RP).allow(id).cdh(cdh).send(key) {
        Err(e) => Err(format!("transport: {e}")),
        Ok(Err(status::NO_CREDENTIALS)) => Ok(None),
        Ok(Err(s)) => Err(format!("getAssertion answered {s:#04x}")),
        Ok(Ok(a)) => {
            a.verify(&cred.public_key)
                .map_err(|e| format!("signature does not verify: {e}"))?;
            if a.auth_data.sign_count <= cred.max_counter {
                return Err(format!(
                    "counter {} not above {} already returned",
                    a.auth_data.sign_count, cred.max_counter
                ));
            }
            Ok(Some(a.auth_data.sign_count))
        }
    }
}

/// The user names of RP's discoverable credentials (needs a working PIN).
fn resident_names(key: &mut Key, pin: &str) -> Result<BTreeMap<Vec<u8>, String>, String> {
    let t = cp()
        .token(key, pin, Some(permission::GA), Some(RP))
        .map_err(|s| format!("token {s:#04x}"))?;
    let cdh = [0xEE; 32];
    let mut names = BTreeMap::new();
    let first = match GetAssertion::new(RP).cdh(cdh).pin_auth(&t).send(key) {
        Ok(Ok(a)) => a,
        Ok(Err(status::NO_CREDENTIALS)) => return Ok(names),
        other => return Err(format!("discoverable getAssertion: {other:?}")),
    };
    let n = first.number_of_credentials.unwrap_or(1);
    let mut all = vec![first];
    for _ in 1..n {
        all.push(
            ctap2::get_next_assertion(key, &cdh, RP)
                .map_err(|e| e.to_string())?
                .map_err(|s| format!("getNextAssertion {s:#04x}"))?,
        );
    }
    for a in all {
        let name = a
            .user
            .as_ref()
            .and_then(|u| get_text(u, "name"))
            .and_then(Value::as_text)
            .unwrap_or("-")
            .to_string();
        names.insert(a.credential_id, name);
    }
    Ok(names)
}

/// Checks a key started from an image taken during `op` (between `before` and
/// `after`); returns the violations.
fn check(key: &mut Key, op: Option<Op>, before: &Model, after: &Model) -> Vec<String> {
    let mut v = Vec::new();
    let plain = observe_plain(key);
    let attempt = op.is_some_and(|op| op.checks_pin(before.pin.is_some()));
    let uv_attempt = op.is_some_and(|op| op.performs_uv(before.pin.is_some()));
    let ok_retries = |got: u8, b: u8, a: u8, attempting: bool| {
        got == b || got == a || (attempting && got + 1 == b)
    };
    if !ok_retries(plain.retries, before.retries, after.retries, attempt) {
        v.push(format!(
            "pinRetries {} (before {}, after {})",
            plain.retries, before.retries, after.retries
        ));
    }
    if !ok_retries(
        plain.uv_retries,
        before.uv_retries,
        after.uv_retries,
        uv_attempt,
    ) {
        v.push(format!(
            "uvRetries {} (before {}, after {})",
            plain.uv_retries, before.uv_retries, after.uv_retries
        ));
    }
    if plain.min_pin_length != before.min_pin_length && plain.min_pin_length != after.min_pin_length
    {
        v.push(format!("minPINLength {}", plain.min_pin_length));
    }
    if plain.large_blobs != before.large_blobs && plain.large_blobs != after.large_blobs {
        v.push("largeBlobs array is neither the old nor the new one".into());
    }
    // Credentials: acknowledged ones present, deleted ones gone, new ones whole.
    let mut present = BTreeMap::new();
    let mut cdh = 0x40u8;
    let ids: Vec<&Vec<u8>> = before.creds.keys().chain(after.creds.keys()).collect();
    for id in ids {
        if present.contains_key(id) {
            continue;
        }
        let cred = before
            .creds
            .get(id)
            .or_else(|| after.creds.get(id))
            .unwrap();
        cdh += 1;
        match probe(key, id, cred, [cdh; 32]) {
            Err(e) => v.push(format!("credential {}: {e}", short(id))),
            Ok(found) => {
                present.insert(id.clone(), found.is_some());
                let must = before.creds.contains_key(id) && after.creds.contains_key(id);
                if must && found.is_none() {
                    v.push(format!("acknowledged credential {} is missing", short(id)));
                }
            }
        }
    }
    for id in &before.gone {
        cdh += 1;
        match GetAssertion::new(RP).allow(id).cdh([cdh; 32]).send(key) {
            Ok(Err(status::NO_CREDENTIALS)) => {}
            other => v.push(format!(
                "deleted credential {} answers: {:?}",
                short(id),
                other.map(|r| r.map(|a| a.auth_data.sign_count))
            )),
        }
    }
    // The PIN: the old or the new one.
    let mut working_pin = None;
    if plain.retries > 0 && plain.retries != 255 {
        let candidates: Vec<&String> = after.pin.iter().chain(before.pin.iter()).collect();
        if plain.pin_set {
            for pin in &candidates {
                match cp().token(key, pin, None, None) {
                    Ok(_) => {
                        working_pin = Some((*pin).clone());
                        break;
                    }
                    Err(status::PIN_INVALID) => {}
                    Err(s) => {
                        v.push(format!("PIN check answered {s:#04x}"));
                        break;
                    }
                }
            }
            if working_pin.is_none() {
                v.push(format!(
                    "neither PIN opens the key (candidates {candidates:?})"
                ));
            }
        } else if before.pin.is_some() && after.pin.is_some() {
            v.push("the PIN was lost".into());
        }
    } else if plain.retries == 0 {
        v.push("PIN blocked".into());
    }
    if plain.pin_set && before.pin.is_none() && after.pin.is_none() {
        v.push("a PIN appeared".into());
    }
    // Resident credential names: the old or the new value.
    if let Some(pin) = &working_pin {
        match resident_names(key, pin) {
            Err(e) => v.push(format!("reading names: {e}")),
            Ok(names) => {
                for (id, name) in names {
                    let b = before.creds.get(&id).map(|c| &c.name);
                    let a = after.creds.get(&id).map(|c| &c.name);
                    if b != Some(&name) && a != Some(&name) {
                        v.push(format!("credential {} has name {name:?}", short(&id)));
                    }
                }
            }
        }
    }
    // Reset: all or nothing.
    if op == Some(Op::Reset) {
        let old_present = before
            .creds
            .keys()
            .filter(|id| present.get(*id) == Some(&true))
            .count();
        let old_state = old_present == before.creds.len()
            && plain.pin_set
            && plain.large_blobs == before.large_blobs;
        let new_state =
            old_present == 0 && !plain.pin_set && plain.large_blobs == after.large_blobs;
        if !old_state && !new_state {
            v.push(format!(
                "reset half done: {old_present} of {} credentials, PIN set {}, blobs old {}",
                before.creds.len(),
                plain.pin_set,
                plain.large_blobs == before.large_blobs
            ));
        }
    }
    v
}

fn short(id: &[u8]) -> String {
    ferrokey_tests::cbor::hex(&id[..id.len().min(6)])
}

#[test]
fn every_crash_point_restarts_consistent() {
    let started = std::time::Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let (images, models) = record(&live);
    let mut per_boundary: BTreeMap<String, usize> = BTreeMap::new();
    let mut violations = Vec::new();
    for (n, image) in images.iter().enumerate() {
        *per_boundary
            .entry(format!("{:?}", image.boundary))
            .or_default() += 1;
        let dir: PathBuf = tmp.path().join(format!("crash-{n}"));
        restore(&image.files, &dir);
        let (op, before, after) = if image.op >= SCRIPT.len() {
            let last = models.last().unwrap();
            (None, last, last)
        } else {
            (
                Some(SCRIPT[image.op]),
                &models[image.op],
                &models[image.op + 1],
            )
        };
        let found = match start(&dir, 1000 + n as u64, ScriptedPresence::default()) {
            Err(e) => vec![e],
            Ok(mut key) => check(&mut key, op, before, after),
        };
        for f in found {
            violations.push(format!(
                "crash point {n} (op {} {:?}, {:?} of {}): {f}",
                image.op, op, image.boundary, image.file
            ));
        }
        fs::remove_dir_all(&dir).unwrap();
    }
    println!(
        "crash points enumerated: {} ({per_boundary:?}) over {} operations; violations: {}; {:.1} s",
        images.len(),
        SCRIPT.len(),
        violations.len(),
        started.elapsed().as_secs_f64()
    );
    for v in &violations {
        println!("VIOLATION {v}");
    }
    // The checker itself can fail: roll the credential records of a late
    // image back to an early one (what a storage that lost writes would
    // leave) and it must object.
    let late = images.iter().find(|i| i.op == 22).unwrap();
    let early = images.iter().find(|i| i.op == 5).unwrap();
    let mut rolled: Vec<(String, Vec<u8>)> = late
        .files
        .iter()
        .filter(|(name, _)| !name.starts_with("rec-0001"))
        .cloned()
        .collect();
    rolled.extend(
        early
            .files
            .iter()
            .filter(|(name, _)| name.starts_with("rec-0001"))
            .cloned(),
    );
    let dir = tmp.path().join("rolled-back");
    restore(&rolled, &dir);
    let mut key = start(&dir, 7, ScriptedPresence::default()).unwrap();
    let objections = check(&mut key, Some(SCRIPT[22]), &models[22], &models[23]);
    println!("a rolled-back state is refused: {objections:?}");
    assert!(
        objections
            .iter()
            .any(|o| o.contains("counter") || o.contains("missing")),
        "{objections:?}"
    );
    assert!(images.len() > 100, "too few crash points: {}", images.len());
    assert!(violations.is_empty(), "{} violations", violations.len());
}
