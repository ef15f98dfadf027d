//! Merges snapshots from several sources into run totals and a
//! per-second series, and builds the final [`RunSummary`].
//!
//! A source is anything that records: a generator thread of this process,
//! or (in a distributed run) a remote worker. Sources may join late and
//! leave early. A second of the series closes when every live source has
//! reported it, or when it is `close_after` old, so a source that stops
//! reporting (a lost worker, a stuck thread) never stalls the series. A
//! snapshot that arrives for a second already closed still counts: it is
//! merged into the totals and into the next second to close, so the series
//! adds up to the totals.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::share::Timeline;
use crate::metrics::live::{LiveStats, Progress};
use crate::metrics::summary::{
    Cumulative, FailureEntry, RunInfo, RunSummary, SeriesPoint, ThresholdResult, SCHEMA_VERSION,
};
use crate::metrics::{expand_latency, fixed_latency, FixedLatency, Snapshot, StepRecorder};
use crate::plan::threshold::{Aggregate, Metric};
use crate::plan::{MetricInfo, Plan};
use crate::schedule::Shape;

/// Who recorded a snapshot: a generator thread's number, or a worker's.
pub type SourceId = u64;

/// One second of a run, as recorded by one source or merged from all.
#[derive(Debug, Clone)]
pub struct IntervalSnapshot {
    /// The second ends `second` seconds after the run's (agreed) start.
    pub second: u64,
    pub snapshot: Snapshot,
}

pub struct Collector {
    totals: Snapshot,
    /// Every interval already turned into a series point, merged in order,
    /// so each point's running totals are exact.
    so_far: StepRecorder,
    /// Interval snapshots of seconds not yet closed: merged snapshot and
    /// the sum of the sources' active users.
    pending: BTreeMap<u64, (Snapshot, u64)>,
    /// The latest second each live source has reported.
    sources: BTreeMap<SourceId, u64>,
    /// Every second up to this one is closed.
    closed: u64,
    close_after: Duration,
    /// Closed seconds' merged snapshots, kept for [`Collector::take_closed`].
    keep_closed: bool,
    closed_snapshots: Vec<IntervalSnapshot>,
    series: Vec<Point>,
    shape: Shape,
    /// The share of the shape this process runs, for the live target.
    fraction: f64,
    open: bool,
    duration: Option<Duration>,
    /// Step names and methods, for live statistics.
    metrics: Vec<MetricInfo>,
    live_stats: bool,
    start: Instant,
}

impl Collector {
    /// `close_after`: how long a second waits for a silent source.
    pub fn new(plan: &Plan, live_stats: bool, close_after: Duration) -> Self {
        let open = plan.load.is_open();
        Collector {
            totals: Snapshot::new(plan.metrics.len(), open),
            so_far: StepRecorder::new(open),
            pending: BTreeMap::new(),
            sources: BTreeMap::new(),
            closed: 0,
            close_after,
            keep_closed: false,
            closed_snapshots: Vec::new(),
            series: Vec::new(),
            shape: plan.load.shape.clone(),
            fraction: 1.0,
            open,
            duration: plan.load.duration,
            metrics: plan.metrics.clone(),
            live_stats,
            start: Instant::now(),
        }
    }

    /// Counts from `start` (the run's agreed start) for live statistics.
    pub fn with_start(mut self, start: Instant) -> Self {
        self.start = start;
        self
    }

    /// Keeps each closed second's merged snapshot for [`Collector::take_closed`].
    pub fn keep_closed_snapshots(&mut self) {
        self.keep_closed = true;
    }

    /// The share of the pattern this process runs, for the live target.
    pub fn set_fraction(&mut self, fraction: f64) {
        self.fraction = fraction;
    }

    /// A source starts reporting; seconds now wait for it too.
    pub fn join(&mut self, source: SourceId) {
        let closed = self.closed;
        self.sources.entry(source).or_insert(closed);
    }

    /// A source is done or gone; seconds no longer wait for it. Returns
    /// the indexes of series points this completed.
    pub fn leave(&mut self, source: SourceId) -> Vec<usize> {
        self.sources.remove(&source);
        self.flush(self.complete())
    }

