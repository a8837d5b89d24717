//! CTAP2 from the platform's side: the [`Ctap2`] trait (any way of sending a
//! command: the CTAPHID client over USB/IP or hidraw, or an in-process
//! authenticator), request builders, and response parsers that verify every
//! signature with a key the test obtained independently.

use ciborium::Value;
use p256::ecdsa::signature::Verifier;
use sha2::{Digest, Sha256};

use crate::cbor::{bytes, decode, decode_prefix, encode, get, get_bytes, get_text, int, text};
use crate::ctaphid_client::{ClientError, CtapHidClient, ReportTransport};
use crate::pin::Token;

/// CTAP2 command bytes.
pub mod cmd {
    /// authenticatorMakeCredential.
    pub const MAKE_CREDENTIAL: u8 = 0x01;
    /// authenticatorGetAssertion.
    pub const GET_ASSERTION: u8 = 0x02;
    /// authenticatorGetInfo.
    pub const GET_INFO: u8 = 0x04;
    /// authenticatorClientPIN.
    pub const CLIENT_PIN: u8 = 0x06;
    /// authenticatorReset.
    pub const RESET: u8 = 0x07;
    /// authenticatorGetNextAssertion.
    pub const GET_NEXT_ASSERTION: u8 = 0x08;
    /// authenticatorCredentialManagement.
    pub const CREDENTIAL_MANAGEMENT: u8 = 0x0A;
    /// authenticatorSelection.
    pub const SELECTION: u8 = 0x0B;
    /// authenticatorLargeBlobs.
    pub const LARGE_BLOBS: u8 = 0x0C;
    /// authenticatorConfig.
    pub const CONFIG: u8 = 0x0D;
}

/// CTAP status codes (CTAP 2.1 §8.2) the tests name.
pub mod status {
    /// CTAP2_OK.
    pub const OK: u8 = 0x00;
    /// CTAP1_ERR_INVALID_PARAMETER.
    pub const INVALID_PARAMETER: u8 = 0x02;
    /// CTAP1_ERR_INVALID_LENGTH.
    pub const INVALID_LENGTH: u8 = 0x03;
    /// CTAP2_ERR_CBOR_UNEXPECTED_TYPE.
    pub const CBOR_UNEXPECTED_TYPE: u8 = 0x11;
    /// CTAP2_ERR_INVALID_CBOR.
    pub const INVALID_CBOR: u8 = 0x12;
    /// CTAP2_ERR_MISSING_PARAMETER.
    pub const MISSING_PARAMETER: u8 = 0x14;
    /// CTAP2_ERR_CREDENTIAL_EXCLUDED.
    pub const CREDENTIAL_EXCLUDED: u8 = 0x19;
    /// CTAP2_ERR_UNSUPPORTED_ALGORITHM.
    pub const UNSUPPORTED_ALGORITHM: u8 = 0x26;
    /// CTAP2_ERR_OPERATION_DENIED.
    pub const OPERATION_DENIED: u8 = 0x27;
    /// CTAP2_ERR_KEY_STORE_FULL.
    pub const KEY_STORE_FULL: u8 = 0x28;
    /// CTAP2_ERR_UNSUPPORTED_OPTION.
    pub const UNSUPPORTED_OPTION: u8 = 0x2B;
    /// CTAP2_ERR_INVALID_OPTION.
    pub const INVALID_OPTION: u8 = 0x2C;
    /// CTAP2_ERR_KEEPALIVE_CANCEL.
    pub const KEEPALIVE_CANCEL: u8 = 0x2D;
    /// CTAP2_ERR_NO_CREDENTIALS.
    pub const NO_CREDENTIALS: u8 = 0x2E;
    /// CTAP2_ERR_USER_ACTION_TIMEOUT.
    pub const USER_ACTION_TIMEOUT: u8 = 0x2F;
    /// CTAP2_ERR_NOT_ALLOWED.
    pub const NOT_ALLOWED: u8 = 0x30;
    /// CTAP2_ERR_PIN_INVALID.
    pub const PIN_INVALID: u8 = 0x31;
    /// CTAP2_ERR_PIN_BLOCKED.
    pub const PIN_BLOCKED: u8 = 0x32;
    /// CTAP2_ERR_PIN_AUTH_INVALID.
    pub const PIN_AUTH_INVALID: u8 = 0x33;
    /// CTAP2_ERR_PIN_AUTH_BLOCKED.
    pub const PIN_AUTH_BLOCKED: u8 = 0x34;
    /// CTAP2_ERR_PIN_NOT_SET.
    pub const PIN_NOT_SET: u8 = 0x35;
    /// CTAP2_ERR_PUAT_REQUIRED.
    pub const PUAT_REQUIRED: u8 = 0x36;
    /// CTAP2_ERR_PIN_POLICY_VIOLATION.
    pub const PIN_POLICY_VIOLATION: u8 = 0x37;
    /// CTAP2_ERR_REQUEST_TOO_LARGE.
    pub const REQUEST_TOO_LARGE: u8 = 0x39;
    /// CTAP2_ERR_INTEGRITY_FAILURE.
    pub const INTEGRITY_FAILURE: u8 = 0x3D;
    /// CTAP2_ERR_UV_BLOCKED.
    pub const UV_BLOCKED: u8 = 0x3C;
    /// CTAP2_ERR_UV_INVALID.
    pub const UV_INVALID: u8 = 0x3F;
    /// CTAP2_ERR_UNAUTHORIZED_PERMISSION.
    pub const UNAUTHORIZED_PERMISSION: u8 = 0x40;
    /// CTAP1_ERR_OTHER.
    pub const OTHER: u8 = 0x7F;
}

