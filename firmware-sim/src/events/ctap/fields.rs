//! The field tables of every CTAP2 command: names (CTAP 2.1 §6) and how each
//! is shown. Public: identifiers, hashes, names, options, counters, public
//! key parameters. Length only: pinUvAuthParam (MACs), keyAgreement (keys),
//! newPinEnc/pinHashEnc (PIN material), pinUvAuthToken, hmac-secret salts,
//! salt MACs and outputs, credBlob, largeBlobKey, large-blob fragments,
//! signatures and certificates (not secret, but bulky).

use super::names;
use super::render::Show::{
    self, AuthData, Each, Fields, Length, Named, Permissions, Public, Subcommand,
};

/// PublicKeyCredentialRpEntity.
const RP: Show = Named(&[("id", Public), ("name", Public), ("icon", Public)]);
/// PublicKeyCredentialUserEntity.
const USER: Show = Named(&[
    ("id", Public),
    ("name", Public),
    ("displayName", Public),
    ("icon", Public),
]);
/// PublicKeyCredentialDescriptor.
const DESCRIPTOR: Show = Named(&[("type", Public), ("id", Public), ("transports", Public)]);
const CRED_PARAM: Show = Named(&[("alg", Public), ("type", Public)]);
const OPTIONS: Show = Named(&[("rk", Public), ("up", Public), ("uv", Public)]);

/// The hmac-secret input (getAssertion; hmac-secret-mc in makeCredential).
const HMAC_SECRET_INPUT: Show = Fields(&[
    (1, "keyAgreement", Length),
    (2, "saltEnc", Length),
    (3, "saltAuth", Length),
    (4, "pinUvAuthProtocol", Public),
]);

const MC_EXTENSIONS: Show = Named(&[
    ("credProtect", Public),
    ("hmac-secret", Public),
    ("hmac-secret-mc", HMAC_SECRET_INPUT),
    ("credBlob", Length),
    ("largeBlobKey", Public),
    ("minPinLength", Public),
    ("thirdPartyPayment", Public),
]);

const GA_EXTENSIONS: Show = Named(&[
    ("hmac-secret", HMAC_SECRET_INPUT),
    ("credBlob", Public),
    ("largeBlobKey", Public),
    ("thirdPartyPayment", Public),
]);

/// Extension outputs in authenticator data: booleans and numbers are shown,
/// byte strings (hmac-secret output, credBlob) as lengths.
pub const AUTH_DATA_EXTENSIONS: Show = Named(&[
    ("credProtect", Public),
    ("minPinLength", Public),
    ("thirdPartyPayment", Public),
    ("hmac-secret", Length),
    ("hmac-secret-mc", Length),
    ("credBlob", Length),
]);

/// A COSE public key: its type, algorithm and curve (coordinates as lengths).
pub const COSE_KEY: Show = Fields(&[(1, "kty", Public), (3, "alg", Public), (-1, "crv", Public)]);

const MC_REQUEST: Show = Fields(&[
    (1, "clientDataHash", Public),
    (2, "rp", RP),
    (3, "user", USER),
    (4, "pubKeyCredParams", Each(&CRED_PARAM)),
    (5, "excludeList", Each(&DESCRIPTOR)),
    (6, "extensions", MC_EXTENSIONS),
    (7, "options", OPTIONS),
    (8, "pinUvAuthParam", Length),
    (9, "pinUvAuthProtocol", Public),
    (10, "enterpriseAttestation", Public),
    (11, "attestationFormatsPreference", Public),
]);

const ATT_STMT: Show = Named(&[
    ("alg", Public),
    ("sig", Length),
    ("x5c", Each(&Length)),
    ("ecdaaKeyId", Length),
]);

const MC_RESPONSE: Show = Fields(&[
    (1, "fmt", Public),
    (2, "authData", AuthData),
    (3, "attStmt", ATT_STMT),
    (4, "epAtt", Public),
    (5, "largeBlobKey", Length),
]);

const GA_REQUEST: Show = Fields(&[
    (1, "rpId", Public),
    (2, "clientDataHash", Public),
    (3, "allowList", Each(&DESCRIPTOR)),
    (4, "extensions", GA_EXTENSIONS),
    (5, "options", OPTIONS),
    (6, "pinUvAuthParam", Length),
    (7, "pinUvAuthProtocol", Public),
]);

const GA_RESPONSE: Show = Fields(&[
    (1, "credential", DESCRIPTOR),
    (2, "authData", AuthData),
    (3, "signature", Length),
    (4, "user", USER),
    (5, "numberOfCredentials", Public),
    (6, "userSelected", Public),
    (7, "largeBlobKey", Length),
]);

const GET_INFO_RESPONSE: Show = Fields(&[
    (1, "versions", Public),
    (2, "extensions", Public),
    (3, "aaguid", Public),
    (4, "options", Public),
    (5, "maxMsgSize", Public),
    (6, "pinUvAuthProtocols", Public),
    (7, "maxCredentialCountInList", Public),
    (8, "maxCredentialIdLength", Public),
    (9, "transports", Public),
    (10, "algorithms", Public),
    (11, "maxSerializedLargeBlobArray", Public),
    (12, "forcePINChange", Public),
    (13, "minPINLength", Public),
    (14, "firmwareVersion", Public),
    (15, "maxCredBlobLength", Public),
    (16, "maxRPIDsForSetMinPINLength", Public),
    (17, "preferredPlatformUvAttempts", Public),
    (18, "uvModality", Public),
    (19, "certifications", Public),
    (20, "remainingDiscoverableCredentials", Public),
    (21, "vendorPrototypeConfigCommands", Public),
    (22, "attestationFormats", Public),
    (23, "uvCountSinceLastPinEntry", Public),
    (24, "longTouchForReset", Public),
]);

