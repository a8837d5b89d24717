//! The runtime presence switch of one key: a simulated button ("touch"), a
//! presence policy override and a built-in user verification override, all
//! set from outside the key (the control API, `crate::control`) while the key
//! runs.
//!
//! - **Touch:** while the button is held ("touch on"), every presence request
//!   is approved, whatever the command-line mode (`--presence touch` approves
//!   *only* then). Releasing it ("touch off") leaves requests pending again.
//! - **Policy override:** [`Policy::Approve`] and [`Policy::Deny`] answer every
//!   request at once, [`Policy::Touch`] approves only while touched; `None`
//!   goes back to the command-line mode. An override beats the button.
//!
//! The switch outlives power cycles: the core is rebuilt at power-up, and its
//! new [`super::Presence`] gets the same switch.

use std::sync::{Arc, Mutex};

use ferrokey::platform::{PresenceStatus, UvStatus};
use tokio::sync::Notify;

use super::lock;

/// A runtime presence policy (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Approve every request at once.
    Approve,
    /// Refuse every request at once.
    Deny,
    /// Approve only while the button is held.
    Touch,
}

impl Policy {
    /// The policy's name in the control API.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Approve => "approve",
            Policy::Deny => "deny",
            Policy::Touch => "touch",
        }
    }
}

#[derive(Debug, Default)]
struct State {
    touched: bool,
    policy: Option<Policy>,
    uv_policy: Option<UvStatus>,
    /// A finger placed on the fingerprint sensor and not read yet.
    finger: Option<u8>,
    /// The placed finger that approved a presence request, for the sensor
    /// read that follows it.
    approving_finger: Option<u8>,
}

/// One key's presence switch; clones share it. Changes wake the key so a
/// pending request is answered at once.
#[derive(Clone, Debug)]
pub struct PresenceSwitch {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl PresenceSwitch {
    /// A released button and no override, waking `wake` on changes.
    pub fn new(wake: Arc<Notify>) -> Self {
        PresenceSwitch {
            state: Arc::new(Mutex::new(State::default())),
            wake,
        }
    }

    /// Presses (`true`) or releases (`false`) the button.
    pub fn set_touch(&self, touched: bool) {
        lock(&self.state).touched = touched;
        self.wake.notify_one();
    }

    /// Whether the button is held.
    pub fn is_touched(&self) -> bool {
        lock(&self.state).touched
    }

    /// Overrides the command-line mode (`None`: back to it).
    pub fn set_policy(&self, policy: Option<Policy>) {
        lock(&self.state).policy = policy;
        self.wake.notify_one();
    }

    /// The override in force, if any.
    pub fn policy(&self) -> Option<Policy> {
        lock(&self.state).policy
    }

    /// Overrides the answer of built-in user verification (`None`: back to
    /// the `--uv` mode).
    pub fn set_uv_policy(&self, answer: Option<UvStatus>) {
        lock(&self.state).uv_policy = answer;
    }

    /// The built-in user verification override in force, if any.
    pub fn uv_policy(&self) -> Option<UvStatus> {
        lock(&self.state).uv_policy
    }

    /// Places finger `finger` on the fingerprint sensor: it approves the
    /// pending presence request (a touch), unless a policy override denies,
    /// and the sensor's next read sees it (an enrollment sample, or a match).
    pub fn place_finger(&self, finger: u8) {
        lock(&self.state).finger = Some(finger);
        self.wake.notify_one();
    }

    /// The finger a placed finger left for the sensor to read (taking it).
    pub fn take_finger(&self) -> Option<u8> {
        let mut state = lock(&self.state);
        state
            .approving_finger
            .take()
            .or_else(|| state.finger.take())
    }

    /// The switch's answer to a pending request: `Some` decides it (the mode's
    /// own answer is not consulted), `None` leaves it to the mode.
    pub(super) fn decide(&self) -> Option<PresenceStatus> {
        let mut state = lock(&self.state);
        if state.policy != Some(Policy::Deny) {
            if let Some(finger) = state.finger.take() {
                state.approving_finger = Some(finger);
                return Some(PresenceStatus::Approved);
            }
        }
        let touched = if state.touched {
            PresenceStatus::Approved
        } else {
            PresenceStatus::Pending
        };
        match state.policy {
            Some(Policy::Approve) => Some(PresenceStatus::Approved),
            Some(Policy::Deny) => Some(PresenceStatus::Denied),
            Some(Policy::Touch) => Some(touched),
            None => state.touched.then_some(PresenceStatus::Approved),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_beats_the_button_and_none_defers_to_the_mode() {
        let switch = PresenceSwitch::new(Arc::new(Notify::new()));
        assert_eq!(switch.decide(), None);
        switch.set_touch(true);
        assert_eq!(switch.decide(), Some(PresenceStatus::Approved));
        switch.set_policy(Some(Policy::Deny));
        assert_eq!(switch.decide(), Some(PresenceStatus::Denied));
        switch.set_policy(Some(Policy::Touch));
        assert_eq!(switch.decide(), Some(PresenceStatus::Approved));
        switch.set_touch(false);
        assert_eq!(switch.decide(), Some(PresenceStatus::Pending));
        switch.set_policy(Some(Policy::Approve));
        assert_eq!(switch.decide(), Some(PresenceStatus::Approved));
        switch.set_policy(None);
        assert_eq!(switch.decide(), None);
        assert!(!switch.is_touched());
    }

    #[test]
    fn uv_override_is_independent_of_presence() {
        let switch = PresenceSwitch::new(Arc::new(Notify::new()));
        assert_eq!(switch.uv_policy(), None);
        switch.set_uv_policy(Some(UvStatus::Failed));
        switch.set_policy(Some(Policy::Approve));
        assert_eq!(switch.uv_policy(), Some(UvStatus::Failed));
        assert_eq!(switch.decide(), Some(PresenceStatus::Approved));
        switch.set_uv_policy(None);
        assert_eq!(switch.uv_policy(), None);
        assert_eq!(switch.policy(), Some(Policy::Approve));
    }
}
