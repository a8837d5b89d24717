//! One credential's large blob inside the large-blob array (CTAP 2.1 §6.10.3).
//!
//! The array (stored by [`crate::ctap2::large_blobs`]) is a CBOR array of
//! entries `{1: ciphertext ‖ tag, 2: nonce (12), 3: origSize}`, each sealed
//! with AES-256-GCM under one credential's largeBlobKey, with associated data
//! `"blob" ‖ uint64LE(origSize)`, over the DEFLATE-compressed blob. A
//! credential's blob is the entry its key opens.
//!
//! Writing, the instrument API stores the blob as DEFLATE "stored" blocks
//! (valid DEFLATE without compression; any inflater reads it). Reading, it
//! hands out the DEFLATE data as found (clients compress), with origSize.
//!
//! The array is read with a small strict reader: a definite array of maps
//! whose values are byte strings or unsigned integers, no nesting. An array
//! this reader does not understand is never rewritten.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::ctap2::large_blobs::{SerializedArray, MAX_SERIALIZED_LARGE_BLOB_ARRAY};

/// The nonce length of an entry.
pub const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HASH_LEN: usize = 16;
/// The most entries the reader takes.
const MAX_ENTRIES: usize = 64;
/// The largest DEFLATE stored block.
const STORED_BLOCK: usize = 0xFFFF;

/// A buffer for one entry's plaintext (DEFLATE data).
pub type BlobBuffer = heapless::Vec<u8, MAX_SERIALIZED_LARGE_BLOB_ARRAY>;

/// Why the array could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LargeBlobError {
    /// The stored array is not one this reader understands; it was left alone.
    Unreadable,
    /// The new array would exceed maxSerializedLargeBlobArray.
    Full,
    /// AES-GCM failed.
    Crypto,
}

/// One entry of the array.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// The entry's encoded bytes.
    pub raw: &'a [u8],
    ciphertext: &'a [u8],
    nonce: &'a [u8],
    orig_size: u64,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn head(&mut self) -> Result<(u8, u64), LargeBlobError> {
        let initial = *self.data.get(self.pos).ok_or(LargeBlobError::Unreadable)?;
        self.pos += 1;
        let info = initial & 0x1F;
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let n = 1usize << (info - 24);
                let bytes = self.take(n as u64)?;
                bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
            }
            _ => return Err(LargeBlobError::Unreadable),
        };
        Ok((initial >> 5, arg))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], LargeBlobError> {
        let n = usize::try_from(n).map_err(|_| LargeBlobError::Unreadable)?;
        let end = self.pos.checked_add(n).ok_or(LargeBlobError::Unreadable)?;
        let out = self
            .data
            .get(self.pos..end)
            .ok_or(LargeBlobError::Unreadable)?;
        self.pos = end;
        Ok(out)
    }
}

/// The entries of a serialized array (CBOR array ‖ 16-byte hash).
pub fn entries(serialized: &[u8]) -> Result<heapless::Vec<Entry<'_>, MAX_ENTRIES>, LargeBlobError> {
    let cbor_len = serialized
        .len()
        .checked_sub(HASH_LEN)
        .ok_or(LargeBlobError::Unreadable)?;
    let cbor = serialized.get(..cbor_len).unwrap_or_default();
    let mut r = Reader { data: cbor, pos: 0 };
    let (major, count) = r.head()?;
    if major != 4 {
        return Err(LargeBlobError::Unreadable);
    }
    let mut out = heapless::Vec::new();
    for _ in 0..count {
        let start = r.pos;
        let (major, fields) = r.head()?;
        if major != 5 || fields > 8 {
            return Err(LargeBlobError::Unreadable);
        }
        let (mut ciphertext, mut nonce, mut orig_size) = (None, None, None);
        for _ in 0..fields {
            let (kmajor, key) = r.head()?;
            let (vmajor, varg) = r.head()?;
            let value = match vmajor {
                2 => Some(r.take(varg)?),
                0 => None,
                _ => return Err(LargeBlobError::Unreadable),
            };
            match (kmajor, key, value) {
                (0, 1, Some(v)) => ciphertext = Some(v),
                (0, 2, Some(v)) => nonce = Some(v),
                (0, 3, None) => orig_size = Some(varg),
                _ => {}
            }
        }
        let raw = cbor.get(start..r.pos).unwrap_or_default();
        // Entries without the three fields are kept as they are, never opened.
        let entry = Entry {
            raw,
            ciphertext: ciphertext.unwrap_or_default(),
            nonce: nonce.unwrap_or_default(),
            orig_size: orig_size.unwrap_or(u64::MAX),
        };
        out.push(entry).map_err(|_| LargeBlobError::Unreadable)?;
    }
    if r.pos != cbor.len() {
        return Err(LargeBlobError::Unreadable);
    }
    Ok(out)
}

