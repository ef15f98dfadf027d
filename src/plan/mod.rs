//! What we will do: a validated, normalized [`Plan`].
//!
//! [`compile`] is the only place that judges a scenario's meaning. It merges
//! command-line [`Overrides`] over the file (flags and `LOADCTL_*` variables
//! arrive here already merged by clap), checks every value, compiles the
//! templates once, reads the data files and the CA file, and reports every
//! problem it finds with the span of the offending value.
//!
//! It does no I/O of its own: environment variables and files come from the
//! [`Inputs`] its caller passes in (the whole environment and the scenario's
//! folder for the CLI, an allowlist and one confined folder for an agent,
//! files in memory for a worker; see [`inputs`]). A template that reads
//! `env.NAME` is checked against them here, so a variable outside an
//! agent's allowlist is an error at the template's location, and an unset
//! one is a warning or an error as the inputs say.

pub mod distribution;
mod fingerprint;
pub mod inputs;
mod load;
mod mcp;
mod pointer;
mod scope;
mod step;
pub mod template;
pub mod threshold;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use minijinja::Value;

use crate::diag::{Diagnostics, Span, Spanned};
use crate::scenario::{self, Scenario, StatusSpec};
pub use distribution::{DistributionPlan, OnWorkerLost, Strategy, Zone};
pub use fingerprint::fingerprint;
use inputs::FileError;
pub use inputs::{EnvVars, Files, Inputs, ReadBudget};
use load::parse_duration_or_zero;
pub use load::{LoadPlan, Model, OpenModel, Saturation};
pub use mcp::{McpSessionPlan, McpStep, SessionScope, INITIALIZE_ROW};
pub use pointer::JsonPointer;
pub use step::{ExpectPlan, ExtractFrom, ExtractPlan, HttpStep, StepKind, StepPlan};
use template::{Globals, Part, Templates};
use threshold::Threshold;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Request timeouts are timed on tokio's millisecond timer: a shorter one
/// would be accepted and never enforced.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings from the command line (or `LOADCTL_*`), which beat the file.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overrides {
    pub base_url: Option<String>,
    pub users: Option<u64>,
    /// Arrivals per second; switches the run to the open model.
    pub rate: Option<f64>,
    pub max_users: Option<u64>,
    pub pattern: Option<String>,
    pub seed: Option<u64>,
    pub duration: Option<String>,
    pub iterations: Option<u64>,
    pub timeout: Option<String>,
    /// `Name: value`, added to (or replacing) the scenario's default headers.
    pub headers: Vec<String>,
    /// `METRIC: EXPRESSION`, added to the scenario's thresholds.
    pub thresholds: Vec<String>,
}

#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub scenario_file: Option<PathBuf>,
    pub target: TargetPlan,
    pub load: LoadPlan,
    pub flows: Vec<FlowPlan>,
    /// One entry per distinct step name; steps with the same name share
    /// statistics, as requests with the same name do in Locust.
    pub metrics: Vec<MetricInfo>,
    pub feeders: Vec<Feeder>,
    pub templates: Templates,
    pub globals: Globals,
    pub thresholds: Vec<Threshold>,
    pub secrets: Secrets,
    /// How a coordinator spreads this run over workers.
    pub distribution: DistributionPlan,
}

/// What must never appear in a report, log line or error message.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Headers whose values are secret: Authorization, Proxy-Authorization,
    /// Cookie and Set-Cookie always, plus any the scenario names.
    pub headers: Vec<HeaderName>,
    /// Variables whose values are secret, as templates name them:
    /// `token` (extracted or `[vars]`), `accounts.password` (data),
    /// `env.API_TOKEN`.
    pub vars: Vec<String>,
}

impl Secrets {
    fn new(names: &[Spanned<String>]) -> Self {
        use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
        let mut headers = vec![AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE, SET_COOKIE];
        let mut vars = Vec::new();
        for name in names {
            if let Ok(h) = HeaderName::from_bytes(name.value.as_bytes()) {
                if !headers.contains(&h) {
                    headers.push(h);
                }
            }
            vars.push(name.value.clone());
        }
        Secrets { headers, vars }
    }
}

