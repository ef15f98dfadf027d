//! A virtual user: runs flow iterations on its own connection and records
//! every request it sends.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Full;
use minijinja::value::Object;
use minijinja::Value;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::engine::{self, Connector, Failure, Measured, Prepared, Response, Session};
use crate::metrics::summary::McpSessions;
use crate::metrics::{ErrorKind, Sample, Snapshot};
use crate::plan::template::Globals;
use crate::plan::{Plan, SessionScope};

/// How an iteration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IterationEnd {
    /// Every step passed.
    Completed,
    /// A step failed, which ends the iteration.
    Failed,
    /// The run stopped during the iteration.
    Stopped,
    /// The run had stopped before the iteration began; nothing was sent.
    NotStarted,
    /// A `unique` data feeder ran out of rows; nothing was sent.
    DataExhausted,
}

pub struct User {
    pub id: u64,
    flow: usize,
    plan: Arc<Plan>,
    connector: Arc<Connector>,
    session: Session,
    shared: Arc<Shared>,
    recorder: Rc<RefCell<Snapshot>>,
    start: Instant,
    stop: CancellationToken,
    hard_stop: CancellationToken,
    scope: Arc<ScopeGlobals>,
    /// Per step: the request, when nothing in it is a template.
    prepared: Vec<Option<Prepared>>,
    /// The request being sent now, so a hard stop can count it as aborted.
    in_flight: Rc<Cell<Option<InFlight>>>,
    /// Values extracted so far; they live as long as the user. Shared with
    /// the template context of the request being built, and copied on
    /// write only if that context is still alive.
    extracted: Arc<BTreeMap<String, Value>>,
    iteration: u64,
}

/// What every user of a generator thread shares.
#[derive(Clone)]
pub struct UserContext {
    pub plan: Arc<Plan>,
    pub connector: Arc<Connector>,
    pub shared: Arc<Shared>,
    pub recorder: Rc<RefCell<Snapshot>>,
    pub start: Instant,
    pub stop: CancellationToken,
    pub hard_stop: CancellationToken,
    /// This thread's copy of what templates see besides a user's values.
    pub scope: Arc<ScopeGlobals>,
}

impl User {
    pub fn new(id: u64, ctx: &UserContext) -> Self {
        let plan = ctx.plan.clone();
        let flow = ctx.shared.flow_for(id);
        // Requests with no template are built once, here, and cloned per send.
        let prepared = plan.flows[flow]
            .steps
            .iter()
            .map(|step| {
                if engine::is_static(&plan, step) {
                    engine::prepare(&plan, &ctx.connector, step, &Value::UNDEFINED).ok()
                } else {
                    None
                }
            })
            .collect();
        User {
            id,
            flow,
            session: Session::new(ctx.connector.clone()),
            connector: ctx.connector.clone(),
            shared: ctx.shared.clone(),
            recorder: ctx.recorder.clone(),
            start: ctx.start,
            stop: ctx.stop.clone(),
            hard_stop: ctx.hard_stop.clone(),
            scope: ctx.scope.clone(),
            prepared,
            in_flight: Rc::default(),
            extracted: Arc::default(),
            iteration: 0,
            plan,
        }
    }

