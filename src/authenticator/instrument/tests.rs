//! The instrument API, checked through CTAP with an independent CBOR decoder
//! (ciborium) and independent verifiers (p256, ed25519-dalek) holding the
//! public keys the test derived itself.

use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use ciborium::Value;
use p256::ecdsa::SigningKey;

use super::{CredentialProperties, ImportError, NewCredential, PrivateKey, ResponseOverrides};
use crate::authenticator::testkit::*;
use crate::authenticator::{Config, CounterMode, COUNTER_BLOCK};
use crate::store::MAX_CREDENTIAL_RECORDS;

const RP: &str = "instrument.example";

fn p256_key(seed: u8) -> (PrivateKey, p256::ecdsa::VerifyingKey) {
    let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
    (PrivateKey::Es256(sk.to_bytes().into()), *sk.verifying_key())
}

fn new<'a>(id: &'a [u8], key: &'a PrivateKey, resident: bool) -> NewCredential<'a> {
    NewCredential {
        id,
        rp_id: RP,
        resident,
        private_key: key,
        user_handle: if resident { b"user-handle" } else { b"" },
        sign_count: 0,
        large_blob: None,
        backup_eligible: None,
        backup_state: None,
        user_name: None,
        user_display_name: None,
    }
}

fn exportable() -> Harness {
    Harness::with_config(Config {
        aaguid: AAGUID,
        exportable: true,
        ..Config::default()
    })
}

/// One listed credential: (id, resident, sign count, private key bytes).
type Listed = (Vec<u8>, bool, u32, Option<[u8; 32]>);

/// All credentials, as [`Listed`].
fn listed(h: &mut Harness) -> Vec<Listed> {
    let mut out = vec![];
    h.auth
        .visit_credentials(|c| {
            out.push((
                c.id.to_vec(),
                c.resident,
                c.sign_count,
                c.private_key.map(|k| *k.as_bytes()),
            ))
        })
        .unwrap();
    out
}

/// One assertion that must succeed; returns (authData, signature, user, id).
fn assert_ok(
    h: &mut Harness,
    allow: &[&[u8]],
    cdh: &[u8; 32],
) -> (Vec<u8>, Vec<u8>, Option<Value>, Vec<u8>) {
    let (status, value, _) = h.get_assertion(ga(RP, cdh, allow, None));
    assert_eq!(status, 0, "getAssertion failed: {status:#x}");
    let value = value.unwrap();
    let id = map_text(map_int(&value, 1).unwrap(), "id")
        .unwrap()
        .as_bytes()
        .unwrap()
        .clone();
    (
        map_bytes(&value, 2).to_vec(),
        map_bytes(&value, 3).to_vec(),
        map_int(&value, 4).cloned(),
        id,
    )
}

fn count_of(auth_data: &[u8]) -> u32 {
    u32::from_be_bytes(auth_data[33..37].try_into().unwrap())
}

#[test]
fn imported_non_resident_p256_credential_signs_by_its_given_id() {
    let mut h = Harness::new();
    let (key, vk) = p256_key(0x21);
    for id in [&[0x00u8][..], &[0xAB; 255][..], b"webdriver credential"] {
        let mut c = new(id, &key, false);
        c.sign_count = 41;
        // The same key under three IDs: three credentials.
        h.auth.import_credential(&c).unwrap();
        let cdh = client_data_hash("imported");
        let (auth_data, sig, user, got_id) = assert_ok(&mut h, &[&[0x5A; 77], id], &cdh);
        assert_eq!(got_id, id);
        verify(&vk, &[&auth_data, &cdh], &sig);
        assert_eq!(&auth_data[..32], &sha256(RP.as_bytes()));
        assert_eq!(
            auth_data[32], 0x01,
            "UP; BE/BS follow the key's defaults (off)"
        );
        assert_eq!(count_of(&auth_data), 42);
        assert!(user.is_none());
    }
    // Not discoverable: an empty allowList finds nothing, another RP nothing.
    let cdh = client_data_hash("x");
    assert_eq!(h.get_assertion(ga(RP, &cdh, &[], None)).0, 0x2E);
    assert_eq!(
        h.get_assertion(ga("other.example", &cdh, &[b"webdriver credential"], None))
            .0,
        0x2E
    );
    // It survives a restart, and its key is still sealed in the record only.
    let mut h = h.reopen();
    let (auth_data, sig, _, _) = assert_ok(&mut h, &[b"webdriver credential"], &cdh);
    verify(&vk, &[&auth_data, &cdh], &sig);
    for key_record in h.storage.keys() {
        let raw = h.storage.get(key_record).unwrap();
        assert!(
            !raw.windows(32).any(|w| w == key.as_bytes()),
            "private key in clear"
        );
    }
}

