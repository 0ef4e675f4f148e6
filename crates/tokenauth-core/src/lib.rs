//! tokenauth core: the `providers.toml` language, routing, templates and the
//! token engine.
//!
//! Everything the adapters (reqwest middleware, tower layer) and the CLI do is
//! a call into this crate. See [`config`] for the description language and
//! [`cache`] for the engine, [`TokenAuth`].

pub mod acquire;
pub mod cache;
pub mod clock;
pub mod config;
pub mod connection;
pub mod error;
pub mod inject;
pub mod request;
pub mod route;
pub mod store;
pub mod template;
pub mod tls;

pub use cache::{Credential, Stats, TokenAuth, TokenAuthBuilder, TokenId};
pub use config::{ConfigErrors, Diagnostic, LoadError, Provider, Providers};
pub use connection::Connection;
pub use error::{Error, RequestKind};
pub use inject::Injection;
pub use request::{NoAuth, ProviderHandle};
