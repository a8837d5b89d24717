//! The paths of the hardware test rig that python-fido2's device tests drive
//! (`--controller URL --pico-port N`), so that suite runs against ferrokey
//! unchanged, plus ferrokey's presence and UV overrides. `N` is the key
//! number (1-based; key N has busid `1-N`).
//!
//! | path | methods | effect |
//! | --- | --- | --- |
//! | `/` | GET | status of every key |
//! | `/usbN` | GET | status of key N |
//! | `/usbN/power/on\|off` | GET, POST | plug or unplug the key (the rig uses GET) |
//! | `/usbN/touch/on\|off` | GET, POST | hold or release the button (the rig uses GET) |
//! | `/usbN/presence/approve\|auto\|deny\|touch\|default` | POST | override `--presence` |
//! | `/usbN/uv/approve\|auto\|deny\|default` | POST | override `--uv` (409 with `--uv off`) |
//!
//! The GET forms of power and touch stay because the rig sends GET; like every
//! request they pass the [`super::guard`] checks first, so a web page cannot
//! use them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};

use ferrokey::platform::UvStatus;

use super::reply::{ApiError, ApiResult, ErrorCode, PathParams, Reply};
use super::ControlTarget;
use crate::presence::Policy;

/// What the rig handlers share: the keys.
#[derive(Debug, Default)]
pub struct Keys {
    /// Every key the control API drives.
    pub targets: Vec<ControlTarget>,
}

/// The shared state of the handlers.
pub type Shared = Arc<Keys>;

impl ControlTarget {
    /// The key's status, as every rig path answers it.
    pub fn status(&self) -> Value {
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

/// `GET /`: every key's status.
pub async fn all(State(keys): State<Shared>) -> ApiResult {
    let statuses: Vec<Value> = keys.targets.iter().map(ControlTarget::status).collect();
    Ok(Reply(json!({
        "ferrokey": env!("CARGO_PKG_VERSION"),
        "keys": statuses,
    })))
}

/// `GET /usbN`.
pub async fn one(State(keys): State<Shared>, PathParams(port): PathParams<String>) -> ApiResult {
    Ok(Reply(target(&keys, &port)?.status()))
}

/// `/usbN/power/on|off`.
pub async fn power(
    State(keys): State<Shared>,
    PathParams((port, word)): PathParams<(String, String)>,
) -> ApiResult {
    let target = target(&keys, &port)?;
    let on = on_off(&word)?;
    match target.power.set_power(on).await {
        None => Err(
            ApiError::new(ErrorCode::UnknownError, "the key has stopped")
                .with_status(StatusCode::SERVICE_UNAVAILABLE),
        ),
        Some(powered) if powered != on => Err(ApiError::new(
            ErrorCode::UnknownError,
            "the key failed to power up (see the server log)",
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)),
        Some(_) => Ok(Reply(target.status())),
    }
}

/// `/usbN/touch/on|off`.
pub async fn touch(
    State(keys): State<Shared>,
    PathParams((port, word)): PathParams<(String, String)>,
) -> ApiResult {
    let target = target(&keys, &port)?;
    target.presence.set_touch(on_off(&word)?);
    Ok(Reply(target.status()))
}

/// `POST /usbN/presence/MODE`.
pub async fn presence(
    State(keys): State<Shared>,
    PathParams((port, word)): PathParams<(String, String)>,
) -> ApiResult {
    let target = target(&keys, &port)?;
    let policy = match word.as_str() {
        "approve" | "auto" => Some(Policy::Approve),
        "deny" => Some(Policy::Deny),
        "touch" => Some(Policy::Touch),
        "default" => None,
        _ => {
            return Err(ApiError::invalid_argument(
                "expected approve, auto, deny, touch or default",
            ))
        }
    };
    target.presence.set_policy(policy);
    Ok(Reply(target.status()))
}

/// `POST /usbN/uv/MODE`.
pub async fn uv(
    State(keys): State<Shared>,
    PathParams((port, word)): PathParams<(String, String)>,
) -> ApiResult {
    let target = target(&keys, &port)?;
    let answer = match word.as_str() {
        "approve" | "auto" => Some(UvStatus::Verified),
        "deny" => Some(UvStatus::Failed),
        "default" => None,
        _ => {
            return Err(ApiError::invalid_argument(
                "expected approve, auto, deny or default",
            ))
        }
    };
    if !target.uv.is_builtin() {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "the key has no built-in user verification (started with --uv off)",
        )
        .with_status(StatusCode::CONFLICT));
    }
    target.presence.set_uv_policy(answer);
    Ok(Reply(target.status()))
}

/// The key named by a `usbN` path segment.
fn target<'a>(keys: &'a Keys, port: &str) -> Result<&'a ControlTarget, ApiError> {
    let number = parse_port(port)?;
    keys.targets
        .iter()
        .find(|t| t.number == number)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoSuchAuthenticator,
                format!("no key usb{number}"),
            )
        })
}

/// `usbN` → `N`; anything else is not a rig path.
fn parse_port(segment: &str) -> Result<u32, ApiError> {
    segment
        .strip_prefix("usb")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownCommand,
                "no such path; try /usbN/power/on|off, /usbN/touch/on|off, /usbN/presence/MODE, \
                 /usbN/uv/MODE or /openapi.json",
            )
        })
}

fn on_off(word: &str) -> Result<bool, ApiError> {
    match word {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(ApiError::invalid_argument("expected on or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse() {
        assert_eq!(parse_port("usb1"), Ok(1));
        assert_eq!(parse_port("usb32"), Ok(32));
        for bad in [
            "usb",
            "usbx",
            "usb-1",
            "usb+1",
            "favicon.ico",
            "USB1",
            "usb99999999999",
        ] {
            assert_eq!(
                parse_port(bad).map_err(|e| e.code),
                Err(ErrorCode::UnknownCommand),
                "{bad}"
            );
        }
        assert_eq!(on_off("on"), Ok(true));
        assert_eq!(on_off("off"), Ok(false));
        assert_eq!(
            on_off("maybe").map_err(|e| e.code),
            Err(ErrorCode::InvalidArgument)
        );
    }

    #[tokio::test]
    async fn unknown_keys_are_no_such_authenticator() {
        let keys: Shared = Arc::new(Keys::default());
        let answer = one(State(keys.clone()), PathParams("usb1".into())).await;
        assert_eq!(
            answer.map_err(|e| e.code),
            Err(ErrorCode::NoSuchAuthenticator)
        );
        let all = all(State(keys)).await.unwrap();
        assert_eq!(all.0["keys"], json!([]));
    }
}
