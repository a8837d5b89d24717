//! CTAP2 authenticator extensions (CTAP 2.1 §12, CTAP 2.2 §12.7).
//!
//! | extension | makeCredential | getAssertion |
//! |---|---|---|
//! | credProtect | level 1–3 kept in the credential ID flags (and the record); output the level | level 3 needs UV; level 2 needs UV or an allowList |
//! | hmac-secret | `true` → output `true`, flag bit set | salts → encrypted HMAC outputs (CredRandom with/without UV) |
//! | hmac-secret-mc | with hmac-secret: outputs at creation | — |
//! | credBlob | ≤ 32 bytes stored on discoverable credentials; output whether stored | `true` → stored blob (or empty) |
//! | largeBlobKey | `true` (needs rk) → response key 0x05 | `true` → response key 0x07 for discoverable credentials |
//! | minPinLength | `true` → current minimum for RP IDs configured by setMinPINLength | — |
//!
//! Per-credential secrets (CredRandom, largeBlobKey) are derived from the device
//! secret and the credential ID ([`secrets`]), so nothing is stored for them.
//! Outputs go into authenticatorData's extensions as a CBOR map in CTAP2
//! canonical key order (the field order of ctap-types' output structs, which
//! is length-first, then bytewise), and set the ED flag. Unknown extensions are
//! ignored (ctap-types skips them); inputs of the wrong type fail CBOR parsing.
//!
//! Choices where the spec leaves room or was not consulted verbatim:
//! - `hmac-secret: false` (Firefox sends it unasked) and `largeBlobKey: false`
//!   are accepted and ignored: no output, no error.
//! - A credProtect value outside 1–3 is ignored (no protection, no output).
//! - credBlob on a non-discoverable credential is not stored (output `false`).
//! - hmac-secret with `up: false` gives no output (no silent secret release).
//! - A wrong saltAuth is PIN_AUTH_INVALID; salts that are not 32 or 64 bytes
//!   are INVALID_LENGTH; an unsupported pinUvAuthProtocol or a bad platform key
//!   INVALID_PARAMETER.

mod hmac_secret;
mod secrets;

#[cfg(test)]
pub(crate) mod tests;

use ctap_types::ctap2::{get_assertion as ga, make_credential as mc};
use ctap_types::ctap2::{Error, SerializedAuthenticatorData};
use rand_core::{CryptoRng, RngCore};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::authenticator::FoundCredential;
use crate::credential::{CredentialFlags, MAX_CRED_BLOB_LENGTH};
use crate::pin::PinUv;
use crate::profile::PinProtocols;

pub(crate) use hmac_secret::HmacSecretRequest;
pub(crate) use secrets::ExtensionSecrets;

/// Every extension implemented (the `security-key` profile reports them all).
#[cfg(test)]
pub(crate) const SUPPORTED: [ctap_types::ctap2::get_info::Extension; 6] = [
    ctap_types::ctap2::get_info::Extension::CredProtect,
    ctap_types::ctap2::get_info::Extension::HmacSecret,
    ctap_types::ctap2::get_info::Extension::HmacSecretMc,
    ctap_types::ctap2::get_info::Extension::CredBlob,
    ctap_types::ctap2::get_info::Extension::LargeBlobKey,
    ctap_types::ctap2::get_info::Extension::MinPinLength,
];

/// The largest extensions map this authenticator writes (hmac-secret-mc's 80
/// bytes plus the small outputs fit easily).
const MAX_EXTENSIONS_CBOR: usize = 256;

/// credProtect's rule for using a credential in getAssertion (CTAP 2.1 §6.2.2
/// step 7): level 3 (userVerificationRequired) only with UV; level 2
/// (userVerificationOptionalWithCredentialIDList) without UV only when the
/// platform named it in an allowList; level 1 or unset always.
pub(crate) fn cred_protect_allows(level: u8, uv: bool, in_allow_list: bool) -> bool {
    match level {
        3 => uv,
        2 => uv || in_allow_list,
        _ => true,
    }
}

/// Appends an extensions output map to authenticatorData and sets the ED flag.
fn append_outputs<T: Serialize>(
    auth_data: &mut SerializedAuthenticatorData,
    outputs: &T,
) -> Result<(), Error> {
    let mut buf = [0u8; MAX_EXTENSIONS_CBOR];
    let cbor = cbor_smol::cbor_serialize(outputs, &mut buf).map_err(|_| Error::Other)?;
    auth_data
        .extend_from_slice(cbor)
        .map_err(|_| Error::Other)?;
    let flags = auth_data.get_mut(32).ok_or(Error::Other)?;
    *flags |= super::flags::ED;
    Ok(())
}

/// The extensions of one makeCredential request, checked before user presence.
#[derive(Debug, Default)]
pub(crate) struct MakeCredentialExtensions {
    /// The requested credProtect level (0 = none).
    cred_protect: u8,
    hmac_secret: bool,
    hmac_secret_mc: Option<HmacSecretRequest>,
    /// `Some` when credBlob was sent: the blob to store, if it will be stored.
    cred_blob: Option<Option<heapless::Vec<u8, MAX_CRED_BLOB_LENGTH>>>,
    large_blob_key: bool,
    min_pin_length: Option<u8>,
}

