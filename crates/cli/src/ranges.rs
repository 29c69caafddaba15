//! The valid range of every numeric flag, checked at parse time.
//!
//! Each subcommand's flags name a parser from here (`value_parser = ranges::count(..)`), so a value
//! out of range is a usage error (exit 2) whose message states the range and why it is the range,
//! before anything runs. Limits that depend on the machine (file descriptors, memory, pids, map
//! count) cannot be known at parse time; the commands check those before they start, naming the
//! limit and its value.
//!
//! Every flag that takes a value (paths and free text aside) also takes `allow_hyphen_values`, so
//! that `-c -5` reaches the parser ("-5 is negative ...") instead of clap suggesting `-- -5`, which
//! would turn the number into a positional argument. Names from a fixed list (strategies,
//! patterns) go through [`one_of`], so an unknown one is a usage error too, listing the valid
//! ones. The unit tests in `main.rs` walk every subcommand's flags and hold all of this.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A usage error found after parsing (a combination of flags, or a flag against a file): `main`
/// exits with status 2 for it, as clap does for the errors it finds itself.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as an `anyhow::Error`, for `return Err(ranges::usage(..))`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// The longest run any measured duration may ask for.
pub const MAX_RUN: Duration = Duration::from_secs(24 * 3600);
/// The shortest measured run: shorter ones measure start-up, not a steady state.
pub const MIN_RUN: Duration = Duration::from_millis(100);
/// Why [`MIN_RUN`] and [`MAX_RUN`].
pub const RUN_WHY: &str =
    "a shorter run measures start-up, not a steady state; a longer one is a mistake";

/// Why [`MAX_CONNECTIONS`].
pub const CONNECTIONS_WHY: &str =
    "one file descriptor each (RLIMIT_NOFILE is checked before connecting)";
/// Why [`MAX_THREADS`].
pub const THREADS_WHY: &str = "at least one thread must run; more than 1024 only adds contention";
/// Why [`MAX_RATE`].
pub const RATE_WHY: &str = "requests per second; leave --rate out for a closed-loop run";
/// Why [`MAX_WORK_US`].
pub const WORK_WHY: &str =
    "microseconds of CPU per request; above a second a request is a batch job";
/// Why [`MAX_RESPONSE_BYTES`].
pub const RESPONSE_WHY: &str = "a response body held in memory per request";
/// Why the `--max-error-rate` range.
pub const ERROR_RATE_WHY: &str =
    "the share of failed requests a run may have and pass; 100% accepts any run with a success";
/// The longest warm-up.
pub const MAX_WARMUP: Duration = Duration::from_secs(3600);
/// Why `0..=`[`MAX_WARMUP`].
pub const WARMUP_WHY: &str = "0s skips the warm-up";
/// The shortest timeout or deadline.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// The longest timeout or deadline.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Why [`MIN_TIMEOUT`] and [`MAX_TIMEOUT`].
pub const TIMEOUT_WHY: &str = "0s would fail every request at once";

/// The largest process id (Linux's `PID_MAX_LIMIT` is 4,194,304; ids are below it).
pub const MAX_PID: u64 = 4_194_303;
/// Why `1..=`[`MAX_PID`].
pub const PID_WHY: &str = "a process id; 0 is no process, Linux's PID_MAX_LIMIT is 4,194,304";

/// Most connections a load generator may open (each is a file descriptor; the descriptor limit
/// itself is checked before connecting).
pub const MAX_CONNECTIONS: u64 = 1_000_000;
/// Most threads of a server or load generator.
pub const MAX_THREADS: u64 = 1024;
/// Most requests per second a constant-rate run may ask for.
pub const MAX_RATE: f64 = 10_000_000.0;
/// Most CPU time burned per request, microseconds.
pub const MAX_WORK_US: u64 = 1_000_000;
/// Largest response body, bytes.
pub const MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// Most extra deferred calls per request (`frugal serve --extra-defers`).
pub const MAX_EXTRA_DEFERS: u64 = 1000;
/// Why [`MAX_EXTRA_DEFERS`].
pub const EXTRA_DEFERS_WHY: &str =
    "deferred calls per request; the article's case is 10, a thousand is already a loop gone wrong";

