//! The live preview behind `briefing preview ISSUE --watch`.
//!
//! A [`Session`] renders the issue into a [`Snapshot`] (the email at
//! desktop and phone width, the plain text and what `check` would say),
//! watches the files it was made from and renders it again after they
//! change. [`serve`] shows the latest snapshot on a loopback HTTP server and
//! tells open pages to reload through Server-Sent Events at `/events`.
//!
//! The server speaks just enough HTTP/1.1 for a browser on the same
//! machine: GET requests, one per connection. axum's SSE support needs a
//! `futures` stream type that no direct dependency provides.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use maud::{DOCTYPE, PreEscaped, html};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::audience::recipient::Recipient;
use crate::audience::{lists, token};
use crate::compose;
use crate::config::Config;
use crate::diagnostic::{Diagnostics, Severity};

/// Quiet time after the last change before rendering again: editors often
/// write a file in several steps (truncate, write, rename).
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// The stand-in reader the preview is filled for: merge tags show their
/// fallbacks, and no subscriber's data is ever served.
const PREVIEW_READER: &str = "reader@example.org";

/// What the preview shows, rendered once per change.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Counts up from 1 with every rendering.
    pub version: u64,
    /// The subject, or why there is none.
    pub title: String,
    /// The email's HTML, when the issue loaded.
    pub email: Option<String>,
    /// The plain-text alternative, when the issue loaded.
    pub text: Option<String>,
    /// Validation and lint problems, as `briefing check` prints them.
    pub problems: String,
    /// Errors among the problems.
    pub errors: usize,
    /// Warnings among the problems.
    pub warnings: usize,
    /// The files this rendering was made from.
    watched: WatchSet,
}

impl Snapshot {
    /// The status line: `ready`, or the problem counts.
    pub fn status(&self) -> String {
        match (self.errors, self.warnings) {
            (0, 0) => "ready, no problems".to_string(),
            (e, w) => format!(
                "{e} error{}, {w} warning{}",
                if e == 1 { "" } else { "s" },
                if w == 1 { "" } else { "s" }
            ),
        }
    }
}

/// The files a snapshot depends on.
#[derive(Debug, Clone, Default)]
struct WatchSet {
    manifest: PathBuf,
    config: PathBuf,
    templates: PathBuf,
    body_files: BTreeSet<PathBuf>,
    /// When the manifest does not load, which files it needs is unknown,
    /// so any change beside it counts.
    loose: bool,
}

impl WatchSet {
    fn manifest_dir(&self) -> &Path {
        self.manifest.parent().unwrap_or(Path::new("/"))
    }

    fn is_relevant(&self, path: &Path) -> bool {
        let path = normalize(path);
        path == self.manifest
            || path == self.config
            || self.body_files.contains(&path)
            || path.starts_with(&self.templates)
            || (self.loose && path.starts_with(self.manifest_dir()) && !is_scratch(&path))
    }

    /// Folders to watch: whole folders are watched rather than files, since
    /// editors that save by renaming replace the file a watch was on.
    fn folders(&self) -> BTreeSet<(PathBuf, bool)> {
        let mut want: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
        want.insert((self.manifest_dir().to_path_buf(), true));
        for f in std::iter::once(&self.config).chain(&self.body_files) {
            if let Some(dir) = f.parent() {
                want.insert((dir.to_path_buf(), false));
            }
        }
        if self.templates.is_dir() {
            want.insert((self.templates.clone(), true));
        } else if let Some(dir) = self.templates.parent() {
            // Notices the folder being created.
            want.insert((dir.to_path_buf(), false));
        }
        let trees: Vec<PathBuf> = want
            .iter()
            .filter(|(_, r)| *r)
            .map(|(p, _)| p.clone())
            .collect();
        want.into_iter()
            .filter(|(p, recursive)| *recursive || !trees.iter().any(|t| p.starts_with(t)))
            .collect()
    }
}

/// Editor swap and backup files, which never change what the issue says.
fn is_scratch(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name == "4913"
}

