//! `RunSummary`: the one result contract.
//!
//! Everything that reads the result of a run — the terminal table,
//! `summary.json`, the other report formats, `loadctl report`, the MCP server
//! and the distributed coordinator — reads this type. Changing a field name
//! is a breaking change for users' scripts: add, don't rename.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::units::trim_float;

/// Bumped when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub schema_version: u32,
    pub loadctl_version: String,
    pub run: RunInfo,
    /// Every request of the run.
    pub totals: StepStats,
    /// One entry per step name, in scenario order.
    pub steps: Vec<StepStats>,
    /// Completed flow iterations (every step passed).
    pub iterations: u64,
    /// Open model: arrivals that were due but never run, because every
    /// slot was busy (`on_saturation = "drop"`), the wait queue was full,
    /// or the run ended while they waited. Always 0 in the closed model.
    pub dropped: u64,
    /// Open model: the mean arrival rate the pattern asked for.
    pub target_rate: Option<f64>,
    /// Open model: iterations started per second over the pattern's duration.
    pub achieved_rate: Option<f64>,
    pub thresholds: Vec<ThresholdResult>,
    /// True when every threshold passed (and when there are none).
    pub thresholds_passed: bool,
    /// One point per second of the run.
    pub series: Vec<SeriesPoint>,
    /// Distinct failures, most frequent first.
    pub failures: Vec<FailureEntry>,
    /// The MCP sessions the users opened and ended (all 0 when the
    /// scenario has no MCP step; absent from older summaries).
    #[serde(default)]
    pub mcp_sessions: McpSessions,
}

/// What became of the MCP sessions of a run's users.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct McpSessions {
    /// Handshakes (`initialize`) that succeeded.
    pub opened: u64,
    /// Sessions ended with a `DELETE` the server accepted (`close_session`).
    pub closed: u64,
    /// Sessions left open: without `close_session`, or when the server
    /// refused or failed the `DELETE`.
    pub abandoned: u64,
    /// Sessions the server no longer knew (it answered 404); the user's
    /// next MCP step opened a new one.
    pub expired: u64,
}

impl McpSessions {
    pub fn merge(&mut self, other: &McpSessions) {
        self.opened += other.opened;
        self.closed += other.closed;
        self.abandoned += other.abandoned;
        self.expired += other.expired;
    }
}

impl RunSummary {
    /// How the run ended: interrupted, or finished with every threshold
    /// passed or not.
    pub fn verdict(&self) -> Verdict {
        if self.run.interrupted {
            Verdict::Interrupted
        } else if !self.thresholds_passed {
            Verdict::ThresholdsFailed
        } else {
            Verdict::Passed
        }
    }
}

/// How a run ended, for every front end (the CLI turns it into an exit
/// code, the store lists it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The run finished and every threshold passed (or there were none).
    Passed,
    /// The run finished and at least one threshold failed.
    ThresholdsFailed,
    /// The run was stopped early (Ctrl-C, SIGTERM, a cancel request); its
    /// thresholds judged what ran.
    Interrupted,
}

impl Verdict {
    /// The name in JSON and listings: `passed`, `thresholds_failed`,
    /// `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::ThresholdsFailed => "thresholds_failed",
            Verdict::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// The run's id in the store ([`crate::store::RunId`]); empty in
    /// summaries written before runs had ids.
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub scenario_file: Option<String>,
    /// The base URL (credentials removed), or the demo target's address.
    pub target: String,
    pub http: String,
    /// `closed` (users) or `open` (arrival rate).
    pub model: String,
    pub pattern: String,
    /// Closed model: the most users at once; open model: `max_users`.
    pub users: u64,
    /// The `random` pattern's seed, to reproduce the run.
    pub seed: Option<u64>,
    pub duration_s: Option<f64>,
    pub iterations_limit: Option<u64>,
    pub threads: usize,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: String,
    pub elapsed_s: f64,
    /// The run was stopped early by Ctrl-C, SIGTERM or a cancel request.
    pub interrupted: bool,
}

