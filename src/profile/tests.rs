//! Profile tests: getInfo decoded per profile, refused commands, counters
//! and quirks, through `App::handle` with real CBOR.

use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use ciborium::Value;

use super::builtin::{self, CTAP2_0, STRICT, SYNCED_PASSKEY, U2F};
use super::{Profile, Quirk};
use crate::app::{App, Protocol};
use crate::authenticator::testkit::*;
use crate::authenticator::{Config, CounterMode};

/// getInfo of a fresh key before profiles existed (captured from the code
/// of that time, same Harness configuration).
const TODAY: &str = "00b10183665532465f5632684649444f5f325f30684649444f5f325f3102866b6372656450726f746563746b686d61632d7365637265746e686d61632d7365637265742d6d636863726564426c6f626c6c61726765426c6f624b65796c6d696e50696e4c656e6774680350666572726f6b65792d746573746b697404ab62726bf5627570f564706c6174f468616c776179735576f468637265644d676d74f569617574686e72436667f569636c69656e7450696ef46a6c61726765426c6f6273f56e70696e557641757468546f6b656ef56f7365744d696e50494e4c656e677468f5706d616b654372656455764e6f74527164f505191db906820201070a0818ff0981637573620a82a263616c672664747970656a7075626c69632d6b6579a263616c672764747970656a7075626c69632d6b65790b1908000cf40d040e1901020f18201004141864";
/// The same with built-in UV.
const TODAY_WITH_UV: &str = "00b30183665532465f5632684649444f5f325f30684649444f5f325f3102866b6372656450726f746563746b686d61632d7365637265746e686d61632d7365637265742d6d636863726564426c6f626c6c61726765426c6f624b65796c6d696e50696e4c656e6774680350666572726f6b65792d746573746b697404ac62726bf5627570f5627576f564706c6174f468616c776179735576f468637265644d676d74f569617574686e72436667f569636c69656e7450696ef46a6c61726765426c6f6273f56e70696e557641757468546f6b656ef56f7365744d696e50494e4c656e677468f5706d616b654372656455764e6f74527164f505191db906820201070a0818ff0981637573620a82a263616c672664747970656a7075626c69632d6b6579a263616c672764747970656a7075626c69632d6b65790b1908000cf40d040e1901020f1820100411031202141864";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| std::format!("{b:02x}")).collect()
}

fn config(profile: Profile) -> Config {
    let mut config = Config {
        aaguid: AAGUID,
        firmware_version: 0x0102,
        ..Config::default()
    };
    profile.apply(&mut config);
    config
}

fn harness(profile: Profile) -> Harness {
    Harness::with_config(config(profile))
}

fn get_info(h: &mut Harness) -> Value {
    let (status, value, _) = h.ctap2(0x04, None);
    assert_eq!(status, 0);
    value.unwrap()
}

fn texts(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_text().unwrap().to_string())
        .collect()
}

fn keys(value: &Value) -> Vec<i128> {
    value
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_integer().unwrap().into())
        .collect()
}

