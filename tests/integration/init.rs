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
