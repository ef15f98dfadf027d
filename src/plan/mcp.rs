//! What an MCP step compiles to ([`McpStep`]), and how a flow's users hold
//! their MCP sessions ([`McpSessionPlan`]).
//!
//! An MCP step (`kind = "mcp"`) is one JSON-RPC call, `method` with
//! `params`, sent over MCP Streamable HTTP to the flow's MCP endpoint: the
//! `path` of the flow's first MCP step, joined to the base URL. Later MCP
//! steps may leave `path` out, and may not name another, since a user's
//! session belongs to one endpoint. The call travels as an HTTP `POST`
//! ([`McpStep::request`]), so the HTTP kind prepares it. The session handshake is measured in a row of its own,
//! [`INITIALIZE_ROW`], registered once per plan.

use std::collections::BTreeSet;
use std::time::Duration;

use http::header::ACCEPT;
use http::Method;

use super::step::{HttpStep, KindPart, StepKind, StepPlan};
use super::template::Part;
use super::{parse_duration, Compiler, MetricInfo};
use crate::diag::Spanned;
use crate::scenario;

/// The row every MCP session's handshake is recorded in.
pub const INITIALIZE_ROW: &str = "mcp initialize";
/// What the rows of MCP steps show as their method.
pub const MCP_ROW_METHOD: &str = "MCP";
/// The protocol version the handshake asks for unless the flow says
/// otherwise: the newest revision that still opens with `initialize`.
pub const DEFAULT_PROTOCOL_VERSION: &str = "2025-11-25";
/// What an MCP client accepts: either answer form of Streamable HTTP.
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// The first revision without an `initialize` handshake.
const STATELESS_REVISION: &str = "2026-07-28";

/// An MCP step's call.
#[derive(Debug)]
pub struct McpStep {
    /// The JSON-RPC method, e.g. `tools/call`.
    pub method: String,
    /// The method as a JSON string, made once for every message.
    pub method_json: String,
    /// The `POST` that carries the call: the flow's endpoint, the step's
    /// headers, and `params` as its JSON body (a template when it holds
    /// one; no body when the step has no `params`).
    pub request: HttpStep,
    /// A notification (`notifications/…`) has no id and gets no answer.
    pub notification: bool,
    /// The step's own time limit for its answer, instead of the target's.
    pub timeout: Option<Duration>,
    /// The row of the handshake ([`INITIALIZE_ROW`]).
    pub initialize_metric: usize,
    /// What the handshake asks for (the flow's `protocol_version`).
    pub protocol_version: String,
}

/// How long a user keeps one MCP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionScope {
    /// One session for the user's life (`session = "per-user"`).
    PerUser,
    /// A new session every iteration (`session = "per-iteration"`).
    PerIteration,
}

/// A flow's `mcp = { … }`: how its users hold their MCP sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpSessionPlan {
    pub scope: SessionScope,
    /// End a session with a `DELETE` (`close_session = true`, the
    /// default), or leave it open as a crashed client would.
    pub close: bool,
    pub protocol_version: String,
}

