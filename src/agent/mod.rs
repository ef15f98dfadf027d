//! What an AI agent may do with loadctl, and the guardrails around it: the
//! tool logic behind `loadctl serve-mcp`, free of any MCP SDK.
//!
//! An [`Agent`] holds the [`Guardrails`] the person starting the server
//! chose (hosts, caps, environment variables, one readable folder), the
//! run store under the runs folder, the runs going on, and the audit log.
//! Each tool is a plain method taking a serde + schemars input type and
//! returning an output type or a [`ToolError`] whose text says what was
//! wrong and what to change; the MCP adapter (`crate::mcp`) only
//! translates. The parts:
//!
//! - [`hosts`]: the host allowlist, judged on resolved addresses.
//! - [`limits`]: the caps on users, rate, duration and concurrent runs.
//! - [`scenario`]: scenarios from text or from a file in the scenario
//!   folder; `create_scenario`, `validate_scenario`.
//! - [`runs`]: starting, watching, cancelling and listing runs; every run
//!   is saved to the store when it ends, cancelled or not.
//! - [`compare`]: `compare_runs`, the rules of `report --compare`.
//! - [`resources`]: a saved run's files as `loadctl://runs/{id}/{file}`.
//! - [`audit`]: the audit log.
//! - [`redact`]: the allowed variables' values, kept out of all output.

pub mod audit;
pub mod compare;
pub mod hosts;
pub mod limits;
pub mod redact;
pub mod resources;
pub mod runs;
pub mod scenario;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::units::fmt_duration;
use audit::AuditLog;
pub use hosts::HostAllowlist;
pub use limits::{Limits, LoadSummary, MAX_SCENARIO_BYTES};
use redact::SecretValues;

/// How many failed runs `get_run` remembers: a failed run has no saved
/// summary, so only memory holds why, and that must stay bounded.
const FAILED_RUNS_KEPT: usize = 100;

/// What the person starting the server allows; never changed by a tool.
#[derive(Debug, Clone, Default)]
pub struct Guardrails {
    pub hosts: HostAllowlist,
    pub limits: Limits,
    /// The only environment variables templates may read.
    pub allowed_env: Vec<String>,
    /// The only folder `path` arguments and data feeders may read from.
    pub scenario_dir: Option<PathBuf>,
    /// Whether a scenario may skip certificate checks (`insecure = true`).
    pub allow_insecure_tls: bool,
}

/// A tool call that did not succeed: a message for the model, saying what
/// was wrong and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError(pub String);

impl ToolError {
    pub fn new(message: impl Into<String>) -> ToolError {
        ToolError(message.into())
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolError {}

/// The guardrails in force, for `get_limits`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LimitsReport {
    /// Hosts runs may reach: names, host:port, addresses and CIDR blocks.
    /// The built-in demo target (`base_url = "demo"`) is always allowed.
    pub allowed_hosts: Vec<String>,
    pub max_users: u64,
    /// Arrivals per second (open model).
    pub max_rate: f64,
    /// e.g. `300s`.
    pub max_duration: String,
    pub max_duration_s: f64,
    pub max_concurrent_runs: usize,
    /// Runs going on now.
    pub live_runs: usize,
    /// The environment variables scenario templates may read (`env.NAME`).
    pub allowed_env: Vec<String>,
    /// The folder `path` arguments and data feeders are read from; `None`:
    /// scenarios come as text and data feeders are refused.
    pub scenario_dir: Option<String>,
    /// The largest scenario accepted, in bytes.
    pub max_scenario_bytes: usize,
    /// Redirects are never followed: a 3xx is a response like any other.
    pub follows_redirects: bool,
    /// Whether `[target] insecure = true` (no certificate checks) is allowed.
    pub allow_insecure_tls: bool,
}

/// The tool logic of `loadctl serve-mcp`. Cheap to clone; clones share
/// the runs.
#[derive(Debug, Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    guardrails: Guardrails,
    runs_dir: PathBuf,
    audit: AuditLog,
    /// The allowed environment variables' values, redacted from output.
    secrets: SecretValues,
    /// Runs started and not yet saved.
    live: Mutex<BTreeMap<crate::store::RunId, Arc<runs::LiveRun>>>,
    /// Runs that failed without a summary, with why (kept for `get_run`),
    /// oldest first; only the newest [`FAILED_RUNS_KEPT`] are kept.
    failed: Mutex<VecDeque<(crate::store::RunId, String)>>,
    /// Fires on server shutdown; every run's stop token is its child.
    shutdown: CancellationToken,
    /// Fires when the server must end at once (stdin closed): every run's
    /// abort token is its child, so in-flight requests end too.
    abort: CancellationToken,
}

