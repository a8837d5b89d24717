//! Helpers for the process-level tests (`process_*.rs`): the shared process
//! harness of `ferrokey-test-support`, plus the ceremonies these tests repeat,
//! every signature verified with the public key from the registration.
//!
//! The binary is `$FERROKEY_BIN` or `target/<profile>/ferrokey` beside the
//! test executable: run `cargo build -p firmware-sim` first (tools/test-all does).

#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub use ferrokey_tests::cbor::*;
pub use ferrokey_tests::ctap2::{
    self, cmd, status, Assertion, Ctap2, GetAssertion, MakeCredential, PublicKey, Registration,
};
pub use ferrokey_tests::ctaphid_client::{ClientError, CtapHidClient};
pub use ferrokey_tests::process::*;
pub use ferrokey_tests::usbip_client::UsbipClient;

/// A CTAPHID client over USB/IP.
pub type Client = CtapHidClient<UsbipClient>;

/// Why an assertion did not come back. A signature that does not verify is
/// never an error value: it fails the test on the spot.
#[derive(Debug)]
pub enum AssertError {
    /// The key answered with this CTAP status.
    Status(u8),
    /// No answer: the transport failed (the server died, or timed out).
    Transport(ClientError),
}

/// authenticatorMakeCredential with a discoverable credential, ES256.
pub fn make_credential(client: &mut Client, rp: &str, user: &str) -> Result<Registration, u8> {
    make_credential_with_options(client, rp, user, &[("rk", true)])
}

/// authenticatorMakeCredential, ES256, with these `options` (e.g. rk, uv).
pub fn make_credential_with_options(
    client: &mut Client,
    rp: &str,
    user: &str,
    options: &[(&str, bool)],
) -> Result<Registration, u8> {
    let mut mc = MakeCredential::new(rp, user.as_bytes()).user(user, user);
    for (name, on) in options {
        mc = mc.option(name, *on);
    }
    mc.send(client)
        .unwrap_or_else(|e| panic!("makeCredential: {e}"))
}

/// authenticatorGetAssertion for `reg`'s credential, signature verified with
/// `reg`'s public key; returns the signature counter.
pub fn get_assertion(
    client: &mut Client,
    rp: &str,
    reg: &Registration,
) -> Result<u32, AssertError> {
    let ga = GetAssertion::new(rp).allow(&reg.credential_id);
    match ga.send(client) {
        Ok(Ok(assertion)) => {
            assertion
                .verify(&reg.public_key)
                .unwrap_or_else(|e| panic!("assertion for {rp}: {e}"));
            assert_eq!(assertion.credential_id, reg.credential_id);
            Ok(assertion.auth_data.sign_count)
        }
        Ok(Err(status)) => Err(AssertError::Status(status)),
        Err(ClientError::Protocol(what)) => panic!("assertion for {rp}: {what}"),
        Err(e) => Err(AssertError::Transport(e)),
    }
}

/// The credentials `ferrokey list` prints for a state directory: (rp, user, sign_count).
pub fn listed_credentials(state: &std::path::Path) -> Vec<(String, String, u32)> {
    let out = ferrokey(
        &ferrokey_bin(),
        &["list", "--state-dir", state.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .map(str::to_string)
            };
            Some((
                field("rp=")?,
                field("user=")?,
                field("sign_count=")?.parse().ok()?,
            ))
        })
        .collect()
}
