//! What a coordinator, its workers and its API clients say to each other:
//! the JSON bodies of the coordinator's HTTP API, its paths, its limits,
//! and the token check.
//!
//! Workers connect out: they register (`POST /api/workers`), then
//! heartbeat once a second (`POST /api/workers/{id}/heartbeat`), which
//! carries their CPU use and their run's state and brings back their
//! orders (an assignment, a share change, a stop) and the coordinator's
//! clock. Each closed second of a worker's run travels on its own request
//! (`POST /api/workers/{id}/snapshots/{run}/{seq}/{second}`) as the
//! snapshot's wire form ([`crate::metrics::wire`]), numbered so a resend
//! after a lost answer is counted once.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::metrics::live::Progress;
use crate::plan::Overrides;

/// How often a worker heartbeats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A worker that has missed this many heartbeats is lost.
pub const MISSED_HEARTBEATS: u32 = 3;
/// How long before the agreed start the workers are told: two heartbeats
/// to hear of it, and time to compile the plan and resolve the target.
pub const START_LEAD: Duration = Duration::from_secs(3);
/// How far ahead a share change is set, so every worker has heard of it
/// (on its next heartbeat) before it takes effect.
pub const SHARE_CHANGE_LEAD: Duration = Duration::from_millis(2500);
/// The largest register or heartbeat body.
pub const MAX_CONTROL_BYTES: usize = 64 * 1024;
/// The largest run submission: a scenario at its limit and its files.
pub const MAX_SUBMIT_BYTES: usize =
    2 * crate::scenario::MAX_SCENARIO_BYTES as usize + MAX_FILES_BYTES * 4 / 3 + 64 * 1024;
/// The most data a run's files may hold together: they travel to every
/// worker in its assignment.
pub const MAX_FILES_BYTES: usize = 32 << 20;
/// The largest answer an API client reads (a long run's summary, an
/// assignment with its files).
pub const MAX_ANSWER_BYTES: usize = 256 << 20;

/// The header a token travels in: `Authorization: Bearer TOKEN`.
pub const BEARER: &str = "Bearer ";

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether a presented token is the expected one, in time that does not
/// depend on where they differ (so the token cannot be guessed byte by
/// byte from response times).
pub fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    let mut diff = (presented.len() != expected.len()) as u8;
    for (i, byte) in expected.iter().enumerate() {
        diff |= byte ^ presented.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Files as they travel: base64, keyed by the path the scenario writes.
pub fn encode_files(files: &[(String, Vec<u8>)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(name, bytes)| (name.clone(), BASE64.encode(bytes)))
        .collect()
}

/// The files of a request or an assignment, from base64.
pub fn decode_files(files: &BTreeMap<String, String>) -> Result<Vec<(String, Vec<u8>)>, String> {
    files
        .iter()
        .map(|(name, data)| {
            BASE64
                .decode(data)
                .map(|bytes| (name.clone(), bytes))
                .map_err(|e| {
                    let name: String = name.chars().take(80).collect();
                    format!("file {name}: not base64: {e}")
                })
        })
        .collect()
}

/// `POST /api/workers`: a worker introduces itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub cores: u32,
    /// Its weight under `strategy = "capacity"`.
    pub capacity: u32,
    /// loadctl's version, and the snapshot wire version it speaks.
    pub version: String,
    pub wire_version: u32,
}

/// The answer to [`Register`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Registered {
    pub worker_id: String,
    pub heartbeat_ms: u64,
    /// Its name in reports: the one it asked for, with `-2`, `-3`, … when
    /// another live worker has it already.
    #[serde(default)]
    pub name: String,
}

/// `POST /api/workers/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The worker's clock when it sent this, for the clock offset.
    pub sent_ms: u64,
    /// Its CPU use since the last heartbeat, share of its cores (0 to 1).
    pub cpu: Option<f64>,
    pub run: Option<WorkerRun>,
}

/// The state of the run a worker was assigned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkerRun {
    pub run_id: String,
    pub state: WorkerRunState,
    /// How many snapshots of this run it has queued so far (the next
    /// sequence number): once done, the coordinator has them all when it
    /// has received this many.
    pub snapshots: u64,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Once done: when its part ended, in seconds since the agreed start
    /// (the merged run ends with its last worker, not when the
    /// coordinator hears of it).
    #[serde(default)]
    pub elapsed_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WorkerRunState {
    /// Compiling the plan, waiting for the agreed start.
    Preparing,
    Running,
    /// Its part is over; its last snapshots may still be on their way.
    Done,
    /// It could not start or run; `error` says why.
    Failed,
}

/// The answer to a [`Heartbeat`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeartbeatReply {
    /// The coordinator's clock when it answered.
    pub now_ms: u64,
    #[serde(default)]
    pub orders: Vec<Order>,
}

/// What a coordinator tells a worker to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "order")]
pub enum Order {
    /// Run a part of a scenario.
    Assign(Box<Assignment>),
    /// Run another part of the load from `at_ms` after the agreed start.
    Share {
        run_id: String,
        from: f64,
        to: f64,
        at_ms: u64,
    },
    /// Stop the run (its results are still sent).
    Stop { run_id: String },
}

/// A worker's part of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub run_id: String,
    pub scenario: String,
    /// The scenario's file name, for messages.
    pub scenario_file: Option<String>,
    /// Its data and CA files, base64, keyed by the path the scenario writes.
    pub files: BTreeMap<String, String>,
    pub overrides: Overrides,
    pub share: ShareOrder,
    /// The agreed start, on the coordinator's clock (ms since the epoch).
    pub start_ms: u64,
    /// The plan's fingerprint: the worker refuses a plan that compiles to
    /// another (a different build, say).
    pub fingerprint: String,
    /// Generator threads (0: one per core).
    pub threads: usize,
}

