//! One key's task: its USB stack, its core, its timers and the stream of the
//! host that imported it, all on one thread of the [`KeyRuntimes`].
//!
//! # Event loop
//!
//! The key sleeps until one of: a message in its mailbox ([`KeyMsg`]: an
//! import, the power switch, a control call, stop), the host's stream
//! readable (or writable while replies wait), the core's next deadline
//! (`next_deadline()`; none when idle), or the external wake-up
//! (`Notify::notify_one`, e.g. from a presence answer). Then it alternates
//! "firmware" steps (`UsbDevice::poll` plus moving reports between the HID
//! class and the core, as a microcontroller main loop would) with "host
//! controller" steps ([`HostController::service`]) until nothing moves, and
//! writes the finished URBs back. An idle key with a host attached and an IN
//! URB pending has no timer armed and makes no wakeups.
//!
//! # Detach is an unplug; a bus reset is not
//!
//! When the host's stream ends (`usbip detach`, the client dies, the network
//! drops, the key is powered off), the key is unplugged from its host, and a
//! USB key is powered by its host: the core is powered down and up again
//! from its persistent state ([`ReportCore::power_off`],
//! [`ReportCore::power_on`]), so a re-attach is a power cycle, as replugging
//! a real key is. A USB bus reset (the host's `SET_FEATURE(PORT_RESET)`, or a
//! new import's enumeration) keeps power: only the transport is reset
//! ([`ReportCore::reset`]).
//!
//! # Limits on a host
//!
//! A host that imported the key but has not configured it within
//! [`CONFIGURE_TIMEOUT`] is not a USB host (a real one configures within
//! milliseconds): it is dropped, so a connection cannot sit on a key.

use std::any::Any;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, oneshot, Notify};
use usb_device::bus::UsbBusAllocator;
use usb_device::device::{
    StringDescriptors, UsbDevice, UsbDeviceBuilder, UsbDeviceState, UsbRev, UsbVidPid,
};

use super::runtimes::KeyRuntimes;
use super::{ReportCore, UsbIdentity, ECONNRESET, ESHUTDOWN, MAX_PENDING_URBS, POLL_INTERVAL_MS};
use crate::events::{EventBus, EventKind, KeyId};
use crate::transport::uhid::{CreateParams, UhidDevice, UhidEvent};
use crate::usb::bus::SimBus;
use crate::usb::hid::REPORT_SIZE;
use crate::usb::hid::{FidoHidClass, Report};
use crate::usb::host::{is_port_reset, Completion, HostController};
use crate::usbip::link::{HostCommand, HostSocket, LinkError, UrbLink};

/// How long an importing host may take to configure the key.
pub const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(30);

/// Input reports written to uhid per wakeup at most; the rest follow 1 ms
/// later, so a reader's hidraw buffer (64 reports) never overflows.
const UHID_BURST: usize = 32;

/// How hosts reach a key.
#[derive(Clone, Debug)]
pub enum KeyTransport {
    /// A USB device (USB/IP import or in-process vhci attach): hosts are
    /// handed to the key with [`KeyMsg::Attach`].
    Usb,
    /// A Linux uhid device the key creates itself (and again at each power-up).
    Uhid {
        /// The uhid character device (normally `/dev/uhid`).
        path: std::path::PathBuf,
        /// What the device is created with.
        params: CreateParams,
    },
}

/// A closure run on the key's task with its core (see [`KeyMsg::Call`]).
pub type CallFn = Box<dyn FnOnce(&mut dyn Any) + Send>;

/// A host's stream, handed to the key.
#[derive(Debug)]
pub struct Attach {
    /// The host's socket.
    pub socket: HostSocket,
    /// The devid the host's URBs must name.
    pub devid: u32,
    /// Bytes already read from the socket past the import request.
    pub input: Vec<u8>,
    /// Who it is (for logs and events): a peer address or "vhci".
    pub peer: String,
    /// The transport's name for events (`usbip`, `attach`).
    pub transport: &'static str,
}

