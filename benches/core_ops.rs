//! The core operation against its floor: getAssertion and makeCredential
//! through the whole CTAPHID path (reports in, reports out) next to one bare
//! P-256 signature and one P-256 key generation made with the `p256` crate
//! itself, and the start-up of a key holding 100 discoverable credentials.
//!
//! - `cargo bench --bench core_ops` times each operation (criterion) and
//!   prints the ratios core op / floor from the same run.
//! - `tools/bench-core` runs this binary under callgrind, one operation at a
//!   time (`core_ops --callgrind OP N`), and prints instruction counts (Ir) and
//!   the same ratios; those counts are stable from run to run.
//!
//! The host side of the CTAPHID path is kept out of the figures as far as
//! possible: requests are encoded into reports once, and responses are only
//! reassembled far enough to check their status byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use ciborium::Value;
use criterion::Criterion;
use ferrokey::authenticator::{Authenticator, Config};
use ferrokey::ctaphid::packet::{
    cont_report, init_report, Packet, Report, CONT_DATA_SIZE, INIT_DATA_SIZE,
};
use ferrokey::ctaphid::{Command, BROADCAST_CID};
use ferrokey::device::{Device, DeviceConfig};
use ferrokey::platform::Platform;
use ferrokey::test_platform::{
    seeded_rng, ChaCha20Rng, MemoryStorage, PresenceScript, ScriptedPresence,
};
use ferrokey_test_support::cbor::{decode, get_bytes};
use ferrokey_test_support::ctap2::{AuthData, GetAssertion, MakeCredential};
use p256::ecdsa::signature::Signer;

type BenchAuthenticator = Authenticator<MemoryStorage, ScriptedPresence, ChaCha20Rng>;
type BenchDevice = Device<BenchAuthenticator>;

const MAKE_CREDENTIAL: u8 = 0x01;
const GET_ASSERTION: u8 = 0x02;
/// How many discoverable credentials the start-up figure loads.
const STARTUP_CREDENTIALS: u32 = 100;
/// A batch attestation key (any valid scalar).
const BATCH_KEY: [u8; 32] = [0x42; 32];

fn config() -> Config {
    let mut certificate = heapless::Vec::new();
    certificate
        .extend_from_slice(&[0x30, 0x03, 0x02, 0x01, 0x01])
        .unwrap();
    Config {
        aaguid: *b"ferrokey-bench!!",
        attestation: Some(ferrokey::authenticator::Attestation {
            private_key: BATCH_KEY,
            certificate,
            intermediate: None,
        }),
        ..Config::default()
    }
}

fn authenticator(storage: &MemoryStorage) -> BenchAuthenticator {
    let platform = Platform {
        storage: storage.clone(),
        presence: ScriptedPresence::new(PresenceScript::Approve),
        rng: seeded_rng(7),
    };
    Authenticator::new(platform, config()).unwrap()
}

/// A host driving the device in process, with a manual clock.
struct Host {
    device: BenchDevice,
    cid: u32,
    now_ms: u64,
}

impl Host {
    fn new(storage: &MemoryStorage) -> Self {
        let device = Device::new(authenticator(storage), DeviceConfig::default());
        let mut host = Host {
            device,
            cid: BROADCAST_CID,
            now_ms: 1_000,
        };
        let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
        let reports = host.reports(Command::Init, &nonce);
        let response = host.exchange(&reports);
        host.cid = u32::from_be_bytes(response[8..12].try_into().unwrap());
        host
    }

    /// The reports of one request on this host's channel.
    fn reports(&self, command: Command, payload: &[u8]) -> Vec<Report> {
        let first = payload.len().min(INIT_DATA_SIZE);
        let mut out = vec![init_report(
            self.cid,
            command.code(),
            payload.len() as u16,
            &payload[..first],
        )];
        for (seq, chunk) in payload[first..].chunks(CONT_DATA_SIZE).enumerate() {
            out.push(cont_report(self.cid, seq as u8, chunk));
        }
        out
    }

