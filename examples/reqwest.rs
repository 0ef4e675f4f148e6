//! The reqwest middleware with the three seed providers.
//!
//! Run: `cargo run --example reqwest`
//!
//! No credentials or network needed: the example starts the emulator of the
//! seed providers in-process (HTTPS on 127.0.0.1 under the real host names)
//! and uses the repository's unchanged `providers.toml`. Against the real
//! providers, drop the emulator lines and use `auth.client()?`.

use reqwest_middleware::ClientBuilder;
use tokenauth::prelude::*;
use tokenauth::{Connection, NoAuth, Providers, TokenAuth};
use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, Provider, REOB_DEMO_PASSWORD,
    REOB_DEMO_USERNAME, TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD,
    TWOBA_DEMO_USERNAME,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The emulator, and HTTP clients that trust its CA and resolve the real
    // host names to it.
    let emulator = Emulator::start(EmulatorConfig::default().tls(true)).await?;
    let builder = || {
        emulator
            .reqwest_client_builder()
            .ok_or("the emulator has no TLS listener")
    };

    let providers = Providers::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/providers.toml"))?;
    let auth = TokenAuth::builder(providers)
        .http_client_builder(builder()?)
        .build()?;

    // The one line.
    let client = ClientBuilder::new(builder()?.scoped_to(&auth).build()?)
        .with(auth.middleware())
        .build();

    // Inputs per connection (without one, each provider reads its env vars).
    let reob = Connection::new("reob-demo")
        .with_input("username", REOB_DEMO_USERNAME)
        .with_secret("password", REOB_DEMO_PASSWORD);
    let twoba = Connection::new("2ba-demo")
        .with_input("username", TWOBA_DEMO_USERNAME)
        .with_secret("password", TWOBA_DEMO_PASSWORD)
        .with_input("client_id", TWOBA_DEMO_CLIENT_ID)
        .with_secret("client_secret", TWOBA_DEMO_CLIENT_SECRET);
    let bro = Connection::new("bro-demo")
        .with_input("username", BRO_DEMO_USERNAME)
        .with_secret("token", BRO_DEMO_PASSWORD);

    let calls = [
        (
            "GET",
            "https://api.reobtimaal-diensten.nl/api/v1/projecten",
            &reob,
        ),
        (
            "GET",
            "https://api.2ba.nl/1/json/Product/DetailsForProduct",
            &twoba,
        ),
        (
            "POST",
            "https://www.bronhouderportaal-bro.nl/api/v2/validatie",
            &bro,
        ),
    ];
    for (method, url, conn) in calls {
        for _ in 0..5 {
            let reply = client
                .request(method.parse()?, url)
                .with_extension(conn.clone())
                .send()
                .await?;
            let status = reply.status();
            let body: serde_json::Value = reply.json().await?;
            println!("{method:4} {url} -> {status} as {}", body["user"]);
        }
    }

    // A token revoked by the server: one renewal, one retry, then 200.
    emulator.revoke(Provider::Reobtimaal);
    let reply = client
        .get(calls[0].1)
        .with_extension(reob.clone())
        .send()
        .await?;
    println!("after revocation: {}", reply.status());

    // Opting out for one request: no credential, so the API says 401.
    let reply = client.get(calls[0].1).with_extension(NoAuth).send().await?;
    println!("with NoAuth: {}", reply.status());

    let stats = emulator.stats();
    println!(
        "token requests: REOBtimaal {} (one login + one renewal), 2BA {}, BRO {} (no token endpoint); API calls: {}",
        stats.reobtimaal.token.requests,
        stats.twoba.token.requests,
        stats.bro.token.requests,
        stats.reobtimaal.api.requests + stats.twoba.api.requests + stats.bro.api.requests,
    );
    Ok(())
}
