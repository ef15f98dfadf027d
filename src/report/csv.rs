//! Locust-compatible CSV: `_stats.csv` (one row per step plus
//! `Aggregated`), `_stats_history.csv` (one `Aggregated` row per second of
//! the series) and `_failures.csv`, with exactly Locust's headers (the
//! same columns, in the same order, and no others), so tools that read
//! Locust's `--csv` output read these too. What Locust's files have no
//! column for (when a failure was first and last seen, service time…) is
//! in `summary.json` and `report.html`.
//!
//! Where the values differ from Locust's, on purpose:
//! - response times are milliseconds with three decimals (the histograms'
//!   microsecond resolution) instead of Locust's rounded whole
//!   milliseconds; rates and sizes have two decimals;
//! - records end in `\n`, not Python's `\r\n`;
//! - the history is written once, from the summary's series, instead of
//!   being appended while the run goes.
//!
//! As in Locust, a percentile with no request behind it is `N/A`, and the
//! other response-time columns are then 0.

use std::io::Write;

use crate::metrics::summary::{Latency, RunSummary, StepStats};

pub const STATS_HEADER: [&str; 22] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
];

pub const HISTORY_HEADER: [&str; 24] = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];

pub const FAILURES_HEADER: [&str; 4] = ["Method", "Name", "Error", "Occurrences"];

/// The summary's latency keys behind the `50%` … `100%` columns, in order.
const PERCENTILE_KEYS: [&str; 11] = [
    "p50", "p66", "p75", "p80", "p90", "p95", "p98", "p99", "p99.9", "p99.99", "max",
];

/// The name Locust gives the row of all requests.
const AGGREGATED: &str = "Aggregated";

/// `_stats.csv`: one row per step, in scenario order, then `Aggregated`.
pub fn write_stats(summary: &RunSummary, out: &mut dyn Write) -> std::io::Result<()> {
    let mut csv = ::csv::Writer::from_writer(out);
    csv.write_record(STATS_HEADER)?;
    let elapsed = summary.run.elapsed_s;
    for step in &summary.steps {
        let kind = step.method.as_deref().unwrap_or("");
        csv.write_record(stats_row(kind, &step.name, step, elapsed))?;
    }
    csv.write_record(stats_row("", AGGREGATED, &summary.totals, elapsed))?;
    csv.flush()
}

fn stats_row(kind: &str, name: &str, s: &StepStats, elapsed_s: f64) -> Vec<String> {
    let l = &s.latency_ms;
    let failures_per_s = if elapsed_s > 0.0 {
        s.failures as f64 / elapsed_s
    } else {
        0.0
    };
    let mut row = vec![
        kind.to_string(),
        name.to_string(),
        s.requests.to_string(),
        s.failures.to_string(),
        ms(l.get("p50")),
        ms(l.get("mean")),
        ms(l.get("min")),
        ms(l.get("max")),
        per(s.body_bytes, s.requests),
        two(s.rps),
        two(failures_per_s),
    ];
    row.extend(percentiles(l));
    row
}

/// `_stats_history.csv`: one `Aggregated` row per second of the series.
/// The interval columns describe that second; the `Total …` columns the
/// run so far.
pub fn write_history(summary: &RunSummary, out: &mut dyn Write) -> std::io::Result<()> {
    let start = start_second(summary)?;
    let mut csv = ::csv::Writer::from_writer(out);
    csv.write_record(HISTORY_HEADER)?;
    for point in &summary.series {
        // Rates are per second of the interval's real length (the last one
        // may be shorter or a little longer than a second).
        let failures_per_s = point.failures_per_second();
        let total = &point.cumulative;
        let mut row = vec![
            (start + point.t as i64).to_string(),
            point.users.to_string(),
            String::new(),
            AGGREGATED.to_string(),
            two(point.rps),
            two(failures_per_s),
        ];
        row.extend(percentiles(&point.latency_ms));
        row.extend([
            total.requests.to_string(),
            total.failures.to_string(),
            ms(total.latency_ms.get("p50")),
            ms(total.latency_ms.get("mean")),
            ms(total.latency_ms.get("min")),
            ms(total.latency_ms.get("max")),
            per(total.body_bytes, total.requests),
        ]);
        csv.write_record(row)?;
    }
    csv.flush()
}

