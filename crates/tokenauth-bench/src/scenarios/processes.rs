//! `processes`: several processes, each with an engine of its own, sharing
//! one 2BA connection whose refresh token rotates, through a token store
//! (or, with `memory`, each through its own).
//!
//! Per store and per process count (1, then `--processes`) the parent:
//! 1. prepares the store: nothing (`memory`), a fresh temporary directory
//!    (`file`), or a fresh key prefix and a random 32-byte key on the
//!    harness's own `redis-server` (`redis`);
//! 2. starts the children (`--processes-child STORE`, hidden), which build
//!    their engine, open their HTTP connections (no token yet) and print
//!    `READY`;
//! 3. once all are ready, resets the emulator's counters and writes each
//!    child `go <unix ms>`: a common start 300 ms ahead;
//! 4. reads each child's one-line JSON report ([`ChildReport`]), waits for
//!    it to exit, and reads the emulator's 2BA token counts.
//!
//! Each run starts cold (no token anywhere, a tenant of its own), so the
//! first login is counted. Every child is killed when its handle is
//! dropped, whatever ends the run, and exits by itself when its stdin
//! closes (the parent is gone); `redis-server` runs under a guard process
//! that kills it when its stdin closes (see `redis_server`).

use std::io::{BufRead as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use reqwest_middleware::ClientWithMiddleware;
use tokenauth_core::store::FileStore;
use tokenauth_core::{Connection, Providers, TokenAuth};
use tokenauth_emulator::{TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET};
use tokenauth_redis::{KEY_ENV, Keyring, RedisStore};
use tokenauth_reqwest::MiddlewareExt as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{Env, Params};
use crate::emulator::poll_marks;
use crate::load;
use crate::redis_server::RedisProcess;
use crate::report::{
    self, ChildReport, Messages, ProcessRun, ProcessesReport, ScenarioReport, TokenCounts,
};
use crate::stats::Errors;
use crate::variants::{self, Target};
use crate::{BenchArgs, ScenarioArg, StoreKind};

/// `--processes` unless given.
const DEFAULT_PROCESSES: usize = 8;

/// `--processes` at most (each child is a process with its own runtime).
const MAX_PROCESSES: usize = 64;

/// How long the children may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// The common start is this far after the last child became ready.
const START_DELAY: Duration = Duration::from_millis(300);

/// How long past the window's end a child's report may take.
const RESULT_GRACE: Duration = Duration::from_secs(90);

/// How long a child may take to exit after its report.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// At most this many requests per child and window, whatever the duration.
const MAX_REQUESTS_PER_CHILD: usize = 20_000_000;

/// First emulator tenant of this scenario; each run adds its number, so no
/// run sees another's tokens.
const TENANT_BASE: u64 = 40_000_000;

/// What a child prints once it can start.
const READY: &str = "tokenauth-bench-child ready";

/// The id of the Redis store's key (the key itself is random per run).
const KEY_ID: &str = "bench";

/// Checks the `processes` flags before anything starts.
pub(super) fn check(args: &BenchArgs) -> anyhow::Result<()> {
    let n = args.processes.unwrap_or(DEFAULT_PROCESSES);
    if n == 0 || n > MAX_PROCESSES {
        bail!("--processes {n}: give a number of processes from 1 to {MAX_PROCESSES}");
    }
    Ok(())
}

/// The provider description the children use: the emulated 2BA as
/// `providers.toml` describes the real one, login (password grant) and a
/// rotating refresh grant, a rejected refresh (400) logging in again.
fn rotating_toml(target: &Target) -> String {
    let base = &target.base;
    format!(
        r#"[providers.bench]
name = "2BA (emulated, tokenauth-bench processes)"
api = ["{base}/2ba/"]

[providers.bench.inputs]
username = {{}}
password = {{ secret = true }}
client_id = {{}}
client_secret = {{ secret = true }}

[providers.bench.login]
url = "{base}/2ba-authorize/OAuth/Token"
body = "form"
timeout = "30s"

[providers.bench.login.fields]
grant_type = "password"
username = "{{{{ inputs.username }}}}"
password = "{{{{ inputs.password }}}}"
client_id = "{{{{ inputs.client_id }}}}"
client_secret = "{{{{ inputs.client_secret }}}}"

[providers.bench.refresh]
rotate = true
on_error = {{ status = [400], action = "login" }}

[providers.bench.refresh.fields]
grant_type = "refresh_token"
refresh_token = "{{{{ token.refresh }}}}"
client_id = "{{{{ inputs.client_id }}}}"
client_secret = "{{{{ inputs.client_secret }}}}"

[providers.bench.response]
access_token = "/access_token"
refresh_token = "/refresh_token"
expires_in = "/expires_in"
token_type = "/token_type"

[providers.bench.expiry]
skew = "20%"

[providers.bench.inject]
header = "Authorization"
value = "Bearer {{{{ token.access }}}}"
"#
    )
}

/// The connection of emulator tenant `n`, as every process of a run holds it.
fn tenant_connection(n: u64) -> Connection {
    Connection::new(format!("tenant-{n}"))
        .with_input("username", format!("tenant-{n}"))
        .with_secret("password", format!("tenant-{n}-secret"))
        .with_input("client_id", TWOBA_DEMO_CLIENT_ID)
        .with_secret("client_secret", TWOBA_DEMO_CLIENT_SECRET)
}

// ---------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------

/// `--scenario processes`.
pub(super) async fn run(p: &Params, env: &Env, args: &BenchArgs) -> anyhow::Result<ScenarioReport> {
    check(args)?;
    let n = args.processes.unwrap_or(DEFAULT_PROCESSES);
    let stores: Vec<StoreKind> = args
        .store
        .map_or_else(|| StoreKind::ALL.to_vec(), |s| vec![s]);
    // First, so that a missing redis-server is said before any run.
    let redis = if stores.contains(&StoreKind::Redis) {
        let server = tokio::task::block_in_place(RedisProcess::spawn)?;
        eprintln!(
            "tokenauth-bench: processes: redis-server (child process) at {}",
            server.url()
        );
        Some(server)
    } else {
        None
    };
    env.control.set_token_latency(p.token_latency).await?;
    env.control.set_ttl(p.ttl).await?;
    let counts: Vec<usize> = if n == 1 { vec![1] } else { vec![1, n] };
    let mut runs = Vec::new();
    let mut failed_runs = Vec::new();
    let mut number = 0u64;
    for &store in &stores {
        for &count in &counts {
            number += 1;
            let what = format!("{} store, {count} process(es)", store.name());
            let began = Instant::now();
            match run_once(p, env, store, count, number, redis.as_ref()).await {
                Ok(run) => {
                    progress(&run, began);
                    runs.push(run);
                }
                Err(e) => {
                    eprintln!("tokenauth-bench: processes: {what}: failed: {e:#}");
                    failed_runs.push(format!("{what}: {e:#}"));
                }
            }
        }
    }
    drop(redis);
    let notes = vec![
        format!(
            "Each run starts cold: a tenant of its own, no token in any process or store (a fresh \
             directory for file, a fresh key prefix for redis), so the first login is counted. The \
             children start together ({} ms after the last one was ready: engine built, HTTP \
             connections open). Token requests and refresh reuse are the emulator's 2BA counts from \
             just before the start until every child had exited; API requests, latencies and \
             caller errors (any request that did not end in a 200 for the caller) are summed over \
             the children's reports, latencies exactly (all samples).",
            START_DELAY.as_millis()
        ),
        "Stores: memory = each process its own default MemoryStore (no sharing: the N-fold \
         contrast); file = one FileStore directory shared by every process of the run; redis = \
         one RedisStore (encrypted with a random 32-byte key made for the run, passed to the \
         children in TOKENAUTH_STORE_KEY) on a redis-server the harness started on 127.0.0.1 \
         without persistence. For a lifetime under 10 s the engine renews at half of it (its 5 s \
         renewal floor), so a single process renews about every TTL / 2 + token latency."
            .to_owned(),
    ];
    Ok(ScenarioReport {
        name: p.name().to_owned(),
        params: p.report(),
        variants: Vec::new(),
        tokenauth_vs_plain: None,
        tokenauth_cpu_vs_plain: None,
        notes,
        processes: Some(ProcessesReport {
            processes: n,
            stores: stores.iter().map(|s| s.name().to_owned()).collect(),
            runs,
            failed_runs,
        }),
    })
}

fn progress(run: &ProcessRun, began: Instant) {
    eprintln!(
        "tokenauth-bench: processes {:<6} x{:<2} {:>9} requests in {:.2} s, {} token requests ({} login, {} refresh), {} refresh reuse, {} caller errors ({:.1} s in all)",
        run.store,
        run.processes,
        run.requests,
        run.elapsed_s,
        run.token.requests,
        run.token.logins,
        run.token.refreshes,
        run.token.refresh_reuse,
        run.caller_errors,
        began.elapsed().as_secs_f64()
    );
}

/// One run: `count` children on `store`, started together.
async fn run_once(
    p: &Params,
    env: &Env,
    store: StoreKind,
    count: usize,
    number: u64,
    redis: Option<&RedisProcess>,
) -> anyhow::Result<ProcessRun> {
    env.control.quiesce(p.settle()).await?;
    let tenant = TENANT_BASE + number;
    let shared = Shared::prepare(store, number, redis)?;
    let mut children = Vec::with_capacity(count);
    for i in 0..count {
        children.push(ChildProcess::spawn(
            p, &env.base, store, &shared, tenant, i,
        )?);
    }
    let ready_by = Instant::now() + READY_LIMIT;
    for c in &mut children {
        c.ready(ready_by).await?;
    }
    env.control.reset_stats().await?;
    let start = Instant::now() + START_DELAY;
    let start_ms = unix_ms(SystemTime::now() + START_DELAY);
    let stop = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll_marks(
        env.control.clone(),
        start,
        stop.clone(),
        START_DELAY + p.duration + RESULT_GRACE,
    ));
    let reports = async {
        for c in &mut children {
            c.go(start_ms).await?;
        }
        let until = start + p.duration + RESULT_GRACE;
        let mut reports = Vec::with_capacity(count);
        for c in &mut children {
            reports.push(c.result(until).await?);
        }
        anyhow::Ok(reports)
    }
    .await;
    stop.store(true, Ordering::Release);
    let marks = poller.await.unwrap_or_default();
    let reports = reports?;
    for c in children {
        c.finish().await?;
    }
    let stats = env.control.stats().await?;
    drop(shared);
    Ok(report::combine(
        store.name(),
        p.workers,
        &reports,
        TokenCounts::from(&stats.twoba.token),
        marks.arrivals_s,
        stats.twoba.api.replies_by_status.clone(),
    ))
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the children of one run share.
enum Shared {
    Memory,
    File(TempDir),
    Redis {
        url: String,
        prefix: String,
        /// `bench:<base64>`: secret, only ever put in the children's
        /// environment.
        key: String,
    },
}

impl Shared {
    fn prepare(
        store: StoreKind,
        number: u64,
        redis: Option<&RedisProcess>,
    ) -> anyhow::Result<Self> {
        let unique = format!(
            "{}-{number}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        Ok(match store {
            StoreKind::Memory => Shared::Memory,
            StoreKind::File => Shared::File(TempDir::create(&format!(
                "tokenauth-bench-processes-{unique}"
            ))?),
            StoreKind::Redis => {
                let server = redis.context("no redis-server was started")?;
                let mut bytes = [0u8; 32];
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut bytes))
                    .context(
                        "reading 32 random bytes from /dev/urandom for the Redis store's key",
                    )?;
                let key = format!(
                    "{KEY_ID}:{}",
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                );
                // The children parse it the same way: fail here, not in each.
                Keyring::parse(&key).map_err(|e| anyhow!("the generated key: {e}"))?;
                Shared::Redis {
                    url: server.url().to_owned(),
                    prefix: format!("bench-{unique}"),
                    key,
                }
            }
        })
    }
}

