//! `loadctl validate FILE...`: every problem, with file:line:column.
//!
//! The checking itself is [`crate::validate`]; this file prints it. A
//! template reading an unset environment variable is a warning here (and an
//! error in `run`). A file over 10 MiB is refused, and at most the first
//! 50 problems of a file are printed, then a count of the rest.
//! `--print-schema` prints the scenario files' JSON Schema
//! ([`crate::scenario::schema`]) instead, for editors.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{terminal, Exit};
use crate::diag::Severity;
use crate::plan::{Inputs, Overrides};
use crate::validate::{check_file, Problem};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files to check. A file over 10 MiB is refused (for `run` too); of a file's
    /// problems, the first 50 are listed, then a count of the rest
    #[arg(required_unless_present = "print_schema")]
    files: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print the JSON Schema of scenario files (draft-07) instead of checking files, for
    /// editors: save it and point a `#:schema` line or a Taplo rule at it (docs/scenario.md)
    #[arg(long, conflicts_with = "files")]
    print_schema: bool,
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
    /// The first problems; the last one counts the rest, if any.
    problems: Vec<Problem>,
    /// How many problems are not listed.
    more_problems: usize,
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<Exit> {
    if args.print_schema {
        let schema = crate::scenario::schema::json_schema();
        println!("{}", serde_json::to_string_pretty(&schema)?);
        return Ok(Exit::Success);
    }
    let mut report = Report {
        valid: true,
        files: Vec::new(),
    };
    for path in &args.files {
        let inputs = Inputs::for_cli(Some(path), Severity::Warning);
        let checked = check_file(path, &Overrides::default(), &inputs);
        let valid = checked.valid();
        report.valid &= valid;
        match args.format {
            Format::Text => {
                for line in checked.rendered() {
                    eprintln!("{line}");
                }
                if valid {
                    writeln!(terminal::stdout(), "{}: ok", path.display())?;
                }
            }
            Format::Json => report.files.push(FileReport {
                file: path.display().to_string(),
                valid,
                problems: checked.problems(),
                more_problems: checked.diagnostics.omitted(),
            }),
        }
    }
    if let Format::Json = args.format {
        writeln!(
            terminal::stdout(),
            "{}",
            serde_json::to_string_pretty(&report)?
        )?;
    }
    Ok(if report.valid {
        Exit::Success
    } else {
        Exit::Invalid
    })
}
