//! `tokenauth demo`: the main job in one command, with no credentials and no
//! network. It starts the emulator on loopback (TLS, with the real host
//! names resolved to it), loads `providers.toml` unchanged, and runs a short
//! session through the reqwest middleware:
//!
//! 1. several concurrent workers call all three providers (one login each,
//!    shared by every worker);
//! 2. a 2BA time-lapse: the engine's clock jumps ahead twice, into the
//!    renewal window, so the token is renewed in the background with the
//!    refresh token, which rotates (the emulator proves no refresh token is
//!    used twice);
//! 3. REOBtimaal revokes every token; the next request gets 401 and is
//!    renewed and retried once by the middleware, and succeeds.
//!
//! The numbers it prints come from the emulator's counters, so they are the
//! same on every run.
//!
//! With `--store redis://HOST:PORT/DB` a fourth part follows: several
//! `tokenauth` processes share one Redis and call 2BA together for a few
//! seconds while its short-lived token is renewed again and again; the
//! emulator's counters show whether they shared one token (one login, its
//! rotating refresh token never used twice). See "Part 4" below.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use secrecy::{ExposeSecret as _, SecretString};
use tokenauth_core::clock::ManualClock;
use tokenauth_core::store::{StoreKey, TokenStore as _};
use tokenauth_core::{Connection, TokenAuth};
use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, Provider as Emulated,
    ProviderStats, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME, TWOBA_DEMO_CLIENT_ID,
    TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME,
};
use tokenauth_redis::{KEY_ENV, Keyring, RedisStore};
use tokenauth_reqwest::{ClientBuilderExt as _, MiddlewareExt as _};

use crate::common::report;
use crate::{Global, Outcome};

/// Concurrent workers in phase 1.
const WORKERS: usize = 4;
/// Requests per worker per provider in phase 1.
const REQUESTS: usize = 10;

struct Target {
    id: &'static str,
    emulated: Emulated,
    method: reqwest::Method,
    url: &'static str,
    connection: Connection,
}

fn targets() -> Vec<Target> {
    let [reob, twoba, bro] = demo_connections().map(|(_, connection)| connection);
    vec![
        Target {
            id: "reobtimaal",
            emulated: Emulated::Reobtimaal,
            method: reqwest::Method::GET,
            url: "https://api.reobtimaal-diensten.nl/api/v1/projecten",
            connection: reob,
        },
        Target {
            id: "twoba",
            emulated: Emulated::Twoba,
            method: reqwest::Method::GET,
            url: "https://api.2ba.nl/1/json/Product/DetailsForProduct",
            connection: twoba,
        },
        Target {
            id: "bro",
            emulated: Emulated::Bro,
            method: reqwest::Method::POST,
            url: "https://www.bronhouderportaal-bro.nl/api/v2/validatie",
            connection: bro,
        },
    ]
}

/// The emulator's (fake) demo accounts as connections `demo` of the three
/// seed providers: the demo's, and `tokenauth proxy --emulator`'s defaults.
pub(crate) fn demo_connections() -> [(&'static str, Connection); 3] {
    [
        (
            "reobtimaal",
            Connection::new("demo")
                .with_input("username", REOB_DEMO_USERNAME)
                .with_secret("password", REOB_DEMO_PASSWORD),
        ),
        (
            "twoba",
            Connection::new("demo")
                .with_input("username", TWOBA_DEMO_USERNAME)
                .with_secret("password", TWOBA_DEMO_PASSWORD)
                .with_input("client_id", TWOBA_DEMO_CLIENT_ID)
                .with_secret("client_secret", TWOBA_DEMO_CLIENT_SECRET),
        ),
        (
            "bro",
            Connection::new("demo")
                .with_input("username", BRO_DEMO_USERNAME)
                .with_secret("token", BRO_DEMO_PASSWORD),
        ),
    ]
}

/// One API call; `Ok(status)` or a printable error.
async fn call(client: &ClientWithMiddleware, t: &Target) -> Result<u16, String> {
    client
        .request(t.method.clone(), t.url)
        .with_extension(t.connection.clone())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| match tokenauth_reqwest::auth_error(&e) {
            Some(auth) => auth.to_string(),
            None => e.to_string(),
        })
}

