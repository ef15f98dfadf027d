//! Request templates, compiled once when the plan is built.
//!
//! Any path, header value or body that contains `{{` or `{%` becomes a
//! minijinja template registered in one shared [`Templates`] environment;
//! anything else stays a plain string that is never rendered. Rendering is
//! strict: an undefined variable is an error (counted as a failed request of
//! kind `template`, whose message quotes the template and the expression at
//! fault), never an empty string sent to the target.
//!
//! minijinja does not expose a template's filters and calls, so
//! [`Templates::probe`] renders a template once at plan time against
//! stand-in values: an unknown filter, function or test, or a call with the
//! wrong number of arguments, fails whatever the values are, and so is
//! reported by `validate` instead of failing every request of a run.
//!
//! Rendering is bounded, since a scenario may come from an agent that
//! means harm: a render may run at most [`FUEL`] template instructions
//! (minijinja's fuel) and write at most [`MAX_RENDERED_BYTES`]; past
//! either it fails like any other render, so a runaway loop is a
//! `template` failure at run time and an error at the template's place in
//! `validate` (the probe renders under the same bounds), never a process
//! out of memory.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, Template, UndefinedBehavior, Value};

use crate::diag::did_you_mean;

/// Built-in variables every template can use.
pub const BUILTIN_VARS: &[&str] = &["vu", "iteration", "env", "vars"];

/// How loadctl's own functions are called, for messages about their
/// arguments. minijinja's own (`range`, `dict`, …) come after them in
/// [`Templates::functions`].
const OWN_FUNCTIONS: &[(&str, &str)] = &[
    ("random", "random(low, high)"),
    ("uuid", "uuid()"),
    ("timestamp", "timestamp()"),
    ("timestamp_ms", "timestamp_ms()"),
];

/// minijinja's filters, for suggesting one in place of a misspelled name
/// (minijinja cannot list them; a test checks that each one exists).
const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "chain",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "zip",
];

/// Problems [`Templates::probe`] reports: they do not depend on the values
/// a template is given. Anything else (a type error, an undefined
/// attribute of an extracted value) might not happen with real values.
const VALUE_INDEPENDENT: &[ErrorKind] = &[
    ErrorKind::UnknownFilter,
    ErrorKind::UnknownFunction,
    ErrorKind::UnknownTest,
    ErrorKind::MissingArgument,
    ErrorKind::TooManyArguments,
];

/// The most template instructions one render may run. The realistic
/// templates (the presets', the quickstart's) use 5 to 20; a loop writing
/// a JSON array of a thousand items uses about 10,000.
pub const FUEL: u64 = 100_000;

/// The most bytes one render may write: a path, a header value or a body.
pub const MAX_RENDERED_BYTES: usize = 16 * 1024 * 1024;

/// A piece of a request: fixed text, or the name of a compiled template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Static(String),
    Template(String),
}

impl Part {
    pub fn is_static(&self) -> bool {
        matches!(self, Part::Static(_))
    }
}

/// The compiled templates of one plan.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    count: usize,
    /// Every function a template can call: ours, then minijinja's.
    functions: Vec<String>,
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Debug mode (on in debug builds) attaches the template's variables
        // to errors, values included; failures here quote the template and
        // the expression instead, the same in every build.
        env.set_debug(false);
        env.set_fuel(Some(FUEL));
        env.add_function(
            "random",
            |lo: i64, hi: i64| -> Result<i64, minijinja::Error> {
                if lo > hi {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("random({lo}, {hi}): the first bound is above the second"),
                    ));
                }
                Ok(rand::random_range(lo..=hi))
            },
        );
        env.add_function("uuid", || uuid::Uuid::new_v4().to_string());
        env.add_function("timestamp", || jiff::Timestamp::now().as_second());
        env.add_function("timestamp_ms", || jiff::Timestamp::now().as_millisecond());
        // Functions are the environment's globals; ours are listed first.
        let mut functions: Vec<String> = OWN_FUNCTIONS.iter().map(|(f, _)| f.to_string()).collect();
        let builtin: Vec<String> = env
            .globals()
            .map(|(name, _)| name.to_string())
            .filter(|name| !functions.contains(name))
            .collect();
        functions.extend(builtin);
        Templates {
            env,
            count: 0,
            functions,
        }
    }
}

