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
use loadctl::schedule::Arrivals;
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
            let ended = tokio::time::timeout(Duration::from_secs(60), handle.wait()).await;
            summaries.push(ended.expect("the run ended within a minute").unwrap());
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
fn a_share_changed_mid_run_runs_exactly_the_arrivals_of_each_share() {
    let server = TestServer::start();
    let text = format!(
        "[target]\nbase_url = \"{}\"\n[load]\nrate = 400\nduration = \"6s\"\nmax_users = 50\n\
         [[flow]]\n  [[flow.step]]\n  path = \"/ok\"\n",
        server.url()
    );
    let plan = plan(&text);
    let half = share(0.0, 0.5, 0, 1);
    let (summary, halved_from, full_from) = runtime().block_on(async {
        let handle = runner::start(plan.clone(), options(Share::FULL), CancellationToken::new());
        let mut handle = handle.await.unwrap();
        let mut halved_from = None;
        let mut full_from = None;
        // On a busy machine seconds may arrive late or together: act on
        // the first progress at or past each mark.
        while let Some(progress) = handle.next_progress().await {
            let secs = progress.elapsed.as_secs();
            if halved_from.is_none() && secs >= 1 {
                halved_from = Some(handle.set_share(half).unwrap());
            } else if halved_from.is_some() && full_from.is_none() && secs >= 3 {
                full_from = Some(handle.set_share(Share::FULL).unwrap());
            }
        }
        (handle.wait().await.unwrap(), halved_from, full_from)
    });
    let (halved_from, full_from) = (halved_from.unwrap(), full_from.unwrap());
    // Every arrival of the schedule, judged by the share in effect when it
    // was due: exactly those ran or were dropped.
    let mut arrivals = Arrivals::new(plan.load.shape.clone(), plan.load.duration, 0.0);
    let (mut expected, mut due_halved, mut run_halved) = (0u64, 0u64, 0u64);
    loop {
        let n = arrivals.next_index();
        let Some(at) = arrivals.next() else { break };
        let halved = at >= halved_from && at < full_from;
        due_halved += halved as u64;
        if !halved || half.load.contains(n) {
            expected += 1;
            run_halved += halved as u64;
        }
    }
    assert_eq!(summary.totals.requests + summary.dropped, expected);
    assert_eq!(server.count(), summary.totals.requests);
    // While halved, half of the arrivals due ran (give or take a few).
    let ratio = run_halved as f64 / due_halved as f64;
    assert!((ratio - 0.5).abs() < 0.02, "{run_halved} of {due_halved}");
}

#[test]
fn complementary_closed_shares_run_complementary_users() {
    let server = TestServer::start();
    let text = format!(
        "[target]\nbase_url = \"{}\"\n[load]\nusers = 20\nduration = \"2s\"\n\
         [[flow]]\nthink_time = \"50ms\"\n  [[flow.step]]\n  path = \"/echo/{{{{ vu }}}}\"\n",
        server.url()
    );
    let plan = plan(&text);
    let (a, b) = (share(0.0, 0.37, 0, 1), share(0.37, 1.0, 0, 1));
    let summaries = run_shares(&plan, &[a, b]);
    // The user's number is in the path: together the two shares ran users
    // 0 to 19, and (by their peaks) none of them twice.
    let seen: HashSet<String> = server.paths().into_iter().collect();
    let expected: HashSet<String> = (0..20).map(|u| format!("/echo/{u}")).collect();
    assert_eq!(seen, expected);
    let peak = |s: &RunSummary| s.series.iter().map(|p| p.users).max().unwrap_or(0);
    let in_a = (0..20).filter(|u| a.load.contains(*u)).count() as u64;
    assert_eq!(peak(&summaries[0]), in_a);
    assert_eq!(peak(&summaries[1]), 20 - in_a);
}

#[test]
fn a_budget_bound_run_ends_when_its_budget_is_spent_whatever_the_share() {
    let server = TestServer::start();
    let text = format!(
        "[target]\nbase_url = \"{}\"\n[load]\nusers = 3\niterations = 100\n\
         [[flow]]\nthink_time = \"5ms\"\n  [[flow.step]]\n  path = \"/ok\"\n",
        server.url()
    );
    let plan = plan(&text);
    // Four equal shares of three users: one share holds none of them.
    let quarters: Vec<Share> = (0..4).map(|k| Share::k_of_n(k, 4).unwrap()).collect();
    let summaries = run_shares(&plan, &quarters);
    let total: u64 = summaries.iter().map(|s| s.iterations).sum();
    assert_eq!(total, 100);
    // A share narrowed mid-run parks users; the run still ends.
    let summary = runtime().block_on(async {
        let handle = runner::start(plan.clone(), options(Share::FULL), CancellationToken::new());
        let handle = handle.await.unwrap();
        handle.set_share(share(0.0, 0.2, 0, 1)).unwrap();
        tokio::time::timeout(Duration::from_secs(60), handle.wait())
            .await
            .expect("the run ended")
            .unwrap()
    });
    assert_eq!(summary.iterations, 100);
}

#[test]
fn a_process_that_joins_late_runs_only_what_is_due_after_it_joined() {
    let server = TestServer::start();
    let text = format!(
        "[target]\nbase_url = \"{}\"\n[load]\nrate = 100\nduration = \"4s\"\n\
         [[flow]]\n  [[flow.step]]\n  path = \"/ok\"\n",
        server.url()
    );
    let plan = plan(&text);
    let summary = runtime().block_on(async {
        let options = RunOptions {
            start_at: Some(SystemTime::now() - Duration::from_secs(2)),
            ..options(Share::FULL)
        };
        let handle = runner::start(plan.clone(), options, CancellationToken::new());
        handle.await.unwrap().wait().await.unwrap()
    });
    // 100/s from 0 to 4 s, joined a little over 2 s in: just under 200
    // arrivals are its.
    let arrivals = summary.totals.requests + summary.dropped;
    assert!((150..=200).contains(&arrivals), "{arrivals}");
    assert_eq!(server.count(), summary.totals.requests);
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
    let info = crate::run_info(5.0);
    let timeline = loadctl::runner::share::ShareState::new(Slice::new(0.0, 1.0).unwrap());
    let summary = c.finish(&plan, info, &timeline.timeline());
    assert_eq!(summary.totals.requests, 3 + 4 + 5 + 6 + 7 + 1);
    let series_total: u64 = summary.series.iter().map(|p| p.requests).sum();
    assert_eq!(series_total, summary.totals.requests);
    assert_eq!(summary.series[3].requests, 7 + 1);
    assert_eq!(summary.totals.failures, 1 + 2 + 2 + 3 + 3);
}
