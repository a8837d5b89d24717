//! authenticatorReset (0x07) and authenticatorSelection (0x0B).
//!
//! # Reset is all or nothing
//!
//! A reset replaces the device secret (every credential ID issued before stops
//! opening), and removes the large-blob array, every resident credential
//! record and the PIN record, one storage operation at a time. A crash or a
//! storage failure between two of them must not leave a key that lost its
//! credentials but kept its PIN, or the other way round. So the first write is
//! a journal record ([`RecordKey::ResetJournal`]), and the last step removes
//! it:
//!
//! - until the journal is written nothing has changed, and a failure leaves
//!   the key as it was (PIN and credentials);
//! - once it is written the reset is decided: if a later step fails, the key
//!   finishes the reset before it serves anything else, at the next request
//!   ([`Authenticator::finish_pending_reset`]) or at the next power-up
//!   ([`crate::authenticator::Authenticator::new`]), and answers with an error
//!   until it could. Every step can be repeated, so finishing again after a
//!   crash in the middle is safe, and nothing new is created while the
//!   journal exists.

use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};

use super::{store_error, write_ok, HandlerResult, RESET_WINDOW_MS};
use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::Authenticator;
use crate::platform::{RecordKey, Storage, StorageError, UserPresence};
use crate::store::StoreError;

