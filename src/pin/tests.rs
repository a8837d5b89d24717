//! End-to-end tests of authenticatorClientPIN and token verification.
//!
//! The test plays the platform: it builds CBOR requests with ciborium, decodes
//! them with ctap-types exactly as the dispatcher does, and does its own ECDH,
//! KDFs (SHA-256 / a hand-written HKDF), AES-256-CBC (hand-chained over the raw
//! block cipher) and HMAC, without calling the module's crypto. The platform
//! side ([`Session`], [`mac_for`], [`cose_key`]) is shared with the CTAP2
//! dispatcher tests.

use std::vec;
use std::vec::Vec;

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use ciborium::value::Value;
use ctap_types::ctap2::client_pin::{Request, Response};
use ctap_types::ctap2::Error;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::state::{MAX_MIN_PIN_LENGTH_RP_IDS, MAX_RP_ID_LENGTH};
use super::token::{INITIAL_USAGE_TIME_LIMIT_MS, MAX_USAGE_TIME_PERIOD_MS};
use super::{permission, Features, PinKdfCost, PinUv, RpCheck};
use crate::platform::{RecordKey, StorageError};
use crate::test_platform::{seeded_rng, ChaCha20Rng, MemoryStorage, ScriptedPresence};

const PROTOCOLS: [u8; 2] = [1, 2];
const CDH: [u8; 32] = [0x5A; 32];
const PIN: &[u8] = b"1234";

// ---------------------------------------------------------------------------
// The platform side: independent crypto.

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HKDF-SHA-256 (RFC 5869) for a 32-byte output, written out by hand.
pub(crate) fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let prk = hmac_sha256(salt, &[ikm]);
    hmac_sha256(&prk, &[info, &[1u8]])
}

pub(crate) fn aes_cbc_encrypt(key: &[u8], iv: &[u8; 16], pt: &[u8]) -> Vec<u8> {
    assert_eq!(pt.len() % 16, 0);
    let cipher = aes::Aes256::new(GenericArray::from_slice(key));
    let mut prev = *iv;
    let mut out = Vec::new();
    for chunk in pt.chunks(16) {
        let mut block = [0u8; 16];
        for i in 0..16 {
            block[i] = chunk[i] ^ prev[i];
        }
        let mut b = GenericArray::from(block);
        cipher.encrypt_block(&mut b);
        prev.copy_from_slice(&b);
        out.extend_from_slice(&b);
    }
    out
}

pub(crate) fn aes_cbc_decrypt(key: &[u8], iv: &[u8; 16], ct: &[u8]) -> Vec<u8> {
    assert_eq!(ct.len() % 16, 0);
    let cipher = aes::Aes256::new(GenericArray::from_slice(key));
    let mut prev = *iv;
    let mut out = Vec::new();
    for chunk in ct.chunks(16) {
        let mut b = GenericArray::clone_from_slice(chunk);
        cipher.decrypt_block(&mut b);
        for i in 0..16 {
            out.push(b[i] ^ prev[i]);
        }
        prev.copy_from_slice(chunk);
    }
    out
}

/// One platform key agreement: the platform's public key and the shared secret.
pub(crate) struct Session {
    pub(crate) protocol: u8,
    platform_x: Vec<u8>,
    platform_y: Vec<u8>,
    shared: Vec<u8>,
}

impl Session {
    pub(crate) fn new(protocol: u8, auth_x: &[u8], auth_y: &[u8], rng: &mut ChaCha20Rng) -> Self {
        let auth_point = p256::EncodedPoint::from_affine_coordinates(
            GenericArray::from_slice(auth_x),
            GenericArray::from_slice(auth_y),
            false,
        );
        let auth_pk = p256::PublicKey::from_sec1_bytes(auth_point.as_bytes()).unwrap();
        let mine = p256::SecretKey::random(rng);
        let my_point =
            p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&mine.public_key(), false);
        let z = p256::ecdh::diffie_hellman(mine.to_nonzero_scalar(), auth_pk.as_affine());
        let z = z.raw_secret_bytes().to_vec();
        let shared = match protocol {
            1 => Sha256::digest(&z).to_vec(),
            _ => {
                let mut s = hkdf32(&[0u8; 32], &z, b"CTAP2 HMAC key").to_vec();
                s.extend_from_slice(&hkdf32(&[0u8; 32], &z, b"CTAP2 AES key"));
                s
            }
        };
        Session {
            protocol,
            platform_x: my_point.x().unwrap().to_vec(),
            platform_y: my_point.y().unwrap().to_vec(),
            shared,
        }
    }

    fn aes_key(&self) -> &[u8] {
        if self.protocol == 1 {
            &self.shared
        } else {
            &self.shared[32..]
        }
    }

    pub(crate) fn encrypt(&self, pt: &[u8]) -> Vec<u8> {
        if self.protocol == 1 {
            aes_cbc_encrypt(self.aes_key(), &[0; 16], pt)
        } else {
            let iv = [0x3Cu8; 16];
            let mut out = iv.to_vec();
            out.extend(aes_cbc_encrypt(self.aes_key(), &iv, pt));
            out
        }
    }

    pub(crate) fn decrypt(&self, ct: &[u8]) -> Vec<u8> {
        if self.protocol == 1 {
            aes_cbc_decrypt(self.aes_key(), &[0; 16], ct)
        } else {
            let iv: [u8; 16] = ct[..16].try_into().unwrap();
            aes_cbc_decrypt(self.aes_key(), &iv, &ct[16..])
        }
    }

    pub(crate) fn authenticate(&self, parts: &[&[u8]]) -> Vec<u8> {
        mac_for(self.protocol, &self.shared[..32], parts)
    }

    pub(crate) fn pin_hash_enc(&self, pin: &[u8]) -> Vec<u8> {
        self.encrypt(&Sha256::digest(pin)[..16])
    }

    pub(crate) fn new_pin_enc(&self, pin: &[u8]) -> Vec<u8> {
        let mut padded = [0u8; 64];
        padded[..pin.len()].copy_from_slice(pin);
        self.encrypt(&padded)
    }

    pub(crate) fn key(&self) -> (Vec<u8>, Vec<u8>) {
        (self.platform_x.clone(), self.platform_y.clone())
    }
}

/// The pinUvAuthParam the platform computes with `key`.
pub(crate) fn mac_for(protocol: u8, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let full = hmac_sha256(key, parts);
    if protocol == 1 {
        full[..16].to_vec()
    } else {
        full.to_vec()
    }
}

// ---------------------------------------------------------------------------
// CBOR requests, encoded with ciborium and decoded with ctap-types.

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

pub(crate) fn cose_key(x: &[u8], y: &[u8], alg: i64) -> Value {
    Value::Map(vec![
        (int(1), int(2)),
        (int(3), int(alg)),
        (int(-1), int(1)),
        (int(-2), Value::Bytes(x.to_vec())),
        (int(-3), Value::Bytes(y.to_vec())),
    ])
}

#[derive(Default, Clone)]
struct Req {
    protocol: Option<u8>,
    sub: u8,
    key: Option<(Vec<u8>, Vec<u8>)>,
    key_alg: Option<i64>,
    pin_auth: Option<Vec<u8>>,
    new_pin_enc: Option<Vec<u8>>,
    pin_hash_enc: Option<Vec<u8>>,
    permissions: Option<u8>,
    rp_id: Option<&'static str>,
}

impl Req {
    fn sub(sub: u8, protocol: u8) -> Self {
        Req {
            protocol: Some(protocol),
            sub,
            ..Req::default()
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut map = Vec::new();
        if let Some(p) = self.protocol {
            map.push((int(1), int(p.into())));
        }
        map.push((int(2), int(self.sub.into())));
        if let Some((x, y)) = &self.key {
            map.push((int(3), cose_key(x, y, self.key_alg.unwrap_or(-25))));
        }
        if let Some(v) = &self.pin_auth {
            map.push((int(4), Value::Bytes(v.clone())));
        }
        if let Some(v) = &self.new_pin_enc {
            map.push((int(5), Value::Bytes(v.clone())));
        }
        if let Some(v) = &self.pin_hash_enc {
            map.push((int(6), Value::Bytes(v.clone())));
        }
        if let Some(v) = self.permissions {
            map.push((int(9), int(v.into())));
        }
        if let Some(v) = self.rp_id {
            map.push((int(10), Value::Text(v.into())));
        }
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Map(map), &mut out).unwrap();
        out
    }
}

