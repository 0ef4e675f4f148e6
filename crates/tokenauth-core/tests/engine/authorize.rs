//! The consent-flow API through the engine: authorization_request, the
//! emulator's 2BA consent page driven over HTTP, complete_authorization
//! storing the refresh token in a FileStore and the access token in the
//! cache; the state is single use and the verifier never shows.

use std::sync::Arc;

use tokenauth_core::store::{FileStore, StoreKey, TokenStore};
use tokenauth_core::{AuthorizationFailure, Error};
use tokenauth_emulator::{TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME};
use url::Url;

use crate::helpers::*;

/// Consents on the emulator's page; the redirect's Location.
async fn consent(s: &Setup, url: &Url, answer: &str) -> String {
    let client = client_builder(&s.emu)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(url.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "username={}&password={TWOBA_DEMO_PASSWORD}&consent={answer}",
            TWOBA_DEMO_USERNAME.replace('@', "%40")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    r.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn consent_code_exchange_stores_the_refresh_token_and_caches_the_access_token() {
    let emu = emulator().await;
    let dir = std::env::temp_dir().join(format!("tokenauth-authz-{}", std::process::id()));
    let store = Arc::new(FileStore::new(&dir));
    let clock = Arc::new(tokenauth_core::clock::ManualClock::new());
    let auth = engine_with(&emu, seed_providers(), store.clone(), clock.clone());
    let s = Setup { emu, auth, clock };
    let conn = twoba();
    let handle = s.auth.provider("twoba").unwrap();

    // Registered without a port: the caller names the one it listens on.
    let no_port = s
        .auth
        .authorization_request("twoba", Some(&conn))
        .unwrap_err();
    assert!(matches!(
        no_port,
        Error::Authorization {
            failure: AuthorizationFailure::RedirectUri { .. },
            ..
        }
    ));
    let redirect = Url::parse("http://127.0.0.1:8765/callback").unwrap();
    let req = handle
        .authorization_request(Some(&conn), Some(&redirect))
        .unwrap();
    let q: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("response_type"), Some("code"));
    assert_eq!(get("redirect_uri"), Some(redirect.as_str()));
    assert_eq!(get("code_challenge_method"), Some("S256"));
    assert_eq!(get("state"), Some(req.state.as_str()));
    let debug = format!("{req:?}");
    assert!(!debug.contains("verifier"), "{debug}");

    let callback = consent(&s, &req.url, "allow").await;
    let done = handle
        .complete_authorization(Some(&conn), &callback, &req.state)
        .await
        .unwrap();
    assert!(done.refresh_token_stored);
    let key = StoreKey {
        provider: "twoba",
        connection: conn.id(),
    };
    let stored = store.read(&key).await.unwrap().refresh_token;
    assert!(stored.is_some(), "the refresh token is in the file store");

    // The access token is cached: no token request for the next credential.
    let before = s.emu.stats().twoba.token.requests;
    let cred = handle.credential(Some(&conn)).await.unwrap();
    assert_eq!(s.emu.stats().twoba.token.requests, before);
    assert_eq!(cred.expires_at(), Some(done.expires_at));

    // The state is spent: the same callback again sends nothing.
    let again = handle
        .complete_authorization(Some(&conn), &callback, &req.state)
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        Error::Authorization {
            failure: AuthorizationFailure::UnknownState,
            ..
        }
    ));
    assert_eq!(s.emu.stats().twoba.token.requests, before);

    // Declined consent: a typed error, the stored token untouched.
    let req = handle
        .authorization_request(Some(&conn), Some(&redirect))
        .unwrap();
    let denied = consent(&s, &req.url, "deny").await;
    let e = handle
        .complete_authorization(Some(&conn), &denied, &req.state)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Authorization { failure: AuthorizationFailure::Denied { error, .. }, .. } if error == "access_denied"),
        "{e}"
    );
    let still = store.read(&key).await.unwrap().refresh_token;
    assert!(tokenauth_core::store::same_refresh_token(
        still.as_ref(),
        stored.as_ref()
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
