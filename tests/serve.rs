//! `briefing serve` end to end: the real binary on a loopback port, spoken
//! to over HTTP with ureq, its ledger filled by real `briefing send` runs.
//!
//! Links come from the sent messages themselves (`List-Unsubscribe`, parsed
//! with mail-parser), with the configured public base replaced by the local
//! server's address, as a reverse proxy would map it. The server prints
//! `listening on http://ADDR` as its first stdout line; tests read that
//! line and connect, with no sleeps.
//!
//! The last test needs `python3` with `aiosmtpd` (tests/support).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use briefing::audience::token::Secret;
use support::cli::{OutboxConfig, content_type, copy_dir, outbox_config, repo, run};
use support::{ServerOptions, SmtpServer};

const ISSUE: &str = "tests/fixtures/send/2025-01-17/issue.toml";
const SLUG: &str = "2025-01-17";
const NOW: &str = "2025-01-16T12:00:00Z";
const SECRET: &str = "test-secret";
/// `unsubscribe.base_url` of the repository's config.toml.
const BASE: &str = "https://briefing.example.org/unsubscribe";
/// `sender.list_id` of the repository's config.toml.
const LIST_ID: &str = "china-brief.briefing.example.org";

/// A test's own config, list, outbox and ledger in a temporary folder.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    outbox: PathBuf,
    ledger: PathBuf,
}

