//! The control API (`ferrokey serve --control ADDR:PORT`): a tiny HTTP/1.1
//! server that plugs, unplugs and "touches" the keys while they run, so tests
//! and CI can script what a person would do with a real key.
//!
//! The paths follow the HTTP interface of the hardware test rig that
//! python-fido2's device tests drive (`--controller URL --pico-port N`), so
//! that suite runs against ferrokey unchanged. `N` is the key number (1-based;
//! key N has busid `1-N`). `GET` and `POST` are both accepted.
//!
//! | path | effect |
//! | --- | --- |
//! | `/` | status of every key (JSON) |
//! | `/usbN` | status of key N |
//! | `/usbN/power/off` | unplug: the USB/IP connection is closed (the host sees a disconnect), imports are refused, the key loses its volatile state (PIN retries of this power-up, key agreement keys, tokens) |
//! | `/usbN/power/on` | replug: the key powers up from its persistent state; imports are accepted |
//! | `/usbN/touch/on`, `/usbN/touch/off` | hold or release the simulated button: while held, every presence request is approved |
//! | `/usbN/presence/approve` (or `auto`), `deny`, `touch` | override the `--presence` mode: approve or refuse every request at once, or approve only while the button is held |
//! | `/usbN/presence/default` | back to the `--presence` mode of the command line |
//! | `/usbN/uv/approve` (or `auto`), `deny` | override `--uv`: built-in user verification succeeds, or fails (spending a uvRetry), every time; 409 when the key was started with `--uv off` |
//! | `/usbN/uv/default` | back to the `--uv` mode of the command line |
//!
//! With `--presence auto` (the default) every request is approved anyway, so
//! `touch/on|off` changes nothing; `--presence touch` approves only while the
//! button is held. Every answer is JSON: the key's (or every key's) status, or
//! `{"error": ...}` with status 400/404/405/408/409/503.
//!
//! The listener binds to loopback unless told otherwise and warns when it is
//! not: whoever reaches it can approve requests and unplug keys.

mod http;
pub mod power;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use ferrokey::platform::UvStatus;

use crate::presence::{Policy, PresenceSwitch, UvMode};
use crate::usbip::KeySwitch;

/// The most control connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One key as the control API sees it.
#[derive(Clone, Debug)]
pub struct ControlTarget {
    /// Key number (1-based), the `N` of `/usbN/...`.
    pub number: u32,
    /// Plugs and unplugs the key.
    pub power: KeySwitch,
    /// Its button and presence override.
    pub presence: PresenceSwitch,
    /// The `--presence` mode of the command line, for the status.
    pub mode: String,
    /// The `--uv` mode of the command line.
    pub uv: UvMode,
}

impl ControlTarget {
    fn status(&self) -> Value {
        let on_off = |b: bool| if b { "on" } else { "off" };
        json!({
            "port": self.number,
            "busid": self.power.busid(),
            "power": on_off(self.power.is_powered()),
            "attached": self.power.is_attached(),
            "touch": on_off(self.presence.is_touched()),
            "presence": self.presence.policy().map_or(self.mode.clone(), |p| p.name().to_string()),
            "uv": match self.presence.uv_policy() {
                None => self.uv.name(),
                Some(UvStatus::Verified) => "approve",
                Some(UvStatus::Failed) => "deny",
            },
        })
    }
}

/// An HTTP answer: status code and JSON body.
#[derive(Debug, PartialEq)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer { status: 200, body }
    }

    fn error(status: u16, message: &str) -> Self {
        Answer {
            status,
            body: json!({ "error": message }),
        }
    }
}

/// Binds the control listener. Warns when `addr` is not a loopback address.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "control API listening on a non-loopback address: anyone who can reach it can approve requests and unplug keys"
        );
    }
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the control API on `listener` until the task is dropped or aborted.
pub async fn serve(listener: std::net::TcpListener, targets: Vec<ControlTarget>) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let targets = Arc::new(targets);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "control API: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(%peer, "control API: too many connections; closing one");
            continue;
        };
        let targets = Arc::clone(&targets);
        tokio::spawn(async move {
            if let Err(error) = serve_one(stream, &targets).await {
                tracing::debug!(%peer, %error, "control API connection failed");
            }
            drop(permit);
        });
    }
}

/// Reads one request, acts on it, answers, and closes the connection.
async fn serve_one(mut stream: TcpStream, targets: &[ControlTarget]) -> io::Result<()> {
    let answer = match tokio::time::timeout(REQUEST_TIMEOUT, http::read_request(&mut stream)).await
    {
        Err(_) => Answer::error(408, "request timeout"),
        Ok(Err(http::BadRequest::Io(error))) => return Err(error),
        Ok(Err(http::BadRequest::Invalid(why))) => Answer::error(400, why),
        Ok(Ok(request)) => {
            let answer = handle(&request.method, &request.path, targets).await;
            tracing::info!(
                method = %request.method,
                path = %request.path,
                status = answer.status,
                "control API request"
            );
            answer
        }
    };
    http::write_response(&mut stream, answer.status, &answer.body).await
}

