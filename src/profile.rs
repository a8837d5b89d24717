//! Profiles: what kind of authenticator the key presents to a platform.
//!
//! A [`Profile`] is one table: the getInfo fields the key reports (versions,
//! extensions, options, algorithms, limits, PIN/UV auth protocols,
//! transports, firmware version, an AAGUID override) and the behaviours that
//! go with them (counter mode, attestation, BE/BS flags, resident-only,
//! built-in UV, [`Quirks`]). getInfo is generated from it
//! ([`crate::ctap2`]'s getInfo), and the dispatcher and the commands enforce
//! it: a command or extension the profile lacks is refused or ignored as such
//! a key refuses or ignores it. [`builtin`] holds the named profiles;
//! [`Profile::check`] validates one a user wrote.

pub mod builtin;
#[cfg(test)]
mod tests;

use ctap_types::ctap2::get_info::{Extension, Transport, Version};
use ctap_types::ctap2::{get_assertion as ga, make_credential as mc, Error};

use crate::app::MAX_MESSAGE_SIZE;
use crate::authenticator::{Config, CounterMode};
use crate::credential::CREDENTIAL_ID_LEN;
use crate::ctap2::command;

/// The getInfo `versions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    /// `U2F_V2`: the key answers U2F (CTAPHID_MSG).
    pub u2f_v2: bool,
    /// `FIDO_2_0`.
    pub fido_2_0: bool,
    /// `FIDO_2_1`.
    pub fido_2_1: bool,
}

impl Versions {
    /// Whether the key speaks CTAP2 at all (CTAPHID_CBOR, the CBOR capability).
    pub fn ctap2(&self) -> bool {
        self.fido_2_0 || self.fido_2_1
    }
}

/// The getInfo `extensions` (each also enforced: an extension left out is
/// ignored in requests, as an authenticator ignores extensions it lacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extensions {
    /// `credProtect` (CTAP 2.1).
    pub cred_protect: bool,
    /// `hmac-secret` (CTAP 2.0).
    pub hmac_secret: bool,
    /// `hmac-secret-mc` (CTAP 2.2; needs hmac-secret).
    pub hmac_secret_mc: bool,
    /// `credBlob` (CTAP 2.1; also getInfo maxCredBlobLength).
    pub cred_blob: bool,
    /// `largeBlobKey` (CTAP 2.1).
    pub large_blob_key: bool,
    /// `minPinLength` (CTAP 2.1).
    pub min_pin_length: bool,
}

impl Extensions {
    /// The extensions in getInfo order (the order today's key reports them).
    pub fn list(&self) -> impl Iterator<Item = Extension> {
        [
            (self.cred_protect, Extension::CredProtect),
            (self.hmac_secret, Extension::HmacSecret),
            (self.hmac_secret_mc, Extension::HmacSecretMc),
            (self.cred_blob, Extension::CredBlob),
            (self.large_blob_key, Extension::LargeBlobKey),
            (self.min_pin_length, Extension::MinPinLength),
        ]
        .into_iter()
        .filter_map(|(on, e)| on.then_some(e))
    }

    /// Whether any extension introduced by CTAP 2.1 or later is on.
    fn any_after_2_0(&self) -> Option<&'static str> {
        [
            (self.cred_protect, "extensions.credProtect"),
            (self.hmac_secret_mc, "extensions.hmacSecretMc"),
            (self.cred_blob, "extensions.credBlob"),
            (self.large_blob_key, "extensions.largeBlobKey"),
            (self.min_pin_length, "extensions.minPinLength"),
        ]
        .into_iter()
        .find_map(|(on, name)| on.then_some(name))
    }
}

