//! Enterprise attestation (CTAP 2.1 §7.1), for a key configured with it
//! ([`crate::authenticator::Config::enterprise`]).
//!
//! - getInfo `ep`: false until authenticatorConfig enableEnterpriseAttestation
//!   turns it on; the setting is a store record
//!   ([`RecordKey::EnterpriseAttestation`]) that authenticatorReset removes.
//! - makeCredential `enterpriseAttestation` (§6.1.2 step 9): INVALID_PARAMETER
//!   on a key not capable of it or with it disabled; a value other than 1 or 2
//!   is INVALID_OPTION. 1 (vendor-facilitated) gives enterprise attestation
//!   only for an RP ID of the configured list (others get the usual
//!   attestation); 2 (platform-managed) gives it to any RP (the platform
//!   vouches for the RP). Enterprise attestation is a packed statement signed
//!   by the device's own key, with its own certificate (which identifies this
//!   device), and the response carries `epAtt: true`.

use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};

use crate::authenticator::Authenticator;
use crate::platform::{RecordKey, Storage, StorageError, UserPresence};

#[cfg(test)]
mod tests;

/// The record's contents (magic and version).
const RECORD: [u8; 5] = *b"FKEP\x01";

/// enterpriseAttestation 1: vendor-facilitated.
pub const VENDOR_FACILITATED: u32 = 1;
/// enterpriseAttestation 2: platform-managed.
pub const PLATFORM_MANAGED: u32 = 2;

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Power-up: whether enterprise attestation was enabled (any record means
    /// it was; a key not capable of it ignores the record).
    pub(crate) fn load_enterprise(&mut self) -> Result<(), StorageError> {
        let mut buf = [0u8; RECORD.len()];
        let found = match self
            .platform
            .storage
            .read(RecordKey::EnterpriseAttestation, &mut buf)
        {
            Ok(found) => found.is_some(),
            Err(StorageError::TooLarge) | Err(StorageError::Corrupt) => true,
            Err(e) => return Err(e),
        };
        self.ep_enabled = found && self.config.enterprise.is_some();
        Ok(())
    }

    /// authenticatorReset: enterprise attestation disabled again.
    pub(crate) fn reset_enterprise(&mut self) -> Result<(), StorageError> {
        self.platform
            .storage
            .remove(RecordKey::EnterpriseAttestation)?;
        self.ep_enabled = false;
        Ok(())
    }

    /// Whether the key is capable of enterprise attestation.
    pub(crate) fn enterprise_capable(&self) -> bool {
        self.config.enterprise.is_some()
    }

    /// authenticatorConfig enableEnterpriseAttestation (after authentication):
    /// persisted before it takes effect.
    pub(crate) fn enable_enterprise_attestation(&mut self) -> Result<(), Error> {
        if !self.enterprise_capable() {
            return Err(Error::InvalidParameter);
        }
        self.platform
            .storage
            .write(RecordKey::EnterpriseAttestation, &RECORD)
            .map_err(|e| match e {
                StorageError::Full => Error::KeyStoreFull,
                _ => Error::Other,
            })?;
        self.ep_enabled = true;
        Ok(())
    }

    /// makeCredential step 9: whether this request gets enterprise
    /// attestation (see the module documentation for the errors).
    pub(crate) fn enterprise_attestation_for(
        &self,
        requested: Option<u32>,
        rp_id: &str,
    ) -> Result<bool, Error> {
        let Some(value) = requested else {
            return Ok(false);
        };
        let Some(enterprise) = self.config.enterprise.as_ref().filter(|_| self.ep_enabled) else {
            return Err(Error::InvalidParameter);
        };
        match value {
            VENDOR_FACILITATED => Ok(enterprise.rp_ids.iter().any(|id| id.as_str() == rp_id)),
            PLATFORM_MANAGED => Ok(true),
            _ => Err(Error::InvalidOption),
        }
    }
}
