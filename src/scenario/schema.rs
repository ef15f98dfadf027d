//! The scenario file as a JSON Schema, for editors (`loadctl validate
//! --print-schema`) and for the scenario reference, `docs/scenario.md`
//! ([`mod@reference`]).
//!
//! The reader reads TOML key by key with spans and never deserializes into
//! types, so the schema has its own: the types below mirror every table and
//! key the reader accepts, and are never built. Each exists to carry a
//! key's type, its default (`default`, or `x-default` in words when it
//! depends on other keys), an example (`examples`) and its meaning (the doc
//! comment, which becomes its `description`). Every table refuses unknown
//! keys, as the reader does. Where the schema can say more than the reader
//! (a status code is 100–599, `users` is at least 1), it says what `plan`
//! will insist on, so an editor flags it as it is typed.
//!
//! The schema is draft-07, which every editor's validator knows (Taplo,
//! behind Even Better TOML, among them). Unit tests check that each table
//! here has exactly the keys the reader asks for, and that a file holding
//! every key, made from the examples, passes both.

pub mod reference;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::schedule::PatternKind;

/// The scenario file's JSON Schema (draft-07).
pub fn json_schema() -> serde_json::Value {
    let mut settings = SchemaSettings::draft07();
    // First, so that a `$ref` it lifts out of an `anyOf` is then moved
    // away from its siblings as draft-07 needs.
    let no_null: fn(&mut Schema) = no_null;
    settings
        .transforms
        .insert(0, Box::new(RecursiveTransform(no_null)));
    let generator = SchemaGenerator::new(settings);
    generator.into_root_schema_for::<Scenario>().to_value()
}

/// Takes `null` out of what a key allows: schemars allows it for an
/// `Option`, but TOML has no null; a key that is not needed is left out.
fn no_null(schema: &mut Schema) {
    let null = serde_json::json!({ "type": "null" });
    if let Some(serde_json::Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            schema.insert("type".into(), only);
        }
    }
    let Some(serde_json::Value::Array(branches)) = schema.get_mut("anyOf") else {
        return;
    };
    branches.retain(|b| *b != null);
    if let [serde_json::Value::Object(only)] = branches.as_slice() {
        let only = only.clone();
        schema.remove("anyOf");
        for (key, value) in only {
            if !schema.as_object().is_some_and(|o| o.contains_key(&key)) {
                schema.insert(key, value);
            }
        }
    }
}

/// A loadctl scenario: where requests go, how much load to send, what each
/// user does, and what counts as a pass.
#[derive(JsonSchema)]
#[schemars(title = "loadctl scenario", deny_unknown_fields)]
pub struct Scenario {
    /// The run's name in reports and in `summary.json`.
    #[schemars(extend("x-default" = "the file's name without `.toml`", "examples" = ["shop API"]))]
    pub name: Option<String>,
    pub target: Option<Target>,
    pub load: Option<Load>,
    /// Constants for templates, by name (`{{ page_size }}`) or as
    /// `{{ vars.page_size }}`; any TOML value.
    #[schemars(extend("examples" = [{ "page_size": 20, "region": "eu" }]))]
    pub vars: Option<BTreeMap<String, serde_json::Value>>,
    /// Data feeders: CSV files whose rows iterations take in turn.
    pub data: Option<Tables<Data>>,
    /// The classes of user; each runs its steps in order, again and again.
    pub flow: Option<Tables<Flow>>,
    /// Headers and variables whose values never appear in reports, logs or
    /// error messages, besides `Authorization`, `Proxy-Authorization`,
    /// `Cookie` and `Set-Cookie`, which never do: a header name, a `[vars]`
    /// key, an extracted value, a data column (`accounts.password`) or
    /// `env.NAME`.
    #[schemars(extend("examples" = [["token", "X-Api-Key", "env.API_TOKEN"]]))]
    pub secrets: Option<OneOrMany<String>>,
    pub thresholds: Option<Thresholds>,
    pub distribution: Option<Distribution>,
}

