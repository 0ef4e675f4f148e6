//! Load generation: closed-loop workers, a burst of simultaneous requests,
//! the `tenants` fill, and one measured window with the emulator's counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::emulator::{Control, TokenMarks, poll_marks};
use super::stats::{Errors, Sample, process_cpu};
use super::variants::{Client, Outcome, Target};

/// At most this many requests per measured window, whatever the duration.
const MAX_REQUESTS_PER_WINDOW: usize = 20_000_000;

/// How long past its planned end a window may run before it is abandoned.
const WATCHDOG_GRACE: Duration = Duration::from_secs(90);

/// The load of one window.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Load {
    /// `workers` tasks, each sending its next request when the last one
    /// returns, for `duration`; worker `w` walks the connections from
    /// `w * connections / workers` on.
    Closed {
        workers: usize,
        duration: Duration,
        connections: usize,
    },
    /// `n` tasks released at once, one request each, connection 0.
    Burst { n: usize },
}

/// The raw outcome of one measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Window {
    /// `(start µs since the window start, latency µs)` per request.
    pub(crate) samples: Vec<(u64, u32)>,
    pub(crate) errors: Errors,
    pub(crate) elapsed_s: f64,
    /// CPU time (user + system, all threads) this process used during the
    /// window: the client stack's and the load generation's; `None` where
    /// the process clock cannot be read.
    pub(crate) cpu_s: Option<f64>,
    /// Token requests the emulator saw during the window.
    pub(crate) token_requests: u64,
    pub(crate) max_concurrent_token_requests: u64,
    /// API replies the emulator sent during the window, by status.
    pub(crate) api_replies: BTreeMap<u16, u64>,
    pub(crate) token_arrivals_s: Vec<f64>,
    pub(crate) token_in_flight_s: Vec<[f64; 2]>,
}

impl Window {
    pub(crate) fn requests(&self) -> u64 {
        self.samples.len() as u64
    }

    pub(crate) fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        self.samples
            .iter()
            .map(|&(at_us, latency_us)| Sample { at_us, latency_us })
    }
}

/// Runs one measured window: resets the emulator's counters, runs `load`
/// while polling them, and reads them at the end; this process's CPU time
/// is read right before the window's clock starts and right after the load
/// ends.
pub(crate) async fn window(
    client: &Arc<Client>,
    target: &Arc<Target>,
    control: &Control,
    load: Load,
) -> anyhow::Result<Window> {
    let planned = match load {
        Load::Closed { duration, .. } => duration,
        Load::Burst { .. } => Duration::ZERO,
    };
    let watchdog = planned + WATCHDOG_GRACE;
    // Burst tasks are spawned and parked before the clock starts.
    let (go, parked) = match load {
        Load::Burst { n } => {
            let (tx, rx) = tokio::sync::watch::channel(None::<Instant>);
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let (client, target, mut rx) = (client.clone(), target.clone(), rx.clone());
                    tokio::spawn(async move {
                        let start = match rx.wait_for(Option::is_some).await {
                            Ok(v) => v.unwrap_or_else(Instant::now),
                            Err(_) => return None,
                        };
                        let t0 = Instant::now();
                        let outcome = client.call(&target, 0).await;
                        Some((sample(start, t0), outcome))
                    })
                })
                .collect();
            // Let every task reach its wait.
            tokio::time::sleep(Duration::from_millis(50)).await;
            (Some(tx), tasks)
        }
        Load::Closed { .. } => (None, Vec::new()),
    };

    control.reset_stats().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_start = process_cpu();
    let other_start = client.other_process_cpu();
    let start = Instant::now();
    let poller = tokio::spawn(poll_marks(control.clone(), start, stop.clone(), watchdog));

    let run = async {
        match load {
            Load::Closed {
                workers,
                duration,
                connections,
            } => closed(client, target, start, workers, duration, connections).await,
            Load::Burst { .. } => {
                if let Some(tx) = &go {
                    tx.send_replace(Some(start));
                }
                let mut out = (Vec::with_capacity(parked.len()), Errors::default());
                for t in parked {
                    if let Some((s, o)) = t.await.context("a burst task panicked")? {
                        record(&mut out, s, o);
                    }
                }
                Ok(out)
            }
        }
    };
    let result = tokio::time::timeout(watchdog, run).await;
    let elapsed = start.elapsed();
    let other = client
        .other_process_cpu()
        .zip(other_start)
        .map(|(end, start)| end.saturating_sub(start));
    let cpu = process_cpu()
        .zip(cpu_start)
        .map(|(end, start)| (end.saturating_sub(start) + other.unwrap_or_default()).as_secs_f64());
    stop.store(true, Ordering::Release);
    let marks: TokenMarks = poller.await.unwrap_or_default();
    let (samples, errors) = match result {
        Ok(r) => r?,
        Err(_) => bail!("the window did not finish within {watchdog:?}"),
    };
    let stats = control.stats().await?;
    let token = &stats.twoba.token;
    Ok(Window {
        samples,
        errors,
        elapsed_s: elapsed.as_secs_f64(),
        cpu_s: cpu,
        token_requests: token.requests,
        max_concurrent_token_requests: token.max_concurrent_token_requests,
        api_replies: stats.twoba.api.replies_by_status.clone(),
        token_arrivals_s: marks.arrivals_s,
        token_in_flight_s: marks.in_flight_s,
    })
}

