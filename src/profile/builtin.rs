//! The built-in profiles, by name (see the README's profiles table).

use super::{
    Algorithms, AttestationKind, Extensions, Options, PinProtocols, Profile, Quirk, Quirks,
    Transports, Versions,
};
use crate::app::MAX_MESSAGE_SIZE;
use crate::authenticator::CounterMode;
use crate::ctap2::{MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_ID_LENGTH};

/// `security-key`: today's CTAP 2.1 key (the default).
pub const SECURITY_KEY: Profile = Profile {
    versions: Versions {
        u2f_v2: true,
        fido_2_0: true,
        fido_2_1: true,
    },
    extensions: Extensions {
        cred_protect: true,
        hmac_secret: true,
        hmac_secret_mc: true,
        cred_blob: true,
        large_blob_key: true,
        min_pin_length: true,
    },
    options: Options {
        rk: true,
        plat: true,
        client_pin: true,
        pin_uv_auth_token: true,
        cred_mgmt: true,
        authnr_cfg: true,
        set_min_pin_length: true,
        large_blobs: true,
        always_uv: true,
        make_cred_uv_not_rqd: true,
    },
    algorithms: Algorithms {
        es256: true,
        eddsa: true,
    },
    max_msg_size: MAX_MESSAGE_SIZE,
    max_creds_in_list: MAX_CREDENTIAL_COUNT_IN_LIST,
    max_cred_id_length: MAX_CREDENTIAL_ID_LENGTH,
    list_limits_info: true,
    min_pin_length_info: true,
    remaining_credentials_info: true,
    pin_protocols: PinProtocols {
        one: true,
        two: true,
    },
    transports: Transports {
        usb: true,
        nfc: false,
    },
    firmware_version: Some(None),
    aaguid: None,
    counter_mode: CounterMode::PerCredential,
    attestation: AttestationKind::Device,
    backup_eligible: false,
    backup_state: false,
    resident_only: false,
    builtin_uv: false,
    quirks: Quirks {
        reject_long_lists: false,
        reject_long_credential_ids: false,
        reject_missing_display_name: false,
        reject_silent_authentication: false,
        reject_all_extensions: false,
    },
};

/// `ctap2.0`: an older key. FIDO_2_0 and U2F_V2, PIN protocol 1 only,
/// hmac-secret as its only extension, none of the CTAP 2.1 commands
/// (credentialManagement, largeBlobs, config, selection), options or fields.
pub const CTAP2_0: Profile = Profile {
    versions: Versions {
        u2f_v2: true,
        fido_2_0: true,
        fido_2_1: false,
    },
    extensions: Extensions {
        cred_protect: false,
        hmac_secret: true,
        hmac_secret_mc: false,
        cred_blob: false,
        large_blob_key: false,
        min_pin_length: false,
    },
    options: Options {
        rk: true,
        plat: true,
        client_pin: true,
        pin_uv_auth_token: false,
        cred_mgmt: false,
        authnr_cfg: false,
        set_min_pin_length: false,
        large_blobs: false,
        always_uv: false,
        make_cred_uv_not_rqd: false,
    },
    algorithms: Algorithms {
        es256: true,
        eddsa: false,
    },
    max_msg_size: super::SMALL_MAX_MSG_SIZE,
    list_limits_info: false,
    min_pin_length_info: false,
    remaining_credentials_info: false,
    pin_protocols: PinProtocols {
        one: true,
        two: false,
    },
    firmware_version: None,
    ..SECURITY_KEY
};

/// `u2f`: a U2F-only key (U2F_V2). No CTAPHID_CBOR: INIT has no CBOR
/// capability and CBOR requests are refused, so platforms fall back to U2F.
pub const U2F: Profile = Profile {
    versions: Versions {
        u2f_v2: true,
        fido_2_0: false,
        fido_2_1: false,
    },
    ..CTAP2_0
};

/// `synced-passkey`: a passkey provider as the relying party sees it. BE=1,
/// BS=1, built-in UV, every credential discoverable, attestation `none`, the
/// all-zero AAGUID (as such providers report with `none`), signCount always 0,
/// no U2F.
pub const SYNCED_PASSKEY: Profile = Profile {
    versions: Versions {
        u2f_v2: false,
        fido_2_0: true,
        fido_2_1: true,
    },
    aaguid: Some([0; 16]),
    counter_mode: CounterMode::Zero,
    attestation: AttestationKind::None,
    backup_eligible: true,
    backup_state: true,
    resident_only: true,
    builtin_uv: true,
    ..SECURITY_KEY
};

/// `strict`: today's key with every quirk on (see [`Quirk`]).
pub const STRICT: Profile = strict();

const fn strict() -> Profile {
    let mut p = SECURITY_KEY;
    p.max_msg_size = super::SMALL_MAX_MSG_SIZE;
    p.max_cred_id_length = super::SHORT_MAX_CREDENTIAL_ID_LENGTH;
    p.max_creds_in_list = 1;
    p.quirks = Quirks {
        reject_long_lists: true,
        reject_long_credential_ids: true,
        reject_missing_display_name: true,
        reject_silent_authentication: true,
        reject_all_extensions: false,
    };
    p
}

/// The built-in profiles and their names, the default first.
pub const ALL: [(&str, Profile); 5] = [
    ("security-key", SECURITY_KEY),
    ("ctap2.0", CTAP2_0),
    ("u2f", U2F),
    ("synced-passkey", SYNCED_PASSKEY),
    ("strict", STRICT),
];

/// The built-in profile called `name`.
pub fn by_name(name: &str) -> Option<Profile> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// The quirks `strict` turns on, by name (reject-all-extensions is left out:
/// it would refuse every passkey request with credProtect).
pub const STRICT_QUIRKS: [Quirk; 5] = [
    Quirk::SmallMaxMsgSize,
    Quirk::ShortCredentialIds,
    Quirk::OneCredentialPerList,
    Quirk::RejectMissingDisplayName,
    Quirk::RejectSilentAuthentication,
];
