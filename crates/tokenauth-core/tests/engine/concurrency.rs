//! Single-flight, shared errors, refresh-ahead, invalidation races,
//! cancellation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokenauth_core::{Credential, Error};
use tokenauth_emulator::{Provider, StatusFault};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_first_requests_make_one_token_request() {
    let s = setup().await;
    // Slow enough that every caller arrives while the fetch is in flight.
    s.emu
        .set_token_latency(Provider::Reobtimaal, Duration::from_millis(100));
    let auth = s.auth.clone();
    let conn = reob();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (auth, conn) = (auth.clone(), conn.clone());
            tokio::spawn(async move { auth.credential_of("reobtimaal", Some(&conn)).await })
        })
        .collect();
    let creds: Vec<Credential> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let id = creds[0].token_id();
    assert!(
        creds.iter().all(|c| c.token_id() == id),
        "everyone shares one token"
    );
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 1);
    assert_eq!(s.auth.stats().token_requests, 1);
    assert_eq!(s.auth.stats().fetches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_login_is_one_request_and_every_caller_gets_the_error() {
    let s = setup().await;
    s.emu
        .set_token_latency(Provider::Twoba, Duration::from_millis(100));
    // A 400 is not retried; the emulator fails exactly as many as it is told.
    s.emu
        .fail_token_requests(Provider::Twoba, StatusFault::new(400, 1000));
    let conn = twoba();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (auth, conn) = (s.auth.clone(), conn.clone());
            tokio::spawn(async move { auth.credential_of("twoba", Some(&conn)).await })
        })
        .collect();
    let errors: Vec<Error> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap_err())
        .collect();
    let first = errors[0].to_string();
    assert!(
        errors
            .iter()
            .all(|e| e.to_string() == first && e.status() == Some(http::StatusCode::BAD_REQUEST))
    );
    assert_eq!(
        s.emu.stats().twoba.token.requests,
        1,
        "one request for 1000 callers"
    );

    // Within the backoff the cached error comes back without a request.
    let err = s
        .auth
        .credential_of("twoba", Some(&conn))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), first);
    assert_eq!(s.emu.stats().twoba.token.requests, 1);
    assert_eq!(s.auth.stats().cached_errors, 1);

    // After the backoff (1 s, injected clock) the next call tries again.
    s.emu.clear_faults(Provider::Twoba);
    s.clock.advance(Duration::from_secs(2));
    s.auth.credential_of("twoba", Some(&conn)).await.unwrap();
    assert_eq!(s.emu.stats().twoba.token.requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_backoff_grows_and_honours_retry_after() {
    let s = setup().await;
    s.emu.fail_token_requests(
        Provider::Reobtimaal,
        StatusFault::new(503, 100).retry_after(30),
    );
    let conn = reob();
    let err = s
        .auth
        .credential_of("reobtimaal", Some(&conn))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    // Retry-After (30 s) exceeds the in-acquisition retry cap: no retries.
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 1);
    // ... and it is honoured as the backoff.
    s.clock.advance(Duration::from_secs(20));
    assert!(
        s.auth
            .credential_of("reobtimaal", Some(&conn))
            .await
            .is_err()
    );
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 1);
    s.clock.advance(Duration::from_secs(11));
    s.emu.clear_faults(Provider::Reobtimaal);
    s.auth
        .credential_of("reobtimaal", Some(&conn))
        .await
        .unwrap();
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_renewal_window_callers_get_the_token_at_once_and_one_renewal_runs() {
    let s = setup().await;
    let conn = twoba();
    let first = s.auth.credential_of("twoba", Some(&conn)).await.unwrap();
    // A slow renewal: nobody may wait for it.
    s.emu
        .set_token_latency(Provider::Twoba, Duration::from_millis(300));
    s.clock.advance(Duration::from_secs(100)); // 20 s before expiry: in the window
    let started = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (auth, conn) = (s.auth.clone(), conn.clone());
            tokio::spawn(async move { auth.credential_of("twoba", Some(&conn)).await })
        })
        .collect();
    let creds: Vec<Credential> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let waited = started.elapsed();
    assert!(
        creds.iter().all(|c| c.token_id() == first.token_id()),
        "the current token is served"
    );
    assert!(
        waited < Duration::from_millis(300),
        "no caller waited for the renewal ({waited:?})"
    );
    assert_eq!(s.auth.stats().renewals, 1, "exactly one background renewal");

    // The renewal lands; the next call sees the new token.
    assert!(
        eventually(Duration::from_secs(2), || s
            .emu
            .stats()
            .twoba
            .token
            .replies_by_status
            .get(&200)
            == Some(&2))
        .await
    );
    let auth = s.auth.clone();
    let conn2 = conn.clone();
    let mut renewed = None;
    for _ in 0..100 {
        let c = auth.credential_of("twoba", Some(&conn2)).await.unwrap();
        if c.token_id() != first.token_id() {
            renewed = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let renewed = renewed.expect("renewed token in the cache");
    assert!(renewed.expires_at() > first.expires_at());
    let grants = s.emu.stats().twoba.token.requests_by_grant;
    assert_eq!((grants.password, grants.refresh_token), (1, 1));
    assert_eq!(s.auth.stats().renewals, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_keeps_serving_the_valid_token_and_backs_off() {
    let s = setup().await;
    let conn = reob();
    let first = s
        .auth
        .credential_of("reobtimaal", Some(&conn))
        .await
        .unwrap();
    s.emu
        .fail_token_requests(Provider::Reobtimaal, StatusFault::new(500, 100));
    s.clock.advance(Duration::from_secs(57 * 60)); // in the window, still valid
    let c = s
        .auth
        .credential_of("reobtimaal", Some(&conn))
        .await
        .unwrap();
    assert_eq!(c.token_id(), first.token_id());
    // 1 + 2 retries, then the renewal gives up for now.
    assert!(eventually(Duration::from_secs(2), || s.auth.stats().failures == 1).await);
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 4);
    for _ in 0..20 {
        let c = s
            .auth
            .credential_of("reobtimaal", Some(&conn))
            .await
            .unwrap();
        assert_eq!(c.token_id(), first.token_id(), "still served");
    }
    assert_eq!(
        s.emu.stats().reobtimaal.token.requests,
        4,
        "backing off: no new renewal"
    );
    // After the backoff the endpoint has healed: the renewal succeeds.
    s.emu.clear_faults(Provider::Reobtimaal);
    s.clock.advance(Duration::from_secs(2));
    s.auth
        .credential_of("reobtimaal", Some(&conn))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(2), || s
            .emu
            .stats()
            .reobtimaal
            .token
            .status(200)
            == 2)
        .await
    );
    assert_eq!(s.auth.stats().renewals, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_invalidations_of_one_token_cause_one_renewal() {
    let s = setup().await;
    let conn = twoba();
    let rejected = s.auth.credential_of("twoba", Some(&conn)).await.unwrap();
    let rejected = Arc::new(rejected);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (auth, conn, rejected) = (s.auth.clone(), conn.clone(), rejected.clone());
            tokio::spawn(async move {
                let handle = auth.provider("twoba").unwrap();
                let dropped = handle.invalidate(Some(&conn), &rejected).await;
                let fresh = handle.credential(Some(&conn)).await.unwrap();
                (dropped, fresh.token_id())
            })
        })
        .collect();
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results.iter().filter(|(dropped, _)| *dropped).count(),
        1,
        "dropped once"
    );
    let new_id = results[0].1;
    assert!(
        results
            .iter()
            .all(|(_, id)| *id == new_id && *id != rejected.token_id())
    );
    let grants = s.emu.stats().twoba.token.requests_by_grant;
    assert_eq!(
        (grants.password, grants.refresh_token),
        (1, 1),
        "one renewal, by refresh"
    );
    assert_eq!(s.auth.stats().invalidations, 1);
    // Invalidating the old token again changes nothing.
    assert!(
        !s.auth
            .provider("twoba")
            .unwrap()
            .invalidate(Some(&conn), &rejected)
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_caller_does_not_stall_the_others() {
    let s = setup().await;
    s.emu
        .set_token_latency(Provider::Reobtimaal, Duration::from_millis(150));
    let conn = reob();
    let (auth, c) = (s.auth.clone(), conn.clone());
    let leader = tokio::spawn(async move { auth.credential_of("reobtimaal", Some(&c)).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    leader.abort(); // the caller that started the fetch goes away
    let cred = tokio::time::timeout(
        Duration::from_secs(2),
        s.auth.credential_of("reobtimaal", Some(&conn)),
    )
    .await
    .expect("not stalled")
    .unwrap();
    assert_eq!(
        s.emu.stats().reobtimaal.token.requests,
        1,
        "the fetch was not restarted"
    );
    assert_eq!(
        s.auth
            .credential_of("reobtimaal", Some(&conn))
            .await
            .unwrap()
            .token_id(),
        cred.token_id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_cached_separately() {
    let s = setup().await;
    let a = reob();
    let b = tokenauth_core::Connection::new("admin")
        .with_input("username", tokenauth_emulator::REOB_ADMIN_USERNAME)
        .with_secret("password", tokenauth_emulator::REOB_ADMIN_PASSWORD);
    let ca = s.auth.credential_of("reobtimaal", Some(&a)).await.unwrap();
    let cb = s.auth.credential_of("reobtimaal", Some(&b)).await.unwrap();
    assert_ne!(ca.token_id(), cb.token_id());
    assert_eq!((ca.connection(), cb.connection()), ("reob-demo", "admin"));
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 2);
}
