//! One distributed run, driven from submission to summary: wait for
//! enough workers, give each its share and the agreed start, merge what
//! they send, act on a lost worker as the scenario says, and judge the
//! merged result once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{log, Coordinator, Duty, Worker};
use crate::dist::protocol::{
    now_ms, Assignment, RunRequest, RunState, ShareOrder, WorkerRun, WorkerRunState,
    SHARE_CHANGE_LEAD, START_LEAD,
};
use crate::dist::split::{place_users, split, Candidate, EmptyZones};
use crate::metrics::summary::{DistributionReport, RunSummary, WorkerReport};
use crate::metrics::Snapshot;
use crate::plan::{BaseUrl, OnWorkerLost, Plan};
use crate::runner::collector::Collector;
use crate::runner::share::ShareState;
use crate::runner::{Slice, SourceId};
use crate::store::RunId;
use crate::sys::CpuStats;

/// What the API hands a run's driver.
pub(super) enum RunEvent {
    Snapshot {
        worker: String,
        seq: u64,
        second: u64,
        snapshot: Snapshot,
    },
    Report {
        worker: String,
        run: WorkerRun,
        cpu: Option<f64>,
    },
    Lost {
        worker: String,
    },
    /// It shut down (after sending all it ran).
    Left {
        worker: String,
    },
}

/// How long a second of the merged series waits for a silent worker.
const CLOSE_AFTER: Duration = Duration::from_secs(3);
/// How long after the pattern's end (and its graceful stop) workers may
/// still be finishing before the silent ones are given up.
const FINISH_MARGIN: Duration = Duration::from_secs(15);
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

pub(super) struct Driver {
    coordinator: Coordinator,
    id: RunId,
    plan: Arc<Plan>,
    request: RunRequest,
    cancel: CancellationToken,
}

/// A worker's part in this run, as the driver keeps it.
struct Member {
    worker_id: String,
    name: String,
    labels: BTreeMap<String, String>,
    capacity: u32,
    cores: u32,
    source: SourceId,
    share: f64,
    requests: u64,
    failures: u64,
    cpu: CpuStats,
    state: MemberState,
    lost_at: Option<f64>,
    error: Option<String>,
    next_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    Active,
    Done,
    Lost,
    /// Shut down before its part was over.
    Left,
    Failed,
}

impl MemberState {
    fn as_str(self) -> &'static str {
        match self {
            MemberState::Active => "running",
            MemberState::Done => "done",
            MemberState::Lost => "lost",
            MemberState::Left => "left",
            MemberState::Failed => "failed",
        }
    }
}

/// The run once started: its members, its collector, and what happened.
struct Collection {
    members: Vec<Member>,
    collector: Collector,
    start: Instant,
    started_at: SystemTime,
    interrupted: bool,
    failed: Option<String>,
    warnings: Vec<String>,
    /// Any snapshot at all arrived (else a failure is a failed start).
    collected: bool,
    /// Workers still running after this are given up.
    give_up_at: Option<Instant>,
    /// When the last worker's part ended, since the start, as the workers
    /// say (the coordinator hears of it up to a heartbeat later).
    ended: Duration,
}

impl Driver {
    pub(super) fn new(
        coordinator: Coordinator,
        id: RunId,
        plan: Arc<Plan>,
        request: RunRequest,
        cancel: CancellationToken,
    ) -> Driver {
        Driver {
            coordinator,
            id,
            plan,
            request,
            cancel,
        }
    }

    pub(super) async fn drive(self, mut events: mpsc::UnboundedReceiver<RunEvent>) {
        let mut run = match self.start().await {
            Ok(run) => run,
            Err(error) => return self.fail_start(error),
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while run.members.iter().any(|m| m.state == MemberState::Active) {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.on_event(&mut run, event),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(&mut run),
                _ = self.cancel.cancelled(), if !run.interrupted => {
                    run.interrupted = true;
                    log(format_args!("run {} cancelled: stopping its workers", self.id));
                    self.stop_all(&mut run);
                }
            }
        }
        // Stragglers already on their way still count; later ones are
        // refused (the API answers 409), never taken and dropped.
        events.close();
        while let Ok(event) = events.try_recv() {
            self.on_event(&mut run, event);
        }
        if !run.collected && run.failed.is_some() {
            let error = run.failed.clone().unwrap_or_default();
            self.release();
            return self.fail_start(error);
        }
        self.finish(run);
    }

