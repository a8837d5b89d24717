//! PIN and UV state controls for the instrument (control) API: what a test
//! harness does to a key without going through CTAP (PLAN interface 4).
//!
//! Every change is persisted before it takes effect, like the CTAP paths, and
//! follows the same rules: a PIN set here obeys the PIN policy (minPINLength
//! code points, at most 63 bytes, no NUL) and is stored exactly as setPIN
//! would store it, so the key then accepts it from any client; setting or
//! clearing the PIN ends the current pinUvAuthToken.

use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use super::client_pin::{check_new_pin, PADDED_PIN_LEN};
use super::state::{MAX_PIN_BYTES, MAX_PIN_RETRIES, MAX_UV_RETRIES};
use super::verifier::PinVerifier;
use super::PinUv;
use crate::authenticator::Authenticator;
use crate::platform::{Storage, StorageError, UserPresence};
use crate::store::StoreError;

/// Why a PIN/UV control was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// The PIN breaks the PIN policy (too short for minPINLength, longer than
    /// 63 bytes, or containing NUL).
    PinPolicy,
    /// The operation needs a PIN and none is set.
    PinNotSet,
    /// The operation needs built-in user verification, which the key lacks.
    NoBuiltinUv,
    /// Storage failed; nothing changed.
    Storage(StorageError),
}

impl core::fmt::Display for ControlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ControlError::PinPolicy => f.write_str(
                "the PIN breaks the PIN policy (minimum length, at most 63 bytes, no NUL)",
            ),
            ControlError::PinNotSet => f.write_str("no PIN is set"),
            ControlError::NoBuiltinUv => f.write_str("the key has no built-in user verification"),
            ControlError::Storage(e) => write!(f, "storage failed: {e:?}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ControlError {}

/// The PIN/UV state as the control API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinUvStatus {
    /// Whether a PIN is set.
    pub pin_set: bool,
    /// pinRetries (8 when no PIN is set).
    pub pin_retries: u8,
    /// Three wrong PINs in a row: PIN entry needs a power cycle.
    pub power_cycle_required: bool,
    /// forcePINChange.
    pub force_pin_change: bool,
    /// minPINLength, in code points.
    pub min_pin_length: u8,
    /// Whether the key has built-in user verification.
    pub builtin_uv: bool,
    /// uvRetries.
    pub uv_retries: u8,
    /// How many times the PIN was set or changed since power-up (tells a
    /// changePIN from no change).
    pub pin_changes: u32,
}

impl PinUv {
    fn control_update(
        &mut self,
        storage: &mut impl Storage,
        change: impl FnOnce(&mut super::state::PinState),
    ) -> Result<(), ControlError> {
        self.state
            .update(storage, change)
            .map_err(ControlError::Storage)
    }
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// A decided authenticatorReset is finished before a control reads or
    /// changes anything (no half-reset state is ever shown or built on).
    fn settle_for_control(&mut self) -> Result<(), ControlError> {
        self.settle_reset().map_err(|e| {
            ControlError::Storage(match e {
                StoreError::Storage(e) => e,
                StoreError::Corrupt | StoreError::CounterExhausted => StorageError::Corrupt,
            })
        })
    }

    /// The PIN/UV state.
    pub fn pin_uv_status(&mut self) -> Result<PinUvStatus, ControlError> {
        self.settle_for_control()?;
        Ok(self.pin_uv_peek())
    }

    /// The PIN/UV state as it is in memory, without finishing a decided
    /// authenticatorReset first (for observers that must not change the key).
    pub fn pin_uv_peek(&self) -> PinUvStatus {
        PinUvStatus {
            pin_set: self.pin.is_pin_set(),
            pin_retries: self.pin.retries(),
            power_cycle_required: self.pin.power_cycle_required(),
            force_pin_change: self.pin.force_pin_change(),
            min_pin_length: self.pin.min_pin_length(),
            builtin_uv: self.pin.has_builtin_uv(),
            uv_retries: self.pin.uv_retries(),
            pin_changes: self.pin.pin_changes(),
        }
    }

    /// Sets or replaces the PIN: stored as setPIN stores it, with full
    /// retries and forcePINChange cleared; the current token ends.
    pub fn control_set_pin(&mut self, pin: &str) -> Result<(), ControlError> {
        self.settle_for_control()?;
        let bytes = pin.as_bytes();
        if bytes.len() > MAX_PIN_BYTES {
            return Err(ControlError::PinPolicy);
        }
        let mut padded = [0u8; PADDED_PIN_LEN];
        padded[..bytes.len()].copy_from_slice(bytes);
        let checked = check_new_pin(&padded, self.pin.min_pin_length());
        padded.zeroize();
        // check_new_pin only ever refuses with PIN_POLICY_VIOLATION.
        let new_pin = checked.map_err(|_: Error| ControlError::PinPolicy)?;
        let verifier = PinVerifier::new(&new_pin.hash, self.pin.kdf, &mut self.platform.rng);
        self.pin.control_update(&mut self.platform.storage, |s| {
            s.set_pin(verifier, new_pin.code_points)
        })?;
        self.pin.token.reset(&mut self.platform.rng);
        self.pin.consecutive_mismatches = 0;
        self.pin.count_pin_change();
        Ok(())
    }

