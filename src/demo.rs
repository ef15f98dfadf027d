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
//! | `/mcp` | an MCP server (Streamable HTTP, sessions, answers as event streams) |
//! | `/mcp-json` | the same tools without sessions, answers as JSON bodies |
//!
//! The MCP endpoints are rmcp's Streamable HTTP server transport, served
//! by the same accept loop. Their tools: `add` (`a` + `b`), `sleep` (answers
//! after `ms` milliseconds, at most 10 s) and `fail` (a tool error, with
//! `isError: true`); their resource: `demo://greeting`. `/mcp` keeps a
//! session per client (`Mcp-Session-Id`) and ends it on `DELETE`; both
//! accept only loopback `Host` and `Origin` values, so a request with
//! another `Origin` is refused (403). [`DemoServer`] counts the
//! `initialize` calls and accepted `DELETE`s, for tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    Implementation, InitializeRequestParams, InitializeResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

use crate::plan::Endpoint;

const MAX_DELAY: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 1 << 20;

/// A running demo server; it stops when [`DemoServer::stop`] is called.
pub struct DemoServer {
    addr: SocketAddr,
    stop: CancellationToken,
    served: Arc<AtomicU64>,
    mcp: Arc<McpCounts>,
}

/// What the demo's MCP endpoints have seen.
#[derive(Debug, Default)]
struct McpCounts {
    initialize: AtomicU64,
    deleted: AtomicU64,
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

    /// `initialize` calls the MCP endpoints answered (sessions opened).
    pub fn mcp_initialized(&self) -> u64 {
        self.mcp.initialize.load(Ordering::Relaxed)
    }

    /// `DELETE`s of `/mcp` that ended a session.
    pub fn mcp_deleted(&self) -> u64 {
        self.mcp.deleted.load(Ordering::Relaxed)
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
    tracing::debug!(%addr, "demo target listening");
    let stop = CancellationToken::new();
    let served = Arc::new(AtomicU64::new(0));
    let mcp = Arc::new(McpCounts::default());
    let endpoints = McpEndpoints::new(&mcp, &stop);
    let counter = served.clone();
    let count_and_handle = move |req: Request<Incoming>| {
        counter.fetch_add(1, Ordering::Relaxed);
        let endpoints = endpoints.clone();
        async move {
            match endpoints.route(req) {
                Ok(mcp) => mcp.await.map(Either::Right),
                Err(req) => handle(req).await.map(Either::Left),
            }
        }
    };
    tokio::spawn(crate::serve::http(listener, count_and_handle, stop.clone()));
    Ok(DemoServer {
        addr,
        stop,
        served,
        mcp,
    })
}

/// The demo's MCP endpoints: rmcp's Streamable HTTP service, once with
/// sessions and event streams (`/mcp`), once without sessions answering
/// JSON bodies (`/mcp-json`).
#[derive(Clone)]
struct McpEndpoints {
    sessions: StreamableHttpService<DemoMcp, LocalSessionManager>,
    stateless: StreamableHttpService<DemoMcp, LocalSessionManager>,
    counts: Arc<McpCounts>,
}

type McpAnswer = Response<BoxBody<Bytes, Infallible>>;

impl McpEndpoints {
    fn new(counts: &Arc<McpCounts>, stop: &CancellationToken) -> Self {
        let config = || {
            StreamableHttpServerConfig::default()
                .with_allowed_origins(["http://127.0.0.1:*", "http://localhost:*"])
                .with_cancellation_token(stop.child_token())
                .with_sse_keep_alive(None)
        };
        let service = |config: StreamableHttpServerConfig| {
            let counts = counts.clone();
            StreamableHttpService::new(
                move || Ok(DemoMcp::new(counts.clone())),
                Arc::new(LocalSessionManager::default()),
                config,
            )
        };
        McpEndpoints {
            sessions: service(config()),
            stateless: service(
                config()
                    .with_legacy_session_mode(false)
                    .with_json_response(true),
            ),
            counts: counts.clone(),
        }
    }

    /// The answer of an MCP endpoint, or the request back when it is for
    /// another path.
    #[allow(clippy::result_large_err)]
    fn route(
        &self,
        req: Request<Incoming>,
    ) -> Result<impl std::future::Future<Output = McpAnswer>, Request<Incoming>> {
        let mut service = match req.uri().path() {
            "/mcp" => self.sessions.clone(),
            "/mcp-json" => self.stateless.clone(),
            _ => return Err(req),
        };
        let deleting = req.method() == Method::DELETE;
        let counts = self.counts.clone();
        Ok(async move {
            let Ok(answer) = service.call(req).await;
            if deleting && answer.status().is_success() {
                counts.deleted.fetch_add(1, Ordering::Relaxed);
            }
            answer
        })
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: f64,
    b: f64,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct SleepArgs {
    /// Milliseconds to wait before answering (at most 10 s)
    ms: u64,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct FailArgs {
    /// The error text to answer with
    #[serde(default)]
    message: Option<String>,
}

/// The demo's MCP server: three tools and one resource.
#[derive(Clone)]
struct DemoMcp {
    tool_router: ToolRouter<DemoMcp>,
    counts: Arc<McpCounts>,
}

const GREETING_URI: &str = "demo://greeting";

#[tool_router]
impl DemoMcp {
    fn new(counts: Arc<McpCounts>) -> Self {
        DemoMcp {
            tool_router: Self::tool_router(),
            counts,
        }
    }

    #[tool(description = "Adds two numbers")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        crate::units::trim_float(a + b, 6)
    }

    #[tool(description = "Answers after `ms` milliseconds (at most 10 s)")]
    async fn sleep(&self, Parameters(SleepArgs { ms }): Parameters<SleepArgs>) -> String {
        let wait = Duration::from_millis(ms).min(MAX_DELAY);
        tokio::time::sleep(wait).await;
        format!("slept {} ms", wait.as_millis())
    }

    #[tool(description = "Fails on request: answers with a tool error (isError: true)")]
    fn fail(
        &self,
        Parameters(FailArgs { message }): Parameters<FailArgs>,
    ) -> Result<String, String> {
        Err(message.unwrap_or_else(|| "planned failure".to_string()))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(
            "loadctl demo",
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.counts.initialize.fetch_add(1, Ordering::Relaxed);
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            GREETING_URI,
            "greeting",
        )]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != GREETING_URI {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                None,
            ));
        }
        let text = ResourceContents::text("hello from the loadctl demo", GREETING_URI);
        Ok(ReadResourceResult::new(vec![text]).into())
    }
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
