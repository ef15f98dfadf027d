//! The MCP step kind: a JSON-RPC 2.0 call over MCP Streamable HTTP.
//!
//! A user opens its MCP session before its first MCP step ([`open`]): an
//! `initialize` request with the flow's protocol version, then the
//! `notifications/initialized` notification, measured together as one
//! request of the `mcp initialize` row. It keeps the `Mcp-Session-Id` the
//! server gives (a server that gives none keeps no session) and the
//! protocol version the server agreed to, in its session's [`McpState`],
//! and sends both with every later request. A step's call ([`send`]) is a
//! `POST` of `{"jsonrpc":"2.0","id":N,"method":…,"params":…}` to the flow's
//! endpoint, accepting `application/json` and `text/event-stream`.
//!
//! An answer is read as it comes: a JSON body whole, an event stream event
//! by event until the JSON-RPC response with the call's id (server requests
//! and notifications before it are skipped). The answer's instant is that
//! event's, even when the server keeps the stream open; the time to the
//! stream's first event is kept too. A stream that has not ended shortly
//! after the answer is left, and its connection dropped. The call's
//! `timeout` (else the target's) bounds the whole exchange.
//!
//! [`judge`] fails a JSON-RPC `error` (kind `jsonrpc`) and a tool result
//! with `isError: true` (kind `tool_error`), each with the server's
//! message, unless the step's `expect.json` reads `/error…` or
//! `/result/isError` itself; then the step's `expect` and `extract` read
//! the JSON-RPC message. A 404 to a request that carried a session id means
//! the server forgot the session (kind `session`): the session is counted
//! as expired and the user's next MCP step opens a new one. [`end_session`]
//! closes a session with a `DELETE`, or abandons it.

use std::cell::Cell;
use std::time::{Duration, Instant};

use ::http::header::{HeaderName, CONTENT_TYPE};
use ::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use futures_core::Stream;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use minijinja::Value;
use rmcp::model::{
    CallToolResult, ClientCapabilities, ErrorData, Implementation, InitializeRequestParams,
    InitializeResult,
};
use serde::Deserialize;
use sse_stream::SseStream;

use super::connection::{classify, read_response, response_head_size, Kept};
use super::{check, http, Connector, Failure, Prepared, Response, Session};
use crate::metrics::summary::McpSessions;
use crate::metrics::ErrorKind;
use crate::plan::{McpStep, Plan, StepPlan};

const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// How long a stream may take to end once its answer came before it is
/// left (and its connection dropped); servers end theirs at once.
const STREAM_END_GRACE: Duration = Duration::from_millis(20);
/// The id of the `initialize` request; calls count from 1.
const INITIALIZE_ID: i64 = 0;

/// A user's MCP session, kept across its connections.
#[derive(Debug, Default)]
pub struct McpState {
    /// The handshake is done (a server may keep no session and give no
    /// id; it still expects the handshake once).
    open: bool,
    session_id: Option<HeaderValue>,
    /// The protocol version the server agreed to.
    protocol: Option<HeaderValue>,
    /// Where the session lives, and the headers it was opened with, for
    /// the closing `DELETE`.
    endpoint: Option<(Uri, HeaderMap)>,
    next_id: i64,
    /// Sessions opened and ended since the runner last took the counts.
    events: McpSessions,
}

impl McpState {
    /// Forgets the session (the server no longer has it, or it ended).
    fn reset(&mut self) {
        let events = self.events;
        *self = McpState {
            events,
            ..McpState::default()
        };
    }
}

/// A request the engine measured by itself (a session's handshake): what
/// came back, if anything, its failure, if any, and the bytes it sent.
#[derive(Debug)]
pub struct Measured {
    pub response: Option<Response>,
    pub failure: Option<Failure>,
    pub bytes_out: u64,
}

pub fn is_static(plan: &Plan, step: &McpStep) -> bool {
    http::is_static(plan, &step.request)
}

