//! Moved to [`crate::key::power`] (the key machinery owns power cycling); kept
//! as a re-export for the control API's paths.

pub use crate::key::power::*;