#[test]
fn imported_resident_ed25519_credential_is_discoverable() {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let mut h = Harness::new();
    let seed = [0x33u8; 32];
    let vk: VerifyingKey = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let key = PrivateKey::Ed25519(seed);
    let mut c = new(b"ed-id", &key, true);
    c.user_name = Some("alice");
    c.user_display_name = Some("Alice A.");
    h.auth.import_credential(&c).unwrap();
    assert_eq!(h.auth.remaining_discoverable_credentials(), 99);
    let cdh = client_data_hash("ed");
    let (auth_data, sig, user, id) = assert_ok(&mut h, &[], &cdh);
    assert_eq!(id, b"ed-id");
    let sig = Signature::from_slice(&sig).unwrap();
    let message = [auth_data.as_slice(), &cdh].concat();
    vk.verify(&message, &sig).unwrap();
    let user = user.unwrap();
    assert_eq!(
        map_text(&user, "id").unwrap().as_bytes().unwrap(),
        b"user-handle"
    );
    assert_eq!(count_of(&auth_data), 1);
    // ferrokey list sees it too.
    let mut names = vec![];
    h.auth
        .for_each_resident_credential(|c| {
            names.push((
                c.rp_id.to_string(),
                c.user_name.map(String::from),
                c.sign_count,
            ))
        })
        .unwrap();
    assert_eq!(names, [(RP.to_string(), Some("alice".to_string()), 1)]);
}

#[test]
fn bad_imports_are_refused_with_a_reason_and_change_nothing() {
    let mut h = Harness::new();
    let (key, _) = p256_key(0x44);
    h.auth
        .import_credential(&new(b"taken", &key, false))
        .unwrap();
    let before = listed(&mut h);
    let long = [1u8; 256];
    let long_name = "n".repeat(65);
    let zero = PrivateKey::Es256([0; 32]);
    let too_big = PrivateKey::Es256([0xFF; 32]);
    let cases: Vec<(NewCredential<'_>, ImportError)> = vec![
        (new(b"", &key, false), ImportError::IdLength(0)),
        (new(&long, &key, false), ImportError::IdLength(256)),
        (
            NewCredential {
                rp_id: "",
                ..new(b"a", &key, false)
            },
            ImportError::RpIdLength(0),
        ),
        (new(b"a", &zero, false), ImportError::InvalidPrivateKey),
        (new(b"a", &too_big, false), ImportError::InvalidPrivateKey),
        (new(b"taken", &key, true), ImportError::DuplicateId),
        (
            NewCredential {
                user_handle: b"",
                ..new(b"a", &key, true)
            },
            ImportError::UserHandleLength(0),
        ),
        (
            NewCredential {
                user_handle: &[1; 65],
                ..new(b"a", &key, false)
            },
            ImportError::UserHandleLength(65),
        ),
        (
            NewCredential {
                user_name: Some(&long_name),
                ..new(b"a", &key, true)
            },
            ImportError::NameLength(65),
        ),
        (
            NewCredential {
                large_blob: Some(b"x"),
                ..new(b"a", &key, false)
            },
            ImportError::LargeBlobNeedsResident,
        ),
        (
            NewCredential {
                large_blob: Some(&[0; 3000]),
                ..new(b"a", &key, true)
            },
            ImportError::LargeBlobTooLarge,
        ),
    ];
    for (c, expected) in cases {
        assert_eq!(h.auth.import_credential(&c), Err(expected));
        assert!(!std::format!("{expected}").is_empty());
    }
    // An ID this key issued through CTAP is taken too.
    let made = h.make_credential(Mc::new(RP, b"u").build());
    assert_eq!(
        h.auth.import_credential(&new(&made.id, &key, false)),
        Err(ImportError::DuplicateId)
    );
    let after: Vec<_> = listed(&mut h)
        .into_iter()
        .filter(|c| c.0 != made.id)
        .collect();
    assert_eq!(after, before);
    assert_eq!(std::format!("{key:?}"), "PrivateKey(Es256, ..)");
}

