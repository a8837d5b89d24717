//! The attestation CA: a self-signed root, the batch attestation certificate
//! (FIDO "packed" attestation, WebAuthn §8.2.1) that every key of one ferrokey
//! process signs with, and on demand an intermediate CA for `--attestation chain`.
//!
//! # Layout
//!
//! Real security keys share one attestation key per production batch, so that an
//! attestation does not single out a unit. ferrokey does the same: all keys served
//! from one state directory share the files of `<state-dir>/ca/` (mode 0700):
//!
//! | file             | contents                                              |
//! |------------------|-------------------------------------------------------|
//! | `root-cert.pem`  | the self-signed root (CA=true, pathLen 1, keyCertSign); give it to relying parties (`ferrokey ca`) |
//! | `root-key.pem`   | the root's PKCS#8 private key (to issue the intermediate, or a new batch certificate) |
//! | `batch-cert.pem` | the batch attestation certificate, signed by the root  |
//! | `batch-key.pem`  | the batch attestation PKCS#8 private key               |
//! | `intermediate/`  | created on first use of `--attestation chain`: `ca-cert.pem`, `ca-key.pem` (an intermediate CA issued by the root, pathLen 0) and `batch-cert.pem` (a certificate for the same batch key, issued by the intermediate) |
//!
//! All files are mode 0600. Each directory is created whole: it is built as
//! `NAME.tmp` and renamed, under the state directory's `ca.lock`, so it is either
//! complete or absent, even after a crash or with two processes starting at once.
//! Keys are ECDSA P-256; certificates are made with rcgen ([`issue`]). Another
//! issuing branch (an enterprise attestation CA, say) would be one more
//! subdirectory issued by the root, loaded the same way as `intermediate/`.
//!
//! Every certificate is checked when loaded ([`check`]): strict DER, the issuer's
//! signature, and for attestation certificates WebAuthn §8.2.1. A batch
//! certificate that fails only the strict checks (ferrokey before this check
//! wrote `cA FALSE` explicitly in basicConstraints, which is not DER) is issued
//! again from the root for the same key; the root never changes.
//!
//! # Batch certificate (WebAuthn §8.2.1 requirements)
//!
//! X.509 v3; subject C=`<country>` (default US), O=ferrokey, OU=Authenticator
//! Attestation, CN=ferrokey Batch Attestation; basicConstraints CA=false (an empty
//! SEQUENCE, marked critical); keyUsage digitalSignature; subjectKeyIdentifier;
//! the non-critical id-fido-gen-ce-aaguid extension (1.3.6.1.4.1.45724.1.1.4)
//! holding the model's AAGUID; valid from a day before creation for 30 years
//! (the root: 40, the intermediate: 35).

pub mod check;
pub mod files;
pub mod issue;
pub mod mode;

use std::path::{Path, PathBuf};

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::SecretKey;
use x509_cert::der::oid::db::rfc4519::COUNTRY_NAME;

use self::check::{check_issued_by, check_packed_attestation, parse_strict, StrictCertificate};
pub use self::files::CaError;
use self::files::{create_dir_whole, invalid, read_cert, read_key, write_file, FileLock};
pub use self::issue::{aaguid_extension_value, AAGUID_EXTENSION_OID};
use self::issue::{issue, Issuer, NewKey, Profile, Subject};
pub use self::mode::AttestationMode;
use crate::storage::create_private_dir;

/// The largest attestation certificate the core accepts, in bytes (DER).
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
/// The intermediate CA's directory inside `ca/`.
pub const INTERMEDIATE_DIR: &str = "intermediate";
/// The intermediate CA's certificate file (in `intermediate/`).
pub const INTERMEDIATE_CERT_FILE: &str = "ca-cert.pem";
/// The intermediate CA's private key file (in `intermediate/`).
pub const INTERMEDIATE_KEY_FILE: &str = "ca-key.pem";
/// Subject O of the certificates.
pub const ORGANIZATION: &str = "ferrokey";
/// Subject OU of attestation certificates (fixed by WebAuthn §8.2.1).
pub const ATTESTATION_OU: &str = "Authenticator Attestation";
/// Subject CN of the batch certificate.
pub const BATCH_CN: &str = "ferrokey Batch Attestation";
/// Subject CN of the root certificate.
pub const ROOT_CN: &str = "ferrokey Attestation Root CA";
/// Subject CN of the intermediate CA.
pub const INTERMEDIATE_CN: &str = "ferrokey Attestation Intermediate CA";
/// Default subject C.
pub const DEFAULT_COUNTRY: &str = "US";

