//! makeCredential's attestation modes through the authenticator: batch with
//! an intermediate CA (x5c = [batch, intermediate]), and "none" whatever the
//! platform prefers. (Byte-for-byte equality of the written responses with
//! ctap-types' serialization is tested in `cbor_out`.)

use ciborium::value::Value;

use crate::authenticator::testkit::*;
use crate::authenticator::Config;

/// Through the authenticator: x5c = [batch, intermediate], signed by the batch key.
#[test]
fn make_credential_with_an_intermediate_sends_both_certificates() {
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
    let mc = Mc::new("example.com", b"u").with(11, Value::Array(std::vec![Value::from("none")]));
    let cred = h.make_credential(mc.build());
    assert_eq!(cred.fmt, "none");
    assert_eq!(cred.att_stmt, Value::Map(std::vec![]));
}

/// `none_attestation`: fmt "none" even when the platform prefers packed;
/// U2F REGISTER still carries the batch certificate.
#[test]
fn none_attestation_answers_none_whatever_the_platform_prefers() {
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
