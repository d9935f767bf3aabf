//! `briefing send` end to end: the real binary against a real SMTP server
//! (tests/support/smtp_server.py, aiosmtpd) with fault injection, DKIM
//! checked by an independent verifier (tests/support/dkim_verify.py).
//!
//! Every test writes its own config, recipient list, suppression list and
//! ledger into a temporary folder and runs the binary with the repository
//! root as its working directory, so `tests/fixtures/send/2025-01-17/issue.toml` resolves.
//! The binary is a separate process: messages are read after it exits, or
//! by polling the server's maildir while it runs.
//!
//! Needs `python3` with `aiosmtpd`, `dkimpy` and `pynacl` (tests/run.sh
//! installs them).
//!
//! Tests 15 and 16 show bugs in src (an overspent `--limit` budget, and
//! retried rows that skip the suppression list); their doc comments say why.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::MimeHeaders;
use support::cli::{Out, copy_dir, count_of, email, repo, run, toml_path};
use support::{ServerOptions, SmtpServer, per_rcpt, stored_count};

/// The fixture issue these tests send, relative to the repository root.
const ISSUE: &str = "tests/fixtures/send/2025-01-17/issue.toml";
/// Its slug (the folder name).
const SLUG: &str = "2025-01-17";
/// A fixed "now" before the issue's events, so `check` passes.
const NOW: &str = "2025-01-16T12:00:00Z";
const SECRET: &str = "test-secret";
const DOMAIN: &str = "briefing.example.org";
const FROM: &str = "news@briefing.example.org";

/// One CSV field, quoted when needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_row(email: &str, name: &str, company: &str) -> String {
    format!(
        "{},{},{}",
        csv_field(email),
        csv_field(name),
        csv_field(company)
    )
}

const NAMES: &[&str] = &[
    "Anna Schmidt",
    "Zoë Ångström",
    "Li Wei",
    "María José Núñez",
    "Jürgen Groß",
    "Kenji",
    "Ólafur Arnalds",
    "张伟",
];

/// The name of list member `i`; every 11th has none.
fn name(i: usize) -> String {
    if i.is_multiple_of(11) {
        String::new()
    } else {
        NAMES[i % NAMES.len()].to_string()
    }
}

/// A list of `n` members (`reader0000@…` on), header `email,name,company`.
fn simple_list(n: usize) -> Vec<String> {
    let mut lines = vec!["email,name,company".to_string()];
    lines.extend((0..n).map(|i| csv_row(&email(i), &name(i), "ACME")));
    lines
}

/// A test's own config, lists and ledger in a temporary folder.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    list: PathBuf,
    suppressed: PathBuf,
    ledger: PathBuf,
}

impl Fixture {
    /// The repository's config.toml with this test's paths and transport,
    /// fast retries and a [dkim] section with the fixture keys.
    /// `transport_extra` holds `key = value` lines that replace the same
    /// keys under `[transport]` or are added there.
    fn new(url: &str, pool_size: usize, max_attempts: u32, transport_extra: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("briefing-send-")
            .tempdir()
            .expect("temp dir");
        let list = dir.path().join("list.csv");
        let suppressed = dir.path().join("suppressed.csv");
        let ledger = dir.path().join("state").join("briefing.sqlite");
        fs::write(&list, "email,name,company\n").unwrap();
        fs::write(&suppressed, "email,reason\n").unwrap();
        let base = fs::read_to_string(repo().join("config.toml")).expect("repo config.toml");
        let key_of = |line: &str| line.split('=').next().unwrap_or("").trim().to_string();
        // `transport_extra` lines replace the same keys of [transport], or
        // are added to it.
        let extra: BTreeMap<String, &str> = transport_extra
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| (key_of(l), l))
            .collect();
        let mut section = String::new();
        let mut base_transport_keys = BTreeSet::new();
        for line in base.lines() {
            if line.starts_with('[') {
                section = line.trim().to_string();
            } else if section == "[transport]" {
                base_transport_keys.insert(key_of(line));
            }
        }
        let mut text = String::new();
        let mut replaced = BTreeSet::new();
        section.clear();
        for line in base.lines() {
            if line.starts_with('[') {
                section = line.trim().to_string();
            }
            let key = key_of(line);
            let new = match key.as_str() {
                _ if section == "[transport]" && extra.contains_key(&key) => {
                    Some(extra[&key].to_string())
                }
                "lists" => Some(format!("lists = [{}]", toml_path(&list))),
                "suppressed" => Some(format!("suppressed = {}", toml_path(&suppressed))),
                "ledger" => Some(format!("ledger = {}", toml_path(&ledger))),
                "url" => Some(format!("url = \"{url}\"")),
                "pool_size" => Some(format!("pool_size = {pool_size}")),
                "max_attempts" => Some(format!("max_attempts = {max_attempts}")),
                "backoff_ms" => Some("backoff_ms = 20".to_string()),
                _ => None,
            };
            match new {
                Some(n) => {
                    replaced.insert(key);
                    text.push_str(&n);
                }
                None => text.push_str(line),
            }
            text.push('\n');
            if line.trim() == "[transport]" {
                for (k, l) in &extra {
                    if !base_transport_keys.contains(k) {
                        text.push_str(l);
                        text.push('\n');
                    }
                }
            }
        }
        for k in [
            "lists",
            "suppressed",
            "ledger",
            "url",
            "pool_size",
            "max_attempts",
            "backoff_ms",
        ] {
            assert!(
                replaced.contains(k),
                "config.toml changed shape: no `{k}` key"
            );
        }
        let keys = repo().join("tests/fixtures/dkim");
        text.push_str(&format!(
            "\n[dkim]\ndomain = \"{DOMAIN}\"\nrsa_selector = \"rsa\"\nrsa_key_file = {}\n\
             ed25519_selector = \"ed\"\ned25519_key_file = {}\n",
            toml_path(&keys.join("rsa2048.pem")),
            toml_path(&keys.join("ed25519.pem")),
        ));
        let config = dir.path().join("config.toml");
        fs::write(&config, text).unwrap();
        Fixture {
            dir,
            config,
            list,
            suppressed,
            ledger,
        }
    }

    fn write_list(&self, lines: &[String]) {
        fs::write(&self.list, lines.join("\n") + "\n").unwrap();
    }

    /// `briefing --config <ours>` in the repo root, with a fixed clock and
    /// secret, and none of the caller's briefing variables.
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_briefing"));
        c.current_dir(repo())
            .arg("--config")
            .arg(&self.config)
            .env("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)
            .env("BRIEFING_NOW", NOW)
            .env_remove("BRIEFING_TRANSPORT")
            .env_remove("BRIEFING_CONFIG")
            .env_remove("BRIEFING_SMTP_PASSWORD")
            .stdin(Stdio::null());
        c
    }

    /// `briefing send <issue> --yes <extra>`.
    fn send_cmd(&self, issue: &str, extra: &[&str]) -> Command {
        let mut c = self.cmd();
        c.arg("send").arg(issue).arg("--yes").args(extra);
        c
    }

    fn send(&self, extra: &[&str]) -> Out {
        run(self.send_cmd(ISSUE, extra))
    }

    /// A send running in the background, its output going to files.
    fn spawn_send(&self, extra: &[&str], tag: &str) -> Running {
        let out = fs::File::create(self.dir.path().join(format!("{tag}.stdout"))).unwrap();
        let err = fs::File::create(self.dir.path().join(format!("{tag}.stderr"))).unwrap();
        self.send_cmd(ISSUE, extra)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map(Running)
            .expect("spawn briefing send")
    }

    fn spawned_output(&self, tag: &str) -> String {
        let read = |ext: &str| {
            fs::read_to_string(self.dir.path().join(format!("{tag}.{ext}"))).unwrap_or_default()
        };
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    /// `briefing status <manifest> --json`, parsed.
    fn status(&self, manifest: &str) -> serde_json::Value {
        let mut c = self.cmd();
        c.arg("status").arg(manifest).arg("--json");
        let out = run(c);
        assert_eq!(out.code, Some(0), "status failed:\n{out}");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{out}"))
    }
}

