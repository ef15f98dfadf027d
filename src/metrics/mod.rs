//! Counting what happened: per-step HdrHistograms and counters.
//!
//! Each generator thread owns a [`Snapshot`] and records into it without
//! locks; once a second it hands the interval's snapshot to the collector,
//! which merges it into the run totals and the per-second series. A
//! `Snapshot` merges losslessly (histograms add bucket by bucket), so the
//! same type serves a local thread today and a remote worker later.
//! Memory is bounded: histograms have a fixed precision (3 significant
//! digits, microseconds) and distinct failure messages are capped per step.

pub mod live;
pub mod summary;
pub mod wire;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use self::summary::{FailureEntry, Latency, McpSessions, StepStats};

/// Distinct failure messages kept per step; beyond this they are counted
/// under their kind only, so a target that puts a request id in every error
/// cannot grow memory without bound.
const MAX_FAILURE_MESSAGES: usize = 64;
const SIGNIFICANT_DIGITS: u8 = 3;
/// Where failures beyond the distinct-message cap are counted.
const OTHER_MESSAGES: &str = "(other messages of this kind)";
/// Latencies are clamped to one hour, which bounds a histogram's size even
/// for a request that hangs longer than any timeout should allow.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Why a request failed. Every failed request has exactly one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The connection was refused (nothing listens on the port).
    Refused,
    /// Another failure to connect (unreachable, DNS, handshake).
    Connect,
    /// The connect or request timeout elapsed.
    Timeout,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// The TLS handshake failed.
    Tls,
    /// The peer did not speak valid HTTP.
    Protocol,
    /// The response body broke off or was malformed.
    Body,
    /// The status code was not one the step expects.
    Status,
    /// A body or JSON check, or an extraction, failed.
    Check,
    /// A template could not be rendered.
    Template,
    /// Still in flight when the run stopped and the grace period ran out.
    Aborted,
    /// An MCP server answered with a JSON-RPC `error` object.
    JsonRpc,
    /// An MCP tool answered with a result marked `isError: true`.
    ToolError,
    /// An MCP server no longer knew the session (it answered 404); the
    /// user's next MCP step opens a new one.
    Session,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::Refused,
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Tls,
        ErrorKind::Protocol,
        ErrorKind::Body,
        ErrorKind::Status,
        ErrorKind::Check,
        ErrorKind::Template,
        ErrorKind::Aborted,
        ErrorKind::JsonRpc,
        ErrorKind::ToolError,
        ErrorKind::Session,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Body => "body",
            ErrorKind::Status => "status",
            ErrorKind::Check => "check",
            ErrorKind::Template => "template",
            ErrorKind::Aborted => "aborted",
            ErrorKind::JsonRpc => "jsonrpc",
            ErrorKind::ToolError => "tool_error",
            ErrorKind::Session => "session",
        }
    }
}

/// What is recorded of one request: its timings, what came back (the
/// status and bytes, when an answer came) and its failure, if any. A user
/// makes one from the engine's answer, or from a request still in flight
/// when the run stops.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index of the step's metric (see `Plan::metrics`).
    pub metric: usize,
    /// What the user waited, in microseconds: from the intended send time
    /// in the open model, from the actual send otherwise.
    pub latency_us: u64,
    /// From the actual send, in microseconds.
    pub service_us: u64,
    pub status: Option<u16>,
    pub failure: Option<(ErrorKind, String)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub body_bytes: u64,
}

#[derive(Debug, Clone)]
struct FailureCount {
    count: u64,
    first_seen_s: u64,
    last_seen_s: u64,
}

/// Counters and histogram of one step.
#[derive(Debug, Clone)]
pub struct StepRecorder {
    latency: Histogram<u64>,
    /// Service time, kept apart only in the open model, where latency
    /// counts from the intended instant.
    service: Option<Histogram<u64>>,
    /// Time to the first event of an event-stream answer (MCP steps);
    /// made on the first such answer, so other rows carry none.
    first_event: Option<Histogram<u64>>,
    requests: u64,
    failures: u64,
    bytes_in: u64,
    bytes_out: u64,
    body_bytes: u64,
    status: BTreeMap<u16, u64>,
    errors: [u64; ErrorKind::ALL.len()],
    /// Ordered, so a merge meets messages in the same order wherever the
    /// recorder came from (a thread, or a worker over the wire), and the
    /// cap keeps the same messages apart.
    messages: BTreeMap<(ErrorKind, String), FailureCount>,
}

