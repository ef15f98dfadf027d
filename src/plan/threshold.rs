//! Pass/fail thresholds: k6-style expressions such as `p(95) < 500ms`.
//!
//! A threshold is a metric (`http_req_duration`, `http_req_failed`,
//! `http_reqs`, or `step:NAME` for one step) and an expression
//! `AGGREGATE OP VALUE`. Parsing checks that the aggregate makes sense for
//! the metric, so a misspelled or meaningless threshold is a `validate`
//! error rather than a gate that silently passes.

use crate::metrics::summary::{RunSummary, StepStats, Unit};

/// What a threshold measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Latency of every request.
    Duration,
    /// Fraction (or count) of failed requests.
    Failed,
    /// Request count and rate.
    Requests,
    /// One step (by name): latency, rate, count or error rate.
    Step(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregate {
    Percentile(f64),
    Avg,
    Med,
    Min,
    Max,
    /// Failure fraction on `http_req_failed`; requests per second on `http_reqs`.
    Rate,
    Rps,
    Count,
    ErrorRate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric as written (`http_req_duration`, `step:item`).
    pub metric_name: String,
    /// The expression as written (`p(95) < 500ms`).
    pub expression: String,
    pub metric: Metric,
    pub aggregate: Aggregate,
    pub op: Op,
    /// In the unit of [`Threshold::unit`] (milliseconds for latencies).
    pub value: f64,
}

impl Threshold {
    pub fn unit(&self) -> Unit {
        match self.aggregate {
            Aggregate::Percentile(_)
            | Aggregate::Avg
            | Aggregate::Med
            | Aggregate::Min
            | Aggregate::Max => Unit::Ms,
            Aggregate::Rate if self.metric == Metric::Requests => Unit::PerSecond,
            Aggregate::Rate | Aggregate::ErrorRate => Unit::Ratio,
            Aggregate::Rps => Unit::PerSecond,
            Aggregate::Count => Unit::Count,
        }
    }

    /// The measured value, or `None` when there is no data: the step (or,
    /// for the other metrics, the run) sent no request. Every aggregate
    /// alike: an error rate, a count or a request rate of nothing is no
    /// more a measurement than a percentile of nothing.
    pub fn observe(&self, summary: &RunSummary) -> Option<f64> {
        let stats: &StepStats = match &self.metric {
            Metric::Step(name) => summary.steps.iter().find(|s| &s.name == name)?,
            _ => &summary.totals,
        };
        if stats.requests == 0 {
            return None;
        }
        let latency = &stats.latency_ms;
        Some(match (&self.metric, self.aggregate) {
            (_, Aggregate::Percentile(p)) => latency.percentile(p)?,
            (_, Aggregate::Avg) => latency.0.get("mean").copied()?,
            (_, Aggregate::Med) => latency.percentile(50.0)?,
            (_, Aggregate::Min) => latency.0.get("min").copied()?,
            (_, Aggregate::Max) => latency.0.get("max").copied()?,
            (Metric::Requests, Aggregate::Rate) | (_, Aggregate::Rps) => stats.rps,
            (Metric::Failed, Aggregate::Count) => stats.failures as f64,
            (_, Aggregate::Count) => stats.requests as f64,
            (_, Aggregate::Rate) | (_, Aggregate::ErrorRate) => stats.error_rate,
        })
    }

    /// Whether the threshold holds. A threshold with no data is not
    /// evaluated and fails: nothing was measured, so nothing was proven.
    pub fn check(&self, summary: &RunSummary) -> (Option<f64>, bool) {
        let observed = self.observe(summary);
        let passed = match observed {
            Some(v) => self.op.holds(v, self.value),
            None => false,
        };
        (observed, passed)
    }
}

/// Parses a metric name; `steps` are the scenario's step names.
pub fn parse_metric(name: &str, steps: &[String]) -> Result<Metric, String> {
    match name.trim() {
        "http_req_duration" => Ok(Metric::Duration),
        "http_req_failed" => Ok(Metric::Failed),
        "http_reqs" => Ok(Metric::Requests),
        other => {
            if let Some(step) = other.strip_prefix("step:") {
                let step = step.trim();
                if steps.iter().any(|s| s == step) {
                    return Ok(Metric::Step(step.to_string()));
                }
                let names: Vec<&str> = steps.iter().map(String::as_str).collect();
                let mut msg = format!("threshold on `step:{step}`, but no step is named `{step}`");
                match crate::diag::did_you_mean(step, &names) {
                    Some(s) => msg.push_str(&format!("; did you mean `step:{s}`?")),
                    None => msg.push_str(&format!("; steps: {}", names.join(", "))),
                }
                return Err(msg);
            }
            let known = ["http_req_duration", "http_req_failed", "http_reqs"];
            let mut msg = format!("unknown threshold metric `{other}`");
            match crate::diag::did_you_mean(other, &known) {
                Some(s) => msg.push_str(&format!("; did you mean `{s}`?")),
                None => msg.push_str(
                    "; expected http_req_duration, http_req_failed, http_reqs or step:NAME",
                ),
            }
            Err(msg)
        }
    }
}

/// Parses `AGGREGATE OP VALUE` for the given metric.
pub fn parse(metric_name: &str, metric: Metric, expression: &str) -> Result<Threshold, String> {
    let expr = expression.trim();
    let op_at = expr
        .find(['<', '>', '=', '!'])
        .ok_or_else(|| format!("`{expr}`: expected a comparison like `p(95) < 500ms`"))?;
    let (agg_text, rest) = expr.split_at(op_at);
    let (op, value_text) = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ]
    .iter()
    .find_map(|(sym, op)| rest.strip_prefix(sym).map(|v| (*op, v)))
    .ok_or_else(|| format!("`{expr}`: unknown comparison operator"))?;
    let aggregate = parse_aggregate(agg_text.trim())?;
    let allowed: &[&str] = match metric {
        Metric::Duration => &["p(N)", "avg", "med", "min", "max"],
        Metric::Failed => &["rate", "count"],
        Metric::Requests => &["count", "rate", "rps"],
        Metric::Step(_) => &[
            "p(N)",
            "avg",
            "med",
            "min",
            "max",
            "rps",
            "count",
            "error_rate",
        ],
    };
    let ok = match aggregate {
        Aggregate::Percentile(_) => allowed.contains(&"p(N)"),
        a => allowed.contains(&aggregate_name(a)),
    };
    if !ok {
        return Err(format!(
            "`{}` does not apply to `{metric_name}`; use one of: {}",
            agg_text.trim(),
            allowed.join(", ")
        ));
    }
    let mut t = Threshold {
        metric_name: metric_name.trim().to_string(),
        expression: expr.to_string(),
        metric,
        aggregate,
        op,
        value: 0.0,
    };
    t.value = parse_value(value_text.trim(), t.unit())?;
    Ok(t)
}