/// A background `briefing` process, killed if a failing test leaves it.
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Addresses with more than one message.
fn repeated(m: &BTreeMap<String, usize>) -> Vec<(&String, &usize)> {
    m.iter().filter(|(_, n)| **n > 1).collect()
}

/// Polls until the server stored `n` messages or `child` exited.
fn wait_stored(server: &SmtpServer, child: &mut Child, n: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let c = stored_count(server);
        if c >= n {
            return c;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("briefing exited ({status}) after {c} messages, before {n} were stored");
        }
        assert!(
            Instant::now() < deadline,
            "only {c} of {n} messages within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The items of a `List-Unsubscribe` value: `<a>, <b>` → `[a, b]`.
fn unsubscribe_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|i| {
            let i = i.trim();
            assert!(
                i.starts_with('<') && i.ends_with('>'),
                "bad List-Unsubscribe item {i:?} in {value:?}"
            );
            i[1..i.len() - 1].to_string()
        })
        .collect()
}

/// Runs dkim_verify.py on `messages`; returns whether it exited 0 and its
/// verdict lines.
fn dkim_verify(messages: &[Vec<u8>]) -> (bool, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = dir.path().join(format!("{i:04}.eml"));
            fs::write(&p, m).unwrap();
            p
        })
        .collect();
    let python = std::env::var("BRIEFING_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .current_dir(repo())
        .arg("tests/support/dkim_verify.py")
        .arg("--key")
        .arg("rsa=tests/fixtures/dkim/rsa2048.txt")
        .arg("--key")
        .arg("ed=tests/fixtures/dkim/ed25519.txt")
        .args(&files)
        .output()
        .expect("run dkim_verify.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "dkim_verify.py could not run ({:?}); needs `pip install dkimpy pynacl`:\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        stdout.lines().map(str::to_string).collect(),
    )
}

