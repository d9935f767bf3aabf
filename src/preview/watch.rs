//! The live preview behind `briefing preview ISSUE --watch`: rendering and
//! watching.
//!
//! A [`Session`] renders the issue into a [`Snapshot`] (the email at
//! desktop and phone width, the plain text and what `check` would say),
//! watches the files it was made from and renders it again after they
//! change. [`Shared`] hands the latest snapshot, and a signal for each new
//! one, to [`super::server`], which shows it in the browser.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use notify::{EventKind, RecursiveMode, Watcher};

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

#[cfg(test)]
impl Snapshot {
    /// A clean snapshot that depends on no file, for the server's tests.
    pub(crate) fn for_test(version: u64, title: &str, email: &str) -> Self {
        Self {
            version,
            title: title.into(),
            email: Some(email.into()),
            text: Some("text".into()),
            problems: String::new(),
            errors: 0,
            warnings: 0,
            watched: WatchSet::default(),
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
    let repository = match Config::load(config_path) {
        Ok(c) => c,
        Err(d) => return failed("the config has errors".to_string(), &d, watched),
    };
    let config = repository.for_issue(issue).clone();
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
    let (url, extra) = unsubscribe_url(&config);
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

/// The stand-in reader's unsubscribe link, and a note for the check part
/// when there is no secret to make a real one with.
fn unsubscribe_url(config: &Config) -> (String, String) {
    match token::Secret::from_config(config, true) {
        Ok(secret) => (
            token::unsubscribe_url(
                config,
                &secret.token(&config.sender.list_id, PREVIEW_READER),
            ),
            String::new(),
        ),
        Err(e) => (
            format!(
                "{}/PREVIEW",
                config.unsubscribe.base_url.trim_end_matches('/')
            ),
            format!("note: the unsubscribe link is a placeholder: {e}\n"),
        ),
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
    pub(crate) fn new(first: Snapshot) -> Self {
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

    /// Signals each new snapshot's version; the value seen first is the
    /// current one.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub(crate) fn publish(&self, snapshot: Snapshot) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
