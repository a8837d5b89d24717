//! The FIDO Metadata Statement (MDS v3.0 §4) of a ferrokey key, as JSON.
//!
//! It follows the key it describes: its profile (protocol family, versions,
//! algorithms, AAGUID), its attestation, its built-in user verification or
//! fingerprint sensor, enterprise attestation. `authenticatorGetInfo` is not
//! written by hand: a fresh core with the keys' own configuration
//! ([`crate::cli::state::core_config`]) answers getInfo in memory, and its
//! CBOR is converted to the statement's JSON form (CTAP 2.1 §6.4 member
//! names). A U2F-only key is described the U2F way: no AAGUID and no
//! getInfo, but the key identifiers of its attestation certificates.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ciborium::value::Value as Cbor;
use ferrokey::app::{App, CallContext, Message, Outcome, Protocol};
use ferrokey::authenticator::{Authenticator, Config};
use ferrokey::platform::{Platform, RecordKey, Storage, StorageError};
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use crate::attestation::AttestationMode;
use crate::identity::Aaguid;
use crate::presence::{Presence, UvMode};

/// The statement's `description`.
pub const DESCRIPTION: &str = "ferrokey software FIDO2 security key (for testing)";
/// The statement's `description` for a U2F-only key.
pub const U2F_DESCRIPTION: &str = "ferrokey software U2F security key (for testing)";

/// What the statement describes: keys started with `config`.
#[derive(Clone, Debug)]
pub struct KeyModel {
    /// The keys' core configuration (profile applied): getInfo comes from a
    /// core started with it.
    pub config: Config,
    /// Their built-in user verification in force (`--uv`, or the profile's).
    pub uv: UvMode,
    /// The attestation of their registrations (the profile's over `--attestation`).
    pub attestation: AttestationMode,
}

impl KeyModel {
    /// The AAGUID the keys report (the profile's, if it has one).
    pub fn aaguid(&self) -> [u8; 16] {
        self.config.aaguid
    }

    /// Whether the keys speak U2F only (no CTAP2: a `u2f` profile).
    pub fn u2f_only(&self) -> bool {
        !self.config.profile.versions.ctap2()
    }
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
            Value::String(crate::hex::lower(bytes))
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
    let mut core =
        Authenticator::new(platform, model.config.clone()).map_err(|e| format!("{e:?}"))?;
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

/// The key identifier MDS (and python-fido2's lookup) uses for an
/// attestation certificate: SHA-1 of its subjectPublicKey (RFC 5280
/// §4.2.1.2 method 1), lowercase hex.
pub fn certificate_key_identifier(der: &[u8]) -> Result<String, String> {
    let cert = crate::attestation::check::parse_strict(der)
        .map_err(|e| format!("the attestation certificate does not parse: {e}"))?;
    Ok(crate::hex::lower(&Sha1::digest(cert.public_key())))
}

/// The key identifiers of the certificates a U2F REGISTER of `model`'s keys
/// carries; an error when each registration has its own self-signed
/// certificate (attestation self or none), which no metadata can name.
pub fn u2f_key_identifiers(model: &KeyModel) -> Result<Vec<String>, String> {
    match &model.config.attestation {
        Some(attestation) => Ok(vec![certificate_key_identifier(&attestation.certificate)?]),
        None => Err(format!(
            "with attestation {} a U2F registration carries a self-signed certificate of its own \
             credential key, which no metadata statement can name (U2F metadata is found by the \
             attestation certificate's key identifier); use attestation batch or chain",
            model.attestation.name()
        )),
    }
}

/// The FIDO Registry's names of the profile's algorithms (authenticationAlgorithms).
fn algorithm_names(model: &KeyModel) -> Vec<&'static str> {
    let a = &model.config.profile.algorithms;
    [
        (a.es256, "secp256r1_ecdsa_sha256_raw"),
        (a.eddsa, "ed25519_eddsa_sha512_raw"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

/// userVerificationDetails: each inner list is one way to verify the user
/// (FIDO Registry §3.1): presence alone; the PIN (clientPin); the built-in
/// fingerprint (built-in UV, or the bio sensor's enrolled fingers).
fn uv_details(model: &KeyModel) -> Vec<Value> {
    use ferrokey::pin::state::MAX_UV_RETRIES;
    let mut details = vec![json!([{"userVerificationMethod": "presence_internal"}])];
    if model.u2f_only() {
        return details;
    }
    if model.config.profile.options.client_pin {
        details.push(json!([{"userVerificationMethod": "passcode_external",
                             "caDesc": {"base": 10, "minLength": 4, "maxRetries": 8, "blockSlowdown": 0}}]));
    }
    if model.config.bio {
        details.push(json!([{"userVerificationMethod": "fingerprint_internal",
                             "baDesc": {"maxTemplates": ferrokey::bio::MAX_TEMPLATES,
                                        "maxRetries": MAX_UV_RETRIES}}]));
    } else if model.config.builtin_uv {
        details.push(json!([{"userVerificationMethod": "fingerprint_internal",
                             "baDesc": {"maxRetries": MAX_UV_RETRIES}}]));
    }
    details
}

/// The metadata statement for `model`, whose attestation chains to `root_der`.
pub fn metadata_statement(model: &KeyModel, root_der: &[u8]) -> Result<Value, String> {
    let attestation_types = match model.attestation {
        AttestationMode::Batch | AttestationMode::Chain => vec!["basic_full"],
        AttestationMode::SelfAttestation => vec!["basic_surrogate"],
        AttestationMode::None => vec!["none"],
    };
    let mut statement = json!({
        "legalHeader": super::LEGAL_HEADER,
        "description": DESCRIPTION,
        "authenticatorVersion": model.config.firmware_version,
        "schema": 3,
        "authenticationAlgorithms": algorithm_names(model),
        "publicKeyAlgAndEncodings": ["cose"],
        "attestationTypes": attestation_types,
        "userVerificationDetails": uv_details(model),
        "keyProtection": ["software"],
        "matcherProtection": ["software"],
        "cryptoStrength": 128,
        "attachmentHint": ["external", "wired"],
        "tcDisplay": [],
        "attestationRootCertificates": [STANDARD.encode(root_der)],
    });
    if model.u2f_only() {
        // U2F 1.1 (FIDO Registry: U2FV1BIN); keys raw X9.62 points.
        statement["description"] = json!(U2F_DESCRIPTION);
        statement["protocolFamily"] = json!("u2f");
        statement["upv"] = json!([{"major": 1, "minor": 1}]);
        statement["publicKeyAlgAndEncodings"] = json!(["ecc_x962_raw"]);
        statement["attestationCertificateKeyIdentifiers"] = json!(u2f_key_identifiers(model)?);
        return Ok(statement);
    }
    let get_info = get_info_json(&core_get_info(model)?)?;
    let versions = &model.config.profile.versions;
    let upv: Vec<Value> = [(versions.fido_2_0, 0), (versions.fido_2_1, 1)]
        .into_iter()
        .filter(|&(on, _)| on)
        .map(|(_, minor)| json!({"major": 1, "minor": minor}))
        .collect();
    if let Some(version) = get_info.get("firmwareVersion") {
        statement["authenticatorVersion"] = version.clone();
    }
    statement["aaguid"] = json!(Aaguid(model.aaguid()).to_string());
    statement["protocolFamily"] = json!("fido2");
    statement["upv"] = json!(upv);
    statement["authenticatorGetInfo"] = get_info;
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

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
