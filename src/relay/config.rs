//! The relay's tuning, which the listener and the transfers both read.

use std::time::Duration;

/// Tuning for the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The largest span of one upstream `Range: bytes=a-b` request (`b - a + 1`).
    pub request_size: u64,
    /// Retries of one stretch of bytes after a transient upstream failure, before ffmpeg sees an error.
    pub upstream_retries: u32,
    /// How long an upstream request may take to produce its response head (connect included).
    pub connect_timeout: Duration,
    /// How long an upstream body, or ffmpeg between requests, may stay silent.
    pub read_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            // Below the size at which YouTube throttles open-ended ranges (about 10 MB remaining).
            request_size: 8 * 1024 * 1024,
            upstream_retries: 3,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
        }
    }
}
