//! The store protocol, checked the same way on every store of this crate
//! (the Redis store runs the same checks against a real server in
//! tokenauth-redis).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use tokenauth_core::store::{
    Backoff, CasOutcome, FileStore, Lease, LeaseOutcome, MemoryStore, Publication, SharedToken,
    StoreKey, TokenStore, WaitOutcome,
};

const KEY: StoreKey<'static> = StoreKey {
    provider: "twoba",
    connection: "tenant-42",
};
const TTL: Duration = Duration::from_secs(10);

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "tokenauth-protocol-{}-{name}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ))
}

/// A store's name and two handles on its storage (two processes, as far as
/// the store knows).
type Pair = (&'static str, Arc<dyn TokenStore>, Arc<dyn TokenStore>);

fn stores() -> Vec<Pair> {
    let memory = Arc::new(MemoryStore::new());
    let dir = scratch("pair");
    vec![
        ("memory", memory.clone(), memory),
        (
            "file",
            Arc::new(FileStore::new(&dir)),
            Arc::new(FileStore::new(&dir)),
        ),
    ]
}

fn acquired(outcome: LeaseOutcome) -> Lease {
    match outcome {
        LeaseOutcome::Acquired(lease) => lease,
        LeaseOutcome::Held { .. } => panic!("the lease is held"),
    }
}

fn token(access: &str) -> Publication {
    Publication {
        token: Some(SharedToken {
            access: SecretString::from(access.to_owned()),
            expires_at: SystemTime::now() + TTL,
            renew_at: SystemTime::now() + TTL / 2,
            api_base: Some("https://acme.my.example.com/".into()),
        }),
        backoff: None,
    }
}

#[tokio::test]
async fn leases_are_exclusive_fenced_and_only_their_holder_publishes() {
    for (name, a, b) in stores() {
        let short = Duration::from_millis(100);
        let first = acquired(a.try_lease(&KEY, "a", short).await.unwrap());
        assert!(
            matches!(b.try_lease(&KEY, "b", TTL).await.unwrap(), LeaseOutcome::Held { until } if until <= first.deadline()),
            "{name}"
        );
        tokio::time::sleep(short + Duration::from_millis(50)).await;
        let second = acquired(b.try_lease(&KEY, "b", TTL).await.unwrap());
        assert!(second.fence() > first.fence(), "{name}");
        // The first holder lost it: no renew, release or publish.
        assert_eq!(a.renew_lease(&first, TTL).await.unwrap(), None, "{name}");
        assert!(!a.release(&first).await.unwrap(), "{name}");
        assert!(
            !a.publish(&first, &token("at-stale")).await.unwrap(),
            "{name}"
        );
        // The second publishes once, renews, releases.
        assert!(b.publish(&second, &token("at-1")).await.unwrap(), "{name}");
        assert!(
            !b.publish(&second, &token("at-1b")).await.unwrap(),
            "{name}"
        );
        assert!(
            b.renew_lease(&second, TTL).await.unwrap().is_some(),
            "{name}"
        );
        let state = a.read(&KEY).await.unwrap();
        assert_eq!(state.version, second.fence(), "{name}");
        let token = state.token.unwrap();
        assert_eq!(token.access.expose_secret(), "at-1", "{name}");
        // The API base the reply bound the connection to travels with it.
        assert_eq!(
            token.api_base.as_deref(),
            Some("https://acme.my.example.com/"),
            "{name}"
        );
        assert!(b.release(&second).await.unwrap(), "{name}");
        let third = acquired(a.try_lease(&KEY, "a", TTL).await.unwrap());
        assert!(third.fence() > second.fence(), "{name}");
        // A backoff is published as well, its reason cut to the limit.
        let failed = Publication {
            token: None,
            backoff: Some(Backoff {
                until: SystemTime::now() + TTL,
                attempts: 3,
                reason: "é".repeat(400),
            }),
        };
        assert!(a.publish(&third, &failed).await.unwrap(), "{name}");
        let backoff = b.read(&KEY).await.unwrap().backoff.unwrap();
        assert_eq!(backoff.attempts, 3, "{name}");
        assert!(
            backoff.reason.len() <= tokenauth_core::store::MAX_BACKOFF_REASON,
            "{name}"
        );
    }
}

#[tokio::test]
async fn compare_and_set_has_one_winner_and_never_deletes_what_it_did_not_read() {
    for (name, a, b) in stores() {
        let rt0 = SecretString::from("rt-0");
        assert!(
            matches!(
                a.cas_refresh(&KEY, None, Some(&rt0)).await.unwrap(),
                CasOutcome::Written
            ),
            "{name}"
        );
        let (rt_a, rt_b) = (SecretString::from("rt-a"), SecretString::from("rt-b"));
        let (ra, rb) = tokio::join!(
            a.cas_refresh(&KEY, Some(&rt0), Some(&rt_a)),
            b.cas_refresh(&KEY, Some(&rt0), Some(&rt_b)),
        );
        let winner = match (ra.unwrap(), rb.unwrap()) {
            (CasOutcome::Written, CasOutcome::Conflict { current }) => {
                assert_eq!(current.unwrap().expose_secret(), "rt-a", "{name}");
                "rt-a"
            }
            (CasOutcome::Conflict { current }, CasOutcome::Written) => {
                assert_eq!(current.unwrap().expose_secret(), "rt-b", "{name}");
                "rt-b"
            }
            other => panic!("{name}: not one winner: {other:?}"),
        };
        // The loser's removal of the token it used removes nothing.
        assert!(
            matches!(b.cas_refresh(&KEY, Some(&rt0), None).await.unwrap(), CasOutcome::Conflict { current: Some(c) } if c.expose_secret() == winner),
            "{name}"
        );
        let stored = a.read(&KEY).await.unwrap().refresh_token.unwrap();
        assert_eq!(stored.expose_secret(), winner, "{name}");
    }
}

#[tokio::test]
async fn waiters_see_a_publish_a_release_or_their_timeout() {
    for (name, a, b) in stores() {
        let lease = acquired(a.try_lease(&KEY, "a", TTL).await.unwrap());
        assert!(
            matches!(
                b.wait(&KEY, 0, Duration::from_millis(100)).await.unwrap(),
                WaitOutcome::TimedOut
            ),
            "{name}"
        );
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.wait(&KEY, 0, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(a.publish(&lease, &token("at-1")).await.unwrap(), "{name}");
        assert!(
            matches!(waiting.await.unwrap().unwrap(), WaitOutcome::Published(s) if s.version == lease.fence()),
            "{name}"
        );
        let waiting = tokio::spawn({
            let b = b.clone();
            let seen = lease.fence();
            async move { b.wait(&KEY, seen, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(a.release(&lease).await.unwrap(), "{name}");
        assert!(
            matches!(waiting.await.unwrap().unwrap(), WaitOutcome::LeaseFree),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_corrupt_file_is_a_typed_error_that_says_what_to_do() {
    let dir = scratch("corrupt");
    let store = FileStore::new(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(store.path_for(&KEY), b"{\"provider\": 7").unwrap();
    let err = store.read(&KEY).await.unwrap_err();
    assert_eq!(err.kind(), tokenauth_core::store::StoreErrorKind::Corrupt);
    assert!(err.to_string().contains("delete it"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hand_written_v1_file_still_reads() {
    let dir = scratch("v1");
    let store = FileStore::new(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        store.path_for(&KEY),
        br#"{"provider":"twoba","connection":"tenant-42","refresh_token":"rt-by-hand"}"#,
    )
    .unwrap();
    // The file name is the v1 one (the same hash).
    assert_eq!(
        store.path_for(&KEY).file_name().unwrap(),
        format!("rt-{}.json", KEY.digest()).as_str()
    );
    let state = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(store.read(&KEY))
        .unwrap();
    assert_eq!(state.refresh_token.unwrap().expose_secret(), "rt-by-hand");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A lease written while the wall clock was far ahead (a day) would block
/// the key until that date: a deadline beyond the longest lease counts as
/// expired, and the next taker gets a larger fencing number.
#[tokio::test]
async fn a_lease_from_a_clock_far_ahead_does_not_block_the_key() {
    let dir = scratch("lease-far-ahead");
    let store = FileStore::new(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let day_ahead = SystemTime::now() + Duration::from_secs(24 * 3600);
    let ms = day_ahead
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let record = serde_json::json!({
        "provider": KEY.provider, "connection": KEY.connection, "fence": 7,
        "lease": { "owner": "a-clock-from-tomorrow", "fence": 7, "deadline_ms": ms },
    });
    std::fs::write(store.path_for(&KEY), record.to_string()).unwrap();
    let lease = acquired(store.try_lease(&KEY, "worker-1", TTL).await.unwrap());
    assert!(lease.fence() > 7, "{lease:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
