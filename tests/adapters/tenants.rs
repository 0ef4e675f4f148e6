//! One provider, two tenants, two hosts: URL templates end to end.
//!
//! The provider's token URL and API prefix hold the tenant's host (and its
//! token URL the tenant's name in the path). Two connections get two tokens
//! from two token URLs and send them to two hosts, never crossed, through
//! the reqwest middleware and the tower layer. The two hosts are two
//! loopback addresses (127.0.0.1 and 127.0.0.2) with one port.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokenauth::prelude::*;
use tokenauth::{Connection, Providers, TokenAuth};
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::helpers::hyper_client_with;

/// What one host saw: token requests (`POST /{tenant}/token`) and API calls
/// with their `Authorization`.
#[derive(Default)]
struct Log {
    token_paths: Vec<String>,
    api_calls: Vec<(String, Option<String>)>,
}

/// Two servers, on 127.0.0.1:P and 127.0.0.2:P. Each issues tokens naming
/// its host and the tenant in the token URL's path.
struct Hosts {
    port: u16,
    logs: HashMap<&'static str, Arc<Mutex<Log>>>,
}

impl Hosts {
    async fn start() -> Hosts {
        let first = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let second = tokio::net::TcpListener::bind(("127.0.0.2", port))
            .await
            .expect("127.0.0.2 is loopback on Linux");
        let mut logs = HashMap::new();
        for (host, listener) in [("127.0.0.1", first), ("127.0.0.2", second)] {
            let log: Arc<Mutex<Log>> = Arc::default();
            logs.insert(host, log.clone());
            tokio::spawn(serve(host, listener, log));
        }
        Hosts { port, logs }
    }

    fn log(&self, host: &str) -> std::sync::MutexGuard<'_, Log> {
        self.logs[host].lock().unwrap()
    }

    fn toml(&self) -> String {
        format!(
            r#"
[providers.tenanted]
api = ["http://{{{{ inputs.host }}}}:{port}/api/"]
allow_insecure_http = true
inputs.host = {{ env = "TENANTED_HOST", pattern = "127\\.0\\.0\\.[0-9]+" }}
inputs.tenant = {{ env = "TENANTED_TENANT" }}
inputs.secret = {{ env = "TENANTED_SECRET", secret = true }}
login.url = "http://{{{{ inputs.host }}}}:{port}/{{{{ inputs.tenant }}}}/token"
login.fields = {{ grant_type = "client_credentials", client_secret = "{{{{ inputs.secret }}}}" }}
response.expires_in = "/expires_in"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
            port = self.port
        )
    }
}

