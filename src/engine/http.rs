//! The HTTP step kind: a request as the step writes it (method, path,
//! headers, body), its templates rendered, and its answer judged by the
//! step's `expect` alone.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, Request, Uri};
use http_body_util::Full;
use minijinja::Value;

use super::{check, Connector, Failure, Prepared, Response, Session};
use crate::metrics::ErrorKind;
use crate::plan::{HttpStep, Plan, StepPlan};

const DEFAULT_USER_AGENT: &str = concat!("loadctl/", env!("CARGO_PKG_VERSION"));

/// Whether nothing in the request (path, headers, the target's default
/// headers, body) is a template.
pub fn is_static(plan: &Plan, step: &HttpStep) -> bool {
    step.path.is_static()
        && step
            .headers
            .iter()
            .chain(&plan.target.headers)
            .all(|(_, part)| part.is_static())
        && step.body.as_ref().is_none_or(|body| body.is_static())
}

/// Renders the step's templates with `ctx` and prepares the request.
/// Target headers come first; a step header of the same name replaces it.
pub fn prepare(
    plan: &Plan,
    connector: &Connector,
    step: &HttpStep,
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
    path.insert_str(0, &connector.endpoint().base_path);
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
    Ok(Prepared::new(step.method.clone(), uri, headers, body))
}

/// One request, one answer; the body is kept only when the step's checks
/// or extractions read it.
pub async fn send(
    session: &mut Session,
    step: &StepPlan,
    request: Request<Full<Bytes>>,
) -> Result<Response, Failure> {
    session.send(request, step.needs_body()).await
}

/// An HTTP answer is right when it meets the step's `expect`.
pub fn judge(step: &StepPlan, response: &Response) -> Result<Vec<Value>, Failure> {
    check::check(step, response)
}
