//! A multi-tenant workflow: five tenants of one provider, each with its own
//! connection (credentials), running concurrent steps through one client.
//!
//! Run: `cargo run --example multi_tenant`
//!
//! No credentials or network needed: the example starts the emulator
//! in-process (it accepts `tenant-<N>` / `tenant-<N>-secret` on REOBtimaal)
//! and uses the repository's unchanged `providers.toml`.

use std::time::Instant;

use futures_util::future::join_all;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokenauth::prelude::*;
use tokenauth::{Connection, Providers, TokenAuth};
use tokenauth_emulator::{Emulator, EmulatorConfig, Provider, tenant_password, tenant_username};

const API: &str = "https://api.reobtimaal-diensten.nl/api/v1";

/// One workflow run for one tenant: three steps, each a handful of
/// concurrent requests. Returns (requests, all OK, users seen).
async fn workflow(client: ClientWithMiddleware, tenant: Connection) -> (usize, bool, Vec<String>) {
    let steps: [&[&str]; 3] = [
        &["/projecten"],
        &["/projecten/1", "/projecten/2", "/projecten/3"],
        &["/projecten/1/metingen", "/projecten/2/metingen"],
    ];
    let mut requests = 0;
    let mut ok = true;
    let mut users = Vec::new();
    for step in steps {
        let calls = step.iter().map(|path| {
            client
                .get(format!("{API}{path}"))
                .with_extension(tenant.clone())
                .send()
        });
        for reply in join_all(calls).await {
            requests += 1;
            match reply {
                Ok(reply) if reply.status().is_success() => {
                    let body: serde_json::Value = reply.json().await.unwrap_or_default();
                    let user = body["user"].as_str().unwrap_or("?").to_owned();
                    if !users.contains(&user) {
                        users.push(user);
                    }
                }
                _ => ok = false,
            }
        }
    }
    (requests, ok, users)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let client = ClientBuilder::new(builder()?.scoped_to(&auth).build()?)
        .with(auth.middleware())
        .build();

    // Each tenant is a connection; tokens are cached per (provider, connection).
    let tenants: Vec<Connection> = (1..=5)
        .map(|n| {
            Connection::new(format!("tenant-{n}"))
                .with_input("username", tenant_username(Provider::Reobtimaal, n))
                .with_secret("password", tenant_password(Provider::Reobtimaal, n))
        })
        .collect();

    // Two rounds of every tenant's workflow, all tenants at once.
    for round in 1..=2 {
        let started = Instant::now();
        let runs = tenants.iter().map(|t| workflow(client.clone(), t.clone()));
        let results = join_all(runs).await;
        println!("round {round} ({} ms):", started.elapsed().as_millis());
        for (tenant, (requests, ok, users)) in tenants.iter().zip(results) {
            println!(
                "  {:9} {requests} requests, {}, seen by the API as {users:?}",
                tenant.id(),
                if ok { "all OK" } else { "FAILED" },
            );
        }
        println!(
            "  token requests so far: {} (one per tenant)",
            emulator.stats().reobtimaal.token.requests
        );
    }
    let stats = emulator.stats().reobtimaal;
    println!(
        "total: {} API calls, {} token requests; engine: {:?}",
        stats.api.requests,
        stats.token.requests,
        auth.stats()
    );
    Ok(())
}
