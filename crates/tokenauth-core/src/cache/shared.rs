//! The engine over a shared store: one token fetch for all the processes
//! that share a [`TokenStore`], through the store's protocol (see
//! [`crate::store`]).
//!
//! Within a process a fetch is already single-flight (one task per
//! connection). With a shared store, that task then:
//!
//! 1. **reads** the shared state. A token another process published is
//!    adopted (no token request) if it is not due for renewal yet, or, for a
//!    miss, if it is still valid for a while (the renewal follows in the
//!    background). A shared backoff that has not ended is an
//!    [`Error::BackedOff`].
//! 2. **takes the lease**. When someone holds it, the task waits for that
//!    holder's result (bounded by the holder's deadline) and starts over at
//!    step 1. It never fetches without the lease; after waiting longer than
//!    the maximum hold it fails with [`Error::LeaseWait`].
//! 3. holding the lease, **reads again** (a result published between 1 and
//!    2 is adopted), then **fetches** while renewing the lease every third
//!    of its time to live (compare-and-extend on the owner and fencing
//!    number). If the lease cannot be renewed, or the fetch outlasts the
//!    maximum hold, the fetch is abandoned a quarter of the lease's time to
//!    live before its deadline ([`Error::LeaseLost`]): the token request never
//!    outlives the lease, so no other process can start its own with the same
//!    refresh token. A rotated refresh token is stored by compare-and-set
//!    before anything is published (the acquisition does that).
//! 4. **publishes** the token (or, after a failure of the token endpoint, a
//!    shared backoff beside the still-valid token) and **releases** the lease,
//!    which wakes the waiting processes.
//!
//! Every store call is bounded by the store timeout. When the store is
//! unavailable, providers without rotating refresh tokens are fetched in
//! this process alone (logged once, until the store answers again; refresh
//! tokens are then kept in memory); providers with `refresh.rotate = true`
//! fail with [`Error::StoreUnavailable`] unless local fallback was allowed.
//! Cached tokens are served all along: the hot path never calls the store.
//!
//! The default store (a [`MemoryStore`] the engine made itself) is private to
//! the engine, so none of this runs for it: it only keeps refresh tokens.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::future::{Either, select};
use secrecy::ExposeSecret as _;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::credential::Fetched;
use super::engine::Inner;
use super::stats::Counters;
use crate::connection::Connection;
use crate::error::Error;
use crate::store::{
    Backoff, Lease, LeaseOutcome, MemoryStore, Publication, SharedState, SharedToken, StoreError,
    StoreErrorKind, StoreKey, within,
};

/// A miss adopts a published token that is due for renewal only if it is
/// still valid for at least this long.
const MIN_ADOPTED_LIFETIME: Duration = Duration::from_secs(1);

/// The most rejected-token notes kept (see [`Coordination::reject`]).
const MAX_REJECTED: usize = 4096;

/// Waits on another process's lease end this long after its deadline, so
/// that a lease that just expired is seen as free.
const LEASE_SLACK: Duration = Duration::from_millis(50);

/// What a failed read was doing, in [`Error::Store`].
const READ: &str = "read the shared token state";

/// How the engine shares fetches through its store; see the
/// [module docs](self).
#[derive(Debug)]
pub(crate) struct Coordination {
    /// The store is shared (given by the application): run the protocol.
    /// False for the engine's own [`MemoryStore`].
    pub(crate) shared: bool,
    /// This engine's lease owner id: host, process id and a random number.
    pub(crate) owner: String,
    pub(crate) lease_ttl: Duration,
    pub(crate) max_hold: Duration,
    pub(crate) store_timeout: Duration,
    /// Providers with rotating refresh tokens may fetch without the store
    /// when it is unavailable.
    pub(crate) local_fallback: bool,
    /// The store was unavailable at the last call (logged once per outage).
    degraded: AtomicBool,
    /// Refresh tokens fetched while the store is unavailable.
    fallback: MemoryStore,
    /// Per (provider index, connection): the fingerprint of the access token
    /// an API rejected here, so that the fetch that replaces it does not
    /// adopt the same token from the store. Cleared by the next fetch.
    rejected: Mutex<HashMap<(usize, Arc<str>), u64>>,
}

