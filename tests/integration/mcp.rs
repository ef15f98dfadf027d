//! `loadctl serve-mcp` spoken to as a host would: the binary spawned, raw
//! JSON-RPC written to its stdin one message per line, and every line of
//! its stdout parsed as JSON (anything else there fails the test). Traffic
//! goes only to the built-in demo target and to counting test servers on
//! 127.0.0.1; every run is a few seconds at most, or cancelled.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::TestServer;
use crate::{wait_for_traffic, wait_within};

/// Generous: a loaded machine must not fail a test by being slow.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

const MODERN: &str = "2026-07-28";

/// A spawned `loadctl serve-mcp` and the messages it has sent.
struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    /// Messages read but not yet asked for, in order.
    seen: Vec<Value>,
    next_id: u64,
}

impl Mcp {
    /// Spawns the server with `args` after `serve-mcp`; runs go to
    /// `runs_dir`.
    fn spawn(runs_dir: &Path, args: &[&str]) -> Mcp {
        Self::spawn_with_env(runs_dir, args, &[])
    }

    fn spawn_with_env(runs_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Mcp {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("loadctl"));
        cmd.arg("serve-mcp")
            .arg("--runs-dir")
            .arg(runs_dir)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("loadctl starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let message: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout carried a non-JSON line ({e}): {line}"));
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        Mcp {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            next_id: 100,
        }
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, message: Value) {
        self.send_line(&message.to_string());
    }

    /// Sends a request and returns its id.
    fn request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// The response to request `id`, waiting for it; messages that arrive
    /// first are kept in `seen`.
    fn response(&mut self, id: u64) -> Value {
        let deadline = Instant::now() + ANSWER_WITHIN;
        loop {
            if let Some(at) = self.seen.iter().position(|m| is_response(m, id)) {
                return self.seen.remove(at);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(message) => self.seen.push(message),
                Err(RecvTimeoutError::Timeout) => panic!("no response to request {id}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the server closed stdout before answering request {id}")
                }
            }
        }
    }

    /// A request's result (failing on a JSON-RPC error).
    fn ask(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        let response = self.response(id);
        assert!(response.get("error").is_none(), "{method}: {response}");
        response["result"].clone()
    }

    /// A request's JSON-RPC error.
    fn ask_error(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        let response = self.response(id);
        response
            .get("error")
            .cloned()
            .unwrap_or_else(|| panic!("{method}: expected an error, got {response}"))
    }

    /// The legacy handshake at `version`; returns the result.
    fn initialize(&mut self, version: &str) -> Value {
        let result = self.ask(
            "initialize",
            json!({"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "integration-test", "version": "1"}}),
        );
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        result
    }

    /// `tools/call`; the result, error or not.
    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.ask("tools/call", json!({"name": tool, "arguments": arguments}))
    }

    /// A successful call's structured content.
    fn call_ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments.clone());
        assert_ne!(result["isError"], true, "{tool} {arguments}: {result}");
        result["structuredContent"].clone()
    }

    /// A failed call's text.
    fn call_err(&mut self, tool: &str, arguments: Value) -> String {
        let result = self.call(tool, arguments.clone());
        assert_eq!(result["isError"], true, "{tool} {arguments}: {result}");
        result["content"][0]["text"].as_str().unwrap().to_string()
    }

    /// Closes stdin and waits for the exit.
    fn close(mut self, within: Duration) -> std::process::ExitStatus {
        drop(self.stdin.take());
        wait_within(&mut self.child, within)
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_response(m: &Value, id: u64) -> bool {
    m.get("id") == Some(&json!(id)) && m.get("method").is_none()
}

/// A scenario against `base_url` with one GET step. Users pause between
/// requests: these tests need traffic, not load, and must leave the CPU
/// to the tests running beside them.
fn scenario(base_url: &str, load: &str) -> String {
    format!(
        "name = \"mcp test\"\n[target]\nbase_url = \"{base_url}\"\ntimeout = \"2s\"\n[load]\n{load}\n[[flow]]\nthink_time = \"20ms\"\n  [[flow.step]]\n  name = \"ok\"\n  path = \"/ok\"\n"
    )
}

fn demo(load: &str) -> String {
    scenario("demo", load).replace("/ok", "/")
}

/// `_meta` of a stateless (2026-07-28) request.
fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"}
    })
}

