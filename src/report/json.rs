//! `summary.json`: the [`RunSummary`] as pretty-printed JSON.

use std::io::Write;

use crate::metrics::summary::RunSummary;

pub fn write(summary: &RunSummary, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, summary)?;
    out.write_all(b"\n")
}
