//! The pinUvAuthToken and its state (CTAP 2.1 §6.5.2.1 and §6.5.3.2).
//!
//! Each protocol has its own 32-byte random token value; both are replaced
//! together by `resetPinUvAuthToken` (power-up, every new token, PIN change,
//! authenticatorReset). The state variables (permissions, permissions RP ID,
//! usage timer, userPresent / userVerified flags) are shared, as in the spec.
//!
//! Timing is driven by the caller's `now_ms`; the usage-timer observer runs on
//! every access, so an expired token is never honoured:
//! - a token not used within [`INITIAL_USAGE_TIME_LIMIT_MS`] of being issued stops;
//! - the userPresent flag clears after [`USER_PRESENT_TIME_LIMIT_MS`];
//! - every token stops after [`MAX_USAGE_TIME_PERIOD_MS`].

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::protocol::{self, CryptoError, ProtocolVersion};

/// The pinUvAuthToken length (both protocols).
pub const TOKEN_LEN: usize = 32;
/// The initial usage time limit for USB (CTAP 2.1 §6.5.2.1: 30 s).
pub const INITIAL_USAGE_TIME_LIMIT_MS: u64 = 30_000;
/// The user present time limit (defaults to the initial usage time limit).
pub const USER_PRESENT_TIME_LIMIT_MS: u64 = 30_000;
/// The max usage time period (CTAP 2.1 §6.5.2.1: 10 minutes).
pub const MAX_USAGE_TIME_PERIOD_MS: u64 = 600_000;

/// pinUvAuthToken permission bits (CTAP 2.1 §6.5.5.7).
pub mod permission {
    /// makeCredential.
    pub const MC: u8 = 0x01;
    /// getAssertion.
    pub const GA: u8 = 0x02;
    /// authenticatorCredentialManagement.
    pub const CM: u8 = 0x04;
    /// authenticatorBioEnrollment.
    pub const BE: u8 = 0x08;
    /// authenticatorLargeBlobs write.
    pub const LBW: u8 = 0x10;
    /// authenticatorConfig.
    pub const ACFG: u8 = 0x20;
    /// All permissions CTAP 2.1 defines.
    pub const DEFINED: u8 = MC | GA | CM | BE | LBW | ACFG;
}

/// The pinUvAuthToken values and state. No `Debug`: it holds the tokens.
pub struct PinUvAuthToken {
    values: [[u8; TOKEN_LEN]; 2],
    in_use: bool,
    permissions: u8,
    /// SHA-256 of the permissions RP ID, if one is associated.
    rp_id_hash: Option<[u8; 32]>,
    started_ms: u64,
    used: bool,
    user_present: bool,
    user_verified: bool,
}

impl Drop for PinUvAuthToken {
    fn drop(&mut self) {
        for value in &mut self.values {
            crate::wipe::wipe("PinUvAuthToken", value);
        }
    }
}

