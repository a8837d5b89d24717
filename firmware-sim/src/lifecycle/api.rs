//! The control API of the lifecycle scenarios (under `/webauthn/...` and
//! `/session/{sessionId}/webauthn/...`):
//!
//! - `POST .../authenticator/{id}/clone`: a clone of the key (answer: the
//!   clone, as `GET .../authenticator/{id}` describes it);
//! - `GET .../authenticator/{id}/export[?includeUsed=true]`: the key's
//!   resident credentials as a CXF document (`{"value": <CXF>}`);
//! - `POST .../authenticator/{id}/import[?backedUp=true|false]` with a CXF
//!   document (bare, or as `{"value": <CXF>}` the export gives): all or
//!   nothing (`{"value": {"imported": [ids], "ignored": n}}`).
//!
//! A device-bound key refuses clone and export (403, `unsupported
//! operation`); bad CXF is `invalid argument` and imports nothing.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{clone, cxf, migrate, policy};
use crate::control::reply::{ApiError, ApiResult, ErrorCode, JsonBody, Reply};
use crate::control::webauthn::authenticators::{describe, fleet_error, key_by_id, MAX_KEYS};
use crate::control::webauthn::Ids;
use crate::control::Shared;
use crate::events::EventKind;
use crate::fleet::KeyRef;

fn refused(why: String) -> ApiError {
    ApiError::new(ErrorCode::UnsupportedOperation, why).with_status(StatusCode::FORBIDDEN)
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::invalid_argument(format!("bad query: {}", e.body_text())))
}

/// `POST .../authenticator/{id}/clone`.
pub async fn clone(State(control): State<Shared>, ids: Ids) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    if control.fleet.list().len() >= MAX_KEYS {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            format!("{MAX_KEYS} authenticators run already; remove one first"),
        )
        .with_status(StatusCode::CONFLICT));
    }
    let added = clone::clone_key(&control.fleet, &key)
        .await
        .map_err(|e| match e {
            clone::CloneError::Refused(why) => refused(why),
            clone::CloneError::Fleet(e) => fleet_error(e),
        })?;
    let copy = control
        .fleet
        .get(added.id)
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownError, "the clone stopped at once"))?;
    Ok(Reply(describe(&copy)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    include_used: bool,
}

/// `GET .../authenticator/{id}/export`.
pub async fn export(
    State(control): State<Shared>,
    ids: Ids,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    let include_used = query(q)?.include_used;
    let info = key.info();
    if let Some(why) = policy::refusal("export", info.options.exportable, &info.state_dir) {
        return Err(refused(why));
    }
    let collected = key
        .call(move |core| migrate::collect(core.authenticator_mut(), include_used))
        .await
        .map_err(fleet_error)?
        .map_err(refused)?;
    let text = cxf::to_document(&collected.passkeys, info.serial.as_bytes(), now())
        .map_err(|e| ApiError::new(ErrorCode::UnknownError, e))?;
    let document: Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::new(ErrorCode::UnknownError, e.to_string()))?;
    publish(
        &control,
        &key,
        "exported",
        json!({
            "format": "cxf",
            "exported": collected.passkeys.len(),
            "skipped": collected.skipped.iter().map(|s| json!({
                "credentialId": s.credential_id,
                "rpId": s.rp_id,
                "signCount": s.sign_count,
            })).collect::<Vec<_>>(),
        }),
    );
    Ok(Reply(document))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    backed_up: Option<bool>,
}

/// A CXF document sent bare or as the export's `{"value": ...}`.
pub fn unwrap_document(body: &Value) -> &Value {
    match body.get("value") {
        Some(inner) if body.get("version").is_none() && inner.is_object() => inner,
        _ => body,
    }
}

/// `POST .../authenticator/{id}/import`.
pub async fn import(
    State(control): State<Shared>,
    ids: Ids,
    q: Result<Query<ImportQuery>, QueryRejection>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    let backed_up = query(q)?.backed_up;
    let read = cxf::from_value(unwrap_document(&body)).map_err(ApiError::invalid_argument)?;
    drop(body);
    let ignored = read.ignored;
    let passkeys = read.passkeys;
    let imported = key
        .call(move |core| migrate::import_all(core.authenticator_mut(), &passkeys, backed_up))
        .await
        .map_err(fleet_error)?
        .map_err(|failure| {
            if failure.key_side {
                ApiError::new(ErrorCode::UnsupportedOperation, failure.to_string())
                    .with_status(StatusCode::CONFLICT)
            } else {
                ApiError::invalid_argument(failure.to_string())
            }
        })?;
    for id in &imported {
        publish(
            &control,
            &key,
            "credentialAdded",
            json!({ "credential": { "credentialId": id, "isResidentCredential": true, "signCount": 0 }}),
        );
    }
    Ok(Reply(json!({ "imported": imported, "ignored": ignored })))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn publish(control: &crate::control::Control, key: &KeyRef, name: &'static str, payload: Value) {
    control
        .fleet
        .events()
        .publish(key.id(), EventKind::Other(name.into()), payload);
}
