//! [`RedisStoreBuilder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokenauth_core::store::{StoreError, StoreErrorKind};

use crate::crypto::{KEY_ENV, Keyring, Sealing};
use crate::store::{Connection, Inner, RedisStore};

/// What the builder settles, kept by the store.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) key_prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) state_grace: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) pubsub: bool,
    /// Connect on first use, not in `build`.
    pub(crate) lazy: bool,
}

/// Builds a [`RedisStore`]: [`RedisStore::builder`].
///
/// ```no_run
/// # async fn run() -> Result<(), tokenauth_core::store::StoreError> {
/// use std::time::Duration;
/// use tokenauth_redis::{EncryptionKey, Keyring, RedisStore};
///
/// let keyring = Keyring::new(EncryptionKey::new("k2", &[7; 32])?)
///     .with_old_key(EncryptionKey::new("k1", &[9; 32])?);
/// let store = RedisStore::builder("rediss://:password@redis.internal:6380/0")
///     .key_prefix("prod")
///     .encryption(keyring)
///     .timeout(Duration::from_secs(1))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
pub struct RedisStoreBuilder {
    url: String,
    #[cfg(feature = "cluster")]
    cluster_nodes: Option<Vec<String>>,
    keyring: Option<Keyring>,
    plaintext: bool,
    key_env: String,
    settings: Settings,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("server", &redacted(&self.url))
            .field("keyring", &self.keyring)
            .field("plaintext", &self.plaintext)
            .field("key_env", &self.key_env)
            .field("settings", &self.settings)
            .finish()
    }
}

impl RedisStore {
    /// A builder for a store on the server at `url`:
    /// `redis://[[user]:password@]host[:port][/db]`, `rediss://` for TLS
    /// (feature `tls-rustls`), or `redis+unix:///path/to/socket`. AUTH (with
    /// a user for ACLs) is taken from the URL, as redis-rs does; no message
    /// or `Debug` output of this crate shows the password.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            #[cfg(feature = "cluster")]
            cluster_nodes: None,
            keyring: None,
            plaintext: false,
            key_env: KEY_ENV.to_owned(),
            settings: Settings {
                key_prefix: "default".to_owned(),
                timeout: Duration::from_secs(2),
                state_grace: Duration::from_secs(60),
                poll_interval: Duration::from_millis(100),
                pubsub: true,
                lazy: false,
            },
        }
    }

    /// A store on the server at `url` with every default: the keyring from
    /// the `TOKENAUTH_STORE_KEY` environment variable (see [`Keyring::parse`]
    /// for its format), which must be set. Same as
    /// `RedisStore::builder(url).build()`.
    pub async fn connect(url: impl Into<String>) -> Result<RedisStore, StoreError> {
        Self::builder(url).build().await
    }
}