/// The reset journal record: magic and version.
const JOURNAL: [u8; 5] = *b"FKRJ\x01";

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
        self.factory_reset().map_err(store_error)?;
        write_ok(response)
    }

    /// The reset itself, all or nothing (see the module documentation): the
    /// journal first, then [`Authenticator::finish_pending_reset`].
    pub(crate) fn factory_reset(&mut self) -> Result<(), StoreError> {
        self.platform
            .storage
            .write(RecordKey::ResetJournal, &JOURNAL)?;
        self.reset_pending = true;
        self.finish_pending_reset()
    }

    /// Finishes a decided reset, if one is pending, before anything else
    /// reads or changes the key's state: CTAP requests
    /// ([`crate::app::App::handle`]), the instrument API and the PIN/UV
    /// controls all call it first, so none of them ever sees or builds on a
    /// half-reset key. Fails (changing nothing more) while the reset cannot
    /// finish.
    pub(crate) fn settle_reset(&mut self) -> Result<(), StoreError> {
        if self.reset_pending {
            self.finish_pending_reset()
        } else {
            Ok(())
        }
    }

    /// Whether storage holds the journal of a reset that did not finish.
    pub(crate) fn reset_journal_exists(&mut self) -> Result<bool, StorageError> {
        let mut buf = [0u8; JOURNAL.len()];
        match self
            .platform
            .storage
            .read(RecordKey::ResetJournal, &mut buf)
        {
            Ok(found) => Ok(found.is_some()),
            // Whatever it holds, a journal record means a reset was decided.
            Err(StorageError::TooLarge) | Err(StorageError::Corrupt) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Carries out a decided reset: a new device secret (the global counter is
    /// kept), no large-blob array, no resident credential, no PIN record (with
    /// it go alwaysUv, minPINLength and forcePINChange; key agreement keys and
    /// tokens are regenerated), and finally no journal. Each step can be
    /// repeated; until all succeeded the reset stays pending.
    pub(crate) fn finish_pending_reset(&mut self) -> Result<(), StoreError> {
        self.wipe()?;
        self.pin
            .reset(&mut self.platform.storage, &mut self.platform.rng)?;
        self.reset_bio()?;
        self.reset_enterprise()?;
        self.platform.storage.remove(RecordKey::ResetJournal)?;
        self.reset_pending = false;
        Ok(())
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
    use std::vec::Vec;

    use crate::app::Outcome;
    use crate::authenticator::testkit::*;
    use crate::authenticator::Config;
    use crate::ctap2::pin_uv::platform::{mc_with, perm, Platform, PIN};
    use crate::platform::RecordKey;

    const NOT_ALLOWED: u8 = 0x30;
    const OTHER: u8 = 0x7F;

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

    /// A key with a PIN, two discoverable credentials and a non-discoverable
    /// one; returns the credential IDs.
    fn populated() -> (Harness, Platform, Vec<Vec<u8>>) {
        let mut h = Harness::new();
        let mut p = Platform::new(2);
        assert_eq!(p.set_pin(&mut h, PIN), 0);
        let mut ids = Vec::new();
        for user in [b"u1".as_slice(), b"u2"] {
            let token = p.must_token(&mut h, perm::MC, Some("example.com"));
            let mc = Mc::new("example.com", user).rk();
            ids.push(h.make_credential(mc_with(&mc, &token)).id);
        }
        ids.push(h.make_credential(Mc::new("example.com", b"u3").build()).id);
        (h, p, ids)
    }

    /// What the key holds, as a client sees it: whether a PIN is set, and
    /// how many of `ids` it still recognizes.
    fn observe(h: &mut Harness, p: &mut Platform, ids: &[Vec<u8>]) -> (bool, usize) {
        let pin_set = p.retries(h).is_ok();
        let cdh = client_data_hash("observe");
        let known = ids
            .iter()
            .filter(|id| {
                let request = ga("example.com", &cdh, &[id.as_slice()], Some(false));
                h.get_assertion(request).0 == 0
            })
            .count();
        (pin_set, known)
    }

    #[test]
    fn the_instrument_api_and_the_controls_never_see_a_half_reset_key() {
        use crate::authenticator::instrument::{NewCredential, PrivateKey};
        let (mut h, _, _) = populated();
        // The journal and the new device secret are written, then storage fails.
        h.storage.fail_writes_after(2);
        assert_eq!(h.ctap2(0x07, None).0, OTHER);
        let mut listed = 0;
        assert!(h.auth.visit_credentials(|_| listed += 1).is_err());
        assert_eq!(listed, 0);
        assert!(h.auth.pin_uv_status().is_err());
        assert!(h.auth.control_set_pin("97531").is_err());
        let key = PrivateKey::Es256([7; 32]);
        let new = NewCredential {
            id: b"seeded",
            rp_id: "example.com",
            resident: false,
            private_key: &key,
            user_handle: b"",
            sign_count: 0,
            large_blob: None,
            backup_eligible: None,
            backup_state: None,
            user_name: None,
            user_display_name: None,
        };
        assert!(h.auth.import_credential(&new).is_err());
        // Storage works again: the first of them finishes the reset.
        h.storage.set_fail_writes(None);
        let status = h.auth.pin_uv_status().unwrap();
        assert!(!status.pin_set);
        h.auth.visit_credentials(|_| listed += 1).unwrap();
        assert_eq!(listed, 0, "every credential went with the PIN");
        assert!(h.storage.get(RecordKey::ResetJournal).is_none());
    }

    #[test]
    fn reset_is_all_or_nothing_whichever_write_fails() {
        // Issue 10 §1 defect 3. How many writes and removes a whole reset takes:
        let (mut h, _, _) = populated();
        let before = h.storage.write_count();
        assert_eq!(h.ctap2(0x07, None).0, 0);
        let steps = h.storage.write_count() - before;
        assert!(steps > 100, "{steps}");
        assert!(h.storage.get(RecordKey::ResetJournal).is_none());

        for failing in 0..steps {
            let (mut h, mut p, ids) = populated();
            h.storage.fail_writes_after(failing);
            let (status, _, needed) = h.ctap2(0x07, None);
            assert_eq!((status, needed), (OTHER, true), "write {failing}");
            let decided = failing > 0;
            // The storage still fails: the key answers nothing but errors
            // rather than show a half-reset state.
            if decided {
                assert_eq!(h.ctap2(0x04, None).0, OTHER, "write {failing}");
            }
            // Whatever was written, loaded again: all or nothing.
            h.storage.set_fail_writes(None);
            let mut reloaded = Harness::on_storage(h.storage.clone(), h.config.clone(), 99);
            let expected = if decided { (false, 0) } else { (true, 3) };
            assert_eq!(
                observe(&mut reloaded, &mut p, &ids),
                expected,
                "reloaded after a failure at write {failing}"
            );
            assert!(reloaded.storage.get(RecordKey::ResetJournal).is_none());
            // The running key, once its storage works again, finishes too.
            assert_eq!(observe(&mut h, &mut p, &ids), expected, "write {failing}");
        }
    }
}
