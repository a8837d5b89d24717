//! The platform side of PIN/UV auth protocols 1 and 2 (CTAP 2.1 §6.5), written
//! independently of the key: ECDH with p256, the KDFs (SHA-256; HKDF-SHA-256
//! by hand from HMAC), AES-256-CBC chained by hand over the block cipher, and
//! HMAC-SHA-256. [`ClientPin`] drives authenticatorClientPIN over any
//! [`Ctap2`]; [`Session::hmac_secret_input`] builds hmac-secret salts.

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use ciborium::Value;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};

use crate::cbor::{bytes, get, get_bytes, get_u64, int, text};
use crate::ctap2::{cmd, status, Ctap2};
use crate::ctaphid_client::ClientError;

/// pinUvAuthToken permission bits.
pub mod permission {
    /// makeCredential.
    pub const MC: u8 = 0x01;
    /// getAssertion.
    pub const GA: u8 = 0x02;
    /// credentialManagement.
    pub const CM: u8 = 0x04;
    /// bioEnrollment.
    pub const BE: u8 = 0x08;
    /// largeBlobWrite.
    pub const LBW: u8 = 0x10;
    /// authenticatorConfig.
    pub const ACFG: u8 = 0x20;
}

/// clientPIN subcommands.
pub mod sub {
    /// getPINRetries.
    pub const GET_PIN_RETRIES: u8 = 0x01;
    /// getKeyAgreement.
    pub const GET_KEY_AGREEMENT: u8 = 0x02;
    /// setPIN.
    pub const SET_PIN: u8 = 0x03;
    /// changePIN.
    pub const CHANGE_PIN: u8 = 0x04;
    /// getPinToken.
    pub const GET_PIN_TOKEN: u8 = 0x05;
    /// getPinUvAuthTokenUsingUvWithPermissions.
    pub const GET_TOKEN_USING_UV: u8 = 0x06;
    /// getUVRetries.
    pub const GET_UV_RETRIES: u8 = 0x07;
    /// getPinUvAuthTokenUsingPinWithPermissions.
    pub const GET_TOKEN_USING_PIN: u8 = 0x09;
}

/// HMAC-SHA-256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HKDF-SHA-256 (RFC 5869) for one 32-byte block, written out.
pub fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let prk = hmac_sha256(salt, &[ikm]);
    hmac_sha256(&prk, &[info, &[1u8]])
}

/// AES-256-CBC without padding (`data` is whole blocks).
pub fn aes256_cbc(key: &[u8], iv: &[u8; 16], data: &[u8], encrypt: bool) -> Vec<u8> {
    assert_eq!(data.len() % 16, 0, "AES-CBC input is not whole blocks");
    let cipher = aes::Aes256::new(GenericArray::from_slice(key));
    let mut prev = *iv;
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(16) {
        if encrypt {
            let mut block = GenericArray::clone_from_slice(chunk);
            for (b, p) in block.iter_mut().zip(prev) {
                *b ^= p;
            }
            cipher.encrypt_block(&mut block);
            prev.copy_from_slice(&block);
            out.extend_from_slice(&block);
        } else {
            let mut block = GenericArray::clone_from_slice(chunk);
            cipher.decrypt_block(&mut block);
            out.extend(block.iter().zip(prev).map(|(b, p)| b ^ p));
            prev.copy_from_slice(chunk);
        }
    }
    out
}

/// authenticate(key, message) of `protocol`: HMAC-SHA-256, cut to 16 bytes for protocol 1.
pub fn mac_for(protocol: u8, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let full = hmac_sha256(key, parts);
    if protocol == 1 {
        full[..16].to_vec()
    } else {
        full.to_vec()
    }
}

/// A COSE_Key for a P-256 point with algorithm `alg` (-25 for key agreement).
pub fn cose_key(x: &[u8], y: &[u8], alg: i64) -> Value {
    Value::Map(vec![
        (int(1), int(2)),
        (int(3), int(alg)),
        (int(-1), int(1)),
        (int(-2), bytes(x)),
        (int(-3), bytes(y)),
    ])
}

/// One key agreement: the platform's public key and the shared secret.
pub struct Session {
    /// The PIN/UV auth protocol (1 or 2).
    pub protocol: u8,
    platform_x: Vec<u8>,
    platform_y: Vec<u8>,
    shared: Vec<u8>,
}

