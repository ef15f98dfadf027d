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
    if !path.starts_with('/') {
        return Err((ErrorKind::Template, not_a_path(plan, step, &path)));
    }
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

/// The most of a rendered path a failure quotes: enough to see what it
/// became (`http://169.254.…`), little enough that failures of one cause
/// still group together.
const QUOTED_PATH_CHARS: usize = 24;

/// Why a path that rendered to something other than an origin-form path
/// (`/…`) is refused: an absolute URI (`http://other-host/…`) on the
/// request line would ask the allowed host, if it is a proxy or an
/// ingress, to forward the request to another host. A path starting with
/// `//` is still origin-form (hyper and the `http` crate read no authority
/// from it).
fn not_a_path(plan: &Plan, step: &HttpStep, rendered: &str) -> String {
    let mut start: String = rendered.chars().take(QUOTED_PATH_CHARS).collect();
    if start.len() < rendered.len() {
        start.push('…');
    }
    format!(
        "path `{}` rendered to `{start}`, which does not start with `/`; \
         a step's path is joined to the base URL and cannot name another host",
        plan.templates.source(&step.path)
    )
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

#[cfg(test)]
mod tests {
    use http::header::CONTENT_TYPE;
    use http_body_util::BodyExt;

    use super::*;
    use crate::diag::Diagnostics;
    use crate::plan::{BaseUrl, Overrides};

    /// A plan of one flow of `steps`, against a `[target]` of `target`.
    fn compiled(target: &str, steps: &str) -> Plan {
        let text = format!(
            "[target]\n{target}\n[load]\nusers = 1\nduration = \"1s\"\n\
             [vars]\nbad = \"/a b\"\n[[flow]]\n{steps}"
        );
        let mut diags = Diagnostics::default();
        let scenario = crate::scenario::parse(&text, &mut diags).expect("valid TOML");
        crate::plan::compile(
            &scenario,
            None,
            &Overrides::default(),
            &crate::plan::Inputs::sealed(),
            &mut diags,
        )
        .unwrap_or_else(|| panic!("{diags:?}"))
    }

    const LOOPBACK: &str = "base_url = \"http://127.0.0.1:9\"";

    async fn connector(plan: &Plan) -> Connector {
        let BaseUrl::Url(endpoint) = &plan.target.base else {
            panic!("a URL target")
        };
        Connector::new(endpoint.clone(), &plan.target)
            .await
            .unwrap()
    }

    fn http(step: &StepPlan) -> &HttpStep {
        step.http().expect("an HTTP step")
    }

    /// Static, then templated in its path, a header, its body.
    const STEPS: &str = r#"
  [[flow.step]]
  path = "/items"
  headers = { "X-Fixed" = "yes" }
  [[flow.step]]
  path = "/items/{{ vu }}"
  [[flow.step]]
  path = "/items"
  headers = { "X-Request-Id" = "{{ iteration }}" }
  [[flow.step]]
  method = "POST"
  path = "/items"
  json = { n = "{{ vu }}" }
"#;

    #[test]
    fn only_a_request_with_no_template_is_static() {
        let plan = compiled(LOOPBACK, STEPS);
        let fixed: Vec<bool> = plan.flows[0]
            .steps
            .iter()
            .map(|step| is_static(&plan, http(step)))
            .collect();
        assert_eq!(fixed, [true, false, false, false]);
        // A templated default header makes every request dynamic.
        let target = format!("{LOOPBACK}\nheaders = {{ \"X-User\" = \"{{{{ vu }}}}\" }}");
        let plan = compiled(&target, STEPS);
        assert!(!is_static(&plan, http(&plan.flows[0].steps[0])));
    }

    #[tokio::test]
    async fn a_request_joins_the_base_path_and_step_headers_win() {
        let target = r#"base_url = "http://127.0.0.1:9/api/"
headers = { "X-A" = "target", "X-B" = "target" }"#;
        let step = r#"
  [[flow.step]]
  method = "PUT"
  path = "/items/{{ vu }}"
  headers = { "X-B" = "step" }
  json = { id = "{{ vu }}" }
"#;
        let plan = compiled(target, step);
        let connector = connector(&plan).await;
        let ctx = minijinja::context! { vu => 7 };
        let step = http(&plan.flows[0].steps[0]);
        let prepared = prepare(&plan, &connector, step, &ctx).unwrap();
        let bytes_out = prepared.bytes_out;
        let request = prepared.into_request();
        assert_eq!(request.method(), http::Method::PUT);
        assert_eq!(request.uri(), "/api/items/7");
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_string();
        assert_eq!(header("host"), "127.0.0.1:9");
        assert_eq!(header("x-a"), "target");
        assert_eq!(header("x-b"), "step");
        assert_eq!(header("user-agent"), DEFAULT_USER_AGENT);
        assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
        let body = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"id":"7"}"#);
        assert!(bytes_out > body.len() as u64);
    }

    #[tokio::test]
    async fn a_render_failure_names_the_template_and_the_expression() {
        let steps = "  [[flow.step]]\n  path = \"/items\"\n  \
                     extract = { id = { json = \"/id\" } }\n\
                     [[flow.step]]\n  path = \"/items/{{ id.name }}\"\n";
        let plan = compiled(LOOPBACK, steps);
        let connector = connector(&plan).await;
        // The extracted value turned out to be a number, with no `name`.
        let ctx = minijinja::context! { id => 7 };
        let (kind, message) =
            prepare(&plan, &connector, http(&plan.flows[0].steps[1]), &ctx).unwrap_err();
        assert_eq!(kind, ErrorKind::Template);
        assert_eq!(
            message,
            "template `/items/{{ id.name }}`: `id.name` is undefined"
        );
    }

    #[tokio::test]
    async fn a_path_that_renders_to_another_host_is_refused() {
        let plan = compiled(LOOPBACK, "  [[flow.step]]\n  path = \"{{ bad }}\"\n");
        let connector = connector(&plan).await;
        let step = http(&plan.flows[0].steps[0]);
        for to in [
            "http://169.254.169.254/latest/meta-data/",
            "127.0.0.2:80",
            "*",
            "",
        ] {
            let ctx = minijinja::context! { bad => to };
            let (kind, message) = prepare(&plan, &connector, step, &ctx).unwrap_err();
            assert_eq!(kind, ErrorKind::Template, "{to}");
            assert!(message.contains("does not start with `/`"), "{message}");
        }
        let ctx = minijinja::context! { bad => "http://169.254.169.254/latest/meta-data/" };
        let (_, message) = prepare(&plan, &connector, step, &ctx).unwrap_err();
        assert_eq!(
            message,
            "path `{{ bad }}` rendered to `http://169.254.169.254/l…`, which does not start \
             with `/`; a step's path is joined to the base URL and cannot name another host"
        );
        // `//x` is a path whose first segment is empty, not an authority:
        // it stays on the request line as it is, and the Host is the target.
        let ctx = minijinja::context! { bad => "//169.254.169.254/x" };
        let request = prepare(&plan, &connector, step, &ctx)
            .unwrap()
            .into_request();
        assert_eq!(request.uri().authority(), None);
        assert_eq!(request.uri(), "//169.254.169.254/x");
        assert_eq!(request.headers()[HOST], "127.0.0.1:9");
    }

    #[tokio::test]
    async fn a_template_that_renders_no_uri_is_a_template_failure() {
        let plan = compiled(LOOPBACK, "  [[flow.step]]\n  path = \"{{ bad }}\"\n");
        let connector = connector(&plan).await;
        let ctx = minijinja::context! { bad => "/a b" };
        let (kind, message) =
            prepare(&plan, &connector, http(&plan.flows[0].steps[0]), &ctx).unwrap_err();
        assert_eq!(kind, ErrorKind::Template);
        assert!(message.contains("{{ bad }}"), "{message}");
    }
}
