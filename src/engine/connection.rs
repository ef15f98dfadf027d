//! The connections every step kind shares: hyper at the connection level.
//!
//! A [`Connector`], shared by all sessions of a run, holds what is decided
//! once: resolved addresses, the TLS configuration and the HTTP version. A
//! [`Session`] (one per virtual user, holding at most one connection) sends
//! a [`Prepared`] request and reads the whole [`Response`], within the
//! timeouts, and sorts whatever goes wrong into a failure kind.
//! hyper's pooled client is deliberately not used on this path: a user owns
//! its connection, so there is no pool lookup per request, and a broken
//! connection is simply dropped and replaced on the next request. An
//! HTTP/1.1 connection's future is polled inside the user's own task (see
//! `Connection`), so a user is one task, not two.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::{tls, Failure, KindState, Response};
use crate::metrics::ErrorKind;
use crate::plan::{Endpoint, HttpVersion, TargetPlan};
use crate::units::fmt_duration;

/// The largest body kept for `expect` checks or extraction.
const MAX_KEPT_BODY: usize = 10 << 20;

/// A request ready to send, kept apart so it can be sent many times: a
/// step whose request has no template is prepared once per user and
/// cloned for every send (the header map is copied, the URI and body share
/// their bytes, nothing is rendered).
#[derive(Debug, Clone)]
pub struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    /// Request line, headers and body, as sent over HTTP/1.1.
    pub bytes_out: u64,
}

impl Prepared {
    /// Puts a request together and estimates its size on the wire.
    pub fn new(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Prepared {
        let request_line =
            method.as_str().len() + " ".len() + target_len(&uri) + " HTTP/1.1\r\n".len();
        let bytes_out = head_size(request_line, &headers) + body.len() as u64;
        Prepared {
            method,
            uri,
            headers,
            body,
            bytes_out,
        }
    }

    /// A request to send; cheap to make again and again.
    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }

    /// The request itself, for a request sent only once.
    pub fn into_request(self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        request
    }
}

/// The length of the request target as HTTP/1.1 writes it: the path and
/// query, after the scheme and authority when the URI is absolute.
fn target_len(uri: &Uri) -> usize {
    let origin = uri.path_and_query().map_or(0, |p| p.as_str().len());
    match (uri.scheme(), uri.authority()) {
        (Some(scheme), Some(authority)) => {
            scheme.as_str().len() + "://".len() + authority.as_str().len() + origin
        }
        _ => origin,
    }
}

/// Size of an HTTP/1.1 message head, request or response alike: its first
/// line (with its CRLF), each header as `name: value` and CRLF, and the
/// blank line that ends the head.
fn head_size(first_line: usize, headers: &HeaderMap) -> u64 {
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + ": ".len() + value.len() + "\r\n".len())
        .sum();
    (first_line + fields + "\r\n".len()) as u64
}

/// Connection settings shared by every session of a run.
pub struct Connector {
    endpoint: Endpoint,
    /// The `Host` header, made once.
    host: HeaderValue,
    addrs: Vec<SocketAddr>,
    /// Index into `addrs` of the address that last accepted a connection.
    preferred: AtomicUsize,
    tls: Option<tls::Tls>,
    http: HttpVersion,
    connect_timeout: Duration,
    timeout: Duration,
}