/// A message to a key.
pub enum KeyMsg {
    /// A host imported the key (the import reply is already sent). The
    /// sender set [`KeyShared::attached`]; the key clears it when the host goes.
    Attach(Attach),
    /// Power switch: off unplugs the host and powers the core down; on powers
    /// it up again. `done` gets whether the key has power afterwards.
    Power {
        /// On or off.
        on: bool,
        /// Gets the power state afterwards.
        done: oneshot::Sender<bool>,
    },
    /// Runs a closure with the key's core (`&mut C` as `&mut dyn Any`)
    /// between two reports.
    Call(CallFn),
    /// Unplug, power down and end the task.
    Stop,
}

impl std::fmt::Debug for KeyMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyMsg::Attach(a) => write!(f, "Attach({})", a.peer),
            KeyMsg::Power { on, .. } => write!(f, "Power({on})"),
            KeyMsg::Call(_) => f.write_str("Call"),
            KeyMsg::Stop => f.write_str("Stop"),
        }
    }
}

/// State a key shares with the rest of the process.
#[derive(Debug)]
pub struct KeyShared {
    /// Whether the key has power (imports are refused while it has none).
    pub powered: AtomicBool,
    /// Whether a host holds the key (set by whoever hands it a host).
    pub attached: AtomicBool,
    /// Signalled when a host lets the key go.
    released: Notify,
}

impl KeyShared {
    /// Clears `attached` and wakes whoever waits for the key.
    pub fn release(&self) {
        self.attached.store(false, Ordering::Release);
        self.released.notify_waiters();
    }

    /// Claims the key for a host, waiting up to `patience` for the host
    /// holding it to be let go (a client that just detached and re-imports
    /// must not race the key noticing the detach). False if it stays held.
    pub async fn claim_within(&self, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.claim() {
                return true;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return false;
            }
        }
    }

    /// Claims the key for a host; false if another holds it.
    pub fn claim(&self) -> bool {
        self.attached
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether the key has power.
    pub fn is_powered(&self) -> bool {
        self.powered.load(Ordering::Acquire)
    }

    /// Whether a host holds the key.
    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }
}

/// A running key task.
#[derive(Debug)]
pub struct KeyHandle {
    /// The key's mailbox.
    pub tx: mpsc::UnboundedSender<KeyMsg>,
    /// Power and attach state.
    pub shared: Arc<KeyShared>,
    /// Completes when the task has ended (its core dropped).
    pub done: oneshot::Receiver<()>,
}

/// Who a key is, for logs and events.
#[derive(Clone, Debug)]
pub struct KeyLabel {
    /// Its fleet id.
    pub id: KeyId,
    /// A short name for logs (the busid, or `key-N`).
    pub name: String,
    /// Where its events go.
    pub bus: EventBus,
}

