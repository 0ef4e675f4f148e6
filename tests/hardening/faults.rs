//! The fault matrix: every knob of the emulator's token endpoint, through the
//! reqwest middleware (TLS, the real host names, the unchanged
//! `providers.toml`), each with its asserted outcome: a typed error with a
//! clear message and the exact number of token requests, or a recovery.
//!
//! Time is the engine's injected `ManualClock` (expiry, renewal windows and
//! failure backoff); only the short retry backoff inside one acquisition
//! (milliseconds) runs on the real clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest_middleware::ClientWithMiddleware;
use tokenauth::clock::ManualClock;
use tokenauth::{Connection, Error, Providers, RequestKind, TokenAuth, auth_error};
use tokenauth_emulator::{Emulator, Provider, ReplyFault, StatusFault};

use crate::helpers::*;

struct Setup {
    emu: Emulator,
    auth: TokenAuth,
    clock: Arc<ManualClock>,
    client: ClientWithMiddleware,
}

async fn setup() -> Setup {
    setup_toml(&seed_toml()).await
}

async fn setup_toml(toml: &str) -> Setup {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let auth = engine_clocked(&emu, toml, clock.clone());
    let client = middleware_client(&emu, &auth);
    Setup {
        emu,
        auth,
        clock,
        client,
    }
}

