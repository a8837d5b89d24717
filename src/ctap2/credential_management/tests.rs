//! authenticatorCredentialManagement through `App::handle`, with the platform
//! side of PIN/UV auth (both protocols) doing its own MACs.

use std::vec;
use std::vec::Vec;

use ciborium::Value;

use crate::app::Outcome;
use crate::authenticator::testkit::*;
use crate::ctap2::pin_uv::platform::*;

const RP_A: &str = "a.example";
const RP_B: &str = "b.example";

fn with_pin(protocol: u8) -> (Harness, Platform) {
    let mut h = Harness::new();
    let mut p = Platform::new(protocol);
    assert_eq!(p.set_pin(&mut h, PIN), 0);
    (h, p)
}

fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = vec![];
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

/// A credentialManagement request; the pinUvAuthParam is over
/// `subCommand ‖ CBOR(params)`, as the platform encodes them.
fn request(sub: u8, params: Option<Value>, token: Option<&Token>) -> Value {
    let raw = params.as_ref().map(encode_value).unwrap_or_default();
    let mut m = vec![(int(1), int(sub.into()))];
    if let Some(p) = params {
        m.push((int(2), p));
    }
    if let Some(t) = token {
        m.push((int(3), int(t.protocol.into())));
        m.push((int(4), bytes(&t.mac(&[&[sub], &raw]))));
    }
    Value::Map(m)
}

fn cm(h: &mut Harness, request: Value) -> (u8, Option<Value>) {
    let (status, value, needed) = h.ctap2(0x0A, Some(request));
    assert!(!needed, "credentialManagement never waits for presence");
    (status, value)
}

fn uint(v: &Value, key: i64) -> u64 {
    u64::try_from(map_int(v, key).unwrap().as_integer().unwrap()).unwrap()
}

fn rp_hash_param(rp: &str) -> Value {
    Value::Map(vec![(int(1), bytes(&sha256(rp.as_bytes())))])
}

fn cred_param(id: &[u8]) -> Value {
    Value::Map(vec![(int(2), descriptor(id))])
}

fn metadata(h: &mut Harness, token: &Token) -> (u64, u64) {
    let (status, v) = cm(h, request(1, None, Some(token)));
    assert_eq!(status, 0);
    let v = v.unwrap();
    (uint(&v, 1), uint(&v, 2))
}

/// Makes a discoverable credential with a fresh mc token.
fn make(h: &mut Harness, p: &mut Platform, rp: &str, user: &[u8]) -> MadeCredential {
    let token = p.must_token(h, perm::MC, None);
    h.make_credential(mc_with(&Mc::new(rp, user).rk(), &token))
}

/// Enumerates all RPs: (rp id, rpIdHash) in order, checking totalRPs.
fn all_rps(h: &mut Harness, token: &Token) -> Vec<(String, Vec<u8>)> {
    let (status, v) = cm(h, request(2, None, Some(token)));
    assert_eq!(status, 0);
    let first = v.unwrap();
    let total = uint(&first, 5);
    let mut out = vec![];
    let mut push = |v: &Value| {
        let rp = map_int(v, 3).unwrap();
        assert_eq!(rp.as_map().unwrap().len(), 1, "only the RP ID is stored");
        out.push((
            map_text(rp, "id").unwrap().as_text().unwrap().into(),
            map_bytes(v, 4).to_vec(),
        ));
    };
    push(&first);
    for _ in 1..total {
        let (status, v) = cm(h, request(3, None, None));
        assert_eq!(status, 0);
        let v = v.unwrap();
        assert!(map_int(&v, 5).is_none(), "totalRPs only in the first");
        push(&v);
    }
    out
}

