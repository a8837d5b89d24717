//! ES256: ECDSA over P-256 with SHA-256, DER-encoded signatures.

use ecdsa::hazmat::SignPrimitive;
use p256::ecdsa::Signature;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::elliptic_curve::PrimeField;
use p256::{FieldBytes, NonZeroScalar, ProjectivePoint, Scalar};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::der;
use super::CryptoError;

/// The COSE algorithm identifier of ES256.
pub const COSE_ALG_ES256: i32 = -7;

/// A DER-encoded ECDSA signature (at most 72 bytes for P-256).
pub type DerSignature = heapless::Vec<u8, 72>;

/// A P-256 private key (the scalar, big-endian). Zeroized on drop; `Debug` hides it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl Drop for SecretKey {
    fn drop(&mut self) {
        crate::wipe::wipe("SecretKey", &mut self.0);
    }
}

impl core::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A P-256 public key as affine coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// The x coordinate, big-endian.
    pub x: [u8; 32],
    /// The y coordinate, big-endian.
    pub y: [u8; 32],
}

/// The length of an EC2 COSE_Key as written by [`PublicKey::to_cose`].
pub const COSE_KEY_LEN: usize = 77;

impl PublicKey {
    /// The COSE_Key (RFC 9052) of this key: `{1: 2, 3: -7, -1: 1, -2: x, -3: y}`,
    /// in CTAP2 canonical order.
    pub fn to_cose(&self) -> [u8; COSE_KEY_LEN] {
        let mut out = [0u8; COSE_KEY_LEN];
        // map(5), kty: EC2, alg: ES256, crv: P-256, x: bstr(32)
        let head = [0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        out[..10].copy_from_slice(&head);
        out[10..42].copy_from_slice(&self.x);
        // y: bstr(32)
        out[42..45].copy_from_slice(&[0x22, 0x58, 0x20]);
        out[45..77].copy_from_slice(&self.y);
        out
    }

    /// The SEC1 uncompressed encoding `0x04 || x || y` (as U2F uses).
    pub fn to_uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        out[1..33].copy_from_slice(&self.x);
        out[33..].copy_from_slice(&self.y);
        out
    }
}

impl SecretKey {
    /// Generates a fresh random key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self::from_scalar(&NonZeroScalar::random(rng))
    }

    /// Generates a fresh random key together with its public key, computing
    /// the point once (a key generation is one scalar multiplication).
    pub fn generate_with_public<R: RngCore + CryptoRng>(rng: &mut R) -> (Self, PublicKey) {
        let scalar = NonZeroScalar::random(rng);
        let public = public_of(&scalar);
        (Self::from_scalar(&scalar), public)
    }

    fn from_scalar(scalar: &NonZeroScalar) -> Self {
        let mut bytes: [u8; 32] = scalar.to_repr().into();
        let out = SecretKey(bytes);
        bytes.zeroize();
        out
    }

    /// A key from its 32-byte scalar; fails for zero or out-of-range scalars.
    /// Checks the scalar only: no point is computed.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        let key = SecretKey(*bytes);
        key.scalar()?;
        Ok(key)
    }

    /// The 32-byte scalar.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn scalar(&self) -> Result<NonZeroScalar, CryptoError> {
        Option::from(NonZeroScalar::from_repr(*FieldBytes::from_slice(&self.0)))
            .ok_or(CryptoError::InvalidKey)
    }

    /// The matching public key (one scalar multiplication).
    pub fn public_key(&self) -> Result<PublicKey, CryptoError> {
        Ok(public_of(&self.scalar()?))
    }

    /// Signs the concatenation of `parts` (hashed with SHA-256, RFC 6979 nonce)
    /// and returns the DER-encoded signature. Signs from the scalar: the
    /// public key is never computed. The signature is the one
    /// `p256::ecdsa::SigningKey::sign` makes for the same key and message.
    pub fn sign(&self, parts: &[&[u8]]) -> Result<DerSignature, CryptoError> {
        let scalar = self.scalar()?;
        let mut digest = Sha256::new();
        for part in parts {
            digest.update(part);
        }
        let z: FieldBytes = digest.finalize();
        let secret: &Scalar = scalar.as_ref();
        let (signature, _) = secret
            .try_sign_prehashed_rfc6979::<Sha256>(&z, &[])
            .map_err(|_| CryptoError::Signing)?;
        let signature: Signature = signature.normalize_s().unwrap_or(signature);
        let (r, s) = signature.split_bytes();
        der::ecdsa_signature(&r.into(), &s.into())
    }
}

