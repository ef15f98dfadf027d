//! The TOML walker behind [`parse`](super::parse).
//!
//! serde stops at the first error, but `validate` must report every problem,
//! so the file is parsed into toml's spanned tree and read key by key by a
//! [`TableReader`] that records type errors and, when done with a table,
//! every key nobody asked for (with a "did you mean" suggestion).

use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned as TomlSpanned;

use super::*;
use crate::diag::did_you_mean;

type Value<'i> = TomlSpanned<DeValue<'i>>;

/// Parses scenario text, adding every syntax, key or type problem to `diags`.
/// Returns `None` when the text is not valid TOML (what could be read of it
/// was still checked, but its meaning is not worth judging).
pub fn parse(text: &str, diags: &mut Diagnostics) -> Option<Scenario> {
    let (root, errors) = DeTable::parse_recoverable(text);
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        diags.error(span, format!("TOML syntax: {}", e.message().trim()));
    }
    let root_span = root.span();
    let root = root.into_inner();
    let mut r = TableReader::new(&root, root_span, "the top level", diags);
    let name = r.string("name");
    let target = r
        .table("target")
        .map(|(t, span)| read_target(t, span, r.diags))
        .unwrap_or_default();
    let load = r
        .table("load")
        .map(|(t, span)| read_load(t, span, r.diags))
        .unwrap_or_default();
    let vars = r
        .table("vars")
        .map(|(t, _)| json_entries(t))
        .unwrap_or_default();
    let data = r
        .tables("data")
        .into_iter()
        .map(|(t, span)| read_data(t, span, r.diags))
        .collect();
    let flows = r
        .tables("flow")
        .into_iter()
        .map(|(t, span)| read_flow(t, span, r.diags))
        .collect();
    let secrets = r.string_list("secrets");
    let thresholds = r
        .table("thresholds")
        .map(|(t, _)| read_thresholds(t, r.diags))
        .unwrap_or_default();
    let distribution = r
        .table("distribution")
        .map(|(t, span)| read_distribution(t, span, r.diags))
        .unwrap_or_default();
    r.finish();
    errors.is_empty().then_some(Scenario {
        name,
        target,
        load,
        vars,
        data,
        flows,
        thresholds,
        secrets,
        distribution,
    })
}

/// An integer or a finite float, as a float.
fn number_value(v: &DeValue) -> Option<f64> {
    match v {
        DeValue::Float(f) => f.as_str().parse::<f64>().ok().filter(|f| f.is_finite()),
        DeValue::Integer(i) => int_value(i).map(|i| i as f64),
        _ => None,
    }
}

fn read_distribution(t: &DeTable, span: Span, diags: &mut Diagnostics) -> Distribution {
    let mut r = TableReader::new(t, span.clone(), "[distribution]", diags);
    let distribution = Distribution {
        span,
        strategy: r.string("strategy"),
        zones: r.number_map("zones"),
        on_worker_lost: r.string("on_worker_lost"),
    };
    r.finish();
    distribution
}

fn read_target(t: &DeTable, span: Span, diags: &mut Diagnostics) -> Target {
    let mut r = TableReader::new(t, span.clone(), "[target]", diags);
    let target = Target {
        span,
        base_url: r.string("base_url"),
        http: r.string("http"),
        timeout: r.string("timeout"),
        connect_timeout: r.string("connect_timeout"),
        headers: r.string_map("headers"),
        insecure: r.boolean("insecure"),
        ca_file: r.string("ca_file"),
    };
    r.finish();
    target
}

