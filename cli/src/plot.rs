//! The bench plot: an SVG with two charts, round-trip latency (p50 bars with
//! p99 whiskers) and throughput, one bar per transport, grouped by placement
//! and message size, on log scales (shmsock and a Unix socket differ by
//! orders of magnitude, which a linear scale shows as an invisible sliver),
//! each bar labelled with its value. A subtitle says what kind of run it was
//! and whether the machine was busy, since both make the figures rougher.
//!
//! plotters draws it with its SVG backend only (no bitmap backend, no font
//! files: the viewer renders the text), which keeps the command a small build.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use shmsock_bench::units::size_name;
use shmsock_bench::{FloorKind, Report, TransportReport};

use crate::error::{code, CliError};

/// One bar: its value and, for latency, the p99 the whisker reaches.
#[derive(Clone, Copy)]
struct Bar {
    value: f64,
    whisker: Option<f64>,
}

/// One chart: groups along x, one bar per series in each group.
struct Panel {
    title: String,
    unit: &'static str,
    /// How a value is written on its bar.
    label: fn(f64) -> String,
    groups: Vec<String>,
    /// (label, one bar per group; None: not measured).
    series: Vec<(String, Vec<Option<Bar>>)>,
}

const COLORS: [RGBColor; 7] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x17, 0xbe, 0xcf),
];

