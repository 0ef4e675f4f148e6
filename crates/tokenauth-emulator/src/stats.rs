//! Counters (lock-free atomics) and their serializable snapshot, [`Stats`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use crate::host::Provider;

/// A snapshot of all counters, as returned by
/// [`Emulator::stats`](crate::Emulator::stats) and `GET /_emulator/stats`.
///
/// JSON shape:
/// ```json
/// {
///   "reobtimaal": {
///     "token": {
///       "requests": 3,
///       "requests_by_grant": { "password": 2, "refresh_token": 0, "other": 1 },
///       "replies_by_status": { "200": 2, "400": 1 },
///       "aborted": 0,
///       "in_flight": 0,
///       "max_concurrent_token_requests": 1,
///       "refresh_reuse": 0
///     },
///     "api": { "requests": 5, "replies_by_status": { "200": 4, "401": 1 } }
///   },
///   "twoba": { "token": { ... }, "api": { ... } },
///   "bro":   { "token": { ... }, "api": { ... } }
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// REOBtimaal counters.
    pub reobtimaal: ProviderStats,
    /// 2BA counters (token endpoint on `authorize.2ba.nl`, API on `api.2ba.nl`).
    pub twoba: ProviderStats,
    /// BRO counters (the token section stays zero: BRO has no token endpoint).
    pub bro: ProviderStats,
}

impl Stats {
    /// The counters of one provider.
    pub fn provider(&self, provider: Provider) -> &ProviderStats {
        match provider {
            Provider::Reobtimaal => &self.reobtimaal,
            Provider::Twoba => &self.twoba,
            Provider::Bro => &self.bro,
        }
    }
}

/// Counters of one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStats {
    /// The token endpoint.
    pub token: TokenStats,
    /// The protected API.
    pub api: ApiStats,
}

/// Token-endpoint counters of one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStats {
    /// Token requests received (every request to the token endpoint).
    pub requests: u64,
    /// Token requests by the value of the grant field (`grant-type` for
    /// REOBtimaal, `grant_type` for 2BA).
    pub requests_by_grant: GrantCounts,
    /// Replies sent, by HTTP status (faulted replies included).
    pub replies_by_status: BTreeMap<u16, u64>,
    /// Requests answered by closing the connection without any reply.
    pub aborted: u64,
    /// Token requests being handled right now.
    pub in_flight: u64,
    /// The most token requests handled at the same time since the last reset.
    pub max_concurrent_token_requests: u64,
    /// Refresh requests that presented an already used refresh token.
    pub refresh_reuse: u64,
}

impl TokenStats {
    /// How many replies had this status.
    pub fn status(&self, status: u16) -> u64 {
        self.replies_by_status.get(&status).copied().unwrap_or(0)
    }
}

/// Token requests by grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCounts {
    /// Grant value `password`.
    pub password: u64,
    /// Grant value `refresh_token`.
    pub refresh_token: u64,
    /// Anything else, including a missing or misspelt grant field.
    pub other: u64,
}

/// API counters of one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiStats {
    /// API requests received.
    pub requests: u64,
    /// Replies by HTTP status.
    pub replies_by_status: BTreeMap<u16, u64>,
}

impl ApiStats {
    /// How many replies had this status.
    pub fn status(&self, status: u16) -> u64 {
        self.replies_by_status.get(&status).copied().unwrap_or(0)
    }
}

/// Which grant a token request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    Password,
    RefreshToken,
    Other,
}

const STATUS_SLOTS: usize = 600;

/// One counter per HTTP status 0..600.
pub(crate) struct StatusCounters(Box<[AtomicU64]>);

impl StatusCounters {
    fn new() -> Self {
        StatusCounters((0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect())
    }

    pub(crate) fn add(&self, status: u16) {
        let i = usize::from(status).min(STATUS_SLOTS - 1);
        if let Some(c) = self.0.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    fn snapshot(&self) -> BTreeMap<u16, u64> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Relaxed);
                (n > 0).then(|| (u16::try_from(i).unwrap_or(u16::MAX), n))
            })
            .collect()
    }

    fn reset(&self) {
        for c in self.0.iter() {
            c.store(0, Relaxed);
        }
    }
}

/// The live counters of one provider.
pub(crate) struct Counters {
    token_requests: AtomicU64,
    grant_password: AtomicU64,
    grant_refresh: AtomicU64,
    grant_other: AtomicU64,
    pub(crate) token_status: StatusCounters,
    pub(crate) token_aborted: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    pub(crate) refresh_reuse: AtomicU64,
    api_requests: AtomicU64,
    pub(crate) api_status: StatusCounters,
}

/// Decrements the in-flight count when dropped.
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            token_requests: AtomicU64::new(0),
            grant_password: AtomicU64::new(0),
            grant_refresh: AtomicU64::new(0),
            grant_other: AtomicU64::new(0),
            token_status: StatusCounters::new(),
            token_aborted: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            refresh_reuse: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            api_status: StatusCounters::new(),
        }
    }

    /// Counts a token request and marks it in flight until the guard drops.
    pub(crate) fn enter_token(&self) -> InFlight<'_> {
        self.token_requests.fetch_add(1, Relaxed);
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Relaxed);
        InFlight(&self.in_flight)
    }

    pub(crate) fn grant(&self, grant: Grant) {
        let c = match grant {
            Grant::Password => &self.grant_password,
            Grant::RefreshToken => &self.grant_refresh,
            Grant::Other => &self.grant_other,
        };
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn api_request(&self) {
        self.api_requests.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ProviderStats {
        ProviderStats {
            token: TokenStats {
                requests: self.token_requests.load(Relaxed),
                requests_by_grant: GrantCounts {
                    password: self.grant_password.load(Relaxed),
                    refresh_token: self.grant_refresh.load(Relaxed),
                    other: self.grant_other.load(Relaxed),
                },
                replies_by_status: self.token_status.snapshot(),
                aborted: self.token_aborted.load(Relaxed),
                in_flight: self.in_flight.load(Relaxed),
                max_concurrent_token_requests: self.max_in_flight.load(Relaxed),
                refresh_reuse: self.refresh_reuse.load(Relaxed),
            },
            api: ApiStats {
                requests: self.api_requests.load(Relaxed),
                replies_by_status: self.api_status.snapshot(),
            },
        }
    }

    /// Zeroes everything but the in-flight gauge; the maximum restarts from it.
    pub(crate) fn reset(&self) {
        for c in [
            &self.token_requests,
            &self.grant_password,
            &self.grant_refresh,
            &self.grant_other,
            &self.token_aborted,
            &self.refresh_reuse,
            &self.api_requests,
        ] {
            c.store(0, Relaxed);
        }
        self.token_status.reset();
        self.api_status.reset();
        self.max_in_flight
            .store(self.in_flight.load(Relaxed), Relaxed);
    }
}
