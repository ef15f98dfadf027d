//! The coordinator's HTTP API: routing, the token check, body limits and
//! JSON in and out, over [`Coordinator`]'s calls. Everything a client
//! sends is refused with a status and a JSON reason when it is not what
//! the API expects; nothing it sends can crash the coordinator.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Coordinator, Refusal};
use crate::dist::protocol::{
    token_matches, ErrorBody, Heartbeat, Register, RunCreated, RunRequest, WorkerInfo, BEARER,
    MAX_CONTROL_BYTES, MAX_SUBMIT_BYTES,
};

type Answer = Response<Full<Bytes>>;

/// Answers one request.
pub async fn handle(coordinator: Coordinator, request: Request<Incoming>) -> Answer {
    match route(&coordinator, request).await {
        Ok(answer) => answer,
        Err((status, message)) => error(status, &message),
    }
}

type Failed = (StatusCode, String);

async fn route(c: &Coordinator, request: Request<Incoming>) -> Result<Answer, Failed> {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method().clone();
    // Probes need no token: they learn nothing but that it is up.
    if method == Method::GET && segments == ["api", "health"] {
        return Ok(json(StatusCode::OK, &health(c)));
    }
    authorize(c, &request)?;
    match (&method, segments.as_slice()) {
        (&Method::GET, ["metrics"]) => Ok(metrics(c)),
        (&Method::POST, ["api", "workers"]) => {
            let register: Register = read_json(request, MAX_CONTROL_BYTES).await?;
            Ok(json(
                StatusCode::OK,
                &c.register(register).map_err(refused)?,
            ))
        }
        (&Method::GET, ["api", "workers"]) => Ok(json(StatusCode::OK, &c.workers())),
        (&Method::DELETE, ["api", "workers", id]) => {
            c.leave(id).map_err(refused)?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "left": true })))
        }
        (&Method::POST, ["api", "workers", id, "heartbeat"]) => {
            let id = id.to_string();
            let beat: Heartbeat = read_json(request, MAX_CONTROL_BYTES).await?;
            Ok(json(
                StatusCode::OK,
                &c.heartbeat(&id, beat).map_err(refused)?,
            ))
        }
        (&Method::POST, ["api", "workers", id, "snapshots", run, seq, second]) => {
            let (id, run) = (id.to_string(), run.to_string());
            let (seq, second) = (number(seq)?, number(second)?);
            // As large as a snapshot of the run's plan can be, no larger.
            let limit = c.snapshot_limit(&run).ok_or_else(|| not_found(&run))?;
            let body = read_body(request, limit).await?;
            c.snapshot(&id, &run, seq, second, &body).map_err(refused)?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "accepted": true }),
            ))
        }
        (&Method::POST, ["api", "runs"]) => {
            let run: RunRequest = read_json(request, MAX_SUBMIT_BYTES).await?;
            let id = c.submit(run).map_err(refused)?;
            let created = RunCreated {
                run_id: id.to_string(),
            };
            Ok(json(StatusCode::CREATED, &created))
        }
        (&Method::GET, ["api", "runs"]) => Ok(json(StatusCode::OK, &c.runs())),
        (&Method::GET, ["api", "runs", id]) => match c.status(id) {
            Some(status) => Ok(json(StatusCode::OK, &status)),
            None => Err(not_found(id)),
        },
        (&Method::GET, ["api", "runs", id, "summary"]) => match c.summary(id) {
            Some(summary) => Ok(json(StatusCode::OK, &*summary)),
            None => Err(not_found(id)),
        },
        (&Method::DELETE, ["api", "runs", id]) => {
            c.cancel(id).map_err(refused)?;
            Ok(json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "cancelling": true }),
            ))
        }
        _ => Err((
            StatusCode::NOT_FOUND,
            format!("no endpoint {method} {}", excerpt(&path)),
        )),
    }
}

fn health(c: &Coordinator) -> serde_json::Value {
    let workers = c.workers();
    let alive = workers.iter().filter(|w| w.state != "lost").count();
    serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "workers": alive,
    })
}

/// The merged run's live series (as `run --metrics-addr` serves them) and
/// a few gauges per worker.
fn metrics(c: &Coordinator) -> Answer {
    let mut text = c
        .live(None)
        .and_then(|p| crate::report::prometheus::render(&p))
        .unwrap_or_default();
    let workers = c.workers();
    type Gauge = fn(&WorkerInfo) -> Option<f64>;
    let gauges: [(&str, &str, Gauge); 3] = [
        (
            "loadctl_worker_up",
            "Whether the worker is heartbeating (1) or lost (0).",
            |w| Some(f64::from(u8::from(w.state != "lost"))),
        ),
        (
            "loadctl_worker_cpu_ratio",
            "The worker's CPU use, share of its cores.",
            |w| w.cpu,
        ),
        (
            "loadctl_worker_heartbeat_age_seconds",
            "Seconds since the worker's last heartbeat.",
            |w| Some(w.last_heartbeat_s),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for w in &workers {
            if let Some(v) = value(w) {
                let _ = writeln!(text, "{name}{{worker=\"{}\"}} {v}", label(&w.name));
            }
        }
    }
    Response::builder()
        .header(CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(text)))
        .expect("a fixed header is valid")
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn authorize(c: &Coordinator, request: &Request<Incoming>) -> Result<(), Failed> {
    let Some(expected) = &c.config().token else {
        return Ok(());
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(BEARER.as_bytes()));
    match presented {
        Some(token) if token_matches(token, expected.as_bytes()) => Ok(()),
        _ => {
            super::log(format_args!(
                "refused {} {}: {}",
                request.method(),
                excerpt(request.uri().path()),
                if presented.is_some() {
                    "wrong token"
                } else {
                    "no token"
                }
            ));
            Err((
                StatusCode::UNAUTHORIZED,
                "a valid token is needed: Authorization: Bearer TOKEN".to_string(),
            ))
        }
    }
}

async fn read_json<T: DeserializeOwned>(
    request: Request<Incoming>,
    limit: usize,
) -> Result<T, Failed> {
    let body = read_body(request, limit).await?;
    serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_REQUEST, format!("the body: {e}")))
}

/// The whole body, refused past `limit` bytes before reading it when its
/// length is declared, and as soon as it grows past it otherwise.
async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, Failed> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the limit of {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err((StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
    }
}

fn number(text: &str) -> Result<u64, Failed> {
    text.parse().map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("`{}` is not a number", excerpt(text)),
        )
    })
}

fn refused(refusal: Refusal) -> Failed {
    let status = match refusal {
        Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
        Refusal::NotFound(_) => StatusCode::NOT_FOUND,
        Refusal::Conflict(_) => StatusCode::CONFLICT,
    };
    (status, refusal.to_string())
}

fn not_found(id: &str) -> Failed {
    (StatusCode::NOT_FOUND, format!("no run {}", excerpt(id)))
}

fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("a fixed header is valid")
}

fn error(status: StatusCode, message: &str) -> Answer {
    json(
        status,
        &ErrorBody {
            error: message.to_string(),
        },
    )
}

fn excerpt(text: &str) -> String {
    text.chars().take(80).collect()
}
