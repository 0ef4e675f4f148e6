//! The client variants: `plain`, `tokenauth`, `mutex-baseline`, `no-cache`,
//! and `proxy` (a plain client through `tokenauth proxy`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use http::{Extensions, HeaderValue};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use secrecy::ExposeSecret as _;
use tokenauth_core::{Connection, Providers, TokenAuth};
use tokenauth_emulator::{TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET};
use tokenauth_reqwest::MiddlewareExt as _;
use tokio::sync::{Mutex, Semaphore};
use url::Url;

use crate::proxy::ProxyProcess;

/// golang.org/x/oauth2's `expiryDelta`: a token counts as expired this long
/// before its expiry.
pub(crate) const MUTEX_EXPIRY_DELTA: Duration = Duration::from_secs(10);

/// A client variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    Plain,
    Tokenauth,
    MutexBaseline,
    NoCache,
    Proxy,
}

impl Variant {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Tokenauth => "tokenauth",
            Variant::MutexBaseline => "mutex-baseline",
            Variant::NoCache => "no-cache",
            Variant::Proxy => "proxy",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        [
            Variant::Plain,
            Variant::Tokenauth,
            Variant::MutexBaseline,
            Variant::NoCache,
            Variant::Proxy,
        ]
        .into_iter()
        .find(|v| v.name() == name)
    }

    /// First emulator tenant number of this variant: each variant has its
    /// own accounts, so no token is shared across variants.
    pub(crate) fn tenant_base(self) -> u64 {
        match self {
            Variant::Plain => 0,
            Variant::Tokenauth => 10_000_000,
            Variant::MutexBaseline => 20_000_000,
            Variant::NoCache => 30_000_000,
            Variant::Proxy => 40_000_000,
        }
    }
}

/// The emulator's URLs.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) base: String,
    pub(crate) api: Url,
    pub(crate) token: Url,
    /// A control URL that needs no credential (HTTP connection warm-up).
    pub(crate) control: Url,
}

impl Target {
    pub(crate) fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Target {
            base: base.to_owned(),
            api: Url::parse(&format!("{base}/2ba/1/json/Product/DetailsForProduct"))?,
            token: Url::parse(&format!("{base}/2ba-authorize/OAuth/Token"))?,
            control: Url::parse(&format!("{base}/_emulator/faults"))?,
        })
    }

    /// The provider description tokenauth is given: the emulated 2BA on
    /// loopback, password grant, expiry from `expires_in`, default skew.
    pub(crate) fn provider_toml(&self) -> String {
        let base = &self.base;
        format!(
            r#"[providers.bench]
name = "2BA (emulated, tokenauth-bench)"
api = ["{base}/2ba/"]

[providers.bench.inputs]
username = {{}}
password = {{ secret = true }}
client_id = {{}}
client_secret = {{ secret = true }}

[providers.bench.login]
url = "{base}/2ba-authorize/OAuth/Token"
body = "form"

[providers.bench.login.fields]
grant_type = "password"
username = "{{{{ inputs.username }}}}"
password = "{{{{ inputs.password }}}}"
client_id = "{{{{ inputs.client_id }}}}"
client_secret = "{{{{ inputs.client_secret }}}}"

[providers.bench.response]
access_token = "/access_token"
expires_in = "/expires_in"

[providers.bench.inject]
header = "Authorization"
value = "Bearer {{{{ token.access }}}}"
"#
        )
    }
}

/// The one client configuration every variant uses (and tokenauth's engine
/// for its token requests).
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// A token as a hand-written client keeps it.
#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) header: HeaderValue,
    pub(crate) expiry: Instant,
}

