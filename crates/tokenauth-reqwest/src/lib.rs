//! # tokenauth-reqwest
//!
//! A [`reqwest_middleware::Middleware`] that authenticates outgoing requests
//! for the providers of a [`TokenAuth`] engine (a `providers.toml`): one
//! `.with(...)` on the client builder.
//!
//! ```no_run
//! # use tokenauth_core::TokenAuth;
//! use tokenauth_reqwest::MiddlewareExt as _;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = TokenAuth::from_path("providers.toml")?.client()?;
//! # let _ = client; Ok(()) }
//! ```
//!
//! [`client`](MiddlewareExt::client) is a
//! [`ClientWithMiddleware`] over a `reqwest::Client` built with
//! [`scoped_to`](ClientBuilderExt::scoped_to). With a client of your own,
//! build it the same way and add the middleware:
//! `ClientBuilder::new(reqwest::Client::builder().scoped_to(&auth).build()?).with(auth.middleware())`
//! (see [Redirects](#redirects) for why).
//!
//! - [Example](#example)
//! - [What every request goes through](#what-every-request-goes-through)
//! - [Rejected credentials: retried once, never in a loop](#rejected-credentials-retried-once-never-in-a-loop)
//! - [In the reqwest middleware](#in-the-reqwest-middleware)
//! - [Errors](#errors)
//! - [Query credentials in URLs](#query-credentials-in-urls)
//! - [With reqwest-retry and reqwest-tracing](#with-reqwest-retry-and-reqwest-tracing)
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
#![doc = include_str!("../../../docs/adapters.md")]
//!
//! ## In the reqwest middleware
//!
//! The connection goes in with
//! [`RequestBuilder::with_extension`](reqwest_middleware::RequestBuilder::with_extension)
//! (`.with_extension(tenant)`, `.with_extension(NoAuth)`). For the retry, a
//! request is kept before it is sent: its method, URL, headers, version,
//! timeout and body (with [`reqwest::Request::try_clone`] for a body; a
//! request without a body or headers as its method, URL text, version and
//! timeout). A request with a streaming body (`reqwest::Body::wrap_stream`,
//! `reqwest::Body::wrap`) cannot be copied and is not retried.
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
//! ## Query credentials in URLs
//!
//! For providers with `inject.query`, the credential is part of the request
//! URL. The middleware removes it from every URL it hands back: the URL of a
//! `reqwest::Error` (so `Display`/`Debug` of a connection, timeout or
//! redirect error never show it) and [`Response::url`] (so
//! `error_for_status()` does not either). The other query parameters are
//! kept byte for byte.
//!
//! ## With reqwest-retry and reqwest-tracing
//!
//! Put this middleware **last** (innermost), after the retry and the
//! tracing middleware:
//!
//! ```text
//! ClientBuilder::new(http)
//!     .with(RetryTransientMiddleware::new_with_policy(policy)) // outermost
//!     .with(TracingMiddleware::default())                        // a span per attempt
//!     .with(auth.middleware())                                   // innermost
//!     .build()
//! ```
//!
//! Every attempt of reqwest-retry then gets its own span and the current
//! credential (an attempt after a renewal carries the new token), a `401`
//! is renewed and retried here, inside the one attempt reqwest-retry sees,
//! and the span records the URL before the credential is attached, so a
//! query key never reaches a span (or an OpenTelemetry exporter). The
//! workspace's `tests/stack.rs` runs exactly this stack against the
//! emulator.
//!
//! ## Redirects
//!
//! reqwest follows redirects inside the client, *below* the middleware: the
//! credential is attached once, to the URL the middleware saw, and the
//! redirected request is not routed again. What reqwest 0.13 does on its
//! own (verified by this workspace's integration tests):
//!
//! - On a redirect to another **scheme, host or port** it removes
//!   `Authorization` (and `Cookie`, `Proxy-Authorization`,
//!   `WWW-Authenticate`).
//! - It does **not** remove other headers: a custom inject header
//!   (`X-Api-Key`) goes to the redirect target; a redirect to the *same*
//!   origin but outside the provider's `api` path prefix keeps
//!   `Authorization`.
//! - It sends `Referer: <the previous URL>`, query included, so a **query
//!   credential** goes to the redirect target too (even over https).
//!
//! Build the client with [`ClientBuilderExt::scoped_to`] (what
//! [`MiddlewareExt::client`] does): it follows a redirect only while the
//! target stays inside the same provider's `api` prefixes (or when neither
//! hop belongs to a provider), otherwise stops and hands the `3xx` back to
//! the caller, and it sends no `Referer`. No credential then leaves its
//! provider's scope. Redirects from a query-credential provider always come
//! back (the next hop could not carry the key); see [`redirect_policy`].
//! `reqwest::redirect::Policy::none()` is the blunt alternative.
//!
//! A client built without it is caught after the fact: when a response
//! arrives from outside the provider's prefixes and the credential went
//! along (a custom header or query parameter anywhere, `Authorization` on
//! the same origin), the middleware withholds the response and returns
//! [`Error::RedirectLeftScope`](tokenauth_core::Error::RedirectLeftScope),
//! whose message says how to build the client. The credential has been sent
//! by then, and a round trip (API -> elsewhere -> back into the API) cannot
//! be seen at all, since reqwest keeps no redirect history: use `scoped_to`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_middleware::ClientBuilder;
//! use tokenauth_core::TokenAuth;
//! use tokenauth_reqwest::{ClientBuilderExt as _, MiddlewareExt as _};
//!
//! let auth = TokenAuth::from_path("providers.toml")?;
//! let http = reqwest::Client::builder().scoped_to(&auth).build()?;
//! let client = ClientBuilder::new(http).with(auth.middleware()).build();
//! # let _ = client; Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use tokenauth_core::Credential;
use tokenauth_core::request::Transport;

