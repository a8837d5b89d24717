//! authenticatorClientPIN (0x06): the subcommands of CTAP 2.1 §6.5.5.
//!
//! Step order and error codes follow the spec's authenticator steps. Two
//! additions, both before any retry is spent: PIN_NOT_SET when a PIN operation
//! (or getPINRetries) needs a PIN and none is set, and PIN_AUTH_BLOCKED while a
//! power cycle is due after three consecutive wrong PINs.
//!
//! getPinUvAuthTokenUsingUvWithPermissions (0x06) and getUVRetries (0x07)
//! exist only with built-in user verification ([`super::Features::builtin_uv`]);
//! otherwise they are INVALID_SUBCOMMAND.

use cosey::EcdhEsHkdf256PublicKey;
use ctap_types::ctap2::client_pin::{PinV1Subcommand, Request, Response};
use ctap_types::ctap2::Error;
use ctap_types::Bytes;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::protocol::{ProtocolVersion, SharedSecret};
use super::state::{
    MAX_CONSECUTIVE_MISMATCHES, MAX_PIN_BYTES, MAX_PIN_RETRIES, MAX_UV_RETRIES, PIN_HASH_LEN,
};
use super::token::{permission, TOKEN_LEN};
use super::verifier::PinVerifier;
use super::PinUv;
use crate::platform::{Storage, UserPresence};

/// The padded PIN block: newPinEnc decrypts to exactly this many bytes.
pub const PADDED_PIN_LEN: usize = 64;

/// Maps a storage failure at the command edge.
fn storage_error<E>(_: E) -> Error {
    Error::Other
}

fn version_of(request: &Request<'_>) -> Result<ProtocolVersion, Error> {
    let value = request.pin_protocol.ok_or(Error::MissingParameter)?;
    ProtocolVersion::from_u8(value).ok_or(Error::InvalidParameter)
}

/// A new PIN that passed the policy: its stored hash and length in code points.
pub(super) struct NewPin {
    pub(super) hash: [u8; PIN_HASH_LEN],
    pub(super) code_points: u8,
}

impl Drop for NewPin {
    fn drop(&mut self) {
        crate::wipe::wipe("NewPin", &mut self.hash);
    }
}

/// Steps "decrypt newPinEnc … check the length against minPINLength".
fn decrypt_new_pin(
    shared: &SharedSecret,
    new_pin_enc: &[u8],
    min_pin_length: u8,
) -> Result<NewPin, Error> {
    match shared.plaintext_len(new_pin_enc) {
        Err(_) => return Err(Error::PinAuthInvalid),
        Ok(PADDED_PIN_LEN) => {}
        Ok(_) => return Err(Error::InvalidParameter),
    }
    let mut padded = [0u8; PADDED_PIN_LEN];
    let result = shared
        .decrypt(new_pin_enc, &mut padded)
        .map_err(|_| Error::PinAuthInvalid)
        .and_then(|_| check_new_pin(&padded, min_pin_length));
    padded.zeroize();
    result
}

/// Drops trailing zeros and applies the PIN policy: at most 63 bytes, no
/// interior NUL, valid UTF-8, at least `min_pin_length` code points.
pub(super) fn check_new_pin(
    padded: &[u8; PADDED_PIN_LEN],
    min_pin_length: u8,
) -> Result<NewPin, Error> {
    let len = padded
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    if len > MAX_PIN_BYTES {
        return Err(Error::PinPolicyViolation);
    }
    let pin = &padded[..len];
    if pin.contains(&0) {
        return Err(Error::PinPolicyViolation);
    }
    let text = core::str::from_utf8(pin).map_err(|_| Error::PinPolicyViolation)?;
    let code_points = text.chars().count();
    if code_points < usize::from(min_pin_length) {
        return Err(Error::PinPolicyViolation);
    }
    let mut digest = Sha256::digest(pin);
    let mut hash = [0u8; PIN_HASH_LEN];
    hash.copy_from_slice(&digest[..PIN_HASH_LEN]);
    digest.as_mut_slice().zeroize();
    Ok(NewPin {
        hash,
        // At most 63 bytes, so at most 63 code points.
        code_points: code_points as u8,
    })
}

