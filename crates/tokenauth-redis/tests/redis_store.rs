//! The Redis store against a real `redis-server` (started per test on a
//! free loopback port; `apt-get install -y redis-server`).

mod helpers;

use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use tokenauth_core::store::{
    Backoff, CasOutcome, Lease, LeaseOutcome, Publication, SharedToken, StoreErrorKind, StoreKey,
    TokenStore, WaitOutcome,
};
use tokenauth_redis::{EncryptionKey, Keyring, RedisStore, RedisStoreBuilder};

use helpers::RedisServer;

const KEY: StoreKey<'static> = StoreKey {
    provider: "twoba",
    connection: "tenant-acme-corp",
};
const TTL: Duration = Duration::from_secs(10);

fn keyring(id: &str, byte: u8) -> Keyring {
    Keyring::new(EncryptionKey::new(id, &[byte; 32]).unwrap())
}

fn builder(server: &RedisServer) -> RedisStoreBuilder {
    RedisStore::builder(server.url())
        .key_prefix("test")
        .encryption(keyring("k1", 1))
}

async fn store(server: &RedisServer) -> RedisStore {
    builder(server).build().await.unwrap()
}

/// A plain connection for looking at what the store wrote.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Runs `cmd` on the raw connection.
async fn query<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    cmd: &redis::Cmd,
) -> T {
    cmd.query_async(conn).await.unwrap()
}

fn acquired(outcome: LeaseOutcome) -> Lease {
    match outcome {
        LeaseOutcome::Acquired(lease) => lease,
        LeaseOutcome::Held { .. } => panic!("the lease is held"),
    }
}

fn token(access: &str, lifetime: Duration) -> Publication {
    Publication {
        token: Some(SharedToken {
            access: SecretString::from(access.to_owned()),
            expires_at: SystemTime::now() + lifetime,
            renew_at: SystemTime::now() + lifetime / 2,
            api_base: None,
        }),
        backoff: None,
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// A store with a published token (`at-1`) and a refresh token (`rt-1`),
/// and the lease that published it.
async fn filled(server: &RedisServer) -> (RedisStore, Lease) {
    let store = store(server).await;
    let lease = acquired(store.try_lease(&KEY, "a", TTL).await.unwrap());
    assert!(store.publish(&lease, &token("at-1", TTL)).await.unwrap());
    let stored = store
        .cas_refresh(&KEY, None, Some(&secret("rt-1")))
        .await
        .unwrap();
    assert!(matches!(stored, CasOutcome::Written));
    (store, lease)
}

#[tokio::test]
async fn one_lease_across_stores_and_the_fence_grows() {
    let server = RedisServer::start();
    let (a, b) = (store(&server).await, store(&server).await);
    let first = acquired(a.try_lease(&KEY, "a", TTL).await.unwrap());
    for taker in [&a, &b] {
        match taker.try_lease(&KEY, "b", TTL).await.unwrap() {
            LeaseOutcome::Held { until } => {
                let left = until.duration_since(SystemTime::now()).unwrap();
                assert!(
                    left > TTL - Duration::from_secs(2) && left <= TTL,
                    "{left:?}"
                );
            }
            LeaseOutcome::Acquired(_) => panic!("two holders"),
        }
    }
    assert!(a.release(&first).await.unwrap());
    let second = acquired(b.try_lease(&KEY, "b", TTL).await.unwrap());
    assert!(second.fence() > first.fence());
    // Many concurrent takers: exactly one wins.
    assert!(b.release(&second).await.unwrap());
    let takers = (0..8).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { store.try_lease(&KEY, &format!("w{i}"), TTL).await.unwrap() }
    });
    let outcomes = futures_util::future::join_all(takers).await;
    let won: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            LeaseOutcome::Acquired(lease) => Some(lease.fence()),
            LeaseOutcome::Held { .. } => None,
        })
        .collect();
    assert_eq!(won.len(), 1);
    assert!(won[0] > second.fence());
}

