//! Raw CTAP2 requests (command byte and body) into the template
//! authenticator (PIN set, discoverable and non-discoverable credentials).
//!
//! Input: a flags byte (bit 0: the user approves presence; bit 1: follow
//! with authenticatorGetNextAssertion), then the command byte and the body.
//! Invariants: no panic (the core runs with overflow checks here); every
//! response is a status byte, alone for errors, followed by one CBOR map
//! and nothing else for OK.
#![no_main]

use ferrokey::app::Protocol;
use ferrokey_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((flags, request)) = data.split_first() else {
        return;
    };
    let approve = flags & 1 != 0;
    let (mut auth, _) = template_authenticator(presence_script(approve));
    let mut local = Local::new(&mut auth, approve);
    check_ctap2_response(&local.request(Protocol::Cbor, request));
    if flags & 2 != 0 {
        check_ctap2_response(&local.request(Protocol::Cbor, &[0x08]));
    }
});