/// An absolute form of `path` that matches what the watcher reports, even
/// for a file that was just removed.
fn normalize(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            match std::fs::canonicalize(dir) {
                Ok(d) => d.join(name),
                Err(_) => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            }
        }
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Renders the issue as the preview shows it. Never fails: problems that
/// stop it (a broken manifest or config) become the snapshot's text.
fn render_snapshot(
    issue: &Path,
    config_path: Option<&Path>,
    now: Timestamp,
    version: u64,
    before: Option<&WatchSet>,
) -> Snapshot {
    let config_file = normalize(config_path.unwrap_or(Path::new("config.toml")));
    let mut watched = WatchSet {
        manifest: normalize(issue),
        templates: config_file
            .parent()
            .map(|d| d.join("templates"))
            .unwrap_or_else(|| PathBuf::from("templates")),
        config: config_file,
        body_files: before.map(|w| w.body_files.clone()).unwrap_or_default(),
        loose: true,
    };
    let failed = |title: String, d: &Diagnostics, watched: WatchSet| {
        let (errors, warnings) = counts(d);
        Snapshot {
            version,
            title,
            email: None,
            text: None,
            problems: d.render(),
            errors,
            warnings,
            watched,
        }
    };
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(d) => return failed("the config has errors".to_string(), &d, watched),
    };
    watched.templates = normalize(&config.resolve(Path::new("templates")));
    let columns = lists::columns(&config.lists()).ok();
    let checked = match compose::check(issue, &config, now, columns) {
        Ok(c) => c,
        Err(d) => {
            let name = issue.file_name().map(|n| n.to_string_lossy().into_owned());
            return failed(
                format!("{} has errors", name.as_deref().unwrap_or("the manifest")),
                &d,
                watched,
            );
        }
    };
    watched.loose = false;
    watched.body_files = checked
        .loaded
        .body_files
        .iter()
        .map(|p| normalize(p))
        .collect();
    let (loaded, rendered, problems) = (checked.loaded, checked.rendered, checked.problems);
    let reader = Recipient::new(PREVIEW_READER, "");
    let mut extra = String::new();
    let url = match token::Secret::from_config(&config, true) {
        Ok(secret) => token::unsubscribe_url(
            &config,
            &secret.token(&config.sender.list_id, PREVIEW_READER),
        ),
        Err(e) => {
            extra = format!("note: the unsubscribe link is a placeholder: {e}\n");
            format!(
                "{}/PREVIEW",
                config.unsubscribe.base_url.trim_end_matches('/')
            )
        }
    };
    let (errors, warnings) = counts(&problems);
    Snapshot {
        version,
        title: loaded.issue.subject.clone(),
        email: Some(rendered.html.fill(&reader, &url)),
        text: Some(rendered.text.fill(&reader, &url)),
        problems: format!("{}{extra}", problems.render()),
        errors,
        warnings,
        watched,
    }
}

fn counts(d: &Diagnostics) -> (usize, usize) {
    let errors = d.iter().filter(|x| x.severity == Severity::Error).count();
    (errors, d.len() - errors)
}

/// The latest snapshot, shared between the watcher and the server.
#[derive(Debug)]
pub struct Shared {
    current: RwLock<Arc<Snapshot>>,
    version: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    fn new(first: Snapshot) -> Self {
        let (version, _) = tokio::sync::watch::channel(first.version);
        Self {
            current: RwLock::new(Arc::new(first)),
            version,
        }
    }

    /// The snapshot pages are built from now.
    pub fn current(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn publish(&self, snapshot: Snapshot) {
        let version = snapshot.version;
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(snapshot),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(snapshot),
        }
        // Pages are told only after the new snapshot is in place, so the
        // reload they do always sees it.
        self.version.send_replace(version);
    }
}

enum Msg {
    Fs(notify::Result<notify::Event>),
    Stop,
}

