//! The FIDO Metadata Statement (MDS v3.0 §4) of a ferrokey key, as JSON.
//!
//! `authenticatorGetInfo` is not written by hand: a fresh core with the same
//! configuration (AAGUID, built-in UV) answers getInfo in memory, and its CBOR
//! is converted to the statement's JSON form (CTAP 2.1 §6.4 member names).

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ciborium::value::Value as Cbor;
use ferrokey::app::{App, CallContext, Message, Outcome, Protocol};
use ferrokey::authenticator::{Authenticator, Config};
use ferrokey::platform::{Platform, RecordKey, Storage, StorageError};
use serde_json::{json, Map, Value};

use crate::attestation::AttestationMode;
use crate::identity::Aaguid;
use crate::presence::{Presence, UvMode};

/// The statement's `description`.
pub const DESCRIPTION: &str = "ferrokey software FIDO2 security key (for testing)";

/// What the statement describes.
#[derive(Clone, Debug)]
pub struct KeyModel {
    /// The AAGUID.
    pub aaguid: [u8; 16],
    /// The attestation mode the keys are served with.
    pub attestation: AttestationMode,
    /// Built-in user verification (`--uv`).
    pub uv: UvMode,
    /// The firmware version (getInfo firmwareVersion; the statement's authenticatorVersion).
    pub firmware_version: u32,
}

/// Storage for the throwaway core that answers getInfo.
#[derive(Default)]
struct MemoryStorage(HashMap<RecordKey, Vec<u8>>);

impl Storage for MemoryStorage {
    fn read(&mut self, key: RecordKey, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
        match self.0.get(&key) {
            None => Ok(None),
            Some(v) => {
                let out = buf.get_mut(..v.len()).ok_or(StorageError::Full)?;
                out.copy_from_slice(v);
                Ok(Some(v.len()))
            }
        }
    }

    fn write(&mut self, key: RecordKey, value: &[u8]) -> Result<(), StorageError> {
        self.0.insert(key, value.to_vec());
        Ok(())
    }

    fn remove(&mut self, key: RecordKey) -> Result<(), StorageError> {
        self.0.remove(&key);
        Ok(())
    }
}

/// getInfo's CBOR member keys and their names (CTAP 2.1 §6.4). Device state
/// (forcePINChange, remainingDiscoverableCredentials) is left out.
const GET_INFO_NAMES: &[(u64, &str)] = &[
    (0x01, "versions"),
    (0x02, "extensions"),
    (0x03, "aaguid"),
    (0x04, "options"),
    (0x05, "maxMsgSize"),
    (0x06, "pinUvAuthProtocols"),
    (0x07, "maxCredentialCountInList"),
    (0x08, "maxCredentialIdLength"),
    (0x09, "transports"),
    (0x0A, "algorithms"),
    (0x0B, "maxSerializedLargeBlobArray"),
    (0x0D, "minPINLength"),
    (0x0E, "firmwareVersion"),
    (0x0F, "maxCredBlobLength"),
    (0x10, "maxRPIDsForSetMinPINLength"),
    (0x11, "preferredPlatformUvAttempts"),
    (0x12, "uvModality"),
    (0x13, "certifications"),
    (0x15, "vendorPrototypeConfigCommands"),
];

/// A getInfo response (CBOR) as the statement's `authenticatorGetInfo` JSON.
pub fn get_info_json(cbor: &[u8]) -> Result<Value, String> {
    let info: Cbor =
        ciborium::from_reader(cbor).map_err(|e| format!("getInfo is not CBOR: {e}"))?;
    let entries = info.as_map().ok_or("getInfo is not a CBOR map")?;
    let mut out = Map::new();
    for (key, value) in entries {
        let key = key
            .as_integer()
            .and_then(|k| u64::try_from(k).ok())
            .ok_or("getInfo has a non-integer key")?;
        let Some((_, name)) = GET_INFO_NAMES.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        let json = if key == 0x03 {
            let bytes = value.as_bytes().ok_or("getInfo aaguid is not bytes")?;
            Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
        } else {
            cbor_to_json(value, 0)?
        };
        out.insert((*name).to_string(), json);
    }
    Ok(Value::Object(out))
}

/// CBOR to JSON for getInfo's values (text-keyed maps, arrays, integers,
/// booleans, text). Depth-bounded.
fn cbor_to_json(value: &Cbor, depth: usize) -> Result<Value, String> {
    if depth > 8 {
        return Err("getInfo nests too deeply".into());
    }
    Ok(match value {
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Integer(i) => {
            let i = i128::from(*i);
            json!(i64::try_from(i).map_err(|_| format!("integer {i} out of range"))?)
        }
        Cbor::Text(t) => Value::String(t.clone()),
        Cbor::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| cbor_to_json(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                let k = k.as_text().ok_or("a getInfo map has a non-text key")?;
                out.insert(k.to_string(), cbor_to_json(v, depth + 1)?);
            }
            Value::Object(out)
        }
        other => return Err(format!("unexpected CBOR value in getInfo: {other:?}")),
    })
}

