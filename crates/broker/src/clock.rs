//! The broker's wall clock, read through tokio's clock so paused-time tests control it.
//!
//! `expires` headers are absolute (milliseconds since the UNIX epoch). The clock reads the
//! system time once, when the broker is built, and advances with [`tokio::time::Instant`] from
//! there: tests under paused time move it with `tokio::time::advance`, and a system clock
//! stepping backwards cannot make messages live forever.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the UNIX epoch, monotonic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin_ms: u64,
    origin: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let origin_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            origin_ms,
            origin: Instant::now(),
        }
    }

    /// Now, in milliseconds since the UNIX epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        self.origin_ms + self.origin.elapsed().as_millis() as u64
    }
}
