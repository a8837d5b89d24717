//! Responses on their way to the host, as a lossless, bounded stream of IN reports.
//!
//! Two kinds of output share one FIFO order:
//! - *Short messages* that fit one report (INIT responses, ERRORs, KEEPALIVEs)
//!   are framed at once into a bounded queue of reports. When that queue is
//!   full a new short message is dropped (and counted); KEEPALIVEs for a
//!   channel are coalesced while one is still queued for it.
//! - The *response* of a transaction (PING, MSG, CBOR, WINK, LOCK) is written
//!   into the one response buffer and fragmented lazily as the host reads it,
//!   so a 7609-byte response (129 reports) never needs 129 queued reports and
//!   is never dropped.
//!
//! A response comes out after the short messages queued before it, and before
//! those queued after it.

use heapless::Deque;

use super::command::{Command, KeepaliveStatus};
use super::error::HidError;
use super::packet::{init_report, Fragmenter, Report, INIT_DATA_SIZE};
use crate::app::Message;

/// How many single-report messages can wait in the queue.
pub const QUEUE_CAPACITY: usize = 32;

/// The transaction response being sent.
#[derive(Clone, Copy, Debug)]
struct PendingResponse {
    cursor: Fragmenter,
    /// Queued short reports that go out before this response.
    reports_ahead: usize,
    /// When the response was committed (caller's clock).
    committed_ms: u64,
}

/// Output waiting for the host (see the module documentation).
pub struct Outbox {
    queue: Deque<Report, QUEUE_CAPACITY>,
    response: Message,
    pending: Option<PendingResponse>,
    dropped: u32,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    /// An empty outbox.
    pub const fn new() -> Self {
        Outbox {
            queue: Deque::new(),
            response: Message::new(),
            pending: None,
            dropped: 0,
        }
    }

    /// Queues a message that fits one report (at most 57 bytes; longer data is
    /// cut to 57 bytes with BCNT saying so). Returns false if it was dropped
    /// because the queue is full.
    pub fn push_short(&mut self, cid: u32, command: Command, payload: &[u8]) -> bool {
        let len = payload.len().min(INIT_DATA_SIZE);
        let bcnt = u16::try_from(len).unwrap_or(0);
        let report = init_report(cid, command.code(), bcnt, payload);
        if self.queue.push_back(report).is_err() {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        true
    }

    /// Queues an `ERROR` report.
    pub fn push_error(&mut self, cid: u32, error: HidError) -> bool {
        self.push_short(cid, Command::Error, &[error.code()])
    }

    /// Queues a `KEEPALIVE` report, unless one for `cid` is still waiting in the queue.
    pub fn push_keepalive(&mut self, cid: u32, status: KeepaliveStatus) -> bool {
        let already_queued = self
            .queue
            .iter()
            .any(|report| report_cid(report) == cid && is_keepalive(report));
        already_queued || self.push_short(cid, Command::Keepalive, &[status.code()])
    }

    /// The response buffer, emptied, for the next transaction response. Any
    /// response still being sent is abandoned. Call [`Outbox::commit_response`]
    /// to send what was written.
    pub fn begin_response(&mut self) -> &mut Message {
        self.pending = None;
        self.response.clear();
        &mut self.response
    }

    /// Sends the contents of the response buffer to channel `cid` as `command`.
    pub fn commit_response(&mut self, cid: u32, command: Command, now_ms: u64) {
        self.pending = Some(PendingResponse {
            cursor: Fragmenter::new(cid, command.code()),
            reports_ahead: self.queue.len(),
            committed_ms: now_ms,
        });
    }

    /// Writes `payload` as the transaction response for `cid` and sends it.
    pub fn send_response(&mut self, cid: u32, command: Command, payload: &[u8], now_ms: u64) {
        let buffer = self.begin_response();
        // The payloads the transport sends this way are a few bytes long.
        let _fits = buffer.extend_from_slice(payload);
        self.commit_response(cid, command, now_ms);
    }

    /// The channel and commit time of the response still being sent, if any.
    pub fn response_in_flight(&self) -> Option<(u32, u64)> {
        self.pending
            .as_ref()
            .map(|pending| (pending.cursor.cid(), pending.committed_ms))
    }

    /// Drops the rest of the response still being sent, if any.
    pub fn discard_response(&mut self) {
        self.pending = None;
    }

    /// Drops everything queued for channel `cid`, including its response.
    pub fn purge_channel(&mut self, cid: u32) {
        if self.response_in_flight().map(|(owner, _)| owner) == Some(cid) {
            self.pending = None;
        }
        let ahead_before = self.pending.map_or(0, |p| p.reports_ahead);
        let mut ahead = ahead_before;
        for index in 0..self.queue.len() {
            let Some(report) = self.queue.pop_front() else {
                break;
            };
            if report_cid(&report) == cid {
                if index < ahead_before {
                    ahead = ahead.saturating_sub(1);
                }
            } else {
                // Cannot fail: one slot was just freed.
                let _ = self.queue.push_back(report);
            }
        }
        if let Some(pending) = self.pending.as_mut() {
            pending.reports_ahead = ahead;
        }
    }

    /// The next IN report for the host, in order.
    pub fn next_report(&mut self) -> Option<Report> {
        if let Some(pending) = self.pending.as_mut() {
            if pending.reports_ahead == 0 {
                let report = pending.cursor.next_report(&self.response);
                if pending.cursor.is_done(&self.response) || report.is_none() {
                    self.pending = None;
                }
                if report.is_some() {
                    return report;
                }
            }
        }
        let report = self.queue.pop_front()?;
        if let Some(pending) = self.pending.as_mut() {
            pending.reports_ahead = pending.reports_ahead.saturating_sub(1);
        }
        Some(report)
    }

    /// Whether nothing is waiting for the host.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.pending.is_none()
    }

