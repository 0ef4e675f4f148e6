//! `tokenauth-instructions`: what one authenticated request costs, in
//! instructions, counted by callgrind. Wall-clock throughput cannot show a
//! few percent on a machine whose two cores the client and the server
//! share (±15% from run to run); instruction counts are the same on every
//! run and every machine speed, so CI can guard them.
//!
//! ```text
//! cargo run --release -p tokenauth-instructions                 # the table
//! cargo run --release -p tokenauth-instructions -- --check      # CI: against budget.toml
//! ```
//!
//! # How
//!
//! - A neutral HTTP/1.1 server (this binary, `--serve`) runs in a child
//!   process on 127.0.0.1, not under valgrind: `POST /token` issues a token,
//!   `GET /api/items` answers `200 ok` only when it carries it.
//! - Each variant runs in a process of its own under
//!   `valgrind --tool=callgrind` (`--client VARIANT`): a current-thread tokio
//!   runtime, a warm-up of 4 requests per task (connections opened, the
//!   token fetched and cached), then `--requests` requests from `--tasks`
//!   (64) concurrent tasks, each reading the whole body.
//! - Twice, with `N` and `2N` requests: **instructions per request** =
//!   (count(2N) - count(N)) / N, so start-up, the warm-up and the login
//!   cancel out. The pair runs `--repeat` times (5), in rounds that take
//!   every variant once (a baseline and its variant meet the shared
//!   server in the same state), and the median is reported: at 64 tasks
//!   the allocator's paths vary with the heap's layout, which the order
//!   of the tasks' allocations varies, by up to 300 instructions per
//!   request from run to run (at `--tasks 1` plain reqwest counts the
//!   same on every run).
//! - The table also gives each variant's instructions over its baseline
//!   **outside the allocator** (glibc's `malloc`, `free` and their
//!   internals, read from callgrind's per-function counts): those repeat
//!   within a few dozen from run to run, so they show what a change to
//!   the code did; the totals are what a request costs, and what
//!   `--check` guards.
//!
//! # Variants and the baseline each is compared with
//!
//! | variant | what one request is | baseline |
//! |---|---|---|
//! | `reqwest` | `reqwest::Client`, a fixed `Authorization` header | - |
//! | `reqwest-middleware` | the same inside a `ClientWithMiddleware` with no middleware | `reqwest` |
//! | `tokenauth-reqwest` | the client as `TokenAuth::client` builds it: tokenauth's middleware, no header | `reqwest-middleware` |
//! | `hyper-util` | hyper-util's legacy client through tower's `Service`, a fixed header | - |
//! | `tokenauth-tower` | the same client under tokenauth's tower layer, no header | `hyper-util` |
//! | `request` | an `http::Request` built, the fixed header inserted, handed to a transport that answers at once | - |
//! | `engine` | the same request through `TokenAuth::exchange` and `Exchange::send`: routing, the cache hit, attaching, the response check | `request` |
//! | `engine-catalog` | the same, with 400 other providers on the same port described before it, 300 with a host each and 100 with a per-tenant host (`{{ inputs.tenant }}.svcN.example.com`): what routing costs in a catalog of hundreds | `request` |
//!
//! `--check` compares each variant's instructions over its baseline with
//! `budget.toml` beside this crate's manifest and fails when one exceeds
//! its budget by more than 20%: a guard against regressions, not a timing.

mod callgrind;
mod clients;
mod report;
mod server;

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use clap::Parser as _;

/// Instructions per request of plain HTTP clients and of tokenauth's
/// adapters, counted by callgrind.
#[derive(clap::Parser, Debug)]
#[command(name = "tokenauth-instructions", version, about, long_about = None)]
struct Args {
    /// Requests in the shorter of the two runs per variant (the longer sends twice as many).
    #[arg(long, default_value_t = 2_000)]
    requests: u64,

    /// Concurrent tasks sending them.
    #[arg(long, default_value_t = 64)]
    tasks: u64,

    /// Pairs of runs per variant; the median per-request figure is reported
    /// (the allocator's paths vary with the heap's layout, by up to 300
    /// instructions per request at 64 tasks).
    #[arg(long, default_value_t = 5)]
    repeat: usize,

    /// Only these variants (comma-separated); baselines are added as needed.
    #[arg(long, value_delimiter = ',', value_enum)]
    variants: Vec<Variant>,

    /// Write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Fail when a variant's instructions over its baseline exceed this
    /// budget file's figure by more than 20% [default file: budget.toml
    /// beside this crate's Cargo.toml].
    #[arg(long, value_name = "BUDGET", num_args = 0..=1, default_missing_value = concat!(env!("CARGO_MANIFEST_DIR"), "/budget.toml"))]
    check: Option<PathBuf>,

    #[arg(long, hide = true)]
    serve: bool,

    #[arg(long, hide = true)]
    sizes: bool,

    #[arg(long, hide = true, value_enum)]
    client: Option<Variant>,

    #[arg(long, hide = true)]
    port: Option<u16>,
}

/// What one measured request is; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Variant {
    Reqwest,
    ReqwestMiddleware,
    TokenauthReqwest,
    HyperUtil,
    TokenauthTower,
    Request,
    Engine,
    EngineCatalog,
}