/// `[target]`: where requests go and how they are sent.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Target {
    /// The service's URL, `http://` or `https://`, with an optional base
    /// path that every step's `path` is joined to; or `"demo"` for the
    /// built-in demo target. Needed unless `--base-url` gives it.
    #[schemars(extend("examples" = ["http://127.0.0.1:8080", "demo"]))]
    pub base_url: Option<String>,
    /// The HTTP version.
    #[schemars(extend("default" = "auto", "examples" = ["2"]))]
    pub http: Option<HttpVersion>,
    /// Per request, from sending it to the end of its body; at least 1ms.
    /// `--timeout` overrides it.
    #[schemars(extend("default" = "10s", "examples" = ["5s"]))]
    pub timeout: Option<Duration>,
    /// How long opening a connection (and its TLS handshake) may take.
    #[schemars(extend("default" = "5s", "examples" = ["2s"]))]
    pub connect_timeout: Option<Duration>,
    /// Headers sent with every request, before each step's own; values are
    /// templates, but cannot use extracted values.
    #[schemars(extend("examples" = [{ "User-Agent": "loadctl", "Authorization": "Bearer {{ env.API_TOKEN }}" }]))]
    pub headers: Option<Headers>,
    /// Skip TLS certificate checks (a test server with a self-signed
    /// certificate).
    #[schemars(extend("default" = false, "examples" = [true]))]
    pub insecure: Option<bool>,
    /// A PEM file of CA certificates to trust besides the system's,
    /// relative to the scenario file.
    #[schemars(extend("examples" = ["ca.pem"]))]
    pub ca_file: Option<String>,
}

