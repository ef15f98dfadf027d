//! Saved runs: each is a folder `DIR/RUN_ID/` holding `summary.json` and
//! every report file [`report::OUTPUTS`] lists, so a run can be found
//! again, listed and re-read after the process that ran it is gone.
//!
//! Run ids are random (a v4 UUID's 32 hex digits), never paths: a
//! [`RunId`] only comes from [`RunId::new`] or from [`RunId::parse`], which
//! refuses anything else, so an id from an agent or a URL can never name a
//! file outside its run's folder. A run is saved into a staging folder and
//! renamed into place, so a listing never sees half a run. Reading a
//! `summary.json` (and refusing one from a newer loadctl) lives here too,
//! for `loadctl report` as much as for the store.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::summary::{RunSummary, Verdict, SCHEMA_VERSION};
use crate::report;

/// The file every saved run has, the one the others can be rebuilt from.
const SUMMARY_FILE: &str = "summary.json";
/// A run id's length: a UUID in its simple form.
const ID_LEN: usize = 32;

/// What went wrong with a saved run or a summary file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{given:?} is not a run id: {reason}")]
    InvalidId { given: String, reason: &'static str },
    #[error("no run {id} in {}", dir.display())]
    NotFound { id: RunId, dir: PathBuf },
    #[error("run {id} has no file {name:?}; a run has: {}", file_names().join(", "))]
    NoSuchFile { id: RunId, name: String },
    #[error("run {id} is already saved in {}", dir.display())]
    AlreadySaved { id: RunId, dir: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a loadctl summary.json: {source}", path.display())]
    NotASummary {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} has summary schema {found}; this loadctl reads schema {SCHEMA_VERSION} (upgrade loadctl)", path.display())]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("cannot save the run in {}: {source:#}", dir.display())]
    Save { dir: PathBuf, source: anyhow::Error },
}

/// A run's id: 32 lowercase hex digits. Never a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// A new random id.
    pub fn new() -> RunId {
        RunId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Accepts exactly the form [`RunId::new`] makes, and says what is
    /// wrong with anything else.
    pub fn parse(text: &str) -> Result<RunId, StoreError> {
        let reason = if text.is_empty() {
            Some("it is empty")
        } else if text.contains(['/', '\\']) || text.starts_with('.') {
            Some("run ids are not paths")
        } else if text.len() != ID_LEN {
            Some("a run id is 32 hex digits")
        } else if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Some("a run id is 32 hex digits (0-9, a-f)")
        } else {
            None
        };
        match reason {
            None => Ok(RunId(text.to_string())),
            Some(reason) => Err(StoreError::InvalidId {
                given: shortened(text),
                reason,
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RunId {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<RunId, StoreError> {
        RunId::parse(text)
    }
}

impl TryFrom<String> for RunId {
    type Error = StoreError;

    fn try_from(text: String) -> Result<RunId, StoreError> {
        RunId::parse(&text)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

/// An error message quotes at most this much of a bad id.
fn shortened(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// One line of [`list`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SavedRun {
    pub id: RunId,
    /// The scenario's name.
    pub name: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    pub verdict: Verdict,
}

/// Saves `summary` and every report file under `dir/RUN_ID/`, creating
/// `dir` if needed, and returns the id. The id is the summary's own
/// (`run.id`), or a new one for a summary that has none.
pub fn save(dir: &Path, summary: &RunSummary) -> Result<RunId, StoreError> {
    let (id, summary) = match RunId::parse(&summary.run.id) {
        Ok(id) => (id, Cow::Borrowed(summary)),
        Err(_) => {
            let id = RunId::new();
            let mut with_id = summary.clone();
            with_id.run.id = id.to_string();
            (id, Cow::Owned(with_id))
        }
    };
    let failed = |source: anyhow::Error| StoreError::Save {
        dir: dir.to_path_buf(),
        source,
    };
    let target = dir.join(id.as_str());
    if target.exists() {
        return Err(StoreError::AlreadySaved {
            id,
            dir: dir.to_path_buf(),
        });
    }
    // Not an id (it starts with a dot), so `list` never shows it.
    let staging = dir.join(format!(".{id}.{}.saving", std::process::id()));
    std::fs::create_dir_all(&staging).map_err(|e| failed(e.into()))?;
    let written = report::write_dir(&summary, &staging)
        .and_then(|_| std::fs::rename(&staging, &target).map_err(anyhow::Error::from));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(failed(e));
    }
    Ok(id)
}

/// Every run saved in `dir`, newest first (by `started_at`). Folders whose
/// name is not an id, and runs whose summary cannot be read, are left
/// out; a `dir` that does not exist holds no runs.
pub fn list(dir: &Path) -> Result<Vec<SavedRun>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Unreadable {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut runs: Vec<(Option<jiff::Timestamp>, SavedRun)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| RunId::parse(entry.file_name().to_str()?).ok())
        .filter_map(|id| {
            let summary = get(dir, &id).ok()?;
            let started = summary.run.started_at.parse::<jiff::Timestamp>().ok();
            let run = SavedRun {
                verdict: summary.verdict(),
                name: summary.run.name,
                started_at: summary.run.started_at,
                id,
            };
            Some((started, run))
        })
        .collect();
    // Newest first; a start time that does not parse sorts last, and
    // equal times by id, so the order is always the same.
    runs.sort_by(|(a, ra), (b, rb)| b.cmp(a).then_with(|| ra.id.cmp(&rb.id)));
    Ok(runs.into_iter().map(|(_, run)| run).collect())
}

/// The summary of run `id` saved in `dir`.
pub fn get(dir: &Path, id: &RunId) -> Result<RunSummary, StoreError> {
    read_summary(&file_path(dir, id, SUMMARY_FILE)?)
}

/// The path of one of run `id`'s files (`summary.json`, `report.html`…,
/// see [`file_names`]), which exists. Any other name is refused, so the
/// path never leaves the run's folder.
pub fn file_path(dir: &Path, id: &RunId, name: &str) -> Result<PathBuf, StoreError> {
    if !file_names().iter().any(|n| n == name) {
        return Err(StoreError::NoSuchFile {
            id: id.clone(),
            name: shortened(name),
        });
    }
    let run_dir = dir.join(id.as_str());
    if !run_dir.is_dir() {
        return Err(StoreError::NotFound {
            id: id.clone(),
            dir: dir.to_path_buf(),
        });
    }
    let path = run_dir.join(name);
    if !path.is_file() {
        return Err(StoreError::NoSuchFile {
            id: id.clone(),
            name: name.to_string(),
        });
    }
    Ok(path)
}

/// The names of the files a saved run holds, `summary.json` first.
pub fn file_names() -> Vec<String> {
    report::OUTPUTS
        .iter()
        .map(|o| o.path_in(Path::new("")).display().to_string())
        .collect()
}

/// Reads a `summary.json`, or says which file is wrong and why. A summary
/// from a newer loadctl (a higher schema version) is refused: its fields
/// may mean something this version does not know.
pub fn read_summary(path: &Path) -> Result<RunSummary, StoreError> {
    // A run's folder (what `run --out` wrote) stands for its summary.
    let in_folder = path.join(SUMMARY_FILE);
    let path = if path.is_dir() { &in_folder } else { path };
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let summary: RunSummary =
        serde_json::from_str(&text).map_err(|source| StoreError::NotASummary {
            path: path.to_path_buf(),
            source,
        })?;
    if summary.schema_version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: summary.schema_version,
        });
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_summary;

    fn summary_started_at(started_at: &str) -> RunSummary {
        let mut s = test_summary();
        s.run.id = RunId::new().to_string();
        s.run.started_at = started_at.to_string();
        s
    }

    #[test]
    fn saves_lists_and_gets_runs_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs");
        // The test summary has a failed threshold.
        let old = summary_started_at("2026-01-02T03:04:05Z");
        let mut new = summary_started_at("2026-01-03T00:00:00Z");
        new.thresholds_passed = true;
        let mut failed = summary_started_at("2026-01-02T12:00:00Z");
        failed.thresholds_passed = false;
        failed.run.interrupted = true;
        for s in [&old, &new, &failed] {
            let id = save(&store, s).unwrap();
            assert_eq!(id.as_str(), s.run.id);
        }
        // Not runs: another file, and a folder whose name is not an id.
        std::fs::write(store.join("notes.txt"), "x").unwrap();
        std::fs::create_dir(store.join("..hidden")).unwrap();

        let runs = list(&store).unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [&new.run.id, &failed.run.id, &old.run.id]);
        assert_eq!(runs[0].name, "checkout <flow>");
        assert_eq!(runs[0].started_at, "2026-01-03T00:00:00Z");
        assert_eq!(runs[0].verdict, Verdict::Passed);
        assert_eq!(runs[1].verdict, Verdict::Interrupted);
        assert_eq!(runs[2].verdict, Verdict::ThresholdsFailed);

        let id = RunId::parse(&old.run.id).unwrap();
        assert_eq!(get(&store, &id).unwrap(), old);
        for name in file_names() {
            assert!(file_path(&store, &id, &name).unwrap().is_file(), "{name}");
        }
        assert!(matches!(
            file_path(&store, &id, "../../etc/passwd"),
            Err(StoreError::NoSuchFile { .. })
        ));
        let unknown = RunId::new();
        let err = get(&store, &unknown).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no run {unknown} in {}", store.display())
        );
        // Saving the same run twice is refused, not merged.
        assert!(matches!(
            save(&store, &old),
            Err(StoreError::AlreadySaved { .. })
        ));
        // No staging folder is left behind.
        let leftovers = std::fs::read_dir(&store)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".saving"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn a_summary_without_an_id_gets_one_when_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = test_summary();
        s.run.id = String::new();
        let id = save(dir.path(), &s).unwrap();
        assert_eq!(get(dir.path(), &id).unwrap().run.id, id.as_str());
    }

    #[test]
    fn an_empty_or_missing_store_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
        assert!(list(&dir.path().join("nowhere")).unwrap().is_empty());
    }

    #[test]
    fn refuses_anything_that_is_not_an_id() {
        let id = RunId::new();
        assert_eq!(RunId::parse(id.as_str()).unwrap(), id);
        assert_eq!(id.as_str().len(), 32);
        for (bad, reason) in [
            ("../x", "run ids are not paths"),
            ("a/b", "run ids are not paths"),
            (".", "run ids are not paths"),
            ("..", "run ids are not paths"),
            ("a\\b", "run ids are not paths"),
            ("", "it is empty"),
            ("abc", "a run id is 32 hex digits"),
            (
                "0123456789ABCDEF0123456789ABCDEF",
                "a run id is 32 hex digits (0-9, a-f)",
            ),
            (
                "0123456789abcdef0123456789abcdeg",
                "a run id is 32 hex digits (0-9, a-f)",
            ),
        ] {
            let err = RunId::parse(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{bad:?} is not a run id: {reason}"),
                "{bad}"
            );
        }
        let long = "a".repeat(10_000);
        let message = RunId::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(serde_json::from_str::<RunId>("\"../x\"").is_err());
    }

    #[test]
    fn an_old_summary_without_an_id_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut json = serde_json::to_value(test_summary()).unwrap();
        json["run"].as_object_mut().unwrap().remove("id");
        let path = dir.path().join("summary.json");
        std::fs::write(&path, json.to_string()).unwrap();
        assert_eq!(read_summary(&path).unwrap().run.id, "");
    }

    #[test]
    fn a_summary_from_a_newer_loadctl_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = test_summary();
        s.schema_version = SCHEMA_VERSION + 1;
        let path = dir.path().join("summary.json");
        std::fs::write(&path, serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(
            read_summary(&path).unwrap_err().to_string(),
            format!(
                "{} has summary schema {}; this loadctl reads schema {SCHEMA_VERSION} (upgrade loadctl)",
                path.display(),
                SCHEMA_VERSION + 1
            )
        );
    }
}
