//! The simulated fingerprint sensor of a key with biometrics: its enrolled
//! templates (one store record, [`RecordKey::Bio`]) and an enrollment in
//! progress. authenticatorBioEnrollment ([`crate::ctap2`]'s bio_enrollment
//! module) drives it; built-in user verification matches against it.
//!
//! A "finger" is a number from 0 to [`MAX_FINGER`] that the sensor reads
//! ([`crate::platform::UserPresence::read_finger`]): 0 is the finger that
//! touches the key, others are placed through the control API. A template
//! holds the finger it was enrolled from (the simulated biometric data: it
//! never leaves the key), its template ID and its friendly name.
//!
//! The record is `"FKBT" ‖ version 1 ‖ count ‖ count × (id ‖ finger ‖
//! nameLength ‖ name)`, written whole (atomically) after every change. A
//! record that does not parse counts as no templates (user verification
//! fails closed) and is replaced by the next change; authenticatorReset
//! removes it.

use crate::platform::{RecordKey, Storage, StorageError};

/// The most templates the sensor holds (enrollBegin answers
/// FP_DATABASE_FULL beyond it).
pub const MAX_TEMPLATES: usize = 5;
/// getFingerprintSensorInfo maxTemplateFriendlyName: the longest friendly
/// name, in bytes.
pub const MAX_TEMPLATE_FRIENDLY_NAME: usize = 32;
/// getFingerprintSensorInfo maxCaptureSamplesRequiredForEnroll: good samples
/// an enrollment needs.
pub const SAMPLES_REQUIRED: u8 = 4;
/// The highest finger number the sensor reads.
pub const MAX_FINGER: u8 = 9;

const MAGIC: &[u8; 4] = b"FKBT";
const VERSION: u8 = 1;
/// The largest record: header and every template with the longest name.
const MAX_RECORD: usize = 6 + MAX_TEMPLATES * (3 + MAX_TEMPLATE_FRIENDLY_NAME);

/// lastEnrollSampleStatus values (CTAP 2.1 §6.7.4) the simulation gives.
pub mod sample_status {
    /// A good sample.
    pub const FP_GOOD: u8 = 0x00;
    /// A sample of another finger than the one being enrolled.
    pub const FP_MERGE_FAILURE: u8 = 0x0A;
    /// The finger is already enrolled in another template.
    pub const FP_EXISTS: u8 = 0x0B;
    /// The sensor read nothing.
    pub const NO_USER_ACTIVITY: u8 = 0x0D;
}

/// One enrolled template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// Its templateId (one byte, 1 to 255).
    pub id: u8,
    /// The finger it was enrolled from.
    pub finger: u8,
    /// Its friendly name (empty until set).
    pub name: heapless::String<MAX_TEMPLATE_FRIENDLY_NAME>,
}

/// The enrolled templates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Templates {
    entries: heapless::Vec<Template, MAX_TEMPLATES>,
}

