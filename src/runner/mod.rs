//! One run, end to end: a [`Plan`] in, a [`RunSummary`] out.
//!
//! [`start`] is the single entry point every front end calls (the CLI, the
//! MCP server, the distributed worker); it returns a [`RunHandle`] with the
//! run's live figures, its share, a stop and its result, and [`run`] is
//! the CLI's wrapper that awaits the end. Starting a run starts the demo
//! target when the plan asks for it and spreads the load over generator
//! threads (`shard`); the handle's supervisor (`handle`) merges their
//! per-second snapshots ([`collector`]) and decides when to stop: at the
//! end of the pattern, when the iteration budget is spent, or on a stop
//! request.
//!
//! *When* each iteration starts is decided here: in the closed model each
//! thread follows the pattern's user count (`closed`); in the open model
//! each thread takes its arrivals from the pattern's schedule and hands
//! every due arrival to a free user, or queues or drops it (`open`).
//! Both run only this process's [`Share`] of the load. *How* a request is
//! sent is the engine's business (`user` calls it).
//!
//! Stopping has two steps. The soft stop ends scheduling: no user starts a
//! new request. In-flight requests then get `graceful_stop` to finish, after
//! which the hard stop aborts them and they are counted as `aborted`
//! failures. Every request that was started is counted exactly once.

mod closed;
pub mod collector;
mod handle;
mod open;
mod shard;
pub mod share;
mod shared;
mod user;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::engine::Connector;
pub use crate::metrics::live::{LiveStats, Progress};
use crate::metrics::summary::{RunInfo, RunSummary};
use crate::plan::{BaseUrl, Endpoint, Plan};
use crate::store::RunId;
use collector::Collector;
pub use collector::{IntervalSnapshot, SourceId};
use handle::{Outlets, Supervisor};
pub use handle::{RunControl, RunHandle};
pub(crate) use shard::Running;
use shard::{join_all, reraise_panic, ShardContext};
pub use share::{RowSplit, Share, Slice};
pub use shared::Shared;

/// The furthest an agreed start may lie ahead or behind.
const MAX_START_OFFSET: Duration = Duration::from_secs(24 * 3600);

/// How to run, beyond what the plan says.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Generator threads; 0 means one per available core.
    pub threads: usize,
    /// Fill [`Progress::live`] with per-step statistics every second (for
    /// the live metrics endpoint; it costs a percentile pass per step).
    pub live_stats: bool,
    /// The part of the scenario's load this process runs (all of it by
    /// default).
    pub share: Share,
    /// The agreed start (wall clock), so processes on several machines
    /// start together and count their seconds alike; `None` starts now.
    /// A start already past joins the run late: what was due before now
    /// is not this process's.
    pub start_at: Option<SystemTime>,
    /// Publish each closed second's merged snapshot
    /// ([`RunHandle::take_snapshots`]).
    pub snapshots: bool,
    /// The run's id in the run store; a new random one when `None`.
    pub run_id: Option<RunId>,
    /// Fires to end the run at once: scheduling stops and what is in
    /// flight is aborted (counted as `aborted` failures), with no graceful
    /// stop; for a server that is shutting down.
    pub abort: Option<CancellationToken>,
    /// Judges the addresses the target resolved to before any request is
    /// sent; the run fails to start with its message (the MCP server's
    /// host allowlist).
    pub address_policy: Option<AddressPolicy>,
}

/// A check of the target's resolved addresses: `Err` says why they are refused.
#[derive(Clone)]
pub struct AddressPolicy(pub Arc<AddressCheck>);

pub type AddressCheck = dyn Fn(&[SocketAddr]) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for AddressPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressPolicy")
    }
}

/// Runs a plan to completion (or until `shutdown`) and summarizes it.
/// `on_progress` is called about once a second.
pub async fn run(
    plan: Arc<Plan>,
    options: RunOptions,
    mut on_progress: impl FnMut(&Progress) + Send,
    shutdown: CancellationToken,
) -> anyhow::Result<RunSummary> {
    let mut handle = start(plan, options, shutdown).await?;
    while let Some(progress) = handle.next_progress().await {
        on_progress(&progress);
    }
    handle.wait().await
}