impl Variant {
    const ALL: [Variant; 8] = [
        Variant::Reqwest,
        Variant::ReqwestMiddleware,
        Variant::TokenauthReqwest,
        Variant::HyperUtil,
        Variant::TokenauthTower,
        Variant::Request,
        Variant::Engine,
        Variant::EngineCatalog,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::Reqwest => "reqwest",
            Variant::ReqwestMiddleware => "reqwest-middleware",
            Variant::TokenauthReqwest => "tokenauth-reqwest",
            Variant::HyperUtil => "hyper-util",
            Variant::TokenauthTower => "tokenauth-tower",
            Variant::Request => "request",
            Variant::Engine => "engine",
            Variant::EngineCatalog => "engine-catalog",
        }
    }

    /// What one request of this variant is, for the table.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Variant::Reqwest => "reqwest, fixed header",
            Variant::ReqwestMiddleware => "reqwest-middleware client, no middleware, fixed header",
            Variant::TokenauthReqwest => "tokenauth's reqwest middleware",
            Variant::HyperUtil => "hyper-util client via tower `Service`, fixed header",
            Variant::TokenauthTower => "tokenauth's tower layer on that client",
            Variant::Request => "no HTTP: `http::Request` + fixed header, answered at once",
            Variant::Engine => "no HTTP: the same through `exchange` + `send` (route, hit, attach)",
            Variant::EngineCatalog => {
                "the same among 401 providers on its port, 100 with per-tenant hosts (a catalog)"
            }
        }
    }

    /// The variant this one adds to, if any.
    pub(crate) fn baseline(self) -> Option<Variant> {
        match self {
            Variant::ReqwestMiddleware => Some(Variant::Reqwest),
            Variant::TokenauthReqwest => Some(Variant::ReqwestMiddleware),
            Variant::TokenauthTower => Some(Variant::HyperUtil),
            Variant::Engine | Variant::EngineCatalog => Some(Variant::Request),
            Variant::Reqwest | Variant::HyperUtil | Variant::Request => None,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.serve {
        server::serve()
    } else if args.sizes {
        clients::print_future_sizes(args.port.unwrap_or(1))
    } else if let Some(variant) = args.client {
        match args.port {
            Some(port) => clients::run(variant, port, args.requests, args.tasks),
            None => Err(anyhow::anyhow!("--client needs --port")),
        }
    } else {
        measure(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runner: every variant under callgrind, the table, the JSON, the check.
fn measure(args: &Args) -> anyhow::Result<()> {
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let budget = args
        .check
        .as_deref()
        .map(report::Budget::read)
        .transpose()?;
    callgrind::check_valgrind()?;
    let mut variants: Vec<Variant> = if args.variants.is_empty() {
        Variant::ALL.to_vec()
    } else {
        args.variants.clone()
    };
    // Baselines first, each once.
    let mut i = 0;
    while i < variants.len() {
        if let Some(base) = variants[i].baseline()
            && !variants.contains(&base)
        {
            variants.insert(i, base);
            continue;
        }
        i += 1;
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let server = Server::start(&exe)?;
    let out_dir =
        std::env::temp_dir().join(format!("tokenauth-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir)?;
    let (short, long) = (args.requests, args.requests * 2);
    // Round after round, each variant's pair once per round: a baseline
    // and the variant measured against it then see the server (one
    // process for the whole run) in the same state, rather than one all
    // at the start and the other all at the end.
    let repeat = args.repeat.max(1);
    let mut runs: Vec<Vec<[callgrind::Counts; 2]>> = vec![Vec::new(); variants.len()];
    for round in 1..=repeat {
        for (variant, runs) in variants.iter().zip(&mut runs) {
            eprintln!(
                "round {round}/{repeat}: {}, {short} and {long} requests under callgrind",
                variant.name(),
            );
            let count = |n| callgrind::count(&exe, &out_dir, *variant, server.port, n, args.tasks);
            runs.push([count(short)?, count(long)?]);
        }
    }
    let rows: Vec<report::Row> = variants
        .iter()
        .zip(runs)
        .map(|(&variant, runs)| report::Row::median(variant, runs, long - short))
        .collect();
    let _ = std::fs::remove_dir_all(&out_dir);
    drop(server);
    let measured = report::Measured {
        requests: [short, long],
        tasks: args.tasks,
        rows,
    };
    println!("{}", measured.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&measured)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(budget) = budget {
        let verdict = budget.check(&measured);
        println!("{}", verdict.table());
        if !verdict.passed() {
            bail!(
                "instructions per request over budget (more than 20% above {}): find the cause, \
                 or, for a deliberate change, raise the figure in the budget file with a reason",
                args.check
                    .as_deref()
                    .unwrap_or_else(|| "budget".as_ref())
                    .display()
            );
        }
    }
    Ok(())
}

/// The neutral server in a child process; stopped when dropped (its stdin
/// closes, and it is killed).
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(exe: &std::path::Path) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the server process")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the server said {line:?} instead of its port"))?;
        Ok(Server { child, port })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