impl Fixture {
    /// Recipients `emails`, outbox transport; `extra` overrides more keys.
    fn new(emails: &[&str], extra: &[(&str, String)]) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("briefing-serve-")
            .tempdir()
            .unwrap();
        let OutboxConfig {
            config,
            ledger,
            outbox,
        } = outbox_config(dir.path(), emails, extra);
        Fixture {
            dir,
            config,
            outbox,
            ledger,
        }
    }

    /// Another config over the same ledger, with other keys changed.
    fn sibling_config(&self, name: &str, extra: &[(&str, String)]) -> PathBuf {
        let text = fs::read_to_string(&self.config).unwrap();
        let path = self.dir.path().join(name);
        fs::write(&path, &text).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for (k, v) in extra {
            let line = lines
                .iter_mut()
                .find(|l| l.split('=').next().unwrap_or("").trim() == *k)
                .unwrap_or_else(|| panic!("no `{k}` in the config"));
            *line = format!("{k} = {v}");
        }
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    /// `briefing --config <ours>` in the repo root, fixed clock and secret.
    fn cmd_with(&self, config: &Path, secret: Option<&str>) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_briefing"));
        c.current_dir(repo())
            .arg("--config")
            .arg(config)
            .env("BRIEFING_NOW", NOW)
            .env_remove("BRIEFING_UNSUBSCRIBE_SECRET")
            .env_remove("BRIEFING_UNSUBSCRIBE_PREVIOUS_SECRETS")
            .env_remove("BRIEFING_TRANSPORT")
            .env_remove("BRIEFING_CONFIG");
        if let Some(s) = secret {
            c.env("BRIEFING_UNSUBSCRIBE_SECRET", s);
        }
        c
    }

    fn cmd(&self) -> Command {
        self.cmd_with(&self.config, Some(SECRET))
    }

    fn send_with(&self, mut c: Command, issue: &str, extra: &[&str]) {
        c.arg("send").arg(issue).arg("--yes").args(extra);
        let out = run(c);
        assert_eq!(out.code, Some(0), "send failed:\n{out}");
    }

    fn send(&self) {
        self.send_with(self.cmd(), ISSUE, &[]);
    }

    /// Each message's recipient and its https unsubscribe URL, from an
    /// outbox folder (`<outbox>/<slug>`, or `<slug>-test` for test copies).
    fn links(&self, dir: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let raw = fs::read(e.unwrap().path()).unwrap();
            let (to, url) = unsubscribe_link(&raw);
            out.insert(to, url);
        }
        out
    }

    fn suppressions(&self) -> Vec<serde_json::Value> {
        let mut c = self.cmd();
        c.args(["suppress", "list", "--json"]);
        let out = run(c);
        assert_eq!(out.code, Some(0), "suppress list failed:\n{out}");
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }

    fn suppressed(&self) -> BTreeMap<String, String> {
        self.suppressions()
            .iter()
            .map(|s| {
                (
                    s["email"].as_str().unwrap().to_string(),
                    s["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn serve(&self) -> Server {
        Server::start(self.cmd(), &self.dir.path().join("serve.log"))
    }
}

/// The recipient and the https `List-Unsubscribe` URI of a message.
fn unsubscribe_link(raw: &[u8]) -> (String, String) {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("message parses");
    let to = msg
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .expect("To address")
        .to_lowercase();
    let uris: Vec<String> = msg
        .list_unsubscribe()
        .as_address()
        .expect("List-Unsubscribe holds URIs")
        .iter()
        .filter_map(|a| a.address().map(str::to_string))
        .collect();
    let https = uris
        .iter()
        .find(|u| u.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https URI in {uris:?}"))
        .clone();
    assert!(
        https.starts_with(&format!("{BASE}/")),
        "{https} is not under {BASE}"
    );
    (to, https)
}

/// The token at the end of an unsubscribe URL.
fn token_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// A running `briefing serve`; killed on drop.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start(mut cmd: Command, log: &Path) -> Server {
        let err = fs::File::create(log).unwrap();
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn briefing serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep the pipe open until the server exits.
            for _ in lines {}
        });
        let first = rx.recv_timeout(Duration::from_secs(30));
        let addr = match first {
            Ok(Some(Ok(line))) if line.starts_with("listening on http://") => {
                line["listening on http://".len()..].trim().to_string()
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "briefing serve did not announce its address: {other:?}\n--- stderr ---\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
        };
        Server {
            child,
            addr,
            log: log.to_path_buf(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A public unsubscribe URL mapped to this server, as the proxy would.
    fn local(&self, public: &str) -> String {
        let rest = public
            .strip_prefix(BASE)
            .unwrap_or_else(|| panic!("{public} is not under {BASE}"));
        self.url(&format!("/unsubscribe{rest}"))
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Redirects are returned, not followed, so the checks below see them.
        .max_redirects(0)
        .build()
        .into()
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.expect("HTTP request");
    let status = r.status().as_u16();
    assert!(
        !(300..400).contains(&status),
        "RFC 8058 forbids redirects, got {status}"
    );
    let content_type = content_type(&r);
    let body = r.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        content_type,
        body,
    }
}

const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

fn post_form(url: &str, body: &str) -> Reply {
    reply(
        agent()
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body),
    )
}

fn post_form_html(url: &str, body: &str) -> Reply {
    reply(
        agent()
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .send(body),
    )
}

fn post_multipart(url: &str, name: &str, value: &str) -> Reply {
    let boundary = "----briefing-test-boundary-7d1f";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n--{boundary}--\r\n"
    );
    reply(
        agent()
            .post(url)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(body.as_str()),
    )
}

fn get(url: &str) -> Reply {
    reply(agent().get(url).header("Accept", "text/html").call())
}

/// The token with one character changed.
fn flip(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

fn emails(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("reader{i:02}@example.org"))
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------

#[test]
fn one_click_post_unsubscribes_get_only_asks_and_nothing_redirects() {
    let list = emails(5);
    let f = Fixture::new(&refs(&list), &[]);
    f.send();
    let links = f.links(&f.outbox.join(SLUG));
    assert_eq!(links.len(), 5);
    let server = f.serve();
    let link = |i: usize| server.local(&links[&list[i]]);

    // A GET (what link scanners do) shows a form and changes nothing.
    let page = get(&link(0));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.content_type.starts_with("text/html"), "{page:?}");
    for needle in [
        "<form method=\"post\">",
        "name=\"List-Unsubscribe\" value=\"One-Click\"",
        "<button type=\"submit\">Unsubscribe</button>",
        &list[0],
    ] {
        assert!(
            page.body.contains(needle),
            "no {needle:?} in\n{}",
            page.body
        );
    }
    assert!(f.suppressions().is_empty(), "a GET unsubscribed someone");

    // One-click, urlencoded as Gmail sends it.
    let r = post_form(&link(0), ONE_CLICK);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.content_type.starts_with("text/plain"), "{r:?}");
    let s = f.suppressions();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["email"], list[0].as_str());
    assert_eq!(s[0]["reason"], "unsubscribed");
    assert_eq!(s[0]["source"], "one-click");
    assert_eq!(s[0]["created_at"], NOW);

    // Idempotent.
    let again = post_form(&link(0), ONE_CLICK);
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(f.suppressions().len(), 1);

    // multipart/form-data, the RFC's SHOULD.
    let r = post_multipart(&link(1), "List-Unsubscribe", "One-Click");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        f.suppressed().get(&list[1]).map(String::as_str),
        Some("unsubscribed")
    );

    // Our own form's POST (a browser asks for HTML) gets a page in the
    // newsletter's colours that offers to resubscribe.
    let r = post_form_html(&link(2), ONE_CLICK);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.content_type.starts_with("text/html"), "{r:?}");
    let token2 = token_of(&links[&list[2]]);
    for needle in [
        "China Brief",
        "You are unsubscribed",
        "background:#ffffff",
        "color:#1a1a1a",
        &format!("action=\"../resubscribe/{token2}\""),
        "Resubscribe",
    ] {
        assert!(r.body.contains(needle), "no {needle:?} in\n{}", r.body);
    }
    assert!(
        !r.body.contains("src="),
        "no external resources: {}",
        r.body
    );
    assert!(f.suppressed().contains_key(&list[2]));

    // A GET for someone already unsubscribed says so and offers to undo it.
    let page = get(&link(0));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("You are unsubscribed") && page.body.contains("Resubscribe"),
        "{}",
        page.body
    );

    // A POST without the one-click field is refused.
    let r = post_form(&link(3), "hello=world");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(!f.suppressed().contains_key(&list[3]));

    // Other methods, other paths, health.
    let r = reply(agent().put(&link(3)).send(ONE_CLICK));
    assert_eq!(r.status, 405, "{r:?}");
    let r = reply(agent().delete(&link(3)).call());
    assert_eq!(r.status, 405, "{r:?}");
    let r = reply(agent().get(&server.url("/resubscribe/x")).call());
    assert_eq!(r.status, 405, "{r:?}");
    let r = reply(agent().get(&server.url("/healthz")).call());
    assert_eq!((r.status, r.body.trim()), (200, "ok"), "{r:?}");
    let r = reply(agent().get(&server.url("/")).call());
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!f.suppressed().contains_key(&list[3]));
    assert_eq!(f.suppressed().len(), 3);

    // One log line per request, with neither addresses nor tokens.
    let log = server.log();
    let requests = log
        .lines()
        .filter(|l| {
            l.contains(" INFO GET ")
                || l.contains(" INFO POST ")
                || l.contains(" INFO PUT ")
                || l.contains(" INFO DELETE ")
        })
        .count();
    assert_eq!(requests, 12, "{log}");
    assert!(!log.contains('@'), "an address in the log:\n{log}");
    for url in links.values() {
        assert!(!log.contains(token_of(url)), "a token in the log:\n{log}");
    }
    assert!(log.contains("token#"), "{log}");
}

