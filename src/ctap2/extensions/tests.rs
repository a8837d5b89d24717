//! Extension behaviour through `App::handle`, with the platform side of PIN/UV
//! auth protocols 1 and 2 written independently here (p256 ECDH, HKDF, AES-CBC,
//! HMAC), and Ed25519 signatures checked with ed25519-dalek's verifier.

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use aes::Aes256;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ciborium::Value;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::authenticator::testkit::*;
use crate::authenticator::Config;

const RP: &str = "example.com";
pub(crate) const PIN: &[u8] = b"123456";

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The platform's half of a PIN/UV auth protocol session.
pub(crate) struct Session {
    pub(crate) protocol: u8,
    hmac_key: Vec<u8>,
    aes_key: Vec<u8>,
    pub(crate) platform_key: Value,
}

impl Session {
    /// getKeyAgreement, then ECDH with a fresh platform key.
    pub(crate) fn open(h: &mut Harness, protocol: u8) -> Self {
        Self::open_asking(h, protocol, protocol)
    }

    /// getKeyAgreement under protocol `asked`, then the shared secret of
    /// `protocol` from it (a platform using a protocol the key did not agree to).
    fn open_asking(h: &mut Harness, asked: u8, protocol: u8) -> Self {
        let (status, value, _) = h.ctap2(
            0x06,
            Some(Value::Map(vec![
                (int(1), int(asked.into())),
                (int(2), int(2)),
            ])),
        );
        assert_eq!(status, 0, "getKeyAgreement");
        let cose = map_int(value.as_ref().unwrap(), 1).unwrap().clone();
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(map_bytes(&cose, -2));
        sec1.extend_from_slice(map_bytes(&cose, -3));
        let authenticator = p256::PublicKey::from_sec1_bytes(&sec1).unwrap();
        let mut seed = [0u8; 32];
        seed[0] = protocol;
        seed[31] = 1;
        let platform = p256::SecretKey::from_slice(&seed).unwrap();
        let z = p256::ecdh::diffie_hellman(platform.to_nonzero_scalar(), authenticator.as_affine());
        let z = z.raw_secret_bytes().to_vec();
        let (hmac_key, aes_key) = if protocol == 1 {
            let k = sha256(&z).to_vec();
            (k.clone(), k)
        } else {
            let hk = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), &z);
            let mut a = [0u8; 32];
            let mut b = [0u8; 32];
            hk.expand(b"CTAP2 HMAC key", &mut a).unwrap();
            hk.expand(b"CTAP2 AES key", &mut b).unwrap();
            (a.to_vec(), b.to_vec())
        };
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = platform.public_key().to_encoded_point(false);
        let platform_key = Value::Map(vec![
            (int(1), int(2)),
            (int(3), int(-25)),
            (int(-1), int(1)),
            (int(-2), bytes(point.x().unwrap())),
            (int(-3), bytes(point.y().unwrap())),
        ]);
        Session {
            protocol,
            hmac_key,
            aes_key,
            platform_key,
        }
    }

    pub(crate) fn encrypt(&self, pt: &[u8]) -> Vec<u8> {
        let iv = if self.protocol == 1 {
            [0u8; 16]
        } else {
            [0x5A; 16]
        };
        let mut buf = pt.to_vec();
        let mut enc = cbc::Encryptor::<Aes256>::new_from_slices(&self.aes_key, &iv).unwrap();
        for block in buf.chunks_exact_mut(16) {
            enc.encrypt_block_mut(block.into());
        }
        if self.protocol == 1 {
            buf
        } else {
            [iv.to_vec(), buf].concat()
        }
    }

    pub(crate) fn decrypt(&self, ct: &[u8]) -> Vec<u8> {
        let (iv, body) = if self.protocol == 1 {
            ([0u8; 16], ct)
        } else {
            (ct[..16].try_into().unwrap(), &ct[16..])
        };
        let mut buf = body.to_vec();
        let mut dec = cbc::Decryptor::<Aes256>::new_from_slices(&self.aes_key, &iv).unwrap();
        for block in buf.chunks_exact_mut(16) {
            dec.decrypt_block_mut(block.into());
        }
        buf
    }

    pub(crate) fn authenticate(&self, parts: &[&[u8]]) -> Vec<u8> {
        mac(self.protocol, &self.hmac_key, parts)
    }
}

/// `authenticate(key, message)` of PIN/UV auth protocol `protocol`.
pub(crate) fn mac(protocol: u8, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let tag = hmac(key, parts);
    if protocol == 1 {
        tag[..16].to_vec()
    } else {
        tag.to_vec()
    }
}

