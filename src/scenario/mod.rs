//! What the user wrote: the scenario file as read, with a span on every value.
//!
//! This is the only module that knows TOML. [`load`] reads a file and
//! [`parse`] reads text into a [`Scenario`], checking syntax, key names and
//! value types and collecting every problem it meets. Nothing here judges
//! meaning (is a duration valid, does a threshold name a real step): that is
//! `plan`'s job, which is why durations and counts stay raw here.
//! [`schema`] describes the same keys as a JSON Schema, for editors and
//! for the scenario reference.

mod read;
pub mod schema;

use std::path::Path;

use crate::diag::{Diagnostics, SourceFile, Span, Spanned};

pub use read::parse;

type S<T> = Option<Spanned<T>>;

/// A whole scenario file.
#[derive(Debug, Default, Clone)]
pub struct Scenario {
    pub name: S<String>,
    pub target: Target,
    pub load: Load,
    /// `[vars]`: constants available to every template.
    pub vars: Vec<(Spanned<String>, Spanned<serde_json::Value>)>,
    pub data: Vec<Data>,
    pub flows: Vec<Flow>,
    pub thresholds: Vec<ThresholdList>,
    /// Names of headers and variables whose values must never be shown.
    pub secrets: Vec<Spanned<String>>,
    /// `[distribution]`: how a coordinator spreads the load over workers.
    pub distribution: Distribution,
}

