//! Formatting durations and numbers for people.
//!
//! One place decides how many decimals a number gets and drops the zeros
//! that say nothing, so the same value reads the same in a diagnostic, a
//! report, a summary key and a metrics label. A leaf: it uses nothing else
//! in the crate, so every module may use it.

use std::time::Duration;

/// `x` rounded to at most `decimals` decimals, without trailing zeros or a
/// trailing point: `trim_float(0.950, 3)` is `0.95`, `trim_float(2.0, 3)`
/// is `2`. Rounding first is what keeps binary noise out:
/// `trim_float(99.9 / 100.0, 6)` is `0.999`, not `0.9990000000000001`.
pub fn trim_float(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Three significant figures at most, without trailing zeros: how reports
/// show a measured number to a person (`1235`, `12.3`, `0.13`).
pub fn short(v: f64) -> String {
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    trim_float(v, decimals)
}

/// A duration as a person would write it in a scenario: seconds from one
/// second up (`1.5s`), milliseconds below (`250ms`), to the millisecond
/// or microsecond.
pub fn fmt_duration(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{}s", trim_float(d.as_secs_f64(), 3))
    } else {
        format!("{}ms", trim_float(d.as_secs_f64() * 1000.0, 3))
    }
}

/// `56284` as `56,284`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_zeros_and_binary_noise() {
        assert_eq!(trim_float(2.0, 3), "2");
        assert_eq!(trim_float(0.950, 3), "0.95");
        assert_eq!(trim_float(100.0, 0), "100");
        assert_eq!(trim_float(99.9 / 100.0, 6), "0.999");
        assert_eq!(trim_float(95.0 / 100.0, 6), "0.95");
        assert_eq!(trim_float(99.99, 6), "99.99");
    }

    #[test]
    fn short_keeps_three_significant_figures() {
        assert_eq!(short(1234.56), "1235");
        assert_eq!(short(1200.0), "1200");
        assert_eq!(short(12.345), "12.3");
        assert_eq!(short(10.0), "10");
        assert_eq!(short(0.126), "0.13");
        assert_eq!(short(0.0), "0");
    }

    #[test]
    fn durations_read_in_seconds_or_milliseconds() {
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "90s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_micros(1500)), "1.5ms");
    }
}