impl Templates {
    /// Loads the record: no record is no templates, and so is one that does
    /// not parse (see the module documentation). Fails only when storage
    /// fails.
    pub fn load<S: Storage>(storage: &mut S) -> Result<Self, StorageError> {
        let mut buf = [0u8; MAX_RECORD];
        match storage.read(RecordKey::Bio, &mut buf) {
            Ok(Some(len)) => Ok(buf
                .get(..len)
                .and_then(Templates::decode)
                .unwrap_or_default()),
            Ok(None) | Err(StorageError::TooLarge) | Err(StorageError::Corrupt) => {
                Ok(Templates::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the record whole (removes it when there are no templates).
    pub fn save<S: Storage>(&self, storage: &mut S) -> Result<(), StorageError> {
        if self.entries.is_empty() {
            return storage.remove(RecordKey::Bio);
        }
        let mut out: heapless::Vec<u8, MAX_RECORD> = heapless::Vec::new();
        let mut put = |bytes: &[u8]| {
            out.extend_from_slice(bytes)
                .map_err(|_| StorageError::TooLarge)
        };
        put(MAGIC)?;
        put(&[VERSION, self.entries.len() as u8])?;
        for t in &self.entries {
            put(&[t.id, t.finger, t.name.len() as u8])?;
            put(t.name.as_bytes())?;
        }
        storage.write(RecordKey::Bio, &out)
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let (&[version, count], mut rest) = rest.split_first_chunk::<2>()?;
        if version != VERSION || usize::from(count) > MAX_TEMPLATES {
            return None;
        }
        let mut templates = Templates::default();
        for _ in 0..count {
            let (&[id, finger, len], tail) = rest.split_first_chunk::<3>()?;
            let name = tail.get(..usize::from(len))?;
            rest = tail.get(usize::from(len)..)?;
            let name = core::str::from_utf8(name).ok()?;
            if id == 0 || finger > MAX_FINGER || templates.find(id).is_some() {
                return None;
            }
            templates
                .entries
                .push(Template {
                    id,
                    finger,
                    name: heapless::String::try_from(name).ok()?,
                })
                .ok()?;
        }
        rest.is_empty().then_some(templates)
    }

    /// The templates, in enrollment order.
    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.entries.iter()
    }

    /// How many templates there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether no more fit.
    pub fn is_full(&self) -> bool {
        self.entries.is_full()
    }

    /// The template with this ID.
    pub fn find(&self, id: u8) -> Option<&Template> {
        self.entries.iter().find(|t| t.id == id)
    }

    /// Whether `finger` is enrolled (a match).
    pub fn matches(&self, finger: u8) -> bool {
        self.entries.iter().any(|t| t.finger == finger)
    }

    /// The lowest template ID not in use (`None` when full).
    pub fn next_id(&self) -> Option<u8> {
        if self.is_full() {
            return None;
        }
        (1..=u8::MAX).find(|id| self.find(*id).is_none())
    }

    /// Adds a template (unnamed). `false` when full or the ID is taken.
    pub fn add(&mut self, id: u8, finger: u8) -> bool {
        if id == 0 || finger > MAX_FINGER || self.find(id).is_some() {
            return false;
        }
        self.entries
            .push(Template {
                id,
                finger,
                name: heapless::String::new(),
            })
            .is_ok()
    }

    /// Renames template `id`. `false` when there is none or the name is too long.
    pub fn rename(&mut self, id: u8, name: &str) -> bool {
        let Ok(name) = heapless::String::try_from(name) else {
            return false;
        };
        match self.entries.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                t.name = name;
                true
            }
            None => false,
        }
    }

    /// Removes template `id`. `false` when there is none.
    pub fn remove(&mut self, id: u8) -> bool {
        match self.entries.iter().position(|t| t.id == id) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }
}

/// An enrollment in progress (volatile: a power cycle ends it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enrollment {
    /// The templateId it will get.
    pub template_id: u8,
    /// The finger of its good samples so far (`None` before the first).
    pub finger: Option<u8>,
    /// Good samples still needed.
    pub remaining: u8,
}

impl Enrollment {
    /// A new enrollment for `template_id`.
    pub fn new(template_id: u8) -> Self {
        Enrollment {
            template_id,
            finger: None,
            remaining: SAMPLES_REQUIRED,
        }
    }

    /// Takes one sample (`reading`: the finger the sensor read) and returns
    /// its lastEnrollSampleStatus: nothing read, a finger enrolled already
    /// (in `templates`), or another finger than the earlier samples' leave
    /// `remaining` as it was; a good sample counts down.
    pub fn sample(&mut self, reading: Option<u8>, templates: &Templates) -> u8 {
        let Some(finger) = reading.filter(|f| *f <= MAX_FINGER) else {
            return sample_status::NO_USER_ACTIVITY;
        };
        if templates.matches(finger) {
            return sample_status::FP_EXISTS;
        }
        if self.finger.is_some_and(|f| f != finger) {
            return sample_status::FP_MERGE_FAILURE;
        }
        self.finger = Some(finger);
        self.remaining = self.remaining.saturating_sub(1);
        sample_status::FP_GOOD
    }

