//! The one place a key is made: [`KeyBuilder::build`] turns [`KeyOptions`]
//! and a key number into a powered core over the key's state directory
//! (`<root>/key-N`, created on first use), with its identity, presence and
//! a recipe to power it up again ([`PowerCycled`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use ferrokey::ctaphid::DeviceVersion;
use ferrokey::device::DeviceConfig;
use tokio::sync::Notify;

use super::core::KeyCore;
use super::options::KeyOptions;
use super::pin::PinSecret;
use super::power::PowerCycled;
use super::UsbIdentity;
use crate::attestation::{Ca, CaOptions, KeyAttestation};
use crate::cli::state::{key_dir, start_authenticator};
use crate::events::{EventBus, KeyId};
use crate::identity::{Aaguid, Identity, FERROKEY_AAGUID, IDENTITY_FILE};
use crate::presence::{Label, Presence, PresenceMode, PresenceSwitch, PromptHub};
use crate::storage::FileStorage;

/// Makes keys under one state root (see the module documentation).
pub struct KeyBuilder {
    root: PathBuf,
    ca: Ca,
    bus: EventBus,
    /// The terminal prompt, started by the first key that asks on it.
    hub: Mutex<Option<Arc<PromptHub>>>,
}

impl std::fmt::Debug for KeyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBuilder")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// A built key, ready for its task.
pub struct BuiltKey {
    /// Key number: its state is `<root>/key-N`.
    pub number: u32,
    /// Its state directory.
    pub dir: PathBuf,
    /// Its USB identity.
    pub usb: UsbIdentity,
    /// Its AAGUID.
    pub aaguid: [u8; 16],
    /// The core, rebuilt from the state directory at every power-up.
    pub core: PowerCycled<KeyCore>,
    /// Wakes the key's task (presence answers).
    pub wake: Arc<Notify>,
    /// The name presence prompts show (set it to the busid once known).
    pub label: Label,
    /// The key's presence switch (touch, policy and UV overrides).
    pub switch: PresenceSwitch,
}

/// How a key's presence is answered (the same at every power-up).
#[derive(Clone)]
enum PresenceKind {
    Auto,
    Deny,
    Touch,
    File(PathBuf),
    Prompt(Arc<PromptHub>),
}

/// Everything needed to power a key up from its state directory.
#[derive(Clone)]
struct Recipe {
    id: KeyId,
    bus: EventBus,
    dir: PathBuf,
    identity: Identity,
    attestation: KeyAttestation,
    presence: PresenceKind,
    options: KeyOptions,
    /// The profile the options resolve to.
    profile: ferrokey::profile::Profile,
    wake: Arc<Notify>,
    label: Label,
    switch: PresenceSwitch,
    /// Enterprise attestation, when the options ask for it.
    enterprise: Option<ferrokey::authenticator::EnterpriseAttestation>,
}

impl Recipe {
    /// Opens the key's state (taking its lock) and starts its core.
    fn power_up(&self) -> Result<KeyCore> {
        self.start(FileStorage::open(&self.dir)?)
    }

    /// Starts the key's core over its opened state.
    fn start(&self, storage: FileStorage) -> Result<KeyCore> {
        let wake = self.wake.clone();
        let presence = match &self.presence {
            PresenceKind::Auto => Presence::auto(wake),
            PresenceKind::Deny => Presence::deny(wake),
            PresenceKind::Touch => Presence::touch(wake),
            PresenceKind::File(path) => Presence::file(path.clone(), wake),
            PresenceKind::Prompt(hub) => Presence::prompt(hub.clone(), wake),
        }
        .with_switch(self.switch.clone())
        .with_label(self.label.clone())
        .with_uv(self.options.effective_uv());
        let app = start_authenticator(
            &self.dir,
            storage,
            presence,
            &self.identity,
            &self.attestation,
            self.options
                .core_flags(self.profile, self.enterprise.clone()),
        )?;
        Ok(KeyCore::new(
            app,
            self.id,
            self.bus.clone(),
            device_config(),
        ))
    }
}

/// The USB bcdDevice of the package version (BCD major.minor).
pub fn device_release() -> u16 {
    let bcd = |s: &str| {
        let n = s.parse::<u16>().unwrap_or(0) % 100;
        (n / 10) << 4 | (n % 10)
    };
    bcd(env!("CARGO_PKG_VERSION_MAJOR")) << 8 | bcd(env!("CARGO_PKG_VERSION_MINOR"))
}

fn device_config() -> DeviceConfig {
    let part = |s: &str| s.parse::<u8>().unwrap_or(0);
    DeviceConfig {
        version: DeviceVersion {
            major: part(env!("CARGO_PKG_VERSION_MAJOR")),
            minor: part(env!("CARGO_PKG_VERSION_MINOR")),
            build: part(env!("CARGO_PKG_VERSION_PATCH")),
        },
        ..DeviceConfig::default()
    }
}