impl Session {
    /// Agrees on a shared secret with the authenticator's key agreement key
    /// (its COSE_Key from getKeyAgreement).
    pub fn new(protocol: u8, authenticator_key: &Value) -> Result<Self, String> {
        if get(authenticator_key, 3) != Some(&int(-25)) {
            return Err("key agreement alg is not ECDH-ES+HKDF-256 (-25)".into());
        }
        let x = get_bytes(authenticator_key, -2).ok_or("no x")?;
        let y = get_bytes(authenticator_key, -3).ok_or("no y")?;
        if x.len() != 32 || y.len() != 32 {
            return Err("key agreement coordinates are not 32 bytes".into());
        }
        let point = p256::EncodedPoint::from_affine_coordinates(
            GenericArray::from_slice(x),
            GenericArray::from_slice(y),
            false,
        );
        let theirs = p256::PublicKey::from_sec1_bytes(point.as_bytes())
            .map_err(|e| format!("key agreement key is not a P-256 point: {e}"))?;
        let mine = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let my_point = mine.public_key().to_encoded_point(false);
        let z = p256::ecdh::diffie_hellman(mine.to_nonzero_scalar(), theirs.as_affine());
        let z = z.raw_secret_bytes().to_vec();
        let shared = match protocol {
            1 => Sha256::digest(&z).to_vec(),
            2 => {
                let mut s = hkdf32(&[0u8; 32], &z, b"CTAP2 HMAC key").to_vec();
                s.extend_from_slice(&hkdf32(&[0u8; 32], &z, b"CTAP2 AES key"));
                s
            }
            other => return Err(format!("no PIN/UV auth protocol {other}")),
        };
        Ok(Session {
            protocol,
            platform_x: my_point.x().ok_or("x")?.to_vec(),
            platform_y: my_point.y().ok_or("y")?.to_vec(),
            shared,
        })
    }

    fn aes_key(&self) -> &[u8] {
        if self.protocol == 1 {
            &self.shared
        } else {
            &self.shared[32..]
        }
    }

    /// encrypt(shared secret, plaintext): zero IV for protocol 1, a random IV
    /// prepended for protocol 2.
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        if self.protocol == 1 {
            aes256_cbc(self.aes_key(), &[0; 16], plaintext, true)
        } else {
            let iv: [u8; 16] = rand::random();
            let mut out = iv.to_vec();
            out.extend(aes256_cbc(self.aes_key(), &iv, plaintext, true));
            out
        }
    }

    /// decrypt(shared secret, ciphertext).
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        if ciphertext.len() % 16 != 0 || ciphertext.is_empty() {
            return Err(format!("ciphertext of {} bytes", ciphertext.len()));
        }
        if self.protocol == 1 {
            Ok(aes256_cbc(self.aes_key(), &[0; 16], ciphertext, false))
        } else {
            let iv: [u8; 16] = ciphertext[..16].try_into().map_err(|_| "iv")?;
            Ok(aes256_cbc(self.aes_key(), &iv, &ciphertext[16..], false))
        }
    }

    /// authenticate(shared secret, message).
    pub fn authenticate(&self, parts: &[&[u8]]) -> Vec<u8> {
        mac_for(self.protocol, &self.shared[..32], parts)
    }

    /// pinHashEnc.
    pub fn pin_hash_enc(&self, pin: &str) -> Vec<u8> {
        self.encrypt(&Sha256::digest(pin.as_bytes())[..16])
    }

    /// newPinEnc (the PIN padded to 64 bytes).
    pub fn new_pin_enc(&self, pin: &str) -> Vec<u8> {
        let mut padded = [0u8; 64];
        let n = pin.len().min(64);
        padded[..n].copy_from_slice(&pin.as_bytes()[..n]);
        self.encrypt(&padded)
    }

    /// The platform's key agreement key, as a COSE_Key.
    pub fn platform_key(&self) -> Value {
        cose_key(&self.platform_x, &self.platform_y, -25)
    }

    /// The hmac-secret extension input for one or two 32-byte salts.
    pub fn hmac_secret_input(&self, salts: &[[u8; 32]]) -> Value {
        let plain: Vec<u8> = salts.concat();
        let salt_enc = self.encrypt(&plain);
        let salt_auth = self.authenticate(&[&salt_enc]);
        Value::Map(vec![
            (int(1), self.platform_key()),
            (int(2), bytes(&salt_enc)),
            (int(3), bytes(&salt_auth)),
            (int(4), int(self.protocol.into())),
        ])
    }
}

