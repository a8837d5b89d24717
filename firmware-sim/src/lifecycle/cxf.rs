//! Resident credentials in the FIDO Credential Exchange Format (CXF, JSON),
//! both ways, with the types of the `credential-exchange-format` crate.
//!
//! - [`to_document`]: passkeys → a CXF document (one account, one item per
//!   passkey, one `passkey` credential per item; the large blob as
//!   `fido2Extensions.largeBlob`, its DEFLATE data as the key stores it).
//! - [`from_document`]: a CXF document → checked passkeys. Every problem is
//!   an error naming where it is (`accounts[0].items[2].credentials[0]`);
//!   nothing is half-read. Credentials of other types (passwords, notes,
//!   ...) are counted and left out: a security key holds passkeys only.
//!
//! CXF carries no signature counter: an importer starts at 0 (CXF §passkey).
//! Copies of the private keys made here are zeroized when dropped.

use std::collections::BTreeSet;

use credential_exchange_format as cxf;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::control::webauthn::credential::{
    check_rp_id, PrivateKey, MAX_CREDENTIAL_ID, MAX_USER_HANDLE, MAX_USER_TEXT,
};
use crate::credentials::inflate_large_blob;
use ferrokey::authenticator::instrument::LargeBlob;

/// The CXF version written and read (major must match).
pub const VERSION: (u8, u8) = (1, 0);
/// The exporter's RP ID in documents ferrokey writes.
pub const EXPORTER_RP_ID: &str = "ferrokey.invalid";
/// The exporter's display name.
pub const EXPORTER_NAME: &str = "ferrokey (test security key; export exists for testing)";

/// A large blob as the key stores it: DEFLATE data and the original size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// Raw DEFLATE (RFC 1951) data.
    pub deflated: Vec<u8>,
    /// The size before compression.
    pub original_size: u64,
}

/// One passkey (a resident credential) as migration moves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passkey {
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The RP ID.
    pub rp_id: String,
    /// The user handle (1 to 64 bytes).
    pub user_handle: Vec<u8>,
    /// user.name (may be empty).
    pub user_name: String,
    /// user.displayName (may be empty).
    pub user_display_name: String,
    /// The private key (`Debug` hides it).
    pub private_key: PrivateKey,
    /// The large blob, if any.
    pub large_blob: Option<Blob>,
}

impl Passkey {
    /// The large blob inflated, as the key imports it.
    pub fn large_blob_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        self.large_blob
            .as_ref()
            .map(|blob| {
                inflate_large_blob(&LargeBlob {
                    deflated: &blob.deflated,
                    original_size: blob.original_size,
                })
                .map_err(|e| e.to_string())
            })
            .transpose()
    }
}

/// What a CXF document holds for a key.
#[derive(Debug)]
pub struct Imported {
    /// The passkeys, checked.
    pub passkeys: Vec<Passkey>,
    /// Credentials of other types left out.
    pub ignored: usize,
}

/// The CXF document of `passkeys` from the key `account_id` names (e.g. its
/// serial), stamped `timestamp` (Unix seconds). The JSON text is zeroized
/// when dropped.
pub fn to_document(
    passkeys: &[Passkey],
    account_id: &[u8],
    timestamp: u64,
) -> Result<Zeroizing<String>, String> {
    let items = passkeys.iter().map(item).collect::<Result<Vec<_>, _>>()?;
    let mut header = cxf::Header::<()> {
        version: cxf::Version {
            major: VERSION.0,
            minor: VERSION.1,
        },
        exporter_rp_id: EXPORTER_RP_ID.to_string(),
        exporter_display_name: EXPORTER_NAME.to_string(),
        timestamp,
        accounts: vec![cxf::Account {
            id: account_id.into(),
            username: String::new(),
            email: String::new(),
            full_name: None,
            collections: Vec::new(),
            items,
            extensions: None,
        }],
    };
    let text = serde_json::to_string_pretty(&header).map(Zeroizing::new);
    scrub(&mut header);
    text.map_err(|e| format!("encoding the CXF document: {e}"))
}