#[test]
fn every_credential_is_listed_with_its_counter_and_exportable_key() {
    let mut h = exportable();
    let plain = h.make_credential(Mc::new(RP, b"u1").build());
    let resident = h.make_credential(Mc::new(RP, b"u2").rk().build());
    let (key, _) = p256_key(0x55);
    let mut c = new(b"imported", &key, true);
    c.sign_count = 7;
    h.auth.import_credential(&c).unwrap();
    let cdh = client_data_hash("list");
    for _ in 0..3 {
        assert_ok(&mut h, &[&plain.id], &cdh);
    }
    assert_ok(&mut h, &[&resident.id], &cdh);
    let all = listed(&mut h);
    assert_eq!(all.len(), 3);
    let find = |id: &[u8]| all.iter().find(|c| c.0 == id).unwrap().clone();
    assert_eq!((find(&plain.id).1, find(&plain.id).2), (false, 3));
    assert_eq!((find(&resident.id).1, find(&resident.id).2), (true, 1));
    assert_eq!((find(b"imported").1, find(b"imported").2), (true, 7));
    assert_eq!(find(b"imported").3, Some(*key.as_bytes()));
    // The exported keys are the credentials' keys: their public keys match
    // what makeCredential returned.
    for made in [&plain, &resident] {
        let exported = find(&made.id).3.unwrap();
        let vk = *SigningKey::from_slice(&exported).unwrap().verifying_key();
        assert_eq!(vk, made.public_key);
    }
    // Not exportable: the same list without keys.
    h.auth.config.exportable = false;
    assert!(listed(&mut h).iter().all(|c| c.3.is_none()));
    // After a restart the counters continue from their reservations.
    h.auth.persist_counters().unwrap();
    let mut h = h.reopen();
    let again: Vec<_> = listed(&mut h).into_iter().map(|c| (c.0, c.2)).collect();
    assert_eq!(
        again,
        all.iter().map(|c| (c.0.clone(), c.2)).collect::<Vec<_>>()
    );
}

#[test]
fn deleted_credentials_stop_working() {
    let mut h = Harness::new();
    let plain = h.make_credential(Mc::new(RP, b"u1").build());
    let resident = h.make_credential(Mc::new(RP, b"u2").rk().build());
    let (key, _) = p256_key(0x66);
    h.auth
        .import_credential(&new(b"imported", &key, false))
        .unwrap();
    let cdh = client_data_hash("del");
    for id in [&plain.id[..], &resident.id, b"imported"] {
        assert_ok(&mut h, &[id], &cdh);
        assert!(h.auth.delete_credential(id).unwrap());
        assert_eq!(
            h.get_assertion(ga(RP, &cdh, &[id], None)).0,
            0x2E,
            "deleted"
        );
        assert!(!h.auth.delete_credential(id).unwrap(), "already gone");
    }
    assert!(listed(&mut h).is_empty());
    // Still refused after a restart (the non-resident one's tombstone stays).
    let mut h = h.reopen();
    assert_eq!(h.get_assertion(ga(RP, &cdh, &[&plain.id], None)).0, 0x2E);
    assert_eq!(h.auth.remaining_discoverable_credentials(), 100);

    // Delete all: every credential ever issued, the PIN and counters kept.
    let again = h.make_credential(Mc::new(RP, b"u3").build());
    let last = count_of(&assert_ok(&mut h, &[&again.id], &cdh).0);
    h.auth.delete_all_credentials().unwrap();
    assert_eq!(h.get_assertion(ga(RP, &cdh, &[&again.id], None)).0, 0x2E);
    assert!(listed(&mut h).is_empty());
    h.auth.set_counter_mode(CounterMode::Global);
    let fresh = h.make_credential(Mc::new(RP, b"u4").build());
    assert!(count_of(&assert_ok(&mut h, &[&fresh.id], &cdh).0) > last);
}

