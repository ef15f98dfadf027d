//! The wire form of a [`Snapshot`]: what a worker sends its coordinator
//! every second, as JSON, and what the coordinator checks before merging.
//!
//! # What is in it
//!
//! A [`WireSnapshot`] carries the wire version ([`WIRE_VERSION`]), the
//! [`Fingerprint`] of the plan it was recorded against (16 hex digits), the
//! model (`open`), the snapshot's own counters (`iterations`, `started`,
//! `dropped`, `active_users`, and the MCP session counts `mcp_sessions`:
//! `opened`, `closed`, `abandoned`, `expired`) and one [`WireStep`] per
//! metric of the plan,
//! in the plan's order. A step carries its request, failure and byte
//! counters, its status codes, its failures per error kind (by name, as
//! reports spell them), its distinct failure messages with their counts and
//! first/last-seen seconds, and its latency histogram (plus the service-time
//! histogram in the open model, and the time-to-first-event histogram of a
//! row some of whose answers were event streams) in HdrHistogram's V2
//! binary form, base64 in the JSON. V2 is used uncompressed: its run-length and varint coding
//! already keeps a histogram to a few hundred bytes, and a compressed form
//! could inflate without bound on the coordinator. Merging a decoded
//! snapshot gives exactly what merging the original would, with one
//! exception: a failure message longer than [`MAX_MESSAGE_BYTES`] is cut to
//! that length on the way out (messages that become equal are counted
//! together).
//!
//! # What decoding checks
//!
//! A snapshot comes from the network, so [`WireSnapshot::from_json`] and
//! [`WireSnapshot::into_snapshot`] trust nothing and never panic; every
//! refusal is a [`WireError`] saying what is wrong and where:
//!
//! - size: the JSON text is at most what a snapshot of the plan can take
//!   ([`max_json_bytes`]), and each histogram at most [`MAX_HISTOGRAM_BYTES`],
//!   checked before anything is allocated for them; a histogram's declared
//!   payload length must be the bytes that follow, its precision and lowest
//!   value the recorders' own, its highest trackable value within twice the
//!   latency cap. So a hostile snapshot costs the coordinator no more memory
//!   than an honest snapshot of the same plan can;
//! - the version is this build's, the fingerprint and the model are the
//!   plan's, and there is one step per metric of the plan;
//! - histograms decode, hold exactly one value per request (the
//!   time-to-first-event histogram: at most one), and stay within the
//!   recorders' range (1 µs to the one-hour latency cap);
//! - counts agree: failures ≤ requests, status codes (each 100 to 999) count
//!   at most the requests, error kinds are known and add up to the failures,
//!   the messages of each kind add up to that kind's failures, no message
//!   is listed twice or seen last before it was seen first, and there are no
//!   more distinct messages than a recorder keeps;
//! - every counter is at most 2^48, so the coordinator's sums cannot
//!   overflow from any realistic number of snapshots.
//!
//! # Versions
//!
//! [`WIRE_VERSION`] is bumped on any change to this form: a field added,
//! removed, renamed or read differently, or a histogram setting changed. A
//! decoder refuses every version but its own (with an error naming both),
//! so a coordinator and workers of different builds fail loudly instead of
//! merging figures they read differently. The version is also part of the
//! fingerprint. Version 2 added the MCP session counts, the
//! time-to-first-event histogram and the failure kinds `jsonrpc`,
//! `tool_error` and `session`.

use std::collections::btree_map::{self, BTreeMap};
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::summary::McpSessions;
use super::{
    ErrorKind, FailureCount, Snapshot, StepRecorder, MAX_FAILURE_MESSAGES, MAX_LATENCY_US,
    OTHER_MESSAGES, SIGNIFICANT_DIGITS,
};

/// The version of this wire form; see the module doc for when it changes.
pub const WIRE_VERSION: u32 = 2;

/// Failure messages are cut to this many bytes on the wire.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// The largest histogram, in V2 bytes, a decoder accepts: the header plus
/// at most 9 bytes per bucket of a histogram that reaches
/// `HIGHEST_TRACKABLE_US` (a unit test checks the two agree).
pub const MAX_HISTOGRAM_BYTES: usize = V2_HEADER_BYTES + 9 * 24_576;

/// A histogram's base64 text at [`MAX_HISTOGRAM_BYTES`].
const MAX_HISTOGRAM_BASE64: usize = MAX_HISTOGRAM_BYTES.div_ceil(3) * 4;

/// Any counter in a snapshot; far beyond what a run records in a second,
/// and small enough that 65,536 snapshots at the limit still add up in u64.
const MAX_COUNTER: u64 = 1 << 48;

/// A recorder's histogram grows to the largest value it holds, which is at
/// most the latency cap (rounded up to its bucket when histograms merge).
const HIGHEST_TRACKABLE_US: u64 = 2 * MAX_LATENCY_US;

/// HdrHistogram's V2 (uncompressed) cookie and header length.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_HEADER_BYTES: usize = 40;

/// The failure-message entries a recorder can hold: the distinct messages
/// it keeps, plus one "other messages" entry per error kind.
const MAX_MESSAGE_ENTRIES: usize = MAX_FAILURE_MESSAGES + ErrorKind::ALL.len();

/// Status codes HTTP can carry.
const STATUS_CODES: std::ops::RangeInclusive<u16> = 100..=999;

