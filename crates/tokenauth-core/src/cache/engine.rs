use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use futures_util::future::Shared;
use tracing::{Instrument as _, debug, info, info_span, trace, warn};
use url::Url;

use super::credential::{Credential, Failure, Fetched, TokenEntry, nanos};
use super::shared::Coordination;
use super::stats::{Counters, ProviderCounters, ProviderStats, Stats};
use super::table::{Cached, Slot, Table};
use crate::acquire::{Acquirer, RetryPolicy, backoff};
use crate::clock::Clock;
use crate::config::{Provider, Providers, Skew};
use crate::connection::Connection;
use crate::error::Error;
use crate::request::ProviderHandle;
use crate::route::{Router, Target};
use crate::store::TokenStore;

/// The smallest renewal lead: a token is renewed at least this long before it
/// expires (or at half its lifetime, for shorter lifetimes).
pub(crate) const RENEW_FLOOR: Duration = Duration::from_secs(5);

type Pending = Shared<Joined>;

/// A fetch's task, joined: its result, or [`Error::Aborted`] when the task
/// ended without one (a panic, the runtime shutting down). A named type
/// rather than a boxed `async` block: one allocation less per fetch.
pub(crate) struct Joined {
    task: tokio::task::JoinHandle<Result<Credential, Error>>,
    provider: Arc<str>,
}

impl std::future::Future for Joined {
    type Output = Result<Credential, Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.task).poll(cx).map(|joined| {
            joined.unwrap_or_else(|_| {
                Err(Error::Aborted {
                    provider: self.provider.to_string(),
                })
            })
        })
    }
}

type PendingKey = (usize, Arc<str>);

#[derive(Clone, Copy, Debug)]
enum Trigger {
    Miss,
    Renewal,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Miss => "miss",
            Trigger::Renewal => "renewal",
        }
    }
}

pub(crate) struct Inner {
    pub(crate) providers: Providers,
    pub(crate) router: Router,
    pub(crate) provider_ids: Vec<Arc<str>>,
    /// Per provider: the shape of its credentials (the id and part names
    /// every cached credential shares).
    pub(crate) shapes: Vec<Arc<crate::inject::Shape>>,
    pub(crate) client: reqwest::Client,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) caches: Vec<Table>,
    pub(crate) pending: Mutex<HashMap<PendingKey, Pending>>,
    pub(crate) defaults: Vec<OnceLock<Connection>>,
    pub(crate) counters: Counters,
    /// Per provider, in `providers` order: its share of the counters and its
    /// `metrics` handles (feature `metrics`).
    pub(crate) per_provider: Vec<ProviderCounters>,
    /// The clock is the default system clock and the coarse clock is
    /// available: fresh hits read the coarse clock (see
    /// [`coarse`](crate::clock::coarse)).
    pub(crate) coarse_clock: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) failure_backoff: (Duration, Duration),
    /// How fetches are shared with other processes through the store.
    pub(crate) coordination: Coordination,
    /// Prefixes with placeholders as each connection renders them (`None`:
    /// it cannot): routing needs them on every request and again for the
    /// response's URL, so each is rendered once per connection id (a
    /// connection id stands for one set of values, see [`Connection`]).
    pub(crate) rendered: RenderedPrefixes,
    /// Issued authorization requests waiting for their callback.
    pub(crate) authorizations: crate::authorize::PendingTable,
}

/// `provider`'s prefixes with `{{ inputs.NAME }}` as `conn` renders them:
/// where a credential made for `conn` may go (with the written-out ones).
fn connection_prefixes(provider: &Provider, conn: &Connection) -> Box<[Url]> {
    provider
        .api
        .iter()
        .filter(|p| !p.is_literal() && !p.is_wildcard())
        .filter_map(|p| conn.render_url(provider, p).ok())
        .collect()
}

/// See [`Inner::rendered`]: keyed by (provider, prefix, connection id).
pub(crate) type RenderedPrefixes =
    papaya::HashMap<(usize, usize, Arc<str>), Option<Url>, foldhash::fast::RandomState>;

