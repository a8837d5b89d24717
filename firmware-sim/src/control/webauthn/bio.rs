//! The fingerprint sensor of a key served with `bio` (`--bio`,
//! `ferrokey:bio`): place a finger (an enrollment sample or a match), make
//! the next match fail, and list the enrollments (template IDs and friendly
//! names; the simulated biometric data never leaves the key). Each change is
//! published as an event (`bioFingerPlaced`, `bioFailNextMatch`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use ferrokey::bio::MAX_FINGER;

use super::authenticators::{fleet_error, key_by_id, parse};
use super::binary;
use super::Ids;
use crate::control::reply::{ApiError, ApiResult, ErrorCode, JsonBody, Reply};
use crate::control::Shared;
use crate::events::EventKind;
use crate::fleet::KeyRef;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Finger {
    finger: u8,
}

/// The key `id`, which must have a fingerprint sensor (else 409).
fn bio_key(control: &crate::control::Control, id: &str) -> Result<KeyRef, ApiError> {
    let key = key_by_id(control, id)?;
    if !key.info().options.bio {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "the authenticator has no fingerprint sensor (created without ferrokey:bio / --bio)",
        )
        .with_status(StatusCode::CONFLICT));
    }
    Ok(key)
}

fn publish(control: &crate::control::Control, key: &KeyRef, name: &'static str, payload: Value) {
    control
        .fleet
        .events()
        .publish(key.id(), EventKind::Other(name.into()), payload);
}

/// `POST .../authenticator/{id}/bio/finger` `{"finger": N}`: finger N (0 to
/// 9; 0 is the finger that touches the key) is placed on the sensor. It
/// approves a pending presence request (an enrollment sample) and is what
/// the sensor reads next (the sample, or a match for user verification).
pub async fn place_finger(
    State(control): State<Shared>,
    Ids {
        authenticator: id, ..
    }: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let key = bio_key(&control, &id)?;
    let Finger { finger } = parse(body)?;
    if finger > MAX_FINGER {
        return Err(ApiError::invalid_argument(format!(
            "finger must be 0 to {MAX_FINGER}, not {finger}"
        )));
    }
    key.switch().place_finger(finger);
    publish(
        &control,
        &key,
        "bioFingerPlaced",
        json!({ "finger": finger }),
    );
    Ok(Reply(json!({ "finger": finger })))
}

/// `POST .../authenticator/{id}/bio/fail-next-match`: the next fingerprint
/// match fails whatever finger is read (spending a uvRetries attempt).
pub async fn fail_next_match(
    State(control): State<Shared>,
    Ids {
        authenticator: id, ..
    }: Ids,
) -> ApiResult {
    let key = bio_key(&control, &id)?;
    let done = key
        .call(|core| core.authenticator_mut().bio_fail_next_match())
        .await
        .map_err(fleet_error)?;
    if !done {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "the key's core has no fingerprint sensor",
        )
        .with_status(StatusCode::CONFLICT));
    }
    publish(&control, &key, "bioFailNextMatch", json!({}));
    Ok(Reply(Value::Null))
}

/// `GET .../authenticator/{id}/bio`: `{"enrollments": [{"templateId":
/// base64url, "friendlyName": text}], "failNextMatch": bool, "uvRetries": n}`.
pub async fn status(
    State(control): State<Shared>,
    Ids {
        authenticator: id, ..
    }: Ids,
) -> ApiResult {
    let key = bio_key(&control, &id)?;
    let (enrollments, fail_next, uv_retries) = key
        .call(|core| {
            let auth = core.authenticator_mut();
            let enrollments = auth.bio_enrollments();
            let status = auth.pin_uv_status().ok();
            (
                enrollments,
                auth.bio_next_match_fails(),
                status.map(|s| s.uv_retries),
            )
        })
        .await
        .map_err(fleet_error)?;
    let enrollments = enrollments.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownError,
            "the key's state could not be read (a reset could not finish)",
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
    })?;
    let list: Vec<Value> = enrollments
        .iter()
        .map(|e| {
            json!({
                "templateId": binary::encode(&[e.id]),
                "friendlyName": e.name.as_str(),
            })
        })
        .collect();
    Ok(Reply(json!({
        "enrollments": list,
        "failNextMatch": fail_next,
        "uvRetries": uv_retries,
    })))
}
