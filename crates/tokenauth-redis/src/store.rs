//! [`RedisStore`]: the store protocol on Redis.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use secrecy::{ExposeSecret, SecretString};
use tokenauth_core::store::{
    Backoff, CasOutcome, Lease, LeaseOutcome, MAX_LEASE_TTL, Publication, SharedState, SharedToken,
    StoreError, StoreErrorKind, StoreKey, TokenStore, WaitOutcome, from_unix_millis as from_ms,
    same_refresh_token, unix_millis as to_ms,
};

use crate::builder::Settings;
use crate::crypto::{Sealing, corrupt};
use crate::scripts;

/// A [`TokenStore`] on Redis (or Valkey), shared by processes on many
/// machines. Build it with [`RedisStore::builder`] or [`RedisStore::connect`].
///
/// # Keys
/// Per connection, with the key prefix `P`, the provider id and the
/// connection's [`StoreKey::digest`] (a hash: no tenant id in a key name):
///
/// | key | holds |
/// |---|---|
/// | `tokenauth:P:{provider:hash}:state` | hash: `v` version, `d` the sealed access token, expiry and backoff; expires a grace period after the token and the backoff |
/// | `tokenauth:P:{provider:hash}:rt` | hash: `g` generation, `d` the sealed refresh token; no expiry |
/// | `tokenauth:P:{provider:hash}:lease` | `owner#fence`, expiring at the lease deadline |
/// | `tokenauth:P:{provider:hash}:fence` | the fencing counter |
/// | channel `tokenauth:P:{provider:hash}:events` | a message per publish and release |
///
/// The `{...}` hash tag puts one connection's keys in one slot, as Redis
/// Cluster requires of a script's keys.
///
/// # Operations
/// | operation | Redis |
/// |---|---|
/// | `read` | `HMGET state v d` + `HGET rt d` (one `MULTI`) |
/// | `try_lease` | script: `PTTL lease`; if free `INCR fence` (kept above the state's version), `SET lease owner#fence NX PX ttl` |
/// | `renew_lease` | script: `GET lease` = `owner#fence` ? `PEXPIRE lease ttl` |
/// | `release` | script: `GET lease` = `owner#fence` ? `DEL lease` + `PUBLISH events` |
/// | `publish` | script: `GET lease` = `owner#fence` and `HGET state v` < fence ? `HSET state v fence d sealed` + `PEXPIRE state` + `PUBLISH events` |
/// | `cas_refresh` | `HMGET rt g d`, compare the plaintext, then script: `HGET rt g` unchanged ? `HSET rt d new` (or `HDEL rt d`) + `HINCRBY g`; retried if `g` moved |
/// | `wait` | `SUBSCRIBE events`, then `HGET state v` + `EXISTS lease` on every message and every poll interval |
///
/// Every value is sealed (see [`Keyring`](crate::Keyring)) with the key
/// name as associated data. A value that is not tokenauth's is an error of
/// kind [`Corrupt`](StoreErrorKind::Corrupt); one this store cannot decrypt
/// is [`Decrypt`](StoreErrorKind::Decrypt); a server that does not answer
/// within the timeout is [`Unavailable`](StoreErrorKind::Unavailable).
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) conn: Connection,
    /// For pub/sub connections (`None` on a cluster: waits poll).
    pub(crate) client: Option<redis::Client>,
    pub(crate) sealing: Sealing,
    pub(crate) settings: Settings,
    /// The server, without credentials, for messages.
    pub(crate) server: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisStore")
            .field("server", &inner.server)
            .field("key_prefix", &inner.settings.key_prefix)
            .field("sealing", &inner.sealing)
            .field("timeout", &inner.settings.timeout)
            .finish()
    }
}

/// A single server (reconnecting) or a cluster.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(redis::aio::ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// One connection's key names.
struct Names {
    state: String,
    refresh: String,
    lease: String,
    fence: String,
    events: String,
}

impl Names {
    fn new(prefix: &str, key: &StoreKey<'_>) -> Self {
        // A brace would end the hash tag early; the ids inside the sealed
        // values tell a collision apart.
        let provider: String = key
            .provider
            .chars()
            .map(|c| match c {
                '{' | '}' => '_',
                c if c.is_control() || c.is_whitespace() => '_',
                c => c,
            })
            .collect();
        let base = format!("tokenauth:{prefix}:{{{provider}:{}}}", key.digest());
        Names {
            state: format!("{base}:state"),
            refresh: format!("{base}:rt"),
            lease: format!("{base}:lease"),
            fence: format!("{base}:fence"),
            events: format!("{base}:events"),
        }
    }
}

/// The sealed content of the state key.
#[derive(serde::Serialize, serde::Deserialize)]
struct StateValue {
    provider: String,
    connection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renew_at_ms: Option<u64>,
    /// The API base the token is bound to (`response.api_base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff: Option<BackoffValue>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BackoffValue {
    until_ms: u64,
    attempts: u32,
    reason: String,
}

