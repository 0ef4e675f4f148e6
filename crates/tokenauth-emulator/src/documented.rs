//! The "documented reply" server: catalog providers' token endpoints and
//! APIs as their public documentation describes them, on loopback TLS under
//! their real host names.
//!
//! It is the fixture for `catalog/`: each provider below was written from
//! the provider's documentation (not from the catalog file and not from
//! `tokenauth-core`), so a catalog description that sends the wrong method,
//! content type, field, client authentication or credential location is
//! rejected here as the real provider would.
//!
//! - A token endpoint checks the method (`POST`), the content type
//!   (`application/x-www-form-urlencoded`), every documented form field and,
//!   where documented, HTTP Basic client authentication (decoded as RFC 6749
//!   §2.3.1 says: base64, then form-decoded). A good request gets a fresh
//!   token in the provider's documented JSON shape; a bad one gets `400`
//!   (`invalid_request`, `unsupported_grant_type`, `invalid_grant`) or `401`
//!   (`invalid_client`), and the reason is kept in [`DocStats::rejections`].
//! - An API request must carry the credential where the documentation puts
//!   it (a bearer token issued here, a static key in a named header, HTTP
//!   Basic) plus any other header the documentation requires; else `401`.
//!
//! Accounts follow one convention, all fake: for provider `ID`, the client
//! id is `ID-demo-client`, the client secret `ID-demo-client-secret`, the
//! refresh token `ID-demo-refresh-token`, a static API key or token
//! `ID-demo-key` and a user name `ID-demo-user` (see [`DocAccount`]); a
//! tenant in a URL is `ID-demo-tenant`.
//!
//! ```
//! use tokenauth_emulator::documented::{DocAccount, DocumentedServer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = DocumentedServer::start()?;
//! assert!(server.providers().contains(&"spotify"));
//! assert!(server.host_overrides().iter().any(|(h, _)| *h == "accounts.spotify.com"));
//! assert_eq!(DocAccount::of("spotify").client_id, "spotify-demo-client");
//! assert_eq!(server.stats("spotify").token_requests, 0);
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::tls;

/// How the documented API expects the credential.
#[derive(Clone, Copy, Debug)]
enum ApiCred {
    /// `Authorization: Bearer <token issued by this provider's token endpoint>`.
    IssuedBearer,
    /// `Authorization: Bearer <ID-demo-key>`.
    StaticBearer,
    /// The named header holds exactly `<ID-demo-key>`.
    StaticHeader(&'static str),
    /// HTTP Basic with this user name (`None`: `ID-demo-user`) and
    /// `ID-demo-key` as the password.
    Basic(Option<&'static str>),
    /// These query parameters, with these values.
    Query(&'static [(&'static str, Want)]),
}

/// A documented form field: the value the request must carry.
#[derive(Clone, Copy, Debug)]
enum Want {
    Literal(&'static str),
    ClientId,
    ClientSecret,
    RefreshToken,
    /// The static key, `ID-demo-key`.
    Key,
}

/// A documented token endpoint.
#[derive(Clone, Copy, Debug)]
struct TokenSpec {
    host: &'static str,
    path: &'static str,
    fields: &'static [(&'static str, Want)],
    /// Client id and secret as HTTP Basic (else they must not be in a header).
    basic_client: bool,
    /// The documented reply, given a fresh token.
    reply: fn(&str) -> Value,
}

/// One provider as its documentation describes it.
#[derive(Clone, Copy, Debug)]
struct DocProvider {
    id: &'static str,
    token: Option<TokenSpec>,
    api_host: &'static str,
    api_prefix: &'static str,
    cred: ApiCred,
    /// Other headers the documentation says every request must carry.
    required_headers: &'static [&'static str],
    /// Headers that must carry exactly these values.
    required_values: &'static [(&'static str, Want)],
}

const CC: (&str, Want) = ("grant_type", Want::Literal("client_credentials"));