impl PinUv {
    /// Handles one authenticatorClientPIN request. `presence` is asked for
    /// built-in user verification (getPinUvAuthTokenUsingUvWithPermissions).
    pub fn client_pin<S: Storage, R: RngCore + CryptoRng, P: UserPresence>(
        &mut self,
        request: &Request<'_>,
        storage: &mut S,
        rng: &mut R,
        presence: &mut P,
        now_ms: u64,
    ) -> Result<Response, Error> {
        match request.sub_command {
            PinV1Subcommand::GetRetries => self.get_pin_retries(),
            PinV1Subcommand::GetKeyAgreement => self.get_key_agreement(request),
            PinV1Subcommand::SetPin => self.set_pin(request, storage, rng),
            PinV1Subcommand::ChangePin => self.change_pin(request, storage, rng),
            PinV1Subcommand::GetPinToken => self.get_pin_token(request, storage, rng, now_ms),
            PinV1Subcommand::GetPinUvAuthTokenUsingPinWithPermissions => {
                self.get_pin_uv_auth_token_using_pin(request, storage, rng, now_ms)
            }
            PinV1Subcommand::GetPinUvAuthTokenUsingUvWithPermissions if self.has_builtin_uv() => {
                self.get_pin_uv_auth_token_using_uv(request, storage, rng, presence, now_ms)
            }
            // A sensor with no finger enrolled: the method exists but is
            // not configured (getInfo `uv: false`).
            PinV1Subcommand::GetPinUvAuthTokenUsingUvWithPermissions
                if self.builtin_uv_unconfigured() =>
            {
                Err(Error::NotAllowed)
            }
            PinV1Subcommand::GetUVRetries
                if self.has_builtin_uv() || self.builtin_uv_unconfigured() =>
            {
                self.get_uv_retries()
            }
            // Without built-in user verification the UV subcommands do not
            // exist (nor do subcommands of later versions).
            _ => Err(Error::InvalidSubcommand),
        }
    }

    /// getPINRetries (0x01). Without a PIN there is nothing to count:
    /// PIN_NOT_SET (what platforms and python-fido2's conformance tests expect).
    fn get_pin_retries(&self) -> Result<Response, Error> {
        if !self.state.is_pin_set() {
            return Err(Error::PinNotSet);
        }
        let mut response = Response::default();
        response.retries = Some(self.state.retries());
        response.power_cycle_state = Some(self.power_cycle_required());
        Ok(response)
    }

    /// getUVRetries (0x07).
    fn get_uv_retries(&self) -> Result<Response, Error> {
        let mut response = Response::default();
        response.uv_retries = Some(self.state.uv_retries());
        Ok(response)
    }

    /// getKeyAgreement (0x02).
    fn get_key_agreement(&self, request: &Request<'_>) -> Result<Response, Error> {
        let version = version_of(request)?;
        let mut response = Response::default();
        response.key_agreement = Some(self.key_agreement[version.index()].public_key());
        Ok(response)
    }

    fn decapsulate(
        &self,
        version: ProtocolVersion,
        peer: &EcdhEsHkdf256PublicKey,
    ) -> Result<SharedSecret, Error> {
        self.key_agreement[version.index()]
            .decapsulate(version, peer)
            .map_err(|_| Error::InvalidParameter)
    }

    /// setPIN (0x03).
    fn set_pin<S: Storage, R: RngCore + CryptoRng>(
        &mut self,
        request: &Request<'_>,
        storage: &mut S,
        rng: &mut R,
    ) -> Result<Response, Error> {
        let (Some(_), Some(peer), Some(param), Some(new_pin_enc)) = (
            request.pin_protocol,
            request.key_agreement.as_ref(),
            request.pin_auth,
            request.new_pin_enc,
        ) else {
            return Err(Error::MissingParameter);
        };
        let version = version_of(request)?;
        if self.state.is_pin_set() {
            return Err(Error::PinAuthInvalid);
        }
        let shared = self.decapsulate(version, peer)?;
        shared
            .verify(&[new_pin_enc], param)
            .map_err(|_| Error::PinAuthInvalid)?;
        let new_pin = decrypt_new_pin(&shared, new_pin_enc, self.state.min_pin_length())?;
        let verifier = PinVerifier::new(&new_pin.hash, self.kdf, rng);
        self.state
            .update(storage, |s| s.set_pin(verifier, new_pin.code_points))
            .map_err(storage_error)?;
        self.consecutive_mismatches = 0;
        self.count_pin_change();
        Ok(Response::default())
    }

