//! The built-in demo target: a small JSON API served in-process.
//!
//! `base_url = "demo"` starts it on 127.0.0.1 with a port the OS picks, for
//! the length of one run, so a first load test needs no outside server.
//! It speaks HTTP/1.1 and HTTP/2 (h2c prior knowledge). Endpoints:
//!
//! | request | answer |
//! |---|---|
//! | `GET /` , `GET /health` | a small JSON document |
//! | `GET /api/items?page=N` | ten items of page N (1-based), with an `ETag` |
//! | `GET /api/items/{id}` | one item; 404 for ids outside 1–1000 |
//! | `POST /api/items` | 201 and the posted JSON with a new `id`; 400 if not JSON |
//! | `GET /api/delay/{ms}` | answers after `ms` milliseconds (at most 10 s) |
//! | `GET /api/flaky?fail=F` | 500 with probability F (default 0.1), else 200 |
//! | `GET /api/status/{code}` | an empty answer with that status |

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::plan::Endpoint;

const MAX_DELAY: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 1 << 20;

/// A running demo server; it stops when [`DemoServer::stop`] is called.
pub struct DemoServer {
    addr: SocketAddr,
    stop: CancellationToken,
    served: Arc<AtomicU64>,
}

impl DemoServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            https: false,
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            base_path: String::new(),
        }
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    pub fn stop(self) {
        self.stop.cancel();
    }
}

/// Starts the demo server on 127.0.0.1 and a free port.
pub async fn start() -> std::io::Result<DemoServer> {
    serve(TcpListener::bind("127.0.0.1:0").await?)
}

/// Serves the demo API on an already bound listener.
pub fn serve(listener: TcpListener) -> std::io::Result<DemoServer> {
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    let count_and_handle = move |req| {
        counter.fetch_add(1, Ordering::Relaxed);
        handle(req)
    };
    tokio::spawn(crate::serve::http(listener, count_and_handle, stop.clone()));
    Ok(DemoServer { addr, stop, served })
}

async fn handle(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, [""]) | (Method::GET, ["health"]) => json_response(
            StatusCode::OK,
            json!({"service": "loadctl demo", "status": "ok"}),
        ),
        (Method::GET, ["api", "items"]) => {
            let page = query_param(&query, "page")
                .and_then(|p| p.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 100);
            let items: Vec<_> = (1..=10).map(|i| item((page - 1) * 10 + i)).collect();
            let mut response = json_response(StatusCode::OK, json!({"page": page, "items": items}));
            // Pages never change, so a page's tag is its number.
            let etag = http::HeaderValue::from_str(&format!("\"page-{page}\""))
                .expect("a quoted number is a valid header value");
            response.headers_mut().insert(http::header::ETAG, etag);
            response
        }
        (Method::GET, ["api", "items", id]) => match id.parse::<u64>() {
            Ok(id) if (1..=1000).contains(&id) => json_response(StatusCode::OK, item(id)),
            _ => json_response(StatusCode::NOT_FOUND, json!({"error": "no such item"})),
        },
        (Method::POST, ["api", "items"]) => {
            let body = match read_body(req).await {
                Some(b) => b,
                None => {
                    return json_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        json!({"error": "body too large"}),
                    )
                }
            };
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(serde_json::Value::Object(mut fields)) => {
                    fields.insert("id".into(), json!(rand::random_range(1001..1_000_000u64)));
                    json_response(StatusCode::CREATED, serde_json::Value::Object(fields))
                }
                _ => json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "expected a JSON object"}),
                ),
            }
        }
        (Method::GET, ["api", "delay", ms]) => match ms.parse::<u64>() {
            Ok(ms) => {
                let wait = Duration::from_millis(ms).min(MAX_DELAY);
                tokio::time::sleep(wait).await;
                json_response(
                    StatusCode::OK,
                    json!({"delayed_ms": wait.as_millis() as u64}),
                )
            }
            Err(_) => json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "delay must be milliseconds"}),
            ),
        },
        (Method::GET, ["api", "flaky"]) => {
            let fail = query_param(&query, "fail")
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.1)
                .clamp(0.0, 1.0);
            if rand::random::<f64>() < fail {
                json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "planned failure"}),
                )
            } else {
                json_response(StatusCode::OK, json!({"ok": true}))
            }
        }
        (_, ["api", "status", code]) => match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) => empty(status),
            None => json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "not a status code"}),
            ),
        },
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "not found", "path": path}),
        ),
    }
}

fn item(id: u64) -> serde_json::Value {
    json!({"id": id, "name": format!("item {id}"), "price_cents": 100 + (id * 37) % 900})
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn read_body(req: Request<Incoming>) -> Option<Bytes> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    limited.collect().await.ok().map(|c| c.to_bytes())
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a static status and header build a response")
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}