/// An action on one key.
#[derive(Debug, PartialEq)]
enum Action {
    Status,
    Power(bool),
    Touch(bool),
    Presence(Option<Policy>),
    Uv(Option<UvStatus>),
}

/// Parses a path into a key number and an action. `None`: the overall status.
fn parse_path(path: &str) -> Result<Option<(u32, Action)>, &'static str> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    let mut parts = trimmed.split('/');
    let number = parts
        .next()
        .and_then(|p| p.strip_prefix("usb"))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or("no such path; try /usbN/power/on|off, /usbN/touch/on|off, /usbN/presence/MODE or /usbN/uv/MODE")?;
    let on_off = |word: Option<&str>| match word {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        _ => Err("expected on or off"),
    };
    let action = match (parts.next(), parts.next()) {
        (None, _) => Action::Status,
        (Some("power"), word) => Action::Power(on_off(word)?),
        (Some("touch"), word) => Action::Touch(on_off(word)?),
        (Some("presence"), word) => Action::Presence(match word {
            Some("approve" | "auto") => Some(Policy::Approve),
            Some("deny") => Some(Policy::Deny),
            Some("touch") => Some(Policy::Touch),
            Some("default") => None,
            _ => return Err("expected approve, auto, deny, touch or default"),
        }),
        (Some("uv"), word) => Action::Uv(match word {
            Some("approve" | "auto") => Some(UvStatus::Verified),
            Some("deny") => Some(UvStatus::Failed),
            Some("default") => None,
            _ => return Err("expected approve, auto, deny or default"),
        }),
        _ => return Err("no such action; try power, touch, presence or uv"),
    };
    if parts.next().is_some() {
        return Err("no such path");
    }
    Ok(Some((number, action)))
}

/// Answers one request.
pub async fn handle(method: &str, path: &str, targets: &[ControlTarget]) -> Answer {
    if method != "GET" && method != "POST" {
        return Answer::error(405, "only GET and POST are supported");
    }
    let (number, action) = match parse_path(path) {
        Ok(None) => {
            let keys: Vec<Value> = targets.iter().map(ControlTarget::status).collect();
            return Answer::ok(json!({
                "ferrokey": env!("CARGO_PKG_VERSION"),
                "keys": keys,
            }));
        }
        Ok(Some(parsed)) => parsed,
        Err(why) => return Answer::error(404, why),
    };
    let Some(target) = targets.iter().find(|t| t.number == number) else {
        return Answer::error(404, "no such key");
    };
    match action {
        Action::Status => {}
        Action::Power(on) => match target.power.set_power(on).await {
            None => return Answer::error(503, "the key has stopped"),
            Some(powered) if powered != on => {
                return Answer::error(503, "the key failed to power up (see the server log)")
            }
            Some(_) => {}
        },
        Action::Touch(on) => target.presence.set_touch(on),
        Action::Presence(policy) => target.presence.set_policy(policy),
        Action::Uv(_) if !target.uv.is_builtin() => {
            return Answer::error(
                409,
                "the key has no built-in user verification (started with --uv off)",
            )
        }
        Action::Uv(answer) => target.presence.set_uv_policy(answer),
    }
    Answer::ok(target.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(parse_path("/"), Ok(None));
        assert_eq!(parse_path(""), Ok(None));
        assert_eq!(parse_path("/usb1"), Ok(Some((1, Action::Status))));
        assert_eq!(
            parse_path("/usb2/power/off"),
            Ok(Some((2, Action::Power(false))))
        );
        assert_eq!(
            parse_path("/usb1/touch/on/"),
            Ok(Some((1, Action::Touch(true))))
        );
        assert_eq!(
            parse_path("/usb1/presence/auto"),
            Ok(Some((1, Action::Presence(Some(Policy::Approve)))))
        );
        assert_eq!(
            parse_path("/usb1/presence/default"),
            Ok(Some((1, Action::Presence(None))))
        );
        assert_eq!(
            parse_path("/usb3/uv/deny"),
            Ok(Some((3, Action::Uv(Some(UvStatus::Failed)))))
        );
        assert_eq!(
            parse_path("/usb1/uv/auto"),
            Ok(Some((1, Action::Uv(Some(UvStatus::Verified)))))
        );
        assert_eq!(
            parse_path("/usb1/uv/default"),
            Ok(Some((1, Action::Uv(None))))
        );
        for bad in [
            "/usb",
            "/usbx/power/on",
            "/usb1/power",
            "/usb1/power/maybe",
            "/usb1/uv",
            "/usb1/uv/touch",
            "/usb1/fly",
            "/usb1/power/on/now",
            "/usb-1/power/on",
            "/favicon.ico",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn unknown_keys_methods_and_paths_are_errors() {
        assert_eq!(handle("DELETE", "/", &[]).await.status, 405);
        assert_eq!(handle("GET", "/usb1/power/on", &[]).await.status, 404);
        assert_eq!(handle("GET", "/nope", &[]).await.status, 404);
        let all = handle("GET", "/", &[]).await;
        assert_eq!(all.status, 200);
        assert_eq!(all.body["keys"], json!([]));
    }
}