impl Templates {
    /// Compiles `source` if it is a template. Returns the part and the
    /// variables it reads with their attribute paths as minijinja reports
    /// them (`id`, `env.API_TOKEN`, `accounts.user`), or the syntax error's
    /// message. A variable read only by subscript (`env[name]`) appears by
    /// its bare name.
    pub fn compile(&mut self, source: &str) -> Result<(Part, BTreeSet<String>), String> {
        if !(source.contains("{{") || source.contains("{%")) {
            return Ok((Part::Static(source.to_string()), BTreeSet::new()));
        }
        let name = format!("t{}", self.count);
        self.count += 1;
        self.env
            .add_template_owned(name.clone(), source.to_string())
            .map_err(|e| template_error(&e))?;
        let template = self
            .env
            .get_template(&name)
            .map_err(|e| template_error(&e))?;
        let vars = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|v| !self.functions.iter().any(|f| f == top_level(v)))
            .collect();
        Ok((Part::Template(name), vars))
    }

    /// Every function a template can call: ours, then minijinja's.
    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    /// What to say about a name a template reads that is neither a
    /// variable in scope (`variables`) nor a function: a function when a
    /// function's name is the closest, listing them all.
    pub fn unknown_name(&self, name: &str, variables: &[&str]) -> String {
        let functions: Vec<&str> = self.functions.iter().map(String::as_str).collect();
        let candidates: Vec<&str> = variables.iter().chain(&functions).copied().collect();
        match did_you_mean(name, &candidates) {
            Some(close) if functions.contains(&close) => format!(
                "unknown function `{name}`; did you mean `{close}`? functions: {}",
                functions.join(", ")
            ),
            Some(close) => format!("unknown variable `{name}`; did you mean `{close}`?"),
            None if variables.is_empty() => {
                format!(
                    "unknown function `{name}`; functions: {}",
                    functions.join(", ")
                )
            }
            None => format!(
                "unknown variable `{name}`; templates can use the variables {}, \
                 values extracted by earlier steps, and the functions {}",
                variables.join(", "),
                functions.join(", ")
            ),
        }
    }

    /// Renders a compiled template once with `stand_in` values and returns
    /// what would fail it whatever the real values are: an unknown filter,
    /// function or test, or a call with the wrong number of arguments.
    /// Rendering stops at the first failure, so this finds one such
    /// problem, on the path the stand-in values take.
    pub fn probe(&self, part: &Part, stand_in: &Value) -> Option<String> {
        let Part::Template(name) = part else {
            return None;
        };
        let template = self.env.get_template(name).ok()?;
        let e = render_bounded(&template, stand_in).err()?;
        if let Some(bound) = past_a_bound(&e) {
            return Some(bound);
        }
        if !VALUE_INDEPENDENT.contains(&e.kind()) {
            return None;
        }
        let source = template.source();
        let at = e.range().and_then(|r| source.get(r)).unwrap_or_default();
        // The name a filter, test or call starts with: `upperr` of `upperr(1)`.
        let called = at
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default();
        Some(match e.kind() {
            ErrorKind::UnknownFilter => {
                let message = format!("unknown filter `{called}`");
                match did_you_mean(called, FILTERS) {
                    Some(close) => format!("{message}; did you mean `{close}`?"),
                    None => format!("{message}; filters: {}", FILTERS.join(", ")),
                }
            }
            ErrorKind::UnknownFunction => self.unknown_name(called, &[]),
            ErrorKind::UnknownTest => format!("unknown test `{called}`"),
            _ => {
                let usage = OWN_FUNCTIONS.iter().find(|(f, _)| *f == called);
                let mut message = format!("`{at}`: {}", e.kind());
                if let Some((_, usage)) = usage {
                    message.push_str(&format!("; call it as {usage}"));
                }
                message
            }
        })
    }

    /// The text a part was compiled from.
    pub fn source(&self, part: &Part) -> String {
        match part {
            Part::Static(s) => s.clone(),
            Part::Template(name) => self
                .env
                .get_template(name)
                .map_or_else(|_| String::new(), |t| t.source().to_string()),
        }
    }

    /// Renders a part with the given variables. A failure's message quotes
    /// the template and the expression at fault.
    pub fn render(&self, part: &Part, ctx: &Value) -> Result<String, String> {
        match part {
            Part::Static(s) => Ok(s.clone()),
            Part::Template(name) => {
                let template = self
                    .env
                    .get_template(name)
                    .map_err(|e| template_error(&e))?;
                render_bounded(&template, ctx).map_err(|e| render_error(&e, template.source()))
            }
        }
    }
}

