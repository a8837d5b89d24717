//! How a key reaches a host (`ferrokey serve --transport`).
//!
//! | transport | what the host sees | who can use the key | needs |
//! | --- | --- | --- | --- |
//! | `uhid` | a HID device from `/dev/uhid` (bus USB, same VID:PID, names and serial) | whoever may open its hidraw node | write access to `/dev/uhid` (root, or the udev rule's group) |
//! | `attach` | a USB device on the local `vhci_hcd`, attached by ferrokey itself through sysfs with a socket pair: no TCP port | whoever may open its hidraw node (given to the invoking user, mode 0600) | root (or CAP_SYS_ADMIN), the `vhci-hcd` module |
//! | `usbip` | a USB/IP server on a TCP port (`usbip attach` from this or another machine) | anyone who can reach the port | `usbip` and `vhci-hcd` on the attaching host |
//!
//! `auto` (the default when `--listen` is not given) takes the first that
//! works here, in the order uhid, attach, usbip (on loopback, with a message
//! saying why and what `ferrokey doctor` suggests).
//!
//! - [`uhid`]: the uhid ABI layer.
//! - [`vhci`]: the `vhci_hcd` sysfs interface (attach, detach, free ports).
//! - [`hidraw`]: finding a key's hidraw node and giving it to a user.
//! - [`attach`]: keeps each key attached to the local `vhci_hcd`.

pub mod attach;
pub mod hidraw;
pub mod uhid;
pub mod vhci;

use std::path::Path;

/// The transport asked for on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The first that works here: uhid, then attach, then usbip on loopback.
    Auto,
    /// A USB/IP server on `--listen`.
    Usbip,
    /// In-process attach to the local `vhci_hcd`: no TCP port.
    Attach,
    /// A Linux uhid device: no USB stack, no TCP port.
    Uhid,
}

impl Transport {
    /// The transport's name.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Auto => "auto",
            Transport::Usbip => "usbip",
            Transport::Attach => "attach",
            Transport::Uhid => "uhid",
        }
    }
}

/// Whether this process is root.
pub fn is_root() -> bool {
    // /proc/self/status names the effective uid: no libc call needed.
    effective_uid() == Some(0)
}

/// The effective uid of this process (from /proc/self/status).
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether `path` can be opened for reading and writing by this process.
pub fn can_read_write(path: &Path) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .is_ok()
}

/// Picks the transport `auto` means on this host, and says why when it
/// falls back to USB/IP.
pub fn choose_auto(uhid: &Path) -> (Transport, Option<String>) {
    if can_read_write(uhid) {
        return (Transport::Uhid, None);
    }
    if is_root() && (vhci::Vhci::find().is_some() || vhci::module_available()) {
        return (Transport::Attach, None);
    }
    let why = if uhid.exists() {
        format!(
            "{} is not writable by this user and vhci-hcd attach needs root",
            uhid.display()
        )
    } else {
        format!(
            "{} does not exist (no uhid module) and vhci-hcd attach needs root",
            uhid.display()
        )
    };
    (
        Transport::Usbip,
        Some(format!(
            "no local transport works here ({why}): serving USB/IP on loopback instead; `ferrokey doctor` says how to enable uhid or attach"
        )),
    )
}
