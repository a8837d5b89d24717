//! The test CTAPHID client against the device's own CTAPHID transport
//! (`ferrokey::device::Device`) in process, with a mock app and a simulated
//! clock: each side checks the other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io;
use std::time::Duration;

use ferrokey::app::{App, CallContext, Message as AppMessage, Outcome, Protocol};
use ferrokey::device::{Device, DeviceConfig};
use ferrokey::platform::PresenceStatus;
use ferrokey_test_support::ctaphid_client::*;

/// Requests starting with this byte need user presence.
const NEEDS_UP: u8 = 0xEE;

/// CBOR: `[0x00, up_granted, request...]`; MSG: `request... 90 00`.
/// Presence is answered `answer` once `delay_ms` passed after the request.
struct MockApp {
    answer: PresenceStatus,
    delay_ms: u64,
    requested_at: Option<u64>,
    winks: u32,
}

impl App for MockApp {
    fn handle(
        &mut self,
        protocol: Protocol,
        request: &[u8],
        context: CallContext,
        response: &mut AppMessage,
    ) -> Outcome {
        if request.first() == Some(&NEEDS_UP) && !context.up_granted {
            return Outcome::NeedsPresence;
        }
        match protocol {
            Protocol::Cbor => {
                response
                    .extend_from_slice(&[0, u8::from(context.up_granted)])
                    .unwrap();
                response
                    .extend_from_slice(&request[..request.len().min(7607)])
                    .unwrap();
            }
            Protocol::Msg => {
                response.extend_from_slice(request).unwrap();
                response.extend_from_slice(&[0x90, 0x00]).unwrap();
            }
        }
        Outcome::Response
    }
    fn request_presence(&mut self, now_ms: u64) {
        self.requested_at = Some(now_ms);
    }
    fn poll_presence(&mut self, now_ms: u64) -> PresenceStatus {
        match self.requested_at {
            Some(at) if now_ms >= at + self.delay_ms => {
                self.requested_at = None;
                self.answer
            }
            _ => PresenceStatus::Pending,
        }
    }
    fn cancel_presence(&mut self) {
        self.requested_at = None;
    }
    fn wink(&mut self) {
        self.winks += 1;
    }
}

/// An in-process device with a simulated clock: waiting for a report
/// advances the clock deadline by deadline, so tests run instantly.
struct Loopback {
    device: Device<MockApp>,
    now: u64,
}

impl Loopback {
    fn new(answer: PresenceStatus, delay_ms: u64) -> Self {
        let app = MockApp {
            answer,
            delay_ms,
            requested_at: None,
            winks: 0,
        };
        Loopback {
            device: Device::new(app, DeviceConfig::default()),
            now: 0,
        }
    }
}

impl ReportTransport for Loopback {
    fn send_report(&mut self, report: &[u8; REPORT_LEN]) -> io::Result<()> {
        self.device.handle_report(report, self.now);
        Ok(())
    }

    fn recv_report(&mut self, timeout: Duration) -> io::Result<Option<[u8; REPORT_LEN]>> {
        let limit = self.now + timeout.as_millis() as u64;
        loop {
            if let Some(report) = self.device.next_report() {
                return Ok(Some(report));
            }
            match self.device.next_deadline() {
                Some(deadline) if deadline <= limit => {
                    self.now = self.now.max(deadline);
                    self.device.tick(self.now);
                }
                _ => {
                    self.now = limit;
                    return Ok(None);
                }
            }
        }
    }
}

fn connected(answer: PresenceStatus, delay_ms: u64) -> CtapHidClient<Loopback> {
    let mut client = CtapHidClient::new(Loopback::new(answer, delay_ms));
    client.init().unwrap();
    client
}

#[test]
fn init_learns_the_channel_and_capabilities() {
    let mut client = CtapHidClient::new(Loopback::new(PresenceStatus::Approved, 0));
    assert_eq!(client.cid(), BROADCAST_CID);
    let info = client.init().unwrap();
    assert_eq!(client.cid(), info.cid);
    assert_eq!(info.protocol_version, 2);
    assert!(info.has_cbor() && info.has_wink() && info.has_msg());
    let again = client.init().unwrap();
    assert_ne!(again.cid, info.cid, "a fresh channel each time");
}

#[test]
fn init_skips_replies_to_other_nonces() {
    let mut client = connected(PresenceStatus::Approved, 0);
    // Someone else's INIT answer is waiting in the queue.
    client
        .send_message(BROADCAST_CID, cmd::INIT, &[9; 8])
        .unwrap();
    let info = client.init_on(BROADCAST_CID, [1; 8]).unwrap();
    assert_eq!(client.cid(), info.cid);
}

#[test]
fn resync_keeps_the_channel() {
    let mut client = connected(PresenceStatus::Approved, 0);
    let cid = client.cid();
    let info = client.init_on(cid, [5; 8]).unwrap();
    assert_eq!(info.cid, cid);
}

