//! Tests of the transaction state machine, driven through [`crate::device::Device`]
//! with a mock app and a manual clock.

use std::vec::Vec;

use super::*;
use crate::app::MAX_MESSAGE_SIZE;
use crate::ctaphid::config::DeviceVersion;
use crate::ctaphid::packet::{cont_report, init_report};
use crate::ctaphid::test_support::{packets, Harness, Reply, NEEDS_PRESENCE};

const ERROR: u8 = 0x3F;
const KEEPALIVE: u8 = 0x3B;

fn error(cid: u32, error: HidError) -> Reply {
    Reply {
        cid,
        cmd: ERROR,
        payload: std::vec![error.code()],
    }
}

fn cbor_reply(cid: u32, payload: &[u8]) -> Reply {
    Reply {
        cid,
        cmd: Command::Cbor.code(),
        payload: payload.to_vec(),
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 256) as u8).collect()
}

// ---- INIT -----------------------------------------------------------------

#[test]
fn init_on_broadcast_allocates_distinct_channels_and_echoes_the_nonce() {
    let mut h = Harness::new();
    let mut seen = Vec::new();
    for i in 0..10u8 {
        let nonce = [i, 0xA5, 2, 3, 4, 5, 6, i];
        h.send_message(BROADCAST_CID, Command::Init, &nonce);
        let reply = h.reply();
        assert_eq!((reply.cid, reply.cmd), (BROADCAST_CID, 0x06));
        assert_eq!(reply.payload.len(), 17);
        assert_eq!(&reply.payload[..8], &nonce);
        let cid = u32::from_be_bytes(reply.payload[8..12].try_into().unwrap());
        assert!(cid != 0 && cid != BROADCAST_CID && !seen.contains(&cid));
        seen.push(cid);
    }
    assert_eq!(h.device.transport().channel_count(), 10);
}

#[test]
fn init_reports_version_and_capabilities() {
    let config = Config {
        version: DeviceVersion {
            major: 3,
            minor: 1,
            build: 4,
        },
        ..Config::default()
    };
    let mut h = Harness::with_config(config);
    h.send_message(BROADCAST_CID, Command::Init, &[9; 8]);
    let reply = h.reply();
    assert_eq!(&reply.payload[12..], &[2, 3, 1, 4, 0x01 | 0x04]);

    h.app().ctap1 = false;
    h.send_message(BROADCAST_CID, Command::Init, &[9; 8]);
    let reply = h.reply();
    assert_eq!(reply.payload[16], 0x01 | 0x04 | 0x08, "NMSG without U2F");
}

#[test]
fn a_u2f_only_app_has_no_cbor_capability_and_cbor_is_an_invalid_command() {
    let mut h = Harness::new();
    h.app().cbor = false;
    h.send_message(BROADCAST_CID, Command::Init, &[9; 8]);
    let reply = h.reply();
    assert_eq!(reply.payload[16], 0x01, "WINK only: no CBOR, no NMSG");
    let cid = u32::from_be_bytes([
        reply.payload[8],
        reply.payload[9],
        reply.payload[10],
        reply.payload[11],
    ]);
    h.send_message(cid, Command::Cbor, &[0x04]);
    let reply = h.reply();
    assert_eq!((reply.cmd, reply.payload.as_slice()), (0x3F, &[0x01u8][..]));
    assert!(
        h.app().calls.is_empty(),
        "the app never saw the CBOR request"
    );
    // U2F still reaches the app.
    h.send_message(cid, Command::Msg, &[0x00, 0x03, 0, 0]);
    let _ = h.reply();
    assert_eq!(h.app().calls.len(), 1);
}

#[test]
fn init_on_an_existing_channel_resyncs_it() {
    let mut h = Harness::new();
    let cid = h.init();
    // Start a long PING, then resync in the middle of it.
    let reports = packets(cid, Command::Ping.code(), &payload(300));
    h.send(&reports[0]);
    h.send(&reports[1]);
    h.send_message(cid, Command::Init, &[7; 8]);
    let reply = h.reply();
    assert_eq!((reply.cid, reply.cmd), (cid, 0x06));
    assert_eq!(&reply.payload[..8], &[7; 8]);
    assert_eq!(&reply.payload[8..12], &cid.to_be_bytes(), "same channel");
    // The aborted message's remaining packets are ignored...
    for report in &reports[2..] {
        h.send(report);
    }
    assert_eq!(h.replies(), []);
    assert_eq!(h.device.next_deadline(), None, "nothing pending");
    // ...and the channel works.
    h.send_message(cid, Command::Ping, b"ok");
    assert_eq!(h.reply().payload, b"ok");
}

#[test]
fn init_with_a_bad_length_is_refused() {
    let mut h = Harness::new();
    h.send_message(BROADCAST_CID, Command::Init, &[1; 7]);
    assert_eq!(h.reply(), error(BROADCAST_CID, HidError::InvalidLen));
    h.send_message(0x1234_5678, Command::Init, &[1; 9]);
    assert_eq!(h.reply(), error(0x1234_5678, HidError::InvalidLen));
    assert_eq!(h.device.transport().channel_count(), 0);
}