    /// changePIN (0x04).
    fn change_pin<S: Storage, R: RngCore + CryptoRng>(
        &mut self,
        request: &Request<'_>,
        storage: &mut S,
        rng: &mut R,
    ) -> Result<Response, Error> {
        let (Some(_), Some(peer), Some(param), Some(new_pin_enc), Some(pin_hash_enc)) = (
            request.pin_protocol,
            request.key_agreement.as_ref(),
            request.pin_auth,
            request.new_pin_enc,
            request.pin_hash_enc,
        ) else {
            return Err(Error::MissingParameter);
        };
        let version = version_of(request)?;
        self.pin_gate()?;
        let shared = self.decapsulate(version, peer)?;
        shared
            .verify(&[new_pin_enc, pin_hash_enc], param)
            .map_err(|_| Error::PinAuthInvalid)?;
        self.check_pin_hash(version, &shared, pin_hash_enc, storage, rng)?;
        let new_pin = decrypt_new_pin(&shared, new_pin_enc, self.state.min_pin_length())?;
        if self.state.force_pin_change() && self.state.pin_hash_matches(&new_pin.hash) {
            return Err(Error::PinPolicyViolation);
        }
        let verifier = PinVerifier::new(&new_pin.hash, self.kdf, rng);
        self.state
            .update(storage, |s| s.set_pin(verifier, new_pin.code_points))
            .map_err(storage_error)?;
        self.token.reset(rng);
        self.count_pin_change();
        Ok(Response::default())
    }

