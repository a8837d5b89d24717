//! A CBOR writer that appends straight into the response buffer.
//!
//! The large CTAP2 responses (makeCredential, getAssertion) are written item
//! by item with it instead of being built as ctap-types response structs
//! (2–3 KB each, copied several times on the stack in a debug build) and then
//! serialized. Values are borrowed where they already are (the attestation
//! certificate, the credential ID), so a response costs the stack little more
//! than its authenticatorData.
//!
//! The caller is responsible for CTAP2 canonical order (CTAP 2.1 §8: map keys
//! sorted, integers before text, shorter text before longer); every head is
//! written in its shortest form. Tests compare the output with ctap-types'
//! own serialization of the same values.

use ctap_types::ctap2::Error;

use crate::app::Message;

const UINT: u8 = 0;
const NINT: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;

/// Appends CBOR items to a [`Message`]. Every write fails with `Error::Other`
/// when the message is full (and may then leave a partial item behind: the
/// caller answers with an error status instead).
pub(crate) struct CborWriter<'a> {
    out: &'a mut Message,
}

impl<'a> CborWriter<'a> {
    /// Starts a successful CTAP2 response: clears `out` and writes status 0.
    pub(crate) fn response(out: &'a mut Message) -> Result<Self, Error> {
        out.clear();
        out.push(0).map_err(|_| Error::Other)?;
        Ok(CborWriter { out })
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.out.extend_from_slice(bytes).map_err(|_| Error::Other)
    }

    /// A head: major type and argument, shortest encoding.
    fn head(&mut self, major: u8, arg: u64) -> Result<(), Error> {
        let m = major << 5;
        match arg {
            0..=23 => self.put(&[m | arg as u8]),
            24..=0xFF => self.put(&[m | 24, arg as u8]),
            0x100..=0xFFFF => {
                let [a, b] = (arg as u16).to_be_bytes();
                self.put(&[m | 25, a, b])
            }
            0x1_0000..=0xFFFF_FFFF => {
                let [a, b, c, d] = (arg as u32).to_be_bytes();
                self.put(&[m | 26, a, b, c, d])
            }
            _ => {
                self.put(&[m | 27])?;
                self.put(&arg.to_be_bytes())
            }
        }
    }

    /// A map header of `entries` key/value pairs.
    pub(crate) fn map(&mut self, entries: usize) -> Result<(), Error> {
        self.head(MAP, entries as u64)
    }

    /// An array header of `items` items.
    pub(crate) fn array(&mut self, items: usize) -> Result<(), Error> {
        self.head(ARRAY, items as u64)
    }

    /// An integer.
    pub(crate) fn int(&mut self, value: i64) -> Result<(), Error> {
        if value >= 0 {
            self.head(UINT, value as u64)
        } else {
            // -1 - value, computed without overflow for i64::MIN.
            self.head(NINT, !(value as u64))
        }
    }

    /// A byte string.
    pub(crate) fn bytes(&mut self, value: &[u8]) -> Result<(), Error> {
        self.head(BYTES, value.len() as u64)?;
        self.put(value)
    }

    /// A text string.
    pub(crate) fn text(&mut self, value: &str) -> Result<(), Error> {
        self.head(TEXT, value.len() as u64)?;
        self.put(value.as_bytes())
    }

