//! Token stores: the token state that processes share, and the protocol
//! that lets several processes fetch a token once for all of them.
//!
//! # Contents
//! - [The protocol](#the-protocol): what a [`TokenStore`] does.
//! - [The stores](#the-stores): [`MemoryStore`], [`FileStore`], and Redis
//!   (the `tokenauth-redis` crate).
//! - [Example](#example).
//!
//! # The protocol
//! A store keeps, per [`StoreKey`] (provider id + connection id):
//!
//! - the **refresh token**, changed only by [`cas_refresh`]
//!   (compare-and-set: a rotation that lost a race never overwrites or
//!   deletes the winner's token);
//! - the **published state**: the last access token and its expiry, and a
//!   failure backoff, written only by the holder of the key's lease with
//!   [`publish`], stamped with the lease's fencing number ([`SharedState::version`]);
//! - the **lease**: cross-process single-flight. One owner at a time holds
//!   it ([`try_lease`]) until its deadline, renews it while its token request
//!   runs ([`renew_lease`]) and gives it back ([`release`]). Every lease
//!   taken gets a larger fencing number than the one before, so a holder
//!   that lost its lease (it was paused past the deadline and someone else
//!   took over) can neither publish, renew nor release any more.
//!
//! A process that finds the lease held [`wait`]s for the holder's result,
//! bounded by the lease's deadline, instead of fetching a second token.
//!
//! | operation | purpose |
//! |---|---|
//! | [`read`] | the shared state: token + expiry, refresh token, backoff, version |
//! | [`try_lease`] | take the key's lease, with a fencing number, or learn until when it is held |
//! | [`renew_lease`] | extend the lease while the fetch runs (only its owner can) |
//! | [`release`] | give the lease back (only its owner can) |
//! | [`publish`] | the lease holder writes its result (token or backoff) |
//! | [`cas_refresh`] | rotation: write the new refresh token only if the used one is still stored |
//! | [`wait`] | another process's result, or the lease becoming free, bounded |
//!
//! Rotated refresh tokens are written with [`cas_refresh`] **before** the
//! access token that came with them is published or handed out, so a crash
//! never loses the only valid refresh token of a rotating provider (2BA).
//!
//! Errors are [`StoreError`]s: each says what failed and how to fix it, and
//! none holds a secret.
//!
//! # The stores
//! - [`MemoryStore`] (the default): per process.
//! - [`FileStore`]: one file per key in a directory, shared by the processes
//!   of one machine (an advisory lock per key file), written atomically and
//!   durably, `0600` on Unix, file names derived from a hash so they contain
//!   no secret; only regular files are read.
//! - `RedisStore` in the `tokenauth-redis` crate: shared by processes on
//!   many machines, values encrypted at rest.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use secrecy::{ExposeSecret, SecretString};
//! use tokenauth_core::store::{CasOutcome, LeaseOutcome, MemoryStore, StoreKey, TokenStore};
//!
//! let store = MemoryStore::new();
//! let key = StoreKey { provider: "twoba", connection: "tenant-42" };
//!
//! // Store a first refresh token (nothing was stored: `used` is None).
//! let rt1 = SecretString::from("rt-1");
//! assert!(matches!(store.cas_refresh(&key, None, Some(&rt1)).await, Ok(CasOutcome::Written)));
//!
//! // One process takes the lease; a second one is told until when it is held.
//! let LeaseOutcome::Acquired(lease) = store.try_lease(&key, "worker-a", Duration::from_secs(10)).await.unwrap() else {
//!     unreachable!()
//! };
//! assert!(matches!(
//!     store.try_lease(&key, "worker-b", Duration::from_secs(10)).await.unwrap(),
//!     LeaseOutcome::Held { .. }
//! ));
//!
//! // The holder rotates the refresh token it used, then releases the lease.
//! let rt2 = SecretString::from("rt-2");
//! assert!(matches!(store.cas_refresh(&key, Some(&rt1), Some(&rt2)).await, Ok(CasOutcome::Written)));
//! assert!(store.release(&lease).await.unwrap());
//!
//! // A loser of the rotation race is told what is stored now, and writes nothing.
//! let rt3 = SecretString::from("rt-3");
//! match store.cas_refresh(&key, Some(&rt1), Some(&rt3)).await.unwrap() {
//!     CasOutcome::Conflict { current } => assert_eq!(current.unwrap().expose_secret(), "rt-2"),
//!     CasOutcome::Written => unreachable!(),
//! }
//! let state = store.read(&key).await.unwrap();
//! assert_eq!(state.refresh_token.unwrap().expose_secret(), "rt-2");
//! # }
//! ```
//!
//! [`read`]: TokenStore::read
//! [`try_lease`]: TokenStore::try_lease
//! [`renew_lease`]: TokenStore::renew_lease
//! [`release`]: TokenStore::release
//! [`publish`]: TokenStore::publish
//! [`cas_refresh`]: TokenStore::cas_refresh
//! [`wait`]: TokenStore::wait

