//! 2BA refresh tokens: rotation, revocation -> login, stores.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use tokenauth_core::clock::ManualClock;
use tokenauth_core::store::{
    CasOutcome, FileStore, Lease, LeaseOutcome, MemoryStore, Publication, SharedState, StoreError,
    StoreKey, TokenStore, WaitOutcome,
};
use tokenauth_core::{Connection, TokenAuth};
use tokenauth_emulator::{Emulator, Provider};

use crate::helpers::*;

#[tokio::test]
async fn many_refreshes_in_a_row_each_use_the_newest_refresh_token() {
    let s = setup().await;
    let conn = twoba();
    let mut ids = HashSet::new();
    ids.insert(
        s.auth
            .credential_of("twoba", Some(&conn))
            .await
            .unwrap()
            .token_id(),
    );
    for _ in 0..10 {
        s.clock.advance(Duration::from_secs(121)); // expired: the next call refreshes
        ids.insert(
            s.auth
                .credential_of("twoba", Some(&conn))
                .await
                .unwrap()
                .token_id(),
        );
    }
    assert_eq!(ids.len(), 11, "a new token each time");
    let token = s.emu.stats().twoba.token;
    assert_eq!(
        (
            token.requests_by_grant.password,
            token.requests_by_grant.refresh_token
        ),
        (1, 10)
    );
    assert_eq!(
        token.refresh_reuse, 0,
        "the endpoint never saw a used refresh token"
    );
    assert_eq!(token.status(400), 0);
    // Every refresh request carried a different refresh token.
    let used: HashSet<String> = s
        .emu
        .recorded_token_requests()
        .iter()
        .filter_map(|r| r.form_field("refresh_token").map(str::to_owned))
        .collect();
    assert_eq!(used.len(), 10);
}

#[tokio::test]
async fn a_revoked_refresh_token_falls_back_to_login() {
    let s = setup().await;
    let conn = twoba();
    s.auth.credential_of("twoba", Some(&conn)).await.unwrap();
    s.emu.revoke(Provider::Twoba);
    s.clock.advance(Duration::from_secs(121));
    let cred = s.auth.credential_of("twoba", Some(&conn)).await.unwrap();
    let token = s.emu.stats().twoba.token;
    assert_eq!(
        (
            token.requests_by_grant.password,
            token.requests_by_grant.refresh_token
        ),
        (2, 1)
    );
    assert_eq!(token.status(400), 1, "the dead refresh token got 400");
    // The new login's refresh token is in the store and works.
    let stored = s
        .auth
        .store()
        .read(&StoreKey {
            provider: "twoba",
            connection: conn.id(),
        })
        .await
        .unwrap()
        .refresh_token
        .expect("stored");
    assert_eq!(
        s.emu
            .recorded_token_requests()
            .last()
            .unwrap()
            .form_field("grant_type"),
        Some("password")
    );
    assert!(!stored.expose_secret().is_empty());
    assert!(cred.expires_at().is_some());
}

#[tokio::test]
async fn refresh_on_error_fail_returns_a_typed_error() {
    let toml = seed_toml().replace(
        r#"on_error = { status = [400], action = "login" }"#,
        r#"on_error = { status = [400], action = "fail" }"#,
    );
    let s = setup_toml(&toml).await;
    let conn = twoba();
    s.auth.credential_of("twoba", Some(&conn)).await.unwrap();
    s.emu.revoke(Provider::Twoba);
    s.clock.advance(Duration::from_secs(121));
    let err = s
        .auth
        .credential_of("twoba", Some(&conn))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            tokenauth_core::Error::RefreshRejected {
                status: http::StatusCode::BAD_REQUEST,
                ..
            }
        ),
        "{err:?}"
    );
    insta::assert_snapshot!("refresh_rejected_fail", err.to_string());
    assert_eq!(
        s.emu.stats().twoba.token.requests_by_grant.password,
        1,
        "no login"
    );
}