/// An engine with a slower retry backoff (base `base`, cap `max`).
async fn setup_backoff(base: Duration, max: Duration) -> Setup {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let auth = engine_builder(&emu, &seed_toml())
        .clock(clock.clone())
        .retries(2)
        .retry_backoff(base, max)
        .failure_backoff(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .unwrap();
    let client = middleware_client(&emu, &auth);
    Setup {
        emu,
        auth,
        clock,
        client,
    }
}

impl Setup {
    async fn status(&self, url: &str, conn: &Connection) -> u16 {
        self.client
            .get(url)
            .with_extension(conn.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .status()
            .as_u16()
    }

    /// Sends a request that must fail for want of a credential; returns the
    /// typed error after checking every rendering of it for secrets.
    async fn failure(&self, url: &str, conn: &Connection) -> Error {
        let err = self
            .client
            .get(url)
            .with_extension(conn.clone())
            .send()
            .await
            .expect_err("no credential, no request");
        assert!(err.is_middleware(), "{err:?}");
        let typed = auth_error(&err).expect("a tokenauth error").clone();
        for text in [
            err.to_string(),
            format!("{err:?}"),
            format!("{err:#?}"),
            typed.to_string(),
            format!("{typed:?}"),
            format!("{typed:#?}"),
        ] {
            assert_no_secret("an error", &text, &[]);
        }
        let provider = typed.provider().expect("the error names its provider");
        assert!(
            typed
                .to_string()
                .contains(&format!("provider `{provider}`")),
            "{typed}"
        );
        typed
    }

    fn token_requests(&self, p: Provider) -> u64 {
        self.emu.stats().provider(p).token.requests
    }
}

// ------------------------------------------------------------ 5xx / 429

#[tokio::test]
async fn token_endpoint_500_bounded_retries_with_backoff_then_typed_error() {
    // Backoff 20 ms doubling, jittered into [d/2, d]: the two retries wait
    // at least 10 + 20 ms in total.
    let s = setup_backoff(Duration::from_millis(20), Duration::from_millis(200)).await;
    s.emu
        .fail_token_requests(Provider::Reobtimaal, StatusFault::new(500, 1000));
    let started = Instant::now();
    let err = s.failure(REOB_API, &reob()).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(
            err,
            Error::Status {
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                request: RequestKind::Login,
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("got HTTP 500"), "{err}");
    let stats = s.emu.stats().reobtimaal;
    assert_eq!(stats.token.requests, 3, "1 + 2 retries");
    assert_eq!(stats.token.replies_by_status.get(&500), Some(&3));
    assert_eq!(stats.api.requests, 0, "no credential, no API request");
    assert!(
        elapsed >= Duration::from_millis(30),
        "the retries were backed off: {elapsed:?}"
    );
    // Within the failure backoff the error is served from the cache: no
    // hammering.
    for _ in 0..5 {
        let again = s.failure(REOB_API, &reob()).await;
        assert!(matches!(
            again,
            Error::Status {
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                ..
            }
        ));
    }
    assert_eq!(s.token_requests(Provider::Reobtimaal), 3);
}

#[tokio::test]
async fn token_endpoint_503_bounded_retries_then_typed_error() {
    let s = setup().await;
    s.emu
        .fail_token_requests(Provider::Twoba, StatusFault::new(503, 1000));
    let err = s.failure(TWOBA_API, &twoba()).await;
    assert!(
        matches!(
            err,
            Error::Status {
                status: http::StatusCode::SERVICE_UNAVAILABLE,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert!(
        err.to_string().contains("throttling or unavailable"),
        "{err}"
    );
    assert_eq!(s.token_requests(Provider::Twoba), 3, "1 + 2 retries");
}

#[tokio::test]
async fn token_endpoint_5xx_then_healthy_within_the_retries_succeeds() {
    let s = setup().await;
    s.emu
        .fail_token_requests(Provider::Reobtimaal, StatusFault::new(503, 2));
    assert_eq!(s.status(REOB_API, &reob()).await, 200);
    assert_eq!(s.token_requests(Provider::Reobtimaal), 3);
}

#[tokio::test]
async fn rate_limited_429_retry_after_within_the_cap_is_waited_for() {
    // Retries may wait up to 2 s; the endpoint asks for 1 s.
    let s = setup_backoff(Duration::from_millis(1), Duration::from_secs(2)).await;
    s.emu.fail_token_requests(
        Provider::Reobtimaal,
        StatusFault::new(429, 1).retry_after(1),
    );
    let started = Instant::now();
    assert_eq!(s.status(REOB_API, &reob()).await, 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured ({:?})",
        started.elapsed()
    );
    let stats = s.emu.stats().reobtimaal.token;
    assert_eq!(stats.requests, 2);
    assert_eq!(stats.replies_by_status.get(&429), Some(&1));
}

#[tokio::test]
async fn rate_limited_429_retry_after_beyond_the_cap_backs_off_on_the_clock() {
    // Retry-After 30 s exceeds the in-acquisition cap (20 ms): the error is
    // returned at once and the engine backs off for 30 s.
    let s = setup().await;
    s.emu.fail_token_requests(
        Provider::Reobtimaal,
        StatusFault::new(429, 1000).retry_after(30),
    );
    let err = s.failure(REOB_API, &reob()).await;
    assert!(
        matches!(
            err,
            Error::Status {
                status: http::StatusCode::TOO_MANY_REQUESTS,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(
        s.token_requests(Provider::Reobtimaal),
        1,
        "not retried inside"
    );
    s.clock.advance(Duration::from_secs(29));
    s.failure(REOB_API, &reob()).await;
    assert_eq!(
        s.token_requests(Provider::Reobtimaal),
        1,
        "Retry-After honoured: nothing sent within 30 s"
    );
    s.clock.advance(Duration::from_secs(2));
    s.failure(REOB_API, &reob()).await;
    assert_eq!(s.token_requests(Provider::Reobtimaal), 2, "tried again");

    // A Retry-After of an hour is capped at the failure backoff's maximum
    // (60 s): the engine tries again after a minute, not an hour.
    let s = setup().await;
    s.emu.fail_token_requests(
        Provider::Reobtimaal,
        StatusFault::new(429, 1).retry_after(3600),
    );
    s.failure(REOB_API, &reob()).await;
    s.clock.advance(Duration::from_secs(59));
    s.failure(REOB_API, &reob()).await;
    assert_eq!(s.token_requests(Provider::Reobtimaal), 1);
    s.clock.advance(Duration::from_secs(2));
    assert_eq!(s.status(REOB_API, &reob()).await, 200, "capped at 60 s");
    assert_eq!(s.token_requests(Provider::Reobtimaal), 2);
}

/// A `Retry-After` in either form, from a loopback endpoint, against an
/// engine whose clock stands in 2033 (an HTTP-date is read against the
/// engine's clock, not the machine's): 30 s beyond the in-acquisition cap, so
/// the engine backs off 30 s on its clock.
#[tokio::test]
async fn rate_limited_429_retry_after_in_either_form_backs_off_on_the_engine_clock() {
    // 2_000_000_000 s after the epoch is Wed, 18 May 2033 03:33:20 GMT.
    let start = std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    for value in ["30", "Wed, 18 May 2033 03:33:50 GMT"] {
        let endpoint = TokenEndpoint::start(
            EndpointReply::new(429, "application/json", r#"{"error":"slow_down"}"#)
                .header("retry-after", value),
        )
        .await;
        let clock = Arc::new(ManualClock::at(start));
        let auth = loopback_engine(&endpoint, clock.clone());
        let conn = Connection::new("c").with_secret("secret", "s3cr3t-429");
        let err = auth
            .credential_of("limited", Some(&conn))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Status {
                    status: http::StatusCode::TOO_MANY_REQUESTS,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)), "{value}");
        assert_eq!(
            endpoint.requests(),
            1,
            "{value}: beyond the cap, not retried inside"
        );
        clock.advance(Duration::from_secs(29));
        auth.credential_of("limited", Some(&conn))
            .await
            .unwrap_err();
        assert_eq!(endpoint.requests(), 1, "{value}: nothing sent within 30 s");
        endpoint.set(EndpointReply::new(
            200,
            "application/json",
            r#"{"access_token":"after-the-wait","expires_in":3600}"#,
        ));
        clock.advance(Duration::from_secs(2));
        auth.credential_of("limited", Some(&conn)).await.unwrap();
        assert_eq!(endpoint.requests(), 2, "{value}: tried again after 30 s");
    }
}

/// An HTTP-date in the past means "now": retried inside the acquisition like
/// a 429 without a wait, and reported as a zero `Retry-After`.
#[tokio::test]
async fn rate_limited_429_retry_after_date_in_the_past_means_now() {
    let endpoint = TokenEndpoint::start(
        EndpointReply::new(429, "application/json", r#"{"error":"slow_down"}"#)
            .header("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"),
    )
    .await;
    let auth = loopback_engine(&endpoint, Arc::new(ManualClock::new()));
    let conn = Connection::new("c").with_secret("secret", "s3cr3t-429");
    let err = auth
        .credential_of("limited", Some(&conn))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::ZERO), "{err:?}");
    assert_eq!(endpoint.requests(), 3, "1 + 2 retries");
}

/// An engine with provider `limited` logging in at `endpoint`: two retries
/// backed off 1 ms doubling to 20 ms, failures 1 s doubling to 60 s on
/// `clock`.
fn loopback_engine(endpoint: &TokenEndpoint, clock: Arc<ManualClock>) -> TokenAuth {
    let toml = endpoint_toml("limited", endpoint, r#"expires_in = "/expires_in""#, "");
    let providers = Providers::from_toml("p.toml", &toml).unwrap_or_else(|e| panic!("{e}"));
    TokenAuth::builder(providers)
        .clock(clock)
        .retries(2)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(20))
        .failure_backoff(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .unwrap()
}

// ------------------------------------------------------------ transport

#[tokio::test]
async fn login_timeout_is_the_configured_one() {
    let toml = seed_toml().replacen(r#"timeout = "30s""#, r#"timeout = "300ms""#, 1);
    assert!(
        toml.contains(r#"timeout = "300ms""#),
        "REOBtimaal's login.timeout"
    );
    let s = setup_toml(&toml).await;
    s.emu
        .set_token_latency(Provider::Reobtimaal, Duration::from_secs(5));
    let err = s.failure(REOB_API, &reob()).await;
    assert!(
        matches!(
            err,
            Error::Timeout {
                timeout,
                request: RequestKind::Login,
                ..
            } if timeout == Duration::from_millis(300)
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out after 300ms"), "{err}");
    assert_eq!(
        s.token_requests(Provider::Reobtimaal),
        1,
        "a timeout is not retried"
    );
}

#[tokio::test]
async fn connection_closed_without_reply_is_a_transport_error_after_retries() {
    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Reobtimaal, ReplyFault::CloseWithoutReply, 1000);
    let err = s.failure(REOB_API, &reob()).await;
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("failed before a complete reply arrived"),
        "{err}"
    );
    let stats = s.emu.stats().reobtimaal.token;
    assert_eq!(stats.requests, 3, "transport failures are retried twice");
    assert_eq!(stats.aborted, 3);
}

#[tokio::test]
async fn truncated_body_is_a_transport_error_after_retries() {
    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Reobtimaal, ReplyFault::TruncatedBody, 1000);
    let err = s.failure(REOB_API, &reob()).await;
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(s.token_requests(Provider::Reobtimaal), 3);
}

#[tokio::test]
async fn oversized_body_is_stopped_at_the_one_mebibyte_cap() {
    let s = setup().await;
    // A terabyte: reading it all would never finish.
    s.emu.set_reply_fault(
        Provider::Reobtimaal,
        ReplyFault::OversizedBody { bytes: 1 << 40 },
        1000,
    );
    let err = tokio::time::timeout(Duration::from_secs(60), s.failure(REOB_API, &reob()))
        .await
        .expect("the reply is abandoned at the cap, not read to the end");
    assert!(
        matches!(
            err,
            Error::ResponseTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
    assert_eq!(
        s.token_requests(Provider::Reobtimaal),
        1,
        "an oversized reply is not retried"
    );
}

// ------------------------------------------------------------ bad replies

#[tokio::test]
async fn malformed_json_is_not_json() {
    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Reobtimaal, ReplyFault::MalformedJson, 1);
    let err = s.failure(REOB_API, &reob()).await;
    assert!(matches!(err, Error::NotJson { .. }), "{err:?}");
    assert!(err.to_string().contains("is not JSON"), "{err}");
    assert_eq!(s.token_requests(Provider::Reobtimaal), 1, "not retried");
}

#[tokio::test]
async fn missing_token_key_names_the_pointer_and_the_keys() {
    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Twoba, ReplyFault::MissingToken, 1);
    let err = s.failure(TWOBA_API, &twoba()).await;
    assert!(
        matches!(
            &err,
            Error::MissingField { field: "access_token", pointer, .. } if pointer == "/access_token"
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("no value at `/access_token`") && msg.contains("\"token_type\""),
        "{msg}"
    );
}

#[tokio::test]
async fn wrong_token_type_is_a_typed_error() {
    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Reobtimaal, ReplyFault::WrongTokenType, 1);
    let err = s.failure(REOB_API, &reob()).await;
    assert!(
        matches!(
            err,
            Error::WrongType {
                field: "access_token",
                found: "a number",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("expected a non-empty string"),
        "{err}"
    );
}

#[tokio::test]
async fn negative_and_zero_expires_in_are_rejected() {
    for value in [-5, 0] {
        let s = setup().await;
        s.emu
            .set_reply_fault(Provider::Twoba, ReplyFault::ExpiresIn { value }, 1);
        let err = s.failure(TWOBA_API, &twoba()).await;
        assert!(matches!(err, Error::InvalidExpiry { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("a token lifetime must be positive"),
            "{err}"
        );
        assert_eq!(s.token_requests(Provider::Twoba), 1);
    }
}

#[tokio::test]
async fn huge_expires_in_is_rejected() {
    for value in [1_000_000_000_000, i64::MAX] {
        let s = setup().await;
        s.emu
            .set_reply_fault(Provider::Twoba, ReplyFault::ExpiresIn { value }, 1);
        let err = s.failure(TWOBA_API, &twoba()).await;
        assert!(matches!(err, Error::InvalidExpiry { .. }), "{err:?}");
        assert!(err.to_string().contains("more than 10 years"), "{err}");
    }
}

// ------------------------------------------------------------ renewal

#[tokio::test]
async fn refresh_400_falls_back_to_login() {
    let s = setup().await;
    let conn = twoba();
    assert_eq!(s.status(TWOBA_API, &conn).await, 200);
    // The refresh token dies at the provider; the access token expires here.
    s.emu.revoke(Provider::Twoba);
    s.clock.advance(Duration::from_secs(121));
    assert_eq!(s.status(TWOBA_API, &conn).await, 200, "logged in again");
    let stats = s.emu.stats().twoba;
    assert_eq!(stats.token.requests_by_grant.password, 2);
    assert_eq!(stats.token.requests_by_grant.refresh_token, 1);
    assert_eq!(stats.token.replies_by_status.get(&400), Some(&1));
    assert_eq!(stats.api.status(401), 0, "no expired token was sent");
    assert_eq!(stats.api.status(200), 2);
}

#[tokio::test]
async fn failing_login_while_a_valid_token_exists_keeps_serving_it() {
    let s = setup().await;
    let conn = reob();
    assert_eq!(s.status(REOB_API, &conn).await, 200);
    let first = s
        .auth
        .credential_of("reobtimaal", Some(&conn))
        .await
        .unwrap();
    // REOBtimaal: ttl 60 min, renewal window from about 54 min (10% skew,
    // up to 10% jitter). 55 min in, the token is still valid.
    s.emu
        .fail_token_requests(Provider::Reobtimaal, StatusFault::new(503, 1000));
    s.clock.advance(Duration::from_secs(55 * 60));
    for _ in 0..20 {
        assert_eq!(s.status(REOB_API, &conn).await, 200);
    }
    assert!(
        eventually(Duration::from_secs(5), || s
            .token_requests(Provider::Reobtimaal)
            == 4)
        .await,
        "one background renewal: 1 + 2 retries, all 503"
    );
    let current = s
        .auth
        .credential_of("reobtimaal", Some(&conn))
        .await
        .unwrap();
    assert_eq!(
        current.token_id(),
        first.token_id(),
        "the valid token stays"
    );
    // Within the renewal backoff nothing more is sent.
    for _ in 0..20 {
        assert_eq!(s.status(REOB_API, &conn).await, 200);
    }
    assert_eq!(s.token_requests(Provider::Reobtimaal), 4);
    let stats = s.emu.stats().reobtimaal.api;
    assert_eq!(stats.status(200), 41);

    // Healed; past the backoff the renewal goes through in the background.
    s.emu.clear_faults(Provider::Reobtimaal);
    s.clock.advance(Duration::from_secs(2));
    assert_eq!(s.status(REOB_API, &conn).await, 200);
    assert!(
        eventually(Duration::from_secs(5), || s
            .token_requests(Provider::Reobtimaal)
            == 5)
        .await
    );
    // The renewed token is published once its reply is read.
    let mut renewed = false;
    for _ in 0..1000 {
        let c = s
            .auth
            .credential_of("reobtimaal", Some(&conn))
            .await
            .unwrap();
        if c.token_id() != first.token_id() {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(renewed, "renewed in the background");
    assert_eq!(s.auth.stats().failures, 1, "the one failed renewal");
    assert_eq!(s.status(REOB_API, &conn).await, 200);
    assert_eq!(s.token_requests(Provider::Reobtimaal), 5);
}

#[tokio::test]
async fn recovery_once_the_endpoint_heals_without_restart() {
    let s = setup().await;
    s.emu
        .fail_token_requests(Provider::Reobtimaal, StatusFault::new(503, 1000));
    s.failure(REOB_API, &reob()).await;
    s.emu.clear_faults(Provider::Reobtimaal);
    // Healed, but still within the failure backoff (1 s on the clock): the
    // cached error, no request.
    let err = s.failure(REOB_API, &reob()).await;
    assert!(matches!(
        err,
        Error::Status {
            status: http::StatusCode::SERVICE_UNAVAILABLE,
            ..
        }
    ));
    assert_eq!(s.token_requests(Provider::Reobtimaal), 3);
    s.clock.advance(Duration::from_millis(1001));
    assert_eq!(
        s.status(REOB_API, &reob()).await,
        200,
        "same engine, same client"
    );
    assert_eq!(s.token_requests(Provider::Reobtimaal), 4);
    for _ in 0..5 {
        assert_eq!(s.status(REOB_API, &reob()).await, 200);
    }
    assert_eq!(s.token_requests(Provider::Reobtimaal), 4, "cached again");
}

// ------------------------------------------------------------ lifetimes

/// `expires_in: 1e-9` (or `0.001`) used to make every call log in again. The
/// lifetime is raised to the 1 s floor: 200 calls on a clock that does not
/// move make one login per provider; each raise is counted, and logged at
/// WARN once per provider, without the token.
#[tokio::test]
async fn a_lifetime_below_the_floor_is_raised_counted_and_logged_once() {
    const TOKEN: &str = "short-lived-token-5f2b";
    let (_guard, logs) = capture_logs();
    let endpoint = TokenEndpoint::start(EndpointReply::new(
        200,
        "application/json",
        format!(r#"{{"access_token":"{TOKEN}","expires_in":1e-9}}"#),
    ))
    .await;
    let milli = TokenEndpoint::start(EndpointReply::new(
        200,
        "application/json",
        format!(r#"{{"access_token":"{TOKEN}","expires_in":0.001}}"#),
    ))
    .await;
    let toml = endpoint_toml("nano", &endpoint, r#"expires_in = "/expires_in""#, "")
        + &endpoint_toml("milli", &milli, r#"expires_in = "/expires_in""#, "");
    let providers = Providers::from_toml("p.toml", &toml).unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::new());
    let auth = TokenAuth::builder(providers)
        .clock(clock.clone())
        .retries(0)
        .build()
        .unwrap();
    let conn = Connection::new("c").with_secret("secret", "s3cr3t-floor");
    for _ in 0..200 {
        auth.credential_of("nano", Some(&conn)).await.unwrap();
        auth.credential_of("milli", Some(&conn)).await.unwrap();
    }
    assert_eq!(
        (endpoint.requests(), milli.requests()),
        (1, 1),
        "one login each"
    );
    let stats = auth.stats();
    assert_eq!((stats.logins, stats.clamped_lifetimes), (2, 2), "{stats:?}");

    // Past the floor each logs in again (clamped again), without a new WARN.
    clock.advance(Duration::from_secs(2));
    for _ in 0..200 {
        auth.credential_of("nano", Some(&conn)).await.unwrap();
        auth.credential_of("milli", Some(&conn)).await.unwrap();
    }
    assert_eq!((endpoint.requests(), milli.requests()), (2, 2));
    assert_eq!(auth.stats().clamped_lifetimes, 4);

    let logs = logs.text();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("lifetime shorter than the floor"))
        .collect();
    assert_eq!(warnings.len(), 2, "once per provider: {logs}");
    assert!(
        warnings[0].contains("provider=nano") && warnings[0].contains("value=1e-9"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].contains("provider=milli") && warnings[1].contains("value=0.001"),
        "{}",
        warnings[1]
    );
    assert!(
        !logs.contains(TOKEN),
        "the token leaked into the log: {logs}"
    );
}
