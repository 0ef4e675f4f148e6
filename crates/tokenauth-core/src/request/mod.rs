//! The request sequence, written once for every adapter (the reqwest
//! middleware, the tower layer).
//!
//! An adapter hands a request to [`TokenAuth::exchange`], which decides
//! whether it gets a credential (routing, [`NoAuth`], a credential the
//! caller set) and binds the provider to that very request; then it runs
//! [`Exchange::send`] with its HTTP client behind the small [`Transport`]
//! trait: send a request, keep what the retry needs, turn core's error
//! into its own. Everything in between is here: the connection (a [`Connection`]
//! in the request extensions, else the provider's default connection from
//! environment variables), attaching the credential, the outdated-token and
//! renew-and-retry-once rules, and the redirect scope of clients that follow
//! redirects themselves ([`TokenAuth::may_follow_redirect`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tokenauth_core::request::Transport;
//! use tokenauth_core::{Error, Providers, TokenAuth};
//!
//! /// An HTTP client that answers 200 and shows what it was sent.
//! struct Echo;
//!
//! impl Transport for Echo {
//!     type Request = http::Request<String>;
//!     type Response = http::Response<String>;
//!     type Error = Error;
//!     /// What a retry needs of a request: here, the whole request.
//!     type Kept = Self::Request;
//!
//!     async fn send(&mut self, request: Self::Request) -> Result<Self::Response, Error> {
//!         let key = request.headers()["x-api-key"].to_str().unwrap_or_default().to_owned();
//!         Ok(http::Response::new(key))
//!     }
//!     // `None`: no retry after a rejected key (a retry would send the
//!     // request kept here, as `retry_request` rebuilds it).
//!     fn keep_for_retry(&self, request: &Self::Request, kept: &mut Option<Self::Kept>) {}
//!     fn retry_request(&self, kept: Self::Kept) -> Option<Self::Request> {
//!         Some(kept)
//!     }
//!     fn auth_error(&self, error: Error) -> Error {
//!         error
//!     }
//! }
//!
//! let providers = Providers::from_toml("providers.toml", r#"
//! [providers.example]
//! api = ["https://api.example.com/"]
//! inputs.key = { env = "EXAMPLE_API_KEY", default = "k-123" }
//! inject = { header = "X-Api-Key", value = "{{ inputs.key }}" }
//! "#)?;
//! let auth = TokenAuth::builder(providers).build()?;
//!
//! let request = http::Request::get("https://api.example.com/items").body(String::new())?;
//! let Ok(exchange) = auth.exchange(request, None, None) else { panic!("an API request") };
//! let response = exchange.send(&mut Echo).await?;
//! assert_eq!(response.body(), "k-123");
//!
//! // Outside every prefix: no exchange, the request comes back untouched.
//! let other = http::Request::get("https://example.com/").body(String::new())?;
//! assert!(auth.exchange(other, None, None).is_err());
//! # Ok(()) }
//! ```

mod exchange;
mod handle;
pub(crate) mod message;

pub use exchange::{Exchange, Transport};
pub use handle::ProviderHandle;
pub use message::{HttpRequest, HttpResponse, Origin};

use tracing::debug;
use url::Url;

use crate::cache::TokenAuth;
#[cfg(doc)]
use crate::connection::Connection;

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
    ///
    /// The request's connection is not known here, so a redirect from a URL
    /// that a prefix with placeholders could hold for *some* connection is
    /// never followed (handed back like a query credential's), and one into
    /// such a URL only from outside every prefix. A provider whose token
    /// reply binds the connection to one of its prefixes
    /// (`response.api_base`) follows a redirect only within one origin.
    pub fn may_follow_redirect(&self, from: &Url, to: &Url) -> bool {
        let (from_url, to_url) = (from, to);
        let inner = &self.inner;
        let templated_from: Vec<usize> = inner.router.could_route(from).collect();
        let templated_to: Vec<usize> = inner.router.could_route(to).collect();
        if !templated_from.is_empty() {
            // Which connection's prefix `from` lies in is not known here:
            // the 3xx goes back to the caller, who sends the `Location`
            // through the adapter again, with its connection.
            debug!("redirect from a prefix with placeholders; handed back");
            return false;
        }
        if !templated_to.is_empty() {
            let follow = inner.route_url(from, None).is_none();
            if !follow {
                debug!(
                    "redirect into a prefix with placeholders from a provider's prefix; not followed"
                );
            }
            return follow;
        }
        let Some(from) = inner.route_url(from, None) else {
            return true;
        };
        let id = &self.inner.provider_ids[from];
        if !self.inner.providers.providers[from].inject.query.is_empty() {
            debug!(
                provider = %id,
                "redirect from a query-credential provider; handed back"
            );
            return false;
        }
        let to = inner.route_url(to, None);
        // A connection bound to one of several prefixes by its token reply
        // (`response.api_base`) stays on that one's origin.
        let bound = self.inner.providers.providers[from]
            .response
            .api_base
            .is_some();
        let follow = to == Some(from) && (!bound || from_url.origin() == to_url.origin());
        if !follow {
            debug!(from = %id, to = ?to.map(|i| &self.inner.provider_ids[i]), "redirect leaves the provider's api prefixes; not followed");
        }
        follow
    }
}
