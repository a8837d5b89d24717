//! PIN/UV auth protocols one and two (CTAP 2.1 §6.5.6 and §6.5.7).
//!
//! Both protocols share the key agreement (ECDH on P-256 with the platform's
//! ephemeral key) and differ in how the ECDH result becomes a shared secret and
//! in how that secret encrypts and authenticates:
//!
//! | | protocol one | protocol two |
//! |---|---|---|
//! | shared secret | SHA-256(Z), 32 bytes | HKDF-SHA-256(Z, "CTAP2 HMAC key") ‖ HKDF-SHA-256(Z, "CTAP2 AES key"), 64 bytes |
//! | encrypt | AES-256-CBC, IV = 0 | AES-256-CBC, random IV prepended |
//! | authenticate | LEFT(HMAC-SHA-256, 16) | HMAC-SHA-256 (32 bytes) |
//!
//! Everything here is stateless apart from [`KeyAgreementKey`]; the
//! pinUvAuthToken lives in [`super::token`].

use aes::Aes256;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use cosey::EcdhEsHkdf256PublicKey;
use ctap_types::Bytes;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::{EncodedPoint, PublicKey, SecretKey};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

type HmacSha256 = Hmac<Sha256>;
type Aes256CbcEnc = cbc::Encryptor<Aes256>;
type Aes256CbcDec = cbc::Decryptor<Aes256>;

/// The AES block (and protocol two IV) length.
pub const BLOCK_LEN: usize = 16;

/// A PIN/UV auth protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// PIN/UV auth protocol one (CTAP 2.0 compatible).
    One,
    /// PIN/UV auth protocol two.
    Two,
}

impl ProtocolVersion {
    /// The versions this authenticator supports, in order of preference (for
    /// getInfo `pinUvAuthProtocols`).
    pub const SUPPORTED: [ProtocolVersion; 2] = [ProtocolVersion::Two, ProtocolVersion::One];

    /// Parses the `pinUvAuthProtocol` request value; `None` if unsupported.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(ProtocolVersion::One),
            2 => Some(ProtocolVersion::Two),
            _ => None,
        }
    }

    /// 0 for protocol one, 1 for protocol two (an index into per-protocol arrays).
    pub(crate) fn index(self) -> usize {
        match self {
            ProtocolVersion::One => 0,
            ProtocolVersion::Two => 1,
        }
    }

    /// The length of an `authenticate` output (a pinUvAuthParam) for this protocol.
    pub fn tag_len(self) -> usize {
        match self {
            ProtocolVersion::One => 16,
            ProtocolVersion::Two => 32,
        }
    }

    /// How much longer a ciphertext is than its plaintext (the prepended IV).
    pub fn ciphertext_overhead(self) -> usize {
        match self {
            ProtocolVersion::One => 0,
            ProtocolVersion::Two => BLOCK_LEN,
        }
    }
}

/// Why a protocol operation failed. Deliberately uninformative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The peer's key is malformed or not a point on P-256.
    InvalidPeerKey,
    /// A ciphertext has the wrong shape (length not a whole number of blocks, no IV).
    MalformedCiphertext,
    /// The output buffer is too small for the result.
    BufferTooSmall,
    /// A MAC did not verify (or had the wrong length).
    BadSignature,
}

/// The secret shared with the platform for one authenticatorClientPIN transaction.
///
/// Protocol one uses 32 bytes (the AES and HMAC key at once); protocol two 64
/// bytes (HMAC key, then AES key). Zeroized on drop; no `Debug`.
pub struct SharedSecret {
    version: ProtocolVersion,
    bytes: [u8; 64],
}

impl Drop for SharedSecret {
    fn drop(&mut self) {
        crate::wipe::wipe("SharedSecret", &mut self.bytes);
    }
}

