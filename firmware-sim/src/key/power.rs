//! A core that can really lose power: [`PowerCycled`] drops the whole core at
//! power-off and builds a new one from persistent state at power-on, so every
//! volatile thing (PIN retries of this power-up, key agreement keys, tokens,
//! the time since power-up) starts afresh, exactly as on a real key.

use super::ReportCore;
use crate::usb::hid::REPORT_SIZE;

/// Builds a freshly powered-up core (opens the key's state again).
pub type PowerUp<C> = Box<dyn FnMut() -> anyhow::Result<C> + Send>;

/// A [`ReportCore`] that is dropped at power-off and rebuilt at power-on.
pub struct PowerCycled<C> {
    core: Option<C>,
    power_up: PowerUp<C>,
}

impl<C> PowerCycled<C> {
    /// Starts powered, with `core`; `power_up` builds the core of each later
    /// power-up (the previous one is dropped first, releasing its state).
    pub fn new(core: C, power_up: PowerUp<C>) -> Self {
        PowerCycled {
            core: Some(core),
            power_up,
        }
    }

    /// Whether the core is powered.
    pub fn is_powered(&self) -> bool {
        self.core.is_some()
    }

    /// The powered core, if any.
    pub fn core(&self) -> Option<&C> {
        self.core.as_ref()
    }

    /// The powered core, mutably, if any.
    pub fn core_mut(&mut self) -> Option<&mut C> {
        self.core.as_mut()
    }
}

impl<C: ReportCore> ReportCore for PowerCycled<C> {
    fn handle_report(&mut self, report: &[u8], now_ms: u64) {
        if let Some(core) = &mut self.core {
            core.handle_report(report, now_ms);
        }
    }

    fn next_report(&mut self) -> Option<[u8; REPORT_SIZE]> {
        self.core.as_mut().and_then(ReportCore::next_report)
    }

    fn tick(&mut self, now_ms: u64) {
        if let Some(core) = &mut self.core {
            core.tick(now_ms);
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.core.as_ref().and_then(ReportCore::next_deadline)
    }

    fn reset(&mut self) {
        if let Some(core) = &mut self.core {
            core.reset();
        }
    }

    fn power_off(&mut self) {
        if let Some(mut core) = self.core.take() {
            core.power_off();
        }
    }

    fn power_on(&mut self) -> bool {
        // Whatever was left goes first: it may hold the state's lock.
        self.power_off();
        match (self.power_up)() {
            Ok(core) => {
                self.core = Some(core);
                true
            }
            Err(error) => {
                tracing::error!("power-up failed: {error:#}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Counts its generation; answers every report with it.
    struct Gen(u32, Option<[u8; REPORT_SIZE]>);

    impl ReportCore for Gen {
        fn handle_report(&mut self, _: &[u8], _: u64) {
            self.1 = Some([u8::try_from(self.0).unwrap_or(0xFF); REPORT_SIZE]);
        }
        fn next_report(&mut self) -> Option<[u8; REPORT_SIZE]> {
            self.1.take()
        }
        fn tick(&mut self, _: u64) {}
        fn next_deadline(&self) -> Option<u64> {
            None
        }
        fn reset(&mut self) {
            self.1 = None;
        }
    }

    #[test]
    fn power_cycle_rebuilds_and_failures_leave_it_off() {
        let built = Arc::new(AtomicU32::new(1));
        let counter = Arc::clone(&built);
        let mut core = PowerCycled::new(
            Gen(1, None),
            Box::new(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 3 {
                    anyhow::bail!("broken state");
                }
                Ok(Gen(n, None))
            }),
        );
        core.handle_report(&[0; 64], 0);
        assert_eq!(core.next_report().map(|r| r[0]), Some(1));
        core.power_off();
        assert!(!core.is_powered());
        core.handle_report(&[0; 64], 0);
        assert_eq!(core.next_report(), None);
        assert!(core.power_on());
        core.handle_report(&[0; 64], 0);
        assert_eq!(core.next_report().map(|r| r[0]), Some(2));
        assert!(!core.power_on());
        assert!(!core.is_powered());
        assert!(core.power_on());
        assert!(core.is_powered());
    }
}
