//! The event bus: what the keys tell the rest of the process.
//!
//! Every key publishes device events (plugged, unplugged, imported, released,
//! power on/off, presence) and, through [`crate::key::Recorded`], one raw
//! [`EventKind::Ctap`] event per CTAP request. Subscribers (the control API's
//! server-sent events, `--transcript`, `ferrokey events`) each get their own
//! receiver of a tokio broadcast channel of `Arc<Event>`:
//!
//! - publishing never blocks and never fails: a key does not wait for anyone;
//! - a subscriber that falls more than [`CAPACITY`] events behind loses the
//!   oldest ones and is told so (`RecvError::Lagged(n)`);
//! - with no subscriber, the keys skip building CTAP events at all
//!   ([`EventBus::has_subscribers`]).
//!
//! # Secrets
//!
//! Raw CTAP events carry request and response bytes, which hold PIN material,
//! key agreement keys, tokens and credential secrets. They are kept in
//! [`RawCtap`] (zeroized on drop, `Debug` shows lengths only) and [`Event`] is
//! deliberately not `Serialize`: whoever writes events anywhere must decode
//! and redact them first (the control API does).

pub mod ctap;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::{broadcast, watch};
use zeroize::Zeroizing;

/// How many events a subscriber may fall behind before it loses the oldest.
pub const CAPACITY: usize = 4096;

/// Identifies one key of a fleet for the life of the process (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u64);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for KeyId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(KeyId)
    }
}

/// The CTAPHID command that carried a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtapProtocol {
    /// CTAPHID_CBOR: a CTAP2 command byte, then CBOR.
    Cbor,
    /// CTAPHID_MSG: a U2F (CTAP1) APDU.
    Msg,
}

impl CtapProtocol {
    /// `"cbor"` or `"msg"`.
    pub fn name(self) -> &'static str {
        match self {
            CtapProtocol::Cbor => "cbor",
            CtapProtocol::Msg => "msg",
        }
    }
}

/// How a CTAP request ended.
#[derive(Clone, PartialEq, Eq)]
pub enum CtapEnd {
    /// The key answered with these bytes (for CBOR: status byte, then CBOR).
    Response(Zeroizing<Vec<u8>>),
    /// The user refused presence; the transport answered with its error.
    Denied,
    /// The presence wait ended without an answer (timeout, CTAPHID_CANCEL, a
    /// reset or an unplug); the transport answered (or could not) itself.
    Withdrawn,
}

impl fmt::Debug for CtapEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtapEnd::Response(bytes) => write!(f, "Response({} bytes)", bytes.len()),
            CtapEnd::Denied => f.write_str("Denied"),
            CtapEnd::Withdrawn => f.write_str("Withdrawn"),
        }
    }
}

/// One CTAP request and how it ended, undecoded. May hold secrets: see the
/// module documentation.
#[derive(Clone, PartialEq, Eq)]
pub struct RawCtap {
    /// CBOR or MSG.
    pub protocol: CtapProtocol,
    /// The CTAPHID channel.
    pub channel: u32,
    /// The request message (for CBOR: command byte, then CBOR).
    pub request: Zeroizing<Vec<u8>>,
    /// The answer.
    pub end: CtapEnd,
    /// Whether the request waited for user presence (and got an answer).
    pub waited_for_presence: bool,
    /// From the complete request to the answer (presence wait included).
    pub latency: Duration,
}

impl fmt::Debug for RawCtap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawCtap")
            .field("protocol", &self.protocol)
            .field("channel", &format_args!("{:#010x}", self.channel))
            .field("request", &format_args!("{} bytes", self.request.len()))
            .field("end", &self.end)
            .field("waited_for_presence", &self.waited_for_presence)
            .field("latency", &self.latency)
            .finish()
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was added to the fleet and can be attached (payload: busid,
    /// serial, transport).
    Plugged,
    /// The key was removed from the fleet (its state is deleted).
    Unplugged,
    /// A host imported (attached) the key (payload: peer, transport).
    Imported,
    /// The host let the key go: detach, disconnect, power off (payload: reason).
    Released,
    /// The key got power (a fresh power-up from its state).
    PowerOn,
    /// The key lost power (its volatile state is gone).
    PowerOff,
    /// A presence request started or ended (payload: `state` =
    /// requested|approved|denied|withdrawn).
    Presence,
    /// One CTAP request (see [`RawCtap`]); the payload is empty.
    Ctap(RawCtap),
    /// Published by another part of the process (e.g. the control API's
    /// `credentialAdded`), named by it.
    Other(Cow<'static, str>),
}

impl EventKind {
    /// The event's name: `plugged`, `unplugged`, `imported`, `released`,
    /// `powerOn`, `powerOff`, `presence`, `ctap`, or the name of an `Other`.
    pub fn name(&self) -> &str {
        match self {
            EventKind::Plugged => "plugged",
            EventKind::Unplugged => "unplugged",
            EventKind::Imported => "imported",
            EventKind::Released => "released",
            EventKind::PowerOn => "powerOn",
            EventKind::PowerOff => "powerOff",
            EventKind::Presence => "presence",
            EventKind::Ctap(_) => "ctap",
            EventKind::Other(name) => name,
        }
    }
}

/// One event. Not `Serialize` on purpose (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When it happened (wall clock).
    pub time: SystemTime,
    /// The key it concerns.
    pub key: KeyId,
    /// What happened.
    pub kind: EventKind,
    /// Details (never secrets); `Null` when there are none.
    pub payload: Value,
}