/// Enumerates an RP's credentials as (user map, credential id, public key map, credProtect).
fn all_creds(h: &mut Harness, token: &Token, rp: &str) -> Vec<(Value, Vec<u8>, Value, u64)> {
    let (status, v) = cm(h, request(4, Some(rp_hash_param(rp)), Some(token)));
    assert_eq!(status, 0);
    let first = v.unwrap();
    let total = uint(&first, 9);
    let mut out = vec![];
    let mut push = |v: &Value| {
        let descriptor = map_int(v, 7).unwrap();
        assert_eq!(map_text(descriptor, "type"), Some(&text("public-key")));
        out.push((
            map_int(v, 6).unwrap().clone(),
            map_text(descriptor, "id")
                .unwrap()
                .as_bytes()
                .unwrap()
                .clone(),
            map_int(v, 8).unwrap().clone(),
            uint(v, 0x0A),
        ));
    };
    push(&first);
    for _ in 1..total {
        let (status, v) = cm(h, request(5, None, None));
        assert_eq!(status, 0);
        let v = v.unwrap();
        assert!(
            map_int(&v, 9).is_none(),
            "totalCredentials only in the first"
        );
        push(&v);
    }
    out
}

use std::string::String;

#[test]
fn metadata_counts_agree_with_get_info() {
    for protocol in [1, 2] {
        let (mut h, mut p) = with_pin(protocol);
        let token = p.must_token(&mut h, perm::CM, None);
        assert_eq!(metadata(&mut h, &token), (0, 100));
        make(&mut h, &mut p, RP_A, b"1");
        make(&mut h, &mut p, RP_B, b"2");
        h.make_credential(Mc::new(RP_A, b"not discoverable").build());
        let token = p.must_token(&mut h, perm::CM, None);
        assert_eq!(metadata(&mut h, &token), (2, 98));
        let (_, info, _) = h.ctap2(0x04, None);
        assert_eq!(map_int(&info.unwrap(), 0x14), Some(&int(98)));
    }
}

#[test]
fn enumerates_two_rps_with_two_credentials_each() {
    let (mut h, mut p) = with_pin(2);
    let mut made = vec![];
    for (rp, user) in [
        (RP_A, &b"a1"[..]),
        (RP_B, b"b1"),
        (RP_A, b"a2"),
        (RP_B, b"b2"),
    ] {
        made.push((rp, user, make(&mut h, &mut p, rp, user)));
    }
    let token = p.must_token(&mut h, perm::CM, None);
    let rps = all_rps(&mut h, &token);
    assert_eq!(
        rps,
        vec![
            (RP_A.into(), sha256(RP_A.as_bytes()).to_vec()),
            (RP_B.into(), sha256(RP_B.as_bytes()).to_vec()),
        ]
    );
    for rp in [RP_A, RP_B] {
        let creds = all_creds(&mut h, &token, rp);
        assert_eq!(creds.len(), 2, "{rp}");
        for (user, id, public_key, cred_protect) in &creds {
            let (_, user_id, cred) = made.iter().find(|m| m.2.id == *id).unwrap();
            assert_eq!(made.iter().find(|m| m.2.id == *id).unwrap().0, rp);
            assert_eq!(
                user_fields(user),
                (
                    user_id.to_vec(),
                    Some("alice".into()),
                    Some("alice display".into())
                )
            );
            // The COSE key is the one makeCredential returned.
            let sec1 = cred.public_key.to_encoded_point(false);
            assert_eq!(map_int(public_key, 3), Some(&int(-7)));
            assert_eq!(map_bytes(public_key, -2), sec1.x().unwrap().as_slice());
            assert_eq!(map_bytes(public_key, -3), sec1.y().unwrap().as_slice());
            assert_eq!(*cred_protect, 1, "no credProtect asked: level 1");
        }
        assert_ne!(creds[0].1, creds[1].1);
    }
    // The preview command code works the same.
    let (status, v, _) = h.ctap2(0x41, Some(request(1, None, Some(&token))));
    assert_eq!(status, 0);
    assert_eq!(uint(&v.unwrap(), 1), 4);
}