impl Agent {
    /// An agent saving runs under `runs_dir` (created if missing). The
    /// scenario folder must exist.
    pub fn new(
        mut guardrails: Guardrails,
        runs_dir: &Path,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Agent> {
        use anyhow::Context as _;
        std::fs::create_dir_all(runs_dir)
            .with_context(|| format!("cannot create the runs folder {}", runs_dir.display()))?;
        if let Some(dir) = &guardrails.scenario_dir {
            let canonical = dir.canonicalize().with_context(|| {
                format!("--scenario-dir {}: cannot open the folder", dir.display())
            })?;
            anyhow::ensure!(
                canonical.is_dir(),
                "--scenario-dir {} is not a folder",
                dir.display()
            );
            guardrails.scenario_dir = Some(canonical);
        }
        let secrets = SecretValues::of_env(&guardrails.allowed_env);
        Ok(Agent {
            inner: Arc::new(Inner {
                guardrails,
                audit: AuditLog::new(runs_dir, secrets.clone()),
                secrets,
                runs_dir: runs_dir.to_path_buf(),
                live: Mutex::default(),
                failed: Mutex::default(),
                shutdown,
                abort: CancellationToken::new(),
            }),
        })
    }

    pub fn guardrails(&self) -> &Guardrails {
        &self.inner.guardrails
    }

    /// The allowed environment variables' values, for redacting text
    /// that leaves the server.
    pub fn secrets(&self) -> &SecretValues {
        &self.inner.secrets
    }

    pub fn runs_dir(&self) -> &Path {
        &self.inner.runs_dir
    }

    /// `get_limits`: the guardrails in force.
    pub fn limits(&self) -> LimitsReport {
        let g = &self.inner.guardrails;
        LimitsReport {
            allowed_hosts: g.hosts.entries(),
            max_users: g.limits.max_users,
            max_rate: g.limits.max_rate,
            max_duration: fmt_duration(g.limits.max_duration),
            max_duration_s: g.limits.max_duration.as_secs_f64(),
            max_concurrent_runs: g.limits.max_concurrent_runs,
            live_runs: self.live_count(),
            allowed_env: g.allowed_env.clone(),
            scenario_dir: g.scenario_dir.as_ref().map(|d| d.display().to_string()),
            max_scenario_bytes: MAX_SCENARIO_BYTES,
            follows_redirects: false,
            allow_insecure_tls: g.allow_insecure_tls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_report_shows_the_guardrails() {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::new(
            Guardrails {
                allowed_env: vec!["API_TOKEN".into()],
                ..Guardrails::default()
            },
            &dir.path().join("runs"),
            CancellationToken::new(),
        )
        .unwrap();
        let report = agent.limits();
        assert_eq!(report.allowed_hosts, ["127.0.0.0/8", "::1"]);
        assert_eq!(report.max_duration, "300s");
        assert_eq!(report.max_concurrent_runs, 1);
        assert_eq!(report.allowed_env, ["API_TOKEN"]);
        assert_eq!(report.scenario_dir, None);
        assert!(dir.path().join("runs").is_dir());
        let missing = Guardrails {
            scenario_dir: Some(dir.path().join("nope")),
            ..Guardrails::default()
        };
        let e = Agent::new(missing, dir.path(), CancellationToken::new()).unwrap_err();
        assert!(e.to_string().starts_with("--scenario-dir"), "{e}");
    }
}
