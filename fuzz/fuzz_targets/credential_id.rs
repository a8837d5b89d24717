//! Credential-ID unwrap: arbitrary bytes opened as a credential ID, directly
//! (a fixed wrapping key) and through getAssertion's allowList and U2F
//! AUTHENTICATE's key handle on the template authenticator.
//!
//! Input: one selector byte (bit 0: which RP the ID is presented for), then
//! the ID. Invariants: no panic; an ID that opens for one RP opens for no
//! other; the authenticator's answers are well-formed.
#![no_main]

use ferrokey::app::Protocol;
use ferrokey::credential::{self, CREDENTIAL_ID_LEN};
use ferrokey::crypto::wrap::WrapKey;
use ferrokey::test_platform::PresenceScript;
use ferrokey_fuzz::*;
use ferrokey_test_support::cbor::encode;
use ferrokey_test_support::ctap2::{sha256, GetAssertion};
use ferrokey_test_support::u2f;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, id)) = data.split_first() else {
        return;
    };
    let rp = if selector & 1 == 0 {
        RP
    } else {
        "other.example"
    };
    let rp_hash = sha256(rp.as_bytes());
    let key = WrapKey::derive(&[SEED as u8; 32]).unwrap_or_else(|_| panic!("derive"));
    if let Ok(opened) = credential::unwrap(&key, &rp_hash, id) {
        assert_eq!(id.len(), CREDENTIAL_ID_LEN);
        let other = sha256(b"elsewhere.example");
        assert!(
            credential::unwrap(&key, &other, id).is_err(),
            "an ID opened for two RPs"
        );
        let _ = opened.key.cose_public_key();
    }
    let (mut auth, _) = template_authenticator(PresenceScript::Approve);
    let mut local = Local::new(&mut auth, true);
    let mut request = vec![0x02];
    request.extend(encode(&GetAssertion::new(rp).allow(id).build()));
    check_ctap2_response(&local.request(Protocol::Cbor, &request));
    if id.len() <= 255 {
        let apdu = u2f::authenticate_apdu(0x07, &[1; 32], &U2F_APP, id);
        check_ctap1_response(&local.request(Protocol::Msg, &apdu));
    }
});
