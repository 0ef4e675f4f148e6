//! Several engines over one store, as several processes over one Redis or
//! one file-store directory: one token fetch for all of them, one renewal
//! per window, a rotated refresh token never used twice, and the failure
//! modes of a lease-based single-flight, each with its regression test.
//!
//! The engines share a `MemoryStore` (the protocol is the same for every
//! store; `crates/tokenauth-redis/tests` runs it with real processes and a
//! real Redis) and one manual clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use tokenauth_core::clock::{Clock as _, ManualClock};
use tokenauth_core::store::{MemoryStore, StoreKey, TokenStore};
use tokenauth_core::{Connection, Error, TokenAuth, TokenAuthBuilder};
use tokenauth_emulator::{Emulator, Provider, StatusFault};

use crate::helpers::*;
use crate::test_store::TestStore;

/// Into 2BA's renewal window (120 s tokens, `skew = "20%"`: renewed 24 to
/// 26.4 s before expiry) while the token is still valid.
const INTO_WINDOW: Duration = Duration::from_secs(100);

fn builder(
    emu: &Emulator,
    store: Arc<dyn TokenStore>,
    clock: &Arc<ManualClock>,
) -> TokenAuthBuilder {
    TokenAuth::builder(seed_providers())
        .http_client_builder(client_builder(emu))
        .clock(clock.clone())
        .store(store)
        .retries(0)
        .failure_backoff(Duration::from_secs(1), Duration::from_secs(60))
}

/// `n` engines ("processes") over one store and one clock.
fn engines(
    n: usize,
    emu: &Emulator,
    store: Arc<dyn TokenStore>,
    clock: &Arc<ManualClock>,
) -> Vec<TokenAuth> {
    (0..n)
        .map(|_| builder(emu, store.clone(), clock).build().unwrap())
        .collect()
}

/// `auth`'s 2BA credential for `conn`, asked for in a task of its own.
fn in_background(
    auth: &TokenAuth,
    conn: &Connection,
) -> tokio::task::JoinHandle<Result<tokenauth_core::Credential, Error>> {
    let (auth, conn) = (auth.clone(), conn.clone());
    tokio::spawn(async move { auth.credential_of("twoba", Some(&conn)).await })
}