fn item(passkey: &Passkey) -> Result<cxf::Item<()>, String> {
    let der = passkey.private_key.to_pkcs8()?;
    let large_blob = passkey.large_blob.as_ref().map(|blob| cxf::Fido2LargeBlob {
        uncompressed_size: blob.original_size,
        data: blob.deflated.clone().into(),
    });
    let credential = cxf::PasskeyCredential {
        credential_id: passkey.credential_id.clone().into(),
        rp_id: passkey.rp_id.clone(),
        username: passkey.user_name.clone(),
        user_display_name: passkey.user_display_name.clone(),
        user_handle: passkey.user_handle.clone().into(),
        key: der.to_vec().into(),
        fido2_extensions: large_blob.map(|large_blob| cxf::Fido2Extensions {
            large_blob: Some(large_blob),
            ..cxf::Fido2Extensions::default()
        }),
    };
    Ok(cxf::Item {
        // The item id: a digest of the credential ID (CXF ids are at most 64 bytes).
        id: Sha256::digest(&passkey.credential_id).to_vec().into(),
        creation_at: None,
        modified_at: None,
        title: passkey.rp_id.clone(),
        subtitle: (!passkey.user_name.is_empty()).then(|| passkey.user_name.clone()),
        favorite: None,
        scope: None,
        credentials: vec![cxf::Credential::Passkey(Box::new(credential))],
        tags: None,
        extensions: None,
    })
}

/// Zeroizes the private keys left in a document's types.
fn scrub(header: &mut cxf::Header<()>) {
    for account in &mut header.accounts {
        for item in &mut account.items {
            for credential in &mut item.credentials {
                if let cxf::Credential::Passkey(passkey) = credential {
                    let key = std::mem::replace(&mut passkey.key, Vec::new().into());
                    let mut bytes: Vec<u8> = key.into();
                    bytes.zeroize();
                }
            }
        }
    }
}

/// Reads a CXF document (JSON text) into checked passkeys. Fails, naming the
/// place, on anything the key could not take; never half-reads.
pub fn from_document(text: &[u8]) -> Result<Imported, String> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("the CXF document is not JSON: {e}"))?;
    from_value(&value)
}

/// [`from_document`] on parsed JSON.
pub fn from_value(value: &serde_json::Value) -> Result<Imported, String> {
    if !value.is_object() {
        return Err("the CXF document must be a JSON object (a CXF header)".into());
    }
    let major = value
        .get("version")
        .and_then(|v| v.get("major"))
        .and_then(serde_json::Value::as_u64);
    if let Some(major) = major {
        if major != u64::from(VERSION.0) {
            return Err(format!(
                "CXF version {major}.x is not supported; ferrokey reads version {}.x",
                VERSION.0
            ));
        }
    }
    let mut header =
        cxf::Header::<()>::deserialize(value).map_err(|e| format!("not a CXF document: {e}"))?;
    let result = read_header(&header);
    scrub(&mut header);
    result
}

fn read_header(header: &cxf::Header<()>) -> Result<Imported, String> {
    let mut passkeys = Vec::new();
    let mut ignored = 0;
    let mut seen = BTreeSet::new();
    for (a, account) in header.accounts.iter().enumerate() {
        for (i, item) in account.items.iter().enumerate() {
            for (c, credential) in item.credentials.iter().enumerate() {
                let place = format!("accounts[{a}].items[{i}].credentials[{c}]");
                let passkey = match credential {
                    cxf::Credential::Passkey(passkey) => passkey,
                    // A passkey that does not parse lands in `Unknown`: refused, not ignored.
                    cxf::Credential::Unknown { ty, content } if ty == "passkey" => {
                        let object = serde_json::Value::Object(content.clone());
                        let why = cxf::PasskeyCredential::deserialize(&object)
                            .err()
                            .map_or_else(|| "unreadable".to_string(), |e| e.to_string());
                        return Err(format!("{place}: not a valid passkey credential: {why}"));
                    }
                    _ => {
                        ignored += 1;
                        continue;
                    }
                };
                let passkey = read_passkey(passkey).map_err(|e| format!("{place}: {e}"))?;
                if !seen.insert(passkey.credential_id.clone()) {
                    return Err(format!(
                        "{place}: credentialId appears twice in the document"
                    ));
                }
                passkeys.push(passkey);
            }
        }
    }
    if passkeys.is_empty() {
        return Err(format!(
            "the CXF document holds no passkey ({ignored} credentials of other types); nothing to import"
        ));
    }
    Ok(Imported { passkeys, ignored })
}