/// `[load]`: the model (closed: users; open: arrival rate), the pattern of
/// the load over time, and how the run ends. A pattern key that the chosen
/// pattern does not read is an error, and so is an open-model key in a
/// closed run.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Load {
    /// Closed: a number of users, each looping over its flow. Open:
    /// iterations arrive at a rate, however fast the target answers.
    #[schemars(extend("x-default" = "`\"open\"` when `rate` is set, else `\"closed\"`", "examples" = ["open"]))]
    pub model: Option<Model>,
    /// How the users (closed) or the rate (open) change over time.
    #[schemars(extend("x-default" = "`\"stages\"` when `stages` is set, else `\"constant\"`", "examples" = ["ramp"]))]
    pub pattern: Option<Pattern>,
    /// Closed model, patterns constant and ramp: the number of users (the
    /// ramp's peak). `--users` overrides it.
    #[schemars(range(min = 1), extend("x-default" = "1 (pattern constant)", "examples" = [50]))]
    pub users: Option<i64>,
    /// Open model, patterns constant and ramp: iterations per second (the
    /// ramp's peak), at least 0.001. Setting it chooses the open model;
    /// `--rate` overrides it.
    #[schemars(extend("exclusiveMinimum" = 0, "examples" = [200]))]
    pub rate: Option<f64>,
    /// Open model: at most this many iterations in flight (k6's `maxVUs`).
    #[schemars(range(min = 1), extend("default" = 100, "examples" = [200]))]
    pub max_users: Option<i64>,
    /// Open model: what an iteration that is due does when every slot is
    /// busy.
    #[schemars(extend("default" = "wait", "examples" = ["drop"]))]
    pub on_saturation: Option<Saturation>,
    /// Open model: at most this many due iterations wait for a slot; later
    /// ones are counted as dropped.
    #[schemars(range(min = 1), extend("default" = 100000, "examples" = [1000]))]
    pub max_waiting: Option<i64>,
    /// How long the run lasts; every pattern but stages needs it (constant
    /// may have `iterations` instead). `--duration` overrides it.
    #[schemars(extend("examples" = ["2m"]))]
    pub duration: Option<Duration>,
    /// Flow iterations in all, across users; the run ends after them (or at
    /// the end of `duration`, whichever is first).
    #[schemars(range(min = 1), extend("examples" = [10000]))]
    pub iterations: Option<i64>,
    /// How long requests in flight may finish once the run stops; `"0s"`
    /// ends them at once.
    #[schemars(extend("default" = "2s", "examples" = ["5s"]))]
    pub graceful_stop: Option<Duration>,
    /// Pattern ramp: the time to rise from 0 to the peak.
    #[schemars(extend("x-default" = "a quarter of `duration`", "examples" = ["30s"]))]
    pub ramp_up: Option<Duration>,
    /// Pattern ramp: the time to fall from the peak to 0 at the end.
    #[schemars(extend("default" = "0s", "examples" = ["10s"]))]
    pub ramp_down: Option<Duration>,
    /// Pattern stages: linear from 0 to the first stage's target, then
    /// from each target to the next; a `"0s"` stage jumps. The stages set
    /// the duration.
    pub stages: Option<Tables<Stage>>,
    /// Patterns spike and burst: the load outside the spike or bursts
    /// (default 0); pattern wave: the middle of the wave (needed).
    #[schemars(range(min = 0), extend("examples" = [10]))]
    pub base: Option<f64>,
    /// Pattern spike: the load at the top of the spike.
    #[schemars(range(min = 0), extend("examples" = [100]))]
    pub peak: Option<f64>,
    /// Pattern spike: when the spike starts.
    #[schemars(extend("x-default" = "a third of `duration`", "examples" = ["30s"]))]
    pub spike_at: Option<Duration>,
    /// Pattern spike: the time to rise to the peak, and to fall back.
    #[schemars(extend("default" = "0s", "examples" = ["2s"]))]
    pub spike_ramp: Option<Duration>,
    /// Pattern spike: how long the peak holds.
    #[schemars(extend("x-default" = "a sixth of `duration`", "examples" = ["10s"]))]
    pub spike_hold: Option<Duration>,
    /// Pattern wave: how far the load swings above and below `base`
    /// (`base + amplitude·sin(2πt/period)`).
    #[schemars(range(min = 0), extend("examples" = [5]))]
    pub amplitude: Option<f64>,
    /// Pattern wave: the length of one wave.
    #[schemars(extend("examples" = ["1m"]))]
    pub period: Option<Duration>,
    /// Pattern random: the lowest load of the random walk.
    #[schemars(range(min = 0), extend("examples" = [5]))]
    pub min: Option<f64>,
    /// Pattern random: the highest load of the random walk.
    #[schemars(range(min = 0), extend("examples" = [50]))]
    pub max: Option<f64>,
    /// Pattern random: how often the walk picks a new target.
    #[schemars(extend("default" = "5s", "examples" = ["10s"]))]
    pub change_every: Option<Duration>,
    /// Pattern random: makes the walk repeatable; `--seed` overrides it.
    #[schemars(range(min = 0), extend("x-default" = "a random seed, kept in `summary.json`", "examples" = [42]))]
    pub seed: Option<i64>,
    /// Pattern burst: the load added on top of `base` during each burst.
    #[schemars(range(min = 0), extend("examples" = [40]))]
    pub burst: Option<f64>,
    /// Pattern burst: a burst starts at the beginning of every `every`.
    #[schemars(extend("examples" = ["10s"]))]
    pub every: Option<Duration>,
    /// Pattern burst: how long each burst lasts; at most `every`.
    #[schemars(extend("default" = "1s", "examples" = ["2s"]))]
    pub burst_length: Option<Duration>,
}

/// One stage of pattern stages: `stages = [{ duration = "30s", target = 10 }, …]`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Stage {
    /// How long the stage takes to reach its target; `"0s"` jumps to it.
    #[schemars(extend("examples" = ["30s"]))]
    pub duration: Duration,
    /// The users (closed model) or iterations per second (open model) at
    /// the end of the stage.
    #[schemars(range(min = 0), extend("examples" = [10]))]
    pub target: f64,
}

/// `[[data]]`: a data feeder. Each iteration takes a row of a CSV file
/// (with a header line), which templates read as `NAME.COLUMN`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Data {
    /// What templates call the feeder (`{{ accounts.user }}`): letters,
    /// digits and `_`, unique among the feeders.
    #[schemars(extend("examples" = ["accounts"]))]
    pub name: String,
    /// The CSV file, relative to the scenario file.
    #[schemars(extend("examples" = ["accounts.csv"]))]
    pub file: String,
    /// The order rows are handed out in.
    #[schemars(extend("default" = "sequential", "examples" = ["unique"]))]
    pub mode: Option<FeedMode>,
}

