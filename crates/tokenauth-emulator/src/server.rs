//! The [`Emulator`] handle and its listeners.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::shapes::{Shape, ShapeStats};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::EmulatorConfig;
use crate::faults::{FaultUpdate, Latency, ProviderKnobs, ReplyFault, ReplyFaultSpec, StatusFault};
use crate::handler;
use crate::host::{Host, Provider};
use crate::state::{RecordedRequest, State, lock};
use crate::stats::Stats;
use crate::tls;

/// A running emulator. Its methods are synchronous and can be called from
/// any thread. Dropping it (or [`Emulator::shutdown`]) stops the listeners
/// and closes all connections.
///
/// See the [crate documentation](crate) for the routing and an example.
pub struct Emulator {
    state: Arc<State>,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    ca_pem: Option<String>,
    shutdown: Option<watch::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("tls_addr", &self.tls_addr)
            .finish_non_exhaustive()
    }
}

struct Launched {
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    ca_pem: Option<String>,
    shutdown: watch::Sender<()>,
}

async fn launch(state: Arc<State>) -> io::Result<Launched> {
    let ip = state.config.bind_ip;
    if !ip.is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "tokenauth-emulator refuses to bind {ip}: it only listens on loopback \
                 (127.0.0.0/8 or ::1); use 127.0.0.1"
            ),
        ));
    }
    let plain = TcpListener::bind((ip, state.config.port)).await?;
    let addr = plain.local_addr()?;
    let tls = match state.config.tls_port {
        Some(port) => {
            let material = tls::generate()?;
            let listener = TcpListener::bind((ip, port)).await?;
            Some((listener, material))
        }
        None => None,
    };
    let (tx, rx) = watch::channel(());
    let mut tls_addr = None;
    let mut ca_pem = None;
    if let Some((listener, material)) = tls {
        tls_addr = Some(listener.local_addr()?);
        ca_pem = Some(material.ca_pem);
        let acceptor = TlsAcceptor::from(material.server_config);
        tokio::spawn(accept_loop(
            listener,
            Some(acceptor),
            state.clone(),
            rx.clone(),
        ));
    }
    tokio::spawn(accept_loop(plain, None, state, rx));
    Ok(Launched {
        addr,
        tls_addr,
        ca_pem,
        shutdown: tx,
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "tokenauth-emulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let conn = async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            serve(s, state).await;
                        }
                    }
                    None => serve(stream, state).await,
                }
            };
            tokio::select! {
                () = conn => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn serve<IO>(io: IO, state: Arc<State>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handler::handle(state.clone(), req));
    // An error here is a fault injected on purpose or a client that went away.
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

pub(crate) fn stats_of(state: &State) -> Stats {
    Stats {
        reobtimaal: state.provider(Provider::Reobtimaal).counters.snapshot(),
        twoba: state.provider(Provider::Twoba).counters.snapshot(),
        bro: state.provider(Provider::Bro).counters.snapshot(),
    }
}

impl Emulator {
    /// Starts the emulator on the current tokio runtime (its listeners and
    /// connections are tasks of that runtime).
    ///
    /// # Errors
    /// The bind address is not loopback (`InvalidInput`), a port is taken,
    /// or the TLS certificate could not be generated.
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let state = Arc::new(State::new(config));
        let launched = launch(state.clone()).await?;
        Ok(Emulator::new(state, launched, None))
    }

    fn new(state: Arc<State>, l: Launched, thread: Option<std::thread::JoinHandle<()>>) -> Self {
        Emulator {
            state,
            addr: l.addr,
            tls_addr: l.tls_addr,
            ca_pem: l.ca_pem,
            shutdown: Some(l.shutdown),
            thread,
        }
    }

    /// Starts the emulator on a dedicated multi-threaded tokio runtime with
    /// `worker_threads` workers (at least 1), running in its own thread; can
    /// be called from anywhere, inside or outside a runtime. Dropping the
    /// handle stops that runtime and joins its thread.
    ///
    /// # Errors
    /// As [`Emulator::start`], or the runtime could not be built.
    pub fn start_on_own_runtime(
        config: EmulatorConfig,
        worker_threads: usize,
    ) -> io::Result<Emulator> {
        let state = Arc::new(State::new(config));
        let (tx, rx) = std::sync::mpsc::channel::<io::Result<Launched>>();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("tokenauth-emulator".to_owned())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(worker_threads.max(1))
                    .thread_name("tokenauth-emulator-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    match launch(st).await {
                        Ok(l) => {
                            let mut stopped = l.shutdown.subscribe();
                            if tx.send(Ok(l)).is_ok() {
                                // Resolves when the handle drops the sender.
                                let _ = stopped.changed().await;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let l = rx
            .recv()
            .map_err(|_| io::Error::other("tokenauth-emulator: the server thread died"))??;
        Ok(Emulator::new(state, l, Some(thread)))
    }

    /// Stops the emulator (same as dropping it).
    pub fn shutdown(self) {}

    // ---------------------------------------------------------------- addresses

    /// Address of the plain HTTP/1.1 listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The plain-HTTP URL of `path` on `host` in path-prefix form, e.g.
    /// `url(Host::Reobtimaal, "/api/Token")` ->
    /// `http://127.0.0.1:PORT/reobtimaal/api/Token`.
    pub fn url(&self, host: Host, path: &str) -> String {
        format!("http://{}{}{}", self.addr, host.path_prefix(), path)
    }

    /// The real `https://` URL of `path` on `host`, e.g.
    /// `https://api.2ba.nl/1/json/...`; it reaches the TLS listener through
    /// a client configured with [`Emulator::host_overrides`] and
    /// [`Emulator::ca_cert_pem`].
    pub fn real_url(host: Host, path: &str) -> String {
        format!("https://{}{}", host.hostname(), path)
    }

    /// The plain-HTTP URL of `path` on a documented reply [`Shape`], e.g.
    /// `shape_url(Shape::Keystone, "/v3/auth/tokens")` ->
    /// `http://127.0.0.1:PORT/keystone/v3/auth/tokens`.
    pub fn shape_url(&self, shape: Shape, path: &str) -> String {
        format!("http://{}{}{}", self.addr, shape.path_prefix(), path)
    }

    /// A URL of the device grant fixture: `device_url("/oauth/token")` ->
    /// `http://127.0.0.1:PORT/device/oauth/token`.
    pub fn device_url(&self, path: &str) -> String {
        format!(
            "http://{}{}{}",
            self.addr,
            crate::device::DEVICE_PREFIX,
            path
        )
    }

    /// The device fixture's counters and poll log.
    pub fn device_stats(&self) -> crate::device::DeviceStats {
        self.state.device.stats()
    }

    /// The polling interval the device fixture asks for (5 s by default;
    /// a sub-second one is sent as a fraction of a second).
    pub fn set_device_interval(&self, interval: Duration) {
        self.state.device.set_interval(interval);
    }

    /// How long a device code lives (10 minutes by default).
    pub fn set_device_code_lifetime(&self, lifetime: Duration) {
        self.state.device.set_code_lifetime(lifetime);
    }

    /// Answers the next poll of a pending or approved code with `slow_down`
    /// (and adds 5 s to its interval), once.
    pub fn device_slow_down_once(&self) {
        self.state.device.slow_down_once();
    }

    /// The user code of the newest pending device code, as the person would
    /// read it off the screen.
    pub fn device_pending_user_code(&self) -> Option<String> {
        self.state.device.pending_user_code()
    }

    /// Approves (`true`) or denies a user code, as the person would in the
    /// browser (`POST /device/approve` / `/device/deny` do the same over
    /// HTTP). False for an unknown code.
    pub fn device_decide(&self, user_code: &str, approve: bool) -> bool {
        self.state.device.decide(user_code, approve)
    }

    /// The counters of a documented reply [`Shape`].
    pub fn shape_stats(&self, shape: Shape) -> ShapeStats {
        self.state.shapes.stats(shape)
    }

    /// How long the tokens a [`Shape`] issues live from now on (default one
    /// hour; at least a millisecond). The Keystone `expires_at`, the session
    /// cookie's `Max-Age` and the milliseconds `expires_in` say it.
    pub fn set_shape_token_lifetime(&self, shape: Shape, lifetime: Duration) {
        self.state.shapes.set_lifetime(shape, lifetime);
    }

    /// The session login replies 204 with an empty body instead of 200 with
    /// an HTML page (default off).
    pub fn set_session_empty_body(&self, on: bool) {
        self.state.shapes.set_session_empty_body(on);
    }

    /// URL of a control endpoint, e.g. `control_url("stats")`.
    pub fn control_url(&self, op: &str) -> String {
        format!("http://{}/_emulator/{}", self.addr, op)
    }

    /// Address of the TLS listener, if it is on ([`EmulatorConfig::tls`]).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// PEM of the generated CA that signed the TLS listener's certificate
    /// (valid for the four real host names, `localhost` and `127.0.0.1`).
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// `(real host name, TLS listener address)` for each of the four hosts,
    /// for `reqwest::ClientBuilder::resolve`; empty when TLS is off.
    pub fn host_overrides(&self) -> Vec<(&'static str, SocketAddr)> {
        match self.tls_addr {
            Some(a) => Host::ALL.iter().map(|h| (h.hostname(), a)).collect(),
            None => Vec::new(),
        }
    }

    /// A `reqwest::ClientBuilder` that reaches this emulator under the real
    /// host names: each of the four hosts resolves to the TLS listener and
    /// only the emulator's CA is trusted, so the unchanged `https://` URLs of
    /// `providers.toml` work and nothing can leave the machine. `None` when
    /// TLS is off (start with `EmulatorConfig::default().tls(true)`).
    /// Feature `reqwest`.
    #[cfg(feature = "reqwest")]
    pub fn reqwest_client_builder(&self) -> Option<reqwest::ClientBuilder> {
        let ca = reqwest::Certificate::from_pem(self.ca_cert_pem()?.as_bytes()).ok()?;
        let mut builder = reqwest::Client::builder().tls_certs_only([ca]);
        for (host, addr) in self.host_overrides() {
            builder = builder.resolve(host, addr);
        }
        Some(builder)
    }

    // ---------------------------------------------------------------- observation

    /// A snapshot of all counters (same as `GET /_emulator/stats`).
    pub fn stats(&self) -> Stats {
        stats_of(&self.state)
    }

    /// Zeroes all counters; `max_concurrent_token_requests` restarts from
    /// the requests in flight.
    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    /// The last token requests (up to [`EmulatorConfig::record_limit`]),
    /// oldest first, exactly as received (same as `GET /_emulator/requests`).
    pub fn recorded_token_requests(&self) -> Vec<RecordedRequest> {
        self.state.recorded()
    }

    /// The last API requests (up to
    /// [`EmulatorConfig::record_api_requests`]; none unless it was set),
    /// oldest first, exactly as received: headers, path and query, body.
    pub fn recorded_api_requests(&self) -> Vec<RecordedRequest> {
        self.state.recorded_api()
    }

    /// Forgets the recorded token requests.
    pub fn clear_recorded_token_requests(&self) {
        self.state.clear_recorded();
    }

    // ---------------------------------------------------------------- faults

    fn with_knobs(&self, p: Provider, f: impl FnOnce(&mut crate::faults::Knobs)) {
        f(&mut lock(&self.state.provider(p).knobs));
    }

    /// Delays every token request of `p` by `latency` (zero removes it).
    pub fn set_token_latency(&self, p: Provider, latency: Duration) {
        self.with_knobs(p, |k| {
            k.latency = if latency.is_zero() {
                Latency::None
            } else {
                Latency::Fixed(latency)
            };
        });
    }

    /// Processes every token request of `p` at once (a refresh token is
    /// spent) but holds the reply back for `delay` (zero removes it): a
    /// client that dies meanwhile has spent the token without learning its
    /// successor.
    pub fn set_token_reply_delay(&self, p: Provider, delay: Duration) {
        self.with_knobs(p, |k| k.reply_delay = delay);
    }

    /// Delays every token request of `p` by a uniformly random time in
    /// `[min, max]`.
    pub fn set_token_latency_range(&self, p: Provider, min: Duration, max: Duration) {
        self.with_knobs(p, |k| k.latency = Latency::Range(min, max));
    }

    /// Answers the next `fault.count` token requests of `p` with
    /// `fault.status` (and `Retry-After` if set), without processing them;
    /// then the endpoint heals. Replaces a pending status fault.
    pub fn fail_token_requests(&self, p: Provider, fault: StatusFault) {
        self.with_knobs(p, |k| k.status = (fault.count > 0).then_some(fault));
    }

    /// Answers the next `fault.count` API requests of `p` (not its token
    /// requests) with `fault.status` (and `Retry-After` if set), without
    /// looking at their credential; then the API heals. Replaces a pending
    /// API fault.
    pub fn fail_api_requests(&self, p: Provider, fault: StatusFault) {
        self.with_knobs(p, |k| k.api_status = (fault.count > 0).then_some(fault));
    }

    /// Damages the replies of the next `count` token requests of `p` that
    /// would succeed (see [`ReplyFault`]). Replaces a pending reply fault.
    pub fn set_reply_fault(&self, p: Provider, fault: ReplyFault, count: u32) {
        self.with_knobs(p, |k| {
            k.reply = (count > 0).then_some(ReplyFaultSpec { fault, count });
        });
    }

    /// Removes the latency, status and reply faults of `p`.
    pub fn clear_faults(&self, p: Provider) {
        self.with_knobs(p, crate::faults::Knobs::clear_faults);
    }

    /// Lifetime of access tokens issued from now on by `p` (REOBtimaal
    /// default 60 minutes, 2BA 120 seconds; `expires_in` is its whole seconds).
    pub fn set_access_token_lifetime(&self, p: Provider, lifetime: Duration) {
        self.with_knobs(p, |k| k.access_lifetime = lifetime);
    }

    /// Lifetime of 2BA refresh tokens issued from now on (default 14 days).
    pub fn set_refresh_token_lifetime(&self, lifetime: Duration) {
        self.with_knobs(Provider::Twoba, |k| k.refresh_lifetime = lifetime);
    }

    /// JWT-shaped (`on`) or opaque access tokens from now on for `p`.
    pub fn set_jwt_access_tokens(&self, p: Provider, on: bool) {
        self.with_knobs(p, |k| k.jwt = on && p != Provider::Bro);
    }

    /// Whether issuing an access token of `p` (login or refresh) revokes the
    /// access tokens issued to the same user before it, as Django OAuth
    /// Toolkit does when it rotates: API requests with a revoked one, also
    /// those already in flight (checked after [`Emulator::set_api_latency`]),
    /// get `403` `{"detail":"Authentication credentials were not provided."}`
    /// (an unknown token still gets `401`). Off by default; applies to
    /// tokens issued from now on. REOBtimaal and 2BA (BRO has no tokens).
    pub fn set_revoke_on_reissue(&self, p: Provider, on: bool) {
        self.with_knobs(p, |k| k.revoke_on_reissue = on);
    }

    /// Delay added to every API request of every provider (zero: none).
    pub fn set_api_latency(&self, latency: Duration) {
        self.state.set_api_latency(latency);
    }

    /// Applies a [`FaultUpdate`] (the body of `POST /_emulator/faults`).
    ///
    /// # Errors
    /// A message saying what is wrong; then nothing was changed.
    pub fn update_faults(&self, update: &FaultUpdate) -> Result<(), String> {
        handler::update_faults(&self.state, update)
    }

    /// The current knobs of `p`, with the remaining fault counts.
    pub fn knobs(&self, p: Provider) -> ProviderKnobs {
        lock(&self.state.provider(p).knobs).snapshot()
    }

    // ---------------------------------------------------------------- revocation

    /// Revokes every token now: access and refresh tokens of REOBtimaal and
    /// 2BA, and every BRO token (BRO requests get 401 until [`Emulator::reset`]).
    pub fn revoke_all(&self) {
        self.state.revoke(None);
    }

    /// Revokes every token of one provider (see [`Emulator::revoke_all`]).
    pub fn revoke(&self, p: Provider) {
        self.state.revoke(Some(p));
    }

    /// Revokes one BRO token by its username (401 from now on).
    pub fn revoke_bro_token(&self, username: &str) {
        self.state.revoke_bro_token(username);
    }

    /// Back to the state right after start: no tokens, no revocations, no
    /// faults, configured lifetimes, zero counters, no recorded requests.
    pub fn reset(&self) {
        self.state.reset();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Dropping the sender wakes every `changed()`: listeners and
        // connections stop.
        self.shutdown.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
