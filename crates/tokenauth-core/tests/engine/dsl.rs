//! The parts of the description language the seed providers do not use,
//! over real HTTP against a scripted fake token endpoint on 127.0.0.1:0:
//! JSON bodies, client Basic auth, extra login headers, GET token requests,
//! `response.expires_at` in every format, JWT `exp` and the expiry
//! precedence, query injection, `refresh.on_error` error codes and a
//! refresh-only provider.
//!
//! The fake is a few lines of hyper: it records every request exactly as it
//! arrived and answers token requests from a script. It shares no code with
//! the engine.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::helpers::CredentialOf as _;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use tokenauth_core::clock::ManualClock;
use tokenauth_core::store::{MemoryStore, StoreKey, TokenStore};
use tokenauth_core::{Connection, Error, Providers, TokenAuth};

use fake::{Fake, Recorded};

/// A scripted token endpoint that records what it receives.
mod fake {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    /// One request, as received.
    #[derive(Clone, Debug)]
    pub(crate) struct Recorded {
        pub(crate) method: String,
        pub(crate) path: String,
        pub(crate) query: Option<String>,
        /// In the order received, names lower-case.
        pub(crate) headers: Vec<(String, String)>,
        pub(crate) body: String,
    }

    impl Recorded {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    #[derive(Default)]
    struct State {
        script: Mutex<VecDeque<(u16, String)>>,
        requests: Mutex<Vec<Recorded>>,
    }

    /// Requests under `/api/` get `200 {}`; every other request gets the
    /// next scripted reply (or a 599 saying the script ran out).
    pub(crate) struct Fake {
        addr: SocketAddr,
        state: Arc<State>,
        server: tokio::task::JoinHandle<()>,
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    impl Fake {
        pub(crate) async fn start() -> Fake {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().unwrap();
            let state = Arc::new(State::default());
            let shared = Arc::clone(&state);
            let server = tokio::spawn(async move {
                while let Ok((io, _)) = listener.accept().await {
                    let state = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let service = service_fn(move |req| handle(Arc::clone(&state), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(io), service)
                            .await;
                    });
                }
            });
            Fake {
                addr,
                state,
                server,
            }
        }

        /// `http://127.0.0.1:PORT{path}`.
        pub(crate) fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        /// The port, to take out of snapshots.
        pub(crate) fn host(&self) -> String {
            self.addr.to_string()
        }

        /// Queues the reply to the next token request.
        pub(crate) fn reply(&self, status: u16, body: impl Into<String>) {
            self.state
                .script
                .lock()
                .unwrap()
                .push_back((status, body.into()));
        }

        /// Queues a `200` JSON reply.
        pub(crate) fn reply_json(&self, body: serde_json::Value) {
            self.reply(200, body.to_string());
        }

        pub(crate) fn requests(&self) -> Vec<Recorded> {
            self.state.requests.lock().unwrap().clone()
        }

        /// The requests that were not API calls.
        pub(crate) fn token_requests(&self) -> Vec<Recorded> {
            self.requests()
                .into_iter()
                .filter(|r| !r.path.starts_with("/api/"))
                .collect()
        }
    }

    async fn handle(
        state: Arc<State>,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let recorded = Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let api = recorded.path.starts_with("/api/");
        state.requests.lock().unwrap().push(recorded);
        let (status, body) = if api {
            (200, "{}".to_owned())
        } else {
            state.script.lock().unwrap().pop_front().unwrap_or((
                599,
                r#"{"error":"the test script has no reply"}"#.to_owned(),
            ))
        };
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap())
    }
}

/// 2030-01-01T00:00:00Z.
const T0: u64 = 1_893_456_000;

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0)
}

/// An engine over `toml` with a manual clock standing at [`t0`], no retries
/// and a short failure backoff (1-2 s of the manual clock).
fn engine(toml: &str, store: Arc<dyn TokenStore>) -> (TokenAuth, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(t0()));
    let providers = Providers::from_toml("dsl.toml", toml).expect("the description loads");
    let auth = TokenAuth::builder(providers)
        .clock(clock.clone())
        .store(store)
        .retries(0)
        .failure_backoff(Duration::from_secs(1), Duration::from_secs(2))
        .build()
        .expect("engine");
    (auth, clock)
}

