//! The `ferrokey` command-line program.
//!
//! ```text
//! ferrokey [serve] [--transport auto|usbip|attach|uhid] [--attach] [--owner USER]
//!                  [--listen ADDR:PORT] [--state-dir DIR] [--keys N] [--presence auto|deny|prompt|touch]
//!                  [--uv off|auto|deny] [--attestation none|self|batch|chain]
//!                  [--control ADDR:PORT|unix:PATH] ...
//! ferrokey doctor  [--transport auto|usbip|attach|uhid]
//! ferrokey install-udev [--rules-dir DIR] [--no-reload]
//! ferrokey events  --control URL [--authenticator ID]
//! ferrokey list    [--state-dir DIR]
//! ferrokey reset   [--state-dir DIR] [--key N | --all] [--yes]
//! ferrokey ca      [--state-dir DIR]
//! ferrokey mds     [--state-dir DIR] --out DIR [--attestation MODE] [--jws-signature raw|der]
//! ```
//!
//! Exit status: 0 on success, 1 on an error (the message names the file or
//! directory concerned), 2 on a command-line usage error.
//!
//! # State directory
//!
//! ```text
//! <state-dir>/            0700  (default: the user's data dir, ~/.local/share/ferrokey)
//!   ca/                   0700  attestation root + batch certificate, shared by all keys
//!   ca.lock                     serializes creation of ca/
//!   key-1/                0700  one directory per key
//!     lock                      flock held by the process serving the key
//!     identity.json             serial number, AAGUID, creation time
//!     rec-XXXXXXXX.bin          one file per record (device secret, PIN, credentials)
//!   key-2/ ...
//! ```
//!
//! See [`crate::storage`], [`crate::identity`] and [`crate::attestation`].

mod admin;
pub mod doctor;
mod serve;
pub mod state;
pub mod udev;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::attestation::AttestationMode;
use crate::identity::{
    DEFAULT_MANUFACTURER, DEFAULT_PRODUCT, DEFAULT_PRODUCT_ID, DEFAULT_VENDOR_ID,
};
use crate::presence::{PresenceMode, UvMode};
use crate::transport::Transport;

/// The default USB/IP listen address (3240 is the USB/IP port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3240";

/// ferrokey: a software FIDO2 security key, seen by a Linux host as a real USB
/// HID device over USB/IP.
///
/// Without a command, `ferrokey` runs `serve` with the default options.
#[derive(Debug, Parser)]
#[command(name = "ferrokey", version, propagate_version = true)]
#[command(after_help = "Attach a served key on a Linux host with:\n  \
    sudo modprobe vhci-hcd && sudo usbip attach -r 127.0.0.1 -b <busid>\n\
    (the busids are logged at start). Logging: RUST_LOG=debug|info|warn (default info).")]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, accepted without the command word.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the keys over USB/IP until SIGINT or SIGTERM (the default command).
    Serve(Box<ServeArgs>),
    /// Print each key's serial number and its discoverable (resident) credentials.
    ///
    /// Works while a server is running: the records are read as a snapshot
    /// without taking the keys' locks.
    List(StateArgs),
    /// Factory-reset keys: delete their credentials, device secret and PIN.
    ///
    /// The serial number, AAGUID and attestation certificate stay. Refused while a
    /// server holds the key. Asks for confirmation on a terminal; elsewhere `--yes`
    /// is required.
    Reset(ResetArgs),
    /// Print a running server's events live, one JSON object a line: CTAP
    /// requests (decoded; PIN material, keys and MACs as lengths), DevTools
    /// credential events, plug/power/presence events.
    Events(crate::control::cli::EventsArgs),
    /// Print the attestation root certificate (PEM) for relying parties to trust.
    ///
    /// Creates the state directory and the certificates on first use.
    Ca(CaArgs),
    /// Check what each transport needs on this host and print, for each
    /// problem, the command that fixes it. Exits non-zero when the transport
    /// asked for (--transport) cannot work here.
    Doctor(DoctorArgs),
    /// Install the udev rule (hidraw of 1209:000a to the logged-in user via
    /// uaccess and the `ferrokey` group; /dev/uhid to the `ferrokey` group).
    /// Needs root.
    InstallUdev(InstallUdevArgs),
    /// Write FIDO MDS3 metadata for the keys: a metadata statement, a signed
    /// BLOB (JWT) and the MDS root that BLOB chains to.
    Mds(crate::mds::MdsArgs),
    /// Export a stopped key's resident credentials as a FIDO Credential
    /// Exchange Format (CXF) document. For testing: a real security key's
    /// private keys never leave it; device-bound keys refuse.
    Export(crate::lifecycle::cli::ExportArgs),
    /// Import the passkeys of a CXF document into a stopped key, all or none.
    Import(crate::lifecycle::cli::ImportArgs),
}

