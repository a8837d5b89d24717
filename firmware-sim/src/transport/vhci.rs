//! The local `vhci_hcd` through sysfs: what `usbip attach` does after its
//! OP_REQ_IMPORT handshake, done in-process (no `usbip` program needed).
//!
//! `/sys/devices/platform/vhci_hcd.0/` has `status` (one line per port:
//! hub, port, state, speed, devid, sockfd, busid), `attach` (write
//! `"<port> <sockfd> <devid> <speed>"`: the kernel takes its own reference to
//! the socket and speaks CMD_SUBMIT/UNLINK on it) and `detach` (write
//! `"<port>"`). Full- and high-speed devices go on `hs` ports.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The first vhci controller's sysfs directory.
pub const VHCI_DIR: &str = "/sys/devices/platform/vhci_hcd.0";
/// `VDEV_ST_NULL`: a free port.
const PORT_FREE: u32 = 4;

/// One port line of `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// `hs` or `ss`.
    pub hub: String,
    /// The port number to write to `attach`/`detach`.
    pub port: u32,
    /// `VDEV_ST_*` (4: free, 6: used).
    pub state: u32,
    /// The attached device's devid (0 when free).
    pub devid: u32,
}

/// Parses a `status` file (the header line is skipped; malformed lines too).
pub fn parse_status(text: &str) -> Vec<PortStatus> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let hub = words.next()?;
            if hub != "hs" && hub != "ss" {
                return None;
            }
            let port = words.next()?.parse().ok()?;
            let state = words.next()?.parse().ok()?;
            let _speed = words.next()?;
            let devid = u32::from_str_radix(words.next()?, 16).ok()?;
            Some(PortStatus {
                hub: hub.to_string(),
                port,
                state,
                devid,
            })
        })
        .collect()
}

/// Whether `modprobe` can find the `vhci-hcd` module for the running kernel.
pub fn module_available() -> bool {
    Command::new("modprobe")
        .args(["-n", "-q", "vhci-hcd"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The local vhci controller.
#[derive(Clone, Debug)]
pub struct Vhci {
    dir: PathBuf,
}

impl Vhci {
    /// The controller, if the module is loaded.
    pub fn find() -> Option<Vhci> {
        Vhci::at(Path::new(VHCI_DIR))
    }

    /// The controller at `dir` (for tests).
    pub fn at(dir: &Path) -> Option<Vhci> {
        dir.join("attach").exists().then(|| Vhci {
            dir: dir.to_path_buf(),
        })
    }

    /// The controller, loading `vhci-hcd` first if needed; the error says
    /// what to do.
    pub fn find_or_load() -> Result<Vhci, String> {
        if let Some(vhci) = Vhci::find() {
            return Ok(vhci);
        }
        let loaded = Command::new("modprobe").arg("vhci-hcd").output();
        match loaded {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(format!(
                    "the vhci-hcd module is not loaded and `modprobe vhci-hcd` failed: {}; install your kernel's extra modules (e.g. linux-modules-extra-$(uname -r)), or use --transport uhid",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => return Err(format!("the vhci-hcd module is not loaded and modprobe could not run: {e}")),
        }
        // The platform device appears right after the module loads.
        for _ in 0..50 {
            if let Some(vhci) = Vhci::find() {
                return Ok(vhci);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(format!("vhci-hcd loaded but {VHCI_DIR} did not appear"))
    }

    /// Every port of every controller this directory lists.
    pub fn ports(&self) -> io::Result<Vec<PortStatus>> {
        let mut ports = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "status" || name.starts_with("status.") {
                ports.extend(parse_status(&fs::read_to_string(entry.path())?));
            }
        }
        ports.sort_by_key(|p| p.port);
        Ok(ports)
    }

    /// A free high-speed (`hs`) port.
    pub fn free_port(&self) -> io::Result<Option<u32>> {
        Ok(self
            .ports()?
            .into_iter()
            .find(|p| p.hub == "hs" && p.state == PORT_FREE)
            .map(|p| p.port))
    }

    /// Attaches the device `devid` speaking on socket `fd` to `port`.
    pub fn attach(&self, port: u32, fd: i32, devid: u32, speed: u32) -> io::Result<()> {
        fs::write(
            self.dir.join("attach"),
            format!("{port} {fd} {devid} {speed}"),
        )
    }

    /// Detaches `port`.
    pub fn detach(&self, port: u32) -> io::Result<()> {
        fs::write(self.dir.join("detach"), format!("{port}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "hub port sta spd dev      sockfd local_busid
hs  0000 006 002 00010002 000003 1-1
hs  0001 004 000 00000000 000000 0-0
ss  0008 004 000 00000000 000000 0-0
garbage line
";

    #[test]
    fn status_lines_parse() {
        let ports = parse_status(STATUS);
        assert_eq!(ports.len(), 3);
        assert_eq!(ports[0].port, 0);
        assert_eq!(ports[0].state, 6);
        assert_eq!(ports[0].devid, 0x0001_0002);
        assert_eq!(ports[2].hub, "ss");
    }

    #[test]
    fn free_high_speed_port_and_writes() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(Vhci::at(tmp.path()).is_none());
        fs::write(tmp.path().join("attach"), "").unwrap();
        fs::write(tmp.path().join("status"), STATUS).unwrap();
        fs::write(
            tmp.path().join("status.1"),
            "hub port sta spd dev sockfd local_busid\nhs  0016 004 000 00000000 000000 0-0\n",
        )
        .unwrap();
        let vhci = Vhci::at(tmp.path()).unwrap();
        assert_eq!(vhci.ports().unwrap().len(), 4);
        assert_eq!(vhci.free_port().unwrap(), Some(1));
        vhci.attach(1, 7, 0x0001_0001, 2).unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("attach")).unwrap(),
            "1 7 65537 2"
        );
        vhci.detach(1).unwrap();
        assert_eq!(fs::read_to_string(tmp.path().join("detach")).unwrap(), "1");
    }
}
