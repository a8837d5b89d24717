//! U2F (CTAP1) over CTAPHID_MSG: raw ISO 7816-4 APDUs, short and extended length.
//!
//! - VERSION (0x03) answers "U2F_V2".
//! - REGISTER (0x01) makes a P-256 key whose key handle is a wrapped credential
//!   ID for the application parameter (the same format as CTAP2 non-discoverable
//!   credentials, so either protocol can use it). The attestation signature is
//!   made with the batch key and certificate when configured; otherwise the key
//!   answers with a self-signed certificate for the new credential key and signs
//!   with that key ("self attestation"), so registration always works.
//! - AUTHENTICATE (0x02): control byte 0x07 check-only, 0x03 enforce presence,
//!   0x08 don't enforce. Signatures use the credential's counter (the global one
//!   for key handles), persisted before the answer.
//!
//! U2F never blocks for presence: a command that needs it polls the presence
//! test, and while the user has not approved it answers 0x6985 (conditions not
//! satisfied) and leaves the request outstanding, so the host's retry succeeds
//! once the user touches the key. The touch is good for that request only
//! (channel, instruction, application parameter, key handle) and for a limited
//! time ([`presence`]).

use rand_core::{CryptoRng, RngCore};

use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::Authenticator;
use crate::credential::{self, Algorithm, CredentialFlags, CredentialKey};
use crate::crypto::der::self_signed_certificate;
use crate::crypto::SecretKey;
use crate::platform::{Storage, UserPresence};
use presence::U2fRequest;

pub mod presence;

#[cfg(test)]
mod tests;

/// ISO 7816 status words used by U2F.
pub mod sw {
    /// Success.
    pub const NO_ERROR: u16 = 0x9000;
    /// User presence required (test of user presence failed / not yet given).
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    /// Bad key handle or bad control byte.
    pub const WRONG_DATA: u16 = 0x6A80;
    /// Wrong request length.
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// Instruction not supported.
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    /// Class not supported.
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    /// An internal error (e.g. storage failure).
    pub const UNKNOWN: u16 = 0x6F00;
}

/// U2F instructions.
pub mod ins {
    /// U2F_REGISTER.
    pub const REGISTER: u8 = 0x01;
    /// U2F_AUTHENTICATE.
    pub const AUTHENTICATE: u8 = 0x02;
    /// U2F_VERSION.
    pub const VERSION: u8 = 0x03;
}

/// U2F_AUTHENTICATE control bytes.
pub mod control {
    /// Enforce user presence and sign.
    pub const ENFORCE_USER_PRESENCE: u8 = 0x03;
    /// Check only whether the key handle is ours.
    pub const CHECK_ONLY: u8 = 0x07;
    /// Sign without requiring user presence.
    pub const DONT_ENFORCE_USER_PRESENCE: u8 = 0x08;
}

/// A parsed command APDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Apdu<'a> {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (Lc bytes).
    pub data: &'a [u8],
}

/// Parses a command APDU in short or extended encoding. Length errors give
/// `Err(sw::WRONG_LENGTH)`.
pub fn parse_apdu(apdu: &[u8]) -> Result<Apdu<'_>, u16> {
    let (Some(&cla), Some(&ins), Some(&p1), Some(&p2)) =
        (apdu.first(), apdu.get(1), apdu.get(2), apdu.get(3))
    else {
        return Err(sw::WRONG_LENGTH);
    };
    let body = apdu.get(4..).unwrap_or(&[]);
    let data: &[u8] = match body {
        // Case 1 (no data, no Le) and case 2S (Le only).
        [] | [_] => &[],
        // Short Lc.
        [lc, rest @ ..] if *lc != 0 => {
            let lc = usize::from(*lc);
            if rest.len() != lc && rest.len() != lc + 1 {
                return Err(sw::WRONG_LENGTH);
            }
            rest.get(..lc).ok_or(sw::WRONG_LENGTH)?
        }
        // Extended: case 2E (00 Le Le) or 3E/4E (00 Lc Lc data [Le Le]).
        [0, hi, lo, rest @ ..] => {
            let lc = usize::from(u16::from_be_bytes([*hi, *lo]));
            if rest.is_empty() {
                &[]
            } else if lc == 0 {
                // Some hosts send Lc = 0 followed by a two-byte Le.
                if rest.len() != 2 {
                    return Err(sw::WRONG_LENGTH);
                }
                &[]
            } else {
                if rest.len() != lc && rest.len() != lc + 2 {
                    return Err(sw::WRONG_LENGTH);
                }
                rest.get(..lc).ok_or(sw::WRONG_LENGTH)?
            }
        }
        _ => return Err(sw::WRONG_LENGTH),
    };
    Ok(Apdu {
        cla,
        ins,
        p1,
        p2,
        data,
    })
}

/// Handles one U2F APDU into `response` (data followed by the status word).
pub(crate) fn handle<S: Storage, U: UserPresence, R: RngCore + CryptoRng>(
    auth: &mut Authenticator<S, U, R>,
    request: &[u8],
    context: CallContext,
    response: &mut Message,
) -> Outcome {
    response.clear();
    let status = match dispatch(auth, request, &context, response) {
        Ok(()) => sw::NO_ERROR,
        Err(status) => {
            response.clear();
            status
        }
    };
    if response.extend_from_slice(&status.to_be_bytes()).is_err() {
        response.clear();
        response.extend_from_slice(&sw::UNKNOWN.to_be_bytes()).ok();
    }
    Outcome::Response
}

