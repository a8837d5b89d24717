//! CTAP2 command handling (CTAPHID_CBOR): dispatch, shared helpers, and one
//! module per command.
//!
//! Handlers return `Result<Outcome, Error>`; the dispatcher turns an error into
//! its one-byte status response. Parsing uses ctap-types after a CBOR pre-pass
//! ([`validate`]) that gives the precise CTAP2 error codes and bounds nesting.

pub mod bio_enrollment;
mod cbor_out;
mod client_pin;
mod config;
pub(crate) mod credential_management;
mod enterprise;
pub(crate) mod extensions;
mod get_assertion;
mod get_info;
pub mod large_blobs;
mod make_credential;
pub(crate) mod pin_uv;
mod reset;
pub mod validate;

#[cfg(test)]
mod tests;

use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};
use serde::Serialize;

use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::Authenticator;
use crate::crypto::CryptoError;
use crate::platform::{Storage, StorageError, UserPresence};
use crate::profile::Profile;
use crate::store::StoreError;

pub use ctap_types::ctap2::Error as Status;

/// CTAP2 command bytes handled here.
pub mod command {
    /// authenticatorMakeCredential.
    pub const MAKE_CREDENTIAL: u8 = 0x01;
    /// authenticatorGetAssertion.
    pub const GET_ASSERTION: u8 = 0x02;
    /// authenticatorGetInfo.
    pub const GET_INFO: u8 = 0x04;
    /// authenticatorClientPIN.
    pub const CLIENT_PIN: u8 = 0x06;
    /// authenticatorReset.
    pub const RESET: u8 = 0x07;
    /// authenticatorGetNextAssertion.
    pub const GET_NEXT_ASSERTION: u8 = 0x08;
    /// authenticatorBioEnrollment (keys with biometrics).
    pub const BIO_ENROLLMENT: u8 = 0x09;
    /// The CTAP 2.1 prototype code of authenticatorBioEnrollment
    /// (userVerificationMgmtPreview), accepted as an alias.
    pub const BIO_ENROLLMENT_PREVIEW: u8 = 0x40;
    /// authenticatorCredentialManagement.
    pub const CREDENTIAL_MANAGEMENT: u8 = 0x0A;
    /// authenticatorSelection.
    pub const SELECTION: u8 = 0x0B;
    /// authenticatorLargeBlobs.
    pub const LARGE_BLOBS: u8 = 0x0C;
    /// authenticatorConfig.
    pub const CONFIG: u8 = 0x0D;
    /// The CTAP 2.1 preview code of authenticatorCredentialManagement
    /// (credentialMgmtPreview), accepted as an alias.
    pub const CREDENTIAL_MANAGEMENT_PREVIEW: u8 = 0x41;
}

/// authenticatorData flag bits.
pub mod flags {
    /// User present.
    pub const UP: u8 = 0x01;
    /// User verified.
    pub const UV: u8 = 0x04;
    /// Backup eligible (never set: credentials are device-bound).
    pub const BE: u8 = 0x08;
    /// Backed up (never set).
    pub const BS: u8 = 0x10;
    /// Attested credential data included.
    pub const AT: u8 = 0x40;
    /// Extension data included.
    pub const ED: u8 = 0x80;
}

/// The largest number of credentials accepted in an allow or exclude list
/// (ctap-types rejects longer allowLists).
pub const MAX_CREDENTIAL_COUNT_IN_LIST: usize = 10;
/// The longest credential ID accepted in requests and reported in getInfo.
pub const MAX_CREDENTIAL_ID_LENGTH: usize = 255;
/// How long getNextAssertion state lives after the last (next) assertion.
pub const NEXT_ASSERTION_TIMEOUT_MS: u64 = 30_000;
/// How long after power-up a reset is allowed when enforced.
pub const RESET_WINDOW_MS: u64 = 10_000;

pub(crate) type HandlerResult = Result<Outcome, Error>;

/// Handles one CTAP2 request (command byte + CBOR) into `response`.
pub(crate) fn handle<S: Storage, U: UserPresence, R: RngCore + CryptoRng>(
    auth: &mut Authenticator<S, U, R>,
    request: &[u8],
    context: CallContext,
    response: &mut Message,
) -> Outcome {
    let Some((&cmd, body)) = request.split_first() else {
        return error_response(response, Error::InvalidLength);
    };
    if cmd != command::GET_NEXT_ASSERTION {
        // Any other command ends a getNextAssertion sequence.
        auth.pending = None;
    }
    if !matches!(
        cmd,
        command::CREDENTIAL_MANAGEMENT | command::CREDENTIAL_MANAGEMENT_PREVIEW
    ) {
        // Any other command ends a credentialManagement enumeration.
        auth.cred_mgmt = None;
    }
    if !is_known(cmd) {
        return error_response(response, Error::InvalidCommand);
    }
    // No command sees a body that is not one bounded, well-formed CBOR item
    // (ctap-types would recurse on deep nesting; see `validate`).
    if !body.is_empty() {
        if let Err(e) = validate::well_formed(body) {
            return error_response(response, e);
        }
    }
    if let Err(e) = profile_allows(&auth.config.profile, cmd, request) {
        return error_response(response, e);
    }
    let result = match cmd {
        command::MAKE_CREDENTIAL => auth.make_credential(body, &context, response),
        command::GET_ASSERTION => auth.get_assertion(body, &context, response),
        command::GET_INFO => auth.get_info(response),
        command::RESET => auth.reset(&context, response),
        command::GET_NEXT_ASSERTION => auth.get_next_assertion(&context, response),
        command::SELECTION => auth.selection(&context, response),
        command::CLIENT_PIN => auth.client_pin(body, &context, response),
        command::CREDENTIAL_MANAGEMENT | command::CREDENTIAL_MANAGEMENT_PREVIEW => {
            auth.credential_management(body, &context, response)
        }
        command::CONFIG => auth.authenticator_config(body, &context, response),
        command::LARGE_BLOBS => auth.large_blobs(body, &context, response),
        command::BIO_ENROLLMENT | command::BIO_ENROLLMENT_PREVIEW => {
            auth.bio_enrollment(body, &context, response)
        }
        _ => Err(Error::InvalidCommand),
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) => error_response(response, e),
    }
}

