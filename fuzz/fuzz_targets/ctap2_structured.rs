//! Structure-aware CTAP2: sequences of requests of every command's shape
//! (makeCredential, getAssertion, getNextAssertion, getInfo, clientPIN,
//! credentialManagement, largeBlobs, config, reset, selection), encoded as
//! valid CBOR so the fuzzer gets past the decoder and into the handlers. The
//! harness plays a real platform where the input asks it to: it runs the PIN
//! protocol (key agreement, encrypted PIN hash) and computes pinUvAuthParam
//! with the token it obtained, so authenticated paths are reached.
//!
//! Invariants: no panic; every response is well-formed (status byte; after
//! OK one CBOR map and nothing else); a makeCredential or getAssertion that
//! succeeded parses and checks (authData, rpIdHash, signature).
#![no_main]

use ciborium::Value;
use ferrokey::app::Protocol;
use ferrokey_fuzz::structured::*;
use ferrokey_fuzz::*;
use ferrokey_test_support::cbor::{bytes, encode, int, text};
use ferrokey_test_support::ctap2::{sha256, Assertion, GetAssertion, MakeCredential, Registration};
use ferrokey_test_support::pin::{ClientPin, Token};
use libfuzzer_sys::fuzz_target;

const OPTIONS: [&str; 5] = ["rk", "up", "uv", "plat", "ep"];

struct Platform {
    token: Option<Token>,
    pin: String,
    created: Vec<Vec<u8>>,
}

impl Platform {
    fn id(&self, id: &CredId) -> Vec<u8> {
        let ids = &template().credential_ids;
        match id {
            CredId::Template(n) => ids[usize::from(*n) % ids.len()].clone(),
            CredId::Created(n) if !self.created.is_empty() => {
                self.created[usize::from(*n) % self.created.len()].clone()
            }
            CredId::Created(_) => template().key_handle.clone(),
            CredId::Bytes(b) => b.clone(),
        }
    }

    /// (pinUvAuthParam, protocol) over `message`.
    fn auth(&self, auth: &Auth, message: &[u8]) -> Option<(Vec<u8>, u8)> {
        match auth {
            Auth::None => None,
            Auth::Token => self.token.as_ref().map(|t| (t.mac(&[message]), t.protocol)),
            Auth::Garbage(param, protocol) => Some((param.clone(), *protocol)),
            Auth::Empty(protocol) => Some((Vec::new(), *protocol)),
        }
    }
}

fn extensions(list: &[Extension]) -> Vec<(String, Value)> {
    list.iter()
        .take(6)
        .map(|e| match e {
            Extension::CredProtect(n) => ("credProtect".into(), int(i64::from(*n % 5))),
            Extension::HmacSecret(b) => ("hmac-secret".into(), Value::Bool(*b)),
            Extension::CredBlob(b) => ("credBlob".into(), bytes(b)),
            Extension::GetCredBlob(b) => ("credBlob".into(), Value::Bool(*b)),
            Extension::LargeBlobKey(b) => ("largeBlobKey".into(), Value::Bool(*b)),
            Extension::MinPinLength(b) => ("minPinLength".into(), Value::Bool(*b)),
            Extension::HmacSecretGet { salts } => (
                "hmac-secret".into(),
                Value::Map(vec![
                    (
                        int(1),
                        Value::Map(vec![(int(1), int(2)), (int(3), int(-25))]),
                    ),
                    (
                        int(2),
                        bytes(&vec![*salts; 32 * (1 + usize::from(*salts % 2))]),
                    ),
                    (int(3), bytes(&[*salts; 16])),
                ]),
            ),
            Extension::Unknown(name, value) => (name.clone(), value.value()),
        })
        .collect()
}

fn options(list: &[(u8, bool)]) -> Vec<(String, bool)> {
    list.iter()
        .take(5)
        .map(|(k, v)| (OPTIONS[usize::from(*k) % OPTIONS.len()].to_string(), *v))
        .collect()
}

fn extra(list: &[(u8, Cbor)]) -> Vec<(i64, Value)> {
    list.iter()
        .take(3)
        .map(|(k, v)| (i64::from(*k % 16), v.value()))
        .collect()
}

