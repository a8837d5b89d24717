//! The one copy of ferrokey's test helpers, shared by every test crate.
//!
//! Nothing here depends on the ferrokey crates: the helpers are an independent
//! implementation of the host side (CBOR with ciborium, signatures with p256 and
//! ed25519-dalek, PIN/UV auth with aes/hmac/sha2), so they check the key rather
//! than agree with it by construction. That also lets the core's own unit tests
//! use them (a dev-dependency cycle through a crate that shares no types is fine).
//!
//! - [`usbip_client`], [`ctaphid_client`]: the wire clients.
//! - [`cbor`]: small ciborium helpers.
//! - [`ctap2`]: the [`ctap2::Ctap2`] trait (any way of sending a CTAP2 command),
//!   request builders, response parsers that verify signatures, large blobs.
//! - [`pin`]: the platform side of PIN/UV auth protocols 1 and 2 (clientPIN,
//!   tokens, hmac-secret salts).
//! - [`u2f`]: CTAP1/U2F APDUs and their checks.
//! - [`process`]: `ferrokey serve` as a child process (logs, signals, control API).

pub mod cbor;
pub mod ctap2;
pub mod ctaphid_client;
pub mod events_cli;
pub mod pin;
pub mod process;
pub mod u2f;
pub mod usbip_client;
