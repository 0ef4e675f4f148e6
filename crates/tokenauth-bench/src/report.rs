//! Results: per-variant figures aggregated over rounds, the targets, the
//! markdown table and the JSON; `processes` in its own module.

mod processes;

pub(crate) use processes::{
    ChildReport, Messages, ProcessRun, ProcessesReport, TokenCounts, combine,
};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::load::Window;
use super::stats::{Errors, Percentiles, Sample, count_series, max_series};

/// At most this many token-request marks are kept per variant (`no-cache`
/// makes one per request).
const MAX_MARKS: usize = 1000;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) tool: String,
    pub(crate) machine: Machine,
    pub(crate) command: Vec<String>,
    pub(crate) scenarios: Vec<ScenarioReport>,
    pub(crate) targets: Vec<Verdict>,
}

/// Where it ran.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) cpu_model: String,
    pub(crate) mem_total_bytes: u64,
    pub(crate) kernel: String,
    /// `release` or `debug` (debug assertions on).
    pub(crate) build: String,
    /// `/proc/loadavg` when the run started and when it ended: other work
    /// on the machine shows here.
    pub(crate) loadavg_start: String,
    pub(crate) loadavg_end: String,
}

/// The first three fields of `/proc/loadavg`.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    pub(crate) fn detect(loadavg_start: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_bytes = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .map_or(0, |k| k * 1024);
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            mem_total_bytes,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_owned(),
            loadavg_start,
            loadavg_end: loadavg(),
        }
    }
}

/// The parameters a scenario ran with (after defaults and flags).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ParamsReport {
    pub(crate) workers: usize,
    pub(crate) duration_s: f64,
    pub(crate) ttl_s: f64,
    pub(crate) token_latency_ms: f64,
    pub(crate) connections: usize,
    pub(crate) burst: usize,
    pub(crate) burst_in_flight: usize,
    pub(crate) rounds: usize,
    /// Width of the latency series' buckets.
    pub(crate) bucket_ms: f64,
}

/// One scenario.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenarioReport {
    pub(crate) name: String,
    pub(crate) params: ParamsReport,
    pub(crate) variants: Vec<VariantReport>,
    /// `tokenauth` requests/s over `plain`'s: over all rounds, and the
    /// median of the per-round ratios.
    pub(crate) tokenauth_vs_plain: Option<Ratio>,
    /// `tokenauth` CPU per request over `plain`'s (this process's CPU time
    /// in the windows, see `cpu_us_per_request`): over all rounds, and the
    /// median of the per-round ratios. Null where the CPU time is unknown.
    pub(crate) tokenauth_cpu_vs_plain: Option<Ratio>,
    pub(crate) notes: Vec<String>,
    /// `processes` only (its `variants` are empty): a run per store and
    /// number of processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) processes: Option<ProcessesReport>,
}

/// A ratio of `tokenauth` to `plain` (throughput, or CPU per request).
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Ratio {
    pub(crate) total: f64,
    pub(crate) median_of_rounds: f64,
    pub(crate) min_of_rounds: f64,
    pub(crate) max_of_rounds: f64,
}