/// Renders `template` within [`FUEL`] (set on the environment) and
/// [`MAX_RENDERED_BYTES`]. The output goes straight into the buffer that
/// is returned, as `Template::render` does.
fn render_bounded(template: &Template<'_, '_>, ctx: &Value) -> Result<String, minijinja::Error> {
    let mut out = Capped(Vec::with_capacity(template.source().len()));
    template.render_captured_to(ctx, &mut out)?;
    // minijinja writes whole `str`s, so this never fails.
    String::from_utf8(out.0)
        .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "the output is not UTF-8"))
}

/// A render's output, refusing to grow past [`MAX_RENDERED_BYTES`].
struct Capped(Vec<u8>);

impl io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.0.len() + bytes.len() > MAX_RENDERED_BYTES {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "over the cap"));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What to say when a render stopped at one of its bounds.
fn past_a_bound(e: &minijinja::Error) -> Option<String> {
    match e.kind() {
        ErrorKind::OutOfFuel => Some(format!(
            "ran more than {FUEL} template instructions (a loop too long?)"
        )),
        ErrorKind::WriteFailure => Some(format!(
            "rendered more than {} MiB",
            MAX_RENDERED_BYTES / (1024 * 1024)
        )),
        _ => None,
    }
}

/// The longest part of a template a run-time failure quotes.
const QUOTED_CHARS: usize = 80;

/// `template `/items/{{ accounts.usr }}`: `accounts.usr` is undefined`.
fn render_error(e: &minijinja::Error, source: &str) -> String {
    let quoted: String = if source.chars().count() > QUOTED_CHARS {
        source.chars().take(QUOTED_CHARS).chain(['…']).collect()
    } else {
        source.to_string()
    };
    let at = e
        .range()
        .and_then(|r| source.get(r))
        .filter(|at| !at.is_empty());
    let problem = match (e.kind(), at) {
        (ErrorKind::UndefinedError, Some(at)) => format!("`{at}` is undefined"),
        (ErrorKind::OutOfFuel | ErrorKind::WriteFailure, _) => {
            past_a_bound(e).unwrap_or_else(|| template_error(e))
        }
        (_, Some(at)) => format!("`{at}`: {}", template_error(e)),
        (_, None) => template_error(e),
    };
    format!("template `{quoted}`: {problem}")
}