#[derive(Debug, Clone)]
pub struct MetricInfo {
    pub name: String,
    /// The method, when every step of this name uses the same one.
    pub method: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BaseUrl {
    /// The built-in demo target, started in-process for the run.
    Demo,
    Url(Endpoint),
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix of the base URL without a trailing slash ("" for none).
    pub base_path: String,
}

impl Endpoint {
    /// The URL for reports: credentials are never part of it.
    pub fn display(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}{}", self.port, self.base_path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/2 when TLS ALPN offers it, HTTP/1.1 otherwise.
    Auto,
    Http1,
    /// HTTP/2 only: over TLS by ALPN, over plain TCP by prior knowledge (h2c).
    Http2,
}

impl HttpVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Auto => "auto",
            HttpVersion::Http1 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }
}

#[derive(Debug)]
pub struct TargetPlan {
    pub base: BaseUrl,
    pub http: HttpVersion,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub headers: Vec<(HeaderName, Part)>,
    pub insecure: bool,
    /// The CA file's contents, read through the plan's [`Inputs`] so the
    /// engine never opens a path itself.
    pub ca_file: Option<CaFile>,
}

/// A PEM file of certificates to trust besides the system's.
#[derive(Clone)]
pub struct CaFile {
    /// The path as the scenario writes it, for messages.
    pub name: String,
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaFile({}, {} bytes)", self.name, self.pem.len())
    }
}

