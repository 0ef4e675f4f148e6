//! The table, the JSON and the budget check.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::Variant;
use crate::callgrind::Counts;

/// One variant's counts.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Row {
    pub(crate) variant: Variant,
    /// Total instructions of each (short, long) pair of runs.
    pub(crate) instructions: Vec<[u64; 2]>,
    /// Of them, the allocator's own, per pair.
    pub(crate) allocator_instructions: Vec<[u64; 2]>,
    /// Per pair: (long - short) / the extra requests of the long run.
    pub(crate) per_request_runs: Vec<f64>,
    /// The median of `per_request_runs`.
    pub(crate) per_request: f64,
    /// The median per request of the instructions outside the allocator,
    /// which, unlike the allocator's, repeat from run to run within a few
    /// dozen.
    pub(crate) per_request_outside_allocator: f64,
}

impl Row {
    /// The medians over `runs` pairs of (short, long) counts.
    pub(crate) fn median(variant: Variant, runs: Vec<[Counts; 2]>, extra_requests: u64) -> Self {
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let per = |a: u64, b: u64| (b as f64 - a as f64) / extra_requests as f64;
        let per_request_runs: Vec<f64> = runs.iter().map(|[a, b]| per(a.total, b.total)).collect();
        let outside: Vec<f64> = runs
            .iter()
            .map(|[a, b]| {
                per(
                    a.total.saturating_sub(a.allocator),
                    b.total.saturating_sub(b.allocator),
                )
            })
            .collect();
        Row {
            variant,
            instructions: runs.iter().map(|[a, b]| [a.total, b.total]).collect(),
            allocator_instructions: runs
                .iter()
                .map(|[a, b]| [a.allocator, b.allocator])
                .collect(),
            per_request: median(&per_request_runs),
            per_request_outside_allocator: median(&outside),
            per_request_runs,
        }
    }
}

/// The median of `values` (`NaN` for none).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Every variant of one run.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Measured {
    pub(crate) requests: [u64; 2],
    pub(crate) tasks: u64,
    pub(crate) rows: Vec<Row>,
}

impl Measured {
    fn row(&self, variant: Variant) -> Option<&Row> {
        self.rows.iter().find(|r| r.variant == variant)
    }

    fn per_request(&self, variant: Variant) -> Option<f64> {
        self.row(variant).map(|r| r.per_request)
    }

    /// Instructions per request of `variant` over its baseline.
    pub(crate) fn added(&self, variant: Variant) -> Option<f64> {
        Some(self.per_request(variant)? - self.per_request(variant.baseline()?)?)
    }

    /// The markdown table.
    pub(crate) fn table(&self) -> String {
        let mut out = format!(
            "Instructions per request (callgrind; {} and {} requests from {} tasks on one thread, difference / {}, median of {} pair(s)):\n\n\
             | variant | what one request is | instructions per request | over its baseline | over plain | over its baseline outside the allocator |\n\
             |---|---|---:|---:|---:|---:|\n",
            self.requests[0],
            self.requests[1],
            self.tasks,
            self.requests[1] - self.requests[0],
            self.rows.first().map_or(0, |r| r.instructions.len()),
        );
        for row in &self.rows {
            let v = row.variant;
            let over = |base: Option<Variant>| {
                let base = base?;
                let d = row.per_request - self.per_request(base)?;
                let pct = 100.0 * d / self.per_request(base)?;
                Some(format!("{} ({pct:+.1}%) vs `{}`", signed(d), base.name()))
            };
            // Plain: the client without any middleware or layer.
            let plain = match v {
                Variant::TokenauthReqwest => over(Some(Variant::Reqwest)),
                _ => None,
            };
            // The same, without the allocator's instructions, which move
            // with the heap's layout from run to run.
            let outside = v.baseline().and_then(|base| {
                let base = self.row(base)?;
                Some(signed(
                    row.per_request_outside_allocator - base.per_request_outside_allocator,
                ))
            });
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                v.name(),
                v.describe(),
                thousands(row.per_request),
                over(v.baseline()).unwrap_or_else(|| "-".into()),
                plain.unwrap_or_else(|| "-".into()),
                outside.unwrap_or_else(|| "-".into()),
            );
        }
        out
    }
}

/// `budget.toml`: per variant, the instructions per request it may add to
/// its baseline.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Budget {
    added: BTreeMap<String, f64>,
}

/// How much above its budget a variant may go before the check fails.
const TOLERANCE: f64 = 0.20;