impl Connector {
    /// Resolves the host once and prepares TLS.
    pub async fn new(endpoint: Endpoint, target: &TargetPlan) -> anyhow::Result<Connector> {
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot resolve `{}`: {e}; check the host of the base URL",
                        endpoint.host
                    )
                })?
                .collect();
        if addrs.is_empty() {
            anyhow::bail!("`{}` resolves to no address", endpoint.host);
        }
        tracing::debug!(host = %endpoint.host, port = endpoint.port, addresses = ?addrs, "target resolved");
        let tls = if endpoint.https {
            Some(tls::Tls::new(&endpoint.host, target)?)
        } else {
            None
        };
        let host = HeaderValue::from_str(&host_header(&endpoint))
            .map_err(|_| anyhow::anyhow!("`{}` is not a valid host", endpoint.host))?;
        Ok(Connector {
            host,
            endpoint,
            addrs,
            preferred: AtomicUsize::new(0),
            tls,
            http: target.http,
            connect_timeout: target.connect_timeout,
            timeout: target.timeout,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The addresses the host resolved to, the only ones connected to.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// A copy for one generator thread. Every request clones the `Host`
    /// value, and one value shared by all threads would have them contend
    /// for its reference count; each thread gets its own.
    pub fn for_thread(&self) -> Connector {
        Connector {
            endpoint: self.endpoint.clone(),
            host: HeaderValue::from_bytes(self.host.as_bytes())
                .expect("the bytes of a valid header value are valid"),
            addrs: self.addrs.clone(),
            preferred: AtomicUsize::new(self.preferred.load(Ordering::Relaxed)),
            tls: self.tls.clone(),
            http: self.http,
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
        }
    }

    /// The `Host` header value.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Connects to the address that worked last, or else tries each
    /// resolved address in turn (`localhost` may resolve to ::1 first while
    /// the server listens on 127.0.0.1 only).
    async fn connect_tcp(&self) -> Result<TcpStream, Failure> {
        let first = self.preferred.load(Ordering::Relaxed);
        let order = (0..self.addrs.len()).map(|i| (first + i) % self.addrs.len());
        let mut last = None;
        for i in order {
            let addr = self.addrs[i];
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(tcp);
                }
                Err(e) => {
                    let kind = match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
                        std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
                        _ => ErrorKind::Connect,
                    };
                    last = Some((kind, format!("connect to {addr}: {}", io_message(&e))));
                }
            }
        }
        Err(last.expect("a connector has at least one address"))
    }

    async fn connect(&self) -> Result<Connection, Failure> {
        let tcp = self.connect_tcp().await?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(tls) => {
                let (stream, h2) = tls.connect(tcp).await?;
                // `http = "2"` means HTTP/2 or nothing: falling back to
                // HTTP/1.1 would measure something else than asked.
                if self.http == HttpVersion::Http2 && !h2 {
                    return Err((
                        ErrorKind::Protocol,
                        "the server did not agree to HTTP/2 (ALPN)".to_string(),
                    ));
                }
                handshake(TokioIo::new(stream), h2).await
            }
            None => handshake(TokioIo::new(tcp), self.http == HttpVersion::Http2).await,
        }
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// hyper's future that reads and writes one connection.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// An open connection: hyper's handle to send requests on it, and for
/// HTTP/1.1 the future that does its reading and writing.
///
/// The session polls that future itself, inside the user's task, together
/// with the request it is waiting for, rather than spawning it: one task
/// per user instead of two, and no wake-up crossing from one task to the
/// other and back on every request. An HTTP/2 connection is spawned as
/// usual, since it has pings and window updates to answer even while the
/// user thinks.
struct Connection {
    sender: Sender,
    driver: Option<Driver>,
}

impl Connection {
    /// Awaits `work` (something waiting on this connection) while driving
    /// the connection. When the connection ends first, `work` still runs to
    /// its end: hyper hands it the connection's error, or closes its channel.
    async fn drive<F: Future>(driver: &mut Option<Driver>, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Some(connection) = driver {
                if connection.as_mut().poll(cx).is_ready() {
                    *driver = None;
                }
            }
            work.as_mut().poll(cx)
        })
        .await
    }
}

async fn handshake<T>(io: TokioIo<T>, h2: bool) -> Result<Connection, Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handshake_failed = |e: hyper::Error| {
        (
            ErrorKind::Protocol,
            format!("handshake: {}", hyper_message(&e)),
        )
    };
    if h2 {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(handshake_failed)?;
        tokio::spawn(connection);
        Ok(Connection {
            sender: Sender::H2(sender),
            driver: None,
        })
    } else {
        // One flattened write per request beats writev for small requests.
        let (sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(io)
            .await
            .map_err(handshake_failed)?;
        Ok(Connection {
            sender: Sender::H1(sender),
            driver: Some(Box::pin(connection)),
        })
    }
}

/// One virtual user's connection to the target, and what its step kinds
/// keep between requests.
pub struct Session {
    connector: Arc<Connector>,
    connection: Option<Connection>,
    deadline: Deadline,
    /// Outlives connections: a kind's state (an MCP session id, say) is
    /// the server's, not the socket's.
    kinds: KindState,
}

