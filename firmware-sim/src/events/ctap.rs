//! CTAP event decoding: the raw request and response bytes of one CTAP
//! exchange (what the key's `App` saw and answered) become
//! `{command, params, status, statusCode, latencyMs, response}` JSON with every
//! secret shown only as its length, plus the Chrome DevTools events
//! (`credentialAdded`, `credentialAsserted`, `credentialUpdated`,
//! `credentialDeleted`) the exchange implies.
//!
//! Nothing undecoded leaves this module: the JSON is built field by field
//! under [`render::Show`] policies ([`fields`] lists what is public), so a
//! transcript or an SSE stream never carries PIN material, keys, MACs,
//! hmac-secret salts or outputs. Decoded CBOR is wiped after rendering.
//!
//! - [`names`]: command, status and subcommand names.
//! - [`fields`]: every command's fields and how each is shown.
//! - [`render`]: the policies and the CBOR-to-JSON walk.
//! - [`authdata`]: authenticator data.
//! - [`u2f`]: CTAP1/U2F APDUs.
//! - [`cdp`]: the DevTools events.

pub mod authdata;
pub mod cdp;
pub mod fields;
pub mod names;
pub mod render;
pub mod u2f;

use std::time::Duration;

use ciborium::Value as Cbor;
use serde_json::{json, Value};

pub use cdp::CdpEvent;

/// The deepest CBOR nesting decoded (CTAP's own structures need 4).
const MAX_CBOR_DEPTH: usize = 16;

/// Which CTAPHID command carried the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// CTAPHID_CBOR: a CTAP2 command byte and CBOR parameters; the answer is
    /// a status byte and CBOR.
    Cbor,
    /// CTAPHID_MSG: a CTAP1/U2F APDU; the answer is data and a status word.
    U2f,
}

/// One request and its answer, as the key saw them.
#[derive(Clone, Copy, Debug)]
pub struct Exchange<'a> {
    /// CTAP2 or U2F.
    pub protocol: Protocol,
    /// The request message (command byte and CBOR, or the APDU).
    pub request: &'a [u8],
    /// The answer (status byte and CBOR, or data and status word).
    pub response: &'a [u8],
    /// From the request's last packet to the answer.
    pub latency: Duration,
}

/// A decoded exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The command's name (`makeCredential`, `U2F_AUTHENTICATE`, ...).
    pub command: &'static str,
    /// The request parameters, secrets as lengths.
    pub params: Value,
    /// The status name (`CTAP2_OK`, `CTAP2_ERR_PIN_INVALID`, `SW_NO_ERROR`, ...).
    pub status: &'static str,
    /// The status byte (CTAP2) or word (U2F).
    pub status_code: u16,
    /// The answer, secrets as lengths (`null` on errors).
    pub response: Value,
    /// Milliseconds from request to answer.
    pub latency_ms: f64,
    /// The DevTools events this exchange implies.
    pub cdp: Vec<CdpEvent>,
}

impl Decoded {
    /// The event payload: `{command, params, status, statusCode, latencyMs, response}`.
    pub fn to_json(&self) -> Value {
        json!({
            "command": self.command,
            "params": self.params,
            "status": self.status,
            "statusCode": self.status_code,
            "latencyMs": self.latency_ms,
            "response": self.response,
        })
    }
}

/// Decodes the exchanges of one key, in order (a getNextAssertion needs the
/// getAssertion before it).
#[derive(Debug, Default)]
pub struct Decoder {
    assertion: cdp::AssertionContext,
}

