//! `report.html`: one self-contained page for people, rendered from the
//! summary with the minijinja template `report.html.j2` (kept beside this
//! file and compiled into the binary).
//!
//! This module owns the page's content: it turns the summary into a view
//! (formatted numbers, and the geometry of each chart) and the template
//! lays that out. Charts are inline SVG built from the per-second series;
//! there is no script, no web font and no external URL, so the file works
//! offline, attached to a CI run or mailed. Hovering a chart shows that
//! second's values (SVG `<title>`), for runs of up to [`HOVER_LIMIT`]
//! seconds; longer runs keep the lines and leave the per-second numbers to
//! `_stats_history.csv`.

use std::io::Write;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::Serialize;

use super::plural;
use crate::metrics::summary::{Latency, RunSummary, SeriesPoint, StepStats};
use crate::units::{grouped, short};

const TEMPLATE_NAME: &str = "report.html.j2";
const TEMPLATE: &str = include_str!("report.html.j2");

/// Longest series (in seconds) whose charts get per-second hover boxes;
/// beyond it the file would grow by about half a kilobyte a second.
pub const HOVER_LIMIT: usize = 900;

/// Failures listed one by one; the rest are counted.
const FAILURE_ROWS: usize = 50;

pub fn write(summary: &RunSummary, out: &mut dyn Write) -> std::io::Result<()> {
    let html = render(summary).map_err(std::io::Error::other)?;
    out.write_all(html.as_bytes())?;
    out.write_all(b"\n")
}

/// The page as a string.
pub fn render(summary: &RunSummary) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    // The template's name ends in .html.j2, so minijinja escapes every
    // value for HTML; tags on lines of their own leave no blank lines.
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    env.add_template(TEMPLATE_NAME, TEMPLATE)?;
    env.get_template(TEMPLATE_NAME)?
        .render(Value::from(Serde(view(summary))))
}

#[derive(Serialize)]
struct View {
    name: String,
    interrupted: bool,
    elapsed: String,
    open: bool,
    verdict: Verdict,
    facts: Vec<Fact>,
    cards: Vec<Card>,
    charts: Vec<Chart>,
    steps: Vec<StepRow>,
    service: Vec<ServiceRow>,
    thresholds: Vec<ThresholdRow>,
    status: Matrix,
    errors: Matrix,
    failures: Vec<FailureRow>,
    failures_more: usize,
    version: String,
    schema_version: u32,
    /// The summary's warnings (a saturated generator, a lost worker).
    warnings: Vec<String>,
    /// Why a distributed run failed.
    failed: Option<String>,
    /// A distributed run's workers.
    workers: Vec<WorkerRow>,
    distribution: String,
}

#[derive(Serialize)]
struct WorkerRow {
    name: String,
    labels: String,
    share: String,
    requests: String,
    failures: String,
    cpu_mean: String,
    cpu_peak: String,
    state: String,
    bad: bool,
}

#[derive(Serialize)]
struct Verdict {
    /// `pass`, `fail` or `none`: the CSS class.
    class: &'static str,
    text: String,
}

/// A labelled fact about the run (target, model, start…).
#[derive(Serialize)]
struct Fact {
    label: &'static str,
    value: String,
}

/// A headline number.
#[derive(Serialize)]
struct Card {
    label: &'static str,
    value: String,
    note: String,
    bad: bool,
}

#[derive(Serialize)]
struct StepRow {
    name: String,
    method: String,
    total: bool,
    requests: String,
    failures: String,
    error_rate: String,
    bad: bool,
    rps: String,
    /// min, mean, p50, p90, p95, p99, max.
    latency: Vec<String>,
    size: String,
}

#[derive(Serialize)]
struct ServiceRow {
    name: String,
    total: bool,
    /// p50, p90, p95, p99, max of service time, then of latency.
    service: Vec<String>,
    latency: Vec<String>,
}

