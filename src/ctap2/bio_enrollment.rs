//! authenticatorBioEnrollment (0x09, and the 0x40 prototype alias), CTAP 2.1
//! §6.7, for a key with a simulated fingerprint sensor ([`crate::bio`],
//! [`crate::authenticator::Config::bio`]).
//!
//! Request `{1: modality, 2: subCommand, 3: subCommandParams, 4:
//! pinUvAuthProtocol, 5: pinUvAuthParam, 6: getModality}`. getModality and
//! getFingerprintSensorInfo need no authentication, nor does
//! cancelCurrentEnrollment; every other subcommand carries a pinUvAuthParam
//! over `modality ‖ subCommand ‖ subCommandParams` (the parameters as the
//! CBOR bytes received) that a pinUvAuthToken with the `be` permission
//! verifies (else PUAT_REQUIRED when absent, PIN_AUTH_INVALID).
//!
//! Errors as this key gives them: no modality (and no getModality) or no
//! subCommand is MISSING_PARAMETER; a modality other than fingerprint (1) is
//! INVALID_PARAMETER; an unknown subCommand INVALID_SUBCOMMAND; a templateId
//! that names no template (or not the enrollment in progress)
//! INVALID_PARAMETER, and a missing one MISSING_PARAMETER; a friendly name
//! longer than maxTemplateFriendlyName INVALID_PARAMETER;
//! enumerateEnrollments with none enrolled INVALID_OPTION; enrollBegin with
//! the sensor full FP_DATABASE_FULL.
//!
//! Each sample (enrollBegin, enrollCaptureNextSample) is a user-presence
//! request: the transport waits for the touch (sending KEEPALIVE UPNEEDED)
//! and the sensor is read right after ([`crate::platform::UserPresence::read_finger`]).
//! The wait ends with USER_ACTION_TIMEOUT after the transport's presence
//! timeout; a timeoutMilliseconds parameter is checked (an unsigned integer)
//! but the wait is the transport's. A good sample counts down
//! remainingSamples; the others say why in lastEnrollSampleStatus
//! ([`crate::bio::sample_status`]). The last good sample stores the template
//! (one atomic record write) and with it built-in user verification.

use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};

use super::cbor_out::CborWriter;
use super::{store_error, validate, write_ok, HandlerResult};
use crate::app::{CallContext, Message, Outcome};
use crate::authenticator::Authenticator;
use crate::bio::{Enrollment, Templates, MAX_FINGER, MAX_TEMPLATE_FRIENDLY_NAME, SAMPLES_REQUIRED};
use crate::pin::{permission, RpCheck};
use crate::platform::{Storage, StorageError, UserPresence};
use crate::store::StoreError;

#[cfg(test)]
mod tests;

/// The fingerprint modality.
pub const MODALITY_FINGERPRINT: u64 = 0x01;
/// fingerprintKind: a touch sensor.
pub const FINGERPRINT_KIND_TOUCH: i64 = 0x01;

/// The subcommands.
mod sub {
    pub const ENROLL_BEGIN: u64 = 0x01;
    pub const ENROLL_CAPTURE_NEXT_SAMPLE: u64 = 0x02;
    pub const CANCEL_CURRENT_ENROLLMENT: u64 = 0x03;
    pub const ENUMERATE_ENROLLMENTS: u64 = 0x04;
    pub const SET_FRIENDLY_NAME: u64 = 0x05;
    pub const REMOVE_ENROLLMENT: u64 = 0x06;
    pub const GET_FINGERPRINT_SENSOR_INFO: u64 = 0x07;
}

/// The fingerprint sensor's state: its templates and an enrollment in progress.
#[derive(Debug, Default)]
pub(crate) struct BioSensor {
    pub(crate) templates: Templates,
    pub(crate) enrollment: Option<Enrollment>,
}

/// An enrollment, as the control API reports it (no biometric data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentInfo {
    /// The templateId.
    pub id: u8,
    /// The friendly name (empty when none was set).
    pub name: heapless::String<MAX_TEMPLATE_FRIENDLY_NAME>,
}

/// The fingers of `templates` as a bit set (bit N: finger N).
fn finger_bits(templates: &Templates) -> u16 {
    templates
        .iter()
        .filter(|t| t.finger <= MAX_FINGER)
        .fold(0, |bits, t| bits | 1 << t.finger)
}