/// `[[flow]]`: a class of user. Users are spread over the flows by weight;
/// each runs the flow's steps in order, then starts again.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Flow {
    /// The flow's name in reports.
    #[schemars(extend("x-default" = "`flow1`, `flow2`, … by position", "examples" = ["browser"]))]
    pub name: Option<String>,
    /// This flow's share of the users, relative to the other flows'.
    #[schemars(range(min = 1), extend("default" = 1, "examples" = [3]))]
    pub weight: Option<i64>,
    /// A pause after each step.
    #[schemars(extend("x-default" = "no pause", "examples" = ["1s..3s"]))]
    pub think_time: Option<ThinkTime>,
    pub mcp: Option<McpSession>,
    /// The flow's requests, in order. A failed step ends the iteration.
    pub step: Option<Tables<Step>>,
}

/// A flow's `mcp = { … }`: how its users hold their MCP sessions (for
/// flows with `kind = "mcp"` steps).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct McpSession {
    /// How long a user keeps one MCP session.
    #[schemars(extend("default" = "per-user", "examples" = ["per-iteration"]))]
    pub session: Option<SessionScope>,
    /// End each session with a `DELETE`; `false` leaves sessions open, as
    /// a client that crashed would.
    #[schemars(extend("default" = true, "examples" = [false]))]
    pub close_session: Option<bool>,
    /// The MCP revision the `initialize` handshake asks for; revisions
    /// without a handshake (2026-07-28 on) are refused.
    #[schemars(extend("default" = "2025-11-25", "examples" = ["2025-06-18"]))]
    pub protocol_version: Option<String>,
}

/// `[[flow.step]]`: one request, an HTTP one or (with `kind = "mcp"`) a
/// JSON-RPC call to an MCP server.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Step {
    /// The step's row in reports; steps with the same name share it, and
    /// thresholds name it as `step:NAME`.
    #[schemars(extend("x-default" = "the method and path (`GET /api/items`); for MCP steps the method, and the tool or prompt it names (`tools/call add`)", "examples" = ["list items"]))]
    pub name: Option<String>,
    /// What the step sends.
    #[schemars(extend("default" = "http", "examples" = ["mcp"]))]
    pub kind: Option<StepKind>,
    /// HTTP steps: `GET`, `HEAD`, `POST`, `PUT`, `DELETE`, `PATCH`,
    /// `OPTIONS` or `TRACE`, in any case. MCP steps (needed): the JSON-RPC
    /// method, such as `tools/list` or `tools/call`; one under
    /// `notifications/` is sent as a notification.
    #[schemars(extend("x-default" = "`\"GET\"` (HTTP steps)", "examples" = ["POST", "tools/call"]))]
    pub method: Option<String>,
    /// Joined to the base URL; starts with `/` (or with a template that
    /// renders one), may hold a query. HTTP
    /// steps need it; for MCP steps it is the MCP endpoint, which the
    /// flow's first MCP step gives and the others share.
    #[schemars(extend("examples" = ["/api/items?page={{ random(1, 10) }}"]))]
    pub path: Option<Template>,
    /// Headers for this step, added to `[target]` headers (a header of the
    /// same name replaces the target's).
    #[schemars(extend("examples" = [{ "X-User": "{{ accounts.user }}" }]))]
    pub headers: Option<Headers>,
    /// HTTP steps: the request body, as written; a template.
    #[schemars(extend("examples" = ["name={{ vu }}"]))]
    pub body: Option<Template>,
    /// HTTP steps: a JSON body, written as TOML (strings may hold
    /// templates); sets `Content-Type: application/json` unless a header
    /// does. A step has `body` or `json`, not both.
    #[schemars(extend("examples" = [{ "name": "widget {{ vu }}", "price_cents": 499 }]))]
    pub json: Option<serde_json::Value>,
    /// MCP steps: the call's `params`, written as a TOML table (strings may
    /// hold templates).
    #[schemars(extend("examples" = [{ "name": "add", "arguments": { "a": 1, "b": 2 } }]))]
    pub params: Option<Params>,
    /// MCP steps: how long the whole answer may take.
    #[schemars(extend("x-default" = "`[target]` timeout", "examples" = ["2s"]))]
    pub timeout: Option<Duration>,
    pub expect: Option<Expect>,
    /// Values to take from the response for later steps of the flow, which
    /// use them by name (`{{ first_id }}`); each from a JSON pointer or a
    /// header.
    #[schemars(extend("examples" = [{ "first_id": { "json": "/items/0/id" }, "etag": { "header": "etag" } }]))]
    pub extract: Option<BTreeMap<String, Extract>>,
}

