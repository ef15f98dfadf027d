//! Turning a [`RunSummary`] into
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

/// `singular` for one, `plural` for any other count, so no report says
/// "1 users".
pub fn plural(n: u64, singular: &'static str, plural: &'static str) -> &'static str {
    if n == 1 {
        singular
    } else {
        plural
    }
}

/// Why a threshold was not evaluated, for people; `None` when it was.
/// Every report says it the same way.
pub fn no_data(t: &ThresholdResult) -> Option<String> {
    if t.evaluated() {
        return None;
    }
    Some(match t.metric.strip_prefix("step:") {
        Some(step) => format!("no data: step `{}` sent no request", step.trim()),
        None => "no data: the run sent no request".to_string(),
    })
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

/// The summary the reporters' unit tests share.
#[cfg(test)]
pub(crate) use crate::metrics::summary::test_summary;

/// [`test_summary`] with its first threshold on the step that sent
/// nothing, so not evaluated.
#[cfg(test)]
pub(crate) fn no_data_summary() -> RunSummary {
    let mut summary = test_summary();
    let t = &mut summary.thresholds[0];
    t.metric = "step:create, new".to_string();
    t.observed = None;
    t.passed = false;
    summary
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
        assert_eq!(no_data(&summary.thresholds[0]), None);
        assert_eq!(
            no_data(&none).as_deref(),
            Some("no data: the run sent no request")
        );
        none.metric = "step:create, new".to_string();
        assert_eq!(
            no_data(&none).as_deref(),
            Some("no data: step `create, new` sent no request")
        );
        assert_eq!(short(1234.56), "1235");
        assert_eq!(short(12.345), "12.3");
        assert_eq!(short(0.126), "0.13");
    }
}
