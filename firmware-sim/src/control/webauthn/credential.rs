//! WebDriver's Credential Parameters (WebAuthn L3 §11.6, with CDP's
//! `backupEligibility`, `backupState`, `userName`, `userDisplayName`): parsed
//! and checked into a [`SeededCredential`] for the key, and a credential the
//! key holds rendered back ([`CredentialView`]).
//!
//! `privateKey` is a base64url PKCS#8 (RFC 5958) document holding one P-256
//! or Ed25519 private key, parsed with the `pkcs8`, `p256` and
//! `ed25519-dalek` crates; answers carry the same encoding.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use pkcs8::der::Decode;
use pkcs8::PrivateKeyInfo;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::binary;

/// The longest credential id the key stores (bytes).
pub const MAX_CREDENTIAL_ID: usize = 255;
/// The longest user handle (CTAP 2.1: 64 bytes).
pub const MAX_USER_HANDLE: usize = 64;
/// The longest user name or display name the key keeps (CTAP 2.1: 64 bytes).
pub const MAX_USER_TEXT: usize = 64;
/// The longest RP ID (ctap-types' limit).
pub const MAX_RP_ID: usize = 253;
/// The largest large blob accepted here (the key may hold less).
pub const MAX_LARGE_BLOB: usize = 64 * 1024;

/// OID of id-ecPublicKey (RFC 5480).
const EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// OID of prime256v1 / secp256r1.
const P256_CURVE: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// OID of id-Ed25519 (RFC 8410).
const ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");

/// A credential private key.
#[derive(Clone, PartialEq, Eq)]
pub enum PrivateKey {
    /// A P-256 scalar (ES256).
    P256(Zeroizing<[u8; 32]>),
    /// An Ed25519 seed (EdDSA).
    Ed25519(Zeroizing<[u8; 32]>),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivateKey::P256(_) => f.write_str("PrivateKey::P256(..)"),
            PrivateKey::Ed25519(_) => f.write_str("PrivateKey::Ed25519(..)"),
        }
    }
}

impl PrivateKey {
    /// Parses a PKCS#8 document (DER).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let info = PrivateKeyInfo::from_der(der)
            .map_err(|e| format!("privateKey is not a PKCS#8 private key ({e})"))?;
        let oid = info.algorithm.oid;
        if oid == EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| "privateKey: an EC key without a named curve".to_string())?;
            if curve != P256_CURVE {
                return Err(format!(
                    "privateKey is an EC key on curve {curve}; only P-256 (1.2.840.10045.3.1.7) is supported"
                ));
            }
            let key = p256::SecretKey::from_pkcs8_der(der)
                .map_err(|e| format!("privateKey: not a valid P-256 key ({e})"))?;
            let mut scalar = Zeroizing::new([0u8; 32]);
            scalar.copy_from_slice(&key.to_bytes());
            Ok(PrivateKey::P256(scalar))
        } else if oid == ED25519 {
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map_err(|e| format!("privateKey: not a valid Ed25519 key ({e})"))?;
            Ok(PrivateKey::Ed25519(Zeroizing::new(key.to_bytes())))
        } else {
            Err(format!(
                "privateKey holds a key of algorithm {oid}; supported: P-256 (id-ecPublicKey) and Ed25519"
            ))
        }
    }

    /// The key as PKCS#8 DER (zeroized when dropped).
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        let document = match self {
            PrivateKey::P256(scalar) => p256::SecretKey::from_bytes(scalar.as_ref().into())
                .map_err(|_| "the stored P-256 scalar is invalid".to_string())?
                .to_pkcs8_der()
                .map_err(|e| e.to_string())?,
            PrivateKey::Ed25519(seed) => ed25519_dalek::SigningKey::from_bytes(seed)
                .to_pkcs8_der()
                .map_err(|e| e.to_string())?,
        };
        Ok(Zeroizing::new(document.as_bytes().to_vec()))
    }

    /// The COSE algorithm: -7 (ES256) or -8 (EdDSA).
    pub fn cose_algorithm(&self) -> i32 {
        match self {
            PrivateKey::P256(_) => -7,
            PrivateKey::Ed25519(_) => -8,
        }
    }
}