#[test]
fn get_next_needs_the_same_channel_and_no_command_in_between() {
    let (mut h, mut p) = with_pin(2);
    make(&mut h, &mut p, RP_A, b"1");
    make(&mut h, &mut p, RP_B, b"2");
    make(&mut h, &mut p, RP_A, b"3");
    let token = p.must_token(&mut h, perm::CM, None);
    // Nothing begun.
    assert_eq!(cm(&mut h, request(3, None, None)).0, 0x30);
    assert_eq!(cm(&mut h, request(5, None, None)).0, 0x30);
    // Another channel may not continue, and the attempt ends it.
    assert_eq!(cm(&mut h, request(2, None, Some(&token))).0, 0);
    h.channel += 1;
    assert_eq!(cm(&mut h, request(3, None, None)).0, 0x30);
    h.channel -= 1;
    assert_eq!(cm(&mut h, request(3, None, None)).0, 0x30);
    // The same for an enumeration of credentials.
    let begin = request(4, Some(rp_hash_param(RP_A)), Some(&token));
    assert_eq!(cm(&mut h, begin).0, 0);
    h.channel += 1;
    assert_eq!(cm(&mut h, request(5, None, None)).0, 0x30);
    h.channel -= 1;
    assert_eq!(cm(&mut h, request(5, None, None)).0, 0x30);
    // Any other command ends it.
    let begin = request(4, Some(rp_hash_param(RP_A)), Some(&token));
    assert_eq!(cm(&mut h, begin.clone()).0, 0);
    assert_eq!(h.ctap2(0x04, None).0, 0);
    assert_eq!(cm(&mut h, request(5, None, None)).0, 0x30);
    // So does another credentialManagement subcommand, or the wrong Next.
    assert_eq!(cm(&mut h, begin.clone()).0, 0);
    assert_eq!(cm(&mut h, request(3, None, None)).0, 0x30);
    assert_eq!(cm(&mut h, request(5, None, None)).0, 0x30);
    // The last one reported ends it.
    assert_eq!(cm(&mut h, begin).0, 0);
    assert_eq!(cm(&mut h, request(5, None, None)).0, 0);
    assert_eq!(cm(&mut h, request(5, None, None)).0, 0x30);
}

#[test]
fn nothing_to_enumerate_is_no_credentials() {
    let (mut h, mut p) = with_pin(1);
    let token = p.must_token(&mut h, perm::CM, None);
    assert_eq!(cm(&mut h, request(2, None, Some(&token))).0, 0x2E);
    let begin = request(4, Some(rp_hash_param(RP_A)), Some(&token));
    assert_eq!(cm(&mut h, begin).0, 0x2E);
    // Non-discoverable credentials are not listed. (A makeCredential without
    // a pinUvAuthParam leaves the token alone.)
    h.make_credential(Mc::new(RP_A, b"u").build());
    assert_eq!(cm(&mut h, request(2, None, Some(&token))).0, 0x2E);
}

#[test]
fn delete_credential() {
    let (mut h, mut p) = with_pin(2);
    let a1 = make(&mut h, &mut p, RP_A, b"a1");
    let a2 = make(&mut h, &mut p, RP_A, b"a2");
    let token = p.must_token(&mut h, perm::CM, None);
    assert_eq!(
        cm(&mut h, request(6, Some(cred_param(&a1.id)), Some(&token))).0,
        0
    );
    assert_eq!(metadata(&mut h, &token), (1, 99));
    assert_eq!(h.auth.remaining_discoverable_credentials(), 99);
    let creds = all_creds(&mut h, &token, RP_A);
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].1, a2.id);
    // Gone for assertions too, and a second delete finds nothing.
    let cdh = client_data_hash("gone");
    assert_eq!(h.get_assertion(ga(RP_A, &cdh, &[&a1.id], None)).0, 0x2E);
    assert_eq!(
        cm(&mut h, request(6, Some(cred_param(&a1.id)), Some(&token))).0,
        0x2E
    );
    assert_eq!(
        cm(&mut h, request(6, Some(cred_param(&[7; 77])), Some(&token))).0,
        0x2E
    );
    // An ID that shares the 16-bit lookup tag of a2's is still another ID.
    let tag = crate::store::tag(&a2.id);
    let twin = (0u32..)
        .map(|n| {
            let mut id = a2.id.clone();
            id[..4].copy_from_slice(&n.to_le_bytes());
            id
        })
        .find(|id| *id != a2.id && crate::store::tag(id) == tag)
        .unwrap();
    assert_eq!(
        cm(&mut h, request(6, Some(cred_param(&twin)), Some(&token))).0,
        0x2E
    );
    assert_eq!(all_creds(&mut h, &token, RP_A).len(), 1, "a2 stays");
    // Missing parameters.
    assert_eq!(cm(&mut h, request(6, None, Some(&token))).0, 0x14);
    assert_eq!(cm(&mut h, request(4, None, Some(&token))).0, 0x14);
    // Deleting the last one of an RP removes the RP.
    assert_eq!(
        cm(&mut h, request(6, Some(cred_param(&a2.id)), Some(&token))).0,
        0
    );
    assert_eq!(cm(&mut h, request(2, None, Some(&token))).0, 0x2E);
    // And the deletion is persistent.
    let h = h.reopen();
    assert_eq!(h.auth.remaining_discoverable_credentials(), 100);
}