/// One password-grant token request for emulator tenant `n`, as
/// golang.org/x/oauth2 would make it; expiry = reply time + `expires_in`.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    target: &Target,
    n: u64,
) -> anyhow::Result<Token> {
    // Every value is [A-Za-z0-9-]: nothing to percent-encode.
    let body = format!(
        "grant_type=password&username=tenant-{n}&password=tenant-{n}-secret\
         &client_id={TWOBA_DEMO_CLIENT_ID}&client_secret={TWOBA_DEMO_CLIENT_SECRET}"
    );
    let reply = http
        .post(target.token.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let status = reply.status();
    if status != 200 {
        bail!("token request: status {status}");
    }
    let json: serde_json::Value = reply.json().await?;
    let access = json["access_token"]
        .as_str()
        .context("token reply without access_token")?;
    let expires_in = json["expires_in"]
        .as_u64()
        .context("token reply without expires_in")?;
    let mut header = HeaderValue::from_str(&format!("Bearer {access}"))?;
    header.set_sensitive(true);
    Ok(Token {
        header,
        expiry: Instant::now() + Duration::from_secs(expires_in),
    })
}

/// golang.org/x/oauth2's `ReuseTokenSource`: one mutex, held while the
/// token is checked and, if it is not valid, while a new one is fetched.
pub(crate) struct ReuseTokenSource {
    tenant: u64,
    token: Mutex<Option<Token>>,
}

impl ReuseTokenSource {
    fn new(tenant: u64) -> Self {
        ReuseTokenSource {
            tenant,
            token: Mutex::new(None),
        }
    }

    async fn header(&self, http: &reqwest::Client, target: &Target) -> anyhow::Result<HeaderValue> {
        let mut slot = self.token.lock().await;
        if let Some(t) = &*slot {
            // Go: valid unless expiry - expiryDelta is before now.
            if Instant::now() + MUTEX_EXPIRY_DELTA <= t.expiry {
                return Ok(t.header.clone());
            }
        }
        let fresh = fetch_token(http, target, self.tenant).await?;
        let header = fresh.header.clone();
        *slot = Some(fresh);
        Ok(header)
    }
}

/// Holds a permit of the burst's in-flight limit until the response headers.
struct InFlightLimit(Arc<Semaphore>);

#[async_trait]
impl Middleware for InFlightLimit {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let _permit = self.0.acquire().await;
        next.run(req, extensions).await
    }
}

/// The outcome of one request.
pub(crate) enum Outcome {
    Status(u16),
    Failed,
}

/// A ready-to-use variant over `connections` connections.
pub(crate) enum Client {
    Plain {
        http: reqwest::Client,
        header: HeaderValue,
        limit: Option<Arc<Semaphore>>,
    },
    Tokenauth {
        http: ClientWithMiddleware,
        auth: TokenAuth,
        connections: Vec<Connection>,
    },
    MutexBaseline {
        http: reqwest::Client,
        sources: Vec<ReuseTokenSource>,
        limit: Option<Arc<Semaphore>>,
    },
    NoCache {
        http: reqwest::Client,
        limit: Option<Arc<Semaphore>>,
    },
    /// A plain client calling `tokenauth proxy` (another process) with the
    /// key and the connection header.
    Proxy {
        http: reqwest::Client,
        url: Url,
        key: HeaderValue,
        connection: HeaderValue,
        process: Arc<ProxyProcess>,
    },
}

/// What [`Client::build`] needs.
pub(crate) struct Setup<'a> {
    pub(crate) target: &'a Target,
    pub(crate) connections: usize,
    /// `plain`'s fixed header.
    pub(crate) plain_header: &'a HeaderValue,
    /// The burst's in-flight limit, if any.
    pub(crate) limit: Option<Arc<Semaphore>>,
    /// The running proxy (`proxy` only).
    pub(crate) proxy: Option<Arc<ProxyProcess>>,
}

impl Client {
    /// A fresh variant: empty caches (nothing fetched yet).
    pub(crate) fn build(
        variant: Variant,
        http: &reqwest::Client,
        s: &Setup<'_>,
    ) -> anyhow::Result<Self> {
        let base = variant.tenant_base();
        Ok(match variant {
            Variant::Plain => Client::Plain {
                http: http.clone(),
                header: s.plain_header.clone(),
                limit: s.limit.clone(),
            },
            Variant::Tokenauth => {
                let providers =
                    Providers::from_toml("tokenauth-bench.toml", &s.target.provider_toml())
                        .map_err(|e| anyhow::anyhow!("the generated provider description: {e}"))?;
                let auth = TokenAuth::builder(providers)
                    .http_client(http.clone())
                    // Room for every connection: nothing is evicted.
                    .max_connections(s.connections as u64 + 1024)
                    .build()?;
                let mut builder =
                    reqwest_middleware::ClientBuilder::new(http.clone()).with(auth.middleware());
                if let Some(limit) = &s.limit {
                    builder = builder.with(InFlightLimit(limit.clone()));
                }
                let connections = (0..s.connections as u64)
                    .map(|i| tenant_connection(base + i))
                    .collect();
                Client::Tokenauth {
                    http: builder.build(),
                    auth,
                    connections,
                }
            }
            Variant::MutexBaseline => Client::MutexBaseline {
                http: http.clone(),
                sources: (0..s.connections as u64)
                    .map(|i| ReuseTokenSource::new(base + i))
                    .collect(),
                limit: s.limit.clone(),
            },
            Variant::NoCache => Client::NoCache {
                http: http.clone(),
                limit: s.limit.clone(),
            },
            Variant::Proxy => {
                let process = s
                    .proxy
                    .clone()
                    .context("the proxy variant needs a running `tokenauth proxy`")?;
                let path = s.target.api.path();
                let mut key = HeaderValue::from_str(&process.key)?;
                key.set_sensitive(true);
                Client::Proxy {
                    http: http.clone(),
                    url: Url::parse(&format!(
                        "{}/bench{}",
                        process.url,
                        path.trim_start_matches("/2ba")
                    ))?,
                    key,
                    connection: HeaderValue::from_static(crate::proxy::CONNECTION),
                    process,
                }
            }
        })
    }