const CLIENT_PIN_REQUEST: Show = Fields(&[
    (1, "pinUvAuthProtocol", Public),
    (2, "subCommand", Subcommand(names::client_pin_subcommand)),
    (3, "keyAgreement", Length),
    (4, "pinUvAuthParam", Length),
    (5, "newPinEnc", Length),
    (6, "pinHashEnc", Length),
    (9, "permissions", Permissions),
    (10, "rpId", Public),
]);

const CLIENT_PIN_RESPONSE: Show = Fields(&[
    (1, "keyAgreement", Length),
    (2, "pinUvAuthToken", Length),
    (3, "pinRetries", Public),
    (4, "powerCycleState", Public),
    (5, "uvRetries", Public),
]);

const CRED_MGMT_PARAMS: Show = Fields(&[
    (1, "rpIDHash", Public),
    (2, "credentialID", DESCRIPTOR),
    (3, "user", USER),
]);

const CRED_MGMT_REQUEST: Show = Fields(&[
    (1, "subCommand", Subcommand(names::cred_mgmt_subcommand)),
    (2, "subCommandParams", CRED_MGMT_PARAMS),
    (3, "pinUvAuthProtocol", Public),
    (4, "pinUvAuthParam", Length),
]);

const CRED_MGMT_RESPONSE: Show = Fields(&[
    (1, "existingResidentCredentialsCount", Public),
    (2, "maxPossibleRemainingResidentCredentialsCount", Public),
    (3, "rp", RP),
    (4, "rpIDHash", Public),
    (5, "totalRPs", Public),
    (6, "user", USER),
    (7, "credentialID", DESCRIPTOR),
    (8, "publicKey", COSE_KEY),
    (9, "totalCredentials", Public),
    (10, "credProtect", Public),
    (11, "largeBlobKey", Length),
    (12, "thirdPartyPayment", Public),
]);

const LARGE_BLOBS_REQUEST: Show = Fields(&[
    (1, "get", Public),
    (2, "set", Length),
    (3, "offset", Public),
    (4, "length", Public),
    (5, "pinUvAuthParam", Length),
    (6, "pinUvAuthProtocol", Public),
]);

const LARGE_BLOBS_RESPONSE: Show = Fields(&[(1, "config", Length)]);

const CONFIG_REQUEST: Show = Fields(&[
    (1, "subCommand", Subcommand(names::config_subcommand)),
    (
        2,
        "subCommandParams",
        Fields(&[
            (1, "newMinPINLength", Public),
            (2, "minPinLengthRPIDs", Public),
            (3, "forceChangePin", Public),
        ]),
    ),
    (3, "pinUvAuthProtocol", Public),
    (4, "pinUvAuthParam", Length),
]);

const BIO_REQUEST: Show = Fields(&[
    (1, "modality", Public),
    (2, "subCommand", Subcommand(names::bio_subcommand)),
    (
        3,
        "subCommandParams",
        Fields(&[
            (1, "templateId", Public),
            (2, "templateFriendlyName", Public),
            (3, "timeoutMilliseconds", Public),
        ]),
    ),
    (4, "pinUvAuthProtocol", Public),
    (5, "pinUvAuthParam", Length),
    (6, "getModality", Public),
]);

const BIO_RESPONSE: Show = Fields(&[
    (1, "modality", Public),
    (2, "fingerprintKind", Public),
    (3, "maxCaptureSamplesRequiredForEnroll", Public),
    (4, "templateId", Public),
    (5, "lastEnrollSampleStatus", Public),
    (6, "remainingSamples", Public),
    (7, "templateInfos", Length),
    (8, "maxTemplateFriendlyName", Public),
]);

/// Nothing is known about this command's fields: shapes only.
const OPAQUE: Show = Fields(&[]);

/// How the request parameters of `command` are shown.
pub fn request(command: u8) -> Show {
    match command {
        0x01 => MC_REQUEST,
        0x02 => GA_REQUEST,
        0x06 => CLIENT_PIN_REQUEST,
        0x09 | 0x40 => BIO_REQUEST,
        0x0A | 0x41 => CRED_MGMT_REQUEST,
        0x0C => LARGE_BLOBS_REQUEST,
        0x0D => CONFIG_REQUEST,
        _ => OPAQUE,
    }
}

/// How the response of `command` is shown.
pub fn response(command: u8) -> Show {
    match command {
        0x01 => MC_RESPONSE,
        0x02 | 0x08 => GA_RESPONSE,
        0x04 => GET_INFO_RESPONSE,
        0x06 => CLIENT_PIN_RESPONSE,
        0x09 | 0x40 => BIO_RESPONSE,
        0x0A | 0x41 => CRED_MGMT_RESPONSE,
        0x0C => LARGE_BLOBS_RESPONSE,
        _ => OPAQUE,
    }
}