fn read_passkey(p: &cxf::PasskeyCredential) -> Result<Passkey, String> {
    let id = p.credential_id.as_ref();
    if id.is_empty() || id.len() > MAX_CREDENTIAL_ID {
        return Err(format!(
            "credentialId is {} bytes; the key takes 1 to {MAX_CREDENTIAL_ID}",
            id.len()
        ));
    }
    check_rp_id(&p.rp_id)?;
    let handle = p.user_handle.as_ref();
    if handle.is_empty() || handle.len() > MAX_USER_HANDLE {
        return Err(format!(
            "userHandle is {} bytes; WebAuthn allows 1 to {MAX_USER_HANDLE}",
            handle.len()
        ));
    }
    for (name, text) in [
        ("username", &p.username),
        ("userDisplayName", &p.user_display_name),
    ] {
        if text.len() > MAX_USER_TEXT {
            return Err(format!(
                "{name} is {} bytes; the key keeps at most {MAX_USER_TEXT}",
                text.len()
            ));
        }
    }
    let der = Zeroizing::new(p.key.as_ref().to_vec());
    let private_key = PrivateKey::from_pkcs8(&der).map_err(|e| format!("key: {e}"))?;
    let extensions = p.fido2_extensions.as_ref();
    let large_blob = extensions
        .and_then(|e| e.large_blob.as_ref())
        .map(|blob| Blob {
            deflated: blob.data.as_ref().to_vec(),
            original_size: blob.uncompressed_size,
        });
    let passkey = Passkey {
        credential_id: id.to_vec(),
        rp_id: p.rp_id.clone(),
        user_handle: handle.to_vec(),
        user_name: p.username.clone(),
        user_display_name: p.user_display_name.clone(),
        private_key,
        large_blob,
    };
    passkey
        .large_blob_bytes()
        .map_err(|e| format!("fido2Extensions.largeBlob: {e}"))?;
    Ok(passkey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn passkey(n: u8, blob: bool) -> Passkey {
        Passkey {
            credential_id: vec![n; 32],
            rp_id: "example.com".into(),
            user_handle: vec![n, 1, 2],
            user_name: format!("user{n}"),
            user_display_name: format!("User {n}"),
            private_key: PrivateKey::P256(Zeroizing::new([n; 32])),
            large_blob: blob.then(|| Blob {
                deflated: miniz_oxide::deflate::compress_to_vec(b"hello blob", 6),
                original_size: 10,
            }),
        }
    }

    fn document(passkeys: &[Passkey]) -> serde_json::Value {
        let text = to_document(passkeys, b"serial", 1_700_000_000).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn passkeys_round_trip_through_cxf() {
        let keys = vec![passkey(1, false), passkey(2, true)];
        let text = to_document(&keys, b"serial", 1_700_000_000).unwrap();
        let back = from_document(text.as_bytes()).unwrap();
        assert_eq!(back.passkeys, keys);
        assert_eq!(back.ignored, 0);
        assert_eq!(
            back.passkeys[1].large_blob_bytes().unwrap().unwrap(),
            b"hello blob"
        );
    }

    #[test]
    fn the_document_is_cxf_json_as_the_format_names_it() {
        let doc = document(&[passkey(7, true)]);
        assert_eq!(doc["version"], json!({"major": 1, "minor": 0}));
        assert_eq!(doc["exporterRpId"], EXPORTER_RP_ID);
        assert_eq!(doc["timestamp"], 1_700_000_000);
        let credential = &doc["accounts"][0]["items"][0]["credentials"][0];
        assert_eq!(credential["type"], "passkey");
        assert_eq!(credential["rpId"], "example.com");
        assert_eq!(credential["username"], "user7");
        assert_eq!(credential["userDisplayName"], "User 7");
        assert_eq!(
            credential["credentialId"],
            crate::control::webauthn::binary::encode(&[7; 32])
        );
        // The key is PKCS#8 DER, base64url: it parses back to the same scalar.
        let der =
            crate::control::webauthn::binary::decode("key", credential["key"].as_str().unwrap())
                .unwrap();
        assert_eq!(
            PrivateKey::from_pkcs8(&der).unwrap(),
            PrivateKey::P256(Zeroizing::new([7; 32]))
        );
        assert_eq!(
            credential["fido2Extensions"]["largeBlob"]["uncompressedSize"],
            10
        );
    }

    #[test]
    fn other_credential_types_are_ignored_and_counted() {
        let mut doc = document(&[passkey(1, false)]);
        doc["accounts"][0]["items"][0]["credentials"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "note", "content": {"fieldType": "string", "value": "x"}}));
        let read = from_value(&doc).unwrap();
        assert_eq!((read.passkeys.len(), read.ignored), (1, 1));
    }

    fn refused(doc: &serde_json::Value) -> String {
        from_value(doc).unwrap_err()
    }

    #[test]
    fn bad_documents_are_refused_by_name() {
        assert!(from_document(b"{not json")
            .unwrap_err()
            .contains("not JSON"));
        assert!(refused(&json!([1])).contains("JSON object"));
        assert!(refused(&json!({"version": {"major": 1}})).contains("not a CXF document"));
        let good = document(&[passkey(1, false), passkey(2, false)]);
        let cred = |doc: &mut serde_json::Value, i: usize| -> serde_json::Value {
            doc["accounts"][0]["items"][i]["credentials"][0].clone()
        };
        let set = |field: &str, value: serde_json::Value, i: usize| {
            let mut doc = good.clone();
            let mut c = cred(&mut doc, i);
            c[field] = value;
            doc["accounts"][0]["items"][i]["credentials"][0] = c;
            refused(&doc)
        };
        let e = set("rpId", json!("Not A Domain"), 1);
        assert!(
            e.starts_with("accounts[0].items[1].credentials[0]: rpId"),
            "{e}"
        );
        assert!(set("key", json!("AAAA"), 0).contains("key: privateKey is not a PKCS#8"));
        assert!(set("key", json!("!!"), 0).contains("credentials[0]: not a valid passkey"));
        let mut missing = good.clone();
        missing["accounts"][0]["items"][0]["credentials"][0]
            .as_object_mut()
            .unwrap()
            .remove("userHandle");
        assert!(refused(&missing).contains("userHandle"));
        assert!(set("userHandle", json!(""), 0).contains("userHandle is 0 bytes"));
        assert!(set("credentialId", json!(""), 0).contains("credentialId is 0 bytes"));
        assert!(set("username", json!("x".repeat(65)), 0).contains("at most 64"));
        let mut doc = good.clone();
        doc["accounts"][0]["items"][1]["credentials"][0]["fido2Extensions"] =
            json!({"largeBlob": {"uncompressedSize": 5, "data": "AAAA"}});
        assert!(refused(&doc).contains("largeBlob"));
        let mut twice = good.clone();
        let first = cred(&mut twice, 0);
        twice["accounts"][0]["items"][1]["credentials"][0] = first;
        assert!(refused(&twice).contains("appears twice"));
        let mut newer = good.clone();
        newer["version"]["major"] = json!(2);
        assert!(refused(&newer).contains("version 2.x is not supported"));
        let mut empty = good;
        empty["accounts"][0]["items"] = json!([]);
        assert!(refused(&empty).contains("no passkey"));
    }
}
