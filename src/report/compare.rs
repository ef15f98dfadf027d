//! `loadctl report --compare BASE CURRENT`: the change between two runs,
//! per step and in total, and whether any change is a regression.
//!
//! Steps are matched by name. For each, and for all requests, five
//! measures are compared: requests per second, error rate, and the p50,
//! p95 and p99 latencies. The [`CompareRules`] decide, with a limit L (a
//! fraction; `10%` is 0.1) and a latency floor F (milliseconds):
//! - rps is a regression when it falls below `base × (1 − L)`;
//! - error rate is a regression when it rises above `base × (1 + L)`. A
//!   base of 0 therefore makes any rise a regression: a step that never
//!   failed and now fails has regressed;
//! - a latency is a regression when it rises above `base × (1 + L)` *and*
//!   by at least F: a rise smaller than F is noise whatever its
//!   percentage (on loopback, 1 ms to 2.7 ms is +170%).
//!
//! A measure missing on either side (a step only one run has, or latency
//! of a step that sent nothing) is shown and never judged. The rules live
//! here, not in the CLI, so every front end (`report --compare`, the MCP
//! tool `compare_runs`) judges alike.

use std::fmt::Write as _;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use crate::metrics::summary::{RunSummary, StepStats};
use crate::units::short;

/// `--max-regression` when none is given: 10%.
pub const DEFAULT_LIMIT: f64 = 0.1;

/// `--min-change` when none is given, in milliseconds: more than the
/// jitter of two identical runs on loopback, less than any change a
/// network service's users would notice.
pub const DEFAULT_MIN_CHANGE_MS: f64 = 2.0;

/// What counts as a regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareRules {
    /// The relative change allowed, as a fraction (`0.1` is 10%).
    pub max_regression: f64,
    /// The smallest latency rise, in milliseconds, that can be a
    /// regression; a smaller one never is, whatever its percentage.
    pub min_change_ms: f64,
}

impl Default for CompareRules {
    fn default() -> Self {
        CompareRules {
            max_regression: DEFAULT_LIMIT,
            min_change_ms: DEFAULT_MIN_CHANGE_MS,
        }
    }
}

/// How one measure's change fared under the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Within the limit, better, or not comparable.
    Fine,
    /// Worse than the limit allows.
    Regression,
    /// A latency rise beyond the limit in percent, but smaller than the
    /// floor in milliseconds: noise, not a regression.
    BelowFloor,
}

impl CompareRules {
    /// The rules with what was given, and the defaults for the rest (as
    /// `--max-regression` and `--min-change`, parsed by [`parse_limit`]
    /// and [`parse_min_change`], give them).
    pub fn with(max_regression: Option<f64>, min_change_ms: Option<f64>) -> CompareRules {
        let defaults = CompareRules::default();
        CompareRules {
            max_regression: max_regression.unwrap_or(defaults.max_regression),
            min_change_ms: min_change_ms.unwrap_or(defaults.min_change_ms),
        }
    }

    /// Judges `measure` going from `base` to `current`.
    pub fn judge(&self, measure: Measure, base: f64, current: f64) -> Judgement {
        let limit = self.max_regression;
        let beyond = if measure.higher_is_better() {
            current < base * (1.0 - limit)
        } else {
            current > base * (1.0 + limit)
        };
        if !beyond {
            Judgement::Fine
        } else if measure.is_latency() && current - base < self.min_change_ms {
            Judgement::BelowFloor
        } else {
            Judgement::Regression
        }
    }
}

/// What is compared, in the order the table shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Rps,
    ErrorRate,
    P50,
    P95,
    P99,
}

impl Measure {
    pub const ALL: [Measure; 5] = [
        Measure::Rps,
        Measure::ErrorRate,
        Measure::P50,
        Measure::P95,
        Measure::P99,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Measure::Rps => "rps",
            Measure::ErrorRate => "error rate",
            Measure::P50 => "p50",
            Measure::P95 => "p95",
            Measure::P99 => "p99",
        }
    }

    /// Throughput is better higher; everything else is better lower.
    fn higher_is_better(self) -> bool {
        self == Measure::Rps
    }

    /// In milliseconds, so the latency floor applies.
    fn is_latency(self) -> bool {
        matches!(self, Measure::P50 | Measure::P95 | Measure::P99)
    }

    fn of(self, s: &StepStats) -> Option<f64> {
        match self {
            Measure::Rps => Some(s.rps),
            // Without requests there is no error rate, only a 0 by convention.
            Measure::ErrorRate => (s.requests > 0).then_some(s.error_rate),
            Measure::P50 => s.latency_ms.0.get("p50").copied(),
            Measure::P95 => s.latency_ms.0.get("p95").copied(),
            Measure::P99 => s.latency_ms.0.get("p99").copied(),
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Measure::Rps => short(v),
            Measure::ErrorRate => format!("{}%", short(v * 100.0)),
            Measure::P50 | Measure::P95 | Measure::P99 => format!("{}ms", short(v)),
        }
    }
}