/// Anything that carries one CTAP2 command and its answer.
pub trait Ctap2 {
    /// Sends command byte `command` followed by `body` (CBOR, may be empty);
    /// returns the status byte and the bytes after it. Transport failures
    /// (a dead server, a timeout) are errors, distinct from error statuses.
    fn call(&mut self, command: u8, body: &[u8]) -> Result<(u8, Vec<u8>), ClientError>;

    /// [`Ctap2::call`] with a CBOR value; the body decoded (None when empty).
    fn ctap2(&mut self, command: u8, params: Option<&Value>) -> Result<Reply, ClientError> {
        let body = params.map(encode).unwrap_or_default();
        let (status, data) = self.call(command, &body)?;
        let value = if data.is_empty() {
            None
        } else {
            Some(decode(&data).map_err(ClientError::Protocol)?)
        };
        Ok(Reply { status, value })
    }
}

impl<T: ReportTransport> Ctap2 for CtapHidClient<T> {
    fn call(&mut self, command: u8, body: &[u8]) -> Result<(u8, Vec<u8>), ClientError> {
        self.cbor(command, body)
    }
}

/// A CTAP2 answer: status and decoded body.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The status byte.
    pub status: u8,
    /// The CBOR body, if any.
    pub value: Option<Value>,
}

impl Reply {
    /// The body of a successful answer, or the status as the error.
    pub fn ok(self) -> Result<Value, u8> {
        match (self.status, self.value) {
            (status::OK, Some(v)) => Ok(v),
            (status::OK, None) => Ok(Value::Map(Vec::new())),
            (s, _) => Err(s),
        }
    }
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A fresh random clientDataHash.
pub fn random_cdh() -> [u8; 32] {
    rand::random()
}

/// A PublicKeyCredentialDescriptor.
pub fn descriptor(id: &[u8]) -> Value {
    Value::Map(vec![
        (text("id"), bytes(id)),
        (text("type"), text("public-key")),
    ])
}

/// COSE algorithm identifiers.
pub mod alg {
    /// ES256.
    pub const ES256: i64 = -7;
    /// EdDSA (Ed25519).
    pub const EDDSA: i64 = -8;
}

/// An authenticatorMakeCredential request.
#[derive(Clone, Debug)]
pub struct MakeCredential {
    /// clientDataHash.
    pub cdh: [u8; 32],
    /// rp.id.
    pub rp_id: String,
    /// rp.name (omitted when None, as Firefox does).
    pub rp_name: Option<String>,
    /// user.id.
    pub user_id: Vec<u8>,
    /// user.name.
    pub user_name: Option<String>,
    /// user.displayName.
    pub display_name: Option<String>,
    /// pubKeyCredParams, in order.
    pub algs: Vec<i64>,
    /// excludeList.
    pub exclude: Vec<Vec<u8>>,
    /// extensions.
    pub extensions: Vec<(String, Value)>,
    /// options (rk, up, uv).
    pub options: Vec<(String, bool)>,
    /// pinUvAuthParam and pinUvAuthProtocol.
    pub pin_uv_auth: Option<(Vec<u8>, u8)>,
    /// Any other entries (key, value), e.g. enterpriseAttestation.
    pub extra: Vec<(i64, Value)>,
}

impl MakeCredential {
    /// ES256, user name and display name set, a random clientDataHash.
    pub fn new(rp_id: &str, user_id: &[u8]) -> Self {
        MakeCredential {
            cdh: random_cdh(),
            rp_id: rp_id.into(),
            rp_name: Some(rp_id.into()),
            user_id: user_id.to_vec(),
            user_name: Some("user".into()),
            display_name: Some("User".into()),
            algs: vec![alg::ES256],
            exclude: Vec::new(),
            extensions: Vec::new(),
            options: Vec::new(),
            pin_uv_auth: None,
            extra: Vec::new(),
        }
    }

    /// A discoverable credential (`rk: true`).
    pub fn rk(self) -> Self {
        self.option("rk", true)
    }

    /// Sets an option.
    pub fn option(mut self, name: &str, value: bool) -> Self {
        self.options.push((name.into(), value));
        self
    }

    /// Sets the algorithms offered.
    pub fn algs(mut self, algs: &[i64]) -> Self {
        self.algs = algs.to_vec();
        self
    }

    /// Sets user.name and user.displayName.
    pub fn user(mut self, name: &str, display_name: &str) -> Self {
        self.user_name = Some(name.into());
        self.display_name = Some(display_name.into());
        self
    }

    /// Sets the clientDataHash.
    pub fn cdh(mut self, cdh: [u8; 32]) -> Self {
        self.cdh = cdh;
        self
    }

    /// Adds a credential to the excludeList.
    pub fn exclude(mut self, id: &[u8]) -> Self {
        self.exclude.push(id.to_vec());
        self
    }

    /// Adds an extension input.
    pub fn extension(mut self, name: &str, value: Value) -> Self {
        self.extensions.push((name.into(), value));
        self
    }

    /// Adds pinUvAuthParam = authenticate(token, clientDataHash).
    pub fn pin_auth(mut self, token: &Token) -> Self {
        self.pin_uv_auth = Some((token.mac(&[&self.cdh]), token.protocol));
        self
    }

