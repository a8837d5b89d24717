//! Decoding and redaction of CTAP exchanges. The redaction test plants
//! distinctive secret bytes in every secret field of every command (and in
//! fields nobody listed, and in malformed messages), then searches every
//! output for them in every encoding a leak could take.

use super::*;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

fn int(i: i64) -> Cbor {
    Cbor::Integer(i.into())
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.into())
}

fn map(entries: Vec<(Cbor, Cbor)>) -> Cbor {
    Cbor::Map(entries)
}

fn cbor(command: u8, value: &Cbor) -> Vec<u8> {
    let mut out = vec![command];
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

fn ok(value: &Cbor) -> Vec<u8> {
    cbor(0x00, value)
}

fn exchange<'a>(request: &'a [u8], response: &'a [u8]) -> Exchange<'a> {
    Exchange {
        protocol: Protocol::Cbor,
        request,
        response,
        latency: Duration::from_micros(12_345),
    }
}

/// A distinctive secret: 32 bytes no public field would hold.
fn secret(tag: u8) -> Vec<u8> {
    (0..32u8).map(|i| i.wrapping_mul(37) ^ tag ^ 0xA5).collect()
}

fn cose_key(x: &[u8], y: &[u8]) -> Cbor {
    map(vec![
        (int(1), int(2)),
        (int(3), int(-25)),
        (int(-1), int(1)),
        (int(-2), Cbor::Bytes(x.to_vec())),
        (int(-3), Cbor::Bytes(y.to_vec())),
    ])
}

fn descriptor(id: &[u8]) -> Cbor {
    map(vec![
        (text("type"), text("public-key")),
        (text("id"), Cbor::Bytes(id.to_vec())),
    ])
}

fn user() -> Cbor {
    map(vec![
        (text("id"), Cbor::Bytes(b"user-7".to_vec())),
        (text("name"), text("alice")),
        (text("displayName"), text("Alice A.")),
    ])
}

fn make_credential_request(secrets: &mut Vec<Vec<u8>>) -> Cbor {
    let (mac, x, y, salt, salt_auth, blob, unknown) = (
        secret(1),
        secret(2),
        secret(3),
        secret(4),
        secret(5),
        secret(6),
        secret(7),
    );
    let request = map(vec![
        (int(1), Cbor::Bytes(vec![0xCD; 32])),
        (
            int(2),
            map(vec![
                (text("id"), text("example.com")),
                (text("name"), text("Example")),
            ]),
        ),
        (int(3), user()),
        (
            int(4),
            Cbor::Array(vec![map(vec![
                (text("alg"), int(-7)),
                (text("type"), text("public-key")),
            ])]),
        ),
        (
            int(6),
            map(vec![
                (text("credProtect"), int(2)),
                (text("credBlob"), Cbor::Bytes(blob.clone())),
                (
                    text("hmac-secret-mc"),
                    map(vec![
                        (int(1), cose_key(&x, &y)),
                        (int(2), Cbor::Bytes(salt.clone())),
                        (int(3), Cbor::Bytes(salt_auth.clone())),
                        (int(4), int(2)),
                    ]),
                ),
                (text("vendor-ext"), Cbor::Bytes(unknown.clone())),
            ]),
        ),
        (int(7), map(vec![(text("rk"), Cbor::Bool(true))])),
        (int(8), Cbor::Bytes(mac.clone())),
        (int(9), int(2)),
        (
            int(99),
            Cbor::Text(String::from_utf8_lossy(&secret(8)).into_owned()),
        ),
    ]);
    secrets.extend([mac, x, y, salt, salt_auth, blob, unknown]);
    request
}

fn make_credential_response(id: &[u8], secrets: &mut Vec<Vec<u8>>) -> Cbor {
    let (hmac_out, lbk, sig) = (secret(10), secret(11), secret(12));
    let auth = authdata::tests::sample(id, 0x01 | 0x04 | 0x40, 1, Some(&hmac_out));
    secrets.extend([hmac_out, lbk.clone(), sig.clone()]);
    map(vec![
        (int(1), text("packed")),
        (int(2), Cbor::Bytes(auth)),
        (
            int(3),
            map(vec![
                (text("alg"), int(-7)),
                (text("sig"), Cbor::Bytes(sig)),
            ]),
        ),
        (int(5), Cbor::Bytes(lbk)),
    ])
}

fn get_assertion_request(allow: &[&[u8]], secrets: &mut Vec<Vec<u8>>) -> Cbor {
    let (x, y, salt, salt_auth, mac) = (secret(20), secret(21), secret(22), secret(23), secret(24));
    secrets.extend([
        x.clone(),
        y.clone(),
        salt.clone(),
        salt_auth.clone(),
        mac.clone(),
    ]);
    map(vec![
        (int(1), text("example.com")),
        (int(2), Cbor::Bytes(vec![0xEE; 32])),
        (
            int(3),
            Cbor::Array(allow.iter().map(|id| descriptor(id)).collect()),
        ),
        (
            int(4),
            map(vec![(
                text("hmac-secret"),
                map(vec![
                    (int(1), cose_key(&x, &y)),
                    (int(2), Cbor::Bytes(salt)),
                    (int(3), Cbor::Bytes(salt_auth)),
                ]),
            )]),
        ),
        (int(6), Cbor::Bytes(mac)),
        (int(7), int(1)),
    ])
}

fn get_assertion_response(id: Option<&[u8]>, count: u32, secrets: &mut Vec<Vec<u8>>) -> Cbor {
    let (hmac_out, sig, lbk) = (
        secret(30 + count as u8),
        secret(40 + count as u8),
        secret(50 + count as u8),
    );
    secrets.extend([hmac_out.clone(), sig.clone(), lbk.clone()]);
    let mut entries = vec![
        (
            int(2),
            Cbor::Bytes(authdata::tests::sample(
                &[],
                0x01 | 0x08,
                count,
                Some(&hmac_out),
            )),
        ),
        (int(3), Cbor::Bytes(sig)),
        (int(4), user()),
        (int(7), Cbor::Bytes(lbk)),
    ];
    if let Some(id) = id {
        entries.push((int(1), descriptor(id)));
    }
    map(entries)
}

/// Every exchange of the redaction test: (request, response) bytes.
fn secret_laden_exchanges(secrets: &mut Vec<Vec<u8>>) -> Vec<(Protocol, Vec<u8>, Vec<u8>)> {
    let mut all = Vec::new();
    let id = [7u8; 16];
    let mc = make_credential_request(secrets);
    all.push((
        Protocol::Cbor,
        cbor(0x01, &mc),
        ok(&make_credential_response(&id, secrets)),
    ));
    let ga = get_assertion_request(&[], secrets);
    all.push((
        Protocol::Cbor,
        cbor(0x02, &ga),
        ok(&get_assertion_response(Some(&id), 2, secrets)),
    ));
    all.push((
        Protocol::Cbor,
        vec![0x08],
        ok(&get_assertion_response(Some(&id), 3, secrets)),
    ));
    // clientPIN: setPIN/changePIN material, and a token in the answer.
    let (ka_x, ka_y, new_pin, pin_hash, pin_mac, token) = (
        secret(60),
        secret(61),
        secret(62),
        secret(63),
        secret(64),
        secret(65),
    );
    let (resp_x, resp_y) = (secret(66), secret(67));
    secrets.extend([
        ka_x.clone(),
        ka_y.clone(),
        new_pin.clone(),
        pin_hash.clone(),
        pin_mac.clone(),
    ]);
    secrets.extend([token.clone(), resp_x.clone(), resp_y.clone()]);
    let pin = map(vec![
        (int(1), int(2)),
        (int(2), int(4)),
        (int(3), cose_key(&ka_x, &ka_y)),
        (int(4), Cbor::Bytes(pin_mac)),
        (int(5), Cbor::Bytes(new_pin)),
        (int(6), Cbor::Bytes(pin_hash)),
        (int(9), int(0x03)),
    ]);
    let pin_answer = map(vec![
        (int(1), cose_key(&resp_x, &resp_y)),
        (int(2), Cbor::Bytes(token)),
    ]);
    all.push((Protocol::Cbor, cbor(0x06, &pin), ok(&pin_answer)));
    // largeBlobs set and get.
    let (fragment, blob_mac, config) = (secret(70), secret(71), secret(72));
    secrets.extend([fragment.clone(), blob_mac.clone(), config.clone()]);
    let blobs = map(vec![
        (int(2), Cbor::Bytes(fragment)),
        (int(3), int(0)),
        (int(4), int(64)),
        (int(5), Cbor::Bytes(blob_mac)),
        (int(6), int(2)),
    ]);
    all.push((
        Protocol::Cbor,
        cbor(0x0C, &blobs),
        ok(&map(vec![(int(1), Cbor::Bytes(config))])),
    ));
    // credentialManagement and config MACs, a credential's largeBlobKey.
    let (cm_mac, cm_lbk, cfg_mac) = (secret(80), secret(81), secret(82));
    secrets.extend([cm_mac.clone(), cm_lbk.clone(), cfg_mac.clone()]);
    let cm = map(vec![
        (int(1), int(4)),
        (int(2), map(vec![(int(1), Cbor::Bytes(vec![1; 32]))])),
        (int(3), int(2)),
        (int(4), Cbor::Bytes(cm_mac)),
    ]);
    let cm_answer = map(vec![
        (int(6), user()),
        (int(7), descriptor(&id)),
        (int(11), Cbor::Bytes(cm_lbk)),
    ]);
    all.push((Protocol::Cbor, cbor(0x0A, &cm), ok(&cm_answer)));
    let cfg = map(vec![
        (int(1), int(3)),
        (int(2), map(vec![(int(1), int(6))])),
        (int(3), int(2)),
        (int(4), Cbor::Bytes(cfg_mac)),
    ]);
    all.push((Protocol::Cbor, cbor(0x0D, &cfg), vec![0x00]));
    // A vendor command nobody described, and malformed CBOR around a secret.
    let (vendor, raw) = (secret(90), secret(91));
    secrets.extend([vendor.clone(), raw.clone()]);
    all.push((
        Protocol::Cbor,
        cbor(0x50, &map(vec![(int(1), Cbor::Bytes(vendor.clone()))])),
        ok(&map(vec![(int(1), Cbor::Bytes(vendor))])),
    ));
    let mut malformed = vec![0x06, 0xA1, 0x01];
    malformed.extend_from_slice(&raw);
    all.push((Protocol::Cbor, malformed.clone(), malformed));
    // U2F AUTHENTICATE with a signature.
    let sig = secret(95);
    secrets.push(sig.clone());
    let mut apdu = vec![0, 2, 3, 0, 0, 0, 66];
    apdu.extend_from_slice(&[1; 64]);
    apdu.extend_from_slice(&[1, 0x42, 0, 0]);
    let mut answer = vec![1, 0, 0, 0, 5];
    answer.extend_from_slice(&sig);
    answer.extend_from_slice(&[0x90, 0x00]);
    all.push((Protocol::U2f, apdu, answer));
    all
}

/// Every byte sequence a JSON output could be hiding: each string raw and
/// decoded as base64 (both alphabets, padded or not) and hex, and each array
/// of numbers as bytes.
fn exposed_bytes(value: &Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::String(s) => {
            out.push(s.as_bytes().to_vec());
            for engine in [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD] {
                if let Ok(bytes) = engine.decode(s) {
                    out.push(bytes);
                }
            }
            let hex: String = s.chars().filter(char::is_ascii_hexdigit).collect();
            if hex.len() >= 16 && hex.len() % 2 == 0 {
                out.push(
                    (0..hex.len())
                        .step_by(2)
                        .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                        .collect(),
                );
            }
        }
        Value::Array(items) => {
            let numbers: Vec<u8> = items
                .iter()
                .filter_map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            if numbers.len() == items.len() && !numbers.is_empty() {
                out.push(numbers);
            }
            items.iter().for_each(|v| exposed_bytes(v, out));
        }
        Value::Object(map) => {
            for (k, v) in map {
                exposed_bytes(&Value::String(k.clone()), out);
                exposed_bytes(v, out);
            }
        }
        _ => {}
    }
}

