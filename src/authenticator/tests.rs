//! Start-up, persistence and listing.

use std::vec::Vec;

use super::testkit::*;
use super::*;
use crate::platform::RecordKey;
use crate::test_platform::{seeded_rng, MemoryStorage, ScriptedPresence};

fn platform(
    storage: &MemoryStorage,
) -> Platform<MemoryStorage, ScriptedPresence, crate::test_platform::ChaCha20Rng> {
    Platform {
        storage: storage.clone(),
        presence: ScriptedPresence::default(),
        rng: seeded_rng(9),
    }
}

#[test]
fn first_start_creates_and_persists_device_state() {
    let storage = MemoryStorage::new();
    let _auth = Authenticator::new(platform(&storage), Config::default()).unwrap();
    let record = storage.get(RecordKey::Device).unwrap();
    assert_eq!(record.len(), 39);
    // A second start loads the same state instead of making a new secret.
    let _again = Authenticator::new(platform(&storage), Config::default()).unwrap();
    assert_eq!(storage.get(RecordKey::Device).unwrap(), record);
}

#[test]
fn corrupt_device_record_refuses_to_start_and_is_kept() {
    for garbage in [
        &b"garbage"[..],
        &[0u8; 39][..],
        b"FD\x02aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let storage = MemoryStorage::new();
        storage.put_raw(RecordKey::Device, garbage);
        let err = Authenticator::new(platform(&storage), Config::default()).err();
        assert_eq!(err, Some(InitError::Corrupt));
        assert_eq!(
            storage.get(RecordKey::Device).unwrap(),
            garbage,
            "never overwritten"
        );
    }
    // A record the back end cannot read back intact is corrupt too.
    let storage = MemoryStorage::new();
    storage.put_raw(RecordKey::Device, &[0; 5000]);
    assert_eq!(
        Authenticator::new(platform(&storage), Config::default()).err(),
        Some(InitError::Corrupt)
    );
}

#[test]
fn storage_failure_at_start_is_reported_as_such() {
    let storage = MemoryStorage::new();
    storage.set_fail_reads(Some(StorageError::Io));
    assert_eq!(
        Authenticator::new(platform(&storage), Config::default()).err(),
        Some(InitError::Storage(StorageError::Io))
    );
    let storage = MemoryStorage::new();
    storage.set_fail_writes(Some(StorageError::Io));
    assert_eq!(
        Authenticator::new(platform(&storage), Config::default()).err(),
        Some(InitError::Storage(StorageError::Io))
    );
    assert!(storage.keys().is_empty());
}

#[test]
fn invalid_attestation_key_is_rejected() {
    let storage = MemoryStorage::new();
    let config = Config {
        attestation: Some(Attestation {
            private_key: [0; 32],
            certificate: heapless::Vec::new(),
            intermediate: None,
        }),
        ..Config::default()
    };
    assert_eq!(
        Authenticator::new(platform(&storage), config).err(),
        Some(InitError::InvalidAttestationKey)
    );
}

#[test]
fn corrupt_credential_record_is_skipped_and_kept() {
    let mut h = Harness::new();
    h.make_credential(Mc::new("a.example", b"1").rk().build());
    h.storage.put_raw(RecordKey::Credential(1), b"not a record");
    let mut h = h.reopen();
    let mut listed = Vec::new();
    h.auth
        .for_each_resident_credential(|c| listed.push(c.slot))
        .unwrap();
    assert_eq!(listed, [0]);
    assert_eq!(h.auth.remaining_discoverable_credentials(), 98);
    // New credentials avoid the corrupt slot.
    h.make_credential(Mc::new("a.example", b"2").rk().build());
    assert_eq!(
        h.storage.get(RecordKey::Credential(1)).unwrap(),
        b"not a record"
    );
    assert!(h.storage.get(RecordKey::Credential(2)).is_some());
}

#[test]
fn debug_output_hides_secrets() {
    let (attestation, _) = batch_attestation();
    let text = std::format!("{attestation:?}");
    assert!(!text.contains("66"), "{text}");
    let h = Harness::new();
    let text = std::format!("{:?}", h.auth.state);
    assert!(
        text.contains("counter_mark") && !text.contains('['),
        "{text}"
    );
}