pub(crate) async fn run(g: &Global, args: &DemoArgs) -> Outcome {
    let providers = match g.load() {
        Ok(p) => p,
        Err(o) => return o,
    };
    // The multi-process part's store is opened first: a wrong URL or key
    // fails at once, before anything else runs.
    let shared = match SharedRun::prepare(g, args).await {
        Ok(s) => s,
        Err(o) => return o,
    };
    let emulator = match Emulator::start(EmulatorConfig::default().tls(true)).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the emulator on 127.0.0.1: {e}");
            return Outcome::AuthFailure;
        }
    };
    let outcome = single_process(&emulator, providers).await;
    let outcome = match shared {
        // Printed as it always was: `tokenauth demo --help` and the README
        // tell of the part with --store.
        None => outcome,
        Some(shared) => {
            println!();
            let processes = shared.run(g, &emulator).await;
            if outcome == Outcome::Ok {
                processes
            } else {
                outcome
            }
        }
    };
    emulator.shutdown();
    outcome
}

/// Phases 1 to 3 and their table: the demo as it runs without `--store`.
async fn single_process(emulator: &Emulator, providers: tokenauth_core::Providers) -> Outcome {
    // Every request goes to the emulator: the real host names resolve to it
    // and only its CA is trusted, so nothing can leave the machine.
    if emulator.reqwest_client_builder().is_none() {
        eprintln!("error: the emulator's TLS certificate is unusable");
        return Outcome::AuthFailure;
    }
    let client_builder = || {
        emulator
            .reqwest_client_builder()
            .unwrap_or_else(reqwest::Client::builder)
    };
    let clock = Arc::new(ManualClock::new());
    let auth = match TokenAuth::builder(providers)
        .http_client_builder(client_builder())
        .clock(clock.clone())
        .build()
    {
        Ok(a) => a,
        Err(e) => return report(&e),
    };
    let http = match client_builder().scoped_to(&auth).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build the HTTP client: {e}");
            return Outcome::AuthFailure;
        }
    };
    let client = ClientBuilder::new(http).with(auth.middleware()).build();
    let targets = Arc::new(targets());
    let mut failures: Vec<String> = Vec::new();

    println!("tokenauth demo: the three seed providers of providers.toml, unchanged,");
    println!("against the built-in emulator on 127.0.0.1 (TLS, real host names, fake accounts).");
    println!();

    // Phase 1: concurrent workers, all providers, cold cache.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let client = client.clone();
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for _ in 0..REQUESTS {
                for t in targets.iter() {
                    match call(&client, t).await {
                        Ok(200) => {}
                        Ok(s) => errors.push(format!("{}: HTTP {s}", t.id)),
                        Err(e) => errors.push(format!("{}: {e}", t.id)),
                    }
                }
            }
            errors
        }));
    }
    for task in tasks {
        match task.await {
            Ok(errors) => failures.extend(errors),
            Err(e) => failures.push(format!("a worker stopped: {e}")),
        }
    }
    println!(
        "1. {WORKERS} concurrent workers x {REQUESTS} requests x 3 providers: {} requests in {} ms",
        WORKERS * REQUESTS * 3,
        started.elapsed().as_millis()
    );

    // Phase 2: 2BA time-lapse into the renewal window, twice.
    let twoba = &targets[1];
    for step in 1..=2 {
        clock.advance(Duration::from_secs(100));
        let before = emulator.stats().twoba.token.requests_by_grant.refresh_token;
        match call(&client, twoba).await {
            Ok(200) => {}
            Ok(s) => failures.push(format!("twoba after +{}s: HTTP {s}", step * 100)),
            Err(e) => failures.push(format!("twoba after +{}s: {e}", step * 100)),
        }
        // The renewal runs in the background; wait (bounded) for it to land.
        let deadline = Instant::now() + Duration::from_secs(10);
        while emulator.stats().twoba.token.requests_by_grant.refresh_token == before
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Err(e) = call(&client, twoba).await {
            failures.push(format!("twoba after its renewal: {e}"));
        }
    }
    let s = emulator.stats().twoba.token;
    println!(
        "2. 2BA time-lapse (+100 s, twice): {} background refreshes, each with the newest refresh token ({} reused)",
        s.requests_by_grant.refresh_token, s.refresh_reuse
    );
    if s.refresh_reuse != 0 {
        failures.push(format!(
            "twoba: {} refresh tokens were reused",
            s.refresh_reuse
        ));
    }

    // Phase 3: REOBtimaal revokes every token; 401 -> renew -> retry once.
    emulator.revoke(Emulated::Reobtimaal);
    let reob = &targets[0];
    match call(&client, reob).await {
        Ok(200) => println!(
            "3. REOBtimaal revoked every token: the next request got 401, was renewed and retried once: 200"
        ),
        Ok(s) => failures.push(format!("reobtimaal after revocation: HTTP {s}")),
        Err(e) => failures.push(format!("reobtimaal after revocation: {e}")),
    }
    println!();

    let stats = emulator.stats();
    println!(
        "| provider   | API requests | 200 | 401 | token requests | logins | refreshes | result |"
    );
    println!(
        "|------------|-------------:|----:|----:|---------------:|-------:|----------:|--------|"
    );
    for t in targets.iter() {
        let p: &ProviderStats = stats.provider(t.emulated);
        let ok = !failures.iter().any(|f| f.starts_with(t.id));
        let token = if t.id == "bro" {
            "- (static)".to_owned()
        } else {
            p.token.requests.to_string()
        };
        println!(
            "| {:<10} | {:>12} | {:>3} | {:>3} | {:>14} | {:>6} | {:>9} | {:<6} |",
            t.id,
            p.api.requests,
            p.api.status(200),
            p.api.status(401),
            token,
            p.token.requests_by_grant.password,
            p.token.requests_by_grant.refresh_token,
            if ok { "ok" } else { "FAILED" }
        );
    }
    let e = auth.stats();
    println!();
    println!(
        "engine counters: hits {}, misses {}, token requests {}, background renewals {}, invalidations {}",
        e.hits, e.misses, e.token_requests, e.renewals, e.invalidations
    );
    drop(client);
    if failures.is_empty() {
        println!("result: every request succeeded");
        Outcome::Ok
    } else {
        println!("result: {} problem(s):", failures.len());
        for f in &failures {
            println!("  {f}");
        }
        Outcome::AuthFailure
    }
}

