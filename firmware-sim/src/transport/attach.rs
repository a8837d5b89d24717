//! Keeps keys attached to the local `vhci_hcd` (`--transport attach`) and
//! hands their hidraw nodes to the user (`attach` and `uhid`).
//!
//! For each key: a socket pair is made, one end given to the kernel through
//! `vhci_hcd`'s sysfs `attach` file (the kernel only asks for SOCK_STREAM),
//! the other handed to the key's task, which serves the URB stream as it
//! serves a USB/IP import. No TCP port is opened and no other process can
//! import the key. When the link ends (power off, `usbip detach`, the kernel
//! dropping it) the key is attached again once it has power. If the process
//! dies, its end of the pair closes and the kernel drops the device itself.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::hidraw::{self, Owner};
use super::vhci::Vhci;
use crate::events::{EventBus, EventKind, KeyId};
use crate::fleet::KeyRef;
use crate::key::task::{Attach, KeyMsg};
use crate::usbip::link::HostSocket;
use crate::usbip::proto::SPEED_FULL;

/// How long the kernel may take to make the hidraw node.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(20);

/// Attaches keys to the local vhci controller (see the module documentation).
#[derive(Debug)]
pub struct Attacher {
    vhci: Vhci,
    owner: Option<Owner>,
    /// Port choice and attach are one step at a time.
    attaching: tokio::sync::Mutex<()>,
    /// The port each attached key holds.
    ports: Mutex<BTreeMap<KeyId, u32>>,
}

impl Attacher {
    /// An attacher on `vhci`, giving nodes to `owner`.
    pub fn new(vhci: Vhci, owner: Option<Owner>) -> Arc<Self> {
        Arc::new(Attacher {
            vhci,
            owner,
            attaching: tokio::sync::Mutex::new(()),
            ports: Mutex::new(BTreeMap::new()),
        })
    }

    fn ports(&self) -> std::sync::MutexGuard<'_, BTreeMap<KeyId, u32>> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attaches `key` once; returns the vhci port.
    async fn attach(&self, key: &KeyRef) -> Result<u32, String> {
        let _one_at_a_time = self.attaching.lock().await;
        if !key.shared().claim() {
            return Err("the key is attached already".into());
        }
        let attached = (|| {
            let (ours, theirs) =
                std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
            let port = self
                .vhci
                .free_port()
                .map_err(|e| format!("reading the vhci status: {e}"))?
                .ok_or("every vhci port is in use")?;
            self.vhci
                .attach(port, theirs.as_raw_fd(), key.devid(), SPEED_FULL)
                .map_err(|e| format!("writing to {}/attach: {e}", super::vhci::VHCI_DIR))?;
            // The kernel holds its own reference to the socket now.
            drop(theirs);
            Ok::<_, String>((port, ours))
        })();
        let (port, ours) = match attached {
            Ok(done) => done,
            Err(error) => {
                key.shared().release();
                return Err(error);
            }
        };
        let handed = key.mailbox().send(KeyMsg::Attach(Attach {
            socket: HostSocket::Unix(ours),
            devid: key.devid(),
            input: Vec::new(),
            peer: format!("vhci port {port}"),
            transport: "attach",
        }));
        if handed.is_err() {
            key.shared().release();
            let _ = self.vhci.detach(port);
            return Err("the key has stopped".into());
        }
        self.ports().insert(key.id(), port);
        Ok(port)
    }

    /// Keeps `key` attached while it has power, until the bus closes.
    pub async fn keep_attached(self: Arc<Self>, key: KeyRef, bus: EventBus) {
        let mut events = bus.subscribe();
        loop {
            if key.shared().is_powered() && !key.shared().is_attached() {
                match self.attach(&key).await {
                    Ok(port) => {
                        announce(&key, self.owner, &format!("attached on vhci port {port}")).await;
                    }
                    Err(error) => tracing::error!(key = key.number(), "cannot attach: {error}"),
                }
            }
            // Wait for the key to lose its host or get power back.
            loop {
                match events.recv().await {
                    Ok(event) if event.key == key.id() => match event.kind {
                        EventKind::Released => {
                            self.ports().remove(&key.id());
                            break;
                        }
                        EventKind::PowerOn => break,
                        EventKind::Unplugged => return,
                        _ => {}
                    },
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
            // The kernel frees the old port shortly after the link ends.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Detaches every key this attacher attached (at shutdown; the keys'
    /// sockets closing would make the kernel do it too).
    pub fn detach_all(&self) {
        let ports = std::mem::take(&mut *self.ports());
        for (key, port) in ports {
            if let Err(error) = self.vhci.detach(port) {
                tracing::debug!(%key, port, %error, "detach");
            }
        }
    }
}

/// Waits for `key`'s hidraw node, gives it to `owner` and says where it is.
pub async fn announce(key: &KeyRef, owner: Option<Owner>, how: &str) -> Option<PathBuf> {
    let Some(node) = hidraw::wait_for(&key.hid_match(), NODE_TIMEOUT).await else {
        tracing::error!(
            key = key.number(),
            "no hidraw node appeared within {NODE_TIMEOUT:?} (is usbhid / hid-generic loaded?)"
        );
        return None;
    };
    let mut whose = String::new();
    if let Some(owner) = owner {
        match owner.give(&node) {
            Ok(()) => whose = format!(", owner uid {} mode 0600", owner.uid),
            Err(error) => {
                tracing::warn!(key = key.number(), node = %node.display(), %error, "cannot give the node to its user")
            }
        }
    }
    tracing::info!("key-{} {how}: {}{whose}", key.number(), node.display());
    Some(node)
}

/// With uhid: says where each key's node is, again after each power-up.
pub async fn announce_uhid(key: KeyRef, owner: Option<Owner>, bus: EventBus) {
    let mut events = bus.subscribe();
    loop {
        if key.shared().is_powered() {
            announce(&key, owner, "is a uhid device").await;
        }
        loop {
            match events.recv().await {
                Ok(event) if event.key == key.id() && event.kind == EventKind::PowerOn => break,
                Ok(event) if event.key == key.id() && event.kind == EventKind::Unplugged => return,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }
}
