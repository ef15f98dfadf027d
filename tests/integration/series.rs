//! The per-second series at the end of a run: the last interval is folded
//! into the second before it or kept with its real length, never drawn as
//! a collapse, alike in `summary.json`, `_stats_history.csv` and
//! `report.html`.

use crate::server::TestServer;
use crate::{loadctl, run_quiet, scenario, served_scenario, summary, write};

/// The shortest final stretch kept as a point of its own (`FOLD_BELOW_S`).
const FOLD_BELOW_S: f64 = 0.25;

#[test]
fn the_last_second_of_an_open_run_is_not_a_collapse() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    // 200 arrivals a second for 3 s, each a short request: the run ends a
    // few milliseconds after its third second, when the last requests are
    // answered.
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(
            &server.url(),
            "model = \"open\"\nrate = 200\nduration = \"3s\"\nmax_users = 50",
            "[[flow.step]]\nname = \"get\"\npath = \"/slow/5\"",
            "",
        ),
    );
    let out = dir.path().join("out");
    run_quiet(&file, &out).success();
    let s = summary(&out);
    let elapsed = s["run"]["elapsed_s"].as_f64().unwrap();
    let series = s["series"].as_array().unwrap();
    let f = |p: &serde_json::Value, key: &str| p[key].as_f64().unwrap();
    let last = series.last().unwrap();
    // (Summaries without `span_s` count whole seconds.)
    let span = last["span_s"].as_f64().unwrap_or(1.0);
    assert!(series.len() >= 3, "three seconds of series: {series:#?}");
    // Every point but the last is a whole second; the last one ends when
    // the run did, and is no sliver.
    for p in &series[..series.len() - 1] {
        assert_eq!(p["span_s"].as_f64().unwrap_or(1.0), 1.0, "{p}");
    }
    assert!(span >= FOLD_BELOW_S, "a {span} s sliver was kept: {last}");
    let end = f(last, "t") - 1.0 + span;
    assert!(
        end <= elapsed + 1e-6,
        "the last point ends at {end} s, the run at {elapsed} s"
    );
    // Its rates are per second of its length: like the seconds before it,
    // not a fall to a fraction of them.
    let requests = f(last, "requests");
    assert!((f(last, "rps") - requests / span).abs() < 1e-6, "{last}");
    let before: f64 = series[..series.len() - 1]
        .iter()
        .map(|p| f(p, "rps"))
        .sum::<f64>()
        / (series.len() - 1) as f64;
    assert!(
        f(last, "rps") > before / 2.0,
        "the last point's {} requests/s collapse from {before}: {last}",
        f(last, "rps")
    );
    let achieved = f(last, "started") / span;
    let target = f(last, "target");
    assert!(
        target == 0.0 || achieved > target / 2.0,
        "achieved {achieved}/s against a target of {target}/s: {last}"
    );
    // The history CSV has one row per point, with the same rate.
    let history = std::fs::read_to_string(out.join("loadctl_stats_history.csv")).unwrap();
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(rows.len(), series.len());
    let csv_rps: f64 = rows
        .last()
        .unwrap()
        .split(',')
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    assert!((csv_rps - f(last, "rps")).abs() < 0.01, "{csv_rps}");
    // The page marks a partial last point, and only then.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(
        html.contains("into its last second"),
        span < 1.0,
        "span {span}"
    );
}

#[test]
fn the_live_view_does_not_end_on_an_empty_second() {
    let (_server, _dir, file) = served_scenario(
        "users = 2\nduration = \"5s\"",
        "[[flow.step]]\nname = \"get\"\npath = \"/slow/5\"",
        "",
    );
    // Not a terminal: a plain line at 1 s, then every 5 s.
    let run = loadctl().arg("run").arg(&file).assert().success();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert!(!lines.is_empty(), "{stderr}");
    for line in lines {
        // A line past the pattern's end would be its in-flight stragglers
        // as a second of their own: no users, no p95.
        let at: f64 = line[1..line.find('s').unwrap()].trim().parse().unwrap();
        assert!(at <= 5.0 || line.contains("(last "), "{line}");
        assert!(!line.contains("p95 0.0ms"), "{line}");
    }
}