#[test]
fn forged_truncated_foreign_and_unknown_tokens_get_400_and_record_nothing() {
    let list = emails(3);
    let f = Fixture::new(&refs(&list), &[]);
    f.send();
    // A test copy made for another list id, into the same ledger: its token
    // is in `deliveries`, but must not verify for our list.
    let foreign_outbox = f.dir.path().join("outbox-foreign");
    let foreign = f.sibling_config(
        "foreign.toml",
        &[
            ("list_id", "\"other-list.example.org\"".into()),
            (
                "url",
                format!("\"outbox:{}\"", foreign_outbox.to_str().unwrap()),
            ),
        ],
    );
    f.send_with(
        f.cmd_with(&foreign, Some(SECRET)),
        ISSUE,
        &["--to", &list[0]],
    );
    let foreign_link = f.links(&foreign_outbox.join(format!("{SLUG}-test")))[&list[0]].clone();
    let links = f.links(&f.outbox.join(SLUG));
    assert_ne!(token_of(&foreign_link), token_of(&links[&list[0]]));

    let server = f.serve();
    let good = token_of(&links[&list[0]]).to_string();
    let unsubscribe = |t: &str| server.url(&format!("/unsubscribe/{t}"));
    let cases = [
        ("forged", flip(&good)),
        ("truncated", good[..good.len() - 1].to_string()),
        ("extended", format!("{good}A")),
        ("foreign list", token_of(&foreign_link).to_string()),
        (
            "unknown address",
            Secret::new(SECRET).token(LIST_ID, "nobody@example.org"),
        ),
        (
            "other secret",
            Secret::new("not-the-secret").token(LIST_ID, &list[1]),
        ),
        ("garbage", "%3Cscript%3E".to_string()),
    ];
    let mut bodies = BTreeSet::new();
    for (what, token) in &cases {
        let r = post_form(&unsubscribe(token), ONE_CLICK);
        assert_eq!(r.status, 400, "{what}: {r:?}");
        assert!(r.content_type.starts_with("text/plain"), "{what}: {r:?}");
        bodies.insert(r.body);
        let r = post_multipart(&unsubscribe(token), "List-Unsubscribe", "One-Click");
        assert_eq!(r.status, 400, "{what} (multipart): {r:?}");
        let r = get(&unsubscribe(token));
        assert_eq!(r.status, 400, "{what} (GET): {r:?}");
        let r = post_form(&server.url(&format!("/resubscribe/{token}")), "");
        assert_eq!(r.status, 400, "{what} (resubscribe): {r:?}");
    }
    // The same answer whether or not the address exists.
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(f.suppressions().is_empty(), "{:?}", f.suppressions());

    // The good token still works after all that.
    assert_eq!(post_form(&unsubscribe(&good), ONE_CLICK).status, 200);
    assert_eq!(
        f.suppressed().keys().cloned().collect::<Vec<_>>(),
        vec![list[0].clone()]
    );
}

