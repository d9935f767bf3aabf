//! Recipient lists: CSV files with a header row, `email` required, `name`
//! optional, any other column available to merge tags.
//!
//! Rows are streamed one at a time, so memory does not grow with the list.
//! A bad row is reported with its file and line and skipped; it never stops
//! the others.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::audience::recipient::{Recipient, address_key, check_address};
use crate::input::{CSV_LINE_LIMIT, LineLimit};

/// Why a list could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the recipient list: {source}", path.display())]
    Io {
        /// The list.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The header row is unusable.
    #[error("{}:1: {message}", path.display())]
    Header {
        /// The list.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Not a regular file (a device, a FIFO, a folder).
    #[error("{}: not a regular file, expected a CSV file", .0.display())]
    NotRegular(PathBuf),
    /// A quoted field runs over a line break: most likely a quote that is
    /// never closed, which would swallow every row after it.
    #[error(
        "{}:{line}: a quoted field runs over several lines (a quote that is never closed?); expected one line per recipient, nothing was sent",
        path.display()
    )]
    UnclosedQuote {
        /// The list.
        path: PathBuf,
        /// Where the field starts.
        line: u64,
    },
    /// The CSV is malformed beyond one row.
    #[error("{}: {source}", path.display())]
    Csv {
        /// The list.
        path: PathBuf,
        /// The parser's error.
        source: csv::Error,
    },
}

/// A row that was skipped, with where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRow {
    /// The list file.
    pub path: PathBuf,
    /// 1-based line of the row.
    pub line: u64,
    /// What is wrong, e.g. "`bob@` is not a valid email address".
    pub reason: String,
}

impl std::fmt::Display for SkippedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.reason)
    }
}

/// One row of a list: a recipient or a reason it was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A valid recipient.
    Recipient(Recipient),
    /// An invalid row.
    Skipped(SkippedRow),
}

/// The header row of a list, lower-cased.
pub fn headers(path: &Path) -> Result<Vec<String>, ListError> {
    let mut reader = open(path)?;
    read_headers(&mut reader, path)
}

/// A list being read: one endless line cannot fill memory.
type ListReader = csv::Reader<LineLimit<File>>;

fn open(path: &Path) -> Result<ListReader, ListError> {
    let io = |source| ListError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(ListError::NotRegular(path.to_path_buf()));
    }
    Ok(csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(LineLimit::new(file, CSV_LINE_LIMIT)))
}

fn read_headers(reader: &mut ListReader, path: &Path) -> Result<Vec<String>, ListError> {
    let headers = reader.headers().map_err(|source| ListError::Csv {
        path: path.to_path_buf(),
        source,
    })?;
    let names: Vec<String> = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_lowercase())
        .collect();
    if !names.iter().any(|h| h == "email") {
        return Err(ListError::Header {
            path: path.to_path_buf(),
            message: format!(
                "no `email` column in the header row (found: {}); expected a header such as email,name",
                names.join(", ")
            ),
        });
    }
    Ok(names)
}

/// Streams every row of a list to `each`, in file order.
pub fn for_each(path: &Path, mut each: impl FnMut(Row)) -> Result<(), ListError> {
    for_each_at(path, |row, _| {
        each(row);
        ControlFlow::Continue(())
    })
}

/// Calls `each` with the 1-based line and the `language` of every row
/// that names one.
pub fn for_each_language(path: &Path, mut each: impl FnMut(u64, &str)) -> Result<(), ListError> {
    // Streamed: a list of a million readers is never held in memory.
    for_each_at(path, |row, line| {
        if let Row::Recipient(r) = row
            && let Some(lang) = r.field("language")
        {
            each(line, lang);
        }
        ControlFlow::Continue(())
    })
}

/// Reads a whole list for the errors that would stop a send part-way (an
/// unreadable file or header, a quote never closed), without building its
/// rows: a send checks every list with it before the first message leaves,
/// then reads them into the ledger while it sends.
pub fn check(path: &Path) -> Result<(), ListError> {
    let mut scanner = Scanner::open(path)?;
    while scanner.next()?.is_some() {}
    Ok(())
}

/// [`for_each`] until `each` breaks, skipping the first `skip` rows (as
/// [`Row`]s count: recipients and skipped rows, not blank lines), so a
/// send can resume reading its lists where it stopped. Returns the rows
/// seen, the skipped ones included.
pub fn for_each_from(
    path: &Path,
    skip: u64,
    mut each: impl FnMut(Row) -> ControlFlow<()>,
) -> Result<u64, ListError> {
    let mut seen = 0u64;
    for_each_at(path, |row, _| {
        seen += 1;
        if seen <= skip {
            return ControlFlow::Continue(());
        }
        each(row)
    })?;
    Ok(seen)
}

