//! tokenauth core: the `providers.toml` language, routing and templates.
//!
//! Everything the adapters (reqwest middleware, tower layer) and the CLI do is
//! a call into this crate. See [`config`] for the description language.

pub mod config;
pub mod route;
pub mod template;

pub use config::{ConfigErrors, Diagnostic, LoadError, Provider, Providers};