#[test]
fn ping_round_trips_every_size_class() {
    let mut client = connected(PresenceStatus::Approved, 0);
    for len in [0, 1, 57, 58, 1000, MAX_MESSAGE_LEN] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        assert_eq!(client.ping(&data).unwrap(), data, "len {len}");
    }
    assert!(matches!(
        client.ping(&vec![0; MAX_MESSAGE_LEN + 1]),
        Err(ClientError::Protocol(_))
    ));
}

#[test]
fn cbor_skips_keepalives_until_the_user_approves() {
    let mut client = connected(PresenceStatus::Approved, 400);
    let (status, body) = client.cbor(NEEDS_UP, &[0xA0]).unwrap();
    assert_eq!((status, body), (0x00, vec![0x01, NEEDS_UP, 0xA0]));
    assert!(client.keepalives().len() >= 5, "{:?}", client.keepalives());
    assert!(client.keepalives().iter().all(|&s| s == 2));
    let (status, body) = client.cbor(0x04, &[]).unwrap();
    assert_eq!((status, body), (0x00, vec![0x00, 0x04]));
    assert!(client.keepalives().is_empty());
}

#[test]
fn denial_and_cancel_come_back_as_status_bytes() {
    let mut client = connected(PresenceStatus::Denied, 100);
    assert_eq!(client.cbor(NEEDS_UP, &[]).unwrap(), (0x27, vec![]));

    let mut client = connected(PresenceStatus::Approved, 10_000);
    client.send_request(cmd::CBOR, &[NEEDS_UP]).unwrap();
    let first = client.recv_raw(Duration::ZERO).unwrap().unwrap();
    assert_eq!(first[4], 0x80 | cmd::KEEPALIVE);
    client.cancel().unwrap();
    assert_eq!(client.read_cbor_response().unwrap(), (0x2D, vec![]));
}

#[test]
fn msg_and_wink() {
    let mut client = connected(PresenceStatus::Approved, 0);
    assert_eq!(client.msg(&[0, 3, 0, 0]).unwrap(), [0, 3, 0, 0, 0x90, 0x00]);
    client.wink().unwrap();
    assert_eq!(client.transport().device.app().winks, 1);
}

#[test]
fn device_errors_surface_with_their_code() {
    let mut client = connected(PresenceStatus::Approved, 0);
    let cid = client.cid();
    client.set_cid(cid ^ 1);
    assert!(matches!(client.ping(b"x"), Err(ClientError::Device(0x0B))));
    client.set_cid(cid);
    assert!(matches!(
        client.transact(0x55, &[]),
        Err(ClientError::Device(0x01))
    ));
    assert!(matches!(client.lock(11), Err(ClientError::Device(0x02))));
    client.lock(0).unwrap();
}

#[test]
fn another_host_is_told_the_device_is_busy() {
    let mut first = connected(PresenceStatus::Approved, 10_000);
    first.send_request(cmd::CBOR, &[NEEDS_UP]).unwrap();
    let mut second = CtapHidClient::new(first.transport_mut());
    second.init().unwrap();
    assert!(matches!(second.ping(b"x"), Err(ClientError::Device(0x06))));
    assert_eq!(
        first.read_cbor_response().unwrap(),
        (0x00, vec![0x01, NEEDS_UP])
    );
}

#[test]
fn raw_reports_reach_the_device_and_come_back() {
    let mut client = connected(PresenceStatus::Approved, 0);
    let mut report = [0u8; REPORT_LEN];
    report[..4].copy_from_slice(&client.cid().to_be_bytes());
    report[4] = 0x80 | cmd::PING;
    report[6] = 200; // BCNT 200, but no continuation follows
    client.send_raw(&report).unwrap();
    let answer = client
        .recv_raw(Duration::from_millis(600))
        .unwrap()
        .unwrap();
    assert_eq!(
        &answer[4..8],
        &[0x80 | cmd::ERROR, 0, 1, 0x05],
        "MSG_TIMEOUT"
    );
    assert_eq!(client.recv_raw(Duration::from_millis(10)).unwrap(), None);
}

#[test]
fn a_silent_device_times_out() {
    struct Silent;
    impl ReportTransport for Silent {
        fn send_report(&mut self, _: &[u8; REPORT_LEN]) -> io::Result<()> {
            Ok(())
        }
        fn recv_report(&mut self, _: Duration) -> io::Result<Option<[u8; REPORT_LEN]>> {
            Ok(None)
        }
    }
    let mut client = CtapHidClient::new(Silent);
    client.set_timeout(Duration::from_millis(10));
    assert!(matches!(client.init(), Err(ClientError::Timeout)));
}

#[test]
fn frames_agree_with_the_specification() {
    let reports = frame_message(0x0102_0304, cmd::CBOR, &[7; 100]).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(&reports[0][..7], &[1, 2, 3, 4, 0x90, 0, 100]);
    assert_eq!(&reports[1][..5], &[1, 2, 3, 4, 0]);
    assert_eq!(reports[1][5 + 42], 7);
    assert_eq!(reports[1][5 + 43], 0, "zero padding");
    assert_eq!(
        frame_message(1, cmd::PING, &vec![0; MAX_MESSAGE_LEN])
            .unwrap()
            .len(),
        129
    );
}
