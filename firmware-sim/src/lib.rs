//! firmware-sim: the ferrokey core wrapped as a USB security key on a simulated bus.
//!
//! - [`usbip`]: the USB/IP server (device side): protocol codec and TCP server.
//! - [`usb`]: a `usb_device::bus::UsbBus` fed by USB/IP URBs, and the FIDO HID class.
//! - [`key`]: one simulated key: its options, its core, its USB stack and its task.
//! - [`fleet`]: the running keys of a process, added and removed at run time.
//! - [`events`]: the event bus the keys publish on.
//! - [`transport`]: how keys reach a host: USB/IP, in-process vhci attach, uhid.
//! - [`storage`]: file-backed, crash-safe records (the core's `Storage`).
//! - [`attestation`]: the CA root, batch attestation certificate and intermediate CA.
//! - [`mds`]: FIDO MDS3 metadata (`ferrokey mds`): statement, signed BLOB, MDS root.
//! - [`presence`]: user presence policies (auto, deny, prompt).
//! - [`identity`]: per-key identity (serial number, AAGUID, USB strings).
//! - [`cli`]: the `ferrokey` command-line program.
//! - [`control`]: the control API (`serve --control`): power, touch and presence over HTTP.
//! - [`events`]: events of the running keys (CTAP exchanges decoded, secrets redacted).

pub mod attestation;
pub mod cli;
pub mod control;
pub mod credentials;
pub mod events;
pub mod fleet;
pub mod hex;
pub mod identity;
pub mod key;
pub mod lifecycle;
pub mod mds;
pub mod presence;
pub mod profile;
pub mod storage;
pub mod transport;
pub mod usb;
pub mod usbip;
