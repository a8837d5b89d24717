//! The USB/IP server (device side): how the simulated keys reach a Linux host's
//! `vhci_hcd` (`usbip attach`) or any other USB/IP client.
//!
//! - [`proto`]: the wire format, with strict decoding of untrusted bytes.
//! - [`Server`]: the TCP listener, the exported keys and the per-connection tasks.
//!
//! Written for ferrokey rather than taken from the `usbip-device` crate, which
//! binds a fixed address with `unwrap`, serves one device to one connection,
//! reports a canned device list, panics on short reads and broken pipes, breaks
//! re-attach and busy-polls.

mod connection;
pub mod proto;
mod server;

pub use crate::key::{ReportCore, UsbIdentity};
pub use server::{BackgroundServer, KeySwitch, Server};
/// The wake-up handle [`Server::add_key`] takes (re-exported for callers without
/// a direct tokio dependency).
pub use tokio::sync::Notify;