fn read_load(t: &DeTable, span: Span, diags: &mut Diagnostics) -> Load {
    let mut r = TableReader::new(t, span.clone(), "[load]", diags);
    let stages = r
        .tables("stages")
        .into_iter()
        .map(|(t, span)| {
            let mut s = TableReader::new(t, span.clone(), "a stage", r.diags);
            let stage = LoadStage {
                span,
                duration: s.string("duration"),
                target: s.number("target"),
            };
            s.finish();
            stage
        })
        .collect();
    let load = Load {
        span,
        model: r.string("model"),
        pattern: r.string("pattern"),
        users: r.integer("users"),
        rate: r.number("rate"),
        max_users: r.integer("max_users"),
        on_saturation: r.string("on_saturation"),
        max_waiting: r.integer("max_waiting"),
        duration: r.string("duration"),
        iterations: r.integer("iterations"),
        graceful_stop: r.string("graceful_stop"),
        ramp_up: r.string("ramp_up"),
        ramp_down: r.string("ramp_down"),
        stages,
        base: r.number("base"),
        peak: r.number("peak"),
        spike_at: r.string("spike_at"),
        spike_ramp: r.string("spike_ramp"),
        spike_hold: r.string("spike_hold"),
        amplitude: r.number("amplitude"),
        period: r.string("period"),
        min: r.number("min"),
        max: r.number("max"),
        change_every: r.string("change_every"),
        seed: r.integer("seed"),
        burst: r.number("burst"),
        every: r.string("every"),
        burst_length: r.string("burst_length"),
    };
    r.finish();
    load
}

fn read_data(t: &DeTable, span: Span, diags: &mut Diagnostics) -> Data {
    let mut r = TableReader::new(t, span.clone(), "[[data]]", diags);
    let data = Data {
        span,
        name: r.string("name"),
        file: r.string("file"),
        mode: r.string("mode"),
    };
    r.finish();
    data
}

fn read_flow(t: &DeTable, span: Span, diags: &mut Diagnostics) -> Flow {
    let mut r = TableReader::new(t, span.clone(), "[[flow]]", diags);
    let name = r.string("name");
    let weight = r.integer("weight");
    let think_time = r.string("think_time");
    let mcp = r
        .table("mcp")
        .map(|(t, span)| read_mcp_session(t, span, r.diags));
    let steps = r
        .tables("step")
        .into_iter()
        .map(|(t, span)| read_step(t, span, r.diags))
        .collect();
    r.finish();
    Flow {
        span,
        name,
        weight,
        think_time,
        mcp,
        steps,
    }
}

fn read_mcp_session(t: &DeTable, span: Span, diags: &mut Diagnostics) -> McpSession {
    let mut r = TableReader::new(t, span.clone(), "the flow's `mcp`", diags);
    let session = McpSession {
        span,
        session: r.string("session"),
        close_session: r.boolean("close_session"),
        protocol_version: r.string("protocol_version"),
    };
    r.finish();
    session
}

fn read_step(t: &DeTable, span: Span, diags: &mut Diagnostics) -> Step {
    let mut r = TableReader::new(t, span.clone(), "[[flow.step]]", diags);
    let name = r.string("name");
    let kind = r.string("kind");
    let method = r.string("method");
    let path = r.string("path");
    let headers = r.string_map("headers");
    let body = r.string("body");
    let json = r
        .any("json")
        .map(|v| Spanned::new(to_json(v.get_ref()), v.span()));
    let params = r
        .any("params")
        .map(|v| Spanned::new(to_json(v.get_ref()), v.span()));
    let timeout = r.string("timeout");
    let expect = r
        .table("expect")
        .map(|(t, span)| read_expect(t, span, r.diags));
    let extract = r
        .table("extract")
        .map(|(t, _)| read_extracts(t, r.diags))
        .unwrap_or_default();
    r.finish();
    Step {
        span,
        name,
        kind,
        method,
        path,
        headers,
        body,
        json,
        params,
        timeout,
        expect,
        extract,
    }
}