/// One variant in one scenario, over all rounds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VariantReport {
    pub(crate) name: String,
    pub(crate) requests: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) requests_per_s: f64,
    /// CPU time (user + system, all threads) of the process that ran the
    /// load, during the measured windows: the client stack and the
    /// harness's own load generation (the emulator is another process).
    /// Null where the process clock cannot be read.
    pub(crate) cpu_s: Option<f64>,
    /// `cpu_s` per request, in µs.
    pub(crate) cpu_us_per_request: Option<f64>,
    /// `cpu_us_per_request` over `plain`'s in the same scenario.
    pub(crate) cpu_per_request_vs_plain: Option<f64>,
    pub(crate) latency_us: Percentiles,
    /// Requests that were not answered 200 (by status, or with no reply).
    pub(crate) errors: u64,
    pub(crate) errors_detail: Errors,
    /// Token requests the emulator saw during the measured windows.
    pub(crate) token_requests: u64,
    pub(crate) token_requests_per_round: Vec<u64>,
    pub(crate) max_concurrent_token_requests: u64,
    /// What the design predicts for `token_requests` (rollover), if known.
    pub(crate) expected_token_requests: Option<u64>,
    /// Seconds on the series' time axis (rounds back to back); at most
    /// 10 ms after the request arrived.
    pub(crate) token_request_times_s: Vec<f64>,
    pub(crate) token_request_times_truncated: bool,
    /// Spans with at least one token request in flight.
    pub(crate) token_in_flight_s: Vec<[f64; 2]>,
    /// The API replies the emulator sent, by status (a cross-check).
    pub(crate) emulator_api_replies: BTreeMap<u16, u64>,
    pub(crate) rounds: Vec<RoundReport>,
    /// Means over the rounds (`fill_errors`: the total); each round's in `rounds`.
    pub(crate) memory: Option<Memory>,
    /// The requests that were in flight at the same time as a token request
    /// (their span overlaps an in-flight span, at the poller's 10 ms
    /// resolution): did anyone wait on a token?
    pub(crate) during_token_requests: Overlap,
    /// The largest latency (µs) of the requests started in each bucket
    /// (`params.bucket_ms`), rounds back to back; null where none started.
    pub(crate) max_latency_series_us: Vec<Option<u32>>,
    /// Requests started in each bucket.
    pub(crate) requests_series: Vec<u64>,
}

/// Requests that overlapped a token request.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Overlap {
    pub(crate) requests: u64,
    pub(crate) p99_latency_us: u32,
    pub(crate) max_latency_us: u32,
}

impl Overlap {
    /// `spans` sorted and disjoint, as the poller produces them.
    fn of(samples: &[Sample], spans: &[[f64; 2]]) -> Self {
        let hit: Vec<Sample> = samples
            .iter()
            .filter(|s| {
                let start = s.at_us as f64 / 1e6;
                let end = start + f64::from(s.latency_us) / 1e6;
                let i = spans.partition_point(|[_, b]| *b < start);
                spans.get(i).is_some_and(|[a, _]| *a <= end)
            })
            .copied()
            .collect();
        let p = Percentiles::of(&hit);
        Overlap {
            requests: hit.len() as u64,
            p99_latency_us: p.p99,
            max_latency_us: p.max,
        }
    }
}

/// One variant in one round.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RoundReport {
    pub(crate) round: usize,
    /// Its place in the round's order (0: first).
    pub(crate) position: usize,
    pub(crate) requests: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) requests_per_s: f64,
    pub(crate) cpu_s: Option<f64>,
    pub(crate) cpu_us_per_request: Option<f64>,
    pub(crate) latency_us: Percentiles,
    pub(crate) token_requests: u64,
    pub(crate) errors: u64,
    pub(crate) memory: Option<Memory>,
}

/// Resident memory of the cached tokens (`tenants`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Memory {
    pub(crate) tokens: u64,
    pub(crate) rss_before_bytes: u64,
    /// Right after the fill.
    pub(crate) rss_after_fill_bytes: u64,
    /// After a second request per connection: the figure used.
    pub(crate) rss_after_bytes: u64,
    pub(crate) bytes_per_token: f64,
    /// The length of one cached access token (the emulator's 2BA tokens):
    /// overhead per token = `bytes_per_token` - `token_bytes`.
    #[serde(default)]
    pub(crate) token_bytes: u64,
    pub(crate) fill_s: f64,
    pub(crate) fill_token_requests: u64,
    /// Token requests during the second pass (0: every token stayed cached).
    pub(crate) touch_token_requests: u64,
    pub(crate) fill_errors: u64,
    pub(crate) includes: String,
}

impl Memory {
    /// Memory per token beyond the token's own bytes.
    pub(crate) fn overhead_per_token(&self) -> f64 {
        self.bytes_per_token - self.token_bytes as f64
    }
}

/// One window of a variant, with its place in the run.
pub(crate) struct Run {
    pub(crate) round: usize,
    pub(crate) position: usize,
    pub(crate) window: Window,
    pub(crate) memory: Option<Memory>,
}