/// Asks a fresh in-memory core configured like the served keys for getInfo.
pub fn core_get_info(model: &KeyModel) -> Result<Vec<u8>, String> {
    let platform = Platform {
        storage: MemoryStorage::default(),
        presence: Presence::auto(Default::default()).with_uv(model.uv),
        rng: rand_core::OsRng,
    };
    let config = Config {
        aaguid: model.aaguid,
        builtin_uv: model.uv.is_builtin(),
        firmware_version: model.firmware_version,
        ..Config::default()
    };
    let mut core = Authenticator::new(platform, config).map_err(|e| e.to_string())?;
    let mut response = Message::new();
    let context = CallContext {
        now_ms: 0,
        up_granted: false,
        channel: 1,
    };
    match core.handle(Protocol::Cbor, &[0x04], context, &mut response) {
        Outcome::Response => {}
        other => return Err(format!("getInfo answered {other:?}")),
    }
    match response.split_first() {
        Some((0, cbor)) => Ok(cbor.to_vec()),
        _ => Err(format!("getInfo failed: {response:02x?}")),
    }
}

/// The metadata statement for `model`, whose attestation chains to `root_der`.
pub fn metadata_statement(model: &KeyModel, root_der: &[u8]) -> Result<Value, String> {
    let get_info = get_info_json(&core_get_info(model)?)?;
    let attestation_types = match model.attestation {
        AttestationMode::Batch | AttestationMode::Chain => vec!["basic_full"],
        AttestationMode::SelfAttestation => vec!["basic_surrogate"],
        AttestationMode::None => vec!["none"],
    };
    // Each inner list is one way to verify the user (FIDO Registry §3.1).
    let mut uv_details = vec![
        json!([{"userVerificationMethod": "presence_internal"}]),
        json!([{"userVerificationMethod": "passcode_external",
                "caDesc": {"base": 10, "minLength": 4, "maxRetries": 8, "blockSlowdown": 0}}]),
    ];
    if model.uv.is_builtin() {
        uv_details.push(json!([{"userVerificationMethod": "fingerprint_internal",
                                "baDesc": {"maxRetries": 8}}]));
    }
    Ok(json!({
        "legalHeader": super::LEGAL_HEADER,
        "aaguid": Aaguid(model.aaguid).to_string(),
        "description": DESCRIPTION,
        "authenticatorVersion": model.firmware_version,
        "protocolFamily": "fido2",
        "schema": 3,
        "upv": [{"major": 1, "minor": 0}, {"major": 1, "minor": 1}],
        "authenticationAlgorithms": ["secp256r1_ecdsa_sha256_raw", "ed25519_eddsa_sha512_raw"],
        "publicKeyAlgAndEncodings": ["cose"],
        "attestationTypes": attestation_types,
        "userVerificationDetails": uv_details,
        "keyProtection": ["software"],
        "matcherProtection": ["software"],
        "cryptoStrength": 128,
        "attachmentHint": ["external", "wired"],
        "tcDisplay": [],
        "attestationRootCertificates": [STANDARD.encode(root_der)],
        "authenticatorGetInfo": get_info,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(uv: UvMode) -> KeyModel {
        KeyModel {
            aaguid: crate::identity::FERROKEY_AAGUID,
            attestation: AttestationMode::Batch,
            uv,
            firmware_version: 0x000100,
        }
    }

    #[test]
    fn get_info_comes_from_the_core() {
        let info = get_info_json(&core_get_info(&model(UvMode::Off)).unwrap()).unwrap();
        assert_eq!(info["versions"], json!(["U2F_V2", "FIDO_2_0", "FIDO_2_1"]));
        assert_eq!(
            info["aaguid"],
            json!(crate::identity::FERROKEY_AAGUID
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>())
        );
        assert_eq!(info["options"]["rk"], json!(true));
        assert!(info["options"].get("uv").is_none());
        assert_eq!(
            info["algorithms"][0],
            json!({"alg": -7, "type": "public-key"})
        );
        assert_eq!(info["maxMsgSize"], json!(7609));
        assert!(info.get("remainingDiscoverableCredentials").is_none());
        let with_uv = get_info_json(&core_get_info(&model(UvMode::Auto)).unwrap()).unwrap();
        assert_eq!(with_uv["options"]["uv"], json!(true));
        assert_eq!(with_uv["uvModality"], json!(2));
    }

    #[test]
    fn the_statement_names_the_root_the_aaguid_and_the_attestation_type() {
        let root = [0x30, 0x03, 0x02, 0x01, 0x01];
        let s = metadata_statement(&model(UvMode::Off), &root).unwrap();
        assert_eq!(
            s["aaguid"],
            json!(Aaguid(crate::identity::FERROKEY_AAGUID).to_string())
        );
        assert_eq!(
            s["attestationRootCertificates"],
            json!([STANDARD.encode(root)])
        );
        assert_eq!(s["attestationTypes"], json!(["basic_full"]));
        assert_eq!(s["schema"], json!(3));
        assert_eq!(s["userVerificationDetails"].as_array().unwrap().len(), 2);
        let none = metadata_statement(
            &KeyModel {
                attestation: AttestationMode::None,
                ..model(UvMode::Auto)
            },
            &root,
        )
        .unwrap();
        assert_eq!(none["attestationTypes"], json!(["none"]));
        assert_eq!(none["userVerificationDetails"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn bad_get_info_is_an_error_not_a_panic() {
        assert!(get_info_json(&[0xff]).is_err());
        assert!(get_info_json(&[0x01]).is_err());
        assert!(get_info_json(&[0xa1, 0x61, 0x61, 0x01]).is_err());
        // Deep nesting is bounded.
        let mut deep = vec![0xa1, 0x04];
        for _ in 0..20 {
            deep.extend_from_slice(&[0x81]);
        }
        deep.push(0x01);
        assert!(get_info_json(&deep).is_err());
    }
}