/// One measure of one step (or of all requests) in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub step: String,
    pub measure: Measure,
    pub base: Option<f64>,
    pub current: Option<f64>,
    /// How the change fared; [`Judgement::Fine`] when a side is missing.
    pub judgement: Judgement,
    /// The change is worse than the rules allow (`judgement` is
    /// [`Judgement::Regression`]).
    pub regression: bool,
}

impl Row {
    /// `(current − base) / base`; infinite when the base is 0 and the
    /// current is not; `None` when a side is missing.
    pub fn change(&self) -> Option<f64> {
        let (base, current) = (self.base?, self.current?);
        Some(if base == 0.0 {
            if current == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (current - base) / base
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The rules the rows were judged by.
    pub rules: CompareRules,
    pub rows: Vec<Row>,
}

impl Comparison {
    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.regression)
    }

    /// Latency rises beyond the limit that the floor let through.
    pub fn below_floor(&self) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .filter(|r| r.judgement == Judgement::BelowFloor)
    }
}

/// Compares every step (base order, then steps only the current run has)
/// and then all requests.
pub fn compare(base: &RunSummary, current: &RunSummary, rules: &CompareRules) -> Comparison {
    let mut pairs: Vec<(&str, Option<&StepStats>, Option<&StepStats>)> = base
        .steps
        .iter()
        .map(|b| {
            let c = current.steps.iter().find(|c| c.name == b.name);
            (b.name.as_str(), Some(b), c)
        })
        .collect();
    pairs.extend(
        current
            .steps
            .iter()
            .filter(|c| !base.steps.iter().any(|b| b.name == c.name))
            .map(|c| (c.name.as_str(), None, Some(c))),
    );
    pairs.push((
        current.totals.name.as_str(),
        Some(&base.totals),
        Some(&current.totals),
    ));
    let rows = pairs
        .into_iter()
        .flat_map(|(step, b, c)| {
            Measure::ALL.map(|measure| {
                let base = b.and_then(|s| measure.of(s));
                let current = c.and_then(|s| measure.of(s));
                let judgement = match (base, current) {
                    (Some(b), Some(c)) => rules.judge(measure, b, c),
                    _ => Judgement::Fine,
                };
                Row {
                    step: step.to_string(),
                    measure,
                    base,
                    current,
                    judgement,
                    regression: judgement == Judgement::Regression,
                }
            })
        })
        .collect();
    Comparison {
        rules: *rules,
        rows,
    }
}

/// Parses a latency floor such as `2ms`, `500us` or `0` into
/// milliseconds (a bare number is milliseconds, as in thresholds).
pub fn parse_min_change(text: &str) -> Result<f64, String> {
    let ms = crate::plan::threshold::parse_latency_ms(text)
        .map_err(|e| format!("{e}; expected a latency such as 2ms or 500us"))?;
    if ms < 0.0 {
        return Err(format!("{text:?}: the smallest change cannot be negative"));
    }
    Ok(ms)
}

/// Parses a limit such as `10%` or `2.5%` into a fraction. The `%` is
/// required, so `0.1` cannot be mistaken for a tenth of a percent.
pub fn parse_limit(text: &str) -> Result<f64, String> {
    let number = text
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("{text:?} is not a percentage such as 10%"))?;
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v / 100.0),
        _ => Err(format!("{text:?} is not a percentage such as 10%")),
    }
}

