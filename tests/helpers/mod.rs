//! Shared fixtures for the adapter tests: the emulator over TLS with the
//! unchanged `providers.toml`, engines, HTTP clients (reqwest with the
//! middleware, hyper-util with the layer) that reach the emulator under the
//! real host names, the emulator's fake accounts as connections, and a
//! loopback test server that records what it receives.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Ready;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reqwest_middleware::ClientWithMiddleware;
use secrecy::SecretString;
use tokenauth::prelude::*;
use tokenauth::{Connection, Providers, TokenAuth};
use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, Provider, REOB_DEMO_PASSWORD,
    REOB_DEMO_USERNAME, TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD,
    TWOBA_DEMO_USERNAME, tenant_password, tenant_username,
};

/// The repository's `providers.toml`, unchanged.
pub fn seed_toml() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/providers.toml"))
        .expect("providers.toml")
}

/// The emulator with its TLS listener on.
pub async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default().tls(true))
        .await
        .expect("emulator starts")
}

/// [`emulator`], also recording the API requests it receives (up to 100),
/// for tests of what exactly an adapter sent.
pub async fn recording_emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default().tls(true).record_api_requests(100))
        .await
        .expect("emulator starts")
}

/// The last two API requests `emu` recorded after the first `before`: a
/// rejected request and its retry. Asserts that the retry repeats it (the
/// method, path and query, body, and every header but `Authorization`)
/// with another `Authorization`, and returns the retry's other headers.
pub fn assert_the_retry_repeats(
    emu: &Emulator,
    before: usize,
    what: &str,
) -> Vec<(String, String)> {
    let seen = emu.recorded_api_requests();
    let [rejected, retried] = &seen[before..] else {
        panic!("{what}: {} API requests, not 2", seen.len() - before);
    };
    let split = |headers: &[(String, String)]| {
        let (auth, other): (Vec<_>, Vec<_>) = headers
            .iter()
            .cloned()
            .partition(|(n, _)| n == "authorization");
        (auth, other)
    };
    let (rejected_auth, rejected_headers) = split(&rejected.headers);
    let (retried_auth, retried_headers) = split(&retried.headers);
    assert_eq!(retried.method, rejected.method, "{what}");
    assert_eq!(retried.path, rejected.path, "{what}");
    assert_eq!(retried.body, rejected.body, "{what}");
    assert_eq!(retried_headers, rejected_headers, "{what}");
    assert_ne!(retried_auth, rejected_auth, "{what}: a renewed credential");
    retried_headers
}

/// A reqwest client builder that reaches the emulator under the real host
/// names (its CA only, host names resolved to its TLS listener).
pub fn reqwest_builder(emu: &Emulator) -> reqwest::ClientBuilder {
    emu.reqwest_client_builder().expect("tls on")
}

/// An engine over `toml` whose token requests reach the emulator, with fast
/// retries.
pub fn engine_toml(emu: &Emulator, toml: &str) -> TokenAuth {
    let providers = Providers::from_toml("providers.toml", toml).expect("providers load");
    TokenAuth::builder(providers)
        .http_client_builder(reqwest_builder(emu))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(20))
        .build()
        .expect("engine builds")
}

/// An engine over the unchanged seed providers.
pub fn engine(emu: &Emulator) -> TokenAuth {
    engine_toml(emu, &seed_toml())
}

/// A reqwest-middleware client with the tokenauth middleware, reaching the
/// emulator (and loopback test servers).
pub fn middleware_client(emu: &Emulator, auth: &TokenAuth) -> ClientWithMiddleware {
    middleware_client_with(reqwest_builder(emu), auth)
}

pub fn middleware_client_with(
    builder: reqwest::ClientBuilder,
    auth: &TokenAuth,
) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(builder.build().expect("client builds"))
        .with(auth.middleware())
        .build()
}

