//! Running the `briefing` binary from an integration test: the repository
//! root, per-test configs, and runs with their output captured through files
//! (never pipes, so a full pipe can never stall a run) and a time limit.
//!
//! Use it with `mod support;` and `use support::cli::{…};`. Each test binary
//! compiles it on its own and uses only part of it (`dead_code` is allowed in
//! `support/mod.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root (`CARGO_MANIFEST_DIR`).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A path as a TOML basic string.
pub fn toml_path(p: &Path) -> String {
    let s = p.to_str().expect("UTF-8 path");
    assert!(!s.contains(['"', '\\']), "unexpected character in {s}");
    format!("\"{s}\"")
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Writes the repository's config.toml to `path` with some `key = value`
/// lines replaced. Each key must stand exactly once in it, so a changed
/// config fails loudly.
pub fn write_config(path: &Path, overrides: &[(&str, String)]) {
    let base = fs::read_to_string(repo().join("config.toml")).expect("repo config.toml");
    let mut seen = BTreeMap::new();
    let mut text = String::new();
    for line in base.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match overrides
            .iter()
            .find(|(k, _)| *k == key && line.contains('='))
        {
            Some((k, v)) => {
                *seen.entry(*k).or_insert(0) += 1;
                text.push_str(&format!("{k} = {v}\n"));
            }
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    for (k, _) in overrides {
        assert_eq!(
            seen.get(k),
            Some(&1),
            "config.toml changed shape: expected one `{k}` key"
        );
    }
    fs::write(path, text).unwrap();
}

/// Where [`outbox_config`] put a test's config, ledger and outbox.
pub struct OutboxConfig {
    pub config: PathBuf,
    pub ledger: PathBuf,
    pub outbox: PathBuf,
}

/// A test's own world in `dir`: `list.csv` holding `emails` (no names), an
/// empty `suppressed.csv`, and `config.toml`, the repository's with those
/// lists, the ledger `state/briefing.sqlite` and the `outbox:` transport
/// into `outbox/`, then `extra` overrides (which win).
pub fn outbox_config(dir: &Path, emails: &[&str], extra: &[(&str, String)]) -> OutboxConfig {
    let list = dir.join("list.csv");
    let mut csv = String::from("email,name\n");
    for e in emails {
        csv.push_str(&format!("{e},\n"));
    }
    fs::write(&list, csv).unwrap();
    let suppressed = dir.join("suppressed.csv");
    fs::write(&suppressed, "email,reason\n").unwrap();
    let ledger = dir.join("state").join("briefing.sqlite");
    let outbox = dir.join("outbox");
    let config = dir.join("config.toml");
    let mut overrides = vec![
        ("lists", format!("[{}]", toml_path(&list))),
        ("suppressed", toml_path(&suppressed)),
        ("ledger", toml_path(&ledger)),
        ("url", format!("\"outbox:{}\"", outbox.to_str().unwrap())),
    ];
    for (k, v) in extra {
        overrides.retain(|(o, _)| o != k);
        overrides.push((k, v.clone()));
    }
    write_config(&config, &overrides);
    OutboxConfig {
        config,
        ledger,
        outbox,
    }
}

/// The address of list member `i`: `reader0000@example.org` on.
pub fn email(i: usize) -> String {
    format!("reader{i:04}@example.org")
}

/// `counts.<key>` of a `status --json` document.
pub fn count_of(status: &serde_json::Value, key: &str) -> u64 {
    status["counts"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no counts.{key} in {status:#}"))
}

/// What a finished `briefing` run printed and returned.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Stdout, then stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A [`std::process::Output`] shown when an exit code is not the expected
/// one (for tests that run the binary with `Command::output`).
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// How long one `briefing` run may take before the test gives up on it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cmd` to the end (killing it after [`RUN_TIMEOUT`]), stdin null and
/// output captured through files so a full pipe can never stall it.
pub fn run(cmd: Command) -> Out {
    Running::spawn(cmd).wait()
}

/// A `briefing` process running in the background, stdin null and output
/// going to files; killed if a failing test leaves it running.
pub struct Running {
    child: Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
    what: String,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let out = tempfile::NamedTempFile::new().unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        let what = format!("{cmd:?}");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.reopen().unwrap()))
            .stderr(Stdio::from(err.reopen().unwrap()))
            .spawn()
            .expect("run briefing");
        Running {
            child,
            out,
            err,
            what,
        }
    }

    fn output(&self, code: Option<i32>) -> Out {
        let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap()).into_owned();
        Out {
            code,
            stdout: read(self.out.path()),
            stderr: read(self.err.path()),
        }
    }

    /// Waits for the end (killing it after [`RUN_TIMEOUT`], then panicking
    /// with what it printed).
    pub fn wait(mut self) -> Out {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "briefing did not finish within {RUN_TIMEOUT:?}: {}\n{}",
                    self.what,
                    self.output(None)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.output(status.code())
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap.
    pub fn kill(mut self) -> Out {
        self.child.kill().expect("SIGKILL briefing");
        let status = self.child.wait().unwrap();
        self.output(status.code())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `Content-Type` of an HTTP answer from `briefing serve` or
/// `preview --watch` (empty when there is none).
pub fn content_type(r: &ureq::http::Response<ureq::Body>) -> String {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}