fn associated_data(orig_size: u64) -> [u8; 12] {
    let mut ad = [0u8; 12];
    ad[..4].copy_from_slice(b"blob");
    ad[4..].copy_from_slice(&orig_size.to_le_bytes());
    ad
}

/// Opens `entry` with `key`: the DEFLATE data and the original size, or
/// `None` when it is not this key's entry.
pub fn open(key: &[u8; 32], entry: &Entry<'_>) -> Option<(BlobBuffer, u64)> {
    if entry.nonce.len() != NONCE_LEN || entry.ciphertext.len() < TAG_LEN {
        return None;
    }
    let split = entry.ciphertext.len() - TAG_LEN;
    let (ciphertext, tag) = entry.ciphertext.split_at(split);
    let mut buffer = BlobBuffer::from_slice(ciphertext).ok()?;
    Aes256Gcm::new(key.into())
        .decrypt_in_place_detached(
            Nonce::from_slice(entry.nonce),
            &associated_data(entry.orig_size),
            &mut buffer,
            Tag::from_slice(tag),
        )
        .ok()?;
    Some((buffer, entry.orig_size))
}

/// `blob` as DEFLATE stored blocks.
pub fn stored_deflate(blob: &[u8]) -> Result<BlobBuffer, LargeBlobError> {
    let mut out = BlobBuffer::new();
    let mut chunks = blob.chunks(STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF])
            .map_err(|_| LargeBlobError::Full)?;
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        let fits = out.push(u8::from(last)).is_ok()
            && out.extend_from_slice(&len.to_le_bytes()).is_ok()
            && out.extend_from_slice(&(!len).to_le_bytes()).is_ok()
            && out.extend_from_slice(chunk).is_ok();
        if !fits {
            return Err(LargeBlobError::Full);
        }
    }
    Ok(out)
}

fn put_head(out: &mut SerializedArray, major: u8, arg: u64) -> Result<(), LargeBlobError> {
    let m = major << 5;
    let r = match arg {
        0..=23 => out.push(m | arg as u8).map_err(|_| ()),
        24..=0xFF => out.extend_from_slice(&[m | 24, arg as u8]).map_err(|_| ()),
        0x100..=0xFFFF => {
            let b = (arg as u16).to_be_bytes();
            out.extend_from_slice(&[m | 25, b[0], b[1]]).map_err(|_| ())
        }
        _ => {
            let b = u32::try_from(arg)
                .map_err(|_| LargeBlobError::Full)?
                .to_be_bytes();
            out.extend_from_slice(&[m | 26, b[0], b[1], b[2], b[3]])
                .map_err(|_| ())
        }
    };
    r.map_err(|_| LargeBlobError::Full)
}

