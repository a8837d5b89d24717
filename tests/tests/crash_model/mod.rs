//! A model of what one client has been told by a key, for the kill -9 rounds
//! (`crash_kill.rs`) and the soak (`soak.rs`): random operations over any
//! [`Ctap2`] transport, each acknowledged answer recorded, and a check of the
//! key against the model (after a restart, or at any time) that resolves the
//! one operation that may have been cut off by a kill.
//!
//! Invariants checked: every signature verifies with the key its registration
//! returned; no counter is at or below a value already returned; every
//! acknowledged registration is there and every acknowledged deletion stays
//! gone; the PIN is the acknowledged one (or the new one of a cut-off
//! change); pinRetries never rises without a correct PIN; a cut-off reset is
//! all or nothing. Any error status the client did not provoke is a violation.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use ciborium::Value;
use ferrokey_tests::cbor::int;
use ferrokey_tests::ctap2::{
    self, cm, cmd, status, Assertion, Ctap2, GetAssertion, MakeCredential, PublicKey,
};
use std::sync::atomic::{AtomicU64, Ordering};

use ferrokey_tests::ctaphid_client::{ClientError, CtapHidClient};
use ferrokey_tests::pin::{permission, ClientPin, Token};
use ferrokey_tests::usbip_client::UsbipClient;
use rand::rngs::StdRng;
use rand::Rng;

/// Why an operation or a check stopped.
#[derive(Debug)]
pub enum Fail {
    /// The transport failed (the server died or was detached).
    Transport(String),
    /// The key broke an invariant or answered an error nobody provoked.
    Violation(String),
}

type Res<T> = Result<T, Fail>;

fn transport<T>(r: Result<T, ClientError>) -> Res<T> {
    r.map_err(|e| match e {
        ClientError::Protocol(what) => Fail::Violation(format!("malformed answer: {what}")),
        other => Fail::Transport(other.to_string()),
    })
}

/// One credential, as its registration and later assertions told us.
#[derive(Clone, Debug)]
pub struct Cred {
    /// From the registration (None: found as a discoverable credential whose
    /// registration answer was cut off).
    pub public_key: Option<PublicKey>,
    /// The highest counter returned.
    pub max_counter: u32,
    /// Discoverable.
    pub resident: bool,
}

/// The operation that may have been cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// A registration (its credential may or may not exist).
    MakeCredential,
    /// An assertion (its counter may have been spent).
    Assertion,
    /// A credentialManagement deletion of this id.
    Delete(Vec<u8>),
    /// setPIN with this PIN.
    SetPin(String),
    /// changePIN to this PIN.
    ChangePin(String),
    /// A PIN token with the correct PIN.
    Token,
    /// A wrong PIN.
    WrongPin,
    /// authenticatorReset.
    Reset,
}

/// What a key has acknowledged to one client.
#[derive(Debug)]
pub struct Model {
    /// The RP this client registers at (clients of one key use their own).
    pub rp: String,
    /// Whether this client does PIN operations, deletions and resets (one
    /// client per key at most).
    pub owner: bool,
    /// Whether the owner also resets the key.
    pub allow_reset: bool,
    /// Whether the owner also enters wrong PINs.
    pub allow_wrong_pin: bool,
    /// Known credentials.
    pub creds: BTreeMap<Vec<u8>, Cred>,
    /// Acknowledged deletions.
    pub gone: BTreeSet<Vec<u8>>,
    /// The PIN (owner only).
    pub pin: Option<String>,
    /// pinRetries as last read.
    pub retries: u8,
    /// Wrong PINs since the last power-up.
    pub mismatches: u8,
    /// The operation in flight (cut off if the transport failed in it).
    pub pending: Option<Pending>,
    /// Operations acknowledged.
    pub ops: u64,
    serial: u64,
    cdh: u8,
}

/// The most credentials a model creates before it deletes or resets.
pub const MAX_CREDS: usize = 8;

fn cp() -> ClientPin {
    ClientPin::new(2)
}

