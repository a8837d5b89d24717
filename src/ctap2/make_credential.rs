//! authenticatorMakeCredential (0x01), CTAP 2.1 §6.1.2.

use ctap_types::ctap2::make_credential::{Request, Response};
use ctap_types::ctap2::{
    AttestationStatement, AttestationStatementFormat, Error, NoneAttestationStatement,
    PackedAttestationStatement,
};
use ctap_types::webauthn::KnownPublicKeyCredentialParameters;
use ctap_types::Bytes;
use rand_core::{CryptoRng, RngCore};

use super::{
    auth_data, client_data_hash, crypto_error, deserialize, flags, pin_uv_auth_precheck,
    store_error, validate, write_cbor, HandlerResult,
};
use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::Authenticator;
use crate::credential::{self, Algorithm, CredentialFlags, ResidentCredential};
use crate::crypto::{es256::COSE_ALG_ES256, sha256, SecretKey};
use crate::platform::{Storage, UserPresence};
use crate::store::{self, StoreError, MAX_RESIDENT_CREDENTIALS};

/// Where a new discoverable credential goes.
struct SlotChoice {
    slot: u16,
    created: u32,
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    pub(crate) fn make_credential(
        &mut self,
        body: &[u8],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        validate::make_credential(body)?;
        let request: Request<'_> = deserialize(body)?;
        let cdh = client_data_hash(request.client_data_hash)?;

        // Steps 1–2: pinUvAuthParam probes and protocol checks.
        let pin_auth = request.pin_auth.map(|b| &b[..]);
        if let Some(outcome) = pin_uv_auth_precheck(pin_auth, request.pin_protocol, context)? {
            return Ok(outcome);
        }
        // Step 3: only ES256 (ctap-types already dropped unknown algorithms).
        if !request
            .pub_key_cred_params
            .0
            .contains(&KnownPublicKeyCredentialParameters::ES256)
        {
            return Err(Error::UnsupportedAlgorithm);
        }
        // Step 5: options. up=false is invalid here; uv=true cannot be honoured
        // without built-in UV (CTAP 2.1 says INVALID_OPTION for this, for
        // backwards compatibility); unknown options are ignored.
        let options = request.options.as_ref();
        if options.and_then(|o| o.up) == Some(false) {
            return Err(Error::InvalidOption);
        }
        if options.and_then(|o| o.uv) == Some(true) {
            return Err(Error::InvalidOption);
        }
        let rk = options.and_then(|o| o.rk).unwrap_or(false);
        // Step 6: no enterprise attestation.
        if request.enterprise_attestation.is_some() {
            return Err(Error::InvalidParameter);
        }
        // Step 11: a PIN/UV auth param needs a PIN, and none is set.
        if pin_auth.is_some() {
            return Err(Error::PinNotSet);
        }

        let rp_id_hash = sha256(request.rp.id.as_bytes());

        // Step 12: excludeList. A match waits for presence, then is excluded.
        if let Some(exclude) = &request.exclude_list {
            for descriptor in exclude {
                if descriptor.key_type != "public-key" {
                    continue;
                }
                if self
                    .find_credential(&rp_id_hash, descriptor.id)
                    .map_err(store_error)?
                    .is_some()
                {
                    if !context.up_granted {
                        return Ok(Outcome::NeedsPresence);
                    }
                    return Err(Error::CredentialExcluded);
                }
            }
        }

        // Check room before bothering the user.
        let slot = if rk {
            Some(
                self.choose_slot(&rp_id_hash, &request.user.id)
                    .map_err(store_error)?
                    .ok_or(Error::KeyStoreFull)?,
            )
        } else {
            None
        };

        // Step 14: user presence.
        if !context.up_granted {
            return Ok(Outcome::NeedsPresence);
        }

        let format = attestation_format(&request);
        let key = SecretKey::generate(&mut self.platform.rng);
        let public = key.public_key().map_err(crypto_error)?;
        let credential_id = credential::wrap(
            &self.wrap_key,
            &mut self.platform.rng,
            &rp_id_hash,
            Algorithm::Es256,
            CredentialFlags::default(),
            slot.as_ref().map(|s| s.slot),
            &key,
        )
        .map_err(|_| Error::Other)?;

        if let Some(choice) = &slot {
            let record = ResidentCredential {
                rp_id_hash,
                rp_id: request.rp.id.clone(),
                user_id: request
                    .user
                    .id
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Other)?,
                user_name: request.user.name.clone(),
                display_name: request.user.display_name.clone(),
                credential_id: heapless::Vec::from_slice(&credential_id)
                    .map_err(|_| Error::Other)?,
                sign_count: 0,
                created: choice.created,
                algorithm: Algorithm::Es256,
                cred_protect: 0,
            };
            store::save_credential(&mut self.platform.storage, choice.slot, &record).map_err(
                |e| match e {
                    StoreError::Storage(crate::platform::StorageError::Full) => Error::KeyStoreFull,
                    other => store_error(other),
                },
            )?;
            self.slots.set(choice.slot, true);
        }