/// A templateId parameter: a byte string of one byte (this key's IDs).
fn template_id(params: &[u8]) -> Result<u8, Error> {
    match validate::bytes_value(params, 0x01)? {
        None => Err(Error::MissingParameter),
        Some(&[id]) => Ok(id),
        Some(_) => Err(Error::InvalidParameter),
    }
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Power-up: the templates of a key with biometrics (a record that does
    /// not parse counts as none), and with them built-in UV.
    pub(crate) fn load_bio(&mut self) -> Result<(), StorageError> {
        if !self.config.bio {
            return Ok(());
        }
        let templates = Templates::load(&mut self.platform.storage)?;
        self.pin.set_bio_fingers(finger_bits(&templates));
        self.bio = Some(BioSensor {
            templates,
            enrollment: None,
        });
        Ok(())
    }

    /// authenticatorReset: no templates, no enrollment (the record itself is
    /// removed by the reset).
    pub(crate) fn reset_bio(&mut self) -> Result<(), StorageError> {
        self.platform
            .storage
            .remove(crate::platform::RecordKey::Bio)?;
        if let Some(bio) = &mut self.bio {
            *bio = BioSensor::default();
        }
        self.pin.set_bio_fingers(0);
        Ok(())
    }

    /// The enrollments (templateId and friendly name), for the control API;
    /// `None` without biometrics.
    pub fn bio_enrollments(&mut self) -> Option<heapless::Vec<EnrollmentInfo, 8>> {
        self.settle_reset().ok()?;
        let bio = self.bio.as_ref()?;
        Some(
            bio.templates
                .iter()
                .map(|t| EnrollmentInfo {
                    id: t.id,
                    name: t.name.clone(),
                })
                .collect(),
        )
    }

    /// Makes the next fingerprint match fail (a control). `false` without
    /// biometrics.
    pub fn bio_fail_next_match(&mut self) -> bool {
        if self.bio.is_none() {
            return false;
        }
        self.pin.fail_next_match();
        true
    }

    /// Whether the next fingerprint match is set to fail.
    pub fn bio_next_match_fails(&self) -> bool {
        self.pin.next_match_fails()
    }

    /// Handles one authenticatorBioEnrollment request.
    pub(crate) fn bio_enrollment(
        &mut self,
        body: &[u8],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        if self.bio.is_none() {
            return Err(Error::InvalidCommand);
        }
        if body.is_empty() {
            return Err(Error::MissingParameter);
        }
        if validate::bool_value(body, 0x06)? == Some(true) {
            let mut w = CborWriter::response(response)?;
            w.map(1)?;
            w.int(1)?;
            w.int(MODALITY_FINGERPRINT as i64)?;
            return Ok(Outcome::Response);
        }
        match validate::uint_value(body, 0x01)? {
            None => return Err(Error::MissingParameter),
            Some(MODALITY_FINGERPRINT) => {}
            Some(_) => return Err(Error::InvalidParameter),
        }
        let sub_command = validate::uint_value(body, 0x02)?.ok_or(Error::MissingParameter)?;
        let raw_params = validate::raw_value(body, 0x03)?;
        if let Some(params) = raw_params {
            // subCommandParams must be a map (raw_value checks that).
            validate::raw_value(params, 0)?;
        }
        match sub_command {
            sub::GET_FINGERPRINT_SENSOR_INFO => return self.sensor_info(response),
            sub::CANCEL_CURRENT_ENROLLMENT => {
                if let Some(bio) = &mut self.bio {
                    bio.enrollment = None;
                }
                return write_ok(response);
            }
            sub::ENROLL_BEGIN
            | sub::ENROLL_CAPTURE_NEXT_SAMPLE
            | sub::ENUMERATE_ENROLLMENTS
            | sub::SET_FRIENDLY_NAME
            | sub::REMOVE_ENROLLMENT => {}
            _ => return Err(Error::InvalidSubcommand),
        }

        // Authentication: a token with `be` over modality ‖ subCommand ‖ params.
        let param = validate::bytes_value(body, 0x05)?.ok_or(Error::PinRequired)?;
        let protocol = validate::uint_value(body, 0x04)?
            .map(|p| u8::try_from(p).map_err(|_| Error::InvalidParameter))
            .transpose()?;
        let params = raw_params.unwrap_or(&[]);
        self.pin.verify_pin_uv_auth_param(
            protocol,
            param,
            &[&[MODALITY_FINGERPRINT as u8, sub_command as u8], params],
            permission::BE,
            RpCheck::Ignore,
            context.now_ms,
        )?;
        if let Some(raw) = raw_params {
            // A timeoutMilliseconds, when given, must be an unsigned integer.
            validate::uint_value(raw, 0x03)?;
        }

        match sub_command {
            sub::ENROLL_BEGIN => self.enroll_begin(context, response),
            sub::ENROLL_CAPTURE_NEXT_SAMPLE => self.enroll_capture_next(params, context, response),
            sub::ENUMERATE_ENROLLMENTS => self.enumerate_enrollments(response),
            sub::SET_FRIENDLY_NAME => self.set_friendly_name(params, response),
            _ => self.remove_enrollment(params, response),
        }
    }

    /// getFingerprintSensorInfo: `{1: modality, 2: fingerprintKind, 3:
    /// maxCaptureSamplesRequiredForEnroll, 8: maxTemplateFriendlyName}`.
    fn sensor_info(&mut self, response: &mut Message) -> HandlerResult {
        let mut w = CborWriter::response(response)?;
        w.map(4)?;
        w.int(1)?;
        w.int(MODALITY_FINGERPRINT as i64)?;
        w.int(2)?;
        w.int(FINGERPRINT_KIND_TOUCH)?;
        w.int(3)?;
        w.int(i64::from(SAMPLES_REQUIRED))?;
        w.int(8)?;
        w.int(MAX_TEMPLATE_FRIENDLY_NAME as i64)?;
        Ok(Outcome::Response)
    }

    /// enrollBegin: FP_DATABASE_FULL when no template fits; otherwise a new
    /// enrollment (replacing one in progress) and its first sample.
    fn enroll_begin(&mut self, context: &CallContext, response: &mut Message) -> HandlerResult {
        let bio = self.bio.as_mut().ok_or(Error::InvalidCommand)?;
        let id = bio
            .templates
            .next_id()
            .ok_or(Error::FingerprintDatabaseFull)?;
        if !context.up_granted {
            return Ok(Outcome::NeedsPresence);
        }
        bio.enrollment = Some(Enrollment::new(id));
        self.take_sample(true, context, response)
    }

    /// enrollCaptureNextSample: the next sample of the enrollment in progress,
    /// which `templateId` must name.
    fn enroll_capture_next(
        &mut self,
        params: &[u8],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        let id = template_id(params)?;
        let bio = self.bio.as_ref().ok_or(Error::InvalidCommand)?;
        match bio.enrollment {
            Some(e) if e.template_id == id => {}
            _ => return Err(Error::InvalidParameter),
        }
        if !context.up_granted {
            return Ok(Outcome::NeedsPresence);
        }
        self.take_sample(false, context, response)
    }

    /// Reads the sensor for the enrollment in progress and answers `{[4:
    /// templateId,] 5: lastEnrollSampleStatus, 6: remainingSamples}`; the
    /// last good sample stores the template first.
    fn take_sample(
        &mut self,
        with_id: bool,
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        let reading = self.platform.presence.read_finger(context.now_ms);
        let bio = self.bio.as_mut().ok_or(Error::InvalidCommand)?;
        let mut enrollment = bio.enrollment.ok_or(Error::InvalidParameter)?;
        let status = enrollment.sample(reading, &bio.templates);
        if enrollment.is_complete() {
            let mut templates = bio.templates.clone();
            let finger = enrollment.finger.ok_or(Error::Other)?;
            if !templates.add(enrollment.template_id, finger) {
                return Err(Error::FingerprintDatabaseFull);
            }
            templates
                .save(&mut self.platform.storage)
                .map_err(|e| store_error(StoreError::Storage(e)))?;
            bio.templates = templates;
            bio.enrollment = None;
            self.pin.set_bio_fingers(finger_bits(&bio.templates));
        } else {
            bio.enrollment = Some(enrollment);
        }
        let mut w = CborWriter::response(response)?;
        w.map(if with_id { 3 } else { 2 })?;
        if with_id {
            w.int(4)?;
            w.bytes(&[enrollment.template_id])?;
        }
        w.int(5)?;
        w.int(i64::from(status))?;
        w.int(6)?;
        w.int(i64::from(enrollment.remaining))?;
        Ok(Outcome::Response)
    }

    /// enumerateEnrollments: `{7: [{1: templateId, 2: friendlyName}...]}`;
    /// INVALID_OPTION when none is enrolled.
    fn enumerate_enrollments(&mut self, response: &mut Message) -> HandlerResult {
        let bio = self.bio.as_ref().ok_or(Error::InvalidCommand)?;
        if bio.templates.is_empty() {
            return Err(Error::InvalidOption);
        }
        let mut w = CborWriter::response(response)?;
        w.map(1)?;
        w.int(7)?;
        w.array(bio.templates.len())?;
        for t in bio.templates.iter() {
            w.map(2)?;
            w.int(1)?;
            w.bytes(&[t.id])?;
            w.int(2)?;
            w.text(&t.name)?;
        }
        Ok(Outcome::Response)
    }

    /// setFriendlyName: renames a template (persisted).
    fn set_friendly_name(&mut self, params: &[u8], response: &mut Message) -> HandlerResult {
        let id = template_id(params)?;
        let name = validate::text_value(params, 0x02)?.ok_or(Error::MissingParameter)?;
        let bio = self.bio.as_mut().ok_or(Error::InvalidCommand)?;
        if bio.templates.find(id).is_none() || name.len() > MAX_TEMPLATE_FRIENDLY_NAME {
            return Err(Error::InvalidParameter);
        }
        let mut templates = bio.templates.clone();
        if !templates.rename(id, name) {
            return Err(Error::InvalidParameter);
        }
        templates
            .save(&mut self.platform.storage)
            .map_err(|e| store_error(StoreError::Storage(e)))?;
        bio.templates = templates;
        write_ok(response)
    }

    /// removeEnrollment: deletes a template (persisted); removing the last
    /// one ends built-in user verification.
    fn remove_enrollment(&mut self, params: &[u8], response: &mut Message) -> HandlerResult {
        let id = template_id(params)?;
        let bio = self.bio.as_mut().ok_or(Error::InvalidCommand)?;
        let mut templates = bio.templates.clone();
        if !templates.remove(id) {
            return Err(Error::InvalidParameter);
        }
        templates
            .save(&mut self.platform.storage)
            .map_err(|e| store_error(StoreError::Storage(e)))?;
        bio.templates = templates;
        self.pin.set_bio_fingers(finger_bits(&bio.templates));
        write_ok(response)
    }
}
