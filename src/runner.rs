//! One run, end to end: a [`Plan`] in, a [`RunSummary`] out.
//!
//! [`run`] is the single entry point every front end calls (the CLI today;
//! the MCP server and the distributed worker next). It starts the demo
//! target when the plan asks for it, spreads the virtual users over
//! generator threads, collects their per-second snapshots, and decides
//! when to stop: at the end of the duration, when the iteration budget is
//! spent, or when `shutdown` fires (Ctrl-C, SIGTERM, a cancel request).
//!
//! Each generator thread runs a current-thread tokio runtime whose users
//! record into one thread-local [`Snapshot`], so the hot path takes no
//! lock; once a second the thread hands its interval snapshot to the
//! collector, which merges them into totals and the per-second series.
//!
//! Stopping has two steps. The soft stop ends scheduling: no user starts a
//! new request. In-flight requests then get `graceful_stop` to finish, after
//! which the hard stop aborts them and they are counted as `aborted`
//! failures. Every request that was started is counted exactly once.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use minijinja::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, Connector, Failure, Session};
use crate::metrics::summary::{
    FailureEntry, RunInfo, RunSummary, SeriesPoint, ThresholdResult, SCHEMA_VERSION,
};
use crate::metrics::{latency_stats, ErrorKind, Sample, Snapshot, StepRecorder};
use crate::plan::threshold::{Aggregate, Metric};
use crate::plan::{BaseUrl, FeedMode, Plan};

/// How to run, beyond what the plan says.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Generator threads; 0 means one per available core.
    pub threads: usize,
}

/// A once-a-second view of a run in progress.
#[derive(Debug, Clone)]
pub struct Progress {
    pub elapsed: Duration,
    /// The planned duration, if the run is time-bound.
    pub duration: Option<Duration>,
    pub users: u64,
    pub requests: u64,
    pub failures: u64,
    /// Requests per second over the last second.
    pub rps: f64,
    /// p95 latency of the last second, in milliseconds.
    pub p95_ms: f64,
}

/// Runs a plan to completion (or until `shutdown`) and summarizes it.
/// `on_progress` is called about once a second.
pub async fn run(
    plan: Arc<Plan>,
    options: RunOptions,
    mut on_progress: impl FnMut(&Progress) + Send,
    shutdown: CancellationToken,
) -> anyhow::Result<RunSummary> {
    let demo = match plan.target.base {
        BaseUrl::Demo => Some(
            crate::demo::start()
                .await
                .context("starting the demo target")?,
        ),
        BaseUrl::Url(_) => None,
    };
    let endpoint = match (&plan.target.base, &demo) {
        (BaseUrl::Url(e), _) => e.clone(),
        (BaseUrl::Demo, Some(d)) => d.endpoint(),
        (BaseUrl::Demo, None) => unreachable!("the demo target was started above"),
    };
    let connector = Arc::new(Connector::new(endpoint.clone(), &plan.target).await?);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = if options.threads == 0 {
        cores
    } else {
        options.threads
    };
    let threads = wanted.clamp(1, plan.load.users.max(1) as usize);

    let started_at = jiff::Timestamp::now();
    let start = Instant::now();
    let stop = CancellationToken::new();
    let hard_stop = CancellationToken::new();
    let shared = Arc::new(Shared::new(&plan));
    let (tx, mut rx) = mpsc::unbounded_channel();

    let mut handles = Vec::with_capacity(threads);
    for shard in 0..threads {
        let users: Vec<u64> = (0..plan.load.users)
            .filter(|u| *u as usize % threads == shard)
            .collect();
        let ctx = ShardContext {
            shard,
            plan: plan.clone(),
            connector: connector.clone(),
            shared: shared.clone(),
            users,
            start,
            stop: stop.clone(),
            hard_stop: hard_stop.clone(),
            tx: tx.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("loadctl-gen-{shard}"))
            .spawn(move || run_shard(ctx))
            .context("starting a generator thread")?;
        handles.push(handle);
    }
    drop(tx);

    let mut collector = Collector::new(&plan, threads);
    let deadline = plan
        .load
        .duration
        .map(|d| tokio::time::Instant::from_std(start + d));
    let mut interrupted = false;
    let mut hard_deadline: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => {
                    for point in collector.add(msg) {
                        on_progress(&collector.progress(point, plan.load.duration));
                    }
                }
                None => break,
            },
            _ = sleep_until_opt(deadline), if hard_deadline.is_none() => {
                stop.cancel();
                hard_deadline = Some(tokio::time::Instant::now() + plan.load.graceful_stop);
            }
            _ = shutdown.cancelled(), if !interrupted => {
                interrupted = true;
                if hard_deadline.is_none() {
                    stop.cancel();
                    hard_deadline = Some(tokio::time::Instant::now() + plan.load.graceful_stop);
                } else {
                    hard_stop.cancel();
                }
            }
            _ = sleep_until_opt(hard_deadline), if !hard_stop.is_cancelled() => {
                hard_stop.cancel();
            }
        }
    }
    for h in handles {
        // A generator thread that panicked has already lost its counts;
        // say so rather than report numbers that look complete.
        if h.join().is_err() {
            anyhow::bail!("a generator thread failed; the counts of this run are incomplete");
        }
    }
    let elapsed = start.elapsed();
    if let Some(d) = demo {
        d.stop();
    }
    let info = RunInfo {
        name: plan.name.clone(),
        scenario_file: plan.scenario_file.as_ref().map(|p| p.display().to_string()),
        target: match plan.target.base {
            BaseUrl::Demo => format!("demo ({})", endpoint.display()),
            BaseUrl::Url(ref e) => e.display(),
        },
        http: plan.target.http.as_str().to_string(),
        model: "closed".to_string(),
        pattern: "constant".to_string(),
        users: plan.load.users,
        duration_s: plan.load.duration.map(|d| d.as_secs_f64()),
        iterations_limit: plan.load.iterations,
        threads,
        started_at: started_at.to_string(),
        ended_at: jiff::Timestamp::now().to_string(),
        elapsed_s: elapsed.as_secs_f64(),
        interrupted,
    };
    Ok(collector.finish(&plan, info))
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// State shared by every user of the run, across threads.
struct Shared {
    /// Flow iterations still to start, when the run is iteration-bound.
    iterations_left: Option<AtomicU64>,
    /// Next row of each feeder.
    cursors: Vec<AtomicUsize>,
}

