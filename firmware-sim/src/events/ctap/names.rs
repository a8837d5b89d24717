//! The names CTAP gives to command bytes, status codes and subcommands
//! (CTAP 2.1 §6, §8.2; FIDO U2F raw message formats §3, §6).

/// The name of a CTAP2 command byte.
pub fn command(byte: u8) -> &'static str {
    match byte {
        0x01 => "makeCredential",
        0x02 => "getAssertion",
        0x04 => "getInfo",
        0x06 => "clientPIN",
        0x07 => "reset",
        0x08 => "getNextAssertion",
        0x09 => "bioEnrollment",
        0x0A => "credentialManagement",
        0x0B => "selection",
        0x0C => "largeBlobs",
        0x0D => "config",
        0x40 => "bioEnrollmentPreview",
        0x41 => "credentialManagementPreview",
        0x42..=0xBF => "vendor",
        _ => "unknown",
    }
}

/// The name of a CTAP2 status byte.
pub fn status(byte: u8) -> &'static str {
    match byte {
        0x00 => "CTAP2_OK",
        0x01 => "CTAP1_ERR_INVALID_COMMAND",
        0x02 => "CTAP1_ERR_INVALID_PARAMETER",
        0x03 => "CTAP1_ERR_INVALID_LENGTH",
        0x04 => "CTAP1_ERR_INVALID_SEQ",
        0x05 => "CTAP1_ERR_TIMEOUT",
        0x06 => "CTAP1_ERR_CHANNEL_BUSY",
        0x0A => "CTAP1_ERR_LOCK_REQUIRED",
        0x0B => "CTAP1_ERR_INVALID_CHANNEL",
        0x11 => "CTAP2_ERR_CBOR_UNEXPECTED_TYPE",
        0x12 => "CTAP2_ERR_INVALID_CBOR",
        0x14 => "CTAP2_ERR_MISSING_PARAMETER",
        0x15 => "CTAP2_ERR_LIMIT_EXCEEDED",
        0x17 => "CTAP2_ERR_FP_DATABASE_FULL",
        0x18 => "CTAP2_ERR_LARGE_BLOB_STORAGE_FULL",
        0x19 => "CTAP2_ERR_CREDENTIAL_EXCLUDED",
        0x21 => "CTAP2_ERR_PROCESSING",
        0x22 => "CTAP2_ERR_INVALID_CREDENTIAL",
        0x23 => "CTAP2_ERR_USER_ACTION_PENDING",
        0x24 => "CTAP2_ERR_OPERATION_PENDING",
        0x25 => "CTAP2_ERR_NO_OPERATIONS",
        0x26 => "CTAP2_ERR_UNSUPPORTED_ALGORITHM",
        0x27 => "CTAP2_ERR_OPERATION_DENIED",
        0x28 => "CTAP2_ERR_KEY_STORE_FULL",
        0x2B => "CTAP2_ERR_UNSUPPORTED_OPTION",
        0x2C => "CTAP2_ERR_INVALID_OPTION",
        0x2D => "CTAP2_ERR_KEEPALIVE_CANCEL",
        0x2E => "CTAP2_ERR_NO_CREDENTIALS",
        0x2F => "CTAP2_ERR_USER_ACTION_TIMEOUT",
        0x30 => "CTAP2_ERR_NOT_ALLOWED",
        0x31 => "CTAP2_ERR_PIN_INVALID",
        0x32 => "CTAP2_ERR_PIN_BLOCKED",
        0x33 => "CTAP2_ERR_PIN_AUTH_INVALID",
        0x34 => "CTAP2_ERR_PIN_AUTH_BLOCKED",
        0x35 => "CTAP2_ERR_PIN_NOT_SET",
        0x36 => "CTAP2_ERR_PUAT_REQUIRED",
        0x37 => "CTAP2_ERR_PIN_POLICY_VIOLATION",
        0x39 => "CTAP2_ERR_REQUEST_TOO_LARGE",
        0x3A => "CTAP2_ERR_ACTION_TIMEOUT",
        0x3B => "CTAP2_ERR_UP_REQUIRED",
        0x3C => "CTAP2_ERR_UV_BLOCKED",
        0x3D => "CTAP2_ERR_INTEGRITY_FAILURE",
        0x3E => "CTAP2_ERR_INVALID_SUBCOMMAND",
        0x3F => "CTAP2_ERR_UV_INVALID",
        0x40 => "CTAP2_ERR_UNAUTHORIZED_PERMISSION",
        0x7F => "CTAP1_ERR_OTHER",
        0xE0..=0xEF => "CTAP2_ERR_EXTENSION",
        0xF0..=0xFF => "CTAP2_ERR_VENDOR",
        _ => "CTAP2_ERR_UNKNOWN",
    }
}