    /// Takes a source's snapshot of the second ending at `second`; returns
    /// the indexes of series points it completed. An unknown source joins.
    pub fn add(&mut self, source: SourceId, second: u64, snapshot: Snapshot) -> Vec<usize> {
        self.totals.merge(&snapshot);
        let late = second <= self.closed;
        let open = self.open;
        let entry = self
            .pending
            .entry(if late { self.closed + 1 } else { second })
            .or_insert_with(|| (Snapshot::new(snapshot.steps.len(), open), 0));
        entry.0.merge(&snapshot);
        if !late {
            entry.1 += snapshot.active_users;
        }
        let reported = self.sources.entry(source).or_insert(0);
        *reported = (*reported).max(second);
        self.flush(self.complete())
    }

    /// Closes every second that has waited `close_after` for a silent
    /// source; `now` is the time since the run's start.
    pub fn tick(&mut self, now: Duration) -> Vec<usize> {
        let due = now.saturating_sub(self.close_after).as_secs();
        self.flush(due.max(self.complete()))
    }

    /// Every second up to this one has been reported by every live source.
    fn complete(&self) -> u64 {
        self.sources.values().copied().min().unwrap_or(u64::MAX)
    }

    /// The merged snapshot of every second closed since the last call.
    pub fn take_closed(&mut self) -> Vec<IntervalSnapshot> {
        std::mem::take(&mut self.closed_snapshots)
    }

    /// What the pattern asked for in the second ending at `t`: the user
    /// count at its end (closed), or the mean rate over it (open).
    fn target(&self, t: u64) -> f64 {
        let end = Duration::from_secs(t);
        if self.open {
            (self.shape.integral(end)
                - self
                    .shape
                    .integral(end.saturating_sub(Duration::from_secs(1))))
                * self.fraction
        } else {
            (self
                .shape
                .value_at(end.saturating_sub(Duration::from_nanos(1)))
                * self.fraction)
                .round()
        }
    }