// ---------------------------------------------------------------------------
// The rig: a PinUv on a shared in-memory storage, with a clock.

struct Rig {
    pin: PinUv,
    features: Features,
    storage: MemoryStorage,
    rng: ChaCha20Rng,
    now: u64,
}

impl Rig {
    fn new() -> Self {
        Self::with_features(Features::default())
    }

    fn with_features(features: Features) -> Self {
        let mut storage = MemoryStorage::new();
        let mut rng = seeded_rng(0xF1D0);
        let pin = PinUv::power_up(features, PinKdfCost::TEST, &mut storage, &mut rng).unwrap();
        Rig {
            pin,
            features,
            storage,
            rng,
            now: 1_000,
        }
    }

    /// A simulated power cycle: a new instance on the same storage.
    fn power_cycle(&mut self) {
        self.pin = PinUv::power_up(
            self.features,
            PinKdfCost::TEST,
            &mut self.storage,
            &mut self.rng,
        )
        .unwrap();
    }

    fn call(&mut self, req: &Req) -> Result<Response, Error> {
        let bytes = req.encode();
        let request: Request<'_> =
            cbor_smol::cbor_deserialize(&bytes).map_err(|_| Error::InvalidCbor)?;
        self.pin.client_pin(
            &request,
            &mut self.storage,
            &mut self.rng,
            &mut ScriptedPresence::default(),
            self.now,
        )
    }

    fn session(&mut self, protocol: u8) -> Session {
        let response = self.call(&Req::sub(2, protocol)).unwrap();
        let key = response.key_agreement.unwrap();
        Session::new(protocol, &key.x, &key.y, &mut self.rng)
    }

    fn retries(&mut self) -> (u8, bool) {
        let r = self.call(&Req::sub(1, 1)).unwrap();
        (r.retries.unwrap(), r.power_cycle_state.unwrap())
    }

    fn set_pin_req(&mut self, protocol: u8, pin: &[u8]) -> Req {
        let s = self.session(protocol);
        let enc = s.new_pin_enc(pin);
        Req {
            key: Some(s.key()),
            pin_auth: Some(s.authenticate(&[&enc])),
            new_pin_enc: Some(enc),
            ..Req::sub(3, protocol)
        }
    }

    fn set_pin(&mut self, protocol: u8, pin: &[u8]) -> Result<(), Error> {
        let req = self.set_pin_req(protocol, pin);
        self.call(&req).map(|_| ())
    }

    fn change_pin(&mut self, protocol: u8, current: &[u8], new: &[u8]) -> Result<(), Error> {
        let s = self.session(protocol);
        let new_enc = s.new_pin_enc(new);
        let hash_enc = s.pin_hash_enc(current);
        let req = Req {
            key: Some(s.key()),
            pin_auth: Some(s.authenticate(&[&new_enc, &hash_enc])),
            new_pin_enc: Some(new_enc),
            pin_hash_enc: Some(hash_enc),
            ..Req::sub(4, protocol)
        };
        self.call(&req).map(|_| ())
    }

    /// getPinToken; returns the decrypted token.
    fn get_pin_token(&mut self, protocol: u8, pin: &[u8]) -> Result<Vec<u8>, Error> {
        let s = self.session(protocol);
        let req = Req {
            key: Some(s.key()),
            pin_hash_enc: Some(s.pin_hash_enc(pin)),
            ..Req::sub(5, protocol)
        };
        self.token_from(&s, &req)
    }

    /// getPinUvAuthTokenUsingPinWithPermissions; returns the decrypted token.
    fn get_token(
        &mut self,
        protocol: u8,
        pin: &[u8],
        permissions: u8,
        rp_id: Option<&'static str>,
    ) -> Result<Vec<u8>, Error> {
        let s = self.session(protocol);
        let req = Req {
            key: Some(s.key()),
            pin_hash_enc: Some(s.pin_hash_enc(pin)),
            permissions: Some(permissions),
            rp_id,
            ..Req::sub(9, protocol)
        };
        self.token_from(&s, &req)
    }

    fn token_from(&mut self, s: &Session, req: &Req) -> Result<Vec<u8>, Error> {
        let response = self.call(req)?;
        let enc = response.pin_token.unwrap();
        assert_eq!(enc.len(), if s.protocol == 1 { 32 } else { 48 });
        let token = s.decrypt(&enc);
        assert_eq!(token.len(), 32);
        Ok(token)
    }

    /// Verifies a makeCredential-style pinUvAuthParam over CDH.
    fn verify(
        &mut self,
        protocol: u8,
        token: &[u8],
        required: u8,
        rp: RpCheck<'_>,
    ) -> Result<(), Error> {
        let param = mac_for(protocol, token, &[&CDH]);
        self.pin
            .verify_pin_uv_auth_param(Some(protocol), &param, &[&CDH], required, rp, self.now)
    }
}

// ---------------------------------------------------------------------------
// getPINRetries, getKeyAgreement

#[test]
fn fresh_state() {
    let mut rig = Rig::new();
    assert!(!rig.pin.is_pin_set());
    assert_eq!(rig.pin.min_pin_length(), 4);
    assert!(!rig.pin.force_pin_change());
    // Without a PIN, getPINRetries has nothing to report.
    assert_eq!(rig.call(&Req::sub(1, 1)).err(), Some(Error::PinNotSet));
    assert!(
        rig.storage.get(RecordKey::Pin).is_none(),
        "nothing written yet"
    );
    rig.set_pin(1, PIN).unwrap();
    // getPINRetries needs no protocol.
    let r = rig
        .call(&Req {
            protocol: None,
            ..Req::sub(1, 0)
        })
        .unwrap();
    assert_eq!(r.retries, Some(8));
    assert_eq!(r.power_cycle_state, Some(false));
}

#[test]
fn fresh_state_writes_nothing() {
    let mut rig = Rig::new();
    let _ = rig.call(&Req::sub(2, 2));
    assert!(
        rig.storage.get(RecordKey::Pin).is_none(),
        "nothing written yet"
    );
}

#[test]
fn key_agreement_parameters_and_cose_encoding() {
    let mut rig = Rig::new();
    assert_eq!(
        rig.call(&Req {
            protocol: None,
            ..Req::sub(2, 0)
        })
        .err(),
        Some(Error::MissingParameter)
    );
    assert_eq!(
        rig.call(&Req::sub(2, 3)).err(),
        Some(Error::InvalidParameter)
    );
    for protocol in PROTOCOLS {
        let response = rig.call(&Req::sub(2, protocol)).unwrap();
        // Serialize as the dispatcher would and read it back independently.
        let mut buf = [0u8; 256];
        let bytes = cbor_smol::cbor_serialize(&response, &mut buf).unwrap();
        let value: Value = ciborium::de::from_reader(bytes).unwrap();
        let map = value.as_map().unwrap();
        assert_eq!(map.len(), 1);
        assert_eq!(map[0].0, int(1));
        let cose = map[0].1.as_map().unwrap();
        let get = |k: i64| {
            cose.iter()
                .find(|(key, _)| *key == int(k))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get(1), Some(int(2)), "kty EC2");
        assert_eq!(get(3), Some(int(-25)), "alg ECDH-ES+HKDF-256");
        assert_eq!(get(-1), Some(int(1)), "crv P-256");
        let x = get(-2).unwrap().into_bytes().unwrap();
        let y = get(-3).unwrap().into_bytes().unwrap();
        assert_eq!((x.len(), y.len()), (32, 32));
        // A valid point: the platform can agree on a key with it.
        let _ = Session::new(protocol, &x, &y, &mut rig.rng);
    }
    // The two protocols use different key pairs.
    let k1 = rig.call(&Req::sub(2, 1)).unwrap().key_agreement.unwrap();
    let k2 = rig.call(&Req::sub(2, 2)).unwrap().key_agreement.unwrap();
    assert_ne!(k1, k2);
}

