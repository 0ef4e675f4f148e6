//! tokenauth core: the `providers.toml` language, routing, templates and the
//! token engine.
//!
//! Everything the adapters (reqwest middleware, tower layer) and the CLI do
//! is a call into this crate:
//!
//! - [`Providers`] and the [`config`] module: the description language, read
//!   only ([`Providers::from_path`], [`Providers::from_toml`]).
//! - [`TokenAuth`] (built by [`TokenAuthBuilder`]): the engine. It routes a
//!   request URL to a [`ProviderHandle`], which hands out [`Credential`]s
//!   per [`Connection`], fetching, sharing and renewing tokens.
//! - [`request`]: the request sequence every adapter drives
//!   ([`TokenAuth::exchange`], [`request::Exchange::send`]), and [`NoAuth`].
//! - [`store`]: where refresh tokens live; [`clock`]: the injectable clock.
//! - [`Error`]: every failure, each message saying how to fix it.
//!
//! ## Example
//!
//! A static provider (HTTP Basic from two inputs) needs no network; a
//! provider with a `[login]` works the same way, the first call fetching the
//! token.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use secrecy::SecretString;
//! use tokenauth_core::{Connection, Providers, TokenAuth};
//! use url::Url;
//!
//! let providers = Providers::from_toml("providers.toml", r#"
//! [providers.bro]
//! api = ["https://www.bronhouderportaal-bro.nl/api/v2/"]
//! inputs.username = { env = "BRO_TOKEN_USERNAME" }
//! inputs.token = { env = "BRO_TOKEN_PASSWORD", secret = true }
//! inject.basic = { username = "{{ inputs.username }}", password = "{{ inputs.token }}" }
//! "#)?;
//! let auth = TokenAuth::builder(providers).build()?;
//!
//! // Which provider may see this request? (None: send it without a credential.)
//! let url = Url::parse("https://www.bronhouderportaal-bro.nl/api/v2/validatie")?;
//! let bro = auth.route(&url).expect("inside the BRO api prefix");
//! assert!(auth.route(&Url::parse("https://example.com/api/v2/")?).is_none());
//!
//! // One tenant's credentials (the default connection reads BRO_TOKEN_* instead).
//! let tenant = Connection::new("tenant-7")
//!     .with_input("username", "0dce6fc98256|123456789|1234")
//!     .with_secret("token", SecretString::from("d476c6b8"));
//! let credential = bro.credential(Some(&tenant)).await?;
//!
//! let mut headers = http::HeaderMap::new();
//! credential.apply_to_headers(&mut headers);
//! assert!(headers["authorization"].is_sensitive());
//! assert_eq!(headers["authorization"], "Basic MGRjZTZmYzk4MjU2fDEyMzQ1Njc4OXwxMjM0OmQ0NzZjNmI4");
//!
//! // The second call is a cache hit.
//! let again = bro.credential(Some(&tenant)).await?;
//! assert_eq!(again.token_id(), credential.token_id());
//! assert_eq!(auth.stats().hits, 1);
//! # Ok(()) }
//! ```
//!
//! ## Guarantees
//!
//! - **Hot path.** A fresh cached credential costs one lock-free map lookup,
//!   one clock read and two atomic increments (the entry's reference count and
//!   a per-thread hit counter); it never waits, takes no lock and allocates
//!   nothing (the header value was rendered when the token was fetched;
//!   attaching it clones a [`HeaderValue`](http::HeaderValue)). With the
//!   default clock the read is of the coarse wall clock, plus a margin, and
//!   only tokens whose renewal is still further away than that margin are
//!   decided with it; see [`clock`].
//! - **Single-flight.** Concurrent calls that find no usable token share one
//!   fetch: one token request, and all of them get its token or its error.
//!   The fetch runs in a spawned task, so cancelling a caller (a dropped
//!   request future) never stalls the others or starts a second request.
//! - **Refresh-ahead.** A token is renewed before it expires: from the start
//!   of its renewal window (`expiry.skew`: 10% of the lifetime by default,
//!   with up to 10% jitter, never less than 5 s or half the lifetime) the
//!   cached token is still returned at once and exactly one background
//!   renewal starts. No caller waits while a valid token exists.
//! - **Failures.** A renewal that fails while the token is still valid keeps
//!   the token in use and is retried after a backoff. A failed fetch is
//!   cached: callers within its backoff (exponential with jitter, at least
//!   the endpoint's `Retry-After`) get the same error without a new request.
//! - **Invalidation.** [`ProviderHandle::invalidate`](crate::ProviderHandle::invalidate) drops a rejected token
//!   only if it is still the cached one, so many concurrent 401s cause one
//!   renewal.
//! - **Bounded.** Each provider caches at most
//!   [`max_connections`](TokenAuthBuilder::max_connections) connections; the
//!   least recently used are evicted. Entries carry their own expiry, checked
//!   on every read against the injected [`Clock`](crate::clock::Clock).
//!   Reads are answered by a lock-free map; each value carries a use
//!   stamp, and a write that makes the map exceed its bound evicts the
//!   least recently used (the order is exact for small caches and off by at
//!   most 1/16 of the bound for large ones); an eviction never removes a
//!   value published or used after it was chosen.
//! - **Refresh tokens** are kept in the [`TokenStore`](crate::store::TokenStore)
//!   and saved before the access token they came with is handed out; see
//!   the token requests described in `docs/providers-toml.md`.
//! - **Many processes.** Engines that share a store
//!   ([`TokenAuthBuilder::store`]: a `FileStore` directory, Redis) fetch one
//!   token for all of them: a fetch adopts a token another process
//!   published, or takes the connection's lease and fetches, or waits for
//!   the holder's result; never two fetches at once, so a rotating refresh
//!   token is never spent twice. Renewals and failure backoffs are shared
//!   too. The hot path never calls the store. See [`store`] for the
//!   protocol and [`TokenAuthBuilder::local_fallback`] for a store outage.
//!
//! ## Observability
//!
//! `tracing` events (target `tokenauth_core`): a `tokenauth.fetch` span per
//! acquisition with the provider, connection and trigger; debug events for
//! each token request, acquisition, background renewal and invalidation;
//! warnings for failures; trace events for cache hits. None carries a secret.
//! Counters: [`TokenAuth::stats`]; with the `metrics` feature also per
//! provider through the [`metrics`](https://docs.rs/metrics) facade
//! (`tokenauth_hits_total`, `tokenauth_fetches_total`,
//! `tokenauth_renewals_total`, `tokenauth_failures_total`,
//! `tokenauth_rejections_total`, each labelled `provider`). The handles are
//! registered when the engine is built: install the recorder first.
//!
//! ## TLS
//!
//! TLS for the HTTP clients, chosen by a feature of this crate (and of the
//! `tokenauth` facade), passed through to reqwest:
//!
//! | feature | reqwest's backend |
//! |---|---|
//! | `rustls-aws-lc` (default) | rustls with aws-lc-rs (reqwest's `rustls`) |
//! | `rustls-ring` | rustls with ring (reqwest's `rustls-no-provider`; ring is installed as rustls's process default, see [`install_default_tls_provider`]) |
//! | `native-tls` | the platform's TLS: OpenSSL on Linux, Security.framework, SChannel |
//!
//! With `default-features = false` and none of them, the engine refuses to
//! build for a description with an `https` URL (`Error::NoTls`), instead of
//! failing every token request.

mod acquire;
pub mod authorize;
mod cache;
pub mod clock;
pub mod config;
mod connection;
mod device;
mod error;
mod inject;
pub mod request;
mod route;
pub mod store;
mod template;
mod tls;
mod url_template;

pub use authorize::{AuthorizationFailure, AuthorizationRequest, Authorized};
pub use cache::{Credential, ProviderStats, Stats, TokenAuth, TokenAuthBuilder, TokenId};
pub use config::{ConfigErrors, Diagnostic, LoadError, Provider, Providers};
pub use connection::{Connection, DEFAULT_CONNECTION};
pub use device::{DeviceAuthorization, DeviceGrant};
pub use error::{DeviceFailure, Error, RequestKind};
pub use inject::Injection;
pub use request::{NoAuth, ProviderHandle};
pub use template::{Template, TemplateError, Var};
pub use tls::install_default_provider as install_default_tls_provider;

/// What the `tokenauth` CLI shows of a description without sending it: not
/// a stable API.
#[doc(hidden)]
pub mod preview {
    pub use crate::acquire::{RequestPreview, preview_injection, preview_token_request};
}
#[cfg(test)]
mod url_scope_attacks;
