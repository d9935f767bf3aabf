//! Hostile and careless input: recipient lists, configs and manifests that
//! once panicked, hung, read outside the issue or lost readers. Each test
//! gives briefing one such input and checks that it refuses it clearly (a
//! file, a line, exit 2) and loses nothing.
//!
//! The last tests are a seeded mutation loop over the sample manifest and
//! a list: thousands of damaged copies, none of which may panic or hang.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use briefing::audience::lists::{self, ListError, Row};
use briefing::config::Config;
use support::cli::{outbox_config, repo, run};

const ISSUE: &str = "tests/fixtures/send/2025-01-17/issue.toml";

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `briefing --config CONFIG ARGS…` from the repository root, to the end.
fn briefing(config: &Path, args: &[&str]) -> support::cli::Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_briefing"));
    cmd.current_dir(repo())
        .env_remove("BRIEFING_NOW")
        .arg("--config")
        .arg(config)
        .args(args);
    run(cmd)
}

/// Rows of a list: `Ok(email)` for a recipient, `Err(line)` for a skip.
fn rows(path: &Path) -> Result<Vec<Result<String, u64>>, ListError> {
    let mut out = Vec::new();
    lists::for_each(path, |row| match row {
        Row::Recipient(r) => out.push(Ok(r.email)),
        Row::Skipped(s) => out.push(Err(s.line)),
    })?;
    Ok(out)
}

#[test]
fn a_crlf_list_reports_bad_rows_at_their_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let crlf = write(
        dir.path(),
        "crlf.csv",
        b"email,name\r\na@example.org,A\r\nnot-an-address,B\r\n\r\nc@example.org,C\r\nd@,D\r\n",
    );
    let got = rows(&crlf).unwrap();
    assert_eq!(
        got,
        [
            Ok("a@example.org".to_string()),
            Err(3),
            Ok("c@example.org".to_string()),
            Err(6)
        ]
    );
}

#[test]
fn one_address_rule_at_import() {
    let dir = tempfile::tempdir().unwrap();
    let list = write(
        dir.path(),
        "list.csv",
        b"email,name\n\"\"\"john doe\"\"@example.org\",J\na@b,A\nok@example.org,O\n",
    );
    assert_eq!(
        rows(&list).unwrap(),
        [Err(2), Err(3), Ok("ok@example.org".to_string())]
    );
}

#[test]
fn an_unclosed_quote_stops_the_send_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let world = outbox_config(dir.path(), &[], &[]);
    std::fs::write(
        dir.path().join("list.csv"),
        "email,name\na@example.org,Anna\nb@example.org,\"Ben\nc@example.org,Cleo\nd@example.org,Dora\n",
    )
    .unwrap();
    match rows(&dir.path().join("list.csv")) {
        Err(ListError::UnclosedQuote { line, .. }) => assert_eq!(line, 3),
        other => panic!("expected an unclosed-quote error, got {other:?}"),
    }
    let out = briefing(&world.config, &["send", ISSUE, "--yes"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("list.csv:3:"), "{out}");
    let sent = std::fs::read_dir(&world.outbox).map_or(0, |d| d.count());
    assert_eq!(sent, 0, "nothing may go out from a list read only in part");
}

/// The list is read into the ledger while the send runs (issue 16), so a
/// quote left open near the end, long after the first chunk, must still
/// stop the send before its first message: the lists are checked whole
/// first.
#[test]
fn an_unclosed_quote_near_the_end_of_a_long_list_still_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let world = outbox_config(dir.path(), &[], &[]);
    let mut csv = String::from("email,name\n");
    for i in 0..5000 {
        csv.push_str(&format!("r{i}@example.org,R {i}\n"));
    }
    // Line 5002: a field that opens a quote and never closes it.
    csv.push_str("late@example.org,\"Late\nlast@example.org,Last\n");
    std::fs::write(dir.path().join("list.csv"), csv).unwrap();
    let out = briefing(&world.config, &["send", ISSUE, "--yes"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("list.csv:5002:"), "{out}");
    assert!(out.stderr.contains("nothing was sent"), "{out}");
    let sent = std::fs::read_dir(&world.outbox).map_or(0, |d| d.count());
    assert_eq!(sent, 0, "nothing may go out from a list read only in part");
}

#[test]
fn config_numbers_out_of_range_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("rate_per_second", "1e-300"),
        ("rate_per_second", "-2.5"),
        ("rate_per_second", "nan"),
    ] {
        let world = outbox_config(dir.path(), &["a@example.org"], &[(key, value.into())]);
        let line = std::fs::read_to_string(&world.config)
            .unwrap()
            .lines()
            .position(|l| l.starts_with(&format!("{key} = ")))
            .unwrap()
            + 1;
        let out = briefing(&world.config, &["check", ISSUE]);
        assert_eq!(out.code, Some(2), "{key} = {value}: {out}");
        assert!(
            out.stderr.contains(&format!("config.toml:{line}:"))
                && out.stderr.contains("out of range"),
            "{key} = {value}: {out}"
        );
        assert!(!out.stderr.contains("panicked"), "{out}");
    }
}

#[test]
fn a_symbolic_link_out_of_the_issue_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let issue = dir.path().join("2025-01-17");
    support::cli::copy_dir(&repo().join("tests/fixtures/send/2025-01-17"), &issue);
    let secret = write(dir.path(), "secret.txt", b"the publisher's private notes\n");
    std::fs::remove_file(issue.join("editorial.md")).unwrap();
    std::os::unix::fs::symlink(&secret, issue.join("editorial.md")).unwrap();
    let config = Config::load(Some(&repo().join("config.toml"))).unwrap();
    let err = briefing::compose::manifest::load(&issue.join("issue.toml"), &config)
        .expect_err("a link out of the issue must be refused");
    let text = err.render();
    assert!(text.contains("is outside"), "{text}");
    assert!(!text.contains("private notes"), "{text}");
}