// ---------------------------------------------------------------------------
// Part 4, with `--store redis://…`: worker processes sharing one Redis.
//
// The demo process keeps the emulator and re-executes its own binary N
// times as `tokenauth demo-worker` (a hidden command). A worker gets what
// it needs on its command line (the emulator's address as --resolve, its CA
// as --cacert, the run's key prefix) and in its environment what must not
// be on a command line (the store URL, which may hold a password, and the
// encryption key). It talks to the demo over its stdin and stdout:
//
//   worker -> demo   `ready`          engine built, store connected
//   demo -> worker   `go`             all are ready: start calling
//   worker -> demo   `result {json}`  its counts, then it exits
//
// A worker exits as soon as its stdin closes, so workers die with the demo
// however it ends (an error, Ctrl-C, a kill): the demo also kills them when
// it returns.
// ---------------------------------------------------------------------------

/// Worker processes by default.
const DEFAULT_PROCESSES: u16 = 4;
/// Concurrent workers (tasks) in each worker process.
const WORKERS_PER_PROCESS: usize = 4;
/// Each worker's pause between two calls.
const CALL_PAUSE: Duration = Duration::from_millis(20);
/// 2BA's access-token lifetime during part 4: renewed at half its life, so
/// about once a second.
const SHORT_LIFETIME: Duration = Duration::from_secs(2);
/// How long worker processes may take to start and connect.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The hidden command the demo re-executes its binary with.
const WORKER_COMMAND: &str = "demo-worker";
/// The connection all workers share (the store key is 2BA + this).
const SHARED_CONNECTION: &str = "demo";