/// Sets [`PIN`] and returns a pinUvAuthToken with `permissions` (and `rp_id`).
pub(crate) fn pin_token(
    h: &mut Harness,
    protocol: u8,
    permissions: u8,
    rp_id: Option<&str>,
) -> Vec<u8> {
    if !h.auth.pin.is_pin_set() {
        let s = Session::open(h, protocol);
        let mut padded = PIN.to_vec();
        padded.resize(64, 0);
        let new_pin_enc = s.encrypt(&padded);
        let (status, _, _) = h.ctap2(
            0x06,
            Some(Value::Map(vec![
                (int(1), int(protocol.into())),
                (int(2), int(3)),
                (int(3), s.platform_key.clone()),
                (int(4), bytes(&s.authenticate(&[&new_pin_enc]))),
                (int(5), bytes(&new_pin_enc)),
            ])),
        );
        assert_eq!(status, 0, "setPIN");
    }
    let s = Session::open(h, protocol);
    let pin_hash_enc = s.encrypt(&sha256(PIN)[..16]);
    let mut request = vec![
        (int(1), int(protocol.into())),
        (int(2), int(9)),
        (int(3), s.platform_key.clone()),
        (int(6), bytes(&pin_hash_enc)),
        (int(9), int(permissions.into())),
    ];
    if let Some(rp) = rp_id {
        request.push((int(10), text(rp)));
    }
    let (status, value, _) = h.ctap2(0x06, Some(Value::Map(request)));
    assert_eq!(status, 0, "getPinUvAuthTokenUsingPinWithPermissions");
    s.decrypt(map_bytes(value.as_ref().unwrap(), 2))
}

/// The hmac-secret getAssertion input for `salts` (32 or 64 bytes).
fn hmac_secret_input(s: &Session, salts: &[u8]) -> Value {
    let salt_enc = s.encrypt(salts);
    Value::Map(vec![
        (int(1), s.platform_key.clone()),
        (int(2), bytes(&salt_enc)),
        (int(3), bytes(&s.authenticate(&[&salt_enc]))),
        (int(4), int(s.protocol.into())),
    ])
}

fn extensions(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// A makeCredential response, parsed without assuming ES256.
struct Made {
    id: Vec<u8>,
    auth_data: Vec<u8>,
    flags: u8,
    cose: Value,
    extensions: Option<Value>,
    att_stmt: Value,
    large_blob_key: Option<Vec<u8>>,
}

fn mc(h: &mut Harness, request: Value) -> Result<Made, u8> {
    let (status, value, _) = h.ctap2(0x01, Some(request));
    if status != 0 {
        return Err(status);
    }
    let value = value.unwrap();
    let raw = map_bytes(&value, 2).to_vec();
    let flags = raw[32];
    assert_ne!(flags & 0x40, 0);
    let id_len = u16::from_be_bytes([raw[53], raw[54]]) as usize;
    let id = raw[55..55 + id_len].to_vec();
    let mut rest = &raw[55 + id_len..];
    let cose: Value = ciborium::from_reader(&mut rest).unwrap();
    let extensions = if flags & 0x80 != 0 {
        let e: Value = ciborium::from_reader(&mut rest).unwrap();
        Some(e)
    } else {
        None
    };
    assert!(rest.is_empty(), "trailing authData bytes");
    Ok(Made {
        id,
        flags,
        cose,
        extensions,
        att_stmt: map_int(&value, 3).unwrap().clone(),
        large_blob_key: map_int(&value, 5).map(|v| v.as_bytes().unwrap().clone()),
        auth_data: raw,
    })
}

/// A getAssertion (or getNextAssertion) response.
struct Asserted {
    id: Vec<u8>,
    auth_data: Vec<u8>,
    signature: Vec<u8>,
    extensions: Option<Value>,
    large_blob_key: Option<Vec<u8>>,
    number_of_credentials: Option<Value>,
}

fn parse_assertion(value: &Value) -> Asserted {
    let raw = map_bytes(value, 2).to_vec();
    let mut rest = &raw[37..];
    let extensions = if raw[32] & 0x80 != 0 {
        let e: Value = ciborium::from_reader(&mut rest).unwrap();
        Some(e)
    } else {
        None
    };
    assert!(rest.is_empty());
    Asserted {
        id: map_text(map_int(value, 1).unwrap(), "id")
            .unwrap()
            .as_bytes()
            .unwrap()
            .clone(),
        signature: map_bytes(value, 3).to_vec(),
        extensions,
        large_blob_key: map_int(value, 7).map(|v| v.as_bytes().unwrap().clone()),
        number_of_credentials: map_int(value, 5).cloned(),
        auth_data: raw,
    }
}

fn ga_request(
    cdh: &[u8; 32],
    allow: &[&[u8]],
    ext: Option<Value>,
    pin: Option<(u8, &[u8])>,
) -> Value {
    let Value::Map(mut m) = ga(RP, cdh, allow, None) else {
        unreachable!()
    };
    if let Some(ext) = ext {
        m.push((int(4), ext));
    }
    if let Some((protocol, token)) = pin {
        m.push((int(6), bytes(&mac(protocol, token, &[cdh]))));
        m.push((int(7), int(protocol.into())));
    }
    Value::Map(m)
}

fn assert_ok(h: &mut Harness, request: Value) -> Result<Asserted, u8> {
    let (status, value, _) = h.get_assertion(request);
    if status != 0 {
        return Err(status);
    }
    Ok(parse_assertion(&value.unwrap()))
}

fn ext_value<'a>(ext: &'a Option<Value>, name: &str) -> Option<&'a Value> {
    ext.as_ref().and_then(|e| map_text(e, name))
}