/// A request as JSON for a snapshot: the port and every value in `hide`
/// (raw, form-encoded or JSON-escaped) replaced by its label; a Basic
/// header is decoded so the snapshot shows which (redacted) credentials it
/// carries.
fn snapshot(fake: &Fake, req: &Recorded, hide: &[(&str, &str)]) -> serde_json::Value {
    let redact = |s: &str| -> String {
        let mut out = s.replace(&fake.host(), "127.0.0.1:[port]");
        for (secret, label) in hide {
            let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            let json = serde_json::Value::from(*secret).to_string();
            let json = &json[1..json.len() - 1];
            for form in [*secret, form.as_str(), json] {
                out = out.replace(form, label);
            }
        }
        out
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(n, v)| {
            let v = match v.strip_prefix("Basic ") {
                Some(b64) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .expect("base64");
                    format!(
                        "Basic base64({})",
                        redact(&String::from_utf8(decoded).unwrap())
                    )
                }
                None => redact(v),
            };
            (n.clone(), v)
        })
        .collect();
    serde_json::json!({
        "method": req.method,
        "path": req.path,
        "query": req.query.as_deref().map(redact),
        "headers": headers,
        "body": redact(&req.body),
    })
}

/// Asserts that nothing in `text` is one of `secrets`.
#[track_caller]
fn assert_hidden(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} leaked into: {text}");
    }
}

const CLIENT_SECRET: &str = "cl1ent-s3cret \"quoted\" & more";
const PASSWORD: &str = "p\u{e4}ssw\u{f6}rd\\with/escapes";
const API_KEY: &str = "k3y-0f-the-api";

#[tokio::test]
async fn json_body_client_basic_auth_and_login_headers() {
    let fake = Fake::start().await;
    let toml = format!(
        r#"
[providers.j]
api = ["{api}"]
inputs.username = {{ env = "J_USERNAME" }}
inputs.password = {{ env = "J_PASSWORD", secret = true }}
inputs.client_id = {{ env = "J_CLIENT_ID" }}
inputs.client_secret = {{ env = "J_CLIENT_SECRET", secret = true }}
inputs.api_key = {{ env = "J_API_KEY", secret = true }}

[providers.j.login]
url = "{token}"
body = "json"
[providers.j.login.fields]
grantType = "password"
"user name" = "{{{{ inputs.username }}}}"
Password = "{{{{ inputs.password }}}}"
scope = "read write"
[providers.j.login.headers]
X-Api-Key = "{{{{ inputs.api_key }}}}"
X-Tenant = "tenant {{{{ inputs.username }}}}"
[providers.j.login.basic]
username = "{{{{ inputs.client_id }}}}"
password = "{{{{ inputs.client_secret }}}}"

[providers.j.response]
access_token = "/data/token"
expires_in = "/data/ttl"

[providers.j.inject]
header = "X-Auth"
value = "Token {{{{ token.access }}}}"
"#,
        api = fake.url("/api/"),
        token = fake.url("/oauth/token"),
    );
    let (auth, _clock) = engine(&toml, Arc::new(MemoryStore::new()));
    let conn = Connection::new("tenant-1")
        .with_input("username", "alice")
        .with_secret("password", PASSWORD)
        .with_input("client_id", "my-client")
        .with_secret("client_secret", CLIENT_SECRET)
        .with_secret("api_key", API_KEY);
    fake.reply_json(serde_json::json!({"data": {"token": "tok-1", "ttl": "900"}}));

    let cred = auth.credential_of("j", Some(&conn)).await.unwrap();
    assert_eq!(cred.expires_at(), Some(t0() + Duration::from_secs(900)));
    let [(name, value)] = cred.injection().headers().collect::<Vec<_>>()[..] else {
        panic!("a header credential");
    };
    assert_eq!(name, "x-auth");
    assert_eq!(value, "Token tok-1");
    assert!(value.is_sensitive());

    let reqs = fake.token_requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    // The body is JSON with the fields exactly as written, in file order,
    // every value a string and escaped correctly.
    let body: serde_json::Value = serde_json::from_str(&req.body).expect("a JSON body");
    assert_eq!(
        body,
        serde_json::json!({"grantType": "password", "user name": "alice", "Password": PASSWORD, "scope": "read write"})
    );
    // ... and in file order, byte for byte.
    let password_json = serde_json::Value::from(PASSWORD).to_string();
    assert_eq!(
        req.body,
        format!(
            r#"{{"grantType":"password","user name":"alice","Password":{password_json},"scope":"read write"}}"#
        )
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    // Client Basic auth (RFC 6749 §2.3.1): base64(form(client_id):form(client_secret)).
    let form = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    assert_eq!(form(CLIENT_SECRET), "cl1ent-s3cret+%22quoted%22+%26+more");
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("my-client:{}", form(CLIENT_SECRET)));
    assert_eq!(
        req.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(req.header("x-api-key"), Some(API_KEY));
    assert_eq!(req.header("x-tenant"), Some("tenant alice"));
    insta::assert_json_snapshot!(
        "json_basic_headers_login_request",
        snapshot(
            &fake,
            req,
            &[
                (PASSWORD, "[password]"),
                (CLIENT_SECRET, "[client secret]"),
                (API_KEY, "[api key]")
            ]
        )
    );
}

#[tokio::test]
async fn a_get_token_request_sends_its_fields_in_the_query() {
    let fake = Fake::start().await;
    let toml = format!(
        r#"
[providers.g]
api = ["{api}"]
inputs.user = {{ env = "G_USER" }}
inputs.key = {{ env = "G_KEY", secret = true }}
login.url = "{token}"
login.method = "GET"
login.fields = {{ user = "{{{{ inputs.user }}}}", key = "{{{{ inputs.key }}}}" }}
expiry.ttl = "15m"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
        api = fake.url("/api/"),
        token = fake.url("/session?tenant=7"),
    );
    let (auth, _clock) = engine(&toml, Arc::new(MemoryStore::new()));
    let conn = Connection::new("c")
        .with_input("user", "bob smith")
        .with_secret("key", API_KEY);
    fake.reply_json(serde_json::json!({"access_token": "tok-g"}));

    let cred = auth.credential_of("g", Some(&conn)).await.unwrap();
    assert_eq!(cred.expires_at(), Some(t0() + Duration::from_secs(15 * 60)));
    let reqs = fake.token_requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, "GET");
    assert_eq!(
        req.query.as_deref(),
        Some(format!("tenant=7&user=bob+smith&key={API_KEY}").as_str())
    );
    assert_eq!(req.body, "", "a GET has no body");
    assert_eq!(req.header("content-type"), None);
    insta::assert_json_snapshot!(
        "get_login_request",
        snapshot(&fake, req, &[(API_KEY, "[key]")])
    );
}

