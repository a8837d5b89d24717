//! Per-credential extension secrets, derived instead of stored.
//!
//! hmac-secret's two CredRandom values (with and without UV) and the
//! largeBlobKey are HMAC-SHA-256 outputs under a key derived from the device
//! secret, over a label and the credential ID:
//!
//! ```text
//! extension key = HKDF-SHA-256(ikm = device secret, info = "ferrokey extension secrets v1")
//! secret        = HMAC-SHA-256(extension key, label || 0x00 || credential ID)
//! ```
//!
//! Credential IDs carry a fresh random nonce, so the secrets are independent per
//! credential; they survive power cycles (same device secret and ID) and are
//! destroyed by authenticatorReset (which replaces the device secret).

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const INFO: &[u8] = b"ferrokey extension secrets v1";
const LABEL_CRED_RANDOM_UV: &[u8] = b"hmac-secret CredRandomWithUV";
const LABEL_CRED_RANDOM: &[u8] = b"hmac-secret CredRandomWithoutUV";
const LABEL_LARGE_BLOB_KEY: &[u8] = b"largeBlobKey";
const LABEL_EPOCH: &[u8] = b"record epoch";

/// The key the per-credential secrets come from. Zeroized on drop; no `Debug`.
pub(crate) struct ExtensionSecrets([u8; 32]);

impl Drop for ExtensionSecrets {
    fn drop(&mut self) {
        crate::wipe::wipe("ExtensionSecrets", &mut self.0);
    }
}

impl ExtensionSecrets {
    /// Derives the extension key from the device secret.
    pub(crate) fn derive(device_secret: &[u8; 32]) -> Self {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF's output limit, so expand cannot fail; on the
        // impossible failure the key stays zero (secrets would still be per-ID).
        let _ = Hkdf::<Sha256>::new(None, device_secret).expand(INFO, &mut key);
        ExtensionSecrets(key)
    }

    fn derive_for(&self, label: &[u8], credential_id: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        // HMAC takes keys of any length: this cannot fail.
        if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            mac.update(label);
            mac.update(&[0]);
            mac.update(credential_id);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    /// hmac-secret's CredRandomWithUV (`uv`) or CredRandomWithoutUV.
    pub(crate) fn cred_random(&self, credential_id: &[u8], uv: bool) -> Zeroizing<[u8; 32]> {
        let label = if uv {
            LABEL_CRED_RANDOM_UV
        } else {
            LABEL_CRED_RANDOM
        };
        self.derive_for(label, credential_id)
    }

    /// A 4-byte tag of the device secret, stored in credential records so
    /// that records of an earlier secret are recognised without opening them.
    pub(crate) fn epoch(&self) -> [u8; 4] {
        let full = self.derive_for(LABEL_EPOCH, &[]);
        [full[0], full[1], full[2], full[3]]
    }

    /// The credential's largeBlobKey (wiped when the caller drops it).
    pub(crate) fn large_blob_key(&self, credential_id: &[u8]) -> Zeroizing<[u8; 32]> {
        self.derive_for(LABEL_LARGE_BLOB_KEY, credential_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_distinct_stable_and_device_bound() {
        let s = ExtensionSecrets::derive(&[1; 32]);
        let id_a = [0xAA; 77];
        let id_b = [0xBB; 77];
        let uv = *s.cred_random(&id_a, true);
        let no_uv = *s.cred_random(&id_a, false);
        let lbk = *s.large_blob_key(&id_a);
        assert_ne!(uv, no_uv);
        assert_ne!(uv, lbk);
        assert_ne!(no_uv, lbk);
        assert_ne!(uv, *s.cred_random(&id_b, true));
        assert_eq!(
            uv,
            *ExtensionSecrets::derive(&[1; 32]).cred_random(&id_a, true)
        );
        assert_ne!(
            uv,
            *ExtensionSecrets::derive(&[2; 32]).cred_random(&id_a, true)
        );
        assert_ne!(
            lbk,
            *ExtensionSecrets::derive(&[2; 32]).large_blob_key(&id_a)
        );
    }
}
