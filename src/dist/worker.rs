//! The worker: connects out to its coordinator, heartbeats, runs what it
//! is assigned through the same run handle as `loadctl run`, and sends
//! each closed second's snapshot.
//!
//! Three tasks share the worker's state: the heartbeat loop (which
//! carries orders in and the run's state out, and stops the run when the
//! coordinator has been unreachable too long), the run itself, and the
//! sender, which posts queued snapshots in order and retries until each
//! is taken or refused. A run is reported done only once every snapshot
//! has left, so the coordinator never closes a worker's part early.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::{ApiClient, ApiError};
use super::protocol::{
    decode_files, now_ms, Assignment, Heartbeat, HeartbeatReply, Order, Register, Registered,
    WorkerRun, WorkerRunState, HEARTBEAT_EVERY,
};
use crate::diag::Severity;
use crate::metrics::summary::RunSummary;
use crate::metrics::wire::WIRE_VERSION;
use crate::plan::{BaseUrl, EnvVars, Files, Inputs, Plan};
use crate::runner::{self, RowSplit, RunControl, RunOptions, Share, Slice};
use crate::store::RunId;
use crate::sys::CpuMeter;

/// A coordinator unreachable this long stops the worker's run.
pub const UNREACHABLE_STOP: Duration = Duration::from_secs(5);
/// Snapshots kept for a coordinator that does not take them: an hour of
/// seconds; older ones are dropped (the local results keep everything).
const MAX_QUEUED: usize = 3600;

/// How the worker is set up.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub coordinator: String,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub capacity: u32,
    /// Generator threads (0: one per core).
    pub threads: usize,
    /// Where a run cut off from its coordinator keeps its results.
    pub results_dir: PathBuf,
}

/// The worker's state, shared by its tasks.
#[derive(Default)]
struct State {
    run: Option<Current>,
    outbox: VecDeque<Queued>,
    /// Successive snapshot numbers of the current run.
    next_seq: u64,
    /// The id the coordinator gave this worker, and its name there.
    worker_id: Option<String>,
    name: Option<String>,
}

/// The run this worker was assigned, until the coordinator assigns another.
struct Current {
    run_id: String,
    state: WorkerRunState,
    error: Option<String>,
    control: Option<RunControl>,
    /// A share change heard before the run started, or the last applied.
    share: Option<(f64, f64, u64)>,
    applied_share: Option<u64>,
    stop: bool,
    /// The run has ended (its summary is made).
    ended: bool,
    /// When it ended, in seconds since the agreed start.
    elapsed_s: Option<f64>,
}

struct Queued {
    /// The id this worker had when it ran the run: the run knows it by
    /// that one, even after the worker registered again.
    worker_id: Option<String>,
    run_id: String,
    seq: u64,
    second: u64,
    body: Vec<u8>,
}

#[derive(Clone)]
struct Worker {
    config: Arc<WorkerConfig>,
    client: Arc<ApiClient>,
    state: Arc<Mutex<State>>,
    queued: Arc<Notify>,
    /// The coordinator's clock minus this one's, in ms (best estimate).
    offset_ms: Arc<Mutex<ClockOffset>>,
    /// The coordinator was last heard from.
    last_contact: Arc<Mutex<Instant>>,
}

/// The clock offset from the heartbeat with the shortest round trip.
#[derive(Debug, Default, Clone, Copy)]
struct ClockOffset {
    offset_ms: i64,
    round_trip_ms: Option<u64>,
}

/// Runs the worker until `shutdown`; an error when the coordinator refuses
/// it (a wrong token, another version) or cannot be set up.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = ApiClient::new(
        &config.coordinator,
        config.token.as_deref(),
        config.ca_file.as_deref(),
    )
    .await?;
    let worker = Worker {
        config: Arc::new(config),
        client: Arc::new(client),
        state: Arc::default(),
        queued: Arc::default(),
        offset_ms: Arc::default(),
        last_contact: Arc::new(Mutex::new(Instant::now())),
    };
    // The sender outlives the shutdown: the run's last seconds are sent
    // while the worker leaves.
    let stop_sending = CancellationToken::new();
    let sender = tokio::spawn(worker.clone().send_snapshots(stop_sending.clone()));
    let result = worker.heartbeats(shutdown.clone()).await;
    if result.is_ok() {
        worker.leave().await;
    }
    stop_sending.cancel();
    sender.abort();
    result
}

