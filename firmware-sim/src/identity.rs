//! Per-key identity: USB serial number, AAGUID and creation time, plus the USB
//! defaults of the ferrokey model.
//!
//! Each key's state directory holds `identity.json` (mode 0600, written atomically):
//!
//! ```json
//! {"version":1,"serial":"3F09A1C47D2B","aaguid":"bb6ca1c2-3d44-402a-afdd-2955c41b88e9","created_unix":1767225600}
//! ```
//!
//! - `serial`: the USB serial number, 12 random upper-case hex digits, chosen when
//!   the key is created and distinct from the other keys of the same state directory.
//! - `aaguid`: the model's [`FERROKEY_AAGUID`]. Like real security keys, every key of
//!   a model shares one AAGUID (it names the model, not the unit); it is stored so a
//!   key created by an older ferrokey keeps announcing the AAGUID it was created with.
//! - `created_unix`: creation time, seconds since the Unix epoch.
//!
//! A factory reset (`ferrokey reset`) keeps the identity; deleting the key directory
//! makes a new key.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::storage::write_file_atomic;

/// The AAGUID of the ferrokey model, `bb6ca1c2-3d44-402a-afdd-2955c41b88e9`.
///
/// Randomly generated once for this project. All ferrokey keys share it, and it is
/// the AAGUID in the batch attestation certificate's id-fido-gen-ce-aaguid extension.
pub const FERROKEY_AAGUID: [u8; 16] = [
    0xbb, 0x6c, 0xa1, 0xc2, 0x3d, 0x44, 0x40, 0x2a, 0xaf, 0xdd, 0x29, 0x55, 0xc4, 0x1b, 0x88, 0xe9,
];

/// Default USB vendor id: 0x1209, the pid.codes open-source vendor id.
pub const DEFAULT_VENDOR_ID: u16 = 0x1209;
/// Default USB product id: 0x000A, from the pid.codes test range 0x0001..=0x000F
/// ("for private testing"; not for distributed products, where a real
/// pid.codes allocation belongs). Override with `--pid`.
pub const DEFAULT_PRODUCT_ID: u16 = 0x000A;
/// Default USB manufacturer string.
pub const DEFAULT_MANUFACTURER: &str = "ferrokey";
/// Default USB product string.
pub const DEFAULT_PRODUCT: &str = "ferrokey FIDO2 security key";

/// Name of the identity file in a key's state directory.
pub const IDENTITY_FILE: &str = "identity.json";
/// The identity file format version this build writes and reads.
pub const IDENTITY_VERSION: u32 = 1;
/// Number of hex digits in a generated serial number.
const SERIAL_LEN: usize = 12;

/// Why an identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The identity file is damaged; it has been left untouched.
    #[error("invalid identity file {path}: {reason} (the file was left untouched)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The identity file has an unknown (newer) format version.
    #[error("identity file {path} has format version {version}, but this ferrokey reads only version {IDENTITY_VERSION}; the file was left untouched")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in it.
        version: u32,
    },
    /// The key directory has no identity yet (it was never served).
    #[error("{0} has no identity file; run `ferrokey serve` once to create the key")]
    Missing(PathBuf),
}

/// An AAGUID, shown in the canonical UUID form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aaguid(pub [u8; 16]);

impl fmt::Display for Aaguid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Aaguid {
    /// Parses the canonical UUID form (hyphens optional, either case).
    pub fn parse(text: &str) -> Option<Self> {
        let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
        if hex.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let s = std::str::from_utf8(pair).ok()?;
            *o = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Aaguid(out))
    }
}

/// The on-disk form of [`Identity`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    version: u32,
    serial: String,
    aaguid: String,
    created_unix: u64,
}

/// The persistent identity of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// USB serial number string.
    pub serial: String,
    /// The AAGUID the key announces.
    pub aaguid: [u8; 16],
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
}

