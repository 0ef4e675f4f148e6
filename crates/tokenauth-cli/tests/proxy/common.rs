//! What the proxy's test files (`proxy.rs`, `proxy_attacks.rs`) share: the
//! command line pointed at the emulator, the seed providers' inputs, and
//! the proxy as a child process.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokenauth_emulator::{DEMO_ENV, Emulator};

/// The seed providers' inputs, as the root `providers.toml` reads them.
pub(crate) const SEED_INPUTS: [(&str, &str); 8] = DEMO_ENV;

/// The repository's root (the root `providers.toml`).
pub(crate) fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `tokenauth --resolve … --cacert CA --config CONFIG` in `dir`: the real
/// host names resolve to the emulator and only its CA is trusted. The
/// environment's own tokenauth settings are removed.
pub(crate) fn tokenauth(emulator: &Emulator, ca: &Path, config: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenauth"));
    cmd.current_dir(dir);
    for var in [
        "TOKENAUTH_CONFIG",
        "TOKENAUTH_STORE",
        "TOKENAUTH_CONNECTIONS",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    for (host, addr) in emulator.host_overrides() {
        cmd.arg("--resolve").arg(format!("{host}:443:{addr}"));
    }
    cmd.arg("--cacert").arg(ca).arg("--config").arg(config);
    cmd
}

/// Sets `vars` in `cmd`'s environment; an empty value removes the variable.
pub(crate) fn set_env<'a>(
    cmd: &mut Command,
    vars: impl IntoIterator<Item = &'a (&'a str, &'a str)>,
) {
    for (k, v) in vars {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
}

/// A running `tokenauth proxy`, its stderr collected; killed when dropped.
pub(crate) struct ProxyProcess {
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT`, as the proxy printed it.
    pub(crate) url: String,
    log: Arc<Mutex<String>>,
}

impl ProxyProcess {
    /// Starts `cmd` (a `tokenauth … proxy` command line) and reads the
    /// address from its first line; panics with its stderr if it does not
    /// start.
    pub(crate) fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tokenauth proxy");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        // Byte by byte: nothing after the first line is read ahead.
        let mut stdout = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        let Some(url) = line.trim().strip_prefix("tokenauth proxy listening on ") else {
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!("the proxy did not start: {line:?}\n{}", log.lock().unwrap());
        };
        ProxyProcess {
            child,
            url: url.to_owned(),
            log,
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Everything it wrote to stderr so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small HTTP server of a test's own on loopback, standing for an API the
/// emulator does not play: every connection is answered by `serve` on a
/// thread of its own (given the server's port), which records what it
/// received in the shared list.
pub(crate) struct LocalServer<T> {
    pub(crate) port: u16,
    seen: Arc<Mutex<Vec<T>>>,
}

impl<T: Clone + Send + 'static> LocalServer<T> {
    pub(crate) fn start(serve: fn(TcpStream, u16, &Mutex<Vec<T>>)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(stream, port, &log));
            }
        });
        LocalServer { port, seen }
    }

    /// What it received so far, oldest first.
    pub(crate) fn requests(&self) -> Vec<T> {
        self.seen.lock().unwrap().clone()
    }

    /// The last request it received.
    #[allow(dead_code)]
    pub(crate) fn last(&self) -> T {
        self.requests().pop().expect("the API received a request")
    }
}
