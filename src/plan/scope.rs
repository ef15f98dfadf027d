//! What a template may read, checked when the plan is built.
//!
//! A template reads names in scope: the built-ins (`vu`, `iteration`,
//! `env`, `vars`), the `[vars]` entries, the data feeders and the values
//! extracted by earlier steps of its flow. [`Compiler::template`] compiles
//! a template and checks each read: a name that is not in scope (with a
//! did-you-mean that takes functions into account), `env.NAME` as the
//! plan's [`Inputs`](super::Inputs) judge it, and a key that a value of
//! known shape does not have (a data file's column, a `[vars]` entry),
//! since each of these fails every request that renders the template.
//!
//! A template that passes is then rendered once against stand-in values
//! (the `[vars]` values, each feeder's first row, the environment
//! variables it names, and a placeholder for each extracted value) by
//! [`Templates::probe`](super::template::Templates::probe), which finds an
//! unknown filter or function and a call with the wrong arguments.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::value::ValueKind;
use minijinja::Value;

use super::template::{self, Globals, Part};
use super::{Compiler, Feeder};
use crate::diag::{did_you_mean, Severity, Span, Spanned};

/// What stands in for an extracted value when a template is probed: its
/// real type is only known at run time.
const EXTRACTED_STAND_IN: i64 = 1;

/// The values a probe render sees for the names every template shares,
/// hiding each other as a run's do: feeders hide the built-ins, which
/// hide `[vars]`. `env` is added per template, with only the variables it
/// names.
pub(super) fn stand_ins(globals: &Globals, feeders: &[Feeder]) -> BTreeMap<String, Value> {
    let mut values: BTreeMap<String, Value> = globals
        .vars
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    values.insert("vu".into(), Value::from(1));
    values.insert("iteration".into(), Value::from(0));
    values.insert("vars".into(), globals.vars_value.clone());
    for feeder in feeders {
        if let Some(row) = feeder.rows.first() {
            values.insert(feeder.name.clone(), row.clone());
        }
    }
    values
}

