//! CBOR values to JSON, under a policy per field that decides, by
//! construction, what may be shown.
//!
//! A byte string reaches the output only through [`Show::Public`] (as
//! base64url), and only fields listed as public in [`super::fields`] have that
//! policy. Everything else, known secrets (PIN material, keys, MACs,
//! hmac-secret salts and outputs, large-blob keys) and every field nobody
//! listed, goes through [`Show::Length`] or the unknown-field rule, which
//! show byte and text strings as `{"len": N}` only. Numbers and booleans are
//! shown: no secret of CTAP is a number.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{json, Map, Value};

use super::authdata;

/// The deepest nesting rendered; deeper values are shown as `{"depth": ...}`.
const MAX_DEPTH: usize = 16;

/// How a field is shown.
#[derive(Clone, Copy)]
pub enum Show {
    /// As it is: numbers, booleans and text; byte strings as base64url;
    /// arrays and maps recursively public. Only for fields that hold no secret.
    Public,
    /// Byte and text strings as `{"len": N}`; maps and arrays as
    /// `{"len": N}` of their CBOR encoding; numbers and booleans as they are.
    Length,
    /// A map with integer keys, each shown its own way.
    Fields(&'static [(i128, &'static str, Show)]),
    /// A map with text keys (rp, user, options, extensions).
    Named(&'static [(&'static str, Show)]),
    /// An array whose items are shown the same way.
    Each(&'static Show),
    /// A subcommand number, with its name.
    Subcommand(fn(i128) -> &'static str),
    /// pinUvAuthToken permission bits, with their names.
    Permissions,
    /// Authenticator data, decoded (flags, counter, credential id, public key
    /// algorithm, extension outputs under [`super::fields::AUTH_DATA_EXTENSIONS`]).
    AuthData,
}

/// Renders `value` with `show`.
pub fn render(value: &Cbor, show: Show) -> Value {
    render_at(value, show, 0)
}

fn render_at(value: &Cbor, show: Show, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return json!({ "depth": "too deep to show" });
    }
    match show {
        Show::Public => public(value, depth),
        Show::Length => length(value),
        Show::Fields(fields) => match value {
            Cbor::Map(entries) => {
                let mut out = Map::new();
                for (key, item) in entries {
                    let known = integer(key).and_then(|k| fields.iter().find(|(n, _, _)| *n == k));
                    match known {
                        Some((_, name, show)) => {
                            out.insert((*name).to_string(), render_at(item, *show, depth + 1));
                        }
                        None => {
                            out.insert(key_name(key), unknown(item, depth + 1));
                        }
                    }
                }
                Value::Object(out)
            }
            other => unknown(other, depth),
        },
        Show::Named(fields) => match value {
            Cbor::Map(entries) => {
                let mut out = Map::new();
                for (key, item) in entries {
                    let known = match key {
                        Cbor::Text(name) => fields.iter().find(|(n, _)| n == name),
                        _ => None,
                    };
                    match known {
                        Some((name, show)) => {
                            out.insert((*name).to_string(), render_at(item, *show, depth + 1));
                        }
                        None => {
                            out.insert(key_name(key), unknown(item, depth + 1));
                        }
                    }
                }
                Value::Object(out)
            }
            other => unknown(other, depth),
        },
        Show::Each(item_show) => match value {
            Cbor::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| render_at(item, *item_show, depth + 1))
                    .collect(),
            ),
            other => unknown(other, depth),
        },
        Show::Subcommand(name) => match integer(value) {
            Some(n) => json!({ "code": n_json(n), "name": name(n) }),
            None => unknown(value, depth),
        },
        Show::Permissions => match integer(value) {
            Some(n) => json!({ "bits": n_json(n), "names": super::names::permissions(n) }),
            None => unknown(value, depth),
        },
        Show::AuthData => match value {
            Cbor::Bytes(bytes) => authdata::render_auth_data(bytes),
            other => unknown(other, depth),
        },
    }
}