/// The most renderings [`Inner::rendered`] keeps before it starts over.
const MAX_RENDERED: usize = 16_384;

/// The token engine: routes request URLs to providers and hands out
/// credentials, fetching, caching and renewing tokens as needed.
///
/// Cheap to clone (an `Arc` inside); clones share the cache. See the
/// [crate documentation](crate) for the guarantees under concurrency.
#[derive(Clone)]
pub struct TokenAuth {
    pub(crate) inner: Arc<Inner>,
}

impl TokenAuth {
    /// Loads a description file and builds an engine with the defaults.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let providers = Providers::from_path(path).map_err(|e| Error::Config(Arc::new(e)))?;
        Self::builder(providers).build()
    }

    /// Loads the description the environment names
    /// ([`Providers::from_env`]: `$TOKENAUTH_CONFIG`, else
    /// `./providers.toml`) and builds an engine with the defaults.
    pub fn from_env() -> Result<Self, Error> {
        let providers = Providers::from_env().map_err(|e| Error::Config(Arc::new(e)))?;
        Self::builder(providers).build()
    }

    /// The provider descriptions.
    pub fn providers(&self) -> &Providers {
        &self.inner.providers
    }

    /// The provider with this id; [`Error::UnknownProvider`] if the
    /// description has none.
    pub fn provider(&self, id: &str) -> Result<ProviderHandle, Error> {
        self.inner
            .providers
            .position(id)
            .map(|index| ProviderHandle::new(self.clone(), index))
            .ok_or_else(|| Error::UnknownProvider {
                provider: id.to_owned(),
            })
    }

    /// The provider whose `api` prefix contains `url` (the longest prefix
    /// wins), prefixes with placeholders rendered for each provider's default
    /// connection. `None`: the request must go out without a credential.
    pub fn route(&self, url: &Url) -> Option<ProviderHandle> {
        self.route_for(url, None)
    }

    /// [`route`](Self::route) for a request of `connection`: prefixes with
    /// placeholders are rendered with its values.
    pub fn route_for(&self, url: &Url, connection: Option<&Connection>) -> Option<ProviderHandle> {
        self.inner
            .route_url(url, connection)
            .map(|index| ProviderHandle::new(self.clone(), index))
    }

    /// [`ProviderHandle::authorization_request`] of `provider` with the
    /// registered redirect URI: the URL a person's browser goes to for the
    /// authorization-code grant, and its single-use state. See
    /// [`crate::authorize`].
    pub fn authorization_request(
        &self,
        provider: &str,
        connection: Option<&Connection>,
    ) -> Result<crate::AuthorizationRequest, Error> {
        self.provider(provider)?
            .authorization_request(connection, None)
    }

    /// [`ProviderHandle::complete_authorization`] of `provider`: exchanges
    /// the code of `callback` (the redirect URL, or the bare code) after
    /// checking `state`, stores the refresh token and caches the access
    /// token; returns what it stored and when the access token expires.
    pub async fn complete_authorization(
        &self,
        provider: &str,
        connection: Option<&Connection>,
        callback: &str,
        state: &str,
    ) -> Result<crate::Authorized, Error> {
        self.provider(provider)?
            .complete_authorization(connection, callback, state)
            .await
    }

    /// The counters so far, summed over the providers.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot(&self.inner.per_provider)
    }

    /// Provider `id`'s share of the counters so far (`None`: no such
    /// provider). A workflow engine's dashboard or `tokenauth proxy`'s
    /// `/_tokenauth/stats` shows these per provider.
    pub fn provider_stats(&self, id: &str) -> Option<ProviderStats> {
        let index = self.inner.providers.position(id)?;
        self.inner
            .per_provider
            .get(index)
            .map(ProviderCounters::snapshot)
    }

    /// The clock the engine uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The token store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// The HTTP client used for token requests.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.inner.client
    }
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("providers", &self.inner.provider_ids)
            .field("store", &self.inner.store)
            .field("clock", &self.inner.clock)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The per-connection operations of provider `index`, behind
