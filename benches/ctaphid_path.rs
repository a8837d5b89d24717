//! makeCredential and getAssertion through the whole CTAPHID path: request
//! reports in, response reports out, on one core, with the real
//! [`Authenticator`] over the in-memory test platform (presence auto-approves).
//!
//! Run with `cargo bench --bench ctaphid_path`. Criterion reports the time per
//! ceremony and its throughput (elements/s = ceremonies per second); a plain
//! timed loop at the end prints operations per second too. A 1 KiB PING gives
//! the cost of the transport alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use ciborium::Value;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrokey::authenticator::{Authenticator, Config};
use ferrokey::ctaphid::packet::{cont_report, init_report, Packet, CONT_DATA_SIZE, INIT_DATA_SIZE};
use ferrokey::ctaphid::{Command, BROADCAST_CID};
use ferrokey::device::{Device, DeviceConfig};
use ferrokey::test_platform::{test_platform, ChaCha20Rng, MemoryStorage, ScriptedPresence};
use ferrokey_test_support::cbor::{decode, get_bytes};
use ferrokey_test_support::ctap2::{AuthData, GetAssertion, MakeCredential};

type BenchDevice = Device<Authenticator<MemoryStorage, ScriptedPresence, ChaCha20Rng>>;

const MAKE_CREDENTIAL: u8 = 0x01;
const GET_ASSERTION: u8 = 0x02;

/// A host driving the device in process, with a manual clock.
struct Host {
    device: BenchDevice,
    cid: u32,
    now_ms: u64,
    reports_in: u64,
    reports_out: u64,
}

impl Host {
    fn new() -> Self {
        let authenticator = Authenticator::new(test_platform(7), Config::default()).unwrap();
        let device = Device::new(authenticator, DeviceConfig::default());
        let mut host = Host {
            device,
            cid: BROADCAST_CID,
            now_ms: 1_000,
            reports_in: 0,
            reports_out: 0,
        };
        let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
        let (cmd, payload) = host.exchange(Command::Init, &nonce);
        assert_eq!(cmd, Command::Init.code());
        host.cid = u32::from_be_bytes(payload[8..12].try_into().unwrap());
        host
    }

    /// Sends one request and returns the response (KEEPALIVEs skipped).
    fn exchange(&mut self, command: Command, payload: &[u8]) -> (u8, Vec<u8>) {
        self.now_ms += 1;
        let first = payload.len().min(INIT_DATA_SIZE);
        let report = init_report(
            self.cid,
            command.code(),
            payload.len() as u16,
            &payload[..first],
        );
        self.device.handle_report(&report, self.now_ms);
        self.reports_in += 1;
        for (seq, chunk) in payload[first..].chunks(CONT_DATA_SIZE).enumerate() {
            self.device
                .handle_report(&cont_report(self.cid, seq as u8, chunk), self.now_ms);
            self.reports_in += 1;
        }
        let mut response: Option<(u8, usize, Vec<u8>)> = None;
        loop {
            let Some(report) = self.device.next_report() else {
                // Nothing queued: the device must be waiting for a timer.
                let deadline = self.device.next_deadline().expect("device stalled");
                self.now_ms = self.now_ms.max(deadline);
                self.device.tick(self.now_ms);
                continue;
            };
            self.reports_out += 1;
            match Packet::parse(&report) {
                Packet::Init { cmd, .. } if cmd == Command::Keepalive.code() => {}
                Packet::Init {
                    cmd, bcnt, data, ..
                } => {
                    let len = usize::from(bcnt);
                    let mut body = Vec::with_capacity(len);
                    body.extend_from_slice(&data[..len.min(INIT_DATA_SIZE)]);
                    response = Some((cmd, len, body));
                }
                Packet::Cont { data, .. } => {
                    let (_, len, body) = response.as_mut().expect("continuation first");
                    let take = (*len - body.len()).min(CONT_DATA_SIZE);
                    body.extend_from_slice(&data[..take]);
                }
            }
            if let Some((cmd, len, body)) = &response {
                if body.len() == *len {
                    return (*cmd, body.clone());
                }
            }
        }
    }

    /// A CTAP2 command; panics unless it succeeds. Returns the CBOR body.
    fn ctap2(&mut self, command: u8, parameters: Value) -> Vec<u8> {
        let mut request = vec![command];
        ciborium::into_writer(&parameters, &mut request).unwrap();
        let (cmd, body) = self.exchange(Command::Cbor, &request);
        assert_eq!(cmd, Command::Cbor.code());
        assert_eq!(body.first(), Some(&0x00), "CTAP2 status {body:02x?}");
        body[1..].to_vec()
    }
}

/// makeCredential for user number `user` (ES256), the same bytes every run:
/// the shared builder (tests/support) with rp.name "Example", user.name
/// "alice" and no displayName.
fn make_credential_request(user: u32) -> Value {
    let mut mc = MakeCredential::new("example.com", &user.to_be_bytes()).cdh([0x11; 32]);
    mc.rp_name = Some("Example".into());
    mc.user_name = Some("alice".into());
    mc.display_name = None;
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
    let value = decode(make_credential_response).unwrap();
    let auth_data = AuthData::parse(get_bytes(&value, 2).unwrap()).unwrap();
    auth_data.attested.unwrap().id
}

fn ceremonies(c: &mut Criterion) {
    let mut host = Host::new();
    let mut user = 0u32;

    let mut group = c.benchmark_group("ctaphid_path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("makeCredential", |b| {
        b.iter(|| {
            user += 1;
            black_box(host.ctap2(MAKE_CREDENTIAL, make_credential_request(user)))
        })
    });

    let created = host.ctap2(MAKE_CREDENTIAL, make_credential_request(0));
    let id = credential_id(&created);
    let assertion = get_assertion_request(&id);
    group.bench_function("getAssertion", |b| {
        b.iter(|| black_box(host.ctap2(GET_ASSERTION, assertion.clone())))
    });

    // The transport alone, for comparison: a 1 KB PING (18 reports each way).
    let ping = vec![0x5A; 1024];
    group.bench_function("ping_1KiB", |b| {
        b.iter(|| black_box(host.exchange(Command::Ping, &ping)))
    });
    group.finish();

    // A plain timed loop, for a figure in operations per second.
    let window = Duration::from_secs(2);
    for (name, command) in [
        ("makeCredential", MAKE_CREDENTIAL),
        ("getAssertion", GET_ASSERTION),
    ] {
        let (reports_in, reports_out) = (host.reports_in, host.reports_out);
        let start = Instant::now();
        let mut ops = 0u64;
        while start.elapsed() < window {
            let request = if command == MAKE_CREDENTIAL {
                user += 1;
                make_credential_request(user)
            } else {
                assertion.clone()
            };
            black_box(host.ctap2(command, request));
            ops += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "ctaphid_path/{name}: {:.0} ops/s ({ops} in {seconds:.2} s, {:.1} reports in and {:.1} out per op)",
            ops as f64 / seconds,
            (host.reports_in - reports_in) as f64 / ops as f64,
            (host.reports_out - reports_out) as f64 / ops as f64,
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = ceremonies
}
criterion_main!(benches);
