//! The ledger on PostgreSQL, end to end: `briefing send --due` from two
//! working folders (as two hosts would run it) against one database and
//! one SMTP server, a host killed halfway, and a SQLite ledger migrated
//! and resumed.
//!
//! The database is a throwaway cluster this test binary starts
//! (tests/support/pg.rs: initdb and pg_ctl in a temporary folder); each
//! test has a schema of its own (`send.ledger_schema`). Needs Debian's
//! `postgresql` and `python3` with `aiosmtpd` (tests/run.sh installs both).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cli::{Out, Running, copy_dir, count_of, email, repo, write_config};
use support::{ServerOptions, SmtpServer, per_rcpt, stored_count};

const SECRET: &str = "s";
const POOL_SIZE: u64 = 4;
/// The variable the test configs name for the database password.
const PASSWORD_ENV: &str = "BRIEFING_TEST_LEDGER_PASSWORD";

/// One host: its own working folder, issues, list and config, sharing the
/// database (or, with `ledger` a path, a SQLite file of its own).
struct Host {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Host {
    fn new(smtp: &str, ledger: &str, emails: &[String]) -> Host {
        let dir = tempfile::Builder::new()
            .prefix("briefing-pg-host-")
            .tempdir()
            .expect("temp dir");
        let mut list = String::from("email,name\n");
        for (i, e) in emails.iter().enumerate() {
            list.push_str(&format!("{e},Reader {i}\n"));
        }
        fs::write(dir.path().join("list.csv"), list).unwrap();
        fs::write(dir.path().join("suppressed.csv"), "email,reason\n").unwrap();
        let config = dir.path().join("config.toml");
        write_config(
            &config,
            &[
                ("lists", "[\"list.csv\"]".to_string()),
                ("suppressed", "\"suppressed.csv\"".to_string()),
                ("ledger", ledger.to_string()),
                ("url", format!("\"{smtp}\"")),
                ("pool_size", POOL_SIZE.to_string()),
                ("backoff_ms", "20".to_string()),
            ],
        );
        Host { dir, config }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `issues/<slug>/`, the fixture issue with this subject, due at
    /// 2026-01-15T05:00:00Z.
    fn add_issue(&self, slug: &str, subject: &str) -> String {
        let folder = self.path().join("issues").join(slug);
        copy_dir(&repo().join("tests/fixtures/send/2025-01-17"), &folder);
        let manifest = folder.join("issue.toml");
        let text = fs::read_to_string(&manifest).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            let new = match key {
                "date" if !line.starts_with(' ') => "date = 2026-01-15".to_string(),
                "subject" if !line.starts_with(' ') => format!("subject = \"{subject}\""),
                "send_at" if !line.starts_with(' ') => "send_at = 2026-01-15T05:00:00Z".into(),
                _ => line.to_string(),
            };
            out.push_str(&new);
            out.push('\n');
        }
        assert!(
            out.contains("send_at = 2026-01-15T05:00:00Z"),
            "the fixture issue has no top-level send_at any more"
        );
        fs::write(&manifest, out).unwrap();
        format!("issues/{slug}/issue.toml")
    }

    fn cmd(&self, now: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_briefing"));
        c.current_dir(self.path())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)
            .env("BRIEFING_NOW", now)
            .env(PASSWORD_ENV, support::pg::PASSWORD)
            .env_remove("PGPASSWORD")
            .env_remove("BRIEFING_TRANSPORT")
            .env_remove("BRIEFING_CONFIG")
            .env_remove("BRIEFING_SMTP_PASSWORD")
            .env_remove("BRIEFING_UNSUBSCRIBE_PREVIOUS_SECRETS");
        c
    }

    fn run(&self, now: &str, args: &[&str]) -> Out {
        Running::spawn(self.cmd(now, args)).wait()
    }

    fn status(&self, now: &str, manifest: &str) -> Value {
        let out = self.run(now, &["status", manifest, "--json"]);
        assert_eq!(out.code, Some(0), "status failed:\n{out}");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{out}"))
    }
}

/// A `[send]` ledger setting for the test cluster in schema `schema`.
fn pg_ledger(schema: &str) -> String {
    format!(
        "\"{}\"\nledger_schema = \"{schema}\"\nledger_password_env = \"{PASSWORD_ENV}\"",
        support::pg::cluster().url()
    )
}

fn emails(n: usize) -> Vec<String> {
    (0..n).map(email).collect()
}

/// Every address got exactly one message, and nobody else got any.
fn assert_one_each(got: &BTreeMap<String, usize>, emails: &[String]) {
    for e in emails {
        assert_eq!(got.get(e).copied().unwrap_or(0), 1, "{e}");
    }
    assert_eq!(got.len(), emails.len(), "messages outside the list");
}

/// Messages per recipient for each decoded Subject (parsed by mail-parser).
fn by_subject(server: &SmtpServer) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for r in server.received() {
        let subject = r.parsed().subject().unwrap_or_default().to_string();
        let to = r.envelope.rcpt_tos.join(",").to_lowercase();
        *out.entry(subject).or_default().entry(to).or_insert(0) += 1;
    }
    out
}

