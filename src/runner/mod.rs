//! One run, end to end: a [`Plan`] in, a [`RunSummary`] out.
//!
//! [`run`] is the single entry point every front end calls (the CLI today;
//! the MCP server and the distributed worker next). It starts the demo
//! target when the plan asks for it, spreads the load over generator
//! threads, collects their per-second snapshots, and decides when to stop:
//! at the end of the pattern, when the iteration budget is spent, or when
//! `shutdown` fires (Ctrl-C, SIGTERM, a cancel request).
//!
//! Each generator thread runs a current-thread tokio runtime whose users
//! record into one thread-local [`Snapshot`], so the hot path takes no
//! lock; once a second the thread hands its interval snapshot to the
//! [`collector`], which merges them into totals and the per-second series.
//!
//! *When* each iteration starts is decided here: in the closed model each
//! thread follows the pattern's user count ([`closed`]); in the open model
//! each thread takes an even share of the arrival rate and hands every due
//! arrival to a free user, or queues or drops it ([`open`]). *How* a
//! request is sent is the engine's business ([`user`] calls it).
//!
//! Stopping has two steps. The soft stop ends scheduling: no user starts a
//! new request. In-flight requests then get `graceful_stop` to finish, after
//! which the hard stop aborts them and they are counted as `aborted`
//! failures. Every request that was started is counted exactly once.

mod closed;
mod collector;
mod open;
mod user;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use minijinja::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::Connector;
use crate::metrics::summary::{RunInfo, RunSummary, StepStats};
use crate::metrics::Snapshot;
use crate::plan::{BaseUrl, FeedMode, Model, Plan};
use collector::Collector;
use user::UserContext;

/// How to run, beyond what the plan says.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Generator threads; 0 means one per available core.
    pub threads: usize,
    /// Fill [`Progress::live`] with per-step statistics every second (for
    /// the live metrics endpoint; it costs a percentile pass per step).
    pub live_stats: bool,
}

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
    /// What the pattern asks for now: users, or arrivals per second.
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
    /// Everything so far, step by step, when [`RunOptions::live_stats`] is set.
    pub live: Option<LiveStats>,
}