#[test]
fn backup_flags_defaults_and_properties() {
    let mut h = Harness::new();
    h.auth.set_default_backup_flags(true, true);
    let made = h.make_credential(Mc::new(RP, b"u").build());
    assert_eq!(made.auth_data.flags, 0x41 | 0x08 | 0x10, "UP AT BE BS");
    let cdh = client_data_hash("be");
    let (auth_data, sig, _, _) = assert_ok(&mut h, &[&made.id], &cdh);
    verify(&made.public_key, &[&auth_data, &cdh], &sig);
    assert_eq!(auth_data[32], 0x01 | 0x08 | 0x10);
    // BS cleared, counter set.
    let props = CredentialProperties {
        backup_state: Some(false),
        sign_count: Some(1000),
        ..Default::default()
    };
    assert!(h.auth.set_credential_properties(&made.id, &props).unwrap());
    let (auth_data, sig, _, _) = assert_ok(&mut h, &[&made.id], &cdh);
    verify(&made.public_key, &[&auth_data, &cdh], &sig);
    assert_eq!(auth_data[32], 0x01 | 0x08);
    assert_eq!(count_of(&auth_data), 1001);
    // Set lower (a test rig may): the next is above the new value; durable.
    let props = CredentialProperties {
        sign_count: Some(5),
        ..Default::default()
    };
    h.auth.set_credential_properties(&made.id, &props).unwrap();
    let mut h = h.reopen();
    let (auth_data, _, _, _) = assert_ok(&mut h, &[&made.id], &cdh);
    assert_eq!(auth_data[32], 0x01 | 0x08, "properties survive a restart");
    assert_eq!(count_of(&auth_data), 6);
    assert!(!h
        .auth
        .set_credential_properties(b"unknown", &props)
        .unwrap());
    // Defaults apply to imports too, unless the import says otherwise.
    h.auth.set_default_backup_flags(true, false);
    let (key, vk) = p256_key(0x77);
    h.auth.import_credential(&new(b"d", &key, false)).unwrap();
    let c = NewCredential {
        backup_eligible: Some(false),
        ..new(b"e", &key, false)
    };
    h.auth.import_credential(&c).unwrap();
    let (auth_data, sig, _, _) = assert_ok(&mut h, &[b"d"], &cdh);
    verify(&vk, &[&auth_data, &cdh], &sig);
    assert_eq!(auth_data[32], 0x01 | 0x08);
    assert_eq!(assert_ok(&mut h, &[b"e"], &cdh).0[32], 0x01);
}

#[test]
fn response_overrides_break_what_they_say() {
    let mut h = Harness::with_config(Config {
        builtin_uv: true,
        ..Config::default()
    });
    let made = h.make_credential(Mc::new(RP, b"u").build());
    let cdh = client_data_hash("o");
    let uv_ga = || {
        let mut request = ga(RP, &cdh, &[&made.id], None);
        if let Value::Map(m) = &mut request {
            m.push((int(5), Value::Map(vec![(text("uv"), Value::Bool(true))])));
        }
        request
    };
    let (status, value, _) = h.get_assertion(uv_ga());
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| made.public_key);
    assert_eq!(a.auth_data.flags, 0x05, "UP UV");

    h.auth.set_response_overrides(ResponseOverrides {
        bad_uv: true,
        bad_up: true,
        bogus_signature: false,
    });
    let (_, value, _) = h.get_assertion(uv_ga());
    let a = check_assertion(&value.unwrap(), &cdh, |_| made.public_key);
    assert_eq!(a.auth_data.flags, 0x00, "UP and UV cleared, still signed");

    h.auth.set_response_overrides(ResponseOverrides {
        bogus_signature: true,
        ..Default::default()
    });
    let (_, value, _) = h.get_assertion(uv_ga());
    let value = value.unwrap();
    let sig = map_bytes(&value, 3);
    let parsed = p256::ecdsa::Signature::from_der(sig).expect("still valid DER");
    let message = [map_bytes(&value, 2), &cdh[..]].concat();
    use p256::ecdsa::signature::Verifier;
    assert!(
        made.public_key.verify(&message, &parsed).is_err(),
        "the signature must not verify"
    );
    // makeCredential's attestation signature too (self attestation here).
    let (status, value, _) = h.ctap2(0x01, Some(Mc::new(RP, b"v").build()));
    assert_eq!(status, 0);
    let value = value.unwrap();
    let raw = map_bytes(&value, 2).to_vec();
    let att = map_int(&value, 3).unwrap();
    let sig = map_text(att, "sig").unwrap().as_bytes().unwrap();
    let pk = parse_auth_data(&raw).public_key.unwrap();
    let parsed = p256::ecdsa::Signature::from_der(sig).unwrap();
    assert!(pk
        .verify(&[&raw[..], &client_data_hash("mc")].concat(), &parsed)
        .is_err());
    // Cleared: all good again.
    h.auth.set_response_overrides(ResponseOverrides::default());
    let (_, value, _) = h.get_assertion(uv_ga());
    check_assertion(&value.unwrap(), &cdh, |_| made.public_key);
}