impl KeyBuilder {
    /// A builder for keys under `root` (created if missing, with its
    /// attestation CA; `country` names the CA's subject when it is created).
    /// Keys publish their events on `bus`.
    pub fn open(root: &Path, country: &str, bus: EventBus) -> Result<Self> {
        let ca = Ca::load_or_create(
            root,
            &CaOptions {
                country: country.to_string(),
                aaguid: FERROKEY_AAGUID,
            },
        )?;
        Ok(KeyBuilder {
            root: root.to_path_buf(),
            ca,
            bus,
            hub: Mutex::new(None),
        })
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The event bus the keys publish on.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    fn prompt_hub(&self) -> Result<Arc<PromptHub>> {
        let mut hub = self.hub.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hub) = hub.as_ref() {
            return Ok(hub.clone());
        }
        let started = PromptHub::stdio().context("starting the presence prompt")?;
        *hub = Some(started.clone());
        Ok(started)
    }

    /// Builds key `number` (as fleet member `id`) from `options`: opens (or
    /// creates) its state directory, taking its lock, and powers its core up.
    /// Blocking (file I/O, fsync): run it off async threads.
    pub fn build(&self, id: KeyId, number: u32, options: &KeyOptions) -> Result<BuiltKey> {
        options.validate()?;
        let dir = key_dir(&self.root, number);
        let storage = FileStorage::open(&dir)?;
        // A device-bound key stays so (lifecycle::policy's marker).
        let options = &KeyOptions {
            exportable: crate::lifecycle::policy::settle(&dir, options.exportable)?,
            ..options.clone()
        };
        let identity = self.identity(&dir, options)?;
        let presence = match (&options.presence_file, options.presence_mode()) {
            (Some(path), _) => PresenceKind::File(path.clone()),
            (None, PresenceMode::Prompt) => PresenceKind::Prompt(self.prompt_hub()?),
            (None, PresenceMode::Deny) => PresenceKind::Deny,
            (None, PresenceMode::Touch) => PresenceKind::Touch,
            (None, PresenceMode::Auto) => PresenceKind::Auto,
        };
        let wake = Arc::new(Notify::new());
        let label = Label::default();
        label.set(&format!("key-{number}"));
        let switch = PresenceSwitch::new(wake.clone());
        let recipe = Recipe {
            id,
            bus: self.bus.clone(),
            dir: dir.clone(),
            identity: identity.clone(),
            attestation: KeyAttestation::new(&self.ca, options.attestation)?,
            enterprise: self.enterprise(&dir, &identity, options)?,
            presence,
            // The PIN is applied once, here; the recipe does not keep it.
            options: KeyOptions {
                pin: None,
                ..options.clone()
            },
            profile: options.resolved_profile().map_err(anyhow::Error::msg)?,
            wake: wake.clone(),
            label: label.clone(),
            switch: switch.clone(),
        };
        let recipe_aaguid = recipe.profile.aaguid.unwrap_or(identity.aaguid);
        let mut first = recipe.start(storage)?;
        if let Some(state) = options.pin_state_at_start() {
            let pin = options.pin.as_ref().map(PinSecret::expose);
            super::pin::apply(first.authenticator_mut(), state, pin)
                .with_context(|| format!("putting key {number} in PIN state {state}"))?;
        }
        let core = PowerCycled::new(first, Box::new(move || recipe.power_up()));
        let usb = UsbIdentity {
            vendor_id: options.vendor_id,
            product_id: options.product_id,
            device_release: device_release(),
            manufacturer: options.manufacturer.clone(),
            product: options.product.clone(),
            serial: identity.serial.clone(),
        };
        Ok(BuiltKey {
            number,
            dir,
            usb,
            aaguid: recipe_aaguid,
            core,
            wake,
            label,
            switch,
        })
    }

    /// The key's enterprise attestation: its own key and certificate from
    /// the CA (made on first use, in the key's state directory) and the
    /// options' RP IDs; `None` unless the options ask for it.
    fn enterprise(
        &self,
        dir: &Path,
        identity: &Identity,
        options: &KeyOptions,
    ) -> Result<Option<ferrokey::authenticator::EnterpriseAttestation>> {
        if !options.enterprise_attestation {
            return Ok(None);
        }
        let (private_key, certificate) =
            self.ca
                .enterprise_certificate(dir, &identity.serial, &identity.aaguid)?;
        let mut rp_ids = heapless::Vec::new();
        for id in &options.enterprise_rp_ids {
            let id = heapless::String::try_from(id.as_str())
                .map_err(|_| anyhow::anyhow!("enterprise RP ID {id:?} is too long"))?;
            rp_ids
                .push(id)
                .map_err(|_| anyhow::anyhow!("too many enterprise RP IDs"))?;
        }
        Ok(Some(ferrokey::authenticator::EnterpriseAttestation {
            attestation: ferrokey::authenticator::Attestation {
                private_key,
                certificate: heapless::Vec::from_slice(&certificate).map_err(|_| {
                    anyhow::anyhow!("the enterprise certificate is over 1024 bytes")
                })?,
                intermediate: None,
            },
            rp_ids,
        }))
    }

