//! The emulator in a child process, and its HTTP control API.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokenauth_emulator::{Emulator, EmulatorConfig, FaultUpdate, LatencyMs, Provider, Stats};

/// The line the child prints once it listens: `PREFIX http://127.0.0.1:PORT`.
const READY: &str = "tokenauth-bench-emulator";

/// Runtime threads of the emulator process.
const EMULATOR_THREADS: usize = 2;

/// `tokenauth-bench --serve-emulator`: serves until stdin closes.
pub(crate) fn serve() -> ExitCode {
    // Recorded token requests are not used; keep that table small.
    let config = EmulatorConfig::default().record_limit(16);
    let emulator = match Emulator::start_on_own_runtime(config, EMULATOR_THREADS) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{READY} {}", emulator.base_url());
    let _ = std::io::stdout().flush();
    // The parent holds our stdin: EOF means it is gone (or done with us).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    emulator.shutdown();
    ExitCode::SUCCESS
}

/// The emulator child process. Dropping it stops the process.
pub(crate) struct EmulatorProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
}

impl EmulatorProcess {
    /// Starts `<this binary> --serve-emulator` and waits for its address.
    pub(crate) fn spawn() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut child = Command::new(exe)
            .arg("--serve-emulator")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the emulator process")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let base = match read_ready(stdout) {
            Ok(b) => b,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(EmulatorProcess { child, base })
    }
}

fn read_ready(stdout: ChildStdout) -> anyhow::Result<String> {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("reading the emulator's address")?;
    match line.trim().strip_prefix(READY) {
        Some(url) if url.trim().starts_with("http://127.0.0.1:") => Ok(url.trim().to_owned()),
        _ => bail!("the emulator process did not start (it printed {line:?})"),
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the control API (`/_emulator/...`). The 2BA counters are the
/// only ones the harness uses.
#[derive(Clone)]
pub(crate) struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    pub(crate) fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Control {
            http,
            base: base.to_owned(),
        })
    }

    fn url(&self, op: &str) -> String {
        format!("{}/_emulator/{op}", self.base)
    }

    /// `GET /_emulator/stats`.
    pub(crate) async fn stats(&self) -> anyhow::Result<Stats> {
        let r = self.http.get(self.url("stats")).send().await?;
        if !r.status().is_success() {
            bail!("GET /_emulator/stats: {}", r.status());
        }
        Ok(r.json().await?)
    }

    /// `POST /_emulator/reset_stats`.
    pub(crate) async fn reset_stats(&self) -> anyhow::Result<()> {
        let r = self.http.post(self.url("reset_stats")).send().await?;
        if !r.status().is_success() {
            bail!("POST /_emulator/reset_stats: {}", r.status());
        }
        Ok(())
    }

    async fn faults(&self, update: &FaultUpdate) -> anyhow::Result<()> {
        let r = self
            .http
            .post(self.url("faults"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(update)?)
            .send()
            .await?;
        if !r.status().is_success() {
            let status = r.status();
            bail!(
                "POST /_emulator/faults: {status}: {}",
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Sets the 2BA access-token lifetime (the `expires_in` of new tokens).
    pub(crate) async fn set_ttl(&self, ttl: Duration) -> anyhow::Result<()> {
        self.faults(&FaultUpdate {
            provider: Some(Provider::Twoba),
            access_token_lifetime_ms: Some(ttl.as_secs_f64() * 1000.0),
            ..FaultUpdate::default()
        })
        .await
    }

    /// Sets the 2BA token-endpoint latency (zero: none).
    pub(crate) async fn set_token_latency(&self, latency: Duration) -> anyhow::Result<()> {
        self.faults(&FaultUpdate {
            provider: Some(Provider::Twoba),
            clear: true,
            token_latency_ms: Some(LatencyMs::Fixed(latency.as_secs_f64() * 1000.0)),
            ..FaultUpdate::default()
        })
        .await
    }

    /// Waits (up to `limit`) until no 2BA token request is being served, so
    /// that a background renewal of one variant is not counted for the next.
    pub(crate) async fn quiesce(&self, limit: Duration) -> anyhow::Result<()> {
        let end = Instant::now() + limit;
        loop {
            if self.stats().await?.twoba.token.in_flight == 0 {
                return Ok(());
            }
            if Instant::now() >= end {
                bail!("token requests still in flight after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// How often the poller reads the counters.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(10);

/// What the poller saw: token requests (seconds since the window start, at
/// most [`POLL_EVERY`] after their arrival) and the spans during which at
/// least one was in flight.
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenMarks {
    pub(crate) arrivals_s: Vec<f64>,
    pub(crate) in_flight_s: Vec<[f64; 2]>,
}

/// Polls `/_emulator/stats` every [`POLL_EVERY`] until `stop` is set (or
/// `limit` passes), from `start`. Polling errors end the poll silently: the
/// marks are an aid to the plot, the counts come from the final snapshot.
pub(crate) async fn poll_marks(
    control: Control,
    start: Instant,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> TokenMarks {
    let mut marks = TokenMarks::default();
    let mut seen = 0u64;
    let mut open: Option<f64> = None;
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = start + limit;
    loop {
        tick.tick().await;
        let done = stop.load(Ordering::Acquire) || Instant::now() >= end;
        let Ok(stats) = control.stats().await else {
            break;
        };
        let t = start.elapsed().as_secs_f64();
        let token = &stats.twoba.token;
        // Requests counted before the window's reset do not exist here.
        for _ in seen..token.requests {
            marks.arrivals_s.push(t);
        }
        seen = seen.max(token.requests);
        match (open, token.in_flight > 0) {
            (None, true) => open = Some(t),
            (Some(a), false) => {
                marks.in_flight_s.push([a, t]);
                open = None;
            }
            _ => {}
        }
        if done {
            break;
        }
    }
    if let Some(a) = open {
        marks.in_flight_s.push([a, start.elapsed().as_secs_f64()]);
    }
    marks
}
