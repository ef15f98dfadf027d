//! The run handle in process (no binary): shares, share changes, an
//! agreed start, and a collector whose sources come and go.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use loadctl::diag::Diagnostics;
use loadctl::metrics::summary::RunSummary;
use loadctl::metrics::{ErrorKind, Sample, Snapshot};
use loadctl::plan::{self, Overrides, Plan};
use loadctl::runner::collector::Collector;
use loadctl::runner::{self, RowSplit, RunOptions, Share, Slice};
use tokio_util::sync::CancellationToken;

use super::server::TestServer;

fn plan(text: &str) -> Arc<Plan> {
    let mut diags = Diagnostics::default();
    let scenario = loadctl::scenario::parse(text, &mut diags).expect("valid TOML");
    let inputs = plan::Inputs::for_cli(None, loadctl::diag::Severity::Error);
    let plan = plan::compile(&scenario, None, &Overrides::default(), &inputs, &mut diags);
    Arc::new(plan.unwrap_or_else(|| panic!("invalid scenario: {:?}", diags.items())))
}

fn share(from: f64, to: f64, k: u64, n: u64) -> Share {
    Share {
        load: Slice::new(from, to).unwrap(),
        rows: RowSplit::new(k, n).unwrap(),
    }
}

fn options(share: Share) -> RunOptions {
    RunOptions {
        threads: 2,
        share,
        ..RunOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the plan once per share, all at the same time.
fn run_shares(plan: &Arc<Plan>, shares: &[Share]) -> Vec<RunSummary> {
    runtime().block_on(async {
        let mut handles = Vec::new();
        for share in shares {
            let handle = runner::start(plan.clone(), options(*share), CancellationToken::new());
            handles.push(handle.await.unwrap());
        }
        let mut summaries = Vec::new();
        for handle in handles {
            summaries.push(handle.wait().await.unwrap());
        }
        summaries
    })
}

fn data_file(rows: usize) -> tempfile::NamedTempFile {
    let mut text = String::from("id\n");
    for i in 0..rows {
        text.push_str(&format!("row{i}\n"));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

#[test]
fn complementary_shares_send_exactly_one_full_run_and_never_share_a_row() {
    let server = TestServer::start();
    let data = data_file(1000);
    let text = format!(
        "[target]\nbase_url = \"{}\"\n[load]\nusers = 10\niterations = 101\n\
         [[data]]\nname = \"acct\"\nfile = \"{}\"\nmode = \"unique\"\n\
         [[flow]]\n  [[flow.step]]\n  path = \"/echo/{{{{ acct.id }}}}\"\n",
        server.url(),
        data.path().display()
    );
    let plan = plan(&text);
    let full = run_shares(&plan, &[Share::FULL]);
    assert_eq!(full[0].iterations, 101);
    let split = run_shares(&plan, &[share(0.0, 0.3, 0, 2), share(0.3, 1.0, 1, 2)]);
    assert_eq!(split[0].iterations, 30);
    assert_eq!(split[1].iterations, 71);
    assert_eq!(server.count(), 2 * 101);
    let paths = server.paths();
    let split_paths: HashSet<&String> = paths[101..].iter().collect();
    assert_eq!(split_paths.len(), 101, "a row was used twice");
    for summary in &split {
        assert_eq!(summary.totals.failures, 0);
    }
}

#[test]
fn complementary_shares_of_a_rate_add_up_to_the_planned_arrivals() {
    let server = TestServer::start();
    let text = format!(
        "[target]\nbase_url = \"{}\"\n[load]\nrate = 200\nduration = \"2s\"\nmax_users = 20\n\
         [[flow]]\n  [[flow.step]]\n  path = \"/ok\"\n",
        server.url()
    );
    let plan = plan(&text);
    let split = run_shares(&plan, &[share(0.0, 0.3, 0, 2), share(0.3, 1.0, 1, 2)]);
    let arrivals = |s: &RunSummary| s.totals.requests + s.dropped;
    // 200/s for 2 s: arrivals are due at 0, 5 ms, …, 1995 ms.
    assert_eq!(arrivals(&split[0]) + arrivals(&split[1]), 400);
    assert_eq!(
        server.count(),
        split[0].totals.requests + split[1].totals.requests
    );
    let (a, b) = (arrivals(&split[0]) as f64, arrivals(&split[1]) as f64);
    assert!(
        (a - 120.0).abs() <= 5.0 && (b - 280.0).abs() <= 5.0,
        "{a} + {b}"
    );
}

#[test]
fn a_share_changed_mid_run_halves_the_rate_and_back() {
    let server = TestServer::start();
    let text = format!(
        "[target]\nbase_url = \"{}\"\n[load]\nrate = 400\nduration = \"10s\"\nmax_users = 50\n\
         [[flow]]\n  [[flow.step]]\n  path = \"/ok\"\n",
        server.url()
    );
    let plan = plan(&text);
    let (summary, halved_from, full_from) = runtime().block_on(async {
        let handle = runner::start(plan.clone(), options(Share::FULL), CancellationToken::new());
        let mut handle = handle.await.unwrap();
        let mut halved_from = Duration::ZERO;
        let mut full_from = Duration::ZERO;
        while let Some(progress) = handle.next_progress().await {
            let half = share(0.0, 0.5, 0, 1);
            match progress.elapsed.as_secs() {
                2 => halved_from = handle.set_share(half).unwrap(),
                5 => full_from = handle.set_share(Share::FULL).unwrap(),
                _ => {}
            }
        }
        (handle.wait().await.unwrap(), halved_from, full_from)
    });
    // A change takes effect a moment after it is asked for (it is asked
    // for when a second's progress arrives, so on a slow machine later).
    // The mean rate of the seconds wholly under each share is compared;
    // the run's last second is partial and left out.
    let last = summary.series.last().unwrap().t;
    let mean_started = |from: Duration, to: Duration| {
        let whole: Vec<f64> = summary
            .series
            .iter()
            .filter(|p| p.t < last && p.t > 1)
            .filter(|p| Duration::from_secs(p.t - 1) >= from && Duration::from_secs(p.t) <= to)
            .map(|p| p.started as f64)
            .collect();
        assert!(!whole.is_empty(), "no whole second in {from:?}..{to:?}");
        whole.iter().sum::<f64>() / whole.len() as f64
    };
    let before = mean_started(Duration::ZERO, halved_from);
    let halved = mean_started(halved_from, full_from);
    let after = mean_started(full_from, Duration::MAX);
    let near = |got: f64, want: f64| (got - want).abs() <= want * 0.15;
    assert!(near(before, 400.0), "before: {before}/s");
    assert!(near(halved, 200.0), "halved: {halved}/s");
    assert!(near(after, 400.0), "after: {after}/s");
    assert_eq!(server.count(), summary.totals.requests);
    assert_eq!(summary.dropped, 0);
}

#[test]
fn a_closed_share_runs_its_users_and_no_others() {
    let server = TestServer::start();
    let text = format!(
        "[target]\nbase_url = \"{}\"\n[load]\nusers = 20\nduration = \"3s\"\n\
         [[flow]]\nthink_time = \"50ms\"\n  [[flow.step]]\n  path = \"/ok\"\n",
        server.url()
    );
    let plan = plan(&text);
    let half = share(0.0, 0.5, 0, 1);
    let summaries = run_shares(&plan, &[half]);
    let expected = (0..20).filter(|u| half.load.contains(*u)).count() as u64;
    assert!((8..=12).contains(&expected));
    // Every second but the last (when users stop) has exactly those users.
    let series = &summaries[0].series;
    for point in &series[..series.len() - 1] {
        assert_eq!(point.users, expected, "second {}", point.t);
    }
}

#[test]
fn an_agreed_start_in_the_future_delays_the_first_request() {
    let server = TestServer::start();
    let text = format!(
        "[target]\nbase_url = \"{}\"\n[load]\nusers = 2\nduration = \"1s\"\n\
         [[flow]]\n  [[flow.step]]\n  path = \"/ok\"\n",
        server.url()
    );
    let plan = plan(&text);
    let ahead = Duration::from_millis(1500);
    let (at, agreed) = (SystemTime::now() + ahead, Instant::now() + ahead);
    let summary = runtime().block_on(async {
        let options = RunOptions {
            start_at: Some(at),
            ..options(Share::FULL)
        };
        let handle = runner::start(plan.clone(), options, CancellationToken::new());
        handle.await.unwrap().wait().await.unwrap()
    });
    let first = server
        .seen
        .first_at
        .lock()
        .unwrap()
        .expect("requests were sent");
    // The two clocks were read a moment apart: allow that moment.
    assert!(
        first + Duration::from_millis(20) >= agreed,
        "the first request came {:?} before the agreed start",
        agreed - first
    );
    // Seconds count from the agreed start.
    assert_eq!(summary.series.first().map(|p| p.t), Some(1));
    let started: jiff::Timestamp = summary.run.started_at.parse().unwrap();
    assert_eq!(started, jiff::Timestamp::try_from(at).unwrap());
}

#[test]
fn a_silent_source_does_not_stall_the_series_and_late_figures_still_count() {
    let plan = plan(
        "[target]\nbase_url = \"http://127.0.0.1:9\"\n[load]\nusers = 1\nduration = \"10s\"\n\
         [[flow]]\n  [[flow.step]]\n  path = \"/\"\n",
    );
    let snapshot = |requests: u64| {
        let mut s = Snapshot::new(1, false);
        for i in 0..requests {
            let failure = (i % 2 == 1).then(|| (ErrorKind::Status, "500".to_string()));
            s.record(
                &Sample {
                    metric: 0,
                    latency_us: 1000 + i,
                    service_us: 1000 + i,
                    status: Some(200),
                    failure,
                    bytes_in: 10,
                    bytes_out: 10,
                    body_bytes: 2,
                },
                0,
            );
        }
        s
    };
    let close_after = Duration::from_secs(2);
    let mut c = Collector::new(&plan, false, close_after);
    c.join(1);
    c.join(2);
    assert!(
        c.add(1, 1, snapshot(3)).is_empty(),
        "second 1 waits for source 2"
    );
    assert_eq!(c.add(2, 1, snapshot(4)), vec![0]);
    // Source 2 goes silent; source 1 carries on.
    assert!(c.add(1, 2, snapshot(5)).is_empty());
    assert!(c.add(1, 3, snapshot(6)).is_empty());
    // Second 2 closes once it is `close_after` old, and second 3 after it.
    assert!(c.tick(Duration::from_secs(3)).is_empty());
    assert_eq!(c.tick(Duration::from_secs(4)), vec![1]);
    assert_eq!(c.tick(Duration::from_secs(5)), vec![2]);
    // Source 2's second 2 arrives late: it counts in the totals and in the
    // next second to close.
    assert!(c.add(2, 2, snapshot(7)).is_empty());
    c.leave(2);
    let points = c.add(1, 4, snapshot(1));
    assert_eq!(points, vec![3]);
    let info = loadctl::metrics::summary::RunInfo {
        id: String::new(),
        name: "t".into(),
        scenario_file: None,
        target: "t".into(),
        http: "auto".into(),
        model: "closed".into(),
        pattern: "constant".into(),
        users: 1,
        seed: None,
        duration_s: None,
        iterations_limit: None,
        threads: 1,
        started_at: "2026-01-01T00:00:00Z".into(),
        ended_at: "2026-01-01T00:00:05Z".into(),
        elapsed_s: 5.0,
        interrupted: false,
    };
    let timeline = loadctl::runner::share::ShareState::new(Slice::new(0.0, 1.0).unwrap());
    let summary = c.finish(&plan, info, &timeline.timeline());
    assert_eq!(summary.totals.requests, 3 + 4 + 5 + 6 + 7 + 1);
    let series_total: u64 = summary.series.iter().map(|p| p.requests).sum();
    assert_eq!(series_total, summary.totals.requests);
    assert_eq!(summary.series[3].requests, 7 + 1);
    assert_eq!(summary.totals.failures, 1 + 2 + 2 + 3 + 3);
}