/// A pinUvAuthToken as the platform holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The protocol it was obtained with.
    pub protocol: u8,
    /// The token.
    pub value: Vec<u8>,
}

impl Token {
    /// pinUvAuthParam over the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        mac_for(self.protocol, &self.value, parts)
    }
}

/// authenticatorClientPIN with one protocol.
#[derive(Clone, Copy, Debug)]
pub struct ClientPin {
    /// 1 or 2.
    pub protocol: u8,
}

impl ClientPin {
    /// The platform side of protocol `protocol`.
    pub fn new(protocol: u8) -> Self {
        ClientPin { protocol }
    }

    fn request(&self, sub: u8, more: Vec<(i64, Value)>) -> Value {
        let mut m = vec![
            (int(1), int(self.protocol.into())),
            (int(2), int(sub.into())),
        ];
        m.extend(more.into_iter().map(|(k, v)| (int(k), v)));
        Value::Map(m)
    }

    /// One clientPIN call: the status and the body.
    pub fn call<C: Ctap2 + ?Sized>(
        &self,
        ctap: &mut C,
        sub: u8,
        more: Vec<(i64, Value)>,
    ) -> Result<(u8, Option<Value>), ClientError> {
        let reply = ctap.ctap2(cmd::CLIENT_PIN, Some(&self.request(sub, more)))?;
        Ok((reply.status, reply.value))
    }

    /// getKeyAgreement and a new [`Session`].
    pub fn session<C: Ctap2 + ?Sized>(&self, ctap: &mut C) -> Result<Session, String> {
        let (st, value) = self
            .call(ctap, sub::GET_KEY_AGREEMENT, vec![])
            .map_err(|e| e.to_string())?;
        if st != status::OK {
            return Err(format!("getKeyAgreement: status {st:#04x}"));
        }
        let value = value.ok_or("getKeyAgreement: empty response")?;
        Session::new(self.protocol, get(&value, 1).ok_or("no keyAgreement")?)
    }

    /// getPINRetries: (pinRetries, powerCycleState) or the status.
    pub fn retries<C: Ctap2 + ?Sized>(&self, ctap: &mut C) -> Result<(u8, Option<bool>), u8> {
        match self.call(ctap, sub::GET_PIN_RETRIES, vec![]) {
            Ok((status::OK, Some(v))) => {
                let retries = get_u64(&v, 3).ok_or(status::OTHER)?;
                Ok((
                    u8::try_from(retries).map_err(|_| status::OTHER)?,
                    get(&v, 4).and_then(Value::as_bool),
                ))
            }
            Ok((st, _)) => Err(st),
            Err(_) => Err(status::OTHER),
        }
    }

    /// getUVRetries, or the status.
    pub fn uv_retries<C: Ctap2 + ?Sized>(&self, ctap: &mut C) -> Result<u8, u8> {
        match self.call(ctap, sub::GET_UV_RETRIES, vec![]) {
            Ok((status::OK, Some(v))) => get_u64(&v, 5)
                .and_then(|r| u8::try_from(r).ok())
                .ok_or(status::OTHER),
            Ok((st, _)) => Err(st),
            Err(_) => Err(status::OTHER),
        }
    }

    /// setPIN; the status.
    pub fn set_pin<C: Ctap2 + ?Sized>(&self, ctap: &mut C, pin: &str) -> Result<u8, String> {
        let s = self.session(ctap)?;
        let enc = s.new_pin_enc(pin);
        let auth = s.authenticate(&[&enc]);
        let more = vec![(3, s.platform_key()), (4, bytes(&auth)), (5, bytes(&enc))];
        Ok(self
            .call(ctap, sub::SET_PIN, more)
            .map_err(|e| e.to_string())?
            .0)
    }

    /// changePIN; the status.
    pub fn change_pin<C: Ctap2 + ?Sized>(
        &self,
        ctap: &mut C,
        current: &str,
        new: &str,
    ) -> Result<u8, String> {
        let s = self.session(ctap)?;
        let new_enc = s.new_pin_enc(new);
        let hash_enc = s.pin_hash_enc(current);
        let auth = s.authenticate(&[&new_enc, &hash_enc]);
        let more = vec![
            (3, s.platform_key()),
            (4, bytes(&auth)),
            (5, bytes(&new_enc)),
            (6, bytes(&hash_enc)),
        ];
        Ok(self
            .call(ctap, sub::CHANGE_PIN, more)
            .map_err(|e| e.to_string())?
            .0)
    }