/// The INIT reply on `cid`, checked: same nonce, same channel.
fn assert_resynced(h: &mut Harness, cid: u32, nonce: [u8; 8]) {
    let reply = h.reply();
    assert_eq!((reply.cid, reply.cmd), (cid, 0x06), "{reply:?}");
    assert_eq!(&reply.payload[..8], &nonce);
    assert_eq!(
        &reply.payload[8..12],
        &cid.to_be_bytes(),
        "the same channel"
    );
}

#[test]
fn init_on_a_channel_the_key_does_not_know_takes_it() {
    // Issue 10 §1 defect 11: a host that picked its own channel id (or kept
    // one across a reset) resynchronizes instead of failing.
    let mut h = Harness::new();
    h.send_message(0x1234_5678, Command::Init, &[4; 8]);
    assert_resynced(&mut h, 0x1234_5678, [4; 8]);
    assert_eq!(h.device.transport().channel_count(), 1);
    h.send_message(0x1234_5678, Command::Ping, b"mine");
    assert_eq!(h.reply().payload, b"mine");
    // After a transport reset the old id is unknown again, and INIT brings it back.
    h.device.reset();
    h.send_message(0x1234_5678, Command::Ping, b"x");
    assert_eq!(h.reply(), error(0x1234_5678, HidError::InvalidChannel));
    h.send_message(0x1234_5678, Command::Init, &[5; 8]);
    assert_resynced(&mut h, 0x1234_5678, [5; 8]);
    h.send_message(0x1234_5678, Command::Ping, b"back");
    assert_eq!(h.reply().payload, b"back");
}

#[test]
fn a_host_whose_channel_was_evicted_resyncs_it_and_the_key_keeps_16() {
    let mut h = Harness::new();
    let first = h.init();
    let others: Vec<u32> = (0..crate::ctaphid::channels::MAX_CHANNELS)
        .map(|_| h.init())
        .collect();
    h.send_message(first, Command::Ping, b"x");
    assert_eq!(h.reply(), error(first, HidError::InvalidChannel), "evicted");
    h.send_message(first, Command::Init, &[6; 8]);
    assert_resynced(&mut h, first, [6; 8]);
    assert_eq!(
        h.device.transport().channel_count(),
        crate::ctaphid::channels::MAX_CHANNELS
    );
    h.send_message(first, Command::Ping, b"again");
    assert_eq!(h.reply().payload, b"again");
    // The least recently used of the others made room.
    h.send_message(others[0], Command::Ping, b"x");
    assert_eq!(h.reply(), error(others[0], HidError::InvalidChannel));
    h.send_message(others[1], Command::Ping, b"y");
    assert_eq!(h.reply().payload, b"y");
}

#[test]
fn init_on_another_channel_leaves_a_busy_channel_alone() {
    // A waits for the user; INIT on a channel the key knows and on one it
    // does not: both are answered, and A's wait goes on.
    let mut h = Harness::new();
    let known = h.init();
    let a = start_presence_wait(&mut h, Command::Cbor);
    for cid in [known, 0x0BAD_F00D] {
        h.send_message(cid, Command::Init, &[7; 8]);
        assert_resynced(&mut h, cid, [7; 8]);
    }
    assert!(h.device.is_awaiting_presence());
    assert_eq!(h.app().presence_cancels, 0);
    h.send_message(0x0BAD_F00D, Command::Ping, b"p");
    assert_eq!(h.reply(), error(0x0BAD_F00D, HidError::ChannelBusy));
    h.app().presence = crate::platform::PresenceStatus::Approved;
    h.advance(100);
    let last = h.replies().pop().unwrap();
    assert_eq!((last.cid, last.cmd), (a, Command::Cbor.code()));
    assert_eq!(last.payload, [0x00, 0x01, NEEDS_PRESENCE, 7]);

    // A message still arriving on one channel survives an INIT on another.
    let reports = packets(a, Command::Ping.code(), &payload(300));
    h.send(&reports[0]);
    h.send_message(0x0BAD_F00D, Command::Init, &[8; 8]);
    assert_resynced(&mut h, 0x0BAD_F00D, [8; 8]);
    for report in &reports[1..] {
        h.send(report);
    }
    assert_eq!(h.reply().payload, payload(300));
}

#[test]
fn a_lock_holds_off_init_on_other_channels() {
    let mut h = Harness::new();
    let a = h.init();
    h.send_message(a, Command::Lock, &[3]);
    h.reply();
    h.send_message(0x0BAD_F00D, Command::Init, &[9; 8]);
    assert_eq!(h.reply(), error(0x0BAD_F00D, HidError::ChannelBusy));
    assert_eq!(h.device.transport().channel_count(), 1);
    h.send_message(a, Command::Init, &[9; 8]);
    assert_resynced(&mut h, a, [9; 8]);
}