fn twoba_key(conn: &Connection) -> StoreKey<'_> {
    StoreKey {
        provider: "twoba",
        connection: conn.id(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_store_fetch_one_token_for_all() {
    let emu = emulator().await;
    emu.set_token_latency(Provider::Twoba, Duration::from_millis(100));
    let clock = Arc::new(ManualClock::new());
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let all = engines(4, &emu, store, &clock);
    let conn = twoba();

    // Cold: 4 processes x 16 concurrent callers.
    let calls = all.iter().flat_map(|auth| {
        let conn = conn.clone();
        (0..16).map(move |_| in_background(auth, &conn))
    });
    let mut tokens = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        let cred = call.await.unwrap().expect("every caller gets a token");
        tokens.push(cred.access_token().unwrap().expose_secret().to_owned());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "one token for every process");
    assert_eq!(emu.stats().twoba.token.requests, 1, "one token request");
    let adopted: u64 = all.iter().map(|a| a.stats().adopted).sum();
    assert_eq!(adopted, 3, "the other three processes adopted it");

    // A process that starts later adopts it too.
    let late = builder(&emu, all[0].store().clone(), &clock)
        .build()
        .unwrap();
    let cred = late.credential_of("twoba", Some(&conn)).await.unwrap();
    assert!(cred.adopted());
    assert_eq!(emu.stats().twoba.token.requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_renews_for_all_and_no_refresh_token_is_used_twice() {
    let emu = emulator().await;
    emu.set_token_latency(Provider::Twoba, Duration::from_millis(50));
    let clock = Arc::new(ManualClock::new());
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let all = engines(4, &emu, store, &clock);
    let conn = twoba();
    for auth in &all {
        auth.credential_of("twoba", Some(&conn)).await.unwrap();
    }
    const ROUNDS: u64 = 5;
    for round in 1..=ROUNDS {
        clock.advance(INTO_WINDOW);
        let renewed_after = clock.now() + Duration::from_secs(60);
        // Every process is in its renewal window at once: each serves its
        // valid token and starts a background renewal.
        for auth in &all {
            auth.credential_of("twoba", Some(&conn)).await.unwrap();
        }
        let settled = eventually(Duration::from_secs(10), || {
            all.iter().all(|auth| {
                let handle = auth.provider("twoba").unwrap();
                handle
                    .cached(Some(&conn))
                    .and_then(|c| c.expires_at())
                    .is_some_and(|e| e > renewed_after)
            })
        })
        .await;
        assert!(
            settled,
            "round {round}: every process has the renewed token"
        );
        let grants = emu.stats().twoba.token.requests_by_grant;
        assert_eq!(
            (grants.password, grants.refresh_token),
            (1, round),
            "round {round}: one refresh for all processes"
        );
    }
    assert_eq!(emu.stats().twoba.token.refresh_reuse, 0);
    assert_eq!(emu.stats().twoba.token.status(400), 0);
}

/// The failure n8n and others shipped: the lease expired while its holder
/// was still refreshing, a second process took it and refreshed with the
/// same token. Here the holder renews its lease while its request runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_renewed_while_its_holder_fetches_slowly() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let make = || {
        builder(&emu, store.clone(), &clock)
            .lease_ttl(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    let conn = twoba();
    // The token request takes four lease lifetimes.
    emu.set_token_latency(Provider::Twoba, Duration::from_millis(1200));
    let first = in_background(&a, &conn);
    assert!(
        eventually(Duration::from_secs(5), || emu.stats().twoba.token.in_flight
            == 1)
        .await
    );
    let second = b.credential_of("twoba", Some(&conn)).await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(
        first.access_token().unwrap().expose_secret(),
        second.access_token().unwrap().expose_secret()
    );
    assert!(second.adopted());
    assert!(b.stats().lease_waits >= 1);
    assert_eq!(
        emu.stats().twoba.token.requests,
        1,
        "the waiter never fetched"
    );
}

/// A waiter that gives up fails with a typed error: it never fetches
/// without the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_gives_up_never_fetches_without_the_lease() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let holder = builder(&emu, store.clone(), &clock)
        .lease_ttl(Duration::from_millis(300))
        .build()
        .unwrap();
    let impatient = builder(&emu, store.clone(), &clock)
        .lease_ttl(Duration::from_millis(300))
        .max_hold(Duration::from_millis(300))
        .build()
        .unwrap();
    let conn = twoba();
    emu.set_token_latency(Provider::Twoba, Duration::from_millis(2000));
    let first = in_background(&holder, &conn);
    assert!(
        eventually(Duration::from_secs(5), || emu.stats().twoba.token.in_flight
            == 1)
        .await
    );
    let err = impatient
        .credential_of("twoba", Some(&conn))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseWait { .. }), "{err:?}");
    assert!(err.to_string().contains("another process"), "{err}");
    assert_no_secret(&err.to_string(), &[]);
    first.await.unwrap().unwrap();
    assert_eq!(
        emu.stats().twoba.token.requests,
        1,
        "only the holder fetched"
    );
}

