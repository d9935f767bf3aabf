//! Feeding the suppression list: provider CSV exports of bounces and
//! complaints, and mailto unsubscribe requests collected in a mailbox.
//!
//! Both readers only parse; the caller applies what they return to the
//! ledger and reports ([`crate::unsubscribe`] verifies mailto tokens the
//! same way as one-click requests).

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::audience::token::looks_like_token;
use crate::input::{CSV_LINE_LIMIT, LineLimit};

/// A suppression to record: who, why, from where and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSuppression {
    /// The address.
    pub email: String,
    /// `unsubscribed`, `hard-bounce`, `complaint`, `manual`.
    pub reason: String,
    /// Where it came from (`import`, `mailto`, ...).
    pub source: String,
    /// When it happened (from the import file, else now).
    pub created_at: Timestamp,
}

/// Reasons an address can be on the suppression list.
pub const REASONS: [&str; 4] = ["unsubscribed", "hard-bounce", "complaint", "manual"];

/// The reason as stored, or an error naming the valid ones.
pub fn check_reason(reason: &str) -> Result<&'static str, UnknownReason> {
    let r = reason.trim().to_ascii_lowercase();
    REASONS
        .iter()
        .find(|k| **k == r)
        .copied()
        .ok_or_else(|| UnknownReason(reason.to_string()))
}

/// A suppression reason that is none of [`REASONS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason `{0}`, expected one of unsubscribed, hard-bounce, complaint, manual")]
pub struct UnknownReason(pub String);

/// What a provider's reason column says about a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// Suppress with this reason.
    Suppress(&'static str),
    /// A temporary failure (soft bounce): not a reason to stop mailing.
    Soft,
}

/// Maps a provider's word or SMTP reply to one of [`REASONS`]; an empty
/// value means `hard-bounce`, as bounce exports often have no such column.
pub fn classify_reason(text: &str) -> Classified {
    let t = text.trim().to_ascii_lowercase();
    if let Some(r) = REASONS.iter().find(|r| **r == t) {
        return Classified::Suppress(r);
    }
    // SMTP replies ("550 5.1.1 …", "4.2.2"): the class digit decides, before
    // words like "spam" inside a rejection text could mislead.
    match t.chars().next() {
        Some('5') => return Classified::Suppress("hard-bounce"),
        Some('4') => return Classified::Soft,
        _ => {}
    }
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&["complain", "spam", "abuse", "fbl"]) {
        Classified::Suppress("complaint")
    } else if has(&["unsub", "opt-out", "optout", "opt out"]) {
        Classified::Suppress("unsubscribed")
    } else if has(&["soft", "transient", "temporar", "defer"]) {
        Classified::Soft
    } else if has(&["manual"]) {
        Classified::Suppress("manual")
    } else {
        Classified::Suppress("hard-bounce")
    }
}

/// Why a CSV export could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvImportError {
    /// The file cannot be opened or its header read.
    #[error("cannot read {}: {message}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No column holds addresses.
    #[error(
        "{}: no address column, expected one named email, address, recipient or Email Address (found: {})",
        path.display(),
        found.join(", ")
    )]
    NoAddressColumn {
        /// The file.
        path: PathBuf,
        /// The header it has.
        found: Vec<String>,
    },
}

/// A row that was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

/// A parsed CSV export, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct CsvImport {
    /// Rows to suppress.
    pub rows: Vec<NewSuppression>,
    /// Soft bounces, by line: read but deliberately not suppressed.
    pub soft: Vec<u64>,
    /// Malformed rows.
    pub bad: Vec<BadRow>,
}

const ADDRESS_COLUMNS: [&str; 4] = ["email", "address", "recipient", "email address"];
const REASON_COLUMNS: [&str; 4] = ["reason", "type", "bounce type", "event"];
const TIME_COLUMNS: [&str; 3] = ["timestamp", "created_at", "created"];

/// A header name for matching: case, spaces and `_` do not matter, so
/// `Email Address`, `email_address` and ` EMAIL ADDRESS` are one column.
fn column_key(h: &str) -> String {
    h.trim_start_matches('\u{feff}')
        .trim()
        .to_lowercase()
        .replace('_', " ")
}

fn find_column(headers: &[String], names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|n| headers.iter().position(|h| column_key(h) == *n))
}

