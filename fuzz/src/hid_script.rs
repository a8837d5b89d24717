//! The input format of the `ctaphid` target: a presence byte, then
//! operations, each a tag byte and its operands. A plain byte format (not
//! `arbitrary`'s) so that `make-seeds` can write real CTAPHID conversations.
//!
//! | tag % 8 | operation | operands |
//! |---|---|---|
//! | 0 | one raw report | length byte, that many bytes (cut to 64) |
//! | 1 | one report on a chosen channel | channel, 60 bytes |
//! | 2 | a whole framed message | channel, command, u16 length, payload, packets to send (0xFF: all) |
//! | 3 | INIT | channel, 8-byte nonce |
//! | 4 | the clock advances | u16 milliseconds |
//! | 5 | the host reads every IN report | - |
//! | 6 | USB reset | - |
//! | 7 | the user's answer from now on | presence byte |
//!
//! A channel is one byte: 0 broadcast, 1 the reserved id 0, 2..=127 the
//! (n-2)-th channel the device allocated, 128..=255 followed by 4 bytes of
//! channel id. Parsing stops at the first incomplete operation.

/// A channel operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// 0xffffffff.
    Broadcast,
    /// 0.
    Reserved,
    /// The n-th channel the device allocated.
    Allocated(u8),
    /// Any channel id.
    Other(u32),
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// One raw report.
    Report(Vec<u8>),
    /// One report with a chosen channel id and 60 more bytes.
    OnChannel(Channel, Vec<u8>),
    /// A whole message (only the first `cut` packets when given).
    Message {
        /// Its channel.
        channel: Channel,
        /// Its command code.
        cmd: u8,
        /// Its payload.
        payload: Vec<u8>,
        /// How many packets to send.
        cut: Option<u8>,
    },
    /// INIT with a nonce.
    Init(Channel, [u8; 8]),
    /// The clock advances.
    Wait(u16),
    /// The host reads.
    Drain,
    /// USB reset.
    Reset,
    /// The user's answer from now on.
    Presence(u8),
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a.to_vec())
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn channel(&mut self) -> Option<Channel> {
        Some(match self.byte()? {
            0 => Channel::Broadcast,
            1 => Channel::Reserved,
            n @ 2..=127 => Channel::Allocated(n - 2),
            _ => {
                let b = self.take(4)?;
                Channel::Other(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
        })
    }
}

/// Parses a script: the presence byte and the operations.
pub fn parse(data: &[u8]) -> (u8, Vec<Op>) {
    let mut r = Reader(data);
    let presence = r.byte().unwrap_or(0);
    let mut ops = Vec::new();
    while let Some(op) = parse_op(&mut r) {
        ops.push(op);
    }
    (presence, ops)
}

fn parse_op(r: &mut Reader<'_>) -> Option<Op> {
    Some(match r.byte()? % 8 {
        0 => {
            let len = usize::from(r.byte()?);
            Op::Report(r.take(len.min(r.0.len()))?)
        }
        1 => Op::OnChannel(r.channel()?, r.take(60)?),
        2 => {
            let channel = r.channel()?;
            let cmd = r.byte()?;
            let len = usize::from(r.u16()?);
            let payload = r.take(len.min(r.0.len()))?;
            let cut = match r.byte().unwrap_or(0xFF) {
                0xFF => None,
                n => Some(n),
            };
            Op::Message {
                channel,
                cmd,
                payload,
                cut,
            }
        }
        3 => {
            let channel = r.channel()?;
            let nonce = r.take(8)?;
            let mut n = [0u8; 8];
            n.copy_from_slice(&nonce);
            Op::Init(channel, n)
        }
        4 => Op::Wait(r.u16()?),
        5 => Op::Drain,
        6 => Op::Reset,
        _ => Op::Presence(r.byte()?),
    })
}

fn put_channel(out: &mut Vec<u8>, channel: Channel) {
    match channel {
        Channel::Broadcast => out.push(0),
        Channel::Reserved => out.push(1),
        Channel::Allocated(n) => out.push(2 + n.min(125)),
        Channel::Other(cid) => {
            out.push(0x80);
            out.extend_from_slice(&cid.to_be_bytes());
        }
    }
}

/// Writes a script (the inverse of [`parse`]).
pub fn encode(presence: u8, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![presence];
    for op in ops {
        match op {
            Op::Report(bytes) => {
                out.push(0);
                out.push(bytes.len().min(255) as u8);
                out.extend_from_slice(&bytes[..bytes.len().min(255)]);
            }
            Op::OnChannel(channel, rest) => {
                out.push(1);
                put_channel(&mut out, *channel);
                let mut r = rest.clone();
                r.resize(60, 0);
                out.extend_from_slice(&r);
            }
            Op::Message {
                channel,
                cmd,
                payload,
                cut,
            } => {
                out.push(2);
                put_channel(&mut out, *channel);
                out.push(*cmd);
                let len = payload.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&(len as u16).to_be_bytes());
                out.extend_from_slice(&payload[..len]);
                out.push(cut.unwrap_or(0xFF));
            }
            Op::Init(channel, nonce) => {
                out.push(3);
                put_channel(&mut out, *channel);
                out.extend_from_slice(nonce);
            }
            Op::Wait(ms) => {
                out.push(4);
                out.extend_from_slice(&ms.to_be_bytes());
            }
            Op::Drain => out.push(5),
            Op::Reset => out.push(6),
            Op::Presence(p) => {
                out.push(7);
                out.push(*p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_gives_the_script_back() {
        let ops = vec![
            Op::Init(Channel::Broadcast, [1; 8]),
            Op::Message {
                channel: Channel::Allocated(0),
                cmd: 0x10,
                payload: vec![4],
                cut: None,
            },
            Op::OnChannel(Channel::Other(7), vec![9; 60]),
            Op::Report(vec![1, 2, 3]),
            Op::Wait(500),
            Op::Drain,
            Op::Reset,
            Op::Presence(1),
        ];
        assert_eq!(parse(&encode(2, &ops)), (2, ops));
    }
}
