//! The attestation CA: a self-signed root and the batch attestation certificate
//! (FIDO "packed" attestation, WebAuthn §8.2.1) that every key of one ferrokey
//! process signs with.
//!
//! # Layout
//!
//! Real security keys share one attestation key per production batch, so that an
//! attestation does not single out a unit. ferrokey does the same: all keys served
//! from one state directory share the files of `<state-dir>/ca/` (mode 0700):
//!
//! | file             | contents                                              |
//! |------------------|-------------------------------------------------------|
//! | `root-cert.pem`  | the self-signed root (CA=true, keyCertSign); give it to relying parties (`ferrokey ca`) |
//! | `root-key.pem`   | the root's PKCS#8 private key (kept to be able to issue a new batch certificate) |
//! | `batch-cert.pem` | the batch attestation certificate, signed by the root  |
//! | `batch-key.pem`  | the batch attestation PKCS#8 private key               |
//!
//! All files are mode 0600. The directory is created whole on first use: it is built
//! as `ca.tmp` and renamed to `ca`, under the state directory's `ca.lock`, so it is
//! either complete or absent, even after a crash or with two processes starting at
//! once. Keys are ECDSA P-256; certificates are made with rcgen.
//!
//! # Batch certificate (WebAuthn §8.2.1 requirements)
//!
//! X.509 v3; subject C=`<country>` (default US), O=ferrokey, OU=Authenticator
//! Attestation, CN=ferrokey Batch Attestation; basicConstraints CA=false (marked
//! critical, as rcgen does and RFC 5280 recommends); keyUsage digitalSignature; the
//! non-critical id-fido-gen-ce-aaguid extension (1.3.6.1.4.1.45724.1.1.4) holding the
//! model's AAGUID; valid from a day before creation for 30 years (the root: 40).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::SecretKey;
use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::storage::{create_private_dir, sync_dir, write_file_atomic, FILE_MODE};

/// The id-fido-gen-ce-aaguid extension OID, 1.3.6.1.4.1.45724.1.1.4.
pub const AAGUID_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4];
/// The largest batch certificate the core accepts, in bytes (DER).
pub const MAX_CERTIFICATE_SIZE: usize = 1024;
/// Name of the CA directory inside the state directory.
pub const CA_DIR: &str = "ca";
/// The root certificate file.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// The root private key file.
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// The batch attestation certificate file.
pub const BATCH_CERT_FILE: &str = "batch-cert.pem";
/// The batch attestation private key file.
pub const BATCH_KEY_FILE: &str = "batch-key.pem";
/// Subject O of both certificates.
pub const ORGANIZATION: &str = "ferrokey";
/// Subject OU of the batch certificate (fixed by WebAuthn §8.2.1).
pub const ATTESTATION_OU: &str = "Authenticator Attestation";
/// Subject CN of the batch certificate.
pub const BATCH_CN: &str = "ferrokey Batch Attestation";
/// Subject CN of the root certificate.
pub const ROOT_CN: &str = "ferrokey Attestation Root CA";
/// Default subject C.
pub const DEFAULT_COUNTRY: &str = "US";

const ROOT_VALIDITY_YEARS: i64 = 40;
const BATCH_VALIDITY_YEARS: i64 = 30;

/// Why the CA could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A CA file is damaged or inconsistent; it has been left untouched.
    #[error("invalid attestation file {path}: {reason} (the file was left untouched)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("generating the attestation certificates: {0}")]
    Generate(String),
    /// The state directory could not be prepared.
    #[error(transparent)]
    State(#[from] crate::storage::OpenError),
}

/// Options used only when the CA is first created.
#[derive(Clone, Debug)]
pub struct CaOptions {
    /// Two-letter country code for the certificates' subject C.
    pub country: String,
    /// The AAGUID to put into the batch certificate.
    pub aaguid: [u8; 16],
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            country: DEFAULT_COUNTRY.to_string(),
            aaguid: crate::identity::FERROKEY_AAGUID,
        }
    }
}

