//! `tokenauth-bench`: a load harness that answers, in one run and as ratios,
//! what the middleware costs, how many token requests a load causes, and
//! whether anyone waits when a token expires.
//!
//! ```text
//! cargo run --release -p tokenauth-bench -- --scenario all \
//!     --json bench.json --plot docs/bench.svg
//! # several processes sharing a rotating token (not part of `all`; ~80 s)
//! cargo run --release -p tokenauth-bench -- --scenario processes
//! # through `tokenauth proxy` vs the middleware (not part of `all`; ~30 s)
//! cargo build --release -p tokenauth-cli
//! cargo run --release -p tokenauth-bench -- --scenario proxy
//! ```
//!
//! # What runs where
//!
//! - **The emulator** (`tokenauth-emulator`, the 2BA provider) runs in a
//!   child process: this same binary re-executed as `tokenauth-bench
//!   --serve-emulator` (hidden), on 127.0.0.1 only, with 2 runtime threads.
//!   The harness drives it over its HTTP control API (`/_emulator/faults`,
//!   `/_emulator/reset_stats`, `/_emulator/stats`). Keeping its token table
//!   out of the harness process keeps the `tenants` memory figure honest. It
//!   dies with the harness (its stdin closes; the harness also kills it by
//!   its handle on exit).
//! - **The provider description** is generated here as TOML text: a login
//!   (`grant_type=password`, form) at `http://127.0.0.1:PORT/2ba-authorize/OAuth/Token`,
//!   an API prefix `http://127.0.0.1:PORT/2ba/`, expiry from the reply's
//!   `expires_in` (whole seconds; the default `expiry.skew`), a bearer
//!   header. No refresh table: every variant renews with the same password
//!   grant. So `--ttl` (the emulator's access-token lifetime) and
//!   `--token-latency` (its token-endpoint delay) are emulator knobs, set
//!   before each scenario.
//! - **The load** runs on a multi-threaded tokio runtime with one worker per
//!   core, in this process; in `tenants` each variant runs in a fresh child
//!   process of its own (`--tenants-child`, hidden) so that its resident
//!   memory delta is its own; it reports back as JSON on stdout. In
//!   `processes` the load runs in `--processes` child processes at once
//!   (`--processes-child STORE`, hidden), see below.
//!
//! # Variants
//!
//! Every variant uses a `reqwest::Client` built by the same function (no
//! redirects, 30 s timeout) and sends `GET /2ba/1/json/Product/DetailsForProduct`,
//! reading the whole body. Any status but 200 is an error.
//!
//! - `plain`: the client with a fixed header, fetched once up front with a
//!   24 h lifetime: the ceiling.
//! - `tokenauth`: `reqwest_middleware::ClientBuilder::new(client).with(auth.middleware())`,
//!   the connection attached per request with `with_extension(Connection)`.
//! - `mutex-baseline`: golang.org/x/oauth2's `ReuseTokenSource`, by hand:
//!   one `tokio::sync::Mutex` per connection, held while checking the token
//!   (valid while `now + 10 s < expiry`, expiry = reply time + `expires_in`)
//!   and, when it is not valid, **while fetching** a new one.
//! - `no-cache` (`burst` only): a token request before every API request.
//! - `proxy` (`proxy` only): the client with no credential, sending to
//!   `tokenauth proxy` (the release binary beside this one, started as a
//!   child process for the scenario with a `connections.toml` for its
//!   tenant and a random key) at `/bench/1/json/Product/DetailsForProduct`
//!   with `Tokenauth-Key` and `Tokenauth-Connection`; the proxy forwards
//!   through the tower layer on a hyper-util client. Its `CPU/req` adds the
//!   proxy process's CPU time to the harness's. Build the binary first:
//!   `cargo build --release -p tokenauth-cli`.
//!
//! # Scenarios and their defaults (explicit flags win)
//!
//! | scenario | workers | duration | ttl | token latency | connections | rounds |
//! |---|---|---|---|---|---|---|
//! | `steady` | 32 | 9 s | 1 h | 0 | 1 | 9 |
//! | `burst` | `--burst` 10,000 requests at once | - | 1 h | 50 ms | 1 | 3 |
//! | `rollover` | 64 | 20 s | 15 s | 200 ms | 1 | 1 |
//! | `tenants` | 64 | 3 s | 1 h | 0 | 100,000 | 1 |
//! | `processes` | 64 per process, 8 processes | 10 s | 3 s | 100 ms | 1 | 1 per store and process count |
//! | `proxy` | 32 | 9 s | 1 h | 0 | 1 | 9 |
//!
//! `--duration` is the measured time per variant, split evenly over the
//! rounds. `--connections` applies to `tenants` only; `--burst` and
//! `--burst-in-flight` to `burst` only.
//!
//! - **Rounds.** Each round runs every variant once, one after the other,
//!   against the same emulator; the order rotates by one each round, so
//!   machine noise and warm-up effects hit all variants alike. Figures are
//!   totals over the rounds; the JSON keeps each round.
//! - **Warm-up.** Right before each window the variant sends `--workers`
//!   concurrent requests (not measured), so HTTP connections are open and
//!   the caches of `tokenauth` and `mutex-baseline` hold a fresh token. In
//!   `burst` each round starts with a fresh engine / token source (cold) and
//!   the warm-up only opens HTTP connections (to the control API); in
//!   `tenants` the fill is the warm-up.
//! - **Counting.** The emulator's counters are reset at the start of each
//!   measured window and read at its end: `token requests` are the ones the
//!   emulator saw during the window. Between windows the harness waits until
//!   no token request is in flight, so a background renewal is never
//!   counted against the next variant.
//! - **CPU.** The CPU time of the process that runs the load (user +
//!   system, all threads: `CLOCK_PROCESS_CPUTIME_ID`, nanoseconds) is read
//!   right before each window's clock starts and right after its load ends;
//!   `CPU/req` is that over the window's requests, `CPU vs plain` over
//!   plain's. The emulator is another process, so it is the client's CPU:
//!   the variant's stack plus the harness's own load generation (the worker
//!   loop, the recording of every latency, the 10 ms stats poller), which is
//!   the same for every variant. In `tenants` it is the variant's child
//!   process's. Time spent waiting for a core does not count, but on a busy
//!   machine it still moves (cache misses, context switches, the runtime
//!   parking and waking its workers): read it with its per-round ratios, as
//!   req/s. `processes` does not report it.
//! - **Renewal marks.** During each window a poller reads `/_emulator/stats`
//!   every 10 ms; a rise of the token-request counter marks a token request
//!   (at most 10 ms after it arrived) and the in-flight gauge gives the
//!   span it was being served. The plot draws both on the latency series.
//! - **Bounds.** Every loop is bounded in time (the window, a 30 s request
//!   timeout, a watchdog) and in count (at most 20 million requests per window).
//! - **`burst`.** `--burst` tasks are released together, each sending one
//!   request; all of them ask for a credential at once. Their HTTP sends go
//!   through a limit of `--burst-in-flight` (256) concurrent requests, so the
//!   burst opens at most that many connections (the credential is asked for
//!   before the limit; the limit holds until the response headers).
//! - **`tenants`.** `--connections` connections (emulator accounts
//!   `tenant-<N>`) are created first, then each is fetched once (the fill,
//!   `--workers` at a time), then the measured window hits them round-robin.
//!   Memory per cached token = the growth of `VmRSS` (`/proc/self/status`)
//!   from before the fill to after a second request per connection (all
//!   hits), divided by the connections; see the JSON `memory.includes`. It
//!   is what the process pays, allocator fragmentation from the concurrent
//!   fill included (a fill by one worker grows less).
//! - **`processes`** (`--processes N`, `--store memory|file|redis`; not in
//!   `all`). Several processes, each with an engine of its own, share one
//!   2BA connection, described here as `providers.toml` describes 2BA:
//!   login with the password grant, refresh with the `refresh_token` grant,
//!   `rotate = true` (the emulator's refresh tokens are single-use; a used
//!   one presented again counts as `refresh_reuse` and is answered 400, on
//!   which the engine logs in again). For each store (default: all three,
//!   one after the other) it runs once with 1 process, then with N (8):
//!   `memory` = each process its own default `MemoryStore` (the N-fold
//!   contrast), `file` = one `FileStore` directory shared by all (a fresh
//!   temporary directory per run, removed after it), `redis` = one
//!   `RedisStore` with a key prefix per run, encrypted with a random 32-byte
//!   key the parent makes per run and passes to the children in
//!   `TOKENAUTH_STORE_KEY`, on a `redis-server` the harness starts on a
//!   free 127.0.0.1 port (`--save "" --appendonly no`, under a guard process,
//!   `--serve-redis`, hidden, that kills it when the harness ends, however it
//!   ends; without `redis-server` on PATH the scenario says to
//!   `apt-get install -y redis-server`). Each child builds its engine, opens
//!   its HTTP connections (no token) and says it is ready; the parent then
//!   resets the emulator's counters and gives every child one start time, so
//!   they start together, cold (no token anywhere, a tenant per run: the
//!   first login is counted). Each child runs `--workers` workers through the
//!   reqwest middleware for `--duration` and prints one JSON line: every
//!   latency, its caller errors (not a 200 for the caller) and their first
//!   distinct messages. The parent sums them (latency percentiles over all
//!   samples) and reads the emulator's token requests by grant (`password`:
//!   logins, `refresh_token`: refreshes) and `refresh_reuse` once every child
//!   has exited. Children are killed when the parent drops them (any error,
//!   Ctrl-C, SIGTERM) and exit by themselves when their stdin closes.
//!
//! # Output
//!
//! A markdown table per scenario (per variant: requests, req/s and its
//! ratio to plain, CPU per request and its ratio to plain, latency p50, p99,
//! p99.9 and max, token requests, errors; memory per token in `tenants`),
//! then tokenauth / plain for req/s and for CPU per request (over all rounds
//! and per round), and the targets, on stdout; `--json FILE` with every
//! figure (per variant and per round; and the latency series); `--plot FILE.svg` with one
//! panel per scenario: the largest latency per time bucket for each variant
//! (log scale), token requests as vertical lines and their in-flight spans
//! shaded, in the variant's colour. `processes` has a table of its own
//! (per store and process count: API requests, req/s, p50/p99/max, token
//! requests as login / refresh, refresh reuse, caller errors) and no panel.