/// Starts a key task on `runtimes`; returns once its USB stack is built.
pub fn spawn<C: ReportCore + Send + 'static>(
    runtimes: &KeyRuntimes,
    label: KeyLabel,
    identity: UsbIdentity,
    core: C,
    wake: Arc<Notify>,
    transport: KeyTransport,
) -> io::Result<KeyHandle> {
    identity.validate()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(KeyShared {
        powered: AtomicBool::new(true),
        attached: AtomicBool::new(false),
        released: Notify::new(),
    });
    let task_shared = Arc::clone(&shared);
    // The core is tens of KB: kept on the heap once, not copied through the
    // task's future at each await point.
    let core = Box::new(core);
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
    let done = runtimes.spawn(move || {
        run(
            label,
            identity,
            core,
            wake,
            transport,
            task_shared,
            rx,
            ready_tx,
        )
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(KeyHandle { tx, shared, done }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(io::Error::other("the key task ended during start-up")),
    }
}

/// The key's whole life: builds the USB stack (borrowing the allocator this
/// future owns) and runs the event loop.
#[allow(clippy::too_many_arguments)]
async fn run<C: ReportCore + 'static>(
    label: KeyLabel,
    identity: UsbIdentity,
    core: Box<C>,
    wake: Arc<Notify>,
    transport: KeyTransport,
    shared: Arc<KeyShared>,
    rx: mpsc::UnboundedReceiver<KeyMsg>,
    ready: std::sync::mpsc::SyncSender<io::Result<()>>,
) {
    let fail = |what: String| {
        // The spawner is waiting on this; if it is gone there is nobody to tell.
        let _ = ready.send(Err(io::Error::other(what)));
    };
    let alloc = UsbBusAllocator::new(SimBus::new());
    let hid = match FidoHidClass::new(&alloc, POLL_INTERVAL_MS) {
        Ok(hid) => hid,
        Err(error) => return fail(format!("HID endpoints: {error:?}")),
    };
    let strings = [StringDescriptors::default()
        .manufacturer(&identity.manufacturer)
        .product(&identity.product)
        .serial_number(&identity.serial)];
    let usb = UsbDeviceBuilder::new(&alloc, UsbVidPid(identity.vendor_id, identity.product_id))
        .usb_rev(UsbRev::Usb200)
        .device_release(identity.device_release)
        .strings(&strings)
        .and_then(|builder| builder.max_packet_size_0(64))
        .and_then(|builder| builder.max_power(100));
    let usb = match usb {
        Ok(builder) => builder.build(),
        Err(error) => return fail(format!("USB device: {error:?}")),
    };
    let mut key = Key {
        label,
        usb,
        hid,
        core,
        host: HostController::new(),
        host_link: None,
        clock: Instant::now(),
        last_tick_ms: 0,
        shared,
        has_power: true,
        done: Vec::new(),
        uhid_setup: match transport {
            KeyTransport::Usb => None,
            KeyTransport::Uhid { path, params } => Some((path, params)),
        },
        uhid: None,
        uhid_backlog: false,
    };
    if let Err(error) = key.plug_uhid() {
        return fail(error.to_string());
    }
    let _ = ready.send(Ok(()));
    // Boxed: the key's state lives on the heap once, not in this future's
    // frame and again in `run`'s.
    Box::pin(key.run(rx, wake)).await;
}

/// The host holding the key.
struct HostLink {
    link: UrbLink,
    peer: String,
    /// Until when the host may take to configure the key (`None` once it has).
    configure_by: Option<tokio::time::Instant>,
}

struct Key<'a, C> {
    label: KeyLabel,
    usb: UsbDevice<'a, SimBus>,
    hid: FidoHidClass<'a, SimBus>,
    core: Box<C>,
    host: HostController,
    host_link: Option<HostLink>,
    clock: Instant,
    last_tick_ms: u64,
    shared: Arc<KeyShared>,
    /// Whether the core is powered up (the task's own view).
    has_power: bool,
    /// Completions to send (reused buffer).
    done: Vec<Completion>,
    /// With the uhid transport: how to create the device.
    uhid_setup: Option<(std::path::PathBuf, CreateParams)>,
    /// The uhid device while the key has power.
    uhid: Option<UhidDevice>,
    /// Input reports are left for the next uhid burst.
    uhid_backlog: bool,
}

/// What woke the key.
enum Wakeup {
    Message(Option<KeyMsg>),
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    Uhid(io::Result<()>),
    NotConfigured,
    Timer,
}

/// Upper bound on firmware/host alternations per event (a safety net; normal
/// traffic settles in a handful).
const MAX_PUMP_ROUNDS: usize = 10_000;

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn readable(link: Option<&HostLink>) -> io::Result<()> {
    match link {
        Some(host) => host.link.readable().await,
        None => std::future::pending().await,
    }
}

async fn uhid_readable(device: Option<&UhidDevice>) -> io::Result<()> {
    match device {
        Some(device) => device.readable().await,
        None => std::future::pending().await,
    }
}

async fn writable(link: Option<&HostLink>) -> io::Result<()> {
    match link {
        Some(host) => host.link.writable().await,
        None => std::future::pending().await,
    }
}

