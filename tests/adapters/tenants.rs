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

#[tokio::test]
async fn two_tenants_two_token_urls_two_hosts_via_reqwest() {
    let hosts = Hosts::start().await;
    let auth = engine(&hosts);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth.middleware())
        .build();
    let port = hosts.port;
    let (alpha, beta) = (tenant("alpha", "127.0.0.1"), tenant("beta", "127.0.0.2"));
    for (conn, own, other) in [
        (&alpha, "127.0.0.1", "127.0.0.2"),
        (&beta, "127.0.0.2", "127.0.0.1"),
    ] {
        for _ in 0..2 {
            let r = client
                .get(format!("http://{own}:{port}/api/items"))
                .with_extension(conn.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let r = client
            .get(format!("http://{other}:{port}/api/other"))
            .with_extension(conn.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
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
    for (conn, own, other) in [
        (&alpha, "127.0.0.1", "127.0.0.2"),
        (&beta, "127.0.0.2", "127.0.0.1"),
    ] {
        let paths = [
            (own, "/api/items"),
            (own, "/api/items"),
            (other, "/api/other"),
        ];
        for (host, path) in paths {
            let mut request = http::Request::get(format!("http://{host}:{port}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            request.extensions_mut().insert(conn.clone());
            let response = svc.ready().await.unwrap().call(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let _ = response.into_body().collect().await;
        }
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
    for (value, why) in [
        ("127.0.0.1.evil.example", "pattern"),
        ("evil.example/", "pattern"),
        ("127.0.0.1:9/x", "pattern"),
    ] {
        let conn = tenant("mallory", value);
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
