//! U2F (CTAP1) APDUs into the template authenticator (which holds a U2F
//! registration and CTAP2 credentials).
//!
//! Input: a flags byte (bit 0: the user approves presence; bit 1: send the
//! APDU twice, as a host polling for a touch does), then the APDU.
//! Invariants: no panic; every response ends in a status word and carries
//! data only with 9000.
#![no_main]

use ferrokey::app::Protocol;
use ferrokey_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((flags, apdu)) = data.split_first() else {
        return;
    };
    let approve = flags & 1 != 0;
    let (mut auth, _) = template_authenticator(presence_script(approve));
    let mut local = Local::new(&mut auth, approve);
    let repeats = if flags & 2 != 0 { 2 } else { 1 };
    for _ in 0..repeats {
        check_ctap1_response(&local.request(Protocol::Msg, apdu));
    }
});