/// [`ProviderHandle`]'s methods of the same names.
impl Inner {
    /// `connection`, or provider `index`'s default connection when it is
    /// `None`.
    #[inline]
    pub(crate) fn connection<'c>(
        &'c self,
        index: usize,
        connection: Option<&'c Connection>,
    ) -> Result<&'c Connection, Error> {
        match connection {
            Some(c) => Ok(c),
            None => self.default_connection(index),
        }
    }

    /// Prefix `api` of provider `index` rendered for `conn` (`None`: the
    /// default connection); `None` when that connection has no valid
    /// rendering (a missing or unfit value), which routes nothing to it.
    pub(crate) fn rendered_prefix(
        &self,
        index: usize,
        api: usize,
        conn: Option<&Connection>,
    ) -> Option<Url> {
        let provider = &self.providers.providers[index];
        let conn = self.connection(index, conn).ok()?;
        let key = (index, api, conn.id_arc().clone());
        let memo = self.rendered.pin();
        if let Some(rendered) = memo.get(&key) {
            return rendered.clone();
        }
        let rendered = conn
            .render_url(provider, provider.api.get(api)?)
            .inspect_err(|e| {
                debug!(provider = %provider.id, connection = %conn.id(), error = %e, "the connection's api prefix cannot be rendered; nothing routes to it");
            })
            .ok();
        if memo.len() >= MAX_RENDERED {
            memo.clear();
        }
        memo.insert(key, rendered.clone());
        rendered
    }

    /// The provider whose prefix holds `target`, prefixes with placeholders
    /// rendered for `conn` (`None`: each provider's default connection).
    pub(crate) fn route(&self, target: &Target<'_>, conn: Option<&Connection>) -> Option<usize> {
        self.route_as_given(target, conn).0
    }

    /// [`Inner::route`], and whether the target's path goes out as it is
    /// (see [`Router::route_as_given`]).
    pub(crate) fn route_as_given(
        &self,
        target: &Target<'_>,
        conn: Option<&Connection>,
    ) -> (Option<usize>, bool) {
        self.router
            .route_as_given(target, |index, api| self.rendered_prefix(index, api, conn))
    }

    /// [`Inner::route`] for a parsed URL.
    pub(crate) fn route_url(&self, url: &Url, conn: Option<&Connection>) -> Option<usize> {
        self.route(&Target::from_url(url)?, conn)
    }

    /// The default connection (inputs from environment variables), built on
    /// first use; fails naming the input and variable that is missing.
    #[inline]
    pub(crate) fn default_connection(&self, index: usize) -> Result<&Connection, Error> {
        match self.defaults[index].get() {
            Some(c) => Ok(c),
            None => self.first_default_connection(index),
        }
    }

    /// [`default_connection`](Self::default_connection) before it is built
    /// (once per provider; kept out of the per-request path).
    #[cold]
    fn first_default_connection(&self, index: usize) -> Result<&Connection, Error> {
        let conn = Connection::from_env(&self.providers.providers[index])?;
        Ok(self.defaults[index].get_or_init(|| conn))
    }

    /// A valid credential for `conn`; see [`ProviderHandle::credential`].
    pub(crate) async fn credential(
        self: &Arc<Self>,
        index: usize,
        conn: &Connection,
    ) -> Result<Credential, Error> {
        match self.cached_or_failed(index, conn) {
            Some(done) => done,
            None => self.on_miss(index, conn).await,
        }
    }

    /// What [`credential`](Self::credential) answers without waiting: a
    /// valid cached token (starting its background renewal when it is due),
    /// or the cached error of a failed fetch still backing off; `None` when
    /// it has to fetch ([`on_miss`](Self::on_miss)). Synchronous, so that the request
    /// sequence awaits (and keeps in its future) nothing on a hit.
    #[inline]
    pub(crate) fn cached_or_failed(
        self: &Arc<Self>,
        index: usize,
        conn: &Connection,
    ) -> Option<Result<Credential, Error>> {
        let table = &self.caches[index];
        // The hot path: synchronous, lock-free, one `Arc` clone. With the
        // default clock, a token whose renewal window is still ahead by more
        // than the coarse clock's slack needs no precise clock read.
        let upper = self
            .coarse_clock
            .then(crate::clock::coarse::upper_bound_nanos);
        let credential = match Credential::new(table.get(conn.id())?) {
            Ok(credential) => credential,
            Err(failed) => {
                let failure = failed.failure()?;
                if !failure.backing_off(self.clock.monotonic()) {
                    return None;
                }
                Counters::bump(&self.counters.cached_errors);
                return Some(Err(failure.error.clone()));
            }
        };
        let entry = credential.entry();
        if upper.is_some_and(|upper| entry.is_fresh_at(upper)) {
            return Some(Ok(self.hit(index, credential)));
        }
        let now_ns = nanos(self.clock.now());
        if !entry.is_valid_at(now_ns) {
            return None;
        }
        if entry.wants_renewal_at(now_ns) && entry.renewal_allowed(self.clock.monotonic()) {
            self.start_renewal(index, conn, entry);
        }
        Some(Ok(self.hit(index, credential)))
    }

    /// A cache miss: the credential rendered (static providers) or fetched
    /// (one shared fetch per connection).
    pub(crate) async fn on_miss(
        self: &Arc<Self>,
        index: usize,
        conn: &Connection,
    ) -> Result<Credential, Error> {
        self.count(index, ProviderCounters::misses);
        if !self.providers.providers[index].fetches_tokens() {
            return self.render_static(index, conn);
        }
        Inner::pending(self, index, conn, Trigger::Miss).await
    }

    /// Counts a cache hit on `credential` and hands it out (the table's
    /// lookup recorded the use).
    #[inline]
    fn hit(&self, index: usize, credential: Credential) -> Credential {
        self.counters.hit();
        self.metric(index, ProviderCounters::hits);
        trace!(provider = %credential.provider(), connection = %credential.connection(), token = %credential.token_id(), "token cache hit");
        credential
    }

    /// The cached credential of `conn` if it holds a token that has not
    /// expired; see [`ProviderHandle::cached`].
    pub(crate) fn cached(&self, index: usize, conn: &Connection) -> Option<Credential> {
        let credential = Credential::new(self.caches[index].get(conn.id())?).ok()?;
        credential
            .entry()
            .is_valid(self.clock.now())
            .then_some(credential)
    }

    /// The result of the token fetch in flight for `conn`, waited for;
    /// `None` when none is running. Starts nothing.
    pub(crate) async fn in_flight(
        &self,
        index: usize,
        conn: &Connection,
    ) -> Option<Result<Credential, Error>> {
        let key: PendingKey = (index, conn.id_arc().clone());
        let pending = lock(&self.pending).get(&key).cloned()?;
        Some(pending.await)
    }

    /// Drops the cached token of `conn` if it is still `rejected` (the very
    /// same token); see [`ProviderHandle::invalidate`].
    pub(crate) fn invalidate(
        &self,
        index: usize,
        conn: &Connection,
        rejected: &Credential,
    ) -> bool {
        let dropped = self.caches[index].remove_token(conn.id_arc(), rejected.cached());
        if dropped {
            if let Some(access) = rejected.entry().access() {
                self.coordination.reject(index, conn, access);
            }
            self.count(index, ProviderCounters::invalidations);
            debug!(provider = %self.provider_ids[index], connection = %conn.id(), token = %rejected.token_id(), "rejected token invalidated");
        }
        dropped
    }
}

