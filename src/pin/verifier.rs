//! The stored PIN verifier: `CurrentStoredPIN` salted and stretched.
//!
//! CTAP 2.1 has the platform send `pinHash` = LEFT(SHA-256(pin), 16) and the
//! key compare it with what it stored. Stored as is, that value gives a 4–8
//! digit PIN away at once to anyone who can read the state (one SHA-256 per
//! guess, and the same value on every key). So the key stores
//!
//! ```text
//! verifier = PBKDF2-HMAC-SHA-256(pinHash, salt, iterations, 32 bytes)
//! ```
//!
//! with 16 random bytes of salt per PIN, and checks a received pinHash by
//! computing its verifier and comparing the two in constant time. The CTAP
//! exchange itself is unchanged (the spec's pinHash comparison, made on the
//! stretched values). A stored pinHash of an older record can be stretched
//! without the PIN, which is how those records are migrated on load.
//!
//! Why PBKDF2 and not Argon2: the core is `no_std` without an allocator and
//! runs on a 32 KiB stack ([`crate::device`]'s small-stack test). Argon2's
//! strength is its memory, and the memory an MCU-shaped core could lend it (a
//! few KiB, kept in the authenticator for the whole power-up) buys no real
//! resistance to a GPU; its time cost is what would be left, and PBKDF2 gives
//! that with a few hundred bytes of stack and the SHA-256 and HMAC crates the
//! core already has. What no KDF can change at an interactive cost is that a
//! PIN of n digits falls to 10^n guesses: the verifier makes each guess cost
//! [`PinKdfCost`] iterations instead of one hash, and the salt stops
//! precomputed tables and cross-key reuse.

use pbkdf2::pbkdf2_hmac;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::state::PIN_HASH_LEN;

/// The salt length.
pub const SALT_LEN: usize = 16;
/// The verifier length (one SHA-256 output).
pub const VERIFIER_LEN: usize = 32;

/// The PIN verifier's cost: PBKDF2-HMAC-SHA-256 iterations.
///
/// The default, [`PinKdfCost::DEFAULT`], is 200,000 iterations: 34 ms per
/// verification in a release build on the development machine (2 shared
/// cores; 5,900 iterations per ms; 165 times one P-256 signature measured in
/// the same run by `cargo bench --bench pin_verifier`), about 100 ms in the
/// opt-level-1 dev build the process and guest stages run. A verification
/// happens once per setPIN, getPinToken and getPinUvAuthToken…UsingPin, up to
/// three times per changePIN (the current PIN, the forcePINChange "not the
/// same PIN" check, the new verifier). The cost is written into each record, so a record keeps
/// verifying after the configured cost changes; the next correct PIN then
/// re-stretches it at the configured cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinKdfCost(u32);

impl PinKdfCost {
    /// The default cost (see the type's documentation for the measurement).
    pub const DEFAULT: PinKdfCost = PinKdfCost(200_000);
    /// The cheapest cost, for tests that verify PINs by the hundred.
    pub const TEST: PinKdfCost = PinKdfCost(16);
    /// The most iterations a record may ask for: a record asking for more is
    /// refused as corrupt (a tampered state file must not stall the key).
    pub const MAX_ITERATIONS: u32 = 10_000_000;

    /// A cost of `iterations` (1..=[`Self::MAX_ITERATIONS`]).
    pub const fn iterations(iterations: u32) -> Option<PinKdfCost> {
        if iterations >= 1 && iterations <= Self::MAX_ITERATIONS {
            Some(PinKdfCost(iterations))
        } else {
            None
        }
    }

    /// The number of iterations.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// [`PinKdfCost::DEFAULT`]; in this crate's own unit tests (which verify PINs
/// by the hundred) [`PinKdfCost::TEST`]. Everything built on the crate, its
/// integration and process tests included, gets the default.
impl Default for PinKdfCost {
    fn default() -> Self {
        if cfg!(test) {
            PinKdfCost::TEST
        } else {
            PinKdfCost::DEFAULT
        }
    }
}

/// A salted, stretched `CurrentStoredPIN`. Wiped from memory when dropped;
/// no `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PinVerifier {
    salt: [u8; SALT_LEN],
    cost: PinKdfCost,
    verifier: [u8; VERIFIER_LEN],
}

impl Drop for PinVerifier {
    fn drop(&mut self) {
        crate::wipe::wipe("PinVerifier salt", &mut self.salt);
        crate::wipe::wipe("PinVerifier", &mut self.verifier);
    }
}

impl PinVerifier {
    /// The verifier of `pin_hash` (LEFT(SHA-256(pin), 16)) under a fresh
    /// random salt.
    pub fn new<R: RngCore + CryptoRng>(
        pin_hash: &[u8; PIN_HASH_LEN],
        cost: PinKdfCost,
        rng: &mut R,
    ) -> Self {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        let mut this = PinVerifier {
            salt,
            cost,
            verifier: [0; VERIFIER_LEN],
        };
        stretch(pin_hash, &this.salt, cost, &mut this.verifier);
        this
    }