#[derive(Serialize)]
struct ThresholdRow {
    passed: bool,
    /// Not evaluated: there was no data (it failed).
    no_data: bool,
    metric: String,
    expression: String,
    /// The observed value, or why there is none.
    observed: String,
}

/// Counts by step and by column (status codes or error kinds).
#[derive(Serialize)]
struct Matrix {
    columns: Vec<MatrixColumn>,
    rows: Vec<MatrixRow>,
}

#[derive(Serialize)]
struct MatrixColumn {
    name: String,
    /// CSS class: `ok`, `redirect`, `client`, `server` or `error`.
    class: &'static str,
}

#[derive(Serialize)]
struct MatrixRow {
    name: String,
    total: bool,
    cells: Vec<String>,
}

#[derive(Serialize)]
struct FailureRow {
    count: String,
    step: String,
    method: String,
    kind: String,
    message: String,
    seen: String,
}

fn worker_row(w: &crate::metrics::summary::WorkerReport) -> WorkerRow {
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    let state = match (w.lost_at_s, &w.error) {
        (Some(at), _) => format!("{} at {}", w.state, seconds(at)),
        (None, Some(error)) => format!("{}: {error}", w.state),
        (None, None) => w.state.clone(),
    };
    WorkerRow {
        name: w.name.clone(),
        labels: w
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
        share: format!("{:.1}%", w.share * 100.0),
        requests: grouped(w.requests),
        failures: grouped(w.failures),
        cpu_mean: percent(w.cpu_mean),
        cpu_peak: percent(w.cpu_peak),
        bad: w.state != "done",
        state,
    }
}

/// The headline: failed, or how the thresholds went.
fn verdict(s: &RunSummary) -> Verdict {
    let failed = s.thresholds.iter().filter(|t| !t.passed).count();
    if s.verdict() == crate::metrics::summary::Verdict::Failed {
        Verdict {
            class: "fail",
            text: "the run failed".to_string(),
        }
    } else if s.thresholds.is_empty() {
        Verdict {
            class: "none",
            text: "no thresholds set".to_string(),
        }
    } else if failed == 0 {
        Verdict {
            class: "pass",
            text: match s.thresholds.len() {
                1 => "the threshold passed".to_string(),
                n => format!("all {n} thresholds passed"),
            },
        }
    } else {
        let n = s.thresholds.len();
        Verdict {
            class: "fail",
            text: format!(
                "{failed} of {n} {} failed",
                plural(n as u64, "threshold", "thresholds")
            ),
        }
    }
}