/// `[distribution]`, as written; only distributed runs read it.
#[derive(Debug, Default, Clone)]
pub struct Distribution {
    /// The table; empty (0..0) when the file has none.
    pub span: Span,
    /// `"even"` or `"capacity"`.
    pub strategy: S<String>,
    /// `zones = { eu = 60, us = 40 }`: a percentage of the load per value
    /// of the workers' `zone` label.
    pub zones: Vec<(Spanned<String>, Spanned<f64>)>,
    /// `"rebalance"`, `"continue"` or `"fail"`.
    pub on_worker_lost: S<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Target {
    /// The `[target]` table; empty (0..0) when the file has none.
    pub span: Span,
    pub base_url: S<String>,
    pub http: S<String>,
    pub timeout: S<String>,
    pub connect_timeout: S<String>,
    pub headers: Vec<(Spanned<String>, Spanned<String>)>,
    pub insecure: S<bool>,
    pub ca_file: S<String>,
}

/// `[load]`: the model, the pattern and its parameters, as written.
#[derive(Debug, Default, Clone)]
pub struct Load {
    pub span: Span,
    pub model: S<String>,
    pub pattern: S<String>,
    pub users: S<i64>,
    pub rate: S<f64>,
    pub max_users: S<i64>,
    pub on_saturation: S<String>,
    pub max_waiting: S<i64>,
    pub duration: S<String>,
    pub iterations: S<i64>,
    pub graceful_stop: S<String>,
    pub ramp_up: S<String>,
    pub ramp_down: S<String>,
    pub stages: Vec<LoadStage>,
    pub base: S<f64>,
    pub peak: S<f64>,
    pub spike_at: S<String>,
    pub spike_ramp: S<String>,
    pub spike_hold: S<String>,
    pub amplitude: S<f64>,
    pub period: S<String>,
    pub min: S<f64>,
    pub max: S<f64>,
    pub change_every: S<String>,
    pub seed: S<i64>,
    pub burst: S<f64>,
    pub every: S<String>,
    pub burst_length: S<String>,
}

/// One entry of `stages = [{ duration = "30s", target = 10 }, …]`.
#[derive(Debug, Clone)]
pub struct LoadStage {
    pub span: Span,
    pub duration: S<String>,
    pub target: S<f64>,
}

/// A `[[data]]` feeder: rows of a CSV file handed to iterations.
#[derive(Debug, Clone)]
pub struct Data {
    pub span: Span,
    pub name: S<String>,
    pub file: S<String>,
    pub mode: S<String>,
}

/// A `[[flow]]`: one class of user.
#[derive(Debug, Clone)]
pub struct Flow {
    pub span: Span,
    pub name: S<String>,
    pub weight: S<i64>,
    pub think_time: S<String>,
    /// `mcp = { … }`: how the flow's users hold their MCP sessions.
    pub mcp: Option<McpSession>,
    pub steps: Vec<Step>,
}

/// A flow's `mcp = { session = "per-user", close_session = true, … }`.
#[derive(Debug, Clone)]
pub struct McpSession {
    pub span: Span,
    /// `"per-user"` or `"per-iteration"`.
    pub session: S<String>,
    pub close_session: S<bool>,
    pub protocol_version: S<String>,
}

/// A `[[flow.step]]`: one request (an HTTP one, or with `kind = "mcp"` a
/// JSON-RPC call to an MCP server).
#[derive(Debug, Clone)]
pub struct Step {
    pub span: Span,
    pub name: S<String>,
    /// `"http"` (the default) or `"mcp"`.
    pub kind: S<String>,
    /// The HTTP method, or an MCP step's JSON-RPC method.
    pub method: S<String>,
    pub path: S<String>,
    pub headers: Vec<(Spanned<String>, Spanned<String>)>,
    pub body: S<String>,
    pub json: S<serde_json::Value>,
    /// An MCP step's JSON-RPC `params`.
    pub params: S<serde_json::Value>,
    /// An MCP step's own timeout for its answer.
    pub timeout: S<String>,
    pub expect: Option<Expect>,
    pub extract: Vec<Extract>,
}

#[derive(Debug, Default, Clone)]
pub struct Expect {
    /// Codes (`200`) or classes (`"2xx"`), as written.
    pub status: Vec<Spanned<StatusSpec>>,
    pub body_contains: S<String>,
    /// JSON pointer → expected value.
    pub json: Vec<(Spanned<String>, Spanned<serde_json::Value>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StatusSpec {
    Code(i64),
    Text(String),
}

/// `extract = { var = { json = "/pointer" } }` or `{ header = "name" }`.
#[derive(Debug, Clone)]
pub struct Extract {
    pub var: Spanned<String>,
    pub source: Spanned<ExtractSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExtractSource {
    Json(String),
    Header(String),
}

/// One key of `[thresholds]` and its expressions.
#[derive(Debug, Clone)]
pub struct ThresholdList {
    pub metric: Spanned<String>,
    pub expressions: Vec<Spanned<String>>,
}

/// The largest scenario `validate`, `run` and every other front end
/// accept: 10 MiB. Scenarios are hand-written text, far below this; a
/// larger file is a mistake or an attack, and refusing it before reading
/// keeps checking fast and memory bounded.
pub const MAX_SCENARIO_BYTES: u64 = 10 << 20;

/// The problem with a scenario of `len` bytes, if it is too large.
pub fn size_problem(len: u64) -> Option<String> {
    (len > MAX_SCENARIO_BYTES).then(|| {
        format!(
            "the scenario is {} bytes ({:.1} MiB), {}",
            crate::units::grouped(len),
            len as f64 / (1 << 20) as f64,
            over_the_limit()
        )
    })
}

fn over_the_limit() -> String {
    format!(
        "over the limit of {} MiB ({} bytes) for a scenario",
        MAX_SCENARIO_BYTES >> 20,
        crate::units::grouped(MAX_SCENARIO_BYTES)
    )
}

/// Reads a scenario file. Returns `None` for a file that cannot be read,
/// is larger than [`MAX_SCENARIO_BYTES`] or is not valid TOML; the
/// diagnostics say why.
pub fn load(path: &Path) -> (SourceFile, Option<Scenario>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let text = match read_bounded(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                diags.error(at..at, "the file is not valid UTF-8 text");
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                return (SourceFile::new(path, text), None, diags);
            }
        },
        Err(ReadError::TooLarge(message)) => {
            diags.error(None, message);
            return (SourceFile::new(path, String::new()), None, diags);
        }
        Err(ReadError::Io(e)) => {
            diags.error(None, format!("cannot read the file: {e}"));
            return (SourceFile::new(path, String::new()), None, diags);
        }
    };
    let scenario = parse(&text, &mut diags);
    (SourceFile::new(path, text), scenario, diags)
}

enum ReadError {
    TooLarge(String),
    Io(std::io::Error),
}

/// The file's bytes, refusing more than [`MAX_SCENARIO_BYTES`]: by its
/// size when it has one, and by reading one byte past the limit at most
/// (a pipe or a special file has no size to trust).
fn read_bounded(path: &Path) -> Result<Vec<u8>, ReadError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let size = file.metadata().map_err(ReadError::Io)?.len();
    if let Some(message) = size_problem(size) {
        return Err(ReadError::TooLarge(message));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_SCENARIO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(ReadError::TooLarge(format!(
            "the scenario is {}",
            over_the_limit()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: the size is what is judged, not the content.
        file.set_len(MAX_SCENARIO_BYTES + 1).unwrap();
        let (source, scenario, diags) = load(&path);
        assert!(scenario.is_none() && source.text.is_empty());
        let message = &diags.items()[0].message;
        assert_eq!(
            message,
            "the scenario is 10,485,761 bytes (10.0 MiB), over the limit of 10 MiB (10,485,760 bytes) for a scenario"
        );
        assert_eq!(size_problem(MAX_SCENARIO_BYTES), None);
    }
}
