//! How one step is sent and judged: the step kinds over shared connections.
//!
//! The engine knows nothing of rates, users or time: the runner asks it to
//! [`prepare`] a step's request, [`send`] it on the user's [`Session`] and
//! [`judge`] the [`Response`] that came back (or the [`Failure`]). Each of
//! these matches on the step's [`StepKind`] and hands over to that kind's
//! own file, which knows how such a step is sent and what makes its answer
//! right; static dispatch, so the hot path has no trait objects. What every
//! kind shares lives apart:
//!
//! - `connection`: the [`Connector`] and [`Session`] (connecting, TLS,
//!   HTTP/1.1 or HTTP/2, timeouts, sorting failures into kinds), and the
//!   [`Prepared`] request every kind sends, since every kind speaks HTTP;
//! - `check`: a step's `expect` and `extract`, which every kind has.
//!
//! There are two kinds: `http` (a request as the step writes it) and `mcp`
//! (a JSON-RPC call to an MCP server, in a session the user opens with a
//! handshake first: see [`opening`] and [`open`]).
//!
//! # Adding a step kind
//!
//! 1. In `plan`: a variant of [`StepKind`] holding what the kind's steps
//!    compile to (as `StepKind::Http(HttpStep)` does), and its compiling
//!    function beside `Compiler::http_step`, chosen by the kind's scenario
//!    key.
//! 2. Here: one file (e.g. `mcp.rs`) with the kind's `is_static`,
//!    `prepare`, `send` and `judge`, and one arm for it in each of the
//!    four functions below. `send` gets the whole [`Session`]: it sends
//!    with [`Session::send`] as often as the kind needs (a handshake, then
//!    the call) and may read a body its own way.
//! 3. If the kind keeps something per user between requests (an MCP
//!    session id), one field in [`KindState`]; the session owns it and
//!    keeps it across reconnections.
//! 4. If a step of the kind needs an exchange before its own request (an
//!    MCP session's handshake), an arm in [`opening`] and [`open`]: the
//!    runner records that exchange as a request of its own row and times
//!    the step's request from its end.
//!
//! The runner, the metrics and the reports need no change: a step of any
//! kind ends as one `Response` or `Failure`, and its `Sample` is built in
//! one place (`runner::user`).

mod check;
mod connection;
mod http;
mod mcp;
mod tls;

use std::time::{Duration, Instant};

use ::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use http_body_util::Full;
use minijinja::Value;

use crate::metrics::summary::McpSessions;
use crate::metrics::ErrorKind;
use crate::plan::{Plan, StepKind, StepPlan};

pub use connection::{Connector, Prepared, Session};
pub use mcp::{McpState, Measured};

/// A failed request: its kind, and a message fit for reports (no secrets,
/// no per-request ids, so equal failures group together).
pub type Failure = (ErrorKind, String);

/// What came back for one request: the answer's head, its body when the
/// step judges it, and the bytes counted.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body, when the step needs it for checks or extraction.
    pub body: Option<Bytes>,
    pub body_bytes: u64,
    /// Status line, headers and body.
    pub bytes_in: u64,
    /// For an answer read as an event stream: from the send to its first
    /// event.
    pub first_event: Option<Duration>,
    /// When the answer was complete, if that was before the kind returned
    /// (an event stream's answering event); else when it returned.
    pub answered: Option<Instant>,
}

/// What a user's [`Session`] keeps between requests for the step kinds
/// that need it, one field per such kind. HTTP steps keep nothing.
#[derive(Debug, Default)]
pub struct KindState {
    /// The user's MCP session.
    pub mcp: McpState,
}

/// Whether the step's request is the same every time. Such a request is
/// prepared once per user and cloned for every send.
pub fn is_static(plan: &Plan, step: &StepPlan) -> bool {
    match &step.kind {
        StepKind::Http(http) => http::is_static(plan, http),
        StepKind::Mcp(mcp) => mcp::is_static(plan, mcp),
    }
}

/// Renders the step's templates with `ctx` and prepares its request.
pub fn prepare(
    plan: &Plan,
    connector: &Connector,
    step: &StepPlan,
    ctx: &Value,
) -> Result<Prepared, Failure> {
    match &step.kind {
        StepKind::Http(http) => http::prepare(plan, connector, http, ctx),
        StepKind::Mcp(mcp) => mcp::prepare(plan, connector, mcp, ctx),
    }
}

/// Sends the step's request on the user's session and reads the answer.
pub async fn send(
    session: &mut Session,
    step: &StepPlan,
    request: Request<Full<Bytes>>,
) -> Result<Response, Failure> {
    match &step.kind {
        StepKind::Http(_) => http::send(session, step, request).await,
        StepKind::Mcp(mcp) => mcp::send(session, mcp, request).await,
    }
}

/// Judges what came back against the step, and pulls out the values it
/// extracts, in the order of `step.extract`.
pub fn judge(step: &StepPlan, response: &Response) -> Result<Vec<Value>, Failure> {
    match &step.kind {
        StepKind::Http(_) => http::judge(step, response),
        StepKind::Mcp(mcp) => mcp::judge(step, mcp, response),
    }
}

/// The row of the exchange this step needs before its own request, if it
/// needs one now: an MCP step whose user has no session yet.
pub fn opening(session: &mut Session, step: &StepPlan) -> Option<usize> {
    match &step.kind {
        StepKind::Http(_) => None,
        StepKind::Mcp(mcp) => mcp::needs_opening(session).then_some(mcp.initialize_metric),
    }
}

/// Makes the exchange [`opening`] named, on the way to where `request`
/// (the step's own, prepared) goes.
pub async fn open(
    session: &mut Session,
    step: &StepPlan,
    request: &Request<Full<Bytes>>,
) -> Measured {
    match &step.kind {
        StepKind::Mcp(mcp) => mcp::open(session, mcp, request).await,
        StepKind::Http(_) => Measured {
            response: None,
            failure: None,
            bytes_out: 0,
        },
    }
}

/// Ends the user's MCP session, if it has one: closed with a `DELETE`
/// when `close`, abandoned otherwise.
pub async fn end_session(session: &mut Session, close: bool) {
    mcp::end_session(session, close).await
}

/// The MCP sessions the user opened and ended since the last call.
pub fn session_events(session: &mut Session) -> McpSessions {
    mcp::take_events(session)
}
