//! File-backed, crash-safe records: the core's [`Storage`] on a Linux file system.
//!
//! # Layout
//!
//! One state directory per key (mode 0700) holds one file per record, named from
//! [`RecordKey::id`] as `rec-XXXXXXXX.bin` (eight lower-case hex digits), plus the
//! `lock` file and whatever else the key keeps beside its records (`identity.json`).
//! Every file is created with mode 0600, set explicitly rather than left to the umask.
//!
//! # Record file format (version 1)
//!
//! | offset | size | field                                                  |
//! |--------|------|--------------------------------------------------------|
//! | 0      | 4    | magic `FKRC`                                           |
//! | 4      | 2    | format version, little endian (1)                      |
//! | 6      | 2    | reserved, zero                                         |
//! | 8      | 4    | record id, little endian (must match the file name)    |
//! | 12     | 4    | payload length, little endian                          |
//! | 16     | 32   | SHA-256 over bytes 0..16 followed by the payload       |
//! | 48     | n    | payload                                                |
//!
//! # Durability
//!
//! A write goes to `rec-XXXXXXXX.bin.tmp` in the same directory, is fsynced, renamed
//! over the record and the directory is fsynced, so after a crash a record holds
//! either its old or its new value, and `write` returning `Ok` means the new value
//! survives a power cut. Leftover `.tmp` files are removed when the store is opened.
//!
//! # Validation and locking
//!
//! [`FileStorage::open`] reads and validates every record into an in-memory cache
//! (reads never touch the disk afterwards). A corrupt record, or one written by a
//! newer format version, is an [`OpenError`] naming the file; the file is left
//! exactly as it was. The open store holds an exclusive `flock` on `lock`, so two
//! processes never share a state directory; [`FileStorage::open_snapshot`] reads
//! without the lock, for inspection while a server runs.
//!
//! # Secrets in memory
//!
//! Records hold the key's secrets (the device secret, the PIN verifier). Every
//! copy this module makes of a record's bytes (the cache, file contents read
//! or encoded for a write) is a [`Secret`], zeroized when it is dropped or
//! replaced, and `Debug` shows record ids and lengths only.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrokey::platform::{RecordKey, Storage, StorageError, MAX_RECORD_SIZE};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Bytes of a record: zeroized (the whole allocation) when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// The magic bytes at the start of every record file.
const MAGIC: [u8; 4] = *b"FKRC";
/// The record file format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the record file header, in bytes.
const HEADER_LEN: usize = 48;
/// Name of the lock file inside a state directory.
pub const LOCK_FILE: &str = "lock";
/// Suffix of temporary files (a write in progress, or left over by a crash).
const TMP_SUFFIX: &str = ".tmp";

/// Mode of every directory this module creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file this module creates.
pub const FILE_MODE: u32 = 0o600;

/// Why a state directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "creating directory", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A record file is damaged. It has been left untouched.
    #[error("corrupt state file {path}: {reason} (the file was left untouched; restore it from a backup or remove it to lose that record)")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A record file was written by an unknown (newer) format version.
    #[error("state file {path} has format version {version}, but this ferrokey reads only version {FORMAT_VERSION} (was it written by a newer ferrokey?); the file was left untouched")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in it.
        version: u16,
    },
    /// Another process holds the directory's lock.
    #[error("state directory {dir} is in use by another ferrokey process{}", pid_note(*.pid))]
    Locked {
        /// The locked directory.
        dir: PathBuf,
        /// The process id recorded in the lock file, if readable.
        pid: Option<u32>,
    },
}

fn pid_note(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!(" (pid {pid})"),
        None => String::new(),
    }
}

impl OpenError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        OpenError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        OpenError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Creates `dir` (and missing parents) with mode 0700 and makes sure `dir` itself is 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), OpenError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| OpenError::io("creating directory", dir, e))?;
    let meta = fs::metadata(dir).map_err(|e| OpenError::io("inspecting directory", dir, e))?;
    if !meta.is_dir() {
        return Err(OpenError::io(
            "opening state directory",
            dir,
            io::Error::other("not a directory"),
        ));
    }
    if meta.permissions().mode() & 0o777 != DIR_MODE {
        fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
            .map_err(|e| OpenError::io("setting permissions of", dir, e))?;
    }
    Ok(())
}

