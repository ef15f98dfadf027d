//! The coordinator: the workers it knows, the runs it drives, and the
//! calls its HTTP API ([`api`]) and `coordinator --expect-workers` make.
//!
//! The state is one mutex-guarded registry, held only for short,
//! non-blocking updates. Each run is driven by its own task ([`run`]),
//! which owns the run's collector: the API hands it what workers send
//! (snapshots, run reports) over a channel, and it writes back what each
//! worker should be doing (its duty), which the worker learns on its next
//! heartbeat. Orders are a desired state, not messages: an answer lost on
//! the way is repeated on the next heartbeat.

pub mod api;
mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::protocol::{
    decode_files, Assignment, Heartbeat, HeartbeatReply, LiveFigures, Order, Register, Registered,
    RunRequest, RunState, RunStatus, WorkerInfo, WorkerRun, WorkerRunState, HEARTBEAT_EVERY,
    MISSED_HEARTBEATS,
};
use crate::diag::Severity;
use crate::metrics::live::Progress;
use crate::metrics::summary::RunSummary;
use crate::metrics::wire::{Fingerprint, WireSnapshot, WIRE_VERSION};
use crate::metrics::Snapshot;
use crate::plan::{EnvVars, Files, Inputs, Plan};
use crate::runner::SourceId;
use crate::store::{self, RunId};
use run::RunEvent;

/// How the coordinator is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The shared secret of workers and API clients; `None` on loopback
    /// only (the CLI refuses other addresses without one).
    pub token: Option<String>,
    /// Where finished runs are saved.
    pub store: PathBuf,
    /// How often workers heartbeat; lost after [`MISSED_HEARTBEATS`].
    pub heartbeat: Duration,
}

impl Config {
    pub fn new(token: Option<String>, store: PathBuf) -> Config {
        Config {
            token,
            store,
            heartbeat: HEARTBEAT_EVERY,
        }
    }
}

/// A handle on the coordinator; cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    state: Arc<Mutex<State>>,
    config: Arc<Config>,
    /// Fires when a worker registers or comes back.
    workers_changed: Arc<Notify>,
}

#[derive(Default)]
struct State {
    workers: BTreeMap<String, Worker>,
    runs: BTreeMap<String, RunEntry>,
    next_source: SourceId,
}

struct Worker {
    id: String,
    info: Register,
    /// The worker's number in every run's collector.
    source: SourceId,
    last_seen: Instant,
    cpu: Option<f64>,
    lost: bool,
    /// What it should be doing, if it is part of a run.
    duty: Option<Duty>,
}

/// A worker's part in a run, as the coordinator wants it.
#[derive(Debug, Clone)]
struct Duty {
    run_id: String,
    assignment: Box<Assignment>,
    /// The latest share change: `(from, to, at_ms)`.
    share: Option<(f64, f64, u64)>,
    stop: bool,
}

struct RunEntry {
    name: String,
    state: RunState,
    error: Option<String>,
    /// The workers that took part, by id; their snapshots are accepted
    /// for as long as the run is collecting, even after they were lost.
    members: BTreeMap<String, String>,
    fingerprint: Fingerprint,
    live: Option<Progress>,
    summary: Option<Arc<RunSummary>>,
    events: mpsc::UnboundedSender<RunEvent>,
    cancel: CancellationToken,
    state_changes: watch::Sender<RunState>,
}

/// Why a call to the coordinator was refused; the API turns each into an
/// HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