#[test]
fn a_full_channel_table_evicts_the_least_recently_used_channel() {
    let mut h = Harness::new();
    let first = h.init();
    let others: Vec<u32> = (0..crate::ctaphid::channels::MAX_CHANNELS)
        .map(|_| h.init())
        .collect();
    assert_eq!(
        h.device.transport().channel_count(),
        crate::ctaphid::channels::MAX_CHANNELS
    );
    h.send_message(first, Command::Ping, b"x");
    assert_eq!(h.reply(), error(first, HidError::InvalidChannel));
    h.send_message(*others.last().unwrap(), Command::Ping, b"x");
    assert_eq!(h.reply().payload, b"x");
}

#[test]
fn a_full_channel_table_never_evicts_the_channel_of_the_open_transaction() {
    // The busy channel is the least recently used one: a new channel takes
    // the next one's place, and the wait goes on and is answered.
    let mut h = Harness::new();
    let busy = start_presence_wait(&mut h, Command::Cbor);
    let others: Vec<u32> = (1..crate::ctaphid::channels::MAX_CHANNELS)
        .map(|_| h.init())
        .collect();
    let newest = h.init();
    assert!(newest != busy && !others.contains(&newest));
    assert_eq!(
        h.device.transport().channel_count(),
        crate::ctaphid::channels::MAX_CHANNELS
    );
    assert!(h.device.is_awaiting_presence());
    h.send_message(others[0], Command::Ping, b"x");
    assert_eq!(
        h.reply(),
        error(others[0], HidError::InvalidChannel),
        "the least recently used idle channel went"
    );
    h.send_message(busy, Command::Cancel, &[]);
    assert_eq!(
        h.reply(),
        cbor_reply(busy, &[0x2D]),
        "the busy one is still known"
    );
}

// ---- Framing, PING, MSG, CBOR ---------------------------------------------

#[test]
fn ping_round_trips_boundary_lengths() {
    let mut h = Harness::new();
    let cid = h.init();
    for len in [0, 1, 57, 58, 59, 116, 117, 1000, MAX_MESSAGE_SIZE] {
        let data = payload(len);
        h.send_message(cid, Command::Ping, &data);
        let reports = h.drain_reports();
        assert_eq!(reports.len(), crate::ctaphid::packet::reports_for(len));
        let replies = crate::ctaphid::test_support::reassemble(&reports);
        assert_eq!(replies.len(), 1);
        assert_eq!((replies[0].cid, replies[0].cmd), (cid, 0x01));
        assert_eq!(replies[0].payload, data, "len {len}");
    }
    assert_eq!(h.device.transport().channel_count(), 1);
}

#[test]
fn cbor_and_msg_reach_the_app_with_their_protocol_and_channel() {
    let mut h = Harness::new();
    let cid = h.init();
    let request = payload(MAX_MESSAGE_SIZE);
    h.send_message(cid, Command::Cbor, &request);
    let reply = h.reply();
    assert_eq!((reply.cid, reply.cmd), (cid, 0x10));
    assert_eq!(&reply.payload[..2], &[0x00, 0x00]);
    assert_eq!(
        reply.payload.len(),
        MAX_MESSAGE_SIZE,
        "a full-size response"
    );

    h.send_message(cid, Command::Msg, &[0x00, 0x03, 0x00, 0x00]);
    let reply = h.reply();
    assert_eq!((reply.cid, reply.cmd), (cid, 0x03));
    assert_eq!(reply.payload, [0x00, 0x03, 0x00, 0x00, 0x90, 0x00]);

    let calls = &h.app().calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, Protocol::Cbor);
    assert_eq!(calls[0].1, request);
    assert_eq!(calls[0].2.channel, cid);
    assert!(!calls[0].2.up_granted);
    assert_eq!(calls[1].0, Protocol::Msg);
}

#[test]
fn wink_calls_the_app_and_answers_empty() {
    let mut h = Harness::new();
    let cid = h.init();
    h.send_message(cid, Command::Wink, &[]);
    assert_eq!(
        h.reply(),
        Reply {
            cid,
            cmd: 0x08,
            payload: Vec::new()
        }
    );
    assert_eq!(h.app().winks, 1);
}

// ---- Error paths -----------------------------------------------------------

#[test]
fn channel_zero_is_invalid() {
    let mut h = Harness::new();
    h.send(&init_report(0, Command::Ping.code(), 1, &[1]));
    assert_eq!(h.reply(), error(0, HidError::InvalidChannel));
    h.send(&init_report(0, Command::Init.code(), 8, &[1; 8]));
    assert_eq!(h.reply(), error(0, HidError::InvalidChannel));
    h.send(&[0u8; 64]);
    assert_eq!(h.reply(), error(0, HidError::InvalidChannel));
}

#[test]
fn unallocated_and_broadcast_channels_are_invalid_for_requests() {
    let mut h = Harness::new();
    let cid = h.init();
    for command in [Command::Ping, Command::Cbor, Command::Cancel] {
        h.send_message(cid.wrapping_add(1), command, &[1]);
        assert_eq!(
            h.reply(),
            error(cid.wrapping_add(1), HidError::InvalidChannel)
        );
    }
    h.send_message(BROADCAST_CID, Command::Ping, &[1]);
    assert_eq!(h.reply(), error(BROADCAST_CID, HidError::InvalidChannel));
}