/// What the [`Scanner`] found next.
enum Scanned {
    /// A record, in the scanner's `record`, starting at this byte.
    Record(u64),
    /// A record the CSV reader could not read, at this byte.
    Unreadable(u64, String),
}

/// The records of a list with the errors that stop a send raised: one
/// reader for the send and its pre-scan, so both refuse exactly the same.
struct Scanner<'p> {
    path: &'p Path,
    reader: ListReader,
    names: Vec<String>,
    record: csv::StringRecord,
    lines: LineCounter,
}

impl<'p> Scanner<'p> {
    fn open(path: &'p Path) -> Result<Self, ListError> {
        let mut reader = open(path)?;
        let names = read_headers(&mut reader, path)?;
        Ok(Self {
            path,
            reader,
            names,
            record: csv::StringRecord::new(),
            lines: LineCounter::open(path)?,
        })
    }

    /// The next record, `None` at the end of the list.
    fn next(&mut self) -> Result<Option<Scanned>, ListError> {
        let path = self.path;
        let start = self.reader.position().byte();
        match self.reader.read_record(&mut self.record) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => {
                if let csv::ErrorKind::Io(io) = e.kind() {
                    return Err(ListError::Io {
                        path: path.to_path_buf(),
                        source: std::io::Error::new(io.kind(), io.to_string()),
                    });
                }
                let at = e.position().map_or(start, csv::Position::byte);
                return Ok(Some(Scanned::Unreadable(
                    at,
                    format!("unreadable row ({e})"),
                )));
            }
        }
        let at = self.record.position().map_or(start, csv::Position::byte);
        if self.record.iter().any(|f| f.contains(['\n', '\r'])) {
            return Err(ListError::UnclosedQuote {
                path: path.to_path_buf(),
                line: self.lines.line_at(at),
            });
        }
        Ok(Some(Scanned::Record(at)))
    }
}

/// [`for_each`], with the 1-based line each row starts on, until `each`
/// breaks.
fn for_each_at(
    path: &Path,
    mut each: impl FnMut(Row, u64) -> ControlFlow<()>,
) -> Result<(), ListError> {
    let mut s = Scanner::open(path)?;
    let email_col = s.names.iter().position(|h| h == "email").unwrap_or(0);
    let name_col = s.names.iter().position(|h| h == "name");
    while let Some(found) = s.next()? {
        let at = match found {
            Scanned::Record(at) => at,
            Scanned::Unreadable(at, reason) => {
                let line = s.lines.line_at(at);
                let skipped = SkippedRow {
                    path: path.to_path_buf(),
                    line,
                    reason,
                };
                if each(Row::Skipped(skipped), line).is_break() {
                    break;
                }
                continue;
            }
        };
        let record = &s.record;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let email = record.get(email_col).unwrap_or("").trim().to_string();
        let line = s.lines.line_at(at);
        if let Err(reason) = check_address(&email) {
            let skipped = SkippedRow {
                path: path.to_path_buf(),
                line,
                reason: reason.to_string(),
            };
            if each(Row::Skipped(skipped), line).is_break() {
                break;
            }
            continue;
        }
        // A control character in a name becomes a space, never nothing:
        // "Eve\u{0}Bcc" must not read as one word.
        let name = name_col
            .and_then(|i| record.get(i))
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>();
        let fields = s
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != email_col && Some(*i) != name_col)
            .map(|(i, h)| (h.clone(), record.get(i).unwrap_or("").to_string()))
            .collect();
        let r = Recipient {
            email,
            name: name.trim().to_string(),
            fields,
        };
        if each(Row::Recipient(r), line).is_break() {
            break;
        }
    }
    Ok(())
}

/// Turns byte offsets of a list into 1-based line numbers as an editor
/// counts them: LF, CRLF and a lone CR each end a line (the csv crate's own
/// count is off for CRLF files). Offsets only grow while a list is read, so
/// the file is scanned once at most.
struct LineCounter {
    file: std::io::BufReader<File>,
    offset: u64,
    line: u64,
    after_cr: bool,
}

