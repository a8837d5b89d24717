//! Host-side integration tests for ferrokey. The helpers live in
//! `ferrokey-test-support` (tests/support), re-exported here under their old
//! module names; [`in_process`] adds the one helper that needs the core's types.
pub use ferrokey_test_support::*;

pub mod in_process;
