//! [`ProviderHandle`]: one provider of an engine, owned, with everything a
//! request needs from it (its credential, and what to do when the API
//! rejects it).

use std::sync::Arc;

use http::{HeaderMap, HeaderName, StatusCode};
use tracing::debug;

use crate::cache::stats::ProviderCounters;
use crate::cache::{Credential, Inner, TokenAuth};
use crate::config::{Provider, UnauthorizedAction};
use crate::connection::Connection;
use crate::error::Error;
use crate::template::Template;

/// One provider of a [`TokenAuth`] engine, as found by
/// [`TokenAuth::route`] or [`TokenAuth::provider`].
///
/// Owned and `'static`: cheap to clone (one `Arc`), so it can move into a
/// request's future.
#[derive(Clone)]
pub struct ProviderHandle {
    auth: TokenAuth,
    index: usize,
}

impl ProviderHandle {
    pub(crate) fn new(auth: TokenAuth, index: usize) -> Self {
        ProviderHandle { auth, index }
    }

    /// The provider's position in the engine.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The provider id.
    pub fn id(&self) -> &str {
        &self.provider().id
    }

    /// The provider's description.
    pub fn provider(&self) -> &Provider {
        &self.auth.inner.providers.providers[self.index]
    }

    /// The engine.
    pub fn auth(&self) -> &TokenAuth {
        &self.auth
    }

    /// The default connection (inputs from environment variables), built on
    /// first use; fails naming the input and variable that is missing.
    pub fn default_connection(&self) -> Result<&Connection, Error> {
        self.auth.inner.default_connection(self.index)
    }

    /// `connection`, or the default connection when it is `None`.
    #[inline]
    fn resolve<'c>(&'c self, connection: Option<&'c Connection>) -> Result<&'c Connection, Error> {
        self.auth.inner.connection(self.index, connection)
    }

    /// A valid credential for `connection` (`None`: the default connection).
    ///
    /// - A fresh cached token is returned at once (no lock held across an
    ///   await, no allocation).
    /// - Inside the renewal window the cached token is returned at once and
    ///   one background renewal is started; callers never wait for it.
    /// - Otherwise the token is fetched.
    ///
    /// # Concurrent calls
    ///
    /// Concurrent calls for the same connection share one fetch: one token
    /// request, and every caller gets its token or its error. The fetch runs
    /// in a spawned task, so a cancelled caller does not stall the others. A
    /// failed fetch is cached and backed off (exponentially, with jitter,
    /// honouring `Retry-After`): callers within the backoff get the same
    /// error without a new request.
    ///
    /// Static providers (no `[login]`) render the credential from the inputs,
    /// once.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn credential(&self, connection: Option<&Connection>) -> Result<Credential, Error> {
        let conn = self.resolve(connection)?;
        self.auth.inner.credential(self.index, conn).await
    }

    /// The cached credential of `connection`, if it holds a token that has
    /// not expired; never fetches.
    pub fn cached(&self, connection: Option<&Connection>) -> Option<Credential> {
        let conn = self.resolve(connection).ok()?;
        self.auth.inner.cached(self.index, conn)
    }

    /// Drops the cached token of `connection` if it is still the one
    /// `rejected` was made from, so that the next [`credential`] call fetches
    /// a new one. Returns whether it was dropped. A stored refresh token is
    /// kept, so the renewal uses it.
    ///
    /// # Concurrent calls
    ///
    /// Many requests rejected with the same token invalidate it once: the
    /// first call drops it; later calls (for the same or an already replaced
    /// token) change nothing. Together with single-flight fetching, 100
    /// concurrent 401s cause one renewal.
    ///
    /// [`credential`]: ProviderHandle::credential
    pub async fn invalidate(&self, connection: Option<&Connection>, rejected: &Credential) -> bool {
        self.resolve(connection)
            .is_ok_and(|conn| self.auth.inner.invalidate(self.index, conn, rejected))
    }

    /// Starts an authorization-code grant for `connection` (`None`: the
    /// default connection): the URL to send a person's browser to, with a
    /// fresh single-use `state` and PKCE challenge. The PKCE verifier stays
    /// in the engine (for [`PENDING_TTL`]) until
    /// [`complete_authorization`](Self::complete_authorization) uses it.
    ///
    /// `redirect_uri`: the redirect URI to ask for; `None`: the registered
    /// one, which must then have a port. A loopback URI registered without
    /// a port admits any port (RFC 8252 §7.3): pass the one you listen on.
    ///
    /// Fails with [`Error::Authorization`] when the provider has no
    /// `[authorize]` table or the redirect URI is not the registered one.
    ///
    /// [`PENDING_TTL`]: crate::authorize::PENDING_TTL
    pub fn authorization_request(
        &self,
        connection: Option<&Connection>,
        redirect_uri: Option<&url::Url>,
    ) -> Result<crate::AuthorizationRequest, Error> {
        let conn = self.resolve(connection)?;
        self.auth
            .inner
            .authorization_request(self.index, conn, redirect_uri)
    }

    /// Completes an authorization-code grant: `callback` is the URL the
    /// browser was redirected to (or the bare code), `state` the one
    /// [`authorization_request`](Self::authorization_request) returned. See
    /// [`crate::authorize`] for the checks. The code is exchanged, the
    /// refresh token stored in the engine's store, the access token cached.
    ///
    /// # Concurrent calls
    ///
    /// A state is spent by the first call that presents it, whatever the
    /// outcome: a second call with it fails with
    /// [`AuthorizationFailure::UnknownState`](crate::AuthorizationFailure::UnknownState),
    /// and never sends the code.
    pub async fn complete_authorization(
        &self,
        connection: Option<&Connection>,
        callback: &str,
        state: &str,
    ) -> Result<crate::Authorized, Error> {
        let conn = self.resolve(connection)?;
        self.auth
            .inner
            .complete_authorization(self.index, conn, callback, state)
            .await
    }

    /// What to do once the API answered `status` to a request sent with
    /// `credential`; see [`Inner::after_response`]. For the tests of the
    /// rule; adapters run it through [`Exchange::send`](super::Exchange::send).
    #[doc(hidden)]
    pub async fn after_response(
        &self,
        status: StatusCode,
        connection: Option<&Connection>,
        credential: &Credential,
        can_retry: bool,
    ) -> Result<Option<Credential>, Error> {
        let conn = self.resolve(connection)?;
        let inner = &self.auth.inner;
        inner
            .after_response(self.index, conn, status, credential, can_retry)
            .await
    }
}

