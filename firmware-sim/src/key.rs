//! One simulated security key: its USB stack, its ferrokey core and its timers.
//!
//! # Threading
//!
//! `usb-device` borrows its bus allocator for its whole life (`UsbDevice<'a, B>`,
//! endpoints `'a`), and the stack is meant to be driven from one context. Each key
//! therefore runs on its own OS thread: the thread owns the `UsbBusAllocator` on
//! its stack, builds the `UsbDevice` and the [`FidoHidClass`] borrowing it, and
//! drives them from a current-thread tokio runtime. Nothing of the USB stack
//! crosses a thread; only messages do (URBs in, completions out), over tokio
//! channels. The core (`C: ReportCore + Send`) is moved into the thread once.
//!
//! # Event loop
//!
//! The key sleeps until one of: a message from the connection that imported it,
//! the core's next deadline (`next_deadline()`; none when idle), or the external
//! wake-up (`Notify::notify_one`, e.g. from a presence prompt). Then it calls
//! `tick`, and alternates "firmware" steps (`UsbDevice::poll` plus moving reports
//! between the HID class and the core, as a microcontroller main loop would) with
//! "host controller" steps ([`HostController::service`]) until nothing moves. An
//! idle key with a client attached has no timer armed and makes no wakeups.
//!
//! # Detach is an unplug
//!
//! When the importing connection goes (`usbip detach`, the client dies, the
//! network drops), the key is unplugged from its host, and a USB key is
//! powered by its host: the core is powered down and up again from its
//! persistent state ([`ReportCore::power_off`], [`ReportCore::power_on`]), so
//! a re-attach is a power cycle, as replugging a real key is (PIN attempts of
//! the power-up, key agreement keys and tokens start afresh). The key stays
//! importable throughout.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use usb_device::bus::UsbBusAllocator;
use usb_device::device::{
    StringDescriptors, UsbDevice, UsbDeviceBuilder, UsbDeviceState, UsbRev, UsbVidPid,
    CONFIGURATION_VALUE,
};

use crate::usb::bus::SimBus;
use crate::usb::hid::{FidoHidClass, Report, INTERFACE_CLASS_HID, REPORT_SIZE};
use crate::usb::host::{is_port_reset, Completion, HostController, Urb};
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
    fn validate(&self) -> io::Result<()> {
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

/// A message from a connection to a key.
#[derive(Debug)]
pub(crate) enum KeyMsg {
    /// A client imported the key; completions go to `replies`.
    Attach {
        session: u64,
        replies: mpsc::UnboundedSender<Reply>,
    },
    /// A URB.
    Submit { session: u64, urb: Urb },
    /// CMD_UNLINK `seqnum` of the URB `target`.
    Unlink {
        session: u64,
        seqnum: u32,
        target: u32,
    },
    /// The importing connection is gone.
    Detach { session: u64 },
    /// Power switch (see [`crate::usbip::KeySwitch`]): off disconnects the
    /// importing connection and powers the core down; on powers it up again.
    /// `done` gets whether the key has power afterwards.
    Power {
        on: bool,
        done: tokio::sync::oneshot::Sender<bool>,
    },
}

/// A message from a key to its connection.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A URB finished (RET_SUBMIT).
    Submit(Completion),
    /// Answer to CMD_UNLINK (RET_UNLINK).
    Unlink { seqnum: u32, status: i32 },
    /// The client broke the protocol; the connection must close.
    Fatal(&'static str),
    /// The key was powered off: the connection must close (the host sees an unplug).
    Unplugged,
}

/// A running key thread.
pub(crate) struct KeyHandle {
    /// The busid, e.g. "1-1".
    pub busid: String,
    /// How the key is listed and imported.
    pub info: DeviceInfo,
    /// Messages to the key.
    pub tx: mpsc::UnboundedSender<KeyMsg>,
    /// The key's thread; ends when every sender is gone.
    pub thread: JoinHandle<()>,
    /// Whether the key has power (imports are refused while it has none).
    pub powered: Arc<AtomicBool>,
    /// Whether a connection has imported the key (owned by the server).
    pub busy: Arc<AtomicBool>,
}

/// The device-list description of a key with this identity.
pub(crate) fn device_info(busid: &str, busnum: u32, devnum: u32, id: &UsbIdentity) -> DeviceInfo {
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

/// Starts a key thread. Returns once the key's USB stack is built.
pub(crate) fn spawn<C: ReportCore + Send + 'static>(
    busid: String,
    info: DeviceInfo,
    identity: UsbIdentity,
    core: C,
    wake: Arc<Notify>,
) -> io::Result<KeyHandle> {
    identity.validate()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let powered = Arc::new(AtomicBool::new(true));
    let thread_powered = Arc::clone(&powered);
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
    let name = format!("ferrokey-key-{busid}");
    let thread_busid = busid.clone();
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        run_thread(
            thread_busid,
            identity,
            core,
            wake,
            thread_powered,
            rx,
            ready_tx,
        );
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(KeyHandle {
            busid,
            info,
            tx,
            thread,
            powered,
            busy: Arc::new(AtomicBool::new(false)),
        }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(io::Error::other("key thread ended during start-up")),
    }
}

fn run_thread<C: ReportCore>(
    busid: String,
    identity: UsbIdentity,
    core: C,
    wake: Arc<Notify>,
    powered: Arc<AtomicBool>,
    rx: mpsc::UnboundedReceiver<KeyMsg>,
    ready: std::sync::mpsc::SyncSender<io::Result<()>>,
) {
    let fail = |ready: &std::sync::mpsc::SyncSender<io::Result<()>>, what: String| {
        // The spawner is waiting on this; if it is gone there is nobody to tell.
        let _ = ready.send(Err(io::Error::other(what)));
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&ready, format!("key runtime: {error}")),
    };
    let alloc = UsbBusAllocator::new(SimBus::new());
    let hid = match FidoHidClass::new(&alloc, POLL_INTERVAL_MS) {
        Ok(hid) => hid,
        Err(error) => return fail(&ready, format!("HID endpoints: {error:?}")),
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
        Err(error) => return fail(&ready, format!("USB device: {error:?}")),
    };
    let _ = ready.send(Ok(()));
    let key = Key {
        busid,
        usb,
        hid,
        core,
        host: HostController::new(),
        session: None,
        clock: Instant::now(),
        last_tick_ms: 0,
        powered,
        has_power: true,
    };
    runtime.block_on(key.run(rx, wake));
}

