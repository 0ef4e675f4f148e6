//! # tokenauth-reqwest
//!
//! A [`reqwest_middleware::Middleware`] that authenticates outgoing requests
//! for the providers of a [`TokenAuth`] engine (a `providers.toml`): one
//! `.with(...)` on the client builder.
//!
//! ```no_run
//! # use reqwest_middleware::ClientBuilder;
//! # use tokenauth_core::TokenAuth;
//! use tokenauth_reqwest::MiddlewareExt as _;
//! # fn main() -> Result<(), tokenauth_core::Error> {
//! let client = ClientBuilder::new(reqwest::Client::new()).with(TokenAuth::from_path("providers.toml")?.middleware()).build();
//! # let _ = client; Ok(()) }
//! ```
//!
//! - [Example](#example)
//! - [What the middleware does](#what-the-middleware-does)
//! - [Connections](#connections)
//! - [Opting out](#opting-out)
//! - [Rejected credentials: renew and retry once](#rejected-credentials-renew-and-retry-once)
//! - [Errors](#errors)
//! - [Redirects](#redirects)
//!
//! ## Example
//!
//! Against the emulated providers (the hidden lines start the emulator and
//! point the HTTP clients at it; with the real providers a plain
//! `reqwest::Client::new()` and `TokenAuth::from_path` are all it takes):
//!
//! ```
//! # use tokenauth_emulator::{Emulator, EmulatorConfig, REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let emulator = Emulator::start(EmulatorConfig::default().tls(true)).await?;
//! # let builder = || emulator.reqwest_client_builder().unwrap();
//! # let providers = tokenauth_core::Providers::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../providers.toml"))?;
//! # let auth = TokenAuth::builder(providers).http_client_builder(builder()).build()?;
//! # let http_client = builder().build()?;
//! use reqwest_middleware::ClientBuilder;
//! use tokenauth_core::{Connection, TokenAuth};
//! use tokenauth_reqwest::MiddlewareExt as _;
//!
//! let client = ClientBuilder::new(http_client).with(auth.middleware()).build();
//!
//! // One tenant's credentials; without this extension the default
//! // connection reads REOBTIMAAL_USERNAME and REOBTIMAAL_PASSWORD.
//! let tenant = Connection::new("tenant-a")
//!     .with_input("username", REOB_DEMO_USERNAME)
//!     .with_secret("password", REOB_DEMO_PASSWORD);
//! for _ in 0..3 {
//!     let reply = client
//!         .get("https://api.reobtimaal-diensten.nl/api/v1/projecten")
//!         .with_extension(tenant.clone())
//!         .send()
//!         .await?;
//!     assert_eq!(reply.status(), 200);
//! }
//! // One login for all three requests.
//! assert_eq!(emulator.stats().reobtimaal.token.requests, 1);
//! # Ok(()) }
//! ```
//!
//! ## What the middleware does
//!
//! For each request, in this order (every decision is a call into
//! [`tokenauth_core`]):
//!
//! 1. A request with the [`NoAuth`] extension is sent as it is.
//! 2. **Routing.** The URL is matched against every provider's `api`
//!    prefixes (scheme, host, port, and the path at a segment boundary; the
//!    longest prefix wins, see [`tokenauth_core::route`]). A request that
//!    matches none is sent untouched: a credential is never attached to a URL
//!    outside its provider's prefixes.
//! 3. **Explicit credentials win.** A request that already carries an
//!    `Authorization` header, the provider's inject header (e.g.
//!    `X-Api-Key`), or for `inject.query` providers its query parameter, is
//!    sent as the caller built it: the middleware never overwrites a
//!    credential the caller set (and does not renew or retry it either).
//! 4. **Credential.** The engine hands out the cached credential for
//!    (provider, connection), fetching it first if needed; concurrent
//!    requests share one token request.
//! 5. It is attached (a sensitive header, or the query parameter) and the
//!    request is sent.
//!
//! ## Connections
//!
//! A [`Connection`] in the request extensions
//! ([`RequestBuilder::with_extension`](reqwest_middleware::RequestBuilder::with_extension))
//! selects the set of inputs (credentials) for that request; tokens are
//! cached per (provider, connection id). Without one, the provider's default
//! connection is used, whose inputs come from the environment variables the
//! description names; if one is missing, the request fails with
//! [`Error::MissingInput`](tokenauth_core::Error::MissingInput), whose
//! message names the variable to set.
//!
//! ## Opting out
//!
//! `.with_extension(NoAuth)` sends one request without a credential, even
//! inside a provider's prefix.
//!
//! ## Rejected credentials: renew and retry once
//!
//! When the API answers with one of the provider's `on_unauthorized.status`
//! codes (`401` by default) and the action is `renew` (the default for
//! providers that log in), the middleware
//!
//! 1. invalidates the rejected token (only if it is still the cached one, so
//!    many concurrent 401s cause one renewal),
//! 2. gets a new credential, and
//! 3. sends the request **once** more with it, if the request could be
//!    cloned ([`reqwest::Request::try_clone`]; the copy is taken before the
//!    first attempt). The retry's response is returned whatever its status:
//!    there is never a second retry.
//!
//! A request with a streaming body (`reqwest::Body::wrap_stream`) cannot be
//! cloned: it is **not retried**, and the rejected response is returned as
//! it is (the token is still invalidated, so the next request gets a new
//! one). If getting the new credential fails, that error is returned instead
//! of the rejected response. Providers with `action = "fail"` (BRO, whose
//! credential cannot be renewed) get their rejected responses unchanged.
//!
//! ## Errors
//!
//! reqwest-middleware wraps every middleware error in
//! [`reqwest_middleware::Error::Middleware`] (an [`anyhow::Error`]). The
//! typed [`tokenauth_core::Error`] is inside; [`auth_error`] gets it back
//! (it is `downcast_ref` on the `anyhow::Error`):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_middleware::ClientBuilder;
//! use tokenauth_core::{Connection, Providers, TokenAuth};
//! use tokenauth_reqwest::{MiddlewareExt as _, auth_error};
//!
//! let providers = Providers::from_toml("providers.toml", r#"
//! [providers.example]
//! api = ["https://api.example.com/"]
//! inputs.key = { env = "EXAMPLE_API_KEY" }
//! inject = { header = "X-Api-Key", value = "{{ inputs.key }}" }
//! "#)?;
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(TokenAuth::builder(providers).build()?.middleware())
//!     .build();
//!
//! // This connection lacks the `key` input: no request is sent.
//! let err = client
//!     .get("https://api.example.com/items")
//!     .with_extension(Connection::new("incomplete"))
//!     .send()
//!     .await
//!     .unwrap_err();
//! let typed = auth_error(&err).expect("a tokenauth error");
//! assert!(matches!(typed, tokenauth_core::Error::MissingInput { input, .. } if input == "key"));
//!
//! // The same by hand:
//! if let reqwest_middleware::Error::Middleware(e) = &err {
//!     assert!(e.downcast_ref::<tokenauth_core::Error>().is_some());
//! }
//! # Ok(()) }
//! ```
//!
//! ## Redirects
//!
//! reqwest follows redirects inside the client, *below* the middleware: the
//! credential is attached once, to the URL the middleware saw, and the
//! redirected request is not routed again. What reqwest 0.13 does to it
//! (verified by this workspace's integration tests against a loopback
//! redirect to another port):
//!
//! - On a redirect to another **scheme, host or port** it removes
//!   `Authorization` (and `Cookie`, `Proxy-Authorization`,
//!   `WWW-Authenticate`). So the header credentials of providers that inject
//!   `Authorization` (bearer tokens, HTTP Basic) never follow a redirect to
//!   another origin. A query credential is not carried either: the new URL
//!   is the `Location`.
//! - It does **not** remove other headers: a provider that injects a custom
//!   header (`X-Api-Key`) would send it to the redirect target; and a
//!   redirect to the *same* origin but outside the provider's `api` path
//!   prefix keeps `Authorization`.
//!
//! To close both cases, build the client with [`redirect_policy`]: it
//! follows a redirect only while the target stays inside the same provider's
//! `api` prefixes (or when neither hop belongs to a provider), and otherwise
//! stops and hands the `3xx` back to the caller, so no credential is carried
//! out of its provider's scope. `reqwest::redirect::Policy::none()` is the
//! blunt alternative.
//!
//! ```no_run
//! # fn main() -> Result<(), tokenauth_core::Error> {
//! use reqwest_middleware::ClientBuilder;
//! use tokenauth_core::TokenAuth;
//! use tokenauth_reqwest::{MiddlewareExt as _, redirect_policy};
//!
//! let auth = TokenAuth::from_path("providers.toml")?;
//! let http = reqwest::Client::builder().redirect(redirect_policy(&auth)).build().expect("client");
//! let client = ClientBuilder::new(http).with(auth.middleware()).build();
//! # let _ = client; Ok(()) }
//! ```