#[test]
fn uv_subcommands_are_not_supported() {
    let mut rig = Rig::new();
    for sub in [6u8, 7] {
        let s = rig.session(2);
        let req = Req {
            key: Some(s.key()),
            permissions: Some(permission::GA),
            rp_id: Some("example.com"),
            ..Req::sub(sub, 2)
        };
        assert_eq!(rig.call(&req).err(), Some(Error::InvalidSubcommand));
    }
}

// ---------------------------------------------------------------------------
// setPIN

#[test]
fn set_pin_then_token_both_protocols() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        rig.set_pin(protocol, PIN).unwrap();
        assert!(rig.pin.is_pin_set());
        assert_eq!(rig.retries(), (8, false));
        let token = rig.get_pin_token(protocol, PIN).unwrap();
        assert_eq!(
            rig.verify(
                protocol,
                &token,
                permission::MC,
                RpCheck::Bind("example.com")
            ),
            Ok(())
        );
        // The stored hash is LEFT(SHA-256(pin), 16) and survives a power cycle.
        rig.power_cycle();
        assert!(rig.pin.is_pin_set());
        let token = rig.get_pin_token(protocol, PIN).unwrap();
        assert_eq!(
            rig.verify(
                protocol,
                &token,
                permission::GA,
                RpCheck::Bind("example.com")
            ),
            Ok(())
        );
    }
}

#[test]
fn set_pin_refuses_when_set_and_checks_its_mac() {
    let mut rig = Rig::new();
    // Bad MAC: PIN_AUTH_INVALID and nothing stored.
    let mut req = rig.set_pin_req(2, PIN);
    req.pin_auth.as_mut().unwrap()[0] ^= 1;
    assert_eq!(rig.call(&req).err(), Some(Error::PinAuthInvalid));
    // A protocol-one-length MAC on protocol two is rejected too.
    let mut req = rig.set_pin_req(2, PIN);
    req.pin_auth.as_mut().unwrap().truncate(16);
    assert_eq!(rig.call(&req).err(), Some(Error::PinAuthInvalid));
    assert!(!rig.pin.is_pin_set());

    rig.set_pin(1, PIN).unwrap();
    assert_eq!(rig.set_pin(2, b"5678").err(), Some(Error::PinAuthInvalid));
    assert!(rig.get_pin_token(1, PIN).is_ok());
}

#[test]
fn set_pin_missing_and_invalid_parameters() {
    let mut rig = Rig::new();
    let full = rig.set_pin_req(1, PIN);
    let drops: [fn(&mut Req); 4] = [
        |r| r.protocol = None,
        |r| r.key = None,
        |r| r.pin_auth = None,
        |r| r.new_pin_enc = None,
    ];
    for drop in drops {
        let mut req = full.clone();
        drop(&mut req);
        assert_eq!(rig.call(&req).err(), Some(Error::MissingParameter));
    }
    let mut req = full.clone();
    req.protocol = Some(7);
    assert_eq!(rig.call(&req).err(), Some(Error::InvalidParameter));
    assert!(!rig.pin.is_pin_set());
}

#[test]
fn set_pin_policy() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        let too_long = [b'1'; 64];
        let cases: [(&[u8], Error); 5] = [
            (b"123", Error::PinPolicyViolation),
            ("äöü".as_bytes(), Error::PinPolicyViolation), // 6 bytes, 3 code points
            (&too_long, Error::PinPolicyViolation),        // no padding left
            (b"12\x0034", Error::PinPolicyViolation),      // interior NUL
            (&[0xC3, 0x28, 0x41, 0x42], Error::PinPolicyViolation), // not UTF-8
        ];
        for (pin, err) in cases {
            assert_eq!(rig.set_pin(protocol, pin).err(), Some(err), "{pin:?}");
            assert!(!rig.pin.is_pin_set());
        }
        // 63 bytes is the longest PIN; 4 multi-byte code points is long enough.
        let mut rig = Rig::new();
        rig.set_pin(protocol, &[b'9'; 63]).unwrap();
        assert!(rig.get_pin_token(protocol, &[b'9'; 63]).is_ok());
        let mut rig = Rig::new();
        rig.set_pin(protocol, "äöüß".as_bytes()).unwrap();
        assert!(rig.get_pin_token(protocol, "äöüß".as_bytes()).is_ok());
    }
}

#[test]
fn set_pin_padded_block_must_be_64_bytes() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        let s = rig.session(protocol);
        // 32-byte and 80-byte padded blocks (valid ciphertexts, valid MACs).
        for len in [32usize, 80] {
            let mut padded = vec![0u8; len];
            padded[..4].copy_from_slice(PIN);
            let enc = s.encrypt(&padded);
            let req = Req {
                key: Some(s.key()),
                pin_auth: Some(s.authenticate(&[&enc])),
                new_pin_enc: Some(enc),
                ..Req::sub(3, protocol)
            };
            assert_eq!(rig.call(&req).err(), Some(Error::InvalidParameter));
        }
        // Not a whole number of blocks: decrypt fails, PIN_AUTH_INVALID.
        let mut enc = s.new_pin_enc(PIN);
        enc.pop();
        let req = Req {
            key: Some(s.key()),
            pin_auth: Some(s.authenticate(&[&enc])),
            new_pin_enc: Some(enc),
            ..Req::sub(3, protocol)
        };
        assert_eq!(rig.call(&req).err(), Some(Error::PinAuthInvalid));
        assert!(!rig.pin.is_pin_set());
    }
}

// ---------------------------------------------------------------------------
// Wrong PINs, retries, blocking

#[test]
fn wrong_pin_decrements_and_is_persisted() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        rig.set_pin(protocol, PIN).unwrap();
        assert_eq!(
            rig.get_pin_token(protocol, b"0000").err(),
            Some(Error::PinInvalid)
        );
        assert_eq!(rig.retries(), (7, false));
        rig.power_cycle();
        assert_eq!(rig.pin.retries(), 7);
        assert_eq!(rig.retries(), (7, false));
        // A correct PIN restores the maximum, also persistently.
        rig.get_pin_token(protocol, PIN).unwrap();
        assert_eq!(rig.retries(), (8, false));
        rig.power_cycle();
        assert_eq!(rig.pin.retries(), 8);
    }
}

#[test]
fn attempt_is_persisted_before_the_pin_is_checked() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    rig.storage.set_fail_writes(Some(StorageError::Io));
    // Even the right PIN gets no answer when the attempt cannot be recorded.
    assert_eq!(rig.get_pin_token(2, PIN).err(), Some(Error::Other));
    assert_eq!(rig.get_pin_token(2, b"0000").err(), Some(Error::Other));
    assert_eq!(rig.pin.retries(), 8);
    rig.storage.set_fail_writes(None);
    assert!(rig.get_pin_token(2, PIN).is_ok());
}

#[test]
fn three_consecutive_mismatches_need_a_power_cycle() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        rig.set_pin(protocol, PIN).unwrap();
        assert_eq!(
            rig.get_pin_token(protocol, b"0000").err(),
            Some(Error::PinInvalid)
        );
        assert_eq!(
            rig.get_pin_token(protocol, b"1111").err(),
            Some(Error::PinInvalid)
        );
        assert_eq!(
            rig.get_token(protocol, b"2222", permission::GA, Some("a.example"))
                .err(),
            Some(Error::PinAuthBlocked)
        );
        assert_eq!(rig.retries(), (5, true));
        // Blocked until a power cycle, even for the right PIN, and no attempt is spent.
        assert_eq!(
            rig.get_pin_token(protocol, PIN).err(),
            Some(Error::PinAuthBlocked)
        );
        assert_eq!(
            rig.change_pin(protocol, PIN, b"9876").err(),
            Some(Error::PinAuthBlocked)
        );
        assert_eq!(rig.retries(), (5, true));
        rig.power_cycle();
        assert_eq!(rig.retries(), (5, false));
        assert!(rig.get_pin_token(protocol, PIN).is_ok());
        assert_eq!(rig.retries(), (8, false));
    }
}

