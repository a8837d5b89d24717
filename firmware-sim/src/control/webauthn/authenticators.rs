//! Authenticators: Add / Remove Virtual Authenticator (WebDriver), Set User
//! Verified (WebDriver), setAutomaticPresenceSimulation (CDP), and what only
//! a real key has: `GET /webauthn/authenticators`, `GET .../authenticator/{id}`,
//! power and the button. Every handler exists under `/webauthn/...` and
//! `/session/{sessionId}/webauthn/...` (any session id).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use ferrokey::platform::UvStatus;

use super::config::{AuthenticatorConfig, Protocol};
use super::Ids;
use crate::control::reply::{ApiError, ApiResult, ErrorCode, JsonBody, Reply};
use crate::control::rig::{self, set_power};
use crate::control::{Control, Shared};
use crate::events::KeyId;
use crate::fleet::{FleetError, KeyRef};
use crate::key::KeyOptions;
use crate::presence::{Policy, PresenceMode, UvMode};

/// The most keys the control API lets run at once (`--keys N` keys count).
pub const MAX_KEYS: usize = 128;

/// The key with WebDriver id `id` (the fleet's key id, in decimal).
pub fn key_by_id(control: &Control, id: &str) -> Result<KeyRef, ApiError> {
    id.parse::<KeyId>()
        .ok()
        .and_then(|id| control.fleet.get(id))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoSuchAuthenticator,
                format!("no authenticator {id:?}; GET /webauthn/authenticators lists them"),
            )
        })
}

/// What `GET .../authenticator/{id}` and `GET /webauthn/authenticators` say of a key.
pub fn describe(key: &KeyRef) -> Value {
    let info = key.info();
    let mut out = json!({
        "authenticatorId": info.id.to_string(),
        "number": info.number,
        "busid": info.busid,
        "serial": info.serial,
        "aaguid": info.aaguid,
        "transport": "usb",
        "hostTransport": info.transport,
        "powered": info.powered,
        "attached": info.attached,
        "stateDir": info.state_dir.display().to_string(),
        "hidraw": hidraw_node(key),
        "options": serde_json::to_value(&info.options).unwrap_or(Value::Null),
        "profile": info.options.profile_name(),
        "profileDetails": info
            .options
            .resolved_profile()
            .map(|p| crate::profile::describe(&p))
            .unwrap_or(Value::Null),
    });
    out["status"] = rig::status(key);
    out
}

/// The host-side hidraw node of the key, when a host on this machine holds
/// it (uhid, or a vhci attach here) and the kernel made one; `null` otherwise
/// (a remote USB/IP host's nodes are not visible from here).
fn hidraw_node(key: &KeyRef) -> Value {
    if !key.info().attached {
        return Value::Null;
    }
    crate::transport::hidraw::find(
        std::path::Path::new(crate::transport::hidraw::HIDRAW_CLASS),
        &key.hid_match(),
    )
    .map_or(Value::Null, |node| json!(node.display().to_string()))
}

/// The built-in profile of a WebDriver protocol: `ctap1/u2f` is a U2F-only
/// key, `ctap2` a CTAP 2.0 key, `ctap2_1` today's key.
pub fn protocol_profile(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::U2f => "u2f",
        Protocol::Ctap2 => "ctap2.0",
        Protocol::Ctap2_1 => "security-key",
    }
}

/// The [`KeyOptions`] an Authenticator Configuration asks for.
pub fn key_options(config: &AuthenticatorConfig) -> Result<KeyOptions, ApiError> {
    let mut options: KeyOptions = serde_json::from_value(Value::Object(config.vendor.clone()))
        .map_err(|e| ApiError::invalid_argument(format!("ferrokey: options: {e}")))?;
    options.default_backup_eligibility = config.default_backup_eligibility;
    options.default_backup_state = config.default_backup_state;
    // The WebDriver protocol picks the profile unless ferrokey:profile or
    // ferrokey:profileSpec names one.
    if options.profile.is_none() && options.profile_spec.is_none() {
        options.profile = Some(protocol_profile(config.protocol).to_string());
    }
    if !config.vendor.contains_key("uv") {
        options.uv = match (config.has_user_verification, config.is_user_verified) {
            (false, _) => UvMode::Off,
            (true, true) => UvMode::Auto,
            (true, false) => UvMode::Deny,
        };
    }
    if !config.vendor.contains_key("presence") && !config.vendor.contains_key("presenceFile") {
        options.presence = Some(
            match (
                config.is_user_consenting,
                config.automatic_presence_simulation,
            ) {
                (false, _) => PresenceMode::Deny,
                (true, Some(false)) => PresenceMode::Touch,
                (true, _) => PresenceMode::Auto,
            },
        );
    }
    options
        .validate()
        .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
    if let Some(state) = options.pin_state.filter(|s| s.needs_pin()) {
        if options.pin.is_none() {
            return Err(ApiError::invalid_argument(format!(
                "ferrokey:pinState \"{state}\" needs ferrokey:pin (a new authenticator has no PIN)"
            )));
        }
    }
    Ok(options)
}

