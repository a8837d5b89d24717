//! Helpers for driving an [`Authenticator`] through [`App::handle`] in tests,
//! with an independent CBOR decoder (ciborium) and signature verifier (p256).

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use ciborium::Value;
use p256::ecdsa::signature::Verifier;

use crate::app::{App, CallContext, Message, Outcome, Protocol};
use crate::authenticator::{Attestation, Authenticator, Config};
use crate::test_platform::{
    seeded_rng, ChaCha20Rng, MemoryStorage, PresenceScript, ScriptedPresence,
};

pub type TestAuthenticator = Authenticator<MemoryStorage, ScriptedPresence, ChaCha20Rng>;

pub const AAGUID: [u8; 16] = *b"ferrokey-testkit";

/// An authenticator on shared in-memory storage and scripted presence.
pub struct Harness {
    pub auth: TestAuthenticator,
    pub storage: MemoryStorage,
    pub presence: ScriptedPresence,
    pub config: Config,
    pub now_ms: u64,
    pub channel: u32,
    seed: u64,
}

/// A throwaway batch attestation key with a dummy certificate.
pub fn batch_attestation() -> (Attestation, p256::ecdsa::VerifyingKey) {
    let sk = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let vk = *sk.verifying_key();
    let mut certificate = heapless::Vec::new();
    certificate
        .extend_from_slice(b"\x30\x13\x02\x01\x01dummy-batch-cert")
        .unwrap();
    (
        Attestation {
            private_key: sk.to_bytes().into(),
            certificate,
        },
        vk,
    )
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config {
            aaguid: AAGUID,
            firmware_version: 0x0102,
            ..Config::default()
        })
    }

    pub fn with_config(config: Config) -> Self {
        Self::on_storage(MemoryStorage::new(), config, 1)
    }

    pub fn on_storage(storage: MemoryStorage, config: Config, seed: u64) -> Self {
        let presence = ScriptedPresence::new(PresenceScript::Approve);
        let platform = crate::platform::Platform {
            storage: storage.clone(),
            presence: presence.clone(),
            rng: seeded_rng(seed),
        };
        let auth = Authenticator::new(platform, config.clone()).unwrap();
        Harness {
            auth,
            storage,
            presence,
            config,
            now_ms: 1_000,
            channel: 7,
            seed,
        }
    }

    /// Simulates a crash (`kill -9`, power loss): the authenticator vanishes
    /// without its clean-stop work, and a new one starts on the same storage.
    pub fn crash(self) -> Self {
        let seed = self.seed + 1;
        let (storage, config) = (self.storage.clone(), self.config.clone());
        // Nothing of the old authenticator runs any more (no Drop).
        std::mem::forget(self.auth);
        Self::on_storage(storage, config, seed)
    }

    /// Simulates a power cycle: the authenticator stops cleanly (it is
    /// dropped first), then a new one starts on the same storage.
    pub fn reopen(self) -> Self {
        let Harness {
            auth,
            storage,
            config,
            seed,
            ..
        } = self;
        drop(auth);
        Self::on_storage(storage, config, seed + 1)
    }

    pub fn context(&self, up_granted: bool) -> CallContext {
        CallContext {
            now_ms: self.now_ms,
            up_granted,
            channel: self.channel,
        }
    }

    /// One raw call.
    pub fn raw(
        &mut self,
        protocol: Protocol,
        request: &[u8],
        up_granted: bool,
    ) -> (Outcome, Vec<u8>) {
        let mut response = Message::new();
        let ctx = self.context(up_granted);
        let outcome = self.auth.handle(protocol, request, ctx, &mut response);
        (outcome, response.to_vec())
    }

    /// A CTAP2 call the way the transport makes it: without presence first, and
    /// again with `up_granted` if the app asks for presence. Returns the status,
    /// the decoded CBOR (if any) and whether presence was needed.
    pub fn ctap2(&mut self, cmd: u8, params: Option<Value>) -> (u8, Option<Value>, bool) {
        let request = encode(cmd, params);
        let (outcome, response) = self.raw(Protocol::Cbor, &request, false);
        let (needed, response) = match outcome {
            Outcome::Response => (false, response),
            Outcome::NeedsPresence => {
                let (outcome, response) = self.raw(Protocol::Cbor, &request, true);
                assert_eq!(outcome, Outcome::Response, "asked for presence twice");
                (true, response)
            }
        };
        let (status, value) = decode_response(&response);
        (status, value, needed)
    }

    /// One CTAP2 call without presence granted.
    pub fn ctap2_once(&mut self, cmd: u8, params: Option<Value>) -> (Outcome, u8, Option<Value>) {
        let request = encode(cmd, params);
        let (outcome, response) = self.raw(Protocol::Cbor, &request, false);
        if outcome == Outcome::NeedsPresence {
            return (outcome, 0xFF, None);
        }
        let (status, value) = decode_response(&response);
        (outcome, status, value)
    }

    pub fn make_credential(&mut self, params: Value) -> MadeCredential {
        let cdh = map_bytes(&params, 1).to_vec();
        let (status, value, needed) = self.ctap2(0x01, Some(params));
        assert_eq!(status, 0, "makeCredential failed: {status:#x}");
        assert!(needed, "makeCredential must need presence");
        MadeCredential::parse(&value.unwrap(), &cdh)
    }

    pub fn get_assertion(&mut self, params: Value) -> (u8, Option<Value>, bool) {
        self.ctap2(0x02, Some(params))
    }

    /// A U2F APDU; returns (data, status word).
    pub fn u2f(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let (outcome, response) = self.raw(Protocol::Msg, apdu, false);
        assert_eq!(
            outcome,
            Outcome::Response,
            "U2F must never wait for presence"
        );
        assert!(response.len() >= 2);
        let (data, sw) = response.split_at(response.len() - 2);
        (data.to_vec(), u16::from_be_bytes([sw[0], sw[1]]))
    }
}

