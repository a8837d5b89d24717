//! The core called in process the way the CTAPHID transport calls it: a
//! request without presence first, and again with presence granted when the
//! app asks for it. Implements [`Ctap2`], so every helper of
//! `ferrokey-test-support` runs against an in-memory key too.

use ferrokey::app::{App, CallContext, Message, Outcome, Protocol};
use ferrokey_test_support::ctap2::Ctap2;
use ferrokey_test_support::ctaphid_client::ClientError;

/// An [`App`] with a clock that advances 10 ms per call.
pub struct InProcess<A: App> {
    /// The app (an `Authenticator`).
    pub app: A,
    /// The clock passed in [`CallContext::now_ms`].
    pub now_ms: u64,
    /// The CTAPHID channel passed in [`CallContext::channel`].
    pub channel: u32,
    /// Whether the last CTAP2 call asked for presence.
    pub needed_presence: bool,
}

impl<A: App> InProcess<A> {
    /// Wraps `app`; the clock starts at 1 s after power-up.
    pub fn new(app: A) -> Self {
        InProcess {
            app,
            now_ms: 1_000,
            channel: 1,
            needed_presence: false,
        }
    }

    fn context(&mut self, up_granted: bool) -> CallContext {
        self.now_ms += 10;
        CallContext {
            now_ms: self.now_ms,
            up_granted,
            channel: self.channel,
        }
    }

    /// One U2F APDU (CTAPHID_MSG); the response APDU.
    pub fn u2f(&mut self, apdu: &[u8]) -> Vec<u8> {
        let mut response = Message::new();
        let ctx = self.context(false);
        self.app.handle(Protocol::Msg, apdu, ctx, &mut response);
        response.to_vec()
    }
}

impl<A: App> Ctap2 for InProcess<A> {
    fn call(&mut self, command: u8, body: &[u8]) -> Result<(u8, Vec<u8>), ClientError> {
        let mut request = vec![command];
        request.extend_from_slice(body);
        let mut response = Message::new();
        let ctx = self.context(false);
        self.needed_presence = false;
        if self
            .app
            .handle(Protocol::Cbor, &request, ctx, &mut response)
            == Outcome::NeedsPresence
        {
            self.needed_presence = true;
            response.clear();
            let ctx = self.context(true);
            if self
                .app
                .handle(Protocol::Cbor, &request, ctx, &mut response)
                != Outcome::Response
            {
                return Err(ClientError::Protocol("asked for presence twice".into()));
            }
        }
        match response.split_first() {
            Some((status, body)) => Ok((*status, body.to_vec())),
            None => Err(ClientError::Protocol("empty CTAP2 response".into())),
        }
    }
}