fn with_pin(mc: Mc, protocol: u8, token: &[u8]) -> Mc {
    let param = mac(protocol, token, &[&mc.cdh]);
    mc.with(8, bytes(&param)).with(9, int(protocol.into()))
}

// ---------------------------------------------------------------- hmac-secret

/// Decrypted hmac-secret output of one assertion.
fn hmac_output(
    h: &mut Harness,
    protocol: u8,
    id: &[u8],
    salts: &[u8],
    pin: Option<&[u8]>,
) -> Vec<u8> {
    let s = Session::open(h, protocol);
    let cdh = client_data_hash("hmac");
    let request = ga_request(
        &cdh,
        &[id],
        Some(extensions(vec![(
            "hmac-secret",
            hmac_secret_input(&s, salts),
        )])),
        pin.map(|t| (protocol, t)),
    );
    let a = assert_ok(h, request).unwrap();
    let enc = ext_value(&a.extensions, "hmac-secret")
        .expect("hmac-secret output")
        .as_bytes()
        .unwrap()
        .clone();
    let expected_len = salts.len() + if protocol == 2 { 16 } else { 0 };
    assert_eq!(enc.len(), expected_len);
    s.decrypt(&enc)
}

/// A non-resident credential for RP made with hmac-secret: true.
fn make_hmac_secret_credential(h: &mut Harness) -> Made {
    mc(
        h,
        Mc::new(RP, b"u")
            .with(6, extensions(vec![("hmac-secret", Value::Bool(true))]))
            .build(),
    )
    .unwrap()
}

#[test]
fn hmac_secret_outputs_are_deterministic_per_salt_and_protocol_independent() {
    let mut h = Harness::new();
    let made = make_hmac_secret_credential(&mut h);
    assert_eq!(
        ext_value(&made.extensions, "hmac-secret"),
        Some(&Value::Bool(true))
    );
    let salt1 = [0x11u8; 32];
    let salt2 = [0x22u8; 32];
    let mut firsts = vec![];
    for protocol in [1u8, 2] {
        let out1 = hmac_output(&mut h, protocol, &made.id, &salt1, None);
        assert_eq!(out1.len(), 32);
        assert_eq!(out1, hmac_output(&mut h, protocol, &made.id, &salt1, None));
        let out2 = hmac_output(&mut h, protocol, &made.id, &salt2, None);
        assert_ne!(out1, out2);
        let both = hmac_output(&mut h, protocol, &made.id, &[salt1, salt2].concat(), None);
        assert_eq!(both.len(), 64);
        assert_eq!(both[..32], out1[..]);
        assert_eq!(both[32..], out2[..]);
        firsts.push(out1);
    }
    // The output is HMAC(CredRandom, salt): the protocol only changes transport.
    assert_eq!(firsts[0], firsts[1]);
    // It survives a power cycle (new key agreement keys, same credential).
    let mut h = h.reopen();
    assert_eq!(hmac_output(&mut h, 2, &made.id, &salt1, None), firsts[0]);
}

