//! Live metrics in Prometheus's text format, served during a run by
//! `run --metrics-addr ADDR` at `/metrics`.
//!
//! The text is rendered once a second from the runner's cumulative per-step
//! statistics and served as-is to every scrape, so a scrape costs the run
//! nothing. Latency is a summary (quantiles computed from the run's
//! HdrHistograms), not a histogram: the quantiles are exact to 3
//! significant digits, which fixed buckets could not be. Nothing here
//! holds a header value, so no secret can leak through it.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::live::Progress;
use crate::metrics::summary::{Latency, StepStats};
use crate::units::trim_float;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The percentiles each latency summary shows, as `quantile="0.95"` labels.
const QUANTILES: [f64; 4] = [50.0, 90.0, 95.0, 99.0];

/// Renders one scrape's worth of text; `None` until the first second of
/// the run has been collected.
pub fn render(p: &Progress) -> Option<String> {
    let live = p.live.as_ref()?;
    let mut out = String::new();
    family(
        &mut out,
        "loadctl_requests_total",
        "counter",
        "Requests sent, by step and response status (\"none\" when no response arrived).",
    );
    for s in &live.steps {
        let answered: u64 = s.status_codes.values().sum();
        for (code, n) in &s.status_codes {
            sample(
                &mut out,
                "loadctl_requests_total",
                &[("step", &s.name), ("status", code)],
                *n as f64,
            );
        }
        if s.requests > answered {
            sample(
                &mut out,
                "loadctl_requests_total",
                &[("step", &s.name), ("status", "none")],
                (s.requests - answered) as f64,
            );
        }
    }
    family(
        &mut out,
        "loadctl_failures_total",
        "counter",
        "Failed requests, by step and failure kind.",
    );
    for s in &live.steps {
        for (kind, n) in &s.errors {
            sample(
                &mut out,
                "loadctl_failures_total",
                &[("step", &s.name), ("kind", kind)],
                *n as f64,
            );
        }
    }
    let latency_help = if p.open {
        "Request latency from each iteration's intended start (corrected for coordinated omission), by step."
    } else {
        "Request latency, by step."
    };
    family(
        &mut out,
        "loadctl_request_duration_seconds",
        "summary",
        latency_help,
    );
    for s in &live.steps {
        summary_samples(&mut out, "loadctl_request_duration_seconds", s, |s| {
            &s.latency_ms.0
        });
    }
    if p.open {
        family(
            &mut out,
            "loadctl_service_time_seconds",
            "summary",
            "Request latency from the actual send, by step.",
        );
        for s in &live.steps {
            summary_samples(&mut out, "loadctl_service_time_seconds", s, |s| {
                &s.service_time_ms.0
            });
        }
    }
    let gauges: [(&str, &str, f64); 4] = [
        ("loadctl_active_users", "Users running now (busy ones, in the open model).", p.users as f64),
        (
            "loadctl_target",
            "What the load pattern asks for now: users (closed model) or iterations per second (open model).",
            p.target,
        ),
        ("loadctl_iterations_total", "Flow iterations completed.", live.iterations as f64),
        ("loadctl_dropped_iterations_total", "Open model: arrivals that were due but never run.", live.dropped as f64),
    ];
    for (name, help, value) in gauges {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family(&mut out, name, kind, help);
        sample(&mut out, name, &[], value);
    }
    Some(out)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn summary_samples(
    out: &mut String,
    name: &str,
    s: &StepStats,
    latency: impl Fn(&StepStats) -> &std::collections::BTreeMap<String, f64>,
) {
    let map = latency(s);
    if s.requests == 0 {
        return;
    }
    for p in QUANTILES {
        if let Some(ms) = map.get(&Latency::key(p)) {
            sample(
                out,
                name,
                &[("step", &s.name), ("quantile", &quantile_label(p))],
                ms / 1000.0,
            );
        }
    }
    let mean_ms = map.get("mean").copied().unwrap_or(0.0);
    sample(
        out,
        &format!("{name}_sum"),
        &[("step", &s.name)],
        mean_ms / 1000.0 * s.requests as f64,
    );
    sample(
        out,
        &format!("{name}_count"),
        &[("step", &s.name)],
        s.requests as f64,
    );
}

/// Prometheus names a percentile by its quantile: 95 is `0.95`, 99.9 is
/// `0.999` (rounded, so no `0.9990000000000001`).
fn quantile_label(percentile: f64) -> String {
    trim_float(percentile / 100.0, 6)
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The latest rendered text, shared between the run and the server.
pub type Latest = Arc<Mutex<Option<String>>>;

/// Serves `GET /metrics` from `latest` until `shutdown` fires.
pub async fn serve(listener: TcpListener, latest: Latest, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("live metrics at http://{addr}/metrics");
    }
    let handle = move |req: Request<Incoming>| {
        let answer = answer(&req, &latest);
        async move { answer }
    };
    crate::serve::http(listener, handle, shutdown).await;
}

fn answer(req: &Request<Incoming>, latest: &Latest) -> Response<Full<Bytes>> {
    let (status, body) = if req.uri().path() != "/metrics" {
        (StatusCode::NOT_FOUND, "try /metrics\n".to_string())
    } else {
        let text = latest.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Before the first second is collected there is nothing to say yet.
        (StatusCode::OK, text.unwrap_or_default())
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Full::new(Bytes::from(body)))
        .expect("a fixed status and header build a response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::live::LiveStats;
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn renders_counters_summaries_and_gauges() {
        let mut step = StepStats {
            name: "get \"item\"".into(),
            requests: 10,
            failures: 3,
            ..Default::default()
        };
        step.status_codes = BTreeMap::from([("200".into(), 7), ("500".into(), 2)]);
        step.errors = BTreeMap::from([("status".into(), 2), ("refused".into(), 1)]);
        step.latency_ms.0 = BTreeMap::from([
            ("p50".into(), 2.0),
            ("p99".into(), 8.0),
            ("mean".into(), 3.0),
        ]);
        let p = Progress {
            elapsed: Duration::from_secs(3),
            span: Duration::from_secs(1),
            duration: None,
            open: false,
            target: 5.0,
            users: 5,
            requests: 10,
            failures: 3,
            dropped: 0,
            started: 4,
            rps: 3.0,
            p95_ms: 7.0,
            live: Some(LiveStats {
                totals: step.clone(),
                steps: vec![step],
                iterations: 6,
                dropped: 0,
            }),
            cpu: None,
        };
        let text = render(&p).unwrap();
        assert!(
            text.contains("loadctl_requests_total{step=\"get \\\"item\\\"\",status=\"200\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("loadctl_requests_total{step=\"get \\\"item\\\"\",status=\"none\"} 1\n")
        );
        assert!(
            text.contains("loadctl_failures_total{step=\"get \\\"item\\\"\",kind=\"refused\"} 1\n")
        );
        assert!(text.contains(
            "loadctl_request_duration_seconds{step=\"get \\\"item\\\"\",quantile=\"0.99\"} 0.008\n"
        ));
        assert!(
            text.contains("loadctl_request_duration_seconds_count{step=\"get \\\"item\\\"\"} 10\n")
        );
        assert!(text.contains("# TYPE loadctl_active_users gauge\nloadctl_active_users 5\n"));
        assert!(text.contains("loadctl_iterations_total 6\n"));
        assert!(
            !text.contains("loadctl_service_time_seconds"),
            "closed model: one latency"
        );
    }

    #[test]
    fn quantile_labels_are_short_decimals() {
        assert_eq!(quantile_label(50.0), "0.5");
        assert_eq!(quantile_label(95.0), "0.95");
        assert_eq!(quantile_label(99.9), "0.999");
        assert_eq!(quantile_label(99.99), "0.9999");
    }
}
