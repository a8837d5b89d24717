//! `ferrokey events`: the command-line end of [`super::client`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::client::{follow, Endpoint};

/// Options of `ferrokey events`.
#[derive(Clone, Debug, Args)]
pub struct EventsArgs {
    /// The server's control API: http://HOST:PORT (as `serve --control` logs
    /// it) or unix:PATH.
    #[arg(long, value_name = "URL", env = "FERROKEY_CONTROL")]
    pub control: String,
    /// Only this authenticator's events.
    #[arg(long, value_name = "ID")]
    pub authenticator: Option<String>,
    /// The bearer token file, if the server requires one.
    #[arg(long, value_name = "PATH")]
    pub control_token_file: Option<PathBuf>,
}

/// Runs `ferrokey events`.
pub fn events(args: &EventsArgs) -> Result<()> {
    let endpoint = Endpoint::parse(&args.control)?;
    let path = match &args.authenticator {
        Some(id)
            if id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            format!("/webauthn/authenticator/{id}/events")
        }
        Some(id) => anyhow::bail!("{id:?} is not an authenticator id"),
        None => "/events".to_string(),
    };
    let token = match &args.control_token_file {
        Some(file) => Some(zeroize::Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?
                .trim()
                .to_string(),
        )),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stdout = std::io::stdout();
    let mut broken_pipe = false;
    let result = runtime.block_on(follow(
        &endpoint,
        &path,
        token.as_deref().map(String::as_str),
        |line| {
            let mut out = stdout.lock();
            if !broken_pipe && (writeln!(out, "{line}").is_err() || out.flush().is_err()) {
                broken_pipe = true;
            }
        },
    ));
    if broken_pipe {
        return Ok(());
    }
    result
}
