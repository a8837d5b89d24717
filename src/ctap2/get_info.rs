//! authenticatorGetInfo (0x04).

use ctap_types::ctap2::get_info::{CtapOptions, ResponseBuilder, Transport, Version};
use ctap_types::webauthn::{
    FilteredPublicKeyCredentialParameters, KnownPublicKeyCredentialParameters,
};
use rand_core::{CryptoRng, RngCore};

use super::{write_cbor, HandlerResult, MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_ID_LENGTH};
use crate::app::{Message, MAX_MESSAGE_SIZE};
use crate::authenticator::Authenticator;
use crate::pin::state::MAX_MIN_PIN_LENGTH_RP_IDS;
use crate::pin::PIN_UV_AUTH_PROTOCOLS;
use crate::platform::{Storage, UserPresence};

/// getInfo `preferredPlatformUvAttempts` with built-in UV: how often a
/// platform should try built-in UV before falling back to the PIN.
pub const PREFERRED_PLATFORM_UV_ATTEMPTS: usize = 3;
/// getInfo `uvModality` with built-in UV: USER_VERIFY_FINGERPRINT_INTERNAL
/// (FIDO Registry of Predefined Values §3.1), what the simulation stands for.
pub const UV_MODALITY_FINGERPRINT: usize = 0x0000_0002;

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// The getInfo response. Extensions, largeBlobs, maxSerializedLargeBlobArray,
    /// maxCredBlobLength and the algorithms come from [`super::extensions`],
    /// [`super::large_blobs`] and the credential model.
    pub(crate) fn get_info(&mut self, response: &mut Message) -> HandlerResult {
        let mut versions = heapless::Vec::new();
        for v in [Version::U2fV2, Version::Fido2_0, Version::Fido2_1] {
            versions.push(v).ok();
        }
        let mut info = ResponseBuilder {
            versions,
            aaguid: self.config.aaguid.into(),
        }
        .build();

        let mut options = CtapOptions::default();
        options.rk = true;
        options.up = true;
        options.plat = Some(false);
        options.large_blobs = Some(true);
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
        info.max_msg_size = Some(MAX_MESSAGE_SIZE);
        info.max_creds_in_list = Some(MAX_CREDENTIAL_COUNT_IN_LIST);
        info.max_cred_id_length = Some(MAX_CREDENTIAL_ID_LENGTH);
        let mut transports = heapless::Vec::new();
        transports.push(Transport::Usb).ok();
        info.transports = Some(transports);
        let mut algorithms = heapless::Vec::new();
        // ES256 first: the most widely accepted; EdDSA when the platform asks first.
        for alg in [
            KnownPublicKeyCredentialParameters::ES256,
            KnownPublicKeyCredentialParameters::EdDSA,
        ] {
            algorithms.push(alg).ok();
        }
        info.algorithms = Some(FilteredPublicKeyCredentialParameters(algorithms));
        let mut extensions = heapless::Vec::new();
        for extension in super::extensions::SUPPORTED {
            extensions.push(extension).ok();
        }
        info.extensions = Some(extensions);
        info.max_serialized_large_blob_array =
            Some(super::large_blobs::MAX_SERIALIZED_LARGE_BLOB_ARRAY);
        info.max_cred_blob_length = Some(crate::credential::MAX_CRED_BLOB_LENGTH);
        info.firmware_version = Some(self.config.firmware_version as usize);
        info.pin_protocols = heapless::Vec::from_slice(&PIN_UV_AUTH_PROTOCOLS).ok();
        info.min_pin_length = Some(self.pin.min_pin_length());
        info.force_pin_change = Some(self.pin.force_pin_change());
        info.max_rpids_for_set_min_pin_length = Some(MAX_MIN_PIN_LENGTH_RP_IDS);
        if self.pin.has_builtin_uv() || self.bio.is_some() {
            info.preferred_platform_uv_attempts = Some(PREFERRED_PLATFORM_UV_ATTEMPTS);
            info.uv_modality = Some(UV_MODALITY_FINGERPRINT);
        }
        info.remaining_discoverable_credentials =
            Some(usize::from(self.remaining_discoverable_credentials()));
        write_cbor(response, &info)
    }
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// The PIN/UV options: clientPin (whether a PIN is set), pinUvAuthToken,
    /// credMgmt, authnrCfg, setMinPINLength, alwaysUv (its current state) and
    /// makeCredUvNotRqd (true unless alwaysUv is on, as the spec requires).
    /// `uv` (true) only with built-in user verification; without it the option
    /// is absent, as for a key that has no such method.
    fn pin_uv_info(&self, options: &mut CtapOptions) {
        let features = self.pin.features();
        let always_uv = self.pin.always_uv();
        options.client_pin = Some(self.pin.is_pin_set());
        if self.pin.has_builtin_uv() {
            options.uv = Some(true);
        }
        options.pin_uv_auth_token = Some(true);
        options.cred_mgmt = Some(features.cred_mgmt);
        options.authnr_cfg = Some(features.authnr_cfg);
        options.set_min_pin_length = Some(features.authnr_cfg);
        options.always_uv = Some(always_uv);
        options.make_cred_uv_not_rqd = Some(!always_uv);
    }
}
