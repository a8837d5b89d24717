//! The USB/IP server (device side): how the simulated keys reach a Linux host's
//! `vhci_hcd` (`usbip attach`) or any other USB/IP client.
//!
//! - [`proto`]: the wire format, with strict decoding of untrusted bytes.
//! - [`Server`]: the TCP listener and the opening operation of each connection.
//! - [`exports`]: the keys offered, by busid (changes at run time).
//! - [`link`]: an imported key's URB stream, served by the key's own task.
//!
//! Written for ferrokey rather than taken from the `usbip-device` crate, which
//! binds a fixed address with `unwrap`, serves one device to one connection,
//! reports a canned device list, panics on short reads and broken pipes, breaks
//! re-attach and busy-polls.

mod connection;
pub mod exports;
pub mod link;
pub mod proto;
mod server;

pub use crate::key::{ReportCore, UsbIdentity};
pub use connection::OPEN_TIMEOUT;
pub use exports::Exports;
pub(crate) use server::set_power as set_power_of;
pub use server::{BackgroundServer, KeySwitch, Server, MAX_HANDSHAKES};
/// The wake-up handle [`Server::add_key`] takes (re-exported for callers without
/// a direct tokio dependency).
pub use tokio::sync::Notify;
