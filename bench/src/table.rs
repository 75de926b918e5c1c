//! The report as text for a terminal of 100 columns: per placement the figures
//! and shmsock's ratios against each baseline, then heap allocations, stalls
//! and notes. Tables are laid out by comfy-table; the goals stay in the JSON
//! report (the ratios they are judged on are in the tables).

use std::fmt::Write as _;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use shmsock::CipherSuite;

use crate::floor::FloorKind;
use crate::measure::STALL;
use crate::ratios::{round_trip_metric, throughput_metric};
use crate::report::{PlacementReport, Report};
use crate::units::{gb_per_s_name, ratio_name, size_name, time_name};

/// The widest line the text may have.
pub const WIDTH: usize = 100;

/// No borders; a dashed line under the header.
const STYLE: &str = "     -             ";

/// A table with this module's style: the first `left` columns (names)
/// left-aligned, the others (figures) right-aligned.
fn table(left: usize, header: Vec<String>) -> Table {
    let mut t = Table::new();
    t.load_preset(STYLE).set_content_arrangement(ContentArrangement::Dynamic).set_width(WIDTH as u16);
    let columns = header.len();
    t.set_header(header);
    for c in left..columns {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Appends `t`, without trailing blanks.
fn push_table(o: &mut String, t: &Table) {
    for line in t.lines() {
        let _ = writeln!(o, "{}", line.trim_end());
    }
}

/// Appends a blank line, `heading` and `t`, unless `t` has no rows.
fn push_section(o: &mut String, heading: &str, t: &Table) {
    if t.row_count() > 0 {
        let _ = writeln!(o);
        push_wrapped(o, heading, "   ");
        push_table(o, t);
    }
}

/// Appends `text` wrapped at [`WIDTH`], continuation lines indented by `indent`.
fn push_wrapped(o: &mut String, text: &str, indent: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > WIDTH {
            let _ = writeln!(o, "{line}");
            line = indent.to_string();
        }
        if !line.is_empty() && line != indent {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(o, "{line}");
    }
}

/// The whole report as text.
pub fn format_report(report: &Report) -> String {
    let mut o = String::new();
    let c = &report.config;
    push_wrapped(
        &mut o,
        &format!(
            "shmsock {} bench, {} run: {}, {} CPUs, AES instructions: {} (default cipher {})",
            report.shmsock_version,
            c.preset,
            report.cpu_model,
            report.cpus_available,
            if report.aes_hardware { "yes" } else { "no" },
            report.default_cipher.name()
        ),
        "  ",
    );
    push_wrapped(
        &mut o,
        &format!(
            "two processes; each figure is the median of {} interleaved runs (latency runs {} ms, throughput runs \
             {} ms); load average {:.2} at the start, {:.2} at the end{}",
            c.runs,
            c.latency_run.as_millis(),
            c.throughput_run.as_millis(),
            report.load_average[0],
            report.load_average[1],
            if report.busy() { " (busy: see the note)" } else { "" }
        ),
        "  ",
    );
    let _ = writeln!(o, "rtt = ping-pong round trip; GB/s = one-way, acknowledged, 10^9 B/s; x = times better than");
    for p in &report.placements {
        let _ = writeln!(o);
        let hog = if p.placement.hog {
            format!(", a busy-looping hog on CPU {}", p.placement.parent_cpu)
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "== {} (measuring process on CPU {}, peer on CPU {}{hog})",
            p.name, p.placement.parent_cpu, p.placement.peer_cpu
        );
        push_table(&mut o, &figures(p));
        let _ = writeln!(o);
        push_table(&mut o, &ratios(report, p));
    }
    allocations(&mut o, report);
    stalls(&mut o, report);
    for n in &report.notes {
        push_wrapped(&mut o, &format!("note: {n}"), "  ");
    }
    o
}

/// Column headers of the metrics of `p`: "64 B rtt p50", ..., "1 MiB GB/s".
fn metric_headers(p: &PlacementReport) -> Vec<String> {
    let mut h = Vec::new();
    for s in p.latency_sizes() {
        h.push(format!("{} rtt\np50", size_name(s)));
        h.push(format!("{} rtt\np99", size_name(s)));
    }
    for s in p.throughput_sizes() {
        h.push(format!("{}\nGB/s", size_name(s)));
    }
    h
}

/// The measured figures of every transport and floor in one placement.
fn figures(p: &PlacementReport) -> Table {
    let mut header = vec!["transport".to_string()];
    header.extend(metric_headers(p));
    let mut t = table(1, header);
    for tr in &p.transports {
        let mut row = vec![Cell::new(&tr.label)];
        for l in &tr.latency {
            row.push(Cell::new(time_name(l.p50_ns)));
            row.push(Cell::new(time_name(l.p99_ns)));
        }
        for x in &tr.throughput {
            row.push(Cell::new(gb_per_s_name(x.gb_per_s)));
        }
        t.add_row(row);
    }
    for f in &p.floors {
        let what = match f.kind {
            FloorKind::Line => "floor",
            FloorKind::Frame => "floor + frame",
        };
        let mut row = vec![Cell::new(format!("{what}, {} ({})", f.cipher.name(), f.wait))];
        for s in p.latency_sizes() {
            let (p50, p99) = if s == f.latency.size {
                (time_name(f.latency.p50_ns), time_name(f.latency.p99_ns))
            } else {
                ("".into(), "".into())
            };
            row.push(Cell::new(p50));
            row.push(Cell::new(p99));
        }
        t.add_row(row);
    }
    // Seal rates are grouped by cipher (one per streaming size).
    let mut suites: Vec<CipherSuite> = p.seal_rates.iter().map(|r| r.cipher).collect();
    suites.dedup();
    for cipher in suites {
        let mut row = vec![Cell::new(format!("one core's raw seal, {}", cipher.name()))];
        row.extend(p.latency_sizes().iter().flat_map(|_| [Cell::new(""), Cell::new("")]));
        for s in p.throughput_sizes() {
            row.push(Cell::new(p.seal_rate_of(cipher, s).map(|r| gb_per_s_name(r.gb_per_s)).unwrap_or_default()));
        }
        t.add_row(row);
    }
    t
}

/// A short name of a baseline id (see [`crate::Ratio::baseline`]).
fn baseline_name(id: &str) -> &'static str {
    if id == "unix-plain" {
        "unix plaintext"
    } else if id.starts_with("unix-") {
        "unix + same AEAD"
    } else if id.starts_with("floor+frame-") {
        "floor + frame"
    } else if id.starts_with("seal-") {
        "one core's seal"
    } else {
        "floor"
    }
}

/// shmsock against each baseline in one placement, one row per pair, one
/// column per metric (floors: 64 B p50 only).
fn ratios(report: &Report, p: &PlacementReport) -> Table {
    let mut header = vec!["shmsock: x better than".to_string()];
    header.extend(metric_headers(p));
    let metrics: Vec<String> = p
        .latency_sizes()
        .iter()
        .flat_map(|&s| ["p50", "p99"].map(|q| round_trip_metric(s, q)))
        .chain(p.throughput_sizes().into_iter().map(throughput_metric))
        .collect();
    let mut t = table(1, header);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for r in report.ratios.iter().filter(|r| r.placement == p.name) {
        if !pairs.contains(&(r.transport.as_str(), r.baseline.as_str())) {
            pairs.push((&r.transport, &r.baseline));
        }
    }
    for (transport, baseline) in pairs {
        let cipher = transport.strip_prefix("shm-").unwrap_or(transport);
        let mut row = vec![Cell::new(format!("{cipher} vs {}", baseline_name(baseline)))];
        for m in &metrics {
            let r = report.ratios.iter().find(|r| {
                r.placement == p.name && r.transport == transport && r.baseline == baseline && &r.metric == m
            });
            row.push(Cell::new(r.map(|r| ratio_name(r.ratio)).unwrap_or_default()));
        }
        t.add_row(row);
    }
    t
}

/// Heap allocations of the measuring side while timed (DESIGN: none in steady state).
fn allocations(o: &mut String, report: &Report) {
    let mut t = table(
        2,
        vec![
            "placement".into(),
            "transport".into(),
            "allocations /\ntimed round trips".into(),
            "allocations /\nstreamed messages".into(),
        ],
    );
    for p in &report.placements {
        for tr in &p.transports {
            let lat_allocs: Option<u64> = tr.latency.iter().flat_map(|l| &l.runs).map(|r| r.allocations).sum();
            let lat_msgs: usize = tr.latency.iter().flat_map(|l| &l.runs).map(|r| r.samples).sum();
            let thr_allocs: Option<u64> = tr.throughput.iter().flat_map(|l| &l.runs).map(|r| r.allocations).sum();
            let thr_msgs: u64 = tr.throughput.iter().flat_map(|l| &l.runs).map(|r| r.messages).sum();
            if let (Some(la), Some(ta)) = (lat_allocs, thr_allocs) {
                t.add_row(vec![
                    p.name.to_string(),
                    tr.label.clone(),
                    format!("{la} / {lat_msgs}"),
                    format!("{ta} / {thr_msgs}"),
                ]);
            }
        }
    }
    push_section(o, "== heap allocations by the measuring process while timed (goal: none in steady state)", &t);
}

/// Throughput runs in which single operations stalled.
fn stalls(o: &mut String, report: &Report) {
    let mut t = table(
        2,
        vec![
            "placement".into(),
            "transport".into(),
            "size".into(),
            "stalled\nruns".into(),
            "stalls".into(),
            "worst\nms".into(),
            "GB/s of the\nother runs".into(),
        ],
    );
    for p in &report.placements {
        for tr in &p.transports {
            for x in tr.throughput.iter().filter(|x| x.stalls > 0) {
                let worst = x.runs.iter().map(|r| r.max_op_us).fold(0.0, f64::max);
                t.add_row(vec![
                    p.name.to_string(),
                    tr.label.clone(),
                    size_name(x.size),
                    format!("{} of {}", x.stalled_runs(), x.runs.len()),
                    x.stalls.to_string(),
                    format!("{:.0}", worst / 1000.0),
                    gb_per_s_name(x.gb_per_s_without_stalls()),
                ]);
            }
        }
    }
    let heading = format!(
        "== stalls: single operations slower than {} ms (scheduling delays under load; ~{} ms = a call that only \
         returned at its timeout: a lost wake-up)",
        STALL.as_millis(),
        report.config.shm_timeout.as_millis()
    );
    push_section(o, &heading, &t);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_lines_within_the_width() {
        let mut o = String::new();
        let text = "word ".repeat(100);
        push_wrapped(&mut o, &text, "  ");
        assert!(o.lines().count() > 3);
        assert!(o.lines().all(|l| l.chars().count() <= WIDTH), "{o}");
        assert!(o.lines().skip(1).all(|l| l.starts_with("  word")), "{o}");
    }

    #[test]
    fn baselines_have_short_names() {
        assert_eq!(baseline_name("unix-plain"), "unix plaintext");
        assert_eq!(baseline_name("unix-aegis-128l"), "unix + same AEAD");
        assert_eq!(baseline_name("floor-aegis-128l"), "floor");
        assert_eq!(baseline_name("floor+frame-aegis-128l"), "floor + frame");
        assert_eq!(baseline_name("seal-aegis-128l"), "one core's seal");
    }
}
