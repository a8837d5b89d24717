//! Finding credentials: by a presented ID, by slot, and writing records.

use rand_core::{CryptoRng, RngCore};

use super::{Authenticator, FoundCredential};
use crate::credential::{self, sealed, CredentialKey, CredentialRecord, RecordKind};
use crate::platform::{Storage, UserPresence};
use crate::store::{self, SlotUse, StoreError};

/// Slot uses whose records hold a sealed (imported) key.
const SEALED: [SlotUse; 2] = [SlotUse::Imported, SlotUse::Discoverable];
/// Slot uses that track a wrapped non-discoverable ID.
const TRACKED: [SlotUse; 2] = [SlotUse::Tracked, SlotUse::Tombstone];

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Finds a credential of ours by ID for `rp_id_hash`. `Ok(None)` for IDs
    /// that are not ours (foreign, forged, other RP, deleted or overwritten).
    pub(crate) fn find_credential(
        &mut self,
        rp_id_hash: &[u8; 32],
        id: &[u8],
    ) -> Result<Option<FoundCredential>, StoreError> {
        let Ok(id_vec) = heapless::Vec::<u8, 255>::from_slice(id) else {
            return Ok(None);
        };
        let Ok(unwrapped) = credential::unwrap(&self.wrap_key, rp_id_hash, id) else {
            return self.find_imported(rp_id_hash, id);
        };
        if let Some(slot) = unwrapped.slot {
            // Discoverable: only while its slot holds exactly this ID.
            if self.table.use_of(slot) != SlotUse::Discoverable {
                return Ok(None);
            }
            return Ok(self
                .record_matching(slot, rp_id_hash, id)?
                .map(|rec| found(unwrapped.key, unwrapped.flags, Some(slot), rec)));
        }
        // Non-discoverable: its tracking record, if it still has one.
        let candidates: heapless::Vec<u16, 8> = self
            .table
            .candidates(rp_id_hash, id, &TRACKED)
            .take(8)
            .collect();
        for slot in candidates {
            if let Some(rec) = self.record_matching(slot, rp_id_hash, id)? {
                if self.table.use_of(slot) == SlotUse::Tombstone {
                    return Ok(None);
                }
                return Ok(Some(found(unwrapped.key, unwrapped.flags, Some(slot), rec)));
            }
        }
        let flags = unwrapped.flags;
        Ok(Some(FoundCredential {
            key: unwrapped.key,
            id: id_vec,
            slot: None,
            resident: None,
            flags,
            cred_blob: heapless::Vec::new(),
            backup_eligible: flags.backup_eligible(),
            backup_state: flags.backed_up(),
        }))
    }

    /// An imported credential (its ID is not one we wrapped).
    fn find_imported(
        &mut self,
        rp_id_hash: &[u8; 32],
        id: &[u8],
    ) -> Result<Option<FoundCredential>, StoreError> {
        let candidates: heapless::Vec<u16, 8> = self
            .table
            .candidates(rp_id_hash, id, &SEALED)
            .take(8)
            .collect();
        for slot in candidates {
            let Some(rec) = self.record_matching(slot, rp_id_hash, id)? else {
                continue;
            };
            let Some(sealed_key) = &rec.sealed_key else {
                continue;
            };
            let Ok(key) = sealed::open(&self.import_key, sealed_key, rec.algorithm, rp_id_hash, id)
            else {
                continue;
            };
            let flags = rec.flags;
            return Ok(Some(found(key, flags, Some(slot), rec)));
        }
        Ok(None)
    }

    /// The record in `slot` if it is exactly the credential `id` of `rp_id_hash`.
    fn record_matching(
        &mut self,
        slot: u16,
        rp_id_hash: &[u8; 32],
        id: &[u8],
    ) -> Result<Option<CredentialRecord>, StoreError> {
        match store::load_credential(&mut self.platform.storage, slot) {
            Ok(Some(rec))
                if rec.credential_id.as_slice() == id && rec.rp_id_hash == *rp_id_hash =>
            {
                Ok(Some(rec))
            }
            Ok(_) | Err(StoreError::Corrupt) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Loads the discoverable credential in `slot` if it belongs to `rp_id_hash`.
    pub(crate) fn load_resident(
        &mut self,
        slot: u16,
        rp_id_hash: &[u8; 32],
    ) -> Result<Option<FoundCredential>, StoreError> {
        if self.table.use_of(slot) != SlotUse::Discoverable {
            return Ok(None);
        }
        let rec = match store::load_credential(&mut self.platform.storage, slot) {
            Ok(Some(rec)) if rec.rp_id_hash == *rp_id_hash => rec,
            Ok(_) | Err(StoreError::Corrupt) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(self
            .key_of(slot, &rec)
            .map(|(key, flags)| found(key, flags, Some(slot), rec)))
    }

    /// The private key of the credential in `rec` (stored in `slot`), and its
    /// policy flags: opened from its ID, or from its sealed key.
    pub(crate) fn key_of(
        &self,
        slot: u16,
        rec: &CredentialRecord,
    ) -> Option<(CredentialKey, credential::CredentialFlags)> {
        if let Some(sealed_key) = &rec.sealed_key {
            let key = sealed::open(
                &self.import_key,
                sealed_key,
                rec.algorithm,
                &rec.rp_id_hash,
                &rec.credential_id,
            )
            .ok()?;
            return Some((key, rec.flags));
        }
        let unwrapped =
            credential::unwrap(&self.wrap_key, &rec.rp_id_hash, &rec.credential_id).ok()?;
        let expected = rec.is_discoverable().then_some(slot);
        (unwrapped.slot == expected).then_some((unwrapped.key, unwrapped.flags))
    }

    /// Writes `record` into `slot` and indexes it; its live counter is
    /// `live` (at most the record's counter field, which is its mark).
    pub(crate) fn put_record(
        &mut self,
        slot: u16,
        record: &CredentialRecord,
        live: u32,
    ) -> Result<(), StoreError> {
        store::save_credential(&mut self.platform.storage, slot, record)?;
        self.table.set(slot, store::use_of_record(record), record);
        self.table.set_count(slot, live);
        Ok(())
    }

    /// Tracks a U2F registration (a non-discoverable ES256 credential whose RP
    /// ID is unknown: only the application parameter is). Without any room it
    /// stays untracked and still works.
    pub(crate) fn track_u2f_registration(
        &mut self,
        application: &[u8; 32],
        key_handle: &[u8],
    ) -> Result<(), StoreError> {
        let Some(slot) = self.table.slot_for_new() else {
            return Ok(());
        };
        let record = CredentialRecord {
            kind: RecordKind::NonDiscoverable,
            rp_id_hash: *application,
            rp_id: heapless::String::new(),
            user_id: heapless::Vec::new(),
            user_name: None,
            display_name: None,
            credential_id: heapless::Vec::from_slice(key_handle)
                .map_err(|_| StoreError::Corrupt)?,
            sign_count: super::COUNTER_BLOCK - 1,
            created: self.table.next_created(),
            algorithm: credential::Algorithm::Es256,
            cred_protect: 0,
            flags: credential::CredentialFlags::default(),
            backup_eligible: false,
            backup_state: false,
            cred_blob: heapless::Vec::new(),
            sealed_key: None,
            epoch: Some(self.epoch),
        };
        self.put_record(slot, &record, 0)
    }

    /// Removes the record in `slot`.
    pub(crate) fn remove_record(&mut self, slot: u16) -> Result<(), StoreError> {
        store::remove_credential(&mut self.platform.storage, slot)?;
        self.table.clear(slot, SlotUse::Free);
        Ok(())
    }
}

/// A found credential from its key and record.
fn found(
    key: CredentialKey,
    flags: credential::CredentialFlags,
    slot: Option<u16>,
    rec: CredentialRecord,
) -> FoundCredential {
    let resident = rec
        .is_discoverable()
        .then(|| (slot.unwrap_or_default(), rec.user_id.clone()));
    FoundCredential {
        key,
        id: rec.credential_id,
        slot,
        resident,
        flags,
        cred_blob: rec.cred_blob,
        backup_eligible: rec.backup_eligible,
        backup_state: rec.backup_state,
    }
}