fn read_expect(t: &DeTable, span: Span, diags: &mut Diagnostics) -> Expect {
    let mut r = TableReader::new(t, span, "expect", diags);
    let mut status = Vec::new();
    if let Some(v) = r.any("status") {
        let items: Vec<&Value> = match v.get_ref() {
            DeValue::Array(items) => items.iter().collect(),
            _ => vec![v],
        };
        for item in items {
            match item.get_ref() {
                DeValue::Integer(i) => match int_value(i) {
                    Some(code) => status.push(Spanned::new(StatusSpec::Code(code), item.span())),
                    None => r.diags.error(item.span(), "status code out of range"),
                },
                DeValue::String(s) => {
                    status.push(Spanned::new(StatusSpec::Text(s.to_string()), item.span()))
                }
                other => r.diags.error(
                    item.span(),
                    format!(
                        "expect.status takes status codes like 200 or classes like \"2xx\", not {}",
                        type_name(other)
                    ),
                ),
            }
        }
    }
    let body_contains = r.string("body_contains");
    let json = r
        .table("json")
        .map(|(t, _)| json_entries(t))
        .unwrap_or_default();
    r.finish();
    Expect {
        status,
        body_contains,
        json,
    }
}

fn read_extracts(t: &DeTable, diags: &mut Diagnostics) -> Vec<Extract> {
    let mut out = Vec::new();
    for (key, value) in t.iter() {
        let var = Spanned::new(key.get_ref().to_string(), key.span());
        let DeValue::Table(spec) = value.get_ref() else {
            diags.error(
                value.span(),
                format!(
                    "extract.{} must be a table like {{ json = \"/id\" }} or {{ header = \"etag\" }}",
                    var.value
                ),
            );
            continue;
        };
        let context = format!("extract.{}", var.value);
        let mut r = TableReader::new(spec, value.span(), &context, diags);
        let json = r.string("json");
        let header = r.string("header");
        r.finish();
        let source = match (json, header) {
            (Some(j), None) => Spanned::new(ExtractSource::Json(j.value), j.span),
            (None, Some(h)) => Spanned::new(ExtractSource::Header(h.value), h.span),
            (Some(_), Some(_)) => {
                diags.error(
                    value.span(),
                    format!("{context}: give either `json` or `header`, not both"),
                );
                continue;
            }
            (None, None) => {
                diags.error(
                    value.span(),
                    format!("{context}: needs `json = \"/pointer\"` or `header = \"name\"`"),
                );
                continue;
            }
        };
        out.push(Extract { var, source });
    }
    out
}

fn read_thresholds(t: &DeTable, diags: &mut Diagnostics) -> Vec<ThresholdList> {
    let mut out = Vec::new();
    for (key, value) in t.iter() {
        let metric = Spanned::new(key.get_ref().to_string(), key.span());
        let mut expressions = Vec::new();
        let items: Vec<&Value> = match value.get_ref() {
            DeValue::Array(items) => items.iter().collect(),
            _ => vec![value],
        };
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => expressions.push(Spanned::new(s.to_string(), item.span())),
                other => diags.error(
                    item.span(),
                    format!(
                        "threshold expressions are strings like \"p(95) < 500ms\", not {}",
                        type_name(other)
                    ),
                ),
            }
        }
        out.push(ThresholdList {
            metric,
            expressions,
        });
    }
    out
}

/// Reads one table, remembering which keys were asked for.
struct TableReader<'t, 'i, 'd> {
    table: &'t DeTable<'i>,
    span: Span,
    context: String,
    seen: Vec<&'static str>,
    diags: &'d mut Diagnostics,
}

impl<'t, 'i, 'd> TableReader<'t, 'i, 'd> {
    fn new(table: &'t DeTable<'i>, span: Span, context: &str, diags: &'d mut Diagnostics) -> Self {
        TableReader {
            table,
            span,
            context: context.to_string(),
            seen: Vec::new(),
            diags,
        }
    }

    fn any(&mut self, key: &'static str) -> Option<&'t Value<'i>> {
        self.seen.push(key);
        self.table.get(key)
    }