impl Shared {
    fn new(plan: &Plan) -> Self {
        Shared {
            iterations_left: plan.load.iterations.map(AtomicU64::new),
            cursors: plan.feeders.iter().map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn take_iteration(&self) -> bool {
        match &self.iterations_left {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// The row feeder `i` hands out next; `None` when a unique feeder is spent.
    fn next_row(&self, plan: &Plan, i: usize) -> Option<Value> {
        let feeder = &plan.feeders[i];
        let n = feeder.rows.len();
        let index = match feeder.mode {
            FeedMode::Sequential => self.cursors[i].fetch_add(1, Ordering::Relaxed) % n,
            FeedMode::Random => rand::random_range(0..n),
            FeedMode::Unique => {
                let next = self.cursors[i].fetch_add(1, Ordering::Relaxed);
                if next >= n {
                    return None;
                }
                next
            }
        };
        Some(feeder.rows[index].clone())
    }
}

enum ShardMsg {
    /// What a thread recorded in the second ending at `second`.
    Interval {
        shard: usize,
        second: u64,
        snapshot: Snapshot,
    },
    /// The thread's users are all done; nothing more will come from it.
    Done { shard: usize },
}

struct ShardContext {
    shard: usize,
    plan: Arc<Plan>,
    connector: Arc<Connector>,
    shared: Arc<Shared>,
    users: Vec<u64>,
    start: Instant,
    stop: CancellationToken,
    hard_stop: CancellationToken,
    tx: mpsc::UnboundedSender<ShardMsg>,
}

fn run_shard(ctx: ShardContext) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds with default settings");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, shard_main(ctx));
}

async fn shard_main(ctx: ShardContext) {
    let recorder = Rc::new(RefCell::new(Snapshot::new(ctx.plan.metrics.len())));
    let active = Rc::new(Cell::new(ctx.users.len() as u64));
    let mut users = tokio::task::JoinSet::new();
    for &id in &ctx.users {
        let user = User {
            id,
            flow: flow_for_user(&ctx.plan, id),
            plan: ctx.plan.clone(),
            connector: ctx.connector.clone(),
            session: Session::new(ctx.connector.clone()),
            shared: ctx.shared.clone(),
            recorder: recorder.clone(),
            start: ctx.start,
            stop: ctx.stop.clone(),
            hard_stop: ctx.hard_stop.clone(),
        };
        let active = active.clone();
        users.spawn_local(async move {
            user.run().await;
            active.set(active.get() - 1);
        });
    }
    let start = tokio::time::Instant::from_std(ctx.start);
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let send = |second: u64| {
        let mut r = recorder.borrow_mut();
        r.active_users = active.get();
        let _ = ctx.tx.send(ShardMsg::Interval {
            shard: ctx.shard,
            second,
            snapshot: r.take(),
        });
    };
    let mut last_second = 0;
    loop {
        tokio::select! {
            at = tick.tick() => {
                last_second = (at - start).as_secs_f64().round() as u64;
                send(last_second);
            }
            joined = users.join_next() => if joined.is_none() { break },
        }
    }
    let second = (ctx.start.elapsed().as_secs_f64().ceil() as u64).max(last_second + 1);
    send(second);
    let _ = ctx.tx.send(ShardMsg::Done { shard: ctx.shard });
}

/// Users are spread over flows in proportion to the flows' weights.
fn flow_for_user(plan: &Plan, user: u64) -> usize {
    let total: u64 = plan.flows.iter().map(|f| f.weight).sum();
    let mut slot = user % total.max(1);
    for (i, f) in plan.flows.iter().enumerate() {
        if slot < f.weight {
            return i;
        }
        slot -= f.weight;
    }
    0
}

/// One virtual user: loops over its flow until the run stops.
struct User {
    id: u64,
    flow: usize,
    plan: Arc<Plan>,
    connector: Arc<Connector>,
    session: Session,
    shared: Arc<Shared>,
    recorder: Rc<RefCell<Snapshot>>,
    start: Instant,
    stop: CancellationToken,
    hard_stop: CancellationToken,
}

impl User {
    async fn run(mut self) {
        let plan = self.plan.clone();
        let flow = &plan.flows[self.flow];
        let templated: Vec<bool> = flow
            .steps
            .iter()
            .map(|s| {
                !s.path.is_static()
                    || s.headers
                        .iter()
                        .chain(&plan.target.headers)
                        .any(|(_, p)| !p.is_static())
                    || s.body.as_ref().is_some_and(|b| !b.is_static())
            })
            .collect();
        let mut extracted: BTreeMap<String, Value> = BTreeMap::new();
        let mut iteration = 0u64;
        'iterations: while !self.stop.is_cancelled() && self.shared.take_iteration() {
            let mut rows = Vec::with_capacity(plan.feeders.len());
            for i in 0..plan.feeders.len() {
                match self.shared.next_row(&plan, i) {
                    Some(row) => rows.push(row),
                    None => break 'iterations,
                }
            }
            let mut completed = true;
            for (step, templated) in flow.steps.iter().zip(&templated) {
                if self.stop.is_cancelled() {
                    completed = false;
                    break;
                }
                let ctx = if *templated {
                    self.context(iteration, &rows, &extracted)
                } else {
                    Value::UNDEFINED
                };
                let hard_stop = self.hard_stop.clone();
                let began = Instant::now();
                let outcome = tokio::select! {
                    biased;
                    outcome = self.exchange(step, &ctx) => outcome,
                    _ = hard_stop.cancelled() => Outcome::failed(
                        (ErrorKind::Aborted, "still in flight when the run stopped".to_string()),
                        0,
                    ),
                };
                let latency = began.elapsed();
                let failed = outcome.failure.is_some();
                let sample = Sample {
                    metric: step.metric,
                    latency_us: latency.as_micros() as u64,
                    status: outcome.status,
                    failure: outcome.failure,
                    bytes_in: outcome.bytes_in,
                    bytes_out: outcome.bytes_out,
                    body_bytes: outcome.body_bytes,
                };
                let at = self.start.elapsed().as_secs();
                self.recorder.borrow_mut().record(&sample, at);
                extracted.extend(outcome.extracted);
                if failed {
                    // A failed step ends the iteration: later steps usually
                    // depend on it, and would only fail in its wake.
                    completed = false;
                    break;
                }
                if let Some((lo, hi)) = flow.think_time {
                    let pause = if lo == hi {
                        lo
                    } else {
                        rand::random_range(lo..=hi)
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = self.stop.cancelled() => break 'iterations,
                    }
                }
            }
            if completed {
                self.recorder.borrow_mut().iterations += 1;
            }
            iteration += 1;
            // Yield so a user whose requests all complete at once (an
            // instant failure, say) cannot starve the thread's other tasks.
            tokio::task::yield_now().await;
        }
    }

    fn context(
        &self,
        iteration: u64,
        rows: &[Value],
        extracted: &BTreeMap<String, Value>,
    ) -> Value {
        let plan = &self.plan;
        let mut map: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in plan.globals.vars.iter() {
            map.insert(k.clone(), v.clone());
        }
        map.insert(
            "vars".into(),
            Value::from(plan.globals.vars.as_ref().clone()),
        );
        map.insert("env".into(), plan.globals.env.clone());
        map.insert("vu".into(), Value::from(self.id));
        map.insert("iteration".into(), Value::from(iteration));
        for (f, row) in plan.feeders.iter().zip(rows) {
            map.insert(f.name.clone(), row.clone());
        }
        for (k, v) in extracted {
            map.insert(k.clone(), v.clone());
        }
        Value::from(map)
    }

    async fn exchange(&mut self, step: &crate::plan::StepPlan, ctx: &Value) -> Outcome {
        let built = match engine::build(&self.plan, &self.connector, step, ctx) {
            Ok(b) => b,
            Err(f) => return Outcome::failed(f, 0),
        };
        let bytes_out = built.bytes_out;
        match self.session.send(built.request, step.needs_body()).await {
            Err(f) => Outcome::failed(f, bytes_out),
            Ok(ex) => {
                let checked = engine::check(step, &ex);
                let (failure, extracted) = match checked {
                    Ok(values) => (None, values),
                    Err(f) => (Some(f), Vec::new()),
                };
                Outcome {
                    status: Some(ex.status.as_u16()),
                    failure,
                    bytes_in: ex.bytes_in,
                    bytes_out,
                    body_bytes: ex.body_bytes,
                    extracted,
                }
            }
        }
    }
}

struct Outcome {
    status: Option<u16>,
    failure: Option<Failure>,
    bytes_in: u64,
    bytes_out: u64,
    body_bytes: u64,
    extracted: Vec<(String, Value)>,
}

impl Outcome {
    fn failed(failure: Failure, bytes_out: u64) -> Self {
        Outcome {
            status: None,
            failure: Some(failure),
            bytes_in: 0,
            bytes_out,
            body_bytes: 0,
            extracted: Vec::new(),
        }
    }
}

/// Merges the threads' snapshots into totals and a per-second series.
struct Collector {
    totals: Snapshot,
    /// Interval snapshots not yet reported by every thread, by second.
    pending: BTreeMap<u64, (Snapshot, u64)>,
    /// The latest second each thread has reported (u64::MAX when done).
    reported: Vec<u64>,
    series: Vec<SeriesPoint>,
}

impl Collector {
    fn new(plan: &Plan, threads: usize) -> Self {
        Collector {
            totals: Snapshot::new(plan.metrics.len()),
            pending: BTreeMap::new(),
            reported: vec![0; threads],
            series: Vec::new(),
        }
    }

    /// Takes a message; returns the indexes of series points it completed.
    fn add(&mut self, msg: ShardMsg) -> Vec<usize> {
        match msg {
            ShardMsg::Interval {
                shard,
                second,
                snapshot,
            } => {
                self.totals.merge(&snapshot);
                let entry = self
                    .pending
                    .entry(second)
                    .or_insert_with(|| (Snapshot::new(snapshot.steps.len()), 0));
                entry.0.merge(&snapshot);
                entry.1 += snapshot.active_users;
                self.reported[shard] = self.reported[shard].max(second);
            }
            ShardMsg::Done { shard } => self.reported[shard] = u64::MAX,
        }
        let complete = self.reported.iter().copied().min().unwrap_or(u64::MAX);
        self.flush(complete)
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
            self.series.push(SeriesPoint {
                t: second,
                users,
                requests: total.requests(),
                failures: total.failures(),
                rps: total.requests() as f64,
                bytes_in: total.bytes_in(),
                latency_ms: latency_stats(total.histogram(), &[]),
            });
            done.push(self.series.len() - 1);
        }
        done
    }

    fn progress(&self, point: usize, duration: Option<Duration>) -> Progress {
        let p = &self.series[point];
        let total = self.totals.total();
        Progress {
            elapsed: Duration::from_secs(p.t),
            duration,
            users: p.users,
            requests: total.requests(),
            failures: total.failures(),
            rps: p.rps,
            p95_ms: p.latency_ms.get("p95"),
        }
    }

    fn finish(mut self, plan: &Plan, info: RunInfo) -> RunSummary {
        self.flush(u64::MAX);
        let elapsed = info.elapsed_s;
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
                    (Metric::Step(_), None) => false,
                    (_, None) => true,
                    (_, Some(_)) => false,
                })
                .filter_map(|t| match t.aggregate {
                    Aggregate::Percentile(p) => Some(p),
                    _ => None,
                })
                .collect()
        };
        let total: StepRecorder = self.totals.total();
        let totals = total.stats("Aggregated", None, elapsed, &extra(None));
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
        let mut summary = RunSummary {
            schema_version: SCHEMA_VERSION,
            loadctl_version: env!("CARGO_PKG_VERSION").to_string(),
            run: info,
            totals,
            steps,
            iterations: self.totals.iterations,
            thresholds: Vec::new(),
            thresholds_passed: true,
            series: self.series,
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