/// The variable an attribute path starts from: `env` for `env.API_TOKEN`.
pub fn top_level(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

fn template_error(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Values shared by every template of a run: environment variables and `[vars]`.
#[derive(Clone)]
pub struct Globals {
    pub env: Value,
    pub vars: Arc<BTreeMap<String, Value>>,
    /// `vars` as one template value (`vars.NAME`), built once.
    pub vars_value: Value,
}

/// Names only: environment values and `[vars]` may be secrets.
impl std::fmt::Debug for Globals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<String> = self
            .env
            .try_iter()
            .map(|names| names.map(|n| n.to_string()).collect())
            .unwrap_or_default();
        f.debug_struct("Globals")
            .field("env", &env)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Globals {
    /// `env` is what templates see as `env.NAME`: the variables the
    /// plan's inputs make visible, nothing more.
    pub fn new(env: &BTreeMap<String, String>, vars: BTreeMap<String, Value>) -> Self {
        Globals {
            env: Value::from(minijinja::value::Serde(env)),
            vars_value: Value::from(vars.clone()),
            vars: Arc::new(vars),
        }
    }

    /// A copy that shares no reference count with this one, for another
    /// generator thread: templates clone these values on every request,
    /// and threads touching one count contend for its cache line. The copy
    /// goes through JSON because minijinja's own serialization of a value
    /// into a value keeps sharing it.
    pub fn deep_copy(&self) -> Globals {
        let copy = |value: &Value| {
            serde_json::to_value(value).map_or_else(
                |_| value.clone(),
                |json| Value::from(minijinja::value::Serde(&json)),
            )
        };
        let vars: BTreeMap<String, Value> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), copy(v)))
            .collect();
        Globals {
            env: copy(&self.env),
            vars_value: Value::from(vars.clone()),
            vars: Arc::new(vars),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_not_a_template() {
        let mut t = Templates::default();
        let (part, vars) = t.compile("/api/items").unwrap();
        assert_eq!(part, Part::Static("/api/items".into()));
        assert!(vars.is_empty());
    }

    #[test]
    fn templates_report_their_variables_but_not_functions() {
        let mut t = Templates::default();
        let (part, vars) = t.compile("/items/{{ id }}?p={{ random(1, 3) }}").unwrap();
        assert!(!part.is_static());
        assert_eq!(vars.into_iter().collect::<Vec<_>>(), vec!["id".to_string()]);
        let (_, vars) = t
            .compile("{{ env.API_TOKEN }}/{{ accounts.user }}/{% set x = 1 %}{{ x.y }}")
            .unwrap();
        assert_eq!(
            vars.into_iter().collect::<Vec<_>>(),
            vec!["accounts.user".to_string(), "env.API_TOKEN".to_string()]
        );
        let out = t.render(&part, &minijinja::context! { id => 7 }).unwrap();
        assert!(out.starts_with("/items/7?p="), "{out}");
    }

    #[test]
    fn undefined_variables_fail_to_render() {
        let mut t = Templates::default();
        let (part, _) = t.compile("{{ missing }}").unwrap();
        assert!(t.render(&part, &minijinja::context! {}).is_err());
    }

    #[test]
    fn globals_do_not_show_values_when_debugged() {
        let env = BTreeMap::from([("API_TOKEN".to_string(), "s3cret".to_string())]);
        let vars = BTreeMap::from([("pin".to_string(), Value::from("1234"))]);
        let shown = format!("{:?}", Globals::new(&env, vars));
        assert!(
            shown.contains("API_TOKEN") && shown.contains("pin"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cret") && !shown.contains("1234"),
            "{shown}"
        );
    }

    /// The probe's verdict on `source` with `x` and `row.user` defined.
    fn probed(source: &str) -> Option<String> {
        let mut t = Templates::default();
        let (part, _) = t.compile(source).unwrap();
        let row = BTreeMap::from([("user", "alice")]);
        t.probe(&part, &minijinja::context! { x => 1, row => row })
    }

    #[test]
    fn the_probe_finds_unknown_filters_with_a_suggestion() {
        let found = probed("/a/{{ x | upperr }}").expect("a problem");
        assert_eq!(found, "unknown filter `upperr`; did you mean `upper`?");
        let found = probed("{{ x | zzzzzz(1) }}").expect("a problem");
        assert!(
            found.starts_with("unknown filter `zzzzzz`; filters: abs, "),
            "{found}"
        );
        assert_eq!(
            probed("{{ x is oddd }}").as_deref(),
            Some("unknown test `oddd`")
        );
    }

    #[test]
    fn the_probe_finds_calls_with_the_wrong_arguments() {
        assert_eq!(
            probed("{{ random(1) }}").as_deref(),
            Some("`random(1)`: missing argument; call it as random(low, high)")
        );
        assert_eq!(
            probed("{{ uuid(3) }}").as_deref(),
            Some("`uuid(3)`: too many arguments; call it as uuid()")
        );
        assert_eq!(
            probed("{{ range(1, 2, 3, 4) }}").as_deref(),
            Some("`range(1, 2, 3, 4)`: too many arguments")
        );
    }

    #[test]
    fn the_probe_leaves_what_depends_on_values_to_the_run() {
        for fine in [
            "{{ random(1, 10) }}/{{ uuid() }}/{{ x | upper }}",
            "{{ row.user | upper }}{{ timestamp() }}{{ timestamp_ms() }}",
            // A type error might not happen with the real value.
            "{{ x.name }}{{ x + 'a' }}",
            "{{ random(10, 1) }}",
        ] {
            assert_eq!(probed(fine), None, "{fine}");
        }
    }

    #[test]
    fn every_listed_filter_exists() {
        let mut t = Templates::default();
        for filter in FILTERS {
            let (part, _) = t.compile(&format!("{{{{ x | {filter} }}}}")).unwrap();
            let Part::Template(name) = &part else {
                panic!("a template")
            };
            let err = t
                .env
                .get_template(name)
                .unwrap()
                .render(minijinja::context! { x => "a" });
            if let Err(e) = err {
                assert_ne!(e.kind(), ErrorKind::UnknownFilter, "{filter}");
            }
        }
    }

    #[test]
    fn functions_are_ours_then_minijinjas() {
        let t = Templates::default();
        let functions: Vec<&str> = t.functions().iter().map(String::as_str).collect();
        assert_eq!(
            functions[..4],
            ["random", "uuid", "timestamp", "timestamp_ms"]
        );
        assert!(functions.contains(&"range"), "{functions:?}");
        let message = t.unknown_name("randon", &["first_id", "vu"]);
        assert!(
            message.starts_with(
                "unknown function `randon`; did you mean `random`? functions: random, uuid, "
            ),
            "{message}"
        );
        let message = t.unknown_name("fist_id", &["first_id", "vu"]);
        assert_eq!(
            message,
            "unknown variable `fist_id`; did you mean `first_id`?"
        );
    }

    #[test]
    fn a_failure_at_run_time_quotes_the_template_and_the_expression() {
        let mut t = Templates::default();
        let (part, _) = t.compile("/items/{{ row.usr }}?id={{ x }}").unwrap();
        let ctx = minijinja::context! { x => 1, row => BTreeMap::from([("user", "alice")]) };
        assert_eq!(
            t.render(&part, &ctx).unwrap_err(),
            "template `/items/{{ row.usr }}?id={{ x }}`: `row.usr` is undefined"
        );
        let long = format!("{}{{{{ missing }}}}", "a".repeat(100));
        let (part, _) = t.compile(&long).unwrap();
        let message = t.render(&part, &ctx).unwrap_err();
        assert!(
            message.ends_with("aaa…`: `missing` is undefined"),
            "{message}"
        );
    }

    #[test]
    fn a_render_is_bounded_in_instructions_and_in_bytes() {
        let mut t = Templates::default();
        let ctx = minijinja::context! { x => 1 };
        let (part, _) = t
            .compile("{% for i in range(40) %}{{ 'x' * 10000000 }}{% endfor %}")
            .unwrap();
        let message = t.render(&part, &ctx).unwrap_err();
        assert!(
            message.ends_with(": rendered more than 16 MiB"),
            "{message}"
        );
        assert_eq!(
            t.probe(&part, &ctx).as_deref(),
            Some("rendered more than 16 MiB")
        );
        let (part, _) = t
            .compile(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            )
            .unwrap();
        let message = t.render(&part, &ctx).unwrap_err();
        assert!(
            message.ends_with(": ran more than 100000 template instructions (a loop too long?)"),
            "{message}"
        );
        assert!(t.probe(&part, &ctx).is_some());
        // Just under the byte cap is fine.
        let (part, _) = t.compile("{{ 'x' * 16777216 }}").unwrap();
        assert_eq!(t.render(&part, &ctx).unwrap().len(), MAX_RENDERED_BYTES);
    }

    /// The realistic templates (the quickstart's and the presets') use a
    /// tiny part of [`FUEL`]: a hundredth of it covers any of them a
    /// thousand times over.
    #[test]
    fn realistic_templates_use_a_tiny_part_of_the_fuel() {
        let mut t = Templates::default();
        let ctx = minijinja::context! { vu => 7, iteration => 42, first_id => 3, id => 1 };
        for source in [
            "/api/items?page={{ random(1, 10) }}",
            "/api/items/{{ first_id }}",
            "widget {{ vu }}-{{ iteration }}",
            "/items/{{ id }}?page={{ random(1, 10) }}",
        ] {
            let (part, _) = t.compile(source).unwrap();
            let Part::Template(name) = &part else {
                panic!("a template")
            };
            let template = t.env.get_template(name).unwrap();
            let captured = template.render_captured_to(&ctx, io::sink()).unwrap();
            let (used, _) = captured.state().fuel_levels().unwrap();
            assert!(used <= FUEL / 1000, "{source}: {used}");
        }
    }

    #[test]
    fn syntax_errors_are_reported() {
        let mut t = Templates::default();
        assert!(t.compile("{{ oops ").is_err());
    }
}
