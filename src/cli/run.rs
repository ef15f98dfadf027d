//! `loadctl run FILE`: run a scenario headless and report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::Exit;
use crate::diag::Severity;
use crate::dist::client::ApiClient;
use crate::dist::protocol::RunCreated;
use crate::metrics::summary::RunSummary;
use crate::plan::Overrides;
use crate::report::{self, progress::ProgressDisplay};
use crate::runner::{self, RunOptions};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML), or a URL to load-test on its own (quick
    /// mode: one GET step, 50 users for 10 s unless -u/-d/-r/-n say otherwise)
    #[arg(value_name = "FILE|URL")]
    file: PathBuf,
    #[command(flatten)]
    load: LoadFlags,
    #[command(flatten)]
    output: OutputFlags,
    #[command(flatten)]
    generators: GeneratorFlags,
    /// Serve live Prometheus metrics at http://ADDR/metrics during the run, e.g. 127.0.0.1:9464
    #[arg(long, env = "LOADCTL_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<String>,
    #[command(flatten)]
    remote: RemoteFlags,
}

/// `run --coordinator`: run on a coordinator's workers instead of here.
#[derive(Debug, Args)]
pub struct RemoteFlags {
    /// Run on the workers of the coordinator at URL (e.g. http://127.0.0.1:7878) instead of on this machine
    #[arg(long, env = "LOADCTL_COORDINATOR", value_name = "URL")]
    coordinator: Option<String>,
    /// With --coordinator: its shared token
    #[arg(
        long,
        env = "LOADCTL_TOKEN",
        hide_env_values = true,
        requires = "coordinator"
    )]
    token: Option<String>,
    /// With --coordinator: a PEM file of certificates to trust for its TLS, besides the system's
    #[arg(long, value_name = "PEM", requires = "coordinator")]
    ca_file: Option<PathBuf>,
}

/// How many generator threads send the load; `run` and `worker` take it.
#[derive(Debug, Args)]
pub struct GeneratorFlags {
    /// Generator threads (default: one per core)
    #[arg(
        long,
        env = "LOADCTL_THREADS",
        default_value_t = 0,
        hide_default_value = true
    )]
    pub threads: usize,
}

/// The runtime of the commands that run load or serve it (`run`,
/// `coordinator`, `worker`): two threads for the supervisor, signals and
/// servers; the load itself runs on the generator threads.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The flags that override the scenario's load, target and thresholds;
/// `run` and `coordinator` take the same ones.
#[derive(Debug, Args)]
pub struct LoadFlags {
    /// Concurrent users (overrides [load] users)
    #[arg(short, long, env = "LOADCTL_USERS")]
    users: Option<u64>,
    /// Arrival rate in iterations per second; switches to the open model (overrides [load] rate)
    #[arg(short, long, env = "LOADCTL_RATE")]
    rate: Option<f64>,
    /// Open model: most iterations in flight at once (overrides [load] max_users)
    #[arg(long, env = "LOADCTL_MAX_USERS")]
    max_users: Option<u64>,
    /// Load pattern: constant, ramp, stages, spike, wave, random or burst (overrides [load] pattern)
    #[arg(short, long, env = "LOADCTL_PATTERN")]
    pattern: Option<String>,
    /// Seed of the random pattern, to repeat a run exactly (overrides [load] seed)
    #[arg(long, env = "LOADCTL_SEED")]
    seed: Option<u64>,
    /// How long to run, e.g. 30s, 2m, 1m30s (overrides [load] duration)
    #[arg(short, long, env = "LOADCTL_DURATION")]
    duration: Option<String>,
    /// Total flow iterations across all users (overrides [load] iterations)
    #[arg(short = 'n', long, env = "LOADCTL_ITERATIONS")]
    iterations: Option<u64>,
    /// Request timeout, e.g. 5s (overrides [target] timeout)
    #[arg(long, env = "LOADCTL_TIMEOUT")]
    timeout: Option<String>,
    /// Base URL of the target (overrides [target] base_url; "demo" for the built-in target)
    #[arg(long, env = "LOADCTL_BASE_URL")]
    base_url: Option<String>,
    /// Extra request header 'Name: value' (repeatable; replaces a scenario header of the same name)
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    headers: Vec<String>,
    /// Extra threshold 'METRIC: EXPRESSION', e.g. 'http_req_duration: p(95) < 500ms' (repeatable)
    #[arg(long = "threshold", value_name = "'METRIC: EXPR'")]
    thresholds: Vec<String>,
}