/// The holder learns on renewal that its lease is gone (another process took
/// it over, or a renewal by an owner that lost the lease): it abandons its
/// token request and publishes nothing. And when renewals merely fail, it
/// abandons the request before the lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_keep_its_lease_abandons_the_fetch_and_publishes_nothing() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(TestStore::default());
    let auth = builder(&emu, store.clone(), &clock)
        .lease_ttl(Duration::from_millis(300))
        .build()
        .unwrap();
    let conn = twoba();
    emu.set_token_latency(Provider::Twoba, Duration::from_secs(3));

    store.lease_taken_over.store(true, Ordering::Relaxed);
    let err = auth.credential_of("twoba", Some(&conn)).await.unwrap_err();
    assert!(
        matches!(err, Error::LeaseLost { reason, .. } if reason.contains("another process")),
        "{err:?}"
    );
    let state = store.inner.read(&twoba_key(&conn)).await.unwrap();
    assert!(state.token.is_none() && state.backoff.is_none() && state.version == 0);
    assert_eq!(
        store.renewals.load(Ordering::Relaxed),
        1,
        "stopped at the first refusal"
    );

    store.lease_taken_over.store(false, Ordering::Relaxed);
    store.renewals_fail.store(true, Ordering::Relaxed);
    clock.advance(Duration::from_secs(120)); // past this process's own backoff
    let err = auth.credential_of("twoba", Some(&conn)).await.unwrap_err();
    assert!(
        matches!(err, Error::LeaseLost { reason, .. } if reason.contains("in time")),
        "{err:?}"
    );
    assert!(
        store
            .inner
            .read(&twoba_key(&conn))
            .await
            .unwrap()
            .token
            .is_none()
    );
    assert!(
        err.to_string().contains("the next call tries again"),
        "{err}"
    );
    // Both token requests were dropped by the client, not answered.
    assert!(
        eventually(Duration::from_secs(5), || emu.stats().twoba.token.in_flight
            == 0)
        .await
    );
    assert_eq!(
        emu.stats()
            .twoba
            .token
            .replies_by_status
            .values()
            .sum::<u64>(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_down_cached_tokens_serve_and_rotating_providers_fail_typed() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(TestStore::default());
    let auth = builder(&emu, store.clone(), &clock)
        .store_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (tb, re) = (twoba(), reob());
    auth.credential_of("twoba", Some(&tb)).await.unwrap();
    auth.credential_of("reobtimaal", Some(&re)).await.unwrap();

    store.down.store(true, Ordering::Relaxed);
    // Valid cached tokens: served, the store is not asked.
    auth.credential_of("twoba", Some(&tb)).await.unwrap();
    auth.credential_of("reobtimaal", Some(&re)).await.unwrap();

    // Expired: 2BA rotates its refresh tokens, so no fetch without the store.
    clock.advance(Duration::from_secs(4 * 3600));
    let err = auth.credential_of("twoba", Some(&tb)).await.unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("local_fallback"), "{err}");
    // REOBtimaal only logs in: fetched by this process alone.
    let cred = auth.credential_of("reobtimaal", Some(&re)).await.unwrap();
    assert!(!cred.adopted());
    assert_eq!(auth.stats().degraded_fetches, 1);

    // A store that hangs is cut off by the store timeout.
    store.down.store(false, Ordering::Relaxed);
    store.hang.store(true, Ordering::Relaxed);
    clock.advance(Duration::from_secs(120));
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        auth.credential_of("twoba", Some(&tb)),
    )
    .await
    .expect("the store timeout ends the wait")
    .unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err:?}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("did not answer within 200ms"), "{source}");

    // Back: shared again, without a restart.
    store.hang.store(false, Ordering::Relaxed);
    clock.advance(Duration::from_secs(120));
    let before = emu.stats().twoba.token.requests;
    auth.credential_of("twoba", Some(&tb)).await.unwrap();
    assert_eq!(emu.stats().twoba.token.requests, before + 1);
    let state = store.inner.read(&twoba_key(&tb)).await.unwrap();
    assert!(state.token.is_some(), "published again");
    assert_eq!(emu.stats().twoba.token.refresh_reuse, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fallback_lets_a_rotating_provider_log_in_without_the_store() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(TestStore::default());
    store.down.store(true, Ordering::Relaxed);
    let auth = builder(&emu, store.clone(), &clock)
        .local_fallback(true)
        .build()
        .unwrap();
    let cred = auth.credential_of("twoba", Some(&twoba())).await.unwrap();
    assert!(cred.access_token().is_some());
    assert_eq!(emu.stats().twoba.token.requests_by_grant.password, 1);
    assert_eq!(auth.stats().degraded_fetches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_backs_off_every_process_sharing_the_store() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let all = engines(3, &emu, store, &clock);
    let conn = twoba();
    emu.fail_token_requests(Provider::Twoba, StatusFault::new(503, 100));
    let err = all[0]
        .credential_of("twoba", Some(&conn))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { .. }), "{err:?}");
    assert_eq!(emu.stats().twoba.token.requests, 1);
    for other in &all[1..] {
        let err = other.credential_of("twoba", Some(&conn)).await.unwrap_err();
        let Error::BackedOff {
            reason, retry_in, ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert!(reason.contains("503"), "{reason}");
        assert!(!retry_in.is_zero() && *retry_in <= Duration::from_secs(1));
        assert_no_secret(&err.to_string(), &[]);
    }
    assert_eq!(
        emu.stats().twoba.token.requests,
        1,
        "nobody else hammered the endpoint"
    );

    // After the backoff, one process tries again, for all.
    emu.clear_faults(Provider::Twoba);
    clock.advance(Duration::from_secs(2));
    for auth in &all {
        auth.credential_of("twoba", Some(&conn)).await.unwrap();
    }
    assert_eq!(emu.stats().twoba.token.requests, 2);
}

