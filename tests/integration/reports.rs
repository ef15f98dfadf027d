//! Report files: what `run --out` and `run --csv` write, and what
//! `loadctl report` re-renders and compares.

use std::path::{Path, PathBuf};

use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

use crate::server::TestServer;
use crate::{loadctl, run_quiet, scenario, served_scenario, summary, write};

const STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
const HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
/// Locust's, exactly: tools that parse Locust's files parse these.
const FAILURES_HEADER: &str = "Method,Name,Error,Occurrences";

const OUT_FILES: [&str; 6] = [
    "summary.json",
    "loadctl_stats.csv",
    "loadctl_stats_history.csv",
    "loadctl_failures.csv",
    "report.html",
    "junit.xml",
];

/// Runs a short scenario with a good step, a failing step and three
/// thresholds (the error-rate one fails) into `dir`; returns its summary.
fn run_into(server: &TestServer, dir: &Path, extra_args: &[&str]) -> serde_json::Value {
    let file = write(
        dir,
        "s.toml",
        &scenario(
            &server.url(),
            "users = 2\niterations = 30",
            "[[flow.step]]\nname = \"good\"\npath = \"/json\"\n\
             [[flow.step]]\nname = \"bad\"\nmethod = \"POST\"\npath = \"/status/500\"",
            "[thresholds]\nhttp_req_duration = [\"p(95) < 5s\"]\n\
             http_req_failed = [\"rate < 0.01\"]\n\"step:good\" = [\"count == 30\"]\n",
        ),
    );
    let out = dir.join("out");
    loadctl()
        .args(["run", "-q"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .args(extra_args)
        .assert()
        .code(1);
    summary(&out)
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn first_line(text: &str) -> &str {
    text.split('\n').next().unwrap()
}

#[test]
fn run_out_writes_locust_csv_with_exact_headers() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let s = run_into(&server, dir.path(), &[]);
    let out = dir.path().join("out");
    for name in OUT_FILES {
        assert!(out.join(name).is_file(), "{name} was written");
    }

    let stats = read(out.join("loadctl_stats.csv"));
    assert_eq!(first_line(&stats), STATS_HEADER);
    let rows: Vec<&str> = stats.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "two steps and Aggregated:\n{stats}");
    assert!(rows[0].starts_with("GET,good,30,0,"), "{}", rows[0]);
    assert!(rows[1].starts_with("POST,bad,30,30,"), "{}", rows[1]);
    let aggregated: Vec<&str> = rows[2].split(',').collect();
    assert_eq!(aggregated.len(), 22);
    assert_eq!(&aggregated[..2], ["", "Aggregated"]);
    assert_eq!(
        aggregated[2].parse::<u64>().unwrap(),
        s["totals"]["requests"].as_u64().unwrap()
    );
    assert_eq!(aggregated[2], "60");

    let history = read(out.join("loadctl_stats_history.csv"));
    assert_eq!(first_line(&history), HISTORY_HEADER);
    let points = s["series"].as_array().unwrap();
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(rows.len(), points.len());
    let last: Vec<&str> = rows.last().unwrap().split(',').collect();
    assert_eq!(last.len(), 24);
    assert_eq!(last[3], "Aggregated");
    assert_eq!(last[17], "60", "Total Request Count at the end");
    assert_eq!(last[18], "30", "Total Failure Count at the end");
    let started = s["run"]["started_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second();
    let t = points.last().unwrap()["t"].as_i64().unwrap();
    assert_eq!(last[0], (started + t).to_string());

    let failures = read(out.join("loadctl_failures.csv"));
    assert_eq!(first_line(&failures), FAILURES_HEADER);
    let row = failures.lines().nth(1).expect("one failure row");
    assert_eq!(row, "POST,bad,\"status: status 500, expected 200-399\",30");
}

#[test]
fn run_csv_writes_prefixed_files_equal_to_the_out_folder_ones() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("csv/run1");
    run_into(&server, dir.path(), &["--csv", prefix.to_str().unwrap()]);
    for part in ["stats", "stats_history", "failures"] {
        let prefixed = dir.path().join(format!("csv/run1_{part}.csv"));
        let in_out = dir.path().join(format!("out/loadctl_{part}.csv"));
        assert_eq!(read(prefixed), read(in_out), "{part}");
    }
}

#[test]
fn report_re_renders_every_file_byte_for_byte() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    run_into(&server, dir.path(), &[]);
    let out = dir.path().join("out");
    let again = dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    let saved = out.join("summary.json");
    let rerender = |format: &str, target: PathBuf| {
        loadctl()
            .arg("report")
            .arg(&saved)
            .args(["--format", format, "-o"])
            .arg(target)
            .assert()
            .success();
    };
    rerender("json", again.join("summary.json"));
    rerender("html", again.join("report.html"));
    rerender("junit", again.join("junit.xml"));
    rerender("csv", again.join("loadctl"));
    for name in OUT_FILES {
        let first = std::fs::read(out.join(name)).unwrap();
        let second = std::fs::read(again.join(name)).unwrap();
        assert!(first == second, "{name} differs when re-rendered");
    }
    // Without -o, the same bytes go to stdout.
    let html = loadctl()
        .arg("report")
        .arg(&saved)
        .args(["--format", "html"])
        .output()
        .unwrap();
    assert!(html.status.success());
    assert!(html.stdout == std::fs::read(out.join("report.html")).unwrap());
    // CSV is three files: without a prefix it is a usage error.
    loadctl()
        .arg("report")
        .arg(&saved)
        .args(["--format", "csv"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("-o PREFIX"));
    // The default format is the terminal table.
    loadctl()
        .arg("report")
        .arg(&saved)
        .assert()
        .success()
        .stdout(predicates::str::contains("Aggregated"))
        .stdout(predicates::str::contains("thresholds:"));
}

/// Every `src=` and `href=` value in the page.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in ["src=", "href="] {
        for (at, _) in html.match_indices(attr) {
            let value = html[at + attr.len()..]
                .trim_start_matches(['"', '\''])
                .split(['"', '\'', ' ', '>'])
                .next()
                .unwrap_or("");
            found.push(value.to_string());
        }
    }
    found
}