/// `POST .../authenticator`: Add Virtual Authenticator → `{"value": id}`.
pub async fn add(State(control): State<Shared>, JsonBody(body): JsonBody<Value>) -> ApiResult {
    let config = AuthenticatorConfig::from_json(&body)?;
    if control.fleet.list().len() >= MAX_KEYS {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            format!("{MAX_KEYS} authenticators run already; remove one first"),
        )
        .with_status(StatusCode::CONFLICT));
    }
    let options = key_options(&config)?;
    let info = control.fleet.add(options).await.map_err(fleet_error)?;
    Ok(Reply(json!(info.id.to_string())))
}

/// `GET /webauthn/authenticators`: every key.
pub async fn list(State(control): State<Shared>) -> ApiResult {
    let mut keys = control.fleet.refs();
    keys.sort_by_key(KeyRef::id);
    Ok(Reply(Value::Array(keys.iter().map(describe).collect())))
}

/// `GET .../authenticator/{id}`.
pub async fn get(
    State(control): State<Shared>,
    Ids {
        authenticator: id, ..
    }: Ids,
) -> ApiResult {
    Ok(Reply(describe(&key_by_id(&control, &id)?)))
}

/// `DELETE .../authenticator/{id}`: Remove Virtual Authenticator (an unplug;
/// its state is deleted).
pub async fn remove(
    State(control): State<Shared>,
    Ids {
        authenticator: id, ..
    }: Ids,
) -> ApiResult {
    let key = key_by_id(&control, &id)?;
    control.fleet.remove(key.id()).await.map_err(fleet_error)?;
    Ok(Reply(Value::Null))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetUv {
    is_user_verified: bool,
}

/// `POST .../authenticator/{id}/uv`: Set User Verified.
pub async fn set_uv(
    State(control): State<Shared>,
    Ids {
        authenticator: id, ..
    }: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let key = key_by_id(&control, &id)?;
    let SetUv { is_user_verified } = parse(body)?;
    if !key.info().options.effective_uv().is_builtin() {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "the authenticator has no user verification (created without hasUserVerification)",
        )
        .with_status(StatusCode::CONFLICT));
    }
    key.switch().set_uv_policy(Some(if is_user_verified {
        UvStatus::Verified
    } else {
        UvStatus::Failed
    }));
    Ok(Reply(Value::Null))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetPresence {
    #[serde(default)]
    automatic_presence_simulation: Option<bool>,
    #[serde(default)]
    mode: Option<String>,
}

