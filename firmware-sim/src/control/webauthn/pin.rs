//! PIN/UV state, what a real key adds to the WebDriver commands:
//!
//! - `GET .../authenticator/{id}/pin`: `{isSet, state, retries, uvRetries,
//!   forcePinChange, powerCycleRequired, minPinLength, builtinUv}`;
//! - `POST .../pin` `{"pin": "..."}` sets or changes the PIN, `{"pin": null}`
//!   clears it;
//! - `POST .../pin/retries` `{"retries": 0..8, "uvRetries": 0..8}` (either);
//! - `POST .../pin/state` `{"state": "unset"|"set"|"blocked"|"forcePinChange"
//!   |"uvBlocked", "pin": "..."}` (`pin` optional: the PIN to set first).
//!
//! Each runs on the key's task through the core's PIN code, so CTAP clients
//! see exactly this state. Each answers the new state, and publishes the
//! events of the change (`pinSet`, `pinChanged`, `pinCleared`, `pinBlocked`,
//! `uvBlocked`, `forcePinChange`, with `source: "api"`). A PIN is never
//! answered, published or logged.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use ferrokey::pin::controls::{ControlError, PinUvStatus};
use ferrokey::pin::state::{MAX_PIN_RETRIES, MAX_UV_RETRIES};

use super::authenticators::{fleet_error, key_by_id, parse};
use super::Ids;
use crate::control::reply::{ApiError, ApiResult, ErrorCode, JsonBody, Reply};
use crate::control::Shared;
use crate::key::pin::{self as key_pin, PinSecret, PinStateName};
use crate::key::KeyCore;

/// A PIN/UV control failure as an answer.
pub fn control_error(error: ControlError) -> ApiError {
    match error {
        ControlError::PinPolicy => ApiError::invalid_argument(format!(
            "{error}: the key's minPinLength applies (GET .../pin shows it)"
        )),
        ControlError::PinNotSet => ApiError::new(
            ErrorCode::UnsupportedOperation,
            format!("{error}: set one first (POST .../pin {{\"pin\": \"...\"}})"),
        )
        .with_status(StatusCode::CONFLICT),
        ControlError::NoBuiltinUv => ApiError::new(
            ErrorCode::UnsupportedOperation,
            format!(
                "{error} (created without hasUserVerification or ferrokey:uv \"auto\"/\"deny\")"
            ),
        )
        .with_status(StatusCode::CONFLICT),
        ControlError::Storage(_) => ApiError::new(ErrorCode::UnknownError, error.to_string()),
    }
}

/// Runs `change` on the key's authenticator, publishes the events of what it
/// changed (even when it failed half-way) and answers the new state.
async fn change<F>(control: &Shared, id: &str, change: F) -> ApiResult
where
    F: FnOnce(&mut KeyCore) -> Result<(), ControlError> + Send + 'static,
{
    let key = key_by_id(control, id)?;
    let (before, result, after) = key
        .call(move |core| {
            let before = core.authenticator_mut().pin_uv_status()?;
            let result = change(core);
            let after = core.authenticator_mut().pin_uv_status()?;
            Ok::<_, ControlError>((before, result, after))
        })
        .await
        .map_err(fleet_error)?
        .map_err(control_error)?;
    key_pin::publish_changes(control.fleet.events(), key.id(), &before, &after, "api");
    result.map_err(control_error)?;
    Ok(Reply(key_pin::view(&after)))
}