/// State as the previous formats left it (device record v1, credential
/// record v2, credential IDs v1) keeps loading and working.
#[test]
fn state_of_the_previous_formats_keeps_working() {
    use crate::credential::{self, Algorithm, CredentialFlags, CredentialKey, CredentialRecord};
    use crate::crypto::WrapKey;
    let secret = [0x5Eu8; 32];
    let rp = "legacy.example";
    let rp_hash = sha256(rp.as_bytes());
    let wrap_key = WrapKey::derive(&secret).unwrap();
    let mut rng = seeded_rng(4);
    let resident_key = p256::ecdsa::SigningKey::from_slice(&[0x61; 32]).unwrap();
    let plain_key = p256::ecdsa::SigningKey::from_slice(&[0x62; 32]).unwrap();
    let as_key = |k: &p256::ecdsa::SigningKey| {
        CredentialKey::from_bytes(Algorithm::Es256, &k.to_bytes().into()).unwrap()
    };
    let flags = CredentialFlags::new(0, true);
    let resident_id = credential::wrap_version(
        1,
        &wrap_key,
        &mut rng,
        &rp_hash,
        flags,
        Some(3),
        &as_key(&resident_key),
    )
    .unwrap();
    let plain_id = credential::wrap_version(
        1,
        &wrap_key,
        &mut rng,
        &rp_hash,
        flags,
        None,
        &as_key(&plain_key),
    )
    .unwrap();
    assert_eq!((resident_id[0], plain_id[0]), (1, 1));
    let storage = MemoryStorage::new();
    let mut device = b"FD\x01".to_vec();
    device.extend_from_slice(&secret);
    device.extend_from_slice(&7u32.to_be_bytes());
    storage.put_raw(RecordKey::Device, &device);
    let record = CredentialRecord {
        kind: crate::credential::RecordKind::Discoverable,
        rp_id_hash: rp_hash,
        rp_id: heapless::String::try_from(rp).unwrap(),
        user_id: heapless::Vec::from_slice(b"old-user").unwrap(),
        user_name: Some(heapless::String::try_from("old").unwrap()),
        display_name: None,
        credential_id: heapless::Vec::from_slice(&resident_id).unwrap(),
        sign_count: 20,
        created: 0,
        algorithm: Algorithm::Es256,
        cred_protect: 0,
        flags: CredentialFlags::new(0, false),
        backup_eligible: false,
        backup_state: false,
        cred_blob: heapless::Vec::from_slice(b"blob").unwrap(),
        sealed_key: None,
        epoch: None,
    };
    storage.put_raw(
        RecordKey::Credential(3),
        &crate::store::legacy::encode_legacy(&record, 2),
    );

    let mut h = Harness::on_storage(storage, Config::default(), 3);
    assert_eq!(h.auth.state.version, 2, "the device record was upgraded");
    assert!(
        h.auth.state.counter_mark >= 20,
        "its mark covers the resident counter"
    );
    assert_eq!(h.auth.remaining_discoverable_credentials(), 99);
    // Start-up reads the old record as it is; it is rewritten (in version 3)
    // only when it changes.
    assert_eq!(h.storage.get(RecordKey::Credential(3)).unwrap()[2], 2);
    let cdh = client_data_hash("legacy");
    // The v1 resident ID, by allowList and discoverable.
    let (status, value, _) = h.get_assertion(ga(rp, &cdh, &[&resident_id], None));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| *resident_key.verifying_key());
    assert_eq!(a.auth_data.sign_count, 21);
    let (status, value, _) = h.get_assertion(ga(rp, &cdh, &[], None));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| *resident_key.verifying_key());
    assert_eq!(a.credential_id, resident_id);
    assert_eq!(a.auth_data.sign_count, 22);
    // The v1 non-resident ID: above everything the old key signed.
    let (status, value, _) = h.get_assertion(ga(rp, &cdh, &[&plain_id], None));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| *plain_key.verifying_key());
    assert!(a.auth_data.sign_count > 20);
    assert_eq!(h.storage.get(RecordKey::Credential(3)).unwrap()[2], 3);
    h.auth.persist_counters().unwrap();
    let mut h = h.reopen();
    let (status, value, _) = h.get_assertion(ga(rp, &cdh, &[&resident_id], None));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| *resident_key.verifying_key());
    assert_eq!(a.auth_data.sign_count, 23);
}

