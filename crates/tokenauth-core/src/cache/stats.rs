use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// One provider's counters: its share of the engine's counters, bumped
/// only off the hot path (a cache hit bumps the engine's striped `hits`
/// alone), summed over the providers for [`Stats`]; and its handles in the
/// `metrics` facade (feature `metrics`), registered once when the engine is
/// built, so that a bump is one call on the recorder's handle.
#[derive(Debug)]
pub(crate) struct ProviderCounters {
    misses: AtomicU64,
    fetches: AtomicU64,
    token_requests: AtomicU64,
    logins: AtomicU64,
    refreshes: AtomicU64,
    renewals: AtomicU64,
    failures: AtomicU64,
    invalidations: AtomicU64,
    clamped_lifetimes: AtomicU64,
    /// The first clamped lifetime has been logged.
    clamp_logged: AtomicBool,
    #[cfg(feature = "metrics")]
    metrics: Handles,
}

/// The `metrics` facade's handles of one provider.
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Handles {
    hits: metrics::Counter,
    fetches: metrics::Counter,
    renewals: metrics::Counter,
    failures: metrics::Counter,
    rejections: metrics::Counter,
}

/// One provider's share of the engine's counters (see
/// [`TokenAuth::provider_stats`]): the same meanings as in [`Stats`], whose
/// figures are these summed over the providers. Cache hits are counted for
/// the engine only (see [`Stats::hits`]): a hit bumps one counter, not two.
///
/// [`TokenAuth::provider_stats`]: crate::TokenAuth::provider_stats
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderStats {
    /// `credential()` calls that found no usable token and waited for one.
    pub misses: u64,
    /// Acquisitions started.
    pub fetches: u64,
    /// HTTP requests sent to the provider's token endpoints (retries
    /// included).
    pub token_requests: u64,
    /// Login requests, retries not counted.
    pub logins: u64,
    /// Refresh requests, retries not counted.
    pub refreshes: u64,
    /// Background renewals started.
    pub renewals: u64,
    /// Acquisitions that failed.
    pub failures: u64,
    /// Invalidations that dropped a cached token (a rejected credential).
    pub invalidations: u64,
    /// Token replies whose lifetime was raised to the floor.
    pub clamped_lifetimes: u64,
}

/// A `metrics` counter of this provider and, where the provider's share
/// keeps it too, that.
macro_rules! bump {
    ($($name:ident: $share:expr),*) => {$(
        #[inline]
        pub(crate) fn $name(&self) {
            #[cfg(feature = "metrics")]
            self.metrics.$name.increment(1);
            if $share {
                self.$name.fetch_add(1, Relaxed);
            }
        }
    )*};
}

/// A `metrics` counter of this provider only (nothing without the feature).
macro_rules! metric {
    ($($name:ident),*) => {$(
        #[inline]
        pub(crate) fn $name(&self) {
            #[cfg(feature = "metrics")]
            self.metrics.$name.increment(1);
        }
    )*};
}

/// A counter of the provider's share only.
macro_rules! share {
    ($($name:ident),*) => {$(
        #[inline]
        pub(crate) fn $name(&self) {
            self.$name.fetch_add(1, Relaxed);
        }
    )*};
}

impl ProviderCounters {
    /// Zeroed counters for `provider`, its `metrics` handles registered with
    /// the installed recorder.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(provider: &str) -> Self {
        ProviderCounters {
            misses: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            clamped_lifetimes: AtomicU64::new(0),
            clamp_logged: AtomicBool::new(false),
            #[cfg(feature = "metrics")]
            metrics: {
                let counter =
                    |name: &'static str| metrics::counter!(name, "provider" => provider.to_owned());
                Handles {
                    hits: counter("tokenauth_hits_total"),
                    fetches: counter("tokenauth_fetches_total"),
                    renewals: counter("tokenauth_renewals_total"),
                    failures: counter("tokenauth_failures_total"),
                    rejections: counter("tokenauth_rejections_total"),
                }
            },
        }
    }

    bump!(fetches: true, renewals: true, failures: true);
    metric!(hits, rejections);
    share!(misses, invalidations);

    pub(crate) fn snapshot(&self) -> ProviderStats {
        ProviderStats {
            misses: self.misses.load(Relaxed),
            fetches: self.fetches.load(Relaxed),
            token_requests: self.token_requests.load(Relaxed),
            logins: self.logins.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            renewals: self.renewals.load(Relaxed),
            failures: self.failures.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            clamped_lifetimes: self.clamped_lifetimes.load(Relaxed),
        }
    }
}

impl crate::acquire::Counters for ProviderCounters {
    fn token_request(&self) {
        self.token_requests.fetch_add(1, Relaxed);
    }
    fn login(&self) {
        self.logins.fetch_add(1, Relaxed);
    }
    fn refresh(&self) {
        self.refreshes.fetch_add(1, Relaxed);
    }
    fn clamped_lifetime(&self, _provider: &str) -> bool {
        self.clamped_lifetimes.fetch_add(1, Relaxed);
        !self.clamp_logged.swap(true, Relaxed)
    }
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

/// The engine's own counters; the rest are per provider
/// ([`ProviderCounters`]) and summed in [`Counters::snapshot`].
#[derive(Default, Debug)]
pub(crate) struct Counters {
    hits: [Padded; STRIPES],
    pub(crate) cached_errors: AtomicU64,
    pub(crate) adopted: AtomicU64,
    pub(crate) lease_waits: AtomicU64,
    pub(crate) degraded_fetches: AtomicU64,
}

impl Counters {
    // Inlined: it runs on every request, and the call cost about as much
    // as the increment.
    #[inline]
    pub(crate) fn hit(&self) {
        self.hits[stripe()].0.fetch_add(1, Relaxed);
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// The engine's counters, with the providers' shares summed.
    pub(crate) fn snapshot(&self, providers: &[ProviderCounters]) -> Stats {
        let mut stats = Stats {
            hits: self.hits.iter().map(|h| h.0.load(Relaxed)).sum(),
            cached_errors: self.cached_errors.load(Relaxed),
            adopted: self.adopted.load(Relaxed),
            lease_waits: self.lease_waits.load(Relaxed),
            degraded_fetches: self.degraded_fetches.load(Relaxed),
            ..Stats::default()
        };
        for p in providers.iter().map(ProviderCounters::snapshot) {
            stats.misses += p.misses;
            stats.fetches += p.fetches;
            stats.token_requests += p.token_requests;
            stats.logins += p.logins;
            stats.refreshes += p.refreshes;
            stats.renewals += p.renewals;
            stats.failures += p.failures;
            stats.invalidations += p.invalidations;
            stats.clamped_lifetimes += p.clamped_lifetimes;
        }
        stats
    }
}