    /// Adds a raw entry.
    pub fn with(mut self, key: i64, value: Value) -> Self {
        self.extra.push((key, value));
        self
    }

    /// The request map.
    pub fn build(&self) -> Value {
        let mut rp = vec![(text("id"), text(&self.rp_id))];
        if let Some(name) = &self.rp_name {
            rp.push((text("name"), text(name)));
        }
        let mut user = vec![(text("id"), bytes(&self.user_id))];
        if let Some(name) = &self.user_name {
            user.push((text("name"), text(name)));
        }
        if let Some(name) = &self.display_name {
            user.push((text("displayName"), text(name)));
        }
        let params = self
            .algs
            .iter()
            .map(|&a| {
                Value::Map(vec![
                    (text("alg"), int(a)),
                    (text("type"), text("public-key")),
                ])
            })
            .collect();
        let mut m = vec![
            (int(1), bytes(&self.cdh)),
            (int(2), Value::Map(rp)),
            (int(3), Value::Map(user)),
            (int(4), Value::Array(params)),
        ];
        if !self.exclude.is_empty() {
            let list = self.exclude.iter().map(|id| descriptor(id)).collect();
            m.push((int(5), Value::Array(list)));
        }
        if !self.extensions.is_empty() {
            let ext = self
                .extensions
                .iter()
                .map(|(k, v)| (text(k), v.clone()))
                .collect();
            m.push((int(6), Value::Map(ext)));
        }
        if !self.options.is_empty() {
            let opts = self
                .options
                .iter()
                .map(|(k, v)| (text(k), Value::Bool(*v)))
                .collect();
            m.push((int(7), Value::Map(opts)));
        }
        if let Some((param, protocol)) = &self.pin_uv_auth {
            m.push((int(8), bytes(param)));
            m.push((int(9), int((*protocol).into())));
        }
        m.extend(self.extra.iter().map(|(k, v)| (int(*k), v.clone())));
        Value::Map(m)
    }

    /// Sends it; the parsed and checked response, or the status.
    pub fn send<C: Ctap2 + ?Sized>(
        &self,
        ctap: &mut C,
    ) -> Result<Result<Registration, u8>, ClientError> {
        let reply = ctap.ctap2(cmd::MAKE_CREDENTIAL, Some(&self.build()))?;
        Ok(match reply.ok() {
            Ok(value) => Ok(Registration::parse(&value, &self.cdh, &self.rp_id)
                .map_err(ClientError::Protocol)?),
            Err(status) => Err(status),
        })
    }

    /// Sends it and insists on success.
    pub fn must<C: Ctap2 + ?Sized>(&self, ctap: &mut C) -> Registration {
        match self.send(ctap) {
            Ok(Ok(reg)) => reg,
            Ok(Err(status)) => panic!("makeCredential for {}: status {status:#04x}", self.rp_id),
            Err(e) => panic!("makeCredential for {}: {e}", self.rp_id),
        }
    }
}

/// An authenticatorGetAssertion request.
#[derive(Clone, Debug)]
pub struct GetAssertion {
    /// rpId.
    pub rp_id: String,
    /// clientDataHash.
    pub cdh: [u8; 32],
    /// allowList.
    pub allow: Vec<Vec<u8>>,
    /// extensions.
    pub extensions: Vec<(String, Value)>,
    /// options (up, uv).
    pub options: Vec<(String, bool)>,
    /// pinUvAuthParam and pinUvAuthProtocol.
    pub pin_uv_auth: Option<(Vec<u8>, u8)>,
}

impl GetAssertion {
    /// A request with a random clientDataHash and an empty allowList.
    pub fn new(rp_id: &str) -> Self {
        GetAssertion {
            rp_id: rp_id.into(),
            cdh: random_cdh(),
            allow: Vec::new(),
            extensions: Vec::new(),
            options: Vec::new(),
            pin_uv_auth: None,
        }
    }

    /// Adds a credential to the allowList.
    pub fn allow(mut self, id: &[u8]) -> Self {
        self.allow.push(id.to_vec());
        self
    }

    /// Sets the clientDataHash.
    pub fn cdh(mut self, cdh: [u8; 32]) -> Self {
        self.cdh = cdh;
        self
    }

    /// Sets an option.
    pub fn option(mut self, name: &str, value: bool) -> Self {
        self.options.push((name.into(), value));
        self
    }

    /// Adds an extension input.
    pub fn extension(mut self, name: &str, value: Value) -> Self {
        self.extensions.push((name.into(), value));
        self
    }

    /// Adds pinUvAuthParam = authenticate(token, clientDataHash).
    pub fn pin_auth(mut self, token: &Token) -> Self {
        self.pin_uv_auth = Some((token.mac(&[&self.cdh]), token.protocol));
        self
    }

    /// The request map.
    pub fn build(&self) -> Value {
        let mut m = vec![(int(1), text(&self.rp_id)), (int(2), bytes(&self.cdh))];
        if !self.allow.is_empty() {
            let list = self.allow.iter().map(|id| descriptor(id)).collect();
            m.push((int(3), Value::Array(list)));
        }
        if !self.extensions.is_empty() {
            let ext = self
                .extensions
                .iter()
                .map(|(k, v)| (text(k), v.clone()))
                .collect();
            m.push((int(4), Value::Map(ext)));
        }
        if !self.options.is_empty() {
            let opts = self
                .options
                .iter()
                .map(|(k, v)| (text(k), Value::Bool(*v)))
                .collect();
            m.push((int(5), Value::Map(opts)));
        }
        if let Some((param, protocol)) = &self.pin_uv_auth {
            m.push((int(6), bytes(param)));
            m.push((int(7), int((*protocol).into())));
        }
        Value::Map(m)
    }

