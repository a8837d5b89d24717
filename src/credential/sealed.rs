//! Imported private keys, sealed in their record.
//!
//! An imported credential's ID is chosen by whoever imported it, so it cannot
//! carry the key. The key goes into the record instead, sealed with
//! XChaCha20-Poly1305 under a key derived from the device secret
//! ([`crate::crypto::WrapKey::derive_import`], a different key from the one
//! that wraps credential IDs):
//!
//! ```text
//! sealed = nonce (24) | ciphertext (32) | tag (16)
//! AAD    = "ferrokey imported key v1" | alg (1) | rpIdHash (32) | credential ID (1–255)
//! ```
//!
//! The AAD binds the key to its RP, algorithm and ID, so a sealed key copied
//! into another record does not open. A reset (new device secret) makes every
//! sealed key unreadable.

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use super::{Algorithm, CredentialError, CredentialKey};
use crate::crypto::wrap::{NONCE_LEN, TAG_LEN};
use crate::crypto::WrapKey;

/// The length of a sealed key.
pub const SEALED_KEY_LEN: usize = NONCE_LEN + 32 + TAG_LEN;
/// A sealed private key.
pub type SealedKey = [u8; SEALED_KEY_LEN];

const AAD_LABEL: &[u8] = b"ferrokey imported key v1";

fn aad(
    algorithm: Algorithm,
    rp_id_hash: &[u8; 32],
    credential_id: &[u8],
) -> Result<heapless::Vec<u8, 320>, CredentialError> {
    let mut aad = heapless::Vec::new();
    let fits = aad.extend_from_slice(AAD_LABEL).is_ok()
        && aad.push(algorithm.code()).is_ok()
        && aad.extend_from_slice(rp_id_hash).is_ok()
        && aad.extend_from_slice(credential_id).is_ok();
    if fits {
        Ok(aad)
    } else {
        Err(CredentialError::NotOurs)
    }
}

/// Seals `key` for the credential `credential_id` of `rp_id_hash`.
pub fn seal<R: RngCore + CryptoRng>(
    import_key: &WrapKey,
    rng: &mut R,
    rp_id_hash: &[u8; 32],
    credential_id: &[u8],
    key: &CredentialKey,
) -> Result<SealedKey, CredentialError> {
    let aad = aad(key.algorithm(), rp_id_hash, credential_id)?;
    let mut out = [0u8; SEALED_KEY_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut plaintext = *key.as_bytes();
    let tag = import_key.seal(&nonce, &aad, &mut plaintext);
    out[..NONCE_LEN].copy_from_slice(&nonce);
    out[NONCE_LEN..NONCE_LEN + 32].copy_from_slice(&plaintext);
    plaintext.zeroize();
    out[NONCE_LEN + 32..].copy_from_slice(&tag?);
    Ok(out)
}

/// Opens a sealed key; [`CredentialError::NotOurs`] unless it was sealed by
/// this device secret for exactly this RP, algorithm and ID.
pub fn open(
    import_key: &WrapKey,
    sealed: &SealedKey,
    algorithm: Algorithm,
    rp_id_hash: &[u8; 32],
    credential_id: &[u8],
) -> Result<CredentialKey, CredentialError> {
    let aad = aad(algorithm, rp_id_hash, credential_id)?;
    let mut nonce = [0u8; NONCE_LEN];
    let mut secret = [0u8; 32];
    let mut tag = [0u8; TAG_LEN];
    nonce.copy_from_slice(&sealed[..NONCE_LEN]);
    secret.copy_from_slice(&sealed[NONCE_LEN..NONCE_LEN + 32]);
    tag.copy_from_slice(&sealed[NONCE_LEN + 32..]);
    let opened = import_key.open(&nonce, &aad, &mut secret, &tag);
    let key = opened.map_err(|_| CredentialError::NotOurs).and_then(|()| {
        CredentialKey::from_bytes(algorithm, &secret).map_err(|_| CredentialError::NotOurs)
    });
    secret.zeroize();
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_platform::seeded_rng;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let mut rng = seeded_rng(3);
        let import_key = WrapKey::derive_import(&[1; 32]).unwrap();
        let key = CredentialKey::generate(Algorithm::Es256, &mut rng);
        let rp = [7u8; 32];
        let sealed = seal(&import_key, &mut rng, &rp, b"my-id", &key).unwrap();
        assert!(!sealed.windows(32).any(|w| w == key.as_bytes()));
        let opened = open(&import_key, &sealed, Algorithm::Es256, &rp, b"my-id").unwrap();
        assert_eq!(opened.as_bytes(), key.as_bytes());
        // Another ID, RP, algorithm, device secret, or a flipped bit: not ours.
        assert!(open(&import_key, &sealed, Algorithm::Es256, &rp, b"my-iD").is_err());
        assert!(open(&import_key, &sealed, Algorithm::Es256, &[8; 32], b"my-id").is_err());
        assert!(open(&import_key, &sealed, Algorithm::EdDsa, &rp, b"my-id").is_err());
        let other = WrapKey::derive_import(&[2; 32]).unwrap();
        assert!(open(&other, &sealed, Algorithm::Es256, &rp, b"my-id").is_err());
        for i in 0..SEALED_KEY_LEN {
            let mut bad = sealed;
            bad[i] ^= 1;
            assert!(open(&import_key, &bad, Algorithm::Es256, &rp, b"my-id").is_err());
        }
        // The ID-wrapping key is a different key.
        let wrap_key = WrapKey::derive(&[1; 32]).unwrap();
        assert!(open(&wrap_key, &sealed, Algorithm::Es256, &rp, b"my-id").is_err());
    }
}