impl MakeCredentialExtensions {
    /// Parses the extensions input. Errors: largeBlobKey without `rk` is
    /// INVALID_OPTION; a bad hmac-secret-mc input as for hmac-secret.
    pub(crate) fn parse(
        input: Option<&mc::ExtensionsInput<'_>>,
        rk: bool,
        pin: &PinUv,
        protocols: PinProtocols,
        rp_id: &str,
    ) -> Result<Self, Error> {
        let Some(input) = input else {
            return Ok(Self::default());
        };
        let large_blob_key = input.large_blob_key == Some(true);
        if large_blob_key && !rk {
            return Err(Error::InvalidOption);
        }
        let hmac_secret = input.hmac_secret == Some(true);
        let hmac_secret_mc = match (&input.hmac_secret_mc, hmac_secret) {
            (Some(mc_input), true) => Some(HmacSecretRequest::open(pin, protocols, mc_input)?),
            _ => None,
        };
        let cred_blob = input.cred_blob.map(|blob| {
            if rk {
                heapless::Vec::from_slice(blob).ok()
            } else {
                None
            }
        });
        let min_pin_length = (input.min_pin_length == Some(true)
            && pin
                .min_pin_length_rp_ids()
                .iter()
                .any(|id| id.as_str() == rp_id))
        .then(|| pin.min_pin_length());
        Ok(MakeCredentialExtensions {
            cred_protect: input
                .cred_protect
                .filter(|l| (1..=3).contains(l))
                .unwrap_or(0),
            hmac_secret,
            hmac_secret_mc,
            cred_blob,
            large_blob_key,
            min_pin_length,
        })
    }

    /// The policy bits for the new credential's ID.
    pub(crate) fn flags(&self) -> CredentialFlags {
        CredentialFlags::new(self.cred_protect, self.hmac_secret)
    }

    /// The credProtect level for the record (0 = none).
    pub(crate) fn cred_protect(&self) -> u8 {
        self.cred_protect
    }

    /// The credBlob to store with a discoverable credential (empty if none).
    pub(crate) fn cred_blob(&self) -> heapless::Vec<u8, MAX_CRED_BLOB_LENGTH> {
        self.cred_blob.clone().flatten().unwrap_or_default()
    }

    /// The response's largeBlobKey (0x05), when requested.
    pub(crate) fn large_blob_key(
        &self,
        secrets: &ExtensionSecrets,
        credential_id: &[u8],
    ) -> Option<Zeroizing<[u8; 32]>> {
        self.large_blob_key
            .then(|| secrets.large_blob_key(credential_id))
    }

    /// Appends the outputs (if any) to the new credential's authenticatorData.
    pub(crate) fn append_outputs<R: RngCore + CryptoRng>(
        &self,
        auth_data: &mut SerializedAuthenticatorData,
        secrets: &ExtensionSecrets,
        credential_id: &[u8],
        uv: bool,
        rng: &mut R,
    ) -> Result<(), Error> {
        let mut out = mc::ExtensionsOutput::default();
        out.cred_blob = self.cred_blob.as_ref().map(Option::is_some);
        out.cred_protect = (self.cred_protect != 0).then_some(self.cred_protect);
        out.hmac_secret = self.hmac_secret.then_some(true);
        out.min_pin_length = self.min_pin_length;
        if let Some(request) = &self.hmac_secret_mc {
            let cred_random = secrets.cred_random(credential_id, uv);
            out.hmac_secret_mc = Some(request.output(rng, &cred_random)?);
        }
        if out == mc::ExtensionsOutput::default() {
            return Ok(());
        }
        append_outputs(auth_data, &out)
    }
}

/// The extensions of one getAssertion request, kept for getNextAssertion.
#[derive(Debug, Default)]
pub(crate) struct AssertionExtensions {
    cred_blob: bool,
    large_blob_key: bool,
    hmac_secret: Option<HmacSecretRequest>,
}

impl AssertionExtensions {
    /// Parses and, for hmac-secret, verifies and decrypts the input (see
    /// [`HmacSecretRequest::open`] for its errors). hmac-secret is ignored when
    /// `up` is false.
    pub(crate) fn parse(
        input: Option<&ga::ExtensionsInput>,
        pin: &PinUv,
        protocols: PinProtocols,
        up: bool,
    ) -> Result<Self, Error> {
        let Some(input) = input else {
            return Ok(Self::default());
        };
        let hmac_secret = match &input.hmac_secret {
            Some(hs) if up => Some(HmacSecretRequest::open(pin, protocols, hs)?),
            _ => None,
        };
        Ok(AssertionExtensions {
            cred_blob: input.cred_blob == Some(true),
            large_blob_key: input.large_blob_key == Some(true),
            hmac_secret,
        })
    }

    /// Appends this credential's outputs (if any) to its authenticatorData.
    /// `uv` selects CredRandomWithUV.
    pub(crate) fn append_outputs<R: RngCore + CryptoRng>(
        &self,
        auth_data: &mut SerializedAuthenticatorData,
        credential: &FoundCredential,
        secrets: &ExtensionSecrets,
        uv: bool,
        rng: &mut R,
    ) -> Result<(), Error> {
        let mut out = ga::ExtensionsOutput::default();
        if self.cred_blob {
            out.cred_blob = Some(
                ctap_types::Bytes::try_from(credential.cred_blob.as_slice())
                    .map_err(|_| Error::Other)?,
            );
        }
        if let (Some(request), true) = (&self.hmac_secret, credential.flags.hmac_secret()) {
            let cred_random = secrets.cred_random(&credential.id, uv);
            out.hmac_secret = Some(request.output(rng, &cred_random)?);
        }
        if !out.is_set() {
            return Ok(());
        }
        append_outputs(auth_data, &out)
    }

    /// The response's largeBlobKey (0x07): requested, and the credential is
    /// discoverable.
    pub(crate) fn large_blob_key(
        &self,
        credential: &FoundCredential,
        secrets: &ExtensionSecrets,
    ) -> Option<Zeroizing<[u8; 32]>> {
        (self.large_blob_key && credential.resident.is_some())
            .then(|| secrets.large_blob_key(&credential.id))
    }
}
