//! The whole device (CTAPHID transport, CTAP2, U2F and the authenticator on
//! the test platform) on a thread with a microcontroller-sized stack
//! ([`DEFAULT_STACK_KIB`] KiB), fed adversarial CBOR and normal ceremonies.
//!
//! Only the device runs on the small stack: the test builds requests, decodes
//! answers and verifies signatures on its own thread, and talks to the device
//! thread in raw 64-byte reports. A stack overflow aborts the test process.
//!
//! `measure_stack_high_water` (ignored; run it with `--ignored --nocapture`)
//! finds the smallest stack, in KiB, on which both workloads still pass, by
//! running this test binary again with [`STACK_ENV`] set.

use std::string::ToString;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::vec;
use std::vec::Vec;

use ciborium::Value;
use rand_chacha::rand_core::RngCore;

use super::{Device, DeviceConfig};
use crate::authenticator::testkit::*;
use crate::authenticator::{Authenticator, Config};
use crate::ctap2::pin_uv::platform::{perm, with_token, Link, Platform, Token, PIN};
use crate::ctaphid::packet::Report;
use crate::ctaphid::test_support::{packets, reassemble, Reply};
use crate::ctaphid::{Command, BROADCAST_CID};
use crate::test_platform::{seeded_rng, MemoryStorage, PresenceScript, ScriptedPresence};

/// The stack the device thread gets unless [`STACK_ENV`] says otherwise.
pub const DEFAULT_STACK_KIB: usize = 32;
/// Overrides the device thread's stack size (KiB), for the measurement.
pub const STACK_ENV: &str = "FERROKEY_TEST_STACK_KIB";
/// The largest CTAPHID message.
const MAX_MESSAGE: usize = crate::app::MAX_MESSAGE_SIZE;

const RP: &str = "stack.example";

type TestDevice = Device<TestAuthenticator>;

/// Work for the device thread.
enum Job {
    Reports(Vec<Report>, u64),
    Tick(u64),
    /// A call into the device (the instrument API), run on the small stack.
    Call(std::boxed::Box<dyn FnOnce(&mut TestDevice) + Send>),
}

struct Output {
    reports: Vec<Report>,
    deadline: Option<u64>,
}

/// The host side of a device that runs on its own small-stack thread.
struct SmallStackDevice {
    jobs: Option<Sender<Job>>,
    out: Receiver<Output>,
    thread: Option<JoinHandle<()>>,
    now: u64,
    cid: u32,
    deadline: Option<u64>,
}

fn stack_kib() -> usize {
    std::env::var(STACK_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_STACK_KIB)
}

impl SmallStackDevice {
    /// A fresh authenticator with approving presence and what main's keys
    /// have at most: batch attestation with an intermediate CA in x5c (both
    /// certificates of a realistic size), new credentials backup eligible
    /// and backed up (BE, BS), exportable keys for the instrument API.
    fn start() -> Self {
        let (mut attestation, _) = batch_attestation();
        attestation.intermediate = Some(intermediate_certificate());
        let config = Config {
            aaguid: AAGUID,
            attestation: Some(attestation),
            firmware_version: 1,
            default_backup_eligible: true,
            default_backup_state: true,
            exportable: true,
            ..Config::default()
        };
        let platform = crate::platform::Platform {
            storage: MemoryStorage::new(),
            presence: ScriptedPresence::new(PresenceScript::Approve),
            rng: seeded_rng(42),
        };
        let app = Authenticator::new(platform, config).unwrap();
        // Built here and moved in boxed: on a microcontroller the device is a
        // static, not a stack value.
        let device = std::boxed::Box::new(Device::new(app, DeviceConfig::default()));
        let (jobs, job_rx) = channel::<Job>();
        let (out_tx, out) = channel::<Output>();
        let thread = std::thread::Builder::new()
            .name("small-stack-device".into())
            .stack_size(stack_kib() * 1024)
            .spawn(move || run_device(device, job_rx, out_tx))
            .unwrap();
        let mut this = SmallStackDevice {
            jobs: Some(jobs),
            out,
            thread: Some(thread),
            now: 1_000,
            cid: 0,
            deadline: None,
        };
        this.cid = this.init();
        this
    }