#[test]
fn update_user_information() {
    let (mut h, mut p) = with_pin(2);
    let cred = make(&mut h, &mut p, RP_A, b"user");
    let token = p.must_token(&mut h, perm::CM, None);
    let update = |user: Value| Value::Map(vec![(int(2), descriptor(&cred.id)), (int(3), user)]);
    let user = Value::Map(vec![
        (text("id"), bytes(b"user")),
        (text("name"), text("bob")),
        (text("displayName"), text("Bob B.")),
    ]);
    assert_eq!(
        cm(&mut h, request(7, Some(update(user)), Some(&token))).0,
        0
    );
    let creds = all_creds(&mut h, &token, RP_A);
    assert_eq!(
        user_fields(&creds[0].0),
        (b"user".to_vec(), Some("bob".into()), Some("Bob B.".into()))
    );
    // An assertion with UV shows the new names.
    let ga_token = p.must_token(&mut h, perm::GA, None);
    let cdh = client_data_hash("names");
    let (status, value, _) = h.get_assertion(ga_with(RP_A, &cdh, &[], None, &ga_token));
    assert_eq!(status, 0);
    let a = check_assertion(&value.unwrap(), &cdh, |_| cred.public_key);
    assert_eq!(
        user_fields(a.user.as_ref().unwrap()).1.as_deref(),
        Some("bob")
    );

    // Absent or empty fields are removed.
    let token = p.must_token(&mut h, perm::CM, None);
    let user = Value::Map(vec![(text("id"), bytes(b"user")), (text("name"), text(""))]);
    assert_eq!(
        cm(&mut h, request(7, Some(update(user)), Some(&token))).0,
        0
    );
    let creds = all_creds(&mut h, &token, RP_A);
    assert_eq!(creds[0].0, Value::Map(vec![(text("id"), bytes(b"user"))]));

    // The user handle must match; credential and user are required.
    let user = Value::Map(vec![
        (text("id"), bytes(b"other")),
        (text("name"), text("x")),
    ]);
    assert_eq!(
        cm(&mut h, request(7, Some(update(user)), Some(&token))).0,
        0x02
    );
    let only_cred = Value::Map(vec![(int(2), descriptor(&cred.id))]);
    assert_eq!(
        cm(&mut h, request(7, Some(only_cred), Some(&token))).0,
        0x14
    );
    let user = Value::Map(vec![(text("id"), bytes(b"user"))]);
    let unknown = Value::Map(vec![(int(2), descriptor(&[3; 77])), (int(3), user)]);
    assert_eq!(cm(&mut h, request(7, Some(unknown), Some(&token))).0, 0x2E);
}

