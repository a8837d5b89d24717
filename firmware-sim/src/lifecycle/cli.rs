//! `ferrokey export --cxf` and `ferrokey import --cxf FILE`: migration on the
//! state of a **stopped** key (`--state-dir ROOT --key N`). The key's lock is
//! taken, so a key a server is running is refused with a clear message (use
//! the control API's `.../export` and `.../import` for a running key).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ferrokey::platform::{PresenceStatus, UserPresence};

use super::{api, cxf, migrate, policy};
use crate::attestation::KeyAttestation;
use crate::cli::state::{key_dir, start_authenticator, state_dir, CoreFlags, KeyApp};
use crate::cli::StateArgs;
use crate::identity::Identity;
use crate::storage::{write_file_atomic, FileStorage};

/// Options of `ferrokey export`.
#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Write the FIDO Credential Exchange Format (CXF JSON); the only format,
    /// required so that others can come later.
    #[arg(long, required = true)]
    pub cxf: bool,
    /// The key to export (its state is <state-dir>/key-N).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub key: u32,
    /// Write the document to FILE (mode 0600) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Export passkeys whose signature counter is above 0 too (CXF leaves
    /// them out: the copy restarts at 0, which a relying party checking
    /// counters sees as a clone).
    #[arg(long)]
    pub include_used: bool,
}

/// Options of `ferrokey import`.
#[derive(Clone, Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The CXF document (JSON) to import; all of its passkeys or none.
    #[arg(long, value_name = "FILE")]
    pub cxf: PathBuf,
    /// The key to import into (its state is <state-dir>/key-N).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub key: u32,
    /// Mark the imported credentials backed up (BE=1, BS=1), as a passkey
    /// provider's are; without it they are device-bound (BE=0, BS=0).
    #[arg(long)]
    pub backed_up: bool,
}

/// No presence: migration asks for none.
struct NoPresence;

impl UserPresence for NoPresence {
    fn request(&mut self, _now_ms: u64) {}
    fn poll(&mut self, _now_ms: u64) -> PresenceStatus {
        PresenceStatus::Denied
    }
    fn cancel(&mut self) {}
}

/// Opens a stopped key's state (taking its lock) with private keys readable.
fn open_key(dir: &Path, n: u32) -> Result<KeyApp<NoPresence>> {
    if !dir.is_dir() {
        bail!("there is no key {n} ({} does not exist)", dir.display());
    }
    let storage = FileStorage::open(dir).with_context(|| {
        format!(
            "key-{n} is in use: stop the ferrokey serving it, or use the control API's .../export and .../import"
        )
    })?;
    let identity = Identity::load(dir)?;
    start_authenticator(
        dir,
        storage,
        NoPresence,
        &identity,
        &KeyAttestation::without_certificates(),
        CoreFlags {
            exportable: true,
            ..CoreFlags::default()
        },
    )
}