/// Aggregates the windows of one variant.
pub(crate) fn aggregate(
    name: &str,
    runs: &[Run],
    bucket: Duration,
    expected: Option<u64>,
) -> VariantReport {
    let mut all: Vec<Sample> = Vec::new();
    let mut errors = Errors::default();
    let mut times = Vec::new();
    let mut spans = Vec::new();
    let mut api = BTreeMap::new();
    let mut rounds = Vec::new();
    let mut offset = 0.0;
    let mut max_conc = 0;
    let mut per_round = Vec::new();
    // Known only if known for every window.
    let mut cpu = Some(0.0);
    for r in runs {
        let w = &r.window;
        let off_us = (offset * 1e6) as u64;
        all.extend(w.samples().map(|s| Sample {
            at_us: s.at_us + off_us,
            ..s
        }));
        errors.merge(&w.errors);
        times.extend(w.token_arrivals_s.iter().map(|t| t + offset));
        spans.extend(
            w.token_in_flight_s
                .iter()
                .map(|[a, b]| [a + offset, b + offset]),
        );
        for (s, n) in &w.api_replies {
            *api.entry(*s).or_default() += n;
        }
        max_conc = max_conc.max(w.max_concurrent_token_requests);
        per_round.push(w.token_requests);
        cpu = cpu.zip(w.cpu_s).map(|(a, b)| a + b);
        let samples: Vec<Sample> = w.samples().collect();
        rounds.push(RoundReport {
            round: r.round,
            position: r.position,
            requests: w.requests(),
            elapsed_s: w.elapsed_s,
            requests_per_s: rate(w.requests(), w.elapsed_s),
            cpu_s: w.cpu_s,
            cpu_us_per_request: per_request_us(w.cpu_s, w.requests()),
            latency_us: Percentiles::of(&samples),
            token_requests: w.token_requests,
            errors: w.errors.total(),
            memory: r.memory.clone(),
        });
        offset += w.elapsed_s;
    }
    let requests = all.len() as u64;
    let during_token_requests = Overlap::of(&all, &spans);
    let truncated = times.len() > MAX_MARKS;
    if truncated {
        times.clear();
        spans.truncate(MAX_MARKS);
    }
    let memory = average_memory(runs);
    VariantReport {
        name: name.to_owned(),
        requests,
        elapsed_s: offset,
        requests_per_s: rate(requests, offset),
        cpu_s: cpu,
        cpu_us_per_request: per_request_us(cpu, requests),
        // Set by `cpu_vs_plain` once every variant is aggregated.
        cpu_per_request_vs_plain: None,
        latency_us: Percentiles::of(&all),
        errors: errors.total(),
        errors_detail: errors,
        token_requests: per_round.iter().sum(),
        token_requests_per_round: per_round,
        max_concurrent_token_requests: max_conc,
        expected_token_requests: expected,
        token_request_times_s: times,
        token_request_times_truncated: truncated,
        token_in_flight_s: spans,
        emulator_api_replies: api,
        rounds,
        memory,
        max_latency_series_us: max_series(&all, bucket, Duration::from_secs_f64(offset)),
        requests_series: count_series(&all, bucket, Duration::from_secs_f64(offset)),
        during_token_requests,
    }
}