/// Stops a [`Session`] from another thread (the Ctrl-C handler).
#[derive(Clone)]
pub struct Stopper(mpsc::Sender<Msg>);

impl Stopper {
    /// Makes [`Session::next_change`] return `false`.
    pub fn stop(&self) {
        let _ = self.0.send(Msg::Stop);
    }
}

/// Renders an issue, watches its files and renders it again on change.
pub struct Session {
    issue: PathBuf,
    config_path: Option<PathBuf>,
    shared: Arc<Shared>,
    watcher: notify::RecommendedWatcher,
    watching: BTreeSet<(PathBuf, bool)>,
    rx: mpsc::Receiver<Msg>,
    tx: mpsc::Sender<Msg>,
}

impl Session {
    /// Renders the issue once and starts watching what it was made from.
    pub fn start(issue: &Path, config_path: Option<&Path>, now: Timestamp) -> notify::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let watcher = notify::recommended_watcher(move |e| {
            let _ = events.send(Msg::Fs(e));
        })?;
        let first = render_snapshot(issue, config_path, now, 1, None);
        let mut session = Self {
            issue: issue.to_path_buf(),
            config_path: config_path.map(Path::to_path_buf),
            shared: Arc::new(Shared::new(first)),
            watcher,
            watching: BTreeSet::new(),
            rx,
            tx,
        };
        session.sync_watches();
        Ok(session)
    }

    /// The state the server reads.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// A handle that ends [`Session::next_change`].
    pub fn stopper(&self) -> Stopper {
        Stopper(self.tx.clone())
    }

    /// Waits until a file the preview depends on changed and then stayed
    /// unchanged for [`DEBOUNCE`]; `false` once stopped.
    pub fn next_change(&mut self) -> bool {
        let watched = self.shared.current().watched.clone();
        let relevant = |m: &Msg| match m {
            Msg::Fs(Ok(e)) => {
                !matches!(e.kind, EventKind::Access(_))
                    && e.paths.iter().any(|p| watched.is_relevant(p))
            }
            // The watcher lost track (an overflow, say): render to be sure.
            Msg::Fs(Err(_)) => true,
            Msg::Stop => false,
        };
        loop {
            match self.rx.recv() {
                Ok(Msg::Stop) | Err(_) => return false,
                Ok(m) if relevant(&m) => break,
                Ok(_) => {}
            }
        }
        loop {
            match self.rx.recv_timeout(DEBOUNCE) {
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => return true,
            }
        }
    }

    /// Renders the issue again (re-reading the config), publishes the new
    /// snapshot to open pages and follows any new body files.
    pub fn rebuild(&mut self, now: Timestamp) -> Arc<Snapshot> {
        let before = self.shared.current();
        let next = render_snapshot(
            &self.issue,
            self.config_path.as_deref(),
            now,
            before.version + 1,
            Some(&before.watched),
        );
        self.shared.publish(next);
        self.sync_watches();
        self.shared.current()
    }

    fn sync_watches(&mut self) {
        let want = self.shared.current().watched.folders();
        for (dir, recursive) in self.watching.difference(&want).cloned().collect::<Vec<_>>() {
            let _ = self.watcher.unwatch(&dir);
            self.watching.remove(&(dir, recursive));
        }
        for (dir, recursive) in want {
            if self.watching.contains(&(dir.clone(), recursive)) {
                continue;
            }
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            // A folder that does not exist yet is tried again next time.
            if self.watcher.watch(&dir, mode).is_ok() {
                self.watching.insert((dir, recursive));
            }
        }
    }
}

/// True when every address `listen` names is a loopback one.
pub fn is_loopback(listen: &str) -> bool {
    use std::net::ToSocketAddrs;
    match listen.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// Serves the preview until the listener fails; run it with a shutdown
/// signal in `tokio::select!`.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            // A browser that goes away mid-response is not an error worth
            // reporting.
            let _ = handle(stream, shared).await;
        });
    }
}

const MAX_HEAD: usize = 16 * 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

