//! Scenarios as an agent gives them: TOML text (`scenario`) or a file in
//! the scenario folder (`path`), checked with the agent's inputs (the
//! environment allowlist and the confined folder); and the tools
//! `create_scenario` and `validate_scenario`.
//!
//! Size is checked before parsing: text over [`MAX_SCENARIO_BYTES`] is
//! refused by its length, and so is a file, by its size on disk. A `path`
//! is resolved by the same confinement rules as a data feeder
//! ([`Files::resolve`]), and the scenario's own feeders are read relative
//! to its folder, never outside the scenario folder.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::limits::{LoadSummary, MAX_SCENARIO_BYTES};
use super::{Agent, ToolError};
use crate::diag::Severity;
use crate::plan::{BaseUrl, EnvVars, Files, Inputs, Overrides, Plan, StepKind};
use crate::preset::{self, Preset};
use crate::units::fmt_duration;
use crate::validate::{check_file, check_text, Checked};

/// The name problems in scenario text are reported under.
const TEXT_NAME: &str = "scenario.toml";

/// `validate_scenario`'s arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateInput {
    /// The scenario's TOML text. Give this or `path`.
    pub scenario: Option<String>,
    /// A scenario file, relative to the server's scenario folder
    /// (`--scenario-dir`). Give this or `scenario`.
    pub path: Option<String>,
}

/// One problem in a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ProblemReport {
    /// `error` (the scenario cannot run) or `warning`.
    pub severity: String,
    /// 1-based; absent for a problem in an argument rather than the text.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    pub message: String,
}

/// `validate_scenario`'s result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Validation {
    /// No errors (warnings allowed).
    pub valid: bool,
    /// Every problem, in file order.
    pub problems: Vec<ProblemReport>,
    /// The scenario's name, when valid.
    pub name: Option<String>,
    /// The target, when valid (`demo` for the built-in demo target).
    pub target: Option<String>,
    /// The load it asks for, when valid.
    pub load: Option<LoadSummary>,
    /// Why this server would refuse to run it, though it is valid: each cap
    /// it exceeds, or a target address outside the allowlist.
    pub refusals: Vec<String>,
}

/// A preset for `create_scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PresetName {
    /// A few users requesting one page.
    Basic,
    /// List, read and create through a JSON API, with extracted values.
    RestApi,
    /// Base load, a sudden surge of users, back to base.
    Spike,
    /// Steady moderate load for a long time.
    Soak,
}

impl From<PresetName> for Preset {
    fn from(p: PresetName) -> Preset {
        match p {
            PresetName::Basic => Preset::Basic,
            PresetName::RestApi => Preset::RestApi,
            PresetName::Spike => Preset::Spike,
            PresetName::Soak => Preset::Soak,
        }
    }
}

/// A load pattern `create_scenario` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatternName {
    /// The same load from start to end.
    Constant,
    /// Up from zero over the first quarter, then held.
    Ramp,
    /// The spike preset's own pattern.
    Spike,
}

/// `create_scenario`'s arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    /// The starting point: `basic` (default), `rest-api`, `spike` or `soak`.
    pub preset: Option<PresetName>,
    /// The target, e.g. `http://127.0.0.1:8080/api/items`: its origin
    /// becomes the base URL and its path the first step's path. Default:
    /// the built-in demo target.
    pub url: Option<String>,
    /// Concurrent users (closed model; for `spike`, the users at the peak).
    pub users: Option<u64>,
    /// Arrivals per second instead of users (the open model).
    pub rate: Option<f64>,
    /// How long to run, e.g. `30s`, `2m`.
    pub duration: Option<String>,
    /// `constant` or `ramp` (the `spike` preset keeps its own pattern).
    pub pattern: Option<PatternName>,
}

/// `create_scenario`'s result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CreatedScenario {
    pub preset: PresetName,
    /// The scenario's TOML text; it passes `validate_scenario`. Pass it as
    /// `scenario` to `run_load_test` or `start_run`, edited or not.
    pub scenario: String,
    pub load: LoadSummary,
    /// Why this server would refuse to run it as it is (each cap it
    /// exceeds); empty when it can run.
    pub refusals: Vec<String>,
}

