//! Several newsletters in one repository (README, "Several newsletters"):
//! `[newsletters]` in config.toml names a file per further newsletter with
//! what differs. Each has its own readers, List-Id, ledger (so its own
//! unsubscribes), issues folder and archive; `send --due`, `serve` and
//! `archive` act on all of them.
//!
//! Sends go to the aiosmtpd test server (tests/support) and every message is
//! parsed with mail-parser; unsubscribes are real one-click POSTs to
//! `briefing serve`.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::cli::{copy_dir, outbox_config, repo, run, toml_path};
use support::{Received, ServerOptions, SmtpServer, header, per_rcpt};

const FIXTURE: &str = "tests/fixtures/send/2025-01-17";
const SECRET: &str = "test-secret";
const MAIN_LIST_ID: &str = "china-brief.briefing.example.org";
const EUROPE_LIST_ID: &str = "europe-brief.briefing.example.org";
const EUROPE_UNSUBSCRIBE: &str = "https://briefing.example.org/europe/unsubscribe";
const MAIN_UNSUBSCRIBE: &str = "https://briefing.example.org/unsubscribe";

/// A repository with two newsletters: config.toml's own (`main`) and
/// `europe`, each with its readers and one issue due on 2025-01-17.
struct Repository {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Repository {
    fn new(main_readers: &[&str], europe_readers: &[&str], transport: &str) -> Repository {
        let dir = tempfile::Builder::new()
            .prefix("briefing-newsletters-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        let config = outbox_config(
            root,
            main_readers,
            &[
                ("url", format!("\"{transport}\"")),
                ("out", toml_path(&root.join("site"))),
            ],
        )
        .config;
        let text = fs::read_to_string(&config).unwrap();
        // `issues` is a top-level key, so it goes before the first table.
        fs::write(
            &config,
            format!(
                "issues = {}\n{text}\n[newsletters]\neurope = \"newsletters/europe.toml\"\n",
                toml_path(&root.join("issues"))
            ),
        )
        .unwrap();
        let europe_list = root.join("europe.csv");
        let mut csv = String::from("email,name\n");
        for e in europe_readers {
            csv.push_str(&format!("{e},\n"));
        }
        fs::write(&europe_list, csv).unwrap();
        fs::create_dir_all(root.join("newsletters")).unwrap();
        fs::write(
            root.join("newsletters/europe.toml"),
            format!(
                r#"# Europe Brief: only what differs from config.toml.
[newsletter]
name = "Europe Brief"
archive_base_url = "https://briefing.example.org/europe/archive"

[sender]
from_name = "Europe Brief"
list_id = "{EUROPE_LIST_ID}"

[send]
lists = [{}]

[unsubscribe]
base_url = "{EUROPE_UNSUBSCRIBE}"
"#,
                toml_path(&europe_list)
            ),
        )
        .unwrap();
        let repo_ = Repository { dir, config };
        repo_.add_issue("issues/2025-01-17", None);
        repo_.add_issue(
            "issues/europe/2025-01-17",
            Some("Europe Brief: ports and rails"),
        );
        repo_
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The fixture issue at `rel`, with another subject if given.
    fn add_issue(&self, rel: &str, subject: Option<&str>) {
        let to = self.root().join(rel);
        copy_dir(&repo().join(FIXTURE), &to);
        if let Some(subject) = subject {
            let m = to.join("issue.toml");
            let text = fs::read_to_string(&m).unwrap();
            let (before, after) = text.split_once("subject = ").unwrap();
            let rest = after.split_once('\n').unwrap().1;
            fs::write(&m, format!("{before}subject = \"{subject}\"\n{rest}")).unwrap();
        }
    }

    /// A later issue in a folder: the fixture with another slug and send time.
    fn add_later_issue(&self, rel: &str, send_at: &str) {
        self.add_issue(rel, None);
        let m = self.root().join(rel).join("issue.toml");
        let text = fs::read_to_string(&m).unwrap();
        let text = text.replace(
            "send_at = 2025-01-17T06:00:00",
            &format!("send_at = {send_at}"),
        );
        assert!(text.contains(send_at), "the fixture's send_at changed");
        fs::write(&m, text).unwrap();
    }

    fn cmd(&self, now: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_briefing"));
        c.current_dir(self.root())
            .arg("--config")
            .arg(&self.config)
            .env("BRIEFING_NOW", now)
            .env("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)
            .env_remove("BRIEFING_UNSUBSCRIBE_PREVIOUS_SECRETS")
            .env_remove("BRIEFING_TRANSPORT")
            .env_remove("BRIEFING_NEWSLETTER")
            .env_remove("BRIEFING_CONFIG");
        c
    }

    fn send_due(&self, now: &str) {
        let mut c = self.cmd(now);
        c.args(["send", "--due"]);
        let out = run(c);
        assert_eq!(out.code, Some(0), "send --due failed:\n{out}");
    }
}

/// Message by recipient and List-Id.
fn by_reader_and_list(got: &[Received]) -> BTreeMap<(String, String), Received> {
    let mut out = BTreeMap::new();
    for r in got {
        let msg = r.parsed();
        let list = header(&msg, "List-Id").expect("List-Id");
        let id = list
            .rsplit('<')
            .next()
            .unwrap()
            .trim_end_matches('>')
            .to_string();
        let to = r.envelope.rcpt_tos[0].to_lowercase();
        assert!(
            out.insert((to.clone(), id.clone()), r.clone()).is_none(),
            "{to} got {id} twice"
        );
    }
    out
}

/// The https List-Unsubscribe URI of a message.
fn unsubscribe_uri(r: &Received) -> String {
    let msg = r.parsed();
    msg.list_unsubscribe()
        .as_address()
        .expect("List-Unsubscribe holds URIs")
        .iter()
        .filter_map(|a| a.address().map(str::to_string))
        .find(|u| u.starts_with("https://"))
        .expect("an https unsubscribe URI")
}

#[test]
fn each_newsletter_reaches_its_own_readers_with_its_own_list_id() {
    let smtp = SmtpServer::start(ServerOptions::new());
    let repo_ = Repository::new(
        &["ana@example.org", "both@example.org"],
        &["both@example.org", "ben@example.org"],
        &smtp.url(),
    );
    repo_.send_due("2025-01-17T05:30:00Z");
    let got = smtp.wait_for_count(4, Duration::from_secs(60));
    assert_eq!(got.len(), 4);
    let counts = per_rcpt(&got);
    assert_eq!(counts["both@example.org"], 2, "{counts:?}");
    let by = by_reader_and_list(&got);
    let keys: Vec<(&str, &str)> = by.keys().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        keys,
        [
            ("ana@example.org", MAIN_LIST_ID),
            ("ben@example.org", EUROPE_LIST_ID),
            ("both@example.org", MAIN_LIST_ID),
            ("both@example.org", EUROPE_LIST_ID),
        ]
    );
    let europe = by[&("ben@example.org".into(), EUROPE_LIST_ID.into())].parsed();
    assert_eq!(europe.subject(), Some("Europe Brief: ports and rails"));
    let from = europe.from().and_then(|f| f.first()).expect("From");
    assert_eq!(from.name(), Some("Europe Brief"));
    assert!(
        unsubscribe_uri(&by[&("ben@example.org".into(), EUROPE_LIST_ID.into())])
            .starts_with(EUROPE_UNSUBSCRIBE)
    );
    assert!(
        unsubscribe_uri(&by[&("ana@example.org".into(), MAIN_LIST_ID.into())])
            .starts_with(MAIN_UNSUBSCRIBE)
    );
    // Each newsletter keeps its own ledger.
    assert!(repo_.root().join("state/briefing.sqlite").is_file());
    assert!(repo_.root().join("state/europe.sqlite").is_file());

    // A second tick sends nothing more: both issues are done in their ledgers.
    repo_.send_due("2025-01-17T05:40:00Z");
    assert_eq!(smtp.received().len(), 4);
}

/// A running `briefing serve` for every newsletter; killed on drop.
struct Serve {
    child: Child,
    addrs: BTreeMap<String, String>,
}

impl Serve {
    fn start(mut cmd: Command, log: &Path) -> Serve {
        let err = fs::File::create(log).unwrap();
        let mut child = cmd
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn briefing serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addrs = BTreeMap::new();
        while addrs.len() < 2 {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| {
                    let _ = child.kill();
                    panic!(
                        "briefing serve did not announce both addresses ({e}):\n{}",
                        fs::read_to_string(log).unwrap_or_default()
                    )
                });
            let rest = line
                .strip_prefix("listening on http://")
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            let (addr, id) = rest
                .split_once(" for newsletter ")
                .unwrap_or_else(|| panic!("no newsletter named in {line:?}"));
            addrs.insert(id.to_string(), addr.to_string());
        }
        Serve { child, addrs }
    }

