//! A key's PIN/UV state as the instrument sees it: the named states a test
//! starts a key in or switches it to ([`PinStateName`]), the PIN given at
//! start ([`PinSecret`]), the JSON view of the state ([`view`]) and the events
//! a change makes ([`changes`], [`publish_changes`]).
//!
//! Everything goes through the core's PIN code (`ferrokey::pin::controls`),
//! so CTAP clients see exactly the state set here (clientPIN getRetries,
//! PIN_BLOCKED, UV_BLOCKED, forcePINChange in getInfo). No PIN ever appears
//! in a view, an event or a log line.

use std::fmt;

use ferrokey::authenticator::Authenticator;
use ferrokey::pin::controls::{ControlError, PinUvStatus};
use ferrokey::pin::state::{MAX_PIN_BYTES, MAX_PIN_RETRIES, MAX_UV_RETRIES};
use ferrokey::platform::{Storage, UserPresence};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::events::{EventBus, EventKind, KeyId};

/// The PIN/UV states a key can be put in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PinStateName {
    /// No PIN (built-in UV, if any, not blocked).
    Unset,
    /// A PIN with full retries, no forced change, UV not blocked.
    Set,
    /// A PIN with no retries left: PIN_BLOCKED until authenticatorReset.
    Blocked,
    /// A PIN that must be changed before a token is issued (forcePINChange).
    ForcePinChange,
    /// Built-in UV with no retries left (UV_BLOCKED); the PIN as it was.
    UvBlocked,
}

impl PinStateName {
    /// The name in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PinStateName::Unset => "unset",
            PinStateName::Set => "set",
            PinStateName::Blocked => "blocked",
            PinStateName::ForcePinChange => "forcePinChange",
            PinStateName::UvBlocked => "uvBlocked",
        }
    }

    /// Every state, for help texts and errors.
    pub const ALL: [PinStateName; 5] = [
        PinStateName::Unset,
        PinStateName::Set,
        PinStateName::Blocked,
        PinStateName::ForcePinChange,
        PinStateName::UvBlocked,
    ];

    /// Parses a name (`unset`, `set`, `blocked`, `forcePinChange`, `uvBlocked`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == text)
    }

    /// Whether the state needs a PIN on the key.
    pub fn needs_pin(self) -> bool {
        matches!(
            self,
            PinStateName::Set | PinStateName::Blocked | PinStateName::ForcePinChange
        )
    }
}

impl fmt::Display for PinStateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The state a [`PinUvStatus`] is in (the most limiting one first: blocked,
/// uvBlocked, forcePinChange, set, unset).
pub fn state_of(status: &PinUvStatus) -> PinStateName {
    if status.pin_set && status.pin_retries == 0 {
        PinStateName::Blocked
    } else if status.builtin_uv && status.uv_retries == 0 {
        PinStateName::UvBlocked
    } else if status.pin_set && status.force_pin_change {
        PinStateName::ForcePinChange
    } else if status.pin_set {
        PinStateName::Set
    } else {
        PinStateName::Unset
    }
}

/// The JSON view of the PIN/UV state (`GET .../pin`).
pub fn view(status: &PinUvStatus) -> Value {
    json!({
        "isSet": status.pin_set,
        "state": state_of(status).name(),
        "retries": status.pin_retries,
        "uvRetries": status.builtin_uv.then_some(status.uv_retries),
        "forcePinChange": status.force_pin_change,
        "powerCycleRequired": status.power_cycle_required,
        "minPinLength": status.min_pin_length,
        "builtinUv": status.builtin_uv,
    })
}

/// A PIN given to the key (option `pin`, `serve --pin-file`): zeroized when
/// dropped, never serialized, `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct PinSecret(Zeroizing<String>);

impl PinSecret {
    /// Checks `pin` against the default PIN policy (4 code points or more,
    /// at most 63 bytes, no NUL).
    pub fn new(pin: String) -> Result<Self, String> {
        let pin = Zeroizing::new(pin);
        check_pin(&pin)?;
        Ok(PinSecret(pin))
    }

    /// The PIN.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PinSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinSecret(..)")
    }
}

impl<'de> Deserialize<'de> for PinSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        PinSecret::new(text.to_string()).map_err(serde::de::Error::custom)
    }
}

/// The default PIN policy, said in words (the key checks it again against
/// its own minPINLength).
pub fn check_pin(pin: &str) -> Result<(), String> {
    let code_points = pin.chars().count();
    if code_points < 4 {
        return Err(format!(
            "the PIN has {code_points} characters; at least 4 are needed"
        ));
    }
    if pin.len() > MAX_PIN_BYTES {
        return Err(format!(
            "the PIN is {} bytes long; at most {MAX_PIN_BYTES} are allowed",
            pin.len()
        ));
    }
    if pin.contains('\0') {
        return Err("the PIN contains a NUL character".to_string());
    }
    Ok(())
}

/// Puts the key into `state`, setting `pin` first when given (a state that
/// needs a PIN and finds none is [`ControlError::PinNotSet`]; `uvBlocked`
/// without built-in UV is [`ControlError::NoBuiltinUv`]). Retries not named
/// by the state go back to their maximum.
pub fn apply<S: Storage, U: UserPresence, R: RngCore + CryptoRng>(
    auth: &mut Authenticator<S, U, R>,
    state: PinStateName,
    pin: Option<&str>,
) -> Result<(), ControlError> {
    let status = auth.pin_uv_status()?;
    if state == PinStateName::UvBlocked && !status.builtin_uv {
        return Err(ControlError::NoBuiltinUv);
    }
    if state == PinStateName::Unset {
        if pin.is_some() {
            return Err(ControlError::PinPolicy);
        }
        if status.pin_set {
            auth.control_clear_pin()?;
        }
    } else if let Some(pin) = pin {
        auth.control_set_pin(pin)?;
    } else if state.needs_pin() && !status.pin_set {
        return Err(ControlError::PinNotSet);
    }
    let pin_set = auth.pin_uv_status()?.pin_set;
    if pin_set {
        let retries = if state == PinStateName::Blocked {
            0
        } else {
            MAX_PIN_RETRIES
        };
        auth.control_set_pin_retries(retries)?;
        auth.control_set_force_pin_change(state == PinStateName::ForcePinChange)?;
    }
    if status.builtin_uv {
        let uv = if state == PinStateName::UvBlocked {
            0
        } else {
            MAX_UV_RETRIES
        };
        auth.control_set_uv_retries(uv)?;
    }
    Ok(())
}

