//! Waits run on the monotonic clock: stepping the wall clock (back or
//! forward) neither stretches nor cuts short the backoff after a failed
//! acquisition. Only token expiry follows the wall clock.

use std::time::Duration;

use tokenauth_core::Error;
use tokenauth_core::clock::Clock as _;
use tokenauth_emulator::{Provider, StatusFault};

use crate::helpers::*;

/// Asks for a credential and expects the (possibly cached) HTTP 500.
async fn expect_500(s: &Setup) {
    let err = s
        .auth
        .credential_of("reobtimaal", Some(&reob()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Status {
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Fails one whole acquisition (the first try and both retries), leaving the
/// endpoint healthy afterwards; returns the cached error's token requests.
async fn fail_once(s: &Setup) -> u64 {
    s.emu
        .fail_token_requests(Provider::Reobtimaal, StatusFault::new(500, 3));
    expect_500(s).await;
    let requests = s.emu.stats().reobtimaal.token.requests;
    assert_eq!(requests, 3, "1 + 2 retries");
    requests
}

#[tokio::test]
async fn a_wall_clock_stepped_back_does_not_stretch_the_backoff() {
    let s = setup().await;
    let requests = fail_once(&s).await;
    // An operator (or NTP) sets the clock back an hour; then the backoff
    // (at most 1 s after a first failure) passes on the monotonic clock.
    let now = s.clock.now();
    s.clock.set(now - Duration::from_secs(3600));
    s.clock.advance(Duration::from_secs(2));
    let credential = s
        .auth
        .credential_of("reobtimaal", Some(&reob()))
        .await
        .expect("the endpoint healed and the backoff is over");
    assert_eq!(s.emu.stats().reobtimaal.token.requests, requests + 1);
    // The token's expiry follows the wall clock it was fetched on.
    let remaining = credential.remaining(s.clock.now()).unwrap();
    assert!(remaining > Duration::from_secs(3500), "{remaining:?}");
}

#[tokio::test]
async fn a_wall_clock_stepped_forward_does_not_cut_the_backoff_short() {
    let s = setup().await;
    let requests = fail_once(&s).await;
    // The wall clock jumps a day ahead; no time passes.
    let now = s.clock.now();
    s.clock.set(now + Duration::from_secs(24 * 3600));
    expect_500(&s).await;
    assert_eq!(
        s.emu.stats().reobtimaal.token.requests,
        requests,
        "still backing off: the cached error, no request"
    );
    s.clock.advance(Duration::from_secs(2));
    s.auth
        .credential_of("reobtimaal", Some(&reob()))
        .await
        .expect("after the backoff, one login");
    assert_eq!(s.emu.stats().reobtimaal.token.requests, requests + 1);
}