/// Fsyncs a directory, making renames and removals inside it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Atomically and durably replaces `path` with `contents` (mode 0600): writes
/// `<path>.tmp`, fsyncs it, renames it over `path` and fsyncs the directory.
pub fn write_file_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let mut tmp_name = path.as_os_str().to_os_string();
    tmp_name.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp_name);
    #[cfg(feature = "failpoints")]
    failpoint::hit(failpoint::Boundary::BeforeTmp, path);
    let result = write_tmp_and_rename(&tmp, path, contents);
    if result.is_err() {
        // Best effort: a leftover is also removed at the next open.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir)
}

fn write_tmp_and_rename(tmp: &Path, path: &Path, contents: &[u8]) -> io::Result<()> {
    match fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(tmp)?;
    // The umask may have cleared bits of FILE_MODE but never adds any; make it exact.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    #[cfg(feature = "failpoints")]
    {
        // Two halves, so a crash point sees the temporary file torn.
        let (first, rest) = contents.split_at(contents.len() / 2);
        file.write_all(first)?;
        failpoint::hit(failpoint::Boundary::PartialWrite, path);
        file.write_all(rest)?;
    }
    #[cfg(not(feature = "failpoints"))]
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    #[cfg(feature = "failpoints")]
    failpoint::hit(failpoint::Boundary::AfterWrite, path);
    fs::rename(tmp, path)?;
    #[cfg(feature = "failpoints")]
    failpoint::hit(failpoint::Boundary::BeforeDirSync, path);
    Ok(())
}

/// Crash points for tests (cargo feature `failpoints`, off in normal builds).
///
/// Every write boundary of [`write_file_atomic`] and of a record removal calls
/// the hook the current thread installed, with the boundary and the file
/// concerned, while the directory holds exactly what a crash at that moment
/// would leave. A crash-consistency test copies the directory there (its
/// "disk") and later restarts a key from each copy; the write itself goes on.
#[cfg(feature = "failpoints")]
pub mod failpoint {
    use std::cell::RefCell;
    use std::path::Path;

    /// A write boundary.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Boundary {
        /// Before the temporary file is created.
        BeforeTmp,
        /// Half the bytes are in the temporary file (a torn write).
        PartialWrite,
        /// The temporary file is complete and fsynced; the rename has not
        /// happened (also what a power cut before the directory fsync may leave).
        AfterWrite,
        /// Renamed over the target; the directory is not fsynced yet.
        BeforeDirSync,
        /// Before a record file is removed.
        BeforeRemove,
        /// Removed; the directory is not fsynced yet.
        AfterRemove,
    }

    type Hook = Box<dyn FnMut(Boundary, &Path)>;

    thread_local! {
        static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Installs `hook` for writes made by the current thread (replacing any).
    pub fn set_hook(hook: impl FnMut(Boundary, &Path) + 'static) {
        HOOK.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    }

    /// Removes the current thread's hook.
    pub fn clear_hook() {
        HOOK.with(|h| *h.borrow_mut() = None);
    }

    pub(super) fn hit(boundary: Boundary, path: &Path) {
        HOOK.with(|h| {
            if let Some(hook) = h.borrow_mut().as_mut() {
                hook(boundary, path);
            }
        });
    }
}

/// An exclusive advisory lock (`flock`) on a state directory's `lock` file,
/// released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` without waiting; [`OpenError::Locked`] if another
    /// open file description (this or another process) holds it.
    pub fn acquire(dir: &Path) -> Result<Self, OpenError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| OpenError::io("opening lock file", &path, e))?;
        if let Err(err) = try_flock(&file) {
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(OpenError::Locked {
                    dir: dir.to_path_buf(),
                    pid,
                });
            }
            return Err(OpenError::io("locking", &path, err));
        }
        // Record our pid for the error message of whoever tries next (informative only).
        let _ = file.set_permissions(Permissions::from_mode(FILE_MODE));
        if file.set_len(0).is_ok() {
            let _ = writeln!(file, "{}", std::process::id());
        }
        Ok(DirLock { _file: file })
    }
}