impl Model {
    /// A fresh model for RP `rp`.
    pub fn new(rp: &str, owner: bool) -> Self {
        Model {
            rp: rp.to_string(),
            owner,
            allow_reset: owner,
            allow_wrong_pin: owner,
            creds: BTreeMap::new(),
            gone: BTreeSet::new(),
            pin: None,
            retries: 8,
            mismatches: 0,
            pending: None,
            ops: 0,
            serial: 0,
            cdh: 0,
        }
    }

    fn next_cdh(&mut self) -> [u8; 32] {
        self.cdh = self.cdh.wrapping_add(1);
        let mut cdh = [self.cdh; 32];
        cdh[..8].copy_from_slice(&self.serial.to_be_bytes());
        self.serial += 1;
        cdh
    }

    /// A power cycle (restart, detach): consecutive mismatches start over.
    pub fn power_cycled(&mut self) {
        self.mismatches = 0;
    }

    fn token<C: Ctap2 + ?Sized>(&mut self, c: &mut C, perm: u8, rp: Option<&str>) -> Res<Token> {
        let pin = self.pin.clone().unwrap();
        match cp().token(c, &pin, Some(perm), rp) {
            Ok(t) => {
                self.retries = 8;
                self.mismatches = 0;
                Ok(t)
            }
            Err(status::OTHER) => Err(Fail::Transport("token: no answer".into())),
            Err(s) => Err(Fail::Violation(format!("PIN token refused: {s:#04x}"))),
        }
    }

    /// Records an assertion: its signature and counter against the model.
    fn saw(&mut self, a: &Assertion, adopt: bool) -> Res<()> {
        let id = &a.credential_id;
        if self.gone.contains(id) {
            return Err(Fail::Violation(format!(
                "deleted credential {} signs",
                hex(id)
            )));
        }
        let cred = match self.creds.get_mut(id) {
            Some(c) => c,
            None if adopt => self.creds.entry(id.clone()).or_insert(Cred {
                public_key: None,
                max_counter: 0,
                resident: true,
            }),
            None => return Err(Fail::Violation(format!("unknown credential {}", hex(id)))),
        };
        if let Some(key) = &cred.public_key {
            a.verify(key)
                .map_err(|e| Fail::Violation(format!("signature of {}: {e}", hex(id))))?;
        }
        if a.auth_data.sign_count <= cred.max_counter {
            return Err(Fail::Violation(format!(
                "counter of {} went back: {} after {}",
                hex(id),
                a.auth_data.sign_count,
                cred.max_counter
            )));
        }
        cred.max_counter = a.auth_data.sign_count;
        Ok(())
    }

    /// One random operation; returns its name. `pending` is set while it runs.
    pub fn random_op<C: Ctap2 + ?Sized>(
        &mut self,
        c: &mut C,
        rng: &mut StdRng,
    ) -> Res<&'static str> {
        let residents: Vec<Vec<u8>> = self
            .creds
            .iter()
            .filter(|(_, cr)| cr.resident && cr.public_key.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        let roll = rng.gen_range(0..100);
        let name = if self.creds.len() < MAX_CREDS && roll < 25 {
            self.make_credential(c, rng.gen_bool(0.5))?;
            "makeCredential"
        } else if !self.creds.is_empty() && roll < 55 {
            let ids: Vec<Vec<u8>> = self.creds.keys().cloned().collect();
            let id = ids[rng.gen_range(0..ids.len())].clone();
            self.assert_one(c, &id)?;
            "getAssertion"
        } else if !residents.is_empty() && roll < 65 {
            self.assert_discoverable(c)?;
            "getAssertion+getNextAssertion"
        } else if self.owner && self.pin.is_none() && roll < 75 {
            let pin = format!("{:08}", rng.gen_range(0..100_000_000u32));
            self.set_pin(c, &pin)?;
            "setPIN"
        } else if self.owner && self.pin.is_some() && roll < 70 {
            let pin = format!("{:08}", rng.gen_range(0..100_000_000u32));
            self.change_pin(c, &pin)?;
            "changePIN"
        } else if self.owner && self.pin.is_some() && roll < 75 {
            if self.allow_wrong_pin && self.retries > 4 && self.mismatches < 2 {
                self.wrong_pin(c)?;
                "wrong PIN"
            } else {
                self.pending = Some(Pending::Token);
                self.token(c, permission::GA, Some(&self.rp.clone()))?;
                "PIN token"
            }
        } else if self.owner && self.pin.is_some() && !residents.is_empty() && roll < 85 {
            let id = residents[rng.gen_range(0..residents.len())].clone();
            self.delete(c, &id)?;
            "credentialManagement delete"
        } else if self.owner && self.allow_reset && (roll >= 97 || self.creds.len() >= MAX_CREDS) {
            self.reset(c)?;
            "reset"
        } else {
            ctap2::get_info(c).map_err(|e| Fail::Transport(e.to_string()))?;
            "getInfo"
        };
        self.pending = None;
        self.ops += 1;
        Ok(name)
    }