/// Identifies a plan for merging: snapshots merge only when recorded
/// against plans with the same fingerprint.
///
/// It covers what decides how a snapshot's figures are read: the wire
/// version, the model (open or closed: whether service time is kept apart)
/// and the plan's metrics, names and methods, in order (a snapshot's steps
/// are matched to metrics by position). It also carries the metric count
/// and the model themselves, which decoding checks. Displayed as 16 hex
/// digits.
///
/// The hash is FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`) over: the bytes `loadctl-snapshot`, the wire version
/// as 4 bytes little-endian, one byte for the model (1 open, 0 closed),
/// the metric count as 8 bytes little-endian, then per metric its name,
/// and its method or a 0 byte when steps of that name use several, each
/// string as a 1 byte followed by its length (8 bytes little-endian) and
/// its UTF-8 bytes. It is the same on every machine and every build of a
/// wire version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    hash: u64,
    metrics: usize,
    open: bool,
}

impl Fingerprint {
    /// The fingerprint of a plan with these metrics (name and method, in
    /// the plan's order) and model.
    pub fn of<'a>(
        metrics: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
        open: bool,
    ) -> Fingerprint {
        let metrics: Vec<_> = metrics.into_iter().collect();
        let mut hash = Fnv1a::new();
        hash.write(b"loadctl-snapshot");
        hash.write(&WIRE_VERSION.to_le_bytes());
        hash.write(&[u8::from(open)]);
        hash.write(&(metrics.len() as u64).to_le_bytes());
        for (name, method) in &metrics {
            hash.write_str(Some(name));
            hash.write_str(*method);
        }
        Fingerprint {
            hash: hash.finish(),
            metrics: metrics.len(),
            open,
        }
    }

    /// How many steps a snapshot of this plan has.
    pub fn metrics(&self) -> usize {
        self.metrics
    }

    pub fn is_open(&self) -> bool {
        self.open
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.hash)
    }
}

/// FNV-1a, 64 bits: tiny, and fixed by its definition rather than by a
/// library or compiler version, so a fingerprint never changes under a
/// rebuild.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Length-prefixed, so ("ab", "c") and ("a", "bc") hash apart.
    fn write_str(&mut self, text: Option<&str>) {
        match text {
            Some(text) => {
                self.write(&[1]);
                self.write(&(text.len() as u64).to_le_bytes());
                self.write(text.as_bytes());
            }
            None => self.write(&[0]),
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A [`Snapshot`] as it travels; see the module doc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireSnapshot {
    pub version: u32,
    /// The plan's [`Fingerprint`], as 16 hex digits.
    pub fingerprint: String,
    pub open: bool,
    pub iterations: u64,
    pub started: u64,
    pub dropped: u64,
    pub active_users: u64,
    /// MCP sessions opened and ended.
    pub mcp_sessions: McpSessions,
    /// One per metric of the plan, in its order.
    pub steps: Vec<WireStep>,
}

/// One step's [`StepRecorder`] as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireStep {
    pub requests: u64,
    pub failures: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub body_bytes: u64,
    /// Latency in microseconds: HdrHistogram V2, base64.
    pub latency: String,
    /// Service time, in the open model only; same form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time: Option<String>,
    /// Time to the first event of event-stream answers, when the step had
    /// any; same form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_event: Option<String>,
    /// Responses per status code.
    #[serde(default)]
    pub status: BTreeMap<u16, u64>,
    /// Failures per error kind, by the kind's name.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// The distinct failure messages.
    #[serde(default)]
    pub messages: Vec<WireFailure>,
}

/// One distinct failure message of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireFailure {
    pub kind: String,
    pub message: String,
    pub count: u64,
    pub first_seen_s: u64,
    pub last_seen_s: u64,
}

/// Why a snapshot from the wire was refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("snapshot is {bytes} bytes, more than the {limit} a snapshot of this plan can take")]
    TooLarge { bytes: usize, limit: usize },
    #[error("not a snapshot: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "snapshot wire version {found} is not known (this build reads version {WIRE_VERSION} only)"
    )]
    UnknownVersion { found: u64 },
    #[error(
        "snapshot was recorded against another plan: its plan fingerprint is {found}, \
         this run's is {expected}"
    )]
    OtherPlan {
        found: String,
        expected: Fingerprint,
    },
    #[error(
        "snapshot was recorded in the {found} model, this run's plan uses the {expected} model"
    )]
    OtherModel {
        found: &'static str,
        expected: &'static str,
    },
    #[error("snapshot has {found} steps, this run's plan has {expected}")]
    StepCount { found: usize, expected: usize },
    #[error("snapshot's {field} is {value}, more than the limit of {MAX_COUNTER}")]
    CounterTooLarge { field: &'static str, value: u64 },
    #[error("snapshot step {step} (counting from 0): {problem}")]
    Step { step: usize, problem: StepError },
}

