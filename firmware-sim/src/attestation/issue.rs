//! Issuing certificates with rcgen: self-signed roots, intermediate CAs and
//! end-entity certificates (attestation and signing keys). Keys are ECDSA P-256,
//! signatures ecdsa-with-SHA256.
//!
//! End-entity certificates carry basicConstraints CA=false as an empty
//! SEQUENCE (`30 00`), written as a custom extension: rcgen's
//! `IsCa::ExplicitNoCa` writes `cA FALSE` explicitly (`30 03 01 01 00`), which
//! DER forbids (X.690 §11.5: a DEFAULT value is never encoded) and strict
//! parsers such as Python's `cryptography` refuse. keyUsage is a custom
//! extension for the same reason: rcgen 0.13 writes it as a 9-bit BIT STRING
//! (`03 03 07 80 00` for digitalSignature), with trailing zero bits that DER
//! removes from a named bit list (X.690 §11.2.2: `03 02 07 80`); the x509-cert
//! crate encodes it.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use p256::SecretKey;
use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CustomExtension, DistinguishedName, DnType,
    DnValue, IsCa, KeyPair, PrintableString, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_cert::der::Encode;
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};

/// OID arcs of basicConstraints, 2.5.29.19.
const BASIC_CONSTRAINTS_OID: &[u64] = &[2, 5, 29, 19];
/// OID arcs of keyUsage, 2.5.29.15.
const KEY_USAGE_OID: &[u64] = &[2, 5, 29, 15];
/// OID arcs of subjectKeyIdentifier, 2.5.29.14.
const SUBJECT_KEY_IDENTIFIER_OID: &[u64] = &[2, 5, 29, 14];
/// The id-fido-gen-ce-aaguid extension OID, 1.3.6.1.4.1.45724.1.1.4.
pub const AAGUID_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4];
/// The DER of `BasicConstraints { cA FALSE }`: an empty SEQUENCE.
pub const NOT_A_CA: [u8; 2] = [0x30, 0x00];

/// Why issuing failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IssueError(pub String);

fn err(e: impl std::fmt::Display) -> IssueError {
    IssueError(e.to_string())
}

/// A subject name: C, O, OU (optional), CN.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    /// Two-letter country code (PrintableString).
    pub country: &'a str,
    /// Organization.
    pub organization: &'a str,
    /// Organizational unit, if any.
    pub unit: Option<&'a str>,
    /// Common name.
    pub common_name: &'a str,
}

impl Subject<'_> {
    fn name(&self) -> Result<DistinguishedName, IssueError> {
        let mut dn = DistinguishedName::new();
        let country = PrintableString::try_from(self.country).map_err(err)?;
        dn.push(DnType::CountryName, DnValue::PrintableString(country));
        dn.push(DnType::OrganizationName, self.organization);
        if let Some(unit) = self.unit {
            dn.push(DnType::OrganizationalUnitName, unit);
        }
        dn.push(DnType::CommonName, self.common_name);
        Ok(dn)
    }
}

/// What kind of certificate to issue.
#[derive(Clone, Copy, Debug)]
pub enum Profile {
    /// A CA: basicConstraints CA=true with this pathLenConstraint, keyUsage
    /// keyCertSign and cRLSign.
    Ca {
        /// How many intermediate CAs may follow this one.
        path_len: u8,
    },
    /// An end entity that signs (attestation, metadata): CA=false, keyUsage
    /// digitalSignature, with the AAGUID extension (non-critical) when given.
    Signer {
        /// The AAGUID for the id-fido-gen-ce-aaguid extension.
        aaguid: Option<[u8; 16]>,
    },
}

/// A fresh P-256 key, with its PKCS#8 PEM (zeroized on drop).
pub struct NewKey {
    /// The key.
    pub key: SecretKey,
    /// PKCS#8 PEM, for the key file.
    pub pem: Zeroizing<String>,
}

impl NewKey {
    /// Generates a key.
    pub fn generate() -> Result<Self, IssueError> {
        let key = SecretKey::random(&mut OsRng);
        let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(err)?;
        Ok(NewKey { key, pem })
    }
}

/// An issuer: its certificate as rcgen needs it (subject name and key
/// identifier) and its key.
pub struct Issuer {
    cert: Certificate,
    key: KeyPair,
}

impl Issuer {
    /// An issuer from its DER certificate and private key.
    pub fn new(cert_der: &[u8], key: &SecretKey) -> Result<Self, IssueError> {
        let key = key_pair(key)?;
        // Only the subject name and key identifier are used when signing with it;
        // re-signing the parsed parameters gives rcgen the `Certificate` it wants.
        let params = CertificateParams::from_ca_cert_der(&cert_der.to_vec().into()).map_err(err)?;
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Issuer { cert, key })
    }
}

fn key_pair(key: &SecretKey) -> Result<KeyPair, IssueError> {
    let der = key.to_pkcs8_der().map_err(err)?;
    KeyPair::try_from(der.as_bytes()).map_err(err)
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and without a leading zero byte
    SerialNumber::from_slice(&bytes)
}

