//! The persistent record schema, on top of [`crate::platform::Storage`].
//!
//! Every record starts with a two-byte magic and a version byte; a record with an
//! unknown magic, version or layout is [`StoreError::Corrupt`] and is never
//! silently rewritten. Integers are big-endian. Old versions keep loading with
//! their original meaning; a record is rewritten in the current version only
//! when it changes.
//!
//! | record | version | layout | |
//! |---|---|---|---|
//! | `Device` | 1 | `"FD" 01 \| secret (32) \| global counter (4)`: the last counter value of the non-discoverable credentials | read; its first start under this build turns it into v2 |
//! | `Device` | 2 | `"FD" 02 \| secret (32) \| counter mark (4)`: at least every counter value the key ever issued, for any credential | written |
//! | `Credential(slot)` | 1 | `"FC" 01 \| created (4) \| sign counter (4) \| alg (1) \| credProtect (1) \| rpIdHash (32) \| rpId (u16 len + bytes) \| user id (u8 len + bytes) \| user name (u8 present, u8 len + bytes) \| display name (same) \| credential id (u8 len + bytes)`: a discoverable credential, counter exact | read |
//! | `Credential(slot)` | 2 | v1 `\| credBlob (u8 len + bytes, at most 32)` | read |
//! | `Credential(slot)` | 3 | `"FC" 03 \| kind (1) \| flags (1) \| epoch (4) \| created (4) \| counter mark (4) \| alg (1) \| policy (1) \| credProtect (1) \| rpIdHash (32) \| rpId (u16 len + bytes, 0 = unknown) \| user id \| user name \| display name \| credential id \| credBlob (as v2) [\| sealed key (72)]` | written |
//!
//! Version 3 of the credential record: `kind` 0 discoverable, 1
//! non-discoverable, 2 tombstone (a deleted non-discoverable credential whose
//! ID must stay refused); `flags` bit 0 BE, bit 1 BS, bit 2 "sealed key
//! follows" (an imported credential, [`crate::credential::sealed`]); `epoch`
//! tags the device secret the record belongs to (records left behind by an
//! interrupted reset carry an old one and count as free); `policy` holds the
//! [`crate::credential::CredentialFlags`] bits; the counter is a reservation
//! mark ([`crate::authenticator::counters`]). Undefined kinds and flag bits are
//! corrupt.
//!
//! - `RecordKey::LargeBlobs`: see [`crate::ctap2::large_blobs`].

mod table;

pub use table::{tag, use_of_record, CredentialTable, SlotUse, MAX_CREDENTIAL_RECORDS};

use zeroize::Zeroize;

use crate::credential::sealed::{SealedKey, SEALED_KEY_LEN};
use crate::credential::{Algorithm, CredentialFlags, CredentialRecord, RecordKind};
use crate::platform::{RecordKey, Storage, StorageError};

/// How many discoverable credentials the key can hold (slots `0..MAX`).
pub const MAX_RESIDENT_CREDENTIALS: u16 = 100;
/// A buffer large enough for any record this schema writes.
pub const RECORD_BUF_LEN: usize = 1024;

const DEVICE_MAGIC: [u8; 2] = *b"FD";
const CREDENTIAL_MAGIC: [u8; 2] = *b"FC";
/// The device record version written.
const DEVICE_VERSION: u8 = 2;
/// The first device record version (an exact global counter); still read.
const DEVICE_VERSION_1: u8 = 1;
/// The credential record version written.
const CREDENTIAL_VERSION: u8 = 3;
/// Discoverable credentials with credBlob; still read.
const CREDENTIAL_VERSION_2: u8 = 2;
/// Discoverable credentials without credBlob; still read.
const CREDENTIAL_VERSION_1: u8 = 1;
const FLAG_BACKUP_ELIGIBLE: u8 = 0b001;
const FLAG_BACKED_UP: u8 = 0b010;
const FLAG_SEALED_KEY: u8 = 0b100;
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
    /// The counter mark: at least every signature counter value the key has
    /// issued, for any credential (see [`crate::authenticator::counters`]).
    pub counter_mark: u32,
    /// The record version it was read from (always the current one once written).
    pub version: u8,
}

impl Drop for DeviceState {
    fn drop(&mut self) {
        crate::wipe::wipe("DeviceState secret", &mut self.secret);
    }
}