/// A step's `expect = { … }`: what makes a response a success. Every check
/// given must hold.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Expect {
    /// The statuses that count as success: codes, classes (`"2xx"`) or
    /// ranges (`"200-204"`). A security check that must be refused lists
    /// the refusals: `[401, 403, 404]`.
    #[schemars(extend("x-default" = "200–399", "examples" = [[200, 304], ["2xx", 404]]))]
    pub status: Option<OneOrMany<Status>>,
    /// Text the response body must contain.
    #[schemars(extend("examples" = ["price_cents"]))]
    pub body_contains: Option<String>,
    /// JSON pointers into the response body, each with the value it must
    /// hold. MCP steps read the JSON-RPC answer (`/result/…`).
    #[schemars(extend("examples" = [{ "/price_cents": 499, "/result/content/0/text": "3" }]))]
    pub json: Option<BTreeMap<String, serde_json::Value>>,
}

/// One value of a step's `extract = { NAME = { … } }`: where it comes from.
#[derive(JsonSchema)]
#[schemars(untagged)]
pub enum Extract {
    /// From the response body.
    Json(ExtractJson),
    /// From a response header.
    Header(ExtractHeader),
}

/// `{ json = "/pointer" }`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ExtractJson {
    /// A JSON pointer into the response body (for MCP steps, into the
    /// JSON-RPC answer).
    #[schemars(extend("examples" = ["/items/0/id"]))]
    pub json: String,
}

/// `{ header = "name" }`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ExtractHeader {
    /// A response header's name.
    #[schemars(extend("examples" = ["etag"]))]
    pub header: String,
}

/// `[thresholds]`: pass/fail gates checked at the end of the run, k6-style.
/// Each metric takes one expression or a list: `AGGREGATE OP VALUE`, where
/// OP is `<`, `<=`, `>`, `>=`, `==` or `!=`. A failed threshold makes the
/// run exit with code 1.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = step_thresholds)]
pub struct Thresholds {
    /// The latency of every request: `p(N)`, `avg`, `med`, `min`, `max`,
    /// with a value in `us`, `ms`, `s` or `m` (a bare number is ms).
    #[schemars(extend("examples" = [["p(95) < 500ms", "p(99) < 1s"]]))]
    pub http_req_duration: Option<OneOrMany<Expression>>,
    /// Failed requests: `rate` (a fraction, or a percentage such as `1%`)
    /// or `count`.
    #[schemars(extend("examples" = ["rate < 0.01"]))]
    pub http_req_failed: Option<OneOrMany<Expression>>,
    /// Requests: `count`, or `rate` / `rps` (per second).
    #[schemars(extend("examples" = ["rps > 10"]))]
    pub http_reqs: Option<OneOrMany<Expression>>,
}

/// The title and meaning of `"step:NAME"` threshold keys.
const STEP_THRESHOLD: &str = "One step, by its name: the latency aggregates, plus `rps`, `count` \
                              and `error_rate`. The step must exist.";