/// A new serialized array: the `kept` entries, then (if any) a new entry
/// sealing `blob` under `key` with `nonce`; with its trailing hash.
pub fn build(
    kept: &[Entry<'_>],
    new: Option<(&[u8; 32], [u8; NONCE_LEN], &[u8])>,
) -> Result<SerializedArray, LargeBlobError> {
    let mut out = SerializedArray::new();
    let count = kept.len() + usize::from(new.is_some());
    put_head(&mut out, 4, count as u64)?;
    for entry in kept {
        out.extend_from_slice(entry.raw)
            .map_err(|_| LargeBlobError::Full)?;
    }
    if let Some((key, nonce, blob)) = new {
        let orig_size = blob.len() as u64;
        let mut data = stored_deflate(blob)?;
        let tag = Aes256Gcm::new(key.into())
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &associated_data(orig_size),
                &mut data,
            )
            .map_err(|_| LargeBlobError::Crypto)?;
        put_head(&mut out, 5, 3)?;
        put_head(&mut out, 0, 1)?;
        put_head(&mut out, 2, (data.len() + TAG_LEN) as u64)?;
        let fits = out.extend_from_slice(&data).is_ok() && out.extend_from_slice(&tag).is_ok();
        if !fits {
            return Err(LargeBlobError::Full);
        }
        put_head(&mut out, 0, 2)?;
        put_head(&mut out, 2, NONCE_LEN as u64)?;
        out.extend_from_slice(&nonce)
            .map_err(|_| LargeBlobError::Full)?;
        put_head(&mut out, 0, 3)?;
        put_head(&mut out, 0, orig_size)?;
    }
    let digest = crate::crypto::sha256(&out);
    out.extend_from_slice(&digest[..HASH_LEN])
        .map_err(|_| LargeBlobError::Full)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::Aead;

    #[test]
    fn stored_deflate_is_valid_deflate() {
        for blob in [&b""[..], b"hello", &[7u8; 1500][..]] {
            let deflated = stored_deflate(blob).unwrap();
            // Decode the stored blocks independently.
            let mut pos = 0;
            let mut out = std::vec::Vec::new();
            loop {
                let header = deflated[pos];
                let len = u16::from_le_bytes([deflated[pos + 1], deflated[pos + 2]]);
                let nlen = u16::from_le_bytes([deflated[pos + 3], deflated[pos + 4]]);
                assert_eq!(header & 0b110, 0, "stored block");
                assert_eq!(len, !nlen);
                out.extend_from_slice(&deflated[pos + 5..pos + 5 + usize::from(len)]);
                pos += 5 + usize::from(len);
                if header & 1 == 1 {
                    break;
                }
            }
            assert_eq!(pos, deflated.len());
            assert_eq!(out, blob);
        }
    }

    #[test]
    fn entries_round_trip_and_verify_with_an_independent_decoder() {
        let key = [9u8; 32];
        let array = build(&[], Some((&key, [1; NONCE_LEN], b"my blob"))).unwrap();
        // The hash and the CBOR, checked with ciborium and aes-gcm's own API.
        let (cbor, hash) = array.split_at(array.len() - 16);
        assert_eq!(&crate::crypto::sha256(cbor)[..16], hash);
        let value: ciborium::Value = ciborium::from_reader(cbor).unwrap();
        let entry = &value.as_array().unwrap()[0];
        let map = entry.as_map().unwrap();
        let get = |k: i64| {
            map.iter()
                .find(|(key, _)| key.as_integer() == Some(k.into()))
                .unwrap()
                .1
                .clone()
        };
        let ct = get(1).as_bytes().unwrap().clone();
        let nonce = get(2).as_bytes().unwrap().clone();
        let orig = u64::try_from(get(3).as_integer().unwrap()).unwrap();
        assert_eq!(orig, 7);
        let plain = Aes256Gcm::new((&key).into())
            .decrypt(
                Nonce::from_slice(&nonce),
                aes_gcm::aead::Payload {
                    msg: &ct,
                    aad: &associated_data(orig),
                },
            )
            .unwrap();
        assert_eq!(plain, stored_deflate(b"my blob").unwrap().as_slice());

        // Our reader finds it, only our key opens it, and it survives a rebuild.
        let parsed = entries(&array).unwrap();
        assert_eq!(parsed.len(), 1);
        assert!(open(&[8; 32], &parsed[0]).is_none());
        let (data, size) = open(&key, &parsed[0]).unwrap();
        assert_eq!((data.as_slice(), size), (plain.as_slice(), 7));
        let other = [3u8; 32];
        let both = build(&parsed, Some((&other, [2; NONCE_LEN], b"second"))).unwrap();
        let parsed = entries(&both).unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(open(&key, &parsed[0]).is_some());
        assert!(open(&other, &parsed[1]).is_some());
    }

    #[test]
    fn unreadable_arrays_and_limits() {
        let initial = crate::ctap2::large_blobs::initial_array();
        assert_eq!(entries(&initial).unwrap().len(), 0);
        for bad in [
            &b""[..],
            &[0xA0; 17][..],
            &[
                0x81, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ][..],
        ] {
            assert_eq!(entries(bad).unwrap_err(), LargeBlobError::Unreadable);
        }
        assert_eq!(
            build(&[], Some((&[1; 32], [0; NONCE_LEN], &[0u8; 2100]))).unwrap_err(),
            LargeBlobError::Full
        );
    }
}