    fn typed<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        convert: impl Fn(&DeValue) -> Option<T>,
    ) -> S<T> {
        let v = self.any(key)?;
        match convert(v.get_ref()) {
            Some(t) => Some(Spanned::new(t, v.span())),
            None => {
                let found = type_name(v.get_ref());
                let message =
                    if matches!(v.get_ref(), DeValue::Integer(_)) && expected == "an integer" {
                        format!("{} `{key}` is too large", self.context)
                    } else {
                        format!("{} `{key}` must be {expected}, not {found}", self.context)
                    };
                self.diags.error(v.span(), message);
                None
            }
        }
    }

    fn string(&mut self, key: &'static str) -> S<String> {
        self.typed(key, "a string", |v| v.as_str().map(str::to_string))
    }

    fn integer(&mut self, key: &'static str) -> S<i64> {
        self.typed(key, "an integer", |v| v.as_integer().and_then(int_value))
    }

    /// An integer or a float.
    fn number(&mut self, key: &'static str) -> S<f64> {
        self.typed(key, "a number", number_value)
    }

    fn boolean(&mut self, key: &'static str) -> S<bool> {
        self.typed(key, "true or false", |v| v.as_bool())
    }

    fn table(&mut self, key: &'static str) -> Option<(&'t DeTable<'i>, Span)> {
        let v = self.any(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some((t, v.span())),
            other => {
                let message = format!(
                    "{} `{key}` must be a table, not {}",
                    self.context,
                    type_name(other)
                );
                self.diags.error(v.span(), message);
                None
            }
        }
    }

    /// An array of tables (`[[key]]`); a single table is accepted too.
    fn tables(&mut self, key: &'static str) -> Vec<(&'t DeTable<'i>, Span)> {
        let Some(v) = self.any(key) else {
            return Vec::new();
        };
        let items: Vec<&'t Value<'i>> = match v.get_ref() {
            DeValue::Array(items) => items.iter().collect(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::Table(t) => out.push((t, item.span())),
                other => {
                    let message = format!(
                        "`{key}` entries must be tables (`[[{key}]]`), not {}",
                        type_name(other)
                    );
                    self.diags.error(item.span(), message);
                }
            }
        }
        out
    }

    /// An array of strings (a single string is accepted too).
    fn string_list(&mut self, key: &'static str) -> Vec<Spanned<String>> {
        let Some(v) = self.any(key) else {
            return Vec::new();
        };
        let items: Vec<&Value> = match v.get_ref() {
            DeValue::Array(items) => items.iter().collect(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => out.push(Spanned::new(s.to_string(), item.span())),
                other => {
                    let message =
                        format!("`{key}` entries must be strings, not {}", type_name(other));
                    self.diags.error(item.span(), message);
                }
            }
        }
        out
    }

    /// A table of string values, such as headers.
    fn string_map(&mut self, key: &'static str) -> Vec<(Spanned<String>, Spanned<String>)> {
        let Some((t, _)) = self.table(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in t.iter() {
            match v.get_ref() {
                DeValue::String(s) => out.push((
                    Spanned::new(k.get_ref().to_string(), k.span()),
                    Spanned::new(s.to_string(), v.span()),
                )),
                other => self.diags.error(
                    v.span(),
                    format!(
                        "{key}.{} must be a string, not {}",
                        k.get_ref(),
                        type_name(other)
                    ),
                ),
            }
        }
        out
    }

    /// A table of numbers (integers or floats), such as `zones`.
    fn number_map(&mut self, key: &'static str) -> Vec<(Spanned<String>, Spanned<f64>)> {
        let Some((t, _)) = self.table(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in t.iter() {
            match number_value(v.get_ref()) {
                Some(n) => out.push((
                    Spanned::new(k.get_ref().to_string(), k.span()),
                    Spanned::new(n, v.span()),
                )),
                None => self.diags.error(
                    v.span(),
                    format!(
                        "{key}.{} must be a number, not {}",
                        k.get_ref(),
                        type_name(v.get_ref())
                    ),
                ),
            }
        }
        out
    }

    /// Reports every key of the table that no reader asked for.
    fn finish(self) {
        let _ = &self.span;
        #[cfg(test)]
        keys_asked::record(&self.context, &self.seen);
        for (key, _) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if self.seen.contains(&name) {
                continue;
            }
            let mut message = format!("unknown key `{name}` in {}", self.context);
            if let Some(s) = did_you_mean(name, &self.seen) {
                message.push_str(&format!("; did you mean `{s}`?"));
            } else {
                message.push_str(&format!("; expected one of: {}", self.seen.join(", ")));
            }
            self.diags.error(key.span(), message);
        }
    }
}

