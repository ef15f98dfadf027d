//! `loadctl run` end to end.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::server::TestServer;
use crate::{
    loadctl, repo, run_quiet, scenario, served_scenario, signal, spawn_run, summary,
    wait_for_traffic, wait_within, write,
};

#[test]
fn summary_counts_equal_what_the_server_received() {
    let (server, dir, file) = served_scenario(
        "users = 4\niterations = 250",
        "[[flow.step]]\nname = \"ok\"\npath = \"/ok\"\n[[flow.step]]\nname = \"json\"\npath = \"/json\"",
        "",
    );
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    assert_eq!(s["totals"]["requests"], 500);
    assert_eq!(s["totals"]["failures"], 0);
    assert_eq!(s["iterations"], 250);
    assert_eq!(server.count(), 500);
    assert_eq!(s["steps"][0]["name"], "ok");
    assert_eq!(s["steps"][0]["requests"], 250);
    assert_eq!(s["steps"][0]["status_codes"]["200"], 250);
    let series_total: u64 = s["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(
        series_total, 500,
        "the per-second series adds up to the total"
    );
    let last = s["series"].as_array().unwrap().last().unwrap();
    assert_eq!(last["cumulative"]["requests"], 500);
    assert_eq!(
        last["cumulative"]["latency_ms"]["max"],
        s["totals"]["latency_ms"]["max"]
    );
}

#[test]
fn a_timed_run_counts_every_request_exactly_once() {
    let (server, dir, file) = served_scenario(
        "users = 8\nduration = \"1500ms\"",
        "[[flow.step]]\npath = \"/slow/20\"",
        "",
    );
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    let requests = s["totals"]["requests"].as_u64().unwrap();
    assert!(requests > 50, "{requests}");
    assert_eq!(requests, server.count());
    assert_eq!(s["totals"]["failures"], 0);
    assert!(s["series"].as_array().unwrap().len() >= 2);
    // Every user is active all through a full second, even the instants
    // between its iterations.
    assert_eq!(s["series"][0]["users"], 8);
}

#[test]
fn an_unexpected_status_is_a_failure() {
    let (server, dir, file) = served_scenario(
        "users = 2\niterations = 20",
        "[[flow.step]]\nname = \"teapot\"\npath = \"/status/418\"\nexpect = { status = [200] }",
        "",
    );
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    assert_eq!(s["totals"]["requests"], 20);
    assert_eq!(s["totals"]["failures"], 20);
    assert_eq!(s["totals"]["errors"]["status"], 20);
    assert_eq!(s["totals"]["status_codes"]["418"], 20);
    assert_eq!(s["failures"][0]["message"], "status 418, expected 200");
    assert_eq!(server.count(), 20);
}

#[test]
fn an_expected_error_status_is_a_success_and_body_checks_fail() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let steps = "[[flow.step]]\nname = \"blocked\"\npath = \"/status/403\"\nexpect = { status = [401, 403, 404] }\n\
                 [[flow.step]]\nname = \"body\"\npath = \"/ok\"\nexpect = { body_contains = \"nope\" }\n";
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(&server.url(), "iterations = 5", steps, ""),
    );
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    assert_eq!(s["steps"][0]["failures"], 0);
    assert_eq!(s["steps"][1]["failures"], 5);
    assert_eq!(s["steps"][1]["errors"]["check"], 5);
}

#[test]
fn extracted_values_feed_the_next_step() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let steps = "[[flow.step]]\nname = \"get\"\npath = \"/json\"\n\
                 expect = { json = { \"/name\" = \"answer\" } }\n\
                 extract = { id = { json = \"/id\" }, nested = { json = \"/items/0/id\" }, token = { header = \"x-token\" } }\n\
                 [[flow.step]]\nname = \"use\"\npath = \"/echo/{{ id }}/{{ nested }}/{{ token }}\"\n";
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(&server.url(), "users = 2\niterations = 10", steps, ""),
    );
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    assert_eq!(s["totals"]["failures"], 0, "{s}");
    let echoed = server
        .paths()
        .iter()
        .filter(|p| *p == "/echo/42/7/t-123")
        .count();
    assert_eq!(echoed, 10);
}