const ROOT_VALIDITY_YEARS: i64 = 40;
const INTERMEDIATE_VALIDITY_YEARS: i64 = 35;
const BATCH_VALIDITY_YEARS: i64 = 30;
/// The root's pathLenConstraint: one intermediate CA may follow it.
const ROOT_PATH_LEN: u8 = 1;

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

/// The certificates of `--attestation chain`: the batch certificate issued by
/// the intermediate CA, and that CA's certificate (x5c = [batch, intermediate]).
#[derive(Clone, Debug)]
pub struct ChainCertificates {
    /// The batch certificate issued by the intermediate (same key as the batch certificate).
    pub batch_cert_der: Vec<u8>,
    /// The intermediate CA certificate, issued by the root.
    pub intermediate_cert_der: Vec<u8>,
}

/// The loaded attestation CA of a state directory.
pub struct Ca {
    state_dir: PathBuf,
    dir: PathBuf,
    aaguid: [u8; 16],
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

/// The batch certificate's subject.
fn batch_subject(country: &str) -> Subject<'_> {
    Subject {
        country,
        organization: ORGANIZATION,
        unit: Some(ATTESTATION_OU),
        common_name: BATCH_CN,
    }
}

/// Issues a batch certificate for `key` (the AAGUID extension, CA=false).
fn issue_batch(
    country: &str,
    key: &SecretKey,
    aaguid: &[u8; 16],
    issuer: &Issuer,
) -> Result<(Vec<u8>, String), CaError> {
    let (der, pem) = issue(
        &batch_subject(country),
        key,
        Profile::Signer {
            aaguid: Some(*aaguid),
        },
        BATCH_VALIDITY_YEARS,
        Some(issuer),
    )?;
    if der.len() > MAX_CERTIFICATE_SIZE {
        return Err(CaError::Generate(format!(
            "the batch certificate is {} bytes, over the {MAX_CERTIFICATE_SIZE}-byte limit",
            der.len()
        )));
    }
    Ok((der, pem))
}

fn public_key_sec1(key: &SecretKey) -> Vec<u8> {
    key.public_key().to_encoded_point(false).as_bytes().to_vec()
}

/// Parses a certificate file's DER strictly; a failure names the file.
fn strict(path: &Path, der: &[u8]) -> Result<StrictCertificate, CaError> {
    parse_strict(der).map_err(|e| invalid(path, e.0))
}

impl Ca {
    /// Loads `<state_dir>/ca`, creating the root and batch certificates (with
    /// `options`) if it does not exist yet. The loaded batch certificate must carry
    /// `options.aaguid`.
    pub fn load_or_create(state_dir: &Path, options: &CaOptions) -> Result<Self, CaError> {
        create_private_dir(state_dir)?;
        let _lock = lock(state_dir)?;
        let dir = state_dir.join(CA_DIR);
        if !dir.exists() {
            create_ca_dir(&dir, options)?;
            tracing::info!(dir = %dir.display(), "created the attestation root and batch certificate");
        }
        Ca::load_locked(state_dir, &dir, &options.aaguid)
    }

