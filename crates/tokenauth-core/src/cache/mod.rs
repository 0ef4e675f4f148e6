//! The token engine: [`TokenAuth`], a cache of credentials per
//! (provider, connection) that fetches, shares and renews tokens. The
//! crate documentation describes its guarantees.

mod builder;
mod credential;
mod engine;
mod shared;
pub(crate) mod stats;
mod table;

pub use builder::TokenAuthBuilder;
pub use credential::{Credential, TokenId};
pub(crate) use engine::Inner;
pub use engine::TokenAuth;
pub use stats::{ProviderStats, Stats};
