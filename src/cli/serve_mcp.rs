//! `loadctl serve-mcp`: the MCP server for AI agents, on stdio.
//!
//! This file turns the flags into the agent's [`Guardrails`] and a runs
//! folder, then hands stdio to [`crate::mcp::serve`]. The guardrails are
//! the person's, set here and nowhere else: no tool argument changes them.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::Exit;
use crate::agent::{Agent, Guardrails, HostAllowlist, Limits};

#[derive(Debug, Args)]
pub struct ServeMcpArgs {
    /// A host runs may reach: a name, host:port, an address or a CIDR block (repeatable; default: loopback only)
    #[arg(long = "allow-host", value_name = "HOST|HOST:PORT|CIDR")]
    allow_host: Vec<String>,
    /// Most concurrent users of a run (in the open model: most iterations in flight)
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_users)]
    max_users: u64,
    /// Highest arrival rate of a run, iterations per second (open model)
    #[arg(long, value_name = "PER_SECOND", default_value_t = Limits::default().max_rate)]
    max_rate: f64,
    /// Longest run, e.g. 5m; runs without a duration are refused
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    max_duration: String,
    /// Most runs going on at the same time
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_concurrent_runs)]
    max_concurrent_runs: usize,
    /// An environment variable scenario templates may read (repeatable; default: none)
    #[arg(long = "allow-env", value_name = "NAME")]
    allow_env: Vec<String>,
    /// The only folder `path` arguments and data feeders may read from (default: none, so scenarios come as text and feeders are refused)
    #[arg(long, value_name = "DIR")]
    scenario_dir: Option<PathBuf>,
    /// Let scenarios skip TLS certificate checks (`[target] insecure = true`); refused without it
    #[arg(long)]
    allow_insecure_tls: bool,
    /// Where runs are saved, with audit.jsonl [default: $XDG_DATA_HOME/loadctl/runs, or ~/.local/share/loadctl/runs]
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
}

pub fn serve_mcp(args: ServeMcpArgs) -> anyhow::Result<Exit> {
    let (guardrails, runs_dir) = match settings(&args) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(Exit::Invalid);
        }
    };
    // A folder that cannot be used is a mistake in the command line.
    let agent = match Agent::new(guardrails, &runs_dir, CancellationToken::new()) {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(Exit::Invalid);
        }
    };
    let limits = agent.limits();
    super::terminal::note(format_args!(
        "loadctl serve-mcp {}: on stdio; runs saved in {}; hosts {}; at most {} users, {}/s, {}, {} run(s) at a time",
        env!("CARGO_PKG_VERSION"),
        runs_dir.display(),
        limits.allowed_hosts.join(", "),
        limits.max_users,
        limits.max_rate,
        limits.max_duration,
        limits.max_concurrent_runs
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(crate::mcp::serve(agent));
    // Blocking reads of a terminal's stdin, or generator threads still
    // finishing, must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(100));
    served.map(|()| Exit::Success)
}

/// The guardrails and the runs folder the flags ask for, or what is wrong.
fn settings(args: &ServeMcpArgs) -> Result<(Guardrails, PathBuf), String> {
    let hosts = HostAllowlist::parse(&args.allow_host)?;
    let max_duration = crate::plan::parse_duration(&args.max_duration)
        .map_err(|e| format!("--max-duration: {e}"))?;
    if args.max_users == 0 {
        return Err("--max-users must be at least 1".into());
    }
    if !(args.max_rate.is_finite() && args.max_rate > 0.0) {
        return Err(format!("--max-rate {} must be more than 0", args.max_rate));
    }
    if args.max_concurrent_runs == 0 {
        return Err("--max-concurrent-runs must be at least 1".into());
    }
    for name in &args.allow_env {
        let valid = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(format!(
                "--allow-env {name:?} is not a variable name (letters, digits and _)"
            ));
        }
    }
    let runs_dir = match &args.runs_dir {
        Some(dir) => dir.clone(),
        None => default_runs_dir()
            .ok_or("no data folder: neither XDG_DATA_HOME nor HOME is set; pass --runs-dir DIR")?,
    };
    let guardrails = Guardrails {
        hosts,
        limits: Limits {
            max_users: args.max_users,
            max_rate: args.max_rate,
            max_duration,
            max_concurrent_runs: args.max_concurrent_runs,
        },
        allowed_env: args.allow_env.clone(),
        scenario_dir: args.scenario_dir.clone(),
        allow_insecure_tls: args.allow_insecure_tls,
    };
    Ok((guardrails, runs_dir))
}

/// `$XDG_DATA_HOME/loadctl/runs`, or `~/.local/share/loadctl/runs`.
fn default_runs_dir() -> Option<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let data = absolute("XDG_DATA_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local").join("share")))?;
    Some(data.join("loadctl").join("runs"))
}
