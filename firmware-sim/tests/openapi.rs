//! `firmware-sim/openapi.json` and the router agree: every route is
//! documented, every documented route is served (a request built from the
//! document's own examples reaches a handler), every `$ref` resolves, and the
//! real answers have the documented shape. (tests/control/ validates the
//! answers of a running `ferrokey` against the full JSON Schemas, and runs
//! schemathesis.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Method, Request};
use firmware_sim::control::rig::Keys;
use firmware_sim::control::router::{router, routes, OPENAPI};
use firmware_sim::control::{ControlTarget, Guard};
use firmware_sim::key::ReportCore;
use firmware_sim::presence::{PresenceSwitch, UvMode};
use firmware_sim::usb::hid::REPORT_SIZE;
use firmware_sim::usbip::{Notify, Server, UsbIdentity};
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "delete", "put", "patch"];

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

/// (METHOD, documented path) of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut set = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                set.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    set
}

/// Follows a local `$ref` (`#/a/b`).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => {
            let target = doc
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {pointer}"));
            resolve(doc, target)
        }
        None => value,
    }
}

/// Every `$ref` in the document points at something.
fn check_refs(doc: &Value, value: &Value, depth: usize) {
    assert!(depth < 64, "document nested too deeply");
    match value {
        Value::Object(map) => {
            if let Some(pointer) = map.get("$ref").and_then(Value::as_str) {
                assert!(pointer.starts_with("#/"), "non-local $ref {pointer}");
                assert!(
                    doc.pointer(&pointer[1..]).is_some(),
                    "dangling $ref {pointer}"
                );
            }
            map.values().for_each(|v| check_refs(doc, v, depth + 1));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v, depth + 1)),
        _ => {}
    }
}

/// The documented path with every parameter replaced by its documented example.
fn example_uri(doc: &Value, path: &str, operation: &Value) -> String {
    let mut uri = path.to_string();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let parameter = resolve(doc, parameter);
        assert_eq!(
            parameter["in"], "path",
            "only path parameters are used so far"
        );
        let name = parameter["name"].as_str().unwrap();
        let example = match &parameter["example"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("parameter {name} of {path} has no usable example: {other}"),
        };
        let placeholder = format!("{{{name}}}");
        assert!(
            uri.contains(&placeholder),
            "{path} does not use parameter {name}"
        );
        uri = uri.replace(&placeholder, &example);
    }
    assert!(
        !uri.contains('{'),
        "{path}: a path parameter is not declared"
    );
    uri
}

struct Quiet;

impl ReportCore for Quiet {
    fn handle_report(&mut self, _: &[u8], _: u64) {}
    fn next_report(&mut self) -> Option<[u8; REPORT_SIZE]> {
        None
    }
    fn tick(&mut self, _: u64) {}
    fn next_deadline(&self) -> Option<u64> {
        None
    }
    fn reset(&mut self) {}
}

/// A router driving one running key (number 1, built-in UV on).
async fn test_router() -> (axum::Router, firmware_sim::usbip::BackgroundServer) {
    let wake = Arc::new(Notify::new());
    let mut server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let identity = UsbIdentity {
        vendor_id: 0x1209,
        product_id: 0x000A,
        device_release: 0x0100,
        manufacturer: "m".into(),
        product: "p".into(),
        serial: "OPENAPI1".into(),
    };
    server.add_key(identity, Quiet, wake.clone()).unwrap();
    let targets = server
        .key_switches()
        .into_iter()
        .map(|power| ControlTarget {
            number: 1,
            power,
            presence: PresenceSwitch::new(wake.clone()),
            mode: "auto".into(),
            uv: UvMode::Auto,
        })
        .collect();
    let app = router(Arc::new(Keys { targets }), Guard::default());
    (app, server.spawn().unwrap())
}

#[test]
fn every_route_is_documented_and_every_documented_route_is_in_the_table() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let table: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_string(), r.documented.to_string()))
        .collect();
    assert_eq!(routes().len(), table.len(), "a route is listed twice");
    let documented = documented(&doc);
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not routed: {unserved:?}"
    );
    check_refs(&doc, &doc, 0);
}

#[tokio::test]
async fn every_documented_operation_is_served_with_the_documented_shape() {
    let doc = document();
    let (app, background) = test_router().await;
    for (method, path) in documented(&doc) {
        let operation = &doc["paths"][&path][method.to_ascii_lowercase()];
        let uri = example_uri(&doc, &path, operation);
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(&uri)
            .header("host", "127.0.0.1")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{method} {uri}: not JSON"));
        assert_eq!(status, 200, "{method} {uri} (documented {path}): {body}");
        // The documented 200 schema's required properties are exactly what came back.
        let schema = resolve(&doc, &operation["responses"]["200"]);
        let schema = resolve(&doc, &schema["content"]["application/json"]["schema"]);
        check_shape(&doc, schema, &body, &format!("{method} {uri}"), 0);
    }
    background.stop().unwrap();
}

/// A structural check of `value` against `schema`: objects have every
/// required property and (with additionalProperties false) no other; arrays
/// and nested objects recursively; enums hold.
fn check_shape(doc: &Value, schema: &Value, value: &Value, at: &str, depth: usize) {
    assert!(depth < 32);
    let schema = resolve(doc, schema);
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        assert!(allowed.contains(value), "{at}: {value} not in {allowed:?}");
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let object = value
                .as_object()
                .unwrap_or_else(|| panic!("{at}: not an object: {value}"));
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                assert!(object.contains_key(name), "{at}: missing {name}");
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, item) in object {
                match properties.and_then(|p| p.get(name)) {
                    Some(sub) => check_shape(doc, sub, item, &format!("{at}.{name}"), depth + 1),
                    None => assert_ne!(
                        schema.get("additionalProperties"),
                        Some(&Value::Bool(false)),
                        "{at}: undocumented {name}"
                    ),
                }
            }
        }
        Some("array") => {
            let items = value
                .as_array()
                .unwrap_or_else(|| panic!("{at}: not an array"));
            for (i, item) in items.iter().enumerate() {
                check_shape(
                    doc,
                    &schema["items"],
                    item,
                    &format!("{at}[{i}]"),
                    depth + 1,
                );
            }
        }
        Some("string") => assert!(value.is_string(), "{at}: not a string: {value}"),
        Some("integer") => assert!(
            value.is_i64() || value.is_u64(),
            "{at}: not an integer: {value}"
        ),
        Some("boolean") => assert!(value.is_boolean(), "{at}: not a boolean: {value}"),
        _ => {}
    }
}