/// The process's event bus; clones share it.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    /// Set once by [`EventBus::close`]: the process is stopping.
    closed: Arc<watch::Sender<bool>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    /// A bus keeping up to [`CAPACITY`] events per subscriber.
    pub fn new() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
            closed: Arc::new(watch::channel(false).0),
        }
    }

    /// Says that no more events will come (the server is stopping):
    /// followers such as the control API's event streams end cleanly once
    /// they have passed on what was published before.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Completes once [`EventBus::close`] was called (at once if it was).
    pub async fn closed(&self) {
        let mut closed = self.closed.subscribe();
        // An error means the bus is gone, which is as closed as it gets.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// A new subscriber; it sees the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Whether anyone listens (publishers may skip costly events otherwise).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Publishes an event now. Never blocks.
    pub fn publish(&self, key: KeyId, kind: EventKind, payload: Value) {
        self.send(Event {
            time: SystemTime::now(),
            key,
            kind,
            payload,
        });
    }

    /// Publishes a complete event. Never blocks.
    pub fn send(&self, event: Event) {
        if self.has_subscribers() {
            // An error only means the last subscriber just went away.
            let _ = self.tx.send(Arc::new(event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::sync::broadcast::error::TryRecvError;

    #[test]
    fn subscribers_get_events_in_order_and_a_slow_one_lags() {
        let bus = EventBus::new();
        assert!(!bus.has_subscribers());
        // Nobody listens: publishing is a no-op, not an error.
        bus.publish(KeyId(1), EventKind::Plugged, Value::Null);
        let mut fast = bus.subscribe();
        let mut slow = bus.subscribe();
        assert!(bus.has_subscribers());
        bus.publish(KeyId(1), EventKind::PowerOff, json!({"a": 1}));
        let event = fast.try_recv().unwrap();
        assert_eq!(event.kind, EventKind::PowerOff);
        assert_eq!(event.key, KeyId(1));
        assert_eq!(event.payload["a"], 1);
        // The slow subscriber falls behind by more than the capacity: the
        // publisher never waits, the subscriber is told how many it lost.
        for i in 0..CAPACITY + 10 {
            bus.publish(KeyId(2), EventKind::Other("tick".into()), json!(i));
        }
        match slow.try_recv() {
            Err(TryRecvError::Lagged(n)) => assert_eq!(n, 11),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(slow.try_recv().unwrap().payload, json!(10));
    }

    #[test]
    fn raw_ctap_debug_shows_no_bytes() {
        let raw = RawCtap {
            protocol: CtapProtocol::Cbor,
            channel: 7,
            request: Zeroizing::new(vec![0x06, 0xA1, 0x01, 0x42, 0xAB, 0xCD]),
            end: CtapEnd::Response(Zeroizing::new(vec![0x00, 0x99])),
            waited_for_presence: false,
            latency: Duration::from_millis(3),
        };
        let text = format!("{raw:?} {:?}", EventKind::Ctap(raw.clone()));
        assert!(
            text.contains("6 bytes") && text.contains("2 bytes"),
            "{text}"
        );
        assert!(
            !text.contains("171") && !text.to_lowercase().contains("abcd"),
            "{text}"
        );
        assert_eq!(EventKind::Ctap(raw).name(), "ctap");
    }

    #[tokio::test]
    async fn closing_is_seen_by_every_clone_even_later() {
        let bus = EventBus::new();
        let clone = bus.clone();
        let waiter = tokio::spawn(async move { clone.closed().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        bus.close();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("a follower did not see the close")
            .unwrap();
        // Asking after the close completes at once.
        tokio::time::timeout(Duration::from_secs(1), bus.closed())
            .await
            .unwrap();
    }

    #[test]
    fn key_ids_round_trip() {
        assert_eq!("42".parse::<KeyId>().unwrap(), KeyId(42));
        assert_eq!(KeyId(7).to_string(), "7");
        assert!("x".parse::<KeyId>().is_err());
    }
}