use async_trait::async_trait;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tracing::debug;

pub use tokenauth_core::{Connection, NoAuth, TokenAuth};

/// The middleware: attaches the credential of the provider a request's URL
/// belongs to. Build it with [`AuthMiddleware::new`] or
/// [`MiddlewareExt::middleware`]; see the [crate documentation](crate).
///
/// Cheap to clone; clones share the engine and its cache.
#[derive(Clone, Debug)]
pub struct AuthMiddleware {
    auth: TokenAuth,
}

impl AuthMiddleware {
    /// A middleware over `auth`.
    pub fn new(auth: TokenAuth) -> Self {
        AuthMiddleware { auth }
    }

    /// The engine.
    pub fn auth(&self) -> &TokenAuth {
        &self.auth
    }
}

/// Adds [`middleware`](MiddlewareExt::middleware) to [`TokenAuth`], so that
/// `ClientBuilder::new(client).with(auth.middleware())` reads naturally.
pub trait MiddlewareExt {
    /// A middleware sharing this engine (and its token cache).
    fn middleware(&self) -> AuthMiddleware;
}

impl MiddlewareExt for TokenAuth {
    fn middleware(&self) -> AuthMiddleware {
        AuthMiddleware::new(self.clone())
    }
}

/// The [`tokenauth_core::Error`] inside a reqwest-middleware error, if the
/// request failed because no credential could be had (it is
/// [`downcast_ref`](anyhow::Error::downcast_ref) on
/// [`reqwest_middleware::Error::Middleware`]). `None` for transport errors
/// and errors of other middleware.
pub fn auth_error(error: &reqwest_middleware::Error) -> Option<&tokenauth_core::Error> {
    match error {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

/// A redirect policy that never carries a credential out of its provider's
/// scope: a redirect is followed only when the target URL routes to the same
/// provider as the URL that answered with it (or neither routes to any
/// provider); otherwise the `3xx` is returned to the caller. At most 10
/// redirects are followed, like reqwest's default.
///
/// Use it for providers whose credential is a custom header (`X-Api-Key`),
/// which reqwest keeps on cross-origin redirects, and for same-origin
/// redirects that leave the `api` path prefix, where reqwest keeps
/// `Authorization`.
pub fn redirect_policy(auth: &TokenAuth) -> reqwest::redirect::Policy {
    const MAX_REDIRECTS: usize = 10;
    let auth = auth.clone();
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let provider_of = |url: &reqwest::Url| auth.route(url).map(|p| p.id().to_owned());
        let from = attempt.previous().last().and_then(provider_of);
        let to = provider_of(attempt.url());
        if from.is_some() && from != to {
            debug!(from = ?from, to = ?to, "redirect leaves the provider's api prefixes; not followed");
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

fn attach(credential: &tokenauth_core::Credential, request: &mut Request) {
    if !credential.apply_to_headers(request.headers_mut()) {
        credential.apply_to_url(request.url_mut());
    }
}

#[async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if extensions.get::<NoAuth>().is_some() {
            return next.run(req, extensions).await;
        }
        let Some(provider) = self.auth.route(req.url()) else {
            return next.run(req, extensions).await;
        };
        if provider.caller_authenticated(req.headers(), req.url().query()) {
            return next.run(req, extensions).await;
        }
        let connection = extensions.get::<Connection>().cloned();
        let credential = provider
            .credential(connection.as_ref())
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        // The copy for a retry is taken before the credential is attached.
        let retry = if provider.renews() {
            req.try_clone()
        } else {
            None
        };
        attach(&credential, &mut req);
        let response = next.clone().run(req, extensions).await?;
        let renewed = provider
            .after_response(
                response.status().as_u16(),
                connection.as_ref(),
                &credential,
                retry.is_some(),
            )
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let (Some(renewed), Some(mut retry)) = (renewed, retry) else {
            return Ok(response);
        };
        drop(response);
        attach(&renewed, &mut retry);
        next.run(retry, extensions).await
    }
}

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