async fn serve(host: &'static str, listener: tokio::net::TcpListener, log: Arc<Mutex<Log>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let log = log.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                let log = log.clone();
                async move {
                    let path = req.uri().path().to_owned();
                    let auth = req
                        .headers()
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned());
                    let body = if let Some(tenant) = path
                        .strip_suffix("/token")
                        .and_then(|p| p.strip_prefix('/'))
                    {
                        log.lock().unwrap().token_paths.push(path.clone());
                        format!(r#"{{"access_token":"tok-{tenant}-at-{host}","expires_in":3600}}"#)
                    } else {
                        log.lock().unwrap().api_calls.push((path, auth));
                        "ok".to_owned()
                    };
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn engine(hosts: &Hosts) -> TokenAuth {
    let providers = Providers::from_toml("providers.toml", &hosts.toml()).unwrap();
    TokenAuth::builder(providers).build().unwrap()
}

fn tenant(id: &str, host: &str) -> Connection {
    Connection::new(id)
        .with_input("host", host)
        .with_input("tenant", id)
        .with_secret("secret", format!("secret-of-{id}"))
}

/// What each host saw, after `alpha` (on .1) and `beta` (on .2) each called
/// their own host twice and once the other's host.
fn assert_never_crossed(hosts: &Hosts) {
    let one = hosts.log("127.0.0.1");
    let two = hosts.log("127.0.0.2");
    assert_eq!(one.token_paths, ["/alpha/token"]);
    assert_eq!(two.token_paths, ["/beta/token"]);
    let bearer = |t: &str| Some(t.to_owned());
    assert_eq!(
        one.api_calls,
        [
            (
                "/api/items".to_owned(),
                bearer("Bearer tok-alpha-at-127.0.0.1")
            ),
            (
                "/api/items".to_owned(),
                bearer("Bearer tok-alpha-at-127.0.0.1")
            ),
            // beta's request to alpha's host: outside beta's prefixes, so
            // sent without any credential.
            ("/api/other".to_owned(), None),
        ]
    );
    assert_eq!(
        two.api_calls,
        [
            (
                "/api/items".to_owned(),
                bearer("Bearer tok-beta-at-127.0.0.2")
            ),
            (
                "/api/items".to_owned(),
                bearer("Bearer tok-beta-at-127.0.0.2")
            ),
            ("/api/other".to_owned(), None),
        ]
    );
}

/// Each tenant calls its own host twice and the other's host once, in this
/// order: (connection, host, path).
fn call_plan<'c>(
    alpha: &'c Connection,
    beta: &'c Connection,
) -> Vec<(&'c Connection, &'static str, &'static str)> {
    let mut plan = Vec::new();
    for (conn, own, other) in [
        (alpha, "127.0.0.1", "127.0.0.2"),
        (beta, "127.0.0.2", "127.0.0.1"),
    ] {
        plan.extend([
            (conn, own, "/api/items"),
            (conn, own, "/api/items"),
            (conn, other, "/api/other"),
        ]);
    }
    plan
}

/// Runs [`call_plan`] through a reqwest-middleware client; every call 200.
async fn call_through_reqwest(
    client: &reqwest_middleware::ClientWithMiddleware,
    port: u16,
    alpha: &Connection,
    beta: &Connection,
) {
    for (conn, host, path) in call_plan(alpha, beta) {
        let r = client
            .get(format!("http://{host}:{port}{path}"))
            .with_extension(conn.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn two_tenants_two_token_urls_two_hosts_via_reqwest() {
    let hosts = Hosts::start().await;
    let auth = engine(&hosts);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth.middleware())
        .build();
    let port = hosts.port;
    let (alpha, beta) = (tenant("alpha", "127.0.0.1"), tenant("beta", "127.0.0.2"));
    call_through_reqwest(&client, port, &alpha, &beta).await;
    sort_others_last(&hosts);
    assert_never_crossed(&hosts);
    assert_eq!(auth.stats().token_requests, 2);
}

#[tokio::test]
async fn two_tenants_two_token_urls_two_hosts_via_tower() {
    let hosts = Hosts::start().await;
    let auth = engine(&hosts);
    let client = hyper_client_with::<Full<Bytes>>("", HashMap::new());
    let mut svc = ServiceBuilder::new().layer(auth.layer()).service(client);
    let port = hosts.port;
    let (alpha, beta) = (tenant("alpha", "127.0.0.1"), tenant("beta", "127.0.0.2"));
    for (conn, host, path) in call_plan(&alpha, &beta) {
        let mut request = http::Request::get(format!("http://{host}:{port}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        request.extensions_mut().insert(conn.clone());
        let response = svc.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.into_body().collect().await;
    }
    sort_others_last(&hosts);
    assert_never_crossed(&hosts);
    assert_eq!(auth.stats().token_requests, 2);
}

/// Each host got its own tenant's calls and one foreign call; the foreign
/// one may come first (alpha calls beta's host before beta starts).
fn sort_others_last(hosts: &Hosts) {
    for host in ["127.0.0.1", "127.0.0.2"] {
        hosts
            .log(host)
            .api_calls
            .sort_by_key(|(path, _)| path == "/api/other");
    }
}

/// A connection whose value breaks the input's pattern, or cannot be a
/// host, gets no credential anywhere: nothing routes to it, and a token
/// request for it fails with a typed error naming the input, without being
/// sent.
#[tokio::test]
async fn unfit_host_values_route_nowhere_and_fetch_nothing() {
    let hosts = Hosts::start().await;
    let auth = engine(&hosts);
    let port = hosts.port;
    let handle = auth.provider("tenanted").unwrap();
    for (i, (value, why)) in [
        ("127.0.0.1.evil.example", "pattern"),
        ("evil.example/", "pattern"),
        ("127.0.0.1:9/x", "pattern"),
    ]
    .into_iter()
    .enumerate()
    {
        let conn = tenant(&format!("mallory-{i}"), value);
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/api/items")).unwrap();
        assert!(auth.route_for(&url, Some(&conn)).is_none(), "{value}");
        let err = handle.credential(Some(&conn)).await.unwrap_err();
        assert!(
            matches!(&err, tokenauth::Error::InvalidInput { input, .. } if input == "host"),
            "{value}: {err}"
        );
        assert!(err.to_string().contains(why), "{err}");
        assert!(!err.to_string().contains("secret-of"), "{err}");
    }
    assert_eq!(hosts.log("127.0.0.1").token_paths.len(), 0);
    assert_eq!(auth.stats().token_requests, 0);
}

// ------------------------------------------------------ API base from reply

/// An API call's `Host` and `Authorization`.
type HostAndAuth = (String, Option<String>);

/// A Salesforce-like provider: the login reply names the connection's
/// instance (`instance_url`); the API prefix is `http://*.sf.test:P/`.
/// `*.sf.test` resolves to the loopback server in the test's clients.
struct Instances {
    port: u16,
    /// What the next login reply gives as `instance_url`.
    instance: Arc<Mutex<String>>,
    /// The `Host` and `Authorization` of every API call.
    calls: Arc<Mutex<Vec<HostAndAuth>>>,
    logins: Arc<Mutex<u32>>,
}

impl Instances {
    async fn start() -> Instances {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let instances = Instances {
            port,
            instance: Arc::new(Mutex::new(format!("http://acme.sf.test:{port}"))),
            calls: Arc::default(),
            logins: Arc::default(),
        };
        let (instance, calls, logins) = (
            instances.instance.clone(),
            instances.calls.clone(),
            instances.logins.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (instance, calls, logins) = (instance.clone(), calls.clone(), logins.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: http::Request<_>| {
                        let (instance, calls, logins) =
                            (instance.clone(), calls.clone(), logins.clone());
                        async move {
                            let header = |n: &str| {
                                req.headers().get(n).map(|v| v.to_str().unwrap().to_owned())
                            };
                            let body = if req.uri().path() == "/services/oauth2/token" {
                                *logins.lock().unwrap() += 1;
                                let instance = instance.lock().unwrap().clone();
                                serde_json::json!({
                                    "access_token": "00Dsf!tok",
                                    "instance_url": instance,
                                    "token_type": "Bearer",
                                })
                                .to_string()
                            } else {
                                let host = header("host").unwrap_or_default();
                                calls.lock().unwrap().push((host, header("authorization")));
                                "ok".to_owned()
                            };
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        instances
    }

    fn toml(&self) -> String {
        format!(
            r#"
[providers.sf]
api = ["http://*.sf.test:{port}/services/"]
allow_insecure_http = true
inputs.secret = {{ env = "SF_SECRET", secret = true }}
login.url = "http://127.0.0.1:{port}/services/oauth2/token"
login.fields = {{ grant_type = "client_credentials", client_secret = "{{{{ inputs.secret }}}}" }}
response.api_base = "/instance_url"
expiry.ttl = "2h"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
            port = self.port
        )
    }

    fn client(&self) -> reqwest::Client {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        reqwest::Client::builder()
            .resolve("acme.sf.test", addr)
            .resolve("other.sf.test", addr)
            .build()
            .unwrap()
    }

    fn url(&self, host: &str) -> String {
        format!("http://{host}:{}/services/data/v60.0/", self.port)
    }
}

fn sf_connection() -> Connection {
    Connection::new("acme").with_secret("secret", "sf-client-secret")
}

#[tokio::test]
async fn the_reply_binds_the_connection_to_its_instance() {
    let sf = Instances::start().await;
    let auth = TokenAuth::builder(Providers::from_toml("p.toml", &sf.toml()).unwrap())
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(sf.client())
        .with(auth.middleware())
        .build();
    let get = |host: &str| {
        client
            .get(sf.url(host))
            .with_extension(sf_connection())
            .send()
    };
    assert_eq!(get("acme.sf.test").await.unwrap().status(), 200);
    let credential = auth
        .provider("sf")
        .unwrap()
        .cached(Some(&sf_connection()))
        .unwrap();
    assert_eq!(
        credential.api_base().map(|u| u.as_str().to_owned()),
        Some(format!("http://acme.sf.test:{}/services/", sf.port))
    );
    // Another instance under the same `*`: refused, not sent.
    let err = get("other.sf.test").await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("bound this connection to"), "{text}");
    assert!(
        !text.contains("00Dsf!tok") && !text.contains("sf-client-secret"),
        "{text}"
    );
    assert_eq!(
        *sf.calls.lock().unwrap(),
        [(
            format!("acme.sf.test:{}", sf.port),
            Some("Bearer 00Dsf!tok".to_owned())
        )]
    );
    assert_eq!(*sf.logins.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_reply_base_outside_the_wildcard_is_a_typed_error_and_nothing_is_sent() {
    let sf = Instances::start().await;
    let auth = TokenAuth::builder(Providers::from_toml("p.toml", &sf.toml()).unwrap())
        .retry_backoff(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(5),
        )
        .failure_backoff(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(5),
        )
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(sf.client())
        .with(auth.middleware())
        .build();
    let port = sf.port;
    for outside in [
        "https://evil.example".to_owned(),
        format!("http://a.b.sf.test:{port}"),
        format!("http://acme.sf.test.evil.example:{port}"),
        format!("http://acme.sf.test:{}", port + 1),
        format!("http://acme.sf.test:{port}/other/"),
        "00Dsf!tok".to_owned(),
        String::new(),
    ] {
        *sf.instance.lock().unwrap() = outside.clone();
        let conn = Connection::new(format!("c-{}", outside.len())).with_secret("secret", "x");
        let err = auth
            .provider("sf")
            .unwrap()
            .credential(Some(&conn))
            .await
            .unwrap_err();
        assert!(
            matches!(err, tokenauth::Error::ApiBase { .. }),
            "{outside}: {err}"
        );
        assert!(!err.to_string().contains("00Dsf!tok"), "{err}");
        let sent = client
            .get(sf.url("acme.sf.test"))
            .with_extension(conn)
            .send()
            .await;
        assert!(sent.is_err(), "{outside}");
    }
    assert!(sf.calls.lock().unwrap().is_empty());
}

/// Another process adopts the token with its bound base from the shared
/// store, and re-checks it against the description.
#[tokio::test]
async fn an_adopted_token_keeps_its_api_base() {
    let sf = Instances::start().await;
    let dir = std::env::temp_dir().join(format!(
        "tokenauth-api-base-{}-{}",
        std::process::id(),
        sf.port
    ));
    let engine = || {
        TokenAuth::builder(Providers::from_toml("p.toml", &sf.toml()).unwrap())
            .store(Arc::new(tokenauth::store::FileStore::new(&dir)))
            .build()
            .unwrap()
    };
    let (first, second) = (engine(), engine());
    let conn = sf_connection();
    first
        .provider("sf")
        .unwrap()
        .credential(Some(&conn))
        .await
        .unwrap();
    let adopted = second
        .provider("sf")
        .unwrap()
        .credential(Some(&conn))
        .await
        .unwrap();
    assert!(adopted.adopted());
    assert_eq!(
        adopted.api_base().map(|u| u.as_str().to_owned()),
        Some(format!("http://acme.sf.test:{}/services/", sf.port))
    );
    assert_eq!(*sf.logins.lock().unwrap(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A self-hosted product: the whole origin is an input
/// (`{{ inputs.base }}/api/`), the value being `http://127.0.0.1:PORT` (plain
/// http is allowed for loopback). Two tenants on the two loopback hosts.
#[tokio::test]
async fn a_whole_origin_from_an_input() {
    let hosts = Hosts::start().await;
    let toml = r#"
[providers.selfhosted]
api = ["{{ inputs.base }}/api/"]
inputs.base = { env = "SELFHOSTED_BASE" }
inputs.tenant = { env = "SELFHOSTED_TENANT" }
inputs.secret = { env = "SELFHOSTED_SECRET", secret = true }
login.url = "{{ inputs.base }}/{{ inputs.tenant }}/token"
login.fields = { grant_type = "client_credentials", client_secret = "{{ inputs.secret }}" }
response.expires_in = "/expires_in"
inject = { header = "Authorization", value = "Bearer {{ token.access }}" }
"#;
    let auth = TokenAuth::builder(Providers::from_toml("p.toml", toml).unwrap())
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth.middleware())
        .build();
    let port = hosts.port;
    let tenant = |id: &str, host: &str| {
        Connection::new(id)
            .with_input("base", format!("http://{host}:{port}"))
            .with_input("tenant", id)
            .with_secret("secret", "s")
    };
    let (alpha, beta) = (tenant("alpha", "127.0.0.1"), tenant("beta", "127.0.0.2"));
    call_through_reqwest(&client, port, &alpha, &beta).await;
    sort_others_last(&hosts);
    assert_never_crossed(&hosts);
    // A value that is not an origin gets nothing and fetches nothing.
    let bad = Connection::new("mallory")
        .with_input("base", format!("http://127.0.0.1:{port}/api/../x"))
        .with_input("tenant", "m")
        .with_secret("secret", "s");
    let err = auth
        .provider("selfhosted")
        .unwrap()
        .credential(Some(&bad))
        .await
        .unwrap_err();
    assert!(
        matches!(err, tokenauth::Error::InvalidInput { .. }),
        "{err}"
    );
    assert_eq!(auth.stats().token_requests, 2);
}
