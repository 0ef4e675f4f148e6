//! Tokens outside the JSON body, nested JSON login bodies and expiry units,
//! end to end against the emulator's documented reply shapes over HTTP on
//! loopback (issue 14, item 4): Keystone's `X-Subject-Token`, a
//! cookie-session login with an HTML or empty body, `expires_in` in
//! milliseconds.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use secrecy::SecretString;
use tokenauth_core::clock::{Clock as _, ManualClock};
use tokenauth_core::store::MemoryStore;
use tokenauth_core::{Connection, Error, Providers, TokenAuth};
use tokenauth_emulator::{
    Emulator, EmulatorConfig, KEYSTONE_PASSWORD, KEYSTONE_USERNAME, MILLIS_CLIENT_ID,
    MILLIS_CLIENT_SECRET, SESSION_PASSWORD, SESSION_USERNAME, Shape,
};

use crate::helpers::CredentialOf as _;

const SECRETS: [&str; 3] = [KEYSTONE_PASSWORD, SESSION_PASSWORD, MILLIS_CLIENT_SECRET];

fn description(emu: &Emulator, session_body: &str) -> String {
    let url = |s: Shape, p: &str| emu.shape_url(s, p);
    format!(
        r#"
[providers.keystone]
api = ["{ks_api}"]
inputs.user = {{}}
inputs.password = {{ secret = true }}
[providers.keystone.login]
url = "{ks_login}"
body = "json"
[providers.keystone.login.fields.auth.identity]
methods = ["password"]
password.user = {{ name = "{{{{ inputs.user }}}}", domain = {{ id = "default" }}, password = "{{{{ inputs.password }}}}" }}
[providers.keystone.response]
access_token = {{ header = "X-Subject-Token" }}
expires_at = "/token/expires_at"
[providers.keystone.inject]
header = "X-Auth-Token"
value = "{{{{ token.access }}}}"

[providers.session]
api = ["{s_api}"]
inputs.user = {{}}
inputs.password = {{ secret = true }}
login = {{ url = "{s_login}", {session_body}fields = {{ user = "{{{{ inputs.user }}}}", pass = "{{{{ inputs.password }}}}" }} }}
response = {{ access_token = {{ cookie = "SESSION" }} }}
expiry = {{ ttl = "30m" }}
inject = {{ header = "Cookie", value = "SESSION={{{{ token.access }}}}" }}

[providers.millis]
api = ["{m_api}"]
inputs.client_id = {{}}
inputs.client_secret = {{ secret = true }}
login = {{ url = "{m_login}", body = "json", fields = {{ client_id = "{{{{ inputs.client_id }}}}", client_secret = "{{{{ inputs.client_secret }}}}" }} }}
response = {{ expires_in = "/expires_in", expires_in_unit = "milliseconds" }}
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
        ks_api = url(Shape::Keystone, "/compute/"),
        ks_login = url(Shape::Keystone, "/v3/auth/tokens"),
        s_api = url(Shape::Session, "/api/"),
        s_login = url(Shape::Session, "/login"),
        m_api = url(Shape::Millis, "/api/"),
        m_login = url(Shape::Millis, "/oauth/token"),
    )
}

async fn setup(session_body: &str) -> (Emulator, TokenAuth, Arc<ManualClock>) {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let clock = Arc::new(ManualClock::new());
    let providers = Providers::from_toml("sources.toml", &description(&emu, session_body))
        .unwrap_or_else(|e| panic!("{e}"));
    let auth = TokenAuth::builder(providers)
        .clock(clock.clone())
        .store(Arc::new(MemoryStore::new()))
        .retries(0)
        .build()
        .expect("engine");
    (emu, auth, clock)
}

fn connection(shape: Shape, good: bool) -> Connection {
    let (id, user, secret, input) = match shape {
        Shape::Keystone => (
            "ks",
            KEYSTONE_USERNAME,
            KEYSTONE_PASSWORD,
            ("user", "password"),
        ),
        Shape::Session => (
            "s",
            SESSION_USERNAME,
            SESSION_PASSWORD,
            ("user", "password"),
        ),
        Shape::Millis => (
            "m",
            MILLIS_CLIENT_ID,
            MILLIS_CLIENT_SECRET,
            ("client_id", "client_secret"),
        ),
    };
    // A bad connection has an id of its own, or it would share the good one's token.
    let (id, secret) = match good {
        true => (id.to_owned(), secret.to_owned()),
        false => (format!("{id}-bad"), format!("{secret}-wrong")),
    };
    Connection::new(id)
        .with_input(input.0, user)
        .with_secret(input.1, SecretString::from(secret))
}

/// A path inside the provider's `api` prefix.
fn api_path(shape: Shape) -> &'static str {
    match shape {
        Shape::Keystone => "/compute/v2.1/servers",
        Shape::Session | Shape::Millis => "/api/things",
    }
}