/// A whole number in `min..=max`. `why` says why the range is what it is.
pub fn count<T>(
    min: u64,
    max: u64,
    why: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64>,
{
    move |s: &str| {
        let range = || format!("must be {} ({why})", between(min, max));
        let s = s.trim();
        let v: i128 = s
            .replace('_', "")
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number; it {}", range()))?;
        if v < 0 {
            return Err(format!("{v} is negative; it {}", range()));
        }
        if v < i128::from(min) || v > i128::from(max) {
            return Err(format!("{v} is out of range; it {}", range()));
        }
        let v = v as u64; // in min..=max: fits
        T::try_from(v).map_err(|_| format!("{v} is too large here; it {}", range()))
    }
}

fn between(min: u64, max: u64) -> String {
    if min == max {
        format!("exactly {min}")
    } else {
        format!("between {} and {}", group(min), group(max))
    }
}

/// `1000000` → `1,000,000`.
fn group(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration (`10s`, `500ms`, `2m`; see humantime) in `min..=max`.
pub fn duration(
    min: Duration,
    max: Duration,
    why: &'static str,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        let range = || {
            if min.is_zero() {
                format!("must be at most {} ({why})", show(max))
            } else {
                format!("must be between {} and {} ({why})", show(min), show(max))
            }
        };
        let s = s.trim();
        if s.starts_with('-') {
            return Err(format!("`{s}` is negative; a duration {}", range()));
        }
        let d = humantime::parse_duration(s).map_err(|e| {
            format!(
                "`{s}` is not a duration ({e}); write e.g. 500ms, 10s or 2m; it {}",
                range()
            )
        })?;
        if d < min || d > max {
            // As written: `99999999999d`, not "273785078years 8months ...".
            return Err(format!("`{s}` is out of range; it {}", range()));
        }
        Ok(d)
    }
}

/// A finite real number above `min` (or at `min` when `min_inclusive`) and at most `max`.
pub fn real(
    min: f64,
    min_inclusive: bool,
    max: f64,
    why: &'static str,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let range = || {
            let low = if min_inclusive { "at least" } else { "above" };
            let num = |v: f64| {
                if v >= 0.0 && v.fract() == 0.0 && v < 1e15 {
                    group(v as u64)
                } else {
                    v.to_string()
                }
            };
            format!(
                "must be {low} {} and at most {} ({why})",
                num(min),
                num(max)
            )
        };
        let s = s.trim();
        let v: f64 = s
            .parse()
            .map_err(|_| format!("`{s}` is not a number; it {}", range()))?;
        if !v.is_finite() {
            return Err(format!("`{s}` is not a finite number; it {}", range()));
        }
        let low_ok = if min_inclusive { v >= min } else { v > min };
        if !low_ok || v > max {
            return Err(format!("{} is out of range; it {}", short(v), range()));
        }
        Ok(v)
    }
}

/// A real number as written back in a message: `1e300`, not three hundred digits.
fn short(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e15 || v.abs() < 1e-6) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// A percentage from 0 to 100, with or without a trailing `%`, as a fraction (0.0 to 1.0).
pub fn percent(
    why: &'static str,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let range = || format!("must be between 0 and 100, e.g. 1% ({why})");
        let s = s.trim();
        let number = s.strip_suffix('%').unwrap_or(s).trim();
        let v: f64 = number
            .parse()
            .map_err(|_| format!("`{s}` is not a percentage; it {}", range()))?;
        if !v.is_finite() {
            return Err(format!("`{s}` is not a finite number; it {}", range()));
        }
        if v < 0.0 {
            return Err(format!("{}% is negative; it {}", short(v), range()));
        }
        if v > 100.0 {
            return Err(format!("{}% is out of range; it {}", short(v), range()));
        }
        Ok(v / 100.0)
    }
}

/// One name of a fixed list (a strategy, a scenario, a pattern): a usage error naming every
/// valid one otherwise. `--help` and the shell completions list them too.
#[derive(Clone)]
pub struct OneOf<T: Clone + Send + Sync + 'static> {
    what: &'static str,
    names: Vec<&'static str>,
    parse: fn(&str) -> Option<T>,
}

/// [`OneOf`]: `what` names the kind of thing (`"strategy"`), `names` the valid ones, `parse`
/// turns a valid name into its value.
pub fn one_of<T: Clone + Send + Sync + 'static>(
    what: &'static str,
    names: impl IntoIterator<Item = &'static str>,
    parse: fn(&str) -> Option<T>,
) -> OneOf<T> {
    OneOf {
        what,
        names: names.into_iter().collect(),
        parse,
    }
}

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for OneOf<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        // Through a closure parser, so the message reads as every other range's:
        // "invalid value 'X' for '--flag <V>': ...".
        let (what, names, parse) = (self.what, self.names.join(", "), self.parse);
        let check = move |s: &str| -> Result<T, String> {
            parse(s.trim())
                .ok_or_else(|| format!("`{s}` is not a {what}; it must be one of: {names}"))
        };
        clap::builder::TypedValueParser::parse_ref(&check, cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            self.names
                .iter()
                .map(|n| clap::builder::PossibleValue::new(*n)),
        ))
    }
}

