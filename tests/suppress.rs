//! `briefing suppress …` end to end: add/remove/list, provider CSV imports
//! and mailto requests from an mbox or Maildir, against each test's own
//! ledger. Fixtures are in tests/fixtures/suppress (see its README).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use support::cli::{Out, outbox_config, repo, run};

const ISSUE: &str = "tests/fixtures/send/2025-01-17/issue.toml";
const SLUG: &str = "2025-01-17";
const NOW: &str = "2025-01-16T12:00:00Z";
const SECRET: &str = "test-secret";

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/suppress").join(name)
}

/// A config whose list, ledger and outbox live in a temporary folder.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Fixture {
    fn new(emails: &[&str]) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("briefing-suppress-")
            .tempdir()
            .unwrap();
        let config = outbox_config(dir.path(), emails, &[]).config;
        Fixture { dir, config }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_briefing"));
        c.current_dir(repo())
            .arg("--config")
            .arg(&self.config)
            .env("BRIEFING_NOW", NOW)
            .env("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)
            .env_remove("BRIEFING_UNSUBSCRIBE_PREVIOUS_SECRETS")
            .env_remove("BRIEFING_TRANSPORT")
            .env_remove("BRIEFING_CONFIG")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_cmd(self.cmd(), args)
    }

    fn run_cmd(&self, mut c: Command, args: &[&str]) -> Out {
        c.args(args);
        run(c)
    }

    /// `suppress list --json` as email → (reason, source, created_at).
    fn list(&self) -> BTreeMap<String, (String, String, String)> {
        let out = self.run(&["suppress", "list", "--json"]);
        assert_eq!(out.code, Some(0), "{out}");
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
        v.iter()
            .map(|s| {
                let f = |k: &str| {
                    s[k].as_str()
                        .unwrap_or_else(|| panic!("no {k} in {s}"))
                        .to_string()
                };
                (f("email"), (f("reason"), f("source"), f("created_at")))
            })
            .collect()
    }
}

fn row(reason: &str, source: &str, at: &str) -> (String, String, String) {
    (reason.into(), source.into(), at.into())
}

