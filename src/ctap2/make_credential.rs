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
use crate::authenticator::Authenticator;
use crate::credential::{self, Algorithm, CredentialId, CredentialKey, ResidentCredential};
use crate::crypto::{es256::COSE_ALG_ES256, sha256, SecretKey};
use crate::pin::permission;
use crate::platform::{Storage, UserPresence};
use crate::store::{self, StoreError, MAX_RESIDENT_CREDENTIALS};

/// Where a new discoverable credential goes.
struct SlotChoice {
    slot: u16,
    created: u32,
}

/// What makeCredential established before creating anything (steps 1–14).
struct Prepared {
    cdh: [u8; 32],
    rp_id_hash: [u8; 32],
    algorithm: Algorithm,
    /// The UV flag of the response.
    uv: bool,
    extensions: MakeCredentialExtensions,
    /// Where a discoverable credential goes (`None`: not discoverable).
    slot: Option<SlotChoice>,
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
        let (key, credential_id) = self.create_credential(&request, &prepared)?;
        self.write_attestation(&request, &prepared, &key, &credential_id, response)
    }

    /// Steps 1–14: parameters, options, UV, extensions, excludeList, room for
    /// a discoverable credential, and user presence (`Break` while it is still
    /// to be collected, or with the answer to an excludeList match).
    fn prepare_credential(
        &mut self,
        request: &Request<'_>,
        context: &CallContext,
    ) -> Result<ControlFlow<Outcome, Prepared>, Error> {
        let cdh = client_data_hash(request.client_data_hash)?;

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
                        return Ok(ControlFlow::Break(Outcome::NeedsPresence));
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
            uv,
            extensions,
            slot,
        }))
    }

    /// Step 15: the key pair, its credential ID and, for a discoverable
    /// credential, its record (persisted before anything is answered).
    fn create_credential(
        &mut self,
        request: &Request<'_>,
        p: &Prepared,
    ) -> Result<(CredentialKey, CredentialId), Error> {
        let key = CredentialKey::generate(p.algorithm, &mut self.platform.rng);
        let credential_id = credential::wrap(
            &self.wrap_key,
            &mut self.platform.rng,
            &p.rp_id_hash,
            p.extensions.flags(),
            p.slot.as_ref().map(|s| s.slot),
            &key,
        )
        .map_err(|_| Error::Other)?;
        if let Some(choice) = &p.slot {
            self.save_resident(request, p, choice, &credential_id)?;
        }
        Ok((key, credential_id))
    }

    fn save_resident(
        &mut self,
        request: &Request<'_>,
        p: &Prepared,
        choice: &SlotChoice,
        credential_id: &[u8],
    ) -> Result<(), Error> {
        let record = ResidentCredential {
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
            sign_count: 0,
            created: choice.created,
            algorithm: p.algorithm,
            cred_protect: p.extensions.cred_protect(),
            cred_blob: p.extensions.cred_blob(),
        };
        store::save_credential(&mut self.platform.storage, choice.slot, &record).map_err(|e| {
            match e {
                StoreError::Storage(crate::platform::StorageError::Full) => Error::KeyStoreFull,
                other => store_error(other),
            }
        })?;
        self.slots.set(choice.slot, true);
        Ok(())
    }

    /// Step 16–19: authenticatorData with the attested credential data and
    /// extension outputs, and the attestation object, written straight into
    /// the response: `{1: fmt, 2: authData, 3: attStmt[, 5: largeBlobKey]}`.
    fn write_attestation(
        &mut self,
        request: &Request<'_>,
        p: &Prepared,
        key: &CredentialKey,
        credential_id: &[u8],
        response: &mut Message,
    ) -> HandlerResult {
        let cose = key.cose_public_key().map_err(crypto_error)?;
        let mut auth_data = auth_data(
            &p.rp_id_hash,
            flags::UP | flags::AT | if p.uv { flags::UV } else { 0 },
            0,
            Some((&self.config.aaguid, credential_id, &cose)),
        )?;
        let secrets = self.extension_secrets();
        p.extensions.append_outputs(
            &mut auth_data,
            &secrets,
            credential_id,
            p.uv,
            &mut self.platform.rng,
        )?;
        let large_blob_key = p.extensions.large_blob_key(&secrets, credential_id);
        let format = attestation_format(request);

        let mut w = CborWriter::response(response)?;
        w.map(if large_blob_key.is_some() { 4 } else { 3 })?;
        w.int(1)?;
        w.text(format.into())?;
        w.int(2)?;
        w.bytes(&auth_data)?;
        w.int(3)?;
        match format {
            AttestationStatementFormat::None => w.map(0)?,
            _ => self.write_packed_statement(&mut w, key, &auth_data, &p.cdh)?,
        }
        if let Some(large_blob_key) = &large_blob_key {
            w.int(5)?;
            w.bytes(large_blob_key.as_slice())?;
        }
        Ok(Outcome::Response)
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

    /// A "packed" statement, `{"alg", "sig"[, "x5c": [certificate]]}`: batch
    /// attestation when configured (the certificate written from the
    /// configuration, not copied), else self attestation.
    fn write_packed_statement(
        &self,
        w: &mut CborWriter<'_>,
        credential_key: &CredentialKey,
        auth_data: &[u8],
        cdh: &[u8; 32],
    ) -> Result<(), Error> {
        match &self.config.attestation {
            Some(att) => {
                let batch = SecretKey::from_bytes(&att.private_key).map_err(crypto_error)?;
                let sig = batch.sign(&[auth_data, cdh]).map_err(crypto_error)?;
                w.map(3)?;
                w.text("alg")?;
                w.int(COSE_ALG_ES256.into())?;
                w.text("sig")?;
                w.bytes(&sig)?;
                w.text("x5c")?;
                w.array(1)?;
                w.bytes(&att.certificate)
            }
            None => {
                let sig = credential_key
                    .sign(&[auth_data, cdh])
                    .map_err(crypto_error)?;
                w.map(2)?;
                w.text("alg")?;
                w.int(credential_key.algorithm().cose().into())?;
                w.text("sig")?;
                w.bytes(&sig)
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
