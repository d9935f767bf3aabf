//! Test harness: a real SMTP server (tests/support/smtp_server.py, aiosmtpd)
//! run as a subprocess, plus helpers to read and parse what it received.
//!
//! Use it from an integration test with `mod support;`:
//!
//! ```ignore
//! let server = support::SmtpServer::start(support::ServerOptions::new().reject(vec!["x@example.org".into()]));
//! // ... point the client at server.url() / 127.0.0.1:server.port ...
//! let got = server.received();          // every accepted message, in order
//! let msg = got[0].parsed();            // mail_parser::Message
//! assert_eq!(support::header(&msg, "List-Id").as_deref(), Some("<x.example.org>"));
//! ```
//!
//! The server stores a message before it answers 250 to DATA, so once a
//! client has seen its send succeed, `received()` already contains it; use
//! `wait_for_count` only when the client runs elsewhere (a child process).
//!
//! Needs `python3` with `aiosmtpd` (`pip install aiosmtpd`; CI installs it).
//! Set `BRIEFING_TEST_PYTHON` to use another interpreter.
//!
//! [`cli`] runs the `briefing` binary itself (configs, captured output,
//! time limits) for the end-to-end tests.

// Each integration test compiles this module (and `cli`) on its own and uses
// only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod browser;
pub mod cli;
pub mod pg;

/// How long `SmtpServer::start` waits for the `READY <port>` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Fault injection and security settings for [`SmtpServer::start`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    tempfail_first: Vec<String>,
    reject: Vec<String>,
    drop_every: Option<u32>,
    starttls: Option<bool>,
    implicit_tls: bool,
    auth: Option<(String, String)>,
    slow_ms: Option<u64>,
    store_then_drop_every: Option<u32>,
    drop_at_data_every: Option<u32>,
    refuse: bool,
    greet_421: bool,
    rcpt_451: bool,
    no_pipelining: bool,
    port: u16,
    verbose: bool,
}

impl ServerOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The first RCPT TO for each of these addresses gets
    /// `451 4.3.0 Try again later`; later ones succeed (case-insensitive).
    pub fn tempfail_first(mut self, addrs: Vec<String>) -> Self {
        self.tempfail_first = addrs;
        self
    }

    /// RCPT TO for these addresses always gets
    /// `550 5.1.1 <addr>: Recipient address rejected: User unknown`.
    pub fn reject(mut self, addrs: Vec<String>) -> Self {
        self.reject = addrs;
        self
    }

    /// Every `n`-th DATA transaction that reaches the final "." (counted
    /// across connections, dropped ones included) is answered by a TCP reset
    /// instead of a reply, and not stored. With `n = 2`: message 1 stored,
    /// message 2 dropped, its retry stored, the next message dropped, ...
    pub fn drop_every(mut self, n: u32) -> Self {
        assert!(n > 0, "drop_every(0) makes no sense");
        self.drop_every = Some(n);
        self
    }

    /// Offer STARTTLS with `certs/server.pem` (for `localhost` and
    /// `127.0.0.1`, signed by `certs/ca.pem`, see [`ca_pem_path`]). With
    /// `require`, MAIL before STARTTLS gets
    /// `530 5.7.0 Must issue a STARTTLS command first`.
    pub fn starttls(mut self, require: bool) -> Self {
        self.starttls = Some(require);
        self
    }

    /// TLS from the first byte (smtps) with the same test certificate.
    pub fn implicit_tls(mut self) -> Self {
        self.implicit_tls = true;
        self
    }

    /// Require AUTH PLAIN/LOGIN with these credentials before MAIL
    /// (`530 5.7.0 Authentication required`; wrong ones get `535 5.7.8`).
    /// With `starttls`, AUTH is only offered and accepted after STARTTLS;
    /// without it, AUTH works over the plain connection.
    pub fn auth(mut self, user: impl Into<String>, pass: impl Into<String>) -> Self {
        self.auth = Some((user.into(), pass.into()));
        self
    }

    /// Delay each reply to the end of DATA by `ms` milliseconds. A message
    /// whose client disconnects during the delay is not stored.
    pub fn slow_ms(mut self, ms: u64) -> Self {
        self.slow_ms = Some(ms);
        self
    }

    /// Like [`drop_every`](Self::drop_every), but each `n`-th message IS
    /// stored (its envelope says [`Envelope::dropped`]) before the
    /// connection is reset without a reply: the server has it, the client
    /// cannot know.
    pub fn store_then_drop_every(mut self, n: u32) -> Self {
        assert!(n > 0, "store_then_drop_every(0) makes no sense");
        self.store_then_drop_every = Some(n);
        self
    }

    /// Every `n`-th DATA command (after an accepted RCPT) resets the
    /// connection instead of answering 354.
    pub fn drop_at_data_every(mut self, n: u32) -> Self {
        assert!(n > 0, "drop_at_data_every(0) makes no sense");
        self.drop_at_data_every = Some(n);
        self
    }

    /// Start with the listening socket closed (connections refused) until
    /// [`SmtpServer::control`]`("accept")`.
    pub fn refuse(mut self) -> Self {
        self.refuse = true;
        self
    }

    /// Start answering every connection `421 4.3.2` at greeting (until
    /// `control("greet-421 off")`).
    pub fn greet_421(mut self) -> Self {
        self.greet_421 = true;
        self
    }

    /// Start answering every RCPT `451 4.3.0 Try again later` (until
    /// `control("rcpt-451 off")`).
    pub fn rcpt_451(mut self) -> Self {
        self.rcpt_451 = true;
        self
    }

    /// EHLO without PIPELINING: the client must wait for each reply.
    pub fn no_pipelining(mut self) -> Self {
        self.no_pipelining = true;
        self
    }

    /// Listen on this port instead of a free one the OS picks.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Trace every SMTP command into the server log ([`SmtpServer::log`]).
    pub fn verbose(mut self) -> Self {
        self.verbose = true;
        self
    }
}

