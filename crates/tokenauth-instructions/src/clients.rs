//! The measured clients: one process per (variant, request count), run
//! under callgrind by the runner. Each builds its client, warms it up (HTTP
//! connections open, the token fetched and cached), then sends exactly
//! `--requests` requests from `--tasks` tasks on a current-thread tokio
//! runtime, so every instruction of the process is the client's and the
//! count does not depend on how threads were scheduled.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokenauth_core::request::Transport;
use tokenauth_core::{Providers, TokenAuth};
use tokenauth_reqwest::{ClientBuilderExt as _, MiddlewareExt as _};
use tokenauth_tower::LayerExt as _;
use tower::{Service as _, ServiceExt as _};

use crate::Variant;
use crate::server::bearer;

/// The provider the tokenauth variants use: a client-credentials login at
/// the server's `/token`, a bearer header for `/api/`.
pub(crate) fn providers_toml(port: u16) -> String {
    format!(
        r#"
[providers.bench]
api = ["http://127.0.0.1:{port}/api/"]
inputs.client_id = {{ env = "TOKENAUTH_INSTRUCTIONS_CLIENT_ID", default = "bench" }}

[providers.bench.login]
url = "http://127.0.0.1:{port}/token"
body = "form"
fields = {{ grant_type = "client_credentials", client_id = "{{{{ inputs.client_id }}}}" }}

[providers.bench.response]
access_token = "/access_token"
expires_in = "/expires_in"

[providers.bench.inject]
header = "Authorization"
value = "Bearer {{{{ token.access }}}}"
"#
    )
}

fn engine(port: u16) -> anyhow::Result<TokenAuth> {
    let providers = Providers::from_toml("bench.toml", &providers_toml(port))?;
    Ok(TokenAuth::builder(providers).build()?)
}

/// Providers described before the measured one in `engine-catalog`: with
/// written-out prefixes, and with a per-tenant host (`{{ inputs.tenant }}`).
const CATALOG: usize = 300;
const TEMPLATED: usize = 100;

/// [`engine`] in a catalog: [`CATALOG`] API-key providers on hosts of
/// their own and [`TEMPLATED`] with a per-tenant host, all on the measured
/// provider's port (as every https API is on 443) and with paths longer
/// than its own (so that, longest prefix first, they all come before it),
/// then the measured one. Plain http: this binary has no TLS backend, and
/// routing reads the scheme alike.
fn engine_in_catalog(port: u16) -> anyhow::Result<TokenAuth> {
    let mut toml = String::new();
    for n in 0..CATALOG + TEMPLATED {
        let (api, tenant) = if n < CATALOG {
            let version = n % 3 + 1;
            (
                format!("http://api{n}.example.com:{port}/v{version}/things/"),
                "",
            )
        } else {
            (
                format!("http://{{{{ inputs.tenant }}}}.svc{n}.example.com:{port}/api/v1/"),
                "inputs.tenant = { env = \"TENANT_NAME\", default = \"acme\" }\n",
            )
        };
        toml.push_str(&format!(
            r#"
[providers.catalog-{n}]
api = ["{api}"]
allow_insecure_http = true
{tenant}inputs.key = {{ env = "CATALOG_{n}_KEY", default = "unused" }}
inject = {{ header = "X-Api-Key", value = "{{{{ inputs.key }}}}" }}
"#
        ));
    }
    toml.push_str(&providers_toml(port));
    let providers = Providers::from_toml("catalog.toml", &toml)?;
    Ok(TokenAuth::builder(providers).build()?)
}

/// The reqwest client every reqwest variant starts from: no proxy from the
/// environment (the server is on loopback), everything else reqwest's
/// defaults.
fn reqwest_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy()
}

type HyperUtil = HyperClient<HttpConnector, Empty<Bytes>>;

