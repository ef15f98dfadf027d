//! What a run in progress shows once a second: [`Progress`], read by the
//! live terminal display, the Prometheus endpoint and (through a run
//! handle) the MCP server and the coordinator.

use std::time::Duration;

use super::summary::{self, StepStats};

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
    /// Since the start, at the end of the interval shown.
    pub elapsed: Duration,
    /// How long the interval shown is: one second, except the run's last,
    /// which ends when the run does (see
    /// [`SeriesPoint`](super::summary::SeriesPoint)).
    pub span: Duration,
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
    /// Iterations started in the interval (a count; see
    /// [`Progress::started_per_second`]).
    pub started: u64,
    /// Requests per second over the interval.
    pub rps: f64,
    /// p95 latency of the interval, in milliseconds (0 when no request
    /// completed in it).
    pub p95_ms: f64,
    /// Everything so far, step by step, when the run was asked for it
    /// (`RunOptions::live_stats`).
    pub live: Option<LiveStats>,
    /// The load generator's CPU use over the last second, as a share of
    /// its cores (a coordinator shows its busiest worker's); `None` where
    /// it cannot be measured.
    pub cpu: Option<f64>,
}

impl Progress {
    /// Iterations started per second over the interval.
    pub fn started_per_second(&self) -> f64 {
        summary::per_second(self.started, self.span.as_secs_f64())
    }

    /// The generator is so busy that its own delay may show in the
    /// latencies ([`crate::sys::SATURATED_CPU`]).
    pub fn is_saturated(&self) -> bool {
        self.cpu.is_some_and(|c| c >= crate::sys::SATURATED_CPU)
    }

    /// The interval is shorter than a second: the run ended within it.
    pub fn is_partial(&self) -> bool {
        summary::is_partial(self.span.as_secs_f64())
    }
}