impl core::fmt::Debug for DeviceState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceState")
            .field("secret", &"..")
            .field("counter_mark", &self.counter_mark)
            .field("version", &self.version)
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
    let version = match data.get(2) {
        Some(&v @ (DEVICE_VERSION_1 | DEVICE_VERSION)) => v,
        _ => return Err(StoreError::Corrupt),
    };
    if data.len() != DEVICE_RECORD_LEN || data.get(..2) != Some(&DEVICE_MAGIC[..]) {
        return Err(StoreError::Corrupt);
    }
    let mut r = Reader { data, pos: 3 };
    let mut secret = [0u8; 32];
    secret.copy_from_slice(r.take(32)?);
    let counter_mark = r.u32()?;
    Ok(DeviceState {
        secret,
        counter_mark,
        version,
    })
}

/// Writes the device record (always in the current version).
pub fn save_device<S: Storage>(storage: &mut S, state: &DeviceState) -> Result<(), StoreError> {
    let mut buf = [0u8; DEVICE_RECORD_LEN];
    buf[..2].copy_from_slice(&DEVICE_MAGIC);
    buf[2] = DEVICE_VERSION;
    buf[3..35].copy_from_slice(&state.secret);
    buf[35..].copy_from_slice(&state.counter_mark.to_be_bytes());
    let result = storage.write(RecordKey::Device, &buf);
    buf.zeroize();
    result.map_err(StoreError::from)
}