fn view(s: &RunSummary) -> View {
    let run = &s.run;
    let open = run.model == "open";
    let verdict = verdict(s);
    let mut facts = vec![
        Fact {
            label: "target",
            value: run.target.clone(),
        },
        Fact {
            label: "load",
            value: format!(
                "{} model · {} · {} {}",
                run.model,
                run.pattern,
                run.users,
                if open {
                    plural(run.users, "max user", "max users")
                } else {
                    plural(run.users, "user", "users")
                }
            ),
        },
        Fact {
            label: "started",
            value: when(&run.started_at),
        },
        Fact {
            label: "ended",
            value: when(&run.ended_at),
        },
        Fact {
            label: "elapsed",
            value: seconds(run.elapsed_s),
        },
        Fact {
            label: "limits",
            value: limits(s),
        },
        Fact {
            label: "http",
            value: format!(
                "{} · {} generator {}",
                run.http,
                run.threads,
                plural(run.threads as u64, "thread", "threads")
            ),
        },
    ];
    if let Some(seed) = run.seed {
        facts.push(Fact {
            label: "seed",
            value: seed.to_string(),
        });
    }
    if let Some(file) = &run.scenario_file {
        facts.push(Fact {
            label: "scenario",
            value: file.clone(),
        });
    }
    let more = s.failures.len().saturating_sub(FAILURE_ROWS);
    let distribution = s.distribution.as_ref();
    View {
        warnings: s.warnings.clone(),
        failed: distribution.and_then(|d| d.failed.clone()),
        workers: distribution.map_or_else(Vec::new, |d| d.workers.iter().map(worker_row).collect()),
        distribution: distribution.map_or_else(String::new, |d| {
            format!(
                "{} strategy, on_worker_lost = {}",
                d.strategy, d.on_worker_lost
            )
        }),
        name: run.name.clone(),
        interrupted: run.interrupted,
        elapsed: seconds(run.elapsed_s),
        open,
        verdict,
        facts,
        cards: cards(s, open),
        charts: charts(s, open),
        steps: s
            .steps
            .iter()
            .map(|st| step_row(st, false))
            .chain([step_row(&s.totals, true)])
            .collect(),
        service: if open {
            s.steps
                .iter()
                .map(|st| service_row(st, false))
                .chain([service_row(&s.totals, true)])
                .collect()
        } else {
            Vec::new()
        },
        thresholds: s
            .thresholds
            .iter()
            .map(|t| ThresholdRow {
                passed: t.passed,
                no_data: !t.evaluated(),
                metric: t.metric.clone(),
                expression: t.expression.clone(),
                observed: super::no_data(t).unwrap_or_else(|| super::observed(t)),
            })
            .collect(),
        status: matrix(s, |st| &st.status_codes, status_class),
        errors: matrix(s, |st| &st.errors, |_| "error"),
        failures: s
            .failures
            .iter()
            .take(FAILURE_ROWS)
            .map(|f| FailureRow {
                count: grouped(f.count),
                step: f.step.clone(),
                method: f.method.clone(),
                kind: f.kind.clone(),
                message: f.message.clone(),
                seen: if f.first_seen_s == f.last_seen_s {
                    format!("at {}", clock(f.first_seen_s))
                } else {
                    format!("{} – {}", clock(f.first_seen_s), clock(f.last_seen_s))
                },
            })
            .collect(),
        failures_more: more,
        version: s.loadctl_version.clone(),
        schema_version: s.schema_version,
    }
}

fn cards(s: &RunSummary, open: bool) -> Vec<Card> {
    let t = &s.totals;
    let latency = |label, key: &str| Card {
        label,
        value: t
            .latency_ms
            .0
            .get(key)
            .map_or_else(|| "–".to_string(), |v| format!("{} ms", short(*v))),
        note: if open {
            "since intended start".to_string()
        } else {
            String::new()
        },
        bad: false,
    };
    let mut cards = vec![
        Card {
            label: "requests",
            value: grouped(t.requests),
            note: format!("{} failed", grouped(t.failures)),
            bad: false,
        },
        Card {
            label: "throughput",
            value: format!("{} /s", rate(t.rps)),
            note: format!(
                "{} {}",
                grouped(s.iterations),
                plural(s.iterations, "iteration", "iterations")
            ),
            bad: false,
        },
        Card {
            label: "error rate",
            value: percent(t.error_rate),
            note: t
                .errors
                .iter()
                .map(|(kind, n)| format!("{kind} {}", grouped(*n)))
                .collect::<Vec<_>>()
                .join(", "),
            bad: t.failures > 0,
        },
        latency("p50 latency", "p50"),
        latency("p95 latency", "p95"),
        latency("p99 latency", "p99"),
    ];
    if open {
        cards.push(Card {
            label: "arrivals",
            value: format!("{} /s", rate(s.achieved_rate.unwrap_or(0.0))),
            note: format!(
                "target {} /s · {} dropped",
                rate(s.target_rate.unwrap_or(0.0)),
                grouped(s.dropped)
            ),
            bad: s.dropped > 0,
        });
    }
    cards
}

fn step_row(s: &StepStats, total: bool) -> StepRow {
    StepRow {
        name: if total {
            "all requests".to_string()
        } else {
            s.name.clone()
        },
        method: s.method.clone().unwrap_or_default(),
        total,
        requests: grouped(s.requests),
        failures: grouped(s.failures),
        error_rate: percent(s.error_rate),
        bad: s.failures > 0,
        rps: rate(s.rps),
        latency: cells(
            &s.latency_ms,
            &["min", "mean", "p50", "p90", "p95", "p99", "max"],
        ),
        size: if s.requests == 0 {
            "–".to_string()
        } else {
            bytes(s.body_bytes as f64 / s.requests as f64)
        },
    }
}

