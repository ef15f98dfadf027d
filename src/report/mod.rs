//! Turning a [`RunSummary`](crate::metrics::summary::RunSummary) into
//! something people and programs read: one file per format, plus the live
//! progress display. Reporters only read the summary; they never see the
//! plan or the engine, so `loadctl report` can re-render a saved run.

pub mod json;
pub mod progress;
pub mod table;

use std::io::Write;
use std::path::Path;

/// Writes a file atomically: to a temporary file in the same folder, then
/// renamed over the target, so a reader never sees half a report.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        write(&mut file)?;
        file.flush()?;
        file.get_ref().sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
