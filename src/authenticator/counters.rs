//! Signature counters: durable without a storage write per signature.
//!
//! # The guarantee
//!
//! Every credential's counter is strictly increasing, across power cycles,
//! restarts, `kill -9` and power loss (in every mode but
//! [`CounterMode::Zero`]), and no value is ever signed before it is covered
//! by durable state. Only one signature in [`COUNTER_BLOCK`] writes anything.
//!
//! # How: reservations
//!
//! Two kinds of durable marks, each at least every value it covers that was
//! ever issued:
//! - each credential record's counter field is the credential's mark;
//! - the device record's counter mark covers every value the key ever
//!   issued, for any credential.
//!
//! In memory the key keeps each record's live counter and the largest value
//! issued so far (`global_count`). A signature takes the next value; only when
//! it passes a mark is that mark written, [`COUNTER_BLOCK`] − 1 values ahead,
//! and only after the write succeeded is the value used. After any restart a
//! credential continues from its record's mark and the key from the device
//! mark, so a counter may **jump forward** by up to [`COUNTER_BLOCK`] after a
//! restart (allowed: relying parties only require an increase).
//! [`Authenticator::persist_counters`] writes the exact values (a clean
//! shutdown calls it), so a restart after it jumps nothing.
//!
//! A non-discoverable credential whose record was forgotten to make room (or
//! that was issued before records existed) uses the device-wide value: the
//! next value above everything ever issued, which is above its own history.
//!
//! # Modes ([`CounterMode`])
//! - per credential (default): +1 per signature, per credential;
//! - global: one device-wide counter, every credential takes its next value;
//! - zero: always 0 (as passkey providers do); counters do not move;
//! - random increments: per credential, +1 to +[`MAX_RANDOM_INCREMENT`].
//!
//! Switching modes keeps every guarantee: each mode's next value is above the
//! credential's live counter.

use rand_core::{CryptoRng, RngCore};

use super::Authenticator;
use crate::platform::{Storage, UserPresence};
use crate::store::{self, SlotUse, StoreError, MAX_CREDENTIAL_RECORDS};

/// How many counter values one durable write reserves.
pub const COUNTER_BLOCK: u32 = 256;
/// The largest step of [`CounterMode::RandomIncrements`].
pub const MAX_RANDOM_INCREMENT: u32 = 16;

/// How signature counters advance (issue 13's counter modes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CounterMode {
    /// One counter per credential, +1 per signature.
    #[default]
    PerCredential,
    /// One device-wide counter shared by all credentials.
    Global,
    /// Always 0 ("no counter", as synced passkeys report).
    Zero,
    /// Per credential, a random step of 1 to [`MAX_RANDOM_INCREMENT`].
    RandomIncrements,
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// The counter value for the next signature of the credential whose
    /// record is in `slot` (`None`: no record, the device-wide value), made
    /// durable first. Nothing may be signed with it unless this returned `Ok`.
    pub(crate) fn next_sign_count(&mut self, slot: Option<u16>) -> Result<u32, StoreError> {
        let current = match slot {
            Some(s) => self.table.count(s),
            None => self.global_count,
        };
        let next = match self.config.counter_mode {
            CounterMode::Zero => return Ok(0),
            CounterMode::PerCredential => current.checked_add(1),
            CounterMode::RandomIncrements => {
                let step = 1 + self.platform.rng.next_u32() % MAX_RANDOM_INCREMENT;
                current.checked_add(step)
            }
            CounterMode::Global => self.global_count.max(current).checked_add(1),
        }
        .ok_or(StoreError::CounterExhausted)?;
        self.reserve(slot, next)?;
        if let Some(s) = slot {
            self.table.set_count(s, next);
        }
        self.global_count = self.global_count.max(next);
        Ok(next)
    }

    /// Makes sure the device mark (and `slot`'s mark) cover `value`, writing
    /// a mark [`COUNTER_BLOCK`] − 1 ahead when it does not.
    fn reserve(&mut self, slot: Option<u16>, value: u32) -> Result<(), StoreError> {
        let ahead = value.saturating_add(COUNTER_BLOCK - 1);
        if value > self.state.counter_mark {
            self.write_device_mark(ahead)?;
        }
        if let Some(s) = slot {
            if value > self.table.mark(s) {
                self.write_record_mark(s, ahead)?;
            }
        }
        Ok(())
    }

    fn write_device_mark(&mut self, mark: u32) -> Result<(), StoreError> {
        let mut state = self.state.clone();
        state.counter_mark = mark;
        store::save_device(&mut self.platform.storage, &state)?;
        self.state = state;
        Ok(())
    }

    /// Rewrites `slot`'s record with counter field `mark`; the live counter
    /// is kept.
    pub(crate) fn write_record_mark(&mut self, slot: u16, mark: u32) -> Result<(), StoreError> {
        let mut record =
            store::load_credential(&mut self.platform.storage, slot)?.ok_or(StoreError::Corrupt)?;
        record.sign_count = mark;
        record.epoch = Some(self.epoch);
        store::save_credential(&mut self.platform.storage, slot, &record)?;
        self.table.set_mark(slot, mark);
        Ok(())
    }

    /// Writes the exact live counters over the reservations (records and the
    /// device mark), so that a restart continues without a jump. For a clean
    /// shutdown; a crash without it only costs the jump.
    pub fn persist_counters(&mut self) -> Result<(), StoreError> {
        for slot in 0..MAX_CREDENTIAL_RECORDS {
            let kept = matches!(
                self.table.use_of(slot),
                SlotUse::Discoverable | SlotUse::Tracked | SlotUse::Imported
            );
            let live = self.table.count(slot);
            if kept && self.table.mark(slot) > live {
                self.write_record_mark(slot, live)?;
            }
        }
        if self.state.counter_mark > self.global_count {
            self.write_device_mark(self.global_count)?;
        }
        Ok(())
    }

    /// The counter mode.
    pub fn counter_mode(&self) -> CounterMode {
        self.config.counter_mode
    }

    /// Changes the counter mode (volatile: the key's configuration sets it
    /// at start). Every guarantee holds across the change.
    pub fn set_counter_mode(&mut self, mode: CounterMode) {
        self.config.counter_mode = mode;
    }

    /// Sets the counter of the credential in `slot` (the instrument's
    /// "signCount" property): the next signature signs `value + 1` (per
    /// credential). Durable before it returns; the device mark is raised to
    /// cover it, so a forgotten credential never falls below it.
    pub(crate) fn set_sign_count(&mut self, slot: u16, value: u32) -> Result<(), StoreError> {
        if value > self.state.counter_mark {
            self.write_device_mark(value.saturating_add(COUNTER_BLOCK - 1))?;
        }
        self.write_record_mark(slot, value)?;
        self.table.set_count(slot, value);
        self.global_count = self.global_count.max(value);
        Ok(())
    }
}
