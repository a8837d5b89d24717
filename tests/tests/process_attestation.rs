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

use ferrokey_tests::u2f::{self, U2fRegistration};
use firmware_sim::attestation::check::{
    check_issued_by, check_packed_attestation, parse_strict, StrictCertificate,
};
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
    assert_eq!(reg.att_alg(), Some(ctap2::alg::ES256));
    let x5c: Vec<StrictCertificate> = reg
        .x5c()
        .unwrap()
        .expect("x5c")
        .iter()
        .map(|c| parse_strict(c).unwrap())
        .collect();
    reg.verify_packed_with(&certificate_key(&x5c[0])).unwrap();
    x5c
}

/// The P-256 key of a strictly parsed certificate.
fn certificate_key(cert: &StrictCertificate) -> PublicKey {
    PublicKey::Es256(p256::ecdsa::VerifyingKey::from_sec1_bytes(cert.public_key()).unwrap())
}

/// U2F REGISTER (extended-length APDU over CTAPHID_MSG), split by the shared
/// parser, its signature (FIDO U2F raw message formats §4.3) verified under
/// the attestation certificate's key; returns the registration and the
/// strictly parsed certificate.
fn u2f_register(client: &mut Client) -> (U2fRegistration, StrictCertificate) {
    let registration = u2f::register(client, |der| {
        let cert = parse_strict(der).map_err(|e| format!("{e:?}"))?;
        p256::ecdsa::VerifyingKey::from_sec1_bytes(cert.public_key()).map_err(|e| e.to_string())
    })
    .unwrap();
    let cert = parse_strict(&registration.certificate).unwrap();
    (registration, cert)
}

/// Checks a U2F self-attestation certificate (modes none and self): strict DER,
/// self-signed by the new credential key.
fn assert_u2f_self_signed(client: &mut Client) {
    let (u2f, cert) = u2f_register(client);
    assert_eq!(
        cert.public_key(),
        u2f.public_key.to_encoded_point(false).as_bytes()
    );
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
    assert_eq!(reg.aaguid(), FERROKEY_AAGUID);
    assert_u2f_self_signed(&mut client);
    served.stop();
}

#[test]
fn self_mode_signs_with_the_credential_key_without_x5c() {
    let tmp = tempfile::tempdir().unwrap();
    let served = serve(tmp.path(), "self");
    let mut client = connect(served.addr, "1-1");
    let reg = make_credential(&mut client, RP, "alice").unwrap();
    assert_eq!(reg.fmt, "packed");
    assert_eq!(reg.x5c(), Ok(None));
    assert_eq!(reg.att_alg(), Some(ctap2::alg::ES256));
    // Signed by the credential key of the attested credential data (parsed
    // strictly from its COSE_Key).
    reg.public_key
        .verify(&reg.signed_bytes(), reg.att_sig().unwrap())
        .unwrap();
    assert_u2f_self_signed(&mut client);
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
    assert_webauthn_8_2_1(&x5c[0], &reg.aaguid());
    let intermediate = &x5c[1];
    assert!(intermediate.is_ca());
    assert_eq!(intermediate.version(), Version::V3);
    check_issued_by(&x5c[0], intermediate).unwrap();
    check_issued_by(intermediate, &root).unwrap();
    assert!(check_issued_by(&x5c[0], &root).is_err());
    // U2F carries one certificate: the batch certificate the intermediate issued.
    let (u2f, _) = u2f_register(&mut client);
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
    assert_eq!(reg.aaguid(), FERROKEY_AAGUID);
    let x5c = packed_x5c(&reg);
    assert_eq!(x5c.len(), 1);
    assert_webauthn_8_2_1(&x5c[0], &reg.aaguid());
    check_issued_by(&x5c[0], &root).unwrap();

    // U2F: the same batch certificate, and the signature verifies under it.
    let (u2f, cert) = u2f_register(&mut client);
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
    let info = ctap2::get_info(&mut client).unwrap();
    let json = &statement["authenticatorGetInfo"];
    let texts = |k: i64| -> Vec<String> {
        get(&info, k)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_text().unwrap().to_string())
            .collect()
    };
    assert_eq!(json["versions"], serde_json::json!(texts(1)));
    assert_eq!(json["extensions"], serde_json::json!(texts(2)));
    let aaguid = hex(get_bytes(&info, 3).unwrap());
    assert_eq!(json["aaguid"], serde_json::json!(aaguid));
    for (name, value) in get(&info, 4).unwrap().as_map().unwrap() {
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
        serde_json::json!(get_u64(&info, 5).unwrap())
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