#[tokio::test]
async fn a_stale_holder_can_neither_renew_release_nor_publish() {
    let server = RedisServer::start();
    let (a, b) = (store(&server).await, store(&server).await);
    let short = Duration::from_millis(150);
    let stale = acquired(a.try_lease(&KEY, "a", short).await.unwrap());
    // Renewed while held...
    assert!(a.renew_lease(&stale, short).await.unwrap().is_some());
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    // ...but it expired, and b took over.
    let current = acquired(b.try_lease(&KEY, "b", TTL).await.unwrap());
    assert_eq!(a.renew_lease(&stale, TTL).await.unwrap(), None);
    assert!(!a.release(&stale).await.unwrap());
    assert!(!a.publish(&stale, &token("at-stale", TTL)).await.unwrap());
    // The same owner id with an old fence is stale too.
    let same_owner_old_fence = Lease::new(&KEY, "b", stale.fence(), current.deadline());
    assert!(!b.release(&same_owner_old_fence).await.unwrap());
    // b's lease is untouched and works.
    assert!(matches!(
        a.try_lease(&KEY, "a", TTL).await.unwrap(),
        LeaseOutcome::Held { .. }
    ));
    assert!(
        b.publish(&current, &token("at-current", TTL))
            .await
            .unwrap()
    );
    let state = a.read(&KEY).await.unwrap();
    assert_eq!(state.version, current.fence());
    assert_eq!(state.token.unwrap().access.expose_secret(), "at-current");
    // A holder publishes once per lease: a second publish is refused.
    assert!(!b.publish(&current, &token("at-again", TTL)).await.unwrap());
}

#[tokio::test]
async fn a_rotation_race_has_one_winner_and_the_loser_sees_its_token() {
    let server = RedisServer::start();
    let (a, b) = (store(&server).await, store(&server).await);
    let rt0 = secret("rt-zero");
    assert!(matches!(
        a.cas_refresh(&KEY, None, Some(&rt0)).await.unwrap(),
        CasOutcome::Written
    ));
    let (rt_a, rt_b) = (secret("rt-from-a"), secret("rt-from-b"));
    let (ra, rb) = tokio::join!(
        a.cas_refresh(&KEY, Some(&rt0), Some(&rt_a)),
        b.cas_refresh(&KEY, Some(&rt0), Some(&rt_b)),
    );
    let (winner, loser_saw) = match (ra.unwrap(), rb.unwrap()) {
        (CasOutcome::Written, CasOutcome::Conflict { current }) => (rt_a, current),
        (CasOutcome::Conflict { current }, CasOutcome::Written) => (rt_b, current),
        other => panic!("not one winner: {other:?}"),
    };
    assert_eq!(
        loser_saw.unwrap().expose_secret(),
        winner.expose_secret(),
        "the loser sees the winner's token"
    );
    // The loser's "remove the dead one" removes nothing it did not read.
    match b.cas_refresh(&KEY, Some(&rt0), None).await.unwrap() {
        CasOutcome::Conflict { current } => {
            assert_eq!(current.unwrap().expose_secret(), winner.expose_secret())
        }
        CasOutcome::Written => panic!("deleted the winner's token"),
    }
    let stored = a.read(&KEY).await.unwrap().refresh_token.unwrap();
    assert_eq!(stored.expose_secret(), winner.expose_secret());
    // Removal with the right token works, and a removed token is not
    // resurrected by a compare against it.
    assert!(matches!(
        a.cas_refresh(&KEY, Some(&winner), None).await.unwrap(),
        CasOutcome::Written
    ));
    assert!(a.read(&KEY).await.unwrap().refresh_token.is_none());
    assert!(matches!(
        b.cas_refresh(&KEY, Some(&winner), Some(&rt0))
            .await
            .unwrap(),
        CasOutcome::Conflict { current: None }
    ));
}

