//! Hostile token replies (property tests): arbitrary JSON values, reply-shaped
//! objects with values of every type, and arbitrary bytes, answered by a
//! loopback token endpoint with assorted statuses, never panic the engine,
//! never hang, end in a token or a typed reply error, and never put the
//! connection's secret input (or, for a refresh, the refresh token sent)
//! into an error message, even when the reply echoes it: in a value, as a
//! key, in an expiry, or in JSON cut short.
//!
//! The replies go through the real path (HTTP, size cap, status handling,
//! JSON parsing, the `[response]` pointers, every expiry source, a refresh
//! with fallback to login), for six differently described providers.
//!
//! The number of cases is bounded for the default test run; raise it with
//! `PROPTEST_CASES=5000 cargo test --test hardening replies`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::CredentialOf as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use tokenauth::store::{MemoryStore, StoreKey, TokenStore};
use tokenauth::{Connection, Error, Providers, RequestKind, TokenAuth};

/// The secret input every provider sends; replies may echo it anywhere.
const SECRET: &str = "s3cr3t-input-value-d41d8cd9";
/// A refresh token held in the store before a refresh; replies may echo it.
const HELD_REFRESH: &str = "held-refresh-token-0f1e2d3c4b";

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The reply the loopback endpoint gives to every request.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    body: Vec<u8>,
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    reply: Arc<Mutex<Reply>>,
    auth: TokenAuth,
    store: Arc<MemoryStore>,
    next: std::sync::atomic::AtomicU64,
}

fn description(addr: SocketAddr) -> String {
    let common = |id: &str| {
        format!(
            r#"
[providers.{id}]
api = ["http://{addr}/api/{id}/"]
inputs.secret = {{ env = "TOKENAUTH_HARDENING_NEVER_SET", secret = true }}
login = {{ url = "http://{addr}/token/{id}", timeout = "5s", fields = {{ grant_type = "client_credentials", client_secret = "{{{{ inputs.secret }}}}" }} }}
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
        )
    };
    format!(
        r#"{ttl}
response.access_token = "/access_token"
expiry.ttl = "1h"
{oauth}
response = {{ access_token = "/access_token", refresh_token = "/refresh_token", expires_in = "/expires_in", token_type = "/token_type" }}
expiry.skew = "20%"
refresh = {{ rotate = true, on_error = {{ status = [400, 401], action = "login" }}, fields = {{ grant_type = "refresh_token", refresh_token = "{{{{ token.refresh }}}}", client_secret = "{{{{ inputs.secret }}}}" }} }}
{rfc}
response = {{ access_token = "/access_token", expires_at = "/expires_at", expires_at_format = "rfc3339" }}
{unix}
response = {{ access_token = "/access_token", expires_at = "/expires_at", expires_at_format = "unix_millis" }}
{jwt}
response.access_token = "/access_token"
expiry = {{ jwt_exp = true, ttl = "10m" }}
{nested}
response = {{ access_token = "/data/0/token", expires_in = "/data/0/ttl" }}
expiry.ttl = "1h"
"#,
        ttl = common("ttl"),
        oauth = common("oauth"),
        rfc = common("rfc"),
        unix = common("unix"),
        jwt = common("jwt"),
        nested = common("nested"),
    )
}

const PROVIDERS: [&str; 6] = ["ttl", "oauth", "rfc", "unix", "jwt", "nested"];

