//! The real `ferrokey` binary over USB/IP: batch attestation, persistence of
//! credentials and counters across restarts, and counters that never go back
//! after `kill -9`.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use std::process::Command;
use std::time::{Duration, Instant};

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
    assert_eq!(
        reg.auth_data.attested.as_ref().unwrap().aaguid,
        FERROKEY_AAGUID
    );

    let alg = get_text(&reg.att_stmt, "alg").unwrap();
    assert_eq!(alg.as_integer(), Some((-7).into()));
    let x5c = get_text(&reg.att_stmt, "x5c").unwrap().as_array().unwrap();
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
    assert_eq!(
        &ext.value[2..],
        &reg.auth_data.attested.as_ref().unwrap().aaguid
    );

    // The attestation signature verifies under the certificate's key.
    let key =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&cert.public_key().subject_public_key.data)
            .unwrap();
    reg.verify_packed_with(&PublicKey::Es256(key)).unwrap();

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
        let counter = get_assertion(&mut client, RP, &reg).unwrap();
        assert!(counter > last, "{counter} after {last}");
        last = counter;
    }
    drop(client);
    served.stop();

    // `ferrokey list` agrees, compared as numbers (not as substrings).
    let listed = listed_credentials(tmp.path());
    assert_eq!(listed, vec![(RP.to_string(), "bob".to_string(), last)]);

    // The restarted key signs with the same private key, and counts on.
    let served = Served::start(tmp.path(), &[]);
    let mut client = connect(served.addr, "1-1");
    let counter = get_assertion(&mut client, RP, &reg).unwrap();
    assert!(counter > last, "{counter} after restart, was {last}");
    drop(client);
    served.stop();
}

/// Runs assertions until the server is killed by another thread. Every answer
/// must be a signature (verified) with a counter above every one seen before;
/// an error status (a storage failure, say) fails the test, and a transport
/// failure counts as the kill only if the process is really gone.
#[test]
fn kill_9_never_makes_the_counter_go_back() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = {
        let served = Served::start(tmp.path(), &[]);
        let mut client = connect(served.addr, "1-1");
        let reg = make_credential(&mut client, RP, "carol").unwrap();
        drop(client);
        served.stop();
        reg
    };

    let mut highest = 0u32;
    let mut total = 0usize;
    for round in 0..4u64 {
        let mut served = Served::start(tmp.path(), &[]);
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
        let mut died = false;
        while Instant::now() < deadline {
            match get_assertion(&mut client, RP, &reg) {
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
                Err(AssertError::Status(status)) => {
                    panic!("round {round}: the key answered status {status:#04x}, not a signature")
                }
                Err(AssertError::Transport(e)) => {
                    killer.join().unwrap();
                    let status = served.wait_exit();
                    assert_eq!(
                        std::os::unix::process::ExitStatusExt::signal(&status),
                        Some(SIGKILL),
                        "round {round}: transport error {e} but the server was not killed ({status:?})"
                    );
                    died = true;
                    break;
                }
            }
        }
        assert!(died, "round {round}: the server outlived the kill");
        drop(client);
        drop(served);
    }
    eprintln!("{total} assertions over 4 killed runs; highest counter {highest}");
    assert!(total >= 4, "only {total} assertions got through");

    // A final clean start still counts up from the highest value seen, and
    // `ferrokey list` holds no smaller value.
    let listed = listed_credentials(tmp.path());
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].2 >= highest,
        "listed {} after {highest}",
        listed[0].2
    );
    let served = Served::start(tmp.path(), &[]);
    let mut client = connect(served.addr, "1-1");
    let counter = get_assertion(&mut client, RP, &reg).unwrap();
    assert!(counter > highest, "{counter} after {highest}");
    drop(client);
    served.stop();
}
