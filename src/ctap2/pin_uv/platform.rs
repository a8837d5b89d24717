//! The platform side of PIN/UV auth for tests that drive the authenticator
//! through `App::handle`: authenticatorClientPIN requests built with ciborium,
//! and the shared secret, encryption and MACs done with the independent crypto
//! of [`crate::pin::tests`].

use std::string::String;
use std::vec;
use std::vec::Vec;

use ciborium::Value;

use crate::authenticator::testkit::*;
use crate::pin::tests::{cose_key, mac_for, Session};
use crate::test_platform::{seeded_rng, ChaCha20Rng};

/// The PIN most tests set.
pub const PIN: &str = "1234";

/// Permission bits, as the platform sends them.
pub use crate::pin::token::permission as perm;

/// A way to send CTAP2 commands to an authenticator: [`Harness`] calls
/// `App::handle` directly; the small-stack device tests go through CTAPHID.
pub trait Link {
    /// One CTAP2 command, presence granted if asked for: (status, the decoded
    /// CBOR, whether presence was needed).
    fn ctap2(&mut self, cmd: u8, params: Option<Value>) -> (u8, Option<Value>, bool);
}

impl Link for Harness {
    fn ctap2(&mut self, cmd: u8, params: Option<Value>) -> (u8, Option<Value>, bool) {
        Harness::ctap2(self, cmd, params)
    }
}

/// A platform talking to one authenticator with one PIN/UV auth protocol.
pub struct Platform {
    pub protocol: u8,
    rng: ChaCha20Rng,
}

/// A pinUvAuthToken as the platform holds it.
#[derive(Clone, Debug)]
pub struct Token {
    pub protocol: u8,
    pub value: Vec<u8>,
}

impl Token {
    /// The pinUvAuthParam over the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        mac_for(self.protocol, &self.value, parts)
    }
}

impl Platform {
    pub fn new(protocol: u8) -> Self {
        Platform {
            protocol,
            rng: seeded_rng(0x5EED + u64::from(protocol)),
        }
    }

    /// One authenticatorClientPIN call; returns the status and the response map.
    pub fn client_pin(
        &self,
        h: &mut impl Link,
        params: Vec<(Value, Value)>,
    ) -> (u8, Option<Value>) {
        let (status, value, needed) = h.ctap2(0x06, Some(Value::Map(params)));
        assert!(!needed, "clientPIN never waits for presence");
        (status, value)
    }

    fn base(&self, sub: u8) -> Vec<(Value, Value)> {
        vec![
            (int(1), int(self.protocol.into())),
            (int(2), int(sub.into())),
        ]
    }

    /// getKeyAgreement and the platform's half of the key agreement.
    pub fn session(&mut self, h: &mut impl Link) -> Session {
        let (status, value) = self.client_pin(h, self.base(2));
        assert_eq!(status, 0, "getKeyAgreement");
        let value = value.unwrap();
        let key = map_int(&value, 1).unwrap();
        assert_eq!(map_int(key, 3), Some(&int(-25)), "alg ECDH-ES+HKDF-256");
        Session::new(
            self.protocol,
            map_bytes(key, -2),
            map_bytes(key, -3),
            &mut self.rng,
        )
    }

    fn key_param(s: &Session) -> (Value, Value) {
        let (x, y) = s.key();
        (int(3), cose_key(&x, &y, -25))
    }

    /// getPINRetries: (retries, powerCycleState) or the error status.
    pub fn retries(&self, h: &mut impl Link) -> Result<(u8, bool), u8> {
        match self.client_pin(h, self.base(1)) {
            (0, Some(v)) => {
                let retries = u8::try_from(map_int(&v, 3).unwrap().as_integer().unwrap()).unwrap();
                let cycle = map_int(&v, 4).and_then(|v| v.as_bool()).unwrap_or(false);
                Ok((retries, cycle))
            }
            (status, _) => Err(status),
        }
    }

    /// setPIN.
    pub fn set_pin(&mut self, h: &mut impl Link, pin: &str) -> u8 {
        let s = self.session(h);
        let enc = s.new_pin_enc(pin.as_bytes());
        let mut params = self.base(3);
        params.push(Self::key_param(&s));
        params.push((int(4), bytes(&s.authenticate(&[&enc]))));
        params.push((int(5), bytes(&enc)));
        self.client_pin(h, params).0
    }