/// The events a change of PIN/UV state makes, in order: `pinSet`,
/// `pinChanged`, `pinCleared`, `pinBlocked`, `uvBlocked`, `forcePinChange`.
pub fn changes(before: &PinUvStatus, after: &PinUvStatus) -> Vec<&'static str> {
    let mut out = Vec::new();
    match (before.pin_set, after.pin_set) {
        (false, true) => out.push("pinSet"),
        (true, true) if before.pin_changes != after.pin_changes => out.push("pinChanged"),
        (true, false) => out.push("pinCleared"),
        _ => {}
    }
    if after.pin_set && after.pin_retries == 0 && (before.pin_retries != 0 || !before.pin_set) {
        out.push("pinBlocked");
    }
    if after.builtin_uv && after.uv_retries == 0 && before.uv_retries != 0 {
        out.push("uvBlocked");
    }
    if after.pin_set && after.force_pin_change && !before.force_pin_change {
        out.push("forcePinChange");
    }
    out
}

/// Publishes the events of a change on `bus`: each with `source` (`api` or
/// `ctap`) and the new state's [`view`]; never the PIN.
pub fn publish_changes(
    bus: &EventBus,
    key: KeyId,
    before: &PinUvStatus,
    after: &PinUvStatus,
    source: &'static str,
) {
    for name in changes(before, after) {
        bus.publish(
            key,
            EventKind::Other(name.into()),
            json!({ "source": source, "pin": view(after) }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> PinUvStatus {
        PinUvStatus {
            pin_set: false,
            pin_retries: 8,
            power_cycle_required: false,
            force_pin_change: false,
            min_pin_length: 4,
            builtin_uv: true,
            uv_retries: 8,
            pin_changes: 0,
        }
    }

    #[test]
    fn states_are_named_by_the_most_limiting() {
        let mut s = status();
        assert_eq!(state_of(&s), PinStateName::Unset);
        s.pin_set = true;
        assert_eq!(state_of(&s), PinStateName::Set);
        s.force_pin_change = true;
        assert_eq!(state_of(&s), PinStateName::ForcePinChange);
        s.uv_retries = 0;
        assert_eq!(state_of(&s), PinStateName::UvBlocked);
        s.pin_retries = 0;
        assert_eq!(state_of(&s), PinStateName::Blocked);
        for state in PinStateName::ALL {
            assert_eq!(PinStateName::parse(state.name()), Some(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                json!(state.name()),
                "serde and name() agree"
            );
        }
        assert_eq!(PinStateName::parse("locked"), None);
        let v = view(&s);
        assert_eq!(v["state"], "blocked");
        assert_eq!(v["uvRetries"], 0);
        s.builtin_uv = false;
        assert_eq!(view(&s)["uvRetries"], Value::Null);
    }

    #[test]
    fn changes_name_what_happened() {
        let unset = status();
        let mut set = unset;
        set.pin_set = true;
        set.pin_changes = 1;
        assert_eq!(changes(&unset, &set), ["pinSet"]);
        assert_eq!(changes(&set, &unset), ["pinCleared"]);
        assert!(changes(&set, &set).is_empty());
        let mut changed = set;
        changed.pin_changes = 2;
        assert_eq!(changes(&set, &changed), ["pinChanged"]);
        let mut one_left = set;
        one_left.pin_retries = 1;
        assert!(changes(&set, &one_left).is_empty());
        let mut blocked = set;
        blocked.pin_retries = 0;
        assert_eq!(changes(&one_left, &blocked), ["pinBlocked"]);
        assert!(changes(&blocked, &blocked).is_empty());
        let mut uv_blocked = unset;
        uv_blocked.uv_retries = 0;
        assert_eq!(changes(&unset, &uv_blocked), ["uvBlocked"]);
        let mut forced = set;
        forced.force_pin_change = true;
        assert_eq!(changes(&set, &forced), ["forcePinChange"]);
        // Straight from no PIN to a blocked one (a key started blocked).
        assert_eq!(changes(&unset, &blocked), ["pinSet", "pinBlocked"]);
    }

    #[test]
    fn a_pin_secret_checks_the_policy_and_hides_itself() {
        let pin = PinSecret::new("2468".into()).unwrap();
        assert_eq!(pin.expose(), "2468");
        assert!(!format!("{pin:?}").contains("2468"));
        assert!(PinSecret::new("123".into())
            .unwrap_err()
            .contains("at least 4"));
        assert!(PinSecret::new("x".repeat(64)).unwrap_err().contains("63"));
        assert!(PinSecret::new("12\u{0}45".into()).is_err());
        // Four code points of more than one byte each are a valid PIN.
        assert!(PinSecret::new("ééééé".into()).is_ok());
        let parsed: PinSecret = serde_json::from_value(json!("13579")).unwrap();
        assert_eq!(parsed.expose(), "13579");
        assert!(serde_json::from_value::<PinSecret>(json!("12")).is_err());
        assert!(serde_json::from_value::<PinSecret>(json!(1234)).is_err());
    }
}