/// getInfo `options` the key has. The live values (clientPin: whether a PIN
/// is set; alwaysUv: its state; uv: built-in UV) come from the key's state;
/// an option the profile lacks is absent from getInfo, and the command behind
/// it refused. Options added by later features (bioEnroll, uvBioEnroll, ep)
/// belong here as further fields, present only when the key has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `rk`: discoverable credentials (makeCredential `rk: true` refused
    /// with UNSUPPORTED_OPTION without it).
    pub rk: bool,
    /// `plat` (reported as false when present): the key is a roaming key.
    pub plat: bool,
    /// `clientPin`: the key supports a PIN (authenticatorClientPIN).
    pub client_pin: bool,
    /// `pinUvAuthToken` (CTAP 2.1).
    pub pin_uv_auth_token: bool,
    /// `credMgmt` and authenticatorCredentialManagement (CTAP 2.1).
    pub cred_mgmt: bool,
    /// `authnrCfg` and authenticatorConfig (CTAP 2.1).
    pub authnr_cfg: bool,
    /// `setMinPINLength` (CTAP 2.1; needs authnrCfg).
    pub set_min_pin_length: bool,
    /// `largeBlobs` and authenticatorLargeBlobs (CTAP 2.1; also getInfo
    /// maxSerializedLargeBlobArray).
    pub large_blobs: bool,
    /// `alwaysUv` (CTAP 2.1; its state is live).
    pub always_uv: bool,
    /// `makeCredUvNotRqd` (CTAP 2.1).
    pub make_cred_uv_not_rqd: bool,
}

/// The getInfo `algorithms` (in this order: ES256 first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Algorithms {
    /// ES256 (-7).
    pub es256: bool,
    /// EdDSA (-8).
    pub eddsa: bool,
}

/// The getInfo `pinUvAuthProtocols` (reported two first); requests naming
/// another protocol are refused with INVALID_PARAMETER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinProtocols {
    /// PIN/UV auth protocol one.
    pub one: bool,
    /// PIN/UV auth protocol two.
    pub two: bool,
}

impl PinProtocols {
    /// Whether protocol `p` is one of the key's.
    pub fn has(&self, p: u64) -> bool {
        (p == 1 && self.one) || (p == 2 && self.two)
    }
}

/// The getInfo `transports`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transports {
    /// `usb`.
    pub usb: bool,
    /// `nfc`.
    pub nfc: bool,
}

/// Which attestation new credentials get, as the profile would have it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttestationKind {
    /// Whatever the key is set up with (batch attestation by default).
    #[default]
    Device,
    /// Self attestation (packed, signed by the credential key).
    SelfAttestation,
    /// The `none` format, as passkey providers answer.
    None,
}

/// The quirks relying parties trip over, after the list Chromium's virtual
/// authenticator keeps. Each is selectable alone ([`Quirk`]); `strict` has
/// them all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quirks {
    /// A request carrying more than `max_creds_in_list` credentials in its
    /// allowList or excludeList is refused with LIMIT_EXCEEDED.
    pub reject_long_lists: bool,
    /// A request naming a credential ID longer than `max_cred_id_length` is
    /// refused with LIMIT_EXCEEDED.
    pub reject_long_credential_ids: bool,
    /// makeCredential whose user has no displayName, or an empty one, is
    /// refused with MISSING_PARAMETER.
    pub reject_missing_display_name: bool,
    /// getAssertion with `up: false` (silent authentication) is refused with
    /// UNSUPPORTED_OPTION.
    pub reject_silent_authentication: bool,
    /// A request with any extension is refused with UNSUPPORTED_EXTENSION.
    pub reject_all_extensions: bool,
}

/// One quirk, by name (see [`Quirks`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    /// maxMsgSize [`SMALL_MAX_MSG_SIZE`]; longer requests are INVALID_LENGTH.
    SmallMaxMsgSize,
    /// maxCredentialIdLength [`SHORT_MAX_CREDENTIAL_ID_LENGTH`], longer IDs
    /// in a request refused.
    ShortCredentialIds,
    /// maxCredentialCountInList 1, longer lists refused.
    OneCredentialPerList,
    /// [`Quirks::reject_missing_display_name`].
    RejectMissingDisplayName,
    /// [`Quirks::reject_silent_authentication`].
    RejectSilentAuthentication,
    /// [`Quirks::reject_all_extensions`].
    RejectAllExtensions,
}

