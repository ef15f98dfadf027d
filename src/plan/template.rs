//! Request templates, compiled once when the plan is built.
//!
//! Any path, header value or body that contains `{{` or `{%` becomes a
//! minijinja template registered in one shared [`Templates`] environment;
//! anything else stays a plain string that is never rendered. Rendering is
//! strict: an undefined variable is an error (counted as a failed request of
//! kind `template`), never an empty string sent to the target.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior, Value};

/// Built-in variables every template can use.
pub const BUILTIN_VARS: &[&str] = &["vu", "iteration", "env", "vars"];
/// Functions every template can call (ours, then minijinja's own).
const FUNCTIONS: &[&str] = &[
    "random",
    "uuid",
    "timestamp",
    "timestamp_ms",
    "range",
    "dict",
    "namespace",
    "debug",
];

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
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
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
        Templates { env, count: 0 }
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
            .filter(|v| !FUNCTIONS.contains(&top_level(v)))
            .collect();
        Ok((Part::Template(name), vars))
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

    /// Renders a part with the given variables.
    pub fn render(&self, part: &Part, ctx: &Value) -> Result<String, String> {
        match part {
            Part::Static(s) => Ok(s.clone()),
            Part::Template(name) => self
                .env
                .get_template(name)
                .and_then(|t| t.render(ctx))
                .map_err(|e| template_error(&e)),
        }
    }
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

    #[test]
    fn syntax_errors_are_reported() {
        let mut t = Templates::default();
        assert!(t.compile("{{ oops ").is_err());
    }
}