impl Compiler<'_> {
    /// Compiles a template and checks what it reads; `None` when that is
    /// an error (reported at the template's value).
    pub(super) fn template(
        &mut self,
        text: &Spanned<String>,
        known: &BTreeSet<String>,
        context: &str,
    ) -> Option<Part> {
        let (part, paths) = match self.templates.compile(&text.value) {
            Ok(compiled) => compiled,
            Err(e) => {
                self.diags
                    .error(text.span.clone(), format!("{context}: template error: {e}"));
                return None;
            }
        };
        let mut ok = self.names_in_scope(&paths, known, &text.span, context);
        if !self.env_is_a_feeder {
            let env_names: BTreeSet<&str> = env_names(&paths).collect();
            for name in env_names {
                ok &= self.env_var(name, &text.span, context);
            }
        }
        for path in &paths {
            ok &= self.key_exists(path, &text.span, context);
        }
        // The probe only makes sense once every name resolves; otherwise
        // it would fail on the names already reported.
        if ok {
            let stand_in = self.stand_in(known, &paths);
            if let Some(problem) = self.templates.probe(&part, &stand_in) {
                self.diags
                    .error(text.span.clone(), format!("{context}: {problem}"));
                ok = false;
            }
        }
        ok.then_some(part)
    }

    /// Reports each name the template reads that is not in scope.
    fn names_in_scope(
        &mut self,
        paths: &BTreeSet<String>,
        known: &BTreeSet<String>,
        span: &Span,
        context: &str,
    ) -> bool {
        let names: BTreeSet<&str> = paths.iter().map(|p| template::top_level(p)).collect();
        let mut ok = true;
        for name in names.into_iter().filter(|name| !known.contains(*name)) {
            ok = false;
            let variables: Vec<&str> = known.iter().map(String::as_str).collect();
            let message = self.templates.unknown_name(name, &variables);
            self.diags
                .error(span.clone(), format!("{context}: {message}"));
        }
        ok
    }

    /// Judges a template's read of `env.NAME` against the inputs; false
    /// when that is an error.
    fn env_var(&mut self, name: &str, span: &Span, context: &str) -> bool {
        let Some((severity, problem)) = self.inputs.env_problem(name) else {
            return true;
        };
        let message = format!("{context}: {problem}");
        match severity {
            Severity::Error => self.diags.error(span.clone(), message),
            Severity::Warning => self.diags.warning(span.clone(), message),
        }
        severity != Severity::Error
    }

    /// Checks an attribute path such as `accounts.user` against a value
    /// whose keys are known when the plan is built: a feeder's columns,
    /// `[vars]` and its tables. A missing key fails every render (maps
    /// have no methods either), so it is an error even behind `default`.
    fn key_exists(&mut self, path: &str, span: &Span, context: &str) -> bool {
        let mut segments = path.split('.');
        let root = segments.next().unwrap_or_default();
        if self.extracted.contains(root) || (root == "env" && !self.env_is_a_feeder) {
            return true;
        }
        let Some(mut value) = self.stand_ins.get(root).cloned() else {
            return true;
        };
        let mut prefix = root.to_string();
        for key in segments {
            if value.kind() != ValueKind::Map {
                return true;
            }
            if let Ok(next) = value.get_attr(key) {
                if !next.is_undefined() {
                    value = next;
                    prefix = format!("{prefix}.{key}");
                    continue;
                }
            }
            let keys: Vec<String> = value
                .try_iter()
                .map(|keys| keys.map(|k| k.to_string()).collect())
                .unwrap_or_default();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let is_feeder = prefix == root && self.feeder_names.iter().any(|f| f == root);
            let mut message = if is_feeder {
                format!("{context}: data `{root}` has no column `{key}`")
            } else {
                format!("{context}: `{prefix}` has no `{key}`")
            };
            match did_you_mean(key, &keys) {
                Some(close) => message.push_str(&format!("; did you mean `{prefix}.{close}`?")),
                None if is_feeder => {
                    message.push_str(&format!("; its columns are {}", keys.join(", ")))
                }
                None => message.push_str(&format!("; it has {}", keys.join(", "))),
            }
            self.diags.error(span.clone(), message);
            return false;
        }
        true
    }

    /// The values a probe render of one template sees.
    fn stand_in(&self, known: &BTreeSet<String>, paths: &BTreeSet<String>) -> Value {
        let mut values = self.stand_ins.clone();
        if !self.env_is_a_feeder {
            let set = self.inputs.env.values();
            let env = env_names(paths).map(|name| (name, set.get(name).map_or("", String::as_str)));
            values.insert("env".into(), Value::from_iter(env));
        }
        for name in known {
            if self.extracted.contains(name) || !values.contains_key(name) {
                values.insert(name.clone(), Value::from(EXTRACTED_STAND_IN));
            }
        }
        Value::from(values)
    }
}

/// The environment variables a template names (`API_TOKEN` of
/// `env.API_TOKEN`).
fn env_names(paths: &BTreeSet<String>) -> impl Iterator<Item = &str> {
    paths
        .iter()
        .filter_map(|p| p.strip_prefix("env."))
        .map(template::top_level)
}

#[cfg(test)]
mod tests {
    use super::super::{compile, EnvVars, Files, Inputs, Overrides};
    use crate::diag::{Diagnostics, Severity};

    /// The problems of a scenario with a feeder `accounts` (columns
    /// `user,password`), `[vars]` and one flow of `steps`, as
    /// `(severity, message)`.
    fn problems(steps: &str) -> Vec<(Severity, String)> {
        let text = format!(
            "[target]\nbase_url = \"http://127.0.0.1:9\"\n\
             [load]\nusers = 1\nduration = \"1s\"\n\
             [vars]\nregion = \"eu\"\ncreds = {{ name = \"n\" }}\n\
             [[data]]\nname = \"accounts\"\nfile = \"accounts.csv\"\n\
             [[flow]]\n{steps}"
        );
        let inputs = Inputs {
            env: EnvVars::all([("API_TOKEN".to_string(), "t".to_string())]),
            files: Files::in_memory([(
                "accounts.csv".to_string(),
                b"user,password\nalice,pw\n".to_vec(),
            )]),
            unset_env: Severity::Warning,
        };
        let mut diags = Diagnostics::default();
        let scenario = crate::scenario::parse(&text, &mut diags).expect("valid TOML");
        compile(&scenario, None, &Overrides::default(), &inputs, &mut diags);
        diags
            .items()
            .iter()
            .map(|d| (d.severity, d.message.clone()))
            .collect()
    }

