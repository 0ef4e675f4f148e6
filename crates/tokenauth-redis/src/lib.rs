//! tokenauth's shared token store on Redis (or Valkey): [`RedisStore`].
//!
//! Worker processes on many machines share one token per (provider,
//! connection) through it: the store protocol of
//! [`tokenauth_core::store`] (leases with fencing numbers for cross-process
//! single-flight, publish by the lease holder only, compare-and-set of
//! rotating refresh tokens, waiting by pub/sub with a polling fallback),
//! each check-and-write a Lua script. See [`RedisStore`] for the keys and
//! the commands of each operation.
//!
//! - **Encrypted at rest**: every token is sealed with XChaCha20-Poly1305
//!   under a [`Keyring`] (the first key seals, all open, so keys rotate);
//!   the Redis key name is the associated data. The keyring comes from the
//!   application ([`RedisStoreBuilder::encryption`]) or the environment
//!   variable `TOKENAUTH_STORE_KEY` (`id:base64[,id:base64...]`, see
//!   [`Keyring::parse`]). Without one, [`RedisStoreBuilder::build`] refuses
//!   to start unless told [`plaintext`](RedisStoreBuilder::plaintext).
//! - **Key names** hold a hash, not the connection id:
//!   `tokenauth:<prefix>:{<provider>:<hash>}:<part>`, with a configurable
//!   prefix so that deployments can share one Redis, and a hash tag so that
//!   one connection's keys live in one Redis Cluster slot.
//! - **TLS and AUTH** come from the URL, as redis-rs reads it:
//!   `rediss://user:password@host:6380/0` (TLS needs the `tls-rustls`
//!   feature: rustls with the platform's root certificates), or
//!   `redis://:password@host/0`. No message or `Debug` output shows the
//!   password.
//! - **Redis Cluster**: feature `cluster`, `RedisStoreBuilder::cluster_nodes`
//!   (redis-rs's async cluster client; waits poll there).
//! - **Timeouts**: every operation fails after
//!   [`RedisStoreBuilder::timeout`] with an error of kind
//!   [`Unavailable`](tokenauth_core::store::StoreErrorKind::Unavailable);
//!   the connection reconnects by itself.
//!
//! # Example
//! Needs a Redis server (`apt-get install -y redis-server`) and a key:
//! `export TOKENAUTH_STORE_KEY=k1:$(openssl rand -base64 32)`.
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use secrecy::SecretString;
//! use tokenauth_core::store::{CasOutcome, LeaseOutcome, StoreKey, TokenStore};
//! use tokenauth_redis::RedisStore;
//!
//! let store = RedisStore::builder("redis://127.0.0.1:6379/0")
//!     .key_prefix("prod")
//!     .build()
//!     .await?;
//! let key = StoreKey { provider: "twoba", connection: "tenant-42" };
//! let rt = SecretString::from("the first refresh token");
//! let _ = store.cas_refresh(&key, None, Some(&rt)).await?;
//! if let LeaseOutcome::Acquired(lease) =
//!     store.try_lease(&key, "worker-1", Duration::from_secs(30)).await?
//! {
//!     // ... fetch a token, cas_refresh the rotated refresh token, publish ...
//!     store.release(&lease).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! The engine takes a store as an `Arc<dyn TokenStore>`:
//! `TokenAuth::builder(providers).store(Arc::new(store))`.

mod builder;
mod crypto;
mod scripts;
mod store;

pub use builder::RedisStoreBuilder;
pub use crypto::{EncryptionKey, KEY_ENV, Keyring};
pub use store::RedisStore;