impl Identity {
    /// Loads the identity of the key in `dir`.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(IDENTITY_FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(IdentityError::Missing(dir.to_path_buf()))
            }
            Err(e) => {
                return Err(IdentityError::Io {
                    action: "reading",
                    path,
                    source: e,
                })
            }
        };
        let invalid = |reason: String| IdentityError::Invalid {
            path: path.clone(),
            reason,
        };
        // Check the version first, so a newer file is reported as such even if its
        // other fields changed.
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
        let version = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| invalid("no numeric \"version\" field".into()))?;
        if version != u64::from(IDENTITY_VERSION) {
            return Err(IdentityError::UnsupportedVersion {
                path: path.clone(),
                version: u32::try_from(version).unwrap_or(u32::MAX),
            });
        }
        let file: IdentityFile =
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        if !valid_serial(&file.serial) {
            return Err(invalid(format!(
                "serial {:?} is not 1 to 32 ASCII letters and digits",
                file.serial
            )));
        }
        let aaguid = Aaguid::parse(&file.aaguid)
            .ok_or_else(|| invalid(format!("aaguid {:?} is not a UUID", file.aaguid)))?;
        Ok(Identity {
            serial: file.serial,
            aaguid: aaguid.0,
            created_unix: file.created_unix,
        })
    }

    /// Loads the identity of the key in `dir`, creating it (with a fresh serial
    /// number not in `taken`) if the key has none yet. The caller must hold the
    /// directory's lock (open its [`crate::storage::FileStorage`] first).
    pub fn load_or_create(dir: &Path, taken: &[String]) -> Result<Self, IdentityError> {
        match Identity::load(dir) {
            Err(IdentityError::Missing(_)) => {}
            other => return other,
        }
        let serial = loop {
            let candidate = random_serial();
            if !taken.contains(&candidate) {
                break candidate;
            }
        };
        let identity = Identity {
            serial,
            aaguid: FERROKEY_AAGUID,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        identity.save(dir)?;
        Ok(identity)
    }

    /// Writes the identity to `dir` atomically (mode 0600).
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        let path = dir.join(IDENTITY_FILE);
        let file = IdentityFile {
            version: IDENTITY_VERSION,
            serial: self.serial.clone(),
            aaguid: Aaguid(self.aaguid).to_string(),
            created_unix: self.created_unix,
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(|e| IdentityError::Io {
            action: "encoding",
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        text.push(b'\n');
        write_file_atomic(&path, &text).map_err(|e| IdentityError::Io {
            action: "writing",
            path,
            source: e,
        })
    }
}

/// A fresh random serial number: 12 upper-case hex digits.
fn random_serial() -> String {
    let mut bytes = [0u8; SERIAL_LEN / 2];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn valid_serial(serial: &str) -> bool {
    (1..=32).contains(&serial.len()) && serial.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_then_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(tmp.path(), &[]).unwrap();
        assert_eq!(a.serial.len(), 12);
        assert!(a
            .serial
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
        assert_eq!(a.aaguid, FERROKEY_AAGUID);
        assert!(a.created_unix > 1_600_000_000);
        let b = Identity::load_or_create(tmp.path(), &[]).unwrap();
        assert_eq!(a, b);
        let path = tmp.path().join(IDENTITY_FILE);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("bb6ca1c2-3d44-402a-afdd-2955c41b88e9"),
            "{text}"
        );
    }

    #[test]
    fn serials_are_distinct() {
        let tmp = tempfile::tempdir().unwrap();
        let mut taken = Vec::new();
        for i in 0..8 {
            let dir = tmp.path().join(format!("key-{i}"));
            fs::create_dir(&dir).unwrap();
            let id = Identity::load_or_create(&dir, &taken).unwrap();
            assert!(!taken.contains(&id.serial));
            taken.push(id.serial);
        }
    }

    #[test]
    fn missing_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            Identity::load(tmp.path()),
            Err(IdentityError::Missing(_))
        ));
    }

    #[test]
    fn damaged_file_is_refused_and_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(IDENTITY_FILE);
        for bad in [
            &b"{not json"[..],
            br#"{"version":1,"serial":"AB","aaguid":"xyz","created_unix":1}"#,
            br#"{"version":1,"serial":"","aaguid":"bb6ca1c2-3d44-402a-afdd-2955c41b88e9","created_unix":1}"#,
            br#"{"version":1,"serial":"AB"}"#,
        ] {
            fs::write(&path, bad).unwrap();
            let err = Identity::load_or_create(tmp.path(), &[]).unwrap_err();
            assert!(matches!(err, IdentityError::Invalid { .. }), "{err}");
            assert!(err.to_string().contains("identity.json"), "{err}");
            assert_eq!(fs::read(&path).unwrap(), bad);
        }
    }

    #[test]
    fn newer_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(IDENTITY_FILE);
        fs::write(&path, br#"{"version":2,"whatever":true}"#).unwrap();
        let err = Identity::load(tmp.path()).unwrap_err();
        assert!(
            matches!(err, IdentityError::UnsupportedVersion { version: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn aaguid_text_round_trip() {
        let text = Aaguid(FERROKEY_AAGUID).to_string();
        assert_eq!(text, "bb6ca1c2-3d44-402a-afdd-2955c41b88e9");
        assert_eq!(Aaguid::parse(&text), Some(Aaguid(FERROKEY_AAGUID)));
        assert_eq!(
            Aaguid::parse("BB6CA1C23D44402AAFDD2955C41B88E9"),
            Some(Aaguid(FERROKEY_AAGUID))
        );
        assert_eq!(Aaguid::parse("bb6ca1c2"), None);
        assert_eq!(Aaguid::parse("zz6ca1c2-3d44-402a-afdd-2955c41b88e9"), None);
    }
}
