//! MCP servers as targets: the `mcp-server` preset and `kind = "mcp"`
//! steps against the demo target's MCP endpoints (started in this process,
//! so its own counts of `initialize` calls and `DELETE`s can be read), and
//! against a small hand-written MCP server that keeps its event streams
//! open, forgets sessions, never answers a call, or leaks what it should
//! refuse.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use loadctl::demo::DemoServer;
use loadctl::preset::Preset;

use super::{loadctl, run_quiet, summary, write};

/// The demo target on 127.0.0.1, served by a runtime of its own.
struct Demo {
    server: DemoServer,
    _runtime: tokio::runtime::Runtime,
}

impl Demo {
    fn start() -> Demo {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(loadctl::demo::start()).unwrap();
        Demo {
            server,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }
}

/// A scenario of `flows` against `base_url`, with `load`.
fn scenario(base_url: &str, load: &str, flows: &str) -> String {
    format!("[target]\nbase_url = \"{base_url}\"\ntimeout = \"5s\"\n[load]\n{load}\n{flows}")
}

/// One flow calling the demo's tools and resource through `endpoint`,
/// with the flow's `mcp` settings.
fn client_flow(endpoint: &str, settings: &str) -> String {
    format!(
        r#"
[[flow]]
{settings}
  [[flow.step]]
  kind = "mcp"
  path = "{endpoint}"
  method = "tools/list"
  [[flow.step]]
  kind = "mcp"
  method = "tools/call"
  params = {{ name = "add", arguments = {{ a = 1, b = 2 }} }}
  expect = {{ json = {{ "/result/content/0/text" = "3" }} }}
  extract = {{ sum = {{ json = "/result/content/0/text" }} }}
  [[flow.step]]
  kind = "mcp"
  method = "resources/read"
  params = {{ uri = "demo://greeting" }}
  expect = {{ body_contains = "hello" }}
"#
    )
}

/// A flow whose first step is an MCP call of `call` (its `method`,
/// `params` and so on) to `/mcp`, followed by `more` steps.
fn mcp_flow(call: &str, more: &str) -> String {
    format!("[[flow]]\n  [[flow.step]]\n  kind = \"mcp\"\n  path = \"/mcp\"\n{call}{more}")
}

/// Runs `text` to completion and returns its summary.
fn run(text: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "mcp.toml", text);
    let out = dir.path().join("out");
    run_quiet(&file, &out).success();
    summary(&out)
}

/// The row named `name` of a summary.
fn row<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {:#}", summary["steps"]))
}

fn sessions(summary: &serde_json::Value) -> [u64; 4] {
    let s = &summary["mcp_sessions"];
    ["opened", "closed", "abandoned", "expired"].map(|k| s[k].as_u64().unwrap())
}

