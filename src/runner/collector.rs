//! Merges the generator threads' snapshots into run totals and a
//! per-second series, and builds the final [`RunSummary`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{LiveStats, Progress, ShardMsg};
use crate::metrics::summary::{
    Cumulative, FailureEntry, RunInfo, RunSummary, SeriesPoint, ThresholdResult, SCHEMA_VERSION,
};
use crate::metrics::{expand_latency, fixed_latency, FixedLatency, Snapshot, StepRecorder};
use crate::plan::threshold::{Aggregate, Metric};
use crate::plan::{MetricInfo, Plan};
use crate::schedule::Shape;

pub struct Collector {
    totals: Snapshot,
    /// Every interval already turned into a series point, merged in order,
    /// so each point's running totals are exact.
    so_far: StepRecorder,
    /// Interval snapshots not yet reported by every thread, by second.
    pending: BTreeMap<u64, (Snapshot, u64)>,
    /// The latest second each thread has reported (u64::MAX when done).
    reported: Vec<u64>,
    series: Vec<Point>,
    shape: Shape,
    open: bool,
    duration: Option<Duration>,
    /// Step names and methods, for live statistics.
    metrics: Vec<MetricInfo>,
    live_stats: bool,
    start: Instant,
}

impl Collector {
    pub fn new(plan: &Plan, threads: usize, live_stats: bool) -> Self {
        let open = plan.load.is_open();
        Collector {
            totals: Snapshot::new(plan.metrics.len(), open),
            so_far: StepRecorder::new(open),
            pending: BTreeMap::new(),
            reported: vec![0; threads],
            series: Vec::new(),
            shape: plan.load.shape.clone(),
            open,
            duration: plan.load.duration,
            metrics: plan.metrics.clone(),
            live_stats,
            start: Instant::now(),
        }
    }

    /// Takes a message; returns the indexes of series points it completed.
    pub fn add(&mut self, msg: ShardMsg) -> Vec<usize> {
        match msg {
            ShardMsg::Interval {
                shard,
                second,
                snapshot,
            } => {
                self.totals.merge(&snapshot);
                let open = self.open;
                let entry = self
                    .pending
                    .entry(second)
                    .or_insert_with(|| (Snapshot::new(snapshot.steps.len(), open), 0));
                entry.0.merge(&snapshot);
                entry.1 += snapshot.active_users;
                self.reported[shard] = self.reported[shard].max(second);
            }
            ShardMsg::Done { shard } => self.reported[shard] = u64::MAX,
        }
        let complete = self.reported.iter().copied().min().unwrap_or(u64::MAX);
        self.flush(complete)
    }

    /// What the pattern asked for in the second ending at `t`: the user
    /// count at its end (closed), or the mean rate over it (open).
    fn target(&self, t: u64) -> f64 {
        let end = Duration::from_secs(t);
        if self.open {
            self.shape.integral(end)
                - self
                    .shape
                    .integral(end.saturating_sub(Duration::from_secs(1)))
        } else {
            self.shape
                .value_at(end.saturating_sub(Duration::from_nanos(1)))
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
            let total = snapshot.total();
            self.so_far.merge(&total);
            self.series.push(Point {
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
            });
            done.push(self.series.len() - 1);
        }
        done
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

    pub fn finish(mut self, plan: &Plan, info: RunInfo) -> RunSummary {
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
            let planned = self.shape.integral(Duration::from_secs_f64(span)) / span;
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