/// Reads a provider's CSV export of bounces or complaints. `source` is
/// recorded with each row; rows without a timestamp get `now`.
pub fn read_csv(path: &Path, source: &str, now: Timestamp) -> Result<CsvImport, CsvImportError> {
    let unreadable = |message: String| CsvImportError::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(unreadable("not a regular file, expected a CSV file".into()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(LineLimit::new(file, CSV_LINE_LIMIT));
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| unreadable(csv_message(&e)))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let Some(email_col) = find_column(&headers, &ADDRESS_COLUMNS) else {
        return Err(CsvImportError::NoAddressColumn {
            path: path.to_path_buf(),
            found: headers,
        });
    };
    let cols = Columns {
        email: email_col,
        reason: find_column(&headers, &REASON_COLUMNS),
        time: find_column(&headers, &TIME_COLUMNS),
    };
    let mut out = CsvImport::default();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                out.bad.push(BadRow {
                    line: e.position().map_or(0, csv::Position::line),
                    message: csv_message(&e),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        match read_row(&record, &cols, source, now) {
            CsvRow::Blank => {}
            CsvRow::Soft => out.soft.push(line),
            CsvRow::Bad(message) => out.bad.push(BadRow { line, message }),
            CsvRow::Suppress(row) => out.rows.push(row),
        }
    }
    Ok(out)
}

/// Where the columns of an export are.
struct Columns {
    email: usize,
    reason: Option<usize>,
    time: Option<usize>,
}

/// What one row of an export says.
enum CsvRow {
    Blank,
    Soft,
    Bad(String),
    Suppress(NewSuppression),
}

fn read_row(record: &csv::StringRecord, cols: &Columns, source: &str, now: Timestamp) -> CsvRow {
    if record.iter().all(|f| f.trim().is_empty()) {
        return CsvRow::Blank;
    }
    let field = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("").trim();
    let email = field(Some(cols.email));
    if let Err(e) = crate::audience::recipient::check_address(email) {
        return CsvRow::Bad(e.to_string());
    }
    let reason = match classify_reason(field(cols.reason)) {
        Classified::Suppress(r) => r,
        Classified::Soft => return CsvRow::Soft,
    };
    let created_at = match field(cols.time) {
        "" => now,
        t => match parse_time(t) {
            Some(t) => t,
            None => {
                return CsvRow::Bad(format!(
                    "timestamp `{t}` is not a time, expected RFC 3339 (2025-01-17T05:00:00Z), \
                     `2025-01-17 05:00:00` (UTC) or Unix seconds"
                ));
            }
        },
    };
    CsvRow::Suppress(NewSuppression {
        email: email.to_string(),
        reason: reason.to_string(),
        source: source.to_string(),
        created_at,
    })
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields, expected {expected_len} like the header")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    }
}

/// A provider timestamp: RFC 3339 with any offset, a civil date and time
/// (taken as UTC, as exports without an offset are), a date, or Unix
/// seconds with an optional fraction.
pub fn parse_time(t: &str) -> Option<Timestamp> {
    let t = t.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    if !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        return secs
            .parse::<i64>()
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok());
    }
    None
}

/// One message of a mailbox that asks to unsubscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailtoRequest {
    /// 1-based position of the message in the mailbox.
    pub index: usize,
    /// Its Message-ID, to find it again.
    pub message_id: Option<String>,
    /// What stands where the token should; it may be forged or malformed.
    pub token: String,
}

/// The unsubscribe requests of a mailbox.
#[derive(Debug, Clone, Default)]
pub struct Mailbox {
    /// Messages that ask to unsubscribe.
    pub requests: Vec<MailtoRequest>,
    /// Messages read in all.
    pub messages: usize,
}

/// Why a mailbox could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the mailbox {}: {message}", path.display())]
pub struct MailboxError {
    /// The mbox file or Maildir folder.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Reads an mbox file or a Maildir folder (its `cur` and `new`) and picks
/// the messages that carry an unsubscribe token, as our `mailto:` link puts
/// it in the subject (`unsubscribe TOKEN`) or as a `unsubscribe+TOKEN@`
/// recipient.
pub fn read_mailbox(path: &Path) -> Result<Mailbox, MailboxError> {
    let fail = |message: String| MailboxError {
        path: path.to_path_buf(),
        message,
    };
    let mut out = Mailbox::default();
    let mut each = |raw: &[u8]| {
        out.messages += 1;
        let index = out.messages;
        if let Some(msg) = mail_parser::MessageParser::default().parse(raw)
            && let Some(token) = token_in(&msg)
        {
            out.requests.push(MailtoRequest {
                index,
                message_id: msg.message_id().map(str::to_string),
                token,
            });
        }
    };
    if path.is_dir() {
        let messages = mail_parser::mailbox::maildir::MessageIterator::new(path)
            .map_err(|e| fail(e.to_string()))?;
        for m in messages {
            each(m.map_err(|e| fail(e.to_string()))?.contents());
        }
    } else {
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        for m in mail_parser::mailbox::mbox::MessageIterator::new(std::io::BufReader::new(file)) {
            each(m.map_err(|e| fail(e.to_string()))?.contents());
        }
    }
    Ok(out)
}

/// The unsubscribe token a message carries, if it asks to unsubscribe.
pub fn token_in(msg: &mail_parser::Message<'_>) -> Option<String> {
    let all: Vec<String> = msg
        .subject()
        .and_then(token_in_subject)
        .into_iter()
        .chain(recipients_of(msg).filter_map(|a| token_in_address(&a)))
        .collect();
    // A well-formed token wins over a stray "unsubscribe me" elsewhere.
    all.iter()
        .find(|t| looks_like_token(t))
        .or_else(|| all.first())
        .cloned()
}

fn recipients_of<'a>(msg: &'a mail_parser::Message<'_>) -> impl Iterator<Item = String> + 'a {
    let to = msg
        .to()
        .into_iter()
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address().map(str::to_string));
    // Aliases rewrite To; the delivery headers keep the address we wrote.
    let delivered = ["Delivered-To", "X-Original-To"]
        .into_iter()
        .filter_map(|h| {
            msg.header_raw(h)
                .map(|v| v.trim().trim_matches(['<', '>']).to_string())
        });
    to.chain(delivered)
}

