//! `briefing archive` and `briefing preview --watch`.

use std::path::{Path, PathBuf};

use briefing::archive::{self, Standing};
use briefing::clock::Clock;
use briefing::config::Config;
use briefing::ledger::SendKind;
use briefing::{manifest, schedule, watch};

use crate::exit;

/// Arguments of `briefing archive`.
#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    /// Output folder (default: archive.out in the config, `site/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also include scheduled issues, not only sent ones.
    #[arg(long)]
    pub all: bool,
    /// Folder of issues.
    #[arg(long, default_value = "issues")]
    pub issues: PathBuf,
}

/// Runs `briefing archive`.
pub fn archive(args: ArchiveArgs, config: &Config, _clock: &dyn Clock) -> u8 {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| config.resolve(&config.archive.out));
    let manifests = match schedule::find_manifests(&args.issues) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "error: cannot list issues in {}: {e}",
                args.issues.display()
            );
            return exit::BAD_INPUT;
        }
    };
    let ledger = match crate::existing_ledger(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let record = |slug: &str| match &ledger {
        Some(l) => l.send_record(slug, SendKind::Real),
        None => Ok(None),
    };
    let previous = match archive::previous_files(&out) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "error: cannot read {}: {e}",
                out.join(archive::MANIFEST_FILE).display()
            );
            return exit::BAD_INPUT;
        }
    };
    let mut entries = Vec::new();
    let mut broken_published = false;
    for m in &manifests {
        let loaded = match manifest::load(m, config) {
            Ok(l) => l,
            Err(d) => {
                eprint!("{}", d.render());
                // A draft being edited may be broken; a published issue that
                // no longer loads would silently lose its page.
                let slug = archive::slug_hint(m);
                let sent = match slug.as_deref().map(record) {
                    Some(Ok(r)) => r.is_some(),
                    Some(Err(e)) => {
                        eprintln!("error: {e}");
                        return exit::BAD_INPUT;
                    }
                    None => false,
                };
                let was_archived = slug
                    .as_deref()
                    .is_some_and(|s| previous.contains(&format!("{s}/index.html")));
                if sent || was_archived {
                    eprintln!(
                        "error: {} was sent or archived before and no longer loads; fix it, or the archive would lose its page",
                        m.display()
                    );
                    broken_published = true;
                } else {
                    eprintln!("note: skipped {}: it does not load (a draft?)", m.display());
                }
                continue;
            }
        };
        let rec = match record(&loaded.issue.slug) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        };
        if let Some(e) = archive::entry(loaded.issue, rec.as_ref(), config, args.all) {
            entries.push(e);
        }
    }
    if broken_published {
        eprintln!("error: nothing was written to {}", out.display());
        return exit::BAD_INPUT;
    }
    let site = match archive::build(&entries, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let report = match site.write(&out) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot write the archive to {}: {e}", out.display());
            return exit::BAD_INPUT;
        }
    };
    let published = entries
        .iter()
        .filter(|e| e.standing == Standing::Published)
        .count();
    let scheduled = entries.len() - published;
    println!(
        "archive {}: {} issue{} ({published} published, {scheduled} scheduled): written {}, unchanged {}, removed {}",
        out.display(),
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        report.written,
        report.unchanged,
        report.removed
    );
    exit::OK
}

/// Runs `briefing preview ISSUE --watch`.
pub fn watch(issue: &Path, listen: &str, config_path: Option<&Path>, clock: &dyn Clock) -> u8 {
    // The preview shows unpublished text, so it is only for this machine.
    if !watch::is_loopback(listen) {
        eprintln!(
            "error: --listen {listen}: expected a loopback address such as 127.0.0.1:4000 (the preview shows unpublished issues)"
        );
        return exit::BAD_INPUT;
    }
    let listener = match std::net::TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return exit::BAD_INPUT;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return exit::BAD_INPUT;
        }
    };
    let mut session = match watch::Session::start(issue, config_path, clock.now()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot watch files for changes: {e}");
            return exit::BAD_INPUT;
        }
    };
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| runtime.block_on(async { tokio::net::TcpListener::from_std(listener) }))
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return exit::BAD_INPUT;
        }
    };
    let first = session.shared().current();
    println!("watching http://{addr}");
    report(&first);
    let shared = session.shared();
    let stopper = session.stopper();
    // The server runs beside this thread, which waits for file changes and
    // renders with the caller's clock.
    let server = std::thread::spawn(move || {
        let result = runtime.block_on(async {
            tokio::select! {
                r = watch::serve(listener, shared) => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        });
        stopper.stop();
        // Open event streams would otherwise keep the runtime waiting.
        runtime.shutdown_background();
        result
    });
    while session.next_change() {
        let snap = session.rebuild(clock.now());
        report(&snap);
    }
    match server.join() {
        Ok(Ok(())) => {
            eprintln!("stopped");
            exit::OK
        }
        Ok(Err(e)) => {
            eprintln!("error: the preview server stopped: {e}");
            exit::BAD_INPUT
        }
        Err(_) => {
            eprintln!("error: the preview server crashed");
            exit::BAD_INPUT
        }
    }
}

/// One stderr line per rendering (stdout carries only the address).
fn report(snap: &watch::Snapshot) {
    eprintln!(
        "rendering {}: {} — {}",
        snap.version,
        snap.title,
        snap.status()
    );
}