/// The `POST` carrying the call, with `params` as its body; the envelope
/// (with the call's id) is made when it is sent.
pub fn prepare(
    plan: &Plan,
    connector: &Connector,
    step: &McpStep,
    ctx: &Value,
) -> Result<Prepared, Failure> {
    http::prepare(plan, connector, &step.request, ctx)
}

/// Whether the user must open its session before this step.
pub fn needs_opening(session: &mut Session) -> bool {
    !session.kinds().mcp.open
}

/// The handshake: `initialize`, then `notifications/initialized`, sent to
/// where `like` goes, with its headers (so target headers such as an
/// `Authorization` apply).
pub async fn open(session: &mut Session, step: &McpStep, like: &Request<Full<Bytes>>) -> Measured {
    let state = &mut session.kinds().mcp;
    state.reset();
    let mut params = serde_json::to_value(InitializeRequestParams::new(
        ClientCapabilities::default(),
        Implementation::new("loadctl", env!("CARGO_PKG_VERSION")),
    ))
    .expect("initialize parameters are plain JSON");
    params["protocolVersion"] = step.protocol_version.clone().into();
    let message = serde_json::json!({
        "jsonrpc": "2.0",
        "id": INITIALIZE_ID,
        "method": "initialize",
        "params": params,
    });
    let request = with_body(like, Bytes::from(message.to_string()));
    let mut bytes_out = request.1;
    let timeout = step.timeout.unwrap_or(session.timeout());
    let sent = Instant::now();
    let answer = call(session, request.0, Some(INITIALIZE_ID), timeout, sent).await;
    let mut response = match answer {
        Ok(response) => response,
        Err(failure) => {
            return Measured {
                response: None,
                failure: Some(failure),
                bytes_out,
            }
        }
    };
    let failure = match initialized(&response) {
        Ok(version) => {
            let state = &mut session.kinds().mcp;
            state.open = true;
            state.session_id = response.headers.get(&SESSION_ID).cloned();
            state.protocol = HeaderValue::from_str(&version).ok();
            state.endpoint = Some((like.uri().clone(), like.headers().clone()));
            state.next_id = INITIALIZE_ID + 1;
            state.events.opened += 1;
            let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
            let (request, size) = with_body(like, Bytes::from_static(note.as_bytes()));
            bytes_out += size;
            let request = with_session(request, &session.kinds().mcp);
            let noted = call(session, request, None, timeout, Instant::now()).await;
            match noted {
                Ok(note) => {
                    response.bytes_in += note.bytes_in;
                    response.answered = note.answered;
                    (!note.status.is_success()).then(|| {
                        (
                            ErrorKind::Status,
                            format!(
                                "notifications/initialized: status {}{}",
                                note.status.as_u16(),
                                server_says(&note)
                            ),
                        )
                    })
                }
                Err((kind, message)) => {
                    Some((kind, format!("notifications/initialized: {message}")))
                }
            }
        }
        Err(failure) => Some(failure),
    };
    if failure.is_some() {
        session.kinds().mcp.reset();
    }
    Measured {
        response: Some(response),
        failure,
        bytes_out,
    }
}

/// The protocol version an `initialize` answer agrees to, or why the
/// handshake failed.
fn initialized(response: &Response) -> Result<String, Failure> {
    if !response.status.is_success() {
        return Err((
            ErrorKind::Status,
            format!(
                "initialize: status {}{}",
                response.status.as_u16(),
                server_says(response)
            ),
        ));
    }
    #[derive(Deserialize)]
    struct Answer {
        result: Option<InitializeResult>,
        error: Option<ErrorData>,
    }
    let body = response.body.as_deref().unwrap_or_default();
    match serde_json::from_slice::<Answer>(body) {
        Ok(Answer { error: Some(e), .. }) => Err(rpc_error("initialize: ", &e)),
        Ok(Answer {
            result: Some(result),
            ..
        }) => Ok(result.protocol_version.to_string()),
        Ok(_) => Err((
            ErrorKind::Protocol,
            "initialize: the answer has neither `result` nor `error`".to_string(),
        )),
        Err(e) => Err((
            ErrorKind::Protocol,
            format!("initialize: the answer is not an initialize result: {e}"),
        )),
    }
}

