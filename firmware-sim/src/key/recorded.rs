//! [`Recorded`]: the core's [`App`] with every CTAP request published on the
//! [`EventBus`] as one raw [`EventKind::Ctap`] event, and presence requests as
//! [`EventKind::Presence`] events.
//!
//! The CTAPHID transport calls [`App::handle`] once, or twice when the request
//! needs user presence (first `NeedsPresence`, then again once the user
//! approved). The wrapper keeps the request's start time across the wait, so
//! the latency covers the whole request; a presence wait that ends without a
//! response (denied, timed out, cancelled, reset) still gives one event.
//!
//! With no subscriber on the bus nothing is copied or timed.

use std::time::Instant;

use ferrokey::app::{App, CallContext, Message, Outcome, Protocol};
use ferrokey::platform::PresenceStatus;
use serde_json::json;
use zeroize::Zeroizing;

use ferrokey::pin::controls::PinUvStatus;

use super::pin;
use crate::events::{CtapEnd, CtapProtocol, EventBus, EventKind, KeyId, RawCtap};

/// A request waiting for presence.
struct Waiting {
    protocol: CtapProtocol,
    channel: u32,
    request: Zeroizing<Vec<u8>>,
    started: Instant,
}

/// Reads an app's PIN/UV state (see [`Recorded::with_pin_watch`]).
pub type PinWatch<A> = fn(&A) -> PinUvStatus;

/// An [`App`] that publishes what passes through it (see the module documentation).
pub struct Recorded<A> {
    inner: A,
    key: KeyId,
    bus: EventBus,
    waiting: Option<Waiting>,
    pin_watch: Option<PinWatch<A>>,
}

impl<A> Recorded<A> {
    /// Wraps `inner`, publishing on `bus` as key `key`.
    pub fn new(inner: A, key: KeyId, bus: EventBus) -> Self {
        Recorded {
            inner,
            key,
            bus,
            waiting: None,
            pin_watch: None,
        }
    }

    /// Also publishes the PIN/UV changes a CTAP request makes (`pinSet`,
    /// `pinChanged`, `pinBlocked`, ... with `source: "ctap"`, see
    /// [`crate::key::pin::changes`]), reading the state with `watch` before
    /// and after each request.
    pub fn with_pin_watch(mut self, watch: PinWatch<A>) -> Self {
        self.pin_watch = Some(watch);
        self
    }

    /// The wrapped app.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The wrapped app, mutably.
    pub fn inner_mut(&mut self) -> &mut A {
        &mut self.inner
    }

    fn publish_ctap(&self, raw: RawCtap) {
        self.bus
            .publish(self.key, EventKind::Ctap(raw), serde_json::Value::Null);
    }

    fn publish_presence(&self, state: &str) {
        self.bus
            .publish(self.key, EventKind::Presence, json!({ "state": state }));
    }

    /// Ends a presence wait without a response.
    fn end_waiting(&mut self, end: CtapEnd) {
        if let Some(waiting) = self.waiting.take() {
            self.publish_ctap(RawCtap {
                protocol: waiting.protocol,
                channel: waiting.channel,
                request: waiting.request,
                end,
                waited_for_presence: true,
                latency: waiting.started.elapsed(),
            });
        }
    }
}

fn protocol(protocol: Protocol) -> CtapProtocol {
    match protocol {
        Protocol::Cbor => CtapProtocol::Cbor,
        Protocol::Msg => CtapProtocol::Msg,
    }
}

impl<A: App> App for Recorded<A> {
    fn handle(
        &mut self,
        proto: Protocol,
        request: &[u8],
        context: CallContext,
        response: &mut Message,
    ) -> Outcome {
        if !self.bus.has_subscribers() {
            self.waiting = None;
            return self.inner.handle(proto, request, context, response);
        }
        let resumed = self
            .waiting
            .take()
            .filter(|w| context.up_granted && w.channel == context.channel);
        let started = resumed.as_ref().map_or_else(Instant::now, |w| w.started);
        let pin_before = self.pin_watch.map(|watch| watch(&self.inner));
        let outcome = self.inner.handle(proto, request, context, response);
        match outcome {
            Outcome::Response => self.publish_ctap(RawCtap {
                protocol: protocol(proto),
                channel: context.channel,
                request: Zeroizing::new(request.to_vec()),
                end: CtapEnd::Response(Zeroizing::new(response.to_vec())),
                waited_for_presence: resumed.is_some(),
                latency: started.elapsed(),
            }),
            Outcome::NeedsPresence => {
                self.waiting = Some(Waiting {
                    protocol: protocol(proto),
                    channel: context.channel,
                    request: Zeroizing::new(request.to_vec()),
                    started,
                });
            }
        }
        // After the request's own event: what it did to the PIN/UV state.
        if let (Some(watch), Some(before)) = (self.pin_watch, pin_before) {
            let after = watch(&self.inner);
            pin::publish_changes(&self.bus, self.key, &before, &after, "ctap");
        }
        outcome
    }