type Recorded = (Vec<(u64, u32)>, Errors);

fn sample(start: Instant, t0: Instant) -> (u64, u32) {
    let at = t0.saturating_duration_since(start).as_micros() as u64;
    let latency = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
    (at, latency)
}

fn record(out: &mut Recorded, s: (u64, u32), outcome: Outcome) {
    out.0.push(s);
    match outcome {
        Outcome::Status(200) => {}
        Outcome::Status(status) => *out.1.by_status.entry(status).or_default() += 1,
        Outcome::Failed => out.1.failed += 1,
    }
}

async fn closed(
    client: &Arc<Client>,
    target: &Arc<Target>,
    start: Instant,
    workers: usize,
    duration: Duration,
    connections: usize,
) -> anyhow::Result<Recorded> {
    let deadline = start + duration;
    let workers = workers.max(1);
    let connections = connections.max(1);
    let cap = MAX_REQUESTS_PER_WINDOW / workers;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (client, target) = (client.clone(), target.clone());
            tokio::spawn(async move {
                let first = w * connections / workers;
                let mut out: Recorded = (Vec::with_capacity(4096), Errors::default());
                for k in 0..cap {
                    let t0 = Instant::now();
                    if t0 >= deadline {
                        break;
                    }
                    let outcome = client.call(&target, (first + k) % connections).await;
                    record(&mut out, sample(start, t0), outcome);
                }
                out
            })
        })
        .collect();
    let mut all: Recorded = (Vec::new(), Errors::default());
    for t in tasks {
        let (s, e) = t.await.context("a worker panicked")?;
        all.0.extend(s);
        all.1.merge(&e);
    }
    all.0.sort_unstable_by_key(|s| s.0);
    Ok(all)
}

/// `n` concurrent requests through `client` (connection 0), before a
/// window: opens HTTP connections and, where there is a cache, fills it.
pub(crate) async fn warm_calls(client: &Arc<Client>, target: &Arc<Target>, n: usize) -> Errors {
    let tasks: Vec<_> = (0..n.max(1))
        .map(|_| {
            let (client, target) = (client.clone(), target.clone());
            tokio::spawn(async move { client.call(&target, 0).await })
        })
        .collect();
    let mut out: Recorded = (Vec::new(), Errors::default());
    for t in tasks {
        if let Ok(o) = t.await {
            record(&mut out, (0, 0), o);
        }
    }
    out.1
}

/// `n` concurrent `GET`s of a control URL: opens HTTP connections in the
/// client's pool without fetching any token.
pub(crate) async fn warm_pool(http: &reqwest::Client, target: &Target, n: usize) {
    let tasks: Vec<_> = (0..n.max(1))
        .map(|_| {
            let (http, url) = (http.clone(), target.control.clone());
            tokio::spawn(async move {
                if let Ok(r) = http.get(url).send().await {
                    let _ = r.bytes().await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// The `tenants` fill: one request per connection, `workers` at a time.
/// Returns its duration and errors.
pub(crate) async fn fill(
    client: &Arc<Client>,
    target: &Arc<Target>,
    connections: usize,
    workers: usize,
    limit: Duration,
) -> anyhow::Result<(Duration, Errors)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (client, target, next) = (client.clone(), target.clone(), next.clone());
            tokio::spawn(async move {
                let mut out: Recorded = (Vec::new(), Errors::default());
                let mut done = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= connections || start.elapsed() > limit {
                        break;
                    }
                    let o = client.call(&target, i).await;
                    record(&mut out, (0, 0), o);
                    out.0.clear();
                    done += 1;
                }
                (done, out.1)
            })
        })
        .collect();
    let mut errors = Errors::default();
    let mut done = 0;
    for t in tasks {
        let (n, e) = t.await.context("a fill worker panicked")?;
        done += n;
        errors.merge(&e);
    }
    if done < connections {
        bail!("the fill did not finish within {limit:?}");
    }
    Ok((start.elapsed(), errors))
}