/// maxMsgSize under [`Quirk::SmallMaxMsgSize`] (what many CTAP 2.0 keys report).
pub const SMALL_MAX_MSG_SIZE: usize = 1200;
/// maxCredentialIdLength under [`Quirk::ShortCredentialIds`] (enough for the
/// key's own IDs of [`CREDENTIAL_ID_LEN`] bytes).
pub const SHORT_MAX_CREDENTIAL_ID_LENGTH: usize = 128;
/// The smallest maxMsgSize a profile may give (CTAPHID's default assumption).
pub const MIN_MAX_MSG_SIZE: usize = 1024;

impl Quirk {
    /// Every quirk, in the order of [`Quirk::name`]s in documentation.
    pub const ALL: [Quirk; 6] = [
        Quirk::SmallMaxMsgSize,
        Quirk::ShortCredentialIds,
        Quirk::OneCredentialPerList,
        Quirk::RejectMissingDisplayName,
        Quirk::RejectSilentAuthentication,
        Quirk::RejectAllExtensions,
    ];

    /// The quirk's name (`--quirk NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Quirk::SmallMaxMsgSize => "small-max-msg-size",
            Quirk::ShortCredentialIds => "short-credential-ids",
            Quirk::OneCredentialPerList => "one-credential-per-list",
            Quirk::RejectMissingDisplayName => "reject-missing-display-name",
            Quirk::RejectSilentAuthentication => "reject-silent-authentication",
            Quirk::RejectAllExtensions => "reject-all-extensions",
        }
    }

    /// The quirk called `name`.
    pub fn from_name(name: &str) -> Option<Quirk> {
        Quirk::ALL.into_iter().find(|q| q.name() == name)
    }
}

/// A kind of authenticator: getInfo fields and behaviours (see the module
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// getInfo `versions`.
    pub versions: Versions,
    /// getInfo `extensions`.
    pub extensions: Extensions,
    /// getInfo `options`.
    pub options: Options,
    /// getInfo `algorithms`.
    pub algorithms: Algorithms,
    /// getInfo `maxMsgSize`; longer CTAP2 requests are INVALID_LENGTH.
    pub max_msg_size: usize,
    /// getInfo `maxCredentialCountInList` (at most 10).
    pub max_creds_in_list: usize,
    /// getInfo `maxCredentialIdLength` (at least [`CREDENTIAL_ID_LEN`]).
    pub max_cred_id_length: usize,
    /// Whether the CTAP 2.1 fields maxCredentialCountInList,
    /// maxCredentialIdLength, transports and algorithms are reported.
    pub list_limits_info: bool,
    /// Whether getInfo reports the PIN policy (minPINLength, forcePINChange,
    /// maxRPIDsForSetMinPINLength; CTAP 2.1).
    pub min_pin_length_info: bool,
    /// Whether getInfo reports remainingDiscoverableCredentials (CTAP 2.1).
    pub remaining_credentials_info: bool,
    /// getInfo `pinUvAuthProtocols`.
    pub pin_protocols: PinProtocols,
    /// getInfo `transports`.
    pub transports: Transports,
    /// getInfo `firmwareVersion`: `None` leaves it out, `Some(None)` reports
    /// the device's, `Some(Some(v))` reports `v`.
    pub firmware_version: Option<Option<u32>>,
    /// An AAGUID that replaces the key's (getInfo and attested credential
    /// data); `None` keeps the key's.
    pub aaguid: Option<[u8; 16]>,
    /// How signature counters advance.
    pub counter_mode: CounterMode,
    /// Which attestation new credentials get.
    pub attestation: AttestationKind,
    /// BE of new credentials.
    pub backup_eligible: bool,
    /// BS of new credentials (needs BE).
    pub backup_state: bool,
    /// Every credential is made discoverable, whatever `rk` says (as passkey
    /// providers do).
    pub resident_only: bool,
    /// A built-in user-verification method (getInfo `uv`).
    pub builtin_uv: bool,
    /// Request checks relying parties trip over.
    pub quirks: Quirks,
}