    /// A boolean (simple value 20 or 21).
    pub(crate) fn bool(&mut self, value: bool) -> Result<(), Error> {
        self.put(&[if value { 0xF5 } else { 0xF4 }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn written(f: impl FnOnce(&mut CborWriter<'_>) -> Result<(), Error>) -> Vec<u8> {
        let mut out = Message::new();
        let mut w = CborWriter::response(&mut out).unwrap();
        f(&mut w).unwrap();
        assert_eq!(out[0], 0, "status");
        out[1..].to_vec()
    }

    fn smol<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut buf = [0u8; 512];
        cbor_smol::cbor_serialize(value, &mut buf).unwrap().to_vec()
    }

    #[test]
    fn heads_are_shortest_and_match_cbor_smol() {
        for v in [
            0i64,
            1,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            i64::MAX,
            -1,
            -24,
            -25,
            -256,
            -257,
            -65_537,
            i64::MIN,
        ] {
            assert_eq!(written(|w| w.int(v)), smol(&v), "{v}");
        }
        for len in [0usize, 23, 24, 255, 256, 300] {
            let b = std::vec![0xAB; len];
            assert_eq!(
                written(|w| w.bytes(&b)),
                smol(&ctap_types::Bytes::<512>::try_from(&b[..]).unwrap()),
                "{len}"
            );
            let t: std::string::String = core::iter::repeat_n('x', len).collect();
            assert_eq!(written(|w| w.text(&t)), smol(&t.as_str()), "{len}");
        }
        assert_eq!(written(|w| w.array(3)), [0x83]);
        assert_eq!(written(|w| w.map(25)), [0xB8, 25]);
    }

    #[test]
    fn a_full_message_is_an_error() {
        let mut out = Message::new();
        let mut w = CborWriter::response(&mut out).unwrap();
        let big = std::vec![0u8; crate::app::MAX_MESSAGE_SIZE];
        assert_eq!(w.bytes(&big), Err(Error::Other));
    }

    /// The makeCredential and getAssertion responses written with the writer
    /// are byte for byte what ctap-types serializes for the same values.
    mod responses {
        use ciborium::Value;
        use ctap_types::ctap2::{get_assertion, make_credential};
        use ctap_types::ctap2::{
            AttestationStatement, AttestationStatementFormat, NoneAttestationStatement,
            PackedAttestationStatement,
        };
        use ctap_types::webauthn::{PublicKeyCredentialDescriptor, PublicKeyCredentialUserEntity};
        use ctap_types::{ByteArray, Bytes};
        use std::vec;
        use std::vec::Vec;

        use crate::app::{Message, Outcome, Protocol};
        use crate::authenticator::testkit::*;
        use crate::authenticator::Config;

        fn serialized<T: serde::Serialize>(value: &T) -> Vec<u8> {
            let mut out = Message::new();
            crate::ctap2::write_cbor(&mut out, value).unwrap();
            out.to_vec()
        }

        fn raw_call(h: &mut Harness, cmd: u8, params: Value) -> Vec<u8> {
            let request = encode(cmd, Some(params));
            let (outcome, mut response) = h.raw(Protocol::Cbor, &request, false);
            if outcome == Outcome::NeedsPresence {
                response = h.raw(Protocol::Cbor, &request, true).1;
            }
            assert_eq!(response[0], 0, "status");
            response
        }

        fn mc_oracle(raw: &[u8]) -> Vec<u8> {
            let (_, value) = decode_response(raw);
            let v = value.unwrap();
            let mut extra_certificates = Vec::new();
            let mut out = make_credential::Response::empty();
            out.fmt = match map_int(&v, 1).unwrap().as_text().unwrap() {
                "packed" => AttestationStatementFormat::Packed,
                _ => AttestationStatementFormat::None,
            };
            out.auth_data = Bytes::try_from(map_bytes(&v, 2)).unwrap();
            let att = map_int(&v, 3).unwrap();
            out.att_stmt = Some(if att.as_map().unwrap().is_empty() {
                AttestationStatement::None(NoneAttestationStatement {})
            } else {
                let alg = map_text(att, "alg").unwrap().as_integer().unwrap();
                let sig = map_text(att, "sig").unwrap().as_bytes().unwrap();
                // ctap-types' statement holds one certificate: the leaf goes
                // through it, an intermediate is appended afterwards.
                let chain = map_text(att, "x5c").map(|c| c.as_array().unwrap().clone());
                let x5c = chain.as_ref().map(|chain| {
                    let mut list = heapless::Vec::new();
                    list.push(Bytes::try_from(chain[0].as_bytes().unwrap().as_slice()).unwrap())
                        .unwrap();
                    list
                });
                extra_certificates = chain.map(|c| c[1..].to_vec()).unwrap_or_default();
                AttestationStatement::Packed(PackedAttestationStatement {
                    alg: i32::try_from(alg).unwrap(),
                    sig: Bytes::try_from(sig.as_slice()).unwrap(),
                    x5c,
                })
            });
            out.large_blob_key = map_int(&v, 5)
                .map(|k| ByteArray::new(k.as_bytes().unwrap().as_slice().try_into().unwrap()));
            let bytes = serialized(&out);
            if extra_certificates.is_empty() {
                return bytes;
            }
            with_more_certificates(&bytes, extra_certificates)
        }

        /// ctap-types' serialized makeCredential response (status byte
        /// first) with `extra` appended to the packed statement's x5c,
        /// re-encoded by ciborium (which keeps the map order and writes
        /// shortest heads, as CTAP2's canonical form wants).
        fn with_more_certificates(serialized: &[u8], extra: Vec<Value>) -> Vec<u8> {
            let mut value: Value = ciborium::from_reader(&serialized[1..]).unwrap();
            let statement = value
                .as_map_mut()
                .unwrap()
                .iter_mut()
                .find(|(k, _)| *k == Value::from(3))
                .unwrap();
            let x5c = statement
                .1
                .as_map_mut()
                .unwrap()
                .iter_mut()
                .find(|(k, _)| *k == Value::from("x5c"))
                .unwrap();
            x5c.1.as_array_mut().unwrap().extend(extra);
            let mut out = vec![serialized[0]];
            ciborium::into_writer(&value, &mut out).unwrap();
            out
        }

        fn ga_oracle(raw: &[u8]) -> Vec<u8> {
            let (_, value) = decode_response(raw);
            let v = value.unwrap();
            let cred = map_int(&v, 1).unwrap();
            let mut out = get_assertion::Response::empty();
            out.credential = PublicKeyCredentialDescriptor {
                id: Bytes::try_from(map_text(cred, "id").unwrap().as_bytes().unwrap().as_slice())
                    .unwrap(),
                key_type: map_text(cred, "type")
                    .unwrap()
                    .as_text()
                    .unwrap()
                    .try_into()
                    .unwrap(),
            };
            out.auth_data = Bytes::try_from(map_bytes(&v, 2)).unwrap();
            out.signature = Bytes::try_from(map_bytes(&v, 3)).unwrap();
            out.user = map_int(&v, 4).map(|u| {
                let mut user = PublicKeyCredentialUserEntity::from(
                    Bytes::try_from(map_text(u, "id").unwrap().as_bytes().unwrap().as_slice())
                        .unwrap(),
                );
                let text =
                    |k: &str| map_text(u, k).map(|t| t.as_text().unwrap().try_into().unwrap());
                user.name = text("name");
                user.display_name = text("displayName");
                user
            });
            out.number_of_credentials =
                map_int(&v, 5).map(|n| u32::try_from(n.as_integer().unwrap()).unwrap());
            out.large_blob_key = map_int(&v, 7)
                .map(|k| ByteArray::new(k.as_bytes().unwrap().as_slice().try_into().unwrap()));
            serialized(&out)
        }

        fn lbk() -> Value {
            Value::Map(vec![(text("largeBlobKey"), Value::Bool(true))])
        }

        #[test]
        fn make_credential_responses_match_ctap_types() {
            let (attestation, _) = batch_attestation();
            let batch = Config {
                aaguid: AAGUID,
                attestation: Some(attestation.clone()),
                ..Config::default()
            };
            // The batch certificate with the intermediate CA that issued it.
            let mut chained = attestation.clone();
            chained.intermediate =
                Some(heapless::Vec::from_slice(&[0x30, 0x82, 0x01, 0x00, 0xAA]).unwrap());
            let chain = Config {
                aaguid: AAGUID,
                attestation: Some(chained),
                ..Config::default()
            };
            let none = Config {
                aaguid: AAGUID,
                attestation: Some(attestation),
                none_attestation: true,
                ..Config::default()
            };
            let backed_up = Config {
                aaguid: AAGUID,
                default_backup_eligible: true,
                default_backup_state: true,
                ..Config::default()
            };
            for config in [Config::default(), batch, chain, none, backed_up] {
                let mut h = Harness::with_config(config);
                let requests = [
                    Mc::new("a.example", b"u1").build(),
                    Mc::new("a.example", b"u2").rk().with(6, lbk()).build(),
                    Mc::new("a.example", b"u3")
                        .with(0x0B, Value::Array(vec![text("none")]))
                        .build(),
                ];
                for request in requests {
                    let raw = raw_call(&mut h, 0x01, request);
                    assert_eq!(raw, mc_oracle(&raw));
                }
            }
        }

        #[test]
        fn get_assertion_responses_match_ctap_types() {
            let mut h = Harness::with_config(Config {
                aaguid: AAGUID,
                builtin_uv: true,
                ..Config::default()
            });
            for user in [b"u1".as_slice(), b"u2"] {
                raw_call(
                    &mut h,
                    0x01,
                    Mc::new("a.example", user)
                        .rk()
                        .option("uv", true)
                        .with(6, lbk())
                        .build(),
                );
            }
            let plain = h.make_credential(Mc::new("a.example", b"u3").build());
            let cdh = client_data_hash("equivalence");
            let mut with_uv = ga("a.example", &cdh, &[], None);
            if let Value::Map(m) = &mut with_uv {
                m.push((int(4), lbk()));
                m.push((int(5), Value::Map(vec![(text("uv"), Value::Bool(true))])));
            }
            let requests = [
                ga("a.example", &cdh, &[&plain.id], None),
                ga("a.example", &cdh, &[], None),
                with_uv,
            ];
            for request in requests {
                let raw = raw_call(&mut h, 0x02, request);
                assert_eq!(raw, ga_oracle(&raw));
            }
            let raw = {
                let request = encode(0x08, None);
                h.raw(Protocol::Cbor, &request, false).1
            };
            assert_eq!(raw, ga_oracle(&raw));
        }
    }
}
