//! The scenario reference, written from the schema: the generated part of
//! `docs/scenario.md`, so the reference says what the schema says.
//!
//! [`tables`] walks the schema into the tables of a scenario file, with
//! their keys; the drift tests and [`markdown`] both read that walk.

use std::fmt::Write as _;

use serde_json::Value;

/// The order a scenario file is usually written in: the top level's keys,
/// and so the tables they hold, are listed in it (a key missing here comes
/// last). Other keys are in alphabetical order, as the schema has them.
const USUAL_ORDER: [&str; 9] = [
    "name",
    "target",
    "load",
    "vars",
    "data",
    "flow",
    "secrets",
    "thresholds",
    "distribution",
];

/// One table of a scenario file, as the schema describes it.
#[derive(Debug)]
pub struct Table<'s> {
    /// Where the table sits, as keys joined by `.`: `""` for the top
    /// level, `[]` after a key that holds an array of tables, `.*` for any
    /// key of a free-form table (`flow[].step[].extract.*`).
    pub path: String,
    pub description: &'s str,
    pub keys: Vec<Key<'s>>,
    /// Whether the table has alternative forms, each with one of its keys
    /// (`extract.NAME` is `{ json = … }` or `{ header = … }`).
    pub alternatives: bool,
}

/// One key of a [`Table`].
#[derive(Debug)]
pub struct Key<'s> {
    /// The key; a pattern of keys shows as its title (`step:NAME`).
    pub name: String,
    /// The key's own schema: its description, default and examples.
    pub schema: &'s Value,
    pub required: bool,
    /// The path of the table this key holds, when it holds one.
    pub table: Option<String>,
}

/// Every table of a scenario file, the top level first, each followed by
/// the tables its keys hold.
pub fn tables(root: &Value) -> Vec<Table<'_>> {
    let mut out = Vec::new();
    walk(root, String::new(), description(root), &[root], &mut out);
    out
}

fn walk<'s>(
    root: &'s Value,
    path: String,
    description: &'s str,
    forms: &[&'s Value],
    out: &mut Vec<Table<'s>>,
) {
    let mut keys: Vec<Key<'s>> = Vec::new();
    let mut nested = Vec::new();
    for form in forms {
        let required = |name: &str| {
            form.get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|k| k == name))
        };
        let named = form.get("properties").and_then(Value::as_object);
        let patterns = form.get("patternProperties").and_then(Value::as_object);
        let entries = named.into_iter().flatten().map(|(k, s)| (k.clone(), s));
        let pattern_entries = patterns.into_iter().flatten().map(|(pattern, s)| {
            let title = s.get("title").and_then(Value::as_str);
            (title.unwrap_or(pattern).to_string(), s)
        });
        for (name, schema) in entries.chain(pattern_entries) {
            if keys.iter().any(|k| k.name == name) {
                continue;
            }
            let table = table_forms(root, schema).map(|held| {
                let key_path = match path.as_str() {
                    "" => format!("{name}{}", held.suffix),
                    _ => format!("{path}.{name}{}", held.suffix),
                };
                nested.push((key_path.clone(), held));
                key_path
            });
            keys.push(Key {
                required: required(&name),
                name,
                schema,
                table,
            });
        }
    }
    if path.is_empty() {
        let place = |name: &str| USUAL_ORDER.iter().position(|k| *k == name);
        keys.sort_by_key(|k| place(&k.name).unwrap_or(USUAL_ORDER.len()));
        nested.sort_by_key(|(path, _)| place(path.trim_end_matches("[]")));
    }
    out.push(Table {
        path,
        description,
        keys,
        alternatives: forms.len() > 1,
    });
    for (path, held) in nested {
        walk(root, path, held.description, &held.forms, out);
    }
}

/// The table (or tables) a key holds.
struct Held<'s> {
    /// `[]` for an array of tables, `.*` for a table of tables.
    suffix: String,
    description: &'s str,
    /// The table's forms: one, or one per alternative.
    forms: Vec<&'s Value>,
}