pub fn encode(cmd: u8, params: Option<Value>) -> Vec<u8> {
    let mut out = vec![cmd];
    if let Some(params) = params {
        ciborium::into_writer(&params, &mut out).unwrap();
    }
    out
}

pub fn decode_response(response: &[u8]) -> (u8, Option<Value>) {
    assert!(!response.is_empty(), "empty CTAP2 response");
    let status = response[0];
    if response.len() == 1 {
        return (status, None);
    }
    assert_eq!(status, 0, "error responses carry no data");
    let mut rest = &response[1..];
    let value: Value = ciborium::from_reader(&mut rest).unwrap();
    assert!(rest.is_empty(), "trailing bytes after CBOR");
    (status, Some(value))
}

pub fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

pub fn text(s: &str) -> Value {
    Value::Text(s.into())
}

pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

pub fn client_data_hash(tag: &str) -> [u8; 32] {
    sha256(tag.as_bytes())
}

pub fn get<'a>(value: &'a Value, key: &Value) -> Option<&'a Value> {
    value
        .as_map()
        .expect("a map")
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

pub fn map_int(value: &Value, key: i64) -> Option<&Value> {
    get(value, &int(key))
}

pub fn map_text<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    get(value, &text(key))
}

pub fn map_bytes(value: &Value, key: i64) -> &[u8] {
    map_int(value, key).unwrap().as_bytes().unwrap()
}

pub fn descriptor(id: &[u8]) -> Value {
    Value::Map(vec![
        (text("id"), bytes(id)),
        (text("type"), text("public-key")),
    ])
}

/// A makeCredential request.
pub struct Mc {
    pub cdh: [u8; 32],
    pub rp_id: String,
    pub user_id: Vec<u8>,
    pub user_name: Option<String>,
    pub algs: Vec<i64>,
    pub exclude: Vec<Vec<u8>>,
    pub options: Vec<(String, bool)>,
    pub extra: Vec<(Value, Value)>,
}

use std::string::String;

impl Mc {
    pub fn new(rp_id: &str, user_id: &[u8]) -> Self {
        Mc {
            cdh: client_data_hash("make-credential"),
            rp_id: rp_id.into(),
            user_id: user_id.to_vec(),
            user_name: Some("alice".into()),
            algs: vec![-7],
            exclude: vec![],
            options: vec![],
            extra: vec![],
        }
    }

    pub fn rk(mut self) -> Self {
        self.options.push(("rk".into(), true));
        self
    }

    pub fn option(mut self, name: &str, value: bool) -> Self {
        self.options.push((name.into(), value));
        self
    }

    pub fn exclude(mut self, id: &[u8]) -> Self {
        self.exclude.push(id.to_vec());
        self
    }

    pub fn with(mut self, key: i64, value: Value) -> Self {
        self.extra.push((int(key), value));
        self
    }

    pub fn build(&self) -> Value {
        let mut user = vec![(text("id"), bytes(&self.user_id))];
        if let Some(name) = &self.user_name {
            user.push((text("name"), text(name)));
            user.push((text("displayName"), text(&std::format!("{name} display"))));
        }
        let mut m = vec![
            (int(1), bytes(&self.cdh)),
            (
                int(2),
                Value::Map(vec![
                    (text("id"), text(&self.rp_id)),
                    (text("name"), text("RP")),
                ]),
            ),
            (int(3), Value::Map(user)),
            (
                int(4),
                Value::Array(
                    self.algs
                        .iter()
                        .map(|&a| {
                            Value::Map(vec![
                                (text("alg"), int(a)),
                                (text("type"), text("public-key")),
                            ])
                        })
                        .collect(),
                ),
            ),
        ];
        if !self.exclude.is_empty() {
            m.push((
                int(5),
                Value::Array(self.exclude.iter().map(|id| descriptor(id)).collect()),
            ));
        }
        if !self.options.is_empty() {
            m.push((
                int(7),
                Value::Map(
                    self.options
                        .iter()
                        .map(|(k, v)| (text(k), Value::Bool(*v)))
                        .collect(),
                ),
            ));
        }
        m.extend(self.extra.iter().cloned());
        Value::Map(m)
    }
}

