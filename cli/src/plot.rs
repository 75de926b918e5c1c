//! The bench plot: an SVG with round-trip latency (p50) and throughput, one bar
//! per transport, grouped by placement and message size.
//!
//! plotters draws it with its SVG backend only (no bitmap backend, no font
//! files: the viewer renders the text), which keeps the command a small build.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use shmsock_bench::units::size_name;
use shmsock_bench::Report;

use crate::error::{code, CliError};

/// One chart: groups along x, one bar per series in each group.
struct Panel {
    title: String,
    unit: &'static str,
    groups: Vec<String>,
    /// (label, one value per group; NaN: not measured).
    series: Vec<(String, Vec<f64>)>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
];

/// Writes the plot of `report` to `path` (SVG).
pub fn write(report: &Report, path: &Path) -> Result<(), CliError> {
    draw(report, path).map_err(|why| {
        CliError::new(
            code::FAILED,
            format!("writing the plot {}", path.display()),
            why,
            "Check that the directory exists and is writable",
        )
    })
}

fn draw(report: &Report, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(
            &format!("shmsock {} vs Unix sockets ({})", report.shmsock_version, report.cpu_model),
            ("sans-serif", 20),
        )
        .map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(700);
    draw_panel(&left, &latency_panel(report)).map_err(|e| e.to_string())?;
    draw_panel(&right, &throughput_panel(report)).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Transport labels in the order the report first lists them.
fn transport_labels(report: &Report) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for t in report.placements.iter().flat_map(|p| &p.transports) {
        if !labels.contains(&t.label) {
            labels.push(t.label.clone());
        }
    }
    labels
}

fn latency_panel(report: &Report) -> Panel {
    panel(report, "round trip, p50 (lower is better)", "µs", &report.config.latency_sizes, |t, size| {
        t.latency_of(size).map(|l| l.p50_ns / 1000.0)
    })
}

fn throughput_panel(report: &Report) -> Panel {
    panel(report, "one-way throughput (higher is better)", "GB/s", &report.config.throughput_sizes, |t, size| {
        t.throughput_of(size).map(|x| x.gb_per_s)
    })
}

fn panel(
    report: &Report,
    title: &str,
    unit: &'static str,
    sizes: &[usize],
    value: impl Fn(&shmsock_bench::TransportReport, usize) -> Option<f64>,
) -> Panel {
    let mut groups = Vec::new();
    let mut series: Vec<(String, Vec<f64>)> = transport_labels(report).into_iter().map(|l| (l, Vec::new())).collect();
    for p in &report.placements {
        for &size in sizes {
            groups.push(format!("{}, {}", p.name, size_name(size)));
            for (label, values) in &mut series {
                let v = p.transports.iter().find(|t| &t.label == label).and_then(|t| value(t, size));
                values.push(v.unwrap_or(f64::NAN));
            }
        }
    }
    Panel { title: title.to_string(), unit, groups, series }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn draw_panel(area: &Area<'_>, panel: &Panel) -> Result<(), Box<dyn std::error::Error>> {
    let n = panel.groups.len().max(1);
    let top = panel.series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.25 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)?;
    let no_label = |_: &f64| String::new();
    chart.configure_mesh().disable_x_mesh().x_labels(n + 1).x_label_formatter(&no_label).y_desc(panel.unit).draw()?;
    // Group names under the axis, centred on each group.
    let label_style = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    chart.draw_series(panel.groups.iter().enumerate().map(|(g, name)| {
        EmptyElement::at((g as f64 + 0.5, 0.0)) + Text::new(name.clone(), (0, 8), label_style.clone())
    }))?;
    let m = panel.series.len().max(1) as f64;
    let width = 0.8 / m;
    for (k, (label, values)) in panel.series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        chart
            .draw_series(values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(g, &v)| {
                let x0 = g as f64 + 0.1 + k as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.95, v)], color.filled())
            }))?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}
