//! The device facade: what the device shell (firmware-sim) drives.
//!
//! A [`Device`] owns the [`App`] and the CTAPHID [`Transport`]. The shell feeds
//! it OUT reports and the clock, drains IN reports as the host polls the
//! interrupt IN endpoint, and calls [`Device::tick`] when
//! [`Device::next_deadline`] passes. Between those events the device needs no
//! attention: nothing polls.
//!
//! ```text
//! on OUT report:        device.handle_report(&bytes, now)
//! on IN poll:           device.next_report()   (None: leave the IN request pending)
//! at next_deadline():   device.tick(now)
//! on USB reset/detach:  device.reset()
//! ```

use crate::app::App;
use crate::ctaphid::packet::{Report, REPORT_SIZE};
use crate::ctaphid::Transport;

/// The device configuration: the version `INIT` reports and the transport's timers.
pub use crate::ctaphid::Config as DeviceConfig;

/// A FIDO security key as seen from the USB HID interface.
pub struct Device<A: App> {
    app: A,
    transport: Transport,
}

impl<A: App> Device<A> {
    /// A device with no channels allocated. The value holds two message
    /// buffers (about 17 KB); keep it in a `Box` or a static on small stacks.
    pub fn new(app: A, config: DeviceConfig) -> Self {
        Device {
            app,
            transport: Transport::new(config),
        }
    }

    /// Processes one OUT report from the host.
    ///
    /// A report should be exactly 64 bytes. A shorter one is zero-padded (HID
    /// allows a device to receive short reports); bytes beyond 64 are ignored.
    /// An empty report (a zero-length packet) is ignored entirely. Never panics.
    pub fn handle_report(&mut self, report: &[u8], now_ms: u64) {
        if report.is_empty() {
            return;
        }
        let mut padded: Report = [0; REPORT_SIZE];
        let len = report.len().min(REPORT_SIZE);
        if let (Some(dst), Some(src)) = (padded.get_mut(..len), report.get(..len)) {
            dst.copy_from_slice(src);
        }
        self.transport.handle_report(&mut self.app, &padded, now_ms);
    }

    /// The next IN report waiting for the host, if any. Responses are
    /// fragmented lazily, so a whole response (up to 129 reports) is delivered
    /// without loss however slowly the host reads.
    pub fn next_report(&mut self) -> Option<[u8; 64]> {
        self.transport.next_report()
    }

    /// Drives the timers: the message timeout, KEEPALIVEs, presence polling
    /// and the presence timeout. Harmless when nothing is due.
    pub fn tick(&mut self, now_ms: u64) {
        self.transport.tick(&mut self.app, now_ms);
    }

    /// When [`Device::tick`] must be called next (in the same clock as
    /// `now_ms`); `None` when idle. It can change after every call to
    /// [`Device::handle_report`] or [`Device::tick`], never after
    /// [`Device::next_report`].
    pub fn next_deadline(&self) -> Option<u64> {
        self.transport.next_deadline()
    }

    /// USB reset, disconnect or re-attach: drops all channels, partial
    /// messages, queued reports, locks and pending waits (withdrawing a
    /// presence request), then calls [`App::transport_reset`].
    pub fn reset(&mut self) {
        self.transport.reset(&mut self.app);
    }

    /// Whether a transaction is open or reports wait for the host (for logging).
    pub fn has_pending_work(&self) -> bool {
        self.transport.has_pending_work()
    }

    /// Whether a request is waiting for the user's touch (for logging or a UI).
    pub fn is_awaiting_presence(&self) -> bool {
        self.transport.is_awaiting_presence()
    }

    /// How many error/keepalive/INIT reports were dropped because the host
    /// did not read them (for logging; responses are never dropped).
    pub fn dropped_reports(&self) -> u32 {
        self.transport.dropped_reports()
    }

    /// The app.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The app, mutably.
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The transport (for inspection, e.g. the allocated channel count).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

#[cfg(test)]
mod small_stack_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctaphid::packet::init_report;
    use crate::ctaphid::test_support::{reassemble, MockApp, NEEDS_PRESENCE};
    use crate::ctaphid::{Command, BROADCAST_CID};

    fn device() -> Device<MockApp> {
        Device::new(MockApp::default(), DeviceConfig::default())
    }

    fn init_request() -> Report {
        init_report(
            BROADCAST_CID,
            Command::Init.code(),
            8,
            &[1, 2, 3, 4, 5, 6, 7, 8],
        )
    }

    fn drain(device: &mut Device<MockApp>) -> std::vec::Vec<Report> {
        core::iter::from_fn(|| device.next_report()).collect()
    }

    #[test]
    fn short_reports_are_zero_padded() {
        let mut device = device();
        // Header plus nonce: 15 bytes, the rest implied zero.
        device.handle_report(&init_request()[..15], 0);
        let replies = reassemble(&drain(&mut device));
        assert_eq!(replies.len(), 1);
        assert_eq!(&replies[0].payload[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn bytes_beyond_64_are_ignored_and_empty_reports_do_nothing() {
        let mut device = device();
        let mut long = init_request().to_vec();
        long.extend_from_slice(&[0xFF; 100]);
        device.handle_report(&long, 0);
        assert_eq!(reassemble(&drain(&mut device)).len(), 1);
        device.handle_report(&[], 0);
        assert!(!device.has_pending_work());
        assert_eq!(device.next_report(), None);
    }

    #[test]
    fn deadlines_follow_the_transport_and_the_app_is_reachable() {
        let mut device = device();
        assert_eq!(device.next_deadline(), None);
        device.handle_report(&init_request(), 0);
        let reply = reassemble(&drain(&mut device)).remove(0);
        let cid = u32::from_be_bytes(reply.payload[8..12].try_into().unwrap());
        device.handle_report(
            &init_report(cid, Command::Cbor.code(), 1, &[NEEDS_PRESENCE]),
            100,
        );
        assert!(device.is_awaiting_presence());
        assert_eq!(device.app().presence_requests, 1);
        let deadline = device.next_deadline().unwrap();
        assert!(deadline > 100 && deadline <= 200);
        device.app_mut().presence = crate::platform::PresenceStatus::Approved;
        device.tick(deadline);
        assert!(!device.is_awaiting_presence());
        assert_eq!(device.next_deadline(), None);
        let replies = reassemble(&drain(&mut device));
        assert_eq!(
            replies.last().unwrap().payload,
            [0x00, 0x01, NEEDS_PRESENCE]
        );
        assert_eq!(device.dropped_reports(), 0);
    }

    #[test]
    fn reset_cancels_presence_and_tells_the_app() {
        let mut device = device();
        device.handle_report(&init_request(), 0);
        let reply = reassemble(&drain(&mut device)).remove(0);
        let cid = u32::from_be_bytes(reply.payload[8..12].try_into().unwrap());
        device.handle_report(
            &init_report(cid, Command::Cbor.code(), 1, &[NEEDS_PRESENCE]),
            0,
        );
        device.reset();
        assert_eq!(device.app().presence_cancels, 1);
        assert_eq!(device.app().transport_resets, 1);
        assert!(!device.has_pending_work());
        assert_eq!(device.transport().channel_count(), 0);
    }
}