#[test]
fn hmac_secret_uv_and_non_uv_outputs_differ() {
    let mut h = Harness::new();
    let made = make_hmac_secret_credential(&mut h);
    let salt = [0x33u8; 32];
    let without_uv = hmac_output(&mut h, 2, &made.id, &salt, None);
    let token = pin_token(&mut h, 2, 0x02, Some(RP));
    let with_uv = hmac_output(&mut h, 2, &made.id, &salt, Some(&token));
    assert_ne!(without_uv, with_uv);
    let token = pin_token(&mut h, 1, 0x02, Some(RP));
    assert_eq!(
        hmac_output(&mut h, 1, &made.id, &salt, Some(&token)),
        with_uv
    );
}

#[test]
fn hmac_secret_with_builtin_uv_uses_the_uv_cred_random() {
    let mut h = Harness::with_config(Config {
        builtin_uv: true,
        ..Config::default()
    });
    let made = make_hmac_secret_credential(&mut h);
    let salt = [0x44u8; 32];
    let without_uv = hmac_output(&mut h, 2, &made.id, &salt, None);
    let token = pin_token(&mut h, 2, 0x02, Some(RP));
    let with_pin_uv = hmac_output(&mut h, 2, &made.id, &salt, Some(&token));
    // The same request with options.uv = true (built-in UV) instead of a token.
    let s = Session::open(&mut h, 2);
    let cdh = client_data_hash("hmac");
    let Value::Map(mut m) = ga_request(
        &cdh,
        &[&made.id],
        Some(extensions(vec![(
            "hmac-secret",
            hmac_secret_input(&s, &salt),
        )])),
        None,
    ) else {
        unreachable!()
    };
    m.push((int(5), Value::Map(vec![(text("uv"), Value::Bool(true))])));
    let a = assert_ok(&mut h, Value::Map(m)).unwrap();
    assert_eq!(a.auth_data[32] & 0x05, 0x05, "UP and UV");
    let enc = ext_value(&a.extensions, "hmac-secret")
        .unwrap()
        .as_bytes()
        .unwrap();
    let with_builtin_uv = s.decrypt(enc);
    assert_eq!(with_builtin_uv, with_pin_uv);
    assert_ne!(with_builtin_uv, without_uv);
}

#[test]
fn hmac_secret_rejects_bad_inputs() {
    let mut h = Harness::new();
    let made = make_hmac_secret_credential(&mut h);
    let cdh = client_data_hash("bad");
    for protocol in [1u8, 2] {
        let s = Session::open(&mut h, protocol);
        let Value::Map(mut input) = hmac_secret_input(&s, &[1; 32]) else {
            unreachable!()
        };
        // A wrong saltAuth.
        let mut bad_auth = input.clone();
        let mut tag = bad_auth[2].1.as_bytes().unwrap().clone();
        tag[0] ^= 1;
        bad_auth[2].1 = bytes(&tag);
        let req = ga_request(
            &cdh,
            &[&made.id],
            Some(extensions(vec![("hmac-secret", Value::Map(bad_auth))])),
            None,
        );
        assert_eq!(assert_ok(&mut h, req).err(), Some(0x33), "bad saltAuth");
        // An unsupported protocol.
        input[3].1 = int(3);
        let req = ga_request(
            &cdh,
            &[&made.id],
            Some(extensions(vec![("hmac-secret", Value::Map(input))])),
            None,
        );
        assert_eq!(assert_ok(&mut h, req).err(), Some(0x02), "protocol 3");
        // A salt of the wrong length (48 bytes), correctly authenticated.
        let req = ga_request(
            &cdh,
            &[&made.id],
            Some(extensions(vec![(
                "hmac-secret",
                hmac_secret_input(&s, &[1; 48]),
            )])),
            None,
        );
        assert_eq!(assert_ok(&mut h, req).err(), Some(0x03), "48-byte salt");
    }
}

#[test]
fn hmac_secret_refuses_a_protocol_the_profile_does_not_have() {
    // A CTAP 2.0 key has protocol one only: hmac-secret naming protocol two
    // is INVALID_PARAMETER, as in clientPIN (not PIN_AUTH_INVALID, which
    // says the platform's secret was wrong).
    let mut config = Config {
        aaguid: AAGUID,
        ..Config::default()
    };
    crate::profile::builtin::CTAP2_0.apply(&mut config);
    let mut h = Harness::with_config(config);
    let made = make_hmac_secret_credential(&mut h);
    let cdh = client_data_hash("protocol");
    let request = |s: &Session| {
        let input = hmac_secret_input(s, &[1; 32]);
        ga_request(
            &cdh,
            &[&made.id],
            Some(extensions(vec![("hmac-secret", input)])),
            None,
        )
    };
    let two = Session::open_asking(&mut h, 1, 2);
    assert_eq!(
        assert_ok(&mut h, request(&two)).err(),
        Some(0x02),
        "protocol 2"
    );
    let one = Session::open(&mut h, 1);
    let asserted = assert_ok(&mut h, request(&one)).unwrap();
    assert!(ext_value(&asserted.extensions, "hmac-secret").is_some());
}

