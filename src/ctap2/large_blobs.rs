//! authenticatorLargeBlobs (0x0C), CTAP 2.1 §6.10.
//!
//! The serialized large-blob array (CBOR array ‖ LEFT(SHA-256(array), 16)) is
//! one record, `RecordKey::LargeBlobs`: `"FL" 01 | serialized array`. Without a
//! record the array is the initial value `0x80 ‖ LEFT(SHA-256(0x80), 16)`; a
//! record with a bad header reads as the initial value too (the platform checks
//! the hash of whatever it reads anyway).
//!
//! **maxSerializedLargeBlobArray is 2048 bytes**: at least the 1024 CTAP
//! requires, and with its 3-byte header well inside `MAX_RECORD_SIZE` (4096).
//! The same 2048 bytes are the RAM buffer that collects a fragmented write. The
//! maximum fragment is maxMsgSize − 64 (CTAP 2.1 §6.10.2), so one fragment can
//! hold the whole array.
//!
//! Writes need a pinUvAuthToken with the `lbw` permission whenever the key is
//! protected (a PIN is set, or alwaysUv); the authenticated message is
//! `32×0xff ‖ 0x0c 0x00 ‖ uint32LE(offset) ‖ SHA-256(fragment)`. The array is
//! only stored after its last fragment arrived and its trailing hash verified
//! (else INTEGRITY_FAILURE and nothing changes).

use ctap_types::ctap2::large_blobs::Request;
use ctap_types::ctap2::Error;
use sha2::{Digest, Sha256};

use rand_core::{CryptoRng, RngCore};

use super::HandlerResult;
use crate::app::{CallContext, Message, Outcome, MAX_MESSAGE_SIZE};
use crate::authenticator::Authenticator;
use crate::pin::{permission, PinUv, RpCheck};
use crate::platform::{RecordKey, Storage, StorageError, UserPresence};

/// getInfo maxSerializedLargeBlobArray.
pub const MAX_SERIALIZED_LARGE_BLOB_ARRAY: usize = 2048;
/// The largest fragment a get returns or a set carries (maxMsgSize − 64).
pub const MAX_FRAGMENT_LENGTH: usize = MAX_MESSAGE_SIZE - 64;
/// The length of the trailing truncated SHA-256.
const HASH_LEN: usize = 16;
/// The smallest valid serialized array: an empty CBOR array and its hash.
const MIN_LENGTH: usize = 1 + HASH_LEN;
const MAGIC: [u8; 2] = *b"FL";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 3;
const RECORD_LEN: usize = HEADER_LEN + MAX_SERIALIZED_LARGE_BLOB_ARRAY;

/// The serialized array, as stored or as being written.
pub type SerializedArray = heapless::Vec<u8, MAX_SERIALIZED_LARGE_BLOB_ARRAY>;

/// The initial serialized array: `0x80 ‖ LEFT(SHA-256(0x80), 16)`.
pub fn initial_array() -> SerializedArray {
    let mut out = SerializedArray::new();
    let digest = Sha256::digest([0x80]);
    // 17 bytes always fit.
    let _ = out.push(0x80);
    let _ = out.extend_from_slice(digest.get(..HASH_LEN).unwrap_or_default());
    out
}

/// Whether `data` ends in LEFT(SHA-256(rest), 16).
fn hash_is_valid(data: &[u8]) -> bool {
    let Some(split) = data.len().checked_sub(HASH_LEN) else {
        return false;
    };
    let (array, hash) = data.split_at(split);
    Sha256::digest(array).get(..HASH_LEN) == Some(hash)
}

/// Reads the stored serialized array (or the initial value).
pub fn load<S: Storage>(storage: &mut S) -> Result<SerializedArray, StorageError> {
    let mut buf = [0u8; RECORD_LEN];
    match storage.read(RecordKey::LargeBlobs, &mut buf) {
        Ok(Some(len)) => Ok(buf
            .get(..len)
            .filter(|r| r.len() > HEADER_LEN && r.get(..2) == Some(&MAGIC[..]))
            .filter(|r| r.get(2) == Some(&VERSION))
            .and_then(|r| SerializedArray::from_slice(r.get(HEADER_LEN..)?).ok())
            .unwrap_or_else(initial_array)),
        Ok(None) | Err(StorageError::TooLarge) | Err(StorageError::Corrupt) => Ok(initial_array()),
        Err(e) => Err(e),
    }
}

/// Stores a serialized array (already checked by the caller).
pub(crate) fn save<S: Storage>(storage: &mut S, array: &[u8]) -> Result<(), StorageError> {
    let mut buf = heapless::Vec::<u8, RECORD_LEN>::new();
    let fits = buf.extend_from_slice(&MAGIC).is_ok()
        && buf.push(VERSION).is_ok()
        && buf.extend_from_slice(array).is_ok();
    if !fits {
        return Err(StorageError::TooLarge);
    }
    storage.write(RecordKey::LargeBlobs, &buf)
}

/// Resets the stored array to the initial value (authenticatorReset).
pub fn remove<S: Storage>(storage: &mut S) -> Result<(), StorageError> {
    storage.remove(RecordKey::LargeBlobs)
}

