//! The std side of the core's instrument API
//! ([`ferrokey::authenticator::instrument`]): private keys to and from PKCS#8
//! (WebDriver's `privateKey` is base64url PKCS#8), and large blobs inflated.

use ferrokey::authenticator::instrument::{LargeBlob, PrivateKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use zeroize::Zeroizing;

/// The largest large blob [`inflate_large_blob`] produces (the key's whole
/// large-blob array is 2048 bytes, compressed).
pub const MAX_LARGE_BLOB: usize = 64 * 1024;

/// Why a credential's material could not be converted.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialDataError {
    /// The bytes are not a PKCS#8 private key of a supported algorithm.
    #[error("privateKey is not a PKCS#8 P-256 (ES256) or Ed25519 private key")]
    UnsupportedKey,
    /// Encoding a private key failed.
    #[error("encoding the private key as PKCS#8 failed")]
    Encoding,
    /// The large blob is not valid DEFLATE data of its stated size.
    #[error("the stored large blob is not valid DEFLATE data of {expected} bytes")]
    LargeBlob {
        /// The size the entry states.
        expected: u64,
    },
}

/// A private key from PKCS#8 DER: a P-256 EC key or an Ed25519 key.
pub fn private_key_from_pkcs8(der: &[u8]) -> Result<PrivateKey, CredentialDataError> {
    if let Ok(key) = p256::SecretKey::from_pkcs8_der(der) {
        return Ok(PrivateKey::Es256(key.to_bytes().into()));
    }
    if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
        return Ok(PrivateKey::Ed25519(key.to_bytes()));
    }
    Err(CredentialDataError::UnsupportedKey)
}

/// A private key as PKCS#8 DER (zeroized when dropped).
pub fn private_key_to_pkcs8(key: &PrivateKey) -> Result<Zeroizing<Vec<u8>>, CredentialDataError> {
    let document = match key {
        PrivateKey::Es256(scalar) => p256::SecretKey::from_bytes(scalar.into())
            .map_err(|_| CredentialDataError::Encoding)?
            .to_pkcs8_der(),
        PrivateKey::Ed25519(seed) => ed25519_dalek::SigningKey::from_bytes(seed).to_pkcs8_der(),
    }
    .map_err(|_| CredentialDataError::Encoding)?;
    Ok(Zeroizing::new(document.as_bytes().to_vec()))
}

/// The large blob itself: `blob`'s DEFLATE data inflated, which must come
/// to exactly its stated original size (at most [`MAX_LARGE_BLOB`]).
pub fn inflate_large_blob(blob: &LargeBlob<'_>) -> Result<Vec<u8>, CredentialDataError> {
    let expected = blob.original_size;
    let error = CredentialDataError::LargeBlob { expected };
    let size = usize::try_from(expected).map_err(|_| error.clone())?;
    if size > MAX_LARGE_BLOB {
        return Err(error);
    }
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(blob.deflated, size)
        .map_err(|_| error.clone())?;
    if out.len() != size {
        return Err(error);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trips_for_both_algorithms() {
        let p256_key = p256::SecretKey::from_slice(&[0x11; 32]).unwrap();
        let der = p256_key.to_pkcs8_der().unwrap();
        let parsed = private_key_from_pkcs8(der.as_bytes()).unwrap();
        assert_eq!(parsed, PrivateKey::Es256([0x11; 32]));
        let again = private_key_to_pkcs8(&parsed).unwrap();
        assert_eq!(
            p256::SecretKey::from_pkcs8_der(&again).unwrap().to_bytes(),
            p256_key.to_bytes()
        );

        let ed = ed25519_dalek::SigningKey::from_bytes(&[0x22; 32]);
        let der = ed.to_pkcs8_der().unwrap();
        let parsed = private_key_from_pkcs8(der.as_bytes()).unwrap();
        assert_eq!(parsed, PrivateKey::Ed25519([0x22; 32]));
        let again = private_key_to_pkcs8(&parsed).unwrap();
        assert_eq!(
            ed25519_dalek::SigningKey::from_pkcs8_der(&again)
                .unwrap()
                .to_bytes(),
            [0x22; 32]
        );
    }

    #[test]
    fn other_keys_and_garbage_are_refused() {
        for bad in [&b""[..], b"not der", &[0x30, 0x03, 0x02, 0x01, 0x00]] {
            assert_eq!(
                private_key_from_pkcs8(bad),
                Err(CredentialDataError::UnsupportedKey)
            );
        }
        // A P-384 key (another curve) is refused, not misread.
        let p384 = hex_p384_pkcs8();
        assert_eq!(
            private_key_from_pkcs8(&p384),
            Err(CredentialDataError::UnsupportedKey)
        );
    }

    /// A P-384 PKCS#8 key (RFC 5915 inside RFC 5208), built by hand.
    fn hex_p384_pkcs8() -> Vec<u8> {
        let mut ec = vec![0x30, 0x36, 0x02, 0x01, 0x01, 0x04, 0x30];
        ec.extend_from_slice(&[0x01; 48]);
        let mut out = vec![0x30, 0x4E, 0x02, 0x01, 0x00, 0x30, 0x10];
        // id-ecPublicKey, secp384r1
        out.extend_from_slice(&[
            0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x05, 0x2B, 0x81, 0x04,
            0x00, 0x22,
        ]);
        out.extend_from_slice(&[0x04, 0x38]);
        out.extend_from_slice(&ec);
        out
    }

    #[test]
    fn large_blobs_inflate_to_their_size() {
        let data = b"a large blob, a large blob, a large blob".to_vec();
        let deflated = miniz_oxide::deflate::compress_to_vec(&data, 9);
        let blob = LargeBlob {
            deflated: &deflated,
            original_size: data.len() as u64,
        };
        assert_eq!(inflate_large_blob(&blob).unwrap(), data);
        // Stored blocks, as the core writes them, inflate too.
        let stored = [&[0x01, 0x03, 0x00, 0xFC, 0xFF][..], b"abc"].concat();
        let blob = LargeBlob {
            deflated: &stored,
            original_size: 3,
        };
        assert_eq!(inflate_large_blob(&blob).unwrap(), b"abc");
        // A wrong size, garbage, or a bomb are errors.
        for (deflated, size) in [
            (&deflated[..], 5u64),
            (&b"\xff\xff\xff"[..], 3),
            (&deflated[..], u64::MAX),
        ] {
            let blob = LargeBlob {
                deflated,
                original_size: size,
            };
            assert!(inflate_large_blob(&blob).is_err());
        }
    }
}
