//! Chrome DevTools' WebAuthn events (`credentialAdded`, `credentialAsserted`,
//! `credentialUpdated`, `credentialDeleted`) derived from CTAP traffic, in
//! CDP's payload shape: `{"authenticatorId", "credential": {...}}` (and
//! `{"authenticatorId", "credentialId"}` for deletions). Binary fields are
//! base64url, as in the WebDriver credential parameters. The credential's
//! `privateKey` is never part of an event: private keys leave the key only
//! through `GET .../credentials`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{json, Map, Value};

use super::authdata::{self, BE, BS};
use super::render::{field, integer, named};

/// One CDP event: its name and its payload without `authenticatorId`.
#[derive(Clone, Debug, PartialEq)]
pub struct CdpEvent {
    /// `credentialAdded`, `credentialAsserted`, `credentialUpdated` or `credentialDeleted`.
    pub name: &'static str,
    /// `{"credential": {...}}` or `{"credentialId": ...}`.
    pub payload: Value,
}

impl CdpEvent {
    /// The payload with the authenticator's id, as CDP sends it.
    pub fn to_json(&self, authenticator_id: &str) -> Value {
        let mut payload = self.payload.clone();
        if let Value::Object(map) = &mut payload {
            map.insert("authenticatorId".into(), json!(authenticator_id));
        }
        payload
    }
}

/// What a getAssertion left for the getNextAssertions that follow it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AssertionContext {
    /// The RP ID asked for.
    pub rp_id: Option<String>,
    /// Whether the allowList was empty (so the credentials are discoverable).
    pub discoverable: bool,
}

/// The context a getAssertion request sets.
pub fn assertion_context(request: &Cbor) -> AssertionContext {
    let allow_list_empty = match field(request, 3) {
        Some(Cbor::Array(items)) => items.is_empty(),
        _ => true,
    };
    AssertionContext {
        rp_id: text(field(request, 1)),
        discoverable: allow_list_empty,
    }
}

/// credentialAdded after a successful makeCredential.
pub fn added(request: &Cbor, response: &Cbor) -> Option<CdpEvent> {
    let auth = authdata::parse(bytes(field(response, 2))?)?;
    let id = auth.credential_id.as_deref()?;
    let rp = field(request, 2);
    let user = field(request, 3);
    let resident = field(request, 7)
        .and_then(|o| named(o, "rk"))
        .is_some_and(|v| matches!(v, Cbor::Bool(true)));
    let mut credential = Map::new();
    credential.insert("credentialId".into(), json!(URL_SAFE_NO_PAD.encode(id)));
    credential.insert("isResidentCredential".into(), json!(resident));
    insert_text(&mut credential, "rpId", rp.and_then(|r| named(r, "id")));
    insert_b64(
        &mut credential,
        "userHandle",
        user.and_then(|u| named(u, "id")),
    );
    credential.insert("signCount".into(), json!(auth.sign_count));
    credential.insert("backupEligibility".into(), json!(auth.flags & BE != 0));
    credential.insert("backupState".into(), json!(auth.flags & BS != 0));
    insert_text(
        &mut credential,
        "userName",
        user.and_then(|u| named(u, "name")),
    );
    insert_text(
        &mut credential,
        "userDisplayName",
        user.and_then(|u| named(u, "displayName")),
    );
    Some(CdpEvent {
        name: "credentialAdded",
        payload: json!({ "credential": credential }),
    })
}

/// credentialAsserted after a successful getAssertion or getNextAssertion.
pub fn asserted(
    context: &AssertionContext,
    request: Option<&Cbor>,
    response: &Cbor,
) -> Option<CdpEvent> {
    let auth = authdata::parse(bytes(field(response, 2))?)?;
    // The credential id: in the response, or (allowed to be left out) the
    // allowList's only entry.
    let id = bytes(field(response, 1).and_then(|c| named(c, "id"))).or_else(|| {
        match request.and_then(|r| field(r, 3)) {
            Some(Cbor::Array(items)) if items.len() == 1 => bytes(named(&items[0], "id")),
            _ => None,
        }
    })?;
    let user = field(response, 4);
    let mut credential = Map::new();
    credential.insert("credentialId".into(), json!(URL_SAFE_NO_PAD.encode(id)));
    credential.insert("isResidentCredential".into(), json!(context.discoverable));
    if let Some(rp_id) = &context.rp_id {
        credential.insert("rpId".into(), json!(rp_id));
    }
    insert_b64(
        &mut credential,
        "userHandle",
        user.and_then(|u| named(u, "id")),
    );
    credential.insert("signCount".into(), json!(auth.sign_count));
    credential.insert("backupEligibility".into(), json!(auth.flags & BE != 0));
    credential.insert("backupState".into(), json!(auth.flags & BS != 0));
    insert_text(
        &mut credential,
        "userName",
        user.and_then(|u| named(u, "name")),
    );
    insert_text(
        &mut credential,
        "userDisplayName",
        user.and_then(|u| named(u, "displayName")),
    );
    Some(CdpEvent {
        name: "credentialAsserted",
        payload: json!({ "credential": credential }),
    })
}

/// credentialDeleted / credentialUpdated after a successful
/// credentialManagement deleteCredential / updateUserInformation.
pub fn managed(request: &Cbor) -> Option<CdpEvent> {
    let subcommand = integer(field(request, 1)?)?;
    let params = field(request, 2)?;
    let id = bytes(field(params, 2).and_then(|d| named(d, "id")))?;
    let id = URL_SAFE_NO_PAD.encode(id);
    match subcommand {
        6 => Some(CdpEvent {
            name: "credentialDeleted",
            payload: json!({ "credentialId": id }),
        }),
        7 => {
            let user = field(params, 3);
            let mut credential = Map::new();
            credential.insert("credentialId".into(), json!(id));
            credential.insert("isResidentCredential".into(), json!(true));
            insert_b64(
                &mut credential,
                "userHandle",
                user.and_then(|u| named(u, "id")),
            );
            insert_text(
                &mut credential,
                "userName",
                user.and_then(|u| named(u, "name")),
            );
            insert_text(
                &mut credential,
                "userDisplayName",
                user.and_then(|u| named(u, "displayName")),
            );
            Some(CdpEvent {
                name: "credentialUpdated",
                payload: json!({ "credential": credential }),
            })
        }
        _ => None,
    }
}

/// credentialAdded / credentialAsserted for U2F REGISTER / AUTHENTICATE.
pub fn u2f(name: &'static str, key_handle: &[u8], sign_count: u32) -> CdpEvent {
    CdpEvent {
        name,
        payload: json!({
            "credential": {
                "credentialId": URL_SAFE_NO_PAD.encode(key_handle),
                "isResidentCredential": false,
                "signCount": sign_count,
                "backupEligibility": false,
                "backupState": false,
            }
        }),
    }
}

fn bytes(value: Option<&Cbor>) -> Option<&[u8]> {
    match value {
        Some(Cbor::Bytes(b)) => Some(b),
        _ => None,
    }
}

fn text(value: Option<&Cbor>) -> Option<String> {
    match value {
        Some(Cbor::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

fn insert_text(map: &mut Map<String, Value>, key: &str, value: Option<&Cbor>) {
    if let Some(t) = text(value) {
        map.insert(key.into(), json!(t));
    }
}

fn insert_b64(map: &mut Map<String, Value>, key: &str, value: Option<&Cbor>) {
    if let Some(b) = bytes(value) {
        map.insert(key.into(), json!(URL_SAFE_NO_PAD.encode(b)));
    }
}