#[test]
fn the_html_report_is_self_contained_and_flags_an_interrupted_run() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut s = run_into(&server, dir.path(), &[]);
    let html = read(dir.path().join("out/report.html"));
    assert!(html.contains("<h1>test</h1>"), "the scenario name");
    assert!(html.contains("<svg"), "inline charts");
    for link in links(&html) {
        let lower = link.to_ascii_lowercase();
        assert!(
            !(lower.starts_with("http:") || lower.starts_with("https:") || lower.starts_with("//")),
            "external link {link}"
        );
    }
    assert!(!html.contains("class=\"banner\""));

    s["run"]["interrupted"] = true.into();
    s["run"]["name"] = "stopped <early>".into();
    let edited = write(dir.path(), "edited.json", &s.to_string());
    let out = loadctl()
        .arg("report")
        .arg(&edited)
        .args(["--format", "html"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.contains("stopped &lt;early&gt;"));
    assert!(html.contains("class=\"banner\""));
    assert!(html.contains("Interrupted."));
}

#[test]
fn junit_has_one_testcase_per_threshold_and_failures_where_they_failed() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let s = run_into(&server, dir.path(), &[]);
    let xml = read(dir.path().join("out/junit.xml"));
    let attr = |e: &quick_xml::events::BytesStart, name: &str| -> String {
        e.try_get_attribute(name)
            .unwrap()
            .unwrap_or_else(|| panic!("no {name}"))
            .normalized_value(XmlVersion::Implicit1_0)
            .unwrap()
            .into_owned()
    };
    let mut reader = Reader::from_str(&xml);
    let mut suite = None;
    let mut cases: Vec<(String, Option<String>)> = Vec::new();
    loop {
        match reader.read_event().expect("junit.xml is well-formed") {
            Event::Start(e) if e.name().as_ref() == b"testsuite" => {
                suite = Some((attr(&e, "tests"), attr(&e, "failures")));
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                cases.push((attr(&e, "name"), None));
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"failure" => {
                cases.last_mut().unwrap().1 = Some(attr(&e, "message"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let thresholds = s["thresholds"].as_array().unwrap();
    assert_eq!(thresholds.len(), 3);
    assert_eq!(cases.len(), thresholds.len());
    let failed = thresholds
        .iter()
        .filter(|t| t["passed"] == false)
        .count()
        .to_string();
    assert_eq!(suite, Some(("3".to_string(), failed)));
    for (case, t) in cases.iter().zip(thresholds) {
        let name = format!(
            "{}: {}",
            t["metric"].as_str().unwrap(),
            t["expression"].as_str().unwrap()
        );
        assert_eq!(case.0, name);
        assert_eq!(case.1.is_none(), t["passed"] == true, "{name}");
    }
    let failure = cases.iter().find_map(|c| c.1.clone()).unwrap();
    assert_eq!(failure, "observed 50%, expected rate < 0.01");
}

#[test]
fn compare_passes_a_run_against_itself_and_fails_a_planted_regression() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let s = run_into(&server, dir.path(), &[]);
    let base = dir.path().join("out/summary.json");
    loadctl()
        .args(["report", "--compare"])
        .arg(&base)
        .arg(&base)
        .assert()
        .code(0)
        .stdout(predicates::str::contains("no regression beyond 10%"));

    let mut worse = s.clone();
    let p95 = worse["steps"][0]["latency_ms"]["p95"].as_f64().unwrap();
    // Past the 2 ms floor as well as the 10% limit.
    worse["steps"][0]["latency_ms"]["p95"] = (p95 * 1.5 + 5.0).into();
    let rps = worse["totals"]["rps"].as_f64().unwrap();
    worse["totals"]["rps"] = (rps * 0.8).into();
    let current = write(dir.path(), "worse.json", &worse.to_string());
    loadctl()
        .args(["report", "--compare"])
        .arg(&base)
        .arg(&current)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("2 regressions beyond 10%"))
        .stdout(predicates::str::contains("good: p95 up"))
        .stdout(predicates::str::contains("Aggregated: rps down 20%"));
    // A looser limit lets the 20% rps drop through, not the p95 rise.
    loadctl()
        .args(["report", "--max-regression", "25%", "--compare"])
        .arg(&base)
        .arg(&current)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("1 regression beyond 25%"));
}

#[test]
fn compare_ignores_latency_jitter_under_the_floor_and_no_more() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut s = run_into(&server, dir.path(), &[]);
    // Two identical runs on loopback: p95 from 1 ms to 2.72 ms (+172%).
    s["totals"]["latency_ms"]["p95"] = 1.0.into();
    let base = write(dir.path(), "base.json", &s.to_string());
    s["totals"]["latency_ms"]["p95"] = 2.72.into();
    let jitter = write(dir.path(), "jitter.json", &s.to_string());
    let compare = |extra: &[&str], current: &Path| {
        loadctl()
            .args(["report", "--compare"])
            .arg(&base)
            .arg(current)
            .args(extra)
            .assert()
    };
    compare(&[], &jitter)
        .code(0)
        .stdout(predicates::str::contains("under 2ms"))
        .stdout(predicates::str::contains("no regression beyond 10%"));
    // A lower floor makes the same rise a regression.
    compare(&["--min-change", "1ms"], &jitter)
        .code(1)
        .stdout(predicates::str::contains("Aggregated: p95 up 172%"));
    compare(&["--min-change", "0"], &jitter).code(1);
    // A rise past the floor and the limit is a regression by default.
    s["totals"]["latency_ms"]["p95"] = 3.5.into();
    let slower = write(dir.path(), "slower.json", &s.to_string());
    compare(&[], &slower)
        .code(1)
        .stdout(predicates::str::contains("1 regression beyond 10%"));
    // ... and no longer one with a higher floor.
    compare(&["--min-change", "3ms"], &slower).code(0);
    // Improvements never are.
    loadctl()
        .args(["report", "--compare"])
        .arg(&slower)
        .arg(&base)
        .assert()
        .code(0);
    // The floor means nothing without --compare, and must be a latency.
    loadctl()
        .arg("report")
        .arg(&base)
        .args(["--min-change", "1ms"])
        .assert()
        .code(2);
    compare(&["--min-change", "5%"], &jitter)
        .code(2)
        .stderr(predicates::str::contains("--min-change"));
    loadctl()
        .args(["report", "--help"])
        .assert()
        .success()
        .stdout(predicates::str::contains("--min-change"))
        .stdout(predicates::str::contains("default: 2ms"));
}

#[test]
fn a_missing_or_invalid_summary_is_named_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    loadctl()
        .arg("report")
        .arg(&missing)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(missing.to_str().unwrap()));
    let invalid = write(dir.path(), "invalid.json", "{\"name\": 1}");
    loadctl()
        .args(["report", "--format", "html"])
        .arg(&invalid)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "invalid.json is not a loadctl summary.json",
        ));
    loadctl()
        .args(["report", "--compare"])
        .arg(&invalid)
        .arg(&missing)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("invalid.json"));
}

