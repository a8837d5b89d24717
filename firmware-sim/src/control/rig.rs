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

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};

use ferrokey::platform::UvStatus;

use super::reply::{ApiError, ApiResult, ErrorCode, PathParams, Reply};
use super::Shared;
use crate::fleet::KeyRef;
use crate::presence::Policy;

/// A key's status, as every rig path answers it.
pub fn status(key: &KeyRef) -> Value {
    let info = key.info();
    let switch = key.switch();
    let on_off = |b: bool| if b { "on" } else { "off" };
    json!({
        "port": info.number,
        "authenticatorId": info.id.to_string(),
        "busid": info.busid,
        "power": on_off(info.powered),
        "attached": info.attached,
        "touch": on_off(switch.is_touched()),
        "presence": switch.policy().map_or(info.options.presence_name(), |p| p.name()),
        "uv": match switch.uv_policy() {
            None => info.options.effective_uv().name(),
            Some(UvStatus::Verified) => "approve",
            Some(UvStatus::Failed) => "deny",
        },
    })
}

/// `GET /`: every key's status.
pub async fn all(State(control): State<Shared>) -> ApiResult {
    let mut keys = control.fleet.refs();
    keys.sort_by_key(KeyRef::number);
    let statuses: Vec<Value> = keys.iter().map(status).collect();
    Ok(Reply(json!({
        "ferrokey": env!("CARGO_PKG_VERSION"),
        "keys": statuses,
    })))
}

/// `GET /usbN`.
pub async fn one(State(control): State<Shared>, PathParams(port): PathParams<String>) -> ApiResult {
    Ok(Reply(status(&target(&control, &port)?)))
}

/// `/usbN/power/on|off`.
pub async fn power(
    State(control): State<Shared>,
    PathParams((port, word)): PathParams<(String, String)>,
) -> ApiResult {
    let key = target(&control, &port)?;
    set_power(&key, on_off(&word)?).await?;
    Ok(Reply(status(&key)))
}

/// `/usbN/touch/on|off`.
pub async fn touch(
    State(control): State<Shared>,
    PathParams((port, word)): PathParams<(String, String)>,
) -> ApiResult {
    let key = target(&control, &port)?;
    key.switch().set_touch(on_off(&word)?);
    Ok(Reply(status(&key)))
}

/// `POST /usbN/presence/MODE`.
pub async fn presence(
    State(control): State<Shared>,
    PathParams((port, word)): PathParams<(String, String)>,
) -> ApiResult {
    let key = target(&control, &port)?;
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
    key.switch().set_policy(policy);
    Ok(Reply(status(&key)))
}

/// `POST /usbN/uv/MODE`.
pub async fn uv(
    State(control): State<Shared>,
    PathParams((port, word)): PathParams<(String, String)>,
) -> ApiResult {
    let key = target(&control, &port)?;
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
    if !key.info().options.effective_uv().is_builtin() {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "the key has no built-in user verification (started with --uv off)",
        )
        .with_status(StatusCode::CONFLICT));
    }
    key.switch().set_uv_policy(answer);
    Ok(Reply(status(&key)))
}

/// Plugs or unplugs a key; a failed power-up is a server-side error.
pub async fn set_power(key: &KeyRef, on: bool) -> Result<(), ApiError> {
    let unavailable = |message: &str| {
        ApiError::new(ErrorCode::UnknownError, message).with_status(StatusCode::SERVICE_UNAVAILABLE)
    };
    match key.power(on).await {
        Err(_) => Err(unavailable("the key has stopped")),
        Ok(powered) if powered != on => Err(unavailable(
            "the key failed to power up (see the server log)",
        )),
        Ok(_) => Ok(()),
    }
}

/// The key named by a `usbN` path segment.
fn target(control: &super::Control, port: &str) -> Result<KeyRef, ApiError> {
    let number = parse_port(port)?;
    control.fleet.get_by_number(number).ok_or_else(|| {
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
}
