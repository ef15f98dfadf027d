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
    /// What may make the figures less than they seem: a load generator
    /// near full CPU (its own delay is in the latencies), a lost worker,
    /// load that fell short. Absent when there is nothing to say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// A distributed run's workers and what became of them; absent from a
    /// single-machine run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionReport>,
}

/// How a distributed run was spread, and each worker's part in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DistributionReport {
    /// `even` or `capacity`.
    pub strategy: String,
    /// `rebalance`, `continue` or `fail`.
    pub on_worker_lost: String,
    /// Why the run failed, when it did: a worker lost under
    /// `on_worker_lost = "fail"`, the last worker lost, a worker that
    /// could not start. The figures are what was collected until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    pub workers: Vec<WorkerReport>,
}

/// One worker of a distributed run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerReport {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `done`, `lost`, `failed` or `stopped`.
    pub state: String,
    /// The part of the load it was given at the start (0 to 1).
    pub share: f64,
    /// Requests and failures it reported.
    pub requests: u64,
    pub failures: u64,
    /// Its process's CPU use, share of its cores (0 to 1): the mean and
    /// the highest of its heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_peak: Option<f64>,
    /// Seconds after the start when it was marked lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_at_s: Option<f64>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
        if self
            .distribution
            .as_ref()
            .is_some_and(|d| d.failed.is_some())
        {
            Verdict::Failed
        } else if self.run.interrupted {
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
    /// A distributed run that could not go on: it lost a worker under
    /// `on_worker_lost = "fail"`, or its last worker.
    Failed,
}

impl Verdict {
    /// The name in JSON and listings: `passed`, `thresholds_failed`,
    /// `interrupted`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::ThresholdsFailed => "thresholds_failed",
            Verdict::Interrupted => "interrupted",
            Verdict::Failed => "failed",
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

/// One interval of the run, normally one second long. Only the last
/// point may have another length ([`SeriesPoint::span_s`]): the run rarely
/// ends on a whole second. A final stretch shorter than
/// [`FOLD_BELOW_S`] is folded into the second before it, so that point
/// covers a little more than a second; a longer one is kept as a point of
/// its own, shorter than a second ([`SeriesPoint::is_partial`]). Either
/// way every rate of the point is per second of its real length, so the
/// end of a run never reads as a collapse.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeriesPoint {
    /// Seconds since the start, at the end of this one-second interval
    /// (the interval starts at `t - 1` whatever its length).
    pub t: u64,
    /// How long the interval really is, in seconds: 1 except for the
    /// run's last point. Summaries written before this field count 1.
    #[serde(default = "one_second")]
    pub span_s: f64,
    /// What the pattern asked for: users (closed) at the end of the
    /// interval, or arrivals per second (open) on average over it; 0 once
    /// the pattern's duration is over.
    pub target: f64,
    /// Active users at the end of the interval (busy ones, in the open model).
    pub users: u64,
    /// Iterations started in the interval (a count; see
    /// [`SeriesPoint::per_second`] for the achieved arrival rate).
    pub started: u64,
    /// Arrivals dropped in the interval.
    pub dropped: u64,
    pub requests: u64,
    pub failures: u64,
    /// Requests per second over the interval's real length.
    pub rps: f64,
    pub bytes_in: u64,
    /// Latency of the requests completed in this interval.
    pub latency_ms: Latency,
    /// Service time of the same requests (equal to latency in the closed model).
    pub service_time_ms: Latency,
    /// Everything from the start of the run to the end of this interval.
    pub cumulative: Cumulative,
}

/// A final stretch of the run shorter than this (in seconds) is folded
/// into the second before it rather than drawn as a point of its own: a
/// few milliseconds of stragglers would read as a collapse of throughput.
pub const FOLD_BELOW_S: f64 = 0.25;

fn one_second() -> f64 {
    1.0
}

/// `count` over `span_s` seconds, as a rate per second (0 over no time).
pub fn per_second(count: u64, span_s: f64) -> f64 {
    if span_s > 0.0 {
        count as f64 / span_s
    } else {
        0.0
    }
}

/// An interval of `span_s` seconds is shorter than a second (with room
/// for the rounding of a duration read from a clock).
pub fn is_partial(span_s: f64) -> bool {
    span_s < 1.0 - 1e-9
}

impl SeriesPoint {
    /// A count of this interval as a rate per second of its real length.
    pub fn per_second(&self, count: u64) -> f64 {
        per_second(count, self.span_s)
    }

    /// Failures per second, over the same span as `rps` (also in
    /// summaries written before `span_s`, whose last `rps` was already
    /// scaled).
    pub fn failures_per_second(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.rps * self.failures as f64 / self.requests as f64
        }
    }

    /// The interval is shorter than a second: the run ended within it.
    pub fn is_partial(&self) -> bool {
        is_partial(self.span_s)
    }

    /// Seconds since the start at the real end of the interval.
    pub fn end_s(&self) -> f64 {
        self.t.saturating_sub(1) as f64 + self.span_s
    }
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

/// How one threshold fared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdResult {
    pub metric: String,
    pub expression: String,
    /// `None` when there was no data: the step (or, for the other
    /// metrics, the whole run) sent no request. Such a threshold is not
    /// evaluated, and `passed` is false, whatever its expression.
    pub observed: Option<f64>,
    pub unit: Unit,
    pub passed: bool,
}