/// Options of `ferrokey doctor`.
#[derive(Clone, Debug, Args)]
pub struct DoctorArgs {
    /// The transport to check for (auto: whichever `serve` would pick).
    #[arg(long, value_enum, default_value_t = Transport::Auto)]
    pub transport: Transport,
}

/// Options of `ferrokey install-udev`.
#[derive(Clone, Debug, Args)]
pub struct InstallUdevArgs {
    /// Where to write 70-ferrokey.rules.
    #[arg(long, value_name = "DIR", default_value = "/etc/udev/rules.d")]
    pub rules_dir: PathBuf,
    /// Only write the file: do not create the group or reload udev.
    #[arg(long)]
    pub no_reload: bool,
}

/// The state directory option, shared by all commands.
#[derive(Clone, Debug, Args)]
pub struct StateArgs {
    /// The state directory [default: the user's data directory, e.g. ~/.local/share/ferrokey].
    #[arg(long, value_name = "DIR", env = "FERROKEY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Options of `ferrokey serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// How hosts reach the keys: uhid (a Linux uhid device, no port), attach
    /// (attached to this machine's vhci-hcd by ferrokey itself, no port; needs
    /// root), usbip (a USB/IP server on --listen), or auto: uhid if /dev/uhid
    /// is usable, else attach if root, else usbip on loopback (with a
    /// message). Giving --listen means usbip.
    #[arg(long, value_enum, default_value_t = Transport::Auto)]
    pub transport: Transport,
    /// Same as --transport attach.
    #[arg(long, conflicts_with = "transport")]
    pub attach: bool,
    /// With attach or uhid: give the hidraw nodes to this user (name or uid;
    /// default: the user sudo ran ferrokey for).
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
    /// Address and port the USB/IP server listens on [default: 127.0.0.1:3240].
    /// Port 0 picks a free port (the log then shows the one chosen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub state: StateArgs,
    /// Number of keys to serve; key N keeps its state in <state-dir>/key-N.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1016))]
    pub keys: u32,
    /// How user presence ("touch") is answered: auto approves at once (the
    /// default, for tests and CI), deny refuses at once, prompt asks on the
    /// terminal (Enter approves, n+Enter denies), touch approves only while
    /// the simulated button is held (see --control).
    #[arg(long, value_enum, default_value_t = PresenceMode::Auto)]
    pub presence: PresenceMode,
    /// The control API (--control and its options).
    #[command(flatten)]
    pub control: crate::control::ControlArgs,
    /// Answer presence from a file read at every poll instead: "approve",
    /// "deny", or anything else (or no file) to keep waiting. Lets tests script
    /// touches while the key runs.
    #[arg(long, value_name = "PATH", conflicts_with = "presence")]
    pub presence_file: Option<PathBuf>,
    /// Built-in user verification (a simulated fingerprint sensor): off (the
    /// default) makes a PIN-only key, like most security keys; auto verifies
    /// the user at once (getInfo uv=true, so browsers skip the PIN); deny
    /// fails every attempt, spending the key's uvRetries. Scriptable at run
    /// time through the control API (/usbN/uv/approve|deny|default).
    #[arg(long, value_enum, default_value_t = UvMode::Off)]
    pub uv: UvMode,
    /// A simulated fingerprint sensor (authenticatorBioEnrollment): fingers
    /// are enrolled by touches or the control API's bio/finger, and an
    /// enrolled finger verifies the user. Starts with none enrolled.
    #[arg(long, conflicts_with = "uv")]
    pub bio: bool,
    /// Enterprise attestation capable (getInfo ep, enabled through
    /// authenticatorConfig): a per-key certificate that identifies the key.
    #[arg(long)]
    pub enterprise: bool,
    /// An RP ID for vendor-facilitated enterprise attestation (repeatable;
    /// needs --enterprise).
    #[arg(long = "enterprise-rp", value_name = "RP_ID", requires = "enterprise")]
    pub enterprise_rp: Vec<String>,
    /// CTAP 2.1's reset window: authenticatorReset is refused (NOT_ALLOWED)
    /// when asked more than 10 s after the key was powered up (plugged in).
    /// Default: on with --presence prompt|touch (a person at the key), off
    /// with auto, deny and --presence-file (scripts and CI reset whenever
    /// they like; with deny no reset is ever approved anyway).
    #[arg(long, value_enum, value_name = "on|off")]
    pub reset_window: Option<Switch>,
    /// USB vendor id, hex (1209 is the pid.codes open-source vendor id).
    #[arg(long, value_name = "HEX", value_parser = parse_hex_u16,
          default_value = "1209")]
    pub vid: u16,
    /// USB product id, hex (000a is from the pid.codes test range 0001-000f).
    #[arg(long, value_name = "HEX", value_parser = parse_hex_u16,
          default_value = "000a")]
    pub pid: u16,
    /// USB manufacturer string.
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_MANUFACTURER)]
    pub manufacturer: String,
    /// USB product string.
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_PRODUCT)]
    pub product: String,
    /// Attestation of new credentials: batch (packed, x5c = the batch
    /// certificate, issued by the `ferrokey ca` root), chain (packed, x5c =
    /// batch certificate and the intermediate CA that issued it), self (packed,
    /// signed by the credential key), none (fmt none). U2F registrations always
    /// carry a certificate: the batch one, or for self and none a self-signed one.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = AttestationMode::Batch)]
    pub attestation: AttestationMode,
    /// Country (subject C) of the attestation certificates; used only when they
    /// are first created.
    #[arg(long, value_name = "CC", default_value = crate::attestation::DEFAULT_COUNTRY,
          value_parser = parse_country)]
    pub country: String,
    /// Device-bound keys: export and clone are refused and the control API
    /// hands out no private keys. Persisted (a `no-export` marker in each
    /// key's state directory), so a restart without the flag does not lift it.
    #[arg(long)]
    pub no_export: bool,
    /// A PIN every key gets at start, read from this file (its first line;
    /// keep the file 0600). Without it the PIN comes from the environment
    /// variable FERROKEY_PIN, if set. Never echoed or logged. With a PIN and
    /// no --pin-state the keys start in state "set" (full retries).
    #[arg(long, value_name = "PATH")]
    pub pin_file: Option<PathBuf>,
    /// The PIN/UV state every key is put in at start: unset, set, blocked
    /// (no PIN retries left), forcePinChange, uvBlocked (needs --uv
    /// auto|deny). set, blocked and forcePinChange need a PIN (--pin-file,
    /// FERROKEY_PIN, or one the key's state already holds). Left out, a key
    /// keeps the PIN state its state directory holds.
    #[arg(long, value_name = "STATE", value_parser = parse_pin_state)]
    pub pin_state: Option<crate::key::pin::PinStateName>,
    /// The kind of key presented (getInfo and behaviour): security-key (the
    /// default: today's CTAP 2.1 key), ctap2.0, u2f, synced-passkey, strict.
    /// See the README's profiles table.
    #[arg(long, value_name = "NAME", value_parser = parse_profile)]
    pub profile: Option<String>,
    /// A profile written in a TOML or JSON file (format in the README):
    /// its `base` (or --profile) with the fields it names replaced.
    #[arg(long, value_name = "PATH")]
    pub profile_file: Option<PathBuf>,
    /// How signature counters advance, over the profile's: per-credential,
    /// global, zero, random (random increments; counters never go backwards).
    #[arg(long, value_enum, value_name = "MODE")]
    pub counter_mode: Option<crate::profile::CounterModeName>,
    /// Turn a quirk on, over the profile's (repeatable): small-max-msg-size,
    /// short-credential-ids, one-credential-per-list,
    /// reject-missing-display-name, reject-silent-authentication,
    /// reject-all-extensions.
    #[arg(long = "quirk", value_name = "NAME", value_parser = parse_quirk)]
    pub quirks: Vec<String>,
}

