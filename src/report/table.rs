//! The end-of-run summary for the terminal: run facts, a per-step table,
//! failures by kind and the thresholds.

use std::fmt::Write as _;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::plural;
use crate::metrics::summary::{DistributionReport, RunSummary, StepStats};
use crate::units::short;

/// [`render`] as a [`Writer`](super::Writer), for `loadctl report`.
pub fn write(summary: &RunSummary, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    out.write_all(render(summary).as_bytes())
}

/// Renders the summary as text for a terminal (no colour codes, so it is
/// safe to redirect to a file).
pub fn render(summary: &RunSummary) -> String {
    let mut out = String::new();
    let run = &summary.run;
    let state = match summary.verdict() {
        crate::metrics::summary::Verdict::Failed => " (failed)",
        _ if run.interrupted => " (interrupted)",
        _ => "",
    };
    let _ = writeln!(out, "\n{}{state}", run.name);
    let users = if run.model == "open" {
        plural(run.users, "max user", "max users")
    } else {
        plural(run.users, "user", "users")
    };
    let _ = writeln!(
        out,
        "  target {}  ·  {} model, {} pattern, {} {users}  ·  {:.1}s  ·  {} {}",
        run.target,
        run.model,
        run.pattern,
        run.users,
        run.elapsed_s,
        summary.iterations,
        plural(summary.iterations, "iteration", "iterations"),
    );
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            [
                "step", "reqs", "fail", "rps", "min", "mean", "p50", "p90", "p95", "p99", "max",
            ]
            .into_iter()
            .map(Cell::new),
        );
    for step in &summary.steps {
        table.add_row(row(step));
    }
    table.add_row(row(&summary.totals));
    for column in 1..11 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let _ = writeln!(out, "{table}");
    if run.model == "open" {
        let _ = writeln!(
            out,
            "  latencies in ms, from each iteration's intended start (corrected for coordinated omission)"
        );
        let mut service = Table::new();
        service
            .load_style(UTF8_BORDERS_ONLY)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(
                ["service time", "p50", "p90", "p95", "p99", "max"]
                    .into_iter()
                    .map(Cell::new),
            );
        for step in summary.steps.iter().chain([&summary.totals]) {
            let mut cells = vec![Cell::new(&step.name)];
            for key in ["p50", "p90", "p95", "p99", "max"] {
                cells.push(Cell::new(ms(step.service_time_ms.0.get(key))));
            }
            service.add_row(cells);
        }
        let _ = writeln!(out, "{service}");
        let _ = writeln!(out, "  service time in ms, from the actual send");
        let _ = writeln!(
            out,
            "  arrivals: target {:.1}/s, achieved {:.1}/s, dropped {}",
            summary.target_rate.unwrap_or(0.0),
            summary.achieved_rate.unwrap_or(0.0),
            summary.dropped
        );
    } else {
        let _ = writeln!(out, "  latencies in ms");
    }
    if !summary.totals.errors.is_empty() {
        let kinds: Vec<String> = summary
            .totals
            .errors
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "\nfailures: {}", kinds.join(", "));
        for f in summary.failures.iter().take(5) {
            let _ = writeln!(
                out,
                "  {:>7}×  {} {}: {}",
                f.count, f.method, f.step, f.message
            );
        }
    }
    if !summary.thresholds.is_empty() {
        let _ = writeln!(out, "\nthresholds:");
        for t in &summary.thresholds {
            let mark = if t.passed { "✓" } else { "✗" };
            let outcome = match super::no_data(t) {
                Some(why) => format!("not evaluated, {why}"),
                None => format!("observed {}", super::observed(t)),
            };
            let _ = writeln!(out, "  {mark} {}: {}  ({outcome})", t.metric, t.expression);
        }
    }
    if let Some(d) = &summary.distribution {
        workers(&mut out, d);
    }
    for warning in &summary.warnings {
        let _ = writeln!(out, "\nwarning: {warning}");
    }
    out
}

/// A distributed run's workers: their share, counts, CPU and fate.
fn workers(out: &mut String, d: &DistributionReport) {
    let _ = writeln!(
        out,
        "\nworkers ({} strategy, on_worker_lost = {}):",
        d.strategy, d.on_worker_lost
    );
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            [
                "worker", "labels", "share", "reqs", "fail", "cpu mean", "cpu peak", "state",
            ]
            .into_iter()
            .map(Cell::new),
        );
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    for w in &d.workers {
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let state = match (w.lost_at_s, &w.error) {
            (Some(at), _) => format!("{} at {at:.1}s", w.state),
            (None, Some(error)) => format!("{}: {error}", w.state),
            (None, None) => w.state.clone(),
        };
        table.add_row(vec![
            Cell::new(&w.name),
            Cell::new(labels.join(",")),
            Cell::new(format!("{:.1}%", w.share * 100.0)),
            Cell::new(w.requests),
            Cell::new(w.failures),
            Cell::new(percent(w.cpu_mean)),
            Cell::new(percent(w.cpu_peak)),
            Cell::new(state),
        ]);
    }
    let _ = writeln!(out, "{table}");
    if let Some(why) = &d.failed {
        let _ = writeln!(out, "  the run failed: {why}");
    }
}

fn row(s: &StepStats) -> Vec<Cell> {
    let l = &s.latency_ms;
    let mut cells = vec![
        Cell::new(&s.name),
        Cell::new(s.requests),
        Cell::new(s.failures),
        Cell::new(format!("{:.1}", s.rps)),
    ];
    for key in ["min", "mean", "p50", "p90", "p95", "p99", "max"] {
        cells.push(Cell::new(ms(l.0.get(key))));
    }
    cells
}

fn ms(v: Option<&f64>) -> String {
    match v {
        Some(v) => short(*v),
        None => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_summary;

    #[test]
    fn one_of_a_thing_is_singular() {
        let mut summary = test_summary();
        assert!(render(&summary).contains("4 users  ·  10.0s  ·  98 iterations"));
        summary.run.users = 1;
        summary.iterations = 1;
        let text = render(&summary);
        assert!(
            text.contains("1 user  ·  10.0s  ·  1 iteration\n"),
            "{text}"
        );
        summary.run.model = "open".to_string();
        assert!(render(&summary).contains("1 max user  ·"));
    }

    #[test]
    fn workers_and_warnings_follow_the_thresholds() {
        let mut summary = test_summary();
        summary.warnings = vec!["the load generator used 90% or more of its CPU".to_string()];
        summary.distribution = Some(DistributionReport {
            strategy: "even".to_string(),
            on_worker_lost: "rebalance".to_string(),
            failed: None,
            workers: vec![crate::metrics::summary::WorkerReport {
                name: "w1".to_string(),
                state: "lost".to_string(),
                share: 1.0 / 3.0,
                lost_at_s: Some(8.52),
                ..Default::default()
            }],
        });
        let text = render(&summary);
        assert!(
            text.contains("workers (even strategy, on_worker_lost = rebalance):"),
            "{text}"
        );
        assert!(
            text.contains("33.3%") && text.contains("lost at 8.5s"),
            "{text}"
        );
        assert!(text.ends_with("\nwarning: the load generator used 90% or more of its CPU\n"));
    }

    #[test]
    fn thresholds_show_the_observed_value_or_why_there_is_none() {
        let summary = crate::report::no_data_summary();
        let text = render(&summary);
        assert!(
            text.contains(
                "✗ step:create, new: p(95) < 500ms  (not evaluated, no data: step `create, new` sent no request)"
            ),
            "{text}"
        );
        assert!(text.contains("✗ step:list: error_rate < 0.01  (observed 2%)"));
    }
}