/// The decoded subject of the fixture issue.
fn issue_subject() -> String {
    let text = fs::read_to_string(repo().join(ISSUE)).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("subject"))
        .expect("subject line");
    let v: toml::Table = toml::from_str(line).expect("subject parses");
    v["subject"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------
// 1. A normal send: dedup, invalid rows, suppression, headers, personalisation.
// ---------------------------------------------------------------------------

#[test]
fn every_valid_unsuppressed_address_gets_one_personal_message_with_list_headers() {
    let server = SmtpServer::start(ServerOptions::new());
    let fx = Fixture::new(&server.url(), 4, 3, "");

    // 200 distinct members, 10 case-variant duplicates (with another name:
    // the first row wins), 5 invalid rows, 5 members suppressed.
    let mut lines = vec!["email,name,company".to_string()];
    let mut invalid_lines = Vec::new();
    let invalid = [
        "bob@",
        "not-an-email",
        "",
        "@example.org",
        "two@@example.org",
    ];
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..200 {
        lines.push(csv_row(&email(i), &name(i), "ACME"));
        names.insert(email(i), name(i));
        if i % 40 == 39 {
            let bad = invalid[i / 40];
            lines.push(csv_row(bad, "Broken Row", "X"));
            invalid_lines.push(lines.len()); // 1-based line of that row
        }
        if i % 20 == 19 {
            lines.push(csv_row(&email(i - 7).to_uppercase(), "Duplicate Row", "Y"));
        }
    }
    assert_eq!(lines.len(), 1 + 200 + 10 + 5);
    fx.write_list(&lines);
    let suppressed: Vec<String> = [5, 50, 105, 150, 199].iter().map(|&i| email(i)).collect();
    // Upper-cased in the file: suppression compares addresses case-insensitively.
    let mut supp = String::from("email,reason\n");
    for s in &suppressed {
        supp.push_str(&format!("{},unsubscribed\n", s.to_uppercase()));
    }
    fs::write(&fx.suppressed, supp).unwrap();

    let out = fx.send(&[]);
    assert_eq!(out.code, Some(0), "{out}");

    // Each invalid row named with file:line on stderr.
    for line in &invalid_lines {
        let at = format!("{}:{line}:", fx.list.display());
        assert!(
            out.stderr.contains(&at),
            "stderr does not name {at}:\n{out}"
        );
    }
    assert!(
        out.stdout.contains("skipped invalid 5") && out.stdout.contains("duplicates 10"),
        "summary should report 5 invalid rows and 10 duplicates:\n{out}"
    );

    let got = server.received();
    let counts = per_rcpt(&got);
    let expected: BTreeSet<String> = names
        .keys()
        .filter(|e| !suppressed.contains(e))
        .cloned()
        .collect();
    assert_eq!(expected.len(), 195);
    assert!(
        repeated(&counts).is_empty(),
        "addresses mailed twice: {:?}",
        repeated(&counts)
    );
    let delivered: BTreeSet<String> = counts.keys().cloned().collect();
    assert_eq!(
        delivered
            .symmetric_difference(&expected)
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "delivered set differs from the valid, unsuppressed members"
    );

    let subject = issue_subject();
    let now = NOW.parse::<jiff::Timestamp>().unwrap().as_second();
    let mut message_ids = HashSet::new();
    let mut tokens = HashSet::new();
    let mut text_salutation_missing = Vec::new();
    for r in &got {
        let rcpt = &r.envelope.rcpt_tos[0];
        assert_eq!(r.envelope.mail_from, FROM);
        let msg = r.parsed();
        let ctx = || format!("message {} to {rcpt}", r.seq);
        for h in [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "MIME-Version",
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ] {
            let n = support::header_all(&msg, h).len();
            assert_eq!(n, 1, "{}: {h} appears {n} times", ctx());
        }
        let from = msg.from().and_then(|a| a.first()).and_then(|a| a.address());
        assert_eq!(from, Some(FROM), "{}", ctx());
        let to = msg.to().and_then(|a| a.first()).and_then(|a| a.address());
        assert_eq!(
            to.map(str::to_lowercase).as_deref(),
            Some(rcpt.to_lowercase().as_str()),
            "{}",
            ctx()
        );
        assert_eq!(msg.subject(), Some(subject.as_str()), "{}", ctx());
        assert_eq!(
            msg.date().map(|d| d.to_timestamp()),
            Some(now),
            "{}: Date",
            ctx()
        );
        let mid = msg
            .message_id()
            .unwrap_or_else(|| panic!("{}: no Message-ID", ctx()));
        assert!(
            mid.ends_with(&format!("@{DOMAIN}")),
            "{}: Message-ID {mid}",
            ctx()
        );
        assert!(
            message_ids.insert(mid.to_string()),
            "{}: Message-ID {mid} repeated",
            ctx()
        );
        assert_eq!(
            support::header(&msg, "MIME-Version").as_deref(),
            Some("1.0")
        );
        let list_id = support::header(&msg, "List-Id").unwrap();
        assert!(
            list_id.ends_with("<china-brief.briefing.example.org>"),
            "{}: List-Id {list_id}",
            ctx()
        );
        assert_eq!(
            support::header(&msg, "List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click"),
            "{}",
            ctx()
        );
        let items = unsubscribe_items(&support::header(&msg, "List-Unsubscribe").unwrap());
        let token = items[0]
            .strip_prefix("https://briefing.example.org/unsubscribe/")
            .unwrap_or_else(|| panic!("{}: first List-Unsubscribe item {:?}", ctx(), items[0]));
        assert!(
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{}: token {token:?}",
            ctx()
        );
        assert!(
            tokens.insert(token.to_string()),
            "{}: token {token} repeated",
            ctx()
        );
        assert!(
            items[1..]
                .iter()
                .any(|i| i.starts_with("mailto:") && i.contains(token)),
            "{}: no mailto item with the token in {items:?}",
            ctx()
        );

        // multipart/alternative: text/plain, then text/html.
        let root = msg.root_part();
        let ct = root.content_type().expect("Content-Type");
        assert_eq!(
            (ct.ctype(), ct.subtype()),
            ("multipart", Some("alternative")),
            "{}",
            ctx()
        );
        let subs = root.sub_parts().expect("sub parts");
        let kinds: Vec<(String, String)> = subs
            .iter()
            .map(|&id| {
                let ct = msg.part(id).unwrap().content_type().unwrap();
                (
                    ct.ctype().to_string(),
                    ct.subtype().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("text".into(), "plain".into()),
                ("text".into(), "html".into())
            ],
            "{}",
            ctx()
        );

        let name = &names[&rcpt.to_lowercase()];
        let salutation = if name.is_empty() {
            "Dear reader,".to_string()
        } else {
            format!("Dear {name},")
        };
        let html = support::html_part(&msg);
        assert!(
            html.contains(&salutation),
            "{}: HTML lacks {salutation:?}",
            ctx()
        );
        assert!(
            !html.contains("Duplicate Row"),
            "{}: a duplicate row's name was used",
            ctx()
        );
        assert!(
            html.contains(items[0].as_str()),
            "{}: HTML lacks the header's unsubscribe URL",
            ctx()
        );
        if !support::text_part(&msg).contains(&salutation) {
            text_salutation_missing.push(rcpt.clone());
        }
    }

    let st = fx.status(ISSUE);
    assert_eq!(
        (
            count_of(&st, "sent"),
            count_of(&st, "suppressed"),
            count_of(&st, "failed")
        ),
        (195, 5, 0),
        "{st:#}"
    );
    assert_eq!(
        (
            count_of(&st, "pending"),
            count_of(&st, "uncertain"),
            count_of(&st, "total")
        ),
        (0, 0, 200),
        "{st:#}"
    );
    assert_eq!(
        (st["invalid_rows"].as_u64(), st["duplicates"].as_u64()),
        (Some(5), Some(10)),
        "{st:#}"
    );
    assert_eq!(st["state"], "sent", "{st:#}");

    // Checked last so the rest of the send is verified even while it fails.
    let sample = got
        .first()
        .map(|r| support::text_part(&r.parsed()))
        .unwrap_or_default();
    assert!(
        text_salutation_missing.is_empty(),
        "the text/plain part of {} of {} messages lacks the personal salutation \
         (`Dear <name>,` / `Dear reader,`); first text part:\n{sample}",
        text_salutation_missing.len(),
        got.len()
    );
}

// ---------------------------------------------------------------------------
// 2. DKIM, verified by dkimpy.
// ---------------------------------------------------------------------------

#[test]
fn every_message_verifies_with_dkimpy_and_a_tampered_unsubscribe_url_fails() {
    let server = SmtpServer::start(ServerOptions::new());
    let fx = Fixture::new(&server.url(), 2, 3, "");
    fx.write_list(&simple_list(12));
    let out = fx.send(&[]);
    assert_eq!(out.code, Some(0), "{out}");
    let got = server.received();
    assert_eq!(got.len(), 12);

    let raws: Vec<Vec<u8>> = got.iter().map(|r| r.raw.clone()).collect();
    let (ok, lines) = dkim_verify(&raws);
    assert!(ok, "dkimpy rejects a signature:\n{}", lines.join("\n"));
    // Two signatures (RSA and Ed25519) per message, each covering the
    // unsubscribe headers.
    assert_eq!(lines.len(), 24, "{}", lines.join("\n"));
    for algo in ["rsa-sha256", "ed25519-sha256"] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains(&format!(" {algo} PASS ")))
                .count(),
            12,
            "{algo}:\n{}",
            lines.join("\n")
        );
    }
    for l in &lines {
        let h = l
            .split_whitespace()
            .find_map(|w| w.strip_prefix("h="))
            .unwrap_or_else(|| panic!("no h= in {l}"));
        let h: Vec<&str> = h.split(':').collect();
        for need in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
        ] {
            assert!(h.contains(&need), "h= lacks {need}: {l}");
        }
    }

    // One byte of the List-Unsubscribe URL changed: both signatures fail.
    let mut tampered = got[0].raw.clone();
    let pos = {
        let msg = got[0].parsed();
        let h = msg
            .headers()
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case("List-Unsubscribe"))
            .expect("List-Unsubscribe");
        let (start, end) = (h.offset_start as usize, h.offset_end as usize);
        let needle = b"/unsubscribe/";
        let at = got[0].raw[start..end]
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("URL path in List-Unsubscribe");
        start + at + needle.len()
    };
    tampered[pos] = if tampered[pos] == b'A' { b'B' } else { b'A' };
    let (ok, lines) = dkim_verify(&[tampered]);
    assert!(
        !ok,
        "a tampered List-Unsubscribe still verifies:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(" FAIL ")).count(),
        2,
        "{}",
        lines.join("\n")
    );
}

// ---------------------------------------------------------------------------
// 3. STARTTLS + AUTH, and transport URLs that must be refused.
// ---------------------------------------------------------------------------