#[test]
fn a_correct_pin_resets_the_consecutive_count() {
    let mut rig = Rig::new();
    rig.set_pin(1, PIN).unwrap();
    for _ in 0..2 {
        assert_eq!(rig.get_pin_token(1, b"0000").err(), Some(Error::PinInvalid));
    }
    rig.get_pin_token(1, PIN).unwrap();
    for _ in 0..2 {
        assert_eq!(rig.get_pin_token(1, b"0000").err(), Some(Error::PinInvalid));
    }
    assert_eq!(rig.retries(), (6, false));
}

#[test]
fn eight_wrong_pins_block_the_pin_for_good() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for attempt in 1..=8u8 {
        let result = rig.get_pin_token(2, b"0000").err();
        got.push(result);
        expected.push(Some(match attempt {
            8 => Error::PinBlocked,
            3 | 6 => Error::PinAuthBlocked,
            _ => Error::PinInvalid,
        }));
        if result == Some(Error::PinAuthBlocked) {
            rig.power_cycle();
        }
    }
    assert_eq!(got, expected);
    assert_eq!(rig.pin.retries(), 0);
    for _ in 0..2 {
        assert_eq!(rig.get_pin_token(2, PIN).err(), Some(Error::PinBlocked));
        assert_eq!(
            rig.get_token(2, PIN, permission::MC, Some("a.example"))
                .err(),
            Some(Error::PinBlocked)
        );
        assert_eq!(
            rig.change_pin(2, PIN, b"5678").err(),
            Some(Error::PinBlocked)
        );
        assert_eq!(rig.retries().0, 0);
        rig.power_cycle();
    }
    // Only authenticatorReset recovers.
    let mut storage = rig.storage.clone();
    rig.pin.reset(&mut storage, &mut rig.rng).unwrap();
    assert!(!rig.pin.is_pin_set());
    assert_eq!(rig.pin.retries(), 8);
    rig.power_cycle();
    assert!(!rig.pin.is_pin_set());
    rig.set_pin(2, b"5678").unwrap();
}

#[test]
fn key_agreement_is_regenerated_after_a_mismatch() {
    let mut rig = Rig::new();
    rig.set_pin(1, PIN).unwrap();
    let old = rig.session(1);
    let other_before = rig.call(&Req::sub(2, 2)).unwrap().key_agreement.unwrap();
    // Wrong PIN on the old session.
    let wrong = Req {
        key: Some(old.key()),
        pin_hash_enc: Some(old.pin_hash_enc(b"0000")),
        ..Req::sub(5, 1)
    };
    assert_eq!(rig.call(&wrong).err(), Some(Error::PinInvalid));
    // The old shared secret no longer works: the right PIN under it is a mismatch.
    let right_on_old = Req {
        key: Some(old.key()),
        pin_hash_enc: Some(old.pin_hash_enc(PIN)),
        ..Req::sub(5, 1)
    };
    assert_eq!(rig.call(&right_on_old).err(), Some(Error::PinInvalid));
    // Only the selected protocol's key was regenerated.
    let other_after = rig.call(&Req::sub(2, 2)).unwrap().key_agreement.unwrap();
    assert_eq!(other_before, other_after);
    // A fresh session works.
    assert!(rig.get_pin_token(1, PIN).is_ok());
}

#[test]
fn malformed_pin_hash_enc_counts_as_a_mismatch() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        rig.set_pin(protocol, PIN).unwrap();
        let s = rig.session(protocol);
        let mut bad = s.pin_hash_enc(PIN);
        bad.truncate(bad.len() - 1);
        let req = Req {
            key: Some(s.key()),
            pin_hash_enc: Some(bad),
            ..Req::sub(5, protocol)
        };
        assert_eq!(rig.call(&req).err(), Some(Error::PinInvalid));
        assert_eq!(rig.pin.retries(), 7);
    }
}

// ---------------------------------------------------------------------------
// changePIN

#[test]
fn change_pin_both_protocols() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        rig.set_pin(protocol, PIN).unwrap();
        let old_token = rig.get_pin_token(protocol, PIN).unwrap();
        rig.change_pin(protocol, PIN, b"87654321").unwrap();
        // All tokens were invalidated.
        assert_eq!(
            rig.verify(
                protocol,
                &old_token,
                permission::MC,
                RpCheck::Bind("a.example")
            ),
            Err(Error::PinAuthInvalid)
        );
        assert_eq!(
            rig.get_pin_token(protocol, PIN).err(),
            Some(Error::PinInvalid)
        );
        assert!(rig.get_pin_token(protocol, b"87654321").is_ok());
        rig.power_cycle();
        assert!(rig.get_pin_token(protocol, b"87654321").is_ok());
    }
}

#[test]
fn change_pin_errors() {
    let mut rig = Rig::new();
    assert_eq!(
        rig.change_pin(2, PIN, b"5678").err(),
        Some(Error::PinNotSet)
    );
    rig.set_pin(2, PIN).unwrap();
    // Wrong current PIN: an attempt is spent.
    assert_eq!(
        rig.change_pin(2, b"0000", b"5678").err(),
        Some(Error::PinInvalid)
    );
    assert_eq!(rig.pin.retries(), 7);
    // Bad MAC: rejected before an attempt is spent.
    let s = rig.session(2);
    let new_enc = s.new_pin_enc(b"5678");
    let hash_enc = s.pin_hash_enc(PIN);
    let mut req = Req {
        key: Some(s.key()),
        pin_auth: Some(s.authenticate(&[&hash_enc, &new_enc])), // wrong order
        new_pin_enc: Some(new_enc),
        pin_hash_enc: Some(hash_enc),
        ..Req::sub(4, 2)
    };
    assert_eq!(rig.call(&req).err(), Some(Error::PinAuthInvalid));
    assert_eq!(rig.pin.retries(), 7);
    req.pin_hash_enc = None;
    assert_eq!(rig.call(&req).err(), Some(Error::MissingParameter));
    // New PIN violating the policy: the current PIN was right, so retries reset,
    // but the PIN is unchanged.
    assert_eq!(
        rig.change_pin(2, PIN, b"12").err(),
        Some(Error::PinPolicyViolation)
    );
    assert_eq!(rig.pin.retries(), 8);
    assert!(rig.get_pin_token(2, PIN).is_ok());
}

// ---------------------------------------------------------------------------
// Tokens: getPinToken, permissions, RP binding, expiry

#[test]
fn get_pin_token_parameters() {
    let mut rig = Rig::new();
    assert_eq!(rig.get_pin_token(1, PIN).err(), Some(Error::PinNotSet));
    rig.set_pin(1, PIN).unwrap();
    let s = rig.session(1);
    let base = Req {
        key: Some(s.key()),
        pin_hash_enc: Some(s.pin_hash_enc(PIN)),
        ..Req::sub(5, 1)
    };
    let with = |f: fn(&mut Req)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    assert_eq!(
        rig.call(&with(|r| r.permissions = Some(1))).err(),
        Some(Error::InvalidParameter)
    );
    assert_eq!(
        rig.call(&with(|r| r.rp_id = Some("a.example"))).err(),
        Some(Error::InvalidParameter)
    );
    assert_eq!(
        rig.call(&with(|r| r.key = None)).err(),
        Some(Error::MissingParameter)
    );
    assert_eq!(
        rig.call(&with(|r| r.pin_hash_enc = None)).err(),
        Some(Error::MissingParameter)
    );
    assert_eq!(
        rig.call(&with(|r| r.protocol = Some(9))).err(),
        Some(Error::InvalidParameter)
    );
    assert_eq!(rig.pin.retries(), 8, "parameter errors spend no attempt");
}

