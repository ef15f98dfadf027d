//! `loadctl init`: write a starter scenario from a preset.
//!
//! The presets and the splicing of `--url`, `--users` and `--duration`
//! into them are [`crate::preset`]; this file turns flags into its
//! parameters and writes the result.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};

use super::Exit;
use crate::preset::{self, Params, Preset};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Which starter scenario to write
    #[arg(long, value_enum, default_value_t = Preset::Basic)]
    preset: Preset,
    /// The URL to test: its origin becomes the base URL, its path and query the first step's path
    #[arg(long)]
    url: Option<String>,
    /// Concurrent users (for the spike preset: the users at the peak)
    #[arg(long)]
    users: Option<u64>,
    /// Test duration, e.g. 30s, 5m
    #[arg(long)]
    duration: Option<String>,
    /// Where to write the scenario ("-" for standard output)
    #[arg(short, long, default_value = "loadctl.toml")]
    output: PathBuf,
    /// Overwrite the output file if it exists
    #[arg(long)]
    force: bool,
}

/// `--preset NAME`, from the library's own list of names.
impl ValueEnum for Preset {
    fn value_variants<'a>() -> &'a [Self] {
        &Preset::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()).help(self.description()))
    }
}

pub fn init(args: InitArgs) -> anyhow::Result<Exit> {
    let params = Params {
        url: args.url.clone(),
        users: args.users,
        duration: args.duration.clone(),
    };
    let text = match preset::render(args.preset, &params, &args.output) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {}", e.message("--"));
            return Ok(Exit::Invalid);
        }
    };
    if args.output.as_os_str() == "-" {
        super::terminal::print(&text)?;
        return Ok(Exit::Success);
    }
    if args.output.exists() && !args.force {
        eprintln!(
            "error: {} already exists; pass --force to overwrite it",
            args.output.display()
        );
        return Ok(Exit::Invalid);
    }
    crate::report::write_atomic(&args.output, |w| w.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", args.output.display()))?;
    super::terminal::note(format_args!(
        "wrote {}; check it with `loadctl validate {0}` and run it with `loadctl run {0}`",
        args.output.display()
    ));
    Ok(Exit::Success)
}