impl Agent {
    /// The agent's inputs: the allowed environment variables, and files
    /// inside the scenario folder, relative ones from `base` (a folder
    /// inside it).
    fn inputs(&self, base: Option<&Path>, unset_env: Severity) -> Result<Inputs, ToolError> {
        let g = self.guardrails();
        let files = match &g.scenario_dir {
            None => Files::Nowhere,
            Some(root) => Files::confined_from(root, base.unwrap_or(root))
                .map_err(|e| ToolError::new(format!("the scenario folder cannot be read: {e}")))?,
        };
        Ok(Inputs {
            env: EnvVars::allowlist(g.allowed_env.iter().cloned(), EnvVars::process_values()),
            files,
            unset_env,
        })
    }

    /// Parses and compiles the scenario given as `scenario` text or as a
    /// `path` in the scenario folder, with `overrides` merged in.
    pub(super) fn check(
        &self,
        scenario: Option<&str>,
        path: Option<&str>,
        overrides: &Overrides,
        unset_env: Severity,
    ) -> Result<Checked, ToolError> {
        let mut checked = match (scenario, path) {
            (Some(_), Some(_)) => Err(ToolError::new(
                "give either `scenario` (the TOML text) or `path` (a file in the scenario folder), not both",
            )),
            (None, None) => Err(ToolError::new(
                "no scenario: pass its TOML text as `scenario` (create_scenario writes one), or a file in the scenario folder as `path`",
            )),
            (Some(text), None) => {
                refuse_size(text.len() as u64, "the `scenario` text")?;
                let inputs = self.inputs(None, unset_env)?;
                Ok(check_text(Path::new(TEXT_NAME), text, overrides, &inputs))
            }
            (None, Some(path)) => {
                let Some(root) = &self.guardrails().scenario_dir else {
                    return Err(ToolError::new(
                        "this server reads no files (it was started without --scenario-dir): pass the scenario's TOML text as `scenario` instead of `path`",
                    ));
                };
                let file = Files::confined(root)
                    .map(|files| files.resolve(path))
                    .map_err(|e| ToolError::new(format!("the scenario folder cannot be read: {e}")))?
                    .map_err(|e| ToolError::new(format!("`path` {path:?}: {e}")))?;
                let size = std::fs::metadata(&file)
                    .map_err(|e| ToolError::new(format!("`path` {path:?}: {e}")))?
                    .len();
                refuse_size(size, &format!("`path` {path:?}"))?;
                let inputs = self.inputs(file.parent(), unset_env)?;
                Ok(check_file(&file, overrides, &inputs))
            }
        }?;
        if let Some(plan) = &mut checked.plan {
            self.mark_env_secret(plan);
        }
        Ok(checked)
    }

    /// Makes every allowed environment variable's value a secret of
    /// `plan`, so the runner redacts it from failure messages: a target
    /// that echoes its input would otherwise hand it back to the agent.
    fn mark_env_secret(&self, plan: &mut Plan) {
        for name in &self.guardrails().allowed_env {
            let var = format!("env.{name}");
            if !plan.secrets.vars.contains(&var) {
                plan.secrets.vars.push(var);
            }
        }
    }

    /// Why this server would refuse `plan`: the caps it exceeds, requests
    /// it may not send ([`Agent::request_refusals`]), and a target that is
    /// an address outside the allowlist (a name is judged once resolved,
    /// when the run starts).
    pub(super) fn refusals(&self, plan: &Plan) -> Vec<String> {
        let g = self.guardrails();
        let mut out = g.limits.refusals(&plan.load);
        out.extend(self.request_refusals(plan));
        if let BaseUrl::Url(e) = &plan.target.base {
            if let Ok(ip) = e.host.parse::<std::net::IpAddr>() {
                if let Err(why) = g.hosts.check(&e.host, &[(ip, e.port).into()]) {
                    out.push(why);
                }
            }
        }
        out
    }