    /// Whether every sample is in.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_platform::MemoryStorage;

    #[test]
    fn templates_round_trip_through_the_record() {
        let mut storage = MemoryStorage::default();
        assert_eq!(Templates::load(&mut storage).unwrap(), Templates::default());
        let mut t = Templates::default();
        assert!(t.add(1, 0));
        assert!(t.add(2, 7));
        assert!(t.rename(2, "right thumb"));
        assert!(!t.add(2, 3), "the ID is taken");
        assert!(!t.add(3, MAX_FINGER + 1));
        t.save(&mut storage).unwrap();
        let back = Templates::load(&mut storage).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.find(2).unwrap().name.as_str(), "right thumb");
        assert!(back.matches(7) && !back.matches(5));
        // No templates: no record.
        let mut empty = back.clone();
        assert!(empty.remove(1) && empty.remove(2) && !empty.remove(2));
        empty.save(&mut storage).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(storage.read(RecordKey::Bio, &mut buf).unwrap(), None);
    }

    #[test]
    fn a_record_that_does_not_parse_counts_as_no_templates() {
        let mut storage = MemoryStorage::default();
        for bad in [
            &b"FKBT\x02\x00"[..],
            b"FKBT\x01\x01\x01\x00\x05abc",
            b"FKBT\x01\x01\x00\x00\x00",
            b"FKBT\x01\x01\x01\x0a\x00",
            b"FKBT\x01\x02\x01\x00\x00\x01\x01\x00",
            b"FKBT\x01\x00\x00",
            b"XXXX\x01\x00",
            b"FKBT\x01\x01\x01\x00\x02\xff\xfe",
        ] {
            storage.write(RecordKey::Bio, bad).unwrap();
            assert!(Templates::load(&mut storage).unwrap().is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_the_lowest_free_and_the_sensor_fills_up() {
        let mut t = Templates::default();
        for finger in 0..MAX_TEMPLATES as u8 {
            let id = t.next_id().unwrap();
            assert_eq!(id, finger + 1);
            assert!(t.add(id, finger));
        }
        assert!(t.is_full());
        assert_eq!(t.next_id(), None);
        assert!(!t.add(9, 9));
        assert!(t.remove(2));
        assert_eq!(t.next_id(), Some(2));
        assert!(!t.rename(1, &"x".repeat(MAX_TEMPLATE_FRIENDLY_NAME + 1)));
        assert!(t.rename(1, &"x".repeat(MAX_TEMPLATE_FRIENDLY_NAME)));
        assert!(!t.rename(2, "gone"));
    }

    #[test]
    fn samples_count_down_only_when_good() {
        let mut enrolled = Templates::default();
        assert!(enrolled.add(1, 3));
        let mut e = Enrollment::new(2);
        assert_eq!(e.sample(None, &enrolled), sample_status::NO_USER_ACTIVITY);
        assert_eq!(e.sample(Some(3), &enrolled), sample_status::FP_EXISTS);
        assert_eq!(e.remaining, SAMPLES_REQUIRED);
        assert_eq!(e.sample(Some(1), &enrolled), sample_status::FP_GOOD);
        assert_eq!(
            e.sample(Some(2), &enrolled),
            sample_status::FP_MERGE_FAILURE
        );
        assert_eq!(e.remaining, SAMPLES_REQUIRED - 1);
        for _ in 1..SAMPLES_REQUIRED {
            assert!(!e.is_complete());
            assert_eq!(e.sample(Some(1), &enrolled), sample_status::FP_GOOD);
        }
        assert!(e.is_complete());
        assert_eq!(e.finger, Some(1));
    }
}
