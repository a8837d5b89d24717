//! The real `ferrokey` binary over USB/IP: every certificate the key sends
//! (packed x5c over CTAP2, the U2F REGISTER certificate) parses with the strict
//! DER parser (`firmware_sim::attestation::check`, x509-cert with a re-encoding
//! round trip), meets WebAuthn §8.2.1 field by field where it is a packed
//! attestation certificate, carries a signature that verifies, and chains to the
//! root `ferrokey ca` prints.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use std::path::Path;
use std::process::Command;

use firmware_sim::attestation::check::{
    check_issued_by, check_packed_attestation, parse_strict, StrictCertificate,
};
use p256::ecdsa::signature::Verifier;
use process_support::*;
use x509_cert::certificate::Version;
use x509_cert::der::oid::db::rfc4519::{
    COMMON_NAME, COUNTRY_NAME, ORGANIZATIONAL_UNIT_NAME, ORGANIZATION_NAME,
};

const RP: &str = "example.com";
const FERROKEY_AAGUID: [u8; 16] = firmware_sim::identity::FERROKEY_AAGUID;

/// The root certificate `ferrokey ca` prints for this state directory.
fn ferrokey_ca_root(state: &Path) -> StrictCertificate {
    let out = Command::new(ferrokey_bin())
        .args(["ca", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let block = pem::parse(&out.stdout).unwrap();
    assert_eq!(block.tag(), "CERTIFICATE");
    let root = parse_strict(block.contents()).unwrap();
    assert!(root.is_ca());
    check_issued_by(&root, &root).unwrap();
    root
}

/// WebAuthn §8.2.1, field by field, on a strictly parsed certificate.
fn assert_webauthn_8_2_1(cert: &StrictCertificate, aaguid: &[u8; 16]) {
    assert_eq!(cert.version(), Version::V3);
    assert_eq!(cert.subject_attribute(COUNTRY_NAME).unwrap().len(), 1);
    assert_eq!(
        cert.subject_attribute(ORGANIZATION_NAME).unwrap(),
        vec!["ferrokey"]
    );
    assert_eq!(
        cert.subject_attribute(ORGANIZATIONAL_UNIT_NAME).unwrap(),
        vec!["Authenticator Attestation"]
    );
    assert_eq!(cert.subject_attribute(COMMON_NAME).unwrap().len(), 1);
    let (_, bc) = cert.basic_constraints.clone().expect("basicConstraints");
    assert!(!bc.ca);
    let (critical, found) = cert.aaguid.expect("AAGUID extension");
    assert!(!critical, "the AAGUID extension must not be critical");
    assert_eq!(&found, aaguid, "AAGUID extension = authData AAGUID");
    check_packed_attestation(cert, Some(aaguid)).unwrap();
}

/// The packed statement's x5c certificates, strictly parsed, and its signature
/// checked under x5c[0] over authData || clientDataHash.
fn packed_x5c(reg: &Registration) -> Vec<StrictCertificate> {
    assert_eq!(reg.fmt, "packed");
    assert_eq!(
        map_get_text(&reg.att_stmt, "alg").unwrap().as_integer(),
        Some((-7).into())
    );
    let sig = map_get_text(&reg.att_stmt, "sig")
        .unwrap()
        .as_bytes()
        .unwrap();
    let x5c: Vec<StrictCertificate> = map_get_text(&reg.att_stmt, "x5c")
        .expect("x5c")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| parse_strict(c.as_bytes().unwrap()).unwrap())
        .collect();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(x5c[0].public_key()).unwrap();
    let mut signed = reg.auth_data.clone();
    signed.extend_from_slice(&reg.client_data_hash);
    key.verify(&signed, &p256::ecdsa::Signature::from_der(sig).unwrap())
        .unwrap();
    x5c
}

/// A U2F REGISTER response, split.
struct U2fRegistration {
    public_key: Vec<u8>,
    key_handle: Vec<u8>,
    certificate: Vec<u8>,
    signature: Vec<u8>,
    challenge: [u8; 32],
    application: [u8; 32],
}

/// U2F REGISTER (extended-length APDU over CTAPHID_MSG).
fn u2f_register(
    client: &mut ferrokey_tests::ctaphid_client::CtapHidClient<Usb>,
) -> U2fRegistration {
    let challenge: [u8; 32] = rand::random();
    let application: [u8; 32] = rand::random();
    let mut apdu = vec![0x00, 0x01, 0x03, 0x00, 0x00, 0x00, 0x40];
    apdu.extend_from_slice(&challenge);
    apdu.extend_from_slice(&application);
    apdu.extend_from_slice(&[0x00, 0x00]);
    let response = client.msg(&apdu).unwrap();
    let (body, sw) = response.split_at(response.len() - 2);
    assert_eq!(sw, [0x90, 0x00], "REGISTER status");
    assert_eq!(body[0], 0x05);
    let public_key = body[1..66].to_vec();
    let kh_len = usize::from(body[66]);
    let key_handle = body[67..67 + kh_len].to_vec();
    let rest = &body[67 + kh_len..];
    // The certificate's length from its DER header (as U2F hosts find it).
    let cert_len = match rest[1] {
        n if n < 0x80 => 2 + usize::from(n),
        0x81 => 3 + usize::from(rest[2]),
        0x82 => 4 + (usize::from(rest[2]) << 8 | usize::from(rest[3])),
        other => panic!("certificate length form {other:#x}"),
    };
    U2fRegistration {
        public_key,
        key_handle,
        certificate: rest[..cert_len].to_vec(),
        signature: rest[cert_len..].to_vec(),
        challenge,
        application,
    }
}

impl U2fRegistration {
    /// Checks the signature (FIDO U2F raw message formats §4.3) under the
    /// certificate's key; returns the strictly parsed certificate.
    fn verify(&self) -> StrictCertificate {
        let cert = parse_strict(&self.certificate).unwrap();
        let mut signed = vec![0x00];
        signed.extend_from_slice(&self.application);
        signed.extend_from_slice(&self.challenge);
        signed.extend_from_slice(&self.key_handle);
        signed.extend_from_slice(&self.public_key);
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(cert.public_key()).unwrap();
        key.verify(
            &signed,
            &p256::ecdsa::Signature::from_der(&self.signature).unwrap(),
        )
        .unwrap();
        cert
    }
}

/// The credential public key (COSE EC2) from the attested credential data,
/// as an uncompressed SEC1 point.
fn credential_public_key(reg: &Registration) -> Vec<u8> {
    let start = 55 + reg.credential_id.len();
    let cose: ciborium::value::Value = ciborium::from_reader(&reg.auth_data[start..]).unwrap();
    let coord = |k: i64| map_get(&cose, k).unwrap().as_bytes().unwrap().clone();
    [vec![0x04], coord(-2), coord(-3)].concat()
}

/// Checks a U2F self-attestation certificate (modes none and self): strict DER,
/// self-signed by the new credential key.
fn assert_u2f_self_signed(u2f: &U2fRegistration) {
    let cert = u2f.verify();
    assert_eq!(cert.public_key(), u2f.public_key.as_slice());
    check_issued_by(&cert, &cert).unwrap();
}

fn serve(state: &Path, mode: &str) -> Served {
    Served::start(state, &["--attestation", mode])
}

#[test]
fn none_mode_gives_fmt_none_and_a_self_signed_u2f_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let served = serve(tmp.path(), "none");
    let mut client = connect(served.addr, "1-1");
    let reg = make_credential(&mut client, RP, "alice").unwrap();
    assert_eq!(reg.fmt, "none");
    assert_eq!(reg.att_stmt, ciborium::value::Value::Map(vec![]));
    assert_eq!(reg.aaguid, FERROKEY_AAGUID);
    assert_u2f_self_signed(&u2f_register(&mut client));
    served.stop();
}

