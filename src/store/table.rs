//! The in-memory index of the credential records: which slot holds what, its
//! creation order, its live and reserved counters, and short tags of its RP
//! and ID so lookups read only the records that can match. Built once at
//! start from the records' headers (no cryptography), kept in step with every
//! write.

use crate::credential::{CredentialRecord, RecordKind};

/// How many credential records the key keeps (slots `0..MAX`): discoverable
/// credentials (at most [`super::MAX_RESIDENT_CREDENTIALS`]), imported
/// non-discoverable ones, and the non-discoverable credentials issued through
/// CTAP, which take what is left (the oldest is forgotten first).
pub const MAX_CREDENTIAL_RECORDS: u16 = 384;
const N: usize = MAX_CREDENTIAL_RECORDS as usize;

/// What a slot holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SlotUse {
    /// Nothing (or a record of an old device secret, free to reuse).
    #[default]
    Free,
    /// A discoverable credential.
    Discoverable,
    /// A non-discoverable credential issued through CTAP (its ID is wrapped),
    /// tracked; may be forgotten to make room.
    Tracked,
    /// An imported non-discoverable credential (its key is in the record).
    Imported,
    /// A deleted non-discoverable CTAP credential, refused while kept.
    Tombstone,
    /// A record that does not parse: kept untouched, never reused.
    Unreadable,
}

/// The index. See the module documentation.
#[derive(Clone, Debug)]
pub struct CredentialTable {
    uses: [SlotUse; N],
    created: [u32; N],
    /// The counter value last issued (or the mark it continues from).
    count: [u32; N],
    /// The durable counter mark of the record.
    mark: [u32; N],
    rp_tag: [u16; N],
    id_tag: [u16; N],
    next_created: u32,
}

impl Default for CredentialTable {
    fn default() -> Self {
        CredentialTable {
            uses: [SlotUse::Free; N],
            created: [0; N],
            count: [0; N],
            mark: [0; N],
            rp_tag: [0; N],
            id_tag: [0; N],
            next_created: 0,
        }
    }
}

/// A 16-bit tag of `bytes` (FNV-1a, folded). Only narrows lookups: every
/// candidate is still compared in full.
pub fn tag(bytes: &[u8]) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h >> 16) ^ h) as u16
}

impl CredentialTable {
    /// What `slot` holds.
    pub fn use_of(&self, slot: u16) -> SlotUse {
        self.uses
            .get(usize::from(slot))
            .copied()
            .unwrap_or_default()
    }

    /// Records `record` as the content of `slot` (with `use_`, which the
    /// caller derives from the record and its key source).
    pub fn set(&mut self, slot: u16, use_: SlotUse, record: &CredentialRecord) {
        let i = usize::from(slot);
        if i >= N {
            return;
        }
        self.uses[i] = use_;
        self.created[i] = record.created;
        self.count[i] = record.sign_count;
        self.mark[i] = record.sign_count;
        self.rp_tag[i] = tag(&record.rp_id_hash);
        self.id_tag[i] = tag(&record.credential_id);
        self.next_created = self.next_created.max(record.created.saturating_add(1));
    }

    /// Marks `slot` free or unreadable.
    pub fn clear(&mut self, slot: u16, use_: SlotUse) {
        if let Some(u) = self.uses.get_mut(usize::from(slot)) {
            *u = use_;
        }
    }

    /// The creation number for the next record.
    pub fn next_created(&self) -> u32 {
        self.next_created
    }

    /// The live counter of `slot`.
    pub fn count(&self, slot: u16) -> u32 {
        self.count
            .get(usize::from(slot))
            .copied()
            .unwrap_or_default()
    }

    /// The durable mark of `slot`.
    pub fn mark(&self, slot: u16) -> u32 {
        self.mark
            .get(usize::from(slot))
            .copied()
            .unwrap_or_default()
    }

    /// Sets the live counter of `slot`.
    pub fn set_count(&mut self, slot: u16, value: u32) {
        if let Some(c) = self.count.get_mut(usize::from(slot)) {
            *c = value;
        }
    }

    /// Sets the durable mark of `slot` (after the record was written).
    pub fn set_mark(&mut self, slot: u16, value: u32) {
        if let Some(m) = self.mark.get_mut(usize::from(slot)) {
            *m = value;
        }
    }

    /// The creation number of `slot`.
    pub fn created(&self, slot: u16) -> u32 {
        self.created
            .get(usize::from(slot))
            .copied()
            .unwrap_or_default()
    }

    /// The ID tag of `slot` (see [`tag`]).
    pub fn id_tag(&self, slot: u16) -> u16 {
        self.id_tag
            .get(usize::from(slot))
            .copied()
            .unwrap_or_default()
    }

    /// How many discoverable credentials there are, counting unreadable
    /// records (each may be one).
    pub fn discoverable(&self) -> u16 {
        self.uses
            .iter()
            .filter(|u| matches!(u, SlotUse::Discoverable | SlotUse::Unreadable))
            .count() as u16
    }