impl SharedSecret {
    /// Derives the shared secret from the ECDH x-coordinate `z` (the protocol's `kdf`).
    pub fn derive(version: ProtocolVersion, z: &[u8; 32]) -> Self {
        let mut bytes = [0u8; 64];
        match version {
            ProtocolVersion::One => {
                let digest = Sha256::digest(z);
                bytes[..32].copy_from_slice(&digest);
            }
            ProtocolVersion::Two => {
                let hk = Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
                // 32 bytes is far below HKDF-SHA-256's 255 * 32 limit, so expand cannot fail;
                // on the impossible failure the key stays zero and nothing will verify.
                let (hmac_key, aes_key) = bytes.split_at_mut(32);
                let _ = hk.expand(b"CTAP2 HMAC key", hmac_key);
                let _ = hk.expand(b"CTAP2 AES key", aes_key);
            }
        }
        SharedSecret { version, bytes }
    }

    /// The protocol this secret belongs to.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The HMAC key (protocol one: the whole secret; two: the first half).
    pub fn hmac_key(&self) -> &[u8] {
        &self.bytes[..32]
    }

    /// The AES-256 key (protocol one: the whole secret; two: the second half).
    fn aes_key(&self) -> &[u8] {
        match self.version {
            ProtocolVersion::One => &self.bytes[..32],
            ProtocolVersion::Two => &self.bytes[32..],
        }
    }

    /// `encrypt(shared secret, plaintext)`: writes the ciphertext to `out` and
    /// returns its length. `plaintext` must be a whole number of AES blocks.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        if plaintext.len() % BLOCK_LEN != 0 {
            return Err(CryptoError::MalformedCiphertext);
        }
        let overhead = self.version.ciphertext_overhead();
        let total = plaintext.len() + overhead;
        let out = out.get_mut(..total).ok_or(CryptoError::BufferTooSmall)?;
        let mut iv = [0u8; BLOCK_LEN];
        if self.version == ProtocolVersion::Two {
            rng.fill_bytes(&mut iv);
        }
        let (iv_out, body) = out.split_at_mut(overhead);
        iv_out.copy_from_slice(&iv[..overhead]);
        body.copy_from_slice(plaintext);
        let mut cipher = Aes256CbcEnc::new_from_slices(self.aes_key(), &iv)
            .map_err(|_| CryptoError::BufferTooSmall)?;
        for chunk in body.chunks_exact_mut(BLOCK_LEN) {
            cipher.encrypt_block_mut(chunk.into());
        }
        Ok(total)
    }

    /// The plaintext length `decrypt` would produce for `ciphertext`, or an error
    /// if the ciphertext is malformed.
    pub fn plaintext_len(&self, ciphertext: &[u8]) -> Result<usize, CryptoError> {
        let body_len = ciphertext
            .len()
            .checked_sub(self.version.ciphertext_overhead())
            .ok_or(CryptoError::MalformedCiphertext)?;
        if body_len % BLOCK_LEN != 0 {
            return Err(CryptoError::MalformedCiphertext);
        }
        Ok(body_len)
    }

    /// `decrypt(shared secret, ciphertext)`: writes the plaintext to `out` and
    /// returns its length.
    pub fn decrypt(&self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        let len = self.plaintext_len(ciphertext)?;
        let out = out.get_mut(..len).ok_or(CryptoError::BufferTooSmall)?;
        let (iv_in, body) = ciphertext.split_at(self.version.ciphertext_overhead());
        let mut iv = [0u8; BLOCK_LEN];
        iv[..iv_in.len()].copy_from_slice(iv_in);
        out.copy_from_slice(body);
        let mut cipher = Aes256CbcDec::new_from_slices(self.aes_key(), &iv)
            .map_err(|_| CryptoError::BufferTooSmall)?;
        for chunk in out.chunks_exact_mut(BLOCK_LEN) {
            cipher.decrypt_block_mut(chunk.into());
        }
        Ok(len)
    }

    /// `verify(shared secret, message, signature)`, over the concatenation of `message`.
    pub fn verify(&self, message: &[&[u8]], signature: &[u8]) -> Result<(), CryptoError> {
        verify(self.version, self.hmac_key(), message, signature)
    }
}

/// An HMAC-SHA-256 output, truncated per protocol (see [`ProtocolVersion::tag_len`]).
pub struct Tag {
    bytes: [u8; 32],
    len: usize,
}

