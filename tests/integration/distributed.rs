//! Distributed runs end to end: a coordinator and worker processes of the
//! built binary on 127.0.0.1 (the coordinator on a port the OS picks,
//! read from its "listening on" line), loading an in-process
//! [`TestServer`] whose count is what really arrived, so the merged
//! figures can be held against it.
//!
//! Every process is killed (SIGKILL) when its guard drops and every wait
//! is bounded. These tests run on loaded 2-core machines: they assert
//! behaviour (counts that must match exactly, states, messages, exit
//! codes) and read rates only over windows of seconds, with wide bounds.
//! (The merging itself, sample for sample, is checked in process in
//! `wire.rs`.)

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loadctl::dist::client::{ApiClient, ApiError};
use loadctl::dist::protocol::{
    now_ms, Assignment, Heartbeat, HeartbeatReply, Order, Register, Registered, RunCreated,
};
use loadctl::metrics::wire::{Fingerprint, WIRE_VERSION};
use loadctl::metrics::{Sample, Snapshot};
use loadctl::plan::{Inputs, Overrides};
use serde_json::Value;

use super::server::TestServer;
use crate::{loadctl, scenario, summary, wait_for_traffic, write};

/// How long a process may take to start, join or say something expected.
const PATIENCE: Duration = Duration::from_secs(30);
/// A coordinator's token in these tests (at least 16 characters).
const TOKEN: &str = "test-token-0123456789abcdef";
/// One step, `GET /ok`, named `ok`.
const OK_STEP: &str = "  [[flow.step]]\n  name = \"ok\"\n  path = \"/ok\"\n";

/// A child process of the binary, its stderr read into memory by a
/// thread (not into a file: a disk busy with other builds must not stall
/// the processes' logging); killed when it drops, so a failing test
/// leaves nothing running.
struct Proc {
    name: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Proc {
    fn spawn(name: &str, args: &[&str]) -> Proc {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("loadctl"));
        // The developer's LOADCTL_* settings must not change what a test means.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOADCTL_")) {
            command.env_remove(key);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let reader = {
            let (pipe, stderr) = (child.stderr.take().unwrap(), stderr.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    let mut text = stderr.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            })
        };
        Proc {
            name: name.to_string(),
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until its stderr says `needle`; returns all of its stderr.
    fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < limit,
                "{} did not say `{needle}` within {limit:?}; its stderr:\n{text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for it to exit, failing the test (with its stderr) past `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "{} did not exit within {limit:?}; its stderr:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to say goodbye or to send what it holds.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        // The pipe is closed once the process is gone.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// `loadctl coordinator --listen 127.0.0.1:0 --store DIR/runs ARGS`, once
/// it listens, and its URL as its "listening on" line gives it.
fn coordinator(dir: &Path, args: &[&str]) -> (Proc, String) {
    let store = dir.join("runs");
    let mut all = vec![
        "coordinator",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store.to_str().unwrap(),
    ];
    all.extend(args);
    let proc = Proc::spawn("coordinator", &all);
    let said = proc.wait_for("listening on ", PATIENCE);
    let url = said
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "the listening line names the bound port: {said}"
    );
    (proc, url)
}

/// `loadctl worker --coordinator URL --name NAME --threads 1 EXTRA`, its
/// results folder `DIR/NAME-results`.
fn worker(dir: &Path, url: &str, name: &str, extra: &[&str]) -> Proc {
    let results = dir.join(format!("{name}-results"));
    let mut args = vec![
        "worker",
        "--coordinator",
        url,
        "--name",
        name,
        "--threads",
        "1",
        "--results-dir",
        results.to_str().unwrap(),
    ];
    args.extend(extra);
    Proc::spawn(name, &args)
}

/// The coordinator's API through loadctl's own client.
struct Api {
    client: ApiClient,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    fn new(url: &str, token: Option<&str>) -> Api {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(ApiClient::new(url, token, None)).unwrap();
        Api { client, runtime }
    }

    fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.runtime.block_on(self.client.get(path))
    }

    fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.runtime.block_on(self.client.post(path, body))
    }

    fn post_bytes(&self, path: &str, body: Vec<u8>) -> Result<(), ApiError> {
        self.runtime
            .block_on(self.client.post_bytes(path, body))
            .map(drop)
    }

    /// Waits until a run shows merged live figures with requests in them.
    fn wait_for_merged_figures(&self) {
        let started = Instant::now();
        loop {
            let runs = self.get("/api/runs").unwrap();
            let merged = runs
                .as_array()
                .unwrap()
                .iter()
                .any(|run| run["live"]["requests"].as_u64().is_some_and(|n| n > 0));
            if merged {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no merged figures within {PATIENCE:?}: {runs}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `n` workers are alive (`/api/health`).
    fn wait_for_workers(&self, n: u64) {
        let started = Instant::now();
        loop {
            let alive = self.get("/api/health").ok().map(|h| h["workers"].clone());
            if alive == Some(Value::from(n)) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{n} workers did not join within {PATIENCE:?} (health says {alive:?})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A serving coordinator and its workers, all joined.
struct Cluster {
    url: String,
    token: Option<&'static str>,
    api: Api,
    workers: Vec<Proc>,
    coordinator: Proc,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// A coordinator and one worker per `(name, extra worker args)`.
    fn start(token: Option<&'static str>, workers: &[(&str, &[&str])]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let token_args: Vec<&str> = token.map(|t| vec!["--token", t]).unwrap_or_default();
        let (coordinator, url) = coordinator(dir.path(), &token_args);
        let workers: Vec<Proc> = workers
            .iter()
            .map(|(name, extra)| {
                let args: Vec<&str> = token_args.iter().chain(extra.iter()).copied().collect();
                worker(dir.path(), &url, name, &args)
            })
            .collect();
        let api = Api::new(&url, token);
        api.wait_for_workers(workers.len() as u64);
        Cluster {
            url,
            token,
            api,
            workers,
            coordinator,
            dir,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `run -q --coordinator URL [--token T] EXTRA FILE --out DIR`.
    fn run_args<'a>(&'a self, file: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run", "-q", "--coordinator", self.url.as_str()];
        if let Some(token) = self.token {
            args.extend(["--token", token]);
        }
        args.extend(extra);
        args.extend([file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        args
    }

    /// Submits a run in the background.
    fn submit(&self, file: &Path, out: &Path, extra: &[&str]) -> Proc {
        Proc::spawn("run", &self.run_args(file, out, extra))
    }

    /// Submits a run and waits for its end.
    fn run(&self, file: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
        loadctl().args(self.run_args(file, out, extra)).assert()
    }

    /// The verdict the coordinator gives the run of a summary.
    fn verdict(&self, summary: &Value) -> Value {
        let id = summary["run"]["id"].as_str().unwrap();
        self.api.get(&format!("/api/runs/{id}")).unwrap()["verdict"].clone()
    }
}

/// The test server's count, sampled every 50 ms by a thread, so rates
/// can be read over windows of the test's own clock.
struct Rates {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Rates {
    fn start(server: &TestServer) -> Rates {
        let seen = server.seen.clone();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let count = seen.count.load(Ordering::SeqCst);
                    samples.lock().unwrap().push((Instant::now(), count));
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Rates {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The last sample taken at or before `at`.
    fn at(&self, at: Instant) -> (Instant, u64) {
        let samples = self.samples.lock().unwrap();
        *samples
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .unwrap_or(&samples[0])
    }

    /// Requests per second the server received from `from` to `to`.
    fn rate(&self, from: Instant, to: Instant) -> f64 {
        let ((t0, c0), (t1, c1)) = (self.at(from), self.at(to));
        (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
    }
}

impl Drop for Rates {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn u64_of(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

/// The summary's workers by name.
fn workers_of(summary: &Value) -> Vec<(String, Value)> {
    summary["distribution"]["workers"]
        .as_array()
        .expect("a distributed run's summary lists its workers")
        .iter()
        .map(|w| (w["name"].as_str().unwrap().to_string(), w.clone()))
        .collect()
}

fn worker_named(summary: &Value, name: &str) -> Value {
    workers_of(summary)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no worker {name} in {}", summary["distribution"]))
        .1
}

/// The merged total is exactly what the workers reported, summed, and
/// what the merged per-second series adds up to.
fn assert_merged_is_the_workers_sum(summary: &Value) -> u64 {
    let merged = u64_of(&summary["totals"]["requests"]);
    let reported: u64 = workers_of(summary)
        .iter()
        .map(|(_, w)| u64_of(&w["requests"]))
        .sum();
    assert_eq!(merged, reported, "{}", summary["distribution"]);
    let series: u64 = summary["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u64_of(&p["requests"]))
        .sum();
    assert_eq!(series, merged, "the series adds up to the totals");
    merged
}

#[test]
fn three_workers_send_exactly_what_the_merged_summary_counts_and_never_share_a_row() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Rows for every request (6 users at most every 20 ms for 3 s), each
    // to be used once over all workers; the file travels with the run.
    let rows: String = (0..2000).map(|i| format!("row{i}\n")).collect();
    write(dir.path(), "accounts.csv", &format!("id\n{rows}"));
    let data = "[[data]]\nname = \"accounts\"\nfile = \"accounts.csv\"\nmode = \"unique\"\n";
    let steps = "think_time = \"20ms\"\n  [[flow.step]]\n  path = \"/echo/{{ accounts.id }}\"\n";
    // Six users: each worker runs some of them (users are placed by
    // position, not dealt round-robin, so three would leave one idle).
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(&server.url(), "users = 6\nduration = \"3s\"", steps, data),
    );
    let out = dir.path().join("out");
    let (mut coordinator, url) = coordinator(
        dir.path(),
        &[
            "-q",
            "--expect-workers",
            "3",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let _workers: Vec<Proc> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| worker(dir.path(), &url, name, &[]))
        .collect();
    let status = coordinator.wait(Duration::from_secs(90));
    assert!(status.success(), "{status}: {}", coordinator.stderr());
    let summary = summary(&out);
    let merged = assert_merged_is_the_workers_sum(&summary);
    assert_eq!(
        merged,
        server.count(),
        "merged count vs what the server saw"
    );
    let paths = server.paths();
    let distinct: std::collections::HashSet<&String> = paths.iter().collect();
    assert_eq!(distinct.len(), paths.len(), "a row was used twice");
    let workers = workers_of(&summary);
    assert_eq!(workers.len(), 3);
    for (name, w) in &workers {
        assert_eq!(w["state"], "done", "{name}: {w}");
        assert!(u64_of(&w["requests"]) > 0, "{name} sent nothing: {w}");
        let share = w["share"].as_f64().unwrap();
        assert!((share - 1.0 / 3.0).abs() < 1e-9, "{name}: {w}");
    }
}

/// What happened in a run that lost its last worker to SIGKILL.
struct Loss {
    server: TestServer,
    rates: Rates,
    cluster: Cluster,
    status: ExitStatus,
    summary: Value,
    duration_s: u64,
    /// The killed worker's name, and its part of the rate.
    victim: String,
    victim_rate: f64,
    /// When the server saw the run's first request.
    traffic_from: Instant,
    killed_at: Instant,
    /// When the coordinator said the worker was lost.
    lost_at: Instant,
}

/// The open-model rate of the loss tests, requests per second.
const RATE: f64 = 60.0;

/// Runs `RATE` requests per second for `duration_s` over `workers`
/// workers with `on_worker_lost = policy`, and SIGKILLs the last worker
/// 2 s into the traffic.
fn lose_a_worker(policy: &str, workers: usize, duration_s: u64) -> Loss {
    let server = TestServer::start();
    let rates = Rates::start(&server);
    let names: Vec<String> = (1..=workers).map(|i| format!("w{i}")).collect();
    let specs: Vec<(&str, &[&str])> = names.iter().map(|n| (n.as_str(), &[][..])).collect();
    let mut cluster = Cluster::start(None, &specs);
    let load = format!("rate = {RATE}\nmax_users = 60\nduration = \"{duration_s}s\"");
    let extra = format!("[distribution]\non_worker_lost = \"{policy}\"\n");
    let file = write(
        cluster.dir(),
        "s.toml",
        &scenario(&server.url(), &load, OK_STEP, &extra),
    );
    let out = cluster.dir().join("out");
    let mut run = cluster.submit(&file, &out, &[]);
    let waiting = Instant::now();
    while server.count() == 0 {
        assert!(
            waiting.elapsed() < PATIENCE,
            "no traffic; run:\n{}\ncoordinator:\n{}",
            run.stderr(),
            cluster.coordinator.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let traffic_from = Instant::now();
    // Killed 2 s into the traffic, and not before the coordinator has
    // merged a second of it (a worker lost before any figure arrived is
    // a run that could not start, another story).
    cluster.api.wait_for_merged_figures();
    std::thread::sleep(
        (traffic_from + Duration::from_secs(2)).saturating_duration_since(Instant::now()),
    );
    cluster.workers.last_mut().unwrap().kill();
    let killed_at = Instant::now();
    let victim = names.last().unwrap().clone();
    cluster
        .coordinator
        .wait_for(&format!("worker {victim} was lost at"), PATIENCE);
    let lost_at = Instant::now();
    let status = run.wait(Duration::from_secs(duration_s + 60));
    assert!(
        out.join("summary.json").exists(),
        "{status}; run:\n{}\ncoordinator:\n{}",
        run.stderr(),
        cluster.coordinator.stderr()
    );
    // Only the killed worker can be lost; another one lost means its
    // heartbeats went unheard for seconds: this machine (or the
    // coordinator process) stalled, and nothing below would mean much.
    let said = cluster.coordinator.stderr();
    let others_lost: Vec<&str> = said
        .lines()
        .filter(|l| l.contains(" lost: no heartbeat") && !l.contains(&format!("worker {victim} ")))
        .collect();
    assert!(
        others_lost.is_empty(),
        "workers that were not killed were lost (a stalled machine or coordinator?):\n{said}"
    );
    let summary = summary(&out);
    Loss {
        server,
        rates,
        cluster,
        status,
        summary,
        duration_s,
        victim,
        victim_rate: RATE / workers as f64,
        traffic_from,
        killed_at,
        lost_at,
    }
}

impl Loss {
    fn assert_exit_code(&self, code: i32) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "{}",
            self.cluster.coordinator.stderr()
        );
    }

    /// The killed worker as the summary shows it: lost, when, with what
    /// it reported kept, and named in a warning (the run went on) or in
    /// the reason the run failed.
    fn assert_victim_reported_lost(&self) {
        let lost = worker_named(&self.summary, &self.victim);
        assert_eq!(lost["state"], "lost", "{lost}");
        let lost_at_s = lost["lost_at_s"].as_f64().expect("lost_at_s is set");
        assert!(lost_at_s > 0.0, "{lost}");
        assert!(
            u64_of(&lost["requests"]) > 0,
            "what the lost worker reported is kept: {lost}"
        );
        let said = format!(
            "{} {}",
            self.summary["warnings"], self.summary["distribution"]["failed"]
        );
        let name = &self.victim;
        assert!(
            said.contains(&format!("worker {name} was lost at")),
            "{said}"
        );
        self.assert_nothing_reported_is_missing();
    }

    /// Nothing the workers reported is missing, and the server saw at
    /// least that. Exactly checkable: the merged total is the sum of the
    /// per-worker counts (every accepted snapshot counted once), and the
    /// server saw at least the merged total (nothing counted that was not
    /// sent). The server may have seen more: what the killed worker sent
    /// after its last delivered snapshot (its current second, and a
    /// second whose post was on its way) died with it. That gap is
    /// bounded only loosely: at most a few seconds of its share.
    fn assert_nothing_reported_is_missing(&self) {
        let merged = assert_merged_is_the_workers_sum(&self.summary);
        let seen = self.server.count();
        assert!(seen >= merged, "server {seen} < merged {merged}");
        let unreported = (seen - merged) as f64;
        assert!(
            unreported <= self.victim_rate * 4.0,
            "{unreported} requests unreported, more than 4 s of the lost worker's {}/s",
            self.victim_rate
        );
    }

    /// A warning (or the reason the run failed) says `text`.
    fn assert_said(&self, field: &Value, text: &str) {
        assert!(field.to_string().contains(text), "`{text}` not in {field}");
    }

    /// The server's rate from when every survivor has heard of and
    /// applied a share change to 1 s before the scenario's end. (The
    /// change is set `SHARE_CHANGE_LEAD`, 2.5 s, ahead, and workers hear
    /// of it on their next heartbeat, each second: 4 s after the loss was
    /// noticed, with time to spare on a loaded machine.)
    fn rate_once_settled(&self) -> f64 {
        let from = self.lost_at + Duration::from_secs(4);
        let end = self.traffic_from + Duration::from_secs(self.duration_s - 1);
        assert!(
            end > from + Duration::from_secs(1),
            "the loss was noticed too late to measure a rate after it ({:?} after the kill)",
            self.lost_at - self.killed_at
        );
        self.rates.rate(from, end)
    }

    /// The run stopped early: it ended well before its duration, and the
    /// server hears nothing more.
    fn assert_stopped_early(&self) {
        let elapsed = self.summary["run"]["elapsed_s"].as_f64().unwrap();
        assert!(
            elapsed < self.duration_s as f64 / 2.0,
            "the run went on for {elapsed}s of {}s",
            self.duration_s
        );
        let count = self.server.count();
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(self.server.count(), count, "traffic after the run ended");
    }
}

#[test]
fn a_worker_killed_mid_run_is_lost_and_its_share_moves_to_the_others() {
    let loss = lose_a_worker("rebalance", 3, 16);
    loss.assert_exit_code(0);
    loss.assert_victim_reported_lost();
    loss.assert_said(&loss.summary["warnings"], "moved to the 2 other workers");
    assert!(loss.summary["distribution"]["failed"].is_null());
    for name in ["w1", "w2"] {
        assert_eq!(worker_named(&loss.summary, name)["state"], "done");
    }
    assert_eq!(loss.cluster.verdict(&loss.summary), "passed");
    // Behaviour, not precision: the rate dipped to about two thirds while
    // the worker was missing, and came back to about the target.
    let dipped = loss
        .rates
        .rate(loss.killed_at + Duration::from_millis(500), loss.lost_at);
    let recovered = loss.rate_once_settled();
    eprintln!(
        "rebalance: lost {:?} after the kill; {dipped:.1}/s meanwhile, {recovered:.1}/s after",
        loss.lost_at - loss.killed_at
    );
    assert!(
        dipped < RATE * 0.85,
        "{dipped}/s while a worker was missing"
    );
    assert!(
        (RATE * 0.8..=RATE * 1.25).contains(&recovered),
        "{recovered}/s after the rebalance, target {RATE}/s"
    );
}

#[test]
fn on_worker_lost_continue_keeps_the_survivors_shares_and_says_the_load_fell_short() {
    let loss = lose_a_worker("continue", 3, 16);
    loss.assert_exit_code(0);
    loss.assert_victim_reported_lost();
    loss.assert_said(&loss.summary["warnings"], "fell short");
    // Two of three workers: about two thirds of the target, to the end.
    let after = loss.rate_once_settled();
    eprintln!("continue: {after:.1}/s after the loss");
    assert!(
        (RATE * 0.45..=RATE * 0.85).contains(&after),
        "{after}/s after the loss, expected about {}/s",
        RATE * 2.0 / 3.0
    );
}

#[test]
fn on_worker_lost_fail_stops_the_run_and_fails_it() {
    let loss = lose_a_worker("fail", 2, 40);
    loss.assert_exit_code(3);
    loss.assert_victim_reported_lost();
    let failed = &loss.summary["distribution"]["failed"];
    loss.assert_said(failed, "on_worker_lost = \\\"fail\\\"");
    assert_eq!(loss.cluster.verdict(&loss.summary), "failed");
    assert_eq!(worker_named(&loss.summary, "w1")["state"], "done");
    loss.assert_stopped_early();
}

#[test]
fn losing_the_last_worker_fails_the_run_with_its_partial_results() {
    let loss = lose_a_worker("rebalance", 1, 40);
    loss.assert_exit_code(3);
    loss.assert_victim_reported_lost();
    let failed = &loss.summary["distribution"]["failed"];
    loss.assert_said(failed, "the last of the run's workers");
    assert_eq!(loss.cluster.verdict(&loss.summary), "failed");
    assert!(u64_of(&loss.summary["totals"]["requests"]) > 0);
    loss.assert_stopped_early();
}

#[test]
fn a_wrong_token_is_refused_everywhere() {
    let server = TestServer::start();
    let cluster = Cluster::start(Some(TOKEN), &[]);
    let dir = cluster.dir();
    // A worker with a wrong token exits, saying why.
    let mut intruder = worker(
        dir,
        &cluster.url,
        "intruder",
        &["--token", "not-the-token-at-all"],
    );
    let status = intruder.wait(PATIENCE);
    assert!(!status.success());
    assert!(
        intruder.stderr().contains("refused the token"),
        "{}",
        intruder.stderr()
    );
    assert_eq!(
        cluster.api.get("/api/workers").unwrap(),
        serde_json::json!([])
    );
    // So does `run --coordinator`.
    let file = write(
        dir,
        "s.toml",
        &scenario(&server.url(), "users = 1\nduration = \"1s\"", OK_STEP, ""),
    );
    let run = loadctl()
        .args([
            "run",
            "-q",
            "--coordinator",
            &cluster.url,
            "--token",
            "not-the-token-at-all",
        ])
        .arg(&file)
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(stderr.contains("refused the token"), "{stderr}");
    assert_eq!(server.count(), 0);
    // The API answers 401 without the token, and only the health probe
    // answers without one.
    let anonymous = Api::new(&cluster.url, None);
    for path in ["/api/workers", "/api/runs", "/metrics"] {
        let refused = anonymous.get(path).unwrap_err();
        assert_eq!(
            refused.status(),
            Some(http::StatusCode::UNAUTHORIZED),
            "{path}"
        );
    }
    assert_eq!(anonymous.get("/api/health").unwrap()["status"], "ok");
    // Beyond loopback, a token is required before anything listens.
    let refused = loadctl()
        .args(["coordinator", "--listen", "0.0.0.0:0", "--store"])
        .arg(dir.join("runs"))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("without a token"), "{stderr}");
}

/// A fake worker, by hand through the API: registered, then given a run.
fn fake_worker_in_a_run(api: &Api, file: &Path) -> (String, Assignment) {
    let registered: Registered = api
        .post(
            "/api/workers",
            &Register {
                name: "fake".into(),
                labels: Default::default(),
                cores: 1,
                capacity: 1,
                version: env!("CARGO_PKG_VERSION").into(),
                wire_version: WIRE_VERSION,
            },
        )
        .unwrap();
    let text = fs::read_to_string(file).unwrap();
    let request = loadctl::dist::run_request(Some(file), text, Overrides::default()).unwrap();
    let _: RunCreated = api.post("/api/runs", &request).unwrap();
    let heartbeat = format!("/api/workers/{}/heartbeat", registered.worker_id);
    let started = Instant::now();
    loop {
        let beat = Heartbeat {
            sent_ms: now_ms(),
            cpu: None,
            run: None,
        };
        let reply: HeartbeatReply = api.post(&heartbeat, &beat).unwrap();
        for order in reply.orders {
            if let Order::Assign(assignment) = order {
                return (registered.worker_id, *assignment);
            }
        }
        assert!(started.elapsed() < PATIENCE, "the fake worker got no run");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The status line of the answer to a POST whose head declares a body of
/// `length` bytes, and no body sent: a limit must hold on the declared
/// length, before any of the body is read.
fn status_line(url: &str, path: &str, length: usize) -> String {
    use std::io::{BufRead, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {length}\r\n\r\n"
    )
    .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut line)
        .unwrap();
    line
}

/// A snapshot of `requests` fast successes of a one-step plan, in its
/// wire form under `fingerprint`.
fn wire_snapshot(requests: u64, fingerprint: &Fingerprint) -> Vec<u8> {
    let mut snapshot = Snapshot::new(1, false);
    for _ in 0..requests {
        let sample = Sample {
            metric: 0,
            latency_us: 1500,
            service_us: 1500,
            status: Some(200),
            failure: None,
            bytes_in: 100,
            bytes_out: 50,
            body_bytes: 2,
        };
        snapshot.record(&sample, 0);
    }
    snapshot.to_wire(fingerprint).to_json()
}

#[test]
fn garbage_and_foreign_snapshots_are_refused_without_harm() {
    let server = TestServer::start();
    let cluster = Cluster::start(Some(TOKEN), &[]);
    let api = &cluster.api;
    let file = write(
        cluster.dir(),
        "s.toml",
        &scenario(&server.url(), "users = 1\nduration = \"2s\"", OK_STEP, ""),
    );
    let (worker_id, assignment) = fake_worker_in_a_run(api, &file);
    let plan = loadctl::validate::check_text(
        &file,
        &assignment.scenario,
        &Overrides::default(),
        &Inputs::sealed(),
    )
    .plan
    .expect("the scenario compiles");
    let fingerprint = loadctl::plan::fingerprint(&plan);
    assert_eq!(fingerprint.to_string(), assignment.fingerprint);
    let path = |seq: u64, second: u64| {
        format!(
            "/api/workers/{worker_id}/snapshots/{}/{seq}/{second}",
            assignment.run_id
        )
    };
    let status_of = |result: Result<(), ApiError>| result.unwrap_err().status().unwrap();
    let refusal = |result: Result<(), ApiError>| result.unwrap_err().to_string();

    let garbage = refusal(api.post_bytes(&path(0, 1), b"\x00garbage{".to_vec()));
    assert!(
        garbage.contains("400") && garbage.contains("not a snapshot"),
        "{garbage}"
    );
    let other_plan = Fingerprint::of([("another step", Some("GET"))], false);
    let foreign = refusal(api.post_bytes(&path(0, 1), wire_snapshot(7, &other_plan)));
    assert!(
        foreign.contains("400") && foreign.contains("recorded against another plan"),
        "{foreign}"
    );
    let limit = loadctl::metrics::wire::max_json_bytes(1);
    let huge = status_line(&cluster.url, &path(0, 1), limit + 1);
    assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
    let elsewhere =
        format!("/api/workers/{worker_id}/snapshots/0123456789abcdef0123456789abcdef/0/1");
    // Refused before its (large) body is read, a request may leave its
    // connection closed by the coordinator (when the body has not all
    // arrived): the next call must still get through, on a fresh one.
    // Several times, as whether it is closed depends on timing.
    for _ in 0..5 {
        let unknown_run = api.post_bytes(&elsewhere, vec![b' '; 100_000]);
        assert_eq!(status_of(unknown_run), http::StatusCode::NOT_FOUND);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(api.get("/api/health").unwrap()["status"], "ok");
    }
    let not_a_number = api.post_bytes(&path(0, 1).replace("/0/1", "/x/1"), Vec::new());
    assert_eq!(status_of(not_a_number), http::StatusCode::BAD_REQUEST);
    // Garbage where the control messages go is refused the same way.
    for control in [
        "/api/workers".to_string(),
        format!("/api/workers/{worker_id}/heartbeat"),
    ] {
        let garbage = api.post_bytes(&control, b"{\"name\": [".to_vec());
        assert_eq!(
            status_of(garbage),
            http::StatusCode::BAD_REQUEST,
            "{control}"
        );
    }

    // An honest snapshot is taken, and its resend (same number) counted once.
    api.post_bytes(&path(0, 1), wire_snapshot(5, &fingerprint))
        .unwrap();
    api.post_bytes(&path(0, 1), wire_snapshot(5, &fingerprint))
        .unwrap();
    assert_eq!(api.get("/api/health").unwrap()["status"], "ok");

    // The fake worker goes silent: lost, the run ends, and it counts the
    // honest snapshot's 5 requests and nothing of what was refused.
    let finished = Instant::now();
    let status = loop {
        let status = api
            .get(&format!("/api/runs/{}", assignment.run_id))
            .unwrap();
        if status["state"] == "finished" {
            break status;
        }
        assert!(
            finished.elapsed() < PATIENCE,
            "the run did not end: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["verdict"], "failed", "{status}");
    let merged = api
        .get(&format!("/api/runs/{}/summary", assignment.run_id))
        .unwrap();
    assert_eq!(merged["totals"]["requests"], 5, "{}", merged["totals"]);
    assert_eq!(worker_named(&merged, "fake")["state"], "lost");

    // The coordinator still serves: a real worker's run succeeds.
    let _real = worker(cluster.dir(), &cluster.url, "real", &["--token", TOKEN]);
    api.wait_for_workers(1);
    let out = cluster.dir().join("out");
    cluster.run(&file, &out, &[]).success();
    let summary = summary(&out);
    assert_eq!(u64_of(&summary["totals"]["requests"]), server.count());
    assert!(server.count() > 0);
}

#[test]
fn a_worker_stops_by_itself_when_its_coordinator_dies_and_keeps_its_results() {
    let server = TestServer::start();
    let mut cluster = Cluster::start(None, &[("w1", &[])]);
    let steps = format!("think_time = \"20ms\"\n{OK_STEP}");
    let file = write(
        cluster.dir(),
        "s.toml",
        &scenario(&server.url(), "users = 2\nduration = \"60s\"", &steps, ""),
    );
    let out = cluster.dir().join("out");
    let _run = cluster.submit(&file, &out, &[]);
    wait_for_traffic(&server);
    std::thread::sleep(Duration::from_secs(1));
    cluster.coordinator.kill();
    let killed_at = Instant::now();
    // Wait until the server has heard nothing for 2 s.
    let (mut count, mut changed_at) = (server.count(), Instant::now());
    while changed_at.elapsed() < Duration::from_secs(2) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(40),
            "the worker still sends 40 s after its coordinator died"
        );
        std::thread::sleep(Duration::from_millis(100));
        if server.count() != count {
            (count, changed_at) = (server.count(), Instant::now());
        }
    }
    // It stops after 5 s without its coordinator; generous on a loaded machine.
    let stopped_after = changed_at - killed_at;
    eprintln!("the worker stopped {stopped_after:?} after its coordinator died");
    assert!(
        stopped_after < Duration::from_secs(15),
        "the worker stopped {stopped_after:?} after its coordinator died"
    );
    let worker = &cluster.workers[0];
    worker.wait_for("results of run", PATIENCE);
    // Under the worker's name: workers of one machine may share the folder.
    let results = cluster.dir().join("w1-results").join("w1");
    let runs: Vec<PathBuf> = fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").exists())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let kept = summary(&runs[0]);
    assert_eq!(u64_of(&kept["totals"]["requests"]), server.count());
}

#[test]
fn zones_send_their_percentage_to_the_workers_labelled_for_them() {
    let server = TestServer::start();
    let cluster = Cluster::start(
        None,
        &[
            ("eu1", &["--labels", "zone=eu"]),
            ("us1", &["--labels", "zone=us"]),
        ],
    );
    let extra = "[distribution]\nzones = { eu = 75, us = 25 }\n";
    let file = write(
        cluster.dir(),
        "s.toml",
        &scenario(
            &server.url(),
            "rate = 40\nduration = \"4s\"",
            OK_STEP,
            extra,
        ),
    );
    let out = cluster.dir().join("out");
    cluster.run(&file, &out, &[]).success();
    let summary = summary(&out);
    let merged = assert_merged_is_the_workers_sum(&summary);
    assert_eq!(merged, server.count());
    let (eu, us) = (worker_named(&summary, "eu1"), worker_named(&summary, "us1"));
    assert_eq!(eu["share"], 0.75);
    assert_eq!(us["share"], 0.25);
    assert_eq!(eu["labels"]["zone"], "eu");
    // The open model splits arrivals exactly by share; a little slack for
    // an arrival due right at the end.
    let eu_part = u64_of(&eu["requests"]) as f64 / merged as f64;
    assert!(
        (0.7..=0.8).contains(&eu_part),
        "eu ran {eu_part} of the load"
    );
}

#[test]
fn run_with_a_coordinator_exits_as_a_local_run_does() {
    let server = TestServer::start();
    let cluster = Cluster::start(None, &[("w1", &[])]);
    let steps = format!("think_time = \"50ms\"\n{OK_STEP}");
    let file = write(
        cluster.dir(),
        "s.toml",
        &scenario(&server.url(), "users = 1\nduration = \"2s\"", &steps, ""),
    );
    for (threshold, code) in [("http_reqs: count < 1", 1), ("http_reqs: count >= 1", 0)] {
        let local = cluster.dir().join(format!("local-{code}"));
        loadctl()
            .args(["run", "-q", "--threshold", threshold])
            .arg(&file)
            .arg("--out")
            .arg(&local)
            .assert()
            .code(code);
        let remote = cluster.dir().join(format!("remote-{code}"));
        cluster
            .run(&file, &remote, &["--threshold", threshold])
            .code(code);
        let (local, remote) = (summary(&local), summary(&remote));
        assert_eq!(local["thresholds_passed"], remote["thresholds_passed"]);
        assert_eq!(remote["thresholds"][0]["passed"], code == 0);
    }
    // Interrupted (SIGINT, as Ctrl-C): 130 as locally, the run cancelled
    // on the workers, and its results still written.
    let long = write(
        cluster.dir(),
        "long.toml",
        &scenario(&server.url(), "users = 1\nduration = \"60s\"", &steps, ""),
    );
    let out = cluster.dir().join("interrupted");
    let mut run = cluster.submit(&long, &out, &[]);
    let (before, waiting) = (server.count(), Instant::now());
    while server.count() == before {
        assert!(waiting.elapsed() < PATIENCE, "no traffic: {}", run.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::signal(&run.child, "INT");
    assert_eq!(run.wait(PATIENCE).code(), Some(130), "{}", run.stderr());
    let interrupted = summary(&out);
    assert_eq!(interrupted["run"]["interrupted"], true);
    assert_eq!(
        assert_merged_is_the_workers_sum(&interrupted),
        server.count() - before
    );
}

#[test]
fn too_few_workers_within_the_timeout_fail_the_start_naming_the_cause() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(&server.url(), "users = 1\nduration = \"2s\"", OK_STEP, ""),
    );
    let (mut coordinator, url) = coordinator(
        dir.path(),
        &[
            "-q",
            "--expect-workers",
            "2",
            "--expect-workers-timeout",
            "5s",
            file.to_str().unwrap(),
        ],
    );
    let _w1 = worker(dir.path(), &url, "w1", &[]);
    let status = coordinator.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(3), "{}", coordinator.stderr());
    assert!(
        coordinator
            .stderr()
            .contains("only 1 of the 2 expected workers joined"),
        "{}",
        coordinator.stderr()
    );
    assert_eq!(server.count(), 0);
}

#[test]
fn a_start_that_cannot_happen_fails_naming_the_cause() {
    let cluster = Cluster::start(None, &[("w1", &[])]);
    let dir = cluster.dir();
    // A data file missing where the scenario is: refused before it is sent.
    let data = "[[data]]\nname = \"accounts\"\nfile = \"missing.csv\"\n";
    let missing = write(
        dir,
        "missing.toml",
        &scenario(
            "http://127.0.0.1:9",
            "users = 1\nduration = \"1s\"",
            OK_STEP,
            data,
        ),
    );
    let refused = cluster.run(&missing, &dir.join("out-missing"), &[]).code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("missing.csv"), "{stderr}");
    // And by the API, when a client sends it without the file.
    let request = loadctl::dist::protocol::RunRequest {
        scenario: fs::read_to_string(&missing).unwrap(),
        ..Default::default()
    };
    let refused = cluster
        .api
        .post::<_, RunCreated>("/api/runs", &request)
        .unwrap_err();
    assert_eq!(refused.status(), Some(http::StatusCode::BAD_REQUEST));
    assert!(refused.to_string().contains("missing.csv"), "{refused}");
    // A target that refuses connections: the worker fails its start.
    let target = format!("http://127.0.0.1:{}", closed_port());
    let unreachable = write(
        dir,
        "unreachable.toml",
        &scenario(&target, "users = 1\nduration = \"2s\"", OK_STEP, ""),
    );
    let failed = cluster
        .run(&unreachable, &dir.join("out-unreachable"), &[])
        .code(3);
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(
        stderr.contains("worker w1 failed")
            && stderr.contains(&format!("cannot reach the target {target}")),
        "{stderr}"
    );
    // Variables the workers lack: a failure reason of many lines, which
    // the coordinator cuts (it once refused the heartbeat carrying it, and
    // the worker exited); the run fails naming them, the worker stays.
    let vars: String = (0..60)
        .map(|i| format!("  h{i} = \"{{{{ env.LOADCTL_TEST_UNSET_VARIABLE_NUMBER_{i} }}}}\"\n"))
        .collect();
    let step = format!("  [[flow.step]]\n  path = \"/ok\"\n  [flow.step.headers]\n{vars}");
    let unset = write(
        dir,
        "unset.toml",
        &scenario(&target, "users = 1\nduration = \"2s\"", &step, ""),
    );
    let failed = cluster.run(&unset, &dir.join("out-unset"), &[]).code(3);
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(
        stderr.contains("worker w1 failed")
            && stderr.contains("LOADCTL_TEST_UNSET_VARIABLE_NUMBER_0"),
        "{stderr}"
    );
    let alive = cluster.api.get("/api/health").unwrap();
    assert_eq!(alive["workers"], 1, "the worker is still there: {alive}");
}

#[test]
fn few_users_split_evenly_and_a_worker_that_shuts_down_hands_its_share_on_with_every_request_counted(
) {
    let server = TestServer::start();
    let cluster = Cluster::start(None, &[("w1", &[]), ("w2", &[]), ("w3", &[])]);
    // Three users over three workers: one each (the cuts between the
    // workers' slices are placed between the users' positions).
    let steps = "think_time = \"20ms\"\n  [[flow.step]]\n  path = \"/echo/{{ vu }}\"\n";
    let file = write(
        cluster.dir(),
        "s.toml",
        &scenario(&server.url(), "users = 3\nduration = \"8s\"", steps, ""),
    );
    let out = cluster.dir().join("out");
    let mut run = cluster.submit(&file, &out, &[]);
    wait_for_traffic(&server);
    std::thread::sleep(Duration::from_secs(2));
    // SIGTERM: w3 stops, sends what it ran, and leaves.
    let w3 = &cluster.workers[2];
    crate::signal(&w3.child, "TERM");
    w3.wait_for("left the coordinator", PATIENCE);
    let status = run.wait(Duration::from_secs(90));
    assert!(status.success(), "{status}: {}", run.stderr());
    let summary = summary(&out);
    let merged = assert_merged_is_the_workers_sum(&summary);
    assert_eq!(merged, server.count(), "every request counted once");
    let left = worker_named(&summary, "w3");
    assert_eq!(left["state"], "left", "{left}");
    assert!(u64_of(&left["requests"]) > 0);
    for name in ["w1", "w2"] {
        let w = worker_named(&summary, name);
        assert_eq!(w["state"], "done", "{w}");
        assert!(u64_of(&w["requests"]) > 0, "{name} sent nothing: {w}");
    }
    let said = summary["warnings"].to_string();
    assert!(said.contains("w3 shut down at"), "{said}");
    // Every user ran, and no worker ran all of them from the start: the
    // three users were one per worker until w3 left.
    let users: std::collections::HashSet<String> = server.paths().into_iter().collect();
    assert_eq!(users.len(), 3, "{users:?}");
}
