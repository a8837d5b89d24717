//! Authenticator data (WebAuthn §6.1), decoded for events: rpIdHash, flags,
//! signCount, and with AT the AAGUID, credential id and public key
//! parameters; with ED the extension outputs (secret ones as lengths).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{json, Value};

use super::fields::{AUTH_DATA_EXTENSIONS, COSE_KEY};
use super::render::{render, wipe};

/// The parts of authenticator data that events need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: Vec<u8>,
    /// The flags byte.
    pub flags: u8,
    /// The signature counter.
    pub sign_count: u32,
    /// The credential id (attested credential data, AT).
    pub credential_id: Option<Vec<u8>>,
}

/// Flag bits.
pub const UP: u8 = 0x01;
/// User verified.
pub const UV: u8 = 0x04;
/// Backup eligible.
pub const BE: u8 = 0x08;
/// Backup state.
pub const BS: u8 = 0x10;
const AT: u8 = 0x40;
const ED: u8 = 0x80;

/// Parses the fixed part and the credential id; `None` if too short.
pub fn parse(bytes: &[u8]) -> Option<AuthData> {
    let rp_id_hash = bytes.get(..32)?.to_vec();
    let flags = *bytes.get(32)?;
    let sign_count = u32::from_be_bytes(bytes.get(33..37)?.try_into().ok()?);
    let credential_id = if flags & AT != 0 {
        let len = usize::from(u16::from_be_bytes(bytes.get(53..55)?.try_into().ok()?));
        Some(bytes.get(55..55 + len)?.to_vec())
    } else {
        None
    };
    Some(AuthData {
        rp_id_hash,
        flags,
        sign_count,
        credential_id,
    })
}

/// Renders authenticator data for an event.
pub fn render_auth_data(bytes: &[u8]) -> Value {
    let Some(parsed) = parse(bytes) else {
        return json!({ "malformed": true, "len": bytes.len() });
    };
    let flags = parsed.flags;
    let mut out = json!({
        "rpIdHash": URL_SAFE_NO_PAD.encode(&parsed.rp_id_hash),
        "flags": {
            "UP": flags & UP != 0,
            "UV": flags & UV != 0,
            "BE": flags & BE != 0,
            "BS": flags & BS != 0,
            "AT": flags & AT != 0,
            "ED": flags & ED != 0,
        },
        "signCount": parsed.sign_count,
    });
    let mut rest: &[u8] = bytes.get(37..).unwrap_or_default();
    if let Some(id) = &parsed.credential_id {
        let aaguid = bytes.get(37..53).unwrap_or_default();
        out["aaguid"] = Value::String(uuid(aaguid));
        out["credentialId"] = Value::String(URL_SAFE_NO_PAD.encode(id));
        rest = bytes.get(55 + id.len()..).unwrap_or_default();
        match next_item(&mut rest) {
            Some(mut key) => {
                out["publicKey"] = render(&key, COSE_KEY);
                wipe(&mut key);
            }
            None => out["publicKey"] = json!({ "malformed": true }),
        }
    }
    if flags & ED != 0 {
        match next_item(&mut rest) {
            Some(mut extensions) => {
                out["extensions"] = render(&extensions, AUTH_DATA_EXTENSIONS);
                wipe(&mut extensions);
            }
            None => out["extensions"] = json!({ "malformed": true }),
        }
    }
    if !rest.is_empty() {
        out["trailingBytes"] = json!(rest.len());
    }
    out
}

/// Decodes one CBOR item from the front of `rest`, advancing it.
fn next_item(rest: &mut &[u8]) -> Option<Cbor> {
    ciborium::de::from_reader_with_recursion_limit(&mut *rest, 16).ok()
}

fn uuid(bytes: &[u8]) -> String {
    let hex = crate::hex::lower(bytes);
    if hex.len() != 32 {
        return hex;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Authenticator data with attested credential data (ES256 key) and an
    /// hmac-secret extension output of `secret`.
    pub fn sample(
        credential_id: &[u8],
        flags: u8,
        count: u32,
        hmac_output: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut out = vec![0xAB; 32];
        out.push(flags | if hmac_output.is_some() { ED } else { 0 });
        out.extend_from_slice(&count.to_be_bytes());
        if flags & AT != 0 {
            out.extend_from_slice(&[0x11; 16]);
            out.extend_from_slice(&u16::try_from(credential_id.len()).unwrap().to_be_bytes());
            out.extend_from_slice(credential_id);
            let key = Cbor::Map(vec![
                (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
                (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
                (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
                (Cbor::Integer((-2).into()), Cbor::Bytes(vec![0xC1; 32])),
                (Cbor::Integer((-3).into()), Cbor::Bytes(vec![0xC2; 32])),
            ]);
            ciborium::ser::into_writer(&key, &mut out).unwrap();
        }
        if let Some(secret) = hmac_output {
            let ext = Cbor::Map(vec![(
                Cbor::Text("hmac-secret".into()),
                Cbor::Bytes(secret.to_vec()),
            )]);
            ciborium::ser::into_writer(&ext, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn attested_credential_data_is_decoded() {
        let bytes = sample(&[1, 2, 3, 4], UP | UV | AT, 7, None);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.sign_count, 7);
        assert_eq!(parsed.credential_id.as_deref(), Some(&[1, 2, 3, 4][..]));
        let out = render_auth_data(&bytes);
        assert_eq!(out["flags"]["UP"], true);
        assert_eq!(out["flags"]["BE"], false);
        assert_eq!(out["signCount"], 7);
        assert_eq!(out["credentialId"], "AQIDBA");
        assert_eq!(out["aaguid"], "11111111-1111-1111-1111-111111111111");
        assert_eq!(out["publicKey"]["alg"], -7);
        assert_eq!(out["publicKey"]["-2"], json!({"len": 32}));
        assert!(out.get("trailingBytes").is_none());
    }

    #[test]
    fn extension_outputs_show_secrets_as_lengths_and_bad_data_is_flagged() {
        let bytes = sample(&[], UP, 9, Some(&[0x5A; 32]));
        let out = render_auth_data(&bytes);
        assert_eq!(out["extensions"]["hmac-secret"], json!({"len": 32}));
        assert_eq!(render_auth_data(&bytes[..20])["malformed"], true);
        let mut truncated = sample(&[9; 8], UP | AT, 1, None);
        truncated.truncate(60);
        assert_eq!(render_auth_data(&truncated)["malformed"], true);
    }
}