fuzz_target!(|input: Input| {
    let (mut auth, presence) = template_authenticator(presence_script(input.approve));
    let mut local = Local::new(&mut auth, input.approve);
    let mut platform = Platform {
        token: None,
        pin: PIN.to_string(),
        created: Vec::new(),
    };
    for (n, step) in input.steps.iter().take(12).enumerate() {
        let cdh = sha256(&n.to_be_bytes());
        match step {
            Step::MakeCredential {
                rp,
                user,
                options: opts,
                algs,
                exclude,
                extensions: exts,
                auth,
                extra: more,
            } => {
                let rp_id = rp.id();
                let mut request = MakeCredential::new(&rp_id, user).cdh(cdh);
                request.options = options(opts);
                if !algs.is_empty() {
                    request.algs = algs.iter().take(4).map(|a| i64::from(*a)).collect();
                }
                request.exclude = exclude.iter().take(4).map(|c| platform.id(c)).collect();
                request.extensions = extensions(exts);
                request.pin_uv_auth = platform.auth(auth, &cdh);
                request.extra = extra(more);
                let response = cbor(&mut local, 0x01, &request.build());
                if response.first() == Some(&0) && more.is_empty() {
                    let value = decode_exact(&response[1..]).unwrap_or_else(|e| panic!("{e}"));
                    let registration = Registration::parse(&value, &cdh, &rp_id)
                        .unwrap_or_else(|e| panic!("makeCredential response: {e}"));
                    platform.created.push(registration.credential_id);
                }
            }
            Step::GetAssertion {
                rp,
                allow,
                options: opts,
                extensions: exts,
                auth,
                extra: more,
            } => {
                let rp_id = rp.id();
                let mut request = GetAssertion::new(&rp_id).cdh(cdh);
                request.allow = allow.iter().take(4).map(|c| platform.id(c)).collect();
                request.options = options(opts);
                request.extensions = extensions(exts);
                request.pin_uv_auth = platform.auth(auth, &cdh);
                let mut value = request.build();
                if let Value::Map(m) = &mut value {
                    m.extend(extra(more).into_iter().map(|(k, v)| (int(k), v)));
                }
                let response = cbor(&mut local, 0x02, &value);
                if response.first() == Some(&0) && more.is_empty() {
                    let value = decode_exact(&response[1..]).unwrap_or_else(|e| panic!("{e}"));
                    Assertion::parse(&value, &cdh, &rp_id)
                        .unwrap_or_else(|e| panic!("getAssertion response: {e}"));
                }
            }
            Step::GetNextAssertion => {
                local.request(Protocol::Cbor, &[0x08]);
            }
            Step::GetInfo => {
                local.request(Protocol::Cbor, &[0x04]);
            }
            Step::ClientPin(op) => client_pin(&mut local, &mut platform, op),
            Step::CredentialManagement {
                sub,
                rp,
                credential,
                user,
                auth,
                preview,
            } => {
                let sub = sub % 9;
                let mut params = Vec::new();
                if let Some(rp) = rp {
                    params.push((int(1), bytes(&sha256(rp.id().as_bytes()))));
                }
                if let Some(c) = credential {
                    params.push((
                        int(2),
                        Value::Map(vec![
                            (text("id"), bytes(&platform.id(c))),
                            (text("type"), text("public-key")),
                        ]),
                    ));
                }
                if let Some(u) = user {
                    params.push((
                        int(3),
                        Value::Map(vec![(text("id"), bytes(u)), (text("name"), text("x"))]),
                    ));
                }
                let mut m = vec![(int(1), int(sub.into()))];
                let mut message = vec![sub];
                if !params.is_empty() {
                    let params = Value::Map(params);
                    message.extend(encode(&params));
                    m.push((int(2), params));
                }
                if let Some((param, protocol)) = platform.auth(auth, &message) {
                    m.push((int(3), int(protocol.into())));
                    m.push((int(4), bytes(&param)));
                }
                let command = if *preview { 0x41 } else { 0x0A };
                cbor(&mut local, command, &Value::Map(m));
            }
            Step::LargeBlobs {
                get,
                set,
                valid_array,
                offset,
                length,
                auth,
            } => {
                let mut m = Vec::new();
                if let Some(get) = get {
                    m.push((int(1), int((*get).into())));
                }
                let mut fragment = Vec::new();
                if let Some(set) = set {
                    fragment = if *valid_array {
                        ferrokey_test_support::ctap2::serialized_large_blob_array(&[])
                    } else {
                        set.clone()
                    };
                    m.push((int(2), bytes(&fragment)));
                }
                m.push((int(3), int((*offset).into())));
                if let Some(length) = length {
                    m.push((int(4), int((*length).into())));
                } else if *offset == 0 && set.is_some() {
                    m.push((int(4), int(fragment.len() as i64)));
                }
                let mut message = vec![0xFF; 32];
                message.extend_from_slice(&[0x0C, 0x00]);
                message.extend_from_slice(&u32::from(*offset).to_le_bytes());
                message.extend_from_slice(&sha256(&fragment));
                if let Some((param, protocol)) = platform.auth(auth, &message) {
                    m.push((int(5), bytes(&param)));
                    m.push((int(6), int(protocol.into())));
                }
                cbor(&mut local, 0x0C, &Value::Map(m));
            }
            Step::Config {
                sub,
                min_length,
                rp_ids,
                force_change,
                auth,
            } => {
                let sub = sub % 5;
                let mut m = vec![(int(1), int(sub.into()))];
                let mut message = vec![0xFF; 32];
                message.extend_from_slice(&[0x0D, sub]);
                let mut params = Vec::new();
                if let Some(len) = min_length {
                    params.push((int(1), int((*len).into())));
                }
                if !rp_ids.is_empty() {
                    params.push((
                        int(2),
                        Value::Array(rp_ids.iter().take(4).map(|r| text(&r.id())).collect()),
                    ));
                }
                if let Some(force) = force_change {
                    params.push((int(3), Value::Bool(*force)));
                }
                if !params.is_empty() {
                    let params = Value::Map(params);
                    message.extend(encode(&params));
                    m.push((int(2), params));
                }
                if let Some((param, protocol)) = platform.auth(auth, &message) {
                    m.push((int(3), int(protocol.into())));
                    m.push((int(4), bytes(&param)));
                }
                cbor(&mut local, 0x0D, &Value::Map(m));
            }
            Step::Reset => {
                local.request(Protocol::Cbor, &[0x07]);
            }
            Step::Selection => {
                local.request(Protocol::Cbor, &[0x0B]);
            }
            Step::Other(command, body) => {
                cbor(&mut local, *command, &body.value());
            }
            Step::Presence(approve) => {
                local.approve = *approve;
                presence.set_script(presence_script(*approve));
            }
            Step::Wait(ms) => local.now_ms += u64::from(*ms) * 10,
        }
    }
});