/// The active profile's say on a request: a command the profile lacks is
/// INVALID_COMMAND (as a key without it answers), a request longer than its
/// maxMsgSize INVALID_LENGTH, a pinUvAuthProtocol it lacks INVALID_PARAMETER,
/// a clientPIN subcommand of CTAP 2.1 without pinUvAuthToken INVALID_SUBCOMMAND.
fn profile_allows(profile: &Profile, cmd: u8, request: &[u8]) -> Result<(), Error> {
    if !profile.has_command(cmd) {
        return Err(Error::InvalidCommand);
    }
    if request.len() > profile.max_msg_size {
        return Err(Error::InvalidLength);
    }
    let body = request.get(1..).unwrap_or_default();
    if cmd == command::CLIENT_PIN && !profile.options.pin_uv_auth_token {
        // A key without pinUvAuthToken (CTAP 2.0) knows subcommands 1 to 5 only.
        if let Ok(Some(sub)) = validate::uint_value(body, 0x02) {
            if sub > 0x05 {
                return Err(Error::InvalidSubcommand);
            }
        }
    }
    if let Some(key) = Profile::pin_protocol_key(cmd) {
        // A malformed value is left to the command's own checks.
        if let Ok(Some(p)) = validate::uint_value(body, key) {
            if !profile.pin_protocols.has(p) {
                return Err(Error::InvalidParameter);
            }
        }
    }
    Ok(())
}

/// Whether `cmd` is a CTAP2 command this key implements.
fn is_known(cmd: u8) -> bool {
    matches!(
        cmd,
        command::MAKE_CREDENTIAL
            | command::GET_ASSERTION
            | command::GET_INFO
            | command::RESET
            | command::GET_NEXT_ASSERTION
            | command::SELECTION
            | command::CLIENT_PIN
            | command::CREDENTIAL_MANAGEMENT
            | command::CREDENTIAL_MANAGEMENT_PREVIEW
            | command::CONFIG
            | command::LARGE_BLOBS
            | command::BIO_ENROLLMENT
            | command::BIO_ENROLLMENT_PREVIEW
    )
}

fn error_response(response: &mut Message, status: Error) -> Outcome {
    response.clear();
    response.push(status as u8).ok();
    Outcome::Response
}

/// Writes a success status and the CBOR of `value`.
pub(crate) fn write_cbor<T: Serialize>(response: &mut Message, value: &T) -> HandlerResult {
    response.clear();
    response
        .resize(response.capacity(), 0)
        .map_err(|_| Error::Other)?;
    let written = match response.split_first_mut() {
        Some((status, rest)) => {
            *status = 0;
            cbor_smol::cbor_serialize(value, rest)
                .map_err(|_| Error::Other)?
                .len()
        }
        None => return Err(Error::Other),
    };
    response.truncate(1 + written);
    Ok(Outcome::Response)
}

/// Writes a bare success status (no CBOR).
pub(crate) fn write_ok(response: &mut Message) -> HandlerResult {
    response.clear();
    response.push(0).map_err(|_| Error::Other)?;
    Ok(Outcome::Response)
}

/// Deserializes a request body with ctap-types, mapping its errors like
/// `ctap2::Request::deserialize` does.
pub(crate) fn deserialize<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, Error> {
    cbor_smol::cbor_deserialize(body).map_err(|e| match e {
        cbor_smol::Error::SerdeMissingField => Error::MissingParameter,
        cbor_smol::Error::DeserializeBadBool => Error::CborUnexpectedType,
        _ => Error::InvalidCbor,
    })
}

/// Maps store failures to a status.
pub(crate) fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Storage(StorageError::Full) => Error::KeyStoreFull,
        _ => Error::Other,
    }
}

/// Maps crypto failures to a status.
pub(crate) fn crypto_error(_: CryptoError) -> Error {
    Error::Other
}

/// The authenticatorData `rpIdHash || flags || signCount [|| attestedCredentialData]`.
pub(crate) fn auth_data(
    rp_id_hash: &[u8; 32],
    flags: u8,
    sign_count: u32,
    attested: Option<(&[u8; 16], &[u8], &[u8])>,
) -> Result<ctap_types::ctap2::SerializedAuthenticatorData, Error> {
    let mut out = ctap_types::ctap2::SerializedAuthenticatorData::new();
    let mut put = |bytes: &[u8]| out.extend_from_slice(bytes).map_err(|_| Error::Other);
    put(rp_id_hash)?;
    put(&[flags])?;
    put(&sign_count.to_be_bytes())?;
    if let Some((aaguid, credential_id, cose_key)) = attested {
        let id_len = u16::try_from(credential_id.len()).map_err(|_| Error::Other)?;
        put(aaguid)?;
        put(&id_len.to_be_bytes())?;
        put(credential_id)?;
        put(cose_key)?;
    }
    Ok(out)
}

pub(crate) fn client_data_hash(bytes: &[u8]) -> Result<[u8; 32], Error> {
    bytes.try_into().map_err(|_| Error::InvalidLength)
}