#[test]
fn self_mode_signs_with_the_credential_key_without_x5c() {
    let tmp = tempfile::tempdir().unwrap();
    let served = serve(tmp.path(), "self");
    let mut client = connect(served.addr, "1-1");
    let reg = make_credential(&mut client, RP, "alice").unwrap();
    assert_eq!(reg.fmt, "packed");
    assert!(map_get_text(&reg.att_stmt, "x5c").is_none());
    assert_eq!(
        map_get_text(&reg.att_stmt, "alg").unwrap().as_integer(),
        Some((-7).into())
    );
    let sig = map_get_text(&reg.att_stmt, "sig")
        .unwrap()
        .as_bytes()
        .unwrap();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&credential_public_key(&reg)).unwrap();
    let signed = [reg.auth_data.clone(), reg.client_data_hash.to_vec()].concat();
    key.verify(&signed, &p256::ecdsa::Signature::from_der(sig).unwrap())
        .unwrap();
    assert_u2f_self_signed(&u2f_register(&mut client));
    served.stop();
}

#[test]
fn chain_mode_sends_the_batch_certificate_and_the_intermediate_up_to_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let served = serve(tmp.path(), "chain");
    let root = ferrokey_ca_root(tmp.path());
    let mut client = connect(served.addr, "1-1");
    let reg = make_credential(&mut client, RP, "alice").unwrap();
    let x5c = packed_x5c(&reg);
    assert_eq!(x5c.len(), 2);
    assert_webauthn_8_2_1(&x5c[0], &reg.aaguid);
    let intermediate = &x5c[1];
    assert!(intermediate.is_ca());
    assert_eq!(intermediate.version(), Version::V3);
    check_issued_by(&x5c[0], intermediate).unwrap();
    check_issued_by(intermediate, &root).unwrap();
    assert!(check_issued_by(&x5c[0], &root).is_err());
    // U2F carries one certificate: the batch certificate the intermediate issued.
    let u2f = u2f_register(&mut client);
    u2f.verify();
    assert_eq!(u2f.certificate, x5c[0].der);
    served.stop();

    // The same batch key as batch mode, and the same root.
    let served = serve(tmp.path(), "batch");
    let mut client = connect(served.addr, "1-1");
    let batch = packed_x5c(&make_credential(&mut client, RP, "bob").unwrap());
    assert_eq!(batch[0].public_key(), x5c[0].public_key());
    check_issued_by(&batch[0], &root).unwrap();
    assert_eq!(ferrokey_ca_root(tmp.path()).der, root.der);
    served.stop();
}

