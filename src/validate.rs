//! Checking a scenario without running it, for every front end.
//!
//! [`check_file`] and [`check_text`] parse and compile a scenario exactly as
//! a run does (`scenario` then `plan::compile`, with the caller's
//! [`Inputs`]) and return a [`Checked`]: the plan when it is valid, and every
//! problem in file order. [`Checked::problems`] gives them as serializable
//! [`Problem`]s with 1-based line and column, the shape `loadctl validate
//! --format json` prints and the MCP tool `validate_scenario` returns;
//! [`Checked::rendered`] gives the `file:line:column: severity: message`
//! lines `validate` and `run` print.
//!
//! Checking is bounded for hostile input: a scenario over
//! [`scenario::MAX_SCENARIO_BYTES`] is refused before it is parsed, and
//! only the first [`MAX_SHOWN`](crate::diag::MAX_SHOWN) problems are kept,
//! followed by a count of the rest.

use std::path::Path;

use serde::Serialize;

use crate::diag::{Diagnostics, Severity, SourceFile};
use crate::plan::{self, Inputs, Overrides, Plan};
use crate::scenario::{self, Scenario};

/// A scenario, checked.
#[derive(Debug)]
pub struct Checked {
    /// The text and the name problems are reported under.
    pub source: SourceFile,
    /// `Some` only when there is no error.
    pub plan: Option<Plan>,
    /// Every problem, in file order (those without a place first).
    pub diagnostics: Diagnostics,
}

/// One problem, for machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// 1-based; `None` for a problem in a flag or the environment.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    pub message: String,
}

impl Checked {
    /// No errors (warnings allowed).
    pub fn valid(&self) -> bool {
        !self.diagnostics.has_errors()
    }

    /// The plan, or every error rendered as `file:line:column: error: …`,
    /// one per line (for a front end that answers with text).
    pub fn into_plan(self) -> Result<Plan, String> {
        match self.plan {
            Some(plan) => Ok(plan),
            None => Err(self
                .diagnostics
                .items()
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(|d| self.source.render(d))
                .collect::<Vec<_>>()
                .join("\n")),
        }
    }

    pub fn problems(&self) -> Vec<Problem> {
        self.diagnostics
            .items()
            .iter()
            .map(|d| {
                let at = d.span.as_ref().map(|s| self.source.line_col(s.start));
                Problem {
                    severity: d.severity,
                    line: at.map(|a| a.line),
                    column: at.map(|a| a.column),
                    message: d.message.clone(),
                }
            })
            .collect()
    }

    /// Each problem as `file:line:column: severity: message`.
    pub fn rendered(&self) -> impl Iterator<Item = String> + '_ {
        self.diagnostics
            .items()
            .iter()
            .map(|d| self.source.render(d))
    }
}

/// Reads, parses and compiles the scenario file at `path`.
pub fn check_file(path: &Path, overrides: &Overrides, inputs: &Inputs) -> Checked {
    let (source, scenario, diags) = scenario::load(path);
    finish(source, scenario, diags, overrides, inputs)
}

/// Parses and compiles scenario text given in memory; `name` is what
/// problems are reported under and what names the plan. Text over
/// [`scenario::MAX_SCENARIO_BYTES`] is refused, as a file would be.
pub fn check_text(name: &Path, text: &str, overrides: &Overrides, inputs: &Inputs) -> Checked {
    let mut diags = Diagnostics::default();
    if let Some(problem) = scenario::size_problem(text.len() as u64) {
        diags.error(None, problem);
        return finish(
            SourceFile::new(name, String::new()),
            None,
            diags,
            overrides,
            inputs,
        );
    }
    let scenario = scenario::parse(text, &mut diags);
    finish(
        SourceFile::new(name, text.to_string()),
        scenario,
        diags,
        overrides,
        inputs,
    )
}

fn finish(
    source: SourceFile,
    scenario: Option<Scenario>,
    mut diags: Diagnostics,
    overrides: &Overrides,
    inputs: &Inputs,
) -> Checked {
    let plan = scenario.and_then(|scenario| {
        let mut plan_diags = Diagnostics::default();
        let plan = plan::compile(
            &scenario,
            Some(&source.path),
            overrides,
            inputs,
            &mut plan_diags,
        );
        diags.extend(plan_diags);
        plan.filter(|_| !diags.has_errors())
    });
    Checked {
        source,
        plan,
        diagnostics: diags.sorted(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{EnvVars, Files};

    const SCENARIO: &str = "[target]\nbase_url = \"demo\"\n[load]\nusers = 0\nduration = \"1s\"\n[[flow]]\n  [[flow.step]]\n  path = \"/{{ env.API_TOKN }}\"\n";

    fn inputs(unset_env: Severity) -> Inputs {
        Inputs {
            env: EnvVars::all([("API_TOKEN".to_string(), "s3cret".to_string())]),
            files: Files::Nowhere,
            unset_env,
        }
    }

    #[test]
    fn text_in_memory_gives_every_problem_with_its_place() {
        let checked = check_text(
            Path::new("agent.toml"),
            SCENARIO,
            &Overrides::default(),
            &inputs(Severity::Warning),
        );
        assert!(!checked.valid());
        assert!(checked.plan.is_none());
        let problems = checked.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_eq!(
            (problems[0].severity, problems[0].line, problems[0].column),
            (Severity::Error, Some(4), Some(9))
        );
        assert!(problems[0].message.contains("at least 1"), "{problems:#?}");
        assert_eq!(problems[1].severity, Severity::Warning);
        assert_eq!((problems[1].line, problems[1].column), (Some(8), Some(10)));
        assert!(
            problems[1].message.contains("did you mean `env.API_TOKEN`"),
            "{problems:#?}"
        );
        let json = serde_json::to_string(&problems[1]).unwrap();
        assert!(json.starts_with("{\"severity\":\"warning\",\"line\":8,\"column\":10,"));
        assert!(!json.contains("s3cret"));
        let lines: Vec<String> = checked.rendered().collect();
        assert!(lines[0].starts_with("agent.toml:4:9: error: "), "{lines:?}");
    }

    #[test]
    fn a_valid_scenario_comes_with_its_plan() {
        let text = SCENARIO
            .replace("users = 0", "users = 1")
            .replace("API_TOKN", "API_TOKEN");
        let checked = check_text(
            Path::new("agent.toml"),
            &text,
            &Overrides::default(),
            &inputs(Severity::Error),
        );
        assert!(checked.valid() && checked.problems().is_empty());
        assert_eq!(checked.plan.expect("valid").name, "agent");
    }

    #[test]
    fn text_over_the_limit_is_refused_like_a_file() {
        let text = "#".repeat(crate::scenario::MAX_SCENARIO_BYTES as usize + 1);
        let checked = check_text(
            Path::new("agent.toml"),
            &text,
            &Overrides::default(),
            &inputs(Severity::Error),
        );
        let problems = checked.problems();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].message.contains("over the limit of 10 MiB"));
        assert!(checked.source.text.is_empty());
    }

    #[test]
    fn a_missing_file_is_a_problem_without_a_place() {
        let checked = check_file(
            Path::new("/nonexistent/s.toml"),
            &Overrides::default(),
            &inputs(Severity::Error),
        );
        let problems = checked.problems();
        assert_eq!((problems[0].line, problems[0].column), (None, None));
        assert!(problems[0].message.starts_with("cannot read the file"));
    }
}