#[test]
fn get_pin_token_grants_mc_and_ga_only() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        rig.set_pin(protocol, PIN).unwrap();
        let token = rig.get_pin_token(protocol, PIN).unwrap();
        assert!(!rig.pin.user_present_flag(rig.now));
        assert!(rig.pin.user_verified_flag(rig.now));
        for denied in [
            permission::CM,
            permission::LBW,
            permission::ACFG,
            permission::BE,
        ] {
            assert_eq!(
                rig.verify(protocol, &token, denied, RpCheck::Ignore),
                Err(Error::PinAuthInvalid)
            );
        }
        assert_eq!(
            rig.verify(protocol, &token, permission::MC, RpCheck::Bind("a.example")),
            Ok(())
        );
        // Bound to the first RP it was used with.
        assert_eq!(
            rig.verify(protocol, &token, permission::GA, RpCheck::Bind("b.example")),
            Err(Error::PinAuthInvalid)
        );
        assert_eq!(
            rig.verify(protocol, &token, permission::GA, RpCheck::Bind("a.example")),
            Ok(())
        );
    }
}

#[test]
fn wrong_mac_and_wrong_protocol_are_rejected() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    let token = rig.get_pin_token(2, PIN).unwrap();
    let good = mac_for(2, &token, &[&CDH]);
    let mut bad = good.clone();
    bad[5] ^= 0x40;
    let check = |rig: &mut Rig, proto: Option<u8>, param: &[u8]| {
        rig.pin.verify_pin_uv_auth_param(
            proto,
            param,
            &[&CDH],
            permission::MC,
            RpCheck::Bind("a.example"),
            rig.now,
        )
    };
    assert_eq!(check(&mut rig, Some(2), &bad), Err(Error::PinAuthInvalid));
    assert_eq!(
        check(&mut rig, Some(2), &good[..16]),
        Err(Error::PinAuthInvalid)
    );
    assert_eq!(check(&mut rig, None, &good), Err(Error::MissingParameter));
    assert_eq!(
        check(&mut rig, Some(3), &good),
        Err(Error::InvalidParameter)
    );
    // The protocol-two token is not the protocol-one token.
    let p1 = mac_for(1, &token, &[&CDH]);
    assert_eq!(check(&mut rig, Some(1), &p1), Err(Error::PinAuthInvalid));
    // A different message does not verify.
    assert_eq!(
        rig.pin.verify_pin_uv_auth_param(
            Some(2),
            &good,
            &[&[0u8; 32]],
            permission::MC,
            RpCheck::Bind("a.example"),
            rig.now
        ),
        Err(Error::PinAuthInvalid)
    );
    assert_eq!(check(&mut rig, Some(2), &good), Ok(()));
}

#[test]
fn a_new_token_replaces_the_old_one() {
    let mut rig = Rig::new();
    rig.set_pin(1, PIN).unwrap();
    let first = rig.get_pin_token(1, PIN).unwrap();
    let second = rig.get_pin_token(1, PIN).unwrap();
    assert_ne!(first, second);
    assert_eq!(
        rig.verify(1, &first, permission::MC, RpCheck::Bind("a.example")),
        Err(Error::PinAuthInvalid)
    );
    assert_eq!(
        rig.verify(1, &second, permission::MC, RpCheck::Bind("a.example")),
        Ok(())
    );
}

#[test]
fn permissions_token_parameters() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    assert_eq!(
        rig.get_token(2, PIN, 0, Some("a.example")).err(),
        Some(Error::InvalidParameter)
    );
    assert_eq!(
        rig.get_token(2, PIN, permission::BE, None).err(),
        Some(Error::UnauthorizedPermission)
    );
    let s = rig.session(2);
    let req = Req {
        key: Some(s.key()),
        pin_hash_enc: Some(s.pin_hash_enc(PIN)),
        ..Req::sub(9, 2)
    };
    assert_eq!(rig.call(&req).err(), Some(Error::MissingParameter));
    assert_eq!(rig.pin.retries(), 8);

    let mut limited = Rig::with_features(Features {
        cred_mgmt: false,
        large_blobs: false,
        authnr_cfg: false,
        bio_enroll: false,
        builtin_uv: false,
    });
    limited.set_pin(1, PIN).unwrap();
    for p in [
        permission::CM,
        permission::LBW,
        permission::ACFG,
        permission::MC | permission::LBW,
    ] {
        assert_eq!(
            limited.get_token(1, PIN, p, None).err(),
            Some(Error::UnauthorizedPermission),
            "{p:#x}"
        );
    }
    assert_eq!(limited.pin.retries(), 8);
    // Undefined bits are ignored, not refused.
    let token = limited
        .get_token(1, PIN, 0x80 | permission::GA, Some("a.example"))
        .unwrap();
    assert_eq!(
        limited.verify(1, &token, permission::GA, RpCheck::Bind("a.example")),
        Ok(())
    );
}

#[test]
fn permissions_and_rp_id_are_enforced() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        rig.set_pin(protocol, PIN).unwrap();
        let token = rig
            .get_token(protocol, PIN, permission::MC, Some("a.example"))
            .unwrap();
        assert_eq!(
            rig.verify(protocol, &token, permission::GA, RpCheck::Bind("a.example")),
            Err(Error::PinAuthInvalid),
            "ga not granted"
        );
        assert_eq!(
            rig.verify(protocol, &token, permission::MC, RpCheck::Bind("b.example")),
            Err(Error::PinAuthInvalid),
            "other RP"
        );
        assert_eq!(
            rig.verify(protocol, &token, permission::MC, RpCheck::Bind("a.example")),
            Ok(())
        );

        let token = rig
            .get_token(
                protocol,
                PIN,
                permission::CM | permission::LBW | permission::ACFG,
                None,
            )
            .unwrap();
        assert_eq!(
            rig.verify(protocol, &token, permission::CM, RpCheck::NoneAllowed),
            Ok(())
        );
        assert_eq!(
            rig.verify(protocol, &token, permission::LBW, RpCheck::Ignore),
            Ok(())
        );
        assert_eq!(
            rig.verify(protocol, &token, permission::ACFG, RpCheck::Ignore),
            Ok(())
        );
        assert_eq!(
            rig.verify(protocol, &token, permission::MC, RpCheck::Bind("a.example")),
            Err(Error::PinAuthInvalid)
        );

        let token = rig
            .get_token(protocol, PIN, permission::CM, Some("a.example"))
            .unwrap();
        let a = super::token::hash_rp_id("a.example");
        let b = super::token::hash_rp_id("b.example");
        assert_eq!(
            rig.verify(protocol, &token, permission::CM, RpCheck::NoneAllowed),
            Err(Error::PinAuthInvalid)
        );
        assert_eq!(
            rig.verify(protocol, &token, permission::CM, RpCheck::MatchHash(&b)),
            Err(Error::PinAuthInvalid)
        );
        assert_eq!(
            rig.verify(
                protocol,
                &token,
                permission::CM,
                RpCheck::Match("b.example")
            ),
            Err(Error::PinAuthInvalid)
        );
        assert_eq!(
            rig.verify(protocol, &token, permission::CM, RpCheck::MatchHash(&a)),
            Ok(())
        );
        assert_eq!(
            rig.verify(
                protocol,
                &token,
                permission::CM,
                RpCheck::Match("a.example")
            ),
            Ok(())
        );
    }
}

#[test]
fn rp_id_binds_on_first_use_when_absent() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    let token = rig
        .get_token(2, PIN, permission::MC | permission::GA, None)
        .unwrap();
    assert_eq!(
        rig.verify(2, &token, permission::GA, RpCheck::Bind("a.example")),
        Ok(())
    );
    assert_eq!(
        rig.verify(2, &token, permission::MC, RpCheck::Bind("b.example")),
        Err(Error::PinAuthInvalid)
    );
    assert_eq!(
        rig.verify(2, &token, permission::MC, RpCheck::Bind("a.example")),
        Ok(())
    );
}