#[test]
fn counter_modes() {
    let mut h = Harness::new();
    let a = h.make_credential(Mc::new(RP, b"a").build());
    let b = h.make_credential(Mc::new(RP, b"b").build());
    let cdh = client_data_hash("modes");
    let sign = |h: &mut Harness, made: &MadeCredential| {
        let (auth_data, sig, _, _) = assert_ok(h, &[&made.id], &cdh);
        verify(&made.public_key, &[&auth_data, &cdh], &sig);
        count_of(&auth_data)
    };
    // Per credential (default): each its own +1.
    assert_eq!(
        (sign(&mut h, &a), sign(&mut h, &a), sign(&mut h, &b)),
        (1, 2, 1)
    );
    // Global: one sequence across credentials, above every earlier value.
    h.auth.set_counter_mode(CounterMode::Global);
    let seq = [sign(&mut h, &b), sign(&mut h, &a), sign(&mut h, &b)];
    assert_eq!(seq, [3, 4, 5]);
    // Zero: always 0.
    h.auth.set_counter_mode(CounterMode::Zero);
    assert_eq!((sign(&mut h, &a), sign(&mut h, &b)), (0, 0));
    // Random increments: strictly increasing by 1..=16, per credential.
    h.auth.set_counter_mode(CounterMode::RandomIncrements);
    let mut last = 4;
    let mut steps = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let c = sign(&mut h, &a);
        assert!(c > last && c - last <= super::super::counters::MAX_RANDOM_INCREMENT);
        steps.insert(c - last);
        last = c;
    }
    assert!(steps.len() > 8, "the steps vary: {steps:?}");
    // Back to per credential: still above.
    h.auth.set_counter_mode(CounterMode::PerCredential);
    assert_eq!(sign(&mut h, &a), last + 1);
    assert_eq!(h.auth.counter_mode(), CounterMode::PerCredential);
}

#[test]
fn forgotten_non_resident_credentials_keep_working_and_counting_up() {
    let mut h = Harness::new();
    let first = h.make_credential(Mc::new(RP, b"first").build());
    let cdh = client_data_hash("forget");
    let mut last = 0;
    for _ in 0..5 {
        last = count_of(&assert_ok(&mut h, &[&first.id], &cdh).0);
    }
    // Fill every other record with imports, then one more CTAP credential
    // takes the oldest tracked record: the first one's.
    let (key, _) = p256_key(0x12);
    for i in 1..MAX_CREDENTIAL_RECORDS {
        let id = (i as u32).to_be_bytes();
        h.auth.import_credential(&new(&id, &key, false)).unwrap();
    }
    let second = h.make_credential(Mc::new(RP, b"second").build());
    let ids: Vec<Vec<u8>> = listed(&mut h).into_iter().map(|c| c.0).collect();
    assert!(
        ids.contains(&second.id) && !ids.contains(&first.id),
        "the first is forgotten"
    );
    // The forgotten credential still signs, above its last value, durably.
    let (auth_data, sig, _, _) = assert_ok(&mut h, &[&first.id], &cdh);
    verify(&first.public_key, &[&auth_data, &cdh], &sig);
    assert!(count_of(&auth_data) > last);
    last = count_of(&auth_data);
    let mut h = h.crash();
    assert!(count_of(&assert_ok(&mut h, &[&first.id], &cdh).0) > last);
    // Imports stop when no record can be freed.
    let (key2, _) = p256_key(0x13);
    h.auth.delete_credential(&second.id).unwrap();
    h.auth
        .import_credential(&new(b"last one", &key2, false))
        .unwrap();
    assert_eq!(
        h.auth.import_credential(&new(b"no room", &key2, false)),
        Err(ImportError::NoRoom)
    );
}

