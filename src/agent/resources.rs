//! A saved run's files as resources: `loadctl://runs/{run_id}/{file}`,
//! where `file` is one of the names the store keeps (`summary.json`,
//! `report.html`, the Locust CSVs, `junit.xml`).
//!
//! A URI names a run id and a file name, never a path: the id must parse
//! as a [`RunId`] and the name must be one of [`store::file_names`], so a
//! URI cannot reach outside the runs folder. Runs are read from the store
//! on every call, so runs saved before a restart are found again.

use schemars::JsonSchema;
use serde::Serialize;

use super::Agent;
use crate::store::{self, RunId, StoreError};

/// Every run file's URI, as a resource template (RFC 6570).
pub const URI_TEMPLATE: &str = "loadctl://runs/{run_id}/{file}";
const PREFIX: &str = "loadctl://runs/";

/// A pointer to one of a run's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ReportLink {
    /// The file's name, e.g. `report.html`.
    pub file: String,
    /// Read it with `resources/read`.
    pub uri: String,
    pub mime_type: String,
}

/// One saved run's file, for `resources/list`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFile {
    pub link: ReportLink,
    /// `NAME (STARTED_AT): FILE`.
    pub title: String,
}

/// Why a resource could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceError {
    /// The URI is well formed but names no saved run file.
    NotFound(String),
    /// The URI is not one of ours.
    Invalid(String),
}

pub fn uri(id: &RunId, file: &str) -> String {
    format!("{PREFIX}{id}/{file}")
}

pub fn mime_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("json") => "application/json",
        Some("csv") => "text/csv",
        Some("html") => "text/html",
        Some("xml") => "application/xml",
        _ => "text/plain",
    }
}

/// Links to every file a saved run `id` has.
pub fn links(id: &RunId) -> Vec<ReportLink> {
    store::file_names()
        .into_iter()
        .map(|file| ReportLink {
            uri: uri(id, &file),
            mime_type: mime_type(&file).to_string(),
            file,
        })
        .collect()
}

/// The run id and file name a URI names.
pub fn parse_uri(text: &str) -> Result<(RunId, String), ResourceError> {
    let invalid = || {
        ResourceError::Invalid(format!(
            "{text:?} is not a loadctl resource; run files are {URI_TEMPLATE} (resources/list shows them)"
        ))
    };
    let rest = text.strip_prefix(PREFIX).ok_or_else(invalid)?;
    let (id, file) = rest.split_once('/').ok_or_else(invalid)?;
    let id = RunId::parse(id).map_err(|e| ResourceError::Invalid(e.to_string()))?;
    Ok((id, file.to_string()))
}

impl Agent {
    /// Every file of every saved run, newest run first.
    pub fn run_files(&self) -> Result<Vec<RunFile>, String> {
        let runs = store::list(self.runs_dir()).map_err(|e| e.to_string())?;
        Ok(runs
            .iter()
            .flat_map(|run| {
                links(&run.id).into_iter().map(move |link| RunFile {
                    title: format!("{} ({}): {}", run.name, run.started_at, link.file),
                    link,
                })
            })
            .collect())
    }

    /// The text of the run file `uri` names, and its MIME type.
    pub fn read_run_file(&self, uri: &str) -> Result<(String, &'static str), ResourceError> {
        let (id, file) = parse_uri(uri)?;
        let path = store::file_path(self.runs_dir(), &id, &file).map_err(|e| match e {
            StoreError::NotFound { .. } | StoreError::NoSuchFile { .. } => {
                ResourceError::NotFound(format!("{uri}: {e}"))
            }
            other => ResourceError::Invalid(other.to_string()),
        })?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ResourceError::NotFound(format!("{uri}: {e}")))?;
        Ok((self.secrets().text(&text), mime_type(&file)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Guardrails;
    use crate::report::test_summary;

    #[test]
    fn saved_runs_are_listed_and_read_by_uri() {
        let dir = tempfile::tempdir().unwrap();
        let mut summary = test_summary();
        summary.run.id = RunId::new().to_string();
        let id = store::save(dir.path(), &summary).unwrap();
        let agent = Agent::new(
            Guardrails::default(),
            dir.path(),
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap();
        let files = agent.run_files().unwrap();
        assert_eq!(files.len(), store::file_names().len());
        assert_eq!(
            files[0].link.uri,
            format!("loadctl://runs/{id}/summary.json")
        );
        assert_eq!(files[0].link.mime_type, "application/json");
        let (text, mime) = agent.read_run_file(&uri(&id, "report.html")).unwrap();
        assert!(text.contains("<html"), "{}", &text[..100]);
        assert_eq!(mime, "text/html");

        for (bad, not_found) in [
            (format!("loadctl://runs/{id}/../../etc/passwd"), true),
            (
                format!("loadctl://runs/{}/summary.json", RunId::new()),
                true,
            ),
            ("loadctl://runs/../summary.json".to_string(), false),
            ("file:///etc/passwd".to_string(), false),
        ] {
            let e = agent.read_run_file(&bad).unwrap_err();
            assert_eq!(
                matches!(e, ResourceError::NotFound(_)),
                not_found,
                "{bad}: {e:?}"
            );
        }
    }
}