#[test]
fn bodies_over_the_limit_get_413_and_record_nothing() {
    let list = emails(1);
    let f = Fixture::new(&refs(&list), &[("max_body_bytes", "256".into())]);
    f.send();
    let link = f.links(&f.outbox.join(SLUG))[&list[0]].clone();
    let server = f.serve();
    let url = server.local(&link);

    let padded = |len: usize| {
        let mut b = format!("{ONE_CLICK}&pad=");
        b.push_str(&"x".repeat(len - b.len()));
        b
    };
    let r = post_form(&url, &padded(257));
    assert_eq!(r.status, 413, "{r:?}");
    assert!(f.suppressions().is_empty());
    let r = post_multipart(
        &url,
        "List-Unsubscribe",
        &format!("One-Click{}", " ".repeat(300)),
    );
    assert_eq!(r.status, 413, "{r:?}");
    assert!(f.suppressions().is_empty());

    // Chunked, so the size is only known while reading.
    let host = server.addr.clone();
    let path = url
        .strip_prefix(&format!("http://{host}"))
        .unwrap()
        .to_string();
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let chunk = "x".repeat(200);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{ONE_CLICK}&a=\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        ONE_CLICK.len() + 3,
        chunk.len(),
        chunk.len()
    );
    // The server may answer and close before reading everything.
    let _ = s.write_all(request.as_bytes());
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(f.suppressions().is_empty());

    // Exactly at the limit is fine.
    let r = post_form(&url, &padded(256));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(f.suppressions().len(), 1);
}

#[test]
fn resubscribe_undoes_an_unsubscribe_but_never_a_bounce() {
    let list = emails(3);
    let f = Fixture::new(&refs(&list), &[]);
    f.send();
    let links = f.links(&f.outbox.join(SLUG));
    let server = f.serve();
    let token = |i: usize| token_of(&links[&list[i]]).to_string();
    let resubscribe =
        |i: usize| post_form_html(&server.url(&format!("/resubscribe/{}", token(i))), "");

    // Unsubscribed by mistake: undo it.
    assert_eq!(
        post_form(&server.local(&links[&list[0]]), ONE_CLICK).status,
        200
    );
    assert!(f.suppressed().contains_key(&list[0]));
    let r = resubscribe(0);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("subscribed again") && r.body.contains(&list[0]),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains(&format!("action=\"../unsubscribe/{}\"", token(0))),
        "{}",
        r.body
    );
    assert!(!f.suppressed().contains_key(&list[0]));

    // A hard bounce stays, whatever the reader posts.
    let mut c = f.cmd();
    c.args(["suppress", "add", &list[1], "--reason", "hard-bounce"]);
    let out = run(c);
    assert_eq!(out.code, Some(0), "{out}");
    let r = post_form(&server.local(&links[&list[1]]), ONE_CLICK);
    assert_eq!(r.status, 200, "{r:?}");
    let page = get(&server.local(&links[&list[1]]));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("could not be delivered"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("resubscribe"), "{}", page.body);
    let r = resubscribe(1);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("could not be delivered"), "{}", r.body);
    assert_eq!(
        f.suppressed().get(&list[1]).map(String::as_str),
        Some("hard-bounce")
    );

    // Resubscribing someone who never left changes nothing.
    let r = resubscribe(2);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(f.suppressed().len(), 1);
}

