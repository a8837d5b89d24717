//! Strict checks of the certificates ferrokey emits: DER (X.690 §10, and
//! §11.5: no DEFAULT value encoded), the attestation-certificate rules of
//! WebAuthn §8.2.1 and the issuer's ECDSA P-256 signature.
//!
//! The `der`/`x509-cert` crates refuse BER (indefinite or non-minimal lengths,
//! non-minimal integers, booleans other than 00/FF), but their derived decoders
//! accept an explicitly encoded DEFAULT (such as `cA FALSE` in BasicConstraints).
//! So every structure is also re-encoded, and the bytes must come out identical:
//! a DER value has exactly one encoding. The certificate's own fields and each
//! extension value of a known type go through this round trip.
//!
//! `Ca::load` uses these checks on every certificate it loads, and the tests use
//! them on every certificate the key sends.

use std::collections::HashSet;

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use x509_cert::certificate::Version;
use x509_cert::der::asn1::{Ia5StringRef, OctetString, PrintableStringRef, Utf8StringRef};
use x509_cert::der::oid::db::rfc4519::{
    COMMON_NAME, COUNTRY_NAME, ORGANIZATIONAL_UNIT_NAME, ORGANIZATION_NAME,
};
use x509_cert::der::oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS, ID_CE_KEY_USAGE,
    ID_CE_SUBJECT_KEY_IDENTIFIER,
};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::Certificate;

/// The id-fido-gen-ce-aaguid extension, 1.3.6.1.4.1.45724.1.1.4.
pub const ID_FIDO_GEN_CE_AAGUID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.45724.1.1.4");
/// ecdsa-with-SHA256, 1.2.840.10045.4.3.2.
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Why a certificate failed a check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, CertError> {
    Err(CertError(message.into()))
}

/// Decodes `bytes` as a `T` and, when `canonical`, requires that re-encoding
/// gives the same bytes.
fn decode<'a, T: Decode<'a> + Encode>(
    bytes: &'a [u8],
    what: &str,
    canonical: bool,
) -> Result<T, CertError> {
    let value = T::from_der(bytes).map_err(|e| CertError(format!("{what} is not DER: {e}")))?;
    if !canonical {
        return Ok(value);
    }
    let again = value
        .to_der()
        .map_err(|e| CertError(format!("{what}: cannot re-encode: {e}")))?;
    if again != bytes {
        return fail(format!(
            "{what} is not canonical DER (it re-encodes to {} bytes instead of {}: a DEFAULT \
             value encoded (X.690 §11.5), trailing zero bits in a named bit list (§11.2.2), \
             or another form DER forbids)",
            again.len(),
            bytes.len()
        ));
    }
    Ok(value)
}

/// A certificate that passed [`parse_strict`], with its decoded extensions.
#[derive(Debug, Clone)]
pub struct StrictCertificate {
    /// Its DER encoding.
    pub der: Vec<u8>,
    /// The certificate.
    pub cert: Certificate,
    /// basicConstraints, if present.
    pub basic_constraints: Option<(bool, BasicConstraints)>,
    /// keyUsage, if present.
    pub key_usage: Option<KeyUsage>,
    /// The id-fido-gen-ce-aaguid extension: (critical, the 16 bytes), if present.
    pub aaguid: Option<(bool, [u8; 16])>,
}

impl StrictCertificate {
    /// The subject's uncompressed SEC1 public key (what the SPKI's BIT STRING holds).
    pub fn public_key(&self) -> &[u8] {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
    }

    /// The version (v1 for the core's self-signed U2F certificate, else v3).
    pub fn version(&self) -> Version {
        self.cert.tbs_certificate.version
    }

    /// The subject's attributes of type `oid`, as text.
    pub fn subject_attribute(&self, oid: ObjectIdentifier) -> Result<Vec<String>, CertError> {
        name_attribute(&self.cert.tbs_certificate.subject, oid)
    }

    /// Whether basicConstraints says CA (absent counts as not a CA).
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|(_, bc)| bc.ca)
    }
}