/// `tokenauth demo`'s own options.
#[derive(Args, Debug, Clone)]
pub(crate) struct DemoArgs {
    /// With --store redis://HOST:PORT/DB: how many worker processes share the store [default: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=32))]
    processes: Option<u16>,

    /// With --store redis://HOST:PORT/DB: how long the worker processes call 2BA (1s to 60s) [default: 4s]
    #[arg(long, value_name = "DURATION", value_parser = parse_run_length)]
    duration: Option<Duration>,
}

fn parse_run_length(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 4s)"))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(60) {
        return Err("must be from 1s to 60s".to_owned());
    }
    Ok(d)
}

/// The hidden `demo-worker` command's options (set by the demo, not by hand).
#[derive(Args, Debug, Clone)]
pub(crate) struct WorkerArgs {
    /// This worker process's number, for its messages.
    #[arg(long)]
    index: usize,
    /// The run's key prefix in Redis.
    #[arg(long, value_name = "PREFIX")]
    key_prefix: String,
    /// How long to call 2BA, in milliseconds.
    #[arg(long, value_name = "MS")]
    duration_ms: u64,
}

/// The multi-process part, ready to run: its store is open.
struct SharedRun {
    /// The store URL as given; it may hold a password, so it is never
    /// printed (see [`display_url`]) and goes to the workers by environment.
    url: String,
    /// The key generated for this run when `TOKENAUTH_STORE_KEY` is unset.
    ephemeral_key: Option<SecretString>,
    prefix: String,
    processes: u16,
    duration: Duration,
    store: RedisStore,
}

impl SharedRun {
    /// `None` for the demo without `--store`; the part's store, opened,
    /// with `--store redis://…`; an error for anything else.
    async fn prepare(g: &Global, args: &DemoArgs) -> Result<Option<SharedRun>, Outcome> {
        let Some(url) = &g.store else {
            if args.processes.is_some() || args.duration.is_some() {
                eprintln!(
                    "error: --processes and --duration are for the demo's multi-process part, which shares tokens through Redis: add --store redis://HOST:PORT/DB"
                );
                return Err(Outcome::InvalidInput);
            }
            return Ok(None);
        };
        if !is_redis(url) {
            if args.processes.is_none() && args.duration.is_none() {
                // A directory in $TOKENAUTH_STORE (set for the other
                // commands) must not stop the main job.
                eprintln!(
                    "note: the demo keeps its tokens in memory; its multi-process part shares them through Redis (--store redis://HOST:PORT/DB), so the store directory is not used"
                );
                return Ok(None);
            }
            eprintln!(
                "error: the demo's --store (or $TOKENAUTH_STORE) takes a Redis URL, redis://HOST:PORT/DB, whose server its worker processes share; leave it out for the demo in one process"
            );
            return Err(Outcome::InvalidInput);
        }
        let ephemeral_key = match std::env::var_os(KEY_ENV) {
            Some(_) => None,
            None => Some(random_key().map_err(|e| {
                eprintln!(
                    "error: cannot make a random encryption key for the run ({e}): set {KEY_ENV}, e.g. `export {KEY_ENV}=k1:$(openssl rand -base64 32)`"
                );
                Outcome::AuthFailure
            })?),
        };
        let prefix = format!(
            "demo-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let mut builder = RedisStore::builder(url.as_str()).key_prefix(&prefix);
        if let Some(key) = &ephemeral_key {
            match Keyring::parse(key.expose_secret()) {
                Ok(keyring) => builder = builder.encryption(keyring),
                Err(e) => {
                    eprintln!("error: the run's random encryption key is unusable: {e}");
                    return Err(Outcome::AuthFailure);
                }
            }
        }
        // The store's errors show the URL without its password.
        let store = builder.build().await.map_err(|e| {
            eprintln!("error: --store: the Redis store could not be opened: {e}");
            Outcome::InvalidInput
        })?;
        Ok(Some(SharedRun {
            url: url.clone(),
            ephemeral_key,
            prefix,
            processes: args.processes.unwrap_or(DEFAULT_PROCESSES),
            duration: args.duration.unwrap_or(Duration::from_secs(4)),
            store,
        }))
    }

    /// Runs the worker processes against `emulator` and prints its counts.
    async fn run(self, g: &Global, emulator: &Emulator) -> Outcome {
        println!(
            "4. {} x {WORKERS_PER_PROCESS} workers on one Redis store ({}, key prefix {}) call 2BA for {}; its tokens now live {} (renewed at half their life):",
            plural(self.processes.into(), "process"),
            display_url(&self.url),
            self.prefix,
            humantime::format_duration(self.duration),
            humantime::format_duration(SHORT_LIFETIME),
        );
        if self.ephemeral_key.is_some() {
            println!(
                "   ({KEY_ENV} is not set: the run's tokens are encrypted with a random key made for it, given to the workers in their environment)"
            );
        }
        emulator.set_access_token_lifetime(Emulated::Twoba, SHORT_LIFETIME);
        emulator.reset_stats();
        let started = Instant::now();
        let results = match self.workers(g, emulator).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                self.forget().await;
                return Outcome::AuthFailure;
            }
        };
        let elapsed = started.elapsed();
        self.forget().await;