fn hyper_util() -> HyperUtil {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

/// One variant's client, built once and shared by the tasks.
enum Client {
    Reqwest(reqwest::Client, HeaderValue),
    Middleware(
        reqwest_middleware::ClientWithMiddleware,
        Option<HeaderValue>,
    ),
    Hyper(HyperUtil, HeaderValue),
    Tower(tokenauth_tower::Auth<HyperUtil>),
    /// No HTTP: an `http::Request` built and handed to a transport that
    /// answers at once; with the engine (`Some`) or the fixed header.
    Engine(Option<TokenAuth>, HeaderValue),
}

impl Client {
    fn new(variant: Variant, port: u16) -> anyhow::Result<Self> {
        let fixed = HeaderValue::try_from(bearer())?;
        Ok(match variant {
            Variant::Reqwest => Client::Reqwest(reqwest_builder().build()?, fixed),
            Variant::ReqwestMiddleware => {
                let client = reqwest_middleware::ClientBuilder::new(reqwest_builder().build()?);
                Client::Middleware(client.build(), Some(fixed))
            }
            Variant::TokenauthReqwest => {
                // As `TokenAuth::client` builds it: the scoped redirect policy.
                let auth = engine(port)?;
                let http = reqwest_builder().scoped_to(&auth).build()?;
                let client = reqwest_middleware::ClientBuilder::new(http).with(auth.middleware());
                Client::Middleware(client.build(), None)
            }
            Variant::HyperUtil => Client::Hyper(hyper_util(), fixed),
            Variant::TokenauthTower => {
                let auth = engine(port)?;
                Client::Tower(
                    tower::ServiceBuilder::new()
                        .layer(auth.layer())
                        .service(hyper_util()),
                )
            }
            Variant::Request => Client::Engine(None, fixed),
            Variant::Engine => Client::Engine(Some(engine(port)?), fixed),
            Variant::EngineCatalog => Client::Engine(Some(engine_in_catalog(port)?), fixed),
        })
    }

    /// One request; an error for anything but `200`.
    async fn send(&self, url: &str) -> anyhow::Result<()> {
        let status = match self {
            Client::Reqwest(client, fixed) => {
                let response = client
                    .get(url)
                    .header(http::header::AUTHORIZATION, fixed.clone())
                    .send()
                    .await?;
                let status = response.status();
                response.bytes().await?;
                status
            }
            Client::Middleware(client, fixed) => {
                let mut request = client.get(url);
                if let Some(fixed) = fixed {
                    request = request.header(http::header::AUTHORIZATION, fixed.clone());
                }
                let response = request.send().await?;
                let status = response.status();
                response.bytes().await?;
                status
            }
            Client::Hyper(client, fixed) => {
                let request = http::Request::get(url)
                    .header(http::header::AUTHORIZATION, fixed.clone())
                    .body(Empty::new())?;
                // Through tower's `Service`, as the tower variant is.
                let response = client.clone().ready().await?.call(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                status
            }
            Client::Tower(service) => {
                let request = http::Request::get(url).body(Empty::new())?;
                let response = service.clone().ready().await?.call(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                status
            }
            Client::Engine(auth, fixed) => {
                let request = http::Request::get(url).body(())?;
                let response = match auth {
                    Some(auth) => match auth.exchange(request, None, None) {
                        Ok(exchange) => exchange.send(&mut Answer).await?,
                        Err(_) => bail!("the request was not routed to the provider"),
                    },
                    None => {
                        let mut request = request;
                        request
                            .headers_mut()
                            .insert(http::header::AUTHORIZATION, fixed.clone());
                        Answer.send(request).await?
                    }
                };
                response.status()
            }
        };
        if status != http::StatusCode::OK {
            bail!("{url} answered {status}");
        }
        Ok(())
    }
}

/// The engine variants' "HTTP client": answers `200` to a request that
/// carries the bearer token, `401` to any other, at once.
struct Answer;

impl Transport for Answer {
    type Request = http::Request<()>;
    type Response = http::Response<()>;
    type Error = tokenauth_core::Error;
    type Kept = Self::Request;

    async fn send(&mut self, request: Self::Request) -> Result<Self::Response, Self::Error> {
        let authorized = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes().ends_with(crate::server::TOKEN.as_bytes()));
        let mut response = http::Response::new(());
        if !authorized {
            *response.status_mut() = http::StatusCode::UNAUTHORIZED;
        }
        Ok(response)
    }

    fn keep_for_retry(&self, request: &Self::Request, kept: &mut Option<Self::Request>) {
        let mut copy = http::Request::new(());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.headers_mut() = request.headers().clone();
        *kept = Some(copy);
    }

    fn retry_request(&self, kept: Self::Request) -> Option<Self::Request> {
        Some(kept)
    }

    fn auth_error(&self, error: tokenauth_core::Error) -> Self::Error {
        error
    }
}

/// `tokenauth-instructions --client VARIANT`: warm up, then send `requests`
/// requests from `tasks` tasks.
pub(crate) fn run(variant: Variant, port: u16, requests: u64, tasks: u64) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = Arc::new(Client::new(variant, port)?);
        let url: Arc<str> = format!("http://127.0.0.1:{port}/api/items").into();
        // Every task's HTTP connection opened, the token fetched.
        round(&client, &url, tasks * 4, tasks)
            .await
            .context("warm-up")?;
        round(&client, &url, requests, tasks).await
    })
}

