//! `loadctl validate`: every bad input names file:line:column.

use crate::{loadctl, repo, write};

const BASE: &str = "name = \"t\"\n[target]\nbase_url = \"demo\"\n[load]\nusers = 2\nduration = \"1s\"\n[[flow]]\n  [[flow.step]]\n  path = \"/\"\n";

/// Each case: the scenario text with `@` where the error must point, and
/// a piece of the message.
const CASES: &[(&str, &str)] = &[
    ("name = @\n", "TOML syntax"),
    (
        "[target]\nbase_url = \"demo\"\n[load]\nusers = @\"ten\"\nduration = \"1s\"\n",
        "`users` must be an integer",
    ),
    ("[load]\n@userz = 3\n", "did you mean `users`"),
    (
        "[load]\nusers = 2\nduration = @\"soon\"\n",
        "is not a duration",
    ),
    ("[load]\nusers = @0\nduration = \"1s\"\n", "at least 1"),
    ("[load]\nusers = @-3\nduration = \"1s\"\n", "at least 1"),
    ("[load]\nusers = @99999999999999999999\n", "too large"),
    (
        "[load]\nduration = \"1s\"\npattern = @\"zigzag\"\n",
        "pattern \"zigzag\" is unknown",
    ),
    ("[load]\nduration = @\"-5s\"\n", "more than zero"),
    (
        "@[load]\npattern = \"wave\"\nbase = 10\namplitude = 5\nperiod = \"15ns\"\nduration = \"1h\"\n",
        "stages (the limit is 100000)",
    ),
    ("[load]\nduration = @\"2562047788015215h\"\n", "longer than the limit of a year"),
    ("[load]\npattern = \"spike\"\nbase = 10\npeak = @5\nduration = \"10s\"\n", "peak (5) must be at least base (10)"),
    ("[load]\npattern = \"wave\"\nbase = 10\namplitude = 5\nperiod = @\"0s\"\nduration = \"10s\"\n", "period must be more than zero"),
    ("@[load]\npattern = \"stages\"\n", "pattern stages needs `stages"),
    ("[load]\nmodel = \"open\"\nrate = @0\nduration = \"1s\"\n", "rate must be a rate above 0"),
    ("[load]\nmodel = \"open\"\nrate = 10\nmax_users = @0\nduration = \"1s\"\n", "max_users must be at least 1"),
    ("[load]\nusers = 5\nduration = \"1s\"\npeak = @10\n", "`peak` is not read by pattern constant"),
    ("[load]\nusers = 5\nduration = \"1s\"\nmax_users = @10\n", "`max_users` is for the open model"),
    ("@[load]\npattern = \"ramp\"\nusers = 10\nduration = \"10s\"\nramp_up = \"20s\"\n", "longer than the duration"),
    ("[load]\npattern = \"random\"\nmin = 5\nmax = @2\nduration = \"10s\"\n", "max (2) must be at least min (5)"),
    ("[load]\nmodel = \"open\"\nrate = 10\nduration = \"1s\"\non_saturation = @\"panic\"\n", "expected \"wait\" or \"drop\""),
    ("[target]\nbase_url = @\"ftp://x\"\n", "scheme `ftp`"),
    (
        "[target]\nbase_url = \"demo\"\ntimeout = @\"500us\"\n",
        "shorter than the timer can measure; the least is 1ms",
    ),
    (
        "[thresholds]\n@http_req_duraton = [\"p(95) < 1s\"]\n",
        "did you mean `http_req_duration`",
    ),
    (
        "[thresholds]\n@\"step:nope\" = [\"p(95) < 1s\"]\n",
        "no step is named `nope`",
    ),
    (
        "[thresholds]\nhttp_req_duration = [@\"p95 < 1s\"]\n",
        "unknown aggregate",
    ),
    (
        "[[data]]\nname = \"accounts\"\nfile = @\"missing.csv\"\n",
        "not found",
    ),
    (
        "[[flow]]\n  [[flow.step]]\n  path = @\"/x/{{ nope }}\"\n",
        "unknown variable `nope`",
    ),
    (
        "[[flow]]\n  [[flow.step]]\n  path = \"/\"\n  expect = { status = [@42] }\n",
        "not an HTTP status code",
    ),
    (
        "[[flow]]\n  [[flow.step]]\n  path = \"/\"\n  @methd = \"GET\"\n",
        "did you mean `method`",
    ),
];

