//! The `processes` scenario's figures: the children's reports summed, the
//! emulator's token counts beside them, the table and the targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use tokenauth_emulator::TokenStats;

use super::{ScenarioReport, Verdict, fmt_count, fmt_us};
use crate::stats::{Errors, Percentiles, Sample};

/// At most this many distinct caller-error messages are kept per child and
/// per run (the first ones seen); the counts cover every error.
pub(crate) const MAX_MESSAGES: usize = 5;

/// A message longer than this is cut (at a character boundary).
const MAX_MESSAGE_LEN: usize = 300;

/// A caller error as the caller saw it, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorMessage {
    pub(crate) message: String,
    pub(crate) count: u64,
}

/// The first [`MAX_MESSAGES`] distinct messages, each with its count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Messages(pub(crate) Vec<ErrorMessage>);

impl Messages {
    /// Counts `message` (cut to [`MAX_MESSAGE_LEN`]) `count` times; a new
    /// message beyond the first [`MAX_MESSAGES`] is not kept.
    pub(crate) fn add(&mut self, message: &str, count: u64) {
        let message = bounded(message);
        if let Some(m) = self.0.iter_mut().find(|m| m.message == message) {
            m.count += count;
        } else if self.0.len() < MAX_MESSAGES {
            self.0.push(ErrorMessage { message, count });
        }
    }
}

fn bounded(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_LEN {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_LEN;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// What one child process prints (one JSON line) when its window is over.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ChildReport {
    /// Its number in the run (0-based).
    pub(crate) index: usize,
    /// From the common start to its last reply.
    pub(crate) elapsed_s: f64,
    /// Every API request's latency (µs), errors included.
    pub(crate) latencies_us: Vec<u32>,
    /// The requests that did not end in a 200 for the caller.
    pub(crate) errors: Errors,
    pub(crate) messages: Messages,
}

/// The emulator's 2BA token-endpoint counts for a run's window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct TokenCounts {
    pub(crate) requests: u64,
    /// `grant_type=password`.
    pub(crate) logins: u64,
    /// `grant_type=refresh_token`.
    pub(crate) refreshes: u64,
    /// Any other grant (none expected).
    pub(crate) other_grants: u64,
    /// Refresh requests with an already used refresh token (answered 400).
    pub(crate) refresh_reuse: u64,
    pub(crate) replies_by_status: BTreeMap<u16, u64>,
    pub(crate) max_concurrent: u64,
}

impl From<&TokenStats> for TokenCounts {
    fn from(t: &TokenStats) -> Self {
        TokenCounts {
            requests: t.requests,
            logins: t.requests_by_grant.password,
            refreshes: t.requests_by_grant.refresh_token,
            other_grants: t.requests_by_grant.other,
            refresh_reuse: t.refresh_reuse,
            replies_by_status: t.replies_by_status.clone(),
            max_concurrent: t.max_concurrent_token_requests,
        }
    }
}

/// One child, in the run's report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChildSummary {
    pub(crate) index: usize,
    pub(crate) requests: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) requests_per_s: f64,
    pub(crate) latency_us: Percentiles,
    pub(crate) caller_errors: u64,
}

/// One run: one store, one number of processes, all started together.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProcessRun {
    pub(crate) store: String,
    pub(crate) processes: usize,
    pub(crate) workers_per_process: usize,
    /// API requests of all processes.
    pub(crate) requests: u64,
    /// The longest child's window (they start together).
    pub(crate) elapsed_s: f64,
    pub(crate) requests_per_s: f64,
    /// Over every request of every process.
    pub(crate) latency_us: Percentiles,
    /// What the emulator's token endpoint saw from the reset before the
    /// start to after the last child exited.
    pub(crate) token: TokenCounts,
    /// When the token requests arrived (s since the start; at most 10 ms
    /// late).
    pub(crate) token_request_times_s: Vec<f64>,
    /// Requests that did not end in a 200 for the caller, summed.
    pub(crate) caller_errors: u64,
    pub(crate) caller_errors_detail: Errors,
    /// The first distinct messages over all processes, with counts.
    pub(crate) error_messages: Messages,
    /// The API replies the emulator sent, by status (a cross-check).
    pub(crate) emulator_api_replies: BTreeMap<u16, u64>,
    pub(crate) children: Vec<ChildSummary>,
}

/// The whole scenario.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProcessesReport {
    /// `--processes`: the processes of the larger run of each store.
    pub(crate) processes: usize,
    pub(crate) stores: Vec<String>,
    pub(crate) runs: Vec<ProcessRun>,
    /// Runs that did not complete, with the reason.
    pub(crate) failed_runs: Vec<String>,
}

