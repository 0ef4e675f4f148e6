//! # tokenauth-tower
//!
//! A tower [`Layer`](tower_layer::Layer) that authenticates
//! `http::Request<B>` for the providers of a [`TokenAuth`] engine (a
//! `providers.toml`): one `.layer(...)` on a hyper-util client, a tonic
//! `Channel`, or any `Service<http::Request<B>>`.
//!
//! - [Example](#example)
//! - [What the layer does](#what-the-layer-does)
//! - [Connections and opting out](#connections-and-opting-out)
//! - [Rejected credentials: renew and retry once](#rejected-credentials-renew-and-retry-once)
//! - [Errors](#errors)
//! - [tonic](#tonic)
//! - [Redirects](#redirects)
//! - [Readiness](#readiness)
//!
//! ## Example
//!
//! A hyper-util client against the emulated REOBtimaal API (the hidden lines
//! start the emulator and describe it on its loopback address):
//!
//! ```
//! # use tokenauth_emulator::{Emulator, EmulatorConfig, Host, REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let emulator = Emulator::start(EmulatorConfig::default()).await?;
//! # let toml = format!(r#"
//! # [providers.reobtimaal]
//! # api = ["{api}"]
//! # inputs.username = {{ env = "REOBTIMAAL_USERNAME" }}
//! # inputs.password = {{ env = "REOBTIMAAL_PASSWORD", secret = true }}
//! # login = {{ url = "{login}", body = "form", fields = {{ "grant-type" = "password", username = "{{{{ inputs.username }}}}", Password = "{{{{ inputs.password }}}}" }} }}
//! # response.access_token = "/access_token"
//! # expiry.ttl = "60m"
//! # inject = {{ header = "Authorization", value = "bearer {{{{ token.access }}}}" }}
//! # "#, api = emulator.url(Host::Reobtimaal, "/api/"), login = emulator.url(Host::Reobtimaal, "/api/Token"));
//! # let auth = TokenAuth::builder(tokenauth_core::Providers::from_toml("providers.toml", &toml)?).build()?;
//! # let projects = emulator.url(Host::Reobtimaal, "/api/v1/projecten");
//! use http_body_util::Empty;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tokenauth_core::{Connection, TokenAuth};
//! use tokenauth_tower::LayerExt as _;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
//! let mut service = ServiceBuilder::new().layer(auth.layer()).service(client);
//!
//! let tenant = Connection::new("tenant-a")
//!     .with_input("username", REOB_DEMO_USERNAME)
//!     .with_secret("password", REOB_DEMO_PASSWORD);
//! for _ in 0..3 {
//!     let mut request = http::Request::get(&projects).body(Empty::new())?;
//!     request.extensions_mut().insert(tenant.clone());
//!     let response = service.ready().await?.call(request).await?;
//!     assert_eq!(response.status(), 200);
//! }
//! // One login for all three requests.
//! assert_eq!(emulator.stats().reobtimaal.token.requests, 1);
//! # Ok(()) }
//! ```
//!
//! ## What the layer does
//!
//! For each request, in this order (every decision is a call into
//! [`tokenauth_core`]; the same rules as the reqwest middleware):
//!
//! 1. A request with the [`NoAuth`] extension is passed on as it is.
//! 2. **Routing.** The URI is matched against every provider's `api`
//!    prefixes (scheme, host, port, and the path at a segment boundary; the
//!    longest prefix wins, see [`tokenauth_core::route`]). The path is
//!    routed as a server resolves it, exactly like the reqwest middleware's
//!    parsed URLs: `/a/../b/x` and `/a/%2e%2e/b/x` are routed as `/b/x`, and
//!    a path whose route would change if the server decoded an encoded slash
//!    (`/a/..%2Fb/x`) gets no credential. A request that matches none is
//!    passed on untouched: a credential is never attached to a URI outside
//!    its provider's prefixes. A path-only URI is routed with the layer's
//!    [`origin`](AuthLayer::origin), if set, else it matches nothing.
//! 3. **Explicit credentials win.** A request that already carries an
//!    `Authorization` header, the provider's inject header (e.g.
//!    `X-Api-Key`), or for `inject.query` providers its query parameter, is
//!    passed on as the caller built it: the layer never overwrites a
//!    credential the caller set (and does not renew or retry it either).
//! 4. **Credential.** The engine hands out the cached credential for
//!    (provider, connection), fetching it first if needed; concurrent
//!    requests share one token request.
//! 5. It is attached (a sensitive header, or the query parameter) and the
//!    inner service is called.
//!
//! ## Connections and opting out
//!
//! A [`Connection`] in the request's [`http::Extensions`] selects the set of
//! inputs (credentials) for that request; tokens are cached per (provider,
//! connection id). Without one, the provider's default connection is used,
//! whose inputs come from the environment variables the description names;
//! if one is missing, the call fails with
//! [`AuthError::Auth`]`(`[`Error::MissingInput`](tokenauth_core::Error::MissingInput)`)`,
//! whose message names the variable to set. The [`NoAuth`] extension sends
//! one request without a credential.
//!
//! ## Rejected credentials: renew and retry once
//!
//! When the response status is `401`, `403` or one of the provider's
//! `on_unauthorized.status` codes and the request's token is **no longer the
//! cached one** (it was renewed while the request was in flight; some
//! servers revoke the old token the moment they issue the new one), the
//! layer calls the inner service once more with the current token; nothing
//! is invalidated or fetched.
//!
//! Otherwise, when the response status is one of the provider's
//! `on_unauthorized.status` codes (`401` by default) and the action is
//! `renew` (the default for providers that log in), the layer invalidates
//! the rejected token (only if it is still the cached one, so many
//! concurrent 401s cause one renewal), gets a new credential and calls the
//! inner service **once** more, after driving it to readiness. The retry's
//! response is returned whatever its status: there is never a second retry.
//! If getting the new credential fails, that error is returned.
//!
//! A retry needs a second copy of the request, taken before the first call,
//! and an `http::Request<B>` can only be copied if its body can. The choice
//! is the layer's [`CloneBody`] policy, so that the service stays generic
//! over every body type (no `B: Clone` bound, which a streaming body could
//! not meet):
//!
//! - [`CommonBodies`] (the default) copies the in-memory bodies:
//!   `Full<Bytes>`, `Empty<Bytes>`, `Bytes`, `String`, `Vec<u8>`,
//!   `&'static str`, `()`. **Any other body is not copied, so such a request
//!   is not retried**: the rejected response is returned as it is (the token
//!   is still invalidated, so the next request gets a new one). That covers
//!   streams, `hyper::body::Incoming` and `tonic::body::Body`.
//! - [`clone_body_fn`] for a body type of your own:
//!   `AuthLayer::new(auth).clone_body(clone_body_fn(|b: &MyBody| Some(b.clone())))`.
//! - [`NoRetry`] (`.no_retry()`) never retries.
//!
//! ## Errors
//!
//! The service's error is [`AuthError<E>`]: [`AuthError::Auth`] with the
//! typed [`tokenauth_core::Error`] when no credential could be had (the
//! request is not sent), or [`AuthError::Inner`] with the inner service's
//! error. It never fakes an HTTP response. It is transparent: `Display` and
//! `source` are the wrapped error's.
//!
//! ## tonic
//!
//! A tonic `Channel` is a `Service<http::Request<tonic::body::Body>>`; wrap
//! it and hand the result to a generated client (or `tonic::client::Grpc`):
//!
//! ```
//! use tokenauth_tower::LayerExt as _;
//! use tower::ServiceBuilder;
//! # fn wrap<Channel>(auth: tokenauth_core::TokenAuth, channel: Channel) -> Result<(), http::uri::InvalidUri> {
//! // `channel`: a tonic `Channel` connected to https://grpc.example.com
//! let channel = ServiceBuilder::new()
//!     .layer(auth.layer().origin("https://grpc.example.com".parse()?))
//!     .service(channel);
//! // let mut client = MyServiceClient::new(channel);
//! # let _ = channel; Ok(()) }
//! ```
//!
//! (A complete, runnable program: `cargo run --example tonic` in the
//! repository.)
//!
//! tonic calls the channel with path-only URIs (`/package.Service/Method`),
//! so set [`AuthLayer::origin`] to the endpoint (or build the client with
//! `with_origin`). An auth failure reaches the caller as a `tonic::Status`
//! with the tokenauth message. gRPC requests are streams, so a rejected one
//! is not retried (and gRPC servers report rejections in `grpc-status`, not
//! in the HTTP status, anyway).
//!
//! ## Redirects
//!
//! hyper-util's client does not follow redirects. With a redirect-following
//! layer (e.g. tower-http's `FollowRedirect`), put it **outside** (above)
//! this layer: every hop then comes through here and is routed afresh, so
//! the credential is only attached to URIs inside the provider's prefixes.
//!
//! ## Readiness
//!
//! `poll_ready` is the inner service's. A call that attaches a credential
//! moves the ready inner service into its future and keeps a clone (the
//! clone-and-swap pattern), so the future can call it after the credential
//! is fetched, and again (after `poll_ready`) for a retry.

mod body;
mod error;
mod future;
mod layer;
mod service;

pub use body::{CloneBody, CloneBodyFn, CommonBodies, NoRetry, clone_body_fn};
pub use error::AuthError;
pub use future::ResponseFuture;
pub use layer::{AuthLayer, LayerExt};
pub use service::Auth;
pub use tokenauth_core::{Connection, NoAuth, TokenAuth};