/// How long [`DirLock::acquire`] retries a lock that is held. A child process
/// forked by another thread of the holder's process (between fork and exec) shares
/// its lock for a moment after the holder released it; a short retry rides that out.
const LOCK_RETRY: Duration = Duration::from_millis(300);

/// `flock(LOCK_EX | LOCK_NB)`, retried for [`LOCK_RETRY`] while the lock is held.
fn try_flock(file: &File) -> io::Result<()> {
    let deadline = Instant::now() + LOCK_RETRY;
    loop {
        // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        let busy = err.raw_os_error() == Some(libc::EWOULDBLOCK);
        if err.kind() != io::ErrorKind::Interrupted && (!busy || Instant::now() >= deadline) {
            return Err(err);
        }
        if busy {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether a [`FileStorage`] writes through to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Locked, writes are durable.
    Exclusive,
    /// Unlocked snapshot: writes change only the in-memory view.
    Snapshot,
}

/// The core's [`Storage`] on a state directory. See the module documentation.
pub struct FileStorage {
    dir: PathBuf,
    cache: BTreeMap<u32, Secret>,
    mode: Mode,
    _lock: Option<DirLock>,
}

/// Record ids and lengths only: the bytes are the key's secrets.
impl std::fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStorage")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .field(
                "records",
                &self
                    .cache
                    .iter()
                    .map(|(id, value)| (format!("{id:08x}"), value.len()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl FileStorage {
    /// Opens (creating it if needed) the state directory `dir` for exclusive use:
    /// takes its lock, removes leftover temporary files and loads and validates
    /// every record.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        create_private_dir(dir)?;
        let lock = DirLock::acquire(dir)?;
        let cache = load_records(dir, true)?;
        Ok(FileStorage {
            dir: dir.to_path_buf(),
            cache,
            mode: Mode::Exclusive,
            _lock: Some(lock),
        })
    }

    /// Reads the records of an existing state directory without locking it, for
    /// inspection (`ferrokey list`) while a server may be running. Every record is
    /// read whole and atomically replaced by writers, so each is consistent. Writes
    /// to the returned store change only its in-memory view and are discarded.
    pub fn open_snapshot(dir: &Path) -> Result<Self, OpenError> {
        let cache = load_records(dir, false)?;
        Ok(FileStorage {
            dir: dir.to_path_buf(),
            cache,
            mode: Mode::Snapshot,
            _lock: None,
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ids of the stored records, in ascending order.
    pub fn record_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.cache.keys().copied()
    }

    /// Removes every record (a factory reset of the key's secrets, credentials and
    /// PIN); other files in the directory (identity, lock) are kept.
    pub fn clear(&mut self) -> Result<(), StorageError> {
        let ids: Vec<u32> = self.cache.keys().copied().collect();
        for id in ids {
            self.remove_id(id)?;
        }
        Ok(())
    }

    fn record_path(&self, id: u32) -> PathBuf {
        self.dir.join(record_file_name(id))
    }

    fn remove_id(&mut self, id: u32) -> Result<(), StorageError> {
        if self.mode == Mode::Snapshot {
            self.cache.remove(&id);
            return Ok(());
        }
        if !self.cache.contains_key(&id) {
            return Ok(());
        }
        let path = self.record_path(id);
        #[cfg(feature = "failpoints")]
        failpoint::hit(failpoint::Boundary::BeforeRemove, &path);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "removing a record failed");
                return Err(StorageError::Io);
            }
        }
        self.cache.remove(&id);
        #[cfg(feature = "failpoints")]
        failpoint::hit(failpoint::Boundary::AfterRemove, &path);
        sync_dir(&self.dir).map_err(|e| {
            tracing::error!(dir = %self.dir.display(), error = %e, "fsync of the state directory failed");
            StorageError::Io
        })
    }
}

impl Storage for FileStorage {
    fn read(&mut self, key: RecordKey, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
        match self.cache.get(&key.id()) {
            None => Ok(None),
            Some(value) => {
                let dest = buf.get_mut(..value.len()).ok_or(StorageError::TooLarge)?;
                dest.copy_from_slice(value);
                Ok(Some(value.len()))
            }
        }
    }

    fn write(&mut self, key: RecordKey, value: &[u8]) -> Result<(), StorageError> {
        if value.len() > MAX_RECORD_SIZE {
            return Err(StorageError::TooLarge);
        }
        let id = key.id();
        if self.mode == Mode::Exclusive {
            let path = self.record_path(id);
            let bytes = encode_record(id, value);
            if let Err(e) = write_file_atomic(&path, &bytes) {
                tracing::error!(path = %path.display(), error = %e, "writing a record failed");
                // If only the final directory fsync failed, the new value is already
                // visible; keep the cache equal to what is on disk.
                let on_disk = fs::read(&path).map(Secret::new);
                if on_disk.is_ok_and(|b| *b == *bytes) {
                    self.cache.insert(id, Secret::new(value.to_vec()));
                }
                return Err(StorageError::Io);
            }
        }
        self.cache.insert(id, Secret::new(value.to_vec()));
        Ok(())
    }

    fn remove(&mut self, key: RecordKey) -> Result<(), StorageError> {
        self.remove_id(key.id())
    }
}

/// The file name of record `id`.
pub fn record_file_name(id: u32) -> String {
    format!("rec-{id:08x}.bin")
}

/// The record id a file name stands for, if it is a record file name.
fn parse_record_file_name(name: &str) -> Option<u32> {
    let hex = name.strip_prefix("rec-")?.strip_suffix(".bin")?;
    if hex.len() != 8 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

fn checksum(header_start: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(header_start);
    hasher.update(payload);
    hasher.finalize().into()
}

/// Serializes record `id` with value `value` into the file format.
fn encode_record(id: u32, value: &[u8]) -> Secret {
    // Sized once: a growing Vec would leave copies behind in freed memory.
    let mut out = Secret::new(Vec::with_capacity(HEADER_LEN + value.len()));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    // value.len() <= MAX_RECORD_SIZE, which fits a u32.
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    let sum = checksum(&out, value);
    out.extend_from_slice(&sum);
    out.extend_from_slice(value);
    out
}

fn le_u16(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(src) = bytes.get(at..at + 2) {
        b.copy_from_slice(src);
    }
    u16::from_le_bytes(b)
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

/// Parses and validates the contents of record file `path`, which should hold record `id`.
fn decode_record(path: &Path, id: u32, bytes: &[u8]) -> Result<Secret, OpenError> {
    if bytes.len() < 8 {
        return Err(OpenError::corrupt(
            path,
            format!("{} bytes is shorter than the header", bytes.len()),
        ));
    }
    if bytes[..4] != MAGIC {
        return Err(OpenError::corrupt(
            path,
            "not a ferrokey record (bad magic)",
        ));
    }
    let version = le_u16(bytes, 4);
    if version != FORMAT_VERSION {
        return Err(OpenError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    let (header, payload) = match bytes.split_at_checked(HEADER_LEN) {
        Some(parts) => parts,
        None => {
            return Err(OpenError::corrupt(
                path,
                format!("{} bytes is shorter than the header", bytes.len()),
            ))
        }
    };
    if le_u16(header, 6) != 0 {
        return Err(OpenError::corrupt(
            path,
            "reserved header field is not zero",
        ));
    }
    let stored_id = le_u32(header, 8);
    if stored_id != id {
        return Err(OpenError::corrupt(
            path,
            format!("holds record {stored_id:08x}, not the one its name says"),
        ));
    }
    let len = le_u32(header, 12) as usize;
    if len > MAX_RECORD_SIZE {
        return Err(OpenError::corrupt(
            path,
            format!("length {len} exceeds the maximum record size"),
        ));
    }
    if payload.len() != len {
        return Err(OpenError::corrupt(
            path,
            format!(
                "header says {len} payload bytes but the file has {} (truncated or extended)",
                payload.len()
            ),
        ));
    }
    if checksum(&header[..16], payload)[..] != header[16..HEADER_LEN] {
        return Err(OpenError::corrupt(path, "checksum mismatch"));
    }
    Ok(Secret::new(payload.to_vec()))
}

/// The record file codec, for the fuzz targets (`fuzz/`): not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// [`encode_record`]: record `id` holding `value` (at most
    /// [`MAX_RECORD_SIZE`] bytes, which the storage's `write` ensures), in the file format.
    pub fn encode(id: u32, value: &[u8]) -> Secret {
        encode_record(id, value)
    }

    /// [`decode_record`]: the value of record `id` from a file's bytes.
    pub fn decode(id: u32, bytes: &[u8]) -> Result<Secret, OpenError> {
        decode_record(Path::new("fuzz-input"), id, bytes)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn decodes_what_it_encodes_and_only_for_that_id() {
            let file = super::encode(7, b"value");
            assert_eq!(&super::decode(7, &file).unwrap()[..], b"value");
            assert!(super::decode(8, &file).is_err());
            assert!(super::decode(7, &file[..file.len() - 1]).is_err());
        }
    }
}

/// A file's contents read into one allocation of the file's size (plus one
/// byte to see the end), so no grown-and-freed copy of a record is left behind.
fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let cap = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .min(HEADER_LEN + MAX_RECORD_SIZE + 1);
    let mut bytes = Vec::with_capacity(cap + 1);
    // A file larger than any record is cut here and refused by decode_record.
    file.take(cap as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Loads every record of `dir`. With `clean`, leftover temporary files are removed.
fn load_records(dir: &Path, clean: bool) -> Result<BTreeMap<u32, Secret>, OpenError> {
    let entries = fs::read_dir(dir).map_err(|e| OpenError::io("reading directory", dir, e))?;
    let mut cache = BTreeMap::new();
    let mut removed_tmp = false;
    for entry in entries {
        let entry = entry.map_err(|e| OpenError::io("reading directory", dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(TMP_SUFFIX) {
            if clean {
                tracing::info!(path = %path.display(), "removing a temporary file left by an interrupted write");
                fs::remove_file(&path)
                    .map_err(|e| OpenError::io("removing temporary file", &path, e))?;
                removed_tmp = true;
            }
            continue;
        }
        let Some(id) = parse_record_file_name(&name) else {
            continue; // identity.json, lock, or a file that is not ours
        };
        if RecordKey::from_id(id).is_none() {
            return Err(OpenError::corrupt(
                &path,
                format!("record id {id:08x} is unknown to this ferrokey"),
            ));
        }
        let bytes = Secret::new(read_whole(&path).map_err(|e| OpenError::io("reading", &path, e))?);
        let value = decode_record(&path, id, &bytes)?;
        cache.insert(id, value);
    }
    if removed_tmp {
        sync_dir(dir).map_err(|e| OpenError::io("syncing directory", dir, e))?;
    }
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn read_value(s: &mut FileStorage, key: RecordKey) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; MAX_RECORD_SIZE];
        s.read(key, &mut buf).unwrap().map(|n| buf[..n].to_vec())
    }

    #[test]
    fn round_trip_and_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("key-1");
        {
            let mut s = FileStorage::open(&dir).unwrap();
            assert_eq!(read_value(&mut s, RecordKey::Device), None);
            s.write(RecordKey::Device, b"device state").unwrap();
            s.write(RecordKey::Credential(7), &[0xAB; MAX_RECORD_SIZE])
                .unwrap();
            s.write(RecordKey::Pin, b"").unwrap();
            assert_eq!(
                read_value(&mut s, RecordKey::Device).as_deref(),
                Some(&b"device state"[..])
            );
        }
        assert!(dir.join("rec-00000001.bin").exists());
        assert!(dir.join("rec-00010007.bin").exists());
        let mut s = FileStorage::open(&dir).unwrap();
        assert_eq!(
            read_value(&mut s, RecordKey::Device).as_deref(),
            Some(&b"device state"[..])
        );
        assert_eq!(
            read_value(&mut s, RecordKey::Credential(7)),
            Some(vec![0xAB; MAX_RECORD_SIZE])
        );
        assert_eq!(read_value(&mut s, RecordKey::Pin), Some(vec![]));
        assert_eq!(s.record_ids().collect::<Vec<_>>(), vec![1, 2, 0x1_0007]);
    }

    #[test]
    fn too_large_and_small_buffer() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileStorage::open(tmp.path()).unwrap();
        assert_eq!(
            s.write(RecordKey::Device, &[0; MAX_RECORD_SIZE + 1]),
            Err(StorageError::TooLarge)
        );
        s.write(RecordKey::Device, &[1; 10]).unwrap();
        let mut small = [0u8; 9];
        assert_eq!(
            s.read(RecordKey::Device, &mut small),
            Err(StorageError::TooLarge)
        );
    }

    #[test]
    fn replace_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let mut s = FileStorage::open(dir).unwrap();
            s.write(RecordKey::Credential(1), b"old").unwrap();
            s.write(RecordKey::Credential(1), b"new value").unwrap();
            s.write(RecordKey::Credential(2), b"gone").unwrap();
            s.remove(RecordKey::Credential(2)).unwrap();
            s.remove(RecordKey::Credential(3)).unwrap(); // absent: not an error
        }
        let names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != LOCK_FILE)
            .collect();
        assert_eq!(names, vec!["rec-00010001.bin".to_string()]);
        let mut s = FileStorage::open(dir).unwrap();
        assert_eq!(
            read_value(&mut s, RecordKey::Credential(1)).as_deref(),
            Some(&b"new value"[..])
        );
        assert_eq!(read_value(&mut s, RecordKey::Credential(2)), None);
    }

    #[test]
    fn atomic_replace_leaves_old_value_when_interrupted() {
        // A crash between writing the temporary file and the rename leaves the old
        // record plus a temporary file; the next open keeps the old value and
        // removes the leftover.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let mut s = FileStorage::open(dir).unwrap();
            s.write(RecordKey::Device, b"committed").unwrap();
        }
        let leftover = dir.join("rec-00000001.bin.tmp");
        fs::write(&leftover, encode_record(1, b"half-written")).unwrap();
        fs::write(dir.join("identity.json.tmp"), b"{").unwrap();
        let mut s = FileStorage::open(dir).unwrap();
        assert_eq!(
            read_value(&mut s, RecordKey::Device).as_deref(),
            Some(&b"committed"[..])
        );
        assert!(!leftover.exists());
        assert!(!dir.join("identity.json.tmp").exists());
    }

    #[test]
    fn snapshot_does_not_clean_or_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut s = FileStorage::open(dir).unwrap();
        s.write(RecordKey::Device, b"v1").unwrap();
        let leftover = dir.join("rec-00000002.bin.tmp");
        fs::write(&leftover, b"partial").unwrap();
        // Works while the exclusive store is open (no lock taken).
        let mut snap = FileStorage::open_snapshot(dir).unwrap();
        assert!(leftover.exists());
        snap.write(RecordKey::Device, b"in memory only").unwrap();
        snap.remove(RecordKey::Device).unwrap();
        assert_eq!(read_value(&mut snap, RecordKey::Device), None);
        drop(snap);
        drop(s);
        let mut s = FileStorage::open(dir).unwrap();
        assert_eq!(
            read_value(&mut s, RecordKey::Device).as_deref(),
            Some(&b"v1"[..])
        );
    }

    fn corrupt_case(mutate: impl FnOnce(&mut Vec<u8>)) -> (OpenError, Vec<u8>, Vec<u8>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let mut s = FileStorage::open(dir).unwrap();
            s.write(RecordKey::Credential(5), b"credential bytes")
                .unwrap();
        }
        let path = dir.join("rec-00010005.bin");
        let mut bytes = fs::read(&path).unwrap();
        mutate(&mut bytes);
        fs::write(&path, &bytes).unwrap();
        let err = FileStorage::open(dir).unwrap_err();
        let after = fs::read(&path).unwrap();
        (err, bytes, after)
    }

    #[test]
    fn flipped_payload_byte_is_detected_and_file_untouched() {
        let (err, before, after) = corrupt_case(|b| {
            let last = b.len() - 1;
            b[last] ^= 0x01;
        });
        assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("rec-00010005.bin"), "{msg}");
        assert!(msg.contains("checksum"), "{msg}");
        assert_eq!(before, after);
    }

    #[test]
    fn flipped_header_byte_is_detected() {
        let (err, _, _) = corrupt_case(|b| b[12] ^= 0x01);
        assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
        let (err, _, _) = corrupt_case(|b| b[20] ^= 0x80);
        assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
        let (err, _, _) = corrupt_case(|b| b[0] = b'X');
        assert!(err.to_string().contains("magic"), "{err}");
        let (err, _, _) = corrupt_case(|b| b[8] ^= 0x01);
        assert!(
            err.to_string().contains("not the one its name says"),
            "{err}"
        );
    }

    #[test]
    fn truncation_is_detected() {
        let (err, before, after) = corrupt_case(|b| b.truncate(b.len() - 3));
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_eq!(before, after);
        let (err, _, _) = corrupt_case(|b| b.truncate(20));
        assert!(err.to_string().contains("shorter than the header"), "{err}");
        let (err, _, _) = corrupt_case(|b| b.clear());
        assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn unknown_version_is_refused() {
        let (err, before, after) = corrupt_case(|b| b[4] = 2);
        match &err {
            OpenError::UnsupportedVersion { path, version } => {
                assert_eq!(*version, 2);
                assert!(path.ends_with("rec-00010005.bin"));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("newer"), "{err}");
        assert_eq!(before, after);
    }

    #[test]
    fn unknown_record_id_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rec-00000063.bin");
        fs::write(&path, encode_record(0x63, b"x")).unwrap();
        let err = FileStorage::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("rec-00000063.bin"), "{err}");
        assert!(path.exists());
    }

    #[test]
    fn permissions_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state").join("key-1");
        // Even with a permissive umask-independent setup, modes are exact.
        let mut s = FileStorage::open(&dir).unwrap();
        s.write(RecordKey::Device, b"secret").unwrap();
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&tmp.path().join("state")), 0o700);
        assert_eq!(mode_of(&dir.join("rec-00000001.bin")), 0o600);
        assert_eq!(mode_of(&dir.join(LOCK_FILE)), 0o600);
    }

    #[test]
    fn existing_dir_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("key-1");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        let _s = FileStorage::open(&dir).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let tmp = tempfile::tempdir().unwrap();
        let first = FileStorage::open(tmp.path()).unwrap();
        let err = FileStorage::open(tmp.path()).unwrap_err();
        match &err {
            OpenError::Locked { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        FileStorage::open(tmp.path()).unwrap();
    }

    #[test]
    fn clear_removes_records_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(dir.join("identity.json"), b"{}").unwrap();
        let mut s = FileStorage::open(dir).unwrap();
        s.write(RecordKey::Device, b"a").unwrap();
        s.write(RecordKey::Credential(0), b"b").unwrap();
        s.clear().unwrap();
        assert_eq!(s.record_ids().count(), 0);
        drop(s);
        assert!(dir.join("identity.json").exists());
        assert_eq!(FileStorage::open(dir).unwrap().record_ids().count(), 0);
    }

    #[test]
    fn file_names() {
        assert_eq!(record_file_name(0x1_0000), "rec-00010000.bin");
        assert_eq!(parse_record_file_name("rec-00010000.bin"), Some(0x1_0000));
        assert_eq!(parse_record_file_name("rec-0001000.bin"), None);
        assert_eq!(parse_record_file_name("rec-0001000G.bin"), None);
        assert_eq!(parse_record_file_name("rec-0001000A.bin"), None);
        assert_eq!(parse_record_file_name("identity.json"), None);
    }

    #[test]
    fn write_file_atomic_sets_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f.json");
        write_file_atomic(&path, b"one").unwrap();
        write_file_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), 0o600);
        assert!(!tmp.path().join("f.json.tmp").exists());
    }
}