    /// One API request for connection `conn` (modulo the connections),
    /// body read to the end.
    pub(crate) async fn call(&self, target: &Target, conn: usize) -> Outcome {
        match self.try_call(target, conn).await {
            Ok(status) => Outcome::Status(status),
            Err(_) => Outcome::Failed,
        }
    }

    async fn try_call(&self, target: &Target, conn: usize) -> anyhow::Result<u16> {
        let reply = match self {
            Client::Plain {
                http,
                header,
                limit,
            } => {
                let req = http
                    .get(target.api.clone())
                    .header(http::header::AUTHORIZATION, header.clone());
                send_limited(req, limit.as_ref()).await?
            }
            Client::Tokenauth {
                http, connections, ..
            } => {
                let c = &connections[conn % connections.len()];
                http.get(target.api.clone())
                    .with_extension(c.clone())
                    .send()
                    .await?
            }
            Client::MutexBaseline {
                http,
                sources,
                limit,
            } => {
                let header = sources[conn % sources.len()].header(http, target).await?;
                let req = http
                    .get(target.api.clone())
                    .header(http::header::AUTHORIZATION, header);
                send_limited(req, limit.as_ref()).await?
            }
            Client::Proxy {
                http,
                url,
                key,
                connection,
                ..
            } => {
                http.get(url.clone())
                    .header("tokenauth-key", key.clone())
                    .header("tokenauth-connection", connection.clone())
                    .send()
                    .await?
            }
            Client::NoCache { http, limit } => {
                let token = {
                    let _permit = match limit {
                        Some(l) => Some(l.acquire().await?),
                        None => None,
                    };
                    fetch_token(http, target, Variant::NoCache.tenant_base()).await?
                };
                let req = http
                    .get(target.api.clone())
                    .header(http::header::AUTHORIZATION, token.header);
                send_limited(req, limit.as_ref()).await?
            }
        };
        let status = reply.status().as_u16();
        reply.bytes().await?;
        Ok(status)
    }

    /// The length of the access token cached for the first connection
    /// (`tokenauth` and `mutex-baseline`, after a request on it).
    pub(crate) async fn token_bytes(&self) -> Option<u64> {
        let len = match self {
            Client::Tokenauth {
                auth, connections, ..
            } => {
                let handle = auth.provider("bench").ok()?;
                let credential = handle.cached(connections.first())?;
                credential.access_token()?.expose_secret().len()
            }
            Client::MutexBaseline { sources, .. } => {
                let slot = sources.first()?.token.lock().await;
                let header = slot.as_ref()?.header.as_bytes();
                header.strip_prefix(b"Bearer ")?.len()
            }
            Client::Plain { .. } | Client::NoCache { .. } | Client::Proxy { .. } => return None,
        };
        u64::try_from(len).ok()
    }

    /// CPU time spent so far by a process of the variant's own besides the
    /// harness (the `proxy` variant's `tokenauth proxy`).
    pub(crate) fn other_process_cpu(&self) -> Option<Duration> {
        match self {
            Client::Proxy { process, .. } => process.cpu(),
            _ => None,
        }
    }

    /// The engine, for `tokenauth`.
    pub(crate) fn auth(&self) -> Option<&TokenAuth> {
        match self {
            Client::Tokenauth { auth, .. } => Some(auth),
            _ => None,
        }
    }
}

async fn send_limited(
    req: reqwest::RequestBuilder,
    limit: Option<&Arc<Semaphore>>,
) -> anyhow::Result<reqwest::Response> {
    let _permit = match limit {
        Some(l) => Some(l.acquire().await?),
        None => None,
    };
    Ok(req.send().await?)
}

/// The connection of emulator tenant `n` (created by the caller, as a
/// workflow engine would hold them).
fn tenant_connection(n: u64) -> Connection {
    Connection::new(format!("tenant-{n}"))
        .with_input("username", format!("tenant-{n}"))
        .with_secret("password", format!("tenant-{n}-secret"))
        .with_input("client_id", TWOBA_DEMO_CLIENT_ID)
        .with_secret("client_secret", TWOBA_DEMO_CLIENT_SECRET)
}

/// `plain`'s header: one token fetched with a 24 h lifetime (the caller sets
/// the emulator's lifetime around this).
pub(crate) async fn plain_header(
    http: &reqwest::Client,
    target: &Target,
) -> anyhow::Result<HeaderValue> {
    Ok(fetch_token(http, target, Variant::Plain.tenant_base())
        .await?
        .header)
}