/// How long a worker that is shutting down waits for its run to end and
/// its last snapshots to leave.
const LEAVING_WITHIN: Duration = Duration::from_secs(20);

impl Worker {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn register(&self, shutdown: &CancellationToken) -> anyhow::Result<Option<Registered>> {
        let register = Register {
            name: self.config.name.clone(),
            labels: self.config.labels.clone(),
            cores: crate::sys::cores() as u32,
            capacity: self.config.capacity,
            version: env!("CARGO_PKG_VERSION").to_string(),
            wire_version: WIRE_VERSION,
        };
        let mut said_unreachable = false;
        loop {
            match self
                .client
                .post::<_, Registered>("/api/workers", &register)
                .await
            {
                Ok(registered) => {
                    log(format_args!(
                        "registered with {} as {}",
                        self.client.url(),
                        if registered.name.is_empty() {
                            &self.config.name
                        } else {
                            &registered.name
                        }
                    ));
                    return Ok(Some(registered));
                }
                Err(e) if e.is_transient() => {
                    if !said_unreachable {
                        log(format_args!("{e}; trying again every second"));
                        said_unreachable = true;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
                _ = shutdown.cancelled() => return Ok(None),
            }
        }
    }

    /// Registers, then heartbeats once a second until `shutdown`;
    /// registers again when the coordinator no longer knows this worker.
    async fn heartbeats(&self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut cpu = CpuMeter::for_threads(self.config.threads);
        'register: loop {
            let Some(registered) = self.register(&shutdown).await? else {
                return Ok(());
            };
            *self.last_contact.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            {
                let mut state = self.lock();
                state.worker_id = Some(registered.worker_id.clone());
                state.name = Some(registered.name.clone()).filter(|n| !n.is_empty());
            }
            let path = format!("/api/workers/{}/heartbeat", registered.worker_id);
            let every = Duration::from_millis(registered.heartbeat_ms.clamp(100, 10_000));
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
                let beat = Heartbeat {
                    sent_ms: now_ms(),
                    cpu: cpu.sample(),
                    run: self.report(),
                };
                match self.client.post::<_, HeartbeatReply>(&path, &beat).await {
                    Ok(reply) => {
                        *self.last_contact.lock().unwrap_or_else(|e| e.into_inner()) =
                            Instant::now();
                        self.observe_clock(beat.sent_ms, reply.now_ms);
                        for order in reply.orders {
                            self.obey(order);
                        }
                    }
                    Err(e) if e.status() == Some(http::StatusCode::NOT_FOUND) => {
                        log(format_args!(
                            "the coordinator forgot this worker; registering again"
                        ));
                        continue 'register;
                    }
                    Err(e) if e.is_transient() => self.on_unreachable(&e),
                    Err(e @ ApiError::Unauthorized { .. }) => return Err(e.into()),
                    // A heartbeat refused (a bug on either side): said, and
                    // the next one tries again.
                    Err(e) => log(format_args!("heartbeat refused: {e}")),
                }
            }
        }
    }

    /// Stops the run when the coordinator has been silent too long: a
    /// generator nobody watches must not go on loading the target.
    fn on_unreachable(&self, e: &ApiError) {
        let silent = self
            .last_contact
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        if silent < UNREACHABLE_STOP {
            return;
        }
        let mut state = self.lock();
        if let Some(run) = state.run.as_mut().filter(|r| !r.ended && !r.stop) {
            log(format_args!(
                "{e}; stopping run {} after {:.0}s without the coordinator (its results stay in {})",
                run.run_id,
                silent.as_secs_f64(),
                self.config.results_dir.display()
            ));
            run.stop = true;
            if let Some(control) = &run.control {
                control.stop();
            }
        }
    }

    fn observe_clock(&self, sent_ms: u64, coordinator_ms: u64) {
        let received_ms = now_ms();
        let round_trip = received_ms.saturating_sub(sent_ms);
        let midpoint = (sent_ms + received_ms) / 2;
        let offset = coordinator_ms as i64 - midpoint as i64;
        let mut clock = self.offset_ms.lock().unwrap_or_else(|e| e.into_inner());
        if clock.round_trip_ms.is_none_or(|best| round_trip <= best) {
            *clock = ClockOffset {
                offset_ms: offset,
                round_trip_ms: Some(round_trip),
            };
        }
    }