impl Coordination {
    pub(crate) fn new(
        shared: bool,
        lease_ttl: Duration,
        max_hold: Duration,
        store_timeout: Duration,
        local_fallback: bool,
    ) -> Self {
        Coordination {
            shared,
            owner: owner_id(),
            lease_ttl,
            max_hold,
            store_timeout,
            local_fallback,
            degraded: AtomicBool::new(false),
            fallback: MemoryStore::new(),
            rejected: Mutex::new(HashMap::new()),
        }
    }

    /// Notes that an API rejected `access`, the token of (`index`, `conn`).
    pub(crate) fn reject(&self, index: usize, conn: &Connection, access: &str) {
        if self.shared {
            let key = (index, conn.id_arc().clone());
            let mut rejected = lock(&self.rejected);
            // Notes are cleared by the next fetch of their connection; a
            // bound keeps connections that never fetch again from piling up.
            if rejected.len() >= MAX_REJECTED {
                rejected.clear();
            }
            rejected.insert(key, fingerprint(access));
        }
    }

    /// The note of [`reject`](Self::reject), if any.
    fn rejected(&self, index: usize, conn: &Connection) -> Option<u64> {
        let rejected = lock(&self.rejected);
        if rejected.is_empty() {
            return None;
        }
        rejected.get(&(index, conn.id_arc().clone())).copied()
    }

    /// Drops the note: a new token was obtained.
    fn clear_rejected(&self, index: usize, conn: &Connection) {
        lock(&self.rejected).remove(&(index, conn.id_arc().clone()));
    }
}

/// A token's fingerprint, to recognise it without keeping it (in memory
/// only; never logged).
fn fingerprint(token: &str) -> u64 {
    use std::hash::BuildHasher as _;
    foldhash::quality::FixedState::default().hash_one(token)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `host:pid:random`: unique per engine, readable in a lease value (never
/// in a key name).
fn owner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.len() <= 64)
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}:{}:{:016x}", std::process::id(), fastrand::u64(..))
}

impl Inner {
    /// A token for `conn`: from the shared store, fetched under its lease, or
    /// (for the engine's own store) fetched directly. `renewal`: the cached
    /// token is in its renewal window (else nothing usable is cached).
    pub(crate) async fn obtain(
        &self,
        index: usize,
        conn: &Connection,
        renewal: bool,
    ) -> Result<Fetched, Error> {
        let coordination = &self.coordination;
        if !coordination.shared {
            return self.acquire(index, conn, &*self.store).await;
        }
        let rejected = coordination.rejected(index, conn);
        // Boxed: the shared path's future (store round trips, the lease held
        // beside the fetch) is over 4 KiB, and inline it would make every
        // fetch's future that big, store or not.
        let result = Box::pin(self.obtain_shared(index, conn, renewal, rejected)).await;
        if result.is_ok() && rejected.is_some() {
            coordination.clear_rejected(index, conn);
        }
        result
    }