impl Fixture {
    fn new() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let reply = Arc::new(Mutex::new(Reply {
            status: 200,
            body: Vec::new(),
        }));
        let addr = rt.block_on(serve(reply.clone()));
        let providers = Providers::from_toml("replies.toml", &description(addr))
            .unwrap_or_else(|e| panic!("{e}"));
        let store = Arc::new(MemoryStore::new());
        let auth = {
            let _guard = rt.enter();
            TokenAuth::builder(providers)
                .store(store.clone())
                .retries(0)
                .build()
                .unwrap()
        };
        Fixture {
            rt,
            reply,
            auth,
            store,
            next: Default::default(),
        }
    }

    /// Every provider fetches a token for a fresh connection from `reply`.
    fn check(&self, reply: Reply) -> Result<(), TestCaseError> {
        *self.reply.lock().unwrap() = reply.clone();
        self.rt.block_on(async {
            for provider in PROVIDERS {
                let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = format!("c{n}");
                let conn = Connection::new(id.clone()).with_secret("secret", SECRET);
                if provider == "oauth" && n.is_multiple_of(2) {
                    // Half the time a refresh token is held: the reply is
                    // then a refresh reply (and maybe a login reply after it).
                    let key = StoreKey {
                        provider,
                        connection: &id,
                    };
                    let current = self.store.read(&key).await.unwrap().refresh_token;
                    let _ = self
                        .store
                        .cas_refresh(
                            &key,
                            current.as_ref(),
                            Some(&SecretString::from(HELD_REFRESH)),
                        )
                        .await
                        .unwrap();
                }
                let result = tokio::time::timeout(
                    Duration::from_secs(20),
                    self.auth.credential_of(provider, Some(&conn)),
                )
                .await
                .map_err(|_| TestCaseError::fail(format!("{provider}: hung on {reply:?}")))?;
                if let Err(e) = result {
                    check_error(provider, &e)?;
                }
            }
            Ok(())
        })
    }
}

fn check_error(provider: &str, e: &Error) -> Result<(), TestCaseError> {
    let expected = matches!(
        e,
        Error::Status { .. }
            | Error::NotJson { .. }
            | Error::MissingField { .. }
            | Error::WrongType { .. }
            | Error::InvalidExpiry { .. }
            | Error::NoExpiry { .. }
            | Error::ResponseTooLarge { .. }
            | Error::InvalidHeaderValue { .. }
    );
    prop_assert!(expected, "{provider}: unexpected error {e:?}");
    // The secret input is known to the engine and must never show. The
    // held refresh token must not show in errors of the refresh request it
    // was sent with (a login reply that echoes it under some other key
    // cannot be told apart from any other text).
    let refresh = is_refresh(e);
    for text in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
        prop_assert!(
            !text.contains(SECRET),
            "{provider}: the secret input leaked into {text}"
        );
        prop_assert!(
            !(refresh && text.contains(HELD_REFRESH)),
            "{provider}: the refresh token leaked into {text}"
        );
    }
    Ok(())
}

fn is_refresh(e: &Error) -> bool {
    matches!(
        e,
        Error::Status {
            request: RequestKind::Refresh,
            ..
        } | Error::NotJson {
            request: RequestKind::Refresh,
            ..
        } | Error::MissingField {
            request: RequestKind::Refresh,
            ..
        } | Error::WrongType {
            request: RequestKind::Refresh,
            ..
        } | Error::InvalidExpiry {
            request: RequestKind::Refresh,
            ..
        } | Error::NoExpiry {
            request: RequestKind::Refresh,
            ..
        } | Error::ResponseTooLarge {
            request: RequestKind::Refresh,
            ..
        }
    )
}

async fn serve(reply: Arc<Mutex<Reply>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let Reply { status, body } = reply.lock().unwrap().clone();
                    let mut response = http::Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    response
                        .headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

// ------------------------------------------------------------ strategies

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        8 => Just(200),
        1 => Just(201),
        1 => Just(204),
        1 => Just(302),
        1 => Just(400),
        1 => Just(401),
        1 => Just(429),
        1 => Just(503),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("access_token".to_owned()),
        Just("refresh_token".to_owned()),
        Just("expires_in".to_owned()),
        Just("expires_at".to_owned()),
        Just("token_type".to_owned()),
        Just("data".to_owned()),
        Just("token".to_owned()),
        Just("ttl".to_owned()),
        Just("error".to_owned()),
        Just(SECRET.to_owned()),
        Just(HELD_REFRESH.to_owned()),
        "\\PC{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-1.0e6f64..1.0e10).prop_map(Value::from),
        Just(Value::from(SECRET)),
        Just(Value::from(HELD_REFRESH)),
        Just(Value::from(format!("x {SECRET} y"))),
        Just(Value::from("2030-01-02T03:04:05Z")),
        Just(Value::from("1999-12-31T23:59:59+02:00")),
        Just(Value::from(
            "eyJhbGciOiJub25lIn0.eyJleHAiOjE5MDAwMDAwMDB9.sig"
        )),
        Just(Value::from("eyJhbGciOiJub25lIn0.eyJleHAiOi0xfQ.sig")),
        Just(Value::from("a.b.c")),
        Just(Value::from("")),
        "\\PC{0,40}".prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "-?[0-9]{1,25}(\\.[0-9]{0,5})?(e[+-]?[0-9]{1,3})?".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object shaped like a token reply, each field present or absent, of
/// any type.
fn reply_object() -> impl Strategy<Value = Value> {
    let field = || prop::option::weighted(0.8, json_value());
    let token = || {
        prop_oneof![
            3 => "[A-Za-z0-9._~+/=-]{1,60}".prop_map(Value::from),
            1 => json_value(),
        ]
    };
    (
        prop::option::weighted(0.9, token()),
        field(),
        field(),
        field(),
        prop::option::weighted(0.3, token()),
        field(),
    )
        .prop_map(|(access, refresh, expires_in, expires_at, nested, extra)| {
            let mut m = Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            };
            put("access_token", access);
            put("refresh_token", refresh);
            put("expires_in", expires_in);
            put("expires_at", expires_at);
            put("data", nested.map(|t| json!([{ "token": t, "ttl": 60 }])));
            put("extra", extra);
            Value::Object(m)
        })
}

