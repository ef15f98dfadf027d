//! The MCP server handler: the tools, their progress and cancellation, and
//! the run files as resources, each a thin translation to and from an
//! [`Agent`] call.
//!
//! A tool answers with `structuredContent` (mirrored as JSON text, as the
//! spec asks, for clients that read only text) and declares its output
//! schema; a [`ToolError`] becomes a result with `isError: true` and the
//! error's text. Only an unknown tool, a malformed request or a bad
//! resource URI is a JSON-RPC error.

use std::sync::Arc;

use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::Serialize;

use crate::agent::compare::{CompareInput, ComparisonReport};
use crate::agent::redact::SecretValues;
use crate::agent::resources::{self, ReportLink, ResourceError};
use crate::agent::runs::{
    ListInput, RunEvent, RunIdInput, RunInput, RunList, RunResult, RunStarted, RunStatus,
};
use crate::agent::scenario::{CreateInput, CreatedScenario, ValidateInput, Validation};
use crate::agent::{Agent, LimitsReport, ToolError};
use crate::metrics::live::Progress;
use crate::store::RunId;
use crate::units::short;

/// Resources per `resources/list` page.
const RESOURCE_PAGE: usize = 100;

const INSTRUCTIONS: &str = "loadctl runs HTTP load tests described by TOML scenarios. \
Start with get_limits (the hosts, users, rate and duration this server allows), write a scenario with \
create_scenario or by hand, check it with validate_scenario, then run it: run_load_test waits for the \
end (with progress notifications), start_run returns a run_id to poll with get_run and stop with \
cancel_run. Every run is saved; list_runs and compare_runs read them, and each run's reports are \
resources at loadctl://runs/{run_id}/{file}. base_url = \"demo\" targets a built-in demo service.";

/// The server: the agent's tools over MCP.
#[derive(Debug, Clone)]
pub struct LoadctlServer {
    agent: Agent,
    tool_router: ToolRouter<LoadctlServer>,
}

/// A tool's answer: structured content, or `isError` with the message;
/// either way with the allowed environment variables' values redacted.
fn reply<T: Serialize>(secrets: &SecretValues, result: Result<T, ToolError>) -> CallToolResult {
    match result.map(|value| serde_json::to_value(&value)) {
        Ok(Ok(mut value)) => {
            secrets.json(&mut value);
            CallToolResult::structured(value)
        }
        Ok(Err(e)) => {
            CallToolResult::error(vec![ContentBlock::text(format!("internal error: {e}"))])
        }
        Err(e) => CallToolResult::error(vec![ContentBlock::text(secrets.text(&e.0))]),
    }
}

/// A run's answer, with links to its report files after the JSON.
fn reply_with_reports<T: Serialize>(
    secrets: &SecretValues,
    result: Result<T, ToolError>,
    reports: &[ReportLink],
) -> CallToolResult {
    let mut reply = reply(secrets, result);
    if reply.is_error != Some(true) {
        reply.content.extend(reports.iter().map(|r| {
            ContentBlock::resource_link(
                Resource::new(r.uri.clone(), r.file.clone()).with_mime_type(r.mime_type.clone()),
            )
        }));
    }
    reply
}