#[test]
fn starttls_and_auth_deliver_without_leaking_the_password() {
    const PASSWORD: &str = "s3cret-pw";
    let server = SmtpServer::start(ServerOptions::new().starttls(true).auth("news", PASSWORD));
    let url = format!("smtp://localhost:{}?tls=required", server.port);
    let extra = format!(
        "username = \"news\"\nca_file = {}",
        toml_path(&support::ca_pem_path())
    );
    let fx = Fixture::new(&url, 2, 3, &extra);
    fx.write_list(&simple_list(5));

    // Cleartext to a remote host: refused before anything happens.
    let out = fx.send(&["--transport", "smtp://mail.example.org:25?tls=none"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("loopback"),
        "no word about loopback:\n{out}"
    );

    // A password in the URL: refused, and not echoed.
    let bad_url = format!("smtp://u:pw@localhost:{}", server.port);
    let out = fx.send(&["--transport", &bad_url]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        !out.all().contains("pw"),
        "the URL's password is echoed:\n{out}"
    );
    assert!(
        out.stderr.contains("BRIEFING_SMTP_PASSWORD"),
        "no hint where the password goes:\n{out}"
    );

    // A wrong password: AUTH refused, the send stops (exit 2), nothing sent,
    // the wrong password not echoed either.
    let mut c = fx.send_cmd(ISSUE, &[]);
    c.env("BRIEFING_SMTP_PASSWORD", "wrong-pass-77");
    let out = run(c);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("AUTH"), "{out}");
    assert!(!out.all().contains("wrong-pass-77"), "{out}");
    assert_eq!(stored_count(&server), 0);

    // The right one: delivered over TLS as `news`, resuming the stopped send.
    let mut c = fx.send_cmd(ISSUE, &[]);
    c.env("BRIEFING_SMTP_PASSWORD", PASSWORD);
    let out = run(c);
    assert_eq!(
        out.code,
        Some(0),
        "{out}\n--- server log ---\n{}",
        server.log()
    );
    assert!(
        !out.all().contains(PASSWORD),
        "the password appears in the output:\n{out}"
    );
    let got = server.received();
    let counts = per_rcpt(&got);
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(repeated(&counts).is_empty(), "{counts:?}");
    for r in &got {
        assert!(r.envelope.tls, "message {} came without TLS", r.seq);
        assert_eq!(
            r.envelope.auth_user.as_deref(),
            Some("news"),
            "message {}",
            r.seq
        );
    }
}

#[test]
fn smtps_with_implicit_tls_and_auth_delivers_every_message_encrypted() {
    const PASSWORD: &str = "implicit-pw-9";
    let server = SmtpServer::start(ServerOptions::new().implicit_tls().auth("news", PASSWORD));
    let url = format!("smtps://localhost:{}", server.port);
    let extra = format!(
        "username = \"news\"\nca_file = {}",
        toml_path(&support::ca_pem_path())
    );
    let fx = Fixture::new(&url, 2, 3, &extra);
    fx.write_list(&simple_list(6));
    let mut c = fx.send_cmd(ISSUE, &[]);
    c.env("BRIEFING_SMTP_PASSWORD", PASSWORD);
    let out = run(c);
    assert_eq!(
        out.code,
        Some(0),
        "{out}\n--- server log ---\n{}",
        server.log()
    );
    assert!(!out.all().contains(PASSWORD), "{out}");
    let got = server.received();
    assert_eq!(per_rcpt(&got).len(), 6);
    for r in &got {
        assert!(r.envelope.tls, "message {} came without TLS", r.seq);
        assert_eq!(r.envelope.auth_user.as_deref(), Some("news"));
    }
}

// ---------------------------------------------------------------------------
// 4. Temporary failures are retried; 5.1.1 fails and suppresses.
// ---------------------------------------------------------------------------

#[test]
fn tempfails_are_retried_and_unknown_users_fail_and_are_suppressed_for_later_issues() {
    let tempfail: Vec<String> = (0..10).map(|i| email(i * 6 + 1)).collect();
    let reject: Vec<String> = (0..5).map(|i| email(i * 12 + 4)).collect();
    let server = SmtpServer::start(
        ServerOptions::new()
            .tempfail_first(tempfail.clone())
            .reject(reject.clone()),
    );
    let fx = Fixture::new(&server.url(), 4, 3, "");
    fx.write_list(&simple_list(60));

    let out = fx.send(&[]);
    assert_eq!(
        out.code,
        Some(1),
        "some recipients failed for good: expected exit 1\n{out}"
    );
    let got = server.received();
    let counts = per_rcpt(&got);
    assert!(repeated(&counts).is_empty(), "{:?}", repeated(&counts));
    assert_eq!(counts.len(), 55, "{counts:?}");
    for t in &tempfail {
        assert_eq!(
            counts.get(t),
            Some(&1),
            "tempfailed {t} not delivered on retry"
        );
    }
    for r in &reject {
        assert!(!counts.contains_key(r), "{r} was stored although rejected");
    }

    let st = fx.status(ISSUE);
    assert_eq!(
        (
            count_of(&st, "sent"),
            count_of(&st, "failed"),
            count_of(&st, "pending")
        ),
        (55, 5, 0),
        "{st:#}"
    );
    assert_eq!(st["state"], "failed", "{st:#}");
    let failures = st["failures"].as_array().expect("failures");
    let failed: BTreeSet<String> = failures
        .iter()
        .map(|f| {
            assert_eq!(f["state"], "failed", "{f}");
            let reply = f["last_reply"].as_str().unwrap_or("");
            assert!(
                reply.contains("550") && reply.contains("5.1.1"),
                "server reply not recorded: {f}"
            );
            // The code once, as the server said it (issue 10: not
            // "550 permanent error (550): 5.1.1 …").
            assert!(reply.starts_with("550 5.1.1 "), "{f}");
            f["email"].as_str().unwrap().to_lowercase()
        })
        .collect();
    assert_eq!(failed, reject.iter().cloned().collect::<BTreeSet<_>>());

    // Another issue (a copy under another slug) to the same list: the five
    // unknown users are suppressed now.
    let issues = fx.dir.path().join("issues");
    copy_dir(
        &repo().join("tests/fixtures/send").join(SLUG),
        &issues.join("2025-01-24"),
    );
    let manifest = issues.join("2025-01-24").join("issue.toml");
    let manifest = manifest.to_str().unwrap();
    let before = got.len();
    let out = run(fx.send_cmd(manifest, &[]));
    assert_eq!(out.code, Some(0), "{out}");
    let got2 = server.received();
    let counts2 = per_rcpt(&got2[before..]);
    assert_eq!(counts2.len(), 60 - 5, "{counts2:?}");
    assert!(repeated(&counts2).is_empty());
    for r in &reject {
        assert!(
            !counts2.contains_key(r),
            "suppressed {r} was mailed the next issue"
        );
    }
    let st2 = fx.status(manifest);
    assert_eq!(st2["issue"], "2025-01-24");
    assert_eq!(
        (
            count_of(&st2, "sent"),
            count_of(&st2, "suppressed"),
            count_of(&st2, "failed")
        ),
        (55, 5, 0),
        "{st2:#}"
    );
}

/// The test server advertises PIPELINING, so every other send here
/// pipelines MAIL, RCPT and DATA; a server without it gets one command at
/// a time, and refusals still land on the right recipient.
#[test]
fn a_server_without_pipelining_gets_one_command_at_a_time_and_the_same_result() {
    let reject: Vec<String> = (0..3).map(|i| email(i * 7 + 2)).collect();
    let server = SmtpServer::start(ServerOptions::new().no_pipelining().reject(reject.clone()));
    let fx = Fixture::new(&server.url(), 2, 3, "");
    fx.write_list(&simple_list(24));

    let out = fx.send(&[]);
    assert_eq!(out.code, Some(1), "three rejected: expected exit 1\n{out}");
    let counts = per_rcpt(&server.received());
    assert!(repeated(&counts).is_empty(), "{:?}", repeated(&counts));
    assert_eq!(counts.len(), 21, "{counts:?}");
    for r in &reject {
        assert!(!counts.contains_key(r), "{r} was stored although rejected");
    }
    let st = fx.status(ISSUE);
    assert_eq!(
        (count_of(&st, "sent"), count_of(&st, "failed")),
        (21, 3),
        "{st:#}"
    );
}

// ---------------------------------------------------------------------------
// 5. Connections reset after DATA: the client cannot know whether the
// server kept the message, so (issue 10) the row is uncertain, never
// resent by itself; `--resend-uncertain` sends it on request.
// ---------------------------------------------------------------------------