impl Default for Profile {
    /// `security-key`: today's key.
    fn default() -> Self {
        builtin::SECURITY_KEY
    }
}

/// Why a profile is invalid: the field and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileError {
    /// The field, as named in profile files (`options.credMgmt`).
    pub field: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

impl core::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProfileError {}

fn bad(field: &'static str, problem: &'static str) -> Result<(), ProfileError> {
    Err(ProfileError { field, problem })
}

impl Profile {
    /// Checks that the profile describes a key that can exist; the first
    /// problem found is named with its field.
    pub fn check(&self) -> Result<(), ProfileError> {
        let v = &self.versions;
        if !v.u2f_v2 && !v.ctap2() {
            return bad("versions", "names no version (U2F_V2, FIDO_2_0, FIDO_2_1)");
        }
        if self.max_msg_size < MIN_MAX_MSG_SIZE || self.max_msg_size > MAX_MESSAGE_SIZE {
            return bad("maxMsgSize", "must be between 1024 and 7609");
        }
        if self.max_creds_in_list == 0 || self.max_creds_in_list > 10 {
            return bad("maxCredentialCountInList", "must be between 1 and 10");
        }
        if self.max_cred_id_length < CREDENTIAL_ID_LEN || self.max_cred_id_length > 255 {
            return bad(
                "maxCredentialIdLength",
                "must be between 77 (the key's own credential IDs) and 255",
            );
        }
        if self.backup_state && !self.backup_eligible {
            return bad("backupState", "needs backupEligible (BS=1 implies BE=1)");
        }
        if !v.ctap2() {
            if self.resident_only {
                return bad(
                    "residentOnly",
                    "needs FIDO_2_0 or FIDO_2_1 (U2F has no discoverable credentials)",
                );
            }
            if self.builtin_uv {
                return bad(
                    "builtinUv",
                    "needs FIDO_2_0 or FIDO_2_1 (U2F cannot verify the user)",
                );
            }
            return Ok(());
        }
        if !self.algorithms.es256 && !self.algorithms.eddsa {
            return bad("algorithms", "names no algorithm");
        }
        if self.options.client_pin && !self.pin_protocols.one && !self.pin_protocols.two {
            return bad(
                "pinUvAuthProtocols",
                "names no protocol, but options.clientPin is on",
            );
        }
        if self.resident_only && !self.options.rk {
            return bad("residentOnly", "needs options.rk");
        }
        if self.extensions.hmac_secret_mc && !self.extensions.hmac_secret {
            return bad("extensions.hmacSecretMc", "needs extensions.hmacSecret");
        }
        if self.options.set_min_pin_length && !self.options.authnr_cfg {
            return bad("options.setMinPINLength", "needs options.authnrCfg");
        }
        if !v.fido_2_1 {
            if let Some(field) = self.extensions.any_after_2_0() {
                return bad(field, "is a CTAP 2.1 extension; it needs FIDO_2_1");
            }
            let o = &self.options;
            for (on, field) in [
                (o.pin_uv_auth_token, "options.pinUvAuthToken"),
                (o.cred_mgmt, "options.credMgmt"),
                (o.authnr_cfg, "options.authnrCfg"),
                (o.large_blobs, "options.largeBlobs"),
                (o.always_uv, "options.alwaysUv"),
                (o.make_cred_uv_not_rqd, "options.makeCredUvNotRqd"),
                (self.min_pin_length_info, "minPinLengthInfo"),
                (self.remaining_credentials_info, "remainingCredentialsInfo"),
                (self.pin_protocols.two, "pinUvAuthProtocols"),
            ] {
                if on {
                    return bad(field, "is CTAP 2.1; it needs FIDO_2_1");
                }
            }
        }
        Ok(())
    }

