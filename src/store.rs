//! The persistent record schema, on top of [`crate::platform::Storage`].
//!
//! Every record starts with a two-byte magic and a version byte; a record with an
//! unknown magic, version or layout is [`StoreError::Corrupt`] and is never
//! silently rewritten. Integers are big-endian.
//!
//! - `RecordKey::Device` (v1, 39 bytes): `"FD" 01 | device secret (32) | global sign counter (4)`.
//! - `RecordKey::Credential(slot)` (v2): `"FC" 02 | created (4) | sign counter (4) | alg (1) |
//!   credProtect (1) | rpIdHash (32) | rpId (u16 len + bytes) | user id (u8 len + bytes) |
//!   user name (u8 present, u8 len + bytes) | display name (same) | credential id (u8 len + bytes) |
//!   credBlob (u8 len + bytes, at most 32)`. Version 1 is the same without the
//!   credBlob; it still loads (with an empty credBlob) and is rewritten as v2 the
//!   next time the record is saved (e.g. on its next signature).
//! - `RecordKey::LargeBlobs`: see [`crate::ctap2::large_blobs`].

use zeroize::Zeroize;

use crate::credential::{Algorithm, ResidentCredential};
use crate::platform::{RecordKey, Storage, StorageError};

/// How many discoverable credentials the key can hold (slots `0..MAX`).
pub const MAX_RESIDENT_CREDENTIALS: u16 = 100;
/// A buffer large enough for any record this schema writes.
pub const RECORD_BUF_LEN: usize = 1024;

const DEVICE_MAGIC: [u8; 2] = *b"FD";
const CREDENTIAL_MAGIC: [u8; 2] = *b"FC";
const DEVICE_VERSION: u8 = 1;
/// The credential record version written.
const CREDENTIAL_VERSION: u8 = 2;
/// The previous version, without credBlob; still read.
const CREDENTIAL_VERSION_1: u8 = 1;
const DEVICE_RECORD_LEN: usize = 3 + 32 + 4;

/// Why a store operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The storage back end failed.
    Storage(StorageError),
    /// A record exists but is not a valid record of a known version.
    Corrupt,
    /// A signature counter reached its maximum and cannot be incremented.
    CounterExhausted,
}

impl From<StorageError> for StoreError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Corrupt => StoreError::Corrupt,
            other => StoreError::Storage(other),
        }
    }
}

/// Device-wide persistent state. The secret is zeroized on drop and hidden from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// The device secret: the root of the credential wrapping key.
    pub secret: [u8; 32],
    /// The signature counter shared by all non-discoverable credentials (and U2F).
    pub global_counter: u32,
}

impl Drop for DeviceState {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl core::fmt::Debug for DeviceState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceState")
            .field("secret", &"..")
            .field("global_counter", &self.global_counter)
            .finish()
    }
}

/// Reads the device record, if there is one.
pub fn load_device<S: Storage>(storage: &mut S) -> Result<Option<DeviceState>, StoreError> {
    let mut buf = [0u8; RECORD_BUF_LEN];
    let Some(len) = read(storage, RecordKey::Device, &mut buf)? else {
        return Ok(None);
    };
    let result = decode_device(buf.get(..len).ok_or(StoreError::Corrupt)?);
    buf.zeroize();
    result.map(Some)
}

fn decode_device(data: &[u8]) -> Result<DeviceState, StoreError> {
    if data.len() != DEVICE_RECORD_LEN
        || data.get(..2) != Some(&DEVICE_MAGIC[..])
        || data.get(2) != Some(&DEVICE_VERSION)
    {
        return Err(StoreError::Corrupt);
    }
    let mut r = Reader { data, pos: 3 };
    let mut secret = [0u8; 32];
    secret.copy_from_slice(r.take(32)?);
    let global_counter = r.u32()?;
    Ok(DeviceState {
        secret,
        global_counter,
    })
}