/// Resolves the emulator's real host names to its TLS listener (IP
/// literals such as 127.0.0.1 never reach a resolver).
#[derive(Clone)]
pub struct Overrides(Arc<HashMap<String, SocketAddr>>);

impl tower::Service<Name> for Overrides {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Ready<Result<Self::Response, io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let addr = match self.0.get(name.as_str()) {
            Some(a) => Ok(vec![*a].into_iter()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("test resolver: unknown host {}", name.as_str()),
            )),
        };
        std::future::ready(addr)
    }
}

/// The hyper-util legacy client type of these tests.
pub type HyperClient<B> = Client<HttpsConnector<HttpConnector<Overrides>>, B>;

/// A hyper-util legacy client that reaches the emulator under the real host
/// names over TLS (its CA only), and loopback test servers over plain HTTP.
pub fn hyper_client<B>(emu: &Emulator) -> HyperClient<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let map = emu
        .host_overrides()
        .into_iter()
        .map(|(h, a)| (h.to_owned(), a))
        .collect();
    hyper_client_with(emu.ca_cert_pem().expect("tls on"), map)
}

/// A hyper-util legacy client that trusts only `ca_pem` and resolves the
/// names in `overrides` (and nothing else): TLS for `https`, plain TCP for
/// `http`.
pub fn hyper_client_with<B>(ca_pem: &str, overrides: HashMap<String, SocketAddr>) -> HyperClient<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new_with_resolver(Overrides(Arc::new(overrides)));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(https)
}

// ------------------------------------------------------------ connections

pub fn reob() -> Connection {
    Connection::new("reob-demo")
        .with_input("username", REOB_DEMO_USERNAME)
        .with_secret("password", SecretString::from(REOB_DEMO_PASSWORD))
}

pub fn twoba() -> Connection {
    Connection::new("2ba-demo")
        .with_input("username", TWOBA_DEMO_USERNAME)
        .with_secret("password", SecretString::from(TWOBA_DEMO_PASSWORD))
        .with_input("client_id", TWOBA_DEMO_CLIENT_ID)
        .with_secret(
            "client_secret",
            SecretString::from(TWOBA_DEMO_CLIENT_SECRET),
        )
}

pub fn bro() -> Connection {
    Connection::new("bro-demo")
        .with_input("username", BRO_DEMO_USERNAME)
        .with_secret("token", SecretString::from(BRO_DEMO_PASSWORD))
}

/// Tenant `n` of REOBtimaal (an account the emulator accepts).
pub fn reob_tenant(n: u64) -> Connection {
    Connection::new(format!("tenant-{n}"))
        .with_input("username", tenant_username(Provider::Reobtimaal, n))
        .with_secret("password", tenant_password(Provider::Reobtimaal, n))
}

/// The seed API endpoints: (provider id, method, real URL, connection,
/// emulator user in the reply).
pub fn seed_endpoints() -> Vec<(
    &'static str,
    http::Method,
    &'static str,
    Connection,
    &'static str,
)> {
    vec![
        (
            "reobtimaal",
            http::Method::GET,
            "https://api.reobtimaal-diensten.nl/api/v1/projecten",
            reob(),
            REOB_DEMO_USERNAME,
        ),
        (
            "twoba",
            http::Method::GET,
            "https://api.2ba.nl/1/json/Product/DetailsForProduct",
            twoba(),
            TWOBA_DEMO_USERNAME,
        ),
        (
            "bro",
            http::Method::POST,
            "https://www.bronhouderportaal-bro.nl/api/v2/validatie",
            bro(),
            BRO_DEMO_USERNAME,
        ),
    ]
}

// ------------------------------------------------------------ test server

/// One request the test server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub api_key: Option<String>,
    /// Every header, names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The values of the header `name` (lower-case).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A loopback HTTP/1.1 server that records every request and answers:
