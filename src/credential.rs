//! The credential model: wrapped credential IDs and discoverable (resident)
//! credentials.
//!
//! # Credential ID format (77 bytes)
//!
//! ```text
//! version (1) | nonce (24) | ciphertext (36) | tag (16)
//! plaintext  = alg (1) | flags (1) | slot (2, big-endian; 0xFFFF = not resident) | private key (32)
//! AAD        = version (1) | rpIdHash (32)
//! ```
//!
//! | version | flags defined | written |
//! |---|---|---|
//! | 1 | bits 0–3 (credProtect level, UV required, hmac-secret) | until this format change; still opens and works |
//! | 2 | bits 0–3 as v1, bit 4 backup eligible (BE), bit 5 backed up (BS) at creation | by this build |
//!
//! The private key is sealed with XChaCha20-Poly1305 under a key derived from the
//! device secret ([`crate::crypto::WrapKey`]). The rpIdHash (for U2F: the
//! application parameter) is the associated data, so an ID only opens for the
//! RP it was made for; apart from the version byte the ID is indistinguishable
//! from random. Foreign, forged, tampered or wrong-RP IDs fail to open and are
//! simply "not ours". A reset regenerates the device secret, which invalidates
//! every ID issued before.
//!
//! A discoverable credential carries its storage slot in the plaintext: a
//! presented ID then leads straight to its record, and it only counts as ours
//! while that slot still holds exactly this ID (deleted or overwritten
//! credentials stop working). A non-discoverable one (slot 0xFFFF) works from
//! the ID alone; the key also keeps a record of it while room lasts (see
//! [`crate::store`]) for its counter and for listing.
//!
//! `alg` is 1 for ES256 and 2 for EdDSA (Ed25519; the key is then the 32-byte
//! seed). IDs with undefined flag bits for their version are refused.
//!
//! Credentials imported through the instrument API
//! ([`crate::authenticator::instrument`]) have IDs chosen by the caller; their
//! private key is sealed in their record instead ([`sealed`]).

mod key;
pub mod large_blob;
mod record;
pub mod sealed;

use rand_core::{CryptoRng, RngCore};

use crate::crypto::wrap::{NONCE_LEN, TAG_LEN};
use crate::crypto::{CryptoError, WrapKey};

pub use key::{cose_alg, CoseKey, CredentialKey, Signature, MAX_COSE_KEY_LEN, MAX_SIGNATURE_LEN};
pub use record::{CredentialRecord, RecordKind, ResidentCredentialInfo};

/// The version byte of the credential IDs this build issues.
pub const CREDENTIAL_ID_VERSION: u8 = 2;
/// The first credential ID version (no backup flags); still opened.
pub const CREDENTIAL_ID_VERSION_1: u8 = 1;
const PLAINTEXT_LEN: usize = 1 + 1 + 2 + 32;
/// The length of every credential ID this key issues.
pub const CREDENTIAL_ID_LEN: usize = 1 + NONCE_LEN + PLAINTEXT_LEN + TAG_LEN;
/// The slot value meaning "not a discoverable credential".
const NO_SLOT: u16 = 0xFFFF;
/// Flag bits defined by ID version 1 (see [`CredentialFlags`]).
const KNOWN_FLAGS_V1: u8 = 0b0000_1111;
/// Flag bits defined by ID version 2: v1's and the backup flags.
const KNOWN_FLAGS_V2: u8 = 0b0011_1111;
/// The largest credBlob a discoverable credential stores (getInfo maxCredBlobLength).
pub const MAX_CRED_BLOB_LENGTH: usize = 32;

/// A credential ID as issued by this key.
pub type CredentialId = [u8; CREDENTIAL_ID_LEN];

/// Why a credential operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialError {
    /// The ID was not issued by this key for this RP (or was tampered with).
    NotOurs,
    /// A cryptographic primitive failed.
    Crypto(CryptoError),
}

impl From<CryptoError> for CredentialError {
    fn from(e: CryptoError) -> Self {
        CredentialError::Crypto(e)
    }
}