#[test]
fn hmac_secret_only_for_credentials_made_with_it_and_false_is_accepted() {
    let mut h = Harness::new();
    // Firefox sends hmac-secret: false unasked: accepted, no output, no ED.
    let made = mc(
        &mut h,
        Mc::new(RP, b"u")
            .with(6, extensions(vec![("hmac-secret", Value::Bool(false))]))
            .build(),
    )
    .unwrap();
    assert_eq!(made.flags & 0x80, 0);
    assert!(made.extensions.is_none());
    let s = Session::open(&mut h, 2);
    let req = ga_request(
        &client_data_hash("x"),
        &[&made.id],
        Some(extensions(vec![(
            "hmac-secret",
            hmac_secret_input(&s, &[1; 32]),
        )])),
        None,
    );
    let a = assert_ok(&mut h, req).unwrap();
    assert!(a.extensions.is_none());
    // Unknown extensions are ignored.
    let made = mc(
        &mut h,
        Mc::new(RP, b"u")
            .with(
                6,
                extensions(vec![("unknownExt", Value::Array(vec![int(1)]))]),
            )
            .build(),
    )
    .unwrap();
    assert!(made.extensions.is_none());
}

#[test]
fn hmac_secret_applies_to_get_next_assertion() {
    let mut h = Harness::new();
    let mut ids = vec![];
    for user in [b"a", b"b"] {
        let m = mc(
            &mut h,
            Mc::new(RP, user)
                .rk()
                .with(6, extensions(vec![("hmac-secret", Value::Bool(true))]))
                .build(),
        )
        .unwrap();
        ids.push(m.id);
    }
    let s = Session::open(&mut h, 2);
    let salt = [7u8; 32];
    let req = ga_request(
        &client_data_hash("n"),
        &[],
        Some(extensions(vec![(
            "hmac-secret",
            hmac_secret_input(&s, &salt),
        )])),
        None,
    );
    let first = assert_ok(&mut h, req).unwrap();
    assert_eq!(first.number_of_credentials, Some(int(2)));
    let (status, value, _) = h.ctap2(0x08, None);
    assert_eq!(status, 0);
    let second = parse_assertion(&value.unwrap());
    let out_first = s.decrypt(
        ext_value(&first.extensions, "hmac-secret")
            .unwrap()
            .as_bytes()
            .unwrap(),
    );
    let out_second = s.decrypt(
        ext_value(&second.extensions, "hmac-secret")
            .unwrap()
            .as_bytes()
            .unwrap(),
    );
    assert_ne!(first.id, second.id);
    assert_ne!(out_first, out_second, "per-credential CredRandom");
    // Each equals what an allowList assertion of that credential gives.
    assert_eq!(hmac_output(&mut h, 2, &first.id, &salt, None), out_first);
    assert_eq!(hmac_output(&mut h, 2, &second.id, &salt, None), out_second);
}

#[test]
fn hmac_secret_mc_matches_get_assertion() {
    let mut h = Harness::new();
    let token = pin_token(&mut h, 2, 0x03, Some(RP));
    let s = Session::open(&mut h, 2);
    let salts = [[1u8; 32], [2u8; 32]].concat();
    let request = with_pin(
        Mc::new(RP, b"u").with(
            6,
            extensions(vec![
                ("hmac-secret", Value::Bool(true)),
                ("hmac-secret-mc", hmac_secret_input(&s, &salts)),
            ]),
        ),
        2,
        &token,
    )
    .build();
    let made = mc(&mut h, request).unwrap();
    assert_ne!(made.flags & 0x04, 0, "UV");
    let enc = ext_value(&made.extensions, "hmac-secret-mc")
        .unwrap()
        .as_bytes()
        .unwrap();
    let at_mc = s.decrypt(enc);
    let token = pin_token(&mut h, 2, 0x02, Some(RP));
    assert_eq!(
        hmac_output(&mut h, 2, &made.id, &salts, Some(&token)),
        at_mc
    );
}

// ---------------------------------------------------------------- credProtect