/// A getAssertion request.
pub fn ga(rp_id: &str, cdh: &[u8; 32], allow: &[&[u8]], up: Option<bool>) -> Value {
    let mut m = vec![(int(1), text(rp_id)), (int(2), bytes(cdh))];
    if !allow.is_empty() {
        m.push((
            int(3),
            Value::Array(allow.iter().map(|id| descriptor(id)).collect()),
        ));
    }
    if let Some(up) = up {
        m.push((int(5), Value::Map(vec![(text("up"), Value::Bool(up))])));
    }
    Value::Map(m)
}

/// authenticatorData parsed by hand.
#[derive(Debug, Clone)]
pub struct AuthData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    pub aaguid: Option<[u8; 16]>,
    pub credential_id: Option<Vec<u8>>,
    pub public_key: Option<p256::ecdsa::VerifyingKey>,
    pub rest: Vec<u8>,
}

pub fn parse_auth_data(data: &[u8]) -> AuthData {
    assert!(data.len() >= 37);
    let mut parsed = AuthData {
        rp_id_hash: data[..32].try_into().unwrap(),
        flags: data[32],
        sign_count: u32::from_be_bytes(data[33..37].try_into().unwrap()),
        aaguid: None,
        credential_id: None,
        public_key: None,
        rest: vec![],
    };
    let mut rest = &data[37..];
    if parsed.flags & 0x40 != 0 {
        parsed.aaguid = Some(rest[..16].try_into().unwrap());
        let len = u16::from_be_bytes([rest[16], rest[17]]) as usize;
        parsed.credential_id = Some(rest[18..18 + len].to_vec());
        rest = &rest[18 + len..];
        let cose: Value = ciborium::from_reader(&mut rest).unwrap();
        assert_eq!(map_int(&cose, 1), Some(&int(2)), "kty EC2");
        assert_eq!(map_int(&cose, 3), Some(&int(-7)), "alg ES256");
        assert_eq!(map_int(&cose, -1), Some(&int(1)), "crv P-256");
        assert_eq!(cose.as_map().unwrap().len(), 5);
        let x = map_bytes(&cose, -2);
        let y = map_bytes(&cose, -3);
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(x);
        sec1.extend_from_slice(y);
        parsed.public_key = Some(p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap());
    }
    parsed.rest = rest.to_vec();
    parsed
}

/// Verifies a DER ES256 signature over the concatenation of `parts`.
pub fn verify(key: &p256::ecdsa::VerifyingKey, parts: &[&[u8]], der: &[u8]) {
    let message: Vec<u8> = parts.concat();
    let sig = p256::ecdsa::Signature::from_der(der).expect("DER signature");
    key.verify(&message, &sig).expect("signature verifies");
}

/// A credential made in a test.
#[derive(Debug, Clone)]
pub struct MadeCredential {
    pub id: Vec<u8>,
    pub public_key: p256::ecdsa::VerifyingKey,
    pub auth_data: AuthData,
    pub raw_auth_data: Vec<u8>,
    pub fmt: String,
    pub att_stmt: Value,
}

impl MadeCredential {
    pub fn parse(value: &Value, cdh: &[u8]) -> Self {
        let fmt = map_int(value, 1).unwrap().as_text().unwrap().to_string();
        let raw = map_bytes(value, 2).to_vec();
        let att_stmt = map_int(value, 3).expect("attStmt").clone();
        let auth_data = parse_auth_data(&raw);
        let public_key = auth_data.public_key.unwrap();
        // Self attestation verifies with the credential key.
        if fmt == "packed" && map_text(&att_stmt, "x5c").is_none() {
            assert_eq!(map_text(&att_stmt, "alg"), Some(&int(-7)));
            let sig = map_text(&att_stmt, "sig").unwrap().as_bytes().unwrap();
            verify(&public_key, &[&raw, cdh], sig);
        }
        MadeCredential {
            id: auth_data.credential_id.clone().unwrap(),
            public_key,
            auth_data,
            raw_auth_data: raw,
            fmt,
            att_stmt,
        }
    }
}

/// A parsed getAssertion response, with its signature verified against `key`.
#[derive(Debug)]
pub struct Assertion {
    pub credential_id: Vec<u8>,
    pub auth_data: AuthData,
    pub user: Option<Value>,
    pub number_of_credentials: Option<u64>,
}

pub fn check_assertion(
    value: &Value,
    cdh: &[u8; 32],
    key_for: impl Fn(&[u8]) -> p256::ecdsa::VerifyingKey,
) -> Assertion {
    let credential = map_int(value, 1).unwrap();
    assert_eq!(map_text(credential, "type"), Some(&text("public-key")));
    let id = map_text(credential, "id")
        .unwrap()
        .as_bytes()
        .unwrap()
        .clone();
    let raw = map_bytes(value, 2);
    let sig = map_bytes(value, 3);
    verify(&key_for(&id), &[raw, cdh], sig);
    let auth_data = parse_auth_data(raw);
    assert_eq!(auth_data.flags & 0x40, 0, "no attested data in assertions");
    assert!(auth_data.rest.is_empty());
    Assertion {
        credential_id: id,
        auth_data,
        user: map_int(value, 4).cloned(),
        number_of_credentials: map_int(value, 5)
            .map(|v| u64::try_from(v.as_integer().unwrap()).unwrap()),
    }
}