/// Polls `get_run` until the run shows live figures.
fn wait_until_live(mcp: &mut Mcp, run_id: &str) -> Value {
    let started = Instant::now();
    loop {
        let status = mcp.call_ok("get_run", json!({"run_id": run_id}));
        if !status["live"].is_null() {
            return status;
        }
        assert_eq!(status["state"], "running", "{status}");
        assert!(
            started.elapsed() < ANSWER_WITHIN,
            "no live figures: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_legacy_handshake_echoes_the_client_version() {
    let runs = tempfile::tempdir().unwrap();
    for version in ["2025-06-18", "2025-11-25", "2024-11-05"] {
        let mut mcp = Mcp::spawn(runs.path(), &[]);
        let result = mcp.initialize(version);
        assert_eq!(result["protocolVersion"], version, "{result}");
        assert_eq!(result["serverInfo"]["name"], "loadctl");
        assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(result["capabilities"]["tools"].is_object(), "{result}");
        assert!(result["capabilities"]["resources"].is_object(), "{result}");
        assert_eq!(mcp.ask("ping", json!({})), json!({}));
        assert!(mcp.close(ANSWER_WITHIN).success());
    }
}

#[test]
fn the_stateless_revision_discovers_and_answers_requests_with_meta() {
    let runs = tempfile::tempdir().unwrap();
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    let discovered = mcp.ask("server/discover", json!({"_meta": modern_meta()}));
    let versions = discovered["supportedVersions"].as_array().unwrap();
    assert!(versions.contains(&json!(MODERN)), "{discovered}");
    assert!(versions.contains(&json!("2025-06-18")), "{discovered}");
    let tools = mcp.ask("tools/list", json!({"_meta": modern_meta()}));
    assert_eq!(tools["tools"].as_array().unwrap().len(), 9, "{tools}");
    let limits = mcp.ask(
        "tools/call",
        json!({"name": "get_limits", "arguments": {}, "_meta": modern_meta()}),
    );
    assert_eq!(limits["structuredContent"]["max_concurrent_runs"], 1);
    assert_eq!(limits["resultType"], "complete");
    // A stateless request without its `_meta` is a protocol error.
    let error = mcp.ask_error(
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}),
    );
    assert_eq!(error["code"], -32602, "{error}");
    assert!(mcp.close(ANSWER_WITHIN).success());
}

#[test]
fn tools_are_listed_with_schemas_and_honest_annotations() {
    let runs = tempfile::tempdir().unwrap();
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    mcp.initialize("2025-11-25");
    let list = mcp.ask("tools/list", json!({}));
    let tools = list["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "cancel_run",
            "compare_runs",
            "create_scenario",
            "get_limits",
            "get_run",
            "list_runs",
            "run_load_test",
            "start_run",
            "validate_scenario"
        ]
    );
    for tool in tools {
        let name = tool["name"].as_str().unwrap();
        assert!(tool["description"].as_str().unwrap().len() > 80, "{name}");
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{name}");
        let a = &tool["annotations"];
        assert!(a["title"].is_string(), "{name}");
        let sends_traffic = name == "run_load_test" || name == "start_run";
        assert_eq!(a["openWorldHint"], sends_traffic, "{name}");
        let read_only = !sends_traffic && name != "cancel_run";
        assert_eq!(a["readOnlyHint"], read_only, "{name}");
    }
    let run = tools.iter().find(|t| t["name"] == "run_load_test").unwrap();
    let input = &run["inputSchema"]["properties"];
    for arg in ["scenario", "path", "users", "rate", "duration"] {
        assert!(input[arg].is_object(), "{arg}: {input}");
    }
    let output = &run["outputSchema"]["properties"];
    for field in [
        "run_id",
        "verdict",
        "totals",
        "steps",
        "thresholds",
        "reports",
    ] {
        assert!(output[field].is_object(), "{field}: {output}");
    }
}

