//! A `redis-server` of the harness's own for the `processes` scenario: on a
//! free 127.0.0.1 port, no persistence.
//!
//! It runs under a guard process, this binary re-executed as
//! `tokenauth-bench --serve-redis` (hidden), which starts it, prints its URL
//! and kills it as soon as its stdin closes: when the harness drops its
//! [`RedisProcess`], returns, fails, panics, is stopped by a signal or is
//! killed outright (SIGKILL closes the pipe too).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long the server may take to answer its first PING.
const START_LIMIT: Duration = Duration::from_secs(10);

/// The line the guard prints once the server answers: `PREFIX redis://...`.
const READY: &str = "tokenauth-bench-redis";

/// How long the guard may take to stop the server and exit.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// `tokenauth-bench --serve-redis`: runs redis-server until stdin closes.
pub(crate) fn serve() -> ExitCode {
    let server = match RedisServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{READY} {}", server.url());
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(server);
    ExitCode::SUCCESS
}

/// The guard process and its server's URL. Dropping it closes the guard's
/// stdin and waits for it (the guard kills redis-server and exits); a guard
/// that does not exit in time is killed.
pub(crate) struct RedisProcess {
    guard: Child,
    url: String,
}

impl RedisProcess {
    /// Starts the guard and waits (blocking, up to about 10 s) for the
    /// server's URL. Fails with the install hint when `redis-server` is not
    /// on PATH.
    pub(crate) fn spawn() -> anyhow::Result<Self> {
        if !installed() {
            bail!(
                "redis-server is not on PATH, and the redis store (run by default) needs a real \
                 server: install it with `apt-get install -y redis-server` (Debian/Ubuntu), or run \
                 another store alone with `--store memory` or `--store file`"
            );
        }
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut guard = Command::new(exe)
            .arg("--serve-redis")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the redis-server guard process")?;
        let mut line = String::new();
        let read = match guard.stdout.take() {
            Some(out) => BufReader::new(out).read_line(&mut line).map(|_| ()),
            None => Ok(()),
        };
        let url = match (read, line.trim().strip_prefix(READY)) {
            (Ok(()), Some(url)) if url.trim().starts_with("redis://127.0.0.1:") => {
                url.trim().to_owned()
            }
            _ => {
                let _ = guard.kill();
                let _ = guard.wait();
                bail!("could not start redis-server (the reason is above)");
            }
        };
        Ok(RedisProcess { guard, url })
    }

    /// `redis://127.0.0.1:PORT/0` (no password: loopback only).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        drop(self.guard.stdin.take());
        let end = Instant::now() + STOP_LIMIT;
        while Instant::now() < end {
            if !matches!(self.guard.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.guard.kill();
        let _ = self.guard.wait();
    }
}

fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running `redis-server`, killed (and waited for) on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts `redis-server` on a free port of 127.0.0.1 (no RDB, no AOF)
    /// and waits until it answers PING.
    fn start() -> anyhow::Result<Self> {
        // The port is free when picked, but another process may take it
        // before the server binds it: then try another.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("finding a free loopback port")?
                .port();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--protected-mode", "yes"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server")?;
            let started = Instant::now();
            while started.elapsed() < START_LIMIT {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!("redis-server on port {port} exited: {status}");
                    break;
                }
                if ping(port) {
                    return Ok(RedisServer { child, port });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            if last_error.is_empty() {
                last_error =
                    format!("redis-server on port {port} did not answer PING in {START_LIMIT:?}");
            }
        }
        bail!("could not start redis-server: {last_error}")
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when the server on `port` answers PING with PONG.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