impl LoadFlags {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            base_url: self.base_url.clone(),
            users: self.users,
            rate: self.rate,
            max_users: self.max_users,
            pattern: self.pattern.clone(),
            seed: self.seed,
            duration: self.duration.clone(),
            iterations: self.iterations,
            timeout: self.timeout.clone(),
            headers: self.headers.clone(),
            thresholds: self.thresholds.clone(),
        }
    }
}

/// Where a finished run's results are written; `run` and `coordinator`
/// take the same flags.
#[derive(Debug, Args)]
pub struct OutputFlags {
    /// Write summary.json, loadctl_stats.csv, loadctl_stats_history.csv, loadctl_failures.csv, report.html and junit.xml into this folder (created if missing)
    #[arg(short, long, env = "LOADCTL_OUT", value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write Locust-style CSV files PREFIX_stats.csv, PREFIX_stats_history.csv and PREFIX_failures.csv
    #[arg(long, env = "LOADCTL_CSV", value_name = "PREFIX")]
    csv: Option<PathBuf>,
    /// With --out: overwrite the files of an earlier run in that folder
    #[arg(long)]
    force: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<Exit> {
    if args.remote.coordinator.is_some() {
        return run_remote(args);
    }
    let Some(plan) = compile(&args.file, &args.load.overrides()) else {
        return Ok(Exit::Invalid);
    };
    if !args.output.prepare()? {
        return Ok(Exit::Invalid);
    }
    // Bound before the run, so a taken port fails now, not after the test.
    let metrics_listener = match &args.metrics_addr {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr.as_str()).with_context(|| {
                format!(
                    "--metrics-addr: cannot listen on {addr} (give HOST:PORT, e.g. 127.0.0.1:9464)"
                )
            })?;
            listener.set_nonblocking(true)?;
            Some(listener)
        }
        None => None,
    };
    let plan = Arc::new(plan);
    let runtime = runtime()?;
    let summary = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone(), STOPPING_RUN));
        let mut display = ProgressDisplay::new(super::terminal::quiet(), plan.load.duration);
        let latest = report::prometheus::Latest::default();
        let stop_serving = CancellationToken::new();
        if let Some(listener) = metrics_listener {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(report::prometheus::serve(
                listener,
                latest.clone(),
                stop_serving.clone(),
            ));
        }
        let options = RunOptions {
            threads: args.generators.threads,
            live_stats: args.metrics_addr.is_some(),
            ..RunOptions::default()
        };
        let on_progress = |p: &runner::Progress| {
            display.update(p);
            if let Some(text) = report::prometheus::render(p) {
                *latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
            }
        };
        let result = runner::run(plan.clone(), options, on_progress, shutdown).await;
        stop_serving.cancel();
        display.finish();
        anyhow::Ok(result?)
    })?;
    // The runtime's tasks (signal watcher, demo connections) end here.
    runtime.shutdown_background();
    args.output.finish(&summary)
}

/// `run --coordinator URL`: the scenario is checked here, then run by
/// the coordinator's workers; the same progress, summary, files and exit
/// code as a local run.
fn run_remote(args: RunArgs) -> anyhow::Result<Exit> {
    let overrides = args.load.overrides();
    // The workers read their own environment: a variable unset here is
    // only a warning.
    let Some(checked) = checked(&args.file, &overrides, Severity::Warning) else {
        return Ok(Exit::Invalid);
    };
    if checked.plan.is_none() {
        return Ok(Exit::Invalid);
    }
    if !args.output.prepare()? {
        return Ok(Exit::Invalid);
    }
    let request =
        super::distributed::request(&args.file, checked.source.text, &overrides, None, None)?;
    let url = args.remote.coordinator.as_deref().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(async {
        let client = ApiClient::new(
            url,
            args.remote.token.as_deref(),
            args.remote.ca_file.as_deref(),
        )
        .await?;
        let created: RunCreated = client.post("/api/runs", &request).await?;
        super::terminal::note(format_args!(
            "submitted run {} to {}",
            created.run_id,
            client.url()
        ));
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone(), STOPPING_RUN));
        let mut display = ProgressDisplay::new(super::terminal::quiet(), None);
        let followed = super::distributed::Followed::Remote(&client, created.run_id);
        let outcome = super::distributed::follow(followed, &mut display, shutdown).await;
        display.finish();
        outcome
    })?;
    runtime.shutdown_background();
    match outcome {
        Ok(summary) => args.output.finish(&summary),
        Err(why) => {
            eprintln!("error: the run did not start: {why}");
            Ok(Exit::Runtime)
        }
    }
}

