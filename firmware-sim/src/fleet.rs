//! The fleet: the set of running keys of one process, changed while it runs.
//!
//! - [`Fleet::add`] builds a key from [`KeyOptions`] (a fresh state directory
//!   `<root>/key-N`, the lowest free N, and the lowest free busid, so it shows
//!   in `usbip list -r` at once); `--keys N` keys are added the same way with
//!   their numbers ([`Fleet::add_numbered`]).
//! - [`Fleet::remove`] unplugs a key (the host sees a disconnect), stops its
//!   task and deletes its state directory.
//! - [`Fleet::list`], [`Fleet::get`]: [`KeyInfo`] and [`KeyRef`] of the keys.
//! - [`KeyRef::call`] runs a closure with the key's [`KeyCore`] on the key's
//!   own task, between two reports: no lock around the core.
//!
//! A fleet is cheap to clone (an `Arc` inside). Every key publishes its events
//! on the fleet's [`EventBus`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::cli::state::key_dir;
use crate::events::{EventBus, EventKind, KeyId};
use crate::identity::Aaguid;
use crate::key::build::KeyBuilder;
use crate::key::options::InvalidOptions;
use crate::key::power::PowerCycled;
use crate::key::runtimes::KeyRuntimes;
use crate::key::task::{self, KeyLabel, KeyMsg, KeyShared, KeyTransport};
use crate::key::{self as key_mod, KeyCore, KeyOptions};
use crate::presence::PresenceSwitch;
use crate::transport::uhid::{CreateParams, BUS_USB, UHID_PATH};
use crate::transport::Transport;
use crate::usb::hid::REPORT_DESCRIPTOR;
use crate::usbip::exports::{slot_address, Exported, Exports};
use crate::usbip::KeySwitch;

/// The highest key number (`<root>/key-N`).
pub const MAX_KEY_NUMBER: u32 = 100_000;

/// Why a fleet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The options do not make a key.
    #[error("invalid key options: {0}")]
    InvalidOptions(#[from] InvalidOptions),
    /// No key has this id (never had, or removed).
    #[error("no key with id {0}")]
    NoSuchKey(KeyId),
    /// Key number N is served already.
    #[error("key {0} is already running")]
    NumberTaken(u32),
    /// No busid is free.
    #[error("{0}")]
    NoSlot(String),
    /// Building the key failed (state directory, identity, core).
    #[error("{0:#}")]
    Build(anyhow::Error),
    /// The key has no power (its core is off).
    #[error("key {0} is powered off")]
    PoweredOff(KeyId),
    /// The key's task has ended.
    #[error("key {0} has stopped")]
    Stopped(KeyId),
}

/// A key as the fleet describes it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// Its id in this process (never reused).
    #[serde(serialize_with = "id_text")]
    pub id: KeyId,
    /// Its number: its state is `<root>/key-N`.
    pub number: u32,
    /// Its USB/IP busid.
    pub busid: String,
    /// Its USB serial number.
    pub serial: String,
    /// Its AAGUID (UUID text).
    pub aaguid: String,
    /// The options it was built from.
    pub options: KeyOptions,
    /// Whether it has power.
    pub powered: bool,
    /// Whether a host holds it.
    pub attached: bool,
    /// How hosts reach it (`usbip`, `attach`, `uhid`).
    pub transport: &'static str,
    /// Its state directory.
    pub state_dir: PathBuf,
}

fn id_text<S: serde::Serializer>(id: &KeyId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}

/// One running key, as the fleet keeps it.
struct Member {
    id: KeyId,
    number: u32,
    slot: usize,
    busid: String,
    serial: String,
    aaguid: [u8; 16],
    options: KeyOptions,
    dir: PathBuf,
    tx: mpsc::UnboundedSender<KeyMsg>,
    shared: Arc<KeyShared>,
    switch: PresenceSwitch,
    done: Mutex<Option<oneshot::Receiver<()>>>,
    transport: Transport,
}

/// A handle on one running key; cheap to clone. It does not keep a removed
/// key alive: its operations then fail with [`FleetError::Stopped`].
#[derive(Clone)]
pub struct KeyRef {
    member: Arc<Member>,
}

impl std::fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRef")
            .field("id", &self.member.id)
            .field("busid", &self.member.busid)
            .finish()
    }
}

