//! The U2F test of user presence, tied to the request it was asked for.
//!
//! U2F never blocks: a REGISTER or AUTHENTICATE that needs presence asks the
//! platform once and answers `6985` (conditions not satisfied) until a retry
//! finds the user's touch. The touch answers *that* request only:
//!
//! - the outstanding request is bound to the CTAPHID channel, the instruction
//!   (REGISTER / AUTHENTICATE), the application parameter and, for
//!   AUTHENTICATE, the key handle. A U2F request that differs in any of them
//!   withdraws the outstanding one (the platform forgets a touch given for
//!   it) and asks anew, so a touch given to register at one site cannot sign
//!   in at another, on another channel or with another key handle;
//! - it expires [`U2F_PRESENCE_TTL_MS`] after the host last sent it: a touch
//!   the host never came back for (a prompt answered after the host gave up)
//!   cannot be spent later, even by the same request;
//! - a CTAP2 request, a transport reset and an answer (approval or denial)
//!   end it too.
//!
//! 10 s follows the U2F convention (a test of user presence is good for about
//! ten seconds); hosts retry every 100–300 ms, so a request in progress never
//! comes near it.

use sha2::{Digest, Sha256};

use crate::platform::{PresenceStatus, UserPresence};

/// How long an outstanding U2F presence request lives after the host last
/// sent it (the U2F convention: about 10 s).
pub const U2F_PRESENCE_TTL_MS: u64 = 10_000;

/// What a U2F presence request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct U2fRequest {
    channel: u32,
    /// SHA-256 of instruction ‖ application parameter ‖ key handle.
    binding: [u8; 32],
}

impl U2fRequest {
    /// The request `ins` for `application` (and `key_handle`, empty for
    /// REGISTER) on CTAPHID channel `channel`.
    pub fn new(channel: u32, ins: u8, application: &[u8; 32], key_handle: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update([ins]);
        hash.update(application);
        hash.update(key_handle);
        U2fRequest {
            channel,
            binding: hash.finalize().into(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    request: U2fRequest,
    last_sent_ms: u64,
}

/// The outstanding U2F presence request, if any.
#[derive(Debug, Default)]
pub struct U2fPresence {
    outstanding: Option<Outstanding>,
}

impl U2fPresence {
    /// The test of user presence for `request`: true once the user approved
    /// this very request. Otherwise the request is (or stays) outstanding at
    /// the platform, replacing one for another request or an expired one.
    pub fn check<P: UserPresence>(
        &mut self,
        presence: &mut P,
        request: U2fRequest,
        now_ms: u64,
    ) -> bool {
        let current = self.outstanding.is_some_and(|o| {
            o.request == request && now_ms.saturating_sub(o.last_sent_ms) <= U2F_PRESENCE_TTL_MS
        });
        if !current {
            self.withdraw(presence);
            presence.request(now_ms);
        }
        self.outstanding = Some(Outstanding {
            request,
            last_sent_ms: now_ms,
        });
        match presence.poll(now_ms) {
            PresenceStatus::Approved => {
                self.outstanding = None;
                true
            }
            PresenceStatus::Denied => {
                self.outstanding = None;
                false
            }
            PresenceStatus::Pending => false,
        }
    }

    /// Withdraws the outstanding request at the platform, if any (a CTAP2
    /// request or a transport reset came in between).
    pub fn withdraw<P: UserPresence>(&mut self, presence: &mut P) {
        if self.outstanding.take().is_some() {
            presence.cancel();
        }
    }

    /// Forgets the outstanding request without telling the platform: the
    /// transport has just asked for presence for a CTAP2 request, which
    /// replaced it there.
    pub fn forget(&mut self) {
        self.outstanding = None;
    }

    /// Whether a request is outstanding.
    pub fn is_outstanding(&self) -> bool {
        self.outstanding.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_platform::{PresenceScript, ScriptedPresence};

    const APP: [u8; 32] = [0xA1; 32];

    #[test]
    fn a_touch_answers_only_its_own_request() {
        let mut platform = ScriptedPresence::new(PresenceScript::Pending);
        let mut latch = U2fPresence::default();
        let register = U2fRequest::new(1, 0x01, &APP, &[]);
        assert!(!latch.check(&mut platform, register, 0));
        assert_eq!(platform.requests(), 1);
        // The host retries: the same request stays outstanding, no new prompt.
        assert!(!latch.check(&mut platform, register, 300));
        assert_eq!(platform.requests(), 1);
        platform.touch();
        // Anything else withdraws it first.
        let others = [
            U2fRequest::new(2, 0x01, &APP, &[]),
            U2fRequest::new(1, 0x02, &APP, &[]),
            U2fRequest::new(1, 0x01, &[0xB2; 32], &[]),
            U2fRequest::new(1, 0x02, &APP, &[1]),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(*other, register);
            assert!(!latch.check(&mut platform, *other, 400), "{i}");
        }
        assert_eq!(platform.cancels(), 4);
        assert!(!latch.check(&mut platform, register, 500));
        platform.touch();
        assert!(latch.check(&mut platform, register, 600));
        assert!(!latch.is_outstanding(), "an approval is used once");
    }

    #[test]
    fn an_outstanding_request_expires_after_the_host_stops_retrying() {
        let mut platform = ScriptedPresence::new(PresenceScript::Pending);
        let mut latch = U2fPresence::default();
        let request = U2fRequest::new(1, 0x01, &APP, &[]);
        assert!(!latch.check(&mut platform, request, 0));
        // Retries keep it alive well past the TTL.
        for t in (1..=30).map(|s| s * 1_000) {
            assert!(!latch.check(&mut platform, request, t));
        }
        assert_eq!(platform.requests(), 1);
        platform.touch();
        assert!(!latch.check(&mut platform, request, 30_000 + U2F_PRESENCE_TTL_MS + 1));
        assert_eq!(platform.requests(), 2, "asked anew");
        assert_eq!(platform.cancels(), 1, "the stale touch was withdrawn");
        platform.touch();
        assert!(latch.check(&mut platform, request, 31_000 + U2F_PRESENCE_TTL_MS));
    }

    #[test]
    fn withdraw_and_forget() {
        let mut platform = ScriptedPresence::new(PresenceScript::Pending);
        let mut latch = U2fPresence::default();
        latch.withdraw(&mut platform);
        assert_eq!(platform.cancels(), 0, "nothing outstanding");
        let request = U2fRequest::new(1, 0x01, &APP, &[]);
        latch.check(&mut platform, request, 0);
        latch.withdraw(&mut platform);
        assert_eq!(platform.cancels(), 1);
        assert!(!platform.outstanding());
        latch.check(&mut platform, request, 0);
        latch.forget();
        assert!(!latch.is_outstanding());
        assert_eq!(platform.cancels(), 1);
        // A denial ends the request.
        platform.set_script(PresenceScript::Deny);
        assert!(!latch.check(&mut platform, request, 0));
        assert!(!latch.is_outstanding());
    }
}