/// What is wrong with one step of a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{field} is {value}, more than the limit of {MAX_COUNTER}")]
    CounterTooLarge { field: &'static str, value: u64 },
    #[error("{failures} failures out of {requests} requests")]
    FailuresExceedRequests { failures: u64, requests: u64 },
    #[error("{which} histogram: {problem}")]
    Histogram {
        which: &'static str,
        problem: String,
    },
    #[error("{which} histogram holds {values} values for {requests} requests")]
    HistogramCount {
        which: &'static str,
        values: u64,
        requests: u64,
    },
    #[error("the service-time histogram is missing; the open model keeps one")]
    ServiceTimeMissing,
    #[error("a service-time histogram came with the closed model, which keeps none")]
    ServiceTimeUnexpected,
    #[error("status code {code} is not between 100 and 999")]
    StatusCode { code: u16 },
    #[error("status codes count {counted} responses, more than the {requests} requests")]
    StatusExceedsRequests { counted: u64, requests: u64 },
    #[error("error kind {name:?} is not known (known: {})", known_kinds())]
    UnknownErrorKind { name: String },
    #[error("error kinds count {counted} failures, the step has {failures}")]
    ErrorKindsSum { counted: u64, failures: u64 },
    #[error("{what} has a count of 0; only what happened is listed")]
    ZeroCount { what: String },
    #[error("{found} failure-message entries, more than the {limit} a step keeps")]
    TooManyMessages { found: usize, limit: usize },
    #[error("a failure message is {bytes} bytes, more than {MAX_MESSAGE_BYTES}")]
    MessageTooLong { bytes: usize },
    #[error("failure message {message:?} of kind {kind} is listed twice")]
    DuplicateMessage { kind: &'static str, message: String },
    #[error(
        "failure message {message:?} was first seen at {first_s} s, after it was last seen at {last_s} s"
    )]
    SeenOrder {
        message: String,
        first_s: u64,
        last_s: u64,
    },
    #[error(
        "failure messages of kind {kind} count {counted}, the step has {failures} such failures"
    )]
    MessageCounts {
        kind: &'static str,
        counted: u64,
        failures: u64,
    },
}

fn known_kinds() -> String {
    let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    names.join(", ")
}

/// The largest JSON text a snapshot of a plan with `metrics` steps can be:
/// three histograms per step at their limit, every message entry at its
/// limit even if each byte were escaped (`\u00XX`), every status code.
pub fn max_json_bytes(metrics: usize) -> usize {
    const PER_MESSAGE: usize = 6 * MAX_MESSAGE_BYTES + 256;
    const PER_STEP: usize = 3 * MAX_HISTOGRAM_BASE64
        + MAX_MESSAGE_ENTRIES * PER_MESSAGE
        + 900 * 32
        + ErrorKind::ALL.len() * 40
        + 1024;
    metrics.saturating_mul(PER_STEP).saturating_add(4096)
}

impl Snapshot {
    /// This snapshot's wire form, marked with the fingerprint of the plan
    /// it was recorded against.
    pub fn to_wire(&self, fingerprint: &Fingerprint) -> WireSnapshot {
        let mut serializer = V2Serializer::new();
        WireSnapshot {
            version: WIRE_VERSION,
            fingerprint: fingerprint.to_string(),
            open: self.open,
            iterations: self.iterations,
            started: self.started,
            dropped: self.dropped,
            active_users: self.active_users,
            mcp_sessions: self.mcp_sessions,
            steps: self
                .steps
                .iter()
                .map(|step| step.to_wire(&mut serializer))
                .collect(),
        }
    }
}

impl StepRecorder {
    fn to_wire(&self, serializer: &mut V2Serializer) -> WireStep {
        WireStep {
            requests: self.requests,
            failures: self.failures,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            body_bytes: self.body_bytes,
            latency: encode_histogram(serializer, &self.latency),
            service_time: self
                .service
                .as_ref()
                .map(|h| encode_histogram(serializer, h)),
            first_event: self
                .first_event
                .as_ref()
                .map(|h| encode_histogram(serializer, h)),
            status: self.status.clone(),
            errors: ErrorKind::ALL
                .iter()
                .filter(|k| self.errors[**k as usize] > 0)
                .map(|k| (k.as_str().to_string(), self.errors[*k as usize]))
                .collect(),
            messages: wire_messages(&self.messages),
        }
    }
}

fn encode_histogram(serializer: &mut V2Serializer, h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    serializer
        .serialize(h, &mut bytes)
        .expect("writing to a Vec cannot fail, and no bucket count reaches i64::MAX");
    BASE64.encode(bytes)
}

/// The messages in a stable order (kind, then text), each cut to
/// [`MAX_MESSAGE_BYTES`]; messages that become equal are counted together.
fn wire_messages(messages: &BTreeMap<(ErrorKind, String), FailureCount>) -> Vec<WireFailure> {
    let mut cut: BTreeMap<(ErrorKind, &str), FailureCount> = BTreeMap::new();
    for ((kind, message), seen) in messages {
        match cut.entry((*kind, truncate(message, MAX_MESSAGE_BYTES))) {
            btree_map::Entry::Vacant(slot) => {
                slot.insert(seen.clone());
            }
            btree_map::Entry::Occupied(mut slot) => {
                let mine = slot.get_mut();
                mine.count += seen.count;
                mine.first_seen_s = mine.first_seen_s.min(seen.first_seen_s);
                mine.last_seen_s = mine.last_seen_s.max(seen.last_seen_s);
            }
        }
    }
    cut.into_iter()
        .map(|((kind, message), seen)| WireFailure {
            kind: kind.as_str().to_string(),
            message: message.to_string(),
            count: seen.count,
            first_seen_s: seen.first_seen_s,
            last_seen_s: seen.last_seen_s,
        })
        .collect()
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Text from the wire, shortened for an error message.
fn excerpt(text: &str) -> String {
    const SHOWN: usize = 60;
    let cut = truncate(text, SHOWN);
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut.to_string()
    }
}