/// What `schema` holds, if it holds a table: a table itself, one or an
/// array of them, alternatives, or a table of them.
fn table_forms<'s>(root: &'s Value, schema: &'s Value) -> Option<Held<'s>> {
    let s = referenced(root, schema);
    if s.get("properties").is_some() || s.get("patternProperties").is_some() {
        return Some(Held {
            suffix: String::new(),
            description: description(s),
            forms: vec![s],
        });
    }
    if let Some(items) = s.get("items") {
        let held = table_forms(root, items)?;
        return Some(Held {
            suffix: format!("[]{}", held.suffix),
            ..held
        });
    }
    if let Some(values) = s.get("additionalProperties").filter(|v| v.is_object()) {
        let held = table_forms(root, values)?;
        return Some(Held {
            suffix: format!(".*{}", held.suffix),
            ..held
        });
    }
    let branches = s.get("anyOf").and_then(Value::as_array)?;
    let mut suffix = String::new();
    let mut forms: Vec<&Value> = Vec::new();
    let mut first_description = "";
    for branch in branches {
        let held = table_forms(root, branch)?;
        // One table or an array of them: the array is the usual form.
        if held.suffix.len() > suffix.len() {
            suffix = held.suffix;
        }
        if first_description.is_empty() {
            first_description = held.description;
        }
        for form in held.forms {
            if !forms.iter().any(|f| std::ptr::eq(*f, form)) {
                forms.push(form);
            }
        }
    }
    // A definition's alternatives (`Extract`) have its meaning; a key's
    // "one or an array" has its table's.
    let own = description(s);
    Some(Held {
        suffix,
        description: if std::ptr::eq(s, schema) || own.is_empty() {
            first_description
        } else {
            own
        },
        forms,
    })
}

/// The schema `schema` stands for: the definition it refers to (through
/// `$ref`, or draft-07's `allOf: [{ $ref }]` that carries a description
/// beside it), or itself.
pub fn referenced<'s>(root: &'s Value, schema: &'s Value) -> &'s Value {
    if let Some(pointer) = schema.get("$ref").and_then(Value::as_str) {
        let found = pointer
            .strip_prefix('#')
            .and_then(|p| root.pointer(p))
            .unwrap_or(schema);
        return if std::ptr::eq(found, schema) {
            schema
        } else {
            referenced(root, found)
        };
    }
    match schema.get("allOf").and_then(Value::as_array) {
        Some(only) if only.len() == 1 => referenced(root, &only[0]),
        _ => schema,
    }
}

fn description(schema: &Value) -> &str {
    schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
}

// ------------------------------------------------------------ Markdown

/// The reference in Markdown: the value types, then every table with its
/// keys, each with its type, default, meaning and examples.
pub fn markdown(root: &Value) -> String {
    let mut out = String::new();
    out.push_str("### Value types\n\n");
    let definitions = root.get("definitions").and_then(Value::as_object);
    let mut types: Vec<(&str, &str)> = definitions
        .into_iter()
        .flatten()
        .filter_map(|(_, d)| Some((d.get("title")?.as_str()?, description(d))))
        .collect();
    types.sort();
    for (title, meaning) in types {
        let _ = writeln!(out, "- **{title}**: {}", one_line(meaning));
    }
    for table in tables(root) {
        match table.path.as_str() {
            "" => out.push_str("\n### The top level\n\n"),
            path => {
                let _ = writeln!(out, "\n### `{}`\n", heading(path));
            }
        }
        let _ = writeln!(out, "{}\n", one_line(table.description));
        if table.alternatives {
            out.push_str("It takes exactly one of these keys.\n\n");
        }
        for key in &table.keys {
            key_entry(root, key, &mut out);
        }
    }
    out
}

/// A table's path as a TOML table header: `[[flow.step]]`,
/// `[flow.step.expect]`, `[flow.step.extract.NAME]`.
pub fn heading(path: &str) -> String {
    let name = path.replace("[]", "").replace('*', "NAME");
    if path.ends_with("[]") {
        format!("[[{name}]]")
    } else {
        format!("[{name}]")
    }
}