/// A provider whose reply carries `/expires_at` in `format`.
fn expires_at_toml(fake: &Fake, id: &str, format: &str) -> String {
    format!(
        r#"
[providers.{id}]
api = ["{api}"]
login.url = "{token}"
login.fields = {{ grant_type = "client_credentials" }}
response.expires_at = "/expires_at"
response.expires_at_format = "{format}"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
        api = fake.url(&format!("/api/{id}/")),
        token = fake.url(&format!("/{id}/token")),
    )
}

#[tokio::test]
async fn expires_at_in_all_three_formats() {
    let fake = Fake::start().await;
    let toml = [
        expires_at_toml(&fake, "rfc", "rfc3339"),
        expires_at_toml(&fake, "secs", "unix_seconds"),
        expires_at_toml(&fake, "millis", "unix_millis"),
    ]
    .concat();
    let (auth, _clock) = engine(&toml, Arc::new(MemoryStore::new()));
    let half_hour = t0() + Duration::from_secs(1800);
    let cases: [(&str, serde_json::Value, SystemTime); 6] = [
        ("rfc", "2030-01-01T00:30:00Z".into(), half_hour),
        ("rfc", "2030-01-01T02:30:00+02:00".into(), half_hour),
        (
            "rfc",
            "2030-01-01T00:30:00.250Z".into(),
            half_hour + Duration::from_millis(250),
        ),
        ("secs", (T0 + 1800).into(), half_hour),
        (
            "millis",
            ((T0 + 1800) * 1000 + 500).into(),
            half_hour + Duration::from_millis(500),
        ),
        // A numeric string counts too.
        (
            "millis",
            format!("{}", (T0 + 1800) * 1000).into(),
            half_hour,
        ),
    ];
    for (i, (provider, expires_at, expected)) in cases.into_iter().enumerate() {
        fake.reply_json(
            serde_json::json!({"access_token": format!("tok-{i}"), "expires_at": expires_at}),
        );
        let conn = Connection::new(format!("c{i}"));
        let cred = auth.credential_of(provider, Some(&conn)).await.unwrap();
        assert_eq!(
            cred.expires_at(),
            Some(expected),
            "{provider}: {expires_at}"
        );
    }

    // Wrong unit: seconds read as milliseconds lie in 1970, which is refused.
    fake.reply_json(serde_json::json!({"access_token": "tok", "expires_at": T0 + 1800}));
    let err = auth
        .credential_of("millis", Some(&Connection::new("unit")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidExpiry { .. }), "{err:?}");
    assert!(err.to_string().contains("in the past"), "{err}");
}