    fn make_credential<C: Ctap2 + ?Sized>(&mut self, c: &mut C, resident: bool) -> Res<()> {
        let user = format!("user-{}", self.serial);
        let cdh = self.next_cdh();
        let mut mc = MakeCredential::new(&self.rp, user.as_bytes())
            .user(&user, &user)
            .cdh(cdh);
        if resident {
            mc = mc.rk();
        }
        if self.pin.is_some() {
            self.pending = Some(Pending::Token);
            let t = self.token(c, permission::MC, Some(&self.rp.clone()))?;
            mc = mc.pin_auth(&t);
        }
        self.pending = Some(Pending::MakeCredential);
        match transport(mc.send(c))? {
            Ok(r) => {
                self.creds.insert(
                    r.credential_id,
                    Cred {
                        public_key: Some(r.public_key),
                        max_counter: r.auth_data.sign_count,
                        resident,
                    },
                );
                Ok(())
            }
            Err(s) => Err(Fail::Violation(format!("makeCredential answered {s:#04x}"))),
        }
    }

    fn assert_one<C: Ctap2 + ?Sized>(&mut self, c: &mut C, id: &[u8]) -> Res<()> {
        let cdh = self.next_cdh();
        self.pending = Some(Pending::Assertion);
        let ga = GetAssertion::new(&self.rp).allow(id).cdh(cdh);
        match transport(ga.send(c))? {
            Ok(a) => self.saw(&a, false),
            Err(s) => Err(Fail::Violation(format!(
                "getAssertion of {} answered {s:#04x}",
                hex(id)
            ))),
        }
    }

    fn assert_discoverable<C: Ctap2 + ?Sized>(&mut self, c: &mut C) -> Res<()> {
        let cdh = self.next_cdh();
        self.pending = Some(Pending::Assertion);
        let rp = self.rp.clone();
        let first = match transport(GetAssertion::new(&rp).cdh(cdh).send(c))? {
            Ok(a) => a,
            Err(s) => {
                return Err(Fail::Violation(format!(
                    "discoverable getAssertion answered {s:#04x}"
                )))
            }
        };
        self.saw(&first, true)?;
        for _ in 1..first.number_of_credentials.unwrap_or(1) {
            match transport(ctap2::get_next_assertion(c, &cdh, &rp))? {
                Ok(a) => self.saw(&a, true)?,
                Err(s) => {
                    return Err(Fail::Violation(format!(
                        "getNextAssertion answered {s:#04x}"
                    )))
                }
            }
        }
        Ok(())
    }

    fn set_pin<C: Ctap2 + ?Sized>(&mut self, c: &mut C, pin: &str) -> Res<()> {
        self.pending = Some(Pending::SetPin(pin.into()));
        match cp().set_pin(c, pin) {
            Ok(status::OK) => {
                self.pin = Some(pin.into());
                self.retries = 8;
                Ok(())
            }
            Ok(s) => Err(Fail::Violation(format!("setPIN answered {s:#04x}"))),
            Err(e) => Err(Fail::Transport(e)),
        }
    }

    fn change_pin<C: Ctap2 + ?Sized>(&mut self, c: &mut C, new: &str) -> Res<()> {
        let old = self.pin.clone().unwrap();
        self.pending = Some(Pending::ChangePin(new.into()));
        match cp().change_pin(c, &old, new) {
            Ok(status::OK) => {
                self.pin = Some(new.into());
                self.retries = 8;
                self.mismatches = 0;
                Ok(())
            }
            Ok(s) => Err(Fail::Violation(format!("changePIN answered {s:#04x}"))),
            Err(e) => Err(Fail::Transport(e)),
        }
    }

