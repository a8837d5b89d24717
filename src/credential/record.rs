//! A credential's persistent record (encoded by [`crate::store`]).

use super::sealed::SealedKey;
use super::{Algorithm, CredentialFlags, MAX_CRED_BLOB_LENGTH};

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A discoverable (resident) credential.
    Discoverable,
    /// A non-discoverable credential: issued through CTAP (tracked for its
    /// counter and for listing; the ID alone makes it work) or imported (the
    /// record holds its sealed private key).
    NonDiscoverable,
    /// A deleted non-discoverable credential issued through CTAP: its ID
    /// would still open, so the record stays behind to refuse it.
    Tombstone,
}

/// A credential as stored in its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRecord {
    /// What the record is.
    pub kind: RecordKind,
    /// SHA-256 of the RP ID (for U2F: the application parameter).
    pub rp_id_hash: [u8; 32],
    /// The RP ID; empty when unknown (U2F registrations).
    pub rp_id: heapless::String<256>,
    /// The user handle (empty for non-discoverable credentials made through CTAP).
    pub user_id: heapless::Vec<u8, 64>,
    /// The user name, if the RP gave one.
    pub user_name: Option<heapless::String<64>>,
    /// The user display name, if the RP gave one.
    pub display_name: Option<heapless::String<64>>,
    /// The credential ID: one this key wrapped, or any 1–255 bytes for an
    /// imported credential.
    pub credential_id: heapless::Vec<u8, 255>,
    /// The signature counter this credential continues from after a restart:
    /// at least every value issued for it (a reservation; see
    /// [`crate::authenticator::counters`]).
    pub sign_count: u32,
    /// Creation order among all records (larger is newer).
    pub created: u32,
    /// The credential's algorithm.
    pub algorithm: Algorithm,
    /// The credProtect level (0 = not requested, else 1–3).
    pub cred_protect: u8,
    /// Policy flags (for wrapped IDs the ID's own flags are authoritative).
    pub flags: CredentialFlags,
    /// Backup eligibility (authData BE), current.
    pub backup_eligible: bool,
    /// Backup state (authData BS), current.
    pub backup_state: bool,
    /// The credBlob (at most [`MAX_CRED_BLOB_LENGTH`] bytes; empty when none).
    pub cred_blob: heapless::Vec<u8, MAX_CRED_BLOB_LENGTH>,
    /// An imported credential's private key, sealed under the device secret.
    pub sealed_key: Option<SealedKey>,
    /// Which device secret the record belongs to (a tag of it; records left
    /// by an interrupted reset carry an old one). `None` in records older than
    /// version 3.
    pub epoch: Option<[u8; 4]>,
}

impl CredentialRecord {
    /// Whether the credential is discoverable.
    pub fn is_discoverable(&self) -> bool {
        self.kind == RecordKind::Discoverable
    }

    /// The listing view of this credential.
    pub fn info(&self, slot: u16) -> ResidentCredentialInfo<'_> {
        ResidentCredentialInfo {
            slot,
            rp_id: &self.rp_id,
            user_id: &self.user_id,
            user_name: self.user_name.as_deref(),
            display_name: self.display_name.as_deref(),
            credential_id: &self.credential_id,
            sign_count: self.sign_count,
            algorithm: self.algorithm.cose(),
        }
    }
}

/// A borrowed view of a resident credential, for listing (`ferrokey list`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResidentCredentialInfo<'a> {
    /// The storage slot.
    pub slot: u16,
    /// The RP ID.
    pub rp_id: &'a str,
    /// The user handle.
    pub user_id: &'a [u8],
    /// The user name, if any.
    pub user_name: Option<&'a str>,
    /// The user display name, if any.
    pub display_name: Option<&'a str>,
    /// The credential ID.
    pub credential_id: &'a [u8],
    /// The credential's signature counter.
    pub sign_count: u32,
    /// The COSE algorithm identifier.
    pub algorithm: i32,
}