impl KeyRef {
    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.member.id
    }

    /// The key's number (`<root>/key-N`).
    pub fn number(&self) -> u32 {
        self.member.number
    }

    /// What the key is and its state now.
    pub fn info(&self) -> KeyInfo {
        let m = &self.member;
        KeyInfo {
            id: m.id,
            number: m.number,
            busid: m.busid.clone(),
            serial: m.serial.clone(),
            aaguid: Aaguid(m.aaguid).to_string(),
            options: m.options.clone(),
            powered: m.shared.is_powered(),
            attached: m.shared.is_attached(),
            transport: m.transport.name(),
            state_dir: m.dir.clone(),
        }
    }

    /// The presence switch: the button (touch), the presence policy and the
    /// built-in UV overrides. Changes wake the key.
    pub fn switch(&self) -> &PresenceSwitch {
        &self.member.switch
    }

    pub(crate) fn mailbox(&self) -> &mpsc::UnboundedSender<KeyMsg> {
        &self.member.tx
    }

    pub(crate) fn shared(&self) -> &KeyShared {
        &self.member.shared
    }

    /// The USB devid (`busnum << 16 | devnum`) of the key's slot.
    pub fn devid(&self) -> u32 {
        let (bus, dev, _) = slot_address(self.member.slot);
        bus << 16 | dev
    }

    /// How to find the key's hidraw node.
    pub fn hid_match(&self) -> crate::transport::hidraw::HidMatch {
        crate::transport::hidraw::HidMatch {
            vendor: self.member.options.vendor_id,
            product: self.member.options.product_id,
            serial: self.member.serial.clone(),
        }
    }

    /// The key's power switch for the control API of `crate::control`.
    pub fn key_switch(&self) -> KeySwitch {
        KeySwitch::new(
            self.member.busid.clone(),
            &self.member.tx,
            Arc::clone(&self.member.shared),
        )
    }

    /// Unplugs (`false`) or replugs (`true`) the key; returns whether it has
    /// power afterwards (false after a failed power-up).
    pub async fn power(&self, on: bool) -> Result<bool, FleetError> {
        crate::usbip::set_power_of(&self.member.tx, &self.member.shared, on)
            .await
            .ok_or(FleetError::Stopped(self.member.id))
    }

    /// Runs `f` with the key's core on the key's own task, between two
    /// reports, and returns its result. Fails if the key is powered off or
    /// has stopped.
    pub async fn call<R, F>(&self, f: F) -> Result<R, FleetError>
    where
        F: FnOnce(&mut KeyCore) -> R + Send + 'static,
        R: Send + 'static,
    {
        let id = self.member.id;
        let (tx, rx) = oneshot::channel();
        let job: task::CallFn = Box::new(move |core| {
            let result = match core.downcast_mut::<PowerCycled<KeyCore>>() {
                Some(cycled) => cycled.core_mut().map(f).ok_or(FleetError::PoweredOff(id)),
                None => Err(FleetError::Stopped(id)),
            };
            let _ = tx.send(result);
        });
        self.member
            .tx
            .send(KeyMsg::Call(job))
            .map_err(|_| FleetError::Stopped(id))?;
        rx.await.map_err(|_| FleetError::Stopped(id))?
    }
}

/// What the fleet needs to start.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// The state root (`<root>/ca`, `<root>/key-N`).
    pub root: PathBuf,
    /// Country of the attestation CA, if it is created now.
    pub country: String,
    /// Key runtime threads.
    pub threads: usize,
    /// How hosts reach the keys (`usbip`, `attach` or `uhid`; not `auto`).
    pub transport: Transport,
}

#[derive(Default)]
struct State {
    members: BTreeMap<KeyId, Arc<Member>>,
    /// Numbers of running keys and keys being built.
    numbers: BTreeSet<u32>,
}

struct Inner {
    builder: KeyBuilder,
    runtimes: KeyRuntimes,
    exports: Arc<Exports>,
    bus: EventBus,
    state: Mutex<State>,
    next_id: AtomicU64,
    transport: Transport,
}

/// The running keys (see the module documentation).
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("root", &self.inner.builder.root())
            .field("keys", &self.lock().members.len())
            .finish()
    }
}

