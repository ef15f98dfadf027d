//! The scenario files' JSON Schema (`validate --print-schema`) and the
//! scenario reference written from it (`docs/scenario.md`): every shipped
//! scenario passes the schema, the schema refuses what the reader refuses,
//! its defaults are what `plan` does, and the reference is current.
//! Regenerate the reference with
//! `LOADCTL_UPDATE_DOCS=1 cargo test --test integration scenario_reference`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loadctl::diag::Diagnostics;
use loadctl::plan::{self, Files, Inputs, Model, Overrides, Plan, SessionScope, StepKind};
use loadctl::scenario::schema::{json_schema, reference};
use loadctl::schedule::Pattern;
use serde_json::{json, Value};

use crate::{loadctl, repo, write};

/// What the schema says about a scenario's text: `None` when it passes,
/// else why not (or why the text is not TOML).
pub fn schema_problems(text: &str) -> Option<String> {
    let instance: Value = match toml::from_str(text) {
        Ok(instance) => instance,
        Err(e) => return Some(format!("not TOML: {e}")),
    };
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("loadctl.schema.json", json_schema())
        .unwrap();
    let index = compiler
        .compile("loadctl.schema.json", &mut schemas)
        .unwrap_or_else(|e| panic!("the schema does not compile: {e:#}"));
    schemas
        .validate(&instance, index)
        .err()
        .map(|e| e.to_string())
}

/// Every `.toml` file under `scenarios/`, at any depth.
pub fn shipped_scenarios() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("scenarios"), &mut files);
    files.sort();
    files
}

