//! loadctl's engine under tokio's two runtime flavours, for the question
//! "one current-thread runtime per generator thread, or one multi-threaded
//! runtime?". Each flavour keeps the same number of connections busy with
//! the same prepared plain GET, through the same `Session::send` that
//! `loadctl run` uses, and prints how many requests completed. The runner's
//! own work (recording, checks) is left out so that only the scheduling
//! differs. `benches/runtime-flavors.sh` runs it against nginx on loopback
//! under `/usr/bin/time` to get requests per CPU-second; it measures, it
//! asserts nothing, and `cargo test` does not run it.
//!
//! ```text
//! runtime_flavors URL current|multi THREADS CONNECTIONS SECONDS
//! ```
//!
//! `current`: THREADS OS threads, each with its own current-thread runtime
//! and an equal share of the connections, as `loadctl run` spreads its
//! users (the runner spawns them onto a `LocalSet`; here they are plain
//! tasks of the thread's runtime). `multi`: one multi-threaded runtime
//! with THREADS workers, every connection a task that any worker may run
//! or steal. Each thread (or, under `multi`, each connection) has its own
//! copy of the connector, so no flavour pays for a shared reference count.
//!
//! The URL must be on loopback. Each connection stops at SECONDS or at
//! `MAX_REQUESTS_PER_CONNECTION`, whichever comes first; a request that
//! takes over 2 s fails the run.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadctl::diag::Diagnostics;
use loadctl::engine::{self, Connector, Session};
use loadctl::plan::{self, BaseUrl, Endpoint, Overrides};
use loadctl::scenario;

/// A bound on each connection's loop besides time: far above what one
/// connection completes in 60 s on loopback.
const MAX_REQUESTS_PER_CONNECTION: u64 = 20_000_000;

fn main() -> ExitCode {
    // `cargo bench` appends `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [url, flavor, threads, connections, seconds] = args.as_slice() else {
        eprintln!("usage: runtime_flavors URL current|multi THREADS CONNECTIONS SECONDS");
        return ExitCode::from(2);
    };
    let (Ok(threads), Ok(connections), Ok(seconds)) = (
        threads.parse::<usize>(),
        connections.parse::<usize>(),
        seconds.parse::<u64>(),
    ) else {
        eprintln!("THREADS, CONNECTIONS and SECONDS are whole numbers");
        return ExitCode::from(2);
    };
    if threads == 0 || connections < threads || !(1..=60).contains(&seconds) {
        eprintln!("need 1 <= THREADS <= CONNECTIONS and 1 <= SECONDS <= 60");
        return ExitCode::from(2);
    }
    let Some(work) = Work::new(url) else {
        return ExitCode::FAILURE;
    };
    let until = Instant::now() + Duration::from_secs(seconds);
    let outcome = match flavor.as_str() {
        "current" => runtime_per_thread(&work, threads, connections, until),
        "multi" => multi_threaded(&work, threads, connections, until),
        other => {
            eprintln!("unknown flavour `{other}`: current or multi");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(requests) => {
            println!("{requests}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The prepared request and the connector every connection shares.
struct Work {
    connector: Arc<Connector>,
    request: engine::Prepared,
}

impl Work {
    fn new(url: &str) -> Option<Work> {
        let source = format!(
            "[target]\nbase_url = {url:?}\nconnect_timeout = \"2s\"\ntimeout = \"2s\"\n\
             [load]\nusers = 1\nduration = \"1s\"\n\
             [[flow]]\n  [[flow.step]]\n  path = \"/\"\n"
        );
        let mut diags = Diagnostics::default();
        let plan = scenario::parse(&source, &mut diags).and_then(|s| {
            plan::compile(
                &s,
                Some(Path::new("bench.toml")),
                &Overrides::default(),
                &plan::Inputs::for_cli(None, loadctl::diag::Severity::Error),
                &mut diags,
            )
        });
        let Some(plan) = plan else {
            let problems: Vec<&str> = diags.items().iter().map(|d| d.message.as_str()).collect();
            eprintln!("`{url}` is not a usable URL: {}", problems.join("; "));
            return None;
        };
        let BaseUrl::Url(endpoint) = &plan.target.base else {
            eprintln!("`{url}` is not a URL");
            return None;
        };
        if !is_loopback(endpoint) {
            eprintln!(
                "`{url}`: this benchmark sends only to loopback (127.0.0.0/8, ::1, localhost)"
            );
            return None;
        }
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cannot start a tokio runtime: {e}");
                return None;
            }
        };
        let connector = match runtime.block_on(Connector::new(endpoint.clone(), &plan.target)) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                eprintln!("{e}");
                return None;
            }
        };
        let step = &plan.flows[0].steps[0];
        let request = engine::prepare(&plan, &connector, step, &minijinja::Value::UNDEFINED)
            .map_err(|(kind, message)| {
                eprintln!("cannot build the request ({}): {message}", kind.as_str())
            })
            .ok()?;
        Some(Work { connector, request })
    }

    /// One connection's loop: the same request, back to back, until `until`
    /// or `MAX_REQUESTS_PER_CONNECTION`.
    async fn keep_busy(
        connector: Arc<Connector>,
        request: engine::Prepared,
        until: Instant,
    ) -> Result<u64, String> {
        let mut session = Session::new(connector);
        let mut sent = 0;
        while sent < MAX_REQUESTS_PER_CONNECTION && Instant::now() < until {
            let exchange =
                session
                    .send(request.request(), false)
                    .await
                    .map_err(|(kind, message)| {
                        format!("a request failed ({}): {message}", kind.as_str())
                    })?;
            // An error page served fast would measure nothing.
            if !exchange.status.is_success() {
                return Err(format!("the target answered {}", exchange.status));
            }
            sent += 1;
        }
        Ok(sent)
    }
}

/// Spawns `connections` loops on the current runtime and sums their
/// counts. `copy_per_task` gives each loop its own copy of the connector
/// (for the multi-threaded runtime, whose tasks may run on any worker).
async fn spawn_all(
    connector: &Arc<Connector>,
    copy_per_task: bool,
    request: &engine::Prepared,
    connections: usize,
    until: Instant,
) -> Result<u64, String> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let connector = if copy_per_task {
            Arc::new(connector.for_thread())
        } else {
            connector.clone()
        };
        tasks.spawn(Work::keep_busy(connector, request.clone(), until));
    }
    let mut total = 0;
    while let Some(joined) = tasks.join_next().await {
        total += joined.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

fn runtime_per_thread(
    work: &Work,
    threads: usize,
    connections: usize,
    until: Instant,
) -> Result<u64, String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                // An even share, as the runner spreads users.
                let share = (t..connections).step_by(threads).count();
                let connector = Arc::new(work.connector.for_thread());
                scope.spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?
                        .block_on(spawn_all(&connector, false, &work.request, share, until))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a thread panicked".to_string())?)
            .sum()
    })
}

fn multi_threaded(
    work: &Work,
    threads: usize,
    connections: usize,
    until: Instant,
) -> Result<u64, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(spawn_all(
            &work.connector,
            true,
            &work.request,
            connections,
            until,
        ))
}

fn is_loopback(endpoint: &Endpoint) -> bool {
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