/// Sends the credential of `provider` to the shape's API: the token reached
/// it when the API answers 200 with the user. Returns the token as sent.
async fn call_api(emu: &Emulator, auth: &TokenAuth, provider: &str, shape: Shape) -> String {
    let cred = auth
        .credential_of(provider, Some(&connection(shape, true)))
        .await
        .unwrap_or_else(|e| panic!("{provider}: {e}"));
    let mut headers = HeaderMap::new();
    assert!(cred.apply_to_headers(&mut headers));
    let (name, value) = headers.iter().next().expect("one header");
    let sent = value.to_str().unwrap().to_owned();
    let debug = format!("{cred:?}");
    let token = sent.rsplit([' ', '=']).next().expect("a token").to_owned();
    assert!(token.len() >= 20, "{sent}");
    assert!(
        !debug.contains(&token),
        "the token is in the Debug output: {debug}"
    );
    let reply = reqwest::Client::new()
        .get(emu.shape_url(shape, api_path(shape)))
        .header(name, value)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "{provider}");
    let body: serde_json::Value = serde_json::from_slice(&reply.bytes().await.unwrap()).unwrap();
    assert!(body["user"].is_string(), "{body}");
    token
}

/// A failed login's error, as text and Debug, holds neither the connection's
/// secret nor any token.
fn assert_clean(err: &Error, tokens: &[&str]) {
    let text = format!("{err} {err:?}");
    for s in SECRETS.iter().chain(tokens) {
        assert!(!text.contains(s), "a secret leaked into: {text}");
    }
}

#[tokio::test]
async fn keystone_token_from_the_subject_token_header_with_a_nested_json_login() {
    let (emu, auth, clock) = setup("").await;
    let token = call_api(&emu, &auth, "keystone", Shape::Keystone).await;
    // The expiry comes from the body, the token from the header.
    let cred = auth
        .credential_of("keystone", Some(&connection(Shape::Keystone, true)))
        .await
        .unwrap();
    let left = cred
        .expires_at()
        .unwrap()
        .duration_since(clock.now())
        .unwrap();
    assert!(
        left > Duration::from_secs(3500) && left <= Duration::from_secs(3601),
        "{left:?}"
    );
    assert_eq!(emu.shape_stats(Shape::Keystone).token_requests, 1);
    // Wrong password: the emulator checks the nested body, 401.
    let err = auth
        .credential_of("keystone", Some(&connection(Shape::Keystone, false)))
        .await
        .expect_err("a wrong password cannot log in");
    assert!(
        matches!(err, Error::Status { status, .. } if status == 401),
        "{err:?}"
    );
    assert_clean(&err, &[&token]);
}

#[tokio::test]
async fn session_cookie_from_a_form_login_with_an_html_body() {
    let (emu, auth, _clock) = setup("").await;
    let token = call_api(&emu, &auth, "session", Shape::Session).await;
    assert_eq!(emu.shape_stats(Shape::Session).api_ok, 1);
    // A 401 HTML page is an error without the secret.
    let err = auth
        .credential_of("session", Some(&connection(Shape::Session, false)))
        .await
        .expect_err("wrong password");
    assert!(
        matches!(err, Error::Status { status, .. } if status == 401),
        "{err:?}"
    );
    assert_clean(&err, &[&token]);
}

#[tokio::test]
async fn session_cookie_from_a_json_login_with_an_empty_body() {
    let (emu, auth, _clock) = setup("body = \"json\", ").await;
    emu.set_session_empty_body(true);
    call_api(&emu, &auth, "session", Shape::Session).await;
}

#[tokio::test]
async fn a_missing_cookie_names_the_cookie_and_no_value() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    // Reads a cookie the reply does not set: the reply sets SESSION and theme.
    let toml = description(&emu, "").replace(r#"cookie = "SESSION""#, r#"cookie = "JSESSIONID""#);
    let auth = TokenAuth::builder(Providers::from_toml("t.toml", &toml).unwrap())
        .retries(0)
        .build()
        .unwrap();
    let err = auth
        .credential_of("session", Some(&connection(Shape::Session, true)))
        .await
        .expect_err("no such cookie");
    assert!(
        matches!(&err, Error::MissingField { pointer, .. } if pointer == "cookie JSESSIONID"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("\"SESSION\"") && text.contains("\"theme\""),
        "{text}"
    );
    assert_clean(&err, &[]);
    assert!(!text.contains("light"), "a cookie value leaked: {text}");
}

#[tokio::test]
async fn expires_in_milliseconds() {
    let (emu, auth, clock) = setup("").await;
    emu.set_shape_token_lifetime(Shape::Millis, Duration::from_secs(90));
    call_api(&emu, &auth, "millis", Shape::Millis).await;
    let cred = auth
        .credential_of("millis", Some(&connection(Shape::Millis, true)))
        .await
        .unwrap();
    // 90 000 ms, not 90 000 s.
    assert_eq!(
        cred.expires_at(),
        Some(clock.now() + Duration::from_secs(90))
    );
    // Past its end the token is renewed: a second token request.
    clock.advance(Duration::from_secs(91));
    call_api(&emu, &auth, "millis", Shape::Millis).await;
    assert_eq!(emu.shape_stats(Shape::Millis).token_requests, 2);
}