#[test]
fn the_mac_covers_the_parameters_as_received() {
    let (mut h, mut p) = with_pin(2);
    let cred = make(&mut h, &mut p, RP_A, b"user");
    let token = p.must_token(&mut h, perm::CM, None);
    // Keys out of canonical order, in the params map and in the user map.
    let user = Value::Map(vec![
        (text("name"), text("carol")),
        (text("id"), bytes(b"user")),
    ]);
    let params = Value::Map(vec![(int(3), user.clone()), (int(2), descriptor(&cred.id))]);
    let canonical = Value::Map(vec![
        (int(2), descriptor(&cred.id)),
        (
            int(3),
            Value::Map(vec![
                (text("id"), bytes(b"user")),
                (text("name"), text("carol")),
            ]),
        ),
    ]);
    let raw = encode_value(&params);
    assert_ne!(raw, encode_value(&canonical));
    let send = |mac: Vec<u8>| {
        Value::Map(vec![
            (int(1), int(7)),
            (int(2), params.clone()),
            (int(3), int(2)),
            (int(4), bytes(&mac)),
        ])
    };
    let re_encoded = token.mac(&[&[7], &encode_value(&canonical)]);
    assert_eq!(cm(&mut h, send(re_encoded)).0, 0x33);
    assert_eq!(cm(&mut h, send(token.mac(&[&[7], &raw]))).0, 0);
    let creds = all_creds(&mut h, &token, RP_A);
    assert_eq!(user_fields(&creds[0].0).1.as_deref(), Some("carol"));
}

#[test]
fn authentication_is_required() {
    let (mut h, mut p) = with_pin(1);
    let cred = make(&mut h, &mut p, RP_A, b"user");
    // No pinUvAuthParam: PUAT_REQUIRED, for every authenticated subcommand.
    for (sub, params) in [
        (1, None),
        (2, None),
        (4, Some(rp_hash_param(RP_A))),
        (6, Some(cred_param(&cred.id))),
    ] {
        let (status, _) = cm(&mut h, request(sub, params, None));
        assert_eq!(status, 0x36, "subcommand {sub}");
    }
    // A wrong MAC, a missing or unsupported protocol.
    let token = p.must_token(&mut h, perm::CM, None);
    let mut wrong = token.clone();
    wrong.value[0] ^= 1;
    assert_eq!(cm(&mut h, request(1, None, Some(&wrong))).0, 0x33);
    let no_protocol = Value::Map(vec![(int(1), int(1)), (int(4), bytes(&token.mac(&[&[1]])))]);
    assert_eq!(cm(&mut h, no_protocol).0, 0x14);
    let bad_protocol = Value::Map(vec![
        (int(1), int(1)),
        (int(3), int(9)),
        (int(4), bytes(&token.mac(&[&[1]]))),
    ]);
    assert_eq!(cm(&mut h, bad_protocol).0, 0x02);
    // A MAC for another subcommand does not carry over.
    let mut m = request(2, None, Some(&token));
    if let Value::Map(entries) = &mut m {
        entries[0].1 = int(1);
    }
    assert_eq!(cm(&mut h, m).0, 0x33);
    // Without the cm permission.
    for permissions in [perm::MC | perm::GA, perm::LBW, perm::ACFG] {
        let token = p.must_token(&mut h, permissions, None);
        assert_eq!(cm(&mut h, request(1, None, Some(&token))).0, 0x33);
    }
    // Nothing was deleted by any of it.
    let token = p.must_token(&mut h, perm::CM, None);
    assert_eq!(metadata(&mut h, &token), (1, 99));
}

#[test]
fn without_a_pin_there_is_no_token() {
    let mut h = Harness::new();
    let cred = h.make_credential(Mc::new(RP_A, b"u").rk().build());
    let (outcome, status, _) = h.ctap2_once(0x0A, Some(request(1, None, None)));
    assert_eq!((outcome, status), (Outcome::Response, 0x36));
    let fake = Token {
        protocol: 2,
        value: vec![0; 32],
    };
    assert_eq!(
        cm(&mut h, request(6, Some(cred_param(&cred.id)), Some(&fake))).0,
        0x33
    );
    assert_eq!(h.auth.remaining_discoverable_credentials(), 99);
}