/// A public-key algorithm a credential can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256 (COSE -7).
    Es256,
    /// Ed25519 (COSE -8, "EdDSA").
    EdDsa,
}

impl Algorithm {
    /// The COSE algorithm identifier.
    pub fn cose(self) -> i32 {
        cose_alg(self)
    }

    /// The one-byte code used in credential IDs and records.
    pub fn code(self) -> u8 {
        match self {
            Algorithm::Es256 => 1,
            Algorithm::EdDsa => 2,
        }
    }

    /// The inverse of [`Algorithm::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Algorithm::Es256),
            2 => Some(Algorithm::EdDsa),
            _ => None,
        }
    }
}

/// Per-credential policy bits carried inside the credential ID: the credProtect
/// level (bits 0–1; 0 when the RP did not ask, which behaves as level 1), "UV
/// required" (bit 2, set together with level 3), "hmac-secret enabled" (bit
/// 3), and from ID version 2 the backup flags the credential was created with
/// (BE bit 4, BS bit 5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredentialFlags(u8);

impl CredentialFlags {
    const CRED_PROTECT_MASK: u8 = 0b0000_0011;
    const UV_REQUIRED: u8 = 0b0000_0100;
    const HMAC_SECRET: u8 = 0b0000_1000;
    const BACKUP_ELIGIBLE: u8 = 0b0001_0000;
    const BACKED_UP: u8 = 0b0010_0000;

    /// The flags from their raw bits, if every bit is defined.
    pub fn from_bits(bits: u8) -> Option<Self> {
        (bits & !KNOWN_FLAGS_V2 == 0).then_some(CredentialFlags(bits))
    }

    /// These flags with the backup flags set to `eligible` and `backed_up`.
    pub fn with_backup(self, eligible: bool, backed_up: bool) -> Self {
        let mut bits = self.0 & !(Self::BACKUP_ELIGIBLE | Self::BACKED_UP);
        if eligible {
            bits |= Self::BACKUP_ELIGIBLE;
        }
        if backed_up {
            bits |= Self::BACKED_UP;
        }
        CredentialFlags(bits)
    }

    /// Backup eligibility (BE) at creation.
    pub fn backup_eligible(self) -> bool {
        self.0 & Self::BACKUP_ELIGIBLE != 0
    }

    /// Backup state (BS) at creation.
    pub fn backed_up(self) -> bool {
        self.0 & Self::BACKED_UP != 0
    }

    /// Flags for a new credential: `cred_protect` is the requested level (0 = none,
    /// 1–3; other values are treated as none) and whether hmac-secret was enabled.
    pub fn new(cred_protect: u8, hmac_secret: bool) -> Self {
        let level = if cred_protect <= 3 { cred_protect } else { 0 };
        let mut bits = level;
        if level == 3 {
            bits |= Self::UV_REQUIRED;
        }
        if hmac_secret {
            bits |= Self::HMAC_SECRET;
        }
        CredentialFlags(bits)
    }

    /// The raw bits.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The credProtect level as requested at creation (0 = not requested).
    pub fn cred_protect(self) -> u8 {
        self.0 & Self::CRED_PROTECT_MASK
    }

    /// Whether the credential may only be used with user verification
    /// (credProtect userVerificationRequired).
    pub fn uv_required(self) -> bool {
        self.0 & Self::UV_REQUIRED != 0 || self.cred_protect() == 3
    }

    /// Whether the credential was created with hmac-secret (has CredRandom).
    pub fn hmac_secret(self) -> bool {
        self.0 & Self::HMAC_SECRET != 0
    }
}

/// What a credential ID decrypts to.
#[derive(Debug)]
pub struct UnwrappedCredential {
    /// The credential's algorithm.
    pub algorithm: Algorithm,
    /// Policy bits.
    pub flags: CredentialFlags,
    /// The storage slot for a discoverable credential.
    pub slot: Option<u16>,
    /// The private key.
    pub key: CredentialKey,
}

fn aad(version: u8, rp_id_hash: &[u8; 32]) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = version;
    aad[1..].copy_from_slice(rp_id_hash);
    aad
}