    /// Sends it; the parsed response (signature not yet verified), or the status.
    pub fn send<C: Ctap2 + ?Sized>(
        &self,
        ctap: &mut C,
    ) -> Result<Result<Assertion, u8>, ClientError> {
        let reply = ctap.ctap2(cmd::GET_ASSERTION, Some(&self.build()))?;
        Ok(match reply.ok() {
            Ok(value) => {
                Ok(Assertion::parse(&value, &self.cdh, &self.rp_id)
                    .map_err(ClientError::Protocol)?)
            }
            Err(status) => Err(status),
        })
    }

    /// Sends it and verifies the signature with `key`; the assertion or the status.
    pub fn verified<C: Ctap2 + ?Sized>(
        &self,
        ctap: &mut C,
        key: &PublicKey,
    ) -> Result<Result<Assertion, u8>, ClientError> {
        Ok(match self.send(ctap)? {
            Ok(assertion) => {
                assertion.verify(key).map_err(ClientError::Protocol)?;
                Ok(assertion)
            }
            Err(status) => Err(status),
        })
    }
}

/// authenticatorGetNextAssertion; the parsed response (for `cdh`, `rp_id`) or the status.
pub fn get_next_assertion<C: Ctap2 + ?Sized>(
    ctap: &mut C,
    cdh: &[u8; 32],
    rp_id: &str,
) -> Result<Result<Assertion, u8>, ClientError> {
    let reply = ctap.ctap2(cmd::GET_NEXT_ASSERTION, None)?;
    Ok(match reply.ok() {
        Ok(value) => Ok(Assertion::parse(&value, cdh, rp_id).map_err(ClientError::Protocol)?),
        Err(status) => Err(status),
    })
}

/// A credential public key, from its COSE_Key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// ES256 (ECDSA P-256 with SHA-256).
    Es256(p256::ecdsa::VerifyingKey),
    /// EdDSA (Ed25519).
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Parses a COSE_Key strictly: EC2/P-256/ES256 with exactly kty, alg, crv,
    /// x, y; or OKP/Ed25519/EdDSA with exactly kty, alg, crv, x.
    pub fn from_cose(cose: &Value) -> Result<Self, String> {
        let entries = cose.as_map().ok_or("COSE_Key is not a map")?.len();
        let field = |k: i64| get(cose, k).and_then(Value::as_integer).map(i128::from);
        match (field(1), field(3), field(-1)) {
            (Some(2), Some(-7), Some(1)) if entries == 5 => {
                let x = get_bytes(cose, -2).ok_or("no x")?;
                let y = get_bytes(cose, -3).ok_or("no y")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(format!(
                        "EC2 coordinates of {} and {} bytes",
                        x.len(),
                        y.len()
                    ));
                }
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(x);
                sec1.extend_from_slice(y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map(PublicKey::Es256)
                    .map_err(|e| format!("not a P-256 point: {e}"))
            }
            (Some(1), Some(-8), Some(6)) if entries == 4 => {
                let x: [u8; 32] = get_bytes(cose, -2)
                    .ok_or("no x")?
                    .try_into()
                    .map_err(|_| "Ed25519 key is not 32 bytes")?;
                ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map(PublicKey::Ed25519)
                    .map_err(|e| format!("not an Ed25519 key: {e}"))
            }
            other => Err(format!(
                "unsupported COSE_Key (kty, alg, crv) = {other:?}, {entries} entries"
            )),
        }
    }

    /// Parses an encoded COSE_Key.
    pub fn from_cose_bytes(data: &[u8]) -> Result<Self, String> {
        Self::from_cose(&decode(data)?)
    }

    /// The COSE algorithm.
    pub fn alg(&self) -> i64 {
        match self {
            PublicKey::Es256(_) => alg::ES256,
            PublicKey::Ed25519(_) => alg::EDDSA,
        }
    }

    /// Verifies `signature` (DER for ES256, 64 raw bytes for EdDSA) over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        match self {
            PublicKey::Es256(key) => {
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|e| format!("not a DER ECDSA signature: {e}"))?;
                key.verify(message, &sig)
                    .map_err(|_| "ES256 signature does not verify".to_string())
            }
            PublicKey::Ed25519(key) => {
                let sig: [u8; 64] = signature
                    .try_into()
                    .map_err(|_| format!("EdDSA signature of {} bytes", signature.len()))?;
                key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
                    .map_err(|_| "EdDSA signature does not verify".to_string())
            }
        }
    }
}

/// Attested credential data.
#[derive(Clone, Debug)]
pub struct AttestedCredential {
    /// The AAGUID.
    pub aaguid: [u8; 16],
    /// The credential ID.
    pub id: Vec<u8>,
    /// The COSE_Key as sent.
    pub cose_key: Vec<u8>,
    /// The public key.
    pub public_key: PublicKey,
}

/// Authenticator data flag bits.
pub mod flags {
    /// User present.
    pub const UP: u8 = 0x01;
    /// User verified.
    pub const UV: u8 = 0x04;
    /// Backup eligible.
    pub const BE: u8 = 0x08;
    /// Backup state.
    pub const BS: u8 = 0x10;
    /// Attested credential data included.
    pub const AT: u8 = 0x40;
    /// Extension data included.
    pub const ED: u8 = 0x80;
}