#[test]
fn every_kind_of_template_variable_reaches_the_request() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "accounts.csv", "user\nann\n");
    // `id` is both a [vars] entry and an extracted value: the extracted one
    // wins, and `vars.id` still reaches the [vars] entry.
    let steps = "[[flow.step]]\npath = \"/json\"\nextract = { id = { json = \"/id\" } }\n\
                 [[flow.step]]\npath = \"/echo/{{ greeting }}/{{ vars.id }}/{{ id }}/{{ accounts.user }}/{{ env.TEMPLATE_TEST_WORD }}/{{ vu }}/{{ iteration }}\"\n";
    let extra = "[vars]\ngreeting = \"hi\"\nid = \"from-vars\"\n\
                 [[data]]\nname = \"accounts\"\nfile = \"accounts.csv\"\n";
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(&server.url(), "users = 1\niterations = 2", steps, extra),
    );
    loadctl()
        .args(["run", "-q"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path())
        .env("TEMPLATE_TEST_WORD", "word")
        .assert()
        .success();
    let echoed: Vec<String> = server
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("/echo/"))
        .collect();
    assert_eq!(
        echoed,
        [
            "/echo/hi/from-vars/42/ann/word/0/0",
            "/echo/hi/from-vars/42/ann/word/0/1"
        ]
    );
}

#[test]
fn a_failing_threshold_gives_exit_code_1_and_a_passing_one_0() {
    let (server, dir, file) = served_scenario(
        "iterations = 10",
        "[[flow.step]]\nname = \"bad\"\npath = \"/status/500\"",
        "[thresholds]\nhttp_req_failed = [\"rate < 0.01\"]\n",
    );
    run_quiet(&file, dir.path()).code(1);
    let s = summary(dir.path());
    assert_eq!(s["thresholds_passed"], false);
    assert_eq!(s["thresholds"][0]["passed"], false);
    assert_eq!(s["thresholds"][0]["observed"], 1.0);

    let ok = write(
        dir.path(),
        "ok.toml",
        &scenario(
            &server.url(),
            "iterations = 10",
            "[[flow.step]]\nname = \"good\"\npath = \"/ok\"",
            "",
        ),
    );
    loadctl()
        .args([
            "run",
            "-q",
            "--threshold",
            "http_req_duration: p(95) < 5s",
            "--threshold",
            "step:good: count == 10",
        ])
        .arg(&ok)
        .assert()
        .code(0);
    loadctl()
        .args(["run", "-q", "--threshold", "http_reqs: count > 10"])
        .arg(&ok)
        .assert()
        .code(1);
}

#[test]
fn a_refused_connection_is_a_classified_failure() {
    // Bind and drop, so the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(
            &format!("http://127.0.0.1:{port}"),
            "users = 2\niterations = 6",
            "[[flow.step]]\npath = \"/\"",
            "",
        ),
    );
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    assert_eq!(s["totals"]["requests"], 6);
    assert_eq!(s["totals"]["errors"]["refused"], 6);
}

#[test]
fn a_slow_response_times_out() {
    let (_server, dir, file) = served_scenario(
        "iterations = 2",
        "[[flow.step]]\npath = \"/slow/30000\"",
        "",
    );
    let started = Instant::now();
    loadctl()
        .args(["run", "-q", "--timeout", "200ms"])
        .arg(&file)
        .arg("-o")
        .arg(dir.path())
        .assert()
        .success();
    // Two answers that take 30 s each; the 200 ms timeout ends both.
    assert!(started.elapsed() < Duration::from_secs(20));
    let s = summary(dir.path());
    assert_eq!(s["totals"]["errors"]["timeout"], 2);
}