        let s = emulator.stats().twoba;
        let calls: u64 = results.iter().map(|r| r.calls).sum();
        let errors: u64 = results.iter().map(|r| r.errors).sum();
        let (logins, refreshes, reuse) = (
            s.token.requests_by_grant.password,
            s.token.requests_by_grant.refresh_token,
            s.token.refresh_reuse,
        );
        println!(
            "   API requests:   {} ({} x 200) in {} ms",
            s.api.requests,
            s.api.status(200),
            elapsed.as_millis()
        );
        let other = match s.token.requests_by_grant.other {
            0 => String::new(),
            k => format!(", {k} other"),
        };
        println!(
            "   token requests: {}: {} (grant password), {} (grant refresh_token){other}",
            s.token.requests,
            plural(logins, "login"),
            plural(refreshes, "refresh"),
        );
        println!("   refresh reuse:  {reuse} (a used refresh token presented again)");
        println!("   caller errors:  {errors} of {calls} calls");
        for (i, r) in results.iter().enumerate() {
            println!(
                "   process {}: {} calls, {}; its engine sent {}, {}",
                i + 1,
                r.calls,
                plural(r.errors, "error"),
                plural(r.logins, "login"),
                plural(r.refreshes, "refresh"),
            );
        }
        let mut messages: Vec<(&str, u64)> = Vec::new();
        for (m, k) in results.iter().flat_map(|r| &r.messages) {
            match messages.iter_mut().find(|(seen, _)| seen == m) {
                Some((_, total)) => *total += k,
                None => messages.push((m, *k)),
            }
        }
        for (m, k) in messages.iter().take(5) {
            println!("   error ({k}x): {m}");
        }
        let counts = format!(
            "{}, {}, {reuse} reuse, {}",
            plural(logins, "login"),
            plural(refreshes, "refresh"),
            plural(errors, "error")
        );
        let who = plural(self.processes.into(), "process");
        let (verdict, outcome) = match (logins, reuse, errors) {
            _ if calls == 0 => ("made no call".to_owned(), Outcome::AuthFailure),
            (1, 0, 0) => ("shared one token".to_owned(), Outcome::Ok),
            (1, 0, e) => (
                format!("shared one token, but {} failed", plural(e, "call")),
                Outcome::AuthFailure,
            ),
            _ => ("did NOT share one token".to_owned(), Outcome::AuthFailure),
        };
        println!("verdict: {who} {verdict}: {counts}");
        outcome
    }

    /// Starts the worker processes, lets them go together, and collects
    /// their results.
    async fn workers(&self, g: &Global, emulator: &Emulator) -> Result<Vec<WorkerResult>, String> {
        let n = usize::from(self.processes);
        let ca = TempFile::write(
            "ca.pem",
            emulator
                .ca_cert_pem()
                .ok_or("the emulator has no TLS certificate")?,
        )
        .map_err(|e| format!("cannot write the emulator's CA certificate for the workers: {e}"))?;
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find the tokenauth binary to start workers: {e}"))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut children = Children::default();
        for index in 0..n {
            let mut cmd = std::process::Command::new(&exe);
            cmd.arg("--config").arg(g.config_path());
            cmd.arg("--cacert").arg(&ca.0);
            for (host, addr) in emulator.host_overrides() {
                cmd.arg("--resolve").arg(format!("{host}:443:{addr}"));
            }
            if g.verbose > 0 {
                cmd.arg(format!("-{}", "v".repeat(usize::from(g.verbose))));
            }
            cmd.args([WORKER_COMMAND, "--index", &(index + 1).to_string()]);
            cmd.args(["--key-prefix", &self.prefix]);
            cmd.args(["--duration-ms", &self.duration.as_millis().to_string()]);
            // Secrets by environment only, never on the command line.
            cmd.env("TOKENAUTH_STORE", &self.url);
            if let Some(key) = &self.ephemeral_key {
                cmd.env(KEY_ENV, key.expose_secret());
            }
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("cannot start worker process {}: {e}", index + 1))?;
            let stdout = child.stdout.take();
            let stdin = child.stdin.take();
            children.0.push((child, stdin));
            let tx = tx.clone();
            if let Some(stdout) = stdout {
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if tx.send((index, Some(line))).is_err() {
                            return;
                        }
                    }
                    let _ = tx.send((index, None));
                });
            }
        }
        drop(tx);

        // Everyone connected: then all start at once.
        let mut ready = vec![false; n];
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while ready.iter().any(|r| !r) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((i, Some(line)))) if line == "ready" => ready[i] = true,
                Ok(Some((i, Some(line)))) => {
                    return Err(format!(
                        "worker process {} said {line:?} before it was ready",
                        i + 1
                    ));
                }
                Ok(Some((i, None))) => {
                    return Err(format!(
                        "worker process {} stopped before it was ready (its message is above)",
                        i + 1
                    ));
                }
                Ok(None) => return Err("the worker processes stopped".to_owned()),
                Err(_) => {
                    return Err(format!(
                        "the worker processes were not ready within {}",
                        humantime::format_duration(READY_TIMEOUT)
                    ));
                }
            }
        }
        for (i, (_, stdin)) in children.0.iter_mut().enumerate() {
            let sent = stdin
                .as_mut()
                .map(|s| s.write_all(b"go\n").and_then(|()| s.flush()));
            if !matches!(sent, Some(Ok(()))) {
                return Err(format!("worker process {} cannot be told to start", i + 1));
            }
        }

        let mut results: Vec<Option<WorkerResult>> = (0..n).map(|_| None).collect();
        let deadline = tokio::time::Instant::now() + self.duration + READY_TIMEOUT;
        while results.iter().any(Option::is_none) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((i, Some(line)))) => match line.strip_prefix("result ") {
                    Some(json) => {
                        results[i] = Some(WorkerResult::parse(json).ok_or_else(|| {
                            format!("worker process {} sent an unreadable result", i + 1)
                        })?);
                    }
                    None => {
                        return Err(format!(
                            "worker process {} said {line:?}, not its result",
                            i + 1
                        ));
                    }
                },
                Ok(Some((i, None))) if results[i].is_none() => {
                    return Err(format!(
                        "worker process {} stopped without a result (its message is above)",
                        i + 1
                    ));
                }
                Ok(Some((_, None))) => {}
                Ok(None) => return Err("the worker processes stopped".to_owned()),
                Err(_) => {
                    return Err(format!(
                        "the worker processes did not finish within {} of the start",
                        humantime::format_duration(self.duration + READY_TIMEOUT)
                    ));
                }
            }
        }
        children.wait(Duration::from_secs(5)).await;
        Ok(results.into_iter().flatten().collect())
    }

    /// Removes the run's refresh token from Redis (the published access
    /// token and the lease expire on their own).
    async fn forget(&self) {
        let key = StoreKey {
            provider: "twoba",
            connection: SHARED_CONNECTION,
        };
        if let Ok(state) = self.store.read(&key).await
            && let Some(rt) = state.refresh_token
        {
            let _ = self.store.cas_refresh(&key, Some(&rt), None).await;
        }
    }
}