    /// What the plan's requests may not do here: set `Host` (over HTTP/1.1
    /// that addresses another virtual host than the allowed one), skip
    /// certificate checks without `--allow-insecure-tls`, or wait longer
    /// for an answer than a whole run may last.
    fn request_refusals(&self, plan: &Plan) -> Vec<String> {
        let g = self.guardrails();
        let mut out = Vec::new();
        let mut host_set_in = Vec::new();
        if plan
            .target
            .headers
            .iter()
            .any(|(n, _)| n == http::header::HOST)
        {
            host_set_in.push("[target] headers".to_string());
        }
        if let Some(t) = g
            .limits
            .timeout_refusal("[target] timeout", plan.target.timeout)
        {
            out.push(t);
        }
        for step in plan.flows.iter().flat_map(|f| &f.steps) {
            let (headers, timeout) = match &step.kind {
                StepKind::Http(http) => (&http.headers, None),
                StepKind::Mcp(mcp) => (&mcp.request.headers, mcp.timeout),
            };
            if headers.iter().any(|(n, _)| n == http::header::HOST) {
                host_set_in.push(format!("step {:?}", step.name));
            }
            let what = format!("step {:?} timeout", step.name);
            out.extend(timeout.and_then(|t| g.limits.timeout_refusal(&what, t)));
        }
        if !host_set_in.is_empty() {
            out.push(format!(
                "the scenario sets the Host header ({}); this server sends requests only with the target's own host: remove the Host header and put the host you mean in [target] base_url (it must be allowed, see get_limits)",
                host_set_in.join(", ")
            ));
        }
        if plan.target.insecure && !g.allow_insecure_tls {
            out.push("[target] insecure = true (skip certificate checks) is refused: this server was started without --allow-insecure-tls; remove `insecure`, or give the target's CA with [target] ca_file; only the person running `loadctl serve-mcp` can pass --allow-insecure-tls".to_string());
        }
        out
    }

    /// `validate_scenario`: every problem with line and column, and what
    /// this server would refuse.
    pub fn validate_scenario(&self, input: &ValidateInput) -> Result<Validation, ToolError> {
        let checked = self.check(
            input.scenario.as_deref(),
            input.path.as_deref(),
            &Overrides::default(),
            Severity::Warning,
        )?;
        let plan = checked.plan.as_ref();
        Ok(Validation {
            valid: checked.valid(),
            problems: problems(&checked),
            name: plan.map(|p| p.name.clone()),
            target: plan.map(target_name),
            load: plan.map(|p| LoadSummary::of(&p.load)),
            refusals: plan.map(|p| self.refusals(p)).unwrap_or_default(),
        })
    }

    /// `create_scenario`: a preset with the given values spliced in,
    /// valid, and what this server would refuse in it.
    pub fn create_scenario(&self, input: &CreateInput) -> Result<CreatedScenario, ToolError> {
        let name = input.preset.unwrap_or(PresetName::Basic);
        if input.users.is_some() && input.rate.is_some() {
            return Err(ToolError::new(
                "give `users` (concurrent users) or `rate` (arrivals per second), not both",
            ));
        }
        let params = preset::Params {
            url: input.url.clone(),
            users: input.users,
            duration: input.duration.clone(),
        };
        let mut text = preset::render(name.into(), &params, Path::new(TEXT_NAME))
            .map_err(|e| ToolError::new(e.message("")))?;
        let reshape = input.rate.is_some()
            || input.pattern.is_some_and(|p| p != PatternName::Constant)
            || (input.pattern.is_some() && name == PresetName::Spike);
        if reshape {
            let plan = compile_preset_text(&text)?;
            text = self.reshape_load(name, &text, &plan, input)?;
        }
        let plan = compile_preset_text(&text)?;
        Ok(CreatedScenario {
            preset: name,
            load: LoadSummary::of(&plan.load),
            refusals: self.refusals(&plan),
            scenario: text,
        })
    }

    /// `text` with its `[load]` table rewritten for `input.rate` and
    /// `input.pattern`, keeping the users and duration it has.
    fn reshape_load(
        &self,
        preset: PresetName,
        text: &str,
        plan: &Plan,
        input: &CreateInput,
    ) -> Result<String, ToolError> {
        if preset == PresetName::Spike {
            return Err(ToolError::new(
                "the spike preset has its own pattern, in users: leave out `pattern` and `rate`, or use preset `basic` for a constant or ramp load in users or arrivals per second",
            ));
        }
        let mut load = vec!["[load]".to_string()];
        if input.rate.is_some() {
            load.push("model = \"open\"  # arrivals per second, whatever the target's pace".into());
        }
        if let Some(pattern) = input.pattern.filter(|p| *p != PatternName::Constant) {
            load.push(format!("pattern = \"{}\"", pattern_text(pattern)));
        }
        match input.rate {
            Some(rate) => {
                load.push(format!("rate = {rate}"));
                let cap = self.guardrails().limits.max_users.min(100);
                load.push(format!("max_users = {cap}  # most iterations in flight"));
            }
            None => load.push(format!("users = {}", plan.load.users)),
        }
        if let Some(d) = plan.load.duration {
            load.push(format!("duration = \"{}\"", fmt_duration(d)));
        }
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.iter().position(|l| l.trim() == "[load]");
        let Some(start) = start else {
            return Err(ToolError::new("the preset has no [load] table"));
        };
        let end = (start + 1..lines.len())
            .find(|&i| lines[i].trim_start().starts_with('['))
            .unwrap_or(lines.len());
        let mut out: Vec<String> = lines[..start].iter().map(|l| l.to_string()).collect();
        out.extend(load);
        out.push(String::new());
        out.extend(lines[end..].iter().map(|l| l.to_string()));
        Ok(out.join("\n") + "\n")
    }
}

