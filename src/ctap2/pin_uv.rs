//! PIN/UV auth in authenticatorMakeCredential and authenticatorGetAssertion.
//!
//! The key has no built-in user verification: the only form of user
//! verification is a pinUvAuthToken obtained with the PIN, and the key "is
//! protected by some form of user verification" exactly while a PIN is set.
//! getInfo advertises `makeCredUvNotRqd` while alwaysUv is off, so a
//! non-discoverable credential may be made without a token.
//!
//! The handlers call, in spec order:
//! 1. [`Authenticator::pin_uv_auth_precheck`] (mc steps 1–2, ga steps 1–2);
//! 2. [`Authenticator::make_credential_uv_policy`] (mc steps 5–8) or
//!    [`Authenticator::get_assertion_uv_policy`] (ga steps 4–5);
//! 3. [`Authenticator::verify_pin_uv_auth`] (mc step 11, ga step 6), whose
//!    result is the UV flag;
//! 4. after collecting user presence, `PinUv::consume_after_user_presence`
//!    (mc step 14.4, ga step 9).

use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};

use crate::app::{CallContext, Outcome};
use crate::authenticator::Authenticator;
use crate::pin::RpCheck;
use crate::platform::{Storage, UserPresence};

#[cfg(test)]
pub(crate) mod platform;
#[cfg(test)]
mod tests;

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Steps 1–2. A zero-length pinUvAuthParam is the platform's "touch to
    /// select" probe: after user presence it is answered with PIN_NOT_SET, or
    /// PIN_INVALID when a PIN is set. Otherwise a pinUvAuthParam needs a
    /// supported pinUvAuthProtocol.
    pub(crate) fn pin_uv_auth_precheck(
        &self,
        pin_auth: Option<&[u8]>,
        pin_protocol: Option<u32>,
        context: &CallContext,
    ) -> Result<Option<Outcome>, Error> {
        match pin_auth {
            None => Ok(None),
            Some([]) if !context.up_granted => Ok(Some(Outcome::NeedsPresence)),
            Some([]) if self.pin.is_pin_set() => Err(Error::PinInvalid),
            Some([]) => Err(Error::PinNotSet),
            Some(_) => match pin_protocol {
                None => Err(Error::MissingParameter),
                Some(1 | 2) => Ok(None),
                Some(_) => Err(Error::InvalidParameter),
            },
        }
    }

    /// makeCredential steps 5 ("uv"), 6 (alwaysUv) and 7–8 (makeCredUvNotRqd).
    ///
    /// `uv=true` without a pinUvAuthParam asks for built-in UV, which this key
    /// does not have: INVALID_OPTION (the spec keeps the CTAP 2.0 code). With a
    /// pinUvAuthParam the option counts as false. A token is then required
    /// (PUAT_REQUIRED) when alwaysUv is on (also while no PIN is set: the
    /// platform must set one), or for a discoverable credential while a PIN is set.
    pub(crate) fn make_credential_uv_policy(
        &self,
        has_pin_auth: bool,
        uv_option: Option<bool>,
        rk: bool,
    ) -> Result<(), Error> {
        if !has_pin_auth && uv_option == Some(true) {
            return Err(Error::InvalidOption);
        }
        let always_uv = self.pin.always_uv();
        if always_uv && !self.pin.is_pin_set() {
            return Err(Error::PinRequired);
        }
        if !has_pin_auth && (always_uv || (self.pin.is_pin_set() && rk)) {
            return Err(Error::PinRequired);
        }
        Ok(())
    }

    /// getAssertion steps 4 ("uv") and 5 (alwaysUv, which only applies when
    /// user presence is asked for: a silent `up=false` pre-flight still works).
    pub(crate) fn get_assertion_uv_policy(
        &self,
        has_pin_auth: bool,
        uv_option: Option<bool>,
        up: bool,
    ) -> Result<(), Error> {
        if !has_pin_auth && uv_option == Some(true) {
            return Err(Error::InvalidOption);
        }
        if up && self.pin.always_uv() && (!has_pin_auth || !self.pin.is_pin_set()) {
            return Err(Error::PinRequired);
        }
        Ok(())
    }

    /// makeCredential step 11 / getAssertion step 6: verifies a pinUvAuthParam
    /// over the clientDataHash against the pinUvAuthToken, which must carry
    /// `permission` and be bound to `rp_id` (or becomes bound to it). Returns
    /// whether the user is verified: the UV flag of the response.
    ///
    /// A pinUvAuthParam while no PIN is set is PIN_NOT_SET (as in CTAP 2.0: no
    /// token can exist).
    pub(crate) fn verify_pin_uv_auth(
        &mut self,
        pin_auth: Option<&[u8]>,
        pin_protocol: Option<u32>,
        client_data_hash: &[u8; 32],
        permission: u8,
        rp_id: &str,
        now_ms: u64,
    ) -> Result<bool, Error> {
        let Some(param) = pin_auth else {
            return Ok(false);
        };
        if !self.pin.is_pin_set() {
            return Err(Error::PinNotSet);
        }
        let protocol = match pin_protocol {
            None => None,
            Some(p) => Some(u8::try_from(p).map_err(|_| Error::InvalidParameter)?),
        };
        self.pin.verify_pin_uv_auth_param(
            protocol,
            param,
            &[client_data_hash],
            permission,
            RpCheck::Bind(rp_id),
            now_ms,
        )?;
        Ok(true)
    }
}
