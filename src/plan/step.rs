//! What one `[[flow.step]]` compiles to: the part every step kind shares
//! (name, metric, `expect`, `extract`) and, in [`StepKind`], the part that
//! is the kind's own. A new kind adds a variant here and its compiling
//! function beside `Compiler::http_step`; the engine's module
//! documentation gives the rest of the recipe.

use std::collections::BTreeSet;

use http::{HeaderName, Method};

use super::mcp::McpStep;
use super::template::Part;
use super::{is_identifier, parse_status, Compiler, JsonPointer, MetricInfo};
use crate::diag::Spanned;
use crate::scenario::{self, ExtractSource};

#[derive(Debug)]
pub struct StepPlan {
    pub name: String,
    pub metric: usize,
    /// How the step's request is made and sent, which depends on its kind.
    pub kind: StepKind,
    pub expect: ExpectPlan,
    pub extract: Vec<ExtractPlan>,
}

/// The kinds of step, each with what only its steps have. The engine
/// matches on this to prepare, send and judge a step.
#[derive(Debug)]
pub enum StepKind {
    /// A request as the step writes it.
    Http(HttpStep),
    /// A JSON-RPC call to an MCP server (`kind = "mcp"`).
    Mcp(McpStep),
}

/// An HTTP step's request.
#[derive(Debug)]
pub struct HttpStep {
    pub method: Method,
    pub path: Part,
    pub headers: Vec<(HeaderName, Part)>,
    pub body: Option<Part>,
    /// Set for `json = …` bodies unless a header sets it.
    pub content_type: Option<&'static str>,
}

impl StepPlan {
    /// Whether the step's `expect` or `extract` reads the response body;
    /// otherwise an HTTP step's body is only counted.
    pub fn needs_body(&self) -> bool {
        self.expect.body_contains.is_some()
            || !self.expect.json.is_empty()
            || self
                .extract
                .iter()
                .any(|e| matches!(e.source, ExtractFrom::Json(_)))
    }

    /// The HTTP request of an HTTP step.
    pub fn http(&self) -> Option<&HttpStep> {
        match &self.kind {
            StepKind::Http(http) => Some(http),
            StepKind::Mcp(_) => None,
        }
    }

