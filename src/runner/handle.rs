//! A run in progress, as every front end holds it: [`RunHandle`].
//!
//! The handle's supervisor task merges the generator threads' snapshots
//! ([`Collector`]), publishes a [`Progress`] for every second it closes
//! (and, on request, that second's merged [`IntervalSnapshot`], the
//! form a distributed worker streams), and decides when to stop: at the
//! end of the pattern or on a stop request (Ctrl-C, SIGTERM, an MCP
//! cancel, the coordinator). Stopping has two steps: the soft stop ends
//! scheduling, and after `graceful_stop` the hard stop aborts what is
//! still in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::collector::{Collector, IntervalSnapshot};
use super::shard::ShardMsg;
use super::share::{RowSplit, Share};
use super::Shared;
use crate::metrics::live::Progress;
use crate::metrics::summary::{RunInfo, RunSummary};
use crate::plan::Plan;
use crate::store::RunId;
use crate::sys::{CpuMeter, CpuStats};

/// How many seconds of progress wait for a reader of
/// [`RunHandle::next_progress`]; a front end that only polls
/// [`RunControl::latest_progress`] loses nothing by leaving them unread.
pub(super) const PROGRESS_BACKLOG: usize = 64;

/// A run in progress: its live figures, its share, a stop, and its result.
pub struct RunHandle {
    pub(super) control: RunControl,
    pub(super) progress: mpsc::Receiver<Progress>,
    pub(super) snapshots: Option<mpsc::UnboundedReceiver<IntervalSnapshot>>,
    pub(super) task: tokio::task::JoinHandle<anyhow::Result<RunSummary>>,
}

/// What can be done to a run from anywhere, while another task waits for
/// its end: read its figures, change its share, stop it. Cheap to clone.
/// Dropping it (or the handle) does not stop the run.
#[derive(Clone)]
pub struct RunControl {
    pub(super) id: RunId,
    pub(super) shared: Arc<Shared>,
    pub(super) start: Instant,
    pub(super) rows: RowSplit,
    pub(super) latest: watch::Receiver<Option<Progress>>,
    pub(super) stop: CancellationToken,
}

impl RunHandle {
    /// The run's id (its `RunInfo::id`, and its name in the run store).
    pub fn id(&self) -> &RunId {
        &self.control.id
    }

    /// A control for other tasks; see [`RunControl`].
    pub fn control(&self) -> RunControl {
        self.control.clone()
    }

    /// The next second's progress, in order; `None` once the run is over.
    pub async fn next_progress(&mut self) -> Option<Progress> {
        self.progress.recv().await
    }

    /// Each closed second's merged snapshot, when the run was started with
    /// [`super::RunOptions::snapshots`]; taken once.
    pub fn take_snapshots(&mut self) -> Option<mpsc::UnboundedReceiver<IntervalSnapshot>> {
        self.snapshots.take()
    }

    pub fn latest_progress(&self) -> Option<Progress> {
        self.control.latest_progress()
    }

    pub fn share(&self) -> Share {
        self.control.share()
    }

    pub fn set_share(&self, share: Share) -> Result<Duration, String> {
        self.control.set_share(share)
    }

    pub fn stop(&self) {
        self.control.stop();
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the end of the run and its summary.
    pub async fn wait(self) -> anyhow::Result<RunSummary> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => anyhow::bail!("the run's supervisor failed: {e}"),
        }
    }
}

impl RunControl {
    pub fn id(&self) -> &RunId {
        &self.id
    }

    /// The run's (agreed) start on this process's clock; the series and
    /// share changes count from it.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The latest second's progress (`None` before the first second).
    pub fn latest_progress(&self) -> Option<Progress> {
        self.latest.borrow().clone()
    }

    /// Whether the run is over (its summary is being made or made).
    pub fn has_ended(&self) -> bool {
        self.latest.has_changed().is_err()
    }

    /// The share in effect now or shortly.
    pub fn share(&self) -> Share {
        Share {
            load: self.shared.share.latest(),
            rows: self.rows,
        }
    }

    /// Changes the part of the load this process runs, a moment from now
    /// (well within a second). Returns when the change takes effect, since
    /// the start.
    pub fn set_share(&self, share: Share) -> Result<Duration, String> {
        self.change_share(share, None)
    }

    /// Changes the part of the load this process runs from `at` since the
    /// start: several processes given the same `at` change together, so no
    /// user or arrival is run twice or not at all in between. `at` must be
    /// at least a tenth of a second ahead.
    pub fn set_share_at(&self, share: Share, at: Duration) -> Result<Duration, String> {
        self.change_share(share, Some(at))
    }