fn pattern_text(p: PatternName) -> &'static str {
    match p {
        PatternName::Constant => "constant",
        PatternName::Ramp => "ramp",
        PatternName::Spike => "spike",
    }
}

/// A created scenario's plan; presets read no file and no variable.
fn compile_preset_text(text: &str) -> Result<Plan, ToolError> {
    let checked = check_text(
        Path::new(TEXT_NAME),
        text,
        &Overrides::default(),
        &Inputs::sealed(),
    );
    match checked.plan {
        Some(plan) => Ok(plan),
        None => Err(problems_error("the scenario would not be valid", &checked)),
    }
}

fn refuse_size(size: u64, what: &str) -> Result<(), ToolError> {
    if size > MAX_SCENARIO_BYTES as u64 {
        return Err(ToolError::new(format!(
            "{what} is {size} bytes, over this server's limit of {MAX_SCENARIO_BYTES} bytes for a scenario; a scenario is a short TOML file: put large data in a CSV feeder in the scenario folder"
        )));
    }
    Ok(())
}

/// The target as reports show it: the base URL, or `demo`.
pub(super) fn target_name(plan: &Plan) -> String {
    match &plan.target.base {
        BaseUrl::Demo => "demo".to_string(),
        BaseUrl::Url(e) => e.display(),
    }
}

pub(super) fn problems(checked: &Checked) -> Vec<ProblemReport> {
    checked
        .problems()
        .into_iter()
        .map(|p| ProblemReport {
            severity: match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            }
            .to_string(),
            line: p.line,
            column: p.column,
            message: p.message,
        })
        .collect()
}