/// Authenticator data, parsed strictly (no trailing bytes).
#[derive(Clone, Debug)]
pub struct AuthData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// The flags byte.
    pub flags: u8,
    /// The signature counter.
    pub sign_count: u32,
    /// Attested credential data (AT).
    pub attested: Option<AttestedCredential>,
    /// Extension outputs (ED).
    pub extensions: Option<Value>,
}

impl AuthData {
    /// Parses authenticator data.
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        if data.len() < 37 {
            return Err(format!("authData of {} bytes", data.len()));
        }
        let flags = data[32];
        let mut rest = &data[37..];
        let attested = if flags & flags::AT != 0 {
            if rest.len() < 18 {
                return Err("truncated attested credential data".into());
            }
            let aaguid: [u8; 16] = rest[..16].try_into().map_err(|_| "aaguid")?;
            let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            let id = rest
                .get(18..18 + len)
                .ok_or("truncated credential ID")?
                .to_vec();
            let after_id = &rest[18 + len..];
            let (cose, after) = decode_prefix(after_id)?;
            let cose_key = after_id[..after_id.len() - after.len()].to_vec();
            rest = after;
            Some(AttestedCredential {
                aaguid,
                id,
                cose_key,
                public_key: PublicKey::from_cose(&cose)?,
            })
        } else {
            None
        };
        let extensions = if flags & flags::ED != 0 {
            let (ext, after) = decode_prefix(rest)?;
            rest = after;
            Some(ext)
        } else {
            None
        };
        if !rest.is_empty() {
            return Err(format!("{} trailing bytes in authData", rest.len()));
        }
        Ok(AuthData {
            rp_id_hash: data[..32].try_into().map_err(|_| "rpIdHash")?,
            flags,
            sign_count: u32::from_be_bytes([data[33], data[34], data[35], data[36]]),
            attested,
            extensions,
        })
    }
}

/// A makeCredential response, checked: the rpIdHash matches, attested
/// credential data is present, and a self ("packed" without x5c) attestation
/// signature verifies with the credential key. Batch attestation (x5c) is left
/// to the caller, who knows the root.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The attestation format.
    pub fmt: String,
    /// authData as sent.
    pub raw_auth_data: Vec<u8>,
    /// authData parsed.
    pub auth_data: AuthData,
    /// attStmt.
    pub att_stmt: Value,
    /// The clientDataHash of the request.
    pub cdh: [u8; 32],
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The credential public key.
    pub public_key: PublicKey,
    /// largeBlobKey (response key 5), when requested.
    pub large_blob_key: Option<Vec<u8>>,
}

impl Registration {
    /// Parses and checks a makeCredential response body.
    pub fn parse(value: &Value, cdh: &[u8; 32], rp_id: &str) -> Result<Self, String> {
        let fmt = get(value, 1)
            .and_then(Value::as_text)
            .ok_or("no fmt")?
            .to_string();
        let raw = get_bytes(value, 2).ok_or("no authData")?.to_vec();
        let att_stmt = get(value, 3).ok_or("no attStmt")?.clone();
        let auth_data = AuthData::parse(&raw)?;
        if auth_data.rp_id_hash != sha256(rp_id.as_bytes()) {
            return Err("rpIdHash is not SHA-256(rp.id)".into());
        }
        let attested = auth_data
            .attested
            .clone()
            .ok_or("no attested credential data")?;
        if fmt == "packed" && get_text(&att_stmt, "x5c").is_none() {
            let sig = get_text(&att_stmt, "sig")
                .and_then(Value::as_bytes)
                .ok_or("no sig")?;
            let alg = get_text(&att_stmt, "alg").and_then(Value::as_integer);
            if alg != Some(attested.public_key.alg().into()) {
                return Err(format!("self attestation alg {alg:?}"));
            }
            attested
                .public_key
                .verify(&[&raw[..], cdh].concat(), sig)
                .map_err(|e| format!("self attestation: {e}"))?;
        }
        Ok(Registration {
            fmt,
            raw_auth_data: raw,
            credential_id: attested.id.clone(),
            public_key: attested.public_key.clone(),
            auth_data,
            att_stmt,
            cdh: *cdh,
            large_blob_key: get_bytes(value, 5).map(<[u8]>::to_vec),
        })
    }

    /// The AAGUID of the attested credential data (authData bytes 37..53).
    pub fn aaguid(&self) -> [u8; 16] {
        // `parse` refuses a response without attested credential data.
        self.auth_data
            .attested
            .as_ref()
            .map(|a| a.aaguid)
            .unwrap_or_default()
    }

    /// The bytes an attestation statement signs: authData ‖ clientDataHash
    /// (WebAuthn §8.2 "packed", and the self attestation of §6.5.4).
    pub fn signed_bytes(&self) -> Vec<u8> {
        [&self.raw_auth_data[..], &self.cdh].concat()
    }

    /// attStmt `alg` (the COSE algorithm of the attestation signature).
    pub fn att_alg(&self) -> Option<i64> {
        get_text(&self.att_stmt, "alg")
            .and_then(Value::as_integer)
            .and_then(|i| i64::try_from(i).ok())
    }