    fn wrong_pin<C: Ctap2 + ?Sized>(&mut self, c: &mut C) -> Res<()> {
        self.pending = Some(Pending::WrongPin);
        match cp().token(c, "00000000x", None, None) {
            Err(status::PIN_INVALID) => {
                self.retries -= 1;
                self.mismatches += 1;
                Ok(())
            }
            Err(status::OTHER) => Err(Fail::Transport("wrong PIN: no answer".into())),
            Err(s) => Err(Fail::Violation(format!("wrong PIN answered {s:#04x}"))),
            Ok(_) => Err(Fail::Violation("a wrong PIN was accepted".into())),
        }
    }

    fn delete<C: Ctap2 + ?Sized>(&mut self, c: &mut C, id: &[u8]) -> Res<()> {
        self.pending = Some(Pending::Token);
        let t = self.token(c, permission::CM, None)?;
        self.pending = Some(Pending::Delete(id.to_vec()));
        let params = Value::Map(vec![(int(2), ctap2::descriptor(id))]);
        let r = transport(ctap2::credential_management(
            c,
            Some(&t),
            cm::DELETE_CREDENTIAL,
            Some(params),
        ))?;
        if r.status != status::OK {
            return Err(Fail::Violation(format!(
                "delete answered {:#04x}",
                r.status
            )));
        }
        self.creds.remove(id);
        self.gone.insert(id.to_vec());
        Ok(())
    }

    fn reset<C: Ctap2 + ?Sized>(&mut self, c: &mut C) -> Res<()> {
        self.pending = Some(Pending::Reset);
        let r = transport(c.ctap2(cmd::RESET, None))?;
        if r.status != status::OK {
            return Err(Fail::Violation(format!("reset answered {:#04x}", r.status)));
        }
        self.forget_all();
        Ok(())
    }

    fn forget_all(&mut self) {
        let ids: Vec<Vec<u8>> = self.creds.keys().cloned().collect();
        self.gone.extend(ids);
        self.creds.clear();
        self.pin = None;
        self.retries = 8;
        self.mismatches = 0;
    }

