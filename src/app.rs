//! The boundary between the CTAPHID transport and the command handlers.
//!
//! [`crate::ctaphid`] reassembles a request message and hands it to an [`App`].
//! The app either answers at once or says it needs user presence first; the
//! transport then asks for presence, sends KEEPALIVE reports while it waits, and
//! calls the app again with `up_granted = true`. If the user refuses, the wait
//! times out or the host cancels, the transport answers with the matching CTAP2
//! error itself, so command handlers stay free of waiting logic.

use crate::platform::PresenceStatus;

/// The largest CTAPHID message (CTAP 2.1 §11.2.4: 64 - 7 + 128 * (64 - 5)).
pub const MAX_MESSAGE_SIZE: usize = 7609;

/// A request or response payload.
pub type Message = heapless::Vec<u8, MAX_MESSAGE_SIZE>;

/// Which CTAPHID command carried the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// CTAPHID_CBOR: a CTAP2 command byte followed by CBOR.
    Cbor,
    /// CTAPHID_MSG: a raw U2F (CTAP1) APDU.
    Msg,
}

/// What [`App::handle`] did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `response` holds the complete answer (for CBOR: status byte, then CBOR).
    Response,
    /// The request needs user presence first. `response` is ignored; the
    /// transport calls again with `up_granted = true` once the user approves.
    NeedsPresence,
}

/// Context the transport passes with each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallContext {
    /// The monotonic clock, in milliseconds.
    pub now_ms: u64,
    /// True when the user approved presence for this very request.
    pub up_granted: bool,
    /// The CTAPHID channel the request came on (used to bind state such as
    /// getNextAssertion to the channel that started it).
    pub channel: u32,
}

/// The command-handling side of the device, as seen by the transport.
pub trait App {
    /// Handles one complete request.
    fn handle(
        &mut self,
        protocol: Protocol,
        request: &[u8],
        context: CallContext,
        response: &mut Message,
    ) -> Outcome;

    /// Starts a user-presence request (the transport calls this after `NeedsPresence`).
    fn request_presence(&mut self, now_ms: u64);
    /// Polls the outstanding user-presence request.
    fn poll_presence(&mut self, now_ms: u64) -> PresenceStatus;
    /// Withdraws the outstanding user-presence request.
    fn cancel_presence(&mut self);
    /// CTAPHID_WINK: identify the device to the user.
    fn wink(&mut self) {}
    /// Whether U2F (CTAPHID_MSG) is supported; when false INIT sets NMSG.
    fn supports_ctap1(&self) -> bool {
        true
    }
    /// Whether CTAP2 (CTAPHID_CBOR) is supported; when false INIT leaves out
    /// the CBOR capability and CBOR requests are refused with INVALID_CMD,
    /// as a U2F-only key refuses them.
    fn supports_cbor(&self) -> bool {
        true
    }
    /// Called when the transport resets (a USB bus reset, a re-enumeration)
    /// so the app can drop state tied to the host's old sessions. The device
    /// keeps its power through it; a power cycle is not a transport reset
    /// (the shell builds a new app from persistent state instead).
    fn transport_reset(&mut self) {}
}
