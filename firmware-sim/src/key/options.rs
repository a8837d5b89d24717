//! [`KeyOptions`]: everything that makes one key, in one plain struct.
//!
//! `ferrokey serve` maps its flags onto it, the control API deserializes it
//! (JSON, camelCase, unknown fields refused), and [`super::build::KeyBuilder`]
//! builds a key from it. [`KeyOptions::validate`] says in words what is wrong.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::pin::{PinSecret, PinStateName};
use super::MAX_STRING_UNITS;
use crate::identity::{
    Aaguid, DEFAULT_MANUFACTURER, DEFAULT_PRODUCT, DEFAULT_PRODUCT_ID, DEFAULT_VENDOR_ID,
    FERROKEY_AAGUID,
};
use crate::presence::{PresenceMode, UvMode};
use crate::profile::{builtin_profile, quirk, CounterModeName, ProfileSpec};
use ferrokey::profile::{AttestationKind, Profile};

pub use crate::attestation::AttestationMode;

/// Everything that makes one key. `Default` is the key `ferrokey serve`
/// starts without options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KeyOptions {
    /// How user presence is answered (default `auto`). Leave it out when
    /// `presenceFile` is given.
    pub presence: Option<PresenceMode>,
    /// Answer presence from this file, read at every poll (`approve`, `deny`,
    /// anything else to wait).
    pub presence_file: Option<PathBuf>,
    /// Built-in user verification: `off` (PIN-only), `auto`, `deny`.
    pub uv: UvMode,
    /// Attestation of new credentials.
    pub attestation: AttestationMode,
    /// The AAGUID (default: ferrokey's). A key's AAGUID is fixed when its
    /// state is created; batch attestation needs the certificate's AAGUID.
    #[serde(with = "aaguid_text")]
    pub aaguid: Option<[u8; 16]>,
    /// USB idVendor.
    pub vendor_id: u16,
    /// USB idProduct.
    pub product_id: u16,
    /// USB manufacturer string.
    pub manufacturer: String,
    /// USB product string.
    pub product: String,
    /// Whether the control API's Get Credentials hands out private keys
    /// (WebDriver does; `false` keeps them in the key, for device-bound tests).
    pub exportable: bool,
    /// BE of new credentials (WebDriver's defaultBackupEligibility).
    pub default_backup_eligibility: bool,
    /// BS of new credentials (WebDriver's defaultBackupState).
    pub default_backup_state: bool,
    /// CTAP 2.1's reset window: authenticatorReset is refused (NOT_ALLOWED)
    /// when asked more than 10 s after the key was powered up. Left out: on
    /// for presence `prompt` and `touch` (a person at the key), off for
    /// `auto`, `deny` and a presence file (scripts and CI reset whenever
    /// they like). See [`KeyOptions::reset_window_in_force`].
    pub reset_window: Option<bool>,
    /// A PIN the key gets when it is built (never serialized or logged).
    #[serde(skip_serializing)]
    pub pin: Option<PinSecret>,
    /// The PIN/UV state the key is put in when it is built (`unset`, `set`,
    /// `blocked`, `forcePinChange`, `uvBlocked`); left out, the state is
    /// what the key's state directory holds (with `pin`: `set`).
    pub pin_state: Option<PinStateName>,
    /// A simulated fingerprint sensor: authenticatorBioEnrollment, getInfo
    /// `bioEnroll`, and user verification by an enrolled finger (not with
    /// built-in `uv`, which it replaces). Starts with no finger enrolled.
    pub bio: bool,
    /// Enterprise attestation capable (getInfo `ep`, false until
    /// authenticatorConfig enables it): a per-key certificate from the
    /// ferrokey CA that identifies this one key.
    pub enterprise_attestation: bool,
    /// RP IDs given vendor-facilitated enterprise attestation
    /// (enterpriseAttestation 1); platform-managed (2) serves any RP.
    pub enterprise_rp_ids: Vec<String>,
    /// The built-in profile the key presents (`security-key` when left out;
    /// see [`crate::profile`]).
    pub profile: Option<String>,
    /// A profile written out (a `--profile-file`'s content, or inline):
    /// its `base`, or `profile`, with the fields it names replaced.
    pub profile_spec: Option<ProfileSpec>,
    /// The counter mode, over the profile's.
    pub counter_mode: Option<CounterModeName>,
    /// Quirks turned on over the profile's, by name.
    pub quirks: Vec<String>,
}

/// The most RP IDs of vendor-facilitated enterprise attestation.
pub const MAX_ENTERPRISE_RP_IDS: usize = ferrokey::authenticator::MAX_ENTERPRISE_RP_IDS;