#[tokio::test]
async fn the_file_store_survives_a_new_engine() {
    let dir = std::env::temp_dir().join(format!("tokenauth-test-{}", fastrand::u64(..)));
    let emu = emulator().await;
    let conn = twoba();
    {
        let store = Arc::new(FileStore::new(&dir));
        let auth = engine_with(&emu, seed_providers(), store, Arc::new(ManualClock::new()));
        auth.credential_of("twoba", Some(&conn)).await.unwrap();
    }
    // The token file (the refresh token, and the access token published for
    // the other processes) and its lock file: 0600, names without ids or
    // secrets.
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0].with_extension(""), files[1].with_extension(""));
    assert_eq!(files[1].extension().unwrap(), "lock", "{files:?}");
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with("rt-") && !name.contains("twoba") && !name.contains("2ba-demo"),
            "{name}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
    // A new engine (a restart, or another process) while the token is
    // valid: it adopts the published token, no token request.
    let later = |secs| {
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(secs));
        Arc::new(clock)
    };
    let store = Arc::new(FileStore::new(&dir));
    let auth = engine_with(&emu, seed_providers(), store, later(0));
    let adopted = auth.credential_of("twoba", Some(&conn)).await.unwrap();
    assert!(adopted.adopted() && adopted.obtained_by().is_none());
    assert_eq!(auth.stats().adopted, 1);
    assert_eq!(emu.stats().twoba.token.requests, 1);

    // Once it has expired, a new engine uses the stored refresh token.
    let store = Arc::new(FileStore::new(&dir));
    let auth = engine_with(&emu, seed_providers(), store, later(3600));
    auth.credential_of("twoba", Some(&conn)).await.unwrap();
    let grants = emu.stats().twoba.token.requests_by_grant;
    assert_eq!((grants.password, grants.refresh_token), (1, 1));
    assert_eq!(emu.stats().twoba.token.refresh_reuse, 0);

    // And again: the rotated token was persisted before it was handed out.
    let store = Arc::new(FileStore::new(&dir));
    let auth = engine_with(&emu, seed_providers(), store, later(7200));
    auth.credential_of("twoba", Some(&conn)).await.unwrap();
    let token = emu.stats().twoba.token;
    assert_eq!(
        (
            token.requests_by_grant.password,
            token.requests_by_grant.refresh_token
        ),
        (1, 2)
    );
    assert_eq!(token.status(400), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A store that returns a stale refresh token on every read until the next
/// compare-and-set, as if another worker had rotated it in between.
#[derive(Debug)]
struct StaleOnce {
    inner: MemoryStore,
    stale: Mutex<Option<SecretString>>,
    /// Written to the store right before the next compare-and-set.
    land_before_cas: Mutex<Option<SecretString>>,
}

#[async_trait::async_trait]
impl TokenStore for StaleOnce {
    async fn read(&self, key: &StoreKey<'_>) -> Result<SharedState, StoreError> {
        let mut state = self.inner.read(key).await?;
        if let Some(stale) = self.stale.lock().unwrap().clone() {
            state.refresh_token = Some(stale);
        }
        Ok(state)
    }
    async fn try_lease(
        &self,
        key: &StoreKey<'_>,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        self.inner.try_lease(key, owner, ttl).await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<Option<SystemTime>, StoreError> {
        self.inner.renew_lease(lease, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.inner.release(lease).await
    }
    async fn publish(&self, lease: &Lease, p: &Publication) -> Result<bool, StoreError> {
        self.inner.publish(lease, p).await
    }
    async fn cas_refresh(
        &self,
        key: &StoreKey<'_>,
        used: Option<&SecretString>,
        new: Option<&SecretString>,
    ) -> Result<CasOutcome, StoreError> {
        // The winner of a race lands its rotated token just before this
        // worker's compare-and-set: the moment v1 deleted it.
        self.stale.lock().unwrap().take();
        let landing = self.land_before_cas.lock().unwrap().take();
        if let Some(winner) = landing {
            let current = self.inner.read(key).await?.refresh_token;
            let _ = self
                .inner
                .cas_refresh(key, current.as_ref(), Some(&winner))
                .await?;
        }
        self.inner.cas_refresh(key, used, new).await
    }
    async fn wait(
        &self,
        key: &StoreKey<'_>,
        seen: u64,
        timeout: Duration,
    ) -> Result<WaitOutcome, StoreError> {
        self.inner.wait(key, seen, timeout).await
    }
}

/// An engine over a [`StaleOnce`] store that has logged in and refreshed
/// once (rotating the refresh token); returns the refresh token that the
/// refresh used up.
async fn rotated_once(
    emu: &Emulator,
    conn: &Connection,
) -> (TokenAuth, Arc<ManualClock>, Arc<StaleOnce>, SecretString) {
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(StaleOnce {
        inner: MemoryStore::new(),
        stale: Mutex::new(None),
        land_before_cas: Mutex::new(None),
    });
    let auth = engine_with(emu, seed_providers(), store.clone(), clock.clone());
    auth.credential_of("twoba", Some(conn)).await.unwrap(); // login
    clock.advance(Duration::from_secs(121));
    auth.credential_of("twoba", Some(conn)).await.unwrap(); // refresh: rotates
    let used = emu.recorded_token_requests()[1]
        .form_field("refresh_token")
        .unwrap()
        .to_owned();
    (auth, clock, store, SecretString::from(used))
}

/// One login, three refreshes of which one got 400: the dead token was
/// replaced by the one in the store, without logging in again.
fn assert_recovered_without_login(emu: &Emulator) {
    let token = emu.stats().twoba.token;
    assert_eq!(
        (
            token.requests_by_grant.password,
            token.requests_by_grant.refresh_token
        ),
        (1, 3)
    );
    assert_eq!(token.status(400), 1);
}

#[tokio::test]
async fn a_rejected_refresh_rereads_the_store_before_logging_in() {
    let emu = emulator().await;
    let conn = twoba();
    let (auth, clock, store, used) = rotated_once(&emu, &conn).await;
    *store.stale.lock().unwrap() = Some(used); // the used-up one

    clock.advance(Duration::from_secs(121));
    auth.credential_of("twoba", Some(&conn)).await.unwrap();
    // stale -> 400, the removal finds the current one -> success; no login.
    assert_recovered_without_login(&emu);
}

/// The v1 bug: a worker whose refresh lost the race re-read the store, still
/// saw the old token, and then deleted the file, which by then held the
/// winner's rotated token. Now the dead token is removed by compare-and-set:
/// the winner's token stays, and the loser retries with it.
#[tokio::test]
async fn a_lost_refresh_race_never_deletes_the_winners_token() {
    let emu = emulator().await;
    let conn = twoba();
    let key = StoreKey {
        provider: "twoba",
        connection: conn.id(),
    };
    let (auth, clock, store, used) = rotated_once(&emu, &conn).await;
    let winners = store.inner.read(&key).await.unwrap().refresh_token.unwrap();
    // This worker reads the used-up token; the winner's lands just before
    // this worker's compare-and-set.
    let put_back = store
        .inner
        .cas_refresh(&key, Some(&winners), Some(&used))
        .await
        .unwrap();
    assert!(matches!(put_back, CasOutcome::Written));
    *store.land_before_cas.lock().unwrap() = Some(winners.clone());

    clock.advance(Duration::from_secs(121));
    auth.credential_of("twoba", Some(&conn)).await.unwrap();
    // used-up -> 400, the removal finds the winner's token -> refresh with it.
    assert_recovered_without_login(&emu);
    let last_sent = emu
        .recorded_token_requests()
        .last()
        .unwrap()
        .form_field("refresh_token")
        .unwrap()
        .to_owned();
    assert_eq!(last_sent, winners.expose_secret());
    let stored = store
        .inner
        .read(&key)
        .await
        .unwrap()
        .refresh_token
        .expect("a refresh token is stored");
    assert_ne!(
        stored.expose_secret(),
        winners.expose_secret(),
        "rotated again"
    );
}
