//! Load patterns and the open model, end to end.

use crate::server::TestServer;
use crate::{loadctl, run_quiet, scenario, served_scenario, summary, write};

fn latency(s: &serde_json::Value, map: &str, key: &str) -> f64 {
    s["totals"][map][key].as_f64().unwrap()
}

#[test]
fn the_open_model_keeps_its_rate_and_counts_every_request() {
    let (server, dir, file) = served_scenario(
        "model = \"open\"\nrate = 200\nduration = \"2s\"",
        "[[flow.step]]\npath = \"/ok\"",
        "",
    );
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    let requests = s["totals"]["requests"].as_u64().unwrap();
    assert_eq!(requests, server.count());
    // Every one of the 400 arrivals was either sent or, on a machine too
    // busy to keep up, counted as dropped: none is lost.
    let dropped = s["dropped"].as_u64().unwrap();
    assert_eq!(
        requests + dropped,
        400,
        "{requests} sent, {dropped} dropped"
    );
    assert_eq!(s["run"]["model"], "open");
    assert_eq!(s["target_rate"], 200.0);
    let achieved = s["achieved_rate"].as_f64().unwrap();
    assert_eq!(achieved, requests as f64 / 2.0);
    assert_eq!(s["series"][0]["target"], 200.0);
}

/// The target freezes for a second mid-run. In the open model, arrivals
/// keep coming while the few slots hang: their latency, counted from when
/// they were due, shows the stall; the service time does not.
#[test]
fn a_stall_shows_in_corrected_latency_or_as_dropped_iterations() {
    for (saturation, expect_drops) in [("wait", false), ("drop", true)] {
        let server = TestServer::start();
        let dir = tempfile::tempdir().unwrap();
        let load = format!(
            "model = \"open\"\nrate = 300\nmax_users = 4\nduration = \"3s\"\non_saturation = \"{saturation}\""
        );
        let file = write(
            dir.path(),
            "s.toml",
            &scenario(
                &server.url(),
                &load,
                "[[flow.step]]\npath = \"/stall/150/1000\"",
                "",
            ),
        );
        run_quiet(&file, dir.path()).success();
        let s = summary(dir.path());
        assert_eq!(s["totals"]["requests"].as_u64().unwrap(), server.count());
        // The stall is a second long; a busy machine adds a little, not
        // that much.
        let service_p99 = latency(&s, "service_time_ms", "p99");
        assert!(
            service_p99 < 500.0,
            "{saturation}: service p99 {service_p99}"
        );
        let dropped = s["dropped"].as_u64().unwrap();
        let corrected_p99 = latency(&s, "latency_ms", "p99");
        if expect_drops {
            assert!(dropped > 150, "drop: {dropped} dropped");
            assert!(
                corrected_p99 < 500.0,
                "drop: the dropped ones do not count as slow: {corrected_p99}"
            );
            let started = s["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["started"].as_u64().unwrap())
                .sum::<u64>();
            assert_eq!(
                started + dropped,
                900,
                "every arrival is either started or dropped"
            );
        } else {
            // Waiting, not dropping: only arrivals still queued when the
            // run ends are dropped (none, unless the machine is very busy).
            assert!(dropped < 100, "wait: {dropped} dropped");
            assert!(
                corrected_p99 > 700.0,
                "wait: corrected p99 {corrected_p99} should show most of the 1 s stall"
            );
        }
    }
}

#[test]
fn the_closed_model_follows_the_stages() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let load = "pattern = \"stages\"\nstages = [\n  { duration = \"1s\", target = 2 },\n  { duration = \"0s\", target = 6 },\n  { duration = \"2s\", target = 6 },\n]";
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(
            &server.url(),
            load,
            "[[flow.step]]\npath = \"/slow/10\"",
            "",
        ),
    );
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    assert_eq!(s["run"]["pattern"], "stages");
    assert_eq!(s["run"]["users"], 6);
    let series = s["series"].as_array().unwrap();
    assert_eq!(
        series[0]["target"], 2.0,
        "the target at the end of the first second"
    );
    assert!(series[0]["users"].as_u64().unwrap() <= 2);
    // The middle of the 6-user stage, away from the start and the stop.
    let second = series.iter().find(|p| p["t"] == 2).unwrap();
    assert_eq!(second["target"], 6.0);
    assert_eq!(second["users"], 6);
    assert_eq!(s["totals"]["requests"].as_u64().unwrap(), server.count());
}

#[test]
fn flags_switch_model_and_pattern() {
    let (_server, dir, file) = served_scenario(
        "users = 3\nduration = \"1s\"",
        "[[flow.step]]\npath = \"/ok\"",
        "",
    );
    loadctl()
        .args(["run", "-q", "--rate", "50", "--max-users", "2"])
        .arg(&file)
        .arg("-o")
        .arg(dir.path())
        .assert()
        .success();
    let s = summary(dir.path());
    assert_eq!(s["run"]["model"], "open");
    assert_eq!(s["run"]["users"], 2);
    let sent = s["totals"]["requests"].as_u64().unwrap();
    assert_eq!(sent + s["dropped"].as_u64().unwrap(), 50);
    // A pattern that needs keys the file does not have is an error, not a guess.
    loadctl()
        .args(["run", "-q", "--pattern", "spike"])
        .arg(&file)
        .assert()
        .code(2);
}