    /// getPinToken (`permissions` None) or getPinUvAuthTokenUsingPinWithPermissions.
    pub fn token<C: Ctap2 + ?Sized>(
        &self,
        ctap: &mut C,
        pin: &str,
        permissions: Option<u8>,
        rp_id: Option<&str>,
    ) -> Result<Token, u8> {
        let s = self.session(ctap).map_err(|_| status::OTHER)?;
        let mut more = vec![(3, s.platform_key()), (6, bytes(&s.pin_hash_enc(pin)))];
        if let Some(p) = permissions {
            more.push((9, int(p.into())));
        }
        if let Some(rp) = rp_id {
            more.push((10, text(rp)));
        }
        let sub = if permissions.is_some() {
            sub::GET_TOKEN_USING_PIN
        } else {
            sub::GET_PIN_TOKEN
        };
        self.issued(ctap, &s, sub, more)
    }

    /// getPinUvAuthTokenUsingUvWithPermissions.
    pub fn uv_token<C: Ctap2 + ?Sized>(
        &self,
        ctap: &mut C,
        permissions: u8,
        rp_id: Option<&str>,
    ) -> Result<Token, u8> {
        let s = self.session(ctap).map_err(|_| status::OTHER)?;
        let mut more = vec![(3, s.platform_key()), (9, int(permissions.into()))];
        if let Some(rp) = rp_id {
            more.push((10, text(rp)));
        }
        self.issued(ctap, &s, sub::GET_TOKEN_USING_UV, more)
    }

    fn issued<C: Ctap2 + ?Sized>(
        &self,
        ctap: &mut C,
        s: &Session,
        sub: u8,
        more: Vec<(i64, Value)>,
    ) -> Result<Token, u8> {
        match self.call(ctap, sub, more) {
            Ok((status::OK, Some(v))) => {
                let enc = get_bytes(&v, 2).ok_or(status::OTHER)?;
                let value = s.decrypt(enc).map_err(|_| status::OTHER)?;
                if value.len() != 32 {
                    return Err(status::OTHER);
                }
                Ok(Token {
                    protocol: self.protocol,
                    value,
                })
            }
            Ok((st, _)) => Err(st),
            Err(_) => Err(status::OTHER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_case_1_first_block() {
        // RFC 5869 A.1 (OKM's first 32 bytes).
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf32(&salt, &ikm, &info);
        assert_eq!(
            crate::cbor::hex(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn aes_cbc_matches_nist_sp800_38a_f25() {
        // NIST SP 800-38A F.2.5 CBC-AES256.Encrypt, first block.
        let key =
            crate::cbor::unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
                .unwrap();
        let iv: [u8; 16] = crate::cbor::unhex("000102030405060708090a0b0c0d0e0f")
            .unwrap()
            .try_into()
            .unwrap();
        let pt = crate::cbor::unhex("6bc1bee22e409f96e93d7e117393172a").unwrap();
        let ct = aes256_cbc(&key, &iv, &pt, true);
        assert_eq!(crate::cbor::hex(&ct), "f58c4c04d6e5f1ba779eabfb5f7bfbd6");
        assert_eq!(aes256_cbc(&key, &iv, &ct, false), pt);
    }

    #[test]
    fn both_protocols_round_trip_with_a_peer() {
        let peer = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let point = peer.public_key().to_encoded_point(false);
        let key = cose_key(point.x().unwrap(), point.y().unwrap(), -25);
        for protocol in [1, 2] {
            let s = Session::new(protocol, &key).unwrap();
            let ct = s.encrypt(&[5; 32]);
            assert_eq!(ct.len(), if protocol == 1 { 32 } else { 48 });
            assert_eq!(s.decrypt(&ct).unwrap(), [5; 32]);
            assert_eq!(
                s.authenticate(&[b"x"]).len(),
                if protocol == 1 { 16 } else { 32 }
            );
        }
        assert!(Session::new(3, &key).is_err());
        assert!(Session::new(1, &cose_key(&[0; 32], &[0; 32], -25)).is_err());
    }
}
