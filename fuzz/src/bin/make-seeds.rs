//! Writes the seed corpora (`fuzz/seeds/<target>/`) from real requests: the
//! test-support request builders, against the same template state the
//! targets load (so credential IDs and key handles in the seeds are real).
//!
//! After `cargo +nightly fuzz build -s none`, run
//! `$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/make-seeds [DIR]`
//! (DIR defaults to `fuzz/seeds`). Deterministic apart from the requests'
//! own randomness (PIN protocol keys); re-run it when request formats change.

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use ciborium::Value;
use ferrokey::app::Protocol;
use ferrokey::platform::RecordKey;
use ferrokey::test_platform::PresenceScript;
use ferrokey_fuzz::hid_script::{self, Channel, Op};
use ferrokey_fuzz::structured;
use ferrokey_fuzz::*;
use ferrokey_test_support::cbor::{bytes, encode, int, int_map, text};
use ferrokey_test_support::ctap2::{sha256, GetAssertion, MakeCredential};
use ferrokey_test_support::u2f;
use ferrokey_test_support::usbip_client::raw;

struct Seeds {
    root: PathBuf,
    count: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, data: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        std::fs::write(dir.join(name), data).unwrap_or_else(|e| panic!("{name}: {e}"));
        self.count += 1;
    }
}

// The build instruments every binary of this crate for libFuzzer: this empty
// target pulls in libFuzzer's coverage runtime (not its `main`) so the
// generator links too.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    if root.exists() {
        std::fs::remove_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut seeds = Seeds { root, count: 0 };
    let requests = ctap2_requests();
    for (name, request) in &requests {
        let mut approve = vec![0x01];
        approve.extend_from_slice(request);
        seeds.put("ctap2_raw", name, &approve);
    }
    let mut denied = vec![0x00];
    denied.extend_from_slice(&requests[1].1);
    seeds.put("ctap2_raw", "make-credential-denied", &denied);
    let mut next = vec![0x03];
    next.extend_from_slice(&requests[3].1);
    seeds.put("ctap2_raw", "get-assertion-then-next", &next);
    for (name, apdu) in u2f_apdus() {
        let mut input = vec![0x01];
        input.extend_from_slice(&apdu);
        seeds.put("ctap1", &name, &input);
    }
    ctaphid_seeds(&mut seeds, &requests);
    structured_seeds(&mut seeds);
    credential_id_seeds(&mut seeds);
    record_seeds(&mut seeds);
    usbip_seeds(&mut seeds);
    control_seeds(&mut seeds);
    state_dir_seeds(&mut seeds);
    println!("{} seeds written to {}", seeds.count, seeds.root.display());
}

fn command(cmd: u8, body: &Value) -> Vec<u8> {
    let mut out = vec![cmd];
    out.extend(encode(body));
    out
}