fn service_row(s: &StepStats, total: bool) -> ServiceRow {
    let keys = ["p50", "p90", "p95", "p99", "max"];
    ServiceRow {
        name: if total {
            "all requests".to_string()
        } else {
            s.name.clone()
        },
        total,
        service: cells(&s.service_time_ms, &keys),
        latency: cells(&s.latency_ms, &keys),
    }
}

fn cells(l: &Latency, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|k| l.0.get(*k).map_or_else(|| "–".to_string(), |v| short(*v)))
        .collect()
}

/// Steps by the keys of one of their count maps, plus a total row.
fn matrix(
    s: &RunSummary,
    counts: fn(&StepStats) -> &std::collections::BTreeMap<String, u64>,
    class: fn(&str) -> &'static str,
) -> Matrix {
    let columns: Vec<&String> = counts(&s.totals).keys().collect();
    let row = |st: &StepStats, total: bool| MatrixRow {
        name: if total {
            "all requests".to_string()
        } else {
            st.name.clone()
        },
        total,
        cells: columns
            .iter()
            .map(|c| counts(st).get(*c).map_or_else(String::new, |n| grouped(*n)))
            .collect(),
    };
    Matrix {
        rows: s
            .steps
            .iter()
            .map(|st| row(st, false))
            .chain([row(&s.totals, true)])
            .collect(),
        columns: columns
            .iter()
            .map(|c| MatrixColumn {
                name: c.to_string(),
                class: class(c),
            })
            .collect(),
    }
}

fn status_class(code: &str) -> &'static str {
    match code.as_bytes().first() {
        Some(b'2') => "ok",
        Some(b'3') => "redirect",
        Some(b'4') => "client",
        _ => "server",
    }
}

// ---------------------------------------------------------------- charts

/// Size of a chart's SVG coordinate space; the page scales it to its width.
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 985.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 222.0;

#[derive(Serialize)]
struct Chart {
    title: &'static str,
    /// What the y axis counts.
    unit: &'static str,
    note: &'static str,
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    lines: Vec<Line>,
    hovers: Vec<Hover>,
    /// A note when the last point covers less than a second.
    partial: Option<String>,
}

#[derive(Serialize)]
struct Tick {
    at: String,
    label: String,
}

#[derive(Serialize)]
struct Line {
    label: &'static str,
    /// Colour class `c0`…`c5`.
    class: &'static str,
    dashed: bool,
    /// SVG `points` lists; a second without a value breaks the line.
    segments: Vec<String>,
    /// Point markers, for short runs where lines alone would be sparse.
    dots: Vec<(String, String)>,
}

/// An invisible column over one second whose tooltip lists its values.
#[derive(Serialize)]
struct Hover {
    x: String,
    width: String,
    text: String,
}

/// One line of a chart: a label, a colour, and its value at each second.
struct Spec {
    label: &'static str,
    class: &'static str,
    dashed: bool,
    value: fn(&SeriesPoint) -> Option<f64>,
}

const fn spec(
    label: &'static str,
    class: &'static str,
    dashed: bool,
    value: fn(&SeriesPoint) -> Option<f64>,
) -> Spec {
    Spec {
        label,
        class,
        dashed,
        value,
    }
}

