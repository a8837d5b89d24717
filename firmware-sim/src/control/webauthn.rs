//! The WebDriver virtual-authenticator extension commands (WebAuthn L3 §11)
//! and Chrome DevTools' additions, for real ferrokey keys.
//!
//! - [`authenticators`]: add, remove, list, describe; UV, presence, power, button.
//! - [`credentials`]: seed, list, delete credentials; properties; response overrides.
//! - [`config`]: Add Virtual Authenticator's Authenticator Configuration.
//! - [`credential`]: Credential Parameters (PKCS#8 private keys) in and out.
//! - [`binary`]: base64url fields.
//! - [`pin`]: PIN/UV state (set, clear, retries, named states).
//! - [`bio`]: the fingerprint sensor of a key with biometrics.

pub mod authenticators;
pub mod binary;
pub mod bio;
pub mod config;
pub mod credential;
pub mod credentials;
pub mod pin;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::reply::ApiError;

/// The ids in a `.../authenticator/{authenticatorId}[/credentials/{credentialId}]`
/// path (with or without `/session/{sessionId}` before it).
#[derive(Debug)]
pub struct Ids {
    /// `authenticatorId`.
    pub authenticator: String,
    /// `credentialId`, if the path has one.
    pub credential: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid_argument(format!("bad path: {}", e.body_text())))?;
        let authenticator = params
            .get("authenticatorId")
            .cloned()
            .ok_or_else(|| ApiError::invalid_argument("no authenticatorId in the path"))?;
        Ok(Ids {
            authenticator,
            credential: params.get("credentialId").cloned(),
        })
    }
}
