//! authenticatorMakeCredential (0x01), CTAP 2.1 §6.1.2.

use core::ops::ControlFlow;

use ctap_types::ctap2::make_credential::Request;
use ctap_types::ctap2::{AttestationStatementFormat, Error};
use ctap_types::webauthn::KnownPublicKeyCredentialParameters;
use rand_core::{CryptoRng, RngCore};

use super::cbor_out::CborWriter;
use super::extensions::MakeCredentialExtensions;
use super::{
    auth_data, client_data_hash, crypto_error, deserialize, flags, store_error, validate,
    HandlerResult,
};
use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::COUNTER_BLOCK;
use crate::authenticator::{Attestation, Authenticator};
use crate::credential::{
    self, Algorithm, CoseKey, CredentialId, CredentialKey, CredentialRecord, RecordKind,
};
use crate::crypto::{es256::COSE_ALG_ES256, sha256, SecretKey};
use crate::pin::permission;
use crate::platform::{Storage, UserPresence};
use crate::store::{self, SlotUse, StoreError, MAX_RESIDENT_CREDENTIALS};

#[cfg(test)]
mod tests;

/// What makeCredential established before creating anything (steps 1–14).
struct Prepared {
    cdh: [u8; 32],
    rp_id_hash: [u8; 32],
    algorithm: Algorithm,
    /// The new credential is discoverable.
    rk: bool,
    /// The UV flag of the response.
    uv: bool,
    extensions: MakeCredentialExtensions,
    /// The record slot of the new credential: the discoverable credential's,
    /// or a non-discoverable one's tracking record (`None`: no room, untracked).
    slot: Option<u16>,
    /// authData BE and BS of the new credential (the key's defaults).
    backup_eligible: bool,
    backup_state: bool,
    /// Enterprise attestation is to be given (step 9).
    enterprise: bool,
}

/// The new credential (step 15).
struct Created {
    key: CredentialKey,
    cose: CoseKey,
    id: CredentialId,
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// authenticatorMakeCredential. The work is split into three steps, each
    /// its own function, so that their locals never share one stack frame:
    /// checks and user presence ([`Self::prepare_credential`]), the new key
    /// and its record ([`Self::create_credential`]), and the response
    /// ([`Self::write_attestation`]).
    pub(crate) fn make_credential(
        &mut self,
        body: &[u8],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        validate::make_credential(body)?;
        let request: Request<'_> = deserialize(body)?;
        let prepared = match self.prepare_credential(&request, context)? {
            ControlFlow::Continue(prepared) => prepared,
            ControlFlow::Break(outcome) => return Ok(outcome),
        };
        let created = self.create_credential(&request, &prepared)?;
        self.write_attestation(&request, &prepared, &created, response)
    }

    /// Steps 1–14: parameters, options, UV, extensions, excludeList, room for
    /// the credential's record, and user presence (`Break` while it is still
    /// to be collected, or with the answer to an excludeList match).
    fn prepare_credential(
        &mut self,
        request: &Request<'_>,
        context: &CallContext,
    ) -> Result<ControlFlow<Outcome, Prepared>, Error> {
        let cdh = client_data_hash(request.client_data_hash)?;
        let profile = self.config.profile;
        profile.check_make_credential(request)?;

        // Steps 1–2: pinUvAuthParam probes and protocol checks.
        let pin_auth = request.pin_auth.map(|b| &b[..]);
        if let Some(outcome) = self.pin_uv_auth_precheck(pin_auth, request.pin_protocol, context)? {
            return Ok(ControlFlow::Break(outcome));
        }
        // Step 3: the platform's first supported algorithm (ctap-types already
        // dropped unknown ones).
        let algorithm = choose_algorithm(&request.pub_key_cred_params.0)?;
        // Step 5: options. up=false is invalid here; unknown options are ignored.
        let options = request.options.as_ref();
        if options.and_then(|o| o.up) == Some(false) {
            return Err(Error::InvalidOption);
        }
        // A resident-only profile (a passkey provider) makes every
        // credential discoverable.
        let rk = options.and_then(|o| o.rk).unwrap_or(false) || profile.resident_only;
        // Steps 5 ("uv"), 6 (alwaysUv), 7–8 (makeCredUvNotRqd).
        let builtin_uv =
            self.make_credential_uv_policy(pin_auth.is_some(), options.and_then(|o| o.uv), rk)?;
        // Step 9: enterprise attestation (INVALID_PARAMETER unless enabled).
        let enterprise =
            self.enterprise_attestation_for(request.enterprise_attestation, &request.rp.id)?;
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
            profile
                .make_credential_extensions(request.extensions.as_ref())
                .as_ref(),
            rk,
            &self.pin,
            profile.pin_protocols,
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
                        return Ok(ControlFlow::Break(Outcome::NeedsPresence));
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
        // uses up the mc/ga permissions and flags of a token this request used.
        if !up_collected {
            return Ok(ControlFlow::Break(Outcome::NeedsPresence));
        }
        self.after_user_presence(&verification);

        Ok(ControlFlow::Continue(Prepared {
            cdh,
            rp_id_hash,
            algorithm,
            rk,
            uv,
            extensions,
            slot,
            backup_eligible: self.config.default_backup_eligible,
            backup_state: self.config.default_backup_state,
            enterprise,
        }))
    }

