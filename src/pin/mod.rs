//! PIN/UV auth: PIN/UV auth protocols 1 and 2, persistent PIN state and the
//! pinUvAuthToken (CTAP 2.1 §6.5).
//!
//! [`PinUv`] owns everything; the CTAP2 dispatcher keeps one for the lifetime of
//! a power-up and wires it like this:
//!
//! - **Power-up:** [`PinUv::power_up`] loads the `RecordKey::Pin` record
//!   (rewriting a version 1 or 2 record with its PIN hash stretched, see
//!   [`state`] and [`verifier`]) and generates fresh key-agreement keys and
//!   tokens. (A record that does not decode is salvaged from its header,
//!   see [`state::PinState::salvage`]; one whose header is unreadable fails
//!   closed: the PIN counts as set and blocked until authenticatorReset.)
//! - **authenticatorClientPIN (0x06):** decode the request with ctap-types and
//!   call [`PinUv::client_pin`]; serialize its `client_pin::Response` or return
//!   its error as the status byte.
//! - **authenticatorGetInfo:** `options.clientPin` = [`PinUv::is_pin_set`],
//!   `options.pinUvAuthToken` = true, `pinUvAuthProtocols` =
//!   [`PIN_UV_AUTH_PROTOCOLS`], `minPINLength` = [`PinUv::min_pin_length`],
//!   `forcePINChange` = [`PinUv::force_pin_change`], and (with setMinPINLength)
//!   `maxRPIDsForSetMinPINLength` = [`state::MAX_MIN_PIN_LENGTH_RP_IDS`].
//! - **makeCredential / getAssertion with a pinUvAuthParam:** call
//!   [`PinUv::verify_pin_uv_auth_param`] with the clientDataHash as the message,
//!   permission [`permission::MC`] / [`permission::GA`] and
//!   [`RpCheck::Bind`]`(rp_id)`; on success set the UV flag. When collecting user
//!   presence, [`PinUv::user_present_flag`] says whether it was already
//!   collected; after presence, call [`PinUv::consume_after_user_presence`].
//! - **credentialManagement / authenticatorConfig / largeBlobs:** the same call
//!   with that command's message parts, permission `CM` / `ACFG` / `LBW`, and
//!   [`RpCheck::MatchHash`] / [`RpCheck::NoneAllowed`] (cm) or
//!   [`RpCheck::Ignore`] (acfg, lbw).
//! - **authenticatorConfig setMinPINLength:** [`PinUv::set_min_pin_length`].
//! - **authenticatorReset:** [`PinUv::reset`] (removes the PIN record and
//!   regenerates keys and tokens).
//! - **Power cycle:** the device shell builds a new authenticator from
//!   storage, and with it [`PinUv::power_up`]: that ends PIN_AUTH_BLOCKED. A
//!   USB bus reset is not a power cycle and leaves all of this alone.
//! - **authenticatorConfig toggleAlwaysUv:** [`PinUv::set_always_uv`]; getInfo
//!   `options.alwaysUv` = [`PinUv::always_uv`]. The setting lives in the PIN
//!   record, so authenticatorReset turns it off.
//! - **Built-in user verification** (when [`Features::builtin_uv`]): getInfo
//!   `options.uv` = true; clientPIN getPinUvAuthTokenUsingUvWithPermissions
//!   and getUVRetries; makeCredential / getAssertion with `uv: true` call
//!   [`PinUv::perform_builtin_uv`]. uvRetries lives in the PIN record too.

pub mod client_pin;
pub mod controls;
pub mod protocol;
pub mod state;
pub mod token;
pub mod verifier;

use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};

use crate::platform::{RecordKey, Storage, StorageError, UserPresence, UvStatus};

pub use protocol::ProtocolVersion;
pub use token::permission;

use protocol::KeyAgreementKey;
use state::{
    PinState, RpIdList, StateError, MAX_CONSECUTIVE_MISMATCHES, MAX_PIN_BYTES, MAX_UV_RETRIES,
};
use token::PinUvAuthToken;
pub use verifier::PinKdfCost;

/// The `pinUvAuthProtocols` getInfo value, in order of preference.
pub const PIN_UV_AUTH_PROTOCOLS: [u8; 2] = [2, 1];

