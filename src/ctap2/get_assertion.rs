//! authenticatorGetAssertion (0x02) and authenticatorGetNextAssertion (0x08),
//! CTAP 2.1 §6.2 and §6.3.

use ctap_types::ctap2::get_assertion::Request;
use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};

use super::cbor_out::CborWriter;
use super::extensions::{cred_protect_allows, AssertionExtensions};
use super::{
    auth_data, client_data_hash, crypto_error, deserialize, flags, store_error, validate,
    HandlerResult, NEXT_ASSERTION_TIMEOUT_MS,
};
use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::{Authenticator, FoundCredential, LookupCache, PendingAssertions};
use crate::crypto::sha256;
use crate::pin::permission;
use crate::platform::{Storage, UserPresence};
use crate::store::{self, SlotUse, StoreError, MAX_RESIDENT_CREDENTIALS};

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
        let profile = self.config.profile;
        profile.check_get_assertion(&request)?;

        // Steps 1–2: pinUvAuthParam probes and protocol checks.
        let pin_auth = request.pin_auth.map(|b| &b[..]);
        if let Some(outcome) = self.pin_uv_auth_precheck(pin_auth, request.pin_protocol, context)? {
            return Ok(outcome);
        }
        // Step 4: options. "rk" is not an option of getAssertion; up defaults
        // to true.
        let options = request.options.as_ref();
        if options.and_then(|o| o.rk).is_some() {
            return Err(Error::UnsupportedOption);
        }
        let up = options.and_then(|o| o.up).unwrap_or(true);
        // Steps 4 ("uv") and 5 (alwaysUv).
        let builtin_uv =
            self.get_assertion_uv_policy(pin_auth.is_some(), options.and_then(|o| o.uv), up)?;
        // Step 6: the pinUvAuthToken (ga permission, bound to the RP ID) or
        // built-in UV gives UV; built-in UV also evidences presence.
        let verification = self.verify_pin_uv_auth(
            pin_auth,
            request.pin_protocol,
            &cdh,
            permission::GA,
            request.rp_id,
            builtin_uv,
            context.now_ms,
        )?;
        let uv = verification.uv;

        // Extensions (hmac-secret is verified and decrypted here, before presence).
        let extensions = AssertionExtensions::parse(
            profile
                .get_assertion_extensions(request.extensions.as_ref())
                .as_ref(),
            &self.pin,
            profile.pin_protocols,
            up,
        )?;

        let rp_id_hash = sha256(request.rp_id.as_bytes());

        // Step 7: locate credentials, before asking for presence; credProtect
        // hides some without UV.
        let allow_list = request.allow_list.as_ref().filter(|l| !l.is_empty());
        let mut found = None;
        let mut found_at = 0;
        let mut slots = SlotList::new();
        match allow_list {
            Some(list) => {
                // The run after presence takes what the run before found (the
                // same request; nothing changed in between, or the cache
                // would be gone).
                let cached = self.lookup_cache.take().filter(|c| {
                    c.rp_id_hash == rp_id_hash
                        && list.get(c.index).is_some_and(|d| {
                            d.key_type == "public-key" && d.id == c.found.id.as_slice()
                        })
                        && cred_protect_allows(c.found.flags.cred_protect(), uv, true)
                });
                if let Some(c) = cached {
                    found_at = c.index;
                    found = Some(c.found);
                }
                for (index, descriptor) in list.iter().enumerate() {
                    if found.is_some() {
                        break;
                    }
                    if descriptor.key_type != "public-key" {
                        continue;
                    }
                    if let Some(c) = self
                        .find_credential(&rp_id_hash, descriptor.id)
                        .map_err(store_error)?
                        .filter(|c| cred_protect_allows(c.flags.cred_protect(), uv, true))
                    {
                        found = Some(c);
                        found_at = index;
                    }
                }
            }
            None => {
                slots = self
                    .discoverable_slots(&rp_id_hash, uv)
                    .map_err(store_error)?;
            }
        }
        if found.is_none() && slots.is_empty() {
            return Err(Error::NoCredentials);
        }

        // Step 9: user presence unless up=false (a silent pre-flight); it uses
        // up the mc/ga permissions and flags of a token this request used.
        if up && !context.up_granted && !verification.up {
            self.lookup_cache = found.map(|found| LookupCache {
                rp_id_hash,
                index: found_at,
                found,
            });
            return Ok(Outcome::NeedsPresence);
        }
        if up {
            self.after_user_presence(&verification);
        }
        let flags = if up { flags::UP } else { 0 } | if uv { flags::UV } else { 0 };

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
            &extensions,
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
                extensions,
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
            &pending.extensions,
            response,
        )?;
        if !pending.remaining.is_empty() {
            pending.last_ms = context.now_ms;
            self.pending = Some(pending);
        }
        Ok(Outcome::Response)
    }

    /// The discoverable credentials of an RP that credProtect lets through
    /// without an allowList (given `uv`), oldest first.
    fn discoverable_slots(
        &mut self,
        rp_id_hash: &[u8; 32],
        uv: bool,
    ) -> Result<SlotList, StoreError> {
        let mut found: heapless::Vec<(u32, u16), { MAX_RESIDENT_CREDENTIALS as usize }> =
            heapless::Vec::new();
        let candidates: SlotList = self
            .table
            .rp_candidates(rp_id_hash, &[SlotUse::Discoverable])
            .take(MAX_RESIDENT_CREDENTIALS as usize)
            .collect();
        for slot in candidates {
            match store::load_credential(&mut self.platform.storage, slot) {
                Ok(Some(rec))
                    if rec.rp_id_hash == *rp_id_hash
                        && cred_protect_allows(rec.cred_protect, uv, false) =>
                {
                    found.push((rec.created, slot)).ok();
                }
                Ok(_) | Err(StoreError::Corrupt) => {}
                Err(e) => return Err(e),
            }
        }
        found.sort_unstable();
        Ok(found.iter().map(|&(_, slot)| slot).collect())
    }

    /// Writes the user of the discoverable credential in `slot`: the handle,
    /// and with `identifiable` also the stored name and display name
    /// (`{"id"[, "name"][, "displayName"]}`, canonical order).
    fn write_user_entity(
        &mut self,
        w: &mut CborWriter<'_>,
        slot: u16,
        user_id: &[u8],
        identifiable: bool,
    ) -> Result<(), Error> {
        let record = if identifiable {
            store::load_credential(&mut self.platform.storage, slot).map_err(store_error)?
        } else {
            None
        };
        let name = record.as_ref().and_then(|r| r.user_name.as_deref());
        let display_name = record.as_ref().and_then(|r| r.display_name.as_deref());
        w.map(1 + usize::from(name.is_some()) + usize::from(display_name.is_some()))?;
        w.text("id")?;
        w.bytes(user_id)?;
        if let Some(name) = name {
            w.text("name")?;
            w.text(name)?;
        }
        if let Some(display_name) = display_name {
            w.text("displayName")?;
            w.text(display_name)?;
        }
        Ok(())
    }

    /// Increments and persists the counter, then signs `authData || clientDataHash`
    /// and writes the response straight into `response`. A discoverable
    /// credential's user comes with its name and display name only when the
    /// user was verified (the UV flag); otherwise only the user handle (CTAP
    /// 2.1 §6.2.2: no user identifiable information without user verification).
    // The request context travels as plain arguments (all borrowed from the
    // caller or from PendingAssertions).
    #[allow(clippy::too_many_arguments)]
    fn assertion_response(
        &mut self,
        credential: &FoundCredential,
        rp_id_hash: &[u8; 32],
        cdh: &[u8; 32],
        flags: u8,
        number_of_credentials: Option<u32>,
        extensions: &AssertionExtensions,
        response: &mut Message,
    ) -> HandlerResult {
        let sign_count = self.next_sign_count(credential.slot).map_err(store_error)?;
        let mut all_flags = flags;
        if credential.backup_eligible {
            all_flags |= flags::BE;
        }
        if credential.backup_state {
            all_flags |= flags::BS;
        }
        let mut auth_data = auth_data(
            rp_id_hash,
            self.overrides.flags(all_flags),
            sign_count,
            None,
        )?;
        extensions.append_outputs(
            &mut auth_data,
            credential,
            &self.secrets,
            flags & flags::UV != 0,
            &mut self.platform.rng,
        )?;
        let mut signature = credential
            .key
            .sign(&[&auth_data, cdh])
            .map_err(crypto_error)?;
        self.overrides.signature(&mut signature);
        let large_blob_key = extensions.large_blob_key(credential, &self.secrets);

        // {1: credential, 2: authData, 3: signature[, 4: user]
        //  [, 5: numberOfCredentials][, 7: largeBlobKey]}
        let mut w = CborWriter::response(response)?;
        w.map(
            3 + usize::from(credential.resident.is_some())
                + usize::from(number_of_credentials.is_some())
                + usize::from(large_blob_key.is_some()),
        )?;
        w.int(1)?;
        w.map(2)?;
        w.text("id")?;
        w.bytes(&credential.id)?;
        w.text("type")?;
        w.text("public-key")?;
        w.int(2)?;
        w.bytes(&auth_data)?;
        w.int(3)?;
        w.bytes(&signature)?;
        if let Some((slot, user_id)) = &credential.resident {
            w.int(4)?;
            self.write_user_entity(&mut w, *slot, user_id, flags & flags::UV != 0)?;
        }
        if let Some(count) = number_of_credentials {
            w.int(5)?;
            w.int(count.into())?;
        }
        if let Some(large_blob_key) = &large_blob_key {
            w.int(7)?;
            w.bytes(large_blob_key.as_slice())?;
        }
        Ok(Outcome::Response)
    }
}