/// The per-request rules that depend only on the description.
impl Provider {
    /// True when the request already carries the credential, set by the
    /// caller explicitly: every part of `[inject]` (each header, each query
    /// parameter; `query` is the raw query string, without `?`), or an
    /// `Authorization` header that the provider does not set itself. Such a
    /// request goes out as it is. When the caller set only some parts, the
    /// others are attached and the caller's are kept (see
    /// [`crate::inject`]).
    ///
    /// `query` is called only for a provider with query parts or a request
    /// with headers.
    #[inline]
    pub(crate) fn caller_authenticated<'q>(
        &self,
        headers: &HeaderMap,
        query: impl FnOnce() -> Option<&'q str>,
    ) -> bool {
        // The common case, answered inline before any header lookup: no
        // header (the HTTP client adds its defaults after the adapter) and
        // no query parameter that could be a part.
        if headers.is_empty() && self.inject.query.is_empty() {
            return false;
        }
        self.caller_set_parts(headers, query())
    }

    /// [`caller_authenticated`](Self::caller_authenticated) of a request
    /// with headers, or of a provider with query parts.
    fn caller_set_parts(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        let inject = &self.inject;
        if headers.is_empty() && query.is_none() {
            return false;
        }
        let authorization = headers.contains_key(http::header::AUTHORIZATION);
        if authorization && !inject.sets_header(&http::header::AUTHORIZATION) {
            return true;
        }
        let header_set = |name: &HeaderName, value: &Template| {
            if name == http::header::COOKIE {
                // Cookies: the caller's own cookies are not the credential;
                // it set the credential only if it set one of its cookies.
                let ours = |n: &str| {
                    crate::inject::cookie_names(value.source()).any(|m| m == n && !m.contains("{{"))
                };
                headers
                    .get_all(name)
                    .iter()
                    .any(|v| crate::inject::cookie_names(v.to_str().unwrap_or_default()).any(ours))
            } else {
                headers.contains_key(name)
            }
        };
        let any_part = inject.header.is_some()
            || inject.basic.is_some()
            || !inject.headers.is_empty()
            || !inject.query.is_empty();
        any_part
            && inject.header_templates().all(|(n, v)| header_set(n, v))
            && (inject.basic.is_none() || authorization)
            && inject
                .query
                .iter()
                .all(|(name, _)| crate::inject::query_has(query, name))
    }

    /// True when a rejected credential is renewed and the request retried
    /// (`on_unauthorized.action = "renew"`, the default for providers that
    /// log in).
    fn renews(&self) -> bool {
        self.on_unauthorized.action == UnauthorizedAction::Renew
    }

    /// True when a request may be sent a second time, so a copy of it is
    /// kept (taken before the credential is attached): the provider renews
    /// rejected credentials, or fetches tokens (whose rejection may only mean
    /// that the token was replaced while the request was in flight; see
    /// [`Inner::after_response`]).
    pub(crate) fn may_retry(&self) -> bool {
        self.renews() || self.fetches_tokens()
    }

    /// True for the statuses with which an API may reject a credential:
    /// `401`, `403` and the provider's `on_unauthorized.status`.
    #[inline]
    // A loop rather than `contains`: the list is one or two statuses, and
    // this runs on every response (`contains` is a call, ~24 instructions).
    #[allow(clippy::manual_contains)]
    pub(crate) fn rejection_like(&self, status: StatusCode) -> bool {
        let code = status.as_u16();
        matches!(code, 401 | 403) || self.on_unauthorized.status.iter().any(|&s| s == code)
    }

    /// True when a response with this status means "credential rejected,
    /// renew and retry once": the status is one of `on_unauthorized.status`
    /// (`[401]` by default) and the action is `renew`.
    fn renews_on(&self, status: StatusCode) -> bool {
        self.renews() && self.on_unauthorized.status.contains(&status.as_u16())
    }
}

