//! What `run --coordinator` and `coordinator --expect-workers` share:
//! following a distributed run's progress to its summary, whether the
//! coordinator is this process or one across the network.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::dist::client::ApiClient;
use crate::dist::coordinator::Coordinator;
use crate::dist::protocol::{RunRequest, RunState, RunStatus};
use crate::metrics::live::Progress;
use crate::metrics::summary::RunSummary;
use crate::plan::Overrides;
use crate::report::progress::ProgressDisplay;
use crate::store::RunId;

/// Where a run's state is read from.
pub enum Followed<'a> {
    Local(&'a Coordinator, RunId),
    Remote(&'a ApiClient, String),
}

/// How long `run --coordinator` keeps asking a coordinator that does not
/// answer before it gives up on the run.
const PATIENCE: Duration = Duration::from_secs(15);

impl Followed<'_> {
    async fn status(&self) -> anyhow::Result<(RunState, Option<Progress>, Option<String>)> {
        match self {
            Followed::Local(c, id) => {
                let status = c
                    .status(id.as_str())
                    .ok_or_else(|| anyhow::anyhow!("run {id} is gone"))?;
                let live = c.live(Some(id.as_str()));
                Ok((status.state, live, status.error))
            }
            Followed::Remote(client, id) => {
                let status: RunStatus = client.get(&format!("/api/runs/{id}")).await?;
                let live = status.live.as_ref().and_then(|l| l.to_progress());
                Ok((status.state, live, status.error))
            }
        }
    }

    async fn summary(&self) -> anyhow::Result<RunSummary> {
        match self {
            Followed::Local(c, id) => c
                .summary(id.as_str())
                .map(|s| (*s).clone())
                .ok_or_else(|| anyhow::anyhow!("run {id} finished without a summary")),
            Followed::Remote(client, id) => {
                Ok(client.get(&format!("/api/runs/{id}/summary")).await?)
            }
        }
    }

    async fn cancel(&self) -> anyhow::Result<()> {
        match self {
            Followed::Local(c, id) => Ok(c.cancel(id.as_str())?),
            Followed::Remote(client, id) => {
                client
                    .delete::<serde_json::Value>(&format!("/api/runs/{id}"))
                    .await?;
                Ok(())
            }
        }
    }
}

/// Shows the run's progress once a second until it ends; its summary, or
/// why it never ran. The first `shutdown` cancels the run (its workers
/// stop, and what they ran is still reported).
pub async fn follow(
    run: Followed<'_>,
    display: &mut ProgressDisplay,
    shutdown: CancellationToken,
) -> anyhow::Result<Result<RunSummary, String>> {
    let mut shown = None;
    let mut cancelled = false;
    let mut last_answer = tokio::time::Instant::now();
    let (mut warned, mut waiting_said) = (false, None);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled(), if !cancelled => {
                cancelled = true;
                if let Err(e) = run.cancel().await {
                    eprintln!("warning: cancelling the run: {e:#}");
                }
            }
        }
        let (state, live, error) = match run.status().await {
            Ok(status) => {
                last_answer = tokio::time::Instant::now();
                status
            }
            Err(e) if is_gone(&e) => {
                return Err(e.context("the coordinator no longer knows the run (was it restarted?)"))
            }
            Err(e) if last_answer.elapsed() < PATIENCE => {
                if !std::mem::replace(&mut warned, true) {
                    eprintln!("warning: {e:#}; asking again for {}s", PATIENCE.as_secs());
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        warned = false;
        if state == RunState::Waiting && error != waiting_said {
            if let Some(why) = &error {
                super::terminal::note(format_args!("waiting for workers: {why}"));
            }
            waiting_said = error.clone();
        }
        if let Some(p) = live.filter(|p| Some(p.elapsed) != shown) {
            shown = Some(p.elapsed);
            display.update(&p);
        }
        match state {
            RunState::Finished => return Ok(Ok(run.summary().await?)),
            RunState::Failed => {
                return Ok(Err(error.unwrap_or_else(|| "the run failed".to_string())))
            }
            RunState::Waiting | RunState::Running => {}
        }
    }
}

/// The coordinator answered that it does not know the run.
fn is_gone(e: &anyhow::Error) -> bool {
    e.downcast_ref::<crate::dist::client::ApiError>()
        .and_then(|e| e.status())
        == Some(http::StatusCode::NOT_FOUND)
}

/// The run request for a scenario file, or quick mode's scenario for a
/// URL: what `run` would run, with its files.
pub fn request(
    arg: &Path,
    text: String,
    overrides: &Overrides,
    expect_workers: Option<usize>,
    timeout: Option<Duration>,
) -> anyhow::Result<RunRequest> {
    let file = super::run::quick_url(arg).is_none().then_some(arg);
    let mut request = crate::dist::run_request(file, text, overrides.clone())?;
    request.expect_workers = expect_workers;
    request.expect_workers_timeout_s = timeout.map(|t| t.as_secs_f64());
    Ok(request)
}