#[derive(Debug)]
pub struct FlowPlan {
    pub name: String,
    pub weight: u64,
    /// Pause after each step: fixed, or uniform in a range; `None` for
    /// none (no `think_time`, or zero).
    pub think_time: Option<(Duration, Duration)>,
    pub steps: Vec<StepPlan>,
    /// How the flow's users hold their MCP sessions; `None` when the flow
    /// has no MCP step.
    pub mcp: Option<McpSessionPlan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMode {
    /// Rows in order, wrapping around.
    Sequential,
    /// A random row each time.
    Random,
    /// Each row once; users stop when the rows run out.
    Unique,
}

#[derive(Debug)]
pub struct Feeder {
    pub name: String,
    pub mode: FeedMode,
    /// Each row as a map from column name to value; shared by the feeders
    /// that name the same file.
    pub rows: Arc<[Value]>,
}

/// Checks a scenario and turns it into a plan. Returns `None` when
/// `diags` holds at least one error. Data files and the CA file are read,
/// and `env.NAME` in templates judged, through `inputs`; `scenario_file`
/// only names the plan (and the run's summary).
pub fn compile(
    scenario: &Scenario,
    scenario_file: Option<&Path>,
    overrides: &Overrides,
    inputs: &Inputs,
    diags: &mut Diagnostics,
) -> Option<Plan> {
    let mut c = Compiler {
        diags,
        templates: Templates::default(),
        inputs,
        env_is_a_feeder: false,
        feeder_names: Vec::new(),
        stand_ins: BTreeMap::new(),
        extracted: BTreeSet::new(),
    };
    let target = c.target(&scenario.target, overrides);
    let load = c.load(&scenario.load, overrides);
    let feeders = c.feeders(&scenario.data);
    c.feeder_names = feeders.iter().map(|f| f.name.clone()).collect();
    // A feeder named `env` hides the environment from templates.
    c.env_is_a_feeder = c.feeder_names.iter().any(|f| f == "env");
    let var_values: BTreeMap<String, Value> = scenario
        .vars
        .iter()
        .map(|(k, v)| {
            let value = Value::from(minijinja::value::Serde(&v.value));
            (k.value.clone(), value)
        })
        .collect();
    let globals = Globals::new(inputs.env.values(), var_values);
    c.stand_ins = scope::stand_ins(&globals, &feeders);
    let vars: Vec<String> = scenario.vars.iter().map(|(k, _)| k.value.clone()).collect();
    let mut known: BTreeSet<String> = template::BUILTIN_VARS
        .iter()
        .map(|s| s.to_string())
        .chain(vars.iter().cloned())
        .chain(feeders.iter().map(|f| f.name.clone()))
        .collect();
    // Default headers may use anything but extracted values.
    let mut target_headers = c.headers(&scenario.target.headers, &known, "target.headers");
    c.header_flags(&overrides.headers, &mut target_headers);
    let mut metrics: Vec<MetricInfo> = Vec::new();
    let flows = c.flows(&scenario.flows, &mut known, &mut metrics);
    let step_names: Vec<String> = metrics.iter().map(|m| m.name.clone()).collect();
    let thresholds = c.thresholds(&scenario.thresholds, &overrides.thresholds, &step_names);
    let distribution = distribution::compile(&scenario.distribution, c.diags);

    let (target, load) = (target?, load?);
    if c.diags.has_errors() {
        return None;
    }
    let templates = c.templates;
    Some(Plan {
        name: scenario
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .or_else(|| {
                scenario_file
                    .and_then(Path::file_stem)
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "loadctl".to_string()),
        scenario_file: scenario_file.map(Path::to_path_buf),
        target: TargetPlan {
            headers: target_headers,
            ..target
        },
        load,
        flows,
        metrics,
        feeders,
        templates,
        globals,
        thresholds,
        secrets: Secrets::new(&scenario.secrets),
        distribution,
    })
}

struct Compiler<'d> {
    diags: &'d mut Diagnostics,
    templates: Templates,
    inputs: &'d Inputs,
    /// Whether `env.X` in a template reads a data feeder's column rather
    /// than the environment.
    env_is_a_feeder: bool,
    feeder_names: Vec<String>,
    /// What a probe render of a template sees for the shared names
    /// ([`scope::stand_ins`]).
    stand_ins: BTreeMap<String, Value>,
    /// The names extracted so far in the flow being compiled: they hide
    /// shared names, and their values are only known at run time.
    extracted: BTreeSet<String>,
}

impl Compiler<'_> {
    fn target(&mut self, t: &scenario::Target, o: &Overrides) -> Option<TargetPlan> {
        let base = match (&o.base_url, &t.base_url) {
            (Some(url), _) => self.base_url(url, None),
            (None, Some(url)) => self.base_url(&url.value, Some(url.span.clone())),
            (None, None) => {
                self.diags.error(
                    t.span.clone(),
                    "[target] base_url is missing; set it to the service's URL, or \"demo\" for the built-in demo target",
                );
                None
            }
        };
        let http = match t.http.as_ref().map(|h| (h.value.as_str(), h.span.clone())) {
            None | Some(("auto", _)) => HttpVersion::Auto,
            Some(("1.1" | "1", _)) => HttpVersion::Http1,
            Some(("2" | "2.0", _)) => HttpVersion::Http2,
            Some((other, span)) => {
                self.diags.error(
                    span,
                    format!("[target] http = \"{other}\" is not a version; expected \"auto\", \"1.1\" or \"2\""),
                );
                HttpVersion::Auto
            }
        };
        let timeout =
            self.duration_setting(&o.timeout, "--timeout", &t.timeout, "[target] timeout");
        if let Some(short) = timeout.filter(|d| *d < MIN_TIMEOUT) {
            let (span, name) = match &o.timeout {
                Some(_) => (None, "--timeout"),
                None => (
                    t.timeout.as_ref().map(|v| v.span.clone()),
                    "[target] timeout",
                ),
            };
            self.diags.error(
                span,
                format!(
                    "{name}: {short:?} is shorter than the timer can measure; the least is 1ms"
                ),
            );
        }
        let connect_timeout =
            self.duration_setting(&None, "", &t.connect_timeout, "[target] connect_timeout");
        let ca_file = t
            .ca_file
            .as_ref()
            .and_then(|f| match self.inputs.files.read(&f.value) {
                Ok(pem) => Some(CaFile {
                    name: f.value.clone(),
                    pem,
                }),
                Err(e) => {
                    let message = match e {
                        FileError::NotFound(path) => {
                            format!("CA file `{}` not found", path.display())
                        }
                        other => format!("CA file `{}`: {other}", f.value),
                    };
                    self.diags.error(f.span.clone(), message);
                    None
                }
            });
        Some(TargetPlan {
            base: base?,
            http,
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
            connect_timeout: connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            headers: Vec::new(),
            insecure: t.insecure.as_ref().map(|i| i.value).unwrap_or(false),
            ca_file,
        })
    }