#[test]
fn rp_bound_tokens_manage_only_their_rp() {
    let (mut h, mut p) = with_pin(2);
    let a = make(&mut h, &mut p, RP_A, b"a");
    let b = make(&mut h, &mut p, RP_B, b"b");
    let token = p.must_token(&mut h, perm::CM, Some(RP_A));
    // Metadata and RP enumeration need an unbound token.
    assert_eq!(cm(&mut h, request(1, None, Some(&token))).0, 0x33);
    assert_eq!(cm(&mut h, request(2, None, Some(&token))).0, 0x33);
    // Its own RP works, the other does not.
    assert_eq!(all_creds(&mut h, &token, RP_A).len(), 1);
    let other = request(4, Some(rp_hash_param(RP_B)), Some(&token));
    assert_eq!(cm(&mut h, other).0, 0x33);
    assert_eq!(
        cm(&mut h, request(6, Some(cred_param(&b.id)), Some(&token))).0,
        0x33
    );
    assert_eq!(
        cm(&mut h, request(6, Some(cred_param(&a.id)), Some(&token))).0,
        0
    );
    let token = p.must_token(&mut h, perm::CM, None);
    assert_eq!(metadata(&mut h, &token), (1, 99));
}

#[test]
fn imported_resident_credentials_are_managed_like_the_others() {
    use crate::authenticator::instrument::{NewCredential, PrivateKey};
    let (mut h, mut p) = with_pin(2);
    let sk = p256::ecdsa::SigningKey::from_slice(&[0x17; 32]).unwrap();
    let key = PrivateKey::Es256(sk.to_bytes().into());
    h.auth
        .import_credential(&NewCredential {
            id: b"seeded",
            rp_id: RP_A,
            resident: true,
            private_key: &key,
            user_handle: b"seeded-user",
            sign_count: 0,
            large_blob: None,
            backup_eligible: None,
            backup_state: None,
            user_name: Some("seeded name"),
            user_display_name: None,
        })
        .unwrap();
    let token = p.must_token(&mut h, perm::CM, None);
    assert_eq!(metadata(&mut h, &token), (1, 99));
    let creds = all_creds(&mut h, &token, RP_A);
    assert_eq!(creds.len(), 1);
    let (user, id, public_key, _) = &creds[0];
    assert_eq!(id, b"seeded");
    assert_eq!(
        map_text(user, "id").unwrap().as_bytes().unwrap(),
        b"seeded-user"
    );
    // The public key it reports is the imported key's (derived here with p256).
    let point = sk.verifying_key().to_encoded_point(false);
    assert_eq!(
        map_int(public_key, -2).unwrap().as_bytes().unwrap(),
        point.x().unwrap().as_slice()
    );
    assert_eq!(
        map_int(public_key, -3).unwrap().as_bytes().unwrap(),
        point.y().unwrap().as_slice()
    );
    // Deleting it through credentialManagement works too.
    let (status, _) = cm(
        &mut h,
        request(6, Some(cred_param(b"seeded")), Some(&token)),
    );
    assert_eq!(status, 0);
    let mut left = 0;
    h.auth.visit_credentials(|_| left += 1).unwrap();
    assert_eq!(left, 0);
}

/// Enumeration reports each credential's own credProtect level (1 for one made
/// without the extension). (Kills the `cred_protect_policy` mutants that
/// survived the baseline: only level 1 was ever enumerated.)
#[test]
fn enumeration_reports_each_credentials_cred_protect_level() {
    let (mut h, mut p) = with_pin(2);
    let mut made = vec![];
    for level in [0i64, 1, 2, 3] {
        let token = p.must_token(&mut h, perm::MC, None);
        let mut mc = Mc::new(RP_A, &[level as u8 + 1]).rk();
        if level > 0 {
            mc = mc.with(6, Value::Map(vec![(text("credProtect"), int(level))]));
        }
        let id = h.make_credential(mc_with(&mc, &token)).id;
        made.push((id, level.max(1) as u64));
    }
    let token = p.must_token(&mut h, perm::CM, None);
    let creds = all_creds(&mut h, &token, RP_A);
    assert_eq!(creds.len(), made.len());
    for (_, id, _, level) in creds {
        let want = made.iter().find(|(i, _)| *i == id).expect("one of ours").1;
        assert_eq!(level, want);
    }
}