/// Seals `key` (and its algorithm) into a new credential ID bound to `rp_id_hash`.
pub fn wrap<R: RngCore + CryptoRng>(
    wrap_key: &WrapKey,
    rng: &mut R,
    rp_id_hash: &[u8; 32],
    flags: CredentialFlags,
    slot: Option<u16>,
    key: &CredentialKey,
) -> Result<CredentialId, CredentialError> {
    wrap_version(
        CREDENTIAL_ID_VERSION,
        wrap_key,
        rng,
        rp_id_hash,
        flags,
        slot,
        key,
    )
}

/// [`wrap`] in ID format `version` (tests make version 1 IDs with it).
pub(crate) fn wrap_version<R: RngCore + CryptoRng>(
    version: u8,
    wrap_key: &WrapKey,
    rng: &mut R,
    rp_id_hash: &[u8; 32],
    flags: CredentialFlags,
    slot: Option<u16>,
    key: &CredentialKey,
) -> Result<CredentialId, CredentialError> {
    let mut id = [0u8; CREDENTIAL_ID_LEN];
    id[0] = version;
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    id[1..1 + NONCE_LEN].copy_from_slice(&nonce);

    let mut plaintext = [0u8; PLAINTEXT_LEN];
    plaintext[0] = key.algorithm().code();
    plaintext[1] = flags.0;
    plaintext[2..4].copy_from_slice(&slot.unwrap_or(NO_SLOT).to_be_bytes());
    plaintext[4..].copy_from_slice(key.as_bytes());
    let tag = wrap_key.seal(&nonce, &aad(version, rp_id_hash), &mut plaintext)?;
    id[1 + NONCE_LEN..1 + NONCE_LEN + PLAINTEXT_LEN].copy_from_slice(&plaintext);
    id[1 + NONCE_LEN + PLAINTEXT_LEN..].copy_from_slice(&tag);
    Ok(id)
}

