//! `ferrokey serve`: open the state root, start the keys as members of a
//! [`Fleet`] and serve them over USB/IP until SIGINT or SIGTERM; with
//! `--control`, also serve the control API ([`crate::control`]).
//!
//! The command-line flags map onto one [`KeyOptions`] ([`key_options`]);
//! every key of `--keys N` is built from it by the fleet, concurrently (the
//! first start of many keys is bound by fsyncs, which overlap).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::state::state_dir;
use super::{ServeArgs, Switch};
use crate::control::ControlServer;
use crate::fleet::{Fleet, FleetConfig, KeyInfo};
use crate::key::runtimes::default_threads;
use crate::key::KeyOptions;
use crate::transport::attach::{announce_uhid, Attacher};
use crate::transport::hidraw::Owner;
use crate::transport::uhid::UHID_PATH;
use crate::transport::vhci::Vhci;
use crate::transport::Transport;
use crate::usbip::Server;

/// Threads building keys at start (see [`run`]).
const BUILD_THREADS: usize = 16;

/// The key options the command line asks for.
pub fn key_options(args: &ServeArgs) -> KeyOptions {
    KeyOptions {
        presence: args.presence_file.is_none().then_some(args.presence),
        presence_file: args.presence_file.clone(),
        uv: args.uv,
        attestation: args.attestation,
        vendor_id: args.vid,
        product_id: args.pid,
        manufacturer: args.manufacturer.clone(),
        product: args.product.clone(),
        reset_window: args.reset_window.map(|switch| switch == Switch::On),
        exportable: !args.no_export,
        pin_state: args.pin_state,
        bio: args.bio,
        enterprise_attestation: args.enterprise,
        enterprise_rp_ids: args.enterprise_rp.clone(),
        profile: args.profile.clone(),
        counter_mode: args.counter_mode,
        quirks: args.quirks.clone(),
        ..KeyOptions::default()
    }
}

/// The environment variable `serve` takes the keys' PIN from (when no
/// `--pin-file` is given).
pub const PIN_ENV: &str = "FERROKEY_PIN";

/// The PIN the keys start with: the first line of `--pin-file`, else the
/// value of [`PIN_ENV`] (`env`), else none. Checked against the PIN policy;
/// the error never shows the PIN.
pub fn start_pin(
    args: &ServeArgs,
    env: Option<std::ffi::OsString>,
) -> Result<Option<crate::key::pin::PinSecret>> {
    use zeroize::Zeroizing;
    let text = match (&args.pin_file, env) {
        (Some(path), _) => {
            let all = Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the PIN file {}", path.display()))?,
            );
            Zeroizing::new(all.lines().next().unwrap_or_default().to_string())
        }
        (None, Some(value)) => Zeroizing::new(
            value
                .into_string()
                .map_err(|_| anyhow::anyhow!("{PIN_ENV} is not UTF-8"))?,
        ),
        (None, None) => return Ok(None),
    };
    crate::key::pin::PinSecret::new(text.to_string())
        .map(Some)
        .map_err(|e| anyhow::anyhow!("the PIN given to serve: {e}"))
}

/// [`key_options`] with `--profile-file` read in (its errors name the file
/// and the field).
pub fn key_options_with_profile_file(args: &ServeArgs) -> Result<KeyOptions> {
    let mut options = key_options(args);
    if let Some(path) = &args.profile_file {
        options.profile_spec = Some(crate::profile::ProfileSpec::load(path)?);
    }
    Ok(options)
}

