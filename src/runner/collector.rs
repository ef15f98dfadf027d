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
//!
//! The series ends when the last source leaves (or at
//! [`Collector::finish`]): the stretch since the last whole second is
//! folded into the second before it when it is shorter than
//! [`FOLD_BELOW_S`], and otherwise kept as a point of its own real length
//! (see [`SeriesPoint`]). Live progress, the summary's series, and so every
//! report drawn from it, follow this one rule.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::share::Timeline;
use crate::metrics::live::{LiveStats, Progress};
use crate::metrics::summary::{
    Cumulative, FailureEntry, RunInfo, RunSummary, SeriesPoint, ThresholdResult, FOLD_BELOW_S,
    SCHEMA_VERSION,
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
    /// The merged snapshot behind the last series point, so a short
    /// final stretch can be folded into it.
    last_closed: Option<Snapshot>,
    /// The series has ended (see [`Collector::end`]).
    ended: bool,
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
            last_closed: None,
            ended: false,
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
    /// the indexes of series points this completed. When it was the last
    /// source, the series ends now ([`Collector::end`]).
    pub fn leave(&mut self, source: SourceId) -> Vec<usize> {
        let now = self.start.elapsed();
        self.leave_at(source, now)
    }

    /// [`Collector::leave`] at `now`, the time since the run's start.
    pub fn leave_at(&mut self, source: SourceId, now: Duration) -> Vec<usize> {
        self.sources.remove(&source);
        if self.sources.is_empty() {
            return self.end(now);
        }
        self.flush(self.complete())
    }

    /// The run is over at `now` (since its start): closes every pending
    /// second. The last one ends at `now`, not on a whole second: shorter
    /// than [`FOLD_BELOW_S`], it is folded into the point before it (which
    /// is then not published again: its second was already shown live);
    /// otherwise it is a point of its own real length. Returns the
    /// indexes of new series points.
    pub fn end(&mut self, now: Duration) -> Vec<usize> {
        self.ended = true;
        let Some(&tail) = self.pending.keys().next_back() else {
            return Vec::new();
        };
        let mut done = self.flush(tail.saturating_sub(1));
        let Some((second, (snapshot, users))) = self.pending.pop_first() else {
            return done;
        };
        self.closed = self.closed.max(second);
        // Published as a generator thread labels its final snapshot: with
        // the second before it, so whoever merges it (a coordinator's
        // collector) never takes it for a whole second.
        self.keep(second.saturating_sub(1), &snapshot, users);
        let span = span_since(second, now);
        let folds_into_last = self.series.last().is_some_and(|p| p.t + 1 == second);
        match self.last_closed.take() {
            Some(mut last) if span < FOLD_BELOW_S && folds_into_last => {
                let before = self.series.pop().expect("a closed snapshot has its point");
                let total = snapshot.total();
                self.so_far.merge(&total);
                last.merge(&snapshot);
                // A whole second and the stretch after it (never less, were
                // a source's clock a little ahead of this one).
                let span = span_since(before.t, now).max(1.0);
                let point = self.point(before.t, span, &last, &last.total(), before.users);
                self.series.push(point);
                self.last_closed = Some(last);
            }
            last => {
                self.last_closed = last;
                // A stretch that cannot have a length (a clock read before
                // its second began) counts as a whole second.
                let span = if span > 0.0 { span } else { 1.0 };
                done.push(self.close(second, span, snapshot, users));
            }
        }
        done
    }

    /// Takes a source's snapshot of the second ending at `second`; returns
    /// the indexes of series points it completed. A source that has not
    /// joined (or has left) is counted but not waited for.
    pub fn add(&mut self, source: SourceId, second: u64, snapshot: Snapshot) -> Vec<usize> {
        self.totals.merge(&snapshot);
        let late = second <= self.closed;
        let open = self.open;
        let entry = self
            .pending
            .entry(if late {
                self.closed.saturating_add(1)
            } else {
                second
            })
            .or_insert_with(|| (Snapshot::new(snapshot.steps.len(), open), 0));
        entry.0.merge(&snapshot);
        if !late {
            entry.1 += snapshot.active_users;
        }
        // Only sources that joined (and have not left) hold seconds back:
        // a straggler from a source that left still counts, but is waited
        // for no more.
        if let Some(reported) = self.sources.get_mut(&source) {
            *reported = (*reported).max(second);
        }
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
    /// The run's final stretch comes last, labelled (as a generator thread
    /// labels its final snapshot) with the second before it.
    pub fn take_closed(&mut self) -> Vec<IntervalSnapshot> {
        std::mem::take(&mut self.closed_snapshots)
    }

    /// What the pattern asked for in the interval from `t - 1` lasting
    /// `span_s`: the user count at its end (closed), or the mean rate over
    /// it (open). Nothing once the pattern's duration is over: what runs
    /// after it is in-flight work finishing.
    fn target(&self, t: u64, span_s: f64) -> f64 {
        let from = Duration::from_secs(t.saturating_sub(1));
        let to = from + Duration::from_secs_f64(span_s);
        let clip = |at: Duration| self.duration.map_or(at, |end| at.min(end));
        if self.open {
            (self.shape.integral(clip(to)) - self.shape.integral(clip(from))) / span_s
                * self.fraction
        } else if self.duration.is_some_and(|end| from >= end) {
            0.0
        } else {
            (self
                .shape
                .value_at(clip(to).saturating_sub(Duration::from_nanos(1)))
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
            self.keep(second, &snapshot, users);
            done.push(self.close(second, 1.0, snapshot, users));
        }
        if upto != u64::MAX {
            self.closed = self.closed.max(upto);
        }
        done
    }

    /// Turns a closed interval into the next series point; returns its index.
    fn close(&mut self, second: u64, span_s: f64, snapshot: Snapshot, users: u64) -> usize {
        let total = snapshot.total();
        self.so_far.merge(&total);
        let point = self.point(second, span_s, &snapshot, &total, users);
        self.series.push(point);
        self.last_closed = Some(snapshot);
        self.series.len() - 1
    }

    /// Keeps a closed interval's snapshot for [`Collector::take_closed`],
    /// when asked to, with the users of every source in it (merging
    /// snapshots does not add users up: the collector does, per second).
    fn keep(&mut self, second: u64, snapshot: &Snapshot, users: u64) {
        if self.keep_closed {
            let mut snapshot = snapshot.clone();
            snapshot.active_users = users;
            self.closed_snapshots
                .push(IntervalSnapshot { second, snapshot });
        }
    }

    /// A point from an interval's snapshot (and `total`, its steps folded
    /// into one), with everything merged into `so_far` up to it.
    fn point(
        &self,
        second: u64,
        span_s: f64,
        snapshot: &Snapshot,
        total: &StepRecorder,
        users: u64,
    ) -> Point {
        Point {
            t: second,
            span_s,
            target: self.target(second, span_s),
            users,
            requests: total.requests(),
            failures: total.failures(),
            started: snapshot.started,
            dropped: snapshot.dropped,
            rps: total.requests() as f64 / span_s,
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
            elapsed: Duration::from_secs_f64(p.t.saturating_sub(1) as f64 + p.span_s),
            span: Duration::from_secs_f64(p.span_s),
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
            cpu: None,
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
        let elapsed = info.elapsed_s;
        if !self.ended {
            self.end(Duration::from_secs_f64(elapsed.max(0.0)));
        }
        let interrupted = info.interrupted;
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
            warnings: Vec::new(),
            distribution: None,
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

/// Seconds from the start of the interval that ends (on the clock) at
/// second `t` to `now`, to the microsecond, as the clock reads no finer.
fn span_since(t: u64, now: Duration) -> f64 {
    let micros = now.as_micros() as i128 - i128::from(t.saturating_sub(1)) * 1_000_000;
    micros as f64 / 1e6
}

/// A series point as kept during the run: latency as fixed arrays rather
/// than maps (about 400 bytes a second instead of about 3 KB), so even a
/// long run's series stays small. Expanded into a [`SeriesPoint`] at the end.
struct Point {
    t: u64,
    span_s: f64,
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
            span_s: self.span_s,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{Diagnostics, Severity};
    use crate::metrics::{ErrorKind, Sample};
    use crate::plan::{Inputs, Overrides};
    use crate::runner::share::{ShareState, Slice};

    /// A one-step plan with `load` as its `[load]` table.
    fn plan(load: &str) -> Plan {
        let text = format!(
            "[target]\nbase_url = \"http://127.0.0.1:9\"\n[load]\n{load}\n\
             [[flow]]\n  [[flow.step]]\n  path = \"/\"\n"
        );
        let mut diags = Diagnostics::default();
        let scenario = crate::scenario::parse(&text, &mut diags).expect("valid TOML");
        let inputs = Inputs::for_cli(None, Severity::Error);
        crate::plan::compile(&scenario, None, &Overrides::default(), &inputs, &mut diags)
            .unwrap_or_else(|| panic!("invalid scenario: {:?}", diags.items()))
    }

    /// `requests` requests (every fourth one failed) and `started`
    /// iterations, with `users` busy at the end.
    fn snapshot(plan: &Plan, requests: u64, started: u64, users: u64) -> Snapshot {
        let mut s = Snapshot::new(plan.metrics.len(), plan.load.is_open());
        for i in 0..requests {
            let failure = (i % 4 == 3).then(|| (ErrorKind::Status, "500".to_string()));
            let sample = Sample {
                metric: 0,
                latency_us: 1000 + i,
                service_us: 1000 + i,
                status: Some(200),
                failure,
                bytes_in: 10,
                bytes_out: 10,
                body_bytes: 2,
            };
            s.record(&sample, 0);
        }
        s.started = started;
        s.active_users = users;
        s
    }

    fn finish(c: Collector, plan: &Plan, elapsed_s: f64) -> RunSummary {
        let info = RunInfo {
            elapsed_s,
            ..crate::metrics::summary::test_summary().run
        };
        let shares = ShareState::new(Slice::new(0.0, 1.0).unwrap());
        c.finish(plan, info, &shares.timeline())
    }

    /// Three whole seconds of 100 arrivals and 200 requests from one
    /// source, then its final snapshot (labelled, as a generator thread
    /// labels it, with the last second it reported).
    fn three_seconds_then(plan: &Plan, last: Snapshot) -> Collector {
        let mut c = Collector::new(plan, false, Duration::from_secs(3));
        c.join(0);
        for second in 1..=3 {
            let closed = c.add(0, second, snapshot(plan, 200, 100, 10));
            assert_eq!(closed, vec![second as usize - 1]);
        }
        assert!(
            c.add(0, 3, last).is_empty(),
            "a final snapshot closes no second by itself"
        );
        c
    }

    #[test]
    fn a_short_final_stretch_is_folded_into_the_second_before_it() {
        let plan = plan("model = \"open\"\nrate = 100\nduration = \"3s\"");
        let mut c = three_seconds_then(&plan, snapshot(&plan, 10, 0, 0));
        assert!(
            c.leave_at(0, Duration::from_millis(3050)).is_empty(),
            "no new point: the live view already showed second 3"
        );
        let s = finish(c, &plan, 3.06);
        assert_eq!(s.series.len(), 3);
        let last = s.series.last().unwrap();
        assert_eq!((last.t, last.span_s), (3, 1.05));
        assert_eq!(last.requests, 210);
        assert!((last.rps - 210.0 / 1.05).abs() < 1e-9, "{}", last.rps);
        assert_eq!(last.users, 10, "the users of the whole second");
        // Arrivals over the same 1.05 s as their target.
        assert!((last.per_second(last.started) - 100.0 / 1.05).abs() < 1e-9);
        assert!((last.target - 100.0 / 1.05).abs() < 1e-9, "{}", last.target);
        assert_eq!(last.cumulative.requests, s.totals.requests);
        assert_eq!(s.totals.requests, 610);
        assert!(!last.is_partial());
    }

    #[test]
    fn a_longer_final_stretch_is_a_partial_point_of_its_real_length() {
        let plan = plan("users = 10\nduration = \"5s\"");
        let mut c = three_seconds_then(&plan, snapshot(&plan, 120, 60, 0));
        // Interrupted at 3.6 s.
        assert_eq!(c.leave_at(0, Duration::from_millis(3600)), vec![3]);
        let live = c.progress(3);
        assert_eq!(live.elapsed, Duration::from_millis(3600));
        assert_eq!(live.span, Duration::from_millis(600));
        assert!(live.is_partial());
        assert!((live.rps - 200.0).abs() < 1e-9, "{}", live.rps);
        assert!((live.started_per_second() - 100.0).abs() < 1e-9);
        let s = finish(c, &plan, 3.61);
        let last = s.series.last().unwrap();
        assert_eq!((last.t, last.span_s), (4, 0.6));
        assert!(last.is_partial());
        assert!((last.rps - 200.0).abs() < 1e-9);
        assert!((last.failures_per_second() - 50.0).abs() < 1e-9);
        assert_eq!(last.target, 10.0, "the pattern still asked for 10 users");
        let points: u64 = s.series.iter().map(|p| p.requests).sum();
        assert_eq!(points, s.totals.requests);
    }

    #[test]
    fn the_target_is_nothing_once_the_pattern_is_over() {
        let plan = plan("model = \"open\"\nrate = 100\nduration = \"3s\"");
        // In-flight requests finish 0.4 s after the end of the pattern.
        let mut c = three_seconds_then(&plan, snapshot(&plan, 8, 0, 0));
        assert_eq!(c.leave_at(0, Duration::from_millis(3400)), vec![3]);
        let s = finish(c, &plan, 3.41);
        let last = s.series.last().unwrap();
        assert_eq!((last.t, last.span_s, last.target), (4, 0.4, 0.0));
        assert!((last.rps - 20.0).abs() < 1e-9);
    }

    #[test]
    fn closed_snapshots_merged_elsewhere_give_the_same_series() {
        let plan = plan("users = 10\nduration = \"5s\"");
        for end_ms in [3050, 3600] {
            let mut worker = Collector::new(&plan, false, Duration::from_secs(3));
            worker.keep_closed_snapshots();
            worker.join(0);
            for second in 1..=3 {
                worker.add(0, second, snapshot(&plan, 200, 100, 10));
            }
            worker.add(0, 3, snapshot(&plan, 30, 0, 0));
            worker.leave_at(0, Duration::from_millis(end_ms));
            let closed = worker.take_closed();
            let labels: Vec<u64> = closed.iter().map(|c| c.second).collect();
            assert_eq!(labels, [1, 2, 3, 3], "the final stretch after second 3");
            // A coordinator merging what the worker streamed.
            let mut coordinator = Collector::new(&plan, false, Duration::from_secs(3));
            coordinator.join(7);
            for c in closed {
                coordinator.add(7, c.second, c.snapshot);
            }
            coordinator.leave_at(7, Duration::from_millis(end_ms));
            let elapsed = end_ms as f64 / 1000.0;
            let (a, b) = (
                finish(worker, &plan, elapsed),
                finish(coordinator, &plan, elapsed),
            );
            // Users too: merging snapshots does not add them up, so the
            // streamed ones must carry each second's sum.
            let spans = |s: &RunSummary| -> Vec<(u64, f64, u64, u64)> {
                s.series
                    .iter()
                    .map(|p| (p.t, p.span_s, p.requests, p.users))
                    .collect()
            };
            assert_eq!(spans(&a), spans(&b), "ending at {end_ms} ms");
        }
    }

    #[test]
    fn a_run_shorter_than_the_fold_keeps_its_only_point() {
        let plan = plan("users = 1\niterations = 5");
        let mut c = Collector::new(&plan, false, Duration::from_secs(3));
        c.join(0);
        assert!(c.add(0, 0, snapshot(&plan, 5, 5, 0)).is_empty());
        assert_eq!(c.leave_at(0, Duration::from_millis(100)), vec![0]);
        let s = finish(c, &plan, 0.1);
        assert_eq!(s.series.len(), 1);
        assert_eq!((s.series[0].t, s.series[0].span_s), (1, 0.1));
        assert!((s.series[0].rps - 50.0).abs() < 1e-9);
    }
}