/// Real CTAP2 requests (command byte and body), one of each command shape.
fn ctap2_requests() -> Vec<(String, Vec<u8>)> {
    let t = template();
    let cdh = [0x11; 32];
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("get-info".into(), vec![0x04]),
        (
            "make-credential".into(),
            command(0x01, &MakeCredential::new(RP, b"dave").cdh(cdh).build()),
        ),
        (
            "make-credential-rk-extensions".into(),
            command(
                0x01,
                &MakeCredential::new("rk.example", b"erin")
                    .cdh(cdh)
                    .rk()
                    .extension("credProtect", int(2))
                    .extension("hmac-secret", Value::Bool(true))
                    .extension("credBlob", bytes(b"blob"))
                    .extension("largeBlobKey", Value::Bool(true))
                    .extension("minPinLength", Value::Bool(true))
                    .build(),
            ),
        ),
        (
            "get-assertion".into(),
            command(0x02, &GetAssertion::new(RP).cdh(cdh).build()),
        ),
        (
            "get-assertion-allow-list".into(),
            command(
                0x02,
                &GetAssertion::new(RP)
                    .cdh(cdh)
                    .allow(&t.credential_ids[2])
                    .allow(&t.credential_ids[0])
                    .option("up", false)
                    .build(),
            ),
        ),
        (
            "make-credential-excluded".into(),
            command(
                0x01,
                &MakeCredential::new(RP, b"frank")
                    .cdh(cdh)
                    .exclude(&t.credential_ids[1])
                    .build(),
            ),
        ),
        ("get-next-assertion".into(), vec![0x08]),
        ("reset".into(), vec![0x07]),
        ("selection".into(), vec![0x0B]),
    ];
    for (name, sub) in [
        ("client-pin-retries", 1),
        ("client-pin-key-agreement", 2),
        ("client-pin-uv-retries", 7),
    ] {
        out.push((
            name.into(),
            command(0x06, &int_map(vec![(1, int(2)), (2, int(sub))])),
        ));
    }
    out.push((
        "client-pin-token-bad-hash".into(),
        command(
            0x06,
            &int_map(vec![
                (1, int(1)),
                (2, int(5)),
                (
                    3,
                    int_map(vec![
                        (1, int(2)),
                        (3, int(-25)),
                        (-1, int(1)),
                        (-2, bytes(&[1; 32])),
                        (-3, bytes(&[2; 32])),
                    ]),
                ),
                (6, bytes(&[0; 16])),
            ]),
        ),
    ));
    out.push((
        "credential-management-metadata".into(),
        command(
            0x0A,
            &int_map(vec![(1, int(1)), (3, int(2)), (4, bytes(&[0; 32]))]),
        ),
    ));
    out.push((
        "credential-management-delete".into(),
        command(
            0x0A,
            &int_map(vec![
                (1, int(6)),
                (
                    2,
                    int_map(vec![(
                        2,
                        Value::Map(vec![
                            (text("id"), bytes(&t.credential_ids[0])),
                            (text("type"), text("public-key")),
                        ]),
                    )]),
                ),
                (3, int(2)),
                (4, bytes(&[0; 32])),
            ]),
        ),
    ));
    out.push((
        "large-blobs-get".into(),
        command(0x0C, &int_map(vec![(1, int(64)), (3, int(0))])),
    ));
    out.push((
        "large-blobs-set".into(),
        command(
            0x0C,
            &int_map(vec![
                (
                    2,
                    bytes(&ferrokey_test_support::ctap2::serialized_large_blob_array(
                        &[],
                    )),
                ),
                (3, int(0)),
                (4, int(17)),
            ]),
        ),
    ));
    out.push((
        "config-always-uv".into(),
        command(0x0D, &int_map(vec![(1, int(2))])),
    ));
    out.push((
        "config-min-pin-length".into(),
        command(
            0x0D,
            &int_map(vec![
                (1, int(3)),
                (
                    2,
                    int_map(vec![
                        (1, int(6)),
                        (2, Value::Array(vec![text(RP)])),
                        (3, Value::Bool(true)),
                    ]),
                ),
                (3, int(2)),
                (4, bytes(&[0; 32])),
            ]),
        ),
    ));
    // Issue 10 defect 2: nested tags in a getAssertion body (bounded now).
    let mut deep = vec![0x02, 0xA1, 0x0A];
    deep.extend(std::iter::repeat_n(0xC0, 400));
    deep.push(0x00);
    out.push(("nested-tags".into(), deep));
    out
}

fn u2f_apdus() -> Vec<(String, Vec<u8>)> {
    let t = template();
    vec![
        ("register".into(), u2f::register_apdu(&[1; 32], &[2; 32])),
        (
            "authenticate-enforce".into(),
            u2f::authenticate_apdu(0x03, &[1; 32], &U2F_APP, &t.key_handle),
        ),
        (
            "authenticate-check-only".into(),
            u2f::authenticate_apdu(0x07, &[1; 32], &U2F_APP, &t.key_handle),
        ),
        (
            "authenticate-no-presence".into(),
            u2f::authenticate_apdu(0x08, &[1; 32], &U2F_APP, &t.key_handle),
        ),
        (
            "authenticate-ctap2-credential".into(),
            u2f::authenticate_apdu(0x07, &[1; 32], &sha256(RP.as_bytes()), &t.credential_ids[2]),
        ),
        ("version".into(), u2f::apdu(0x03, 0, &[])),
        ("bad-cla".into(), vec![0x80, 0x01, 0, 0, 0]),
        (
            "register-extended-le".into(),
            [u2f::register_apdu(&[1; 32], &[2; 32]), vec![0, 0]].concat(),
        ),
    ]
}

