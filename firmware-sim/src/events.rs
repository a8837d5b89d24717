//! Events of the running keys.
//!
//! - [`ctap`]: CTAP exchanges decoded for events (secrets shown as lengths)
//!   and the Chrome DevTools events they imply.
//!
//! (The event bus itself, interface 3 of the plan, joins this module.)

pub mod ctap;
