//! authenticatorReset (0x07) and authenticatorSelection (0x0B).

use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};

use super::{store_error, write_ok, HandlerResult, RESET_WINDOW_MS};
use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::Authenticator;
use crate::platform::{Storage, UserPresence};

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Deletes all resident credentials and replaces the device secret (so every
    /// credential ID issued before stops working), after user presence. With
    /// `Config::reset_requires_fresh_power_up`, only within 10 s of power-up.
    pub(crate) fn reset(&mut self, context: &CallContext, response: &mut Message) -> HandlerResult {
        if self.config.reset_requires_fresh_power_up && context.now_ms > RESET_WINDOW_MS {
            return Err(Error::NotAllowed);
        }
        if !context.up_granted {
            return Ok(Outcome::NeedsPresence);
        }
        let wiped = self.wipe();
        // The PIN and the config it carries (alwaysUv, minPINLength, forcePINChange)
        // go too; key agreement keys and tokens are regenerated even if that fails.
        let pin = self
            .pin
            .reset(&mut self.platform.storage, &mut self.platform.rng);
        wiped.map_err(store_error)?;
        pin.map_err(|_| Error::Other)?;
        write_ok(response)
    }

    /// Waits for user presence, then succeeds (the platform uses it to let the
    /// user pick one of several keys).
    pub(crate) fn selection(
        &mut self,
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        if !context.up_granted {
            return Ok(Outcome::NeedsPresence);
        }
        write_ok(response)
    }
}
