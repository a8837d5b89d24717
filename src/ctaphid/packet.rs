//! CTAPHID packet framing (CTAP 2.1 §11.2.4): one 64-byte HID report is one packet.
//!
//! ```text
//! initialization packet: CID (4, big-endian) | CMD (1, bit 7 set) | BCNT (2, big-endian) | DATA (57)
//! continuation packet:   CID (4, big-endian) | SEQ (1, 0..=127)   | DATA (59)
//! ```

/// The size of every CTAPHID report (the FIDO HID report size).
pub const REPORT_SIZE: usize = 64;
/// Payload bytes carried by an initialization packet.
pub const INIT_DATA_SIZE: usize = REPORT_SIZE - 7;
/// Payload bytes carried by a continuation packet.
pub const CONT_DATA_SIZE: usize = REPORT_SIZE - 5;
/// The largest continuation sequence number.
pub const MAX_SEQ: u8 = 127;

/// One 64-byte HID report.
pub type Report = [u8; REPORT_SIZE];

/// A parsed report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// The first packet of a message.
    Init {
        /// The channel id.
        cid: u32,
        /// The command code, without bit 7.
        cmd: u8,
        /// The total payload length of the message (BCNT).
        bcnt: u16,
        /// The 57 data bytes of this packet (only the first `bcnt` belong to the message).
        data: &'a [u8; INIT_DATA_SIZE],
    },
    /// A following packet of a message.
    Cont {
        /// The channel id.
        cid: u32,
        /// The sequence number, 0..=127.
        seq: u8,
        /// The 59 data bytes of this packet.
        data: &'a [u8; CONT_DATA_SIZE],
    },
}

impl<'a> Packet<'a> {
    /// Parses a report. Every 64-byte report is a well-formed packet; the
    /// caller judges whether its fields make sense.
    pub fn parse(report: &'a Report) -> Packet<'a> {
        let [c0, c1, c2, c3, kind, rest @ ..] = report;
        let cid = u32::from_be_bytes([*c0, *c1, *c2, *c3]);
        if kind & 0x80 != 0 {
            let [b0, b1, data @ ..] = rest;
            Packet::Init {
                cid,
                cmd: kind & 0x7F,
                bcnt: u16::from_be_bytes([*b0, *b1]),
                data,
            }
        } else {
            Packet::Cont {
                cid,
                seq: *kind,
                data: rest,
            }
        }
    }

    /// The channel id of the packet.
    pub fn cid(&self) -> u32 {
        match *self {
            Packet::Init { cid, .. } | Packet::Cont { cid, .. } => cid,
        }
    }
}

/// Builds an initialization packet. `cmd` is the command code (bit 7 is set
/// here); `data` beyond 57 bytes is ignored, missing bytes are zero.
pub fn init_report(cid: u32, cmd: u8, bcnt: u16, data: &[u8]) -> Report {
    let mut report = [0u8; REPORT_SIZE];
    let (header, body) = report.split_at_mut(7);
    header.copy_from_slice(&header_bytes(cid, cmd | 0x80, bcnt));
    copy_prefix(body, data);
    report
}

/// Builds a continuation packet; `data` beyond 59 bytes is ignored, missing bytes are zero.
pub fn cont_report(cid: u32, seq: u8, data: &[u8]) -> Report {
    let mut report = [0u8; REPORT_SIZE];
    let (header, body) = report.split_at_mut(5);
    let [c0, c1, c2, c3] = cid.to_be_bytes();
    header.copy_from_slice(&[c0, c1, c2, c3, seq & 0x7F]);
    copy_prefix(body, data);
    report
}

fn header_bytes(cid: u32, cmd_byte: u8, bcnt: u16) -> [u8; 7] {
    let [c0, c1, c2, c3] = cid.to_be_bytes();
    let [b0, b1] = bcnt.to_be_bytes();
    [c0, c1, c2, c3, cmd_byte, b0, b1]
}

/// Copies as much of `src` as fits into the start of `dst`.
fn copy_prefix(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
}

/// Cuts one message into reports, one at a time.
///
/// The cursor does not borrow the payload, so the payload can live in a buffer
/// owned next to it; pass the same payload to every [`Fragmenter::next_report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragmenter {
    cid: u32,
    cmd: u8,
    offset: usize,
    next_seq: u8,
    started: bool,
}

impl Fragmenter {
    /// A cursor at the start of a message for channel `cid` with command code `cmd`.
    pub const fn new(cid: u32, cmd: u8) -> Self {
        Fragmenter {
            cid,
            cmd,
            offset: 0,
            next_seq: 0,
            started: false,
        }
    }

    /// The channel the message goes to.
    pub const fn cid(&self) -> u32 {
        self.cid
    }

    /// Whether every report of `payload` has been produced.
    pub fn is_done(&self, payload: &[u8]) -> bool {
        self.started && self.offset >= payload.len()
    }

