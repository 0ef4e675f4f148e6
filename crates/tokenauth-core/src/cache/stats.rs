use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One provider's counters in the `metrics` facade (feature `metrics`):
/// handles registered once, when the engine is built, so that a bump is one
/// call on the recorder's handle. Without the feature it is empty and every
/// bump compiles to nothing.
#[derive(Debug)]
pub(crate) struct ProviderMetrics {
    #[cfg(feature = "metrics")]
    hits: metrics::Counter,
    #[cfg(feature = "metrics")]
    fetches: metrics::Counter,
    #[cfg(feature = "metrics")]
    renewals: metrics::Counter,
    #[cfg(feature = "metrics")]
    failures: metrics::Counter,
    #[cfg(feature = "metrics")]
    rejections: metrics::Counter,
}

macro_rules! bump {
    ($($name:ident),*) => {$(
        #[inline]
        pub(crate) fn $name(&self) {
            #[cfg(feature = "metrics")]
            self.$name.increment(1);
        }
    )*};
}

impl ProviderMetrics {
    /// Registers the counters of `provider` with the installed recorder.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(provider: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            let counter =
                |name: &'static str| metrics::counter!(name, "provider" => provider.to_owned());
            ProviderMetrics {
                hits: counter("tokenauth_hits_total"),
                fetches: counter("tokenauth_fetches_total"),
                renewals: counter("tokenauth_renewals_total"),
                failures: counter("tokenauth_failures_total"),
                rejections: counter("tokenauth_rejections_total"),
            }
        }
        #[cfg(not(feature = "metrics"))]
        ProviderMetrics {}
    }

    bump!(hits, fetches, renewals, failures, rejections);
}

/// A snapshot of the engine's counters (see [`TokenAuth::stats`]).
///
/// [`TokenAuth::stats`]: crate::TokenAuth::stats
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `credential()` calls answered from the cache (fresh or in the renewal
    /// window).
    pub hits: u64,
    /// `credential()` calls that found no usable token and waited for one
    /// (single-flight: many misses can share one fetch).
    pub misses: u64,
    /// Acquisitions started (one per single-flight fetch or background
    /// renewal; static credentials rendered on a miss count too).
    pub fetches: u64,
    /// HTTP requests sent to token endpoints (retries included).
    pub token_requests: u64,
    /// Login requests (`[login]`), retries not counted.
    pub logins: u64,
    /// Refresh requests (`[refresh]`), retries not counted.
    pub refreshes: u64,
    /// Background renewals started from the renewal window.
    pub renewals: u64,
    /// Acquisitions that failed.
    pub failures: u64,
    /// `credential()` calls answered with a cached error while backing off.
    pub cached_errors: u64,
    /// Invalidations that dropped a cached token.
    pub invalidations: u64,
    /// Token replies whose lifetime was shorter than the floor (1 second)
    /// and was raised to it, one per reply (see the acquisition docs; the
    /// first one per provider is logged at WARN).
    pub clamped_lifetimes: u64,
    /// Fetches answered with a token another process published in the
    /// shared store (no token request here).
    pub adopted: u64,
    /// Times a fetch found another process holding the connection's token
    /// lease and waited for its result.
    pub lease_waits: u64,
    /// Fetches made without the shared store because it was unavailable.
    pub degraded_fetches: u64,
}

/// `hits` is bumped on every cache hit by every thread: one shared counter
/// would bounce its cache line between cores on every hit, so it is striped
/// over [`STRIPES`] counters on lines of their own, each thread bumping "its"
/// stripe. The rest change only on the slow path.
#[repr(align(128))]
#[derive(Default, Debug)]
struct Padded(AtomicU64);

/// Hit counter stripes (a power of two).
const STRIPES: usize = 8;

/// This thread's stripe.
#[inline]
fn stripe() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Relaxed) % STRIPES;
            s.set(i);
        }
        i
    })
}

#[derive(Default, Debug)]
pub(crate) struct Counters {
    hits: [Padded; STRIPES],
    pub(crate) misses: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) logins: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) renewals: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) cached_errors: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) clamped_lifetimes: AtomicU64,
    pub(crate) adopted: AtomicU64,
    pub(crate) lease_waits: AtomicU64,
    pub(crate) degraded_fetches: AtomicU64,
    /// The providers whose clamped lifetime has been logged.
    clamp_logged: std::sync::Mutex<Vec<String>>,
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits[stripe()].0.fetch_add(1, Relaxed);
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.iter().map(|h| h.0.load(Relaxed)).sum(),
            misses: self.misses.load(Relaxed),
            fetches: self.fetches.load(Relaxed),
            token_requests: self.token_requests.load(Relaxed),
            logins: self.logins.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            renewals: self.renewals.load(Relaxed),
            failures: self.failures.load(Relaxed),
            cached_errors: self.cached_errors.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            clamped_lifetimes: self.clamped_lifetimes.load(Relaxed),
            adopted: self.adopted.load(Relaxed),
            lease_waits: self.lease_waits.load(Relaxed),
            degraded_fetches: self.degraded_fetches.load(Relaxed),
        }
    }
}

impl crate::acquire::Counters for Counters {
    fn token_request(&self) {
        Counters::bump(&self.token_requests);
    }
    fn login(&self) {
        Counters::bump(&self.logins);
    }
    fn refresh(&self) {
        Counters::bump(&self.refreshes);
    }
    fn clamped_lifetime(&self, provider: &str) -> bool {
        Counters::bump(&self.clamped_lifetimes);
        // Rare (a misbehaving endpoint), so a lock is fine; a poisoned one
        // only means a panic elsewhere, and the list is still usable.
        let mut logged = self
            .clamp_logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if logged.iter().any(|p| p == provider) {
            return false;
        }
        logged.push(provider.to_owned());
        true
    }
}