/// Which optional authenticator features exist; decides which permissions
/// getPinUvAuthTokenUsingPinWithPermissions may grant. Must agree with getInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `options.credMgmt` (grants `cm`).
    pub cred_mgmt: bool,
    /// `options.largeBlobs` (grants `lbw`).
    pub large_blobs: bool,
    /// `options.authnrCfg` (grants `acfg`).
    pub authnr_cfg: bool,
    /// `options.bioEnroll` present (grants `be`).
    pub bio_enroll: bool,
    /// A built-in user-verification method exists and is enrolled
    /// (`options.uv` = true).
    pub builtin_uv: bool,
}

impl Default for Features {
    /// Credential management, large blobs and config; no biometrics and no
    /// built-in user verification.
    fn default() -> Self {
        Features {
            cred_mgmt: true,
            large_blobs: true,
            authnr_cfg: true,
            bio_enroll: false,
            builtin_uv: false,
        }
    }
}

/// How an operation constrains the token's permissions RP ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpCheck<'a> {
    /// makeCredential / getAssertion: a bound token must be bound to this RP; an
    /// unbound token becomes bound to it.
    Bind(&'a str),
    /// A bound token must be bound to this RP ID (an unbound one passes).
    Match(&'a str),
    /// A bound token must be bound to the RP ID with this SHA-256 (cm
    /// enumerateCredentialsBegin, deleteCredential, updateUserInformation).
    MatchHash(&'a [u8; 32]),
    /// The token must not be bound to an RP (cm getCredsMetadata, enumerateRPsBegin).
    NoneAllowed,
    /// The RP ID plays no role (acfg, lbw).
    Ignore,
}

/// PIN/UV auth state for one power-up. No `Debug`: it holds keys and tokens.
pub struct PinUv {
    features: Features,
    /// The cost new PIN verifiers are made with.
    kdf: PinKdfCost,
    state: PinState,
    consecutive_mismatches: u8,
    key_agreement: [KeyAgreementKey; 2],
    token: PinUvAuthToken,
    /// How many times the PIN was set or changed since power-up (volatile;
    /// lets an observer tell a changePIN from no change).
    pin_changes: u32,
    /// With biometrics ([`Features::bio_enroll`]): the enrolled fingers, one
    /// bit each (see [`crate::bio`]); built-in UV exists while any is.
    bio_fingers: u16,
    /// The next fingerprint match fails whatever finger is read (a control).
    fail_next_match: bool,
}

impl PinUv {
    /// Power-up: loads the PIN record and generates fresh key-agreement keys and
    /// pinUvAuthTokens. A version 1 or 2 record (the PIN hash unsalted) is
    /// migrated first: its hash stretched at `kdf` and the record rewritten as
    /// version 3 atomically. Fails only when the storage back end fails (then
    /// the old record is left as it was). A record that does not decode is
    /// salvaged and rewritten ([`PinState::salvage`]); one with an unreadable
    /// header yields a blocked PIN (fail closed) that authenticatorReset clears.
    pub fn power_up<S: Storage, R: RngCore + CryptoRng>(
        features: Features,
        kdf: PinKdfCost,
        storage: &mut S,
        rng: &mut R,
    ) -> Result<Self, StorageError> {
        let state = match PinState::load_versioned(storage) {
            Ok((mut state, version)) => {
                if PinState::is_old_version(version) {
                    state.migrate(storage, kdf, rng)?;
                }
                state
            }
            // A record that does not decode (torn by a crash mid-write): keep
            // what its header still says and write it back whole; fail closed
            // only when not even that is readable (see PinState::salvage).
            Err(StateError::Corrupt) => match PinState::salvage_stored(storage) {
                Some(state) => {
                    state.store(storage)?;
                    state
                }
                None => PinState::locked(),
            },
            Err(StateError::Storage(e)) => return Err(e),
        };
        Ok(PinUv {
            features,
            kdf,
            state,
            consecutive_mismatches: 0,
            key_agreement: [
                KeyAgreementKey::generate(rng),
                KeyAgreementKey::generate(rng),
            ],
            token: PinUvAuthToken::new(rng),
            pin_changes: 0,
            bio_fingers: 0,
            fail_next_match: false,
        })
    }

    /// With biometrics: the fingers now enrolled (bit N for finger N). Built-in
    /// UV (getInfo `uv: true`) exists while any is; without one the sensor is
    /// "capable but not configured" (`uv: false`).
    pub fn set_bio_fingers(&mut self, fingers: u16) {
        self.bio_fingers = fingers;
    }

    /// With biometrics: the next fingerprint match fails, whatever finger the
    /// sensor reads (it spends a uvRetries attempt like any failed match).
    pub fn fail_next_match(&mut self) {
        self.fail_next_match = true;
    }

    /// Whether a match is set to fail ([`PinUv::fail_next_match`]).
    pub fn next_match_fails(&self) -> bool {
        self.fail_next_match
    }

    /// A key with biometrics whose sensor has no finger enrolled: getInfo
    /// `uv: false` (a UV method exists but is not configured).
    pub fn builtin_uv_unconfigured(&self) -> bool {
        self.features.bio_enroll && !self.features.builtin_uv && self.bio_fingers == 0
    }

    /// authenticatorReset: removes the PIN record and regenerates the
    /// key-agreement keys and tokens. Keys and tokens are regenerated even if the
    /// removal fails (then the old PIN state stays and the error is returned).
    pub fn reset<S: Storage, R: RngCore + CryptoRng>(
        &mut self,
        storage: &mut S,
        rng: &mut R,
    ) -> Result<(), StorageError> {
        for key in &mut self.key_agreement {
            key.regenerate(rng);
        }
        self.token.reset(rng);
        self.consecutive_mismatches = 0;
        self.fail_next_match = false;
        storage.remove(RecordKey::Pin)?;
        self.state = PinState::default();
        Ok(())
    }

    /// Whether user verification is always required (getInfo `alwaysUv`).
    pub fn always_uv(&self) -> bool {
        self.state.always_uv()
    }

    /// Persists the alwaysUv setting (authenticatorConfig toggleAlwaysUv).
    pub fn set_always_uv<S: Storage>(&mut self, storage: &mut S, on: bool) -> Result<(), Error> {
        self.state
            .update(storage, |s| s.set_always_uv(on))
            .map_err(|_| Error::Other)
    }

    /// The features this instance grants permissions for.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Whether a PIN is set (getInfo `options.clientPin`).
    pub fn is_pin_set(&self) -> bool {
        self.state.is_pin_set()
    }

    /// The remaining PIN attempts (pinRetries).
    pub fn retries(&self) -> u8 {
        self.state.retries()
    }

    /// Whether the key has built-in user verification (getInfo `options.uv`).
    pub fn has_builtin_uv(&self) -> bool {
        self.features.builtin_uv || (self.features.bio_enroll && self.bio_fingers != 0)
    }

    /// The remaining built-in user verification attempts (uvRetries).
    pub fn uv_retries(&self) -> u8 {
        self.state.uv_retries()
    }

    /// Whether the key "is protected by some form of user verification"
    /// (CTAP 2.1 §6.1.2): a PIN is set or built-in UV exists.
    pub fn is_protected(&self) -> bool {
        self.state.is_pin_set() || self.has_builtin_uv()
    }

    /// `performBuiltInUv()` (CTAP 2.1 §6.5.5.7.3, §6.1.2 step 11): asks the
    /// platform's built-in method once. UV_BLOCKED when no attempts are left
    /// (the method is not even asked). Like a PIN attempt, the attempt is
    /// spent first: uvRetries minus one is persisted before the method is
    /// asked, so a crash or a storage failure can never give a free attempt
    /// (if that write fails the method is not asked: OTHER). A failure then
    /// is UV_INVALID, or UV_BLOCKED when it was the last attempt; a success
    /// restores uvRetries to the maximum. Without built-in UV this is
    /// INVALID_OPTION.
    pub fn perform_builtin_uv<S: Storage, P: UserPresence>(
        &mut self,
        storage: &mut S,
        presence: &mut P,
        now_ms: u64,
    ) -> Result<(), Error> {
        if !self.has_builtin_uv() {
            return Err(Error::InvalidOption);
        }
        let retries = self.state.uv_retries();
        if retries == 0 {
            return Err(Error::UvBlocked);
        }
        let remaining = retries - 1;
        self.state
            .update(storage, |s| s.set_uv_retries(remaining))
            .map_err(|_| Error::Other)?;
        let answer = if self.features.bio_enroll && !self.features.builtin_uv {
            self.match_finger(presence, now_ms)
        } else {
            presence.verify_user(now_ms)
        };
        match answer {
            UvStatus::Verified => self
                .state
                .update(storage, |s| s.set_uv_retries(MAX_UV_RETRIES))
                .map_err(|_| Error::Other),
            UvStatus::Failed => Err(if remaining == 0 {
                Error::UvBlocked
            } else {
                Error::UvInvalid
            }),
        }
    }

    /// A fingerprint match: the finger the sensor reads must be enrolled (a
    /// failure set by [`PinUv::fail_next_match`] is used up first).
    fn match_finger<P: UserPresence>(&mut self, presence: &mut P, now_ms: u64) -> UvStatus {
        let finger = presence.read_finger(now_ms);
        if core::mem::take(&mut self.fail_next_match) {
            return UvStatus::Failed;
        }
        match finger {
            Some(f) if f < 16 && self.bio_fingers & (1 << f) != 0 => UvStatus::Verified,
            _ => UvStatus::Failed,
        }
    }

    /// The minimum PIN length in code points (getInfo `minPINLength`).
    pub fn min_pin_length(&self) -> u8 {
        self.state.min_pin_length()
    }

    /// getInfo `forcePINChange`.
    pub fn force_pin_change(&self) -> bool {
        self.state.force_pin_change()
    }

    /// The RP IDs allowed to receive the minPinLength extension output.
    pub fn min_pin_length_rp_ids(&self) -> &RpIdList {
        self.state.min_pin_length_rp_ids()
    }

    /// The shared secret with a platform key, made with this power-up's
    /// key-agreement key for `version` (the key authenticatorClientPIN
    /// getKeyAgreement returns). Used by the hmac-secret extension (CTAP 2.1
    /// §12.5), which must use that same key.
    pub fn shared_secret(
        &self,
        version: ProtocolVersion,
        peer: &cosey::EcdhEsHkdf256PublicKey,
    ) -> Result<protocol::SharedSecret, protocol::CryptoError> {
        self.key_agreement[version.index()].decapsulate(version, peer)
    }

    /// How many times the PIN was set or changed (by CTAP or a control)
    /// since power-up.
    pub fn pin_changes(&self) -> u32 {
        self.pin_changes
    }

    /// Counts one more PIN set or change (see [`PinUv::pin_changes`]).
    pub(crate) fn count_pin_change(&mut self) {
        self.pin_changes = self.pin_changes.wrapping_add(1);
    }

    /// Whether three consecutive wrong PINs require a power cycle (powerCycleState).
    pub fn power_cycle_required(&self) -> bool {
        self.consecutive_mismatches >= MAX_CONSECUTIVE_MISMATCHES
    }

    /// Verifies a command's `pinUvAuthParam` against the current pinUvAuthToken
    /// and checks the token's permissions and RP binding (CTAP 2.1 §6.1.2 step 11,
    /// §6.2.2 step 6, §6.8, §6.9, §6.10, §6.11).
    ///
    /// `message` is the authenticated data in parts (concatenated for the MAC):
    /// the clientDataHash for mc/ga; `subCommand ‖ subCommandParams` for cm;
    /// `32×0xff ‖ 0x0d ‖ subCommand ‖ subCommandParams` for acfg; `32×0xff ‖ 0x0c
    /// 0x00 ‖ uint32LE(offset) ‖ SHA-256(set)` for lbw. `required` is one
    /// [`permission`] bit. For mc/ga the userVerified flag must also be set.
    ///
    /// Errors: MISSING_PARAMETER without a protocol, INVALID_PARAMETER for an
    /// unsupported one, PIN_AUTH_INVALID for everything else. On success the token
    /// counts as used and, for [`RpCheck::Bind`], becomes bound to the RP.
    pub fn verify_pin_uv_auth_param(
        &mut self,
        protocol: Option<u8>,
        pin_uv_auth_param: &[u8],
        message: &[&[u8]],
        required: u8,
        rp: RpCheck<'_>,
        now_ms: u64,
    ) -> Result<(), Error> {
        let version = protocol
            .ok_or(Error::MissingParameter)
            .and_then(|p| ProtocolVersion::from_u8(p).ok_or(Error::InvalidParameter))?;
        self.token
            .verify(version, message, pin_uv_auth_param, now_ms)
            .map_err(|_| Error::PinAuthInvalid)?;
        if required == 0 || self.token.permissions(now_ms) & required != required {
            return Err(Error::PinAuthInvalid);
        }
        let rp_ok = match rp {
            RpCheck::Bind(id) | RpCheck::Match(id) => {
                !self.token.has_rp_id(now_ms)
                    || self
                        .token
                        .rp_id_hash_matches(&token::hash_rp_id(id), now_ms)
            }
            RpCheck::MatchHash(hash) => {
                !self.token.has_rp_id(now_ms) || self.token.rp_id_hash_matches(hash, now_ms)
            }
            RpCheck::NoneAllowed => !self.token.has_rp_id(now_ms),
            RpCheck::Ignore => true,
        };
        if !rp_ok {
            return Err(Error::PinAuthInvalid);
        }
        if required & (permission::MC | permission::GA) != 0
            && !self.token.user_verified_flag(now_ms)
        {
            return Err(Error::PinAuthInvalid);
        }
        self.token.mark_used();
        if let RpCheck::Bind(id) = rp {
            self.token.bind_rp_id_if_unbound(id, now_ms);
        }
        Ok(())
    }

    /// `getUserPresentFlagValue()`: whether user presence is already collected
    /// for the in-use token (never for PIN-issued tokens).
    pub fn user_present_flag(&mut self, now_ms: u64) -> bool {
        self.token.user_present_flag(now_ms)
    }

    /// `getUserVerifiedFlagValue()`.
    pub fn user_verified_flag(&mut self, now_ms: u64) -> bool {
        self.token.user_verified_flag(now_ms)
    }

    /// After makeCredential / getAssertion collected user presence with a token:
    /// `clearUserPresentFlag()`, `clearUserVerifiedFlag()`,
    /// `clearPinUvAuthTokenPermissionsExceptLbw()`.
    pub fn consume_after_user_presence(&mut self) {
        self.token.clear_user_present_flag();
        self.token.clear_user_verified_flag();
        self.token.clear_permissions_except_lbw();
    }

    /// `stopUsingPinUvAuthToken()`.
    pub fn stop_using_token(&mut self) {
        self.token.stop_using();
    }

    /// authenticatorConfig setMinPINLength (CTAP 2.1 §6.11.4), after the
    /// dispatcher has authenticated the request.
    ///
    /// `new_min` absent keeps the current value; a lower value or one above 63 is
    /// PIN_POLICY_VIOLATION; `force_change` without a PIN is PIN_NOT_SET; more RP
    /// IDs than [`state::MAX_MIN_PIN_LENGTH_RP_IDS`] (or longer than
    /// [`state::MAX_RP_ID_LENGTH`]) is PIN_POLICY_VIOLATION. `rp_ids`, when given,
    /// replaces the stored list. forcePINChange becomes true when asked, or when
    /// the current PIN is shorter than the new minimum.
    pub fn set_min_pin_length<S: Storage>(
        &mut self,
        storage: &mut S,
        new_min: Option<u8>,
        rp_ids: Option<&[&str]>,
        force_change: bool,
    ) -> Result<(), Error> {
        let current = self.state.min_pin_length();
        let new_min = new_min.unwrap_or(current);
        if new_min < current || usize::from(new_min) > MAX_PIN_BYTES {
            return Err(Error::PinPolicyViolation);
        }
        if force_change && !self.state.is_pin_set() {
            return Err(Error::PinNotSet);
        }
        let list = match rp_ids {
            Some(ids) => {
                let mut list = RpIdList::new();
                for id in ids {
                    let mut s = heapless::String::new();
                    s.push_str(id).map_err(|_| Error::PinPolicyViolation)?;
                    list.push(s).map_err(|_| Error::PinPolicyViolation)?;
                }
                Some(list)
            }
            None => None,
        };
        let pin_set = self.state.is_pin_set();
        let too_short = pin_set && self.state.code_point_length() < new_min;
        self.state
            .update(storage, |s| {
                s.set_min_pin_length(new_min);
                if let Some(list) = list {
                    s.set_min_pin_length_rp_ids(list);
                }
                if force_change || too_short {
                    s.set_force_pin_change(true);
                }
            })
            .map_err(|_| Error::Other)
    }
}

#[cfg(test)]
pub(crate) mod tests;
