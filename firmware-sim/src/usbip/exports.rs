//! The keys a USB/IP server offers, by busid; changes while the server runs
//! (keys added and removed at run time).
//!
//! Slot `i` (0-based) is busid `B-D` with bus `B = 1 + i / 127` and device
//! `D = 1 + i % 127`, as on real hubs (at most 127 devices per bus): keys
//! 1..=127 are `1-1` … `1-127`, key 128 is `2-1`. A new key takes the lowest
//! free slot, so `usbip list -r` shows it at once.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::mpsc;

use super::proto::DeviceInfo;
use crate::key::task::{KeyMsg, KeyShared};

/// Devices per bus.
pub const DEVICES_PER_BUS: usize = 127;
/// The most keys one server offers.
pub const MAX_EXPORTS: usize = 8 * DEVICES_PER_BUS;

/// A slot's bus number, device number and busid.
pub fn slot_address(index: usize) -> (u32, u32, String) {
    let bus = u32::try_from(1 + index / DEVICES_PER_BUS).unwrap_or(u32::MAX);
    let dev = u32::try_from(1 + index % DEVICES_PER_BUS).unwrap_or(u32::MAX);
    (bus, dev, format!("{bus}-{dev}"))
}

/// One offered key.
#[derive(Clone, Debug)]
pub struct Exported {
    /// Its device-list record.
    pub info: DeviceInfo,
    /// Its mailbox.
    pub tx: mpsc::UnboundedSender<KeyMsg>,
    /// Its power and attach state.
    pub shared: Arc<KeyShared>,
}

/// The offered keys (see the module documentation). Shared between the
/// server and whoever adds keys (the fleet).
#[derive(Debug, Default)]
pub struct Exports {
    /// Slot → key; `None` while reserved for a key being built.
    slots: RwLock<BTreeMap<usize, Option<Exported>>>,
}

/// Why a slot could not be reserved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlotError {
    /// Every slot is taken.
    #[error("the USB/IP server already offers {MAX_EXPORTS} keys")]
    Full,
    /// The slot asked for is taken.
    #[error("busid {0} is already in use")]
    Taken(String),
}

impl Exports {
    /// An empty table.
    pub fn new() -> Arc<Self> {
        Arc::new(Exports::default())
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<usize, Option<Exported>>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<usize, Option<Exported>>> {
        self.slots.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves slot `wanted`, or the lowest free one.
    pub fn reserve(&self, wanted: Option<usize>) -> Result<usize, SlotError> {
        let mut slots = self.write();
        let index = match wanted {
            Some(index) if index >= MAX_EXPORTS => return Err(SlotError::Full),
            Some(index) if slots.contains_key(&index) => {
                return Err(SlotError::Taken(slot_address(index).2))
            }
            Some(index) => index,
            None => (0..MAX_EXPORTS)
                .find(|i| !slots.contains_key(i))
                .ok_or(SlotError::Full)?,
        };
        slots.insert(index, None);
        Ok(index)
    }

    /// Offers `key` in its reserved slot.
    pub fn publish(&self, index: usize, key: Exported) {
        self.write().insert(index, Some(key));
    }

    /// Withdraws (or unreserves) slot `index`; returns what it offered.
    pub fn withdraw(&self, index: usize) -> Option<Exported> {
        self.write().remove(&index).flatten()
    }

    /// The key offered under `busid`.
    pub fn find(&self, busid: &str) -> Option<Exported> {
        self.read()
            .values()
            .flatten()
            .find(|k| k.info.busid == busid)
            .cloned()
    }

    /// Every offered key, in slot order.
    pub fn all(&self) -> Vec<Exported> {
        self.read().values().flatten().cloned().collect()
    }

    /// Device-list records of every offered key, in slot order.
    pub fn infos(&self) -> Vec<DeviceInfo> {
        self.read()
            .values()
            .flatten()
            .map(|k| k.info.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_busids_127_per_bus() {
        assert_eq!(slot_address(0), (1, 1, "1-1".into()));
        assert_eq!(slot_address(126), (1, 127, "1-127".into()));
        assert_eq!(slot_address(127), (2, 1, "2-1".into()));
        assert_eq!(slot_address(255), (3, 2, "3-2".into()));
    }

    #[test]
    fn lowest_free_slot_and_explicit_slots() {
        let exports = Exports::new();
        assert_eq!(exports.reserve(None), Ok(0));
        assert_eq!(exports.reserve(Some(2)), Ok(2));
        assert_eq!(
            exports.reserve(Some(2)),
            Err(SlotError::Taken("1-3".into()))
        );
        assert_eq!(exports.reserve(None), Ok(1));
        assert_eq!(exports.reserve(None), Ok(3));
        assert!(exports.withdraw(1).is_none());
        assert_eq!(exports.reserve(None), Ok(1));
        assert_eq!(exports.reserve(Some(MAX_EXPORTS)), Err(SlotError::Full));
        // Reserved slots are not listed.
        assert!(exports.infos().is_empty());
    }
}