    /// Runs `f` on the device thread (the small stack) and returns its result.
    fn call<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut TestDevice) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = channel();
        self.job(Job::Call(std::boxed::Box::new(move |device| {
            tx.send(f(device)).ok();
        })));
        rx.recv().expect("the call did not finish")
    }

    fn job(&mut self, job: Job) -> Vec<Report> {
        self.jobs.as_ref().unwrap().send(job).unwrap();
        let output = self.out.recv().expect("the device thread died");
        self.deadline = output.deadline;
        output.reports
    }

    /// Sends one message and returns every reply up to the first one on `cid`
    /// that is not a KEEPALIVE, ticking the clock as the device asks.
    fn exchange_on(&mut self, cid: u32, cmd: Command, payload: &[u8]) -> (Reply, bool) {
        let mut reports = self.job(Job::Reports(packets(cid, cmd.code(), payload), self.now));
        let mut keepalive = false;
        loop {
            for reply in reassemble(&reports) {
                assert_eq!(reply.cid, cid, "reply on another channel: {reply:?}");
                if reply.cmd == Command::Keepalive.code() {
                    keepalive = true;
                    continue;
                }
                return (reply, keepalive);
            }
            let deadline = self.deadline.expect("no reply and nothing pending");
            self.now = self.now.max(deadline);
            reports = self.job(Job::Tick(self.now));
        }
    }

    fn init(&mut self) -> u32 {
        let nonce = [9, 8, 7, 6, 5, 4, 3, 2];
        let (reply, _) = self.exchange_on(BROADCAST_CID, Command::Init, &nonce);
        assert_eq!(reply.cmd, Command::Init.code());
        assert_eq!(&reply.payload[..8], &nonce);
        u32::from_be_bytes(reply.payload[8..12].try_into().unwrap())
    }

    /// A raw CTAPHID_CBOR message; the whole answer (status byte first).
    fn cbor_raw(&mut self, message: &[u8]) -> Vec<u8> {
        let (reply, _) = self.exchange_on(self.cid, Command::Cbor, message);
        assert_eq!(
            reply.cmd,
            Command::Cbor.code(),
            "not a CBOR reply: {reply:?}"
        );
        assert!(!reply.payload.is_empty());
        reply.payload
    }

    /// A raw U2F APDU: (data, status word).
    fn u2f(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let (reply, _) = self.exchange_on(self.cid, Command::Msg, apdu);
        assert_eq!(reply.cmd, Command::Msg.code());
        let (data, sw) = reply.payload.split_at(reply.payload.len() - 2);
        (data.to_vec(), u16::from_be_bytes([sw[0], sw[1]]))
    }
}

impl Link for SmallStackDevice {
    fn ctap2(&mut self, cmd: u8, params: Option<Value>) -> (u8, Option<Value>, bool) {
        let message = encode(cmd, params);
        let (reply, keepalive) = self.exchange_on(self.cid, Command::Cbor, &message);
        assert_eq!(
            reply.cmd,
            Command::Cbor.code(),
            "not a CBOR reply: {reply:?}"
        );
        let (status, value) = decode_response(&reply.payload);
        (status, value, keepalive)
    }
}

impl Drop for SmallStackDevice {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.unwrap();
            }
        }
    }
}

/// The device thread: everything the core does happens here.
fn run_device(mut device: std::boxed::Box<TestDevice>, jobs: Receiver<Job>, out: Sender<Output>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Reports(reports, now) => {
                for report in &reports {
                    device.handle_report(report, now);
                }
            }
            Job::Tick(now) => device.tick(now),
            Job::Call(f) => f(&mut device),
        }
        let reports = core::iter::from_fn(|| device.next_report()).collect();
        let deadline = device.next_deadline();
        if out.send(Output { reports, deadline }).is_err() {
            return;
        }
    }
}