/// What one worker process reports.
#[derive(Debug, Default)]
struct WorkerResult {
    calls: u64,
    errors: u64,
    logins: u64,
    refreshes: u64,
    /// Distinct error messages (at most a few) and how often each came.
    messages: Vec<(String, u64)>,
}

impl WorkerResult {
    fn to_json(&self) -> String {
        serde_json::json!({
            "calls": self.calls,
            "errors": self.errors,
            "logins": self.logins,
            "refreshes": self.refreshes,
            "messages": self.messages,
        })
        .to_string()
    }

    fn parse(json: &str) -> Option<WorkerResult> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let messages = v
            .get("messages")?
            .as_array()?
            .iter()
            .filter_map(|m| Some((m.get(0)?.as_str()?.to_owned(), m.get(1)?.as_u64()?)))
            .collect();
        Some(WorkerResult {
            calls: n("calls")?,
            errors: n("errors")?,
            logins: n("logins")?,
            refreshes: n("refreshes")?,
            messages,
        })
    }

    fn record(&mut self, outcome: Result<u16, String>) {
        self.calls += 1;
        let message = match outcome {
            Ok(200) => return,
            Ok(status) => format!("HTTP {status}"),
            Err(e) => e,
        };
        self.errors += 1;
        if let Some((_, k)) = self.messages.iter_mut().find(|(m, _)| *m == message) {
            *k += 1;
        } else if self.messages.len() < 3 {
            self.messages.push((message, 1));
        }
    }
}