#[test]
fn import_applies_valid_rows_and_reports_malformed_ones_by_line() {
    let f = Fixture::new(&[]);
    let file = fixture("bounces.csv");
    let out = f.run(&["suppress", "import", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out}");
    for line in [4, 7, 8] {
        assert!(
            out.stderr.contains(&format!("bounces.csv:{line}: ")),
            "no line {line}:\n{out}"
        );
    }
    assert!(out.stderr.contains("not-an-address"), "{out}");
    assert!(out.stderr.contains("4 fields, expected 3"), "{out}");
    assert!(out.stderr.contains("last tuesday"), "{out}");
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.contains("bounces.csv:"))
            .count(),
        3,
        "{out}"
    );
    assert!(out.stdout.contains("4 row(s) applied (4 new"), "{out}");
    assert!(
        out.stdout.contains("1 soft bounce(s) skipped, 3 malformed"),
        "{out}"
    );

    let want: BTreeMap<_, _> = [
        (
            "bounce1@example.org",
            row("hard-bounce", "import", "2025-01-10T08:00:00Z"),
        ),
        (
            "Complainer@Example.org",
            row("complaint", "import", "2025-01-11T09:30:00Z"),
        ),
        (
            "leaver@example.org",
            row("unsubscribed", "import", "2025-01-10T09:06:40Z"),
        ),
        ("hard2@example.org", row("hard-bounce", "import", NOW)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(f.list(), want);

    // Importing again adds nothing and still reports the bad rows.
    let out = f.run(&["suppress", "import", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.contains("(0 new, 4 already suppressed)"),
        "{out}"
    );
    assert_eq!(f.list().len(), 4);
}

#[test]
fn smtp_replies_suppress_5xx_and_skip_4xx() {
    let f = Fixture::new(&[]);
    let out = f.run(&[
        "suppress",
        "import",
        fixture("smtp-replies.csv").to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{out}");
    let list = f.list();
    assert_eq!(list.keys().collect::<Vec<_>>(), vec!["ann@example.org"]);
    assert_eq!(
        list["ann@example.org"],
        row("hard-bounce", "import", "2025-01-17T05:00:00Z")
    );
}

#[test]
fn a_file_without_an_address_column_or_unreadable_exits_2() {
    let f = Fixture::new(&[]);
    let out = f.run(&[
        "suppress",
        "import",
        fixture("no-address-column.csv").to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("no address column"), "{out}");
    assert!(out.stderr.contains("name, reason, timestamp"), "{out}");
    let missing = f.dir.path().join("missing.csv");
    let out = f.run(&["suppress", "import", missing.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("missing.csv"), "{out}");
    assert!(f.list().is_empty());
}

#[test]
fn add_remove_and_list_round_trip() {
    let f = Fixture::new(&[]);
    assert!(f.list().is_empty());
    let out = f.run(&["suppress", "list"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.is_empty() && out.stderr.contains("empty"),
        "{out}"
    );

    for (email, reason) in [
        ("a@example.org", "complaint"),
        ("b@example.org", "hard-bounce"),
        ("c@example.org", "unsubscribed"),
    ] {
        let out = f.run(&["suppress", "add", email, "--reason", reason]);
        assert_eq!(out.code, Some(0), "{out}");
        assert!(
            out.stdout
                .contains(&format!("suppressed {email} ({reason})")),
            "{out}"
        );
    }
    let out = f.run(&["suppress", "add", "d@example.org"]);
    assert_eq!(out.code, Some(0), "{out}");

    // Bad input changes nothing.
    let out = f.run(&["suppress", "add", "not an address", "--reason", "manual"]);
    assert_eq!(out.code, Some(2), "{out}");
    let out = f.run(&["suppress", "add", "e@example.org", "--reason", "bored"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains("unsubscribed, hard-bounce, complaint, manual"),
        "{out}"
    );

    // Adding again keeps the first reason.
    let out = f.run(&["suppress", "add", "A@Example.org", "--reason", "manual"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("already suppressed (complaint"),
        "{out}"
    );

    let want: BTreeMap<_, _> = [
        ("a@example.org", row("complaint", "cli", NOW)),
        ("b@example.org", row("hard-bounce", "cli", NOW)),
        ("c@example.org", row("unsubscribed", "cli", NOW)),
        ("d@example.org", row("manual", "cli", NOW)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(f.list(), want);

    let out = f.run(&["suppress", "list"]);
    assert_eq!(out.code, Some(0), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].starts_with("EMAIL") && lines[0].contains("REASON") && lines[0].contains("SINCE"),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("b@example.org") && l.contains("hard-bounce")),
        "{out}"
    );

    let out = f.run(&["suppress", "remove", "B@example.org"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("was hard-bounce"), "{out}");
    let out = f.run(&["suppress", "remove", "b@example.org"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("not on the suppression list"), "{out}");
    let left: Vec<String> = f.list().into_keys().collect();
    assert_eq!(
        left,
        vec!["a@example.org", "c@example.org", "d@example.org"]
    );
}

/// The `mailto:` URIs of the outbox messages, by recipient.
fn mailto_tokens(f: &Fixture) -> BTreeMap<String, String> {
    let dir = f.dir.path().join("outbox").join(SLUG);
    let mut out = BTreeMap::new();
    for e in fs::read_dir(&dir).unwrap() {
        let raw = fs::read(e.unwrap().path()).unwrap();
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let to = msg
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap()
            .to_lowercase();
        let mailto = msg
            .list_unsubscribe()
            .as_address()
            .into_iter()
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address())
            .find(|u| u.starts_with("mailto:"))
            .unwrap_or_else(|| panic!("no mailto in the List-Unsubscribe of {to}"))
            .to_string();
        let token = mailto
            .split_once("?subject=unsubscribe%20")
            .unwrap_or_else(|| panic!("unexpected mailto {mailto}"))
            .1
            .to_string();
        out.insert(to, token);
    }
    out
}

#[test]
fn import_mbox_suppresses_verified_requests_and_reports_forged_ones() {
    let people = [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
        "dave@example.org",
    ];
    for (kind, path) in [
        ("mbox", fixture("requests.mbox")),
        ("Maildir", fixture("maildir")),
    ] {
        let f = Fixture::new(&people);
        let out = f.run(&["send", ISSUE, "--yes"]);
        assert_eq!(out.code, Some(0), "{out}");

        // The fixture's tokens are the ones this send put in the mailto links.
        let tokens = mailto_tokens(&f);
        let mbox = fs::read_to_string(fixture("requests.mbox")).unwrap();
        for who in ["alice@example.org", "bob@example.org"] {
            assert!(
                mbox.contains(&tokens[who]),
                "requests.mbox lacks {who}'s token: regenerate it (see its README)"
            );
        }

        let out = f.run(&["suppress", "import-mbox", path.to_str().unwrap()]);
        assert_eq!(out.code, Some(0), "{kind}: {out}");
        assert!(
            out.stdout.contains(
                "3 unsubscribe request(s): 2 unsubscribed, 0 already suppressed, 1 invalid token(s)"
            ),
            "{kind}: {out}"
        );
        assert!(
            out.stderr
                .contains("<req-3@mail.example.net>: no valid unsubscribe token"),
            "{kind}: {out}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "{kind}: {out}");
        let want: BTreeMap<_, _> = [
            ("alice@example.org", row("unsubscribed", "mailto", NOW)),
            ("bob@example.org", row("unsubscribed", "mailto", NOW)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(f.list(), want, "{kind}");

        // A rerun over the same mailbox changes nothing.
        let out = f.run(&["suppress", "import-mbox", path.to_str().unwrap()]);
        assert_eq!(out.code, Some(0), "{kind}: {out}");
        assert!(
            out.stdout
                .contains("0 unsubscribed, 2 already suppressed, 1 invalid"),
            "{kind}: {out}"
        );
        assert_eq!(f.list().len(), 2);
    }
}

#[test]
fn import_mbox_needs_the_secret_and_a_readable_mailbox() {
    let f = Fixture::new(&[]);
    let mut c = f.cmd();
    c.env_remove("BRIEFING_UNSUBSCRIBE_SECRET");
    let out = f.run_cmd(
        c,
        &[
            "suppress",
            "import-mbox",
            fixture("requests.mbox").to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("BRIEFING_UNSUBSCRIBE_SECRET"), "{out}");
    let out = f.run(&[
        "suppress",
        "import-mbox",
        f.dir.path().join("nothing-here").to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(2), "{out}");
    // A folder that is not a Maildir.
    let out = f.run(&["suppress", "import-mbox", f.dir.path().to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("cur"), "{out}");
}