    /// The reports of one CTAP2 request.
    fn ctap2_reports(&self, command: u8, parameters: &Value) -> Vec<Report> {
        let mut request = vec![command];
        ciborium::into_writer(parameters, &mut request).unwrap();
        self.reports(Command::Cbor, &request)
    }

    /// Sends the reports of one request; returns the response payload
    /// (KEEPALIVEs skipped).
    fn exchange(&mut self, reports: &[Report]) -> Vec<u8> {
        self.now_ms += 1;
        for report in reports {
            self.device.handle_report(report, self.now_ms);
        }
        let mut body = Vec::new();
        let mut expected = None;
        loop {
            let Some(report) = self.device.next_report() else {
                let deadline = self.device.next_deadline().expect("device stalled");
                self.now_ms = self.now_ms.max(deadline);
                self.device.tick(self.now_ms);
                continue;
            };
            match Packet::parse(&report) {
                Packet::Init { cmd, .. } if cmd == Command::Keepalive.code() => {}
                Packet::Init { bcnt, data, .. } => {
                    let len = usize::from(bcnt);
                    body.extend_from_slice(&data[..len.min(INIT_DATA_SIZE)]);
                    expected = Some(len);
                }
                Packet::Cont { data, .. } => {
                    let len = expected.expect("continuation first");
                    let take = (len - body.len()).min(CONT_DATA_SIZE);
                    body.extend_from_slice(&data[..take]);
                }
            }
            if expected == Some(body.len()) {
                return body;
            }
        }
    }

    /// One CTAP2 exchange that must succeed; returns the CBOR body.
    fn ctap2(&mut self, reports: &[Report]) -> Vec<u8> {
        let body = self.exchange(reports);
        assert_eq!(body.first(), Some(&0x00), "CTAP2 status {body:02x?}");
        body
    }
}

/// makeCredential for user number `user` (ES256), the same bytes every run:
/// the shared builder (tests/support) with rp.name "Example", user.name
/// "alice" and no displayName.
fn make_credential_request(user: u32, resident: bool) -> Value {
    let mut mc = MakeCredential::new("example.com", &user.to_be_bytes()).cdh([0x11; 32]);
    mc.rp_name = Some("Example".into());
    mc.user_name = Some("alice".into());
    mc.display_name = None;
    if resident {
        mc = mc.rk();
    }
    mc.build()
}

/// getAssertion for `credential_id` with a fixed clientDataHash.
fn get_assertion_request(credential_id: &[u8]) -> Value {
    GetAssertion::new("example.com")
        .cdh([0x22; 32])
        .allow(credential_id)
        .build()
}

/// The credential ID of a makeCredential response, from its attested
/// credential data (parsed strictly by the shared parser).
fn credential_id(make_credential_response: &[u8]) -> Vec<u8> {
    let value = decode(&make_credential_response[1..]).unwrap();
    let auth_data = AuthData::parse(get_bytes(&value, 2).unwrap()).unwrap();
    auth_data.attested.unwrap().id
}

/// The operations measured, each set up outside its measured part.
struct Fixture {
    host: Host,
    make_credential: Vec<Report>,
    get_assertion: Vec<Report>,
    signing_key: p256::ecdsa::SigningKey,
    /// authenticatorData (37 bytes) ‖ clientDataHash, what an assertion signs.
    message: [u8; 69],
    rng: ChaCha20Rng,
    /// Storage holding [`STARTUP_CREDENTIALS`] discoverable credentials.
    populated: MemoryStorage,
}

impl Fixture {
    fn new() -> Self {
        let mut host = Host::new(&MemoryStorage::new());
        let make_credential =
            host.ctap2_reports(MAKE_CREDENTIAL, &make_credential_request(1, false));
        let created = host.ctap2(&make_credential);
        let get_assertion = host.ctap2_reports(
            GET_ASSERTION,
            &get_assertion_request(&credential_id(&created)),
        );
        host.ctap2(&get_assertion);

        let populated = MemoryStorage::new();
        let mut filler = Host::new(&populated);
        for user in 0..STARTUP_CREDENTIALS {
            let reports =
                filler.ctap2_reports(MAKE_CREDENTIAL, &make_credential_request(user, true));
            filler.ctap2(&reports);
        }
        let mut rng = seeded_rng(11);
        Fixture {
            host,
            make_credential,
            get_assertion,
            signing_key: p256::ecdsa::SigningKey::random(&mut rng),
            message: [0x5A; 69],
            rng,
            populated,
        }
    }