impl PinUvAuthToken {
    /// A fresh token pair, not in use (`initialize`).
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut token = PinUvAuthToken {
            values: [[0; TOKEN_LEN]; 2],
            in_use: false,
            permissions: 0,
            rp_id_hash: None,
            started_ms: 0,
            used: false,
            user_present: false,
            user_verified: false,
        };
        token.reset(rng);
        token
    }

    /// `resetPinUvAuthToken()` for all protocols: new random values, and the old
    /// token stops being usable.
    pub fn reset<R: RngCore + CryptoRng>(&mut self, rng: &mut R) {
        for value in &mut self.values {
            rng.fill_bytes(value);
        }
        self.stop_using();
    }

    /// The token value for `version`, to be encrypted for the platform.
    pub fn value(&self, version: ProtocolVersion) -> &[u8; TOKEN_LEN] {
        &self.values[version.index()]
    }

    /// `beginUsingPinUvAuthToken(userIsPresent)`, with the given permissions and
    /// optional permissions RP ID.
    pub fn begin_using(
        &mut self,
        user_is_present: bool,
        permissions: u8,
        rp_id: Option<&str>,
        now_ms: u64,
    ) {
        self.in_use = true;
        self.permissions = permissions;
        self.rp_id_hash = rp_id.map(hash_rp_id);
        self.started_ms = now_ms;
        self.used = false;
        self.user_present = user_is_present;
        self.user_verified = true;
    }

    /// `stopUsingPinUvAuthToken()`: clears every state variable.
    pub fn stop_using(&mut self) {
        self.in_use = false;
        self.permissions = 0;
        self.rp_id_hash = None;
        self.started_ms = 0;
        self.used = false;
        self.user_present = false;
        self.user_verified = false;
    }

    /// The usage-timer observer: applies the time limits as of `now_ms`.
    pub fn observe(&mut self, now_ms: u64) {
        if !self.in_use {
            return;
        }
        let elapsed = now_ms.saturating_sub(self.started_ms);
        if elapsed >= MAX_USAGE_TIME_PERIOD_MS
            || (!self.used && elapsed >= INITIAL_USAGE_TIME_LIMIT_MS)
        {
            self.stop_using();
            return;
        }
        if elapsed >= USER_PRESENT_TIME_LIMIT_MS {
            self.user_present = false;
        }
    }

    /// Whether the token is in use as of `now_ms`.
    pub fn in_use(&mut self, now_ms: u64) -> bool {
        self.observe(now_ms);
        self.in_use
    }

    /// The permissions as of `now_ms` (0 when not in use).
    pub fn permissions(&mut self, now_ms: u64) -> u8 {
        self.observe(now_ms);
        self.permissions
    }

    /// Whether a permissions RP ID is associated (as of `now_ms`).
    pub fn has_rp_id(&mut self, now_ms: u64) -> bool {
        self.observe(now_ms);
        self.rp_id_hash.is_some()
    }

    /// Whether the associated permissions RP ID has SHA-256 `rp_id_hash`.
    /// False when none is associated.
    pub fn rp_id_hash_matches(&mut self, rp_id_hash: &[u8; 32], now_ms: u64) -> bool {
        self.observe(now_ms);
        match &self.rp_id_hash {
            Some(bound) => bool::from(bound.ct_eq(rp_id_hash)),
            None => false,
        }
    }

    /// Associates `rp_id` as the permissions RP ID if none is associated yet.
    pub fn bind_rp_id_if_unbound(&mut self, rp_id: &str, now_ms: u64) {
        self.observe(now_ms);
        if self.in_use && self.rp_id_hash.is_none() {
            self.rp_id_hash = Some(hash_rp_id(rp_id));
        }
    }

    /// `getUserPresentFlagValue()`.
    pub fn user_present_flag(&mut self, now_ms: u64) -> bool {
        self.observe(now_ms);
        self.in_use && self.user_present
    }

    /// `getUserVerifiedFlagValue()`.
    pub fn user_verified_flag(&mut self, now_ms: u64) -> bool {
        self.observe(now_ms);
        self.in_use && self.user_verified
    }

    /// `clearUserPresentFlag()`.
    pub fn clear_user_present_flag(&mut self) {
        if self.in_use {
            self.user_present = false;
        }
    }

    /// `clearUserVerifiedFlag()`.
    pub fn clear_user_verified_flag(&mut self) {
        if self.in_use {
            self.user_verified = false;
        }
    }

    /// `clearPinUvAuthTokenPermissionsExceptLbw()`.
    pub fn clear_permissions_except_lbw(&mut self) {
        if self.in_use {
            self.permissions &= permission::LBW;
        }
    }

    /// Records a successful use (keeps the token alive past the initial usage limit).
    pub fn mark_used(&mut self) {
        if self.in_use {
            self.used = true;
        }
    }

    /// `verify(pinUvAuthToken, message, signature)` for `version`: fails if the
    /// token is not in use (as of `now_ms`) or the MAC does not verify.
    pub fn verify(
        &mut self,
        version: ProtocolVersion,
        message: &[&[u8]],
        signature: &[u8],
        now_ms: u64,
    ) -> Result<(), CryptoError> {
        // Compute the MAC even for a token not in use, so timing does not tell.
        let mac = protocol::verify(version, self.value(version), message, signature);
        if !self.in_use(now_ms) {
            return Err(CryptoError::BadSignature);
        }
        mac
    }
}