/// Directory of the harness files (`tests/support`).
pub fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("support")
}

/// The test CA that signed the server certificate (PEM file).
pub fn ca_pem_path() -> PathBuf {
    support_dir().join("certs").join("ca.pem")
}

/// Contents of [`ca_pem_path`].
pub fn ca_pem() -> Vec<u8> {
    let path = ca_pem_path();
    fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A running `smtp_server.py` on 127.0.0.1. Dropping it kills the server
/// and deletes its directory.
pub struct SmtpServer {
    pub port: u16,
    /// Where the server writes `<n>.eml` + `<n>.json`.
    pub maildir: PathBuf,
    options: ServerOptions,
    log_path: PathBuf,
    child: Child,
    /// Kept open: the server exits when it closes (`--exit-on-stdin-eof`),
    /// so it cannot outlive a test process that dies without running Drop.
    /// Also the control channel ([`SmtpServer::control`]).
    stdin: std::sync::Mutex<Option<ChildStdin>>,
    /// The server's stdout lines after READY: answers to control commands.
    answers: std::sync::Mutex<mpsc::Receiver<String>>,
    // Last field: removed after the child is gone.
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts the server and waits (at most 20 s) until it accepts
    /// connections. Panics with the server's log if it cannot start.
    pub fn start(options: ServerOptions) -> SmtpServer {
        let dir = tempfile::Builder::new()
            .prefix("briefing-smtp-")
            .tempdir()
            .expect("create temp dir for the SMTP server");
        let maildir = dir.path().join("mail");
        fs::create_dir(&maildir).expect("create maildir");
        let log_path = dir.path().join("server.log");
        let log_file = fs::File::create(&log_path).expect("create server log");

        let script = support_dir().join("smtp_server.py");
        let python = std::env::var("BRIEFING_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg("--port")
            .arg(options.port.to_string())
            .arg("--maildir")
            .arg(&maildir)
            .arg("--exit-on-stdin-eof");
        let write_list = |name: &str, addrs: &[String]| -> PathBuf {
            let path = dir.path().join(name);
            let mut text = addrs.join("\n");
            text.push('\n');
            fs::write(&path, text).expect("write address list");
            path
        };
        if !options.tempfail_first.is_empty() {
            cmd.arg("--tempfail-first")
                .arg(write_list("tempfail-first.txt", &options.tempfail_first));
        }
        if !options.reject.is_empty() {
            cmd.arg("--reject")
                .arg(write_list("reject.txt", &options.reject));
        }
        if let Some(n) = options.drop_every {
            cmd.arg("--drop-every").arg(n.to_string());
        }
        if let Some(require) = options.starttls {
            let certs = support_dir().join("certs");
            cmd.arg("--starttls")
                .arg(certs.join("server.pem"))
                .arg(certs.join("server.key"));
            if require {
                cmd.arg("--require-tls");
            }
        }
        if options.implicit_tls {
            let certs = support_dir().join("certs");
            cmd.arg("--implicit-tls")
                .arg(certs.join("server.pem"))
                .arg(certs.join("server.key"));
        }
        if let Some((user, pass)) = &options.auth {
            cmd.arg("--auth").arg(format!("{user}:{pass}"));
        }
        if let Some(ms) = options.slow_ms {
            cmd.arg("--slow-ms").arg(ms.to_string());
        }
        if let Some(n) = options.store_then_drop_every {
            cmd.arg("--store-then-drop-every").arg(n.to_string());
        }
        if let Some(n) = options.drop_at_data_every {
            cmd.arg("--drop-at-data-every").arg(n.to_string());
        }
        for (on, flag) in [
            (options.refuse, "--refuse"),
            (options.greet_421, "--greet-421"),
            (options.rcpt_451, "--rcpt-451"),
            (options.no_pipelining, "--no-pipelining"),
        ] {
            if on {
                cmd.arg(flag);
            }
        }
        if options.verbose {
            cmd.arg("--verbose");
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));

        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot run `{python}` for the test SMTP server ({e}). The send tests need \
                 Python 3 with aiosmtpd: install python3, then run `pip install aiosmtpd` \
                 (CI installs it); BRIEFING_TEST_PYTHON picks another interpreter."
            ),
        };
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");

        // Read stdout on a thread so the wait for READY can time out.
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // After READY the lines answer control commands.
                let _ = tx.send(line);
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = line.strip_prefix("READY ") {
                        break port.trim().parse::<u16>().unwrap_or_else(|_| {
                            let _ = child.kill();
                            panic!("test SMTP server printed a bad READY line: {line:?}")
                        });
                    }
                    // Anything else on stdout is unexpected; keep waiting.
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "test SMTP server did not print READY within {START_TIMEOUT:?}.\n\
                         command: {cmd:?}\n--- server log ---\n{}",
                        read_log(&log_path)
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    panic!(
                        "test SMTP server exited before it was ready ({status}).\n\
                         The send tests need Python 3 with aiosmtpd: run `pip install aiosmtpd` \
                         (CI installs it).\ncommand: {cmd:?}\n--- server log ---\n{}",
                        read_log(&log_path)
                    );
                }
            }
        };

        SmtpServer {
            port,
            maildir,
            options,
            log_path,
            child,
            stdin: std::sync::Mutex::new(stdin),
            answers: std::sync::Mutex::new(rx),
            dir,
        }
    }

    /// Sends a control command (`refuse`, `accept`, `greet-421 on|off`,
    /// `rcpt-451 on|off`) and returns once the server says it is in force.
    /// Panics with the server log if it refuses or does not answer within
    /// 20 s.
    pub fn control(&self, command: &str) {
        use std::io::Write as _;
        {
            let mut stdin = self.stdin.lock().unwrap();
            let pipe = stdin.as_mut().expect("the control channel is open");
            writeln!(pipe, "{command}").expect("write to the server's control channel");
            pipe.flush().expect("flush the control channel");
        }
        let answers = self.answers.lock().unwrap();
        match answers.recv_timeout(START_TIMEOUT) {
            Ok(line) if line == format!("OK {command}") => {}
            other => panic!(
                "control `{command}`: expected `OK {command}`, got {other:?}\n--- server log ---\n{}",
                self.log()
            ),
        }
    }

    /// The recipients of every DATA command the server received (logged
    /// before it answered 354), in order.
    pub fn data_commands(&self) -> Vec<Vec<String>> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("DATA-COMMAND rcpt=").map(|(_, r)| r))
            .map(|r| r.trim().split(',').map(|a| a.to_lowercase()).collect())
            .collect()
    }

    /// Every end of data the server received, in order: (sequence number,
    /// envelope recipients), whether the message was then stored, dropped
    /// or abandoned by the client.
    pub fn ends_of_data(&self) -> Vec<(u64, Vec<String>)> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("END-OF-DATA #").map(|(_, rest)| rest))
            .filter_map(|rest| {
                let (n, rcpt) = rest.split_once(" rcpt=")?;
                let rcpts = rcpt.trim().split(',').map(|r| r.to_lowercase()).collect();
                Some((n.parse().ok()?, rcpts))
            })
            .collect()
    }

    /// Transport URL for briefing: `smtp://127.0.0.1:PORT?tls=none`, or
    /// `?tls=starttls` when the server offers STARTTLS (trust
    /// [`ca_pem_path`]; the certificate is valid for 127.0.0.1 and localhost).
    pub fn url(&self) -> String {
        let tls = if self.options.starttls.is_some() {
            "starttls"
        } else {
            "none"
        };
        format!("smtp://127.0.0.1:{}?tls={tls}", self.port)
    }

    /// The credentials set with [`ServerOptions::auth`].
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.options
            .auth
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The server's stderr so far (put it in assertion messages).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The server's own directory (maildir, log, address lists); deleted on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every message stored so far, in the order the server accepted them.
    pub fn received(&self) -> Vec<Received> {
        let mut seqs: Vec<(u64, PathBuf)> = fs::read_dir(&self.maildir)
            .unwrap_or_else(|e| panic!("read maildir {}: {e}", self.maildir.display()))
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let stem = path.file_name()?.to_str()?.strip_suffix(".eml")?;
                let seq = stem.parse::<u64>().ok()?;
                Some((seq, path))
            })
            .collect();
        seqs.sort();
        seqs.into_iter()
            .map(|(seq, eml)| {
                let raw = fs::read(&eml).unwrap_or_else(|e| panic!("read {}: {e}", eml.display()));
                let json_path = eml.with_extension("json");
                let json = fs::read_to_string(&json_path)
                    .unwrap_or_else(|e| panic!("read {}: {e}", json_path.display()));
                let envelope = Envelope::from_json(&json)
                    .unwrap_or_else(|e| panic!("bad {}: {e}\n{json}", json_path.display()));
                Received { seq, raw, envelope }
            })
            .collect()
    }

    /// Waits until at least `n` messages are stored, then returns all of them.
    ///
    /// For clients that run outside this test's control flow (a child
    /// process). It polls the maildir every 10 ms, which is acceptable here
    /// because it waits on another process's files, and it is bounded by
    /// `timeout`: past it, it panics with what it found and the server log.
    /// Don't call it from an async task that must make progress meanwhile.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                panic!(
                    "expected {n} message(s) within {timeout:?}, the SMTP server stored {}: \
                     {:?}\n--- server log ---\n{}",
                    got.len(),
                    got.iter().map(|r| &r.envelope.rcpt_tos).collect::<Vec<_>>(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

/// One stored message.
#[derive(Debug, Clone)]
pub struct Received {
    /// Sequence number (1-based, order of acceptance).
    pub seq: u64,
    /// The DATA bytes as received: CRLF line ends, dot-stuffing removed.
    pub raw: Vec<u8>,
    pub envelope: Envelope,
}

/// SMTP envelope and session facts for a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Client address `ip:port`.
    pub peer: Option<String>,
    /// Whether the message came after STARTTLS.
    pub tls: bool,
    /// The user that authenticated on the connection, if any.
    pub auth_user: Option<String>,
    /// Stored, then the connection reset without a reply
    /// ([`ServerOptions::store_then_drop_every`]).
    pub dropped: bool,
}