    /// attStmt `sig`.
    pub fn att_sig(&self) -> Option<&[u8]> {
        get_text(&self.att_stmt, "sig")
            .and_then(Value::as_bytes)
            .map(Vec::as_slice)
    }

    /// attStmt `x5c`: the DER certificates, leaf first; None when absent, an
    /// error when present but not a non-empty array of byte strings.
    pub fn x5c(&self) -> Result<Option<Vec<Vec<u8>>>, String> {
        let Some(x5c) = get_text(&self.att_stmt, "x5c") else {
            return Ok(None);
        };
        let certificates = x5c
            .as_array()
            .ok_or("x5c is not an array")?
            .iter()
            .map(|c| c.as_bytes().cloned().ok_or("x5c entry is not bytes"))
            .collect::<Result<Vec<_>, _>>()?;
        if certificates.is_empty() {
            return Err("x5c is empty".into());
        }
        Ok(Some(certificates))
    }

    /// Verifies a "packed" attestation signature over [`Registration::signed_bytes`]
    /// with the given attestation key (the batch certificate's public key).
    pub fn verify_packed_with(&self, attestation_key: &PublicKey) -> Result<(), String> {
        let sig = self.att_sig().ok_or("no sig")?;
        attestation_key.verify(&self.signed_bytes(), sig)
    }
}

/// A getAssertion / getNextAssertion response (rpIdHash and structure checked).
#[derive(Clone, Debug)]
pub struct Assertion {
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// authData as sent.
    pub raw_auth_data: Vec<u8>,
    /// authData parsed.
    pub auth_data: AuthData,
    /// The signature.
    pub signature: Vec<u8>,
    /// The user entity (discoverable credentials).
    pub user: Option<Value>,
    /// numberOfCredentials.
    pub number_of_credentials: Option<u64>,
    /// largeBlobKey (response key 7), when requested.
    pub large_blob_key: Option<Vec<u8>>,
    /// The clientDataHash of the request.
    pub cdh: [u8; 32],
}

impl Assertion {
    /// Parses and checks a getAssertion response body.
    pub fn parse(value: &Value, cdh: &[u8; 32], rp_id: &str) -> Result<Self, String> {
        let credential = get(value, 1).ok_or("no credential")?;
        if get_text(credential, "type") != Some(&text("public-key")) {
            return Err("credential type is not public-key".into());
        }
        let credential_id = get_text(credential, "id")
            .and_then(Value::as_bytes)
            .ok_or("no credential id")?
            .clone();
        let raw = get_bytes(value, 2).ok_or("no authData")?.to_vec();
        let auth_data = AuthData::parse(&raw)?;
        if auth_data.attested.is_some() {
            return Err("attested credential data in an assertion".into());
        }
        if auth_data.rp_id_hash != sha256(rp_id.as_bytes()) {
            return Err("rpIdHash is not SHA-256(rpId)".into());
        }
        Ok(Assertion {
            credential_id,
            raw_auth_data: raw,
            auth_data,
            signature: get_bytes(value, 3).ok_or("no signature")?.to_vec(),
            user: get(value, 4).cloned(),
            number_of_credentials: get(value, 5)
                .and_then(Value::as_integer)
                .and_then(|i| u64::try_from(i).ok()),
            large_blob_key: get_bytes(value, 7).map(<[u8]>::to_vec),
            cdh: *cdh,
        })
    }

    /// Verifies the signature over authData ‖ clientDataHash with `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<(), String> {
        key.verify(
            &[&self.raw_auth_data[..], &self.cdh].concat(),
            &self.signature,
        )
    }

    /// The user handle, for a discoverable credential.
    pub fn user_id(&self) -> Option<Vec<u8>> {
        self.user
            .as_ref()
            .and_then(|u| get_text(u, "id"))
            .and_then(Value::as_bytes)
            .cloned()
    }
}

/// authenticatorGetInfo, decoded.
pub fn get_info<C: Ctap2 + ?Sized>(ctap: &mut C) -> Result<Value, String> {
    let reply = ctap.ctap2(cmd::GET_INFO, None).map_err(|e| e.to_string())?;
    reply.ok().map_err(|s| format!("getInfo status {s:#04x}"))
}

/// A serialized large-blob array: the CBOR array followed by LEFT(SHA-256, 16).
pub fn serialized_large_blob_array(entries: &[Value]) -> Vec<u8> {
    let mut out = encode(&Value::Array(entries.to_vec()));
    let hash = sha256(&out);
    out.extend_from_slice(&hash[..16]);
    out
}

/// Reads the whole serialized large-blob array, `chunk` bytes at a time.
pub fn read_large_blobs<C: Ctap2 + ?Sized>(ctap: &mut C, chunk: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let params = Value::Map(vec![
            (int(1), int(chunk as i64)),
            (int(3), int(out.len() as i64)),
        ]);
        let reply = ctap
            .ctap2(cmd::LARGE_BLOBS, Some(&params))
            .map_err(|e| e.to_string())?;
        let value = reply
            .ok()
            .map_err(|s| format!("largeBlobs get: status {s:#04x}"))?;
        let part = get_bytes(&value, 1).ok_or("no config in largeBlobs response")?;
        out.extend_from_slice(part);
        if part.len() < chunk {
            return Ok(out);
        }
    }
}

