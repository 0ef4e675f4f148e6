//! tokenauth facade.
pub use tokenauth_core::*;