    /// A public unsubscribe URL of newsletter `id` mapped to its listener.
    fn local(&self, id: &str, public: &str, base: &str) -> String {
        let rest = public.strip_prefix(base).expect("under the base URL");
        format!("http://{}/unsubscribe{rest}", self.addrs[id])
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn one_click(url: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    agent
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("List-Unsubscribe=One-Click")
        .expect("HTTP request")
        .status()
        .as_u16()
}

#[test]
fn an_unsubscribe_from_one_newsletter_leaves_the_other_alone() {
    let smtp = SmtpServer::start(ServerOptions::new());
    let repo_ = Repository::new(&["both@example.org"], &["both@example.org"], &smtp.url());
    // Both listeners on free ports.
    let europe_file = repo_.root().join("newsletters/europe.toml");
    let text = fs::read_to_string(&europe_file).unwrap();
    fs::write(
        &europe_file,
        format!("{text}\n[serve]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let main_config = fs::read_to_string(&repo_.config).unwrap();
    let main_config =
        main_config.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
    fs::write(&repo_.config, main_config).unwrap();

    repo_.send_due("2025-01-17T05:30:00Z");
    let got = smtp.wait_for_count(2, Duration::from_secs(60));
    let by = by_reader_and_list(&got);
    let europe_link = unsubscribe_uri(&by[&("both@example.org".into(), EUROPE_LIST_ID.into())]);

    let serve = Serve::start(
        repo_.cmd("2025-01-17T07:00:00Z"),
        &repo_.root().join("serve.log"),
    );
    // Europe's token means nothing to the main newsletter's endpoint.
    let wrong = serve.local(
        "main",
        &europe_link.replace(EUROPE_UNSUBSCRIBE, MAIN_UNSUBSCRIBE),
        MAIN_UNSUBSCRIBE,
    );
    assert_ne!(one_click(&wrong), 200, "main accepted europe's token");
    assert_eq!(
        one_click(&serve.local("europe", &europe_link, EUROPE_UNSUBSCRIBE)),
        200
    );
    drop(serve);

    // The next week: both newsletters have a new issue.
    repo_.add_later_issue("issues/2025-01-24", "2025-01-24T06:00:00");
    repo_.add_later_issue("issues/europe/2025-01-24", "2025-01-24T06:00:00");
    repo_.send_due("2025-01-24T05:30:00Z");
    let got = smtp.wait_for_count(3, Duration::from_secs(60));
    assert_eq!(
        got.len(),
        3,
        "the unsubscribed reader got europe's next issue"
    );
    let last = &got[2];
    assert_eq!(
        header(&last.parsed(), "List-Id").map(|l| l.contains(MAIN_LIST_ID)),
        Some(true),
        "the third message is the main newsletter's"
    );
}

#[test]
fn every_newsletter_gets_its_own_archive() {
    let repo_ = Repository::new(&["ana@example.org"], &["ben@example.org"], "outbox:outbox");
    repo_.send_due("2025-01-17T05:30:00Z");
    // Outboxes are per newsletter too: both issues are `2025-01-17`.
    assert!(
        repo_
            .root()
            .join("outbox/2025-01-17/ana@example.org.eml")
            .is_file()
    );
    assert!(
        repo_
            .root()
            .join("outbox/europe/2025-01-17/ben@example.org.eml")
            .is_file()
    );
    let mut c = repo_.cmd("2025-01-18T12:00:00Z");
    c.arg("archive");
    let out = run(c);
    assert_eq!(out.code, Some(0), "{out}");
    let main = fs::read_to_string(repo_.root().join("site/2025-01-17/index.html")).unwrap();
    let europe =
        fs::read_to_string(repo_.root().join("site/europe/2025-01-17/index.html")).unwrap();
    assert!(main.contains("China Brief") && !main.contains("Europe Brief"));
    assert!(europe.contains("Europe Brief: ports and rails"));
    let feed = fs::read_to_string(repo_.root().join("site/europe/feed.xml")).unwrap();
    assert!(
        feed.contains("https://briefing.example.org/europe/archive"),
        "{feed}"
    );
}

/// `briefing check` of an issue in a repository whose europe.toml is `text`.
fn check_with_europe(text: &str) -> support::cli::Out {
    let repo_ = Repository::new(&["ana@example.org"], &["ben@example.org"], "outbox:outbox");
    fs::write(repo_.root().join("newsletters/europe.toml"), text).unwrap();
    let mut c = repo_.cmd("2025-01-16T12:00:00Z");
    c.args(["check", "issues/europe/2025-01-17/issue.toml"]);
    run(c)
}

#[test]
fn a_misspelt_key_in_a_newsletter_file_points_at_its_line() {
    let out = check_with_europe(
        "[newsletter]\nname = \"Europe Brief\"\narchive_base_url = \"https://e.example.org/a\"\n[sender]\nlist_id = \"europe.example.org\"\nform_name = \"Europe\"\n[send]\nlists = [\"europe.csv\"]\n[unsubscribe]\nbase_url = \"https://e.example.org/u\"\n",
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("europe.toml:6"), "{out}");
    assert!(out.stderr.contains("form_name"), "{out}");
}

#[test]
fn a_newsletter_must_have_its_own_list_id() {
    let out = check_with_europe(
        "[newsletter]\nname = \"Europe Brief\"\narchive_base_url = \"https://e.example.org/a\"\n[send]\nlists = [\"europe.csv\"]\n[unsubscribe]\nbase_url = \"https://e.example.org/u\"\n",
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("europe.toml"), "{out}");
    assert!(out.stderr.contains("sender.list_id"), "{out}");
}

#[test]
fn two_newsletters_may_not_share_a_list_id() {
    let out = check_with_europe(&format!(
        "[newsletter]\nname = \"Europe Brief\"\narchive_base_url = \"https://e.example.org/a\"\n[sender]\nlist_id = \"{MAIN_LIST_ID}\"\n[send]\nlists = [\"europe.csv\"]\n[unsubscribe]\nbase_url = \"https://e.example.org/u\"\n"
    ));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("europe.toml:5"), "{out}");
    assert!(
        out.stderr.contains("same sender.list_id as `main`"),
        "{out}"
    );
}

#[test]
fn an_inherited_value_out_of_range_in_a_newsletter_points_at_its_own_file() {
    let out = check_with_europe(
        "[newsletter]\nname = \"Europe Brief\"\narchive_base_url = \"https://e.example.org/a\"\n[sender]\nlist_id = \"europe.example.org\"\n[send]\nlists = [\"europe.csv\"]\n[unsubscribe]\nbase_url = \"https://e.example.org/u\"\n[transport]\npool_size = 0\n",
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("europe.toml:11"), "{out}");
    assert!(out.stderr.contains("transport.pool_size"), "{out}");
}

#[test]
fn an_unknown_newsletter_names_the_ones_there_are() {
    let repo_ = Repository::new(&["ana@example.org"], &["ben@example.org"], "outbox:outbox");
    let mut c = repo_.cmd("2025-01-16T12:00:00Z");
    c.args(["--newsletter", "asia", "status"]);
    let out = run(c);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("main, europe"), "{out}");
    // Suppressions are per newsletter: with several, the operator says which.
    let mut c = repo_.cmd("2025-01-16T12:00:00Z");
    c.args(["suppress", "list"]);
    let out = run(c);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("--newsletter main|europe"), "{out}");
}

#[test]
fn on_a_postgresql_ledger_each_newsletter_gets_its_own_schema() {
    let repo_ = Repository::new(&["ana@example.org"], &["ben@example.org"], "outbox:outbox");
    let text = fs::read_to_string(&repo_.config).unwrap();
    let text = text.replace(
        &format!(
            "ledger = {}",
            toml_path(&repo_.root().join("state/briefing.sqlite"))
        ),
        "ledger = \"postgres://briefing@db.example.org/briefing\"",
    );
    assert!(text.contains("postgres://"), "the ledger line moved");
    let config = briefing::config::Config::parse(&text, "config.toml", repo_.root())
        .unwrap_or_else(|d| panic!("{}", d.render()));
    let europe = config.by_id("europe").expect("europe");
    assert_eq!(europe.send.ledger, config.send.ledger);
    assert_eq!(europe.send.ledger_schema.as_deref(), Some("europe"));
    assert_eq!(config.send.ledger_schema, None);
}
