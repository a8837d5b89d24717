//! authenticatorClientPIN (0x06): decoding and dispatch to [`crate::pin`].

use ctap_types::ctap2::client_pin::{Request, Response};
use ctap_types::ctap2::Error;
use rand_core::{CryptoRng, RngCore};

use super::{deserialize, validate, write_cbor, write_ok, HandlerResult};
use crate::app::{CallContext, Message};
use crate::authenticator::Authenticator;
use crate::platform::{Storage, UserPresence};

impl<S: Storage, U: UserPresence, R: RngCore + CryptoRng> Authenticator<S, U, R> {
    /// Handles one authenticatorClientPIN request. A subcommand CTAP 2.1 does
    /// not define is INVALID_SUBCOMMAND (ctap-types would only say INVALID_CBOR).
    /// Subcommands without output (setPIN, changePIN) answer with the bare status.
    pub(crate) fn client_pin(
        &mut self,
        body: &[u8],
        context: &CallContext,
        response: &mut Message,
    ) -> HandlerResult {
        match validate::uint_value(body, 0x02)? {
            None => return Err(Error::MissingParameter),
            Some(0x01..=0x07 | 0x09) => {}
            Some(_) => return Err(Error::InvalidSubcommand),
        }
        let request: Request<'_> = deserialize(body)?;
        let out = self.pin.client_pin(
            &request,
            &mut self.platform.storage,
            &mut self.platform.rng,
            &mut self.platform.presence,
            context.now_ms,
        )?;
        if out == Response::default() {
            write_ok(response)
        } else {
            write_cbor(response, &out)
        }
    }
}