    /// Loads the key's identity, creating it with the options' AAGUID, and
    /// checks that the AAGUID fits the options.
    fn identity(&self, dir: &Path, options: &KeyOptions) -> Result<Identity> {
        let fresh = !dir.join(IDENTITY_FILE).exists();
        let mut identity = Identity::load_or_create(dir, &[])?;
        let wanted = options.aaguid_or_default();
        if fresh && identity.aaguid != wanted {
            identity.aaguid = wanted;
            identity.save(dir)?;
        }
        let expected = match (options.aaguid, options.attestation) {
            (Some(aaguid), _) => Some(aaguid),
            (None, mode) if mode.uses_certificates() => Some(FERROKEY_AAGUID),
            (None, _) => None,
        };
        if let Some(expected) = expected {
            if identity.aaguid != expected {
                bail!(
                    "{} names AAGUID {}, but the options ask for {}{}",
                    dir.join(IDENTITY_FILE).display(),
                    Aaguid(identity.aaguid),
                    Aaguid(expected),
                    if options.aaguid.is_none() {
                        " (the batch attestation certificate's)"
                    } else {
                        ""
                    }
                );
            }
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::options::AttestationMode;
    use crate::key::ReportCore;

    #[test]
    fn builds_a_key_and_its_state_and_refuses_a_second_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let builder = KeyBuilder::open(tmp.path(), "US", EventBus::new()).unwrap();
        let mut key = builder.build(KeyId(1), 3, &KeyOptions::default()).unwrap();
        assert_eq!(key.dir, tmp.path().join("key-3"));
        assert!(key.dir.join(IDENTITY_FILE).exists());
        assert_eq!(key.aaguid, FERROKEY_AAGUID);
        assert_eq!(key.usb.vendor_id, 0x1209);
        assert_eq!(key.usb.serial, Identity::load(&key.dir).unwrap().serial);
        // The state is locked while the key runs.
        let again = builder.build(KeyId(2), 3, &KeyOptions::default());
        assert!(again.is_err());
        // A power cycle rebuilds the core from the same state.
        key.core.power_off();
        assert!(key.core.power_on());
        assert!(key.core.is_powered());
    }

    #[test]
    fn aaguid_is_fixed_at_creation() {
        let tmp = tempfile::tempdir().unwrap();
        let builder = KeyBuilder::open(tmp.path(), "US", EventBus::new()).unwrap();
        let own = KeyOptions {
            aaguid: Some([7; 16]),
            attestation: AttestationMode::SelfAttestation,
            ..KeyOptions::default()
        };
        let key = builder.build(KeyId(1), 1, &own).unwrap();
        assert_eq!(key.aaguid, [7; 16]);
        drop(key);
        // Reopened with batch attestation (the certificate's AAGUID): refused.
        let error = builder
            .build(KeyId(2), 1, &KeyOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("AAGUID"), "{error}");
        // With self attestation and no AAGUID asked for, it keeps its own.
        let reopened = KeyOptions {
            attestation: AttestationMode::SelfAttestation,
            ..KeyOptions::default()
        };
        assert_eq!(
            builder.build(KeyId(3), 1, &reopened).unwrap().aaguid,
            [7; 16]
        );
    }

    #[test]
    fn the_reset_window_reaches_the_core_and_survives_a_power_cycle() {
        let tmp = tempfile::tempdir().unwrap();
        let builder = KeyBuilder::open(tmp.path(), "US", EventBus::new()).unwrap();
        let window = |core: &PowerCycled<KeyCore>| {
            core.core()
                .unwrap()
                .authenticator()
                .config()
                .reset_requires_fresh_power_up
        };
        let cases = [
            (KeyOptions::default(), false),
            (
                KeyOptions {
                    presence: Some(PresenceMode::Touch),
                    ..KeyOptions::default()
                },
                true,
            ),
            (
                KeyOptions {
                    presence: Some(PresenceMode::Touch),
                    reset_window: Some(false),
                    ..KeyOptions::default()
                },
                false,
            ),
            (
                KeyOptions {
                    reset_window: Some(true),
                    ..KeyOptions::default()
                },
                true,
            ),
        ];
        for (number, (options, expected)) in (1u32..).zip(cases) {
            let mut key = builder
                .build(KeyId(number.into()), number, &options)
                .unwrap();
            assert_eq!(window(&key.core), expected, "{options:?}");
            key.core.power_off();
            assert!(key.core.power_on());
            assert_eq!(
                window(&key.core),
                expected,
                "after a power cycle: {options:?}"
            );
        }
    }

    #[test]
    fn invalid_options_build_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let builder = KeyBuilder::open(tmp.path(), "US", EventBus::new()).unwrap();
        let bad = KeyOptions {
            vendor_id: 0,
            ..KeyOptions::default()
        };
        assert!(builder.build(KeyId(1), 1, &bad).is_err());
        assert!(!tmp.path().join("key-1").exists());
    }
}