fn jwt(claims: serde_json::Value) -> String {
    let enc = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        enc(&serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        enc(&claims)
    )
}

#[tokio::test]
async fn expiry_precedence_expires_at_then_expires_in_then_jwt_exp_then_ttl() {
    let fake = Fake::start().await;
    let toml = format!(
        r#"
[providers.x]
api = ["{api}"]
login.url = "{token}"
login.fields = {{ grant_type = "client_credentials" }}
response.expires_at = "/expires_at"
response.expires_at_format = "unix_seconds"
response.expires_in = "/expires_in"
expiry.jwt_exp = true
expiry.ttl = "10m"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
        api = fake.url("/api/"),
        token = fake.url("/token"),
    );
    let (auth, clock) = engine(&toml, Arc::new(MemoryStore::new()));
    let conn = Connection::new("c");
    let jwt_token = jwt(serde_json::json!({"sub": "c", "exp": T0 + 3000}));
    let secs = Duration::from_secs;
    let steps: [(serde_json::Value, Duration); 5] = [
        // All four: expires_at wins.
        (
            serde_json::json!({"access_token": jwt_token, "expires_at": T0 + 1000, "expires_in": 2000}),
            secs(1000),
        ),
        // No expires_at (null counts as absent): expires_in.
        (
            serde_json::json!({"access_token": jwt_token, "expires_at": null, "expires_in": 2000}),
            secs(2000),
        ),
        // Neither: the JWT's exp.
        (serde_json::json!({"access_token": jwt_token}), secs(3000)),
        // A JWT without exp: ttl.
        (
            serde_json::json!({"access_token": jwt(serde_json::json!({"sub": "c"}))}),
            secs(600),
        ),
        // Not a JWT at all: ttl.
        (
            serde_json::json!({"access_token": "opaque-token"}),
            secs(600),
        ),
    ];
    let mut previous = None;
    for (reply, lifetime) in steps {
        fake.reply_json(reply.clone());
        if let Some(prev) = &previous {
            assert!(
                auth.provider("x")
                    .unwrap()
                    .invalidate(Some(&conn), prev)
                    .await
            );
        }
        let cred = auth.credential_of("x", Some(&conn)).await.unwrap();
        assert_eq!(cred.expires_at(), Some(t0() + lifetime), "{reply}");
        previous = Some(cred);
    }
    assert_eq!(fake.token_requests().len(), 5);

    // An expired JWT is refused rather than used.
    clock.advance(secs(1));
    fake.reply_json(serde_json::json!({"access_token": jwt(serde_json::json!({"exp": T0}))}));
    assert!(
        auth.provider("x")
            .unwrap()
            .invalidate(Some(&conn), previous.as_ref().unwrap())
            .await
    );
    let err = auth.credential_of("x", Some(&conn)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidExpiry { .. }), "{err:?}");
    assert!(err.to_string().contains("JWT `exp`"), "{err}");
}