mod retry;
use retry::Kept;

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

/// Adds [`middleware`](MiddlewareExt::middleware) and
/// [`client`](MiddlewareExt::client) to [`TokenAuth`], so that
/// `ClientBuilder::new(client).with(auth.middleware())` reads naturally.
pub trait MiddlewareExt {
    /// A middleware sharing this engine (and its token cache).
    fn middleware(&self) -> AuthMiddleware;

    /// A ready client: a `reqwest::Client` built with
    /// [`scoped_to`](ClientBuilderExt::scoped_to) (redirects never carry a
    /// credential out of its provider, no `Referer`) wrapped with
    /// [`middleware`](MiddlewareExt::middleware). Fails only if reqwest
    /// cannot initialise its TLS backend.
    fn client(&self) -> Result<ClientWithMiddleware, reqwest::Error>;
}

impl MiddlewareExt for TokenAuth {
    fn middleware(&self) -> AuthMiddleware {
        AuthMiddleware::new(self.clone())
    }

    fn client(&self) -> Result<ClientWithMiddleware, reqwest::Error> {
        let http = reqwest::Client::builder().scoped_to(self).build()?;
        Ok(reqwest_middleware::ClientBuilder::new(http)
            .with(self.middleware())
            .build())
    }
}

/// Makes a `reqwest::ClientBuilder` safe for credentials:
/// [`scoped_to`](ClientBuilderExt::scoped_to).
pub trait ClientBuilderExt {
    /// Redirects follow [`redirect_policy`] (never out of a provider's `api`
    /// prefixes: the `3xx` comes back instead) and no `Referer` header is
    /// sent on a redirect (reqwest's default sends the previous URL, query
    /// credential included). Use it for every client that carries this
    /// engine's middleware; the other settings of the builder are kept.
    fn scoped_to(self, auth: &TokenAuth) -> Self;
}

impl ClientBuilderExt for reqwest::ClientBuilder {
    fn scoped_to(self, auth: &TokenAuth) -> Self {
        self.redirect(redirect_policy(auth)).referer(false)
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
/// A redirect from a provider with a **query credential** (`inject.query`)
/// is never followed: the next URL comes from `Location`, without the key,
/// so following it could only end in a rejection (and a needless renewal).
/// The `3xx` comes back; send its `Location` through the same client and the
/// middleware attaches the key afresh.
///
/// [`ClientBuilderExt::scoped_to`] sets it (and turns `Referer` off); prefer
/// that. It matters for providers whose credential is a custom header
/// (`X-Api-Key`), which reqwest keeps on cross-origin redirects, for query
/// credentials, which reqwest's `Referer` carries along, and for same-origin
/// redirects that leave the `api` path prefix, where reqwest keeps
/// `Authorization`.
pub fn redirect_policy(auth: &TokenAuth) -> reqwest::redirect::Policy {
    const MAX_REDIRECTS: usize = 10;
    let auth = auth.clone();
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let follow = attempt
            .previous()
            .last()
            .is_none_or(|from| auth.may_follow_redirect(from, attempt.url()));
        if follow {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// The rest of the middleware chain and the client, as core's request
/// sequence sends through it.
struct Downstream<'a> {
    next: Next<'a>,
    extensions: &'a mut Extensions,
}

impl Transport for Downstream<'_> {
    type Request = Request;
    type Response = Response;
    type Error = reqwest_middleware::Error;
    type Kept = Kept;

    fn send(
        &mut self,
        request: Request,
    ) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send {
        self.next.clone().run(request, self.extensions)
    }

    fn keep_for_retry(&self, request: &Request, kept: &mut Option<Kept>) {
        Kept::keep(request, kept);
    }

    fn retry_request(&self, kept: Kept) -> Option<Request> {
        kept.into_request()
    }

    fn kept_url<'k>(&self, kept: &'k Kept) -> Option<&'k [u8]> {
        Some(kept.url())
    }

    fn auth_error(&self, error: tokenauth_core::Error) -> reqwest_middleware::Error {
        reqwest_middleware::Error::middleware(error)
    }

    /// A reqwest error shows the request URL: without a query credential.
    fn redact_error(
        &self,
        error: reqwest_middleware::Error,
        credential: &Credential,
    ) -> reqwest_middleware::Error {
        match error {
            reqwest_middleware::Error::Reqwest(e) => {
                reqwest_middleware::Error::Reqwest(credential.redact_error(e))
            }
            other => other,
        }
    }
}

/// Written out rather than with `#[async_trait]`: the macro would box a
/// future holding the request and, inside it, the exchange's future holding
/// it again (about 2.9 KB per request, copied on every move and too big for
/// the allocator's fast path). Here the request is routed before anything
/// is boxed, and the box holds exactly the exchange's future, or reqwest's
/// own for a request that gets no credential.
impl Middleware for AuthMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let sent = self
            .auth
            .send_boxed_with_extensions(req, extensions, None, |extensions| Downstream {
                next: next.clone(),
                extensions,
            });
        match sent {
            Ok(future) => future,
            Err((req, extensions)) => next.run(req, extensions),
        }
    }
}

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
