//! CTAP1/U2F (FIDO U2F raw messages v1.2) from the host's side: APDUs, and
//! parsers that verify the registration and authentication signatures.

use p256::ecdsa::signature::Verifier;

use crate::ctaphid_client::{CtapHidClient, ReportTransport};

/// Status words.
pub mod sw {
    /// SW_NO_ERROR.
    pub const NO_ERROR: u16 = 0x9000;
    /// SW_CONDITIONS_NOT_SATISFIED (test of user presence required).
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    /// SW_WRONG_DATA (bad key handle).
    pub const WRONG_DATA: u16 = 0x6A80;
    /// SW_WRONG_LENGTH.
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// SW_INS_NOT_SUPPORTED.
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
}

/// AUTHENTICATE control bytes.
pub mod control {
    /// Check only: is this key handle ours?
    pub const CHECK_ONLY: u8 = 0x07;
    /// Enforce user presence and sign.
    pub const ENFORCE_UP: u8 = 0x03;
    /// Sign without presence.
    pub const DONT_ENFORCE_UP: u8 = 0x08;
}

/// An extended-length APDU.
pub fn apdu(ins: u8, p1: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00, ins, p1, 0x00, 0x00];
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&[0x00, 0x00]);
    out
}

/// U2F_REGISTER.
pub fn register_apdu(challenge: &[u8; 32], application: &[u8; 32]) -> Vec<u8> {
    apdu(0x01, 0x00, &[&challenge[..], &application[..]].concat())
}

/// U2F_AUTHENTICATE.
pub fn authenticate_apdu(
    control: u8,
    challenge: &[u8; 32],
    application: &[u8; 32],
    key_handle: &[u8],
) -> Vec<u8> {
    let mut data = [&challenge[..], &application[..]].concat();
    data.push(key_handle.len() as u8);
    data.extend_from_slice(key_handle);
    apdu(0x02, control, &data)
}

/// Splits a response APDU into data and status word.
pub fn split(response: &[u8]) -> Result<(&[u8], u16), String> {
    if response.len() < 2 {
        return Err(format!("response APDU of {} bytes", response.len()));
    }
    let (data, sw) = response.split_at(response.len() - 2);
    Ok((data, u16::from_be_bytes([sw[0], sw[1]])))
}

/// A checked registration response.
#[derive(Clone, Debug)]
pub struct U2fRegistration {
    /// The user public key (uncompressed SEC1).
    pub public_key: p256::ecdsa::VerifyingKey,
    /// The key handle.
    pub key_handle: Vec<u8>,
    /// The attestation certificate (DER).
    pub certificate: Vec<u8>,
}

fn der_len(data: &[u8]) -> Result<usize, String> {
    match (data.first(), data.get(1)) {
        (Some(0x30), Some(&l)) if l < 0x80 => Ok(2 + usize::from(l)),
        (Some(0x30), Some(0x81)) => Ok(3 + usize::from(*data.get(2).ok_or("len")?)),
        (Some(0x30), Some(0x82)) => Ok(4
            + (usize::from(*data.get(2).ok_or("len")?) << 8
                | usize::from(*data.get(3).ok_or("len")?))),
        _ => Err("attestation certificate is not a DER SEQUENCE".into()),
    }
}

impl U2fRegistration {
    /// Parses a REGISTER response's data and verifies its signature with the
    /// attestation certificate's key, which the caller extracts (`cert_key`
    /// gets the DER certificate) so that the certificate parser stays the caller's.
    pub fn parse(
        data: &[u8],
        challenge: &[u8; 32],
        application: &[u8; 32],
        cert_key: impl Fn(&[u8]) -> Result<p256::ecdsa::VerifyingKey, String>,
    ) -> Result<Self, String> {
        if data.first() != Some(&0x05) || data.len() < 67 {
            return Err("not a U2F registration (reserved byte 0x05)".into());
        }
        let public = &data[1..66];
        let public_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(public)
            .map_err(|e| format!("user public key: {e}"))?;
        let kh_len = usize::from(data[66]);
        let key_handle = data
            .get(67..67 + kh_len)
            .ok_or("truncated key handle")?
            .to_vec();
        let rest = &data[67 + kh_len..];
        let cert_len = der_len(rest)?;
        let certificate = rest
            .get(..cert_len)
            .ok_or("truncated certificate")?
            .to_vec();
        let signature = p256::ecdsa::Signature::from_der(&rest[cert_len..])
            .map_err(|e| format!("registration signature is not DER: {e}"))?;
        let signed = [&[0u8][..], application, challenge, &key_handle, public].concat();
        cert_key(&certificate)?
            .verify(&signed, &signature)
            .map_err(|_| "registration signature does not verify".to_string())?;
        Ok(U2fRegistration {
            public_key,
            key_handle,
            certificate,
        })
    }
}