    fn base_url(&mut self, text: &str, span: Option<Span>) -> Option<BaseUrl> {
        if text == "demo" {
            return Some(BaseUrl::Demo);
        }
        match parse_endpoint(text) {
            Ok(e) => Some(BaseUrl::Url(e)),
            Err(msg) => {
                let msg = if span.is_some() {
                    format!("[target] base_url: {msg}")
                } else {
                    format!("--base-url: {msg}")
                };
                self.diags.error(span, msg);
                None
            }
        }
    }

    /// A duration from a flag (if given) or the file.
    fn duration_setting(
        &mut self,
        flag: &Option<String>,
        flag_name: &str,
        file: &Option<Spanned<String>>,
        file_name: &str,
    ) -> Option<Duration> {
        let (text, span, name) = match (flag, file) {
            (Some(f), _) => (f.as_str(), None, flag_name),
            (None, Some(v)) => (v.value.as_str(), Some(v.span.clone()), file_name),
            (None, None) => return None,
        };
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.diags.error(span, format!("{name}: {e}"));
                None
            }
        }
    }

    /// A count that must be at least 1.
    fn count(&mut self, n: i64, span: Option<Span>, name: &str, max: i64) -> Option<u64> {
        if n < 1 {
            self.diags
                .error(span, format!("{name} must be at least 1, not {n}"));
            None
        } else if n > max {
            self.diags.error(
                span,
                format!("{name} = {n} is more than the limit of {max}"),
            );
            None
        } else {
            Some(n as u64)
        }
    }

    /// The `[[data]]` feeders. Each distinct file is read and parsed once,
    /// its rows shared by every feeder that names it.
    fn feeders(&mut self, data: &[scenario::Data]) -> Vec<Feeder> {
        let mut out: Vec<Feeder> = Vec::new();
        let mut read: BTreeMap<&str, Result<Arc<[Value]>, String>> = BTreeMap::new();
        let mut budget = ReadBudget::default();
        for d in data {
            let Some(name) = &d.name else {
                self.diags.error(d.span.clone(), "[[data]] needs a `name`");
                continue;
            };
            if !is_identifier(&name.value) {
                self.diags.error(
                    name.span.clone(),
                    format!(
                        "data name `{}` must be a simple identifier (letters, digits, _)",
                        name.value
                    ),
                );
            }
            if out.iter().any(|f| f.name == name.value) {
                self.diags.error(
                    name.span.clone(),
                    format!("a data feeder named `{}` already exists", name.value),
                );
            }
            let mode = match d.mode.as_ref().map(|m| (m.value.as_str(), m.span.clone())) {
                None | Some(("sequential", _)) => FeedMode::Sequential,
                Some(("random", _)) => FeedMode::Random,
                Some(("unique", _)) => FeedMode::Unique,
                Some((other, span)) => {
                    self.diags.error(
                        span,
                        format!("data mode \"{other}\" is unknown; expected sequential, random or unique"),
                    );
                    FeedMode::Sequential
                }
            };
            let Some(file) = &d.file else {
                self.diags.error(
                    d.span.clone(),
                    "[[data]] needs a `file` (a CSV file with a header row)",
                );
                continue;
            };
            let files = &self.inputs.files;
            let rows = read.entry(&file.value).or_insert_with(|| {
                files
                    .read_counted(&file.value, &mut budget)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| read_csv(&bytes))
                    .map(Arc::from)
            });
            match rows.clone() {
                Ok(rows) if rows.is_empty() => self.diags.error(
                    file.span.clone(),
                    format!("data file `{}` has no rows", file.value),
                ),
                Ok(rows) => out.push(Feeder {
                    name: name.value.clone(),
                    mode,
                    rows,
                }),
                Err(e) => self.diags.error(
                    file.span.clone(),
                    format!("data file `{}`: {e}", file.value),
                ),
            }
        }
        out
    }

    fn headers(
        &mut self,
        headers: &[(Spanned<String>, Spanned<String>)],
        known: &BTreeSet<String>,
        context: &str,
    ) -> Vec<(HeaderName, Part)> {
        let mut out = Vec::new();
        for (name, value) in headers {
            let header = match HeaderName::from_bytes(name.value.as_bytes()) {
                Ok(h) => h,
                Err(_) => {
                    self.diags.error(
                        name.span.clone(),
                        format!("{context}: `{}` is not a valid header name", name.value),
                    );
                    continue;
                }
            };
            if let Some(part) = self.template(value, known, context) {
                if let Part::Static(s) = &part {
                    if http::HeaderValue::from_str(s).is_err() {
                        self.diags.error(
                            value.span.clone(),
                            format!(
                                "{context}: the value of `{}` is not a valid header value",
                                name.value
                            ),
                        );
                        continue;
                    }
                }
                out.push((header, part));
            }
        }
        out
    }

    /// `-H 'Name: value'` flags: each replaces a scenario header of the same name.
    fn header_flags(&mut self, flags: &[String], headers: &mut Vec<(HeaderName, Part)>) {
        for flag in flags {
            let parsed = flag.split_once(':').and_then(|(name, value)| {
                let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
                let value = value.trim();
                http::HeaderValue::from_str(value).ok()?;
                Some((name, value.to_string()))
            });
            match parsed {
                Some((name, value)) => {
                    headers.retain(|(n, _)| *n != name);
                    headers.push((name, Part::Static(value)));
                }
                None => self.diags.error(
                    None,
                    format!(
                        "--header `{}`: expected `Name: value` with a valid header name and value",
                        redact_header_flag(flag)
                    ),
                ),
            }
        }
    }

    fn flows(
        &mut self,
        flows: &[scenario::Flow],
        known: &mut BTreeSet<String>,
        metrics: &mut Vec<MetricInfo>,
    ) -> Vec<FlowPlan> {
        if flows.is_empty() {
            // Reported at the start of the file: there is no flow to point at.
            self.diags.error(
                0..0,
                "the scenario has no [[flow]]; add one with at least one [[flow.step]]",
            );
        }
        let mut out = Vec::new();
        for (i, f) in flows.iter().enumerate() {
            let name = f
                .name
                .as_ref()
                .map(|n| n.value.clone())
                .unwrap_or_else(|| format!("flow{}", i + 1));
            let weight = match &f.weight {
                Some(w) => self.count(w.value, Some(w.span.clone()), "flow weight", 1_000_000),
                None => Some(1),
            };
            let think_time = f
                .think_time
                .as_ref()
                .and_then(|t| match parse_think_time(&t.value) {
                    Ok(range) => range,
                    Err(e) => {
                        self.diags.error(t.span.clone(), format!("think_time: {e}"));
                        None
                    }
                });
            if f.steps.is_empty() {
                self.diags.error(
                    f.span.clone(),
                    format!("flow `{name}` has no [[flow.step]]"),
                );
            }
            // Extracted variables are visible to later steps of the same
            // flow only; each flow starts from the shared names.
            let mut flow_known = known.clone();
            self.extracted.clear();
            let mut steps: Vec<StepPlan> = f
                .steps
                .iter()
                .filter_map(|s| self.step(s, &mut flow_known, metrics))
                .collect();
            let mcp = self.mcp_flow(f, &mut steps);
            out.push(FlowPlan {
                name,
                weight: weight.unwrap_or(1),
                think_time,
                steps,
                mcp,
            });
        }
        out
    }

    fn thresholds(
        &mut self,
        lists: &[scenario::ThresholdList],
        flags: &[String],
        steps: &[String],
    ) -> Vec<Threshold> {
        let mut out = Vec::new();
        for list in lists {
            let metric = match threshold::parse_metric(&list.metric.value, steps) {
                Ok(m) => m,
                Err(e) => {
                    self.diags.error(list.metric.span.clone(), e);
                    continue;
                }
            };
            if list.expressions.is_empty() {
                self.diags.error(
                    list.metric.span.clone(),
                    format!("threshold `{}` has no expressions", list.metric.value),
                );
            }
            for expr in &list.expressions {
                match threshold::parse(&list.metric.value, metric.clone(), &expr.value) {
                    Ok(t) => out.push(t),
                    Err(e) => self.diags.error(expr.span.clone(), e),
                }
            }
        }
        for flag in flags {
            match threshold::parse_flag(flag, steps) {
                Ok(t) => out.push(t),
                Err(e) => self.diags.error(None, format!("--threshold: {e}")),
            }
        }
        out
    }
}