/// Compiles the scenario (or quick mode's URL), printing every problem;
/// `None` when it cannot run.
pub fn compile(file: &Path, overrides: &Overrides) -> Option<crate::plan::Plan> {
    checked(file, overrides, Severity::Error)?.plan
}

/// The scenario checked, its problems printed; `None` when it cannot be
/// read at all. `unset_env`: how an unset variable it reads is judged.
pub fn checked(
    file: &Path,
    overrides: &Overrides,
    unset_env: Severity,
) -> Option<crate::validate::Checked> {
    let checked = match check(file, overrides, unset_env) {
        Ok(checked) => checked,
        Err(message) => {
            eprintln!("error: {message}");
            return None;
        }
    };
    for d in checked.diagnostics.items() {
        eprintln!("{}", checked.source.render(d));
    }
    Some(checked)
}

impl OutputFlags {
    /// Prints the summary table, writes the result files, and says how the
    /// run ended as an exit code.
    pub fn finish(&self, summary: &RunSummary) -> anyhow::Result<Exit> {
        super::terminal::print(report::table::render(summary))?;
        self.write(summary)?;
        let totals = &summary.totals;
        if totals.requests > 0
            && totals.failures == totals.requests
            && summary.thresholds.is_empty()
        {
            eprintln!(
                "warning: every request failed, and the scenario has no threshold to fail the run on \
                 (add one, e.g. --threshold 'http_req_failed: rate < 0.01')"
            );
        }
        Ok(Exit::from(summary.verdict()))
    }

    fn write(&self, summary: &RunSummary) -> anyhow::Result<()> {
        if let Some(out) = &self.out {
            report::write_dir(summary, out)?;
            super::terminal::note(format_args!(
                "wrote {}: {}",
                out.display(),
                report::OUTPUTS
                    .iter()
                    .map(|o| o.path_in(Path::new("")).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(prefix) = &self.csv {
            for path in report::write_format(summary, report::Format::Csv, prefix)? {
                super::terminal::note(format_args!("wrote {}", path.display()));
            }
        }
        Ok(())
    }
}

/// Quick mode's load when no flag sets it: oha's and hey's 50 concurrent
/// users, for long enough to see a few seconds of steady state.
const QUICK_USERS: u64 = 50;
const QUICK_DURATION: &str = "10s";

impl OutputFlags {
    /// Checks and makes the output folders before the run, so a bad path
    /// fails now rather than after the run has been paid for. False when the
    /// folder already holds a run (reported).
    pub fn prepare(&self) -> anyhow::Result<bool> {
        if let Some(out) = &self.out {
            let earlier = out.join("summary.json");
            if earlier.exists() && !self.force {
                eprintln!(
                "error: {} already holds a run ({}); choose another folder, or pass --force to overwrite it",
                out.display(),
                earlier.display()
            );
                return Ok(false);
            }
        }
        let csv_dir = self
            .csv
            .as_deref()
            .and_then(|prefix| prefix.parent())
            .filter(|dir| !dir.as_os_str().is_empty());
        for dir in self.out.iter().map(PathBuf::as_path).chain(csv_dir) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the output folder {}: {e}; choose another with --out or --csv",
                    dir.display()
                )
            })?;
            // A folder that exists but cannot be written would lose the results
            // after the run: try a write now.
            let probe = dir.join(format!(".loadctl-probe-{}", std::process::id()));
            std::fs::write(&probe, b"").map_err(|e| {
                anyhow::anyhow!(
                    "the output folder {} cannot be written: {e}; choose another with --out or --csv",
                    dir.display()
                )
            })?;
            let _ = std::fs::remove_file(&probe);
        }
        Ok(true)
    }
}

