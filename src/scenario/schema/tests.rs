//! The schema against the reader: the same tables with the same keys, a
//! file made of every key's example accepted by both, an unknown key in
//! any table refused by both.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::reference::{tables, Table};
use super::*;
use crate::diag::Diagnostics;
use crate::scenario::parse;
use crate::scenario::read::keys_asked;

/// Each table of the schema and the context its reader reports problems
/// in. An `extract` entry's context names the entry (`extract.id`).
const READERS: &[(&str, &str)] = &[
    ("", "the top level"),
    ("target", "[target]"),
    ("load", "[load]"),
    ("load.stages[]", "a stage"),
    ("data[]", "[[data]]"),
    ("flow[]", "[[flow]]"),
    ("flow[].mcp", "the flow's `mcp`"),
    ("flow[].step[]", "[[flow.step]]"),
    ("flow[].step[].expect", "expect"),
    ("flow[].step[].extract.*", "extract."),
    ("distribution", "[distribution]"),
];

/// Tables whose keys are names the reader takes as they come, for `plan`
/// to judge (threshold metrics); the integration tests check those.
const FREE_KEYS: &[&str] = &["thresholds"];

fn schema() -> Value {
    json_schema()
}

/// A scenario holding every key of every table, each set to its first
/// example; a table of tables (`extract`) holds one entry per form.
fn every_key(root: &Value) -> Value {
    let tables = tables(root);
    let mut built: BTreeMap<String, Value> = BTreeMap::new();
    // Children come after their parents: build from the end.
    for table in tables.iter().rev() {
        let mut object = serde_json::Map::new();
        for key in &table.keys {
            let value = match &key.table {
                Some(path) => {
                    let at = key_path(&table.path, &key.name);
                    let suffix = &path[at.len()..];
                    let held = &tables[tables.iter().position(|t| &t.path == path).unwrap()];
                    wrap(built.remove(path).unwrap(), suffix, held)
                }
                None => key.schema["examples"][0].clone(),
            };
            assert!(!value.is_null(), "`{}` has no example", key.name);
            object.insert(key.name.clone(), value);
        }
        built.insert(table.path.clone(), Value::Object(object));
    }
    built.remove("").unwrap()
}

fn key_path(table: &str, key: &str) -> String {
    match table {
        "" => key.to_string(),
        _ => format!("{table}.{key}"),
    }
}

/// A table as the key that holds it holds it: in an array (`[]`), or as
/// entries of a table (`.*`), one per form when it has several.
fn wrap(table: Value, suffix: &str, held: &Table) -> Value {
    match suffix {
        "" => table,
        "[]" => json!([table]),
        ".*" if held.alternatives => {
            let entries = table
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (format!("from_{k}"), json!({ k: v })));
            Value::Object(entries.collect())
        }
        ".*" => json!({ "entry": table }),
        other => panic!("no instance for a table held as `{other}`"),
    }
}

fn toml_text(instance: &Value) -> String {
    toml::to_string(instance).unwrap()
}

/// The problems the reader finds in `text`, and the keys each of its
/// table readers asked for, by context.
fn read(text: &str) -> (Vec<String>, BTreeMap<String, BTreeSet<&'static str>>) {
    keys_asked::take();
    let mut diags = Diagnostics::default();
    parse(text, &mut diags);
    let problems = diags.items().iter().map(|d| d.message.clone()).collect();
    let mut asked: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for (context, keys) in keys_asked::take() {
        let context = match context.strip_prefix("extract.") {
            Some(_) => "extract.".to_string(),
            None => context,
        };
        asked.entry(context).or_default().extend(keys);
    }
    (problems, asked)
}

/// The problems the schema finds in `instance`, or none.
fn schema_problems(root: &Value, instance: &Value) -> Option<String> {
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("scenario.schema.json", root.clone())
        .unwrap();
    let index = compiler
        .compile("scenario.schema.json", &mut schemas)
        .unwrap_or_else(|e| panic!("the schema does not compile: {e:#}"));
    schemas
        .validate(instance, index)
        .err()
        .map(|e| format!("{e}"))
}

#[test]
fn every_table_refuses_unknown_keys() {
    let root = schema();
    assert_eq!(root["$schema"], "http://json-schema.org/draft-07/schema#");
    let definitions = root["definitions"].as_object().unwrap();
    let mut checked = 0;
    for (name, s) in definitions.iter().chain([(&"root".to_string(), &root)]) {
        if s.get("properties").is_some() {
            checked += 1;
            assert_eq!(s["additionalProperties"], false, "{name}");
        }
    }
    assert!(checked >= 11, "{checked}");
}

#[test]
fn every_key_has_a_meaning_and_every_value_an_example() {
    let root = schema();
    for table in tables(&root) {
        assert!(!table.description.is_empty(), "`{}`", table.path);
        for key in &table.keys {
            let at = key_path(&table.path, &key.name);
            if key.table.is_none() {
                let description = key.schema.get("description").and_then(Value::as_str);
                assert!(description.is_some_and(|d| !d.is_empty()), "`{at}`");
                let examples = key.schema.get("examples").and_then(Value::as_array);
                assert!(examples.is_some_and(|e| !e.is_empty()), "`{at}`");
            }
            let defaults = ["default", "x-default"].map(|d| key.schema.get(d).is_some());
            assert!(!(defaults[0] && defaults[1]), "`{at}` has two defaults");
        }
    }
}

