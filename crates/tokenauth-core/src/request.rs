//! Per-request rules shared by the adapters (the reqwest middleware and the
//! tower layer), so that both behave exactly alike.
//!
//! - [`NoAuth`]: a request extension that sends one request without a
//!   credential.
//! - [`ProviderHandle::caller_authenticated`]: the caller already attached a
//!   credential; the adapter leaves the request alone.
//! - [`ProviderHandle::after_response`]: the API rejected the credential;
//!   the adapter retries once with the credential core hands back (the
//!   current one when the rejected one was already replaced, else a renewed
//!   one).
//!
//! A [`Connection`] in the request extensions selects the
//! connection; without one the provider's default connection (inputs from
//! environment variables) is used.

use http::HeaderMap;
use tracing::{debug, warn};
use url::Url;

use crate::cache::{Credential, ProviderHandle, TokenAuth};
use crate::config::{Inject, UnauthorizedAction};
use crate::connection::Connection;
use crate::error::Error;
use crate::inject::Injection;

/// A request extension: send this request without a credential, even if its
/// URL lies inside a provider's `api` prefix.
///
/// ```
/// use tokenauth_core::NoAuth;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(NoAuth);
/// assert!(request.extensions().get::<NoAuth>().is_some());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoAuth;

impl TokenAuth {
    /// Whether an HTTP client that follows redirects itself (below the
    /// adapter, as reqwest does) may follow one from `from` to `to` without
    /// carrying a credential out of its provider's scope: `to` routes to the
    /// same provider as `from`, or `from` routes to none. A redirect from a
    /// provider with a query credential is never followed: the next URL
    /// comes from `Location`, without the key, so following it could only
    /// end in a rejection (and a needless renewal); the `3xx` goes back to
    /// the caller, who sends the `Location` through the adapter again.
    pub fn may_follow_redirect(&self, from: &Url, to: &Url) -> bool {
        let Some(from) = self.route(from) else {
            return true;
        };
        if matches!(from.provider().inject, Inject::Query { .. }) {
            debug!(
                provider = from.id(),
                "redirect from a query-credential provider; handed back"
            );
            return false;
        }
        let to = self.route(to);
        let follow = to.is_some_and(|to| to.id() == from.id());
        if !follow {
            debug!(from = from.id(), to = ?to.map(|p| p.id()), "redirect leaves the provider's api prefixes; not followed");
        }
        follow
    }
}

