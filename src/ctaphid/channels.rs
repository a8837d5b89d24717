//! The bounded table of allocated channel ids (CTAP 2.1 §11.2.3).
//!
//! Browsers open a new channel for every ceremony and never release it, so the
//! table is bounded: when it is full, allocating evicts the least recently used
//! channel that the caller does not protect (the one with a transaction open,
//! the lock holder).

use super::{BROADCAST_CID, RESERVED_CID};

/// How many channels can be allocated at once.
pub const MAX_CHANNELS: usize = 16;

/// Spreads consecutive allocation numbers over the id space. Multiplying by an
/// odd constant is a bijection on `u32`, so ids repeat only after 2^32 allocations.
const ID_SPREAD: u32 = 0x9E37_79B1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    cid: u32,
    last_used: u64,
}

/// The allocated channels.
#[derive(Debug, Default)]
pub struct ChannelTable {
    slots: heapless::Vec<Slot, MAX_CHANNELS>,
    allocations: u32,
    uses: u64,
}

/// The result of [`ChannelTable::allocate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The new channel id.
    pub cid: u32,
    /// The channel evicted to make room, if the table was full.
    pub evicted: Option<u32>,
}

impl ChannelTable {
    /// An empty table.
    pub const fn new() -> Self {
        ChannelTable {
            slots: heapless::Vec::new(),
            allocations: 0,
            uses: 0,
        }
    }

    /// Allocates a fresh channel id: never 0, never the broadcast id, never one
    /// in the table. When the table is full the least recently used channel for
    /// which `protected` is false is evicted; `None` if every channel is protected.
    pub fn allocate(&mut self, protected: impl Fn(u32) -> bool) -> Option<Allocation> {
        let evicted = self.make_room(protected)?;
        let cid = self.fresh_id();
        self.insert(cid)?;
        Some(Allocation { cid, evicted })
    }

    /// Takes `cid`, a channel id the host chose, into the table (an `INIT`
    /// that resynchronizes a channel the key does not know: one it evicted,
    /// or one from before a reset), evicting like [`ChannelTable::allocate`];
    /// a channel already allocated is just marked used. `None` for the
    /// reserved and broadcast ids, or if every channel is protected.
    pub fn adopt(&mut self, cid: u32, protected: impl Fn(u32) -> bool) -> Option<Allocation> {
        if cid == RESERVED_CID || cid == BROADCAST_CID {
            return None;
        }
        if self.touch(cid) {
            return Some(Allocation { cid, evicted: None });
        }
        let evicted = self.make_room(protected)?;
        self.insert(cid)?;
        Some(Allocation { cid, evicted })
    }

