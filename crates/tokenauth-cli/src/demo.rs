//! `tokenauth demo`: the main job in one command, with no credentials and no
//! network. It starts the emulator on loopback (TLS, with the real host
//! names resolved to it), loads `providers.toml` unchanged, and runs a short
//! session through the reqwest middleware:
//!
//! 1. several concurrent workers call all three providers (one login each,
//!    shared by every worker);
//! 2. a 2BA time-lapse: the engine's clock jumps ahead twice, into the
//!    renewal window, so the token is renewed in the background with the
//!    refresh token, which rotates (the emulator proves no refresh token is
//!    used twice);
//! 3. REOBtimaal revokes every token; the next request gets 401 and is
//!    renewed and retried once by the middleware, and succeeds.
//!
//! The numbers it prints come from the emulator's counters, so they are the
//! same on every run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokenauth_core::clock::ManualClock;
use tokenauth_core::{Connection, TokenAuth};
use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, Provider as Emulated,
    ProviderStats, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME, TWOBA_DEMO_CLIENT_ID,
    TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME,
};
use tokenauth_reqwest::{ClientBuilderExt as _, MiddlewareExt as _};

use crate::common::report;
use crate::{Global, Outcome};

/// Concurrent workers in phase 1.
const WORKERS: usize = 4;
/// Requests per worker per provider in phase 1.
const REQUESTS: usize = 10;

struct Target {
    id: &'static str,
    emulated: Emulated,
    method: reqwest::Method,
    url: &'static str,
    connection: Connection,
}

fn targets() -> Vec<Target> {
    vec![
        Target {
            id: "reobtimaal",
            emulated: Emulated::Reobtimaal,
            method: reqwest::Method::GET,
            url: "https://api.reobtimaal-diensten.nl/api/v1/projecten",
            connection: Connection::new("demo")
                .with_input("username", REOB_DEMO_USERNAME)
                .with_secret("password", REOB_DEMO_PASSWORD),
        },
        Target {
            id: "twoba",
            emulated: Emulated::Twoba,
            method: reqwest::Method::GET,
            url: "https://api.2ba.nl/1/json/Product/DetailsForProduct",
            connection: Connection::new("demo")
                .with_input("username", TWOBA_DEMO_USERNAME)
                .with_secret("password", TWOBA_DEMO_PASSWORD)
                .with_input("client_id", TWOBA_DEMO_CLIENT_ID)
                .with_secret("client_secret", TWOBA_DEMO_CLIENT_SECRET),
        },
        Target {
            id: "bro",
            emulated: Emulated::Bro,
            method: reqwest::Method::POST,
            url: "https://www.bronhouderportaal-bro.nl/api/v2/validatie",
            connection: Connection::new("demo")
                .with_input("username", BRO_DEMO_USERNAME)
                .with_secret("token", BRO_DEMO_PASSWORD),
        },
    ]
}

/// One API call; `Ok(status)` or a printable error.
async fn call(client: &ClientWithMiddleware, t: &Target) -> Result<u16, String> {
    client
        .request(t.method.clone(), t.url)
        .with_extension(t.connection.clone())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| match tokenauth_reqwest::auth_error(&e) {
            Some(auth) => auth.to_string(),
            None => e.to_string(),
        })
}