impl Session {
    pub fn new(connector: Arc<Connector>) -> Self {
        Session {
            connector,
            connection: None,
            deadline: Deadline::default(),
            kinds: KindState::default(),
        }
    }

    /// What the user's step kinds keep between requests.
    pub fn kinds(&mut self) -> &mut KindState {
        &mut self.kinds
    }

    /// Sends a request and reads the whole response, within the request
    /// timeout (connecting has its own timeout first). Any failure drops the
    /// connection so the next request starts on a fresh one.
    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
        keep_body: bool,
    ) -> Result<Response, Failure> {
        let timeout = self.connector.timeout;
        self.exchange(req, timeout, |response| read_response(response, keep_body))
            .await
    }

    /// The target's time limit for one request.
    pub fn timeout(&self) -> Duration {
        self.connector.timeout
    }

    /// Drops the connection, so the next request opens a new one: for a
    /// kind that stops reading an answer the server keeps sending (an
    /// event stream left open).
    pub fn close_connection(&mut self) {
        self.connection = None;
    }

    /// Sends a request and hands its answer to `read`, which reads as
    /// much of it as it needs, all within `timeout` and while the
    /// connection is driven. [`Session::send`] reads the whole body; a
    /// kind may read an event stream up to the event it waits for. Any
    /// failure drops the connection.
    pub async fn exchange<T, F, R>(
        &mut self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
        read: F,
    ) -> Result<T, Failure>
    where
        F: FnOnce(http::Response<hyper::body::Incoming>) -> R,
        R: Future<Output = Result<T, Failure>>,
    {
        self.ready().await?;
        let connection = self
            .connection
            .as_mut()
            .expect("ready() leaves a connection");
        let exchange = async {
            let response = match &mut connection.sender {
                Sender::H1(s) => s.send_request(req).await,
                Sender::H2(s) => s.send_request(to_absolute(req, &self.connector)).await,
            }
            .map_err(|e| classify(&e, false))?;
            read(response).await
        };
        let exchange = Connection::drive(&mut connection.driver, exchange);
        let expired = self.deadline.arm(timeout);
        let result = tokio::select! {
            biased;
            result = exchange => result,
            _ = expired => Err((
                ErrorKind::Timeout,
                format!("no complete response within {}", fmt_duration(timeout)),
            )),
        };
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    /// Makes sure there is a usable connection: reuses the open one, or
    /// connects anew when there is none or the peer closed it while idle
    /// (that is not a failed request: nothing was sent yet).
    async fn ready(&mut self) -> Result<(), Failure> {
        if let Some(connection) = &mut self.connection {
            let ready = async {
                match &mut connection.sender {
                    Sender::H1(s) => s.ready().await.is_ok(),
                    Sender::H2(s) => s.ready().await.is_ok(),
                }
            };
            if Connection::drive(&mut connection.driver, ready).await {
                return Ok(());
            }
            self.connection = None;
        }
        let connect_timeout = self.connector.connect_timeout;
        // Boxed: connecting (TLS above all) is a large future, and kept
        // inline it would make every user's task that much bigger for the
        // whole run.
        let connect = Box::pin(self.connector.connect());
        match tokio::time::timeout(connect_timeout, connect).await {
            Ok(Ok(connection)) => {
                self.connection = Some(connection);
                Ok(())
            }
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err((
                ErrorKind::Timeout,
                format!(
                    "connect: no connection within {}",
                    fmt_duration(connect_timeout)
                ),
            )),
        }
    }
}

/// The `Host` header value: the port is left out when it is the default.
fn host_header(endpoint: &Endpoint) -> String {
    let default_port = if endpoint.https { 443 } else { 80 };
    let host = if endpoint.host.contains(':') {
        format!("[{}]", endpoint.host)
    } else {
        endpoint.host.clone()
    };
    if endpoint.port == default_port {
        host
    } else {
        format!("{host}:{}", endpoint.port)
    }
}