#[test]
fn unknown_and_device_only_commands_are_invalid() {
    let mut h = Harness::new();
    let cid = h.init();
    for cmd in [0x00, 0x02, 0x05, 0x12, 0x3B, 0x3F, 0x40, 0x7F] {
        h.send(&init_report(cid, cmd, 0, &[]));
        assert_eq!(h.reply(), error(cid, HidError::InvalidCmd), "cmd {cmd:#x}");
    }
    // A long unknown command: its continuation packets are ignored.
    for report in packets(cid, 0x55, &payload(500)) {
        h.send(&report);
    }
    assert_eq!(h.reply(), error(cid, HidError::InvalidCmd));
}

#[test]
fn oversized_and_empty_lengths_are_invalid() {
    let mut h = Harness::new();
    let cid = h.init();
    h.send(&init_report(cid, Command::Cbor.code(), 7610, &[0; 57]));
    assert_eq!(h.reply(), error(cid, HidError::InvalidLen));
    h.send(&init_report(cid, Command::Ping.code(), 0xFFFF, &[0; 57]));
    assert_eq!(h.reply(), error(cid, HidError::InvalidLen));
    h.send(&init_report(cid, Command::Cbor.code(), 0, &[]));
    assert_eq!(h.reply(), error(cid, HidError::InvalidLen));
    h.send(&init_report(cid, Command::Lock.code(), 2, &[1, 1]));
    assert_eq!(h.reply(), error(cid, HidError::InvalidLen));
    assert_eq!(h.device.next_deadline(), None);
}

#[test]
fn a_wrong_sequence_number_aborts_the_message() {
    let mut h = Harness::new();
    let cid = h.init();
    let reports = packets(cid, Command::Ping.code(), &payload(200));
    h.send(&reports[0]);
    h.send(&reports[2]); // seq 1 instead of 0
    assert_eq!(h.reply(), error(cid, HidError::InvalidSeq));
    assert_eq!(h.device.next_deadline(), None, "aborted");
    h.send(&reports[1]);
    h.send(&reports[3]);
    assert_eq!(h.replies(), [], "the rest is ignored");
    h.send_message(cid, Command::Ping, b"again");
    assert_eq!(h.reply().payload, b"again");
}

#[test]
fn a_continuation_without_a_transaction_is_ignored() {
    let mut h = Harness::new();
    let cid = h.init();
    h.send(&cont_report(cid, 0, &[1; 59]));
    h.send(&cont_report(0x4242_4242, 5, &[1; 59]));
    h.send(&cont_report(BROADCAST_CID, 0, &[1; 59]));
    assert_eq!(h.replies(), []);
    assert!(!h.device.has_pending_work());
}

#[test]
fn a_new_request_on_the_same_channel_mid_assembly_is_a_sequence_error() {
    let mut h = Harness::new();
    let cid = h.init();
    let reports = packets(cid, Command::Ping.code(), &payload(100));
    h.send(&reports[0]);
    h.send_message(cid, Command::Ping, b"new");
    assert_eq!(h.reply(), error(cid, HidError::InvalidSeq));
    h.send(&reports[1]);
    assert_eq!(h.replies(), [], "the old message was aborted");
    h.send_message(cid, Command::Ping, b"new");
    assert_eq!(h.reply().payload, b"new");
}

#[test]
fn cancel_mid_assembly_drops_the_partial_message_silently() {
    let mut h = Harness::new();
    let cid = h.init();
    let reports = packets(cid, Command::Ping.code(), &payload(100));
    h.send(&reports[0]);
    h.send_message(cid, Command::Cancel, &[]);
    assert_eq!(h.replies(), []);
    assert_eq!(h.device.next_deadline(), None);
    h.send(&reports[1]);
    assert_eq!(h.replies(), []);
}

// ---- CHANNEL_BUSY ------------------------------------------------------------

#[test]
fn a_second_channel_is_busy_during_assembly_without_disturbing_the_first() {
    let mut h = Harness::new();
    let a = h.init();
    let b = h.init();
    let data = payload(300);
    let reports = packets(a, Command::Ping.code(), &data);
    h.send(&reports[0]);
    h.send(&reports[1]);
    h.send_message(b, Command::Ping, b"b");
    assert_eq!(h.reply(), error(b, HidError::ChannelBusy));
    // A continuation from b (a stray) is ignored rather than refused.
    h.send(&cont_report(b, 0, &[0; 59]));
    assert_eq!(h.replies(), []);
    for report in &reports[2..] {
        h.send(report);
    }
    let reply = h.reply();
    assert_eq!((reply.cid, reply.payload), (a, data));
    h.send_message(b, Command::Ping, b"b");
    assert_eq!(h.reply().payload, b"b", "free again");
}

