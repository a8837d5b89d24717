//! authenticatorCredentialManagement (0x0A, and the 0x41 preview alias),
//! CTAP 2.1 §6.8.
//!
//! Every subcommand but the two `…GetNext…` ones carries a pinUvAuthParam over
//! `subCommand ‖ subCommandParams`, where `subCommandParams` are the CBOR bytes
//! exactly as received ([`validate::raw_value`]), verified against a token with
//! the `cm` permission. The token's permissions RP ID must be absent for
//! getCredsMetadata and enumerateRPsBegin and must match the credential's RP
//! for the others.
//!
//! The enumeration state lives in [`CredMgmtState`]: bound to the CTAPHID
//! channel that began it, ended by any other command (the dispatcher drops it),
//! by any other credentialManagement subcommand and by a transport reset.

use ctap_types::ctap2::credential_management::{
    CredentialProtectionPolicy, Request, Response, Subcommand,
};
use ctap_types::ctap2::Error;
use ctap_types::webauthn::{
    PublicKeyCredentialDescriptor, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use ctap_types::{ByteArray, Bytes};
use rand_core::{CryptoRng, RngCore};

use super::{deserialize, store_error, validate, write_cbor, write_ok, HandlerResult};
use crate::app::{CallContext, Message};
use crate::authenticator::Authenticator;
use crate::credential::CredentialRecord;
use crate::pin::{permission, RpCheck};
use crate::platform::{Storage, UserPresence};
use crate::store::{self, SlotUse, StoreError, MAX_RESIDENT_CREDENTIALS};

#[cfg(test)]
mod tests;

/// Slots still to report, the next one last.
type SlotList = heapless::Vec<u16, { MAX_RESIDENT_CREDENTIALS as usize }>;

/// What the `…GetNext…` subcommands continue.
#[derive(Debug)]
pub(crate) enum Enumeration {
    /// enumerateRPsGetNextRP: one slot per RP still to report.
    Rps(SlotList),
    /// enumerateCredentialsGetNextCredential: the RP's remaining credentials.
    Credentials(SlotList),
}

/// Enumeration state between a `…Begin` and its `…GetNext…` subcommands.
#[derive(Debug)]
pub(crate) struct CredMgmtState {
    /// The CTAPHID channel that began the enumeration.
    pub(crate) channel: u32,
    /// What remains to report.
    pub(crate) remaining: Enumeration,
}

/// The credProtect level of a record as credentialManagement reports it: a
/// credential created without the extension behaves as level 1.
fn cred_protect_policy(level: u8) -> CredentialProtectionPolicy {
    match level {
        2 => CredentialProtectionPolicy::OptionalWithCredentialIdList,
        3 => CredentialProtectionPolicy::Required,
        _ => CredentialProtectionPolicy::Optional,
    }
}

fn bytes<const N: usize>(data: &[u8]) -> Result<Bytes<N>, Error> {
    Bytes::try_from(data).map_err(|_| Error::Other)
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Handles one authenticatorCredentialManagement request.
    pub(crate) fn credential_management(
        &mut self,
        body: &[u8],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        // Any subcommand ends an enumeration, except the one continuing it.
        let state = self.cred_mgmt.take();
        let sub_command = match validate::uint_value(body, 0x01)? {
            None => return Err(Error::MissingParameter),
            Some(value @ 0x01..=0x07) => value as u8,
            Some(_) => return Err(Error::InvalidSubcommand),
        };
        let raw_params = validate::raw_value(body, 0x02)?.unwrap_or(&[]);
        let request: Request<'_> = deserialize(body)?;
        let auth = Auth {
            message: [&[sub_command][..], raw_params],
            pin_auth: request.pin_auth.map(|b| &b[..]),
            protocol: request.pin_protocol,
            now_ms: context.now_ms,
        };
        match request.sub_command {
            Subcommand::GetCredsMetadata => {
                auth.check(self, RpCheck::NoneAllowed)?;
                let used = self.table.discoverable();
                let mut out = Response::default();
                out.existing_resident_credentials_count = Some(u32::from(used));
                out.max_possible_remaining_residential_credentials_count =
                    Some(u32::from(self.remaining_discoverable_credentials()));
                write_cbor(response, &out)
            }
            Subcommand::EnumerateRpsBegin => {
                auth.check(self, RpCheck::NoneAllowed)?;
                self.enumerate_rps_begin(context, response)
            }
            Subcommand::EnumerateRpsGetNextRp => match state {
                Some(CredMgmtState {
                    channel,
                    remaining: Enumeration::Rps(slots),
                }) if channel == context.channel => self.next_rp(channel, slots, None, response),
                _ => Err(Error::NotAllowed),
            },
            Subcommand::EnumerateCredentialsBegin => {
                let rp_id_hash = request
                    .sub_command_params
                    .as_ref()
                    .and_then(|p| p.rp_id_hash)
                    .ok_or(Error::MissingParameter)?;
                let rp_id_hash: [u8; 32] = **rp_id_hash;
                auth.check(self, RpCheck::MatchHash(&rp_id_hash))?;
                self.enumerate_credentials_begin(&rp_id_hash, context, response)
            }
            Subcommand::EnumerateCredentialsGetNextCredential => match state {
                Some(CredMgmtState {
                    channel,
                    remaining: Enumeration::Credentials(slots),
                }) if channel == context.channel => {
                    self.next_credential(channel, slots, None, response)
                }
                _ => Err(Error::NotAllowed),
            },
            Subcommand::DeleteCredential => {
                let id = request
                    .sub_command_params
                    .as_ref()
                    .and_then(|p| p.credential_id.as_ref())
                    .ok_or(Error::MissingParameter)?;
                let (slot, _) = auth.locate(self, id.id)?;
                self.remove_record(slot).map_err(store_error)?;
                write_ok(response)
            }
            Subcommand::UpdateUserInformation => {
                let params = request
                    .sub_command_params
                    .as_ref()
                    .ok_or(Error::MissingParameter)?;
                let (Some(id), Some(user)) = (params.credential_id.as_ref(), params.user.as_ref())
                else {
                    return Err(Error::MissingParameter);
                };
                let (slot, mut record) = auth.locate(self, id.id)?;
                if record.user_id.as_slice() != &user.id[..] {
                    return Err(Error::InvalidParameter);
                }
                // Absent or empty fields are removed.
                record.user_name = user.name.clone().filter(|s| !s.is_empty());
                record.display_name = user.display_name.clone().filter(|s| !s.is_empty());
                // Keep the counter's reservation, and the live counter.
                record.sign_count = self.table.mark(slot);
                record.epoch = Some(self.epoch);
                let live = self.table.count(slot);
                self.put_record(slot, &record, live).map_err(store_error)?;
                write_ok(response)
            }
            _ => Err(Error::InvalidSubcommand),
        }
    }

    /// The resident credential with this ID, with its slot.
    fn find_resident_by_id(
        &mut self,
        id: &[u8],
    ) -> Result<Option<(u16, CredentialRecord)>, StoreError> {
        let candidates: SlotList = self
            .table
            .slots_of(SlotUse::Discoverable)
            .filter(|&s| self.table.id_tag(s) == store::tag(id))
            .take(MAX_RESIDENT_CREDENTIALS as usize)
            .collect();
        for slot in candidates {
            match store::load_credential(&mut self.platform.storage, slot) {
                Ok(Some(rec)) if rec.credential_id.as_slice() == id => {
                    return Ok(Some((slot, rec)));
                }
                Ok(_) | Err(StoreError::Corrupt) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The discoverable credential in `slot`, if it parses (its counter as
    /// it is now).
    fn listable(&mut self, slot: u16) -> Result<Option<CredentialRecord>, StoreError> {
        if self.table.use_of(slot) != SlotUse::Discoverable {
            return Ok(None);
        }
        match store::load_credential(&mut self.platform.storage, slot) {
            Ok(Some(mut rec)) => {
                rec.sign_count = self.table.count(slot);
                Ok(Some(rec))
            }
            Ok(None) | Err(StoreError::Corrupt) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn enumerate_rps_begin(
        &mut self,
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        // One representative slot per RP, first appearance in slot order.
        let mut hashes: heapless::Vec<[u8; 32], { MAX_RESIDENT_CREDENTIALS as usize }> =
            heapless::Vec::new();
        let mut firsts = SlotList::new();
        for slot in self.discoverable_slot_list() {
            let Some(rec) = self.listable(slot).map_err(store_error)? else {
                continue;
            };
            if !hashes.contains(&rec.rp_id_hash) {
                hashes.push(rec.rp_id_hash).map_err(|_| Error::Other)?;
                firsts.push(slot).map_err(|_| Error::Other)?;
            }
        }
        if firsts.is_empty() {
            return Err(Error::NoCredentials);
        }
        let total = firsts.len() as u32;
        firsts.reverse();
        self.next_rp(context.channel, firsts, Some(total), response)
    }

    /// The slots of the discoverable credentials, in slot order.
    fn discoverable_slot_list(&self) -> SlotList {
        self.table
            .slots_of(SlotUse::Discoverable)
            .take(MAX_RESIDENT_CREDENTIALS as usize)
            .collect()
    }

    /// Takes the last slot of an enumeration and loads its credential.
    fn pop_listable(&mut self, slots: &mut SlotList) -> Result<CredentialRecord, Error> {
        let slot = slots.pop().ok_or(Error::NotAllowed)?;
        self.listable(slot)
            .map_err(store_error)?
            .ok_or(Error::NoCredentials)
    }

    /// Reports the RP of the last slot in `slots`; keeps the rest for GetNextRP.
    fn next_rp(
        &mut self,
        channel: u32,
        mut slots: SlotList,
        total: Option<u32>,
        response: &mut Message,
    ) -> HandlerResult {
        let rec = self.pop_listable(&mut slots)?;
        let mut out = Response::default();
        out.rp = Some(PublicKeyCredentialRpEntity {
            id: rec.rp_id.clone(),
            name: None,
            icon: None,
        });
        out.rp_id_hash = Some(ByteArray::new(rec.rp_id_hash));
        out.total_rps = total;
        self.respond_and_keep(channel, &out, Enumeration::Rps(slots), response)
    }

    fn enumerate_credentials_begin(
        &mut self,
        rp_id_hash: &[u8; 32],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        let mut found: heapless::Vec<(u32, u16), { MAX_RESIDENT_CREDENTIALS as usize }> =
            heapless::Vec::new();
        for slot in self.discoverable_slot_list() {
            if let Some(rec) = self.listable(slot).map_err(store_error)? {
                if rec.rp_id_hash == *rp_id_hash {
                    found.push((rec.created, slot)).map_err(|_| Error::Other)?;
                }
            }
        }
        if found.is_empty() {
            return Err(Error::NoCredentials);
        }
        // Newest first, like a discoverable getAssertion: pop from the end.
        found.sort_unstable();
        let total = found.len() as u32;
        let slots: SlotList = found.iter().map(|&(_, slot)| slot).collect();
        self.next_credential(context.channel, slots, Some(total), response)
    }

    /// Reports the credential in the last slot of `slots`; keeps the rest for
    /// GetNextCredential.
    fn next_credential(
        &mut self,
        channel: u32,
        mut slots: SlotList,
        total: Option<u32>,
        response: &mut Message,
    ) -> HandlerResult {
        let slot = slots.last().copied().ok_or(Error::NotAllowed)?;
        let rec = self.pop_listable(&mut slots)?;
        let (key, _) = self.key_of(slot, &rec).ok_or(Error::Other)?;
        let cose = key.cose_public_key().map_err(super::crypto_error)?;
        let public_key: cosey::PublicKey =
            cbor_smol::cbor_deserialize(&cose).map_err(|_| Error::Other)?;
        let mut out = Response::default();
        out.user = Some(PublicKeyCredentialUserEntity {
            id: bytes(&rec.user_id)?,
            icon: None,
            name: rec.user_name.clone(),
            display_name: rec.display_name.clone(),
        });
        out.credential_id = Some(PublicKeyCredentialDescriptor {
            id: bytes(&rec.credential_id)?,
            key_type: "public-key".try_into().map_err(|_| Error::Other)?,
        });
        out.public_key = Some(public_key);
        out.total_credentials = total;
        out.cred_protect = Some(cred_protect_policy(rec.cred_protect));
        self.respond_and_keep(channel, &out, Enumeration::Credentials(slots), response)
    }

    /// Writes `out`, and keeps what `remaining` still holds for the
    /// enumeration's next subcommand on `channel`.
    fn respond_and_keep(
        &mut self,
        channel: u32,
        out: &Response,
        remaining: Enumeration,
        response: &mut Message,
    ) -> HandlerResult {
        write_cbor(response, out)?;
        let (Enumeration::Rps(slots) | Enumeration::Credentials(slots)) = &remaining;
        if !slots.is_empty() {
            self.cred_mgmt = Some(CredMgmtState { channel, remaining });
        }
        Ok(crate::app::Outcome::Response)
    }
}

/// The authentication parts of a request.
struct Auth<'a> {
    message: [&'a [u8]; 2],
    pin_auth: Option<&'a [u8]>,
    protocol: Option<u8>,
    now_ms: u64,
}

impl Auth<'_> {
    /// PUAT_REQUIRED without a pinUvAuthParam; otherwise the token must verify
    /// with the `cm` permission and `rp`.
    fn check<S: Storage, U: UserPresence, R: RngCore + CryptoRng>(
        &self,
        auth: &mut Authenticator<S, U, R>,
        rp: RpCheck<'_>,
    ) -> Result<(), Error> {
        let param = self.pin_auth.ok_or(Error::PinRequired)?;
        auth.pin.verify_pin_uv_auth_param(
            self.protocol,
            param,
            &self.message,
            permission::CM,
            rp,
            self.now_ms,
        )
    }

    /// deleteCredential / updateUserInformation: authenticates, then finds the
    /// credential (NO_CREDENTIALS) and checks the token's RP against the
    /// credential's (PIN_AUTH_INVALID).
    fn locate<S: Storage, U: UserPresence, R: RngCore + CryptoRng>(
        &self,
        auth: &mut Authenticator<S, U, R>,
        id: &[u8],
    ) -> Result<(u16, CredentialRecord), Error> {
        self.check(auth, RpCheck::Ignore)?;
        let (slot, record) = auth
            .find_resident_by_id(id)
            .map_err(store_error)?
            .ok_or(Error::NoCredentials)?;
        self.check(auth, RpCheck::MatchHash(&record.rp_id_hash))?;
        Ok((slot, record))
    }
}