impl<C: ReportCore + 'static> Key<'_, C> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn publish(&self, kind: EventKind, payload: serde_json::Value) {
        self.label.bus.publish(self.label.id, kind, payload);
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<KeyMsg>, wake: Arc<Notify>) {
        self.reset_all();
        loop {
            // A deadline the core left in the past is retried no sooner than 1 ms
            // after the last tick, so a confused core cannot make us spin.
            let deadline = self.core.next_deadline().map(|ms| {
                let ms = ms.max(self.last_tick_ms.saturating_add(1));
                tokio::time::Instant::from(self.clock + Duration::from_millis(ms))
            });
            let configure_by = self.host_link.as_ref().and_then(|h| h.configure_by);
            let backlog = self
                .uhid_backlog
                .then(|| tokio::time::Instant::now() + Duration::from_millis(1));
            let wakeup = {
                let link = self.host_link.as_ref();
                let uhid = self.uhid.as_ref();
                tokio::select! {
                    biased;
                    message = rx.recv() => Wakeup::Message(message),
                    result = writable(link) => Wakeup::Writable(result),
                    result = readable(link) => Wakeup::Readable(result),
                    result = uhid_readable(uhid) => Wakeup::Uhid(result),
                    () = sleep_until(backlog) => Wakeup::Timer,
                    () = wake.notified() => Wakeup::Timer,
                    () = sleep_until(deadline) => Wakeup::Timer,
                    () = sleep_until(configure_by) => Wakeup::NotConfigured,
                }
            };
            match wakeup {
                Wakeup::Message(None | Some(KeyMsg::Stop)) => break,
                Wakeup::Message(Some(message)) => {
                    self.handle(message);
                    self.take_waiting_input();
                }
                Wakeup::Readable(Ok(())) => self.serve_host(),
                Wakeup::Readable(Err(error)) | Wakeup::Writable(Err(error)) => {
                    self.host_gone(&LinkError::Io(error).to_string(), true);
                }
                Wakeup::Writable(Ok(())) => {}
                Wakeup::Uhid(Ok(())) => self.serve_uhid(),
                Wakeup::Uhid(Err(error)) => {
                    tracing::error!(key = %self.label.name, %error, "uhid failed; the device is gone");
                    self.unplug_uhid("uhid failed");
                }
                Wakeup::NotConfigured => {
                    tracing::warn!(key = %self.label.name, timeout = ?CONFIGURE_TIMEOUT,
                        "the importing host never configured the key; dropping it");
                    self.host_gone("not configured in time", false);
                }
                Wakeup::Timer => self.take_waiting_input(),
            }
            self.last_tick_ms = self.now_ms();
            self.core.tick(self.last_tick_ms);
            self.pump();
            self.flush();
        }
        self.unplug_host("stopped");
        self.unplug_uhid("stopped");
        self.reset_all();
        if self.has_power {
            self.core.power_off();
            self.shared.powered.store(false, Ordering::Release);
        }
        tracing::debug!(key = %self.label.name, "key stopped");
    }

    fn handle(&mut self, message: KeyMsg) {
        match message {
            KeyMsg::Attach(attach) if !self.has_power || self.host_link.is_some() => {
                // Claimed just before the power went off: unplug it at once.
                tracing::info!(key = %self.label.name, peer = %attach.peer,
                    "import of an unpowered key dropped");
                if self.host_link.is_none() {
                    self.shared.release();
                }
            }
            KeyMsg::Attach(Attach {
                socket,
                devid,
                input,
                peer,
                transport,
            }) => {
                let link = match UrbLink::open(socket, devid, input) {
                    Ok(link) => link,
                    Err(error) => {
                        tracing::warn!(key = %self.label.name, %peer, %error, "cannot serve the host's socket");
                        self.shared.release();
                        return;
                    }
                };
                tracing::info!(key = %self.label.name, %peer, "attached");
                self.reset_all();
                self.publish(
                    EventKind::Imported,
                    json!({ "peer": peer, "transport": transport }),
                );
                self.host_link = Some(HostLink {
                    link,
                    peer,
                    configure_by: Some(tokio::time::Instant::now() + CONFIGURE_TIMEOUT),
                });
                // Commands the acceptor read past the import request.
                self.serve_host();
            }
            KeyMsg::Power { on, done } => {
                self.set_power(on);
                // The switch may have stopped waiting; the change stands anyway.
                let _ = done.send(self.has_power);
            }
            KeyMsg::Call(call) => call(&mut *self.core),
            KeyMsg::Stop => {}
        }
    }

    /// Takes the reports already waiting on either transport before a timer
    /// is acted on: a report that reached the key before its timer fired is
    /// not late, even if this task was held back by other keys' work.
    fn take_waiting_input(&mut self) {
        self.serve_host();
        self.serve_uhid();
    }

    /// Reads what the host sent and acts on each whole command.
    fn serve_host(&mut self) {
        let Some(host) = self.host_link.as_mut() else {
            return;
        };
        if let Err(error) = host.link.read_available() {
            return self.host_gone(&error.to_string(), error.is_routine());
        }
        loop {
            let Some(host) = self.host_link.as_mut() else {
                return;
            };
            match host.link.next_command() {
                Ok(Some(command)) => {
                    self.command(command);
                    self.last_tick_ms = self.now_ms();
                    self.core.tick(self.last_tick_ms);
                    self.pump();
                }
                Ok(None) => break,
                Err(error) => return self.host_gone(&error.to_string(), false),
            }
        }
        if let Some(host) = &self.host_link {
            match host.link.finished() {
                Ok(false) => {}
                Ok(true) => self.host_gone("the host closed the connection", true),
                Err(error) => self.host_gone(&error.to_string(), false),
            }
        }
    }

    fn command(&mut self, command: HostCommand) {
        match command {
            HostCommand::Submit(urb) => {
                if self.host.is_pending(urb.id) {
                    return self.host_gone("CMD_SUBMIT reuses the seqnum of a pending URB", false);
                }
                if self.host.pending() >= MAX_PENDING_URBS {
                    return self.host_gone("too many pending URBs", false);
                }
                if urb.endpoint == 0 && is_port_reset(&urb.setup) {
                    // SET_FEATURE(PORT_RESET) forwarded by the client: a USB
                    // bus reset. The key keeps power (see the module docs).
                    tracing::info!(key = %self.label.name, "USB reset requested");
                    let mut cut_off = Vec::new();
                    self.host
                        .drain_ids(|id| cut_off.push(Completion::failed(id, ESHUTDOWN)));
                    self.reset_all();
                    cut_off.push(Completion::failed(urb.id, 0));
                    return self.complete_all(cut_off);
                }
                if let Err(completion) = self.host.submit(self.usb.bus(), urb) {
                    self.complete_all(vec![completion]);
                }
            }
            HostCommand::Unlink { seqnum, target } => {
                let status = if self.host.unlink(target) {
                    ECONNRESET
                } else {
                    0
                };
                if let Some(host) = self.host_link.as_mut() {
                    host.link.unlinked(seqnum, status);
                }
            }
        }
    }

    fn complete_all(&mut self, completions: Vec<Completion>) {
        if let Some(host) = self.host_link.as_mut() {
            for completion in &completions {
                host.link.complete(completion);
            }
        }
    }

    /// Writes pending replies; a failed write ends the host's link.
    fn flush(&mut self) {
        let Some(host) = self.host_link.as_mut() else {
            return;
        };
        if host.configure_by.is_some() && self.usb.state() == UsbDeviceState::Configured {
            host.configure_by = None;
        }
        if let Err(error) = host.link.flush() {
            let routine = LinkError::Io(error);
            let text = routine.to_string();
            self.host_gone(&text, routine.is_routine());
        }
    }

    /// Drops the host's link without a power cycle (power off, stop).
    fn unplug_host(&mut self, reason: &str) -> bool {
        let Some(host) = self.host_link.take() else {
            return false;
        };
        tracing::info!(key = %self.label.name, peer = %host.peer, reason, "detached");
        drop(host);
        self.shared.release();
        self.publish(EventKind::Released, json!({ "reason": reason }));
        true
    }

    /// The host is gone (see "Detach is an unplug"): the core is powered
    /// down and up again, without refusing imports meanwhile.
    fn host_gone(&mut self, reason: &str, routine: bool) {
        if !routine {
            if let Some(host) = &self.host_link {
                tracing::warn!(key = %self.label.name, peer = %host.peer, reason, "closing the host's link");
            }
        }
        if !self.unplug_host(reason) {
            return;
        }
        self.reset_all();
        if !self.has_power {
            return;
        }
        self.core.power_off();
        self.publish(EventKind::PowerOff, json!({ "reason": "unplugged" }));
        self.power_up();
        if !self.has_power {
            tracing::error!(key = %self.label.name, "the key failed to power up after a detach; it stays off");
        }
    }

    /// Powers the core up from its persistent state and publishes whether it
    /// worked. The clock restarts: `now_ms` counts from power-up, as on a
    /// real key.
    fn power_up(&mut self) {
        self.clock = Instant::now();
        self.last_tick_ms = 0;
        self.has_power = self.core.power_on();
        self.reset_all();
        self.shared.powered.store(self.has_power, Ordering::Release);
        if self.has_power {
            self.publish(EventKind::PowerOn, serde_json::Value::Null);
            if let Err(error) = self.plug_uhid() {
                tracing::error!(key = %self.label.name, %error, "cannot create the uhid device");
            }
        }
    }

    /// Power off: the host is unplugged and the core powers down. Power on:
    /// [`Key::power_up`].
    fn set_power(&mut self, on: bool) {
        if on == self.has_power {
            self.shared.powered.store(on, Ordering::Release);
            return;
        }
        if on {
            self.power_up();
            if self.has_power {
                tracing::info!(key = %self.label.name, "powered on");
            } else {
                tracing::error!(key = %self.label.name, "the key failed to power up; it stays off");
            }
        } else {
            self.shared.powered.store(false, Ordering::Release);
            self.unplug_host("powered off");
            self.unplug_uhid("powered off");
            self.reset_all();
            self.core.power_off();
            self.has_power = false;
            self.publish(EventKind::PowerOff, json!({ "reason": "switch" }));
            tracing::info!(key = %self.label.name, "powered off (unplugged)");
        }
    }

    /// With the uhid transport: creates the uhid device (the host sees a
    /// plug). A no-op otherwise or when it exists.
    fn plug_uhid(&mut self) -> io::Result<()> {
        let Some((path, params)) = &self.uhid_setup else {
            return Ok(());
        };
        if self.uhid.is_some() {
            return Ok(());
        }
        let device = UhidDevice::create(path, params, REPORT_SIZE).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot create a uhid device through {}: {error}",
                    path.display()
                ),
            )
        })?;
        tracing::info!(key = %self.label.name, "uhid device created");
        self.uhid = Some(device);
        self.uhid_backlog = false;
        Ok(())
    }

    /// Destroys the uhid device (the host sees an unplug).
    fn unplug_uhid(&mut self, reason: &str) {
        if self.uhid.take().is_some() {
            self.uhid_backlog = false;
            if self.shared.is_attached() {
                self.shared.release();
                self.publish(EventKind::Released, json!({ "reason": reason }));
            }
            tracing::info!(key = %self.label.name, reason, "uhid device destroyed");
        }
    }

    /// Handles what the kernel queued on the uhid device.
    fn serve_uhid(&mut self) {
        loop {
            let Some(device) = self.uhid.as_mut() else {
                return;
            };
            let event = match device.try_read() {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(error) => {
                    tracing::error!(key = %self.label.name, %error, "reading uhid failed");
                    return self.unplug_uhid("uhid failed");
                }
            };
            match event {
                UhidEvent::Output(report) => {
                    if report.len() <= REPORT_SIZE {
                        let now = self.now_ms();
                        self.core.handle_report(&report, now);
                        self.last_tick_ms = self.now_ms();
                        self.core.tick(self.last_tick_ms);
                        self.send_uhid_reports();
                    } else {
                        tracing::warn!(key = %self.label.name, len = report.len(),
                            "output report longer than 64 bytes ignored");
                    }
                }
                UhidEvent::Open => {
                    // A reader opened the hidraw node: as a USB host attaching.
                    self.shared.attached.store(true, Ordering::Release);
                    self.publish(
                        EventKind::Imported,
                        json!({ "peer": "hidraw", "transport": "uhid" }),
                    );
                }
                UhidEvent::Close => {
                    self.shared.release();
                    self.publish(EventKind::Released, json!({ "reason": "hidraw closed" }));
                }
                UhidEvent::GetReport(_) | UhidEvent::SetReport(_) => {
                    if let Err(error) = device.refuse(&event) {
                        tracing::warn!(key = %self.label.name, %error, "answering a report request failed");
                    }
                }
                UhidEvent::Start | UhidEvent::Stop | UhidEvent::Other(_) => {}
            }
        }
    }

    /// Writes the core's input reports to uhid, at most a burst per call.
    fn send_uhid_reports(&mut self) {
        let Some(device) = self.uhid.as_mut() else {
            return;
        };
        for _ in 0..UHID_BURST {
            let Some(report) = self.core.next_report() else {
                self.uhid_backlog = false;
                return;
            };
            if let Err(error) = device.send_report(&report) {
                tracing::warn!(key = %self.label.name, %error, "input report to uhid dropped");
            }
        }
        self.uhid_backlog = true;
    }

    /// Full reset: pending URBs dropped, core reset, USB stack back to Default,
    /// every endpoint buffer emptied.
    fn reset_all(&mut self) {
        self.host.clear();
        self.core.reset();
        self.usb.bus().host_reset();
        self.run_firmware();
    }

    /// Runs firmware and host controller alternately until nothing moves
    /// (with uhid: hands the core's reports to the kernel).
    fn pump(&mut self) {
        if self.uhid.is_some() {
            return self.send_uhid_reports();
        }
        let mut done = std::mem::take(&mut self.done);
        for _ in 0..MAX_PUMP_ROUNDS {
            self.run_firmware();
            let moved = self.host.service(self.usb.bus(), &mut done);
            if let Some(host) = self.host_link.as_mut() {
                for completion in &done {
                    host.link.complete(completion);
                }
            }
            done.clear();
            if !moved {
                self.done = done;
                return;
            }
        }
        self.done = done;
        tracing::warn!(key = %self.label.name, "USB pump did not settle");
    }

    /// One firmware main-loop pass: service USB events, hand received reports to
    /// the core, and give the class the core's next report when the IN endpoint
    /// is free.
    fn run_firmware(&mut self) {
        for _ in 0..MAX_PUMP_ROUNDS {
            let events = self.usb.bus().has_events();
            if events {
                self.usb.poll(&mut [&mut self.hid]);
            }
            let configured = self.usb.state() == UsbDeviceState::Configured;
            let mut moved = false;
            while let Some(report) = self.hid.take_report() {
                moved = true;
                if configured {
                    let now = self.now_ms();
                    self.core.handle_report(&report, now);
                }
            }
            if configured && self.hid.can_write() {
                if let Some(report) = self.core.next_report() {
                    moved = true;
                    self.write_report(&report);
                }
            }
            if !events && !moved {
                return;
            }
        }
    }

    fn write_report(&mut self, report: &Report) {
        if let Err(error) = self.hid.write_report(report) {
            // Cannot happen: the class said its endpoint was free.
            tracing::error!(key = %self.label.name, ?error, "input report dropped");
        }
    }
}
