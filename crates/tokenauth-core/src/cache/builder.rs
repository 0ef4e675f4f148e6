use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::engine::{Inner, TokenAuth};
use super::shared::Coordination;
use super::stats::{Counters, ProviderCounters};
use super::table::Table;
use crate::acquire::RetryPolicy;
use crate::clock::{Clock, SystemClock};
use crate::config::Providers;
use crate::error::Error;
use crate::route::Router;
use crate::store::{MemoryStore, TokenStore};

/// Builds a [`TokenAuth`]. Every setter says its default.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tokenauth_core::{Providers, TokenAuth};
/// use tokenauth_core::clock::ManualClock;
/// use tokenauth_core::store::FileStore;
///
/// let providers = Providers::from_toml("p.toml", r#"
/// [providers.bro]
/// api = ["https://www.bronhouderportaal-bro.nl/api/v2/"]
/// inputs.username = { env = "BRO_TOKEN_USERNAME" }
/// inputs.token = { env = "BRO_TOKEN_PASSWORD", secret = true }
/// inject.basic = { username = "{{ inputs.username }}", password = "{{ inputs.token }}" }
/// "#)?;
/// let auth = TokenAuth::builder(providers)
///     .store(Arc::new(FileStore::new(std::env::temp_dir().join("tokenauth-doc"))))
///     .clock(Arc::new(ManualClock::new()))
///     .max_connections(1_000)
///     .retries(1)
///     .build()?;
/// # let _ = auth; Ok(()) }
/// ```
#[must_use]
pub struct TokenAuthBuilder {
    providers: Providers,
    client: Option<reqwest::Client>,
    client_builder: Option<reqwest::ClientBuilder>,
    store: Option<Arc<dyn TokenStore>>,
    clock: Option<Arc<dyn Clock>>,
    max_connections: u64,
    retry: RetryPolicy,
    failure_backoff: (Duration, Duration),
    lease_ttl: Duration,
    max_hold: Duration,
    store_timeout: Duration,
    local_fallback: bool,
}

impl TokenAuth {
    /// A builder for an engine over `providers`.
    pub fn builder(providers: Providers) -> TokenAuthBuilder {
        TokenAuthBuilder::new(providers)
    }
}

impl TokenAuthBuilder {
    pub(crate) fn new(providers: Providers) -> Self {
        TokenAuthBuilder {
            providers,
            client: None,
            client_builder: None,
            store: None,
            clock: None,
            max_connections: 10_000,
            retry: RetryPolicy {
                max_retries: 2,
                base: Duration::from_millis(200),
                max: Duration::from_secs(2),
            },
            failure_backoff: (Duration::from_secs(1), Duration::from_secs(60)),
            lease_ttl: Duration::from_secs(10),
            max_hold: Duration::from_secs(120),
            store_timeout: Duration::from_secs(2),
            local_fallback: false,
        }
    }