#[test]
fn cred_protect_levels_are_enforced() {
    let mut h = Harness::new();
    let mut made = vec![];
    for (level, rk) in [(1, true), (2, true), (3, true), (3, false), (2, false)] {
        let mut m = Mc::new(RP, &[level, u8::from(rk)]);
        if rk {
            m = m.rk();
        }
        let m = mc(
            &mut h,
            m.with(6, extensions(vec![("credProtect", int(level.into()))]))
                .build(),
        )
        .unwrap();
        assert_eq!(
            ext_value(&m.extensions, "credProtect"),
            Some(&int(level.into()))
        );
        made.push((level, rk, m.id));
    }
    let cdh = client_data_hash("cp");
    // Without UV, discoverable: only the level 1 credential.
    let a = assert_ok(&mut h, ga_request(&cdh, &[], None, None)).unwrap();
    assert_eq!(a.id, made[0].2);
    assert_eq!(a.number_of_credentials, None);
    // Without UV, by allowList: levels 1 and 2 yes, 3 never.
    for (level, _, id) in &made {
        let result = assert_ok(&mut h, ga_request(&cdh, &[id], None, None));
        if *level == 3 {
            assert_eq!(result.err(), Some(0x2E), "level 3 needs UV");
        } else {
            assert_eq!(result.unwrap().id, *id);
        }
    }
    // A level 3 credential in an excludeList does not exclude without UV.
    let exclude = Mc::new(RP, b"other").exclude(&made[3].2).build();
    assert!(mc(&mut h, exclude).is_ok());
    // With UV, everything is available.
    let token = pin_token(&mut h, 2, 0x02, Some(RP));
    let a = assert_ok(&mut h, ga_request(&cdh, &[], None, Some((2, &token)))).unwrap();
    assert_eq!(a.number_of_credentials, Some(int(3)));
    for (_, _, id) in &made {
        let token = pin_token(&mut h, 2, 0x02, Some(RP));
        let a = assert_ok(&mut h, ga_request(&cdh, &[id], None, Some((2, &token)))).unwrap();
        assert_eq!(a.id, *id);
    }
    // With UV a level 3 credential does exclude.
    let token = pin_token(&mut h, 2, 0x01, Some(RP));
    let exclude = with_pin(Mc::new(RP, b"other").exclude(&made[3].2), 2, &token).build();
    assert_eq!(mc(&mut h, exclude).err(), Some(0x19));
}

#[test]
fn u2f_cannot_use_eddsa_or_uv_required_credentials() {
    let mut h = Harness::new();
    let app = sha256(RP.as_bytes());
    let eddsa = mc(
        &mut h,
        Mc {
            algs: vec![-8],
            ..Mc::new(RP, b"u")
        }
        .build(),
    )
    .unwrap();
    let protected = mc(
        &mut h,
        Mc::new(RP, b"u")
            .with(6, extensions(vec![("credProtect", int(3))]))
            .build(),
    )
    .unwrap();
    let plain = mc(&mut h, Mc::new(RP, b"u").build()).unwrap();
    let check = |h: &mut Harness, id: &[u8]| {
        // U2F authenticate, check-only: 0x6985 means "ours", 0x6A80 "not ours".
        let data = [&[0u8; 32][..], &app, &[id.len() as u8], id].concat();
        let mut apdu = vec![0x00, 0x02, 0x07, 0x00, data.len() as u8];
        apdu.extend_from_slice(&data);
        apdu.push(0x00);
        h.u2f(&apdu).1
    };
    assert_eq!(check(&mut h, &plain.id), 0x6985);
    assert_eq!(check(&mut h, &eddsa.id), 0x6A80);
    assert_eq!(check(&mut h, &protected.id), 0x6A80);
}

// ---------------------------------------------------------------- credBlob

#[test]
fn cred_blob_round_trip_and_limits() {
    let mut h = Harness::new();
    let blob = [0xB1u8; 32];
    let made = mc(
        &mut h,
        Mc::new(RP, b"u")
            .rk()
            .with(6, extensions(vec![("credBlob", bytes(&blob))]))
            .build(),
    )
    .unwrap();
    assert_eq!(
        ext_value(&made.extensions, "credBlob"),
        Some(&Value::Bool(true))
    );
    let too_long = mc(
        &mut h,
        Mc::new(RP, b"v")
            .rk()
            .with(6, extensions(vec![("credBlob", bytes(&[1; 33]))]))
            .build(),
    )
    .unwrap();
    assert_eq!(
        ext_value(&too_long.extensions, "credBlob"),
        Some(&Value::Bool(false))
    );
    let non_rk = mc(
        &mut h,
        Mc::new(RP, b"w")
            .with(6, extensions(vec![("credBlob", bytes(&[1; 8]))]))
            .build(),
    )
    .unwrap();
    assert_eq!(
        ext_value(&non_rk.extensions, "credBlob"),
        Some(&Value::Bool(false))
    );

    let get = extensions(vec![("credBlob", Value::Bool(true))]);
    let cdh = client_data_hash("blob");
    for (id, expected) in [
        (&made.id, blob.to_vec()),
        (&too_long.id, vec![]),
        (&non_rk.id, vec![]),
    ] {
        let a = assert_ok(&mut h, ga_request(&cdh, &[id], Some(get.clone()), None)).unwrap();
        assert_eq!(
            ext_value(&a.extensions, "credBlob"),
            Some(&bytes(&expected))
        );
    }
    // Survives a power cycle; not returned unless asked.
    let mut h = h.reopen();
    let a = assert_ok(&mut h, ga_request(&cdh, &[&made.id], Some(get), None)).unwrap();
    assert_eq!(ext_value(&a.extensions, "credBlob"), Some(&bytes(&blob)));
    let a = assert_ok(&mut h, ga_request(&cdh, &[&made.id], None, None)).unwrap();
    assert!(a.extensions.is_none());
}

