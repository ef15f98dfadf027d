//! Simulated workers for measuring a coordinator (`bash benches/coordinator.sh`).
//!
//! Each simulated worker does what a real one does on the wire: registers,
//! heartbeats once a second, and once assigned sends one snapshot a second
//! in the wire form, with a realistic content (a few thousand samples over
//! three steps, a spread of latencies, a few failures). They send no load:
//! what is measured is the coordinator's cost per worker, not a target's.
//!
//!     coordinator_load URL WORKERS SECONDS
//!
//! It submits a run of SECONDS for WORKERS workers, starts the workers, and
//! returns once the run's summary is in (printing its request count, which
//! must be the sum of what the workers sent).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadctl::dist::client::ApiClient;
use loadctl::dist::protocol::{
    now_ms, Heartbeat, HeartbeatReply, Order, Register, Registered, RunCreated, RunRequest,
    RunStatus, WorkerRun, WorkerRunState,
};
use loadctl::metrics::wire::WIRE_VERSION;
use loadctl::metrics::{ErrorKind, Sample, Snapshot};
use loadctl::plan::Overrides;

const SCENARIO: &str = r#"
name = "coordinator bench"
[target]
base_url = "http://127.0.0.1:9"
[load]
users = 1000
duration = "DURATION"
[[flow]]
  [[flow.step]]
  name = "list"
  path = "/items"
  [[flow.step]]
  name = "show"
  path = "/items/1"
  [[flow.step]]
  name = "create"
  method = "POST"
  path = "/items"
"#;

/// Samples per step in each second of each worker.
const SAMPLES_PER_STEP: u64 = 1000;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [url, workers, seconds] = args.as_slice() else {
        eprintln!("usage: coordinator_load URL WORKERS SECONDS");
        std::process::exit(2);
    };
    let workers: usize = workers.parse().expect("WORKERS is a number");
    let seconds: u64 = seconds.parse().expect("SECONDS is a number");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(url, workers, seconds));
}

async fn bench(url: &str, workers: usize, seconds: u64) {
    let token = std::env::var("LOADCTL_TOKEN").ok();
    let client = ApiClient::new(url, token.as_deref(), None)
        .await
        .expect("the coordinator's URL");
    let request = RunRequest {
        scenario: SCENARIO.replace("DURATION", &format!("{seconds}s")),
        overrides: Overrides::default(),
        expect_workers: Some(workers),
        expect_workers_timeout_s: Some(120.0),
        ..RunRequest::default()
    };
    let created: RunCreated = client.post("/api/runs", &request).await.expect("submitted");
    let sent = Arc::new(AtomicU64::new(0));
    for i in 0..workers {
        let (url, token, sent) = (url.to_string(), token.clone(), sent.clone());
        tokio::spawn(async move { simulated_worker(&url, token, i, seconds, sent).await });
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let status: RunStatus = client
            .get(&format!("/api/runs/{}", created.run_id))
            .await
            .expect("status");
        if status.verdict.is_some() || status.error.is_some() {
            let summary: serde_json::Value = client
                .get(&format!("/api/runs/{}/summary", created.run_id))
                .await
                .expect("summary");
            println!(
                "merged requests {} (sent {}), workers {}",
                summary["totals"]["requests"],
                sent.load(Ordering::Relaxed),
                workers
            );
            return;
        }
    }
}

async fn simulated_worker(
    url: &str,
    token: Option<String>,
    i: usize,
    seconds: u64,
    sent: Arc<AtomicU64>,
) {
    let client = ApiClient::new(url, token.as_deref(), None)
        .await
        .expect("client");
    let register = Register {
        name: format!("sim-{i:03}"),
        labels: Default::default(),
        cores: 2,
        capacity: 1,
        version: env!("CARGO_PKG_VERSION").to_string(),
        wire_version: WIRE_VERSION,
    };
    let registered: Registered = client
        .post("/api/workers", &register)
        .await
        .expect("registered");
    let base = format!("/api/workers/{}", registered.worker_id);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut run: Option<(String, loadctl::metrics::wire::Fingerprint, u64)> = None;
    let mut seq = 0;
    loop {
        tick.tick().await;
        let report = run.as_ref().map(|(id, _, second)| WorkerRun {
            run_id: id.clone(),
            state: if *second > seconds {
                WorkerRunState::Done
            } else {
                WorkerRunState::Running
            },
            snapshots: seq,
            error: None,
            elapsed_s: (*second > seconds).then_some(seconds as f64),
        });
        let beat = Heartbeat {
            sent_ms: now_ms(),
            cpu: Some(0.5),
            run: report,
        };
        let Ok(reply) = client
            .post::<_, HeartbeatReply>(&format!("{base}/heartbeat"), &beat)
            .await
        else {
            continue;
        };
        for order in reply.orders {
            if let Order::Assign(a) = order {
                if run.is_none() {
                    let fingerprint = fingerprint(&a.scenario);
                    run = Some((a.run_id.clone(), fingerprint, 1));
                }
            }
        }
        let Some((run_id, fingerprint, second)) = run.as_mut() else {
            continue;
        };
        if *second > seconds {
            if reply_done(&beat) {
                return;
            }
            continue;
        }
        let body = snapshot(*second).to_wire(fingerprint).to_json();
        let path = format!("{base}/snapshots/{run_id}/{seq}/{second}");
        if client.post_bytes(&path, body).await.is_ok() {
            sent.fetch_add(3 * SAMPLES_PER_STEP, Ordering::Relaxed);
            seq += 1;
            *second += 1;
        }
    }
}

fn reply_done(beat: &Heartbeat) -> bool {
    beat.run
        .as_ref()
        .is_some_and(|r| r.state == WorkerRunState::Done)
}

fn fingerprint(scenario: &str) -> loadctl::metrics::wire::Fingerprint {
    let inputs = loadctl::plan::Inputs::sealed();
    let checked = loadctl::validate::check_text(
        std::path::Path::new("bench.toml"),
        scenario,
        &Overrides::default(),
        &inputs,
    );
    loadctl::plan::fingerprint(&checked.plan.expect("the bench scenario compiles"))
}

/// One second of a busy worker: latencies from 0.5 to ~50 ms, 1% failures.
fn snapshot(second: u64) -> Snapshot {
    let mut s = Snapshot::new(3, false);
    for metric in 0..3 {
        for i in 0..SAMPLES_PER_STEP {
            let failure = (i % 100 == 99).then(|| (ErrorKind::Status, "503".to_string()));
            let sample = Sample {
                metric,
                latency_us: 500 + (i * i * 7 + second * 13) % 50_000,
                service_us: 500,
                status: Some(if failure.is_some() { 503 } else { 200 }),
                failure,
                bytes_in: 300,
                bytes_out: 120,
                body_bytes: 180,
            };
            s.record(&sample, second);
        }
    }
    s.started = SAMPLES_PER_STEP;
    s.active_users = 10;
    s
}