#[test]
fn start_up_reads_records_without_opening_them() {
    // A record of an earlier device secret (an interrupted reset) is free.
    let mut h = Harness::new();
    h.make_credential(Mc::new("a.example", b"1").rk().build());
    let stale = h.storage.get(RecordKey::Credential(0)).unwrap();
    h.auth.wipe().unwrap();
    h.storage.put_raw(RecordKey::Credential(0), &stale);
    let h = h.reopen();
    assert_eq!(h.auth.remaining_discoverable_credentials(), 100);
}

/// The wipes one closure caused (every one must have left zeros).
struct Wipes(Vec<(&'static str, bool)>);

impl Wipes {
    /// How many of them wiped `name`.
    fn n(&self, name: &str) -> usize {
        self.0.iter().filter(|(w, _)| *w == name).count()
    }
}

fn wipes_during(f: impl FnOnce()) -> Wipes {
    crate::wipe::hook::take();
    f();
    let wiped = crate::wipe::hook::take();
    for (name, zero) in &wiped {
        assert!(*zero, "{name} is not all zeros after its wipe");
    }
    Wipes(wiped)
}

/// Issue 10 §1 defect 10: dropping the authenticator (a power cycle, a key
/// removed) wipes every secret it holds. (`tests/tests/secrets_freed_zeroed.rs`
/// checks the freed memory itself from outside.)
#[test]
fn dropping_the_authenticator_wipes_its_secrets() {
    use crate::ctap2::pin_uv::platform::{Platform, PIN};
    let (attestation, _) = batch_attestation();
    let mut h = Harness::with_config(Config {
        aaguid: AAGUID,
        attestation: Some(attestation),
        ..Config::default()
    });
    let mut p = Platform::new(2);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    let w = wipes_during(|| drop(h));
    assert!(w.n("DeviceState secret") >= 1);
    assert!(w.n("WrapKey") >= 2, "credential and import wrapping keys");
    assert!(w.n("ExtensionSecrets") >= 1);
    assert!(w.n("PinVerifier") >= 1);
    assert_eq!(w.n("PinUvAuthToken"), 2, "both protocols' tokens");
    assert!(w.n("Attestation private key") >= 1);
}

/// The secrets of one PIN ceremony go when it ends: the shared secret, the
/// decrypted pinHash and the verifier computed from it; and those of an
/// assertion: the found credential's private key.
#[test]
fn the_secrets_of_a_ceremony_are_wiped_when_it_ends() {
    use crate::ctap2::pin_uv::platform::{perm, Platform, PIN};
    let mut h = Harness::new();
    let mut p = Platform::new(2);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    let made = h.make_credential(Mc::new("example.com", b"u").build());
    let w = wipes_during(|| {
        p.token(&mut h, PIN, Some(perm::GA), Some("example.com"))
            .unwrap();
    });
    assert!(w.n("SharedSecret") >= 1);
    assert_eq!(w.n("decrypted pinHash"), 1);
    assert_eq!(w.n("PinVerifier candidate"), 1);
    let cdh = client_data_hash("wiped");
    let w = wipes_during(|| {
        let (status, _, _) = h.get_assertion(ga("example.com", &cdh, &[&made.id], None));
        assert_eq!(status, 0);
    });
    assert!(w.n("SecretKey") >= 1, "the credential's private key");
    // A wrong PIN: the decrypted pinHash goes too.
    let w = wipes_during(|| {
        assert!(p.token(&mut h, "9999", None, None).is_err());
    });
    assert_eq!(w.n("decrypted pinHash"), 1);
}