/// The worker processes with their stdin; killed (if still running) and
/// reaped when dropped, on every way out of [`SharedRun::workers`].
#[derive(Default)]
struct Children(Vec<(Child, Option<ChildStdin>)>);

impl Children {
    /// Waits up to `timeout` for every worker to exit by itself.
    async fn wait(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for (child, _) in &mut self.0 {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (child, stdin) in &mut self.0 {
            drop(stdin.take());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn write(name: &str, text: &str) -> std::io::Result<TempFile> {
        let path =
            std::env::temp_dir().join(format!("tokenauth-demo-{}-{name}", std::process::id()));
        std::fs::write(&path, text)?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `tokenauth demo-worker`: one worker process of part 4.
pub(crate) async fn worker(g: &Global, args: &WorkerArgs) -> Outcome {
    let me = format!("worker process {}", args.index);
    let Some(url) = g.store.as_deref().filter(|url| is_redis(url)) else {
        eprintln!(
            "error: {me}: `tokenauth {WORKER_COMMAND}` is started by `tokenauth demo --store redis://…`, with the Redis URL in $TOKENAUTH_STORE"
        );
        return Outcome::InvalidInput;
    };
    // Die with the demo: it holds our stdin, which closes when it exits,
    // however it exits. Its first line is the start signal.
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut lines = std::io::stdin().lock().lines();
        match lines.next() {
            Some(Ok(line)) if line == "go" => {
                let _ = go_tx.send(());
            }
            _ => std::process::exit(1),
        }
        // Nothing more is said: this returns when the demo is gone.
        for _ in lines.by_ref() {}
        std::process::exit(1);
    });

    let providers = match g.load() {
        Ok(p) => p,
        Err(o) => return o,
    };
    let store = match RedisStore::builder(url)
        .key_prefix(&args.key_prefix)
        .build()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {me}: the Redis store could not be opened: {e}");
            return Outcome::InvalidInput;
        }
    };
    let Ok(client_builder) = g.client_builder() else {
        return Outcome::InvalidInput;
    };
    let auth = match TokenAuth::builder(providers)
        .http_client_builder(client_builder)
        .store(Arc::new(store))
        .build()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {me}: {e}");
            return crate::common::classify(&e);
        }
    };
    let http = match g.client_builder().map(|b| b.scoped_to(&auth).build()) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            eprintln!("error: {me}: cannot build the HTTP client: {e}");
            return Outcome::AuthFailure;
        }
        Err(o) => return o,
    };
    let client = ClientBuilder::new(http).with(auth.middleware()).build();
    let Some(twoba) = targets().into_iter().find(|t| t.id == "twoba") else {
        return Outcome::AuthFailure;
    };
    let twoba = Arc::new(twoba);

    println!("ready");
    let _ = std::io::stdout().flush();
    if go_rx.await.is_err() {
        return Outcome::AuthFailure;
    }

    let until = Instant::now() + Duration::from_millis(args.duration_ms);
    let mut tasks = Vec::new();
    for _ in 0..WORKERS_PER_PROCESS {
        let client = client.clone();
        let twoba = twoba.clone();
        tasks.push(tokio::spawn(async move {
            let mut result = WorkerResult::default();
            while Instant::now() < until {
                result.record(call(&client, &twoba).await);
                tokio::time::sleep(CALL_PAUSE).await;
            }
            result
        }));
    }
    let mut total = WorkerResult::default();
    for task in tasks {
        match task.await {
            Ok(r) => {
                total.calls += r.calls;
                total.errors += r.errors;
                for (m, k) in r.messages {
                    match total.messages.iter_mut().find(|(seen, _)| *seen == m) {
                        Some((_, total)) => *total += k,
                        None => total.messages.push((m, k)),
                    }
                }
            }
            Err(e) => {
                total.errors += 1;
                total.messages.push((format!("a worker stopped: {e}"), 1));
            }
        }
    }
    let e = auth.stats();
    total.logins = e.logins;
    total.refreshes = e.refreshes;
    println!("result {}", total.to_json());
    let _ = std::io::stdout().flush();
    Outcome::Ok
}