/// `/api/redirect?to=URL` -> 302 to URL; `/moved` -> 301 to `/moved/` with
/// the query kept, in `Location`, `Content-Location` and the body (as many
/// servers do); `/status/N` -> status N; anything else -> 200 `ok`.
pub struct TestServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let record = record.clone();
                        async move { Ok::<_, Infallible>(answer(&record, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestServer { addr, seen }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn answer(
    record: &Mutex<Vec<Seen>>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
    };
    let seen = Seen {
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        authorization: header("authorization"),
        api_key: header("x-api-key"),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                let v = v.to_str().unwrap_or("<binary>");
                (n.as_str().to_owned(), v.to_owned())
            })
            .collect(),
    };
    record.lock().unwrap().push(seen.clone());
    let mut response = http::Response::new(Full::new(Bytes::from_static(b"ok")));
    if seen.path == "/moved" {
        let to = match &seen.query {
            Some(q) => format!("/moved/?{q}"),
            None => "/moved/".to_owned(),
        };
        *response.status_mut() = http::StatusCode::MOVED_PERMANENTLY;
        for name in ["location", "content-location"] {
            response
                .headers_mut()
                .insert(name, to.parse().expect("location"));
        }
        *response.body_mut() = Full::new(Bytes::from(format!("Redirecting to {to}")));
    } else if seen.path == "/api/redirect" {
        let to = url::form_urlencoded::parse(seen.query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "to")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        *response.status_mut() = http::StatusCode::FOUND;
        response
            .headers_mut()
            .insert("location", to.parse().expect("location"));
    } else if let Some(code) = seen.path.strip_prefix("/status/") {
        *response.status_mut() = code.parse().expect("status");
    }
    response
}

/// A provider description for a loopback test server: static credentials
/// from `token`, injected as `Authorization: Bearer ...` (or, with
/// `header = Some("X-Api-Key")`, that header), under `api`.
pub fn loopback_toml(id: &str, api: &str, header: Option<&str>) -> String {
    let header = header.unwrap_or("Authorization");
    let value = if header.eq_ignore_ascii_case("authorization") {
        "Bearer {{ inputs.token }}"
    } else {
        "{{ inputs.token }}"
    };
    format!(
        r#"
[providers.{id}]
api = ["{api}"]
inputs.token = {{ default = "loopback-static-token" }}
inject = {{ header = "{header}", value = "{value}" }}
on_unauthorized = {{ status = [401], action = "fail" }}
"#
    )
}

// ------------------------------------------------------------ hardening

/// Every fake secret input the seed connections use (the demo passwords,
/// the 2BA client secret, the BRO token password).
pub const SECRETS: [&str; 4] = [
    REOB_DEMO_PASSWORD,
    TWOBA_DEMO_PASSWORD,
    TWOBA_DEMO_CLIENT_SECRET,
    BRO_DEMO_PASSWORD,
];

/// The seed API endpoints by provider.
pub const REOB_API: &str = "https://api.reobtimaal-diensten.nl/api/v1/projecten";
pub const TWOBA_API: &str = "https://api.2ba.nl/1/json/Product/DetailsForProduct";
pub const BRO_API: &str = "https://www.bronhouderportaal-bro.nl/api/v2/validatie";

/// An engine over `toml` against `emu` with an injected manual clock: two
/// retries with a fast backoff (1 ms doubling to 20 ms), failures backed off
/// 1 s doubling to 60 s on the manual clock.
pub fn engine_clocked(
    emu: &Emulator,
    toml: &str,
    clock: Arc<tokenauth::clock::ManualClock>,
) -> TokenAuth {
    engine_builder(emu, toml)
        .clock(clock)
        .retries(2)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(20))
        .failure_backoff(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .expect("engine builds")
}

/// An engine builder over `toml` whose token requests reach the emulator.
pub fn engine_builder(emu: &Emulator, toml: &str) -> tokenauth::TokenAuthBuilder {
    let providers = Providers::from_toml("providers.toml", toml).expect("providers load");
    TokenAuth::builder(providers).http_client_builder(reqwest_builder(emu))
}