/// The mean over the rounds (each round a fresh process).
fn average_memory(runs: &[Run]) -> Option<Memory> {
    let ms: Vec<&Memory> = runs.iter().filter_map(|r| r.memory.as_ref()).collect();
    let first = (*ms.first()?).clone();
    let n = ms.len() as f64;
    let mean = |f: &dyn Fn(&Memory) -> f64| ms.iter().map(|m| f(m)).sum::<f64>() / n;
    Some(Memory {
        rss_before_bytes: mean(&|m| m.rss_before_bytes as f64).round() as u64,
        rss_after_fill_bytes: mean(&|m| m.rss_after_fill_bytes as f64).round() as u64,
        rss_after_bytes: mean(&|m| m.rss_after_bytes as f64).round() as u64,
        bytes_per_token: mean(&|m| m.bytes_per_token),
        fill_s: mean(&|m| m.fill_s),
        fill_token_requests: mean(&|m| m.fill_token_requests as f64).round() as u64,
        touch_token_requests: ms.iter().map(|m| m.touch_token_requests).sum(),
        fill_errors: ms.iter().map(|m| m.fill_errors).sum(),
        ..first
    })
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// CPU seconds per request, in µs (none without requests).
fn per_request_us(cpu_s: Option<f64>, requests: u64) -> Option<f64> {
    cpu_s
        .filter(|_| requests > 0)
        .map(|c| c * 1e6 / requests as f64)
}

/// Sets every variant's `cpu_per_request_vs_plain`.
pub(crate) fn cpu_vs_plain(variants: &mut [VariantReport]) {
    let plain = variants
        .iter()
        .find(|v| v.name == "plain")
        .and_then(|v| v.cpu_us_per_request)
        .filter(|&p| p > 0.0);
    for v in variants {
        v.cpu_per_request_vs_plain = plain.zip(v.cpu_us_per_request).map(|(p, c)| c / p);
    }
}

/// `tokenauth` over `plain` requests/s, if both ran.
pub(crate) fn ratio(variants: &[VariantReport]) -> Option<Ratio> {
    ratio_of(
        variants,
        |v| Some(v.requests_per_s),
        |r| Some(r.requests_per_s),
    )
}

/// `tokenauth` over `plain` CPU per request, if both ran and it is known.
pub(crate) fn cpu_ratio(variants: &[VariantReport]) -> Option<Ratio> {
    ratio_of(variants, |v| v.cpu_us_per_request, |r| r.cpu_us_per_request)
}

/// `tokenauth`'s figure over `plain`'s: over all rounds (`total`) and per
/// round (rounds where `plain`'s is 0 or unknown are left out).
fn ratio_of(
    variants: &[VariantReport],
    total: impl Fn(&VariantReport) -> Option<f64>,
    round: impl Fn(&RoundReport) -> Option<f64>,
) -> Option<Ratio> {
    let plain = variants.iter().find(|v| v.name == "plain")?;
    let ours = variants.iter().find(|v| v.name == "tokenauth")?;
    let (plain_total, ours_total) = (total(plain)?, total(ours)?);
    let mut per: Vec<f64> = plain
        .rounds
        .iter()
        .zip(&ours.rounds)
        .filter_map(|(p, o)| match (round(p), round(o)) {
            (Some(p), Some(o)) if p > 0.0 => Some(o / p),
            _ => None,
        })
        .collect();
    per.sort_by(f64::total_cmp);
    let median = per.get(per.len() / 2).copied().unwrap_or(0.0);
    Some(Ratio {
        total: if plain_total > 0.0 {
            ours_total / plain_total
        } else {
            0.0
        },
        median_of_rounds: median,
        min_of_rounds: per.first().copied().unwrap_or(0.0),
        max_of_rounds: per.last().copied().unwrap_or(0.0),
    })
}

/// A target of the issue against a measurement.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Verdict {
    pub(crate) scenario: String,
    pub(crate) target: String,
    pub(crate) measured: String,
    pub(crate) met: bool,
}

