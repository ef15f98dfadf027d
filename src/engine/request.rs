//! Building a request from a step: templates rendered, headers merged.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use http::Request;
use http_body_util::Full;
use minijinja::Value;

use super::{Connector, Failure};
use crate::metrics::ErrorKind;
use crate::plan::{Plan, StepPlan};

const DEFAULT_USER_AGENT: &str = concat!("loadctl/", env!("CARGO_PKG_VERSION"));

pub struct BuiltRequest {
    pub request: Request<Full<Bytes>>,
    /// Request line, headers and body, as sent over HTTP/1.1.
    pub bytes_out: u64,
}

/// Renders the step's templates with `ctx` and builds the request. Target
/// headers come first; a step header of the same name replaces it.
pub fn build(
    plan: &Plan,
    connector: &Connector,
    step: &StepPlan,
    ctx: &Value,
) -> Result<BuiltRequest, Failure> {
    let render = |part| {
        plan.templates
            .render(part, ctx)
            .map_err(|e| (ErrorKind::Template, e))
    };
    let path = render(&step.path)?;
    let full_path = format!("{}{}", connector.endpoint().base_path, path);
    let uri: http::Uri = full_path.parse().map_err(|_| {
        (
            ErrorKind::Template,
            format!("path `{path}` does not form a valid URI"),
        )
    })?;
    let mut builder = Request::builder().method(step.method.clone()).uri(uri);
    let headers = builder
        .headers_mut()
        .expect("a builder given a parsed method and URI holds no error");
    headers.insert(
        HOST,
        HeaderValue::from_str(&connector.host_header())
            .map_err(|_| (ErrorKind::Template, "invalid host".to_string()))?,
    );
    for (name, part) in plan.target.headers.iter().chain(&step.headers) {
        let value = render(part)?;
        let value = HeaderValue::from_str(&value).map_err(|_| {
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
        + full_path.len()
        + " HTTP/1.1\r\n\r\n".len();
    let bytes_out = (head + body.len()) as u64;
    let request = builder
        .body(Full::new(body))
        .expect("a builder given a parsed method and URI holds no error");
    Ok(BuiltRequest { request, bytes_out })
}