impl Coordinator {
    /// A coordinator with no worker yet; its watchdog (which marks silent
    /// workers lost) runs until `shutdown` fires.
    pub fn start(config: Config, shutdown: CancellationToken) -> Coordinator {
        let coordinator = Coordinator {
            state: Arc::new(Mutex::new(State::default())),
            config: Arc::new(config),
            workers_changed: Arc::new(Notify::new()),
        };
        tokio::spawn(coordinator.clone().watchdog(shutdown));
        coordinator
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker joins: it gets an id for its heartbeats.
    pub fn register(&self, mut info: Register) -> Result<Registered, Refusal> {
        check_register(&info)?;
        let id = RunId::new().to_string();
        let mut state = self.lock();
        let taken = |name: &str| {
            state
                .workers
                .values()
                .any(|w| !w.lost && w.info.name == name)
        };
        let asked = info.name.clone();
        let mut copy = 1;
        while taken(&info.name) {
            copy += 1;
            info.name = format!("{asked}-{copy}");
        }
        let name = info.name.clone();
        let source = state.next_source;
        state.next_source += 1;
        log(format_args!(
            "worker {} joined ({} cores, capacity {}, labels {})",
            info.name,
            info.cores,
            info.capacity,
            labels_text(&info.labels)
        ));
        state.workers.insert(
            id.clone(),
            Worker {
                id: id.clone(),
                info,
                source,
                last_seen: Instant::now(),
                cpu: None,
                lost: false,
                duty: None,
            },
        );
        drop(state);
        self.workers_changed.notify_waiters();
        Ok(Registered {
            worker_id: id,
            heartbeat_ms: self.config.heartbeat.as_millis() as u64,
            name,
        })
    }

    /// A worker shuts down: it is forgotten now, rather than lost after
    /// its missed heartbeats; a run it had not finished loses it at once.
    pub fn leave(&self, worker_id: &str) -> Result<(), Refusal> {
        let mut state = self.lock();
        let worker = state
            .workers
            .remove(worker_id)
            .ok_or_else(|| Refusal::NotFound("unknown worker".to_string()))?;
        log(format_args!("worker {} left", worker.info.name));
        if let Some(duty) = worker.duty {
            if let Some(entry) = state.runs.get(&duty.run_id) {
                let _ = entry.events.send(RunEvent::Left {
                    worker: worker_id.to_string(),
                });
            }
        }
        Ok(())
    }

    /// A worker's heartbeat: its CPU use and run state in, its orders out.
    pub fn heartbeat(
        &self,
        worker_id: &str,
        mut beat: Heartbeat,
    ) -> Result<HeartbeatReply, Refusal> {
        check_heartbeat(&beat)?;
        // A long reason (a compile error's every line) is cut, not refused.
        if let Some(error) = beat.run.as_mut().and_then(|r| r.error.as_mut()) {
            if error.len() > MAX_ERROR {
                let mut cut = MAX_ERROR;
                while !error.is_char_boundary(cut) {
                    cut -= 1;
                }
                error.truncate(cut);
                error.push('…');
            }
        }
        let mut state = self.lock();
        let worker = state
            .workers
            .get_mut(worker_id)
            .ok_or_else(|| Refusal::NotFound("unknown worker: register again".to_string()))?;
        worker.last_seen = Instant::now();
        worker.cpu = beat.cpu;
        let came_back = std::mem::take(&mut worker.lost);
        if came_back {
            log(format_args!("worker {} is back", worker.info.name));
        }
        let orders = orders_for(worker, beat.run.as_ref());
        let report = match (&worker.duty, beat.run) {
            (Some(duty), Some(run)) if duty.run_id == run.run_id => {
                Some((duty.run_id.clone(), run))
            }
            _ => None,
        };
        if let Some((run_id, run)) = report {
            if let Some(entry) = state.runs.get(&run_id) {
                let _ = entry.events.send(RunEvent::Report {
                    worker: worker_id.to_string(),
                    run,
                    cpu: beat.cpu,
                });
            }
        }
        drop(state);
        if came_back {
            self.workers_changed.notify_waiters();
        }
        Ok(HeartbeatReply {
            now_ms: super::protocol::now_ms(),
            orders,
        })
    }

    /// One second of a worker's run, in its wire form: checked against the
    /// run's plan, then handed to the run's collector.
    pub fn snapshot(
        &self,
        worker_id: &str,
        run_id: &str,
        seq: u64,
        second: u64,
        body: &[u8],
    ) -> Result<(), Refusal> {
        if second > MAX_SECOND || seq == u64::MAX {
            return Err(Refusal::Invalid(format!(
                "snapshot number {seq} or second {second} is out of range"
            )));
        }
        let (fingerprint, events, name) = {
            let state = self.lock();
            let worker = state
                .workers
                .get(worker_id)
                .ok_or_else(|| Refusal::NotFound("unknown worker: register again".to_string()))?;
            let entry = state
                .runs
                .get(run_id)
                .ok_or_else(|| Refusal::NotFound(format!("no run {}", excerpt(run_id))))?;
            if !entry.members.contains_key(worker_id) {
                return Err(Refusal::Conflict(format!(
                    "worker {} is not part of run {run_id}",
                    worker.info.name
                )));
            }
            (
                entry.fingerprint,
                entry.events.clone(),
                worker.info.name.clone(),
            )
        };
        let snapshot = decode(body, &fingerprint).map_err(|e| {
            let message = format!("snapshot {seq} of worker {name} refused: {e}");
            log(format_args!("{message}"));
            Refusal::Invalid(message)
        })?;
        events
            .send(RunEvent::Snapshot {
                worker: worker_id.to_string(),
                seq,
                second,
                snapshot,
            })
            .map_err(|_| Refusal::Conflict(format!("run {run_id} is over")))
    }

    /// The largest snapshot body a run's plan allows.
    pub fn snapshot_limit(&self, run_id: &str) -> Option<usize> {
        let state = self.lock();
        let entry = state.runs.get(run_id)?;
        Some(crate::metrics::wire::max_json_bytes(
            entry.fingerprint.metrics(),
        ))
    }

    /// Every worker, as `GET /api/workers` shows them.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        let state = self.lock();
        state
            .workers
            .values()
            .map(|w| WorkerInfo {
                id: w.id.clone(),
                name: w.info.name.clone(),
                labels: w.info.labels.clone(),
                state: match (w.lost, &w.duty) {
                    (true, _) => "lost",
                    (false, Some(_)) => "busy",
                    (false, None) => "idle",
                }
                .to_string(),
                cores: w.info.cores,
                capacity: w.info.capacity,
                cpu: w.cpu,
                last_heartbeat_s: w.last_seen.elapsed().as_secs_f64(),
                run_id: w.duty.as_ref().map(|d| d.run_id.clone()),
                version: w.info.version.clone(),
            })
            .collect()
    }