fn public(value: &Cbor, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return json!({ "depth": "too deep to show" });
    }
    match value {
        Cbor::Integer(i) => n_json(i128::from(*i)),
        Cbor::Bytes(bytes) => Value::String(URL_SAFE_NO_PAD.encode(bytes)),
        Cbor::Float(f) => json!(f),
        Cbor::Text(text) => Value::String(text.clone()),
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Null => Value::Null,
        Cbor::Tag(_, inner) => public(inner, depth + 1),
        Cbor::Array(items) => Value::Array(items.iter().map(|i| public(i, depth + 1)).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (key_name(k), public(v, depth + 1)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// A field nobody listed: its shape only (strings and containers by length).
fn unknown(value: &Cbor, depth: usize) -> Value {
    let _ = depth;
    length(value)
}

fn length(value: &Cbor) -> Value {
    match value {
        Cbor::Integer(i) => n_json(i128::from(*i)),
        Cbor::Float(f) => json!(f),
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Null => Value::Null,
        Cbor::Bytes(bytes) => json!({ "len": bytes.len() }),
        Cbor::Text(text) => json!({ "len": text.len() }),
        other => json!({ "len": encoded_len(other) }),
    }
}

/// The size of a value's CBOR encoding.
fn encoded_len(value: &Cbor) -> usize {
    let mut counter = Counter(0);
    match ciborium::ser::into_writer(value, &mut counter) {
        Ok(()) => counter.0,
        Err(_) => 0,
    }
}

/// A writer that only counts.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A map key as a JSON object key (integers as their decimal text; any other
/// key by its kind, never its bytes).
fn key_name(key: &Cbor) -> String {
    match key {
        Cbor::Integer(i) => i128::from(*i).to_string(),
        Cbor::Text(text) if text.len() <= 64 && text.chars().all(|c| c.is_ascii_graphic()) => {
            text.clone()
        }
        Cbor::Text(text) => format!("text({})", text.len()),
        Cbor::Bytes(bytes) => format!("bytes({})", bytes.len()),
        _ => "key".into(),
    }
}

/// A CBOR integer, if `value` is one.
pub fn integer(value: &Cbor) -> Option<i128> {
    match value {
        Cbor::Integer(i) => Some(i128::from(*i)),
        _ => None,
    }
}

/// A JSON number for any CBOR integer (beyond i64/u64 as a string).
fn n_json(n: i128) -> Value {
    if let Ok(i) = i64::try_from(n) {
        json!(i)
    } else if let Ok(u) = u64::try_from(n) {
        json!(u)
    } else {
        Value::String(n.to_string())
    }
}

/// Looks up integer key `k` of a CBOR map.
pub fn field(map: &Cbor, k: i128) -> Option<&Cbor> {
    match map {
        Cbor::Map(entries) => entries
            .iter()
            .find(|(key, _)| integer(key) == Some(k))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Looks up text key `k` of a CBOR map.
pub fn named<'a>(map: &'a Cbor, k: &str) -> Option<&'a Cbor> {
    match map {
        Cbor::Map(entries) => entries
            .iter()
            .find(|(key, _)| matches!(key, Cbor::Text(t) if t == k))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Overwrites every byte and text string in `value` with zeros, so decoded
/// secrets do not linger in freed memory.
pub fn wipe(value: &mut Cbor) {
    use zeroize::Zeroize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Cbor::Bytes(bytes) => bytes.zeroize(),
            Cbor::Text(text) => text.zeroize(),
            Cbor::Tag(_, inner) => stack.push(inner),
            Cbor::Array(items) => stack.extend(items.iter_mut()),
            Cbor::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    stack.push(k);
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> Cbor {
        Cbor::Integer(i.into())
    }

    #[test]
    fn unlisted_fields_show_lengths_only() {
        const FIELDS: &[(i128, &str, Show)] =
            &[(1, "public", Show::Public), (2, "secret", Show::Length)];
        let value = Cbor::Map(vec![
            (int(1), Cbor::Bytes(vec![1, 2, 3])),
            (int(2), Cbor::Bytes(vec![9; 16])),
            (int(3), Cbor::Text("hidden".into())),
            (int(4), Cbor::Map(vec![(int(1), Cbor::Bytes(vec![7; 8]))])),
            (int(5), Cbor::Bool(true)),
            (Cbor::Bytes(vec![0xAA; 4]), int(1)),
        ]);
        let out = render(&value, Show::Fields(FIELDS));
        assert_eq!(out["public"], "AQID");
        assert_eq!(out["secret"], json!({"len": 16}));
        assert_eq!(out["3"], json!({"len": 6}));
        assert_eq!(out["4"], json!({"len": 11}));
        assert_eq!(out["5"], true);
        assert_eq!(out["bytes(4)"], 1);
    }

    #[test]
    fn deep_values_are_cut() {
        let mut value = Cbor::Bytes(vec![1]);
        for _ in 0..40 {
            value = Cbor::Array(vec![value]);
        }
        let text = render(&value, Show::Public).to_string();
        assert!(text.contains("too deep"), "{text}");
    }

    #[test]
    fn wipe_clears_strings() {
        let mut value = Cbor::Array(vec![Cbor::Bytes(vec![5; 4]), Cbor::Text("pin".into())]);
        wipe(&mut value);
        let text = render(&value, Show::Public).to_string();
        assert!(!text.contains("BQUFBQ"), "{text}");
    }
}