    /// Waits for the workers, then gives each its share.
    async fn start(&self) -> Result<Collection, String> {
        let expect = self.request.expect_workers.unwrap_or(1).max(1);
        let wait = self
            .request
            .expect_workers_timeout_s
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(DEFAULT_WAIT);
        let deadline = Instant::now() + wait;
        loop {
            let changed = self.coordinator.workers_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let waiting_for = match self.try_assign(expect) {
                Ok(Some(run)) => return Ok(run),
                Ok(None) => {
                    let idle = self.idle_count();
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "only {idle} of the {expect} expected workers joined within {}",
                            crate::units::fmt_duration(wait)
                        ));
                    }
                    format!("{idle} of the {expect} expected workers have joined")
                }
                Err(problem) if Instant::now() >= deadline => return Err(problem),
                Err(problem) => problem,
            };
            self.set_waiting_for(waiting_for);
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = self.cancel.cancelled() => return Err("cancelled before it started".to_string()),
            }
        }
    }

    /// Why the run is still waiting, for its status.
    fn set_waiting_for(&self, why: String) {
        if let Some(entry) = self.coordinator.lock().runs.get_mut(self.id.as_str()) {
            entry.error = Some(why);
        }
    }

    fn idle_count(&self) -> usize {
        let state = self.coordinator.lock();
        state.workers.values().filter(|w| is_idle(w)).count()
    }

    /// With enough idle workers, splits the load over them and sets their
    /// duties, all under one lock so no other run takes them meanwhile.
    /// `Ok(None)`: not enough workers yet; `Err`: they cannot run it as
    /// they are (a zone without a worker).
    fn try_assign(&self, expect: usize) -> Result<Option<Collection>, String> {
        let mut state = self.coordinator.lock();
        let mut idle: Vec<&mut Worker> =
            state.workers.values_mut().filter(|w| is_idle(w)).collect();
        if idle.len() < expect {
            return Ok(None);
        }
        // Oldest first, so the same workers get the same rows run after run.
        idle.sort_by_key(|w| w.source);
        let candidates: Vec<Candidate> = idle
            .iter()
            .map(|w| Candidate {
                labels: &w.info.labels,
                capacity: w.info.capacity,
            })
            .collect();
        let asked = split(&candidates, &self.plan.distribution, EmptyZones::Refuse)?;
        let slices = self.placed(&asked);
        let chosen: Vec<(&mut Worker, Slice, f64)> = idle
            .into_iter()
            .zip(slices.into_iter().zip(asked))
            .filter_map(|(w, (s, a))| Some((w, s?, a?.fraction())))
            .collect();
        let n = chosen.len() as u64;
        let start = Instant::now() + START_LEAD;
        let start_ms = now_ms() + START_LEAD.as_millis() as u64;
        let fingerprint = crate::plan::fingerprint(&self.plan).to_string();
        let mut members = Vec::new();
        for (k, (worker, slice, share)) in chosen.into_iter().enumerate() {
            let assignment = Assignment {
                run_id: self.id.to_string(),
                scenario: self.request.scenario.clone(),
                scenario_file: self.request.scenario_file.clone(),
                files: self.request.files.clone(),
                overrides: self.overrides_for(share),
                share: ShareOrder {
                    from: slice.from,
                    to: slice.to,
                    k: k as u64,
                    n,
                },
                start_ms,
                fingerprint: fingerprint.clone(),
                threads: 0,
            };
            worker.duty = Some(Duty {
                run_id: self.id.to_string(),
                assignment: Box::new(assignment),
                share: None,
                stop: false,
            });
            members.push(Member {
                worker_id: worker.id.clone(),
                name: worker.info.name.clone(),
                labels: worker.info.labels.clone(),
                capacity: worker.info.capacity,
                cores: worker.info.cores,
                source: worker.source,
                share,
                requests: 0,
                failures: 0,
                cpu: CpuStats::default(),
                state: MemberState::Active,
                lost_at: None,
                error: None,
                next_seq: 0,
            });
        }
        if let Some(entry) = state.runs.get_mut(self.id.as_str()) {
            entry.members = members
                .iter()
                .map(|m| (m.worker_id.clone(), m.name.clone()))
                .collect();
            entry.error = None;
            entry.state = RunState::Running;
            entry.state_changes.send_replace(RunState::Running);
        }
        drop(state);
        log(format_args!(
            "run {} starts in {}s on {} workers: {}",
            self.id,
            START_LEAD.as_secs(),
            members.len(),
            members
                .iter()
                .map(|m| format!("{} {:.1}%", m.name, m.share * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut collector = Collector::new(&self.plan, true, CLOSE_AFTER).with_start(start);
        for m in &members {
            collector.join(m.source);
        }
        let give_up_at = self
            .plan
            .load
            .duration
            .map(|d| start + d + self.plan.load.graceful_stop + FINISH_MARGIN);
        Ok(Some(Collection {
            members,
            collector,
            start,
            started_at: SystemTime::now() + START_LEAD,
            interrupted: false,
            failed: None,
            warnings: Vec::new(),
            collected: false,
            give_up_at,
            ended: Duration::ZERO,
        }))
    }

    /// In the closed model, the slices with their cuts moved so each holds
    /// its share of the users exactly (see [`place_users`]).
    fn placed(&self, asked: &[Option<Slice>]) -> Vec<Option<Slice>> {
        let mut slices = asked.to_vec();
        if !self.plan.load.is_open() {
            place_users(&mut slices, self.plan.load.users);
        }
        slices
    }

    /// The run's overrides as one worker compiles them: the `random`
    /// pattern's seed pinned (every worker must draw the same shape), and
    /// in the open model its part of `max_users` (a per-process limit).
    fn overrides_for(&self, share: f64) -> crate::plan::Overrides {
        let mut overrides = self.request.overrides.clone();
        if let Some(seed) = self.plan.load.seed {
            overrides.seed = Some(seed);
        }
        if let crate::plan::Model::Open(open) = &self.plan.load.model {
            let part = (open.max_users as f64 * share).ceil() as u64;
            overrides.max_users = Some(part.max(1));
        }
        overrides
    }

    fn on_event(&self, run: &mut Collection, event: RunEvent) {
        let left = matches!(event, RunEvent::Left { .. });
        match event {
            RunEvent::Snapshot {
                worker,
                seq,
                second,
                snapshot,
            } => {
                let Some(m) = run.members.iter_mut().find(|m| m.worker_id == worker) else {
                    return;
                };
                // A resend of one already counted (its answer was lost).
                if seq < m.next_seq {
                    return;
                }
                m.next_seq = seq.saturating_add(1);
                let total = snapshot.total();
                m.requests = m.requests.saturating_add(total.requests());
                m.failures = m.failures.saturating_add(total.failures());
                run.collected = true;
                let points = run.collector.add(m.source, second, snapshot);
                self.publish(run, points);
            }
            RunEvent::Report {
                worker,
                run: report,
                cpu,
            } => {
                let Some(i) = run.members.iter().position(|m| m.worker_id == worker) else {
                    return;
                };
                if let Some(cpu) = cpu {
                    run.members[i].cpu.record(cpu);
                }
                if run.members[i].state != MemberState::Active {
                    return;
                }
                match report.state {
                    WorkerRunState::Done => {
                        run.members[i].state = MemberState::Done;
                        let now = run.start.elapsed();
                        let ended = report
                            .elapsed_s
                            .and_then(|s| Duration::try_from_secs_f64(s).ok())
                            .map_or(now, |e| e.min(now));
                        run.ended = run.ended.max(ended);
                        let points = run.collector.leave_at(run.members[i].source, ended);
                        self.publish(run, points);
                    }
                    WorkerRunState::Failed => {
                        let error = report
                            .error
                            .unwrap_or_else(|| "no reason given".to_string());
                        self.on_gone(run, i, MemberState::Failed, Some(error));
                    }
                    WorkerRunState::Preparing | WorkerRunState::Running => {}
                }
            }
            RunEvent::Lost { worker } | RunEvent::Left { worker } => {
                let gone = if left {
                    MemberState::Left
                } else {
                    MemberState::Lost
                };
                if let Some(i) = run.members.iter().position(|m| m.worker_id == worker) {
                    if run.members[i].state == MemberState::Active {
                        self.on_gone(run, i, gone, None);
                    }
                }
            }
        }
    }

    /// A worker is lost or failed: keep what it sent, and do what
    /// `on_worker_lost` says with its share.
    fn on_gone(&self, run: &mut Collection, i: usize, state: MemberState, error: Option<String>) {
        let at = run.start.elapsed().as_secs_f64();
        let m = &mut run.members[i];
        m.state = state;
        m.lost_at = matches!(state, MemberState::Lost | MemberState::Left).then_some(at);
        let what = match (&error, state) {
            (Some(e), _) => format!("worker {} failed at {at:.1}s: {e}", m.name),
            (None, MemberState::Left) => format!("worker {} shut down at {at:.1}s", m.name),
            (None, _) => format!("worker {} was lost at {at:.1}s", m.name),
        };
        m.error = error;
        let share = m.share;
        let source = m.source;
        log(format_args!("run {}: {what}", self.id));
        run.ended = run.ended.max(run.start.elapsed());
        let points = run.collector.leave_at(source, run.start.elapsed());
        self.publish(run, points);
        if run.failed.is_some() || run.interrupted {
            return;
        }
        if !run.collected && state == MemberState::Failed {
            // It could not start (its files, the target): the run cannot
            // start as asked. One lost before the start is handled as any
            // loss, below.
            run.failed = Some(format!("{what} before the run started"));
            self.stop_all(run);
            return;
        }
        let survivors: Vec<usize> = (0..run.members.len())
            .filter(|&j| run.members[j].state == MemberState::Active)
            .collect();
        if survivors.is_empty() {
            if !run.members.iter().any(|m| m.state == MemberState::Done) {
                run.failed = Some(format!("{what}, the last of the run's workers"));
            }
            return;
        }
        match self.plan.distribution.on_worker_lost {
            OnWorkerLost::Fail => {
                run.failed = Some(format!("{what}, and on_worker_lost = \"fail\""));
                run.interrupted = true;
                self.stop_all(run);
            }
            OnWorkerLost::Continue => run.warnings.push(format!(
                "{what}; on_worker_lost = \"continue\": the load fell short by its share ({:.1}%) from then on",
                share * 100.0
            )),
            OnWorkerLost::Rebalance => match self.rebalance(run, &survivors) {
                Ok(from) => run.warnings.push(format!(
                    "{what}; its share ({:.1}%) moved to {} from {from:.1}s",
                    share * 100.0,
                    match survivors.len() {
                        1 => "the other worker".to_string(),
                        n => format!("the {n} other workers"),
                    }
                )),
                Err(e) => run.warnings.push(format!("{what}; its share could not be moved: {e}")),
            },
        }
    }

    /// Splits the load anew over `survivors`, from a moment far enough
    /// ahead for each to hear of it; returns that moment (seconds since
    /// the start).
    fn rebalance(&self, run: &mut Collection, survivors: &[usize]) -> Result<f64, String> {
        let at = run.start.elapsed() + SHARE_CHANGE_LEAD;
        let mut state = self.coordinator.lock();
        let workers: Vec<(String, BTreeMap<String, String>, u32)> = survivors
            .iter()
            .map(|&i| {
                let m = &run.members[i];
                (m.worker_id.clone(), m.labels.clone(), m.capacity)
            })
            .collect();
        let candidates: Vec<Candidate> = workers
            .iter()
            .map(|(_, labels, capacity)| Candidate {
                labels,
                capacity: *capacity,
            })
            .collect();
        let slices = self.placed(&split(
            &candidates,
            &self.plan.distribution,
            EmptyZones::Spread,
        )?);
        for ((worker_id, _, _), slice) in workers.iter().zip(slices) {
            let slice = slice.unwrap_or(Slice::NONE);
            if let Some(duty) = state
                .workers
                .get_mut(worker_id)
                .and_then(|w| w.duty.as_mut())
                .filter(|d| d.run_id == self.id.as_str())
            {
                duty.share = Some((slice.from, slice.to, at.as_millis() as u64));
            }
        }
        Ok(at.as_secs_f64())
    }

    fn on_tick(&self, run: &mut Collection) {
        let points = run.collector.tick(run.start.elapsed());
        self.publish(run, points);
        let Some(give_up_at) = run.give_up_at else {
            return;
        };
        if Instant::now() < give_up_at {
            return;
        }
        for i in 0..run.members.len() {
            if run.members[i].state == MemberState::Active {
                let error = "it did not finish in time".to_string();
                self.on_gone(run, i, MemberState::Lost, Some(error));
            }
        }
    }

    /// Tells every worker of the run to stop; they still send what they
    /// ran. Workers that do not finish within the graceful stop and a
    /// margin are given up.
    fn stop_all(&self, run: &mut Collection) {
        let mut state = self.coordinator.lock();
        for worker in state.workers.values_mut() {
            if let Some(duty) = worker
                .duty
                .as_mut()
                .filter(|d| d.run_id == self.id.as_str())
            {
                duty.stop = true;
            }
        }
        let give_up = Instant::now() + self.plan.load.graceful_stop + FINISH_MARGIN;
        run.give_up_at = Some(run.give_up_at.map_or(give_up, |at| at.min(give_up)));
    }

    fn publish(&self, run: &Collection, points: Vec<usize>) {
        let Some(&last) = points.last() else {
            return;
        };
        let mut progress = run.collector.progress(last);
        progress.cpu = run
            .members
            .iter()
            .filter(|m| m.state == MemberState::Active)
            .filter_map(|m| m.cpu.latest)
            .reduce(f64::max);
        if let Some(entry) = self.coordinator.lock().runs.get_mut(self.id.as_str()) {
            entry.live = Some(progress);
        }
    }

    /// Frees the run's workers for the next run.
    fn release(&self) {
        let mut state = self.coordinator.lock();
        for worker in state.workers.values_mut() {
            if worker
                .duty
                .as_ref()
                .is_some_and(|d| d.run_id == self.id.as_str())
            {
                worker.duty = None;
            }
        }
    }

    fn fail_start(&self, error: String) {
        log(format_args!("run {} failed: {error}", self.id));
        let mut state = self.coordinator.lock();
        if let Some(entry) = state.runs.get_mut(self.id.as_str()) {
            entry.state = RunState::Failed;
            entry.error = Some(error);
            entry.state_changes.send_replace(RunState::Failed);
        }
    }

    /// Judges the merged result once, adds the workers' section, saves it.
    fn finish(self, run: Collection) {
        self.release();
        let summary = Arc::new(self.summary(run));
        let saved = crate::store::save(&self.coordinator.config.store, &summary);
        if let Err(e) = &saved {
            log(format_args!("run {}: not saved: {e}", self.id));
        }
        log(format_args!(
            "run {} finished: {} requests, {} failures, {}",
            self.id,
            summary.totals.requests,
            summary.totals.failures,
            summary.verdict()
        ));
        let mut state = self.coordinator.lock();
        if let Some(entry) = state.runs.get_mut(self.id.as_str()) {
            entry.summary = Some(summary);
            entry.state = RunState::Finished;
            entry.state_changes.send_replace(RunState::Finished);
        }
    }

    fn summary(&self, run: Collection) -> RunSummary {
        let elapsed = match run.ended {
            Duration::ZERO => run.start.elapsed(),
            ended => ended,
        };
        let target = match &self.plan.target.base {
            BaseUrl::Demo => "demo (each worker's own)".to_string(),
            BaseUrl::Url(endpoint) => endpoint.display(),
        };
        let cores: u32 = run.members.iter().map(|m| m.cores).sum();
        let info = crate::runner::run_info(
            &self.plan,
            self.id.to_string(),
            target,
            cores as usize,
            run.started_at,
            elapsed,
            run.interrupted || run.failed.is_some(),
        );
        let timeline = ShareState::new(Slice::FULL_RANGE).timeline();
        let mut summary = run.collector.finish(&self.plan, info, &timeline);
        summary.warnings.extend(run.warnings);
        for m in &run.members {
            summary
                .warnings
                .extend(m.cpu.warning(&format!("worker {}", m.name)));
        }
        summary.distribution = Some(DistributionReport {
            strategy: match self.plan.distribution.strategy {
                crate::plan::Strategy::Even => "even",
                crate::plan::Strategy::Capacity => "capacity",
            }
            .to_string(),
            on_worker_lost: self.plan.distribution.on_worker_lost.as_str().to_string(),
            failed: run.failed,
            workers: run.members.iter().map(worker_report).collect(),
        });
        summary
    }
}

fn worker_report(m: &Member) -> WorkerReport {
    WorkerReport {
        name: m.name.clone(),
        labels: m.labels.clone(),
        state: m.state.as_str().to_string(),
        share: m.share,
        requests: m.requests,
        failures: m.failures,
        cpu_mean: m.cpu.mean(),
        cpu_peak: (m.cpu.samples > 0).then_some(m.cpu.peak),
        lost_at_s: m.lost_at,
        error: m.error.clone(),
    }
}

/// Free for a new run: alive and not part of one.
fn is_idle(worker: &Worker) -> bool {
    !worker.lost && worker.duty.is_none()
}