#[tokio::test]
async fn a_waiter_is_woken_by_the_publish_notification() {
    let server = RedisServer::start();
    let holder = store(&server).await;
    // Polling every 30 s: only the notification can wake it in time.
    let waiter = builder(&server)
        .poll_interval(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let lease = acquired(holder.try_lease(&KEY, "holder", TTL).await.unwrap());
    let started = Instant::now();
    let waiting = tokio::spawn(async move { waiter.wait(&KEY, 0, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(holder.publish(&lease, &token("at-1", TTL)).await.unwrap());
    match waiting.await.unwrap().unwrap() {
        WaitOutcome::Published(state) => {
            assert_eq!(state.token.unwrap().access.expose_secret(), "at-1");
            assert_eq!(state.version, lease.fence());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A release wakes waiters too: the lease is free.
    let waiter = builder(&server)
        .poll_interval(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let seen = lease.fence();
    let started = Instant::now();
    let waiting =
        tokio::spawn(async move { waiter.wait(&KEY, seen, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(holder.release(&lease).await.unwrap());
    assert!(matches!(
        waiting.await.unwrap().unwrap(),
        WaitOutcome::LeaseFree
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn without_notifications_a_waiter_polls_and_times_out_while_held() {
    let server = RedisServer::start();
    let holder = store(&server).await;
    let waiter = builder(&server)
        .pubsub(false)
        .poll_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let lease = acquired(holder.try_lease(&KEY, "holder", TTL).await.unwrap());
    // Held, nothing published: bounded by the timeout.
    let started = Instant::now();
    assert!(matches!(
        waiter
            .wait(&KEY, 0, Duration::from_millis(300))
            .await
            .unwrap(),
        WaitOutcome::TimedOut
    ));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.wait(&KEY, 0, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let failed = Publication {
        token: None,
        backoff: Some(Backoff {
            until: SystemTime::now() + Duration::from_secs(5),
            attempts: 1,
            reason: "login failed: HTTP 503".to_owned(),
        }),
    };
    assert!(holder.publish(&lease, &failed).await.unwrap());
    match waiting.await.unwrap().unwrap() {
        WaitOutcome::Published(state) => {
            let backoff = state.backoff.unwrap();
            assert_eq!(backoff.attempts, 1);
            assert_eq!(backoff.reason, "login failed: HTTP 503");
            assert!(state.token.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_state_expires_a_grace_period_after_the_token() {
    let server = RedisServer::start();
    let store = builder(&server)
        .state_grace(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let lease = acquired(store.try_lease(&KEY, "a", TTL).await.unwrap());
    assert!(
        store
            .publish(&lease, &token("at-1", Duration::from_secs(30)))
            .await
            .unwrap()
    );
    let mut conn = raw(&server).await;
    let keys: Vec<String> = query(&mut conn, redis::cmd("KEYS").arg("*:state")).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let pttl: i64 = query(&mut conn, redis::cmd("PTTL").arg(&keys[0])).await;
    assert!((85_000..=90_000).contains(&pttl), "{pttl}");
    // The lease expires at its deadline; the refresh token never expires.
    let _ = store
        .cas_refresh(&KEY, None, Some(&secret("rt-1")))
        .await
        .unwrap();
    let ttls: Vec<(String, i64)> = {
        let mut out = Vec::new();
        for suffix in ["lease", "rt"] {
            let key = keys[0].replace(":state", &format!(":{suffix}"));
            let t: i64 = query(&mut conn, redis::cmd("PTTL").arg(&key)).await;
            out.push((suffix.to_owned(), t));
        }
        out
    };
    assert!((1..=10_000).contains(&ttls[0].1), "{ttls:?}");
    assert_eq!(ttls[1].1, -1, "{ttls:?}");
}

#[tokio::test]
async fn flushall_leaves_an_empty_store_that_works() {
    let server = RedisServer::start();
    let (store, lease) = filled(&server).await;
    let mut conn = raw(&server).await;
    let () = query(&mut conn, &redis::cmd("FLUSHALL")).await;

    let state = store.read(&KEY).await.unwrap();
    assert!(state.token.is_none() && state.refresh_token.is_none() && state.version == 0);
    assert!(
        !store.publish(&lease, &token("at-2", TTL)).await.unwrap(),
        "its lease is gone"
    );
    assert!(!store.release(&lease).await.unwrap());
    assert!(matches!(
        store.wait(&KEY, 0, TTL).await.unwrap(),
        WaitOutcome::LeaseFree
    ));
    let again = acquired(store.try_lease(&KEY, "a", TTL).await.unwrap());
    assert!(store.publish(&again, &token("at-3", TTL)).await.unwrap());
    assert!(matches!(
        store
            .cas_refresh(&KEY, None, Some(&secret("rt-2")))
            .await
            .unwrap(),
        CasOutcome::Written
    ));
}

#[tokio::test]
async fn nothing_secret_is_in_redis_in_clear() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let (access, refresh, reason) = (
        "at-9f8e7d6c5b4a",
        "rt-0a1b2c3d4e5f",
        "login-failed-reason-text",
    );
    let lease = acquired(store.try_lease(&KEY, "worker-1", TTL).await.unwrap());
    let _ = store
        .cas_refresh(&KEY, None, Some(&secret(refresh)))
        .await
        .unwrap();
    let mut published = token(access, TTL);
    published.backoff = Some(Backoff {
        until: SystemTime::now() + TTL,
        attempts: 2,
        reason: reason.to_owned(),
    });
    assert!(store.publish(&lease, &published).await.unwrap());

    let mut conn = raw(&server).await;
    let keys: Vec<String> = query(&mut conn, redis::cmd("KEYS").arg("*")).await;
    assert_eq!(keys.len(), 4, "state, rt, lease, fence: {keys:?}");
    let mut everything = String::new();
    for key in &keys {
        assert!(key.starts_with("tokenauth:test:{twoba:"), "{key}");
        let kind: String = query(&mut conn, redis::cmd("TYPE").arg(key)).await;
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "hash" => query(&mut conn, redis::cmd("HGETALL").arg(key)).await,
            _ => vec![query(&mut conn, redis::cmd("GET").arg(key)).await],
        };
        everything.push_str(key);
        for v in values {
            everything.push_str(&String::from_utf8_lossy(&v));
        }
    }
    for needle in [access, refresh, reason, KEY.connection, "acme"] {
        assert!(
            !everything.contains(needle),
            "{needle} is in Redis in clear"
        );
    }
    // And none in the store's Debug output either.
    let debug = format!("{store:?}");
    assert!(!debug.contains(&format!("{:?}", [1u8; 32])), "{debug}");
}

#[tokio::test]
async fn keys_rotate_and_a_wrong_key_is_a_clear_error() {
    let server = RedisServer::start();
    let old = store(&server).await; // k1
    let _ = old
        .cas_refresh(&KEY, None, Some(&secret("rt-sealed-with-k1")))
        .await
        .unwrap();

    // The new keyring seals with k2 and still opens k1's values.
    let new = RedisStore::builder(server.url())
        .key_prefix("test")
        .encryption(
            Keyring::new(EncryptionKey::new("k2", &[2; 32]).unwrap())
                .with_old_key(EncryptionKey::new("k1", &[1; 32]).unwrap()),
        )
        .build()
        .await
        .unwrap();
    let state = new.read(&KEY).await.unwrap();
    assert_eq!(
        state.refresh_token.unwrap().expose_secret(),
        "rt-sealed-with-k1"
    );
    assert!(matches!(
        new.cas_refresh(
            &KEY,
            Some(&secret("rt-sealed-with-k1")),
            Some(&secret("rt-sealed-with-k2"))
        )
        .await
        .unwrap(),
        CasOutcome::Written
    ));
    let mut conn = raw(&server).await;
    let keys: Vec<String> = query(&mut conn, redis::cmd("KEYS").arg("*:rt")).await;
    let sealed: String = query(&mut conn, redis::cmd("HGET").arg(&keys[0]).arg("d")).await;
    assert!(sealed.starts_with("tokenauth1.enc.k2."), "{sealed}");

    // A store without k2: a typed error that names the key id, no secret.
    let err = old.read(&KEY).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Decrypt);
    let message = err.to_string();
    assert!(
        message.contains("`k2`") && message.contains("keyring"),
        "{message}"
    );
    assert!(!message.contains("rt-sealed"), "{message}");

    // The right id with the wrong bytes.
    let wrong = RedisStore::builder(server.url())
        .key_prefix("test")
        .encryption(keyring("k2", 9))
        .build()
        .await
        .unwrap();
    let err = wrong.read(&KEY).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Decrypt);
    assert!(
        err.to_string().contains("does not decrypt with key `k2`"),
        "{err}"
    );
    // It neither overwrites nor deletes what it cannot read.
    let err = wrong
        .cas_refresh(&KEY, None, Some(&secret("x")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Decrypt);
    assert!(new.read(&KEY).await.unwrap().refresh_token.is_some());
}

#[tokio::test]
async fn plaintext_needs_an_explicit_opt_in() {
    let server = RedisServer::start();
    let err = RedisStore::builder(server.url())
        .key_env("TOKENAUTH_TEST_KEY_THAT_IS_NEVER_SET")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Config);
    let message = err.to_string();
    assert!(
        message.contains("TOKENAUTH_TEST_KEY_THAT_IS_NEVER_SET")
            && message.contains("openssl rand -base64 32")
            && message.contains("plaintext"),
        "{message}"
    );

    let plain = RedisStore::builder(server.url())
        .key_prefix("test")
        .key_env("TOKENAUTH_TEST_KEY_THAT_IS_NEVER_SET")
        .plaintext()
        .build()
        .await
        .unwrap();
    let _ = plain
        .cas_refresh(&KEY, None, Some(&secret("rt-plain")))
        .await
        .unwrap();
    assert_eq!(
        plain
            .read(&KEY)
            .await
            .unwrap()
            .refresh_token
            .unwrap()
            .expose_secret(),
        "rt-plain"
    );
    // An encrypting store does not accept a plaintext value.
    let err = store(&server).await.read(&KEY).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Decrypt);
    assert!(err.to_string().contains("plaintext"), "{err}");
}

#[tokio::test]
async fn garbage_in_redis_is_a_typed_error_or_absent_never_a_panic() {
    let server = RedisServer::start();
    let (store, _lease) = filled(&server).await;
    let mut conn = raw(&server).await;
    let keys: Vec<String> = query(&mut conn, redis::cmd("KEYS").arg("*")).await;
    let named = |suffix: &str| keys.iter().find(|k| k.ends_with(suffix)).unwrap().clone();

    // A state that is not ours: absent (it is refetched).
    let () = query(
        &mut conn,
        redis::cmd("HSET")
            .arg(named(":state"))
            .arg("d")
            .arg("not a sealed value"),
    )
    .await;
    let state = store.read(&KEY).await.unwrap();
    assert!(state.token.is_none());
    assert_eq!(state.refresh_token.unwrap().expose_secret(), "rt-1");

    // A refresh token that is not ours: a typed error that says what to do.
    let () = query(
        &mut conn,
        redis::cmd("HSET")
            .arg(named(":rt"))
            .arg("d")
            .arg("tokenauth1.enc.k1.%%%"),
    )
    .await;
    let err = store.read(&KEY).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    assert!(err.to_string().contains("delete the key"), "{err}");

    // A key of the wrong type: the server refuses, a typed error.
    let () = query(&mut conn, redis::cmd("DEL").arg(named(":rt"))).await;
    let () = query(
        &mut conn,
        redis::cmd("SET").arg(named(":rt")).arg("a string"),
    )
    .await;
    let err = store.read(&KEY).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Server, "{err}");
}

#[tokio::test]
async fn a_stopped_server_is_unavailable_within_the_timeout() {
    let server = RedisServer::start();
    let store = builder(&server)
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    drop(server);
    let started = Instant::now();
    let err = store.read(&KEY).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

/// A lazy store starts while Redis is down: calls are unavailable (within
/// the timeout) until the server is back, then work without a new store.
#[tokio::test]
async fn a_lazy_store_starts_while_redis_is_down_and_connects_when_it_is_back() {
    let mut server = RedisServer::start();
    server.stop();
    let store = builder(&server)
        .timeout(Duration::from_millis(300))
        .lazy(true)
        .build()
        .await
        .expect("a lazy store needs no server to build");
    let err = store.read(&KEY).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    server.restart();
    let mut answered = false;
    for _ in 0..50 {
        if store.read(&KEY).await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the lazy store connected once Redis was back");
    let rt = secret("rt-after-the-outage");
    assert!(matches!(
        store.cas_refresh(&KEY, None, Some(&rt)).await.unwrap(),
        tokenauth_core::store::CasOutcome::Written
    ));
}

/// A wrong password is named as such (not as an unreachable server), and
/// never shown.
#[tokio::test]
async fn a_refused_password_is_a_config_error_that_does_not_show_it() {
    let server = RedisServer::start_with(&["--requirepass", "right-pass-4f2a"]);
    let url = format!("redis://:wrong-pass-9c1d@127.0.0.1:{}/0", server.port());
    let err = RedisStore::builder(url)
        .encryption(keyring("k1", 1))
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Config, "{err}");
    assert!(
        err.to_string()
            .contains("refused the credentials in the URL"),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("pass-"), "{err:?}");
    let url = format!("redis://:right-pass-4f2a@127.0.0.1:{}/0", server.port());
    let store = RedisStore::builder(url)
        .encryption(keyring("k1", 1))
        .build()
        .await
        .expect("the right password works");
    assert!(store.read(&KEY).await.is_ok());
}

/// A failover (the server became a read-only replica; likewise loading,
/// primary down, a resharding cluster) is the store being unavailable, so
/// the engine serves cached tokens and falls back, rather than a
/// misconfiguration.
#[tokio::test]
async fn a_read_only_replica_after_a_failover_is_unavailable() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mut conn = raw(&server).await;
    let _: () = query(&mut conn, redis::cmd("REPLICAOF").arg("127.0.0.1").arg("1")).await;
    let err = store.try_lease(&KEY, "worker-1", TTL).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("could not be reached"), "{err}");
}