/// Checks the targets against what ran.
pub(crate) fn verdicts(scenarios: &[ScenarioReport]) -> Vec<Verdict> {
    let mut out = Vec::new();
    // `processes` writes its own.
    let mut own = Vec::new();
    let mut add = |scenario: &str, target: &str, measured: String, met: bool| {
        out.push(Verdict {
            scenario: scenario.to_owned(),
            target: target.to_owned(),
            measured,
            met,
        });
    };
    for s in scenarios {
        if let Some(p) = &s.processes {
            own.extend(processes::verdicts(p));
            continue;
        }
        let v = |name: &str| s.variants.iter().find(|v| v.name == name);
        let zero_errors = s.variants.iter().all(|v| v.errors == 0);
        match s.name.as_str() {
            "steady" => {
                if let Some(r) = s.tokenauth_vs_plain {
                    add(
                        "steady",
                        "tokenauth throughput >= 0.97 x plain",
                        format!(
                            "{:.3} x over all rounds (per round: median {:.3}, {:.3}..{:.3})",
                            r.total, r.median_of_rounds, r.min_of_rounds, r.max_of_rounds
                        ),
                        r.total >= 0.97,
                    );
                }
            }
            "burst" => {
                if let Some(t) = v("tokenauth") {
                    add(
                        "burst",
                        "exactly 1 token request per burst for tokenauth",
                        format!("{:?} per round", t.token_requests_per_round),
                        t.token_requests_per_round.iter().all(|&n| n == 1),
                    );
                }
                if let Some(t) = v("no-cache") {
                    let n = s.params.burst as u64;
                    add(
                        "burst",
                        &format!("{n} token requests per burst for no-cache"),
                        format!("{:?} per round", t.token_requests_per_round),
                        t.token_requests_per_round.iter().all(|&k| k == n),
                    );
                }
            }
            "rollover" => {
                let latency_us = s.params.token_latency_ms * 1000.0;
                if let Some(t) = v("tokenauth") {
                    add(
                        "rollover",
                        "tokenauth max latency far below the token latency (< 1/4 of it)",
                        format!(
                            "max {} vs token latency {}",
                            fmt_us(f64::from(t.latency_us.max)),
                            fmt_us(latency_us)
                        ),
                        f64::from(t.latency_us.max) < latency_us / 4.0,
                    );
                    if let Some(e) = t.expected_token_requests {
                        add(
                            "rollover",
                            "tokenauth token requests close to duration / renewal interval (within 1)",
                            format!("{} measured, {e} expected", t.token_requests),
                            t.token_requests.abs_diff(e) <= 1,
                        );
                    }
                }
                if let Some(m) = v("mutex-baseline") {
                    add(
                        "rollover",
                        "mutex-baseline shows the stall (max latency >= token latency)",
                        format!("max {}", fmt_us(f64::from(m.latency_us.max))),
                        f64::from(m.latency_us.max) >= latency_us,
                    );
                }
                add(
                    "rollover",
                    "zero errors",
                    s.variants
                        .iter()
                        .map(|v| format!("{} {}", v.name, v.errors))
                        .collect::<Vec<_>>()
                        .join(", "),
                    zero_errors,
                );
            }
            "tenants" => {
                if let Some(m) = v("tokenauth").and_then(|t| t.memory.as_ref()) {
                    add(
                        "tenants",
                        "at most 256 B per cached token beyond the token's own bytes",
                        format!(
                            "{:.0} bytes per token over {} tokens, {} of them the token: {:.0} B overhead",
                            m.bytes_per_token,
                            m.tokens,
                            m.token_bytes,
                            m.overhead_per_token()
                        ),
                        m.overhead_per_token() <= 256.0,
                    );
                }
            }
            _ => {}
        }
    }
    out.extend(own);
    out
}

/// `850 µs`, `1.24 ms`, `203 ms`.
pub(crate) fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else if us < 100_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.0} ms", us / 1000.0)
    }
}

/// CPU per request: `41.3 µs` (a tenth of a µs: variants differ by a few),
/// `1.24 ms`.
fn fmt_cpu_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        fmt_us(us)
    }
}

fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The markdown: one table per scenario, then the targets.
pub(crate) fn markdown(report: &Report) -> String {
    let mut out = String::new();
    for s in &report.scenarios {
        if let Some(r) = &s.processes {
            processes::markdown(&mut out, s, r);
            continue;
        }
        let p = &s.params;
        let _ = writeln!(out, "### {}\n", s.name);
        let what = match s.name.as_str() {
            "burst" => format!(
                "{} concurrent cold requests, one connection, at most {} HTTP requests in flight; token latency {}; {} rounds",
                fmt_count(p.burst as u64),
                p.burst_in_flight,
                fmt_us(p.token_latency_ms * 1000.0),
                p.rounds
            ),
            _ => format!(
                "{} workers, {} s per variant in {} round(s), TTL {} s, token latency {}, {} connection(s)",
                p.workers,
                p.duration_s,
                p.rounds,
                p.ttl_s,
                fmt_us(p.token_latency_ms * 1000.0),
                fmt_count(p.connections as u64)
            ),
        };
        let _ = writeln!(out, "{what}.\n");
        let memory = s.variants.iter().any(|v| v.memory.is_some());
        let _ = write!(
            out,
            "| variant | requests | req/s | vs plain | CPU/req | CPU vs plain | p50 | p99 | p99.9 | max | token requests | errors |"
        );
        let _ = writeln!(
            out,
            "{}",
            if memory {
                " memory per token | token bytes | overhead per token |"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
            if memory { "---:|---:|---:|" } else { "" }
        );
        let plain_rps = s
            .variants
            .iter()
            .find(|v| v.name == "plain")
            .map(|v| v.requests_per_s);
        for v in &s.variants {
            let vs = match plain_rps {
                Some(p) if p > 0.0 => format!("{:.3}", v.requests_per_s / p),
                _ => "-".to_owned(),
            };
            let tokens = match (s.name.as_str(), v.expected_token_requests) {
                ("burst", _) => format!(
                    "{} ({} per burst)",
                    fmt_count(v.token_requests),
                    per_round(&v.token_requests_per_round)
                ),
                (_, Some(e)) => format!("{} (expected {e})", v.token_requests),
                _ => v.token_requests.to_string(),
            };
            let cpu = v
                .cpu_us_per_request
                .map_or_else(|| "-".to_owned(), fmt_cpu_us);
            let cpu_vs = v
                .cpu_per_request_vs_plain
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
            let l = &v.latency_us;
            let _ = write!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                v.name,
                fmt_count(v.requests),
                fmt_count(v.requests_per_s.round() as u64),
                vs,
                cpu,
                cpu_vs,
                fmt_us(f64::from(l.p50)),
                fmt_us(f64::from(l.p99)),
                fmt_us(f64::from(l.p999)),
                fmt_us(f64::from(l.max)),
                tokens,
                v.errors
            );
            if memory {
                let m = v.memory.as_ref().map_or_else(
                    || "- | - | -".to_owned(),
                    |m| {
                        format!(
                            "{:.0} B | {} B | {:.0} B",
                            m.bytes_per_token,
                            m.token_bytes,
                            m.overhead_per_token()
                        )
                    },
                );
                let _ = write!(out, " {m} |");
            }
            out.push('\n');
        }
        if let Some(r) = s.tokenauth_vs_plain {
            let _ = writeln!(
                out,
                "\ntokenauth / plain requests/s: {:.3} over all rounds; per round median {:.3}, range {:.3}..{:.3}.",
                r.total, r.median_of_rounds, r.min_of_rounds, r.max_of_rounds
            );
        }
        if let Some(r) = s.tokenauth_cpu_vs_plain {
            let _ = writeln!(
                out,
                "\ntokenauth / plain CPU per request: {:.3} over all rounds; per round median {:.3}, range {:.3}..{:.3}.",
                r.total, r.median_of_rounds, r.min_of_rounds, r.max_of_rounds
            );
        }
        if s.name != "burst" && s.variants.iter().any(|v| v.token_requests > 0) {
            let parts: Vec<String> = s
                .variants
                .iter()
                .filter(|v| v.token_requests > 0)
                .map(|v| {
                    let d = &v.during_token_requests;
                    format!(
                        "{} {} (p99 {}, max {})",
                        v.name,
                        fmt_count(d.requests),
                        fmt_us(f64::from(d.p99_latency_us)),
                        fmt_us(f64::from(d.max_latency_us))
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "\nRequests in flight while a token request was: {}.",
                parts.join("; ")
            );
        }
        for n in &s.notes {
            let _ = writeln!(out, "\n{n}");
        }
        out.push('\n');
    }
    let m = &report.machine;
    let _ = writeln!(
        out,
        "Machine: {} x {}, {:.1} GiB, {} build; load average {} at the start, {} at the end.\n",
        m.nproc,
        m.cpu_model,
        m.mem_total_bytes as f64 / f64::from(1u32 << 30),
        m.build,
        m.loadavg_start,
        m.loadavg_end
    );
    if !report.targets.is_empty() {
        let _ = writeln!(out, "### targets\n");
        let _ = writeln!(
            out,
            "| scenario | target | measured | met |\n|---|---|---|---|"
        );
        for t in &report.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.scenario,
                t.target,
                t.measured,
                if t.met { "yes" } else { "**no**" }
            );
        }
    }
    out
}

fn per_round(v: &[u64]) -> String {
    match v.split_first() {
        Some((first, rest)) if rest.iter().all(|x| x == first) => first.to_string(),
        _ => v.iter().map(u64::to_string).collect::<Vec<_>>().join("/"),
    }
}