/// The JSON of Add Credential, as sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Parameters {
    credential_id: String,
    is_resident_credential: bool,
    rp_id: String,
    private_key: Zeroizing<String>,
    #[serde(default)]
    user_handle: Option<String>,
    #[serde(default)]
    sign_count: Option<u32>,
    #[serde(default)]
    large_blob: Option<String>,
    #[serde(default)]
    backup_eligibility: Option<bool>,
    #[serde(default)]
    backup_state: Option<bool>,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    user_display_name: Option<String>,
}

/// A credential to seed into a key, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct SeededCredential {
    /// The credential id (1..=255 bytes, any value).
    pub id: Vec<u8>,
    /// Discoverable (found with an empty allowList) or not.
    pub resident: bool,
    /// The RP ID.
    pub rp_id: String,
    /// The private key.
    pub private_key: PrivateKey,
    /// The user handle (required for a discoverable credential).
    pub user_handle: Option<Vec<u8>>,
    /// The initial signature counter.
    pub sign_count: u32,
    /// The large blob, if any.
    pub large_blob: Option<Vec<u8>>,
    /// BE (default: the key's defaultBackupEligibility).
    pub backup_eligibility: Option<bool>,
    /// BS (default: the key's defaultBackupState).
    pub backup_state: Option<bool>,
    /// user.name.
    pub user_name: Option<String>,
    /// user.displayName.
    pub user_display_name: Option<String>,
}

impl SeededCredential {
    /// Parses and checks Credential Parameters; every problem is an
    /// `invalid argument` message.
    pub fn from_json(value: Value) -> Result<Self, String> {
        if !value.is_object() {
            return Err("the credential parameters must be a JSON object".into());
        }
        let p: Parameters =
            serde_json::from_value(value).map_err(|e| format!("bad credential parameters: {e}"))?;
        let id = binary::decode("credentialId", &p.credential_id)?.to_vec();
        if id.is_empty() || id.len() > MAX_CREDENTIAL_ID {
            return Err(format!(
                "credentialId is {} bytes; the key takes 1 to {MAX_CREDENTIAL_ID}",
                id.len()
            ));
        }
        check_rp_id(&p.rp_id)?;
        let der = binary::decode("privateKey", &p.private_key)?;
        let private_key = PrivateKey::from_pkcs8(&der)?;
        let user_handle = match &p.user_handle {
            Some(text) => {
                let handle = binary::decode("userHandle", text)?.to_vec();
                if handle.is_empty() || handle.len() > MAX_USER_HANDLE {
                    return Err(format!(
                        "userHandle is {} bytes; WebAuthn allows 1 to {MAX_USER_HANDLE}",
                        handle.len()
                    ));
                }
                Some(handle)
            }
            None if p.is_resident_credential => {
                return Err("a resident credential needs a userHandle".into())
            }
            None => None,
        };
        let large_blob = match &p.large_blob {
            Some(text) => {
                let blob = binary::decode("largeBlob", text)?.to_vec();
                if blob.len() > MAX_LARGE_BLOB {
                    return Err(format!("largeBlob is larger than {MAX_LARGE_BLOB} bytes"));
                }
                Some(blob)
            }
            None => None,
        };
        for (name, text) in [
            ("userName", &p.user_name),
            ("userDisplayName", &p.user_display_name),
        ] {
            if let Some(text) = text {
                if text.len() > MAX_USER_TEXT {
                    return Err(format!(
                        "{name} is {} bytes; the key keeps at most {MAX_USER_TEXT} (it would be cut)",
                        text.len()
                    ));
                }
            }
        }
        Ok(SeededCredential {
            id,
            resident: p.is_resident_credential,
            rp_id: p.rp_id,
            private_key,
            user_handle,
            sign_count: p.sign_count.unwrap_or(0),
            large_blob,
            backup_eligibility: p.backup_eligibility,
            backup_state: p.backup_state,
            user_name: p.user_name,
            user_display_name: p.user_display_name,
        })
    }
}

/// A valid RP ID: a lower-case domain name (or `localhost`), not an IP address.
pub fn check_rp_id(rp_id: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("rpId {rp_id:?} is not a valid RP ID: {why}"));
    if rp_id.is_empty() || rp_id.len() > MAX_RP_ID {
        return bad("it must be 1 to 253 characters");
    }
    if rp_id.parse::<std::net::IpAddr>().is_ok() {
        return bad("an IP address is not a domain");
    }
    for label in rp_id.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("every dot-separated label must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("use lower-case letters, digits and hyphens (punycode for other scripts)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with a hyphen");
        }
    }
    Ok(())
}

