//! Shared pieces of ferrokey's fuzz targets: an in-process authenticator on
//! the test platform (built from a template state, so every execution starts
//! from the same credentials and PIN), and the checks every response must
//! pass (CTAP2 responses decode as CBOR, U2F responses end in a status word).
//!
//! The targets are in `fuzz_targets/`; `src/bin/make-seeds.rs` writes the
//! seed corpora in `seeds/` from real requests.

pub mod hid_script;
pub mod structured;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ciborium::Value;
use ferrokey::app::{App, CallContext, Message, Outcome, Protocol};
use ferrokey::authenticator::{Authenticator, Config};
use ferrokey::pin::PinKdfCost;
use ferrokey::platform::{Platform, RecordKey, Storage};
use ferrokey::test_platform::{
    seeded_rng, ChaCha20Rng, MemoryStorage, PresenceScript, ScriptedPresence,
};
use ferrokey_test_support::ctap2::{Ctap2, GetAssertion, MakeCredential};
use ferrokey_test_support::ctaphid_client::ClientError;
use ferrokey_test_support::pin::ClientPin;
use ferrokey_test_support::u2f;

/// The authenticator the targets drive.
pub type FuzzAuthenticator = Authenticator<MemoryStorage, ScriptedPresence, ChaCha20Rng>;

/// The PIN of the template state.
pub const PIN: &str = "1234";
/// The RP of the template's credentials.
pub const RP: &str = "example.com";
/// The U2F application of the template's registration.
pub const U2F_APP: [u8; 32] = [0xA5; 32];
/// The RNG seed of every authenticator the targets build.
pub const SEED: u64 = 7;

/// The template state: the records, and IDs of what it holds.
pub struct Template {
    /// Every record of the template's storage.
    pub records: BTreeMap<RecordKey, Vec<u8>>,
    /// Credential IDs of RP [`RP`] (two discoverable, one not).
    pub credential_ids: Vec<Vec<u8>>,
    /// The key handle of the U2F registration at [`U2F_APP`].
    pub key_handle: Vec<u8>,
}

/// The authenticator configuration of every target (cheap PIN stretching).
pub fn config() -> Config {
    Config {
        aaguid: *b"ferrokey-fuzzing",
        firmware_version: 1,
        pin_kdf_cost: PinKdfCost::TEST,
        ..Config::default()
    }
}

/// A fresh authenticator on `storage`, presence following `script`.
pub fn authenticator_on(
    storage: MemoryStorage,
    script: PresenceScript,
) -> Option<(FuzzAuthenticator, ScriptedPresence)> {
    let presence = ScriptedPresence::new(script);
    let platform = Platform {
        storage,
        presence: presence.clone(),
        rng: seeded_rng(SEED),
    };
    Authenticator::new(platform, config())
        .ok()
        .map(|a| (a, presence))
}

/// A drive of an authenticator through [`App::handle`], answering presence
/// requests as the transport would (granted when `approve`).
pub struct Local<'a, S: Storage = MemoryStorage> {
    /// The authenticator.
    pub auth: &'a mut Authenticator<S, ScriptedPresence, ChaCha20Rng>,
    /// Whether the user approves presence requests.
    pub approve: bool,
    /// The clock.
    pub now_ms: u64,
    /// The channel requests come on.
    pub channel: u32,
}

impl<'a, S: Storage> Local<'a, S> {
    /// Requests to `auth` on channel 1 at 1 s after power-up, the user
    /// approving presence or not.
    pub fn new(
        auth: &'a mut Authenticator<S, ScriptedPresence, ChaCha20Rng>,
        approve: bool,
    ) -> Self {
        Local {
            auth,
            approve,
            now_ms: 1_000,
            channel: 1,
        }
    }
    /// One request; the response (for CBOR: status byte first), checked
    /// with [`check_ctap2_response`] or [`check_ctap1_response`]. A denied
    /// presence request gives the transport's CTAP2 answer
    /// (OPERATION_DENIED) or U2F's CONDITIONS_NOT_SATISFIED.
    pub fn request(&mut self, protocol: Protocol, request: &[u8]) -> Vec<u8> {
        self.now_ms += 10;
        let mut response = Message::new();
        let mut context = CallContext {
            now_ms: self.now_ms,
            up_granted: false,
            channel: self.channel,
        };
        let mut outcome = self.auth.handle(protocol, request, context, &mut response);
        if outcome == Outcome::NeedsPresence {
            if !self.approve {
                return match protocol {
                    Protocol::Cbor => vec![0x27],
                    Protocol::Msg => vec![0x69, 0x85],
                };
            }
            response.clear();
            context.up_granted = true;
            outcome = self.auth.handle(protocol, request, context, &mut response);
            assert_eq!(
                outcome,
                Outcome::Response,
                "presence asked for again after it was granted"
            );
        }
        match protocol {
            Protocol::Cbor => check_ctap2_response(&response),
            Protocol::Msg => check_ctap1_response(&response),
        }
        response.to_vec()
    }
}

impl<S: Storage> Ctap2 for Local<'_, S> {
    fn call(&mut self, command: u8, body: &[u8]) -> Result<(u8, Vec<u8>), ClientError> {
        let mut request = vec![command];
        request.extend_from_slice(body);
        let response = self.request(Protocol::Cbor, &request);
        let (status, rest) = response
            .split_first()
            .ok_or_else(|| ClientError::Protocol("empty CTAP2 response".into()))?;
        Ok((*status, rest.to_vec()))
    }
}