#[test]
fn connections_reset_after_the_end_of_data_leave_uncertain_rows_resent_on_request() {
    let server = SmtpServer::start(ServerOptions::new().drop_every(50));
    let fx = Fixture::new(&server.url(), 4, 5, "");
    fx.write_list(&simple_list(200));
    let out = fx.send(&[]);
    assert_eq!(out.code, Some(1), "uncertain recipients: exit 1\n{out}");
    let dropped = server.log().matches("dropping connection").count();
    assert_eq!(dropped, 4, "the fault was not exercised:\n{}", server.log());
    let counts = per_rcpt(&server.received());
    assert_eq!(counts.len(), 196);
    assert!(repeated(&counts).is_empty(), "{:?}", repeated(&counts));
    let st = fx.status(ISSUE);
    assert_eq!(
        (
            count_of(&st, "sent"),
            count_of(&st, "uncertain"),
            count_of(&st, "failed")
        ),
        (196, 4, 0),
        "{st:#}"
    );
    // This server kept none of them (--drop-every stores nothing): resending
    // on request completes the send, each address once.
    let out = fx.send(&["--resend-uncertain"]);
    assert_eq!(out.code, Some(0), "{out}");
    let counts = per_rcpt(&server.received());
    assert_eq!(counts.len(), 200);
    assert!(repeated(&counts).is_empty(), "{:?}", repeated(&counts));
}

// ---------------------------------------------------------------------------
// 6b. SIGKILL while the list is still being read, then resume (issue 16).
// ---------------------------------------------------------------------------

