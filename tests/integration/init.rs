//! `loadctl init`: presets that validate, flags spliced in, no clobbering.

use crate::{loadctl, write};

#[test]
fn every_preset_writes_a_valid_scenario() {
    let dir = tempfile::tempdir().unwrap();
    for preset in ["basic", "rest-api", "spike", "soak"] {
        let file = dir.path().join(format!("{preset}.toml"));
        loadctl()
            .args(["init", "--preset", preset, "-o"])
            .arg(&file)
            .assert()
            .success();
        loadctl().arg("validate").arg(&file).assert().success();
    }
}

#[test]
fn url_users_and_duration_are_spliced_in() {
    let out = loadctl()
        .args([
            "init",
            "--url",
            "http://127.0.0.1:8080/api/items?page=2",
            "--users",
            "7",
            "--duration",
            "45s",
            "-o",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("base_url = \"http://127.0.0.1:8080\""),
        "{text}"
    );
    assert!(text.contains("path = \"/api/items?page=2\""), "{text}");
    assert!(text.contains("users = 7"), "{text}");
    assert!(text.contains("duration = \"45s\""), "{text}");
    assert!(
        text.contains("# The service under test"),
        "comments survive: {text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x.toml", &text);
    loadctl().arg("validate").arg(&file).assert().success();
}

#[test]
fn existing_files_are_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "mine.toml", "keep me");
    loadctl().args(["init", "-o"]).arg(&file).assert().code(2);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    loadctl()
        .args(["init", "--force", "-o"])
        .arg(&file)
        .assert()
        .success();
    assert!(std::fs::read_to_string(&file).unwrap().contains("[load]"));
}

#[test]
fn bad_flags_are_refused() {
    loadctl()
        .args(["init", "--url", "ftp://x", "-o", "-"])
        .assert()
        .code(2);
    loadctl()
        .args(["init", "--users", "0", "-o", "-"])
        .assert()
        .code(2);
    loadctl()
        .args(["init", "--duration", "soon", "-o", "-"])
        .assert()
        .code(2);
    loadctl()
        .args(["init", "--preset", "nope", "-o", "-"])
        .assert()
        .code(2);
}

#[test]
fn every_preset_follows_its_duration_and_users_and_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for preset in ["basic", "rest-api", "spike", "soak"] {
        for duration in ["5s", "30s", "10m"] {
            for users in ["1", "2", "50"] {
                let file = dir.path().join(format!("{preset}-{duration}-{users}.toml"));
                let out = loadctl()
                    .args(["init", "--preset", preset, "--duration", duration])
                    .args(["--users", users, "-o"])
                    .arg(&file)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "init --preset {preset} --duration {duration} --users {users}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let text = std::fs::read_to_string(&file).unwrap();
                assert!(
                    text.contains(&format!("duration = \"{duration}\"")),
                    "{text}"
                );
                assert!(!text.contains("half a minute"), "{text}");
                files.push(file);
            }
        }
    }
    loadctl().arg("validate").args(&files).assert().success();
}

#[test]
fn the_spike_keeps_its_shape_at_any_duration_and_user_count() {
    let out = loadctl()
        .args([
            "init",
            "--preset",
            "spike",
            "--duration",
            "30s",
            "--users",
            "2",
        ])
        .args(["-o", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // The shipped 1m spike starts at 20s, rises for 2s and holds for 10s.
    for setting in [
        "base = 1 ",
        "peak = 2 ",
        "spike_at = \"10s\"",
        "spike_ramp = \"1s\"",
        "spike_hold = \"5s\"",
    ] {
        assert!(text.contains(setting), "{setting} in:\n{text}");
    }
}
