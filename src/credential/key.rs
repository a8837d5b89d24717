//! A credential private key of either supported algorithm.

use rand_core::{CryptoRng, RngCore};

use super::Algorithm;
use crate::crypto::ed25519::{self, Ed25519SecretKey};
use crate::crypto::es256::{self, SecretKey};
use crate::crypto::CryptoError;

/// The longest COSE_Key any credential key encodes to (ES256's EC2 key).
pub const MAX_COSE_KEY_LEN: usize = es256::COSE_KEY_LEN;
/// The longest signature any credential key makes (a DER ES256 signature).
pub const MAX_SIGNATURE_LEN: usize = 72;

/// A COSE_Key public key.
pub type CoseKey = heapless::Vec<u8, MAX_COSE_KEY_LEN>;
/// A signature in the algorithm's WebAuthn encoding: DER for ES256, the raw 64
/// bytes for EdDSA.
pub type Signature = heapless::Vec<u8, MAX_SIGNATURE_LEN>;

/// A credential private key. Both variants zeroize on drop and hide in `Debug`.
#[derive(Clone, Debug)]
pub enum CredentialKey {
    /// ECDSA P-256.
    Es256(SecretKey),
    /// Ed25519.
    Ed25519(Ed25519SecretKey),
}

impl From<SecretKey> for CredentialKey {
    fn from(key: SecretKey) -> Self {
        CredentialKey::Es256(key)
    }
}

impl CredentialKey {
    /// Generates a fresh key for `algorithm`.
    pub fn generate<R: RngCore + CryptoRng>(algorithm: Algorithm, rng: &mut R) -> Self {
        match algorithm {
            Algorithm::Es256 => CredentialKey::Es256(SecretKey::generate(rng)),
            Algorithm::EdDsa => CredentialKey::Ed25519(Ed25519SecretKey::generate(rng)),
        }
    }

    /// Generates a fresh key and its COSE public key, computing the public
    /// point once.
    pub fn generate_with_cose<R: RngCore + CryptoRng>(
        algorithm: Algorithm,
        rng: &mut R,
    ) -> Result<(Self, CoseKey), CryptoError> {
        let (key, cose) = match algorithm {
            Algorithm::Es256 => {
                let (key, public) = SecretKey::generate_with_public(rng);
                (
                    CredentialKey::Es256(key),
                    CoseKey::from_slice(&public.to_cose()),
                )
            }
            Algorithm::EdDsa => {
                let key = Ed25519SecretKey::generate(rng);
                let cose = CoseKey::from_slice(&key.public_key().to_cose());
                (CredentialKey::Ed25519(key), cose)
            }
        };
        Ok((key, cose.map_err(|_| CryptoError::BufferTooSmall)?))
    }

    /// A key from its 32 secret bytes (the P-256 scalar or the Ed25519 seed).
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        Ok(match algorithm {
            Algorithm::Es256 => CredentialKey::Es256(SecretKey::from_bytes(bytes)?),
            Algorithm::EdDsa => CredentialKey::Ed25519(Ed25519SecretKey::from_bytes(bytes)),
        })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            CredentialKey::Es256(_) => Algorithm::Es256,
            CredentialKey::Ed25519(_) => Algorithm::EdDsa,
        }
    }

    /// The 32 secret bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        match self {
            CredentialKey::Es256(k) => k.as_bytes(),
            CredentialKey::Ed25519(k) => k.as_bytes(),
        }
    }

    /// The public key as a COSE_Key (EC2 for ES256, OKP for EdDSA).
    pub fn cose_public_key(&self) -> Result<CoseKey, CryptoError> {
        let mut out = CoseKey::new();
        let written = match self {
            CredentialKey::Es256(k) => out.extend_from_slice(&k.public_key()?.to_cose()),
            CredentialKey::Ed25519(k) => out.extend_from_slice(&k.public_key().to_cose()),
        };
        written.map_err(|_| CryptoError::BufferTooSmall)?;
        Ok(out)
    }

    /// Signs the concatenation of `parts` (see [`Signature`] for the encoding).
    pub fn sign(&self, parts: &[&[u8]]) -> Result<Signature, CryptoError> {
        match self {
            CredentialKey::Es256(k) => k.sign(parts),
            CredentialKey::Ed25519(k) => {
                let raw = k.sign(parts)?;
                Signature::from_slice(&raw).map_err(|_| CryptoError::BufferTooSmall)
            }
        }
    }
}

/// The COSE algorithm identifier of `algorithm` (as used in attestation statements).
pub fn cose_alg(algorithm: Algorithm) -> i32 {
    match algorithm {
        Algorithm::Es256 => es256::COSE_ALG_ES256,
        Algorithm::EdDsa => ed25519::COSE_ALG_EDDSA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_platform::seeded_rng;

    #[test]
    fn both_algorithms_round_trip_through_bytes() {
        let mut rng = seeded_rng(4);
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let key = CredentialKey::generate(alg, &mut rng);
            assert_eq!(key.algorithm(), alg);
            let again = CredentialKey::from_bytes(alg, key.as_bytes()).unwrap();
            assert_eq!(
                again.cose_public_key().unwrap(),
                key.cose_public_key().unwrap()
            );
        }
        // An invalid P-256 scalar is refused; every Ed25519 seed is accepted.
        assert!(CredentialKey::from_bytes(Algorithm::Es256, &[0; 32]).is_err());
        assert!(CredentialKey::from_bytes(Algorithm::EdDsa, &[0; 32]).is_ok());
    }

    #[test]
    fn eddsa_signature_is_raw_and_verifies() {
        use ed25519_dalek::{Signature as EdSig, VerifyingKey};
        let mut rng = seeded_rng(5);
        let key = CredentialKey::generate(Algorithm::EdDsa, &mut rng);
        let cose = key.cose_public_key().unwrap();
        assert_eq!(cose.len(), ed25519::COSE_KEY_LEN);
        let sig = key.sign(&[b"ab", b"cd"]).unwrap();
        assert_eq!(sig.len(), 64);
        let x: [u8; 32] = cose[10..].try_into().unwrap();
        let vk = VerifyingKey::from_bytes(&x).unwrap();
        let sig: [u8; 64] = sig.as_slice().try_into().unwrap();
        vk.verify_strict(b"abcd", &EdSig::from_bytes(&sig)).unwrap();
        assert_eq!(cose_alg(Algorithm::EdDsa), -8);
        assert_eq!(cose_alg(Algorithm::Es256), -7);
    }
}