/// An error listing `checked`'s problems as `line:column: message`.
pub(super) fn problems_error(what: &str, checked: &Checked) -> ToolError {
    let lines: Vec<String> = problems(checked)
        .into_iter()
        .filter(|p| p.severity == "error")
        .map(|p| match (p.line, p.column) {
            (Some(l), Some(c)) => format!("- line {l}, column {c}: {}", p.message),
            _ => format!("- {}", p.message),
        })
        .collect();
    ToolError::new(format!(
        "{what}; fix these and try again (validate_scenario checks without running):\n{}",
        lines.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Guardrails;
    use tokio_util::sync::CancellationToken;

    fn agent(scenario_dir: Option<&Path>) -> (tempfile::TempDir, Agent) {
        let runs = tempfile::tempdir().unwrap();
        let guardrails = Guardrails {
            scenario_dir: scenario_dir.map(Path::to_path_buf),
            ..Guardrails::default()
        };
        let agent = Agent::new(guardrails, runs.path(), CancellationToken::new()).unwrap();
        (runs, agent)
    }

    #[test]
    fn created_scenarios_validate_and_say_what_would_be_refused() {
        let (_runs, agent) = agent(None);
        let created = agent.create_scenario(&CreateInput::default()).unwrap();
        assert_eq!(created.preset, PresetName::Basic);
        assert!(created.refusals.is_empty(), "{:?}", created.refusals);
        let soak = agent
            .create_scenario(&CreateInput {
                preset: Some(PresetName::Soak),
                ..CreateInput::default()
            })
            .unwrap();
        assert!(soak.refusals[0].contains("--max-duration"), "{soak:?}");

        let open = agent
            .create_scenario(&CreateInput {
                url: Some("http://127.0.0.1:8080/health".into()),
                rate: Some(20.0),
                duration: Some("10s".into()),
                pattern: Some(PatternName::Ramp),
                ..CreateInput::default()
            })
            .unwrap();
        assert_eq!(open.load.model, "open");
        assert_eq!(open.load.pattern, "ramp");
        assert_eq!(open.load.peak_rate, Some(20.0));
        assert_eq!(open.load.duration_s, Some(10.0));
        assert!(
            open.scenario.contains("path = \"/health\""),
            "{}",
            open.scenario
        );
        let valid = agent
            .validate_scenario(&ValidateInput {
                scenario: Some(open.scenario.clone()),
                path: None,
            })
            .unwrap();
        assert!(valid.valid && valid.refusals.is_empty(), "{valid:?}");

        let e = agent
            .create_scenario(&CreateInput {
                users: Some(2),
                rate: Some(2.0),
                ..CreateInput::default()
            })
            .unwrap_err();
        assert!(e.0.contains("not both"), "{e}");
        let e = agent
            .create_scenario(&CreateInput {
                preset: Some(PresetName::Spike),
                pattern: Some(PatternName::Ramp),
                ..CreateInput::default()
            })
            .unwrap_err();
        assert!(e.0.contains("spike preset has its own pattern"), "{e}");
    }

    #[test]
    fn validation_reports_problems_with_their_place() {
        let (_runs, agent) = agent(None);
        let v = agent
            .validate_scenario(&ValidateInput {
                scenario: Some(
                    "[target]\nbase_url = \"demo\"\n[load]\nusers = 0\nduration = \"1s\"\n[[flow]]\n  [[flow.step]]\n  path = \"/\"\n"
                        .into(),
                ),
                path: None,
            })
            .unwrap();
        assert!(!v.valid);
        assert_eq!(
            (v.problems[0].line, v.problems[0].column),
            (Some(4), Some(9))
        );
        assert_eq!(v.problems[0].severity, "error");
        let v = agent
            .validate_scenario(&ValidateInput {
                scenario: Some(
                    "[target]\nbase_url = \"http://10.1.2.3\"\n[load]\nusers = 1\nduration = \"1s\"\n[[flow]]\n  [[flow.step]]\n  path = \"/\"\n"
                        .into(),
                ),
                path: None,
            })
            .unwrap();
        assert!(v.valid);
        assert!(v.refusals[0].contains("10.1.2.3"), "{v:?}");
    }

    #[test]
    fn sources_are_checked_before_parsing() {
        let (_runs, agent) = agent(None);
        let huge = "#".repeat(MAX_SCENARIO_BYTES + 1);
        let both = ValidateInput {
            scenario: Some("x".into()),
            path: Some("x".into()),
        };
        for (input, needle) in [
            (ValidateInput::default(), "no scenario"),
            (both, "not both"),
            (
                ValidateInput {
                    scenario: Some(huge),
                    path: None,
                },
                "over this server's limit",
            ),
            (
                ValidateInput {
                    scenario: None,
                    path: Some("s.toml".into()),
                },
                "without --scenario-dir",
            ),
        ] {
            let e = agent.validate_scenario(&input).unwrap_err();
            assert!(e.0.contains(needle), "{e}");
        }
    }

    #[test]
    fn paths_stay_inside_the_scenario_folder() {
        let top = tempfile::tempdir().unwrap();
        let folder = top.path().join("scenarios");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("sub/rows.csv"), "id\n1\n").unwrap();
        std::fs::write(
            folder.join("sub/s.toml"),
            "[target]\nbase_url = \"demo\"\n[load]\nusers = 1\nduration = \"1s\"\n[[data]]\nname = \"rows\"\nfile = \"rows.csv\"\n[[flow]]\n  [[flow.step]]\n  path = \"/{{ rows.id }}\"\n",
        )
        .unwrap();
        std::fs::write(top.path().join("outside.toml"), "").unwrap();
        let (_runs, agent) = agent(Some(&folder));
        let ok = agent
            .validate_scenario(&ValidateInput {
                scenario: None,
                path: Some("sub/s.toml".into()),
            })
            .unwrap();
        assert!(ok.valid, "{ok:?}");
        let e = agent
            .validate_scenario(&ValidateInput {
                scenario: None,
                path: Some("../outside.toml".into()),
            })
            .unwrap_err();
        assert!(
            e.0.contains("`..` leads outside the scenario folder"),
            "{e}"
        );
    }
}
