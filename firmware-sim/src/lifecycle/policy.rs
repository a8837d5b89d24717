//! Who may copy a key's credentials out: the refusal rule of clone and
//! export, and the `no-export` marker that keeps a device-bound key
//! device-bound.
//!
//! A key is device-bound when it was added with `ferrokey:exportable: false`
//! or served with `--no-export`. The first time such a key is built, the
//! marker file [`NO_EXPORT_MARKER`] is written into its state directory; from
//! then on the key refuses export and clone (and Get Credentials hands out no
//! private keys) whatever options it is started with, as a real key's secrets
//! never leave it. Only deleting the state directory lifts it (`ferrokey
//! reset` keeps it, as it keeps the identity).

use std::io;
use std::path::Path;

use crate::storage::write_file_atomic;

/// The marker file of a device-bound key, in its state directory.
pub const NO_EXPORT_MARKER: &str = "no-export";

const MARKER_TEXT: &[u8] =
    b"This key is device-bound (--no-export or ferrokey:exportable false): export and clone are refused.\n";

/// Whether the key in `dir` carries the device-bound marker.
pub fn is_marked(dir: &Path) -> bool {
    dir.join(NO_EXPORT_MARKER).exists()
}

/// Settles the export policy of the key in `dir` when it is built: writes
/// the marker when `exportable` is false, and returns whether the key may
/// hand out private keys (`exportable` and no marker).
pub fn settle(dir: &Path, exportable: bool) -> io::Result<bool> {
    if !exportable && !is_marked(dir) {
        write_file_atomic(&dir.join(NO_EXPORT_MARKER), MARKER_TEXT)?;
    }
    Ok(exportable && !is_marked(dir))
}

/// Why the key with these options and state cannot be exported or cloned,
/// or `None` when it can. `what` names the operation ("export", "clone").
pub fn refusal(what: &str, exportable: bool, dir: &Path) -> Option<String> {
    if !exportable {
        Some(format!(
            "{what} refused: the key is device-bound (added with ferrokey:exportable false or served with --no-export), \
             and a device-bound key's private keys never leave it"
        ))
    } else if is_marked(dir) {
        Some(format!(
            "{what} refused: the key is device-bound ({} marks it so; it was once started with --no-export or \
             ferrokey:exportable false, which a restart does not lift; delete the state to start afresh)",
            dir.join(NO_EXPORT_MARKER).display()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exportable_key_is_not_refused_and_leaves_no_marker() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(settle(tmp.path(), true).unwrap());
        assert!(!is_marked(tmp.path()));
        assert_eq!(refusal("export", true, tmp.path()), None);
    }

    #[test]
    fn a_device_bound_key_stays_device_bound_after_a_restart_without_the_flag() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!settle(tmp.path(), false).unwrap());
        assert!(is_marked(tmp.path()));
        let refused = refusal("export", false, tmp.path()).unwrap();
        assert!(refused.contains("device-bound"), "{refused}");
        // Restarted without --no-export: the marker still refuses.
        assert!(!settle(tmp.path(), true).unwrap());
        let refused = refusal("clone", true, tmp.path()).unwrap();
        assert!(refused.starts_with("clone refused"), "{refused}");
        assert!(refused.contains(NO_EXPORT_MARKER), "{refused}");
    }

    #[test]
    fn the_marker_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        settle(tmp.path(), false).unwrap();
        let mode = std::fs::metadata(tmp.path().join(NO_EXPORT_MARKER))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
