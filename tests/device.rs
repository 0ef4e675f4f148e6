//! The device authorization grant (RFC 8628) against the emulator's device
//! fixture: `authorization_pending` then success, `slow_down` honoured,
//! denial and expiry as typed errors with nothing stored. Time is tokio's,
//! paused: the schedule (5 s intervals, +5 s after `slow_down`) is checked
//! in the fixture's own poll log, never against the wall clock.

mod helpers;

use std::sync::Arc;
use std::time::Duration;

use tokenauth::store::{MemoryStore, StoreKey, TokenStore};
use tokenauth::{DeviceFailure, Error, Providers, TokenAuth};
use tokenauth_emulator::{DEVICE_CLIENT_ID, Emulator, EmulatorConfig};

fn toml(emu: &Emulator) -> String {
    format!(
        r#"
[providers.dev]
api = ["{api}"]
inputs.client_id = {{ default = "{DEVICE_CLIENT_ID}" }}

[providers.dev.device]
url = "{code}"
scopes = ["read", "offline_access"]
fields = {{ client_id = "{{{{ inputs.client_id }}}}" }}

[providers.dev.refresh]
url = "{token}"
fields = {{ grant_type = "refresh_token", refresh_token = "{{{{ token.refresh }}}}", client_id = "{{{{ inputs.client_id }}}}" }}
rotate = true

[providers.dev.response]
refresh_token = "/refresh_token"
expires_in = "/expires_in"

[providers.dev.inject]
header = "Authorization"
value = "Bearer {{{{ token.access }}}}"
"#,
        api = emu.device_url("/api/"),
        code = emu.device_url("/oauth/device/code"),
        token = emu.device_url("/oauth/token"),
    )
}

async fn setup() -> (Emulator, TokenAuth, Arc<MemoryStore>) {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let providers = Providers::from_toml("providers.toml", &toml(&emu)).expect("loads");
    let store = Arc::new(MemoryStore::new());
    let auth = TokenAuth::builder(providers)
        .store(store.clone())
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(20))
        .build()
        .expect("engine builds");
    (emu, auth, store)
}

async fn stored(store: &MemoryStore) -> bool {
    let key = StoreKey {
        provider: "dev",
        connection: "default",
    };
    store
        .read(&key)
        .await
        .expect("store reads")
        .refresh_token
        .is_some()
}

