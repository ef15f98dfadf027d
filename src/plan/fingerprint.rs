//! The plan's [`Fingerprint`]: what a worker marks its snapshots with and
//! a coordinator checks, so figures recorded against another plan are
//! refused instead of merged into the wrong steps.
//!
//! The hash itself, and what it covers, is defined with the wire form in
//! [`crate::metrics::wire`]; this is where a [`Plan`] supplies it.

use super::Plan;
use crate::metrics::wire::Fingerprint;

/// The fingerprint of the snapshots this plan records: its metrics (names
/// and methods, in order) and its model.
pub fn fingerprint(plan: &Plan) -> Fingerprint {
    let metrics = plan
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.method.as_deref()));
    Fingerprint::of(metrics, plan.load.is_open())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Diagnostics;
    use crate::plan::{compile, Overrides};
    use crate::scenario;

    fn plan(steps: &str, overrides: &Overrides) -> Plan {
        let text = format!(
            "[target]\nbase_url = \"http://127.0.0.1:9\"\n[load]\nusers = 1\nduration = \"1s\"\n[[flow]]\n{steps}"
        );
        let mut diags = Diagnostics::default();
        let scenario = scenario::parse(&text, &mut diags).expect("valid TOML");
        compile(
            &scenario,
            None,
            overrides,
            &crate::plan::Inputs::sealed(),
            &mut diags,
        )
        .unwrap_or_else(|| panic!("{diags:?}"))
    }

    const TWO_STEPS: &str = "[[flow.step]]\nname = \"list\"\npath = \"/\"\n\
                             [[flow.step]]\nname = \"add\"\nmethod = \"POST\"\npath = \"/\"\n";

    #[test]
    fn the_same_plan_has_the_same_fingerprint() {
        let a = fingerprint(&plan(TWO_STEPS, &Overrides::default()));
        let b = fingerprint(&plan(TWO_STEPS, &Overrides::default()));
        assert_eq!(a, b);
        assert_eq!(a.metrics(), 2);
        assert!(!a.is_open());
        let by_hand = Fingerprint::of([("list", Some("GET")), ("add", Some("POST"))], false);
        assert_eq!(a, by_hand);
    }

    #[test]
    fn the_model_and_the_steps_change_the_fingerprint() {
        let closed = fingerprint(&plan(TWO_STEPS, &Overrides::default()));
        let open = Overrides {
            rate: Some(10.0),
            ..Overrides::default()
        };
        let open = fingerprint(&plan(TWO_STEPS, &open));
        assert!(open.is_open());
        assert_ne!(closed.to_string(), open.to_string());
        let renamed = TWO_STEPS.replace("\"add\"", "\"create\"");
        let renamed = fingerprint(&plan(&renamed, &Overrides::default()));
        assert_ne!(closed.to_string(), renamed.to_string());
    }
}
