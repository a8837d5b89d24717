//! authenticatorMakeCredential (0x01), CTAP 2.1 §6.1.2.

use ctap_types::ctap2::make_credential::{Request, Response};
use ctap_types::ctap2::{
    AttestationStatement, AttestationStatementFormat, Error, NoneAttestationStatement,
    PackedAttestationStatement,
};
use ctap_types::webauthn::KnownPublicKeyCredentialParameters;
use ctap_types::Bytes;
use rand_core::{CryptoRng, RngCore};

use super::extensions::MakeCredentialExtensions;
use super::{
    auth_data, client_data_hash, crypto_error, deserialize, flags, store_error, validate,
    write_cbor, HandlerResult,
};
use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::Authenticator;
use crate::authenticator::COUNTER_BLOCK;
use crate::credential::{self, Algorithm, CredentialKey, CredentialRecord, RecordKind};
use crate::crypto::{es256::COSE_ALG_ES256, sha256, SecretKey};
use crate::pin::permission;
use crate::platform::{Storage, UserPresence};
use crate::store::{self, SlotUse, StoreError, MAX_RESIDENT_CREDENTIALS};

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
        if let Some(outcome) = self.pin_uv_auth_precheck(pin_auth, request.pin_protocol, context)? {
            return Ok(outcome);
        }
        // Step 3: the platform's first supported algorithm (ctap-types already
        // dropped unknown ones).
        let algorithm = choose_algorithm(&request.pub_key_cred_params.0)?;
        // Step 5: options. up=false is invalid here; unknown options are ignored.
        let options = request.options.as_ref();
        if options.and_then(|o| o.up) == Some(false) {
            return Err(Error::InvalidOption);
        }
        let rk = options.and_then(|o| o.rk).unwrap_or(false);
        // Steps 5 ("uv"), 6 (alwaysUv), 7–8 (makeCredUvNotRqd).
        let builtin_uv =
            self.make_credential_uv_policy(pin_auth.is_some(), options.and_then(|o| o.uv), rk)?;
        // Step 9: no enterprise attestation.
        if request.enterprise_attestation.is_some() {
            return Err(Error::InvalidParameter);
        }
        // Step 11: the pinUvAuthToken (mc permission, bound to rp.id) or
        // built-in UV gives UV; built-in UV also evidences presence.
        let verification = self.verify_pin_uv_auth(
            pin_auth,
            request.pin_protocol,
            &cdh,
            permission::MC,
            &request.rp.id,
            builtin_uv,
            context.now_ms,
        )?;
        let uv = verification.uv;
        let up_collected = context.up_granted || verification.up;

        // Extensions, checked (and hmac-secret-mc decrypted) before presence.
        let extensions = MakeCredentialExtensions::parse(
            request.extensions.as_ref(),
            rk,
            &self.pin,
            &request.rp.id,
        )?;

        let rp_id_hash = sha256(request.rp.id.as_bytes());

        // Step 12: excludeList. A match waits for presence, then is excluded.
        if let Some(exclude) = &request.exclude_list {
            for descriptor in exclude {
                if descriptor.key_type != "public-key" {
                    continue;
                }
                // A credProtect userVerificationRequired credential only
                // counts with UV (CTAP 2.1 §6.1.2 step 12).
                if self
                    .find_credential(&rp_id_hash, descriptor.id)
                    .map_err(store_error)?
                    .is_some_and(|c| uv || !c.flags.uv_required())
                {
                    if !up_collected {
                        return Ok(Outcome::NeedsPresence);
                    }
                    return Err(Error::CredentialExcluded);
                }
            }
        }

        // Check room before bothering the user. A non-discoverable credential
        // takes a record too (for its counter and the instrument's listing),
        // forgetting the oldest such record when none is free; without any
        // room it works untracked.
        let slot = if rk {
            Some(
                self.choose_slot(&rp_id_hash, &request.user.id)
                    .map_err(store_error)?
                    .ok_or(Error::KeyStoreFull)?,
            )
        } else {
            self.table.slot_for_new()
        };

        // Step 14: user presence (a PIN-issued token never carries it), which
        // uses up the token's mc/ga permissions and flags.
        if !up_collected {
            return Ok(Outcome::NeedsPresence);
        }
        self.pin.consume_after_user_presence();

        let format = attestation_format(&request);
        let (key, cose) = CredentialKey::generate_with_cose(algorithm, &mut self.platform.rng)
            .map_err(crypto_error)?;
        let (backup_eligible, backup_state) = (
            self.config.default_backup_eligible,
            self.config.default_backup_state,
        );
        let policy = extensions
            .flags()
            .with_backup(backup_eligible, backup_state);
        let credential_id = credential::wrap(
            &self.wrap_key,
            &mut self.platform.rng,
            &rp_id_hash,
            policy,
            slot.filter(|_| rk),
            &key,
        )
        .map_err(|_| Error::Other)?;

        if let Some(slot) = slot {
            let record = CredentialRecord {
                kind: if rk {
                    RecordKind::Discoverable
                } else {
                    RecordKind::NonDiscoverable
                },
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
                // A first block of counter values is reserved with the record.
                sign_count: COUNTER_BLOCK - 1,
                created: self.table.next_created(),
                algorithm,
                cred_protect: extensions.cred_protect(),
                flags: policy,
                backup_eligible,
                backup_state,
                cred_blob: if rk {
                    extensions.cred_blob()
                } else {
                    heapless::Vec::new()
                },
                sealed_key: None,
                epoch: Some(self.epoch),
            };
            self.put_record(slot, &record, 0).map_err(|e| match e {
                StoreError::Storage(crate::platform::StorageError::Full) => Error::KeyStoreFull,
                other => store_error(other),
            })?;
        }

        let mut flags = flags::UP | flags::AT | if uv { flags::UV } else { 0 };
        if backup_eligible {
            flags |= flags::BE;
        }
        if backup_state {
            flags |= flags::BS;
        }
        let mut auth_data = auth_data(
            &rp_id_hash,
            self.overrides.flags(flags),
            0,
            Some((&self.config.aaguid, &credential_id, &cose)),
        )?;
        extensions.append_outputs(
            &mut auth_data,
            &self.secrets,
            &credential_id,
            uv,
            &mut self.platform.rng,
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
        out.large_blob_key = extensions.large_blob_key(&self.secrets, &credential_id);
        write_cbor(response, &out)
    }

    /// The slot for a new discoverable credential: the one holding the same RP
    /// and user handle (overwritten), else a free one (or one a forgettable
    /// record holds); `None` when the key holds its maximum of discoverable
    /// credentials.
    fn choose_slot(
        &mut self,
        rp_id_hash: &[u8; 32],
        user_id: &[u8],
    ) -> Result<Option<u16>, StoreError> {
        let candidates: heapless::Vec<u16, { MAX_RESIDENT_CREDENTIALS as usize }> = self
            .table
            .rp_candidates(rp_id_hash, &[SlotUse::Discoverable])
            .take(MAX_RESIDENT_CREDENTIALS as usize)
            .collect();
        for slot in candidates {
            match store::load_credential(&mut self.platform.storage, slot) {
                Ok(Some(rec))
                    if rec.rp_id_hash == *rp_id_hash && rec.user_id.as_slice() == user_id =>
                {
                    return Ok(Some(slot));
                }
                Ok(_) | Err(StoreError::Corrupt) => {}
                Err(e) => return Err(e),
            }
        }
        if self.table.discoverable() >= MAX_RESIDENT_CREDENTIALS {
            return Ok(None);
        }
        Ok(self.table.slot_for_new())
    }

    /// A "packed" statement: batch attestation when configured, else self attestation.
    fn packed_statement(
        &self,
        credential_key: &CredentialKey,
        auth_data: &[u8],
        cdh: &[u8; 32],
    ) -> Result<PackedAttestationStatement, Error> {
        let (alg, signature, x5c) = match &self.config.attestation {
            Some(att) => {
                let batch = SecretKey::from_bytes(&att.private_key).map_err(crypto_error)?;
                let mut sig = batch.sign(&[auth_data, cdh]).map_err(crypto_error)?;
                self.overrides.signature(&mut sig);
                let cert = Bytes::try_from(att.certificate.as_slice()).map_err(|_| Error::Other)?;
                let mut chain = heapless::Vec::new();
                chain.push(cert).map_err(|_| Error::Other)?;
                (COSE_ALG_ES256, sig, Some(chain))
            }
            None => {
                let mut sig = credential_key
                    .sign(&[auth_data, cdh])
                    .map_err(crypto_error)?;
                self.overrides.signature(&mut sig);
                (credential_key.algorithm().cose(), sig, None)
            }
        };
        Ok(PackedAttestationStatement {
            alg,
            sig: Bytes::try_from(signature.as_slice()).map_err(|_| Error::Other)?,
            x5c,
        })
    }
}

/// The first algorithm of the platform's pubKeyCredParams that the key supports
/// (all that ctap-types keeps: ES256 and EdDSA), in the platform's order.
fn choose_algorithm(params: &[KnownPublicKeyCredentialParameters]) -> Result<Algorithm, Error> {
    params
        .iter()
        .find_map(|p| match p {
            KnownPublicKeyCredentialParameters::ES256 => Some(Algorithm::Es256),
            KnownPublicKeyCredentialParameters::EdDSA => Some(Algorithm::EdDsa),
            _ => None,
        })
        .ok_or(Error::UnsupportedAlgorithm)
}

/// The platform's first supported preference (CTAP 2.2 attestationFormatsPreference), else "packed".
fn attestation_format(request: &Request<'_>) -> AttestationStatementFormat {
    request
        .attestation_formats_preference
        .as_ref()
        .and_then(|p| p.known_formats().first().copied())
        .unwrap_or(AttestationStatementFormat::Packed)
}