pub(crate) fn parse_profile(text: &str) -> Result<String, String> {
    crate::profile::builtin_profile(text).map(|_| text.to_string())
}

pub(crate) fn parse_quirk(text: &str) -> Result<String, String> {
    crate::profile::quirk(text).map(|_| text.to_string())
}

/// An on/off option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl ServeArgs {
    /// Whether the keys enforce CTAP 2.1's 10 s reset window (`--reset-window`,
    /// else on for the presence modes where a person answers): the rule of
    /// [`crate::key::KeyOptions::reset_window_in_force`], on the options these
    /// flags make.
    pub fn reset_window(&self) -> bool {
        serve::key_options(self).reset_window_in_force()
    }
}

/// Options of `ferrokey reset`.
#[derive(Clone, Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Reset key N only.
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub key: Option<u32>,
    /// Reset every key of the state directory.
    #[arg(long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Options of `ferrokey ca`.
#[derive(Clone, Debug, Args)]
pub struct CaArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Country (subject C) of the certificates, if they are created now.
    #[arg(long, value_name = "CC", default_value = crate::attestation::DEFAULT_COUNTRY,
          value_parser = parse_country)]
    pub country: String,
}

fn parse_hex_u16(text: &str) -> Result<u16, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    u16::from_str_radix(digits, 16)
        .map_err(|_| format!("{text:?} is not a 16-bit hex number (e.g. 1209 or 0x1209)"))
}

