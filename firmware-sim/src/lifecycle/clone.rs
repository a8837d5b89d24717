//! Cloning a key, as an attacker's copy of it would be: a second key with the
//! same records (credentials, counters, device secret, PIN), so both the
//! resident credentials and the non-resident credential IDs the original
//! issued work on it, but its own identity (serial), USB device and state
//! directory. Refused for a device-bound key ([`super::policy`]).
//!
//! The copy is taken on the original's own task ([`KeyRef::call`]), between
//! two reports, after its counters were written out exactly
//! (`persist_counters`), so the clone starts from the very counters the
//! original has.

use std::fs;
use std::io;
use std::path::Path;

use serde_json::json;
use zeroize::Zeroizing;

use super::policy;
use crate::events::EventKind;
use crate::fleet::{Fleet, FleetError, KeyInfo, KeyRef};
use crate::identity::Identity;
use crate::storage::write_file_atomic;

/// Why a clone was not made.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    /// The key is device-bound.
    #[error("{0}")]
    Refused(String),
    /// The fleet could not add the clone (or the original is off or gone).
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// Clones `key` into a new member of `fleet` (see the module documentation).
pub async fn clone_key(fleet: &Fleet, key: &KeyRef) -> Result<KeyInfo, CloneError> {
    let info = key.info();
    if let Some(why) = policy::refusal("clone", info.options.exportable, &info.state_dir) {
        return Err(CloneError::Refused(why));
    }
    let source = info.state_dir.clone();
    let original = key.clone();
    let added = fleet
        .add_seeded(info.options.clone(), move |target| async move {
            original
                .call(move |core| {
                    core.authenticator_mut()
                        .persist_counters()
                        .map_err(|e| anyhow::anyhow!("writing the counters out: {e:?}"))?;
                    copy_state(&source, &target)
                })
                .await?
                .map_err(FleetError::Build)
        })
        .await?;
    fleet.events().publish(
        key.id(),
        EventKind::Other("cloned".into()),
        json!({
            "cloneId": added.id.to_string(),
            "number": added.number,
            "busid": added.busid,
            "serial": added.serial,
        }),
    );
    Ok(added)
}

/// Copies the records of the key in `source` into `target` (mode 0600,
/// atomic writes) and gives `target` a fresh identity with the same AAGUID.
pub fn copy_state(source: &Path, target: &Path) -> anyhow::Result<()> {
    let original = Identity::load(source)?;
    let entries =
        fs::read_dir(source).map_err(|e| anyhow::anyhow!("reading {}: {e}", source.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_record(name) {
            continue;
        }
        let bytes = Zeroizing::new(
            fs::read(entry.path())
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", entry.path().display()))?,
        );
        write_file_atomic(&target.join(name), &bytes).map_err(|e: io::Error| {
            anyhow::anyhow!("writing {}: {e}", target.join(name).display())
        })?;
    }
    let mut identity = Identity::load_or_create(target, std::slice::from_ref(&original.serial))?;
    identity.aaguid = original.aaguid;
    identity.save(target)?;
    Ok(())
}

/// A record file (`rec-XXXXXXXX.bin`), not a temporary or other file.
fn is_record(name: &str) -> bool {
    name.strip_prefix("rec-")
        .and_then(|rest| rest.strip_suffix(".bin"))
        .is_some_and(|hex| hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::FERROKEY_AAGUID;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn records_and_aaguid_are_copied_and_the_serial_is_new() {
        let tmp = tempfile::tempdir().unwrap();
        let (source, target) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&source).unwrap();
        fs::create_dir(&target).unwrap();
        let mut identity = Identity::load_or_create(&source, &[]).unwrap();
        identity.aaguid = [9; 16];
        identity.save(&source).unwrap();
        for (name, body) in [
            ("rec-00000001.bin", &b"one"[..]),
            ("rec-0000abcd.bin", b"two"),
            ("rec-00000002.bin.tmp", b"half"),
            ("lock", b"123"),
            ("no-export", b"x"),
        ] {
            fs::write(source.join(name), body).unwrap();
        }
        copy_state(&source, &target).unwrap();
        let mut names: Vec<String> = fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["identity.json", "rec-00000001.bin", "rec-0000abcd.bin"]
        );
        assert_eq!(fs::read(target.join("rec-0000abcd.bin")).unwrap(), b"two");
        let mode = fs::metadata(target.join("rec-00000001.bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let copy = Identity::load(&target).unwrap();
        assert_eq!(copy.aaguid, [9; 16]);
        assert_ne!(copy.aaguid, FERROKEY_AAGUID);
        assert_ne!(copy.serial, identity.serial);
    }

    #[test]
    fn only_record_names_count() {
        assert!(is_record("rec-0123abcd.bin"));
        assert!(!is_record("rec-0123abcd.bin.tmp"));
        assert!(!is_record("rec-123.bin"));
        assert!(!is_record("identity.json"));
    }
}