impl Budget {
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the budget file {}", path.display()))?;
        let budget: Budget = toml::from_str(&text).with_context(|| {
            format!(
                "{} is not a budget file: expected `[added]` with `variant-name = instructions`",
                path.display()
            )
        })?;
        for name in budget.added.keys() {
            if !Variant::ALL
                .iter()
                .any(|v| v.name() == name && v.baseline().is_some())
            {
                anyhow::bail!(
                    "{}: `{name}` is not a variant with a baseline (one of: {})",
                    path.display(),
                    Variant::ALL
                        .iter()
                        .filter(|v| v.baseline().is_some())
                        .map(|v| v.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(budget)
    }

    /// Each budgeted variant's added instructions against its budget.
    pub(crate) fn check(&self, measured: &Measured) -> Verdict {
        let lines = self
            .added
            .iter()
            .filter_map(|(name, &budget)| {
                let variant = *Variant::ALL.iter().find(|v| v.name() == name)?;
                Some(Line {
                    variant,
                    budget,
                    added: measured.added(variant),
                })
            })
            .collect();
        Verdict { lines }
    }
}

struct Line {
    variant: Variant,
    budget: f64,
    /// `None`: the variant was not measured.
    added: Option<f64>,
}

impl Line {
    fn passed(&self) -> bool {
        self.added
            .is_none_or(|added| added <= self.budget * (1.0 + TOLERANCE))
    }
}

/// The outcome of [`Budget::check`].
pub(crate) struct Verdict {
    lines: Vec<Line>,
}

impl Verdict {
    pub(crate) fn passed(&self) -> bool {
        self.lines.iter().all(Line::passed)
    }

    pub(crate) fn table(&self) -> String {
        let mut out = String::from(
            "Budget (fails above budget + 20%):\n\n\
             | variant | added per request | budget | limit | |\n|---|---:|---:|---:|---|\n",
        );
        for line in &self.lines {
            let limit = line.budget * (1.0 + TOLERANCE);
            let (added, verdict) = match line.added {
                Some(a) => (signed(a), if line.passed() { "ok" } else { "**over**" }),
                None => ("not measured".into(), "skipped"),
            };
            let _ = writeln!(
                out,
                "| `{}` | {added} | {} | {} | {verdict} |",
                line.variant.name(),
                thousands(line.budget),
                thousands(limit),
            );
        }
        out
    }
}

/// `1234.6` as `1,235`.
fn thousands(x: f64) -> String {
    #[expect(clippy::cast_possible_truncation, reason = "rounded, small")]
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `1234.6` as `+1,235`.
fn signed(x: f64) -> String {
    let s = thousands(x);
    if s.starts_with('-') {
        s
    } else {
        format!("+{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(reqwest: u64, middleware: u64, tokenauth: u64) -> Measured {
        let row = |variant, per: u64| Row::median(variant, vec![pair(per * 100, per * 300)], 200);
        Measured {
            requests: [100, 300],
            tasks: 1,
            rows: vec![
                row(Variant::Reqwest, reqwest),
                row(Variant::ReqwestMiddleware, middleware),
                row(Variant::TokenauthReqwest, tokenauth),
            ],
        }
    }

    /// A pair of runs with no allocator instructions.
    fn pair(short: u64, long: u64) -> [Counts; 2] {
        [short, long].map(|total| Counts {
            total,
            allocator: 0,
        })
    }

    #[test]
    fn per_request_is_the_median_difference_over_the_extra_requests() {
        let row = Row::median(Variant::Reqwest, vec![pair(1_000_000, 1_600_000)], 200);
        assert!((row.per_request - 3_000.0).abs() < 1e-9);
        let runs = vec![pair(0, 200_000), pair(0, 260_000), pair(0, 180_000)];
        let row = Row::median(Variant::Reqwest, runs, 100);
        assert!(
            (row.per_request - 2_000.0).abs() < 1e-9,
            "{}",
            row.per_request
        );
    }

    #[test]
    fn the_allocators_share_is_taken_out_per_pair() {
        let counts = |total, allocator| Counts { total, allocator };
        // 3,000 per request in all, of which 1,000 in the allocator; the
        // other pair's allocator moved (2,000), its total with it.
        let runs = vec![
            [counts(1_000_000, 100_000), counts(1_600_000, 300_000)],
            [counts(1_000_000, 100_000), counts(1_800_000, 500_000)],
            [counts(1_000_000, 100_000), counts(1_600_000, 300_000)],
        ];
        let row = Row::median(Variant::Reqwest, runs, 200);
        assert!(
            (row.per_request - 3_000.0).abs() < 1e-9,
            "{}",
            row.per_request
        );
        assert!(
            (row.per_request_outside_allocator - 2_000.0).abs() < 1e-9,
            "{}",
            row.per_request_outside_allocator
        );
    }

    #[test]
    fn the_budget_fails_only_above_twenty_percent() {
        let budget: Budget = toml::from_str("[added]\ntokenauth-reqwest = 1000\n").unwrap();
        assert!(budget.check(&measured(60_000, 61_000, 62_200)).passed());
        let over = budget.check(&measured(60_000, 61_000, 62_201));
        assert!(!over.passed());
        assert!(over.table().contains("**over**"), "{}", over.table());
    }

    #[test]
    fn a_budget_for_an_unknown_variant_is_refused() {
        let dir = std::env::temp_dir().join(format!("ti-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("budget.toml");
        std::fs::write(&path, "[added]\nreqwest = 10\n").unwrap();
        let err = Budget::read(&path).unwrap_err().to_string();
        assert!(err.contains("not a variant with a baseline"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(1234.6), "1,235");
        assert_eq!(thousands(62_000.0), "62,000");
        assert_eq!(signed(-1500.0), "-1,500");
        assert_eq!(signed(12.0), "+12");
    }
}