/// `GET .../authenticator/{id}/pin`.
pub async fn get(State(control): State<Shared>, ids: Ids) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    let status: PinUvStatus = key
        .call(|core| core.authenticator_mut().pin_uv_status())
        .await
        .map_err(fleet_error)?
        .map_err(control_error)?;
    Ok(Reply(key_pin::view(&status)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPin {
    /// Required; `null` clears the PIN.
    #[serde(deserialize_with = "Option::deserialize")]
    pin: Option<PinSecret>,
}

/// `POST .../pin`: `{"pin": "..."}` sets or changes it, `{"pin": null}` clears it.
pub async fn set(
    State(control): State<Shared>,
    ids: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let SetPin { pin } = parse(body)?;
    change(&control, &ids.authenticator, move |core| {
        let auth = core.authenticator_mut();
        match &pin {
            Some(pin) => auth.control_set_pin(pin.expose()),
            None => auth.control_clear_pin(),
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetRetries {
    #[serde(default)]
    retries: Option<u8>,
    #[serde(default)]
    uv_retries: Option<u8>,
}

/// `POST .../pin/retries`: `{"retries": n}` and/or `{"uvRetries": n}`, 0 to 8
/// (0 blocks).
pub async fn set_retries(
    State(control): State<Shared>,
    ids: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let SetRetries {
        retries,
        uv_retries,
    } = parse(body)?;
    if retries.is_none() && uv_retries.is_none() {
        return Err(ApiError::invalid_argument(
            "send {\"retries\": 0..8} and/or {\"uvRetries\": 0..8}",
        ));
    }
    if retries.is_some_and(|n| n > MAX_PIN_RETRIES) {
        return Err(ApiError::invalid_argument(format!(
            "retries must be 0 to {MAX_PIN_RETRIES}"
        )));
    }
    if uv_retries.is_some_and(|n| n > MAX_UV_RETRIES) {
        return Err(ApiError::invalid_argument(format!(
            "uvRetries must be 0 to {MAX_UV_RETRIES}"
        )));
    }
    change(&control, &ids.authenticator, move |core| {
        let auth = core.authenticator_mut();
        // Both are checked before either changes.
        let status = auth.pin_uv_status()?;
        if retries.is_some() && !status.pin_set {
            return Err(ControlError::PinNotSet);
        }
        if uv_retries.is_some() && !status.builtin_uv {
            return Err(ControlError::NoBuiltinUv);
        }
        if let Some(n) = retries {
            auth.control_set_pin_retries(n)?;
        }
        if let Some(n) = uv_retries {
            auth.control_set_uv_retries(n)?;
        }
        Ok(())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetState {
    state: String,
    #[serde(default)]
    pin: Option<PinSecret>,
}

/// `POST .../pin/state`: `{"state": "unset"|"set"|"blocked"|"forcePinChange"
/// |"uvBlocked"}`, with `"pin"` to set one first.
pub async fn set_state(
    State(control): State<Shared>,
    ids: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let SetState { state, pin } = parse(body)?;
    let Some(state) = PinStateName::parse(&state) else {
        let names: Vec<&str> = PinStateName::ALL.iter().map(|s| s.name()).collect();
        return Err(ApiError::invalid_argument(format!(
            "state {state:?} is not one of {}",
            names.join(", ")
        )));
    };
    if state == PinStateName::Unset && pin.is_some() {
        return Err(ApiError::invalid_argument("state \"unset\" takes no pin"));
    }
    change(&control, &ids.authenticator, move |core| {
        let pin = pin.as_ref().map(PinSecret::expose);
        key_pin::apply(core.authenticator_mut(), state, pin)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_parse_strictly() {
        let set: SetPin = parse(json!({"pin": "1234"})).unwrap();
        assert_eq!(set.pin.unwrap().expose(), "1234");
        assert!(parse::<SetPin>(json!({"pin": null})).unwrap().pin.is_none());
        // The field is required: an empty body does not clear the PIN.
        assert!(parse::<SetPin>(json!({})).is_err());
        assert!(parse::<SetPin>(json!({"pin": "12"})).is_err());
        assert!(parse::<SetPin>(json!({"pin": "1234", "x": 1})).is_err());
        let retries: SetRetries = parse(json!({"uvRetries": 0})).unwrap();
        assert_eq!((retries.retries, retries.uv_retries), (None, Some(0)));
        assert!(parse::<SetRetries>(json!({"retries": -1})).is_err());
        assert!(parse::<SetRetries>(json!({"retries": 300})).is_err());
        let state: SetState = parse(json!({"state": "blocked", "pin": "4321"})).unwrap();
        assert_eq!(state.state, "blocked");
        assert!(parse::<SetState>(json!({"pin": "4321"})).is_err());
    }

    #[test]
    fn control_errors_answer_in_webdriver_shape() {
        let policy = control_error(ControlError::PinPolicy);
        assert_eq!(policy.code, ErrorCode::InvalidArgument);
        let none = control_error(ControlError::PinNotSet);
        assert_eq!(none.code, ErrorCode::UnsupportedOperation);
        assert!(none.message.contains("POST .../pin"), "{}", none.message);
        assert_eq!(
            control_error(ControlError::NoBuiltinUv).code,
            ErrorCode::UnsupportedOperation
        );
    }
}
