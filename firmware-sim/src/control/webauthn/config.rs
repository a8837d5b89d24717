//! WebDriver's Authenticator Configuration (WebAuthn L3 §11.4, Add Virtual
//! Authenticator), checked the way the spec's remote end steps do: every key
//! must be known and of a valid value (`invalid argument`), every extension
//! supported (`unsupported operation`). CDP's spellings of the same options
//! (`ctap2Version`, `hasLargeBlob`, `hasCredBlob`, `hasMinPinLength`,
//! `hasPrf`, `automaticPresenceSimulation`, protocol `u2f`) are accepted too,
//! and `ferrokey:NAME` keys are ferrokey's own options, passed on by name.

use serde_json::{Map, Value};

use crate::control::reply::{ApiError, ErrorCode};

/// The protocol the authenticator speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `ctap1/u2f` (CDP: `u2f`).
    U2f,
    /// `ctap2` (CDP: `ctap2` with `ctap2Version` `ctap2_0`).
    Ctap2,
    /// `ctap2_1` (CDP: `ctap2` with `ctap2Version` `ctap2_1`).
    Ctap2_1,
}

impl Protocol {
    /// The WebDriver name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::U2f => "ctap1/u2f",
            Protocol::Ctap2 => "ctap2",
            Protocol::Ctap2_1 => "ctap2_1",
        }
    }
}

/// The authenticator extensions a ferrokey key implements, by their WebAuthn
/// or CTAP identifiers (`prf` rides on hmac-secret, `largeBlob` on
/// largeBlobKey, `credProps` is computed by the client).
pub const SUPPORTED_EXTENSIONS: &[&str] = &[
    "credBlob",
    "credProps",
    "credProtect",
    "hmac-secret",
    "hmac-secret-mc",
    "largeBlob",
    "largeBlobKey",
    "minPinLength",
    "prf",
];

/// A checked Authenticator Configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthenticatorConfig {
    /// `protocol`.
    pub protocol: Protocol,
    /// `hasResidentKey` (default false).
    pub has_resident_key: bool,
    /// `hasUserVerification` (default false).
    pub has_user_verification: bool,
    /// `isUserConsenting` (default true): presence granted or refused.
    pub is_user_consenting: bool,
    /// `isUserVerified` (default false): UV succeeds or fails.
    pub is_user_verified: bool,
    /// `extensions` (default empty), each one supported.
    pub extensions: Vec<String>,
    /// `defaultBackupEligibility` (default false).
    pub default_backup_eligibility: bool,
    /// `defaultBackupState` (default false).
    pub default_backup_state: bool,
    /// CDP's `automaticPresenceSimulation`, if given.
    pub automatic_presence_simulation: Option<bool>,
    /// `ferrokey:NAME` options, keyed by NAME.
    pub vendor: Map<String, Value>,
}

/// The vendor prefix of ferrokey's own options.
pub const VENDOR_PREFIX: &str = "ferrokey:";

