//! Process-level tests of the `ferrokey` program: state files, `ca`, `list`,
//! `reset`, error handling and exit codes.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferrokey::app::{App, CallContext, Message, Outcome, Protocol};
use ferrokey::authenticator::{Authenticator, Config};
use ferrokey::platform::Platform;
use firmware_sim::presence::Presence;
use firmware_sim::storage::FileStorage;

const BIN: &str = env!("CARGO_BIN_EXE_ferrokey");

fn ferrokey(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("FERROKEY_STATE_DIR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn state_arg(dir: &Path) -> String {
    dir.to_str().unwrap().to_string()
}

/// Creates key directories the way `serve` does, without serving (list/reset need
/// an identity file).
fn create_keys(state: &Path, n: u32) {
    for k in 1..=n {
        let dir = state.join(format!("key-{k}"));
        let _storage = FileStorage::open(&dir).unwrap();
        firmware_sim::identity::Identity::load_or_create(&dir, &[]).unwrap();
    }
}

/// Registers a discoverable credential on key `dir` with the real core, as a
/// host would with authenticatorMakeCredential.
fn make_resident_credential(dir: &Path, rp: &str, user: &str) {
    use ferrokey_test_support::ctap2::MakeCredential;
    let storage = FileStorage::open(dir).unwrap();
    let platform = Platform {
        storage,
        presence: Presence::auto(Default::default()),
        rng: rand_core::OsRng,
    };
    let config = Config {
        aaguid: firmware_sim::identity::FERROKEY_AAGUID,
        ..Config::default()
    };
    let mut app = Authenticator::new(platform, config).unwrap();
    let request = MakeCredential::new(rp, user.as_bytes())
        .rk()
        .user(user, user)
        .cdh([0x11; 32])
        .build();
    let mut bytes = vec![0x01];
    ciborium::into_writer(&request, &mut bytes).unwrap();
    let mut response = Message::new();
    let mut context = CallContext {
        now_ms: 1,
        up_granted: false,
        channel: 1,
    };
    if app.handle(Protocol::Cbor, &bytes, context, &mut response) == Outcome::NeedsPresence {
        context.up_granted = true;
        response.clear();
        assert_eq!(
            app.handle(Protocol::Cbor, &bytes, context, &mut response),
            Outcome::Response
        );
    }
    assert_eq!(
        response.first(),
        Some(&0x00),
        "makeCredential failed: {response:02x?}"
    );
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if path.is_dir() {
            walk(&path, out);
        }
    }
}

