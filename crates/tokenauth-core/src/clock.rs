//! Time, injected: the engine asks a [`Clock`] for "now" whenever it decides
//! whether a token is fresh, due for renewal or expired, and whether a failed
//! acquisition is still backing off.
//!
//! The default is [`SystemClock`]. Tests use [`ManualClock`] and move time
//! forward with [`ManualClock::advance`], so expiry tests run in milliseconds.
//!
//! ```
//! use std::time::Duration;
//! use tokenauth_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let t0 = clock.now();
//! clock.advance(Duration::from_secs(3600));
//! assert_eq!(clock.now().duration_since(t0).unwrap(), Duration::from_secs(3600));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time.
///
/// Token expiry times come from the provider as wall-clock times
/// (`expires_at`) or durations from "now" (`expires_in`), so the clock deals
/// in [`SystemTime`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The real clock: [`SystemTime::now`]. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to, for tests.
///
/// It starts at the real current time (so tokens with absolute expiry times,
/// such as JWT `exp` claims, make sense) and is shared by cloning an `Arc`.
/// Lock-free: reads and writes are single atomic operations.
#[derive(Debug)]
pub struct ManualClock {
    // Nanoseconds since the Unix epoch.
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the real current time.
    pub fn new() -> Self {
        Self::at(SystemTime::now())
    }

    /// A clock standing at `time` (clamped to the Unix epoch .. year 2554).
    pub fn at(time: SystemTime) -> Self {
        ManualClock {
            nanos: AtomicU64::new(to_nanos(time)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the clock to `time`.
    pub fn set(&self, time: SystemTime) {
        self.nanos.store(to_nanos(time), Ordering::Release);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

fn to_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = ManualClock::at(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
