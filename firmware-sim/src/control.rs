//! The control API (`ferrokey serve --control ADDR:PORT|unix:PATH`): HTTP
//! on axum and hyper that plugs, unplugs and "touches" the keys while they
//! run, so tests and CI can script what a person would do with a real key.
//!
//! - [`router`]: every route (one table, checked against `openapi.json`) and
//!   the layers each request passes.
//! - [`guard`]: the checks that keep web pages out (Host, Origin,
//!   Sec-Fetch-Site) and the optional bearer token.
//! - [`listen`]: TCP or Unix-socket listener, connection limits, timeouts.
//! - [`reply`]: WebDriver's `{"value": ...}` convention and error codes.
//! - [`rig`]: the paths python-fido2's device-suite rig drives (`/usbN/...`).
//! - [`power`]: a core that really loses power at power-off.
//! - [`webauthn`]: the WebDriver/CDP authenticator and credential parameters.
//!
//! Every answer is JSON: `{"value": ...}` on success, `{"value": {"error",
//! "message"}}` with a 4xx/5xx status on failure. The whole API is described
//! by `/openapi.json` (the same document as `firmware-sim/openapi.json`).

pub mod cli;
pub mod client;
pub mod feed;
pub mod guard;
pub mod listen;
pub mod power;
pub mod reply;
pub mod rig;
pub mod router;
pub mod sse;
pub mod transcript;
pub mod webauthn;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use crate::fleet::Fleet;

pub use guard::Guard;
pub use listen::{Bound, ControlListen};

/// The control API's command-line options (flattened into `ferrokey serve`).
#[derive(Clone, Debug, Default, Args)]
pub struct ControlArgs {
    /// Serve the control API on ADDR:PORT (loopback, e.g. 127.0.0.1:8765;
    /// port 0 picks a free one, logged) or on a Unix socket, unix:PATH
    /// (created 0600, only this user may connect). The API plugs and unplugs
    /// keys, presses their button, and describes itself at /openapi.json.
    #[arg(long, value_name = "ADDR:PORT|unix:PATH")]
    pub control: Option<ControlListen>,
    /// Require `Authorization: Bearer TOKEN` on every control request, TOKEN
    /// being this file's content (at least 16 characters; the file must not
    /// be readable by group or others).
    #[arg(long, value_name = "PATH", requires = "control")]
    pub control_token_file: Option<PathBuf>,
    /// Let pages of this origin (scheme://host[:port], e.g.
    /// http://localhost:3000) use the control API from a browser (CORS).
    /// Without it every request that carries an Origin is refused.
    /// Repeatable.
    #[arg(long, value_name = "ORIGIN", requires = "control")]
    pub control_allow_origin: Vec<String>,
    /// Accept this Host name besides loopback names and the listen address,
    /// e.g. 10.0.2.2 for a QEMU guest reaching the host. Repeatable.
    #[arg(long, value_name = "HOST", requires = "control")]
    pub control_allow_host: Vec<String>,
    /// Write every event (CTAP requests decoded with secrets as lengths,
    /// DevTools credential events, plug/power/presence events) to FILE, one
    /// JSON object a line (created 0600).
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<PathBuf>,
}

/// What every handler shares: the fleet of running keys.
#[derive(Clone, Debug)]
pub struct Control {
    /// The keys.
    pub fleet: Fleet,
}

/// The handlers' shared state.
pub type Shared = Arc<Control>;

/// A bound control listener with its request checks, ready to serve.
#[derive(Debug)]
pub struct ControlServer {
    bound: Bound,
    guard: Guard,
    limits: listen::Limits,
}

impl ControlServer {
    /// Reads the token file, checks the allow-lists and binds the listener.
    /// `Ok(None)` without `--control`.
    pub fn bind(args: &ControlArgs) -> anyhow::Result<Option<ControlServer>> {
        let Some(at) = &args.control else {
            return Ok(None);
        };
        let guard = guard_from_args(args)?;
        let bound =
            Bound::bind(at).with_context(|| format!("cannot listen on {at} (--control)"))?;
        Ok(Some(ControlServer::new(bound, guard)))
    }

    /// A server with the given listener and checks.
    pub fn new(bound: Bound, guard: Guard) -> Self {
        ControlServer {
            bound,
            guard,
            limits: listen::Limits::default(),
        }
    }

    /// The same server with other connection limits (tests use short ones).
    pub fn with_limits(mut self, limits: listen::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// What clients connect to: `http://ADDR/` or `unix:PATH`.
    pub fn describe(&self) -> io::Result<String> {
        self.bound.describe()
    }

    /// The TCP address, if it listens on TCP.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.bound.tcp_addr()
    }

    /// Serves the API for the keys of `fleet` until the future is dropped.
    pub async fn serve(self, fleet: Fleet) -> io::Result<()> {
        let control = Arc::new(Control { fleet });
        listen::run(self.bound, router::router(control, self.guard), self.limits).await
    }
}

/// The [`Guard`] the options describe.
fn guard_from_args(args: &ControlArgs) -> anyhow::Result<Guard> {
    let origins = args
        .control_allow_origin
        .iter()
        .map(|o| guard::normalize_origin(o).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("--control-allow-origin")?;
    let hosts = args
        .control_allow_host
        .iter()
        .map(|h| guard::normalize_host(h).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("--control-allow-host")?;
    let token = match &args.control_token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    if token.is_none() {
        if let Some(ControlListen::Tcp(addr)) = &args.control {
            if !addr.ip().is_loopback() {
                tracing::warn!("control API on {addr} without --control-token-file: anyone who reaches it can drive the keys");
            }
        }
    }
    Ok(Guard::new(origins, hosts, token))
}

/// Reads the bearer token from a file that only its owner can read.
fn read_token(path: &Path) -> anyhow::Result<guard::Token> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by others (mode {mode:03o}); a shared token protects nothing: chmod 600 it",
            path.display()
        );
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    guard::Token::new(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_files_must_be_private_and_long() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_token(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_token(&path).is_ok());
        std::fs::write(&path, "short\n").unwrap();
        assert!(read_token(&path).is_err());
        assert!(read_token(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn bad_allow_lists_are_refused_at_start() {
        let args = ControlArgs {
            control: Some("127.0.0.1:0".parse().unwrap()),
            control_allow_origin: vec!["*".into()],
            ..ControlArgs::default()
        };
        assert!(ControlServer::bind(&args).is_err());
        let args = ControlArgs {
            control: Some("127.0.0.1:0".parse().unwrap()),
            control_allow_host: vec!["a b".into()],
            ..ControlArgs::default()
        };
        assert!(ControlServer::bind(&args).is_err());
        assert!(ControlServer::bind(&ControlArgs::default())
            .unwrap()
            .is_none());
    }
}
