//! What a run in progress shows once a second: [`Progress`], read by the
//! live terminal display, the Prometheus endpoint and (through a run
//! handle) the MCP server and the coordinator.

use std::time::Duration;

use super::summary::StepStats;

/// Cumulative per-step statistics of a run in progress.
#[derive(Debug, Clone)]
pub struct LiveStats {
    pub totals: StepStats,
    pub steps: Vec<StepStats>,
    pub iterations: u64,
    pub dropped: u64,
}

/// A once-a-second view of a run in progress.
#[derive(Debug, Clone)]
pub struct Progress {
    pub elapsed: Duration,
    /// The planned duration, if the run is time-bound.
    pub duration: Option<Duration>,
    /// Whether `target` and `rps` are an arrival rate (open model).
    pub open: bool,
    /// What the pattern asks of this process now: users, or arrivals per
    /// second (the whole scenario's, times this process's share).
    pub target: f64,
    pub users: u64,
    pub requests: u64,
    pub failures: u64,
    pub dropped: u64,
    /// Iterations started in the last second.
    pub started: u64,
    /// Requests per second over the last second.
    pub rps: f64,
    /// p95 latency of the last second, in milliseconds.
    pub p95_ms: f64,
    /// Everything so far, step by step, when the run was asked for it
    /// (`RunOptions::live_stats`).
    pub live: Option<LiveStats>,
}