/// The documented providers. Each entry says where its facts come from.
const PROVIDERS: &[DocProvider] = &[
    // https://developer.spotify.com/documentation/web-api/tutorials/client-credentials-flow
    DocProvider {
        id: "spotify",
        token: Some(TokenSpec {
            host: "accounts.spotify.com",
            path: "/api/token",
            fields: &[CC],
            basic_client: true,
            reply: |t| json!({"access_token": t, "token_type": "bearer", "expires_in": 3600}),
        }),
        api_host: "api.spotify.com",
        api_prefix: "/v1/",
        cred: ApiCred::IssuedBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://developer.paypal.com/api/rest/authentication/
    DocProvider {
        id: "paypal",
        token: Some(TokenSpec {
            host: "api-m.paypal.com",
            path: "/v1/oauth2/token",
            fields: &[CC],
            basic_client: true,
            reply: |t| {
                json!({
                    "scope": "https://uri.paypal.com/services/invoicing openid",
                    "access_token": t,
                    "token_type": "Bearer",
                    "app_id": "APP-DEMO0000000000000",
                    "expires_in": 32400,
                    "nonce": "2026-12-02T08:00:00ZdemoNonce"
                })
            },
        }),
        api_host: "api-m.paypal.com",
        api_prefix: "/v1/notifications/",
        cred: ApiCred::IssuedBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://developers.amadeus.com/self-service/apis-docs/guides/developer-guides/API-Keys/authorization/
    DocProvider {
        id: "amadeus",
        token: Some(TokenSpec {
            host: "test.api.amadeus.com",
            path: "/v1/security/oauth2/token",
            fields: &[
                CC,
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
            ],
            basic_client: false,
            reply: |t| {
                json!({
                    "type": "amadeusOAuth2Token",
                    "username": "demo@example.com",
                    "application_name": "tokenauth demo",
                    "client_id": "amadeus-demo-client",
                    "token_type": "Bearer",
                    "access_token": t,
                    "expires_in": 1799,
                    "state": "approved",
                    "scope": ""
                })
            },
        }),
        api_host: "test.api.amadeus.com",
        api_prefix: "/v1/reference-data/",
        cred: ApiCred::IssuedBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token
    DocProvider {
        id: "dropbox",
        token: Some(TokenSpec {
            host: "api.dropboxapi.com",
            path: "/oauth2/token",
            fields: &[
                ("grant_type", Want::Literal("refresh_token")),
                ("refresh_token", Want::RefreshToken),
            ],
            basic_client: true,
            reply: |t| json!({"access_token": t, "token_type": "bearer", "expires_in": 14400}),
        }),
        api_host: "api.dropboxapi.com",
        api_prefix: "/2/",
        cred: ApiCred::IssuedBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://developers.google.com/identity/protocols/oauth2/web-server#offline
    DocProvider {
        id: "google",
        token: Some(TokenSpec {
            host: "oauth2.googleapis.com",
            path: "/token",
            fields: &[
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
                ("grant_type", Want::Literal("refresh_token")),
                ("refresh_token", Want::RefreshToken),
            ],
            basic_client: false,
            reply: |t| {
                json!({
                    "access_token": t,
                    "expires_in": 3599,
                    "scope": "openid https://www.googleapis.com/auth/userinfo.email",
                    "token_type": "Bearer"
                })
            },
        }),
        api_host: "openidconnect.googleapis.com",
        api_prefix: "/v1/userinfo",
        cred: ApiCred::IssuedBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api
    // (and: requests without a User-Agent are refused)
    DocProvider {
        id: "github",
        token: None,
        api_host: "api.github.com",
        api_prefix: "/",
        cred: ApiCred::StaticBearer,
        required_headers: &["user-agent"],
        required_values: &[],
    },
    // https://docs.stripe.com/api/authentication
    DocProvider {
        id: "stripe",
        token: None,
        api_host: "api.stripe.com",
        api_prefix: "/v1/",
        cred: ApiCred::StaticBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://developers.hubspot.com/docs/api/private-apps
    DocProvider {
        id: "hubspot",
        token: None,
        api_host: "api.hubapi.com",
        api_prefix: "/",
        cred: ApiCred::StaticBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://developer.moneybird.com/authentication/
    DocProvider {
        id: "moneybird",
        token: None,
        api_host: "moneybird.com",
        api_prefix: "/api/v2/",
        cred: ApiCred::StaticBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://www.twilio.com/docs/usage/requests-to-twilio
    DocProvider {
        id: "twilio",
        token: None,
        api_host: "api.twilio.com",
        api_prefix: "/2010-04-01/",
        cred: ApiCred::Basic(None),
        required_headers: &[],
        required_values: &[],
    },
    // https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/authentication
    DocProvider {
        id: "sendgrid",
        token: None,
        api_host: "api.sendgrid.com",
        api_prefix: "/v3/",
        cred: ApiCred::StaticBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://docs.gitlab.com/api/rest/authentication/
    DocProvider {
        id: "gitlab",
        token: None,
        api_host: "gitlab.com",
        api_prefix: "/api/v4/",
        cred: ApiCred::StaticHeader("private-token"),
        required_headers: &[],
        required_values: &[],
    },
    // https://documentation.mailgun.com/docs/mailgun/api-reference/authentication/
    DocProvider {
        id: "mailgun",
        token: None,
        api_host: "api.mailgun.net",
        api_prefix: "/",
        cred: ApiCred::Basic(Some("api")),
        required_headers: &[],
        required_values: &[],
    },
    // The four below need issue-14 syntax (URL templates, inject maps): the
    // catalog test runs them once the loader has it.
    // https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
    // (the tenant in the path is `microsoft-entra-demo-tenant`)
    DocProvider {
        id: "microsoft-entra",
        token: Some(TokenSpec {
            host: "login.microsoftonline.com",
            path: "/microsoft-entra-demo-tenant/oauth2/v2.0/token",
            fields: &[
                ("client_id", Want::ClientId),
                (
                    "scope",
                    Want::Literal("https://graph.microsoft.com/.default"),
                ),
                ("client_secret", Want::ClientSecret),
                CC,
            ],
            basic_client: false,
            reply: |t| json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": t}),
        }),
        api_host: "graph.microsoft.com",
        api_prefix: "/v1.0/",
        cred: ApiCred::IssuedBearer,
        required_headers: &[],
        required_values: &[],
    },
    // https://dev.twitch.tv/docs/authentication/getting-tokens-oauth/#client-credentials-grant-flow
    DocProvider {
        id: "twitch",
        token: Some(TokenSpec {
            host: "id.twitch.tv",
            path: "/oauth2/token",
            fields: &[
                ("client_id", Want::ClientId),
                ("client_secret", Want::ClientSecret),
                CC,
            ],
            basic_client: false,
            reply: |t| json!({"access_token": t, "expires_in": 5_011_271, "token_type": "bearer"}),
        }),
        api_host: "api.twitch.tv",
        api_prefix: "/helix/",
        cred: ApiCred::IssuedBearer,
        required_headers: &[],
        required_values: &[("client-id", Want::ClientId)],
    },
    // https://developers.notion.com/reference/authentication and /versioning
    DocProvider {
        id: "notion",
        token: None,
        api_host: "api.notion.com",
        api_prefix: "/v1/",
        cred: ApiCred::StaticBearer,
        required_headers: &[],
        required_values: &[("notion-version", Want::Literal("2022-06-28"))],
    },
    // https://developer.atlassian.com/cloud/trello/guides/rest-api/api-introduction/
    // (the API key is `trello-demo-client`, the token `trello-demo-key`)
    DocProvider {
        id: "trello",
        token: None,
        api_host: "api.trello.com",
        api_prefix: "/1/",
        cred: ApiCred::Query(&[("key", Want::ClientId), ("token", Want::Key)]),
        required_headers: &[],
        required_values: &[],
    },
];

/// The fake account of a documented provider (one naming convention for all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocAccount {
    /// `ID-demo-client`.
    pub client_id: String,
    /// `ID-demo-client-secret`.
    pub client_secret: String,
    /// `ID-demo-refresh-token`: the refresh token the token endpoint accepts.
    pub refresh_token: String,
    /// `ID-demo-key`: the static API key or token the API accepts.
    pub key: String,
    /// `ID-demo-user`: the Basic user name where the provider has one.
    pub user: String,
}

impl DocAccount {
    /// The account of provider `id`.
    pub fn of(id: &str) -> DocAccount {
        DocAccount {
            client_id: format!("{id}-demo-client"),
            client_secret: format!("{id}-demo-client-secret"),
            refresh_token: format!("{id}-demo-refresh-token"),
            key: format!("{id}-demo-key"),
            user: format!("{id}-demo-user"),
        }
    }
}

/// What one documented provider saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocStats {
    /// Token requests received (good or bad).
    pub token_requests: u32,
    /// Tokens issued.
    pub tokens_issued: u32,
    /// API requests whose credential was where the documentation says.
    pub api_accepted: u32,
    /// API requests rejected with 401.
    pub api_rejected: u32,
    /// Why each rejected request (token or API) was rejected, oldest first.
    pub rejections: Vec<String>,
}

#[derive(Default)]
struct DocState {
    issued: Mutex<HashMap<String, &'static str>>,
    stats: Mutex<HashMap<&'static str, DocStats>>,
    counter: AtomicU64,
}

impl DocState {
    fn with_stats(&self, id: &'static str, f: impl FnOnce(&mut DocStats)) {
        let mut all = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        f(all.entry(id).or_default());
    }

    fn reject(&self, id: &'static str, why: String) {
        self.with_stats(id, |s| s.rejections.push(why));
    }
}

/// A running documented-reply server (HTTPS on 127.0.0.1 only). Dropping it
/// stops it.
pub struct DocumentedServer {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<DocState>,
    shutdown: Option<watch::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for DocumentedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentedServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn hosts() -> Vec<&'static str> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in PROVIDERS {
        for h in p.token.map(|t| t.host).into_iter().chain([p.api_host]) {
            if seen.insert(h) {
                out.push(h);
            }
        }
    }
    out
}

impl DocumentedServer {
    /// Starts the server on its own thread and runtime, on a free port of
    /// 127.0.0.1, with a fresh CA whose certificate covers every documented
    /// host name.
    ///
    /// # Errors
    /// The port could not be bound or the certificate not generated.
    pub fn start() -> io::Result<DocumentedServer> {
        let mut names: Vec<String> = hosts().into_iter().map(str::to_owned).collect();
        names.push("localhost".to_owned());
        let material = tls::generate_for(names)?;
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state = Arc::new(DocState::default());
        let (tx, rx) = watch::channel(());
        let st = state.clone();
        let acceptor = TlsAcceptor::from(material.server_config);
        let thread = std::thread::Builder::new()
            .name("tokenauth-documented".to_owned())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(listener) = TcpListener::from_std(std_listener) {
                        accept_loop(listener, acceptor, st, rx).await;
                    }
                });
            })?;
        Ok(DocumentedServer {
            addr,
            ca_pem: material.ca_pem,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The listener's address (HTTPS).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA that signed the server certificate.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `(real host name, listener address)` for every documented host: give
    /// them to `reqwest::ClientBuilder::resolve` or `tokenauth --resolve`.
    pub fn host_overrides(&self) -> Vec<(&'static str, SocketAddr)> {
        hosts().into_iter().map(|h| (h, self.addr)).collect()
    }

    /// The ids of the documented providers.
    pub fn providers(&self) -> Vec<&'static str> {
        PROVIDERS.iter().map(|p| p.id).collect()
    }

    /// What provider `id` saw so far.
    pub fn stats(&self, id: &str) -> DocStats {
        let all = self
            .state
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.get(id).cloned().unwrap_or_default()
    }
}

impl Drop for DocumentedServer {
    fn drop(&mut self) {
        self.shutdown.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<DocState>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                let svc = service_fn(move |req| handle(state.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            }
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    state: Arc<DocState>,
    req: Request<Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(n, _)| n)
                .to_ascii_lowercase()
        })
        .or_else(|| req.uri().host().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let path = req.uri().path().to_owned();
    for p in PROVIDERS {
        if let Some(t) = p.token
            && t.host == host
            && t.path == path
        {
            return Ok(token(&state, p, t, req).await);
        }
    }
    for p in PROVIDERS {
        if p.api_host == host && path.starts_with(p.api_prefix) {
            return Ok(api(&state, p, req.headers(), req.uri().query()));
        }
    }
    Ok(reply(
        StatusCode::NOT_FOUND,
        &json!({"error": format!("no documented endpoint at https://{host}{path}")}),
    ))
}

fn want_value(want: Want, account: &DocAccount) -> String {
    match want {
        Want::Literal(v) => v.to_owned(),
        Want::ClientId => account.client_id.clone(),
        Want::ClientSecret => account.client_secret.clone(),
        Want::RefreshToken => account.refresh_token.clone(),
        Want::Key => account.key.clone(),
    }
}

async fn token(state: &DocState, p: &DocProvider, t: TokenSpec, req: Request<Incoming>) -> Resp {
    state.with_stats(p.id, |s| s.token_requests += 1);
    let account = DocAccount::of(p.id);
    let (parts, body) = req.into_parts();
    let bad = |status: StatusCode, error: &str, why: String| {
        state.reject(p.id, format!("token: {why}"));
        reply(status, &json!({"error": error, "error_description": why}))
    };
    if parts.method != Method::POST {
        return bad(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            format!("method {} instead of POST", parts.method),
        );
    }
    let ctype = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("content type {ctype:?} instead of a form"),
        );
    }
    let Ok(body) = Limited::new(body, 64 * 1024).collect().await else {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unreadable body".to_owned(),
        );
    };
    let form = parse_form(&body.to_bytes());
    let basic = basic_credentials(&parts.headers);
    if t.basic_client {
        match &basic {
            Some((u, pw)) if *u == account.client_id && *pw == account.client_secret => {}
            Some(_) => {
                return bad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "wrong client id or secret in the Basic header".to_owned(),
                );
            }
            None => {
                return bad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "no Basic client authentication".to_owned(),
                );
            }
        }
    } else if parts.headers.contains_key(AUTHORIZATION) {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "an Authorization header the documentation does not ask for".to_owned(),
        );
    }
    for (name, want) in t.fields {
        let expected = want_value(*want, &account);
        let got = form.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        match got {
            Some(v) if *v == expected => {}
            other => {
                let (status, error) = match (*name, want) {
                    ("grant_type", _) => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
                    (_, Want::ClientId | Want::ClientSecret) => {
                        (StatusCode::UNAUTHORIZED, "invalid_client")
                    }
                    _ => (StatusCode::BAD_REQUEST, "invalid_grant"),
                };
                let what = if other.is_some() {
                    "has the wrong value"
                } else {
                    "is missing"
                };
                return bad(status, error, format!("form field {name} {what}"));
            }
        }
    }
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let token = format!("{}-at-{n}-{:016x}", p.id, fastrand::u64(..));
    state
        .issued
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(token.clone(), p.id);
    state.with_stats(p.id, |s| s.tokens_issued += 1);
    reply(StatusCode::OK, &(t.reply)(&token))
}

