//! makeCredential's response with the intermediate CA after the batch
//! certificate in the packed statement's x5c. ctap-types'
//! `PackedAttestationStatement` holds one certificate, so this serializes the
//! response as ctap-types does, with the longer x5c.

use ctap_types::ctap2::make_credential::Response;
use ctap_types::ctap2::AttestationStatement;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// `response` with `intermediate` appended to its packed statement's x5c.
pub(crate) struct WithIntermediate<'a> {
    pub(crate) response: &'a Response,
    pub(crate) intermediate: &'a [u8],
}

/// A CBOR byte string.
struct ByteString<'a>(&'a [u8]);

impl Serialize for ByteString<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Certificates as a CBOR array of byte strings.
struct Certificates<'a>(&'a [&'a [u8]]);

impl Serialize for Certificates<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for cert in self.0 {
            seq.serialize_element(&ByteString(cert))?;
        }
        seq.end()
    }
}

/// The packed statement `{alg, sig, x5c}`, keys in CTAP2 canonical order.
struct Statement<'a> {
    alg: i32,
    sig: &'a [u8],
    x5c: &'a [&'a [u8]],
}

impl Serialize for Statement<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("alg", &self.alg)?;
        map.serialize_entry("sig", &ByteString(self.sig))?;
        map.serialize_entry("x5c", &Certificates(self.x5c))?;
        map.end()
    }
}