#[test]
fn counters_never_go_backwards_through_crashes_and_failing_writes() {
    // Random operations on three credentials (tracked, discoverable,
    // imported), with restarts that skip persist_counters (a crash) and
    // writes that fail, in every counter mode: each credential's counter
    // strictly increases.
    let mut h = Harness::new();
    let plain = h.make_credential(Mc::new(RP, b"p").build());
    let resident = h.make_credential(Mc::new(RP, b"r").rk().build());
    let (key, vk) = p256_key(0x31);
    h.auth.import_credential(&new(b"imp", &key, false)).unwrap();
    let ids: [&[u8]; 3] = [&plain.id, &resident.id, b"imp"];
    let keys = [plain.public_key, resident.public_key, vk];
    let mut last = [0u32; 3];
    let mut rng = crate::test_platform::seeded_rng(99);
    let cdh = client_data_hash("crash");
    let modes = [
        CounterMode::PerCredential,
        CounterMode::Global,
        CounterMode::RandomIncrements,
    ];
    let mut writes_failed = 0;
    let mut failing_until = 0;
    for step in 0..1200u32 {
        use rand_core::RngCore;
        let r = rng.next_u32();
        let mode = modes[(step / 200) as usize % 3];
        h.auth.set_counter_mode(mode);
        if step == failing_until {
            h.storage.set_fail_writes(None);
        }
        match r % 40 {
            0 if step >= failing_until => h = h.crash(),
            1 if step >= failing_until => {
                // Writes fail for a while (a full disk, an I/O error).
                h.storage
                    .set_fail_writes(Some(crate::platform::StorageError::Io));
                failing_until = step + 30;
            }
            _ => {}
        }
        let i = (r >> 16) as usize % 3;
        let (status, value, _) = h.get_assertion(ga(RP, &cdh, &[ids[i]], None));
        if status != 0 {
            assert_eq!(status, 0x7F, "only a storage failure may refuse");
            writes_failed += 1;
            continue;
        }
        let a = check_assertion(&value.unwrap(), &cdh, |_| keys[i]);
        assert!(
            a.auth_data.sign_count > last[i],
            "step {step}: counter went back"
        );
        last[i] = a.auth_data.sign_count;
    }
    assert!(writes_failed > 0, "the failures were exercised");
    assert!(
        last.iter().all(|&c| c > COUNTER_BLOCK),
        "marks were crossed: {last:?}"
    );
}

