//! Terminal manners shared by every subcommand: the global `--quiet` and
//! `--log-level` flags, diagnostics on stderr (`tracing`, filtered by
//! `--log-level` or `RUST_LOG`), colour only where it is wanted, and a
//! standard output that a closed pipe does not turn into an error.
//!
//! Colour follows the rules clap applies to its own help and errors
//! (anstream's): never with `NO_COLOR`, never off a terminal unless
//! `CLICOLOR_FORCE` asks for it. The summary table, the progress bar and
//! the diagnostics of `validate` carry no colour codes at all; the log
//! lines are the only other coloured output.
//!
//! `--quiet` is a setting of the whole process, like the colour choice:
//! it is set once, before the subcommand starts, and read wherever a
//! message that is neither a problem nor the result would be printed
//! ([`note`]), so a new subcommand honours it without a flag of its own.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, ValueEnum};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The flags every subcommand takes, before or after its name
/// (`loadctl -q run x.toml` and `loadctl run -q x.toml` alike). Listed
/// after a subcommand's own flags, under their own heading.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options", next_display_order = 1000)]
pub struct GlobalArgs {
    /// Print only errors and the result: no live progress, no notes such as the files written
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Diagnostics on stderr from this level up [default: warn; error with --quiet; or RUST_LOG, e.g. RUST_LOG=loadctl=debug]
    #[arg(long, value_enum, value_name = "LEVEL", global = true)]
    pub log_level: Option<LogLevel>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for LevelFilter {
    fn from(level: LogLevel) -> LevelFilter {
        match level {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// Applies the global flags: `--quiet` for [`note`] and the progress
/// display, and the log filter for diagnostics on stderr.
pub fn init(args: &GlobalArgs) {
    QUIET.store(args.quiet, Ordering::Relaxed);
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, problem) = log_filter(args.log_level, rust_log.as_deref(), args.quiet);
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(|| LogWriter)
        .with_ansi(colour_on(&std::io::stderr()));
    // Another subscriber is only ever set by a test harness; keep it.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .try_init();
    // Said even with --quiet: the person set RUST_LOG and it is ignored.
    if let Some(problem) = problem {
        let _ = writeln!(std::io::stderr().lock(), "warning: {problem}");
    }
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints a note on stderr (a file written, a server's address), unless
/// `--quiet`. A closed stderr loses the note rather than failing the command.
pub fn note(message: impl Display) {
    if !quiet() {
        let _ = writeln!(std::io::stderr().lock(), "{message}");
    }
}

/// Whether output to `stream` may carry colour codes.
pub fn colour_on(stream: &impl anstream::stream::RawStream) -> bool {
    anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never
}

/// The log filter: `--log-level` if given, else `RUST_LOG` if set, else
/// warnings and errors (errors only with `--quiet`). A `RUST_LOG` that
/// does not parse falls back to the default, with the reason to print.
fn log_filter(
    flag: Option<LogLevel>,
    rust_log: Option<&str>,
    quiet: bool,
) -> (Targets, Option<String>) {
    let default = if quiet {
        LevelFilter::ERROR
    } else {
        LevelFilter::WARN
    };
    if let Some(level) = flag {
        return (Targets::new().with_default(level), None);
    }
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => (Targets::new().with_default(default), None),
        Some(text) => match text.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (
                Targets::new().with_default(default),
                Some(format!(
                    "RUST_LOG={text:?} is not a filter ({e}); ignoring it. \
                     Give a level (error, warn, info, debug, trace) or TARGET=LEVEL pairs, \
                     e.g. RUST_LOG=loadctl=debug,warn, or use --log-level"
                )),
            ),
        },
    }
}

/// Where log lines go: stderr, around the live progress bar.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::report::progress::suspended(|| std::io::stderr().write(buf))
    }

    // The formatter writes each event whole: keep it whole, in one
    // suspension of the bar.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        crate::report::progress::suspended(|| std::io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Standard output for results, locked for the command's length. A reader
/// that closes the pipe early (`loadctl report s.json | head -1`) has all
/// it wants: what is left is dropped and the command still ends as it
/// would have, instead of failing on the broken pipe (or panicking, as
/// `print!` does).
pub fn stdout() -> Stdout {
    Stdout {
        inner: std::io::stdout().lock(),
        closed: false,
    }
}

pub struct Stdout {
    inner: std::io::StdoutLock<'static>,
    /// The reader has gone: drop the rest without a system call each.
    closed: bool,
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

/// Writes `text` to [`stdout`] and flushes it.
pub fn print(text: impl Display) -> std::io::Result<()> {
    let mut out = stdout();
    write!(out, "{text}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(filter: &Targets) -> Option<LevelFilter> {
        filter.default_level()
    }

    #[test]
    fn the_flag_beats_rust_log_which_beats_the_default() {
        let (f, _) = log_filter(Some(LogLevel::Debug), Some("trace"), false);
        assert_eq!(level(&f), Some(LevelFilter::DEBUG));
        let (f, _) = log_filter(None, Some("info"), true);
        assert_eq!(level(&f), Some(LevelFilter::INFO));
        let (f, _) = log_filter(None, None, false);
        assert_eq!(level(&f), Some(LevelFilter::WARN));
        let (f, _) = log_filter(None, Some("  "), true);
        assert_eq!(level(&f), Some(LevelFilter::ERROR));
    }

    #[test]
    fn rust_log_takes_targets() {
        let (f, problem) = log_filter(None, Some("loadctl=debug,rmcp=trace,warn"), false);
        assert!(problem.is_none());
        assert!(f.would_enable("loadctl::runner", &tracing::Level::DEBUG));
        assert!(!f.would_enable("hyper", &tracing::Level::INFO));
    }

    #[test]
    fn a_bad_rust_log_falls_back_and_says_what_to_write() {
        let (f, problem) = log_filter(None, Some("loadctl=loud"), false);
        assert_eq!(level(&f), Some(LevelFilter::WARN));
        let problem = problem.unwrap();
        assert!(problem.contains("RUST_LOG=\"loadctl=loud\""), "{problem}");
        assert!(problem.contains("--log-level"), "{problem}");
    }
}