#[test]
fn token_expires_by_the_clock() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        rig.set_pin(protocol, PIN).unwrap();
        // Not used within the initial usage time limit: gone.
        let token = rig.get_pin_token(protocol, PIN).unwrap();
        rig.now += INITIAL_USAGE_TIME_LIMIT_MS;
        assert_eq!(
            rig.verify(protocol, &token, permission::GA, RpCheck::Bind("a.example")),
            Err(Error::PinAuthInvalid)
        );

        // Used in time: valid until the max usage time period.
        let issued = rig.now;
        let token = rig.get_pin_token(protocol, PIN).unwrap();
        rig.now = issued + INITIAL_USAGE_TIME_LIMIT_MS - 1;
        assert_eq!(
            rig.verify(protocol, &token, permission::GA, RpCheck::Bind("a.example")),
            Ok(())
        );
        rig.now = issued + MAX_USAGE_TIME_PERIOD_MS - 1;
        assert_eq!(
            rig.verify(protocol, &token, permission::GA, RpCheck::Bind("a.example")),
            Ok(())
        );
        rig.now = issued + MAX_USAGE_TIME_PERIOD_MS;
        assert_eq!(
            rig.verify(protocol, &token, permission::GA, RpCheck::Bind("a.example")),
            Err(Error::PinAuthInvalid)
        );
        assert!(!rig.pin.user_verified_flag(rig.now));
    }
}

#[test]
fn user_presence_consumes_mc_and_ga_but_not_lbw() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    let token = rig
        .get_token(
            2,
            PIN,
            permission::MC | permission::GA | permission::LBW,
            Some("a.example"),
        )
        .unwrap();
    assert_eq!(
        rig.verify(2, &token, permission::MC, RpCheck::Bind("a.example")),
        Ok(())
    );
    rig.pin.consume_after_user_presence();
    assert!(!rig.pin.user_verified_flag(rig.now));
    assert_eq!(
        rig.verify(2, &token, permission::GA, RpCheck::Bind("a.example")),
        Err(Error::PinAuthInvalid)
    );
    assert_eq!(
        rig.verify(2, &token, permission::LBW, RpCheck::Ignore),
        Ok(())
    );
    rig.pin.stop_using_token();
    assert_eq!(
        rig.verify(2, &token, permission::LBW, RpCheck::Ignore),
        Err(Error::PinAuthInvalid)
    );
}

#[test]
fn a_new_pins_hash_is_wiped_when_it_goes() {
    let mut rig = Rig::new();
    crate::wipe::hook::take();
    rig.set_pin(1, PIN).unwrap();
    assert_eq!(crate::wipe::hook::count("NewPin"), 1, "setPIN");
    rig.change_pin(2, PIN, b"76543210").unwrap();
    assert_eq!(crate::wipe::hook::count("NewPin"), 1, "changePIN");
}

// ---------------------------------------------------------------------------
// minPINLength and forcePINChange

#[test]
fn min_pin_length_and_force_pin_change() {
    let mut rig = Rig::new();
    let mut storage = rig.storage.clone();
    assert_eq!(
        rig.pin
            .set_min_pin_length(&mut storage, Some(6), None, true),
        Err(Error::PinNotSet)
    );
    rig.pin
        .set_min_pin_length(&mut storage, Some(5), None, false)
        .unwrap();
    assert!(!rig.pin.force_pin_change(), "no PIN, nothing to force");
    assert_eq!(
        rig.pin
            .set_min_pin_length(&mut storage, Some(4), None, false),
        Err(Error::PinPolicyViolation)
    );
    assert_eq!(rig.set_pin(1, PIN).err(), Some(Error::PinPolicyViolation));
    rig.set_pin(1, b"12345").unwrap();

    // Raising the minimum above the current PIN's length forces a change.
    rig.pin
        .set_min_pin_length(&mut storage, Some(6), None, false)
        .unwrap();
    assert!(rig.pin.force_pin_change());
    rig.power_cycle();
    assert!(rig.pin.force_pin_change());
    assert_eq!(rig.pin.min_pin_length(), 6);
    assert_eq!(
        rig.get_pin_token(1, b"12345").err(),
        Some(Error::PinInvalid)
    );
    assert_eq!(
        rig.get_token(1, b"12345", permission::MC, Some("a.example"))
            .err(),
        Some(Error::PinPolicyViolation)
    );
    assert_eq!(rig.pin.retries(), 8, "the PIN itself was right");
    assert_eq!(
        rig.get_pin_token(1, b"00000").err(),
        Some(Error::PinInvalid)
    );
    assert_eq!(rig.pin.retries(), 7);
    assert_eq!(
        rig.change_pin(1, b"12345", b"1234").err(),
        Some(Error::PinPolicyViolation)
    );
    rig.change_pin(1, b"12345", b"123456").unwrap();
    assert!(!rig.pin.force_pin_change());
    assert!(rig.get_pin_token(1, b"123456").is_ok());
    // A minimum equal to the PIN's length forces nothing.
    rig.pin
        .set_min_pin_length(&mut storage, Some(6), None, false)
        .unwrap();
    assert!(
        !rig.pin.force_pin_change(),
        "a 6-digit PIN meets a minimum of 6"
    );

    // forceChangePin: the same PIN again is refused.
    rig.pin
        .set_min_pin_length(&mut storage, None, None, true)
        .unwrap();
    assert!(rig.pin.force_pin_change());
    assert_eq!(
        rig.change_pin(2, b"123456", b"123456").err(),
        Some(Error::PinPolicyViolation)
    );
    rig.change_pin(2, b"123456", b"654321").unwrap();
    assert!(!rig.pin.force_pin_change());
}

/// The minPinLength RP IDs the PIN state holds.
fn stored_rp_ids(pin: &PinUv) -> Vec<&str> {
    pin.min_pin_length_rp_ids()
        .iter()
        .map(|s| s.as_str())
        .collect()
}

#[test]
fn min_pin_length_rp_ids() {
    let mut rig = Rig::new();
    let mut storage = rig.storage.clone();
    let too_many = ["a.example"; MAX_MIN_PIN_LENGTH_RP_IDS + 1];
    assert_eq!(
        rig.pin
            .set_min_pin_length(&mut storage, None, Some(&too_many), false),
        Err(Error::PinPolicyViolation)
    );
    let long = core::str::from_utf8(&[b'x'; 200]).unwrap();
    assert_eq!(
        rig.pin
            .set_min_pin_length(&mut storage, None, Some(&[long]), false),
        Err(Error::PinPolicyViolation)
    );
    rig.pin
        .set_min_pin_length(
            &mut storage,
            Some(8),
            Some(&["a.example", "b.example"]),
            false,
        )
        .unwrap();
    rig.power_cycle();
    assert_eq!(stored_rp_ids(&rig.pin), ["a.example", "b.example"]);
    assert_eq!(rig.pin.min_pin_length(), 8);
    assert_eq!(
        rig.pin
            .set_min_pin_length(&mut storage, Some(64), None, false),
        Err(Error::PinPolicyViolation)
    );
    // The most the record holds: four RP IDs of the longest length.
    let longest: Vec<std::string::String> = (b'a'..=b'd')
        .map(|c| core::str::from_utf8(&[c; MAX_RP_ID_LENGTH]).unwrap().into())
        .collect();
    let longest: Vec<&str> = longest.iter().map(|s| s.as_str()).collect();
    rig.pin
        .set_min_pin_length(&mut storage, None, Some(&longest), false)
        .unwrap();
    rig.power_cycle();
    assert_eq!(stored_rp_ids(&rig.pin), longest);
    // 63 (the longest PIN there is) is the highest minimum there is.
    rig.pin
        .set_min_pin_length(&mut storage, Some(63), None, false)
        .unwrap();
    assert_eq!(rig.pin.min_pin_length(), 63);
}

// ---------------------------------------------------------------------------
// Malformed input

