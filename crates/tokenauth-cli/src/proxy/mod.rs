//! `tokenauth proxy`: the same `providers.toml` for workers in any language.
//!
//! A hyper server on loopback; each request `/{provider}/{rest}` goes, with
//! the provider's credential, to the provider's API base joined with `rest`
//! (see [`address`]), through tokenauth's tower layer on a hyper-util
//! client: the same engine, cache, store and renew-and-retry rules as the
//! library. A worker calls
//!
//! ```text
//! curl -H "Tokenauth-Key: $TOKENAUTH_PROXY_KEY" -H "Tokenauth-Connection: tenant-a" \
//!     http://127.0.0.1:8787/reobtimaal/v1/projecten
//! ```
//!
//! and never sees a token. The proxy's own answers (errors, health, stats)
//! are in [`reply`]; connections in [`connections`]; the request flow in
//! [`forward`].

mod address;
mod body;
mod connections;
mod forward;
mod key;
mod reply;
mod upstream;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Args;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokenauth_core::TokenAuth;
use tokenauth_emulator::{Emulator, EmulatorConfig};
use tokenauth_tower::{Auth, AuthLayer};
use tower_layer::Layer as _;

use crate::{Global, Outcome};
use body::BufferedOnly;
use connections::Connections;
use key::{Key, MIN_KEY_LEN};

/// `tokenauth proxy`'s options.
#[derive(Args, Debug)]
pub(crate) struct ProxyArgs {
    /// The address to listen on. Loopback by default; any other address
    /// requires the key ($TOKENAUTH_PROXY_KEY).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,

    /// The named connections (`Tokenauth-Connection: NAME`): a TOML file
    /// of `[connections.NAME]` tables with `provider` and `inputs` [default:
    /// $TOKENAUTH_CONNECTIONS, else ./connections.toml when it exists]
    #[arg(long, value_name = "FILE", env = "TOKENAUTH_CONNECTIONS")]
    connections: Option<PathBuf>,

    /// Serve without a key: any local process may use the credentials. Only
    /// on a loopback address; requests from web pages (a non-loopback
    /// `Host`, an `Origin`, a `Sec-Fetch-Site` other than `none`) are
    /// refused with 403.
    #[arg(long)]
    no_key: bool,

    /// Request bodies up to this many bytes are read whole before they are
    /// sent, so a request whose credential is rejected can be renewed and
    /// sent again; larger ones stream through and are not retried.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    retry_body_limit: usize,

    /// How long to wait for a TCP (and TLS) connection to the API.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,

    /// How long to wait for the API's response headers (the token, when it
    /// must be fetched, included): 504 after. A request body that is read
    /// whole (see --retry-body-limit) must arrive within it too: 408 after.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// Serve the built-in emulator's fake REOBtimaal, 2BA and BRO instead of
    /// the real hosts (started in this process, on loopback), with its demo
    /// accounts as the default connections: try the proxy with no
    /// credentials and no network.
    #[arg(long)]
    emulator: bool,

    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
}

/// Everything a request needs, shared by all connections.
pub(crate) struct Proxy {
    auth: TokenAuth,
    /// The tower layer over the hyper-util client (cloned per request: an
    /// `Arc` bump).
    service: Auth<upstream::Upstream, BufferedOnly>,
    connections: Connections,
    key: Option<Key>,
    retry_body_limit: usize,
    timeout: Duration,
    counters: HashMap<String, ProviderCounters>,
    started: Instant,
}

/// What the proxy saw per provider, for `/_tokenauth/stats`.
#[derive(Default)]
struct ProviderCounters {
    requests: AtomicU64,
    /// API responses by class: 1xx..5xx.
    responses: [AtomicU64; 5],
    /// Requests the proxy answered itself (an error of its own).
    proxy_errors: AtomicU64,
}

impl Proxy {
    fn count(&self, provider: &str, status: u16, own_error: bool) {
        let Some(c) = self.counters.get(provider) else {
            return;
        };
        c.requests.fetch_add(1, Relaxed);
        if own_error {
            c.proxy_errors.fetch_add(1, Relaxed);
        } else if let Some(class) = c.responses.get(usize::from(status / 100).wrapping_sub(1)) {
            class.fetch_add(1, Relaxed);
        }
    }