    /// Step 15: the key pair, its credential ID and its record (persisted
    /// before anything is answered).
    fn create_credential(&mut self, request: &Request<'_>, p: &Prepared) -> Result<Created, Error> {
        let (key, cose) = CredentialKey::generate_with_cose(p.algorithm, &mut self.platform.rng)
            .map_err(crypto_error)?;
        let id = credential::wrap(
            &self.wrap_key,
            &mut self.platform.rng,
            &p.rp_id_hash,
            p.extensions
                .flags()
                .with_backup(p.backup_eligible, p.backup_state),
            p.slot.filter(|_| p.rk),
            &key,
        )
        .map_err(|_| Error::Other)?;
        if let Some(slot) = p.slot {
            self.save_record(request, p, slot, &id)?;
        }
        Ok(Created { key, cose, id })
    }

    /// The new credential's record: a discoverable credential, or the
    /// tracking record of a non-discoverable one, created with a reserved
    /// block of counter values.
    fn save_record(
        &mut self,
        request: &Request<'_>,
        p: &Prepared,
        slot: u16,
        credential_id: &[u8],
    ) -> Result<(), Error> {
        let record = CredentialRecord {
            kind: if p.rk {
                RecordKind::Discoverable
            } else {
                RecordKind::NonDiscoverable
            },
            rp_id_hash: p.rp_id_hash,
            rp_id: request.rp.id.clone(),
            user_id: request
                .user
                .id
                .as_slice()
                .try_into()
                .map_err(|_| Error::Other)?,
            user_name: request.user.name.clone(),
            display_name: request.user.display_name.clone(),
            credential_id: heapless::Vec::from_slice(credential_id).map_err(|_| Error::Other)?,
            // A first block of counter values is reserved with the record.
            sign_count: COUNTER_BLOCK - 1,
            created: self.table.next_created(),
            algorithm: p.algorithm,
            cred_protect: p.extensions.cred_protect(),
            flags: p
                .extensions
                .flags()
                .with_backup(p.backup_eligible, p.backup_state),
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            cred_blob: if p.rk {
                p.extensions.cred_blob()
            } else {
                heapless::Vec::new()
            },
            sealed_key: None,
            epoch: Some(self.epoch),
        };
        self.put_record(slot, &record, 0).map_err(|e| match e {
            StoreError::Storage(crate::platform::StorageError::Full) => Error::KeyStoreFull,
            other => store_error(other),
        })
    }

