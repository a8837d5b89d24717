//! `ferrokey list`, `ferrokey reset` and `ferrokey ca`.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ferrokey::platform::{PresenceStatus, UserPresence};

use super::state::{existing_keys, firmware_version, key_dir, start_authenticator, state_dir};
use super::{CaArgs, ResetArgs, StateArgs};
use crate::attestation::{Ca, CaOptions, KeyAttestation};
use crate::identity::{Identity, FERROKEY_AAGUID};
use crate::storage::FileStorage;

/// How many bytes of a credential id `list` shows.
const CREDENTIAL_ID_PREFIX: usize = 8;

/// A presence that never approves: `list` only reads.
struct NoPresence;

impl UserPresence for NoPresence {
    fn request(&mut self, _now_ms: u64) {}
    fn poll(&mut self, _now_ms: u64) -> PresenceStatus {
        PresenceStatus::Denied
    }
    fn cancel(&mut self) {}
}

/// `ferrokey list`: each key's serial number and resident credentials.
pub fn list(args: &StateArgs) -> Result<()> {
    let root = state_dir(args)?;
    let keys = existing_keys(&root)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if keys.is_empty() {
        writeln!(
            out,
            "no keys in {} (run `ferrokey serve` to create one)",
            root.display()
        )?;
        return Ok(());
    }
    for (n, dir) in keys {
        list_key(&mut out, n, &dir)?;
    }
    Ok(())
}

fn list_key(out: &mut impl Write, n: u32, dir: &Path) -> Result<()> {
    let identity = Identity::load(dir)?;
    // A snapshot: no lock, so this works while a server runs; nothing is written.
    let storage = FileStorage::open_snapshot(dir)?;
    let mut app = start_authenticator(
        dir,
        storage,
        NoPresence,
        &identity,
        &KeyAttestation::without_certificates(),
        super::state::CoreFlags::default(),
    )?;
    writeln!(
        out,
        "key-{n} serial={} dir={}",
        identity.serial,
        dir.display()
    )?;
    let mut lines = Vec::new();
    app.for_each_resident_credential(|info| {
        let id = &info.credential_id;
        let prefix = crate::hex::lower(&id[..id.len().min(CREDENTIAL_ID_PREFIX)]);
        let more = if info.credential_id.len() > CREDENTIAL_ID_PREFIX {
            "…"
        } else {
            ""
        };
        lines.push(format!(
            "  rp={} user={} credential={prefix}{more} sign_count={}",
            printable(info.rp_id),
            printable(info.user_name.unwrap_or("-")),
            info.sign_count
        ));
    })
    .map_err(|e| anyhow!("reading the credentials in {} failed: {e:?}", dir.display()))?;
    if lines.is_empty() {
        writeln!(out, "  (no resident credentials)")?;
    }
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `text` with control characters (terminal escapes from a hostile relying
/// party's user name) replaced by `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `ferrokey reset`: deletes the keys' records, keeping identity and attestation.
pub fn reset(args: &ResetArgs) -> Result<()> {
    let root = state_dir(&args.state)?;
    let existing = existing_keys(&root)?;
    let targets: Vec<(u32, std::path::PathBuf)> = match (args.key, args.all) {
        (Some(n), _) => {
            let dir = key_dir(&root, n);
            if !dir.is_dir() {
                bail!("there is no key {n} ({} does not exist)", dir.display());
            }
            vec![(n, dir)]
        }
        (None, true) => existing,
        (None, false) if existing.len() == 1 => existing,
        (None, false) if existing.is_empty() => Vec::new(),
        (None, false) => bail!(
            "{} holds {} keys; choose one with --key N or reset all with --all",
            root.display(),
            existing.len()
        ),
    };
    if targets.is_empty() {
        println!("no keys in {}; nothing to reset", root.display());
        return Ok(());
    }
    // Take every lock first, so nothing is reset if any key is in use.
    let mut opened = Vec::new();
    for (n, dir) in &targets {
        let storage = FileStorage::open(dir).with_context(|| {
            format!("cannot reset key-{n} (stop the ferrokey serving it first)")
        })?;
        let serial = Identity::load(dir)
            .map(|i| i.serial)
            .unwrap_or_else(|_| "?".into());
        opened.push((*n, serial, storage));
    }
    if !args.yes {
        let names: Vec<String> = opened
            .iter()
            .map(|(n, serial, _)| format!("key-{n} (serial {serial})"))
            .collect();
        confirm(&format!(
            "Reset {}? This deletes their credentials, device secret and PIN. [y/N] ",
            names.join(", ")
        ))?;
    }
    for (n, serial, mut storage) in opened {
        storage.clear().map_err(|e| {
            anyhow!(
                "resetting key-{n} in {} failed: {e:?}",
                storage.dir().display()
            )
        })?;
        println!("key-{n} (serial {serial}) reset");
    }
    Ok(())
}

fn confirm(question: &str) -> Result<()> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to reset without confirmation: pass --yes");
    }
    eprint!("{question}");
    io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => bail!("reset cancelled"),
    }
}

/// `ferrokey mds`: writes the metadata statement, the MDS3 BLOB and the MDS root.
pub fn mds(args: &crate::mds::MdsArgs) -> Result<()> {
    let root = state_dir(&args.state)?;
    let written = crate::mds::write(&root, args, firmware_version())?;
    println!("metadata statement: {}", written.statement.display());
    println!("MDS3 BLOB:          {}", written.blob.display());
    println!(
        "MDS root (trust it for the BLOB): {}",
        written.mds_root.display()
    );
    Ok(())
}

/// `ferrokey ca`: prints the root certificate PEM.
pub fn ca(args: &CaArgs) -> Result<()> {
    let root = state_dir(&args.state)?;
    let options = CaOptions {
        country: args.country.clone(),
        aaguid: FERROKEY_AAGUID,
    };
    let ca = Ca::load_or_create(&root, &options)?;
    let mut out = io::stdout().lock();
    out.write_all(ca.root_cert_pem().as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_not_printed() {
        assert_eq!(printable("alice\u{1b}[2J\n"), "alice?[2J?");
        assert_eq!(printable("émilie"), "émilie");
    }
}
