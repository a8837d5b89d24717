//! Bus events as JSON lines: what `GET /events` streams, `ferrokey serve
//! --transcript FILE` writes and `ferrokey events` prints.
//!
//! Each line is `{"time", "authenticatorId", "event", "data"}`. A raw CTAP
//! event becomes one `ctap` line (decoded by [`crate::events::ctap`], secrets
//! as lengths) followed by the DevTools events it implies
//! (`credentialAdded`, `credentialAsserted`, ...); device events (`plugged`,
//! `powerOff`, `presence`, ...) pass through with their payload. Nothing
//! undecoded is ever written.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::events::ctap::{Decoder, Exchange, Protocol};
use crate::events::{CtapEnd, CtapProtocol, Event, EventKind, KeyId};

/// One line of the feed.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The event name (`ctap`, `credentialAsserted`, `plugged`, ...).
    pub event: String,
    /// The whole line: `{"time", "authenticatorId", "event", "data"}`.
    pub json: Value,
}

/// Turns bus events into lines; keeps one CTAP decoder per key (a
/// getNextAssertion is decoded with the getAssertion before it).
#[derive(Debug, Default)]
pub struct Feed {
    decoders: HashMap<KeyId, Decoder>,
}

impl Feed {
    /// A feed with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lines of one bus event.
    pub fn lines(&mut self, event: &Event) -> Vec<Line> {
        let id = event.key.to_string();
        let time = rfc3339(event.time);
        let line = |name: &str, data: Value| Line {
            event: name.to_string(),
            json: json!({ "time": time, "authenticatorId": id, "event": name, "data": data }),
        };
        match &event.kind {
            EventKind::Ctap(raw) => {
                let decoder = self.decoders.entry(event.key).or_default();
                let (response, ended): (&[u8], Option<&str>) = match &raw.end {
                    CtapEnd::Response(bytes) => (bytes, None),
                    CtapEnd::Denied => (&[], Some("DENIED")),
                    CtapEnd::Withdrawn => (&[], Some("WITHDRAWN")),
                };
                let decoded = decoder.decode(&Exchange {
                    protocol: match raw.protocol {
                        CtapProtocol::Cbor => Protocol::Cbor,
                        CtapProtocol::Msg => Protocol::U2f,
                    },
                    request: &raw.request,
                    response,
                    latency: raw.latency,
                });
                let mut data = decoded.to_json();
                if let Some(end) = ended {
                    data["status"] = json!(end);
                }
                data["channel"] = json!(raw.channel);
                data["waitedForPresence"] = json!(raw.waited_for_presence);
                let mut lines = vec![line("ctap", data)];
                lines.extend(
                    decoded
                        .cdp
                        .iter()
                        .map(|cdp| line(cdp.name, cdp.to_json(&id))),
                );
                lines
            }
            EventKind::PowerOff => {
                // A power cycle forgets the assertion in progress.
                self.decoders.remove(&event.key);
                vec![line(event.kind.name(), event.payload.clone())]
            }
            kind => {
                let mut data = event.payload.clone();
                // DevTools events published by the control API itself carry
                // the authenticator id, as CDP's do.
                if kind.name().starts_with("credential") {
                    if let Value::Object(map) = &mut data {
                        map.insert("authenticatorId".into(), json!(id));
                    }
                }
                vec![line(kind.name(), data)]
            }
        }
    }

    /// A line telling a subscriber it fell behind and lost `missed` events.
    pub fn lagged(missed: u64) -> Line {
        Line {
            event: "lagged".into(),
            json: json!({
                "time": rfc3339(SystemTime::now()),
                "authenticatorId": null,
                "event": "lagged",
                "data": { "missed": missed },
            }),
        }
    }
}

fn rfc3339(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RawCtap;
    use std::time::Duration;
    use zeroize::Zeroizing;

    fn event(kind: EventKind) -> Event {
        Event {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_500),
            key: KeyId(3),
            kind,
            payload: json!({"busid": "1-3"}),
        }
    }

    #[test]
    fn device_events_pass_through_and_ctap_is_decoded() {
        let mut feed = Feed::new();
        let lines = feed.lines(&event(EventKind::Plugged));
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0].json,
            json!({"time": "1970-01-01T00:00:01.5Z", "authenticatorId": "3", "event": "plugged", "data": {"busid": "1-3"}})
        );
        let pin_hash = [0x5Cu8; 16];
        let mut request = vec![0x06, 0xA3, 0x01, 0x02, 0x02, 0x04, 0x06, 0x50];
        request.extend_from_slice(&pin_hash);
        let raw = RawCtap {
            protocol: CtapProtocol::Cbor,
            channel: 9,
            request: Zeroizing::new(request),
            end: CtapEnd::Response(Zeroizing::new(vec![0x31])),
            waited_for_presence: false,
            latency: Duration::from_millis(2),
        };
        let lines = feed.lines(&event(EventKind::Ctap(raw.clone())));
        assert_eq!(lines.len(), 1);
        let data = &lines[0].json["data"];
        assert_eq!(data["command"], "clientPIN");
        assert_eq!(data["status"], "CTAP2_ERR_PIN_INVALID");
        assert_eq!(data["params"]["pinHashEnc"], json!({"len": 16}));
        assert_eq!(data["channel"], 9);
        assert!(!lines[0].json.to_string().contains("XFxc"));
        let denied = RawCtap {
            end: CtapEnd::Denied,
            ..raw
        };
        let lines = feed.lines(&event(EventKind::Ctap(denied)));
        assert_eq!(lines[0].json["data"]["status"], "DENIED");
        assert_eq!(Feed::lagged(4).json["data"]["missed"], 4);
    }
}