#[cfg(test)]
std::thread_local! {
    /// How many IDs this thread opened (tests count the work of a ceremony).
    pub(crate) static UNWRAPS: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// Opens a credential ID presented for `rp_id_hash`. Anything that is not a
/// well-formed ID issued by this key for this RP gives [`CredentialError::NotOurs`].
pub fn unwrap(
    wrap_key: &WrapKey,
    rp_id_hash: &[u8; 32],
    id: &[u8],
) -> Result<UnwrappedCredential, CredentialError> {
    #[cfg(test)]
    UNWRAPS.with(|n| n.set(n.get() + 1));
    let version = match id.first() {
        Some(&v @ (CREDENTIAL_ID_VERSION_1 | CREDENTIAL_ID_VERSION)) => v,
        _ => return Err(CredentialError::NotOurs),
    };
    if id.len() != CREDENTIAL_ID_LEN {
        return Err(CredentialError::NotOurs);
    }
    let mut nonce = [0u8; NONCE_LEN];
    let mut plaintext = [0u8; PLAINTEXT_LEN];
    let mut tag = [0u8; TAG_LEN];
    let (Some(n), Some(c), Some(t)) = (
        id.get(1..1 + NONCE_LEN),
        id.get(1 + NONCE_LEN..1 + NONCE_LEN + PLAINTEXT_LEN),
        id.get(1 + NONCE_LEN + PLAINTEXT_LEN..),
    ) else {
        return Err(CredentialError::NotOurs);
    };
    nonce.copy_from_slice(n);
    plaintext.copy_from_slice(c);
    tag.copy_from_slice(t);
    wrap_key
        .open(&nonce, &aad(version, rp_id_hash), &mut plaintext, &tag)
        .map_err(|_| CredentialError::NotOurs)?;
    let known_flags = if version == CREDENTIAL_ID_VERSION_1 {
        KNOWN_FLAGS_V1
    } else {
        KNOWN_FLAGS_V2
    };
    let result = parse_plaintext(&plaintext, known_flags);
    zeroize::Zeroize::zeroize(&mut plaintext);
    result
}

fn parse_plaintext(
    p: &[u8; PLAINTEXT_LEN],
    known_flags: u8,
) -> Result<UnwrappedCredential, CredentialError> {
    let algorithm = Algorithm::from_code(p[0]).ok_or(CredentialError::NotOurs)?;
    if p[1] & !known_flags != 0 {
        return Err(CredentialError::NotOurs);
    }
    let slot = u16::from_be_bytes([p[2], p[3]]);
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&p[4..]);
    let key = CredentialKey::from_bytes(algorithm, &scalar).map_err(|_| CredentialError::NotOurs);
    zeroize::Zeroize::zeroize(&mut scalar);
    Ok(UnwrappedCredential {
        algorithm,
        flags: CredentialFlags(p[1]),
        slot: (slot != NO_SLOT).then_some(slot),
        key: key?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn setup() -> (WrapKey, rand_chacha::ChaCha20Rng, CredentialKey) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let key = CredentialKey::generate(Algorithm::Es256, &mut rng);
        (WrapKey::derive(&[5; 32]).unwrap(), rng, key)
    }

    /// The backup flags are exactly bits 4 (BE) and 5 (BS): set and cleared
    /// independently, read back, and never touching the other flags.
    #[test]
    fn backup_flags_set_clear_and_read_back_their_own_bits_only() {
        for base in [
            CredentialFlags::default(),
            CredentialFlags::new(3, true),
            CredentialFlags::new(1, false).with_backup(true, true),
        ] {
            for (eligible, backed_up) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                let flags = base.with_backup(eligible, backed_up);
                assert_eq!(flags.backup_eligible(), eligible);
                assert_eq!(flags.backed_up(), backed_up);
                let expected = (base.bits() & 0b0000_1111)
                    | if eligible { 0b0001_0000 } else { 0 }
                    | if backed_up { 0b0010_0000 } else { 0 };
                assert_eq!(
                    flags.bits(),
                    expected,
                    "{base:?} with ({eligible}, {backed_up})"
                );
                assert_eq!(CredentialFlags::from_bits(flags.bits()), Some(flags));
            }
        }
    }

    #[test]
    fn wrap_unwrap_roundtrip() {
        let (wk, mut rng, key) = setup();
        let rp = [1u8; 32];
        for slot in [None, Some(0), Some(99)] {
            let id = wrap(&wk, &mut rng, &rp, CredentialFlags::default(), slot, &key).unwrap();
            assert_eq!(id.len(), CREDENTIAL_ID_LEN);
            assert!(id.len() <= 255);
            assert_eq!(id[0], CREDENTIAL_ID_VERSION);
            let un = unwrap(&wk, &rp, &id).unwrap();
            assert_eq!(un.slot, slot);
            assert_eq!(un.algorithm, Algorithm::Es256);
            assert_eq!(un.key.as_bytes(), key.as_bytes());
            // The key does not appear in clear.
            assert!(!id.windows(32).any(|w| w == key.as_bytes()));
        }
    }

    #[test]
    fn foreign_forged_and_wrong_rp_ids_are_not_ours() {
        let (wk, mut rng, key) = setup();
        let rp = [1u8; 32];
        let id = wrap(&wk, &mut rng, &rp, CredentialFlags::default(), None, &key).unwrap();
        assert_eq!(
            unwrap(&wk, &[2; 32], &id).unwrap_err(),
            CredentialError::NotOurs
        );
        for i in 0..id.len() {
            let mut bad = id;
            bad[i] ^= 0x40;
            assert_eq!(
                unwrap(&wk, &rp, &bad).unwrap_err(),
                CredentialError::NotOurs,
                "byte {i}"
            );
        }
        assert!(unwrap(&wk, &rp, &id[..76]).is_err());
        assert!(unwrap(&wk, &rp, &[]).is_err());
        assert!(unwrap(&wk, &rp, &[1u8; 200]).is_err());
        let other = WrapKey::derive(&[6; 32]).unwrap();
        assert!(unwrap(&other, &rp, &id).is_err());
    }

    #[test]
    fn ids_are_fresh() {
        let (wk, mut rng, key) = setup();
        let a = wrap(
            &wk,
            &mut rng,
            &[0; 32],
            CredentialFlags::default(),
            None,
            &key,
        )
        .unwrap();
        let b = wrap(
            &wk,
            &mut rng,
            &[0; 32],
            CredentialFlags::default(),
            None,
            &key,
        )
        .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn flags_and_algorithm_survive_wrapping() {
        let (wk, mut rng, _) = setup();
        let rp = [4u8; 32];
        let key = CredentialKey::generate(Algorithm::EdDsa, &mut rng);
        for (level, hmac) in [(0, false), (1, true), (2, false), (3, true)] {
            let flags = CredentialFlags::new(level, hmac);
            let id = wrap(&wk, &mut rng, &rp, flags, None, &key).unwrap();
            let un = unwrap(&wk, &rp, &id).unwrap();
            assert_eq!(un.algorithm, Algorithm::EdDsa);
            assert_eq!(un.key.as_bytes(), key.as_bytes());
            assert_eq!(un.flags, flags);
            assert_eq!(un.flags.cred_protect(), level);
            assert_eq!(un.flags.hmac_secret(), hmac);
            assert_eq!(un.flags.uv_required(), level == 3);
        }
        // Out-of-range levels are treated as "not requested".
        assert_eq!(CredentialFlags::new(4, false).cred_protect(), 0);
        assert!(!CredentialFlags::new(7, false).uv_required());
        // Either mark alone requires UV (IDs carry both; one is enough).
        for bits in [0b011, 0b100] {
            assert!(
                CredentialFlags::from_bits(bits).unwrap().uv_required(),
                "{bits:#b}"
            );
        }
    }

    #[test]
    fn undefined_flag_bits_and_algorithms_are_refused() {
        let (wk, mut rng, key) = setup();
        let rp = [5u8; 32];
        // Seal plaintexts by hand, as a future (or forged-by-us) version might.
        let seal = |version: u8, alg: u8, flags: u8, rng: &mut rand_chacha::ChaCha20Rng| {
            let mut nonce = [0u8; NONCE_LEN];
            rng.fill_bytes(&mut nonce);
            let mut p = [0u8; PLAINTEXT_LEN];
            p[0] = alg;
            p[1] = flags;
            p[2..4].copy_from_slice(&NO_SLOT.to_be_bytes());
            p[4..].copy_from_slice(key.as_bytes());
            let tag = wk.seal(&nonce, &aad(version, &rp), &mut p).unwrap();
            let mut id = std::vec![version];
            id.extend_from_slice(&nonce);
            id.extend_from_slice(&p);
            id.extend_from_slice(&tag);
            id
        };
        assert!(unwrap(&wk, &rp, &seal(1, 1, 0b1111, &mut rng)).is_ok());
        assert!(unwrap(&wk, &rp, &seal(1, 2, 0, &mut rng)).is_ok());
        // Version 1 never had the backup flags; version 2 has them.
        assert_eq!(
            unwrap(&wk, &rp, &seal(1, 1, 0b1_0000, &mut rng)).unwrap_err(),
            CredentialError::NotOurs
        );
        let v2 = unwrap(&wk, &rp, &seal(2, 1, 0b11_1111, &mut rng)).unwrap();
        assert!(v2.flags.backup_eligible() && v2.flags.backed_up());
        for (version, flags) in [(2, 0b100_0000), (2, 0b1000_0000)] {
            assert_eq!(
                unwrap(&wk, &rp, &seal(version, 1, flags, &mut rng)).unwrap_err(),
                CredentialError::NotOurs
            );
        }
        assert_eq!(
            unwrap(&wk, &rp, &seal(1, 3, 0, &mut rng)).unwrap_err(),
            CredentialError::NotOurs
        );
        // Unknown versions are not ours, even when they would open.
        assert!(unwrap(&wk, &rp, &seal(3, 1, 0, &mut rng)).is_err());
        assert!(unwrap(&wk, &rp, &seal(0, 1, 0, &mut rng)).is_err());
    }
}