/// Waits (polling every 5 ms, at most `max`) until `cond` holds; returns
/// whether it did.
pub async fn eventually(max: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < max {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// Every form a secret can take in text: raw, percent-encoded (form
/// bodies), JSON-escaped.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let json = serde_json::to_string(secret).expect("a string serializes");
    let json = json.trim_matches('"').to_owned();
    let mut forms = vec![secret.to_owned(), form, json];
    forms.dedup();
    forms
}

/// Asserts that `text` contains none of [`SECRETS`] and none of `extra`
/// (tokens), in any of their [`secret_forms`].
#[track_caller]
pub fn assert_no_secret(what: &str, text: &str, extra: &[String]) {
    let all = SECRETS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(extra.iter().cloned());
    for secret in all {
        if secret.is_empty() {
            continue;
        }
        for form in secret_forms(&secret) {
            if let Some(at) = text.find(&form) {
                let start = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                let end = (at + form.len() + 80).min(text.len());
                let end = (end..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(text.len());
                panic!(
                    "a secret ({} chars) leaked into {what}: ...{}...",
                    secret.len(),
                    &text[start..end]
                );
            }
        }
    }
}

// ------------------------------------------------------------ issue 11: attacks (h-d)

/// The credential of [`query_toml`] providers: a query parameter `key`.
pub const QUERY_SECRET: &str = "loopback-query-key-5e0a2f";

/// A provider for loopback servers whose static credential is the query
/// parameter `key` ([`QUERY_SECRET`], `inject.query`), under `api`.
pub fn query_toml(id: &str, api: &str) -> String {
    format!(
        r#"
[providers.{id}]
api = ["{api}"]
inputs.key = {{ default = "{QUERY_SECRET}" }}
inject.query = {{ name = "key", value = "{{{{ inputs.key }}}}" }}
on_unauthorized = {{ status = [401], action = "fail" }}
"#
    )
}

/// Asserts that the last request `api` received carried its own `query`
/// and then the query credential (the API itself gets the key).
#[track_caller]
pub fn assert_the_api_got_the_key(api: &TestServer, query: &str, what: &str) {
    let seen = api.seen();
    assert_eq!(
        seen.last().and_then(|s| s.query.as_deref()),
        Some(format!("{query}&key={QUERY_SECRET}").as_str()),
        "{what}: the API itself got the key"
    );
}

/// An engine over static `toml` providers (no token endpoint involved).
pub fn static_engine(toml: &str) -> TokenAuth {
    let providers = Providers::from_toml("providers.toml", toml).expect("providers load");
    TokenAuth::builder(providers)
        .build()
        .expect("engine builds")
}

/// A loopback port nobody listens on (bound, then released).
pub async fn refused_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().unwrap().port()
}

/// A loopback server that accepts connections and never answers (a client
/// timeout is the only way out); it stops when dropped.
pub struct SilentServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> SilentServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        SilentServer { addr, task }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback server that answers every request with a 302 to its own path
/// and query as received (so a query credential stays in every hop's URL:
/// a redirect loop); it records the request targets.
pub struct LoopServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl LoopServer {
    pub async fn start() -> LoopServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let target = req
                                .uri()
                                .path_and_query()
                                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
                            record.lock().unwrap().push(target.clone());
                            let mut r = http::Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = http::StatusCode::FOUND;
                            r.headers_mut()
                                .insert("location", target.parse().expect("location"));
                            async move { Ok::<_, Infallible>(r) }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        LoopServer { addr, seen }
    }
}

/// `{}`, `{:?}` and `{:#?}` of `value`, asserted free of `secret`.
#[track_caller]
pub fn renderings_without(
    what: &str,
    value: &(impl std::fmt::Display + std::fmt::Debug),
    secret: &str,
) -> String {
    let text = format!("{value}\n{value:?}\n{value:#?}");
    assert!(
        !text.contains(secret),
        "{what} shows the credential: {text}"
    );
    text
}

