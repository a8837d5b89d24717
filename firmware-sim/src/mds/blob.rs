//! The MDS3 BLOB: a JWT (compact JWS, RFC 7515) whose payload lists the
//! metadata entries, signed ES256 by the metadata signing key, with that key's
//! certificate in the header's x5c (MDS v3.0 §3.1.7).
//!
//! Assembled here rather than with a JWT crate: it is three base64url parts and
//! one ECDSA signature with the p256 crate the project already uses, and the
//! signature encoding needs a choice no JWT crate offers (see [`JwsSignature`]).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::SecretKey;
use serde_json::{json, Value};

/// How the ES256 signature is encoded in the JWS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum JwsSignature {
    /// R || S, 64 bytes: what RFC 7518 §3.4 prescribes and JOSE libraries
    /// (PyJWT, jose, jsonwebtoken, go-jose) verify. The default.
    #[default]
    Raw,
    /// A DER ECDSA-Sig-Value, as WebAuthn signatures are: what python-fido2's
    /// `fido2.mds3.parse_blob` verifies (it reuses its COSE ES256 verifier,
    /// which takes DER, and refuses R || S).
    Der,
}

/// The BLOB header: alg ES256, typ JWT, x5c = [signing certificate] (base64, not url-safe).
pub fn header(signer_der: &[u8]) -> Value {
    json!({
        "alg": "ES256",
        "typ": "JWT",
        "x5c": [STANDARD.encode(signer_der)],
    })
}

/// The BLOB payload (MetadataBLOBPayload) holding `entries`.
pub fn payload(legal_header: &str, serial: u64, next_update: &str, entries: Vec<Value>) -> Value {
    json!({
        "legalHeader": legal_header,
        "no": serial,
        "nextUpdate": next_update,
        "entries": entries,
    })
}

/// One payload entry (MetadataBLOBPayloadEntry) for a statement, named as
/// the statement names the authenticator: by `aaguid` (FIDO2), or by
/// `attestationCertificateKeyIdentifiers` (U2F).
pub fn entry(statement: Value, today: &str) -> Value {
    let mut entry = json!({
        "statusReports": [{"status": "NOT_FIDO_CERTIFIED", "effectiveDate": today}],
        "timeOfLastStatusChange": today,
    });
    for key in ["aaguid", "attestationCertificateKeyIdentifiers"] {
        if let Some(value) = statement.get(key) {
            entry[key] = value.clone();
        }
    }
    entry["metadataStatement"] = statement;
    entry
}

/// Signs `header` and `payload` into a compact JWS:
/// `base64url(header) . base64url(payload) . base64url(signature)`.
pub fn sign(
    header: &Value,
    payload: &Value,
    key: &SecretKey,
    encoding: JwsSignature,
) -> Result<String, serde_json::Error> {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload)?)
    );
    let signature: Signature = SigningKey::from(key).sign(signing_input.as_bytes());
    let signature = match encoding {
        JwsSignature::Raw => signature.to_bytes().to_vec(),
        JwsSignature::Der => signature.to_der().as_bytes().to_vec(),
    };
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;

    fn split(jws: &str) -> (String, Value, Value, Vec<u8>) {
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).unwrap();
        (
            format!("{}.{}", parts[0], parts[1]),
            serde_json::from_slice(&decode(parts[0])).unwrap(),
            serde_json::from_slice(&decode(parts[1])).unwrap(),
            decode(parts[2]),
        )
    }

    #[test]
    fn an_entry_names_the_authenticator_as_its_statement_does() {
        let fido2 = entry(json!({"aaguid": "a-b", "x": 1}), "2026-01-01");
        assert_eq!(fido2["aaguid"], "a-b");
        assert_eq!(fido2["metadataStatement"]["x"], 1);
        assert!(fido2.get("attestationCertificateKeyIdentifiers").is_none());
        let u2f = entry(
            json!({"attestationCertificateKeyIdentifiers": ["00ff"]}),
            "2026-01-01",
        );
        assert_eq!(u2f["attestationCertificateKeyIdentifiers"], json!(["00ff"]));
        assert!(u2f.get("aaguid").is_none());
        assert_eq!(u2f["statusReports"][0]["status"], "NOT_FIDO_CERTIFIED");
    }

    #[test]
    fn both_signature_encodings_verify_under_the_signing_key() {
        let key = SecretKey::random(&mut rand_core::OsRng);
        let verifying = VerifyingKey::from(&SigningKey::from(&key));
        let h = header(&[0x30, 0x00]);
        let p = payload(
            "legal",
            7,
            "2030-01-01",
            vec![entry(json!({"aaguid": "a-b"}), "2026-01-01")],
        );
        let raw = sign(&h, &p, &key, JwsSignature::Raw).unwrap();
        let (input, header_back, payload_back, sig) = split(&raw);
        assert_eq!(header_back, h);
        assert_eq!(payload_back, p);
        assert_eq!(header_back["x5c"][0], json!("MAA="));
        assert_eq!(sig.len(), 64);
        let sig = Signature::from_slice(&sig).unwrap();
        verifying.verify(input.as_bytes(), &sig).unwrap();

        let der = sign(&h, &p, &key, JwsSignature::Der).unwrap();
        let (input, _, _, sig) = split(&der);
        assert_eq!(sig[0], 0x30);
        let sig = Signature::from_der(&sig).unwrap();
        verifying.verify(input.as_bytes(), &sig).unwrap();
        // No padding and url-safe alphabet only.
        assert!(!raw.contains('=') && !raw.contains('+') && !raw.contains('/'));
    }
}