/// U2F_REGISTER over CTAPHID_MSG with a fresh random challenge and
/// application: the status word must be SW_NO_ERROR, then the response goes
/// through [`U2fRegistration::parse`] (signature verified under the key that
/// `cert_key` takes from the attestation certificate).
pub fn register<T: ReportTransport>(
    client: &mut CtapHidClient<T>,
    cert_key: impl Fn(&[u8]) -> Result<p256::ecdsa::VerifyingKey, String>,
) -> Result<U2fRegistration, String> {
    let challenge: [u8; 32] = rand::random();
    let application: [u8; 32] = rand::random();
    let response = client
        .msg(&register_apdu(&challenge, &application))
        .map_err(|e| format!("U2F_REGISTER: {e}"))?;
    let (data, status) = split(&response)?;
    if status != sw::NO_ERROR {
        return Err(format!("U2F_REGISTER: status word {status:#06x}"));
    }
    U2fRegistration::parse(data, &challenge, &application, cert_key)
}

/// Parses an AUTHENTICATE response's data and verifies it with `key`:
/// returns (user presence byte, counter).
pub fn check_authentication(
    data: &[u8],
    challenge: &[u8; 32],
    application: &[u8; 32],
    key: &p256::ecdsa::VerifyingKey,
) -> Result<(u8, u32), String> {
    if data.len() < 5 + 8 {
        return Err(format!("authentication response of {} bytes", data.len()));
    }
    let presence = data[0];
    let counter = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
    let signature = p256::ecdsa::Signature::from_der(&data[5..])
        .map_err(|e| format!("authentication signature is not DER: {e}"))?;
    let signed = [&application[..], &data[..5], &challenge[..]].concat();
    key.verify(&signed, &signature)
        .map_err(|_| "authentication signature does not verify".to_string())?;
    Ok((presence, counter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apdus_are_extended_length() {
        let a = register_apdu(&[1; 32], &[2; 32]);
        assert_eq!(&a[..7], &[0, 1, 0, 0, 0, 0, 64]);
        assert_eq!(a.len(), 7 + 64 + 2);
        let b = authenticate_apdu(control::CHECK_ONLY, &[1; 32], &[2; 32], &[9; 77]);
        assert_eq!(&b[..7], &[0, 2, 7, 0, 0, 0, 64 + 1 + 77]);
        assert_eq!(split(&[1, 0x90, 0]).unwrap(), (&[1u8][..], sw::NO_ERROR));
        assert!(split(&[0x90]).is_err());
    }

    /// A REGISTER response made here: user key, a 3-byte "certificate" (a DER
    /// SEQUENCE), and the attestation signature of `attestation`.
    fn registration_response(attestation: &p256::ecdsa::SigningKey) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        let user = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
        let public = user.verifying_key().to_encoded_point(false);
        let key_handle = [0xAA; 40];
        let signed = [
            &[0u8][..],
            &[2; 32],
            &[1; 32],
            &key_handle,
            public.as_bytes(),
        ]
        .concat();
        let sig: p256::ecdsa::Signature = attestation.sign(&signed);
        let mut data = vec![0x05];
        data.extend_from_slice(public.as_bytes());
        data.push(key_handle.len() as u8);
        data.extend_from_slice(&key_handle);
        data.extend_from_slice(&[0x30, 0x01, 0x00]);
        data.extend_from_slice(sig.to_der().as_bytes());
        data
    }

    #[test]
    fn registrations_are_split_and_their_signature_verified() {
        let attestation = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
        let key = *attestation.verifying_key();
        let data = registration_response(&attestation);
        let reg = U2fRegistration::parse(&data, &[1; 32], &[2; 32], |cert| {
            assert_eq!(cert, [0x30, 0x01, 0x00]);
            Ok(key)
        })
        .unwrap();
        assert_eq!(reg.key_handle, [0xAA; 40]);
        assert_eq!(reg.certificate, [0x30, 0x01, 0x00]);
        // Another challenge, another attestation key, a trailing byte: refused.
        assert!(U2fRegistration::parse(&data, &[9; 32], &[2; 32], |_| Ok(key)).is_err());
        let other = *p256::ecdsa::SigningKey::from_slice(&[6; 32])
            .unwrap()
            .verifying_key();
        assert!(U2fRegistration::parse(&data, &[1; 32], &[2; 32], |_| Ok(other)).is_err());
        let mut long = data.clone();
        long.push(0);
        assert!(U2fRegistration::parse(&long, &[1; 32], &[2; 32], |_| Ok(key)).is_err());
    }
}
