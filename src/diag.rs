//! Problems found in a scenario, each tied to the place that caused it.
//!
//! Every stage that reads user input (`scenario` for syntax and types,
//! `plan` for meaning) pushes [`Diagnostic`]s into one [`Diagnostics`] list
//! instead of stopping at the first problem, so `loadctl validate` can report
//! all of them at once. A diagnostic carries a byte span into the scenario
//! file; [`SourceFile`] turns that into `file:line:column` when printed.
//! Problems that come from a command-line flag have no span and name the
//! flag instead.
//!
//! A hostile file can cause a problem on every line, so the list is
//! bounded: it keeps the first [`MAX_SHOWN`] problems in file order and
//! counts the rest, and [`SourceFile`] finds a line by binary search in an
//! index of line starts built once, so each problem costs the same however
//! far into the file it is.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

/// How many problems a list keeps; the rest are counted, and
/// [`Diagnostics::sorted`] ends the list with one line saying how many
/// more there were.
pub const MAX_SHOWN: usize = 50;

/// An ordered list of problems, at most [`MAX_SHOWN`] of them plus a count
/// of the rest. Errors make a scenario invalid; warnings do not.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// Problems left out because more than [`MAX_SHOWN`] came first in
    /// file order.
    omitted_errors: usize,
    omitted_warnings: usize,
    /// Whether the last item is the "… and N more problems" line that
    /// [`Diagnostics::sorted`] adds.
    has_summary: bool,
}

impl Diagnostics {
    pub fn error(&mut self, span: impl Into<Option<Span>>, message: impl Into<String>) {
        self.push(Severity::Error, span.into(), message.into());
    }

    pub fn warning(&mut self, span: impl Into<Option<Span>>, message: impl Into<String>) {
        self.push(Severity::Warning, span.into(), message.into());
    }

    fn push(&mut self, severity: Severity, span: Option<Span>, message: String) {
        self.remove_summary();
        self.items.push(Diagnostic {
            severity,
            span,
            message,
        });
        // Trimming only when twice the limit is reached keeps each push
        // cheap on average while memory stays bounded.
        if self.items.len() >= 2 * MAX_SHOWN {
            self.keep_first();
        }
    }

    pub fn has_errors(&self) -> bool {
        self.omitted_errors > 0 || self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The problems kept (after [`sorted`](Self::sorted): in file order,
    /// ending with the count of those left out, if any).
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// How many problems were left out of [`items`](Self::items).
    pub fn omitted(&self) -> usize {
        self.omitted_errors + self.omitted_warnings
    }

    pub fn extend(&mut self, mut other: Diagnostics) {
        other.remove_summary();
        self.omitted_errors += other.omitted_errors;
        self.omitted_warnings += other.omitted_warnings;
        for d in other.items {
            self.push(d.severity, d.span, d.message);
        }
    }

    /// The first [`MAX_SHOWN`] problems in file order (flag problems, which
    /// have no span, first), then a line counting the rest if there are any.
    pub fn sorted(mut self) -> Self {
        self.remove_summary();
        self.keep_first();
        let omitted = self.omitted();
        if omitted > 0 {
            let severity = if self.omitted_errors > 0 {
                Severity::Error
            } else {
                Severity::Warning
            };
            let noun = if omitted == 1 { "problem" } else { "problems" };
            self.items.push(Diagnostic {
                severity,
                span: None,
                message: format!(
                    "… and {} more {noun} (only the first {MAX_SHOWN} are shown)",
                    crate::units::grouped(omitted as u64)
                ),
            });
            self.has_summary = true;
        }
        self
    }

    fn remove_summary(&mut self) {
        if std::mem::take(&mut self.has_summary) {
            self.items.pop();
        }
    }

    /// Sorts by place (stable, so problems at one place keep their order)
    /// and counts what falls beyond [`MAX_SHOWN`].
    fn keep_first(&mut self) {
        self.items
            .sort_by_key(|d| d.span.as_ref().map(|s| s.start as i64).unwrap_or(-1));
        for d in self.items.drain(MAX_SHOWN.min(self.items.len())..) {
            match d.severity {
                Severity::Error => self.omitted_errors += 1,
                Severity::Warning => self.omitted_warnings += 1,
            }
        }
    }
}

/// The text of a scenario and the name it is reported under.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    /// Where each line starts, built on the first lookup.
    line_starts: OnceLock<Vec<usize>>,
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
            line_starts: OnceLock::new(),
        }
    }

    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        // Spans always fall on char boundaries, but be safe with garbage input.
        let mut end = offset;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        // The last line start at or before `end`; `starts[0]` is 0.
        let line = starts.partition_point(|&start| start <= end);
        let column = self.text[starts[line - 1]..end].chars().count() + 1;
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

/// Suggests the closest of `candidates` to a misspelled `word`: similar by
/// Jaro-Winkler, or one edit away (which catches a swap in a short word,
/// `GTE` for `GET`, that Jaro-Winkler scores low).
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let one_edit = |c: &str| word.chars().count() >= 3 && strsim::osa_distance(word, c) <= 1;
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, c)| *score > 0.8 || one_edit(c))
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
    fn the_line_index_agrees_with_counting_from_the_start() {
        let text = "a\n\nné = 1\r\n  b = \"🦀\"\nlast".to_string();
        let src = SourceFile::new("s.toml", text.clone());
        for offset in 0..=text.len() + 2 {
            let mut end = offset.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let before = &text[..end];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before[start..].chars().count() + 1;
            assert_eq!(
                src.line_col(offset),
                LineCol { line, column },
                "at {offset}"
            );
        }
    }

    #[test]
    fn only_the_first_problems_in_file_order_are_kept_and_the_rest_counted() {
        let mut d = Diagnostics::default();
        // Pushed last to first, as a later stage may report earlier places.
        for i in (0..1000).rev() {
            d.warning(i..i + 1, format!("problem at {i}"));
        }
        d.error(5000..5001, "an error past the limit");
        assert!(d.items().len() < 2 * MAX_SHOWN);
        assert!(d.has_errors(), "an error left out still counts");
        let mut other = Diagnostics::default();
        other.warning(None, "a flag");
        d.extend(other);
        let d = d.sorted().sorted();
        let items = d.items();
        assert_eq!(items.len(), MAX_SHOWN + 1);
        assert_eq!(items[0].message, "a flag");
        assert_eq!(items[1].message, "problem at 0");
        assert_eq!(
            items[MAX_SHOWN - 1].message,
            format!("problem at {}", MAX_SHOWN - 2)
        );
        let last = &items[MAX_SHOWN];
        assert_eq!(
            (last.severity, last.span.clone(), last.message.as_str()),
            (
                Severity::Error,
                None,
                "… and 952 more problems (only the first 50 are shown)"
            )
        );
        assert_eq!(d.omitted(), 952);
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("userz", &["users", "rate"]), Some("users"));
        assert_eq!(did_you_mean("zzz", &["users", "rate"]), None);
        assert_eq!(did_you_mean("GTE", &["GET", "PUT", "POST"]), Some("GET"));
    }
}