/// Writes the device record.
pub fn save_device<S: Storage>(storage: &mut S, state: &DeviceState) -> Result<(), StoreError> {
    let mut buf = [0u8; DEVICE_RECORD_LEN];
    buf[..2].copy_from_slice(&DEVICE_MAGIC);
    buf[2] = DEVICE_VERSION;
    buf[3..35].copy_from_slice(&state.secret);
    buf[35..].copy_from_slice(&state.global_counter.to_be_bytes());
    let result = storage.write(RecordKey::Device, &buf);
    buf.zeroize();
    result.map_err(StoreError::from)
}

/// Reads the credential record in `slot`, if there is one.
pub fn load_credential<S: Storage>(
    storage: &mut S,
    slot: u16,
) -> Result<Option<ResidentCredential>, StoreError> {
    let mut buf = [0u8; RECORD_BUF_LEN];
    let Some(len) = read(storage, RecordKey::Credential(slot), &mut buf)? else {
        return Ok(None);
    };
    decode_credential(buf.get(..len).ok_or(StoreError::Corrupt)?).map(Some)
}

/// Writes the credential record in `slot`.
pub fn save_credential<S: Storage>(
    storage: &mut S,
    slot: u16,
    credential: &ResidentCredential,
) -> Result<(), StoreError> {
    let mut buf = [0u8; RECORD_BUF_LEN];
    let len = encode_credential(credential, &mut buf)?;
    let data = buf.get(..len).ok_or(StoreError::Corrupt)?;
    storage
        .write(RecordKey::Credential(slot), data)
        .map_err(StoreError::from)
}

/// Removes the credential record in `slot` (absent is fine).
pub fn remove_credential<S: Storage>(storage: &mut S, slot: u16) -> Result<(), StoreError> {
    storage
        .remove(RecordKey::Credential(slot))
        .map_err(StoreError::from)
}

fn read<S: Storage>(
    storage: &mut S,
    key: RecordKey,
    buf: &mut [u8],
) -> Result<Option<usize>, StoreError> {
    match storage.read(key, buf) {
        Ok(Some(len)) if len <= buf.len() => Ok(Some(len)),
        Ok(Some(_)) | Err(StorageError::TooLarge) => Err(StoreError::Corrupt),
        Ok(None) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Serializes `c` into `buf`; returns the length.
pub fn encode_credential(c: &ResidentCredential, buf: &mut [u8]) -> Result<usize, StoreError> {
    let mut w = Writer { buf, pos: 0 };
    w.put(&CREDENTIAL_MAGIC)?;
    w.put(&[CREDENTIAL_VERSION])?;
    w.put(&c.created.to_be_bytes())?;
    w.put(&c.sign_count.to_be_bytes())?;
    w.put(&[c.algorithm.code(), c.cred_protect])?;
    w.put(&c.rp_id_hash)?;
    let rp_len = u16::try_from(c.rp_id.len()).map_err(|_| StoreError::Corrupt)?;
    w.put(&rp_len.to_be_bytes())?;
    w.put(c.rp_id.as_bytes())?;
    w.short_bytes(&c.user_id)?;
    w.optional_str(c.user_name.as_deref())?;
    w.optional_str(c.display_name.as_deref())?;
    w.short_bytes(&c.credential_id)?;
    w.short_bytes(&c.cred_blob)?;
    Ok(w.pos)
}

/// Parses a credential record.
pub fn decode_credential(data: &[u8]) -> Result<ResidentCredential, StoreError> {
    let mut r = Reader { data, pos: 0 };
    if r.take(2)? != CREDENTIAL_MAGIC {
        return Err(StoreError::Corrupt);
    }
    let version = r.u8()?;
    if version != CREDENTIAL_VERSION && version != CREDENTIAL_VERSION_1 {
        return Err(StoreError::Corrupt);
    }
    let created = r.u32()?;
    let sign_count = r.u32()?;
    let algorithm = Algorithm::from_code(r.u8()?).ok_or(StoreError::Corrupt)?;
    let cred_protect = r.u8()?;
    let mut rp_id_hash = [0u8; 32];
    rp_id_hash.copy_from_slice(r.take(32)?);
    let rp_len = u16::from_be_bytes([r.u8()?, r.u8()?]);
    let rp_id = string(r.take(usize::from(rp_len))?)?;
    let user_id = bytes(r.short()?)?;
    let user_name = r.optional_str()?;
    let display_name = r.optional_str()?;
    let credential_id = bytes(r.short()?)?;
    let cred_blob = if version == CREDENTIAL_VERSION_1 {
        heapless::Vec::new()
    } else {
        bytes(r.short()?)?
    };
    if r.pos != data.len() {
        return Err(StoreError::Corrupt);
    }
    Ok(ResidentCredential {
        rp_id_hash,
        rp_id,
        user_id,
        user_name,
        display_name,
        credential_id,
        sign_count,
        created,
        algorithm,
        cred_protect,
        cred_blob,
    })
}

fn string<const N: usize>(data: &[u8]) -> Result<heapless::String<N>, StoreError> {
    let s = core::str::from_utf8(data).map_err(|_| StoreError::Corrupt)?;
    heapless::String::try_from(s).map_err(|_| StoreError::Corrupt)
}

fn bytes<const N: usize>(data: &[u8]) -> Result<heapless::Vec<u8, N>, StoreError> {
    heapless::Vec::from_slice(data).map_err(|_| StoreError::Corrupt)
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let end = self
            .pos
            .checked_add(data.len())
            .ok_or(StoreError::Corrupt)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(StoreError::Corrupt)?
            .copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    fn short_bytes(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let len = u8::try_from(data.len()).map_err(|_| StoreError::Corrupt)?;
        self.put(&[len])?;
        self.put(data)
    }

    fn optional_str(&mut self, s: Option<&str>) -> Result<(), StoreError> {
        match s {
            None => self.put(&[0]),
            Some(s) => {
                self.put(&[1])?;
                self.short_bytes(s.as_bytes())
            }
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).ok_or(StoreError::Corrupt)?;
        let out = self.data.get(self.pos..end).ok_or(StoreError::Corrupt)?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_be_bytes(a))
    }

    fn short(&mut self) -> Result<&'a [u8], StoreError> {
        let len = self.u8()?;
        self.take(usize::from(len))
    }

    fn optional_str<const N: usize>(&mut self) -> Result<Option<heapless::String<N>>, StoreError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(string(self.short()?)?)),
            _ => Err(StoreError::Corrupt),
        }
    }
}

