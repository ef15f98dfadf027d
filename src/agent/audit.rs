//! The audit log: one JSON line per run started, ended or refused, in
//! `audit.jsonl` in the runs folder, so the person running the server can
//! see what agents did with it.
//!
//! A line says when, which event, which client (the name it gave in
//! `initialize` or in a request's `_meta`, else `unknown`), the run, the
//! target (a URL never carries credentials, see `plan::Endpoint::display`),
//! the load and the outcome. Headers, environment values and scenario text
//! are never written.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::limits::LoadSummary;
use super::redact::SecretValues;

/// The file's name in the runs folder.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// One line of the log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// `run_started`, `run_ended` or `run_refused`.
    pub event: &'static str,
    /// The client's name, or `unknown`.
    pub client: String,
    /// The tool that asked (`run_load_test`, `start_run`, `cancel_run`).
    pub tool: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadSummary>,
    /// `passed`, `thresholds_failed`, `interrupted`, `failed` or `refused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Why a run was refused or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The longest client name kept, in characters: the name is the client's
/// own choice, and must not grow the log without bound.
pub const MAX_CLIENT_NAME_CHARS: usize = 200;

/// `name` cut to [`MAX_CLIENT_NAME_CHARS`], with `…` when cut.
pub fn client_label(name: &str) -> String {
    match name.char_indices().nth(MAX_CLIENT_NAME_CHARS) {
        None => name.to_string(),
        Some((end, _)) => format!("{}…", &name[..end]),
    }
}

/// Appends entries to `audit.jsonl`, one whole line at a time.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    /// Redacted from every line (a refusal's reason can quote a target's
    /// answer).
    secrets: SecretValues,
    /// Lines from concurrent runs must not interleave.
    lock: Mutex<()>,
}

impl AuditLog {
    pub fn new(runs_dir: &Path, secrets: SecretValues) -> AuditLog {
        AuditLog {
            path: runs_dir.join(AUDIT_FILE),
            secrets,
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry` with the time. A log that cannot be written is
    /// reported on stderr and does not stop the run.
    pub fn record(&self, mut entry: AuditEntry) {
        entry.client = client_label(&entry.client);
        #[derive(Serialize)]
        struct Line<'a> {
            time: String,
            #[serde(flatten)]
            entry: &'a AuditEntry,
        }
        let line = Line {
            time: jiff::Timestamp::now().to_string(),
            entry: &entry,
        };
        let text = match serde_json::to_string(&line) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("loadctl serve-mcp: cannot write the audit log: {e}");
                return;
            }
        };
        let mut text = self.secrets.text(&text);
        text.push('\n');
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "loadctl serve-mcp: cannot write the audit log {}: {e}",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_whole_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path(), SecretValues::default());
        for event in ["run_started", "run_ended"] {
            log.record(AuditEntry {
                event,
                client: "claude-code".into(),
                tool: "start_run",
                run_id: Some("0123".into()),
                target: Some("http://127.0.0.1:8080".into()),
                load: None,
                outcome: None,
                reason: None,
            });
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["event"], "run_ended");
        assert_eq!(lines[0]["client"], "claude-code");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert!(lines[0].get("load").is_none());
    }

    #[test]
    fn secret_values_and_long_client_names_stay_out_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path(), SecretValues::new(["tok-123".to_string()]));
        log.record(AuditEntry {
            event: "run_refused",
            client: "c".repeat(10_000),
            tool: "start_run",
            run_id: None,
            target: None,
            load: None,
            outcome: Some("refused".into()),
            reason: Some("the target answered /tok-123".into()),
        });
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains("tok-123"), "{text}");
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["reason"], "the target answered /[redacted]");
        let client = line["client"].as_str().unwrap();
        assert_eq!(client.chars().count(), MAX_CLIENT_NAME_CHARS + 1);
    }
}