    /// A stored verifier (see [`Self::parts`]).
    pub fn from_parts(
        salt: [u8; SALT_LEN],
        cost: PinKdfCost,
        verifier: [u8; VERIFIER_LEN],
    ) -> Self {
        PinVerifier {
            salt,
            cost,
            verifier,
        }
    }

    /// What is stored: the salt, the cost and the verifier.
    pub fn parts(&self) -> (&[u8; SALT_LEN], PinKdfCost, &[u8; VERIFIER_LEN]) {
        (&self.salt, self.cost, &self.verifier)
    }

    /// The cost this verifier was made with.
    pub fn cost(&self) -> PinKdfCost {
        self.cost
    }

    /// Whether `candidate` (a decrypted pinHash) is the PIN's hash: its
    /// verifier under this salt and cost, compared in constant time. A
    /// candidate of the wrong length never matches.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let Ok(candidate) = <&[u8; PIN_HASH_LEN]>::try_from(candidate) else {
            return false;
        };
        let mut computed = [0u8; VERIFIER_LEN];
        stretch(candidate, &self.salt, self.cost, &mut computed);
        let equal = bool::from(computed.ct_eq(&self.verifier));
        crate::wipe::wipe("PinVerifier candidate", &mut computed);
        equal
    }
}

/// PBKDF2-HMAC-SHA-256(pin_hash, salt, cost, 32).
fn stretch(
    pin_hash: &[u8; PIN_HASH_LEN],
    salt: &[u8; SALT_LEN],
    cost: PinKdfCost,
    out: &mut [u8; VERIFIER_LEN],
) {
    pbkdf2_hmac::<Sha256>(pin_hash, salt, cost.get(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_platform::seeded_rng;

    const HASH: [u8; PIN_HASH_LEN] = [0x3C; PIN_HASH_LEN];

    #[test]
    fn the_verifier_is_pbkdf2_hmac_sha256_of_the_pin_hash() {
        // RFC 7914 §11's PBKDF2-HMAC-SHA-256 vector ("passwd", "salt", 1),
        // first 32 bytes, through the same function the verifier uses.
        let mut out = [0u8; 32];
        pbkdf2_hmac::<Sha256>(b"passwd", b"salt", 1, &mut out);
        assert_eq!(
            out[..16],
            [
                0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91, 0xc2, 0x25, 0x44,
                0xb6, 0x05
            ]
        );
        // Independently computed here with hmac: one iteration is
        // HMAC(pinHash, salt || INT(1)).
        use hmac::{Hmac, Mac};
        let v = PinVerifier::new(
            &HASH,
            PinKdfCost::iterations(1).unwrap(),
            &mut seeded_rng(1),
        );
        let (salt, _, verifier) = v.parts();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&HASH).unwrap();
        mac.update(salt);
        mac.update(&1u32.to_be_bytes());
        assert_eq!(mac.finalize().into_bytes()[..], verifier[..]);
    }

    #[test]
    fn it_matches_its_pin_hash_only() {
        let mut rng = seeded_rng(7);
        let v = PinVerifier::new(&HASH, PinKdfCost::TEST, &mut rng);
        assert!(v.matches(&HASH));
        let mut other = HASH;
        other[15] ^= 1;
        assert!(!v.matches(&other));
        assert!(!v.matches(&HASH[..15]));
        assert!(!v.matches(&[0x3C; 17]));
        assert!(!v.matches(&[]));
        // The verifier is not the hash, and a new salt gives a new verifier.
        let again = PinVerifier::new(&HASH, PinKdfCost::TEST, &mut rng);
        assert_ne!(v.parts().0, again.parts().0);
        assert_ne!(v.parts().2, again.parts().2);
        assert!(again.matches(&HASH));
        assert_ne!(&v.parts().2[..PIN_HASH_LEN], &HASH[..]);
        // The cost is part of the verifier.
        let (salt, _, verifier) = v.parts();
        let cheaper =
            PinVerifier::from_parts(*salt, PinKdfCost::iterations(15).unwrap(), *verifier);
        assert!(!cheaper.matches(&HASH));
    }

    #[test]
    fn costs_are_bounded() {
        assert_eq!(PinKdfCost::iterations(0), None);
        assert_eq!(PinKdfCost::iterations(PinKdfCost::MAX_ITERATIONS + 1), None);
        assert_eq!(PinKdfCost::iterations(1).unwrap().get(), 1);
        assert_eq!(PinKdfCost::default(), PinKdfCost::TEST, "unit tests");
        assert!(PinKdfCost::DEFAULT.get() <= PinKdfCost::MAX_ITERATIONS);
    }
}
