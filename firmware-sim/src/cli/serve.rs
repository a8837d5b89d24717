//! `ferrokey serve`: open the keys' state and serve them over USB/IP until SIGINT
//! or SIGTERM; with `--control`, also serve the control API ([`crate::control`]).
//!
//! Each key's core is wrapped in a [`PowerCycled`] with a [`KeyRecipe`], so a
//! power-on through the control API is a real power-up from the state directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use ferrokey::authenticator::Attestation;
use ferrokey::ctaphid::DeviceVersion;
use ferrokey::device::{Device, DeviceConfig};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::Notify;

use super::state::{
    check_aaguid, core_attestation, key_dir, start_authenticator, state_dir, KeyApp,
};
use super::ServeArgs;
use crate::attestation::{Ca, CaOptions};
use crate::control::power::PowerCycled;
use crate::control::ControlTarget;
use crate::identity::{Identity, FERROKEY_AAGUID};
use crate::key::UsbIdentity;
use crate::presence::{Label, Presence, PresenceMode, PresenceSwitch, PromptHub, UvMode};
use crate::storage::FileStorage;
use crate::usbip::Server;

/// The core of one key, with its transport.
pub type KeyCore = Device<KeyApp<Presence>>;

/// One key, ready to be plugged into the server.
pub struct PreparedKey {
    /// Key number (1-based).
    pub number: u32,
    /// Its state directory.
    pub dir: PathBuf,
    /// Its USB identity.
    pub usb: UsbIdentity,
    /// The core, with its transport, rebuilt at every power-up.
    pub device: PowerCycled<KeyCore>,
    /// Wakes the key's event loop (presence answers).
    pub wake: Arc<Notify>,
    /// The prompt label, set to the bus id once known.
    pub label: Label,
    /// The key's presence switch (touch, policy override).
    pub switch: PresenceSwitch,
}

/// How a key's presence is answered (the same at every power-up).
#[derive(Clone)]
enum PresenceKind {
    Auto,
    Deny,
    Touch,
    File(PathBuf),
    Prompt(Arc<PromptHub>),
}

/// Everything needed to power a key up from its state directory.
#[derive(Clone)]
pub struct KeyRecipe {
    dir: PathBuf,
    identity: Identity,
    attestation: Attestation,
    presence: PresenceKind,
    uv: UvMode,
    reset_window: bool,
    wake: Arc<Notify>,
    label: Label,
    switch: PresenceSwitch,
}

impl KeyRecipe {
    /// Opens the key's state (taking its lock) and starts its core.
    pub fn power_up(&self) -> Result<KeyCore> {
        self.start(FileStorage::open(&self.dir)?)
    }

    /// Starts the key's core over its opened state.
    fn start(&self, storage: FileStorage) -> Result<KeyCore> {
        let wake = self.wake.clone();
        let presence = match &self.presence {
            PresenceKind::Auto => Presence::auto(wake),
            PresenceKind::Deny => Presence::deny(wake),
            PresenceKind::Touch => Presence::touch(wake),
            PresenceKind::File(path) => Presence::file(path.clone(), wake),
            PresenceKind::Prompt(hub) => Presence::prompt(hub.clone(), wake),
        }
        .with_switch(self.switch.clone())
        .with_label(self.label.clone())
        .with_uv(self.uv);
        let app = start_authenticator(
            &self.dir,
            storage,
            presence,
            &self.identity,
            Some(self.attestation.clone()),
            self.uv.is_builtin(),
            self.reset_window,
        )?;
        Ok(Device::new(app, device_config()))
    }
}

/// The USB bcdDevice of the package version (BCD major.minor).
fn device_release() -> u16 {
    let bcd = |s: &str| {
        let n = s.parse::<u16>().unwrap_or(0) % 100;
        (n / 10) << 4 | (n % 10)
    };
    bcd(env!("CARGO_PKG_VERSION_MAJOR")) << 8 | bcd(env!("CARGO_PKG_VERSION_MINOR"))
}

fn device_config() -> DeviceConfig {
    let part = |s: &str| s.parse::<u8>().unwrap_or(0);
    DeviceConfig {
        version: DeviceVersion {
            major: part(env!("CARGO_PKG_VERSION_MAJOR")),
            minor: part(env!("CARGO_PKG_VERSION_MINOR")),
            build: part(env!("CARGO_PKG_VERSION_PATCH")),
        },
        ..DeviceConfig::default()
    }
}