/// Reads the credential record in `slot`, if there is one.
pub fn load_credential<S: Storage>(
    storage: &mut S,
    slot: u16,
) -> Result<Option<CredentialRecord>, StoreError> {
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
    credential: &CredentialRecord,
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
    // (A length beyond `buf` from a faulty storage: the callers' `get(..len)`
    // makes it Corrupt.)
    match storage.read(key, buf) {
        Ok(Some(len)) => Ok(Some(len)),
        Err(StorageError::TooLarge) => Err(StoreError::Corrupt),
        Ok(None) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Serializes `c` into `buf` (version 3); returns the length.
pub fn encode_credential(c: &CredentialRecord, buf: &mut [u8]) -> Result<usize, StoreError> {
    let mut w = Writer { buf, pos: 0 };
    w.put(&CREDENTIAL_MAGIC)?;
    w.put(&[CREDENTIAL_VERSION])?;
    let kind = match c.kind {
        RecordKind::Discoverable => 0,
        RecordKind::NonDiscoverable => 1,
        RecordKind::Tombstone => 2,
    };
    let mut flags = 0;
    if c.backup_eligible {
        flags |= FLAG_BACKUP_ELIGIBLE;
    }
    if c.backup_state {
        flags |= FLAG_BACKED_UP;
    }
    if c.sealed_key.is_some() {
        flags |= FLAG_SEALED_KEY;
    }
    w.put(&[kind, flags])?;
    w.put(&c.epoch.unwrap_or_default())?;
    w.put(&c.created.to_be_bytes())?;
    w.put(&c.sign_count.to_be_bytes())?;
    w.put(&[c.algorithm.code(), c.flags.bits(), c.cred_protect])?;
    w.put(&c.rp_id_hash)?;
    let rp_len = u16::try_from(c.rp_id.len()).map_err(|_| StoreError::Corrupt)?;
    w.put(&rp_len.to_be_bytes())?;
    w.put(c.rp_id.as_bytes())?;
    w.short_bytes(&c.user_id)?;
    w.optional_str(c.user_name.as_deref())?;
    w.optional_str(c.display_name.as_deref())?;
    w.short_bytes(&c.credential_id)?;
    w.short_bytes(&c.cred_blob)?;
    if let Some(sealed) = &c.sealed_key {
        w.put(sealed)?;
    }
    Ok(w.pos)
}

/// Parses a credential record of any known version.
pub fn decode_credential(data: &[u8]) -> Result<CredentialRecord, StoreError> {
    let mut r = Reader { data, pos: 0 };
    if r.take(2)? != CREDENTIAL_MAGIC {
        return Err(StoreError::Corrupt);
    }
    match r.u8()? {
        CREDENTIAL_VERSION => decode_v3(r),
        version @ (CREDENTIAL_VERSION_1 | CREDENTIAL_VERSION_2) => decode_v1_v2(r, version),
        _ => Err(StoreError::Corrupt),
    }
}

fn decode_v3(mut r: Reader<'_>) -> Result<CredentialRecord, StoreError> {
    let kind = match r.u8()? {
        0 => RecordKind::Discoverable,
        1 => RecordKind::NonDiscoverable,
        2 => RecordKind::Tombstone,
        _ => return Err(StoreError::Corrupt),
    };
    let flags = r.u8()?;
    if flags & !(FLAG_BACKUP_ELIGIBLE | FLAG_BACKED_UP | FLAG_SEALED_KEY) != 0 {
        return Err(StoreError::Corrupt);
    }
    let mut epoch = [0u8; 4];
    epoch.copy_from_slice(r.take(4)?);
    let created = r.u32()?;
    let sign_count = r.u32()?;
    let algorithm = Algorithm::from_code(r.u8()?).ok_or(StoreError::Corrupt)?;
    let policy = CredentialFlags::from_bits(r.u8()?).ok_or(StoreError::Corrupt)?;
    let cred_protect = r.u8()?;
    let mut rp_id_hash = [0u8; 32];
    rp_id_hash.copy_from_slice(r.take(32)?);
    let rp_len = u16::from_be_bytes([r.u8()?, r.u8()?]);
    let rp_id = string(r.take(usize::from(rp_len))?)?;
    let user_id = bytes(r.short()?)?;
    let user_name = r.optional_str()?;
    let display_name = r.optional_str()?;
    let credential_id: heapless::Vec<u8, 255> = bytes(r.short()?)?;
    let cred_blob = bytes(r.short()?)?;
    let sealed_key = if flags & FLAG_SEALED_KEY != 0 {
        let mut sealed: SealedKey = [0; SEALED_KEY_LEN];
        sealed.copy_from_slice(r.take(SEALED_KEY_LEN)?);
        Some(sealed)
    } else {
        None
    };
    if r.pos != r.data.len() || credential_id.is_empty() {
        return Err(StoreError::Corrupt);
    }
    Ok(CredentialRecord {
        kind,
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
        flags: policy,
        backup_eligible: flags & FLAG_BACKUP_ELIGIBLE != 0,
        backup_state: flags & FLAG_BACKED_UP != 0,
        cred_blob,
        sealed_key,
        epoch: Some(epoch),
    })
}

/// Versions 1 and 2: discoverable credentials with a wrapped ID and an exact counter.
fn decode_v1_v2(mut r: Reader<'_>, version: u8) -> Result<CredentialRecord, StoreError> {
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
    if r.pos != r.data.len() {
        return Err(StoreError::Corrupt);
    }
    Ok(CredentialRecord {
        kind: RecordKind::Discoverable,
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
        flags: CredentialFlags::new(cred_protect, false),
        backup_eligible: false,
        backup_state: false,
        cred_blob,
        sealed_key: None,
        epoch: None,
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

/// Encoders of the old record versions, for tests of their loading.
#[cfg(test)]
pub(crate) mod legacy {
    use super::*;

    /// A version 1 or 2 record, encoded as those versions were.
    pub(crate) fn encode_legacy(c: &CredentialRecord, version: u8) -> std::vec::Vec<u8> {
        let mut out = std::vec![b'F', b'C', version];
        out.extend_from_slice(&c.created.to_be_bytes());
        out.extend_from_slice(&c.sign_count.to_be_bytes());
        out.extend_from_slice(&[c.algorithm.code(), c.cred_protect]);
        out.extend_from_slice(&c.rp_id_hash);
        out.extend_from_slice(&(c.rp_id.len() as u16).to_be_bytes());
        out.extend_from_slice(c.rp_id.as_bytes());
        out.push(c.user_id.len() as u8);
        out.extend_from_slice(&c.user_id);
        for name in [&c.user_name, &c.display_name] {
            match name {
                None => out.push(0),
                Some(n) => {
                    out.extend_from_slice(&[1, n.len() as u8]);
                    out.extend_from_slice(n.as_bytes());
                }
            }
        }
        out.push(c.credential_id.len() as u8);
        out.extend_from_slice(&c.credential_id);
        if version == 2 {
            out.push(c.cred_blob.len() as u8);
            out.extend_from_slice(&c.cred_blob);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::legacy::encode_legacy;
    use super::*;

    fn sample() -> CredentialRecord {
        CredentialRecord {
            kind: RecordKind::Discoverable,
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
            flags: CredentialFlags::default(),
            backup_eligible: false,
            backup_state: false,
            cred_blob: heapless::Vec::from_slice(b"blob").unwrap(),
            sealed_key: None,
            epoch: Some([1, 2, 3, 4]),
        }
    }

    fn encoded(c: &CredentialRecord) -> std::vec::Vec<u8> {
        let mut buf = [0u8; RECORD_BUF_LEN];
        let len = encode_credential(c, &mut buf).unwrap();
        buf[..len].to_vec()
    }

    #[test]
    fn credential_roundtrip_and_truncation() {
        let mut imported = sample();
        imported.kind = RecordKind::NonDiscoverable;
        imported.sealed_key = Some([0xAB; SEALED_KEY_LEN]);
        imported.backup_eligible = true;
        imported.backup_state = true;
        imported.flags = CredentialFlags::new(2, true).with_backup(true, false);
        imported.credential_id = heapless::Vec::from_slice(b"x").unwrap();
        let mut tombstone = sample();
        tombstone.kind = RecordKind::Tombstone;
        for c in [sample(), imported, tombstone] {
            let bytes = encoded(&c);
            assert_eq!(bytes[2], 3, "written as version 3");
            assert_eq!(decode_credential(&bytes).unwrap(), c);
            for cut in 0..bytes.len() {
                assert_eq!(decode_credential(&bytes[..cut]), Err(StoreError::Corrupt));
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(decode_credential(&long), Err(StoreError::Corrupt));
            for version in [0, 4, 0xFF] {
                let mut bad = bytes.clone();
                bad[2] = version;
                assert_eq!(decode_credential(&bad), Err(StoreError::Corrupt));
            }
            // Undefined kinds and flag bits are corrupt.
            let mut bad = bytes.clone();
            bad[3] = 3;
            assert_eq!(decode_credential(&bad), Err(StoreError::Corrupt));
            let mut bad = bytes.clone();
            bad[4] |= 0b1000;
            assert_eq!(decode_credential(&bad), Err(StoreError::Corrupt));
            // The policy byte too.
            let mut bad = bytes.clone();
            bad[18] |= 0b0100_0000;
            assert_eq!(decode_credential(&bad), Err(StoreError::Corrupt));
        }
        // An empty credential ID is corrupt.
        let mut c = sample();
        c.credential_id.clear();
        assert_eq!(decode_credential(&encoded(&c)), Err(StoreError::Corrupt));
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
        c.sealed_key = Some([5; SEALED_KEY_LEN]);
        let bytes = encoded(&c);
        assert!(bytes.len() <= RECORD_BUF_LEN);
        assert_eq!(decode_credential(&bytes).unwrap(), c);
    }

    #[test]
    fn version_1_and_2_records_still_load() {
        let mut c = sample();
        c.epoch = None;
        c.cred_protect = 2;
        c.flags = CredentialFlags::new(2, false);
        assert_eq!(decode_credential(&encode_legacy(&c, 2)).unwrap(), c);
        let mut v1 = encode_legacy(&c, 1);
        c.cred_blob.clear();
        assert_eq!(decode_credential(&v1).unwrap(), c);
        // A v1 record with trailing bytes is corrupt.
        v1.push(0);
        assert_eq!(decode_credential(&v1), Err(StoreError::Corrupt));
        // A credBlob longer than 32 bytes is corrupt.
        let mut v2 = encode_legacy(&c, 2);
        v2.pop();
        v2.push(33);
        v2.extend_from_slice(&[1; 33]);
        assert_eq!(decode_credential(&v2), Err(StoreError::Corrupt));
    }

    #[test]
    fn device_record_versions() {
        assert_eq!(decode_device(&[0; 39]).unwrap_err(), StoreError::Corrupt);
        let mut ok = [0u8; 39];
        ok[..3].copy_from_slice(b"FD\x01");
        ok[35..].copy_from_slice(&9u32.to_be_bytes());
        let v1 = decode_device(&ok).unwrap();
        assert_eq!((v1.version, v1.counter_mark), (1, 9));
        ok[2] = 2;
        assert_eq!(decode_device(&ok).unwrap().version, 2);
        ok[2] = 9;
        assert_eq!(decode_device(&ok).unwrap_err(), StoreError::Corrupt);
        assert_eq!(decode_device(b"FD\x01").unwrap_err(), StoreError::Corrupt);
        assert_eq!(decode_device(&[b'F'; 40]).unwrap_err(), StoreError::Corrupt);
    }
}

#[cfg(test)]
mod lying_storage_tests {
    use super::*;

    /// A storage that claims more bytes than the buffer it was given holds.
    struct Overlong;

    impl Storage for Overlong {
        fn read(&mut self, _: RecordKey, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
            Ok(Some(buf.len() + 1))
        }
        fn write(&mut self, _: RecordKey, _: &[u8]) -> Result<(), StorageError> {
            Ok(())
        }
        fn remove(&mut self, _: RecordKey) -> Result<(), StorageError> {
            Ok(())
        }
    }

    #[test]
    fn a_length_beyond_the_buffer_is_corrupt_not_a_panic() {
        assert_eq!(load_device(&mut Overlong), Err(StoreError::Corrupt));
        assert_eq!(load_credential(&mut Overlong, 0), Err(StoreError::Corrupt));
    }
}