impl WireSnapshot {
    /// The JSON text that travels.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a wire snapshot has only string and integer map keys")
    }

    /// Parses JSON text from the wire: refuses text longer than a snapshot
    /// of the expected plan can be, before parsing it, and a version this
    /// build does not know, before reading the rest. The rest is checked by
    /// [`WireSnapshot::into_snapshot`].
    pub fn from_json(text: &[u8], expected: &Fingerprint) -> Result<WireSnapshot, WireError> {
        let limit = max_json_bytes(expected.metrics);
        if text.len() > limit {
            return Err(WireError::TooLarge {
                bytes: text.len(),
                limit,
            });
        }
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u64,
        }
        let VersionOnly { version } = serde_json::from_slice(text)?;
        if version != u64::from(WIRE_VERSION) {
            return Err(WireError::UnknownVersion { found: version });
        }
        Ok(serde_json::from_slice(text)?)
    }

    /// The snapshot, once everything in it is checked against the plan
    /// with the `expected` fingerprint (see the module doc for the list).
    pub fn into_snapshot(self, expected: &Fingerprint) -> Result<Snapshot, WireError> {
        if self.version != WIRE_VERSION {
            return Err(WireError::UnknownVersion {
                found: self.version.into(),
            });
        }
        if self.fingerprint != expected.to_string() {
            return Err(WireError::OtherPlan {
                found: excerpt(&self.fingerprint),
                expected: *expected,
            });
        }
        let model = |open: bool| if open { "open" } else { "closed" };
        if self.open != expected.open {
            return Err(WireError::OtherModel {
                found: model(self.open),
                expected: model(expected.open),
            });
        }
        if self.steps.len() != expected.metrics {
            return Err(WireError::StepCount {
                found: self.steps.len(),
                expected: expected.metrics,
            });
        }
        if let Some((field, value)) = beyond_limit([
            ("iterations", self.iterations),
            ("started", self.started),
            ("dropped", self.dropped),
            ("active_users", self.active_users),
            ("mcp_sessions.opened", self.mcp_sessions.opened),
            ("mcp_sessions.closed", self.mcp_sessions.closed),
            ("mcp_sessions.abandoned", self.mcp_sessions.abandoned),
            ("mcp_sessions.expired", self.mcp_sessions.expired),
        ]) {
            return Err(WireError::CounterTooLarge { field, value });
        }
        let mut snapshot = Snapshot::new(expected.metrics, expected.open);
        snapshot.iterations = self.iterations;
        snapshot.started = self.started;
        snapshot.dropped = self.dropped;
        snapshot.active_users = self.active_users;
        snapshot.mcp_sessions = self.mcp_sessions;
        let mut deserializer = Deserializer::new();
        for (step, (wire, recorder)) in self.steps.into_iter().zip(&mut snapshot.steps).enumerate()
        {
            wire.decode_into(recorder, expected.open, &mut deserializer)
                .map_err(|problem| WireError::Step { step, problem })?;
        }
        Ok(snapshot)
    }
}

/// The first named counter above [`MAX_COUNTER`], if any.
fn beyond_limit<const N: usize>(counters: [(&'static str, u64); N]) -> Option<(&'static str, u64)> {
    counters.into_iter().find(|(_, value)| *value > MAX_COUNTER)
}

impl WireStep {
    fn decode_into(
        self,
        recorder: &mut StepRecorder,
        open: bool,
        deserializer: &mut Deserializer,
    ) -> Result<(), StepError> {
        if let Some((field, value)) = beyond_limit([
            ("requests", self.requests),
            ("failures", self.failures),
            ("bytes_in", self.bytes_in),
            ("bytes_out", self.bytes_out),
            ("body_bytes", self.body_bytes),
        ]) {
            return Err(StepError::CounterTooLarge { field, value });
        }
        if self.failures > self.requests {
            return Err(StepError::FailuresExceedRequests {
                failures: self.failures,
                requests: self.requests,
            });
        }
        let histogram = |deserializer: &mut Deserializer, which, text: &str| {
            decode_histogram(deserializer, text)
                .map_err(|problem| StepError::Histogram { which, problem })
                .and_then(|h| match h.len() {
                    values if values == self.requests => Ok(h),
                    values => Err(StepError::HistogramCount {
                        which,
                        values,
                        requests: self.requests,
                    }),
                })
        };
        recorder.latency = histogram(deserializer, "latency", &self.latency)?;
        recorder.service = match (open, &self.service_time) {
            (true, Some(text)) => Some(histogram(deserializer, "service-time", text)?),
            (false, None) => None,
            (true, None) => return Err(StepError::ServiceTimeMissing),
            (false, Some(_)) => return Err(StepError::ServiceTimeUnexpected),
        };
        recorder.first_event = match &self.first_event {
            Some(text) => {
                let which = "first-event";
                let h = decode_histogram(deserializer, text)
                    .map_err(|problem| StepError::Histogram { which, problem })?;
                if h.len() > self.requests {
                    return Err(StepError::HistogramCount {
                        which,
                        values: h.len(),
                        requests: self.requests,
                    });
                }
                Some(h)
            }
            None => None,
        };
        recorder.status = checked_status(self.status, self.requests)?;
        recorder.errors = checked_errors(&self.errors, self.failures)?;
        recorder.messages = checked_messages(self.messages, &recorder.errors)?;
        recorder.requests = self.requests;
        recorder.failures = self.failures;
        recorder.bytes_in = self.bytes_in;
        recorder.bytes_out = self.bytes_out;
        recorder.body_bytes = self.body_bytes;
        Ok(())
    }
}

/// Decodes a base64 V2 histogram, checking its size and header before
/// anything is allocated for it.
fn decode_histogram(deserializer: &mut Deserializer, text: &str) -> Result<Histogram<u64>, String> {
    if text.len() > MAX_HISTOGRAM_BASE64 {
        return Err(format!(
            "{} base64 characters, more than a histogram of at most {MAX_HISTOGRAM_BYTES} bytes takes",
            text.len()
        ));
    }
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))?;
    check_v2_header(&bytes)?;
    let mut h: Histogram<u64> = deserializer
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 histogram: {e}"))?;
    // Decoded histograms have fixed bounds; merging needs them to grow.
    h.auto(true);
    if !h.is_empty() {
        if h.count_at(0) > 0 {
            return Err("holds a latency of 0 µs; recorders count from 1 µs".to_string());
        }
        let max = h.lowest_equivalent(h.max());
        if max > MAX_LATENCY_US {
            return Err(format!(
                "holds a latency of {max} µs, beyond the recorders' cap of {MAX_LATENCY_US} µs"
            ));
        }
    }
    Ok(h)
}