impl Decoder {
    /// A decoder with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one exchange.
    pub fn decode(&mut self, exchange: &Exchange<'_>) -> Decoded {
        let latency_ms = (exchange.latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        let mut decoded = match exchange.protocol {
            Protocol::Cbor => self.decode_cbor(exchange.request, exchange.response),
            Protocol::U2f => decode_u2f(exchange.request, exchange.response),
        };
        decoded.latency_ms = latency_ms;
        decoded
    }

    fn decode_cbor(&mut self, request: &[u8], response: &[u8]) -> Decoded {
        let command_byte = request.first().copied().unwrap_or(0);
        let command = if request.is_empty() {
            "empty"
        } else {
            names::command(command_byte)
        };
        let mut params_cbor = decode_body(request.get(1..).unwrap_or_default());
        let params = match &params_cbor {
            Body::Empty => json!({}),
            Body::Item(item) => render::render(item, fields::request(command_byte)),
            Body::Malformed(len) => json!({ "malformed": true, "len": len }),
        };
        let status_code = response.first().copied().unwrap_or(0xFF);
        let status = if response.is_empty() {
            "NO_RESPONSE"
        } else {
            names::status(status_code)
        };
        let mut response_cbor = decode_body(response.get(1..).unwrap_or_default());
        let ok = status_code == 0 && !response.is_empty();
        let rendered = match (&response_cbor, ok) {
            (Body::Item(item), true) => render::render(item, fields::response(command_byte)),
            (Body::Malformed(len), true) => json!({ "malformed": true, "len": len }),
            _ => Value::Null,
        };
        let mut events = Vec::new();
        if let Body::Item(req) = &params_cbor {
            if command_byte == 0x02 {
                self.assertion = cdp::assertion_context(req);
            }
        }
        if ok {
            let req = match &params_cbor {
                Body::Item(item) => Some(item),
                _ => None,
            };
            let resp = match &response_cbor {
                Body::Item(item) => Some(item),
                _ => None,
            };
            let event = match (command_byte, req, resp) {
                (0x01, Some(req), Some(resp)) => cdp::added(req, resp),
                (0x02, req, Some(resp)) => cdp::asserted(&self.assertion, req, resp),
                (0x08, _, Some(resp)) => cdp::asserted(&self.assertion, None, resp),
                (0x0A | 0x41, Some(req), _) => cdp::managed(req),
                _ => None,
            };
            events.extend(event);
        }
        params_cbor.wipe();
        response_cbor.wipe();
        Decoded {
            command,
            params,
            status,
            status_code: u16::from(status_code),
            response: rendered,
            latency_ms: 0.0,
            cdp: events,
        }
    }
}

fn decode_u2f(request: &[u8], response: &[u8]) -> Decoded {
    let parsed = u2f::parse_request(request);
    let params = match &parsed {
        Some(r) => u2f::render_request(r),
        None => json!({ "malformed": true, "len": request.len() }),
    };
    let (data, sw) = u2f::split_response(response).unwrap_or((&[], 0));
    let ok = sw == 0x9000;
    let mut events = Vec::new();
    let rendered = match (&parsed, ok) {
        (Some(r), true) => {
            match r.ins {
                0x01 => {
                    if let Some((handle, _)) = u2f::registration_key_handle(data) {
                        events.push(cdp::u2f("credentialAdded", handle, 0));
                    }
                }
                0x02 if r.p1 != 0x07 => {
                    if let (Some(handle), Some((_, counter))) =
                        (u2f::key_handle(r), u2f::authentication(data))
                    {
                        events.push(cdp::u2f("credentialAsserted", handle, counter));
                    }
                }
                _ => {}
            }
            u2f::render_response(r, data)
        }
        _ => Value::Null,
    };
    Decoded {
        command: u2f::command(parsed.as_ref()),
        params,
        status: if response.len() < 2 {
            "NO_RESPONSE"
        } else {
            names::u2f_status(sw)
        },
        status_code: sw,
        response: rendered,
        latency_ms: 0.0,
        cdp: events,
    }
}

/// A CBOR message body.
enum Body {
    /// No bytes.
    Empty,
    /// One CBOR item.
    Item(Cbor),
    /// Not CBOR (or trailing bytes): its length.
    Malformed(usize),
}

impl Body {
    fn wipe(&mut self) {
        if let Body::Item(item) = self {
            render::wipe(item);
        }
    }
}

fn decode_body(bytes: &[u8]) -> Body {
    if bytes.is_empty() {
        return Body::Empty;
    }
    let mut rest = bytes;
    match ciborium::de::from_reader_with_recursion_limit::<Cbor, _>(&mut rest, MAX_CBOR_DEPTH) {
        Ok(item) if rest.is_empty() => Body::Item(item),
        Ok(mut item) => {
            render::wipe(&mut item);
            Body::Malformed(bytes.len())
        }
        Err(_) => Body::Malformed(bytes.len()),
    }
}

#[cfg(test)]
mod tests;
