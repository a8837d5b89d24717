//! Authenticated encryption of credential private keys ("key wrapping").
//!
//! The wrapping key is derived from the device secret with HKDF-SHA-256, and
//! keys are sealed with XChaCha20-Poly1305 under a random 24-byte nonce (random
//! nonces of that size never realistically collide).

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroize;

use super::CryptoError;

/// The nonce length of [`WrapKey::seal`].
pub const NONCE_LEN: usize = 24;
/// The authentication tag length of [`WrapKey::seal`].
pub const TAG_LEN: usize = 16;

const WRAP_INFO: &[u8] = b"ferrokey credential wrapping key v1";
const IMPORT_INFO: &[u8] = b"ferrokey imported key sealing v1";

/// A key that seals and opens credential private keys. Zeroized on drop.
#[derive(Clone)]
pub struct WrapKey([u8; 32]);

impl Drop for WrapKey {
    fn drop(&mut self) {
        crate::wipe::wipe("WrapKey", &mut self.0);
    }
}

impl core::fmt::Debug for WrapKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("WrapKey(..)")
    }
}

impl WrapKey {
    /// Derives the wrapping key from the device secret.
    pub fn derive(device_secret: &[u8; 32]) -> Result<Self, CryptoError> {
        Self::derive_with(device_secret, WRAP_INFO)
    }

    /// Derives the key that seals imported private keys in their records.
    pub fn derive_import(device_secret: &[u8; 32]) -> Result<Self, CryptoError> {
        Self::derive_with(device_secret, IMPORT_INFO)
    }

    fn derive_with(device_secret: &[u8; 32], info: &[u8]) -> Result<Self, CryptoError> {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, device_secret)
            .expand(info, &mut key)
            .map_err(|_| CryptoError::InvalidKey)?;
        let out = WrapKey(key);
        key.zeroize();
        Ok(out)
    }

    /// Encrypts `buffer` in place, binding `aad`; returns the tag.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, buffer)
            .map_err(|_| CryptoError::Seal)?;
        Ok(tag.into())
    }

    /// Decrypts `buffer` in place if `tag` authenticates it with `aad`. On
    /// failure `buffer` is left encrypted.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, buffer, Tag::from_slice(tag))
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_key_and_hides_it() {
        let key = WrapKey::derive(&[1; 32]).unwrap();
        assert_eq!(std::format!("{key:?}"), "WrapKey(..)");
    }

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let key = WrapKey::derive(&[1; 32]).unwrap();
        let nonce = [9; NONCE_LEN];
        let mut data = *b"secret key bytes";
        let tag = key.seal(&nonce, b"aad", &mut data).unwrap();
        assert_ne!(&data, b"secret key bytes");
        let sealed = data;

        let mut copy = sealed;
        key.open(&nonce, b"aad", &mut copy, &tag).unwrap();
        assert_eq!(&copy, b"secret key bytes");

        let mut copy = sealed;
        assert_eq!(
            key.open(&nonce, b"other", &mut copy, &tag),
            Err(CryptoError::Open)
        );
        let other = WrapKey::derive(&[2; 32]).unwrap();
        let mut copy = sealed;
        assert_eq!(
            other.open(&nonce, b"aad", &mut copy, &tag),
            Err(CryptoError::Open)
        );
        let mut copy = sealed;
        copy[0] ^= 1;
        assert_eq!(
            key.open(&nonce, b"aad", &mut copy, &tag),
            Err(CryptoError::Open)
        );
    }
}