    /// Turns every pending second up to `upto` into a series point.
    fn flush(&mut self, upto: u64) -> Vec<usize> {
        let mut done = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let (second, (snapshot, users)) = entry.remove_entry();
            self.closed = self.closed.max(second);
            let point = self.point(second, &snapshot, users);
            self.series.push(point);
            if self.keep_closed {
                self.closed_snapshots
                    .push(IntervalSnapshot { second, snapshot });
            }
            done.push(self.series.len() - 1);
        }
        if upto != u64::MAX {
            self.closed = self.closed.max(upto);
        }
        done
    }

    fn point(&mut self, second: u64, snapshot: &Snapshot, users: u64) -> Point {
        let total = snapshot.total();
        self.so_far.merge(&total);
        Point {
            t: second,
            target: self.target(second),
            users,
            requests: total.requests(),
            failures: total.failures(),
            started: snapshot.started,
            dropped: snapshot.dropped,
            rps: total.requests() as f64,
            bytes_in: total.bytes_in(),
            latency: fixed_latency(total.histogram()),
            service_time: fixed_latency(total.service_histogram()),
            so_far_requests: self.so_far.requests(),
            so_far_failures: self.so_far.failures(),
            so_far_body_bytes: self.so_far.body_bytes(),
            so_far_latency: fixed_latency(self.so_far.histogram()),
        }
    }

    pub fn progress(&self, point: usize) -> Progress {
        let p = &self.series[point];
        let total = self.totals.total();
        Progress {
            elapsed: Duration::from_secs(p.t),
            duration: self.duration,
            open: self.open,
            target: p.target,
            users: p.users,
            requests: total.requests(),
            failures: total.failures(),
            dropped: self.totals.dropped,
            started: p.started,
            rps: p.rps,
            p95_ms: expand_latency(&p.latency).get("p95"),
            live: self.live_stats.then(|| self.live()),
        }
    }

    fn live(&self) -> LiveStats {
        let elapsed = self.start.elapsed().as_secs_f64();
        LiveStats {
            totals: self.totals.total().stats("Aggregated", None, elapsed, &[]),
            steps: self
                .metrics
                .iter()
                .zip(&self.totals.steps)
                .map(|(m, rec)| rec.stats(&m.name, m.method.clone(), elapsed, &[]))
                .collect(),
            iterations: self.totals.iterations,
            dropped: self.totals.dropped,
        }
    }

    /// The summary of everything collected. `shares` is the load slice
    /// this process ran over time, for the open model's planned rate.
    pub fn finish(mut self, plan: &Plan, info: RunInfo, shares: &Timeline) -> RunSummary {
        self.flush(u64::MAX);
        let elapsed = info.elapsed_s;
        let interrupted = info.interrupted;
        // The last interval is usually shorter than a second.
        if let Some(last) = self.series.last_mut() {
            let span = elapsed - (last.t.saturating_sub(1)) as f64;
            if span > 0.0 && span < 1.0 {
                last.rps = last.requests as f64 / span;
            }
        }
        let extra = |metric: Option<&str>| -> Vec<f64> {
            plan.thresholds
                .iter()
                .filter(|t| match (&t.metric, metric) {
                    (Metric::Step(s), Some(m)) => s == m,
                    (Metric::Step(_), None) | (_, Some(_)) => false,
                    (_, None) => true,
                })
                .filter_map(|t| match t.aggregate {
                    Aggregate::Percentile(p) => Some(p),
                    _ => None,
                })
                .collect()
        };
        let totals = self
            .totals
            .total()
            .stats("Aggregated", None, elapsed, &extra(None));
        let mut failures: Vec<FailureEntry> = Vec::new();
        let steps = plan
            .metrics
            .iter()
            .zip(&self.totals.steps)
            .map(|(m, rec)| {
                failures.extend(rec.failure_entries(&m.name, m.method.as_deref().unwrap_or("")));
                rec.stats(&m.name, m.method.clone(), elapsed, &extra(Some(&m.name)))
            })
            .collect();
        failures.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.step.cmp(&b.step)));
        let (target_rate, achieved_rate) = if self.open {
            // Over the pattern's duration; over what ran of it when
            // interrupted. (A finished run may end a little before its
            // duration: once the last arrival is done, there is no more.)
            let span = match self.duration {
                Some(d) if !interrupted => d.as_secs_f64(),
                Some(d) => d.as_secs_f64().min(elapsed),
                None => elapsed,
            }
            .max(1e-9);
            let planned = shares.planned(&self.shape, Duration::from_secs_f64(span)) / span;
            (Some(planned), Some(self.totals.started as f64 / span))
        } else {
            (None, None)
        };
        let mut summary = RunSummary {
            schema_version: SCHEMA_VERSION,
            loadctl_version: env!("CARGO_PKG_VERSION").to_string(),
            run: info,
            totals,
            steps,
            iterations: self.totals.iterations,
            dropped: self.totals.dropped,
            target_rate,
            achieved_rate,
            thresholds: Vec::new(),
            thresholds_passed: true,
            series: self.series.iter().map(Point::expand).collect(),
            failures,
            mcp_sessions: self.totals.mcp_sessions,
        };
        summary.thresholds = plan
            .thresholds
            .iter()
            .map(|t| {
                let (observed, passed) = t.check(&summary);
                ThresholdResult {
                    metric: t.metric_name.clone(),
                    expression: t.expression.clone(),
                    observed,
                    unit: t.unit(),
                    passed,
                }
            })
            .collect();
        summary.thresholds_passed = summary.thresholds.iter().all(|t| t.passed);
        summary
    }
}

/// A series point as kept during the run: latency as fixed arrays rather
/// than maps (about 400 bytes a second instead of about 3 KB), so even a
/// long run's series stays small. Expanded into a [`SeriesPoint`] at the end.
struct Point {
    t: u64,
    target: f64,
    users: u64,
    requests: u64,
    failures: u64,
    started: u64,
    dropped: u64,
    rps: f64,
    bytes_in: u64,
    latency: FixedLatency,
    service_time: FixedLatency,
    so_far_requests: u64,
    so_far_failures: u64,
    so_far_body_bytes: u64,
    so_far_latency: FixedLatency,
}

impl Point {
    fn expand(&self) -> SeriesPoint {
        SeriesPoint {
            t: self.t,
            target: self.target,
            users: self.users,
            requests: self.requests,
            failures: self.failures,
            started: self.started,
            dropped: self.dropped,
            rps: self.rps,
            bytes_in: self.bytes_in,
            latency_ms: expand_latency(&self.latency),
            service_time_ms: expand_latency(&self.service_time),
            cumulative: Cumulative {
                requests: self.so_far_requests,
                failures: self.so_far_failures,
                body_bytes: self.so_far_body_bytes,
                latency_ms: expand_latency(&self.so_far_latency),
            },
        }
    }
}