    /// Runs one iteration of the user's flow. `intended` is when the
    /// iteration was due (open model): the first request's latency counts
    /// from then, so time spent waiting for a free slot shows.
    pub async fn iteration(
        &mut self,
        intended: Option<Instant>,
        think_after_last: bool,
    ) -> IterationEnd {
        // Once the run stops, nothing starts: not even an iteration that was
        // already due (the open model counts those as dropped).
        if self.stop.is_cancelled() {
            return IterationEnd::NotStarted;
        }
        // Borrowed, not cloned: the plan's reference count is shared by
        // every generator thread, and touching it per iteration would make
        // the threads contend for one cache line.
        let plan: &Plan = &self.plan;
        let mut rows = Vec::with_capacity(plan.feeders.len());
        for i in 0..plan.feeders.len() {
            match self.shared.next_row(plan, i) {
                Some(row) => rows.push(row),
                None => return IterationEnd::DataExhausted,
            }
        }
        self.recorder.borrow_mut().started += 1;
        let flow = &plan.flows[self.flow];
        let mut end = IterationEnd::Completed;
        // Set when the last step passes: the think time after it belongs to
        // the pause before the next iteration, and a stop during it does not
        // undo a completed iteration.
        let mut completed = false;
        let last = flow.steps.len().saturating_sub(1);
        for (i, step) in flow.steps.iter().enumerate() {
            if self.stop.is_cancelled() {
                end = IterationEnd::Stopped;
                break;
            }
            let mut sent = Instant::now();
            let mut waited_from = match intended {
                Some(t) if i == 0 => t.min(sent),
                _ => sent,
            };
            // A static request is a clone of the one prepared in `new`.
            let request = match &self.prepared[i] {
                Some(prepared) => Ok((prepared.request(), prepared.bytes_out)),
                None => engine::prepare(plan, &self.connector, step, &self.context(&rows)).map(
                    |prepared| {
                        let bytes_out = prepared.bytes_out;
                        (prepared.into_request(), bytes_out)
                    },
                ),
            };
            // An exchange the step needs first (an MCP session's handshake)
            // is a request of its own row; the step's request is timed from
            // its end, and is not sent when it failed.
            if let (Ok((request, _)), Some(metric)) =
                (&request, engine::opening(&mut self.session, step))
            {
                let opening = InFlight {
                    metric,
                    bytes_out: 0,
                    sent,
                    waited_from,
                };
                self.in_flight.set(Some(opening));
                // Boxed: rare, and kept inline its state would enlarge
                // every user's iteration future (copied on the hot path).
                let measured = Box::pin(engine::open(&mut self.session, step, request)).await;
                self.in_flight.set(None);
                count_sessions(&mut self.session, &self.recorder);
                match self.opened(opening, measured, request) {
                    Some(done) => (sent, waited_from) = (done, done),
                    None => {
                        end = self.failed(flow.think_time, think_after_last).await;
                        break;
                    }
                }
            }
            let flight = InFlight {
                metric: step.metric,
                bytes_out: request.as_ref().map_or(0, |(_, bytes_out)| *bytes_out),
                sent,
                waited_from,
            };
            let mut secret_headers = Vec::new();
            let answer = match request {
                Ok((request, _)) => {
                    secret_headers = secret_values(plan, &request);
                    self.in_flight.set(Some(flight));
                    let answer = engine::send(&mut self.session, step, request).await;
                    self.in_flight.set(None);
                    answer
                }
                Err(failure) => Err(failure),
            };
            let done = Instant::now();
            let (response, judged) = match answer {
                Ok(response) => {
                    let judged = engine::judge(step, &response);
                    (Some(response), judged)
                }
                Err(failure) => (None, Err(failure)),
            };
            let (failure, extracted) = match judged {
                Ok(values) => (None, values),
                Err((kind, message)) => (
                    Some((kind, self.redact(message, &secret_headers, &rows))),
                    Vec::new(),
                ),
            };
            let failed = failure.is_some();
            let done = response.as_ref().and_then(|r| r.answered).unwrap_or(done);
            self.record(flight, done, response.as_ref(), failure);
            if !extracted.is_empty() {
                let known = Arc::make_mut(&mut self.extracted);
                for (e, value) in step.extract.iter().zip(extracted) {
                    // A name seen before keeps its key: no copy of it.
                    match known.get_mut(&e.var) {
                        Some(slot) => *slot = value,
                        None => {
                            known.insert(e.var.clone(), value);
                        }
                    }
                }
            }
            if failed {
                end = self.failed(flow.think_time, think_after_last).await;
                break;
            }
            if i == last {
                completed = true;
                if !think_after_last {
                    break;
                }
            }
            if !think(flow.think_time, &self.stop).await {
                end = IterationEnd::Stopped;
                break;
            }
        }
        if completed {
            self.recorder.borrow_mut().iterations += 1;
        }
        if let Some(mcp) = &flow.mcp {
            if mcp.scope == SessionScope::PerIteration {
                Box::pin(engine::end_session(&mut self.session, mcp.close)).await;
            }
            count_sessions(&mut self.session, &self.recorder);
        }
        self.iteration += 1;
        end
    }

