//! 1,000 concurrent requests through the middleware while the token endpoint
//! fails: one token request in flight at a time, every caller gets the typed
//! error, nothing panics, no task is left behind; then the endpoint heals and
//! 1,000 more requests cost exactly one login.

use std::sync::Arc;
use std::time::Duration;

use tokenauth::clock::ManualClock;
use tokenauth::{Error, auth_error};
use tokenauth_emulator::{Emulator, EmulatorConfig, Provider, StatusFault};

use crate::helpers::*;

const CALLERS: usize = 1000;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_against_a_failing_endpoint_then_one_login() {
    // The emulator runs on its own runtime, so that this runtime's task count
    // is the client's alone.
    let emu = Emulator::start_on_own_runtime(EmulatorConfig::default().tls(true), 1)
        .expect("emulator starts");
    let clock = Arc::new(ManualClock::new());
    let auth = engine_clocked(&emu, &seed_toml(), clock.clone());
    let client = middleware_client(&emu, &auth);

    // Warm up the connection pool (its connection task stays alive), then
    // measure the baseline.
    let warm = client
        .get(REOB_API)
        .with_extension(reob_tenant(1))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    drop(warm);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let baseline = alive_tasks();
    emu.reset_stats();

    // Slow failures, so that the callers pile up while a request is out.
    emu.fail_token_requests(Provider::Reobtimaal, StatusFault::new(503, 1_000_000));
    emu.set_token_latency(Provider::Reobtimaal, Duration::from_millis(30));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let result = client.get(REOB_API).with_extension(reob()).send().await;
                match result {
                    Ok(r) => Err(format!("got a response: {}", r.status())),
                    Err(e) => match auth_error(&e) {
                        Some(Error::Status {
                            status: http::StatusCode::SERVICE_UNAVAILABLE,
                            ..
                        }) => Ok(()),
                        _ => Err(format!("{e:?}")),
                    },
                }
            })
        })
        .collect();
    let mut errors = 0;
    for task in tasks {
        // `unwrap`: a panicking caller fails the test here.
        task.await.expect("no panic").expect("the typed 503 error");
        errors += 1;
    }
    assert_eq!(errors, CALLERS, "every caller got the error");
    let stats = emu.stats().reobtimaal;
    assert_eq!(
        stats.token.max_concurrent_token_requests, 1,
        "one token request in flight at any moment"
    );
    assert_eq!(stats.token.requests, 3, "one acquisition: 1 + 2 retries");
    assert_eq!(stats.api.requests, 0);
    assert!(
        eventually(Duration::from_secs(10), || alive_tasks() <= baseline).await,
        "task leak: {} alive, {baseline} before",
        alive_tasks()
    );

    // Healed, and past the failure backoff on the engine's clock.
    emu.clear_faults(Provider::Reobtimaal);
    clock.advance(Duration::from_secs(61));
    emu.reset_stats();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get(REOB_API)
                    .with_extension(reob())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("no panic"), Ok(200));
    }
    let stats = emu.stats().reobtimaal;
    assert_eq!(stats.token.requests, 1, "exactly one login");
    assert_eq!(stats.token.requests_by_grant.password, 1);
    assert_eq!(stats.api.status(200), CALLERS as u64);
    drop(client);
    drop(auth);
    tokio::task::spawn_blocking(move || drop(emu))
        .await
        .unwrap();
}
