//! The caps on an agent's runs: [`Limits`] (`--max-users`, `--max-rate`,
//! `--max-duration`, `--max-concurrent-runs`) and the size of a scenario.
//!
//! A plan is judged whole, after the tool's overrides are merged, and a
//! plan over a cap is refused with the cap's name, its value and what to
//! change; nothing is ever clipped to fit, because a silently smaller test
//! answers a different question. Only time-bound plans run: an agent's
//! run must end by itself.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use crate::plan::LoadPlan;
use crate::units::{fmt_duration, short};

/// The largest scenario text (or file) a tool accepts, checked before it
/// is parsed.
pub const MAX_SCENARIO_BYTES: usize = 1 << 20;

/// The caps, as the person starting the server set them.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most users at once (closed model), or iterations in flight (the
    /// open model's `max_users`).
    pub max_users: u64,
    /// Highest arrival rate, iterations per second (open model).
    pub max_rate: f64,
    pub max_duration: Duration,
    /// Runs going on at the same time.
    pub max_concurrent_runs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_users: 100,
            max_rate: 200.0,
            max_duration: Duration::from_secs(300),
            max_concurrent_runs: 1,
        }
    }
}

/// What a plan asks for: the figures the caps judge, and what the audit
/// log and the tools report.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LoadSummary {
    /// `closed` (a number of users) or `open` (an arrival rate).
    pub model: String,
    pub pattern: String,
    /// Most users at once (closed), or most iterations in flight (open).
    pub users: u64,
    /// Open model: the highest arrival rate the pattern reaches, per second.
    pub peak_rate: Option<f64>,
    /// How long the run lasts, in seconds; `None` when only an iteration
    /// count ends it.
    pub duration_s: Option<f64>,
    /// The iteration budget, if any.
    pub iterations: Option<u64>,
}

impl LoadSummary {
    pub fn of(load: &LoadPlan) -> LoadSummary {
        LoadSummary {
            model: if load.is_open() { "open" } else { "closed" }.to_string(),
            pattern: load.pattern.name().to_string(),
            users: load.users,
            peak_rate: load.is_open().then(|| load.shape.peak()),
            duration_s: load.duration.map(|d| d.as_secs_f64()),
            iterations: load.iterations,
        }
    }
}

impl Limits {
    /// Every cap `load` exceeds, each as a sentence naming the cap, its
    /// value and what to change; empty when the plan fits.
    pub fn refusals(&self, load: &LoadPlan) -> Vec<String> {
        let ask = "only the person running `loadctl serve-mcp` can raise";
        let mut out = Vec::new();
        match load.duration {
            None => out.push(format!(
                "the scenario has no duration (only an iteration count would end it), and this server runs only time-bound tests: set [load] duration or pass `duration`, at most {} (--max-duration)",
                fmt_duration(self.max_duration)
            )),
            Some(d) if d > self.max_duration => out.push(format!(
                "duration {} is over this server's --max-duration of {}: pass `duration` (or set [load] duration) of at most {}; {ask} --max-duration",
                fmt_duration(d),
                fmt_duration(self.max_duration),
                fmt_duration(self.max_duration)
            )),
            Some(d) if d + load.graceful_stop > self.max_duration => out.push(format!(
                "duration {} plus graceful_stop {} (how long in-flight requests may finish after the end) is over this server's --max-duration of {}: shorten `duration` or set [load] graceful_stop so that together they are at most {}; {ask} --max-duration",
                fmt_duration(d),
                fmt_duration(load.graceful_stop),
                fmt_duration(self.max_duration),
                fmt_duration(self.max_duration)
            )),
            Some(_) => {}
        }
        if load.users > self.max_users {
            let what = if load.is_open() {
                "max_users (iterations in flight)"
            } else {
                "users"
            };
            let change = if load.is_open() {
                "set [load] max_users"
            } else {
                "pass `users` (or lower the pattern's users in [load])"
            };
            out.push(format!(
                "{what} {} is over this server's --max-users of {}: {change} to at most {}; {ask} --max-users",
                load.users, self.max_users, self.max_users
            ));
        }
        if load.is_open() {
            let peak = load.shape.peak();
            if peak > self.max_rate {
                out.push(format!(
                    "the arrival rate reaches {}/s, over this server's --max-rate of {}/s: pass `rate` (or lower the pattern's rates in [load]) to at most {}/s; {ask} --max-rate",
                    short(peak),
                    short(self.max_rate),
                    short(self.max_rate)
                ));
            }
        }
        out
    }

    /// Why a request time limit (`what`, e.g. `[target] timeout`) is
    /// refused: one request may not outlast the longest run.
    pub fn timeout_refusal(&self, what: &str, timeout: Duration) -> Option<String> {
        (timeout > self.max_duration).then(|| {
            format!(
                "{what} {} is over this server's --max-duration of {}: set it to at most {}; only the person running `loadctl serve-mcp` can raise --max-duration",
                fmt_duration(timeout),
                fmt_duration(self.max_duration),
                fmt_duration(self.max_duration)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Diagnostics;
    use crate::plan::{compile, Inputs, Overrides};

    fn load(toml_load: &str) -> LoadPlan {
        let text = format!(
            "[target]\nbase_url = \"demo\"\n[load]\n{toml_load}\n[[flow]]\n  [[flow.step]]\n  path = \"/\"\n"
        );
        let mut diags = Diagnostics::default();
        let scenario = crate::scenario::parse(&text, &mut diags).unwrap();
        let plan = compile(
            &scenario,
            None,
            &Overrides::default(),
            &Inputs::sealed(),
            &mut diags,
        );
        plan.unwrap_or_else(|| panic!("{:?}", diags.items())).load
    }

    #[test]
    fn a_plan_within_the_caps_passes() {
        let limits = Limits::default();
        assert!(limits
            .refusals(&load("users = 100\nduration = \"298s\""))
            .is_empty());
        assert!(limits
            .refusals(&load("rate = 200\nmax_users = 10\nduration = \"1s\""))
            .is_empty());
    }

    #[test]
    fn each_cap_is_named_with_its_value() {
        let limits = Limits::default();
        let r = limits.refusals(&load("users = 101\nduration = \"5m1s\""));
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(
            r[0].starts_with("duration 301s is over this server's --max-duration of 300s"),
            "{r:?}"
        );
        assert!(
            r[1].starts_with("users 101 is over this server's --max-users of 100"),
            "{r:?}"
        );
        let r = limits.refusals(&load(
            "pattern = \"ramp\"\nrate = 250\nmax_users = 500\nduration = \"10s\"",
        ));
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(
            r[0].starts_with("max_users (iterations in flight) 500 is over"),
            "{r:?}"
        );
        assert!(
            r[1].starts_with(
                "the arrival rate reaches 250/s, over this server's --max-rate of 200/s"
            ),
            "{r:?}"
        );
        let r = limits.refusals(&load(
            "users = 1\nduration = \"1s\"\ngraceful_stop = \"300s\"",
        ));
        assert!(
            r[0].starts_with("duration 1s plus graceful_stop 300s (how long"),
            "{r:?}"
        );
        assert_eq!(
            limits.timeout_refusal("[target] timeout", Duration::from_secs(301)),
            Some("[target] timeout 301s is over this server's --max-duration of 300s: set it to at most 300s; only the person running `loadctl serve-mcp` can raise --max-duration".into())
        );
        assert_eq!(limits.timeout_refusal("t", Duration::from_secs(300)), None);
        let r = limits.refusals(&load("users = 1\niterations = 10"));
        assert!(r[0].starts_with("the scenario has no duration"), "{r:?}");
    }
}