    /// [`obtain`](Self::obtain) through a shared store; `rejected`: the
    /// fingerprint of a token an API rejected here, never adopted.
    async fn obtain_shared(
        &self,
        index: usize,
        conn: &Connection,
        renewal: bool,
        rejected: Option<u64>,
    ) -> Result<Fetched, Error> {
        let coordination = &self.coordination;
        let key = StoreKey {
            provider: &self.provider_ids[index],
            connection: conn.id(),
        };
        let started = Instant::now();
        let give_up = started + coordination.max_hold + coordination.lease_ttl;
        loop {
            let state = match self.stored(self.store.read(&key)).await {
                Ok(state) => state,
                Err(e) => return self.without_store(index, conn, READ, e).await,
            };
            if let Some(token) = self.adoptable(index, &state, renewal, rejected) {
                return Ok(self.adopt(index, token));
            }
            self.backoff(index, conn, &state)?;
            let asked = Instant::now();
            let lease = self
                .store
                .try_lease(&key, &coordination.owner, coordination.lease_ttl);
            let until = match self.stored(lease).await {
                Ok(LeaseOutcome::Acquired(lease)) => {
                    return self
                        .fetch_leased(index, conn, lease, asked, renewal, rejected)
                        .await;
                }
                Ok(LeaseOutcome::Held { until }) => until,
                Err(e) => {
                    return self
                        .without_store(index, conn, "take the token lease", e)
                        .await;
                }
            };
            Counters::bump(&self.counters.lease_waits);
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::LeaseWait {
                    provider: self.provider_ids[index].to_string(),
                    connection: conn.id().to_owned(),
                    waited: whole_millis(started.elapsed()),
                });
            }
            // Bounded by the holder's deadline: when it passes without a
            // result, the lease is free and the next round takes it.
            let holder = until.duration_since(SystemTime::now()).unwrap_or_default();
            let timeout = (holder + LEASE_SLACK).min(left);
            debug!(
                wait_ms = timeout.as_millis() as u64,
                "another process holds the token lease: waiting for its result"
            );
            let wait = self.store.wait(&key, state.version, timeout);
            // Published, lease free or timed out: look again. Never fetch
            // without the lease.
            if let Err(e) = within(timeout + coordination.store_timeout, wait).await {
                let action = "wait for another process's token";
                return self.without_store(index, conn, action, e).await;
            }
        }
    }

    /// Holding `lease` (asked for at `asked`): fetch, publish, release.
    async fn fetch_leased(
        &self,
        index: usize,
        conn: &Connection,
        lease: Lease,
        asked: Instant,
        renewal: bool,
        rejected: Option<u64>,
    ) -> Result<Fetched, Error> {
        // A result published between the first read and the lease.
        let state = match self.stored(self.store.read(&lease.key())).await {
            Ok(state) => state,
            Err(e) => {
                self.release(&lease).await;
                return self.without_store(index, conn, READ, e).await;
            }
        };
        let ready = match self.adoptable(index, &state, renewal, rejected) {
            Some(token) => Some(Ok(self.adopt(index, token))),
            None => self.backoff(index, conn, &state).err().map(Err),
        };
        if let Some(result) = ready {
            self.release(&lease).await;
            return result;
        }
        let fetch = pin!(self.acquire(index, conn, &*self.store));
        let hold = pin!(self.hold(index, conn, &lease, asked));
        let result = match select(fetch, hold).await {
            Either::Left((result, _)) => result,
            // The fetch was dropped before the lease ran out; the lease is
            // gone, so there is nothing to publish or release.
            Either::Right((lost, _)) => return Err(lost),
        };
        let now = self.clock.now();
        let publication = match &result {
            Ok(fetched) => Publication {
                token: Some(SharedToken {
                    access: fetched.access.clone(),
                    expires_at: fetched.expires_at,
                    renew_at: fetched.renew_at,
                    api_base: fetched.api_base.as_ref().map(|u| u.to_string()),
                }),
                backoff: None,
            },
            Err(error) if shares_backoff(error) => {
                let attempts = state
                    .backoff
                    .as_ref()
                    .map_or(1, |b| b.attempts.saturating_add(1));
                let wait = self.failure_wait(attempts - 1, error);
                Publication {
                    // Others keep the token they can still use (unless an
                    // API rejected it here).
                    token: state.token.filter(|t| {
                        t.expires_at > now
                            && rejected != Some(fingerprint(t.access.expose_secret()))
                    }),
                    backoff: Some(Backoff {
                        until: now.checked_add(wait).unwrap_or(now),
                        attempts,
                        reason: error.to_string(),
                    }),
                }
            }
            // This process's own trouble (a missing input, its store): others
            // may do better, so nothing is published.
            Err(_) => Publication {
                token: None,
                backoff: None,
            },
        };
        if publication.token.is_some() || publication.backoff.is_some() {
            match self.stored(self.store.publish(&lease, &publication)).await {
                Ok(true) => {}
                Ok(false) => warn!(
                    "the token lease ran out before the result was published: other processes fetch their own"
                ),
                Err(e) => {
                    warn!(error = %e, "the result could not be published to the token store: other processes fetch their own once the lease ends")
                }
            }
        }
        self.release(&lease).await;
        result
    }

    /// Keeps `lease` (asked for at `asked`) while the fetch runs: renews it
    /// every third of its time to live. Ends (with the reason) only when the
    /// fetch must be abandoned: a quarter of the time to live before the
    /// lease's deadline, if no renewal has moved the deadline; at once, if
    /// the store says the lease is no longer ours.
    async fn hold(&self, index: usize, conn: &Connection, lease: &Lease, asked: Instant) -> Error {
        let ttl = self.coordination.lease_ttl;
        let margin = ttl / 4;
        let last_renewal = asked + self.coordination.max_hold.saturating_sub(ttl);
        let mut deadline = asked + ttl;
        let lost = |reason: &'static str| {
            warn!(reason, "token lease lost: abandoning the token request");
            Error::LeaseLost {
                provider: self.provider_ids[index].to_string(),
                connection: conn.id().to_owned(),
                reason,
            }
        };
        loop {
            let give_up = deadline - margin;
            let now = Instant::now();
            if now >= give_up {
                return lost(if now >= last_renewal {
                    "the token request outlasted the lease's maximum hold"
                } else {
                    "the token store did not renew the lease in time"
                });
            }
            let next = (now + ttl / 3).min(last_renewal);
            if now >= last_renewal || next >= give_up {
                tokio::time::sleep_until(give_up).await;
                continue;
            }
            tokio::time::sleep_until(next).await;
            let asked = Instant::now();
            // A renewal that has not come back by `give_up` is as good as
            // lost: the store may already count the lease as expired.
            let renewal = self.stored(self.store.renew_lease(lease, ttl));
            match tokio::time::timeout_at(give_up, renewal).await {
                Ok(Ok(Some(_))) => deadline = asked + ttl,
                Ok(Ok(None)) => return lost("another process holds the lease now"),
                Ok(Err(e)) => {
                    warn!(error = %e, "the token lease could not be renewed; trying again until it runs out");
                }
                Err(_) => {}
            }
        }
    }

    /// Gives `lease` back; a failure only delays the others until its
    /// deadline.
    /// Publishes a token obtained outside a fetch (the device grant) to a
    /// shared store, replacing a failure backoff that other processes would
    /// otherwise keep honouring (a `tokenauth token` that found no refresh
    /// token before the person logged in). Best effort: when the lease is
    /// held, or the store fails, the others read the new refresh token at
    /// their next fetch.
    pub(crate) async fn publish_granted_shared(
        &self,
        index: usize,
        conn: &Connection,
        fetched: &Fetched,
    ) {
        if !self.coordination.shared {
            return;
        }
        let key = StoreKey {
            provider: &self.provider_ids[index],
            connection: conn.id(),
        };
        let lease =
            self.store
                .try_lease(&key, &self.coordination.owner, self.coordination.lease_ttl);
        let lease = match self.stored(lease).await {
            Ok(LeaseOutcome::Acquired(lease)) => lease,
            Ok(LeaseOutcome::Held { .. }) => {
                debug!("another process holds the token lease: the granted token is not published");
                return;
            }
            Err(e) => {
                warn!(error = %e, "the granted token could not be published to the token store");
                return;
            }
        };
        let publication = Publication {
            token: Some(SharedToken {
                access: fetched.access.clone(),
                expires_at: fetched.expires_at,
                renew_at: fetched.renew_at,
                api_base: fetched.api_base.as_ref().map(|u| u.to_string()),
            }),
            backoff: None,
        };
        if let Err(e) = self.stored(self.store.publish(&lease, &publication)).await {
            warn!(error = %e, "the granted token could not be published to the token store");
        }
        self.release(&lease).await;
    }

    async fn release(&self, lease: &Lease) {
        if let Err(e) = self.stored(self.store.release(lease)).await {
            warn!(error = %e, "the token lease could not be released: other processes wait until it runs out");
        }
    }

    /// The published token, if this fetch can use it instead of fetching:
    /// valid for at least [`MIN_ADOPTED_LIFETIME`], not the one an API
    /// rejected here (fingerprint `rejected`), and for a renewal, not due
    /// for renewal itself.
    fn adoptable(
        &self,
        index: usize,
        state: &SharedState,
        renewal: bool,
        rejected: Option<u64>,
    ) -> Option<SharedToken> {
        let token = state.token.as_ref()?;
        if rejected.is_some_and(|r| r == fingerprint(token.access.expose_secret())) {
            return None;
        }
        // A token of a provider bound by its reply's API base is adopted
        // only with a base that still binds (the store is not trusted to
        // say where a credential may go).
        let provider = &self.providers.providers[index];
        if provider.response.api_base.is_some()
            && token
                .api_base
                .as_deref()
                .and_then(|b| url::Url::parse(b).ok())
                .and_then(|b| provider.bind_api_base(&b))
                .is_none()
        {
            return None;
        }
        let now = self.clock.now();
        let left = token.expires_at.duration_since(now).ok()?;
        if left < MIN_ADOPTED_LIFETIME {
            return None;
        }
        // A schedule that is no schedule (a value written before `renew_at`
        // was stored, which reads as the expiry): this process's own.
        let renew_at = match token.renew_at < token.expires_at {
            true => token.renew_at,
            false => {
                super::engine::renew_at(&self.providers.providers[index], now, token.expires_at)
            }
        };
        (now < renew_at || !renewal).then(|| SharedToken {
            renew_at,
            ..token.clone()
        })
    }

    fn adopt(&self, index: usize, token: SharedToken) -> Fetched {
        Counters::bump(&self.counters.adopted);
        let api_base = token
            .api_base
            .as_deref()
            .and_then(|b| url::Url::parse(b).ok())
            .and_then(|b| self.providers.providers[index].bind_api_base(&b));
        Fetched {
            access: token.access,
            obtained_by: None,
            expires_at: token.expires_at,
            renew_at: token.renew_at,
            api_base,
        }
    }

    /// [`Error::BackedOff`] while the state's shared backoff runs.
    fn backoff(&self, index: usize, conn: &Connection, state: &SharedState) -> Result<(), Error> {
        let Some(backoff) = &state.backoff else {
            return Ok(());
        };
        // A backoff never runs longer than the longest one the engine sets:
        // one that seems to (the wall clock was set back) is over.
        let longest = self.failure_backoff.1;
        match backoff.until.duration_since(self.clock.now()) {
            Ok(left) if !left.is_zero() && left <= longest => Err(Error::BackedOff {
                provider: self.provider_ids[index].to_string(),
                connection: conn.id().to_owned(),
                reason: backoff.bounded_reason().to_owned(),
                retry_in: whole_millis(left),
            }),
            _ => Ok(()),
        }
    }

    /// A store call bounded by the store timeout; notes that the store
    /// answers (again).
    async fn stored<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = within(self.coordination.store_timeout, call).await;
        if result.is_ok() && self.coordination.degraded.swap(false, Ordering::Relaxed) {
            info!("the token store answers again: tokens are shared through it again");
        }
        result
    }

    /// The store failed with `error`: fetch in this process alone where no
    /// rotating refresh token can be spent twice; else a typed error.
    async fn without_store(
        &self,
        index: usize,
        conn: &Connection,
        action: &'static str,
        error: StoreError,
    ) -> Result<Fetched, Error> {
        let provider = &self.providers.providers[index];
        let store_error = |error| Arc::new(error);
        if error.kind() != StoreErrorKind::Unavailable {
            // A store that answers wrongly (corrupt value, wrong key, bad
            // configuration) is not down: say so, do not work around it.
            return Err(Error::Store {
                provider: provider.id.clone(),
                connection: conn.id().to_owned(),
                action,
                source: store_error(error),
            });
        }
        let rotating = provider.refresh.as_ref().is_some_and(|r| r.rotate);
        // Without the store there is no stored refresh token: a provider
        // that cannot log in has nothing to fetch with.
        let cannot_log_in = provider.login.is_none();
        if (rotating && !self.coordination.local_fallback) || cannot_log_in {
            return Err(Error::StoreUnavailable {
                provider: provider.id.clone(),
                connection: conn.id().to_owned(),
                source: store_error(error),
            });
        }
        if !self.coordination.degraded.swap(true, Ordering::Relaxed) {
            warn!(error = %error, "the token store is unavailable: tokens are fetched by each process alone until it answers again (logged once per outage)");
        }
        Counters::bump(&self.counters.degraded_fetches);
        self.acquire(index, conn, &self.coordination.fallback).await
    }
}

/// Errors of the token endpoint, which every process would meet alike: they
/// start a shared backoff. A process's own trouble (a missing input, its
/// store, a lost lease) does not.
fn shares_backoff(error: &Error) -> bool {
    matches!(
        error,
        Error::Status { .. }
            | Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::ResponseTooLarge { .. }
            | Error::NotJson { .. }
            | Error::MissingField { .. }
            | Error::WrongType { .. }
            | Error::InvalidExpiry { .. }
            | Error::NoExpiry { .. }
            | Error::RefreshRejected { .. }
            | Error::NoRefreshToken { .. }
    )
}

/// A duration cut to whole milliseconds, for messages.
fn whole_millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
