//! The scenarios: parameters, rounds with rotated order, and the `tenants`
//! child processes; `processes` in its own module.

mod processes;

pub(crate) use processes::child as processes_child;

use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use http::HeaderValue;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::emulator::{Control, EmulatorProcess};
use super::load::{self, Load, Window};
use super::proxy::ProxyProcess;
use super::report::{self, Machine, Memory, ParamsReport, Report, Run, ScenarioReport};
use super::stats::vm_rss_bytes;
use super::variants::{self, Client, MUTEX_EXPIRY_DELTA, Setup, Target, Variant};
use super::{BenchArgs, ScenarioArg};

/// Lifetime of `plain`'s fixed token.
const PLAIN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest a `tenants` fill may take.
const FILL_LIMIT: Duration = Duration::from_secs(600);

/// One scenario's parameters after defaults and flags.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    scenario: ScenarioArg,
    workers: usize,
    duration: Duration,
    ttl: Duration,
    token_latency: Duration,
    connections: usize,
    burst: usize,
    burst_in_flight: usize,
    rounds: usize,
    bucket: Duration,
}

impl Params {
    fn resolve(scenario: ScenarioArg, a: &BenchArgs) -> Self {
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        // (workers, duration, ttl, token latency, connections, rounds)
        let (workers, duration, ttl, latency, connections, rounds) = match scenario {
            ScenarioArg::Steady | ScenarioArg::Proxy => (32, secs(9), secs(3600), ms(0), 1, 9),
            ScenarioArg::Burst => (0, secs(0), secs(3600), ms(50), 1, 3),
            ScenarioArg::Rollover => (64, secs(20), secs(15), ms(200), 1, 1),
            ScenarioArg::Processes => (64, secs(10), secs(3), ms(100), 1, 1),
            ScenarioArg::Tenants | ScenarioArg::All => (64, secs(3), secs(3600), ms(0), 100_000, 1),
        };
        Params {
            scenario,
            workers: a.workers.unwrap_or(workers).max(1),
            duration: a.duration.unwrap_or(duration),
            ttl: a.ttl.unwrap_or(ttl),
            token_latency: a.token_latency.unwrap_or(latency),
            connections: if scenario == ScenarioArg::Tenants {
                a.connections.unwrap_or(connections).max(1)
            } else {
                1
            },
            burst: a.burst.unwrap_or(10_000).max(1),
            burst_in_flight: a.burst_in_flight.unwrap_or(256).max(1),
            // `processes` runs each (store, process count) once.
            rounds: if scenario == ScenarioArg::Processes {
                1
            } else {
                a.rounds.unwrap_or(rounds).max(1)
            },
            bucket: if scenario == ScenarioArg::Burst {
                ms(10)
            } else {
                ms(100)
            },
        }
    }

    fn name(&self) -> &'static str {
        match self.scenario {
            ScenarioArg::Steady => "steady",
            ScenarioArg::Burst => "burst",
            ScenarioArg::Rollover => "rollover",
            ScenarioArg::Processes => "processes",
            ScenarioArg::Proxy => "proxy",
            ScenarioArg::Tenants | ScenarioArg::All => "tenants",
        }
    }

    fn per_round(&self) -> Duration {
        self.duration / u32::try_from(self.rounds).unwrap_or(u32::MAX)
    }

    fn report(&self) -> ParamsReport {
        let burst = self.scenario == ScenarioArg::Burst;
        ParamsReport {
            workers: if burst { 0 } else { self.workers },
            duration_s: if burst {
                0.0
            } else {
                self.duration.as_secs_f64()
            },
            ttl_s: self.ttl.as_secs_f64(),
            token_latency_ms: self.token_latency.as_secs_f64() * 1000.0,
            connections: self.connections,
            burst: if burst { self.burst } else { 0 },
            burst_in_flight: if burst { self.burst_in_flight } else { 0 },
            rounds: self.rounds,
            bucket_ms: self.bucket.as_secs_f64() * 1000.0,
        }
    }

    /// How long to wait for stray token requests between windows.
    fn settle(&self) -> Duration {
        self.token_latency * 3 + Duration::from_secs(10)
    }
}

/// The variants of a scenario, in their round-0 order.
fn variants_of(scenario: ScenarioArg) -> &'static [Variant] {
    match scenario {
        ScenarioArg::Burst => &[
            Variant::Plain,
            Variant::Tokenauth,
            Variant::MutexBaseline,
            Variant::NoCache,
        ],
        ScenarioArg::Proxy => &[Variant::Plain, Variant::Tokenauth, Variant::Proxy],
        _ => &[Variant::Plain, Variant::Tokenauth, Variant::MutexBaseline],
    }
}

