//! Time, injected: the engine asks a [`Clock`] for "now" whenever it decides
//! whether a token is fresh, due for renewal or expired, and whether a failed
//! acquisition is still backing off.
//!
//! Two readings, for two kinds of decision:
//! - [`Clock::now`], the **wall clock**, for token expiry only: providers
//!   state expiry as wall-clock times (`expires_at`, JWT `exp`) or as
//!   lifetimes from now.
//! - [`Clock::monotonic`], a clock that never steps, for everything that is
//!   a wait: the backoff after a failed acquisition and the delay before a
//!   failed renewal is tried again. Stepping the wall clock (an NTP
//!   correction, a VM resumed, an operator's `date -s`) neither stretches
//!   nor cuts a backoff short.
//!
//! The default is [`SystemClock`]. Tests use [`ManualClock`] and move time
//! forward with [`ManualClock::advance`], so expiry tests run in milliseconds.
//!
//! When the engine runs on the default clock (no
//! [`TokenAuthBuilder::clock`](crate::TokenAuthBuilder::clock) set), a cache
//! hit first reads the kernel's coarse wall clock (`CLOCK_REALTIME_COARSE` on
//! Linux: the same clock, read without the hardware counter, at most a tick
//! behind) and adds a margin of 50 ms, which gives a time never earlier than
//! now. Only a token whose renewal window starts after that is served on this
//! reading; every other decision (renewal window, expiry, backoff) uses the
//! precise clock. A custom clock is always read precisely.
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
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of the current time: the wall clock for expiry, a monotonic
/// clock for waits.
///
/// Token expiry times come from the provider as wall-clock times
/// (`expires_at`) or durations from "now" (`expires_in`), so [`now`] deals
/// in [`SystemTime`]. Backoffs are waits, measured on [`monotonic`].
///
/// [`now`]: Clock::now
/// [`monotonic`]: Clock::monotonic
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// Time elapsed since a fixed origin of this clock, on a clock that
    /// never goes back or jumps when the wall clock is stepped. Only
    /// differences of two readings mean anything.
    ///
    /// Defaults to the process's monotonic clock ([`Instant`]); a test clock
    /// overrides it so that waits follow the test's time.
    fn monotonic(&self) -> Duration {
        SystemClock.monotonic()
    }
}

/// The real clock: [`SystemTime::now`] and [`Instant::now`]. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that only moves when told to, for tests.
///
/// It starts at the real current time (so tokens with absolute expiry times,
/// such as JWT `exp` claims, make sense) and is shared by cloning an `Arc`.
/// [`advance`](Self::advance) moves both readings, as time passing does;
/// [`set`](Self::set) steps only the wall clock, as an operator or NTP does,
/// and leaves [`monotonic`](Clock::monotonic) where it is. Lock-free: reads
/// and writes are single atomic operations.
#[derive(Debug)]
pub struct ManualClock {
    // Nanoseconds since the Unix epoch.
    nanos: AtomicU64,
    // Nanoseconds since the clock was made.
    elapsed: AtomicU64,
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
            elapsed: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `by`: the wall clock and the monotonic
    /// clock alike.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        for counter in [&self.nanos, &self.elapsed] {
            let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
        }
    }

    /// Steps the wall clock to `time` (back or forward); the monotonic clock
    /// does not move.
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

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.elapsed.load(Ordering::Acquire))
    }
}

/// A cheap upper bound of the current wall-clock time, for the cache-hit path
/// of an engine on the default [`SystemClock`].
///
/// `CLOCK_REALTIME_COARSE` is the same wall clock as [`SystemTime::now`]
/// (`CLOCK_REALTIME`), read without the hardware counter: it is the time of
/// the last timer tick, so never ahead of the precise clock and behind it by
/// less than a tick (1-10 ms). Reading it costs a few nanoseconds instead of
/// a few tens. Adding [`COARSE_SLACK`] (several ticks) gives a time that is
/// never earlier than "now": a token whose renewal starts after that bound is
/// certainly fresh. Anything closer to its renewal or expiry is decided with
/// the precise clock.
pub(crate) mod coarse {
    use std::time::Duration;

    /// The margin added to the coarse time.
    pub(crate) const COARSE_SLACK: Duration = Duration::from_millis(50);

    /// The coarse clock is used only if it ticks at least this often.
    const MAX_RESOLUTION: Duration = Duration::from_millis(10);

    /// True when [`upper_bound_nanos`] is available and fine enough.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn available() -> bool {
        use rustix::time::{ClockId, clock_getres};
        let res = clock_getres(ClockId::RealtimeCoarse);
        res.tv_sec == 0
            && u64::try_from(res.tv_nsec)
                .is_ok_and(|n| n > 0 && Duration::from_nanos(n) <= MAX_RESOLUTION)
    }

    /// Nanoseconds since the Unix epoch, at least the current time
    /// (`u64::MAX` if the clock is before 1970).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[inline]
    pub(crate) fn upper_bound_nanos() -> u64 {
        use rustix::time::{ClockId, clock_gettime};
        let ts = clock_gettime(ClockId::RealtimeCoarse);
        match (u64::try_from(ts.tv_sec), u64::try_from(ts.tv_nsec)) {
            (Ok(s), Ok(n)) => s
                .saturating_mul(1_000_000_000)
                .saturating_add(n)
                .saturating_add(COARSE_SLACK.as_nanos() as u64),
            _ => u64::MAX,
        }
    }

    /// Not available on this platform: the precise clock is used.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn available() -> bool {
        false
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    #[inline]
    pub(crate) fn upper_bound_nanos() -> u64 {
        u64::MAX
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
    fn the_coarse_bound_is_never_before_now_and_close_to_it() {
        if !coarse::available() {
            return;
        }
        for _ in 0..10_000 {
            let now = to_nanos(SystemTime::now());
            let bound = coarse::upper_bound_nanos();
            assert!(bound >= now, "coarse bound {bound} before now {now}");
            let after = to_nanos(SystemTime::now());
            assert!(
                bound <= after + coarse::COARSE_SLACK.as_nanos() as u64,
                "the bound is at most the slack ahead"
            );
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = ManualClock::at(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
        assert_eq!(clock.monotonic(), Duration::from_millis(1500));
        clock.set(start);
        assert_eq!(clock.now(), start);
        assert_eq!(
            clock.monotonic(),
            Duration::from_millis(1500),
            "a step of the wall clock leaves the monotonic clock alone"
        );
    }

    #[test]
    fn the_system_monotonic_clock_never_goes_back() {
        let mut last = SystemClock.monotonic();
        for _ in 0..1000 {
            let now = SystemClock.monotonic();
            assert!(now >= last);
            last = now;
        }
    }
}