    /// How an iteration ends after a failed step. Later steps usually
    /// depend on it and would only fail in its wake. The pause still
    /// comes, as after a last step: users of a failing target must not
    /// hammer it.
    async fn failed(
        &self,
        think_time: Option<(Duration, Duration)>,
        think_after_last: bool,
    ) -> IterationEnd {
        if think_after_last && !think(think_time, &self.stop).await {
            IterationEnd::Stopped
        } else {
            IterationEnd::Failed
        }
    }

    /// Records one request's sample, ended at `done`.
    fn record(
        &self,
        flight: InFlight,
        done: Instant,
        response: Option<&Response>,
        failure: Option<Failure>,
    ) {
        let sample = flight.sample(done, response, failure);
        let mut recorder = self.recorder.borrow_mut();
        recorder.record(&sample, (done - self.start).as_secs());
        if let Some(first) = response.and_then(|r| r.first_event) {
            recorder.record_first_event(flight.metric, first.as_micros() as u64);
        }
    }

    /// Records the exchange a step made before its own `request` (see
    /// [`engine::opening`]); when it ended, or `None` when it failed.
    fn opened(
        &self,
        mut flight: InFlight,
        measured: Measured,
        request: &Request<Full<Bytes>>,
    ) -> Option<Instant> {
        flight.bytes_out = measured.bytes_out;
        let done = measured
            .response
            .as_ref()
            .and_then(|r| r.answered)
            .unwrap_or_else(Instant::now);
        let failed = measured.failure.is_some();
        let secret_headers = secret_values(&self.plan, request);
        let failure = measured
            .failure
            .map(|(kind, message)| (kind, self.redact(message, &secret_headers, &[])));
        self.record(flight, done, measured.response.as_ref(), failure);
        (!failed).then_some(done)
    }

    /// Runs `life` (the user's loop over its iterations), then ends the
    /// user's MCP session, if it has one, as its flow says: a user that
    /// stops closes or abandons its session like a real client.
    pub async fn lifetime(mut self, life: impl AsyncFnOnce(&mut User)) {
        life(&mut self).await;
        if let Some(mcp) = &self.plan.flows[self.flow].mcp {
            engine::end_session(&mut self.session, mcp.close).await;
            count_sessions(&mut self.session, &self.recorder);
        }
    }

    /// What this user's templates see now.
    fn context(&self, rows: &[Value]) -> Value {
        Value::from_object(Scope {
            globals: self.scope.clone(),
            vu: self.id,
            iteration: self.iteration,
            rows: rows.to_vec(),
            extracted: self.extracted.clone(),
        })
    }

    /// Removes every secret value this request used from a failure
    /// message: the values of secret headers, and of secret variables.
    /// Only failures pay for this; a message is rare next to a request.
    fn redact(&self, mut message: String, headers: &[HeaderValue], rows: &[Value]) -> String {
        let plan = &self.plan;
        let mut values: Vec<String> = headers
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        // Secret names are resolved the way templates see them
        // (`token`, `vars.key`, `accounts.password`, `env.API_TOKEN`), from
        // the same context the request was rendered with.
        if !plan.secrets.vars.is_empty() {
            let ctx = self.context(rows);
            for name in &plan.secrets.vars {
                let value = name
                    .split('.')
                    .try_fold(ctx.clone(), |v, part| v.get_attr(part).ok())
                    .filter(|v| !v.is_undefined() && !v.is_none());
                values.extend(value.map(|v| v.to_string()));
            }
        }
        // Longest first, so a secret that contains another goes whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values.iter().filter(|v| !v.is_empty()) {
            if message.contains(value.as_str()) {
                message = message.replace(value.as_str(), "[redacted]");
            }
        }
        message
    }
}