/// Sends command `command` with `body`; the response (checked by `Local`).
fn cbor(local: &mut Local<'_>, command: u8, body: &Value) -> Vec<u8> {
    let mut request = vec![command];
    request.extend(encode(body));
    local.request(Protocol::Cbor, &request)
}

fn protocol_of(p: u8) -> u8 {
    1 + p % 2
}

fn client_pin(local: &mut Local<'_>, platform: &mut Platform, op: &PinOp) {
    match op {
        PinOp::GetRetries(p) => {
            let _ = ClientPin::new(protocol_of(*p)).retries(local);
        }
        PinOp::GetKeyAgreement(p) => {
            let _ = ClientPin::new(protocol_of(*p)).session(local);
        }
        PinOp::SetPin(p, pin) => {
            let _ = ClientPin::new(protocol_of(*p)).set_pin(local, pin);
        }
        PinOp::ChangePin {
            protocol,
            current_correct,
            new,
        } => {
            let current = if *current_correct {
                platform.pin.clone()
            } else {
                "0000".to_string()
            };
            let status = ClientPin::new(protocol_of(*protocol)).change_pin(local, &current, new);
            if status == Ok(0) {
                platform.pin = new.clone();
            }
        }
        PinOp::Token {
            protocol,
            correct,
            permissions,
            rp,
        } => {
            let pin = if *correct {
                platform.pin.clone()
            } else {
                "9999".to_string()
            };
            let rp = rp.as_ref().map(Rp::id);
            if let Ok(token) = ClientPin::new(protocol_of(*protocol)).token(
                local,
                &pin,
                *permissions,
                rp.as_deref(),
            ) {
                platform.token = Some(token);
            }
        }
        PinOp::UvToken {
            protocol,
            permissions,
            rp,
        } => {
            let rp = rp.as_ref().map(Rp::id);
            if let Ok(token) =
                ClientPin::new(protocol_of(*protocol)).uv_token(local, *permissions, rp.as_deref())
            {
                platform.token = Some(token);
            }
        }
        PinOp::UvRetries => {
            let _ = ClientPin::new(2).uv_retries(local);
        }
        PinOp::Raw {
            protocol,
            sub,
            extra: more,
        } => {
            let mut m = Vec::new();
            if let Some(p) = protocol {
                m.push((int(1), int((*p).into())));
            }
            m.push((int(2), int((*sub % 12).into())));
            m.extend(extra(more).into_iter().map(|(k, v)| (int(k), v)));
            cbor(local, 0x06, &Value::Map(m));
        }
    }
}
