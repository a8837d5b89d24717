//! Ed25519 (COSE "EdDSA", alg -8; RFC 8032 PureEdDSA over the whole message).
//!
//! Unlike ES256 the message is not hashed by the caller: Ed25519 hashes it twice
//! internally, so a multi-part message is first copied into one contiguous
//! buffer of at most [`MAX_MESSAGE_LEN`] bytes (authenticatorData plus a
//! clientDataHash always fits).

use ed25519_dalek::{Signer, SigningKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use super::CryptoError;

/// The COSE algorithm identifier of EdDSA.
pub const COSE_ALG_EDDSA: i32 = -8;
/// The length of an OKP COSE_Key as written by [`Ed25519PublicKey::to_cose`].
pub const COSE_KEY_LEN: usize = 42;
/// The length of a raw Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// The longest message [`Ed25519SecretKey::sign`] accepts.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// An Ed25519 private key (the 32-byte seed). Zeroized on drop; `Debug` hides it.
#[derive(Clone)]
pub struct Ed25519SecretKey([u8; 32]);

impl Drop for Ed25519SecretKey {
    fn drop(&mut self) {
        crate::wipe::wipe("Ed25519SecretKey", &mut self.0);
    }
}

impl core::fmt::Debug for Ed25519SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Ed25519SecretKey(..)")
    }
}

/// An Ed25519 public key (the 32-byte compressed point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ed25519PublicKey(pub [u8; 32]);

impl Ed25519PublicKey {
    /// The COSE_Key `{1: 1 (OKP), 3: -8 (EdDSA), -1: 6 (Ed25519), -2: x}`, in
    /// CTAP2 canonical order.
    pub fn to_cose(&self) -> [u8; COSE_KEY_LEN] {
        let mut out = [0u8; COSE_KEY_LEN];
        // map(4), kty: OKP, alg: EdDSA, crv: Ed25519, x: bstr(32)
        let head = [0xA4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20];
        out[..head.len()].copy_from_slice(&head);
        out[head.len()..].copy_from_slice(&self.0);
        out
    }
}

impl Ed25519SecretKey {
    /// Generates a fresh random key (a random seed).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let key = Ed25519SecretKey(seed);
        seed.zeroize();
        key
    }

    /// A key from its seed (every 32-byte value is a valid seed).
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        Ed25519SecretKey(*seed)
    }

    /// The 32-byte seed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> Ed25519PublicKey {
        Ed25519PublicKey(SigningKey::from_bytes(&self.0).verifying_key().to_bytes())
    }

    /// Signs the concatenation of `parts`; fails with `BufferTooSmall` when it
    /// is longer than [`MAX_MESSAGE_LEN`].
    pub fn sign(&self, parts: &[&[u8]]) -> Result<[u8; SIGNATURE_LEN], CryptoError> {
        let mut message = heapless::Vec::<u8, MAX_MESSAGE_LEN>::new();
        for part in parts {
            message
                .extend_from_slice(part)
                .map_err(|_| CryptoError::BufferTooSmall)?;
        }
        let signing_key = SigningKey::from_bytes(&self.0);
        Ok(signing_key.sign(&message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, VerifyingKey};

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1, TEST 1 (empty message).
        let seed =
            hex_literal::hex!("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public =
            hex_literal::hex!("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let signature = hex_literal::hex!(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        let key = Ed25519SecretKey::from_bytes(&seed);
        assert_eq!(key.public_key().0, public);
        assert_eq!(key.sign(&[]).unwrap(), signature);
    }

    #[test]
    fn parts_are_concatenated_and_verify_independently() {
        let mut rng = crate::test_platform::seeded_rng(9);
        let key = Ed25519SecretKey::generate(&mut rng);
        let sig = key.sign(&[b"hello ", b"world"]).unwrap();
        let vk = VerifyingKey::from_bytes(&key.public_key().0).unwrap();
        vk.verify_strict(b"hello world", &Signature::from_bytes(&sig))
            .unwrap();
        assert!(vk
            .verify_strict(b"hello worle", &Signature::from_bytes(&sig))
            .is_err());
        let too_long = [0u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(key.sign(&[&too_long]), Err(CryptoError::BufferTooSmall));
    }

    #[test]
    fn cose_key_decodes() {
        let cose = Ed25519PublicKey([7; 32]).to_cose();
        let value: ciborium::Value = ciborium::from_reader(&cose[..]).unwrap();
        let map = value.as_map().unwrap();
        let entries: std::vec::Vec<_> = map
            .iter()
            .map(|(k, v)| (i64::try_from(k.as_integer().unwrap()).unwrap(), v.clone()))
            .collect();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0], (1, ciborium::Value::Integer(1.into())));
        assert_eq!(entries[1], (3, ciborium::Value::Integer((-8).into())));
        assert_eq!(entries[2], (-1, ciborium::Value::Integer(6.into())));
        assert_eq!(entries[3], (-2, ciborium::Value::Bytes([7u8; 32].to_vec())));
    }

    #[test]
    fn debug_hides_secret() {
        let key = Ed25519SecretKey::from_bytes(&[7; 32]);
        assert_eq!(std::format!("{key:?}"), "Ed25519SecretKey(..)");
    }
}