/// A directory of the run's own, removed (with the tokens in it) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create(name: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(name);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&path)
            .with_context(|| format!("creating the file store's directory {}", path.display()))?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process of a run. Killed when dropped.
struct ChildProcess {
    index: usize,
    child: Child,
    /// Held open until the child has exited: its EOF tells the child that
    /// the parent is gone.
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl ChildProcess {
    fn spawn(
        p: &Params,
        base: &str,
        store: StoreKind,
        shared: &Shared,
        tenant: u64,
        index: usize,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut cmd = Command::new(exe);
        cmd.args(["--processes-child", store.name(), "--emulator-url", base])
            .args(["--workers", &p.workers.to_string()])
            .args(["--duration", &format!("{}ms", p.duration.as_millis())])
            .args(["--tenant", &tenant.to_string()])
            .args(["--child-index", &index.to_string()])
            .env_remove(KEY_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        match shared {
            Shared::Memory => {}
            Shared::File(dir) => {
                cmd.arg("--store-dir").arg(dir.path());
            }
            Shared::Redis { url, prefix, key } => {
                cmd.args(["--redis-url", url, "--key-prefix", prefix])
                    .env(KEY_ENV, key);
            }
        }
        let mut child = cmd.spawn().context("starting a processes child")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("the child has no stdout")?;
        Ok(ChildProcess {
            index,
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
        })
    }

    /// The child's next stdout line, by `until`.
    async fn line(&mut self, until: Instant, what: &str) -> anyhow::Result<String> {
        let i = self.index;
        match tokio::time::timeout_at(until.into(), self.stdout.next_line()).await {
            Err(_) => bail!("child {i} sent no {what} in time"),
            Ok(Err(e)) => Err(e).with_context(|| format!("reading child {i}'s {what}")),
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => {
                let status = tokio::time::timeout(EXIT_LIMIT, self.child.wait()).await;
                let status = match status {
                    Ok(Ok(s)) => s.to_string(),
                    _ => "still running".to_owned(),
                };
                bail!(
                    "child {i} closed its stdout before its {what} ({status}; its stderr is above)"
                )
            }
        }
    }

    async fn ready(&mut self, until: Instant) -> anyhow::Result<()> {
        let line = self.line(until, "ready line").await?;
        if line.trim() != READY {
            bail!(
                "child {} printed {:?} instead of its ready line",
                self.index,
                line.chars().take(200).collect::<String>()
            );
        }
        Ok(())
    }

    async fn go(&mut self, start_ms: u64) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("the child's stdin is closed")?;
        stdin
            .write_all(format!("go {start_ms}\n").as_bytes())
            .await
            .and(stdin.flush().await)
            .with_context(|| format!("starting child {}", self.index))
    }

    async fn result(&mut self, until: Instant) -> anyhow::Result<ChildReport> {
        let line = self.line(until, "report").await?;
        serde_json::from_str(&line)
            .with_context(|| format!("reading child {}'s report", self.index))
    }

    /// Waits for the child to exit (then closes its stdin).
    async fn finish(mut self) -> anyhow::Result<()> {
        let status = tokio::time::timeout(EXIT_LIMIT, self.child.wait())
            .await
            .map_err(|_| anyhow!("child {} did not exit after its report", self.index))??;
        drop(self.stdin.take());
        if !status.success() {
            bail!("child {} failed after its report ({status})", self.index);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------

/// `tokenauth-bench --processes-child STORE`: one process of a run; prints
/// [`READY`], waits for `go <unix ms>` on stdin, runs `--workers` workers
/// from then for `--duration`, prints a [`ChildReport`] line.
pub(crate) async fn child(args: &BenchArgs, store: StoreKind) -> anyhow::Result<()> {
    let base = args
        .emulator_url
        .as_deref()
        .context("--emulator-url is required")?;
    let p = Params::resolve(ScenarioArg::Processes, args);
    let target = Target::new(base)?;
    let http = variants::http_client()?;
    let providers = Providers::from_toml("tokenauth-bench-processes.toml", &rotating_toml(&target))
        .map_err(|e| anyhow!("the generated provider description: {e}"))?;
    let mut builder = TokenAuth::builder(providers).http_client(http.clone());
    match store {
        StoreKind::Memory => {}
        StoreKind::File => {
            let dir = args
                .store_dir
                .as_ref()
                .context("--store-dir is required with --processes-child file")?;
            builder = builder.store(Arc::new(FileStore::new(dir)));
        }
        StoreKind::Redis => {
            let url = args
                .redis_url
                .as_deref()
                .context("--redis-url is required with --processes-child redis")?;
            let prefix = args
                .key_prefix
                .as_deref()
                .context("--key-prefix is required with --processes-child redis")?;
            let keyring = Keyring::from_env(KEY_ENV)
                .map_err(|e| anyhow!("{e}"))?
                .with_context(|| {
                    format!("{KEY_ENV} is not set: the parent passes the key in it")
                })?;
            let redis = RedisStore::builder(url)
                .key_prefix(prefix)
                .encryption(keyring)
                .build()
                .await
                .map_err(|e| anyhow!("the Redis store: {e}"))?;
            builder = builder.store(Arc::new(redis));
        }
    }
    let auth = builder.build()?;
    let client = reqwest_middleware::ClientBuilder::new(http.clone())
        .with(auth.middleware())
        .build();
    let conn = tenant_connection(args.tenant);
    // HTTP connections open, no token fetched.
    load::warm_pool(&http, &target, p.workers).await;
    let go = start_line();
    println!("{READY}");
    let line = go
        .await
        .context("the parent closed stdin before the start")?;
    let start_ms: u64 = line
        .trim()
        .strip_prefix("go ")
        .and_then(|ms| ms.parse().ok())
        .with_context(|| format!("expected `go <unix ms>` on stdin, got {:?}", line.trim()))?;
    let wait = (UNIX_EPOCH + Duration::from_millis(start_ms))
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let start = Instant::now() + wait;
    tokio::time::sleep_until(start.into()).await;

    let report = window(
        &client,
        &target,
        &conn,
        start,
        p.duration,
        p.workers,
        args.child_index,
    )
    .await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Reads the start line from stdin on a thread of its own, which then
/// waits for stdin's end: the parent closes it only after this process has
/// exited, so an end before that means the parent is gone, and this
/// process exits.
fn start_line() -> tokio::sync::oneshot::Receiver<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = tx.send(line);
            let mut rest = Vec::new();
            let _ = stdin.lock().read_to_end(&mut rest);
        }
        eprintln!("tokenauth-bench: processes child: the parent closed stdin; exiting");
        std::process::exit(3);
    });
    rx
}

/// A failed request, as the caller saw it.
enum Failure {
    Status(u16),
    Failed(String),
}

/// `workers` closed-loop workers from `start` for `duration`.
async fn window(
    client: &ClientWithMiddleware,
    target: &Target,
    conn: &Connection,
    start: Instant,
    duration: Duration,
    workers: usize,
    index: usize,
) -> anyhow::Result<ChildReport> {
    let deadline = start + duration;
    let workers = workers.max(1);
    let cap = MAX_REQUESTS_PER_CHILD / workers;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (client, url, conn) = (client.clone(), target.api.clone(), conn.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(4096);
                let mut errors = Errors::default();
                let mut messages = Messages::default();
                for _ in 0..cap {
                    let t0 = Instant::now();
                    if t0 >= deadline {
                        break;
                    }
                    let outcome = call(&client, &url, &conn).await;
                    latencies.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                    match outcome {
                        Ok(()) => {}
                        Err(Failure::Status(s)) => {
                            *errors.by_status.entry(s).or_default() += 1;
                            messages.add(&format!("the API answered {s}"), 1);
                        }
                        Err(Failure::Failed(m)) => {
                            errors.failed += 1;
                            messages.add(&m, 1);
                        }
                    }
                }
                (latencies, errors, messages)
            })
        })
        .collect();
    let mut report = ChildReport {
        index,
        ..ChildReport::default()
    };
    for t in tasks {
        let (latencies, errors, messages) = t.await.context("a worker panicked")?;
        report.latencies_us.extend(latencies);
        report.errors.merge(&errors);
        for m in messages.0 {
            report.messages.add(&m.message, m.count);
        }
    }
    report.elapsed_s = start.elapsed().as_secs_f64();
    Ok(report)
}