    /// Runs `op` once (the unit every figure is per).
    fn run(&mut self, op: Op) {
        match op {
            Op::BareSign => {
                let signature: p256::ecdsa::Signature = self.signing_key.sign(&self.message);
                black_box(signature);
            }
            Op::KeyGen => {
                let key = p256::ecdsa::SigningKey::random(&mut self.rng);
                black_box(key.verifying_key().to_encoded_point(false));
            }
            Op::GetAssertion => {
                black_box(self.host.ctap2(&self.get_assertion));
            }
            Op::MakeCredential => {
                black_box(self.host.ctap2(&self.make_credential));
            }
            Op::Startup => {
                black_box(authenticator(&self.populated));
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    BareSign,
    KeyGen,
    GetAssertion,
    MakeCredential,
    Startup,
}

impl Op {
    const ALL: [Op; 5] = [
        Op::BareSign,
        Op::KeyGen,
        Op::GetAssertion,
        Op::MakeCredential,
        Op::Startup,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::BareSign => "bare_sign",
            Op::KeyGen => "keygen",
            Op::GetAssertion => "get_assertion",
            Op::MakeCredential => "make_credential",
            Op::Startup => "startup_100",
        }
    }
}

/// The measured part of a callgrind run: `tools/bench-core` collects only
/// inside this function (`--toggle-collect`).
#[inline(never)]
fn ferrokey_bench_measured(fixture: &mut Fixture, op: Op, iterations: u32) {
    for _ in 0..iterations {
        fixture.run(op);
    }
}

/// `core_ops --callgrind OP N`: one warm-up run of OP, then N measured runs.
fn callgrind(op_name: &str, iterations: u32) {
    let op = Op::ALL
        .into_iter()
        .find(|op| op.name() == op_name)
        .unwrap_or_else(|| panic!("unknown operation {op_name}"));
    let mut fixture = Fixture::new();
    fixture.run(op);
    ferrokey_bench_measured(&mut fixture, op, black_box(iterations));
}

fn timed(fixture: &mut Fixture, op: Op) -> Duration {
    // A fixed, short window: the ratios printed at the end are what matters.
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_millis(800) || n < 10 {
        fixture.run(op);
        n += 1;
    }
    start.elapsed() / n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--callgrind") {
        let op = args.get(i + 1).expect("--callgrind OP N");
        let n = args
            .get(i + 2)
            .and_then(|n| n.parse().ok())
            .expect("--callgrind OP N");
        callgrind(op, n);
        return;
    }
    let mut fixture = Fixture::new();
    let mut criterion = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = criterion.benchmark_group("core_ops");
    for op in Op::ALL {
        group.bench_function(op.name(), |b| b.iter(|| fixture.run(op)));
    }
    group.finish();

    // Ratios from one plain timed pass, all in this run.
    let mut t = std::collections::BTreeMap::new();
    for op in Op::ALL {
        t.insert(op.name(), timed(&mut fixture, op).as_secs_f64() * 1e6);
    }
    let us = |name: &str| t[name];
    println!("core_ops (wall time, one run; tools/bench-core gives instruction counts):");
    println!(
        "  getAssertion / bare signature          = {:.2}  ({:.0} us / {:.0} us)",
        us("get_assertion") / us("bare_sign"),
        us("get_assertion"),
        us("bare_sign")
    );
    println!(
        "  makeCredential / (keygen + signature)  = {:.2}  ({:.0} us / {:.0} us)",
        us("make_credential") / (us("keygen") + us("bare_sign")),
        us("make_credential"),
        us("keygen") + us("bare_sign")
    );
    println!(
        "  start-up with {STARTUP_CREDENTIALS} discoverable credentials = {:.0} us ({:.1} signatures)",
        us("startup_100"),
        us("startup_100") / us("bare_sign")
    );
}