const WIDTH: u32 = 1400;
const PANEL_HEIGHT: u32 = 470;
/// Title, subtitle and the legend shared by both charts.
const HEADER: u32 = 96;

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
    let root = SVGBackend::new(path, (WIDTH, HEADER + 2 * PANEL_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (header, charts) = root.split_vertically(HEADER);
    let centre = Pos::new(HPos::Center, VPos::Top);
    let title = format!("shmsock {} vs Unix sockets ({})", report.shmsock_version, report.cpu_model);
    header
        .draw_text(&title, &TextStyle::from(("sans-serif", 22).into_font()).pos(centre), (WIDTH as i32 / 2, 8))
        .map_err(|e| e.to_string())?;
    let subtitle_style = TextStyle::from(("sans-serif", 15).into_font()).pos(centre).color(&RGBColor(0x55, 0x55, 0x55));
    header.draw_text(&subtitle(report), &subtitle_style, (WIDTH as i32 / 2, 38)).map_err(|e| e.to_string())?;
    let latency = latency_panel(report);
    // The latency chart has every series of the throughput chart (in the same
    // order, hence colours), and the floor.
    let labels: Vec<&str> = latency.series.iter().map(|(l, _)| l.as_str()).collect();
    draw_legend(&header, &labels, 70).map_err(|e| e.to_string())?;
    let (top, bottom) = charts.split_vertically(PANEL_HEIGHT);
    draw_panel(&top, &latency).map_err(|e| e.to_string())?;
    draw_panel(&bottom, &throughput_panel(report)).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// One row of colour swatches and series names, centred, at height `y`.
fn draw_legend(area: &Area<'_>, labels: &[&str], y: i32) -> Result<(), Box<dyn std::error::Error>> {
    let font = ("sans-serif", 14).into_font();
    let style = TextStyle::from(font).pos(Pos::new(HPos::Left, VPos::Center));
    const SWATCH: i32 = 14;
    const GAP: i32 = 28;
    let widths: Vec<i32> = labels
        .iter()
        .map(|l| area.estimate_text_size(l, &style).map(|(w, _)| w as i32 + SWATCH + 6))
        .collect::<Result<_, _>>()?;
    let total: i32 = widths.iter().sum::<i32>() + GAP * (labels.len() as i32 - 1).max(0);
    let mut x = (WIDTH as i32 - total).max(0) / 2;
    for (k, (label, w)) in labels.iter().zip(&widths).enumerate() {
        let color = COLORS[k % COLORS.len()];
        area.draw(&Rectangle::new([(x, y - SWATCH / 2), (x + SWATCH, y + SWATCH / 2)], color.filled()))?;
        area.draw_text(label, &style, (x + SWATCH + 6, y))?;
        x += w + GAP;
    }
    Ok(())
}

/// What kind of run this was, and whether the machine was busy.
fn subtitle(report: &Report) -> String {
    let c = &report.config;
    let mut s = format!(
        "{} run: median of {} run{} ({} ms latency, {} ms throughput runs)",
        c.preset,
        c.runs,
        if c.runs == 1 { "" } else { "s" },
        c.latency_run.as_millis(),
        c.throughput_run.as_millis()
    );
    if c.preset != "full" {
        s.push_str(", rough figures");
    }
    if report.busy() {
        s.push_str(&format!(
            "; machine busy (load {:.1} on {} CPUs): noisy figures",
            report.load_average.iter().copied().fold(f64::NAN, f64::max),
            report.cpus_available
        ));
    }
    s.push_str("; log scales, whiskers: p99");
    s
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

fn microseconds(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn gigabytes(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.2}")
    }
}

fn latency_panel(report: &Report) -> Panel {
    let mut panel = panel(report, &report.config.latency_sizes, |t, size| {
        t.latency_of(size).map(|l| Bar { value: l.p50_ns / 1000.0, whisker: Some(l.p99_ns / 1000.0) })
    });
    // The floor of the default cipher: what a round trip cannot beat.
    let cipher = report.default_cipher;
    let mut floor = Vec::new();
    for p in &report.placements {
        for &size in &report.config.latency_sizes {
            let f = p.floor_of(cipher, FloorKind::Line).filter(|f| f.latency.size == size);
            floor.push(f.map(|f| Bar { value: f.latency.p50_ns / 1000.0, whisker: Some(f.latency.p99_ns / 1000.0) }));
        }
    }
    if floor.iter().any(Option::is_some) {
        panel.series.push((format!("floor ({}, one cache line)", cipher.name()), floor));
    }
    Panel { title: "round trip, p50 (lower is better)".into(), unit: "µs", label: microseconds, ..panel }
}

fn throughput_panel(report: &Report) -> Panel {
    let panel = panel(report, &report.config.throughput_sizes, |t, size| {
        t.throughput_of(size).map(|x| Bar { value: x.gb_per_s, whisker: None })
    });
    Panel { title: "one-way throughput (higher is better)".into(), unit: "GB/s", label: gigabytes, ..panel }
}

/// The groups (placement × size) and one series per transport.
fn panel(report: &Report, sizes: &[usize], bar: impl Fn(&TransportReport, usize) -> Option<Bar>) -> Panel {
    let mut groups = Vec::new();
    let mut series: Vec<(String, Vec<Option<Bar>>)> =
        transport_labels(report).into_iter().map(|l| (l, Vec::new())).collect();
    for p in &report.placements {
        for &size in sizes {
            groups.push(format!("{}, {}", p.name, size_name(size)));
            for (label, bars) in &mut series {
                bars.push(p.transports.iter().find(|t| &t.label == label).and_then(|t| bar(t, size)));
            }
        }
    }
    Panel { title: String::new(), unit: "", label: microseconds, groups, series }
}

/// The decade at or below `v`, and the decade at or above it.
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil()))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn draw_panel(area: &Area<'_>, panel: &Panel) -> Result<(), Box<dyn std::error::Error>> {
    let n = panel.groups.len().max(1);
    let values = panel
        .series
        .iter()
        .flat_map(|(_, bars)| bars.iter().flatten())
        .flat_map(|b| [Some(b.value), b.whisker])
        .flatten()
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // A decade below the least value, so every bar has a readable height, and
    // room above the greatest for a whisker's cap.
    let (lo, hi) = if hi > 0.0 { decades(lo / 10.0, hi * 1.2) } else { (0.1, 10.0) };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, (lo..hi).log_scale())?;
    let no_label = |_: &f64| String::new();
    let y_label = |v: &f64| format!("{v}");
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&no_label)
        .y_label_formatter(&y_label)
        .y_desc(panel.unit)
        .draw()?;
    // Group names under the axis, centred on each group.
    let group_style = TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    chart.draw_series(panel.groups.iter().enumerate().map(|(g, name)| {
        EmptyElement::at((g as f64 + 0.5, lo)) + Text::new(name.clone(), (0, 8), group_style.clone())
    }))?;
    let m = panel.series.len().max(1) as f64;
    let width = 0.8 / m;
    let value_style =
        TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Top)).color(&WHITE);
    for (k, (_, bars)) in panel.series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let placed: Vec<(f64, Bar)> = bars
            .iter()
            .enumerate()
            .filter_map(|(g, b)| b.filter(|b| b.value.is_finite() && b.value > 0.0).map(|b| (g, b)))
            .map(|(g, b)| (g as f64 + 0.1 + k as f64 * width, b))
            .collect();
        chart.draw_series(
            placed.iter().map(|&(x0, b)| Rectangle::new([(x0, lo), (x0 + width * 0.9, b.value)], color.filled())),
        )?;
        // p99 whiskers: a line from the bar's top to p99, with a cap.
        for &(x0, b) in &placed {
            let Some(p99) = b.whisker.filter(|w| w.is_finite() && *w > b.value) else { continue };
            let mid = x0 + width * 0.45;
            let cap = width * 0.2;
            chart.draw_series([
                PathElement::new(vec![(mid, b.value), (mid, p99)], BLACK.stroke_width(1)),
                PathElement::new(vec![(mid - cap, p99), (mid + cap, p99)], BLACK.stroke_width(1)),
            ])?;
        }
        // The value inside the top of each bar, clear of the whisker above it.
        chart.draw_series(placed.iter().map(|&(x0, b)| {
            EmptyElement::at((x0 + width * 0.45, b.value))
                + Text::new((panel.label)(b.value), (0, 3), value_style.clone())
        }))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_enclose_the_values() {
        assert_eq!(decades(0.056, 320.0), (0.01, 1000.0));
        assert_eq!(decades(1.0, 10.0), (1.0, 10.0));
    }

    #[test]
    fn values_are_written_with_few_digits() {
        assert_eq!(microseconds(0.564), "0.56");
        assert_eq!(microseconds(32.04), "32.0");
        assert_eq!(microseconds(1234.5), "1234");
        assert_eq!(gigabytes(0.1234), "0.123");
        assert_eq!(gigabytes(12.345), "12.35");
    }
}
