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
use firmware_sim::control::router::{router, routes, OPENAPI};
use firmware_sim::control::{Control, Guard};
use firmware_sim::fleet::{Fleet, FleetConfig};
use firmware_sim::key::KeyOptions;
use firmware_sim::presence::UvMode;
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

/// A router driving a fleet of one key (number 1, built-in UV on), and the fleet.
async fn test_router(tmp: &std::path::Path) -> (axum::Router, Fleet) {
    let fleet = Fleet::open(&FleetConfig {
        root: tmp.join("state"),
        country: "US".into(),
        threads: 1,
        transport: firmware_sim::transport::Transport::Usbip,
    })
    .unwrap();
    let options = KeyOptions {
        uv: UvMode::Auto,
        ..KeyOptions::default()
    };
    fleet.add_numbered(1, options).await.unwrap();
    let app = router(
        Arc::new(Control {
            fleet: fleet.clone(),
        }),
        Guard::default(),
    );
    (app, fleet)
}

#[test]
fn every_route_is_documented_and_every_documented_route_is_in_the_table() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let table: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_string(), r.documented.clone()))
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
    let tmp = tempfile::tempdir().unwrap();
    let (app, fleet) = test_router(tmp.path()).await;
    for (method, path) in documented(&doc) {
        let operation = &doc["paths"][&path][method.to_ascii_lowercase()];
        let mut uri = example_uri(&doc, &path, operation);
        let mut key = "1".to_string();
        if method == "DELETE" {
            // Remove a key made for the purpose, not key 1.
            key = fleet
                .add(KeyOptions::default())
                .await
                .unwrap()
                .id
                .to_string();
            uri = uri.replace("/authenticator/1", &format!("/authenticator/{key}"));
        }
        if path.contains("/bio") {
            // The fingerprint sensor's routes need a key that has one.
            let bio = KeyOptions {
                bio: true,
                ..KeyOptions::default()
            };
            key = fleet.add(bio).await.unwrap().id.to_string();
            uri = uri.replace("/authenticator/1", &format!("/authenticator/{key}"));
        }
        // The documented example credential exists exactly when the operation needs it.
        let credential_op = path.contains("/credential");
        if credential_op {
            let seed = &doc["paths"]["/webauthn/authenticator/{authenticatorId}/credential"]
                ["post"]["requestBody"]["content"]["application/json"]["example"];
            let id = seed["credentialId"].as_str().unwrap();
            let adds = method == "POST" && path.ends_with("/credential");
            let (verb, target, body) = if adds {
                (
                    "DELETE",
                    format!("/webauthn/authenticator/{key}/credentials/{id}"),
                    Body::empty(),
                )
            } else {
                (
                    "POST",
                    format!("/webauthn/authenticator/{key}/credential"),
                    Body::from(seed.to_string()),
                )
            };
            let setup = Request::builder()
                .method(verb)
                .uri(target)
                .header("content-type", "application/json")
                .body(body)
                .unwrap();
            let _ = app.clone().oneshot(setup).await.unwrap();
        }
        let example = &operation["requestBody"]["content"]["application/json"]["example"];
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(&uri)
            .header("host", "127.0.0.1");
        let body = if example.is_null() {
            Body::empty()
        } else {
            request = request.header("content-type", "application/json");
            Body::from(example.to_string())
        };
        let response = app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let streams = operation["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some();
        if streams {
            assert_eq!(status, 200, "{method} {uri}");
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(content_type, "text/event-stream", "{method} {uri}");
            continue;
        }
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{method} {uri}: not JSON"));
        assert_eq!(status, 200, "{method} {uri} (documented {path}): {body}");
        // The documented 200 schema's required properties are exactly what came back.
        let schema = resolve(&doc, &operation["responses"]["200"]);
        let schema = resolve(&doc, &schema["content"]["application/json"]["schema"]);
        check_shape(&doc, schema, &body, &format!("{method} {uri}"), 0);
    }
    fleet.shutdown().await;
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
        Some("null") => assert!(value.is_null(), "{at}: not null: {value}"),
        _ => {}
    }
}
