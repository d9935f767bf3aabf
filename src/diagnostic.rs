//! Problems found in a user's files, each pinned to a file, line and column.
//!
//! The library collects [`Diagnostic`]s instead of stopping at the first
//! problem, so that `briefing check` can list everything wrong with an issue
//! in one run. The binary turns them into text with [`Diagnostic::render`].

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How bad a problem is: errors stop a send, warnings only with `--strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth a look, does not block a send.
    Warning,
    /// The issue cannot go out like this.
    Error,
}

/// `s` with control characters shown as escapes (`\r`, `\n`, `\u{0}`), for
/// echoing user input into messages and logs without letting it break or
/// forge a line.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A file's text kept beside its path so diagnostics can quote the line.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user gave it (relative paths stay relative).
    pub path: PathBuf,
    /// The file's whole text.
    pub text: String,
    /// Byte offset of each line's start, built on first use: thousands of
    /// problems in a large file must not each rescan it.
    line_starts: std::sync::OnceLock<Vec<usize>>,
}

impl SourceFile {
    /// Wraps a path and its text for sharing between diagnostics.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            path: path.into(),
            text: text.into(),
            line_starts: std::sync::OnceLock::new(),
        })
    }

    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', self.text.as_bytes()).map(|i| i + 1))
                .collect()
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let starts = self.line_starts();
        let index = starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let line_start = starts.get(index).copied().unwrap_or(0);
        let col = self.text[line_start..offset].chars().count() + 1;
        (index + 1, col)
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line_text(&self, line: usize) -> &str {
        let starts = self.line_starts();
        let Some(&start) = starts.get(line.saturating_sub(1)) else {
            return "";
        };
        let end = starts.get(line).map_or(self.text.len(), |&e| e);
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Where a problem is: a file and, when known, a byte range in it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The file, with its text when it could be read.
    pub file: Arc<SourceFile>,
    /// Byte range of the offending text; `None` points at the whole file.
    pub span: Option<Range<usize>>,
}

/// One problem in the user's input.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Dotted path of the field concerned, e.g. `articles[1].title`.
    pub field: Option<String>,
    /// What is wrong and what was expected, in one sentence.
    pub message: String,
    /// Where it is.
    pub location: Option<Location>,
    /// An extra hint, such as the closest valid key.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error with no location yet.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            field: None,
            message: message.into(),
            location: None,
            help: None,
        }
    }

    /// A new warning with no location yet.
    pub fn warning(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(message)
        }
    }

    /// Points the diagnostic at a byte range of a file.
    pub fn at(mut self, file: &Arc<SourceFile>, span: Option<Range<usize>>) -> Self {
        self.location = Some(Location {
            file: Arc::clone(file),
            span,
        });
        self
    }

    /// Names the field concerned.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a hint line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `path:line:col` of the problem (line and column 1-based).
    pub fn position(&self) -> Option<(PathBuf, usize, usize)> {
        let loc = self.location.as_ref()?;
        let (line, col) = match &loc.span {
            Some(span) => loc.file.line_col(span.start),
            None => (1, 1),
        };
        Some((loc.file.path.clone(), line, col))
    }

    /// The file path, if the problem has one.
    pub fn path(&self) -> Option<&Path> {
        self.location.as_ref().map(|l| l.file.path.as_path())
    }

    /// The one-line form: `path:line:col: error: field: message`.
    pub fn headline(&self) -> String {
        let mut out = String::new();
        if let Some((path, line, col)) = self.position() {
            let _ = write!(out, "{}:{line}:{col}: ", path.display());
        }
        out.push_str(match self.severity {
            Severity::Error => "error: ",
            Severity::Warning => "warning: ",
        });
        if let Some(field) = &self.field {
            let _ = write!(out, "{field}: ");
        }
        out.push_str(&self.message);
        out
    }

    /// The full form: headline, the source line with a caret under the
    /// problem, and the hint.
    pub fn render(&self) -> String {
        let mut out = self.headline();
        out.push('\n');
        if let Some(loc) = &self.location
            && let Some(span) = &loc.span
            && !loc.file.text.is_empty()
        {
            let (line, col) = loc.file.line_col(span.start);
            // One column per character, and nothing that moves the cursor
            // or hides in a log: the caret must stand under the culprit.
            let text: String = loc
                .file
                .line_text(line)
                .chars()
                .map(|c| match c {
                    '\t' => ' ',
                    c if c.is_control() => '\u{fffd}',
                    c => c,
                })
                .collect();
            let gutter = line.to_string();
            let pad = " ".repeat(gutter.len());
            let width = {
                let (end_line, end_col) = loc.file.line_col(span.end);
                if span.is_empty() {
                    1
                } else if end_line == line && end_col > col {
                    end_col - col
                } else {
                    text.chars().count().saturating_sub(col - 1).max(1)
                }
            };
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{gutter} | {text}");
            let _ = writeln!(
                out,
                "{pad} | {}{}",
                " ".repeat(col.saturating_sub(1)),
                "^".repeat(width.max(1))
            );
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

/// Problems collected while reading or checking one thing.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Records all of another collection's problems.
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// The problems, in the order they were recorded.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    /// True when at least one problem is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The problems, in the order of their position in their files.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut v: Vec<&Diagnostic> = self.items.iter().collect();
        v.sort_by_key(|d| {
            let pos = d.position();
            (
                pos.as_ref().map(|p| p.0.clone()),
                pos.as_ref().map_or(0, |p| p.1),
                pos.as_ref().map_or(0, |p| p.2),
            )
        });
        v
    }

    /// Iterates the problems in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Renders every problem, sorted by position, then a count line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in self.sorted() {
            out.push_str(&d.render());
        }
        let errors = self
            .items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let warnings = self.items.len() - errors;
        if !self.items.is_empty() {
            let _ = writeln!(
                out,
                "{errors} error{}, {warnings} warning{}",
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" }
            );
        }
        out
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a
/// plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_not_bytes() {
        let f = SourceFile::new("a.toml", "x = 1\ntitle = \"小红书\" bad\n");
        let offset = f.text.find("bad").unwrap();
        assert_eq!(f.line_col(offset), (2, 15));
    }

    #[test]
    fn render_shows_line_and_caret() {
        let f = SourceFile::new("i.toml", "subjet = \"Hi\"\n");
        let d = Diagnostic::error("unknown key `subjet`")
            .at(&f, Some(0..6))
            .help("did you mean `subject`?");
        let text = d.render();
        assert!(text.starts_with("i.toml:1:1: error: unknown key `subjet`"));
        assert!(text.contains("1 | subjet = \"Hi\""));
        assert!(text.contains("  | ^^^^^^"));
    }

    #[test]
    fn closest_suggests_typos_only() {
        let keys = ["subject", "preheader", "number"];
        assert_eq!(closest("subjet", keys), Some("subject"));
        assert_eq!(closest("zzz", keys), None);
    }
}
