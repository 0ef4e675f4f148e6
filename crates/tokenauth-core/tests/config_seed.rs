//! The seed description loads, and its parsed form is pinned by a snapshot.

use tokenauth_core::config::Providers;

fn seed() -> Providers {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../providers.toml");
    Providers::from_path(path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn seed_providers_parse() {
    let providers = seed();
    assert_eq!(providers.ids().collect::<Vec<_>>(), ["reobtimaal", "twoba", "bro"]);
    insta::assert_debug_snapshot!(providers);
}