/// A DER-shaped intermediate CA certificate of a realistic size (700 bytes).
fn intermediate_certificate() -> heapless::Vec<u8, 1024> {
    let mut cert = heapless::Vec::new();
    cert.extend_from_slice(&[0x30, 0x82, 0x02, 0xB8]).unwrap();
    cert.extend(core::iter::repeat_n(0x5A, 696));
    cert
}

/// A request body `{10: <item>}` padded out to a whole CTAPHID message: the
/// command byte, `A1 0A`, `prefix` repeated, then `last`.
fn deep(cmd: u8, prefix: &[u8], last: &[u8]) -> Vec<u8> {
    let mut message = vec![cmd, 0xA1, 0x0A];
    while message.len() + prefix.len() + last.len() <= MAX_MESSAGE {
        message.extend_from_slice(prefix);
    }
    message.extend_from_slice(last);
    message
}

/// Every CTAP2 command byte the key knows, plus the preview alias.
const COMMANDS: [u8; 11] = [
    0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x0A, 0x0B, 0x0C, 0x0D, 0x41,
];

/// Hostile CBOR for `cmd`: deep nesting of every container kind, deep nesting
/// inside parameters the key reads, indefinite lengths and absurd lengths.
fn hostile_messages(cmd: u8) -> Vec<Vec<u8>> {
    let mut all = vec![
        // The reported crash: 7,605 tags, then 0.
        deep(cmd, &[0xC0], &[0x00]),
        // Tags with long arguments.
        deep(cmd, &[0xDB, 0, 0, 0, 0, 0, 0, 0, 1], &[0x00]),
        deep(cmd, &[0x81], &[0x00]),
        deep(cmd, &[0xA1, 0x00], &[0x00]),
        deep(cmd, &[0xA1, 0x61, b'k'], &[0x00]),
        deep(cmd, &[0x82, 0x00], &[0x00]),
        deep(cmd, &[0x9F], &[0xFF]),
        deep(cmd, &[0xBF], &[0xFF]),
        deep(cmd, &[0xC0, 0x81], &[0x00]),
        // A whole message of tags, with no map at all.
        {
            let mut m = vec![cmd];
            m.resize(MAX_MESSAGE, 0xC0);
            m
        },
        // A whole message of nested arrays.
        {
            let mut m = vec![cmd];
            m.resize(MAX_MESSAGE, 0x81);
            m
        },
        // Absurd lengths: byte string, text, array and map of 2^64 - 1.
        vec![
            cmd, 0xA1, 0x0A, 0x5B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ],
        vec![
            cmd, 0xA1, 0x0A, 0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ],
        vec![
            cmd, 0xA1, 0x0A, 0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ],
        vec![
            cmd, 0xA1, 0x0A, 0xBB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ],
        vec![cmd, 0xBB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        vec![cmd, 0x9A, 0xFF, 0xFF, 0xFF, 0xFF],
        // Reserved additional information, a lone break.
        vec![cmd, 0xA1, 0x0A, 0x1C],
        vec![cmd, 0xFF],
    ];
    // Deep nesting inside each parameter the key reads (keys 1..=12).
    for key in 1..=12u8 {
        let mut tags = vec![cmd, 0xA1, key];
        tags.resize(MAX_MESSAGE - 1, 0xC0);
        tags.push(0x00);
        all.push(tags);
        let mut arrays = vec![cmd, 0xA1, key];
        arrays.resize(MAX_MESSAGE - 1, 0x81);
        arrays.push(0x00);
        all.push(arrays);
        // A map whose values nest: {key: {"id": [[[[...]]]]}}.
        let mut inner = vec![cmd, 0xA1, key, 0xA1, 0x62, b'i', b'd'];
        inner.resize(MAX_MESSAGE - 1, 0x81);
        inner.push(0x00);
        all.push(inner);
    }
    all
}

/// Seeded random garbage of assorted lengths for `cmd`.
fn garbage_messages(cmd: u8, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = seeded_rng(seed ^ u64::from(cmd));
    [1usize, 2, 3, 8, 64, 200, 1024, MAX_MESSAGE - 1]
        .iter()
        .map(|&len| {
            let mut m = vec![cmd; len + 1];
            rng.fill_bytes(&mut m[1..]);
            m
        })
        .collect()
}

/// A single-byte error status (never success, never CBOR).
fn assert_error_status(answer: &[u8], what: &str) {
    assert_eq!(
        answer.len(),
        1,
        "{what}: expected a bare status, got {answer:02x?}"
    );
    assert_ne!(answer[0], 0, "{what}: accepted");
}

#[test]
fn adversarial_cbor_on_a_small_stack() {
    let mut device = SmallStackDevice::start();
    for cmd in COMMANDS {
        for (i, message) in hostile_messages(cmd).iter().enumerate() {
            let answer = device.cbor_raw(message);
            assert_error_status(&answer, &std::format!("command {cmd:#04x}, hostile #{i}"));
        }
    }
    // Random bytes: any answer, but an answer, and the key keeps working.
    for cmd in COMMANDS
        .iter()
        .copied()
        .chain([0x00, 0x03, 0x05, 0x40, 0xFF])
    {
        for message in garbage_messages(cmd, 7) {
            let answer = device.cbor_raw(&message);
            assert!(!answer.is_empty());
        }
        let (status, info, _) = device.ctap2(0x04, None);
        assert_eq!(status, 0, "getInfo after garbage for {cmd:#04x}");
        assert!(info.is_some());
    }
}

#[test]
fn ceremonies_on_a_small_stack() {
    let mut d = SmallStackDevice::start();
    let (status, info, _) = d.ctap2(0x04, None);
    assert_eq!(status, 0);
    assert!(map_int(info.as_ref().unwrap(), 1).is_some());

    // PIN, and a token for everything.
    let mut p = Platform::new(2);
    assert_eq!(p.set_pin(&mut d, PIN), 0);
    let all = perm::MC | perm::GA | perm::CM | perm::LBW | perm::ACFG;
    p.token(&mut d, PIN, Some(all), None).unwrap();

    // Two discoverable credentials (with every makeCredential extension) and
    // a non-discoverable one; x5c = [batch, intermediate], signed by the
    // batch key; BE and BS set.
    let (_, batch_key) = batch_attestation();
    let extensions = Value::Map(vec![
        (text("credProtect"), int(2)),
        (text("credBlob"), bytes(b"small-stack blob")),
        (text("hmac-secret"), Value::Bool(true)),
        (text("largeBlobKey"), Value::Bool(true)),
    ]);
    let mut keys: Vec<(Vec<u8>, p256::ecdsa::VerifyingKey)> = Vec::new();
    for user in [b"user-1".as_slice(), b"user-2"] {
        let token = p.token(&mut d, PIN, Some(perm::MC), Some(RP)).unwrap();
        let mc = Mc::new(RP, user).rk().with(6, extensions.clone());
        let request = with_token(mc.build(), &token, &mc.cdh, 8);
        let (status, value, needed) = d.ctap2(0x01, Some(request));
        assert_eq!((status, needed), (0, true), "makeCredential");
        let value = value.unwrap();
        assert_eq!(map_bytes(&value, 5).len(), 32, "largeBlobKey");
        let cred = MadeCredential::parse(&value, &mc.cdh);
        assert_eq!(cred.auth_data.flags & 0x1D, 0x1D, "UP, UV, BE and BS");
        let x5c = map_text(&cred.att_stmt, "x5c").unwrap().as_array().unwrap();
        assert_eq!(x5c.len(), 2);
        assert_eq!(x5c[1], bytes(&intermediate_certificate()));
        let sig = map_text(&cred.att_stmt, "sig").unwrap().as_bytes().unwrap();
        verify(&batch_key, &[&cred.raw_auth_data, &mc.cdh], sig);
        keys.push((cred.id, cred.public_key));
    }
    let mc = Mc::new(RP, b"user-3");
    let plain = made(&mut d, mc.build(), &mc.cdh);
    keys.push((plain.id.clone(), plain.public_key));
    let key_for = |id: &[u8]| keys.iter().find(|(k, _)| k == id).unwrap().1;

    // getAssertion with an allowList, then the discoverable ones and getNextAssertion.
    let cdh = client_data_hash("stack-assert");
    let (status, value, needed) = d.ctap2(0x02, Some(ga(RP, &cdh, &[&plain.id], None)));
    assert_eq!((status, needed), (0, true));
    let assertion = check_assertion(value.as_ref().unwrap(), &cdh, key_for);
    assert_eq!(assertion.auth_data.flags & 0x19, 0x19, "UP, BE and BS");
    let token = p.token(&mut d, PIN, Some(perm::GA), Some(RP)).unwrap();
    let request = with_token(ga(RP, &cdh, &[], None), &token, &cdh, 6);
    let (status, value, _) = d.ctap2(0x02, Some(request));
    assert_eq!(status, 0);
    let first = check_assertion(value.as_ref().unwrap(), &cdh, key_for);
    assert_eq!(first.number_of_credentials, Some(2));
    let (status, value, _) = d.ctap2(0x08, None);
    assert_eq!(status, 0);
    let second = check_assertion(value.as_ref().unwrap(), &cdh, key_for);
    assert_ne!(first.credential_id, second.credential_id);

    // The instrument API on the small stack: import a credential with a key
    // the test holds, list every credential, then sign with the imported one.
    let imported = p256::ecdsa::SigningKey::from_slice(&[0x24; 32]).unwrap();
    let listed = d.call(|device| {
        use crate::authenticator::instrument::{NewCredential, PrivateKey};
        let auth = device.app_mut();
        let key = PrivateKey::Es256([0x24; 32]);
        auth.import_credential(&NewCredential {
            id: b"imported on a small stack",
            rp_id: RP,
            resident: false,
            private_key: &key,
            user_handle: b"",
            sign_count: 41,
            large_blob: None,
            backup_eligible: Some(false),
            backup_state: Some(false),
            user_name: None,
            user_display_name: None,
        })
        .unwrap();
        let mut listed = Vec::new();
        auth.visit_credentials(|c| listed.push((c.id.to_vec(), c.private_key.is_some())))
            .unwrap();
        listed
    });
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.iter().all(|(_, exported)| *exported));
    keys.push((
        b"imported on a small stack".to_vec(),
        *imported.verifying_key(),
    ));
    let key_for = |id: &[u8]| keys.iter().find(|(k, _)| k == id).unwrap().1;
    let (status, value, _) = d.ctap2(
        0x02,
        Some(ga(RP, &cdh, &[b"imported on a small stack"], None)),
    );
    assert_eq!(status, 0);
    let assertion = check_assertion(value.as_ref().unwrap(), &cdh, key_for);
    assert_eq!(assertion.auth_data.sign_count, 42);
    assert_eq!(
        assertion.auth_data.flags & 0x18,
        0,
        "imported without BE/BS"
    );

    // Credential management: metadata and the RP list.
    let cm_token = p.token(&mut d, PIN, Some(perm::CM), None).unwrap();
    let request = |sub: u8, token: &Token| {
        Value::Map(vec![
            (int(1), int(sub.into())),
            (int(3), int(token.protocol.into())),
            (int(4), bytes(&token.mac(&[&[sub]]))),
        ])
    };
    let (status, value, _) = d.ctap2(0x0A, Some(request(0x01, &cm_token)));
    assert_eq!(status, 0);
    assert_eq!(map_int(value.as_ref().unwrap(), 1), Some(&int(2)));
    let (status, value, _) = d.ctap2(0x0A, Some(request(0x02, &cm_token)));
    assert_eq!(status, 0);
    assert_eq!(map_int(value.as_ref().unwrap(), 5), Some(&int(1)));

    // largeBlobs: read the initial array.
    let (status, value, _) = d.ctap2(
        0x0C,
        Some(Value::Map(vec![(int(1), int(1024)), (int(3), int(0))])),
    );
    assert_eq!(status, 0);
    assert_eq!(map_bytes(value.as_ref().unwrap(), 1).len(), 17);

    // U2F register and authenticate, signatures verified.
    let challenge = [0x11u8; 32];
    let application = sha256(b"https://u2f.stack.example");
    let mut apdu = vec![0x00, 0x01, 0x00, 0x00, 64];
    apdu.extend_from_slice(&challenge);
    apdu.extend_from_slice(&application);
    let (data, sw) = d.u2f(&apdu);
    assert_eq!(sw, 0x9000);
    let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&data[1..66]).unwrap();
    let handle = data[67..67 + usize::from(data[66])].to_vec();
    let mut apdu = vec![0x00, 0x02, 0x03, 0x00, (65 + handle.len()) as u8];
    apdu.extend_from_slice(&challenge);
    apdu.extend_from_slice(&application);
    apdu.push(handle.len() as u8);
    apdu.extend_from_slice(&handle);
    let (data, sw) = d.u2f(&apdu);
    assert_eq!(sw, 0x9000);
    verify(&public, &[&application, &data[..5], &challenge], &data[5..]);

    // changePIN, selection, then reset forgets everything.
    assert_eq!(p.change_pin(&mut d, PIN, "56789"), 0);
    let (status, _, needed) = d.ctap2(0x0B, None);
    assert_eq!((status, needed), (0, true));
    let (status, _, needed) = d.ctap2(0x07, None);
    assert_eq!((status, needed), (0, true));
    let (status, _, _) = d.ctap2(0x02, Some(ga(RP, &cdh, &[&plain.id], None)));
    assert_eq!(status, 0x2E, "NO_CREDENTIALS after reset");
}