/// The loaded attestation CA of a state directory.
pub struct Ca {
    dir: PathBuf,
    root_cert_pem: String,
    root_cert_der: Vec<u8>,
    batch_cert_der: Vec<u8>,
    batch_key: SecretKey,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("batch_cert_len", &self.batch_cert_der.len())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Loads `<state_dir>/ca`, creating the root and batch certificates (with
    /// `options`) if it does not exist yet. The loaded batch certificate must carry
    /// `options.aaguid`.
    pub fn load_or_create(state_dir: &Path, options: &CaOptions) -> Result<Self, CaError> {
        create_private_dir(state_dir)?;
        let _lock = FileLock::acquire_blocking(&state_dir.join("ca.lock"))?;
        let dir = state_dir.join(CA_DIR);
        if !dir.exists() {
            create_ca_dir(state_dir, &dir, options)?;
        }
        Ca::load(&dir, &options.aaguid)
    }

    /// Loads and checks an existing CA directory.
    pub fn load(dir: &Path, aaguid: &[u8; 16]) -> Result<Self, CaError> {
        let (root_cert_pem, root_cert_der) = read_cert(&dir.join(ROOT_CERT_FILE))?;
        let root_key = read_key(&dir.join(ROOT_KEY_FILE))?;
        let batch_path = dir.join(BATCH_CERT_FILE);
        let (_, batch_cert_der) = read_cert(&batch_path)?;
        let batch_key = read_key(&dir.join(BATCH_KEY_FILE))?;
        if !contains(&root_cert_der, &public_key_sec1(&root_key)) {
            return Err(invalid(
                &dir.join(ROOT_KEY_FILE),
                "does not match the root certificate's public key",
            ));
        }
        if !contains(&batch_cert_der, &public_key_sec1(&batch_key)) {
            return Err(invalid(
                &dir.join(BATCH_KEY_FILE),
                "does not match the batch certificate's public key",
            ));
        }
        if batch_cert_der.len() > MAX_CERTIFICATE_SIZE {
            return Err(invalid(
                &batch_path,
                format!(
                    "certificate is {} bytes; the limit is {MAX_CERTIFICATE_SIZE}",
                    batch_cert_der.len()
                ),
            ));
        }
        // The extension value is unique enough to find by its bytes.
        if !contains(&batch_cert_der, &aaguid_extension_value(aaguid)) {
            return Err(invalid(
                &batch_path,
                format!(
                    "certificate does not carry the AAGUID {}",
                    crate::identity::Aaguid(*aaguid)
                ),
            ));
        }
        Ok(Ca {
            dir: dir.to_path_buf(),
            root_cert_pem,
            root_cert_der,
            batch_cert_der,
            batch_key,
        })
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root certificate, PEM encoded (what relying parties should trust).
    pub fn root_cert_pem(&self) -> &str {
        &self.root_cert_pem
    }

    /// The root certificate, DER encoded.
    pub fn root_cert_der(&self) -> &[u8] {
        &self.root_cert_der
    }

    /// The batch attestation certificate, DER encoded (at most 1024 bytes).
    pub fn batch_cert_der(&self) -> &[u8] {
        &self.batch_cert_der
    }

    /// The batch attestation private key as the 32-byte P-256 scalar the core takes.
    pub fn batch_private_key(&self) -> [u8; 32] {
        self.batch_key.to_bytes().into()
    }
}

/// The DER value of the AAGUID extension: an OCTET STRING holding the 16 bytes.
pub fn aaguid_extension_value(aaguid: &[u8; 16]) -> [u8; 18] {
    let mut out = [0u8; 18];
    out[0] = 0x04; // OCTET STRING
    out[1] = 16;
    out[2..].copy_from_slice(aaguid);
    out
}

fn invalid(path: &Path, reason: impl Into<String>) -> CaError {
    CaError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CaError + 'a {
    move |source| CaError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn public_key_sec1(key: &SecretKey) -> Vec<u8> {
    key.public_key().to_encoded_point(false).as_bytes().to_vec()
}

fn read_cert(path: &Path) -> Result<(String, Vec<u8>), CaError> {
    let text = fs::read_to_string(path).map_err(io_err("reading", path))?;
    let block = pem::parse(&text).map_err(|e| invalid(path, e.to_string()))?;
    if block.tag() != "CERTIFICATE" {
        return Err(invalid(
            path,
            format!("PEM block is {:?}, not CERTIFICATE", block.tag()),
        ));
    }
    Ok((text, block.contents().to_vec()))
}

fn read_key(path: &Path) -> Result<SecretKey, CaError> {
    let text = fs::read_to_string(path).map_err(io_err("reading", path))?;
    SecretKey::from_pkcs8_pem(&text)
        .map_err(|e| invalid(path, format!("not a PKCS#8 P-256 private key: {e}")))
}

/// Builds the CA in `<state_dir>/ca.tmp` and renames it to `dir`. The caller holds `ca.lock`.
fn create_ca_dir(state_dir: &Path, dir: &Path, options: &CaOptions) -> Result<(), CaError> {
    let tmp = state_dir.join("ca.tmp");
    if tmp.exists() {
        tracing::info!(path = %tmp.display(), "removing an incomplete CA directory left by an interrupted start");
        fs::remove_dir_all(&tmp).map_err(io_err("removing", &tmp))?;
    }
    create_private_dir(&tmp)?;
    let files = generate(options)?;
    for (name, contents) in [
        (ROOT_CERT_FILE, files.root_cert_pem.as_bytes()),
        (ROOT_KEY_FILE, files.root_key_pem.as_bytes()),
        (BATCH_CERT_FILE, files.batch_cert_pem.as_bytes()),
        (BATCH_KEY_FILE, files.batch_key_pem.as_bytes()),
    ] {
        let path = tmp.join(name);
        write_file_atomic(&path, contents).map_err(io_err("writing", &path))?;
    }
    fs::rename(&tmp, dir).map_err(io_err("renaming into place", &tmp))?;
    sync_dir(state_dir).map_err(io_err("syncing", state_dir))?;
    tracing::info!(dir = %dir.display(), "created the attestation root and batch certificate");
    Ok(())
}

/// PEM files of a freshly generated CA.
struct GeneratedCa {
    root_cert_pem: String,
    root_key_pem: Zeroizing<String>,
    batch_cert_pem: String,
    batch_key_pem: Zeroizing<String>,
}

fn gen_err(e: impl std::fmt::Display) -> CaError {
    CaError::Generate(e.to_string())
}

/// A fresh P-256 key, as the p256 key and the equivalent rcgen key pair.
fn new_key() -> Result<(SecretKey, KeyPair, Zeroizing<String>), CaError> {
    let key = SecretKey::random(&mut OsRng);
    let der = key.to_pkcs8_der().map_err(gen_err)?;
    let pair = KeyPair::try_from(der.as_bytes()).map_err(gen_err)?;
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(gen_err)?;
    Ok((key, pair, pem))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and without a leading zero byte
    SerialNumber::from_slice(&bytes)
}

fn generate(options: &CaOptions) -> Result<GeneratedCa, CaError> {
    let now = OffsetDateTime::now_utc();
    let not_before = now - Duration::days(1);

    let (_root_key, root_pair, root_key_pem) = new_key()?;
    let mut root = CertificateParams::default();
    root.distinguished_name = DistinguishedName::new();
    root.distinguished_name
        .push(DnType::CountryName, options.country.as_str());
    root.distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    root.distinguished_name.push(DnType::CommonName, ROOT_CN);
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.serial_number = Some(random_serial());
    root.not_before = not_before;
    root.not_after = now + Duration::days(365 * ROOT_VALIDITY_YEARS);
    let root_cert = root.self_signed(&root_pair).map_err(gen_err)?;

    let (_batch_key, batch_pair, batch_key_pem) = new_key()?;
    let mut batch = CertificateParams::default();
    batch.distinguished_name = DistinguishedName::new();
    batch
        .distinguished_name
        .push(DnType::CountryName, options.country.as_str());
    batch
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    batch
        .distinguished_name
        .push(DnType::OrganizationalUnitName, ATTESTATION_OU);
    batch.distinguished_name.push(DnType::CommonName, BATCH_CN);
    batch.is_ca = IsCa::ExplicitNoCa;
    batch.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    batch.serial_number = Some(random_serial());
    batch.not_before = not_before;
    batch.not_after = now + Duration::days(365 * BATCH_VALIDITY_YEARS);
    batch.use_authority_key_identifier_extension = true;
    let mut aaguid_ext = CustomExtension::from_oid_content(
        AAGUID_EXTENSION_OID,
        aaguid_extension_value(&options.aaguid).to_vec(),
    );
    aaguid_ext.set_criticality(false);
    batch.custom_extensions.push(aaguid_ext);
    let batch_cert = batch
        .signed_by(&batch_pair, &root_cert, &root_pair)
        .map_err(gen_err)?;
    if batch_cert.der().len() > MAX_CERTIFICATE_SIZE {
        return Err(CaError::Generate(format!(
            "the batch certificate is {} bytes, over the {MAX_CERTIFICATE_SIZE}-byte limit",
            batch_cert.der().len()
        )));
    }
    Ok(GeneratedCa {
        root_cert_pem: root_cert.pem(),
        root_key_pem,
        batch_cert_pem: batch_cert.pem(),
        batch_key_pem,
    })
}

/// An exclusive `flock` on a file, waiting for it; released on drop.
struct FileLock {
    _file: File,
}

impl FileLock {
    fn acquire_blocking(path: &Path) -> Result<Self, CaError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(path)
            .map_err(io_err("opening lock file", path))?;
        let _ = file.set_permissions(Permissions::from_mode(FILE_MODE));
        loop {
            // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(CaError::Io {
                    action: "locking",
                    path: path.to_path_buf(),
                    source: err,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn subject_attr(
        cert: &X509Certificate<'_>,
        oid: &x509_parser::der_parser::Oid<'_>,
    ) -> Vec<String> {
        cert.subject()
            .iter_attributes()
            .filter(|a| a.attr_type() == oid)
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn generated_certificates_meet_the_packed_attestation_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();

        let (_, root) = X509Certificate::from_der(ca.root_cert_der()).unwrap();
        let (rest, batch) = X509Certificate::from_der(ca.batch_cert_der()).unwrap();
        assert!(rest.is_empty());
        assert!(ca.batch_cert_der().len() <= MAX_CERTIFICATE_SIZE);

        // Root: self-signed CA with keyCertSign.
        assert_eq!(root.version(), X509Version::V3);
        assert_eq!(root.subject(), root.issuer());
        let bc = root.basic_constraints().unwrap().unwrap();
        assert!(bc.value.ca);
        assert!(root.key_usage().unwrap().unwrap().value.key_cert_sign());
        root.verify_signature(None).unwrap();

        // Batch: WebAuthn §8.2.1.
        assert_eq!(batch.version(), X509Version::V3);
        assert_eq!(batch.issuer(), root.subject());
        assert_eq!(
            subject_attr(&batch, &x509_parser::oid_registry::OID_X509_COUNTRY_NAME),
            vec!["US"]
        );
        assert_eq!(
            subject_attr(
                &batch,
                &x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME
            ),
            vec!["ferrokey"]
        );
        assert_eq!(
            subject_attr(
                &batch,
                &x509_parser::oid_registry::OID_X509_ORGANIZATIONAL_UNIT
            ),
            vec!["Authenticator Attestation"]
        );
        assert_eq!(
            subject_attr(&batch, &x509_parser::oid_registry::OID_X509_COMMON_NAME),
            vec!["ferrokey Batch Attestation"]
        );
        let bc = batch.basic_constraints().unwrap().unwrap();
        assert!(!bc.value.ca);
        assert!(batch
            .key_usage()
            .unwrap()
            .unwrap()
            .value
            .digital_signature());
        let aaguid_oid = x509_parser::der_parser::oid!(1.3.6 .1 .4 .1 .45724 .1 .1 .4);
        let ext = batch
            .extensions()
            .iter()
            .find(|e| e.oid == aaguid_oid)
            .expect("AAGUID extension");
        assert!(!ext.critical);
        // extnValue content: OCTET STRING { 16 bytes }.
        assert_eq!(ext.value.len(), 18);
        assert_eq!(&ext.value[..2], &[0x04, 0x10]);
        assert_eq!(&ext.value[2..], &crate::identity::FERROKEY_AAGUID);
        assert!(!batch
            .extensions()
            .iter()
            .any(|e| matches!(e.parsed_extension(), ParsedExtension::SubjectAlternativeName(san) if san.general_names.iter().any(|n| matches!(n, GeneralName::DNSName(_))))));

        // Validity: long, and currently valid.
        assert!(batch.validity().is_valid());
        let years = (batch.validity().not_after.timestamp()
            - batch.validity().not_before.timestamp())
            / (365 * 86400);
        assert!(years >= 29, "{years}");

        // Signed by the root.
        batch.verify_signature(Some(root.public_key())).unwrap();

        // The private key matches the certificate.
        let key = SecretKey::from_slice(&ca.batch_private_key()).unwrap();
        let point = key.public_key().to_encoded_point(false);
        assert_eq!(
            batch.public_key().subject_public_key.data.as_ref(),
            point.as_bytes()
        );
        // ...and signs something that verifies under the certificate.
        use p256::ecdsa::signature::{Signer, Verifier};
        let signing = p256::ecdsa::SigningKey::from(&key);
        let sig: p256::ecdsa::Signature = signing.sign(b"client data");
        let verifying =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&batch.public_key().subject_public_key.data)
                .unwrap();
        verifying.verify(b"client data", &sig).unwrap();
    }

    #[test]
    fn files_are_private_and_reloaded_unchanged() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
        let dir = tmp.path().join(CA_DIR);
        assert_eq!(mode_of(&dir), 0o700);
        for f in [
            ROOT_CERT_FILE,
            ROOT_KEY_FILE,
            BATCH_CERT_FILE,
            BATCH_KEY_FILE,
        ] {
            assert_eq!(mode_of(&dir.join(f)), 0o600, "{f}");
        }
        assert!(!tmp.path().join("ca.tmp").exists());
        let b = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
        assert_eq!(a.batch_cert_der(), b.batch_cert_der());
        assert_eq!(a.root_cert_pem(), b.root_cert_pem());
        assert_eq!(a.batch_private_key(), b.batch_private_key());
        assert!(a.root_cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        // Never print keys in Debug output.
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("key:"), "{dbg}");
    }

    #[test]
    fn country_is_configurable() {
        let tmp = tempfile::tempdir().unwrap();
        let options = CaOptions {
            country: "DE".into(),
            ..CaOptions::default()
        };
        let ca = Ca::load_or_create(tmp.path(), &options).unwrap();
        let (_, batch) = X509Certificate::from_der(ca.batch_cert_der()).unwrap();
        assert_eq!(
            subject_attr(&batch, &x509_parser::oid_registry::OID_X509_COUNTRY_NAME),
            vec!["DE"]
        );
    }

    #[test]
    fn interrupted_creation_is_redone() {
        let tmp = tempfile::tempdir().unwrap();
        let stale = tmp.path().join("ca.tmp");
        fs::create_dir(&stale).unwrap();
        fs::write(stale.join(ROOT_KEY_FILE), b"partial").unwrap();
        Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn damaged_or_mismatched_files_are_refused_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
        let dir = tmp.path().join(CA_DIR);

        // A batch key from another CA does not match the certificate.
        let other = tempfile::tempdir().unwrap();
        Ca::load_or_create(other.path(), &CaOptions::default()).unwrap();
        let original = fs::read(dir.join(BATCH_KEY_FILE)).unwrap();
        let foreign = fs::read(other.path().join(CA_DIR).join(BATCH_KEY_FILE)).unwrap();
        fs::write(dir.join(BATCH_KEY_FILE), &foreign).unwrap();
        let err = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap_err();
        assert!(err.to_string().contains("batch-key.pem"), "{err}");
        assert_eq!(fs::read(dir.join(BATCH_KEY_FILE)).unwrap(), foreign);
        fs::write(dir.join(BATCH_KEY_FILE), &original).unwrap();

        // Garbage in a certificate file.
        let cert = fs::read(dir.join(ROOT_CERT_FILE)).unwrap();
        fs::write(dir.join(ROOT_CERT_FILE), b"garbage").unwrap();
        let err = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap_err();
        assert!(err.to_string().contains("root-cert.pem"), "{err}");
        assert_eq!(fs::read(dir.join(ROOT_CERT_FILE)).unwrap(), b"garbage");
        fs::write(dir.join(ROOT_CERT_FILE), &cert).unwrap();

        // A different expected AAGUID.
        let options = CaOptions {
            aaguid: [7; 16],
            ..CaOptions::default()
        };
        let err = Ca::load_or_create(tmp.path(), &options).unwrap_err();
        assert!(err.to_string().contains("AAGUID"), "{err}");

        Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    }

    #[test]
    fn aaguid_extension_encoding() {
        let v = aaguid_extension_value(&[0xAA; 16]);
        assert_eq!(v[0], 0x04);
        assert_eq!(v[1], 16);
        assert_eq!(&v[2..], &[0xAA; 16]);
    }
}
