//! Credentials: Add Credential, Get Credentials, Remove Credential, Remove
//! All Credentials, Set Credential Properties (WebDriver), and CDP's
//! setResponseOverrideBits. Each runs on the key's own task through the
//! core's instrument API (`KeyRef::call`), so the key then uses a seeded
//! credential for real (allowList by its id; discoverable with an empty one).
//! Changes made here are published as CDP events (credentialAdded,
//! credentialUpdated, credentialDeleted) like those of CTAP traffic.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use ferrokey::authenticator::instrument::{
    CredentialProperties, ImportError, NewCredential, PrivateKey as CorePrivateKey,
};
use ferrokey::authenticator::ResponseOverrides;

use super::authenticators::{fleet_error, key_by_id, parse};
use super::binary;
use super::credential::{CredentialView, PrivateKey, SeededCredential};
use super::Ids;
use crate::control::reply::{ApiError, ApiResult, ErrorCode, JsonBody, Reply};
use crate::control::Shared;
use crate::events::EventKind;
use crate::fleet::KeyRef;

/// `POST .../authenticator/{id}/credential`: Add Credential.
pub async fn add(
    State(control): State<Shared>,
    ids: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    let seeded = SeededCredential::from_json(body).map_err(ApiError::invalid_argument)?;
    let event = json!({ "credential": {
        "credentialId": binary::encode(&seeded.id),
        "isResidentCredential": seeded.resident,
        "rpId": seeded.rp_id,
        "signCount": seeded.sign_count,
    }});
    let imported = key
        .call(move |core| {
            let private_key = match &seeded.private_key {
                PrivateKey::P256(scalar) => CorePrivateKey::Es256(**scalar),
                PrivateKey::Ed25519(seed) => CorePrivateKey::Ed25519(**seed),
            };
            let new = NewCredential {
                id: &seeded.id,
                rp_id: &seeded.rp_id,
                resident: seeded.resident,
                private_key: &private_key,
                user_handle: seeded.user_handle.as_deref().unwrap_or_default(),
                sign_count: seeded.sign_count,
                large_blob: seeded.large_blob.as_deref(),
                backup_eligible: seeded.backup_eligibility,
                backup_state: seeded.backup_state,
                user_name: seeded.user_name.as_deref(),
                user_display_name: seeded.user_display_name.as_deref(),
            };
            core.authenticator_mut().import_credential(&new)
        })
        .await
        .map_err(fleet_error)?;
    match imported {
        Ok(()) => {
            publish(&control, &key, "credentialAdded", event);
            Ok(Reply(Value::Null))
        }
        Err(error) => Err(import_error(error)),
    }
}

fn import_error(error: ImportError) -> ApiError {
    match error {
        ImportError::DiscoverableFull | ImportError::NoRoom | ImportError::LargeBlobTooLarge => {
            ApiError::new(ErrorCode::UnsupportedOperation, error.to_string())
                .with_status(StatusCode::CONFLICT)
        }
        ImportError::Storage(_) | ImportError::LargeBlobArrayUnreadable => {
            ApiError::new(ErrorCode::UnknownError, error.to_string())
        }
        _ => ApiError::invalid_argument(error.to_string()),
    }
}

/// Every credential of a key, as Credential Parameters (private keys only
/// when the key is exportable).
async fn views(key: &KeyRef) -> Result<Vec<CredentialView>, ApiError> {
    let visited = key
        .call(|core| {
            let mut views = Vec::new();
            let mut failure = None;
            let visited = core.authenticator_mut().visit_credentials(|c| {
                let large_blob = match c
                    .large_blob
                    .as_ref()
                    .map(crate::credentials::inflate_large_blob)
                {
                    Some(Ok(blob)) => Some(blob),
                    Some(Err(e)) => {
                        failure.get_or_insert(format!("a large blob does not inflate: {e}"));
                        None
                    }
                    None => None,
                };
                views.push(CredentialView {
                    id: c.id.to_vec(),
                    resident: c.resident,
                    rp_id: c.rp_id.map_or_else(
                        || format!("rpIdHash:{}", binary::encode(c.rp_id_hash)),
                        str::to_string,
                    ),
                    private_key: c.private_key.map(|k| match k {
                        CorePrivateKey::Es256(s) => PrivateKey::P256(zeroize::Zeroizing::new(*s)),
                        CorePrivateKey::Ed25519(s) => {
                            PrivateKey::Ed25519(zeroize::Zeroizing::new(*s))
                        }
                    }),
                    user_handle: (!c.user_handle.is_empty()).then(|| c.user_handle.to_vec()),
                    sign_count: c.sign_count,
                    large_blob,
                    backup_eligibility: c.backup_eligible,
                    backup_state: c.backup_state,
                    user_name: c.user_name.map(str::to_string),
                    user_display_name: c.user_display_name.map(str::to_string),
                });
            });
            visited
                .map(|()| (views, failure))
                .map_err(|e| format!("{e:?}"))
        })
        .await
        .map_err(fleet_error)?;
    match visited {
        Ok((views, None)) => Ok(views),
        Ok((_, Some(why))) | Err(why) => Err(ApiError::new(
            ErrorCode::UnknownError,
            format!("reading the credentials: {why}"),
        )),
    }
}