pub(crate) async fn run(g: &Global) -> Outcome {
    let providers = match g.load() {
        Ok(p) => p,
        Err(o) => return o,
    };
    let emulator = match Emulator::start(EmulatorConfig::default().tls(true)).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the emulator on 127.0.0.1: {e}");
            return Outcome::AuthFailure;
        }
    };
    // Every request goes to the emulator: the real host names resolve to it
    // and only its CA is trusted, so nothing can leave the machine.
    if emulator.reqwest_client_builder().is_none() {
        eprintln!("error: the emulator's TLS certificate is unusable");
        return Outcome::AuthFailure;
    }
    let client_builder = || {
        emulator
            .reqwest_client_builder()
            .unwrap_or_else(reqwest::Client::builder)
    };
    let clock = Arc::new(ManualClock::new());
    let auth = match TokenAuth::builder(providers)
        .http_client_builder(client_builder())
        .clock(clock.clone())
        .build()
    {
        Ok(a) => a,
        Err(e) => return report(&e),
    };
    let http = match client_builder().scoped_to(&auth).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build the HTTP client: {e}");
            return Outcome::AuthFailure;
        }
    };
    let client = ClientBuilder::new(http).with(auth.middleware()).build();
    let targets = Arc::new(targets());
    let mut failures: Vec<String> = Vec::new();

    println!("tokenauth demo: the three seed providers of providers.toml, unchanged,");
    println!("against the built-in emulator on 127.0.0.1 (TLS, real host names, fake accounts).");
    println!();

    // Phase 1: concurrent workers, all providers, cold cache.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let client = client.clone();
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for _ in 0..REQUESTS {
                for t in targets.iter() {
                    match call(&client, t).await {
                        Ok(200) => {}
                        Ok(s) => errors.push(format!("{}: HTTP {s}", t.id)),
                        Err(e) => errors.push(format!("{}: {e}", t.id)),
                    }
                }
            }
            errors
        }));
    }
    for task in tasks {
        match task.await {
            Ok(errors) => failures.extend(errors),
            Err(e) => failures.push(format!("a worker stopped: {e}")),
        }
    }
    println!(
        "1. {WORKERS} concurrent workers x {REQUESTS} requests x 3 providers: {} requests in {} ms",
        WORKERS * REQUESTS * 3,
        started.elapsed().as_millis()
    );

    // Phase 2: 2BA time-lapse into the renewal window, twice.
    let twoba = &targets[1];
    for step in 1..=2 {
        clock.advance(Duration::from_secs(100));
        let before = emulator.stats().twoba.token.requests_by_grant.refresh_token;
        match call(&client, twoba).await {
            Ok(200) => {}
            Ok(s) => failures.push(format!("twoba after +{}s: HTTP {s}", step * 100)),
            Err(e) => failures.push(format!("twoba after +{}s: {e}", step * 100)),
        }
        // The renewal runs in the background; wait (bounded) for it to land.
        let deadline = Instant::now() + Duration::from_secs(10);
        while emulator.stats().twoba.token.requests_by_grant.refresh_token == before
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Err(e) = call(&client, twoba).await {
            failures.push(format!("twoba after its renewal: {e}"));
        }
    }
    let s = emulator.stats().twoba.token;
    println!(
        "2. 2BA time-lapse (+100 s, twice): {} background refreshes, each with the newest refresh token ({} reused)",
        s.requests_by_grant.refresh_token, s.refresh_reuse
    );
    if s.refresh_reuse != 0 {
        failures.push(format!(
            "twoba: {} refresh tokens were reused",
            s.refresh_reuse
        ));
    }

    // Phase 3: REOBtimaal revokes every token; 401 -> renew -> retry once.
    emulator.revoke(Emulated::Reobtimaal);
    let reob = &targets[0];
    match call(&client, reob).await {
        Ok(200) => println!(
            "3. REOBtimaal revoked every token: the next request got 401, was renewed and retried once: 200"
        ),
        Ok(s) => failures.push(format!("reobtimaal after revocation: HTTP {s}")),
        Err(e) => failures.push(format!("reobtimaal after revocation: {e}")),
    }
    println!();

    let stats = emulator.stats();
    println!(
        "| provider   | API requests | 200 | 401 | token requests | logins | refreshes | result |"
    );
    println!(
        "|------------|-------------:|----:|----:|---------------:|-------:|----------:|--------|"
    );
    for t in targets.iter() {
        let p: &ProviderStats = stats.provider(t.emulated);
        let ok = !failures.iter().any(|f| f.starts_with(t.id));
        let token = if t.id == "bro" {
            "- (static)".to_owned()
        } else {
            p.token.requests.to_string()
        };
        println!(
            "| {:<10} | {:>12} | {:>3} | {:>3} | {:>14} | {:>6} | {:>9} | {:<6} |",
            t.id,
            p.api.requests,
            p.api.status(200),
            p.api.status(401),
            token,
            p.token.requests_by_grant.password,
            p.token.requests_by_grant.refresh_token,
            if ok { "ok" } else { "FAILED" }
        );
    }
    let e = auth.stats();
    println!();
    println!(
        "engine counters: hits {}, misses {}, token requests {}, background renewals {}, invalidations {}",
        e.hits, e.misses, e.token_requests, e.renewals, e.invalidations
    );
    drop(client);
    emulator.shutdown();
    if failures.is_empty() {
        println!("result: every request succeeded");
        Outcome::Ok
    } else {
        println!("result: {} problem(s):", failures.len());
        for f in &failures {
            println!("  {f}");
        }
        Outcome::AuthFailure
    }
}
