//! Profiles on the device side: the names of the built-in ones, the counter
//! modes, and [`ProfileSpec`], a profile written by a user (a TOML or JSON
//! file, `--profile-file`, or the control API's `ferrokey:profileSpec`).
//!
//! A spec starts from a built-in profile (`base`, default `security-key`)
//! and replaces the fields it names; the result is checked by
//! [`ferrokey::profile::Profile::check`]. Every error names its field.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use ferrokey::authenticator::CounterMode;
use ferrokey::profile::{builtin, AttestationKind, Profile, Quirk};

use crate::identity::Aaguid;

/// The built-in profiles' names, the default first.
pub fn builtin_names() -> Vec<&'static str> {
    builtin::ALL.iter().map(|(name, _)| *name).collect()
}

/// The built-in profile `name`, or an error listing the names.
pub fn builtin_profile(name: &str) -> Result<Profile, String> {
    builtin::by_name(name).ok_or_else(|| {
        format!(
            "unknown profile {name:?}; the built-in profiles are {}",
            builtin_names().join(", ")
        )
    })
}

/// The quirks' names.
pub fn quirk_names() -> Vec<&'static str> {
    Quirk::ALL.iter().map(|q| q.name()).collect()
}

/// The quirk `name`, or an error listing the names.
pub fn quirk(name: &str) -> Result<Quirk, String> {
    Quirk::from_name(name).ok_or_else(|| {
        format!(
            "unknown quirk {name:?}; the quirks are {}",
            quirk_names().join(", ")
        )
    })
}

/// How signature counters advance (`--counter-mode`, `counterMode`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum CounterModeName {
    /// One counter per credential, +1 per signature (the default).
    PerCredential,
    /// One device-wide counter shared by all credentials.
    Global,
    /// Always 0, as passkey providers report.
    Zero,
    /// Per credential, random increments of 1 to 16 (never backwards).
    Random,
}

impl From<CounterModeName> for CounterMode {
    fn from(name: CounterModeName) -> Self {
        match name {
            CounterModeName::PerCredential => CounterMode::PerCredential,
            CounterModeName::Global => CounterMode::Global,
            CounterModeName::Zero => CounterMode::Zero,
            CounterModeName::Random => CounterMode::RandomIncrements,
        }
    }
}

/// The name of a counter mode.
pub fn counter_mode_name(mode: CounterMode) -> &'static str {
    match mode {
        CounterMode::PerCredential => "per-credential",
        CounterMode::Global => "global",
        CounterMode::Zero => "zero",
        CounterMode::RandomIncrements => "random",
    }
}

/// getInfo options a spec may set (see [`ferrokey::profile::Options`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptionsSpec {
    /// `rk`.
    pub rk: Option<bool>,
    /// `plat` (reported as false).
    pub plat: Option<bool>,
    /// `clientPin` (the key supports a PIN).
    pub client_pin: Option<bool>,
    /// `pinUvAuthToken`.
    pub pin_uv_auth_token: Option<bool>,
    /// `credMgmt` and authenticatorCredentialManagement.
    pub cred_mgmt: Option<bool>,
    /// `authnrCfg` and authenticatorConfig.
    pub authnr_cfg: Option<bool>,
    /// `setMinPINLength`.
    #[serde(rename = "setMinPINLength")]
    pub set_min_pin_length: Option<bool>,
    /// `largeBlobs` and authenticatorLargeBlobs.
    pub large_blobs: Option<bool>,
    /// `alwaysUv`.
    pub always_uv: Option<bool>,
    /// `makeCredUvNotRqd`.
    pub make_cred_uv_not_rqd: Option<bool>,
}

