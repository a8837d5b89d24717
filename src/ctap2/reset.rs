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
    /// `Config::reset_requires_fresh_power_up`, the request must arrive within
    /// 10 s of power-up (CTAP 2.1 §6.6: NOT_ALLOWED after that); the window is
    /// checked before presence is collected only, so a touch that takes the
    /// user past the 10 s still completes the reset.
    pub(crate) fn reset(&mut self, context: &CallContext, response: &mut Message) -> HandlerResult {
        if !context.up_granted {
            if self.config.reset_requires_fresh_power_up && context.now_ms > RESET_WINDOW_MS {
                return Err(Error::NotAllowed);
            }
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

#[cfg(test)]
mod tests {
    use crate::app::Outcome;
    use crate::authenticator::testkit::*;
    use crate::authenticator::Config;

    const NOT_ALLOWED: u8 = 0x30;

    fn windowed() -> Harness {
        Harness::with_config(Config {
            aaguid: AAGUID,
            reset_requires_fresh_power_up: true,
            ..Config::default()
        })
    }

    #[test]
    fn the_reset_window_is_checked_before_the_touch_only() {
        let mut h = windowed();
        let made = h.make_credential(Mc::new("example.com", b"u").rk().build());
        // Asked at 9.5 s, touched at 14 s: the reset happens.
        h.now_ms = 9_500;
        let (outcome, _, _) = h.ctap2_once(0x07, None);
        assert_eq!(outcome, Outcome::NeedsPresence);
        h.now_ms = 14_000;
        let (outcome, answer) = h.raw(crate::app::Protocol::Cbor, &[0x07], true);
        assert_eq!((outcome, answer), (Outcome::Response, std::vec![0x00]));
        let cdh = client_data_hash("after reset");
        let (status, _, _) = h.get_assertion(ga("example.com", &cdh, &[&made.id], None));
        assert_eq!(status, 0x2E, "credentials are gone");
    }

    #[test]
    fn a_reset_asked_after_10_s_is_not_allowed_and_changes_nothing() {
        let mut h = windowed();
        let made = h.make_credential(Mc::new("example.com", b"u").rk().build());
        h.now_ms = 10_001;
        let (outcome, status, _) = h.ctap2_once(0x07, None);
        assert_eq!((outcome, status), (Outcome::Response, NOT_ALLOWED));
        let cdh = client_data_hash("kept");
        let (status, _, _) = h.get_assertion(ga("example.com", &cdh, &[&made.id], None));
        assert_eq!(status, 0);
        // Exactly 10 s is still inside the window.
        h.now_ms = 10_000;
        let (status, _, needed) = h.ctap2(0x07, None);
        assert_eq!((status, needed), (0, true));
    }

    #[test]
    fn without_the_window_a_reset_works_at_any_time() {
        let mut h = Harness::new();
        h.now_ms = 3_600_000;
        let (status, _, needed) = h.ctap2(0x07, None);
        assert_eq!((status, needed), (0, true));
    }
}