/// A small deterministic generator (xorshift), so a failing case can be
/// replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces that have broken parsers before: quotes, escapes, tags, odd
/// numbers and dates, control and invisible characters, path climbs.
const TOKENS: &[&str] = &[
    "\"",
    "'''",
    "\\q",
    "\\u{0}",
    "\u{0}",
    "\u{200b}",
    "\u{feff}",
    "\r\n",
    "\n",
    "{{",
    "}}",
    "{{ email }}",
    "[[events]]",
    "[[news]]",
    "[closing.image]",
    "=",
    "= [",
    "9999-12-31T23:59:59",
    "0000-01-01",
    "1e-300",
    "-1",
    "nan",
    "99999999999999999999",
    "../../../../etc/passwd",
    "/dev/zero",
    "](https://{{ name }}.example/)",
    "<script>",
    "\u{202e}",
    "小红书",
    "—",
];

/// One damaged copy of `text`: a few deletions, duplications and insertions.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(chars.len());
        match rng.below(4) {
            0 => {
                let end = (at + rng.below(40)).min(chars.len());
                chars.drain(at..end);
            }
            1 => {
                let end = (at + rng.below(80)).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, t.chars());
            }
            _ => {
                if let Some(c) = chars.get_mut(at) {
                    *c = char::from_u32(rng.next() as u32 % 0x3000).unwrap_or('?');
                }
            }
        }
    }
    chars.into_iter().collect()
}

/// A hang detector, not a speed test: a case this slow is stuck.
const STUCK: Duration = Duration::from_secs(10);

#[test]
fn thousands_of_damaged_manifests_never_panic_or_hang() {
    let config = Config::load(Some(&repo().join("config.toml"))).unwrap();
    let dir = repo().join("issues/2025-01-17");
    let sample = std::fs::read_to_string(dir.join("issue.toml")).unwrap();
    let read = |p: &Path| std::fs::read(p);
    let mut rng = Rng(0x5eed_b41e_f1e9);
    let mut accepted = 0;
    for case in 0..1200 {
        let text = mutate(&sample, &mut rng);
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| {
            let loaded =
                briefing::compose::manifest::parse(&text, &dir.join("issue.toml"), &config, &read);
            if let Ok(l) = &loaded {
                // What validates must also render and lint.
                let rendered = briefing::compose::render::render(&l.issue);
                let _ = briefing::compose::lint::lint(&briefing::compose::lint::LintInput {
                    loaded: l,
                    rendered: &rendered,
                    config: &config,
                    now: jiff::Timestamp::UNIX_EPOCH,
                    recipient_fields: None,
                });
            }
            loaded.is_ok()
        });
        match result {
            Ok(ok) => accepted += usize::from(ok),
            Err(_) => panic!("case {case} panicked on:\n{text}"),
        }
        assert!(started.elapsed() < STUCK, "case {case} is stuck:\n{text}");
    }
    // The loop must exercise the renderer too, not only the parser.
    assert!(accepted > 50, "only {accepted} mutants validated");
}

#[test]
fn damaged_lists_never_panic_and_keep_their_line_numbers_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut base = String::from("email,name,plan\r\n");
    for i in 0..40 {
        base.push_str(&format!("reader{i}@example.org,Reader {i},free\r\n"));
    }
    let mut rng = Rng(0x0c5f_11e5);
    for case in 0..2000 {
        let text = mutate(&base, &mut rng);
        let path = write(dir.path(), "list.csv", text.as_bytes());
        let lines = text.lines().count() as u64 + 1;
        match std::panic::catch_unwind(|| rows(&path)) {
            Err(_) => panic!("case {case} panicked on:\n{text:?}"),
            Ok(Ok(rows)) => {
                for r in rows {
                    if let Err(line) = r {
                        assert!(
                            (2..=lines).contains(&line),
                            "case {case}: line {line} of {lines} in\n{text:?}"
                        );
                    }
                }
            }
            Ok(Err(_)) => {}
        }
    }
}

#[test]
fn the_binary_exits_0_1_or_2_on_damaged_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let issue = dir.path().join("2025-01-17");
    support::cli::copy_dir(&repo().join("issues/2025-01-17"), &issue);
    let sample = std::fs::read_to_string(issue.join("issue.toml")).unwrap();
    let mut rng = Rng(0xb1_0a5);
    for case in 0..150 {
        let text = mutate(&sample, &mut rng);
        std::fs::write(issue.join("issue.toml"), &text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_briefing"));
        cmd.current_dir(repo())
            .args(["--config", "config.toml", "check"])
            .arg(issue.join("issue.toml"));
        let out = run(cmd);
        assert!(
            matches!(out.code, Some(0..=2)) && !out.stderr.contains("panicked"),
            "case {case}: {out}\n{text}"
        );
        if out.code == Some(2) {
            assert!(
                out.stderr.contains("error"),
                "case {case}: exit 2 says why: {out}"
            );
        }
    }
}

#[test]
fn a_bad_transport_url_in_the_config_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let world = outbox_config(
        dir.path(),
        &["a@example.org"],
        &[("url", "\"smtp://[bad\"".into())],
    );
    let line = std::fs::read_to_string(&world.config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("url = "))
        .unwrap()
        + 1;
    let out = briefing(&world.config, &["send", ISSUE, "--yes"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains(&format!("config.toml:{line}:"))
            && out.stderr.contains("transport.url"),
        "{out}"
    );
}