fn key_entry(root: &Value, key: &Key, out: &mut String) {
    let s = key.schema;
    let _ = write!(out, "- **`{}`**: {}", key.name, type_name(root, s));
    if key.required {
        out.push_str(", required");
    } else if let Some(default) = s.get("default") {
        let _ = write!(out, ", default `{}`", toml_inline(default));
    } else if let Some(default) = s.get("x-default").and_then(Value::as_str) {
        let _ = write!(out, ", default: {default}");
    }
    out.push('.');
    if let Some(table) = &key.table {
        let _ = write!(out, " See `{}`.", heading(table));
    }
    let meaning = one_line(description(s));
    if !meaning.is_empty() {
        let _ = write!(out, " {meaning}");
    }
    let examples = s.get("examples").and_then(Value::as_array);
    let examples: Vec<String> = examples
        .into_iter()
        .flatten()
        .map(|e| format!("`{} = {}`", toml_key(&key.name), toml_inline(e)))
        .collect();
    if !examples.is_empty() {
        let label = if examples.len() == 1 {
            "Example"
        } else {
            "Examples"
        };
        let _ = write!(out, " {label}: {}.", examples.join(", "));
    }
    out.push('\n');
    for (value, meaning) in choices(referenced(root, s)) {
        let _ = writeln!(out, "  - `{}`: {}", toml_inline(value), one_line(meaning));
    }
}

/// A schema's type in words: `duration`, `integer ≥ 1`, `table or array
/// of tables`, `"closed" or "open"`.
pub fn type_name(root: &Value, schema: &Value) -> String {
    let s = referenced(root, schema);
    if let Some(title) = s.get("title").and_then(Value::as_str) {
        if !std::ptr::eq(s, schema) || schema.get("properties").is_some() {
            return title.to_string();
        }
    }
    if s.get("properties").is_some() {
        return "table".to_string();
    }
    if let (Some(items), Some(single)) = (s.get("items"), s.get("then")) {
        let (item, single) = (type_name(root, items), type_name(root, single));
        return format!("array of {} (or one {single})", plural(&item));
    }
    let values = choices(s);
    if !values.is_empty() {
        let shown: Vec<String> = values
            .iter()
            .map(|(v, _)| format!("`{}`", toml_inline(v)))
            .collect();
        return shown.join(" or ");
    }
    if let Some(branches) = s.get("anyOf").and_then(Value::as_array) {
        let mut names: Vec<String> = Vec::new();
        for name in branches.iter().map(|b| type_name(root, b)) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        return names.join(" or ");
    }
    let bound = |word: &str| -> String {
        let num = |k: &str| s.get(k).and_then(Value::as_f64);
        let mut text = word.to_string();
        if let Some(n) = num("minimum") {
            let _ = write!(text, " ≥ {n}");
        }
        if let Some(n) = num("exclusiveMinimum") {
            let _ = write!(text, " > {n}");
        }
        if let Some(n) = num("maximum") {
            let _ = write!(text, " ≤ {n}");
        }
        text
    };
    match s.get("type") {
        Some(Value::String(t)) => match t.as_str() {
            "integer" => bound("integer"),
            "number" => bound("number"),
            "array" => {
                let items = s
                    .get("items")
                    .map_or("value".into(), |i| type_name(root, i));
                format!("array of {}", plural(&items))
            }
            "object" => match s.get("additionalProperties") {
                Some(Value::Object(_)) => {
                    let values = type_name(root, &s["additionalProperties"]);
                    format!("table of {}", plural(&values))
                }
                _ => "table of any values".to_string(),
            },
            other => other.to_string(),
        },
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            names.join(" or ").replace("object", "table")
        }
        _ => "any value".to_string(),
    }
}

/// The values a choice allows, each with its meaning; none when `s` (a
/// [`referenced`] schema) is not a choice.
pub fn choices(s: &Value) -> Vec<(&Value, &str)> {
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return values.iter().map(|v| (v, "")).collect();
    }
    let Some(branches) = s.get("oneOf").and_then(Value::as_array) else {
        return Vec::new();
    };
    branches
        .iter()
        .map(|b| b.get("const").map(|v| (v, description(b))))
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

fn plural(noun: &str) -> String {
    if noun.contains(' ') {
        format!("{noun} values")
    } else if noun.ends_with('s') {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    }
}

/// A doc comment's lines as one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A value as TOML writes it inline: `"10s"`, `[200, 304]`,
/// `{ a = 1, b = 2 }`.
pub fn toml_inline(value: &Value) -> String {
    match value {
        Value::String(s) => toml::Value::String(s.clone()).to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(entries) if entries.is_empty() => "{}".to_string(),
        Value::Object(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_inline(v)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
        other => other.to_string(),
    }
}

/// A key as TOML writes it: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        toml::Value::String(key.to_string()).to_string()
    }
}