/// Compiles the scenario file, or quick mode's scenario for a URL; an
/// argument that is neither gets a hint.
fn check(
    arg: &Path,
    overrides: &Overrides,
    unset_env: Severity,
) -> Result<crate::validate::Checked, String> {
    if let Some(url) = quick_url(arg) {
        let text = quick_scenario(url)?;
        let inputs = crate::plan::Inputs::for_cli(None, unset_env);
        return Ok(crate::validate::check_text(arg, &text, overrides, &inputs));
    }
    let text = arg.to_string_lossy();
    if !arg.exists() {
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "`{text}` is not a file, and loadctl tests http and https URLs, not {scheme}: \
                 give a scenario file or an http:// or https:// URL"
            ));
        }
        let host_port = text.split_once(':').is_some_and(|(_, port)| {
            port.split('/')
                .next()
                .is_some_and(|p| p.parse::<u16>().is_ok())
        });
        if host_port || text.starts_with("localhost") {
            return Err(format!(
                "`{text}` is not a file; to test a URL, give its scheme: loadctl run http://{text}"
            ));
        }
        return Err(format!(
            "`{text}` does not exist: give a scenario file (`loadctl init` writes a starter one) \
             or a URL to test, e.g. loadctl run http://127.0.0.1:8080/"
        ));
    }
    let inputs = crate::plan::Inputs::for_cli(Some(arg), unset_env);
    Ok(crate::validate::check_file(arg, overrides, &inputs))
}

/// The URL of quick mode (`loadctl run http://…`), when the argument is one
/// and not a file of that name.
pub(super) fn quick_url(arg: &Path) -> Option<&str> {
    let text = arg.to_str()?;
    let is_url = text.starts_with("http://") || text.starts_with("https://");
    (is_url && !arg.exists()).then_some(text)
}

/// The one-step scenario quick mode runs: GET the URL, count 2xx and 3xx
/// answers as successes, and fail the run (exit 1) when more than 1% of
/// the requests fail, so a dead URL does not pass.
fn quick_scenario(url: &str) -> Result<String, String> {
    let (base, path) = crate::preset::split_url(url).map_err(|e| e.message(""))?;
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    Ok(format!(
        "name = {name}\n[target]\nbase_url = {base}\n[load]\nusers = {QUICK_USERS}\nduration = \"{QUICK_DURATION}\"\n\
         [[flow]]\nname = \"quick\"\n  [[flow.step]]\n  name = {path}\n  path = {path}\n\
         [thresholds]\nhttp_req_failed = [\"rate < 0.01\"]\n",
        name = quote(url),
        base = quote(&base),
        path = quote(&path),
    ))
}

/// What a first signal does to a run.
pub(super) const STOPPING_RUN: &str = "finishing in-flight requests, then reporting";

/// A signal this soon after the first is the same request delivered twice
/// (a terminal signals the whole process group, and `timeout` forwards
/// what it receives to its child), not a second request.
const SECOND_SIGNAL_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// First Ctrl-C or SIGTERM: stop the run and report. Another, a second or
/// more later: quit now. The handlers are installed when this is called
/// (within the runtime), not when the returned task first runs: a signal
/// that arrived in between would kill the process without a report.
pub(super) fn watch_signals(
    shutdown: CancellationToken,
    stopping: &'static str,
) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    async move {
        async fn recv(signal: &mut Option<Signal>) {
            match signal.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        let mut next_signal = async || {
            tokio::select! {
                _ = recv(&mut interrupt) => {}
                _ = recv(&mut terminate) => {}
            }
        };
        next_signal().await;
        eprintln!("\nstopping: {stopping} (signal again to quit at once)");
        shutdown.cancel();
        let first = std::time::Instant::now();
        loop {
            next_signal().await;
            if first.elapsed() >= SECOND_SIGNAL_AFTER {
                break;
            }
        }
        eprintln!("quitting without a report");
        std::process::exit(Exit::Interrupted as i32);
    }
}
