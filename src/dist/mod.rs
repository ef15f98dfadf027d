//! Distributed runs: one scenario over several machines, merged as if one
//! process had run it.
//!
//! - [`coordinator`]: the HTTP API, the worker registry, and one driver
//!   task per run (assign shares at an agreed start, merge snapshots in a
//!   [`crate::runner::collector::Collector`], act on lost workers, judge
//!   thresholds once on the merged result).
//! - [`worker`]: connects out, heartbeats, runs its share through
//!   [`crate::runner::start`] and streams each second's snapshot.
//! - [`split`]: `[distribution]` strategy and zones as load slices.
//! - [`protocol`]: the JSON bodies, paths, limits and the token check;
//!   [`client`]: the API client of workers and `run --coordinator`.

pub mod client;
pub mod coordinator;
pub mod protocol;
pub mod split;
pub mod worker;

use std::path::Path;

use crate::plan::{Files, Overrides};
use protocol::{encode_files, RunRequest};

/// A scenario and the files it names (data files, its CA file), read
/// from beside it, as a run request for a coordinator.
pub fn run_request(
    file: Option<&Path>,
    text: String,
    overrides: Overrides,
) -> anyhow::Result<RunRequest> {
    let mut diags = crate::diag::Diagnostics::default();
    let scenario = crate::scenario::parse(&text, &mut diags)
        .ok_or_else(|| anyhow::anyhow!("the scenario is not valid TOML"))?;
    let folder = file.and_then(Path::parent).unwrap_or(Path::new("."));
    let files = Files::relative_to(folder);
    let named = scenario
        .data
        .iter()
        .filter_map(|d| d.file.as_ref())
        .chain(scenario.target.ca_file.as_ref())
        .map(|f| f.value.clone());
    let mut read = Vec::new();
    for name in named {
        let bytes = files
            .read(&name)
            .map_err(|e| anyhow::anyhow!("file {name}: {e}"))?;
        read.push((name, bytes));
    }
    Ok(RunRequest {
        scenario: text,
        scenario_file: file
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned()),
        files: encode_files(&read),
        overrides,
        expect_workers: None,
        expect_workers_timeout_s: None,
    })
}