mod error;
mod file;
mod memory;
mod state;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};

pub use error::{StoreError, StoreErrorKind};
pub use file::FileStore;
pub use memory::MemoryStore;
pub use state::{
    Backoff, CasOutcome, Lease, LeaseOutcome, MAX_BACKOFF_REASON, Publication, SharedState,
    SharedToken, WaitOutcome,
};

/// The longest a lease lasts: longer `ttl`s are cut to it, and a stored
/// lease whose deadline lies further ahead (written while a wall clock was
/// wrong) counts as expired.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(3600);

/// Which token state: one per (provider, connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreKey<'a> {
    /// The provider id.
    pub provider: &'a str,
    /// The connection id.
    pub connection: &'a str,
}

impl StoreKey<'_> {
    /// A 128-bit FNV-1a hash of the provider and connection ids, as 32 lower
    /// case hex digits: what stores put in file and key names instead of the
    /// ids (a connection id may name a tenant). Stable across versions and
    /// platforms: a store's existing files or keys keep their names.
    ///
    /// Not a cryptographic hash: stores keep the ids beside the value and
    /// treat a value whose ids differ (a collision) as absent.
    pub fn digest(&self) -> String {
        const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
        const PRIME: u128 = 0x0000000001000000000000000000013B;
        let bytes = self
            .provider
            .as_bytes()
            .iter()
            .chain(&[0u8])
            .chain(self.connection.as_bytes());
        let hash = bytes.fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME));
        format!("{hash:032x}")
    }
}

/// Milliseconds since the Unix epoch, as stores write times (0 for a time
/// before the epoch). For [`TokenStore`] implementations.
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `millis` after the Unix epoch, as stores read times back. One
/// that no [`SystemTime`] holds (a corrupt value) is the epoch itself, long
/// past, so a broken deadline or expiry never holds anything up. For
/// [`TokenStore`] implementations.
pub fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(UNIX_EPOCH)
}

/// True when both are absent or both hold the same token: the comparison
/// of [`TokenStore::cas_refresh`]. For [`TokenStore`] implementations.
pub fn same_refresh_token(a: Option<&SecretString>, b: Option<&SecretString>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        _ => false,
    }
}

/// `call`'s result, or an [`Unavailable`](StoreErrorKind::Unavailable) error
/// once `timeout` has passed: how the engine bounds every store call, so
/// that a slow store cannot hold a token fetch (or a renewal) up for longer.
pub(crate) async fn within<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Unavailable,
            format!(
                "the token store did not answer within {} (the engine's store timeout): it is down or overloaded; TokenAuthBuilder::store_timeout sets the limit",
                humantime::format_duration(timeout)
            ),
        )),
    }
}

