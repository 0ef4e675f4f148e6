//! Runs one client process under `valgrind --tool=callgrind` and reads the
//! total instruction count it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::Variant;

/// Fails with what to install when valgrind is missing.
pub(crate) fn check_valgrind() -> anyhow::Result<()> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!(
            "valgrind is needed to count instructions and was not found on PATH; \
             install it (Debian/Ubuntu: apt-get install -y valgrind) and run again"
        ),
    }
}

/// Total instructions of `tokenauth-instructions --client VARIANT` sending
/// `requests` requests, counted by callgrind.
pub(crate) fn count(
    exe: &Path,
    out_dir: &Path,
    variant: Variant,
    port: u16,
    requests: u64,
    tasks: u64,
) -> anyhow::Result<u64> {
    let out: PathBuf = out_dir.join(format!("callgrind.{}.{requests}.out", variant.name()));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--quiet")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["--client", variant.name()])
        .args(["--port", &port.to_string()])
        .args(["--requests", &requests.to_string()])
        .args(["--tasks", &tasks.to_string()])
        .stdin(Stdio::null())
        .status()
        .context("starting valgrind")?;
    if !status.success() {
        bail!(
            "the {} client failed under valgrind ({status}); its errors are above",
            variant.name()
        );
    }
    let text = std::fs::read_to_string(&out)
        .with_context(|| format!("reading callgrind's output {}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    totals(&text).with_context(|| format!("no `totals:` line in {}", out.display()))
}

/// The `totals:` (or, in older formats, `summary:`) line of a callgrind
/// output file: instructions executed, the first event.
fn totals(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::totals;

    #[test]
    fn reads_the_totals_line() {
        let out = "events: Ir\nsummary: 1234\nfn=main\n3 10\ntotals: 1234\n";
        assert_eq!(totals(out), Some(1234));
        assert_eq!(totals("events: Ir\nsummary: 99 7\n"), Some(99));
        assert_eq!(totals("events: Ir\n"), None);
    }
}