    /// `GET /_tokenauth/stats`: the engine's counters in total and, per
    /// provider, the proxy's requests by status class and the provider's
    /// share of the engine's counters.
    fn stats(&self) -> serde_json::Value {
        let s = self.auth.stats();
        let providers: serde_json::Map<String, serde_json::Value> = self
            .counters
            .iter()
            .map(|(id, c)| {
                let r = |i: usize| c.responses[i].load(Relaxed);
                let engine = self.auth.provider_stats(id).unwrap_or_default();
                (
                    id.clone(),
                    serde_json::json!({
                        "requests": c.requests.load(Relaxed),
                        "responses": {"1xx": r(0), "2xx": r(1), "3xx": r(2), "4xx": r(3), "5xx": r(4)},
                        "proxy_errors": c.proxy_errors.load(Relaxed),
                        "engine": {
                            "misses": engine.misses,
                            "fetches": engine.fetches,
                            "token_requests": engine.token_requests,
                            "logins": engine.logins,
                            "refreshes": engine.refreshes,
                            "renewals": engine.renewals,
                            "failures": engine.failures,
                            "invalidations": engine.invalidations,
                        },
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "uptime_seconds": self.started.elapsed().as_secs(),
            "engine": {
                "hits": s.hits,
                "misses": s.misses,
                "fetches": s.fetches,
                "token_requests": s.token_requests,
                "logins": s.logins,
                "refreshes": s.refreshes,
                "renewals": s.renewals,
                "failures": s.failures,
                "cached_errors": s.cached_errors,
                "invalidations": s.invalidations,
                "adopted": s.adopted,
                "lease_waits": s.lease_waits,
                "degraded_fetches": s.degraded_fetches,
            },
            "providers": providers,
        })
    }
}

/// `tokenauth proxy`.
pub(crate) async fn run(g: &Global, args: &ProxyArgs) -> Outcome {
    let key = match key_policy(args) {
        Ok(key) => key,
        Err(message) => {
            eprintln!("error: {message}");
            return Outcome::InvalidInput;
        }
    };
    let providers = match g.load() {
        Ok(p) => p,
        Err(o) => return o,
    };
    let connections = match load_connections(args, &providers) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let counters = providers
        .ids()
        .map(|id| (id.to_owned(), ProviderCounters::default()))
        .collect();
    let ids = providers.ids().collect::<Vec<_>>().join(", ");
    let mut reach = match upstream::Reach::from_global(g) {
        Ok(r) => r,
        Err(o) => return o,
    };
    let mut connections = connections;
    if args.emulator && g.cacert.is_some() {
        eprintln!(
            "warning: --emulator trusts only the emulator's CA (its hosts resolve to it): --cacert is not used"
        );
    }
    let (auth, _emulator) = if args.emulator {
        let emulator = match emulated(&mut reach).await {
            Ok(e) => e,
            Err(o) => return o,
        };
        connections = connections
            .with_defaults(crate::demo::demo_connections().map(|(id, c)| (id.to_owned(), c)));
        match emulated_engine(g, providers, &emulator).await {
            Ok(auth) => (auth, Some(emulator)),
            Err(o) => return o,
        }
    } else {
        match g.engine(providers).await {
            Ok(auth) => (auth, None),
            Err(o) => return o,
        }
    };
    let client = match upstream::client(reach, args.connect_timeout) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let service = AuthLayer::new(auth.clone())
        .clone_body(BufferedOnly)
        .layer(client);
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {}: {e} (another process on that port? pick one with --listen 127.0.0.1:PORT)",
                args.listen
            );
            return Outcome::InvalidInput;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    let proxy = Arc::new(Proxy {
        auth,
        service,
        connections,
        key,
        retry_body_limit: args.retry_body_limit,
        timeout: args.timeout,
        counters,
        started: Instant::now(),
    });
    // The first line on stdout: scripts (and the tests) read the address.
    println!("tokenauth proxy listening on http://{addr}");
    eprintln!(
        "providers: {ids}; connections from the file: {}; key: {}; GET /_tokenauth/health, /_tokenauth/stats",
        proxy.connections.len(),
        if proxy.key.is_some() {
            "required (Proxy-Authorization: Bearer … or Tokenauth-Key: …)"
        } else {
            "none (--no-key)"
        }
    );
    if args.emulator {
        let key = if proxy.key.is_some() {
            "-H \"Tokenauth-Key: $TOKENAUTH_PROXY_KEY\" "
        } else {
            ""
        };
        eprintln!(
            "--emulator: REOBtimaal, 2BA and BRO are emulated on 127.0.0.1 with fake accounts; try:\n  curl {key}http://{addr}/reobtimaal/v1/projecten\n  curl {key}http://{addr}/twoba/1/json/Product/DetailsForProduct"
        );
    }
    serve(listener, proxy, args.shutdown_grace).await
}

/// `--emulator`: the emulator on loopback with TLS; the real host names of
/// the seed providers resolve to it and only its CA is trusted.
async fn emulated(reach: &mut upstream::Reach) -> Result<Emulator, Outcome> {
    let emulator = Emulator::start(EmulatorConfig::default().tls(true))
        .await
        .map_err(|e| {
            eprintln!("error: cannot start the emulator on 127.0.0.1: {e}");
            Outcome::AuthFailure
        })?;
    let Some(ca) = emulator.ca_cert_pem() else {
        eprintln!("error: the emulator has no TLS certificate");
        return Err(Outcome::AuthFailure);
    };
    reach.roots = Some((ca.as_bytes().to_vec(), "the emulator's CA".to_owned()));
    for (host, addr) in emulator.host_overrides() {
        reach.overrides.insert(host.to_owned(), addr);
    }
    Ok(emulator)
}

/// The engine of `--emulator`: token requests go to the emulator too.
async fn emulated_engine(
    g: &Global,
    providers: tokenauth_core::Providers,
    emulator: &Emulator,
) -> Result<TokenAuth, Outcome> {
    let Some(http) = emulator.reqwest_client_builder() else {
        eprintln!("error: the emulator's TLS certificate is unusable");
        return Err(Outcome::AuthFailure);
    };
    let mut builder = TokenAuth::builder(providers).http_client_builder(http);
    if let Some(store) = g.token_store().await? {
        builder = builder.store(store);
    }
    builder.build().map_err(|e| crate::common::report(&e))
}

/// The key from `$TOKENAUTH_PROXY_KEY`, or `None` with `--no-key` on a
/// loopback address; anything else is refused with what to do.
fn key_policy(args: &ProxyArgs) -> Result<Option<Key>, String> {
    let key = std::env::var("TOKENAUTH_PROXY_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let loopback = args.listen.ip().is_loopback();
    match (key, args.no_key) {
        (Some(_), true) => Err(
            "--no-key was given but TOKENAUTH_PROXY_KEY is set: unset the variable, or drop --no-key to require the key"
                .to_owned(),
        ),
        (Some(key), false) if key.chars().count() < MIN_KEY_LEN => Err(format!(
            "TOKENAUTH_PROXY_KEY is {} characters long: use at least {MIN_KEY_LEN} random characters, e.g. `export TOKENAUTH_PROXY_KEY=$(openssl rand -hex 32)`",
            key.chars().count()
        )),
        (Some(key), false) => Ok(Some(Key::new(&key))),
        (None, true) if loopback => Ok(None),
        (None, true) => Err(format!(
            "--no-key is only allowed on a loopback address, not {}: anyone who can reach it could use the credentials; set TOKENAUTH_PROXY_KEY",
            args.listen
        )),
        (None, false) if loopback => Err(
            "set TOKENAUTH_PROXY_KEY to the key callers must present (e.g. `export TOKENAUTH_PROXY_KEY=$(openssl rand -hex 32)`), or pass --no-key to let every local process use the credentials"
                .to_owned(),
        ),
        (None, false) => Err(format!(
            "listening on {} (not loopback) requires a key: set TOKENAUTH_PROXY_KEY (e.g. `export TOKENAUTH_PROXY_KEY=$(openssl rand -hex 32)`)",
            args.listen
        )),
    }
}

/// `--connections`, else `./connections.toml` when it exists, else none.
fn load_connections(
    args: &ProxyArgs,
    providers: &tokenauth_core::Providers,
) -> Result<Connections, Outcome> {
    let path = match &args.connections {
        Some(path) => path.clone(),
        None => {
            let default = PathBuf::from("connections.toml");
            if !default.exists() {
                return Ok(Connections::none());
            }
            default
        }
    };
    match Connections::load(&path, providers) {
        Ok((connections, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            Ok(connections)
        }
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            Err(Outcome::InvalidInput)
        }
    }
}

/// Accepts connections until SIGTERM or Ctrl-C, then lets the requests in
/// flight finish (at most `grace`).
async fn serve(listener: tokio::net::TcpListener, proxy: Arc<Proxy>, grace: Duration) -> Outcome {
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let proxy = proxy.clone();
        let service = service_fn(move |request| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(forward::handle(&proxy, request).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    let in_flight = graceful.count();
    eprintln!(
        "shutting down: {in_flight} open connection(s) finish their requests first (at most {})",
        humantime::format_duration(grace)
    );
    tokio::select! {
        () = graceful.shutdown() => {
            eprintln!("stopped");
            Outcome::Ok
        }
        () = tokio::time::sleep(grace) => {
            eprintln!("stopped: requests still in flight after {} were cut off", humantime::format_duration(grace));
            Outcome::AuthFailure
        }
    }
}

/// SIGTERM (a service manager) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
            Err(e) => tracing::warn!("cannot watch SIGTERM ({e}); Ctrl-C still stops the proxy"),
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling at all: run until killed.
        std::future::pending::<()>().await;
    }
}
