//! # tokenauth-tower
//!
//! A tower [`Layer`](tower_layer::Layer) that authenticates
//! `http::Request<B>` for the providers of a [`TokenAuth`] engine (a
//! `providers.toml`): one `.layer(...)` on a hyper-util client, a tonic
//! `Channel`, or any `Service<http::Request<B>>`.
//!
//! - [Example](#example)
//! - [What every request goes through](#what-every-request-goes-through)
//! - [Rejected credentials: retried once, never in a loop](#rejected-credentials-retried-once-never-in-a-loop)
//! - [In the tower layer](#in-the-tower-layer)
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
#![doc = include_str!("../../../docs/adapters.md")]
//!
//! ## In the tower layer
//!
//! The connection (or `NoAuth`) goes in the request's [`http::Extensions`];
//! a missing input fails the call with
//! [`AuthError::Auth`]`(`[`Error::MissingInput`](tokenauth_core::Error::MissingInput)`)`.
//! A path-only URI is routed with the layer's
//! [`origin`](AuthLayer::origin), if set, else it matches nothing. A retry
//! calls the inner service again after driving it to readiness.
//!
//! A retry needs the request's parts kept before the first call (method,
//! URI, version, headers, extensions and a copy of the body), and an
//! `http::Request<B>` can only be repeated if its body can be copied. The choice
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
//! - a closure for a body type of your own:
//!   `AuthLayer::new(auth).clone_body(|b: &MyBody| Some(b.clone()))`.
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

pub use body::{CloneBody, CommonBodies, NoRetry};
pub use error::AuthError;
pub use future::ResponseFuture;
pub use layer::{AuthLayer, LayerExt};
pub use service::Auth;
pub use tokenauth_core::{Connection, NoAuth, TokenAuth};
