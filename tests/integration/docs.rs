//! The TOML examples in README.md and docs/ work as printed: a block that
//! is a whole scenario (it has a `[[flow]]`) runs for two seconds against
//! the built-in demo target with no failed request; a fragment (a `[load]`
//! example, say) is checked by `validate` inside a minimal scenario. Each
//! passes the scenario JSON Schema too. A block that cannot run must say
//! why on a line starting `# not runnable:` (it is still held to the
//! schema); one that is not a scenario at all (an editor's configuration)
//! says so on a line starting `# not a scenario:`.

use std::path::Path;

use serde_json::Value;

use crate::schema::schema_problems;
use crate::{loadctl, repo, summary, write};

/// `loadctl run -q EXTRA FILE --out OUT`, which must exit 0 having sent
/// requests, none of which failed; its summary. `place` names the scenario
/// in messages.
pub fn run_without_failures(file: &Path, out: &Path, extra: &[&str], place: &str) -> Value {
    let run = loadctl()
        .args(["run", "-q"])
        .args(extra)
        .arg(file)
        .arg("--out")
        .arg(out)
        .env("API_TOKEN", "t0ken")
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{place}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let s = summary(out);
    assert!(s["totals"]["requests"].as_u64().unwrap() > 0, "{place}");
    assert_eq!(s["totals"]["failures"], 0, "{place}: {}", s["failures"]);
    s
}

/// Every ```toml block of a Markdown file, with the line it starts on.
fn toml_blocks(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, fence) if fence.starts_with("```toml") => current = Some((i + 1, String::new())),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some((_, block)), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn documents() -> Vec<std::path::PathBuf> {
    let mut docs = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs.sort();
    docs
}

#[test]
fn every_toml_example_in_the_docs_runs_or_validates() {
    let dir = tempfile::tempdir().unwrap();
    // What the examples refer to: a data file, a CA file, a token.
    write(
        dir.path(),
        "accounts.csv",
        "user,password\nann,pw1\nbob,pw2\n",
    );
    write(
        dir.path(),
        "ca.pem",
        "not used: the demo target is plain HTTP\n",
    );
    let mut checked = 0;
    for doc in documents() {
        for (line, block) in toml_blocks(&doc) {
            let place = format!("{}:{line}", doc.display());
            if block.contains("# not a scenario:") {
                continue;
            }
            let scenario = if block.contains("[[flow]]") {
                block.clone()
            } else {
                format!(
                    "[target]\nbase_url = \"demo\"\n{block}\n[[flow]]\n  [[flow.step]]\n  path = \"/\"\n"
                )
            };
            if let Some(problems) = schema_problems(&scenario) {
                panic!("{place}: the JSON Schema refuses it: {problems}");
            }
            if block.contains("# not runnable:") {
                continue;
            }
            checked += 1;
            let file = write(dir.path(), &format!("example{checked}.toml"), &scenario);
            loadctl()
                .arg("validate")
                .arg(&file)
                .env("API_TOKEN", "t0ken")
                .assert()
                .success();
            if !block.contains("[[flow]]") {
                continue;
            }
            let out = dir.path().join(format!("out{checked}"));
            let demo_for_2s = ["--base-url", "demo", "-d", "2s"];
            run_without_failures(&file, &out, &demo_for_2s, &place);
        }
    }
    assert!(checked >= 3, "only {checked} examples found");
}
