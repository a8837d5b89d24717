//! Record decoding: the core's credential, PIN and device records, the file
//! format of firmware-sim's storage, and the template authenticator started
//! with one record replaced by the input.
//!
//! Input: a selector byte, then the record bytes. Invariants: no panic; a
//! decoded file record re-encodes to the same file; an authenticator that
//! starts on a damaged record answers well-formed responses.
#![no_main]

use ferrokey::app::Protocol;
use ferrokey::pin::state::PinState;
use ferrokey::platform::{RecordKey, MAX_RECORD_SIZE};
use ferrokey::store;
use ferrokey::test_platform::{MemoryStorage, PresenceScript};
use ferrokey_fuzz::*;
use ferrokey_test_support::cbor::{encode, int, int_map};
use ferrokey_test_support::ctap2::GetAssertion;
use firmware_sim::storage::fuzzing as file_record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => {
            let _ = store::decode_credential(bytes);
        }
        1 => {
            if let Ok(state) = PinState::decode(bytes) {
                let mut out = [0u8; ferrokey::pin::state::MAX_ENCODED_LEN];
                // A version 1/2 PIN (unsalted hash) is only written back
                // once migrated (stretched); everything else re-encodes.
                let Some(len) = state.encode(&mut out) else {
                    assert!(
                        state.has_legacy_pin(),
                        "a decoded PIN record does not re-encode"
                    );
                    return;
                };
                let again = PinState::decode(&out[..len]).unwrap_or_else(|e| {
                    panic!("a decoded PIN record does not decode after re-encoding: {e:?}")
                });
                assert_eq!(again.retries(), state.retries());
                assert_eq!(again.is_pin_set(), state.is_pin_set());
                assert_eq!(again.uv_retries(), state.uv_retries());
                assert_eq!(again.min_pin_length(), state.min_pin_length());
            }
        }
        2 => {
            let mut storage = MemoryStorage::new();
            storage.put_raw(RecordKey::Device, bytes);
            let _ = store::load_device(&mut storage);
        }
        3 => {
            let id = 0x0000_0100;
            if let Ok(value) = file_record::decode(id, bytes) {
                assert_eq!(&file_record::encode(id, &value)[..], bytes);
            }
            // The storage never writes a value over the maximum (it refuses
            // it, tested beside it), so only those are round-tripped.
            if bytes.len() <= MAX_RECORD_SIZE {
                let encoded = file_record::encode(id, bytes);
                let decoded = file_record::decode(id, &encoded)
                    .unwrap_or_else(|e| panic!("an encoded record does not decode: {e}"));
                assert_eq!(&decoded[..], bytes);
            }
        }
        _ => replaced_record(bytes),
    }
});

/// The template with one record (chosen by the first byte) replaced.
fn replaced_record(bytes: &[u8]) {
    let Some((which, value)) = bytes.split_first() else {
        return;
    };
    let keys: Vec<RecordKey> = template().records.keys().copied().collect();
    let key = keys[usize::from(*which) % keys.len()];
    let storage = template_storage();
    storage.put_raw(key, value);
    let Some((mut auth, _)) = authenticator_on(storage, PresenceScript::Approve) else {
        return;
    };
    let mut local = Local::new(&mut auth, true);
    check_ctap2_response(&local.request(Protocol::Cbor, &[0x04]));
    let mut request = vec![0x02];
    request.extend(encode(&GetAssertion::new(RP).build()));
    check_ctap2_response(&local.request(Protocol::Cbor, &request));
    check_ctap2_response(&local.request(Protocol::Cbor, &[0x08]));
    let mut retries = vec![0x06];
    retries.extend(encode(&int_map(vec![(1, int(2)), (2, int(1))])));
    check_ctap2_response(&local.request(Protocol::Cbor, &retries));
}