/// Opens the CA and every key's state. Fails (touching nothing) on a corrupt
/// file or a key served by another process.
pub fn prepare_keys(args: &ServeArgs) -> Result<(PathBuf, Vec<PreparedKey>)> {
    let root = state_dir(&args.state)?;
    let ca = Ca::load_or_create(
        &root,
        &CaOptions {
            country: args.country.clone(),
            aaguid: FERROKEY_AAGUID,
        },
    )?;
    let hub = match (args.presence, &args.presence_file) {
        (PresenceMode::Prompt, None) => {
            Some(PromptHub::stdio().context("starting the presence prompt")?)
        }
        _ => None,
    };
    let mut serials: Vec<String> = Vec::new();
    let mut keys = Vec::new();
    for number in 1..=args.keys {
        let dir = key_dir(&root, number);
        let storage = FileStorage::open(&dir)?;
        let identity = Identity::load_or_create(&dir, &serials)?;
        check_aaguid(&dir, &identity, &FERROKEY_AAGUID)?;
        if serials.contains(&identity.serial) {
            anyhow::bail!(
                "{} has serial {}, which another key already uses; give it a new one by editing or deleting that file",
                dir.join(crate::identity::IDENTITY_FILE).display(),
                identity.serial
            );
        }
        serials.push(identity.serial.clone());
        let wake = Arc::new(Notify::new());
        let presence = match (&args.presence_file, args.presence, &hub) {
            (Some(path), _, _) => PresenceKind::File(path.clone()),
            (None, PresenceMode::Prompt, Some(hub)) => PresenceKind::Prompt(hub.clone()),
            (None, PresenceMode::Deny, _) => PresenceKind::Deny,
            (None, PresenceMode::Touch, _) => PresenceKind::Touch,
            (None, _, _) => PresenceKind::Auto,
        };
        let label = Label::default();
        label.set(&format!("key-{number}"));
        let switch = PresenceSwitch::new(wake.clone());
        let recipe = KeyRecipe {
            dir: dir.clone(),
            identity: identity.clone(),
            attestation: core_attestation(&ca)?,
            presence,
            uv: args.uv,
            reset_window: args.reset_window(),
            wake: wake.clone(),
            label: label.clone(),
            switch: switch.clone(),
        };
        let first = recipe.start(storage)?;
        let device = PowerCycled::new(first, Box::new(move || recipe.power_up()));
        let usb = UsbIdentity {
            vendor_id: args.vid,
            product_id: args.pid,
            device_release: device_release(),
            manufacturer: args.manufacturer.clone(),
            product: args.product.clone(),
            serial: identity.serial.clone(),
        };
        keys.push(PreparedKey {
            number,
            dir,
            usb,
            device,
            wake,
            label,
            switch,
        });
    }
    Ok((root, keys))
}

/// The `usbip attach` command for a key served at `addr`.
pub fn attach_command(addr: SocketAddr, busid: &str) -> String {
    let host = if addr.ip().is_unspecified() {
        "<this-host>".to_string()
    } else {
        addr.ip().to_string()
    };
    let port = if addr.port() == 3240 {
        String::new()
    } else {
        format!("--tcp-port {} ", addr.port())
    };
    format!("usbip {port}attach -r {host} -b {busid}")
}

/// SIGINT and SIGTERM handlers, installed before the keys are announced so a
/// signal sent right after start-up already shuts down cleanly.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Resolves on the first SIGINT or SIGTERM, naming it.
    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// `ferrokey serve`.
pub fn run(args: ServeArgs) -> Result<()> {
    let (root, keys) = prepare_keys(&args)?;
    tracing::info!(state_dir = %root.display(), keys = keys.len(), "state loaded");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mode = match (&args.presence_file, args.presence) {
        (Some(_), _) => "file".to_string(),
        (None, mode) => format!("{mode:?}").to_ascii_lowercase(),
    };
    runtime.block_on(serve_keys(args.listen, args.control, &mode, args.uv, keys))
}

async fn serve_keys(
    listen: SocketAddr,
    control: Option<SocketAddr>,
    mode: &str,
    uv: UvMode,
    keys: Vec<PreparedKey>,
) -> Result<()> {
    let signals = Signals::install()?;
    let mut server = Server::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = server.local_addr();
    tracing::info!("listening on {addr}");
    let control_listener = match control {
        Some(at) => Some(
            crate::control::bind(at)
                .with_context(|| format!("cannot listen on {at} (--control)"))?,
        ),
        None => None,
    };
    let mut switches = Vec::new();
    for key in keys {
        let PreparedKey {
            number,
            dir,
            usb,
            device,
            wake,
            label,
            switch,
        } = key;
        switches.push((number, switch));
        let serial = usb.serial.clone();
        let busid = server
            .add_key(usb, device, wake)
            .with_context(|| format!("starting key-{number}"))?;
        label.set(&busid);
        tracing::info!(
            "key-{number} ready: busid {busid}, serial {serial}, state {}; attach with: {}",
            dir.display(),
            attach_command(addr, &busid)
        );
    }
    // The control API only holds weak handles to the keys: aborting it after
    // the server stops is enough.
    let control_task = match control_listener {
        Some(listener) => {
            let targets = switches
                .into_iter()
                .zip(server.key_switches())
                .map(|((number, presence), power)| ControlTarget {
                    number,
                    power,
                    presence,
                    mode: mode.to_string(),
                    uv,
                })
                .collect();
            let at = listener.local_addr().context("control API address")?;
            tracing::info!(
                "control API on http://{at}/ (GET /usbN/power/on|off, /usbN/touch/on|off)"
            );
            Some(tokio::spawn(crate::control::serve(listener, targets)))
        }
        None => None,
    };
    let served = server
        .run(async {
            let signal = signals.recv().await;
            tracing::info!("{signal} received, shutting down");
        })
        .await
        .context("the USB/IP server failed");
    if let Some(task) = control_task {
        task.abort();
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_commands() {
        let a: SocketAddr = "127.0.0.1:3240".parse().unwrap();
        assert_eq!(attach_command(a, "1-1"), "usbip attach -r 127.0.0.1 -b 1-1");
        let b: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        assert_eq!(
            attach_command(b, "1-2"),
            "usbip --tcp-port 4000 attach -r 192.0.2.1 -b 1-2"
        );
        let c: SocketAddr = "0.0.0.0:3240".parse().unwrap();
        assert_eq!(
            attach_command(c, "1-1"),
            "usbip attach -r <this-host> -b 1-1"
        );
    }

    #[test]
    fn release_is_bcd() {
        assert_eq!(device_release() & 0x00FF, {
            let minor: u16 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
            ((minor % 100) / 10) << 4 | (minor % 10)
        });
    }
}