    /// changePIN.
    pub fn change_pin(&mut self, h: &mut impl Link, current: &str, new: &str) -> u8 {
        let s = self.session(h);
        let new_enc = s.new_pin_enc(new.as_bytes());
        let hash_enc = s.pin_hash_enc(current.as_bytes());
        let mut params = self.base(4);
        params.push(Self::key_param(&s));
        params.push((int(4), bytes(&s.authenticate(&[&new_enc, &hash_enc]))));
        params.push((int(5), bytes(&new_enc)));
        params.push((int(6), bytes(&hash_enc)));
        self.client_pin(h, params).0
    }

    /// getPinToken (0x05) when `permissions` is `None`, else
    /// getPinUvAuthTokenUsingPinWithPermissions (0x09) with an optional RP ID.
    pub fn token(
        &mut self,
        h: &mut impl Link,
        pin: &str,
        permissions: Option<u8>,
        rp_id: Option<&str>,
    ) -> Result<Token, u8> {
        let s = self.session(h);
        let mut params = self.base(if permissions.is_some() { 9 } else { 5 });
        params.push(Self::key_param(&s));
        params.push((int(6), bytes(&s.pin_hash_enc(pin.as_bytes()))));
        if let Some(p) = permissions {
            params.push((int(9), int(p.into())));
        }
        if let Some(rp) = rp_id {
            params.push((int(10), text(rp)));
        }
        self.issued_token(h, &s, params)
    }

    /// getPinUvAuthTokenUsingUvWithPermissions (0x06) with an optional RP ID.
    pub fn uv_token(
        &mut self,
        h: &mut impl Link,
        permissions: u8,
        rp_id: Option<&str>,
    ) -> Result<Token, u8> {
        let s = self.session(h);
        let mut params = self.base(6);
        params.push(Self::key_param(&s));
        params.push((int(9), int(permissions.into())));
        if let Some(rp) = rp_id {
            params.push((int(10), text(rp)));
        }
        self.issued_token(h, &s, params)
    }

    /// Sends a token request of session `s`; the decrypted token or the status.
    fn issued_token(
        &self,
        h: &mut impl Link,
        s: &Session,
        params: Vec<(Value, Value)>,
    ) -> Result<Token, u8> {
        match self.client_pin(h, params) {
            (0, Some(v)) => {
                let value = s.decrypt(map_bytes(&v, 2));
                assert_eq!(value.len(), 32);
                Ok(Token {
                    protocol: self.protocol,
                    value,
                })
            }
            (status, _) => Err(status),
        }
    }

    /// getUVRetries (0x07): uvRetries or the error status.
    pub fn uv_retries(&self, h: &mut impl Link) -> Result<u8, u8> {
        match self.client_pin(h, self.base(7)) {
            (0, Some(v)) => {
                Ok(u8::try_from(map_int(&v, 5).unwrap().as_integer().unwrap()).unwrap())
            }
            (status, _) => Err(status),
        }
    }

    /// A token with `permissions` for the test PIN, which must work.
    pub fn must_token(&mut self, h: &mut impl Link, permissions: u8, rp_id: Option<&str>) -> Token {
        self.token(h, PIN, Some(permissions), rp_id)
            .unwrap_or_else(|status| panic!("token refused: {status:#x}"))
    }
}

/// Adds pinUvAuthParam (`key`) and pinUvAuthProtocol (`key + 1`) computed over
/// the clientDataHash of a makeCredential (keys 8/9) or getAssertion (6/7) map.
pub fn with_token(mut request: Value, token: &Token, cdh: &[u8; 32], key: i64) -> Value {
    if let Value::Map(m) = &mut request {
        m.push((int(key), bytes(&token.mac(&[cdh]))));
        m.push((int(key + 1), int(token.protocol.into())));
    }
    request
}

/// A makeCredential request with a pinUvAuthParam from `token`.
pub fn mc_with(mc: &Mc, token: &Token) -> Value {
    with_token(mc.build(), token, &mc.cdh, 8)
}

/// A getAssertion request with a pinUvAuthParam from `token`.
pub fn ga_with(
    rp: &str,
    cdh: &[u8; 32],
    allow: &[&[u8]],
    up: Option<bool>,
    token: &Token,
) -> Value {
    with_token(ga(rp, cdh, allow, up), token, cdh, 6)
}

/// The user map of an assertion as (id, name, displayName).
pub fn user_fields(user: &Value) -> (Vec<u8>, Option<String>, Option<String>) {
    let field = |k: &str| map_text(user, k).map(|v| v.as_text().unwrap().into());
    (
        map_text(user, "id").unwrap().as_bytes().unwrap().clone(),
        field("name"),
        field("displayName"),
    )
}