impl Default for KeyOptions {
    fn default() -> Self {
        KeyOptions {
            presence: None,
            presence_file: None,
            uv: UvMode::Off,
            attestation: AttestationMode::Batch,
            aaguid: None,
            vendor_id: DEFAULT_VENDOR_ID,
            product_id: DEFAULT_PRODUCT_ID,
            manufacturer: DEFAULT_MANUFACTURER.to_string(),
            product: DEFAULT_PRODUCT.to_string(),
            exportable: true,
            default_backup_eligibility: false,
            default_backup_state: false,
            reset_window: None,
            pin: None,
            pin_state: None,
            bio: false,
            enterprise_attestation: false,
            enterprise_rp_ids: Vec::new(),
            profile: None,
            profile_spec: None,
            counter_mode: None,
            quirks: Vec::new(),
        }
    }
}

/// What is wrong with a [`KeyOptions`] (one message per problem).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOptions(pub Vec<String>);

impl fmt::Display for InvalidOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for InvalidOptions {}

impl KeyOptions {
    /// Checks the options as a whole; every problem is named.
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        let mut problems = Vec::new();
        if self.presence.is_some() && self.presence_file.is_some() {
            problems.push(
                "presence and presenceFile exclude each other (a presence file replaces the presence mode)"
                    .to_string(),
            );
        }
        if let Some(path) = &self.presence_file {
            if path.as_os_str().is_empty() {
                problems.push("presenceFile is empty".to_string());
            }
        }
        for (name, value) in [
            ("manufacturer", &self.manufacturer),
            ("product", &self.product),
        ] {
            let units = value.encode_utf16().count();
            if units == 0 {
                problems.push(format!("{name} is empty"));
            } else if units > MAX_STRING_UNITS {
                problems.push(format!(
                    "{name} is {units} UTF-16 units long; a USB string holds at most {MAX_STRING_UNITS}"
                ));
            }
            if value.contains('\0') {
                problems.push(format!("{name} contains a NUL character"));
            }
        }
        if self.default_backup_state && !self.default_backup_eligibility {
            problems.push(
                "defaultBackupState needs defaultBackupEligibility (BS=1 implies BE=1)".to_string(),
            );
        }
        if self.vendor_id == 0 {
            problems.push("vendorId 0000 is not a valid USB vendor id".to_string());
        }
        if let Some(aaguid) = self.aaguid {
            if self.attestation.uses_certificates() && aaguid != FERROKEY_AAGUID {
                problems.push(format!(
                    "aaguid {} differs from the batch attestation certificate's {}; use attestation \"self\" for another AAGUID",
                    Aaguid(aaguid),
                    Aaguid(FERROKEY_AAGUID)
                ));
            }
        }
        self.check_pin_state(&mut problems);
        self.validate_bio_and_enterprise(&mut problems);
        match self.resolved_profile() {
            Err(problem) => problems.push(problem),
            Ok(profile) => {
                let batch = profile.attestation == AttestationKind::Device
                    && self.attestation.uses_certificates();
                if let Some(aaguid) = profile.aaguid.filter(|a| batch && *a != FERROKEY_AAGUID) {
                    problems.push(format!(
                        "the profile's aaguid {} differs from the batch attestation certificate's {}; use attestation \"self\" or \"none\"",
                        Aaguid(aaguid),
                        Aaguid(FERROKEY_AAGUID)
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidOptions(problems))
        }
    }

    /// `pin` and `pinState` together.
    fn check_pin_state(&self, problems: &mut Vec<String>) {
        match self.pin_state {
            Some(PinStateName::Unset) if self.pin.is_some() => {
                problems.push("pinState \"unset\" and a pin exclude each other".to_string())
            }
            Some(PinStateName::UvBlocked) if !self.uv.is_builtin() => problems.push(
                "pinState \"uvBlocked\" needs built-in user verification (uv \"auto\" or \"deny\")"
                    .to_string(),
            ),
            _ => {}
        }
    }

    /// The PIN/UV state to put a newly built key in, if any: `pinState`, or
    /// `set` when only a PIN is given.
    pub fn pin_state_at_start(&self) -> Option<PinStateName> {
        self.pin_state
            .or_else(|| self.pin.as_ref().map(|_| PinStateName::Set))
    }

    /// The checks of `bio`, `enterpriseAttestation` and `enterpriseRpIds`.
    fn validate_bio_and_enterprise(&self, problems: &mut Vec<String>) {
        if self.bio && self.effective_uv().is_builtin() {
            problems.push(format!(
                "bio and uv {} exclude each other (the fingerprint sensor is the key's built-in user verification)",
                self.effective_uv().name()
            ));
        }
        if !self.enterprise_rp_ids.is_empty() && !self.enterprise_attestation {
            problems.push("enterpriseRpIds needs enterpriseAttestation".to_string());
        }
        if self.enterprise_attestation && self.attestation == AttestationMode::None {
            problems.push(
                "enterpriseAttestation needs an attestation other than none (enterprise attestation is a packed statement)"
                    .to_string(),
            );
        }
        if self.enterprise_rp_ids.len() > MAX_ENTERPRISE_RP_IDS {
            problems.push(format!(
                "enterpriseRpIds has {} RP IDs; at most {MAX_ENTERPRISE_RP_IDS}",
                self.enterprise_rp_ids.len()
            ));
        }
        for id in &self.enterprise_rp_ids {
            let max = ferrokey::authenticator::MAX_ENTERPRISE_RP_ID_LENGTH;
            if id.is_empty()
                || id.len() > max
                || id.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                problems.push(format!(
                    "enterprise RP ID {id:?} must be 1 to {max} bytes without spaces"
                ));
            }
        }
    }

    /// The profile the key presents: `profile` (default `security-key`),
    /// `profileSpec` over it, then `quirks` and `counterMode`; checked. The
    /// error names the option and the field.
    pub fn resolved_profile(&self) -> Result<Profile, String> {
        let mut profile = match &self.profile_spec {
            Some(spec) => spec
                .resolve(self.profile.as_deref())
                .map_err(|e| format!("profileSpec: {e}"))?,
            None => builtin_profile(self.profile.as_deref().unwrap_or("security-key"))
                .map_err(|e| format!("profile: {e}"))?,
        };
        for name in &self.quirks {
            profile = profile.with_quirk(quirk(name).map_err(|e| format!("quirks: {e}"))?);
        }
        if let Some(mode) = self.counter_mode {
            profile.counter_mode = mode.into();
        }
        profile.check().map_err(|e| format!("profile: {e}"))?;
        Ok(profile)
    }

    /// The profile's name: a built-in one's, or `custom` for a spec.
    pub fn profile_name(&self) -> String {
        let base = self.profile.as_deref().unwrap_or("security-key");
        match &self.profile_spec {
            Some(spec) => format!("custom (base {})", spec.base.as_deref().unwrap_or(base)),
            None => base.to_string(),
        }
    }

    /// The built-in user verification in force: `uv`, or `auto` when it is
    /// `off` and the profile has built-in UV (a passkey provider).
    pub fn effective_uv(&self) -> UvMode {
        match self.resolved_profile() {
            Ok(profile) if profile.builtin_uv && self.uv == UvMode::Off => UvMode::Auto,
            _ => self.uv,
        }
    }

    /// What the core of a key of these options is started with, given the
    /// profile they resolve to and the key's enterprise attestation (if
    /// `enterpriseAttestation`).
    pub fn core_flags(
        &self,
        profile: Profile,
        enterprise: Option<ferrokey::authenticator::EnterpriseAttestation>,
    ) -> crate::cli::state::CoreFlags {
        crate::cli::state::CoreFlags {
            builtin_uv: self.effective_uv().is_builtin(),
            exportable: self.exportable,
            default_backup_eligible: self.default_backup_eligibility,
            default_backup_state: self.default_backup_state,
            reset_window: self.reset_window_in_force(),
            bio: self.bio,
            enterprise,
            profile,
        }
    }

    /// The presence mode in force (`auto` unless set; ignored with a presence file).
    pub fn presence_mode(&self) -> PresenceMode {
        self.presence.unwrap_or(PresenceMode::Auto)
    }

    /// Whether the key enforces CTAP 2.1's 10 s reset window: `reset_window`
    /// when given, else on exactly for the presence modes a person answers
    /// (`prompt`, `touch`; never with a presence file).
    pub fn reset_window_in_force(&self) -> bool {
        self.reset_window.unwrap_or_else(|| {
            self.presence_file.is_none()
                && matches!(
                    self.presence_mode(),
                    PresenceMode::Prompt | PresenceMode::Touch
                )
        })
    }

    /// The AAGUID a new key of these options gets.
    pub fn aaguid_or_default(&self) -> [u8; 16] {
        self.aaguid.unwrap_or(FERROKEY_AAGUID)
    }

    /// A short description of the presence setting (`auto`, `file`, ...).
    pub fn presence_name(&self) -> &'static str {
        if self.presence_file.is_some() {
            return "file";
        }
        match self.presence_mode() {
            PresenceMode::Auto => "auto",
            PresenceMode::Deny => "deny",
            PresenceMode::Prompt => "prompt",
            PresenceMode::Touch => "touch",
        }
    }
}