/// `requests` requests, spread over `tasks` concurrent tasks.
async fn round(
    client: &Arc<Client>,
    url: &Arc<str>,
    requests: u64,
    tasks: u64,
) -> anyhow::Result<()> {
    let tasks = tasks.clamp(1, requests.max(1));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (client, url) = (Arc::clone(client), Arc::clone(url));
            let share = requests / tasks + u64::from(t < requests % tasks);
            tokio::spawn(async move {
                for _ in 0..share {
                    client.send(&url).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.await??;
    }
    Ok(())
}

/// Sizes of the futures an authenticated request lives in (`--sizes`,
/// with the server of `--port` running): every byte of them is copied when
/// a future moves, and a boxed one over 1 KiB leaves the allocator's fast
/// path.
pub(crate) fn print_future_sizes(port: u16) -> anyhow::Result<()> {
    /// Calls the middleware it wraps and reports the size of its future.
    struct Probe(tokenauth_reqwest::AuthMiddleware);

    #[async_trait::async_trait]
    impl reqwest_middleware::Middleware for Probe {
        async fn handle(
            &self,
            req: reqwest::Request,
            extensions: &mut http::Extensions,
            next: reqwest_middleware::Next<'_>,
        ) -> reqwest_middleware::Result<reqwest::Response> {
            let future = self.0.handle(req, extensions, next);
            // The first request fetches the token, the next ones hit.
            let kind = if self.0.auth().stats().misses == 0 {
                "first request, token fetched"
            } else {
                "cache hit"
            };
            println!(
                "tokenauth's reqwest middleware future ({kind}): {} bytes",
                std::mem::size_of_val(&*future)
            );
            future.await
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let auth = engine(port)?;
        let client = reqwest_middleware::ClientBuilder::new(reqwest_builder().build()?)
            .with(Probe(auth.middleware()))
            .build();
        for _ in 0..2 {
            client
                .get(format!("http://127.0.0.1:{port}/api/items"))
                .send()
                .await?;
        }
        println!(
            "reqwest::Request: {} bytes",
            std::mem::size_of::<reqwest::Request>()
        );
        println!(
            "reqwest::Response: {} bytes",
            std::mem::size_of::<reqwest::Response>()
        );
        println!(
            "tokenauth_core::Error: {} bytes",
            std::mem::size_of::<tokenauth_core::Error>()
        );
        println!(
            "reqwest_middleware::Error: {} bytes",
            std::mem::size_of::<reqwest_middleware::Error>()
        );
        println!(
            "Exchange<reqwest::Request>: {} bytes",
            std::mem::size_of::<tokenauth_core::request::Exchange<'static, reqwest::Request>>()
        );
        println!(
            "Connection: {} bytes",
            std::mem::size_of::<tokenauth_core::Connection>()
        );
        type TowerService = tokenauth_tower::Auth<HyperUtil>;
        type TowerFuture = <TowerService as tower::Service<http::Request<Empty<Bytes>>>>::Future;
        println!(
            "tokenauth's tower future (hyper-util client): {} bytes",
            std::mem::size_of::<TowerFuture>()
        );
        println!(
            "hyper-util client: {} bytes",
            std::mem::size_of::<HyperUtil>()
        );
        anyhow::Ok(())
    })
}
