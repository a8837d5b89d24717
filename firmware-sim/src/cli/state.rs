//! The state directory layout shared by the commands: where it is, which keys it
//! holds, and opening one key's state.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use ferrokey::authenticator::{Authenticator, Config, InitError};
use ferrokey::platform::{Platform, UserPresence};
use rand_core::OsRng;

use super::StateArgs;
use crate::attestation::KeyAttestation;
use crate::identity::{Aaguid, Identity};
use crate::storage::FileStorage;

/// The authenticator type every command uses.
pub type KeyApp<U> = Authenticator<FileStorage, U, OsRng>;

/// The state directory: `--state-dir`, or the user's data directory.
pub fn state_dir(args: &StateArgs) -> Result<PathBuf> {
    if let Some(dir) = &args.state_dir {
        return Ok(dir.clone());
    }
    directories::ProjectDirs::from("", "", "ferrokey")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or_else(|| {
            anyhow!(
                "cannot determine the user's data directory (is HOME set?); pass --state-dir DIR"
            )
        })
}

/// The directory of key `n` (1-based).
pub fn key_dir(root: &Path, n: u32) -> PathBuf {
    root.join(format!("key-{n}"))
}

/// The keys present in the state directory, as (number, directory), by number.
pub fn existing_keys(root: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", root.display()))?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix("key-"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if n > 0 && entry.path().is_dir() {
            keys.push((n, entry.path()));
        }
    }
    keys.sort();
    Ok(keys)
}

/// The firmware version reported in getInfo: major << 16 | minor << 8 | patch.
pub fn firmware_version() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0) & 0xFF;
    (part(env!("CARGO_PKG_VERSION_MAJOR")) << 16)
        | (part(env!("CARGO_PKG_VERSION_MINOR")) << 8)
        | part(env!("CARGO_PKG_VERSION_PATCH"))
}

/// What a key's core is started with besides its state and identity.
#[derive(Clone, Debug, Default)]
pub struct CoreFlags {
    /// Built-in user verification (answered by the presence).
    pub builtin_uv: bool,
    /// Private keys may be read through the instrument API.
    pub exportable: bool,
    /// BE of new credentials.
    pub default_backup_eligible: bool,
    /// BS of new credentials.
    pub default_backup_state: bool,
    /// CTAP 2.1's 10 s reset window: authenticatorReset is refused (NOT_ALLOWED)
    /// when asked more than 10 s after power-up.
    pub reset_window: bool,
    /// A simulated fingerprint sensor.
    pub bio: bool,
    /// Enterprise attestation (the key's own certificate and RP IDs).
    pub enterprise: Option<ferrokey::authenticator::EnterpriseAttestation>,
    /// The profile the key presents (its behaviours applied over the above).
    pub profile: ferrokey::profile::Profile,
}

/// The core configuration of a key with AAGUID `aaguid` (before the
/// profile's), `attestation` and `flags`: what [`start_authenticator`] starts
/// and what `ferrokey mds` describes.
pub fn core_config(aaguid: [u8; 16], attestation: &KeyAttestation, flags: CoreFlags) -> Config {
    let mut config = Config {
        aaguid,
        builtin_uv: flags.builtin_uv,
        exportable: flags.exportable,
        default_backup_eligible: flags.default_backup_eligible,
        default_backup_state: flags.default_backup_state,
        reset_requires_fresh_power_up: flags.reset_window,
        bio: flags.bio,
        enterprise: flags.enterprise,
        firmware_version: firmware_version(),
        ..Config::default()
    };
    attestation.apply(&mut config);
    flags.profile.apply(&mut config);
    config
}

/// Starts the core over an opened key state, with `flags`. `dir` is only for messages.
pub fn start_authenticator<U: UserPresence>(
    dir: &Path,
    storage: FileStorage,
    presence: U,
    identity: &Identity,
    attestation: &KeyAttestation,
    flags: CoreFlags,
) -> Result<KeyApp<U>> {
    let config = core_config(identity.aaguid, attestation, flags);
    let platform = Platform {
        storage,
        presence,
        rng: OsRng,
    };
    Authenticator::new(platform, config).map_err(|e| match e {
        InitError::Corrupt => anyhow!(
            "the device state in {} is corrupt or of an unknown version; it was left untouched",
            dir.display()
        ),
        InitError::Storage(e) => anyhow!(
            "starting the key in {} failed: storage error {e:?}",
            dir.display()
        ),
        InitError::InvalidAttestationKey => anyhow!("the batch attestation private key is invalid"),
    })
}

/// Checks that a key announces the AAGUID of the shared attestation certificate.
pub fn check_aaguid(dir: &Path, identity: &Identity, ca_aaguid: &[u8; 16]) -> Result<()> {
    if &identity.aaguid != ca_aaguid {
        return Err(anyhow!(
            "{} names AAGUID {}, but the attestation certificate carries {}",
            dir.join(crate::identity::IDENTITY_FILE).display(),
            Aaguid(identity.aaguid),
            Aaguid(*ca_aaguid)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_listed_by_number() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["key-10", "key-2", "key-1", "key-x", "ca", "key-0"] {
            fs::create_dir(tmp.path().join(name)).unwrap();
        }
        fs::write(tmp.path().join("key-3"), b"not a dir").unwrap();
        let keys: Vec<u32> = existing_keys(tmp.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(keys, vec![1, 2, 10]);
        assert!(existing_keys(&tmp.path().join("missing"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn version_is_packed() {
        let v = firmware_version();
        assert_eq!(
            v >> 16,
            env!("CARGO_PKG_VERSION_MAJOR").parse::<u32>().unwrap()
        );
    }
}
