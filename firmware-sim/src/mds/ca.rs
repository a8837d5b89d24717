//! The metadata signing CA: a ferrokey MDS root and the signing key whose
//! certificate goes into the BLOB's x5c, in `<state-dir>/ca/mds/` (0700, files
//! 0600, created whole under `ca.lock`, like the attestation CA).
//!
//! | file | contents |
//! |------|----------|
//! | `root-cert.pem` | the MDS root (self-signed, CA, pathLen 0): what a relying party trusts for BLOBs |
//! | `root-key.pem`  | its key |
//! | `signer-cert.pem` | the metadata signing certificate (CA=false, digitalSignature), issued by the root |
//! | `signer-key.pem`  | its key, which signs the BLOB (ES256) |

use std::path::Path;

use p256::SecretKey;

use crate::attestation::check::{check_issued_by, check_valid_at, parse_strict, StrictCertificate};
use crate::attestation::files::{
    create_dir_whole, invalid, read_cert, read_key, CaError, FileLock,
};
use crate::attestation::issue::{issue, Issuer, NewKey, Profile, Subject};
use crate::attestation::{CA_DIR, ORGANIZATION};
use crate::storage::create_private_dir;

/// The MDS CA's directory inside `ca/`.
pub const MDS_DIR: &str = "mds";
/// The MDS root certificate file.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// The MDS root key file.
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// The metadata signing certificate file.
pub const SIGNER_CERT_FILE: &str = "signer-cert.pem";
/// The metadata signing key file.
pub const SIGNER_KEY_FILE: &str = "signer-key.pem";
/// Subject CN of the MDS root.
pub const ROOT_CN: &str = "ferrokey Metadata Root CA";
/// Subject CN of the signing certificate.
pub const SIGNER_CN: &str = "ferrokey Metadata BLOB Signer";

const ROOT_VALIDITY_YEARS: i64 = 40;
const SIGNER_VALIDITY_YEARS: i64 = 30;

/// The loaded metadata signing CA.
pub struct MdsCa {
    /// The root certificate, PEM.
    pub root_pem: String,
    /// The root certificate, DER.
    pub root_der: Vec<u8>,
    /// The signing certificate, DER (the BLOB header's x5c).
    pub signer_der: Vec<u8>,
    /// The signing key.
    pub signer_key: SecretKey,
}

impl std::fmt::Debug for MdsCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdsCa").finish_non_exhaustive()
    }
}

impl MdsCa {
    /// Loads `<state_dir>/ca/mds`, creating it on first use (subject C `country`).
    pub fn load_or_create(state_dir: &Path, country: &str) -> Result<Self, CaError> {
        let ca_dir = state_dir.join(CA_DIR);
        create_private_dir(&ca_dir)?;
        let _lock = FileLock::acquire_blocking(&state_dir.join("ca.lock"))?;
        let dir = ca_dir.join(MDS_DIR);
        if !dir.exists() {
            create(&dir, country)?;
            tracing::info!(dir = %dir.display(), "created the metadata (MDS) root and signing certificate");
        }
        load(&dir)
    }
}

fn create(dir: &Path, country: &str) -> Result<(), CaError> {
    let root_key = NewKey::generate()?;
    let subject = |common_name| Subject {
        country,
        organization: ORGANIZATION,
        unit: None,
        common_name,
    };
    let (root_der, root_pem) = issue(
        &subject(ROOT_CN),
        &root_key.key,
        Profile::Ca { path_len: 0 },
        ROOT_VALIDITY_YEARS,
        None,
    )?;
    let signer_key = NewKey::generate()?;
    let issuer = Issuer::new(&root_der, &root_key.key)?;
    let (_, signer_pem) = issue(
        &subject(SIGNER_CN),
        &signer_key.key,
        Profile::Signer { aaguid: None },
        SIGNER_VALIDITY_YEARS,
        Some(&issuer),
    )?;
    create_dir_whole(
        dir,
        &[
            (ROOT_CERT_FILE, root_pem.as_bytes()),
            (ROOT_KEY_FILE, root_key.pem.as_bytes()),
            (SIGNER_CERT_FILE, signer_pem.as_bytes()),
            (SIGNER_KEY_FILE, signer_key.pem.as_bytes()),
        ],
    )
}

fn strict(path: &Path, der: &[u8]) -> Result<StrictCertificate, CaError> {
    parse_strict(der).map_err(|e| invalid(path, e.0))
}

fn load(dir: &Path) -> Result<MdsCa, CaError> {
    let root_path = dir.join(ROOT_CERT_FILE);
    let signer_path = dir.join(SIGNER_CERT_FILE);
    let (root_pem, root_der) = read_cert(&root_path)?;
    let (_, signer_der) = read_cert(&signer_path)?;
    let signer_key = read_key(&dir.join(SIGNER_KEY_FILE))?;
    let root = strict(&root_path, &root_der)?;
    let signer = strict(&signer_path, &signer_der)?;
    check_issued_by(&root, &root).map_err(|e| invalid(&root_path, e.0))?;
    check_issued_by(&signer, &root).map_err(|e| invalid(&signer_path, e.0))?;
    if signer.is_ca() {
        return Err(invalid(&signer_path, "is a CA certificate"));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    check_valid_at(&signer, now).map_err(|e| invalid(&signer_path, e.0))?;
    let public = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
        &signer_key.public_key(),
        false,
    );
    if signer.public_key() != public.as_bytes() {
        return Err(invalid(
            &dir.join(SIGNER_KEY_FILE),
            "does not match the signing certificate's public key",
        ));
    }
    Ok(MdsCa {
        root_pem,
        root_der,
        signer_der,
        signer_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_mds_ca_is_made_once_private_and_strict() {
        let tmp = tempfile::tempdir().unwrap();
        let a = MdsCa::load_or_create(tmp.path(), "US").unwrap();
        let dir = tmp.path().join(CA_DIR).join(MDS_DIR);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for f in [
            ROOT_CERT_FILE,
            ROOT_KEY_FILE,
            SIGNER_CERT_FILE,
            SIGNER_KEY_FILE,
        ] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        let root = parse_strict(&a.root_der).unwrap();
        let signer = parse_strict(&a.signer_der).unwrap();
        assert!(root.is_ca());
        assert!(!signer.is_ca());
        assert!(signer.key_usage.unwrap().digital_signature());
        check_issued_by(&signer, &root).unwrap();
        let b = MdsCa::load_or_create(tmp.path(), "US").unwrap();
        assert_eq!(a.root_der, b.root_der);
        assert_eq!(a.signer_der, b.signer_der);
        assert!(!format!("{a:?}").contains("key"));

        // A signing key that does not match is refused, untouched.
        std::fs::write(
            dir.join(SIGNER_KEY_FILE),
            std::fs::read(dir.join(ROOT_KEY_FILE)).unwrap(),
        )
        .unwrap();
        let err = MdsCa::load_or_create(tmp.path(), "US").unwrap_err();
        assert!(err.to_string().contains("signer-key.pem"), "{err}");
    }
}