impl StepRecorder {
    pub fn new(separate_service_time: bool) -> Self {
        StepRecorder {
            latency: new_histogram(),
            service: separate_service_time.then(new_histogram),
            first_event: None,
            requests: 0,
            failures: 0,
            bytes_in: 0,
            bytes_out: 0,
            body_bytes: 0,
            status: BTreeMap::new(),
            errors: [0; ErrorKind::ALL.len()],
            messages: BTreeMap::new(),
        }
    }

    fn record(&mut self, s: &Sample, at_s: u64) {
        self.requests += 1;
        record_us(&mut self.latency, s.latency_us);
        if let Some(service) = &mut self.service {
            record_us(service, s.service_us);
        }
        self.bytes_in += s.bytes_in;
        self.bytes_out += s.bytes_out;
        self.body_bytes += s.body_bytes;
        if let Some(code) = s.status {
            *self.status.entry(code).or_default() += 1;
        }
        if let Some((kind, message)) = &s.failure {
            self.failures += 1;
            self.errors[*kind as usize] += 1;
            let seen = FailureCount {
                count: 1,
                first_seen_s: at_s,
                last_seen_s: at_s,
            };
            self.add_failure(*kind, message, &seen);
        }
    }

    /// Records the time from a request's send to the first event of its
    /// event-stream answer (the request itself is recorded by `record`).
    fn record_first_event(&mut self, us: u64) {
        record_us(self.first_event.get_or_insert_with(new_histogram), us);
    }

    /// Counts failures under their message, or, once a step has
    /// [`MAX_FAILURE_MESSAGES`] distinct ones, under their kind alone. Both
    /// recording and merging go through here, so the cap holds for the
    /// run's totals too, however many seconds and threads feed them.
    fn add_failure(&mut self, kind: ErrorKind, message: &str, seen: &FailureCount) {
        let key = (kind, message.to_string());
        let key = if self.messages.contains_key(&key) || self.messages.len() < MAX_FAILURE_MESSAGES
        {
            key
        } else {
            (kind, OTHER_MESSAGES.to_string())
        };
        match self.messages.get_mut(&key) {
            Some(mine) => {
                mine.count += seen.count;
                mine.first_seen_s = mine.first_seen_s.min(seen.first_seen_s);
                mine.last_seen_s = mine.last_seen_s.max(seen.last_seen_s);
            }
            None => {
                self.messages.insert(key, seen.clone());
            }
        }
    }
}

/// Records microseconds, growing the histogram as needed (`saturating_record`
/// would clamp to its current range instead).
fn record_us(h: &mut Histogram<u64>, us: u64) {
    let us = us.clamp(1, MAX_LATENCY_US);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// An auto-resizing histogram: it starts small and grows only to the range
/// of values actually seen.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is a valid precision")
}