fn dispatch<S: Storage, U: UserPresence, R: RngCore + CryptoRng>(
    auth: &mut Authenticator<S, U, R>,
    request: &[u8],
    context: &CallContext,
    response: &mut Message,
) -> Result<(), u16> {
    if request.len() < 4 {
        return Err(sw::WRONG_LENGTH);
    }
    if request.first() != Some(&0) {
        return Err(sw::CLA_NOT_SUPPORTED);
    }
    let instruction = request.get(1).copied().unwrap_or_default();
    if !matches!(
        instruction,
        ins::REGISTER | ins::AUTHENTICATE | ins::VERSION
    ) {
        return Err(sw::INS_NOT_SUPPORTED);
    }
    let apdu = parse_apdu(request)?;
    match apdu.ins {
        ins::VERSION => {
            if !apdu.data.is_empty() {
                return Err(sw::WRONG_LENGTH);
            }
            put(response, b"U2F_V2")
        }
        ins::REGISTER => auth.u2f_register(&apdu, context, response),
        _ => auth.u2f_authenticate(&apdu, context, response),
    }
}

fn put(response: &mut Message, bytes: &[u8]) -> Result<(), u16> {
    response.extend_from_slice(bytes).map_err(|_| sw::UNKNOWN)
}

fn split32(data: &[u8]) -> Result<([u8; 32], [u8; 32]), u16> {
    let (Some(a), Some(b)) = (data.get(..32), data.get(32..64)) else {
        return Err(sw::WRONG_LENGTH);
    };
    let mut challenge = [0u8; 32];
    let mut application = [0u8; 32];
    challenge.copy_from_slice(a);
    application.copy_from_slice(b);
    Ok((challenge, application))
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    fn u2f_register(
        &mut self,
        apdu: &Apdu<'_>,
        context: &CallContext,
        response: &mut Message,
    ) -> Result<(), u16> {
        if apdu.data.len() != 64 {
            return Err(sw::WRONG_LENGTH);
        }
        let (challenge, application) = split32(apdu.data)?;
        let request = U2fRequest::new(context.channel, ins::REGISTER, &application, &[]);
        if !self.u2f_user_present(context, request) {
            return Err(sw::CONDITIONS_NOT_SATISFIED);
        }
        let (key, public) = SecretKey::generate_with_public(&mut self.platform.rng);
        let public = public.to_uncompressed();
        let key_handle = credential::wrap(
            &self.wrap_key,
            &mut self.platform.rng,
            &application,
            CredentialFlags::default(),
            None,
            &CredentialKey::Es256(key.clone()),
        )
        .map_err(|_| sw::UNKNOWN)?;
        self.track_u2f_registration(&application, &key_handle)
            .map_err(|_| sw::UNKNOWN)?;
        let kh_len = u8::try_from(key_handle.len()).map_err(|_| sw::UNKNOWN)?;
        let signed: [&[u8]; 5] = [&[0x00], &application, &challenge, &key_handle, &public];

        put(response, &[0x05])?;
        put(response, &public)?;
        put(response, &[kh_len])?;
        put(response, &key_handle)?;
        match &self.config.attestation {
            Some(att) => {
                let batch = SecretKey::from_bytes(&att.private_key).map_err(|_| sw::UNKNOWN)?;
                let signature = batch.sign(&signed).map_err(|_| sw::UNKNOWN)?;
                put(response, &att.certificate)?;
                put(response, &signature)
            }
            None => {
                let cert = self_signed_certificate(&key).map_err(|_| sw::UNKNOWN)?;
                let signature = key.sign(&signed).map_err(|_| sw::UNKNOWN)?;
                put(response, &cert)?;
                put(response, &signature)
            }
        }
    }

    fn u2f_authenticate(
        &mut self,
        apdu: &Apdu<'_>,
        context: &CallContext,
        response: &mut Message,
    ) -> Result<(), u16> {
        let kh_len = usize::from(*apdu.data.get(64).ok_or(sw::WRONG_LENGTH)?);
        if apdu.data.len() != 65 + kh_len {
            return Err(sw::WRONG_LENGTH);
        }
        let (challenge, application) = split32(apdu.data)?;
        let key_handle = apdu.data.get(65..).ok_or(sw::WRONG_LENGTH)?;
        // U2F signs with ES256 only and cannot verify the user: EdDSA credentials
        // and credProtect userVerificationRequired ones are not usable here.
        let found = self
            .find_credential(&application, key_handle)
            .map_err(|_| sw::UNKNOWN)?
            .filter(|c| c.key.algorithm() == Algorithm::Es256 && !c.flags.uv_required());
        let presence = match apdu.p1 {
            control::CHECK_ONLY => {
                return Err(match found {
                    Some(_) => sw::CONDITIONS_NOT_SATISFIED,
                    None => sw::WRONG_DATA,
                })
            }
            control::ENFORCE_USER_PRESENCE => true,
            control::DONT_ENFORCE_USER_PRESENCE => false,
            _ => return Err(sw::WRONG_DATA),
        };
        let credential = found.ok_or(sw::WRONG_DATA)?;
        let request = U2fRequest::new(context.channel, ins::AUTHENTICATE, &application, key_handle);
        if presence && !self.u2f_user_present(context, request) {
            return Err(sw::CONDITIONS_NOT_SATISFIED);
        }
        let counter = self
            .next_sign_count(credential.slot)
            .map_err(|_| sw::UNKNOWN)?
            .to_be_bytes();
        let user_presence = [u8::from(presence)];
        let signature = credential
            .key
            .sign(&[&application, &user_presence, &counter, &challenge])
            .map_err(|_| sw::UNKNOWN)?;
        put(response, &user_presence)?;
        put(response, &counter)?;
        put(response, &signature)
    }
}