    /// The data split is fixed for a run (rows a process has used cannot be
    /// handed back), and so is the iteration budget.
    fn change_share(&self, share: Share, at: Option<Duration>) -> Result<Duration, String> {
        share.check()?;
        if share.rows != self.rows {
            return Err(format!(
                "the data split is fixed for a run: this one is {} of {}",
                self.rows.k, self.rows.n
            ));
        }
        if self.has_ended() {
            return Err("the run has ended".to_string());
        }
        self.shared.share.set(self.start, at, share.load)
    }

    /// Asks the run to stop, as Ctrl-C does: no new requests, in-flight
    /// ones get the graceful stop, and the summary says it was interrupted.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Where the supervisor publishes.
pub(super) struct Outlets {
    pub progress: mpsc::Sender<Progress>,
    pub latest: watch::Sender<Option<Progress>>,
    pub snapshots: Option<mpsc::UnboundedSender<IntervalSnapshot>>,
}

/// The supervisor's state: it owns the collector and the stop tokens.
pub(super) struct Supervisor {
    pub plan: Arc<Plan>,
    pub shared: Arc<Shared>,
    pub start: Instant,
    pub collector: Collector,
    pub outlets: Outlets,
    /// Soft stop: no new iterations or requests.
    pub stop: CancellationToken,
    /// Hard stop: abort what is in flight.
    pub hard_stop: CancellationToken,
    /// A stop request from outside (signal, cancel).
    pub stop_request: CancellationToken,
    /// An abort request: stop and abort what is in flight, now.
    pub abort_request: CancellationToken,
    /// This process's CPU use, sampled every second.
    pub cpu_meter: CpuMeter,
    pub cpu: CpuStats,
}

impl Supervisor {
    /// Collects until every generator thread is done; returns whether the
    /// run was interrupted.
    pub async fn collect(&mut self, mut rx: mpsc::UnboundedReceiver<ShardMsg>) -> bool {
        let deadline = self
            .plan
            .load
            .duration
            .map(|d| tokio::time::Instant::from_std(self.start + d));
        let mut interrupted = false;
        let mut hard_deadline: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(ShardMsg::Interval { shard, second, snapshot }) => {
                        let points = self.collector.add(shard as u64, second, snapshot);
                        self.publish(points);
                    }
                    Some(ShardMsg::Done { shard }) => {
                        let points = self.collector.leave(shard as u64);
                        self.publish(points);
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if let Some(used) = self.cpu_meter.sample() {
                        self.cpu.record(used);
                    }
                    let points = self.collector.tick(self.start.elapsed());
                    self.publish(points);
                }
                _ = sleep_until_opt(deadline), if hard_deadline.is_none() => {
                    hard_deadline = Some(self.soft_stop());
                }
                _ = self.stop_request.cancelled(), if !interrupted => {
                    interrupted = true;
                    // Asked to stop while already finishing: stop now.
                    match hard_deadline {
                        None => hard_deadline = Some(self.soft_stop()),
                        Some(_) => self.hard_stop.cancel(),
                    }
                }
                _ = self.abort_request.cancelled(), if !self.hard_stop.is_cancelled() => {
                    interrupted = true;
                    if hard_deadline.is_none() {
                        self.soft_stop();
                    }
                    hard_deadline = Some(tokio::time::Instant::now());
                    self.hard_stop.cancel();
                }
                _ = sleep_until_opt(hard_deadline), if !self.hard_stop.is_cancelled() => {
                    self.hard_stop.cancel();
                }
            }
        }
        interrupted
    }

    /// Ends scheduling; in-flight requests get `graceful_stop`, until the
    /// returned instant.
    fn soft_stop(&self) -> tokio::time::Instant {
        self.shared.mark_stopped(self.start);
        self.stop.cancel();
        tokio::time::Instant::now() + self.plan.load.graceful_stop
    }

    fn publish(&mut self, points: Vec<usize>) {
        self.collector
            .set_fraction(self.shared.share.latest().fraction());
        for point in points {
            let mut progress = self.collector.progress(point);
            progress.cpu = self.cpu.latest;
            // A reader that does not keep up misses seconds, not memory.
            let _ = self.outlets.progress.try_send(progress.clone());
            self.outlets.latest.send_replace(Some(progress));
        }
        if let Some(tx) = &self.outlets.snapshots {
            for closed in self.collector.take_closed() {
                let _ = tx.send(closed);
            }
        }
    }

    pub fn finish(self, info: RunInfo) -> RunSummary {
        let timeline = self.shared.share.timeline();
        let mut summary = self.collector.finish(&self.plan, info, &timeline);
        summary
            .warnings
            .extend(self.cpu.warning("the load generator"));
        summary
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