#[test]
fn print_schema_needs_no_file_and_prints_the_schema() {
    let out = loadctl()
        .args(["validate", "--print-schema"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json_schema());
    assert_eq!(
        printed["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );
    // With a file too, it is a usage error rather than a guess.
    loadctl()
        .args(["validate", "--print-schema", "scenarios/quickstart.toml"])
        .assert()
        .code(2);
    // Without either, a file is still needed.
    loadctl().arg("validate").assert().code(2);
}

#[test]
fn every_shipped_scenario_passes_the_schema() {
    let files = shipped_scenarios();
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if let Some(problems) = schema_problems(&text) {
            panic!("{}: {problems}", file.display());
        }
    }
}

#[test]
fn the_schema_refuses_unknown_keys_and_wrong_types() {
    let ok = "[target]\nbase_url = \"demo\"\n[load]\nusers = 2\nduration = \"1s\"\n\
              [[flow]]\n  [[flow.step]]\n  path = \"/\"\n  expect = { status = [200] }\n";
    assert_eq!(schema_problems(ok), None);
    let bad = [
        (
            "an unknown key at the top level",
            ok.replace("[target]", "nmae = \"x\"\n[target]"),
        ),
        (
            "an unknown key in a table",
            ok.replace("users = 2", "userz = 2"),
        ),
        (
            "an unknown key in a step",
            ok.replace("path = \"/\"", "path = \"/\"\n  methd = \"GET\""),
        ),
        (
            "an unknown key in an inline table",
            ok.replace("status = [200]", "status = [200], bodycontains = \"x\""),
        ),
        ("a wrong type", ok.replace("users = 2", "users = \"two\"")),
        ("a wrong type in a list", ok.replace("[200]", "[true]")),
        (
            "an unknown choice",
            ok.replace("users = 2", "users = 2\nmodel = \"opne\""),
        ),
    ];
    for (what, text) in bad {
        assert!(schema_problems(&text).is_some(), "{what} passed:\n{text}");
        // The reader (or `plan`) refuses it too.
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "bad.toml", &text);
        loadctl().arg("validate").arg(&file).assert().code(2);
    }
}

#[test]
fn threshold_keys_are_the_metrics_plan_knows() {
    let root = json_schema();
    let tables = reference::tables(&root);
    let thresholds = tables.iter().find(|t| t.path == "thresholds").unwrap();
    let steps = vec!["NAME".to_string()];
    for key in &thresholds.keys {
        let parsed = plan::threshold::parse_metric(&key.name, &steps);
        assert!(parsed.is_ok(), "{}: {parsed:?}", key.name);
    }
    assert!(schema_problems("[thresholds]\nhttp_req_durations = \"p(95) < 1s\"\n").is_some());
    assert!(plan::threshold::parse_metric("http_req_durations", &steps).is_err());
}

/// The scenario reference between these lines of `docs/scenario.md` is
/// written from the schema.
const BEGIN: &str = "<!-- BEGIN generated from the schema: LOADCTL_UPDATE_DOCS=1 cargo test --test integration scenario_reference -->\n";
const END: &str = "<!-- END generated -->\n";

#[test]
fn scenario_reference_is_current() {
    let path = repo().join("docs/scenario.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        panic!("{} lacks the generated reference's markers", path.display());
    };
    let generated = reference::markdown(&json_schema());
    let current = &text[begin + BEGIN.len()..end];
    if std::env::var_os("LOADCTL_UPDATE_DOCS").is_some() {
        let updated = format!("{}{BEGIN}\n{generated}\n{}", &text[..begin], &text[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        current.trim() == generated.trim(),
        "{} is stale; run `LOADCTL_UPDATE_DOCS=1 cargo test --test integration scenario_reference`",
        path.display()
    );
}

fn compile(text: &str, files: Files) -> Plan {
    let mut diags = Diagnostics::default();
    let scenario = loadctl::scenario::parse(text, &mut diags).expect("valid TOML");
    let inputs = Inputs {
        files,
        ..Inputs::sealed()
    };
    plan::compile(&scenario, None, &Overrides::default(), &inputs, &mut diags)
        .unwrap_or_else(|| panic!("{diags:?}\n{text}"))
}

/// A duration as the schema's defaults write it.
fn shown(d: Duration) -> Value {
    json!(format!("{}s", d.as_secs()))
}

/// What `plan` does for each key the schema gives a default, when the key
/// is left out; keyed as `TABLE.KEY`.
fn plan_defaults() -> BTreeMap<String, Value> {
    let mut seen = BTreeMap::new();
    let mut put = |key: &str, value: Value| seen.insert(key.to_string(), value);
    let rows = Files::in_memory([("rows.csv".to_string(), b"a\n1\n".to_vec())]);
    let p = compile(
        "[target]\nbase_url = \"demo\"\n[load]\nusers = 1\nduration = \"1s\"\n\
         [[data]]\nname = \"rows\"\nfile = \"rows.csv\"\n\
         [[flow]]\n  [[flow.step]]\n  path = \"/\"\n\
         [[flow]]\n  [[flow.step]]\n  kind = \"mcp\"\n  path = \"/mcp\"\n  method = \"tools/list\"\n",
        rows,
    );
    put("target.http", json!(p.target.http.as_str()));
    put("target.timeout", shown(p.target.timeout));
    put("target.connect_timeout", shown(p.target.connect_timeout));
    put("target.insecure", json!(p.target.insecure));
    put("load.graceful_stop", shown(p.load.graceful_stop));
    let mode = format!("{:?}", p.feeders[0].mode).to_lowercase();
    put("data[].mode", json!(mode));
    put("flow[].weight", json!(p.flows[0].weight));
    let kind = match p.flows[0].steps[0].kind {
        StepKind::Http(_) => "http",
        StepKind::Mcp(_) => "mcp",
    };
    put("flow[].step[].kind", json!(kind));
    let mcp = p.flows[1].mcp.as_ref().unwrap();
    let session = match mcp.scope {
        SessionScope::PerUser => "per-user",
        SessionScope::PerIteration => "per-iteration",
    };
    put("flow[].mcp.session", json!(session));
    put("flow[].mcp.close_session", json!(mcp.close));
    put("flow[].mcp.protocol_version", json!(mcp.protocol_version));
    let strategy = format!("{:?}", p.distribution.strategy).to_lowercase();
    put("distribution.strategy", json!(strategy));
    let lost = p.distribution.on_worker_lost.as_str();
    put("distribution.on_worker_lost", json!(lost));

    let load = |text: &str| -> Plan {
        let scenario = format!(
            "[target]\nbase_url = \"demo\"\n[load]\n{text}\n[[flow]]\n  [[flow.step]]\n  path = \"/\"\n"
        );
        compile(&scenario, Files::Nowhere)
    };
    let Model::Open(open) = load("rate = 1\nduration = \"1s\"").load.model else {
        panic!("a rate chooses the open model")
    };
    put("load.max_users", json!(open.max_users));
    let saturation = format!("{:?}", open.on_saturation).to_lowercase();
    put("load.on_saturation", json!(saturation));
    put("load.max_waiting", json!(open.max_waiting));
    for (key, load_keys) in [
        (
            "load.ramp_down",
            "pattern = \"ramp\"\nusers = 2\nduration = \"4s\"",
        ),
        (
            "load.spike_ramp",
            "pattern = \"spike\"\npeak = 2\nduration = \"6s\"",
        ),
        (
            "load.change_every",
            "pattern = \"random\"\nmin = 1\nmax = 2\nduration = \"1s\"",
        ),
        (
            "load.burst_length",
            "pattern = \"burst\"\nburst = 1\nevery = \"2s\"\nduration = \"4s\"",
        ),
    ] {
        let chosen = match load(load_keys).load.pattern {
            Pattern::Ramp { down, .. } => down,
            Pattern::Spike { ramp, .. } => ramp,
            Pattern::Random { every, .. } => every,
            Pattern::Burst { length, .. } => length,
            other => panic!("{other:?}"),
        };
        put(key, shown(chosen));
    }
    seen
}

#[test]
fn the_schemas_defaults_are_what_plan_does() {
    let root = json_schema();
    let mut in_schema = BTreeMap::new();
    for table in reference::tables(&root) {
        for key in &table.keys {
            if let Some(default) = key.schema.get("default") {
                let at = match table.path.as_str() {
                    "" => key.name.clone(),
                    path => format!("{path}.{}", key.name),
                };
                in_schema.insert(at, default.clone());
            }
        }
    }
    assert_eq!(in_schema, plan_defaults());
}

/// The problems `plan` finds in a scenario given as JSON.
fn plan_problems(instance: &Value) -> Vec<String> {
    let text = toml::to_string(instance).unwrap();
    let mut diags = Diagnostics::default();
    let scenario = loadctl::scenario::parse(&text, &mut diags).expect("valid TOML");
    let inputs = Inputs {
        files: Files::in_memory([("rows.csv".to_string(), b"a\n1\n".to_vec())]),
        ..Inputs::sealed()
    };
    plan::compile(&scenario, None, &Overrides::default(), &inputs, &mut diags);
    diags.items().iter().map(|d| d.message.clone()).collect()
}

/// The table at a schema path (`flow[].step[]`) in `instance`: the first
/// of each array.
fn table_at<'v>(instance: &'v mut Value, path: &str) -> &'v mut Value {
    let mut at = instance;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        at = match part.strip_suffix("[]") {
            Some(name) => &mut at[name][0],
            None => &mut at[part],
        };
    }
    at
}