    /// How many short messages were dropped because the queue was full.
    pub fn dropped_reports(&self) -> u32 {
        self.dropped
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.pending = None;
        self.response.clear();
    }
}

fn report_cid(report: &Report) -> u32 {
    let [c0, c1, c2, c3, ..] = *report;
    u32::from_be_bytes([c0, c1, c2, c3])
}

fn is_keepalive(report: &Report) -> bool {
    let [_, _, _, _, kind, ..] = *report;
    kind == Command::Keepalive.wire_byte()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctaphid::packet::{reports_for, Packet};

    fn drain(outbox: &mut Outbox) -> std::vec::Vec<Report> {
        core::iter::from_fn(|| outbox.next_report()).collect()
    }

    fn kinds(reports: &[Report]) -> std::vec::Vec<(u32, u8)> {
        reports.iter().map(|r| (report_cid(r), r[4])).collect()
    }

    #[test]
    fn short_messages_come_out_in_order() {
        let mut outbox = Outbox::new();
        assert!(outbox.is_empty());
        outbox.push_error(1, HidError::InvalidCmd);
        outbox.push_short(2, Command::Init, &[7; 17]);
        let reports = drain(&mut outbox);
        assert_eq!(kinds(&reports), [(1, 0xBF), (2, 0x86)]);
        assert_eq!(&reports[0][5..8], &[0, 1, 0x01]);
        assert_eq!(&reports[1][5..7], &[0, 17]);
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_full_response_is_fragmented_losslessly() {
        let mut outbox = Outbox::new();
        let buffer = outbox.begin_response();
        buffer.resize(7609, 0x5A).unwrap();
        outbox.commit_response(9, Command::Cbor, 0);
        let reports = drain(&mut outbox);
        assert_eq!(reports.len(), reports_for(7609));
        assert_eq!(reports.len(), 129);
        assert!(matches!(
            Packet::parse(&reports[0]),
            Packet::Init { bcnt: 7609, .. }
        ));
        assert!(matches!(
            Packet::parse(&reports[128]),
            Packet::Cont { seq: 127, .. }
        ));
        assert!(outbox.is_empty());
    }

    #[test]
    fn an_empty_response_is_one_report() {
        let mut outbox = Outbox::new();
        outbox.send_response(3, Command::Wink, &[], 0);
        let reports = drain(&mut outbox);
        assert_eq!(kinds(&reports), [(3, 0x88)]);
        assert_eq!(&reports[0][5..7], &[0, 0]);
    }

    #[test]
    fn the_response_keeps_its_place_in_the_fifo() {
        let mut outbox = Outbox::new();
        outbox.push_keepalive(5, KeepaliveStatus::UpNeeded);
        outbox.send_response(5, Command::Cbor, &[0u8; 100], 0);
        outbox.push_error(6, HidError::ChannelBusy);
        let reports = drain(&mut outbox);
        assert_eq!(
            kinds(&reports),
            [(5, 0xBB), (5, 0x90), (5, 0x00), (6, 0xBF)]
        );
    }

    #[test]
    fn keepalives_are_coalesced_per_channel() {
        let mut outbox = Outbox::new();
        for _ in 0..10 {
            outbox.push_keepalive(5, KeepaliveStatus::UpNeeded);
            outbox.push_keepalive(6, KeepaliveStatus::Processing);
        }
        assert_eq!(drain(&mut outbox).len(), 2);
        outbox.push_keepalive(5, KeepaliveStatus::UpNeeded);
        assert_eq!(
            drain(&mut outbox).len(),
            1,
            "a new one after the last was read"
        );
    }

    #[test]
    fn a_full_queue_drops_new_short_messages_but_never_the_response() {
        let mut outbox = Outbox::new();
        for i in 0..QUEUE_CAPACITY {
            assert!(outbox.push_error(i as u32 + 1, HidError::InvalidChannel));
        }
        assert!(!outbox.push_error(999, HidError::InvalidChannel));
        assert_eq!(outbox.dropped_reports(), 1);
        outbox.send_response(7, Command::Ping, &[1u8; 200], 0);
        let reports = drain(&mut outbox);
        assert_eq!(reports.len(), QUEUE_CAPACITY + reports_for(200));
        assert_eq!(report_cid(reports.last().unwrap()), 7);
    }

    #[test]
    fn purging_a_channel_keeps_the_order_of_the_others() {
        let mut outbox = Outbox::new();
        outbox.push_error(1, HidError::InvalidSeq);
        outbox.push_error(2, HidError::InvalidSeq);
        outbox.send_response(3, Command::Ping, &[0u8; 10], 0);
        outbox.push_error(1, HidError::InvalidSeq);
        outbox.purge_channel(1);
        assert_eq!(kinds(&drain(&mut outbox)), [(2, 0xBF), (3, 0x81)]);

        outbox.send_response(4, Command::Ping, &[0u8; 100], 0);
        outbox.push_error(5, HidError::InvalidSeq);
        assert_eq!(outbox.response_in_flight(), Some((4, 0)));
        outbox.purge_channel(4);
        assert_eq!(outbox.response_in_flight(), None);
        assert_eq!(kinds(&drain(&mut outbox)), [(5, 0xBF)]);
    }

    #[test]
    fn purging_reports_ahead_of_the_response_lets_it_go_next() {
        let mut outbox = Outbox::new();
        outbox.push_error(1, HidError::InvalidSeq);
        outbox.push_error(1, HidError::InvalidSeq);
        outbox.send_response(3, Command::Ping, &[0u8; 10], 0);
        outbox.push_error(2, HidError::InvalidSeq);
        outbox.purge_channel(1);
        assert_eq!(kinds(&drain(&mut outbox)), [(3, 0x81), (2, 0xBF)]);
    }

    #[test]
    fn a_discarded_response_sends_nothing_more_and_the_queue_goes_on() {
        let mut outbox = Outbox::new();
        outbox.send_response(1, Command::Ping, &[0u8; 500], 0);
        let _first = outbox.next_report().unwrap();
        outbox.push_error(2, HidError::Other);
        outbox.discard_response();
        assert_eq!(outbox.response_in_flight(), None);
        assert_eq!(kinds(&drain(&mut outbox)), [(2, 0xBF)]);
        assert!(outbox.is_empty());
    }

    #[test]
    fn emptiness_counts_the_queue_and_the_response_and_ends_with_the_last_report() {
        let mut outbox = Outbox::new();
        assert!(outbox.is_empty());
        outbox.push_error(1, HidError::Other);
        assert!(!outbox.is_empty(), "a queued report");
        drain(&mut outbox);
        outbox.send_response(2, Command::Ping, &[0u8; 100], 0);
        assert!(!outbox.is_empty(), "a response");
        for _ in 0..reports_for(100) {
            assert!(outbox.next_report().is_some());
        }
        assert_eq!(
            outbox.response_in_flight(),
            None,
            "done with its last report"
        );
        assert!(outbox.is_empty());
    }

    #[test]
    fn only_a_waiting_keepalive_holds_back_another() {
        let mut outbox = Outbox::new();
        outbox.push_error(5, HidError::Other);
        outbox.push_keepalive(5, KeepaliveStatus::UpNeeded);
        assert_eq!(kinds(&drain(&mut outbox)), [(5, 0xBF), (5, 0xBB)]);
    }

    #[test]
    fn begin_response_abandons_the_previous_one() {
        let mut outbox = Outbox::new();
        outbox.send_response(1, Command::Ping, &[0u8; 500], 0);
        let _first = outbox.next_report().unwrap();
        outbox.send_response(2, Command::Ping, &[1u8; 3], 10);
        assert_eq!(kinds(&drain(&mut outbox)), [(2, 0x81)]);
    }

    #[test]
    fn clear_drops_everything() {
        let mut outbox = Outbox::new();
        outbox.push_error(1, HidError::Other);
        outbox.send_response(1, Command::Ping, &[0u8; 500], 0);
        outbox.clear();
        assert!(outbox.is_empty());
        assert_eq!(outbox.next_report(), None);
    }
}
