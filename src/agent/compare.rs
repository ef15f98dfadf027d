//! `compare_runs`: the change between two saved runs and whether any of
//! it is a regression, by the rules of `loadctl report --compare`
//! ([`crate::report::compare`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Agent, ToolError};
use crate::metrics::summary::RunSummary;
use crate::report::compare::{self, CompareRules, Comparison};
use crate::store::{self, RunId};

/// `compare_runs`'s arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareInput {
    /// The run to compare against (an earlier, known-good run).
    pub base: String,
    /// The run being judged.
    pub current: String,
    /// The change allowed before a measure counts as a regression, as a
    /// percentage such as `10%` (the default).
    pub max_regression: Option<String>,
    /// The smallest latency rise that can count as a regression, such as
    /// `2ms` (the default): loopback jitter under it never fails a run.
    pub min_change: Option<String>,
}

/// One measure of one step (or of all requests) in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ComparisonRow {
    /// A step's name, or `Total` for all requests.
    pub step: String,
    /// `rps`, `error rate`, `p50`, `p95` or `p99` (latencies in ms).
    pub measure: String,
    pub base: Option<f64>,
    pub current: Option<f64>,
    /// `(current - base) / base`; absent when a side is missing or the
    /// base is 0 and the current is not.
    pub change: Option<f64>,
    pub regression: bool,
}

/// `compare_runs`'s result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ComparisonReport {
    pub base: String,
    pub current: String,
    /// The allowed change, as a fraction (0.1 for 10%).
    pub max_regression: f64,
    /// The smallest latency rise that counts, in milliseconds.
    pub min_change_ms: f64,
    /// `regression` or `no_regression`.
    pub verdict: String,
    /// Each regression in a sentence.
    pub regressions: Vec<String>,
    pub rows: Vec<ComparisonRow>,
}

/// The one call into the comparison rules.
fn judge(base: &RunSummary, current: &RunSummary, rules: &CompareRules) -> Comparison {
    compare::compare(base, current, rules)
}

impl Agent {
    pub fn compare_runs(&self, input: &CompareInput) -> Result<ComparisonReport, ToolError> {
        let limit = match &input.max_regression {
            Some(text) => Some(
                compare::parse_limit(text)
                    .map_err(|e| ToolError::new(format!("`max_regression`: {e}")))?,
            ),
            None => None,
        };
        let min_change = match &input.min_change {
            Some(text) => Some(
                compare::parse_min_change(text)
                    .map_err(|e| ToolError::new(format!("`min_change`: {e}")))?,
            ),
            None => None,
        };
        let rules = CompareRules::with(limit, min_change);
        let read = |which: &str, text: &str| -> Result<RunSummary, ToolError> {
            let id = RunId::parse(text).map_err(|e| ToolError::new(format!("`{which}`: {e}")))?;
            store::get(self.runs_dir(), &id).map_err(|e| {
                ToolError::new(format!(
                    "`{which}`: {e}; list_runs shows the saved runs (a run is saved when it ends)"
                ))
            })
        };
        let (base, current) = (read("base", &input.base)?, read("current", &input.current)?);
        let c = judge(&base, &current, &rules);
        let regressions: Vec<String> = c
            .regressions()
            .map(|r| {
                let shown = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v}"));
                format!(
                    "{} {}: {} -> {}",
                    r.step,
                    r.measure.name(),
                    shown(r.base),
                    shown(r.current)
                )
            })
            .collect();
        Ok(ComparisonReport {
            base: input.base.clone(),
            current: input.current.clone(),
            max_regression: rules.max_regression,
            min_change_ms: rules.min_change_ms,
            verdict: if regressions.is_empty() {
                "no_regression"
            } else {
                "regression"
            }
            .to_string(),
            regressions,
            rows: c
                .rows
                .iter()
                .map(|r| ComparisonRow {
                    step: r.step.clone(),
                    measure: r.measure.name().to_string(),
                    base: r.base,
                    current: r.current,
                    change: r.change().filter(|c| c.is_finite()),
                    regression: r.regression,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Guardrails;
    use crate::report::test_summary;

    #[test]
    fn two_saved_runs_compare_by_the_report_rules() {
        let dir = tempfile::tempdir().unwrap();
        let mut base = test_summary();
        base.run.id = RunId::new().to_string();
        let mut current = base.clone();
        current.run.id = RunId::new().to_string();
        current.totals.rps = base.totals.rps * 0.5;
        store::save(dir.path(), &base).unwrap();
        store::save(dir.path(), &current).unwrap();
        let agent = Agent::new(
            Guardrails::default(),
            dir.path(),
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap();
        let input = CompareInput {
            base: base.run.id.clone(),
            current: current.run.id.clone(),
            max_regression: None,
            min_change: None,
        };
        let report = agent.compare_runs(&input).unwrap();
        assert_eq!(report.verdict, "regression");
        assert_eq!(report.max_regression, 0.1);
        assert!(report.regressions[0].contains(" rps: "), "{report:?}");
        let same = agent
            .compare_runs(&CompareInput {
                current: base.run.id.clone(),
                ..input.clone()
            })
            .unwrap();
        assert_eq!(same.verdict, "no_regression");
        let e = agent
            .compare_runs(&CompareInput {
                max_regression: Some("0.1".into()),
                min_change: None,
                ..input.clone()
            })
            .unwrap_err();
        assert!(e.0.starts_with("`max_regression`"), "{e}");
        let e = agent
            .compare_runs(&CompareInput {
                base: RunId::new().to_string(),
                ..input
            })
            .unwrap_err();
        assert!(e.0.contains("list_runs"), "{e}");
    }
}