/// One plain HTTP/1.1 GET, for scraping the live metrics endpoint.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn live_metrics_are_served_during_the_run() {
    let server = crate::server::TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let file = crate::write(
        dir.path(),
        "s.toml",
        &crate::scenario(
            &server.url(),
            "users = 2\nduration = \"4s\"",
            "[[flow.step]]\nname = \"get\"\npath = \"/slow/5\"",
            "",
        ),
    );
    let mut child = crate::spawn_run(&file, dir.path(), &["--metrics-addr", &addr]);
    // Poll until a scrape shows requests (the first is collected after 1 s).
    let mut scraped = None;
    for _ in 0..60 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Some(text) = http_get(&addr, "/metrics") {
            if text.contains("loadctl_requests_total{step=\"get\",status=\"200\"}") {
                scraped = Some(text);
                break;
            }
        }
    }
    let text = scraped.expect("the endpoint served request counters during the run");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/plain; version=0.0.4"));
    assert!(text.contains("# TYPE loadctl_request_duration_seconds summary"));
    assert!(text.contains("loadctl_request_duration_seconds{step=\"get\",quantile=\"0.99\"}"));
    assert!(text.contains("loadctl_active_users 2\n"), "{text}");
    let during: u64 = text
        .lines()
        .find(|l| l.starts_with("loadctl_requests_total{step=\"get\",status=\"200\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let s = crate::summary(dir.path());
    let total = s["totals"]["requests"].as_u64().unwrap();
    assert!(
        during > 0 && during < total,
        "a scrape mid-run sees part of the run: {during} of {total}"
    );
    assert!(
        http_get(&addr, "/metrics").is_none(),
        "the endpoint closes with the run"
    );
}

#[test]
fn thresholds_on_a_step_without_requests_are_not_evaluated_and_fail_everywhere() {
    // `item` is never reached: the step before it always fails, and a
    // failed step ends the iteration.
    let (_server, dir, file) = served_scenario(
        "users = 1\niterations = 3",
        "[[flow.step]]\nname = \"first\"\npath = \"/status/500\"\n\
         [[flow.step]]\nname = \"item\"\npath = \"/ok\"",
        "[thresholds]\n\"step:item\" = [\"error_rate < 0.05\", \"p(99) < 800ms\", \"count < 10\"]\n",
    );
    let out = dir.path().join("out");
    let run = run_quiet(&file, &out).code(1);
    let table = String::from_utf8_lossy(&run.get_output().stdout).into_owned();
    let s = summary(&out);
    assert_eq!(s["steps"][1]["requests"], 0, "item was never reached");
    assert_eq!(s["thresholds_passed"], false);
    let why = "no data: step `item` sent no request";
    for t in s["thresholds"].as_array().unwrap() {
        let expr = t["expression"].as_str().unwrap();
        assert_eq!(t["observed"], serde_json::Value::Null, "{expr}");
        assert_eq!(t["passed"], false, "{expr}");
        assert!(
            table.contains(&format!("✗ step:item: {expr}  (not evaluated, {why})")),
            "{expr}:\n{table}"
        );
    }
    let junit = read(out.join("junit.xml"));
    assert!(junit.contains(r#"tests="3" failures="3""#), "{junit}");
    assert_eq!(junit.matches(&format!("not evaluated, {why}")).count(), 3);
    let html = read(out.join("report.html"));
    assert!(html.contains("3 of 3 thresholds failed"));
    assert_eq!(html.matches("✗ not evaluated").count(), 3);
    assert_eq!(html.matches(why).count(), 3);
}