/// Whether any 6-byte window of `secret` occurs in `haystack`.
fn leaks(secret: &[u8], haystack: &[u8]) -> bool {
    secret
        .windows(6)
        .any(|w| haystack.windows(6).any(|h| h == w))
}

#[test]
fn no_secret_byte_survives_decoding() {
    let mut secrets = Vec::new();
    let exchanges = secret_laden_exchanges(&mut secrets);
    assert!(secrets.len() >= 35, "planted {} secrets", secrets.len());
    let mut decoder = Decoder::new();
    let mut outputs = Vec::new();
    for (protocol, request, response) in &exchanges {
        let decoded = decoder.decode(&Exchange {
            protocol: *protocol,
            request,
            response,
            latency: Duration::from_millis(3),
        });
        outputs.push(decoded.to_json());
        outputs.extend(decoded.cdp.iter().map(|e| e.to_json("key-1")));
    }
    let mut exposed = Vec::new();
    for output in &outputs {
        exposed_bytes(output, &mut exposed);
        exposed.push(output.to_string().into_bytes());
    }
    for (i, secret) in secrets.iter().enumerate() {
        for bytes in &exposed {
            assert!(
                !leaks(secret, bytes),
                "secret {i} leaked: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    // The search itself finds a planted secret (the test can fail).
    let planted = json!({ "x": URL_SAFE_NO_PAD.encode(&secrets[0][3..20]) });
    let mut found = Vec::new();
    exposed_bytes(&planted, &mut found);
    assert!(found.iter().any(|b| leaks(&secrets[0], b)));
    // And the secrets' lengths are all there.
    let text = outputs.iter().map(Value::to_string).collect::<String>();
    assert!(text.contains(r#""pinUvAuthParam":{"len":32}"#), "{text}");
    assert!(text.contains(r#""newPinEnc":{"len":32}"#), "{text}");
    assert!(text.contains(r#""saltEnc":{"len":32}"#), "{text}");
    assert!(text.contains(r#""hmac-secret":{"len":32}"#), "{text}");
}

#[test]
fn make_credential_is_decoded_with_its_cdp_event() {
    let mut secrets = Vec::new();
    let request = cbor(0x01, &make_credential_request(&mut secrets));
    let response = ok(&make_credential_response(&[9, 8, 7], &mut secrets));
    let decoded = Decoder::new().decode(&exchange(&request, &response));
    assert_eq!(decoded.command, "makeCredential");
    assert_eq!(decoded.status, "CTAP2_OK");
    assert_eq!(decoded.latency_ms, 12.345);
    let params = &decoded.params;
    assert_eq!(params["rp"]["id"], "example.com");
    assert_eq!(params["user"]["name"], "alice");
    assert_eq!(params["user"]["id"], URL_SAFE_NO_PAD.encode(b"user-7"));
    assert_eq!(params["clientDataHash"], URL_SAFE_NO_PAD.encode([0xCD; 32]));
    assert_eq!(params["options"]["rk"], true);
    assert_eq!(params["extensions"]["credProtect"], 2);
    assert_eq!(
        params["extensions"]["hmac-secret-mc"]["keyAgreement"]["len"],
        json!(78)
    );
    assert_eq!(params["pubKeyCredParams"][0]["alg"], -7);
    assert_eq!(decoded.response["fmt"], "packed");
    assert_eq!(decoded.response["authData"]["signCount"], 1);
    assert_eq!(decoded.response["attStmt"]["sig"], json!({"len": 32}));
    assert_eq!(decoded.cdp.len(), 1);
    let event = decoded.cdp[0].to_json("key-1");
    assert_eq!(decoded.cdp[0].name, "credentialAdded");
    assert_eq!(event["authenticatorId"], "key-1");
    let credential = &event["credential"];
    assert_eq!(credential["credentialId"], "CQgH");
    assert_eq!(credential["isResidentCredential"], true);
    assert_eq!(credential["rpId"], "example.com");
    assert_eq!(credential["userHandle"], URL_SAFE_NO_PAD.encode(b"user-7"));
    assert_eq!(credential["signCount"], 1);
    assert_eq!(credential["userName"], "alice");
    assert_eq!(credential["userDisplayName"], "Alice A.");
    assert_eq!(credential["backupEligibility"], false);
    assert!(credential.get("privateKey").is_none());
}

#[test]
fn assertions_carry_the_credential_and_next_assertions_their_context() {
    let mut secrets = Vec::new();
    let mut decoder = Decoder::new();
    // allowList with one entry, the answer leaves the credential out.
    let request = cbor(0x02, &get_assertion_request(&[&[5, 5, 5]], &mut secrets));
    let response = ok(&get_assertion_response(None, 41, &mut secrets));
    let decoded = decoder.decode(&exchange(&request, &response));
    assert_eq!(decoded.params["rpId"], "example.com");
    assert_eq!(decoded.params["allowList"][0]["id"], "BQUF");
    assert_eq!(decoded.response["authData"]["flags"]["BE"], true);
    let credential = &decoded.cdp[0].to_json("k")["credential"];
    assert_eq!(decoded.cdp[0].name, "credentialAsserted");
    assert_eq!(credential["credentialId"], "BQUF");
    assert_eq!(credential["signCount"], 41);
    assert_eq!(credential["isResidentCredential"], false);
    assert_eq!(credential["backupEligibility"], true);
    // A discoverable sign-in, then getNextAssertion for the second account.
    let request = cbor(0x02, &get_assertion_request(&[], &mut secrets));
    let response = ok(&get_assertion_response(Some(&[1, 1]), 42, &mut secrets));
    decoder.decode(&exchange(&request, &response));
    let response = ok(&get_assertion_response(Some(&[2, 2]), 43, &mut secrets));
    let next = decoder.decode(&exchange(&[0x08], &response));
    assert_eq!(next.command, "getNextAssertion");
    let credential = &next.cdp[0].payload["credential"];
    assert_eq!(credential["credentialId"], "AgI");
    assert_eq!(credential["rpId"], "example.com");
    assert_eq!(credential["isResidentCredential"], true);
    assert_eq!(credential["userName"], "alice");
}

#[test]
fn errors_have_no_response_and_no_events() {
    let mut secrets = Vec::new();
    let request = cbor(0x02, &get_assertion_request(&[], &mut secrets));
    let decoded = Decoder::new().decode(&exchange(&request, &[0x2E]));
    assert_eq!(decoded.status, "CTAP2_ERR_NO_CREDENTIALS");
    assert_eq!(decoded.status_code, 0x2E);
    assert_eq!(decoded.response, Value::Null);
    assert!(decoded.cdp.is_empty());
    let decoded = Decoder::new().decode(&exchange(&[], &[]));
    assert_eq!((decoded.command, decoded.status), ("empty", "NO_RESPONSE"));
    let info = Decoder::new().decode(&exchange(
        &[0x04],
        &ok(&map(vec![
            (int(1), Cbor::Array(vec![text("FIDO_2_1")])),
            (int(3), Cbor::Bytes(vec![0xBB; 16])),
        ])),
    ));
    assert_eq!(info.params, json!({}));
    assert_eq!(info.response["versions"][0], "FIDO_2_1");
    let pin = map(vec![
        (int(1), int(2)),
        (int(2), int(9)),
        (int(9), int(0x12)),
        (int(10), text("a.example")),
    ]);
    let decoded = Decoder::new().decode(&exchange(&cbor(0x06, &pin), &[0x31]));
    assert_eq!(
        decoded.params["subCommand"]["name"],
        "getPinUvAuthTokenUsingPinWithPermissions"
    );
    assert_eq!(decoded.params["permissions"]["names"], json!(["ga", "lbw"]));
    assert_eq!(decoded.status, "CTAP2_ERR_PIN_INVALID");
}

#[test]
fn credential_management_changes_are_cdp_events() {
    let delete = map(vec![
        (int(1), int(6)),
        (int(2), map(vec![(int(2), descriptor(&[3, 3, 3]))])),
        (int(3), int(2)),
        (int(4), Cbor::Bytes(vec![0; 32])),
    ]);
    let decoded = Decoder::new().decode(&exchange(&cbor(0x0A, &delete), &[0x00]));
    assert_eq!(decoded.params["subCommand"]["name"], "deleteCredential");
    assert_eq!(decoded.cdp[0].name, "credentialDeleted");
    assert_eq!(
        decoded.cdp[0].to_json("k"),
        json!({"authenticatorId": "k", "credentialId": "AwMD"})
    );
    let update = map(vec![
        (int(1), int(7)),
        (
            int(2),
            map(vec![(int(2), descriptor(&[3, 3, 3])), (int(3), user())]),
        ),
    ]);
    let decoded = Decoder::new().decode(&exchange(&cbor(0x41, &update), &[0x00]));
    assert_eq!(decoded.cdp[0].name, "credentialUpdated");
    assert_eq!(
        decoded.cdp[0].payload["credential"]["userDisplayName"],
        "Alice A."
    );
    // A refused deletion is no event.
    assert!(Decoder::new()
        .decode(&exchange(&cbor(0x0A, &delete), &[0x33]))
        .cdp
        .is_empty());
}

#[test]
fn u2f_exchanges_are_decoded() {
    let mut register = vec![0, 1, 3, 0, 64];
    register.extend_from_slice(&[2; 64]);
    let mut answer = vec![0x05];
    answer.extend_from_slice(&[4; 65]);
    answer.push(3);
    answer.extend_from_slice(&[0xAB, 0xCD, 0xEF]);
    answer.extend_from_slice(&[0x30; 40]);
    answer.extend_from_slice(&[0x90, 0x00]);
    let decoded = Decoder::new().decode(&Exchange {
        protocol: Protocol::U2f,
        request: &register,
        response: &answer,
        latency: Duration::ZERO,
    });
    assert_eq!(
        (decoded.command, decoded.status),
        ("U2F_REGISTER", "SW_NO_ERROR")
    );
    assert_eq!(decoded.response["keyHandle"], "q83v");
    assert_eq!(decoded.cdp[0].name, "credentialAdded");
    assert_eq!(decoded.cdp[0].payload["credential"]["credentialId"], "q83v");
    let denied = Decoder::new().decode(&Exchange {
        protocol: Protocol::U2f,
        request: &register,
        response: &[0x69, 0x85],
        latency: Duration::ZERO,
    });
    assert_eq!(denied.status, "SW_CONDITIONS_NOT_SATISFIED");
    assert!(denied.cdp.is_empty());
}

#[test]
fn adversarial_cbor_is_bounded() {
    // Deep nesting (the stack-overflow input of issue 10 defect 2) and
    // indefinite or truncated items decode to "malformed", never a crash.
    let mut deep = vec![0x02, 0xA1, 0x0A];
    deep.extend(std::iter::repeat_n(0xC0, 7605));
    deep.push(0x00);
    let decoded = Decoder::new().decode(&exchange(&deep, &[0x12]));
    assert_eq!(decoded.params["malformed"], true);
    let mut nested = vec![0x01];
    nested.extend(std::iter::repeat_n(0x81, 5000));
    nested.push(0x00);
    assert_eq!(
        Decoder::new().decode(&exchange(&nested, &[0x00])).params["malformed"],
        true
    );
    for bad in [
        &[0x01, 0xBF][..],
        &[0x01, 0x5A, 0xFF, 0xFF, 0xFF, 0xFF],
        &[0x01, 0xA1],
    ] {
        assert_eq!(
            Decoder::new().decode(&exchange(bad, &[0x00])).params["malformed"],
            true,
            "{bad:?}"
        );
    }
}
