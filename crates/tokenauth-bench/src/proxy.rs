//! The `proxy` scenario's `tokenauth proxy`: the real binary in a child
//! process, serving the bench provider (the emulated 2BA) to a plain
//! reqwest client, as a worker in another language would use it.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokenauth_emulator::TWOBA_DEMO_CLIENT_ID;

use crate::variants::Target;

/// The connection the proxy serves (its `Tokenauth-Connection`).
pub(crate) const CONNECTION: &str = "bench";

/// A running `tokenauth proxy`; killed when dropped.
pub(crate) struct ProxyProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The key the client presents (random per run).
    pub(crate) key: String,
    dir: PathBuf,
}

impl ProxyProcess {
    /// Starts `tokenauth proxy` (the binary beside this one) for emulator
    /// tenant `tenant`, with a key.
    pub(crate) fn spawn(target: &Target, tenant: u64) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?.with_file_name("tokenauth");
        if !exe.exists() {
            bail!(
                "the proxy scenario runs the real `tokenauth proxy`, and {} does not exist: build it first with `cargo build --release -p tokenauth-cli` (the same profile as this harness)",
                exe.display()
            );
        }
        let dir =
            std::env::temp_dir().join(format!("tokenauth-bench-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("providers.toml");
        std::fs::write(&config, target.provider_toml())?;
        let connections = dir.join("connections.toml");
        std::fs::write(
            &connections,
            format!(
                "[connections.{CONNECTION}]\nprovider = \"bench\"\n\
                 inputs.username = \"tenant-{tenant}\"\n\
                 inputs.password = {{ env = \"BENCH_TENANT_PASSWORD\" }}\n\
                 inputs.client_id = \"{TWOBA_DEMO_CLIENT_ID}\"\n\
                 inputs.client_secret = {{ env = \"BENCH_CLIENT_SECRET\" }}\n"
            ),
        )?;
        // A per-run key for a loopback benchmark.
        let key: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(32)
            .collect();
        let mut child = Command::new(&exe)
            .arg("--config")
            .arg(&config)
            .args(["proxy", "--listen", "127.0.0.1:0", "--connections"])
            .arg(&connections)
            .env("TOKENAUTH_PROXY_KEY", &key)
            .env("BENCH_TENANT_PASSWORD", format!("tenant-{tenant}-secret"))
            .env(
                "BENCH_CLIENT_SECRET",
                tokenauth_emulator::TWOBA_DEMO_CLIENT_SECRET,
            )
            .env_remove("TOKENAUTH_STORE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            std::io::BufReader::new(stdout).read_line(&mut line)?;
        }
        let Some(url) = line.trim().strip_prefix("tokenauth proxy listening on ") else {
            let _ = child.kill();
            bail!(
                "`tokenauth proxy` did not start (it printed {line:?}); run it by hand to see why"
            );
        };
        Ok(ProxyProcess {
            url: url.to_owned(),
            child,
            key,
            dir,
        })
    }

    /// The proxy process's CPU time so far (user + system, all threads),
    /// from `/proc/PID/stat` in clock ticks (USER_HZ, 100 per second on
    /// Linux): 10 ms resolution, fine over a window of seconds.
    pub(crate) fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may hold spaces), from
        // field 3 (`state`): utime is field 14, stime field 15.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(Duration::from_millis((utime + stime) * 10))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