/// Parses `"30s"`, `"1m30s"`, `"500ms"`, `"1.5s"`, `"2h"`; must be > 0.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = text.trim().parse().map_err(|_| {
        format!("`{text}` is not a duration; write e.g. \"500ms\", \"30s\", \"1m30s\" or \"2h\"")
    })?;
    if d.is_negative() || d.is_zero() {
        return Err(format!("`{text}` must be more than zero"));
    }
    // A year is longer than any load test; beyond it, instants overflow.
    if d > jiff::SignedDuration::from_hours(24 * 366) {
        return Err(format!("`{text}` is longer than the limit of a year"));
    }
    Duration::try_from(d).map_err(|_| format!("`{text}` is out of range"))
}

/// `"1s"` (fixed) or `"1s..3s"` (uniform between the two). Zero is
/// allowed and means no pause: `None` for `"0s"` and `"0s..0s"`.
fn parse_think_time(text: &str) -> Result<Option<(Duration, Duration)>, String> {
    let (lo, hi) = match text.split_once("..") {
        Some((lo, hi)) => {
            let (lo, hi) = (parse_duration_or_zero(lo)?, parse_duration_or_zero(hi)?);
            if lo > hi {
                return Err(format!(
                    "`{text}`: the lower bound is above the upper bound"
                ));
            }
            (lo, hi)
        }
        None => {
            let d = parse_duration_or_zero(text)?;
            (d, d)
        }
    };
    Ok((!hi.is_zero()).then_some((lo, hi)))
}