/// One API request through the middleware, body read to the end.
async fn call(
    client: &ClientWithMiddleware,
    url: &url::Url,
    conn: &Connection,
) -> Result<(), Failure> {
    let reply = client
        .get(url.clone())
        .with_extension(conn.clone())
        .send()
        .await
        .map_err(|e| Failure::Failed(chain(&e)))?;
    let status = reply.status().as_u16();
    reply
        .bytes()
        .await
        .map_err(|e| Failure::Failed(format!("reading the API reply: {}", chain(&e))))?;
    if status == 200 {
        Ok(())
    } else {
        Err(Failure::Status(status))
    }
}

/// An error and its sources, each said once. tokenauth's errors hold no
/// secret; the URLs here carry none.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_description_loads_with_a_rotating_refresh() {
        let target = Target::new("http://127.0.0.1:9").unwrap();
        let providers = Providers::from_toml("t.toml", &rotating_toml(&target));
        assert!(
            providers.is_ok(),
            "{:?}",
            providers.err().map(|e| e.to_string())
        );
    }

    #[test]
    fn process_counts_out_of_range_are_refused() {
        for bad in [0, MAX_PROCESSES + 1] {
            let args = BenchArgs {
                processes: Some(bad),
                ..BenchArgs::default()
            };
            let e = check(&args).unwrap_err().to_string();
            assert!(e.contains("from 1 to"), "{e}");
        }
        assert!(check(&BenchArgs::default()).is_ok());
    }
}
