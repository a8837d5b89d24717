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
        text.contains("global_counter") && !text.contains('['),
        "{text}"
    );
}