/// Adds `"step:NAME"` keys to `[thresholds]`: they take what the other
/// metrics take.
fn step_thresholds(schema: &mut Schema) {
    let Some(mut step) = schema
        .get("properties")
        .and_then(|p| p.get("http_reqs"))
        .cloned()
    else {
        return;
    };
    if let Some(step) = step.as_object_mut() {
        step.insert("title".into(), "step:NAME".into());
        step.insert("description".into(), STEP_THRESHOLD.into());
        let examples = serde_json::json!([["p(99) < 800ms", "error_rate < 0.05"]]);
        step.insert("examples".into(), examples);
    }
    schema.insert(
        "patternProperties".into(),
        serde_json::json!({ "^step:.": step }),
    );
}

/// `[distribution]`: how a coordinator spreads the load over its workers.
/// A run on one machine ignores it, but it is checked all the same.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Distribution {
    /// How the load is divided among the workers (of each zone).
    #[schemars(extend("default" = "even", "examples" = ["capacity"]))]
    pub strategy: Option<Strategy>,
    /// A percentage of the load per value of the workers' `zone` label;
    /// above 0, at most 100, adding up to 100.
    #[schemars(extend("x-default" = "no zones: any worker takes any part", "examples" = [{ "eu": 60, "us": 40 }]))]
    pub zones: Option<BTreeMap<String, Percent>>,
    /// What the coordinator does when a worker misses its heartbeats.
    #[schemars(extend("default" = "rebalance", "examples" = ["fail"]))]
    pub on_worker_lost: Option<OnWorkerLost>,
}

// ------------------------------------------------------------ value types

/// `"500ms"`, `"30s"`, `"1m30s"`, `"1.5s"`, `"2h"`: a number and a unit
/// (`ms`, `s`, `m`, `h`), repeated; at most a year.
#[derive(JsonSchema)]
#[schemars(title = "duration")]
pub struct Duration(pub String);

/// A duration (`"1s"`) or a range `"LOW..HIGH"` (`"1s..3s"`), picked
/// uniformly each time; `"0s"` for none.
#[derive(JsonSchema)]
#[schemars(title = "duration or range")]
pub struct ThinkTime(pub String);

/// Text sent as written, or a minijinja template when it holds `{{ … }}`:
/// `env.NAME`, `[vars]` keys, data columns (`FEEDER.COLUMN`), values
/// extracted by earlier steps, `vu`, `iteration`, and the functions
/// `random(lo, hi)`, `uuid()`, `timestamp()` and `timestamp_ms()`.
#[derive(JsonSchema)]
#[schemars(title = "template")]
pub struct Template(pub String);

/// Header names and their values (templates).
#[derive(JsonSchema)]
#[schemars(title = "table of templates")]
pub struct Headers(pub BTreeMap<String, Template>);

/// An expression `AGGREGATE OP VALUE`, such as `"p(95) < 500ms"`.
#[derive(JsonSchema)]
#[schemars(title = "expression")]
pub struct Expression(pub String);

/// Schema of an MCP step's `params`: JSON-RPC allows an object or an
/// array, and `plan` refuses anything else.
pub struct Params;

impl JsonSchema for Params {
    fn schema_name() -> Cow<'static, str> {
        "Params".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["object", "array"] })
    }
}

/// A status as text: a code (`"404"`), a class (`"2xx"`, any case) or a
/// range (`"200-204"`), as `plan` parses them (which also checks that a
/// range's ends are in order).
const STATUS_TEXT: &str =
    r"^\s*(\+?0*[1-5][0-9]{2}|[1-5][xX]{2}|\+?0*[1-5][0-9]{2}\s*-\s*\+?0*[1-5][0-9]{2})\s*$";

/// Schema of one `expect.status` entry, as `plan` parses it.
pub struct Status;

impl JsonSchema for Status {
    fn schema_name() -> Cow<'static, str> {
        "Status".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "title": "status",
            "description": "A status code (`200`), a class (`\"2xx\"`) or a range (`\"200-299\"`).",
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": STATUS_TEXT }
            ]
        })
    }
}

/// Schema of a zone's share of the load.
pub struct Percent;

impl JsonSchema for Percent {
    fn schema_name() -> Cow<'static, str> {
        "Percent".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "title": "percentage",
            "description": "A share of the load in percent: above 0, at most 100.",
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 100
        })
    }
}