#[test]
fn a_second_channel_is_busy_during_a_presence_wait() {
    let mut h = Harness::new();
    let a = h.init();
    let b = h.init();
    h.send_message(a, Command::Cbor, &[NEEDS_PRESENCE, 1]);
    let keepalive = h.reply();
    assert_eq!(
        (keepalive.cid, keepalive.cmd, keepalive.payload),
        (a, KEEPALIVE, std::vec![2])
    );
    h.send_message(b, Command::Cbor, &[0x04]);
    assert_eq!(h.reply(), error(b, HidError::ChannelBusy));
    // The same channel cannot start another request either; the wait goes on.
    h.send_message(a, Command::Ping, b"x");
    assert_eq!(h.reply(), error(a, HidError::ChannelBusy));
    assert!(h.device.is_awaiting_presence());
    // But INIT on broadcast still works.
    let c = h.init();
    assert!(c != a && c != b);
    h.app().presence = PresenceStatus::Approved;
    h.advance(25);
    assert_eq!(h.reply(), cbor_reply(a, &[0x00, 0x01, NEEDS_PRESENCE, 1]));
}

#[test]
fn an_unread_response_holds_off_other_channels_until_stale() {
    let mut h = Harness::new();
    let a = h.init();
    let b = h.init();
    h.send_message(a, Command::Ping, &payload(500));
    let first = h.device.next_report().unwrap();
    assert_eq!(&first[..4], &a.to_be_bytes());
    h.send_message(b, Command::Ping, b"b");
    let rest = h.drain_reports();
    assert_eq!(rest.len(), 9, "a's 8 remaining reports, then b's error");
    assert_eq!(
        crate::ctaphid::test_support::reassemble(&rest[8..]),
        [error(b, HidError::ChannelBusy)]
    );
    // That drained a's response; start another and leave it unread for a second.
    h.send_message(a, Command::Ping, &payload(500));
    let _first = h.device.next_report().unwrap();
    h.advance(1_000);
    h.send_message(b, Command::Ping, b"b");
    assert_eq!(h.reply().payload, b"b", "the stale response was dropped");
}

#[test]
fn a_new_request_drops_the_unread_rest_of_its_own_channel_response() {
    let mut h = Harness::new();
    let a = h.init();
    h.send_message(a, Command::Ping, &payload(500));
    let _first = h.device.next_report().unwrap();
    h.send_message(a, Command::Ping, b"next");
    assert_eq!(h.reply().payload, b"next");
}

#[test]
fn a_multi_packet_request_drops_the_unread_rest_of_its_own_channel_response_at_once() {
    // The rest of the old response must not be sent while the new request
    // is still arriving: the host has moved on from it.
    let mut h = Harness::new();
    let a = h.init();
    h.send_message(a, Command::Ping, &payload(500));
    let _first = h.device.next_report().unwrap();
    let reports = packets(a, Command::Ping.code(), &payload(100));
    h.send(&reports[0]);
    assert_eq!(h.device.next_report(), None, "the old response is gone");
    h.send(&reports[1]);
    assert_eq!(h.reply().payload, payload(100));
}

#[test]
fn pending_work_is_an_open_transaction_or_unread_output() {
    let mut h = Harness::new();
    let a = h.init();
    assert!(!h.device.has_pending_work());
    // Output only: a response nobody has read yet.
    h.send_message(a, Command::Ping, b"x");
    assert!(h.device.has_pending_work(), "an unread response");
    assert_eq!(h.reply().payload, b"x");
    assert!(!h.device.has_pending_work());
    // A transaction only: a message still arriving, nothing to send.
    let reports = packets(a, Command::Ping.code(), &payload(100));
    h.send(&reports[0]);
    assert_eq!(h.device.next_report(), None);
    assert!(h.device.has_pending_work(), "a message being assembled");
    h.send(&reports[1]);
    assert_eq!(h.reply().payload, payload(100));
    assert!(!h.device.has_pending_work());
}

#[test]
fn a_new_request_keeps_unread_short_replies_of_its_channel() {
    let mut h = Harness::new();
    let a = h.init();
    h.send(&packets(a, Command::Ping.code(), &payload(100))[0]);
    h.advance(500);
    h.send_message(a, Command::Ping, b"next");
    assert_eq!(
        h.replies(),
        [
            error(a, HidError::MsgTimeout),
            Reply {
                cid: a,
                cmd: 0x01,
                payload: b"next".to_vec()
            }
        ]
    );
}

// ---- MSG_TIMEOUT -------------------------------------------------------------

#[test]
fn an_incomplete_message_times_out_after_500_ms_and_not_before() {
    let mut h = Harness::new();
    let cid = h.init();
    let start = h.now;
    let reports = packets(cid, Command::Cbor.code(), &payload(200));
    h.send(&reports[0]);
    assert_eq!(h.device.next_deadline(), Some(start + 500));
    h.advance_to(start + 499);
    assert_eq!(h.replies(), []);
    // A continuation packet restarts the clock.
    h.send(&reports[1]);
    assert_eq!(h.device.next_deadline(), Some(start + 999));
    h.advance_to(start + 998);
    assert_eq!(h.replies(), []);
    h.advance_to(start + 999);
    assert_eq!(h.reply(), error(cid, HidError::MsgTimeout));
    assert_eq!(h.device.next_deadline(), None);
    h.send(&reports[2]);
    assert_eq!(h.replies(), [], "too late");
    assert!(h.app().calls.is_empty());
}