/// A credential the key holds, as Get Credentials answers it.
#[derive(Debug)]
pub struct CredentialView {
    /// The credential id.
    pub id: Vec<u8>,
    /// Discoverable or not.
    pub resident: bool,
    /// The RP ID.
    pub rp_id: String,
    /// The private key; `None` for a key created with `ferrokey:exportable: false`.
    pub private_key: Option<PrivateKey>,
    /// The user handle.
    pub user_handle: Option<Vec<u8>>,
    /// The current signature counter.
    pub sign_count: u32,
    /// The large blob, if any.
    pub large_blob: Option<Vec<u8>>,
    /// BE.
    pub backup_eligibility: bool,
    /// BS.
    pub backup_state: bool,
    /// user.name.
    pub user_name: Option<String>,
    /// user.displayName.
    pub user_display_name: Option<String>,
}

impl CredentialView {
    /// The Credential Parameters JSON (binary fields base64url; no
    /// `privateKey` when the key is not exportable).
    pub fn to_json(&self) -> Result<Value, String> {
        let mut map = Map::new();
        map.insert("credentialId".into(), json!(binary::encode(&self.id)));
        map.insert("isResidentCredential".into(), json!(self.resident));
        map.insert("rpId".into(), json!(self.rp_id));
        if let Some(key) = &self.private_key {
            map.insert("privateKey".into(), json!(binary::encode(&key.to_pkcs8()?)));
            map.insert("algorithm".into(), json!(key.cose_algorithm()));
        }
        if let Some(handle) = &self.user_handle {
            map.insert("userHandle".into(), json!(binary::encode(handle)));
        }
        map.insert("signCount".into(), json!(self.sign_count));
        if let Some(blob) = &self.large_blob {
            map.insert("largeBlob".into(), json!(binary::encode(blob)));
        }
        map.insert("backupEligibility".into(), json!(self.backup_eligibility));
        map.insert("backupState".into(), json!(self.backup_state));
        if let Some(name) = &self.user_name {
            map.insert("userName".into(), json!(name));
        }
        if let Some(name) = &self.user_display_name {
            map.insert("userDisplayName".into(), json!(name));
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer, Verifier};

    fn p256_pkcs8() -> (p256::SecretKey, String) {
        let key = p256::SecretKey::random(&mut rand_core::OsRng);
        let der = key.to_pkcs8_der().unwrap();
        (key, binary::encode(der.as_bytes()))
    }

    fn params(private_key: &str) -> Value {
        json!({
            "credentialId": binary::encode(b"seeded-credential-1"),
            "isResidentCredential": true,
            "rpId": "localhost",
            "privateKey": private_key,
            "userHandle": binary::encode(b"user-1"),
            "signCount": 41,
            "backupEligibility": true,
            "userName": "alice",
        })
    }

    #[test]
    fn a_p256_credential_is_parsed_and_its_key_signs() {
        let (key, pkcs8) = p256_pkcs8();
        let seeded = SeededCredential::from_json(params(&pkcs8)).unwrap();
        assert_eq!(seeded.id, b"seeded-credential-1");
        assert!(seeded.resident);
        assert_eq!(seeded.sign_count, 41);
        assert_eq!(seeded.user_handle.as_deref(), Some(&b"user-1"[..]));
        assert_eq!(seeded.backup_eligibility, Some(true));
        assert_eq!(seeded.backup_state, None);
        let PrivateKey::P256(scalar) = &seeded.private_key else {
            panic!("not P-256")
        };
        // The parsed scalar signs; the test's own public key verifies.
        let signer = p256::ecdsa::SigningKey::from_bytes(scalar.as_ref().into()).unwrap();
        let signature: p256::ecdsa::Signature = signer.sign(b"challenge");
        let verifier = p256::ecdsa::VerifyingKey::from(key.public_key());
        assert!(verifier.verify(b"challenge", &signature).is_ok());
        // And it round-trips through the answer's PKCS#8.
        let view = CredentialView {
            id: seeded.id.clone(),
            resident: true,
            rp_id: "localhost".into(),
            private_key: Some(seeded.private_key.clone()),
            user_handle: seeded.user_handle.clone(),
            sign_count: 42,
            large_blob: None,
            backup_eligibility: true,
            backup_state: false,
            user_name: Some("alice".into()),
            user_display_name: None,
        };
        let json = view.to_json().unwrap();
        assert_eq!(json["signCount"], 42);
        assert_eq!(json["algorithm"], -7);
        let der = binary::decode("privateKey", json["privateKey"].as_str().unwrap()).unwrap();
        assert_eq!(p256::SecretKey::from_pkcs8_der(&der).unwrap(), key);
        let hidden = CredentialView {
            private_key: None,
            ..view
        };
        assert!(hidden.to_json().unwrap().get("privateKey").is_none());
    }

    #[test]
    fn an_ed25519_credential_is_parsed() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let der = key.to_pkcs8_der().unwrap();
        let seeded = SeededCredential::from_json(params(&binary::encode(der.as_bytes()))).unwrap();
        assert_eq!(
            seeded.private_key,
            PrivateKey::Ed25519(Zeroizing::new([7u8; 32]))
        );
        assert_eq!(seeded.private_key.cose_algorithm(), -8);
        let back = seeded.private_key.to_pkcs8().unwrap();
        assert_eq!(
            ed25519_dalek::SigningKey::from_pkcs8_der(&back).unwrap(),
            key
        );
    }

