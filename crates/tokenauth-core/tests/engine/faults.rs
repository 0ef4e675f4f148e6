//! Endpoint faults -> typed errors with clear messages and no secrets.

use std::time::Duration;

use tokenauth_core::Error;
use tokenauth_emulator::{Provider, ReplyFault, StatusFault};

use crate::helpers::*;

async fn reob_error(s: &Setup) -> Error {
    let err = s
        .auth
        .credential_of("reobtimaal", Some(&reob()))
        .await
        .unwrap_err();
    assert_no_secret(&err.to_string(), &[]);
    assert_no_secret(&format!("{err:?}"), &[]);
    err
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let s = setup().await;
    // Two 500s: the third attempt (second retry) succeeds.
    s.emu
        .fail_token_requests(Provider::Reobtimaal, StatusFault::new(500, 2));
    s.auth
        .credential_of("reobtimaal", Some(&reob()))
        .await
        .unwrap();
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 3);

    let s = setup().await;
    s.emu
        .fail_token_requests(Provider::Reobtimaal, StatusFault::new(502, 10));
    let err = reob_error(&s).await;
    assert!(
        matches!(
            err,
            Error::Status {
                status: http::StatusCode::BAD_GATEWAY,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.emu.stats().reobtimaal.token.requests, 3, "1 + 2 retries");
    insta::assert_snapshot!("status_502", err.to_string());
}

#[tokio::test]
async fn wrong_credentials_give_a_scrubbed_400() {
    let s = setup().await;
    let conn = tokenauth_core::Connection::new("wrong")
        .with_input("username", "reob-demo")
        .with_secret("password", "not-the-password");
    let err = s
        .auth
        .credential_of("reobtimaal", Some(&conn))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Status {
                status: http::StatusCode::BAD_REQUEST,
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secret(&err.to_string(), &["not-the-password"]);
    insta::assert_snapshot!("wrong_password_400", err.to_string());
    assert_eq!(
        s.emu.stats().reobtimaal.token.requests,
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let s = setup_toml(&seed_toml().replace(r#"timeout = "30s""#, r#"timeout = "150ms""#)).await;
    s.emu
        .set_token_latency(Provider::Reobtimaal, Duration::from_secs(2));
    let err = reob_error(&s).await;
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    insta::assert_snapshot!("timeout", err.to_string());
    assert_eq!(
        s.emu.stats().reobtimaal.token.requests,
        1,
        "a timeout is not retried"
    );
}

#[tokio::test]
async fn garbage_is_not_json() {
    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Reobtimaal, ReplyFault::MalformedJson, 1);
    let err = reob_error(&s).await;
    assert!(matches!(err, Error::NotJson { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("is not JSON (it ends too early at line 1 column"),
        "{msg}"
    );
    assert!(!msg.contains(tokenauth_emulator::REOB_DEMO_PASSWORD));
}

#[tokio::test]
async fn an_oversized_reply_is_cut_off_at_one_mebibyte() {
    let s = setup().await;
    s.emu.set_reply_fault(
        Provider::Reobtimaal,
        ReplyFault::OversizedBody {
            bytes: 64 * 1024 * 1024,
        },
        1,
    );
    let err = reob_error(&s).await;
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
    insta::assert_snapshot!("oversized", err.to_string());
}

#[tokio::test]
async fn a_missing_token_names_the_pointer_and_the_keys() {
    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Twoba, ReplyFault::MissingToken, 1);
    let err = s
        .auth
        .credential_of("twoba", Some(&twoba()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingField {
                field: "access_token",
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secret(&err.to_string(), &[]);
    insta::assert_snapshot!("missing_token", err.to_string());
}

#[tokio::test]
async fn a_token_of_the_wrong_type() {
    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Reobtimaal, ReplyFault::WrongTokenType, 1);
    let err = reob_error(&s).await;
    assert!(
        matches!(
            err,
            Error::WrongType {
                found: "a number",
                ..
            }
        ),
        "{err:?}"
    );
    insta::assert_snapshot!("wrong_type", err.to_string());
}

#[tokio::test]
async fn negative_and_absurd_expires_in() {
    let s = setup().await;
    let conn = twoba();
    s.emu
        .set_reply_fault(Provider::Twoba, ReplyFault::ExpiresIn { value: -5 }, 1);
    let err = s
        .auth
        .credential_of("twoba", Some(&conn))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidExpiry { .. }), "{err:?}");
    insta::assert_snapshot!("expires_in_negative", err.to_string());

    let s = setup().await;
    s.emu.set_reply_fault(
        Provider::Twoba,
        ReplyFault::ExpiresIn {
            value: 1_000_000_000_000,
        },
        1,
    );
    let err = s
        .auth
        .credential_of("twoba", Some(&conn))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 10 years"), "{err}");
}

#[tokio::test]
async fn a_cut_connection_is_a_transport_error() {
    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Reobtimaal, ReplyFault::CloseWithoutReply, 10);
    let err = reob_error(&s).await;
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        s.emu.stats().reobtimaal.token.requests,
        3,
        "transport failures are retried"
    );
    insta::assert_snapshot!("transport", err.to_string());
    assert!(
        std::error::Error::source(&err).is_some(),
        "the cause is kept as the source"
    );

    let s = setup().await;
    s.emu
        .set_reply_fault(Provider::Reobtimaal, ReplyFault::TruncatedBody, 10);
    let err = reob_error(&s).await;
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_endpoint() {
    // A port nobody listens on (bind, read the port, close).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!(
        r#"
[providers.x]
api = ["http://127.0.0.1:{port}/api/"]
inputs.key = {{ env = "TOKENAUTH_TEST_UNSET_X", secret = true }}
login = {{ url = "http://127.0.0.1:{port}/token", fields = {{ key = "{{{{ inputs.key }}}}" }} }}
expiry.ttl = "1m"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
    );
    let providers = tokenauth_core::Providers::from_toml("x.toml", &toml).unwrap();
    let auth = tokenauth_core::TokenAuth::builder(providers)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    let conn = tokenauth_core::Connection::new("c").with_secret("key", "k-secret-value");
    let err = auth.credential_of("x", Some(&conn)).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("k-secret-value"));
    assert_eq!(auth.stats().token_requests, 3);
}

#[test]
fn a_fetch_cut_off_by_its_runtime_is_aborted_for_every_waiter() {
    // A token endpoint that accepts and never answers: the fetch is in
    // flight when the runtime that runs it shuts down.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, on_accept) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            let _ = accepted.send(());
        }
    });
    let toml = format!(
        r#"
[providers.x]
api = ["http://127.0.0.1:{port}/api/"]
login = {{ url = "http://127.0.0.1:{port}/token", fields = {{ grant_type = "client_credentials" }} }}
expiry.ttl = "1m"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
    );
    let providers = tokenauth_core::Providers::from_toml("x.toml", &toml).unwrap();
    let fetching = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let auth = fetching.block_on(async { tokenauth_core::TokenAuth::builder(providers).build() });
    let auth = auth.unwrap();
    let conn = tokenauth_core::Connection::new("c");

    // Two waiters join the one fetch, which runs in its own task there.
    let mut first = Box::pin(auth.credential_of("x", Some(&conn)));
    let mut second = Box::pin(auth.credential_of("x", Some(&conn)));
    fetching.block_on(async {
        for waiter in [&mut first, &mut second] {
            let poll = tokio::time::timeout(Duration::from_millis(20), waiter.as_mut()).await;
            assert!(poll.is_err(), "no reply, so no credential yet");
        }
    });
    on_accept
        .recv_timeout(Duration::from_secs(10))
        .expect("the fetch reached the endpoint");
    drop(fetching);

    // Awaited elsewhere, both get the fetch's end: aborted, not a hang.
    let waiting = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for waiter in [first, second] {
        let err = waiting.block_on(waiter).unwrap_err();
        assert!(
            matches!(&err, Error::Aborted { provider } if provider == "x"),
            "{err:?}"
        );
        assert!(err.to_string().contains("aborted"), "{err}");
    }
    assert_eq!(auth.stats().token_requests, 1);
}