impl Compiler<'_> {
    /// The MCP part of a step: its method, params, headers and timeout.
    /// The endpoint and protocol version are the flow's, filled in by
    /// [`Compiler::mcp_flow`].
    pub(super) fn mcp_step(
        &mut self,
        s: &scenario::Step,
        known: &BTreeSet<String>,
        metrics: &mut Vec<MetricInfo>,
    ) -> KindPart {
        for (key, given) in [("body", s.body.is_some()), ("json", s.json.is_some())] {
            if given {
                self.diags.error(
                    s.span.clone(),
                    format!("an MCP step sends its `params`; `{key}` is for HTTP steps"),
                );
            }
        }
        let method = match &s.method {
            None => {
                self.diags.error(
                    s.span.clone(),
                    "an MCP step needs a `method`, e.g. method = \"tools/list\"",
                );
                None
            }
            Some(m) if m.value == "initialize" => {
                self.diags.error(
                    m.span.clone(),
                    format!(
                        "loadctl sends `initialize` itself when a session opens (its row is \
                         `{INITIALIZE_ROW}`); list the methods to call after it"
                    ),
                );
                None
            }
            Some(m) if m.value.trim().is_empty() => {
                self.diags
                    .error(m.span.clone(), "an MCP step's `method` cannot be empty");
                None
            }
            Some(m) => Some(m.value.clone()),
        };
        // `None` for no params; `Some(None)` for params with errors.
        let params = s.params.as_ref().map(|p| self.mcp_params(p, known));
        let headers = self.headers(&s.headers, known, "step headers");
        let timeout = s.timeout.as_ref().and_then(|t| {
            parse_duration(&t.value)
                .map_err(|e| self.diags.error(t.span.clone(), format!("timeout: {e}")))
                .ok()
        });
        let initialize_metric = initialize_row(metrics);
        let shown = method.clone().unwrap_or_default();
        KindPart {
            default_name: row_name(&shown, s.params.as_ref().map(|p| &p.value)),
            method: MCP_ROW_METHOD.to_string(),
            kind: match (method, params) {
                (Some(method), Some(Some(params))) => Some(mcp(method, Some(params))),
                (Some(method), None) => Some(mcp(method, None)),
                _ => None,
            }
            .map(|mut step| {
                step.request.headers.extend(headers);
                step.timeout = timeout;
                step.initialize_metric = initialize_metric;
                StepKind::Mcp(step)
            }),
        }
    }

    /// `params` as a template of its JSON text; `None` when it has errors
    /// (they are reported).
    fn mcp_params(
        &mut self,
        params: &Spanned<serde_json::Value>,
        known: &BTreeSet<String>,
    ) -> Option<Part> {
        if !(params.value.is_object() || params.value.is_array()) {
            self.diags.error(
                params.span.clone(),
                "an MCP step's `params` must be a table, e.g. params = { name = \"add\" }",
            );
            return None;
        }
        let text = Spanned::new(params.value.to_string(), params.span.clone());
        self.template(&text, known, "params")
    }

    /// Settles the MCP part of a flow's steps: one endpoint for all of
    /// them, and the flow's protocol version. Returns how the flow's users
    /// hold their sessions, or `None` when the flow has no MCP step.
    pub(super) fn mcp_flow(
        &mut self,
        flow: &scenario::Flow,
        steps: &mut [StepPlan],
    ) -> Option<McpSessionPlan> {
        let settings = self.mcp_session(flow.mcp.as_ref());
        let is_mcp = |s: &&scenario::Step| s.kind.as_ref().is_some_and(|k| k.value == "mcp");
        let mut endpoint: Option<&Spanned<String>> = None;
        for path in flow
            .steps
            .iter()
            .filter(is_mcp)
            .filter_map(|s| s.path.as_ref())
        {
            match endpoint {
                None if !path.value.starts_with('/') => {
                    self.diags.error(
                        path.span.clone(),
                        format!(
                            "path `{}` must start with `/` (it is joined to the base URL)",
                            path.value
                        ),
                    );
                    return None;
                }
                None => endpoint = Some(path),
                Some(first) if first.value != path.value => {
                    self.diags.error(
                        path.span.clone(),
                        format!(
                            "the MCP steps of a flow share one endpoint (a user's session \
                             belongs to it): this path `{}` differs from `{}` given above; \
                             leave it out or put these steps in another flow",
                            path.value, first.value
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        let first = flow.steps.iter().find(is_mcp);
        let path = match (endpoint, first) {
            (Some(path), _) => path.value.clone(),
            (None, Some(first)) => {
                self.diags.error(
                    first.span.clone(),
                    "the first MCP step of a flow needs `path`, the MCP endpoint joined to the \
                     base URL, e.g. path = \"/mcp\"",
                );
                return None;
            }
            (None, None) => String::new(),
        };
        let mut any = false;
        for step in steps.iter_mut() {
            if let StepKind::Mcp(mcp) = &mut step.kind {
                any = true;
                mcp.request.path = Part::Static(path.clone());
                mcp.protocol_version = settings.protocol_version.clone();
            }
        }
        if !any && flow.steps.iter().any(|s| is_mcp(&s)) {
            // Its MCP steps had errors, already reported.
            return None;
        }
        if !any {
            if let Some(m) = &flow.mcp {
                self.diags.warning(
                    m.span.clone(),
                    "this flow has no MCP step (`kind = \"mcp\"`); its `mcp` settings apply to none",
                );
            }
            return None;
        }
        Some(settings)
    }

    fn mcp_session(&mut self, m: Option<&scenario::McpSession>) -> McpSessionPlan {
        let scope = match m.and_then(|m| m.session.as_ref()) {
            None => SessionScope::PerUser,
            Some(s) if s.value == "per-user" => SessionScope::PerUser,
            Some(s) if s.value == "per-iteration" => SessionScope::PerIteration,
            Some(s) => {
                self.diags.error(
                    s.span.clone(),
                    format!(
                        "session = \"{}\" is unknown; expected \"per-user\" or \"per-iteration\"",
                        s.value
                    ),
                );
                SessionScope::PerUser
            }
        };
        let protocol_version = match m.and_then(|m| m.protocol_version.as_ref()) {
            None => DEFAULT_PROTOCOL_VERSION.to_string(),
            Some(v) if !is_revision(&v.value) => {
                self.diags.error(
                    v.span.clone(),
                    format!(
                        "protocol_version `{}` is not an MCP revision like \"{DEFAULT_PROTOCOL_VERSION}\"",
                        v.value
                    ),
                );
                DEFAULT_PROTOCOL_VERSION.to_string()
            }
            Some(v) if v.value.as_str() >= STATELESS_REVISION => {
                self.diags.error(
                    v.span.clone(),
                    format!(
                        "protocol_version `{}` has no `initialize` handshake; loadctl opens \
                         sessions the way today's hosts do, with revisions up to \
                         {DEFAULT_PROTOCOL_VERSION}",
                        v.value
                    ),
                );
                DEFAULT_PROTOCOL_VERSION.to_string()
            }
            Some(v) => v.value.clone(),
        };
        McpSessionPlan {
            scope,
            close: m
                .and_then(|m| m.close_session.as_ref())
                .is_none_or(|c| c.value),
            protocol_version,
        }
    }
}

/// An MCP step calling `method` with `params`; the flow's settings and the
/// rows are filled in by the caller.
fn mcp(method: String, params: Option<Part>) -> McpStep {
    McpStep {
        method_json: serde_json::Value::String(method.clone()).to_string(),
        notification: method.starts_with("notifications/"),
        method,
        request: HttpStep {
            method: Method::POST,
            path: Part::Static(String::new()),
            // First, so a step's own `Accept` replaces it.
            headers: vec![(ACCEPT, Part::Static(ACCEPT_BOTH.to_string()))],
            body: params,
            content_type: Some("application/json"),
        },
        timeout: None,
        initialize_metric: 0,
        protocol_version: DEFAULT_PROTOCOL_VERSION.to_string(),
    }
}

/// The row of the handshake, registered on the first MCP step.
fn initialize_row(metrics: &mut Vec<MetricInfo>) -> usize {
    match metrics.iter().position(|m| m.name == INITIALIZE_ROW) {
        Some(i) => i,
        None => {
            metrics.push(MetricInfo {
                name: INITIALIZE_ROW.to_string(),
                method: Some(MCP_ROW_METHOD.to_string()),
            });
            metrics.len() - 1
        }
    }
}

/// An MCP step's row when it has no name: the method, and for a tool call
/// or a prompt the tool's or prompt's name when it is fixed
/// (`tools/call add`), so each tool gets its own row.
fn row_name(method: &str, params: Option<&serde_json::Value>) -> String {
    let named = matches!(method, "tools/call" | "prompts/get");
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .filter(|n| !(n.contains("{{") || n.contains("{%")));
    match name {
        Some(name) if named => format!("{method} {name}"),
        _ => method.to_string(),
    }
}

/// `YYYY-MM-DD`, the form of every MCP revision.
fn is_revision(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::super::step::tests::compile_steps;
    use super::*;

    /// Compiles `flows`, whose first `[[flow]]` line is left out.
    fn compile_flows(flows: &str) -> Result<super::super::Plan, Vec<String>> {
        compile_steps(flows.trim_start().trim_start_matches("[[flow]]"))
    }

    const TWO_FLOWS: &str = r#"
[[flow]]
mcp = { session = "per-iteration", close_session = false, protocol_version = "2025-06-18" }
  [[flow.step]]
  kind = "mcp"
  path = "/mcp"
  method = "tools/list"
  [[flow.step]]
  kind = "mcp"
  method = "tools/call"
  params = { name = "add", arguments = { a = "{{ vu }}" } }
  timeout = "2s"
[[flow]]
  [[flow.step]]
  kind = "mcp"
  path = "/other"
  method = "tools/call"
  params = { name = "add" }
  [[flow.step]]
  path = "/health"
"#;

    #[test]
    fn mcp_steps_share_their_flows_endpoint_and_one_handshake_row() {
        let plan = compile_flows(TWO_FLOWS).unwrap_or_else(|p| panic!("{p:?}"));
        let names: Vec<&str> = plan.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mcp initialize",
                "tools/list",
                "tools/call add",
                "GET /health"
            ]
        );
        let first = &plan.flows[0];
        let call = first.steps[1].mcp().expect("an MCP step");
        assert_eq!(call.request.path, Part::Static("/mcp".into()));
        assert!(call.request.body.as_ref().is_some_and(|b| !b.is_static()));
        assert_eq!(call.timeout, Some(Duration::from_secs(2)));
        assert_eq!(call.protocol_version, "2025-06-18");
        assert_eq!(call.initialize_metric, 0);
        assert_eq!(
            first.mcp,
            Some(McpSessionPlan {
                scope: SessionScope::PerIteration,
                close: false,
                protocol_version: "2025-06-18".into(),
            })
        );
        let second = &plan.flows[1];
        assert_eq!(
            second.steps[0].mcp().unwrap().request.path,
            Part::Static("/other".into())
        );
        assert_eq!(
            second.mcp.as_ref().map(|m| (m.scope, m.close)),
            Some((SessionScope::PerUser, true))
        );
        assert_eq!(plan.metrics[1].method.as_deref(), Some(MCP_ROW_METHOD));
    }

    #[test]
    fn bad_mcp_steps_are_reported() {
        let flows = r#"
[[flow]]
mcp = { session = "forever", protocol_version = "2026-07-28" }
  [[flow.step]]
  kind = "mcp"
  method = "tools/list"
  params = 3
  [[flow.step]]
  kind = "mcp"
  path = "/b"
  method = "initialize"
  [[flow.step]]
  kind = "mcp"
  path = "/c"
  method = "tools/list"
  json = { a = 1 }
  [[flow.step]]
  kind = "grpc"
  path = "/"
  [[flow.step]]
  path = "/"
  timeout = "1s"
"#;
        let problems = compile_flows(flows).expect_err("problems");
        for needle in [
            "session = \"forever\" is unknown",
            "has no `initialize` handshake",
            "`params` must be a table",
            "loadctl sends `initialize` itself",
            "differs from `/b`",
            "`json` is for HTTP steps",
            "kind = \"grpc\" is unknown",
            "`timeout` is for MCP steps",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle} not in {problems:#?}"
            );
        }
        let no_path = "[[flow]]\n  [[flow.step]]\n  kind = \"mcp\"\n  method = \"ping\"\n";
        let problems = compile_flows(no_path).expect_err("problems");
        assert!(
            problems.iter().any(|p| p.contains("needs `path`")),
            "{problems:?}"
        );
    }

    #[test]
    fn rows_are_per_method_and_tool() {
        let params = serde_json::json!({"name": "add", "arguments": {"a": 1}});
        assert_eq!(row_name("tools/call", Some(&params)), "tools/call add");
        assert_eq!(row_name("prompts/get", Some(&params)), "prompts/get add");
        assert_eq!(row_name("tools/list", None), "tools/list");
        let templated = serde_json::json!({"name": "{{ tool }}"});
        assert_eq!(row_name("tools/call", Some(&templated)), "tools/call");
        let uri = serde_json::json!({"uri": "demo://greeting"});
        assert_eq!(row_name("resources/read", Some(&uri)), "resources/read");
    }

    #[test]
    fn revisions_are_dates() {
        assert!(is_revision("2025-06-18"));
        assert!(!is_revision("2025-6-18"));
        assert!(!is_revision("latest"));
    }
}