#[test]
fn a_continuation_processed_late_but_before_any_tick_is_taken() {
    // The key's task was held back for 600 ms with the host's next packet
    // already waiting: the packet reached the key before its timer fired.
    let mut h = Harness::new();
    let cid = h.init();
    let reports = packets(cid, Command::Ping.code(), &payload(100));
    h.send(&reports[0]);
    h.now += 600; // no tick in between
    h.send(&reports[1]);
    assert_eq!(
        h.replies(),
        [Reply {
            cid,
            cmd: 0x01,
            payload: payload(100)
        }]
    );
}

#[test]
fn a_late_tick_cannot_make_a_timed_out_transaction_refuse_another_channel() {
    let mut h = Harness::new();
    let a = h.init();
    let b = h.init();
    h.send(&packets(a, Command::Ping.code(), &payload(100))[0]);
    h.now += 600; // no tick in between
    h.send_message(b, Command::Ping, b"b");
    let replies = h.replies();
    assert_eq!(
        replies,
        [
            error(a, HidError::MsgTimeout),
            Reply {
                cid: b,
                cmd: 0x01,
                payload: b"b".to_vec()
            }
        ]
    );
}

// ---- User presence -------------------------------------------------------------

/// Starts a request that needs presence on a fresh channel; returns the channel.
fn start_presence_wait(h: &mut Harness, command: Command) -> u32 {
    let cid = h.init();
    h.send_message(cid, command, &[NEEDS_PRESENCE, 7]);
    assert_eq!(h.app().presence_requests, 1);
    let keepalive = h.reply();
    assert_eq!(
        (keepalive.cid, keepalive.cmd, keepalive.payload),
        (cid, KEEPALIVE, std::vec![2]),
        "an immediate UPNEEDED keepalive"
    );
    cid
}

#[test]
fn keepalives_come_at_most_100_ms_apart_while_waiting() {
    let mut h = Harness::new();
    let cid = start_presence_wait(&mut h, Command::Cbor);
    let mut last = h.now;
    let end = h.now + 5_000;
    let mut count = 0;
    while let Some(deadline) = h.device.next_deadline() {
        if deadline > end {
            break;
        }
        assert!(deadline >= h.now, "deadlines never lie in the past");
        h.now = deadline;
        h.device.tick(deadline);
        for reply in h.replies() {
            assert_eq!(
                (reply.cid, reply.cmd, reply.payload),
                (cid, KEEPALIVE, std::vec![2])
            );
            assert!(h.now - last <= 100, "gap {}", h.now - last);
            last = h.now;
            count += 1;
        }
    }
    assert!(end - last <= 100);
    assert!(count >= 50, "{count} keepalives in 5 s");
    assert!(h.device.is_awaiting_presence());
}

#[test]
fn approval_calls_the_app_again_with_up_granted() {
    let mut h = Harness::new();
    let cid = start_presence_wait(&mut h, Command::Cbor);
    h.advance(200);
    h.drain_reports();
    h.app().presence = PresenceStatus::Approved;
    h.advance(25);
    assert_eq!(h.reply(), cbor_reply(cid, &[0x00, 0x01, NEEDS_PRESENCE, 7]));
    let calls = &h.app().calls;
    assert_eq!(calls.len(), 2);
    assert!(!calls[0].2.up_granted && calls[1].2.up_granted);
    assert_eq!(calls[1].1, [NEEDS_PRESENCE, 7]);
    assert_eq!(h.device.next_deadline(), None);
    assert_eq!(h.app().presence_cancels, 0);
}

#[test]
fn an_immediate_approval_answers_without_waiting() {
    let mut h = Harness::new();
    let cid = h.init();
    h.app().presence = PresenceStatus::Approved;
    h.send_message(cid, Command::Cbor, &[NEEDS_PRESENCE]);
    let replies = h.replies();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0].cmd, KEEPALIVE);
    assert_eq!(replies[1], cbor_reply(cid, &[0x00, 0x01, NEEDS_PRESENCE]));
    assert_eq!(h.device.next_deadline(), None);
}

#[test]
fn denial_answers_operation_denied() {
    let mut h = Harness::new();
    let cid = start_presence_wait(&mut h, Command::Cbor);
    h.app().presence = PresenceStatus::Denied;
    h.advance(30);
    assert_eq!(h.reply(), cbor_reply(cid, &[0x27]));
    assert_eq!(h.device.next_deadline(), None);
}