#[test]
fn flags_and_environment_override_the_file() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(
            "http://127.0.0.1:1",
            "users = 1\niterations = 1000",
            "[[flow.step]]\npath = \"/ok\"",
            "",
        ),
    );
    loadctl()
        .args([
            "run",
            "-q",
            "--base-url",
            &server.url(),
            "-H",
            "X-Test: from-flag",
        ])
        .env("LOADCTL_ITERATIONS", "7")
        .arg(&file)
        .arg("-o")
        .arg(dir.path())
        .assert()
        .success();
    assert_eq!(server.count(), 7);
    let headers = server.seen.test_headers.lock().unwrap().clone();
    assert_eq!(headers, vec!["from-flag"; 7]);
    // A flag beats the environment.
    loadctl()
        .args([
            "run",
            "-q",
            "--base-url",
            &server.url(),
            "--iterations",
            "3",
        ])
        .env("LOADCTL_ITERATIONS", "7")
        .arg(&file)
        .assert()
        .success();
    assert_eq!(server.count(), 10);
}

#[test]
fn unique_data_rows_are_each_used_once() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "accounts.csv",
        "user,pin\nann,1\nbob,2\ncid,3\n",
    );
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(
            &server.url(),
            "users = 2\nduration = \"60s\"",
            "[[flow.step]]\npath = \"/echo/{{ accounts.user }}/{{ accounts.pin }}\"",
            "[[data]]\nname = \"accounts\"\nfile = \"accounts.csv\"\nmode = \"unique\"\n",
        ),
    );
    let started = Instant::now();
    run_quiet(&file, dir.path()).success();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run ends when the rows run out, long before its 60 s"
    );
    let mut paths = server.paths();
    paths.sort();
    assert_eq!(paths, vec!["/echo/ann/1", "/echo/bob/2", "/echo/cid/3"]);
}

#[test]
fn http2_by_prior_knowledge_and_over_tls() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let h2c = scenario(
        &server.url(),
        "iterations = 5",
        "[[flow.step]]\npath = \"/ok\"",
        "",
    )
    .replace("timeout = \"2s\"", "timeout = \"2s\"\nhttp = \"2\"");
    let file = write(dir.path(), "h2c.toml", &h2c);
    let out = dir.path().join("h2c");
    run_quiet(&file, &out).success();
    assert_eq!(summary(&out)["totals"]["failures"], 0);
    assert_eq!(
        server.seen.versions.lock().unwrap().get("HTTP/2.0"),
        Some(&5)
    );

    let (tls, files) = TestServer::start_tls();
    write(dir.path(), "ca.pem", &files.cert_pem);
    let url = format!("https://localhost:{}", tls.addr.port());
    for (target, version) in [
        ("ca_file = \"ca.pem\"", "HTTP/2.0"),
        ("insecure = true\nhttp = \"1.1\"", "HTTP/1.1"),
    ] {
        let text = scenario(&url, "iterations = 4", "[[flow.step]]\npath = \"/ok\"", "")
            .replace("timeout = \"2s\"", &format!("timeout = \"2s\"\n{target}"));
        let file = write(dir.path(), "tls.toml", &text);
        let out = dir.path().join(version);
        run_quiet(&file, &out).success();
        assert_eq!(summary(&out)["totals"]["failures"], 0, "{target}");
        assert_eq!(
            tls.seen.versions.lock().unwrap().get(version),
            Some(&4),
            "{target}"
        );
    }
    // Without trust, the handshake fails and says so.
    let text = scenario(&url, "iterations = 2", "[[flow.step]]\npath = \"/ok\"", "");
    let file = write(dir.path(), "untrusted.toml", &text);
    run_quiet(&file, dir.path()).success();
    assert_eq!(summary(dir.path())["totals"]["errors"]["tls"], 2);
}