/// A size in bytes (`4096`, `64K`, `64M`, `1G`: KiB, MiB, GiB) in `min..=max`.
pub fn size(
    min: u64,
    max: u64,
    why: &'static str,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let range = || format!("must be between {} and {} ({why})", bytes(min), bytes(max));
        let s = s.trim();
        let (num, shift) = match s.char_indices().last() {
            Some((i, 'k' | 'K')) => (&s[..i], 10),
            Some((i, 'm' | 'M')) => (&s[..i], 20),
            Some((i, 'g' | 'G')) => (&s[..i], 30),
            Some((i, 't' | 'T')) => (&s[..i], 40),
            _ => (s, 0),
        };
        if num.starts_with('-') {
            return Err(format!("`{s}` is negative; a size {}", range()));
        }
        let n: u64 = num.parse().map_err(|_| {
            if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
                // Digits, but more than 64 bits of them.
                format!("`{s}` is too large; it {}", range())
            } else {
                format!("`{s}` is not a size (e.g. 4096, 64M or 1G); it {}", range())
            }
        })?;
        let v = n
            .checked_mul(1 << shift)
            .ok_or_else(|| format!("`{s}` is too large; it {}", range()))?;
        if v < min || v > max {
            return Err(format!("{} is out of range; it {}", bytes(v), range()));
        }
        Ok(v)
    }
}

/// `4096` → `4 KiB`, `1073741824` → `1 GiB`, `1000` → `1000 B`.
pub fn bytes(v: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if v >= 1 << shift && v % (1 << shift) == 0 {
            return format!("{} {unit}", v >> shift);
        }
    }
    format!("{v} B")
}

/// A path to write a report to: not an existing directory, and its directory must exist.
pub fn output_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if s.is_empty() {
        return Err("the output file name is empty".to_owned());
    }
    if path.is_dir() {
        return Err(format!("{s} is a directory; name a file to write"));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent {
        if !dir.is_dir() {
            return Err(format!(
                "directory {} does not exist; create it or name another file",
                dir.display()
            ));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_state_the_range() {
        let p = count::<u64>(1, 1000, "why");
        assert_eq!(p("7"), Ok(7));
        assert_eq!(p("1_000"), Ok(1000));
        let e = p("0").unwrap_err();
        assert!(e.contains("between 1 and 1,000 (why)"), "{e}");
        assert!(p("-5").unwrap_err().starts_with("-5 is negative"));
        assert!(p("NaN").unwrap_err().contains("not a whole number"));
        assert!(p("99999999999999999999999999")
            .unwrap_err()
            .contains("out of range"));
        assert!(p(&"9".repeat(50)).is_err());
        assert!(p("1001").is_err());
        let small = count::<u8>(0, 1000, "why");
        assert!(small("300").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations_refuse_zero_and_negative() {
        let p = duration(MIN_RUN, MAX_RUN, RUN_WHY);
        assert_eq!(p("2s"), Ok(Duration::from_secs(2)));
        assert!(p("0s").unwrap_err().contains("between 100ms and 1day"));
        assert!(p("-1s").unwrap_err().contains("negative"));
        assert!(p("5").unwrap_err().contains("not a duration"));
        assert!(p("1000d").unwrap_err().contains("out of range"));
        let z = duration(Duration::ZERO, MAX_RUN, "why");
        assert_eq!(z("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn reals_refuse_nan_and_bounds() {
        let p = real(0.0, false, 100.0, "why");
        assert_eq!(p("99.5"), Ok(99.5));
        assert!(p("0").is_err());
        assert!(p("NaN").unwrap_err().contains("not a finite"));
        assert!(p("inf").unwrap_err().contains("not a finite"));
        assert!(p("100.1").is_err());
        assert!(real(0.0, true, 1.0, "why")("0").is_ok());
    }

    #[test]
    fn sizes_parse() {
        let p = size(512, 1 << 40, "why");
        assert_eq!(p("4096"), Ok(4096));
        assert_eq!(p("64M"), Ok(64 << 20));
        assert_eq!(p("1G"), Ok(1 << 30));
        assert!(p("x").is_err());
        assert!(p("0").unwrap_err().contains("between 512 B and 1 TiB"));
        assert!(p("-1G").unwrap_err().contains("negative"));
        assert!(p("99999999999G").unwrap_err().contains("too large"));
    }

    proptest::proptest! {
        /// Whatever the text, the parsers answer (never panic), and what they accept is in range.
        #[test]
        fn parsers_never_panic_and_accept_only_the_range(s in "\\PC{0,24}|-?[0-9]{1,25}(\\.[0-9]{0,3})?[a-zA-Z]{0,4}") {
            if let Ok(v) = count::<u32>(1, 4096, "why")(&s) {
                proptest::prop_assert!((1..=4096).contains(&v));
            }
            if let Ok(d) = duration(MIN_RUN, MAX_RUN, RUN_WHY)(&s) {
                proptest::prop_assert!(d >= MIN_RUN && d <= MAX_RUN);
            }
            if let Ok(v) = real(0.0, false, 100.0, "why")(&s) {
                proptest::prop_assert!(v > 0.0 && v <= 100.0);
            }
            if let Ok(v) = size(512, 1 << 40, "why")(&s) {
                proptest::prop_assert!((512..=1 << 40).contains(&v));
            }
            let _ = output_file(&s);
        }
    }

    #[test]
    fn output_files_are_not_directories() {
        assert!(output_file("/tmp").unwrap_err().contains("is a directory"));
        assert!(output_file("/nonexistent-dir/x.json")
            .unwrap_err()
            .contains("does not exist"));
        assert!(output_file("report.json").is_ok());
    }
}
