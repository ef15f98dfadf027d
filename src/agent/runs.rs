//! An agent's runs: started within the guardrails, watched, cancelled,
//! listed, and saved to the run store when they end.
//!
//! [`Agent::start_run`] checks the scenario, the caps and a free run slot
//! before anything starts, and gives the runner an address policy (the host
//! allowlist) so the target's resolved addresses are judged before the
//! first request. Each run gets its own stop token, a child of the
//! server's shutdown token, and a supervising task that publishes its
//! progress, saves it to the store when it ends (cancelled runs too, with
//! every report file), records the outcome in the audit log and frees its
//! slot. A live run's figures come from its latest progress; an ended
//! run's from the store, so runs from before a restart are found too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::audit::AuditEntry;
use super::limits::LoadSummary;
use super::resources::{links, ReportLink};
use super::scenario::{problems_error, target_name};
use super::{Agent, ToolError};
use crate::diag::Severity;
use crate::metrics::live::Progress;
use crate::metrics::summary::{RunSummary, StepStats};
use crate::plan::{BaseUrl, Overrides, Plan};
use crate::runner::{self, AddressPolicy, RunHandle, RunOptions};
use crate::store::{self, RunId};

/// At most this many failure kinds are returned with a result (the
/// resources hold them all).
const FAILURES_SHOWN: usize = 10;
/// `list_runs` returns this many saved runs unless asked otherwise.
const DEFAULT_LIST_LIMIT: usize = 20;
/// How long `cancel_run` waits for the run to end before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// `run_load_test`'s and `start_run`'s arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// The scenario's TOML text. Give this or `path`.
    pub scenario: Option<String>,
    /// A scenario file, relative to the server's scenario folder. Give
    /// this or `scenario`.
    pub path: Option<String>,
    /// Concurrent users, replacing the scenario's (closed model).
    pub users: Option<u64>,
    /// Arrivals per second, replacing the scenario's; switches to the
    /// open model.
    pub rate: Option<f64>,
    /// How long to run, e.g. `30s`, replacing the scenario's.
    pub duration: Option<String>,
}

/// `get_run`'s and `cancel_run`'s arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunIdInput {
    /// The run's id, as `start_run` or `list_runs` gave it.
    pub run_id: String,
}

/// `list_runs`'s arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// At most this many saved runs, newest first (default 20).
    pub limit: Option<usize>,
}

/// A run that has started.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunStarted {
    pub run_id: String,
    /// `running`.
    pub state: String,
    pub name: String,
    pub target: String,
    pub load: LoadSummary,
    /// The run's report files, readable once it has ended.
    pub reports: Vec<ReportLink>,
}

/// Request statistics of one step, or of all requests.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StepFigures {
    pub name: String,
    pub method: Option<String>,
    pub requests: u64,
    pub failures: u64,
    /// `failures / requests`.
    pub error_rate: f64,
    /// Requests per second.
    pub rps: f64,
    /// Latency in milliseconds: `min`, `mean`, `max`, `p50`, `p90`, `p95`,
    /// `p99`…
    pub latency_ms: BTreeMap<String, f64>,
    /// Responses by status code.
    pub status_codes: BTreeMap<String, u64>,
    /// Failures by kind (`timeout`, `refused`, `status`…).
    pub errors: BTreeMap<String, u64>,
}

impl StepFigures {
    fn of(s: &StepStats) -> StepFigures {
        StepFigures {
            name: s.name.clone(),
            method: s.method.clone(),
            requests: s.requests,
            failures: s.failures,
            error_rate: s.error_rate,
            rps: s.rps,
            latency_ms: s.latency_ms.0.clone(),
            status_codes: s.status_codes.clone(),
            errors: s.errors.clone(),
        }
    }
}

/// One threshold, judged.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ThresholdOutcome {
    pub metric: String,
    pub expression: String,
    /// What was measured; absent when nothing was.
    pub observed: Option<f64>,
    /// `ms`, `ratio`, `per_second` or `count`.
    pub unit: String,
    pub passed: bool,
}

/// One kind of failure.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FailureFigures {
    pub step: String,
    pub kind: String,
    pub message: String,
    pub count: u64,
}