    /// Takes a scenario to run over the workers; the run starts once
    /// enough of them have joined. Refused when the scenario is invalid.
    pub fn submit(&self, request: RunRequest) -> Result<RunId, Refusal> {
        check_request(&request)?;
        let plan = Arc::new(compile(&request)?);
        let id = RunId::new();
        let (events, events_rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let (state_changes, _) = watch::channel(RunState::Waiting);
        self.lock().runs.insert(
            id.to_string(),
            RunEntry {
                name: plan.name.clone(),
                state: RunState::Waiting,
                error: None,
                members: BTreeMap::new(),
                fingerprint: crate::plan::fingerprint(&plan),
                live: None,
                summary: None,
                events,
                cancel: cancel.clone(),
                state_changes,
            },
        );
        log(format_args!("run {id} ({}) submitted", plan.name));
        let driver = run::Driver::new(self.clone(), id.clone(), plan, request, cancel);
        let driving = tokio::spawn(driver.drive(events_rx));
        let (coordinator, run_id) = (self.clone(), id.clone());
        tokio::spawn(async move {
            if driving.await.is_err() {
                coordinator.driver_failed(&run_id);
            }
        });
        Ok(id)
    }

    /// A run's driver panicked (a bug): the run fails and frees its
    /// workers, rather than holding them for good.
    fn driver_failed(&self, id: &RunId) {
        log(format_args!("run {id}: its driver failed; this is a bug"));
        let mut state = self.lock();
        for worker in state.workers.values_mut() {
            if worker
                .duty
                .as_ref()
                .is_some_and(|d| d.run_id == id.as_str())
            {
                worker.duty = None;
            }
        }
        if let Some(entry) = state.runs.get_mut(id.as_str()) {
            entry.state = RunState::Failed;
            entry.error =
                Some("the run's driver failed (a bug in loadctl: please report it)".into());
            entry.state_changes.send_replace(RunState::Failed);
        }
    }

    /// A run's state and latest figures.
    pub fn status(&self, id: &str) -> Option<RunStatus> {
        let state = self.lock();
        if let Some(entry) = state.runs.get(id) {
            return Some(RunStatus {
                run_id: id.to_string(),
                name: entry.name.clone(),
                state: entry.state,
                error: entry.error.clone(),
                workers: entry.members.values().cloned().collect(),
                live: entry.live.as_ref().map(LiveFigures::from),
                verdict: entry.summary.as_ref().map(|s| s.verdict().to_string()),
            });
        }
        drop(state);
        let summary = self.saved(id)?;
        Some(RunStatus {
            run_id: id.to_string(),
            name: summary.run.name.clone(),
            state: RunState::Finished,
            error: None,
            workers: summary
                .distribution
                .iter()
                .flat_map(|d| d.workers.iter().map(|w| w.name.clone()))
                .collect(),
            live: None,
            verdict: Some(summary.verdict().to_string()),
        })
    }

    /// A finished run's summary, from memory or the run store.
    pub fn summary(&self, id: &str) -> Option<Arc<RunSummary>> {
        if let Some(entry) = self.lock().runs.get(id) {
            return entry.summary.clone();
        }
        self.saved(id).map(Arc::new)
    }

    fn saved(&self, id: &str) -> Option<RunSummary> {
        let id = RunId::parse(id).ok()?;
        store::get(&self.config.store, &id).ok()
    }

    /// Every run: those in memory (running or done since this coordinator
    /// started) and those in the run store.
    pub fn runs(&self) -> Vec<RunStatus> {
        let ids: Vec<String> = self.lock().runs.keys().cloned().collect();
        let mut runs: Vec<RunStatus> = ids.iter().filter_map(|id| self.status(id)).collect();
        let known: BTreeSet<String> = ids.into_iter().collect();
        for saved in store::list(&self.config.store).unwrap_or_default() {
            if known.contains(saved.id.as_str()) {
                continue;
            }
            runs.push(RunStatus {
                run_id: saved.id.to_string(),
                name: saved.name,
                state: RunState::Finished,
                error: None,
                workers: Vec::new(),
                live: None,
                verdict: Some(saved.verdict.to_string()),
            });
        }
        runs
    }

    /// Stops a run: its workers stop, and what they ran is still reported.
    pub fn cancel(&self, id: &str) -> Result<(), Refusal> {
        match self.lock().runs.get(id) {
            Some(entry) => {
                entry.cancel.cancel();
                Ok(())
            }
            None => Err(Refusal::NotFound(format!(
                "no run {} in progress",
                excerpt(id)
            ))),
        }
    }

    /// Waits for a run to finish: its summary, or why it never started.
    pub async fn wait(&self, id: &RunId) -> Result<Arc<RunSummary>, String> {
        let mut changes = match self.lock().runs.get(id.as_str()) {
            Some(entry) => entry.state_changes.subscribe(),
            None => return Err(format!("no run {id}")),
        };
        loop {
            let state = *changes.borrow_and_update();
            match state {
                RunState::Finished => {
                    return self
                        .summary(id.as_str())
                        .ok_or_else(|| "the run finished without a summary".to_string())
                }
                RunState::Failed => {
                    let error = self
                        .lock()
                        .runs
                        .get(id.as_str())
                        .and_then(|e| e.error.clone());
                    return Err(error.unwrap_or_else(|| "the run failed".to_string()));
                }
                RunState::Waiting | RunState::Running => {}
            }
            if changes.changed().await.is_err() {
                return Err("the run's driver stopped".to_string());
            }
        }
    }

    /// The latest progress of the run most recently started, for `/metrics`
    /// and `coordinator --expect-workers`'s live display.
    pub fn live(&self, id: Option<&str>) -> Option<Progress> {
        let state = self.lock();
        match id {
            Some(id) => state.runs.get(id)?.live.clone(),
            None => state
                .runs
                .values()
                .filter(|r| r.state == RunState::Running)
                .find_map(|r| r.live.clone()),
        }
    }

    /// Marks workers lost that have missed their heartbeats, and tells
    /// their runs.
    async fn watchdog(self, shutdown: CancellationToken) {
        let lost_after = self.config.heartbeat * MISSED_HEARTBEATS + self.config.heartbeat / 2;
        let mut tick = tokio::time::interval(self.config.heartbeat / 4);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let mut state = self.lock();
            let State { workers, runs, .. } = &mut *state;
            // Lost long ago: a worker that comes back registers again.
            workers.retain(|_, w| !(w.lost && w.last_seen.elapsed() > FORGET_LOST_AFTER));
            for worker in workers.values_mut() {
                if worker.lost || worker.last_seen.elapsed() <= lost_after {
                    continue;
                }
                worker.lost = true;
                log(format_args!(
                    "worker {} lost: no heartbeat for {:.1}s",
                    worker.info.name,
                    worker.last_seen.elapsed().as_secs_f64()
                ));
                if let Some(duty) = worker.duty.take() {
                    if let Some(entry) = runs.get(&duty.run_id) {
                        let _ = entry.events.send(RunEvent::Lost {
                            worker: worker.id.clone(),
                        });
                    }
                }
            }
        }
    }
}

