//! Test helpers: a scriptable mock [`App`] and a host-side harness around a
//! [`Device`] with a manual clock.

use std::vec::Vec;

use super::command::Command;
use super::config::Config;
use super::packet::{cont_report, init_report, Packet, Report, CONT_DATA_SIZE, INIT_DATA_SIZE};
use super::BROADCAST_CID;
use crate::app::{App, CallContext, Message, Outcome, Protocol};
use crate::device::Device;
use crate::platform::PresenceStatus;

/// A request starting with this byte needs user presence.
pub const NEEDS_PRESENCE: u8 = 0xEE;

/// A mock app: CBOR answers `[0x00, up_granted, request...]`, MSG answers
/// `request... 90 00`; a request starting with [`NEEDS_PRESENCE`] needs presence.
#[derive(Debug)]
pub struct MockApp {
    /// What `poll_presence` answers.
    pub presence: PresenceStatus,
    /// Whether U2F is supported.
    pub ctap1: bool,
    /// Whether CTAP2 (CBOR) is supported.
    pub cbor: bool,
    /// Calls to `handle`: protocol, request, context.
    pub calls: Vec<(Protocol, Vec<u8>, CallContext)>,
    pub presence_requests: u32,
    pub presence_polls: u32,
    pub presence_cancels: u32,
    pub winks: u32,
    pub transport_resets: u32,
}

impl Default for MockApp {
    fn default() -> Self {
        MockApp {
            presence: PresenceStatus::Pending,
            ctap1: true,
            cbor: true,
            calls: Vec::new(),
            presence_requests: 0,
            presence_polls: 0,
            presence_cancels: 0,
            winks: 0,
            transport_resets: 0,
        }
    }
}

impl App for MockApp {
    fn handle(
        &mut self,
        protocol: Protocol,
        request: &[u8],
        context: CallContext,
        response: &mut Message,
    ) -> Outcome {
        self.calls.push((protocol, request.to_vec(), context));
        if request.first() == Some(&NEEDS_PRESENCE) && !context.up_granted {
            // Garbage in the response must be ignored by the transport.
            let _ = response.extend_from_slice(b"ignored");
            return Outcome::NeedsPresence;
        }
        match protocol {
            Protocol::Cbor => {
                response.push(0x00).unwrap();
                response.push(u8::from(context.up_granted)).unwrap();
                let room = response.capacity() - response.len();
                response
                    .extend_from_slice(&request[..request.len().min(room)])
                    .unwrap();
            }
            Protocol::Msg => {
                let room = response.capacity() - 2;
                response
                    .extend_from_slice(&request[..request.len().min(room)])
                    .unwrap();
                response.extend_from_slice(&[0x90, 0x00]).unwrap();
            }
        }
        Outcome::Response
    }

    fn request_presence(&mut self, _now_ms: u64) {
        self.presence_requests += 1;
    }

    fn poll_presence(&mut self, _now_ms: u64) -> PresenceStatus {
        self.presence_polls += 1;
        let answer = self.presence;
        if answer == PresenceStatus::Approved {
            self.presence = PresenceStatus::Pending;
        }
        answer
    }

    fn cancel_presence(&mut self) {
        self.presence_cancels += 1;
    }

    fn wink(&mut self) {
        self.winks += 1;
    }

    fn supports_ctap1(&self) -> bool {
        self.ctap1
    }

    fn supports_cbor(&self) -> bool {
        self.cbor
    }

    fn transport_reset(&mut self) {
        self.transport_resets += 1;
    }
}

/// A reassembled message from the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub cid: u32,
    pub cmd: u8,
    pub payload: Vec<u8>,
}

