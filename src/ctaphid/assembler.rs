//! Reassembling one request message from its packets (CTAP 2.1 §11.2.4).
//!
//! The payload goes into a caller-owned [`Message`] buffer, so the transport
//! keeps exactly one request buffer however the message arrives.

use super::command::Command;
use super::error::HidError;
use super::packet::{CONT_DATA_SIZE, INIT_DATA_SIZE};
use crate::app::{Message, MAX_MESSAGE_SIZE};

/// Whether the message is complete after a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More continuation packets are expected.
    Incomplete,
    /// The buffer holds the whole message.
    Complete,
}

/// The state of one message being reassembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assembly {
    cid: u32,
    command: Command,
    expected_len: usize,
    next_seq: u8,
    last_packet_ms: u64,
}

impl Assembly {
    /// Starts a message from its initialization packet, writing its first
    /// bytes into `buffer` (which is cleared first).
    ///
    /// Fails with [`HidError::InvalidLen`] when BCNT exceeds [`MAX_MESSAGE_SIZE`].
    pub fn start(
        cid: u32,
        command: Command,
        bcnt: u16,
        data: &[u8; INIT_DATA_SIZE],
        now_ms: u64,
        buffer: &mut Message,
    ) -> Result<(Assembly, Progress), HidError> {
        let expected_len = usize::from(bcnt);
        if expected_len > MAX_MESSAGE_SIZE {
            return Err(HidError::InvalidLen);
        }
        buffer.clear();
        let assembly = Assembly {
            cid,
            command,
            expected_len,
            next_seq: 0,
            last_packet_ms: now_ms,
        };
        assembly.append(data, buffer)?;
        Ok((assembly, assembly.progress(buffer)))
    }

    /// Adds a continuation packet. A sequence number other than the expected
    /// one fails with [`HidError::InvalidSeq`]; the caller then drops the message.
    pub fn push(
        &mut self,
        seq: u8,
        data: &[u8; CONT_DATA_SIZE],
        now_ms: u64,
        buffer: &mut Message,
    ) -> Result<Progress, HidError> {
        if seq != self.next_seq || buffer.len() >= self.expected_len {
            return Err(HidError::InvalidSeq);
        }
        self.append(data, buffer)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.last_packet_ms = now_ms;
        Ok(self.progress(buffer))
    }

    fn append(&self, data: &[u8], buffer: &mut Message) -> Result<(), HidError> {
        let wanted = self
            .expected_len
            .saturating_sub(buffer.len())
            .min(data.len());
        let chunk = data.get(..wanted).ok_or(HidError::Other)?;
        buffer
            .extend_from_slice(chunk)
            .map_err(|_| HidError::InvalidLen)
    }

    fn progress(&self, buffer: &Message) -> Progress {
        if buffer.len() >= self.expected_len {
            Progress::Complete
        } else {
            Progress::Incomplete
        }
    }

    /// The channel the message arrives on.
    pub const fn cid(&self) -> u32 {
        self.cid
    }

    /// The command of the message.
    pub const fn command(&self) -> Command {
        self.command
    }

    /// When the message times out, `timeout_ms` after its latest packet.
    pub const fn deadline(&self, timeout_ms: u64) -> u64 {
        self.last_packet_ms.saturating_add(timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctaphid::packet::{Fragmenter, Packet};

    /// Fragments `payload` and feeds the packets back through an [`Assembly`].
    fn round_trip(payload: &[u8]) -> Message {
        let mut cursor = Fragmenter::new(0xABCD_0001, Command::Cbor.code());
        let mut buffer = Message::new();
        let mut assembly = None;
        let mut complete = false;
        while let Some(report) = cursor.next_report(payload) {
            assert!(!complete, "packets after completion");
            let progress = match Packet::parse(&report) {
                Packet::Init {
                    cid,
                    cmd,
                    bcnt,
                    data,
                } => {
                    let command = Command::from_code(cmd).unwrap();
                    let (started, progress) =
                        Assembly::start(cid, command, bcnt, data, 0, &mut buffer).unwrap();
                    assembly = Some(started);
                    progress
                }
                Packet::Cont { seq, data, .. } => assembly
                    .as_mut()
                    .unwrap()
                    .push(seq, data, 1, &mut buffer)
                    .unwrap(),
            };
            complete = progress == Progress::Complete;
        }
        assert!(complete);
        let assembly = assembly.unwrap();
        assert_eq!(assembly.cid(), 0xABCD_0001);
        assert_eq!(assembly.command(), Command::Cbor);
        buffer
    }

    #[test]
    fn round_trips_boundary_lengths() {
        for len in [0usize, 1, 57, 58, 59, 116, 117, 1000, MAX_MESSAGE_SIZE] {
            let payload: std::vec::Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            assert_eq!(&round_trip(&payload)[..], &payload[..], "len {len}");
        }
    }

    #[test]
    fn rejects_bcnt_over_the_maximum() {
        let mut buffer = Message::new();
        let result = Assembly::start(1, Command::Cbor, 7610, &[0; 57], 0, &mut buffer);
        assert_eq!(result.map(|_| ()), Err(HidError::InvalidLen));
        let ok = Assembly::start(1, Command::Cbor, 7609, &[0; 57], 0, &mut buffer);
        assert_eq!(ok.map(|(_, p)| p), Ok(Progress::Incomplete));
    }

    #[test]
    fn wrong_sequence_numbers_are_rejected() {
        let mut buffer = Message::new();
        let (mut assembly, _) =
            Assembly::start(1, Command::Ping, 200, &[1; 57], 0, &mut buffer).unwrap();
        assert_eq!(
            assembly.push(1, &[2; 59], 1, &mut buffer),
            Err(HidError::InvalidSeq)
        );
        assert_eq!(
            assembly.push(0, &[2; 59], 1, &mut buffer),
            Ok(Progress::Incomplete)
        );
        assert_eq!(
            assembly.push(0, &[2; 59], 1, &mut buffer),
            Err(HidError::InvalidSeq)
        );
        assert_eq!(
            assembly.push(1, &[3; 59], 1, &mut buffer),
            Ok(Progress::Incomplete)
        );
        assert_eq!(
            assembly.push(2, &[4; 59], 1, &mut buffer),
            Ok(Progress::Complete)
        );
        assert_eq!(buffer.len(), 200);
        assert_eq!(
            assembly.push(3, &[5; 59], 1, &mut buffer),
            Err(HidError::InvalidSeq),
            "nothing after completion"
        );
    }

    #[test]
    fn deadline_follows_the_latest_packet() {
        let mut buffer = Message::new();
        let (mut assembly, _) =
            Assembly::start(1, Command::Ping, 200, &[1; 57], 1000, &mut buffer).unwrap();
        assert_eq!(assembly.deadline(500), 1500);
        assembly.push(0, &[2; 59], 1300, &mut buffer).unwrap();
        assert_eq!(assembly.deadline(500), 1800);
    }
}
