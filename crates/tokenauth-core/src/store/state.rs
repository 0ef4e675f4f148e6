//! The values of the store protocol: what is read, published, leased.

use std::fmt;
use std::time::SystemTime;

use secrecy::SecretString;

use super::StoreKey;

/// What a store holds for one key, as [`TokenStore::read`](super::TokenStore::read)
/// returns it. `Default` is "nothing stored".
#[derive(Clone, Debug, Default)]
pub struct SharedState {
    /// The last published access token, if one was and the store still has it.
    pub token: Option<SharedToken>,
    /// The refresh token.
    pub refresh_token: Option<SecretString>,
    /// The last published failure backoff: no token request before its end.
    pub backoff: Option<Backoff>,
    /// The fencing number of the lease whose holder published `token` and
    /// `backoff`; 0 when nothing was published. Grows with every publish.
    pub version: u64,
}

/// An access token and when it expires.
#[derive(Clone)]
pub struct SharedToken {
    /// The access token.
    pub access: SecretString,
    /// When it expires (wall clock).
    pub expires_at: SystemTime,
    /// When its renewal window starts (wall clock), as the process that
    /// fetched it decided: every process renews at the same moment, so one
    /// takes the lease and renews for all.
    pub renew_at: SystemTime,
    /// The API base the token is bound to (`response.api_base`), as the
    /// reply gave it; checked against the provider's prefixes again by
    /// every process that adopts the token.
    pub api_base: Option<String>,
}

impl fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedToken")
            .field("access", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("renew_at", &self.renew_at)
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// The longest [`Backoff::reason`] a store keeps, in bytes; longer reasons
/// are cut (at a character boundary).
pub const MAX_BACKOFF_REASON: usize = 256;

/// A failed token request, shared so that other processes do not repeat it
/// before `until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// No token request for the key before this time (wall clock).
    pub until: SystemTime,
    /// Failed attempts in a row so far (for the next backoff's length).
    pub attempts: u32,
    /// What failed, short and free of secrets (the engine's error message,
    /// which never holds one). At most [`MAX_BACKOFF_REASON`] bytes are kept.
    pub reason: String,
}

impl Backoff {
    /// `reason` cut to [`MAX_BACKOFF_REASON`] bytes: what stores keep.
    pub fn bounded_reason(&self) -> &str {
        let mut end = self.reason.len().min(MAX_BACKOFF_REASON);
        while !self.reason.is_char_boundary(end) {
            end -= 1;
        }
        &self.reason[..end]
    }
}

/// What a lease holder publishes: the token it fetched, or the backoff after
/// its fetch failed (or both: a refresh failed while the old token is still
/// valid).
#[derive(Clone, Debug, Default)]
pub struct Publication {
    /// The fetched access token.
    pub token: Option<SharedToken>,
    /// The failure backoff.
    pub backoff: Option<Backoff>,
}

/// A key's lease, held: the right to fetch and publish for the key until
/// [`deadline`](Self::deadline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    provider: String,
    connection: String,
    owner: String,
    fence: u64,
    deadline: SystemTime,
}

impl Lease {
    /// A lease as a store hands it out. For [`TokenStore`](super::TokenStore)
    /// implementations; everyone else gets leases from
    /// [`try_lease`](super::TokenStore::try_lease).
    pub fn new(key: &StoreKey<'_>, owner: &str, fence: u64, deadline: SystemTime) -> Self {
        Lease {
            provider: key.provider.to_owned(),
            connection: key.connection.to_owned(),
            owner: owner.to_owned(),
            fence,
            deadline,
        }
    }

    /// The key the lease is for.
    pub fn key(&self) -> StoreKey<'_> {
        StoreKey {
            provider: &self.provider,
            connection: &self.connection,
        }
    }

    /// Who took it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Its fencing number: larger than that of every lease taken on the key
    /// before it.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// When it expires unless renewed (as the store saw the time when it
    /// granted or last renewed it). A copy does not follow renewals: use the
    /// deadline [`renew_lease`](super::TokenStore::renew_lease) returns.
    pub fn deadline(&self) -> SystemTime {
        self.deadline
    }
}

/// What [`try_lease`](super::TokenStore::try_lease) found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum LeaseOutcome {
    /// The lease is the caller's.
    Acquired(Lease),
    /// Someone holds it.
    Held {
        /// Until when, at the latest, unless its holder renews it.
        until: SystemTime,
    },
}

/// What [`cas_refresh`](super::TokenStore::cas_refresh) did.
#[derive(Clone, Debug)]
#[must_use]
pub enum CasOutcome {
    /// The stored refresh token was the used one and is now the new one (or
    /// gone, when no new one was given).
    Written,
    /// The stored refresh token was not the used one: nothing was written.
    Conflict {
        /// What is stored: use it (another process rotated the token).
        current: Option<SecretString>,
    },
}

/// What [`wait`](super::TokenStore::wait) saw.
#[derive(Clone, Debug)]
#[must_use]
pub enum WaitOutcome {
    /// A state newer than the caller's was published.
    Published(SharedState),
    /// No live lease, nothing newer published: the holder released its lease
    /// or died. Take the lease yourself.
    LeaseFree,
    /// The timeout passed while the lease was held.
    TimedOut,
}