/// Request statistics of one step, or of all of them (`totals`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct StepStats {
    pub name: String,
    /// `None` for the totals, and for a step name used with several methods.
    pub method: Option<String>,
    /// Requests sent; every one is either a success or a failure.
    pub requests: u64,
    pub failures: u64,
    /// `failures / requests` (0 when nothing was sent).
    pub error_rate: f64,
    /// Requests per second over the run's elapsed time.
    pub rps: f64,
    /// Response bytes: status line and headers (as received for HTTP/1.1,
    /// an estimate for HTTP/2) plus body.
    pub bytes_in: u64,
    /// Request bytes: request line, headers and body (same estimate rule).
    pub bytes_out: u64,
    /// Response body bytes only.
    pub body_bytes: u64,
    /// Latency in milliseconds as a user waits for it.
    pub latency_ms: Latency,
    /// Service time in milliseconds, from the actual send. In the closed
    /// model this is the same measurement as `latency_ms`.
    pub service_time_ms: Latency,
    /// MCP steps answered with an event stream: from the send to the
    /// stream's first event, in milliseconds. Absent when no answer of the
    /// row was a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_event_ms: Option<Latency>,
    /// Responses by status code ("200": 10).
    pub status_codes: BTreeMap<String, u64>,
    /// Failures by kind ("timeout": 2).
    pub errors: BTreeMap<String, u64>,
}

/// Latency statistics in milliseconds: `min`, `mean`, `max` and
/// percentiles named `p50`, `p90`, `p99.9`…
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(transparent)]
pub struct Latency(pub BTreeMap<String, f64>);

impl Latency {
    /// The key of percentile `p`: `p50`, `p99.9`. Six decimals are more
    /// than any percentile a histogram of three significant digits tells
    /// apart, and few enough to keep binary noise out of the key.
    pub fn key(p: f64) -> String {
        format!("p{}", trim_float(p, 6))
    }

    pub fn percentile(&self, p: f64) -> Option<f64> {
        if p >= 100.0 {
            return self.0.get("max").copied();
        }
        self.0.get(&Self::key(p)).copied()
    }

    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeriesPoint {
    /// Seconds since the start, at the end of this one-second interval.
    pub t: u64,
    /// What the pattern asked for: users (closed) or arrivals per second
    /// (open), at the end of the interval.
    pub target: f64,
    /// Active users at the end of the interval (busy ones, in the open model).
    pub users: u64,
    /// Iterations started in the interval (the achieved arrival rate).
    pub started: u64,
    /// Arrivals dropped in the interval.
    pub dropped: u64,
    pub requests: u64,
    pub failures: u64,
    pub rps: f64,
    pub bytes_in: u64,
    /// Latency of the requests completed in this interval.
    pub latency_ms: Latency,
    /// Service time of the same requests (equal to latency in the closed model).
    pub service_time_ms: Latency,
    /// Everything from the start of the run to the end of this interval.
    pub cumulative: Cumulative,
}

/// Running totals at the end of a series interval (what Locust's
/// `stats_history.csv` calls "Total …").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Cumulative {
    pub requests: u64,
    pub failures: u64,
    pub body_bytes: u64,
    /// `min`, `mean`, `max` and the standard percentiles so far.
    pub latency_ms: Latency,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdResult {
    pub metric: String,
    pub expression: String,
    /// `None` when nothing was measured (a step that sent no request).
    pub observed: Option<f64>,
    pub unit: Unit,
    pub passed: bool,
}

/// The unit a threshold's value is in, so reports can print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Ms,
    Ratio,
    PerSecond,
    Count,
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::Ms => "ms",
            Unit::Ratio => "",
            Unit::PerSecond => "/s",
            Unit::Count => "",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailureEntry {
    pub step: String,
    pub method: String,
    /// `refused`, `timeout`, `reset`, `status`, `check`…
    pub kind: String,
    pub message: String,
    pub count: u64,
    /// Seconds since the start.
    pub first_seen_s: u64,
    pub last_seen_s: u64,
}