/// Django OAuth Toolkit's rotation on 2BA: every new access token revokes
/// the user's earlier ones (403 to them), and each API request takes
/// `latency`, so that requests sent with the old token are still in flight
/// when it is revoked.
pub fn rotate_like_dot(emu: &Emulator, latency: Duration) {
    emu.set_revoke_on_reissue(Provider::Twoba, true);
    emu.set_api_latency(latency);
}

/// One 2BA API request through an adapter, spawned: its status, or the
/// error as text.
pub type SpawnedCall = tokio::task::JoinHandle<Result<u16, String>>;

/// Requests in flight with the old token in the rotation scenario.
pub const IN_FLIGHT: u64 = 12;

/// The Django OAuth Toolkit rotation through an adapter (`get` spawns one
/// 2BA request; `auth` runs on `clock`, logged in, nothing else sent yet):
/// [`IN_FLIGHT`] requests reach the API with the old token, then one more
/// in the renewal window starts the background refresh, which revokes that
/// token; each of them gets 403 once. Asserts that none reaches a caller
/// (each was retried once with the current token) and that nothing was
/// invalidated and no extra login or refresh happened. Then a 403 to the
/// current token (`forbidden` sends a REOBtimaal request the demo user has
/// no right to) is returned once, nothing renewed.
pub async fn outdated_token_scenario(
    emu: &Emulator,
    auth: &TokenAuth,
    clock: &tokenauth::clock::ManualClock,
    get: impl Fn() -> SpawnedCall,
    forbidden: impl Fn() -> SpawnedCall,
) {
    assert_eq!(get().await.unwrap(), Ok(200), "logged in");
    let before = auth.stats();
    rotate_like_dot(emu, Duration::from_millis(1000));

    let mut calls: Vec<_> = (0..IN_FLIGHT).map(|_| get()).collect();
    assert!(
        eventually(Duration::from_secs(10), || emu.stats().twoba.api.requests
            == 1 + IN_FLIGHT)
        .await,
        "the requests reached the API"
    );
    // Into the renewal window (2BA: 120 s, skew 20%): this request gets the
    // cached token and starts the refresh, which revokes it.
    clock.advance(Duration::from_secs(100));
    calls.push(get());
    assert!(
        eventually(Duration::from_secs(10), || emu
            .stats()
            .twoba
            .token
            .requests_by_grant
            .refresh_token
            == 1)
        .await,
        "the background refresh ran"
    );
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(200), "no 403 reaches a caller");
    }
    let api = emu.stats().twoba.api;
    let sent = IN_FLIGHT + 1;
    assert_eq!(api.status(403), sent, "each was rejected once: {api:?}");
    assert_eq!(api.status(200), 1 + sent, "and retried once: {api:?}");
    assert_eq!(api.requests, 1 + 2 * sent);
    let token = emu.stats().twoba.token;
    assert_eq!(
        (
            token.requests_by_grant.password,
            token.requests_by_grant.refresh_token
        ),
        (1, 1),
        "one login, one refresh: {token:?}"
    );
    let after = auth.stats();
    assert_eq!(after.invalidations, before.invalidations, "{after:?}");
    assert_eq!(
        (after.logins, after.refreshes, after.renewals),
        (1, 1, 1),
        "{after:?}"
    );

    emu.set_api_latency(Duration::ZERO);
    assert_eq!(forbidden().await.unwrap(), Ok(403));
    let reob = emu.stats().reobtimaal;
    assert_eq!(reob.api.requests, 1, "sent once");
    assert_eq!(reob.token.requests, 1, "one login, no renewal");
    assert_eq!(auth.stats().invalidations, before.invalidations);
}

/// A REOBtimaal URL the demo user has no right to (403).
pub const REOB_FORBIDDEN: &str = "https://api.reobtimaal-diensten.nl/api/v1/beheer/gebruikers";