async fn handle(mut stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let head = match tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream)).await {
        Ok(Ok(h)) => h,
        _ => return Ok(()),
    };
    let mut lines = head.split("\r\n");
    let mut request = lines.next().unwrap_or("").split(' ');
    let (method, target) = (request.next().unwrap_or(""), request.next().unwrap_or(""));
    let host = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim().to_string());
    // A page elsewhere could point its own name at 127.0.0.1 (DNS
    // rebinding) and read the unpublished issue; only loopback names pass.
    if !host.as_deref().is_some_and(is_loopback_host) {
        return respond(
            &mut stream,
            "403 Forbidden",
            "text/plain; charset=utf-8",
            b"loopback only\n",
            &[],
        )
        .await;
    }
    if method != "GET" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            b"GET only\n",
            &[],
        )
        .await;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let snap = shared.current();
    match path {
        "/" => {
            let page = wrapper_page(&snap);
            respond(
                &mut stream,
                "200 OK",
                "text/html; charset=utf-8",
                page.as_bytes(),
                &[],
            )
            .await
        }
        "/email.html" => {
            let body = match &snap.email {
                Some(html) => html.clone(),
                None => problems_page(&snap),
            };
            // The email must behave as in an inbox, where no script runs.
            let csp = [("Content-Security-Policy", "script-src 'none'")];
            respond(
                &mut stream,
                "200 OK",
                "text/html; charset=utf-8",
                body.as_bytes(),
                &csp,
            )
            .await
        }
        "/text.txt" => {
            let body = snap.text.clone().unwrap_or_else(|| snap.problems.clone());
            respond(
                &mut stream,
                "200 OK",
                "text/plain; charset=utf-8",
                body.as_bytes(),
                &[],
            )
            .await
        }
        "/events" => {
            let since = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("since="))
                .and_then(|v| v.parse::<u64>().ok());
            events(stream, &shared, since).await
        }
        _ => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain; charset=utf-8",
                b"not found\n",
                &[],
            )
            .await
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// The event stream: a `reload` event with the new version after every
/// rendering, and one at once when the page is older than the snapshot.
async fn events(mut stream: TcpStream, shared: &Shared, since: Option<u64>) -> io::Result<()> {
    let mut rx = shared.version.subscribe();
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
              Connection: close\r\n\r\nretry: 500\n: connected\n\n",
        )
        .await?;
    let now = *rx.borrow_and_update();
    if since.is_some_and(|v| v != now) {
        stream.write_all(reload_event(now).as_bytes()).await?;
    }
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let v = *rx.borrow_and_update();
                stream.write_all(reload_event(v).as_bytes()).await?;
            }
            // Writing is how a closed page is noticed.
            () = tokio::time::sleep(KEEP_ALIVE) => stream.write_all(b": keep-alive\n\n").await?,
        }
    }
}

fn reload_event(version: u64) -> String {
    format!("event: reload\ndata: {version}\n\n")
}

const WRAPPER_STYLE: &str = "\
body{margin:0;padding:16px;background:#e8e8e8;color:#1a1a1a;font:15px/1.4 Helvetica,Arial,sans-serif}\n\
h1{margin:0;font-size:20px}\n\
h2{margin:24px 0 8px;font-size:16px}\n\
.status{margin:4px 0 0;color:#555}\n\
.bad{color:#a61c1c}\n\
.frames{display:flex;gap:24px;align-items:flex-start;overflow-x:auto;margin-top:16px}\n\
figure{margin:0}\n\
figcaption{margin:0 0 4px;color:#555;font-size:13px}\n\
iframe{display:block;height:85vh;border:1px solid #bbb;background:#fff}\n\
pre{margin:0;padding:12px;background:#fff;border:1px solid #bbb;white-space:pre-wrap;overflow-wrap:anywhere;\
font:13px/1.45 Menlo,Consolas,monospace}\n";