// ---------------------------------------------------------------- largeBlobKey

#[test]
fn large_blob_key_is_stable_per_credential() {
    let mut h = Harness::new();
    let lbk = extensions(vec![("largeBlobKey", Value::Bool(true))]);
    let a = mc(&mut h, Mc::new(RP, b"a").rk().with(6, lbk.clone()).build()).unwrap();
    let b = mc(&mut h, Mc::new(RP, b"b").rk().with(6, lbk.clone()).build()).unwrap();
    let key_a = a.large_blob_key.clone().unwrap();
    assert_eq!(key_a.len(), 32);
    assert_ne!(Some(key_a.clone()), b.large_blob_key);
    // Not an authData extension.
    assert!(a.extensions.is_none());
    let cdh = client_data_hash("lbk");
    let got = assert_ok(&mut h, ga_request(&cdh, &[&a.id], Some(lbk.clone()), None)).unwrap();
    assert_eq!(got.large_blob_key, Some(key_a.clone()));
    let got = assert_ok(&mut h, ga_request(&cdh, &[&a.id], None, None)).unwrap();
    assert_eq!(got.large_blob_key, None, "only when asked");
    // Without rk: INVALID_OPTION.
    assert_eq!(
        mc(&mut h, Mc::new(RP, b"c").with(6, lbk.clone()).build()).err(),
        Some(0x2C)
    );
    let mut h = h.reopen();
    let got = assert_ok(&mut h, ga_request(&cdh, &[&a.id], Some(lbk), None)).unwrap();
    assert_eq!(got.large_blob_key, Some(key_a));
}

// ---------------------------------------------------------------- minPinLength

#[test]
fn min_pin_length_only_for_listed_rp_ids() {
    let mut h = Harness::new();
    let ask = extensions(vec![("minPinLength", Value::Bool(true))]);
    let made = mc(&mut h, Mc::new(RP, b"u").with(6, ask.clone()).build()).unwrap();
    assert!(made.extensions.is_none(), "RP not listed");
    h.auth
        .pin
        .set_min_pin_length(&mut h.auth.platform.storage, Some(6), Some(&[RP]), false)
        .unwrap();
    let made = mc(&mut h, Mc::new(RP, b"u").with(6, ask.clone()).build()).unwrap();
    assert_eq!(ext_value(&made.extensions, "minPinLength"), Some(&int(6)));
    let other = mc(&mut h, Mc::new("other.example", b"u").with(6, ask).build()).unwrap();
    assert!(other.extensions.is_none());
}

#[test]
fn extension_outputs_are_canonically_ordered() {
    let mut h = Harness::new();
    h.auth
        .pin
        .set_min_pin_length(&mut h.auth.platform.storage, None, Some(&[RP]), false)
        .unwrap();
    let made = mc(
        &mut h,
        Mc::new(RP, b"u")
            .rk()
            .with(
                6,
                extensions(vec![
                    ("minPinLength", Value::Bool(true)),
                    ("hmac-secret", Value::Bool(true)),
                    ("credProtect", int(2)),
                    ("credBlob", bytes(b"x")),
                ]),
            )
            .build(),
    )
    .unwrap();
    let keys: Vec<_> = made
        .extensions
        .unwrap()
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_text().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        ["credBlob", "credProtect", "hmac-secret", "minPinLength"]
    );
}

// ---------------------------------------------------------------- EdDSA

