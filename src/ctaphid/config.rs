//! Settings of the CTAPHID transport: the version `INIT` reports and the timers.

/// The device version reported in the `INIT` response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeviceVersion {
    /// Major device version number.
    pub major: u8,
    /// Minor device version number.
    pub minor: u8,
    /// Build device version number.
    pub build: u8,
}

/// The transport's timers, in milliseconds of the caller's clock.
///
/// The defaults follow CTAP 2.1 and what hosts expect; tests may shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// An incomplete request is dropped with `MSG_TIMEOUT` when no packet of it
    /// arrived for this long (default 500).
    pub message_timeout_ms: u64,
    /// The period of KEEPALIVE reports while waiting for the user (default 75;
    /// hosts give up after about 100 ms without one, Windows after 500 ms).
    pub keepalive_interval_ms: u64,
    /// How often the user-presence test is polled while waiting (default 25).
    pub presence_poll_interval_ms: u64,
    /// How long to wait for the user before answering `USER_ACTION_TIMEOUT`
    /// (default 30 000).
    pub presence_timeout_ms: u64,
    /// A response the host has not finished reading for this long no longer
    /// holds off requests from other channels (default 1000). Covers a host
    /// application that went away in the middle of reading a response.
    pub stale_response_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            message_timeout_ms: 500,
            keepalive_interval_ms: 75,
            presence_poll_interval_ms: 25,
            presence_timeout_ms: 30_000,
            stale_response_ms: 1_000,
        }
    }
}

/// Configuration of the CTAPHID transport (and of [`crate::device::Device`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// The version `INIT` reports.
    pub version: DeviceVersion,
    /// The timers.
    pub timing: Timing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timing_keeps_keepalives_under_100_ms() {
        let timing = Timing::default();
        assert_eq!(timing.message_timeout_ms, 500);
        assert!(timing.keepalive_interval_ms < 100);
        assert!(timing.presence_poll_interval_ms <= timing.keepalive_interval_ms);
        assert_eq!(timing.presence_timeout_ms, 30_000);
    }
}