impl Fleet {
    /// Opens the state root (creating it and its attestation CA if needed)
    /// and starts the key runtimes. Blocking.
    pub fn open(config: &FleetConfig) -> anyhow::Result<Self> {
        let bus = EventBus::new();
        let builder = KeyBuilder::open(&config.root, &config.country, bus.clone())?;
        Ok(Fleet {
            inner: Arc::new(Inner {
                builder,
                runtimes: KeyRuntimes::new(config.threads)?,
                exports: Exports::new(),
                bus,
                state: Mutex::new(State::default()),
                next_id: AtomicU64::new(1),
                transport: config.transport,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.inner.builder.root()
    }

    /// The event bus every key publishes on.
    pub fn events(&self) -> &EventBus {
        &self.inner.bus
    }

    /// The keys offered over USB/IP (give it to [`crate::usbip::Server::bind_with`]).
    pub fn exports(&self) -> Arc<Exports> {
        Arc::clone(&self.inner.exports)
    }

    /// Adds a new key: state directory `<root>/key-N` for the lowest N that is
    /// neither running nor present on disk, the lowest free busid.
    pub async fn add(&self, options: KeyOptions) -> Result<KeyInfo, FleetError> {
        self.add_key(None, options).await
    }

    /// Adds key `number` (its state `<root>/key-N` is used if it exists), on
    /// busid slot N (`1-N` for N ≤ 127). For the keys of `--keys`.
    pub async fn add_numbered(
        &self,
        number: u32,
        options: KeyOptions,
    ) -> Result<KeyInfo, FleetError> {
        self.add_key(Some(number), options).await
    }

    async fn add_key(
        &self,
        wanted: Option<u32>,
        options: KeyOptions,
    ) -> Result<KeyInfo, FleetError> {
        options.validate()?;
        let (id, number) = self.reserve_number(wanted)?;
        let slot = match self.inner.exports.reserve(wanted.map(|n| n as usize - 1)) {
            Ok(slot) => slot,
            Err(error) => {
                self.lock().numbers.remove(&number);
                return Err(FleetError::NoSlot(error.to_string()));
            }
        };
        let added = self.start(id, number, slot, options).await;
        if added.is_err() {
            self.inner.exports.withdraw(slot);
            self.lock().numbers.remove(&number);
        }
        added
    }

    /// Adds a new key like [`Fleet::add`], whose state directory `seed`
    /// fills first (for a clone: the state of another key). The directory is
    /// created empty (0700) before `seed` runs, and deleted if `seed` or the
    /// start fails.
    pub async fn add_seeded<F, Fut>(
        &self,
        options: KeyOptions,
        seed: F,
    ) -> Result<KeyInfo, FleetError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<(), FleetError>>,
    {
        options.validate()?;
        let (id, number) = self.reserve_number(None)?;
        let dir = key_dir(self.root(), number);
        let release = |fleet: &Fleet| {
            let _ = std::fs::remove_dir_all(&dir);
            fleet.lock().numbers.remove(&number);
        };
        if let Err(e) = crate::storage::create_private_dir(&dir) {
            release(self);
            return Err(FleetError::Build(e.into()));
        }
        if let Err(e) = seed(dir.clone()).await {
            release(self);
            return Err(e);
        }
        let slot = match self.inner.exports.reserve(None) {
            Ok(slot) => slot,
            Err(error) => {
                release(self);
                return Err(FleetError::NoSlot(error.to_string()));
            }
        };
        let added = self.start(id, number, slot, options).await;
        if added.is_err() {
            self.inner.exports.withdraw(slot);
            release(self);
        }
        added
    }

    fn reserve_number(&self, wanted: Option<u32>) -> Result<(KeyId, u32), FleetError> {
        let mut state = self.lock();
        let number = match wanted {
            Some(n) if n == 0 || n > MAX_KEY_NUMBER => {
                return Err(FleetError::NoSlot(format!(
                    "key numbers go from 1 to {MAX_KEY_NUMBER}"
                )))
            }
            Some(n) if state.numbers.contains(&n) => return Err(FleetError::NumberTaken(n)),
            Some(n) => n,
            None => (1..=MAX_KEY_NUMBER)
                .find(|&n| !state.numbers.contains(&n) && !key_dir(self.root(), n).exists())
                .ok_or_else(|| FleetError::NoSlot("no free key number".into()))?,
        };
        state.numbers.insert(number);
        let id = KeyId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        Ok((id, number))
    }

    async fn start(
        &self,
        id: KeyId,
        number: u32,
        slot: usize,
        options: KeyOptions,
    ) -> Result<KeyInfo, FleetError> {
        let inner = Arc::clone(&self.inner);
        let built_options = options.clone();
        let built =
            tokio::task::spawn_blocking(move || inner.builder.build(id, number, &built_options))
                .await
                .map_err(|e| {
                    FleetError::Build(anyhow::anyhow!("building key {number} failed: {e}"))
                })?
                .map_err(FleetError::Build)?;
        if let Some(other) = self
            .lock()
            .members
            .values()
            .find(|m| m.serial == built.usb.serial)
        {
            return Err(FleetError::Build(anyhow::anyhow!(
                "{} has serial {}, which key {} already uses; give it a new one by editing or deleting that file",
                built.dir.join(crate::identity::IDENTITY_FILE).display(),
                built.usb.serial,
                other.number
            )));
        }
        // A device-bound state directory makes a device-bound key, whatever was asked.
        let options = KeyOptions {
            exportable: options.exportable && !crate::lifecycle::policy::is_marked(&built.dir),
            ..options
        };
        let (busnum, devnum, busid) = slot_address(slot);
        built.label.set(&busid);
        let info = key_mod::device_info(&busid, busnum, devnum, &built.usb);
        let serial = built.usb.serial.clone();
        let label = KeyLabel {
            id,
            name: busid.clone(),
            bus: self.inner.bus.clone(),
        };
        let transport = match self.inner.transport {
            Transport::Uhid => KeyTransport::Uhid {
                path: PathBuf::from(UHID_PATH),
                params: CreateParams {
                    name: format!("{} {}", built.usb.manufacturer, built.usb.product),
                    phys: format!("ferrokey/key-{number}"),
                    uniq: built.usb.serial.clone(),
                    bus: BUS_USB,
                    vendor: u32::from(built.usb.vendor_id),
                    product: u32::from(built.usb.product_id),
                    version: u32::from(built.usb.device_release),
                    descriptor: REPORT_DESCRIPTOR.to_vec(),
                },
            },
            _ => KeyTransport::Usb,
        };
        let handle = task::spawn(
            &self.inner.runtimes,
            label,
            built.usb,
            built.core,
            built.wake,
            transport,
        )
        .map_err(|e| FleetError::Build(anyhow::anyhow!("starting key {number}: {e}")))?;
        let member = Arc::new(Member {
            id,
            number,
            slot,
            busid: busid.clone(),
            serial: serial.clone(),
            aaguid: built.aaguid,
            // The PIN went into the key when it was built; it is not kept.
            options: KeyOptions {
                pin: None,
                ..options
            },
            dir: built.dir,
            tx: handle.tx.clone(),
            shared: Arc::clone(&handle.shared),
            switch: built.switch,
            done: Mutex::new(Some(handle.done)),
            transport: self.inner.transport,
        });
        self.inner.exports.publish(
            slot,
            Exported {
                info,
                tx: handle.tx,
                shared: handle.shared,
            },
        );
        self.lock().members.insert(id, Arc::clone(&member));
        self.inner.bus.publish(
            id,
            EventKind::Plugged,
            json!({ "busid": busid, "serial": serial, "number": number, "transport": self.inner.transport.name() }),
        );
        Ok(KeyRef { member }.info())
    }

    /// Removes a key: the host sees an unplug, the key's task stops, and its
    /// state directory is deleted. Returns once all of it is done.
    pub async fn remove(&self, id: KeyId) -> Result<(), FleetError> {
        let member = self
            .lock()
            .members
            .remove(&id)
            .ok_or(FleetError::NoSuchKey(id))?;
        self.inner.exports.withdraw(member.slot);
        stop(&member).await;
        let dir = member.dir.clone();
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dir)).await;
        self.lock().numbers.remove(&member.number);
        self.inner.bus.publish(
            id,
            EventKind::Unplugged,
            json!({ "busid": member.busid, "number": member.number }),
        );
        match removed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Ok(Err(e)) => Err(FleetError::Build(anyhow::anyhow!(
                "key {} was stopped but its state {} could not be deleted: {e}",
                member.number,
                member.dir.display()
            ))),
            Err(e) => Err(FleetError::Build(anyhow::anyhow!(
                "deleting key state: {e}"
            ))),
        }
    }

    /// Every running key, by id.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.refs().iter().map(KeyRef::info).collect()
    }