/// `POST .../authenticator/{id}/presence`: CDP's
/// `{"automaticPresenceSimulation": bool}` (false: presence waits for the
/// button) or ferrokey's `{"mode": "approve"|"deny"|"touch"|"default"}`.
pub async fn set_presence(
    State(control): State<Shared>,
    Ids {
        authenticator: id, ..
    }: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let key = key_by_id(&control, &id)?;
    let request: SetPresence = parse(body)?;
    let policy = match (request.automatic_presence_simulation, request.mode.as_deref()) {
        (Some(true), None) => Some(Policy::Approve),
        (Some(false), None) => Some(Policy::Touch),
        (None, Some("approve")) => Some(Policy::Approve),
        (None, Some("deny")) => Some(Policy::Deny),
        (None, Some("touch")) => Some(Policy::Touch),
        (None, Some("default")) => None,
        _ => {
            return Err(ApiError::invalid_argument(
                "send {\"automaticPresenceSimulation\": true|false} or {\"mode\": \"approve\"|\"deny\"|\"touch\"|\"default\"}",
            ))
        }
    };
    key.switch().set_policy(policy);
    Ok(Reply(rig::status(&key)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnOff {
    on: bool,
}

/// `POST .../authenticator/{id}/power` `{"on": bool}`: plug or unplug.
pub async fn set_power_of(
    State(control): State<Shared>,
    Ids {
        authenticator: id, ..
    }: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let key = key_by_id(&control, &id)?;
    let OnOff { on } = parse(body)?;
    set_power(&key, on).await?;
    Ok(Reply(rig::status(&key)))
}

/// `POST .../authenticator/{id}/touch` `{"on": bool}`: hold or release the button.
pub async fn set_touch(
    State(control): State<Shared>,
    Ids {
        authenticator: id, ..
    }: Ids,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let key = key_by_id(&control, &id)?;
    let OnOff { on } = parse(body)?;
    key.switch().set_touch(on);
    Ok(Reply(rig::status(&key)))
}

/// A JSON body as `T` (unknown fields refused), or `invalid argument`.
pub fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::invalid_argument(
            "the parameters must be a JSON object",
        ));
    }
    serde_json::from_value(body)
        .map_err(|e| ApiError::invalid_argument(format!("bad parameters: {e}")))
}

