//! A key's hidraw node: found by its HID id and serial number (the kernel's
//! `HID_ID` and `HID_UNIQ` of the node's HID device), and given to the user
//! who should use it (chown, mode 0600).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the kernel lists hidraw nodes.
pub const HIDRAW_CLASS: &str = "/sys/class/hidraw";

/// Which device to look for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HidMatch {
    /// Vendor id.
    pub vendor: u16,
    /// Product id.
    pub product: u16,
    /// The serial number (`HID_UNIQ`).
    pub serial: String,
}

impl HidMatch {
    /// Whether a HID device's `uevent` text names this device.
    pub fn matches_uevent(&self, uevent: &str) -> bool {
        let mut id_ok = false;
        let mut uniq_ok = false;
        for line in uevent.lines() {
            if let Some(id) = line.strip_prefix("HID_ID=") {
                // bus:vendor:product, each hex (e.g. 0003:00001209:0000000A).
                let mut parts = id.split(':').skip(1);
                let vendor = parts.next().and_then(|v| u32::from_str_radix(v, 16).ok());
                let product = parts.next().and_then(|v| u32::from_str_radix(v, 16).ok());
                id_ok = vendor == Some(u32::from(self.vendor))
                    && product == Some(u32::from(self.product));
            } else if let Some(uniq) = line.strip_prefix("HID_UNIQ=") {
                uniq_ok = uniq == self.serial;
            }
        }
        id_ok && uniq_ok
    }
}

/// The `/dev/hidrawN` of the device, if the kernel has made it.
pub fn find(class: &Path, wanted: &HidMatch) -> Option<PathBuf> {
    let mut names: Vec<String> = fs::read_dir(class)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hidraw"))
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let uevent = fs::read_to_string(class.join(&name).join("device/uevent")).ok()?;
        wanted
            .matches_uevent(&uevent)
            .then(|| Path::new("/dev").join(&name))
    })
}

/// Waits (polling every 50 ms, only while attaching) until the node exists
/// in /dev too.
pub async fn wait_for(wanted: &HidMatch, timeout: Duration) -> Option<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(node) = find(Path::new(HIDRAW_CLASS), wanted) {
            if node.exists() {
                return Some(node);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A user to give nodes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// The user `sudo` ran us for (`SUDO_UID`/`SUDO_GID`), if any.
    pub fn from_sudo() -> Option<Owner> {
        let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
        let gid = std::env::var("SUDO_GID")
            .ok()
            .and_then(|g| g.parse().ok())
            .unwrap_or(uid);
        Some(Owner { uid, gid })
    }

    /// A user by name or number, from `/etc/passwd` (`passwd` is its text).
    pub fn parse(user: &str, passwd: &str) -> Result<Owner, String> {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if let [name, _, uid, gid, ..] = fields[..] {
                if name == user || uid == user {
                    if let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse()) {
                        return Ok(Owner { uid, gid });
                    }
                }
            }
        }
        if let Ok(uid) = user.parse::<u32>() {
            return Ok(Owner { uid, gid: uid });
        }
        Err(format!("no user {user:?} in /etc/passwd"))
    }

    /// Makes `node` this user's, mode 0600.
    pub fn give(&self, node: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::chown(node, Some(self.uid), Some(self.gid))?;
        fs::set_permissions(node, fs::Permissions::from_mode(0o600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> HidMatch {
        HidMatch {
            vendor: 0x1209,
            product: 0x000A,
            serial: "ABC123".into(),
        }
    }

    #[test]
    fn uevents_match_on_id_and_serial() {
        let ok = "DRIVER=hid-generic\nHID_ID=0003:00001209:0000000A\nHID_NAME=ferrokey\nHID_UNIQ=ABC123\n";
        assert!(wanted().matches_uevent(ok));
        assert!(!wanted().matches_uevent(&ok.replace("ABC123", "ABC124")));
        assert!(!wanted().matches_uevent(&ok.replace("0000000A", "0000000B")));
        assert!(!wanted().matches_uevent("HID_UNIQ=ABC123\n"));
    }

    #[test]
    fn nodes_are_found_in_a_class_directory() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, uniq) in [("hidraw0", "OTHER"), ("hidraw3", "ABC123")] {
            let dev = tmp.path().join(name).join("device");
            fs::create_dir_all(&dev).unwrap();
            fs::write(
                dev.join("uevent"),
                format!("HID_ID=0003:00001209:0000000A\nHID_UNIQ={uniq}\n"),
            )
            .unwrap();
        }
        assert_eq!(
            find(tmp.path(), &wanted()),
            Some(PathBuf::from("/dev/hidraw3"))
        );
        assert_eq!(find(&tmp.path().join("none"), &wanted()), None);
    }

    #[test]
    fn owners_by_name_or_number() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001::/home/alice:/bin/sh\n";
        assert_eq!(
            Owner::parse("alice", passwd),
            Ok(Owner {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            Owner::parse("1000", passwd),
            Ok(Owner {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            Owner::parse("4242", passwd),
            Ok(Owner {
                uid: 4242,
                gid: 4242
            })
        );
        assert!(Owner::parse("mallory", passwd).is_err());
    }
}
