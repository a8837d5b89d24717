//! Small helpers around [`ciborium::Value`].

use ciborium::Value;

/// A CBOR integer.
pub fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// A CBOR text string.
pub fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// A CBOR byte string.
pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// A CBOR map with integer keys.
pub fn int_map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (int(k), v)).collect())
}

/// A CBOR map with text keys.
pub fn text_map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// Encodes a value.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail for a well-formed Value.
    ciborium::into_writer(value, &mut out).unwrap_or_default();
    out
}

/// Decodes exactly one value; trailing bytes are an error.
pub fn decode(data: &[u8]) -> Result<Value, String> {
    let mut rest = data;
    let value: Value = ciborium::from_reader(&mut rest).map_err(|e| format!("CBOR: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after CBOR", rest.len()));
    }
    Ok(value)
}

/// Decodes one value from the front of `data`; returns it and the rest.
pub fn decode_prefix(data: &[u8]) -> Result<(Value, &[u8]), String> {
    let mut rest = data;
    let value: Value = ciborium::from_reader(&mut rest).map_err(|e| format!("CBOR: {e}"))?;
    Ok((value, rest))
}

/// Entry `key` of a map with integer keys.
pub fn get(map: &Value, key: i64) -> Option<&Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_integer() == Some(key.into()))
        .map(|(_, v)| v)
}

/// Entry `key` of a map with text keys.
pub fn get_text<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

/// Byte-string entry `key` of an integer-keyed map.
pub fn get_bytes(map: &Value, key: i64) -> Option<&[u8]> {
    get(map, key).and_then(Value::as_bytes).map(Vec::as_slice)
}

/// Unsigned-integer entry `key` of an integer-keyed map.
pub fn get_u64(map: &Value, key: i64) -> Option<u64> {
    get(map, key)
        .and_then(Value::as_integer)
        .and_then(|i| u64::try_from(i).ok())
}

/// Lower-case hex.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return Err(format!("odd-length hex: {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("hex {s:?}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lookups() {
        let v = int_map(vec![(1, bytes(b"ab")), (2, text_map(vec![("x", int(7))]))]);
        let encoded = encode(&v);
        assert_eq!(decode(&encoded).unwrap(), v);
        assert_eq!(get_bytes(&v, 1), Some(&b"ab"[..]));
        assert_eq!(get_text(get(&v, 2).unwrap(), "x"), Some(&int(7)));
        assert_eq!(get_u64(get(&v, 2).unwrap(), 1), None);
        let mut long = encoded.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        assert_eq!(decode_prefix(&long).unwrap().1, &[0]);
        assert_eq!(unhex(&hex(&[0, 0xAB, 0xFF])).unwrap(), [0, 0xAB, 0xFF]);
        assert!(unhex("abc").is_err());
    }
}