/// Parses the command-line form `METRIC: EXPRESSION`.
pub fn parse_flag(flag: &str, steps: &[String]) -> Result<Threshold, String> {
    let (metric_name, expr) = flag.rsplit_once(':').ok_or_else(|| {
        format!("`{flag}`: expected `METRIC: EXPRESSION`, e.g. `http_req_duration: p(95) < 500ms`")
    })?;
    let metric = parse_metric(metric_name, steps)?;
    parse(metric_name, metric, expr)
}

fn aggregate_name(a: Aggregate) -> &'static str {
    match a {
        Aggregate::Percentile(_) => "p(N)",
        Aggregate::Avg => "avg",
        Aggregate::Med => "med",
        Aggregate::Min => "min",
        Aggregate::Max => "max",
        Aggregate::Rate => "rate",
        Aggregate::Rps => "rps",
        Aggregate::Count => "count",
        Aggregate::ErrorRate => "error_rate",
    }
}

fn parse_aggregate(text: &str) -> Result<Aggregate, String> {
    if let Some(inner) = text.strip_prefix("p(").and_then(|t| t.strip_suffix(')')) {
        let p: f64 = inner
            .trim()
            .parse()
            .map_err(|_| format!("`{text}`: the percentile must be a number, as in p(95)"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!(
                "`{text}`: the percentile must be between 0 and 100"
            ));
        }
        return Ok(Aggregate::Percentile(p));
    }
    Ok(match text {
        "avg" => Aggregate::Avg,
        "med" => Aggregate::Med,
        "min" => Aggregate::Min,
        "max" => Aggregate::Max,
        "rate" => Aggregate::Rate,
        "rps" => Aggregate::Rps,
        "count" => Aggregate::Count,
        "error_rate" => Aggregate::ErrorRate,
        _ => {
            return Err(format!(
                "unknown aggregate `{text}`; expected p(N), avg, med, min, max, rate, rps, count or error_rate"
            ))
        }
    })
}

/// Parses a latency as thresholds write it (`500ms`, `250us`, `1.5s`,
/// `1m`, or a bare number of milliseconds, as in k6) into milliseconds;
/// also for `report --compare --min-change`.
pub fn parse_latency_ms(text: &str) -> Result<f64, String> {
    parse_value(text.trim(), Unit::Ms)
}