/// Waits until the server stored at least `n` messages.
fn wait_stored(server: &SmtpServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_count(server) < n {
        assert!(Instant::now() < deadline, "fewer than {n} messages in 30 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn two_hosts_sending_due_at_once_mail_every_reader_once() {
    let server = SmtpServer::start(ServerOptions::new().slow_ms(10));
    let list = emails(200);
    let ledger = pg_ledger("two_hosts");
    let (a, b) = (
        Host::new(&server.url(), &ledger, &list),
        Host::new(&server.url(), &ledger, &list),
    );
    let manifest = a.add_issue("shared", "Two hosts");
    b.add_issue("shared", "Two hosts");
    let now = "2026-01-15T05:00:30Z";
    let ra = Running::spawn(a.cmd(now, &["send", "--due"]));
    let rb = Running::spawn(b.cmd(now, &["send", "--due"]));
    let (ra, rb) = (ra.wait(), rb.wait());
    let both = format!("=== host A ===\n{ra}\n=== host B ===\n{rb}");
    assert_eq!((ra.code, rb.code), (Some(0), Some(0)), "{both}");
    assert_one_each(&per_rcpt(&server.received()), &list);
    let sent_all = |o: &Out| o.stdout.contains("summary: sent 200 (this run 200)");
    assert!(
        sent_all(&ra) != sent_all(&rb),
        "exactly one host sends the issue:\n{both}"
    );
    // Either host reads the same ledger.
    for h in [&a, &b] {
        let s = h.status(now, &manifest);
        assert_eq!(s["state"], "sent", "{s:#}");
        assert_eq!(count_of(&s, "sent"), 200, "{s:#}");
    }
}

#[test]
fn a_host_killed_halfway_is_finished_by_the_other_without_duplicates() {
    let server = SmtpServer::start(ServerOptions::new().slow_ms(20));
    let list = emails(300);
    let ledger = pg_ledger("killed_host");
    let (a, b) = (
        Host::new(&server.url(), &ledger, &list),
        Host::new(&server.url(), &ledger, &list),
    );
    let manifest = a.add_issue("killed", "Killed host");
    b.add_issue("killed", "Killed host");
    let tick1 = "2026-01-15T05:00:00Z";
    let run = Running::spawn(a.cmd(tick1, &["send", "--due"]));
    wait_stored(&server, 60);
    // While A sends, B's tick stands aside: the advisory lock is held.
    let during = b.run(tick1, &["send", "--due"]);
    assert_eq!(during.code, Some(0), "{during}");
    assert!(
        during.stdout.contains("being sent by another"),
        "host B must see the issue busy while A sends:\n{during}"
    );
    // By hand it exits 3 and names the holder (pid and host of A).
    let by_hand = b.run(tick1, &["send", &manifest, "--yes"]);
    assert_eq!(by_hand.code, Some(3), "{by_hand}");
    assert!(by_hand.all().contains("(pid "), "{by_hand}");
    // And either host's status sees who is sending.
    let s = b.status(tick1, &manifest);
    assert_eq!(s["state"], "sending", "{s:#}");
    let killed = run.kill();
    assert_eq!(killed.code, None, "A must have been killed:\n{killed}");
    let at_kill = stored_count(&server);
    assert!(at_kill < 300, "A finished before the kill; make it slower");

    // A's session died with it, and with it the lock: B's next tick resumes.
    let tick2 = "2026-01-15T05:01:00Z";
    let out = b.run(tick2, &["send", "--due"]);
    let s = b.status(tick2, &manifest);
    let uncertain: Vec<String> = s["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] == "uncertain")
        .map(|f| f["email"].as_str().unwrap().to_lowercase())
        .collect();
    let want = if uncertain.is_empty() { 0 } else { 1 };
    assert_eq!(out.code, Some(want), "{out}\n{s:#}");
    // Only rows past their end-of-data mark: one per connection at most.
    assert!(uncertain.len() as u64 <= POOL_SIZE, "{s:#}");
    assert_eq!(count_of(&s, "uncertain"), uncertain.len() as u64, "{s:#}");
    assert_eq!(
        count_of(&s, "sent") + count_of(&s, "uncertain"),
        300,
        "{s:#}"
    );
    let got = per_rcpt(&server.received());
    for e in &list {
        let n = got.get(e).copied().unwrap_or(0);
        if uncertain.contains(e) {
            assert!(n <= 1, "uncertain {e} got {n}");
        } else {
            assert_eq!(n, 1, "{e} got {n} messages");
        }
    }
}

#[test]
fn a_migrated_sqlite_ledger_resumes_its_stopped_send_on_postgresql() {
    let server = SmtpServer::start(ServerOptions::new());
    let list = emails(40);
    let old = Host::new(&server.url(), "\"state/briefing.sqlite\"", &list);
    let done = old.add_issue("done", "Finished before the move");
    let stopped = old.add_issue("stopped", "Stopped before the move");
    let now = "2026-01-15T05:00:30Z";
    let out = old.run(now, &["send", &done, "--yes"]);
    assert_eq!(out.code, Some(0), "{out}");
    let out = old.run(now, &["send", &stopped, "--yes", "--limit", "15"]);
    assert_eq!(old.status(now, &stopped)["state"], "stopped", "{out}");
    let out = old.run(
        now,
        &["suppress", "add", &list[39], "--reason", "complaint"],
    );
    assert_eq!(out.code, Some(0), "{out}");

    let ledger = pg_ledger("migrated");
    let new = Host::new(&server.url(), &ledger, &list);
    new.add_issue("done", "Finished before the move");
    new.add_issue("stopped", "Stopped before the move");
    let sqlite = old.path().join("state/briefing.sqlite");
    let url = support::pg::cluster().url();
    let args = [
        "ledger",
        "migrate",
        "--from",
        sqlite.to_str().unwrap(),
        "--to",
        &url,
    ];
    let out = new.run(now, &args);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains("2 send(s), 80 delivery row(s), 1 suppression(s); counts match"),
        "{out}"
    );
    // A second migration into the same ledger is refused.
    let again = new.run(now, &args);
    assert_ne!(again.code, Some(0), "{again}");
    assert!(!again.all().contains(support::pg::PASSWORD), "{again}");

    let out = new.run("2026-01-15T05:01:00Z", &["send", "--due"]);
    assert_eq!(out.code, Some(0), "{out}");
    let s = new.status(now, &stopped);
    assert_eq!(s["state"], "sent", "{s:#}");
    assert_eq!(count_of(&s, "sent"), 39, "{s:#}");
    assert_eq!(count_of(&s, "suppressed"), 1, "{s:#}");
    assert_eq!(new.status(now, &done)["state"], "sent");
    // Each issue reached each reader once (the suppressed one for the
    // first issue only, sent before the complaint).
    let got = by_subject(&server);
    assert_one_each(&got["Finished before the move"], &list);
    assert_one_each(&got["Stopped before the move"], &list[..39]);
}

/// A running `briefing serve` on a free loopback port; killed on drop.
struct Serve {
    child: std::process::Child,
    addr: String,
}

impl Serve {
    fn start(host: &Host) -> Serve {
        use std::io::BufRead;
        let mut child = host
            .cmd(
                "2026-01-15T05:10:00Z",
                &["serve", "--listen", "127.0.0.1:0"],
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn briefing serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(line))) if line.starts_with("listening on http://") => {
                line["listening on http://".len()..].trim().to_string()
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("briefing serve did not announce its address: {other:?}");
            }
        };
        Serve { child, addr }
    }

    /// POSTs RFC 8058's one-click body for `token`; the HTTP status.
    fn one_click(&self, token: &str) -> u16 {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .post(format!("http://{}/unsubscribe/{token}", self.addr))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send("List-Unsubscribe=One-Click")
            .expect("HTTP request")
            .status()
            .as_u16()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each recipient's unsubscribe token, from the `List-Unsubscribe` header
/// of the messages the server got (parsed by mail-parser).
fn tokens(server: &SmtpServer) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in server.received() {
        let msg = r.parsed();
        let https = msg
            .list_unsubscribe()
            .as_address()
            .expect("List-Unsubscribe holds URIs")
            .iter()
            .filter_map(|a| a.address())
            .find(|u| u.starts_with("https://"))
            .expect("an https unsubscribe URI")
            .to_string();
        let token = https.rsplit('/').next().unwrap().to_string();
        out.insert(r.envelope.rcpt_tos[0].to_lowercase(), token);
    }
    out
}

#[test]
fn endpoints_on_two_hosts_both_unsubscribe_and_the_next_send_honours_them() {
    let server = SmtpServer::start(ServerOptions::new());
    let list = emails(10);
    let ledger = pg_ledger("two_endpoints");
    let (a, b) = (
        Host::new(&server.url(), &ledger, &list),
        Host::new(&server.url(), &ledger, &list),
    );
    let first = a.add_issue("first", "First issue");
    let out = a.run("2026-01-15T05:00:30Z", &["send", &first, "--yes"]);
    assert_eq!(out.code, Some(0), "{out}");
    let tokens = tokens(&server);
    assert_eq!(tokens.len(), 10);
    // Each host's endpoint, as a load balancer would spread the clicks.
    let (serve_a, serve_b) = (Serve::start(&a), Serve::start(&b));
    assert_eq!(serve_a.one_click(&tokens[&list[0]]), 200);
    assert_eq!(serve_b.one_click(&tokens[&list[1]]), 200);
    // A repeat on the other host is harmless.
    assert_eq!(serve_a.one_click(&tokens[&list[1]]), 200);

    let second = b.add_issue("second", "Second issue");
    let out = b.run("2026-01-15T05:20:00Z", &["send", &second, "--yes"]);
    assert_eq!(out.code, Some(0), "{out}");
    let s = b.status("2026-01-15T05:20:00Z", &second);
    assert_eq!(count_of(&s, "suppressed"), 2, "{s:#}");
    assert_eq!(count_of(&s, "sent"), 8, "{s:#}");
    let got = by_subject(&server);
    assert_one_each(&got["Second issue"], &list[2..]);
}