/// A fragmented write in progress (volatile; lost on power-down).
#[derive(Debug, Default)]
pub struct LargeBlobWriter {
    buffer: SerializedArray,
    expected_length: usize,
    active: bool,
}

impl LargeBlobWriter {
    /// Drops a write in progress.
    pub fn clear(&mut self) {
        self.buffer.clear();
        self.expected_length = 0;
        self.active = false;
    }

    /// Handles one authenticatorLargeBlobs request body (the CBOR after the
    /// command byte) and writes the response.
    pub fn handle<S: Storage>(
        &mut self,
        storage: &mut S,
        pin: &mut PinUv,
        body: &[u8],
        now_ms: u64,
        response: &mut Message,
    ) -> Result<(), Error> {
        let request: Request<'_> = super::deserialize(body)?;
        let offset = usize::try_from(request.offset).map_err(|_| Error::InvalidParameter)?;
        match (request.get, request.set) {
            (Some(get), None) => {
                if request.length.is_some() {
                    return Err(Error::InvalidParameter);
                }
                let get = usize::try_from(get).map_err(|_| Error::InvalidLength)?;
                if get > MAX_FRAGMENT_LENGTH {
                    return Err(Error::InvalidLength);
                }
                let array = load(storage).map_err(|_| Error::Other)?;
                if offset > array.len() {
                    return Err(Error::InvalidParameter);
                }
                let end = offset.saturating_add(get).min(array.len());
                write_config(response, array.get(offset..end).unwrap_or_default())
            }
            (None, Some(set)) => self.set(storage, pin, &request, offset, set, now_ms, response),
            _ => Err(Error::InvalidParameter),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn set<S: Storage>(
        &mut self,
        storage: &mut S,
        pin: &mut PinUv,
        request: &Request<'_>,
        offset: usize,
        fragment: &[u8],
        now_ms: u64,
        response: &mut Message,
    ) -> Result<(), Error> {
        if fragment.len() > MAX_FRAGMENT_LENGTH {
            return Err(Error::InvalidLength);
        }
        if offset == 0 {
            let length = request.length.ok_or(Error::InvalidParameter)?;
            let length = usize::try_from(length).map_err(|_| Error::LargeBlobStorageFull)?;
            if length > MAX_SERIALIZED_LARGE_BLOB_ARRAY {
                return Err(Error::LargeBlobStorageFull);
            }
            if length < MIN_LENGTH {
                return Err(Error::InvalidParameter);
            }
            self.clear();
            self.expected_length = length;
            self.active = true;
        } else {
            if request.length.is_some() {
                return Err(Error::InvalidParameter);
            }
            if !self.active || offset != self.buffer.len() {
                return Err(Error::InvalidSeq);
            }
        }
        if pin.is_protected() || pin.always_uv() {
            // PUAT_REQUIRED (0x36) is ctap-types' PinRequired.
            let param = request.pin_uv_auth_param.ok_or(Error::PinRequired)?;
            let protocol = request
                .pin_uv_auth_protocol
                .map(|p| u8::try_from(p).unwrap_or(u8::MAX));
            let offset_le = u32::try_from(offset)
                .map_err(|_| Error::InvalidParameter)?
                .to_le_bytes();
            let hash = Sha256::digest(fragment);
            pin.verify_pin_uv_auth_param(
                protocol,
                param,
                &[&[0xff; 32], &[0x0c, 0x00], &offset_le, &hash],
                permission::LBW,
                RpCheck::Ignore,
                now_ms,
            )?;
        }
        if offset.saturating_add(fragment.len()) > self.expected_length {
            return Err(Error::InvalidParameter);
        }
        self.buffer
            .extend_from_slice(fragment)
            .map_err(|_| Error::InvalidParameter)?;
        if self.buffer.len() == self.expected_length {
            let result = if hash_is_valid(&self.buffer) {
                save(storage, &self.buffer).map_err(|e| match e {
                    StorageError::Full => Error::LargeBlobStorageFull,
                    _ => Error::Other,
                })
            } else {
                Err(Error::IntegrityFailure)
            };
            self.clear();
            result?;
        }
        super::write_ok(response).map(|_| ())
    }
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// authenticatorLargeBlobs: see the module documentation.
    pub(crate) fn large_blobs(
        &mut self,
        body: &[u8],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        self.large_blob_writer.handle(
            &mut self.platform.storage,
            &mut self.pin,
            body,
            context.now_ms,
            response,
        )?;
        Ok(Outcome::Response)
    }
}

/// Writes `{1: config}` as a success response.
fn write_config(response: &mut Message, data: &[u8]) -> Result<(), Error> {
    response.clear();
    let len = u16::try_from(data.len()).map_err(|_| Error::Other)?;
    let [hi, lo] = len.to_be_bytes();
    // status OK, map(1), key 1, then a byte string header
    let head: &[u8] = match len {
        0..=23 => &[0x00, 0xA1, 0x01, 0x40 | lo],
        24..=255 => &[0x00, 0xA1, 0x01, 0x58, lo],
        _ => &[0x00, 0xA1, 0x01, 0x59, hi, lo],
    };
    response
        .extend_from_slice(head)
        .and_then(|()| response.extend_from_slice(data))
        .map_err(|_| Error::Other)
}

#[cfg(test)]
pub(crate) mod tests;
