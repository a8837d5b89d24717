//! The real `ferrokey` binary over USB/IP: batch attestation, persistence of
//! credentials and counters across restarts, and counters that never go back
//! after `kill -9`.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use std::process::Command;
use std::time::{Duration, Instant};

use p256::ecdsa::signature::Verifier;
use process_support::*;
use x509_parser::prelude::*;

const RP: &str = "example.com";
const FERROKEY_AAGUID: [u8; 16] = firmware_sim::identity::FERROKEY_AAGUID;

#[test]
fn packed_batch_attestation_verifies_and_matches_the_aaguid() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let mut client = connect(served.addr, "1-1");
    let reg = make_credential(&mut client, RP, "alice").unwrap();
    assert_eq!(reg.fmt, "packed");
    assert_eq!(reg.aaguid, FERROKEY_AAGUID);

    let alg = map_get_text(&reg.att_stmt, "alg").unwrap();
    assert_eq!(alg.as_integer(), Some((-7).into()));
    let sig = map_get_text(&reg.att_stmt, "sig")
        .unwrap()
        .as_bytes()
        .unwrap();
    let x5c = map_get_text(&reg.att_stmt, "x5c")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(x5c.len(), 1);
    let cert_der = x5c[0].as_bytes().unwrap();
    let (_, cert) = X509Certificate::from_der(cert_der).unwrap();

    // WebAuthn §8.2.1: OU, CA=false, AAGUID extension equal to authData's.
    assert!(cert
        .subject()
        .iter_organizational_unit()
        .any(|ou| ou.as_str().unwrap() == "Authenticator Attestation"));
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    let oid = x509_parser::der_parser::oid!(1.3.6 .1 .4 .1 .45724 .1 .1 .4);
    let ext = cert.extensions().iter().find(|e| e.oid == oid).unwrap();
    assert!(!ext.critical);
    assert_eq!(&ext.value[2..], &reg.aaguid);

    // The attestation signature verifies under the certificate's key.
    let key =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&cert.public_key().subject_public_key.data)
            .unwrap();
    let signature = p256::ecdsa::Signature::from_der(sig).unwrap();
    let mut signed = reg.auth_data.clone();
    signed.extend_from_slice(&reg.client_data_hash);
    key.verify(&signed, &signature).unwrap();

    // And the certificate chains to the root `ferrokey ca` prints.
    let out = Command::new(ferrokey_bin())
        .args(["ca", "--state-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let (_, pem) = x509_parser::pem::parse_x509_pem(&out.stdout).unwrap();
    let root = pem.parse_x509().unwrap();
    assert_eq!(cert.issuer(), root.subject());
    served.stop();
}

#[test]
fn restart_keeps_credentials_and_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let mut client = connect(served.addr, "1-1");
    let reg = make_credential(&mut client, RP, "bob").unwrap();
    let mut last = 0;
    for _ in 0..3 {
        let counter = get_assertion(&mut client, RP, &reg.credential_id).unwrap();
        assert!(counter > last, "{counter} after {last}");
        last = counter;
    }
    drop(client);
    served.stop();

    let listing = Command::new(ferrokey_bin())
        .args(["list", "--state-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(listing.contains(&format!("rp={RP} user=bob")), "{listing}");
    assert!(listing.contains(&format!("sign_count={last}")), "{listing}");

    let served = Served::start(tmp.path(), &[]);
    let mut client = connect(served.addr, "1-1");
    let counter = get_assertion(&mut client, RP, &reg.credential_id).unwrap();
    assert!(counter > last, "{counter} after restart, was {last}");
    drop(client);
    served.stop();
}

#[test]
fn kill_9_never_makes_the_counter_go_back() {
    let tmp = tempfile::tempdir().unwrap();
    let credential_id = {
        let served = Served::start(tmp.path(), &[]);
        let mut client = connect(served.addr, "1-1");
        let reg = make_credential(&mut client, RP, "carol").unwrap();
        drop(client);
        served.stop();
        reg.credential_id
    };

    let mut highest = 0u32;
    let mut total = 0usize;
    for round in 0..4u64 {
        let served = Served::start(tmp.path(), &[]);
        let mut client = connect(served.addr, "1-1");
        // Kill at a different point of the assertion loop each round.
        let pid = served.child.id();
        let delay = Duration::from_millis(150 + 137 * round);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            kill(pid, SIGKILL);
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut first = true;
        while Instant::now() < deadline {
            match get_assertion(&mut client, RP, &credential_id) {
                Ok(counter) => {
                    assert!(
                        counter > highest,
                        "round {round}: counter {counter} after {highest}{}",
                        if first { " (first after restart)" } else { "" }
                    );
                    highest = counter;
                    first = false;
                    total += 1;
                }
                Err(_) => break, // the server died
            }
        }
        killer.join().unwrap();
        drop(client);
        drop(served);
    }
    eprintln!("{total} assertions over 4 killed runs; highest counter {highest}");
    assert!(total >= 4, "only {total} assertions got through");

    // A final clean start still counts up from the highest value seen.
    let served = Served::start(tmp.path(), &[]);
    let mut client = connect(served.addr, "1-1");
    let counter = get_assertion(&mut client, RP, &credential_id).unwrap();
    assert!(counter > highest, "{counter} after {highest}");
    drop(client);
    served.stop();
}
