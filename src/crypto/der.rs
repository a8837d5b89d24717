//! Minimal DER writing: ECDSA signatures and a tiny self-signed certificate.
//!
//! Only what the key needs to emit; nothing here parses DER.

use heapless::Vec;

use super::es256::{DerSignature, PublicKey, SecretKey};
use super::CryptoError;

/// The largest certificate [`self_signed_certificate`] produces.
pub const MAX_SELF_SIGNED_CERT_LEN: usize = 320;

/// A DER-encoded certificate produced by [`self_signed_certificate`].
pub type SelfSignedCertificate = Vec<u8, MAX_SELF_SIGNED_CERT_LEN>;

fn push<const N: usize>(out: &mut Vec<u8, N>, bytes: &[u8]) -> Result<(), CryptoError> {
    out.extend_from_slice(bytes)
        .map_err(|_| CryptoError::BufferTooSmall)
}

/// Appends a DER tag-length-value whose content is the concatenation of `parts`.
fn push_tlv<const N: usize>(
    out: &mut Vec<u8, N>,
    tag: u8,
    parts: &[&[u8]],
) -> Result<(), CryptoError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    push(out, &[tag])?;
    match len {
        0..=0x7F => push(out, &[len as u8])?,
        0x80..=0xFF => push(out, &[0x81, len as u8])?,
        0x100..=0xFFFF => push(out, &[0x82, (len >> 8) as u8, len as u8])?,
        _ => return Err(CryptoError::BufferTooSmall),
    }
    for part in parts {
        push(out, part)?;
    }
    Ok(())
}

/// The content octets of a DER INTEGER holding the unsigned big-endian `value`.
fn unsigned_integer_content(value: &[u8; 32]) -> Vec<u8, 33> {
    let start = value.iter().position(|&b| b != 0).unwrap_or(31);
    let mut out = Vec::new();
    let digits = value.get(start..).unwrap_or(&[0]);
    if digits.first().is_some_and(|&b| b & 0x80 != 0) {
        out.push(0).ok();
    }
    out.extend_from_slice(digits).ok();
    out
}

/// DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
pub fn ecdsa_signature(r: &[u8; 32], s: &[u8; 32]) -> Result<DerSignature, CryptoError> {
    let mut ints: Vec<u8, 72> = Vec::new();
    push_tlv(&mut ints, 0x02, &[&unsigned_integer_content(r)])?;
    push_tlv(&mut ints, 0x02, &[&unsigned_integer_content(s)])?;
    let mut out = DerSignature::new();
    push_tlv(&mut out, 0x30, &[&ints])?;
    Ok(out)
}

const OID_ECDSA_WITH_SHA256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_PRIME256V1: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
const SELF_CN: &[u8] = b"ferrokey U2F self attestation";