/// The rejection rule, over the engine's per-connection state.
impl Inner {
    /// What to do once the API answered `status` to a request sent with
    /// `credential`: `Ok(Some(credential))` to send the request once more
    /// with that credential, `Ok(None)` to hand the response back. The one
    /// place this is decided, driven by the request sequence
    /// ([`Exchange::send`](super::Exchange::send)).
    ///
    /// - **Outdated credential.** A rejection-like status (`401`, `403` or
    ///   one of `on_unauthorized.status`) to a request whose token is no
    ///   longer the cached one (it was renewed while the request was in
    ///   flight; some servers revoke the old token the moment they issue the
    ///   new one): retry once with the current credential. Nothing is
    ///   invalidated and nothing is fetched. When the token is still the
    ///   cached one but its renewal is running (the server may have issued
    ///   the new token already), the renewal is waited for and its token used
    ///   the same way; so a rejection (also a genuine `403`) that arrives
    ///   during a renewal waits for it, which is bounded by the token
    ///   request's timeout and retries.
    /// - Not a rejection (not one of `on_unauthorized.status`, or the action
    ///   is not `renew`): hand the response back.
    /// - A rejection: the token is dropped (only if it is still the cached
    ///   one, so concurrent rejections cause one renewal). If the request
    ///   cannot be retried (`can_retry` false: a streaming or uncopyable
    ///   body), hand the response back. Otherwise a new credential is
    ///   fetched for the one retry, unless it is the same token (retrying
    ///   could only fail the same way).
    /// - The renewal failed: that error, for the caller instead of the 401.
    pub(crate) async fn after_response(
        self: &Arc<Self>,
        index: usize,
        conn: &Connection,
        status: StatusCode,
        credential: &Credential,
        can_retry: bool,
    ) -> Result<Option<Credential>, Error> {
        let provider = &self.providers.providers[index];
        if !provider.rejection_like(status) {
            return Ok(None);
        }
        self.metric(index, ProviderCounters::rejections);
        let code = status.as_u16();
        let replaced = || {
            self.cached(index, conn)
                .filter(|current| !current.same_token(credential))
        };
        if let Some(current) = replaced() {
            debug!(provider = %provider.id, status = code, rejected = %credential.token_id(), current = %current.token_id(), "rejected token was already replaced; retrying once with the current one");
            return Ok(can_retry.then_some(current));
        }
        if can_retry {
            // Its renewal may be running (the server may have issued the new
            // token already): wait for it. A fetch that ended between the
            // two looks published its token first, so look once more.
            let renewed = match self.in_flight(index, conn).await {
                Some(Ok(renewed)) => Some(renewed),
                Some(Err(_)) => None,
                None => replaced(),
            };
            if let Some(renewed) = renewed.filter(|r| !r.same_token(credential)) {
                debug!(provider = %provider.id, status = code, rejected = %credential.token_id(), current = %renewed.token_id(), "rejected token was being replaced; retrying once with the new one");
                return Ok(Some(renewed));
            }
        }
        if !provider.renews_on(status) {
            return Ok(None);
        }
        self.invalidate(index, conn, credential);
        if !can_retry {
            debug!(
                provider = %provider.id,
                status = code,
                "credential rejected; the request body cannot be copied, so it is not retried"
            );
            return Ok(None);
        }
        let renewed = self.credential(index, conn).await?;
        if renewed.same_token(credential) {
            return Ok(None);
        }
        debug!(provider = %provider.id, status = code, token = %renewed.token_id(), "credential rejected; renewed, retrying the request once");
        Ok(Some(renewed))
    }
}

impl std::fmt::Debug for ProviderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProviderHandle").field(&self.id()).finish()
    }
}