impl RedisStoreBuilder {
    /// The part of every key name that tells deployments sharing one Redis
    /// apart: `tokenauth:<prefix>:...`. 1 to 64 characters of
    /// `A-Z a-z 0-9 _ - .`. Defaults to `default`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.key_prefix = prefix.into();
        self
    }

    /// The keys that values are encrypted with. Defaults to the keyring in
    /// the environment variable `TOKENAUTH_STORE_KEY` (see
    /// [`key_env`](Self::key_env)); without either, [`build`](Self::build)
    /// fails unless [`plaintext`](Self::plaintext) was asked for.
    pub fn encryption(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The environment variable the keyring is read from when
    /// [`encryption`](Self::encryption) gives none. Defaults to
    /// `TOKENAUTH_STORE_KEY`.
    pub fn key_env(mut self, var: impl Into<String>) -> Self {
        self.key_env = var.into();
        self
    }

    /// Stores tokens in plaintext: anyone who can read the Redis server (or
    /// its backups) can read them. For tests and for servers that hold
    /// nothing else, on a network nobody else is on. Defaults to off.
    pub fn plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// How long one store operation waits for the server (to connect, and
    /// for each reply) before it fails with
    /// [`StoreErrorKind::Unavailable`]. Defaults to 2 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// How long a published token state is kept past the token's expiry
    /// (and the backoff's end): the Redis TTL of the state key is their
    /// distance from now plus this. Defaults to 60 seconds.
    pub fn state_grace(mut self, grace: Duration) -> Self {
        self.settings.state_grace = grace;
        self
    }

    /// How often a [`wait`](tokenauth_core::store::TokenStore::wait) looks
    /// at the server when no pub/sub notification comes (a lost message, a
    /// holder that died, a cluster). Defaults to 100 ms.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.settings.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Whether a [`wait`](tokenauth_core::store::TokenStore::wait) subscribes
    /// to the key's channel to wake up at once on a publish or release. Off,
    /// it only polls (every [`poll_interval`](Self::poll_interval)): for
    /// servers whose ACL forbids `SUBSCRIBE`. Defaults to on.
    pub fn pubsub(mut self, on: bool) -> Self {
        self.settings.pubsub = on;
        self
    }

    /// Connects on first use instead of in [`build`](Self::build), so a
    /// process can start while Redis is down: `build` then checks only the
    /// settings (key, prefix, URL), each store call fails with
    /// [`StoreErrorKind::Unavailable`] until the server answers (the engine
    /// serves cached tokens meanwhile and falls back as
    /// `TokenAuthBuilder::local_fallback` says), and the connection is made
    /// as soon as it does. A wrong password then shows up on the first call,
    /// not at start-up. Single server only (a cluster connects in `build`).
    /// Defaults to off.
    pub fn lazy(mut self, on: bool) -> Self {
        self.settings.lazy = on;
        self
    }

    /// Connects to a Redis Cluster through these seed nodes (URLs as in
    /// [`RedisStore::builder`]) instead of the single server. Waiting polls
    /// there (no pub/sub). Defaults to the single server.
    #[cfg(feature = "cluster")]
    pub fn cluster_nodes(mut self, nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.cluster_nodes = Some(nodes.into_iter().map(Into::into).collect());
        self
    }

    /// Checks the settings, connects and PINGs the server.
    ///
    /// Fails with [`StoreErrorKind::Config`] when there is no encryption key
    /// (and [`plaintext`](Self::plaintext) was not asked for), the key
    /// prefix is not valid or the URL cannot be parsed, and with
    /// [`StoreErrorKind::Unavailable`] when the server does not answer in
    /// time.
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        let prefix = &self.settings.key_prefix;
        let valid_prefix = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !valid_prefix {
            return Err(config(format!(
                "the key prefix `{}` is not 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-` and `.`: choose another",
                prefix.escape_debug()
            )));
        }
        let sealing = match (self.keyring, self.plaintext) {
            (Some(keyring), _) => Sealing::Encrypted(keyring),
            (None, true) => Sealing::Plaintext,
            (None, false) => match Keyring::from_env(&self.key_env)? {
                Some(keyring) => Sealing::Encrypted(keyring),
                None => {
                    return Err(config(format!(
                        "no encryption key for the Redis store: set {} to `k1:` followed by 32 random bytes in base64 (for example `export {}=k1:$(openssl rand -base64 32)`), or pass RedisStoreBuilder::encryption a Keyring; only if the tokens may be stored in clear, call RedisStoreBuilder::plaintext",
                        self.key_env, self.key_env
                    )));
                }
            },
        };
        let server = redacted(&self.url);
        let settings = self.settings;
        let unreachable = |e: redis::RedisError| {
            StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "Redis at {server} could not be reached within {:?}: check the URL, that the server runs, and the password (AUTH) in the URL",
                    settings.timeout
                ),
            )
            .with_source(e)
        };
        let bad_url = |e: redis::RedisError| {
            config(format!(
                "the Redis URL {server} is not valid: write redis://[:password@]host[:port][/db] or rediss://... for TLS (feature `tls-rustls`)"
            ))
            .with_source(e)
        };

        #[cfg(feature = "cluster")]
        if let Some(nodes) = self.cluster_nodes {
            let client = redis::cluster::ClusterClientBuilder::new(nodes)
                .connection_timeout(settings.timeout)
                .response_timeout(settings.timeout)
                .build()
                .map_err(bad_url)?;
            let conn = tokio::time::timeout(settings.timeout, client.get_async_connection())
                .await
                .map_err(|_| unreachable(timed_out()))?
                .map_err(unreachable)?;
            return finish(Connection::Cluster(conn), None, sealing, settings, server).await;
        }

        let client = redis::Client::open(self.url.as_str()).map_err(bad_url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(2);
        if settings.lazy {
            let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
                .map_err(bad_url)?;
            let store = store(
                Connection::Single(manager),
                Some(client),
                sealing,
                settings,
                server,
            );
            tracing::debug!(server = %store.inner.server, "Redis token store: connecting on first use");
            return Ok(store);
        }
        // One plain connection first: the manager retries a refused
        // password until the timeout, which would read as "unreachable".
        let probe =
            tokio::time::timeout(settings.timeout, client.get_multiplexed_async_connection())
                .await
                .map_err(|_| unreachable(timed_out()))?;
        if let Err(e) = probe {
            return Err(if refused_credentials(&e) {
                config(format!(
                    "Redis at {server} refused the credentials in the URL: check the password (redis://:PASSWORD@host, or redis://USER:PASSWORD@host for an ACL user)"
                ))
                .with_source(e)
            } else {
                unreachable(e)
            });
        }
        let manager = tokio::time::timeout(
            settings.timeout,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| unreachable(timed_out()))?
        .map_err(unreachable)?;
        finish(
            Connection::Single(manager),
            Some(client),
            sealing,
            settings,
            server,
        )
        .await
    }
}