    fn request_presence(&mut self, now_ms: u64) {
        self.publish_presence("requested");
        self.inner.request_presence(now_ms);
    }

    fn poll_presence(&mut self, now_ms: u64) -> PresenceStatus {
        let status = self.inner.poll_presence(now_ms);
        match status {
            PresenceStatus::Approved => self.publish_presence("approved"),
            PresenceStatus::Denied => {
                self.publish_presence("denied");
                self.end_waiting(CtapEnd::Denied);
            }
            PresenceStatus::Pending => {}
        }
        status
    }

    fn cancel_presence(&mut self) {
        self.publish_presence("withdrawn");
        self.end_waiting(CtapEnd::Withdrawn);
        self.inner.cancel_presence();
    }

    fn wink(&mut self) {
        self.inner.wink();
    }

    fn supports_ctap1(&self) -> bool {
        self.inner.supports_ctap1()
    }

    fn supports_cbor(&self) -> bool {
        self.inner.supports_cbor()
    }

    fn transport_reset(&mut self) {
        self.end_waiting(CtapEnd::Withdrawn);
        self.inner.transport_reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use std::sync::Arc;
    use tokio::sync::broadcast::Receiver;

    /// Answers `[0, request...]`; asks for presence when the request starts with 0xFF.
    struct Echo {
        presence: PresenceStatus,
    }

    impl App for Echo {
        fn handle(
            &mut self,
            _: Protocol,
            request: &[u8],
            cx: CallContext,
            out: &mut Message,
        ) -> Outcome {
            if request.first() == Some(&0xFF) && !cx.up_granted {
                return Outcome::NeedsPresence;
            }
            out.clear();
            let _ = out.push(0);
            let _ = out.extend_from_slice(request);
            Outcome::Response
        }
        fn request_presence(&mut self, _: u64) {}
        fn poll_presence(&mut self, _: u64) -> PresenceStatus {
            self.presence
        }
        fn cancel_presence(&mut self) {}
    }

    /// Request `[1]` sets a PIN, `[2]` changes it, `[3]` clears it, anything
    /// else changes nothing.
    struct Pinning {
        status: PinUvStatus,
    }

    impl App for Pinning {
        fn handle(
            &mut self,
            _: Protocol,
            request: &[u8],
            _: CallContext,
            out: &mut Message,
        ) -> Outcome {
            match request.first() {
                Some(1 | 2) => {
                    self.status.pin_set = true;
                    self.status.pin_changes += 1;
                }
                Some(3) => self.status.pin_set = false,
                _ => {}
            }
            out.clear();
            let _ = out.push(0);
            Outcome::Response
        }
        fn request_presence(&mut self, _: u64) {}
        fn poll_presence(&mut self, _: u64) -> PresenceStatus {
            PresenceStatus::Approved
        }
        fn cancel_presence(&mut self) {}
    }

    #[test]
    fn pin_changes_from_ctap_follow_their_request() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let status = PinUvStatus {
            pin_set: false,
            pin_retries: 8,
            power_cycle_required: false,
            force_pin_change: false,
            min_pin_length: 4,
            builtin_uv: false,
            uv_retries: 8,
            pin_changes: 0,
        };
        let mut app = Recorded::new(Pinning { status }, KeyId(4), bus)
            .with_pin_watch(|app: &Pinning| app.status);
        let mut out = Message::new();
        for request in [[1u8], [0], [2], [3]] {
            app.handle(Protocol::Cbor, &request, cx(false), &mut out);
        }
        let events = drain(&mut rx);
        let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            names,
            [
                "ctap",
                "pinSet",
                "ctap",
                "ctap",
                "pinChanged",
                "ctap",
                "pinCleared"
            ]
        );
        assert!(events
            .iter()
            .filter(|e| e.kind.name().starts_with("pin"))
            .all(|e| e.payload["source"] == "ctap"));
        assert_eq!(events[1].payload["pin"]["state"], "set");
    }

    fn cx(up_granted: bool) -> CallContext {
        CallContext {
            now_ms: 0,
            up_granted,
            channel: 9,
        }
    }

    fn drain(rx: &mut Receiver<Arc<Event>>) -> Vec<Arc<Event>> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn ctap(event: &Event) -> &RawCtap {
        match &event.kind {
            EventKind::Ctap(raw) => raw,
            other => panic!("not a CTAP event: {other:?}"),
        }
    }

    #[test]
    fn one_event_per_request_with_bytes() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let mut app = Recorded::new(
            Echo {
                presence: PresenceStatus::Approved,
            },
            KeyId(3),
            bus,
        );
        let mut out = Message::new();
        assert_eq!(
            app.handle(Protocol::Cbor, &[4, 1], cx(false), &mut out),
            Outcome::Response
        );
        let events = drain(&mut rx);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].key, KeyId(3));
        let raw = ctap(&events[0]);
        assert_eq!(raw.protocol, CtapProtocol::Cbor);
        assert_eq!(raw.channel, 9);
        assert_eq!(&raw.request[..], &[4, 1]);
        assert_eq!(raw.end, CtapEnd::Response(Zeroizing::new(vec![0, 4, 1])));
        assert!(!raw.waited_for_presence);
    }

    #[test]
    fn a_presence_wait_is_one_request() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let mut app = Recorded::new(
            Echo {
                presence: PresenceStatus::Approved,
            },
            KeyId(1),
            bus,
        );
        let mut out = Message::new();
        assert_eq!(
            app.handle(Protocol::Msg, &[0xFF, 2], cx(false), &mut out),
            Outcome::NeedsPresence
        );
        app.request_presence(0);
        assert_eq!(app.poll_presence(1), PresenceStatus::Approved);
        assert_eq!(
            app.handle(Protocol::Msg, &[0xFF, 2], cx(true), &mut out),
            Outcome::Response
        );
        let events = drain(&mut rx);
        let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(names, ["presence", "presence", "ctap"]);
        assert_eq!(events[0].payload["state"], "requested");
        assert_eq!(events[1].payload["state"], "approved");
        let raw = ctap(&events[2]);
        assert!(raw.waited_for_presence);
        assert_eq!(raw.protocol, CtapProtocol::Msg);
        assert_eq!(raw.end, CtapEnd::Response(Zeroizing::new(vec![0, 0xFF, 2])));
    }

    #[test]
    fn denied_and_withdrawn_waits_are_reported() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let mut app = Recorded::new(
            Echo {
                presence: PresenceStatus::Denied,
            },
            KeyId(1),
            bus,
        );
        let mut out = Message::new();
        app.handle(Protocol::Cbor, &[0xFF], cx(false), &mut out);
        assert_eq!(app.poll_presence(1), PresenceStatus::Denied);
        app.handle(Protocol::Cbor, &[0xFF, 1], cx(false), &mut out);
        app.cancel_presence();
        // Nothing is left waiting: a reset adds no third event.
        app.transport_reset();
        let ends: Vec<CtapEnd> = drain(&mut rx)
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Ctap(raw) => Some(raw.end.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(ends, [CtapEnd::Denied, CtapEnd::Withdrawn]);
    }

    #[test]
    fn without_subscribers_nothing_is_kept() {
        let bus = EventBus::new();
        let mut app = Recorded::new(
            Echo {
                presence: PresenceStatus::Approved,
            },
            KeyId(1),
            bus.clone(),
        );
        let mut out = Message::new();
        app.handle(Protocol::Cbor, &[0xFF], cx(false), &mut out);
        assert!(app.waiting.is_none());
        let mut rx = bus.subscribe();
        app.handle(Protocol::Cbor, &[0xFF], cx(true), &mut out);
        // Resumed after a wait the wrapper did not see start: still one event.
        assert_eq!(drain(&mut rx).len(), 1);
    }
}
