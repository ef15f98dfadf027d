//! `[distribution]` judged: how a coordinator spreads the load over its
//! workers, and what it does when one is lost.
//!
//! A single-machine run ignores this section; it is checked everywhere so
//! a scenario that validates on a laptop also starts on a cluster.

use crate::diag::{did_you_mean, Diagnostics};
use crate::scenario::Distribution;

/// How the load is divided among the workers of one zone (or all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The same share for every worker.
    #[default]
    Even,
    /// Shares proportional to each worker's `--capacity`.
    Capacity,
}

/// What a coordinator does when a worker misses its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnWorkerLost {
    /// The lost worker's share moves to the surviving workers.
    #[default]
    Rebalance,
    /// The survivors keep their shares; the load falls short.
    Continue,
    /// The run stops and fails.
    Fail,
}

impl OnWorkerLost {
    pub fn as_str(self) -> &'static str {
        match self {
            OnWorkerLost::Rebalance => "rebalance",
            OnWorkerLost::Continue => "continue",
            OnWorkerLost::Fail => "fail",
        }
    }
}

/// One zone: the workers labelled `zone=NAME` run `percent` of the load.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub percent: f64,
}

/// `[distribution]`, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DistributionPlan {
    pub strategy: Strategy,
    /// Empty: every worker may take any part of the load.
    pub zones: Vec<Zone>,
    pub on_worker_lost: OnWorkerLost,
}

/// How far the zones' percentages may add up away from 100.
const PERCENT_TOLERANCE: f64 = 1e-6;

pub fn compile(d: &Distribution, diags: &mut Diagnostics) -> DistributionPlan {
    let strategy = choice(
        diags,
        d.strategy.as_ref().map(|s| (&s.value, s.span.clone())),
        "strategy",
        &[("even", Strategy::Even), ("capacity", Strategy::Capacity)],
    );
    let on_worker_lost = choice(
        diags,
        d.on_worker_lost
            .as_ref()
            .map(|s| (&s.value, s.span.clone())),
        "on_worker_lost",
        &[
            ("rebalance", OnWorkerLost::Rebalance),
            ("continue", OnWorkerLost::Continue),
            ("fail", OnWorkerLost::Fail),
        ],
    );
    let mut zones = Vec::new();
    for (name, percent) in &d.zones {
        if name.value.is_empty() {
            diags.error(
                name.span.clone(),
                "[distribution] zones: a zone needs a name",
            );
        }
        if !(percent.value > 0.0 && percent.value <= 100.0) {
            diags.error(
                percent.span.clone(),
                format!(
                    "[distribution] zones.{} = {} must be a percentage above 0 and at most 100",
                    name.value, percent.value
                ),
            );
            continue;
        }
        zones.push(Zone {
            name: name.value.clone(),
            percent: percent.value,
        });
    }
    let total: f64 = zones.iter().map(|z| z.percent).sum();
    if zones.len() == d.zones.len()
        && !zones.is_empty()
        && (total - 100.0).abs() > PERCENT_TOLERANCE
    {
        diags.error(
            d.span.clone(),
            format!(
                "[distribution] zones add up to {}%; they must add up to 100%",
                crate::units::trim_float(total, 2)
            ),
        );
    }
    DistributionPlan {
        strategy,
        zones,
        on_worker_lost,
    }
}

/// One of a few words, or an error naming them (and the closest).
fn choice<T: Copy + Default>(
    diags: &mut Diagnostics,
    written: Option<(&String, crate::diag::Span)>,
    key: &str,
    options: &[(&'static str, T)],
) -> T {
    let Some((word, span)) = written else {
        return T::default();
    };
    if let Some((_, value)) = options.iter().find(|(name, _)| name == word) {
        return *value;
    }
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    let expected = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = did_you_mean(word, &names)
        .map(|n| format!(" (did you mean \"{n}\"?)"))
        .unwrap_or_default();
    diags.error(
        span,
        format!("[distribution] {key} = \"{word}\" is unknown; expected one of {expected}{hint}"),
    );
    T::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;

    fn compiled(text: &str) -> (DistributionPlan, Diagnostics) {
        let mut diags = Diagnostics::default();
        let s = scenario::parse(text, &mut diags).expect("valid TOML");
        let plan = compile(&s.distribution, &mut diags);
        (plan, diags)
    }

    #[test]
    fn defaults_when_absent() {
        let (plan, diags) = compiled("");
        assert!(!diags.has_errors());
        assert_eq!(plan, DistributionPlan::default());
        assert_eq!(plan.on_worker_lost, OnWorkerLost::Rebalance);
    }

    #[test]
    fn reads_every_key() {
        let (plan, diags) = compiled(
            "[distribution]\nstrategy = \"capacity\"\nzones = { eu = 60, us = 40.0 }\non_worker_lost = \"fail\"\n",
        );
        assert!(!diags.has_errors(), "{diags:?}");
        assert_eq!(plan.strategy, Strategy::Capacity);
        assert_eq!(plan.on_worker_lost, OnWorkerLost::Fail);
        assert_eq!(
            plan.zones,
            vec![
                Zone {
                    name: "eu".into(),
                    percent: 60.0
                },
                Zone {
                    name: "us".into(),
                    percent: 40.0
                }
            ]
        );
    }

    #[test]
    fn refuses_unknown_words_bad_percentages_and_sums() {
        let (_, diags) =
            compiled("[distribution]\nstrategy = \"evne\"\non_worker_lost = \"retry\"\n");
        let text = format!("{diags:?}");
        assert!(text.contains("did you mean \\\"even\\\""), "{text}");
        assert!(
            text.contains("on_worker_lost = \\\"retry\\\" is unknown"),
            "{text}"
        );
        let (_, diags) = compiled("[distribution]\nzones = { eu = 60, us = 30 }\n");
        assert!(format!("{diags:?}").contains("add up to 90%"));
        let (_, diags) = compiled("[distribution]\nzones = { eu = -5, us = 105 }\n");
        assert!(format!("{diags:?}").contains("zones.eu = -5"));
        let (_, diags) = compiled("[distribution]\nzones = { eu = \"half\" }\n");
        assert!(format!("{diags:?}").contains("zones.eu must be a number"));
        let (_, diags) = compiled("[distribution]\nzone = { eu = 100 }\n");
        assert!(diags.has_errors());
    }
}
