//! `briefing preview ISSUE --watch` as an editor uses it: the page shows
//! the issue, and saving the manifest (good or broken) reloads it through
//! the event stream within moments.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::cli::{content_type, copy_dir, repo};

/// How long a saved file may take to show in the page.
const WITHIN: Duration = Duration::from_secs(2);
const SUBJECT: &str = "Chinese buyers for VW plants?";
const TITLE: &str = "Made in Germany, owned in China?";
const NEW_TITLE: &str = "Made in Saxony, owned in China?";

/// The running preview, killed when the test ends.
struct Preview {
    child: Child,
    url: String,
}

impl Drop for Preview {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, manifest: &Path) -> Preview {
    let mut child = Command::new(env!("CARGO_BIN_EXE_briefing"))
        .current_dir(dir)
        .env_remove("BRIEFING_CONFIG")
        .env_remove("BRIEFING_UNSUBSCRIBE_SECRET")
        // Before the sample's events, so the check part is clean.
        .env("BRIEFING_NOW", "2025-01-16T12:00:00Z")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("preview")
        .arg(manifest)
        .args(["--watch", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the briefing binary runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let mut preview = Preview {
        child,
        url: String::new(),
    };
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a first line from preview --watch");
    preview.url = first
        .trim()
        .strip_prefix("watching ")
        .unwrap_or_else(|| panic!("expected `watching http://…`, got {first:?}"))
        .to_string();
    assert!(preview.url.starts_with("http://127.0.0.1:"), "{first}");
    preview
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().expect("HTTP GET");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

/// Lines of the event stream, read on a thread so waits stay bounded.
struct Events {
    lines: mpsc::Receiver<String>,
}

impl Events {
    fn open(url: &str) -> Self {
        let r = agent()
            .get(&format!("{url}/events"))
            .call()
            .expect("GET /events");
        assert_eq!(r.status().as_u16(), 200);
        let content_type = content_type(&r);
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let reader = r.into_body().into_reader();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let events = Self { lines };
        // The server confirms the stream before any change is made, so no
        // reload can slip by unseen.
        events.wait_for(": connected");
        events
    }

    /// Waits at most [`WITHIN`] for a line equal to `want`.
    fn wait_for(&self, want: &str) {
        let deadline = Instant::now() + WITHIN;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no `{want}` within {WITHIN:?}; the stream said {seen:?}"),
            }
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn the_page_follows_the_manifest_through_a_broken_save_and_back() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &repo().join("issues/2025-01-17"),
        &dir.path().join("2025-01-17"),
    );
    std::fs::copy(repo().join("config.toml"), dir.path().join("config.toml")).unwrap();
    copy_dir(&repo().join("recipients"), &dir.path().join("recipients"));
    let manifest = dir.path().join("2025-01-17/issue.toml");
    let preview = start(dir.path(), &manifest);

    let (status, page) = get(&format!("{}/", preview.url));
    assert_eq!(status, 200);
    assert!(page.contains(SUBJECT), "{page}");
    assert!(page.contains("ready, no problems"), "{page}");
    assert!(
        page.contains("<iframe") && page.contains("width=\"375\""),
        "{page}"
    );
    assert!(page.contains("EventSource"), "the wrapper reloads itself");
    let (status, email) = get(&format!("{}/email.html", preview.url));
    assert_eq!(status, 200);
    assert!(email.contains(TITLE), "{email}");
    assert!(
        !email.contains("<script") && !email.contains("EventSource"),
        "never in the email"
    );

    let events = Events::open(&preview.url);
    edit(&manifest, TITLE, NEW_TITLE);
    events.wait_for("event: reload");
    let (_, email) = get(&format!("{}/email.html", preview.url));
    assert!(email.contains(NEW_TITLE), "{email}");
    let (_, page) = get(&format!("{}/", preview.url));
    assert!(
        page.contains("Made in Saxony"),
        "the text part shows it too: {page}"
    );

    edit(&manifest, "number = 1042", "number = 1042\nnumbr = 7");
    events.wait_for("event: reload");
    let (status, page) = get(&format!("{}/", preview.url));
    assert_eq!(status, 200);
    assert!(page.contains("unknown key `numbr`"), "{page}");
    assert!(
        page.contains("issue.toml:3:1: error"),
        "the line of the error: {page}"
    );
    assert!(page.contains("3 | numbr = 7"), "the line itself: {page}");
    assert!(page.contains("EventSource"), "a broken issue still reloads");

    edit(&manifest, "number = 1042\nnumbr = 7", "number = 1042");
    events.wait_for("event: reload");
    let (_, page) = get(&format!("{}/", preview.url));
    assert!(page.contains(SUBJECT), "{page}");
    assert!(!page.contains("numbr"), "{page}");
}

#[test]
fn other_hosts_and_non_loopback_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &repo().join("issues/2025-01-17"),
        &dir.path().join("2025-01-17"),
    );
    std::fs::copy(repo().join("config.toml"), dir.path().join("config.toml")).unwrap();
    let manifest = dir.path().join("2025-01-17/issue.toml");
    let preview = start(dir.path(), &manifest);
    let r = agent()
        .get(&format!("{}/", preview.url))
        .header("Host", "rebound.example.com")
        .call()
        .expect("HTTP GET");
    assert_eq!(r.status().as_u16(), 403);

    let mut o = Command::new(env!("CARGO_BIN_EXE_briefing"))
        .current_dir(dir.path())
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .arg("preview")
        .arg(&manifest)
        .args(["--watch", "--listen", "0.0.0.0:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    o.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(o.wait().unwrap().code(), Some(2), "{err}");
    assert!(err.contains("loopback"), "{err}");
}