    /// The current run's state for the next heartbeat: done only once the
    /// run has ended and every snapshot has left.
    fn report(&self) -> Option<WorkerRun> {
        let state = self.lock();
        let run = state.run.as_ref()?;
        let all_sent = !state.outbox.iter().any(|q| q.run_id == run.run_id);
        let run_state = match run.state {
            WorkerRunState::Running if run.ended && all_sent => WorkerRunState::Done,
            WorkerRunState::Running if run.ended => WorkerRunState::Running,
            other => other,
        };
        Some(WorkerRun {
            run_id: run.run_id.clone(),
            state: run_state,
            snapshots: state.next_seq,
            error: run.error.clone(),
            elapsed_s: run.elapsed_s,
        })
    }

    fn obey(&self, order: Order) {
        match order {
            Order::Assign(assignment) => self.assign(*assignment),
            Order::Share {
                run_id,
                from,
                to,
                at_ms,
            } => {
                let mut state = self.lock();
                if let Some(run) = state.run.as_mut().filter(|r| r.run_id == run_id) {
                    run.share = Some((from, to, at_ms));
                    apply_share(run);
                }
            }
            Order::Stop { run_id } => {
                let mut state = self.lock();
                if let Some(run) = state.run.as_mut().filter(|r| r.run_id == run_id) {
                    run.stop = true;
                    if let Some(control) = &run.control {
                        control.stop();
                    }
                }
            }
        }
    }

    fn assign(&self, assignment: Assignment) {
        {
            let mut state = self.lock();
            if let Some(run) = &state.run {
                // The same run again (our report crossed its order), or a
                // new one while the last still runs: the coordinator learns
                // of it from our next report.
                if run.run_id == assignment.run_id || !run.ended {
                    return;
                }
            }
            state.run = Some(Current {
                run_id: assignment.run_id.clone(),
                state: WorkerRunState::Preparing,
                error: None,
                control: None,
                share: None,
                applied_share: None,
                stop: false,
                ended: false,
                elapsed_s: None,
            });
            state.next_seq = 0;
        }
        log(format_args!(
            "assigned run {}: load {:.1}% (rows {} of {})",
            assignment.run_id,
            (assignment.share.to - assignment.share.from) * 100.0,
            assignment.share.k,
            assignment.share.n
        ));
        tokio::spawn(self.clone().run_assignment(assignment));
    }

    async fn run_assignment(self, assignment: Assignment) {
        let run_id = assignment.run_id.clone();
        let summary = match self.start_and_run(assignment).await {
            Ok(summary) => summary,
            Err(error) => {
                log(format_args!("run {run_id} failed: {error:#}"));
                let mut state = self.lock();
                if let Some(run) = state.run.as_mut().filter(|r| r.run_id == run_id) {
                    run.state = WorkerRunState::Failed;
                    run.error = Some(format!("{error:#}"));
                    run.ended = true;
                }
                return;
            }
        };
        let cut_off = {
            let mut state = self.lock();
            if let Some(run) = state.run.as_mut().filter(|r| r.run_id == run_id) {
                run.ended = true;
                run.control = None;
                run.elapsed_s = Some(summary.run.elapsed_s);
            }
            self.last_contact
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed()
                >= UNREACHABLE_STOP
        };
        log(format_args!(
            "run {run_id}: this worker's part is over ({} requests, {} failures)",
            summary.totals.requests, summary.totals.failures
        ));
        if cut_off {
            self.keep_locally(&summary);
        }
    }