#[test]
fn malformed_key_agreement() {
    for protocol in PROTOCOLS {
        let mut rig = Rig::new();
        rig.set_pin(protocol, PIN).unwrap();
        let s = rig.session(protocol);
        let base = Req {
            key: Some(s.key()),
            pin_hash_enc: Some(s.pin_hash_enc(PIN)),
            ..Req::sub(5, protocol)
        };
        // Not on the curve.
        let mut off = base.clone();
        off.key.as_mut().unwrap().1[31] ^= 1;
        assert_eq!(rig.call(&off).err(), Some(Error::InvalidParameter));
        // Short coordinate.
        let mut short = base.clone();
        short.key.as_mut().unwrap().0.pop();
        assert_eq!(rig.call(&short).err(), Some(Error::InvalidParameter));
        // All zeros.
        let mut zero = base.clone();
        zero.key = Some((vec![0; 32], vec![0; 32]));
        assert_eq!(rig.call(&zero).err(), Some(Error::InvalidParameter));
        // Wrong COSE algorithm: refused while decoding (a clean error, no panic).
        let mut es256 = base.clone();
        es256.key_alg = Some(-7);
        assert_eq!(rig.call(&es256).err(), Some(Error::InvalidCbor));
        // Too-long coordinate: refused while decoding.
        let mut long = base.clone();
        long.key.as_mut().unwrap().0.push(0);
        assert_eq!(rig.call(&long).err(), Some(Error::InvalidCbor));
        // None of these spent an attempt.
        assert_eq!(rig.pin.retries(), 8);
        assert!(rig.call(&base).is_ok());

        // setPIN with a bad key on a fresh device.
        let mut fresh = Rig::new();
        let mut req = fresh.set_pin_req(protocol, PIN);
        req.key.as_mut().unwrap().0[0] ^= 0x80;
        assert_eq!(fresh.call(&req).err(), Some(Error::InvalidParameter));
    }
}

#[test]
fn corrupt_record_fails_closed_until_reset() {
    let mut rig = Rig::new();
    rig.storage.put_raw(RecordKey::Pin, &[1, 2, 3]);
    rig.power_cycle();
    assert!(rig.pin.is_pin_set());
    assert_eq!(rig.retries(), (0, false));
    assert_eq!(rig.get_pin_token(2, PIN).err(), Some(Error::PinBlocked));
    assert_eq!(rig.set_pin(2, PIN).err(), Some(Error::PinAuthInvalid));
    let mut storage = rig.storage.clone();
    rig.pin.reset(&mut storage, &mut rig.rng).unwrap();
    assert!(rig.storage.get(RecordKey::Pin).is_none());
    rig.set_pin(2, PIN).unwrap();
    assert!(rig.get_pin_token(2, PIN).is_ok());
}

/// F4: a PIN record torn by a crash mid-write (a prefix of it survives).
fn torn(record: &[u8], keep: usize) -> Vec<u8> {
    record[..keep].to_vec()
}

#[test]
fn torn_record_without_pin_is_rebuilt_not_blocked() {
    // No PIN, uvRetries 5, minPINLength 6: what a uvRetries write leaves.
    let mut record = vec![3, 0, 8, 6, 0, 5];
    record.extend_from_slice(&[0; 52]);
    record.push(0);
    for keep in [6, 7, 20, 40, 58] {
        let mut rig = Rig::new();
        rig.storage.put_raw(RecordKey::Pin, &torn(&record, keep));
        rig.power_cycle();
        assert!(!rig.pin.is_pin_set(), "keep {keep}");
        assert_eq!(rig.pin.retries(), 8, "keep {keep}");
        assert_eq!(
            rig.pin.uv_retries(),
            5,
            "uvRetries never raised (keep {keep})"
        );
        assert_eq!(
            rig.pin.min_pin_length(),
            6,
            "minPINLength kept (keep {keep})"
        );
        // Rewritten whole: the next power-up reads it as it is.
        assert_eq!(rig.storage.get(RecordKey::Pin).unwrap(), record);
        rig.set_pin(2, b"123456").unwrap();
        assert!(rig.get_pin_token(2, b"123456").is_ok());
    }
}

#[test]
fn torn_record_with_whole_verifier_keeps_the_pin_and_its_retries() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    assert_eq!(rig.get_pin_token(2, b"9999").err(), Some(Error::PinInvalid));
    let record = rig.storage.get(RecordKey::Pin).unwrap();
    assert_eq!(record[2], 7);
    // Everything but the minPinLengthRPIDs count survived.
    rig.storage
        .put_raw(RecordKey::Pin, &torn(&record, record.len() - 1));
    rig.power_cycle();
    assert!(rig.pin.is_pin_set());
    assert_eq!(
        rig.retries(),
        (7, false),
        "pinRetries neither lost nor raised"
    );
    assert!(rig.get_pin_token(2, PIN).is_ok());
}

#[test]
fn torn_record_with_cut_verifier_blocks_the_pin_only() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    let mut record = rig.storage.get(RecordKey::Pin).unwrap();
    record[5] = 6; // uvRetries
    rig.storage.put_raw(RecordKey::Pin, &torn(&record, 30));
    rig.power_cycle();
    // No PIN can match a lost verifier: set and blocked until reset...
    assert!(rig.pin.is_pin_set());
    assert_eq!(rig.retries(), (0, false));
    assert_eq!(rig.get_pin_token(2, PIN).err(), Some(Error::PinBlocked));
    // ...but built-in UV keeps its own retries.
    assert_eq!(rig.pin.uv_retries(), 6);
    let mut storage = rig.storage.clone();
    rig.pin.reset(&mut storage, &mut rig.rng).unwrap();
    rig.set_pin(2, PIN).unwrap();
    assert!(rig.get_pin_token(2, PIN).is_ok());
}

#[test]
fn power_up_reports_storage_failure() {
    let mut storage = MemoryStorage::new();
    storage.set_fail_reads(Some(StorageError::Io));
    let mut rng = seeded_rng(5);
    assert!(PinUv::power_up(
        Features::default(),
        PinKdfCost::TEST,
        &mut storage,
        &mut rng
    )
    .is_err());
}

#[test]
fn reset_regenerates_keys_and_tokens() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    let token = rig.get_pin_token(2, PIN).unwrap();
    let before = rig.call(&Req::sub(2, 2)).unwrap().key_agreement.unwrap();
    let mut storage = rig.storage.clone();
    rig.pin.reset(&mut storage, &mut rig.rng).unwrap();
    let after = rig.call(&Req::sub(2, 2)).unwrap().key_agreement.unwrap();
    assert_ne!(before, after);
    assert_eq!(
        rig.verify(2, &token, permission::MC, RpCheck::Bind("a.example")),
        Err(Error::PinAuthInvalid)
    );
    assert!(!rig.pin.is_pin_set());
}

#[test]
fn power_cycle_regenerates_keys_and_tokens() {
    let mut rig = Rig::new();
    rig.set_pin(1, PIN).unwrap();
    let token = rig.get_pin_token(1, PIN).unwrap();
    let before = rig.call(&Req::sub(2, 1)).unwrap().key_agreement.unwrap();
    rig.power_cycle();
    let after = rig.call(&Req::sub(2, 1)).unwrap().key_agreement.unwrap();
    assert_ne!(before, after);
    assert_eq!(
        rig.verify(1, &token, permission::MC, RpCheck::Bind("a.example")),
        Err(Error::PinAuthInvalid)
    );
}

#[test]
fn protocol_two_uses_fresh_ivs() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    let s = rig.session(2);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let req = Req {
            key: Some(s.key()),
            pin_hash_enc: Some(s.pin_hash_enc(PIN)),
            ..Req::sub(5, 2)
        };
        let enc = rig.call(&req).unwrap().pin_token.unwrap();
        seen.push(enc[..16].to_vec());
    }
    assert_ne!(seen[0], seen[1]);
}

#[test]
fn mc_and_ga_need_the_user_verified_flag() {
    let mut rig = Rig::new();
    rig.set_pin(1, PIN).unwrap();
    let token = rig
        .get_token(
            1,
            PIN,
            permission::MC | permission::GA | permission::CM,
            None,
        )
        .unwrap();
    rig.pin.token.clear_user_verified_flag();
    for p in [permission::MC, permission::GA] {
        assert_eq!(
            rig.verify(1, &token, p, RpCheck::Bind("a.example")),
            Err(Error::PinAuthInvalid)
        );
    }
    assert_eq!(
        rig.verify(1, &token, permission::CM, RpCheck::NoneAllowed),
        Ok(())
    );
}