    #[test]
    fn bad_parameters_are_refused_with_reasons() {
        let (_, pkcs8) = p256_pkcs8();
        let with = |field: &str, value: Value| {
            let mut p = params(&pkcs8);
            p[field] = value;
            SeededCredential::from_json(p).unwrap_err()
        };
        assert!(with("credentialId", json!("")).contains("1 to 255"));
        assert!(with("credentialId", json!(binary::encode(&[1; 256]))).contains("256 bytes"));
        assert!(with("credentialId", json!("!!")).contains("base64url"));
        assert!(with("rpId", json!("Example.com")).contains("lower-case"));
        assert!(with("rpId", json!("127.0.0.1")).contains("IP address"));
        assert!(with("rpId", json!("a..b")).contains("label"));
        assert!(with("privateKey", json!(binary::encode(b"not der"))).contains("PKCS#8"));
        assert!(with("userHandle", json!(binary::encode(&[1; 65]))).contains("65 bytes"));
        assert!(with("userName", json!("x".repeat(65))).contains("cut"));
        assert!(with("signCount", json!(-1)).contains("bad credential parameters"));
        assert!(with("signCount", json!(4294967296u64)).contains("bad credential parameters"));
        assert!(with("surprise", json!(1)).contains("unknown field"));
        let mut p = params(&pkcs8);
        p.as_object_mut().unwrap().remove("userHandle");
        assert!(SeededCredential::from_json(p)
            .unwrap_err()
            .contains("userHandle"));
        assert!(SeededCredential::from_json(json!([1])).is_err());
        // Keys of other curves and algorithms are refused by name.
        use pkcs8::der::{asn1::AnyRef, Encode};
        let p384_curve = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");
        let p384 = PrivateKeyInfo::new(
            pkcs8::AlgorithmIdentifierRef {
                oid: EC_PUBLIC_KEY,
                parameters: Some(AnyRef::from(&p384_curve)),
            },
            &[1u8; 48],
        );
        let err = with("privateKey", json!(binary::encode(&p384.to_der().unwrap())));
        assert!(err.contains("only P-256"), "{err}");
        let rsa = PrivateKeyInfo::new(
            pkcs8::AlgorithmIdentifierRef {
                oid: pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
                parameters: None,
            },
            &[1u8; 8],
        );
        let err = with("privateKey", json!(binary::encode(&rsa.to_der().unwrap())));
        assert!(err.contains("supported: P-256"), "{err}");
    }

    #[test]
    fn private_keys_do_not_show_in_debug() {
        let (_, pkcs8) = p256_pkcs8();
        let seeded = SeededCredential::from_json(params(&pkcs8)).unwrap();
        let text = format!("{seeded:?}");
        assert!(text.contains("PrivateKey::P256(..)"), "{text}");
    }
}