/// The values of the attributes of type `oid` in `name`, decoded as the
/// directory string types certificates use.
pub fn name_attribute(name: &Name, oid: ObjectIdentifier) -> Result<Vec<String>, CertError> {
    let mut out = Vec::new();
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid != oid {
                continue;
            }
            let value = &atv.value;
            let text = match value.tag() {
                Tag::Utf8String => value
                    .decode_as::<Utf8StringRef<'_>>()
                    .map(|s| s.to_string()),
                Tag::PrintableString => value
                    .decode_as::<PrintableStringRef<'_>>()
                    .map(|s| s.to_string()),
                Tag::Ia5String => value.decode_as::<Ia5StringRef<'_>>().map(|s| s.to_string()),
                other => return fail(format!("attribute {oid} has unexpected type {other}")),
            }
            .map_err(|e| CertError(format!("attribute {oid}: {e}")))?;
            out.push(text);
        }
    }
    Ok(out)
}

/// Parses a DER certificate strictly: DER only (canonical, checked by a
/// re-encoding round trip of the certificate and of each known extension),
/// no trailing bytes, no duplicate extensions, no unknown critical extension,
/// ecdsa-with-SHA256 in both signature fields, extensions only in v3.
pub fn parse_strict(der: &[u8]) -> Result<StrictCertificate, CertError> {
    parse(der, true)
}

/// [`parse_strict`] without the re-encoding round trip: what the `der` crate
/// alone accepts. Only for a root made by an older ferrokey (its keyUsage has
/// trailing zero bits), which cannot be re-issued without changing the trust
/// anchor relying parties were given.
pub fn parse_allowing_noncanonical(der: &[u8]) -> Result<StrictCertificate, CertError> {
    parse(der, false)
}

fn parse(der: &[u8], canonical: bool) -> Result<StrictCertificate, CertError> {
    let cert: Certificate = decode(der, "the certificate", canonical)?;
    let tbs = &cert.tbs_certificate;
    if cert.signature_algorithm != tbs.signature {
        return fail("signatureAlgorithm differs from the TBSCertificate's signature field");
    }
    if cert.signature_algorithm.oid != ECDSA_WITH_SHA256
        || cert.signature_algorithm.parameters.is_some()
    {
        return fail(format!(
            "signature algorithm {} (with parameters: {}), expected ecdsa-with-SHA256 without parameters",
            cert.signature_algorithm.oid,
            cert.signature_algorithm.parameters.is_some()
        ));
    }
    let mut strict = StrictCertificate {
        der: der.to_vec(),
        cert: cert.clone(),
        basic_constraints: None,
        key_usage: None,
        aaguid: None,
    };
    let Some(extensions) = &tbs.extensions else {
        return Ok(strict);
    };
    if tbs.version != Version::V3 {
        return fail("extensions in a certificate that is not v3");
    }
    let mut seen = HashSet::new();
    for ext in extensions {
        if !seen.insert(ext.extn_id) {
            return fail(format!(
                "extension {} appears twice (RFC 5280 §4.2)",
                ext.extn_id
            ));
        }
        let value = ext.extn_value.as_bytes();
        match ext.extn_id {
            ID_CE_BASIC_CONSTRAINTS => {
                let bc = decode::<BasicConstraints>(value, "basicConstraints", canonical)?;
                strict.basic_constraints = Some((ext.critical, bc));
            }
            ID_CE_KEY_USAGE => {
                strict.key_usage = Some(decode::<KeyUsage>(value, "keyUsage", canonical)?);
            }
            ID_CE_SUBJECT_KEY_IDENTIFIER => {
                decode::<SubjectKeyIdentifier>(value, "subjectKeyIdentifier", canonical)?;
            }
            ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                decode::<AuthorityKeyIdentifier>(value, "authorityKeyIdentifier", canonical)?;
            }
            ID_FIDO_GEN_CE_AAGUID => {
                let octets = decode::<OctetString>(value, "the AAGUID extension", canonical)?;
                let aaguid: [u8; 16] = octets.as_bytes().try_into().map_err(|_| {
                    CertError(format!(
                        "the AAGUID extension holds {} bytes, not 16",
                        octets.as_bytes().len()
                    ))
                })?;
                strict.aaguid = Some((ext.critical, aaguid));
            }
            other if ext.critical => {
                return fail(format!("unknown critical extension {other}"));
            }
            _ => {}
        }
    }
    Ok(strict)
}