fn charts(s: &RunSummary, open: bool) -> Vec<Chart> {
    let series = &s.series;
    let mut charts = vec![
        chart(
            "Throughput",
            "per second",
            "requests completed each second, and how many of them failed",
            series,
            &[
                spec("requests/s", "c0", false, |p| Some(p.rps)),
                spec("failures/s", "c1", false, |p| Some(p.failures_per_second())),
            ],
        ),
        chart(
            "Latency",
            "ms",
            if open {
                "of the requests completed each second, from each iteration's intended start"
            } else {
                "of the requests completed each second"
            },
            series,
            &[
                spec("p50", "c0", false, |p| p.latency_ms.0.get("p50").copied()),
                spec("p95", "c2", false, |p| p.latency_ms.0.get("p95").copied()),
                spec("p99", "c3", false, |p| p.latency_ms.0.get("p99").copied()),
            ],
        ),
    ];
    if open {
        charts.push(chart(
            "Corrected latency vs service time",
            "ms",
            "latency counts from when an iteration was due; service time from the actual send; the gap is time spent waiting for a free slot",
            series,
            &[
                spec("p50 latency", "c0", false, |p| p.latency_ms.0.get("p50").copied()),
                spec("p50 service", "c5", true, |p| {
                    p.service_time_ms.0.get("p50").copied()
                }),
                spec("p99 latency", "c3", false, |p| p.latency_ms.0.get("p99").copied()),
                spec("p99 service", "c2", true, |p| {
                    p.service_time_ms.0.get("p99").copied()
                }),
            ],
        ));
        let mut arrivals = vec![
            spec("target rate", "c4", true, |p| Some(p.target)),
            spec("achieved (iterations started/s)", "c0", false, |p| {
                Some(p.per_second(p.started))
            }),
        ];
        if s.dropped > 0 {
            arrivals.push(spec("dropped/s", "c1", false, |p| {
                Some(p.per_second(p.dropped))
            }));
        }
        charts.push(chart(
            "Arrival rate",
            "iterations per second",
            "what the pattern asked for and what was started",
            series,
            &arrivals,
        ));
    } else {
        charts.push(chart(
            "Users",
            "users",
            "active users at the end of each second, and what the pattern asked for",
            series,
            &[
                spec("target", "c4", true, |p| Some(p.target)),
                spec("active users", "c0", false, |p| Some(p.users as f64)),
            ],
        ));
    }
    charts
}

/// More ticks than any sensible axis has.
const MAX_TICKS: usize = 32;