#[test]
fn each_table_has_exactly_the_keys_its_reader_asks_for() {
    let root = schema();
    let (problems, asked) = read(&toml_text(&every_key(&root)));
    assert!(problems.is_empty(), "{problems:#?}");
    let mut seen_contexts = BTreeSet::new();
    for table in tables(&root) {
        if FREE_KEYS.contains(&table.path.as_str()) {
            continue;
        }
        let Some((_, context)) = READERS.iter().find(|(path, _)| *path == table.path) else {
            panic!("the schema's table `{}` is not in READERS", table.path);
        };
        seen_contexts.insert(context.to_string());
        let in_schema: BTreeSet<&str> = table.keys.iter().map(|k| k.name.as_str()).collect();
        let in_reader: BTreeSet<&str> = asked
            .get(*context)
            .unwrap_or_else(|| panic!("no reader read `{}`", table.path))
            .clone();
        assert_eq!(in_schema, in_reader, "the keys of `{}`", table.path);
    }
    let unmatched: Vec<&String> = asked
        .keys()
        .filter(|c| !seen_contexts.contains(*c))
        .collect();
    assert!(
        unmatched.is_empty(),
        "the reader reads tables the schema lacks: {unmatched:?}"
    );
}

#[test]
fn a_file_with_every_key_passes_the_schema() {
    let root = schema();
    let instance = every_key(&root);
    assert_eq!(schema_problems(&root, &instance), None);
    // And its TOML form reads back as the same document.
    let back: Value = toml::from_str(&toml_text(&instance)).unwrap();
    assert_eq!(back, instance);
}

/// The instance with `extra` set in the first table at `path`.
fn with_key(instance: &mut Value, path: &str, extra: &str) {
    let mut at = instance;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, array) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        at = match name {
            "*" => at.as_object_mut().unwrap().values_mut().next().unwrap(),
            _ => &mut at[name],
        };
        if array {
            at = &mut at[0];
        }
    }
    at.as_object_mut()
        .unwrap()
        .insert(extra.to_string(), json!(1));
}

#[test]
fn an_unknown_key_in_any_table_is_refused_by_the_schema_and_the_reader() {
    let root = schema();
    let full = every_key(&root);
    for table in tables(&root) {
        let mut instance = full.clone();
        with_key(&mut instance, &table.path, "no_such_key");
        let refused = schema_problems(&root, &instance);
        assert!(refused.is_some(), "the schema took it in `{}`", table.path);
        if FREE_KEYS.contains(&table.path.as_str()) {
            continue;
        }
        let (problems, _) = read(&toml_text(&instance));
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("unknown key `no_such_key`")),
            "the reader took it in `{}`: {problems:#?}",
            table.path
        );
    }
}

#[test]
fn a_wrong_type_is_refused() {
    let root = schema();
    let mut instance = every_key(&root);
    instance["load"]["users"] = json!("many");
    assert!(schema_problems(&root, &instance).is_some());
    let mut instance = every_key(&root);
    instance["flow"][0]["step"][0]["expect"]["status"] = json!([99]);
    assert!(schema_problems(&root, &instance).is_some());
}

#[test]
fn a_single_table_passes_where_an_array_of_tables_is_usual() {
    // The reader takes `[flow]` for `[[flow]]`, and `status = 200` for a list.
    let root = schema();
    let mut instance = every_key(&root);
    let flow = instance["flow"][0].take();
    instance["flow"] = flow;
    instance["flow"]["step"][0]["expect"]["status"] = json!("2xx");
    instance["secrets"] = json!("token");
    assert_eq!(schema_problems(&root, &instance), None);
    let (problems, _) = read(&toml_text(&instance));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn status_text_is_what_plan_parses() {
    let root = schema();
    let status = |s: Value| {
        let mut instance = every_key(&root);
        instance["flow"][0]["step"][0]["expect"]["status"] = s;
        schema_problems(&root, &instance).is_none()
    };
    for ok in ["404", "2xx", "5XX", "200-204", " 200 - 299 "] {
        assert!(status(json!(ok)), "{ok}");
    }
    for bad in ["600", "2xxx", "200..299", "ok", "6xx"] {
        assert!(!status(json!(bad)), "{bad}");
    }
    assert!(status(json!(599)) && !status(json!(600)) && !status(json!(99)));
}

#[test]
fn the_reference_shows_each_table_and_key() {
    let root = schema();
    let text = reference::markdown(&root);
    for heading in [
        "### The top level",
        "### `[target]`",
        "### `[[load.stages]]`",
        "### `[[flow.step]]`",
        "### `[flow.step.extract.NAME]`",
        "### `[thresholds]`",
        "### `[distribution]`",
    ] {
        assert!(text.contains(heading), "{heading}");
    }
    assert!(
        text.contains("- **`timeout`**: duration, default `\"10s\"`. Per request, from sending it")
    );
    assert!(text.contains("- **`\"step:NAME\"`**") || text.contains("- **`step:NAME`**"));
    assert!(text.contains("  - `\"per-iteration\"`: A new session every iteration."));
}