#[test]
fn every_choice_the_schema_offers_is_one_plan_takes() {
    // Every table with a choice, in the open model (which reads
    // `on_saturation`), with an MCP step (which reads the flow's `mcp`).
    let base = json!({
        "target": { "base_url": "demo" },
        "load": { "rate": 1, "duration": "1s" },
        "data": [{ "name": "rows", "file": "rows.csv" }],
        "flow": [{
            "mcp": {},
            "step": [{ "kind": "mcp", "path": "/mcp", "method": "tools/list" }],
        }],
        "distribution": {},
    });
    assert_eq!(plan_problems(&base), Vec::<String>::new());
    let root = json_schema();
    let mut checked = 0;
    for table in reference::tables(&root) {
        for key in &table.keys {
            let values = reference::choices(reference::referenced(&root, key.schema));
            if values.is_empty() {
                continue;
            }
            let words = values.iter().map(|(v, _)| v.as_str().unwrap());
            for word in words.chain(["not-a-choice"]) {
                let mut instance = base.clone();
                table_at(&mut instance, &table.path)[&key.name] = json!(word);
                let quoted = format!("\"{word}\"");
                let problems = plan_problems(&instance);
                let refused = problems.iter().any(|p| p.contains(&quoted));
                let offered = word != "not-a-choice";
                assert_eq!(
                    refused, !offered,
                    "{}.{} = {quoted}: {problems:#?}",
                    table.path, key.name
                );
                checked += offered as usize;
            }
        }
    }
    assert!(checked >= 20, "{checked}");
}