#[test]
fn ca_prints_a_root_certificate_and_state_is_private() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let out = ferrokey(&["ca", "--state-dir", &state_arg(&state)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pem_text = text(&out.stdout);
    assert!(
        pem_text.starts_with("-----BEGIN CERTIFICATE-----"),
        "{pem_text}"
    );
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert!(cert.is_ca());
    assert!(cert
        .subject()
        .iter_organization()
        .any(|o| o.as_str().unwrap() == "ferrokey"));

    // Idempotent: the same root is printed again.
    let again = ferrokey(&["ca", "--state-dir", &state_arg(&state)]);
    assert_eq!(again.stdout, out.stdout);

    let mut paths = vec![state.clone()];
    walk(&state, &mut paths);
    assert!(paths.len() >= 6, "{paths:?}");
    for path in paths {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", path.display());
    }
}

#[test]
fn list_shows_serials_and_credentials_and_reset_clears_them() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    create_keys(state, 2);
    make_resident_credential(&state.join("key-1"), "example.com", "alice");
    make_resident_credential(&state.join("key-1"), "example.org", "bob");
    let serial1 = firmware_sim::identity::Identity::load(&state.join("key-1"))
        .unwrap()
        .serial;

    let out = ferrokey(&["list", "--state-dir", &state_arg(state)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains(&format!("key-1 serial={serial1}")),
        "{listing}"
    );
    assert!(
        listing.contains("rp=example.com user=alice credential="),
        "{listing}"
    );
    assert!(listing.contains("rp=example.org user=bob"), "{listing}");
    assert!(listing.contains("sign_count="), "{listing}");
    assert!(listing.contains("key-2 serial="), "{listing}");
    assert!(listing.contains("(no resident credentials)"), "{listing}");

    // Several keys: reset wants --key or --all.
    let out = ferrokey(&["reset", "--yes", "--state-dir", &state_arg(state)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--all"), "{}", text(&out.stderr));

    // Without a terminal, --yes is required.
    let out = ferrokey(&["reset", "--key", "1", "--state-dir", &state_arg(state)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));

    let out = ferrokey(&[
        "reset",
        "--key",
        "1",
        "--yes",
        "--state-dir",
        &state_arg(state),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("key-1"));

    let out = ferrokey(&["list", "--state-dir", &state_arg(state)]);
    let listing = text(&out.stdout);
    assert!(!listing.contains("example.com"), "{listing}");
    // The identity survives a reset.
    assert!(
        listing.contains(&format!("key-1 serial={serial1}")),
        "{listing}"
    );
    let recs: Vec<_> = fs::read_dir(state.join("key-1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("rec-"))
        .collect();
    assert!(recs.is_empty(), "{recs:?}");

    let out = ferrokey(&[
        "reset",
        "--key",
        "7",
        "--yes",
        "--state-dir",
        &state_arg(state),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no key 7"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn list_works_while_a_key_is_locked_but_reset_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    create_keys(state, 1);
    make_resident_credential(&state.join("key-1"), "example.com", "carol");
    let _held = FileStorage::open(&state.join("key-1")).unwrap();

    let out = ferrokey(&["list", "--state-dir", &state_arg(state)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("user=carol"));

    let out = ferrokey(&["reset", "--all", "--yes", "--state-dir", &state_arg(state)]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("in use by another ferrokey process"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    // Nothing was reset.
    drop(_held);
    let out = ferrokey(&["list", "--state-dir", &state_arg(state)]);
    assert!(text(&out.stdout).contains("user=carol"));
}

#[test]
fn corrupt_state_is_reported_by_name_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    create_keys(state, 1);
    make_resident_credential(&state.join("key-1"), "example.com", "dave");
    let file = state.join("key-1").join("rec-00010000.bin");
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5A;
    fs::write(&file, &bytes).unwrap();
    let before = fs::metadata(&file).unwrap().modified().unwrap();

    for args in [
        vec!["list", "--state-dir", &state_arg(state)],
        vec!["reset", "--all", "--yes", "--state-dir", &state_arg(state)],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            &state_arg(state),
        ],
    ] {
        let out = ferrokey(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("rec-00010000.bin"), "{args:?}: {err}");
        assert!(err.contains("corrupt"), "{args:?}: {err}");
        assert_eq!(fs::read(&file).unwrap(), bytes);
        assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), before);
    }
}

#[test]
fn damaged_identity_and_ca_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    create_keys(state, 1);
    let identity = state.join("key-1").join("identity.json");
    fs::write(&identity, b"{\"version\": 9}").unwrap();
    let out = ferrokey(&["list", "--state-dir", &state_arg(state)]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("identity.json") && err.contains("version 9"),
        "{err}"
    );

    let out = ferrokey(&["ca", "--state-dir", &state_arg(state)]);
    assert!(out.status.success());
    let key = state.join("ca").join("batch-key.pem");
    fs::write(&key, b"not a key").unwrap();
    let out = ferrokey(&["ca", "--state-dir", &state_arg(state)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("batch-key.pem"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fs::read(&key).unwrap(), b"not a key");
}

#[test]
fn usage_errors_exit_2_and_help_describes_commands() {
    let out = ferrokey(&["--keys", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ferrokey(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));

    let out = ferrokey(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "serve",
        "list",
        "reset",
        "ca",
        "--listen",
        "--presence",
        "--state-dir",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
    let out = ferrokey(&["serve", "--help"]);
    let help = text(&out.stdout);
    assert!(help.contains("auto") && help.contains("prompt"), "{help}");
}

#[test]
fn list_of_an_empty_state_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ferrokey(&["list", "--state-dir", &state_arg(tmp.path())]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("no keys"));
}

#[test]
fn default_state_dir_is_the_users_data_dir() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("ca")
        .env_remove("FERROKEY_STATE_DIR")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = home.path().join(".local/share/ferrokey");
    assert!(dir.join("ca").join("root-cert.pem").exists());
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
}
