//! Turning a [`RunSummary`](crate::metrics::summary::RunSummary) into
//! something people and programs read: one file per format, plus the live
//! progress display. Reporters only read the summary; they never see the
//! plan or the engine, so `loadctl report` can re-render a saved run.
//!
//! [`OUTPUTS`] is the one list that maps a format to its file names and
//! writer. `run --out`, `run --csv` and `loadctl report` all write through
//! it, so a re-rendered file is made by the same code, byte for byte.

pub mod compare;
pub mod csv;
pub mod html;
pub mod json;
pub mod junit;
pub mod progress;
pub mod prometheus;
pub mod table;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::metrics::summary::{RunSummary, ThresholdResult, Unit};
use crate::units::short;

/// A report format, as `loadctl report --format` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The terminal summary that `run` prints.
    Table,
    /// `summary.json`.
    Json,
    /// Locust-compatible `_stats.csv`, `_stats_history.csv`, `_failures.csv`.
    Csv,
    /// A self-contained `report.html`.
    Html,
    /// `junit.xml`, one test case per threshold.
    Junit,
}

/// How an output's file is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileName {
    /// The same name in every `--out` folder; `-o PATH` replaces it whole.
    Fixed(&'static str),
    /// Appended to a prefix, as Locust's `--csv PREFIX` does. In a `--out`
    /// folder the prefix is [`DIR_PREFIX`].
    Suffix(&'static str),
}

/// A reporter: a pure function of the summary, so re-rendering a saved
/// summary gives the same bytes.
pub type Writer = fn(&RunSummary, &mut dyn Write) -> std::io::Result<()>;

/// One file a format writes.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
    pub name: FileName,
    pub write: Writer,
}

/// The prefix of the CSV files in a `run --out` folder.
pub const DIR_PREFIX: &str = "loadctl";

/// Every file `run --out DIR` writes, in the order it writes them
/// (`summary.json` first: it is the one the others can be rebuilt from).
pub const OUTPUTS: [Output; 6] = [
    Output {
        format: Format::Json,
        name: FileName::Fixed("summary.json"),
        write: json::write,
    },
    Output {
        format: Format::Csv,
        name: FileName::Suffix("_stats.csv"),
        write: csv::write_stats,
    },
    Output {
        format: Format::Csv,
        name: FileName::Suffix("_stats_history.csv"),
        write: csv::write_history,
    },
    Output {
        format: Format::Csv,
        name: FileName::Suffix("_failures.csv"),
        write: csv::write_failures,
    },
    Output {
        format: Format::Html,
        name: FileName::Fixed("report.html"),
        write: html::write,
    },
    Output {
        format: Format::Junit,
        name: FileName::Fixed("junit.xml"),
        write: junit::write,
    },
];

impl Format {
    /// The files this format writes; none for the table, which is printed.
    pub fn outputs(self) -> impl Iterator<Item = &'static Output> {
        OUTPUTS.iter().filter(move |o| o.format == self)
    }
}

impl Output {
    /// This output's file in a `run --out` folder.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        match self.name {
            FileName::Fixed(name) => dir.join(name),
            FileName::Suffix(_) => self.path_for(&dir.join(DIR_PREFIX)),
        }
    }

    /// This output's file for `-o PATH` or `--csv PREFIX`: the path itself,
    /// or the prefix with the suffix appended.
    pub fn path_for(&self, target: &Path) -> PathBuf {
        match self.name {
            FileName::Fixed(_) => target.to_path_buf(),
            FileName::Suffix(suffix) => {
                let mut name = OsString::from(target.as_os_str());
                name.push(suffix);
                PathBuf::from(name)
            }
        }
    }

    fn write_to(&self, summary: &RunSummary, path: &Path) -> anyhow::Result<PathBuf> {
        write_atomic(path, |w| (self.write)(summary, w))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_path_buf())
    }
}

/// Writes every file of [`OUTPUTS`] into `dir`, each atomically, and
/// returns their paths.
pub fn write_dir(summary: &RunSummary, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    OUTPUTS
        .iter()
        .map(|o| o.write_to(summary, &o.path_in(dir)))
        .collect()
}

/// Writes one format's files for `-o PATH` / `--csv PREFIX` (see
/// [`Output::path_for`]), each atomically, and returns their paths.
pub fn write_format(
    summary: &RunSummary,
    format: Format,
    target: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    if format == Format::Table {
        write_atomic(target, |w| table::write(summary, w))
            .with_context(|| format!("writing {}", target.display()))?;
        return Ok(vec![target.to_path_buf()]);
    }
    format
        .outputs()
        .map(|o| o.write_to(summary, &o.path_for(target)))
        .collect()
}

/// Writes a one-file format to a stream (stdout). `None` for CSV, which is
/// several files and needs a prefix.
pub fn stream_writer(format: Format) -> Option<Writer> {
    if format == Format::Table {
        return Some(table::write);
    }
    let mut outputs = format.outputs();
    match (outputs.next(), outputs.next()) {
        (Some(only), None) => Some(only.write),
        _ => None,
    }
}

/// A threshold's observed value with its unit, for people: ratios as
/// percentages (so `rate < 0.01` reads against `1.5%`), counts whole.
pub fn observed(t: &ThresholdResult) -> String {
    let Some(v) = t.observed else {
        return "no data".to_string();
    };
    match t.unit {
        Unit::Ms => format!("{}ms", short(v)),
        Unit::Ratio => format!("{}%", short(v * 100.0)),
        Unit::PerSecond => format!("{}/s", short(v)),
        Unit::Count => format!("{v:.0}"),
    }
}

/// Writes a file atomically: to a temporary file in the same folder, then
/// renamed over the target, so a reader never sees half a report.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        write(&mut file)?;
        file.flush()?;
        file.get_ref().sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A small summary with known numbers, for the reporters' unit tests: a