/// Writes `serialized` as the large-blob array in fragments of `chunk` bytes,
/// authenticated with `token` (which needs the lbw permission) when given.
/// Returns the status of the first fragment that failed, or OK.
pub fn write_large_blobs<C: Ctap2 + ?Sized>(
    ctap: &mut C,
    serialized: &[u8],
    chunk: usize,
    token: Option<&Token>,
) -> Result<u8, ClientError> {
    let mut offset = 0usize;
    loop {
        let end = (offset + chunk).min(serialized.len());
        let fragment = &serialized[offset..end];
        let mut m = vec![(int(2), bytes(fragment)), (int(3), int(offset as i64))];
        if offset == 0 {
            m.push((int(4), int(serialized.len() as i64)));
        }
        if let Some(token) = token {
            let mut message = vec![0xFF; 32];
            message.extend_from_slice(&[0x0C, 0x00]);
            message.extend_from_slice(&(offset as u32).to_le_bytes());
            message.extend_from_slice(&sha256(fragment));
            m.push((int(5), bytes(&token.mac(&[&message]))));
            m.push((int(6), int(token.protocol.into())));
        }
        let reply = ctap.ctap2(cmd::LARGE_BLOBS, Some(&Value::Map(m)))?;
        if reply.status != status::OK {
            return Ok(reply.status);
        }
        offset = end;
        if offset >= serialized.len() {
            return Ok(status::OK);
        }
    }
}

/// authenticatorCredentialManagement subcommands.
pub mod cm {
    /// getCredsMetadata.
    pub const GET_CREDS_METADATA: u8 = 0x01;
    /// enumerateRPsBegin.
    pub const ENUMERATE_RPS_BEGIN: u8 = 0x02;
    /// enumerateRPsGetNextRP.
    pub const ENUMERATE_RPS_NEXT: u8 = 0x03;
    /// enumerateCredentialsBegin.
    pub const ENUMERATE_CREDENTIALS_BEGIN: u8 = 0x04;
    /// enumerateCredentialsGetNextCredential.
    pub const ENUMERATE_CREDENTIALS_NEXT: u8 = 0x05;
    /// deleteCredential.
    pub const DELETE_CREDENTIAL: u8 = 0x06;
    /// updateUserInformation.
    pub const UPDATE_USER_INFORMATION: u8 = 0x07;
}

/// authenticatorConfig subcommands.
pub mod config {
    /// toggleAlwaysUv.
    pub const TOGGLE_ALWAYS_UV: u8 = 0x02;
    /// setMinPINLength.
    pub const SET_MIN_PIN_LENGTH: u8 = 0x03;
}

/// authenticatorCredentialManagement `sub` with `params`, authenticated over
/// `subCommand ‖ subCommandParams` with `token` (cm permission) when given.
pub fn credential_management<C: Ctap2 + ?Sized>(
    ctap: &mut C,
    token: Option<&Token>,
    sub: u8,
    params: Option<Value>,
) -> Result<Reply, ClientError> {
    let mut m = vec![(int(1), int(sub.into()))];
    let mut message = vec![sub];
    if let Some(params) = params {
        message.extend_from_slice(&encode(&params));
        m.push((int(2), params));
    }
    if let Some(token) = token {
        m.push((int(3), int(token.protocol.into())));
        m.push((int(4), bytes(&token.mac(&[&message]))));
    }
    ctap.ctap2(cmd::CREDENTIAL_MANAGEMENT, Some(&Value::Map(m)))
}

/// authenticatorConfig `sub` with `params`, authenticated over
/// `32×0xff ‖ 0x0d ‖ subCommand ‖ subCommandParams` with `token` (acfg) when given.
pub fn authenticator_config<C: Ctap2 + ?Sized>(
    ctap: &mut C,
    token: Option<&Token>,
    sub: u8,
    params: Option<Value>,
) -> Result<Reply, ClientError> {
    let mut m = vec![(int(1), int(sub.into()))];
    let mut message = vec![0xFF; 32];
    message.extend_from_slice(&[cmd::CONFIG, sub]);
    if let Some(params) = params {
        message.extend_from_slice(&encode(&params));
        m.push((int(2), params));
    }
    if let Some(token) = token {
        m.push((int(3), int(token.protocol.into())));
        m.push((int(4), bytes(&token.mac(&[&message]))));
    }
    ctap.ctap2(cmd::CONFIG, Some(&Value::Map(m)))
}

