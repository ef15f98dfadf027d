//! `loadctl serve-mcp`: the agent's tools over the Model Context Protocol,
//! on stdio. This folder is the only place that knows the MCP SDK (rmcp);
//! the tools themselves are [`crate::agent`]'s, so an SDK upgrade touches
//! only this folder.
//!
//! rmcp speaks both protocol eras: the `initialize` handshake (answered
//! with the client's own version when it is one rmcp knows, as hosts
//! require) and the stateless 2026-07-28 revision (`server/discover`,
//! `_meta` on every request). It reads one JSON-RPC message per line and
//! writes only protocol messages to stdout; our logs go to stderr.
//!
//! Bounds on input: a line longer than [`MAX_LINE_BYTES`] is dropped
//! unread (without an answer: its id is never seen) and the server goes on,
//! so a huge line cannot exhaust memory; a line that is not JSON is
//! ignored. A scenario under that bound but over the agent's own cap is
//! answered with an error result, before it is parsed.
//!
//! Before the session opens, a message that is not a request (which rmcp
//! would answer by ending the server) is dropped instead (`opening`).
//!
//! On stdin EOF (also before the handshake, which rmcp reports as an
//! error) every run is stopped and [`serve`] returns within about a
//! second; a run that stopped in that time is saved.

mod opening;
mod server;

use std::time::Duration;

use rmcp::service::ServerInitializeError;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::ServiceExt as _;

use crate::agent::Agent;
pub use server::LoadctlServer;

/// The longest line (one JSON-RPC message) read; longer ones are dropped.
/// It leaves room for a scenario a little over the agent's own cap, so
/// that one is answered with a clear error rather than dropped.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// How long runs get to stop and be saved once stdin is closed.
const STOP_RUNS_WITHIN: Duration = Duration::from_millis(700);

/// Serves `agent` on stdin and stdout until stdin closes, then stops every
/// run. Returns an error only when the session failed for another reason.
pub async fn serve(agent: Agent) -> anyhow::Result<()> {
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    // Runs end the moment stdin closes, so that a long `run_load_test`
    // in hand does not keep sending while rmcp waits for it.
    let closed = tokio_util::sync::CancellationToken::new();
    let transport = opening::OpensWithRequest::new(
        AsyncRwTransport::new_server(stdin, stdout).with_max_line_length(MAX_LINE_BYTES),
        closed.clone(),
    );
    let on_close = agent.clone();
    tokio::spawn(async move {
        closed.cancelled().await;
        on_close.abort_all();
    });
    let outcome = match LoadctlServer::new(agent.clone()).serve(transport).await {
        Ok(running) => running
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("the MCP session failed: {e}")),
        // stdin closed before the handshake: a host probing the command, or
        // one that gave up; nothing to do.
        Err(ServerInitializeError::ConnectionClosed(_)) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("the MCP session did not start: {e}")),
    };
    agent.shutdown(STOP_RUNS_WITHIN).await;
    outcome
}
