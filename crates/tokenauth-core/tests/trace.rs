//! A whole flow at TRACE level prints no secret. Its own test binary: it
//! installs a global `tracing` subscriber.

#[allow(dead_code, unreachable_pub)]
#[path = "engine/helpers.rs"]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;
use tokenauth_emulator::{
    KEYSTONE_PASSWORD, KEYSTONE_USERNAME, Provider, ReplyFault, SESSION_PASSWORD, SESSION_USERNAME,
    Shape, StatusFault,
};
use tracing_subscriber::fmt::MakeWriter;

use helpers::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

/// A whole flow at TRACE level (logins, refreshes, renewals, invalidation,
/// failures) leaves no secret in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_flow_at_trace_level_prints_no_secret() {
    let buf = Buf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tokenauth_core=trace,reqwest=trace")
        .with_writer(buf.clone())
        .with_ansi(false)
        .finish();
    // Global, so that every thread and task reports (a thread-local default
    // races with callsite-interest caching in other tests).
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let s = setup().await;
    let (r, t, b) = (reob(), twoba(), bro());
    let mut tokens = Vec::new();
    let c = s.auth.credential_of("reobtimaal", Some(&r)).await.unwrap();
    tokens.push(c.access_token().unwrap().expose_secret().to_owned());
    let c2 = s.auth.credential_of("twoba", Some(&t)).await.unwrap();
    tokens.push(c2.access_token().unwrap().expose_secret().to_owned());
    s.auth.credential_of("bro", Some(&b)).await.unwrap();
    // Renewal window, background refresh.
    s.clock.advance(Duration::from_secs(100));
    s.auth.credential_of("twoba", Some(&t)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || s
            .emu
            .stats()
            .twoba
            .token
            .requests
            == 2)
        .await
    );
    // Invalidation and re-fetch.
    s.auth
        .provider("reobtimaal")
        .unwrap()
        .invalidate(Some(&r), &c)
        .await;
    let c3 = s.auth.credential_of("reobtimaal", Some(&r)).await.unwrap();
    tokens.push(c3.access_token().unwrap().expose_secret().to_owned());
    // Failures: a scrubbed 400 and garbage.
    s.emu
        .fail_token_requests(Provider::Twoba, StatusFault::new(400, 1));
    s.clock.advance(Duration::from_secs(200));
    let e = s.auth.credential_of("twoba", Some(&t)).await;
    assert!(e.is_ok(), "400 on refresh -> login: {e:?}");
    s.emu
        .set_reply_fault(Provider::Reobtimaal, ReplyFault::MalformedJson, 1);
    s.clock.advance(Duration::from_secs(3601));
    assert!(s.auth.credential_of("reobtimaal", Some(&r)).await.is_err());

    // Tokens from a reply header and a Set-Cookie (issue 14, item 4).
    let emu = &s.emu;
    let shape_toml = format!(
        r#"
[providers.keystone]
api = ["{ks_api}"]
inputs.password = {{ secret = true }}
[providers.keystone.login]
url = "{ks_login}"
body = "json"
fields.auth.identity = {{ methods = ["password"], password.user = {{ name = "{KEYSTONE_USERNAME}", domain = {{ id = "default" }}, password = "{{{{ inputs.password }}}}" }} }}
[providers.keystone.response]
access_token = {{ header = "X-Subject-Token" }}
expires_at = "/token/expires_at"
[providers.keystone.inject]
header = "X-Auth-Token"
value = "{{{{ token.access }}}}"

[providers.session]
api = ["{s_api}"]
inputs.password = {{ secret = true }}
login = {{ url = "{s_login}", fields = {{ user = "{SESSION_USERNAME}", pass = "{{{{ inputs.password }}}}" }} }}
response = {{ access_token = {{ cookie = "SESSION" }} }}
expiry = {{ ttl = "30m" }}
inject = {{ header = "Cookie", value = "SESSION={{{{ token.access }}}}" }}
"#,
        ks_api = emu.shape_url(Shape::Keystone, "/compute/"),
        ks_login = emu.shape_url(Shape::Keystone, "/v3/auth/tokens"),
        s_api = emu.shape_url(Shape::Session, "/api/"),
        s_login = emu.shape_url(Shape::Session, "/login"),
    );
    let shapes = tokenauth_core::TokenAuth::builder(
        tokenauth_core::Providers::from_toml("shapes.toml", &shape_toml).unwrap(),
    )
    .build()
    .unwrap();
    for (id, password) in [
        ("keystone", KEYSTONE_PASSWORD),
        ("session", SESSION_PASSWORD),
    ] {
        let conn = tokenauth_core::Connection::new(id)
            .with_secret("password", secrecy::SecretString::from(password));
        let c = shapes.credential_of(id, Some(&conn)).await.unwrap();
        tokens.push(c.access_token().unwrap().expose_secret().to_owned());
        let bad = tokenauth_core::Connection::new(format!("{id}-bad"))
            .with_secret("password", secrecy::SecretString::from("SECRET-wrong"));
        let err = shapes.credential_of(id, Some(&bad)).await.unwrap_err();
        assert_no_secret(&format!("{err} {err:?} {c:?}"), &[password, "SECRET-wrong"]);
    }

    let refresh_tokens: Vec<String> = s
        .emu
        .recorded_token_requests()
        .iter()
        .filter_map(|r| r.form_field("refresh_token").map(str::to_owned))
        .collect();
    assert!(!refresh_tokens.is_empty());
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        out.contains("tokenauth.fetch") && out.contains("token acquired"),
        "{out}"
    );
    let extra: Vec<&str> = tokens
        .iter()
        .chain(&refresh_tokens)
        .map(String::as_str)
        .collect();
    assert_no_secret(&out, &extra);
    assert_no_secret(&out, &[KEYSTONE_PASSWORD, SESSION_PASSWORD, "SECRET-wrong"]);
    assert_no_secret(&format!("{:?} {:?} {:?} {:?}", c, c2, s.auth, t), &extra);
}
