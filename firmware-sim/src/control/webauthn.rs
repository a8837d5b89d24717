//! The WebDriver virtual-authenticator extension commands (WebAuthn L3 §11)
//! and Chrome DevTools' additions, for real ferrokey keys.
//!
//! - [`config`]: Add Virtual Authenticator's Authenticator Configuration.
//! - [`credential`]: Credential Parameters (PKCS#8 private keys) in and out.
//! - [`binary`]: base64url fields.

pub mod binary;
pub mod config;
pub mod credential;