#[test]
fn no_answer_for_30_s_times_out_and_withdraws_the_request() {
    let mut h = Harness::new();
    let start = h.now;
    let cid = start_presence_wait(&mut h, Command::Cbor);
    h.advance_to(start + 29_999);
    assert!(h.replies().iter().all(|r| r.cmd == KEEPALIVE));
    assert_eq!(h.app().presence_cancels, 0);
    h.advance_to(start + 30_000);
    let replies = h.replies();
    assert_eq!(replies.last(), Some(&cbor_reply(cid, &[0x2F])));
    assert_eq!(h.app().presence_cancels, 1);
    assert_eq!(h.device.next_deadline(), None);
}

#[test]
fn cancel_on_the_waiting_channel_answers_keepalive_cancel() {
    let mut h = Harness::new();
    let cid = start_presence_wait(&mut h, Command::Cbor);
    h.send_message(cid, Command::Cancel, &[]);
    assert_eq!(h.reply(), cbor_reply(cid, &[0x2D]));
    assert_eq!(h.app().presence_cancels, 1);
    assert_eq!(h.device.next_deadline(), None);
}

#[test]
fn cancel_from_another_channel_or_without_a_wait_is_ignored() {
    let mut h = Harness::new();
    let idle = h.init();
    h.send_message(idle, Command::Cancel, &[]);
    assert_eq!(h.replies(), []);
    let cid = start_presence_wait(&mut h, Command::Cbor);
    h.send_message(idle, Command::Cancel, &[]);
    assert_eq!(h.replies(), []);
    assert!(h.device.is_awaiting_presence());
    assert_eq!(h.app().presence_cancels, 0);
    h.app().presence = PresenceStatus::Approved;
    h.advance(25);
    assert_eq!(h.reply().cid, cid);
}

#[test]
fn cancel_from_another_channel_leaves_a_message_being_assembled_alone() {
    let mut h = Harness::new();
    let a = h.init();
    let b = h.init();
    let reports = packets(a, Command::Ping.code(), &payload(100));
    h.send(&reports[0]);
    h.send_message(b, Command::Cancel, &[]);
    assert_eq!(h.replies(), [], "CANCEL is never answered");
    h.send(&reports[1]);
    assert_eq!(
        h.reply(),
        Reply {
            cid: a,
            cmd: 0x01,
            payload: payload(100)
        }
    );
}

#[test]
fn u2f_denial_timeout_and_cancel_answer_conditions_not_satisfied() {
    let mut h = Harness::new();
    let cid = start_presence_wait(&mut h, Command::Msg);
    h.app().presence = PresenceStatus::Denied;
    h.advance(25);
    let reply = h.reply();
    assert_eq!(
        (reply.cid, reply.cmd, reply.payload),
        (cid, 0x03, std::vec![0x69, 0x85])
    );

    h.app().presence = PresenceStatus::Pending;
    h.app().presence_requests = 0;
    let cid = start_presence_wait(&mut h, Command::Msg);
    h.send_message(cid, Command::Cancel, &[]);
    assert_eq!(h.reply().payload, [0x69, 0x85]);

    h.app().presence_requests = 0;
    let cid = start_presence_wait(&mut h, Command::Msg);
    h.advance(30_000);
    let last = h.replies().pop().unwrap();
    assert_eq!(
        (last.cid, last.cmd, last.payload),
        (cid, 0x03, std::vec![0x69, 0x85])
    );
}

#[test]
fn init_on_the_waiting_channel_withdraws_the_request_and_resyncs() {
    let mut h = Harness::new();
    let cid = start_presence_wait(&mut h, Command::Cbor);
    h.advance(100);
    h.send_message(cid, Command::Init, &[3; 8]);
    let replies = h.replies();
    assert_eq!(
        replies.len(),
        1,
        "queued keepalives were dropped: {replies:?}"
    );
    assert_eq!((replies[0].cid, replies[0].cmd), (cid, 0x06));
    assert_eq!(h.app().presence_cancels, 1);
    assert!(!h.device.is_awaiting_presence());
    assert_eq!(h.device.next_deadline(), None);
}

// ---- LOCK ----------------------------------------------------------------------

#[test]
fn lock_reserves_the_device_for_one_channel() {
    let mut h = Harness::new();
    let a = h.init();
    let b = h.init();
    let start = h.now;
    h.send_message(a, Command::Lock, &[2]);
    let reply = h.reply();
    assert_eq!((reply.cid, reply.cmd, reply.payload.len()), (a, 0x04, 0));
    assert_eq!(h.device.next_deadline(), None, "a lock needs no timer");

    h.send_message(b, Command::Ping, b"b");
    assert_eq!(h.reply(), error(b, HidError::ChannelBusy));
    h.send_message(BROADCAST_CID, Command::Init, &[0; 8]);
    assert_eq!(h.reply(), error(BROADCAST_CID, HidError::ChannelBusy));
    h.send_message(a, Command::Ping, b"a");
    assert_eq!(h.reply().payload, b"a");

    h.now = start + 1_999;
    h.send_message(b, Command::Ping, b"b");
    assert_eq!(h.reply(), error(b, HidError::ChannelBusy));
    h.now = start + 2_000;
    h.send_message(b, Command::Ping, b"b");
    assert_eq!(h.reply().payload, b"b", "the lock expired");

    // 10 s is the longest lock there is, and it holds.
    h.send_message(a, Command::Lock, &[10]);
    let reply = h.reply();
    assert_eq!((reply.cid, reply.cmd, reply.payload.len()), (a, 0x04, 0));
    h.send_message(b, Command::Ping, b"b");
    assert_eq!(h.reply(), error(b, HidError::ChannelBusy), "LOCK 10 holds");
    h.send_message(a, Command::Lock, &[0]);
    h.reply();
    h.send_message(b, Command::Ping, b"b");
    assert_eq!(h.reply().payload, b"b", "LOCK 0 unlocks");

    h.send_message(a, Command::Lock, &[11]);
    assert_eq!(h.reply(), error(a, HidError::InvalidPar));
    h.send_message(b, Command::Ping, b"b");
    assert_eq!(h.reply().payload, b"b", "a refused lock holds nothing");
}

