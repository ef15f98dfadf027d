//! `loadctl validate FILE...`: every problem, with file:line:column.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::Exit;
use crate::diag::{Diagnostics, LineCol, Severity, SourceFile};
use crate::plan::{self, Overrides};
use crate::scenario;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files to check
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Serialize)]
struct Report {
    valid: bool,
    files: Vec<FileReport>,
}

#[derive(Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    problems: Vec<Problem>,
}

#[derive(Serialize)]
struct Problem {
    severity: Severity,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
}

/// Loads and compiles a scenario the way `run` does, without running it.
pub fn check(
    path: &std::path::Path,
    overrides: &Overrides,
) -> (SourceFile, Option<plan::Plan>, Diagnostics) {
    let (source, scenario, mut diags) = scenario::load(path);
    let plan = scenario.and_then(|scenario| {
        let mut plan_diags = Diagnostics::default();
        let plan = plan::compile(&scenario, Some(path), overrides, &mut plan_diags);
        diags.extend(plan_diags);
        plan.filter(|_| !diags.has_errors())
    });
    (source, plan, diags.sorted())
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<Exit> {
    let mut report = Report {
        valid: true,
        files: Vec::new(),
    };
    for path in &args.files {
        let (source, _, diags) = check(path, &Overrides::default());
        let valid = !diags.has_errors();
        report.valid &= valid;
        match args.format {
            Format::Text => {
                for d in diags.items() {
                    eprintln!("{}", source.render(d));
                }
                if valid {
                    println!("{}: ok", path.display());
                }
            }
            Format::Json => report.files.push(FileReport {
                file: path.display().to_string(),
                valid,
                problems: diags
                    .items()
                    .iter()
                    .map(|d| {
                        let at: Option<LineCol> = d.span.as_ref().map(|s| source.line_col(s.start));
                        Problem {
                            severity: d.severity,
                            line: at.map(|a| a.line),
                            column: at.map(|a| a.column),
                            message: d.message.clone(),
                        }
                    })
                    .collect(),
            }),
        }
    }
    if let Format::Json = args.format {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(if report.valid {
        Exit::Success
    } else {
        Exit::Invalid
    })
}
