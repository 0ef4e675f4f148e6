use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use tokio::sync::Notify;

use super::{
    Backoff, CasOutcome, Lease, LeaseOutcome, Publication, SharedState, StoreError, StoreKey,
    TokenStore, WaitOutcome, same_refresh_token,
};
use crate::clock::{Clock, SystemClock};

/// How often a waiter looks again without a notification: leases expire
/// without one.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Keeps token state in memory: it lives as long as the process and is
/// shared by the engines that hold the same `Arc<MemoryStore>`. The default
/// store.
///
/// Lease deadlines follow the store's [`Clock`] (the system clock unless
/// [`with_clock`](Self::with_clock) gives another), so tests can expire a
/// lease by advancing a [`ManualClock`](crate::clock::ManualClock). Waiters
/// are woken by publishes and releases at once, and look again every 50 ms
/// (real time) for leases that expired.
pub struct MemoryStore {
    entries: Mutex<HashMap<(String, String), Entry>>,
    /// Notified on every publish and release.
    changed: Notify,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Entry {
    refresh_token: Option<SecretString>,
    published: Publication,
    version: u64,
    /// The fencing number of the last lease taken.
    fence: u64,
    lease: Option<HeldLease>,
}

struct HeldLease {
    owner: String,
    fence: u64,
    deadline: SystemTime,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose lease deadlines follow `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            entries: Mutex::default(),
            changed: Notify::new(),
            clock,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<(String, String), Entry>> {
        // A panic while holding this lock cannot leave an entry half written:
        // every change is a single assignment.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on `key`'s entry (created empty if missing).
    fn with_entry<T>(&self, key: &StoreKey<'_>, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut map = self.map();
        f(map.entry(owned(key)).or_default())
    }

    /// The live lease `lease` is, if it is the entry's and not expired.
    fn holds(&self, entry: &Entry, lease: &Lease) -> bool {
        entry.lease.as_ref().is_some_and(|held| {
            held.owner == lease.owner()
                && held.fence == lease.fence()
                && lease_live(held.deadline, self.clock.now())
        })
    }

    /// What a waiter that saw `seen` is told now, if anything.
    fn wait_outcome(&self, key: &StoreKey<'_>, seen: u64) -> Option<WaitOutcome> {
        let map = self.map();
        let Some(entry) = map.get(&owned(key)) else {
            return Some(WaitOutcome::LeaseFree);
        };
        if entry.version > seen {
            return Some(WaitOutcome::Published(entry.state()));
        }
        let live = entry
            .lease
            .as_ref()
            .is_some_and(|held| lease_live(held.deadline, self.clock.now()));
        (!live).then_some(WaitOutcome::LeaseFree)
    }
}

impl Entry {
    fn state(&self) -> SharedState {
        SharedState {
            token: self.published.token.clone(),
            refresh_token: self.refresh_token.clone(),
            backoff: self.published.backoff.clone(),
            version: self.version,
        }
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.map().len())
            .finish()
    }
}

fn owned(key: &StoreKey<'_>) -> (String, String) {
    (key.provider.to_owned(), key.connection.to_owned())
}

/// `now + ttl`, with `ttl` cut to [`MAX_LEASE_TTL`](super::MAX_LEASE_TTL).
pub(super) fn deadline_after(now: SystemTime, ttl: Duration) -> SystemTime {
    now.checked_add(ttl.min(super::MAX_LEASE_TTL))
        .unwrap_or(now)
}

/// A lease with this deadline is live at `now`: not expired, and not further
/// ahead than any lease can be (one written while the wall clock was far
/// ahead would otherwise block the key until that date).
pub(super) fn lease_live(deadline: SystemTime, now: SystemTime) -> bool {
    deadline > now
        && deadline
            .duration_since(now)
            .is_ok_and(|left| left <= super::MAX_LEASE_TTL)
}

/// `backoff` with its reason cut to what stores keep.
pub(super) fn bounded(backoff: &Backoff) -> Backoff {
    Backoff {
        reason: backoff.bounded_reason().to_owned(),
        ..backoff.clone()
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryStore {
    async fn read(&self, key: &StoreKey<'_>) -> Result<SharedState, StoreError> {
        Ok(self
            .map()
            .get(&owned(key))
            .map(Entry::state)
            .unwrap_or_default())
    }

    async fn try_lease(
        &self,
        key: &StoreKey<'_>,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let now = self.clock.now();
        Ok(self.with_entry(key, |entry| match &entry.lease {
            Some(held) if lease_live(held.deadline, now) => LeaseOutcome::Held {
                until: held.deadline,
            },
            _ => {
                entry.fence += 1;
                let deadline = deadline_after(now, ttl);
                entry.lease = Some(HeldLease {
                    owner: owner.to_owned(),
                    fence: entry.fence,
                    deadline,
                });
                LeaseOutcome::Acquired(Lease::new(key, owner, entry.fence, deadline))
            }
        }))
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<Option<SystemTime>, StoreError> {
        let deadline = deadline_after(self.clock.now(), ttl);
        Ok(self.with_entry(&lease.key(), |entry| {
            if !self.holds(entry, lease) {
                return None;
            }
            entry.lease.as_mut()?.deadline = deadline;
            Some(deadline)
        }))
    }

    async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        let released = self.with_entry(&lease.key(), |entry| {
            let live = self.holds(entry, lease);
            if live {
                entry.lease = None;
            }
            live
        });
        if released {
            self.changed.notify_waiters();
        }
        Ok(released)
    }

    async fn publish(&self, lease: &Lease, publication: &Publication) -> Result<bool, StoreError> {
        let written = self.with_entry(&lease.key(), |entry| {
            if !self.holds(entry, lease) || entry.version >= lease.fence() {
                return false;
            }
            entry.published = Publication {
                token: publication.token.clone(),
                backoff: publication.backoff.as_ref().map(bounded),
            };
            entry.version = lease.fence();
            true
        });
        if written {
            self.changed.notify_waiters();
        }
        Ok(written)
    }

    async fn cas_refresh(
        &self,
        key: &StoreKey<'_>,
        used: Option<&SecretString>,
        new: Option<&SecretString>,
    ) -> Result<CasOutcome, StoreError> {
        Ok(self.with_entry(key, |entry| {
            if same_refresh_token(entry.refresh_token.as_ref(), used) {
                entry.refresh_token = new.cloned();
                CasOutcome::Written
            } else {
                CasOutcome::Conflict {
                    current: entry.refresh_token.clone(),
                }
            }
        }))
    }

    async fn wait(
        &self,
        key: &StoreKey<'_>,
        seen: u64,
        timeout: Duration,
    ) -> Result<WaitOutcome, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a publish in between is not missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(outcome) = self.wait_outcome(key, seen) {
                return Ok(outcome);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(WaitOutcome::TimedOut);
            }
            let _ = tokio::time::timeout((deadline - now).min(WAIT_POLL), notified).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::clock::ManualClock;

    const KEY: StoreKey<'static> = StoreKey {
        provider: "twoba",
        connection: "tenant-42",
    };
    const TTL: Duration = Duration::from_secs(10);

    fn acquired(outcome: LeaseOutcome) -> Lease {
        match outcome {
            LeaseOutcome::Acquired(lease) => lease,
            LeaseOutcome::Held { .. } => panic!("lease held"),
        }
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_holder_fenced_off() {
        let clock = Arc::new(ManualClock::new());
        let store = MemoryStore::with_clock(clock.clone());
        let first = acquired(store.try_lease(&KEY, "a", TTL).await.unwrap());
        assert!(matches!(
            store.try_lease(&KEY, "b", TTL).await.unwrap(),
            LeaseOutcome::Held { until } if until == first.deadline()
        ));
        clock.advance(TTL + Duration::from_millis(1));
        let second = acquired(store.try_lease(&KEY, "b", TTL).await.unwrap());
        assert!(second.fence() > first.fence());

        // The first holder can do nothing any more.
        let token = Publication::default();
        assert!(!store.publish(&first, &token).await.unwrap());
        assert_eq!(store.renew_lease(&first, TTL).await.unwrap(), None);
        assert!(!store.release(&first).await.unwrap());
        assert!(store.publish(&second, &token).await.unwrap());
        assert_eq!(store.read(&KEY).await.unwrap().version, second.fence());
        assert!(store.release(&second).await.unwrap());
    }

    #[tokio::test]
    async fn a_waiter_is_woken_by_a_publish_and_by_a_release() {
        let store = Arc::new(MemoryStore::new());
        let lease = acquired(store.try_lease(&KEY, "a", TTL).await.unwrap());
        let waiter = tokio::spawn({
            let store = store.clone();
            async move { store.wait(&KEY, 0, Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let published = Publication {
            token: Some(super::super::SharedToken {
                access: SecretString::from("at-1"),
                expires_at: SystemTime::now() + TTL,
                renew_at: SystemTime::now() + TTL / 2,
                api_base: None,
            }),
            backoff: None,
        };
        assert!(store.publish(&lease, &published).await.unwrap());
        match waiter.await.unwrap().unwrap() {
            WaitOutcome::Published(state) => {
                assert_eq!(state.token.unwrap().access.expose_secret(), "at-1")
            }
            other => panic!("{other:?}"),
        }
        // Seen that version: a release says the lease is free.
        let waiter = tokio::spawn({
            let store = store.clone();
            let seen = lease.fence();
            async move { store.wait(&KEY, seen, Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(store.release(&lease).await.unwrap());
        assert!(matches!(
            waiter.await.unwrap().unwrap(),
            WaitOutcome::LeaseFree
        ));
    }
}
