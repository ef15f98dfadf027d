//! The example scenarios under `scenarios/examples/` run as they are
//! against the built-in demo target, each for about a second, with no
//! failed request; together they show every load pattern, both models and
//! the features their README line promises. They run one after another
//! with a few users, so the suite stays quick and the timings stay out of
//! it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::docs::run_without_failures;
use crate::repo;

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("scenarios/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_runs_against_the_demo_without_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut patterns = BTreeSet::new();
    let mut models = BTreeSet::new();
    let mut texts = String::new();
    for (i, file) in examples().iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.starts_with("# "), "{name} opens without a comment");
        assert!(text.contains("base_url = \"demo\""), "{name}");
        let out = dir.path().join(format!("out{i}"));
        let s = run_without_failures(file, &out, &[], &name);
        // Examples stay short: a second or two, not a soak.
        let duration = s["run"]["duration_s"].as_f64().unwrap();
        assert!(duration <= 3.0, "{name} lasts {duration}s");
        patterns.insert(s["run"]["pattern"].as_str().unwrap().to_string());
        models.insert(s["run"]["model"].as_str().unwrap().to_string());
        texts.push_str(&text);
    }
    let every_pattern = [
        "burst", "constant", "ramp", "random", "spike", "stages", "wave",
    ];
    assert_eq!(patterns, every_pattern.map(String::from).into());
    assert_eq!(models, ["closed", "open"].map(String::from).into());
    for feature in [
        "mode = \"sequential\"",
        "mode = \"random\"",
        "mode = \"unique\"",
        "extract = {",
        "kind = \"mcp\"",
        "secrets = [",
        "[distribution]",
        "zones = {",
    ] {
        assert!(texts.contains(feature), "no example shows `{feature}`");
    }
}