/// The name of a clientPIN subcommand.
pub fn client_pin_subcommand(n: i128) -> &'static str {
    match n {
        0x01 => "getPINRetries",
        0x02 => "getKeyAgreement",
        0x03 => "setPIN",
        0x04 => "changePIN",
        0x05 => "getPinToken",
        0x06 => "getPinUvAuthTokenUsingUvWithPermissions",
        0x07 => "getUVRetries",
        0x09 => "getPinUvAuthTokenUsingPinWithPermissions",
        _ => "unknown",
    }
}

/// The name of a credentialManagement subcommand.
pub fn cred_mgmt_subcommand(n: i128) -> &'static str {
    match n {
        0x01 => "getCredsMetadata",
        0x02 => "enumerateRPsBegin",
        0x03 => "enumerateRPsGetNextRP",
        0x04 => "enumerateCredentialsBegin",
        0x05 => "enumerateCredentialsGetNextCredential",
        0x06 => "deleteCredential",
        0x07 => "updateUserInformation",
        _ => "unknown",
    }
}

/// The name of an authenticatorConfig subcommand.
pub fn config_subcommand(n: i128) -> &'static str {
    match n {
        0x01 => "enableEnterpriseAttestation",
        0x02 => "toggleAlwaysUv",
        0x03 => "setMinPINLength",
        0xFF => "vendorPrototype",
        _ => "unknown",
    }
}

/// The name of a bioEnrollment subcommand.
pub fn bio_subcommand(n: i128) -> &'static str {
    match n {
        0x01 => "enrollBegin",
        0x02 => "enrollCaptureNextSample",
        0x03 => "cancelCurrentEnrollment",
        0x04 => "enumerateEnrollments",
        0x05 => "setFriendlyName",
        0x06 => "removeEnrollment",
        0x07 => "getFingerprintSensorInfo",
        _ => "unknown",
    }
}

/// The names of the permission bits of a pinUvAuthToken request.
pub fn permissions(bits: i128) -> Vec<&'static str> {
    const NAMES: [(i128, &str); 6] = [
        (0x01, "mc"),
        (0x02, "ga"),
        (0x04, "cm"),
        (0x08, "be"),
        (0x10, "lbw"),
        (0x20, "acfg"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The name of a U2F instruction byte.
pub fn u2f_instruction(ins: u8) -> &'static str {
    match ins {
        0x01 => "U2F_REGISTER",
        0x02 => "U2F_AUTHENTICATE",
        0x03 => "U2F_VERSION",
        _ => "U2F_UNKNOWN",
    }
}

/// The name of a U2F status word.
pub fn u2f_status(sw: u16) -> &'static str {
    match sw {
        0x9000 => "SW_NO_ERROR",
        0x6985 => "SW_CONDITIONS_NOT_SATISFIED",
        0x6A80 => "SW_WRONG_DATA",
        0x6700 => "SW_WRONG_LENGTH",
        0x6E00 => "SW_CLA_NOT_SUPPORTED",
        0x6D00 => "SW_INS_NOT_SUPPORTED",
        _ => "SW_UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(command(0x01), "makeCredential");
        assert_eq!(command(0x41), "credentialManagementPreview");
        assert_eq!(command(0x50), "vendor");
        assert_eq!(command(0x03), "unknown");
        assert_eq!(status(0x00), "CTAP2_OK");
        assert_eq!(status(0x31), "CTAP2_ERR_PIN_INVALID");
        assert_eq!(status(0xF3), "CTAP2_ERR_VENDOR");
        assert_eq!(permissions(0x03), ["mc", "ga"]);
        assert_eq!(permissions(0x24), ["cm", "acfg"]);
        assert_eq!(
            client_pin_subcommand(9),
            "getPinUvAuthTokenUsingPinWithPermissions"
        );
        assert_eq!(cred_mgmt_subcommand(6), "deleteCredential");
        assert_eq!(u2f_status(0x6985), "SW_CONDITIONS_NOT_SATISFIED");
    }
}