    /// Frees a slot when the table is full: the least recently used channel
    /// for which `protected` is false goes. `Some(evicted)`, or `None` if
    /// every channel is protected.
    fn make_room(&mut self, protected: impl Fn(u32) -> bool) -> Option<Option<u32>> {
        if !self.slots.is_full() {
            return Some(None);
        }
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| !protected(slot.cid))
            .min_by_key(|(_, slot)| slot.last_used)
            .map(|(index, _)| index)?;
        Some(Some(self.slots.swap_remove(victim).cid))
    }

    fn insert(&mut self, cid: u32) -> Option<()> {
        self.uses = self.uses.wrapping_add(1);
        self.slots
            .push(Slot {
                cid,
                last_used: self.uses,
            })
            .ok()
    }

    fn fresh_id(&mut self) -> u32 {
        // Consecutive allocation numbers map to distinct ids, so at most
        // MAX_CHANNELS + 2 candidates can be rejected before one is free.
        loop {
            self.allocations = self.allocations.wrapping_add(1);
            let candidate = self.allocations.wrapping_mul(ID_SPREAD);
            if candidate != RESERVED_CID && candidate != BROADCAST_CID && !self.contains(candidate)
            {
                return candidate;
            }
        }
    }

    /// Whether `cid` is allocated.
    pub fn contains(&self, cid: u32) -> bool {
        self.slots.iter().any(|slot| slot.cid == cid)
    }

    /// Marks `cid` as just used (for eviction order). Returns whether it is allocated.
    pub fn touch(&mut self, cid: u32) -> bool {
        self.uses = self.uses.wrapping_add(1);
        let uses = self.uses;
        match self.slots.iter_mut().find(|slot| slot.cid == cid) {
            Some(slot) => {
                slot.last_used = uses;
                true
            }
            None => false,
        }
    }

    /// How many channels are allocated.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no channel is allocated.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Forgets every channel (the id sequence continues, so old ids are not reissued soon).
    pub fn clear(&mut self) {
        self.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_distinct_valid_ids() {
        let mut table = ChannelTable::new();
        let mut seen = std::vec::Vec::new();
        for _ in 0..MAX_CHANNELS {
            let allocation = table.allocate(|_| false).unwrap();
            assert_eq!(allocation.evicted, None);
            assert_ne!(allocation.cid, RESERVED_CID);
            assert_ne!(allocation.cid, BROADCAST_CID);
            assert!(!seen.contains(&allocation.cid));
            seen.push(allocation.cid);
        }
        assert_eq!(table.len(), MAX_CHANNELS);
        assert!(seen.iter().all(|&cid| table.contains(cid)));
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_used_unprotected_channel() {
        let mut table = ChannelTable::new();
        let ids: std::vec::Vec<u32> = (0..MAX_CHANNELS)
            .map(|_| table.allocate(|_| false).unwrap().cid)
            .collect();
        assert!(table.touch(ids[0]));
        // ids[1] is now the least recently used, but it is protected.
        let allocation = table.allocate(|cid| cid == ids[1]).unwrap();
        assert_eq!(allocation.evicted, Some(ids[2]));
        assert!(!table.contains(ids[2]));
        assert!(table.contains(ids[1]) && table.contains(allocation.cid));
        assert_eq!(table.len(), MAX_CHANNELS);
        assert_eq!(table.allocate(|_| true), None, "all protected");
    }

    #[test]
    fn ids_skip_the_reserved_values_and_allocated_ones() {
        let mut table = ChannelTable::new();
        // Force the counter to where the next candidates would be 0.
        table.allocations = u32::MAX;
        let cid = table.allocate(|_| false).unwrap().cid;
        assert_ne!(cid, 0);
        for _ in 0..10_000 {
            let cid = table.allocate(|_| false).unwrap().cid;
            assert!(cid != RESERVED_CID && cid != BROADCAST_CID);
        }
        let mut ids: std::vec::Vec<u32> = table.slots.iter().map(|s| s.cid).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), MAX_CHANNELS);
    }

    #[test]
    fn adopting_takes_a_host_chosen_id_and_evicts_like_allocating() {
        let mut table = ChannelTable::new();
        assert_eq!(table.adopt(RESERVED_CID, |_| false), None);
        assert_eq!(table.adopt(BROADCAST_CID, |_| false), None);
        let adopted = table.adopt(0x1234_5678, |_| false).unwrap();
        assert_eq!(
            adopted,
            Allocation {
                cid: 0x1234_5678,
                evicted: None
            }
        );
        assert!(table.contains(0x1234_5678));
        assert_eq!(table.len(), 1);
        // Adopting an allocated channel changes nothing but its use time.
        assert_eq!(table.adopt(0x1234_5678, |_| true).unwrap().evicted, None);
        assert_eq!(table.len(), 1);
        let ids: std::vec::Vec<u32> = (1..MAX_CHANNELS)
            .map(|_| table.allocate(|_| false).unwrap().cid)
            .collect();
        assert_eq!(table.len(), MAX_CHANNELS);
        // Full: the least recently used unprotected channel goes.
        let adopted = table.adopt(0x0BAD_CAFE, |cid| cid == 0x1234_5678).unwrap();
        assert_eq!(adopted.evicted, Some(ids[0]));
        assert!(table.contains(0x0BAD_CAFE) && table.contains(0x1234_5678));
        assert_eq!(table.len(), MAX_CHANNELS);
        assert_eq!(table.adopt(0x0101_0101, |_| true), None, "all protected");
        // A fresh id never repeats an adopted one: force the next candidate
        // to be the adopted id (ID_SPREAD's inverse mod 2^32, by Newton).
        table.clear();
        table.adopt(0x0101_0101, |_| false).unwrap();
        let mut inverse = ID_SPREAD;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u32.wrapping_sub(ID_SPREAD.wrapping_mul(inverse)));
        }
        assert_eq!(ID_SPREAD.wrapping_mul(inverse), 1);
        table.allocations = 0x0101_0101u32.wrapping_mul(inverse).wrapping_sub(1);
        let cid = table.allocate(|_| false).unwrap().cid;
        assert_ne!(cid, 0x0101_0101);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn touch_and_clear() {
        let mut table = ChannelTable::new();
        assert!(table.is_empty());
        assert!(!table.touch(5));
        let cid = table.allocate(|_| false).unwrap().cid;
        assert!(!table.is_empty());
        assert!(table.touch(cid));
        table.clear();
        assert!(table.is_empty());
        assert!(!table.contains(cid));
        assert_ne!(
            table.allocate(|_| false).unwrap().cid,
            cid,
            "ids are not reissued"
        );
    }
}