#[test]
fn the_quickstart_runs_against_the_demo_target() {
    let dir = tempfile::tempdir().unwrap();
    loadctl()
        .args(["run", "-q", "--duration", "1s"])
        .arg(repo().join("scenarios/quickstart.toml"))
        .arg("--out")
        .arg(dir.path())
        .assert()
        .success()
        .stdout(predicates::str::contains("Aggregated"));
    let s = summary(dir.path());
    assert!(s["totals"]["requests"].as_u64().unwrap() > 100);
    assert_eq!(s["totals"]["failures"], 0);
    assert!(s["run"]["target"]
        .as_str()
        .unwrap()
        .starts_with("demo (http://127.0.0.1:"));
}

#[test]
fn secrets_in_headers_do_not_reach_the_summary_or_output() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(
            &server.url(),
            "iterations = 2",
            "[[flow.step]]\npath = \"/status/500\"",
            "",
        )
        .replace(
            "timeout = \"2s\"",
            "timeout = \"2s\"\nheaders = { Authorization = \"Bearer s3cret-token\" }",
        ),
    );
    let (_, all) = run_showing_all(&file, dir.path(), &["-H", "Cookie: session=s3cret-cookie"]);
    assert!(!all.contains("s3cret"), "{all}");
}

/// Runs `loadctl run [EXTRA] FILE -o OUT` to its end, whatever its exit
/// code, and returns the summary and everything the run showed: stdout,
/// stderr and the summary's text, for checking that a secret is nowhere.
fn run_showing_all(file: &Path, out: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let output = loadctl()
        .arg("run")
        .args(extra)
        .arg(file)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    let json = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let all = format!(
        "{}{}{json}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (serde_json::from_str(&json).unwrap(), all)
}

#[test]
fn secret_variables_are_redacted_from_failure_messages() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The second step's path renders the extracted (secret) token into an
    // invalid URI: the failure must say so without showing the token.
    let steps = "[[flow.step]]\nname = \"login\"\npath = \"/json\"\n\
                 extract = { token = { header = \"x-token\" } }\n\
                 [[flow.step]]\nname = \"use\"\npath = \"/echo/{{ token }} oops\"\n";
    let text = format!(
        "secrets = [\"token\"]\n{}",
        scenario(&server.url(), "iterations = 3", steps, "")
    );
    let file = write(dir.path(), "s.toml", &text);
    let (s, all) = run_showing_all(&file, dir.path(), &[]);
    assert_eq!(s["steps"][1]["errors"]["template"], 3);
    // The message names the template, not what it rendered to.
    let message = s["failures"][0]["message"].as_str().unwrap();
    assert!(message.contains("/echo/{{ token }} oops"), "{message}");
    assert!(!all.contains("t-123"), "{all}");
}

#[test]
fn a_template_error_that_quotes_a_secret_value_has_it_redacted() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let steps = "[[flow.step]]\nname = \"use\"\npath = \"/echo/{{ random(vars.pin, 1) }}\"\n";
    let text = format!(
        "secrets = [\"vars.pin\"]\n{}",
        scenario(
            &server.url(),
            "iterations = 2",
            steps,
            "[vars]\npin = 98765\n"
        )
    );
    let file = write(dir.path(), "s.toml", &text);
    let (s, all) = run_showing_all(&file, dir.path(), &[]);
    assert_eq!(s["steps"][0]["errors"]["template"], 2);
    let message = s["failures"][0]["message"].as_str().unwrap();
    assert!(message.contains("random([redacted], 1)"), "{message}");
    assert!(!all.contains("98765"), "{all}");
}

#[test]
fn too_many_users_for_the_open_files_limit_are_refused_before_the_run() {
    let (server, _dir, file) = served_scenario(
        "users = 1000\nduration = \"30s\"",
        "[[flow.step]]\npath = \"/ok\"",
        "",
    );
    let bin = assert_cmd::cargo::cargo_bin("loadctl");
    // `ulimit -n` in sh lowers both the soft and the hard limit.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' run -q '{}'",
            bin.display(),
            file.display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("open files") && stderr.contains("ulimit -n"),
        "{stderr}"
    );
    assert_eq!(server.count(), 0, "nothing was sent");
}