/// `ferrokey export --cxf`.
pub fn export(args: &ExportArgs) -> Result<()> {
    let dir = key_dir(&state_dir(&args.state)?, args.key);
    if let Some(why) = policy::refusal("export", true, &dir) {
        bail!("{why}");
    }
    let mut app = open_key(&dir, args.key)?;
    let serial = Identity::load(&dir)?.serial;
    let collected = migrate::collect(&mut app, args.include_used).map_err(|e| anyhow!(e))?;
    drop(app);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text =
        cxf::to_document(&collected.passkeys, serial.as_bytes(), now).map_err(|e| anyhow!(e))?;
    match &args.out {
        Some(path) => write_file_atomic(path, format!("{}\n", &*text).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    }
    eprintln!(
        "exported {} passkey(s) from key-{}",
        collected.passkeys.len(),
        args.key
    );
    for s in &collected.skipped {
        eprintln!(
            "left out (signCount {} > 0; --include-used exports it): rp={} credential={}",
            s.sign_count, s.rp_id, s.credential_id
        );
    }
    Ok(())
}

/// `ferrokey import --cxf FILE`.
pub fn import(args: &ImportArgs) -> Result<()> {
    let dir = key_dir(&state_dir(&args.state)?, args.key);
    let text = zeroize::Zeroizing::new(
        std::fs::read(&args.cxf).with_context(|| format!("reading {}", args.cxf.display()))?,
    );
    let value: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| anyhow!("{}: the CXF document is not JSON: {e}", args.cxf.display()))?;
    let read = cxf::from_value(api::unwrap_document(&value))
        .map_err(|e| anyhow!("{}: {e}; nothing was imported", args.cxf.display()))?;
    drop(value);
    let mut app = open_key(&dir, args.key)?;
    let backed_up = args.backed_up.then_some(true).or(Some(false));
    let imported = migrate::import_all(&mut app, &read.passkeys, backed_up)
        .map_err(|failure| anyhow!("{failure}"))?;
    println!(
        "imported {} passkey(s) into key-{} ({} other credential(s) left out)",
        imported.len(),
        args.key,
        read.ignored
    );
    for id in imported {
        println!("  credential {id}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::webauthn::credential::PrivateKey;
    use cxf::Passkey;
    use zeroize::Zeroizing;

    fn fresh_key(root: &Path, n: u32) -> PathBuf {
        let dir = key_dir(root, n);
        let storage = FileStorage::open(&dir).unwrap();
        Identity::load_or_create(&dir, &[]).unwrap();
        drop(storage);
        dir
    }

    fn passkey(n: u8) -> Passkey {
        Passkey {
            credential_id: vec![n; 16],
            rp_id: "example.com".into(),
            user_handle: vec![n],
            user_name: "alice".into(),
            user_display_name: String::new(),
            private_key: PrivateKey::P256(Zeroizing::new([n; 32])),
            large_blob: None,
        }
    }

    fn resident_ids(dir: &Path) -> Vec<(Vec<u8>, u32, bool)> {
        let mut app = open_key(dir, 1).unwrap();
        let mut out = Vec::new();
        app.visit_credentials(|c| {
            if c.resident {
                out.push((c.id.to_vec(), c.sign_count, c.backup_state))
            }
        })
        .unwrap();
        out
    }

    #[test]
    fn import_then_export_round_trips_and_a_duplicate_imports_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fresh_key(tmp.path(), 1);
        let mut app = open_key(&dir, 1).unwrap();
        let ids = migrate::import_all(&mut app, &[passkey(1), passkey(2)], Some(true)).unwrap();
        assert_eq!(ids.len(), 2);
        // All or nothing: passkey 3 is new, passkey 1 is there already.
        let failure = migrate::import_all(&mut app, &[passkey(3), passkey(1)], None).unwrap_err();
        assert!(!failure.key_side);
        assert!(failure.to_string().contains("nothing was imported"));
        let collected = migrate::collect(&mut app, false).unwrap();
        let mut back = collected.passkeys;
        back.sort_by(|a, b| a.credential_id.cmp(&b.credential_id));
        assert_eq!(back, vec![passkey(1), passkey(2)]);
        drop(app);
        let held = resident_ids(&dir);
        assert_eq!(held.len(), 2, "{held:?}");
        assert!(held.iter().all(|(_, count, bs)| *count == 0 && *bs));
    }

    #[test]
    fn used_passkeys_are_left_out_unless_asked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fresh_key(tmp.path(), 1);
        let mut app = open_key(&dir, 1).unwrap();
        migrate::import_all(&mut app, &[passkey(1), passkey(2)], None).unwrap();
        let props = ferrokey::authenticator::instrument::CredentialProperties {
            sign_count: Some(5),
            ..Default::default()
        };
        assert!(app.set_credential_properties(&[2; 16], &props).unwrap());
        let strict = migrate::collect(&mut app, false).unwrap();
        assert_eq!(strict.passkeys, vec![passkey(1)]);
        assert_eq!(strict.skipped.len(), 1);
        assert_eq!(strict.skipped[0].sign_count, 5);
        assert_eq!(migrate::collect(&mut app, true).unwrap().passkeys.len(), 2);
    }

    #[test]
    fn a_device_bound_core_hands_out_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fresh_key(tmp.path(), 1);
        let mut app = open_key(&dir, 1).unwrap();
        migrate::import_all(&mut app, &[passkey(1)], None).unwrap();
        drop(app);
        let storage = FileStorage::open(&dir).unwrap();
        let mut bound = start_authenticator(
            &dir,
            storage,
            NoPresence,
            &Identity::load(&dir).unwrap(),
            &KeyAttestation::without_certificates(),
            CoreFlags::default(),
        )
        .unwrap();
        let error = migrate::collect(&mut bound, false).unwrap_err();
        assert!(error.contains("device-bound"), "{error}");
    }
}