/// Checks what the V2 header declares against what the recorders write,
/// so a declared size can never make the decoder allocate more than an
/// honest histogram needs.
fn check_v2_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() > MAX_HISTOGRAM_BYTES {
        return Err(format!(
            "{} bytes, more than the {MAX_HISTOGRAM_BYTES} a recorder's histogram can take",
            bytes.len()
        ));
    }
    let Some((header, payload)) = bytes.split_first_chunk::<V2_HEADER_BYTES>() else {
        return Err(format!(
            "{} bytes, shorter than the {V2_HEADER_BYTES}-byte V2 header",
            bytes.len()
        ));
    };
    let u32_at = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    if u32_at(0) != V2_COOKIE {
        return Err(format!(
            "starts with {:#010x}, not the uncompressed V2 cookie {V2_COOKIE:#010x}",
            u32_at(0)
        ));
    }
    let declared = u32_at(4) as usize;
    if declared != payload.len() {
        return Err(format!(
            "declares {declared} payload bytes but {} follow",
            payload.len()
        ));
    }
    let digits = u32_at(12);
    if digits != u32::from(SIGNIFICANT_DIGITS) {
        return Err(format!(
            "has {digits} significant digits, recorders use {SIGNIFICANT_DIGITS}"
        ));
    }
    let lowest = u64_at(16);
    if lowest != 1 {
        return Err(format!(
            "has a lowest discernible value of {lowest}, recorders use 1"
        ));
    }
    let highest = u64_at(24);
    if !(2..=HIGHEST_TRACKABLE_US).contains(&highest) {
        return Err(format!(
            "has a highest trackable value of {highest}, outside 2..={HIGHEST_TRACKABLE_US}"
        ));
    }
    if has_unnegatable_run(payload) {
        return Err("has a zero run of -2^63 entries".to_string());
    }
    Ok(())
}

/// Whether the payload holds the one varint whose zig-zag value is
/// `i64::MIN`: the crate's decoder negates every zero run, which overflows
/// (a panic in a debug build) for that value alone. Varints are
/// LEB128-64b9B: 7 bits a byte with a continuation bit, the 9th byte whole.
fn has_unnegatable_run(payload: &[u8]) -> bool {
    let mut bytes = payload.iter();
    loop {
        let mut value = 0u64;
        for position in 0..9 {
            let Some(&b) = bytes.next() else {
                return false;
            };
            if position == 8 {
                value |= u64::from(b) << 56;
                break;
            }
            value |= u64::from(b & 0x7f) << (7 * position);
            if b & 0x80 == 0 {
                break;
            }
        }
        if value == u64::MAX {
            return true;
        }
    }
}

fn checked_status(
    status: BTreeMap<u16, u64>,
    requests: u64,
) -> Result<BTreeMap<u16, u64>, StepError> {
    let mut counted = 0u64;
    for (code, n) in &status {
        if !STATUS_CODES.contains(code) {
            return Err(StepError::StatusCode { code: *code });
        }
        if *n == 0 {
            return Err(StepError::ZeroCount {
                what: format!("status code {code}"),
            });
        }
        counted = counted.saturating_add(*n);
    }
    if counted > requests {
        return Err(StepError::StatusExceedsRequests { counted, requests });
    }
    Ok(status)
}

fn error_kind(name: &str) -> Result<ErrorKind, StepError> {
    ErrorKind::ALL
        .into_iter()
        .find(|k| k.as_str() == name)
        .ok_or_else(|| StepError::UnknownErrorKind {
            name: excerpt(name),
        })
}

fn checked_errors(
    errors: &BTreeMap<String, u64>,
    failures: u64,
) -> Result<[u64; ErrorKind::ALL.len()], StepError> {
    let mut by_kind = [0; ErrorKind::ALL.len()];
    let mut counted = 0u64;
    for (name, n) in errors {
        let kind = error_kind(name)?;
        if *n == 0 {
            return Err(StepError::ZeroCount {
                what: format!("error kind {}", kind.as_str()),
            });
        }
        by_kind[kind as usize] = *n;
        counted = counted.saturating_add(*n);
    }
    if counted != failures {
        return Err(StepError::ErrorKindsSum { counted, failures });
    }
    Ok(by_kind)
}