/// An AAGUID as its UUID text (`"bb6ca1c2-3d44-..."`).
mod aaguid_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<[u8; 16]>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_str(&Aaguid(*bytes).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 16]>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|text| {
            Aaguid::parse(&text).map(|a| a.0).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "aaguid {text:?} is not a UUID (e.g. bb6ca1c2-3d44-402a-afdd-2955c41b88e9)"
                ))
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<KeyOptions, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_json_is_the_default_key() {
        let options = parse(json!({})).unwrap();
        assert_eq!(options, KeyOptions::default());
        assert!(options.validate().is_ok());
        assert_eq!(options.presence_name(), "auto");
        assert_eq!(options.aaguid_or_default(), FERROKEY_AAGUID);
    }

    #[test]
    fn camel_case_fields_parse_and_round_trip() {
        let options = parse(json!({
            "presence": "touch",
            "uv": "auto",
            "attestation": "self",
            "aaguid": "00112233-4455-6677-8899-aabbccddeeff",
            "vendorId": 0x1050,
            "productId": 0x0407,
            "manufacturer": "Acme",
            "product": "Acme Key",
            "resetWindow": false,
        }))
        .unwrap();
        assert_eq!(options.presence, Some(PresenceMode::Touch));
        assert_eq!(options.uv, UvMode::Auto);
        assert_eq!(options.attestation, AttestationMode::SelfAttestation);
        assert_eq!(options.aaguid.unwrap()[15], 0xFF);
        assert_eq!(options.vendor_id, 0x1050);
        assert_eq!(options.reset_window, Some(false));
        assert!(options.validate().is_ok());
        let back = parse(serde_json::to_value(&options).unwrap()).unwrap();
        assert_eq!(back, options);
    }

    #[test]
    fn the_pin_is_taken_checked_and_never_serialized() {
        let options = parse(json!({"pin": "97531", "pinState": "blocked"})).unwrap();
        assert!(options.validate().is_ok());
        assert_eq!(options.pin_state_at_start(), Some(PinStateName::Blocked));
        let out = serde_json::to_value(&options).unwrap();
        assert_eq!(out["pinState"], "blocked");
        assert!(!out.to_string().contains("97531"), "{out}");
        assert!(!format!("{options:?}").contains("97531"));
        let only_pin = parse(json!({"pin": "97531"})).unwrap();
        assert_eq!(only_pin.pin_state_at_start(), Some(PinStateName::Set));
        assert_eq!(KeyOptions::default().pin_state_at_start(), None);
        assert!(parse(json!({"pin": "975"}))
            .unwrap_err()
            .contains("at least 4"));
        assert!(parse(json!({"pinState": "locked"})).is_err());
        let clash = parse(json!({"pin": "97531", "pinState": "unset"})).unwrap();
        assert!(clash
            .validate()
            .unwrap_err()
            .to_string()
            .contains("exclude"));
        let uv = parse(json!({"pinState": "uvBlocked"})).unwrap();
        assert!(uv.validate().unwrap_err().to_string().contains("built-in"));
        assert!(parse(json!({"pinState": "uvBlocked", "uv": "auto"}))
            .unwrap()
            .validate()
            .is_ok());
    }

    #[test]
    fn the_reset_window_follows_the_presence_mode_unless_given() {
        let window = |value: serde_json::Value| parse(value).unwrap().reset_window_in_force();
        assert!(!window(json!({})));
        assert!(!window(json!({"presence": "auto"})));
        assert!(!window(json!({"presence": "deny"})));
        assert!(window(json!({"presence": "prompt"})));
        assert!(window(json!({"presence": "touch"})));
        assert!(!window(json!({"presenceFile": "/tmp/p"})));
        assert!(!window(json!({"presence": "touch", "resetWindow": false})));
        assert!(window(json!({"presence": "auto", "resetWindow": true})));
        assert!(window(
            json!({"presenceFile": "/tmp/p", "resetWindow": true})
        ));
        let bad = parse(json!({"resetWindow": "on"})).unwrap_err();
        assert!(bad.contains("boolean"), "{bad}");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_by_name() {
        let unknown = parse(json!({"presense": "auto"})).unwrap_err();
        assert!(unknown.contains("presense"), "{unknown}");
        let snake = parse(json!({"vendor_id": 1})).unwrap_err();
        assert!(snake.contains("vendor_id"), "{snake}");
        let mode = parse(json!({"uv": "maybe"})).unwrap_err();
        assert!(mode.contains("maybe"), "{mode}");
        let aaguid = parse(json!({"aaguid": "nope"})).unwrap_err();
        assert!(aaguid.contains("not a UUID"), "{aaguid}");
        assert!(parse(json!({"vendorId": 70000})).is_err());
    }

    #[test]
    fn bio_and_enterprise_options_parse_and_are_checked() {
        let options = parse(json!({
            "bio": true,
            "enterpriseAttestation": true,
            "enterpriseRpIds": ["corp.example"],
        }))
        .unwrap();
        assert!(options.bio && options.enterprise_attestation);
        assert_eq!(options.enterprise_rp_ids, vec!["corp.example"]);
        assert!(options.validate().is_ok());
        let bad = KeyOptions {
            bio: true,
            uv: UvMode::Auto,
            enterprise_attestation: false,
            enterprise_rp_ids: vec!["".into(); MAX_ENTERPRISE_RP_IDS + 1],
            ..KeyOptions::default()
        };
        let text = bad.validate().unwrap_err().0.join("\n");
        for needle in [
            "bio and uv auto",
            "needs enterpriseAttestation",
            "at most 8",
            "1 to 128",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let none = KeyOptions {
            enterprise_attestation: true,
            attestation: AttestationMode::None,
            ..KeyOptions::default()
        };
        assert!(none.validate().unwrap_err().0[0].contains("other than none"));
    }

    #[test]
    fn profile_options_parse_resolve_and_are_checked() {
        let options = parse(json!({
            "profile": "synced-passkey",
            "counterMode": "global",
            "quirks": ["reject-silent-authentication"],
        }))
        .unwrap();
        assert!(options.validate().is_ok(), "{:?}", options.validate());
        let profile = options.resolved_profile().unwrap();
        assert_eq!(
            profile.counter_mode,
            ferrokey::authenticator::CounterMode::Global
        );
        assert!(profile.backup_state && profile.quirks.reject_silent_authentication);
        assert_eq!(
            options.effective_uv(),
            UvMode::Auto,
            "synced-passkey has built-in UV"
        );
        assert_eq!(options.profile_name(), "synced-passkey");
        let spec =
            parse(json!({"profile": "ctap2.0", "profileSpec": {"maxMsgSize": 2048}})).unwrap();
        assert_eq!(spec.resolved_profile().unwrap().max_msg_size, 2048);
        assert_eq!(spec.profile_name(), "custom (base ctap2.0)");
        assert_eq!(
            KeyOptions::default().resolved_profile(),
            Ok(Profile::default())
        );
        assert_eq!(KeyOptions::default().effective_uv(), UvMode::Off);
        for (value, needle) in [
            (
                json!({"profile": "yubikey"}),
                "profile: unknown profile \"yubikey\"",
            ),
            (json!({"quirks": ["x"]}), "quirks: unknown quirk \"x\""),
            (
                json!({"profileSpec": {"maxMsgSize": 1}}),
                "profileSpec: maxMsgSize",
            ),
            (
                json!({"profileSpec": {"aaguid": "00112233-4455-6677-8899-aabbccddeeff"}}),
                "the profile's aaguid",
            ),
        ] {
            let problems = parse(value.clone()).unwrap().validate().unwrap_err().0;
            assert!(
                problems.iter().any(|p| p.starts_with(needle)),
                "{value}: {problems:?}"
            );
        }
        assert!(parse(json!({"counterMode": "sometimes"})).is_err());
    }

    #[test]
    fn validate_names_every_problem() {
        let options = KeyOptions {
            presence: Some(PresenceMode::Deny),
            presence_file: Some(PathBuf::from("/tmp/p")),
            manufacturer: String::new(),
            product: "x".repeat(MAX_STRING_UNITS + 1),
            vendor_id: 0,
            aaguid: Some([1; 16]),
            ..KeyOptions::default()
        };
        let problems = options.validate().unwrap_err().0;
        assert_eq!(problems.len(), 5, "{problems:?}");
        let text = problems.join("\n");
        for needle in [
            "presenceFile",
            "manufacturer is empty",
            "at most 63",
            "vendorId",
            "aaguid",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        // Another AAGUID is fine with self attestation.
        let own = KeyOptions {
            aaguid: Some([1; 16]),
            attestation: AttestationMode::SelfAttestation,
            ..KeyOptions::default()
        };
        assert!(own.validate().is_ok());
    }
}
