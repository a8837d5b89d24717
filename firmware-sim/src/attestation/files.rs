//! The files of a CA directory: PEM certificates and PKCS#8 keys (mode 0600),
//! directories created whole (built as `NAME.tmp`, then renamed), and the
//! `flock` that serializes their creation between processes.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use p256::pkcs8::DecodePrivateKey;
use p256::SecretKey;

use crate::storage::{create_private_dir, sync_dir, write_file_atomic, FILE_MODE};

/// Why a CA directory could not be read or written.
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
    #[error("generating certificates: {0}")]
    Generate(String),
    /// What was asked cannot be done with this CA.
    #[error("{0}")]
    Unsupported(String),
    /// The state directory could not be prepared.
    #[error(transparent)]
    State(#[from] crate::storage::OpenError),
}

impl From<super::issue::IssueError> for CaError {
    fn from(e: super::issue::IssueError) -> Self {
        CaError::Generate(e.0)
    }
}

/// A [`CaError::Invalid`] for `path`.
pub fn invalid(path: &Path, reason: impl Into<String>) -> CaError {
    CaError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Maps an I/O error on `path` to a [`CaError::Io`].
pub fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CaError + 'a {
    move |source| CaError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a PEM certificate file: (the PEM text, the DER).
pub fn read_cert(path: &Path) -> Result<(String, Vec<u8>), CaError> {
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

/// Reads a PKCS#8 PEM P-256 private key file.
pub fn read_key(path: &Path) -> Result<SecretKey, CaError> {
    let text = p256::elliptic_curve::zeroize::Zeroizing::new(
        fs::read_to_string(path).map_err(io_err("reading", path))?,
    );
    SecretKey::from_pkcs8_pem(&text)
        .map_err(|e| invalid(path, format!("not a PKCS#8 P-256 private key: {e}")))
}

/// Writes one file atomically, mode 0600.
pub fn write_file(path: &Path, contents: &[u8]) -> Result<(), CaError> {
    write_file_atomic(path, contents).map_err(io_err("writing", path))
}

/// Creates directory `dir` (mode 0700) holding `files`, whole or not at all:
/// they are written into `dir.tmp` (removed first if an interrupted run left
/// it), which is then renamed to `dir`. The caller holds the directory's lock.
pub fn create_dir_whole(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), CaError> {
    let parent = dir
        .parent()
        .ok_or_else(|| invalid(dir, "has no parent directory"))?;
    let mut tmp_name = dir.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = parent.join(tmp_name);
    if tmp.exists() {
        tracing::info!(path = %tmp.display(), "removing an incomplete directory left by an interrupted start");
        fs::remove_dir_all(&tmp).map_err(io_err("removing", &tmp))?;
    }
    create_private_dir(&tmp)?;
    for (name, contents) in files {
        write_file(&tmp.join(name), contents)?;
    }
    fs::rename(&tmp, dir).map_err(io_err("renaming into place", &tmp))?;
    sync_dir(parent).map_err(io_err("syncing", parent))
}

/// An exclusive `flock` on a file, waiting for it; released on drop.
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock, creating the file (0600) if needed.
    pub fn acquire_blocking(path: &Path) -> Result<Self, CaError> {
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

    #[test]
    fn a_directory_is_created_whole_and_a_stale_tmp_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sub");
        fs::create_dir(tmp.path().join("sub.tmp")).unwrap();
        fs::write(tmp.path().join("sub.tmp").join("junk"), b"x").unwrap();
        create_dir_whole(&dir, &[("a.pem", b"A"), ("b.pem", b"B")]).unwrap();
        assert!(!tmp.path().join("sub.tmp").exists());
        assert_eq!(fs::read(dir.join("a.pem")).unwrap(), b"A");
        assert!(!dir.join("junk").exists());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("b.pem")), 0o600);
    }
}