/// Reloads on a `reload` event and keeps the scroll position across it.
fn reload_script(version: u64) -> String {
    format!(
        "(function(){{var k='briefing-preview-scroll',y=sessionStorage.getItem(k);\
if(y!==null){{sessionStorage.removeItem(k);window.scrollTo(0,+y);}}\
var es=new EventSource('/events?since={version}');\
es.addEventListener('reload',function(){{es.close();sessionStorage.setItem(k,String(window.scrollY));location.reload();}});}})();"
    )
}

/// The page around the email, the only one with a script.
fn wrapper_page(snap: &Snapshot) -> String {
    let bad = snap.errors > 0;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { "Preview: " (snap.title) }
                style { (PreEscaped(WRAPPER_STYLE)) }
            }
            body {
                header {
                    h1 { (snap.title) }
                    p.status.bad[bad] { (snap.status()) " · rendering " (snap.version) }
                }
                @if !snap.problems.is_empty() {
                    h2 { "Check" }
                    pre { (snap.problems) }
                }
                @if snap.email.is_some() {
                    div.frames {
                        figure {
                            figcaption { "Desktop, 640 px" }
                            iframe src={ "/email.html?v=" (snap.version) } width="640" title="Email at desktop width"
                                sandbox="allow-popups allow-popups-to-escape-sandbox" style="width:640px" {}
                        }
                        figure {
                            figcaption { "Phone, 375 px" }
                            iframe src={ "/email.html?v=" (snap.version) } width="375" title="Email at phone width"
                                sandbox="allow-popups allow-popups-to-escape-sandbox" style="width:375px" {}
                        }
                    }
                }
                @if let Some(text) = &snap.text {
                    h2 { "Plain text" }
                    pre { (text) }
                }
                script { (PreEscaped(reload_script(snap.version))) }
            }
        }
    }
    .into_string()
}

/// What `/email.html` shows while the issue does not load.
fn problems_page(snap: &Snapshot) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (snap.title) } }
            body { pre { (snap.problems) } }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_and_addresses_pass() {
        assert!(is_loopback_host("127.0.0.1:4000"));
        assert!(is_loopback_host("localhost:4000"));
        assert!(is_loopback_host("[::1]:4000"));
        assert!(!is_loopback_host("evil.example:4000"));
        assert!(!is_loopback_host("192.168.1.2:4000"));
        assert!(is_loopback("127.0.0.1:0"));
        assert!(!is_loopback("0.0.0.0:4000"));
    }

    #[test]
    fn scratch_files_and_unrelated_files_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let set = WatchSet {
            manifest: root.join("issue.toml"),
            config: root.join("config.toml"),
            templates: root.join("templates"),
            body_files: [root.join("a.md")].into_iter().collect(),
            loose: false,
        };
        assert!(set.is_relevant(&root.join("issue.toml")));
        assert!(set.is_relevant(&root.join("a.md")));
        assert!(set.is_relevant(&root.join("templates/x/y.html")));
        assert!(!set.is_relevant(&root.join("notes.txt")));
        let loose = WatchSet { loose: true, ..set };
        assert!(loose.is_relevant(&root.join("b.md")));
        assert!(!loose.is_relevant(&root.join(".issue.toml.swp")));
        assert_eq!(
            loose.folders().into_iter().collect::<Vec<_>>(),
            vec![(root.clone(), true)],
            "one recursive watch covers the others"
        );
    }

    #[test]
    fn the_email_page_never_gets_the_reload_script() {
        let snap = Snapshot {
            version: 3,
            title: "T <b>".into(),
            email: Some("<!DOCTYPE html><p>mail</p>".into()),
            text: Some("text".into()),
            problems: String::new(),
            errors: 0,
            warnings: 0,
            watched: WatchSet::default(),
        };
        let page = wrapper_page(&snap);
        assert!(page.contains("EventSource('/events?since=3')"), "{page}");
        assert!(page.contains("T &lt;b&gt;"), "{page}");
        assert!(!snap.email.unwrap().contains("EventSource"));
    }
}