/// Round `r`'s order: indices rotated left by `r`.
fn rotated(n: usize, r: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + r) % n)
}

/// What all scenarios share.
struct Env {
    base: String,
    target: Arc<Target>,
    control: Control,
}

/// `tokenauth-bench` (not a child).
pub(crate) async fn run_all(args: &BenchArgs) -> anyhow::Result<()> {
    let loadavg_start = report::loadavg();
    if args.scenario == ScenarioArg::Processes {
        processes::check(args)?;
    }
    let emulator = EmulatorProcess::spawn()?;
    let env = Env {
        base: emulator.base.clone(),
        target: Arc::new(Target::new(&emulator.base)?),
        control: Control::new(&emulator.base)?,
    };
    eprintln!("tokenauth-bench: emulator (child process) at {}", env.base);
    if cfg!(debug_assertions) {
        eprintln!("tokenauth-bench: warning: a debug build; measure with --release");
    }
    let scenarios = match args.scenario {
        ScenarioArg::All => vec![
            ScenarioArg::Steady,
            ScenarioArg::Burst,
            ScenarioArg::Rollover,
            ScenarioArg::Tenants,
        ],
        s => vec![s],
    };
    let mut reports = Vec::new();
    for s in scenarios {
        let p = Params::resolve(s, args);
        eprintln!("tokenauth-bench: {} ...", p.name());
        let began = std::time::Instant::now();
        let report = match s {
            ScenarioArg::Burst => burst(&p, &env).await,
            ScenarioArg::Tenants => tenants(&p, &env).await,
            ScenarioArg::Processes => processes::run(&p, &env, args).await,
            _ => closed(&p, &env).await,
        }
        .with_context(|| format!("scenario {}", p.name()))?;
        eprintln!(
            "tokenauth-bench: {} done in {:.1} s",
            p.name(),
            began.elapsed().as_secs_f64()
        );
        reports.push(report);
    }
    drop(emulator);
    let report = Report {
        tool: format!("tokenauth-bench {}", env!("CARGO_PKG_VERSION")),
        machine: Machine::detect(loadavg_start),
        command: std::env::args().collect(),
        targets: report::verdicts(&reports),
        scenarios: reports,
    };
    print!("{}", report::markdown(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("tokenauth-bench: wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        if report.scenarios.iter().all(|s| s.variants.is_empty()) {
            eprintln!(
                "tokenauth-bench: --plot: `processes` has no latency series to draw; {} not written",
                path.display()
            );
        } else {
            super::plot::draw(&report, path)
                .with_context(|| format!("drawing {}", path.display()))?;
            eprintln!("tokenauth-bench: wrote {}", path.display());
        }
    }
    Ok(())
}

/// Sets the emulator's knobs for `p` and fetches `plain`'s long-lived header.
async fn prepare(p: &Params, env: &Env) -> anyhow::Result<HeaderValue> {
    env.control.set_token_latency(p.token_latency).await?;
    env.control.set_ttl(PLAIN_TTL).await?;
    let header = variants::plain_header(&variants::http_client()?, &env.target).await;
    env.control.set_ttl(p.ttl).await?;
    header.context("fetching plain's token")
}

fn scenario_report(
    p: &Params,
    runs: &[Vec<Run>],
    expected: impl Fn(Variant) -> Option<u64>,
) -> ScenarioReport {
    let mut variants: Vec<_> = variants_of(p.scenario)
        .iter()
        .zip(runs)
        .map(|(v, r)| report::aggregate(v.name(), r, p.bucket, expected(*v)))
        .collect();
    report::cpu_vs_plain(&mut variants);
    ScenarioReport {
        name: p.name().to_owned(),
        params: p.report(),
        tokenauth_vs_plain: report::ratio(&variants),
        tokenauth_cpu_vs_plain: report::cpu_ratio(&variants),
        variants,
        notes: vec![cpu_note(p)],
        processes: None,
    }
}

/// What `CPU/req` is, and what besides the client stack it holds.
fn cpu_note(p: &Params) -> String {
    let process = if p.scenario == ScenarioArg::Tenants {
        "the variant's child process"
    } else {
        "the harness process"
    };
    format!(
        "CPU/req: the CPU time (user + system, all threads; CLOCK_PROCESS_CPUTIME_ID) of \
         {process} during each measured window, divided by the window's requests; totals over the \
         rounds, each round in the JSON. CPU vs plain: that over plain's. It is the client's CPU: \
         the emulator runs in another process. It also holds the harness's own load generation, \
         the same for every variant: the worker loop and the recording of every latency (about \
         the same per request) and the 10 ms stats poller (about the same per second). So CPU vs \
         plain understates the client stacks' relative cost; the difference in µs is essentially \
         theirs. It does not count time spent waiting for a core, but it still moves with the \
         load on the machine (cache misses, context switches, the runtime parking and waking its \
         workers), so read it with the per-round ratios, as req/s."
    )
}

fn progress(p: &Params, round: usize, v: Variant, w: &Window) {
    eprintln!(
        "tokenauth-bench: {} round {}/{} {:<14} {:>9} requests in {:.2} s, {} token requests, {} errors",
        p.name(),
        round + 1,
        p.rounds,
        v.name(),
        w.requests(),
        w.elapsed_s,
        w.token_requests,
        w.errors.total()
    );
}

/// `steady` and `rollover`: closed-loop workers on one connection, each
/// variant warmed up right before its window.
async fn closed(p: &Params, env: &Env) -> anyhow::Result<ScenarioReport> {
    let plain = prepare(p, env).await?;
    let vs = variants_of(p.scenario);
    let proxy = if vs.contains(&Variant::Proxy) {
        Some(Arc::new(ProxyProcess::spawn(
            &env.target,
            Variant::Proxy.tenant_base(),
        )?))
    } else {
        None
    };
    let mut clients = Vec::new();
    for &v in vs {
        let http = variants::http_client()?;
        let setup = Setup {
            target: &env.target,
            connections: 1,
            plain_header: &plain,
            limit: None,
            proxy: proxy.clone(),
        };
        clients.push(Arc::new(Client::build(v, &http, &setup)?));
    }
    let mut runs: Vec<Vec<Run>> = vs.iter().map(|_| Vec::new()).collect();
    let mut notes = Vec::new();
    for round in 0..p.rounds {
        for (position, i) in rotated(vs.len(), round).enumerate() {
            let warm = load::warm_calls(&clients[i], &env.target, p.workers).await;
            if warm.total() > 0 {
                notes.push(format!(
                    "{} round {}: {} of {} warm-up requests failed",
                    vs[i].name(),
                    round + 1,
                    warm.total(),
                    p.workers
                ));
            }
            env.control.quiesce(p.settle()).await?;
            let load = Load::Closed {
                workers: p.workers,
                duration: p.per_round(),
                connections: 1,
            };
            let window = load::window(&clients[i], &env.target, &env.control, load).await?;
            progress(p, round, vs[i], &window);
            env.control.quiesce(p.settle()).await?;
            runs[i].push(Run {
                round,
                position,
                window,
                memory: None,
            });
        }
    }
    let mut report = scenario_report(p, &runs, |v| expected_token_requests(p, v));
    if p.scenario == ScenarioArg::Rollover {
        report.notes.push(format!(
            "Expected token requests in the window: each variant fetched its token right before it \
             (warm-up, not counted); tokenauth renews {} before expiry (its default skew for a {} s \
             lifetime), mutex-baseline {} s before; each renewal takes the token latency; so \
             floor(duration / (ttl - lead + token latency)).",
            humantime::format_duration(tokenauth_lead(p.ttl)),
            p.ttl.as_secs_f64(),
            MUTEX_EXPIRY_DELTA.as_secs()
        ));
    }
    if p.scenario == ScenarioArg::Proxy {
        report.notes.push(proxy_note(&report));
    }
    report.notes.extend(notes);
    Ok(report)
}

/// What `proxy` compares, and the proxy over the in-process middleware.
fn proxy_note(report: &ScenarioReport) -> String {
    let v = |name: &str| report.variants.iter().find(|v| v.name == name);
    let comparison = match (v("proxy"), v("tokenauth")) {
        (Some(proxy), Some(direct)) => {
            let cpu = match (proxy.cpu_us_per_request, direct.cpu_us_per_request) {
                (Some(a), Some(b)) => format!(
                    "; CPU per request {a:.1} µs vs {b:.1} µs (+{:.1} µs for the extra hop)",
                    a - b
                ),
                _ => String::new(),
            };
            format!(
                " proxy / tokenauth: {:.3} x the requests per second{cpu}.",
                proxy.requests_per_s / direct.requests_per_s.max(f64::MIN_POSITIVE)
            )
        }
        _ => String::new(),
    };
    format!(
        "proxy: the same workers send with a plain reqwest client (the key and \
         `Tokenauth-Connection` headers) to `tokenauth proxy`, a child process (the release \
         binary beside this one), which forwards through tokenauth's tower layer on a hyper-util \
         client; tokenauth: the reqwest middleware in the harness process. The proxy's CPU/req is \
         the harness's plus the proxy process's (/proc/PID/stat, 10 ms ticks), so it is the \
         whole cost of the hop: a second HTTP exchange on the same two cores.{comparison}"
    )
}

/// tokenauth's renewal lead for a lifetime with the default `expiry.skew`
/// (10% of it, at least 5 s or half of it, at most 90% of it), as the core
/// documents it (`cache` module, "Refresh-ahead"); the jitter of up to 10%
/// of the lead is left out.
fn tokenauth_lead(ttl: Duration) -> Duration {
    let floor = Duration::from_secs(5).min(ttl / 2);
    ttl.mul_f64(0.1).max(floor).min(ttl.mul_f64(0.9))
}

fn expected_token_requests(p: &Params, v: Variant) -> Option<u64> {
    if p.scenario != ScenarioArg::Rollover {
        return None;
    }
    let interval = match v {
        Variant::Tokenauth => p.ttl - tokenauth_lead(p.ttl),
        Variant::MutexBaseline if p.ttl > MUTEX_EXPIRY_DELTA => p.ttl - MUTEX_EXPIRY_DELTA,
        Variant::Plain => return Some(0),
        _ => return None,
    } + p.token_latency;
    Some((p.duration.as_secs_f64() / interval.as_secs_f64()).floor() as u64)
}

/// `burst`: per round and variant, a fresh (cold) client, then `burst`
/// requests at once.
async fn burst(p: &Params, env: &Env) -> anyhow::Result<ScenarioReport> {
    let plain = prepare(p, env).await?;
    let vs = variants_of(p.scenario);
    let mut https = Vec::new();
    let mut limits = Vec::new();
    for _ in vs {
        let http = variants::http_client()?;
        // Open the connections the burst may use, without any token.
        load::warm_pool(&http, &env.target, p.burst_in_flight).await;
        https.push(http);
        limits.push(Arc::new(Semaphore::new(p.burst_in_flight)));
    }
    let mut runs: Vec<Vec<Run>> = vs.iter().map(|_| Vec::new()).collect();
    for round in 0..p.rounds {
        for (position, i) in rotated(vs.len(), round).enumerate() {
            let setup = Setup {
                target: &env.target,
                connections: 1,
                plain_header: &plain,
                limit: Some(limits[i].clone()),
                proxy: None,
            };
            let client = Arc::new(Client::build(vs[i], &https[i], &setup)?);
            let window = load::window(
                &client,
                &env.target,
                &env.control,
                Load::Burst { n: p.burst },
            )
            .await?;
            progress(p, round, vs[i], &window);
            env.control.quiesce(p.settle()).await?;
            runs[i].push(Run {
                round,
                position,
                window,
                memory: None,
            });
        }
    }
    let mut report = scenario_report(p, &runs, |_| None);
    report.notes.push(format!(
        "Each round builds every variant afresh (empty cache) and releases {} requests at once; \
         requests/s = requests / time until the last one returned.",
        p.burst
    ));
    Ok(report)
}

/// What a `tenants` child prints.
#[derive(Debug, Serialize, Deserialize)]
struct ChildOutput {
    window: Window,
    memory: Option<Memory>,
}

/// `tenants`: each variant in a fresh child process, per round.
async fn tenants(p: &Params, env: &Env) -> anyhow::Result<ScenarioReport> {
    let plain = prepare(p, env).await?;
    let vs = variants_of(p.scenario);
    let mut runs: Vec<Vec<Run>> = vs.iter().map(|_| Vec::new()).collect();
    for round in 0..p.rounds {
        for (position, i) in rotated(vs.len(), round).enumerate() {
            let (p2, base, header, v) = (p.clone(), env.base.clone(), plain.clone(), vs[i]);
            let out = tokio::task::spawn_blocking(move || run_child(&p2, &base, &header, v, round))
                .await
                .context("the tenants child runner panicked")??;
            progress(p, round, vs[i], &out.window);
            env.control.quiesce(p.settle()).await?;
            runs[i].push(Run {
                round,
                position,
                window: out.window,
                memory: out.memory,
            });
        }
    }
    let mut report = scenario_report(p, &runs, |_| None);
    report.notes.push(format!(
        "Each variant runs in a fresh child process: it creates {} connections, fills them (one \
         request each, {} at a time; fill time and token requests in the JSON), then is measured \
         hitting them round-robin. Memory per token = VmRSS growth across the fill / connections: \
         see `memory.includes` in the JSON.",
        p.connections, p.workers
    ));
    Ok(report)
}

fn run_child(
    p: &Params,
    base: &str,
    header: &HeaderValue,
    v: Variant,
    round: usize,
) -> anyhow::Result<ChildOutput> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["--tenants-child", v.name(), "--emulator-url", base])
        .args(["--workers", &p.workers.to_string()])
        .args(["--duration", &format!("{}ms", p.per_round().as_millis())])
        .args(["--connections", &p.connections.to_string()])
        .args(["--round", &round.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a tenants child")?;
    // The header goes over stdin, not the command line.
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(header.as_bytes())?;
        stdin.write_all(b"\n")?;
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the tenants child for {} failed ({status})", v.name());
    }
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).context("reading the tenants child's result")
}