fn made(d: &mut SmallStackDevice, request: Value, cdh: &[u8; 32]) -> MadeCredential {
    let (status, value, needed) = d.ctap2(0x01, Some(request));
    assert_eq!(status, 0, "makeCredential: {status:#x}");
    assert!(needed, "makeCredential asks for presence");
    MadeCredential::parse(value.as_ref().unwrap(), cdh)
}

/// Runs this test binary's small-stack tests with decreasing stacks and
/// reports the smallest that passes (the measured high-water mark, rounded up
/// to 1 KiB). Ignored: it runs the workloads dozens of times.
#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn measure_stack_high_water() {
    let exe = std::env::current_exe().unwrap();
    let passes = |kib: usize, test: &str| -> bool {
        std::process::Command::new(&exe)
            .args(["--exact", test, "--test-threads=1", "-q"])
            .env(STACK_ENV, kib.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    for test in [
        "device::small_stack_tests::adversarial_cbor_on_a_small_stack",
        "device::small_stack_tests::ceremonies_on_a_small_stack",
    ] {
        let (mut low, mut high) = (1usize, 256usize);
        assert!(passes(high, test), "{test} fails even with {high} KiB");
        while high - low > 1 {
            let mid = (low + high) / 2;
            if passes(mid, test) {
                high = mid;
            } else {
                low = mid;
            }
        }
        std::println!("{test}: smallest passing stack {high} KiB (limit {DEFAULT_STACK_KIB} KiB)");
        assert!(high <= DEFAULT_STACK_KIB);
    }
}
