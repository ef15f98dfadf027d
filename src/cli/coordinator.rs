//! `loadctl coordinator`: serve the distributed-run API until SIGTERM, or
//! with `--expect-workers N SCENARIO` run one scenario over N workers and
//! exit as `run` does.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::run::{LoadFlags, OutputFlags};
use super::Exit;
use crate::diag::Severity;
use crate::dist::coordinator::{api, Config, Coordinator};
use crate::report::progress::ProgressDisplay;

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// Serve the API on ADDR (HOST:PORT); an address beyond loopback needs --token
    #[arg(
        long,
        env = "LOADCTL_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:7878"
    )]
    listen: String,
    /// The shared token workers and API clients must present (Authorization: Bearer TOKEN)
    #[arg(long, env = "LOADCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve the API over TLS with this PEM certificate chain (with --tls-key)
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where finished runs are saved (summary.json and the reports, under RUN_ID/)
    #[arg(
        long,
        env = "LOADCTL_STORE",
        value_name = "DIR",
        default_value = "loadctl-runs"
    )]
    store: PathBuf,
    /// Run SCENARIO once N workers have joined, write its results as `run` does, and exit with run's exit codes
    #[arg(long, value_name = "N", requires = "scenario")]
    expect_workers: Option<usize>,
    /// With --expect-workers: how long to wait for the workers, e.g. 2m
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    expect_workers_timeout: String,
    /// The scenario to run with --expect-workers
    #[arg(value_name = "SCENARIO", requires = "expect_workers")]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    load: LoadFlags,
    #[command(flatten)]
    output: OutputFlags,
}

pub fn coordinator(args: CoordinatorArgs) -> anyhow::Result<Exit> {
    let address: SocketAddr = match args.listen.parse() {
        Ok(address) => address,
        Err(_) => {
            eprintln!(
                "error: --listen {}: give an IP address and a port, e.g. 127.0.0.1:7878 or 0.0.0.0:7878",
                args.listen
            );
            return Ok(Exit::Invalid);
        }
    };
    if let Some(problem) = token_problem(args.token.as_deref(), &address) {
        eprintln!("error: {problem}");
        return Ok(Exit::Invalid);
    }
    let timeout = match crate::plan::parse_duration(&args.expect_workers_timeout) {
        Ok(timeout) => timeout,
        Err(e) => {
            eprintln!("error: --expect-workers-timeout: {e}");
            return Ok(Exit::Invalid);
        }
    };
    if args.expect_workers == Some(0) {
        eprintln!("error: --expect-workers must be at least 1");
        return Ok(Exit::Invalid);
    }
    // The scenario is checked before anything listens, like `run` does.
    let request = match (&args.scenario, args.expect_workers) {
        (Some(file), expect) => {
            let overrides = args.load.overrides();
            let Some(checked) = super::run::checked(file, &overrides, Severity::Warning) else {
                return Ok(Exit::Invalid);
            };
            if checked.plan.is_none() || !args.output.prepare()? {
                return Ok(Exit::Invalid);
            }
            let text = checked.source.text;
            Some(super::distributed::request(
                file,
                text,
                &overrides,
                expect,
                Some(timeout),
            )?)
        }
        (None, _) => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read =
                |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
            Some(crate::serve::tls_acceptor(&read(cert)?, &read(key)?)?)
        }
        _ => None,
    };
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("--listen: cannot listen on {address}"))?;
    listener.set_nonblocking(true)?;
    // The address as bound: with port 0 the OS picks one, and the line
    // below says which (tests and scripts read it).
    let address = listener.local_addr().unwrap_or(address);
    let runtime = super::run::runtime()?;
    let config = Config::new(args.token.clone(), args.store.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let stopping = match request {
            Some(_) => "the run's workers stop, and what they ran is reported",
            None => "the coordinator closes its API",
        };
        tokio::spawn(super::run::watch_signals(shutdown.clone(), stopping));
        let serving = CancellationToken::new();
        let coordinator = Coordinator::start(config, serving.clone());
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let handle = {
            let coordinator = coordinator.clone();
            move |req| api::handle(coordinator.clone(), req)
        };
        tokio::spawn(crate::serve::api(listener, tls, handle, serving.clone()));
        eprintln!(
            "coordinator: listening on {scheme}://{address} ({}); runs are saved in {}",
            if args.token.is_some() {
                "token required"
            } else {
                "no token: loopback only"
            },
            args.store.display()
        );
        let outcome = match request {
            Some(request) => {
                let id = coordinator.submit(request)?;
                eprintln!(
                    "coordinator: run {id} waits for {} workers (at most {})",
                    args.expect_workers.unwrap_or(1),
                    crate::units::fmt_duration(timeout)
                );
                let mut display = ProgressDisplay::new(super::terminal::quiet(), None);
                let followed = super::distributed::Followed::Local(&coordinator, id);
                let outcome = super::distributed::follow(followed, &mut display, shutdown).await;
                display.finish();
                Some(outcome?)
            }
            None => {
                shutdown.cancelled().await;
                None
            }
        };
        serving.cancel();
        anyhow::Ok(outcome)
    })?;
    runtime.shutdown_background();
    match outcome {
        None => Ok(Exit::Success),
        Some(Ok(summary)) => args.output.finish(&summary),
        Some(Err(why)) => {
            eprintln!("error: the run did not start: {why}");
            Ok(Exit::Runtime)
        }
    }
}

/// A coordinator reachable beyond this machine must check who talks to it.
fn token_problem(token: Option<&str>, address: &SocketAddr) -> Option<String> {
    match token {
        Some(t) if t.trim().is_empty() => Some("--token is empty".to_string()),
        Some(t) if t.len() < 16 => Some(
            "--token is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)".to_string(),
        ),
        Some(t) if t.bytes().any(|b| !(0x21..=0x7e).contains(&b)) => {
            Some("--token must be printable ASCII without spaces".to_string())
        }
        Some(_) => None,
        None if address.ip().is_loopback() => None,
        None => Some(format!(
            "refusing to listen on {address} without a token: anyone who can reach it could run load tests; \
             pass --token (or set LOADCTL_TOKEN), or listen on 127.0.0.1"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_a_token_is_needed() {
        let public: SocketAddr = "0.0.0.0:7878".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        assert!(token_problem(None, &public)
            .unwrap()
            .contains("without a token"));
        assert!(token_problem(None, &local).is_none());
        assert!(token_problem(Some("0123456789abcdef"), &public).is_none());
        assert!(token_problem(Some("short"), &public)
            .unwrap()
            .contains("too short"));
        assert!(token_problem(Some("0123456789 abcdef"), &local).is_some());
    }
}