    /// Turns `quirk` on (lowering the limit it stands for).
    pub fn with_quirk(mut self, quirk: Quirk) -> Self {
        match quirk {
            Quirk::SmallMaxMsgSize => self.max_msg_size = self.max_msg_size.min(SMALL_MAX_MSG_SIZE),
            Quirk::ShortCredentialIds => {
                self.max_cred_id_length =
                    self.max_cred_id_length.min(SHORT_MAX_CREDENTIAL_ID_LENGTH);
                self.quirks.reject_long_credential_ids = true;
            }
            Quirk::OneCredentialPerList => {
                self.max_creds_in_list = 1;
                self.quirks.reject_long_lists = true;
            }
            Quirk::RejectMissingDisplayName => self.quirks.reject_missing_display_name = true,
            Quirk::RejectSilentAuthentication => self.quirks.reject_silent_authentication = true,
            Quirk::RejectAllExtensions => self.quirks.reject_all_extensions = true,
        }
        self
    }

    /// Applies the profile's behaviours to the core configuration: counter
    /// mode, attestation, BE/BS defaults, built-in UV and the AAGUID override.
    /// Settings a key asks for on top (its own counter mode, say) are applied
    /// after this.
    pub fn apply(&self, config: &mut Config) {
        config.profile = *self;
        config.counter_mode = self.counter_mode;
        config.builtin_uv |= self.builtin_uv;
        config.default_backup_eligible |= self.backup_eligible;
        config.default_backup_state |= self.backup_state;
        match self.attestation {
            AttestationKind::Device => {}
            AttestationKind::SelfAttestation => config.attestation = None,
            AttestationKind::None => config.none_attestation = true,
        }
        if let Some(aaguid) = self.aaguid {
            config.aaguid = aaguid;
        }
    }

    /// Whether the key implements CTAP2 command `cmd` (the commands follow
    /// the versions and options: authenticatorSelection is CTAP 2.1,
    /// credentialManagement needs credMgmt, and so on).
    pub fn has_command(&self, cmd: u8) -> bool {
        let o = &self.options;
        self.versions.ctap2()
            && match cmd {
                command::MAKE_CREDENTIAL
                | command::GET_ASSERTION
                | command::GET_INFO
                | command::RESET
                | command::GET_NEXT_ASSERTION => true,
                command::CLIENT_PIN => o.client_pin,
                command::SELECTION => self.versions.fido_2_1,
                command::CREDENTIAL_MANAGEMENT | command::CREDENTIAL_MANAGEMENT_PREVIEW => {
                    o.cred_mgmt
                }
                command::LARGE_BLOBS => o.large_blobs,
                command::CONFIG => o.authnr_cfg,
                // A key option, not a profile's: the handler refuses it on a
                // key without a fingerprint sensor.
                command::BIO_ENROLLMENT => self.versions.fido_2_1,
                command::BIO_ENROLLMENT_PREVIEW => true,
                _ => false,
            }
    }

    /// The pinUvAuthProtocol key of command `cmd`'s request map, if it has one.
    pub(crate) fn pin_protocol_key(cmd: u8) -> Option<u64> {
        match cmd {
            command::MAKE_CREDENTIAL => Some(0x09),
            command::GET_ASSERTION => Some(0x07),
            command::CLIENT_PIN => Some(0x01),
            _ => None,
        }
    }

    /// Checks the lists of a request against maxCredentialCountInList and
    /// maxCredentialIdLength (under the quirks that enforce them).
    pub(crate) fn check_list<'a>(
        &self,
        ids: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> Result<(), Error> {
        if self.quirks.reject_long_lists && ids.len() > self.max_creds_in_list {
            return Err(Error::LimitExceeded);
        }
        let mut ids = ids;
        if self.quirks.reject_long_credential_ids
            && ids.any(|id| id.len() > self.max_cred_id_length)
        {
            return Err(Error::LimitExceeded);
        }
        Ok(())
    }