/// SHA-256 of an RP ID (the form in which the permissions RP ID is kept).
pub fn hash_rp_id(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_platform::seeded_rng;

    fn sig(token: &PinUvAuthToken, v: ProtocolVersion, msg: &[u8]) -> ([u8; 32], usize) {
        let tag = protocol::authenticate(v, token.value(v), &[msg]);
        let mut out = [0u8; 32];
        out[..tag.as_bytes().len()].copy_from_slice(tag.as_bytes());
        (out, tag.as_bytes().len())
    }

    #[test]
    fn not_in_use_until_begun() {
        let mut rng = seeded_rng(10);
        let mut t = PinUvAuthToken::new(&mut rng);
        let (s, n) = sig(&t, ProtocolVersion::Two, b"m");
        assert!(t.verify(ProtocolVersion::Two, &[b"m"], &s[..n], 0).is_err());
        t.begin_using(false, permission::MC, None, 0);
        assert!(t.verify(ProtocolVersion::Two, &[b"m"], &s[..n], 0).is_ok());
        assert!(t.user_verified_flag(0));
        assert!(!t.user_present_flag(0));
        // The value of the other protocol differs.
        assert_ne!(t.value(ProtocolVersion::One), t.value(ProtocolVersion::Two));
    }

    #[test]
    fn initial_usage_limit_applies_only_to_unused_tokens() {
        let mut rng = seeded_rng(11);
        let mut t = PinUvAuthToken::new(&mut rng);
        t.begin_using(false, permission::GA, None, 1_000);
        assert!(t.in_use(1_000 + INITIAL_USAGE_TIME_LIMIT_MS - 1));
        assert!(!t.in_use(1_000 + INITIAL_USAGE_TIME_LIMIT_MS));
        assert_eq!(t.permissions(1_000 + INITIAL_USAGE_TIME_LIMIT_MS), 0);

        t.begin_using(true, permission::GA, None, 1_000);
        t.mark_used();
        assert!(t.in_use(1_000 + INITIAL_USAGE_TIME_LIMIT_MS + 5));
        // The user present flag times out on its own.
        assert!(!t.user_present_flag(1_000 + USER_PRESENT_TIME_LIMIT_MS));
        assert!(t.in_use(1_000 + MAX_USAGE_TIME_PERIOD_MS - 1));
        assert!(!t.in_use(1_000 + MAX_USAGE_TIME_PERIOD_MS));
    }

    #[test]
    fn clear_functions_and_reset() {
        let mut rng = seeded_rng(12);
        let mut t = PinUvAuthToken::new(&mut rng);
        t.begin_using(true, permission::MC | permission::LBW, Some("a.example"), 0);
        assert!(t.user_present_flag(0));
        assert!(t.rp_id_hash_matches(&hash_rp_id("a.example"), 0));
        assert!(!t.rp_id_hash_matches(&hash_rp_id("b.example"), 0));
        t.clear_user_present_flag();
        t.clear_user_verified_flag();
        t.clear_permissions_except_lbw();
        assert!(!t.user_present_flag(0));
        assert!(!t.user_verified_flag(0));
        assert_eq!(t.permissions(0), permission::LBW);
        let old = *t.value(ProtocolVersion::One);
        t.reset(&mut rng);
        assert_ne!(&old, t.value(ProtocolVersion::One));
        assert!(!t.in_use(0));
        assert!(!t.has_rp_id(0));
    }

    #[test]
    fn binds_only_when_unbound() {
        let mut rng = seeded_rng(13);
        let mut t = PinUvAuthToken::new(&mut rng);
        t.bind_rp_id_if_unbound("a.example", 0);
        assert!(!t.has_rp_id(0), "a token not in use takes no RP ID");
        t.begin_using(false, permission::MC, None, 0);
        t.bind_rp_id_if_unbound("a.example", 0);
        t.bind_rp_id_if_unbound("b.example", 0);
        assert!(t.rp_id_hash_matches(&hash_rp_id("a.example"), 0));
    }
}