impl StepRecorder {
    pub fn merge(&mut self, other: &StepRecorder) {
        self.latency
            .add(&other.latency)
            .expect("auto-resizing histograms always merge");
        match (&mut self.service, &other.service) {
            (Some(mine), Some(theirs)) => mine
                .add(theirs)
                .expect("auto-resizing histograms always merge"),
            (None, Some(theirs)) => self.service = Some(theirs.clone()),
            _ => {}
        }
        if let Some(theirs) = &other.first_event {
            match &mut self.first_event {
                Some(mine) => mine
                    .add(theirs)
                    .expect("auto-resizing histograms always merge"),
                None => self.first_event = Some(theirs.clone()),
            }
        }
        self.requests += other.requests;
        self.failures += other.failures;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.body_bytes += other.body_bytes;
        for (code, n) in &other.status {
            *self.status.entry(*code).or_default() += n;
        }
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        for ((kind, message), c) in &other.messages {
            self.add_failure(*kind, message, c);
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn failures(&self) -> u64 {
        self.failures
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Service time; the latency histogram itself in the closed model.
    pub fn service_histogram(&self) -> &Histogram<u64> {
        self.service.as_ref().unwrap_or(&self.latency)
    }

    /// Summarizes this recorder. `extra_percentiles` adds percentiles that
    /// thresholds ask for beyond the standard set.
    pub fn stats(
        &self,
        name: &str,
        method: Option<String>,
        elapsed_s: f64,
        extra_percentiles: &[f64],
    ) -> StepStats {
        let latency = latency_stats(&self.latency, extra_percentiles);
        let service_time = match &self.service {
            Some(h) => latency_stats(h, extra_percentiles),
            None => latency.clone(),
        };
        StepStats {
            name: name.to_string(),
            method,
            requests: self.requests,
            failures: self.failures,
            error_rate: ratio(self.failures, self.requests),
            rps: if elapsed_s > 0.0 {
                self.requests as f64 / elapsed_s
            } else {
                0.0
            },
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            body_bytes: self.body_bytes,
            service_time_ms: service_time,
            first_event_ms: self
                .first_event
                .as_ref()
                .map(|h| latency_stats(h, extra_percentiles)),
            latency_ms: latency,
            status_codes: self
                .status
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            errors: ErrorKind::ALL
                .iter()
                .filter(|k| self.errors[**k as usize] > 0)
                .map(|k| (k.as_str().to_string(), self.errors[*k as usize]))
                .collect(),
        }
    }

    pub fn failure_entries(&self, step: &str, method: &str) -> Vec<FailureEntry> {
        self.messages
            .iter()
            .map(|((kind, message), c)| FailureEntry {
                step: step.to_string(),
                method: method.to_string(),
                kind: kind.as_str().to_string(),
                message: message.clone(),
                count: c.count,
                first_seen_s: c.first_seen_s,
                last_seen_s: c.last_seen_s,
            })
            .collect()
    }
}

/// The percentiles every summary carries (Locust's set, so its CSV can be
/// written from a summary alone).
pub const STANDARD_PERCENTILES: [f64; 10] =
    [50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99];

/// The standard latency statistics of a histogram in a fixed order, in
/// milliseconds: `min`, `mean`, `max`, then [`STANDARD_PERCENTILES`]. A
/// compact form for values kept in bulk (the per-second series); `None`
/// for an empty histogram.
pub type FixedLatency = Option<[f64; 3 + STANDARD_PERCENTILES.len()]>;

pub fn fixed_latency(h: &Histogram<u64>) -> FixedLatency {
    if h.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let mut out = [0.0; 3 + STANDARD_PERCENTILES.len()];
    out[0] = ms(h.min());
    out[1] = h.mean() / 1000.0;
    out[2] = ms(h.max());
    for (slot, p) in out[3..].iter_mut().zip(STANDARD_PERCENTILES) {
        *slot = ms(h.value_at_quantile(p / 100.0));
    }
    Some(out)
}

/// Expands [`FixedLatency`] into the summary's map form.
pub fn expand_latency(fixed: &FixedLatency) -> Latency {
    let mut map = BTreeMap::new();
    if let Some(values) = fixed {
        let keys = ["min", "mean", "max"]
            .map(str::to_string)
            .into_iter()
            .chain(STANDARD_PERCENTILES.iter().map(|p| Latency::key(*p)));
        map.extend(keys.zip(values.iter().copied()));
    }
    Latency(map)
}

/// Turns a microsecond histogram into millisecond statistics.
pub fn latency_stats(h: &Histogram<u64>, extra_percentiles: &[f64]) -> Latency {
    let mut latency = expand_latency(&fixed_latency(h));
    if !h.is_empty() {
        for p in extra_percentiles.iter().filter(|p| **p < 100.0) {
            let value = h.value_at_quantile(p / 100.0) as f64 / 1000.0;
            latency.0.insert(Latency::key(*p), value);
        }
    }
    latency
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Everything recorded by one thread (or worker) over some interval, one
/// [`StepRecorder`] per step metric.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub steps: Vec<StepRecorder>,
    /// Flow iterations completed (every step attempted and passed).
    pub iterations: u64,
    /// Flow iterations started.
    pub started: u64,
    /// Open model: arrivals that found no free slot and were not run.
    pub dropped: u64,
    /// Users active (busy, in the open model) when the snapshot was taken.
    pub active_users: u64,
    /// MCP sessions opened and ended.
    pub mcp_sessions: McpSessions,
    open: bool,
}

impl Snapshot {
    /// `open` keeps service time apart from latency (the open model).
    pub fn new(metrics: usize, open: bool) -> Self {
        Snapshot {
            steps: (0..metrics).map(|_| StepRecorder::new(open)).collect(),
            iterations: 0,
            started: 0,
            dropped: 0,
            active_users: 0,
            mcp_sessions: McpSessions::default(),
            open,
        }
    }

    pub fn record(&mut self, sample: &Sample, at_s: u64) {
        self.steps[sample.metric].record(sample, at_s);
    }

    /// Records the time to the first event of a stream answering a
    /// request of row `metric` (recorded apart, with `record`).
    pub fn record_first_event(&mut self, metric: usize, us: u64) {
        self.steps[metric].record_first_event(us);
    }

    pub fn merge(&mut self, other: &Snapshot) {
        for (mine, theirs) in self.steps.iter_mut().zip(&other.steps) {
            mine.merge(theirs);
        }
        self.iterations += other.iterations;
        self.started += other.started;
        self.dropped += other.dropped;
        self.mcp_sessions.merge(&other.mcp_sessions);
    }

    /// All steps folded into one recorder.
    pub fn total(&self) -> StepRecorder {
        let mut total = StepRecorder::new(self.open);
        for s in &self.steps {
            total.merge(s);
        }
        total
    }

    /// Hands over what was recorded so far and starts afresh.
    pub fn take(&mut self) -> Snapshot {
        let mut fresh = Snapshot::new(self.steps.len(), self.open);
        fresh.active_users = self.active_users;
        std::mem::replace(self, fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(metric: usize, latency_us: u64, failure: Option<ErrorKind>) -> Sample {
        Sample {
            metric,
            latency_us,
            service_us: latency_us,
            status: Some(if failure.is_some() { 500 } else { 200 }),
            failure: failure.map(|k| (k, "boom".to_string())),
            bytes_in: 10,
            bytes_out: 5,
            body_bytes: 3,
        }
    }

    #[test]
    fn merging_snapshots_keeps_every_count() {
        let mut a = Snapshot::new(2, false);
        let mut b = Snapshot::new(2, false);
        for i in 0..100 {
            a.record(&sample(0, 1000 + i, None), 0);
        }
        for _ in 0..10 {
            b.record(&sample(1, 50_000, Some(ErrorKind::Status)), 1);
        }
        a.merge(&b);
        let total = a.total();
        assert_eq!(total.requests(), 110);
        assert_eq!(total.failures(), 10);
        let stats = total.stats("total", None, 10.0, &[]);
        assert_eq!(stats.rps, 11.0);
        assert_eq!(stats.errors["status"], 10);
        assert_eq!(stats.status_codes["200"], 100);
        assert!((stats.latency_ms.get("max") - 50.0).abs() < 0.1);
        assert!((stats.latency_ms.get("p50") - 1.05).abs() < 0.01);
    }

    #[test]
    fn failure_messages_are_capped() {
        let mut s = Snapshot::new(1, false);
        for i in 0..1000 {
            let mut x = sample(0, 10, Some(ErrorKind::Status));
            x.failure = Some((ErrorKind::Status, format!("id {i}")));
            s.record(&x, 0);
        }
        let entries = s.steps[0].failure_entries("a", "GET");
        assert_eq!(entries.len(), MAX_FAILURE_MESSAGES + 1);
        assert_eq!(entries.iter().map(|e| e.count).sum::<u64>(), 1000);
    }

    #[test]
    fn the_message_cap_holds_across_merges() {
        let mut total = Snapshot::new(1, false);
        for second in 0..50 {
            let mut s = Snapshot::new(1, false);
            for i in 0..10 {
                let mut x = sample(0, 10, Some(ErrorKind::Status));
                x.failure = Some((ErrorKind::Status, format!("id {second}-{i}")));
                s.record(&x, second);
            }
            total.merge(&s);
        }
        let entries = total.steps[0].failure_entries("a", "GET");
        assert_eq!(entries.len(), MAX_FAILURE_MESSAGES + 1);
        assert_eq!(entries.iter().map(|e| e.count).sum::<u64>(), 500);
    }

    #[test]
    fn extra_percentiles_are_added() {
        let mut s = Snapshot::new(1, false);
        s.record(&sample(0, 10, None), 0);
        let stats = s.total().stats("t", None, 1.0, &[97.0]);
        assert!(stats.latency_ms.percentile(97.0).is_some());
    }
}
