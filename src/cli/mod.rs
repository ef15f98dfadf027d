//! The command-line front end: clap definitions and dispatch.
//!
//! Each subcommand lives in its own file and is a thin adapter: it turns
//! flags into core calls (`scenario::load`, `plan::compile`, `runner::run`,
//! `report::*`) and results into output and an [`Exit`] code. What they
//! all share, the global flags (`--quiet`, `--log-level`), logging, colour
//! and a standard output that tolerates a closed pipe, is `terminal`.

mod completions;
mod coordinator;
mod distributed;
mod hints;
mod init;
mod report;
mod run;
mod serve_mcp;
mod terminal;
mod validate;
mod worker;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::metrics::summary::Verdict;

/// Exit codes; documented in the README and `loadctl --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The run finished and every threshold passed.
    Success = 0,
    /// The run finished and at least one threshold failed.
    ThresholdsFailed = 1,
    /// The scenario or the command line is invalid.
    Invalid = 2,
    /// Something went wrong at run time (I/O, the target's address…).
    Runtime = 3,
    /// The run was stopped by Ctrl-C or SIGTERM (results are still written).
    Interrupted = 130,
}

impl From<Verdict> for Exit {
    fn from(v: Verdict) -> Exit {
        match v {
            Verdict::Passed => Exit::Success,
            Verdict::ThresholdsFailed => Exit::ThresholdsFailed,
            Verdict::Interrupted => Exit::Interrupted,
            Verdict::Failed => Exit::Runtime,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

const EXIT_CODES: &str = "\
Exit codes:
  0    success: the run finished and every threshold passed
  1    the run finished and a threshold failed
  2    invalid scenario or usage
  3    runtime error (and a distributed run that lost its workers)
  130  interrupted by Ctrl-C or SIGTERM (results are still written)";

const WORKER_EXIT_CODES: &str = "\
Exit codes:
  0    stopped by Ctrl-C or SIGTERM (a run in progress stops, and what it ran is sent)
  2    invalid usage
  3    the coordinator refused this worker (a wrong token, another version)";

const REPORT_EXIT_CODES: &str = "\
Exit codes:
  0    written; --compare: no regression beyond --max-regression
  1    --compare: at least one regression beyond --max-regression
  2    invalid usage, or a summary file that is missing or not a summary
  3    runtime error (the output cannot be written)";

#[derive(Debug, Parser)]
#[command(
    name = "loadctl",
    // The package version, and the commit when built from a checkout (build.rs).
    version = env!("LOADCTL_BUILD_VERSION"),
    about = "Load-test HTTP services from declarative TOML scenarios",
    after_help = EXIT_CODES,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: terminal::GlobalArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario and report the results
    #[command(after_help = EXIT_CODES)]
    // Boxed: its many flags make it much larger than the other variants.
    Run(Box<run::RunArgs>),
    /// Check scenarios and report every problem with file:line:column
    Validate(validate::ValidateArgs),
    /// Write a starter scenario from a preset
    Init(init::InitArgs),
    /// Re-render a saved summary.json (table, json, csv, html, junit), or compare two runs
    #[command(after_help = REPORT_EXIT_CODES)]
    Report(report::ReportArgs),
    /// Serve AI agents over MCP on stdio: create, validate, run and read load tests within set limits
    ServeMcp(serve_mcp::ServeMcpArgs),
    /// Spread runs over workers: serve the API, or run one scenario over N workers and exit
    #[command(after_help = EXIT_CODES)]
    Coordinator(Box<coordinator::CoordinatorArgs>),
    /// Join a coordinator and run the parts of its runs it assigns
    #[command(after_help = WORKER_EXIT_CODES)]
    Worker(worker::WorkerArgs),
    /// Print the completion script for a shell (bash, zsh, fish, powershell, elvish)
    Completions(completions::CompletionsArgs),
}

/// The clap definition of the whole command line, for generated docs
/// (the man pages under `man/`).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses the command line, runs the subcommand, and maps the outcome to
/// an exit code. Errors are printed with their causes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if !hints::explain(&e) {
                let _ = e.print();
            }
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Exit::Success
                }
                _ => Exit::Invalid,
            }
            .into();
        }
    };
    terminal::init(&cli.global);
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Validate(args) => validate::validate(args),
        Command::Init(args) => init::init(args),
        Command::Report(args) => report::report(args),
        Command::ServeMcp(args) => serve_mcp::serve_mcp(args),
        Command::Coordinator(args) => coordinator::coordinator(*args),
        Command::Worker(args) => worker::worker(args),
        Command::Completions(args) => completions::completions(args),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Runtime.into()
        }
    }
}