/// Checks the packed attestation certificate requirements of WebAuthn §8.2.1:
/// version 3; subject C, O, OU = "Authenticator Attestation", CN; basicConstraints
/// present with CA false; the AAGUID extension, if present, non-critical and
/// equal to `aaguid`. With `aaguid` given the extension is required.
pub fn check_packed_attestation(
    cert: &StrictCertificate,
    aaguid: Option<&[u8; 16]>,
) -> Result<(), CertError> {
    if cert.version() != Version::V3 {
        return fail(format!(
            "version {:?}, WebAuthn §8.2.1 requires 3",
            cert.version()
        ));
    }
    for (oid, name) in [
        (COUNTRY_NAME, "C"),
        (ORGANIZATION_NAME, "O"),
        (ORGANIZATIONAL_UNIT_NAME, "OU"),
        (COMMON_NAME, "CN"),
    ] {
        let values = cert.subject_attribute(oid)?;
        if values.len() != 1 || values[0].is_empty() {
            return fail(format!(
                "subject {name}: {values:?}, expected exactly one non-empty value"
            ));
        }
    }
    let ou = cert.subject_attribute(ORGANIZATIONAL_UNIT_NAME)?;
    if ou[0] != "Authenticator Attestation" {
        return fail(format!(
            "subject OU is {:?}, not \"Authenticator Attestation\"",
            ou[0]
        ));
    }
    let country = cert.subject_attribute(COUNTRY_NAME)?;
    if country[0].len() != 2 {
        return fail(format!(
            "subject C is {:?}, not a two-letter country code",
            country[0]
        ));
    }
    match &cert.basic_constraints {
        None => return fail("no basicConstraints extension"),
        Some((_, bc)) if bc.ca => return fail("basicConstraints says CA=true"),
        Some(_) => {}
    }
    match (&cert.aaguid, aaguid) {
        (Some((true, _)), _) => fail("the AAGUID extension is marked critical"),
        (Some((_, found)), Some(want)) if found != want => fail(format!(
            "the AAGUID extension holds {}, the authenticator data {}",
            crate::hex::lower(found),
            crate::hex::lower(want)
        )),
        (None, Some(_)) => fail("no AAGUID extension"),
        _ => Ok(()),
    }
}

/// Checks that `child` names `issuer` as its issuer and carries a valid
/// ECDSA P-256 / SHA-256 signature by `issuer`'s key, and that `issuer` may sign
/// certificates (CA with keyCertSign), unless `child` is self-signed by a
/// non-CA key (`child` == `issuer`, as the core's U2F self attestation).
pub fn check_issued_by(
    child: &StrictCertificate,
    issuer: &StrictCertificate,
) -> Result<(), CertError> {
    let same = child.cert == issuer.cert;
    if !same {
        if !issuer.is_ca() {
            return fail("the issuer is not a CA (basicConstraints)");
        }
        match &issuer.key_usage {
            Some(ku) if ku.key_cert_sign() => {}
            _ => return fail("the issuer's keyUsage lacks keyCertSign"),
        }
    }
    if child.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
        return fail("the issuer name differs from the issuer certificate's subject");
    }
    let key = VerifyingKey::from_sec1_bytes(issuer.public_key())
        .map_err(|e| CertError(format!("the issuer's public key is not P-256: {e}")))?;
    let signature_bits = child
        .cert
        .signature
        .as_bytes()
        .ok_or_else(|| CertError("the signature BIT STRING has unused bits".into()))?;
    let signature = Signature::from_der(signature_bits)
        .map_err(|e| CertError(format!("the signature is not a DER ECDSA-Sig-Value: {e}")))?;
    let tbs = child
        .cert
        .tbs_certificate
        .to_der()
        .map_err(|e| CertError(format!("re-encoding the TBSCertificate: {e}")))?;
    key.verify(&tbs, &signature)
        .map_err(|_| CertError("the signature does not verify under the issuer's key".into()))
}

/// Checks that the certificate is valid at `unix_seconds`.
pub fn check_valid_at(cert: &StrictCertificate, unix_seconds: u64) -> Result<(), CertError> {
    let validity = &cert.cert.tbs_certificate.validity;
    let from = validity.not_before.to_unix_duration().as_secs();
    let until = validity.not_after.to_unix_duration().as_secs();
    if unix_seconds < from || unix_seconds > until {
        return fail(format!(
            "not valid now ({unix_seconds}): valid from {from} until {until}"
        ));
    }
    Ok(())
}