fn checked_messages(
    messages: Vec<WireFailure>,
    errors: &[u64; ErrorKind::ALL.len()],
) -> Result<BTreeMap<(ErrorKind, String), FailureCount>, StepError> {
    if messages.len() > MAX_MESSAGE_ENTRIES {
        return Err(StepError::TooManyMessages {
            found: messages.len(),
            limit: MAX_MESSAGE_ENTRIES,
        });
    }
    let distinct = messages
        .iter()
        .filter(|m| m.message != OTHER_MESSAGES)
        .count();
    if distinct > MAX_FAILURE_MESSAGES {
        return Err(StepError::TooManyMessages {
            found: distinct,
            limit: MAX_FAILURE_MESSAGES,
        });
    }
    let mut counted = [0u64; ErrorKind::ALL.len()];
    let mut kept = BTreeMap::new();
    for m in messages {
        let kind = error_kind(&m.kind)?;
        if m.message.len() > MAX_MESSAGE_BYTES {
            return Err(StepError::MessageTooLong {
                bytes: m.message.len(),
            });
        }
        if m.count == 0 {
            return Err(StepError::ZeroCount {
                what: format!("failure message {:?}", excerpt(&m.message)),
            });
        }
        if m.first_seen_s > m.last_seen_s {
            return Err(StepError::SeenOrder {
                message: excerpt(&m.message),
                first_s: m.first_seen_s,
                last_s: m.last_seen_s,
            });
        }
        counted[kind as usize] = counted[kind as usize].saturating_add(m.count);
        let seen = FailureCount {
            count: m.count,
            first_seen_s: m.first_seen_s,
            last_seen_s: m.last_seen_s,
        };
        match kept.entry((kind, m.message)) {
            btree_map::Entry::Occupied(twice) => {
                return Err(StepError::DuplicateMessage {
                    kind: kind.as_str(),
                    message: excerpt(&twice.key().1),
                })
            }
            btree_map::Entry::Vacant(slot) => {
                slot.insert(seen);
            }
        }
    }
    for kind in ErrorKind::ALL {
        let (counted, failures) = (counted[kind as usize], errors[kind as usize]);
        if counted != failures {
            return Err(StepError::MessageCounts {
                kind: kind.as_str(),
                counted,
                failures,
            });
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::V2DeflateSerializer;

    use super::super::Sample;
    use super::*;

    /// A failure of `kind` with `message`, if any.
    type Failed<'a> = Option<(ErrorKind, &'a str)>;

    /// A snapshot of two steps holding these requests (step, latency,
    /// failure), each recorded at second 7.
    fn recorded(open: bool, requests: &[(usize, u64, Failed)]) -> Snapshot {
        let mut snapshot = Snapshot::new(2, open);
        for (metric, latency_us, failure) in requests {
            let request = Sample {
                metric: *metric,
                latency_us: *latency_us,
                service_us: latency_us / 2,
                status: Some(if failure.is_some() { 503 } else { 200 }),
                failure: failure.map(|(kind, text)| (kind, text.to_string())),
                bytes_in: 100,
                bytes_out: 40,
                body_bytes: 60,
            };
            snapshot.record(&request, 7);
        }
        snapshot.iterations = 3;
        snapshot.started = 4;
        snapshot
    }

    fn plan(open: bool) -> Fingerprint {
        Fingerprint::of([("list", Some("GET")), ("add", Some("POST"))], open)
    }

    fn some_snapshot(open: bool) -> Snapshot {
        recorded(
            open,
            &[
                (0, 1_200, None),
                (
                    0,
                    90_000,
                    Some((ErrorKind::Status, "status 503, expected 200")),
                ),
                (1, MAX_LATENCY_US, Some((ErrorKind::Timeout, "no response"))),
            ],
        )
    }

    /// Sends `wire` through JSON text and returns why it was refused.
    fn refusal(wire: &WireSnapshot, expected: &Fingerprint) -> String {
        let text = wire.to_json();
        match WireSnapshot::from_json(&text, expected).and_then(|w| w.into_snapshot(expected)) {
            Ok(_) => panic!("accepted: {}", String::from_utf8_lossy(&text)),
            Err(e) => e.to_string(),
        }
    }

    fn histogram_bytes(text: &str) -> Vec<u8> {
        BASE64.decode(text).unwrap()
    }

    fn with_latency(bytes: &[u8]) -> WireSnapshot {
        let mut wire = some_snapshot(false).to_wire(&plan(false));
        wire.steps[0].latency = BASE64.encode(bytes);
        wire
    }

    #[test]
    fn a_snapshot_survives_the_wire() {
        for open in [false, true] {
            let mut original = some_snapshot(open);
            original.mcp_sessions = McpSessions {
                opened: 4,
                closed: 2,
                abandoned: 1,
                expired: 1,
            };
            original.record_first_event(0, 700);
            let text = original.to_wire(&plan(open)).to_json();
            let decoded = WireSnapshot::from_json(&text, &plan(open))
                .and_then(|w| w.into_snapshot(&plan(open)))
                .unwrap();
            assert_eq!(decoded.iterations, 3);
            assert_eq!(decoded.started, 4);
            assert_eq!(decoded.mcp_sessions, original.mcp_sessions);
            let first_event = decoded.steps[0].stats("s", None, 1.0, &[]).first_event_ms;
            assert_eq!(first_event.map(|l| l.get("max")), Some(0.7));
            assert_eq!(
                decoded.steps[1].stats("s", None, 1.0, &[]).first_event_ms,
                None
            );
            for (a, b) in original.steps.iter().zip(&decoded.steps) {
                assert_eq!(a.stats("s", None, 1.0, &[]), b.stats("s", None, 1.0, &[]));
                assert_eq!(a.histogram(), b.histogram());
                assert_eq!(a.service_histogram(), b.service_histogram());
                assert_eq!(a.messages.len(), b.messages.len());
            }
        }
    }

    #[test]
    fn more_first_events_than_requests_are_refused() {
        let mut snapshot = some_snapshot(false);
        for _ in 0..3 {
            snapshot.record_first_event(1, 500);
        }
        let error = refusal(&snapshot.to_wire(&plan(false)), &plan(false));
        assert!(
            error.contains("step 1") && error.contains("first-event histogram holds 3 values"),
            "{error}"
        );
    }

    #[test]
    fn the_fingerprint_is_stable() {
        // FNV-1a's published value for "a".
        let mut a = Fnv1a::new();
        a.write(b"a");
        assert_eq!(a.finish(), 0xaf63_dc4c_8601_ec8c);
        // Pinned (and computed apart from this code, by the recipe in
        // `Fingerprint`'s doc): a change here means snapshots of old and
        // new builds no longer merge, which needs a new WIRE_VERSION.
        assert_eq!(plan(false).to_string(), "13d2910895e33d9e");
        assert_eq!(plan(true).to_string(), "92b55b615d78c461");
        let none = Fingerprint::of([("list", None), ("add", Some("POST"))], false);
        let swapped = Fingerprint::of([("add", Some("POST")), ("list", Some("GET"))], false);
        let joined = Fingerprint::of([("lis", Some("tGET")), ("add", Some("POST"))], false);
        for other in [none, swapped, joined] {
            assert_ne!(other.to_string(), plan(false).to_string());
        }
    }

    #[test]
    fn a_snapshot_of_another_plan_is_refused() {
        let other = Fingerprint::of([("list", Some("GET")), ("delete", Some("DELETE"))], false);
        let wire = some_snapshot(false).to_wire(&other);
        let error = refusal(&wire, &plan(false));
        assert!(error.contains("recorded against another plan"), "{error}");
        assert!(error.contains(&other.to_string()), "{error}");
        assert!(error.contains(&plan(false).to_string()), "{error}");
    }

    #[test]
    fn another_model_or_step_count_is_refused() {
        let mut wire = some_snapshot(false).to_wire(&plan(false));
        wire.open = true;
        let error = refusal(&wire, &plan(false));
        assert!(error.contains("open model"), "{error}");

        let mut wire = some_snapshot(false).to_wire(&plan(false));
        wire.steps.pop();
        let error = refusal(&wire, &plan(false));
        assert!(error.contains("1 steps, this run's plan has 2"), "{error}");

        let mut wire = some_snapshot(true).to_wire(&plan(true));
        wire.steps[1].service_time = None;
        let error = refusal(&wire, &plan(true));
        assert!(error.contains("step 1") && error.contains("service-time histogram is missing"));
    }

    #[test]
    fn an_unknown_version_is_refused_before_anything_else() {
        let wire = some_snapshot(false).to_wire(&plan(false));
        let mut json: serde_json::Value = serde_json::from_slice(&wire.to_json()).unwrap();
        json["version"] = 3.into();
        json["a_field_of_version_3"] = true.into();
        let text = serde_json::to_vec(&json).unwrap();
        let error = WireSnapshot::from_json(&text, &plan(false)).unwrap_err();
        assert!(
            matches!(error, WireError::UnknownVersion { found: 3 }),
            "{error}"
        );
        assert!(error.to_string().contains("version 3 is not known"));
    }

    #[test]
    fn garbage_is_refused() {
        let expected = plan(false);
        for text in [
            &b""[..],
            b"null",
            b"{\"version\": 1}",
            b"[1, 2, 3]",
            b"{\"version\": -1}",
            b"\xff\xfe",
        ] {
            assert!(WireSnapshot::from_json(text, &expected).is_err());
        }
        let too_large = vec![b' '; max_json_bytes(2) + 1];
        let error = WireSnapshot::from_json(&too_large, &expected).unwrap_err();
        assert!(matches!(error, WireError::TooLarge { .. }), "{error}");
    }

    #[test]
    fn bad_histograms_are_refused() {
        let good = histogram_bytes(&some_snapshot(false).to_wire(&plan(false)).steps[0].latency);
        let patched = |at: usize, bytes: &[u8]| {
            let mut patched = good.clone();
            patched[at..at + bytes.len()].copy_from_slice(bytes);
            patched
        };
        let truncated = good[..good.len() - 1].to_vec();
        let mut declared_short = truncated.clone();
        declared_short[4..8].copy_from_slice(&((truncated.len() - 40) as u32).to_be_bytes());
        let mut compressed = Vec::new();
        let h = some_snapshot(false).steps[0].histogram().clone();
        V2DeflateSerializer::new()
            .serialize(&h, &mut compressed)
            .unwrap();
        let cases: [(Vec<u8>, &str); 9] = [
            (truncated, "payload bytes but"),
            (
                declared_short,
                "step 0 (counting from 0): latency histogram",
            ),
            (good[..20].to_vec(), "shorter than the 40-byte V2 header"),
            (
                patched(4, &u32::MAX.to_be_bytes()),
                "declares 4294967295 payload bytes",
            ),
            (
                patched(24, &u64::MAX.to_be_bytes()),
                "highest trackable value",
            ),
            (patched(12, &5u32.to_be_bytes()), "5 significant digits"),
            (compressed, "not the uncompressed V2 cookie"),
            (
                vec![0; MAX_HISTOGRAM_BYTES + 1],
                "a recorder's histogram can take",
            ),
            (vec![0; MAX_HISTOGRAM_BYTES + 3], "base64 characters"),
        ];
        for (bytes, expected) in cases {
            let error = refusal(&with_latency(&bytes), &plan(false));
            assert!(error.contains(expected), "{error}\nexpected: {expected}");
        }
        let mut wire = with_latency(&good);
        wire.steps[0].latency = "not base64!".to_string();
        assert!(refusal(&wire, &plan(false)).contains("latency histogram: not base64"));
    }

    /// The one varint the HdrHistogram decoder cannot negate (a zero run of
    /// -2^63) would overflow inside the crate; it is refused first.
    #[test]
    fn an_unnegatable_zero_run_is_refused_without_panic() {
        let good = histogram_bytes(&some_snapshot(false).to_wire(&plan(false)).steps[0].latency);
        let mut hostile = good[..V2_HEADER_BYTES].to_vec();
        hostile.extend([0xff; 9]);
        hostile[4..8].copy_from_slice(&9u32.to_be_bytes());
        let error = refusal(&with_latency(&hostile), &plan(false));
        assert!(error.contains("zero run"), "{error}");
    }

    #[test]
    fn a_latency_beyond_the_cap_is_refused() {
        let mut h = Histogram::<u64>::new_with_bounds(1, HIGHEST_TRACKABLE_US, 3).unwrap();
        h.record(2 * MAX_LATENCY_US).unwrap();
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(&h, &mut bytes).unwrap();
        let mut wire = with_latency(&bytes);
        wire.steps[0].requests = 1;
        wire.steps[0].failures = 0;
        wire.steps[0].errors.clear();
        wire.steps[0].messages.clear();
        wire.steps[0].status.clear();
        let error = refusal(&wire, &plan(false));
        assert!(error.contains("beyond the recorders' cap"), "{error}");
    }

    #[test]
    fn inconsistent_counts_are_refused() {
        type Spoil = fn(&mut WireStep);
        let cases: [(Spoil, &str); 10] = [
            (
                |s| s.requests += 1,
                "histogram holds 2 values for 3 requests",
            ),
            (|s| s.failures = 5, "5 failures out of 2 requests"),
            (|s| s.requests = u64::MAX, "more than the limit"),
            (
                |s| *s.errors.get_mut("status").unwrap() += 1,
                "error kinds count 2 failures",
            ),
            (
                |s| {
                    s.errors.insert("gremlins".to_string(), 1);
                },
                "error kind \"gremlins\" is not known (known: refused,",
            ),
            (
                |s| s.messages[0].count += 1,
                "failure messages of kind status count 2",
            ),
            (
                |s| s.messages[0].first_seen_s = 8,
                "first seen at 8 s, after it was last seen at 7 s",
            ),
            (|s| s.messages.push(s.messages[0].clone()), "listed twice"),
            (
                |s| {
                    s.status.insert(42, 1);
                },
                "status code 42 is not between 100 and 999",
            ),
            (
                |s| {
                    s.status.insert(204, 5);
                },
                "status codes count 7 responses, more than the 2 requests",
            ),
        ];
        for (spoil, expected) in cases {
            let mut wire = some_snapshot(false).to_wire(&plan(false));
            spoil(&mut wire.steps[0]);
            let error = refusal(&wire, &plan(false));
            assert!(error.contains(expected), "{error}\nexpected: {expected}");
        }
    }

    #[test]
    fn message_entries_are_bounded() {
        let mut wire = some_snapshot(false).to_wire(&plan(false));
        let step = &mut wire.steps[0];
        step.messages = (0..=MAX_FAILURE_MESSAGES)
            .map(|i| WireFailure {
                kind: "status".to_string(),
                message: format!("message {i}"),
                count: 1,
                first_seen_s: 0,
                last_seen_s: 0,
            })
            .collect();
        let error = refusal(&wire, &plan(false));
        assert!(
            error.contains("65 failure-message entries, more than the 64"),
            "{error}"
        );

        let mut wire = some_snapshot(false).to_wire(&plan(false));
        wire.steps[0].messages[0].message = "x".repeat(MAX_MESSAGE_BYTES + 1);
        let error = refusal(&wire, &plan(false));
        assert!(error.contains("1025 bytes, more than 1024"), "{error}");
    }

    #[test]
    fn long_messages_are_cut_and_counted_together() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let longer = format!("{long}!");
        let snapshot = recorded(
            false,
            &[
                (0, 10, Some((ErrorKind::Check, &long))),
                (0, 10, Some((ErrorKind::Check, &longer))),
            ],
        );
        let wire = snapshot.to_wire(&plan(false));
        let messages = &wire.steps[0].messages;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].message.len(), MAX_MESSAGE_BYTES);
        assert_eq!(messages[0].count, 2);
        let decoded = wire.into_snapshot(&plan(false)).unwrap();
        assert_eq!(decoded.steps[0].failures(), 2);
    }

    #[test]
    fn the_largest_histogram_fits_the_limit() {
        let widest = Histogram::<u64>::new_with_bounds(1, HIGHEST_TRACKABLE_US, 3).unwrap();
        assert!(V2_HEADER_BYTES + 9 * widest.distinct_values() <= MAX_HISTOGRAM_BYTES);
        // A recorder at the latency cap, merged as the collector does,
        // stays within what decoding accepts.
        let mut merged = some_snapshot(true);
        merged.merge(&some_snapshot(true));
        let mut total = Snapshot::new(2, true);
        total.merge(&merged);
        let wire = total.to_wire(&plan(true));
        let decoded = WireSnapshot::from_json(&wire.to_json(), &plan(true))
            .and_then(|w| w.into_snapshot(&plan(true)))
            .unwrap();
        assert_eq!(decoded.total().requests(), 6);
    }
}