/// A profile written by a user: a built-in `base` and the fields replaced.
/// Field names follow getInfo where there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileSpec {
    /// The built-in profile to start from (default `security-key`).
    pub base: Option<String>,
    /// `versions`: any of `U2F_V2`, `FIDO_2_0`, `FIDO_2_1`. Without
    /// `FIDO_2_1` the CTAP 2.1 fields (maxCredentialCountInList,
    /// maxCredentialIdLength, transports, algorithms, the PIN policy,
    /// remainingDiscoverableCredentials) are left out of getInfo.
    pub versions: Option<Vec<String>>,
    /// `extensions`: any of credProtect, hmac-secret, hmac-secret-mc,
    /// credBlob, largeBlobKey, minPinLength.
    pub extensions: Option<Vec<String>>,
    /// `options`.
    pub options: Option<OptionsSpec>,
    /// `algorithms`: any of `ES256`, `EdDSA`.
    pub algorithms: Option<Vec<String>>,
    /// `maxMsgSize` (1024 to 7609).
    pub max_msg_size: Option<usize>,
    /// `maxCredentialCountInList` (1 to 10).
    pub max_credential_count_in_list: Option<usize>,
    /// `maxCredentialIdLength` (77 to 255).
    pub max_credential_id_length: Option<usize>,
    /// `pinUvAuthProtocols`: any of 1, 2.
    pub pin_uv_auth_protocols: Option<Vec<u8>>,
    /// `transports`: any of `usb`, `nfc`.
    pub transports: Option<Vec<String>>,
    /// `firmwareVersion`.
    pub firmware_version: Option<u32>,
    /// An AAGUID replacing the key's.
    pub aaguid: Option<String>,
    /// The counter mode.
    pub counter_mode: Option<CounterModeName>,
    /// `device` (the key's: batch by default), `self` or `none`.
    pub attestation: Option<String>,
    /// BE of new credentials.
    pub backup_eligible: Option<bool>,
    /// BS of new credentials.
    pub backup_state: Option<bool>,
    /// Every credential discoverable.
    pub resident_only: Option<bool>,
    /// A built-in user-verification method.
    pub builtin_uv: Option<bool>,
    /// Quirks turned on (see `--quirk`).
    pub quirks: Option<Vec<String>>,
}

/// Sets `flags` from a list of names: each name turns one flag on; an
/// unknown name is an error naming `field`.
fn flags<const N: usize>(
    field: &str,
    names: &[String],
    known: [(&str, &mut bool); N],
) -> Result<(), String> {
    let mut known = known;
    for (_, flag) in known.iter_mut() {
        **flag = false;
    }
    for name in names {
        let Some((_, flag)) = known.iter_mut().find(|(n, _)| n == name) else {
            let all: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "{field}: unknown value {name:?}; expected any of {}",
                all.join(", ")
            ));
        };
        **flag = true;
    }
    Ok(())
}