fn option_names(info: &Value) -> Vec<String> {
    let mut names: Vec<String> = map_int(info, 4)
        .unwrap()
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_text().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn security_key_get_info_is_byte_identical_to_todays() {
    let mut h = Harness::new();
    let (_, bytes) = h.raw(Protocol::Cbor, &[0x04], false);
    assert_eq!(hex(&bytes), TODAY);
    // Explicitly through the profile, too.
    let mut h = harness(builtin::SECURITY_KEY);
    let (_, bytes) = h.raw(Protocol::Cbor, &[0x04], false);
    assert_eq!(hex(&bytes), TODAY);
    let mut h = Harness::with_config(Config {
        builtin_uv: true,
        ..config(Profile::default())
    });
    let (_, bytes) = h.raw(Protocol::Cbor, &[0x04], false);
    assert_eq!(hex(&bytes), TODAY_WITH_UV);
}

#[test]
fn every_builtin_profile_checks_and_names_are_unique() {
    for (name, profile) in builtin::ALL {
        assert_eq!(profile.check(), Ok(()), "{name}");
        assert_eq!(builtin::by_name(name), Some(profile));
    }
    assert_eq!(builtin::by_name("yubikey"), None);
    assert_eq!(Profile::default(), builtin::SECURITY_KEY);
    // security-key reports every extension the key implements.
    let all: Vec<_> = builtin::SECURITY_KEY.extensions.list().collect();
    assert_eq!(all, crate::ctap2::extensions::SUPPORTED);
    // strict is security-key with the strict quirks, each applied alone.
    let strict = builtin::STRICT_QUIRKS
        .into_iter()
        .fold(builtin::SECURITY_KEY, Profile::with_quirk);
    assert_eq!(strict, STRICT);
}

#[test]
fn ctap2_0_get_info_is_a_ctap_2_0_key() {
    let mut h = harness(CTAP2_0);
    let info = get_info(&mut h);
    assert_eq!(keys(&info), [1, 2, 3, 4, 5, 6]);
    assert_eq!(texts(map_int(&info, 1).unwrap()), ["U2F_V2", "FIDO_2_0"]);
    assert_eq!(texts(map_int(&info, 2).unwrap()), ["hmac-secret"]);
    assert_eq!(map_bytes(&info, 3), AAGUID);
    assert_eq!(option_names(&info), ["clientPin", "plat", "rk", "up"]);
    assert_eq!(map_int(&info, 5), Some(&int(1200)));
    assert_eq!(map_int(&info, 6), Some(&Value::Array(vec![int(1)])));
}

#[test]
fn ctap2_0_refuses_the_2_1_commands_and_pin_protocol_two() {
    let mut h = harness(CTAP2_0);
    for cmd in [0x0A, 0x0B, 0x0C, 0x0D, 0x41] {
        let (status, _, _) = h.ctap2(cmd, Some(Value::Map(vec![(int(1), int(1))])));
        assert_eq!(status, 0x01, "command {cmd:#x}: INVALID_COMMAND");
    }
    // getKeyAgreement: protocol 2 refused, protocol 1 answered.
    let key_agreement = |p| Value::Map(vec![(int(1), int(p)), (int(2), int(2))]);
    let (status, _, _) = h.ctap2(0x06, Some(key_agreement(2)));
    assert_eq!(status, 0x02, "INVALID_PARAMETER");
    let (status, value, _) = h.ctap2(0x06, Some(key_agreement(1)));
    assert_eq!(status, 0);
    assert!(map_int(&value.unwrap(), 1).is_some(), "keyAgreement");
    // The CTAP 2.1 subcommands (getPinUvAuthTokenUsingUvWithPermissions,
    // getUVRetries, getPinUvAuthTokenUsingPinWithPermissions) are unknown to it.
    for sub in [0x06, 0x07, 0x09] {
        let request = Value::Map(vec![(int(1), int(1)), (int(2), int(sub))]);
        assert_eq!(
            h.ctap2(0x06, Some(request)).0,
            0x3E,
            "subcommand {sub}: INVALID_SUBCOMMAND"
        );
    }
    // getPINRetries answers as on today's key.
    let retries = Value::Map(vec![(int(1), int(1)), (int(2), int(1))]);
    let mut today = Harness::new();
    assert_eq!(
        h.ctap2(0x06, Some(retries.clone())).0,
        today.ctap2(0x06, Some(retries)).0
    );
    // The same key under security-key answers both.
    assert_eq!(today.ctap2(0x06, Some(key_agreement(2))).0, 0);
    assert_eq!(today.ctap2(0x0B, None).0, 0, "selection");
}

#[test]
fn ctap2_0_ignores_the_2_1_extensions() {
    let mut h = harness(CTAP2_0);
    let ext = Value::Map(vec![
        (text("credProtect"), int(2)),
        (text("hmac-secret"), Value::Bool(true)),
    ]);
    let made = h.make_credential(Mc::new("example.com", b"u").with(6, ext.clone()).build());
    let outputs: Value = ciborium::from_reader(&made.auth_data.rest[..]).unwrap();
    assert_eq!(
        outputs,
        Value::Map(vec![(text("hmac-secret"), Value::Bool(true))])
    );
    // security-key outputs both.
    let mut today = Harness::new();
    let made = today.make_credential(Mc::new("example.com", b"u").with(6, ext).build());
    let outputs: Value = ciborium::from_reader(&made.auth_data.rest[..]).unwrap();
    assert_eq!(outputs.as_map().unwrap().len(), 2);
}

#[test]
fn u2f_profile_has_no_cbor_and_answers_u2f() {
    let mut h = harness(U2F);
    assert!(!h.auth.supports_cbor());
    assert!(h.auth.supports_ctap1());
    for cmd in [0x01, 0x02, 0x04, 0x06, 0x07] {
        let (_, response) = h.raw(Protocol::Cbor, &[cmd, 0xA0], false);
        assert_eq!(response, [0x01], "command {cmd:#x}: INVALID_COMMAND");
    }
    // U2F VERSION.
    let (data, sw) = h.u2f(&[0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(sw, 0x9000);
    assert_eq!(data, b"U2F_V2");
    assert!(harness(builtin::SECURITY_KEY).auth.supports_cbor());
}

#[test]
fn synced_passkey_get_info_and_credentials() {
    let mut h = harness(SYNCED_PASSKEY);
    let info = get_info(&mut h);
    assert_eq!(texts(map_int(&info, 1).unwrap()), ["FIDO_2_0", "FIDO_2_1"]);
    assert_eq!(map_bytes(&info, 3), [0; 16], "AAGUID");
    let options = map_int(&info, 4).unwrap();
    assert_eq!(map_text(options, "uv"), Some(&Value::Bool(true)));
    assert_eq!(map_text(options, "rk"), Some(&Value::Bool(true)));
    // No rk asked: the credential is discoverable all the same.
    // Built-in UV evidences presence: one call, no separate presence step.
    let request = Mc::new("example.com", b"user-1").option("uv", true).build();
    let cdh = map_bytes(&request, 1).to_vec();
    let (status, value, _) = h.ctap2(0x01, Some(request));
    assert_eq!(status, 0);
    let made = MadeCredential::parse(&value.unwrap(), &cdh);
    assert_eq!(made.fmt, "none");
    assert_eq!(made.att_stmt, Value::Map(vec![]));
    let flags = made.auth_data.flags;
    assert_eq!(flags & 0x1D, 0x1D, "UP, UV, BE and BS: {flags:#x}");
    assert_eq!(made.auth_data.sign_count, 0);
    assert_eq!(made.auth_data.aaguid, Some([0; 16]));
    let key = made.public_key;
    for round in 0..3 {
        let cdh = client_data_hash(&std::format!("ga-{round}"));
        let (status, value, _) = h.get_assertion(ga("example.com", &cdh, &[], None));
        assert_eq!(status, 0, "discoverable without an allowList");
        let assertion = check_assertion(&value.unwrap(), &cdh, |_| key);
        assert_eq!(assertion.credential_id, made.id);
        assert_eq!(assertion.auth_data.sign_count, 0, "signCount always 0");
        assert_eq!(assertion.auth_data.flags & 0x18, 0x18, "BE and BS");
    }
    // No U2F.
    assert!(!h.auth.supports_ctap1());
    let (_, sw) = h.u2f(&[0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(sw, 0x6D00);
}

#[test]
fn strict_get_info_and_quirks() {
    let mut h = harness(STRICT);
    let info = get_info(&mut h);
    assert_eq!(map_int(&info, 5), Some(&int(1200)), "maxMsgSize");
    assert_eq!(map_int(&info, 7), Some(&int(1)), "maxCredentialCountInList");
    assert_eq!(map_int(&info, 8), Some(&int(128)), "maxCredentialIdLength");
    let made = h.make_credential(Mc::new("example.com", b"u").build());
    let cdh = client_data_hash("strict");
    let (status, _, _) = h.get_assertion(ga("example.com", &cdh, &[&made.id], None));
    assert_eq!(status, 0, "one credential is fine");
    let (status, _, _) = h.get_assertion(ga("example.com", &cdh, &[&made.id, &made.id], None));
    assert_eq!(status, 0x15, "two: LIMIT_EXCEEDED");
    let (status, _, _) = h.get_assertion(ga("example.com", &cdh, &[&[7u8; 129]], None));
    assert_eq!(status, 0x15, "a 129-byte ID: LIMIT_EXCEEDED");
    let (status, _, _) = h.get_assertion(ga("example.com", &cdh, &[&made.id], Some(false)));
    assert_eq!(status, 0x2B, "silent authentication: UNSUPPORTED_OPTION");
    let mut nameless = Mc::new("example.com", b"u2");
    nameless.user_name = None;
    let (status, _, _) = h.ctap2(0x01, Some(nameless.build()));
    assert_eq!(status, 0x14, "no displayName: MISSING_PARAMETER");
    // A request over maxMsgSize.
    let big =
        Mc::new("example.com", b"u3").with(6, Value::Map(vec![(text("x"), bytes(&[0; 1300]))]));
    let (status, _, _) = h.ctap2(0x01, Some(big.build()));
    assert_eq!(status, 0x03, "INVALID_LENGTH");
}

#[test]
fn each_quirk_alone() {
    let cdh = client_data_hash("quirk");
    for quirk in Quirk::ALL {
        assert_eq!(Quirk::from_name(quirk.name()), Some(quirk));
        let profile = builtin::SECURITY_KEY.with_quirk(quirk);
        assert_eq!(profile.check(), Ok(()), "{}", quirk.name());
        let mut h = harness(profile);
        let made = h.make_credential(Mc::new("example.com", b"u").build());
        let two = h
            .get_assertion(ga("example.com", &cdh, &[&made.id, &made.id], None))
            .0;
        let silent = h
            .get_assertion(ga("example.com", &cdh, &[&made.id], Some(false)))
            .0;
        let mut nameless = Mc::new("example.com", b"u2");
        nameless.user_name = None;
        let no_name = h.ctap2(0x01, Some(nameless.build())).0;
        let ext =
            Mc::new("example.com", b"u3").with(6, Value::Map(vec![(text("credProtect"), int(1))]));
        let with_ext = h.ctap2(0x01, Some(ext.build())).0;
        let info = get_info(&mut h);
        let expect = |q: Quirk, refused: u8| if quirk == q { refused } else { 0 };
        assert_eq!(
            two,
            expect(Quirk::OneCredentialPerList, 0x15),
            "{}",
            quirk.name()
        );
        assert_eq!(
            silent,
            expect(Quirk::RejectSilentAuthentication, 0x2B),
            "{}",
            quirk.name()
        );
        assert_eq!(
            no_name,
            expect(Quirk::RejectMissingDisplayName, 0x14),
            "{}",
            quirk.name()
        );
        assert_eq!(
            with_ext,
            expect(Quirk::RejectAllExtensions, 0x16),
            "{}",
            quirk.name()
        );
        let size = if quirk == Quirk::SmallMaxMsgSize {
            1200
        } else {
            7609
        };
        assert_eq!(map_int(&info, 5), Some(&int(size)));
        let id_len = if quirk == Quirk::ShortCredentialIds {
            128
        } else {
            255
        };
        assert_eq!(map_int(&info, 8), Some(&int(id_len)));
    }
    assert_eq!(Quirk::from_name("nope"), None);
}

#[test]
fn check_names_the_field() {
    let cases: [(Profile, &str); 8] = [
        (
            Profile {
                versions: super::Versions {
                    u2f_v2: false,
                    fido_2_0: false,
                    fido_2_1: false,
                },
                ..CTAP2_0
            },
            "versions",
        ),
        (
            Profile {
                max_msg_size: 100,
                ..CTAP2_0
            },
            "maxMsgSize",
        ),
        (
            Profile {
                max_creds_in_list: 0,
                ..CTAP2_0
            },
            "maxCredentialCountInList",
        ),
        (
            Profile {
                max_cred_id_length: 64,
                ..CTAP2_0
            },
            "maxCredentialIdLength",
        ),
        (
            Profile {
                backup_state: true,
                ..CTAP2_0
            },
            "backupState",
        ),
        (
            Profile {
                resident_only: true,
                ..U2F
            },
            "residentOnly",
        ),
        (
            Profile {
                options: super::Options {
                    cred_mgmt: true,
                    ..CTAP2_0.options
                },
                ..CTAP2_0
            },
            "options.credMgmt",
        ),
        (
            Profile {
                extensions: super::Extensions {
                    cred_protect: true,
                    ..CTAP2_0.extensions
                },
                ..CTAP2_0
            },
            "extensions.credProtect",
        ),
    ];
    for (profile, field) in cases {
        let error = profile.check().unwrap_err();
        assert_eq!(error.field, field, "{error}");
        assert!(error.to_string().starts_with(field));
    }
}

#[test]
fn counter_modes_from_the_profile_never_go_backwards() {
    let cdh = client_data_hash("count");
    for mode in [
        CounterMode::PerCredential,
        CounterMode::Global,
        CounterMode::RandomIncrements,
    ] {
        let profile = Profile {
            counter_mode: mode,
            ..builtin::SECURITY_KEY
        };
        let mut h = harness(profile);
        assert_eq!(h.auth.config().counter_mode, mode);
        let a = h.make_credential(Mc::new("example.com", b"a").build());
        let b = h.make_credential(Mc::new("example.com", b"b").build());
        let mut last = 0u32;
        let mut counts = Vec::new();
        for round in 0..6 {
            if round == 3 {
                h = h.crash();
            }
            let (id, key) = if round % 2 == 0 {
                (&a.id, a.public_key)
            } else {
                (&b.id, b.public_key)
            };
            let (status, value, _) = h.get_assertion(ga("example.com", &cdh, &[id], None));
            assert_eq!(status, 0);
            let count = check_assertion(&value.unwrap(), &cdh, |_| key)
                .auth_data
                .sign_count;
            if mode == CounterMode::Global {
                assert!(count > last, "{mode:?}: {count} after {last}");
                last = count;
            }
            counts.push((round % 2, count));
        }
        for credential in 0..2 {
            let mine: Vec<u32> = counts
                .iter()
                .filter(|c| c.0 == credential)
                .map(|c| c.1)
                .collect();
            assert!(mine.windows(2).all(|w| w[1] > w[0]), "{mode:?}: {mine:?}");
            if mode == CounterMode::PerCredential && credential == 0 {
                // Rounds 0 and 2, before the crash (after it, a jump is allowed).
                assert_eq!(mine[1], mine[0] + 1, "{mine:?}");
            }
        }
    }
}

#[test]
fn ctap2_0_batch_attestation_verifies() {
    let (attestation, batch_vk) = batch_attestation();
    let mut config = Config {
        aaguid: AAGUID,
        attestation: Some(attestation),
        ..Config::default()
    };
    CTAP2_0.apply(&mut config);
    let mut h = Harness::with_config(config);
    let mc = Mc::new("example.com", b"user-1");
    let cred = h.make_credential(mc.build());
    assert_eq!(cred.fmt, "packed");
    let sig = map_text(&cred.att_stmt, "sig").unwrap().as_bytes().unwrap();
    verify(&batch_vk, &[&cred.raw_auth_data, &mc.cdh], sig);
}