    /// Removes the PIN (retries back to the maximum, forcePINChange off); the
    /// other settings of the PIN record (minPINLength, alwaysUv, uvRetries)
    /// stay. The current token ends.
    pub fn control_clear_pin(&mut self) -> Result<(), ControlError> {
        self.settle_for_control()?;
        self.pin.control_update(&mut self.platform.storage, |s| {
            s.clear_pin();
        })?;
        self.pin.token.reset(&mut self.platform.rng);
        self.pin.consecutive_mismatches = 0;
        Ok(())
    }

    /// Sets pinRetries (at most 8; 0 blocks the PIN until authenticatorReset).
    pub fn control_set_pin_retries(&mut self, retries: u8) -> Result<(), ControlError> {
        self.settle_for_control()?;
        if !self.pin.is_pin_set() {
            return Err(ControlError::PinNotSet);
        }
        let retries = retries.min(MAX_PIN_RETRIES);
        self.pin
            .control_update(&mut self.platform.storage, |s| s.set_retries(retries))
    }

    /// Blocks the PIN (pinRetries 0, PIN_BLOCKED until authenticatorReset).
    pub fn control_block_pin(&mut self) -> Result<(), ControlError> {
        self.control_set_pin_retries(0)
    }

    /// Sets uvRetries (at most 8; 0 blocks built-in UV until a correct PIN or
    /// authenticatorReset).
    pub fn control_set_uv_retries(&mut self, retries: u8) -> Result<(), ControlError> {
        self.settle_for_control()?;
        if !self.pin.has_builtin_uv() {
            return Err(ControlError::NoBuiltinUv);
        }
        let retries = retries.min(MAX_UV_RETRIES);
        self.pin
            .control_update(&mut self.platform.storage, |s| s.set_uv_retries(retries))
    }

    /// Blocks built-in UV (uvRetries 0, UV_BLOCKED).
    pub fn control_block_uv(&mut self) -> Result<(), ControlError> {
        self.control_set_uv_retries(0)
    }

