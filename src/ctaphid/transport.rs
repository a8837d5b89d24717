//! The CTAPHID transaction state machine (CTAP 2.1 §11.2.5 – §11.2.9).
//!
//! One transaction at a time: a request is reassembled, handed to the
//! [`App`], and — if the app needs user presence — kept open while the
//! transport polls for presence and sends KEEPALIVEs. Other channels get
//! `CHANNEL_BUSY` meanwhile. Everything is driven by incoming reports and
//! by [`Transport::tick`] at [`Transport::next_deadline`]; nothing polls.
//!
//! Policies where the specification leaves room:
//! - `INIT` is always served (unless another channel holds a `LOCK`): on the
//!   broadcast channel it allocates a channel, on any other channel but 0 it
//!   resynchronizes that channel (CTAP 2.1 §11.2.9.1.3), without disturbing a
//!   transaction open on another channel. On the channel of the open
//!   transaction it aborts that transaction (withdrawing a presence request)
//!   and drops its queued output. A channel id the key does not know (one it
//!   evicted from its table of 16, or one from before a reset, or one the
//!   host picked itself) is taken into the table, evicting the least recently
//!   used idle channel if need be, as Solo and the Trussed/Nitrokey stack do;
//!   refusing it, as the spec's "allocated CID" wording would allow, leaves a
//!   host whose channel was evicted unable to recover without a broadcast
//!   INIT, which some hosts never repeat.
//! - `CANCEL` never gets an answer of its own. On the channel waiting for
//!   presence it ends the wait (`KEEPALIVE_CANCEL`); on the channel whose
//!   request is still arriving it drops the partial request; otherwise it is
//!   ignored. Only an unallocated or reserved channel id gets `INVALID_CHANNEL`.
//! - Continuation packets that do not belong to the message being reassembled
//!   are ignored (a stray or refused message must not cause a flood of errors).
//! - A new request on a channel while that channel's request still waits for
//!   presence gets `CHANNEL_BUSY`; the wait goes on.
//! - A response the host has not finished reading holds off requests from
//!   other channels (`CHANNEL_BUSY`) for [`Timing::stale_response_ms`]; after
//!   that, or when its own channel sends a new request, the rest is dropped.
//! - The message timeout counts from the latest packet of the message.
//!
//! [`Timing::stale_response_ms`]: super::config::Timing::stale_response_ms

use super::assembler::{Assembly, Progress};
use super::channels::ChannelTable;
use super::command::{Command, KeepaliveStatus};
use super::config::Config;
use super::error::HidError;
use super::outbox::Outbox;
use super::packet::{Packet, Report, INIT_DATA_SIZE};
use super::{
    BROADCAST_CID, CAPABILITY_CBOR, CAPABILITY_NMSG, CAPABILITY_WINK, PROTOCOL_VERSION,
    RESERVED_CID,
};
use crate::app::{App, CallContext, Message, Outcome, Protocol};
use crate::platform::PresenceStatus;

/// CTAP2 status: the user refused (CTAP2_ERR_OPERATION_DENIED).
pub const CTAP2_ERR_OPERATION_DENIED: u8 = 0x27;
/// CTAP2 status: the host cancelled the wait (CTAP2_ERR_KEEPALIVE_CANCEL).
pub const CTAP2_ERR_KEEPALIVE_CANCEL: u8 = 0x2D;
/// CTAP2 status: the user did not answer in time (CTAP2_ERR_USER_ACTION_TIMEOUT).
pub const CTAP2_ERR_USER_ACTION_TIMEOUT: u8 = 0x2F;
/// U2F status word: conditions of use not satisfied (no user presence).
pub const U2F_SW_CONDITIONS_NOT_SATISFIED: [u8; 2] = [0x69, 0x85];

/// The longest `LOCK` the host may ask for, in seconds.
pub const MAX_LOCK_SECONDS: u8 = 10;

/// A request waiting for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PresenceWait {
    cid: u32,
    protocol: Protocol,
    started_ms: u64,
    next_keepalive_ms: u64,
    next_poll_ms: u64,
}

/// Why a presence wait ended without approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitEnd {
    Denied,
    TimedOut,
    Cancelled,
}