/// What a worker should do, given what it says it is doing: its duty's
/// assignment until it reports that run, the latest share change, a stop;
/// and a stop for any other run it is still running.
fn orders_for(worker: &Worker, reported: Option<&WorkerRun>) -> Vec<Order> {
    let mut orders = Vec::new();
    let running_other = reported.filter(|r| {
        worker.duty.as_ref().is_none_or(|d| d.run_id != r.run_id)
            && matches!(r.state, WorkerRunState::Preparing | WorkerRunState::Running)
    });
    if let Some(other) = running_other {
        orders.push(Order::Stop {
            run_id: other.run_id.clone(),
        });
    }
    let Some(duty) = &worker.duty else {
        return orders;
    };
    let knows_it = reported.is_some_and(|r| r.run_id == duty.run_id);
    if !knows_it && !duty.stop {
        orders.push(Order::Assign(duty.assignment.clone()));
    }
    if let Some((from, to, at_ms)) = duty.share {
        orders.push(Order::Share {
            run_id: duty.run_id.clone(),
            from,
            to,
            at_ms,
        });
    }
    if duty.stop {
        orders.push(Order::Stop {
            run_id: duty.run_id.clone(),
        });
    }
    orders
}

/// Compiles a submitted scenario as the workers will: its files from the
/// request, this process's environment (a variable the coordinator lacks
/// is only a warning here: the workers read their own).
fn compile(request: &RunRequest) -> Result<Plan, Refusal> {
    let files = decode_files(&request.files).map_err(Refusal::Invalid)?;
    let inputs = Inputs {
        env: EnvVars::process(),
        files: Files::in_memory(files),
        unset_env: Severity::Warning,
    };
    let name = request
        .scenario_file
        .clone()
        .unwrap_or_else(|| "scenario.toml".to_string());
    let checked = crate::validate::check_text(
        std::path::Path::new(&name),
        &request.scenario,
        &request.overrides,
        &inputs,
    );
    checked
        .into_plan()
        .map_err(|errors| Refusal::Invalid(format!("the scenario is invalid:\n{errors}")))
}