    /// The call of an MCP step.
    pub fn mcp(&self) -> Option<&McpStep> {
        match &self.kind {
            StepKind::Mcp(mcp) => Some(mcp),
            StepKind::Http(_) => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExpectPlan {
    /// Inclusive ranges of accepted codes; empty means 200–399.
    pub status: Vec<(u16, u16)>,
    pub body_contains: Option<String>,
    pub json: Vec<(JsonPointer, serde_json::Value)>,
}

impl ExpectPlan {
    pub fn status_ok(&self, code: u16) -> bool {
        if self.status.is_empty() {
            return (200..400).contains(&code);
        }
        self.status
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }
}

#[derive(Debug, Clone)]
pub struct ExtractPlan {
    pub var: String,
    pub source: ExtractFrom,
}

#[derive(Debug, Clone)]
pub enum ExtractFrom {
    Json(JsonPointer),
    Header(HeaderName),
}

/// A kind's part of a step, compiled, and how the step's row is labelled.
pub(super) struct KindPart {
    /// `None` when the kind's part has errors (they are reported).
    pub(super) kind: Option<StepKind>,
    /// The method the row shows (`GET`).
    pub(super) method: String,
    /// The row's name when the step has none (`GET /items`).
    pub(super) default_name: String,
}

/// The methods a step may use. Any other token is a valid HTTP method
/// too, but in a scenario it is far more likely a typo (`GTE`) than an
/// extension method, so it is refused with a suggestion.
const METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::TRACE,
];

/// A step's `method`, in any case (`get` is `GET`, as curl and k6 users
/// expect), normalized to upper case.
fn parse_method(text: &str) -> Result<Method, String> {
    let upper = text.trim().to_ascii_uppercase();
    if let Some(method) = METHODS.iter().find(|m| m.as_str() == upper) {
        return Ok(method.clone());
    }
    let names: Vec<&str> = METHODS.iter().map(Method::as_str).collect();
    let mut message = format!("`{text}` is not an HTTP method");
    match crate::diag::did_you_mean(&upper, &names) {
        Some(close) => message.push_str(&format!("; did you mean `{close}`?")),
        None => message.push_str(&format!("; use one of {}", names.join(", "))),
    }
    Err(message)
}

impl Compiler<'_> {
    pub(super) fn step(
        &mut self,
        s: &scenario::Step,
        known: &mut BTreeSet<String>,
        metrics: &mut Vec<MetricInfo>,
    ) -> Option<StepPlan> {
        // The kind's templates are compiled before `extract` adds its
        // names: a step cannot use what it extracts itself.
        let part = match s.kind.as_ref().map(|k| k.value.as_str()) {
            Some("mcp") => self.mcp_step(s, known, metrics),
            None | Some("http") => {
                self.no_mcp_keys(s);
                self.http_step(s, known)
            }
            Some(other) => {
                let span = s.kind.as_ref().map(|k| k.span.clone());
                self.diags.error(
                    span,
                    format!("kind = \"{other}\" is unknown; expected \"http\" or \"mcp\""),
                );
                KindPart {
                    kind: None,
                    method: other.to_string(),
                    default_name: other.to_string(),
                }
            }
        };
        let expect = s
            .expect
            .as_ref()
            .map(|e| self.expect(e))
            .unwrap_or_default();
        let extract = self.extract(&s.extract, known);
        // The step's metric is registered even when the step has errors, so
        // a threshold on it is not reported as naming a missing step too.
        let name = s
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .unwrap_or(part.default_name);
        let metric = match metrics.iter().position(|m| m.name == name) {
            Some(i) => {
                if metrics[i].method.as_deref() != Some(part.method.as_str()) {
                    metrics[i].method = None;
                }
                i
            }
            None => {
                metrics.push(MetricInfo {
                    name: name.clone(),
                    method: Some(part.method),
                });
                metrics.len() - 1
            }
        };
        Some(StepPlan {
            name,
            metric,
            kind: part.kind?,
            expect,
            extract,
        })
    }

    /// The HTTP part of a step: method, path, headers and body.
    fn http_step(&mut self, s: &scenario::Step, known: &BTreeSet<String>) -> KindPart {
        let method = match &s.method {
            None => Some(Method::GET),
            Some(m) => match parse_method(&m.value) {
                Ok(m) => Some(m),
                Err(message) => {
                    self.diags.error(m.span.clone(), message);
                    None
                }
            },
        };
        let path = match &s.path {
            Some(p) if !(p.value.starts_with('/') || p.value.starts_with("{{")) => {
                self.diags.error(
                    p.span.clone(),
                    format!(
                        "path `{}` must start with `/` (it is joined to the base URL)",
                        p.value
                    ),
                );
                None
            }
            Some(p) => match self.template(p, known, "path") {
                // A path with nothing to render is checked now, not at
                // every request: `/a b` would fail them all.
                Some(Part::Static(text)) if text.parse::<http::uri::PathAndQuery>().is_err() => {
                    self.diags.error(
                        p.span.clone(),
                        format!(
                            "path `{text}` is not a valid URL path (spaces and some other characters must be percent-encoded, e.g. %20)"
                        ),
                    );
                    None
                }
                part => part,
            },
            None => {
                self.diags.error(
                    s.span.clone(),
                    "[[flow.step]] needs a `path`, e.g. path = \"/\"",
                );
                None
            }
        };
        let headers = self.headers(&s.headers, known, "step headers");
        let (body, content_type) = match (&s.body, &s.json) {
            (Some(_), Some(j)) => {
                self.diags
                    .error(j.span.clone(), "a step takes `body` or `json`, not both");
                (None, None)
            }
            (Some(b), None) => (self.template(b, known, "body"), None),
            (None, Some(j)) => {
                let text = Spanned::new(j.value.to_string(), j.span.clone());
                (
                    self.template(&text, known, "json"),
                    Some("application/json"),
                )
            }
            (None, None) => (None, None),
        };
        let method_text = method.as_ref().map_or("GET", |m| m.as_str()).to_string();
        let shown_path = s.path.as_ref().map_or("", |p| p.value.as_str());
        KindPart {
            default_name: format!("{method_text} {shown_path}"),
            method: method_text,
            kind: match (method, path) {
                (Some(method), Some(path)) => Some(StepKind::Http(HttpStep {
                    method,
                    path,
                    headers,
                    body,
                    content_type,
                })),
                _ => None,
            },
        }
    }

    /// An HTTP step has none of the keys of MCP steps.
    fn no_mcp_keys(&mut self, s: &scenario::Step) {
        let spans = [
            ("params", s.params.as_ref().map(|p| p.span.clone())),
            ("timeout", s.timeout.as_ref().map(|t| t.span.clone())),
        ];
        for (key, span) in spans {
            if let Some(span) = span {
                self.diags.error(
                    span,
                    format!(
                        "`{key}` is for MCP steps (`kind = \"mcp\"`); an HTTP step's time \
                         limit is [target] timeout"
                    ),
                );
            }
        }
    }

    fn expect(&mut self, e: &scenario::Expect) -> ExpectPlan {
        let mut status = Vec::new();
        for s in &e.status {
            match parse_status(&s.value) {
                Ok(range) => status.push(range),
                Err(msg) => self.diags.error(s.span.clone(), msg),
            }
        }
        let mut json = Vec::new();
        for (pointer, value) in &e.json {
            match JsonPointer::parse(&pointer.value) {
                Ok(parsed) => json.push((parsed, value.value.clone())),
                Err(message) => self.diags.error(pointer.span.clone(), message),
            }
        }
        ExpectPlan {
            status,
            body_contains: e.body_contains.as_ref().map(|b| b.value.clone()),
            json,
        }
    }

    /// The step's extractions; each name becomes known to later steps.
    fn extract(
        &mut self,
        list: &[scenario::Extract],
        known: &mut BTreeSet<String>,
    ) -> Vec<ExtractPlan> {
        let mut extract = Vec::new();
        for e in list {
            let source = match &e.source.value {
                ExtractSource::Json(p) => match JsonPointer::parse(p) {
                    Ok(pointer) => ExtractFrom::Json(pointer),
                    Err(message) => {
                        self.diags.error(e.source.span.clone(), message);
                        continue;
                    }
                },
                ExtractSource::Header(h) => match HeaderName::from_bytes(h.as_bytes()) {
                    Ok(h) => ExtractFrom::Header(h),
                    Err(_) => {
                        self.diags.error(
                            e.source.span.clone(),
                            format!("`{h}` is not a valid header name"),
                        );
                        continue;
                    }
                },
            };
            if !is_identifier(&e.var.value) {
                self.diags.error(
                    e.var.span.clone(),
                    format!(
                        "extract variable `{}` must be a simple identifier",
                        e.var.value
                    ),
                );
                continue;
            }
            known.insert(e.var.value.clone());
            self.extracted.insert(e.var.value.clone());
            extract.push(ExtractPlan {
                var: e.var.value.clone(),
                source,
            });
        }
        extract
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{compile, Overrides, Plan};
    use super::*;
    use crate::diag::Diagnostics;

    /// Compiles one flow of `steps`: the plan, or every problem found.
    pub(in crate::plan) fn compile_steps(steps: &str) -> Result<Plan, Vec<String>> {
        let text = format!(
            "[target]\nbase_url = \"http://127.0.0.1:9\"\n\
             [load]\nusers = 1\nduration = \"1s\"\n[[flow]]\n{steps}"
        );
        let mut diags = Diagnostics::default();
        let scenario = scenario::parse(&text, &mut diags).expect("valid TOML");
        compile(
            &scenario,
            None,
            &Overrides::default(),
            &crate::plan::Inputs::sealed(),
            &mut diags,
        )
        .ok_or_else(|| diags.items().iter().map(|d| d.message.clone()).collect())
    }

    #[test]
    fn an_http_step_keeps_its_request_in_its_kind() {
        let plan = compile_steps(
            r#"
  [[flow.step]]
  method = "post"
  path = "/items"
  json = { name = "x" }
  expect = { status = [201] }
  extract = { id = { json = "/id" } }
"#,
        )
        .unwrap_or_else(|problems| panic!("{problems:?}"));
        let step = &plan.flows[0].steps[0];
        let http = step.http().expect("an HTTP step");
        assert_eq!(http.method, Method::POST);
        assert!(http.path.is_static());
        assert_eq!(http.content_type, Some("application/json"));
        assert_eq!(step.name, "POST /items");
        assert_eq!(plan.metrics[step.metric].method.as_deref(), Some("POST"));
        assert!(step.expect.status_ok(201) && !step.expect.status_ok(200));
        assert_eq!(step.extract.len(), 1);
        assert!(step.needs_body());
    }

    #[test]
    fn steps_of_one_name_share_a_row_whose_method_is_blank_when_they_differ() {
        let steps = "  [[flow.step]]\n  name = \"item\"\n  path = \"/a\"\n\
                     [[flow.step]]\n  name = \"item\"\n  method = \"DELETE\"\n  path = \"/a\"\n";
        let plan = compile_steps(steps).unwrap_or_else(|problems| panic!("{problems:?}"));
        let steps = &plan.flows[0].steps;
        assert_eq!(steps[0].metric, steps[1].metric);
        assert_eq!(plan.metrics.len(), 1);
        assert_eq!(plan.metrics[0].method, None);
    }

    #[test]
    fn a_step_cannot_use_what_it_extracts_itself() {
        let steps = "  [[flow.step]]\n  path = \"/items/{{ id }}\"\n  \
                     extract = { id = { json = \"/id\" } }\n\
                     [[flow.step]]\n  path = \"/items/{{ id }}\"\n";
        let problems = compile_steps(steps).expect_err("a problem");
        let unknown = problems
            .iter()
            .filter(|m| m.contains("unknown variable `id`"));
        assert_eq!(unknown.count(), 1, "{problems:?}");
    }

    #[test]
    fn methods_are_known_ones_in_any_case() {
        assert_eq!(parse_method("get"), Ok(Method::GET));
        assert_eq!(parse_method("Patch"), Ok(Method::PATCH));
        assert_eq!(
            parse_method("GTE"),
            Err("`GTE` is not an HTTP method; did you mean `GET`?".to_string())
        );
        let unknown = parse_method("FROB").unwrap_err();
        assert!(unknown.ends_with("use one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE"));
        let plan = compile_steps("  [[flow.step]]\n  method = \"delete\"\n  path = \"/a\"\n")
            .unwrap_or_else(|problems| panic!("{problems:?}"));
        assert_eq!(plan.flows[0].steps[0].name, "DELETE /a");
    }

    #[test]
    fn a_step_with_errors_still_has_its_row_for_thresholds() {
        let steps = "  [[flow.step]]\n  method = \"GE T\"\n  path = \"/a\"\n\
                     [thresholds]\n\"step:GET /a\" = [\"p(95) < 1s\"]\n";
        let problems = compile_steps(steps).expect_err("a problem");
        assert!(problems
            .iter()
            .any(|m| m.contains("`GE T` is not an HTTP method")));
        assert!(
            !problems.iter().any(|m| m.contains("no step is named")),
            "{problems:?}"
        );
    }
}