/// Gives every key its transport's helper, the keys of the start and those
/// added later through the control API alike: kept attached to vhci-hcd
/// (`attach`), or its hidraw node announced and handed over (`uhid`). Ends
/// (with the helpers) when it is aborted or the event bus closes.
async fn tend_keys(
    fleet: Fleet,
    attacher: Option<Arc<Attacher>>,
    transport: Transport,
    owner: Option<Owner>,
) {
    let mut events = fleet.events().subscribe();
    let mut tended = std::collections::BTreeSet::new();
    let mut helpers = tokio::task::JoinSet::new();
    let mut tend = |key: crate::fleet::KeyRef, helpers: &mut tokio::task::JoinSet<()>| {
        if !tended.insert(key.id()) {
            return;
        }
        match (&attacher, transport) {
            (Some(attacher), _) => {
                helpers.spawn(Arc::clone(attacher).keep_attached(key, fleet.events().clone()));
            }
            (None, Transport::Uhid) => {
                helpers.spawn(announce_uhid(key, owner, fleet.events().clone()));
            }
            _ => {}
        }
    };
    for key in fleet.refs() {
        tend(key, &mut helpers);
    }
    loop {
        match events.recv().await {
            Ok(event) if event.kind == crate::events::EventKind::Plugged => {
                if let Some(key) = fleet.get(event.key) {
                    tend(key, &mut helpers);
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                for key in fleet.refs() {
                    tend(key, &mut helpers);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
    helpers.shutdown().await;
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
    let mut options = key_options_with_profile_file(&args)?;
    options.pin = start_pin(&args, std::env::var_os(PIN_ENV))?;
    options.validate()?;
    let root = state_dir(&args.state)?;
    let transport = match args.requested_transport() {
        Transport::Auto => {
            let (chosen, why) = crate::transport::choose_auto(Path::new(UHID_PATH));
            if let Some(why) = why {
                tracing::warn!("{why}");
            }
            chosen
        }
        chosen => chosen,
    };
    if transport == Transport::Attach && !crate::transport::is_root() {
        anyhow::bail!(
            "--transport attach needs root (it writes to vhci-hcd's sysfs files): run it with sudo, or use --transport uhid (see `ferrokey doctor`)"
        );
    }
    let owner = match &args.owner {
        Some(user) => Some(
            Owner::parse(
                user,
                &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
            )
            .map_err(anyhow::Error::msg)?,
        ),
        None => Owner::from_sudo(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Keys are built on blocking threads (file I/O, fsync): enough of
        // them to overlap the fsyncs of a first start, few enough to keep
        // thread stacks out of the memory figure.
        .max_blocking_threads(BUILD_THREADS)
        .build()
        .context("starting the async runtime")?;
    let fleet = Fleet::open(&FleetConfig {
        root: root.clone(),
        country: args.country.clone(),
        threads: default_threads(),
        transport,
    })?;
    tracing::info!(transport = transport.name(), "transport");
    runtime.block_on(serve_fleet(&args, options, fleet, transport, owner))
}

/// Starts `--keys` keys concurrently; on a failure the keys started so far are stopped.
async fn start_keys(fleet: &Fleet, count: u32, options: &KeyOptions) -> Result<Vec<KeyInfo>> {
    let mut starting = tokio::task::JoinSet::new();
    for number in 1..=count {
        let fleet = fleet.clone();
        let options = options.clone();
        starting.spawn(async move {
            let added = fleet.add_numbered(number, options).await;
            (number, added)
        });
    }
    let mut started = Vec::new();
    let mut failure = None;
    while let Some(joined) = starting.join_next().await {
        match joined {
            Ok((_, Ok(info))) => started.push(info),
            Ok((number, Err(error))) => {
                failure.get_or_insert(anyhow::anyhow!("starting key-{number}: {error}"));
            }
            Err(error) => {
                failure.get_or_insert(anyhow::anyhow!("starting a key: {error}"));
            }
        }
    }
    if let Some(error) = failure {
        fleet.shutdown().await;
        return Err(error);
    }
    started.sort_by_key(|k| k.number);
    Ok(started)
}

async fn serve_fleet(
    args: &ServeArgs,
    options: KeyOptions,
    fleet: Fleet,
    transport: Transport,
    owner: Option<Owner>,
) -> Result<()> {
    let signals = Signals::install()?;
    let server = match transport {
        Transport::Usbip | Transport::Auto => {
            let listen = args.listen_addr();
            let server = Server::bind_with(listen, fleet.exports())
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!("listening on {}", server.local_addr());
            Some(server)
        }
        Transport::Attach | Transport::Uhid => None,
    };
    let attacher = match transport {
        Transport::Attach => {
            let vhci = tokio::task::spawn_blocking(Vhci::find_or_load)
                .await
                .context("loading vhci-hcd")?
                .map_err(anyhow::Error::msg)?;
            Some(Attacher::new(vhci, owner))
        }
        _ => None,
    };
    let control_server = ControlServer::bind(&args.control)?;
    // Subscribed before the keys start, so the transcript has their plugging.
    let transcript_task = match &args.control.transcript {
        Some(path) => {
            let transcript = crate::control::transcript::Transcript::create(path)
                .with_context(|| format!("creating {} (--transcript)", path.display()))?;
            Some(tokio::spawn(transcript.follow(fleet.events())))
        }
        None => None,
    };
    let started = std::time::Instant::now();
    let keys = start_keys(&fleet, args.keys, &options).await?;
    tracing::info!(state_dir = %fleet.root().display(), keys = keys.len(),
        elapsed_ms = started.elapsed().as_millis() as u64, "state loaded");
    for key in &keys {
        let how = match &server {
            Some(server) => format!(
                "attach with: {}",
                attach_command(server.local_addr(), &key.busid)
            ),
            None => format!("transport {}", transport.name()),
        };
        tracing::info!(
            "key-{} ready: busid {}, serial {}, state {}; {how}",
            key.number,
            key.busid,
            key.serial,
            key.state_dir.display(),
        );
    }
    let mut helpers = tokio::task::JoinSet::new();
    helpers.spawn(tend_keys(fleet.clone(), attacher.clone(), transport, owner));
    // The control API only holds weak handles to the keys: aborting it after
    // the server stops is enough.
    let control_task = match control_server {
        Some(control) => {
            let at = control.describe().context("control API address")?;
            tracing::info!("control API on {at} (description at /openapi.json)");
            Some(tokio::spawn(control.serve(fleet.clone())))
        }
        None => None,
    };
    let stop = async {
        let signal = signals.recv().await;
        tracing::info!("{signal} received, shutting down");
    };
    let served = match server {
        Some(server) => server.run(stop).await.context("the USB/IP server failed"),
        None => {
            stop.await;
            Ok(())
        }
    };
    helpers.shutdown().await;
    if let Some(attacher) = &attacher {
        attacher.detach_all();
    }
    fleet.shutdown().await;
    // Event streams end cleanly (with the keys' unplugging), then the API goes.
    fleet.events().close();
    if let Some(task) = control_task {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        task.abort();
    }
    if let Some(task) = transcript_task {
        // It ends on its own once it has written every event (the keys'
        // unplugging included); a write error is the user's to know.
        match tokio::time::timeout(std::time::Duration::from_secs(5), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("writing the transcript failed: {e}"),
            Ok(Err(e)) => tracing::error!("the transcript writer failed: {e}"),
            Err(_) => tracing::error!("the transcript writer did not finish within 5 s"),
        }
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
    fn flags_map_onto_key_options() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "ferrokey",
            "--presence",
            "touch",
            "--uv",
            "auto",
            "--vid",
            "1050",
            "--product",
            "P",
        ])
        .unwrap();
        let options = key_options(&cli.serve);
        assert_eq!(options.presence, Some(crate::presence::PresenceMode::Touch));
        assert_eq!(options.uv, crate::presence::UvMode::Auto);
        assert_eq!(options.vendor_id, 0x1050);
        assert_eq!(options.product, "P");
        assert!(options.validate().is_ok());
        let file =
            crate::cli::Cli::try_parse_from(["ferrokey", "--presence-file", "/tmp/p"]).unwrap();
        let options = key_options(&file.serve);
        assert_eq!(options.presence, None);
        assert_eq!(options.presence_name(), "file");
        assert!(options.validate().is_ok());
    }

    #[test]
    fn the_pin_comes_from_a_file_or_the_environment() {
        use clap::Parser;
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pin");
        std::fs::write(&file, "86420\nignored\n").unwrap();
        let path = file.to_str().unwrap();
        let cli = crate::cli::Cli::try_parse_from([
            "ferrokey",
            "--pin-file",
            path,
            "--pin-state",
            "forcePinChange",
        ])
        .unwrap();
        let pin = start_pin(&cli.serve, Some("11111".into()))
            .unwrap()
            .unwrap();
        assert_eq!(pin.expose(), "86420", "the file wins over the environment");
        assert_eq!(
            key_options(&cli.serve).pin_state,
            Some(crate::key::pin::PinStateName::ForcePinChange)
        );
        let plain = crate::cli::Cli::try_parse_from(["ferrokey"]).unwrap();
        let pin = start_pin(&plain.serve, Some("24680".into()))
            .unwrap()
            .unwrap();
        assert_eq!(pin.expose(), "24680");
        assert!(start_pin(&plain.serve, None).unwrap().is_none());
        let short = start_pin(&plain.serve, Some("975".into())).unwrap_err();
        assert!(!format!("{short:#}").contains("975"), "{short:#}");
        assert!(crate::cli::Cli::try_parse_from(["ferrokey", "--pin-state", "locked"]).is_err());
    }

    #[test]
    fn bio_and_enterprise_flags_map_onto_key_options() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            crate::cli::Cli::try_parse_from([&["ferrokey"], args].concat())
                .map(|cli| key_options(&cli.serve))
        };
        let options = parse(&[
            "--bio",
            "--enterprise",
            "--enterprise-rp",
            "a.example",
            "--enterprise-rp",
            "b.example",
        ])
        .unwrap();
        assert!(options.bio && options.enterprise_attestation);
        assert_eq!(options.enterprise_rp_ids, vec!["a.example", "b.example"]);
        assert!(options.validate().is_ok());
        assert!(!parse(&[]).unwrap().bio);
        assert!(parse(&["--bio", "--uv", "auto"]).is_err());
        assert!(parse(&["--enterprise-rp", "a.example"]).is_err());
    }

    #[test]
    fn profile_flags_map_onto_key_options() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "ferrokey",
            "--profile",
            "ctap2.0",
            "--counter-mode",
            "random",
            "--quirk",
            "reject-silent-authentication",
            "--quirk",
            "one-credential-per-list",
        ])
        .unwrap();
        let options = key_options(&cli.serve);
        assert_eq!(options.profile.as_deref(), Some("ctap2.0"));
        assert_eq!(options.quirks.len(), 2);
        let profile = options.resolved_profile().unwrap();
        assert!(!profile.versions.fido_2_1);
        assert_eq!(profile.max_creds_in_list, 1);
        assert_eq!(
            profile.counter_mode,
            ferrokey::authenticator::CounterMode::RandomIncrements
        );
        for bad in [
            ["--profile", "yubikey"],
            ["--quirk", "nope"],
            ["--counter-mode", "sometimes"],
        ] {
            let error = crate::cli::Cli::try_parse_from(["ferrokey", bad[0], bad[1]])
                .unwrap_err()
                .to_string();
            assert!(error.contains(bad[1]), "{error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "maxMsgSize = 3\n").unwrap();
        let cli =
            crate::cli::Cli::try_parse_from(["ferrokey", "--profile-file", path.to_str().unwrap()])
                .unwrap();
        let error = format!(
            "{:#}",
            key_options_with_profile_file(&cli.serve).unwrap_err()
        );
        assert!(
            error.contains("p.toml") && error.contains("maxMsgSize"),
            "{error}"
        );
    }

    #[test]
    fn release_is_bcd() {
        use crate::key::build::device_release;
        assert_eq!(device_release() & 0x00FF, {
            let minor: u16 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
            ((minor % 100) / 10) << 4 | (minor % 10)
        });
    }
}
