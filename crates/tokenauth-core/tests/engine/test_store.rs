//! A `MemoryStore` with knobs for the store's failure modes and races: an
//! outage, a hang, a lease taken over, failed renewals, and another worker's
//! rotation landing at the worst moment.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use tokenauth_core::store::{
    CasOutcome, Lease, LeaseOutcome, MemoryStore, Publication, SharedState, StoreError,
    StoreErrorKind, StoreKey, TokenStore, WaitOutcome,
};

#[derive(Debug, Default)]
pub(crate) struct TestStore {
    pub(crate) inner: MemoryStore,
    /// Every call fails as unavailable.
    pub(crate) down: AtomicBool,
    /// Every call hangs (until the engine's store timeout).
    pub(crate) hang: AtomicBool,
    /// `renew_lease` answers "not your lease any more".
    pub(crate) lease_taken_over: AtomicBool,
    /// `renew_lease` fails as unavailable.
    pub(crate) renewals_fail: AtomicBool,
    /// `renew_lease` takes 1.5 s (and then succeeds).
    pub(crate) slow_renewals: AtomicBool,
    /// `cas_refresh` fails as unavailable.
    pub(crate) cas_down: AtomicBool,
    /// Reads return this refresh token until the next compare-and-set, as
    /// if another worker had rotated it in between.
    pub(crate) stale: Mutex<Option<SecretString>>,
    /// Written to the store right before the next compare-and-set: another
    /// worker's rotation landing at the worst moment.
    pub(crate) land_before_cas: Mutex<Option<SecretString>>,
    /// Calls of `renew_lease`.
    pub(crate) renewals: AtomicU32,
    /// Calls of any method.
    pub(crate) calls: AtomicU32,
}

impl TestStore {
    async fn check(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.hang.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        match self.down.load(Ordering::Relaxed) {
            true => Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the test store is down",
            )),
            false => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl TokenStore for TestStore {
    async fn read(&self, key: &StoreKey<'_>) -> Result<SharedState, StoreError> {
        self.check().await?;
        let mut state = self.inner.read(key).await?;
        if let Some(stale) = self.stale.lock().unwrap().clone() {
            state.refresh_token = Some(stale);
        }
        Ok(state)
    }
    async fn try_lease(
        &self,
        key: &StoreKey<'_>,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        self.check().await?;
        self.inner.try_lease(key, owner, ttl).await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<Option<SystemTime>, StoreError> {
        self.check().await?;
        self.renewals.fetch_add(1, Ordering::Relaxed);
        if self.lease_taken_over.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if self.slow_renewals.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        if self.renewals_fail.load(Ordering::Relaxed) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the test store dropped the renewal",
            ));
        }
        self.inner.renew_lease(lease, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.check().await?;
        self.inner.release(lease).await
    }
    async fn publish(&self, lease: &Lease, publication: &Publication) -> Result<bool, StoreError> {
        self.check().await?;
        self.inner.publish(lease, publication).await
    }
    async fn cas_refresh(
        &self,
        key: &StoreKey<'_>,
        used: Option<&SecretString>,
        new: Option<&SecretString>,
    ) -> Result<CasOutcome, StoreError> {
        self.check().await?;
        if self.cas_down.load(Ordering::Relaxed) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the test store dropped the compare-and-set",
            ));
        }
        self.stale.lock().unwrap().take();
        let landing = self.land_before_cas.lock().unwrap().take();
        if let Some(winner) = landing {
            let current = self.inner.read(key).await?.refresh_token;
            let _ = self
                .inner
                .cas_refresh(key, current.as_ref(), Some(&winner))
                .await?;
        }
        self.inner.cas_refresh(key, used, new).await
    }
    async fn wait(
        &self,
        key: &StoreKey<'_>,
        seen: u64,
        timeout: Duration,
    ) -> Result<WaitOutcome, StoreError> {
        self.check().await?;
        self.inner.wait(key, seen, timeout).await
    }
}
