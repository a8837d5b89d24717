//! ferrokey: the firmware core of a FIDO2 / U2F security key.
//!
//! The crate is `#![no_std]` and does no I/O. A device shell feeds it 64-byte HID
//! reports and a millisecond clock, and takes 64-byte HID reports back
//! ([`device::Device`]). Storage, user presence and randomness come in through the
//! small traits of [`platform`].
//!
//! Layers, from the wire inwards:
//! - [`ctaphid`]: CTAPHID framing, channels, keepalives, timeouts (CTAP 2.1 §11.2).
//! - [`app`]: the boundary between the transport and the command handlers.
//! - [`ctap2`] and [`ctap1`]: CTAP2 and U2F command handling.
//! - [`credential`], [`store`]: the credential model and its persistent records.
//! - [`crypto`]: ES256, key wrapping and hashing.
//! - [`pin`]: PIN/UV auth protocols 1 and 2, PIN state and pinUvAuthTokens.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod app;
pub mod authenticator;
pub mod bio;
pub mod credential;
pub mod crypto;
pub mod ctap1;
pub mod ctap2;
pub mod ctaphid;
pub mod device;
pub mod pin;
pub mod platform;
pub mod profile;
pub mod store;
mod wipe;

#[cfg(any(test, feature = "test-platform"))]
pub mod test_platform;
