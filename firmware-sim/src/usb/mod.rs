//! The simulated USB device: a `usb_device::bus::UsbBus` driven by USB/IP URBs,
//! and the FIDO HID class that runs on it.
//!
//! - [`bus`]: [`bus::SimBus`], the peripheral: per-endpoint packet buffers, stall
//!   and reset state, with a device side (the `UsbBus` trait) and a host side.
//! - [`host`]: [`host::HostController`], which turns URBs into packets on a
//!   [`bus::SimBus`] (control stages, NAK/STALL, queueing, unlinking).
//! - [`hid`]: [`hid::FidoHidClass`], the FIDO HID interface (usage page 0xF1D0).

pub mod bus;
pub mod hid;
pub mod host;