fn chart(
    title: &'static str,
    unit: &'static str,
    note: &'static str,
    series: &[SeriesPoint],
    specs: &[Spec],
) -> Chart {
    // Each point sits at the real end of its interval: the last one may
    // end within a second, or a little after one.
    let x_max = series.iter().map(SeriesPoint::end_s).fold(1.0, f64::max);
    let y_data = series
        .iter()
        .flat_map(|p| specs.iter().filter_map(|s| (s.value)(p)))
        .fold(0.0_f64, f64::max);
    let (y_max, y_step) = y_axis(y_data);
    let x = |t: f64| LEFT + (RIGHT - LEFT) * t / x_max;
    let y = |v: f64| BOTTOM - (BOTTOM - TOP) * v / y_max;

    let x_step = time_step(x_max);
    let x_ticks = (0..)
        .map(|i| i as f64 * x_step)
        .take_while(|t| *t <= x_max + 1e-9)
        // A saved summary may be edited by hand: bound the ticks whatever
        // its numbers say.
        .take(MAX_TICKS)
        .map(|t| Tick {
            at: coord(x(t)),
            label: time_label(t, x_max),
        })
        .collect();
    // Enough decimals to tell the ticks apart (2.5, 0.25…), no more.
    let decimals = (0..4)
        .find(|d| {
            let scaled = y_step * 10f64.powi(*d);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(3) as usize;
    let y_ticks = (0..)
        .map(|i| i as f64 * y_step)
        .take_while(|v| *v <= y_max + y_step * 1e-9)
        .take(MAX_TICKS)
        .map(|v| Tick {
            at: coord(y(v)),
            label: axis_label(v, decimals),
        })
        .collect();

    let with_dots = series.len() <= 60;
    let lines = specs
        .iter()
        .map(|spec| {
            let mut segments = Vec::new();
            let mut current: Vec<String> = Vec::new();
            let mut dots = Vec::new();
            for p in series {
                match (spec.value)(p) {
                    Some(v) => {
                        let (px, py) = (coord(x(p.end_s())), coord(y(v)));
                        current.push(format!("{px},{py}"));
                        if with_dots {
                            dots.push((px, py));
                        }
                    }
                    None if !current.is_empty() => segments.push(std::mem::take(&mut current)),
                    None => {}
                }
            }
            if !current.is_empty() {
                segments.push(current);
            }
            Line {
                label: spec.label,
                class: spec.class,
                dashed: spec.dashed,
                segments: segments.into_iter().map(|s| s.join(" ")).collect(),
                dots,
            }
        })
        .collect();

    let hovers = if series.len() <= HOVER_LIMIT {
        let width = (RIGHT - LEFT) / x_max;
        series
            .iter()
            .map(|p| {
                let values: Vec<String> = specs
                    .iter()
                    .map(|s| {
                        let v = (s.value)(p).map_or_else(|| "–".to_string(), short);
                        format!("{} {v}", s.label)
                    })
                    .collect();
                let at = x(p.end_s());
                Hover {
                    x: coord((at - width / 2.0).max(LEFT)),
                    width: coord(width.min(at - LEFT + width / 2.0)),
                    text: format!("{}: {}", interval_label(p), values.join(" · ")),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let partial = series
        .last()
        .filter(|p| p.is_partial())
        .map(|p| partial_note(p.span_s));

    Chart {
        title,
        unit,
        note,
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right: RIGHT,
        top: TOP,
        bottom: BOTTOM,
        x_ticks,
        y_ticks,
        lines,
        hovers,
        partial,
    }
}

/// The hover title of a point: the second it ends, or, when it is not
/// one second long, where it starts and how long it is (`6s + 0.4 s`).
fn interval_label(p: &SeriesPoint) -> String {
    if (p.span_s - 1.0).abs() < 1e-9 {
        time_label(p.t as f64, 0.0)
    } else {
        let from = time_label(p.t.saturating_sub(1) as f64, 0.0);
        format!("{from} + {} s", short(p.span_s))
    }
}

/// Said under each chart when the run ended within its last second.
fn partial_note(span_s: f64) -> String {
    format!(
        "The run ended {} s into its last second: the last point covers only that, and its rates are per second of it.",
        short(span_s)
    )
}

/// The y axis's top and tick step: about four ticks at a 1-2-5 step, with
/// the largest value below the top.
fn y_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let top = (max / step).ceil() * step;
    // A line at the very top would sit on the frame.
    let top = if top <= max { top + step } else { top };
    (top, step)
}

/// A time step in whole seconds, minutes or hours that gives at most ten
/// ticks.
fn time_step(span_s: f64) -> f64 {
    const STEPS: [f64; 16] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0,
    ];
    STEPS
        .into_iter()
        .find(|s| span_s / s <= 10.0)
        .unwrap_or(43200.0)
}

/// `45s` on short axes, `2:30` or `1:02:30` on long ones.
fn time_label(t: f64, span_s: f64) -> String {
    let t = t.round() as u64;
    if span_s < 120.0 && t < 120 {
        return format!("{t}s");
    }
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn axis_label(v: f64, decimals: usize) -> String {
    if v >= 10_000.0 {
        format!("{}k", short(v / 1000.0))
    } else {
        format!("{v:.decimals$}")
    }
}

/// One decimal: a tenth of an SVG unit is finer than a screen pixel.
fn coord(v: f64) -> String {
    crate::units::trim_float(v, 1)
}

// ---------------------------------------------------------------- numbers

/// A per-second rate: whole and grouped from 1000 up (`34,471`), else
/// [`short`].
fn rate(v: f64) -> String {
    if v >= 1000.0 {
        grouped(v.round() as u64)
    } else {
        short(v)
    }
}

fn percent(ratio: f64) -> String {
    format!("{}%", short(ratio * 100.0))
}

fn bytes(n: f64) -> String {
    if n >= 1024.0 * 1024.0 {
        format!("{} MiB", short(n / (1024.0 * 1024.0)))
    } else if n >= 1024.0 {
        format!("{} KiB", short(n / 1024.0))
    } else {
        format!("{n:.0} B")
    }
}

fn seconds(s: f64) -> String {
    if s < 120.0 {
        format!("{} s", short(s))
    } else {
        time_label(s, s)
    }
}

/// `12s` into the run.
fn clock(s: u64) -> String {
    format!("+{}", time_label(s as f64, s as f64))
}

/// An RFC 3339 instant as `2026-01-02 03:04:05 UTC` (as written, if it
/// does not parse).
fn when(rfc3339: &str) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// What bounded the run: its duration and/or iteration limit.
fn limits(s: &RunSummary) -> String {
    let mut parts = Vec::new();
    if let Some(d) = s.run.duration_s {
        parts.push(format!("duration {}", seconds(d)));
    }
    if let Some(n) = s.run.iterations_limit {
        parts.push(format!(
            "{} {}",
            grouped(n),
            plural(n, "iteration", "iterations")
        ));
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::summary::FailureEntry;
    use crate::report::test_summary;

    fn page(summary: &RunSummary) -> String {
        let mut out = Vec::new();
        write(summary, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let html = page(&test_summary());
        for attr in ["src=", "href="] {
            for scheme in ["http:", "https:", "//"] {
                for quote in ["\"", "'", ""] {
                    let bad = format!("{attr}{quote}{scheme}");
                    assert!(!html.contains(&bad), "found {bad}");
                }
            }
        }
        assert!(!html.contains("<script"));
        assert!(html.contains("checkout &lt;flow&gt;"));
        assert!(!html.contains("checkout <flow>"));
        assert!(!html.contains("class=\"banner"), "not interrupted");
    }

    #[test]
    fn an_interrupted_run_says_so() {
        let mut summary = test_summary();
        summary.run.interrupted = true;
        let html = page(&summary);
        assert!(html.contains("class=\"banner"), "{html}");
        assert!(html.contains("Interrupted."));
    }

    #[test]
    fn the_page_shows_thresholds_steps_and_codes() {
        let html = page(&test_summary());
        assert!(html.contains("1 of 2 thresholds failed"));
        assert!(html.contains("error_rate &lt; 0.01"));
        assert!(html.contains("create, new"));
        assert!(html.contains(">500<"), "the 500 status column");
        assert!(html.contains("status 500, expected 200"));
        assert!(html.contains("<svg"));
        // Closed model: a users chart, no arrival-rate chart.
        assert!(html.contains("active users"));
        assert!(!html.contains("Arrival rate"));
    }

    #[test]
    fn a_threshold_without_data_reads_as_not_evaluated() {
        let summary = crate::report::no_data_summary();
        let html = page(&summary);
        assert!(html.contains("2 of 2 thresholds failed"), "{html}");
        assert!(html.contains("✗ not evaluated"));
        assert!(html.contains("no data: step `create, new` sent no request"));
    }

    #[test]
    fn the_open_model_charts_arrivals_and_service_time() {
        let mut summary = test_summary();
        summary.run.model = "open".to_string();
        summary.target_rate = Some(50.0);
        summary.achieved_rate = Some(49.5);
        let html = page(&summary);
        assert!(html.contains("Arrival rate"));
        assert!(html.contains("Corrected latency vs service time"));
        assert!(html.contains(">49.5 "), "the achieved arrival rate");
    }

    #[test]
    fn a_partial_last_second_is_drawn_at_its_real_end_and_marked() {
        let summary = test_summary();
        let html = page(&summary);
        // Every chart says so, once.
        let note = "The run ended 0.5 s into its last second";
        assert_eq!(html.matches(note).count(), 3, "{html}");
        // The axis runs to the real end (1.5 s), where the last point sits.
        let throughput = chart(
            "t",
            "u",
            "n",
            &summary.series,
            &[spec("requests/s", "c0", false, |p| Some(p.rps))],
        );
        assert_eq!(
            throughput.lines[0].dots.last().map(|d| d.0.as_str()),
            Some(coord(RIGHT).as_str())
        );
        assert!(
            html.contains("1s + 0.5 s: requests&#x2f;s 80"),
            "the hover box"
        );
        // A whole last second: no note.
        let mut whole = summary.clone();
        whole.series.truncate(1);
        assert!(!page(&whole).contains(note));
    }

    #[test]
    fn one_of_a_thing_is_singular() {
        let mut summary = test_summary();
        summary.run.users = 1;
        summary.run.threads = 1;
        summary.run.iterations_limit = Some(1);
        summary.iterations = 1;
        summary.thresholds.truncate(1);
        summary.failures = (0..FAILURE_ROWS + 1)
            .map(|i| FailureEntry {
                message: format!("failure {i}"),
                ..summary.failures[0].clone()
            })
            .collect();
        let html = page(&summary);
        for good in [
            "constant · 1 user<",
            "1 generator thread<",
            ">1 iteration<",
            "duration 10 s, 1 iteration<",
            "the threshold passed",
            "and 1 more distinct failure ",
        ] {
            assert!(html.contains(good), "{good}");
        }
        summary.thresholds[0].passed = false;
        assert!(page(&summary).contains("1 of 1 threshold failed"));
        for bad in [
            "1 users",
            "1 threads",
            "1 iterations",
            "1 thresholds",
            "1 more distinct failures",
        ] {
            assert!(!html.contains(bad), "{bad}");
        }
    }

    #[test]
    fn a_distributed_runs_workers_and_warnings_are_shown() {
        let mut summary = test_summary();
        summary.warnings = vec!["worker w2 was lost at 4.0s".to_string()];
        summary.distribution = Some(crate::metrics::summary::DistributionReport {
            strategy: "even".to_string(),
            on_worker_lost: "fail".to_string(),
            failed: Some("worker w2 was lost".to_string()),
            workers: vec![crate::metrics::summary::WorkerReport {
                name: "w2".to_string(),
                state: "lost".to_string(),
                share: 0.5,
                requests: 1234,
                lost_at_s: Some(4.0),
                ..Default::default()
            }],
        });
        let page = render(&summary).unwrap();
        assert!(page.contains("<h2>Workers</h2>"), "{page}");
        assert!(
            page.contains("lost at 4.0 s")
                || page.contains("lost at 4s")
                || page.contains("lost at 4")
        );
        assert!(page.contains("<strong>Warning.</strong> worker w2 was lost at 4.0s"));
        assert!(page.contains("<strong>Failed.</strong> worker w2 was lost"));
        assert!(page.contains("the run failed"));
        let plain = render(&test_summary()).unwrap();
        assert!(!plain.contains("<h2>Workers</h2>") && !plain.contains("Warning."));
    }

    #[test]
    fn rendering_is_repeatable() {
        let summary = test_summary();
        assert_eq!(page(&summary), page(&summary));
    }

    #[test]
    fn axes_have_round_ticks() {
        assert_eq!(y_axis(3433.1), (4000.0, 1000.0));
        assert_eq!(y_axis(9.0), (10.0, 2.5));
        assert_eq!(y_axis(10.0), (12.5, 2.5));
        assert_eq!(y_axis(0.0), (1.0, 0.25));
        assert_eq!(time_step(10.0), 1.0);
        assert_eq!(time_step(300.0), 30.0);
        assert_eq!(time_label(90.0, 100.0), "90s");
        assert_eq!(time_label(150.0, 600.0), "2:30");
        assert_eq!(time_label(3750.0, 7200.0), "1:02:30");
        assert_eq!(grouped(56284), "56,284");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(rate(34470.8), "34,471");
        assert_eq!(rate(617.4), "617");
    }
}