    /// Sets or clears forcePINChange (the PIN must be changed before a token
    /// is issued).
    pub fn control_set_force_pin_change(&mut self, on: bool) -> Result<(), ControlError> {
        self.settle_for_control()?;
        if on && !self.pin.is_pin_set() {
            return Err(ControlError::PinNotSet);
        }
        self.pin
            .control_update(&mut self.platform.storage, |s| s.set_force_pin_change(on))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::testkit::*;
    use crate::authenticator::Config;
    use crate::ctap2::pin_uv::platform::{perm, Platform};
    use crate::platform::UvStatus;

    const PIN_INVALID: u8 = 0x31;
    const PIN_BLOCKED: u8 = 0x32;
    const PIN_NOT_SET: u8 = 0x35;
    const PIN_POLICY_VIOLATION: u8 = 0x37;
    const UV_BLOCKED: u8 = 0x3C;

    #[test]
    fn control_errors_say_what_went_wrong() {
        let says = |e: ControlError| std::string::ToString::to_string(&e);
        assert_eq!(
            says(ControlError::PinPolicy),
            "the PIN breaks the PIN policy (minimum length, at most 63 bytes, no NUL)"
        );
        assert_eq!(says(ControlError::PinNotSet), "no PIN is set");
        assert_eq!(
            says(ControlError::NoBuiltinUv),
            "the key has no built-in user verification"
        );
        assert_eq!(
            says(ControlError::Storage(StorageError::Io)),
            "storage failed: Io"
        );
    }

    #[test]
    fn a_pin_set_by_control_works_over_ctap_and_survives_a_restart() {
        let mut h = Harness::new();
        let mut p = Platform::new(2);
        assert_eq!(h.auth.control_set_pin("123"), Err(ControlError::PinPolicy));
        assert_eq!(
            h.auth.control_set_pin(&"9".repeat(64)),
            Err(ControlError::PinPolicy)
        );
        assert_eq!(
            h.auth.control_set_pin(&"9".repeat(65)),
            Err(ControlError::PinPolicy)
        );
        assert_eq!(
            h.auth.control_set_pin("12\u{0}4"),
            Err(ControlError::PinPolicy)
        );
        assert!(!h.auth.pin_uv_status().unwrap().pin_set);
        // 63 bytes is the longest PIN there is.
        h.auth.control_set_pin(&"7".repeat(63)).unwrap();
        assert!(p
            .token(&mut h, &"7".repeat(63), Some(perm::MC), None)
            .is_ok());
        h.auth.control_set_pin("24680").unwrap();
        let mut h = h.reopen();
        assert_eq!(p.token(&mut h, "1111", None, None).err(), Some(PIN_INVALID));
        assert!(p.token(&mut h, "24680", Some(perm::MC), None).is_ok());
        let status = h.auth.pin_uv_status().unwrap();
        assert!(status.pin_set);
        assert_eq!(status.pin_retries, 8);
        // Replacing it ends the token issued for the old one.
        let token = p.token(&mut h, "24680", Some(perm::MC), None).unwrap();
        h.auth.control_set_pin("13579").unwrap();
        let mc = Mc::new("example.com", b"u");
        let request = crate::ctap2::pin_uv::platform::mc_with(&mc, &token);
        assert_eq!(h.ctap2_once(0x01, Some(request)).1, 0x33);
        assert!(p.token(&mut h, "13579", Some(perm::MC), None).is_ok());
    }

    #[test]
    fn clearing_the_pin_keeps_the_other_settings() {
        let mut h = Harness::new();
        let mut p = Platform::new(1);
        h.auth.control_set_pin("1234").unwrap();
        h.auth
            .pin
            .set_min_pin_length(&mut h.auth.platform.storage, Some(6), None, false)
            .unwrap();
        assert!(
            h.auth.pin_uv_status().unwrap().force_pin_change,
            "PIN now too short"
        );
        h.auth.control_clear_pin().unwrap();
        let mut h = h.reopen();
        let status = h.auth.pin_uv_status().unwrap();
        assert!(!status.pin_set && !status.force_pin_change);
        assert_eq!(status.min_pin_length, 6);
        assert_eq!(p.retries(&mut h), Err(PIN_NOT_SET));
        assert_eq!(p.set_pin(&mut h, "12345"), PIN_POLICY_VIOLATION);
        assert_eq!(p.set_pin(&mut h, "123456"), 0);
    }

    #[test]
    fn blocking_and_retries() {
        let mut h = Harness::new();
        let mut p = Platform::new(2);
        assert_eq!(h.auth.control_block_pin(), Err(ControlError::PinNotSet));
        assert_eq!(h.auth.control_block_uv(), Err(ControlError::NoBuiltinUv));
        h.auth.control_set_pin("1234").unwrap();
        h.auth.control_set_pin_retries(2).unwrap();
        assert_eq!(p.retries(&mut h), Ok((2, false)));
        h.auth.control_block_pin().unwrap();
        let mut h = h.reopen();
        assert_eq!(h.auth.pin_uv_status().unwrap().pin_retries, 0);
        assert_eq!(p.token(&mut h, "1234", None, None).err(), Some(PIN_BLOCKED));
    }

    #[test]
    fn blocking_built_in_uv_and_forcing_a_pin_change() {
        let mut h = Harness::with_config(Config {
            aaguid: AAGUID,
            builtin_uv: true,
            ..Config::default()
        });
        let mut p = Platform::new(2);
        h.presence.set_uv(UvStatus::Verified);
        h.auth.control_block_uv().unwrap();
        let asked = h.presence.uv_requests();
        assert_eq!(p.uv_token(&mut h, perm::MC, None).err(), Some(UV_BLOCKED));
        assert_eq!(h.presence.uv_requests(), asked);
        h.auth.control_set_uv_retries(8).unwrap();
        assert!(p.uv_token(&mut h, perm::MC, None).is_ok());

        assert_eq!(
            h.auth.control_set_force_pin_change(true),
            Err(ControlError::PinNotSet)
        );
        h.auth.control_set_pin("1234").unwrap();
        h.auth.control_set_force_pin_change(true).unwrap();
        let mut h = h.reopen();
        assert!(h.auth.pin_uv_status().unwrap().force_pin_change);
        assert_eq!(
            p.token(&mut h, "1234", Some(perm::MC), None).err(),
            Some(PIN_POLICY_VIOLATION)
        );
        let before = h.auth.pin_uv_peek().pin_changes;
        assert_eq!(p.change_pin(&mut h, "1234", "5678"), 0);
        let after = h.auth.pin_uv_status().unwrap();
        assert!(!after.force_pin_change);
        // changePIN counts as a change; a refused one does not.
        assert_eq!(after.pin_changes, before + 1);
        assert_ne!(p.change_pin(&mut h, "0000", "2468"), 0);
        assert_eq!(h.auth.pin_uv_peek().pin_changes, before + 1);
    }

    #[test]
    fn a_failing_storage_changes_nothing() {
        let mut h = Harness::new();
        h.auth.control_set_pin("1234").unwrap();
        h.storage.set_fail_writes(Some(StorageError::Io));
        assert_eq!(
            h.auth.control_block_pin(),
            Err(ControlError::Storage(StorageError::Io))
        );
        assert_eq!(
            h.auth.control_set_pin("5678"),
            Err(ControlError::Storage(StorageError::Io))
        );
        assert_eq!(h.auth.pin_uv_status().unwrap().pin_retries, 8);
        h.storage.set_fail_writes(None);
        let mut h = h.reopen();
        let mut p = Platform::new(1);
        assert!(p.token(&mut h, "1234", None, None).is_ok());
    }
}