fn location(text: &str) -> (String, usize, usize) {
    let at = text.find('@').expect("each case marks its error with @");
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (text.replacen('@', "", 1), line, column)
}

#[test]
fn every_bad_input_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (case, message)) in CASES.iter().enumerate() {
        // Cases that do not define their own [load]/[target]/flow reuse the
        // base lines after theirs, so the marker's line stays right.
        let text = if case.starts_with("[load]")
            || case.starts_with("@[load]")
            || case.starts_with("[thresholds]")
            || case.starts_with("[[data]]")
        {
            format!(
                "{case}[target]\nbase_url = \"demo\"\n[[flow]]\n  [[flow.step]]\n  path = \"/\"\n"
            )
        } else if case.starts_with("[target]") {
            format!("{case}[load]\nduration = \"1s\"\n[[flow]]\n  [[flow.step]]\n  path = \"/\"\n")
        } else if case.starts_with("[[flow]]") {
            format!("{case}[target]\nbase_url = \"demo\"\n[load]\nduration = \"1s\"\n")
        } else {
            case.to_string()
        };
        let (text, line, column) = location(&text);
        let file = write(dir.path(), &format!("case{i}.toml"), &text);
        let out = loadctl().arg("validate").arg(&file).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "case {i} should be invalid:\n{text}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = format!("{}:{line}:{column}: error: ", file.display());
        let hit = stderr
            .lines()
            .find(|l| l.starts_with(&expected) && l.contains(message));
        assert!(
            hit.is_some(),
            "case {i}: expected `{expected}…{message}` in:\n{stderr}\nfor:\n{text}"
        );
    }
}

#[test]
fn all_problems_of_a_file_are_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[target]\nbase_url = \"demo\"\ntimout = \"1s\"\n[load]\nusers = 0\nduration = \"soon\"\n[[flow]]\n  [[flow.step]]\n  path = \"/{{ x }}\"\n[thresholds]\nnope = [\"p(95) < 1s\"]\n";
    let file = write(dir.path(), "many.toml", text);
    let out = loadctl().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = stderr.lines().filter(|l| l.contains(": error: ")).count();
    assert_eq!(errors, 5, "{stderr}");
}

#[test]
fn json_output_for_machines() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.toml", "[load]\nusers = 0\n");
    let good = write(dir.path(), "good.toml", BASE);
    let out = loadctl()
        .args(["validate", "--format", "json"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["files"][0]["valid"], true);
    let problems = report["files"][1]["problems"].as_array().unwrap();
    let users = problems
        .iter()
        .find(|p| p["message"].as_str().unwrap().contains("at least 1"))
        .unwrap();
    assert_eq!(
        (users["line"].as_u64(), users["column"].as_u64()),
        (Some(2), Some(9))
    );
}

#[test]
fn a_missing_or_binary_file_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    loadctl().arg("validate").arg(&missing).assert().code(2);
    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41, 0x0a]).unwrap();
    loadctl()
        .arg("validate")
        .arg(&binary)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not valid UTF-8"));
    let empty = write(dir.path(), "empty.toml", "");
    loadctl().arg("validate").arg(&empty).assert().code(2);
}

#[test]
fn the_shipped_scenarios_are_valid() {
    let mut files = vec![repo().join("scenarios/quickstart.toml")];
    for entry in std::fs::read_dir(repo().join("scenarios/presets")).unwrap() {
        files.push(entry.unwrap().path());
    }
    assert!(files.len() >= 4);
    loadctl().arg("validate").args(&files).assert().success();
}

#[test]
fn run_refuses_an_invalid_scenario_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "[load]\nusers = 0\n");
    loadctl().arg("run").arg(&file).assert().code(2);
    let good = write(dir.path(), "good.toml", BASE);
    loadctl()
        .args(["run", "--threshold", "http_req_duration: p(95) <"])
        .arg(&good)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--threshold"));
    loadctl()
        .args(["run", "--users", "x"])
        .arg(&good)
        .assert()
        .code(2);
}