fn parse_pin_state(text: &str) -> Result<crate::key::pin::PinStateName, String> {
    crate::key::pin::PinStateName::parse(text)
        .ok_or_else(|| "expected unset, set, blocked, forcePinChange or uvBlocked".to_string())
}

fn parse_country(text: &str) -> Result<String, String> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a two-letter upper-case country code (e.g. US)"
        ))
    }
}

impl ServeArgs {
    /// The USB/IP listen address (`--listen`, or [`DEFAULT_LISTEN`]).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3240)))
    }

    /// The transport asked for (`--attach` is `attach`; `auto` with
    /// `--listen` is `usbip`).
    pub fn requested_transport(&self) -> Transport {
        match (self.attach, self.transport, self.listen) {
            (true, _, _) => Transport::Attach,
            (false, Transport::Auto, Some(_)) => Transport::Usbip,
            (false, transport, _) => transport,
        }
    }
}

// Keep the documented defaults and the clap defaults in step.
const _: () = assert!(DEFAULT_VENDOR_ID == 0x1209 && DEFAULT_PRODUCT_ID == 0x000A);

/// Sets up logging (RUST_LOG, default `info`, to stderr).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Runs the program with the process's arguments; returns its exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        None => serve::run(cli.serve),
        Some(Command::Serve(args)) => serve::run(*args),
        Some(Command::List(args)) => admin::list(&args),
        Some(Command::Reset(args)) => admin::reset(&args),
        Some(Command::Ca(args)) => admin::ca(&args),
        Some(Command::Events(args)) => crate::control::cli::events(&args),
        Some(Command::Doctor(args)) => return doctor::run(&args),
        Some(Command::InstallUdev(args)) => udev::install(&args),
        Some(Command::Mds(args)) => admin::mds(&args),
        Some(Command::Export(args)) => crate::lifecycle::cli::export(&args),
        Some(Command::Import(args)) => crate::lifecycle::cli::import(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ferrokey: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_invocation_serves_with_defaults() {
        let cli = Cli::try_parse_from(["ferrokey"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen_addr().to_string(), DEFAULT_LISTEN);
        assert_eq!(cli.serve.requested_transport(), Transport::Auto);
        assert_eq!(cli.serve.keys, 1);
        assert_eq!(cli.serve.presence, PresenceMode::Auto);
        assert_eq!(cli.serve.uv, UvMode::Off);
        assert_eq!(cli.serve.attestation, AttestationMode::Batch);
        assert_eq!(cli.serve.vid, 0x1209);
        assert_eq!(cli.serve.pid, 0x000A);
        assert_eq!(cli.serve.product, "ferrokey FIDO2 security key");
    }

    #[test]
    fn serve_options_parse() {
        let cli = Cli::try_parse_from([
            "ferrokey",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--keys",
            "3",
            "--presence",
            "prompt",
            "--vid",
            "0x1050",
            "--pid",
            "0407",
            "--state-dir",
            "/tmp/x",
            "--uv",
            "deny",
            "--attestation",
            "chain",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.keys, 3);
        assert_eq!(args.presence, PresenceMode::Prompt);
        assert_eq!(args.uv, UvMode::Deny);
        assert_eq!(args.attestation, AttestationMode::Chain);
        assert_eq!(args.vid, 0x1050);
        assert_eq!(args.pid, 0x0407);
        assert_eq!(args.state.state_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn transports_parse() {
        let t = |args: &[&str]| {
            Cli::try_parse_from(args)
                .unwrap()
                .serve
                .requested_transport()
        };
        assert_eq!(t(&["ferrokey", "--attach"]), Transport::Attach);
        assert_eq!(t(&["ferrokey", "--transport", "uhid"]), Transport::Uhid);
        assert_eq!(
            t(&["ferrokey", "--listen", "127.0.0.1:0"]),
            Transport::Usbip
        );
        assert_eq!(
            t(&["ferrokey", "--transport", "uhid", "--listen", "127.0.0.1:0"]),
            Transport::Uhid
        );
        assert!(Cli::try_parse_from(["ferrokey", "--attach", "--transport", "uhid"]).is_err());
        assert!(Cli::try_parse_from(["ferrokey", "--transport", "bluetooth"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["ferrokey", "doctor", "--transport", "attach"])
                .unwrap()
                .command,
            Some(Command::Doctor(DoctorArgs {
                transport: Transport::Attach
            }))
        ));
    }

    #[test]
    fn the_reset_window_defaults_to_the_presence_mode() {
        let window = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            cli.serve.reset_window()
        };
        assert!(!window(&["ferrokey"]));
        assert!(!window(&["ferrokey", "--presence", "deny"]));
        assert!(window(&["ferrokey", "--presence", "prompt"]));
        assert!(window(&["ferrokey", "--presence", "touch"]));
        assert!(!window(&["ferrokey", "--presence-file", "/tmp/p"]));
        assert!(!window(&[
            "ferrokey",
            "--presence",
            "touch",
            "--reset-window",
            "off"
        ]));
        assert!(window(&["ferrokey", "--reset-window", "on"]));
        assert!(Cli::try_parse_from(["ferrokey", "--reset-window", "maybe"]).is_err());
    }

    #[test]
    fn bad_options_are_usage_errors() {
        for args in [
            &["ferrokey", "--keys", "0"][..],
            &["ferrokey", "--vid", "xyz"],
            &["ferrokey", "--listen", "nowhere"],
            &["ferrokey", "reset", "--key", "1", "--all"],
            &[
                "ferrokey",
                "--presence",
                "deny",
                "--presence-file",
                "/tmp/p",
            ],
            &["ferrokey", "ca", "--country", "usa"],
            &["ferrokey", "--uv", "maybe"],
            &["ferrokey", "--attestation", "packed"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