impl ProfileSpec {
    /// Reads a spec from a `.toml` or `.json` file; errors name the file and
    /// the field.
    pub fn load(path: &Path) -> Result<ProfileSpec> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the profile file {}", path.display()))?;
        let spec = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {
                let place = |e: &toml::de::Error| where_in_toml(e, &text);
                let de = toml::de::Deserializer::parse(&text).map_err(|e| {
                    anyhow::anyhow!("{}: {} ({})", path.display(), e.message().trim(), place(&e))
                })?;
                serde_path_to_error::deserialize::<_, ProfileSpec>(de).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: field {}: {} ({})",
                        path.display(),
                        e.path(),
                        e.inner().message().trim(),
                        place(e.inner())
                    )
                })?
            }
            Some("json") => {
                let de = &mut serde_json::Deserializer::from_str(&text);
                serde_path_to_error::deserialize::<_, ProfileSpec>(de).map_err(|e| {
                    anyhow::anyhow!("{}: field {}: {}", path.display(), e.path(), e.inner())
                })?
            }
            _ => bail!(
                "profile file {}: the name must end in .toml or .json",
                path.display()
            ),
        };
        spec.resolve(None)
            .map_err(|e| anyhow::anyhow!("profile file {}: {e}", path.display()))?;
        Ok(spec)
    }

    /// The profile this spec describes, on top of `default_base` when it
    /// names no base; checked.
    pub fn resolve(&self, default_base: Option<&str>) -> Result<Profile, String> {
        let base_name = match (&self.base, default_base) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "base: the spec says {a:?} but the profile {b:?} was asked for as well; name the base once"
                ))
            }
            (Some(a), _) => a.as_str(),
            (None, Some(b)) => b,
            (None, None) => "security-key",
        };
        let mut p = builtin_profile(base_name).map_err(|e| format!("base: {e}"))?;
        if let Some(names) = &self.versions {
            let v = &mut p.versions;
            flags(
                "versions",
                names,
                [
                    ("U2F_V2", &mut v.u2f_v2),
                    ("FIDO_2_0", &mut v.fido_2_0),
                    ("FIDO_2_1", &mut v.fido_2_1),
                ],
            )?;
            let later = p.versions.fido_2_1;
            p.list_limits_info = later;
            p.min_pin_length_info = later;
            p.remaining_credentials_info = later;
            if !later {
                p.options.pin_uv_auth_token = false;
                p.options.cred_mgmt = false;
                p.options.authnr_cfg = false;
                p.options.set_min_pin_length = false;
                p.options.large_blobs = false;
                p.options.always_uv = false;
                p.options.make_cred_uv_not_rqd = false;
            }
        }
        if let Some(names) = &self.extensions {
            let e = &mut p.extensions;
            flags(
                "extensions",
                names,
                [
                    ("credProtect", &mut e.cred_protect),
                    ("hmac-secret", &mut e.hmac_secret),
                    ("hmac-secret-mc", &mut e.hmac_secret_mc),
                    ("credBlob", &mut e.cred_blob),
                    ("largeBlobKey", &mut e.large_blob_key),
                    ("minPinLength", &mut e.min_pin_length),
                ],
            )?;
        }
        if let Some(o) = &self.options {
            let t = &mut p.options;
            for (value, target) in [
                (o.rk, &mut t.rk),
                (o.plat, &mut t.plat),
                (o.client_pin, &mut t.client_pin),
                (o.pin_uv_auth_token, &mut t.pin_uv_auth_token),
                (o.cred_mgmt, &mut t.cred_mgmt),
                (o.authnr_cfg, &mut t.authnr_cfg),
                (o.set_min_pin_length, &mut t.set_min_pin_length),
                (o.large_blobs, &mut t.large_blobs),
                (o.always_uv, &mut t.always_uv),
                (o.make_cred_uv_not_rqd, &mut t.make_cred_uv_not_rqd),
            ] {
                if let Some(value) = value {
                    *target = value;
                }
            }
        }
        if let Some(names) = &self.algorithms {
            let a = &mut p.algorithms;
            flags(
                "algorithms",
                names,
                [("ES256", &mut a.es256), ("EdDSA", &mut a.eddsa)],
            )?;
        }
        if let Some(protocols) = &self.pin_uv_auth_protocols {
            let names: Vec<String> = protocols.iter().map(u8::to_string).collect();
            let pp = &mut p.pin_protocols;
            flags(
                "pinUvAuthProtocols",
                &names,
                [("1", &mut pp.one), ("2", &mut pp.two)],
            )?;
        }
        if let Some(names) = &self.transports {
            let t = &mut p.transports;
            flags(
                "transports",
                names,
                [("usb", &mut t.usb), ("nfc", &mut t.nfc)],
            )?;
        }
        if let Some(v) = self.max_msg_size {
            p.max_msg_size = v;
        }
        if let Some(v) = self.max_credential_count_in_list {
            p.max_creds_in_list = v;
        }
        if let Some(v) = self.max_credential_id_length {
            p.max_cred_id_length = v;
        }
        if let Some(v) = self.firmware_version {
            p.firmware_version = Some(Some(v));
        }
        if let Some(text) = &self.aaguid {
            let aaguid = Aaguid::parse(text).ok_or_else(|| {
                format!(
                    "aaguid: {text:?} is not a UUID (e.g. bb6ca1c2-3d44-402a-afdd-2955c41b88e9)"
                )
            })?;
            p.aaguid = Some(aaguid.0);
        }
        if let Some(mode) = self.counter_mode {
            p.counter_mode = mode.into();
        }
        if let Some(kind) = &self.attestation {
            p.attestation = match kind.as_str() {
                "device" => AttestationKind::Device,
                "self" => AttestationKind::SelfAttestation,
                "none" => AttestationKind::None,
                other => {
                    return Err(format!(
                        "attestation: unknown value {other:?}; expected device, self or none"
                    ))
                }
            };
        }
        for (value, target) in [
            (self.backup_eligible, &mut p.backup_eligible),
            (self.backup_state, &mut p.backup_state),
            (self.resident_only, &mut p.resident_only),
            (self.builtin_uv, &mut p.builtin_uv),
        ] {
            if let Some(value) = value {
                *target = value;
            }
        }
        for name in self.quirks.iter().flatten() {
            p = p.with_quirk(quirk(name).map_err(|e| format!("quirks: {e}"))?);
        }
        p.check().map_err(|e| e.to_string())?;
        Ok(p)
    }
}

/// "at line L, column C" for a TOML error, when it has a place.
fn where_in_toml(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, str::len) + 1;
            format!("at line {line}, column {column}")
        }
        None => "in the file".to_string(),
    }
}