/// A run's result: the summary an agent reasons about. The whole summary
/// (with the per-second series) is the `summary.json` resource.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RunResult {
    pub run_id: String,
    pub name: String,
    pub target: String,
    /// `passed`, `thresholds_failed` or `interrupted`.
    pub verdict: String,
    pub interrupted: bool,
    /// RFC 3339.
    pub started_at: String,
    pub elapsed_s: f64,
    /// `closed` or `open`.
    pub model: String,
    pub pattern: String,
    pub users: u64,
    pub totals: StepFigures,
    pub steps: Vec<StepFigures>,
    /// Completed flow iterations.
    pub iterations: u64,
    /// Open model: arrivals that never ran.
    pub dropped: u64,
    pub thresholds: Vec<ThresholdOutcome>,
    pub thresholds_passed: bool,
    /// The most frequent failures.
    pub failures: Vec<FailureFigures>,
    /// The run's report files as resources.
    pub reports: Vec<ReportLink>,
}

impl RunResult {
    pub fn of(s: &RunSummary) -> RunResult {
        let id = RunId::parse(&s.run.id).ok();
        RunResult {
            run_id: s.run.id.clone(),
            name: s.run.name.clone(),
            target: s.run.target.clone(),
            verdict: s.verdict().as_str().to_string(),
            interrupted: s.run.interrupted,
            started_at: s.run.started_at.clone(),
            elapsed_s: s.run.elapsed_s,
            model: s.run.model.clone(),
            pattern: s.run.pattern.clone(),
            users: s.run.users,
            totals: StepFigures::of(&s.totals),
            steps: s.steps.iter().map(StepFigures::of).collect(),
            iterations: s.iterations,
            dropped: s.dropped,
            thresholds: s
                .thresholds
                .iter()
                .map(|t| ThresholdOutcome {
                    metric: t.metric.clone(),
                    expression: t.expression.clone(),
                    observed: t.observed,
                    unit: serde_json::to_value(t.unit)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    passed: t.passed,
                })
                .collect(),
            thresholds_passed: s.thresholds_passed,
            failures: s
                .failures
                .iter()
                .take(FAILURES_SHOWN)
                .map(|f| FailureFigures {
                    step: f.step.clone(),
                    kind: f.kind.clone(),
                    message: f.message.clone(),
                    count: f.count,
                })
                .collect(),
            reports: id.as_ref().map(links).unwrap_or_default(),
        }
    }
}

/// A live run's figures, as of its latest second.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LiveFigures {
    pub name: String,
    pub target: String,
    /// The client that started it.
    pub client: String,
    pub load: LoadSummary,
    pub elapsed_s: f64,
    pub duration_s: Option<f64>,
    /// Users active now (busy ones in the open model).
    pub users: u64,
    /// What the pattern asks for now: users, or arrivals per second.
    pub target_level: f64,
    pub requests: u64,
    pub failures: u64,
    pub dropped: u64,
    /// Requests per second over the last second.
    pub rps: f64,
    /// p95 latency of the last second, in milliseconds.
    pub p95_ms: f64,
}

/// Where a run is: `get_run`'s and `cancel_run`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RunStatus {
    pub run_id: String,
    /// `running`, `finished` or `failed`.
    pub state: String,
    /// While running: the latest figures (absent in the first second).
    pub live: Option<LiveFigures>,
    /// Once finished: the result.
    pub result: Option<RunResult>,
    /// If it failed: why.
    pub error: Option<String>,
}

/// A run in `list_runs`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RunEntry {
    pub run_id: String,
    pub name: String,
    /// `running`, or the verdict of a saved run.
    pub state: String,
    pub started_at: String,
}

/// `list_runs`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RunList {
    /// Runs going on now.
    pub live: Vec<RunEntry>,
    /// Saved runs, newest first, at most `limit`.
    pub saved: Vec<RunEntry>,
    /// How many runs are saved in all.
    pub saved_total: usize,
}

/// A run's state as its supervisor publishes it.
#[derive(Debug, Clone)]
pub enum RunState {
    /// The latest second's progress, once there is one.
    Running(Option<Arc<Progress>>),
    /// The result (saved), or why there is none.
    Ended(Result<Arc<RunResult>, String>),
}

/// A run started and not yet saved.
#[derive(Debug)]
pub struct LiveRun {
    pub id: RunId,
    pub name: String,
    pub target: String,
    pub load: LoadSummary,
    pub client: String,
    pub started_at: String,
    stop: CancellationToken,
    state: watch::Sender<RunState>,
}