fn runner(default_cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default_cases),
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn arbitrary_json_replies_never_panic_or_hang() {
    let fx = Fixture::new();
    runner(96)
        .run(&(status(), json_value()), |(status, v)| {
            fx.check(Reply {
                status,
                body: serde_json::to_vec(&v).unwrap(),
            })
        })
        .unwrap();
}

#[test]
fn reply_shaped_objects_with_hostile_values_never_panic_or_hang() {
    let fx = Fixture::new();
    runner(160)
        .run(&(status(), reply_object()), |(status, v)| {
            fx.check(Reply {
                status,
                body: serde_json::to_vec(&v).unwrap(),
            })
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_never_panic_or_hang() {
    let fx = Fixture::new();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        // A valid reply, cut or with one byte changed.
        (0usize..200, any::<u8>(), any::<bool>()).prop_map(|(at, b, cut)| {
            let mut v = format!(
                r#"{{"access_token":"{SECRET}","refresh_token":"{HELD_REFRESH}","expires_in":120,"expires_at":"2030-01-02T03:04:05Z","token_type":"bearer"}}"#
            )
            .into_bytes();
            let at = at % v.len();
            if cut {
                v.truncate(at);
            } else {
                v[at] = b;
            }
            v
        }),
    ];
    runner(96)
        .run(&(status(), bytes), |(status, body)| {
            fx.check(Reply { status, body })
        })
        .unwrap();
}

// ------------------------------------------------------------ 2xx, not JSON

/// A live token in a successful reply the engine cannot read (XML, Python's
/// single-quoted "JSON"): the error names the content type and the size and
/// quotes nothing, and neither it nor the TRACE log shows the token.
#[tokio::test]
async fn a_2xx_reply_that_is_not_json_is_never_quoted() {
    use crate::helpers::{EndpointReply, TokenEndpoint, capture_logs, endpoint_toml};

    const TOKEN: &str = "live-access-token-7c9e6679";
    let xml = format!(
        "<?xml version=\"1.0\"?><token><access_token>{TOKEN}</access_token><expires_in>3600</expires_in></token>"
    );
    let python = format!("{{'access_token': '{TOKEN}', 'expires_in': 3600}}");
    let cases = [
        (
            EndpointReply::new(200, "application/xml; charset=utf-8", xml.clone()),
            "it is `application/xml`",
            xml.len(),
        ),
        (
            EndpointReply::new(200, "application/json", python.clone()),
            "it is `application/json`",
            python.len(),
        ),
        (
            // A content type carrying the token: only a well-formed media
            // type (no parameters) is repeated.
            EndpointReply::new(201, &format!("text/plain; token={TOKEN}"), python.clone()),
            "it is `text/plain`",
            python.len(),
        ),
        (
            EndpointReply::new(200, TOKEN, python.clone()),
            "it has no usable Content-Type",
            python.len(),
        ),
    ];
    let (_guard, logs) = capture_logs();
    let endpoint = TokenEndpoint::start(cases[0].0.clone()).await;
    let providers = Providers::from_toml(
        "p.toml",
        &endpoint_toml("xml", &endpoint, r#"expires_in = "/expires_in""#, ""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let auth = TokenAuth::builder(providers).retries(0).build().unwrap();
    for (n, (reply, what, length)) in cases.into_iter().enumerate() {
        endpoint.set(reply);
        let conn = Connection::new(format!("c{n}")).with_secret("secret", SECRET);
        let err = auth.credential_of("xml", Some(&conn)).await.unwrap_err();
        assert!(
            matches!(&err, Error::NotJson { length: l, .. } if *l == length),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(what) && msg.contains(&format!("{length} bytes")),
            "{msg}"
        );
        assert!(
            msg.contains("check that login.url points at the token endpoint"),
            "{msg}"
        );
        for text in [msg, format!("{err:?}"), format!("{err:#?}")] {
            assert!(!text.contains(TOKEN), "the token leaked into {text}");
            assert!(!text.contains(SECRET), "the secret leaked into {text}");
        }
    }
    let logs = logs.text();
    assert_eq!(
        logs.matches("token acquisition failed").count(),
        4,
        "every failure was logged (at WARN): {logs}"
    );
    assert!(
        !logs.contains(TOKEN),
        "the token leaked into the log: {logs}"
    );
    assert!(
        !logs.contains(SECRET),
        "the secret leaked into the log: {logs}"
    );
}

/// A rejection that echoes the client's credentials as sent (the Basic
/// header's base64) and the secret input in other encodings: the excerpt in
/// the error, and the log, show none of them.
#[tokio::test]
async fn an_error_reply_echoing_credentials_in_any_encoding_is_scrubbed() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use crate::helpers::{EndpointReply, TokenEndpoint, capture_logs};

    // `?>` and spaces: the encodings differ from the raw value and each other.
    const PASS: &str = "p?> ss*w&rd";
    let basic = STANDARD.encode(format!("client-1:{PASS}"));
    let url_safe = URL_SAFE_NO_PAD.encode(format!("client-1:{PASS}"));
    // What goes on the wire: the secret form-encoded first (RFC 6749 §2.3.1).
    let sent = STANDARD.encode("client-1:p%3F%3E+ss*w%26rd");
    let echoes = [
        format!("Authorization: Basic {sent}"),
        format!("Authorization: Basic {basic}"),
        format!("credentials {url_safe} rejected"),
        "password=p%3f%3e%20ss%2aw%26rd".to_owned(),
        "<b>p?&gt; ss*w&amp;rd</b>".to_owned(),
        "p&#x3F;&#62;&#32;ss&ast;w&#38;rd".to_owned(),
    ];
    let (_guard, logs) = capture_logs();
    let endpoint = TokenEndpoint::start(EndpointReply::new(401, "text/plain", "")).await;
    let toml = format!(
        r#"
[providers.basic]
api = ["{api}"]
inputs.secret = {{ env = "TOKENAUTH_TEST_NEVER_SET", secret = true }}
login = {{ url = "{login}", basic = {{ username = "client-1", password = "{{{{ inputs.secret }}}}" }}, fields = {{ grant_type = "client_credentials" }} }}
expiry.ttl = "1h"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
        api = endpoint.url("/api/"),
        login = endpoint.url("/token"),
    );
    let providers = Providers::from_toml("p.toml", &toml).unwrap_or_else(|e| panic!("{e}"));
    let auth = TokenAuth::builder(providers).retries(0).build().unwrap();
    for (n, echo) in echoes.iter().enumerate() {
        endpoint.set(EndpointReply::new(
            401,
            "text/plain",
            format!("invalid_client: {echo} (try again)"),
        ));
        let conn = Connection::new(format!("c{n}")).with_secret("secret", PASS);
        let err = auth.credential_of("basic", Some(&conn)).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Status {
                    status: http::StatusCode::UNAUTHORIZED,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("invalid_client") && msg.contains("[redacted]"),
            "{msg}"
        );
        for text in [msg, format!("{err:?}")] {
            for secret in [PASS, &sent, &basic, &url_safe, "ss*w", "ss%2aw", "ss&ast;w"] {
                assert!(!text.contains(secret), "{secret} leaked into {text}");
            }
        }
    }
    let logs = logs.text();
    for secret in [PASS, &basic, &url_safe, "ss*w", "ss%2aw", "ss&ast;w"] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the log: {logs}"
        );
    }
}