/// The sealed content of the refresh-token key.
#[derive(serde::Serialize, serde::Deserialize)]
struct RefreshValue {
    provider: String,
    connection: String,
    refresh_token: String,
}

/// A sealed value that names the key it belongs to.
trait ForKey {
    fn is_for(&self, key: &StoreKey<'_>) -> bool;
}

impl ForKey for StateValue {
    fn is_for(&self, key: &StoreKey<'_>) -> bool {
        self.provider == key.provider && self.connection == key.connection
    }
}

impl ForKey for RefreshValue {
    fn is_for(&self, key: &StoreKey<'_>) -> bool {
        self.provider == key.provider && self.connection == key.connection
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn lease_value(lease: &Lease) -> String {
    format!("{}#{}", lease.owner(), lease.fence())
}

impl RedisStore {
    fn conn(&self) -> Connection {
        self.inner.conn.clone()
    }

    fn names(&self, key: &StoreKey<'_>) -> Names {
        Names::new(&self.inner.settings.key_prefix, key)
    }

    fn timed_out(&self, doing: &str) -> StoreError {
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!(
                "Redis at {} did not answer within {:?} while {doing}: check that it runs and is reachable, or raise RedisStoreBuilder::timeout",
                self.inner.server, self.inner.settings.timeout
            ),
        )
    }

    /// A Redis error as a store error that says what could not be done.
    fn failed(&self, doing: &str, e: redis::RedisError) -> StoreError {
        let server = &self.inner.server;
        if e.is_timeout() {
            return self.timed_out(doing).with_source(e);
        }
        let (kind, message) = if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || in_failover(&e)
        {
            (
                StoreErrorKind::Unavailable,
                format!(
                    "Redis at {server} could not be reached while {doing}: check that it runs and is reachable (the store reconnects by itself)"
                ),
            )
        } else {
            (
                StoreErrorKind::Server,
                format!(
                    "Redis at {server} refused a command while {doing} ({:?}): check the server's version (Redis 6.2 or later, or Valkey) and the user's ACL (scripts, pub/sub)",
                    e.kind()
                ),
            )
        };
        StoreError::new(kind, message).with_source(e)
    }

    /// `fut`, failing as `Unavailable` after the store's timeout (the
    /// connection's own timeouts cover single commands; this covers the
    /// rest, such as a reconnect in progress).
    async fn bounded<T>(
        &self,
        doing: &str,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.inner.settings.timeout, fut).await {
            Ok(result) => result.map_err(|e| self.failed(doing, e)),
            Err(_) => Err(self.timed_out(doing)),
        }
    }

    /// The value sealed in `sealed` under the Redis key `name`; `None` when
    /// it belongs to another key (the ids inside tell a hash collision
    /// apart).
    fn open<T: serde::de::DeserializeOwned + ForKey>(
        &self,
        name: &str,
        key: &StoreKey<'_>,
        sealed: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let plain = self.inner.sealing.open(name, sealed)?;
        let value: T = serde_json::from_slice(&plain)
            .map_err(|_| corrupt(name, "its content is not what tokenauth stores there"))?;
        Ok(value.is_for(key).then_some(value))
    }

    /// The refresh token's generation and value.
    async fn read_refresh(
        &self,
        names: &Names,
        key: &StoreKey<'_>,
    ) -> Result<(u64, Option<SecretString>), StoreError> {
        let mut conn = self.conn();
        let (generation, sealed): (Option<u64>, Option<Vec<u8>>) = self
            .bounded(
                "reading the refresh token",
                redis::cmd("HMGET")
                    .arg(&names.refresh)
                    .arg("g")
                    .arg("d")
                    .query_async(&mut conn),
            )
            .await?;
        let token = match sealed {
            Some(sealed) => self
                .open::<RefreshValue>(&names.refresh, key, &sealed)?
                .map(|v| SecretString::from(v.refresh_token)),
            None => None,
        };
        Ok((generation.unwrap_or(0), token))
    }

    /// The published state's version, and whether a lease is live.
    async fn version_and_lease(&self, names: &Names) -> Result<(u64, bool), StoreError> {
        let mut conn = self.conn();
        let (version, leased): (Option<u64>, bool) = self
            .bounded(
                "waiting for another process's token",
                redis::pipe()
                    .cmd("HGET")
                    .arg(&names.state)
                    .arg("v")
                    .cmd("EXISTS")
                    .arg(&names.lease)
                    .query_async(&mut conn),
            )
            .await?;
        Ok((version.unwrap_or(0), leased))
    }