#[test]
fn a_whole_session_against_the_demo_target() {
    let runs = tempfile::tempdir().unwrap();
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    mcp.initialize("2025-11-25");

    let limits = mcp.call_ok("get_limits", json!({}));
    assert_eq!(limits["allowed_hosts"], json!(["127.0.0.0/8", "::1"]));
    let created = mcp.call_ok(
        "create_scenario",
        json!({"preset": "basic", "users": 2, "duration": "2s"}),
    );
    let text = created["scenario"].as_str().unwrap().to_string();
    assert!(text.contains("base_url = \"demo\""), "{text}");
    assert_eq!(created["refusals"], json!([]));
    let checked = mcp.call_ok("validate_scenario", json!({"scenario": text}));
    assert_eq!(checked["valid"], true, "{checked}");
    assert_eq!(checked["load"]["users"], 2);

    // run_load_test with a progress token: progress, then the result.
    let id = mcp.request(
        "tools/call",
        json!({"name": "run_load_test", "arguments": {"scenario": text},
               "_meta": {"progressToken": "p1"}}),
    );
    let response = mcp.response(id);
    let progress: Vec<&Value> = mcp
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(!progress.is_empty(), "no progress before the result");
    assert_eq!(progress[0]["params"]["progressToken"], "p1");
    assert_eq!(progress[0]["params"]["total"], 2.0);
    assert!(progress[0]["params"]["message"]
        .as_str()
        .unwrap()
        .contains("req/s"));
    let result = &response["result"];
    assert_ne!(result["isError"], true, "{result}");
    let first = result["structuredContent"].clone();
    assert_eq!(first["verdict"], "passed", "{first}");
    assert!(first["totals"]["requests"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["steps"][0]["name"], "home");
    let mirrored: Value =
        serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(mirrored, first);
    let links: Vec<&str> = result["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "resource_link")
        .map(|c| c["uri"].as_str().unwrap())
        .collect();
    let first_id = first["run_id"].as_str().unwrap().to_string();
    assert!(links.contains(&format!("loadctl://runs/{first_id}/report.html").as_str()));

    // The same scenario as a handle: start, watch live, cancel.
    let started = mcp.call_ok(
        "start_run",
        json!({"scenario": text, "duration": "60s", "users": 1}),
    );
    let second_id = started["run_id"].as_str().unwrap().to_string();
    assert_eq!(started["state"], "running");
    let live = wait_until_live(&mut mcp, &second_id);
    assert!(live["live"]["requests"].as_u64().unwrap() > 0, "{live}");
    assert_eq!(live["live"]["client"], "integration-test");
    let listed = mcp.call_ok("list_runs", json!({}));
    assert_eq!(listed["live"][0]["run_id"], second_id.as_str(), "{listed}");
    let cancelled = mcp.call_ok("cancel_run", json!({"run_id": second_id}));
    assert_eq!(cancelled["state"], "finished", "{cancelled}");
    assert_eq!(cancelled["result"]["verdict"], "interrupted");

    let compared = mcp.call_ok(
        "compare_runs",
        json!({"base": first_id, "current": second_id, "max_regression": "1000%"}),
    );
    assert!(
        compared["rows"].as_array().unwrap().len() >= 5,
        "{compared}"
    );
    assert!(compared["verdict"].is_string());

    let listed = mcp.ask("resources/list", json!({}));
    let uris: Vec<&str> = listed["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris.len(), 12, "{listed}");
    let templates = mcp.ask("resources/templates/list", json!({}));
    assert_eq!(
        templates["resourceTemplates"][0]["uriTemplate"],
        "loadctl://runs/{run_id}/{file}"
    );
    let read = mcp.ask(
        "resources/read",
        json!({"uri": format!("loadctl://runs/{first_id}/report.html")}),
    );
    assert_eq!(read["contents"][0]["mimeType"], "text/html");
    assert!(read["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("<html"));
    let summary = mcp.ask(
        "resources/read",
        json!({"uri": format!("loadctl://runs/{second_id}/summary.json")}),
    );
    let summary: Value =
        serde_json::from_str(summary["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(summary["run"]["interrupted"], true);

    let audit = std::fs::read_to_string(runs.path().join("audit.jsonl")).unwrap();
    let events: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "run_started")
        .collect();
    assert_eq!(started.len(), 2, "{audit}");
    assert_eq!(started[0]["client"], "integration-test");
    assert_eq!(started[0]["target"], "demo");
    assert!(audit.contains("\"outcome\":\"interrupted\""), "{audit}");
    assert!(mcp.close(ANSWER_WITHIN).success());
}

#[test]
fn a_cancelled_request_stops_the_traffic() {
    let server = TestServer::start();
    let runs = tempfile::tempdir().unwrap();
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    mcp.initialize("2025-06-18");
    let text = scenario(&server.url(), "users = 2\nduration = \"60s\"");
    let id = mcp.request(
        "tools/call",
        json!({"name": "run_load_test", "arguments": {"scenario": text},
               "_meta": {"progressToken": 7}}),
    );
    wait_for_traffic(&server);
    mcp.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": id, "reason": "test"}}),
    );
    // Stopping takes at most the in-flight requests' time (this server
    // answers at once); sample twice with time to spare in between.
    std::thread::sleep(Duration::from_millis(1500));
    let after_stop = server.count();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        server.count(),
        after_stop,
        "traffic went on after the cancel"
    );
    // The run was saved, interrupted.
    let started = Instant::now();
    let listed = loop {
        let listed = mcp.call_ok("list_runs", json!({}));
        if listed["saved_total"] == 1 {
            break listed;
        }
        assert!(started.elapsed() < ANSWER_WITHIN, "{listed}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(listed["saved"][0]["state"], "interrupted", "{listed}");
    assert!(mcp.close(ANSWER_WITHIN).success());
}

#[test]
fn hosts_outside_the_allowlist_are_refused_before_any_request() {
    let server = TestServer::start();
    let port = server.addr.port();
    let runs = tempfile::tempdir().unwrap();
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    mcp.initialize("2025-11-25");
    let load = "users = 1\nduration = \"2s\"";
    for (base_url, needle) in [
        // 0.0.0.0 would reach this machine's test server on Linux.
        (format!("http://0.0.0.0:{port}"), "unspecified"),
        (format!("http://[::]:{port}"), "unspecified"),
        (
            "http://192.0.2.10:80".to_string(),
            "not among this server's allowed hosts",
        ),
        ("http://169.254.169.254".to_string(), "cloud metadata"),
    ] {
        let e = mcp.call_err(
            "run_load_test",
            json!({"scenario": scenario(&base_url, load)}),
        );
        assert!(e.contains(needle), "{base_url}: {e}");
        assert!(e.contains("No request was sent"), "{e}");
    }
    assert!(mcp.close(ANSWER_WITHIN).success());

    // Only 127.0.0.2 allowed: `localhost` and 127.0.0.1 resolve elsewhere.
    let mut mcp = Mcp::spawn(runs.path(), &["--allow-host", "127.0.0.2"]);
    mcp.initialize("2025-11-25");
    for base_url in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
    ] {
        let e = mcp.call_err("start_run", json!({"scenario": scenario(&base_url, load)}));
        assert!(
            e.contains("is not among this server's allowed hosts (127.0.0.2)"),
            "{e}"
        );
    }
    let limits = mcp.call_ok("get_limits", json!({}));
    assert_eq!(limits["allowed_hosts"], json!(["127.0.0.2"]));
    // The demo target is served by loadctl itself and always allowed.
    let demo_run = mcp.call_ok("run_load_test", json!({"scenario": demo(load)}));
    assert_eq!(demo_run["verdict"], "passed");
    assert!(mcp.close(ANSWER_WITHIN).success());
    assert_eq!(server.count(), 0, "a refused target received requests");
    let audit = std::fs::read_to_string(runs.path().join("audit.jsonl")).unwrap();
    assert_eq!(
        audit.matches("\"event\":\"run_refused\"").count(),
        6,
        "{audit}"
    );
}

#[test]
fn every_cap_is_refused_by_name() {
    let runs = tempfile::tempdir().unwrap();
    let caps = [
        "--max-users",
        "5",
        "--max-rate",
        "10",
        "--max-duration",
        "10s",
        "--max-concurrent-runs",
        "1",
    ];
    let mut mcp = Mcp::spawn(runs.path(), &caps);
    mcp.initialize("2025-11-25");
    let ok = demo("users = 2\nduration = \"5s\"");
    for (args, needle) in [
        (
            json!({"scenario": demo("users = 6\nduration = \"5s\"")}),
            "users 6 is over this server's --max-users of 5",
        ),
        (json!({"scenario": ok, "users": 6}), "--max-users of 5"),
        (json!({"scenario": ok, "rate": 20}), "--max-rate of 10/s"),
        (
            json!({"scenario": demo("rate = 11\nmax_users = 2\nduration = \"5s\"")}),
            "--max-rate of 10/s",
        ),
        (
            json!({"scenario": ok, "duration": "11s"}),
            "duration 11s is over this server's --max-duration of 10s",
        ),
        (
            json!({"scenario": demo("users = 1\niterations = 5")}),
            "no duration",
        ),
        (
            json!({"scenario": demo("users = 1\nduration = \"1s\"\ngraceful_stop = \"20s\"")}),
            "duration 1s plus graceful_stop 20s",
        ),
        (
            json!({"scenario": ok.replace("timeout = \"2s\"", "timeout = \"11s\"")}),
            "[target] timeout 11s is over this server's --max-duration of 10s",
        ),
        (
            json!({"scenario": format!("{ok}  headers = {{ Host = \"other.example\" }}\n")}),
            "the scenario sets the Host header (step \"ok\")",
        ),
        (
            json!({"scenario": ok.replace("timeout = \"2s\"", "timeout = \"2s\"\nheaders = { host = \"x\" }")}),
            "the scenario sets the Host header ([target] headers)",
        ),
        (
            json!({"scenario": ok.replace("timeout = \"2s\"", "timeout = \"2s\"\ninsecure = true")}),
            "--allow-insecure-tls",
        ),
    ] {
        let e = mcp.call_err("run_load_test", args.clone());
        assert!(e.contains(needle), "{args}: {e}");
        assert!(e.contains("nothing was sent"), "{e}");
    }
    let first = mcp.call_ok("start_run", json!({"scenario": ok}));
    let e = mcp.call_err("start_run", json!({"scenario": ok}));
    assert!(e.contains("--max-concurrent-runs 1"), "{e}");
    assert!(e.contains(first["run_id"].as_str().unwrap()), "{e}");
    let cancelled = mcp.call_ok("cancel_run", json!({"run_id": first["run_id"]}));
    assert_eq!(cancelled["state"], "finished");
    // The slot is free again.
    let second = mcp.call_ok("start_run", json!({"scenario": ok}));
    mcp.call_ok("cancel_run", json!({"run_id": second["run_id"]}));
    assert!(mcp.close(ANSWER_WITHIN).success());
}

#[test]
fn environment_and_files_are_confined() {
    let top = tempfile::tempdir().unwrap();
    let folder = top.path().join("scenarios");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("rows.csv"), "id\n1\n2\n").unwrap();
    std::fs::write(top.path().join("outside.csv"), "id\nsecret\n").unwrap();
    let with_feeder = |file: &str, path: &str| {
        format!(
            "[target]\nbase_url = \"demo\"\n[load]\nusers = 1\nduration = \"1s\"\n[[data]]\nname = \"rows\"\nfile = \"{file}\"\n[[flow]]\n  [[flow.step]]\n  path = \"{path}\"\n"
        )
    };
    std::fs::write(
        folder.join("s.toml"),
        with_feeder("rows.csv", "/{{ rows.id }}"),
    )
    .unwrap();
    let dir = folder.to_str().unwrap();
    let runs = top.path().join("runs");
    let mut mcp = Mcp::spawn_with_env(
        &runs,
        &[
            "--scenario-dir",
            dir,
            "--allow-env",
            "LOADCTL_MCP_TEST_TOKEN",
        ],
        &[
            ("LOADCTL_MCP_TEST_TOKEN", "t0ken"),
            ("LOADCTL_MCP_TEST_SECRET", "s3cret"),
        ],
    );
    mcp.initialize("2025-11-25");
    let checked = mcp.call_ok("validate_scenario", json!({"path": "s.toml"}));
    assert_eq!(checked["valid"], true, "{checked}");
    let allowed = with_feeder("rows.csv", "/{{ env.LOADCTL_MCP_TEST_TOKEN }}");
    let checked = mcp.call_ok("validate_scenario", json!({"scenario": allowed}));
    assert_eq!(checked["valid"], true, "{checked}");

    let secret = with_feeder("rows.csv", "/{{ env.LOADCTL_MCP_TEST_SECRET }}");
    let checked = mcp.call_ok("validate_scenario", json!({"scenario": secret}));
    assert_eq!(checked["valid"], false);
    let message = checked["problems"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("`--allow-env LOADCTL_MCP_TEST_SECRET`"),
        "{message}"
    );
    assert_eq!(checked["problems"][0]["line"], 11);
    let e = mcp.call_err("run_load_test", json!({"scenario": secret}));
    assert!(e.contains("--allow-env LOADCTL_MCP_TEST_SECRET"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");

    let outside = with_feeder("../outside.csv", "/{{ rows.id }}");
    let e = mcp.call_err("run_load_test", json!({"scenario": outside}));
    assert!(e.contains("`..` leads outside the scenario folder"), "{e}");
    assert!(!e.contains("secret"), "{e}");
    let e = mcp.call_err("validate_scenario", json!({"path": "../outside.csv"}));
    assert!(e.contains("`..` leads outside the scenario folder"), "{e}");
    let e = mcp.call_err("validate_scenario", json!({"path": "/etc/passwd"}));
    assert!(e.contains("absolute paths are not allowed"), "{e}");
    assert!(mcp.close(ANSWER_WITHIN).success());

    // Without --scenario-dir, feeders and paths are refused.
    let mut mcp = Mcp::spawn(&runs, &[]);
    mcp.initialize("2025-11-25");
    let e = mcp.call_err(
        "run_load_test",
        json!({"scenario": with_feeder("rows.csv", "/{{ rows.id }}")}),
    );
    assert!(e.contains("--scenario-dir"), "{e}");
    let e = mcp.call_err("validate_scenario", json!({"path": "s.toml"}));
    assert!(e.contains("without --scenario-dir"), "{e}");
    assert!(mcp.close(ANSWER_WITHIN).success());
}

#[test]
fn malformed_and_hostile_input_does_not_kill_the_server() {
    let runs = tempfile::tempdir().unwrap();
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    // Before the handshake: not JSON, a notification sent too early and a
    // stray response are ignored (rmcp alone would end the session).
    mcp.send_line("{ not json");
    mcp.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    mcp.send(json!({"jsonrpc": "2.0", "id": 9, "result": {}}));
    mcp.initialize("2025-11-25");
    mcp.send_line("this is not json");
    mcp.send_line("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ");
    mcp.send_line("[1, 2, 3]");
    let error = mcp.ask_error("no/such/method", json!({}));
    assert_eq!(error["code"], -32601, "{error}");
    let error = mcp.ask_error(
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert_eq!(error["code"], -32602, "{error}");
    let e = mcp.call_err("get_run", json!({"run_id": 42}));
    assert!(e.contains("failed to deserialize parameters"), "{e}");
    let e = mcp.call_err("get_run", json!({"run_id": "../../etc"}));
    assert!(e.contains("run ids are not paths"), "{e}");
    let error = mcp.ask_error("resources/read", json!({"uri": "file:///etc/passwd"}));
    assert_eq!(error["code"], -32602, "{error}");

    // A 50 MB scenario is refused by its size, before it is parsed.
    let huge = format!("name = \"{}\"", "x".repeat(50 << 20));
    let e = mcp.call_err("validate_scenario", json!({"scenario": huge}));
    assert!(
        e.contains("over this server's limit of 1048576 bytes"),
        "{e}"
    );
    // A line past the transport's bound is dropped unread.
    mcp.send_line(&"x".repeat(65 << 20));
    let e = mcp.call_err("run_load_test", json!({"scenario": "[load"}));
    assert!(e.contains("the scenario is not valid"), "{e}");
    assert!(e.contains("line 1, column"), "{e}");

    // Still serving.
    let limits = mcp.call_ok("get_limits", json!({}));
    assert_eq!(limits["max_users"], 100);
    assert!(mcp.close(ANSWER_WITHIN).success());
}

#[test]
fn stdin_eof_stops_the_runs_and_exits_zero() {
    let runs = tempfile::tempdir().unwrap();
    // Before the handshake (rmcp reports it as an error; it is not one).
    let mcp = Mcp::spawn(runs.path(), &[]);
    assert!(mcp.close(Duration::from_secs(1)).success());

    // With a run sending traffic: it stops, is saved, and the server exits
    // within a second. Not a fragile bound: the server caps its own wait
    // for runs to stop at 0.7 s, and usually exits in tens of
    // milliseconds.
    let server = TestServer::start();
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    mcp.initialize("2025-11-25");
    let text = scenario(&server.url(), "users = 2\nduration = \"60s\"");
    let started = mcp.call_ok("start_run", json!({"scenario": text}));
    wait_for_traffic(&server);
    let closed = Instant::now();
    let status = mcp.close(Duration::from_secs(1));
    let took = closed.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(1), "exit took {took:?}");
    let after_exit = server.count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.count(), after_exit, "traffic went on after the exit");

    // A restarted server finds the run, saved as interrupted.
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    mcp.initialize("2025-11-25");
    let run_id = started["run_id"].as_str().unwrap();
    let status = mcp.call_ok("get_run", json!({"run_id": run_id}));
    assert_eq!(status["state"], "finished", "{status}");
    assert_eq!(status["result"]["verdict"], "interrupted");
    assert!(mcp.close(ANSWER_WITHIN).success());

    // While `run_load_test` is still being answered, with requests in
    // flight that the graceful stop would wait for: they are aborted, and
    // the server still exits within a second.
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    mcp.initialize("2025-11-25");
    let before = server.count();
    let slow = scenario(&server.url(), "users = 2\nduration = \"60s\"")
        .replace("/ok", "/slow/1500")
        .replace("timeout = \"2s\"", "timeout = \"5s\"");
    mcp.request(
        "tools/call",
        json!({"name": "run_load_test", "arguments": {"scenario": slow}}),
    );
    let asked = Instant::now();
    while server.count() == before {
        assert!(asked.elapsed() < Duration::from_secs(30), "no traffic");
        std::thread::sleep(Duration::from_millis(10));
    }
    let closed = Instant::now();
    let status = mcp.close(Duration::from_secs(1));
    assert!(status.success(), "{status:?}");
    assert!(closed.elapsed() < Duration::from_secs(1));
    let after_exit = server.count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.count(), after_exit, "traffic went on after the exit");
}

#[test]
fn a_run_is_found_again_after_a_restart() {
    let runs = tempfile::tempdir().unwrap();
    let mut mcp = Mcp::spawn(runs.path(), &[]);
    mcp.initialize("2025-11-25");
    let done = mcp.call_ok(
        "run_load_test",
        json!({"scenario": demo("users = 1\nduration = \"1s\"")}),
    );
    let run_id = done["run_id"].as_str().unwrap().to_string();
    assert!(mcp.close(ANSWER_WITHIN).success());

    let mut mcp = Mcp::spawn(runs.path(), &[]);
    mcp.initialize("2025-06-18");
    let status = mcp.call_ok("get_run", json!({"run_id": run_id}));
    assert_eq!(status["state"], "finished");
    assert_eq!(status["result"], done, "the saved result differs");
    let listed = mcp.call_ok("list_runs", json!({}));
    assert_eq!(listed["saved"][0]["run_id"], run_id.as_str());
    let read = mcp.ask(
        "resources/read",
        json!({"uri": format!("loadctl://runs/{run_id}/junit.xml")}),
    );
    assert!(read["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("<testsuite"));
    assert!(mcp.close(ANSWER_WITHIN).success());
}

#[test]
fn bad_guardrail_flags_are_usage_errors() {
    let runs = tempfile::tempdir().unwrap();
    let missing = runs.path().join("no-such-folder");
    for (args, needle) in [
        (
            vec!["--allow-host", "10.0.0.0/99"],
            "--allow-host `10.0.0.0/99`",
        ),
        (
            vec!["--allow-host", "host:port"],
            "the port is not a number",
        ),
        (vec!["--max-users", "0"], "--max-users must be at least 1"),
        (vec!["--max-rate", "0"], "--max-rate 0 must be more than 0"),
        (
            vec!["--max-duration", "soon"],
            "--max-duration: `soon` is not a duration",
        ),
        (
            vec!["--max-concurrent-runs", "0"],
            "--max-concurrent-runs must be at least 1",
        ),
        (
            vec!["--allow-env", "A-B"],
            "--allow-env \"A-B\" is not a variable name",
        ),
        (
            vec!["--scenario-dir", missing.to_str().unwrap()],
            "--scenario-dir",
        ),
    ] {
        crate::loadctl()
            .arg("serve-mcp")
            .arg("--runs-dir")
            .arg(runs.path())
            .args(&args)
            .write_stdin("")
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicates::str::contains(needle));
    }
}

#[test]
fn allowed_environment_values_never_come_back() {
    let runs = tempfile::tempdir().unwrap();
    let token = "tok-5ecret-9d2f";
    let mut mcp = Mcp::spawn_with_env(
        runs.path(),
        &["--allow-env", "LOADCTL_MCP_TEST_TOKEN"],
        &[("LOADCTL_MCP_TEST_TOKEN", token)],
    );
    mcp.initialize("2025-11-25");
    // The demo's 404 page echoes the path, and a JSON check quotes the
    // value it saw: both would carry the token into the failures.
    let exploit = "name = \"echo\"\n[target]\nbase_url = \"demo\"\n[load]\nusers = 1\nduration = \"1s\"\n[[flow]]\nthink_time = \"50ms\"\n  [[flow.step]]\n  name = \"echo\"\n  path = \"/nope/{{ env.LOADCTL_MCP_TEST_TOKEN }}\"\n  expect = { status = [404], json = { \"/path\" = \"x\" } }\n";
    let result = mcp.call("run_load_test", json!({"scenario": exploit}));
    let text = result.to_string();
    assert!(!text.contains(token), "{text}");
    let summary = &result["structuredContent"];
    assert!(
        summary["totals"]["failures"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    let status = mcp.call("get_run", json!({"run_id": run_id}));
    assert!(!status.to_string().contains(token), "{status}");
    let listed = mcp.ask("resources/list", json!({}));
    let uris: Vec<&str> = listed["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .filter(|uri| uri.contains(&run_id))
        .collect();
    assert!(uris.len() >= 5, "{listed}");
    for uri in uris {
        let read = mcp.ask("resources/read", json!({"uri": uri})).to_string();
        assert!(!read.contains(token), "{uri}: {read}");
    }
    assert!(mcp.close(ANSWER_WITHIN).success());
    let audit = std::fs::read_to_string(runs.path().join("audit.jsonl")).unwrap();
    assert!(!audit.contains(token), "{audit}");
}