#[test]
fn sigint_or_sigterm_mid_run_writes_every_file_marked_as_interrupted() {
    for name in ["INT", "TERM"] {
        let server = TestServer::start();
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "s.toml",
            &scenario(
                &server.url(),
                "users = 4\nduration = \"30s\"",
                "[[flow.step]]\npath = \"/slow/5\"",
                "",
            ),
        );
        let mut child = spawn_run(&file, dir.path(), &[]);
        wait_for_traffic(&server);
        signal(&child, name);
        // Requests take 5 ms, so stopping takes the signal's latency, not
        // the 2 s grace; the bound only catches a hang on a slow machine.
        let status = wait_within(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(130), "SIG{name}");
        let s = summary(dir.path());
        assert_eq!(s["run"]["interrupted"], true);
        let requests = s["totals"]["requests"].as_u64().unwrap();
        assert!(requests > 0);
        assert_eq!(
            requests,
            server.count(),
            "SIG{name}: every request sent is counted once"
        );
        assert_eq!(s["totals"]["failures"], 0);
        for file in [
            "summary.json",
            "loadctl_stats.csv",
            "loadctl_stats_history.csv",
            "loadctl_failures.csv",
            "report.html",
            "junit.xml",
        ] {
            assert!(
                dir.path().join(file).is_file(),
                "SIG{name}: {file} was written"
            );
        }
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(
            html.contains("<strong>Interrupted.</strong>"),
            "the HTML report says so"
        );
        let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
        assert!(
            junit.contains("name=\"interrupted\" value=\"true\""),
            "{junit}"
        );
    }
}

#[test]
fn a_second_signal_quits_at_once() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Answers take 20 s and the grace is 30 s: only the second signal can
    // end this run quickly.
    let text = scenario(
        &server.url(),
        "users = 2\nduration = \"60s\"\ngraceful_stop = \"30s\"",
        "[[flow.step]]\npath = \"/slow/20000\"",
        "",
    )
    .replace("timeout = \"2s\"", "timeout = \"60s\"");
    let file = write(dir.path(), "s.toml", &text);
    let mut child = spawn_run(&file, dir.path(), &[]);
    wait_for_traffic(&server);
    signal(&child, "INT");
    // A signal right after the first is the same request delivered twice.
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal waits for in-flight requests"
    );
    signal(&child, "INT");
    let status = wait_within(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("quitting without a report"), "{stderr}");
    assert!(!dir.path().join("summary.json").exists());
}

#[test]
fn one_ctrl_c_under_timeout_always_writes_the_report() {
    use std::os::unix::process::CommandExt as _;
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(
        &server.url(),
        "users = 2\nduration = \"30s\"",
        "[[flow.step]]\npath = \"/ok\"",
        "",
    );
    let file = write(dir.path(), "s.toml", &text);
    // GNU timeout forwards the SIGINT it gets to loadctl, which also gets
    // the terminal's own: two signals at once, as from one Ctrl-C.
    for round in 0..20 {
        let out = dir.path().join(format!("out{round}"));
        let before = server.count();
        let mut child = std::process::Command::new("timeout")
            .arg("60")
            .arg(assert_cmd::cargo::cargo_bin("loadctl"))
            .args(["run", "-q"])
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while server.count() == before {
            assert!(started.elapsed() < Duration::from_secs(30), "no traffic");
            std::thread::sleep(Duration::from_millis(10));
        }
        let group = format!("-{}", child.id());
        let sent = std::process::Command::new("kill")
            .args(["-INT", "--", &group])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = wait_within(&mut child, Duration::from_secs(20));
        assert_eq!(status.code(), Some(130), "round {round}");
        assert!(
            out.join("summary.json").exists(),
            "round {round} lost its report"
        );
    }
}