/// The request timeout, made coarse so that it costs next to nothing per
/// request. A timer per request (a tokio `timeout`) is put into the timer
/// wheel and taken out again every time. Instead each session keeps one
/// timer, set to fire between `timeout` and `timeout` + 1/16 of it after the
/// request's start, and moves it only when it would fire too early for a
/// later request: against a fast target, a few times a second rather than
/// on every request.
#[derive(Default)]
struct Deadline {
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    /// The timer for a request that starts now.
    fn arm(&mut self, timeout: Duration) -> Pin<&mut tokio::time::Sleep> {
        let earliest = tokio::time::Instant::now() + timeout;
        let latest = earliest + timeout / 16;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(latest)));
        let at = timer.deadline();
        if at < earliest || at > latest {
            timer.as_mut().reset(latest);
        }
        timer.as_mut()
    }
}

/// HTTP/2 carries scheme and authority as pseudo-headers, which hyper takes
/// from an absolute URI; `Host` is not used there.
fn to_absolute(mut req: Request<Full<Bytes>>, connector: &Connector) -> Request<Full<Bytes>> {
    let scheme = if connector.endpoint.https {
        "https"
    } else {
        "http"
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let host = connector.host.to_str().unwrap_or_default();
    if let Ok(uri) = format!("{scheme}://{host}{path}").parse() {
        *req.uri_mut() = uri;
    }
    req.headers_mut().remove(http::header::HOST);
    req
}

/// The size of a response's head: its status line, as HTTP/1.1 writes
/// it, and its headers.
pub fn response_head_size(parts: &http::response::Parts) -> u64 {
    let status_line =
        "HTTP/1.1 200 ".len() + parts.status.canonical_reason().map_or(0, str::len) + "\r\n".len();
    head_size(status_line, &parts.headers)
}

/// Reads a whole response; its body is kept when `keep_body` says so.
pub async fn read_response(
    response: http::Response<hyper::body::Incoming>,
    keep_body: bool,
) -> Result<Response, Failure> {
    let (parts, mut body) = response.into_parts();
    let head_bytes = response_head_size(&parts);
    let mut body_bytes = 0u64;
    let mut kept = keep_body.then(Kept::default);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify(&e, true))?;
        if let Ok(data) = frame.into_data() {
            body_bytes += data.len() as u64;
            if let Some(kept) = kept.as_mut() {
                kept.push(data)?;
            }
        }
    }
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body: kept.map(Kept::into_bytes),
        body_bytes,
        bytes_in: head_bytes + body_bytes,
        first_event: None,
        answered: None,
    })
}

/// A body kept for checks. A body that arrives in one frame (the usual
/// case) is kept as that frame, without a copy.
#[derive(Default)]
pub enum Kept {
    #[default]
    Empty,
    One(Bytes),
    Joined(Vec<u8>),
}

impl Kept {
    pub fn push(&mut self, data: Bytes) -> Result<(), Failure> {
        let len = match self {
            Kept::Empty => 0,
            Kept::One(first) => first.len(),
            Kept::Joined(joined) => joined.len(),
        };
        // Checks and extraction read the body from memory; a body bigger
        // than this would make memory grow with each user.
        if len + data.len() > MAX_KEPT_BODY {
            return Err((
                ErrorKind::Body,
                format!(
                    "the body is over {} MiB, too big to check",
                    MAX_KEPT_BODY >> 20
                ),
            ));
        }
        *self = match std::mem::take(self) {
            Kept::Empty => Kept::One(data),
            Kept::One(first) => {
                let mut joined = Vec::with_capacity(first.len() + data.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data);
                Kept::Joined(joined)
            }
            Kept::Joined(mut joined) => {
                joined.extend_from_slice(&data);
                Kept::Joined(joined)
            }
        };
        Ok(())
    }

    pub fn into_bytes(self) -> Bytes {
        match self {
            Kept::Empty => Bytes::new(),
            Kept::One(data) => data,
            Kept::Joined(joined) => Bytes::from(joined),
        }
    }
}

/// Sorts a hyper error into a failure kind. `in_body` tells whether the
/// head had already arrived (then a broken connection is a body failure).
pub fn classify(e: &hyper::Error, in_body: bool) -> Failure {
    let message = hyper_message(e);
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        ErrorKind::Protocol
    } else if in_body {
        ErrorKind::Body
    } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        ErrorKind::Reset
    } else if let Some(io) = find_io(e) {
        match io.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Reset,
        }
    } else {
        ErrorKind::Protocol
    };
    (kind, message)
}

