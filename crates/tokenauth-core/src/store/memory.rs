use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

use secrecy::SecretString;

use super::{StoreKey, TokenStore};

/// Keeps refresh tokens in memory: they live as long as the process. The
/// default store.
#[derive(Default)]
pub struct MemoryStore {
    tokens: Mutex<HashMap<(String, String), SecretString>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), SecretString>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tokens", &self.map().len())
            .finish()
    }
}

fn owned(key: &StoreKey<'_>) -> (String, String) {
    (key.provider.to_owned(), key.connection.to_owned())
}

#[async_trait::async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self, key: &StoreKey<'_>) -> io::Result<Option<SecretString>> {
        Ok(self.map().get(&owned(key)).cloned())
    }

    async fn save(&self, key: &StoreKey<'_>, refresh_token: &SecretString) -> io::Result<()> {
        self.map().insert(owned(key), refresh_token.clone());
        Ok(())
    }

    async fn remove(&self, key: &StoreKey<'_>) -> io::Result<()> {
        self.map().remove(&owned(key));
        Ok(())
    }
}