/// Runs a plan to completion (or until `shutdown`) and summarizes it.
/// `on_progress` is called about once a second.
pub async fn run(
    plan: Arc<Plan>,
    options: RunOptions,
    mut on_progress: impl FnMut(&Progress) + Send,
    shutdown: CancellationToken,
) -> anyhow::Result<RunSummary> {
    ensure_open_files(plan.load.users, plan.target.base == BaseUrl::Demo)?;
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
        let ctx = ShardContext {
            shard,
            threads,
            plan: plan.clone(),
            connector: connector.clone(),
            shared: shared.clone(),
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

    let mut collector = Collector::new(&plan, threads, options.live_stats);
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
                        on_progress(&collector.progress(point));
                    }
                }
                None => break,
            },
            _ = sleep_until_opt(deadline), if hard_deadline.is_none() => {
                shared.mark_stopped(start);
                stop.cancel();
                hard_deadline = Some(tokio::time::Instant::now() + plan.load.graceful_stop);
            }
            _ = shutdown.cancelled(), if !interrupted => {
                interrupted = true;
                if hard_deadline.is_none() {
                    shared.mark_stopped(start);
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
        // A generator thread that panicked has lost its counts; say so
        // rather than report numbers that look complete.
        if h.join().is_err() {
            anyhow::bail!("a generator thread failed; the counts of this run are incomplete");
        }
    }
    let elapsed = start.elapsed();
    if let Some(d) = demo {
        d.stop();
    }
    let info = RunInfo {
        id: crate::store::RunId::new().to_string(),
        name: plan.name.clone(),
        scenario_file: plan.scenario_file.as_ref().map(|p| p.display().to_string()),
        target: match plan.target.base {
            BaseUrl::Demo => format!("demo ({})", endpoint.display()),
            BaseUrl::Url(ref e) => e.display(),
        },
        http: plan.target.http.as_str().to_string(),
        model: if plan.load.is_open() {
            "open"
        } else {
            "closed"
        }
        .to_string(),
        pattern: plan.load.pattern.name().to_string(),
        users: plan.load.users,
        seed: plan.load.seed,
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

/// Raises the soft open-files limit to the hard limit, and refuses to
/// start a run that could not open a connection per user: failing before
/// the first request beats failing a thousand connects into the run.
fn ensure_open_files(users: u64, demo: bool) -> anyhow::Result<()> {
    // The runtime, listeners, output files, a TLS root store on disk.
    const MARGIN: u64 = 64;
    // The demo target runs in this process: each connection is two sockets.
    let needed = users
        .saturating_mul(if demo { 2 } else { 1 })
        .saturating_add(MARGIN);
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("reading the open-files limit")?;
    if needed > limit {
        anyhow::bail!(
            "{users} users need about {needed} open files, but this process may open only {limit}; \
             raise the limit (for example `ulimit -n {needed}`) or run fewer users"
        );
    }
    Ok(())
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// State shared by every user of the run, across threads.
pub struct Shared {
    /// Flow iterations still to start, when the run is iteration-bound.
    iterations_left: Option<AtomicU64>,
    /// When the soft stop came, in microseconds since the start (0: not yet).
    stopped_at_us: AtomicU64,
    /// Next row of each feeder.
    cursors: Vec<AtomicUsize>,
}

impl Shared {
    fn new(plan: &Plan) -> Self {
        Shared {
            iterations_left: plan.load.iterations.map(AtomicU64::new),
            stopped_at_us: AtomicU64::new(0),
            cursors: plan.feeders.iter().map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Records the soft stop's instant (the first one counts).
    fn mark_stopped(&self, start: Instant) {
        let us = (start.elapsed().as_micros() as u64).max(1);
        let _ = self
            .stopped_at_us
            .compare_exchange(0, us, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// When the soft stop came, since the start; `None` while running.
    fn stopped_at(&self) -> Option<Duration> {
        match self.stopped_at_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Claims one iteration of the budget; false when it is spent.
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

/// What a generator thread sends to the collector.
pub enum ShardMsg {
    /// What a thread recorded in the second ending at `second`.
    Interval {
        shard: usize,
        second: u64,
        snapshot: Snapshot,
    },
    /// The thread is done; nothing more will come from it.
    Done { shard: usize },
}

struct ShardContext {
    shard: usize,
    threads: usize,
    plan: Arc<Plan>,
    connector: Arc<Connector>,
    shared: Arc<Shared>,
    start: Instant,
    stop: CancellationToken,
    hard_stop: CancellationToken,
    tx: mpsc::UnboundedSender<ShardMsg>,
}

impl ShardContext {
    /// This thread's share of `total` (users or slots), spread evenly.
    fn share(&self, total: u64) -> Vec<u64> {
        (0..total)
            .filter(|u| *u as usize % self.threads == self.shard)
            .collect()
    }
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
    let recorder = Rc::new(RefCell::new(Snapshot::new(
        ctx.plan.metrics.len(),
        ctx.plan.load.is_open(),
    )));
    let active = Rc::new(Cell::new(0u64));
    let users = UserContext {
        plan: ctx.plan.clone(),
        connector: Arc::new(ctx.connector.for_thread()),
        shared: ctx.shared.clone(),
        recorder: recorder.clone(),
        start: ctx.start,
        stop: ctx.stop.clone(),
        hard_stop: ctx.hard_stop.clone(),
        scope: Arc::new(user::ScopeGlobals::new(&ctx.plan)),
    };
    let work = async {
        match &ctx.plan.load.model {
            Model::Closed => closed::run(&ctx, users, active.clone()).await,
            Model::Open(model) => open::run(&ctx, model, users, active.clone()).await,
        }
    };
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
    tokio::pin!(work);
    loop {
        tokio::select! {
            at = tick.tick() => {
                last_second = (at - start).as_secs_f64().round() as u64;
                send(last_second);
            }
            _ = &mut work => break,
        }
    }
    let second = (ctx.start.elapsed().as_secs_f64().ceil() as u64).max(last_second + 1);
    send(second);
    let _ = ctx.tx.send(ShardMsg::Done { shard: ctx.shard });
}

/// Waits for every task of a generator thread. A task that panicked is a
/// bug whose counts are lost: re-raise it, so the thread fails and the run
/// reports an error instead of numbers that look complete.
async fn join_all(mut tasks: tokio::task::JoinSet<()>) {
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

/// A user's share of the thread's active-user count; it leaves the count
/// when dropped, however the user's task ends.
pub(crate) struct Running {
    active: Rc<Cell<u64>>,
    on: bool,
}

impl Running {
    pub(crate) fn new(active: Rc<Cell<u64>>) -> Self {
        Running { active, on: false }
    }

    pub(crate) fn set(&mut self, on: bool) {
        if on != self.on {
            self.on = on;
            let n = self.active.get();
            self.active.set(if on { n + 1 } else { n - 1 });
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.set(false);
    }
}
