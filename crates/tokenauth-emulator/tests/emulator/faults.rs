//! Every fault knob does what it says; counters count.

use std::time::{Duration, Instant};

use tokenauth_emulator::{
    EmulatorConfig, Host, Provider, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME, ReplyFault, StatusFault,
};

use crate::helpers::*;

#[tokio::test]
async fn status_for_k_requests_with_retry_after_then_heal() {
    let e = start().await;
    let c = client();
    e.fail_token_requests(
        Provider::Reobtimaal,
        StatusFault::new(429, 2).retry_after(7),
    );
    for _ in 0..2 {
        let r = reob_login(&e, &c, REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("7"));
    }
    assert!(e.knobs(Provider::Reobtimaal).status.is_none());
    let r = reob_login(&e, &c, REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD).await;
    assert_eq!(r.status, 200);
    let s = e.stats().reobtimaal.token;
    assert_eq!((s.requests, s.status(429), s.status(200)), (3, 2, 1));
}

#[tokio::test]
async fn status_500_and_503_and_faulted_requests_are_not_processed() {
    let e = start().await;
    let c = client();
    let v = twoba_login(&e, &c).await.json();
    let refresh = str_field(&v, "refresh_token");
    for status in [500u16, 503] {
        e.fail_token_requests(Provider::Twoba, StatusFault::new(status, 1));
        let r = twoba_refresh(&e, &c, &refresh).await;
        assert_eq!(r.status, status);
        assert!(r.header("retry-after").is_none());
    }
    // The refresh token was not used up by the faulted requests.
    assert_eq!(twoba_refresh(&e, &c, &refresh).await.status, 200);
}

async fn reob_raw(e: &tokenauth_emulator::Emulator, c: &reqwest::Client) -> reqwest::Response {
    c.post(e.url(Host::Reobtimaal, "/api/Token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant-type", "password"),
            ("username", REOB_DEMO_USERNAME),
            ("Password", REOB_DEMO_PASSWORD),
        ]))
        .send()
        .await
        .expect("headers arrive")
}

#[tokio::test]
async fn malformed_json() {
    let e = start().await;
    e.set_reply_fault(Provider::Reobtimaal, ReplyFault::MalformedJson, 1);
    let r = reob_login(&e, &client(), REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD).await;
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&r.body).is_err(),
        "{}",
        r.body
    );
    assert!(r.body.starts_with("{\"access_token\""));
    // Healed after one.
    reob_token(&e, &client()).await;
}

#[tokio::test]
async fn truncated_body() {
    let e = start().await;
    e.set_reply_fault(Provider::Reobtimaal, ReplyFault::TruncatedBody, 1);
    let resp = reob_raw(&e, &client()).await;
    assert_eq!(resp.status(), 200);
    let declared = resp.content_length().expect("Content-Length is sent");
    assert!(declared > 20);
    assert!(resp.bytes().await.is_err(), "the body must be cut short");
    assert_eq!(e.stats().reobtimaal.token.status(200), 1);
}

#[tokio::test]
async fn oversized_body_is_streamed_and_can_be_cut_off() {
    let e = start().await;
    e.set_reply_fault(
        Provider::Twoba,
        ReplyFault::OversizedBody { bytes: 8 << 20 },
        1,
    );
    let c = client();
    let url = e.url(Host::TwobaAuthorize, "/OAuth/Token");
    let mut resp = c
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "password"),
            ("username", tokenauth_emulator::TWOBA_DEMO_USERNAME),
            ("password", tokenauth_emulator::TWOBA_DEMO_PASSWORD),
            ("client_id", tokenauth_emulator::TWOBA_DEMO_CLIENT_ID),
            (
                "client_secret",
                tokenauth_emulator::TWOBA_DEMO_CLIENT_SECRET,
            ),
        ]))
        .send()
        .await
        .expect("headers");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.content_length(),
        None,
        "streamed without Content-Length"
    );
    let cap = 1 << 20;
    let mut got = 0usize;
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        got += chunk.len();
        if got > cap {
            break; // a capped client stops here
        }
    }
    assert!(got > cap);
    drop(resp);
}