/// The side-by-side table, then a line per regression (or a line saying
/// there is none).
pub fn render(c: &Comparison, base_label: &str, current_label: &str) -> String {
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            ["step", "measure", "base", "current", "change", ""]
                .into_iter()
                .map(Cell::new),
        );
    let floor = format!("{}ms", short(c.rules.min_change_ms));
    let mut last_step = None;
    for row in &c.rows {
        let step = if last_step == Some(&row.step) {
            String::new()
        } else {
            row.step.clone()
        };
        last_step = Some(&row.step);
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| row.measure.show(v));
        table.add_row([
            Cell::new(step),
            Cell::new(row.measure.name()),
            Cell::new(show(row.base)),
            Cell::new(show(row.current)),
            Cell::new(row.change().map_or_else(String::new, percent_change)),
            Cell::new(match row.judgement {
                Judgement::Regression => "REGRESSION".to_string(),
                Judgement::BelowFloor => format!("under {floor}"),
                Judgement::Fine => String::new(),
            }),
        ]);
    }
    for column in 2..5 {
        if let Some(col) = table.column_mut(column) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let limit = format!("{}%", short(c.rules.max_regression * 100.0));
    let mut out = format!("base:    {base_label}\ncurrent: {current_label}\n{table}\n");
    let noise = c.below_floor().count();
    if noise > 0 {
        let _ = writeln!(
            out,
            "{noise} latency rise{} beyond {limit} but under {floor} (--min-change): not counted",
            if noise == 1 { "" } else { "s" }
        );
    }
    let regressions: Vec<&Row> = c.regressions().collect();
    if regressions.is_empty() {
        let _ = writeln!(out, "no regression beyond {limit}");
        return out;
    }
    let _ = writeln!(
        out,
        "{} regression{} beyond {limit}:",
        regressions.len(),
        if regressions.len() == 1 { "" } else { "s" }
    );
    for r in regressions {
        let direction = if r.measure.higher_is_better() {
            "down"
        } else {
            "up"
        };
        let change = r.change().map_or_else(String::new, |ch| {
            if ch.is_finite() {
                format!(" {}%", short(ch.abs() * 100.0))
            } else {
                " from 0".to_string()
            }
        });
        let _ = writeln!(
            out,
            "  {}: {} {direction}{change} ({} → {})",
            r.step,
            r.measure.name(),
            r.measure.show(r.base.unwrap_or_default()),
            r.measure.show(r.current.unwrap_or_default()),
        );
    }
    out
}