impl AuthenticatorConfig {
    /// Checks an Authenticator Configuration.
    pub fn from_json(value: &Value) -> Result<Self, ApiError> {
        let Some(object) = value.as_object() else {
            return Err(invalid(
                "the authenticator configuration must be a JSON object",
            ));
        };
        let mut protocol = None;
        let mut ctap2_version = None;
        let mut config = AuthenticatorConfig {
            protocol: Protocol::Ctap2_1,
            has_resident_key: false,
            has_user_verification: false,
            is_user_consenting: true,
            is_user_verified: false,
            extensions: Vec::new(),
            default_backup_eligibility: false,
            default_backup_state: false,
            automatic_presence_simulation: None,
            vendor: Map::new(),
        };
        let mut transport = None;
        for (key, value) in object {
            if let Some(name) = key.strip_prefix(VENDOR_PREFIX) {
                config.vendor.insert(name.to_string(), value.clone());
                continue;
            }
            match key.as_str() {
                "protocol" => protocol = Some(text(key, value)?),
                "ctap2Version" => ctap2_version = Some(text(key, value)?),
                "transport" => transport = Some(text(key, value)?),
                "hasResidentKey" => config.has_resident_key = boolean(key, value)?,
                "hasUserVerification" => config.has_user_verification = boolean(key, value)?,
                "isUserConsenting" => config.is_user_consenting = boolean(key, value)?,
                "isUserVerified" => config.is_user_verified = boolean(key, value)?,
                "defaultBackupEligibility" => {
                    config.default_backup_eligibility = boolean(key, value)?
                }
                "defaultBackupState" => config.default_backup_state = boolean(key, value)?,
                "automaticPresenceSimulation" => {
                    config.automatic_presence_simulation = Some(boolean(key, value)?)
                }
                "extensions" => {
                    let Some(items) = value.as_array() else {
                        return Err(invalid(
                            "extensions must be an array of extension identifiers",
                        ));
                    };
                    for item in items {
                        let id = text("extensions[]", item)?;
                        add_extension(&mut config.extensions, &id)?;
                    }
                }
                "hasLargeBlob" | "hasCredBlob" | "hasMinPinLength" | "hasPrf" => {
                    if boolean(key, value)? {
                        let id = match key.as_str() {
                            "hasLargeBlob" => "largeBlob",
                            "hasCredBlob" => "credBlob",
                            "hasMinPinLength" => "minPinLength",
                            _ => "prf",
                        };
                        add_extension(&mut config.extensions, id)?;
                    }
                }
                "uvm" => {
                    let empty = value.as_array().is_some_and(Vec::is_empty);
                    if !empty {
                        return Err(ApiError::new(
                            ErrorCode::UnsupportedOperation,
                            "uvm: the key does not implement the User Verification Method extension",
                        ));
                    }
                }
                other => {
                    return Err(invalid(format!(
                        "unknown authenticator option {other:?}; ferrokey's own options take the \
                         {VENDOR_PREFIX} prefix (e.g. {VENDOR_PREFIX}pin)"
                    )))
                }
            }
        }
        config.protocol = match (protocol.as_deref(), ctap2_version.as_deref()) {
            (None, _) => {
                return Err(invalid(
                    "protocol is required: \"ctap2_1\", \"ctap2\" or \"ctap1/u2f\"",
                ))
            }
            (Some("ctap1/u2f" | "u2f"), _) => Protocol::U2f,
            (Some("ctap2"), None | Some("ctap2_0")) => Protocol::Ctap2,
            (Some("ctap2"), Some("ctap2_1")) | (Some("ctap2_1"), None | Some("ctap2_1")) => {
                Protocol::Ctap2_1
            }
            (Some(p @ ("ctap2" | "ctap2_1")), Some(v)) => {
                return Err(invalid(format!(
                    "ctap2Version {v:?} does not fit protocol {p:?}"
                )))
            }
            (Some(other), _) => {
                return Err(invalid(format!(
                    "protocol {other:?} is not one of \"ctap1/u2f\", \"ctap2\", \"ctap2_1\""
                )))
            }
        };
        match transport.as_deref() {
            Some("usb") => {}
            None => return Err(invalid("transport is required; ferrokey keys are USB keys: \"usb\"")),
            Some(other) => {
                return Err(invalid(format!(
                    "transport {other:?}: a ferrokey key is a USB security key, so only \"usb\" is accepted \
                     (nfc, ble, hybrid and internal authenticators are not simulated)"
                )))
            }
        }
        if config.default_backup_state && !config.default_backup_eligibility {
            return Err(invalid(
                "defaultBackupState true needs defaultBackupEligibility true (BS=1 implies BE=1)",
            ));
        }
        Ok(config)
    }
}

fn add_extension(list: &mut Vec<String>, id: &str) -> Result<(), ApiError> {
    if !SUPPORTED_EXTENSIONS.contains(&id) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            format!(
                "extension {id:?} is not implemented by the key; supported: {}",
                SUPPORTED_EXTENSIONS.join(", ")
            ),
        ));
    }
    if !list.iter().any(|e| e == id) {
        list.push(id.to_string());
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_argument(message)
}

fn text(key: &str, value: &Value) -> Result<String, ApiError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("{key} must be a string")))
}