#[test]
fn a_power_cycle_ends_the_auth_block_and_the_token() {
    let mut rig = Rig::new();
    rig.set_pin(2, PIN).unwrap();
    let token = rig.get_pin_token(2, PIN).unwrap();
    let before = rig.call(&Req::sub(2, 2)).unwrap().key_agreement.unwrap();
    for expected in [Error::PinInvalid, Error::PinInvalid, Error::PinAuthBlocked] {
        assert_eq!(rig.get_pin_token(2, b"0000").err(), Some(expected));
    }
    assert_eq!(rig.get_pin_token(2, PIN).err(), Some(Error::PinAuthBlocked));
    rig.power_cycle();
    assert_eq!(rig.retries(), (5, false), "retries are persistent");
    let after = rig.call(&Req::sub(2, 2)).unwrap().key_agreement.unwrap();
    assert_ne!(before, after);
    assert_eq!(
        rig.verify(2, &token, permission::MC, RpCheck::Bind("a.example")),
        Err(Error::PinAuthInvalid)
    );
    assert_eq!(rig.get_pin_token(2, b"0000").err(), Some(Error::PinInvalid));
    rig.get_pin_token(2, PIN).unwrap();
}

#[test]
fn always_uv_is_persisted_and_reset_clears_it() {
    let mut rig = Rig::new();
    assert!(!rig.pin.always_uv());
    let mut storage = rig.storage.clone();
    rig.pin.set_always_uv(&mut storage, true).unwrap();
    assert!(rig.pin.always_uv());
    rig.power_cycle();
    assert!(rig.pin.always_uv(), "survives a power cycle");
    assert!(!rig.pin.is_pin_set(), "no PIN came with it");
    rig.storage.set_fail_writes(Some(StorageError::Io));
    assert_eq!(
        rig.pin.set_always_uv(&mut storage, false),
        Err(Error::Other)
    );
    assert!(rig.pin.always_uv(), "a failed write changes nothing");
    rig.storage.set_fail_writes(None);
    rig.pin.reset(&mut storage, &mut rig.rng).unwrap();
    assert!(!rig.pin.always_uv());
    rig.power_cycle();
    assert!(!rig.pin.always_uv());
}

// ---------------------------------------------------------------------------
// The stored verifier (issue 10 §1 defect 10): migration and cost.

mod verifier_records {
    use super::*;
    use crate::pin::state::fixtures;

    fn pin_hash(pin: &[u8]) -> [u8; 16] {
        Sha256::digest(pin)[..16].try_into().unwrap()
    }

    fn iterations_of(record: &[u8]) -> u32 {
        assert_eq!(record[0], 3, "a version 3 record");
        u32::from_be_bytes(record[22..26].try_into().unwrap())
    }

    #[test]
    fn the_pin_records_of_release_96f7afd_are_stretched_at_power_up_and_the_pin_works() {
        for (old, uv_retries) in [(&fixtures::V1[..], 8), (&fixtures::V2[..], 6)] {
            let mut rig = Rig::with_features(Features {
                builtin_uv: true,
                ..Features::default()
            });
            rig.storage.put_raw(RecordKey::Pin, old);
            rig.power_cycle();
            let record = rig.storage.get(RecordKey::Pin).unwrap();
            assert_eq!(iterations_of(&record), PinKdfCost::TEST.get());
            let hash = pin_hash(fixtures::PIN.as_bytes());
            assert!(
                !record.windows(16).any(|w| w == hash),
                "the unsalted hash is gone from storage"
            );
            assert_eq!(rig.retries(), (6, false));
            assert_eq!(rig.pin.uv_retries(), uv_retries);
            assert_eq!(rig.pin.min_pin_length(), 6);
            assert_eq!(
                rig.get_pin_token(2, b"fixture-pin-1235").err(),
                Some(Error::PinInvalid)
            );
            assert_eq!(rig.retries(), (5, false));
            rig.get_pin_token(2, fixtures::PIN.as_bytes()).unwrap();
            assert_eq!(rig.retries(), (8, false));
            // And again after another power-up (nothing migrates twice).
            let migrated = rig.storage.get(RecordKey::Pin).unwrap();
            rig.power_cycle();
            rig.get_pin_token(1, fixtures::PIN.as_bytes()).unwrap();
            assert_eq!(
                rig.storage.get(RecordKey::Pin).unwrap()[..58],
                migrated[..58],
                "same salt and verifier"
            );
        }
    }

    #[test]
    fn a_failed_migration_stops_power_up_and_keeps_the_old_record() {
        let mut storage = MemoryStorage::new();
        storage.put_raw(RecordKey::Pin, &fixtures::V2);
        storage.set_fail_writes(Some(StorageError::Io));
        let mut rng = seeded_rng(9);
        assert!(PinUv::power_up(
            Features::default(),
            PinKdfCost::TEST,
            &mut storage,
            &mut rng
        )
        .is_err());
        assert_eq!(storage.get(RecordKey::Pin).unwrap(), fixtures::V2);
        storage.set_fail_writes(None);
        let pin = PinUv::power_up(
            Features::default(),
            PinKdfCost::TEST,
            &mut storage,
            &mut rng,
        )
        .unwrap();
        assert!(pin.is_pin_set());
        assert_eq!(storage.get(RecordKey::Pin).unwrap()[0], 3);
    }

    #[test]
    fn a_verifier_of_another_cost_is_made_again_by_the_next_correct_pin() {
        let mut rig = Rig::new();
        rig.set_pin(2, PIN).unwrap();
        let at_test_cost = rig.storage.get(RecordKey::Pin).unwrap();
        assert_eq!(iterations_of(&at_test_cost), PinKdfCost::TEST.get());
        // The key now runs with another configured cost.
        let other = PinKdfCost::iterations(40).unwrap();
        let power_up = |rig: &mut Rig| {
            rig.pin = PinUv::power_up(rig.features, other, &mut rig.storage, &mut rig.rng).unwrap();
        };
        power_up(&mut rig);
        assert_eq!(
            rig.storage.get(RecordKey::Pin).unwrap(),
            at_test_cost,
            "loading changes nothing"
        );
        // A wrong PIN does not touch the verifier.
        assert_eq!(rig.get_pin_token(2, b"9999").err(), Some(Error::PinInvalid));
        let record = rig.storage.get(RecordKey::Pin).unwrap();
        assert_eq!(record[6..58], at_test_cost[6..58]);
        // The correct PIN re-stretches it: new salt, the configured cost.
        rig.get_pin_token(2, PIN).unwrap();
        let record = rig.storage.get(RecordKey::Pin).unwrap();
        assert_eq!(iterations_of(&record), 40);
        assert_ne!(record[6..22], at_test_cost[6..22], "a new salt");
        power_up(&mut rig);
        rig.get_pin_token(1, PIN).unwrap();
        assert_eq!(
            rig.storage.get(RecordKey::Pin).unwrap(),
            record,
            "made again once: at the configured cost, the next correct PIN leaves it alone"
        );
        assert_eq!(rig.get_pin_token(1, b"1235").err(), Some(Error::PinInvalid));
    }

    #[test]
    fn set_and_change_pin_store_verifiers_not_hashes() {
        let mut rig = Rig::new();
        rig.set_pin(2, PIN).unwrap();
        let record = rig.storage.get(RecordKey::Pin).unwrap();
        assert!(!record.windows(16).any(|w| w == pin_hash(PIN)));
        rig.change_pin(1, PIN, b"24680").unwrap();
        let changed = rig.storage.get(RecordKey::Pin).unwrap();
        assert!(!changed.windows(16).any(|w| w == pin_hash(b"24680")));
        assert_ne!(changed[6..22], record[6..22], "each PIN gets its own salt");
        rig.get_pin_token(2, b"24680").unwrap();
        assert_eq!(rig.get_pin_token(2, PIN).err(), Some(Error::PinInvalid));
    }
}