/// Which credential slots hold a record (a cache built at start-up).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotMap {
    bits: [u8; (MAX_RESIDENT_CREDENTIALS as usize).div_ceil(8)],
}

impl SlotMap {
    /// Whether `slot` is in use.
    pub fn is_used(&self, slot: u16) -> bool {
        let i = usize::from(slot / 8);
        self.bits.get(i).is_some_and(|b| b & (1 << (slot % 8)) != 0)
    }

    /// Marks `slot` used or free.
    pub fn set(&mut self, slot: u16, used: bool) {
        if let Some(b) = self.bits.get_mut(usize::from(slot / 8)) {
            if used {
                *b |= 1 << (slot % 8);
            } else {
                *b &= !(1 << (slot % 8));
            }
        }
    }

    /// The number of used slots.
    pub fn used(&self) -> u16 {
        (0..MAX_RESIDENT_CREDENTIALS)
            .filter(|&s| self.is_used(s))
            .count() as u16
    }

    /// The first free slot.
    pub fn first_free(&self) -> Option<u16> {
        (0..MAX_RESIDENT_CREDENTIALS).find(|&s| !self.is_used(s))
    }

    /// The used slots, in slot order.
    pub fn iter_used(&self) -> impl Iterator<Item = u16> + '_ {
        (0..MAX_RESIDENT_CREDENTIALS).filter(|&s| self.is_used(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ResidentCredential {
        ResidentCredential {
            rp_id_hash: [3; 32],
            rp_id: heapless::String::try_from("example.com").unwrap(),
            user_id: heapless::Vec::from_slice(&[1, 2, 3]).unwrap(),
            user_name: Some(heapless::String::try_from("alice").unwrap()),
            display_name: None,
            credential_id: heapless::Vec::from_slice(&[9; 77]).unwrap(),
            sign_count: 42,
            created: 7,
            algorithm: Algorithm::Es256,
            cred_protect: 0,
            cred_blob: heapless::Vec::from_slice(b"blob").unwrap(),
        }
    }

    #[test]
    fn credential_roundtrip_and_truncation() {
        let c = sample();
        let mut buf = [0u8; RECORD_BUF_LEN];
        let len = encode_credential(&c, &mut buf).unwrap();
        assert_eq!(decode_credential(&buf[..len]).unwrap(), c);
        for cut in 0..len {
            assert_eq!(decode_credential(&buf[..cut]), Err(StoreError::Corrupt));
        }
        let mut long = buf;
        long[len] = 0;
        assert_eq!(
            decode_credential(&long[..len + 1]),
            Err(StoreError::Corrupt)
        );
        let mut bad_version = buf;
        bad_version[2] = 3;
        assert_eq!(
            decode_credential(&bad_version[..len]),
            Err(StoreError::Corrupt)
        );
    }

    #[test]
    fn maximal_credential_fits() {
        let mut c = sample();
        c.rp_id = heapless::String::new();
        for _ in 0..256 {
            c.rp_id.push('a').unwrap();
        }
        c.user_id = heapless::Vec::from_slice(&[0xAA; 64]).unwrap();
        c.user_name = Some(heapless::String::try_from("é".repeat(32).as_str()).unwrap());
        c.display_name = c.user_name.clone();
        c.credential_id = heapless::Vec::from_slice(&[1; 255]).unwrap();
        c.cred_blob = heapless::Vec::from_slice(&[2; 32]).unwrap();
        c.algorithm = Algorithm::EdDsa;
        c.cred_protect = 3;
        let mut buf = [0u8; RECORD_BUF_LEN];
        let len = encode_credential(&c, &mut buf).unwrap();
        assert!(len <= RECORD_BUF_LEN);
        assert_eq!(decode_credential(&buf[..len]).unwrap(), c);
    }

    #[test]
    fn version_1_records_still_load() {
        // A v1 record is a v2 record with version byte 1 and no trailing credBlob.
        let mut c = sample();
        c.cred_blob.clear();
        let mut buf = [0u8; RECORD_BUF_LEN];
        let len = encode_credential(&c, &mut buf).unwrap();
        assert_eq!(buf[len - 1], 0, "empty credBlob length");
        let mut v1 = buf;
        v1[2] = 1;
        assert_eq!(decode_credential(&v1[..len - 1]).unwrap(), c);
        // A v1 record with trailing bytes is corrupt.
        assert_eq!(decode_credential(&v1[..len]), Err(StoreError::Corrupt));
        // A credBlob longer than 32 bytes is corrupt.
        let mut c = sample();
        c.cred_blob.clear();
        let len = encode_credential(&c, &mut buf).unwrap();
        buf[len - 1] = 33;
        buf[len..len + 33].fill(1);
        assert_eq!(
            decode_credential(&buf[..len + 33]),
            Err(StoreError::Corrupt)
        );
    }

    #[test]
    fn device_record_rejects_garbage() {
        assert_eq!(decode_device(&[0; 39]).unwrap_err(), StoreError::Corrupt);
        let mut ok = [0u8; 39];
        ok[..3].copy_from_slice(b"FD\x01");
        assert!(decode_device(&ok).is_ok());
        ok[2] = 9;
        assert_eq!(decode_device(&ok).unwrap_err(), StoreError::Corrupt);
        assert_eq!(decode_device(b"FD\x01").unwrap_err(), StoreError::Corrupt);
    }

    #[test]
    fn slot_map() {
        let mut m = SlotMap::default();
        assert_eq!(m.first_free(), Some(0));
        m.set(0, true);
        m.set(99, true);
        assert_eq!(m.used(), 2);
        assert_eq!(m.first_free(), Some(1));
        assert_eq!(m.iter_used().collect::<std::vec::Vec<_>>(), [0, 99]);
        m.set(0, false);
        assert_eq!(m.first_free(), Some(0));
        assert!(!m.is_used(100));
    }
}
