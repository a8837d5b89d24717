//! One simulated security key: its options, its core, its USB stack and the
//! task that runs them.
//!
//! - [`options`]: [`KeyOptions`], everything that makes one key (the CLI and
//!   the control API both fill it in).
//! - [`build`]: one key built from options and the state root
//!   ([`build::KeyBuilder`]): state directory, identity, core.
//! - [`core`]: [`KeyCore`], the core of a served key (CTAPHID transport and
//!   authenticator, with CTAP events recorded).
//! - [`pin`]: the PIN/UV states a key is started in or switched to, and
//!   the events their changes make.
//! - [`power`]: [`power::PowerCycled`], a core really rebuilt at power-up.
//! - [`recorded`]: [`Recorded`], the app wrapper that publishes CTAP events.
//! - [`runtimes`]: the few threads all keys run on.
//! - [`task`]: one key's task: USB stack, core, timers and its host's stream.

pub mod build;
pub mod core;
pub mod options;
pub mod pin;
pub mod power;
pub mod recorded;
pub mod runtimes;
pub mod task;

pub use self::core::KeyCore;
pub use options::KeyOptions;
pub use recorded::Recorded;

use std::io;

use usb_device::device::CONFIGURATION_VALUE;

use crate::usb::hid::{INTERFACE_CLASS_HID, REPORT_SIZE};
use crate::usbip::proto::{DeviceInfo, InterfaceInfo, SPEED_FULL};

/// bInterval of the interrupt endpoints, in milliseconds (full speed).
pub const POLL_INTERVAL_MS: u8 = 5;

/// The most URBs one connection may have pending at a key; more is hostile.
pub const MAX_PENDING_URBS: usize = 256;

/// The longest USB string, in UTF-16 units: `usb-device`'s control buffer is 128
/// bytes, and a string descriptor takes 2 + 2 bytes per unit.
pub const MAX_STRING_UNITS: usize = 63;

/// `-ECONNRESET`: the URB was unlinked before it completed.
pub const ECONNRESET: i32 = -104;
/// `-ESHUTDOWN`: the URB was cut off by a device reset.
pub const ESHUTDOWN: i32 = -108;

/// The USB identity of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsbIdentity {
    /// idVendor.
    pub vendor_id: u16,
    /// idProduct.
    pub product_id: u16,
    /// bcdDevice (device release number, BCD).
    pub device_release: u16,
    /// Manufacturer string (at most [`MAX_STRING_UNITS`] UTF-16 units).
    pub manufacturer: String,
    /// Product string (at most [`MAX_STRING_UNITS`] UTF-16 units).
    pub product: String,
    /// Serial number string (at most [`MAX_STRING_UNITS`] UTF-16 units; unique per key).
    pub serial: String,
}

impl UsbIdentity {
    /// Checks the string lengths.
    pub fn validate(&self) -> io::Result<()> {
        for (name, value) in [
            ("manufacturer", &self.manufacturer),
            ("product", &self.product),
            ("serial", &self.serial),
        ] {
            if value.encode_utf16().count() > MAX_STRING_UNITS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("USB {name} string longer than {MAX_STRING_UNITS} UTF-16 units"),
                ));
            }
        }
        Ok(())
    }
}

/// What a key needs from the ferrokey core: its report-level transport facade.
///
/// Implemented for [`ferrokey::device::Device`]; tests may plug in their own.
pub trait ReportCore {
    /// Handles one 64-byte output report from the host.
    fn handle_report(&mut self, report: &[u8], now_ms: u64);
    /// The next 64-byte input report for the host, if any. A report returned here
    /// is consumed: the key only asks when it can put the report on the wire.
    fn next_report(&mut self) -> Option<[u8; REPORT_SIZE]>;
    /// Advances timers (keepalives, timeouts, presence polling).
    fn tick(&mut self, now_ms: u64);
    /// When `tick` must next run (same clock as `now_ms`), or `None` when idle.
    fn next_deadline(&self) -> Option<u64>;
    /// USB reset or disconnect: drops all transport state.
    fn reset(&mut self);
    /// The key loses power (it is "unplugged"): everything volatile goes. The
    /// default only resets the transport.
    fn power_off(&mut self) {
        self.reset();
    }
    /// The key gets power again: a fresh power-up from persistent state.
    /// False if the key could not start (it then stays off). The default only
    /// resets the transport.
    fn power_on(&mut self) -> bool {
        self.reset();
        true
    }
}

impl<A: ferrokey::app::App> ReportCore for ferrokey::device::Device<A> {
    fn handle_report(&mut self, report: &[u8], now_ms: u64) {
        ferrokey::device::Device::handle_report(self, report, now_ms);
    }

    fn next_report(&mut self) -> Option<[u8; REPORT_SIZE]> {
        ferrokey::device::Device::next_report(self)
    }

    fn tick(&mut self, now_ms: u64) {
        ferrokey::device::Device::tick(self, now_ms);
    }

    fn next_deadline(&self) -> Option<u64> {
        ferrokey::device::Device::next_deadline(self)
    }

    fn reset(&mut self) {
        ferrokey::device::Device::reset(self);
    }
}

/// The device-list description of a key with this identity.
pub fn device_info(busid: &str, busnum: u32, devnum: u32, id: &UsbIdentity) -> DeviceInfo {
    DeviceInfo {
        path: format!("/sys/devices/platform/ferrokey/usb{busnum}/{busid}"),
        busid: busid.to_owned(),
        busnum,
        devnum,
        speed: SPEED_FULL,
        vendor_id: id.vendor_id,
        product_id: id.product_id,
        bcd_device: id.device_release,
        // Interface-defined, as the device descriptor built below says.
        class: 0,
        subclass: 0,
        protocol: 0,
        configuration_value: CONFIGURATION_VALUE,
        num_configurations: 1,
        interfaces: vec![InterfaceInfo {
            class: INTERFACE_CLASS_HID,
            subclass: 0,
            protocol: 0,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(product: &str) -> UsbIdentity {
        UsbIdentity {
            vendor_id: 0x1209,
            product_id: 0x0001,
            device_release: 0x0100,
            manufacturer: "m".into(),
            product: product.into(),
            serial: "s".into(),
        }
    }

    #[test]
    fn string_length_limit() {
        assert!(identity(&"x".repeat(MAX_STRING_UNITS)).validate().is_ok());
        assert!(identity(&"x".repeat(MAX_STRING_UNITS + 1))
            .validate()
            .is_err());
        // Characters outside the BMP take two units.
        assert!(identity(&"\u{1F511}".repeat(32)).validate().is_err());
    }

    #[test]
    fn device_ids() {
        let info = device_info("1-1", 1, 1, &identity("ferrokey"));
        assert_eq!(info.devid(), 0x0001_0001);
        assert_eq!(info.busid, "1-1");
    }
}