/// A fleet failure as an answer.
pub fn fleet_error(error: FleetError) -> ApiError {
    match error {
        FleetError::PoweredOff(_) => ApiError::new(
            ErrorCode::UnsupportedOperation,
            format!("{error}: power it on first (POST .../power {{\"on\": true}})"),
        )
        .with_status(StatusCode::CONFLICT),
        FleetError::Stopped(_) | FleetError::NoSuchKey(_) => {
            ApiError::new(ErrorCode::NoSuchAuthenticator, error.to_string())
        }
        FleetError::InvalidOptions(_) => ApiError::invalid_argument(error.to_string()),
        FleetError::NoSlot(_) | FleetError::NumberTaken(_) => {
            ApiError::new(ErrorCode::UnsupportedOperation, error.to_string())
                .with_status(StatusCode::CONFLICT)
        }
        other => ApiError::new(ErrorCode::UnknownError, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(config: Value) -> Result<KeyOptions, (ErrorCode, String)> {
        let config = AuthenticatorConfig::from_json(&config).map_err(|e| (e.code, e.message))?;
        key_options(&config).map_err(|e| (e.code, e.message))
    }

    #[test]
    fn webdriver_options_become_key_options() {
        let base = json!({"protocol": "ctap2_1", "transport": "usb"});
        let plain = options(base.clone()).unwrap();
        assert_eq!(
            (plain.uv, plain.presence),
            (UvMode::Off, Some(PresenceMode::Auto))
        );
        let mut verified = base.clone();
        verified["hasUserVerification"] = json!(true);
        verified["isUserVerified"] = json!(true);
        assert_eq!(options(verified.clone()).unwrap().uv, UvMode::Auto);
        verified["isUserVerified"] = json!(false);
        assert_eq!(options(verified.clone()).unwrap().uv, UvMode::Deny);
        verified["ferrokey:uv"] = json!("auto");
        assert_eq!(options(verified).unwrap().uv, UvMode::Auto);
        let mut backed = base.clone();
        backed["defaultBackupEligibility"] = json!(true);
        backed["defaultBackupState"] = json!(true);
        let backed = options(backed).unwrap();
        assert!(backed.default_backup_eligibility && backed.default_backup_state);
        let mut refusing = base.clone();
        refusing["isUserConsenting"] = json!(false);
        assert_eq!(
            options(refusing).unwrap().presence,
            Some(PresenceMode::Deny)
        );
        let mut manual = base.clone();
        manual["automaticPresenceSimulation"] = json!(false);
        assert_eq!(options(manual).unwrap().presence, Some(PresenceMode::Touch));
        let mut vendor = base.clone();
        vendor["ferrokey:product"] = json!("Test Key");
        vendor["ferrokey:attestation"] = json!("self");
        let vendor = options(vendor).unwrap();
        assert_eq!(vendor.product, "Test Key");
        assert_eq!(
            vendor.attestation,
            crate::key::options::AttestationMode::SelfAttestation
        );
        // The reset window: by the presence mode unless ferrokey:resetWindow says.
        let mut touch = base.clone();
        touch["automaticPresenceSimulation"] = json!(false);
        assert!(options(touch.clone()).unwrap().reset_window_in_force());
        touch["ferrokey:resetWindow"] = json!(false);
        assert!(!options(touch).unwrap().reset_window_in_force());
        assert!(!options(base.clone()).unwrap().reset_window_in_force());
        let mut windowed = base.clone();
        windowed["ferrokey:resetWindow"] = json!(true);
        assert!(options(windowed).unwrap().reset_window_in_force());
    }

    #[test]
    fn the_webdriver_protocol_picks_the_profile() {
        let profile = |protocol: &str, extra: Value| {
            let mut config = json!({"protocol": protocol, "transport": "usb"});
            for (k, v) in extra.as_object().unwrap() {
                config[k] = v.clone();
            }
            let options = options(config).unwrap();
            (options.profile_name(), options.resolved_profile().unwrap())
        };
        let (name, u2f) = profile("ctap1/u2f", json!({}));
        assert_eq!(name, "u2f");
        assert!(!u2f.versions.ctap2());
        assert_eq!(profile("ctap2", json!({})).0, "ctap2.0");
        assert_eq!(profile("ctap2_1", json!({})).0, "security-key");
        // ferrokey:profile and ferrokey:profileSpec win over the protocol.
        let (name, synced) = profile("ctap2_1", json!({"ferrokey:profile": "synced-passkey"}));
        assert_eq!(name, "synced-passkey");
        assert!(synced.backup_state);
        let (name, custom) = profile(
            "ctap2",
            json!({"ferrokey:profileSpec": {"base": "strict"}, "ferrokey:counterMode": "zero",
                   "ferrokey:quirks": ["reject-all-extensions"]}),
        );
        assert_eq!(name, "custom (base strict)");
        assert!(custom.quirks.reject_all_extensions && custom.quirks.reject_long_lists);
        assert_eq!(
            custom.counter_mode,
            ferrokey::authenticator::CounterMode::Zero
        );
    }

    #[test]
    fn what_the_key_cannot_be_is_refused() {
        let with = |key: &str, value: Value| {
            let mut config = json!({"protocol": "ctap2_1", "transport": "usb"});
            config[key] = value;
            options(config).unwrap_err()
        };
        let (code, message) = with("ferrokey:profile", json!("yubikey"));
        assert_eq!(code, ErrorCode::InvalidArgument);
        assert!(message.contains("unknown profile"), "{message}");
        let (code, message) = with("ferrokey:profileSpec", json!({"maxMsgSize": 9}));
        assert_eq!(code, ErrorCode::InvalidArgument);
        assert!(message.contains("profileSpec: maxMsgSize"), "{message}");
        assert_eq!(
            with("defaultBackupState", json!(true)).0,
            ErrorCode::InvalidArgument
        );
        let (code, message) = with("ferrokey:colour", json!("red"));
        assert_eq!(code, ErrorCode::InvalidArgument);
        assert!(message.contains("colour"), "{message}");
        assert_eq!(
            with("ferrokey:product", json!("")).0,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            with("ferrokey:vendorId", json!(70000)).0,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            with("ferrokey:resetWindow", json!("on")).0,
            ErrorCode::InvalidArgument
        );
        let (code, message) = with("ferrokey:pinState", json!("blocked"));
        assert_eq!(code, ErrorCode::InvalidArgument);
        assert!(message.contains("ferrokey:pin"), "{message}");
        assert_eq!(
            with("ferrokey:pinState", json!("uvBlocked")).0,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            with("ferrokey:pin", json!("12")).0,
            ErrorCode::InvalidArgument
        );
        let mut pinned = json!({"protocol": "ctap2_1", "transport": "usb"});
        pinned["ferrokey:pin"] = json!("1357");
        pinned["ferrokey:pinState"] = json!("forcePinChange");
        let pinned = options(pinned).unwrap();
        assert_eq!(
            pinned.pin_state_at_start(),
            Some(crate::key::pin::PinStateName::ForcePinChange)
        );
    }
}
