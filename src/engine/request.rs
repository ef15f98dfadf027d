//! Building a request from a step: templates rendered, headers merged.
//!
//! A step with no template at all is built once per user as a
//! [`Prepared`] request and cloned for every send: the header map is
//! copied, the URI and body share their bytes, nothing is rendered.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use minijinja::Value;

use super::{Connector, Failure};
use crate::metrics::ErrorKind;
use crate::plan::{Plan, StepPlan};

const DEFAULT_USER_AGENT: &str = concat!("loadctl/", env!("CARGO_PKG_VERSION"));

/// A request ready to send, kept apart so it can be sent many times.
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

/// Renders the step's templates with `ctx` and prepares the request.
/// Target headers come first; a step header of the same name replaces it.
pub fn build(
    plan: &Plan,
    connector: &Connector,
    step: &StepPlan,
    ctx: &Value,
) -> Result<Prepared, Failure> {
    let render = |part| {
        plan.templates
            .render(part, ctx)
            .map_err(|e| (ErrorKind::Template, e))
    };
    // Rendered strings become the URI and header values as they are:
    // `from_maybe_shared` takes the bytes over instead of copying them.
    let mut path = render(&step.path)?;
    let base_path = &connector.endpoint().base_path;
    path.insert_str(0, base_path);
    let path_len = path.len();
    let uri = Uri::from_maybe_shared(Bytes::from(path)).map_err(|_| {
        (
            ErrorKind::Template,
            format!(
                "path `{}` does not render to a valid URI",
                plan.templates.source(&step.path)
            ),
        )
    })?;
    let mut headers = HeaderMap::with_capacity(plan.target.headers.len() + step.headers.len() + 3);
    headers.insert(HOST, connector.host().clone());
    for (name, part) in plan.target.headers.iter().chain(&step.headers) {
        let value = render(part)?;
        let value = HeaderValue::from_maybe_shared(Bytes::from(value)).map_err(|_| {
            (
                ErrorKind::Template,
                format!("header `{name}` rendered to a value that is not allowed in a header"),
            )
        })?;
        headers.insert(name.clone(), value);
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
    }
    if let Some(ct) = step.content_type {
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
    }
    let body = match &step.body {
        Some(part) => Bytes::from(render(part)?),
        None => Bytes::new(),
    };
    let head: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + step.method.as_str().len()
        + path_len
        + " HTTP/1.1\r\n\r\n".len();
    Ok(Prepared {
        method: step.method.clone(),
        uri,
        headers,
        bytes_out: (head + body.len()) as u64,
        body,
    })
}
