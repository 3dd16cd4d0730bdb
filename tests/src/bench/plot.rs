//! The latency plot: accept-latency percentiles against offered rate, for Option B and for
//! Option A (baseline (a)), as SVG.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::{open_loop::Percentiles, run::BenchReport};

/// A line of the plot: a percentile of one path at each passing rate.
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// Reads one percentile.
type Pick = fn(&Percentiles) -> f64;

const PERCENTILES: [(&str, Pick); 3] = [
    ("p50", |p| p.p50),
    ("p99", |p| p.p99),
    ("p99.9", |p| p.p999),
];

/// Writes the plot of `report` to `path`.
pub fn latency_svg(report: &BenchReport, path: &Path) -> Result<()> {
    let lines = lines(report);
    let points = || lines.iter().flat_map(|l| l.points.iter());
    let max_rate = points().map(|p| p.0).fold(1.0, f64::max);
    let max_ms = points().map(|p| p.1).fold(1.0, f64::max);
    let min_ms = points().map(|p| p.1).fold(max_ms, f64::min).max(0.01);
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Accept latency (to HTTP 202) against offered rate, open loop",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            0.0..max_rate * 1.05,
            (min_ms * 0.8..max_ms * 1.25).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("offered rate (commands/s)")
        .y_desc("latency (ms, log scale)")
        .draw()?;
    for line in &lines {
        let color = line.color;
        chart
            .draw_series(LineSeries::new(line.points.clone(), color.stroke_width(2)))?
            .label(&line.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            line.points
                .iter()
                .map(|p| Circle::new(*p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn lines(report: &BenchReport) -> Vec<Line> {
    let option_b = [
        RGBColor(31, 119, 180),
        RGBColor(23, 80, 140),
        RGBColor(10, 40, 90),
    ];
    let direct = [
        RGBColor(255, 127, 14),
        RGBColor(214, 39, 40),
        RGBColor(140, 20, 20),
    ];
    let mut paths = vec![("Option B", &report.option_b, option_b)];
    if let Some(a) = &report.direct {
        paths.push(("(a) Option A", a, direct));
    }
    let mut lines = Vec::new();
    for (name, path, colors) in paths {
        let runs = path.passing_runs();
        for ((percentile, pick), color) in PERCENTILES.iter().zip(colors) {
            lines.push(Line {
                label: format!("{name} {percentile}"),
                color,
                points: runs
                    .iter()
                    .map(|r| (r.offered_rate, pick(&r.latency).max(0.01)))
                    .collect(),
            });
        }
    }
    lines
}