fn boolean(key: &str, value: &Value) -> Result<bool, ApiError> {
    value
        .as_bool()
        .ok_or_else(|| invalid(format!("{key} must be true or false")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<AuthenticatorConfig, (ErrorCode, String)> {
        AuthenticatorConfig::from_json(&value).map_err(|e| (e.code, e.message))
    }

    #[test]
    fn the_spec_options_with_their_defaults() {
        let config = parse(json!({"protocol": "ctap2", "transport": "usb"})).unwrap();
        assert_eq!(config.protocol, Protocol::Ctap2);
        assert!(!config.has_resident_key && !config.has_user_verification);
        assert!(config.is_user_consenting && !config.is_user_verified);
        assert!(config.extensions.is_empty() && config.vendor.is_empty());
        let config = parse(json!({
            "protocol": "ctap2_1", "transport": "usb", "hasResidentKey": true,
            "hasUserVerification": true, "isUserVerified": true, "isUserConsenting": false,
            "extensions": ["credBlob", "largeBlob", "credBlob"], "uvm": [],
            "defaultBackupEligibility": true, "defaultBackupState": true,
            "ferrokey:pin": "1234", "ferrokey:exportable": false,
        }))
        .unwrap();
        assert_eq!(config.protocol, Protocol::Ctap2_1);
        assert!(config.has_resident_key && config.is_user_verified && !config.is_user_consenting);
        assert_eq!(config.extensions, ["credBlob", "largeBlob"]);
        assert_eq!(config.vendor["pin"], "1234");
        assert_eq!(config.vendor["exportable"], false);
    }

    #[test]
    fn cdp_spellings_are_accepted() {
        let config = parse(json!({
            "protocol": "ctap2", "ctap2Version": "ctap2_1", "transport": "usb",
            "hasLargeBlob": true, "hasPrf": true, "hasCredBlob": false,
            "automaticPresenceSimulation": false,
        }))
        .unwrap();
        assert_eq!(config.protocol, Protocol::Ctap2_1);
        assert_eq!(config.extensions, ["largeBlob", "prf"]);
        assert_eq!(config.automatic_presence_simulation, Some(false));
        assert_eq!(
            parse(json!({"protocol": "u2f", "transport": "usb"}))
                .unwrap()
                .protocol,
            Protocol::U2f
        );
    }

    #[test]
    fn bad_configurations_are_refused_plainly() {
        let invalid = |v: Value| parse(v).unwrap_err();
        let (code, message) = invalid(json!({"protocol": "ctap2", "transport": "nfc"}));
        assert_eq!(code, ErrorCode::InvalidArgument);
        assert!(message.contains("only \"usb\""), "{message}");
        assert_eq!(
            invalid(json!({"protocol": "ctap2"})).0,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            invalid(json!({"transport": "usb"})).0,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            invalid(json!({"protocol": "ctap3", "transport": "usb"})).0,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            invalid(json!({"protocol": "ctap2_1", "ctap2Version": "ctap2_0", "transport": "usb"}))
                .0,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            invalid(json!({"protocol": "ctap2", "transport": "usb", "hasResidentKey": "yes"})).0,
            ErrorCode::InvalidArgument
        );
        let (code, message) =
            invalid(json!({"protocol": "ctap2", "transport": "usb", "pin": "1234"}));
        assert_eq!(code, ErrorCode::InvalidArgument);
        assert!(message.contains("ferrokey:"), "{message}");
        let (code, message) =
            invalid(json!({"protocol": "ctap2", "transport": "usb", "extensions": ["uvm"]}));
        assert_eq!(code, ErrorCode::UnsupportedOperation);
        assert!(message.contains("supported:"), "{message}");
        let uvm = json!({"protocol": "ctap2", "transport": "usb", "uvm": [[2, 2, 2]]});
        assert_eq!(invalid(uvm).0, ErrorCode::UnsupportedOperation);
        assert_eq!(
            invalid(json!({"protocol": "ctap2", "transport": "usb", "extensions": "prf"})).0,
            ErrorCode::InvalidArgument
        );
        let bs = json!({"protocol": "ctap2", "transport": "usb", "defaultBackupState": true});
        assert_eq!(invalid(bs).0, ErrorCode::InvalidArgument);
        assert_eq!(invalid(json!([])).0, ErrorCode::InvalidArgument);
    }
}
