//! CTAP1/U2F APDUs (CTAPHID_MSG), decoded for events: REGISTER and
//! AUTHENTICATE show their application parameter and key handle; public
//! keys, certificates and signatures only as lengths.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::names;

/// A decoded U2F request.
#[derive(Debug, PartialEq)]
pub struct Request {
    /// The instruction byte.
    pub ins: u8,
    /// P1 (AUTHENTICATE's control byte).
    pub p1: u8,
    /// The request data (Lc bytes).
    pub data: Vec<u8>,
}

/// Parses a short or extended-length APDU; `None` if malformed.
pub fn parse_request(apdu: &[u8]) -> Option<Request> {
    let [_cla, ins, p1, _p2] = <[u8; 4]>::try_from(apdu.get(..4)?).ok()?;
    let body = apdu.get(4..)?;
    let data = match body {
        [] => Vec::new(),
        // Short Le only.
        [_le] => Vec::new(),
        // Extended: 00 Lc1 Lc2 data [Le1 Le2].
        [0, hi, lo, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            rest.get(..len)?.to_vec()
        }
        // Short: Lc data [Le].
        [lc, rest @ ..] => rest.get(..usize::from(*lc))?.to_vec(),
    };
    Some(Request { ins, p1, data })
}

/// The request's parameters for an event.
pub fn render_request(request: &Request) -> Value {
    let data = &request.data;
    match request.ins {
        0x01 if data.len() == 64 => json!({
            "challenge": URL_SAFE_NO_PAD.encode(&data[..32]),
            "application": URL_SAFE_NO_PAD.encode(&data[32..]),
        }),
        0x02 if data.len() >= 65 => {
            let handle_len = usize::from(data[64]);
            json!({
                "control": match request.p1 {
                    0x03 => "enforce-user-presence-and-sign",
                    0x07 => "check-only",
                    0x08 => "dont-enforce-user-presence-and-sign",
                    _ => "unknown",
                },
                "challenge": URL_SAFE_NO_PAD.encode(&data[..32]),
                "application": URL_SAFE_NO_PAD.encode(&data[32..64]),
                "keyHandle": data.get(65..65 + handle_len).map_or(Value::Null, |h| json!(URL_SAFE_NO_PAD.encode(h))),
            })
        }
        _ => json!({ "data": { "len": data.len() } }),
    }
}

/// The key handle of an AUTHENTICATE request.
pub fn key_handle(request: &Request) -> Option<&[u8]> {
    let len = usize::from(*request.data.get(64)?);
    request.data.get(65..65 + len)
}

/// Splits a response APDU into data and status word.
pub fn split_response(apdu: &[u8]) -> Option<(&[u8], u16)> {
    let at = apdu.len().checked_sub(2)?;
    let (data, sw) = apdu.split_at(at);
    Some((data, u16::from_be_bytes([sw[0], sw[1]])))
}

/// What a successful response holds, for events.
pub fn render_response(request: &Request, data: &[u8]) -> Value {
    match request.ins {
        0x01 => match registration_key_handle(data) {
            Some((handle, rest)) => json!({
                "publicKey": { "len": 65 },
                "keyHandle": URL_SAFE_NO_PAD.encode(handle),
                "certificateAndSignature": { "len": rest },
            }),
            None => json!({ "malformed": true, "len": data.len() }),
        },
        0x02 => match authentication(data) {
            Some((flags, counter)) => json!({
                "userPresence": flags & 1 != 0,
                "counter": counter,
                "signature": { "len": data.len() - 5 },
            }),
            None => json!({ "malformed": true, "len": data.len() }),
        },
        0x03 => json!({ "version": String::from_utf8_lossy(data) }),
        _ => json!({ "data": { "len": data.len() } }),
    }
}

/// REGISTER response: the key handle, and how many bytes follow it.
pub fn registration_key_handle(data: &[u8]) -> Option<(&[u8], usize)> {
    if data.first() != Some(&0x05) {
        return None;
    }
    let len = usize::from(*data.get(66)?);
    let handle = data.get(67..67 + len)?;
    Some((handle, data.len() - 67 - len))
}

/// AUTHENTICATE response: flags and counter.
pub fn authentication(data: &[u8]) -> Option<(u8, u32)> {
    let flags = *data.first()?;
    let counter = u32::from_be_bytes(data.get(1..5)?.try_into().ok()?);
    Some((flags, counter))
}

/// The command name of a request.
pub fn command(request: Option<&Request>) -> &'static str {
    request.map_or("U2F_MALFORMED", |r| names::u2f_instruction(r.ins))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apdus_parse() {
        let mut short = vec![0, 1, 3, 0, 64];
        short.extend_from_slice(&[7; 64]);
        let request = parse_request(&short).unwrap();
        assert_eq!((request.ins, request.data.len()), (1, 64));
        let mut extended = vec![0, 2, 3, 0, 0, 0, 67];
        extended.extend_from_slice(&[8; 64]);
        extended.extend_from_slice(&[2, 0xAA, 0xBB, 0, 0]);
        let request = parse_request(&extended).unwrap();
        assert_eq!(key_handle(&request), Some(&[0xAA, 0xBB][..]));
        assert_eq!(render_request(&request)["keyHandle"], "qrs");
        assert!(parse_request(&[0, 1]).is_none());
        assert!(parse_request(&[0, 1, 0, 0, 0, 0, 9, 1]).is_none());
        assert_eq!(parse_request(&[0, 3, 0, 0]).unwrap().ins, 3);
        assert_eq!(split_response(&[0x90, 0x00]), Some((&[][..], 0x9000)));
        assert_eq!(split_response(&[1]), None);
    }
}