    /// Subscribes to `channel`; `None` (the wait polls) when pub/sub is not
    /// available.
    async fn subscribe(&self, channel: &str) -> Option<redis::aio::PubSub> {
        if !self.inner.settings.pubsub {
            return None;
        }
        let client = self.inner.client.as_ref()?;
        let subscribed = tokio::time::timeout(self.inner.settings.timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(pubsub)) => Some(pubsub),
            Ok(Err(e)) => {
                tracing::debug!(server = %self.inner.server, error = %e, "no pub/sub for waiting; polling instead");
                None
            }
            Err(_) => {
                tracing::debug!(server = %self.inner.server, "pub/sub did not answer in time; polling instead");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl TokenStore for RedisStore {
    async fn read(&self, key: &StoreKey<'_>) -> Result<SharedState, StoreError> {
        let names = self.names(key);
        let mut conn = self.conn();
        let ((version, sealed_state), (sealed_refresh,)): (
            (Option<u64>, Option<Vec<u8>>),
            (Option<Vec<u8>>,),
        ) = self
            .bounded(
                "reading the token state",
                redis::pipe()
                    .atomic()
                    .cmd("HMGET")
                    .arg(&names.state)
                    .arg("v")
                    .arg("d")
                    .cmd("HMGET")
                    .arg(&names.refresh)
                    .arg("d")
                    .query_async(&mut conn),
            )
            .await?;
        let refresh_token = match sealed_refresh {
            Some(sealed) => self
                .open::<RefreshValue>(&names.refresh, key, &sealed)?
                .map(|v| SecretString::from(v.refresh_token)),
            None => None,
        };
        let mut state = SharedState {
            refresh_token,
            ..SharedState::default()
        };
        let value = match sealed_state {
            Some(sealed) => match self.open::<StateValue>(&names.state, key, &sealed) {
                Ok(value) => value,
                // The state is a cache of the provider's reply: one that
                // cannot be read is fetched again.
                Err(e) if e.kind() == StoreErrorKind::Corrupt => {
                    tracing::warn!(provider = key.provider, error = %e, "ignoring an unreadable token state in Redis");
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        if let Some(value) = value {
            state.version = version.unwrap_or(0);
            state.token = match (value.access, value.expires_at_ms) {
                (Some(access), Some(ms)) => Some(SharedToken {
                    access: SecretString::from(access),
                    expires_at: from_ms(ms),
                    renew_at: from_ms(value.renew_at_ms.unwrap_or(ms)),
                    api_base: value.api_base,
                }),
                _ => None,
            };
            state.backoff = value.backoff.map(|b| Backoff {
                until: from_ms(b.until_ms),
                attempts: b.attempts,
                reason: b.reason,
            });
        }
        Ok(state)
    }

    async fn try_lease(
        &self,
        key: &StoreKey<'_>,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let names = self.names(key);
        let mut conn = self.conn();
        let mut script = scripts::TRY_LEASE.prepare_invoke();
        script
            .key(&names.lease)
            .key(&names.fence)
            .key(&names.state)
            .arg(owner)
            .arg(millis(ttl.min(MAX_LEASE_TTL)));
        let (taken, n): (i64, i64) = self
            .bounded("taking the lease", script.invoke_async(&mut conn))
            .await?;
        let now = SystemTime::now();
        if taken == 1 {
            let fence = u64::try_from(n).unwrap_or(0);
            return Ok(LeaseOutcome::Acquired(Lease::new(
                key,
                owner,
                fence,
                now + Duration::from_millis(millis(ttl.min(MAX_LEASE_TTL))),
            )));
        }
        // -1: a lease without expiry (not one this store set): say it is
        // held for a full ttl, so the caller waits and then looks again.
        let left = u64::try_from(n).map_or(ttl, Duration::from_millis);
        Ok(LeaseOutcome::Held { until: now + left })
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<Option<SystemTime>, StoreError> {
        let names = self.names(&lease.key());
        let mut conn = self.conn();
        let mut script = scripts::RENEW.prepare_invoke();
        script
            .key(&names.lease)
            .arg(lease_value(lease))
            .arg(millis(ttl.min(MAX_LEASE_TTL)));
        let renewed: i64 = self
            .bounded("renewing the lease", script.invoke_async(&mut conn))
            .await?;
        let ttl = Duration::from_millis(millis(ttl.min(MAX_LEASE_TTL)));
        Ok((renewed == 1).then(|| SystemTime::now() + ttl))
    }

    async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        let names = self.names(&lease.key());
        let mut conn = self.conn();
        let mut script = scripts::RELEASE.prepare_invoke();
        script
            .key(&names.lease)
            .arg(lease_value(lease))
            .arg(&names.events);
        let released: i64 = self
            .bounded("releasing the lease", script.invoke_async(&mut conn))
            .await?;
        Ok(released == 1)
    }

    async fn publish(&self, lease: &Lease, publication: &Publication) -> Result<bool, StoreError> {
        let key = lease.key();
        let names = self.names(&key);
        let value = StateValue {
            provider: key.provider.to_owned(),
            connection: key.connection.to_owned(),
            access: publication
                .token
                .as_ref()
                .map(|t| t.access.expose_secret().to_owned()),
            expires_at_ms: publication.token.as_ref().map(|t| to_ms(t.expires_at)),
            renew_at_ms: publication.token.as_ref().map(|t| to_ms(t.renew_at)),
            api_base: publication.token.as_ref().and_then(|t| t.api_base.clone()),
            backoff: publication.backoff.as_ref().map(|b| BackoffValue {
                until_ms: to_ms(b.until),
                attempts: b.attempts,
                reason: b.bounded_reason().to_owned(),
            }),
        };
        let plain = serde_json::to_vec(&value).map_err(|_| {
            StoreError::new(
                StoreErrorKind::Server,
                "the token state could not be encoded",
            )
        })?;
        let sealed = self.inner.sealing.seal(&names.state, &plain)?;
        // Kept a grace period past the later of expiry and backoff.
        let now = SystemTime::now();
        let until = [
            publication.token.as_ref().map(|t| t.expires_at),
            publication.backoff.as_ref().map(|b| b.until),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now);
        let ttl = until.duration_since(now).unwrap_or_default() + self.inner.settings.state_grace;
        let mut conn = self.conn();
        let mut script = scripts::PUBLISH.prepare_invoke();
        script
            .key(&names.lease)
            .key(&names.state)
            .arg(lease_value(lease))
            .arg(lease.fence())
            .arg(sealed)
            .arg(millis(ttl))
            .arg(&names.events);
        let written: i64 = self
            .bounded("publishing the token", script.invoke_async(&mut conn))
            .await?;
        Ok(written == 1)
    }

    async fn cas_refresh(
        &self,
        key: &StoreKey<'_>,
        used: Option<&SecretString>,
        new: Option<&SecretString>,
    ) -> Result<CasOutcome, StoreError> {
        let names = self.names(key);
        let sealed = match new {
            Some(token) => {
                let value = RefreshValue {
                    provider: key.provider.to_owned(),
                    connection: key.connection.to_owned(),
                    refresh_token: token.expose_secret().to_owned(),
                };
                let plain = serde_json::to_vec(&value).map_err(|_| {
                    StoreError::new(
                        StoreErrorKind::Server,
                        "the refresh token could not be encoded",
                    )
                })?;
                self.inner.sealing.seal(&names.refresh, &plain)?
            }
            None => String::new(),
        };
        // Each round that fails saw a write by someone else: a few rounds
        // end in a conflict or a write.
        for _ in 0..16 {
            let (generation, current) = self.read_refresh(&names, key).await?;
            if !same_refresh_token(current.as_ref(), used) {
                return Ok(CasOutcome::Conflict { current });
            }
            let mut conn = self.conn();
            let mut script = scripts::CAS_REFRESH.prepare_invoke();
            script.key(&names.refresh).arg(generation).arg(&sealed);
            let written: i64 = self
                .bounded("writing the refresh token", script.invoke_async(&mut conn))
                .await?;
            if written == 1 {
                return Ok(CasOutcome::Written);
            }
        }
        let (_, current) = self.read_refresh(&names, key).await?;
        Ok(CasOutcome::Conflict { current })
    }

    async fn wait(
        &self,
        key: &StoreKey<'_>,
        seen: u64,
        timeout: Duration,
    ) -> Result<WaitOutcome, StoreError> {
        let names = self.names(key);
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before looking, so a publish in between is not missed.
        let mut pubsub = self.subscribe(&names.events).await;
        let mut messages = pubsub.as_mut().map(|p| p.on_message());
        loop {
            let (version, leased) = self.version_and_lease(&names).await?;
            if version > seen {
                let state = self.read(key).await?;
                // The state may have expired in between: then the lease
                // decides.
                if state.version > seen {
                    return Ok(WaitOutcome::Published(state));
                }
            }
            if !leased {
                return Ok(WaitOutcome::LeaseFree);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(WaitOutcome::TimedOut);
            }
            let poll = left.min(self.inner.settings.poll_interval);
            match messages.as_mut() {
                Some(stream) => {
                    tokio::select! {
                        message = stream.next() => {
                            if message.is_none() {
                                // The subscription ended (connection lost): poll.
                                messages = None;
                            }
                        }
                        () = tokio::time::sleep(poll) => {}
                    }
                }
                None => tokio::time::sleep(poll).await,
            }
        }
    }
}

/// The server is there but cannot serve writes for now: loading its data,
/// a replica after a failover, its primary down, a cluster resharding. For
/// the engine that is the store being unavailable, not a misconfiguration.
fn in_failover(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::MasterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
        )
    )
}