impl Serialize for WithIntermediate<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.response;
        let entries = 2
            + usize::from(r.att_stmt.is_some())
            + usize::from(r.ep_att.is_some())
            + usize::from(r.large_blob_key.is_some())
            + usize::from(r.unsigned_extension_outputs.is_some());
        let mut map = serializer.serialize_map(Some(entries))?;
        map.serialize_entry(&1u8, &r.fmt)?;
        map.serialize_entry(&2u8, &r.auth_data)?;
        match &r.att_stmt {
            Some(AttestationStatement::Packed(packed)) => {
                match packed.x5c.as_ref().and_then(|c| c.first()) {
                    Some(leaf) => {
                        let x5c: [&[u8]; 2] = [leaf, self.intermediate];
                        let statement = Statement {
                            alg: packed.alg,
                            sig: &packed.sig,
                            x5c: &x5c,
                        };
                        map.serialize_entry(&3u8, &statement)?;
                    }
                    None => map.serialize_entry(&3u8, packed)?,
                }
            }
            Some(other) => map.serialize_entry(&3u8, other)?,
            None => {}
        }
        if let Some(ep_att) = &r.ep_att {
            map.serialize_entry(&4u8, ep_att)?;
        }
        if let Some(key) = &r.large_blob_key {
            map.serialize_entry(&5u8, key)?;
        }
        if let Some(outputs) = &r.unsigned_extension_outputs {
            map.serialize_entry(&6u8, outputs)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::value::Value;
    use ctap_types::ctap2::{AttestationStatementFormat, PackedAttestationStatement};
    use ctap_types::Bytes;

    fn response(large_blob_key: bool) -> Response {
        let mut r = Response::empty();
        r.fmt = AttestationStatementFormat::Packed;
        r.auth_data = Bytes::try_from(&[0xAB; 164][..]).unwrap();
        let mut x5c = heapless::Vec::new();
        x5c.push(Bytes::try_from(&[0x30, 0x03, 0x02, 0x01, 0x01][..]).unwrap())
            .unwrap();
        r.att_stmt = Some(AttestationStatement::Packed(PackedAttestationStatement {
            alg: -7,
            sig: Bytes::try_from(&[0x30, 0x06, 1, 2, 3, 4, 5, 6][..]).unwrap(),
            x5c: Some(x5c),
        }));
        if large_blob_key {
            r.large_blob_key = Some([7; 32].into());
        }
        r
    }

    fn cbor<T: Serialize>(value: &T) -> std::vec::Vec<u8> {
        let mut buf = [0u8; 2048];
        cbor_smol::cbor_serialize(value, &mut buf).unwrap().to_vec()
    }

    #[test]
    fn the_response_is_ctap_types_own_with_the_intermediate_appended_to_x5c() {
        let intermediate = [0x30, 0x04, 0x02, 0x02, 0x01, 0x02];
        for large_blob_key in [false, true] {
            let r = response(large_blob_key);
            let ours: Value = ciborium::from_reader(
                cbor(&WithIntermediate {
                    response: &r,
                    intermediate: &intermediate,
                })
                .as_slice(),
            )
            .unwrap();
            let mut theirs: Value = ciborium::from_reader(cbor(&r).as_slice()).unwrap();
            // ctap-types' encoding, with the intermediate added to x5c by hand.
            let statement = theirs
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
            x5c.1
                .as_array_mut()
                .unwrap()
                .push(Value::Bytes(intermediate.to_vec()));
            assert_eq!(ours, theirs, "large_blob_key: {large_blob_key}");
        }
    }

    #[test]
    fn a_statement_without_x5c_is_left_as_it_is() {
        let mut r = response(false);
        if let Some(AttestationStatement::Packed(p)) = &mut r.att_stmt {
            p.x5c = None;
        }
        let ours = cbor(&WithIntermediate {
            response: &r,
            intermediate: &[0x30, 0x00],
        });
        assert_eq!(ours, cbor(&r));
    }

    /// Through the authenticator: x5c = [batch, intermediate], signed by the batch key.
    #[test]
    fn make_credential_with_an_intermediate_sends_both_certificates() {
        use crate::authenticator::testkit::*;
        use crate::authenticator::Config;
        let (mut attestation, batch_vk) = batch_attestation();
        let cert = attestation.certificate.to_vec();
        let intermediate = b"\x30\x12\x02\x01\x02dummy-intermediate";
        attestation.intermediate = Some(heapless::Vec::from_slice(intermediate).unwrap());
        let mut h = Harness::with_config(Config {
            aaguid: AAGUID,
            attestation: Some(attestation),
            ..Config::default()
        });
        let mc = Mc::new("example.com", b"u");
        let cred = h.make_credential(mc.build());
        assert_eq!(cred.fmt, "packed");
        let x5c = map_text(&cred.att_stmt, "x5c").unwrap().as_array().unwrap();
        assert_eq!(x5c, &std::vec![bytes(&cert), bytes(intermediate)]);
        let sig = map_text(&cred.att_stmt, "sig").unwrap().as_bytes().unwrap();
        verify(&batch_vk, &[&cred.raw_auth_data, &mc.cdh], sig);
        // A platform that asks for "none" gets none, without the chain.
        let mc =
            Mc::new("example.com", b"u").with(11, Value::Array(std::vec![Value::from("none")]));
        let cred = h.make_credential(mc.build());
        assert_eq!(cred.fmt, "none");
        assert_eq!(cred.att_stmt, Value::Map(std::vec![]));
    }

    /// `none_attestation`: fmt "none" even when the platform prefers packed;
    /// U2F REGISTER still carries the batch certificate.
    #[test]
    fn none_attestation_answers_none_whatever_the_platform_prefers() {
        use crate::authenticator::testkit::*;
        use crate::authenticator::Config;
        let (attestation, _) = batch_attestation();
        let cert = attestation.certificate.to_vec();
        let mut h = Harness::with_config(Config {
            aaguid: AAGUID,
            attestation: Some(attestation),
            none_attestation: true,
            ..Config::default()
        });
        for mc in [
            Mc::new("example.com", b"u"),
            Mc::new("example.com", b"u").with(11, Value::Array(std::vec![Value::from("packed")])),
        ] {
            let cred = h.make_credential(mc.build());
            assert_eq!(cred.fmt, "none");
            assert_eq!(cred.att_stmt, Value::Map(std::vec![]));
            assert_eq!(cred.auth_data.aaguid, Some(AAGUID));
        }
        let mut apdu = std::vec![0x00, 0x01, 0x03, 0x00, 0x00, 0x00, 0x40];
        apdu.extend_from_slice(&[0x11; 64]);
        apdu.extend_from_slice(&[0x00, 0x00]);
        let (data, status) = h.u2f(&apdu);
        assert_eq!(status, 0x9000);
        assert!(data.windows(cert.len()).any(|w| w == cert.as_slice()));
    }
}