    fn step(path: &str) -> String {
        format!("  [[flow.step]]\n  path = \"{path}\"\n")
    }

    fn errors(steps: &str) -> Vec<String> {
        problems(steps)
            .into_iter()
            .filter(|(severity, _)| *severity == Severity::Error)
            .map(|(_, message)| message)
            .collect()
    }

    #[test]
    fn a_column_the_data_file_does_not_have_is_an_error() {
        assert_eq!(
            errors(&step("/{{ accounts.usr }}")),
            ["path: data `accounts` has no column `usr`; did you mean `accounts.user`?"]
        );
        assert_eq!(
            errors(&step("/{{ accounts.zzzzzz | default('x') }}")),
            ["path: data `accounts` has no column `zzzzzz`; its columns are password, user"]
        );
        assert!(errors(&step("/{{ accounts.user }}/{{ accounts.password }}")).is_empty());
    }

    #[test]
    fn a_key_vars_does_not_have_is_an_error() {
        assert_eq!(
            errors(&step("/{{ vars.regon }}")),
            ["path: `vars` has no `regon`; did you mean `vars.region`?"]
        );
        assert_eq!(
            errors(&step("/{{ creds.nam }}")),
            ["path: `creds` has no `nam`; did you mean `creds.name`?"]
        );
        assert!(errors(&step("/{{ vars.region }}/{{ creds.name }}/{{ region }}")).is_empty());
    }

    #[test]
    fn an_extracted_value_hides_a_shared_name_and_is_not_judged_by_it() {
        let steps = "  [[flow.step]]\n  path = \"/a\"\n  \
                     extract = { accounts = { json = \"/a\" } }\n\
                     [[flow.step]]\n  path = \"/{{ accounts.anything }}\"\n";
        assert!(errors(steps).is_empty(), "{:?}", errors(steps));
        // In the next flow, `accounts` is the feeder again.
        let next = format!("{steps}[[flow]]\n{}", step("/{{ accounts.anything }}"));
        assert_eq!(errors(&next).len(), 1, "{:?}", errors(&next));
    }

    #[test]
    fn every_template_is_probed_for_filters_and_calls() {
        let steps = "  [[flow.step]]\n  path = \"/a\"\n  \
                     extract = { first_id = { json = \"/id\" } }\n\
                     [[flow.step]]\n  path = \"/{{ first_id | upperr }}\"\n  \
                     headers = { \"X-A\" = \"{{ random(1) }}\" }\n  \
                     body = \"{{ randon(1, 10) }}\"\n";
        let found = errors(steps);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(
            found[0],
            "path: unknown filter `upperr`; did you mean `upper`?"
        );
        assert_eq!(
            found[1],
            "step headers: `random(1)`: missing argument; call it as random(low, high)"
        );
        assert!(
            found[2].starts_with(
                "body: unknown function `randon`; did you mean `random`? functions: random, uuid,"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn an_unset_variable_is_a_warning_and_its_template_is_still_probed() {
        let found = problems(&step(
            "/{{ env.NOPE_NOT_SET | upperr }}/{{ env.API_TOKEN | upper }}",
        ));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, Severity::Warning);
        assert!(
            found[0].1.contains("`NOPE_NOT_SET` is not set"),
            "{found:?}"
        );
        assert_eq!(
            found[1],
            (
                Severity::Error,
                "path: unknown filter `upperr`; did you mean `upper`?".to_string()
            )
        );
    }
}
