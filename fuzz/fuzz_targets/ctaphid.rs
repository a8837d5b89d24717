//! CTAPHID: packet sequences on several channels into the device (transport
//! and the template authenticator on the test platform), with the clock,
//! USB resets and the user's answer (approve, deny, never) chosen by the input
//! (format: `ferrokey_fuzz::hid_script`).
//!
//! Invariants: no panic; every IN report is a well-formed CTAPHID packet of
//! a message that is framed correctly (an init packet with a length within
//! the CTAPHID maximum, then continuation packets in sequence, on a channel
//! the host used or was given); a finished CBOR response is a status byte
//! and, after OK, one CBOR map; a finished MSG response ends in a status word.
#![no_main]

use std::collections::BTreeMap;

use ferrokey::app::MAX_MESSAGE_SIZE;
use ferrokey::ctaphid::packet::Packet;
use ferrokey::ctaphid::{Command, BROADCAST_CID};
use ferrokey::device::{Device, DeviceConfig};
use ferrokey::test_platform::PresenceScript;
use ferrokey_fuzz::hid_script::{self, Channel, Op};
use ferrokey_fuzz::*;
use ferrokey_test_support::ctaphid_client::frame_message;
use libfuzzer_sys::fuzz_target;

fn script(code: u8) -> PresenceScript {
    match code % 4 {
        0 => PresenceScript::Approve,
        1 => PresenceScript::Deny,
        2 => PresenceScript::Pending,
        _ => PresenceScript::ApproveAfterPolls(u32::from(code >> 2)),
    }
}

/// The host's view of the IN reports: messages being reassembled per channel.
#[derive(Default)]
struct Host {
    /// Channel ids the device allocated (from INIT responses).
    allocated: Vec<u32>,
    /// Channel ids the host sent on.
    used: Vec<u32>,
    /// Partial messages: channel -> (cmd, bcnt, payload, next seq).
    partial: BTreeMap<u32, (u8, usize, Vec<u8>, u8)>,
}

impl Host {
    fn cid(&self, channel: &Channel) -> u32 {
        match channel {
            Channel::Broadcast => BROADCAST_CID,
            Channel::Reserved => 0,
            Channel::Allocated(n) => {
                if self.allocated.is_empty() {
                    0x0100_0001
                } else {
                    self.allocated[usize::from(*n) % self.allocated.len()]
                }
            }
            Channel::Other(cid) => *cid,
        }
    }

    fn receive(&mut self, report: &[u8; 64]) {
        let packet = Packet::parse(report);
        let cid = packet.cid();
        assert!(
            cid == BROADCAST_CID || self.used.contains(&cid) || self.allocated.contains(&cid),
            "IN report on channel {cid:08x}, which the host never used"
        );
        match packet {
            Packet::Init {
                cmd, bcnt, data, ..
            } => {
                assert!(
                    !self.partial.contains_key(&cid),
                    "a new message on {cid:08x} before the previous one was complete"
                );
                let cmd_known = Command::from_code(cmd).is_some();
                assert!(cmd_known, "IN message with unknown command {cmd:#04x}");
                let bcnt = usize::from(bcnt);
                assert!(
                    bcnt <= MAX_MESSAGE_SIZE,
                    "IN message of {bcnt} bytes, more than CTAPHID carries"
                );
                let take = bcnt.min(data.len());
                self.partial
                    .insert(cid, (cmd, bcnt, data[..take].to_vec(), 0));
            }
            Packet::Cont { seq, data, .. } => {
                let (_, bcnt, payload, next) = self.partial.get_mut(&cid).unwrap_or_else(|| {
                    panic!("continuation packet on {cid:08x} without a message")
                });
                assert_eq!(seq, *next, "continuation out of sequence on {cid:08x}");
                *next += 1;
                let take = (*bcnt - payload.len()).min(data.len());
                payload.extend_from_slice(&data[..take]);
            }
        }
        let done = self
            .partial
            .get(&cid)
            .is_some_and(|(_, bcnt, payload, _)| payload.len() == *bcnt);
        if done {
            if let Some((cmd, _, payload, _)) = self.partial.remove(&cid) {
                self.message(cid, cmd, &payload);
            }
        }
    }