/// Starts a run and returns its handle; the run stops by itself at the end
/// of its pattern, or when `shutdown` fires or [`RunHandle::stop`] is
/// called. Must be called within a tokio runtime.
pub async fn start(
    plan: Arc<Plan>,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<RunHandle> {
    options
        .share
        .check()
        .map_err(|e| anyhow::anyhow!("the run's share: {e}"))?;
    ensure_open_files(plan.load.users, plan.target.base == BaseUrl::Demo)?;
    let (demo, endpoint) = target(&plan).await?;
    let connector = Arc::new(Connector::new(endpoint.clone(), &plan.target).await?);
    if let Some(policy) = &options.address_policy {
        (policy.0)(connector.addrs()).map_err(anyhow::Error::msg)?;
    }
    let threads = thread_count(&plan, options.threads);
    tracing::info!(scenario = %plan.name, threads, "run starting");
    // The clock starts once the target is resolved and ready, so set-up
    // time is not taken from the pattern.
    let (start, began) = agreed_start(options.start_at)?;
    let shared = Arc::new(Shared::new(&plan, &options.share, began));
    let stop = CancellationToken::new();
    let hard_stop = CancellationToken::new();
    // Generator threads end only through these tokens: if starting fails
    // half-way, or the supervisor is dropped with its runtime, they must
    // not run on.
    let stop_threads = StopOnDrop(stop.clone(), hard_stop.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    let generators = (0..threads)
        .map(|shard| {
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
            std::thread::Builder::new()
                .name(format!("loadctl-gen-{shard}"))
                .spawn(move || shard::run_shard(ctx))
                .context("starting a generator thread")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(tx);
    let collector = collector(&plan, &options, threads, start);
    let (progress_tx, progress_rx) = mpsc::channel(handle::PROGRESS_BACKLOG);
    let (latest_tx, latest_rx) = watch::channel(None);
    let (snapshots_tx, snapshots_rx) = match options.snapshots {
        true => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        false => (None, None),
    };
    let stop_request = shutdown.child_token();
    let mut supervisor = Supervisor {
        plan: plan.clone(),
        shared: shared.clone(),
        start,
        collector,
        outlets: Outlets {
            progress: progress_tx,
            latest: latest_tx,
            snapshots: snapshots_tx,
        },
        stop,
        hard_stop,
        stop_request: stop_request.clone(),
        abort_request: options.abort.clone().unwrap_or_default(),
        cpu_meter: crate::sys::CpuMeter::for_threads(threads),
        cpu: crate::sys::CpuStats::default(),
    };
    let started_at = options
        .start_at
        .unwrap_or_else(|| SystemTime::now() - start.elapsed());
    let target = match &plan.target.base {
        BaseUrl::Demo => format!("demo ({})", endpoint.display()),
        BaseUrl::Url(e) => e.display(),
    };
    let id = options.run_id.clone().unwrap_or_default();
    let run_id = id.to_string();
    let task = tokio::spawn(async move {
        let _stop_threads = stop_threads;
        let interrupted = supervisor.collect(rx).await;
        let joined =
            tokio::task::spawn_blocking(move || generators.into_iter().all(|g| g.join().is_ok()))
                .await;
        // A generator thread that panicked has lost its counts; say so
        // rather than report numbers that look complete.
        if !joined.unwrap_or(false) {
            anyhow::bail!(
                "a generator thread failed; the counts of this run are incomplete \
                 (a bug: please report it with the scenario at https://github.com/loadctl/loadctl/issues)"
            );
        }
        let elapsed = start.elapsed();
        tracing::info!(elapsed = ?elapsed, interrupted, "run finished");
        if let Some(d) = demo {
            d.stop();
        }
        let info = run_info(
            &supervisor.plan,
            run_id,
            target,
            threads,
            started_at,
            elapsed,
            interrupted,
        );
        Ok(supervisor.finish(info))
    });
    Ok(RunHandle {
        control: RunControl {
            id,
            shared,
            start,
            rows: options.share.rows,
            latest: latest_rx,
            stop: stop_request,
        },
        progress: progress_rx,
        snapshots: snapshots_rx,
        task,
    })
}

/// The target: the demo, started for this run, or the plan's endpoint.
async fn target(plan: &Plan) -> anyhow::Result<(Option<crate::demo::DemoServer>, Endpoint)> {
    Ok(match &plan.target.base {
        BaseUrl::Demo => {
            let demo = crate::demo::start()
                .await
                .context("starting the demo target")?;
            let endpoint = demo.endpoint();
            (Some(demo), endpoint)
        }
        BaseUrl::Url(endpoint) => (None, endpoint.clone()),
    })
}

/// A collector waiting for every generator thread of this run.
fn collector(plan: &Plan, options: &RunOptions, threads: usize, start: Instant) -> Collector {
    let mut collector = Collector::new(plan, options.live_stats, CLOSE_AFTER).with_start(start);
    for shard in 0..threads {
        collector.join(shard as SourceId);
    }
    if options.snapshots {
        collector.keep_closed_snapshots();
    }
    collector
}

/// How long a second of the series waits for a silent generator thread.
const CLOSE_AFTER: Duration = Duration::from_secs(3);

fn thread_count(plan: &Plan, wanted: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = if wanted == 0 { cores } else { wanted };
    wanted.clamp(1, plan.load.users.max(1) as usize)
}

/// The run's start as an instant of this process's clock, and how long
/// after it this process begins (zero unless the start is already past).
fn agreed_start(at: Option<SystemTime>) -> anyhow::Result<(Instant, Duration)> {
    let now = Instant::now();
    let Some(at) = at else {
        return Ok((now, Duration::ZERO));
    };
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) if ahead > MAX_START_OFFSET => {
            anyhow::bail!("the agreed start is {ahead:?} away; the limit is a day")
        }
        Ok(ahead) => Ok((now + ahead, Duration::ZERO)),
        Err(past) if past.duration() > MAX_START_OFFSET => anyhow::bail!(
            "the agreed start was {:?} ago; the limit is a day (is this machine's clock right?)",
            past.duration()
        ),
        Err(past) => {
            let behind = past.duration();
            match now.checked_sub(behind) {
                Some(start) => Ok((start, behind)),
                None => anyhow::bail!("the agreed start is too far in the past"),
            }
        }
    }
}

/// Cancels the soft and the hard stop when dropped.
struct StopOnDrop(CancellationToken, CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
        self.1.cancel();
    }
}

pub(crate) fn run_info(
    plan: &Plan,
    id: String,
    target: String,
    threads: usize,
    started_at: SystemTime,
    elapsed: Duration,
    interrupted: bool,
) -> RunInfo {
    let timestamp = |t: SystemTime| {
        jiff::Timestamp::try_from(t)
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string()
    };
    RunInfo {
        id,
        name: plan.name.clone(),
        scenario_file: plan.scenario_file.as_ref().map(|p| p.display().to_string()),
        target,
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
        started_at: timestamp(started_at),
        ended_at: timestamp(SystemTime::now()),
        elapsed_s: elapsed.as_secs_f64(),
        interrupted,
    }
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
