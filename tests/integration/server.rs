//! An in-process HTTP test server on 127.0.0.1 and a port the OS picks.
//!
//! It counts every request it answers and remembers paths, selected
//! headers and HTTP versions, so tests can compare loadctl's counts with
//! what really arrived. Routes:
//! `/ok`, `/json` (`{"id": 42, …}` and an `x-token` header),
//! `/echo/...` (200, echoes the path), `/status/{code}`, `/slow/{ms}`,
//! `/stall/{n}/{ms}` (fast, except that the n-th stall request freezes
//! every stall request for `ms`, as a stop-the-world pause would).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

#[derive(Default)]
pub struct Seen {
    pub count: AtomicU64,
    pub paths: Mutex<Vec<String>>,
    pub test_headers: Mutex<Vec<String>>,
    pub versions: Mutex<HashMap<String, u64>>,
    /// `/stall/...` requests seen, and until when the server stalls.
    pub stall_count: AtomicU64,
    pub stalled_until: Mutex<Option<tokio::time::Instant>>,
    /// When the first request arrived.
    pub first_at: Mutex<Option<std::time::Instant>>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    _runtime: tokio::runtime::Runtime,
}

/// PEM certificate of a TLS test server, for `ca_file`.
pub struct TlsFiles {
    pub cert_pem: String,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_inner(None)
    }

    /// A TLS server for `localhost` with a fresh self-signed certificate,
    /// offering h2 and http/1.1 by ALPN.
    pub fn start_tls() -> (TestServer, TlsFiles) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_pem = ck.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        (Self::start_inner(Some(acceptor)), TlsFiles { cert_pem })
    }

    fn start_inner(tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
        let (runtime, listener) = loopback();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let seen2 = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = seen2.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(handle(req, &seen).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        TestServer {
            addr,
            seen,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> u64 {
        self.seen.count.load(Ordering::SeqCst)
    }

    pub fn paths(&self) -> Vec<String> {
        self.seen.paths.lock().unwrap().clone()
    }
}

async fn handle(req: Request<Incoming>, seen: &Seen) -> Response<Full<Bytes>> {
    if seen.count.fetch_add(1, Ordering::SeqCst) == 0 {
        *seen.first_at.lock().unwrap() = Some(std::time::Instant::now());
    }
    let path = req.uri().path().to_string();
    seen.paths.lock().unwrap().push(req.uri().to_string());
    *seen
        .versions
        .lock()
        .unwrap()
        .entry(format!("{:?}", req.version()))
        .or_default() += 1;
    if let Some(v) = req.headers().get("x-test") {
        seen.test_headers
            .lock()
            .unwrap()
            .push(v.to_str().unwrap_or("").to_string());
    }
    let _ = req.into_body().collect().await;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let response = match segments.as_slice() {
        ["ok"] => text(StatusCode::OK, "ok"),
        ["json"] => {
            let mut r = text(
                StatusCode::OK,
                r#"{"id": 42, "name": "answer", "items": [{"id": 7}]}"#,
            );
            r.headers_mut().insert("x-token", "t-123".parse().unwrap());
            r
        }
        ["echo", ..] => text(StatusCode::OK, &path),
        ["status", code] => text(
            StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap(),
            "status",
        ),
        ["stall", n, ms] => {
            let seen_before = seen.stall_count.fetch_add(1, Ordering::SeqCst);
            let until = {
                let mut until = seen.stalled_until.lock().unwrap();
                if seen_before == n.parse::<u64>().unwrap_or(0) {
                    *until = Some(
                        tokio::time::Instant::now()
                            + Duration::from_millis(ms.parse().unwrap_or(0)),
                    );
                }
                *until
            };
            if let Some(until) = until {
                tokio::time::sleep_until(until).await;
            }
            text(StatusCode::OK, "stall")
        }
        ["slow", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            text(StatusCode::OK, "slow")
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}

/// A one-thread runtime for a test server, and a listener on 127.0.0.1
/// with a port the OS picks. The server lives as long as the runtime.
pub fn loopback() -> (tokio::runtime::Runtime, TcpListener) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    (runtime, listener)
}