/// The getInfo essentials and behaviours of `profile`, for the control API.
pub fn describe(profile: &Profile) -> serde_json::Value {
    let v = &profile.versions;
    let versions: Vec<&str> = [
        (v.u2f_v2, "U2F_V2"),
        (v.fido_2_0, "FIDO_2_0"),
        (v.fido_2_1, "FIDO_2_1"),
    ]
    .into_iter()
    .filter_map(|(on, n)| on.then_some(n))
    .collect();
    let extensions: Vec<String> = profile
        .extensions
        .list()
        .map(|e| {
            serde_json::to_value(e)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    let pp = &profile.pin_protocols;
    let protocols: Vec<u8> = [(pp.two, 2), (pp.one, 1)]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
    let quirks: Vec<&str> = active_quirks(profile);
    serde_json::json!({
        "versions": versions,
        "extensions": extensions,
        "maxMsgSize": profile.max_msg_size,
        "maxCredentialCountInList": profile.max_creds_in_list,
        "maxCredentialIdLength": profile.max_cred_id_length,
        "pinUvAuthProtocols": protocols,
        "aaguid": profile.aaguid.map(|a| Aaguid(a).to_string()),
        "counterMode": counter_mode_name(profile.counter_mode),
        "attestation": match profile.attestation {
            AttestationKind::Device => "device",
            AttestationKind::SelfAttestation => "self",
            AttestationKind::None => "none",
        },
        "backupEligible": profile.backup_eligible,
        "backupState": profile.backup_state,
        "residentOnly": profile.resident_only,
        "builtinUv": profile.builtin_uv,
        "quirks": quirks,
    })
}

/// The names of the request-check quirks and lowered limits in force.
fn active_quirks(profile: &Profile) -> Vec<&'static str> {
    let q = &profile.quirks;
    let mut out = Vec::new();
    if profile.max_msg_size <= ferrokey::profile::SMALL_MAX_MSG_SIZE {
        out.push(Quirk::SmallMaxMsgSize.name());
    }
    if q.reject_long_credential_ids {
        out.push(Quirk::ShortCredentialIds.name());
    }
    if q.reject_long_lists {
        out.push(Quirk::OneCredentialPerList.name());
    }
    if q.reject_missing_display_name {
        out.push(Quirk::RejectMissingDisplayName.name());
    }
    if q.reject_silent_authentication {
        out.push(Quirk::RejectSilentAuthentication.name());
    }
    if q.reject_all_extensions {
        out.push(Quirk::RejectAllExtensions.name());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> Result<ProfileSpec, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_spec_is_security_key_and_a_base_alone_is_that_profile() {
        assert_eq!(
            spec(json!({})).unwrap().resolve(None),
            Ok(builtin::SECURITY_KEY)
        );
        for name in builtin_names() {
            let resolved = spec(json!({"base": name})).unwrap().resolve(None).unwrap();
            assert_eq!(Some(resolved), builtin::by_name(name), "{name}");
        }
    }

    #[test]
    fn fields_replace_the_base() {
        let p = spec(json!({
            "base": "ctap2.0",
            "versions": ["FIDO_2_0"],
            "extensions": [],
            "algorithms": ["ES256", "EdDSA"],
            "maxMsgSize": 2048,
            "firmwareVersion": 7,
            "aaguid": "00112233-4455-6677-8899-aabbccddeeff",
            "counterMode": "global",
            "attestation": "self",
            "residentOnly": true,
            "quirks": ["reject-silent-authentication"],
            "options": {"rk": true}
        }))
        .unwrap()
        .resolve(None)
        .unwrap();
        assert!(!p.versions.u2f_v2 && p.versions.fido_2_0 && !p.versions.fido_2_1);
        assert_eq!(p.extensions.list().count(), 0);
        assert!(p.algorithms.eddsa);
        assert_eq!(p.max_msg_size, 2048);
        assert_eq!(p.firmware_version, Some(Some(7)));
        assert_eq!(p.aaguid.unwrap()[15], 0xff);
        assert_eq!(p.counter_mode, CounterMode::Global);
        assert_eq!(p.attestation, AttestationKind::SelfAttestation);
        assert!(p.resident_only && p.quirks.reject_silent_authentication);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"base": "yubikey"}), "base: unknown profile"),
            (
                json!({"versions": ["FIDO_3"]}),
                "versions: unknown value \"FIDO_3\"",
            ),
            (
                json!({"extensions": ["prf"]}),
                "extensions: unknown value \"prf\"",
            ),
            (
                json!({"pinUvAuthProtocols": [3]}),
                "pinUvAuthProtocols: unknown value \"3\"",
            ),
            (json!({"maxMsgSize": 10}), "maxMsgSize: must be between"),
            (
                json!({"maxCredentialIdLength": 16}),
                "maxCredentialIdLength",
            ),
            (json!({"aaguid": "x"}), "aaguid: \"x\" is not a UUID"),
            (
                json!({"attestation": "batch"}),
                "attestation: unknown value",
            ),
            (json!({"quirks": ["nope"]}), "quirks: unknown quirk"),
            (
                json!({"versions": ["U2F_V2"], "residentOnly": true}),
                "residentOnly",
            ),
            (
                json!({"versions": ["FIDO_2_0"], "extensions": ["credBlob"]}),
                "extensions.credBlob: is a CTAP 2.1 extension",
            ),
            (
                json!({"backupState": true}),
                "backupState: needs backupEligible",
            ),
        ];
        for (value, needle) in cases {
            let error = spec(value.clone()).unwrap().resolve(None).unwrap_err();
            assert!(error.starts_with(needle), "{value}: {error}");
        }
        let unknown = spec(json!({"maxMessageSize": 1})).unwrap_err();
        assert!(unknown.contains("maxMessageSize"), "{unknown}");
        let wrong = spec(json!({"options": {"credMgmt": "yes"}})).unwrap_err();
        assert!(wrong.contains("boolean"), "{wrong}");
        let conflict = spec(json!({"base": "u2f"}))
            .unwrap()
            .resolve(Some("strict"));
        assert!(conflict.unwrap_err().starts_with("base:"));
    }

    #[test]
    fn files_in_toml_and_json_and_their_errors() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("old.toml");
        std::fs::write(
            &toml_path,
            "base = \"ctap2.0\"\nmaxMsgSize = 2048\ncounterMode = \"random\"\n\n[options]\nrk = false\n",
        )
        .unwrap();
        let spec = ProfileSpec::load(&toml_path).unwrap();
        let p = spec.resolve(None).unwrap();
        assert_eq!(p.max_msg_size, 2048);
        assert!(!p.options.rk);
        assert_eq!(p.counter_mode, CounterMode::RandomIncrements);

        let json_path = dir.path().join("p.json");
        std::fs::write(&json_path, r#"{"base": "u2f", "quirks": []}"#).unwrap();
        assert_eq!(
            ProfileSpec::load(&json_path).unwrap().resolve(None),
            Ok(builtin::U2F)
        );

        let cases: [(&str, &str, &[&str]); 5] = [
            (
                "a.toml",
                "[options]\ncredMgmt = \"yes\"\n",
                &["a.toml", "line 2"],
            ),
            (
                "b.toml",
                "maxMessageSize = 1\n",
                &["b.toml", "maxMessageSize"],
            ),
            (
                "c.json",
                r#"{"options": {"credMgmt": 1}}"#,
                &["c.json", "options.credMgmt"],
            ),
            (
                "d.json",
                r#"{"maxMsgSize": 5}"#,
                &["d.json", "maxMsgSize: must be"],
            ),
            ("e.yaml", "x: 1", &["e.yaml", ".toml or .json"]),
        ];
        for (name, text, needles) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let error = format!("{:#}", ProfileSpec::load(&path).unwrap_err());
            for needle in needles {
                assert!(error.contains(needle), "{name}: {needle} not in {error}");
            }
        }
        let missing = ProfileSpec::load(&dir.path().join("none.toml")).unwrap_err();
        assert!(format!("{missing:#}").contains("none.toml"));
    }

    #[test]
    fn describe_shows_the_essentials() {
        let d = describe(&builtin::SYNCED_PASSKEY);
        assert_eq!(d["versions"], json!(["FIDO_2_0", "FIDO_2_1"]));
        assert_eq!(d["counterMode"], "zero");
        assert_eq!(d["attestation"], "none");
        assert_eq!(d["aaguid"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(d["backupState"], true);
        let strict = describe(&builtin::STRICT);
        assert_eq!(strict["quirks"].as_array().unwrap().len(), 5);
        assert_eq!(
            describe(&builtin::CTAP2_0)["pinUvAuthProtocols"],
            json!([1])
        );
    }
}
