//! The host side of CTAPHID (CTAP 2.1 §11.2), for integration tests.
//!
//! Written independently of the device's `ferrokey::ctaphid` so that each side
//! checks the other. A [`CtapHidClient`] runs over any [`ReportTransport`]
//! (USB/IP, hidraw, or an in-process loopback) and speaks whole messages:
//! [`CtapHidClient::init`], [`CtapHidClient::ping`], [`CtapHidClient::cbor`],
//! [`CtapHidClient::msg`], [`CtapHidClient::wink`], [`CtapHidClient::lock`],
//! [`CtapHidClient::cancel`]. For negative tests it also sends and receives
//! raw reports and lets the test pick the channel id.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

/// The size of every CTAPHID report.
pub const REPORT_LEN: usize = 64;
/// The broadcast channel id.
pub const BROADCAST_CID: u32 = 0xFFFF_FFFF;

const INIT_HEADER_LEN: usize = 7;
const CONT_HEADER_LEN: usize = 5;
const INIT_DATA_LEN: usize = REPORT_LEN - INIT_HEADER_LEN;
const CONT_DATA_LEN: usize = REPORT_LEN - CONT_HEADER_LEN;
/// The largest message: one init packet and 128 continuation packets.
pub const MAX_MESSAGE_LEN: usize = INIT_DATA_LEN + 128 * CONT_DATA_LEN;

/// CTAPHID command codes (without bit 7).
pub mod cmd {
    /// Echo.
    pub const PING: u8 = 0x01;
    /// U2F APDU.
    pub const MSG: u8 = 0x03;
    /// Lock the device to a channel.
    pub const LOCK: u8 = 0x04;
    /// Allocate or resync a channel.
    pub const INIT: u8 = 0x06;
    /// Identify the device.
    pub const WINK: u8 = 0x08;
    /// CTAP2 request.
    pub const CBOR: u8 = 0x10;
    /// Cancel a pending request.
    pub const CANCEL: u8 = 0x11;
    /// Device is still working.
    pub const KEEPALIVE: u8 = 0x3B;
    /// Error response.
    pub const ERROR: u8 = 0x3F;
}

/// CTAPHID `INIT` capability flags.
pub mod capability {
    /// WINK is implemented.
    pub const WINK: u8 = 0x01;
    /// CBOR (CTAP2) is implemented.
    pub const CBOR: u8 = 0x04;
    /// MSG (U2F) is *not* implemented.
    pub const NMSG: u8 = 0x08;
}

/// Moves single 64-byte HID reports to and from the device.
pub trait ReportTransport {
    /// Sends one OUT report.
    fn send_report(&mut self, report: &[u8; REPORT_LEN]) -> io::Result<()>;
    /// Waits up to `timeout` for one IN report; `Ok(None)` when none came in time.
    fn recv_report(&mut self, timeout: Duration) -> io::Result<Option<[u8; REPORT_LEN]>>;
}

impl<T: ReportTransport + ?Sized> ReportTransport for &mut T {
    fn send_report(&mut self, report: &[u8; REPORT_LEN]) -> io::Result<()> {
        (**self).send_report(report)
    }
    fn recv_report(&mut self, timeout: Duration) -> io::Result<Option<[u8; REPORT_LEN]>> {
        (**self).recv_report(timeout)
    }
}

/// Why a client call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The transport failed.
    Io(io::Error),
    /// No (complete) answer within the timeout.
    Timeout,
    /// The device answered with a CTAPHID `ERROR` (the code, e.g. 0x06 CHANNEL_BUSY).
    Device(u8),
    /// The device broke the protocol (wrong command, bad sequence, bad length...).
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "transport error: {e}"),
            ClientError::Timeout => write!(f, "timed out waiting for the device"),
            ClientError::Device(code) => write!(f, "device answered CTAPHID error 0x{code:02x}"),
            ClientError::Protocol(what) => write!(f, "protocol violation: {what}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// The result type of client calls.
pub type Result<T> = std::result::Result<T, ClientError>;

/// What `INIT` told us about the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The channel id allocated to us.
    pub cid: u32,
    /// The CTAPHID protocol version (2).
    pub protocol_version: u8,
    /// Device version: major.
    pub major: u8,
    /// Device version: minor.
    pub minor: u8,
    /// Device version: build.
    pub build: u8,
    /// Capability flags (see [`capability`]).
    pub capabilities: u8,
}

impl DeviceInfo {
    /// Whether the device speaks CTAP2 (CBOR).
    pub fn has_cbor(&self) -> bool {
        self.capabilities & capability::CBOR != 0
    }
    /// Whether the device implements WINK.
    pub fn has_wink(&self) -> bool {
        self.capabilities & capability::WINK != 0
    }
    /// Whether the device speaks U2F (MSG), i.e. NMSG is clear.
    pub fn has_msg(&self) -> bool {
        self.capabilities & capability::NMSG == 0
    }
}