impl LiveRun {
    fn status(&self) -> RunStatus {
        let state = self.state.borrow().clone();
        let mut status = RunStatus {
            run_id: self.id.to_string(),
            state: "running".into(),
            live: None,
            result: None,
            error: None,
        };
        match state {
            RunState::Running(progress) => {
                status.live = progress.map(|p| self.figures(&p));
            }
            RunState::Ended(Ok(result)) => {
                status.state = "finished".into();
                status.result = Some((*result).clone());
            }
            RunState::Ended(Err(why)) => {
                status.state = "failed".into();
                status.error = Some(why);
            }
        }
        status
    }

    fn figures(&self, p: &Progress) -> LiveFigures {
        LiveFigures {
            name: self.name.clone(),
            target: self.target.clone(),
            client: self.client.clone(),
            load: self.load.clone(),
            elapsed_s: p.elapsed.as_secs_f64(),
            duration_s: p.duration.map(|d| d.as_secs_f64()),
            users: p.users,
            target_level: p.target,
            requests: p.requests,
            failures: p.failures,
            dropped: p.dropped,
            rps: p.rps,
            p95_ms: p.p95_ms,
        }
    }
}

/// What a watched run did next.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// Another second went by.
    Progress(Arc<Progress>),
    Ended(Result<Arc<RunResult>, ToolError>),
}

/// Follows one run's progress to its end ([`Agent::watch`]).
pub struct RunWatch {
    state: watch::Receiver<RunState>,
}

impl RunWatch {
    /// The next second's progress, or the end; returns at once once the
    /// run has ended.
    pub async fn next(&mut self) -> RunEvent {
        loop {
            if let RunState::Ended(result) = &*self.state.borrow() {
                return RunEvent::Ended(result.clone().map_err(ToolError));
            }
            if self.state.changed().await.is_err() {
                // The supervisor is gone; its last word is still readable.
                if let RunState::Ended(result) = &*self.state.borrow() {
                    return RunEvent::Ended(result.clone().map_err(ToolError));
                }
                return RunEvent::Ended(Err(ToolError::new("the run stopped without a result")));
            }
            if let RunState::Running(Some(p)) = &*self.state.borrow_and_update() {
                return RunEvent::Progress(p.clone());
            }
        }
    }
}