/// Sends the step's call in the user's session and reads its answer.
pub async fn send(
    session: &mut Session,
    mcp: &McpStep,
    request: Request<Full<Bytes>>,
) -> Result<Response, Failure> {
    let (parts, params) = request.into_parts();
    let params = params
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let state = &mut session.kinds().mcp;
    let id = (!mcp.notification).then(|| {
        state.next_id += 1;
        state.next_id - 1
    });
    let message = envelope(id, &mcp.method_json, &params);
    let request = with_session(Request::from_parts(parts, Full::new(message)), state);
    let had_session = state.session_id.is_some();
    let timeout = mcp.timeout.unwrap_or(session.timeout());
    let response = call(session, request, id, timeout, Instant::now()).await?;
    if response.status == StatusCode::NOT_FOUND && had_session {
        let state = &mut session.kinds().mcp;
        state.reset();
        state.events.expired += 1;
        return Err((
            ErrorKind::Session,
            "the server no longer knows the session (404); the next MCP step opens a new one"
                .to_string(),
        ));
    }
    Ok(response)
}

/// `{"jsonrpc":"2.0","id":N,"method":…,"params":…}`; a notification has no
/// id, a call without params no `params`.
fn envelope(id: Option<i64>, method_json: &str, params: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(64 + method_json.len() + params.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","#);
    if let Some(id) = id {
        out.extend_from_slice(format!(r#""id":{id},"#).as_bytes());
    }
    out.extend_from_slice(br#""method":"#);
    out.extend_from_slice(method_json.as_bytes());
    if !params.is_empty() {
        out.extend_from_slice(br#","params":"#);
        out.extend_from_slice(params);
    }
    out.push(b'}');
    Bytes::from(out)
}

/// `like`'s request (method, URI, headers) with another body, and its size.
fn with_body(like: &Request<Full<Bytes>>, body: Bytes) -> (Request<Full<Bytes>>, u64) {
    let prepared = Prepared::new(
        Method::POST,
        like.uri().clone(),
        like.headers().clone(),
        body,
    );
    let size = prepared.bytes_out;
    (prepared.into_request(), size)
}

/// Adds the session's id and protocol version to a request.
fn with_session(mut request: Request<Full<Bytes>>, state: &McpState) -> Request<Full<Bytes>> {
    let headers = request.headers_mut();
    if let Some(id) = &state.session_id {
        headers.insert(SESSION_ID, id.clone());
    }
    if let Some(version) = &state.protocol {
        headers.insert(PROTOCOL_VERSION, version.clone());
    }
    request
}

/// One exchange: sends `request` and reads its answer (for `id`, if the
/// request has one) within `timeout`. A stream left open drops the
/// connection.
async fn call(
    session: &mut Session,
    request: Request<Full<Bytes>>,
    id: Option<i64>,
    timeout: Duration,
    sent: Instant,
) -> Result<Response, Failure> {
    let (response, left_open) = session
        .exchange(request, timeout, |answer| read_answer(answer, id, sent))
        .await?;
    if left_open {
        session.close_connection();
    }
    Ok(response)
}

/// Reads an answer: a JSON body whole, an event stream up to the JSON-RPC
/// response with `id`. Also tells whether the stream was left open.
async fn read_answer(
    answer: ::http::Response<Incoming>,
    id: Option<i64>,
    sent: Instant,
) -> Result<(Response, bool), Failure> {
    let is_stream = answer
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let Some(id) = id.filter(|_| is_stream && answer.status().is_success()) else {
        let mut response = read_response(answer, true).await?;
        response.answered = Some(Instant::now());
        return Ok((response, false));
    };
    let (parts, body) = answer.into_parts();
    let counted = Cell::new(0u64);
    let body = body.map_frame(|frame| {
        if let Some(data) = frame.data_ref() {
            counted.set(counted.get() + data.len() as u64);
        }
        frame
    });
    let mut events = std::pin::pin!(SseStream::new(body));
    let mut first_event = None;
    let data = loop {
        let event = std::future::poll_fn(|cx| events.as_mut().poll_next(cx)).await;
        let event = match event {
            Some(Ok(event)) => event,
            Some(Err(e)) => return Err(stream_failure(e)),
            None => {
                return Err((
                    ErrorKind::Body,
                    format!("the event stream ended without the JSON-RPC response to id {id}"),
                ))
            }
        };
        first_event.get_or_insert_with(|| sent.elapsed());
        if let Some(data) = event.data.filter(|data| answers(data.as_bytes(), id)) {
            break data;
        }
    };
    let answered = Instant::now();
    // The rest of the stream, if it ends at once, so the connection can
    // carry the next request.
    let ended = tokio::time::timeout(STREAM_END_GRACE, async {
        while let Some(event) = std::future::poll_fn(|cx| events.as_mut().poll_next(cx)).await {
            if event.is_err() {
                return false;
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    let head = response_head_size(&parts);
    let mut kept = Kept::default();
    kept.push(Bytes::from(data))?;
    Ok((
        Response {
            status: parts.status,
            headers: parts.headers,
            body: Some(kept.into_bytes()),
            body_bytes: counted.get(),
            bytes_in: head + counted.get(),
            first_event,
            answered: Some(answered),
        },
        !ended,
    ))
}

/// Whether an event's data is the JSON-RPC response to `id` (rather than a
/// server request or notification, or a priming event with no data).
fn answers(data: &[u8], id: i64) -> bool {
    #[derive(Deserialize)]
    struct Head {
        id: Option<serde_json::Value>,
        method: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Head>(data) {
        Ok(Head {
            id: Some(found),
            method: None,
        }) => found.as_i64() == Some(id),
        _ => false,
    }
}

fn stream_failure(e: sse_stream::Error) -> Failure {
    match e {
        sse_stream::Error::Body(cause) => match cause.downcast::<hyper::Error>() {
            Ok(e) => classify(&e, true),
            Err(cause) => (ErrorKind::Body, format!("event stream: {cause}")),
        },
        other => (ErrorKind::Protocol, format!("event stream: {other}")),
    }
}

/// An MCP answer is right when it is no JSON-RPC error and no tool error
/// (unless the step's `expect.json` looks at those itself), and meets the
/// step's `expect`.
pub fn judge(step: &StepPlan, mcp: &McpStep, response: &Response) -> Result<Vec<Value>, Failure> {
    if !step.expect.status_ok(response.status.as_u16()) {
        return check::check(step, response)
            .map_err(|(kind, message)| (kind, format!("{message}{}", server_says(response))));
    }
    if mcp.notification {
        return check::check(step, response);
    }
    #[derive(Deserialize)]
    struct Reply {
        result: Option<ResultHead>,
        error: Option<ErrorData>,
    }
    #[derive(Deserialize)]
    struct ResultHead {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    let body = response.body.as_deref().unwrap_or_default();
    let reply: Reply = serde_json::from_slice(body).map_err(|e| {
        (
            ErrorKind::Protocol,
            format!("the answer is not a JSON-RPC response: {e}"),
        )
    })?;
    let looks_at = |prefix: &str| {
        step.expect
            .json
            .iter()
            .any(|(pointer, _)| pointer.to_string().starts_with(prefix))
    };
    if let Some(error) = reply.error.filter(|_| !looks_at("/error")) {
        return Err(rpc_error("", &error));
    }
    if reply.result.is_some_and(|r| r.is_error) && !looks_at("/result/isError") {
        return Err((ErrorKind::ToolError, tool_error_text(body)));
    }
    check::check(step, response)
}

fn rpc_error(context: &str, e: &ErrorData) -> Failure {
    (
        ErrorKind::JsonRpc,
        format!("{context}JSON-RPC error {}: {}", e.code.0, e.message),
    )
}

/// The text a tool gave with `isError: true`.
fn tool_error_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ToolReply {
        result: CallToolResult,
    }
    let texts: Vec<String> = serde_json::from_slice::<ToolReply>(body)
        .map(|reply| {
            reply
                .result
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect()
        })
        .unwrap_or_default();
    if texts.is_empty() {
        "the tool answered isError: true".to_string()
    } else {
        format!("tool error: {}", texts.join(" "))
    }
}

/// `: ` and what the server said in a failed answer's body, when it said
/// something short enough for a report (a JSON-RPC error's message, or
/// the text).
fn server_says(response: &Response) -> String {
    const SHOWN: usize = 200;
    let body = response.body.as_deref().unwrap_or_default();
    #[derive(Deserialize)]
    struct Reply {
        error: ErrorData,
    }
    let text = match serde_json::from_slice::<Reply>(body) {
        Ok(reply) => reply.error.message.into_owned(),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    if text.is_empty() {
        return String::new();
    }
    let mut cut: String = text.chars().take(SHOWN).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!(": {cut}")
}

/// Ends the user's session, if it has one: with a `DELETE` when `close`
/// (counted closed when the server accepts it, abandoned otherwise), or
/// by leaving it (abandoned). A server that keeps no session (gave no id)
/// has nothing to end: counted closed.
pub async fn end_session(session: &mut Session, close: bool) {
    let state = &mut session.kinds().mcp;
    if !state.open {
        return;
    }
    let (id, endpoint) = (state.session_id.clone(), state.endpoint.take());
    let version = state.protocol.clone();
    state.reset();
    let closed = match (close, id, endpoint) {
        (false, _, _) => false,
        (true, None, _) => true,
        (true, Some(id), Some((uri, mut headers))) => {
            headers.remove(CONTENT_TYPE);
            headers.insert(SESSION_ID, id);
            if let Some(version) = version {
                headers.insert(PROTOCOL_VERSION, version);
            }
            let request = Prepared::new(Method::DELETE, uri, headers, Bytes::new());
            matches!(session.send(request.into_request(), false).await,
                     Ok(response) if response.status.is_success())
        }
        (true, Some(_), None) => false,
    };
    let events = &mut session.kinds().mcp.events;
    if closed {
        events.closed += 1;
    } else {
        events.abandoned += 1;
    }
}

/// The sessions opened and ended since the last call.
pub fn take_events(session: &mut Session) -> McpSessions {
    std::mem::take(&mut session.kinds().mcp.events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_carries_id_method_and_params() {
        let call = envelope(Some(7), r#""tools/call""#, br#"{"name":"add"}"#);
        let parsed: serde_json::Value = serde_json::from_slice(&call).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "add"}})
        );
        let note = envelope(None, r#""notifications/x""#, b"");
        assert_eq!(
            &note[..],
            br#"{"jsonrpc":"2.0","method":"notifications/x"}"#
        );
    }

    #[test]
    fn only_the_response_with_the_id_answers() {
        assert!(answers(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#, 3));
        assert!(!answers(br#"{"jsonrpc":"2.0","id":4,"result":{}}"#, 3));
        // A server's own request that happens to reuse the number.
        assert!(!answers(br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#, 3));
        assert!(!answers(
            br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#,
            3
        ));
        assert!(!answers(b"", 3));
    }

    #[test]
    fn a_tool_error_keeps_the_tools_words() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"boom"}],"isError":true}}"#;
        assert_eq!(tool_error_text(body), "tool error: boom");
        assert_eq!(
            tool_error_text(br#"{"result":{"isError":true}}"#),
            "the tool answered isError: true"
        );
    }
}
