//! Each seed provider: the exact token request, caching, expiry.

use std::time::Duration;

use tokenauth_core::clock::Clock;
use tokenauth_emulator::{Emulator, Host};
use url::Url;

use crate::helpers::*;

async fn api_status(
    setup: &Setup,
    host: Host,
    path: &str,
    cred: &tokenauth_core::Credential,
) -> u16 {
    let client = client_builder(&setup.emu).build().unwrap();
    let mut req = client.get(Emulator::real_url(host, path)).build().unwrap();
    assert!(cred.apply_to_headers(req.headers_mut()));
    client.execute(req).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn reobtimaal_login_request_caching_and_ttl_expiry() {
    let s = setup().await;
    let conn = reob();
    let url = Url::parse("https://api.reobtimaal-diensten.nl/api/v1/projecten").unwrap();
    let handle = s.auth.route(&url).expect("routed to reobtimaal");
    assert_eq!(handle.id(), "reobtimaal");

    let first = handle.credential(Some(&conn)).await.unwrap();
    for _ in 0..50 {
        let again = handle.credential(Some(&conn)).await.unwrap();
        assert_eq!(again.token_id(), first.token_id());
    }
    assert_eq!(
        s.emu.stats().reobtimaal.token.requests,
        1,
        "one token request for 51 calls"
    );
    assert_eq!(s.auth.stats().hits, 50);

    let recorded = s.emu.recorded_token_requests();
    insta::assert_json_snapshot!("reobtimaal_login_request", redacted(&recorded[0], &[]));

    // The header is exactly `bearer <token>` and marked sensitive.
    let [(name, value)] = first.injection().headers().collect::<Vec<_>>()[..] else {
        panic!("header credential")
    };
    assert_eq!(name, "authorization");
    assert!(value.is_sensitive());
    assert!(value.to_str().unwrap().starts_with("bearer "));
    assert_eq!(
        api_status(&s, Host::Reobtimaal, "/api/v1/projecten", &first).await,
        200
    );

    // Expiry from ttl = "60m" (the reply has none).
    let now = s.clock.now();
    let left = first.expires_at().unwrap().duration_since(now).unwrap();
    assert!(
        left > Duration::from_secs(59 * 60) && left <= Duration::from_secs(3600),
        "{left:?}"
    );
    // Renewal window: 10% of 60 minutes (+ up to 10% jitter) before expiry.
    let lead = first
        .expires_at()
        .unwrap()
        .duration_since(first.renew_at().unwrap())
        .unwrap();
    assert!(
        lead >= Duration::from_secs(360) && lead <= Duration::from_secs(396),
        "{lead:?}"
    );

    // Past the expiry: a new login, not the stale token.
    s.clock.advance(Duration::from_secs(3601));
    let renewed = handle.credential(Some(&conn)).await.unwrap();
    assert_ne!(renewed.token_id(), first.token_id());
    assert_eq!(s.emu.stats().reobtimaal.token.requests_by_grant.password, 2);
}

#[tokio::test]
async fn each_provider_has_its_share_of_the_counters() {
    let s = setup().await;
    for _ in 0..3 {
        s.auth
            .credential_of("reobtimaal", Some(&reob()))
            .await
            .unwrap();
        s.auth.credential_of("twoba", Some(&twoba())).await.unwrap();
    }
    s.auth.credential_of("bro", Some(&bro())).await.unwrap();
    let reob_stats = s.auth.provider_stats("reobtimaal").unwrap();
    let twoba_stats = s.auth.provider_stats("twoba").unwrap();
    let bro_stats = s.auth.provider_stats("bro").unwrap();
    assert_eq!(
        (
            reob_stats.misses,
            reob_stats.fetches,
            reob_stats.logins,
            reob_stats.token_requests
        ),
        (1, 1, 1, 1)
    );
    assert_eq!((twoba_stats.logins, twoba_stats.refreshes), (1, 0));
    // A static credential is rendered, never requested.
    assert_eq!((bro_stats.fetches, bro_stats.token_requests), (1, 0));
    assert!(s.auth.provider_stats("nope").is_none());
    // The engine's figures are the providers' summed (hits: the engine's own).
    let all = s.auth.stats();
    assert_eq!(all.fetches, 3);
    assert_eq!(all.logins, 2);
    assert_eq!(all.token_requests, 2);
    assert_eq!(all.misses, 3);
    assert_eq!(all.hits, 4);
}

#[tokio::test]
async fn twoba_login_and_refresh_requests_expiry_from_expires_in() {
    let s = setup().await;
    let conn = twoba();
    let first = s.auth.credential_of("twoba", Some(&conn)).await.unwrap();
    for _ in 0..20 {
        s.auth.credential_of("twoba", Some(&conn)).await.unwrap();
    }
    assert_eq!(s.emu.stats().twoba.token.requests, 1);

    // expires_in = 120 s; skew 20% (+ up to 10% jitter).
    let now = s.clock.now();
    let expires = first.expires_at().unwrap();
    assert_eq!(
        expires.duration_since(now).unwrap(),
        Duration::from_secs(120),
        "expires_in = 120, manual clock"
    );
    let lead = expires.duration_since(first.renew_at().unwrap()).unwrap();
    assert!(
        lead >= Duration::from_secs(23) && lead <= Duration::from_millis(26_500),
        "{lead:?}"
    );
    assert_eq!(
        api_status(&s, Host::Twoba, "/1/json/Product/DetailsForProduct", &first).await,
        200
    );

    // After expiry the held refresh token is used (refresh grant).
    s.clock.advance(Duration::from_secs(121));
    let second = s.auth.credential_of("twoba", Some(&conn)).await.unwrap();
    assert_ne!(second.token_id(), first.token_id());
    let grants = s.emu.stats().twoba.token.requests_by_grant;
    assert_eq!((grants.password, grants.refresh_token), (1, 1));

    let recorded = s.emu.recorded_token_requests();
    let refresh_token = recorded[1].form_field("refresh_token").unwrap().to_owned();
    insta::assert_json_snapshot!("twoba_login_request", redacted(&recorded[0], &[]));
    insta::assert_json_snapshot!(
        "twoba_refresh_request",
        redacted(&recorded[1], &[&refresh_token])
    );
}

#[tokio::test]
async fn bro_static_basic_credentials_without_any_request() {
    let s = setup().await;
    let conn = bro();
    let url = Url::parse("https://www.bronhouderportaal-bro.nl/api/v2/validatie").unwrap();
    let handle = s.auth.route(&url).unwrap();
    let cred = handle.credential(Some(&conn)).await.unwrap();
    let again = handle.credential(Some(&conn)).await.unwrap();
    assert_eq!(
        cred.token_id(),
        again.token_id(),
        "rendered once, then cached"
    );
    assert_eq!(cred.expires_at(), None);
    assert!(cred.access_token().is_none());

    let client = client_builder(&s.emu).build().unwrap();
    let mut req = client.post(url.clone()).body("<xml/>").build().unwrap();
    cred.apply_to_headers(req.headers_mut());
    assert_eq!(client.execute(req).await.unwrap().status(), 200);

    let stats = s.emu.stats();
    assert_eq!(
        stats.bro.token.requests + stats.reobtimaal.token.requests + stats.twoba.token.requests,
        0
    );
    assert_eq!(s.auth.stats().token_requests, 0);
}

#[tokio::test]
async fn routing_never_leaks_a_credential_elsewhere() {
    let s = setup().await;
    let route = |u: &str| {
        s.auth
            .route(&Url::parse(u).unwrap())
            .map(|h| h.id().to_owned())
    };
    assert_eq!(
        route("https://api.2ba.nl/1/json/x").as_deref(),
        Some("twoba")
    );
    assert_eq!(route("https://authorize.2ba.nl/OAuth/Token"), None);
    assert_eq!(route("http://api.2ba.nl/1/json/x"), None);
    assert_eq!(route("https://api.reobtimaal-diensten.nl/other"), None);
    assert_eq!(route("https://api.2ba.nl.evil.example/1/json/x"), None);
}

#[tokio::test]
async fn default_connection_names_the_missing_environment_variable() {
    let toml = r#"
[providers.x]
api = ["http://127.0.0.1:9/"]
inputs.user = { env = "TOKENAUTH_TEST_SURELY_UNSET_USER", default = "u" }
inputs.key = { env = "TOKENAUTH_TEST_SURELY_UNSET_KEY", secret = true }
inject = { header = "X-Key", value = "{{ inputs.key }}" }
"#;
    let providers = tokenauth_core::Providers::from_toml("x.toml", toml).unwrap();
    let auth = tokenauth_core::TokenAuth::builder(providers)
        .build()
        .unwrap();
    let err = auth.credential_of("x", None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "provider `x`: input `key` has no value: set the environment variable TOKENAUTH_TEST_SURELY_UNSET_KEY (the default connection reads it from there)"
    );
    let tenant = tokenauth_core::Connection::new("t1");
    let err = auth.credential_of("x", Some(&tenant)).await.unwrap_err();
    assert!(err.to_string().contains("connection `t1`: input `key` has no value: supply it with Connection::with_input(\"key\", ...)"), "{err}");
    // `user` falls back to its default.
    let ok = auth
        .credential_of("x", Some(&tenant.with_secret("key", "k")))
        .await
        .unwrap();
    assert_eq!(ok.injection().headers().len(), 1);
    assert!(matches!(
        auth.provider("nope"),
        Err(tokenauth_core::Error::UnknownProvider { .. })
    ));
}