fn client_name(ctx: &RequestContext<RoleServer>) -> String {
    ctx.client_info()
        .map(|info| info.name)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// A progress notification's text: `12s of 30s: 10 users, 480 req/s, …`;
/// `at` is the progress in seconds.
fn progress_message(p: &Progress, at: f64) -> String {
    let of = p
        .duration
        .map(|d| format!(" of {}s", d.as_secs()))
        .unwrap_or_default();
    let level = if p.open {
        format!("{} arrivals/s", short(p.target))
    } else {
        format!("{} users", p.users)
    };
    format!(
        "{}s{of}: {level}, {} req/s, {} requests, {} failed, p95 {}ms",
        at.floor(),
        short(p.rps),
        p.requests,
        p.failures,
        short(p.p95_ms)
    )
}

#[tool_router]
impl LoadctlServer {
    pub fn new(agent: Agent) -> LoadctlServer {
        LoadctlServer {
            agent,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Write a load-test scenario (TOML) from a preset: basic (a few users on one page), rest-api (list, read, create with extracted values), spike (base load, a surge, back) or soak (steady, long). Optional url (its origin is the target, its path the first request), users or rate (arrivals per second), duration (e.g. 30s) and pattern (constant or ramp). The text always validates; `refusals` says what this server's limits would refuse. Sends nothing.",
        annotations(
            title = "Create a scenario",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<CreatedScenario>()
    )]
    async fn create_scenario(&self, Parameters(input): Parameters<CreateInput>) -> CallToolResult {
        reply(
            self.agent.secrets(),
            blocking(&self.agent, move |a| a.create_scenario(&input)).await,
        )
    }

    #[tool(
        description = "Check a scenario without running it: its TOML text as `scenario`, or a file in the server's scenario folder as `path`. Returns `valid`, every problem with line, column and message, the load it asks for, and `refusals`: what this server's limits would refuse. Sends nothing.",
        annotations(
            title = "Validate a scenario",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<Validation>()
    )]
    async fn validate_scenario(
        &self,
        Parameters(input): Parameters<ValidateInput>,
    ) -> CallToolResult {
        reply(
            self.agent.secrets(),
            blocking(&self.agent, move |a| a.validate_scenario(&input)).await,
        )
    }

    #[tool(
        description = "Run a load test to its end and return the summary: totals, per-step statistics (requests, failures, rps, latency percentiles in ms), thresholds passed or failed, the verdict and the run_id, with links to its reports. The scenario comes as TOML text (`scenario`) or a file (`path`); `users`, `rate` and `duration` replace the scenario's. Sends real traffic, only to allowed hosts and within this server's limits (get_limits). Progress is notified about once a second when the request has a progress token; cancelling the request stops the traffic at once. For tests longer than your tool timeout use start_run.",
        annotations(
            title = "Run a load test",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<RunResult>()
    )]
    async fn run_load_test(
        &self,
        Parameters(input): Parameters<RunInput>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let started = self
            .agent
            .start_run(&input, &client_name(&ctx), "run_load_test")
            .await;
        let started = match started {
            Ok(started) => started,
            Err(e) => return reply::<RunResult>(self.agent.secrets(), Err(e)),
        };
        let Ok(id) = RunId::parse(&started.run_id) else {
            return reply::<RunResult>(
                self.agent.secrets(),
                Err(ToolError::new("the run has no valid id")),
            );
        };
        let Some(mut watch) = self.agent.watch(&id) else {
            // Already over and saved.
            return reply(
                self.agent.secrets(),
                self.agent.get_run(&RunIdInput {
                    run_id: started.run_id,
                }),
            );
        };
        let token = ctx.meta.get_progress_token();
        // Progress must rise with every notification; the last second of a
        // run can end past its duration, so it is clamped to the total.
        let mut last_progress = 0.0;
        loop {
            let event = tokio::select! {
                _ = ctx.ct.cancelled() => {
                    // The client gave up on this call: stop the traffic now.
                    // The run is still saved, interrupted, for get_run.
                    self.agent.stop(&id);
                    return reply::<RunResult>(self.agent.secrets(), Err(ToolError::new("cancelled by the client")));
                }
                event = watch.next() => event,
            };
            match event {
                RunEvent::Progress(p) => {
                    let total = p.duration.map(|d| d.as_secs_f64());
                    let progress = p.elapsed.as_secs_f64().min(total.unwrap_or(f64::MAX));
                    let Some(token) = token.as_ref().filter(|_| progress > last_progress) else {
                        continue;
                    };
                    last_progress = progress;
                    let mut note = ProgressNotificationParam::new(token.clone(), progress)
                        .with_message(progress_message(&p, progress));
                    if let Some(total) = total {
                        note = note.with_total(total);
                    }
                    // A client that stopped listening does not stop the run.
                    let _ = ctx.peer.notify_progress(note).await;
                }
                RunEvent::Ended(result) => {
                    let reports = resources::links(&id);
                    return reply_with_reports(
                        self.agent.secrets(),
                        result.map(Arc::unwrap_or_clone),
                        &reports,
                    );
                }
            }
        }
    }

    #[tool(
        description = "Start a load test and return at once with its run_id; poll it with get_run (live figures while it runs, the summary when it ends) and stop it with cancel_run. Same arguments and limits as run_load_test. Sends real traffic, only to allowed hosts.",
        annotations(
            title = "Start a load test",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<RunStarted>()
    )]
    async fn start_run(
        &self,
        Parameters(input): Parameters<RunInput>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(
            self.agent.secrets(),
            self.agent
                .start_run(&input, &client_name(&ctx), "start_run")
                .await,
        )
    }

    #[tool(
        description = "A run's state by run_id: `running` with its latest figures (elapsed, users, requests, failures, rps, p95), `finished` with its summary and report links, or `failed` with why. Finds runs saved before the server restarted.",
        annotations(
            title = "Get a run",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<RunStatus>()
    )]
    async fn get_run(&self, Parameters(input): Parameters<RunIdInput>) -> CallToolResult {
        let status = self.agent.get_run(&input);
        let reports = status
            .as_ref()
            .ok()
            .and_then(|s| s.result.as_ref())
            .map(|r| r.reports.clone())
            .unwrap_or_default();
        reply_with_reports(self.agent.secrets(), status, &reports)
    }

    #[tool(
        description = "Stop a running load test by run_id: no new requests start, in-flight ones get the scenario's graceful stop. Waits briefly and returns the run's state; the run is saved with the verdict `interrupted`. A run that has already ended is left as it is.",
        annotations(
            title = "Cancel a run",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<RunStatus>()
    )]
    async fn cancel_run(
        &self,
        Parameters(input): Parameters<RunIdInput>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(
            self.agent.secrets(),
            self.agent.cancel_run(&input, &client_name(&ctx)).await,
        )
    }

    #[tool(
        description = "The runs going on now and the saved runs, newest first (at most `limit`, default 20), each with its run_id, name, start time and state or verdict.",
        annotations(
            title = "List runs",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<RunList>()
    )]
    async fn list_runs(&self, Parameters(input): Parameters<ListInput>) -> CallToolResult {
        reply(
            self.agent.secrets(),
            blocking(&self.agent, move |a| a.list_runs(&input)).await,
        )
    }

    #[tool(
        description = "Compare two saved runs (base and current run_id): per step and in total, the change in rps, error rate and p50/p95/p99 latency, and whether any change is a regression beyond max_regression (a percentage, default 10%): rps falling, or error rate or latency rising, by more than that.",
        annotations(
            title = "Compare runs",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<ComparisonReport>()
    )]
    async fn compare_runs(&self, Parameters(input): Parameters<CompareInput>) -> CallToolResult {
        reply(
            self.agent.secrets(),
            blocking(&self.agent, move |a| a.compare_runs(&input)).await,
        )
    }

    #[tool(
        description = "The guardrails in force, set by the person running this server: allowed hosts, most users, highest arrival rate, longest duration, concurrent runs, readable environment variables and the scenario folder. Plan runs within them; a run over a limit is refused, never shrunk.",
        annotations(
            title = "Get the limits",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<LimitsReport>()
    )]
    async fn get_limits(&self) -> CallToolResult {
        reply::<LimitsReport>(self.agent.secrets(), Ok(self.agent.limits()))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for LoadctlServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("loadctl", env!("CARGO_PKG_VERSION"))
                .with_title("loadctl load tester"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(cursor) => cursor.parse::<usize>().map_err(|_| {
                ErrorData::invalid_params(
                    format!("cursor {cursor:?} is not one this server gave"),
                    None,
                )
            })?,
        };
        let files = self
            .agent
            .run_files()
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let page: Vec<Resource> = files
            .iter()
            .skip(start)
            .take(RESOURCE_PAGE)
            .map(|f| {
                Resource::new(
                    f.link.uri.clone(),
                    f.link.uri["loadctl://runs/".len()..].to_string(),
                )
                .with_title(f.title.clone())
                .with_mime_type(f.link.mime_type.clone())
            })
            .collect();
        let mut result = ListResourcesResult::with_all_items(page);
        if start + RESOURCE_PAGE < files.len() {
            result.next_cursor = Some((start + RESOURCE_PAGE).to_string());
        }
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let files = crate::store::file_names().join(", ");
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(resources::URI_TEMPLATE, "run-file")
                .with_title("A saved run's report file")
                .with_description(format!(
                    "run_id as start_run or list_runs gives it; file is one of {files}"
                )),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match self.agent.read_run_file(&request.uri) {
            Ok((text, mime)) => {
                Ok(ReadResourceResult::new(vec![
                    ResourceContents::text(text, request.uri).with_mime_type(mime)
                ])
                .into())
            }
            Err(ResourceError::NotFound(why)) => Err(ErrorData::resource_not_found(why, None)),
            Err(ResourceError::Invalid(why)) => Err(ErrorData::invalid_params(why, None)),
        }
    }
}

/// Runs the agent's synchronous work (parsing and compiling a scenario,
/// reading the run store) off the async workers, so a large scenario
/// cannot delay stdin's end, a cancellation or another request.
async fn blocking<T: Send + 'static>(
    agent: &Agent,
    work: impl FnOnce(&Agent) -> T + Send + 'static,
) -> T {
    let agent = agent.clone();
    tokio::task::spawn_blocking(move || work(&agent))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
