//! PIN/UV auth in authenticatorMakeCredential and authenticatorGetAssertion.
//!
//! User verification comes from a pinUvAuthToken (obtained with the PIN, or
//! with built-in UV when the key has it) or, when the key has built-in user
//! verification ([`crate::authenticator::Config::builtin_uv`]), from the
//! command's own `uv: true` option. The key "is protected by some form of user
//! verification" while a PIN is set or built-in UV exists. getInfo advertises
//! `makeCredUvNotRqd` while alwaysUv is off, so a non-discoverable credential
//! may be made without UV.
//!
//! The handlers call, in spec order:
//! 1. [`Authenticator::pin_uv_auth_precheck`] (mc steps 1–2, ga steps 1–2);
//! 2. [`Authenticator::make_credential_uv_policy`] (mc steps 5–8) or
//!    [`Authenticator::get_assertion_uv_policy`] (ga steps 4–5), whose result
//!    says whether built-in UV is to be performed;
//! 3. [`Authenticator::verify_pin_uv_auth`] (mc step 11, ga step 6), whose
//!    [`Verification`] gives the UV flag and whether user presence is
//!    already evidenced (built-in UV, or a token that carries it);
//! 4. after collecting user presence, [`Authenticator::after_user_presence`]
//!    (mc step 14.4, ga step 9), which uses up the token only when this very
//!    request used it.

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
#[cfg(test)]
mod uv_tests;

/// What mc step 11 / ga step 6 established.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Verification {
    /// The user is verified: the UV flag of the response.
    pub(crate) uv: bool,
    /// User presence is already evidenced: built-in UV was performed (the
    /// sensor touch), or the token's userPresent flag is set.
    pub(crate) up: bool,
    /// The request carried a pinUvAuthParam that the pinUvAuthToken verified.
    pub(crate) token: bool,
}

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
    /// Returns whether built-in UV is to be performed.
    ///
    /// `uv=true` with a pinUvAuthParam counts as false. Without one it asks
    /// for built-in UV: INVALID_OPTION (the spec keeps the CTAP 2.0 code) when
    /// the key has none. alwaysUv: a key not protected by any UV needs one set
    /// up (PUAT_REQUIRED); without a token or `uv`, built-in UV is performed if
    /// it exists, else a token is required (PUAT_REQUIRED). A discoverable
    /// credential on a protected key needs UV: PUAT_REQUIRED while a PIN is
    /// set, else OPERATION_DENIED.
    pub(crate) fn make_credential_uv_policy(
        &self,
        has_pin_auth: bool,
        uv_option: Option<bool>,
        rk: bool,
    ) -> Result<bool, Error> {
        let mut uv = self.uv_option(has_pin_auth, uv_option)?;
        if self.pin.always_uv() {
            uv = self.always_uv_policy(has_pin_auth, uv)?;
        }
        if self.pin.is_protected() && rk && !has_pin_auth && !uv {
            return Err(if self.pin.is_pin_set() {
                Error::PinRequired
            } else {
                Error::OperationDenied
            });
        }
        Ok(uv)
    }

    /// getAssertion steps 4 ("uv") and 5 (alwaysUv, which only applies when
    /// user presence is asked for: a silent `up=false` pre-flight still works).
    /// Returns whether built-in UV is to be performed.
    pub(crate) fn get_assertion_uv_policy(
        &self,
        has_pin_auth: bool,
        uv_option: Option<bool>,
        up: bool,
    ) -> Result<bool, Error> {
        let uv = self.uv_option(has_pin_auth, uv_option)?;
        if up && self.pin.always_uv() {
            return self.always_uv_policy(has_pin_auth, uv);
        }
        Ok(uv)
    }

    /// The "uv" option: true asks for built-in UV unless a pinUvAuthParam is
    /// present; INVALID_OPTION when the key has no built-in UV.
    fn uv_option(&self, has_pin_auth: bool, uv_option: Option<bool>) -> Result<bool, Error> {
        let uv = !has_pin_auth && uv_option == Some(true);
        if uv && !self.pin.has_builtin_uv() {
            return Err(Error::InvalidOption);
        }
        Ok(uv)
    }

    /// The alwaysUv step: PUAT_REQUIRED when the key is not protected by any
    /// UV; otherwise a token or `uv` is kept, and without either built-in UV
    /// is performed if it exists, else PUAT_REQUIRED.
    fn always_uv_policy(&self, has_pin_auth: bool, uv: bool) -> Result<bool, Error> {
        if !self.pin.is_protected() {
            return Err(Error::PinRequired);
        }
        if has_pin_auth || uv {
            return Ok(uv);
        }
        if self.pin.has_builtin_uv() {
            Ok(true)
        } else {
            Err(Error::PinRequired)
        }
    }

    /// makeCredential step 11 / getAssertion step 6: verifies a pinUvAuthParam
    /// over the clientDataHash against the pinUvAuthToken, which must carry
    /// `permission` and be bound to `rp_id` (or becomes bound to it); or,
    /// without one and with `builtin_uv` (from the policy step), performs
    /// built-in UV (UV_INVALID / UV_BLOCKED on failure).
    ///
    /// A pinUvAuthParam while no PIN is set and without built-in UV is
    /// PIN_NOT_SET (as in CTAP 2.0: no token can exist).
    // The request's parts travel as plain arguments.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn verify_pin_uv_auth(
        &mut self,
        pin_auth: Option<&[u8]>,
        pin_protocol: Option<u32>,
        client_data_hash: &[u8; 32],
        permission: u8,
        rp_id: &str,
        builtin_uv: bool,
        now_ms: u64,
    ) -> Result<Verification, Error> {
        let Some(param) = pin_auth else {
            if !builtin_uv {
                return Ok(Verification::default());
            }
            self.pin.perform_builtin_uv(
                &mut self.platform.storage,
                &mut self.platform.presence,
                now_ms,
            )?;
            return Ok(Verification {
                uv: true,
                up: true,
                token: false,
            });
        };
        if !self.pin.is_protected() {
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
        Ok(Verification {
            uv: true,
            up: self.pin.user_present_flag(now_ms),
            token: true,
        })
    }

    /// makeCredential step 14.4 / getAssertion step 9, after user presence
    /// was collected: "if the pinUvAuthParam parameter is present",
    /// `clearUserPresentFlag()`, `clearUserVerifiedFlag()` and
    /// `clearPinUvAuthTokenPermissionsExceptLbw()`. A request without one
    /// (another application's, say) leaves the token alone.
    pub(crate) fn after_user_presence(&mut self, verification: &Verification) {
        if verification.token {
            self.pin.consume_after_user_presence();
        }
    }
}