fn parse_status(spec: &StatusSpec) -> Result<(u16, u16), String> {
    match spec {
        StatusSpec::Code(c) if (100..=599).contains(c) => Ok((*c as u16, *c as u16)),
        StatusSpec::Code(c) => Err(format!("status {c} is not an HTTP status code (100–599)")),
        StatusSpec::Text(t) => {
            let t = t.trim();
            if let Ok(code) = t.parse::<i64>() {
                return parse_status(&StatusSpec::Code(code));
            }
            let b = t.as_bytes();
            if b.len() == 3 && (b'1'..=b'5').contains(&b[0]) && b[1..].eq_ignore_ascii_case(b"xx") {
                let base = (b[0] - b'0') as u16 * 100;
                return Ok((base, base + 99));
            }
            if let Some((lo, hi)) = t.split_once('-') {
                if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
                    if (100..=599).contains(&lo) && (lo..=599).contains(&hi) {
                        return Ok((lo, hi));
                    }
                }
            }
            Err(format!(
                "status \"{t}\" is not a code, a class like \"2xx\" or a range like \"200-299\""
            ))
        }
    }
}

/// Parses `http[s]://host[:port][/base/path]`.
pub fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    // Errors quote the URL without its credentials, if it has any.
    let shown = match (text.find("://"), text.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://…{}", &text[..scheme_end], &text[at..])
        }
        _ => text.to_string(),
    };
    let text_for_errors = shown.as_str();
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("`{text_for_errors}` is not a URL ({e})"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(format!(
                "scheme `{other}` is not supported; use http or https"
            ))
        }
        None => {
            return Err(format!(
                "`{text_for_errors}` needs a scheme, e.g. http://{text_for_errors}"
            ))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{text_for_errors}` has no host"))?;
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are not supported; use an Authorization header".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{text_for_errors}` has no host"));
    }
    if uri.query().is_some() {
        return Err("the base URL cannot have a query; put it in the step's path".into());
    }
    Ok(Endpoint {
        https,
        host: host.to_string(),
        port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

/// A header flag as it may appear in an error: the name, never the value,
/// which may be a credential.
fn redact_header_flag(flag: &str) -> String {
    match flag.split_once(':') {
        Some((name, _)) => format!("{name}: …"),
        None => "…".to_string(),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The rows of a CSV file with a header line, each a map from column name
/// to value.
fn read_csv(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let mut reader = csv::Reader::from_reader(bytes);
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let row: std::collections::BTreeMap<String, String> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.to_string(), v.to_string()))
            .collect();
        rows.push(Value::from(minijinja::value::Serde(&row)));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_str(text: &str, o: &Overrides) -> (Option<Plan>, Diagnostics) {
        let mut d = Diagnostics::default();
        let s = scenario::parse(text, &mut d).expect("valid TOML");
        let p = compile(
            &s,
            None,
            o,
            &Inputs::for_cli(None, crate::diag::Severity::Error),
            &mut d,
        );
        (p, d)
    }

    const OK: &str = r#"
[target]
base_url = "http://127.0.0.1:9/api/"
[load]
users = 2
duration = "1s"
[[flow]]
  [[flow.step]]
  name = "list"
  path = "/items"
  extract = { id = { json = "/0/id" } }
  [[flow.step]]
  name = "item"
  path = "/items/{{ id }}"
  expect = { status = ["2xx", 404] }
[thresholds]
"step:item" = ["p(99) < 800ms"]
"#;

    #[test]
    fn compiles_a_valid_scenario() {
        let (p, d) = compile_str(OK, &Overrides::default());
        let p = p.unwrap_or_else(|| panic!("{d:?}"));
        let BaseUrl::Url(e) = &p.target.base else {
            panic!()
        };
        assert_eq!(e.base_path, "/api");
        assert_eq!(p.metrics.len(), 2);
        let path = |i: usize| &p.flows[0].steps[i].http().unwrap().path;
        assert!(path(0).is_static());
        assert!(!path(1).is_static());
        assert!(p.flows[0].steps[1].expect.status_ok(204));
        assert!(p.flows[0].steps[1].expect.status_ok(404));
        assert!(!p.flows[0].steps[1].expect.status_ok(500));
    }

    #[test]
    fn flags_override_the_file() {
        let o = Overrides {
            users: Some(7),
            duration: Some("3s".into()),
            ..Default::default()
        };
        let (p, _) = compile_str(OK, &o);
        let p = p.unwrap();
        assert_eq!(p.load.users, 7);
        assert_eq!(p.load.duration, Some(Duration::from_secs(3)));
    }

    #[test]
    fn every_semantic_problem_is_reported() {
        let text = r#"
[target]
base_url = "ftp://x"
timeout = "soon"
[load]
users = 0
duration = "-5s"
pattern = "zigzag"
[[flow]]
  [[flow.step]]
  path = "/x/{{ nope }}"
[thresholds]
"step:missing" = ["p(95) < 1s"]
"#;
        let (p, d) = compile_str(text, &Overrides::default());
        assert!(p.is_none());
        let msgs: Vec<_> = d.items().iter().map(|d| d.message.as_str()).collect();
        for needle in [
            "scheme `ftp`",
            "timeout",
            "at least 1",
            "more than zero",
            "zigzag",
            "unknown variable `nope`",
            "no step is named",
        ] {
            assert!(
                msgs.iter().any(|m| m.contains(needle)),
                "{needle} not in {msgs:#?}"
            );
        }
        assert!(d.items().iter().all(|d| d.span.is_some()), "{msgs:#?}");
    }

    #[test]
    fn durations_parse_in_friendly_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn zero_think_time_means_no_pause_but_other_durations_stay_above_zero() {
        assert_eq!(parse_think_time("0s"), Ok(None));
        assert_eq!(parse_think_time("0s..0s"), Ok(None));
        assert_eq!(parse_think_time("0ms"), Ok(None));
        let one = Duration::from_secs(1);
        assert_eq!(parse_think_time("0s..1s"), Ok(Some((Duration::ZERO, one))));
        assert_eq!(parse_think_time("1s"), Ok(Some((one, one))));
        assert!(parse_think_time("-1s").is_err());
        assert!(parse_think_time("1s..0s").is_err());
        let text = OK.replace("[[flow]]", "[[flow]]\nthink_time = \"0s\"");
        let (p, d) = compile_str(&text, &Overrides::default());
        let p = p.unwrap_or_else(|| panic!("{d:?}"));
        assert_eq!(p.flows[0].think_time, None);
        let text = OK.replace("duration = \"1s\"", "duration = \"0s\"");
        let (p, d) = compile_str(&text, &Overrides::default());
        assert!(p.is_none());
        assert!(
            d.items()[0].message.contains("must be more than zero"),
            "{d:?}"
        );
    }

    #[test]
    fn status_classes_and_ranges() {
        assert_eq!(
            parse_status(&StatusSpec::Text("2xx".into())),
            Ok((200, 299))
        );
        assert_eq!(
            parse_status(&StatusSpec::Text("200-204".into())),
            Ok((200, 204))
        );
        assert!(parse_status(&StatusSpec::Code(42)).is_err());
    }
}