/// The public point of `scalar`, as affine coordinates.
fn public_of(scalar: &NonZeroScalar) -> PublicKey {
    let point = (ProjectivePoint::GENERATOR * scalar.as_ref())
        .to_affine()
        .to_encoded_point(false);
    let mut public = PublicKey {
        x: [0; 32],
        y: [0; 32],
    };
    if let (Some(x), Some(y)) = (point.x(), point.y()) {
        public.x.copy_from_slice(x);
        public.y.copy_from_slice(y);
    }
    public
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn signature_verifies_with_independent_verifier() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let key = SecretKey::generate(&mut rng);
        let public = key.public_key().unwrap();
        let sig = key.sign(&[b"hello ", b"world"]).unwrap();
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public.to_uncompressed()).unwrap();
        let parsed = p256::ecdsa::Signature::from_der(&sig).unwrap();
        vk.verify(b"hello world", &parsed).unwrap();
        assert!(vk.verify(b"hello worle", &parsed).is_err());
    }

    #[test]
    fn signature_equals_p256_signing_key_and_public_key_matches() {
        use p256::ecdsa::signature::Signer;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let (key, public) = SecretKey::generate_with_public(&mut rng);
        assert_eq!(key.public_key().unwrap(), public);
        let reference = p256::ecdsa::SigningKey::from_slice(key.as_bytes()).unwrap();
        let point = reference.verifying_key().to_encoded_point(false);
        assert_eq!(point.x().unwrap().as_slice(), &public.x);
        assert_eq!(point.y().unwrap().as_slice(), &public.y);
        let expected: p256::ecdsa::Signature = reference.sign(b"message");
        let expected = expected.normalize_s().unwrap_or(expected);
        let ours = key.sign(&[b"mess", b"age"]).unwrap();
        assert_eq!(ours.as_slice(), expected.to_der().as_bytes());
    }

    #[test]
    fn rejects_invalid_scalars() {
        assert_eq!(
            SecretKey::from_bytes(&[0; 32]).unwrap_err(),
            CryptoError::InvalidKey
        );
        assert_eq!(
            SecretKey::from_bytes(&[0xFF; 32]).unwrap_err(),
            CryptoError::InvalidKey
        );
    }

    #[test]
    fn debug_hides_secret() {
        let key = SecretKey::from_bytes(&[7; 32]).unwrap();
        assert_eq!(std::format!("{key:?}"), "SecretKey(..)");
    }

    #[test]
    fn cose_key_decodes() {
        let public = PublicKey {
            x: [1; 32],
            y: [2; 32],
        };
        let cose = public.to_cose();
        let value: ciborium::Value = ciborium::from_reader(&cose[..]).unwrap();
        let map = value.as_map().unwrap();
        assert_eq!(map.len(), 5);
        let get = |k: i64| {
            map.iter()
                .find(|(key, _)| key.as_integer() == Some(k.into()))
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(get(1).as_integer(), Some(2.into()));
        assert_eq!(get(3).as_integer(), Some((-7).into()));
        assert_eq!(get(-1).as_integer(), Some(1.into()));
        assert_eq!(get(-2).as_bytes().unwrap(), &[1u8; 32].to_vec());
        assert_eq!(get(-3).as_bytes().unwrap(), &[2u8; 32].to_vec());
    }
}