// ---- reset ---------------------------------------------------------------------

#[test]
fn reset_drops_everything() {
    let mut h = Harness::new();
    let a = start_presence_wait(&mut h, Command::Cbor);
    h.send_message(a, Command::Lock, &[5]); // refused (busy waiting), queues an error
    h.send_message(0x7777_7777, Command::Ping, b"x"); // queues another error
    assert!(h.device.has_pending_work());
    h.device.reset();
    assert!(!h.device.has_pending_work());
    assert_eq!(h.device.next_report(), None);
    assert_eq!(h.device.next_deadline(), None);
    assert_eq!(h.device.transport().channel_count(), 0);
    assert_eq!(h.app().presence_cancels, 1);
    assert_eq!(h.app().transport_resets, 1);
    h.send_message(a, Command::Ping, b"x");
    assert_eq!(
        h.reply(),
        error(a, HidError::InvalidChannel),
        "channels are gone"
    );
    let b = h.init();
    h.send_message(b, Command::Ping, b"y");
    assert_eq!(h.reply().payload, b"y");

    // A partial message and a lock are dropped too.
    h.send_message(b, Command::Lock, &[10]);
    h.reply();
    h.send(&packets(b, Command::Ping.code(), &payload(300))[0]);
    h.device.reset();
    assert_eq!(h.device.next_deadline(), None);
    let c = h.init();
    h.send_message(c, Command::Ping, b"z");
    assert_eq!(h.reply().payload, b"z", "no lock survives a reset");
}

// ---- Robustness ----------------------------------------------------------------

/// A small deterministic generator (xorshift64*), good enough for fuzzing.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn garbage_reports_never_panic_and_the_device_still_answers() {
    let mut h = Harness::new();
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    let mut known = std::vec![h.init()];
    for round in 0..20_000u32 {
        let mut report = [0u8; 64];
        for chunk in report.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
        }
        // Steer some reports at real channels and real commands, with small
        // lengths and plausible sequence numbers, so deep paths are reached.
        let r = rng.next();
        if r % 2 == 0 {
            let cid = match r % 6 {
                0 => BROADCAST_CID,
                2 => 0,
                _ => known[(r as usize / 7) % known.len()],
            };
            report[..4].copy_from_slice(&cid.to_be_bytes());
        }
        if r % 3 == 0 {
            let cmds = [0x81, 0x83, 0x84, 0x86, 0x88, 0x90, 0x91, 0xBB, 0xBF];
            report[4] = cmds[(r as usize >> 8) % cmds.len()];
            report[5] = 0;
            report[6] = (r >> 16) as u8 % 130;
        } else if r % 3 == 1 {
            report[4] = (r >> 24) as u8 % 4;
        }
        if r % 5 == 0 {
            report[7] = NEEDS_PRESENCE;
        }
        h.app().presence = match r % 97 {
            0 => PresenceStatus::Approved,
            1 => PresenceStatus::Denied,
            _ => h.app().presence,
        };
        let len = if r % 11 == 0 {
            (r >> 32) as usize % 70
        } else {
            64
        };
        let bytes = [&report[..], &[0xAB; 6]].concat();
        h.device.handle_report(&bytes[..len], h.now);
        h.now += (r >> 40) % 40;
        if r % 13 == 0 {
            h.device.tick(h.now);
        }
        if r % 4 == 0 {
            for reply in crate::ctaphid::test_support::reassemble_lenient(&h.drain_reports()) {
                if reply.cmd == 0x06 && reply.payload.len() == 17 && known.len() < 8 {
                    known.push(u32::from_be_bytes(reply.payload[8..12].try_into().unwrap()));
                }
            }
        }
        if round % 5_000 == 0 {
            h.device.reset();
            known = std::vec![h.init()];
        }
    }
    // Whatever state the garbage left behind, a fresh client gets through.
    h.drain_reports();
    h.advance(60_000);
    h.drain_reports();
    let cid = h.init();
    h.send_message(cid, Command::Ping, b"still alive");
    assert_eq!(h.reply().payload, b"still alive");
}