/// The open transaction, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Assembling(Assembly),
    AwaitingPresence(PresenceWait),
}

impl State {
    fn cid(&self) -> Option<u32> {
        match self {
            State::Idle => None,
            State::Assembling(assembly) => Some(assembly.cid()),
            State::AwaitingPresence(wait) => Some(wait.cid),
        }
    }
}

/// A `LOCK` held by one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChannelLock {
    cid: u32,
    until_ms: u64,
}

/// The CTAPHID transport: channels, one open transaction, and the output queue.
///
/// The app is passed into each call rather than owned, so that
/// [`crate::device::Device`] can hand it out independently.
pub struct Transport {
    config: Config,
    channels: ChannelTable,
    state: State,
    lock: Option<ChannelLock>,
    request: Message,
    outbox: Outbox,
}

impl Transport {
    /// A transport with no channels.
    pub const fn new(config: Config) -> Self {
        Transport {
            config,
            channels: ChannelTable::new(),
            state: State::Idle,
            lock: None,
            request: Message::new(),
            outbox: Outbox::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Processes one OUT report from the host.
    ///
    /// A continuation packet of the message being assembled is taken even
    /// when it is processed after the message's deadline, as long as no tick
    /// has expired the message yet: the packet reached the key before the
    /// key's timer did (a simulated key whose task was held back by other
    /// work would otherwise blame the host for its own delay). Any other
    /// packet first expires what is due, so a stale transaction cannot refuse
    /// it.
    pub fn handle_report<A: App>(&mut self, app: &mut A, report: &Report, now_ms: u64) {
        let packet = Packet::parse(report);
        if !self.continues_assembly(&packet) {
            self.tick(app, now_ms);
        }
        match packet {
            Packet::Init {
                cid,
                cmd,
                bcnt,
                data,
            } => self.on_init_packet(app, cid, cmd, bcnt, data, now_ms),
            Packet::Cont { cid, seq, data } => {
                if cid == RESERVED_CID {
                    self.outbox.push_error(cid, HidError::InvalidChannel);
                    return;
                }
                let State::Assembling(mut assembly) = self.state else {
                    return;
                };
                if assembly.cid() != cid {
                    return;
                }
                match assembly.push(seq, data, now_ms, &mut self.request) {
                    Ok(Progress::Complete) => {
                        self.state = State::Idle;
                        self.dispatch(app, cid, assembly.command(), now_ms);
                    }
                    Ok(Progress::Incomplete) => self.state = State::Assembling(assembly),
                    Err(error) => {
                        self.state = State::Idle;
                        self.outbox.push_error(cid, error);
                    }
                }
            }
        }
    }

    /// Whether `packet` is the next part of the message being assembled.
    fn continues_assembly(&self, packet: &Packet<'_>) -> bool {
        match (self.state, packet) {
            (State::Assembling(assembly), Packet::Cont { cid, .. }) => assembly.cid() == *cid,
            _ => false,
        }
    }

    fn on_init_packet<A: App>(
        &mut self,
        app: &mut A,
        cid: u32,
        cmd: u8,
        bcnt: u16,
        data: &[u8; INIT_DATA_SIZE],
        now_ms: u64,
    ) {
        if let Err(error) = self.try_init_packet(app, cid, cmd, bcnt, data, now_ms) {
            self.outbox.push_error(cid, error);
        }
    }

    fn try_init_packet<A: App>(
        &mut self,
        app: &mut A,
        cid: u32,
        cmd: u8,
        bcnt: u16,
        data: &[u8; INIT_DATA_SIZE],
        now_ms: u64,
    ) -> Result<(), HidError> {
        if cid == RESERVED_CID {
            return Err(HidError::InvalidChannel);
        }
        let command = Command::from_code(cmd);
        if command == Some(Command::Init) {
            return self.on_init(app, cid, bcnt, data, now_ms);
        }
        if cid == BROADCAST_CID || !self.channels.touch(cid) {
            return Err(HidError::InvalidChannel);
        }
        if command == Some(Command::Cancel) {
            self.on_cancel(app, cid, now_ms);
            return Ok(());
        }
        self.check_not_busy(cid, now_ms)?;
        match self.state {
            State::Assembling(_) => {
                // A new request interrupts the one still arriving on this channel.
                self.state = State::Idle;
                return Err(HidError::InvalidSeq);
            }
            State::AwaitingPresence(_) => return Err(HidError::ChannelBusy),
            State::Idle => {}
        }
        let command = command
            .filter(|command| command.is_request())
            .filter(|command| *command != Command::Cbor || app.supports_cbor())
            .ok_or(HidError::InvalidCmd)?;
        match command {
            Command::Lock if bcnt != 1 => return Err(HidError::InvalidLen),
            Command::Cbor if bcnt == 0 => return Err(HidError::InvalidLen),
            _ => {}
        }
        // The host moved on from any response of ours it had not finished reading.
        if self.outbox.response_in_flight().map(|(owner, _)| owner) == Some(cid) {
            self.outbox.discard_response();
        }
        let (assembly, progress) =
            Assembly::start(cid, command, bcnt, data, now_ms, &mut self.request)?;
        match progress {
            Progress::Complete => self.dispatch(app, cid, command, now_ms),
            Progress::Incomplete => self.state = State::Assembling(assembly),
        }
        Ok(())
    }

    /// Refuses a request from `cid` while another channel holds the device.
    fn check_not_busy(&mut self, cid: u32, now_ms: u64) -> Result<(), HidError> {
        if self.locked_by_other(cid, now_ms) {
            return Err(HidError::ChannelBusy);
        }
        if self.state.cid().is_some_and(|owner| owner != cid) {
            return Err(HidError::ChannelBusy);
        }
        if let Some((owner, committed_ms)) = self.outbox.response_in_flight() {
            if owner != cid {
                let age = now_ms.saturating_sub(committed_ms);
                if age < self.config.timing.stale_response_ms {
                    return Err(HidError::ChannelBusy);
                }
                self.outbox.discard_response();
            }
        }
        Ok(())
    }

    fn locked_by_other(&mut self, cid: u32, now_ms: u64) -> bool {
        match self.lock {
            Some(lock) if now_ms >= lock.until_ms => {
                self.lock = None;
                false
            }
            Some(lock) => lock.cid != cid,
            None => false,
        }
    }

    /// `INIT`: allocate a channel (broadcast) or resynchronize `cid`.
    fn on_init<A: App>(
        &mut self,
        app: &mut A,
        cid: u32,
        bcnt: u16,
        data: &[u8; INIT_DATA_SIZE],
        now_ms: u64,
    ) -> Result<(), HidError> {
        if self.locked_by_other(cid, now_ms) {
            return Err(HidError::ChannelBusy);
        }
        if bcnt != 8 {
            return Err(HidError::InvalidLen);
        }
        let [n0, n1, n2, n3, n4, n5, n6, n7, ..] = *data;
        // The channel with an open transaction and the lock holder are never evicted.
        let busy = self.state.cid();
        let locked = self.lock.map(|lock| lock.cid);
        let protected = |c| Some(c) == busy || Some(c) == locked;
        let channel = if cid == BROADCAST_CID {
            self.channels
                .allocate(protected)
                .ok_or(HidError::ChannelBusy)?
                .cid
        } else {
            self.channels
                .adopt(cid, protected)
                .ok_or(HidError::ChannelBusy)?;
            if busy == Some(cid) {
                self.abort_transaction(app);
            }
            self.outbox.purge_channel(cid);
            cid
        };
        let version = self.config.version;
        let mut capabilities = CAPABILITY_WINK;
        if app.supports_cbor() {
            capabilities |= CAPABILITY_CBOR;
        }
        if !app.supports_ctap1() {
            capabilities |= CAPABILITY_NMSG;
        }
        let [c0, c1, c2, c3] = channel.to_be_bytes();
        let response = [
            n0,
            n1,
            n2,
            n3,
            n4,
            n5,
            n6,
            n7,
            c0,
            c1,
            c2,
            c3,
            PROTOCOL_VERSION,
            version.major,
            version.minor,
            version.build,
            capabilities,
        ];
        self.outbox.push_short(cid, Command::Init, &response);
        Ok(())
    }

    /// `CANCEL` from allocated channel `cid`.
    fn on_cancel<A: App>(&mut self, app: &mut A, cid: u32, now_ms: u64) {
        match self.state {
            State::AwaitingPresence(wait) if wait.cid == cid => {
                app.cancel_presence();
                self.end_wait(wait, WaitEnd::Cancelled, now_ms);
            }
            State::Assembling(assembly) if assembly.cid() == cid => self.state = State::Idle,
            _ => {}
        }
    }

    /// Drops the open transaction, withdrawing any presence request.
    fn abort_transaction<A: App>(&mut self, app: &mut A) {
        if let State::AwaitingPresence(_) = self.state {
            app.cancel_presence();
        }
        self.state = State::Idle;
    }

    /// Runs a complete request held in `self.request`.
    fn dispatch<A: App>(&mut self, app: &mut A, cid: u32, command: Command, now_ms: u64) {
        self.state = State::Idle;
        match command {
            Command::Ping => {
                let response = self.outbox.begin_response();
                // Both buffers have the same capacity, so the echo always fits.
                let _fits = response.extend_from_slice(&self.request);
                self.outbox.commit_response(cid, Command::Ping, now_ms);
            }
            Command::Wink => {
                app.wink();
                self.outbox.send_response(cid, Command::Wink, &[], now_ms);
            }
            Command::Lock => self.on_lock(cid, now_ms),
            Command::Msg => self.call_app(app, cid, Protocol::Msg, false, now_ms),
            Command::Cbor => self.call_app(app, cid, Protocol::Cbor, false, now_ms),
            Command::Init | Command::Cancel | Command::Keepalive | Command::Error => {
                self.outbox.push_error(cid, HidError::InvalidCmd);
            }
        }
    }

    /// `LOCK`: lock the device to `cid` for N seconds (0 unlocks).
    fn on_lock(&mut self, cid: u32, now_ms: u64) {
        let seconds = self.request.first().copied().unwrap_or(0);
        if seconds > MAX_LOCK_SECONDS {
            self.outbox.push_error(cid, HidError::InvalidPar);
            return;
        }
        self.lock = (seconds > 0).then(|| ChannelLock {
            cid,
            until_ms: now_ms.saturating_add(u64::from(seconds) * 1000),
        });
        self.outbox.send_response(cid, Command::Lock, &[], now_ms);
    }

    /// Hands the request to the app; starts a presence wait if it asks for one.
    fn call_app<A: App>(
        &mut self,
        app: &mut A,
        cid: u32,
        protocol: Protocol,
        up_granted: bool,
        now_ms: u64,
    ) {
        let context = CallContext {
            now_ms,
            up_granted,
            channel: cid,
        };
        let response = self.outbox.begin_response();
        match app.handle(protocol, &self.request, context, response) {
            Outcome::Response => {
                self.outbox
                    .commit_response(cid, command_for(protocol), now_ms);
            }
            Outcome::NeedsPresence => {
                response.clear();
                app.request_presence(now_ms);
                self.outbox.push_keepalive(cid, KeepaliveStatus::UpNeeded);
                let timing = self.config.timing;
                self.state = State::AwaitingPresence(PresenceWait {
                    cid,
                    protocol,
                    started_ms: now_ms,
                    next_keepalive_ms: now_ms.saturating_add(timing.keepalive_interval_ms),
                    next_poll_ms: now_ms,
                });
                // The answer may already be there (an auto-approving platform).
                // Not after an approval, though: an app that asks again right
                // after approving must not recurse; the next tick polls.
                if !up_granted {
                    self.service_presence(app, now_ms);
                }
            }
        }
    }

    /// Polls presence, and sends the outcome or the next KEEPALIVE.
    fn service_presence<A: App>(&mut self, app: &mut A, now_ms: u64) {
        let State::AwaitingPresence(mut wait) = self.state else {
            return;
        };
        let timing = self.config.timing;
        match app.poll_presence(now_ms) {
            PresenceStatus::Approved => {
                self.state = State::Idle;
                self.call_app(app, wait.cid, wait.protocol, true, now_ms);
                return;
            }
            PresenceStatus::Denied => {
                self.end_wait(wait, WaitEnd::Denied, now_ms);
                return;
            }
            PresenceStatus::Pending => {}
        }
        if now_ms >= wait.started_ms.saturating_add(timing.presence_timeout_ms) {
            app.cancel_presence();
            self.end_wait(wait, WaitEnd::TimedOut, now_ms);
            return;
        }
        if now_ms >= wait.next_keepalive_ms {
            self.outbox
                .push_keepalive(wait.cid, KeepaliveStatus::UpNeeded);
            wait.next_keepalive_ms = now_ms.saturating_add(timing.keepalive_interval_ms);
        }
        wait.next_poll_ms = now_ms.saturating_add(timing.presence_poll_interval_ms);
        self.state = State::AwaitingPresence(wait);
    }

    /// Answers a request whose presence wait ended without approval.
    fn end_wait(&mut self, wait: PresenceWait, end: WaitEnd, now_ms: u64) {
        self.state = State::Idle;
        let cbor_status = [match end {
            WaitEnd::Denied => CTAP2_ERR_OPERATION_DENIED,
            WaitEnd::TimedOut => CTAP2_ERR_USER_ACTION_TIMEOUT,
            WaitEnd::Cancelled => CTAP2_ERR_KEEPALIVE_CANCEL,
        }];
        let payload: &[u8] = match wait.protocol {
            Protocol::Cbor => &cbor_status,
            Protocol::Msg => &U2F_SW_CONDITIONS_NOT_SATISFIED,
        };
        self.outbox
            .send_response(wait.cid, command_for(wait.protocol), payload, now_ms);
    }

    /// Drives the timers: message timeout, presence polling, keepalives and
    /// the presence timeout. Calling it early or often is harmless.
    pub fn tick<A: App>(&mut self, app: &mut A, now_ms: u64) {
        match self.state {
            State::Idle => {}
            State::Assembling(assembly) => {
                if now_ms >= assembly.deadline(self.config.timing.message_timeout_ms) {
                    self.state = State::Idle;
                    self.outbox.push_error(assembly.cid(), HidError::MsgTimeout);
                }
            }
            State::AwaitingPresence(_) => self.service_presence(app, now_ms),
        }
    }

    /// When [`Transport::tick`] must run next; `None` when nothing is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        let timing = &self.config.timing;
        match self.state {
            State::Idle => None,
            State::Assembling(assembly) => Some(assembly.deadline(timing.message_timeout_ms)),
            State::AwaitingPresence(wait) => Some(
                wait.next_keepalive_ms
                    .min(wait.next_poll_ms)
                    .min(wait.started_ms.saturating_add(timing.presence_timeout_ms)),
            ),
        }
    }

    /// The next IN report for the host, if any.
    pub fn next_report(&mut self) -> Option<Report> {
        self.outbox.next_report()
    }

    /// Drops all channels, partial messages, queued output, locks and waits
    /// (withdrawing a presence request), then tells the app.
    pub fn reset<A: App>(&mut self, app: &mut A) {
        self.abort_transaction(app);
        self.channels.clear();
        self.lock = None;
        self.request.clear();
        self.outbox.clear();
        app.transport_reset();
    }

    /// Whether a transaction is open or output waits for the host.
    pub fn has_pending_work(&self) -> bool {
        self.state != State::Idle || !self.outbox.is_empty()
    }

    /// Whether a request is waiting for user presence.
    pub fn is_awaiting_presence(&self) -> bool {
        matches!(self.state, State::AwaitingPresence(_))
    }

    /// How many channels are allocated.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// How many short reports (errors, keepalives, INIT responses) were
    /// dropped because the host did not read them.
    pub fn dropped_reports(&self) -> u32 {
        self.outbox.dropped_reports()
    }
}

/// The CTAPHID command that carries a protocol's response.
const fn command_for(protocol: Protocol) -> Command {
    match protocol {
        Protocol::Cbor => Command::Cbor,
        Protocol::Msg => Command::Msg,
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
