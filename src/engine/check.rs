//! What every step kind judges the same way: the step's `expect` (status,
//! body and JSON checks) and its `extract`, read from a [`Response`].

use minijinja::Value;

use super::{Failure, Response};
use crate::metrics::ErrorKind;
use crate::plan::{ExtractFrom, JsonPointer, StepPlan};

/// Checks a response against the step's expectations and pulls out the
/// values it extracts, in the order of `step.extract`. The first unmet
/// expectation is the failure.
pub fn check(step: &StepPlan, response: &Response) -> Result<Vec<Value>, Failure> {
    let code = response.status.as_u16();
    if !step.expect.status_ok(code) {
        let expected = if step.expect.status.is_empty() {
            "200-399".to_string()
        } else {
            step.expect
                .status
                .iter()
                .map(|(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err((
            ErrorKind::Status,
            format!("status {code}, expected {expected}"),
        ));
    }
    let body = response.body.as_deref().unwrap_or_default();
    if let Some(needle) = &step.expect.body_contains {
        if !contains(body, needle.as_bytes()) {
            return Err((
                ErrorKind::Check,
                format!("body does not contain {needle:?}"),
            ));
        }
    }
    // Each pointer reads the body anew but builds only its own value. For
    // the one or two pointers a step usually has, that is cheaper than
    // building the whole document once (see the `hot_paths` benches).
    let find = |pointer: &JsonPointer| {
        pointer
            .find_in(body)
            .map_err(|e| (ErrorKind::Check, format!("body is not JSON: {e}")))
    };
    for (pointer, expected) in &step.expect.json {
        match find(pointer)? {
            Some(v) if json_equal(&v, expected) => {}
            Some(v) => {
                return Err((
                    ErrorKind::Check,
                    format!("JSON {pointer} is {v}, expected {expected}"),
                ))
            }
            None => return Err((ErrorKind::Check, format!("JSON {pointer} is missing"))),
        }
    }
    let mut extracted = Vec::with_capacity(step.extract.len());
    for e in &step.extract {
        let value = match &e.source {
            ExtractFrom::Json(pointer) => match find(pointer)? {
                Some(serde_json::Value::String(s)) => Value::from(s),
                Some(v) => Value::from(minijinja::value::Serde(&v)),
                None => {
                    return Err((
                        ErrorKind::Check,
                        format!("extract `{}`: JSON {pointer} is missing", e.var),
                    ))
                }
            },
            ExtractFrom::Header(name) => {
                match response.headers.get(name).and_then(|v| v.to_str().ok()) {
                    Some(v) => Value::from(v),
                    None => {
                        return Err((
                            ErrorKind::Check,
                            format!("extract `{}`: no `{name}` header", e.var),
                        ))
                    }
                }
            }
        };
        extracted.push(value);
    }
    Ok(extracted)
}

/// JSON equality where 5 and 5.0 are the same number.
fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