/// For the schema's drift test: the keys each [`TableReader`] of this
/// thread asked for, by its table's context (`[target]`, `extract.id`).
#[cfg(test)]
pub(super) mod keys_asked {
    use std::cell::RefCell;

    thread_local! {
        static ASKED: RefCell<Vec<(String, Vec<&'static str>)>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn record(context: &str, keys: &[&'static str]) {
        ASKED.with(|a| a.borrow_mut().push((context.to_string(), keys.to_vec())));
    }

    /// What was recorded since the last call.
    pub(in crate::scenario) fn take() -> Vec<(String, Vec<&'static str>)> {
        ASKED.with(|a| std::mem::take(&mut *a.borrow_mut()))
    }
}

fn int_value(i: &toml::de::DeInteger) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

fn type_name(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn json_entries(t: &DeTable) -> Vec<(Spanned<String>, Spanned<serde_json::Value>)> {
    t.iter()
        .map(|(k, v)| {
            (
                Spanned::new(k.get_ref().to_string(), k.span()),
                Spanned::new(to_json(v.get_ref()), v.span()),
            )
        })
        .collect()
}

/// TOML → JSON, for request bodies, variables and expected values.
fn to_json(v: &DeValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => match int_value(i) {
            Some(n) => J::from(n),
            None => J::String(i.to_string()),
        },
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(J::Number)
            .unwrap_or(J::Null),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(items) => J::Array(array_to_json(items)),
        DeValue::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), to_json(v.get_ref())))
                .collect(),
        ),
    }
}

fn array_to_json(items: &DeArray) -> Vec<serde_json::Value> {
    items.iter().map(|v| to_json(v.get_ref())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (Scenario, Diagnostics) {
        let mut d = Diagnostics::default();
        let s = parse(text, &mut d).unwrap_or_default();
        (s, d)
    }

    #[test]
    fn reads_a_full_scenario() {
        let (s, d) = parse_str(
            r#"
name = "x"
[target]
base_url = "demo"
headers = { "User-Agent" = "t" }
[load]
users = 3
duration = "1s"
[[flow]]
name = "f"
  [[flow.step]]
  path = "/a"
  expect = { status = [200, "3xx"], json = { "/ok" = true } }
  extract = { id = { json = "/id" }, tag = { header = "etag" } }
[thresholds]
http_req_duration = ["p(95) < 1s"]
"#,
        );
        assert!(!d.has_errors(), "{d:?}");
        assert_eq!(s.load.users.unwrap().value, 3);
        let step = &s.flows[0].steps[0];
        assert_eq!(step.expect.as_ref().unwrap().status.len(), 2);
        assert_eq!(step.extract.len(), 2);
        assert_eq!(s.thresholds[0].expressions[0].value, "p(95) < 1s");
    }

    #[test]
    fn reports_every_problem_not_just_the_first() {
        let (_, d) = parse_str("[load]\nuserz = 3\nusers = \"many\"\n[nope]\n");
        let d = d.sorted();
        let messages: Vec<_> = d.items().iter().map(|d| d.message.clone()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("did you mean `users`"));
        assert!(messages[1].contains("must be an integer"));
        assert!(messages[2].contains("unknown key `nope`"));
    }

    #[test]
    fn syntax_errors_have_a_span() {
        let (_, d) = parse_str("name = \n");
        assert!(d.has_errors());
        assert!(d.items()[0].span.is_some());
    }

    #[test]
    fn huge_integers_are_reported_not_wrapped() {
        let (_, d) = parse_str("[load]\nusers = 99999999999999999999\n");
        assert!(d.items()[0].message.contains("too large"), "{d:?}");
    }
}
