//! authenticatorLargeBlobs through `App::handle`.

use std::vec;
use std::vec::Vec;

use ciborium::Value;

use super::{initial_array, MAX_SERIALIZED_LARGE_BLOB_ARRAY};
use crate::authenticator::testkit::*;
use crate::ctap2::extensions::tests::{mac, pin_token};

/// `array ‖ LEFT(SHA-256(array), 16)`.
fn serialize(array: &[u8]) -> Vec<u8> {
    [array, &sha256(array)[..16]].concat()
}

fn set_request(
    fragment: &[u8],
    offset: usize,
    length: Option<usize>,
    auth: Option<(u8, &[u8])>,
) -> Value {
    let mut m = vec![(int(2), bytes(fragment)), (int(3), int(offset as i64))];
    if let Some(length) = length {
        m.push((int(4), int(length as i64)));
    }
    if let Some((protocol, token)) = auth {
        let message = [
            &[0xff; 32][..],
            &[0x0c, 0x00],
            &(offset as u32).to_le_bytes(),
            &sha256(fragment),
        ]
        .concat();
        m.push((int(5), bytes(&mac(protocol, token, &[&message]))));
        m.push((int(6), int(protocol.into())));
    }
    Value::Map(m)
}

fn status(h: &mut Harness, request: Value) -> u8 {
    let (status, _, needed) = h.ctap2(0x0C, Some(request));
    assert!(!needed, "largeBlobs never needs presence");
    status
}

/// Writes `array` (plus its hash) in fragments of at most 100 bytes.
pub(crate) fn write_array(h: &mut Harness, array: &[u8], auth: Option<(u8, &[u8])>) {
    let data = serialize(array);
    for (i, chunk) in data.chunks(100).enumerate() {
        let length = (i == 0).then_some(data.len());
        assert_eq!(
            status(h, set_request(chunk, i * 100, length, auth)),
            0,
            "fragment {i}"
        );
    }
}

fn get(h: &mut Harness, offset: usize, count: usize) -> Result<Vec<u8>, u8> {
    let (status, value, _) = h.ctap2(
        0x0C,
        Some(Value::Map(vec![
            (int(1), int(count as i64)),
            (int(3), int(offset as i64)),
        ])),
    );
    if status != 0 {
        return Err(status);
    }
    let value = value.unwrap();
    assert_eq!(value.as_map().unwrap().len(), 1);
    Ok(map_bytes(&value, 1).to_vec())
}

/// Reads the whole serialized array in 64-byte fragments.
pub(crate) fn read_array(h: &mut Harness) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let chunk = get(h, out.len(), 64).unwrap();
        out.extend_from_slice(&chunk);
        if chunk.len() < 64 {
            return out;
        }
    }
}

#[test]
fn initial_array_is_an_empty_array_with_a_valid_hash() {
    let mut h = Harness::new();
    let data = read_array(&mut h);
    assert_eq!(data, initial_array().to_vec());
    assert_eq!(data.len(), 17);
    assert_eq!(data[0], 0x80);
    assert_eq!(&data[1..], &sha256(&[0x80])[..16]);
    // Reading past the end is INVALID_PARAMETER, at the end an empty string.
    assert_eq!(get(&mut h, 17, 10), Ok(vec![]));
    assert_eq!(get(&mut h, 18, 10).err(), Some(0x02));
    // More than maxFragmentLength (maxMsgSize - 64) is INVALID_LENGTH.
    assert_eq!(get(&mut h, 0, 7609 - 63).err(), Some(0x03));
}

