//! Cryptographic building blocks: ES256 (ECDSA P-256 with SHA-256), Ed25519, credential key
//! wrapping (XChaCha20-Poly1305 under an HKDF-derived key) and hashing helpers.
//!
//! Nothing here knows about CTAP; the credential and command layers build on it.

pub mod der;
pub mod ed25519;
pub mod es256;
pub mod wrap;

use sha2::{Digest, Sha256};

pub use es256::{DerSignature, PublicKey, SecretKey};
pub use wrap::WrapKey;

/// Why a cryptographic operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// Key material is not a valid key (e.g. a zero or out-of-range P-256 scalar).
    InvalidKey,
    /// Signing failed.
    Signing,
    /// AEAD sealing failed.
    Seal,
    /// AEAD opening failed: wrong key, wrong associated data, or tampered data.
    Open,
    /// A buffer was too small for the result.
    BufferTooSmall,
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}
