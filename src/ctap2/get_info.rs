//! authenticatorGetInfo (0x04).

use ctap_types::ctap2::get_info::{CtapOptions, Extension, ResponseBuilder, EXTENSION_COUNT};
use ctap_types::webauthn::{
    FilteredPublicKeyCredentialParameters, KnownPublicKeyCredentialParameters,
};
use rand_core::{CryptoRng, RngCore};

use super::{write_cbor, HandlerResult};
use crate::app::Message;
use crate::authenticator::Authenticator;
use crate::pin::state::MAX_MIN_PIN_LENGTH_RP_IDS;
use crate::platform::{Storage, UserPresence};

/// getInfo `preferredPlatformUvAttempts` with built-in UV: how often a
/// platform should try built-in UV before falling back to the PIN.
pub const PREFERRED_PLATFORM_UV_ATTEMPTS: usize = 3;
/// getInfo `uvModality` with built-in UV: USER_VERIFY_FINGERPRINT_INTERNAL
/// (FIDO Registry of Predefined Values §3.1), what the simulation stands for.
pub const UV_MODALITY_FINGERPRINT: usize = 0x0000_0002;

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// The getInfo response, generated from the active profile
    /// ([`crate::profile::Profile`]) and the key's live state. Extensions,
    /// largeBlobs, maxSerializedLargeBlobArray, maxCredBlobLength and the
    /// algorithms come from the profile; their values from
    /// [`super::extensions`], [`super::large_blobs`] and the credential model.
    pub(crate) fn get_info(&mut self, response: &mut Message) -> HandlerResult {
        let profile = self.config.profile;
        let mut info = ResponseBuilder {
            versions: profile.version_list(),
            aaguid: self.config.aaguid.into(),
        }
        .build();

        let mut options = CtapOptions::default();
        options.rk = profile.options.rk;
        options.up = true;
        options.plat = profile.options.plat.then_some(false);
        options.large_blobs = profile.options.large_blobs.then_some(true);
        self.pin_uv_info(&mut options);
        // Biometrics and enterprise attestation: only on keys that have them.
        // bioEnroll: whether a finger is enrolled; uv false while none is
        // (the method exists but is not configured).
        if let Some(bio) = &self.bio {
            options.bio_enroll = Some(!bio.templates.is_empty());
            options.uv_bio_enroll = Some(true);
            options.uv = Some(self.pin.has_builtin_uv());
        }
        if self.config.enterprise.is_some() {
            options.ep = Some(self.ep_enabled);
        }
        info.options = Some(options);
        info.max_msg_size = Some(profile.max_msg_size);
        if profile.list_limits_info {
            info.max_creds_in_list = Some(profile.max_creds_in_list);
            info.max_cred_id_length = Some(profile.max_cred_id_length);
            info.transports = Some(profile.transport_list());
            let mut algorithms = heapless::Vec::new();
            // ES256 first: the most widely accepted; EdDSA when the platform asks first.
            for (on, alg) in [
                (
                    profile.algorithms.es256,
                    KnownPublicKeyCredentialParameters::ES256,
                ),
                (
                    profile.algorithms.eddsa,
                    KnownPublicKeyCredentialParameters::EdDSA,
                ),
            ] {
                if on {
                    algorithms.push(alg).ok();
                }
            }
            info.algorithms = Some(FilteredPublicKeyCredentialParameters(algorithms));
        }
        let extensions: heapless::Vec<Extension, EXTENSION_COUNT> =
            profile.extensions.list().collect();
        info.extensions = (!extensions.is_empty()).then_some(extensions);
        if profile.options.large_blobs {
            info.max_serialized_large_blob_array =
                Some(super::large_blobs::MAX_SERIALIZED_LARGE_BLOB_ARRAY);
        }
        if profile.extensions.cred_blob {
            info.max_cred_blob_length = Some(crate::credential::MAX_CRED_BLOB_LENGTH);
        }
        info.firmware_version = profile
            .firmware_version
            .map(|v| v.unwrap_or(self.config.firmware_version) as usize);
        if profile.options.client_pin {
            let protocols = [
                (2, profile.pin_protocols.two),
                (1, profile.pin_protocols.one),
            ];
            info.pin_protocols = Some(
                protocols
                    .into_iter()
                    .filter_map(|(p, on)| on.then_some(p))
                    .collect(),
            );
        }
        if profile.min_pin_length_info {
            info.min_pin_length = Some(self.pin.min_pin_length());
            info.force_pin_change = Some(self.pin.force_pin_change());
            info.max_rpids_for_set_min_pin_length = Some(MAX_MIN_PIN_LENGTH_RP_IDS);
        }
        if (self.pin.has_builtin_uv() || self.bio.is_some()) && profile.versions.fido_2_1 {
            info.preferred_platform_uv_attempts = Some(PREFERRED_PLATFORM_UV_ATTEMPTS);
            info.uv_modality = Some(UV_MODALITY_FINGERPRINT);
        }
        if profile.remaining_credentials_info {
            info.remaining_discoverable_credentials =
                Some(usize::from(self.remaining_discoverable_credentials()));
        }
        write_cbor(response, &info)
    }
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// The PIN/UV options: clientPin (whether a PIN is set), pinUvAuthToken,
    /// credMgmt, authnrCfg, setMinPINLength, alwaysUv (its current state) and
    /// makeCredUvNotRqd (true unless alwaysUv is on, as the spec requires).
    /// `uv` (true) only with built-in user verification; without it the option
    /// is absent, as for a key that has no such method.
    /// Each only when the profile has it.
    fn pin_uv_info(&self, options: &mut CtapOptions) {
        let features = self.pin.features();
        let always_uv = self.pin.always_uv();
        let has = self.config.profile.options;
        let when = |on: bool, value: bool| on.then_some(value);
        options.client_pin = when(has.client_pin, self.pin.is_pin_set());
        if self.pin.has_builtin_uv() {
            options.uv = Some(true);
        }
        options.pin_uv_auth_token = when(has.pin_uv_auth_token, true);
        // What the PIN/UV layer grants a permission for is what is advertised
        // (its features come from the profile's options).
        options.cred_mgmt = features.cred_mgmt.then_some(true);
        options.authnr_cfg = features.authnr_cfg.then_some(true);
        options.set_min_pin_length = when(has.set_min_pin_length, features.authnr_cfg);
        options.always_uv = when(has.always_uv, always_uv);
        options.make_cred_uv_not_rqd = when(has.make_cred_uv_not_rqd, !always_uv);
    }
}