struct Session {
    id: u64,
    replies: mpsc::UnboundedSender<Reply>,
}

struct Key<'a, C> {
    busid: String,
    usb: UsbDevice<'a, SimBus>,
    hid: FidoHidClass<'a, SimBus>,
    core: C,
    host: HostController,
    session: Option<Session>,
    clock: Instant,
    last_tick_ms: u64,
    /// Shared with the server and the control API (imports check it).
    powered: Arc<AtomicBool>,
    /// Whether the core is powered up (this thread's own view).
    has_power: bool,
}

/// Upper bound on firmware/host alternations per event (a safety net; normal
/// traffic settles in a handful).
const MAX_PUMP_ROUNDS: usize = 10_000;

impl<C: ReportCore> Key<'_, C> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<KeyMsg>, wake: Arc<Notify>) {
        self.reset_all();
        loop {
            // A deadline the core left in the past is retried no sooner than 1 ms
            // after the last tick, so a confused core cannot make us spin.
            let deadline = self
                .core
                .next_deadline()
                .map(|ms| ms.max(self.last_tick_ms.saturating_add(1)));
            let sleep = async {
                match deadline {
                    Some(ms) => {
                        let at = self.clock + Duration::from_millis(ms);
                        tokio::time::sleep_until(at.into()).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                message = rx.recv() => match message {
                    Some(message) => self.handle(message),
                    None => break,
                },
                () = wake.notified() => {}
                () = sleep => {}
            }
            self.last_tick_ms = self.now_ms();
            self.core.tick(self.last_tick_ms);
            self.pump();
        }
        self.reset_all();
        tracing::debug!(busid = %self.busid, "key stopped");
    }

    fn handle(&mut self, message: KeyMsg) {
        match message {
            KeyMsg::Attach { session, replies } if !self.has_power => {
                // Claimed just before the power went off: unplug it at once.
                tracing::info!(busid = %self.busid, session, "import of an unpowered key dropped");
                let _ = replies.send(Reply::Unplugged);
            }
            KeyMsg::Attach { session, replies } => {
                tracing::info!(busid = %self.busid, session, "attached");
                self.reset_all();
                self.session = Some(Session {
                    id: session,
                    replies,
                });
            }
            KeyMsg::Detach { session } => {
                if self.is_current(session) {
                    tracing::info!(busid = %self.busid, session, "detached");
                    self.session = None;
                    self.replug();
                }
            }
            KeyMsg::Submit { session, urb } => {
                if self.is_current(session) {
                    self.submit(urb);
                }
            }
            KeyMsg::Power { on, done } => {
                self.set_power(on);
                // The switch may have stopped waiting; the change stands anyway.
                let _ = done.send(self.has_power);
            }
            KeyMsg::Unlink {
                session,
                seqnum,
                target,
            } => {
                if self.is_current(session) {
                    let status = if self.host.unlink(target) {
                        ECONNRESET
                    } else {
                        0
                    };
                    self.reply(Reply::Unlink { seqnum, status });
                }
            }
        }
    }

    /// The host is gone (see "Detach is an unplug"): the core is powered
    /// down and up again, without refusing imports meanwhile.
    fn replug(&mut self) {
        self.reset_all();
        if !self.has_power {
            return;
        }
        self.core.power_off();
        self.power_up();
        if !self.has_power {
            tracing::error!(busid = %self.busid, "the key failed to power up after a detach; it stays off");
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
        self.powered.store(self.has_power, Ordering::Release);
    }

    /// Power off: the importing connection is told to close (an unplug, as the
    /// host sees it) and the core powers down. Power on: [`Key::power_up`].
    fn set_power(&mut self, on: bool) {
        if on == self.has_power {
            self.powered.store(on, Ordering::Release);
            return;
        }
        if on {
            self.power_up();
            if self.has_power {
                tracing::info!(busid = %self.busid, "powered on");
            } else {
                tracing::error!(busid = %self.busid, "the key failed to power up; it stays off");
            }
        } else {
            self.powered.store(false, Ordering::Release);
            self.reply(Reply::Unplugged);
            self.session = None;
            self.reset_all();
            self.core.power_off();
            self.has_power = false;
            tracing::info!(busid = %self.busid, "powered off (unplugged)");
        }
    }

    fn is_current(&self, session: u64) -> bool {
        self.session.as_ref().is_some_and(|s| s.id == session)
    }

    fn reply(&mut self, reply: Reply) {
        if let Some(session) = &self.session {
            // If the connection is gone its Detach is on the way.
            let _ = session.replies.send(reply);
        }
    }

    fn submit(&mut self, urb: Urb) {
        if self.host.is_pending(urb.id) {
            return self.reply(Reply::Fatal(
                "CMD_SUBMIT reuses the seqnum of a pending URB",
            ));
        }
        if self.host.pending() >= MAX_PENDING_URBS {
            return self.reply(Reply::Fatal("too many pending URBs"));
        }
        if urb.endpoint == 0 && is_port_reset(&urb.setup) {
            // SET_FEATURE(PORT_RESET) forwarded by the client: a USB reset.
            tracing::info!(busid = %self.busid, "USB reset requested");
            let mut cut_off = Vec::new();
            self.host
                .drain_ids(|id| cut_off.push(Completion::failed(id, ESHUTDOWN)));
            for completion in cut_off {
                self.reply(Reply::Submit(completion));
            }
            self.reset_all();
            return self.reply(Reply::Submit(Completion::failed(urb.id, 0)));
        }
        if let Err(completion) = self.host.submit(self.usb.bus(), urb) {
            self.reply(Reply::Submit(completion));
        }
    }

    /// Full reset: pending URBs dropped, core reset, USB stack back to Default,
    /// every endpoint buffer emptied.
    fn reset_all(&mut self) {
        self.host.clear();
        self.core.reset();
        self.usb.bus().host_reset();
        self.run_firmware();
    }

    /// Runs firmware and host controller alternately until nothing moves.
    fn pump(&mut self) {
        let mut done = Vec::new();
        for _ in 0..MAX_PUMP_ROUNDS {
            self.run_firmware();
            let moved = self.host.service(self.usb.bus(), &mut done);
            for completion in done.drain(..) {
                self.reply(Reply::Submit(completion));
            }
            if !moved {
                return;
            }
        }
        tracing::warn!(busid = %self.busid, "USB pump did not settle");
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
            tracing::error!(busid = %self.busid, ?error, "input report dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(Vec<[u8; REPORT_SIZE]>);

    impl ReportCore for Echo {
        fn handle_report(&mut self, report: &[u8], _: u64) {
            let mut copy = [0u8; REPORT_SIZE];
            copy.copy_from_slice(report);
            self.0.push(copy);
        }
        fn next_report(&mut self) -> Option<[u8; REPORT_SIZE]> {
            self.0.pop()
        }
        fn tick(&mut self, _: u64) {}
        fn next_deadline(&self) -> Option<u64> {
            None
        }
        fn reset(&mut self) {
            self.0.clear();
        }
    }

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
    fn spawn_rejects_bad_identity_and_starts_good_one() {
        let wake = Arc::new(Notify::new());
        let long = identity(&"x".repeat(64));
        let info = device_info("1-1", 1, 1, &long);
        assert!(spawn("1-1".into(), info, long, Echo(Vec::new()), wake.clone()).is_err());
        let good = identity("ferrokey");
        let info = device_info("1-1", 1, 1, &good);
        assert_eq!(info.devid(), 0x0001_0001);
        let handle = spawn("1-1".into(), info, good, Echo(Vec::new()), wake).unwrap();
        drop(handle.tx);
        handle.thread.join().unwrap();
    }
}