/// setMinPINLength's subCommandParams.
pub fn min_pin_length_params(new_length: Option<u8>, rp_ids: &[&str], force_change: bool) -> Value {
    let mut m = Vec::new();
    if let Some(len) = new_length {
        m.push((int(1), int(len.into())));
    }
    if !rp_ids.is_empty() {
        m.push((
            int(2),
            Value::Array(rp_ids.iter().map(|r| text(r)).collect()),
        ));
    }
    if force_change {
        m.push((int(3), Value::Bool(true)));
    }
    Value::Map(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_cose_keys_parse_and_verify() {
        use p256::ecdsa::signature::Signer;
        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let cose = Value::Map(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), bytes(point.x().unwrap())),
            (int(-3), bytes(point.y().unwrap())),
        ]);
        let key = PublicKey::from_cose(&cose).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"message");
        key.verify(b"message", sig.to_der().as_bytes()).unwrap();
        assert!(key.verify(b"other", sig.to_der().as_bytes()).is_err());
        assert!(key.verify(b"message", &[0x30, 0]).is_err());
        // An extra entry is refused.
        let mut extra = cose.as_map().unwrap().clone();
        extra.push((int(-4), bytes(&[0])));
        assert!(PublicKey::from_cose(&Value::Map(extra)).is_err());
    }

    #[test]
    fn ed25519_cose_keys_parse_and_verify() {
        use ed25519_dalek::Signer;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let cose = Value::Map(vec![
            (int(1), int(1)),
            (int(3), int(-8)),
            (int(-1), int(6)),
            (int(-2), bytes(sk.verifying_key().as_bytes())),
        ]);
        let key = PublicKey::from_cose(&cose).unwrap();
        assert_eq!(key.alg(), alg::EDDSA);
        let sig = sk.sign(b"message").to_bytes();
        key.verify(b"message", &sig).unwrap();
        assert!(key.verify(b"messagE", &sig).is_err());
        assert!(key.verify(b"message", &sig[..63]).is_err());
    }

    #[test]
    fn auth_data_is_parsed_strictly() {
        let mut data = vec![0u8; 37];
        data[32] = flags::UP;
        data[36] = 5;
        let parsed = AuthData::parse(&data).unwrap();
        assert_eq!(parsed.sign_count, 5);
        assert!(parsed.attested.is_none());
        data.push(0);
        assert!(AuthData::parse(&data).is_err(), "trailing byte");
        assert!(AuthData::parse(&data[..36]).is_err());
    }

    /// A makeCredential response with a packed self attestation by `sk`.
    fn self_attested(sk: &p256::ecdsa::SigningKey, cdh: &[u8; 32], rp_id: &str) -> Value {
        use p256::ecdsa::signature::Signer;
        let point = sk.verifying_key().to_encoded_point(false);
        let cose = encode(&Value::Map(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), bytes(point.x().unwrap())),
            (int(-3), bytes(point.y().unwrap())),
        ]));
        let mut auth_data = sha256(rp_id.as_bytes()).to_vec();
        auth_data.push(flags::UP | flags::AT);
        auth_data.extend_from_slice(&[0, 0, 0, 1]);
        auth_data.extend_from_slice(&[0xA5; 16]);
        auth_data.extend_from_slice(&[0, 3, 1, 2, 3]);
        auth_data.extend_from_slice(&cose);
        let sig: p256::ecdsa::Signature = sk.sign(&[&auth_data[..], cdh].concat());
        Value::Map(vec![
            (int(1), text("packed")),
            (int(2), bytes(&auth_data)),
            (
                int(3),
                Value::Map(vec![
                    (text("alg"), int(-7)),
                    (text("sig"), bytes(sig.to_der().as_bytes())),
                ]),
            ),
        ])
    }

    #[test]
    fn registrations_expose_aaguid_signed_bytes_and_statement() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let cdh = [3; 32];
        let response = self_attested(&sk, &cdh, "example.com");
        let reg = Registration::parse(&response, &cdh, "example.com").unwrap();
        assert_eq!(reg.aaguid(), [0xA5; 16]);
        assert_eq!(reg.credential_id, [1, 2, 3]);
        assert_eq!(reg.signed_bytes(), [&reg.raw_auth_data[..], &cdh].concat());
        assert_eq!(reg.att_alg(), Some(alg::ES256));
        assert_eq!(reg.x5c(), Ok(None));
        reg.verify_packed_with(&reg.public_key).unwrap();
        // The self attestation is checked on parse: another cdh or RP fails.
        assert!(Registration::parse(&response, &[4; 32], "example.com").is_err());
        assert!(Registration::parse(&response, &cdh, "example.org").is_err());
        // x5c: the certificates in order; malformed forms are errors.
        let mut with_x5c = reg.clone();
        with_x5c.att_stmt = Value::Map(vec![(
            text("x5c"),
            Value::Array(vec![bytes(b"leaf"), bytes(b"ca")]),
        )]);
        assert_eq!(
            with_x5c.x5c(),
            Ok(Some(vec![b"leaf".to_vec(), b"ca".to_vec()]))
        );
        with_x5c.att_stmt = Value::Map(vec![(text("x5c"), Value::Array(vec![]))]);
        assert!(with_x5c.x5c().is_err());
        with_x5c.att_stmt = Value::Map(vec![(text("x5c"), Value::Array(vec![int(1)]))]);
        assert!(with_x5c.x5c().is_err());
    }

    #[test]
    fn requests_carry_what_was_asked() {
        let mc = MakeCredential::new("example.com", b"u")
            .rk()
            .algs(&[alg::EDDSA, alg::ES256])
            .extension("credProtect", int(2))
            .exclude(b"x");
        let v = mc.build();
        assert_eq!(get(&v, 1), Some(&bytes(&mc.cdh)));
        assert_eq!(get(&v, 4).unwrap().as_array().unwrap().len(), 2);
        assert_eq!(get_text(get(&v, 6).unwrap(), "credProtect"), Some(&int(2)));
        assert_eq!(
            get_text(get(&v, 7).unwrap(), "rk"),
            Some(&Value::Bool(true))
        );
        assert!(get(&v, 5).is_some());
        let ga = GetAssertion::new("example.com")
            .allow(b"id")
            .option("up", false);
        let v = ga.build();
        assert_eq!(get(&v, 3).unwrap().as_array().unwrap().len(), 1);
        assert_eq!(
            get_text(get(&v, 5).unwrap(), "up"),
            Some(&Value::Bool(false))
        );
        let array = serialized_large_blob_array(&[]);
        assert_eq!(array[0], 0x80);
        assert_eq!(&array[1..], &sha256(&[0x80])[..16]);
    }
}