/// closed run with one busy step (2 failures out of 100), one step that
/// sent nothing, two seconds of series and a failing threshold.
#[cfg(test)]
pub(crate) fn test_summary() -> RunSummary {
    use crate::metrics::summary::*;

    let latency = Latency(
        [
            ("min", 0.5),
            ("mean", 2.25),
            ("max", 9.0),
            ("p50", 1.5),
            ("p66", 1.6),
            ("p75", 1.7),
            ("p80", 1.8),
            ("p90", 2.0),
            ("p95", 3.0),
            ("p98", 4.0),
            ("p99", 5.0),
            ("p99.9", 6.0),
            ("p99.99", 7.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    );
    let busy = StepStats {
        name: "list".to_string(),
        method: Some("GET".to_string()),
        requests: 100,
        failures: 2,
        error_rate: 0.02,
        rps: 10.0,
        bytes_in: 60_000,
        bytes_out: 9_000,
        body_bytes: 51_200,
        latency_ms: latency.clone(),
        service_time_ms: latency.clone(),
        first_event_ms: None,
        status_codes: [("200".to_string(), 98), ("500".to_string(), 2)].into(),
        errors: [("status".to_string(), 2)].into(),
    };
    let idle = StepStats {
        name: "create, new".to_string(),
        method: Some("POST".to_string()),
        ..StepStats::default()
    };
    let point = |t: u64, requests: u64, rps: f64, so_far: u64| SeriesPoint {
        t,
        target: 4.0,
        users: 4,
        started: requests,
        dropped: 0,
        requests,
        failures: 1,
        rps,
        bytes_in: requests * 600,
        latency_ms: latency.clone(),
        service_time_ms: latency.clone(),
        cumulative: Cumulative {
            requests: so_far,
            failures: t,
            body_bytes: so_far * 512,
            latency_ms: latency.clone(),
        },
    };
    RunSummary {
        schema_version: SCHEMA_VERSION,
        loadctl_version: "0.1.0".to_string(),
        run: RunInfo {
            id: "0123456789abcdef0123456789abcdef".to_string(),
            name: "checkout <flow>".to_string(),
            scenario_file: Some("scenarios/checkout.toml".to_string()),
            target: "http://127.0.0.1:8080".to_string(),
            http: "auto".to_string(),
            model: "closed".to_string(),
            pattern: "constant".to_string(),
            users: 4,
            seed: None,
            duration_s: Some(10.0),
            iterations_limit: None,
            threads: 2,
            started_at: "2026-01-02T03:04:05.5Z".to_string(),
            ended_at: "2026-01-02T03:04:15.5Z".to_string(),
            elapsed_s: 10.0,
            interrupted: false,
        },
        totals: StepStats {
            name: "Aggregated".to_string(),
            method: None,
            ..busy.clone()
        },
        steps: vec![busy, idle],
        iterations: 98,
        dropped: 0,
        target_rate: None,
        achieved_rate: None,
        thresholds: vec![
            ThresholdResult {
                metric: "http_req_duration".to_string(),
                expression: "p(95) < 500ms".to_string(),
                observed: Some(3.0),
                unit: Unit::Ms,
                passed: true,
            },
            ThresholdResult {
                metric: "step:list".to_string(),
                expression: "error_rate < 0.01".to_string(),
                observed: Some(0.02),
                unit: Unit::Ratio,
                passed: false,
            },
        ],
        thresholds_passed: false,
        series: vec![point(1, 60, 60.0, 60), point(2, 40, 80.0, 100)],
        failures: vec![FailureEntry {
            step: "list".to_string(),
            method: "GET".to_string(),
            kind: "status".to_string(),
            message: "status 500, expected 200".to_string(),
            count: 2,
            first_seen_s: 0,
            last_seen_s: 2,
        }],
        mcp_sessions: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_folder_names_and_prefixed_names() {
        let names: Vec<PathBuf> = OUTPUTS
            .iter()
            .map(|o| o.path_in(Path::new("out")))
            .collect();
        let expected = [
            "out/summary.json",
            "out/loadctl_stats.csv",
            "out/loadctl_stats_history.csv",
            "out/loadctl_failures.csv",
            "out/report.html",
            "out/junit.xml",
        ];
        assert_eq!(names, expected.map(PathBuf::from));
        let csv: Vec<PathBuf> = Format::Csv
            .outputs()
            .map(|o| o.path_for(Path::new("results/run1")))
            .collect();
        assert_eq!(
            csv,
            [
                "results/run1_stats.csv",
                "results/run1_stats_history.csv",
                "results/run1_failures.csv"
            ]
            .map(PathBuf::from)
        );
        let html = Format::Html.outputs().next().unwrap();
        assert_eq!(html.path_for(Path::new("r.html")), PathBuf::from("r.html"));
    }

    #[test]
    fn every_format_but_csv_streams() {
        assert!(stream_writer(Format::Csv).is_none());
        for f in [Format::Table, Format::Json, Format::Html, Format::Junit] {
            assert!(stream_writer(f).is_some(), "{f:?}");
        }
        assert_eq!(Format::Table.outputs().count(), 0);
    }

    #[test]
    fn observed_values_read_against_their_expression() {
        let summary = test_summary();
        assert_eq!(observed(&summary.thresholds[0]), "3ms");
        assert_eq!(observed(&summary.thresholds[1]), "2%");
        let mut none = summary.thresholds[0].clone();
        none.observed = None;
        assert_eq!(observed(&none), "no data");
        assert_eq!(short(1234.56), "1235");
        assert_eq!(short(12.345), "12.3");
        assert_eq!(short(0.126), "0.13");
    }
}
