//! authenticatorGetAssertion (0x02) and authenticatorGetNextAssertion (0x08),
//! CTAP 2.1 §6.2 and §6.3.

use ctap_types::ctap2::get_assertion::{Request, Response};
use ctap_types::ctap2::Error;
use ctap_types::webauthn::{PublicKeyCredentialDescriptor, PublicKeyCredentialUserEntity};
use ctap_types::Bytes;
use rand_core::{CryptoRng, RngCore};

use super::{
    auth_data, client_data_hash, crypto_error, deserialize, flags, pin_uv_auth_precheck,
    store_error, validate, write_cbor, HandlerResult, NEXT_ASSERTION_TIMEOUT_MS,
};
use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::{Authenticator, FoundCredential, PendingAssertions};
use crate::crypto::sha256;
use crate::platform::{Storage, UserPresence};
use crate::store::{self, StoreError, MAX_RESIDENT_CREDENTIALS};

type SlotList = heapless::Vec<u16, { MAX_RESIDENT_CREDENTIALS as usize }>;

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    pub(crate) fn get_assertion(
        &mut self,
        body: &[u8],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        validate::get_assertion(body)?;
        let request: Request<'_> = deserialize(body)?;
        let cdh = client_data_hash(request.client_data_hash)?;

        // Steps 1–2: pinUvAuthParam probes and protocol checks.
        let pin_auth = request.pin_auth.map(|b| &b[..]);
        if let Some(outcome) = pin_uv_auth_precheck(pin_auth, request.pin_protocol, context)? {
            return Ok(outcome);
        }
        // Step 5: options. "rk" is not an option of getAssertion; uv=true cannot
        // be honoured without built-in UV; up defaults to true.
        let options = request.options.as_ref();
        if options.and_then(|o| o.rk).is_some() {
            return Err(Error::UnsupportedOption);
        }
        if options.and_then(|o| o.uv) == Some(true) {
            return Err(Error::InvalidOption);
        }
        let up = options.and_then(|o| o.up).unwrap_or(true);
        // Step 6: a PIN/UV auth param needs a PIN, and none is set.
        if pin_auth.is_some() {
            return Err(Error::PinNotSet);
        }

        let rp_id_hash = sha256(request.rp_id.as_bytes());

        // Step 7: locate credentials, before asking for presence.
        let allow_list = request.allow_list.as_ref().filter(|l| !l.is_empty());
        let mut found = None;
        let mut slots = SlotList::new();
        match allow_list {
            Some(list) => {
                for descriptor in list {
                    if descriptor.key_type != "public-key" {
                        continue;
                    }
                    if let Some(c) = self
                        .find_credential(&rp_id_hash, descriptor.id)
                        .map_err(store_error)?
                    {
                        found = Some(c);
                        break;
                    }
                }
            }
            None => {
                slots = self.discoverable_slots(&rp_id_hash).map_err(store_error)?;
            }
        }
        if found.is_none() && slots.is_empty() {
            return Err(Error::NoCredentials);
        }

        // Step 9: user presence unless up=false (a silent pre-flight).
        if up && !context.up_granted {
            return Ok(Outcome::NeedsPresence);
        }
        let flags = if up { flags::UP } else { 0 };

        let count = slots.len();
        let first = match found {
            Some(c) => c,
            None => {
                // Most recent first: the list is oldest-first, pop from the end.
                let slot = slots.pop().ok_or(Error::NoCredentials)?;
                self.load_resident(slot, &rp_id_hash)
                    .map_err(store_error)?
                    .ok_or(Error::NoCredentials)?
            }
        };
        let number_of_credentials = (count > 1).then_some(count as u32);
        self.assertion_response(
            &first,
            &rp_id_hash,
            &cdh,
            flags,
            number_of_credentials,
            response,
        )?;

        if !slots.is_empty() {
            self.pending = Some(PendingAssertions {
                channel: context.channel,
                last_ms: context.now_ms,
                rp_id_hash,
                client_data_hash: cdh,
                flags,
                remaining: slots,
            });
        }
        Ok(Outcome::Response)
    }

    /// Serves the next credential of a discoverable getAssertion, on the same
    /// channel and within 30 s of the previous response.
    pub(crate) fn get_next_assertion(
        &mut self,
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        let Some(mut pending) = self.pending.take() else {
            return Err(Error::NotAllowed);
        };
        if pending.channel != context.channel
            || context.now_ms.saturating_sub(pending.last_ms) > NEXT_ASSERTION_TIMEOUT_MS
        {
            return Err(Error::NotAllowed);
        }
        let Some(slot) = pending.remaining.pop() else {
            return Err(Error::NotAllowed);
        };
        let credential = self
            .load_resident(slot, &pending.rp_id_hash)
            .map_err(store_error)?
            .ok_or(Error::NoCredentials)?;
        self.assertion_response(
            &credential,
            &pending.rp_id_hash,
            &pending.client_data_hash,
            pending.flags,
            None,
            response,
        )?;
        if !pending.remaining.is_empty() {
            pending.last_ms = context.now_ms;
            self.pending = Some(pending);
        }
        Ok(Outcome::Response)
    }

    /// The discoverable credentials of an RP, oldest first.
    fn discoverable_slots(&mut self, rp_id_hash: &[u8; 32]) -> Result<SlotList, StoreError> {
        let mut found: heapless::Vec<(u32, u16), { MAX_RESIDENT_CREDENTIALS as usize }> =
            heapless::Vec::new();
        for slot in 0..MAX_RESIDENT_CREDENTIALS {
            if !self.slots.is_used(slot) {
                continue;
            }
            match store::load_credential(&mut self.platform.storage, slot) {
                Ok(Some(rec)) if rec.rp_id_hash == *rp_id_hash => {
                    found.push((rec.created, slot)).ok();
                }
                Ok(_) | Err(StoreError::Corrupt) => {}
                Err(e) => return Err(e),
            }
        }
        found.sort_unstable();
        Ok(found.iter().map(|&(_, slot)| slot).collect())
    }

    /// Increments and persists the counter, then signs `authData || clientDataHash`
    /// and writes the response. Without UV only the user handle is returned
    /// (no name or display name; CTAP 2.1 §6.2.2).
    fn assertion_response(
        &mut self,
        credential: &FoundCredential,
        rp_id_hash: &[u8; 32],
        cdh: &[u8; 32],
        flags: u8,
        number_of_credentials: Option<u32>,
        response: &mut Message,
    ) -> HandlerResult {
        let resident_slot = credential.resident.as_ref().map(|(slot, _)| *slot);
        let sign_count = self.next_sign_count(resident_slot).map_err(store_error)?;
        let auth_data = auth_data(rp_id_hash, flags, sign_count, None)?;
        let signature = credential
            .key
            .sign(&[&auth_data, cdh])
            .map_err(crypto_error)?;

        let mut out = Response::empty();
        out.credential = PublicKeyCredentialDescriptor {
            id: Bytes::try_from(credential.id.as_slice()).map_err(|_| Error::Other)?,
            key_type: "public-key".try_into().map_err(|_| Error::Other)?,
        };
        out.auth_data = auth_data;
        out.signature = Bytes::try_from(signature.as_slice()).map_err(|_| Error::Other)?;
        out.user = match &credential.resident {
            Some((_, user_id)) => Some(PublicKeyCredentialUserEntity::from(
                Bytes::try_from(user_id.as_slice()).map_err(|_| Error::Other)?,
            )),
            None => None,
        };
        out.number_of_credentials = number_of_credentials;
        write_cbor(response, &out)
    }
}