/// A host-side harness with a manual clock.
pub struct Harness {
    pub device: Device<MockApp>,
    pub now: u64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        Harness {
            device: Device::new(MockApp::default(), config),
            now: 1_000,
        }
    }

    pub fn app(&mut self) -> &mut MockApp {
        self.device.app_mut()
    }

    pub fn send(&mut self, report: &Report) {
        self.device.handle_report(report, self.now);
    }

    /// Sends a whole message (init packet plus continuations).
    pub fn send_message(&mut self, cid: u32, cmd: Command, payload: &[u8]) {
        for report in packets(cid, cmd.code(), payload) {
            self.send(&report);
        }
    }

    /// Advances the clock to `now`, ticking at every deadline on the way.
    pub fn advance_to(&mut self, now: u64) {
        while let Some(deadline) = self.device.next_deadline() {
            if deadline > now {
                break;
            }
            self.now = self.now.max(deadline);
            self.device.tick(self.now);
        }
        self.now = now;
        self.device.tick(now);
    }

    pub fn advance(&mut self, ms: u64) {
        self.advance_to(self.now + ms);
    }

    /// All reports waiting, raw.
    pub fn drain_reports(&mut self) -> Vec<Report> {
        core::iter::from_fn(|| self.device.next_report()).collect()
    }

    /// All waiting reports, reassembled into messages.
    pub fn replies(&mut self) -> Vec<Reply> {
        let reports = self.drain_reports();
        reassemble(&reports)
    }

    /// The single reply waiting.
    pub fn reply(&mut self) -> Reply {
        let mut replies = self.replies();
        assert_eq!(replies.len(), 1, "expected one reply, got {replies:?}");
        replies.remove(0)
    }

    /// INIT on broadcast; returns the new channel id.
    pub fn init(&mut self) -> u32 {
        let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
        self.send_message(BROADCAST_CID, Command::Init, &nonce);
        let reply = self.reply();
        assert_eq!(reply.cid, BROADCAST_CID);
        assert_eq!(reply.cmd, Command::Init.code());
        assert_eq!(&reply.payload[..8], &nonce);
        u32::from_be_bytes(reply.payload[8..12].try_into().unwrap())
    }
}

/// Fragments a host request into reports.
pub fn packets(cid: u32, cmd: u8, payload: &[u8]) -> Vec<Report> {
    let mut reports = Vec::new();
    let first = payload.len().min(INIT_DATA_SIZE);
    reports.push(init_report(
        cid,
        cmd,
        payload.len() as u16,
        &payload[..first],
    ));
    for (seq, chunk) in payload[first..].chunks(CONT_DATA_SIZE).enumerate() {
        reports.push(cont_report(cid, seq as u8, chunk));
    }
    reports
}

/// Reassembles device reports into messages (strictly: sequence errors panic).
pub fn reassemble(reports: &[Report]) -> Vec<Reply> {
    let mut replies: Vec<Reply> = Vec::new();
    let mut open: Option<(Reply, usize, u8)> = None;
    for report in reports {
        match Packet::parse(report) {
            Packet::Init {
                cid,
                cmd,
                bcnt,
                data,
            } => {
                assert!(open.is_none(), "interleaved message");
                let len = usize::from(bcnt);
                let mut reply = Reply {
                    cid,
                    cmd,
                    payload: data[..len.min(INIT_DATA_SIZE)].to_vec(),
                };
                if reply.payload.len() == len {
                    replies.push(reply);
                } else {
                    reply.payload.reserve(len);
                    open = Some((reply, len, 0));
                }
            }
            Packet::Cont { cid, seq, data } => {
                let (mut reply, len, expected) = open.take().expect("continuation without init");
                assert_eq!((cid, seq), (reply.cid, expected));
                let take = (len - reply.payload.len()).min(CONT_DATA_SIZE);
                reply.payload.extend_from_slice(&data[..take]);
                if reply.payload.len() == len {
                    replies.push(reply);
                } else {
                    open = Some((reply, len, expected + 1));
                }
            }
        }
    }
    assert!(open.is_none(), "incomplete message at the end");
    replies
}

/// Reassembles what it can, skipping malformed sequences (for fuzzing).
pub fn reassemble_lenient(reports: &[Report]) -> Vec<Reply> {
    let mut replies = Vec::new();
    for report in reports {
        if let Packet::Init {
            cid,
            cmd,
            bcnt,
            data,
        } = Packet::parse(report)
        {
            let len = usize::from(bcnt).min(INIT_DATA_SIZE);
            replies.push(Reply {
                cid,
                cmd,
                payload: data[..len].to_vec(),
            });
        }
    }
    replies
}