impl Agent {
    pub(super) fn live_count(&self) -> usize {
        self.inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    fn live_run(&self, id: &RunId) -> Option<Arc<LiveRun>> {
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(id).cloned()
    }

    fn audit(&self, event: &'static str, tool: &'static str, client: &str) -> AuditEntry {
        AuditEntry {
            event,
            client: client.to_string(),
            tool,
            run_id: None,
            target: None,
            load: None,
            outcome: None,
            reason: None,
        }
    }

    /// Checks `input` against the guardrails and starts the run; `client`
    /// is who asks (for the audit log) and `tool` which tool.
    pub async fn start_run(
        &self,
        input: &RunInput,
        client: &str,
        tool: &'static str,
    ) -> Result<RunStarted, ToolError> {
        let refused = |reason: String, plan: Option<&Plan>| {
            self.inner.audit.record(AuditEntry {
                target: plan.map(target_name),
                load: plan.map(|p| LoadSummary::of(&p.load)),
                outcome: Some("refused".into()),
                reason: Some(reason.clone()),
                ..self.audit("run_refused", tool, client)
            });
            ToolError::new(reason)
        };
        let overrides = Overrides {
            users: input.users,
            rate: input.rate,
            duration: input.duration.clone(),
            ..Overrides::default()
        };
        let checked = self
            .check(
                input.scenario.as_deref(),
                input.path.as_deref(),
                &overrides,
                Severity::Error,
            )
            .map_err(|e| refused(e.0, None))?;
        let Some(plan) = &checked.plan else {
            return Err(refused(
                problems_error("the scenario is not valid", &checked).0,
                None,
            ));
        };
        let refusals = self.refusals(plan);
        if !refusals.is_empty() {
            let reason = format!(
                "this server refuses the run; nothing was sent:\n- {}",
                refusals.join("\n- ")
            );
            return Err(refused(reason, Some(plan)));
        }
        let run = self
            .reserve(plan, client)
            .map_err(|e| refused(e.0, Some(plan)))?;
        let plan = checked.plan.expect("checked above");
        let options = RunOptions {
            run_id: Some(run.id.clone()),
            address_policy: self.address_policy(&plan),
            abort: Some(self.inner.abort.child_token()),
            ..RunOptions::default()
        };
        let handle = match runner::start(Arc::new(plan), options, run.stop.clone()).await {
            Ok(handle) => handle,
            Err(e) => {
                self.release(&run.id);
                let reason = format!("the run did not start: {e:#}");
                self.inner.audit.record(AuditEntry {
                    run_id: Some(run.id.to_string()),
                    target: Some(run.target.clone()),
                    load: Some(run.load.clone()),
                    outcome: Some("refused".into()),
                    reason: Some(reason.clone()),
                    ..self.audit("run_refused", tool, client)
                });
                return Err(ToolError::new(reason));
            }
        };
        self.inner.audit.record(AuditEntry {
            run_id: Some(run.id.to_string()),
            target: Some(run.target.clone()),
            load: Some(run.load.clone()),
            ..self.audit("run_started", tool, client)
        });
        tokio::spawn(self.clone().supervise(run.clone(), handle, tool));
        Ok(RunStarted {
            run_id: run.id.to_string(),
            state: "running".into(),
            name: run.name.clone(),
            target: run.target.clone(),
            load: run.load.clone(),
            reports: links(&run.id),
        })
    }

    /// Takes a run slot for `plan`, or says why there is none.
    fn reserve(&self, plan: &Plan, client: &str) -> Result<Arc<LiveRun>, ToolError> {
        let max = self.guardrails().limits.max_concurrent_runs;
        let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.len() >= max {
            let ids: Vec<String> = live.keys().map(|id| id.to_string()).collect();
            return Err(ToolError::new(format!(
                "this server runs at most {max} run(s) at a time (--max-concurrent-runs {max}) and {} still running ({}): wait for it to end (get_run) or stop it (cancel_run), then start again; only the person running `loadctl serve-mcp` can raise --max-concurrent-runs",
                if ids.len() == 1 { "this one is" } else { "these are" },
                ids.join(", ")
            )));
        }
        let (state, _) = watch::channel(RunState::Running(None));
        let run = Arc::new(LiveRun {
            id: RunId::new(),
            name: plan.name.clone(),
            target: target_name(plan),
            load: LoadSummary::of(&plan.load),
            client: client.to_string(),
            started_at: jiff::Timestamp::now().to_string(),
            stop: self.inner.shutdown.child_token(),
            state,
        });
        live.insert(run.id.clone(), run.clone());
        Ok(run)
    }

    fn release(&self, id: &RunId) {
        let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(id);
    }

    /// The host allowlist as the runner's address check; none for the
    /// demo target, which this process serves itself on loopback.
    fn address_policy(&self, plan: &Plan) -> Option<AddressPolicy> {
        let BaseUrl::Url(endpoint) = &plan.target.base else {
            return None;
        };
        let hosts = self.guardrails().hosts.clone();
        let host = endpoint.host.clone();
        Some(AddressPolicy(Arc::new(move |addrs| {
            hosts.check(&host, addrs)
        })))
    }

    /// Publishes the run's progress, saves it when it ends, records the
    /// outcome, and frees its slot.
    async fn supervise(self, run: Arc<LiveRun>, mut handle: RunHandle, tool: &'static str) {
        while let Some(progress) = handle.next_progress().await {
            run.state
                .send_replace(RunState::Running(Some(Arc::new(progress))));
        }
        let ended = match handle.wait().await {
            Ok(summary) => match store::save(&self.inner.runs_dir, &summary) {
                Ok(_) => Ok(Arc::new(RunResult::of(&summary))),
                Err(e) => Err(format!(
                    "the run ended ({}) but could not be saved: {e}",
                    summary.verdict()
                )),
            },
            Err(e) => Err(format!("the run failed: {e:#}")),
        };
        let (outcome, reason) = match &ended {
            Ok(result) => (result.verdict.clone(), None),
            Err(why) => ("failed".to_string(), Some(why.clone())),
        };
        self.inner.audit.record(AuditEntry {
            run_id: Some(run.id.to_string()),
            target: Some(run.target.clone()),
            load: Some(run.load.clone()),
            outcome: Some(outcome),
            reason,
            ..self.audit("run_ended", tool, &run.client)
        });
        if let Err(why) = &ended {
            let mut failed = self.inner.failed.lock().unwrap_or_else(|e| e.into_inner());
            if failed.len() >= super::FAILED_RUNS_KEPT {
                failed.pop_front();
            }
            failed.push_back((run.id.clone(), why.clone()));
        }
        run.state.send_replace(RunState::Ended(ended));
        self.release(&run.id);
    }

    /// Follows a live run (`None` when it is not live).
    pub fn watch(&self, id: &RunId) -> Option<RunWatch> {
        self.live_run(id).map(|run| RunWatch {
            state: run.state.subscribe(),
        })
    }

    /// Asks a live run to stop (scheduling ends at once; in-flight
    /// requests get the scenario's graceful stop); false when not live.
    pub fn stop(&self, id: &RunId) -> bool {
        match self.live_run(id) {
            Some(run) => {
                run.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// `get_run`: a live run's latest figures, or an ended run's result.
    pub fn get_run(&self, input: &RunIdInput) -> Result<RunStatus, ToolError> {
        let id = parse_id(&input.run_id)?;
        if let Some(run) = self.live_run(&id) {
            return Ok(run.status());
        }
        let failed = {
            let failed = self.inner.failed.lock().unwrap_or_else(|e| e.into_inner());
            failed
                .iter()
                .find(|(failed_id, _)| *failed_id == id)
                .map(|(_, why)| why.clone())
        };
        if let Some(why) = failed {
            return Ok(RunStatus {
                run_id: id.to_string(),
                state: "failed".into(),
                live: None,
                result: None,
                error: Some(why),
            });
        }
        let summary = store::get(&self.inner.runs_dir, &id).map_err(|e| {
            ToolError::new(format!("{e}; list_runs shows the runs this server knows"))
        })?;
        Ok(RunStatus {
            run_id: id.to_string(),
            state: "finished".into(),
            live: None,
            result: Some(RunResult::of(&summary)),
            error: None,
        })
    }

    /// `cancel_run`: stops a live run and waits (a few seconds at most)
    /// for its saved result; an ended run is left as it is.
    pub async fn cancel_run(
        &self,
        input: &RunIdInput,
        client: &str,
    ) -> Result<RunStatus, ToolError> {
        let id = parse_id(&input.run_id)?;
        if let Some(mut watch) = self.watch(&id) {
            self.inner.audit.record(AuditEntry {
                run_id: Some(id.to_string()),
                ..self.audit("cancel_requested", "cancel_run", client)
            });
            self.stop(&id);
            let ended = tokio::time::timeout(CANCEL_WAIT, async {
                loop {
                    if let RunEvent::Ended(_) = watch.next().await {
                        break;
                    }
                }
            })
            .await;
            if ended.is_err() {
                // Still finishing its in-flight requests: report it live.
                return self.get_run(input);
            }
        }
        self.get_run(input)
    }

    /// `list_runs`: live runs, then saved runs newest first.
    pub fn list_runs(&self, input: &ListInput) -> Result<RunList, ToolError> {
        let live: Vec<RunEntry> = {
            let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
            live.values()
                .map(|r| RunEntry {
                    run_id: r.id.to_string(),
                    name: r.name.clone(),
                    state: "running".into(),
                    started_at: r.started_at.clone(),
                })
                .collect()
        };
        let saved = store::list(&self.inner.runs_dir).map_err(|e| ToolError::new(e.to_string()))?;
        let limit = input.limit.unwrap_or(DEFAULT_LIST_LIMIT);
        Ok(RunList {
            live,
            saved_total: saved.len(),
            saved: saved
                .into_iter()
                .take(limit)
                .map(|r| RunEntry {
                    run_id: r.id.to_string(),
                    name: r.name,
                    state: r.verdict.as_str().to_string(),
                    started_at: r.started_at,
                })
                .collect(),
        })
    }

    /// Stops every run and waits, up to `within`, for them to be saved.
    /// Ends every run at once (stdin closed): scheduling stops and what is
    /// in flight is aborted, so each run ends and is saved promptly.
    pub fn abort_all(&self) {
        self.inner.shutdown.cancel();
        self.inner.abort.cancel();
    }

    pub async fn shutdown(&self, within: Duration) {
        self.abort_all();
        let deadline = tokio::time::Instant::now() + within;
        while self.live_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn parse_id(text: &str) -> Result<RunId, ToolError> {
    RunId::parse(text).map_err(|e| {
        ToolError::new(format!(
            "`run_id`: {e}; use an id from start_run or list_runs"
        ))
    })
}