impl ProcessesReport {
    fn run(&self, store: &str, processes: usize) -> Option<&ProcessRun> {
        self.runs
            .iter()
            .find(|r| r.store == store && r.processes == processes)
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn percentiles(latencies: impl Iterator<Item = u32>) -> Percentiles {
    let samples: Vec<Sample> = latencies
        .map(|latency_us| Sample {
            at_us: 0,
            latency_us,
        })
        .collect();
    Percentiles::of(&samples)
}

/// Sums the children of one run and puts the emulator's counts beside them.
pub(crate) fn combine(
    store: &str,
    workers_per_process: usize,
    children: &[ChildReport],
    token: TokenCounts,
    token_request_times_s: Vec<f64>,
    emulator_api_replies: BTreeMap<u16, u64>,
) -> ProcessRun {
    let mut errors = Errors::default();
    let mut messages = Messages::default();
    let mut summaries = Vec::with_capacity(children.len());
    for c in children {
        errors.merge(&c.errors);
        for m in &c.messages.0 {
            messages.add(&m.message, m.count);
        }
        let requests = c.latencies_us.len() as u64;
        summaries.push(ChildSummary {
            index: c.index,
            requests,
            elapsed_s: c.elapsed_s,
            requests_per_s: rate(requests, c.elapsed_s),
            latency_us: percentiles(c.latencies_us.iter().copied()),
            caller_errors: c.errors.total(),
        });
    }
    let requests = summaries.iter().map(|c| c.requests).sum();
    let elapsed_s = children.iter().map(|c| c.elapsed_s).fold(0.0, f64::max);
    ProcessRun {
        store: store.to_owned(),
        processes: children.len(),
        workers_per_process,
        requests,
        elapsed_s,
        requests_per_s: rate(requests, elapsed_s),
        latency_us: percentiles(children.iter().flat_map(|c| c.latencies_us.iter().copied())),
        token,
        token_request_times_s,
        caller_errors: errors.total(),
        caller_errors_detail: errors,
        error_messages: messages,
        emulator_api_replies,
        children: summaries,
    }
}

/// The scenario's section of the markdown.
pub(crate) fn markdown(out: &mut String, s: &ScenarioReport, r: &ProcessesReport) {
    let p = &s.params;
    let _ = writeln!(out, "### {}\n", s.name);
    let _ = writeln!(
        out,
        "{} processes x {} workers, and 1 x {} for comparison, per store ({}); {} s per run, TTL {} s, token latency {}; 2BA with its refresh grant (rotate = true), one connection shared by every process.\n",
        r.processes,
        p.workers,
        p.workers,
        r.stores.join(", "),
        p.duration_s,
        p.ttl_s,
        fmt_us(p.token_latency_ms * 1000.0),
    );
    let _ = writeln!(
        out,
        "| store | processes | API requests | req/s | p50 | p99 | max | token requests | login / refresh | refresh reuse | caller errors |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for run in &r.runs {
        let l = &run.latency_us;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
            run.store,
            run.processes,
            fmt_count(run.requests),
            fmt_count(run.requests_per_s.round() as u64),
            fmt_us(f64::from(l.p50)),
            fmt_us(f64::from(l.p99)),
            fmt_us(f64::from(l.max)),
            run.token.requests,
            run.token.logins,
            run.token.refreshes,
            run.token.refresh_reuse,
            fmt_count(run.caller_errors),
        );
    }
    for run in r.runs.iter().filter(|r| r.caller_errors > 0) {
        let messages: Vec<String> = run
            .error_messages
            .0
            .iter()
            .map(|m| format!("`{}` ({})", m.message.replace('`', "'"), fmt_count(m.count)))
            .collect();
        let _ = writeln!(
            out,
            "\n{}, {} process(es): {} caller errors; first distinct: {}.",
            run.store,
            run.processes,
            fmt_count(run.caller_errors),
            messages.join("; ")
        );
    }
    for f in &r.failed_runs {
        let _ = writeln!(out, "\nFailed run: {f}");
    }
    for n in &s.notes {
        let _ = writeln!(out, "\n{n}");
    }
    out.push('\n');
}

/// The targets for `processes`.
pub(crate) fn verdicts(r: &ProcessesReport) -> Vec<Verdict> {
    let mut out = Vec::new();
    let mut add = |target: String, measured: String, met: bool| {
        out.push(Verdict {
            scenario: "processes".to_owned(),
            target,
            measured,
            met,
        });
    };
    let n = r.processes;
    for store in &r.stores {
        let (Some(one), Some(many)) = (r.run(store, 1), r.run(store, n)) else {
            continue;
        };
        if n > 1 {
            let (x, y) = (many.token.requests, one.token.requests);
            if store == "memory" {
                let expected = y * n as u64;
                add(
                    format!(
                        "memory: {n} processes make {n} x the token requests of 1 (each its own store; ±1 per process)"
                    ),
                    format!("{x} with {n} vs {y} with 1 ({n} x {y} = {expected})"),
                    x.abs_diff(expected) <= n as u64,
                );
            } else {
                // Each token request of the 1-process run opens one renewal window.
                let windows = y.max(1);
                add(
                    format!(
                        "{store}: {n} processes make as many token requests as 1 (±1 per renewal window)"
                    ),
                    format!(
                        "{x} with {n} vs {y} with 1 (difference {}; {windows} renewal windows)",
                        x.abs_diff(y)
                    ),
                    x.abs_diff(y) <= windows,
                );
                add(
                    format!("{store}: 0 refresh-token reuse"),
                    format!(
                        "{} with {n}, {} with 1",
                        many.token.refresh_reuse, one.token.refresh_reuse
                    ),
                    many.token.refresh_reuse == 0 && one.token.refresh_reuse == 0,
                );
            }
        }
        add(
            format!("{store}: 0 caller errors"),
            format!(
                "{} with {n}, {} with 1",
                many.caller_errors, one.caller_errors
            ),
            many.caller_errors == 0 && one.caller_errors == 0,
        );
    }
    if !r.failed_runs.is_empty() {
        add(
            "every run completed".to_owned(),
            format!("{} failed", r.failed_runs.len()),
            false,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(index: usize, latencies: &[u32], failed: &[&str], status: &[u16]) -> ChildReport {
        let mut c = ChildReport {
            index,
            elapsed_s: 2.0 + index as f64,
            latencies_us: latencies.to_vec(),
            ..ChildReport::default()
        };
        for m in failed {
            c.errors.failed += 1;
            c.messages.add(m, 1);
        }
        for s in status {
            *c.errors.by_status.entry(*s).or_default() += 1;
            c.messages.add(&format!("HTTP {s}"), 1);
        }
        c
    }

    #[test]
    fn a_run_sums_its_children_and_merges_their_latencies() {
        let a = child(0, &(1..=100).collect::<Vec<_>>(), &["store down"], &[]);
        let b = child(
            1,
            &(101..=200).collect::<Vec<_>>(),
            &["store down", "timeout"],
            &[401],
        );
        let token = TokenCounts {
            requests: 7,
            logins: 1,
            refreshes: 6,
            ..TokenCounts::default()
        };
        let run = combine(
            "redis",
            64,
            &[a, b],
            token.clone(),
            vec![0.1],
            BTreeMap::new(),
        );
        assert_eq!((run.processes, run.requests), (2, 200));
        // The longest child's window: child 1, 3 s.
        assert_eq!(run.elapsed_s, 3.0);
        assert!((run.requests_per_s - 200.0 / 3.0).abs() < 1e-9);
        // Exact percentiles over both children, not an average of theirs.
        assert_eq!(
            (run.latency_us.p50, run.latency_us.p99, run.latency_us.max),
            (100, 198, 200)
        );
        assert_eq!(run.caller_errors, 4);
        assert_eq!(run.caller_errors_detail.failed, 3);
        assert_eq!(run.caller_errors_detail.by_status[&401], 1);
        let messages: Vec<(&str, u64)> = run
            .error_messages
            .0
            .iter()
            .map(|m| (m.message.as_str(), m.count))
            .collect();
        assert_eq!(
            messages,
            [("store down", 2), ("timeout", 1), ("HTTP 401", 1)]
        );
        assert_eq!(run.children[1].caller_errors, 3);
        assert_eq!(run.children[0].latency_us.max, 100);
        assert_eq!(run.token, token);
    }

    #[test]
    fn messages_keep_the_first_distinct_ones_cut_short() {
        let mut m = Messages::default();
        for i in 0..MAX_MESSAGES + 3 {
            m.add(&format!("error {i}"), 1);
        }
        m.add("error 0", 4);
        assert_eq!(m.0.len(), MAX_MESSAGES);
        assert_eq!(m.0[0].count, 5);
        m.0.clear();
        m.add(&"é".repeat(MAX_MESSAGE_LEN), 1);
        assert!(m.0[0].message.len() <= MAX_MESSAGE_LEN + 3);
        assert!(m.0[0].message.ends_with("..."));
    }

    fn run(store: &str, processes: usize, tokens: u64, reuse: u64, errors: u64) -> ProcessRun {
        let mut r = combine(
            store,
            64,
            &vec![ChildReport::default(); processes],
            TokenCounts {
                requests: tokens,
                refresh_reuse: reuse,
                ..TokenCounts::default()
            },
            Vec::new(),
            BTreeMap::new(),
        );
        r.caller_errors = errors;
        r
    }

    #[test]
    fn targets_compare_each_store_with_its_one_process_run() {
        let report = ProcessesReport {
            processes: 8,
            stores: vec!["memory".into(), "file".into(), "redis".into()],
            runs: vec![
                run("memory", 1, 7, 0, 0),
                run("memory", 8, 57, 0, 0),
                run("file", 1, 7, 0, 0),
                run("file", 8, 50, 3, 0),
                run("redis", 1, 7, 0, 0),
                run("redis", 8, 8, 0, 2),
            ],
            failed_runs: Vec::new(),
        };
        let v = verdicts(&report);
        let met = |prefix: &str| {
            v.iter()
                .find(|v| v.target.starts_with(prefix))
                .unwrap_or_else(|| panic!("no target {prefix}: {v:#?}"))
                .met
        };
        assert!(met("memory: 8 processes make 8 x"));
        assert!(!met("file: 8 processes make as many"));
        assert!(!met("file: 0 refresh-token reuse"));
        assert!(met("redis: 8 processes make as many"));
        assert!(met("redis: 0 refresh-token reuse"));
        assert!(!met("redis: 0 caller errors"));
        assert!(met("memory: 0 caller errors"));
    }
}