#[test]
fn the_preset_opens_one_session_per_user_and_closes_it() {
    let demo = Demo::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mcp.toml");
    let url = format!("{}/mcp", demo.url());
    loadctl()
        .args(["init", "--preset", "mcp-server", "--url", &url, "-o"])
        .arg(&file)
        .assert()
        .success();
    let out = dir.path().join("out");
    // Users 0-3 are MCP clients, user 4 runs the security checks.
    loadctl()
        .args(["run", "-q", "--users", "5", "--duration", "2s"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let summary = summary(&out);
    assert_eq!(
        summary["totals"]["failures"], 0,
        "{:#}",
        summary["failures"]
    );
    assert_eq!(row(&summary, "mcp initialize")["requests"], 4);
    for name in ["tools/list", "tools/call add", "resources/read"] {
        let calls = row(&summary, name);
        assert!(calls["requests"].as_u64().unwrap() >= 4, "{calls:#}");
        assert_eq!(calls["method"], "MCP");
        // The demo's /mcp answers with event streams.
        assert!(
            calls["first_event_ms"]["p50"].as_f64().is_some(),
            "{calls:#}"
        );
    }
    // The server's own count: exactly one session per MCP user, each
    // closed when its user stopped.
    assert_eq!(demo.server.mcp_initialized(), 4);
    assert_eq!(demo.server.mcp_deleted(), 4);
    assert_eq!(sessions(&summary), [4, 4, 0, 0]);
}

#[test]
fn per_iteration_sessions_are_opened_every_iteration_and_closed_or_abandoned() {
    for (close, deleted) in [(true, 6), (false, 0)] {
        let demo = Demo::start();
        let settings = format!("mcp = {{ session = \"per-iteration\", close_session = {close} }}");
        let text = scenario(
            &demo.url(),
            "users = 2\niterations = 6",
            &client_flow("/mcp", &settings),
        );
        let summary = run(&text);
        assert_eq!(
            summary["totals"]["failures"], 0,
            "{:#}",
            summary["failures"]
        );
        assert_eq!(summary["iterations"], 6);
        assert_eq!(row(&summary, "mcp initialize")["requests"], 6);
        assert_eq!(demo.server.mcp_initialized(), 6);
        assert_eq!(demo.server.mcp_deleted(), deleted);
        let expected = if close { [6, 6, 0, 0] } else { [6, 0, 6, 0] };
        assert_eq!(sessions(&summary), expected);
    }
}

#[test]
fn the_json_endpoint_answers_without_streams() {
    let demo = Demo::start();
    let text = scenario(
        &demo.url(),
        "users = 2\niterations = 4",
        &client_flow("/mcp-json", ""),
    );
    let summary = run(&text);
    assert_eq!(
        summary["totals"]["failures"], 0,
        "{:#}",
        summary["failures"]
    );
    let call = row(&summary, "tools/call add");
    assert_eq!(call["requests"], 4);
    assert!(call.get("first_event_ms").is_none(), "{call:#}");
    // /mcp-json keeps no sessions: the handshake is still made once per
    // user that ran (the iteration budget is shared), and there is
    // nothing to delete.
    let opened = demo.server.mcp_initialized();
    assert!((1..=2).contains(&opened));
    assert_eq!(sessions(&summary), [opened, opened, 0, 0]);
}

#[test]
fn tool_errors_and_json_rpc_errors_are_failures_with_the_servers_words() {
    let demo = Demo::start();
    let fail = r#"  method = "tools/call"
  params = { name = "fail", arguments = { message = "the tool broke" } }
"#;
    let unknown = "  method = \"tools/call\"\n  params = { name = \"nope\" }\n";
    let flows = mcp_flow(fail, "") + &mcp_flow(unknown, "");
    let summary = run(&scenario(&demo.url(), "users = 2\niterations = 4", &flows));
    let failures = summary["failures"].as_array().unwrap();
    let of = |kind: &str| {
        failures
            .iter()
            .find(|f| f["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} failure in {failures:#?}"))
    };
    let tool = of("tool_error");
    assert_eq!(tool["step"], "tools/call fail");
    assert!(
        tool["message"].as_str().unwrap().contains("the tool broke"),
        "{tool}"
    );
    let rpc = of("jsonrpc");
    assert_eq!(rpc["step"], "tools/call nope");
    let message = rpc["message"].as_str().unwrap();
    assert!(
        message.contains("-32602") && message.contains("not found"),
        "{message}"
    );
    // The iteration budget is shared: each user ran at least one.
    let tool_errors = row(&summary, "tools/call fail")["errors"]["tool_error"].as_u64();
    let rpc_errors = row(&summary, "tools/call nope")["errors"]["jsonrpc"].as_u64();
    assert!(tool_errors >= Some(1) && rpc_errors >= Some(1));
    assert_eq!(tool_errors.unwrap() + rpc_errors.unwrap(), 4);
    assert_eq!(summary["totals"]["failures"], 4);
}

/// The preset's second flow, the security checks, without its pauses.
fn security_flow() -> String {
    let text = Preset::McpServer.text();
    let start = text
        .find("[[flow]]\nname = \"security checks\"")
        .expect("the preset has a security flow");
    let end = text.find("[thresholds]").unwrap();
    text[start..end].replace("think_time = \"1s\"\n", "")
}

#[test]
fn the_security_checks_pass_against_the_demo_and_fail_against_a_leak() {
    let demo = Demo::start();
    let text = scenario(&demo.url(), "users = 1\niterations = 1", &security_flow());
    let summary = run(&text);
    assert_eq!(summary["totals"]["requests"], 5);
    assert_eq!(
        summary["totals"]["failures"], 0,
        "{:#}",
        summary["failures"]
    );

    // A server that answers everything, /admin and foreign origins alike.
    let leaky = McpServer::start(Behaviour::Leaky);
    let text = scenario(&leaky.url(), "users = 1\niterations = 1", &security_flow());
    let summary = run(&text);
    // The first check fails and ends the iteration.
    assert_eq!(summary["totals"]["failures"], 1);
    assert_eq!(summary["failures"][0]["step"], "no admin page");
    assert_eq!(summary["failures"][0]["kind"], "status");
    // Each check on its own: every one of them fails.
    let one_each: String = security_flow()
        .split("  [[flow.step]]")
        .skip(1)
        .map(|step| format!("[[flow]]\n  [[flow.step]]{step}"))
        .collect();
    let summary = run(&scenario(
        &leaky.url(),
        "users = 5\niterations = 5",
        &one_each,
    ));
    assert_eq!(summary["totals"]["requests"], 5);
    assert_eq!(summary["totals"]["failures"], 5, "{:#}", summary["steps"]);
}

#[test]
fn an_answer_on_a_stream_left_open_counts_at_its_event() {
    let server = McpServer::start(Behaviour::KeepsStreamsOpen);
    let add = r#"  method = "tools/call"
  params = { name = "add" }
  expect = { json = { "/result/content/0/text" = "3" } }
"#;
    let flows = mcp_flow(add, "");
    let summary = run(&scenario(
        &server.url(),
        "users = 2\niterations = 6",
        &flows,
    ));
    assert_eq!(
        summary["totals"]["failures"], 0,
        "{:#}",
        summary["failures"]
    );
    let call = row(&summary, "tools/call add");
    assert_eq!(call["requests"], 6);
    assert!(call["first_event_ms"]["max"].as_f64().is_some(), "{call:#}");
    // The 5 s target timeout was never reached: the answer is its event.
    assert!(
        call["latency_ms"]["max"].as_f64().unwrap() < 5000.0,
        "{call:#}"
    );
    assert!((1..=2).contains(&server.initialized()));
    assert_eq!(sessions(&summary)[0], server.initialized());
}

#[test]
fn a_call_never_answered_is_a_timeout_within_its_own_limit() {
    let server = McpServer::start(Behaviour::KeepsStreamsOpen);
    let hang = "  method = \"tools/call\"\n  params = { name = \"hang\" }\n  timeout = \"300ms\"\n";
    let flows = mcp_flow(hang, "");
    let summary = run(&scenario(
        &server.url(),
        "users = 1\niterations = 2",
        &flows,
    ));
    let call = row(&summary, "tools/call hang");
    assert_eq!(call["requests"], 2);
    assert_eq!(call["errors"]["timeout"], 2, "{call:#}");
}

#[test]
fn a_forgotten_session_fails_once_and_is_opened_again() {
    let server = McpServer::start(Behaviour::ForgetsSessions);
    let list = "  method = \"tools/list\"\n";
    let flows = mcp_flow(list, &format!("  [[flow.step]]\n  kind = \"mcp\"\n{list}"));
    let summary = run(&scenario(
        &server.url(),
        "users = 1\niterations = 2",
        &flows,
    ));
    let list = row(&summary, "tools/list");
    assert_eq!(list["requests"], 4);
    assert_eq!(list["errors"]["session"], 2, "{list:#}");
    assert_eq!(sessions(&summary)[0], 2);
    assert_eq!(sessions(&summary)[3], 2);
    assert_eq!(server.initialized(), 2);
}

/// How the hand-written MCP server misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Answers calls in event streams it never ends, after a notification
    /// event; never answers a call of the tool `hang`.
    KeepsStreamsOpen,
    /// Answers JSON, and forgets a session after its first call (404).
    ForgetsSessions,
    /// Answers 200 to every request, whatever its path, method or origin.
    Leaky,
}

/// A small MCP server over hyper, enough for the behaviours above.
struct McpServer {
    addr: SocketAddr,
    initialized: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl McpServer {
    fn start(behaviour: Behaviour) -> McpServer {
        let (runtime, listener) = super::server::loopback();
        let addr = listener.local_addr().unwrap();
        let initialized = Arc::new(AtomicU64::new(0));
        let state = Arc::new(Served {
            behaviour,
            initialized: initialized.clone(),
            calls: AtomicU64::new(0),
        });
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        McpServer {
            addr,
            initialized,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn initialized(&self) -> u64 {
        self.initialized.load(Ordering::SeqCst)
    }
}

struct Served {
    behaviour: Behaviour,
    initialized: Arc<AtomicU64>,
    /// Calls in the current session (for `ForgetsSessions`).
    calls: AtomicU64,
}

impl Served {
    async fn answer(&self, req: Request<Incoming>) -> Response<Frames> {
        if self.behaviour == Behaviour::Leaky {
            return reply(StatusCode::OK, "application/json", vec!["{}".into()], true);
        }
        if req.method() == Method::DELETE {
            return reply(StatusCode::OK, "text/plain", Vec::new(), true);
        }
        let has_session = req.headers().contains_key("mcp-session-id");
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let message: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let method = message["method"].as_str().unwrap_or_default();
        let id = message["id"].clone();
        let result = match method {
            "initialize" => {
                self.initialized.fetch_add(1, Ordering::SeqCst);
                self.calls.store(0, Ordering::SeqCst);
                let result = serde_json::json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "serverInfo": {"name": "test", "version": "1"},
                });
                let text = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result});
                let mut answer = reply(
                    StatusCode::OK,
                    "application/json",
                    vec![text.to_string()],
                    true,
                );
                let session = format!("s-{}", self.initialized.load(Ordering::SeqCst));
                answer
                    .headers_mut()
                    .insert("mcp-session-id", session.parse().unwrap());
                return answer;
            }
            m if m.starts_with("notifications/") => {
                return reply(StatusCode::ACCEPTED, "text/plain", Vec::new(), true);
            }
            _ => serde_json::json!({"content": [{"type": "text", "text": "3"}], "tools": []}),
        };
        let text = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        match self.behaviour {
            Behaviour::ForgetsSessions => {
                if has_session && self.calls.fetch_add(1, Ordering::SeqCst) >= 1 {
                    return reply(StatusCode::NOT_FOUND, "text/plain", Vec::new(), true);
                }
                reply(StatusCode::OK, "application/json", vec![text], true)
            }
            _ => {
                let progress = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#;
                let mut events = vec![format!("data: {progress}\n\n")];
                if message["params"]["name"] != "hang" {
                    events.push(format!("id: 1\ndata: {text}\n\n"));
                }
                reply(StatusCode::OK, "text/event-stream", events, false)
            }
        }
    }
}

fn reply(
    status: StatusCode,
    content_type: &str,
    chunks: Vec<String>,
    ends: bool,
) -> Response<Frames> {
    let mut answer = Response::new(Frames {
        chunks: chunks.into_iter().map(Bytes::from).collect(),
        ends,
    });
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
    answer
}

/// A body of some chunks that then ends, or stays open for good (a
/// server that keeps its event stream open).
struct Frames {
    chunks: VecDeque<Bytes>,
    ends: bool,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.chunks.pop_front() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            // Never woken: the stream stays open until the client leaves.
            None if !self.ends => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}
