//! The `briefing` binary as an editor runs it: `preview` writes the three
//! files, `check` sorts an issue into clean (0), warnings (1) and errors (2).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::cli::{copy_dir, repo, show};

const SAMPLE: &str = "issues/2025-01-17/issue.toml";
/// Before the sample's events (Jan 23) and its send time.
const BEFORE: &str = "2025-01-16T12:00:00Z";
/// Long after the sample's events.
const AFTER: &str = "2026-01-01T00:00:00Z";

/// `briefing --config <repo>/config.toml <args>` from the repository root,
/// with the clock stopped at `now` and no settings leaking in from the
/// environment.
fn briefing(now: &str, args: &[&str]) -> Output {
    let config = repo().join("config.toml");
    Command::new(env!("CARGO_BIN_EXE_briefing"))
        .current_dir(repo())
        .env_remove("BRIEFING_CONFIG")
        .env_remove("BRIEFING_UNSUBSCRIBE_SECRET")
        .env_remove("BRIEFING_TRANSPORT")
        .env("BRIEFING_NOW", now)
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .expect("the briefing binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

/// A copy of the sample issue folder (same folder name) in a fresh
/// temporary directory; returns the directory guard and the manifest path.
fn sample_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("2025-01-17");
    copy_dir(&repo().join("issues/2025-01-17"), &folder);
    (dir, folder.join("issue.toml"))
}

fn edit(path: &Path, f: impl FnOnce(&str) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    let new = f(&text);
    assert_ne!(text, new, "the edit changed nothing in {}", path.display());
    std::fs::write(path, new).unwrap();
}

/// 1-based line of the first occurrence of `needle` in a file.
fn line_of(path: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let at = text.find(needle).expect("needle in file");
    text[..at].matches('\n').count() + 1
}

// ---------------------------------------------------------------- preview

#[test]
fn preview_writes_html_text_and_eml() {
    let out = tempfile::tempdir().unwrap();
    let o = briefing(
        BEFORE,
        &["preview", SAMPLE, "--out", out.path().to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let printed: Vec<PathBuf> = stdout(&o).lines().map(PathBuf::from).collect();
    let expected: Vec<PathBuf> = ["html", "txt", "eml"]
        .iter()
        .map(|ext| out.path().join(format!("2025-01-17.{ext}")))
        .collect();
    assert_eq!(printed, expected, "{}", show(&o));
    for p in &expected {
        let len = std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .len();
        assert!(len > 1000, "{} is only {len} bytes", p.display());
    }
    let html = std::fs::read_to_string(&expected[0]).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..80]);
    let eml = std::fs::read(&expected[2]).unwrap();
    assert!(
        eml.windows(b"multipart/alternative".len())
            .any(|w| w == b"multipart/alternative")
    );
}

#[test]
fn preview_as_a_listed_recipient_greets_them_by_name() {
    let out = tempfile::tempdir().unwrap();
    let o = briefing(
        BEFORE,
        &[
            "preview",
            SAMPLE,
            "--out",
            out.path().to_str().unwrap(),
            "--recipient",
            "zoe.brandt@example.org",
        ],
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let text = std::fs::read_to_string(out.path().join("2025-01-17.txt")).unwrap();
    assert!(
        text.contains("Dear Zoë Brandt,"),
        "the salutation does not name the recipient from recipients/sample.csv:\n{}",
        text.lines().take(12).collect::<Vec<_>>().join("\n")
    );
    let html = std::fs::read_to_string(out.path().join("2025-01-17.html")).unwrap();
    assert!(html.contains("Dear Zoë Brandt,"));
}

// ------------------------------------------------------------------ check

#[test]
fn check_of_the_sample_before_its_events_is_clean() {
    let o = briefing(BEFORE, &["check", SAMPLE]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(stdout(&o).contains("ready"), "{}", show(&o));
    assert!(!stderr(&o).contains("warning"), "{}", show(&o));
}

#[test]
fn check_after_the_events_warns_about_each_past_event() {
    let o = briefing(AFTER, &["check", SAMPLE]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    let err = stderr(&o);
    for title in [
        "Shifting Weights: China’s Growing Role at the United Nations",
        "Trump 2.0 – What Comes Next for US–Asia Trade?",
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains("warning") && l.contains(title)),
            "no warning names the past event “{title}”:\n{err}"
        );
    }
    assert!(!err.contains("error:"), "{err}");
    assert!(!stdout(&o).contains("ready"), "{}", show(&o));
}

#[test]
fn check_strict_turns_warnings_into_exit_2() {
    let o = briefing(AFTER, &["check", "--strict", SAMPLE]);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(stderr(&o).contains("Shifting Weights"), "{}", show(&o));
}

/// A copy of the sample with `{{ company_size }}` (no such CSV column, no
/// fallback) in one body; returns the guard, the manifest, the file holding
/// the tag and the tag's 1-based line there.
fn with_unknown_tag(in_body_file: bool) -> (tempfile::TempDir, PathBuf, PathBuf, usize) {
    let (dir, manifest) = sample_copy();
    let file = if in_body_file {
        // Into the editorial's second paragraph, so "line 1" would be wrong.
        let editorial = manifest.with_file_name("editorial.md");
        edit(&editorial, |t| {
            t.replacen(
                "Lea Hartmann, meanwhile,",
                "Lea Hartmann, {{ company_size }}, meanwhile,",
                1,
            )
        });
        editorial
    } else {
        // Into the third paragraph of the third news item's inline body.
        edit(&manifest, |t| {
            t.replacen(
                "Weak household spending",
                "Weak {{ company_size }} household spending",
                1,
            )
        });
        manifest.clone()
    };
    let line = line_of(&file, "{{ company_size }}");
    assert!(line > 1);
    (dir, manifest, file, line)
}

/// Runs `check` on the copy and returns the headline of the error naming
/// the tag (after asserting exit 2).
fn unknown_tag_error(manifest: &Path) -> (String, String) {
    let o = briefing(BEFORE, &["check", manifest.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", show(&o));
    let err = stderr(&o);
    let headline = err
        .lines()
        .find(|l| l.contains("error") && l.contains("{{ company_size }}"))
        .unwrap_or_else(|| panic!("no error names the tag {{{{ company_size }}}}:\n{err}"))
        .to_string();
    (headline, err)
}

#[test]
fn unknown_merge_tag_is_an_error_naming_the_tag_and_its_file() {
    for in_body_file in [true, false] {
        let (_dir, manifest, file, _) = with_unknown_tag(in_body_file);
        let (headline, err) = unknown_tag_error(&manifest);
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            headline.contains(&format!("{}:", file.display())),
            "the error does not point at {name}:\n{err}"
        );
        assert!(
            headline.contains("company"),
            "it lists the known columns: {err}"
        );
    }
}

#[test]
fn unknown_merge_tag_error_points_at_the_tags_line() {
    for in_body_file in [true, false] {
        let (_dir, manifest, file, line) = with_unknown_tag(in_body_file);
        let (headline, err) = unknown_tag_error(&manifest);
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            headline.contains(&format!("{name}:{line}:")),
            "the error does not point at {name}:{line} where the tag is:\n{err}"
        );
    }
}

#[test]
fn send_refuses_an_issue_whose_merge_tag_no_list_can_fill() {
    let (dir, manifest, _, _) = with_unknown_tag(true);
    let outbox = dir.path().join("outbox");
    let o = briefing(
        BEFORE,
        &[
            "send",
            manifest.to_str().unwrap(),
            "--yes",
            "--transport",
            &format!("outbox:{}", outbox.display()),
        ],
    );
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(stderr(&o).contains("{{ company_size }}"), "{}", show(&o));
    assert!(!outbox.exists(), "nothing may be written when check fails");
}

#[test]
fn a_100_character_subject_is_a_warning() {
    let (_dir, manifest) = sample_copy();
    let subject = format!(
        "{:x<100}",
        "Chinese buyers for VW plants? TikTok refugees discover RedNote "
    );
    assert_eq!(subject.chars().count(), 100);
    edit(&manifest, |t| {
        let old = t
            .lines()
            .find(|l| l.starts_with("subject = "))
            .expect("a subject line")
            .to_string();
        t.replacen(&old, &format!("subject = \"{subject}\""), 1)
    });
    let o = briefing(BEFORE, &["check", manifest.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    let err = stderr(&o);
    let line = line_of(&manifest, "subject = ");
    let warning = err
        .lines()
        .find(|l| l.contains("warning") && l.contains("subject") && l.contains("100"))
        .unwrap_or_else(|| panic!("no warning about the subject's length:\n{err}"));
    assert!(
        warning.contains(&format!("issue.toml:{line}:")),
        "the warning does not point at the subject line {line}:\n{err}"
    );
}

/// `preview --language de` writes the German edition beside the main one's
/// files, in German throughout; a language the issue lacks is an error
/// naming the editions it has.
#[test]
fn preview_language_writes_that_edition_and_refuses_a_missing_one() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let o = briefing(
        BEFORE,
        &["preview", SAMPLE, "--out", dir, "--language", "de"],
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let text = std::fs::read_to_string(out.path().join("2025-01-17.de.txt")).unwrap();
    let html = std::fs::read_to_string(out.path().join("2025-01-17.de.html")).unwrap();
    let eml = std::fs::read(out.path().join("2025-01-17.de.eml")).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&eml).unwrap();
    assert_eq!(
        msg.header_raw("Content-Language").map(str::trim),
        Some("de")
    );
    assert!(html.contains("lang=\"de\""));
    assert!(text.contains("Ausgabe 1042 · 17. Januar 2025"), "{text}");
    assert!(text.contains("In dieser Ausgabe"));
    assert!(
        text.contains(
            "23.\u{a0}Januar\u{a0}2025, 11\u{a0}Uhr\u{a0}MEZ (18\u{a0}Uhr\u{a0}Pekinger\u{a0}Zeit)"
        ),
        "{text}"
    );
    assert!(!out.path().join("2025-01-17.txt").exists());

    let o = briefing(
        BEFORE,
        &["preview", SAMPLE, "--out", dir, "--language", "fr"],
    );
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(
        stderr(&o).contains("no edition in `fr`, expected one of: en, de"),
        "{}",
        show(&o)
    );
}
