//! Wiping secrets from memory.
//!
//! Every `Drop` impl and scratch buffer in the core that holds a secret (key
//! material, the PIN verifier, tokens, shared secrets, decrypted data) goes
//! through [`wipe`]: `zeroize`, which the compiler may not optimize away. In
//! the crate's own tests each call is also recorded on the calling thread
//! ([`hook`]), so a test can show that a given value was wiped when it went.
//! (The `tests` crate checks the same from outside: its allocator looks for
//! secrets in every block the core frees.)

use zeroize::Zeroize;

/// Zeroizes `bytes`; `what` names them for the test hook.
pub(crate) fn wipe(what: &'static str, bytes: &mut [u8]) {
    bytes.zeroize();
    #[cfg(test)]
    hook::record(what, bytes);
    #[cfg(not(test))]
    let _ = what;
}

/// The record of wipes, per thread (tests only).
#[cfg(test)]
pub(crate) mod hook {
    use std::cell::RefCell;
    use std::vec::Vec;

    std::thread_local! {
        static LOG: RefCell<Vec<(&'static str, bool)>> = const { RefCell::new(Vec::new()) };
    }

    /// Notes that `what` was wiped, and whether it is all zeros now.
    pub(crate) fn record(what: &'static str, bytes: &[u8]) {
        let zero = bytes.iter().all(|&b| b == 0);
        LOG.with(|log| log.borrow_mut().push((what, zero)));
    }

    /// The wipes recorded on this thread since the last call, in order.
    pub(crate) fn take() -> Vec<(&'static str, bool)> {
        LOG.with(|log| core::mem::take(&mut *log.borrow_mut()))
    }

    /// How many times `what` was wiped to all zeros since the last [`take`]
    /// (which this is).
    pub(crate) fn count(what: &str) -> usize {
        take()
            .iter()
            .filter(|(name, zero)| {
                assert!(*zero, "{name} was not all zeros after its wipe");
                *name == what
            })
            .count()
    }
}