impl Received {
    /// Parses the message with mail-parser; panics if it cannot.
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .unwrap_or_else(|| {
                panic!(
                    "mail-parser could not parse message {}:\n{}",
                    self.seq,
                    String::from_utf8_lossy(&self.raw)
                )
            })
    }

    /// The raw message as text (lossy), for assertion messages and snapshots.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

impl Envelope {
    fn from_json(text: &str) -> Result<Envelope, String> {
        let Json::Object(map) = json::parse(text)? else {
            return Err("not a JSON object".into());
        };
        let string = |key: &str| -> Result<Option<String>, String> {
            match map.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("{key}: expected string, got {other:?}")),
            }
        };
        let rcpt_tos = match map.get("rcpt_tos") {
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Json::String(s) => Ok(s.clone()),
                    other => Err(format!("rcpt_tos: expected strings, got {other:?}")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            other => return Err(format!("rcpt_tos: expected array, got {other:?}")),
        };
        let tls = match map.get("tls") {
            Some(Json::Bool(b)) => *b,
            other => return Err(format!("tls: expected bool, got {other:?}")),
        };
        let dropped = match map.get("dropped") {
            None => false,
            Some(Json::Bool(b)) => *b,
            other => return Err(format!("dropped: expected bool, got {other:?}")),
        };
        Ok(Envelope {
            mail_from: string("mail_from")?.unwrap_or_default(),
            rcpt_tos,
            peer: string("peer")?,
            tls,
            auth_user: string("auth_user")?,
            dropped,
        })
    }
}