/// Removes a pending fetch from the map when its task ends (even by panic).
struct PendingGuard {
    inner: Arc<Inner>,
    key: PendingKey,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        lock(&self.inner.pending).remove(&self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Bumps a `metrics` counter of provider `index` (a hit, a rejection);
    /// nothing without the `metrics` feature.
    #[inline(always)]
    pub(crate) fn metric(&self, index: usize, bump: fn(&ProviderCounters)) {
        #[cfg(feature = "metrics")]
        if let Some(m) = self.per_provider.get(index) {
            bump(m);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (index, bump);
    }

    /// Counts an event off the hot path for provider `index` (its share and,
    /// with the `metrics` feature, its handle).
    pub(crate) fn count(&self, index: usize, bump: fn(&ProviderCounters)) {
        if let Some(m) = self.per_provider.get(index) {
            bump(m);
        }
    }

    /// The pending fetch for (provider, connection), started if there is
    /// none. The fetch runs in its own task.
    fn pending(this: &Arc<Inner>, index: usize, conn: &Connection, trigger: Trigger) -> Pending {
        let key: PendingKey = (index, conn.id_arc().clone());
        let mut map = lock(&this.pending);
        if let Some(p) = map.get(&key) {
            return p.clone();
        }
        let guard = PendingGuard {
            inner: Arc::clone(this),
            key: key.clone(),
        };
        let conn = conn.clone();
        // The fetch runs in its own task; its span follows from the caller's
        // (the request that caused it), so a trace shows where it came from.
        // Its future is boxed, so that the task itself is small: tokio
        // allocates a task with a 128-byte alignment (`posix_memalign`), and
        // large blocks allocated that way, one per fetch, fragmented glibc's
        // heap by over 200 B per cached token (see `table`).
        let cause = tracing::Span::current().id();
        let task = tokio::spawn(Box::pin(async move {
            let guard = guard;
            let result = guard.inner.fetch(index, &conn, trigger, cause).await;
            drop(guard);
            result
        }));
        let pending = Joined {
            task,
            provider: this.provider_ids[index].clone(),
        }
        .shared();
        map.insert(key, pending.clone());
        pending
    }

    fn start_renewal(self: &Arc<Self>, index: usize, conn: &Connection, entry: &TokenEntry) {
        if entry
            .renewing
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        self.count(index, ProviderCounters::renewals);
        debug!(provider = %entry.provider(), connection = %entry.connection, token = %entry.id, "token in its renewal window: renewing in the background");
        // The task is detached: it publishes its result in the cache.
        drop(Inner::pending(self, index, conn, Trigger::Renewal));
    }

    fn render_static(&self, index: usize, conn: &Connection) -> Result<Credential, Error> {
        self.count(index, ProviderCounters::fetches);
        let provider = &self.providers.providers[index];
        let result = conn
            .check(provider)
            .and_then(|()| crate::inject::render_shaped(&self.shapes[index], provider, conn, None));
        match result {
            Ok(injection) => {
                let entry = TokenEntry::new(
                    conn.id_arc().clone(),
                    injection,
                    None,
                    connection_prefixes(provider, conn),
                );
                let credential = self.publish_token(index, conn, entry);
                debug!(provider = %provider.id, connection = %conn.id(), "static credential rendered");
                Ok(credential)
            }
            Err(e) => {
                self.count(index, ProviderCounters::failures);
                Err(e)
            }
        }
    }

    /// One acquisition, run by exactly one task per (provider, connection).
    async fn fetch(
        &self,
        index: usize,
        conn: &Connection,
        trigger: Trigger,
        cause: Option<tracing::Id>,
    ) -> Result<Credential, Error> {
        let provider = &self.providers.providers[index];
        let span = info_span!("tokenauth.fetch", provider = %provider.id, connection = %conn.id(), trigger = trigger.as_str());
        span.follows_from(cause);
        async move {
            let cache = &self.caches[index];
            // A fetch that finished just before this one started leaves its
            // result here; use it rather than fetching again.
            let now = self.clock.now();
            match cache.get(conn.id()).map(Credential::new) {
                Some(Ok(current)) if current.entry().is_fresh(now) => return Ok(current),
                Some(Err(failed)) => {
                    if let Some(f) = failed.failure().filter(|f| f.backing_off(self.clock.monotonic())) {
                        return Err(f.error.clone());
                    }
                }
                _ => {}
            }
            self.count(index, ProviderCounters::fetches);
            let renewal = matches!(trigger, Trigger::Renewal);
            let result = self.obtain(index, conn, renewal).await.and_then(|fetched| {
                let injection = crate::inject::render_shaped(&self.shapes[index], provider, conn, Some(&fetched.access))?;
                let now = self.clock.now();
                let ms = |t: SystemTime| t.duration_since(now).unwrap_or_default().as_millis() as u64;
                // INFO: one line per fetch, what `tokenauth -v` shows.
                match fetched.obtained_by {
                    Some(kind) => info!(request = %kind, expires_in_ms = ms(fetched.expires_at), renew_in_ms = ms(fetched.renew_at), "token acquired"),
                    None => info!(expires_in_ms = ms(fetched.expires_at), renew_in_ms = ms(fetched.renew_at), "token adopted from the shared store (another process fetched it)"),
                }
                Ok(TokenEntry::new(
                    conn.id_arc().clone(),
                    injection,
                    Some(fetched),
                    connection_prefixes(provider, conn),
                ))
            });
            match result {
                Ok(entry) => Ok(self.publish_token(index, conn, entry)),
                Err(error) => {
                    self.count(index, ProviderCounters::failures);
                    let now = self.clock.now();
                    let since = self.clock.monotonic();
                    let previous = cache.get(conn.id());
                    match previous.as_deref().map(|c| &c.slot) {
                        Some(Slot::Token(current)) if current.is_valid(now) => {
                            // A renewal failed while the token is still good:
                            // keep serving it, try again after a backoff.
                            let n = current.count_renewal_failure();
                            let wait = self.failure_wait(n, &error);
                            current.defer_renewal(since.saturating_add(wait));
                            warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "background renewal failed; the current token is still valid and stays in use");
                        }
                        previous => {
                            let attempts = match previous {
                                Some(Slot::Failed(f)) => f.attempts.saturating_add(1),
                                _ => 1,
                            };
                            let wait = self.failure_wait(attempts - 1, &error);
                            warn!(error = %error, attempts, retry_in_ms = wait.as_millis() as u64, "token acquisition failed; backing off");
                            let failure = Failure {
                                error: error.clone(),
                                retry_at: since.saturating_add(wait),
                                attempts,
                            };
                            cache.publish(conn.id_arc(), &Cached::new(Slot::Failed(Box::new(failure))));
                        }
                    }
                    Err(error)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Fetches a token for `conn` with `store` holding its refresh token:
    /// the token request(s), and when to renew the result.
    pub(crate) async fn acquire(
        &self,
        index: usize,
        conn: &Connection,
        store: &dyn TokenStore,
    ) -> Result<Fetched, Error> {
        let provider = &self.providers.providers[index];
        let acquirer = Acquirer {
            provider,
            conn,
            client: &self.client,
            clock: &*self.clock,
            store,
            store_timeout: self.coordination.store_timeout,
            retry: self.retry,
            counters: &self.per_provider[index],
            extra_fields: &[],
        };
        let acquired = acquirer.run().await?;
        Ok(Fetched {
            renew_at: renew_at(provider, self.clock.now(), acquired.expires_at),
            access: acquired.access,
            obtained_by: Some(acquired.kind),
            expires_at: acquired.expires_at,
            api_base: acquired.api_base,
        })
    }

    /// An acquirer for `conn` with the engine's client, clock, store and
    /// policies (the device grant's polls use it).
    pub(crate) fn acquirer<'a>(&'a self, index: usize, conn: &'a Connection) -> Acquirer<'a> {
        Acquirer {
            provider: &self.providers.providers[index],
            conn,
            client: &self.client,
            clock: &*self.clock,
            store: &*self.store,
            store_timeout: self.coordination.store_timeout,
            retry: self.retry,
            counters: &self.per_provider[index],
            extra_fields: &[],
        }
    }

    /// The code exchange of [`complete_authorization`](Self::complete_authorization),
    /// with the engine's store: the reply's refresh token is stored.
    pub(crate) async fn exchange_code(
        &self,
        index: usize,
        conn: &Connection,
        request: &crate::config::TokenRequest,
        extra: &[(&'static str, secrecy::SecretString)],
    ) -> Result<Exchanged, Error> {
        let provider = &self.providers.providers[index];
        let acquirer = Acquirer {
            extra_fields: extra,
            ..self.acquirer(index, conn)
        };
        let (acquired, refresh_stored) = acquirer.exchange(request).await?;
        Ok(Exchanged {
            expires_at: acquired.expires_at,
            refresh_stored,
            acquired: Fetched {
                renew_at: renew_at(provider, self.clock.now(), acquired.expires_at),
                access: acquired.access,
                obtained_by: Some(acquired.kind),
                expires_at: acquired.expires_at,
                api_base: acquired.api_base,
            },
        })
    }

    /// Puts a token obtained outside the cache's own fetches (the device
    /// grant) into the cache for `conn`, and into a shared store, as a
    /// fetch would. Returns its expiry.
    pub(crate) async fn publish_granted(
        &self,
        index: usize,
        conn: &Connection,
        acquired: crate::acquire::Acquired,
    ) -> Result<SystemTime, Error> {
        let provider = &self.providers.providers[index];
        let fetched = Fetched {
            renew_at: renew_at(provider, self.clock.now(), acquired.expires_at),
            access: acquired.access,
            obtained_by: Some(acquired.kind),
            expires_at: acquired.expires_at,
            api_base: acquired.api_base,
        };
        let expires_at = fetched.expires_at;
        self.publish_acquired(index, conn, fetched).await?;
        Ok(expires_at)
    }

    /// Puts a token fetched outside the cache's own fetches (a code
    /// exchange, a device grant) into the cache, and into a shared store
    /// (which also clears a failure backoff published before the consent):
    /// the next request, here or in another process, uses it.
    pub(crate) async fn publish_acquired(
        &self,
        index: usize,
        conn: &Connection,
        fetched: Fetched,
    ) -> Result<(), Error> {
        let provider = &self.providers.providers[index];
        let injection = crate::inject::render_shaped(
            &self.shapes[index],
            provider,
            conn,
            Some(&fetched.access),
        )?;
        self.publish_granted_shared(index, conn, &fetched).await;
        let entry = TokenEntry::new(
            conn.id_arc().clone(),
            injection,
            Some(fetched),
            connection_prefixes(provider, conn),
        );
        self.publish_token(index, conn, entry);
        Ok(())
    }

    /// Publishes `entry` as the token of `conn`; returns its credential.
    fn publish_token(&self, index: usize, conn: &Connection, entry: TokenEntry) -> Credential {
        let cached = Cached::new(Slot::Token(entry));
        self.caches[index].publish(conn.id_arc(), &cached);
        Credential::new(cached).unwrap_or_else(|_| unreachable!("a token"))
    }

    /// The backoff after failure number `n` (0-based), at least the
    /// endpoint's `Retry-After` (capped at the maximum backoff).
    pub(crate) fn failure_wait(&self, n: u32, error: &Error) -> Duration {
        let (base, max) = self.failure_backoff;
        let wait = backoff(base, max, n);
        match error.retry_after() {
            Some(after) => wait.max(after.min(max)),
            None => wait,
        }
    }
}

/// A code exchange's result.
pub(crate) struct Exchanged {
    pub(crate) expires_at: SystemTime,
    pub(crate) refresh_stored: bool,
    pub(crate) acquired: Fetched,
}

/// When to start renewing a token that expires at `expires_at`: the skew
/// (a share of the lifetime or a fixed lead), plus up to 10% jitter so that
/// many connections do not renew in lockstep, at least [`RENEW_FLOOR`] (or
/// half the lifetime), at most 90% of the lifetime.
pub(crate) fn renew_at(provider: &Provider, now: SystemTime, expires_at: SystemTime) -> SystemTime {
    let lifetime = expires_at.duration_since(now).unwrap_or_default();
    let lead = match provider.expiry.skew {
        Skew::Percent(p) => lifetime.mul_f64(f64::from(p) / 100.0),
        Skew::Fixed(d) => d,
    };
    // Saturating: no lifetime or skew, however large, may panic here (the
    // loader bounds both to 10 years; this is the second line).
    let jittered = lead.saturating_add(lead.mul_f64(fastrand::f64() * 0.1));
    let lead = jittered
        .max(RENEW_FLOOR.min(lifetime / 2))
        .min(lifetime.mul_f64(0.9));
    expires_at.checked_sub(lead).unwrap_or(now)
}
