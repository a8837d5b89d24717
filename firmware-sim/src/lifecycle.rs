//! The lifecycle scenarios of issue 13, one module per job:
//!
//! - [`clone`]: `POST .../authenticator/{id}/clone`, an attacker's copy of a key;
//! - [`cxf`]: resident credentials in the FIDO Credential Exchange Format, both ways;
//! - [`migrate`]: export from and all-or-nothing import into a key's core;
//! - [`policy`]: device-bound keys (`--no-export`, `ferrokey:exportable: false`)
//!   refuse clone and export, for good (a marker in the state directory);
//! - [`api`]: the control API's clone, export and import;
//! - [`cli`]: `ferrokey export --cxf` and `ferrokey import --cxf` on a stopped key.
//!
//! Export exists for testing relying parties: a real security key's private
//! keys never leave it.

pub mod api;
pub mod cli;
pub mod clone;
pub mod cxf;
pub mod migrate;
pub mod policy;