#[test]
fn tokens_made_with_a_previous_secret_still_work_after_a_rotation() {
    let list = emails(2);
    let f = Fixture::new(&refs(&list), &[]);
    f.send_with(f.cmd_with(&f.config, Some("old-secret")), ISSUE, &[]);
    let links = f.links(&f.outbox.join(SLUG));

    // Without the old secret listed, its tokens are refused.
    let mut c = f.cmd_with(&f.config, Some("new-secret"));
    c.env("BRIEFING_UNSUBSCRIBE_PREVIOUS_SECRETS", "unrelated");
    let strict = Server::start(c, &f.dir.path().join("strict.log"));
    assert_eq!(
        post_form(&strict.local(&links[&list[0]]), ONE_CLICK).status,
        400
    );
    drop(strict);
    assert!(f.suppressions().is_empty());

    let mut c = f.cmd_with(&f.config, Some("new-secret"));
    c.env(
        "BRIEFING_UNSUBSCRIBE_PREVIOUS_SECRETS",
        "unrelated, old-secret",
    );
    let server = Server::start(c, &f.dir.path().join("rotated.log"));
    assert_eq!(
        post_form(&server.local(&links[&list[0]]), ONE_CLICK).status,
        200
    );
    assert_eq!(
        f.suppressed().keys().cloned().collect::<Vec<_>>(),
        vec![list[0].clone()]
    );
    assert!(!server.log().contains("old-secret"));
}

#[test]
fn serve_refuses_to_start_without_a_real_secret() {
    let f = Fixture::new(&["a@example.org"], &[]);
    let mut c = f.cmd_with(&f.config, None);
    c.args(["serve", "--listen", "127.0.0.1:0"]);
    let out = run(c);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(out.stderr.contains("BRIEFING_UNSUBSCRIBE_SECRET"), "{out}");
    assert!(!f.ledger.exists(), "nothing should be created");
}

/// RFC 8058 end to end: readers who click one-click in issue A get nothing
/// from issue B; everyone else gets exactly one copy.
#[test]
fn readers_who_unsubscribe_get_nothing_from_the_next_issue() {
    let smtp = SmtpServer::start(ServerOptions::new());
    let list = emails(20);
    let f = Fixture::new(
        &refs(&list),
        &[
            ("url", format!("\"{}\"", smtp.url())),
            ("backoff_ms", "20".into()),
        ],
    );
    f.send();
    let first = smtp.received();
    assert_eq!(first.len(), 20);

    let server = f.serve();
    let mut gone = BTreeSet::new();
    for m in [&first[2], &first[9], &first[16]] {
        let (to, url) = unsubscribe_link(&m.raw);
        assert_eq!(m.envelope.rcpt_tos, vec![to.clone()]);
        let r = post_form(&server.local(&url), ONE_CLICK);
        assert_eq!(r.status, 200, "{r:?}");
        gone.insert(to);
    }
    drop(server);

    // Issue B: the sample issue under another folder name, hence slug.
    let issues = f.dir.path().join("issues");
    copy_dir(
        &repo().join("tests/fixtures/send").join(SLUG),
        &issues.join("2025-01-24"),
    );
    let b = issues.join("2025-01-24").join("issue.toml");
    f.send_with(f.cmd(), b.to_str().unwrap(), &[]);

    let second: Vec<_> = smtp
        .received()
        .into_iter()
        .filter(|m| {
            support::header(&m.parsed(), "Message-ID")
                .is_some_and(|id| id.starts_with("<2025-01-24."))
        })
        .collect();
    let mut per_rcpt: BTreeMap<String, usize> = BTreeMap::new();
    for m in &second {
        for r in &m.envelope.rcpt_tos {
            *per_rcpt.entry(r.to_lowercase()).or_default() += 1;
        }
    }
    for e in &list {
        let want = usize::from(!gone.contains(e));
        assert_eq!(
            per_rcpt.get(e).copied().unwrap_or(0),
            want,
            "{e}: {per_rcpt:?}"
        );
    }
    assert_eq!(second.len(), 17);
}