/// `tokenauth-bench --tenants-child VARIANT`: one `tenants` variant in this
/// fresh process; prints a [`ChildOutput`] line.
pub(crate) async fn tenants_child(args: &BenchArgs, name: &str) -> anyhow::Result<()> {
    let variant = Variant::parse(name).with_context(|| format!("no variant {name}"))?;
    let base = args
        .emulator_url
        .as_deref()
        .context("--emulator-url is required")?;
    let p = Params::resolve(ScenarioArg::Tenants, args);
    let target = Arc::new(Target::new(base)?);
    let control = Control::new(base)?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let mut header = HeaderValue::from_str(line.trim()).context("plain's header on stdin")?;
    header.set_sensitive(true);

    let http = variants::http_client()?;
    let setup = Setup {
        target: &target,
        connections: p.connections,
        plain_header: &header,
        limit: None,
        proxy: None,
    };
    // The connections (the caller's data) exist before the baseline.
    let client = Arc::new(Client::build(variant, &http, &setup)?);
    load::warm_pool(&http, &target, p.workers).await;
    let memory = if variant == Variant::Plain {
        None
    } else {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = vm_rss_bytes().context("no VmRSS in /proc/self/status")?;
        control.reset_stats().await?;
        let (took, errors) =
            load::fill(&client, &target, p.connections, p.workers, FILL_LIMIT).await?;
        let stats = control.stats().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after_fill = vm_rss_bytes().context("no VmRSS in /proc/self/status")?;
        // One more request per connection (all cache hits) lets the cache
        // finish its deferred bookkeeping before the figure is taken.
        load::fill(&client, &target, p.connections, p.workers, FILL_LIMIT).await?;
        let touched = control.stats().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = vm_rss_bytes().context("no VmRSS in /proc/self/status")?;
        let tokens = p.connections as u64;
        // Read after the figure, so that its copy is not in it.
        let token_bytes = client
            .token_bytes()
            .await
            .context("no cached token after the fill")?;
        Some(Memory {
            tokens,
            rss_before_bytes: before,
            rss_after_fill_bytes: after_fill,
            rss_after_bytes: after,
            bytes_per_token: after.saturating_sub(before) as f64 / tokens as f64,
            token_bytes,
            fill_s: took.as_secs_f64(),
            fill_token_requests: stats.twoba.token.requests,
            touch_token_requests: touched.twoba.token.requests - stats.twoba.token.requests,
            fill_errors: errors.total(),
            includes: memory_includes(variant, client.auth().is_some()),
        })
    };
    let load = Load::Closed {
        workers: p.workers,
        duration: p.per_round(),
        connections: p.connections,
    };
    let window = load::window(&client, &target, &control, load).await?;
    println!(
        "{}",
        serde_json::to_string(&ChildOutput { window, memory })?
    );
    Ok(())
}

fn memory_includes(v: Variant, engine: bool) -> String {
    let held = if engine {
        "the engine's cache entries (connection-id key shared with the Connection, token, rendered \
         header, expiry, the map entry and its use stamp)"
    } else {
        "the tokens stored in the per-connection ReuseTokenSource slots (the slots themselves, \
         a mutex and an empty Option each, were created before the baseline)"
    };
    format!(
        "{}: growth of VmRSS (/proc/self/status) of a fresh process from before the fill (one \
         request per connection, each fetching its token) to after a second request per \
         connection (all hits), divided by the tokens: {held}, plus whatever the fill's HTTP traffic and worker tasks left allocated, \
         and allocator slack. Not included: the Connection objects (created before the baseline) \
         and the emulator (another process).",
        v.name()
    )
}
