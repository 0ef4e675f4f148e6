//! Refresh-token stores: where refresh tokens live so that they survive a
//! restart and are shared by workers.
//!
//! The engine asks the store for a connection's refresh token before every
//! token request (a held refresh token is used instead of logging in), and
//! saves a new or rotated refresh token **before** the access token that came
//! with it is handed out, so a crash can never lose the only valid refresh
//! token of a rotating provider (2BA).
//!
//! Two stores ship: [`MemoryStore`] (the default: per process) and
//! [`FileStore`] (one file per connection in a directory, written atomically
//! and durably, `0600` on Unix, file names derived from a hash so they
//! contain no secret; only regular files are read).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use secrecy::{ExposeSecret, SecretString};
//! use tokenauth_core::store::{MemoryStore, StoreKey, TokenStore};
//!
//! let store = MemoryStore::new();
//! let key = StoreKey { provider: "twoba", connection: "tenant-42" };
//! store.save(&key, &SecretString::from("rt-1")).await.unwrap();
//! assert_eq!(store.load(&key).await.unwrap().unwrap().expose_secret(), "rt-1");
//! # }
//! ```

mod file;
mod memory;

use std::fmt;
use std::io;

use secrecy::SecretString;

pub use file::FileStore;
pub use memory::MemoryStore;

/// Which refresh token: one per (provider, connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreKey<'a> {
    /// The provider id.
    pub provider: &'a str,
    /// The connection id.
    pub connection: &'a str,
}

/// Persists refresh tokens per (provider, connection).
///
/// Implementations must be safe to call concurrently; the engine calls them
/// at most once at a time per key (token requests are single-flight), but
/// other processes may share the backing storage: `save` should replace the
/// value atomically.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The stored refresh token, if any.
    async fn load(&self, key: &StoreKey<'_>) -> io::Result<Option<SecretString>>;

    /// Stores `refresh_token`, replacing any earlier one.
    async fn save(&self, key: &StoreKey<'_>, refresh_token: &SecretString) -> io::Result<()>;

    /// Forgets the refresh token (it was rejected). Removing a missing one is
    /// not an error.
    async fn remove(&self, key: &StoreKey<'_>) -> io::Result<()>;
}
