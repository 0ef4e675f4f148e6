//! Latency samples, exact percentiles (sorted vector), time series, RSS,
//! process CPU time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One request: when it started (µs since its window started) and how long
/// it took (µs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at_us: u64,
    pub(crate) latency_us: u32,
}

/// Non-200 outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Errors {
    /// Replies by status, for every status but 200.
    pub(crate) by_status: BTreeMap<u16, u64>,
    /// Requests that got no reply (transport error, timeout, no credential).
    pub(crate) failed: u64,
}

impl Errors {
    pub(crate) fn total(&self) -> u64 {
        self.by_status.values().sum::<u64>() + self.failed
    }

    pub(crate) fn merge(&mut self, other: &Errors) {
        for (s, n) in &other.by_status {
            *self.by_status.entry(*s).or_default() += n;
        }
        self.failed += other.failed;
    }
}

/// Percentiles of a set of latencies, in microseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Percentiles {
    pub(crate) mean: f64,
    pub(crate) p50: u32,
    pub(crate) p99: u32,
    pub(crate) p999: u32,
    pub(crate) max: u32,
}

impl Percentiles {
    pub(crate) fn of(samples: &[Sample]) -> Self {
        let mut v: Vec<u32> = samples.iter().map(|s| s.latency_us).collect();
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        let rank = |q: f64| {
            // Nearest rank: the smallest value with at least q of the samples at or below it.
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[i]
        };
        let sum: u64 = v.iter().map(|&x| u64::from(x)).sum();
        Percentiles {
            mean: sum as f64 / v.len() as f64,
            p50: rank(0.50),
            p99: rank(0.99),
            p999: rank(0.999),
            max: v[v.len() - 1],
        }
    }
}

/// The largest latency (µs) of the requests started in each bucket; `None`
/// where no request started.
pub(crate) fn max_series(samples: &[Sample], bucket: Duration, span: Duration) -> Vec<Option<u32>> {
    let b = bucket.as_micros().max(1) as u64;
    let n = (span.as_micros() as u64).div_ceil(b).max(1) as usize;
    let mut out = vec![None::<u32>; n];
    for s in samples {
        let i = ((s.at_us / b) as usize).min(n - 1);
        let slot = &mut out[i];
        *slot = Some(slot.map_or(s.latency_us, |m| m.max(s.latency_us)));
    }
    out
}

/// How many requests started in each bucket.
pub(crate) fn count_series(samples: &[Sample], bucket: Duration, span: Duration) -> Vec<u64> {
    let b = bucket.as_micros().max(1) as u64;
    let n = (span.as_micros() as u64).div_ceil(b).max(1) as usize;
    let mut out = vec![0; n];
    for s in samples {
        out[((s.at_us / b) as usize).min(n - 1)] += 1;
    }
    out
}

/// Resident memory of this process (`VmRSS` in `/proc/self/status`), bytes.
pub(crate) fn vm_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time this process has used so far, user + system, all threads
/// (`CLOCK_PROCESS_CPUTIME_ID`, nanosecond resolution; child processes such
/// as the emulator are not included). `None` where it cannot be read.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn process_cpu() -> Option<Duration> {
    use rustix::time::{ClockId, clock_gettime};
    let ts = clock_gettime(ClockId::ProcessCPUTime);
    Some(Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    ))
}

/// Not read on this platform: the CPU figures are left out.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn process_cpu() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(lat: &[u32]) -> Vec<Sample> {
        lat.iter()
            .enumerate()
            .map(|(i, &l)| Sample {
                at_us: i as u64 * 1000,
                latency_us: l,
            })
            .collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = samples(&(1..=1000).collect::<Vec<_>>());
        let p = Percentiles::of(&s);
        assert_eq!((p.p50, p.p99, p.p999, p.max), (500, 990, 999, 1000));
        assert_eq!(Percentiles::of(&[]).max, 0);
        assert_eq!(Percentiles::of(&samples(&[7])).p50, 7);
    }

    #[test]
    fn series_keeps_the_largest_per_bucket() {
        let s = samples(&[1, 5, 3, 9]); // at 0, 1, 2, 3 ms
        let series = max_series(&s, Duration::from_millis(2), Duration::from_millis(6));
        assert_eq!(series, vec![Some(5), Some(9), None]);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn process_cpu_counts_work_done() {
        // Spin (bounded by the wall clock) until the process clock moves.
        let before = process_cpu().expect("CLOCK_PROCESS_CPUTIME_ID");
        let wall = std::time::Instant::now();
        let mut after = before;
        while after < before + Duration::from_millis(5) && wall.elapsed() < Duration::from_secs(10)
        {
            std::hint::black_box(&mut after);
            after = process_cpu().expect("readable");
        }
        assert!(
            after >= before + Duration::from_millis(5),
            "{before:?} -> {after:?}"
        );
    }
}