    fn message(&mut self, cid: u32, cmd: u8, payload: &[u8]) {
        match Command::from_code(cmd) {
            Some(Command::Cbor) => check_ctap2_response(payload),
            Some(Command::Msg) => check_ctap1_response(payload),
            Some(Command::Init) => {
                assert_eq!(payload.len(), 17, "INIT response length");
                let new = u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]);
                assert!(
                    new != 0 && new != BROADCAST_CID,
                    "INIT gave channel {new:08x}"
                );
                if !self.allocated.contains(&new) {
                    self.allocated.push(new);
                }
            }
            Some(Command::Error) => assert_eq!(payload.len(), 1, "ERROR payload length"),
            Some(Command::Keepalive) => assert_eq!(payload.len(), 1, "KEEPALIVE length"),
            _ => {}
        }
        let _ = cid;
    }
}

fuzz_target!(|data: &[u8]| {
    let (presence_code, ops) = hid_script::parse(data);
    let (auth, presence) = template_authenticator(script(presence_code));
    let mut device = Box::new(Device::new(auth, DeviceConfig::default()));
    let mut host = Host::default();
    let mut now: u64 = 1_000;
    let mut sent = 0usize;
    let send = |device: &mut Device<_>, host: &mut Host, report: &[u8], now: u64| {
        if !report.is_empty() {
            // Short reports are zero-padded by the device.
            let mut head = [0u8; 4];
            let n = report.len().min(4);
            head[..n].copy_from_slice(&report[..n]);
            let cid = u32::from_be_bytes(head);
            if !host.used.contains(&cid) {
                host.used.push(cid);
            }
        }
        device.handle_report(report, now);
    };
    for op in ops.iter().take(64) {
        match op {
            Op::Report(bytes) => {
                let len = bytes.len().min(64);
                send(&mut device, &mut host, &bytes[..len], now);
                sent += 1;
            }
            Op::OnChannel(channel, rest) => {
                let mut report = [0u8; 64];
                report[..4].copy_from_slice(&host.cid(channel).to_be_bytes());
                report[4..].copy_from_slice(&rest[..60]);
                send(&mut device, &mut host, &report, now);
                sent += 1;
            }
            Op::Message {
                channel,
                cmd,
                payload,
                cut,
            } => {
                let cid = host.cid(channel);
                if let Ok(reports) = frame_message(cid, *cmd & 0x7F, payload) {
                    let n = cut.map_or(reports.len(), usize::from);
                    for report in reports.iter().take(n) {
                        send(&mut device, &mut host, report, now);
                        sent += 1;
                    }
                }
            }
            Op::Init(channel, nonce) => {
                let cid = host.cid(channel);
                if let Ok(reports) = frame_message(cid, 0x06, nonce) {
                    for report in &reports {
                        send(&mut device, &mut host, report, now);
                    }
                }
            }
            Op::Wait(ms) => {
                let until = now + u64::from(*ms);
                let mut steps = 0;
                while let Some(deadline) = device.next_deadline() {
                    if deadline > until || steps > 10_000 {
                        break;
                    }
                    now = now.max(deadline);
                    device.tick(now);
                    steps += 1;
                    // A host polls the IN endpoint all along.
                    while let Some(report) = device.next_report() {
                        host.receive(&report);
                    }
                }
                now = until;
                device.tick(now);
            }
            Op::Drain => {
                while let Some(report) = device.next_report() {
                    host.receive(&report);
                }
            }
            Op::Reset => {
                device.reset();
                while let Some(report) = device.next_report() {
                    host.receive(&report);
                }
                host.partial.clear();
            }
            Op::Presence(code) => presence.set_script(script(*code)),
        }
        if sent > 512 {
            break;
        }
    }
    // The host reads everything, and time runs until the device is idle.
    for _ in 0..2_000 {
        while let Some(report) = device.next_report() {
            host.receive(&report);
        }
        match device.next_deadline() {
            Some(deadline) => {
                now = now.max(deadline);
                device.tick(now);
            }
            None => break,
        }
    }
    while let Some(report) = device.next_report() {
        host.receive(&report);
    }
});