/// Checks a CTAP2 response: a status byte; after OK, nothing or one CBOR
/// map and nothing after it; after an error, nothing.
pub fn check_ctap2_response(response: &[u8]) {
    let (status, body) = response
        .split_first()
        .unwrap_or_else(|| panic!("empty CTAP2 response"));
    if *status != 0 {
        assert!(
            body.is_empty(),
            "error status {status:#04x} with a body of {} bytes",
            body.len()
        );
        return;
    }
    if body.is_empty() {
        return;
    }
    let value = decode_exact(body)
        .unwrap_or_else(|e| panic!("CTAP2 OK response does not decode: {e}: {body:02x?}"));
    assert!(
        matches!(value, Value::Map(_)),
        "CTAP2 response is not a map: {value:?}"
    );
}

/// Decodes one CBOR item that spans all of `data`.
pub fn decode_exact(data: &[u8]) -> Result<Value, String> {
    let mut reader = data;
    let value: Value = ciborium::de::from_reader(&mut reader).map_err(|e| e.to_string())?;
    if !reader.is_empty() {
        return Err(format!("{} bytes after the CBOR item", reader.len()));
    }
    Ok(value)
}

/// Checks a U2F response: at least a status word; data only with 9000.
pub fn check_ctap1_response(response: &[u8]) {
    assert!(
        response.len() >= 2,
        "U2F response without a status word: {response:02x?}"
    );
    let sw = u16::from_be_bytes([response[response.len() - 2], response[response.len() - 1]]);
    if sw != 0x9000 {
        assert_eq!(
            response.len(),
            2,
            "U2F error {sw:04x} with data: {response:02x?}"
        );
    }
}

/// The template state (built once per process).
pub fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(build_template)
}

fn build_template() -> Template {
    let storage = MemoryStorage::new();
    let (mut auth, _) = authenticator_on(storage.clone(), PresenceScript::Approve)
        .unwrap_or_else(|| panic!("template authenticator"));
    let (credential_ids, key_handle) = populate(&mut auth);
    Template {
        records: storage.snapshot(),
        credential_ids,
        key_handle,
    }
}

/// Gives an authenticator the template's state: PIN [`PIN`], two
/// discoverable credentials and one not at [`RP`], a U2F registration at
/// [`U2F_APP`]. The credential IDs and the key handle.
pub fn populate<S: Storage>(
    auth: &mut Authenticator<S, ScriptedPresence, ChaCha20Rng>,
) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut local = Local {
        auth,
        approve: true,
        now_ms: 1_000,
        channel: 1,
    };
    let pin = ClientPin::new(2);
    let status = pin
        .set_pin(&mut local, PIN)
        .unwrap_or_else(|e| panic!("setPin: {e}"));
    assert_eq!(status, 0, "setPin");
    let mut credential_ids = Vec::new();
    for (user, rk) in [
        (&b"alice"[..], true),
        (&b"bob"[..], true),
        (&b"carol"[..], false),
    ] {
        // A makeCredential spends the token's mc permission: one token each.
        let token = pin
            .token(&mut local, PIN, Some(0x01 | 0x02 | 0x04 | 0x10), Some(RP))
            .unwrap_or_else(|s| panic!("token: {s:#04x}"));
        let cdh = ferrokey_test_support::ctap2::sha256(user);
        let mut request = MakeCredential::new(RP, user).cdh(cdh).pin_auth(&token);
        if rk {
            request = request.rk();
        }
        let registration = request.must(&mut local);
        credential_ids.push(registration.credential_id.clone());
    }
    // A getAssertion so the counters have moved.
    let _ = GetAssertion::new(RP).cdh([9; 32]).send(&mut local);
    let response = local.request(Protocol::Msg, &u2f::register_apdu(&[3; 32], &U2F_APP));
    (credential_ids, key_handle_of(&response))
}

/// The key handle of a U2F REGISTER response.
fn key_handle_of(response: &[u8]) -> Vec<u8> {
    // 0x05, 65-byte public key, handle length, handle, ...
    let len = usize::from(response[66]);
    response[67..67 + len].to_vec()
}

/// A new storage holding the template's records.
pub fn template_storage() -> MemoryStorage {
    let storage = MemoryStorage::new();
    for (key, value) in &template().records {
        storage.put_raw(*key, value);
    }
    storage
}

/// The presence script of a user who approves every request, or denies it.
pub fn presence_script(approve: bool) -> PresenceScript {
    if approve {
        PresenceScript::Approve
    } else {
        PresenceScript::Deny
    }
}

/// A fresh authenticator on a copy of the template state.
pub fn template_authenticator(script: PresenceScript) -> (FuzzAuthenticator, ScriptedPresence) {
    authenticator_on(template_storage(), script)
        .unwrap_or_else(|| panic!("the template state does not load"))
}

/// The host side of a key's report interface, for the test-support CTAPHID
/// client (a strict parser of everything the key sends): reports go in at
/// once, and waiting for an answer runs the key's clock to its next deadline.
pub struct CoreTransport<'a, C: firmware_sim::key::ReportCore> {
    /// The key.
    pub core: &'a mut C,
    /// Its clock.
    pub now_ms: u64,
}

impl<C: firmware_sim::key::ReportCore> ferrokey_test_support::ctaphid_client::ReportTransport
    for CoreTransport<'_, C>
{
    fn send_report(&mut self, report: &[u8; 64]) -> std::io::Result<()> {
        self.core.handle_report(report, self.now_ms);
        Ok(())
    }

    fn recv_report(&mut self, _timeout: std::time::Duration) -> std::io::Result<Option<[u8; 64]>> {
        for _ in 0..10_000 {
            if let Some(report) = self.core.next_report() {
                return Ok(Some(report));
            }
            match self.core.next_deadline() {
                Some(deadline) => {
                    self.now_ms = self.now_ms.max(deadline);
                    self.core.tick(self.now_ms);
                }
                None => return Ok(None),
            }
        }
        Ok(None)
    }
}