#[tokio::test]
async fn oversized_body_has_the_requested_size_and_is_json() {
    let e = start().await;
    e.set_reply_fault(
        Provider::Reobtimaal,
        ReplyFault::OversizedBody { bytes: 300_000 },
        1,
    );
    let r = reob_login(&e, &client(), REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD).await;
    assert_eq!(r.body.len(), 300_000);
    assert!(r.json()["access_token"].is_string());
}

#[tokio::test]
async fn missing_token_and_wrong_type() {
    let e = start().await;
    let c = client();
    e.set_reply_fault(Provider::Twoba, ReplyFault::MissingToken, 1);
    let r = twoba_login(&e, &c).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.keys(), ["expires_in", "refresh_token", "token_type"]);

    e.set_reply_fault(Provider::Reobtimaal, ReplyFault::WrongTokenType, 1);
    let r = reob_login(&e, &c, REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD).await;
    assert!(r.json()["access_token"].is_number(), "{}", r.body);
}

#[tokio::test]
async fn expires_in_override() {
    let e = start().await;
    let c = client();
    e.set_reply_fault(Provider::Twoba, ReplyFault::ExpiresIn { value: -5 }, 1);
    assert_eq!(twoba_login(&e, &c).await.json()["expires_in"], -5);
    e.set_reply_fault(
        Provider::Reobtimaal,
        ReplyFault::ExpiresIn { value: i64::MAX },
        1,
    );
    let r = reob_login(&e, &c, REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD).await;
    assert_eq!(r.json()["expires_in"], i64::MAX);
    assert_eq!(r.keys(), ["access_token", "expires_in"]);
}

#[tokio::test]
async fn close_without_reply() {
    let e = start().await;
    e.set_reply_fault(Provider::Reobtimaal, ReplyFault::CloseWithoutReply, 1);
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let err = c
        .post(e.url(Host::Reobtimaal, "/api/Token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant-type", "password"),
            ("username", REOB_DEMO_USERNAME),
            ("Password", REOB_DEMO_PASSWORD),
        ]))
        .send()
        .await
        .expect_err("no reply at all");
    assert!(!err.is_timeout());
    let s = e.stats().reobtimaal.token;
    assert_eq!((s.requests, s.aborted), (1, 1));
    assert!(s.replies_by_status.is_empty());
    reob_token(&e, &c).await;
}

#[tokio::test]
async fn reply_faults_skip_requests_that_fail_anyway() {
    let e = start().await;
    let c = client();
    e.set_reply_fault(Provider::Reobtimaal, ReplyFault::MissingToken, 1);
    let bad = reob_login(&e, &c, REOB_DEMO_USERNAME, "wrong").await;
    assert_eq!(bad.status, 400);
    let r = reob_login(&e, &c, REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD).await;
    assert_eq!(r.body, "{}");
}

