//! The SVG: per scenario, the largest latency per time bucket for each
//! variant (log scale), with its token requests marked.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use super::report::{Report, ScenarioReport, VariantReport};

const PANEL_HEIGHT: u32 = 380;
const WIDTH: u32 = 1100;

fn colour(name: &str) -> RGBColor {
    match name {
        "plain" => RGBColor(120, 120, 120),
        "tokenauth" => RGBColor(31, 119, 180),
        "mutex-baseline" => RGBColor(214, 39, 40),
        _ => RGBColor(255, 127, 14),
    }
}

/// Draws one panel per scenario into `path`.
pub(crate) fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    // `processes` has no latency series: a table only.
    let scenarios: Vec<&ScenarioReport> = report
        .scenarios
        .iter()
        .filter(|s| !s.variants.is_empty())
        .collect();
    let n = scenarios.len().max(1);
    let height = PANEL_HEIGHT * u32::try_from(n).unwrap_or(1);
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let panels = root.split_evenly((n, 1));
    for (panel, s) in panels.iter().zip(scenarios) {
        draw_panel(panel, s).map_err(|e| anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw_panel(area: &Area<'_>, s: &ScenarioReport) -> Result<(), Box<dyn std::error::Error>> {
    let bucket_s = s.params.bucket_ms / 1000.0;
    let x_max = s
        .variants
        .iter()
        .map(|v| v.elapsed_s)
        .fold(0.0_f64, f64::max)
        .max(bucket_s);
    let y_top_ms = s
        .variants
        .iter()
        .map(|v| f64::from(v.latency_us.max) / 1000.0)
        .fold(1.0_f64, f64::max)
        * 10.0;
    let y_bottom_ms = 0.05;
    let p = &s.params;
    let caption = match s.name.as_str() {
        "burst" => format!(
            "burst: {} concurrent cold requests x {} rounds (back to back)",
            p.burst, p.rounds
        ),
        _ => format!(
            "{}: {} workers, TTL {} s, token latency {} ms, {} round(s) back to back",
            s.name, p.workers, p.ttl_s, p.token_latency_ms, p.rounds
        ),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (y_bottom_ms..y_top_ms).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("measured time (s)")
        .y_desc(format!("max latency per {} ms (ms)", p.bucket_ms))
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    for v in &s.variants {
        let c = colour(&v.name);
        // Token requests: in-flight spans shaded, arrivals as thin lines.
        if v.token_request_times_truncated {
            // One per request (no-cache): the shading would hide the lines.
            continue;
        }
        chart.draw_series(v.token_in_flight_s.iter().map(|[a, b]| {
            Rectangle::new(
                [(*a, y_bottom_ms), (b.max(a + 0.005), y_top_ms)],
                c.mix(0.12).filled(),
            )
        }))?;
        chart.draw_series(
            v.token_request_times_s
                .iter()
                .map(|t| PathElement::new(vec![(*t, y_bottom_ms), (*t, y_top_ms)], c.mix(0.6))),
        )?;
    }
    for v in &s.variants {
        let c = colour(&v.name);
        // A bucket in which no request started breaks the line.
        for (k, segment) in segments(v, bucket_s, y_bottom_ms).into_iter().enumerate() {
            let drawn =
                chart.draw_series(LineSeries::new(segment, c.stroke_width(2)).point_size(1))?;
            if k == 0 {
                drawn.label(legend(v)).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn segments(v: &VariantReport, bucket_s: f64, floor_ms: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (i, m) in v.max_latency_series_us.iter().enumerate() {
        match m {
            Some(us) => out.last_mut().map_or((), |s| {
                s.push((
                    (i as f64 + 0.5) * bucket_s,
                    (f64::from(*us) / 1000.0).max(floor_ms),
                ));
            }),
            None if out.last().is_some_and(|s| !s.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn legend(v: &VariantReport) -> String {
    let marks = if v.token_request_times_truncated {
        format!("{} token requests (not marked)", v.token_requests)
    } else {
        format!("{} token requests (marked)", v.token_requests)
    };
    format!(
        "{}: max {:.1} ms, {marks}",
        v.name,
        f64::from(v.latency_us.max) / 1000.0
    )
}