#[tokio::test]
async fn query_injection_replaces_the_parameter_and_never_sets_a_header() {
    let fake = Fake::start().await;
    let toml = format!(
        r#"
[providers.q]
api = ["{api}"]
inputs.client_id = {{ env = "Q_CLIENT_ID" }}
login.url = "{token}"
login.fields = {{ client_id = "{{{{ inputs.client_id }}}}" }}
response.expires_in = "/expires_in"
inject.query = {{ name = "access_token", value = "{{{{ token.access }}}}" }}
"#,
        api = fake.url("/api/"),
        token = fake.url("/token"),
    );
    let (auth, _clock) = engine(&toml, Arc::new(MemoryStore::new()));
    let conn = Connection::new("c").with_input("client_id", "cid");
    // A token with characters that must be encoded in a query.
    let token = "tok/with+odd&chars=";
    fake.reply_json(serde_json::json!({"access_token": token, "expires_in": 3600}));
    let url = reqwest::Url::parse(
        &fake.url("/api/items?b=x%20y&access_token=stale&c=a~b&access_token=also-stale&flag"),
    )
    .unwrap();
    let handle = auth.route(&url).expect("routed");
    let cred = handle.credential(Some(&conn)).await.unwrap();
    let names: Vec<&str> = cred.injection().query().map(|(name, _)| name).collect();
    assert_eq!(names, ["access_token"]);
    assert!(!format!("{cred:?}").contains(token), "{cred:?}");

    // reqwest: the URL gets the parameter, the headers get nothing.
    let mut sent = url.clone();
    assert!(cred.apply_to_url(&mut sent));
    let client = reqwest::Client::new();
    let mut request = client.get(sent).build().unwrap();
    assert!(!cred.apply_to_headers(request.headers_mut()));
    assert!(request.headers().is_empty());
    assert_eq!(client.execute(request).await.unwrap().status(), 200);

    // http::Request (the tower path): the same query.
    let mut req = http::Request::get(url.as_str()).body(()).unwrap();
    cred.apply_to(&mut req).unwrap();
    assert!(!req.headers().contains_key("authorization"));
    let client_query = req.uri().query().unwrap().to_owned();

    let api: Vec<Recorded> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .collect();
    assert_eq!(api.len(), 1);
    let encoded = "tok%2Fwith%2Bodd%26chars%3D";
    // Every stale copy is gone, the others are kept byte for byte, in
    // order, and the credential comes last, encoded.
    let expected = format!("b=x%20y&c=a~b&flag&access_token={encoded}");
    assert_eq!(api[0].query.as_deref(), Some(expected.as_str()));
    assert_eq!(client_query, expected);
    assert!(
        api[0]
            .headers
            .iter()
            .all(|(n, v)| n != "authorization" && !v.contains(token)),
        "{:?}",
        api[0].headers
    );
    // The decoded parameter is the token.
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(expected.as_bytes())
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        pairs.last().unwrap(),
        &("access_token".to_owned(), token.to_owned())
    );
}

/// The refresh token in the store.
async fn stored(store: &MemoryStore, provider: &str, connection: &str) -> Option<String> {
    store
        .read(&StoreKey {
            provider,
            connection,
        })
        .await
        .unwrap()
        .refresh_token
        .map(|s| s.expose_secret().to_owned())
}