    /// Compiles the assigned plan, starts its share at the agreed instant,
    /// queues each closed second for the coordinator, and waits for its end.
    async fn start_and_run(&self, a: Assignment) -> anyhow::Result<RunSummary> {
        let plan = Arc::new(compile(&a)?);
        let fingerprint = crate::plan::fingerprint(&plan);
        if fingerprint.to_string() != a.fingerprint {
            anyhow::bail!(
                "the scenario compiles to another plan here (fingerprint {fingerprint}, the coordinator's {}): run the same loadctl version on both",
                a.fingerprint.chars().take(20).collect::<String>()
            );
        }
        reachable(&plan).await?;
        let share = Share {
            load: Slice::new(a.share.from, a.share.to).map_err(anyhow::Error::msg)?,
            rows: RowSplit::new(a.share.k, a.share.n).map_err(anyhow::Error::msg)?,
        };
        let offset = self
            .offset_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .offset_ms;
        let start_ms = (a.start_ms as i64 - offset).max(0) as u64;
        let options = RunOptions {
            threads: if a.threads == 0 {
                self.config.threads
            } else {
                a.threads
            },
            share,
            start_at: Some(UNIX_EPOCH + Duration::from_millis(start_ms)),
            snapshots: true,
            run_id: RunId::parse(&a.run_id).ok(),
            ..RunOptions::default()
        };
        let mut handle = runner::start(plan, options, CancellationToken::new()).await?;
        {
            let mut state = self.lock();
            let Some(run) = state.run.as_mut().filter(|r| r.run_id == a.run_id) else {
                handle.stop();
                anyhow::bail!("the run was replaced before it started");
            };
            run.state = WorkerRunState::Running;
            run.control = Some(handle.control());
            if run.stop {
                handle.stop();
            }
            apply_share(run);
        }
        if let Some(mut snapshots) = handle.take_snapshots() {
            while let Some(interval) = snapshots.recv().await {
                let body = interval.snapshot.to_wire(&fingerprint).to_json();
                self.enqueue(&a.run_id, interval.second, body);
            }
        }
        handle.wait().await
    }

    fn enqueue(&self, run_id: &str, second: u64, body: Vec<u8>) {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        if state.outbox.len() >= MAX_QUEUED {
            state.outbox.pop_front();
        }
        let worker_id = state.worker_id.clone();
        state.outbox.push_back(Queued {
            worker_id,
            run_id: run_id.to_string(),
            seq,
            second,
            body,
        });
        drop(state);
        self.queued.notify_one();
    }

    /// Posts queued snapshots in order; one the coordinator refuses is
    /// dropped (and logged), one that cannot be delivered is tried again.
    async fn send_snapshots(self, shutdown: CancellationToken) {
        loop {
            let next = {
                let state = self.lock();
                state.outbox.front().map(|q| {
                    let worker_id = q.worker_id.clone();
                    (worker_id, q.run_id.clone(), q.seq, q.second, q.body.clone())
                })
            };
            let Some((worker_id, run_id, seq, second, body)) = next else {
                tokio::select! {
                    _ = self.queued.notified() => continue,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            };
            let Some(worker_id) = worker_id else {
                // Recorded before registering: cannot happen, as runs come
                // from the coordinator; dropped rather than sent as nobody.
                self.pop(seq);
                continue;
            };
            let path = format!("/api/workers/{worker_id}/snapshots/{run_id}/{seq}/{second}");
            match self.client.post_bytes(&path, body).await {
                Ok(_) => self.pop(seq),
                Err(e) if e.is_transient() => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    log(format_args!("snapshot {seq} of run {run_id} refused: {e}"));
                    self.pop(seq);
                }
            }
        }
    }

    /// `/api/workers/ID`, once registered.
    fn worker_path(&self) -> Option<String> {
        let id = self.lock().worker_id.clone()?;
        Some(format!("/api/workers/{id}"))
    }

    fn pop(&self, seq: u64) {
        let mut state = self.lock();
        if state.outbox.front().is_some_and(|q| q.seq == seq) {
            state.outbox.pop_front();
        }
    }

    fn stop_run(&self) {
        let mut state = self.lock();
        if let Some(run) = state.run.as_mut() {
            run.stop = true;
            if let Some(control) = &run.control {
                control.stop();
            }
        }
    }

