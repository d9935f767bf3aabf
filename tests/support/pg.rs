//! A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` in a
//! temporary folder, on a unix socket and a free loopback port, one per
//! test binary. A watcher process stops and removes it when the binary
//! exits, however it exits. Shared by the library's unit tests (through
//! `#[path]`) and the integration tests, so it uses std only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The superuser's password, needed on TCP (scram-sha-256).
pub const PASSWORD: &str = "test-only-ledger-password";

/// A running cluster.
pub struct Cluster {
    /// Loopback TCP port.
    pub port: u16,
    /// The cluster's folder.
    pub dir: PathBuf,
}

impl Cluster {
    /// A URL for the `postgres` database as user `briefing`, no password.
    pub fn url(&self) -> String {
        format!("postgres://briefing@127.0.0.1:{}/postgres", self.port)
    }
}

/// The cluster of this test binary, started on first use. Panics with a
/// clear message when PostgreSQL is not installed: a missing server must
/// fail the tests, never skip them.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER
        .get_or_init(|| start().unwrap_or_else(|e| panic!("cannot start a test PostgreSQL: {e}")))
}

/// Where `initdb` and `pg_ctl` are: `pg_config --bindir`, else Debian's
/// `/usr/lib/postgresql/<version>/bin`, else PATH.
fn bindir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|d| d.join("initdb").exists());
    found.sort();
    if let Some(d) = found.pop() {
        return Ok(d);
    }
    Err("no initdb found (pg_config --bindir, /usr/lib/postgresql/*/bin); install Debian's `postgresql` package (tests/run.sh does)".into())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the `postgres` user when we are root (initdb refuses
/// to run as root).
fn as_owner(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) -> Result<(), String> {
    let out = c.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn start() -> Result<Cluster, String> {
    let bin = bindir()?;
    let root = is_root();
    let base = std::env::temp_dir().join(format!(
        "briefing-pg-{}-{}",
        std::process::id(),
        free_port()?
    ));
    let (data, sock) = (base.join("data"), base.join("sock"));
    std::fs::create_dir_all(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    let pwfile = base.join("pw");
    std::fs::write(&pwfile, PASSWORD).map_err(|e| e.to_string())?;
    if root {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(&base);
                c
            },
            "chown",
        )?;
    }
    let mut init = as_owner(&bin.join("initdb"), root);
    init.arg("-D").arg(&data).args([
        "-U",
        "briefing",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
        "-E",
        "UTF8",
    ]);
    init.arg(format!("--pwfile={}", pwfile.display()));
    run(init, "initdb")?;
    let port = free_port()?;
    let mut ctl = as_owner(&bin.join("pg_ctl"), root);
    ctl.arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(base.join("log"))
        .args(["-w", "-t", "60", "-o"]);
    ctl.arg(format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
        sock.display()
    ));
    ctl.arg("start");
    run(ctl, "pg_ctl start").map_err(|e| {
        let log = std::fs::read_to_string(base.join("log")).unwrap_or_default();
        format!("{e}\n{log}")
    })?;
    watch(&bin, &data, &base, root);
    Ok(Cluster { port, dir: base })
}

/// Stops and removes the cluster once this process is gone (a test binary
/// has no hook that runs at its exit). The shell polls once a second; it
/// synchronises no test, it only cleans up.
fn watch(bin: &Path, data: &Path, base: &Path, root: bool) {
    let stop = format!(
        "{} '{}' -D '{}' -m immediate stop >/dev/null 2>&1",
        if root { "runuser -u postgres --" } else { "" },
        bin.join("pg_ctl").display(),
        data.display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf '{}'",
        base.display(),
        pid = std::process::id()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