impl LineCounter {
    fn open(path: &Path) -> Result<Self, ListError> {
        let file = File::open(path).map_err(|source| ListError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            file: std::io::BufReader::new(file),
            offset: 0,
            line: 1,
            after_cr: false,
        })
    }

    /// Counts the line breaks in the next `n` bytes and moves past them.
    fn advance(&mut self, n: usize) {
        use std::io::BufRead;
        let Ok(buf) = self.file.fill_buf() else {
            return;
        };
        let n = n.min(buf.len());
        for &b in &buf[..n] {
            match b {
                b'\r' => self.line += 1,
                // CRLF is one break: its LF was counted with the CR.
                b'\n' if !self.after_cr => self.line += 1,
                _ => {}
            }
            self.after_cr = b == b'\r';
        }
        self.offset += n as u64;
        self.file.consume(n);
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        use std::io::BufRead;
        while self.offset < byte {
            let available = match self.file.fill_buf() {
                Ok(buf) if !buf.is_empty() => buf.len(),
                _ => break,
            };
            let want = usize::try_from(byte - self.offset).unwrap_or(usize::MAX);
            self.advance(available.min(want));
        }
        // The csv crate may place a record at the line ending before it
        // (CRLF, blank lines); the record itself starts after them.
        loop {
            let ends = match self.file.fill_buf() {
                Ok(buf) => buf
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count(),
                Err(_) => 0,
            };
            if ends == 0 {
                break;
            }
            self.advance(ends);
        }
        self.line
    }
}

/// Column names across recipient lists (`email` and `name` first), as
/// merge tags can use them.
pub fn columns(lists: &[PathBuf]) -> Result<Vec<String>, ListError> {
    let mut cols = vec!["email".to_string(), "name".to_string()];
    for list in lists {
        for h in headers(list)? {
            if !cols.contains(&h) {
                cols.push(h);
            }
        }
    }
    Ok(cols)
}

/// Valid recipients across `lists` (duplicates included), for a prompt.
pub fn count(lists: &[PathBuf]) -> u64 {
    let mut n = 0u64;
    for l in lists {
        let _ = for_each(l, |row| {
            if matches!(row, Row::Recipient(_)) {
                n += 1;
            }
        });
    }
    n
}

/// The first recipient in `lists` with this address (case-insensitive).
pub fn find(lists: &[PathBuf], email: &str) -> Result<Option<Recipient>, ListError> {
    let key = address_key(email);
    for list in lists {
        let mut found = None;
        for_each(list, |row| {
            if found.is_none()
                && let Row::Recipient(r) = row
                && address_key(&r.email) == key
            {
                found = Some(r);
            }
        })?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// The first valid recipient of the first list that has one.
pub fn first(lists: &[PathBuf]) -> Result<Option<Recipient>, ListError> {
    for list in lists {
        let mut found = None;
        for_each(list, |row| {
            if found.is_none()
                && let Row::Recipient(r) = row
            {
                found = Some(r);
            }
        })?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn list(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn bad_rows_are_reported_with_line_numbers_and_skipped() {
        let f = list(
            "email,name,company\nanna@example.org,Anna,ACME\nbob@,Bob,X\n\nzoë@bücher.example,Zoë,\n",
        );
        let mut rows = Vec::new();
        for_each(f.path(), |r| rows.push(r)).unwrap();
        assert_eq!(rows.len(), 3);
        match &rows[1] {
            Row::Skipped(s) => {
                assert_eq!(s.line, 3);
                assert!(s.reason.contains("`bob@`"));
            }
            other => panic!("expected a skipped row, got {other:?}"),
        }
        match &rows[0] {
            Row::Recipient(r) => {
                assert_eq!(r.fields, vec![("company".to_string(), "ACME".to_string())])
            }
            other => panic!("expected a recipient, got {other:?}"),
        }
        assert!(matches!(&rows[2], Row::Recipient(r) if r.name == "Zoë"));
    }

    #[test]
    fn check_refuses_what_for_each_stops_on_and_nothing_else() {
        let late = list("email\na@example.org\nbob@\n\"x\ny\"\nc@example.org\n");
        assert!(matches!(
            check(late.path()),
            Err(ListError::UnclosedQuote { line: 4, .. })
        ));
        assert!(matches!(
            for_each(late.path(), |_| {}),
            Err(ListError::UnclosedQuote { line: 4, .. })
        ));
        // Bad rows are skipped by the send, so the check lets them pass.
        let bad_rows = list("email\nbob@\n\"a\"b\",\n\nok@example.org\n");
        assert!(check(bad_rows.path()).is_ok());
    }

    #[test]
    fn reading_from_a_row_skips_recipients_and_skipped_rows_not_blank_lines() {
        let f = list("email\na@example.org\n\nbob@\nc@example.org\nd@example.org\n");
        let mut rest = Vec::new();
        let seen = for_each_from(f.path(), 2, |row| {
            rest.push(row);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, 4);
        let emails: Vec<_> = rest
            .iter()
            .map(|r| match r {
                Row::Recipient(r) => r.email.as_str(),
                Row::Skipped(_) => "skipped",
            })
            .collect();
        assert_eq!(emails, ["c@example.org", "d@example.org"]);
    }

    #[test]
    fn a_list_without_email_column_is_refused() {
        let f = list("mail,name\nx@example.org,X\n");
        let err = headers(f.path()).unwrap_err();
        assert!(err.to_string().contains("no `email` column"));
    }
}