fn ctaphid_seeds(seeds: &mut Seeds, requests: &[(String, Vec<u8>)]) {
    let init = Op::Init(Channel::Broadcast, [1, 2, 3, 4, 5, 6, 7, 8]);
    let on = |cmd: u8, payload: Vec<u8>| Op::Message {
        channel: Channel::Allocated(0),
        cmd,
        payload,
        cut: None,
    };
    for (name, request) in requests.iter().take(6) {
        let script = [
            init.clone(),
            on(0x10, request.clone()),
            Op::Wait(200),
            Op::Drain,
        ];
        seeds.put("ctaphid", name, &hid_script::encode(0, &script));
    }
    let big = vec![0x5A; 7609];
    let scripts: Vec<(&str, u8, Vec<Op>)> = vec![
        ("ping-max", 0, vec![init.clone(), on(0x01, big), Op::Drain]),
        (
            "u2f-register",
            0,
            vec![
                init.clone(),
                on(0x03, u2f::register_apdu(&[1; 32], &[2; 32])),
                Op::Drain,
            ],
        ),
        (
            "wink-lock-cancel",
            0,
            vec![
                init.clone(),
                on(0x08, vec![]),
                on(0x04, vec![5]),
                on(0x11, vec![]),
                on(0x04, vec![0]),
                Op::Drain,
            ],
        ),
        (
            "make-credential-waits-then-cancel",
            2,
            vec![
                init.clone(),
                on(0x10, requests[1].1.clone()),
                Op::Wait(300),
                on(0x11, vec![]),
                Op::Drain,
            ],
        ),
        (
            "busy-other-channel",
            2,
            vec![
                init.clone(),
                init.clone(),
                on(0x10, requests[1].1.clone()),
                Op::Message {
                    channel: Channel::Allocated(1),
                    cmd: 0x10,
                    payload: vec![0x04],
                    cut: None,
                },
                Op::Presence(0),
                Op::Wait(500),
                Op::Drain,
            ],
        ),
        (
            "interleaved-partial",
            0,
            vec![
                init.clone(),
                Op::Message {
                    channel: Channel::Allocated(0),
                    cmd: 0x10,
                    payload: requests[2].1.clone(),
                    cut: Some(1),
                },
                Op::Message {
                    channel: Channel::Other(0x1234_5678),
                    cmd: 0x01,
                    payload: vec![1; 100],
                    cut: None,
                },
                Op::Wait(600),
                Op::Drain,
            ],
        ),
        (
            "resync-and-reset",
            0,
            vec![
                init.clone(),
                Op::Init(Channel::Allocated(0), [9; 8]),
                Op::Init(Channel::Other(0x0BAD_CAFE), [8; 8]),
                Op::Reset,
                on(0x10, vec![0x04]),
                Op::Drain,
            ],
        ),
        (
            "raw-reports",
            0,
            vec![
                Op::Report(vec![
                    0xFF, 0xFF, 0xFF, 0xFF, 0x86, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8,
                ]),
                Op::OnChannel(Channel::Allocated(0), vec![0; 60]),
                Op::Report(vec![]),
                Op::Drain,
            ],
        ),
    ];
    for (name, presence, script) in scripts {
        let encoded = hid_script::encode(presence, &script);
        assert_eq!(
            hid_script::parse(&encoded),
            (presence, script),
            "{name}: the script does not parse back"
        );
        seeds.put("ctaphid", name, &encoded);
    }
}

/// Inputs of `ctap2_structured` whose first request is of each shape,
/// found by decoding pseudo-random bytes.
fn structured_seeds(seeds: &mut Seeds) {
    let mut found = std::collections::BTreeMap::new();
    let mut state = 0x1234_5678_9abc_def0u64;
    for _ in 0..200_000 {
        let len = 16 + (state % 240) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let Ok(input) = structured::Input::arbitrary_take_rest(Unstructured::new(&data)) else {
            continue;
        };
        if input.steps.len() < 2 {
            continue;
        }
        let kind = format!("{:?}", input.steps[0]);
        let kind = kind
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("")
            .to_string();
        found.entry(kind).or_insert(data);
        if found.len() >= 17 {
            break;
        }
    }
    for (kind, data) in found {
        seeds.put("ctap2_structured", &kind, &data);
    }
}

fn credential_id_seeds(seeds: &mut Seeds) {
    let t = template();
    for (i, id) in t.credential_ids.iter().enumerate() {
        seeds.put(
            "credential_id",
            &format!("template-{i}"),
            &[&[0][..], id].concat(),
        );
    }
    seeds.put(
        "credential_id",
        "other-rp",
        &[&[1][..], &t.credential_ids[0]].concat(),
    );
    seeds.put(
        "credential_id",
        "u2f-key-handle",
        &[&[0][..], &t.key_handle].concat(),
    );
    let mut truncated = vec![0];
    truncated.extend_from_slice(&t.credential_ids[0][..40]);
    seeds.put("credential_id", "truncated", &truncated);
    let mut version1 = vec![0];
    version1.extend_from_slice(&t.credential_ids[0]);
    version1[1] = 1;
    seeds.put("credential_id", "version-1", &version1);
}

fn record_seeds(seeds: &mut Seeds) {
    let records = &template().records;
    for (n, (key, value)) in records.iter().enumerate() {
        let selector = match key {
            RecordKey::Pin => 1,
            RecordKey::Device => 2,
            _ => 0,
        };
        seeds.put(
            "state_records",
            &format!("record-{n}"),
            &[&[selector][..], value].concat(),
        );
        seeds.put(
            "state_records",
            &format!("replaced-{n}"),
            &[&[4, n as u8][..], value].concat(),
        );
        let file = firmware_sim::storage::fuzzing::encode(0x100, value);
        seeds.put(
            "state_records",
            &format!("file-{n}"),
            &[&[3][..], &file].concat(),
        );
    }
}