impl Tag {
    /// The tag bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `authenticate(key, message)`: HMAC-SHA-256 over the concatenation of `message`
/// parts, truncated to 16 bytes for protocol one. For protocol two a key longer
/// than 32 bytes is cut to its first 32 (the HMAC half of a shared secret).
pub fn authenticate(version: ProtocolVersion, key: &[u8], message: &[&[u8]]) -> Tag {
    let key = match version {
        ProtocolVersion::Two => key.get(..32).unwrap_or(key),
        ProtocolVersion::One => key,
    };
    let mut bytes = [0u8; 32];
    // HMAC accepts keys of any length, so this never fails; if it somehow did, the
    // all-zero tag is returned and cannot be produced by a correct peer either.
    if let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(key) {
        for part in message {
            mac.update(part);
        }
        bytes.copy_from_slice(&mac.finalize().into_bytes());
    }
    Tag {
        bytes,
        len: version.tag_len(),
    }
}

/// `verify(key, message, signature)` in constant time: the signature must be
/// exactly [`ProtocolVersion::tag_len`] bytes and equal `authenticate(key, message)`.
pub fn verify(
    version: ProtocolVersion,
    key: &[u8],
    message: &[&[u8]],
    signature: &[u8],
) -> Result<(), CryptoError> {
    if signature.len() != version.tag_len() {
        return Err(CryptoError::BadSignature);
    }
    let expected = authenticate(version, key, message);
    if bool::from(expected.as_bytes().ct_eq(signature)) {
        Ok(())
    } else {
        Err(CryptoError::BadSignature)
    }
}

/// The authenticator's key-agreement key pair for one protocol (P-256).
///
/// Generated at power-up, and regenerated on `regenerate` (after a PIN
/// mismatch) and on authenticatorReset. The secret is zeroized on drop.
pub struct KeyAgreementKey {
    secret: SecretKey,
}

impl KeyAgreementKey {
    /// Generates a fresh key pair.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        KeyAgreementKey {
            secret: SecretKey::random(rng),
        }
    }

    /// Replaces the key pair with a fresh one (`regenerate`).
    pub fn regenerate<R: RngCore + CryptoRng>(&mut self, rng: &mut R) {
        *self = Self::generate(rng);
    }

    /// `getPublicKey`: the public key as a COSE_Key with alg -25 (ECDH-ES+HKDF-256).
    pub fn public_key(&self) -> EcdhEsHkdf256PublicKey {
        let point = self.secret.public_key().to_encoded_point(false);
        let mut x = Bytes::new();
        let mut y = Bytes::new();
        // An uncompressed encoding of a public key always has 32-byte coordinates,
        // which always fit Bytes<32>.
        if let (Some(px), Some(py)) = (point.x(), point.y()) {
            let _ = x.extend_from_slice(px);
            let _ = y.extend_from_slice(py);
        }
        EcdhEsHkdf256PublicKey { x, y }
    }

    /// `decapsulate(peer COSE key)`: ECDH with the platform's key, then the
    /// protocol's KDF. Fails for coordinates that are not 32 bytes or a point not on
    /// the curve.
    pub fn decapsulate(
        &self,
        version: ProtocolVersion,
        peer: &EcdhEsHkdf256PublicKey,
    ) -> Result<SharedSecret, CryptoError> {
        let x: [u8; 32] = peer
            .x
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::InvalidPeerKey)?;
        let y: [u8; 32] = peer
            .y
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::InvalidPeerKey)?;
        let encoded = EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
        let peer_key: PublicKey = Option::from(PublicKey::from_encoded_point(&encoded))
            .ok_or(CryptoError::InvalidPeerKey)?;
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer_key.as_affine());
        let mut z = [0u8; 32];
        z.copy_from_slice(shared.raw_secret_bytes());
        let secret = SharedSecret::derive(version, &z);
        z.zeroize();
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_platform::seeded_rng;

    #[test]
    fn version_parsing() {
        assert_eq!(ProtocolVersion::from_u8(1), Some(ProtocolVersion::One));
        assert_eq!(ProtocolVersion::from_u8(2), Some(ProtocolVersion::Two));
        assert_eq!(ProtocolVersion::from_u8(0), None);
        assert_eq!(ProtocolVersion::from_u8(3), None);
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let expected =
            hex_literal::hex!("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let tag = authenticate(
            ProtocolVersion::Two,
            b"Jefe",
            &[b"what do ya want ", b"for nothing?"],
        );
        assert_eq!(tag.as_bytes(), &expected);
        let tag1 = authenticate(
            ProtocolVersion::One,
            b"Jefe",
            &[b"what do ya want for nothing?"],
        );
        assert_eq!(tag1.as_bytes(), &expected[..16]);
        assert!(verify(
            ProtocolVersion::One,
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &expected[..16]
        )
        .is_ok());
        // Protocol one does not accept the full 32-byte tag, nor protocol two a 16-byte one.
        assert!(verify(
            ProtocolVersion::One,
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &expected
        )
        .is_err());
        assert!(verify(
            ProtocolVersion::Two,
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &expected[..16]
        )
        .is_err());
        let mut wrong = expected;
        wrong[31] ^= 1;
        assert!(verify(
            ProtocolVersion::Two,
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &wrong
        )
        .is_err());
    }

    #[test]
    fn encrypt_decrypt_round_trip_and_shapes() {
        let mut rng = seeded_rng(1);
        for version in ProtocolVersion::SUPPORTED {
            let secret = SharedSecret::derive(version, &[7u8; 32]);
            let plaintext = [0x42u8; 64];
            let mut ct = [0u8; 80];
            let n = secret.encrypt(&mut rng, &plaintext, &mut ct).unwrap();
            assert_eq!(n, 64 + version.ciphertext_overhead());
            assert_ne!(&ct[version.ciphertext_overhead()..n], &plaintext[..]);
            let mut pt = [0u8; 64];
            assert_eq!(secret.decrypt(&ct[..n], &mut pt), Ok(64));
            assert_eq!(pt, plaintext);
            // Not a whole number of blocks.
            assert_eq!(
                secret.decrypt(&ct[..n - 1], &mut pt),
                Err(CryptoError::MalformedCiphertext)
            );
            // Output buffer too small.
            assert_eq!(
                secret.decrypt(&ct[..n], &mut pt[..32]),
                Err(CryptoError::BufferTooSmall)
            );
            assert_eq!(
                secret.encrypt(&mut rng, &plaintext[..15], &mut ct),
                Err(CryptoError::MalformedCiphertext)
            );
        }
        let two = SharedSecret::derive(ProtocolVersion::Two, &[7u8; 32]);
        let mut pt = [0u8; 16];
        assert_eq!(
            two.decrypt(&[0u8; 8], &mut pt),
            Err(CryptoError::MalformedCiphertext)
        );
        assert_eq!(two.decrypt(&[0u8; 16], &mut pt), Ok(0));
    }

    #[test]
    fn decapsulate_rejects_bad_points() {
        let mut rng = seeded_rng(2);
        let key = KeyAgreementKey::generate(&mut rng);
        let good = key.public_key();
        assert_eq!(good.x.len(), 32);
        assert_eq!(good.y.len(), 32);
        assert!(key.decapsulate(ProtocolVersion::One, &good).is_ok());

        let mut off_curve = good.clone();
        off_curve.y[31] ^= 1;
        assert_eq!(
            key.decapsulate(ProtocolVersion::Two, &off_curve).err(),
            Some(CryptoError::InvalidPeerKey)
        );

        let mut short = good.clone();
        short.x.truncate(31);
        assert_eq!(
            key.decapsulate(ProtocolVersion::Two, &short).err(),
            Some(CryptoError::InvalidPeerKey)
        );

        let zeros = EcdhEsHkdf256PublicKey {
            x: Bytes::try_from(&[0u8; 32][..]).unwrap(),
            y: Bytes::try_from(&[0u8; 32][..]).unwrap(),
        };
        assert_eq!(
            key.decapsulate(ProtocolVersion::One, &zeros).err(),
            Some(CryptoError::InvalidPeerKey)
        );
    }

    #[test]
    fn regenerate_changes_the_public_key() {
        let mut rng = seeded_rng(3);
        let mut key = KeyAgreementKey::generate(&mut rng);
        let before = key.public_key();
        key.regenerate(&mut rng);
        assert_ne!(before, key.public_key());
    }
}