    /// getPinToken (0x05): the default permissions mc and ga, no RP ID.
    fn get_pin_token<S: Storage, R: RngCore + CryptoRng>(
        &mut self,
        request: &Request<'_>,
        storage: &mut S,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Response, Error> {
        let (Some(_), Some(peer), Some(pin_hash_enc)) = (
            request.pin_protocol,
            request.key_agreement.as_ref(),
            request.pin_hash_enc,
        ) else {
            return Err(Error::MissingParameter);
        };
        let version = version_of(request)?;
        if request.permissions.is_some() || request.rp_id.is_some() {
            return Err(Error::InvalidParameter);
        }
        self.pin_gate()?;
        let shared = self.decapsulate(version, peer)?;
        self.check_pin_hash(version, &shared, pin_hash_enc, storage, rng)?;
        if self.state.force_pin_change() {
            return Err(Error::PinInvalid);
        }
        self.issue_token(
            version,
            &shared,
            permission::MC | permission::GA,
            None,
            false,
            rng,
            now_ms,
        )
    }

    /// getPinUvAuthTokenUsingPinWithPermissions (0x09).
    fn get_pin_uv_auth_token_using_pin<S: Storage, R: RngCore + CryptoRng>(
        &mut self,
        request: &Request<'_>,
        storage: &mut S,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Response, Error> {
        let (Some(_), Some(peer), Some(pin_hash_enc), Some(permissions)) = (
            request.pin_protocol,
            request.key_agreement.as_ref(),
            request.pin_hash_enc,
            request.permissions,
        ) else {
            return Err(Error::MissingParameter);
        };
        let version = version_of(request)?;
        self.check_permissions(permissions)?;
        self.pin_gate()?;
        let shared = self.decapsulate(version, peer)?;
        self.check_pin_hash(version, &shared, pin_hash_enc, storage, rng)?;
        if self.state.force_pin_change() {
            return Err(Error::PinPolicyViolation);
        }
        // Undefined permission bits are ignored.
        self.issue_token(
            version,
            &shared,
            permissions & permission::DEFINED,
            request.rp_id,
            false,
            rng,
            now_ms,
        )
    }

    /// getPinUvAuthTokenUsingUvWithPermissions (0x06), CTAP 2.1 §6.5.5.7.3:
    /// the permission and RP ID rules of the PIN variant, then built-in UV
    /// ([`PinUv::perform_builtin_uv`]: UV_INVALID / UV_BLOCKED). The method
    /// also proves user presence, so the token starts with userPresent set.
    fn get_pin_uv_auth_token_using_uv<S: Storage, R: RngCore + CryptoRng, P: UserPresence>(
        &mut self,
        request: &Request<'_>,
        storage: &mut S,
        rng: &mut R,
        presence: &mut P,
        now_ms: u64,
    ) -> Result<Response, Error> {
        let (Some(_), Some(peer), Some(permissions)) = (
            request.pin_protocol,
            request.key_agreement.as_ref(),
            request.permissions,
        ) else {
            return Err(Error::MissingParameter);
        };
        let version = version_of(request)?;
        self.check_permissions(permissions)?;
        if self.state.uv_retries() == 0 {
            return Err(Error::UvBlocked);
        }
        let shared = self.decapsulate(version, peer)?;
        self.perform_builtin_uv(storage, presence, now_ms)?;
        self.issue_token(
            version,
            &shared,
            permissions & permission::DEFINED,
            request.rp_id,
            true,
            rng,
            now_ms,
        )
    }

    /// The permission checks shared by both WithPermissions subcommands: not
    /// zero (INVALID_PARAMETER), and none for a feature the key lacks
    /// (UNAUTHORIZED_PERMISSION).
    fn check_permissions(&self, permissions: u8) -> Result<(), Error> {
        if permissions == 0 {
            return Err(Error::InvalidParameter);
        }
        let f = self.features;
        let unauthorized = (permissions & permission::CM != 0 && !f.cred_mgmt)
            || (permissions & permission::BE != 0 && !f.bio_enroll)
            || (permissions & permission::LBW != 0 && !f.large_blobs)
            || (permissions & permission::ACFG != 0 && !f.authnr_cfg);
        if unauthorized {
            return Err(Error::UnauthorizedPermission);
        }
        Ok(())
    }

    /// The checks before a PIN attempt may be spent: a PIN exists, retries
    /// remain, and no power cycle is due.
    fn pin_gate(&self) -> Result<(), Error> {
        if !self.state.is_pin_set() {
            return Err(Error::PinNotSet);
        }
        if self.state.retries() == 0 {
            return Err(Error::PinBlocked);
        }
        if self.power_cycle_required() {
            return Err(Error::PinAuthBlocked);
        }
        Ok(())
    }

    /// Spends one PIN attempt (persisted first), then compares the decrypted
    /// pinHashEnc with `CurrentStoredPIN`. On a mismatch the protocol's key
    /// agreement key is regenerated; on a match retries (PIN and, so a PIN
    /// unblocks built-in UV, uvRetries) return to the maximum.
    fn check_pin_hash<S: Storage, R: RngCore + CryptoRng>(
        &mut self,
        version: ProtocolVersion,
        shared: &SharedSecret,
        pin_hash_enc: &[u8],
        storage: &mut S,
        rng: &mut R,
    ) -> Result<(), Error> {
        let remaining = self.state.retries().saturating_sub(1);
        self.state
            .update(storage, |s| s.set_retries(remaining))
            .map_err(storage_error)?;

        let mut pin_hash = [0u8; PIN_HASH_LEN];
        let matches = match shared.decrypt(pin_hash_enc, &mut pin_hash) {
            Ok(PIN_HASH_LEN) => self.state.pin_hash_matches(&pin_hash),
            _ => false,
        };

        if !matches {
            crate::wipe::wipe("decrypted pinHash", &mut pin_hash);
            self.key_agreement[version.index()].regenerate(rng);
            self.consecutive_mismatches = self.consecutive_mismatches.saturating_add(1);
            return Err(if self.state.retries() == 0 {
                Error::PinBlocked
            } else if self.consecutive_mismatches >= MAX_CONSECUTIVE_MISMATCHES {
                Error::PinAuthBlocked
            } else {
                Error::PinInvalid
            });
        }
        self.consecutive_mismatches = 0;
        // A verifier made at another cost than the configured one is made
        // again now that the pinHash is at hand (same PIN, new salt).
        let restretched = (self.state.pin_cost() != Some(self.kdf))
            .then(|| PinVerifier::new(&pin_hash, self.kdf, rng));
        crate::wipe::wipe("decrypted pinHash", &mut pin_hash);
        self.state
            .update(storage, |s| {
                s.set_retries(MAX_PIN_RETRIES);
                s.set_uv_retries(MAX_UV_RETRIES);
                if let Some(verifier) = restretched {
                    s.restretch(verifier);
                }
            })
            .map_err(storage_error)
    }

    /// Replaces the tokens, begins using the new one with `permissions`,
    /// `rp_id` and `user_present` (true only after built-in UV), and returns it
    /// encrypted for the platform.
    // The token's parameters travel as plain arguments.
    #[allow(clippy::too_many_arguments)]
    fn issue_token<R: RngCore + CryptoRng>(
        &mut self,
        version: ProtocolVersion,
        shared: &SharedSecret,
        permissions: u8,
        rp_id: Option<&str>,
        user_present: bool,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Response, Error> {
        self.token.reset(rng);
        self.token
            .begin_using(user_present, permissions, rp_id, now_ms);
        let mut encrypted = [0u8; TOKEN_LEN + 16];
        let len = shared
            .encrypt(rng, self.token.value(version), &mut encrypted)
            .map_err(|_| Error::Other)?;
        let pin_token = encrypted
            .get(..len)
            .and_then(|ct| Bytes::try_from(ct).ok())
            .ok_or(Error::Other)?;
        let mut response = Response::default();
        response.pin_token = Some(pin_token);
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(pin: &[u8]) -> [u8; PADDED_PIN_LEN] {
        let mut p = [0u8; PADDED_PIN_LEN];
        p[..pin.len()].copy_from_slice(pin);
        p
    }

    #[test]
    fn pin_policy() {
        let ok = check_new_pin(&padded(b"1234"), 4).unwrap();
        assert_eq!(ok.code_points, 4);
        assert_eq!(ok.hash[..], Sha256::digest(b"1234")[..16]);
        assert_eq!(
            check_new_pin(&padded(b"123"), 4).err(),
            Some(Error::PinPolicyViolation)
        );
        assert_eq!(
            check_new_pin(&padded(b""), 4).err(),
            Some(Error::PinPolicyViolation)
        );
        // Code points, not bytes: "äöü" is 6 bytes but 3 code points.
        assert_eq!(
            check_new_pin(&padded("äöü".as_bytes()), 4).err(),
            Some(Error::PinPolicyViolation)
        );
        assert_eq!(
            check_new_pin(&padded("äöüß".as_bytes()), 4)
                .unwrap()
                .code_points,
            4
        );
        assert_eq!(
            check_new_pin(&padded(&[b'7'; 63]), 4).unwrap().code_points,
            63
        );
        assert_eq!(
            check_new_pin(&[b'7'; 64], 4).err(),
            Some(Error::PinPolicyViolation),
            "64 bytes leave no padding"
        );
        assert_eq!(
            check_new_pin(&padded(b"12\x0034"), 4).err(),
            Some(Error::PinPolicyViolation)
        );
        assert_eq!(
            check_new_pin(&padded(&[0xff, 0xfe, 0x41, 0x42]), 4).err(),
            Some(Error::PinPolicyViolation)
        );
        assert_eq!(check_new_pin(&padded(b"123456"), 6).unwrap().code_points, 6);
        assert_eq!(
            check_new_pin(&padded(b"12345"), 6).err(),
            Some(Error::PinPolicyViolation)
        );
    }
}