/// `loadctl ARGS FILE` with `TEST_API_TOKEN` set and `TEST_API_TOKN` not.
fn with_a_close_variable_set(args: &[&str], file: &std::path::Path) -> std::process::Output {
    loadctl()
        .args(args)
        .arg(file)
        .env("TEST_API_TOKEN", "t0p-s3cret")
        .env_remove("TEST_API_TOKN")
        .output()
        .unwrap()
}

#[test]
fn validate_warns_about_an_unset_environment_variable_and_run_refuses_it() {
    let server = crate::server::TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let step = "[[flow.step]]\npath = \"/{{ env.TEST_API_TOKN }}\"";
    let text = crate::scenario(&server.url(), "iterations = 1", step, "");
    let file = write(dir.path(), "env.toml", &text);
    // Where the template's value starts.
    let before = &text[..text.find("\"/{{").unwrap()];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').unwrap();
    let at = format!("{}:{line}:{column}", file.display());
    let problem = "path: environment variable `TEST_API_TOKN` is not set";
    let suggestion = "did you mean `env.TEST_API_TOKEN`?";

    // `validate`: a warning with the close name suggested; the file is valid.
    let out = with_a_close_variable_set(&["validate"], &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("{at}: warning: {problem}, so a run would refuse it; {suggestion}")
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));
    let out = with_a_close_variable_set(&["validate", "--format", "json"], &file);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warning = &report["files"][0]["problems"][0];
    assert_eq!(warning["severity"], "warning");
    assert_eq!(
        (warning["line"].as_u64(), warning["column"].as_u64()),
        (Some(line as u64), Some(column as u64))
    );

    // `run`: the same problem is an error, and nothing is sent.
    let out = with_a_close_variable_set(&["run", "-q"], &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let expected = format!("{at}: error: {problem}; {suggestion}");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("t0p-s3cret"), "{stderr}");
    assert_eq!(server.count(), 0);

    // Once it is set, the run goes ahead and the value reaches the request.
    loadctl()
        .args(["run", "-q"])
        .arg(&file)
        .env("TEST_API_TOKN", "word")
        .assert()
        .success();
    assert_eq!(server.paths(), ["/word"]);
}

/// Each case: a step whose template or method fails every request at run
/// time, with `@` where the error must point, and the message. Earlier in
/// the file: a feeder `accounts` (columns `user,password`) and a step that
/// extracts `first_id`.
const RUN_TIME_FAILURES: &[(&str, &str)] = &[
    (
        "path = @\"/api/items/{{ first_id | upperr }}\"",
        "path: unknown filter `upperr`; did you mean `upper`?",
    ),
    (
        "path = @\"/api/items?page={{ random(1) }}\"",
        "path: `random(1)`: missing argument; call it as random(low, high)",
    ),
    (
        "path = @\"/api/items?page={{ randon(1, 10) }}\"",
        "path: unknown function `randon`; did you mean `random`? functions: random, uuid, timestamp, timestamp_ms, ",
    ),
    (
        "path = \"/login\"\n  headers = { \"X-User\" = @\"{{ accounts.usr }}\" }",
        "step headers: data `accounts` has no column `usr`; did you mean `accounts.user`?",
    ),
    (
        "method = @\"GTE\"\n  path = \"/\"",
        "`GTE` is not an HTTP method; did you mean `GET`?",
    ),
    (
        "path = @\"/a b\"",
        "path `/a b` is not a valid URL path",
    ),
];

