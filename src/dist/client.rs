//! A client of the coordinator's API, for workers and `run --coordinator`:
//! JSON over the engine's own connections (one kept-alive HTTP/1.1
//! connection, TLS with the system's roots plus `--ca-file`), the token in
//! every request.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use super::protocol::{ErrorBody, BEARER, MAX_ANSWER_BYTES};
use crate::engine::{Connector, Session};
use crate::plan::{parse_endpoint, BaseUrl, CaFile, Endpoint, HttpVersion, TargetPlan};

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer: the coordinator is down, unreachable or too slow.
    #[error("the coordinator at {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    /// The token was refused.
    #[error("the coordinator at {url} refused the token (check --token or LOADCTL_TOKEN)")]
    Unauthorized { url: String },
    /// An answer that says no, with the coordinator's reason.
    #[error("the coordinator answered {status}: {message}")]
    Refused { status: StatusCode, message: String },
    /// An answer that is not what the API promises.
    #[error("the coordinator's answer cannot be read: {0}")]
    Invalid(String),
}

impl ApiError {
    /// The call may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Unreachable { .. } => true,
            ApiError::Refused { status, .. } => status.is_server_error(),
            _ => false,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            ApiError::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }
}

pub struct ApiClient {
    url: String,
    endpoint: Endpoint,
    host: HeaderValue,
    token: Option<HeaderValue>,
    session: Mutex<Session>,
}

impl ApiClient {
    /// A client of the coordinator at `url` (`http[s]://host:port`).
    /// `ca_file`: a PEM file of certificates to trust besides the system's.
    pub async fn new(
        url: &str,
        token: Option<&str>,
        ca_file: Option<&Path>,
    ) -> anyhow::Result<ApiClient> {
        let endpoint =
            parse_endpoint(url).map_err(|e| anyhow::anyhow!("the coordinator's URL: {e}"))?;
        let ca_file = match ca_file {
            Some(path) => Some(CaFile {
                name: path.display().to_string(),
                pem: std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("--ca-file {}: {e}", path.display()))?,
            }),
            None => None,
        };
        let target = TargetPlan {
            base: BaseUrl::Url(endpoint.clone()),
            http: HttpVersion::Http1,
            timeout: CALL_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            headers: Vec::new(),
            insecure: false,
            ca_file,
        };
        let connector = Connector::new(endpoint.clone(), &target).await?;
        let host = connector.host().clone();
        let token = match token {
            Some(t) => Some(
                HeaderValue::from_str(&format!("{BEARER}{t}"))
                    .map_err(|_| anyhow::anyhow!("the token must be printable ASCII"))?,
            ),
            None => None,
        };
        Ok(ApiClient {
            url: endpoint.display(),
            endpoint,
            host,
            token,
            session: Mutex::new(Session::new(Arc::new(connector))),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let body = self.call(Method::GET, path, Bytes::new()).await?;
        self.decode(&body)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let json = serde_json::to_vec(body).map_err(|e| ApiError::Invalid(e.to_string()))?;
        let answer = self.call(Method::POST, path, Bytes::from(json)).await?;
        self.decode(&answer)
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let body = self.call(Method::DELETE, path, Bytes::new()).await?;
        self.decode(&body)
    }

    /// Posts bytes as they are (a snapshot's wire form).
    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> Result<Bytes, ApiError> {
        self.call(Method::POST, path, Bytes::from(body)).await
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, ApiError> {
        serde_json::from_slice(body).map_err(|e| ApiError::Invalid(e.to_string()))
    }

    async fn call(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes, ApiError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint.base_path))
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, token.clone());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ApiError::Invalid(format!("the request to {path}: {e}")))?;
        // Its own limit: the engine keeps at most 10 MiB of a body, and a
        // long run's summary or an assignment with its files can be more.
        let read = |response: http::Response<hyper::body::Incoming>| async move {
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| (crate::metrics::ErrorKind::Body, e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        let mut session = self.session.lock().await;
        let (status, body) = session
            .exchange(request, CALL_TIMEOUT, read)
            .await
            .map_err(|(_, message)| ApiError::Unreachable {
                url: self.url.clone(),
                message,
            })?;
        if !status.is_success() {
            // A request refused before its body was read (too large, for
            // an unknown run, without the token) leaves its connection
            // closed by the server, unnoticed until the next call fails on
            // it: that one starts on a fresh connection instead.
            session.close_connection();
        }
        drop(session);
        match status {
            s if s.is_success() => Ok(body),
            StatusCode::UNAUTHORIZED => Err(ApiError::Unauthorized {
                url: self.url.clone(),
            }),
            status => {
                let message = serde_json::from_slice::<ErrorBody>(&body)
                    .map(|e| e.error)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
                Err(ApiError::Refused { status, message })
            }
        }
    }
}