fn parse_value(text: &str, unit: Unit) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a number"))?;
    if !n.is_finite() {
        return Err(format!("`{text}`: expected a finite number"));
    }
    let suffix = suffix.trim();
    let scaled = match (unit, suffix) {
        // A bare number is milliseconds, as in k6.
        (Unit::Ms, "" | "ms") => n,
        (Unit::Ms, "us" | "µs") => n / 1000.0,
        (Unit::Ms, "s") => n * 1000.0,
        (Unit::Ms, "m") => n * 60_000.0,
        // A fraction; "5" for 5% would be a gate that can never fail.
        (Unit::Ratio, "") if (0.0..=1.0).contains(&n) => n,
        (Unit::Ratio, "") => {
            return Err(format!("`{text}`: a rate is a fraction from 0 to 1; for a percentage write `{n}%`"))
        }
        (Unit::Ratio, "%") => n / 100.0,
        (Unit::PerSecond | Unit::Count, "") => n,
        (Unit::PerSecond, "/s") => n,
        _ => {
            return Err(format!(
                "`{text}`: unit `{suffix}` does not fit this aggregate (latencies take us, ms, s or m; rates a fraction or %)"
            ))
        }
    };
    Ok(scaled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps() -> Vec<String> {
        vec!["list".into(), "item".into()]
    }

    #[test]
    fn parses_k6_style_expressions() {
        let t = parse_flag("http_req_duration: p(95) < 500ms", &steps()).unwrap();
        assert_eq!(t.aggregate, Aggregate::Percentile(95.0));
        assert_eq!(t.op, Op::Lt);
        assert_eq!(t.value, 500.0);
        let t = parse_flag("http_req_duration: max<2s", &steps()).unwrap();
        assert_eq!(t.value, 2000.0);
        let t = parse_flag("http_req_failed: rate < 1%", &steps()).unwrap();
        assert_eq!(t.value, 0.01);
        let t = parse_flag("http_reqs: rps >= 100", &steps()).unwrap();
        assert_eq!((t.op, t.value), (Op::Ge, 100.0));
        let t = parse_flag("step:item: p(99) < 800", &steps()).unwrap();
        assert_eq!(t.metric, Metric::Step("item".into()));
        assert_eq!(t.value, 800.0);
    }

    #[test]
    fn every_expression_on_a_step_or_run_without_requests_has_no_data_and_fails() {
        // The test summary's step `create, new` sent no request.
        let mut summary = crate::metrics::summary::test_summary();
        let steps = vec!["list".to_string(), "create, new".to_string()];
        let idle = [
            "error_rate < 0.05",
            "p(99) < 800ms",
            "count < 10",
            "count == 0",
            "rps < 100",
            "avg < 1s",
            "med < 1s",
            "min < 1s",
            "max < 1s",
        ];
        for expr in idle {
            let t = parse_flag(&format!("step:create, new: {expr}"), &steps).unwrap();
            assert_eq!(t.check(&summary), (None, false), "{expr}");
        }
        let busy = parse_flag("step:list: error_rate < 0.05", &steps).unwrap();
        assert_eq!(busy.check(&summary), (Some(0.02), true));
        // The whole run without a request: the run-wide metrics alike.
        summary.totals = StepStats::default();
        for flag in [
            "http_req_failed: rate < 0.01",
            "http_req_failed: count < 5",
            "http_reqs: count < 10",
            "http_reqs: rps < 100",
            "http_req_duration: p(95) < 1s",
        ] {
            let t = parse_flag(flag, &steps).unwrap();
            assert_eq!(t.check(&summary), (None, false), "{flag}");
        }
    }

    #[test]
    fn rejects_nonsense_with_a_reason() {
        let e = parse_flag("http_req_duraton: p(95) < 1s", &steps()).unwrap_err();
        assert!(e.contains("did you mean `http_req_duration`"), "{e}");
        let e = parse_flag("step:itme: p(95) < 1s", &steps()).unwrap_err();
        assert!(e.contains("did you mean `step:item`"), "{e}");
        assert!(parse_flag("http_req_failed: p(95) < 1s", &steps()).is_err());
        assert!(parse_flag("http_req_duration: p(95) < 5%", &steps()).is_err());
        assert!(parse_flag("http_req_duration: p(101) < 5", &steps()).is_err());
        assert!(parse_flag("http_req_duration: p(95) 5", &steps()).is_err());
        assert!(parse_flag("http_req_failed: rate < 5", &steps()).is_err());
    }
}
