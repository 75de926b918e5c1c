//! How figures are written for people: sizes, times and ratios.

/// "64 B", "1 KiB", "1 MiB".
pub fn size_name(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// "850 ns", "12.3 us".
pub fn time_name(ns: f64) -> String {
    if ns.is_nan() {
        "-".into()
    } else if ns < 1000.0 {
        format!("{ns:.0} ns")
    } else if ns < 100_000.0 {
        format!("{:.2} us", ns / 1000.0)
    } else {
        format!("{:.0} us", ns / 1000.0)
    }
}

/// "12.3x", "1.05x", "-" when not measured.
pub fn ratio_name(r: f64) -> String {
    if r.is_nan() {
        "-".into()
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

/// "12.34" (GB/s), "-" when not measured.
pub fn gb_per_s_name(rate: f64) -> String {
    if rate.is_nan() {
        "-".into()
    } else {
        format!("{rate:.2}")
    }
}
