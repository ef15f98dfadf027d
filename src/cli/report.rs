//! `loadctl report SUMMARY.json`: re-renders a saved run in any format, and
//! `loadctl report --compare BASE.json CURRENT.json` judges the change
//! between two runs. Both only read `summary.json` files (through
//! [`crate::store::read_summary`], which refuses a newer schema); the
//! rendering and the comparison rules live in [`crate::report`].

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{terminal, Exit};
use crate::metrics::summary::RunSummary;
use crate::report::{self, compare, Format};
use crate::store;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A summary.json written by `loadctl run --out`
    #[arg(required_unless_present = "compare")]
    summary: Option<PathBuf>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write to this file instead of stdout (for csv: a prefix, giving PREFIX_stats.csv, PREFIX_stats_history.csv and PREFIX_failures.csv)
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Compare two summaries; exits 1 when a step regressed beyond --max-regression (and, for latencies, by at least --min-change)
    #[arg(
        long,
        num_args = 2,
        value_names = ["BASE", "CURRENT"],
        conflicts_with_all = ["summary", "format", "output"]
    )]
    compare: Option<Vec<PathBuf>>,
    /// With --compare: the change allowed before it counts as a regression (latency or error rate up, rps down) [default: 10%]
    // It means nothing without --compare. clap counts `requires` as met
    // when an argument that conflicts with --compare (SUMMARY) is given,
    // hence the explicit conflict; and no clap default, which would make
    // the flag look given.
    #[arg(
        long,
        value_name = "PERCENT",
        requires = "compare",
        conflicts_with = "summary",
        value_parser = compare::parse_limit
    )]
    max_regression: Option<f64>,
    /// With --compare: a latency rise smaller than this (e.g. 2ms, 500us) is never a regression, whatever its percentage; 0 turns the floor off [default: 2ms]
    #[arg(
        long,
        value_name = "LATENCY",
        requires = "compare",
        conflicts_with = "summary",
        value_parser = compare::parse_min_change
    )]
    min_change: Option<f64>,
}

pub fn report(args: ReportArgs) -> anyhow::Result<Exit> {
    if let Some(paths) = &args.compare {
        let rules = compare::CompareRules::with(args.max_regression, args.min_change);
        return compare_runs(&paths[0], &paths[1], &rules);
    }
    let Some(path) = &args.summary else {
        unreachable!("clap requires a summary unless --compare is given");
    };
    let summary = match read(path) {
        Ok(s) => s,
        Err(e) => return Ok(invalid(e)),
    };
    match &args.output {
        Some(target) => {
            for written in report::write_format(&summary, args.format, target)? {
                terminal::note(format_args!("wrote {}", written.display()));
            }
        }
        None => {
            let Some(write) = report::stream_writer(args.format) else {
                return Ok(invalid(
                    "--format csv writes three files: give their prefix with -o PREFIX",
                ));
            };
            let mut stdout = terminal::stdout();
            write(&summary, &mut stdout)?;
            stdout.flush()?;
        }
    }
    Ok(Exit::Success)
}

fn compare_runs(
    base: &Path,
    current: &Path,
    rules: &compare::CompareRules,
) -> anyhow::Result<Exit> {
    let (base_summary, current_summary) = match (read(base), read(current)) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(e), _) | (_, Err(e)) => return Ok(invalid(e)),
    };
    if base_summary.run.name != current_summary.run.name {
        eprintln!(
            "note: comparing different scenarios ({:?} and {:?}); steps are matched by name",
            base_summary.run.name, current_summary.run.name
        );
    }
    let comparison = compare::compare(&base_summary, &current_summary, rules);
    terminal::print(compare::render(
        &comparison,
        &base.display().to_string(),
        &current.display().to_string(),
    ))?;
    Ok(if comparison.regressions().next().is_some() {
        Exit::ThresholdsFailed
    } else {
        Exit::Success
    })
}

/// The summary at `path` (a file, or the folder `run --out` wrote), or
/// what is wrong with it and what to give instead.
fn read(path: &Path) -> Result<RunSummary, String> {
    store::read_summary(path).map_err(|e| match e {
        // Says what to do already: upgrade loadctl.
        store::StoreError::NewerSchema { .. } => e.to_string(),
        _ => format!("{e}; give the summary.json that `loadctl run --out DIR` wrote, or DIR"),
    })
}

fn invalid(message: impl std::fmt::Display) -> Exit {
    eprintln!("error: {message}");
    Exit::Invalid
}