/// One `T`, or an array of them: the reader takes a single string or
/// status where a list is usual.
pub struct OneOrMany<T>(PhantomData<T>);

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<T>();
        json_schema!({ "anyOf": [one, { "type": "array", "items": one }] })
    }
}

/// An array of tables (`[[flow]]`), or a single table (`[flow]`), which
/// the reader takes too. Not an `anyOf`, as for [`OneOrMany`]: a problem
/// deep in one step would then be reported against the whole array, so
/// the array is checked by `items` (where editors also look for
/// completions) and the single table by `then`.
pub struct Tables<T>(PhantomData<T>);

impl<T: JsonSchema> JsonSchema for Tables<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Tables_{}", T::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<T>();
        json_schema!({
            "items": one,
            "if": { "type": "object" },
            "then": one,
            "else": { "type": "array" }
        })
    }
}

// ------------------------------------------------------------ choices

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum HttpVersion {
    /// HTTP/2 when TLS ALPN offers it, else HTTP/1.1.
    Auto,
    /// HTTP/1.1 only.
    #[schemars(rename = "1.1")]
    Http11,
    /// HTTP/1.1 only (as `"1.1"`).
    #[schemars(rename = "1")]
    Http1,
    /// HTTP/2 only: by ALPN over TLS, by prior knowledge (h2c) over plain
    /// TCP.
    #[schemars(rename = "2")]
    Http2,
    /// HTTP/2 only (as `"2"`).
    #[schemars(rename = "2.0")]
    Http20,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Model {
    /// Concurrent users, each looping over its flow.
    Closed,
    /// Iterations arrive at a rate; latency counts from when each was due.
    Open,
}

/// The `pattern` choice: every pattern `schedule` knows, each with its
/// meaning, so a new pattern cannot be missing here.
pub struct Pattern;

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Pattern".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let values: Vec<serde_json::Value> = PatternKind::ALL
            .iter()
            .map(|kind| {
                serde_json::json!({
                    "type": "string",
                    "const": kind.name(),
                    "description": pattern_meaning(*kind),
                })
            })
            .collect();
        json_schema!({ "oneOf": values })
    }
}

fn pattern_meaning(kind: PatternKind) -> &'static str {
    match kind {
        PatternKind::Constant => "`users` or `rate`, for `duration` and/or `iterations`.",
        PatternKind::Ramp => "Up to `users` / `rate` over `ramp_up`, hold, down over `ramp_down`.",
        PatternKind::Stages => "Linear from target to target, as `stages` lists them.",
        PatternKind::Spike => "`base`, then `peak` for `spike_hold` from `spike_at`, then `base`.",
        PatternKind::Wave => "`base + amplitude·sin(2πt/period)`.",
        PatternKind::Random => {
            "A random walk between `min` and `max`, a new target every `change_every`."
        }
        PatternKind::Burst => {
            "`base`, plus `burst` for `burst_length` at the start of every `every`."
        }
    }
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Saturation {
    /// Wait for a slot; the wait counts in the latency.
    Wait,
    /// Count the iteration as dropped and do not run it.
    Drop,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum FeedMode {
    /// Rows in order, wrapping around.
    Sequential,
    /// A random row each time.
    Random,
    /// Each row once (split among distributed workers); users stop when
    /// the rows run out.
    Unique,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum StepKind {
    /// An HTTP request.
    Http,
    /// A JSON-RPC call over MCP Streamable HTTP, in the user's MCP session.
    Mcp,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "kebab-case")]
pub enum SessionScope {
    /// One session for the user's whole run.
    PerUser,
    /// A new session every iteration.
    PerIteration,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Strategy {
    /// The same share for every worker.
    Even,
    /// Shares in proportion to each worker's `--capacity`.
    Capacity,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum OnWorkerLost {
    /// The lost worker's share moves to the others.
    Rebalance,
    /// The others keep their shares; the load falls short.
    Continue,
    /// The run stops and fails.
    Fail,
}

#[cfg(test)]
mod tests;
