//! The adapters end to end: the reqwest middleware and the tower layer
//! (hyper-util legacy client, tonic channel) against the emulator on
//! loopback (TLS, the real host names, the unchanged `providers.toml`) and
//! loopback test servers. One test binary, to keep link time down.

mod helpers;

#[path = "adapters/several.rs"]
mod several;
#[path = "adapters/sources.rs"]
mod sources;
#[path = "adapters/tenants.rs"]
mod tenants;
#[path = "adapters/via_reqwest.rs"]
mod via_reqwest;
#[path = "adapters/via_tonic.rs"]
mod via_tonic;
#[path = "adapters/via_tower.rs"]
mod via_tower;