/// Adds the MCP sessions the user opened and ended to the counts.
fn count_sessions(session: &mut Session, recorder: &RefCell<Snapshot>) {
    let events = engine::session_events(session);
    if events != McpSessions::default() {
        recorder.borrow_mut().mcp_sessions.merge(&events);
    }
}

/// The values of the request's secret headers, kept for redacting a
/// failure message. HeaderValues share their bytes, so this copies none.
fn secret_values(plan: &Plan, request: &Request<Full<Bytes>>) -> Vec<HeaderValue> {
    request
        .headers()
        .iter()
        .filter(|(name, _)| plan.secrets.headers.contains(name))
        .map(|(_, value)| value.clone())
        .collect()
}

/// Pauses for the flow's think time, if it has one: fixed, or uniform in
/// a range. False when the run stopped during the pause.
async fn think(think_time: Option<(Duration, Duration)>, stop: &CancellationToken) -> bool {
    let Some((lo, hi)) = think_time.filter(|(_, hi)| !hi.is_zero()) else {
        return true;
    };
    let pause = if lo == hi {
        lo
    } else {
        rand::random_range(lo..=hi)
    };
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = stop.cancelled() => false,
    }
}

/// A request on its way: what its [`Sample`] needs besides what came back.
/// The user keeps it where its [`Watch`] can see it, so a hard stop counts
/// the request as aborted.
#[derive(Debug, Clone, Copy)]
pub struct InFlight {
    metric: usize,
    bytes_out: u64,
    sent: Instant,
    /// From when the user waited: the intended instant in the open model.
    waited_from: Instant,
}

impl InFlight {
    /// What the metrics record of this request, ended at `done` with the
    /// answer, if one came, and the failure, if any: the one place a
    /// `Sample` is made, for finished and aborted requests alike.
    fn sample(
        self,
        done: Instant,
        response: Option<&Response>,
        failure: Option<Failure>,
    ) -> Sample {
        Sample {
            metric: self.metric,
            latency_us: (done - self.waited_from).as_micros() as u64,
            service_us: (done - self.sent).as_micros() as u64,
            status: response.map(|r| r.status.as_u16()),
            failure,
            bytes_in: response.map_or(0, |r| r.bytes_in),
            bytes_out: self.bytes_out,
            body_bytes: response.map_or(0, |r| r.body_bytes),
        }
    }
}

/// Watches one user's task for the hard stop.
pub struct Watch {
    in_flight: Rc<Cell<Option<InFlight>>>,
    recorder: Rc<RefCell<Snapshot>>,
    start: Instant,
    hard_stop: CancellationToken,
}

impl User {
    pub fn watch(&self) -> Watch {
        Watch {
            in_flight: self.in_flight.clone(),
            recorder: self.recorder.clone(),
            start: self.start,
            hard_stop: self.hard_stop.clone(),
        }
    }
}

impl Watch {
    /// Runs `work` (the user's loop) until it ends or the hard stop fires.
    /// On a hard stop the request in flight, if any, is counted as an
    /// `aborted` failure: it was sent, so it must be counted once. Watching
    /// here, once per user, keeps the hard stop off the per-request path.
    pub fn until_hard_stop(
        self,
        work: impl std::future::Future<Output = ()>,
    ) -> impl std::future::Future<Output = ()> {
        // Boxed before the async block captures it: an `async fn` would
        // hold `work` twice in its state (as its argument, and again while
        // polling it), and the user's task would be twice as big.
        let work = Box::pin(work);
        async move {
            tokio::select! {
                biased;
                _ = work => {}
                _ = self.hard_stop.cancelled() => {
                    if let Some(flight) = self.in_flight.take() {
                        let now = Instant::now();
                        let aborted = (ErrorKind::Aborted, "still in flight when the run stopped".to_string());
                        let sample = flight.sample(now, None, Some(aborted));
                        self.recorder.borrow_mut().record(&sample, (now - self.start).as_secs());
                    }
                }
            }
        }
    }
}