#[test]
fn batch_mode_certificates_are_strict_der_and_chain_to_the_ferrokey_ca_root() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let root = ferrokey_ca_root(tmp.path());
    let mut client = connect(served.addr, "1-1");

    let reg = make_credential(&mut client, RP, "alice").unwrap();
    assert_eq!(reg.aaguid, FERROKEY_AAGUID);
    let x5c = packed_x5c(&reg);
    assert_eq!(x5c.len(), 1);
    assert_webauthn_8_2_1(&x5c[0], &reg.aaguid);
    check_issued_by(&x5c[0], &root).unwrap();

    // U2F: the same batch certificate, and the signature verifies under it.
    let u2f = u2f_register(&mut client);
    let cert = u2f.verify();
    assert_eq!(u2f.certificate, x5c[0].der);
    check_issued_by(&cert, &root).unwrap();
    served.stop();
}

/// `ferrokey mds` describes the key that is served: its statement's
/// authenticatorGetInfo equals what the key answers over USB/IP (device state
/// aside), and its root is the `ferrokey ca` root.
#[test]
fn the_mds_statement_describes_the_served_key() {
    use base64::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &["--uv", "auto"]);
    let out = tmp.path().join("mds");
    let status = Command::new(ferrokey_bin())
        .args(["mds", "--uv", "auto", "--out"])
        .arg(&out)
        .arg("--state-dir")
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    let statement: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metadata-statement.json")).unwrap())
            .unwrap();
    let mut client = connect(served.addr, "1-1");
    let (code, body) = client.cbor(0x04, &[]).unwrap();
    assert_eq!(code, 0);
    let info: ciborium::value::Value = ciborium::from_reader(body.as_slice()).unwrap();
    let json = &statement["authenticatorGetInfo"];
    let texts = |k: i64| -> Vec<String> {
        map_get(&info, k)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_text().unwrap().to_string())
            .collect()
    };
    assert_eq!(json["versions"], serde_json::json!(texts(1)));
    assert_eq!(json["extensions"], serde_json::json!(texts(2)));
    let aaguid: String = map_get(&info, 3)
        .unwrap()
        .as_bytes()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(json["aaguid"], serde_json::json!(aaguid));
    for (name, value) in map_get(&info, 4).unwrap().as_map().unwrap() {
        let name = name.as_text().unwrap();
        assert_eq!(
            json["options"][name],
            serde_json::json!(value.as_bool().unwrap()),
            "option {name}"
        );
    }
    assert_eq!(json["options"]["uv"], serde_json::json!(true));
    assert_eq!(
        json["maxMsgSize"],
        serde_json::json!(i128::from(map_get(&info, 5).unwrap().as_integer().unwrap()) as i64)
    );
    let root = ferrokey_ca_root(tmp.path());
    let listed = base64::engine::general_purpose::STANDARD
        .decode(
            statement["attestationRootCertificates"][0]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(listed, root.der);
    served.stop();
}