fn percent_change(change: f64) -> String {
    if change.is_finite() {
        format!("{:+.1}%", change * 100.0)
    } else {
        "new".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_summary;

    /// A limit without a latency floor.
    fn limit(max_regression: f64) -> CompareRules {
        CompareRules {
            max_regression,
            min_change_ms: 0.0,
        }
    }

    fn row<'a>(c: &'a Comparison, step: &str, measure: Measure) -> &'a Row {
        c.rows
            .iter()
            .find(|r| r.step == step && r.measure == measure)
            .unwrap()
    }

    #[test]
    fn a_run_compared_with_itself_has_no_regression() {
        let s = test_summary();
        let c = compare(&s, &s, &limit(0.0));
        assert_eq!(c.regressions().count(), 0);
        // Two steps and the total, five measures each.
        assert_eq!(c.rows.len(), 15);
        assert!(render(&c, "a", "b").contains("no regression beyond 0%"));
    }

    #[test]
    fn latency_up_and_rps_down_beyond_the_limit_are_regressions() {
        let base = test_summary();
        let mut current = base.clone();
        current.steps[0].latency_ms.0.insert("p95".to_string(), 3.2); // +6.7%
        current.steps[0].latency_ms.0.insert("p99".to_string(), 6.0); // +20%
        current.totals.rps = 8.0; // −20%
        let c = compare(&base, &current, &limit(0.1));
        assert!(!row(&c, "list", Measure::P95).regression);
        assert!(row(&c, "list", Measure::P99).regression);
        assert!(row(&c, "Aggregated", Measure::Rps).regression);
        assert!(!row(&c, "Aggregated", Measure::P99).regression);
        let text = render(&c, "base.json", "current.json");
        assert!(text.contains("2 regressions beyond 10%"), "{text}");
        assert!(text.contains("list: p99 up 20% (5ms → 6ms)"), "{text}");
        assert!(text.contains("Aggregated: rps down 20% (10 → 8)"), "{text}");
        // Faster and busier is never a regression.
        let c = compare(&current, &base, &limit(0.1));
        assert!(!row(&c, "Aggregated", Measure::Rps).regression);
        assert!(!row(&c, "list", Measure::P99).regression);
    }

    #[test]
    fn errors_where_there_were_none_are_a_regression() {
        let mut base = test_summary();
        base.steps[0].error_rate = 0.0;
        let current = test_summary();
        let c = compare(&base, &current, &limit(0.5));
        let r = row(&c, "list", Measure::ErrorRate);
        assert!(r.regression);
        assert_eq!(r.change(), Some(f64::INFINITY));
        assert!(render(&c, "a", "b").contains("list: error rate up from 0 (0% → 2%)"));
    }

    #[test]
    fn steps_in_one_run_only_are_shown_not_judged() {
        let base = test_summary();
        let mut current = base.clone();
        current.steps[0].name = "renamed".to_string();
        let c = compare(&base, &current, &limit(0.1));
        let gone = row(&c, "list", Measure::Rps);
        assert_eq!((gone.current, gone.regression), (None, false));
        let new = row(&c, "renamed", Measure::P99);
        assert_eq!(
            (new.base, new.current, new.regression),
            (None, Some(5.0), false)
        );
        // The idle step has no latency on either side.
        assert_eq!(row(&c, "create, new", Measure::P50).base, None);
    }

    #[test]
    fn a_latency_rise_under_the_floor_is_noise_whatever_its_percentage() {
        // Two identical runs on loopback: p95 from 1 ms to 2.72 ms.
        let mut base = test_summary();
        base.totals.latency_ms.0.insert("p95".to_string(), 1.0);
        let mut current = base.clone();
        current.totals.latency_ms.0.insert("p95".to_string(), 2.72);
        let rules = CompareRules::default();
        assert_eq!(rules.min_change_ms, 2.0);
        let c = compare(&base, &current, &rules);
        let r = row(&c, "Aggregated", Measure::P95);
        assert_eq!((r.judgement, r.regression), (Judgement::BelowFloor, false));
        assert_eq!(c.regressions().count(), 0);
        let text = render(&c, "a", "b");
        assert!(text.contains("under 2ms"), "{text}");
        assert!(
            text.contains("1 latency rise beyond 10% but under 2ms (--min-change): not counted"),
            "{text}"
        );
        assert!(text.contains("no regression beyond 10%"), "{text}");
        // A lower floor lets the same rise count.
        let strict = CompareRules {
            min_change_ms: 1.0,
            ..rules
        };
        assert!(
            row(
                &compare(&base, &current, &strict),
                "Aggregated",
                Measure::P95
            )
            .regression
        );
    }

    #[test]
    fn a_latency_rise_past_the_floor_is_still_judged_by_the_limit() {
        let mut base = test_summary();
        base.totals.latency_ms.0.insert("p99".to_string(), 100.0);
        let mut current = base.clone();
        // +5 ms is past the 2 ms floor but within 10%: no regression.
        current.totals.latency_ms.0.insert("p99".to_string(), 105.0);
        let rules = CompareRules::default();
        let r = compare(&base, &current, &rules);
        assert_eq!(
            row(&r, "Aggregated", Measure::P99).judgement,
            Judgement::Fine
        );
        // +15 ms: past both, a regression.
        current.totals.latency_ms.0.insert("p99".to_string(), 115.0);
        let r = compare(&base, &current, &rules);
        assert_eq!(
            row(&r, "Aggregated", Measure::P99).judgement,
            Judgement::Regression
        );
        // Faster by more than the floor and the limit is never a regression.
        let r = compare(&current, &base, &rules);
        assert_eq!(
            row(&r, "Aggregated", Measure::P99).judgement,
            Judgement::Fine
        );
        // The floor is for latencies only: rps and error rate ignore it.
        let mut slower = base.clone();
        slower.totals.rps = 8.0;
        slower.totals.error_rate = 0.03;
        let r = compare(&base, &slower, &rules);
        assert!(row(&r, "Aggregated", Measure::Rps).regression);
        assert!(row(&r, "Aggregated", Measure::ErrorRate).regression);
    }

    #[test]
    fn floors_are_latencies() {
        assert_eq!(parse_min_change("2ms"), Ok(2.0));
        assert_eq!(parse_min_change(" 500us "), Ok(0.5));
        assert_eq!(parse_min_change("1.5s"), Ok(1500.0));
        assert_eq!(parse_min_change("3"), Ok(3.0));
        assert_eq!(parse_min_change("0"), Ok(0.0));
        assert!(parse_min_change("-1ms").unwrap_err().contains("negative"));
        assert!(parse_min_change("5%").is_err());
        assert!(parse_min_change("soon").is_err());
    }

    #[test]
    fn limits_are_percentages() {
        assert_eq!(parse_limit("10%"), Ok(0.1));
        assert_eq!(parse_limit(" 2.5 % "), Ok(0.025));
        assert_eq!(parse_limit("0%"), Ok(0.0));
        assert!(parse_limit("0.1").is_err());
        assert!(parse_limit("-5%").is_err());
        assert!(parse_limit("lots%").is_err());
    }
}