#[test]
fn templates_and_methods_that_fail_every_request_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "accounts.csv", "user,password\nalice,pw\n");
    let preamble = "[target]\nbase_url = \"demo\"\n[load]\nusers = 1\nduration = \"1s\"\n\
                    [[data]]\nname = \"accounts\"\nfile = \"accounts.csv\"\n\
                    [[flow]]\n  [[flow.step]]\n  path = \"/api/items\"\n  \
                    extract = { first_id = { json = \"/items/0/id\" } }\n  [[flow.step]]\n  ";
    for (i, (step, message)) in RUN_TIME_FAILURES.iter().enumerate() {
        let (text, line, column) = location(&format!("{preamble}{step}\n"));
        let file = write(dir.path(), &format!("run-time{i}.toml"), &text);
        let out = loadctl().arg("validate").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {stderr}");
        let expected = format!("{}:{line}:{column}: error: {message}", file.display());
        assert!(
            stderr.lines().any(|l| l.starts_with(&expected)),
            "case {i}: expected `{expected}` in:\n{stderr}"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "case {i}: one problem:\n{stderr}"
        );
    }
    // Any case is fine: `get` is sent as GET.
    let fixed = format!("{preamble}method = \"get\"\n  path = \"/api/items/{{{{ first_id }}}}\"\n");
    let file = write(dir.path(), "lower-case.toml", &fixed);
    loadctl().arg("validate").arg(&file).assert().success();
}

#[test]
fn zero_think_time_is_no_pause() {
    let dir = tempfile::tempdir().unwrap();
    for think in ["0s", "0s..0s", "0s..10ms"] {
        let text = BASE.replace("[[flow]]", &format!("[[flow]]\nthink_time = \"{think}\""));
        let file = write(dir.path(), "think.toml", &text);
        loadctl().arg("validate").arg(&file).assert().success();
    }
    // Elsewhere a duration must still be more than zero.
    let text = BASE.replace("duration = \"1s\"", "duration = \"0s\"");
    let file = write(dir.path(), "zero.toml", &text);
    loadctl()
        .arg("validate")
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("must be more than zero"));
}

/// `count` lines of `line_len` bytes that each set the top-level key
/// `name`, which [`BASE`] then sets once more: `count` duplicates.
fn duplicated_keys(count: usize, line_len: usize) -> String {
    let value = "x".repeat(line_len - "name = \"\"\n".len());
    let mut text = format!("name = \"{value}\"\n").repeat(count);
    text.push_str(BASE);
    text
}

#[test]
fn a_file_with_a_problem_on_every_line_lists_fifty_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // 50,000 duplicated keys in 9.5 MB, under the limit.
    let file = write(dir.path(), "dup.toml", &duplicated_keys(50_000, 190));
    let out = loadctl().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 51, "{}", &stderr[..stderr.len().min(2000)]);
    // Line 1 sets `name` first; each later `name` is a duplicate.
    let first = format!("{}:2:1: error: TOML syntax: duplicate key", file.display());
    assert_eq!(lines[0], first);
    assert_eq!(
        lines[50],
        format!(
            "{}: error: … and 49,950 more problems (only the first 50 are shown)",
            file.display()
        )
    );
    let out = loadctl()
        .args(["validate", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["files"][0]["problems"].as_array().unwrap().len(), 51);
    assert_eq!(report["files"][0]["more_problems"], 49_950);
}

#[test]
fn a_file_over_the_size_limit_is_refused_by_validate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    // 50,000 duplicated keys in 50 MB.
    let file = write(dir.path(), "huge.toml", &duplicated_keys(50_000, 1000));
    let refusal = format!(
        "{}: error: the scenario is 50,000,109 bytes (47.7 MiB), over the limit of 10 MiB (10,485,760 bytes) for a scenario\n",
        file.display()
    );
    for command in ["validate", "run"] {
        let out = loadctl().arg(command).arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), refusal, "{command}");
    }
}

#[test]
fn a_runaway_template_is_a_validate_error_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (body, message)) in [
        (
            "{% for i in range(40) %}{{ 'x' * 10000000 }}{% endfor %}",
            "rendered more than 16 MiB",
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "ran more than 100000 template instructions",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let text = format!("{BASE}  method = \"POST\"\n  body = @\"{body}\"\n");
        let (text, line, column) = location(&text);
        let file = write(dir.path(), &format!("runaway{i}.toml"), &text);
        let out = loadctl().arg("validate").arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = format!("{}:{line}:{column}: error: ", file.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&expected) && l.contains(message)),
            "expected `{expected}…{message}` in:\n{stderr}"
        );
    }
}