fn decode(body: &[u8], fingerprint: &Fingerprint) -> Result<Snapshot, String> {
    let wire = WireSnapshot::from_json(body, fingerprint).map_err(|e| e.to_string())?;
    wire.into_snapshot(fingerprint).map_err(|e| e.to_string())
}

/// The longest name, label or error text a worker may send.
const MAX_TEXT: usize = 256;
/// The longest failure reason kept from a worker.
const MAX_ERROR: usize = 4096;
/// No run lasts longer (a plan's duration is at most a year).
const MAX_SECOND: u64 = 400 * 24 * 3600;
const MAX_LABELS: usize = 32;

fn check_register(info: &Register) -> Result<(), Refusal> {
    let too_long = |s: &str| s.is_empty() || s.len() > MAX_TEXT || s.chars().any(char::is_control);
    if too_long(&info.name) {
        return Err(Refusal::Invalid(format!(
            "a worker name is 1 to {MAX_TEXT} printable characters"
        )));
    }
    if info.labels.len() > MAX_LABELS || info.labels.iter().any(|(k, v)| too_long(k) || too_long(v))
    {
        return Err(Refusal::Invalid(format!(
            "at most {MAX_LABELS} labels, each key and value 1 to {MAX_TEXT} printable characters"
        )));
    }
    if info.wire_version != WIRE_VERSION {
        return Err(Refusal::Invalid(format!(
            "the worker speaks snapshot wire version {}, this coordinator {WIRE_VERSION}: run the same loadctl version (worker {}, coordinator {})",
            info.wire_version,
            excerpt(&info.version),
            env!("CARGO_PKG_VERSION")
        )));
    }
    if info.cores == 0 || info.capacity == 0 {
        return Err(Refusal::Invalid(
            "cores and capacity must be at least 1".to_string(),
        ));
    }
    Ok(())
}

