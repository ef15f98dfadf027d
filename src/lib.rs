//! loadctl: load-test HTTP services from declarative TOML scenarios.
//!
//! # Layout
//!
//! A run flows through these modules, each owning one step:
//!
//! ```text
//! scenario.toml ─scenario::load─▶ Scenario   what the user wrote, with spans
//!   + flags, LOADCTL_*, plan::Inputs ─plan::compile─▶ Plan   validated, templates compiled
//! Plan + runner::Share ─runner::start─▶ RunHandle   progress, set_share, stop, wait
//!    runner::shard     generator threads, one current-thread runtime each
//!    runner::closed    which users run now      } when: schedule::Shape,
//!    runner::open      which arrivals are due   }  schedule::Arrivals
//!    engine::{prepare, send, judge}  one step on the user's connection (how)
//!    metrics::Snapshot records it, lock-free, per thread (metrics::wire
//!                      is its form on the network, for remote workers)
//!  ─runner::collector─▶ RunSummary   merged from every source; the one result contract
//! RunSummary ─report::*─▶ terminal table, summary.json, Locust CSV,
//!                          report.html, junit.xml; `loadctl report` re-renders;
//!                          store::save keeps a run under its id
//! ```
//!
//! - [`diag`]: problems with their location, for `validate` and `run`.
//! - [`scenario`]: the only module that knows TOML.
//! - [`plan`]: the only module that judges meaning; thresholds and templates.
//!   It reads environment variables and files only through the
//!   [`plan::Inputs`] its caller passes in ([`plan::inputs`]: the CLI's whole
//!   environment and scenario folder, an agent's allowlist and confined
//!   folder, a worker's files in memory).
//! - [`validate`]: a scenario checked without running it: the plan, or
//!   every problem with line and column, serializable; for `validate`,
//!   `run` and the MCP tool alike.
//! - [`preset`]: the starter scenarios and splicing values into them, for
//!   `init` and the MCP tool `create_scenario`.
//! - [`schedule`]: every load pattern as one list of linear stages, and the
//!   open model's arrival instants; pure time arithmetic, no HTTP.
//! - [`runner`]: one run end to end, the single entry point for every front
//!   end ([`runner::start`] → [`runner::RunHandle`]); runs this process's
//!   [`runner::Share`] of the load from an agreed start, applies the
//!   schedule (closed: user count, open: arrivals), and stops on the
//!   pattern's end, the iteration budget or a stop request; its collector
//!   merges snapshots from sources that join and leave.
//! - [`engine`]: *how* one step is sent (hyper, rustls), checked, extracted;
//!   one file per step kind (`http`, `mcp`: JSON-RPC over MCP Streamable
//!   HTTP with a session per user) over shared connections.
//! - [`metrics`]: HdrHistograms and counters; [`metrics::summary::RunSummary`]
//!   and its [`verdict`](metrics::summary::RunSummary::verdict); the live
//!   [`metrics::live::Progress`]; [`metrics::wire`], a snapshot's versioned
//!   network form, checked against the plan's fingerprint.
//! - [`report`]: one file per output format, the list of files `run --out`
//!   writes, run comparison, live progress and live Prometheus metrics.
//! - [`store`]: saved runs, `DIR/RUN_ID/` with `summary.json` and the
//!   report files; random ids that are never paths.
//! - [`demo`]: the built-in demo target, with an MCP endpoint at `/mcp`.
//! - [`serve`]: the one accept loop for every HTTP server loadctl runs.
//! - [`agent`]: what an AI agent may do and the guardrails around it (host
//!   allowlist, caps, environment allowlist, one readable folder, audit
//!   log); the MCP tools as plain functions over run handles and the store.
//! - [`mcp`]: `serve-mcp`'s protocol adapter over [`agent`]; the only
//!   module that knows the MCP SDK (rmcp).
//! - [`dist`]: distributed runs: the coordinator (HTTP API, one driver per
//!   run merging workers' snapshots in a collector) and the worker (a
//!   run handle with a share, an agreed start and a snapshot stream).
//! - [`cli`]: thin clap adapters, one file per subcommand.
//! - [`units`]: formatting durations and numbers for people; a leaf that
//!   every module may use.
//! - [`sys`]: this process's CPU use, for the generator-saturation
//!   warning; a leaf.

pub mod agent;
pub mod cli;
pub mod demo;
pub mod diag;
pub mod dist;
pub mod engine;
pub mod mcp;
pub mod metrics;
pub mod plan;
pub mod preset;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod serve;
pub mod store;
pub mod sys;
pub mod units;
pub mod validate;
