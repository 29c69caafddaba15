//! Numbers for people: one spelling of each unit across every report.
//!
//! Tables carry units in their headers where a column has one unit (`ns/op`, `KiB/task`), and
//! use these scaled forms where a column mixes magnitudes.

/// What a table shows for a value that was not measured.
pub const MISSING: &str = "-";

/// `x` with `decimals` decimals; `-0.0` (a tiny negative rounded) shows as `0.0`.
pub fn fixed(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_owned(),
        _ => s,
    }
}

/// `Some(x)` as [`fixed`], `None` as [`MISSING`].
pub fn opt_fixed(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| MISSING.to_owned(), |x| fixed(x, decimals))
}

/// An integer with thousands separators: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A float rounded to an integer with thousands separators (negative values keep their sign).
pub fn thousands_f(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let r = x.round();
    let body = thousands(r.abs() as u64);
    if r < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

/// Bytes in IEC units, scaled: `512 B`, `12.3 KiB`, `4.0 MiB`, `1.5 GiB`, `2.0 TiB`.
pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b;
    let mut i = 0;
    while x.abs() >= 1024.0 && i + 1 < UNITS.len() {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{} B", fixed(x, 0))
    } else {
        format!("{} {}", fixed(x, 1), UNITS[i])
    }
}

/// A duration given in nanoseconds, scaled: `850 ns`, `1.23 µs`, `4.50 ms`, `1.20 s`.
pub fn nanos(ns: f64) -> String {
    let a = ns.abs();
    if a < 1e3 {
        format!("{} ns", fixed(ns, if a < 10.0 { 2 } else { 0 }))
    } else if a < 1e6 {
        format!("{} µs", fixed(ns / 1e3, 2))
    } else if a < 1e9 {
        format!("{} ms", fixed(ns / 1e6, 2))
    } else {
        format!("{} s", fixed(ns / 1e9, 2))
    }
}

/// A fraction as a percentage: `0.123` → `12.3%` (with `decimals` decimals).
pub fn percent(fraction: f64, decimals: usize) -> String {
    format!("{}%", fixed(fraction * 100.0, decimals))
}

/// US dollars with cents and thousands separators: `$1,234.56`, `-$3.10`.
pub fn dollars(x: f64) -> String {
    if !x.is_finite() {
        return format!("${x}");
    }
    let cents = (x.abs() * 100.0).round() as u64;
    let sign = if x < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}${}.{:02}", thousands(cents / 100), cents % 100)
}

/// A median with its spread: `12.3 ±4%` (the spread in percent, rounded).
pub fn with_spread(median: f64, decimals: usize, spread_percent: f64) -> String {
    format!("{} ±{:.0}%", fixed(median, decimals), spread_percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(fixed(-0.04, 1), "0.0");
        assert_eq!(fixed(-0.06, 1), "-0.1");
        assert_eq!(opt_fixed(None, 1), "-");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands_f(-1234.6), "-1,235");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(12.3 * 1024.0), "12.3 KiB");
        assert_eq!(bytes(1.5 * 1024.0 * 1024.0 * 1024.0), "1.5 GiB");
        assert_eq!(nanos(1.234), "1.23 ns");
        assert_eq!(nanos(850.0), "850 ns");
        assert_eq!(nanos(1234.0), "1.23 µs");
        assert_eq!(nanos(4.5e6), "4.50 ms");
        assert_eq!(nanos(1.2e9), "1.20 s");
        assert_eq!(percent(0.1234, 1), "12.3%");
        assert_eq!(dollars(1234.561), "$1,234.56");
        assert_eq!(dollars(-3.1), "-$3.10");
        assert_eq!(dollars(-0.001), "$0.00");
        assert_eq!(with_spread(12.34, 1, 4.4), "12.3 ±4%");
    }
}