/// What every template sees besides a user's own values: `[vars]`, `env`
/// and the data feeders' names. Each generator thread has its own deep
/// copy, so the reference counts that templated requests touch are not
/// shared between threads. (Data rows are: every thread draws from the same
/// feeder.)
pub struct ScopeGlobals {
    globals: Globals,
    feeders: Vec<String>,
}

impl ScopeGlobals {
    pub fn new(plan: &Plan) -> Self {
        ScopeGlobals {
            globals: plan.globals.deep_copy(),
            feeders: plan.feeders.iter().map(|f| f.name.clone()).collect(),
        }
    }
}

/// The variables a template sees for one request, looked up on demand.
/// Copying them all into a fresh map for every request cost about ten
/// allocations; this costs one (two with data feeders).
struct Scope {
    globals: Arc<ScopeGlobals>,
    vu: u64,
    iteration: u64,
    rows: Vec<Value>,
    extracted: Arc<BTreeMap<String, Value>>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("vu", &self.vu)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    /// Extracted values hide feeder rows, which hide the built-in names,
    /// which hide `[vars]`.
    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        if let Some(value) = self.extracted.get(key) {
            return Some(value.clone());
        }
        let globals = &self.globals.globals;
        if let Some(i) = self.globals.feeders.iter().rposition(|name| name == key) {
            return self.rows.get(i).cloned();
        }
        match key {
            "iteration" => Some(Value::from(self.iteration)),
            "vu" => Some(Value::from(self.vu)),
            "env" => Some(globals.env.clone()),
            "vars" => Some(globals.vars_value.clone()),
            _ => globals.vars.get(key).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderMap, StatusCode};

    use super::*;

    fn flight(start: Instant) -> InFlight {
        InFlight {
            metric: 1,
            bytes_out: 77,
            sent: start + Duration::from_millis(30),
            waited_from: start,
        }
    }

    #[test]
    fn a_finished_request_counts_what_came_back() {
        let start = Instant::now();
        let response = Response {
            status: StatusCode::NOT_FOUND,
            headers: HeaderMap::new(),
            body: None,
            body_bytes: 12,
            bytes_in: 140,
            first_event: None,
            answered: None,
        };
        let failure = (ErrorKind::Status, "status 404, expected 200".to_string());
        let done = start + Duration::from_millis(50);
        let sample = flight(start).sample(done, Some(&response), Some(failure.clone()));
        assert_eq!(sample.metric, 1);
        assert_eq!(sample.latency_us, 50_000);
        assert_eq!(sample.service_us, 20_000);
        assert_eq!(sample.status, Some(404));
        assert_eq!(sample.failure, Some(failure));
        assert_eq!(
            (sample.bytes_in, sample.bytes_out, sample.body_bytes),
            (140, 77, 12)
        );
    }

    fn watch(in_flight: Option<InFlight>, start: Instant) -> (Watch, Rc<RefCell<Snapshot>>) {
        let recorder = Rc::new(RefCell::new(Snapshot::new(2, true)));
        let hard_stop = CancellationToken::new();
        hard_stop.cancel();
        let watch = Watch {
            in_flight: Rc::new(Cell::new(in_flight)),
            recorder: recorder.clone(),
            start,
            hard_stop,
        };
        (watch, recorder)
    }

    #[tokio::test]
    async fn a_hard_stop_counts_the_request_in_flight_as_aborted() {
        let start = Instant::now();
        let (watch, recorder) = watch(Some(flight(start)), start);
        watch.until_hard_stop(std::future::pending()).await;
        let stats = recorder.borrow().steps[1].stats("item", None, 1.0, &[]);
        assert_eq!((stats.requests, stats.failures), (1, 1));
        assert_eq!(stats.errors["aborted"], 1);
        assert_eq!(stats.bytes_out, 77);
        assert!(stats.status_codes.is_empty());
        assert_eq!(recorder.borrow().steps[0].requests(), 0);
    }

    #[tokio::test]
    async fn a_hard_stop_between_requests_counts_nothing() {
        let start = Instant::now();
        let (watch, recorder) = watch(None, start);
        watch.until_hard_stop(std::future::pending()).await;
        assert_eq!(recorder.borrow().total().requests(), 0);
    }
}