#[tokio::test]
async fn a_refresh_error_code_that_does_not_match_keeps_the_refresh_token() {
    let fake = Fake::start().await;
    let toml = format!(
        r#"
[providers.r]
api = ["{api}"]
inputs.client_secret = {{ env = "R_CLIENT_SECRET", secret = true }}
login.url = "{token}"
login.fields = {{ grant_type = "client_credentials", client_secret = "{{{{ inputs.client_secret }}}}" }}
refresh.fields = {{ grant_type = "refresh_token", refresh_token = "{{{{ token.refresh }}}}" }}
refresh.rotate = true
refresh.on_error = {{ status = [400], error_pointer = "/error", error_values = ["invalid_grant"], action = "login" }}
response.refresh_token = "/refresh_token"
response.expires_in = "/expires_in"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
        api = fake.url("/api/"),
        token = fake.url("/token"),
    );
    let store = Arc::new(MemoryStore::new());
    let (auth, clock) = engine(&toml, store.clone());
    let conn = Connection::new("c").with_secret("client_secret", API_KEY);
    let (r1, r2) = ("refresh-one-R1xyz", "refresh-two-R2xyz");

    fake.reply_json(
        serde_json::json!({"access_token": "A1", "refresh_token": r1, "expires_in": 100}),
    );
    let a1 = auth.credential_of("r", Some(&conn)).await.unwrap();
    assert_eq!(stored(&store, "r", "c").await.as_deref(), Some(r1));

    // Expired: the refresh gets a 400 whose error code is not in
    // error_values. Not a dead refresh token: no login, the token is kept,
    // and the caller gets the 400.
    clock.advance(Duration::from_secs(101));
    fake.reply(
        400,
        r#"{"error":"invalid_request","error_description":"try later"}"#,
    );
    let err = auth.credential_of("r", Some(&conn)).await.unwrap_err();
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
    assert_eq!(stored(&store, "r", "c").await.as_deref(), Some(r1));

    // The same for a 400 whose body has no error code at all, and for a
    // status outside on_error.status.
    for (status, body) in [(400, "not json"), (401, r#"{"error":"invalid_grant"}"#)] {
        clock.advance(Duration::from_secs(5));
        fake.reply(status, body);
        let err = auth.credential_of("r", Some(&conn)).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(status), "{err:?}");
        assert_eq!(stored(&store, "r", "c").await.as_deref(), Some(r1));
    }

    // `invalid_grant` with a 400: dead. The engine re-reads the store
    // (unchanged), forgets the token and logs in.
    clock.advance(Duration::from_secs(5));
    fake.reply(400, r#"{"error":"invalid_grant"}"#);
    fake.reply_json(
        serde_json::json!({"access_token": "A2", "refresh_token": r2, "expires_in": 100}),
    );
    let a2 = auth.credential_of("r", Some(&conn)).await.unwrap();
    assert_ne!(a2.token_id(), a1.token_id());
    assert_eq!(a2.access_token().unwrap().expose_secret(), "A2");
    assert_eq!(stored(&store, "r", "c").await.as_deref(), Some(r2));

    let reqs = fake.token_requests();
    let kinds: Vec<String> = reqs
        .iter()
        .map(|r| {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(r.body.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            let grant = &form[0].1;
            let rt = form
                .iter()
                .find(|(n, _)| n == "refresh_token")
                .map(|(_, v)| v.as_str());
            format!("{grant} {}", rt.unwrap_or("-"))
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "client_credentials -".to_owned(),
            format!("refresh_token {r1}"),
            format!("refresh_token {r1}"),
            format!("refresh_token {r1}"),
            format!("refresh_token {r1}"),
            "client_credentials -".to_owned(),
        ]
    );
    let hide = [(API_KEY, "[client secret]"), (r1, "[refresh token 1]")];
    let snap: Vec<serde_json::Value> = reqs.iter().map(|r| snapshot(&fake, r, &hide)).collect();
    insta::assert_json_snapshot!("refresh_on_error_code_requests", snap);
    assert_hidden(&err.to_string(), &[API_KEY, r1]);
}

const REFRESH_ONLY: &str = r#"
[providers.ro]
api = ["API"]
inputs.client_id = { env = "RO_CLIENT_ID" }

[providers.ro.refresh]
url = "TOKEN"
fields = { grant_type = "refresh_token", refresh_token = "{{ token.refresh }}", client_id = "{{ inputs.client_id }}" }
rotate = true
on_error = { status = [400], error_pointer = "/error", error_values = ["invalid_grant"], action = "fail" }

[providers.ro.response]
refresh_token = "/refresh_token"
expires_in = "/expires_in"

[providers.ro.inject]
header = "INJECT_HEADER"
value = "INJECT_VALUE"
"#;

fn refresh_only(fake: &Fake, header: &str, value: &str) -> String {
    REFRESH_ONLY
        .replace("API", &fake.url("/api/"))
        .replace("TOKEN", &fake.url("/token"))
        .replace("INJECT_HEADER", header)
        .replace("INJECT_VALUE", value)
}

#[tokio::test]
async fn a_refresh_only_provider_refreshes_and_fails_without_logging_in() {
    let fake = Fake::start().await;
    let toml = refresh_only(&fake, "Authorization", "Bearer {{ token.access }}");
    let store = Arc::new(MemoryStore::new());
    let (auth, clock) = engine(&toml, store.clone());
    let conn = Connection::new("tenant").with_input("client_id", "cid-7");
    let key = StoreKey {
        provider: "ro",
        connection: "tenant",
    };

    // Nothing stored: no request, a clear error.
    let err = auth.credential_of("ro", Some(&conn)).await.unwrap_err();
    assert!(matches!(err, Error::NoRefreshToken { .. }), "{err:?}");
    assert!(fake.requests().is_empty());

    let (r0, r1) = ("refresh-zero-R0abc", "refresh-one-R1abc");
    let _ = store
        .cas_refresh(&key, None, Some(&SecretString::from(r0)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(5)); // past the failure backoff
    fake.reply_json(
        serde_json::json!({"access_token": "A1", "refresh_token": r1, "expires_in": 300}),
    );
    let cred = auth.credential_of("ro", Some(&conn)).await.unwrap();
    assert_eq!(cred.access_token().unwrap().expose_secret(), "A1");
    assert_eq!(cred.expires_at(), Some(t0() + Duration::from_secs(305)));
    assert_eq!(
        stored(&store, "ro", "tenant").await.as_deref(),
        Some(r1),
        "rotated"
    );

    // The rotated token is rejected: action = "fail" -> a typed error, the
    // dead token forgotten, and no login (there is none).
    assert!(
        auth.provider("ro")
            .unwrap()
            .invalidate(Some(&conn), &cred)
            .await
    );
    fake.reply(400, r#"{"error":"invalid_grant"}"#);
    let err = auth.credential_of("ro", Some(&conn)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RefreshRejected {
                status: http::StatusCode::BAD_REQUEST,
                ..
            }
        ),
        "{err:?}"
    );
    assert_hidden(&err.to_string(), &[r0, r1]);
    assert_eq!(stored(&store, "ro", "tenant").await, None);

    // Later: nothing to refresh with, and nothing sent.
    clock.advance(Duration::from_secs(5));
    let err = auth.credential_of("ro", Some(&conn)).await.unwrap_err();
    assert!(matches!(err, Error::NoRefreshToken { .. }), "{err:?}");

    let reqs = fake.token_requests();
    assert_eq!(reqs.len(), 2, "two refreshes, no login");
    let hide = [(r0, "[refresh token 0]"), (r1, "[refresh token 1]")];
    let snap: Vec<serde_json::Value> = reqs.iter().map(|r| snapshot(&fake, r, &hide)).collect();
    insta::assert_json_snapshot!("refresh_only_requests", snap);
}

/// `refresh.seed`: a refresh-only connection starts from its input while
/// the store holds nothing; the rotated token is stored, and from then on
/// the stored one is used, never the (spent) seed again.
#[tokio::test]
async fn a_refresh_only_connection_starts_from_its_seed_then_uses_the_store() {
    let fake = Fake::start().await;
    let toml = refresh_only(&fake, "Authorization", "Bearer {{ token.access }}").replace(
        "inputs.client_id = { env = \"RO_CLIENT_ID\" }",
        "inputs.client_id = { env = \"RO_CLIENT_ID\" }\ninputs.refresh_token = { env = \"RO_REFRESH_TOKEN\", secret = true }",
    )
    .replace("rotate = true", "rotate = true\nseed = \"{{ inputs.refresh_token }}\"");
    let store = Arc::new(MemoryStore::new());
    let (auth, clock) = engine(&toml, store.clone());
    let (seed, r1, r2) = (
        "seed-R0-from-the-console",
        "refresh-one-R1",
        "refresh-two-R2",
    );
    let conn = Connection::new("tenant")
        .with_input("client_id", "cid-7")
        .with_secret("refresh_token", seed);
    fake.reply_json(
        serde_json::json!({"access_token": "A1", "refresh_token": r1, "expires_in": 300}),
    );
    let cred = auth.credential_of("ro", Some(&conn)).await.unwrap();
    assert_eq!(cred.access_token().unwrap().expose_secret(), "A1");
    assert_eq!(stored(&store, "ro", "tenant").await.as_deref(), Some(r1));
    // The next renewal refreshes with the stored token, not the seed.
    assert!(
        auth.provider("ro")
            .unwrap()
            .invalidate(Some(&conn), &cred)
            .await
    );
    clock.advance(Duration::from_secs(1));
    fake.reply_json(
        serde_json::json!({"access_token": "A2", "refresh_token": r2, "expires_in": 300}),
    );
    let cred = auth.credential_of("ro", Some(&conn)).await.unwrap();
    assert_eq!(cred.access_token().unwrap().expose_secret(), "A2");
    assert_eq!(stored(&store, "ro", "tenant").await.as_deref(), Some(r2));
    let sent: Vec<String> = fake
        .token_requests()
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert!(sent[0].contains(seed) && sent[1].contains(r1), "{sent:?}");
    // A rejected seed is a typed error that never shows it.
    let fresh = Connection::new("other")
        .with_input("client_id", "cid-7")
        .with_secret("refresh_token", "seed-that-was-spent");
    fake.reply(400, r#"{"error":"invalid_grant"}"#);
    let err = auth.credential_of("ro", Some(&fresh)).await.unwrap_err();
    assert!(matches!(err, Error::RefreshRejected { .. }), "{err:?}");
    assert_hidden(&err.to_string(), &["seed-that-was-spent"]);
    assert_eq!(stored(&store, "ro", "other").await, None);
}

/// A refresh-only provider that injects its access token, as any such
/// provider would.
#[tokio::test]
async fn a_refresh_only_provider_can_inject_its_access_token() {
    let fake = Fake::start().await;
    let toml = refresh_only(&fake, "Authorization", "Bearer {{ token.access }}");
    let store = Arc::new(MemoryStore::new());
    let (auth, _clock) = engine(&toml, store.clone());
    let key = StoreKey {
        provider: "ro",
        connection: "tenant",
    };
    let _ = store
        .cas_refresh(&key, None, Some(&SecretString::from("refresh-zero")))
        .await
        .unwrap();
    fake.reply_json(
        serde_json::json!({"access_token": "A1", "refresh_token": "r1", "expires_in": 300}),
    );
    let conn = Connection::new("tenant").with_input("client_id", "cid-7");
    let cred = auth.credential_of("ro", Some(&conn)).await.unwrap();
    let mut headers = http::HeaderMap::new();
    assert!(cred.apply_to_headers(&mut headers));
    assert_eq!(headers["authorization"], "Bearer A1");
}

/// With the default (system) clock, fresh hits are decided with the coarse
/// clock; the renewal window must still start a background renewal on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_system_clock_the_renewal_window_still_renews_in_the_background() {
    let fake = Fake::start().await;
    let toml = format!(
        r#"
[providers.s]
api = ["{api}"]
login.url = "{token}"
login.fields = {{ grant_type = "client_credentials" }}
response.expires_at = "/expires_at"
response.expires_at_format = "unix_millis"
expiry.skew = "1800ms"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
        api = fake.url("/api/"),
        token = fake.url("/token"),
    );
    let auth = TokenAuth::builder(Providers::from_toml("dsl.toml", &toml).unwrap())
        .build()
        .unwrap();
    let conn = Connection::new("c");
    let in_2s = || {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        serde_json::Value::from((now + Duration::from_secs(2)).as_millis() as u64)
    };
    // Lifetime 2 s, renewal from 0.2 s on (the skew is capped at 90%).
    fake.reply_json(serde_json::json!({"access_token": "A", "expires_at": in_2s()}));
    let a = auth.credential_of("s", Some(&conn)).await.unwrap();
    let again = auth.credential_of("s", Some(&conn)).await.unwrap();
    assert_eq!(again.token_id(), a.token_id());

    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.reply_json(serde_json::json!({"access_token": "B", "expires_at": in_2s()}));
    // In the window: the current token at once, a renewal in the background.
    let in_window = auth.credential_of("s", Some(&conn)).await.unwrap();
    assert_eq!(in_window.token_id(), a.token_id());
    let start = std::time::Instant::now();
    let renewed = loop {
        let c = auth.credential_of("s", Some(&conn)).await.unwrap();
        if c.token_id() != a.token_id() || start.elapsed() > Duration::from_millis(1500) {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_ne!(
        renewed.token_id(),
        a.token_id(),
        "renewed in the background"
    );
    assert_eq!(renewed.access_token().unwrap().expose_secret(), "B");
    assert!(auth.stats().renewals >= 1);
    assert_eq!(fake.token_requests().len(), 2);
}

/// RFC 6749 §2.3.1: a client id with `:` and a secret with `+`, `/` and
/// non-ASCII go into client Basic auth form-encoded, so the server can split
/// and decode them; `form_encode = false` sends them as they are for servers
/// that do not decode (the refresh inherits the login's choice).
#[tokio::test]
async fn client_basic_auth_is_form_encoded_unless_turned_off() {
    let (id, secret) = ("urn:app:42", "s3/cr+t=é");
    for (form_encode, sent) in [
        ("", "urn%3Aapp%3A42:s3%2Fcr%2Bt%3D%C3%A9"),
        ("form_encode = false", "urn:app:42:s3/cr+t=é"),
    ] {
        let fake = Fake::start().await;
        let toml = format!(
            r#"
[providers.c]
api = ["{api}"]
inputs.client_id = {{}}
inputs.client_secret = {{ secret = true }}
response.expires_in = "/expires_in"
login.url = "{token}"
login.fields = {{ grant_type = "client_credentials" }}
login.basic = {{ username = "{{{{ inputs.client_id }}}}", password = "{{{{ inputs.client_secret }}}}", {form_encode} }}
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
            api = fake.url("/api/"),
            token = fake.url("/oauth/token"),
        );
        let toml = toml.replace(", }", " }");
        let (auth, _clock) = engine(&toml, Arc::new(MemoryStore::new()));
        fake.reply_json(serde_json::json!({"access_token": "t", "expires_in": 60}));
        let conn = Connection::new("c")
            .with_input("client_id", id)
            .with_secret("client_secret", secret);
        auth.credential_of("c", Some(&conn)).await.unwrap();
        let basic = base64::engine::general_purpose::STANDARD.encode(sent);
        let reqs = fake.token_requests();
        assert_eq!(
            reqs[0].header("authorization"),
            Some(format!("Basic {basic}").as_str()),
            "{form_encode:?}"
        );
    }
}