    /// Handles on every running key, by id.
    pub fn refs(&self) -> Vec<KeyRef> {
        self.lock()
            .members
            .values()
            .map(|m| KeyRef {
                member: Arc::clone(m),
            })
            .collect()
    }

    /// The key with this id.
    pub fn get(&self, id: KeyId) -> Option<KeyRef> {
        self.lock().members.get(&id).map(|m| KeyRef {
            member: Arc::clone(m),
        })
    }

    /// The key with this number.
    pub fn get_by_number(&self, number: u32) -> Option<KeyRef> {
        self.lock()
            .members
            .values()
            .find(|m| m.number == number)
            .map(|m| KeyRef {
                member: Arc::clone(m),
            })
    }

    /// Stops every key (their state stays) and waits until their cores are
    /// dropped.
    pub async fn shutdown(&self) {
        let members: Vec<Arc<Member>> = std::mem::take(&mut self.lock().members)
            .into_values()
            .collect();
        for member in &members {
            self.inner.exports.withdraw(member.slot);
            let _ = member.tx.send(KeyMsg::Stop);
        }
        for member in &members {
            stop(member).await;
        }
    }
}

/// Tells a key to stop and waits until its task has ended.
async fn stop(member: &Member) {
    let _ = member.tx.send(KeyMsg::Stop);
    let done = member.done.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(done) = done {
        let _ = done.await;
    }
}