/// An API rejected the token: the process that saw it renews, and does not
/// adopt the same token back from the store; the others then adopt the new
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_replaced_not_adopted_again() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let all = engines(2, &emu, store, &clock);
    let conn = twoba();
    let old = all[0].credential_of("twoba", Some(&conn)).await.unwrap();
    let seen_by_b = all[1].credential_of("twoba", Some(&conn)).await.unwrap();
    assert!(seen_by_b.adopted());

    for auth in &all {
        let handle = auth.provider("twoba").unwrap();
        let rejected = handle.cached(Some(&conn)).unwrap();
        assert!(handle.invalidate(Some(&conn), &rejected).await);
        let new = handle.credential(Some(&conn)).await.unwrap();
        assert_ne!(
            new.access_token().unwrap().expose_secret(),
            old.access_token().unwrap().expose_secret()
        );
    }
    let grants = emu.stats().twoba.token.requests_by_grant;
    assert_eq!(
        (grants.password, grants.refresh_token),
        (1, 1),
        "one renewal, adopted by the other"
    );
}

/// The hot path does not change with a shared store: a cache hit never
/// calls it (a Redis round trip per request would cost more than the rest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_never_calls_the_shared_store() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(TestStore::default());
    let auth = builder(&emu, store.clone(), &clock).build().unwrap();
    let conn = twoba();
    auth.credential_of("twoba", Some(&conn)).await.unwrap();
    let after_fetch = store.calls.load(Ordering::Relaxed);
    assert!(
        after_fetch >= 4,
        "read, lease, read, publish, release: {after_fetch}"
    );
    let handle = auth.provider("twoba").unwrap();
    for _ in 0..10_000 {
        handle.credential(Some(&conn)).await.unwrap();
    }
    assert_eq!(store.calls.load(Ordering::Relaxed), after_fetch);
    assert_eq!(auth.stats().hits, 10_000);
}

/// A renewal that hangs past the lease's deadline counts as failed: the
/// holder drops its token request before the store lets another process take
/// the lease, so no refresh token is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_hangs_loses_the_lease_before_anyone_else_can_take_it() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(TestStore::default());
    let make = || {
        builder(&emu, store.clone(), &clock)
            .lease_ttl(Duration::from_millis(400))
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    let conn = twoba();
    a.credential_of("twoba", Some(&conn)).await.unwrap(); // login
    clock.advance(Duration::from_secs(4 * 3600)); // expired everywhere

    emu.set_token_latency(Provider::Twoba, Duration::from_millis(1500));
    store.slow_renewals.store(true, Ordering::Relaxed);
    let first = in_background(&a, &conn);
    assert!(
        eventually(Duration::from_secs(5), || emu.stats().twoba.token.in_flight
            == 1)
        .await
    );
    tokio::time::sleep(Duration::from_millis(600)).await; // past A's lease
    store.slow_renewals.store(false, Ordering::Relaxed);
    emu.set_token_latency(Provider::Twoba, Duration::ZERO);
    let second = b.credential_of("twoba", Some(&conn)).await;
    let first = first.await.unwrap();
    assert!(matches!(first, Err(Error::LeaseLost { .. })), "{first:?}");
    second.expect("the next holder fetches");
    assert!(
        eventually(Duration::from_secs(5), || emu.stats().twoba.token.in_flight
            == 0)
        .await
    );
    let token = emu.stats().twoba.token;
    assert_eq!(token.refresh_reuse, 0, "{token:?}");
}

