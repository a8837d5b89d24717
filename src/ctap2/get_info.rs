//! authenticatorGetInfo (0x04).

use ctap_types::ctap2::get_info::{CtapOptions, ResponseBuilder, Transport, Version};
use ctap_types::webauthn::{
    FilteredPublicKeyCredentialParameters, KnownPublicKeyCredentialParameters,
};
use rand_core::{CryptoRng, RngCore};

use super::{write_cbor, HandlerResult, MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_ID_LENGTH};
use crate::app::{Message, MAX_MESSAGE_SIZE};
use crate::authenticator::Authenticator;
use crate::platform::{Storage, UserPresence};

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// The getInfo response. Extensions (hmac-secret, credProtect) and the
    /// clientPin option are added here when those features land.
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
        info.options = Some(options);
        info.max_msg_size = Some(MAX_MESSAGE_SIZE);
        info.max_creds_in_list = Some(MAX_CREDENTIAL_COUNT_IN_LIST);
        info.max_cred_id_length = Some(MAX_CREDENTIAL_ID_LENGTH);
        let mut transports = heapless::Vec::new();
        transports.push(Transport::Usb).ok();
        info.transports = Some(transports);
        let mut algorithms = heapless::Vec::new();
        algorithms
            .push(KnownPublicKeyCredentialParameters::ES256)
            .ok();
        info.algorithms = Some(FilteredPublicKeyCredentialParameters(algorithms));
        info.firmware_version = Some(self.config.firmware_version as usize);
        info.remaining_discoverable_credentials =
            Some(usize::from(self.remaining_discoverable_credentials()));
        write_cbor(response, &info)
    }
}
