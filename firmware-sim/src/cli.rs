//! The `ferrokey` command-line program.
//!
//! ```text
//! ferrokey [serve] [--listen ADDR:PORT] [--state-dir DIR] [--keys N] [--presence auto|deny|prompt|touch]
//!                  [--uv off|auto|deny] [--control ADDR:PORT] ...
//! ferrokey list    [--state-dir DIR]
//! ferrokey reset   [--state-dir DIR] [--key N | --all] [--yes]
//! ferrokey ca      [--state-dir DIR]
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
mod serve;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::identity::{
    DEFAULT_MANUFACTURER, DEFAULT_PRODUCT, DEFAULT_PRODUCT_ID, DEFAULT_VENDOR_ID,
};
use crate::presence::{PresenceMode, UvMode};

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
    Serve(ServeArgs),
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
    /// Print the attestation root certificate (PEM) for relying parties to trust.
    ///
    /// Creates the state directory and the certificates on first use.
    Ca(CaArgs),
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
    /// Address and port the USB/IP server listens on. Port 0 picks a free port
    /// (the log then shows the one chosen).
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub state: StateArgs,
    /// Number of keys to serve; key N keeps its state in <state-dir>/key-N.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=32))]
    pub keys: u32,
    /// How user presence ("touch") is answered: auto approves at once (the
    /// default, for tests and CI), deny refuses at once, prompt asks on the
    /// terminal (Enter approves, n+Enter denies), touch approves only while
    /// the simulated button is held (see --control).
    #[arg(long, value_enum, default_value_t = PresenceMode::Auto)]
    pub presence: PresenceMode,
    /// Serve the control API on this address: a small HTTP interface to
    /// unplug and replug keys and to press their button
    /// (GET /usbN/power/on|off, /usbN/touch/on|off, /usbN/presence/MODE;
    /// GET / for the status). Port 0 picks a free port (logged).
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<SocketAddr>,
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
    /// Country (subject C) of the attestation certificates; used only when they
    /// are first created.
    #[arg(long, value_name = "CC", default_value = crate::attestation::DEFAULT_COUNTRY,
          value_parser = parse_country)]
    pub country: String,
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
    /// else on for the presence modes where a person answers).
    pub fn reset_window(&self) -> bool {
        match self.reset_window {
            Some(switch) => switch == Switch::On,
            None => {
                self.presence_file.is_none()
                    && matches!(self.presence, PresenceMode::Prompt | PresenceMode::Touch)
            }
        }
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

fn parse_country(text: &str) -> Result<String, String> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a two-letter upper-case country code (e.g. US)"
        ))
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
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::List(args)) => admin::list(&args),
        Some(Command::Reset(args)) => admin::reset(&args),
        Some(Command::Ca(args)) => admin::ca(&args),
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
        assert_eq!(cli.serve.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(cli.serve.keys, 1);
        assert_eq!(cli.serve.presence, PresenceMode::Auto);
        assert_eq!(cli.serve.uv, UvMode::Off);
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
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.keys, 3);
        assert_eq!(args.presence, PresenceMode::Prompt);
        assert_eq!(args.uv, UvMode::Deny);
        assert_eq!(args.vid, 0x1050);
        assert_eq!(args.pid, 0x0407);
        assert_eq!(args.state.state_dir, Some(PathBuf::from("/tmp/x")));
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
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