/// A USB/IP conversation: import, enumeration, one CTAPHID INIT and its answer.
fn usbip_seeds(seeds: &mut Seeds) {
    let devid = 0x0001_0001;
    let get_descriptor = |kind: u16, len: u16| {
        let mut setup = [0x80, 0x06, 0, 0, 0, 0, 0, 0];
        setup[2..4].copy_from_slice(&(kind << 8).to_le_bytes());
        setup[6..8].copy_from_slice(&len.to_le_bytes());
        setup
    };
    let mut init = [0u8; 64];
    init[..7].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x86, 0, 8]);
    let mut session = raw::op_import("1-1");
    session.extend(raw::cmd_submit(
        1,
        devid,
        1,
        0,
        18,
        get_descriptor(1, 18),
        &[],
    ));
    session.extend(raw::cmd_submit(
        2,
        devid,
        1,
        0,
        255,
        get_descriptor(2, 255),
        &[],
    ));
    session.extend(raw::cmd_submit(
        3,
        devid,
        0,
        0,
        0,
        [0x00, 0x09, 1, 0, 0, 0, 0, 0],
        &[],
    ));
    session.extend(raw::cmd_submit(
        4,
        devid,
        1,
        0,
        64,
        [0x81, 0x06, 0, 0x22, 0, 0, 64, 0],
        &[],
    ));
    session.extend(raw::cmd_submit(5, devid, 0, 1, 64, [0; 8], &init));
    session.extend(raw::cmd_submit(6, devid, 1, 1, 64, [0; 8], &[]));
    let mut unlink = session.clone();
    unlink.extend(raw::cmd_submit(7, devid, 1, 1, 64, [0; 8], &[]));
    unlink.extend(raw::cmd_unlink(8, devid, 7));
    let mut port_reset = raw::op_import("1-1");
    port_reset.extend(raw::cmd_submit(
        1,
        devid,
        0,
        0,
        0,
        [0x23, 0x03, 4, 0, 1, 0, 0, 0],
        &[],
    ));
    for target in ["usbip_proto", "usbip_server"] {
        seeds.put(target, "devlist", &raw::op_devlist());
        seeds.put(target, "import-unknown", &raw::op_import("9-9"));
        seeds.put(target, "session", &session);
        seeds.put(target, "session-unlink", &unlink);
        seeds.put(target, "port-reset", &port_reset);
    }
}

/// Control API requests from the OpenAPI document's paths and examples.
fn control_seeds(seeds: &mut Seeds) {
    let doc: serde_json::Value = serde_json::from_str(firmware_sim::control::router::OPENAPI)
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(paths) = doc["paths"].as_object() else {
        panic!("no paths in the OpenAPI document");
    };
    let mut n = 0;
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, operation) in item {
            if !["get", "post", "delete"].contains(&method.as_str()) {
                continue;
            }
            let uri = path
                .replace("{n}", "1")
                .replace("{state}", "on")
                .replace("{mode}", "default")
                .replace("{authenticatorId}", "1")
                .replace("{sessionId}", "any-session")
                .replace("{credentialId}", "c2VlZGVkLTE");
            let example = &operation["requestBody"]["content"]["application/json"]["example"];
            let mut text = format!("{} {uri}\nhost: 127.0.0.1\n", method.to_uppercase());
            if !example.is_null() {
                text.push_str("content-type: application/json\n\n");
                text.push_str(&example.to_string());
            }
            n += 1;
            seeds.put(
                "control_api",
                &format!("{n:02}-{}", method),
                text.as_bytes(),
            );
        }
    }
    seeds.put(
        "control_api",
        "cross-site",
        b"POST /usb1/presence/approve\nhost: 127.0.0.1\nsec-fetch-site: cross-site\norigin: http://evil.example\n",
    );
    seeds.put(
        "control_api",
        "rebinding",
        b"GET /usb1/power/off\nhost: attacker.example:8765\n",
    );
    // A HEAD answer has no body (the target once took that for a bad answer).
    seeds.put("control_api", "head-root", b"HEAD /");
}

fn state_dir_seeds(seeds: &mut Seeds) {
    // Input { damage: Vec<Damage>, self_attestation: bool } in arbitrary's
    // format: the empty input loads the undamaged state; the others are
    // pseudo-random damage lists.
    seeds.put("state_dir", "undamaged", &[]);
    let mut state = 0x0ddc_0ffe_e0dd_f00du64;
    for i in 0..12 {
        let len = 8 + i * 6;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        seeds.put("state_dir", &format!("damage-{i}"), &data);
    }
    // The template must load as the targets load it.
    let (mut auth, _) = template_authenticator(PresenceScript::Approve);
    let mut local = Local {
        auth: &mut auth,
        approve: true,
        now_ms: 1_000,
        channel: 1,
    };
    let response = local.request(Protocol::Cbor, &[0x04]);
    assert_eq!(response.first(), Some(&0), "getInfo on the template");
}
