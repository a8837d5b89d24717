//! The USB/IP wire format: the opening operation and the URB commands that
//! follow, decoded from arbitrary bytes as the acceptor and a key's link do.
//!
//! Invariants: no panic; decoding never claims more bytes than it was given;
//! what decodes re-encodes to something that decodes to the same value and
//! length; the bytes a decoded item used are enough to decode it alone.
#![no_main]

use firmware_sim::usbip::proto::{Command, OpRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    if let Ok(Some((op, used))) = OpRequest::decode(rest) {
        assert!(used <= rest.len());
        let encoded = op.encode();
        let again = OpRequest::decode(&encoded).unwrap_or_else(|e| panic!("re-decode: {e}"));
        assert_eq!(again, Some((op.clone(), encoded.len())));
        assert_eq!(
            OpRequest::decode(&rest[..used]).ok().flatten(),
            Some((op, used))
        );
        rest = &rest[used..];
    }
    // The URB stream, as a link consumes it.
    for _ in 0..64 {
        match Command::decode(rest) {
            Ok(Some((command, used))) => {
                assert!(
                    used > 0 && used <= rest.len(),
                    "used {used} of {}",
                    rest.len()
                );
                let encoded = command.encode();
                let again = Command::decode(&encoded)
                    .unwrap_or_else(|e| panic!("a decoded command does not re-decode: {e}"));
                assert_eq!(again, Some((command.clone(), encoded.len())));
                assert_eq!(
                    Command::decode(&rest[..used]).ok().flatten(),
                    Some((command, used))
                );
                rest = &rest[used..];
            }
            Ok(None) | Err(_) => break,
        }
    }
});