/// The subjectKeyIdentifier of `key`: the first 20 bytes of SHA-256 of its
/// uncompressed public point (RFC 7093 §2 method 1).
pub fn key_identifier(key: &SecretKey) -> Vec<u8> {
    let point = key.public_key().to_encoded_point(false);
    Sha256::digest(point.as_bytes())[..20].to_vec()
}

/// The DER value of the AAGUID extension: an OCTET STRING holding the 16 bytes.
pub fn aaguid_extension_value(aaguid: &[u8; 16]) -> [u8; 18] {
    let mut out = [0u8; 18];
    out[0] = 0x04; // OCTET STRING
    out[1] = 16;
    out[2..].copy_from_slice(aaguid);
    out
}

/// A critical keyUsage extension with these bits, DER encoded by x509-cert.
fn key_usage(
    bits: x509_cert::der::flagset::FlagSet<KeyUsages>,
) -> Result<CustomExtension, IssueError> {
    let value = KeyUsage(bits).to_der().map_err(err)?;
    let mut ext = CustomExtension::from_oid_content(KEY_USAGE_OID, value);
    ext.set_criticality(true);
    Ok(ext)
}

/// Issues a certificate for `subject_key` with this subject and profile, valid
/// from a day ago for `years`; signed by `issuer`, or self-signed when `None`.
/// Returns (DER, PEM).
pub fn issue(
    subject: &Subject<'_>,
    subject_key: &SecretKey,
    profile: Profile,
    years: i64,
    issuer: Option<&Issuer>,
) -> Result<(Vec<u8>, String), IssueError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.name()?;
    params.serial_number = Some(random_serial());
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365 * years);
    match profile {
        Profile::Ca { path_len } => {
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
            params
                .custom_extensions
                .push(key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?);
        }
        Profile::Signer { aaguid } => {
            params.is_ca = IsCa::NoCa;
            params
                .custom_extensions
                .push(key_usage(KeyUsages::DigitalSignature.into())?);
            let mut ski_value = vec![0x04, 20];
            ski_value.extend(key_identifier(subject_key));
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    SUBJECT_KEY_IDENTIFIER_OID,
                    ski_value,
                ));
            let mut bc =
                CustomExtension::from_oid_content(BASIC_CONSTRAINTS_OID, NOT_A_CA.to_vec());
            bc.set_criticality(true);
            params.custom_extensions.push(bc);
            if let Some(aaguid) = aaguid {
                let mut ext = CustomExtension::from_oid_content(
                    AAGUID_EXTENSION_OID,
                    aaguid_extension_value(&aaguid).to_vec(),
                );
                ext.set_criticality(false);
                params.custom_extensions.push(ext);
            }
        }
    }
    let pair = key_pair(subject_key)?;
    let cert = match issuer {
        Some(issuer) => {
            params.use_authority_key_identifier_extension = true;
            params.signed_by(&pair, &issuer.cert, &issuer.key)
        }
        None => params.self_signed(&pair),
    }
    .map_err(err)?;
    Ok((cert.der().to_vec(), cert.pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::check::{check_issued_by, check_packed_attestation, parse_strict};

    fn subject(unit: Option<&str>) -> Subject<'_> {
        Subject {
            country: "US",
            organization: "ferrokey",
            unit,
            common_name: "test",
        }
    }

    #[test]
    fn end_entity_certificates_encode_ca_false_as_an_empty_sequence() {
        let root_key = NewKey::generate().unwrap();
        let (root_der, _) = issue(
            &subject(None),
            &root_key.key,
            Profile::Ca { path_len: 1 },
            1,
            None,
        )
        .unwrap();
        let issuer = Issuer::new(&root_der, &root_key.key).unwrap();
        let leaf_key = NewKey::generate().unwrap();
        let (leaf_der, pem) = issue(
            &subject(Some("Authenticator Attestation")),
            &leaf_key.key,
            Profile::Signer {
                aaguid: Some([9; 16]),
            },
            1,
            Some(&issuer),
        )
        .unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        // The extension: OID 2.5.29.19, critical TRUE, OCTET STRING { 30 00 }.
        let bc_ext = [
            0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00,
        ];
        assert!(leaf_der.windows(bc_ext.len()).any(|w| w == bc_ext));
        let leaf = parse_strict(&leaf_der).unwrap();
        let root = parse_strict(&root_der).unwrap();
        check_packed_attestation(&leaf, Some(&[9; 16])).unwrap();
        check_issued_by(&leaf, &root).unwrap();
        check_issued_by(&root, &root).unwrap();
    }

    #[test]
    fn an_issuer_rebuilt_from_its_files_signs_with_the_same_name_and_key_identifier() {
        let root_key = NewKey::generate().unwrap();
        let (root_der, _) = issue(
            &subject(None),
            &root_key.key,
            Profile::Ca { path_len: 0 },
            1,
            None,
        )
        .unwrap();
        let issuer = Issuer::new(&root_der, &root_key.key).unwrap();
        let leaf_key = NewKey::generate().unwrap();
        let (a, _) = issue(
            &subject(Some("x")),
            &leaf_key.key,
            Profile::Signer { aaguid: None },
            1,
            Some(&issuer),
        )
        .unwrap();
        let a = parse_strict(&a).unwrap();
        let root = parse_strict(&root_der).unwrap();
        check_issued_by(&a, &root).unwrap();
    }
}