fn find_io<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// hyper's message with its causes, e.g. "connection error: connection reset".
fn hyper_message(e: &hyper::Error) -> String {
    let mut message = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let text = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io_message(io),
            None => err.to_string(),
        };
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cur = err.source();
    }
    message
}

/// An io::Error's text without the OS error number, so equal failures group.
fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::time::{advance, Instant};

    /// What a loopback server answers, byte for byte.
    const ANSWER: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-answered-by: test\r\n\r\nhello";

    /// Sends `prepared` over HTTP/1.1 to a loopback server that counts the
    /// bytes of the request's head and answers [`ANSWER`]; returns that
    /// count and the response as the session reads it.
    async fn over_the_wire(prepared: &Prepared) -> (u64, Response) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut buf = [0u8; 1024];
            while !received.ends_with(b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before the end of its head");
                received.extend_from_slice(&buf[..n]);
            }
            socket.write_all(ANSWER).await.unwrap();
            received.len() as u64
        });
        let exchange = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
            tokio::spawn(connection);
            let response = sender.send_request(prepared.request()).await.unwrap();
            let response = read_response(response, true).await.unwrap();
            (server.await.unwrap(), response)
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .expect("a loopback exchange ends within 10 s")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn head_sizes_are_the_bytes_on_the_wire() {
        let prepared = Prepared::new(
            Method::GET,
            Uri::from_static("/items/7?page=3"),
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("user-agent", "loadctl/test"),
                ("x-request-id", "7-42"),
            ]),
            Bytes::new(),
        );
        let (sent, response) = over_the_wire(&prepared).await;
        assert_eq!(prepared.bytes_out, sent);
        assert_eq!(response.bytes_in, ANSWER.len() as u64);
        assert_eq!(response.body_bytes, 5);
        assert_eq!(response.body.as_deref(), Some(&b"hello"[..]));
    }

    #[tokio::test]
    async fn an_absolute_target_is_counted_whole() {
        let prepared = Prepared::new(
            Method::DELETE,
            Uri::from_static("http://127.0.0.1:8080/items/7"),
            headers(&[("host", "127.0.0.1:8080")]),
            Bytes::new(),
        );
        let (sent, _) = over_the_wire(&prepared).await;
        assert_eq!(prepared.bytes_out, sent);
    }

    #[test]
    fn a_body_counts_after_the_head() {
        let bare = Prepared::new(
            Method::PUT,
            Uri::from_static("/x"),
            HeaderMap::new(),
            Bytes::new(),
        );
        let with_body = Prepared::new(
            Method::PUT,
            Uri::from_static("/x"),
            HeaderMap::new(),
            Bytes::from_static(b"{\"a\": 1}"),
        );
        // "PUT /x HTTP/1.1\r\n" and the blank line.
        assert_eq!(bare.bytes_out, 17 + 2);
        assert_eq!(with_body.bytes_out, bare.bytes_out + 8);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_moves_only_when_it_would_fire_too_early() {
        let timeout = Duration::from_millis(1600);
        let mut deadline = Deadline::default();
        let start = Instant::now();
        let first = deadline.arm(timeout).deadline();
        assert_eq!(first, start + Duration::from_millis(1700));
        // A request 60 ms later may still time out at the same instant...
        advance(Duration::from_millis(60)).await;
        assert_eq!(deadline.arm(timeout).deadline(), first);
        // ...one 110 ms later may not: that would be before its 1600 ms.
        advance(Duration::from_millis(50)).await;
        assert_eq!(
            deadline.arm(timeout).deadline(),
            start + Duration::from_millis(1810)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_times_out_between_its_timeout_and_a_sixteenth_more() {
        let timeout = Duration::from_millis(1600);
        let mut deadline = Deadline::default();
        for gap in [0, 30, 100, 2000] {
            advance(Duration::from_millis(gap)).await;
            let start = Instant::now();
            deadline.arm(timeout).await;
            let waited = start.elapsed();
            assert!(
                waited >= timeout && waited <= timeout + timeout / 16,
                "{waited:?}"
            );
        }
    }
}