fn ed25519_key(cose: &Value) -> ed25519_dalek::VerifyingKey {
    assert_eq!(map_int(cose, 1), Some(&int(1)), "kty OKP");
    assert_eq!(map_int(cose, 3), Some(&int(-8)), "alg EdDSA");
    assert_eq!(map_int(cose, -1), Some(&int(6)), "crv Ed25519");
    assert_eq!(cose.as_map().unwrap().len(), 4);
    ed25519_dalek::VerifyingKey::from_bytes(map_bytes(cose, -2).try_into().unwrap()).unwrap()
}

fn ed_verify(key: &ed25519_dalek::VerifyingKey, parts: &[&[u8]], sig: &[u8]) {
    let sig = ed25519_dalek::Signature::from_bytes(sig.try_into().expect("64-byte signature"));
    key.verify_strict(&parts.concat(), &sig)
        .expect("Ed25519 signature verifies");
}

#[test]
fn eddsa_follows_the_platform_preference() {
    let mut h = Harness::new();
    let request = Mc {
        algs: vec![-8, -7],
        ..Mc::new(RP, b"u")
    };
    let cdh = request.cdh;
    let made = mc(&mut h, request.rk().build()).unwrap();
    let key = ed25519_key(&made.cose);
    // Packed self attestation with alg -8.
    assert_eq!(map_text(&made.att_stmt, "alg"), Some(&int(-8)));
    assert!(map_text(&made.att_stmt, "x5c").is_none());
    ed_verify(
        &key,
        &[&made.auth_data, &cdh],
        map_text(&made.att_stmt, "sig").unwrap().as_bytes().unwrap(),
    );
    // Assertions (allowList and discoverable) verify too.
    let cdh = client_data_hash("ed");
    for allow in [vec![made.id.as_slice()], vec![]] {
        let a = assert_ok(&mut h, ga_request(&cdh, &allow, None, None)).unwrap();
        assert_eq!(a.id, made.id);
        ed_verify(&key, &[&a.auth_data, &cdh], &a.signature);
        let mut tampered = a.auth_data.clone();
        tampered[33] ^= 1;
        let sig = ed25519_dalek::Signature::from_bytes(a.signature.as_slice().try_into().unwrap());
        assert!(key
            .verify_strict(&[&tampered[..], &cdh].concat(), &sig)
            .is_err());
    }
    // [ES256, EdDSA] gives ES256.
    let made = mc(
        &mut h,
        Mc {
            algs: vec![-7, -8],
            ..Mc::new(RP, b"v")
        }
        .build(),
    )
    .unwrap();
    assert_eq!(map_int(&made.cose, 3), Some(&int(-7)));
    assert_eq!(map_text(&made.att_stmt, "alg"), Some(&int(-7)));
}

#[test]
fn eddsa_with_batch_attestation_signs_with_the_batch_key() {
    let (attestation, batch_vk) = batch_attestation();
    let mut h = Harness::with_config(Config {
        aaguid: AAGUID,
        attestation: Some(attestation),
        ..Config::default()
    });
    let request = Mc {
        algs: vec![-8],
        ..Mc::new(RP, b"u")
    };
    let cdh = request.cdh;
    let made = mc(&mut h, request.build()).unwrap();
    ed25519_key(&made.cose);
    assert_eq!(map_text(&made.att_stmt, "alg"), Some(&int(-7)));
    let sig = map_text(&made.att_stmt, "sig").unwrap().as_bytes().unwrap();
    verify(&batch_vk, &[&made.auth_data, &cdh], sig);
}

// ---------------------------------------------------------------- reset

#[test]
fn reset_replaces_extension_secrets_and_large_blobs() {
    let mut h = Harness::new();
    let lbk = extensions(vec![("largeBlobKey", Value::Bool(true))]);
    let before = mc(&mut h, Mc::new(RP, b"u").rk().with(6, lbk.clone()).build()).unwrap();
    super::super::large_blobs::tests::write_array(&mut h, &[0x81, 0x01], None);
    let (status, _, _) = h.ctap2(0x07, None);
    assert_eq!(status, 0);
    assert_eq!(
        super::super::large_blobs::tests::read_array(&mut h),
        super::super::large_blobs::initial_array().to_vec()
    );
    // The old credential is gone; a new one for the same user has a new key.
    let cdh = client_data_hash("r");
    assert_eq!(
        assert_ok(&mut h, ga_request(&cdh, &[&before.id], None, None)).err(),
        Some(0x2E)
    );
    let after = mc(&mut h, Mc::new(RP, b"u").rk().with(6, lbk).build()).unwrap();
    assert_ne!(before.large_blob_key, after.large_blob_key);
}
