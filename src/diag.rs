//! Problems found in a scenario, each tied to the place that caused it.
//!
//! Every stage that reads user input (`scenario` for syntax and types,
//! `plan` for meaning) pushes [`Diagnostic`]s into one [`Diagnostics`] list
//! instead of stopping at the first problem, so `loadctl validate` can report
//! all of them at once. A diagnostic carries a byte span into the scenario
//! file; [`SourceFile`] turns that into `file:line:column` when printed.
//! Problems that come from a command-line flag have no span and name the
//! flag instead.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Byte offsets into the scenario text.
pub type Span = Range<usize>;

/// A value together with the place in the file it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Where in the scenario file; `None` for problems in flags or the
    /// environment, whose message names the flag.
    pub span: Option<Span>,
    pub message: String,
}

/// An ordered list of problems. Errors make a scenario invalid; warnings do not.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, span: impl Into<Option<Span>>, message: impl Into<String>) {
        self.push(Severity::Error, span.into(), message.into());
    }

    pub fn warning(&mut self, span: impl Into<Option<Span>>, message: impl Into<String>) {
        self.push(Severity::Warning, span.into(), message.into());
    }

    fn push(&mut self, severity: Severity, span: Option<Span>, message: String) {
        self.items.push(Diagnostic {
            severity,
            span,
            message,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// Problems in file order; flag problems (no span) first.
    pub fn sorted(mut self) -> Self {
        self.items
            .sort_by_key(|d| d.span.as_ref().map(|s| s.start as i64).unwrap_or(-1));
        self
    }
}

/// The text of a scenario and the name it is reported under.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// A 1-based line and column (column counted in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        SourceFile {
            path: path.into(),
            text,
        }
    }

    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        // Spans always fall on char boundaries, but be safe with garbage input.
        let mut end = offset;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &self.text[..end];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        LineCol { line, column }
    }

    /// Renders one diagnostic as `file:line:column: severity: message`.
    pub fn render(&self, d: &Diagnostic) -> String {
        render_with(
            &self.path,
            d.span.as_ref().map(|s| self.line_col(s.start)),
            d,
        )
    }
}

pub fn render_with(path: &Path, at: Option<LineCol>, d: &Diagnostic) -> String {
    let severity = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    match at {
        Some(lc) => format!(
            "{}:{}:{}: {severity}: {}",
            path.display(),
            lc.line,
            lc.column,
            d.message
        ),
        None => format!("{}: {severity}: {}", path.display(), d.message),
    }
}

/// Suggests the closest of `candidates` to a misspelled `word`.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_chars() {
        let src = SourceFile::new("s.toml", "a = 1\nné = \"x\"\n".to_string());
        assert_eq!(src.line_col(0), LineCol { line: 1, column: 1 });
        let offset = src.text.find('=').unwrap();
        assert_eq!(src.line_col(offset), LineCol { line: 1, column: 3 });
        let second_eq = src.text.rfind('=').unwrap();
        assert_eq!(src.line_col(second_eq), LineCol { line: 2, column: 4 });
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("userz", &["users", "rate"]), Some("users"));
        assert_eq!(did_you_mean("zzz", &["users", "rate"]), None);
    }
}