    /// makeCredential's checks from the table: `rk` without the rk option is
    /// UNSUPPORTED_OPTION; then the quirks (displayName, extensions, the
    /// excludeList's limits).
    pub(crate) fn check_make_credential(&self, request: &mc::Request<'_>) -> Result<(), Error> {
        if request.options.as_ref().and_then(|o| o.rk) == Some(true) && !self.options.rk {
            return Err(Error::UnsupportedOption);
        }
        let q = &self.quirks;
        if q.reject_missing_display_name
            && request
                .user
                .display_name
                .as_ref()
                .map_or(true, |name| name.is_empty())
        {
            return Err(Error::MissingParameter);
        }
        if q.reject_all_extensions && request.extensions.is_some() {
            return Err(Error::UnsupportedExtension);
        }
        if let Some(list) = &request.exclude_list {
            self.check_list(list.iter().map(|d| &d.id[..]))?;
        }
        Ok(())
    }

    /// getAssertion's checks from the quirks (silent authentication,
    /// extensions, the allowList's limits).
    pub(crate) fn check_get_assertion(&self, request: &ga::Request<'_>) -> Result<(), Error> {
        let q = &self.quirks;
        if q.reject_silent_authentication
            && request.options.as_ref().and_then(|o| o.up) == Some(false)
        {
            return Err(Error::UnsupportedOption);
        }
        if q.reject_all_extensions && request.extensions.is_some() {
            return Err(Error::UnsupportedExtension);
        }
        if let Some(list) = &request.allow_list {
            self.check_list(list.iter().map(|d| &d.id[..]))?;
        }
        Ok(())
    }

    /// makeCredential's extensions input without the extensions the profile
    /// lacks (ignored, as by a key that does not know them).
    pub(crate) fn make_credential_extensions<'a>(
        &self,
        input: Option<&mc::ExtensionsInput<'a>>,
    ) -> Option<mc::ExtensionsInput<'a>> {
        let mut input = input?.clone();
        let e = &self.extensions;
        if !e.cred_protect {
            input.cred_protect = None;
        }
        if !e.hmac_secret {
            input.hmac_secret = None;
        }
        if !e.hmac_secret_mc {
            input.hmac_secret_mc = None;
        }
        if !e.cred_blob {
            input.cred_blob = None;
        }
        if !e.large_blob_key {
            input.large_blob_key = None;
        }
        if !e.min_pin_length {
            input.min_pin_length = None;
        }
        Some(input)
    }

    /// getAssertion's extensions input without the extensions the profile lacks.
    pub(crate) fn get_assertion_extensions(
        &self,
        input: Option<&ga::ExtensionsInput>,
    ) -> Option<ga::ExtensionsInput> {
        let mut input = input?.clone();
        let e = &self.extensions;
        if !e.hmac_secret {
            input.hmac_secret = None;
        }
        if !e.cred_blob {
            input.cred_blob = None;
        }
        if !e.large_blob_key {
            input.large_blob_key = None;
        }
        Some(input)
    }

    /// The getInfo versions list.
    pub(crate) fn version_list(&self) -> heapless::Vec<Version, 5> {
        [
            (self.versions.u2f_v2, Version::U2fV2),
            (self.versions.fido_2_0, Version::Fido2_0),
            (self.versions.fido_2_1, Version::Fido2_1),
        ]
        .into_iter()
        .filter_map(|(on, v)| on.then_some(v))
        .collect()
    }

    /// The getInfo transports list.
    pub(crate) fn transport_list(&self) -> heapless::Vec<Transport, 3> {
        [
            (self.transports.usb, Transport::Usb),
            (self.transports.nfc, Transport::Nfc),
        ]
        .into_iter()
        .filter_map(|(on, t)| on.then_some(t))
        .collect()
    }
}
