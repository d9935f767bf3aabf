//! Broken issue manifests, and what `briefing check` must say about them.
//!
//! Every folder under `tests/fixtures/invalid/` is one case:
//!
//! - `issue.toml`, a manifest with one kind of mistake (and the Markdown
//!   files it names), otherwise valid, so only the intended errors appear;
//! - `expected.txt`, the errors `check` must print, one per line, in the
//!   order it prints them:
//!
//!   ```text
//!   # comments and blank lines are ignored
//!   4:1: unknown key `subjet`
//!   help: did you mean `subject`?
//!   editorial.md:3:11: is not a web or mail link
//!   ```
//!
//!   `LINE:COL: text` is an error in `issue.toml` at that line and column
//!   whose message contains `text`; `FILE:LINE:COL: text` is one in a body
//!   file next to the manifest; `help: text` is the hint printed under the
//!   error before it.
//!
//! Adding a case is adding a folder: the tests below iterate the directory.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use briefing::config::Config;
use briefing::diagnostic::Severity;

/// Where the cases live, relative to the repository root.
const FIXTURES: &str = "tests/fixtures/invalid";

/// The spec asks for at least this many cases.
const MIN_CASES: usize = 20;

/// The file a diagnostic without a file name in `expected.txt` points at.
const MANIFEST: &str = "issue.toml";

/// One error a case expects `check` to print.
#[derive(Debug)]
struct Expected {
    /// File name next to the manifest (`issue.toml` unless a body file).
    file: String,
    /// 1-based line.
    line: usize,
    /// 1-based column, in characters.
    col: usize,
    /// A substring of the message.
    message: String,
    /// A hint expected under the error (`= help: …`).
    help: Option<String>,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: …{}…",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

/// One diagnostic as `check` printed it: the headline and the lines under it.
#[derive(Debug)]
struct Printed {
    /// File name (the path with the case folder stripped).
    file: String,
    line: usize,
    col: usize,
    /// `error` or `warning`.
    severity: String,
    /// Everything after the severity: `field: message`.
    message: String,
    /// The lines printed under the headline (source line, caret, help).
    below: Vec<String>,
}

impl fmt::Display for Printed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.severity, self.message
        )
    }
}

/// One fixture folder.
struct Case {
    name: String,
    /// The folder, relative to the repository root (as a user would type it).
    dir: PathBuf,
}