    /// Loads and checks an existing CA directory; the caller holds `ca.lock`.
    fn load_locked(state_dir: &Path, dir: &Path, aaguid: &[u8; 16]) -> Result<Self, CaError> {
        let root_path = dir.join(ROOT_CERT_FILE);
        let (root_cert_pem, root_cert_der) = read_cert(&root_path)?;
        let root_key = read_key(&dir.join(ROOT_KEY_FILE))?;
        let batch_path = dir.join(BATCH_CERT_FILE);
        let (_, mut batch_cert_der) = read_cert(&batch_path)?;
        let batch_key = read_key(&dir.join(BATCH_KEY_FILE))?;

        let root = load_root(&root_path, &root_cert_der)?;
        if root.public_key() != public_key_sec1(&root_key) {
            return Err(invalid(
                &dir.join(ROOT_KEY_FILE),
                "does not match the root certificate's public key",
            ));
        }
        check_issued_by(&root, &root).map_err(|e| invalid(&root_path, e.0))?;
        if !root.is_ca() {
            return Err(invalid(&root_path, "is not a CA certificate"));
        }
        if !contains(&batch_cert_der, &public_key_sec1(&batch_key)) {
            return Err(invalid(
                &dir.join(BATCH_KEY_FILE),
                "does not match the batch certificate's public key",
            ));
        }
        // The extension value is unique enough to find by its bytes, even in a
        // certificate that the strict parser refuses.
        if !contains(&batch_cert_der, &aaguid_extension_value(aaguid)) {
            return Err(invalid(
                &batch_path,
                format!(
                    "certificate does not carry the AAGUID {}",
                    crate::identity::Aaguid(*aaguid)
                ),
            ));
        }
        if let Err(problem) = check_attestation_cert(&batch_cert_der, &root, aaguid) {
            if !was_issued_by(&batch_cert_der, &root_cert_der) {
                return Err(invalid(&batch_path, problem));
            }
            // Issued by our root for our key and AAGUID, but not acceptable to a
            // strict verifier: issue it again (same key; the root is unchanged).
            let country = root_country(&root, &root_path)?;
            let issuer = Issuer::new(&root_cert_der, &root_key)?;
            let (der, pem) = issue_batch(&country, &batch_key, aaguid, &issuer)?;
            write_file(&batch_path, pem.as_bytes())?;
            tracing::warn!(
                path = %batch_path.display(),
                "re-issued the batch attestation certificate (same key and root): the old one failed a strict check: {problem}"
            );
            batch_cert_der = der;
            check_attestation_cert(&batch_cert_der, &root, aaguid)
                .map_err(|e| invalid(&batch_path, e))?;
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
        Ok(Ca {
            state_dir: state_dir.to_path_buf(),
            dir: dir.to_path_buf(),
            aaguid: *aaguid,
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

    /// The AAGUID the batch certificates carry.
    pub fn aaguid(&self) -> &[u8; 16] {
        &self.aaguid
    }

    /// The certificates of `--attestation chain`, loading `ca/intermediate/` or
    /// creating it (issued by the root) on first use.
    pub fn chain(&self) -> Result<ChainCertificates, CaError> {
        let _lock = lock(&self.state_dir)?;
        let dir = self.dir.join(INTERMEDIATE_DIR);
        let root_path = self.dir.join(ROOT_CERT_FILE);
        let root = load_root(&root_path, &self.root_cert_der)?;
        if !dir.exists() {
            let path_len = root
                .basic_constraints
                .as_ref()
                .and_then(|(_, bc)| bc.path_len_constraint);
            if path_len == Some(0) {
                return Err(CaError::Unsupported(format!(
                    "the attestation root {} allows no intermediate CA (pathLenConstraint 0; \
                     it was made by an older ferrokey): use --attestation batch, or a new state \
                     directory, whose root allows one",
                    root_path.display()
                )));
            }
            let country = root_country(&root, &root_path)?;
            let root_key = read_key(&self.dir.join(ROOT_KEY_FILE))?;
            let root_issuer = Issuer::new(&self.root_cert_der, &root_key)?;
            let ca_key = NewKey::generate()?;
            let (ca_der, ca_pem) = issue(
                &Subject {
                    country: &country,
                    organization: ORGANIZATION,
                    unit: None,
                    common_name: INTERMEDIATE_CN,
                },
                &ca_key.key,
                Profile::Ca { path_len: 0 },
                INTERMEDIATE_VALIDITY_YEARS,
                Some(&root_issuer),
            )?;
            let issuer = Issuer::new(&ca_der, &ca_key.key)?;
            let (_, batch_pem) = issue_batch(&country, &self.batch_key, &self.aaguid, &issuer)?;
            create_dir_whole(
                &dir,
                &[
                    (INTERMEDIATE_CERT_FILE, ca_pem.as_bytes()),
                    (INTERMEDIATE_KEY_FILE, ca_key.pem.as_bytes()),
                    (BATCH_CERT_FILE, batch_pem.as_bytes()),
                ],
            )?;
            tracing::info!(dir = %dir.display(), "created the intermediate attestation CA");
        }
        let ca_path = dir.join(INTERMEDIATE_CERT_FILE);
        let (_, intermediate_cert_der) = read_cert(&ca_path)?;
        let ca_key = read_key(&dir.join(INTERMEDIATE_KEY_FILE))?;
        let intermediate = strict(&ca_path, &intermediate_cert_der)?;
        if intermediate.public_key() != public_key_sec1(&ca_key) {
            return Err(invalid(
                &dir.join(INTERMEDIATE_KEY_FILE),
                "does not match the intermediate certificate's public key",
            ));
        }
        check_issued_by(&intermediate, &root).map_err(|e| invalid(&ca_path, e.0))?;
        let batch_path = dir.join(BATCH_CERT_FILE);
        let (_, batch_cert_der) = read_cert(&batch_path)?;
        check_attestation_cert(&batch_cert_der, &intermediate, &self.aaguid)
            .map_err(|e| invalid(&batch_path, e))?;
        if strict(&batch_path, &batch_cert_der)?.public_key() != public_key_sec1(&self.batch_key) {
            return Err(invalid(&batch_path, "is not for the batch key"));
        }
        if batch_cert_der.len() > MAX_CERTIFICATE_SIZE
            || intermediate_cert_der.len() > MAX_CERTIFICATE_SIZE
        {
            return Err(invalid(&dir, "a certificate is over the 1024-byte limit"));
        }
        Ok(ChainCertificates {
            batch_cert_der,
            intermediate_cert_der,
        })
    }
}

/// A key's enterprise attestation directory (inside its state directory).
pub const ENTERPRISE_DIR: &str = "enterprise";
/// Subject CN prefix of enterprise attestation certificates (the key's
/// serial number follows: the certificate identifies the one device).
const ENTERPRISE_CN: &str = "ferrokey Enterprise Attestation";

impl Ca {
    /// The enterprise attestation key and certificate of the key whose state
    /// is `key_dir`: `<key_dir>/enterprise/{batch-cert.pem,batch-key.pem}`,
    /// made on first use (a fresh P-256 key; a certificate issued by the
    /// root, subject CN "ferrokey Enterprise Attestation SERIAL", with the
    /// AAGUID extension), created whole like the CA's directories. Unlike the
    /// batch certificate it identifies this one key. Returns the private
    /// scalar and the DER certificate, checked like the batch certificate.
    pub fn enterprise_certificate(
        &self,
        key_dir: &Path,
        serial: &str,
        aaguid: &[u8; 16],
    ) -> Result<([u8; 32], Vec<u8>), CaError> {
        let dir = key_dir.join(ENTERPRISE_DIR);
        let root_path = self.dir.join(ROOT_CERT_FILE);
        let root = load_root(&root_path, &self.root_cert_der)?;
        if !dir.exists() {
            let _lock = lock(&self.state_dir)?;
            let country = root_country(&root, &root_path)?;
            let root_key = read_key(&self.dir.join(ROOT_KEY_FILE))?;
            let issuer = Issuer::new(&self.root_cert_der, &root_key)?;
            let key = NewKey::generate()?;
            let common_name = format!("{ENTERPRISE_CN} {serial}");
            let (_, pem) = issue(
                &Subject {
                    country: &country,
                    organization: ORGANIZATION,
                    unit: Some(ATTESTATION_OU),
                    common_name: &common_name,
                },
                &key.key,
                Profile::Signer {
                    aaguid: Some(*aaguid),
                },
                BATCH_VALIDITY_YEARS,
                Some(&issuer),
            )?;
            create_dir_whole(
                &dir,
                &[
                    (BATCH_CERT_FILE, pem.as_bytes()),
                    (BATCH_KEY_FILE, key.pem.as_bytes()),
                ],
            )?;
            tracing::info!(dir = %dir.display(), "created the key's enterprise attestation certificate");
        }
        let cert_path = dir.join(BATCH_CERT_FILE);
        let (_, der) = read_cert(&cert_path)?;
        let key = read_key(&dir.join(BATCH_KEY_FILE))?;
        check_attestation_cert(&der, &root, aaguid).map_err(|e| invalid(&cert_path, e))?;
        if strict(&cert_path, &der)?.public_key() != public_key_sec1(&key) {
            return Err(invalid(&cert_path, "is not for the key beside it"));
        }
        if der.len() > MAX_CERTIFICATE_SIZE {
            return Err(invalid(&cert_path, "is over the 1024-byte limit"));
        }
        Ok((key.to_bytes().into(), der))
    }
}

/// Parses the root strictly; a root made by an older ferrokey that fails only
/// the canonical-encoding round trip (its keyUsage) is kept, with a warning:
/// relying parties were given it, so it is never replaced.
fn load_root(path: &Path, der: &[u8]) -> Result<StrictCertificate, CaError> {
    match parse_strict(der) {
        Ok(root) => Ok(root),
        Err(problem) => {
            let root = check::parse_allowing_noncanonical(der).map_err(|e| invalid(path, e.0))?;
            tracing::warn!(
                path = %path.display(),
                "the attestation root (made by an older ferrokey) is not strict DER: {problem}; \
                 it is kept because relying parties trust it; a new state directory gets a strict one"
            );
            Ok(root)
        }
    }
}

/// What a key's core is given for its [`AttestationMode`]: the batch key with
/// its certificate (and for `chain` the intermediate), or none of them, and
/// whether makeCredential answers fmt "none".
#[derive(Clone, Debug)]
pub struct KeyAttestation {
    mode: AttestationMode,
    attestation: Option<ferrokey::authenticator::Attestation>,
}

impl KeyAttestation {
    /// The attestation of `mode` from this CA (`chain` creates the
    /// intermediate CA on first use).
    pub fn new(ca: &Ca, mode: AttestationMode) -> Result<Self, CaError> {
        let vec = |der: &[u8]| {
            heapless::Vec::from_slice(der).map_err(|_| {
                CaError::Generate(format!(
                    "a certificate is over {MAX_CERTIFICATE_SIZE} bytes"
                ))
            })
        };
        let attestation = match mode {
            AttestationMode::None | AttestationMode::SelfAttestation => None,
            AttestationMode::Batch => Some(ferrokey::authenticator::Attestation {
                private_key: ca.batch_private_key(),
                certificate: vec(ca.batch_cert_der())?,
                intermediate: None,
            }),
            AttestationMode::Chain => {
                let chain = ca.chain()?;
                Some(ferrokey::authenticator::Attestation {
                    private_key: ca.batch_private_key(),
                    certificate: vec(&chain.batch_cert_der)?,
                    intermediate: Some(vec(&chain.intermediate_cert_der)?),
                })
            }
        };
        Ok(KeyAttestation { mode, attestation })
    }

    /// No certificates: self attestation (U2F: a self-signed certificate).
    /// What the offline commands use, which make no credentials.
    pub fn without_certificates() -> Self {
        KeyAttestation {
            mode: AttestationMode::SelfAttestation,
            attestation: None,
        }
    }

    /// The mode.
    pub fn mode(&self) -> AttestationMode {
        self.mode
    }

    /// Sets the core configuration's `attestation` and `none_attestation`.
    pub fn apply(&self, config: &mut ferrokey::authenticator::Config) {
        config.attestation = self.attestation.clone();
        config.none_attestation = self.mode == AttestationMode::None;
    }
}

/// Takes the state directory's `ca.lock`.
fn lock(state_dir: &Path) -> Result<FileLock, CaError> {
    FileLock::acquire_blocking(&state_dir.join("ca.lock"))
}

/// Strict DER, WebAuthn §8.2.1 with this AAGUID, and `issuer`'s signature.
fn check_attestation_cert(
    der: &[u8],
    issuer: &StrictCertificate,
    aaguid: &[u8; 16],
) -> Result<(), String> {
    let cert = parse_strict(der).map_err(|e| e.0)?;
    check_packed_attestation(&cert, Some(aaguid)).map_err(|e| e.0)?;
    check_issued_by(&cert, issuer).map_err(|e| e.0)
}

/// Whether a lenient parser (x509-parser) finds `der` signed by `root_der`'s key.
fn was_issued_by(der: &[u8], root_der: &[u8]) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (Ok((_, cert)), Ok((_, root))) = (
        X509Certificate::from_der(der),
        X509Certificate::from_der(root_der),
    ) else {
        return false;
    };
    cert.verify_signature(Some(root.public_key())).is_ok()
}

/// The root's subject C, reused for the certificates it issues.
fn root_country(root: &StrictCertificate, path: &Path) -> Result<String, CaError> {
    root.subject_attribute(COUNTRY_NAME)
        .map_err(|e| invalid(path, e.0))?
        .into_iter()
        .next()
        .ok_or_else(|| invalid(path, "the root's subject has no C"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Creates `ca/` with a new root and batch certificate. The caller holds `ca.lock`.
fn create_ca_dir(dir: &Path, options: &CaOptions) -> Result<(), CaError> {
    let root_key = NewKey::generate()?;
    let (root_der, root_pem) = issue(
        &Subject {
            country: &options.country,
            organization: ORGANIZATION,
            unit: None,
            common_name: ROOT_CN,
        },
        &root_key.key,
        Profile::Ca {
            path_len: ROOT_PATH_LEN,
        },
        ROOT_VALIDITY_YEARS,
        None,
    )?;
    let batch_key = NewKey::generate()?;
    let issuer = Issuer::new(&root_der, &root_key.key)?;
    let (_, batch_pem) = issue_batch(&options.country, &batch_key.key, &options.aaguid, &issuer)?;
    create_dir_whole(
        dir,
        &[
            (ROOT_CERT_FILE, root_pem.as_bytes()),
            (ROOT_KEY_FILE, root_key.pem.as_bytes()),
            (BATCH_CERT_FILE, batch_pem.as_bytes()),
            (BATCH_KEY_FILE, batch_key.pem.as_bytes()),
        ],
    )
}

#[cfg(test)]
mod tests;