#[test]
fn fragmented_write_round_trips_and_persists() {
    let mut h = Harness::new();
    // [h'00..' (300 bytes)]
    let mut array = vec![0x81, 0x59, 0x01, 0x2C];
    array.extend((0..300).map(|i| i as u8));
    write_array(&mut h, &array, None);
    assert_eq!(read_array(&mut h), serialize(&array));
    let mut h = h.reopen();
    assert_eq!(read_array(&mut h), serialize(&array));
    // A maximal array fits; one byte more is LARGE_BLOB_STORAGE_FULL.
    let max = vec![0u8; MAX_SERIALIZED_LARGE_BLOB_ARRAY];
    assert_eq!(
        status(&mut h, set_request(&max[..10], 0, Some(max.len()), None)),
        0
    );
    assert_eq!(
        status(
            &mut h,
            set_request(&max[..10], 0, Some(max.len() + 1), None)
        ),
        0x18
    );
}

#[test]
fn wrong_hash_is_an_integrity_failure_and_changes_nothing() {
    let mut h = Harness::new();
    write_array(&mut h, &[0x81, 0x01], None);
    let before = read_array(&mut h);
    let mut data = serialize(&[0x80]);
    *data.last_mut().unwrap() ^= 0xff;
    assert_eq!(
        status(&mut h, set_request(&data, 0, Some(data.len()), None)),
        0x3D
    );
    assert_eq!(read_array(&mut h), before);
}

#[test]
fn fragments_must_come_in_order() {
    let mut h = Harness::new();
    let data = serialize(&[0x82, 0x01, 0x02]);
    // Continuation without a start.
    assert_eq!(status(&mut h, set_request(&data[..5], 5, None, None)), 0x04);
    assert_eq!(
        status(&mut h, set_request(&data[..5], 0, Some(data.len()), None)),
        0
    );
    // A gap, a repeat, and a length outside offset 0.
    assert_eq!(
        status(&mut h, set_request(&data[6..8], 6, None, None)),
        0x04
    );
    assert_eq!(status(&mut h, set_request(&data[..5], 0, None, None)), 0x02);
    assert_eq!(
        status(&mut h, set_request(&data[5..], 5, Some(1), None)),
        0x02
    );
    // Too short a declared length; more data than declared.
    assert_eq!(
        status(&mut h, set_request(&data[..5], 0, Some(16), None)),
        0x02
    );
    assert_eq!(
        status(&mut h, set_request(&data, 0, Some(data.len() - 1), None)),
        0x02
    );
    // get and set together, or neither.
    assert_eq!(
        status(
            &mut h,
            Value::Map(vec![
                (int(1), int(1)),
                (int(2), bytes(&[1])),
                (int(3), int(0))
            ])
        ),
        0x02
    );
    assert_eq!(status(&mut h, Value::Map(vec![(int(3), int(0))])), 0x02);
    assert_eq!(status(&mut h, Value::Map(vec![(int(1), int(1))])), 0x14);
    // Nothing was stored.
    assert_eq!(read_array(&mut h), initial_array().to_vec());
}

#[test]
fn writes_need_lbw_when_a_pin_is_set() {
    for protocol in [1u8, 2] {
        let mut h = Harness::new();
        // Reads never need a token; the wrong permission is PIN_AUTH_INVALID.
        let token = pin_token(&mut h, protocol, 0x04, None);
        assert_eq!(read_array(&mut h), initial_array().to_vec());
        let data = serialize(&[0x81, 0x05]);
        assert_eq!(
            status(&mut h, set_request(&data, 0, Some(data.len()), None)),
            0x36
        );
        assert_eq!(
            status(
                &mut h,
                set_request(&data, 0, Some(data.len()), Some((protocol, &token)))
            ),
            0x33
        );
        let token = pin_token(&mut h, protocol, 0x10, None);
        let mut bad = set_request(&data, 0, Some(data.len()), Some((protocol, &token)));
        if let Value::Map(m) = &mut bad {
            m[3].1 = bytes(&[0u8; 32][..usize::from(protocol) * 16]);
        }
        assert_eq!(status(&mut h, bad), 0x33, "wrong pinUvAuthParam");
        write_array(&mut h, &[0x81, 0x05], Some((protocol, &token)));
        assert_eq!(read_array(&mut h), data);
    }
}
