//! authenticatorConfig (0x0D), CTAP 2.1 §6.11: toggleAlwaysUv and
//! setMinPINLength.
//!
//! While a PIN is set or alwaysUv is on, every request needs a pinUvAuthParam
//! (else PUAT_REQUIRED) over `32×0xff ‖ 0x0d ‖ subCommand ‖ subCommandParams`,
//! the parameters as the CBOR bytes received, verified against a token with the
//! `acfg` permission. Without either, the platform may configure freely (a
//! pinUvAuthParam that is sent anyway must still verify).
//!
//! enableEnterpriseAttestation exists on keys capable of enterprise
//! attestation (getInfo `ep`, see [`super::enterprise`]); elsewhere it is an
//! unsupported subcommand: INVALID_PARAMETER (§6.11 step 2), like any
//! unknown one. vendorPrototype is
//! not implemented either (no `vendorPrototypeConfigCommands` in getInfo):
//! INVALID_SUBCOMMAND.

use ctap_types::ctap2::config::{Request, Subcommand};
use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};

use super::{deserialize, validate, write_ok, HandlerResult};
use crate::app::{CallContext, Message};
use crate::authenticator::Authenticator;
use crate::pin::state::MAX_MIN_PIN_LENGTH_RP_IDS;
use crate::pin::{permission, RpCheck};
use crate::platform::{Storage, UserPresence};

#[cfg(test)]
mod tests;

/// The subcommand codes implemented here.
const ENABLE_ENTERPRISE_ATTESTATION: u64 = 0x01;
const TOGGLE_ALWAYS_UV: u64 = 0x02;
const SET_MIN_PIN_LENGTH: u64 = 0x03;
const VENDOR_PROTOTYPE: u64 = 0xFF;

/// Whether setMinPINLength's minPinLengthRPIDs has more entries than
/// getInfo's maxRPIDsForSetMinPINLength.
fn too_many_rp_ids(raw_params: &[u8]) -> bool {
    validate::raw_value(raw_params, 0x02)
        .ok()
        .flatten()
        .and_then(validate::array_len)
        .is_some_and(|n| n > MAX_MIN_PIN_LENGTH_RP_IDS as u64)
}

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Handles one authenticatorConfig request.
    pub(crate) fn authenticator_config(
        &mut self,
        body: &[u8],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        let sub_command = match validate::uint_value(body, 0x01)? {
            None => return Err(Error::MissingParameter),
            Some(VENDOR_PROTOTYPE) => return Err(Error::InvalidSubcommand),
            Some(value @ (TOGGLE_ALWAYS_UV | SET_MIN_PIN_LENGTH)) => value as u8,
            Some(ENABLE_ENTERPRISE_ATTESTATION) if self.enterprise_capable() => {
                ENABLE_ENTERPRISE_ATTESTATION as u8
            }
            Some(_) => return Err(Error::InvalidParameter),
        };
        let raw_params = validate::raw_value(body, 0x02)?.unwrap_or(&[]);
        let request: Request<'_> = match deserialize(body) {
            Ok(request) => request,
            // ctap-types cannot hold more RP IDs than the key keeps: that is
            // the PIN policy's refusal, not malformed CBOR.
            Err(_) if sub_command == SET_MIN_PIN_LENGTH as u8 && too_many_rp_ids(raw_params) => {
                return Err(Error::PinPolicyViolation)
            }
            Err(e) => return Err(e),
        };

        let protected = self.pin.is_protected() || self.pin.always_uv();
        match request.pin_auth {
            None if protected => return Err(Error::PinRequired),
            None => {}
            Some(param) => self.pin.verify_pin_uv_auth_param(
                request.pin_protocol,
                param,
                &[&[0xFF; 32], &[0x0D, sub_command], raw_params],
                permission::ACFG,
                RpCheck::Ignore,
                context.now_ms,
            )?,
        }

        let storage = &mut self.platform.storage;
        match request.sub_command {
            Subcommand::EnableEnterpriseAttestation => self.enable_enterprise_attestation()?,
            Subcommand::ToggleAlwaysUv => {
                let on = !self.pin.always_uv();
                self.pin.set_always_uv(storage, on)?;
            }
            Subcommand::SetMinPINLength => {
                let params = request.sub_command_params.as_ref();
                let rp_ids = params.and_then(|p| p.min_pin_length_rp_ids.as_ref());
                self.pin.set_min_pin_length(
                    storage,
                    params.and_then(|p| p.new_min_pin_length),
                    rp_ids.map(|ids| ids.as_slice()),
                    params.and_then(|p| p.force_change_pin).unwrap_or(false),
                )?;
            }
            _ => return Err(Error::InvalidParameter),
        }
        write_ok(response)
    }
}
