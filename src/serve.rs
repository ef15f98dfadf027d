//! Serving HTTP on a listener until a token fires: the one accept loop for
//! every server loadctl runs (the demo target, the live Prometheus
//! endpoint, the coordinator's API, over TLS when given a certificate).
//!
//! Each connection speaks HTTP/1.1 or HTTP/2 (h2c prior knowledge, told
//! apart by its first bytes) through hyper-util's auto builder, and is
//! served on its own task. When the token fires the loop stops accepting
//! and every open connection is dropped: the servers this serves live for
//! the length of one run, and a run that ends should not wait for a client
//! that keeps its connection open.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long to wait before accepting again after an error (out of file
/// descriptors, say), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Accepts connections on `listener` and answers each request with
/// `handle`, until `shutdown` fires. `handle` is cloned once per
/// connection; it cannot fail (an error is an answer it builds itself).
pub async fn http<F, Fut, B>(listener: TcpListener, handle: F, shutdown: CancellationToken)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    accept(listener, None, None, handle, shutdown).await
}

/// [`http`] for a server other machines reach (the coordinator's API):
/// over TLS when given an acceptor (each connection's handshake within
/// [`TLS_HANDSHAKE_TIMEOUT`]), and a client that opens a connection and
/// sends no complete request head within [`HEADER_TIMEOUT`] is dropped,
/// so idle connections cannot pile up before the token is even checked.
pub async fn api<F, Fut, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handle: F,
    shutdown: CancellationToken,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    accept(listener, tls, Some(HEADER_TIMEOUT), handle, shutdown).await
}

/// A client that connects and says nothing does not hold a task forever.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an API server waits for a request's head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

async fn accept<F, Fut, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    header_timeout: Option<Duration>,
    handle: F,
    shutdown: CancellationToken,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        // Small answers go out at once rather than waiting for more to send.
        let _ = stream.set_nodelay(true);
        let (handle, shutdown, tls) = (handle.clone(), shutdown.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, header_timeout, handle, shutdown).await,
                Some(tls) => {
                    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        serve_connection(stream, header_timeout, handle, shutdown).await;
                    }
                }
            }
        });
    }
}

async fn serve_connection<I, F, Fut, B>(
    io: I,
    header_timeout: Option<Duration>,
    handle: F,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let service = service_fn(move |req| {
        let answer = handle(req);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if let Some(timeout) = header_timeout {
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(timeout);
    }
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = connection => {}
        _ = shutdown.cancelled() => {}
    }
}

/// A TLS acceptor from a PEM certificate chain and its private key.
pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("the certificate file: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("the certificate file holds no certificate");
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| anyhow::anyhow!("the key file: {e}"))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(std::sync::Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::client::conn::{http1, http2};
    use tokio::net::TcpStream;

    async fn start() -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let echo_path = |req: Request<Incoming>| async move {
            Response::new(Full::new(Bytes::from(req.uri().path().to_string())))
        };
        tokio::spawn(http(listener, echo_path, shutdown.clone()));
        (addr, shutdown)
    }

    fn get(path: &str) -> Request<Full<Bytes>> {
        Request::get(path)
            .header(http::header::HOST, "127.0.0.1")
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn answers_http1_and_http2_and_stops_when_told() {
        let (addr, shutdown) = start().await;

        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (mut h1, conn) = http1::handshake(io).await.unwrap();
        let h1_open = tokio::spawn(conn);
        let answer = h1.send_request(get("/one")).await.unwrap();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "/one");

        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (mut h2, conn) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
        tokio::spawn(conn);
        let mut request = get("http://127.0.0.1/two");
        *request.version_mut() = http::Version::HTTP_2;
        let answer = h2.send_request(request).await.unwrap();
        assert_eq!(answer.version(), http::Version::HTTP_2);
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "/two");

        shutdown.cancel();
        // The open connection is dropped, and no new one is answered.
        // Closed cleanly or reset, either way it ends.
        let _closed = tokio::time::timeout(Duration::from_secs(5), h1_open)
            .await
            .expect("the connection closes when the token fires")
            .unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match TcpStream::connect(addr).await {
                    Err(_) => return,
                    Ok(stream) => {
                        // The listener may linger a moment after the loop ends.
                        drop(stream);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
        .await;
        assert!(refused.is_ok(), "the listener closes when the token fires");
    }
}