#[tokio::test]
async fn fixed_and_random_latency() {
    let e = start().await;
    let c = client();
    e.set_token_latency(Provider::Reobtimaal, Duration::from_millis(200));
    let t = Instant::now();
    reob_token(&e, &c).await;
    assert!(t.elapsed() >= Duration::from_millis(200));

    e.set_token_latency_range(
        Provider::Reobtimaal,
        Duration::from_millis(100),
        Duration::from_millis(150),
    );
    let t = Instant::now();
    reob_token(&e, &c).await;
    assert!(t.elapsed() >= Duration::from_millis(100));

    e.set_api_latency(Duration::from_millis(120));
    let token = reob_token(&e, &c).await;
    let t = Instant::now();
    let r = get_bearer(
        &c,
        &e.url(Host::Reobtimaal, "/api/v1/projecten"),
        &format!("bearer {token}"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(120));
}

#[tokio::test]
async fn max_concurrency_is_recorded() {
    let e = start().await;
    e.set_token_latency(Provider::Reobtimaal, Duration::from_millis(1_000));
    let c = client();
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let c = c.clone();
            let url = e.url(Host::Reobtimaal, "/api/Token");
            tokio::spawn(async move {
                c.post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant-type=password&username=reob-demo&Password=reob-demo-password")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // Wait (bounded) until all five are inside the endpoint at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.stats().reobtimaal.token.in_flight < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("reply"), 200);
    }
    let s = e.stats().reobtimaal.token;
    assert_eq!(s.max_concurrent_token_requests, 5);
    assert_eq!(s.in_flight, 0);
    e.reset_stats();
    assert_eq!(e.stats().reobtimaal.token.max_concurrent_token_requests, 0);
}

#[tokio::test]
async fn counters_count_and_reset() {
    let e = start().await;
    let c = client();
    reob_token(&e, &c).await;
    reob_login(&e, &c, REOB_DEMO_USERNAME, "x").await;
    post_form(
        &c,
        &e.url(Host::Reobtimaal, "/api/Token"),
        &[("grant_type", "password")],
    )
    .await;
    let v = twoba_login(&e, &c).await.json();
    twoba_refresh(&e, &c, &str_field(&v, "refresh_token")).await;
    let s = e.stats();
    assert_eq!(s.reobtimaal.token.requests, 3);
    assert_eq!(s.reobtimaal.token.requests_by_grant.password, 2);
    assert_eq!(s.reobtimaal.token.requests_by_grant.other, 1);
    assert_eq!(s.reobtimaal.token.status(400), 2);
    assert_eq!(s.twoba.token.requests_by_grant.password, 1);
    assert_eq!(s.twoba.token.requests_by_grant.refresh_token, 1);
    assert_eq!(s.provider(Provider::Bro).token.requests, 0);
    e.reset_stats();
    assert_eq!(e.stats(), tokenauth_emulator::Stats::default());
}

#[tokio::test]
async fn token_requests_are_recorded_exactly() {
    let e = start_with(EmulatorConfig::default().record_limit(2)).await;
    let c = client();
    reob_login(&e, &c, "first", "x").await;
    reob_token(&e, &c).await;
    twoba_login(&e, &c).await;
    let rec = e.recorded_token_requests();
    assert_eq!(rec.len(), 2);
    let r = &rec[0];
    assert_eq!(r.provider, Provider::Reobtimaal);
    assert_eq!(r.method, "POST");
    assert_eq!(r.host, "api.reobtimaal-diensten.nl");
    assert_eq!(r.path, "/reobtimaal/api/Token");
    assert_eq!(
        r.body,
        "grant-type=password&username=reob-demo&Password=reob-demo-password"
    );
    let names: Vec<&str> = r.form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["grant-type", "username", "Password"]);
    assert_eq!(r.form_field("Password"), Some(REOB_DEMO_PASSWORD));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(rec[1].provider, Provider::Twoba);
    assert_eq!(
        rec[1].form_field("client_id"),
        Some(tokenauth_emulator::TWOBA_DEMO_CLIENT_ID)
    );
}

#[tokio::test]
async fn jwt_shaped_access_tokens() {
    use base64::Engine as _;
    let e = start().await;
    e.set_jwt_access_tokens(Provider::Twoba, true);
    let c = client();
    let token = str_field(&twoba_login(&e, &c).await.json(), "access_token");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("base64url");
    let claims: serde_json::Value = serde_json::from_slice(&payload).expect("JSON claims");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(exp >= now + 100 && exp <= now + 130, "exp {exp}, now {now}");
    assert_eq!(claims["sub"], tokenauth_emulator::TWOBA_DEMO_USERNAME);
    let r = get_bearer(
        &c,
        &e.url(Host::Twoba, "/1/json/x"),
        &format!("Bearer {token}"),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_api_requests_all_succeed_and_are_counted() {
    let e = start().await;
    let c = client();
    let token = reob_token(&e, &c).await;
    let url = e.url(Host::Reobtimaal, "/api/v1/projecten");
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (c, url, auth) = (c.clone(), url.clone(), format!("bearer {token}"));
            tokio::spawn(async move {
                let mut ok = 0u64;
                for _ in 0..10 {
                    let r = c.get(&url).header("authorization", &auth).send().await;
                    if r.map(|r| r.status() == 200).unwrap_or(false) {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for w in workers {
        ok += w.await.expect("join");
    }
    assert_eq!(ok, 640);
    let s = e.stats().reobtimaal.api;
    assert_eq!((s.requests, s.status(200)), (640, 640));
}

/// Django OAuth Toolkit's rotation: a new access token revokes the user's
/// earlier ones at once, and a request with one of those (also one already
/// in flight) gets 403; other users and unknown tokens are unaffected.
#[tokio::test]
async fn revoke_on_reissue_answers_403_to_earlier_tokens() {
    let e = start().await;
    let c = client();
    let api = e.url(Host::Twoba, "/1/json/x");
    let bearer = |t: &str| format!("Bearer {t}");
    // Off (the default): an earlier token stays valid.
    let first = twoba_login(&e, &c).await.json();
    let _second = twoba_login(&e, &c).await;
    let old = str_field(&first, "access_token");
    assert_eq!(get_bearer(&c, &api, &bearer(&old)).await.status, 200);
    assert!(!e.knobs(Provider::Twoba).revoke_on_reissue);

    e.set_revoke_on_reissue(Provider::Twoba, true);
    assert!(e.knobs(Provider::Twoba).revoke_on_reissue);
    let login = twoba_login(&e, &c).await.json();
    let current = str_field(&login, "access_token");
    let other = twoba_login_as(&e, &c, "tenant-1", "tenant-1-secret").await;
    let other = str_field(&other.json(), "access_token");
    let r = get_bearer(&c, &api, &bearer(&old)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.header("www-authenticate").is_none());
    assert_eq!(get_bearer(&c, &api, &bearer(&current)).await.status, 200);
    assert_eq!(get_bearer(&c, &api, &bearer(&other)).await.status, 200);
    assert_eq!(get_bearer(&c, &api, "Bearer unknown").await.status, 401);

    // A refresh revokes the token it replaces, also for a request already
    // in flight with it (the token is checked after the API latency).
    e.set_api_latency(Duration::from_millis(300));
    let in_flight = {
        let (c, api, auth) = (c.clone(), api.clone(), bearer(&current));
        tokio::spawn(async move { get_bearer(&c, &api, &auth).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refreshed = twoba_refresh(&e, &c, &str_field(&login, "refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let renewed = str_field(&refreshed.json(), "access_token");
    assert_eq!(in_flight.await.expect("join").status, 403);
    e.set_api_latency(Duration::ZERO);
    assert_eq!(get_bearer(&c, &api, &bearer(&renewed)).await.status, 200);
    assert_eq!(get_bearer(&c, &api, &bearer(&current)).await.status, 403);
    assert_eq!(get_bearer(&c, &api, &bearer(&other)).await.status, 200);
    let s = e.stats().twoba.api;
    assert_eq!(s.status(403), 3, "{s:?}");

    // Also over the control API, and a reset turns it off.
    let knobs = read(
        c.post(e.control_url("faults"))
            .header("content-type", "application/json")
            .body(r#"{"provider": "reobtimaal", "revoke_on_reissue": true}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(knobs.status, 200, "{}", knobs.body);
    assert_eq!(knobs.json()["reobtimaal"]["revoke_on_reissue"], true);
    let old = reob_token(&e, &c).await;
    let _new = reob_token(&e, &c).await;
    let projects = e.url(Host::Reobtimaal, "/api/v1/projecten");
    assert_eq!(get_bearer(&c, &projects, &bearer(&old)).await.status, 403);
    e.reset();
    assert!(!e.knobs(Provider::Reobtimaal).revoke_on_reissue);
}