/// `1 login`, `2 logins`, `3 refreshes`, `4 processes`.
fn plural(n: u64, noun: &str) -> String {
    match (n, noun.ends_with('h') || noun.ends_with('s')) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{n} {noun}es"),
        (_, false) => format!("{n} {noun}s"),
    }
}

/// True for a `redis://` or `rediss://` URL.
fn is_redis(spec: &str) -> bool {
    url::Url::parse(spec).is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss"))
}

/// `redis://HOST:PORT/DB` of `url`, without user name or password.
fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => "(the Redis URL)".to_owned(),
    }
}

/// `demo:` and 32 bytes from the system's random source, in base64: a
/// `TOKENAUTH_STORE_KEY` for one run.
fn random_key() -> std::io::Result<SecretString> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(SecretString::from(format!("demo:{}", base64(&bytes))))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff; 3]), "////");
        let key = random_key().unwrap();
        assert!(Keyring::parse(key.expose_secret()).is_ok());
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            display_url("redis://:hunter2@cache:6380/3"),
            "redis://cache:6380/3"
        );
        assert_eq!(display_url("redis://user:hunter2@cache"), "redis://cache");
        assert_eq!(display_url("redis-hunter2"), "(the Redis URL)");
    }

    #[test]
    fn worker_results_survive_the_trip() {
        let mut r = WorkerResult::default();
        r.record(Ok(200));
        r.record(Ok(503));
        r.record(Err("boom".to_owned()));
        r.record(Err("boom".to_owned()));
        r.logins = 1;
        let back = WorkerResult::parse(&r.to_json()).unwrap();
        assert_eq!((back.calls, back.errors, back.logins), (4, 3, 1));
        assert_eq!(
            back.messages,
            vec![("HTTP 503".to_owned(), 1), ("boom".to_owned(), 2)]
        );
    }
}