// ------------------------------------------------------------ token endpoint

/// What [`TokenEndpoint`] answers: status, headers, body.
#[derive(Clone, Debug)]
pub struct EndpointReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl EndpointReply {
    /// A reply with `status`, a `content-type` and `body`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> EndpointReply {
        EndpointReply {
            status,
            headers: vec![("content-type", content_type.to_owned())],
            body: body.into(),
        }
    }

    /// The same with one more header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> EndpointReply {
        self.headers.push((name, value.into()));
        self
    }
}

/// A loopback token endpoint (plain HTTP on 127.0.0.1, port 0) that gives
/// every request the reply last [`set`](TokenEndpoint::set), and counts the
/// requests.
pub struct TokenEndpoint {
    pub addr: SocketAddr,
    reply: Arc<Mutex<EndpointReply>>,
    requests: Arc<std::sync::atomic::AtomicU64>,
}

impl TokenEndpoint {
    pub async fn start(reply: EndpointReply) -> TokenEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let reply = Arc::new(Mutex::new(reply));
        let requests: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        let (r, n) = (reply.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (r, n) = (r.clone(), n.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let EndpointReply {
                            status,
                            headers,
                            body,
                        } = r.lock().unwrap().clone();
                        let mut response = http::Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        for (name, value) in headers {
                            response
                                .headers_mut()
                                .append(name, value.parse().expect("header value"));
                        }
                        std::future::ready(Ok::<_, Infallible>(response))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TokenEndpoint {
            addr,
            reply,
            requests,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn set(&self, reply: EndpointReply) {
        *self.reply.lock().unwrap() = reply;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A provider `id` that logs in at `endpoint` (a form with the secret input
/// `secret`), with `response` (TOML, e.g. `expires_in = "/expires_in"`) and
/// `expiry` (e.g. `ttl = "1h"`).
pub fn endpoint_toml(id: &str, endpoint: &TokenEndpoint, response: &str, expiry: &str) -> String {
    format!(
        r#"
[providers.{id}]
api = ["{api}"]
inputs.secret = {{ env = "TOKENAUTH_TEST_NEVER_SET", secret = true }}
login = {{ url = "{login}", timeout = "5s", fields = {{ grant_type = "client_credentials", client_secret = "{{{{ inputs.secret }}}}" }} }}
response = {{ access_token = "/access_token", {response} }}
expiry = {{ {expiry} }}
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
        api = endpoint.url(&format!("/api/{id}/")),
        login = endpoint.url(&format!("/token/{id}")),
    )
}

/// Log lines captured by [`capture_logs`].
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// Captures everything logged at TRACE and above on this thread while the
/// guard lives (use it in a current-thread runtime, where the engine's
/// tasks run on the test's thread too).
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, Logs) {
    interested_global_default();
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}

/// tracing caches whether a log line is enabled once per process, asking
/// the subscriber of the thread that reaches it first: a test running at the
/// same time without a subscriber would pin a line to "never" for a test
/// that captures it (tokio-rs/tracing's callsite interest cache; a flake
/// seen in `device.rs`). A global subscriber that wants everything keeps
/// every line enabled; each test's `set_default` still gets its own
/// thread's lines, and the others go nowhere.
pub fn interested_global_default() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
}

/// The tests name providers by id: `auth.credential_of("twoba", Some(&conn))`
/// is `auth.provider("twoba")?.credential(Some(&conn))`.
#[allow(dead_code)]
pub trait CredentialOf {
    async fn credential_of(
        &self,
        provider: &str,
        connection: Option<&Connection>,
    ) -> Result<tokenauth::Credential, tokenauth::Error>;
}

impl CredentialOf for TokenAuth {
    async fn credential_of(
        &self,
        provider: &str,
        connection: Option<&Connection>,
    ) -> Result<tokenauth::Credential, tokenauth::Error> {
        self.provider(provider)?.credential(connection).await
    }
}