/// The first header `name` (case-insensitive) of the message's top level,
/// as raw text: not decoded (RFC 2047 words stay encoded), unfolded (each
/// CRLF that precedes whitespace removed) and trimmed.
pub fn header(msg: &mail_parser::Message<'_>, name: &str) -> Option<String> {
    header_all(msg, name).into_iter().next()
}

/// Every top-level header `name` (case-insensitive), raw and unfolded, in order.
pub fn header_all(msg: &mail_parser::Message<'_>, name: &str) -> Vec<String> {
    let raw: &[u8] = msg.raw_message.as_ref();
    msg.headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| {
            let bytes = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            unfold(&String::from_utf8_lossy(bytes))
        })
        .collect()
}

fn unfold(value: &str) -> String {
    // Every line break inside one header field is a fold (RFC 5322 2.2.3).
    value
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_string()
}

/// The decoded text of the message's first `text/plain` body part. Panics if
/// there is none (mail-parser's `body_text` would silently convert HTML).
pub fn text_part(msg: &mail_parser::Message<'_>) -> String {
    msg.text_body
        .iter()
        .filter_map(|&id| msg.parts.get(id as usize))
        .find_map(|part| match &part.body {
            mail_parser::PartType::Text(text) => Some(text.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("message has no text/plain body part:\n{}", describe(msg)))
}

/// The decoded text of the message's first `text/html` body part. Panics if
/// there is none.
pub fn html_part(msg: &mail_parser::Message<'_>) -> String {
    msg.html_body
        .iter()
        .filter_map(|&id| msg.parts.get(id as usize))
        .find_map(|part| match &part.body {
            mail_parser::PartType::Html(html) => Some(html.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("message has no text/html body part:\n{}", describe(msg)))
}

fn describe(msg: &mail_parser::Message<'_>) -> String {
    String::from_utf8_lossy(msg.raw_message.as_ref()).into_owned()
}

/// Length in octets of the longest line, not counting its CRLF (or bare LF).
pub fn max_line_len(raw: &[u8]) -> usize {
    raw.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
        .max()
        .unwrap_or(0)
}

/// Whether any line ends in a bare LF (or any CR stands alone): SMTP needs CRLF.
pub fn has_bare_line_ending(raw: &[u8]) -> bool {
    raw.iter().enumerate().any(|(i, &b)| match b {
        b'\n' => i == 0 || raw[i - 1] != b'\r',
        b'\r' => raw.get(i + 1) != Some(&b'\n'),
        _ => false,
    })
}

/// Messages stored per envelope recipient (lower-cased); every message must
/// have exactly one recipient.
pub fn per_rcpt(got: &[Received]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in got {
        assert_eq!(
            r.envelope.rcpt_tos.len(),
            1,
            "message {} has {:?}",
            r.seq,
            r.envelope.rcpt_tos
        );
        *m.entry(r.envelope.rcpt_tos[0].to_lowercase()).or_insert(0) += 1;
    }
    m
}

/// Stored messages, counted without reading them (cheap enough to poll while
/// a child process sends).
pub fn stored_count(server: &SmtpServer) -> usize {
    fs::read_dir(&server.maildir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.ends_with(".eml") && !n.starts_with('.')
                })
                .count()
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

/// Just enough JSON to read the server's `<n>.json` files without a
/// serde_json dev-dependency.
mod json {
    use super::Json;
    use std::collections::BTreeMap;

    pub(super) fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let value = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(value)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                self.i += 1;
            }
        }

        fn err<T>(&self, what: &str) -> Result<T, String> {
            Err(format!("{what} at byte {}", self.i))
        }

        fn eat(&mut self, lit: &str) -> bool {
            if self.s[self.i..].starts_with(lit.as_bytes()) {
                self.i += lit.len();
                true
            } else {
                false
            }
        }

        fn value(&mut self) -> Result<Json, String> {
            self.ws();
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut map = BTreeMap::new();
                    self.ws();
                    if self.eat("}") {
                        return Ok(Json::Object(map));
                    }
                    loop {
                        self.ws();
                        let Json::String(key) = self.value()? else {
                            return self.err("expected object key");
                        };
                        self.ws();
                        if !self.eat(":") {
                            return self.err("expected ':'");
                        }
                        let value = self.value()?;
                        map.insert(key, value);
                        self.ws();
                        if self.eat("}") {
                            return Ok(Json::Object(map));
                        }
                        if !self.eat(",") {
                            return self.err("expected ',' or '}'");
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.eat("]") {
                        return Ok(Json::Array(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        if self.eat("]") {
                            return Ok(Json::Array(items));
                        }
                        if !self.eat(",") {
                            return self.err("expected ',' or ']'");
                        }
                    }
                }
                Some(b'"') => self.string().map(Json::String),
                Some(b't') if self.eat("true") => Ok(Json::Bool(true)),
                Some(b'f') if self.eat("false") => Ok(Json::Bool(false)),
                Some(b'n') if self.eat("null") => Ok(Json::Null),
                Some(b'-' | b'0'..=b'9') => {
                    let start = self.i;
                    while matches!(
                        self.s.get(self.i),
                        Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                    ) {
                        self.i += 1;
                    }
                    let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    text.parse::<f64>()
                        .map(Json::Number)
                        .or_else(|_| self.err("bad number"))
                }
                _ => self.err("expected a JSON value"),
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let digits = self
                .s
                .get(self.i..self.i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u32::from_str_radix(d, 16).ok());
            match digits {
                Some(v) => {
                    self.i += 4;
                    Ok(v)
                }
                None => self.err("bad \\u escape"),
            }
        }

        fn string(&mut self) -> Result<String, String> {
            self.i += 1; // opening quote
            let mut out = Vec::new();
            loop {
                let Some(&b) = self.s.get(self.i) else {
                    return self.err("unterminated string");
                };
                self.i += 1;
                match b {
                    b'"' => break,
                    b'\\' => {
                        let Some(&esc) = self.s.get(self.i) else {
                            return self.err("unterminated escape");
                        };
                        self.i += 1;
                        let ch = match esc {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let hi = self.hex4()?;
                                let code = if (0xD800..0xDC00).contains(&hi) && self.eat("\\u") {
                                    let lo = self.hex4()?;
                                    0x10000
                                        + ((hi - 0xD800) << 10)
                                        + (lo.wrapping_sub(0xDC00) & 0x3FF)
                                } else {
                                    hi
                                };
                                char::from_u32(code).unwrap_or('\u{FFFD}')
                            }
                            _ => return self.err("bad escape"),
                        };
                        let mut buf = [0; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => out.push(b),
                }
            }
            String::from_utf8(out).or_else(|_| self.err("string is not UTF-8"))
        }
    }
}