    /// Checks the key against the model and resolves the cut-off operation.
    /// Violations are returned; a transport failure stops the check.
    pub fn check<C: Ctap2 + ?Sized>(&mut self, c: &mut C) -> Res<Vec<String>> {
        let mut v = Vec::new();
        // Kept until the check is through: a transport failure in the middle
        // leaves it for the next check.
        let pending = self.pending.clone();
        let mut absent = Vec::new();
        let ids: Vec<Vec<u8>> = self.creds.keys().cloned().collect();
        for id in &ids {
            let cdh = self.next_cdh();
            let ga = GetAssertion::new(&self.rp).allow(id).cdh(cdh);
            match transport(ga.send(c))? {
                Ok(a) => {
                    if let Err(Fail::Violation(e)) = self.saw(&a, false) {
                        v.push(e);
                    }
                }
                Err(status::NO_CREDENTIALS) => absent.push(id.clone()),
                Err(s) => v.push(format!("getAssertion of {} answered {s:#04x}", hex(id))),
            }
        }
        for id in self.gone.clone() {
            let cdh = self.next_cdh();
            match transport(GetAssertion::new(&self.rp).allow(&id).cdh(cdh).send(c))? {
                Err(status::NO_CREDENTIALS) => {}
                other => v.push(format!(
                    "deleted credential {} answers {:?}",
                    hex(&id),
                    other.map(|a| a.auth_data.sign_count)
                )),
            }
        }
        let reset_done = match &pending {
            Some(Pending::Reset) => {
                if !absent.is_empty() && absent.len() != ids.len() {
                    v.push(format!(
                        "reset half done: {} of {} credentials left",
                        ids.len() - absent.len(),
                        ids.len()
                    ));
                }
                !ids.is_empty() && absent.len() == ids.len()
            }
            _ => false,
        };
        for id in absent {
            let allowed =
                pending == Some(Pending::Delete(id.clone())) || pending == Some(Pending::Reset);
            if !allowed {
                v.push(format!("acknowledged credential {} is missing", hex(&id)));
            }
            self.creds.remove(&id);
            self.gone.insert(id);
        }
        if !self.owner {
            self.pending = None;
            return Ok(v);
        }
        // The PIN and its retries.
        let retries = match cp().retries(c) {
            Ok((r, _)) => Some(r),
            Err(status::PIN_NOT_SET) => None,
            Err(status::OTHER) => return Err(Fail::Transport("getPinRetries: no answer".into())),
            Err(s) => {
                v.push(format!("getPinRetries answered {s:#04x}"));
                self.pending = None;
                return Ok(v);
            }
        };
        let info = ctap2::get_info(c).map_err(|e| Fail::Transport(e.to_string()))?;
        let pin_set = ferrokey_tests::cbor::get(&info, 4)
            .and_then(|o| ferrokey_tests::cbor::get_text(o, "clientPin"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if pending == Some(Pending::Reset) {
            let kept = !ids.is_empty() && !reset_done;
            if (reset_done && pin_set) || (kept && self.pin.is_some() && !pin_set) {
                v.push(format!(
                    "reset half done: credentials gone {reset_done}, PIN set {pin_set}"
                ));
            }
            if !pin_set {
                self.forget_all();
                self.pending = None;
                return Ok(v);
            }
        }
        if !pin_set {
            match (&self.pin, &pending) {
                (None, _) | (Some(_), Some(Pending::Reset)) => {}
                (Some(_), _) => v.push("the PIN was lost".into()),
            }
            self.pin = None;
            self.pending = None;
            return Ok(v);
        }
        let mut r = retries.unwrap_or(0);
        let may_restore = !matches!(pending, None | Some(Pending::WrongPin));
        let ok = r == self.retries
            || (pending.is_some() && r + 1 == self.retries)
            || (may_restore && r == 8);
        if !ok {
            v.push(format!("pinRetries {r}, acknowledged {}", self.retries));
        }
        let mut candidates: Vec<String> = Vec::new();
        match &pending {
            Some(Pending::SetPin(p)) | Some(Pending::ChangePin(p)) => candidates.push(p.clone()),
            _ => {}
        }
        candidates.extend(self.pin.clone());
        // These attempts are PIN attempts too (persisted before the check): a
        // kill in the middle of one leaves pinRetries one lower.
        self.pending.get_or_insert(Pending::Token);
        let mut opened = false;
        for pin in candidates {
            match cp().token(c, &pin, None, None) {
                Ok(_) => {
                    self.pin = Some(pin);
                    self.retries = 8;
                    self.mismatches = 0;
                    opened = true;
                    break;
                }
                Err(status::PIN_INVALID) => {
                    r = r.saturating_sub(1);
                    self.retries = r;
                    self.mismatches += 1;
                }
                Err(status::OTHER) => return Err(Fail::Transport("PIN check: no answer".into())),
                Err(s) => {
                    v.push(format!("PIN check answered {s:#04x}"));
                    break;
                }
            }
        }
        self.pending = None;
        if !opened {
            v.push("neither the acknowledged nor the pending PIN opens the key".into());
        }
        Ok(v)
    }
}

/// The key's channel, resending a request the key dropped with CTAPHID
/// MSG_TIMEOUT (it was not executed: the key gave up reassembling it), as a
/// host may; each resend is counted and reported.
pub struct Resending<'a> {
    /// The channel.
    pub hid: &'a mut CtapHidClient<UsbipClient>,
    /// Counts the resends.
    pub timeouts: &'a AtomicU64,
}

impl Ctap2 for Resending<'_> {
    fn call(&mut self, command: u8, body: &[u8]) -> Result<(u8, Vec<u8>), ClientError> {
        let mut tries = 0;
        loop {
            match self.hid.cbor(command, body) {
                Err(ClientError::Device(0x05)) if tries < 3 => {
                    tries += 1;
                    self.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }
}

/// The first bytes of an id, in hex.
pub fn hex(id: &[u8]) -> String {
    ferrokey_tests::cbor::hex(&id[..id.len().min(6)])
}
