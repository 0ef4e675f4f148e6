//! # tokenauth
//!
//! HTTP authentication for any API provider described in TOML: describe the
//! provider in `providers.toml`, add one line to your client, and every
//! request to the provider's API carries a valid credential (fetched once,
//! shared by concurrent requests, renewed before it expires, renewed and
//! retried once when the API rejects it, and never sent anywhere else).
//!
//! reqwest ([reqwest-middleware](https://docs.rs/reqwest-middleware), feature
//! `reqwest`):
//!
//! ```no_run
//! use tokenauth::TokenAuth;
//! use tokenauth::prelude::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = TokenAuth::from_path("providers.toml")?.client()?;
//! # let _ = client; Ok(()) }
//! ```
//!
//! With a client of your own, build it with `scoped_to` (redirects never
//! carry a credential out of its provider, no `Referer`) and add the
//! middleware:
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use tokenauth::TokenAuth;
//! use tokenauth::prelude::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = TokenAuth::from_path("providers.toml")?;
//! let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).scoped_to(&auth).build()?;
//! let client = ClientBuilder::new(http).with(auth.middleware()).build();
//! # let _ = client; Ok(()) }
//! ```
//!
//! tower (a hyper-util client, a tonic `Channel`, any
//! `Service<http::Request<B>>`; feature `tower`):
//!
//! ```no_run
//! use tokenauth::TokenAuth;
//! use tokenauth::prelude::*;
//! # fn main() -> Result<(), tokenauth::Error> {
//! # let client = tower::service_fn(|_: http::Request<String>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
//! let service = tower::ServiceBuilder::new().layer(TokenAuth::from_path("providers.toml")?.layer()).service(client);
//! # let _ = service; Ok(()) }
//! ```
//!
//! **TLS** for token requests (and the clients tokenauth builds) is reqwest's,
//! chosen with one feature: `rustls-aws-lc` (the default), `rustls-ring`, or
//! `native-tls` (the platform's TLS); e.g. `tokenauth = { version = "…",
//! default-features = false, features = ["reqwest", "tower", "rustls-ring"] }`.
//! See [`install_default_tls_provider`].
//!
//! This crate re-exports [`tokenauth_core`] (the description language and
//! the token engine) at its root, the adapters' main types next to it, and
//! the adapter crates in full under [`adapters`]. Runnable programs are in
//! the repository's `examples/` directory (`cargo run --example reqwest`).

pub use tokenauth_core::{
    ConfigErrors, Connection, Credential, DEFAULT_CONNECTION, DeviceAuthorization, DeviceFailure,
    DeviceGrant, Diagnostic, Error, Injection, LoadError, NoAuth, Provider, ProviderHandle,
    ProviderStats, Providers, RequestKind, Stats, Template, TemplateError, TokenAuth,
    TokenAuthBuilder, TokenId, Var, clock, config, install_default_tls_provider, request, store,
};

#[cfg(feature = "reqwest")]
pub use tokenauth_reqwest::{
    AuthMiddleware, ClientBuilderExt, MiddlewareExt, auth_error, redirect_policy,
};
#[cfg(feature = "tower")]
pub use tokenauth_tower::{Auth, AuthError, AuthLayer, LayerExt};

/// The adapter crates in full.
pub mod adapters {
    #[cfg(feature = "reqwest")]
    pub use tokenauth_reqwest as reqwest;
    #[cfg(feature = "tower")]
    pub use tokenauth_tower as tower;
}

/// The extension traits that add `middleware()`, `client()` and `layer()` to
/// [`TokenAuth`], and `scoped_to(&auth)` to `reqwest::ClientBuilder`:
/// `use tokenauth::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "reqwest")]
    pub use tokenauth_reqwest::{ClientBuilderExt as _, MiddlewareExt as _};
    #[cfg(feature = "tower")]
    pub use tokenauth_tower::LayerExt as _;
}

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