/// `_failures.csv`: one row per distinct failure, most frequent first (the
/// summary's order). `Error` is `kind: message`.
pub fn write_failures(summary: &RunSummary, out: &mut dyn Write) -> std::io::Result<()> {
    let mut csv = ::csv::Writer::from_writer(out);
    csv.write_record(FAILURES_HEADER)?;
    for f in &summary.failures {
        csv.write_record([
            f.method.clone(),
            f.step.clone(),
            format!("{}: {}", f.kind, f.message),
            f.count.to_string(),
        ])?;
    }
    csv.flush()
}

/// The run's start in Unix seconds, which the series' offsets count from.
fn start_second(summary: &RunSummary) -> std::io::Result<i64> {
    summary
        .run
        .started_at
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "run.started_at {:?} is not an RFC 3339 timestamp: {e}",
                    summary.run.started_at
                ),
            )
        })
}

fn percentiles(l: &Latency) -> impl Iterator<Item = String> + '_ {
    PERCENTILE_KEYS
        .iter()
        .map(|key| l.0.get(*key).map_or_else(|| "N/A".to_string(), |v| ms(*v)))
}

fn ms(v: f64) -> String {
    format!("{v:.3}")
}

fn two(v: f64) -> String {
    format!("{v:.2}")
}

/// `total / count` with two decimals (0 when nothing was counted).
fn per(total: u64, count: u64) -> String {
    two(if count == 0 {
        0.0
    } else {
        total as f64 / count as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_summary;

    fn render(write: crate::report::Writer) -> String {
        let mut out = Vec::new();
        write(&test_summary(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn percentile_columns_match_their_keys() {
        for (column, key) in STATS_HEADER[11..].iter().zip(PERCENTILE_KEYS) {
            let expected = match key {
                "max" => "100%".to_string(),
                _ => format!("{}%", &key[1..]),
            };
            assert_eq!(*column, expected);
        }
        assert_eq!(STATS_HEADER[11..], HISTORY_HEADER[6..17]);
    }

    #[test]
    fn stats_rows_follow_the_steps_then_aggregated() {
        let text = render(write_stats);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[1],
            "GET,list,100,2,1.500,2.250,0.500,9.000,512.00,10.00,0.20,\
             1.500,1.600,1.700,1.800,2.000,3.000,4.000,5.000,6.000,7.000,9.000"
        );
        // A step that sent nothing: Locust's N/A percentiles and zeros.
        assert_eq!(
            lines[2],
            "POST,\"create, new\",0,0,0.000,0.000,0.000,0.000,0.00,0.00,0.00,\
             N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A"
        );
        assert!(lines[3].starts_with(",Aggregated,100,2,"), "{}", lines[3]);
    }

    #[test]
    fn history_rows_are_timestamped_from_the_start() {
        let text = render(write_history);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        // started_at is 2026-01-02T03:04:05.5Z = 1767323045.5 s.
        assert_eq!(
            lines[1],
            "1767323046,4,,Aggregated,60.00,1.00,1.500,1.600,1.700,1.800,2.000,3.000,4.000,5.000,6.000,7.000,9.000,\
             60,1,1.500,2.250,0.500,9.000,512.00"
        );
        // The last, shorter interval: failures per second over the same span as rps.
        assert!(
            lines[2].starts_with("1767323047,4,,Aggregated,80.00,2.00,"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn failures_have_exactly_locusts_columns() {
        let text = render(write_failures);
        assert_eq!(
            text,
            "Method,Name,Error,Occurrences\n\
             GET,list,\"status: status 500, expected 200\",2\n"
        );
    }

    #[test]
    fn a_bad_start_time_is_an_error_not_a_wrong_timestamp() {
        let mut summary = test_summary();
        summary.run.started_at = "yesterday".to_string();
        let err = write_history(&summary, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("started_at"), "{err}");
    }
}