#[test]
fn out_refuses_a_folder_that_holds_a_run_unless_forced() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(
        &server.url(),
        "users = 1\niterations = 1",
        "[[flow.step]]\npath = \"/ok\"",
        "",
    );
    let file = write(dir.path(), "s.toml", &text);
    let out = dir.path().join("out");
    run_quiet(&file, &out).success();
    let before = server.count();
    run_quiet(&file, &out)
        .code(2)
        .stderr(predicates::str::contains("already holds a run"));
    assert_eq!(server.count(), before, "nothing is sent when refused");
    loadctl()
        .args(["run", "-q", "--force"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
}

#[test]
fn users_of_a_failing_target_still_wait_their_think_time() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Two users, a 1 s pause, 3 s: each sends at t = 0, 1, 2 (and perhaps
    // one more as the run ends), whether its request passes or fails.
    let text = scenario(
        &server.url(),
        "users = 2\nduration = \"3s\"",
        "think_time = \"1s\"\n[[flow.step]]\npath = \"/status/404\"",
        "",
    );
    let file = write(dir.path(), "s.toml", &text);
    run_quiet(&file, dir.path()).success();
    let allowed = 2 * 4;
    assert!(
        server.count() <= allowed,
        "{} requests; the think time allows {allowed}",
        server.count()
    );
    assert_eq!(summary(dir.path())["totals"]["failures"], server.count());
}

#[test]
fn a_url_instead_of_a_file_runs_a_one_step_scenario() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/ok?from=quick", server.url());
    loadctl()
        .args(["run", "-q", &url, "-u", "2", "-d", "1s", "--out"])
        .arg(dir.path())
        .assert()
        .success();
    let s = summary(dir.path());
    assert_eq!(s["run"]["users"], 2);
    assert_eq!(s["steps"][0]["name"], "/ok?from=quick");
    assert_eq!(s["totals"]["requests"], server.count());
    assert_eq!(s["totals"]["failures"], 0);
    assert!(server.paths().iter().all(|p| p == "/ok?from=quick"));
    loadctl()
        .args(["run", "-q", "http://"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("is not a URL"));
}

#[test]
fn flags_from_k6_and_locust_get_the_loadctl_flag() {
    for (flag, ours) in [
        ("--vus", "--users"),
        ("-t", "--duration"),
        ("--run-time", "--duration"),
        ("--spawn-rate", "ramp_up"),
        ("-f", "loadctl run FILE.toml"),
    ] {
        loadctl()
            .args(["run", "scenarios/quickstart.toml", flag, "5"])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(ours));
    }
}

#[test]
fn quick_mode_fails_when_the_url_does_not_answer_and_addresses_get_a_hint() {
    // Port 9 on loopback: nothing listens there, every connect is refused.
    loadctl()
        .args(["run", "-q", "http://127.0.0.1:9/", "-u", "1", "-d", "1s"])
        .assert()
        .code(1);
    loadctl()
        .args(["run", "127.0.0.1:9"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("loadctl run http://127.0.0.1:9"));
    loadctl()
        .args(["init", "--url", "localhost:8080", "-o", "-"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("needs a scheme"));
}

#[test]
fn a_path_template_naming_another_host_sends_no_absolute_form_request() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    // A failed step ends the iteration: the refused one comes last.
    let steps = "[[flow.step]]\nname = \"fine\"\npath = \"/ok\"\n\
                 [[flow.step]]\nname = \"scheme-relative\"\npath = \"{{ '//169.254.169.254/x' }}\"\n\
                 expect = { status = [404] }\n\
                 [[flow.step]]\nname = \"elsewhere\"\n\
                 path = \"{{ 'http://169.254.169.254/latest/meta-data/' }}\"";
    let text = scenario(&server.url(), "users = 1\niterations = 3", steps, "");
    let file = write(dir.path(), "s.toml", &text);
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    assert_eq!(s["totals"]["errors"]["template"], 3, "{s}");
    let paths = server.paths();
    // `/ok` and the scheme-relative `//169.254.169.254/x`, three times each.
    assert_eq!(paths.len(), 6, "{paths:?}");
    assert!(paths.iter().all(|p| p.starts_with('/')), "{paths:?}");
    let message = s["failures"][0]["message"].as_str().unwrap();
    assert!(message.contains("does not start with `/`"), "{message}");
}