fn store(
    conn: Connection,
    client: Option<redis::Client>,
    sealing: Sealing,
    settings: Settings,
    server: String,
) -> RedisStore {
    RedisStore {
        inner: Arc::new(Inner {
            conn,
            client,
            sealing,
            settings,
            server,
        }),
    }
}

/// The store, once the server answered PING.
async fn finish(
    conn: Connection,
    client: Option<redis::Client>,
    sealing: Sealing,
    settings: Settings,
    server: String,
) -> Result<RedisStore, StoreError> {
    let store = store(conn, client, sealing, settings, server);
    let mut conn = store.inner.conn.clone();
    let pong: String = tokio::time::timeout(
        store.inner.settings.timeout,
        redis::cmd("PING").query_async(&mut conn),
    )
    .await
    .map_err(|_| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!("Redis at {} did not answer PING in time", store.inner.server),
        )
    })?
    .map_err(|e| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!(
                "Redis at {} did not answer PING: check the password (AUTH) in the URL and the user's ACL",
                store.inner.server
            ),
        )
        .with_source(e)
    })?;
    tracing::debug!(server = %store.inner.server, reply = %pong, sealing = ?store.inner.sealing, "Redis token store connected");
    Ok(store)
}

/// The server refused the URL's user or password.
fn refused_credentials(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "connecting timed out",
    ))
}

fn config(message: String) -> StoreError {
    StoreError::new(StoreErrorKind::Config, message)
}

/// `url` without its user name and password (for messages): scheme, host,
/// port and path. An unparsable URL is shown as `(unparsable URL)`, since it
/// may hold a password anywhere.
pub(crate) fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_hide_credentials() {
        assert_eq!(
            redacted("redis://user:hunter2@cache:6379/3"),
            "redis://cache:6379/3"
        );
        assert_eq!(redacted("rediss://:hunter2@cache"), "rediss://cache");
        assert_eq!(redacted("hunter2"), "(unparsable URL)");
        let builder = RedisStore::builder("redis://:hunter2@cache").plaintext();
        assert!(!format!("{builder:?}").contains("hunter2"));
    }
}