#[test]
fn imported_large_blob_is_read_back_through_ctap_and_listed() {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let mut h = Harness::new();
    let (key, vk) = p256_key(0x71);
    let c = NewCredential {
        large_blob: Some(b"large blob content"),
        ..new(b"lb", &key, true)
    };
    h.auth.import_credential(&c).unwrap();
    // getAssertion with largeBlobKey: the key for this credential.
    let cdh = client_data_hash("lb");
    let mut request = ga(RP, &cdh, &[b"lb"], None);
    if let Value::Map(m) = &mut request {
        m.push((
            int(4),
            Value::Map(vec![(text("largeBlobKey"), Value::Bool(true))]),
        ));
    }
    let (status, value, _) = h.get_assertion(request);
    assert_eq!(status, 0);
    let value = value.unwrap();
    check_assertion(&value, &cdh, |_| vk);
    let lbk = map_bytes(&value, 7).to_vec();
    // The array, read through authenticatorLargeBlobs, decoded and opened
    // independently (ciborium, aes-gcm).
    let (status, got, _) = h.ctap2(
        0x0C,
        Some(Value::Map(vec![(int(1), int(1024)), (int(3), int(0))])),
    );
    assert_eq!(status, 0);
    let serialized = map_bytes(&got.unwrap(), 1).to_vec();
    let (cbor, hash) = serialized.split_at(serialized.len() - 16);
    assert_eq!(&sha256(cbor)[..16], hash);
    let array: Value = ciborium::from_reader(cbor).unwrap();
    let entry = &array.as_array().unwrap()[0];
    let orig = u64::try_from(map_int(entry, 3).unwrap().as_integer().unwrap()).unwrap();
    let mut ad = b"blob".to_vec();
    ad.extend_from_slice(&orig.to_le_bytes());
    let deflated = aes_gcm::Aes256Gcm::new_from_slice(&lbk)
        .unwrap()
        .decrypt(
            aes_gcm::Nonce::from_slice(map_bytes(entry, 2)),
            Payload {
                msg: map_bytes(entry, 1),
                aad: &ad,
            },
        )
        .unwrap();
    // One stored DEFLATE block: header, LEN, NLEN, data.
    assert_eq!(deflated[0], 0x01);
    assert_eq!(&deflated[5..], b"large blob content");
    assert_eq!(orig, 18);
    // visit_credentials hands out the same.
    let mut seen = None;
    h.auth
        .visit_credentials(|c| seen = c.large_blob.map(|b| (b.deflated.to_vec(), b.original_size)))
        .unwrap();
    assert_eq!(seen, Some((deflated, 18)));
    // Importing a second credential's blob keeps the first.
    let (key2, _) = p256_key(0x72);
    let c = NewCredential {
        large_blob: Some(b"second"),
        user_handle: b"u2",
        ..new(b"lb2", &key2, true)
    };
    h.auth.import_credential(&c).unwrap();
    let mut blobs = vec![];
    h.auth
        .visit_credentials(|c| blobs.push(c.large_blob.map(|b| b.original_size)))
        .unwrap();
    assert_eq!(blobs, [Some(18), Some(6)]);
}

#[test]
fn a_ceremony_opens_the_credential_id_once() {
    let mut h = Harness::new();
    let made = h.make_credential(Mc::new(RP, b"u").build());
    let foreign = [0x5Au8; 77];
    let cdh = client_data_hash("once");
    let unwraps = || crate::credential::UNWRAPS.with(|n| n.get());
    let before = unwraps();
    let (status, value, needed) = h.get_assertion(ga(RP, &cdh, &[&foreign, &made.id], None));
    assert_eq!((status, needed), (0, true), "ran before and after presence");
    check_assertion(&value.unwrap(), &cdh, |_| made.public_key);
    assert_eq!(unwraps() - before, 2, "the foreign ID and ours, once each");
    // A change between the two runs is seen: the run after presence looks again.
    let (outcome, _, _) = h.ctap2_once(0x02, Some(ga(RP, &cdh, &[&made.id], None)));
    assert_eq!(outcome, crate::app::Outcome::NeedsPresence);
    assert!(h.auth.delete_credential(&made.id).unwrap());
    let request = encode(0x02, Some(ga(RP, &cdh, &[&made.id], None)));
    let (_, response) = h.raw(crate::app::Protocol::Cbor, &request, true);
    assert_eq!(response, [0x2E]);
}

#[test]
fn u2f_registrations_are_listed_by_application_parameter() {
    let mut h = exportable();
    let app = sha256(b"https://u2f.example");
    let mut apdu = vec![0x00, 0x01, 0x00, 0x00, 0x40];
    apdu.extend_from_slice(&[0x11; 32]);
    apdu.extend_from_slice(&app);
    let (data, sw) = h.u2f(&apdu);
    assert_eq!(sw, 0x9000);
    let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&data[1..66]).unwrap();
    let handle = data[67..67 + usize::from(data[66])].to_vec();
    let mut seen = vec![];
    h.auth
        .visit_credentials(|c| {
            seen.push((
                c.id.to_vec(),
                c.rp_id.is_none(),
                *c.rp_id_hash,
                c.resident,
                c.private_key.cloned(),
            ))
        })
        .unwrap();
    assert_eq!(seen.len(), 1);
    let (id, no_rp_id, hash, resident, key) = seen.pop().unwrap();
    assert_eq!((id, no_rp_id, hash, resident), (handle, true, app, false));
    // The exported key is the registered one.
    let exported = SigningKey::from_slice(key.unwrap().as_bytes()).unwrap();
    assert_eq!(*exported.verifying_key(), public);
}