/// A complete message received from the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The channel it came on.
    pub cid: u32,
    /// The command code (without bit 7).
    pub cmd: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Builds the reports of one request message. Fails if `payload` is too long
/// for CTAPHID.
pub fn frame_message(cid: u32, cmd: u8, payload: &[u8]) -> Result<Vec<[u8; REPORT_LEN]>> {
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(ClientError::Protocol(format!(
            "{} bytes do not fit in one CTAPHID message",
            payload.len()
        )));
    }
    let mut reports = Vec::with_capacity(1 + payload.len() / CONT_DATA_LEN);
    let (first, rest) = payload.split_at(payload.len().min(INIT_DATA_LEN));
    let mut report = [0u8; REPORT_LEN];
    report[..4].copy_from_slice(&cid.to_be_bytes());
    report[4] = cmd | 0x80;
    report[5..7].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    report[INIT_HEADER_LEN..INIT_HEADER_LEN + first.len()].copy_from_slice(first);
    reports.push(report);
    for (seq, chunk) in rest.chunks(CONT_DATA_LEN).enumerate() {
        let mut report = [0u8; REPORT_LEN];
        report[..4].copy_from_slice(&cid.to_be_bytes());
        report[4] = seq as u8;
        report[CONT_HEADER_LEN..CONT_HEADER_LEN + chunk.len()].copy_from_slice(chunk);
        reports.push(report);
    }
    Ok(reports)
}

/// A CTAPHID host over a [`ReportTransport`].
pub struct CtapHidClient<T: ReportTransport> {
    transport: T,
    cid: u32,
    info: Option<DeviceInfo>,
    timeout: Duration,
    keepalives: Vec<u8>,
}

impl<T: ReportTransport> CtapHidClient<T> {
    /// A client on the broadcast channel; call [`CtapHidClient::init`] next.
    /// The default timeout for a whole request is 40 s (longer than the
    /// device's 30 s wait for the user).
    pub fn new(transport: T) -> Self {
        CtapHidClient {
            transport,
            cid: BROADCAST_CID,
            info: None,
            timeout: Duration::from_secs(40),
            keepalives: Vec::new(),
        }
    }

    /// Sets the overall timeout of each request.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The channel id in use.
    pub fn cid(&self) -> u32 {
        self.cid
    }

    /// Uses another channel id (for negative tests).
    pub fn set_cid(&mut self, cid: u32) {
        self.cid = cid;
    }

    /// What the last successful `INIT` reported.
    pub fn info(&self) -> Option<DeviceInfo> {
        self.info
    }

    /// The KEEPALIVE status bytes seen while reading the last response.
    pub fn keepalives(&self) -> &[u8] {
        &self.keepalives
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// `INIT` on the broadcast channel with a random nonce: allocates a channel
    /// and switches to it. Replies to other channels or with another nonce are skipped.
    pub fn init(&mut self) -> Result<DeviceInfo> {
        let nonce: [u8; 8] = rand::random();
        self.init_on(BROADCAST_CID, nonce)
    }

    /// `INIT` on channel `cid` with `nonce` (on an allocated channel: a resync).
    pub fn init_on(&mut self, cid: u32, nonce: [u8; 8]) -> Result<DeviceInfo> {
        self.send_message(cid, cmd::INIT, &nonce)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let reply = self.read_message(cid, deadline)?;
            if reply.cmd == cmd::ERROR {
                return Err(ClientError::Device(
                    reply.payload.first().copied().unwrap_or(0),
                ));
            }
            if reply.cmd != cmd::INIT || reply.payload.get(..8) != Some(&nonce[..]) {
                continue; // a reply to someone else's INIT
            }
            let p = &reply.payload;
            if p.len() < 17 {
                return Err(ClientError::Protocol(format!(
                    "INIT response of {} bytes",
                    p.len()
                )));
            }
            let info = DeviceInfo {
                cid: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
                protocol_version: p[12],
                major: p[13],
                minor: p[14],
                build: p[15],
                capabilities: p[16],
            };
            if info.cid == 0 || info.cid == BROADCAST_CID {
                return Err(ClientError::Protocol(format!(
                    "allocated cid {:#x}",
                    info.cid
                )));
            }
            self.cid = info.cid;
            self.info = Some(info);
            return Ok(info);
        }
    }

    /// `PING`: returns what the device echoed.
    pub fn ping(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.transact(cmd::PING, data)
    }

    /// `CBOR`: sends the CTAP2 command byte and CBOR; returns the status byte
    /// and the CBOR body. KEEPALIVEs are skipped (see [`CtapHidClient::keepalives`]).
    pub fn cbor(&mut self, command: u8, cbor: &[u8]) -> Result<(u8, Vec<u8>)> {
        let mut request = Vec::with_capacity(1 + cbor.len());
        request.push(command);
        request.extend_from_slice(cbor);
        self.send_request(cmd::CBOR, &request)?;
        self.read_cbor_response()
    }