/// Shares token state per (provider, connection), within a process or
/// across processes: the protocol described in the [module docs](self).
///
/// Every method may be called concurrently from many tasks and processes;
/// each says under "Concurrent calls" what it guarantees then. No method
/// panics on what it finds in the backing storage: a value it cannot read is
/// a [`StoreError`] (kind [`Corrupt`](StoreErrorKind::Corrupt) or
/// [`Decrypt`](StoreErrorKind::Decrypt)) or, where it says so, treated as
/// absent and logged.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The shared state of `key`: the published token and backoff, the
    /// refresh token, and the version. [`SharedState::default()`] when
    /// nothing is stored.
    ///
    /// # Concurrent calls
    /// A read sees each write whole or not at all (never a token from one
    /// write with the expiry of another). The refresh token and the
    /// published state are read together, but they are written separately:
    /// a reader may see a new refresh token beside the previous access token.
    async fn read(&self, key: &StoreKey<'_>) -> Result<SharedState, StoreError>;

    /// Takes `key`'s lease for `owner` until `ttl` (at most
    /// [`MAX_LEASE_TTL`]) from now, unless someone holds it (whoever: the
    /// same `owner` too).
    ///
    /// `owner` names the taker in logs and in the stored lease; use one that
    /// is unique per process (a host name, the process id and a random
    /// number). What makes a lease unique is its fencing number
    /// ([`Lease::fence`]): every lease taken on a key gets a larger one than
    /// any before it.
    ///
    /// # Concurrent calls
    /// Of any number of concurrent calls for one key, in any processes
    /// sharing the storage, at most one gets [`LeaseOutcome::Acquired`]; the
    /// others get [`LeaseOutcome::Held`] with the holder's deadline. A lease
    /// whose deadline has passed is free: the next caller takes it (and the
    /// old holder's calls with it fail from then on).
    async fn try_lease(
        &self,
        key: &StoreKey<'_>,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError>;

    /// Extends `lease` to `ttl` from now, if it is still the key's lease and
    /// has not expired. Returns the new deadline, or `None` when the lease
    /// was lost: stop the work that needed it (do not publish).
    ///
    /// # Concurrent calls
    /// A compare-and-extend on the owner and fencing number: a stale holder
    /// never extends another owner's lease.
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<Option<std::time::SystemTime>, StoreError>;

    /// Gives `lease` back, if it is still the key's live lease. Returns
    /// false when it was not (it had expired, and may have been taken by
    /// someone else): nothing is changed then. Processes waiting on the key
    /// wake up.
    ///
    /// # Concurrent calls
    /// A compare-and-delete on the owner and fencing number: a stale holder
    /// never releases another owner's lease.
    async fn release(&self, lease: &Lease) -> Result<bool, StoreError>;

    /// Writes `publication` (a fetched token, or a failure backoff) as the
    /// key's state, stamped with the lease's fencing number as
    /// [`SharedState::version`], and wakes the processes that [`wait`] on
    /// the key. Returns false, writing nothing, when `lease` is no longer
    /// the key's live lease or a state with the same or a higher version is
    /// stored already.
    ///
    /// The refresh token is not part of a publication: write it first with
    /// [`cas_refresh`].
    ///
    /// Stores may keep the state only a little past the token's expiry and
    /// the backoff's end (Redis: a key TTL).
    ///
    /// # Concurrent calls
    /// Only the live lease's holder writes; its check and its write are one
    /// atomic step, so a holder that lost its lease a moment ago cannot
    /// overwrite its successor's result.
    ///
    /// [`wait`]: TokenStore::wait
    /// [`cas_refresh`]: TokenStore::cas_refresh
    async fn publish(&self, lease: &Lease, publication: &Publication) -> Result<bool, StoreError>;

    /// Replaces the stored refresh token with `new` (or removes it, when
    /// `new` is `None`), but only if the stored one is still `used` (`None`:
    /// only if none is stored). Otherwise changes nothing and returns what
    /// is stored, so that the caller uses that instead.
    ///
    /// The lease is not needed, and not checked: the comparison alone keeps
    /// a rotated refresh token from being overwritten or deleted by a
    /// process that never saw it.
    ///
    /// # Concurrent calls
    /// Compare and write are one atomic step. Of concurrent calls with the
    /// same `used`, exactly one gets [`CasOutcome::Written`]; the others get
    /// [`CasOutcome::Conflict`] with the winner's token.
    async fn cas_refresh(
        &self,
        key: &StoreKey<'_>,
        used: Option<&SecretString>,
        new: Option<&SecretString>,
    ) -> Result<CasOutcome, StoreError>;

    /// Waits at most `timeout` for another process's result on `key`.
    ///
    /// Returns [`WaitOutcome::Published`] as soon as a state with a version
    /// above `seen` is stored (give the version of the state you read before
    /// you found the lease held), [`WaitOutcome::LeaseFree`] when the key has
    /// no live lease and nothing newer (the holder released or died without
    /// publishing: try the lease yourself), and [`WaitOutcome::TimedOut`]
    /// otherwise. Bound `timeout` by the holder's deadline
    /// ([`LeaseOutcome::Held::until`]).
    ///
    /// Stores wake waiters by notification where they can (in process, Redis
    /// pub/sub) and poll otherwise, and as a fallback.
    ///
    /// # Concurrent calls
    /// Any number of waiters per key; a publish wakes them all.
    async fn wait(
        &self,
        key: &StoreKey<'_>,
        seen: u64,
        timeout: Duration,
    ) -> Result<WaitOutcome, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_stable_and_hide_the_ids() {
        let key = StoreKey {
            provider: "twoba",
            connection: "tenant-42",
        };
        // Stable: FileStore's existing files (and Redis keys) are named
        // with it. FNV-1a 128 of "twoba\0tenant-42".
        assert_eq!(key.digest(), "b2d37453fd678f548f19967e2606e9f1");
        assert!(!key.digest().contains("tenant"));
        let shifted = StoreKey {
            provider: "twob",
            connection: "atenant-42",
        };
        assert_ne!(key.digest(), shifted.digest());
    }

    #[test]
    fn debug_output_holds_no_token() {
        let state = SharedState {
            token: Some(SharedToken {
                access: SecretString::from("at-secret-1"),
                expires_at: SystemTime::now(),
                renew_at: SystemTime::now(),
                api_base: None,
            }),
            refresh_token: Some(SecretString::from("rt-secret-2")),
            backoff: None,
            version: 3,
        };
        let debug = format!(
            "{state:?} {:?}",
            CasOutcome::Conflict {
                current: state.refresh_token.clone()
            }
        );
        assert!(!debug.contains("secret"), "{debug}");
        assert!(
            debug.contains("SharedToken { access: \"[redacted]\""),
            "{debug}"
        );
    }
}