/// A minimal X.509 v1 certificate for `key`'s public key, signed by `key`
/// itself (ecdsa-with-SHA256), with a fixed name and a validity of 2020–2049.
///
/// U2F registration responses must carry a certificate (hosts find the
/// signature after it by its DER length), so without a configured batch
/// attestation the key answers with this self-signed one ("self attestation").
pub fn self_signed_certificate(key: &SecretKey) -> Result<SelfSignedCertificate, CryptoError> {
    let public: PublicKey = key.public_key()?;

    let mut algorithm: Vec<u8, 16> = Vec::new();
    push_tlv(&mut algorithm, 0x30, &[OID_ECDSA_WITH_SHA256])?;

    let mut atv: Vec<u8, 48> = Vec::new();
    let mut cn: Vec<u8, 40> = Vec::new();
    push_tlv(&mut cn, 0x0C, &[SELF_CN])?;
    push_tlv(&mut atv, 0x30, &[OID_COMMON_NAME, &cn])?;
    let mut rdn: Vec<u8, 52> = Vec::new();
    push_tlv(&mut rdn, 0x31, &[&atv])?;
    let mut name: Vec<u8, 56> = Vec::new();
    push_tlv(&mut name, 0x30, &[&rdn])?;

    let mut times: Vec<u8, 32> = Vec::new();
    push_tlv(&mut times, 0x17, &[b"200101000000Z"])?;
    push_tlv(&mut times, 0x17, &[b"491231235959Z"])?;
    let mut validity: Vec<u8, 34> = Vec::new();
    push_tlv(&mut validity, 0x30, &[&times])?;

    let mut spki_alg: Vec<u8, 24> = Vec::new();
    push_tlv(&mut spki_alg, 0x30, &[OID_EC_PUBLIC_KEY, OID_PRIME256V1])?;
    let mut bits: Vec<u8, 70> = Vec::new();
    push_tlv(&mut bits, 0x03, &[&[0x00], &public.to_uncompressed()])?;
    let mut spki: Vec<u8, 96> = Vec::new();
    push_tlv(&mut spki, 0x30, &[&spki_alg, &bits])?;

    let mut tbs: Vec<u8, 240> = Vec::new();
    push_tlv(
        &mut tbs,
        0x30,
        &[
            &[0x02, 0x01, 0x01],
            &algorithm,
            &name,
            &validity,
            &name,
            &spki,
        ],
    )?;

    let signature = key.sign(&[&tbs])?;
    let mut sig_bits: Vec<u8, 76> = Vec::new();
    push_tlv(&mut sig_bits, 0x03, &[&[0x00], &signature])?;

    let mut cert = SelfSignedCertificate::new();
    push_tlv(&mut cert, 0x30, &[&tbs, &algorithm, &sig_bits])?;
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    /// Splits one DER TLV off the front: (tag, content, rest).
    fn tlv(data: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = data[0];
        let (len, hdr) = match data[1] {
            l if l < 0x80 => (l as usize, 2),
            0x81 => (data[2] as usize, 3),
            0x82 => (((data[2] as usize) << 8) | data[3] as usize, 4),
            _ => panic!("long length"),
        };
        (tag, &data[hdr..hdr + len], &data[hdr + len..])
    }

    #[test]
    fn integer_encoding() {
        let mut v = [0u8; 32];
        v[31] = 0x7F;
        assert_eq!(&unsigned_integer_content(&v)[..], &[0x7F]);
        v[31] = 0x80;
        assert_eq!(&unsigned_integer_content(&v)[..], &[0x00, 0x80]);
        assert_eq!(&unsigned_integer_content(&[0; 32])[..], &[0x00]);
        let v = [0xFF; 32];
        let c = unsigned_integer_content(&v);
        assert_eq!(c.len(), 33);
        assert_eq!(c[0], 0);
    }

    #[test]
    fn self_signed_certificate_is_well_formed_and_verifies() {
        let key = SecretKey::from_bytes(&[0x11; 32]).unwrap();
        let cert = self_signed_certificate(&key).unwrap();
        let (tag, content, rest) = tlv(&cert);
        assert_eq!(tag, 0x30);
        assert!(rest.is_empty());
        // TBSCertificate, including its header, is what is signed.
        let (tbs_tag, tbs_content, after_tbs) = tlv(content);
        assert_eq!(tbs_tag, 0x30);
        let tbs_len = content.len() - after_tbs.len();
        let tbs = &content[..tbs_len];
        let (alg_tag, alg, after_alg) = tlv(after_tbs);
        assert_eq!(alg_tag, 0x30);
        assert_eq!(alg, OID_ECDSA_WITH_SHA256);
        let (bits_tag, bits, end) = tlv(after_alg);
        assert_eq!(bits_tag, 0x03);
        assert!(end.is_empty());
        assert_eq!(bits[0], 0);
        // The SPKI carries the key's public key.
        let public = key.public_key().unwrap().to_uncompressed();
        assert!(tbs_content.windows(65).any(|w| w == public));
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&bits[1..]).unwrap();
        vk.verify(tbs, &sig).unwrap();
    }
}
