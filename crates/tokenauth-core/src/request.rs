//! Per-request rules shared by the adapters (the reqwest middleware and the
//! tower layer), so that both behave exactly alike.
//!
//! - [`NoAuth`]: a request extension that sends one request without a
//!   credential.
//! - [`ProviderHandle::caller_authenticated`]: the caller already attached a
//!   credential; the adapter leaves the request alone.
//! - [`ProviderHandle::renews_on`]: the API rejected the credential; the
//!   adapter drops it, gets a new one and retries once.
//!
//! A [`Connection`](crate::Connection) in the request extensions selects the
//! connection; without one the provider's default connection (inputs from
//! environment variables) is used.

use http::HeaderMap;

use crate::cache::ProviderHandle;
use crate::config::{Inject, UnauthorizedAction};

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

impl ProviderHandle<'_> {
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
    /// log in). Adapters keep a copy of the request for the retry only then.
    pub fn renews(&self) -> bool {
        self.provider().on_unauthorized.action == UnauthorizedAction::Renew
    }

    /// True when a response with this status means "credential rejected,
    /// renew and retry once": the status is one of `on_unauthorized.status`
    /// (`[401]` by default) and the action is `renew`.
    pub fn renews_on(&self, status: u16) -> bool {
        self.renews() && self.provider().on_unauthorized.status.contains(&status)
    }
}