/// `GET .../authenticator/{id}/credentials`: Get Credentials.
pub async fn list(State(control): State<Shared>, ids: Ids) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    let views = views(&key).await?;
    let json = views
        .iter()
        .map(CredentialView::to_json)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::new(ErrorCode::UnknownError, e))?;
    Ok(Reply(Value::Array(json)))
}

/// The credential id of a path, decoded.
fn credential_id(ids: &Ids) -> Result<Vec<u8>, ApiError> {
    let text = ids.credential.as_deref().unwrap_or_default();
    let id = binary::decode("credentialId", text)
        .map_err(|e| ApiError::new(ErrorCode::NoSuchCredential, e))?;
    if id.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NoSuchCredential,
            "empty credentialId",
        ));
    }
    Ok(id.to_vec())
}

/// `DELETE .../authenticator/{id}/credentials/{credentialId}`: Remove Credential.
pub async fn remove(State(control): State<Shared>, ids: Ids) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    let id = credential_id(&ids)?;
    let encoded = binary::encode(&id);
    let removed = key
        .call(move |core| {
            core.authenticator_mut()
                .delete_credential(&id)
                .map_err(|e| format!("{e:?}"))
        })
        .await
        .map_err(fleet_error)?
        .map_err(|e| ApiError::new(ErrorCode::UnknownError, e))?;
    if !removed {
        return Err(ApiError::new(
            ErrorCode::NoSuchCredential,
            format!("no credential {encoded}"),
        ));
    }
    publish(
        &control,
        &key,
        "credentialDeleted",
        json!({ "credentialId": encoded }),
    );
    Ok(Reply(Value::Null))
}

/// `DELETE .../authenticator/{id}/credentials`: Remove All Credentials.
pub async fn remove_all(State(control): State<Shared>, ids: Ids) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    let before = views(&key).await?;
    key.call(|core| {
        core.authenticator_mut()
            .delete_all_credentials()
            .map_err(|e| format!("{e:?}"))
    })
    .await
    .map_err(fleet_error)?
    .map_err(|e| ApiError::new(ErrorCode::UnknownError, e))?;
    for view in before {
        publish(
            &control,
            &key,
            "credentialDeleted",
            json!({ "credentialId": binary::encode(&view.id) }),
        );
    }
    Ok(Reply(Value::Null))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Props {
    #[serde(default)]
    backup_eligibility: Option<bool>,
    #[serde(default)]
    backup_state: Option<bool>,
    #[serde(default)]
    sign_count: Option<u32>,
}

/// `POST .../authenticator/{id}/credentials/{credentialId}/props`: Set
/// Credential Properties (`backupEligibility`, `backupState`, and CDP's
/// `signCount`).
pub async fn set_props(
    State(control): State<Shared>,
    ids: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    let id = credential_id(&ids)?;
    let props: Props = parse(body)?;
    let encoded = binary::encode(&id);
    let properties = CredentialProperties {
        backup_eligible: props.backup_eligibility,
        backup_state: props.backup_state,
        sign_count: props.sign_count,
    };
    let changed = key
        .call(move |core| {
            core.authenticator_mut()
                .set_credential_properties(&id, &properties)
                .map_err(|e| format!("{e:?}"))
        })
        .await
        .map_err(fleet_error)?
        .map_err(|e| ApiError::new(ErrorCode::UnknownError, e))?;
    if !changed {
        return Err(ApiError::new(
            ErrorCode::NoSuchCredential,
            format!("no credential {encoded}"),
        ));
    }
    publish(
        &control,
        &key,
        "credentialUpdated",
        json!({ "credential": {
            "credentialId": encoded,
            "backupEligibility": props.backup_eligibility,
            "backupState": props.backup_state,
            "signCount": props.sign_count,
        }}),
    );
    Ok(Reply(Value::Null))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Overrides {
    #[serde(default)]
    is_bogus_signature: bool,
    #[serde(default, rename = "isBadUV")]
    is_bad_uv: bool,
    #[serde(default, rename = "isBadUP")]
    is_bad_up: bool,
}

/// `POST .../authenticator/{id}/response-override`: CDP's
/// setResponseOverrideBits (absent bits reset to false, as in CDP).
pub async fn set_overrides(
    State(control): State<Shared>,
    ids: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let key = key_by_id(&control, &ids.authenticator)?;
    let o: Overrides = parse(body)?;
    let overrides = ResponseOverrides {
        bogus_signature: o.is_bogus_signature,
        bad_uv: o.is_bad_uv,
        bad_up: o.is_bad_up,
    };
    key.call(move |core| core.authenticator_mut().set_response_overrides(overrides))
        .await
        .map_err(fleet_error)?;
    Ok(Reply(json!({
        "isBogusSignature": o.is_bogus_signature,
        "isBadUV": o.is_bad_uv,
        "isBadUP": o.is_bad_up,
    })))
}

/// Publishes a DevTools event for a change made through the API.
fn publish(control: &crate::control::Control, key: &KeyRef, name: &'static str, payload: Value) {
    control
        .fleet
        .events()
        .publish(key.id(), EventKind::Other(name.into()), payload);
}