/// `(imported, import_rows)` of the send, once the ledger has its record.
fn import_state(ledger: &std::path::Path) -> Option<(bool, i64)> {
    let c =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    c.query_row("SELECT imported, import_rows FROM sends", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .ok()
}

/// The send is killed after the ledger shows part of the list read in
/// (a chunk committed, `imported` not yet set); the next run reads on
/// from there: every list row ends up in the ledger once, the counts of
/// invalid and repeated rows are those of the whole list, and nobody
/// gets a second message.
#[test]
fn a_send_killed_while_reading_its_list_resumes_the_import_where_it_stopped() {
    const N: usize = 100_000;
    let server = SmtpServer::start(ServerOptions::new().slow_ms(20));
    let fx = Fixture::new(&server.url(), 2, 3, "");
    let mut lines = simple_list(N);
    // Bad and repeated rows early (read before the kill) and late (after).
    for at in [500, N - 10] {
        lines.insert(at, "not-an-address,X,Y".into());
        lines.insert(at, csv_row(&email(at), "Again", "ACME"));
    }
    fx.write_list(&lines);

    let mut child = fx.spawn_send(&[], "killed");
    // Polled, not slept: the kill must land between two chunks' commits.
    let seen = loop {
        if let Some((false, rows)) = import_state(&fx.ledger)
            && rows > 0
        {
            break rows;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "briefing exited ({status}) before a chunk was seen\n{}",
                fx.spawned_output("killed")
            );
        }
        std::thread::yield_now();
    };
    child.kill().expect("SIGKILL");
    assert_eq!(
        child.wait().unwrap().code(),
        None,
        "{}",
        fx.spawned_output("killed")
    );
    let (imported, at_kill) = import_state(&fx.ledger).unwrap();
    assert!(
        !imported,
        "the import finished before the kill; make the list longer"
    );
    assert!(at_kill >= seen && (at_kill as usize) < N + 4, "{at_kill}");

    let out = fx.send(&["--limit", "5"]);
    assert!(
        out.stdout
            .contains(&format!("lists read: {N} recipients in this send")),
        "{out}"
    );
    let (imported, rows) = import_state(&fx.ledger).unwrap();
    assert_eq!((imported, rows as usize), (true, N + 4));
    let st = fx.status(ISSUE);
    assert_eq!(count_of(&st, "total") as usize, N, "{st:#}");
    let c = rusqlite::Connection::open(&fx.ledger).unwrap();
    let (invalid, dups, distinct): (i64, i64, i64) = c
        .query_row(
            "SELECT invalid, duplicates, (SELECT COUNT(DISTINCT email_key) FROM deliveries) FROM sends",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((invalid, dups, distinct as usize), (2, 2, N));
    let got = per_rcpt(&server.received());
    assert!(
        repeated(&got).is_empty(),
        "mailed twice: {:?}",
        repeated(&got)
    );
}

// ---------------------------------------------------------------------------
// 6. SIGKILL mid-send, then resume.
// ---------------------------------------------------------------------------

#[test]
fn a_killed_send_resumes_without_duplicates_and_resends_only_uncertain_on_request() {
    const N: usize = 2000;
    const POOL: usize = 4;
    let server = SmtpServer::start(ServerOptions::new().slow_ms(2));
    let fx = Fixture::new(&server.url(), POOL, 3, "");
    fx.write_list(&simple_list(N));

    let mut child = fx.spawn_send(&[], "killed");
    wait_stored(&server, &mut child, 1, Duration::from_secs(30));
    let first_at = Instant::now();
    wait_stored(&server, &mut child, 300, Duration::from_secs(60));
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    let killed_after = first_at.elapsed().as_secs_f64();
    assert_eq!(
        status.code(),
        None,
        "briefing was not killed: {status}\n{}",
        fx.spawned_output("killed")
    );

    let before = per_rcpt(&server.received());
    assert!(repeated(&before).is_empty(), "{:?}", repeated(&before));
    let st = fx.status(ISSUE);
    assert_eq!(
        st["state"], "stopped",
        "a killed send should show as stopped: {st:#}"
    );
    // Each connection has one message in its transaction and at most one
    // claim's worth of rows held ahead (issue 16: rows are claimed in
    // batches, each batch one commit and one sync).
    assert!(
        count_of(&st, "sending") as usize <= POOL * (1 + briefing::deliver::engine::CLAIM_BATCH),
        "{st:#}"
    );

    // Rerun: finishes the rest, resends nothing.
    let resumed_at = Instant::now();
    let out = fx.send(&[]);
    let resume_secs = resumed_at.elapsed().as_secs_f64();
    // Uncertain rows are reported (stdout and stderr); the run exits 1 while
    // any remain, since they are not known to be delivered.
    let resumed_code = out.code;
    let after = per_rcpt(&server.received());
    assert!(
        repeated(&after).is_empty(),
        "mailed twice after resume: {:?}",
        repeated(&after)
    );

    let st = fx.status(ISSUE);
    let uncertain: BTreeSet<String> = st["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] == "uncertain")
        .map(|f| f["email"].as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(
        count_of(&st, "uncertain") as usize,
        uncertain.len(),
        "{st:#}"
    );
    assert_eq!(
        resumed_code,
        Some(if uncertain.is_empty() { 0 } else { 1 }),
        "{out}"
    );
    assert!(
        uncertain.len() <= POOL,
        "more uncertain rows than connections: {uncertain:?}"
    );
    assert_eq!(
        count_of(&st, "sent") as usize + uncertain.len(),
        N,
        "{st:#}"
    );
    if !uncertain.is_empty() {
        assert!(
            out.stdout.contains(&format!(
                "{} message(s) were with the server",
                uncertain.len()
            )),
            "the rerun does not report the uncertain rows:\n{out}"
        );
        assert!(
            out.stderr.contains("--resend-uncertain"),
            "no hint how to resend them:\n{out}"
        );
    }
    let mut missing = Vec::new();
    for i in 0..N {
        let e = email(i);
        match after.get(&e) {
            Some(1) => {}
            None if uncertain.contains(&e) => missing.push(e),
            other => panic!("{e}: {other:?} messages and not uncertain"),
        }
    }
    let resumed = N - before.len() - missing.len();
    eprintln!(
        "crash test: killed {killed_after:.2} s after the first message, {} stored ({:.0} msg/s); \
         the rerun delivered {resumed} in {resume_secs:.2} s ({:.0} msg/s incl. start-up); \
         uncertain {uncertain:?}, of which never delivered {missing:?}; status rate_per_second {}\n{}",
        before.len(),
        before.len() as f64 / killed_after,
        resumed as f64 / resume_secs,
        st["rate_per_second"],
        out.stdout
            .lines()
            .find(|l| l.contains("summary"))
            .unwrap_or("")
    );

    // --resend-uncertain delivers the ones that never arrived (an uncertain
    // one the server had stored gets a second copy: the documented trade-off).
    let out = fx.send(&["--resend-uncertain"]);
    if uncertain.is_empty() {
        assert_eq!(out.code, Some(3), "nothing uncertain: already sent\n{out}");
        return;
    }
    assert_eq!(out.code, Some(0), "{out}");
    let last = per_rcpt(&server.received());
    for e in &missing {
        assert_eq!(
            last.get(e),
            Some(&1),
            "{e} was not delivered by --resend-uncertain"
        );
    }
    for (e, n) in &last {
        if !uncertain.contains(e) {
            assert_eq!(*n, 1, "{e} mailed again by --resend-uncertain");
        }
    }
    let st = fx.status(ISSUE);
    assert_eq!(
        (count_of(&st, "sent") as usize, count_of(&st, "uncertain")),
        (N, 0),
        "{st:#}"
    );
}

// ---------------------------------------------------------------------------
// 7. One send per issue at a time; a finished send is not repeated.
// ---------------------------------------------------------------------------

#[test]
fn a_second_send_while_one_runs_exits_3_naming_it_and_a_finished_send_is_not_repeated() {
    let server = SmtpServer::start(ServerOptions::new().slow_ms(50));
    let fx = Fixture::new(&server.url(), 2, 3, "");
    fx.write_list(&simple_list(100));
    let mut first = fx.spawn_send(&[], "first");
    wait_stored(&server, &mut first, 1, Duration::from_secs(30));

    let st = fx.status(ISSUE);
    assert_eq!(st["state"], "sending", "status while the send runs: {st:#}");
    let out = fx.send(&[]);
    let still_running = first.try_wait().unwrap().is_none();
    assert!(
        still_running,
        "the first send ended before the second was checked; make it slower"
    );
    assert_eq!(out.code, Some(3), "{out}");
    assert!(
        out.stderr
            .contains("being sent by another briefing process")
            && out.stderr.contains(&format!("pid {}", first.id())),
        "the message does not name the other process (pid {}):\n{out}",
        first.id()
    );

    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", fx.spawned_output("first"));
    let counts = per_rcpt(&server.received());
    assert_eq!(counts.len(), 100);
    assert!(repeated(&counts).is_empty());

    let out = fx.send(&[]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr.contains("already sent"), "{out}");
    assert_eq!(stored_count(&server), 100);
}

// ---------------------------------------------------------------------------
// 8. --dry-run sends and records nothing.
// ---------------------------------------------------------------------------

#[test]
fn dry_run_sends_nothing_and_creates_no_ledger() {
    let server = SmtpServer::start(ServerOptions::new());
    let fx = Fixture::new(&server.url(), 4, 3, "");
    fx.write_list(&simple_list(30));
    let out = fx.send(&["--dry-run"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("dry run"), "{out}");
    assert!(
        out.stdout.contains("sent 30"),
        "the dry run should count what it would send:\n{out}"
    );
    assert_eq!(stored_count(&server), 0);
    assert!(
        !fx.ledger.exists(),
        "a dry run created the ledger {}",
        fx.ledger.display()
    );
}

// ---------------------------------------------------------------------------
// 9. --to test copies, then the real send.
// ---------------------------------------------------------------------------

#[test]
fn test_copies_go_only_to_the_given_addresses_and_do_not_count_as_the_send() {
    let server = SmtpServer::start(ServerOptions::new());
    let fx = Fixture::new(&server.url(), 2, 3, "");
    let mut lines = simple_list(8);
    lines.push(csv_row("a@example.org", "Alice Tester", "ACME"));
    fx.write_list(&lines);

    let out = fx.send(&["--to", "a@example.org", "--to", "b@example.org"]);
    assert_eq!(out.code, Some(0), "{out}");
    let got = server.received();
    let counts = per_rcpt(&got);
    assert_eq!(
        counts,
        BTreeMap::from([
            ("a@example.org".to_string(), 1),
            ("b@example.org".to_string(), 1)
        ])
    );
    for r in &got {
        let msg = r.parsed();
        let subject = msg.subject().unwrap_or("");
        assert!(
            subject.starts_with("[TEST] "),
            "test copy subject {subject:?}"
        );
        if r.envelope.rcpt_tos[0] == "a@example.org" {
            assert!(
                support::html_part(&msg).contains("Dear Alice Tester,"),
                "a test copy to a list member should be personalised as them"
            );
        }
    }
    let st = fx.status(ISSUE);
    assert_eq!(
        count_of(&st, "total"),
        0,
        "test copies counted as the real send: {st:#}"
    );

    let out = fx.send(&[]);
    assert_eq!(out.code, Some(0), "{out}");
    let all = server.received();
    let real = per_rcpt(&all[got.len()..]);
    assert_eq!(real.len(), 9, "{real:?}");
    assert!(repeated(&real).is_empty());
    assert!(real.contains_key("a@example.org"));
    assert!(!real.contains_key("b@example.org"));
    for r in &all[got.len()..] {
        let msg = r.parsed();
        assert!(
            !msg.subject().unwrap_or("").starts_with("[TEST]"),
            "real send with a [TEST] subject"
        );
    }
}

// ---------------------------------------------------------------------------
// 10. --limit, then the rest.
// ---------------------------------------------------------------------------

#[test]
fn limit_sends_part_and_a_rerun_completes_without_duplicates() {
    let server = SmtpServer::start(ServerOptions::new());
    let fx = Fixture::new(&server.url(), 4, 3, "");
    fx.write_list(&simple_list(50));

    let out = fx.send(&["--limit", "10"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(stored_count(&server), 10);
    let st = fx.status(ISSUE);
    assert_eq!(
        (count_of(&st, "sent"), count_of(&st, "pending")),
        (10, 40),
        "{st:#}"
    );
    assert_eq!(st["state"], "stopped", "{st:#}");

    let out = fx.send(&[]);
    assert_eq!(out.code, Some(0), "{out}");
    let counts = per_rcpt(&server.received());
    assert_eq!(counts.len(), 50);
    assert!(repeated(&counts).is_empty(), "{:?}", repeated(&counts));
    let st = fx.status(ISSUE);
    assert_eq!(
        (count_of(&st, "sent"), count_of(&st, "pending")),
        (50, 0),
        "{st:#}"
    );
    assert_eq!(st["state"], "sent", "{st:#}");
}

// ---------------------------------------------------------------------------
// 11. Ctrl-C: in-flight messages finish, exit 130, nothing uncertain.
// ---------------------------------------------------------------------------

#[test]
fn ctrl_c_finishes_messages_in_flight_exits_130_and_a_rerun_completes() {
    const N: usize = 300;
    let server = SmtpServer::start(ServerOptions::new().slow_ms(20));
    let fx = Fixture::new(&server.url(), 4, 3, "");
    fx.write_list(&simple_list(N));
    let mut child = fx.spawn_send(&[], "interrupted");
    wait_stored(&server, &mut child, 20, Duration::from_secs(30));
    let kill = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .expect("run kill -INT");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "briefing did not stop within 30 s of SIGINT\n{}",
                fx.spawned_output("interrupted")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        status.code(),
        Some(130),
        "{}",
        fx.spawned_output("interrupted")
    );
    let stored = per_rcpt(&server.received());
    assert!(
        stored.len() < N,
        "the interrupt came too late to test anything"
    );
    let st = fx.status(ISSUE);
    assert_eq!(st["state"], "stopped", "{st:#}");
    assert_eq!(
        (count_of(&st, "uncertain"), count_of(&st, "sending")),
        (0, 0),
        "in-flight messages were not finished: {st:#}"
    );
    assert_eq!(
        count_of(&st, "sent") as usize,
        stored.len(),
        "ledger and server disagree: {st:#}"
    );
    assert_eq!(
        count_of(&st, "pending") as usize,
        N - stored.len(),
        "{st:#}"
    );

    let out = fx.send(&[]);
    assert_eq!(out.code, Some(0), "{out}");
    let counts = per_rcpt(&server.received());
    assert_eq!(counts.len(), N);
    assert!(repeated(&counts).is_empty(), "{:?}", repeated(&counts));
}

// ---------------------------------------------------------------------------
// 12. Password from transport.password_file (relative to the config's
//     folder), over opportunistic STARTTLS.
// ---------------------------------------------------------------------------

#[test]
fn password_file_relative_to_the_config_and_opportunistic_starttls_work() {
    const PASSWORD: &str = "file-pass-42";
    let server = SmtpServer::start(ServerOptions::new().starttls(false).auth("news", PASSWORD));
    // server.url() is smtp://127.0.0.1:PORT?tls=starttls here.
    let extra = format!(
        "username = \"news\"\npassword_file = \"secrets/smtp-password\"\nca_file = {}",
        toml_path(&support::ca_pem_path())
    );
    let fx = Fixture::new(&server.url(), 2, 3, &extra);
    fs::create_dir(fx.dir.path().join("secrets")).unwrap();
    fs::write(
        fx.dir.path().join("secrets/smtp-password"),
        format!("{PASSWORD}\n"),
    )
    .unwrap();
    fx.write_list(&simple_list(3));
    let out = fx.send(&[]);
    assert_eq!(
        out.code,
        Some(0),
        "{out}\n--- server log ---\n{}",
        server.log()
    );
    assert!(!out.all().contains(PASSWORD), "{out}");
    let got = server.received();
    assert_eq!(per_rcpt(&got).len(), 3);
    for r in &got {
        assert!(
            r.envelope.tls,
            "STARTTLS was offered but not used (message {})",
            r.seq
        );
        assert_eq!(r.envelope.auth_user.as_deref(), Some("news"));
    }
}

// ---------------------------------------------------------------------------
// 13. rate_per_second paces messages; messages_per_connection renews.
// ---------------------------------------------------------------------------

#[test]
fn rate_per_second_paces_the_send_and_connections_are_renewed() {
    let server = SmtpServer::start(ServerOptions::new());
    let fx = Fixture::new(
        &server.url(),
        2,
        3,
        "rate_per_second = 10\nmessages_per_connection = 4",
    );
    fx.write_list(&simple_list(12));
    let out = fx.send(&[]);
    assert_eq!(out.code, Some(0), "{out}");
    let got = server.received();
    assert_eq!(per_rcpt(&got).len(), 12);
    // 12 messages at 10/s: at least 11 intervals of 100 ms between the
    // first and the last (file times of the stored messages).
    let mtime = |seq: u64| {
        fs::metadata(server.maildir.join(format!("{seq:06}.eml")))
            .unwrap()
            .modified()
            .unwrap()
    };
    let span = mtime(12).duration_since(mtime(1)).unwrap();
    assert!(
        span >= Duration::from_millis(1000),
        "12 messages at rate_per_second = 10 took only {span:?}"
    );
    // At most 4 messages per connection: at least 3 connections.
    let peers: BTreeSet<&str> = got
        .iter()
        .filter_map(|r| r.envelope.peer.as_deref())
        .collect();
    assert!(
        peers.len() >= 3,
        "{} connections for 12 messages: {peers:?}",
        peers.len()
    );
    let mut per_peer: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &got {
        *per_peer
            .entry(r.envelope.peer.as_deref().unwrap_or(""))
            .or_default() += 1;
    }
    assert!(
        per_peer.values().all(|&n| n <= 4),
        "more than 4 messages on a connection: {per_peer:?}"
    );
}

// ---------------------------------------------------------------------------
// 14. Out of retries: deferred with the reply (issue 10: a 4xx is never a
// failure at once), and not suppressed.
// ---------------------------------------------------------------------------

#[test]
fn a_recipient_out_of_retries_is_deferred_with_the_reply_and_is_not_suppressed() {
    let flaky = vec![email(2), email(5)];
    let server = SmtpServer::start(ServerOptions::new().tempfail_first(flaky.clone()));
    let fx = Fixture::new(&server.url(), 2, 1, "");
    fx.write_list(&simple_list(8));
    let out = fx.send(&[]);
    assert_eq!(
        out.code,
        Some(1),
        "deferred recipients: not a clean run\n{out}"
    );
    let st = fx.status(ISSUE);
    assert_eq!(
        (
            count_of(&st, "sent"),
            count_of(&st, "failed"),
            count_of(&st, "deferred")
        ),
        (6, 0, 2),
        "{st:#}"
    );
    assert_eq!(st["state"], "stopped", "{st:#}");
    let deferrals = st["deferrals"].as_array().unwrap();
    assert_eq!(deferrals.len(), 2, "{st:#}");
    for f in deferrals {
        let reply = f["last_reply"].as_str().unwrap_or("");
        assert!(
            reply.contains("451"),
            "the server's 451 is not recorded: {f}"
        );
        assert_eq!(f["attempts"], 1, "{f}");
        assert_eq!(f["next_attempt_at"], st["next_attempt_at"], "{st:#}");
    }

    // A 4xx is no reason to suppress: the next issue goes to them.
    let issues = fx.dir.path().join("issues");
    copy_dir(
        &repo().join("tests/fixtures/send").join(SLUG),
        &issues.join("2025-01-31"),
    );
    let manifest = issues.join("2025-01-31").join("issue.toml");
    let before = server.received().len();
    let out = run(fx.send_cmd(manifest.to_str().unwrap(), &[]));
    assert_eq!(out.code, Some(0), "{out}");
    let next = per_rcpt(&server.received()[before..]);
    assert_eq!(next.len(), 8, "{next:?}");
    for e in &flaky {
        assert_eq!(
            next.get(e),
            Some(&1),
            "{e} was suppressed after a temporary failure"
        );
    }
}

// ---------------------------------------------------------------------------
// 15. --limit with several workers: the budget must not be overspent.
// ---------------------------------------------------------------------------

/// Regression: `send::next` once checked `budget > 0`, claimed a row and only
/// then decremented, so workers racing past the check underflowed the budget
/// to `u64::MAX` and the limit vanished (it now takes a unit atomically
/// before claiming). Here the first claim walks past 300 suppressed rows
/// with the ledger locked, which holds that window open while the other
/// three workers start.
#[test]
fn limit_is_not_overspent_by_concurrent_workers() {
    let server = SmtpServer::start(ServerOptions::new());
    let fx = Fixture::new(&server.url(), 4, 3, "");
    fx.write_list(&simple_list(400));
    let mut supp = String::from("email,reason\n");
    for i in 0..300 {
        supp.push_str(&format!("{},manual\n", email(i)));
    }
    fs::write(&fx.suppressed, supp).unwrap();

    let out = fx.send(&["--limit", "1"]);
    assert_eq!(out.code, Some(0), "{out}");
    let st = fx.status(ISSUE);
    assert_eq!(
        stored_count(&server),
        1,
        "--limit 1 sent {} messages (budget race in send::next):\n{out}\n{st:#}",
        stored_count(&server)
    );
    assert_eq!(
        (count_of(&st, "sent"), count_of(&st, "pending")),
        (1, 99),
        "{st:#}"
    );
}

// ---------------------------------------------------------------------------
// 16. Suppressions added between runs apply on resume, retries included.
// ---------------------------------------------------------------------------

/// A run stopped by a transport failure (a wrong SMTP password here) leaves
/// the row it had claimed `pending` with one attempt; the resumed run takes
/// it through `Ledger::claim_retry`, which, unlike `claim_next`, does not
/// look at the suppression list. The README: "The suppression list … is
/// applied at send time".
#[test]
fn suppressions_added_before_a_resume_apply_to_fresh_and_retried_rows() {
    let server = SmtpServer::start(ServerOptions::new().auth("news", "right-pass"));
    let fx = Fixture::new(&server.url(), 1, 3, "username = \"news\"");
    fx.write_list(&simple_list(10));

    let mut c = fx.send_cmd(ISSUE, &[]);
    c.env("BRIEFING_SMTP_PASSWORD", "wrong-pass");
    let out = run(c);
    assert_eq!(out.code, Some(2), "AUTH refused: the send stops\n{out}");
    assert_eq!(stored_count(&server), 0);
    let st = fx.status(ISSUE);
    assert_eq!(
        (count_of(&st, "pending"), count_of(&st, "sent")),
        (10, 0),
        "{st:#}"
    );

    // reader0000 was claimed and tried (now a retry row); reader0005 never.
    fs::write(
        &fx.suppressed,
        format!(
            "email,reason\n{},unsubscribed\n{},unsubscribed\n",
            email(0),
            email(5)
        ),
    )
    .unwrap();
    let mut c = fx.send_cmd(ISSUE, &[]);
    c.env("BRIEFING_SMTP_PASSWORD", "right-pass");
    let out = run(c);
    assert_eq!(out.code, Some(0), "{out}");
    let counts = per_rcpt(&server.received());
    assert!(
        !counts.contains_key(&email(5)),
        "a suppressed fresh row was mailed"
    );
    assert!(
        !counts.contains_key(&email(0)),
        "{} unsubscribed before the resume but was mailed: a row waiting for a retry \
         skips the suppression check (Ledger::claim_retry)",
        email(0)
    );
    assert_eq!(counts.len(), 8, "{counts:?}");
    let st = fx.status(ISSUE);
    assert_eq!(
        (count_of(&st, "sent"), count_of(&st, "suppressed")),
        (8, 2),
        "{st:#}"
    );
}

/// A German translation beside the issue: each reader gets exactly one
/// message, in the language of their `language` column (the main edition
/// when they name none or one the issue lacks, with a warning at that row's
/// line), checked in the parsed message's `lang`, `Content-Language`,
/// labels and dates.
#[test]
fn a_bilingual_send_gives_every_reader_one_message_in_their_language() {
    let server = SmtpServer::start(ServerOptions::new());
    let fx = Fixture::new(&server.url(), 2, 3, "");
    let issue_dir = fx.dir.path().join("issues").join(SLUG);
    copy_dir(&repo().join("tests/fixtures/send/2025-01-17"), &issue_dir);
    fs::copy(
        repo().join("tests/fixtures/send/translations/issue.de.toml"),
        issue_dir.join("issue.de.toml"),
    )
    .unwrap();
    // Line 1 is the header: reader i is on line i + 2.
    let langs = ["de", "en", "", "de-AT", "fr", "DE"];
    let mut lines = vec!["email,name,language".to_string()];
    lines.extend(
        langs
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{},Reader {i},{l}", email(i))),
    );
    fx.write_list(&lines);
    let manifest = issue_dir.join("issue.toml");
    let out = run(fx.send_cmd(manifest.to_str().unwrap(), &[]));
    assert_eq!(out.code, Some(0), "{out}");
    let fr_line = format!("{}:6: language `fr` has no edition", fx.list.display());
    assert!(
        out.stderr.contains(&fr_line) || out.stdout.contains(&fr_line),
        "no warning naming {fr_line}:\n{out}"
    );

    let got = server.received();
    let counts = per_rcpt(&got);
    assert_eq!(counts.len(), langs.len(), "{counts:?}");
    assert!(repeated(&counts).is_empty(), "{counts:?}");
    for r in &got {
        let rcpt = &r.envelope.rcpt_tos[0];
        let i = (0..langs.len()).find(|i| email(*i) == *rcpt).unwrap();
        let german = langs[i].to_lowercase().starts_with("de");
        let msg = r.parsed();
        let html = support::html_part(&msg);
        let text = support::text_part(&msg);
        let (lang, label, date, unsubscribe) = if german {
            ("de", "In dieser Ausgabe", "17. Januar 2025", "Abbestellen:")
        } else {
            ("en", "In this issue", "January 17, 2025", "Unsubscribe:")
        };
        assert_eq!(
            support::header(&msg, "Content-Language").as_deref(),
            Some(lang),
            "{rcpt}"
        );
        assert!(html.contains(&format!("lang=\"{lang}\"")), "{rcpt}: lang");
        assert!(
            html.contains(label) && text.contains(label),
            "{rcpt}: {label}"
        );
        assert!(text.contains(date), "{rcpt}: {date}\n{text}");
        assert!(text.contains(unsubscribe), "{rcpt}: {unsubscribe}");
        if german {
            assert!(
                msg.subject().unwrap_or("").starts_with("Hafengebühren"),
                "{rcpt}"
            );
            // CLDR's German, not a hand-written table: "22. Januar 2025, 10 Uhr MEZ".
            assert!(
                text.contains("22.\u{a0}Januar\u{a0}2025, 10\u{a0}Uhr\u{a0}MEZ")
                    || text.contains("22. Januar 2025, 10 Uhr MEZ"),
                "{rcpt}: event time\n{text}"
            );
        } else {
            assert!(
                msg.subject().unwrap_or("").starts_with("Port tariffs"),
                "{rcpt}"
            );
        }
    }
}