    /// Reads the answer to a CBOR request sent with [`CtapHidClient::send_request`].
    pub fn read_cbor_response(&mut self) -> Result<(u8, Vec<u8>)> {
        let mut payload = self.read_response(cmd::CBOR)?;
        if payload.is_empty() {
            return Err(ClientError::Protocol("empty CBOR response".into()));
        }
        let status = payload.remove(0);
        Ok((status, payload))
    }

    /// `MSG`: sends a U2F APDU; returns the response APDU (data and status word).
    pub fn msg(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        self.transact(cmd::MSG, apdu)
    }

    /// `WINK`.
    pub fn wink(&mut self) -> Result<()> {
        self.transact(cmd::WINK, &[]).map(drop)
    }

    /// `LOCK` for `seconds` (0 unlocks).
    pub fn lock(&mut self, seconds: u8) -> Result<()> {
        self.transact(cmd::LOCK, &[seconds]).map(drop)
    }

    /// `CANCEL`: the device never answers it directly; the pending request
    /// ends with an error status instead.
    pub fn cancel(&mut self) -> Result<()> {
        self.send_message(self.cid, cmd::CANCEL, &[])
    }

    /// Sends a request and reads its response (skipping KEEPALIVEs).
    pub fn transact(&mut self, command: u8, payload: &[u8]) -> Result<Vec<u8>> {
        self.send_request(command, payload)?;
        self.read_response(command)
    }

    /// Sends a request on our channel without waiting for the answer.
    pub fn send_request(&mut self, command: u8, payload: &[u8]) -> Result<()> {
        self.send_message(self.cid, command, payload)
    }

    /// Reads the response to `command` on our channel: KEEPALIVEs are
    /// recorded and skipped, an `ERROR` becomes [`ClientError::Device`], and
    /// any other command is a protocol violation.
    pub fn read_response(&mut self, command: u8) -> Result<Vec<u8>> {
        self.keepalives.clear();
        let deadline = Instant::now() + self.timeout;
        loop {
            let reply = self.read_message(self.cid, deadline)?;
            match reply.cmd {
                cmd::KEEPALIVE => {
                    self.keepalives
                        .push(reply.payload.first().copied().unwrap_or(0));
                }
                cmd::ERROR => {
                    return Err(ClientError::Device(
                        reply.payload.first().copied().unwrap_or(0),
                    ))
                }
                c if c == command => return Ok(reply.payload),
                other => {
                    return Err(ClientError::Protocol(format!(
                        "expected command {command:#04x}, got {other:#04x}"
                    )))
                }
            }
        }
    }

    /// Frames and sends one message on any channel.
    pub fn send_message(&mut self, cid: u32, command: u8, payload: &[u8]) -> Result<()> {
        for report in frame_message(cid, command, payload)? {
            self.transport.send_report(&report)?;
        }
        Ok(())
    }

    /// Reads one whole message addressed to `cid`, skipping reports for other
    /// channels and stray continuation packets before an initialization packet.
    pub fn read_message(&mut self, cid: u32, deadline: Instant) -> Result<Message> {
        let mut assembling: Option<(Message, usize, u8)> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let report = self
                .transport
                .recv_report(remaining)?
                .ok_or(ClientError::Timeout)?;
            let report_cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
            if report_cid != cid {
                continue;
            }
            let kind = report[4];
            if kind & 0x80 != 0 {
                if assembling.is_some() {
                    return Err(ClientError::Protocol(
                        "new message before the last ended".into(),
                    ));
                }
                let len = usize::from(u16::from_be_bytes([report[5], report[6]]));
                if len > MAX_MESSAGE_LEN {
                    return Err(ClientError::Protocol(format!("BCNT {len}")));
                }
                let first = len.min(INIT_DATA_LEN);
                let mut payload = Vec::with_capacity(len);
                payload.extend_from_slice(&report[INIT_HEADER_LEN..INIT_HEADER_LEN + first]);
                let message = Message {
                    cid,
                    cmd: kind & 0x7F,
                    payload,
                };
                if first == len {
                    return Ok(message);
                }
                assembling = Some((message, len, 0));
            } else if let Some((mut message, len, expected)) = assembling.take() {
                if kind != expected {
                    return Err(ClientError::Protocol(format!(
                        "sequence {kind}, expected {expected}"
                    )));
                }
                let take = (len - message.payload.len()).min(CONT_DATA_LEN);
                message
                    .payload
                    .extend_from_slice(&report[CONT_HEADER_LEN..CONT_HEADER_LEN + take]);
                if message.payload.len() == len {
                    return Ok(message);
                }
                assembling = Some((message, len, expected + 1));
            }
            // else: a continuation packet with no message started: skip it.
        }
    }

    /// Sends one raw report.
    pub fn send_raw(&mut self, report: &[u8; REPORT_LEN]) -> Result<()> {
        Ok(self.transport.send_report(report)?)
    }

    /// Receives one raw report, if one comes within `timeout`.
    pub fn recv_raw(&mut self, timeout: Duration) -> Result<Option<[u8; REPORT_LEN]>> {
        Ok(self.transport.recv_report(timeout)?)
    }
}
