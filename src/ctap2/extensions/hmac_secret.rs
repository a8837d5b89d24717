//! hmac-secret (CTAP 2.1 §12.5) and hmac-secret-mc (CTAP 2.2 §12.7): the
//! platform's encrypted salts in, encrypted `HMAC-SHA-256(CredRandom, salt)`
//! outputs back.
//!
//! The platform encapsulates to the authenticator's PIN/UV key-agreement key
//! (the one authenticatorClientPIN getKeyAgreement returned during this
//! power-up), so the shared secret comes from [`PinUv::shared_secret`].

use ctap_types::ctap2::get_assertion::HmacSecretInput;
use ctap_types::ctap2::Error;
use ctap_types::Bytes;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::pin::protocol::SharedSecret;
use crate::pin::{PinUv, ProtocolVersion};
use crate::profile::PinProtocols;

/// The length of one salt and of one output.
pub(crate) const SALT_LEN: usize = 32;
/// The longest encrypted output: two outputs plus protocol two's IV.
pub(crate) const MAX_OUTPUT_LEN: usize = 80;

/// A verified and decrypted hmac-secret request. Keeps the shared secret to
/// encrypt the outputs (also those of later getNextAssertion calls). Secrets are
/// zeroized on drop.
pub(crate) struct HmacSecretRequest {
    secret: SharedSecret,
    salts: [u8; 2 * SALT_LEN],
    salt_len: usize,
}

impl Drop for HmacSecretRequest {
    fn drop(&mut self) {
        crate::wipe::wipe("hmac-secret salts", &mut self.salts);
    }
}

impl core::fmt::Debug for HmacSecretRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HmacSecretRequest")
            .field("protocol", &self.secret.version())
            .field("salts", &(self.salt_len / SALT_LEN))
            .finish()
    }
}

impl HmacSecretRequest {
    /// Checks and opens an hmac-secret input:
    ///
    /// - pinUvAuthProtocol defaults to one; one the key does not have
    ///   (`protocols`, the profile's) is INVALID_PARAMETER;
    /// - a platform key that is not a P-256 point is INVALID_PARAMETER;
    /// - saltAuth must be `authenticate(shared secret, saltEnc)`, else PIN_AUTH_INVALID;
    /// - the decrypted salts must be 32 or 64 bytes, else INVALID_LENGTH.
    pub(crate) fn open(
        pin: &PinUv,
        protocols: PinProtocols,
        input: &HmacSecretInput,
    ) -> Result<Self, Error> {
        let protocol = input.pin_protocol.unwrap_or(1);
        if !protocols.has(u64::from(protocol)) {
            return Err(Error::InvalidParameter);
        }
        let version = u8::try_from(protocol)
            .ok()
            .and_then(ProtocolVersion::from_u8)
            .ok_or(Error::InvalidParameter)?;
        let secret = pin
            .shared_secret(version, &input.key_agreement)
            .map_err(|_| Error::InvalidParameter)?;
        secret
            .verify(&[&input.salt_enc], &input.salt_auth)
            .map_err(|_| Error::PinAuthInvalid)?;
        let salt_len = secret
            .plaintext_len(&input.salt_enc)
            .map_err(|_| Error::InvalidLength)?;
        if salt_len != SALT_LEN && salt_len != 2 * SALT_LEN {
            return Err(Error::InvalidLength);
        }
        let mut salts = [0u8; 2 * SALT_LEN];
        secret
            .decrypt(&input.salt_enc, &mut salts)
            .map_err(|_| Error::InvalidLength)?;
        Ok(HmacSecretRequest {
            secret,
            salts,
            salt_len,
        })
    }

    /// `encrypt(shared secret, output1 [|| output2])` with
    /// `outputN = HMAC-SHA-256(cred_random, saltN)`.
    pub(crate) fn output<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        cred_random: &[u8; 32],
    ) -> Result<Bytes<MAX_OUTPUT_LEN>, Error> {
        let mut plain = [0u8; 2 * SALT_LEN];
        let salts = self.salts.get(..self.salt_len).ok_or(Error::Other)?;
        for (salt, out) in salts
            .chunks_exact(SALT_LEN)
            .zip(plain.chunks_exact_mut(SALT_LEN))
        {
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(cred_random).map_err(|_| Error::Other)?;
            mac.update(salt);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        let mut encrypted = [0u8; MAX_OUTPUT_LEN];
        let result = self.secret.encrypt(
            rng,
            plain.get(..self.salt_len).unwrap_or(&[]),
            &mut encrypted,
        );
        plain.zeroize();
        let len = result.map_err(|_| Error::Other)?;
        Bytes::try_from(encrypted.get(..len).ok_or(Error::Other)?).map_err(|_| Error::Other)
    }
}