    /// The slots holding `use_`, in slot order.
    pub fn slots_of(&self, use_: SlotUse) -> impl Iterator<Item = u16> + '_ {
        (0..MAX_CREDENTIAL_RECORDS).filter(move |&s| self.use_of(s) == use_)
    }

    /// The slots that may hold a credential of `rp_id_hash` with ID `id`
    /// among `uses`.
    pub fn candidates<'a>(
        &'a self,
        rp_id_hash: &[u8; 32],
        id: &[u8],
        uses: &'a [SlotUse],
    ) -> impl Iterator<Item = u16> + 'a {
        let (rp, id) = (tag(rp_id_hash), tag(id));
        (0..MAX_CREDENTIAL_RECORDS).filter(move |&s| {
            let i = usize::from(s);
            uses.contains(&self.uses[i]) && self.rp_tag[i] == rp && self.id_tag[i] == id
        })
    }

    /// The slots whose RP may be `rp_id_hash` among `uses`.
    pub fn rp_candidates<'a>(
        &'a self,
        rp_id_hash: &[u8; 32],
        uses: &'a [SlotUse],
    ) -> impl Iterator<Item = u16> + 'a {
        let rp = tag(rp_id_hash);
        (0..MAX_CREDENTIAL_RECORDS).filter(move |&s| {
            let i = usize::from(s);
            uses.contains(&self.uses[i]) && self.rp_tag[i] == rp
        })
    }

    /// A slot for a new record: a free one, else the oldest tracked
    /// non-discoverable CTAP credential, else the oldest tombstone. `None`
    /// when every slot holds a discoverable, imported or unreadable record.
    pub fn slot_for_new(&self) -> Option<u16> {
        self.slots_of(SlotUse::Free)
            .next()
            .or_else(|| self.oldest(SlotUse::Tracked))
            .or_else(|| self.oldest(SlotUse::Tombstone))
    }

    fn oldest(&self, use_: SlotUse) -> Option<u16> {
        self.slots_of(use_).min_by_key(|&s| self.created(s))
    }
}

/// The slot use of a parsed record.
pub fn use_of_record(record: &CredentialRecord) -> SlotUse {
    match record.kind {
        RecordKind::Discoverable => SlotUse::Discoverable,
        RecordKind::Tombstone => SlotUse::Tombstone,
        RecordKind::NonDiscoverable if record.sealed_key.is_some() => SlotUse::Imported,
        RecordKind::NonDiscoverable => SlotUse::Tracked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{Algorithm, CredentialFlags};

    fn record(created: u32, kind: RecordKind) -> CredentialRecord {
        CredentialRecord {
            kind,
            rp_id_hash: [1; 32],
            rp_id: heapless::String::new(),
            user_id: heapless::Vec::new(),
            user_name: None,
            display_name: None,
            credential_id: heapless::Vec::from_slice(&created.to_be_bytes()).unwrap(),
            sign_count: created * 10,
            created,
            algorithm: Algorithm::Es256,
            cred_protect: 0,
            flags: CredentialFlags::default(),
            backup_eligible: false,
            backup_state: false,
            cred_blob: heapless::Vec::new(),
            sealed_key: None,
            epoch: None,
        }
    }

    #[test]
    fn new_records_go_to_free_slots_then_replace_the_oldest_tracked() {
        let mut t = CredentialTable::default();
        assert_eq!(t.slot_for_new(), Some(0));
        for slot in 0..MAX_CREDENTIAL_RECORDS {
            let kind = match slot % 3 {
                0 => RecordKind::Discoverable,
                1 => RecordKind::NonDiscoverable,
                _ => RecordKind::Tombstone,
            };
            // Creation order runs backwards through the slots.
            let r = record(1000 - u32::from(slot), kind);
            t.set(slot, use_of_record(&r), &r);
        }
        assert_eq!(t.discoverable(), 128);
        t.clear(0, SlotUse::Unreadable);
        assert_eq!(
            t.discoverable(),
            128,
            "unreadable records count as discoverable"
        );
        assert_eq!(t.next_created(), 1001);
        // The oldest tracked one is the highest slot with slot % 3 == 1.
        assert_eq!(t.slot_for_new(), Some(382));
        for s in t.slots_of(SlotUse::Tracked).collect::<std::vec::Vec<_>>() {
            t.clear(s, SlotUse::Discoverable);
        }
        assert_eq!(t.slot_for_new(), Some(383), "then the oldest tombstone");
        for s in t.slots_of(SlotUse::Tombstone).collect::<std::vec::Vec<_>>() {
            t.clear(s, SlotUse::Unreadable);
        }
        assert_eq!(t.slot_for_new(), None);
    }

    #[test]
    fn candidates_narrow_by_tags() {
        let mut t = CredentialTable::default();
        let a = record(1, RecordKind::NonDiscoverable);
        t.set(5, SlotUse::Tracked, &a);
        let uses = [SlotUse::Tracked];
        let found: std::vec::Vec<u16> = t.candidates(&[1; 32], &a.credential_id, &uses).collect();
        assert_eq!(found, [5]);
        assert_eq!(t.candidates(&[2; 32], &a.credential_id, &uses).count(), 0);
        assert_eq!(t.candidates(&[1; 32], b"other", &uses).count(), 0);
        assert_eq!(
            t.candidates(&[1; 32], &a.credential_id, &[SlotUse::Imported])
                .count(),
            0
        );
        assert_eq!(t.count(5), 10);
        assert_eq!(t.mark(5), 10);
        assert_ne!(tag(b"a"), tag(b"b"));
    }
}