        let cose = public.to_cose();
        let auth_data = auth_data(
            &rp_id_hash,
            flags::UP | flags::AT,
            0,
            Some((&self.config.aaguid, &credential_id, &cose)),
        )?;

        let mut out = Response::empty();
        out.fmt = format;
        out.att_stmt = Some(match format {
            AttestationStatementFormat::None => {
                AttestationStatement::None(NoneAttestationStatement {})
            }
            _ => AttestationStatement::Packed(self.packed_statement(&key, &auth_data, &cdh)?),
        });
        out.auth_data = auth_data;
        write_cbor(response, &out)
    }

    /// The slot for a new discoverable credential: the one holding the same RP
    /// and user handle (overwritten), else the first free one; `None` when full.
    fn choose_slot(
        &mut self,
        rp_id_hash: &[u8; 32],
        user_id: &[u8],
    ) -> Result<Option<SlotChoice>, StoreError> {
        let mut newest: Option<u32> = None;
        let mut same_user = None;
        for slot in 0..MAX_RESIDENT_CREDENTIALS {
            if !self.slots.is_used(slot) {
                continue;
            }
            match store::load_credential(&mut self.platform.storage, slot) {
                Ok(Some(rec)) => {
                    newest = Some(newest.map_or(rec.created, |n| n.max(rec.created)));
                    if rec.rp_id_hash == *rp_id_hash && rec.user_id.as_slice() == user_id {
                        same_user = Some(slot);
                    }
                }
                Ok(None) | Err(StoreError::Corrupt) => {}
                Err(e) => return Err(e),
            }
        }
        let created = newest.map_or(0, |n| n.saturating_add(1));
        Ok(same_user
            .or_else(|| self.slots.first_free())
            .map(|slot| SlotChoice { slot, created }))
    }

    /// A "packed" statement: batch attestation when configured, else self attestation.
    fn packed_statement(
        &self,
        credential_key: &SecretKey,
        auth_data: &[u8],
        cdh: &[u8; 32],
    ) -> Result<PackedAttestationStatement, Error> {
        let (signature, x5c) = match &self.config.attestation {
            Some(att) => {
                let batch = SecretKey::from_bytes(&att.private_key).map_err(crypto_error)?;
                let sig = batch.sign(&[auth_data, cdh]).map_err(crypto_error)?;
                let cert = Bytes::try_from(att.certificate.as_slice()).map_err(|_| Error::Other)?;
                let mut chain = heapless::Vec::new();
                chain.push(cert).map_err(|_| Error::Other)?;
                (sig, Some(chain))
            }
            None => (
                credential_key
                    .sign(&[auth_data, cdh])
                    .map_err(crypto_error)?,
                None,
            ),
        };
        Ok(PackedAttestationStatement {
            alg: COSE_ALG_ES256,
            sig: Bytes::try_from(signature.as_slice()).map_err(|_| Error::Other)?,
            x5c,
        })
    }
}

/// The platform's first supported preference (CTAP 2.2 attestationFormatsPreference), else "packed".
fn attestation_format(request: &Request<'_>) -> AttestationStatementFormat {
    request
        .attestation_formats_preference
        .as_ref()
        .and_then(|p| p.known_formats().first().copied())
        .unwrap_or(AttestationStatementFormat::Packed)
}