mod emulator;
mod load;
mod plot;
mod proxy;
mod redis_server;
mod report;
mod scenarios;
mod stats;
mod variants;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;

/// Load harness against the emulator: plain reqwest vs tokenauth vs a
/// mutex baseline (and no cache), as ratios, with token-request counts.
#[derive(clap::Parser, Debug, Clone, Default)]
#[command(name = "tokenauth-bench", version, about, long_about = None)]
pub(crate) struct BenchArgs {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = ScenarioArg::All)]
    pub(crate) scenario: ScenarioArg,

    /// Concurrent closed-loop workers (per process in `processes`) [default: steady 32, rollover 64, tenants 64, processes 64]
    #[arg(long)]
    pub(crate) workers: Option<usize>,

    /// Measured time per variant, split over the rounds (per run in `processes`), e.g. 10s [default: steady 9s, rollover 20s, tenants 3s, processes 10s]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<Duration>,

    /// Access-token lifetime the emulator issues (its expires_in) [default: rollover 15s, processes 3s, others 1h]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) ttl: Option<Duration>,

    /// Token-endpoint latency of the emulator [default: rollover 200ms, processes 100ms, burst 50ms, others 0s]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) token_latency: Option<Duration>,

    /// Connections (tenants) in `tenants`; the other scenarios use one [default: 100000]
    #[arg(long)]
    pub(crate) connections: Option<usize>,

    /// Concurrent cold requests in `burst` [default: 10000]
    #[arg(long)]
    pub(crate) burst: Option<usize>,

    /// At most this many HTTP requests in flight in `burst` [default: 256]
    #[arg(long)]
    pub(crate) burst_in_flight: Option<usize>,

    /// Rounds (each runs every variant once, order rotated per round) [default: steady 9, burst 3, rollover 1, tenants 1]
    #[arg(long)]
    pub(crate) rounds: Option<usize>,

    /// Write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,

    /// Draw latency over time per variant, renewals marked, as SVG to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,

    /// Internal: serve the emulator for a parent `tokenauth-bench`.
    #[arg(long, hide = true)]
    pub(crate) serve_emulator: bool,

    /// Internal: run redis-server for a parent `tokenauth-bench`.
    #[arg(long, hide = true)]
    pub(crate) serve_redis: bool,

    /// Internal: run one `tenants` variant for a parent `tokenauth-bench`.
    #[arg(long, hide = true, value_name = "VARIANT")]
    pub(crate) tenants_child: Option<String>,

    /// Internal: the emulator of the parent (with --tenants-child).
    #[arg(long, hide = true, value_name = "URL")]
    pub(crate) emulator_url: Option<String>,

    /// Internal: the round number (with --tenants-child).
    #[arg(long, hide = true, default_value_t = 0)]
    pub(crate) round: usize,

    /// Processes in `processes`, each with --workers workers; each store also runs with 1 process for comparison [default: 8]
    #[arg(long)]
    pub(crate) processes: Option<usize>,

    /// The token store in `processes`: memory (each process its own), file (one directory shared by all), redis (a redis-server the harness starts) [default: all three, one after the other]
    #[arg(long, value_enum)]
    pub(crate) store: Option<StoreKind>,

    /// Internal: run one `processes` child with this store.
    #[arg(long, hide = true, value_enum, value_name = "STORE")]
    pub(crate) processes_child: Option<StoreKind>,

    /// Internal: the shared directory (with --processes-child file).
    #[arg(long, hide = true, value_name = "DIR")]
    pub(crate) store_dir: Option<PathBuf>,

    /// Internal: the Redis server (with --processes-child redis); the key
    /// comes in TOKENAUTH_STORE_KEY.
    #[arg(long, hide = true, value_name = "URL")]
    pub(crate) redis_url: Option<String>,

    /// Internal: the Redis key prefix of the run (with --processes-child redis).
    #[arg(long, hide = true)]
    pub(crate) key_prefix: Option<String>,

    /// Internal: the emulator tenant of the run (with --processes-child).
    #[arg(long, hide = true, default_value_t = 0)]
    pub(crate) tenant: u64,

    /// Internal: this child's number in its run (with --processes-child).
    #[arg(long, hide = true, default_value_t = 0)]
    pub(crate) child_index: usize,
}

