//! `loadctl worker`: join a coordinator and run the parts of its runs it
//! assigns, until SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::Exit;
use crate::dist::worker::{self, WorkerConfig};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The coordinator's URL, e.g. http://loadctl-coordinator:7878 (the worker connects out: it needs no open port)
    #[arg(long, env = "LOADCTL_COORDINATOR", value_name = "URL")]
    coordinator: String,
    /// The coordinator's shared token
    #[arg(long, env = "LOADCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Labels for placing load, e.g. zone=eu,rack=3 (a scenario's [distribution] zones match `zone`)
    #[arg(
        long,
        env = "LOADCTL_LABELS",
        value_name = "KEY=VALUE,...",
        value_delimiter = ','
    )]
    labels: Vec<String>,
    /// This worker's weight under `strategy = "capacity"` (default: its cores)
    #[arg(long, env = "LOADCTL_CAPACITY")]
    capacity: Option<u32>,
    /// Its name in reports (default: the host name)
    #[arg(long, env = "LOADCTL_WORKER_NAME")]
    name: Option<String>,
    /// A PEM file of certificates to trust for the coordinator's TLS, besides the system's
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    #[command(flatten)]
    generators: super::run::GeneratorFlags,
    /// Where a run cut off from its coordinator keeps its results
    #[arg(
        long,
        env = "LOADCTL_RESULTS_DIR",
        value_name = "DIR",
        default_value = "loadctl-worker-results"
    )]
    results_dir: PathBuf,
}

pub fn worker(args: WorkerArgs) -> anyhow::Result<Exit> {
    let labels = match parse_labels(&args.labels) {
        Ok(labels) => labels,
        Err(message) => {
            eprintln!("error: --labels: {message}");
            return Ok(Exit::Invalid);
        }
    };
    if args.capacity == Some(0) {
        eprintln!("error: --capacity must be at least 1");
        return Ok(Exit::Invalid);
    }
    let name = args
        .name
        .or_else(crate::sys::hostname)
        .unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let config = WorkerConfig {
        coordinator: args.coordinator,
        token: args.token,
        ca_file: args.ca_file,
        name,
        labels,
        capacity: args
            .capacity
            .unwrap_or(crate::sys::cores().min(u32::MAX as usize) as u32),
        threads: args.generators.threads,
        results_dir: args.results_dir,
    };
    let runtime = super::run::runtime()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(super::run::watch_signals(
            shutdown.clone(),
            "the current run ends, and what it ran is sent to the coordinator",
        ));
        worker::run(config, shutdown).await
    })?;
    runtime.shutdown_background();
    Ok(Exit::Success)
}

/// `zone=eu,rack=3` as a map; keys and values non-empty.
fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, String> {
    items
        .iter()
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!("`{item}` is not KEY=VALUE (e.g. zone=eu)")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value_pairs() {
        let labels = parse_labels(&["zone=eu".into(), " rack = 3 ".into()]).unwrap();
        assert_eq!(labels["zone"], "eu");
        assert_eq!(labels["rack"], "3");
        assert!(parse_labels(&["zone".into()])
            .unwrap_err()
            .contains("`zone`"));
        assert!(parse_labels(&["=eu".into()]).is_err());
    }
}
