//! [`KeyCore`]: the core of one served key: the CTAPHID transport and the
//! authenticator (file-backed state, the key's presence), with every CTAP
//! request recorded on the event bus ([`super::Recorded`]).
//!
//! A control closure ([`crate::fleet::KeyRef::call`]) gets `&mut KeyCore`
//! between two reports, on the key's own task.

use ferrokey::device::{Device, DeviceConfig};

use super::recorded::Recorded;
use super::ReportCore;
use crate::cli::state::KeyApp;
use crate::events::{EventBus, KeyId};
use crate::presence::Presence;
use crate::usb::hid::REPORT_SIZE;

/// The authenticator of a served key.
pub type KeyAuthenticator = KeyApp<Presence>;

/// The core of one served key (see the module documentation).
pub struct KeyCore {
    device: Device<Recorded<KeyAuthenticator>>,
}

impl KeyCore {
    /// The core of key `id` around `authenticator`, recording on `bus`.
    pub fn new(
        authenticator: KeyAuthenticator,
        id: KeyId,
        bus: EventBus,
        config: DeviceConfig,
    ) -> Self {
        KeyCore {
            device: Device::new(
                Recorded::new(authenticator, id, bus).with_pin_watch(KeyAuthenticator::pin_uv_peek),
                config,
            ),
        }
    }

    /// The authenticator (credentials, PIN, counters).
    pub fn authenticator(&self) -> &KeyAuthenticator {
        self.device.app().inner()
    }

    /// The authenticator, mutably.
    pub fn authenticator_mut(&mut self) -> &mut KeyAuthenticator {
        self.device.app_mut().inner_mut()
    }

    /// The CTAPHID device facade (transport state, for inspection).
    pub fn device(&self) -> &Device<Recorded<KeyAuthenticator>> {
        &self.device
    }
}

impl ReportCore for KeyCore {
    fn handle_report(&mut self, report: &[u8], now_ms: u64) {
        self.device.handle_report(report, now_ms);
    }

    fn next_report(&mut self) -> Option<[u8; REPORT_SIZE]> {
        self.device.next_report()
    }

    fn tick(&mut self, now_ms: u64) {
        self.device.tick(now_ms);
    }

    fn next_deadline(&self) -> Option<u64> {
        self.device.next_deadline()
    }

    fn reset(&mut self) {
        self.device.reset();
    }
}
