//! CTAPHID, the USB HID transport of CTAP (CTAP 2.1 §11.2).
//!
//! The host talks to the key in 64-byte HID reports. A request message is split
//! into one *initialization* packet and up to 128 *continuation* packets; the
//! response travels back the same way. Messages are addressed to *channels*
//! (32-bit channel ids) that the host allocates with `INIT` on the broadcast
//! channel, so that several host applications can share one key.
//!
//! Modules, each with one job:
//! - [`command`]: the command codes and KEEPALIVE status codes.
//! - [`error`]: [`HidError`], the CTAPHID error codes sent in `ERROR` responses.
//! - [`packet`]: parsing and building single 64-byte reports.
//! - [`assembler`]: reassembling a request from its packets, with sequence checks.
//! - [`outbox`]: queuing responses and fragmenting them into IN reports.
//! - [`channels`]: the bounded table of allocated channel ids.
//! - [`config`]: the device version and timing settings.
//! - [`transport`]: the transaction state machine tying it all to an [`crate::app::App`].
//!
//! [`crate::device::Device`] is the facade the device shell uses.

pub mod assembler;
pub mod channels;
pub mod command;
pub mod config;
pub mod error;
pub mod outbox;
pub mod packet;
pub mod transport;

#[cfg(test)]
pub(crate) mod test_support;

pub use command::{Command, KeepaliveStatus};
pub use config::{Config, DeviceVersion, Timing};
pub use error::HidError;
pub use packet::{Packet, REPORT_SIZE};
pub use transport::Transport;

/// The broadcast channel id, used by `INIT` to allocate a channel.
pub const BROADCAST_CID: u32 = 0xFFFF_FFFF;

/// The channel id no channel may have.
pub const RESERVED_CID: u32 = 0;

/// The CTAPHID protocol version reported by `INIT`.
pub const PROTOCOL_VERSION: u8 = 2;

/// `INIT` capability flag: the device implements `WINK`.
pub const CAPABILITY_WINK: u8 = 0x01;
/// `INIT` capability flag: the device implements `CBOR` (CTAP2).
pub const CAPABILITY_CBOR: u8 = 0x04;
/// `INIT` capability flag: the device does *not* implement `MSG` (U2F).
pub const CAPABILITY_NMSG: u8 = 0x08;