/// `--store`: where the processes of `processes` keep their tokens.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    /// Each process its own `MemoryStore` (the default store): no sharing.
    Memory,
    /// One `FileStore` directory shared by all processes (a fresh temp dir per run).
    File,
    /// One `RedisStore` (encrypted, a key prefix per run) on a redis-server the harness starts.
    Redis,
}

impl StoreKind {
    pub(crate) const ALL: [StoreKind; 3] = [StoreKind::Memory, StoreKind::File, StoreKind::Redis];

    pub(crate) fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::File => "file",
            StoreKind::Redis => "redis",
        }
    }
}

/// `--scenario`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ScenarioArg {
    /// Long TTL: the overhead against plain.
    Steady,
    /// Many concurrent cold requests for one connection.
    Burst,
    /// A short TTL and a slow token endpoint: does anyone wait on a renewal?
    Rollover,
    /// Many connections, each fetched once, then hit: memory per token.
    Tenants,
    /// Several processes sharing one rotating 2BA token through a store.
    Processes,
    /// A plain client through `tokenauth proxy` (a child process) vs the middleware in-process.
    Proxy,
    /// steady, burst, rollover and tenants, in this order (not processes or proxy).
    #[default]
    All,
}

fn main() -> ExitCode {
    run(&BenchArgs::parse())
}

/// Runs the harness (or, with the hidden flags, one of its child processes).
fn run(args: &BenchArgs) -> ExitCode {
    if args.serve_emulator {
        return emulator::serve();
    }
    if args.serve_redis {
        return redis_server::serve();
    }
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match (&args.tenants_child, args.processes_child) {
        (Some(variant), _) => rt.block_on(scenarios::tenants_child(args, variant)),
        (None, Some(store)) => rt.block_on(scenarios::processes_child(args, store)),
        // Stopping the run drops everything it started: the emulator, the
        // children and redis-server are killed by their handles' drops.
        (None, None) => rt.block_on(async {
            tokio::select! {
                r = scenarios::run_all(args) => r,
                signal = stop_signal() => Err(anyhow::anyhow!(
                    "stopped by {signal}; the child processes it had started were stopped"
                )),
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: tokenauth-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM (never, if they cannot be watched).
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_ok() {
        return "Ctrl-C";
    }
    std::future::pending().await
}
