//! Server-Sent Events: `GET /events` (every key) and `GET
//! .../authenticator/{id}/events` (one key). Each SSE event is named after
//! the line's `event` and carries the whole [`super::feed::Line`] JSON as
//! data. A subscriber that falls behind gets a `lagged` event saying how many
//! it missed; the keys never wait for it. When the server stops
//! ([`crate::events::EventBus::close`]) every stream ends cleanly after the
//! events published before.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::feed::{Feed, Line};
use super::reply::ApiError;
use super::webauthn::authenticators::key_by_id;
use super::webauthn::Ids;
use super::Shared;
use crate::events::KeyId;

/// `GET /events`.
pub async fn all(
    State(control): State<Shared>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    stream_of(&control, None)
}

/// `GET .../authenticator/{id}/events`.
pub async fn one(
    State(control): State<Shared>,
    Ids { authenticator, .. }: Ids,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let key = key_by_id(&control, &authenticator)?;
    Ok(stream_of(&control, Some(key.id())))
}

fn stream_of(
    control: &super::Control,
    only: Option<KeyId>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let bus = control.fleet.events().clone();
    let receiver = bus.subscribe();
    let state = (receiver, Feed::new(), VecDeque::<Line>::new());
    let events = stream::unfold(state, move |(mut receiver, mut feed, mut pending)| {
        let bus = bus.clone();
        async move {
            loop {
                if let Some(line) = pending.pop_front() {
                    let event = SseEvent::default()
                        .event(&line.event)
                        .data(line.json.to_string());
                    return Some((Ok(event), (receiver, feed, pending)));
                }
                // Events already published go out before a close ends
                // the stream (cleanly: the client sees the body end).
                let received = tokio::select! {
                    biased;
                    received = receiver.recv() => received,
                    () = bus.closed() => return None,
                };
                match received {
                    Ok(event) if only.map_or(true, |id| id == event.key) => {
                        pending.extend(feed.lines(&event))
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => pending.push_back(Feed::lagged(missed)),
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