impl ThresholdResult {
    /// Whether there was data to judge the threshold on.
    pub fn evaluated(&self) -> bool {
        self.observed.is_some()
    }
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

/// A small summary with known numbers, for the unit tests of whatever
/// reads a summary (thresholds, reporters): a
/// closed run with one busy step (2 failures out of 100), one step that
/// sent nothing, two seconds of series (the last one partial: the run
/// ended half a second into it) and a failing threshold.
#[cfg(test)]
pub(crate) fn test_summary() -> RunSummary {
    let latency = Latency(
        [
            ("min", 0.5),
            ("mean", 2.25),
            ("max", 9.0),
            ("p50", 1.5),
            ("p66", 1.6),
            ("p75", 1.7),
            ("p80", 1.8),
            ("p90", 2.0),
            ("p95", 3.0),
            ("p98", 4.0),
            ("p99", 5.0),
            ("p99.9", 6.0),
            ("p99.99", 7.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    );
    let busy = StepStats {
        first_event_ms: None,
        name: "list".to_string(),
        method: Some("GET".to_string()),
        requests: 100,
        failures: 2,
        error_rate: 0.02,
        rps: 10.0,
        bytes_in: 60_000,
        bytes_out: 9_000,
        body_bytes: 51_200,
        latency_ms: latency.clone(),
        service_time_ms: latency.clone(),
        status_codes: [("200".to_string(), 98), ("500".to_string(), 2)].into(),
        errors: [("status".to_string(), 2)].into(),
    };
    let idle = StepStats {
        name: "create, new".to_string(),
        method: Some("POST".to_string()),
        ..StepStats::default()
    };
    let point = |t: u64, requests: u64, span_s: f64, so_far: u64| SeriesPoint {
        t,
        span_s,
        target: 4.0,
        users: 4,
        started: requests,
        dropped: 0,
        requests,
        failures: 1,
        rps: requests as f64 / span_s,
        bytes_in: requests * 600,
        latency_ms: latency.clone(),
        service_time_ms: latency.clone(),
        cumulative: Cumulative {
            requests: so_far,
            failures: t,
            body_bytes: so_far * 512,
            latency_ms: latency.clone(),
        },
    };
    RunSummary {
        mcp_sessions: Default::default(),
        warnings: Vec::new(),
        distribution: None,
        schema_version: SCHEMA_VERSION,
        loadctl_version: "0.1.0".to_string(),
        run: RunInfo {
            id: "0123456789abcdef0123456789abcdef".to_string(),
            name: "checkout <flow>".to_string(),
            scenario_file: Some("scenarios/checkout.toml".to_string()),
            target: "http://127.0.0.1:8080".to_string(),
            http: "auto".to_string(),
            model: "closed".to_string(),
            pattern: "constant".to_string(),
            users: 4,
            seed: None,
            duration_s: Some(10.0),
            iterations_limit: None,
            threads: 2,
            started_at: "2026-01-02T03:04:05.5Z".to_string(),
            ended_at: "2026-01-02T03:04:15.5Z".to_string(),
            elapsed_s: 10.0,
            interrupted: false,
        },
        totals: StepStats {
            name: "Aggregated".to_string(),
            method: None,
            ..busy.clone()
        },
        steps: vec![busy, idle],
        iterations: 98,
        dropped: 0,
        target_rate: None,
        achieved_rate: None,
        thresholds: vec![
            ThresholdResult {
                metric: "http_req_duration".to_string(),
                expression: "p(95) < 500ms".to_string(),
                observed: Some(3.0),
                unit: Unit::Ms,
                passed: true,
            },
            ThresholdResult {
                metric: "step:list".to_string(),
                expression: "error_rate < 0.01".to_string(),
                observed: Some(0.02),
                unit: Unit::Ratio,
                passed: false,
            },
        ],
        thresholds_passed: false,
        series: vec![point(1, 60, 1.0, 60), point(2, 40, 0.5, 100)],
        failures: vec![FailureEntry {
            step: "list".to_string(),
            method: "GET".to_string(),
            kind: "status".to_string(),
            message: "status 500, expected 200".to_string(),
            count: 2,
            first_seen_s: 0,
            last_seen_s: 2,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_point_from_before_span_s_covers_a_second() {
        let old = r#"{"t": 3, "target": 5.0, "users": 5, "started": 40, "dropped": 0,
            "requests": 80, "failures": 8, "rps": 80.0, "bytes_in": 0,
            "latency_ms": {}, "service_time_ms": {},
            "cumulative": {"requests": 200, "failures": 8, "body_bytes": 0, "latency_ms": {}}}"#;
        let p: SeriesPoint = serde_json::from_str(old).unwrap();
        assert_eq!(p.span_s, 1.0);
        assert!(!p.is_partial());
        assert_eq!((p.end_s(), p.per_second(p.started)), (3.0, 40.0));
        assert_eq!(p.failures_per_second(), 8.0);
    }

    #[test]
    fn rates_of_a_partial_point_are_per_second_of_its_length() {
        let old = r#"{"t": 7, "span_s": 0.25, "target": 5.0, "users": 5, "started": 40,
            "dropped": 4, "requests": 80, "failures": 8, "rps": 320.0, "bytes_in": 0,
            "latency_ms": {}, "service_time_ms": {},
            "cumulative": {"requests": 200, "failures": 8, "body_bytes": 0, "latency_ms": {}}}"#;
        let p: SeriesPoint = serde_json::from_str(old).unwrap();
        assert!(p.is_partial());
        assert_eq!(p.end_s(), 6.25);
        assert_eq!(
            (p.per_second(p.started), p.per_second(p.dropped)),
            (160.0, 16.0)
        );
        assert_eq!(p.failures_per_second(), 32.0);
    }
}