/// The store fails at the compare-and-set right after a rotation: the new
/// access token is still handed out (it is valid), the failure is logged,
/// and the next renewal recovers by logging in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_save_of_a_rotated_refresh_token_still_hands_out_the_access_token() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(TestStore::default());
    let auth = builder(&emu, store.clone(), &clock).build().unwrap();
    let conn = twoba();
    auth.credential_of("twoba", Some(&conn)).await.unwrap();
    clock.advance(Duration::from_secs(4 * 3600));
    store.cas_down.store(true, Ordering::Relaxed);
    let cred = auth.credential_of("twoba", Some(&conn)).await.unwrap();
    assert_eq!(
        cred.obtained_by(),
        Some(tokenauth_core::RequestKind::Refresh)
    );
    store.cas_down.store(false, Ordering::Relaxed);
    clock.advance(Duration::from_secs(4 * 3600));
    auth.credential_of("twoba", Some(&conn)).await.unwrap();
    let grants = emu.stats().twoba.token.requests_by_grant;
    // The spent token was still stored: refused once, then a login.
    assert_eq!(
        (grants.password, grants.refresh_token),
        (2, 2),
        "{grants:?}"
    );
}

/// Settings at their extremes do not overflow the engine's time arithmetic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_lease_settings_do_not_break_fetching() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let auth = builder(&emu, store, &clock)
        .max_hold(Duration::MAX)
        .lease_ttl(Duration::MAX)
        .store_timeout(Duration::MAX)
        .failure_backoff(Duration::MAX, Duration::MAX)
        .build()
        .unwrap();
    auth.credential_of("twoba", Some(&twoba())).await.unwrap();
}

/// A published token from a store written before `renew_at` was kept (it
/// reads as the expiry) is adopted with this process's own schedule, and
/// one with less than a second left is not adopted at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_a_schedule_or_nearly_expired_are_handled() {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let dir = std::env::temp_dir().join(format!("tokenauth-old-{}", fastrand::u64(..)));
    let store = tokenauth_core::store::FileStore::new(&dir);
    let conn = twoba();
    let path = store.path_for(&twoba_key(&conn));
    std::fs::create_dir_all(&dir).unwrap();
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    };
    let write = |lifetime: Duration| {
        let record = serde_json::json!({
            "provider": "twoba", "connection": conn.id(), "version": 1, "fence": 1,
            "token": { "access": "from-an-older-version", "expires_at_ms": ms(clock.now() + lifetime) },
        });
        std::fs::write(&path, record.to_string()).unwrap();
    };
    write(Duration::from_millis(300));
    let auth = builder(
        &emu,
        Arc::new(tokenauth_core::store::FileStore::new(&dir)),
        &clock,
    )
    .build()
    .unwrap();
    let cred = auth.credential_of("twoba", Some(&conn)).await.unwrap();
    assert!(!cred.adopted(), "300 ms left: fetched instead");

    write(Duration::from_secs(100));
    let auth = builder(
        &emu,
        Arc::new(tokenauth_core::store::FileStore::new(&dir)),
        &clock,
    )
    .build()
    .unwrap();
    let cred = auth.credential_of("twoba", Some(&conn)).await.unwrap();
    assert!(cred.adopted());
    let renew_at = cred.renew_at().unwrap();
    assert!(
        renew_at < cred.expires_at().unwrap(),
        "renewed ahead of expiry"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
