//! Runs one client process under `valgrind --tool=callgrind` and reads the
//! total instruction count it wrote, and how many of those instructions
//! were the memory allocator's own.

use std::collections::HashMap;
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

/// What one client process executed, counted by callgrind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Every instruction.
    pub(crate) total: u64,
    /// Of them, in the allocator's own functions (glibc's `malloc` and
    /// `free` with their internals, Rust's allocation shims): the part that
    /// moves from run to run with the heap's layout, which the order in
    /// which 64 tasks allocate and free varies.
    pub(crate) allocator: u64,
}

/// The counts of `tokenauth-instructions --client VARIANT` sending
/// `requests` requests.
pub(crate) fn count(
    exe: &Path,
    out_dir: &Path,
    variant: Variant,
    port: u16,
    requests: u64,
    tasks: u64,
) -> anyhow::Result<Counts> {
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
    let total = totals(&text).with_context(|| format!("no `totals:` line in {}", out.display()))?;
    Ok(Counts {
        total,
        allocator: allocator_cost(&text),
    })
}

/// True for a function of the allocator, by its name in callgrind's
/// output (glibc's internals carry compiler suffixes such as
/// `unlink_chunk.constprop.0`).
fn is_allocator(name: &str) -> bool {
    // `name'2` is callgrind's name for a recursive activation.
    let name = name.split('\'').next().unwrap_or(name);
    let base = name.split('.').next().unwrap_or(name);
    matches!(
        base,
        "malloc"
            | "free"
            | "calloc"
            | "realloc"
            | "_int_malloc"
            | "_int_free"
            | "_int_realloc"
            | "malloc_consolidate"
            | "unlink_chunk"
            | "alloc_perturb"
            | "sysmalloc"
            | "systrim"
            | "sysmalloc_mmap"
            | "tcache_init"
            | "ptmalloc_init"
            | "posix_memalign"
            | "aligned_alloc"
            | "memalign"
            | "_mid_memalign"
            | "_int_memalign"
            | "__libc_malloc"
            | "__libc_free"
            | "__libc_calloc"
            | "__libc_realloc"
    ) || [
        "__rdl_alloc",
        "__rdl_alloc_zeroed",
        "__rdl_dealloc",
        "__rdl_realloc",
        "__rust_alloc",
        "__rust_alloc_zeroed",
        "__rust_dealloc",
        "__rust_realloc",
    ]
    .iter()
    .any(|shim| name.ends_with(shim))
}

/// The instructions executed in the allocator's functions themselves (their
/// self cost), read from a callgrind output file: each `fn=` block's cost
/// lines, except the line after `calls=`, which is the callee's cost.
/// Names are compressed (`fn=(12) name` once, then `fn=(12)`), and may be
/// defined first in a `cfn=` line.
fn allocator_cost(text: &str) -> u64 {
    // Each cost line starts with one number per position kind (`line`,
    // or `instr line` with `--dump-instr=yes`), then the events.
    let positions = text
        .lines()
        .find_map(|line| line.strip_prefix("positions:"))
        .map_or(1, |kinds| kinds.split_whitespace().count().max(1));
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut in_allocator = false;
    let mut after_call = false;
    let mut sum = 0;
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("fn=")
            .or_else(|| line.strip_prefix("cfn="))
        {
            let name = match rest.split_once(' ') {
                Some((id, name)) if id.starts_with('(') => {
                    names.insert(id, name);
                    name
                }
                _ if rest.starts_with('(') => names.get(rest).copied().unwrap_or(""),
                _ => rest,
            };
            if line.starts_with("fn=") {
                in_allocator = is_allocator(name);
            }
            continue;
        }
        if line.starts_with("calls=") {
            after_call = true;
            continue;
        }
        let cost_line = line
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'*'));
        if !cost_line {
            continue;
        }
        if std::mem::take(&mut after_call) || !in_allocator {
            continue;
        }
        // The first event (instructions) after the positions.
        if let Some(cost) = line
            .split_whitespace()
            .nth(positions)
            .and_then(|c| c.parse::<u64>().ok())
        {
            sum += cost;
        }
    }
    sum
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
    use super::{allocator_cost, is_allocator, totals};

    #[test]
    fn reads_the_allocators_self_cost() {
        // As callgrind writes it: compressed names, a name first seen in a
        // call, relative positions, a call's inclusive cost after `calls=`.
        let out = "events: Ir\n\
                   fn=(1) main\n\
                   3 100\n\
                   cfn=(2) malloc\n\
                   calls=4 0\n\
                   4 900\n\
                   +1 5\n\
                   fn=(2)\n\
                   10 40\n\
                   cfn=(3) _int_malloc\n\
                   calls=1 0\n\
                   * 850\n\
                   fn=(3)\n\
                   20 800\n\
                   -2 50\n\
                   fn=(4) unlink_chunk.constprop.0\n\
                   7 6\n\
                   fn=(5) my_malloc_wrapper\n\
                   1 1000\n\
                   totals: 2911\n";
        assert_eq!(allocator_cost(out), 40 + 800 + 50 + 6);
        assert_eq!(allocator_cost("events: Ir\nfn=(1) main\n1 5\n"), 0);
        // With instruction addresses (`--dump-instr=yes`): two positions.
        let out = "positions: instr line\nevents: Ir\nfn=(1) free\n0x10 3 7\n+4 * 2\nfn=(2) main\n0x20 9 100\n";
        assert_eq!(allocator_cost(out), 9);
    }

    #[test]
    fn knows_the_allocators_functions() {
        for name in [
            "malloc",
            "free",
            "_int_free",
            "malloc_consolidate",
            "systrim.constprop.0",
            "__rustc::__rdl_alloc",
            "__rustc::__rdl_alloc_zeroed",
            "posix_memalign",
            "_int_memalign",
            "malloc'2",
        ] {
            assert!(is_allocator(name), "{name}");
        }
        for name in [
            "memcpy",
            "tokenauth_core::cache::table::Table::get",
            "my_malloc_wrapper",
            "freeaddrinfo",
        ] {
            assert!(!is_allocator(name), "{name}");
        }
    }

    #[test]
    fn reads_the_totals_line() {
        let out = "events: Ir\nsummary: 1234\nfn=main\n3 10\ntotals: 1234\n";
        assert_eq!(totals(out), Some(1234));
        assert_eq!(totals("events: Ir\nsummary: 99 7\n"), Some(99));
        assert_eq!(totals("events: Ir\n"), None);
    }
}