impl Case {
    fn manifest(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every case folder, sorted by name; at least [`MIN_CASES`] of them.
fn cases() -> Vec<Case> {
    let root = repo_root().join(FIXTURES);
    let mut cases: Vec<Case> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .map(|entry| entry.expect("a readable directory entry"))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            Case {
                dir: Path::new(FIXTURES).join(&name),
                name,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        cases.len() >= MIN_CASES,
        "expected at least {MIN_CASES} invalid-manifest cases in {FIXTURES}, found {}",
        cases.len()
    );
    cases
}

/// Reads a case's `expected.txt`.
fn load_expected(case: &Case) -> Vec<Expected> {
    let path = repo_root().join(&case.dir).join("expected.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("case `{}`: cannot read {}: {e}", case.name, path.display()));
    let mut expected: Vec<Expected> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let bad = |why: &str| -> ! {
            panic!(
                "case `{}`: expected.txt line {}: {why}: `{line}`",
                case.name,
                n + 1
            )
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(help) = line.strip_prefix("help:") {
            match expected.last_mut() {
                Some(last) => last.help = Some(help.trim().to_string()),
                None => bad("a help line must follow the error it belongs to"),
            }
            continue;
        }
        let Some((place, message)) = line.split_once(": ") else {
            bad("expected `LINE:COL: text` or `FILE:LINE:COL: text`");
        };
        let parts: Vec<&str> = place.split(':').collect();
        let (file, line_no, col) = match parts.as_slice() {
            [l, c] => (MANIFEST, *l, *c),
            [f, l, c] => (*f, *l, *c),
            _ => bad("expected `LINE:COL` or `FILE:LINE:COL` before the text"),
        };
        let number = |s: &str| {
            s.parse::<usize>()
                .unwrap_or_else(|_| bad("not a line:column"))
        };
        expected.push(Expected {
            file: file.to_string(),
            line: number(line_no),
            col: number(col),
            message: message.trim().to_string(),
            help: None,
        });
    }
    assert!(
        !expected.is_empty(),
        "case `{}`: expected.txt lists no errors",
        case.name
    );
    expected
}

/// Splits `check`'s stderr into diagnostics. A headline starts with the
/// case folder (`tests/fixtures/invalid/<case>/file:L:C: error: …`); the
/// lines up to the next headline belong to it.
fn parse_stderr(case: &Case, stderr: &str) -> Result<Vec<Printed>, String> {
    let prefix = format!("{}/", case.dir.display());
    let mut printed: Vec<Printed> = Vec::new();
    for line in stderr.lines() {
        if line.starts_with("error: ") || line.starts_with("warning: ") {
            return Err(format!("a diagnostic without a location: `{line}`"));
        }
        let Some(rest) = line.strip_prefix(&prefix) else {
            if let Some(last) = printed.last_mut() {
                last.below.push(line.to_string());
            }
            continue;
        };
        let mut parts = rest.splitn(4, ':');
        let (Some(file), Some(l), Some(c), Some(tail)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("a headline without line and column: `{line}`"));
        };
        let (Ok(l), Ok(c)) = (l.parse(), c.parse()) else {
            return Err(format!("a headline without line and column: `{line}`"));
        };
        let Some((severity, message)) = tail.trim_start().split_once(": ") else {
            return Err(format!("a headline without a severity: `{line}`"));
        };
        printed.push(Printed {
            file: file.to_string(),
            line: l,
            col: c,
            severity: severity.to_string(),
            message: message.to_string(),
            below: Vec::new(),
        });
    }
    Ok(printed)
}

/// Line `n` (1-based) of a file next to the manifest, as `check` quotes it:
/// a tab as a space, other control characters as U+FFFD.
fn source_line(case: &Case, file: &str, n: usize) -> String {
    let bytes = std::fs::read(repo_root().join(&case.dir).join(file)).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .nth(n - 1)
        .unwrap_or("")
        .trim_end_matches('\r')
        .chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// Checks one printed error against one expected line: place, message,
/// the quoted source line with a caret under the column, and the hint.
fn check_one(case: &Case, want: &Expected, got: &Printed) -> Result<(), String> {
    if (got.file.as_str(), got.line, got.col) != (want.file.as_str(), want.line, want.col)
        || !got.message.contains(&want.message)
    {
        return Err(format!("expected `{want}`, got `{got}`"));
    }
    let gutter = want.line.to_string();
    let pad = " ".repeat(gutter.len());
    let quoted = format!("{gutter} | {}", source_line(case, &want.file, want.line));
    let caret = format!("{pad} | {}^", " ".repeat(want.col - 1));
    let shows_source = got.below.first().map(String::as_str) == Some(&format!("{pad} |"))
        && got.below.get(1) == Some(&quoted)
        && got.below.get(2).is_some_and(|l| l.starts_with(&caret));
    if !shows_source {
        return Err(format!(
            "`{got}` should quote the line and put a caret under column {}:\n{quoted}\n{caret}\nbut printed:\n{}",
            want.col,
            got.below.join("\n")
        ));
    }
    if let Some(help) = &want.help {
        let line = format!("  = help: {help}");
        if !got.below.contains(&line) {
            return Err(format!(
                "`{got}` should be followed by `{line}`, printed:\n{}",
                got.below.join("\n")
            ));
        }
    }
    Ok(())
}

/// Runs `briefing check` on a case and compares its errors with
/// `expected.txt`, in order.
fn check_case(case: &Case) -> Result<(), String> {
    let expected = load_expected(case);
    let output = Command::new(env!("CARGO_BIN_EXE_briefing"))
        .current_dir(repo_root())
        .env_remove("BRIEFING_CONFIG")
        .env_remove("BRIEFING_NOW")
        .arg("--config")
        .arg(repo_root().join("config.toml"))
        .arg("check")
        .arg(case.manifest())
        .output()
        .map_err(|e| format!("cannot run briefing: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = |msg: String| format!("{msg}\n--- stderr ---\n{stderr}--------------");

    if stderr.contains("panicked at") {
        return Err(context("briefing panicked".into()));
    }
    if output.status.code() != Some(2) {
        return Err(context(format!(
            "expected exit code 2 (errors), got {:?}",
            output.status.code()
        )));
    }
    let printed = parse_stderr(case, &stderr).map_err(context)?;
    let errors: Vec<&Printed> = printed.iter().filter(|p| p.severity == "error").collect();
    for (i, want) in expected.iter().enumerate() {
        let Some(got) = errors.get(i) else {
            return Err(context(format!(
                "expected error #{} `{want}`, but only {} errors were printed",
                i + 1,
                errors.len()
            )));
        };
        check_one(case, want, got).map_err(|e| context(format!("error #{}: {e}", i + 1)))?;
    }
    if errors.len() != expected.len() {
        let extra: Vec<String> = errors[expected.len()..]
            .iter()
            .map(|p| p.to_string())
            .collect();
        return Err(context(format!(
            "expected {} errors, got {}; not in expected.txt:\n{}",
            expected.len(),
            errors.len(),
            extra.join("\n")
        )));
    }
    Ok(())
}

#[test]
fn check_reports_every_expected_error_and_nothing_else() {
    let failures: Vec<String> = cases()
        .iter()
        .filter_map(|case| {
            check_case(case)
                .err()
                .map(|e| format!("case `{}`: {e}", case.name))
        })
        .collect();
    assert!(failures.is_empty(), "\n\n{}\n", failures.join("\n\n"));
}

#[test]
fn load_refuses_every_invalid_manifest_without_panicking() {
    let config = Config::load(Some(&repo_root().join("config.toml")))
        .unwrap_or_else(|d| panic!("the repository's config.toml is invalid:\n{}", d.render()));
    let mut failures = Vec::new();
    for case in cases() {
        let manifest = repo_root().join(case.manifest());
        let expected = load_expected(&case).len();
        match catch_unwind(AssertUnwindSafe(|| {
            briefing::compose::manifest::load(&manifest, &config)
        })) {
            Err(_) => failures.push(format!("case `{}`: manifest::load panicked", case.name)),
            Ok(Ok(_)) => failures.push(format!("case `{}`: manifest::load accepted it", case.name)),
            Ok(Err(diagnostics)) => {
                let errors = diagnostics
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                if errors != expected {
                    failures.push(format!(
                        "case `{}`: manifest::load found {errors} errors, expected.txt lists {expected}:\n{}",
                        case.name,
                        diagnostics.render()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n\n{}\n", failures.join("\n\n"));
}