/// `unsubscribe TOKEN` anywhere in a subject (`Re: unsubscribe …` too),
/// case-insensitive; `%20` counts as the space for clients that leave the
/// mailto subject encoded.
fn token_in_subject(subject: &str) -> Option<String> {
    let lower = subject.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("unsubscribe") {
        let rest = &subject[from + i + "unsubscribe".len()..];
        from += i + "unsubscribe".len();
        let after = rest.strip_prefix("%20").unwrap_or(rest);
        let trimmed = after.trim_start();
        if trimmed.len() == after.len() && after.len() == rest.len() {
            // "unsubscribed", "unsubscribe-me": not our form.
            continue;
        }
        let token: String = trimmed
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .collect();
        if !token.is_empty() {
            found.push(token);
        }
    }
    found
        .iter()
        .find(|t| looks_like_token(t))
        .or_else(|| found.first())
        .cloned()
}

/// The token of an `unsubscribe+TOKEN@domain` address.
fn token_in_address(addr: &str) -> Option<String> {
    let (local, _) = addr.rsplit_once('@')?;
    let (tag, token) = local.split_once('+')?;
    (tag.eq_ignore_ascii_case("unsubscribe") && !token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::token::Secret;

    fn now() -> Timestamp {
        "2025-01-17T05:00:00Z".parse().unwrap()
    }

    #[test]
    fn provider_words_map_to_our_reasons() {
        for (word, want) in [
            ("", Classified::Suppress("hard-bounce")),
            ("Bounce", Classified::Suppress("hard-bounce")),
            ("HardBounce", Classified::Suppress("hard-bounce")),
            ("Permanent", Classified::Suppress("hard-bounce")),
            (
                "550 5.7.1 rejected as spam",
                Classified::Suppress("hard-bounce"),
            ),
            ("SpamComplaint", Classified::Suppress("complaint")),
            ("complaint", Classified::Suppress("complaint")),
            ("abuse", Classified::Suppress("complaint")),
            ("Unsubscribe", Classified::Suppress("unsubscribed")),
            ("manual", Classified::Suppress("manual")),
            ("soft_bounce", Classified::Soft),
            ("Transient", Classified::Soft),
            ("421 4.7.0 try later", Classified::Soft),
        ] {
            assert_eq!(classify_reason(word), want, "{word:?}");
        }
        assert_eq!(check_reason(" Hard-Bounce "), Ok("hard-bounce"));
        assert!(
            check_reason("bounced")
                .unwrap_err()
                .to_string()
                .contains("expected one of unsubscribed")
        );
    }

    #[test]
    fn csv_headers_match_loosely_and_rows_report_their_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.csv");
        std::fs::write(
            &path,
            "\u{feff}Name,EMAIL_ADDRESS,Type\nA,a@example.org,Permanent\n,,\nB,b@,SpamComplaint\nC,c@example.org,SpamComplaint\n",
        )
        .unwrap();
        let got = read_csv(&path, "import", now()).unwrap();
        let rows: Vec<(&str, &str)> = got
            .rows
            .iter()
            .map(|r| (r.email.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("a@example.org", "hard-bounce"),
                ("c@example.org", "complaint")
            ]
        );
        assert_eq!(got.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [4]);

        std::fs::write(&path, "\u{feff}name\nA\n").unwrap();
        let err = read_csv(&path, "import", now()).unwrap_err().to_string();
        assert!(err.contains("(found: name)"), "{err}");
    }

    #[test]
    fn provider_timestamps_parse() {
        let want: Timestamp = "2025-01-17T05:00:00Z".parse().unwrap();
        for t in [
            "2025-01-17T05:00:00Z",
            "2025-01-17T05:00:00.000Z",
            "2025-01-17T06:00:00+01:00",
            "2025-01-17 05:00:00",
            "1737090000",
            "1737090000.501",
        ] {
            assert_eq!(parse_time(t), Some(want), "{t}");
        }
        assert!(parse_time("2025-01-17").is_some());
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("17/01/2025"), None);
    }

    #[test]
    fn tokens_are_found_in_subjects_and_plus_addresses() {
        let t = Secret::new("k").token("l", "a@example.org");
        assert_eq!(
            token_in_subject(&format!("unsubscribe {t}")),
            Some(t.clone())
        );
        assert_eq!(
            token_in_subject(&format!("Re: UNSUBSCRIBE  {t}")),
            Some(t.clone())
        );
        assert_eq!(
            token_in_subject(&format!("unsubscribe%20{t}")),
            Some(t.clone())
        );
        assert_eq!(token_in_subject("please unsubscribe me"), Some("me".into()));
        assert_eq!(token_in_subject("I unsubscribed"), None);
        assert_eq!(
            token_in_address(&format!("Unsubscribe+{t}@example.org")),
            Some(t.clone())
        );
        assert_eq!(token_in_address("news@example.org"), None);
    }
}