fn api(state: &DocState, p: &DocProvider, headers: &HeaderMap, query: Option<&str>) -> Resp {
    let account = DocAccount::of(p.id);
    let auth = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let bearer = auth.and_then(|a| {
        let (scheme, rest) = a.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(rest)
    });
    let problem = match p.cred {
        ApiCred::IssuedBearer => match bearer {
            Some(t)
                if state
                    .issued
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(t)
                    == Some(&p.id) =>
            {
                None
            }
            Some(_) => Some("a bearer token this provider never issued".to_owned()),
            None => Some("no bearer token in Authorization".to_owned()),
        },
        ApiCred::StaticBearer => match bearer {
            Some(t) if t == account.key => None,
            Some(_) => Some("a wrong bearer token".to_owned()),
            None => Some("no bearer token in Authorization".to_owned()),
        },
        ApiCred::StaticHeader(name) => match headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(v) if v == account.key => None,
            Some(_) => Some(format!("a wrong value in {name}")),
            None => Some(format!("no {name} header")),
        },
        ApiCred::Basic(user) => {
            let user = user.map_or(account.user.clone(), str::to_owned);
            match basic_credentials(headers) {
                Some((u, pw)) if u == user && pw == account.key => None,
                Some(_) => Some("wrong Basic credentials".to_owned()),
                None => Some("no Basic credentials".to_owned()),
            }
        }
        ApiCred::Query(params) => {
            let pairs = parse_form(query.unwrap_or("").as_bytes());
            params.iter().find_map(|(name, want)| {
                let expected = want_value(*want, &account);
                match pairs.iter().find(|(k, _)| k == name) {
                    Some((_, v)) if *v == expected => None,
                    Some(_) => Some(format!("a wrong value in query parameter {name}")),
                    None => Some(format!("no query parameter {name}")),
                }
            })
        }
    };
    let problem = problem.or_else(|| {
        p.required_headers
            .iter()
            .find(|h| !headers.contains_key(**h))
            .map(|h| format!("no {h} header, which the documentation requires"))
    });
    let problem = problem.or_else(|| {
        p.required_values.iter().find_map(|(name, want)| {
            let expected = want_value(*want, &account);
            match headers.get(*name).and_then(|v| v.to_str().ok()) {
                Some(v) if v == expected => None,
                Some(_) => Some(format!("a wrong value in {name}")),
                None => Some(format!(
                    "no {name} header, which the documentation requires"
                )),
            }
        })
    });
    match problem {
        None => {
            state.with_stats(p.id, |s| s.api_accepted += 1);
            reply(StatusCode::OK, &json!({"provider": p.id, "ok": true}))
        }
        Some(why) => {
            state.with_stats(p.id, |s| s.api_rejected += 1);
            state.reject(p.id, format!("api: {why}"));
            reply(StatusCode::UNAUTHORIZED, &json!({"error": why}))
        }
    }
}

/// `application/x-www-form-urlencoded` pairs, decoded (`+` is a space).
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let mut it = kv.splitn(2, |b| *b == b'=');
            let k = it.next().unwrap_or_default();
            let v = it.next().unwrap_or_default();
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// HTTP Basic user and password, each form-decoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((form_decode(u.as_bytes()), form_decode(p.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode(b"a+b%3Ac"), "a b:c");
        assert_eq!(form_decode(b"%"), "%");
        assert_eq!(form_decode(b"a%4"), "a%4");
        assert_eq!(form_decode(b"%41"), "A");
        assert_eq!(
            parse_form(b"grant_type=client_credentials&x="),
            vec![
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("x".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn every_host_is_served_once() {
        let h = hosts();
        let unique: HashSet<_> = h.iter().collect();
        assert_eq!(h.len(), unique.len());
        assert!(h.contains(&"accounts.spotify.com") && h.contains(&"api.spotify.com"));
    }
}