    /// Shutting down: stops the run, waits (a while) for its end and its
    /// last snapshots to leave, and leaves the coordinator, which then
    /// need not wait for missed heartbeats: a run still going treats it as
    /// lost at once (its share moves on), with everything it ran counted.
    async fn leave(&self) {
        self.stop_run();
        let deadline = Instant::now() + LEAVING_WITHIN;
        let busy = |w: &Worker| {
            let state = w.lock();
            state.run.as_ref().is_some_and(|r| !r.ended) || !state.outbox.is_empty()
        };
        let path = self.worker_path();
        let mut last_beat = Instant::now();
        while Instant::now() < deadline && busy(self) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Still heartbeating, so it is not taken for lost (and its last
            // seconds refused) while it finishes.
            if let Some(path) = path
                .as_ref()
                .filter(|_| last_beat.elapsed() >= HEARTBEAT_EVERY)
            {
                last_beat = Instant::now();
                let beat = Heartbeat {
                    sent_ms: now_ms(),
                    cpu: None,
                    run: self.report(),
                };
                let heartbeat = format!("{path}/heartbeat");
                let _ = self
                    .client
                    .post::<_, HeartbeatReply>(&heartbeat, &beat)
                    .await;
            }
        }
        let Some(path) = path else {
            return;
        };
        match self.client.delete::<serde_json::Value>(&path).await {
            Ok(_) => log(format_args!("left the coordinator")),
            Err(e) => log(format_args!("leaving the coordinator: {e}")),
        }
    }

    /// Saves a run cut off from its coordinator under the results folder,
    /// in a folder of this worker's name (workers may share a machine).
    fn keep_locally(&self, summary: &RunSummary) {
        let name = self
            .lock()
            .name
            .clone()
            .unwrap_or_else(|| self.config.name.clone());
        // A folder name, whatever the name holds.
        let folder: String = name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || "-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = self.config.results_dir.join(folder);
        match crate::store::save(&dir, summary) {
            Ok(id) => log(format_args!(
                "the coordinator was unreachable: this worker's results of run {id} are in {}",
                dir.join(id.as_str()).display()
            )),
            Err(e) => log(format_args!(
                "the results of this worker's run are lost: {e}"
            )),
        }
    }
}

/// Applies the latest share change heard, once the run has a control and
/// if it was not applied yet.
fn apply_share(run: &mut Current) {
    let (Some((from, to, at_ms)), Some(control)) = (run.share, &run.control) else {
        return;
    };
    if run.applied_share == Some(at_ms) {
        return;
    }
    run.applied_share = Some(at_ms);
    let share = match Slice::new(from, to) {
        Ok(load) => Share {
            load,
            rows: control.share().rows,
        },
        Err(e) => return log(format_args!("a share change refused: {e}")),
    };
    let at = Duration::from_millis(at_ms);
    if let Err(e) = control.set_share_at(share, at) {
        // Heard too late for the agreed instant: change now instead.
        match control.set_share(share) {
            Ok(_) => log(format_args!(
                "share change at {at:?} heard late ({e}); applied now"
            )),
            Err(e) => log(format_args!("a share change refused: {e}")),
        }
    } else {
        log(format_args!(
            "share changed to {:.1}% from {:.1}s",
            (to - from) * 100.0,
            at.as_secs_f64()
        ));
    }
}

/// Compiles an assignment's scenario with its files and this machine's
/// environment; every error, with its line, on failure.
fn compile(a: &Assignment) -> anyhow::Result<Plan> {
    let files = decode_files(&a.files).map_err(anyhow::Error::msg)?;
    let inputs = Inputs {
        env: EnvVars::process(),
        files: Files::in_memory(files),
        unset_env: Severity::Error,
    };
    let name = a.scenario_file.as_deref().unwrap_or("scenario.toml");
    let checked = crate::validate::check_text(Path::new(name), &a.scenario, &a.overrides, &inputs);
    checked
        .into_plan()
        .map_err(|errors| anyhow::anyhow!("the scenario does not compile here:\n{errors}"))
}

/// Fails when the target cannot be reached from here, before the start,
/// so the coordinator can say so rather than count a run of failures.
async fn reachable(plan: &Plan) -> anyhow::Result<()> {
    let BaseUrl::Url(endpoint) = &plan.target.base else {
        return Ok(());
    };
    let address = (endpoint.host.as_str(), endpoint.port);
    let connect = async {
        let addrs: Vec<_> = tokio::net::lookup_host(address).await?.collect();
        let mut last = std::io::Error::other("no address");
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match tokio::time::timeout(plan.target.connect_timeout, connect).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => anyhow::bail!("cannot reach the target {}: {e}", endpoint.display()),
        Err(_) => anyhow::bail!(
            "cannot reach the target {}: no connection within {:?}",
            endpoint.display(),
            plan.target.connect_timeout
        ),
    }
}

/// The worker's log line on stderr.
fn log(message: std::fmt::Arguments) {
    eprintln!("worker: {message}");
}
