//! Binary fields of the WebDriver and CDP JSON: base64url (WebDriver), or
//! standard base64 (what Chrome DevTools sends); padding optional. Answers
//! are always unpadded base64url, as WebDriver's Credential Parameters are.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use zeroize::Zeroizing;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(false);
const URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);

/// Decodes base64url or base64 (padded or not). The error names `field`.
pub fn decode(field: &str, text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let engine = if text.contains(['+', '/']) {
        &STANDARD
    } else {
        &URL
    };
    engine
        .decode(text)
        .map(Zeroizing::new)
        .map_err(|_| format!("{field} is not base64url (RFC 4648 §5)"))
}

/// Encodes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alphabets_with_or_without_padding() {
        let bytes = [0xFB, 0xFF, 0x01, 0x02];
        assert_eq!(encode(&bytes), "-_8BAg");
        for text in ["-_8BAg", "-_8BAg==", "+/8BAg", "+/8BAg=="] {
            assert_eq!(decode("x", text).unwrap().as_slice(), bytes, "{text}");
        }
        assert_eq!(decode("x", "").unwrap().len(), 0);
        for bad in ["a", "ab$c", "-/+_", "a b", "AB=C"] {
            let err = decode("credentialId", bad).unwrap_err();
            assert!(err.contains("credentialId"), "{bad}: {err}");
        }
    }
}