    /// Steps 16–19: authenticatorData with the attested credential data and
    /// extension outputs, and the attestation object, written straight into
    /// the response: `{1: fmt, 2: authData, 3: attStmt[, 5: largeBlobKey]}`.
    fn write_attestation(
        &mut self,
        request: &Request<'_>,
        p: &Prepared,
        created: &Created,
        response: &mut Message,
    ) -> HandlerResult {
        let mut flags = flags::UP | flags::AT | if p.uv { flags::UV } else { 0 };
        if p.backup_eligible {
            flags |= flags::BE;
        }
        if p.backup_state {
            flags |= flags::BS;
        }
        let mut auth_data = auth_data(
            &p.rp_id_hash,
            self.overrides.flags(flags),
            0,
            Some((&self.config.aaguid, &created.id, &created.cose)),
        )?;
        p.extensions.append_outputs(
            &mut auth_data,
            &self.secrets,
            &created.id,
            p.uv,
            &mut self.platform.rng,
        )?;
        let large_blob_key = p.extensions.large_blob_key(&self.secrets, &created.id);
        let format = if self.config.none_attestation {
            AttestationStatementFormat::None
        } else {
            attestation_format(request)
        };

        // Enterprise attestation is a packed statement (never with fmt "none").
        let enterprise = match (&self.config.enterprise, format) {
            (_, AttestationStatementFormat::None) => None,
            (Some(e), _) if p.enterprise => Some(&e.attestation),
            _ => None,
        };

        let mut w = CborWriter::response(response)?;
        w.map(3 + usize::from(large_blob_key.is_some()) + usize::from(enterprise.is_some()))?;
        w.int(1)?;
        w.text(format.into())?;
        w.int(2)?;
        w.bytes(&auth_data)?;
        w.int(3)?;
        match (format, enterprise) {
            (AttestationStatementFormat::None, _) => w.map(0)?,
            (_, Some(att)) => self.write_certified_statement(&mut w, att, &auth_data, &p.cdh)?,
            _ => self.write_packed_statement(&mut w, &created.key, &auth_data, &p.cdh)?,
        }
        if enterprise.is_some() {
            // epAtt.
            w.int(4)?;
            w.bool(true)?;
        }
        if let Some(large_blob_key) = &large_blob_key {
            w.int(5)?;
            w.bytes(large_blob_key.as_slice())?;
        }
        Ok(Outcome::Response)
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

    /// A "packed" statement, `{"alg", "sig"[, "x5c": [batch[, intermediate]]]}`:
    /// batch attestation when configured (the certificates written from the
    /// configuration, not copied; the intermediate CA after the batch
    /// certificate when there is one), else self attestation. A bogus-signature
    /// override spoils the signature.
    fn write_packed_statement(
        &self,
        w: &mut CborWriter<'_>,
        credential_key: &CredentialKey,
        auth_data: &[u8],
        cdh: &[u8; 32],
    ) -> Result<(), Error> {
        match &self.config.attestation {
            Some(att) => self.write_certified_statement(w, att, auth_data, cdh),
            None => {
                let mut sig = credential_key
                    .sign(&[auth_data, cdh])
                    .map_err(crypto_error)?;
                self.overrides.signature(&mut sig);
                w.map(2)?;
                w.text("alg")?;
                w.int(credential_key.algorithm().cose().into())?;
                w.text("sig")?;
                w.bytes(&sig)
            }
        }
    }
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// A packed statement with a certificate: `{"alg": ES256, "sig", "x5c":
    /// [certificate[, intermediate]]}`, signed by `att`'s key (the batch key,
    /// or for enterprise attestation the device's own).
    fn write_certified_statement(
        &self,
        w: &mut CborWriter<'_>,
        att: &Attestation,
        auth_data: &[u8],
        cdh: &[u8; 32],
    ) -> Result<(), Error> {
        let key = SecretKey::from_bytes(&att.private_key).map_err(crypto_error)?;
        let mut sig = key.sign(&[auth_data, cdh]).map_err(crypto_error)?;
        self.overrides.signature(&mut sig);
        w.map(3)?;
        w.text("alg")?;
        w.int(COSE_ALG_ES256.into())?;
        w.text("sig")?;
        w.bytes(&sig)?;
        w.text("x5c")?;
        match &att.intermediate {
            Some(intermediate) => {
                w.array(2)?;
                w.bytes(&att.certificate)?;
                w.bytes(intermediate)
            }
            None => {
                w.array(1)?;
                w.bytes(&att.certificate)
            }
        }
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
