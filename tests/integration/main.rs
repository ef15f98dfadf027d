//! Integration tests: the built `loadctl` binary against in-process test
//! servers on 127.0.0.1 (port 0) and the built-in demo target.

mod cli_manners;
mod distributed;
mod docs;
mod examples;
mod faults;
mod handle;
mod init;
mod man;
mod mcp;
mod mcp_target;
mod patterns;
mod properties;
mod reports;
mod run;
mod schema;
mod series;
mod server;
mod validate;
mod wire;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The binary, with any `LOADCTL_*` settings of the developer's shell
/// removed so they cannot change what a test means.
pub fn loadctl() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("loadctl").unwrap();
    for (key, _) in std::env::vars() {
        if key.starts_with("LOADCTL_") {
            cmd.env_remove(key);
        }
    }
    // Diagnostics the developer asked for would land in stderr assertions.
    cmd.env_remove("RUST_LOG");
    cmd.timeout(Duration::from_secs(60));
    cmd
}

/// `loadctl run -q FILE --out DIR`, ready for its exit-code assertion.
pub fn run_quiet(file: &Path, out: &Path) -> assert_cmd::assert::Assert {
    loadctl()
        .args(["run", "-q"])
        .arg(file)
        .arg("--out")
        .arg(out)
        .assert()
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json was written");
    serde_json::from_str(&text).unwrap()
}

/// A scenario with one flow against `base_url`; `steps` and `extra` are
/// appended as TOML.
pub fn scenario(base_url: &str, load: &str, steps: &str, extra: &str) -> String {
    format!(
        "name = \"test\"\n[target]\nbase_url = \"{base_url}\"\ntimeout = \"2s\"\n[load]\n{load}\n[[flow]]\nname = \"f\"\n{steps}\n{extra}\n"
    )
}

/// The repository's own folder, for scenarios/.
/// A test server, a scratch folder, and in it `s.toml`: a scenario
/// against the server (see [`scenario`]). Keep the folder while it is used.
pub fn served_scenario(
    load: &str,
    steps: &str,
    extra: &str,
) -> (server::TestServer, tempfile::TempDir, PathBuf) {
    let server = server::TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        &scenario(&server.url(), load, steps, extra),
    );
    (server, dir, file)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts `loadctl run -q [EXTRA] FILE --out OUT` in the background.
pub fn spawn_run(file: &Path, out: &Path, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("loadctl"))
        .args(["run", "-q"])
        .args(extra)
        .arg(file)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn signal(child: &std::process::Child, name: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits for the child, failing the test if it takes longer than `limit`.
pub fn wait_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "the run did not stop within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the run is sending requests (so its signal handlers are
/// installed), rather than guessing with a fixed sleep.
pub fn wait_for_traffic(server: &server::TestServer) {
    let started = Instant::now();
    while server.count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run never sent a request"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A little more, so the run is well under way.
    std::thread::sleep(Duration::from_millis(300));
}

/// The run information of a summary a test builds by hand from a
/// collector, with no run behind it.
pub fn run_info(elapsed_s: f64) -> loadctl::metrics::summary::RunInfo {
    loadctl::metrics::summary::RunInfo {
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
        elapsed_s,
        interrupted: false,
    }
}