/// How long a lost worker stays listed (`lost`) before it is forgotten.
const FORGET_LOST_AFTER: Duration = Duration::from_secs(600);

/// The most workers a run may wait for, and the longest it may wait.
const MAX_EXPECTED_WORKERS: usize = 10_000;
const MAX_WAIT_S: f64 = 24.0 * 3600.0;

fn check_request(request: &RunRequest) -> Result<(), Refusal> {
    let files: usize = request.files.values().map(|f| f.len() / 4 * 3).sum();
    if files > super::protocol::MAX_FILES_BYTES {
        return Err(Refusal::Invalid(format!(
            "the run's files hold {files} bytes; at most {} travel to the workers",
            super::protocol::MAX_FILES_BYTES
        )));
    }
    if request
        .expect_workers
        .is_some_and(|n| n == 0 || n > MAX_EXPECTED_WORKERS)
    {
        return Err(Refusal::Invalid(format!(
            "expect_workers is 1 to {MAX_EXPECTED_WORKERS}"
        )));
    }
    if request
        .expect_workers_timeout_s
        .is_some_and(|s| !(s > 0.0 && s <= MAX_WAIT_S))
    {
        return Err(Refusal::Invalid(format!(
            "expect_workers_timeout_s is seconds, above 0 and at most {MAX_WAIT_S} (a day)"
        )));
    }
    Ok(())
}

fn check_heartbeat(beat: &Heartbeat) -> Result<(), Refusal> {
    if beat.cpu.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
        return Err(Refusal::Invalid("cpu is a share from 0 to 1".to_string()));
    }
    if let Some(run) = &beat.run {
        if run.run_id.len() > MAX_TEXT {
            return Err(Refusal::Invalid(
                "a run report's id is too long".to_string(),
            ));
        }
    }
    Ok(())
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "none".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Up to 40 characters of something a client sent, for a message.
fn excerpt(text: &str) -> String {
    text.chars().take(40).collect()
}

/// The coordinator's log line on stderr.
fn log(message: std::fmt::Arguments) {
    eprintln!("coordinator: {message}");
}