    /// The next report of `payload`, or `None` when all were produced. A
    /// payload longer than BCNT can express, or one needing more than 128
    /// continuation packets, is cut short rather than mis-framed.
    pub fn next_report(&mut self, payload: &[u8]) -> Option<Report> {
        if !self.started {
            self.started = true;
            let bcnt = u16::try_from(payload.len()).unwrap_or(u16::MAX);
            self.offset = payload.len().min(INIT_DATA_SIZE);
            return Some(init_report(self.cid, self.cmd, bcnt, payload));
        }
        if self.offset >= payload.len() || self.next_seq > MAX_SEQ {
            return None;
        }
        let chunk = payload.get(self.offset..).unwrap_or(&[]);
        let report = cont_report(self.cid, self.next_seq, chunk);
        self.offset = self.offset.saturating_add(CONT_DATA_SIZE);
        self.next_seq = self.next_seq.saturating_add(1);
        Some(report)
    }
}

/// The number of reports a message of `len` payload bytes takes.
pub const fn reports_for(len: usize) -> usize {
    if len <= INIT_DATA_SIZE {
        1
    } else {
        1 + (len - INIT_DATA_SIZE).div_ceil(CONT_DATA_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::MAX_MESSAGE_SIZE;

    #[test]
    fn parses_an_initialization_packet() {
        let mut report = [0u8; REPORT_SIZE];
        report[..7].copy_from_slice(&[0x01, 0x02, 0x03, 0x04, 0x90, 0x12, 0x34]);
        report[7] = 0xAA;
        report[63] = 0xBB;
        match Packet::parse(&report) {
            Packet::Init {
                cid,
                cmd,
                bcnt,
                data,
            } => {
                assert_eq!(cid, 0x0102_0304);
                assert_eq!(cmd, 0x10);
                assert_eq!(bcnt, 0x1234);
                assert_eq!(data.len(), 57);
                assert_eq!(data[0], 0xAA);
                assert_eq!(data[56], 0xBB);
            }
            other => panic!("expected an init packet, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_continuation_packet() {
        let mut report = [0u8; REPORT_SIZE];
        report[..5].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
        report[5] = 0x11;
        report[63] = 0x22;
        match Packet::parse(&report) {
            Packet::Cont { cid, seq, data } => {
                assert_eq!(cid, 0xFFFF_FFFF);
                assert_eq!(seq, 127);
                assert_eq!(data.len(), 59);
                assert_eq!((data[0], data[58]), (0x11, 0x22));
            }
            other => panic!("expected a continuation packet, got {other:?}"),
        }
    }

    #[test]
    fn builders_and_parser_agree() {
        let report = init_report(0xCAFE_F00D, 0x06, 8, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&report[..7], &[0xCA, 0xFE, 0xF0, 0x0D, 0x86, 0, 8]);
        assert_eq!(&report[7..15], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(report[15..].iter().all(|&b| b == 0));
        assert_eq!(Packet::parse(&report).cid(), 0xCAFE_F00D);

        let report = cont_report(7, 3, &[9; 100]);
        assert_eq!(&report[..5], &[0, 0, 0, 7, 3]);
        assert!(report[5..].iter().all(|&b| b == 9), "cut to 59 bytes");
    }

    #[test]
    fn report_counts() {
        assert_eq!(reports_for(0), 1);
        assert_eq!(reports_for(57), 1);
        assert_eq!(reports_for(58), 2);
        assert_eq!(reports_for(57 + 59), 2);
        assert_eq!(reports_for(57 + 59 + 1), 3);
        assert_eq!(reports_for(MAX_MESSAGE_SIZE), 129);
    }

    fn fragment(payload: &[u8]) -> std::vec::Vec<Report> {
        let mut cursor = Fragmenter::new(0x1234_5678, 0x10);
        let mut reports = std::vec::Vec::new();
        while let Some(report) = cursor.next_report(payload) {
            reports.push(report);
        }
        assert!(cursor.is_done(payload));
        reports
    }

    #[test]
    fn fragments_into_init_then_numbered_continuations() {
        for len in [0, 1, 57, 58, 116, 117, MAX_MESSAGE_SIZE] {
            let payload: std::vec::Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let reports = fragment(&payload);
            assert_eq!(reports.len(), reports_for(len), "len {len}");
            let mut rebuilt = std::vec::Vec::new();
            for (i, report) in reports.iter().enumerate() {
                match Packet::parse(report) {
                    Packet::Init {
                        cid,
                        cmd,
                        bcnt,
                        data,
                    } => {
                        assert_eq!(i, 0);
                        assert_eq!((cid, cmd, usize::from(bcnt)), (0x1234_5678, 0x10, len));
                        rebuilt.extend_from_slice(data);
                    }
                    Packet::Cont { cid, seq, data } => {
                        assert_eq!((cid, usize::from(seq)), (0x1234_5678, i - 1));
                        rebuilt.extend_from_slice(data);
                    }
                }
            }
            assert!(rebuilt[len..].iter().all(|&b| b == 0), "padding is zero");
            assert_eq!(&rebuilt[..len], &payload[..], "len {len}");
        }
    }

    #[test]
    fn fragmenter_never_produces_a_sequence_beyond_127() {
        let oversized = std::vec![0u8; MAX_MESSAGE_SIZE + 500];
        let reports = fragment_lenient(&oversized);
        assert_eq!(reports.len(), 129);
    }

    fn fragment_lenient(payload: &[u8]) -> std::vec::Vec<Report> {
        let mut cursor = Fragmenter::new(1, 0x01);
        core::iter::from_fn(|| cursor.next_report(payload)).collect()
    }
}