impl ProviderHandle<'_> {
    /// Checks where the response to a request that carried `credential`
    /// came from, for an HTTP client that followed redirects on its own: a
    /// `url` outside this provider's prefixes means the credential may have
    /// gone there too (a custom header or a query parameter, which reqwest
    /// copies into `Referer`, anywhere; `Authorization` on the same origin,
    /// since reqwest, like browsers and curl, drops it for another origin).
    /// Then [`Error::RedirectLeftScope`], whose message says how to build
    /// the client; a client that follows
    /// [`may_follow_redirect`](TokenAuth::may_follow_redirect) never gets
    /// here.
    pub fn check_response_url(&self, credential: &Credential, url: &Url) -> Result<(), Error> {
        let auth = self.auth();
        if auth.route(url).is_some_and(|p| p.id() == self.id()) {
            return Ok(());
        }
        let carried = match credential.injection() {
            Injection::Header { name, .. } if name == http::header::AUTHORIZATION => auth
                .inner
                .router
                .shares_origin(self.index(), url)
                .then(|| "the Authorization header".to_owned()),
            Injection::Header { name, .. } => Some(format!("the `{name}` header")),
            Injection::Query { name, .. } => Some(format!(
                "the query parameter `{name}`, which reqwest copies into the Referer header of the next hop"
            )),
        };
        let Some(credential) = carried else {
            return Ok(());
        };
        let to = url.origin().ascii_serialization();
        warn!(provider = self.id(), to = %to, "a redirect took the credential out of the provider's api prefixes; the response is withheld");
        Err(Error::RedirectLeftScope {
            provider: self.id().to_owned(),
            to,
            credential,
        })
    }

    /// True when the request already carries a credential the caller set
    /// explicitly: an `Authorization` header, the provider's `inject` header
    /// (e.g. `X-Api-Key`), or, for `inject.query`, its query parameter.
    /// Adapters then send the request as it is: an explicit credential is
    /// never overwritten.
    ///
    /// `query` is the raw query string of the request URL (without `?`).
    pub fn caller_authenticated(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        if headers.contains_key(http::header::AUTHORIZATION) {
            return true;
        }
        match &self.provider().inject {
            Inject::Header { name, .. } => headers.contains_key(name),
            Inject::Basic(_) => false,
            Inject::Query { name, .. } => query.is_some_and(|q| {
                url::form_urlencoded::parse(q.as_bytes()).any(|(n, _)| n == name.as_str())
            }),
        }
    }

    /// True when a rejected credential is renewed and the request retried
    /// (`on_unauthorized.action = "renew"`, the default for providers that
    /// log in).
    pub fn renews(&self) -> bool {
        self.provider().on_unauthorized.action == UnauthorizedAction::Renew
    }

    /// True when a request may be sent a second time, so the adapter keeps a
    /// copy of it (taken before the credential is attached): the provider
    /// renews rejected credentials, or fetches tokens (whose rejection may
    /// only mean that the token was replaced while the request was in
    /// flight; see [`after_response`](Self::after_response)).
    pub fn may_retry(&self) -> bool {
        self.renews() || self.provider().fetches_tokens()
    }

    /// True for the statuses with which an API may reject a credential:
    /// `401`, `403` and the provider's `on_unauthorized.status`.
    fn rejection_like(&self, status: u16) -> bool {
        matches!(status, 401 | 403) || self.provider().on_unauthorized.status.contains(&status)
    }

    /// True when a response with this status means "credential rejected,
    /// renew and retry once": the status is one of `on_unauthorized.status`
    /// (`[401]` by default) and the action is `renew`.
    pub fn renews_on(&self, status: u16) -> bool {
        self.renews() && self.provider().on_unauthorized.status.contains(&status)
    }

    /// What to do once the API answered `status` to a request sent with
    /// `credential`; the one place both adapters take this decision.
    ///
    /// - **Outdated credential.** A rejection-like status (`401`, `403` or
    ///   one of `on_unauthorized.status`) to a request whose token is no
    ///   longer the cached one (it was renewed while the request was in
    ///   flight; some servers revoke the old token the moment they issue the
    ///   new one): `Ok(Some(current))`, retry once with the current
    ///   credential. Nothing is invalidated and nothing is fetched. When the
    ///   token is still the cached one but its renewal is running (the
    ///   server may have issued the new token already), the renewal is
    ///   waited for and its token used the same way; so a rejection (also a
    ///   genuine `403`) that arrives during a renewal waits for it, which
    ///   is bounded by the token request's timeout and retries.
    /// - Not a rejection ([`renews_on`](Self::renews_on) is false):
    ///   `Ok(None)`, return the response.
    /// - A rejection: the token is dropped (only if it is still the cached
    ///   one, so concurrent rejections cause one renewal). If the request
    ///   cannot be retried (`can_retry` false: a streaming or uncopyable
    ///   body), `Ok(None)`. Otherwise a new credential is fetched and
    ///   returned as `Ok(Some(renewed))` for the one retry, unless it is the
    ///   same token (then `Ok(None)`: retrying could only fail the same way).
    /// - The renewal failed: that error, for the caller instead of the 401.
    pub async fn after_response(
        &self,
        status: u16,
        connection: Option<&Connection>,
        credential: &Credential,
        can_retry: bool,
    ) -> Result<Option<Credential>, Error> {
        if !self.rejection_like(status) {
            return Ok(None);
        }
        self.auth().inner.metric(
            self.index(),
            crate::cache::stats::ProviderMetrics::rejections,
        );
        let replaced = || {
            self.cached(connection)
                .filter(|current| current.token_id() != credential.token_id())
        };
        if let Some(current) = replaced() {
            debug!(provider = self.id(), status, rejected = %credential.token_id(), current = %current.token_id(), "rejected token was already replaced; retrying once with the current one");
            return Ok(can_retry.then_some(current));
        }
        if can_retry {
            // Its renewal may be running (the server may have issued the new
            // token already): wait for it. A fetch that ended between the
            // two looks published its token first, so look once more.
            let renewed = match self.in_flight(connection).await {
                Some(Ok(renewed)) => Some(renewed),
                Some(Err(_)) => None,
                None => replaced(),
            };
            if let Some(renewed) = renewed.filter(|r| r.token_id() != credential.token_id()) {
                debug!(provider = self.id(), status, rejected = %credential.token_id(), current = %renewed.token_id(), "rejected token was being replaced; retrying once with the new one");
                return Ok(Some(renewed));
            }
        }
        if !self.renews_on(status) {
            return Ok(None);
        }
        self.invalidate(connection, credential).await;
        if !can_retry {
            debug!(
                provider = self.id(),
                status,
                "credential rejected; the request body cannot be copied, so it is not retried"
            );
            return Ok(None);
        }
        let renewed = self.credential(connection).await?;
        if renewed.token_id() == credential.token_id() {
            return Ok(None);
        }
        debug!(provider = self.id(), status, token = %renewed.token_id(), "credential rejected; renewed, retrying the request once");
        Ok(Some(renewed))
    }
}