#[tokio::test(start_paused = true)]
async fn pending_twice_then_success_stores_the_refresh_token() {
    let (emu, auth, store) = setup().await;
    let dev = auth.provider("dev").unwrap();
    let authorization = dev.device_authorization(None).await.expect("starts");
    assert_eq!(authorization.interval(), Duration::from_secs(5));
    let user_code = authorization.user_code().to_owned();
    assert!(
        authorization
            .verification_uri()
            .ends_with("/device/activate")
    );
    let shown = format!("{authorization:?}");
    assert!(!shown.contains("dc-"), "no device code in Debug: {shown}");
    let wait = tokio::spawn(authorization.wait());
    // Two polls answered authorization_pending, then the person approves
    // in the browser (over HTTP).
    while emu.device_stats().polls < 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = reqwest::Client::new();
    let approved = client
        .post(emu.device_url("/approve"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("user_code={user_code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let granted = wait.await.unwrap().expect("granted");
    assert!(granted.refresh_token_stored);
    let stats = emu.device_stats();
    assert_eq!(stats.polls, 3, "pending, pending, success");
    assert_eq!(
        stats.poll_offsets,
        [5, 10, 15].map(Duration::from_secs).to_vec(),
        "one poll per interval"
    );
    assert!(stored(&store).await);
    // The access token is cached: no token request for the credential, and
    // the API accepts it.
    let before = emu.device_stats();
    let credential = dev.credential(None).await.unwrap();
    assert_eq!(emu.device_stats().refreshes, before.refreshes);
    let mut headers = http::HeaderMap::new();
    assert!(credential.apply_to_headers(&mut headers));
    let api = client
        .get(emu.device_url("/api/me"))
        .headers(headers)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn slow_down_adds_five_seconds_to_every_later_interval() {
    let (emu, auth, _store) = setup().await;
    emu.device_slow_down_once();
    let dev = auth.provider("dev").unwrap();
    let authorization = dev.device_authorization(None).await.expect("starts");
    let user_code = authorization.user_code().to_owned();
    let wait = tokio::spawn(authorization.wait());
    while emu.device_stats().polls < 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(emu.device_decide(&user_code, true));
    wait.await.unwrap().expect("granted");
    let stats = emu.device_stats();
    assert_eq!(stats.slow_downs, 1, "the fixture never had to repeat it");
    // slow_down at 5 s; then 10 s apart: 15, 25, and the success at 35.
    assert_eq!(
        stats.poll_offsets,
        [5, 15, 25, 35].map(Duration::from_secs).to_vec()
    );
}

#[tokio::test(start_paused = true)]
async fn denial_is_a_typed_error_and_nothing_is_stored() {
    let (emu, auth, store) = setup().await;
    let dev = auth.provider("dev").unwrap();
    let authorization = dev.device_authorization(None).await.expect("starts");
    assert!(emu.device_decide(authorization.user_code(), false));
    let err = authorization.wait().await.expect_err("denied");
    assert!(
        matches!(
            err,
            Error::Device {
                reason: DeviceFailure::Denied,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("denied"), "{err}");
    assert!(!err.to_string().contains("dc-"), "no device code: {err}");
    assert!(!stored(&store).await);
    assert!(dev.cached(None).is_none());
}

#[tokio::test(start_paused = true)]
async fn expiry_is_a_typed_error_and_nothing_is_stored() {
    let (emu, auth, store) = setup().await;
    emu.set_device_code_lifetime(Duration::from_secs(12));
    let dev = auth.provider("dev").unwrap();
    let authorization = dev.device_authorization(None).await.expect("starts");
    assert_eq!(authorization.expires_in(), Duration::from_secs(12));
    let err = authorization.wait().await.expect_err("expired");
    assert!(
        matches!(
            err,
            Error::Device {
                reason: DeviceFailure::Expired,
                ..
            }
        ),
        "{err:?}"
    );
    // Polls at 5 s and 10 s; the one at 15 s would come after expiry.
    assert_eq!(emu.device_stats().polls, 2);
    assert!(!stored(&store).await);
}

/// The log of a [`tracing`] subscriber, shared with the test.
#[derive(Clone, Default)]
struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn no_device_code_or_token_in_a_trace_level_log() {
    // A line pinned to "never" by a test without a subscriber would be
    // missing here (see `interested_global_default`).
    helpers::interested_global_default();
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (emu, auth, _store) = setup().await;
    emu.device_slow_down_once();
    let dev = auth.provider("dev").unwrap();
    let authorization = dev.device_authorization(None).await.expect("starts");
    let user_code = authorization.user_code().to_owned();
    let wait = tokio::spawn(authorization.wait());
    while emu.device_stats().polls < 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(emu.device_decide(&user_code, true));
    wait.await.unwrap().expect("granted");
    dev.credential(None).await.unwrap();
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("slow_down"), "the log is captured: {text}");
    assert!(text.contains("device authorization granted"), "{text}");
    for secret in ["dc-", "device-at-", "device-rt-"] {
        assert!(!text.contains(secret), "`{secret}…` in the log:\n{text}");
    }
}

#[tokio::test]
async fn a_rejected_client_is_the_status_error_of_the_device_request() {
    let (_emu, auth, store) = setup().await;
    let dev = auth.provider("dev").unwrap();
    let conn = tokenauth::Connection::new("wrong").with_input("client_id", "someone-else");
    let err = dev
        .device_authorization(Some(&conn))
        .await
        .expect_err("invalid_client");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{err:?}");
    assert!(
        matches!(
            err,
            Error::Status {
                request: tokenauth::RequestKind::Device,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("device authorization"), "{err}");
    assert!(!stored(&store).await);
}
