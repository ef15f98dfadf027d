//! Terminal manners of every subcommand: shell completions, `--version`,
//! the global `--quiet` and `--log-level`, colour only where it is wanted,
//! a reader that closes the pipe early, and error messages that say what
//! to do next.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{loadctl, repo, scenario, write};

const SHELLS: [&str; 5] = ["bash", "zsh", "fish", "powershell", "elvish"];

fn stdout_of(args: &[&str]) -> String {
    let out = loadctl().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A short run against the demo target, bounded by its iteration count.
fn demo_scenario(dir: &Path) -> PathBuf {
    write(
        dir,
        "s.toml",
        &scenario(
            "demo",
            "users = 2\niterations = 20",
            "[[flow.step]]\npath = \"/\"",
            "",
        ),
    )
}

#[test]
fn every_shell_gets_a_completion_script_and_bash_accepts_its_own() {
    for shell in SHELLS {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains("loadctl") && script.contains("completions"),
            "{shell}: {script}"
        );
    }
    let script = stdout_of(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "loadctl.bash", &script);
    let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(syntax.status.success(), "bash -n: {syntax:?}");
    // Sourced as the README says, it registers a completion for loadctl.
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p loadctl", path.display()))
        .output()
        .unwrap();
    let registered = String::from_utf8_lossy(&sourced.stdout);
    assert!(registered.contains("loadctl"), "{sourced:?}");
}

#[test]
fn completions_for_an_unknown_shell_list_the_known_ones() {
    let out = loadctl().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for shell in SHELLS {
        assert!(err.contains(shell), "{err}");
    }
}

#[test]
fn version_names_the_package_version_and_the_commit_of_a_checkout() {
    let version = stdout_of(&["--version"]);
    assert!(
        version.starts_with(&format!("loadctl {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // Built from this checkout (the test binary and loadctl come from the
    // same build), the commit follows; from a source package there is none.
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo())
        .output();
    if let Some(head) = head.ok().filter(|h| h.status.success()) {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert!(
            version.contains(&format!("({head} ")),
            "{version}, HEAD {head}"
        );
    }
}

#[test]
fn quiet_works_before_and_after_the_subcommand_and_leaves_only_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_scenario(dir.path());
    for (i, quiet_first) in [true, false].into_iter().enumerate() {
        let out_dir = dir.path().join(format!("out{i}"));
        let mut cmd = loadctl();
        if quiet_first {
            cmd.args(["-q", "run"]);
        } else {
            cmd.args(["run", "-q"]);
        }
        let out = cmd.arg(&file).arg("--out").arg(&out_dir).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "quiet run");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Aggregated"));
        assert!(out_dir.join("summary.json").exists());
    }
    // Without it, the files written are noted.
    let out = loadctl()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("loud"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrote"),
        "{out:?}"
    );
}

#[test]
fn log_level_and_rust_log_show_diagnostics_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_scenario(dir.path());
    let stderr = |args: &[&str], rust_log: Option<&str>| {
        let mut cmd = loadctl();
        cmd.env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let out = cmd.args(args).arg(&file).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    assert!(!stderr(&["run", "-q"], None).contains("run starting"));
    let info = stderr(&["--log-level", "info", "run", "-q"], None);
    assert!(
        info.contains("run starting") && info.contains("run finished"),
        "{info}"
    );
    let debug = stderr(&["run", "-q"], Some("loadctl=debug"));
    assert!(debug.contains("target resolved"), "{debug}");
    // The flag beats RUST_LOG.
    let flagged = stderr(&["run", "-q", "--log-level", "error"], Some("debug"));
    assert!(!flagged.contains("run starting"), "{flagged}");
    let bad = stderr(&["run", "-q"], Some("loadctl=loud"));
    assert!(bad.contains("warning: RUST_LOG=\"loadctl=loud\""), "{bad}");
}

#[test]
fn colour_only_when_allowed_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_scenario(dir.path());
    let output = |env: &[(&str, &str)]| {
        let command = |args: &[&str]| {
            let mut cmd = loadctl();
            for key in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "RUST_LOG"] {
                cmd.env_remove(key);
            }
            cmd.envs(env.iter().copied()).args(args);
            cmd
        };
        let help = command(&["--help"]).output().unwrap();
        let run = command(&["--log-level", "info", "run", "-q"])
            .arg(&file)
            .output()
            .unwrap();
        [help.stdout, run.stdout, run.stderr].concat()
    };
    let has_escape = |bytes: &[u8]| bytes.contains(&0x1b);
    // Not a terminal: no colour.
    assert!(!has_escape(&output(&[])));
    // Forced (so the test can see colour at all): help and log lines.
    assert!(has_escape(&output(&[("CLICOLOR_FORCE", "1")])));
    // NO_COLOR wins over everything.
    assert!(!has_escape(&output(&[
        ("CLICOLOR_FORCE", "1"),
        ("NO_COLOR", "1")
    ])));
}

/// Runs loadctl with a standard output whose reader is already gone, as
/// in `loadctl … | head -1` once head has exited.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    // Every command here is bounded: the run by its iteration count.
    Command::new(assert_cmd::cargo::cargo_bin("loadctl"))
        .args(args)
        .stdout(Stdio::from(writer))
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn a_closed_pipe_on_stdout_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_scenario(dir.path());
    let out_dir = dir.path().join("out");
    let file_arg = file.to_str().unwrap();
    let out_arg = out_dir.to_str().unwrap();
    // The run still writes its files and exits by its thresholds.
    let run = with_closed_stdout(&["run", "-q", file_arg, "--out", out_arg]);
    assert!(out_dir.join("summary.json").exists());
    let summary = out_dir.join("summary.json");
    let summary = summary.to_str().unwrap();
    let cases: [&[&str]; 7] = [
        &["completions", "bash"],
        &["report", summary],
        &["report", "--format", "json", summary],
        &["report", "--compare", summary, summary],
        &["validate", file_arg],
        &["init", "-o", "-"],
        &["--help"],
    ];
    for (args, out) in cases
        .iter()
        .map(|args| (*args, with_closed_stdout(args)))
        .chain([(&["run"][..], run)])
    {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("error") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn errors_say_what_to_do_next() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = loadctl().arg("run").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loadctl init"), "{err}");

    let out = loadctl()
        .arg("report")
        .arg(dir.path().join("summary.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loadctl run --out"), "{err}");

    let file = demo_scenario(dir.path());
    let blocked = write(dir.path(), "blocked", "a file where a folder should be");
    let out = loadctl()
        .args(["run", "-q"])
        .arg(&file)
        .arg("--out")
        .arg(blocked.join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("choose another with --out"), "{err}");
}