    /// The HTTP client for token requests. Defaults to a client that follows
    /// no redirects.
    ///
    /// Token requests must not follow redirects (the credentials in the body
    /// would go to another URL): build the client with
    /// `.redirect(reqwest::redirect::Policy::none())`, or pass a builder to
    /// [`http_client_builder`](Self::http_client_builder), which sets that
    /// itself. A reply that came from another URL than the one requested is
    /// refused either way.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self.client_builder = None;
        self
    }

    /// Builds the HTTP client from `builder` (custom roots, resolver
    /// overrides, proxies), with redirects turned off.
    pub fn http_client_builder(mut self, builder: reqwest::ClientBuilder) -> Self {
        self.client_builder = Some(builder);
        self.client = None;
        self
    }

    /// The token store: where refresh tokens are kept and, when it is shared
    /// by several engines or processes (a [`FileStore`] directory, Redis, a
    /// [`MemoryStore`] given to several engines), how they fetch one token
    /// for all: a fetch first looks for a token another process published,
    /// else takes the connection's lease and fetches, or waits for the
    /// lease holder's result (see [`crate::store`]). Defaults to a
    /// [`MemoryStore`] of this engine's own, which only keeps refresh tokens.
    ///
    /// [`FileStore`]: crate::store::FileStore
    pub fn store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The time to live of a connection's token lease in a shared store: a
    /// process that dies while fetching blocks the others at most this
    /// long. The holder renews the lease every third of it while its token
    /// request runs, and abandons the request a quarter of it before the
    /// lease's deadline if the store cannot renew it. Defaults to 10 s;
    /// at least 100 ms, at most an hour.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.clamp(Duration::from_millis(100), Duration::from_secs(3600));
        self
    }

    /// The longest one process holds a connection's lease for one fetch
    /// (all token requests and their retries): a fetch still running then
    /// is abandoned, and other processes stop waiting for it a lease time
    /// to live later. Defaults to 120 s; at least the lease's time to live,
    /// at most a day.
    pub fn max_hold(mut self, max: Duration) -> Self {
        self.max_hold = max.min(Duration::from_secs(24 * 3600));
        self
    }

    /// The longest any one call to the store may take before the store
    /// counts as unavailable (see [`local_fallback`](Self::local_fallback)).
    /// Cache hits never call the store. Defaults to 2 s; at most an hour.
    /// (A lease renewal that has not come back a quarter lease TTL before
    /// the lease's deadline counts as failed, whatever this says.)
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout.min(Duration::from_secs(3600));
        self
    }

    /// What a fetch does while a shared store is unavailable. Providers
    /// that can log in and do not rotate refresh tokens always fetch in
    /// this process alone then (logged once per outage); providers with
    /// `refresh.rotate = true` fail with
    /// [`Error::StoreUnavailable`](crate::Error::StoreUnavailable), because a
    /// process that refreshes on its own may spend a refresh token another
    /// process holds too, which revokes it. `true` lets them log in locally
    /// as well. Cached tokens are served either way. Defaults to `false`.
    pub fn local_fallback(mut self, allow: bool) -> Self {
        self.local_fallback = allow;
        self
    }

    /// The clock for expiry and backoff decisions. Defaults to
    /// [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How many connections per provider the cache holds; beyond that the
    /// least recently used are evicted (and fetched again when next used).
    /// Defaults to 10,000.
    pub fn max_connections(mut self, n: u64) -> Self {
        self.max_connections = n;
        self
    }

    /// How many times one acquisition retries a token request after a 5xx,
    /// a 429 or a transport failure. Defaults to 2.
    pub fn retries(mut self, n: u32) -> Self {
        self.retry.max_retries = n;
        self
    }

    /// The backoff between those retries: `base` doubling up to `max`, with
    /// jitter; a `Retry-After` longer than `max` is not waited for inside an
    /// acquisition (the error is returned and backed off instead). Defaults
    /// to 200 ms and 2 s.
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry.base = base;
        self.retry.max = max.max(base);
        self
    }

    /// How long a failed acquisition is backed off: `base` doubling per
    /// consecutive failure up to `max`, with jitter, and at least the
    /// endpoint's `Retry-After` (up to `max`). Callers within the backoff get
    /// the cached error. Measured with the engine's clock. Defaults to 1 s and
    /// 60 s.
    pub fn failure_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.failure_backoff = (base, max.max(base));
        self
    }

    /// Builds the engine. Fails only if the default HTTP client cannot be
    /// built.
    pub fn build(self) -> Result<TokenAuth, Error> {
        check_tls(crate::tls::ENABLED, &self.providers)?;
        crate::tls::install_default_provider();
        let client = match (self.client, self.client_builder) {
            (Some(c), _) => c,
            (None, builder) => builder
                .unwrap_or_default()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::HttpClient(Arc::new(e)))?,
        };
        let n = self.providers.len();
        let per_provider = self
            .providers
            .iter()
            .map(|p| ProviderCounters::new(&p.id))
            .collect();
        let caches = (0..n).map(|_| Table::new(self.max_connections)).collect();
        let provider_ids: Vec<Arc<str>> = self
            .providers
            .iter()
            .map(|p| Arc::from(p.id.as_str()))
            .collect();
        let inner = Inner {
            router: Router::new(&self.providers),
            shapes: self
                .providers
                .iter()
                .zip(&provider_ids)
                .map(|(p, id)| crate::inject::Shape::of(p, Arc::clone(id)))
                .collect(),
            provider_ids,
            providers: self.providers,
            client,
            coordination: Coordination::new(
                self.store.is_some(),
                self.lease_ttl,
                self.max_hold.max(self.lease_ttl),
                self.store_timeout,
                self.local_fallback,
            ),
            store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
            coarse_clock: self.clock.is_none() && crate::clock::coarse::available(),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            caches,
            pending: Mutex::new(HashMap::new()),
            defaults: (0..n).map(|_| OnceLock::new()).collect(),
            // papaya's default collector: requests write this memo, and
            // freeing after every retirement (see `table::promptly_freed`)
            // would cost a process-wide barrier per entry when it is
            // cleared.
            rendered: papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .build(),
            counters: Counters::default(),
            per_provider,
            retry: self.retry,
            failure_backoff: self.failure_backoff,
            authorizations: Default::default(),
        };
        Ok(TokenAuth {
            inner: Arc::new(inner),
        })
    }
}

/// Without a TLS backend (`tls_enabled` false) a description that uses
/// https is refused up front rather than failing every token request.
fn check_tls(tls_enabled: bool, providers: &Providers) -> Result<(), Error> {
    match providers.iter().find(|p| uses_https(p)) {
        Some(p) if !tls_enabled => Err(Error::NoTls {
            provider: p.id.clone(),
        }),
        _ => Ok(()),
    }
}

/// The provider sends or routes anything over https.
fn uses_https(p: &crate::config::Provider) -> bool {
    let https = |u: &crate::config::UrlTemplate| u.sample().scheme() == "https";
    p.api.iter().any(https)
        || p.login.iter().any(|l| https(&l.url))
        || p.refresh.iter().any(|r| https(&r.request.url))
}

impl std::fmt::Debug for TokenAuthBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthBuilder")
            .field("providers", &self.providers.ids().collect::<Vec<_>>())
            .field("max_connections", &self.max_connections)
            .field("retry", &self.retry)
            .field("failure_backoff", &self.failure_backoff)
            .field("lease_ttl", &self.lease_ttl)
            .field("max_hold", &self.max_hold)
            .field("store_timeout", &self.store_timeout)
            .field("local_fallback", &self.local_fallback)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_tls_a_description_with_https_is_refused() {
        let https =
            Providers::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../providers.toml"))
                .unwrap();
        let err = check_tls(false, &https).unwrap_err();
        assert!(
            matches!(&err, Error::NoTls { provider } if provider == "reobtimaal"),
            "{err}"
        );
        assert!(err.to_string().contains("rustls-aws-lc"), "{err}");
        assert!(check_tls(true, &https).is_ok());
        let loopback = Providers::from_toml(
            "p.toml",
            "[providers.local]\napi = [\"http://127.0.0.1:8080/\"]\ninputs.k = { default = \"x\" }\ninject = { header = \"X-Key\", value = \"{{ inputs.k }}\" }\n",
        )
        .unwrap();
        assert!(
            check_tls(false, &loopback).is_ok(),
            "plain http needs no TLS"
        );
    }
}
