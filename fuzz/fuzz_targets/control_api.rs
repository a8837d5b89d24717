//! The control API: arbitrary requests into the axum router (the real one,
//! with its guard, CORS, limits and every route) over a fleet of keys in a
//! temporary state root, with `tower::ServiceExt::oneshot`.
//!
//! Input: a request in HTTP/1 text form, leniently: `METHOD URI` on the
//! first line, `Name: value` header lines, an empty line, the body (so the
//! seeds are readable requests built from the OpenAPI examples).
//! Invariants: no panic; no 5xx (none is documented for these requests:
//! the keys' storage is healthy); every answer but an event stream is JSON,
//! errors in the documented `{"value": {"error", "message"}}` shape.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use firmware_sim::control::router::router;
use firmware_sim::control::{Control, Guard};
use firmware_sim::fleet::{Fleet, FleetConfig};
use firmware_sim::key::KeyOptions;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Setup {
    runtime: tokio::runtime::Runtime,
    fleet: Fleet,
    app: axum::Router,
    _root: tempfile::TempDir,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fleet = Fleet::open(&FleetConfig {
            root: root.path().join("state"),
            country: "US".into(),
            threads: 1,
            transport: firmware_sim::transport::Transport::Usbip,
        })
        .unwrap_or_else(|e| panic!("fleet: {e:#}"));
        runtime
            .block_on(fleet.add_numbered(1, KeyOptions::default()))
            .unwrap_or_else(|e| panic!("key 1: {e}"));
        let app = router(
            Arc::new(Control {
                fleet: fleet.clone(),
            }),
            Guard::default(),
        );
        Setup {
            runtime,
            fleet,
            app,
            _root: root,
        }
    })
}

/// Parses the input as a request; None when `http` refuses its parts (as
/// hyper would before the router sees it).
fn request(data: &[u8]) -> Option<Request<Body>> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let mut first = lines.next()?.splitn(2, ' ');
    let method = Method::from_bytes(first.next()?.as_bytes()).ok()?;
    let uri = first.next().unwrap_or("/");
    let mut builder = Request::builder().method(method).uri(uri);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        builder = builder.header(name.trim(), value.trim());
    }
    builder.body(Body::from(body.to_vec())).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = request(data) else {
        return;
    };
    let describe = format!("{} {}", request.method(), request.uri());
    // A HEAD answer has no body by definition (axum answers GET's without it).
    let bodiless = request.method() == Method::HEAD;
    let setup = setup();
    setup.runtime.block_on(async {
        let answer =
            tokio::time::timeout(Duration::from_secs(5), setup.app.clone().oneshot(request)).await;
        let Ok(answer) = answer else {
            // A handler waiting (for a touch, a key's thread): the router's
            // own time limit answers it later; not an error of the input.
            return;
        };
        let response = answer.unwrap_or_else(|e| match e {});
        let status = response.status();
        let streams = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = if streams || bodiless {
            None
        } else {
            tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|c| c.to_bytes())
        };
        assert!(
            !status.is_server_error(),
            "{describe}: {status}: {:?}",
            body.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        );
        if let Some(body) = body {
            if status.as_u16() == 204 || body.is_empty() && status.is_redirection() {
                return;
            }
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                panic!(
                    "{describe}: {status}: not JSON: {}",
                    String::from_utf8_lossy(&body)
                )
            });
            if !status.is_success() {
                let error = &json["value"]["error"];
                assert!(
                    error.is_string() && json["value"]["message"].is_string(),
                    "{describe}: {status}: not the documented error shape: {json}"
                );
            }
        }
    });
    // Keep the fleet to one powered key 1 and at most a few others.
    setup.runtime.block_on(async {
        let keys = setup.fleet.list();
        for key in keys.iter().filter(|k| k.number != 1).skip(2) {
            let _ = setup.fleet.remove(key.id).await;
        }
        match setup.fleet.get_by_number(1) {
            Some(key) => {
                let _ = key.power(true).await;
            }
            None => {
                let _ = setup.fleet.add_numbered(1, KeyOptions::default()).await;
            }
        }
    });
});