/// A share as it travels: the load slice `[from, to)` and the data rows
/// `k` of `n`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShareOrder {
    pub from: f64,
    pub to: f64,
    pub k: u64,
    pub n: u64,
}

/// `POST /api/runs`: a scenario to run over the workers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub scenario: String,
    /// The scenario's file name, for messages and the report.
    #[serde(default)]
    pub scenario_file: Option<String>,
    /// Data and CA files, base64, keyed by the path the scenario writes.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub overrides: Overrides,
    /// Wait for this many workers (default: one).
    #[serde(default)]
    pub expect_workers: Option<usize>,
    /// How long to wait for them, in seconds (default 60).
    #[serde(default)]
    pub expect_workers_timeout_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunCreated {
    pub run_id: String,
}

/// `GET /api/runs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunStatus {
    pub run_id: String,
    pub name: String,
    pub state: RunState,
    /// Why it failed, when it did; while it waits, why it cannot start
    /// yet (too few workers, a zone without one).
    #[serde(default)]
    pub error: Option<String>,
    /// The names of its workers.
    pub workers: Vec<String>,
    /// The latest second, merged over every worker.
    #[serde(default)]
    pub live: Option<LiveFigures>,
    /// Once finished: `passed`, `thresholds_failed`, `interrupted` or `failed`.
    #[serde(default)]
    pub verdict: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for workers, or for the agreed start.
    Waiting,
    Running,
    /// Over, with a summary (`GET /api/runs/{id}/summary`).
    Finished,
    /// It never started; `error` says why.
    Failed,
}

/// One second of a run in progress, as the API shows it; the fields of
/// [`Progress`] with durations in seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveFigures {
    pub elapsed_s: f64,
    pub span_s: f64,
    pub duration_s: Option<f64>,
    pub open: bool,
    pub target: f64,
    pub users: u64,
    pub requests: u64,
    pub failures: u64,
    pub dropped: u64,
    pub started: u64,
    pub rps: f64,
    pub p95_ms: f64,
    /// The busiest worker's CPU use (0 to 1).
    pub cpu: Option<f64>,
}

impl From<&Progress> for LiveFigures {
    fn from(p: &Progress) -> Self {
        LiveFigures {
            elapsed_s: p.elapsed.as_secs_f64(),
            span_s: p.span.as_secs_f64(),
            duration_s: p.duration.map(|d| d.as_secs_f64()),
            open: p.open,
            target: p.target,
            users: p.users,
            requests: p.requests,
            failures: p.failures,
            dropped: p.dropped,
            started: p.started,
            rps: p.rps,
            p95_ms: p.p95_ms,
            cpu: p.cpu,
        }
    }
}

impl LiveFigures {
    /// Back to a [`Progress`] for the live display of `run --coordinator`;
    /// `None` for figures no run could have (negative or endless times).
    pub fn to_progress(&self) -> Option<Progress> {
        let seconds = |s: f64| Duration::try_from_secs_f64(s).ok();
        Some(Progress {
            elapsed: seconds(self.elapsed_s)?,
            span: seconds(self.span_s)?,
            duration: match self.duration_s {
                Some(d) => Some(seconds(d)?),
                None => None,
            },
            open: self.open,
            target: self.target,
            users: self.users,
            requests: self.requests,
            failures: self.failures,
            dropped: self.dropped,
            started: self.started,
            rps: self.rps,
            p95_ms: self.p95_ms,
            live: None,
            cpu: self.cpu,
        })
    }
}

/// `GET /api/workers`: one worker as the coordinator sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerInfo {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `idle`, `busy` or `lost`.
    pub state: String,
    pub cores: u32,
    pub capacity: u32,
    /// Its latest CPU use (0 to 1).
    pub cpu: Option<f64>,
    /// Seconds since its last heartbeat.
    pub last_heartbeat_s: f64,
    /// The run it is part of.
    pub run_id: Option<String>,
    pub version: String,
}

/// An error answer: `{"error": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(token_matches(b"s3cret", b"s3cret"));
        assert!(!token_matches(b"s3cre", b"s3cret"));
        assert!(!token_matches(b"s3cret!", b"s3cret"));
        assert!(!token_matches(b"S3cret", b"s3cret"));
        assert!(!token_matches(b"", b"s3cret"));
        assert!(token_matches(b"", b""));
    }

    #[test]
    fn orders_are_tagged() {
        let stop = Order::Stop {
            run_id: "abc".into(),
        };
        let json = serde_json::to_string(&stop).unwrap();
        assert_eq!(json, r#"{"order":"stop","run_id":"abc"}"#);
        assert_eq!(serde_json::from_str::<Order>(&json).unwrap(), stop);
    }

    #[test]
    fn live_figures_round_trip_and_refuse_impossible_times() {
        let figures = LiveFigures {
            elapsed_s: 3.0,
            span_s: 1.0,
            duration_s: Some(10.0),
            open: false,
            target: 5.0,
            users: 5,
            requests: 10,
            failures: 1,
            dropped: 0,
            started: 4,
            rps: 3.0,
            p95_ms: 7.0,
            cpu: Some(0.5),
        };
        let progress = figures.to_progress().unwrap();
        assert_eq!(LiveFigures::from(&progress), figures);
        let bad = LiveFigures {
            elapsed_s: -1.0,
            ..figures
        };
        assert!(bad.to_progress().is_none());
    }
}
