//! PNG charts of a results file (plotters' bitmap backend).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::Results;

/// Text is drawn with DejaVu Sans (Debian's fonts-dejavu-core), read at run
/// time: plotters' ab_glyph backend links no font library.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const COLORS: [RGBColor; 6] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
    RGBColor(0x81, 0x72, 0xb3),
    RGBColor(0x93, 0x78, 0x60),
];

fn drawing<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

fn register_font() -> anyhow::Result<()> {
    let bytes = std::fs::read(FONT)
        .with_context(|| format!("reading {FONT} (install Debian's fonts-dejavu-core)"))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{FONT} is not a font plotters can read"))
}

/// Draw every chart the results allow into `out`; returns the files written.
pub fn draw_all(results: &Results, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    register_font()?;
    let mut written = Vec::new();
    if let Some(load) = &results.load {
        let categories: Vec<String> = load.connections.iter().map(|c| c.to_string()).collect();
        let series = |value: fn(&crate::load::Point) -> f64| -> Vec<(String, Vec<f64>)> {
            load.targets
                .iter()
                .map(|t| (t.name.clone(), t.points.iter().map(value).collect()))
                .collect()
        };
        let path = out.join("load-throughput.png");
        bars(
            &path,
            "Throughput (higher is better)",
            "connections",
            "requests / s",
            &categories,
            &series(|p| p.rps),
        )?;
        written.push(path);
        let path = out.join("load-cpu.png");
        bars(
            &path,
            "CPU per request of the process under test (lower is better)",
            "connections",
            "µs of CPU per request",
            &categories,
            &series(|p| p.cpu_us_per_request),
        )?;
        written.push(path);
        let path = out.join("load-p99.png");
        bars(
            &path,
            "p99 latency (lower is better)",
            "connections",
            "p99 latency, µs",
            &categories,
            &series(|p| p.p99_us as f64),
        )?;
        written.push(path);
    }
    if let Some(decision) = &results.decision {
        let categories: Vec<String> = decision.policies.iter().map(|p| p.policy.clone()).collect();
        let engine = |name: &str, pick: fn(&crate::decision::PolicyDecision) -> Option<f64>| {
            (
                name.to_string(),
                decision.policies.iter().map(|p| pick(p).unwrap_or(0.0)).collect(),
            )
        };
        let path = out.join("decision.png");
        bars(
            &path,
            "One decision, p50 (lower is better)",
            "policy",
            "µs",
            &categories,
            &[
                engine("Wasm, fresh instance", |p| Some(p.wasm.p50_us)),
                engine("Cedar", |p| p.cedar.map(|c| c.p50_us)),
                engine("Rego (regorus)", |p| p.rego.map(|r| r.p50_us)),
            ],
        )?;
        written.push(path);
        let scales = [
            (
                "decision-diff-size.png",
                "pr-creator decision vs diff size (log-log)",
                "diff, KiB",
                &decision.diff_size,
                1024.0,
            ),
            (
                "decision-roles.png",
                "crash-tracker decision vs roles loaded (log-log)",
                "roles loaded",
                &decision.roles,
                1.0,
            ),
        ];
        for (file, title, x_label, points, x_unit) in scales {
            if points.is_empty() {
                continue;
            }
            let path = out.join(file);
            scale(&path, title, x_label, points, x_unit)?;
            written.push(path);
        }
    }
    for path in &written {
        eprintln!("chart: {}", path.display());
    }
    Ok(written)
}

/// p50 and p99 of one scaling measurement, `x` divided by `x_unit`.
fn scale(
    path: &Path,
    title: &str,
    x_label: &str,
    points: &[crate::decision::ScalePoint],
    x_unit: f64,
) -> anyhow::Result<()> {
    let series = |pick: fn(&crate::decision::Percentiles) -> f64| {
        points
            .iter()
            .map(|s| (s.x as f64 / x_unit, pick(&s.wasm)))
            .collect::<Vec<_>>()
    };
    lines(
        path,
        title,
        x_label,
        "µs",
        &[
            ("p50".to_string(), series(|p| p.p50_us)),
            ("p99".to_string(), series(|p| p.p99_us)),
        ],
    )
}

/// Grouped bars: one group per category, one bar per series.
fn bars(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> anyhow::Result<()> {
    // Room for a policy name under each group.
    let width_px = (160 * categories.len() as u32).clamp(1000, 1700);
    let root = BitMapBackend::new(path, (width_px, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let groups = categories.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..groups, 0f64..top)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc(x_label)
        .y_desc(y_label)
        .y_label_formatter(&|v| short(*v))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(drawing)?;
    // Category names under the middle of each group.
    for (i, name) in categories.iter().enumerate() {
        chart
            .draw_series(std::iter::once(Text::new(
                name.clone(),
                (i as f64 + 0.5, 0.0),
                TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
            )))
            .map_err(drawing)?;
    }
    let width = 0.8 / series.len().max(1) as f64;
    for (j, (name, values)) in series.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let x0 = i as f64 + 0.1 + j as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, *v)], color.filled())
            }))
            .map_err(drawing)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(drawing)?;
    root.present().map_err(drawing)?;
    Ok(())
}

/// An axis value without noise: 152041 → "152k", 12.5 → "12.5".
fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Lines on log-log axes.
fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let all = || series.iter().flat_map(|(_, pts)| pts.iter().copied());
    let (x_min, x_max) = all().fold((f64::MAX, 0.0f64), |(lo, hi), (x, _)| (lo.min(x), hi.max(x)));
    let (y_min, y_max) = all().fold((f64::MAX, 0.0f64), |(lo, hi), (_, y)| (lo.min(y), hi.max(y)));
    let (x_min, y_min) = (x_min.max(1e-3) * 0.8, y_min.max(1e-3) * 0.8);
    let (x_max, y_max) = (x_max.max(x_min * 2.0) * 1.25, y_max.max(y_min * 2.0) * 1.25);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(drawing)?;
    for (j, (name, points)) in series.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(drawing)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(drawing)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(drawing)?;
    root.present().map_err(drawing)?;
    Ok(())
}
