//! The token engine against the emulator: real HTTP on loopback (TLS, real
//! host names, the unchanged `providers.toml`).

mod authorize;
mod clock;
mod concurrency;
mod dsl;
mod faults;
mod helpers;
mod jwt;
mod refresh;
mod rejections;
mod secrets;
mod seed;
mod shared;
mod sources;
mod test_store;
