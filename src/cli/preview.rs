//! `briefing preview`: the HTML, text and `.eml` of an issue on disk, or a
//! live preview in the browser with `--watch`.

use std::path::{Path, PathBuf};

use briefing::audience::lists;
use briefing::audience::recipient::{Recipient, check_address};
use briefing::audience::token::Secret;
use briefing::clock::Clock;
use briefing::compose::variants::{self, Variant};
use briefing::compose::{manifest, render};
use briefing::config::Config;
use briefing::preview::{self, server, watch};

use super::{CliError, CliResult, Context, SharedClock, exit};

/// Arguments of `briefing preview`.
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The issue manifest.
    issue: PathBuf,
    /// Folder for the preview files.
    #[arg(long, default_value = "previews")]
    out: PathBuf,
    /// Preview as this recipient (from the configured lists).
    #[arg(long)]
    recipient: Option<String>,
    /// Serve a live preview that reloads when a file changes.
    #[arg(long)]
    watch: bool,
    /// Address for --watch.
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: String,
    /// Preview this language's edition (`de` for issue.de.toml); default:
    /// the recipient's `language` column, else the main edition.
    #[arg(long)]
    language: Option<String>,
}

impl PreviewArgs {
    /// The issue manifest named.
    pub fn issue(&self) -> &std::path::Path {
        &self.issue
    }
}

/// Runs `briefing preview`.
pub fn run(
    args: &PreviewArgs,
    config_path: Option<&Path>,
    config: &Config,
    clock: SharedClock,
) -> CliResult {
    if args.watch {
        return live(&args.issue, &args.listen, config_path, clock.as_ref());
    }
    let loaded = manifest::load(&args.issue, config).map_err(CliError::Diagnostics)?;
    if !loaded.warnings.is_empty() {
        eprint!("{}", loaded.warnings.render());
    }
    let who = reader(args.recipient.as_deref(), config)?;
    let secret = Secret::from_config(config, true)?;
    let edition = edition(&loaded, args.language.as_deref(), &who)?;
    // The reader's own variant: blocks for other readers are left out.
    let variant = Variant::of(&loaded.audiences, &who);
    let issue = variants::issue_for(&edition.issue, &loaded.audiences, &variant);
    if !loaded.audiences.is_empty() {
        eprintln!("note: {} sees variant {}", who.email, variant.name());
    }
    let rendered = render::render(&issue);
    let mut built = preview::build(&issue, &rendered, config, &who, &secret, clock.now())?;
    if edition.issue.language != loaded.issue.language {
        // Each edition gets its own files beside the main one's.
        built.slug = format!("{}.{}", built.slug, issue.language);
    }
    let w = preview::write(&built, &args.out).context(format_args!(
        "cannot write previews to {}",
        args.out.display()
    ))?;
    println!("{}", w.html.display());
    println!("{}", w.text.display());
    println!("{}", w.eml.display());
    Ok(exit::OK)
}

/// The edition to preview: `--language`'s (an error naming the editions
/// when the issue has none in it), else the reader's, else the main one.
fn edition<'a>(
    loaded: &'a manifest::LoadedIssue,
    language: Option<&str>,
    who: &Recipient,
) -> Result<&'a manifest::LoadedIssue, CliError> {
    let Some(lang) = language else {
        let own = who.field("language").and_then(|l| loaded.edition(l));
        return Ok(own.unwrap_or(loaded));
    };
    loaded.edition(lang).ok_or_else(|| {
        let have: Vec<&str> = loaded.editions().map(|e| e.issue.language.as_str()).collect();
        CliError::input(format!(
            "--language {lang}: {} has no edition in `{lang}`, expected one of: {} (a translation is issue.{lang}.toml beside issue.toml)",
            loaded.manifest.display(),
            have.join(", ")
        ))
    })
}

/// Whom the preview is for: `--recipient` as found in the lists, else the
/// first recipient of the lists, else a stand-in.
fn reader(email: Option<&str>, config: &Config) -> Result<Recipient, CliError> {
    let lists = config.lists();
    let Some(email) = email else {
        return Ok(lists::first(&lists)
            .ok()
            .flatten()
            .unwrap_or_else(|| Recipient::new("reader@example.org", "")));
    };
    if let Some(r) = lists::find(&lists, email)? {
        return Ok(r);
    }
    check_address(email).context("--recipient")?;
    eprintln!("note: {email} is in no configured list; previewing without their other fields");
    Ok(Recipient::new(email, ""))
}

/// Runs `briefing preview ISSUE --watch`.
fn live(issue: &Path, listen: &str, config_path: Option<&Path>, clock: &dyn Clock) -> CliResult {
    // The preview shows unpublished text, so it is only for this machine.
    if !server::is_loopback(listen) {
        return Err(CliError::input(format!(
            "--listen {listen}: expected a loopback address such as 127.0.0.1:4000 (the preview shows unpublished issues)"
        )));
    }
    let cannot_listen = format!("cannot listen on {listen}");
    let listener = std::net::TcpListener::bind(listen).context(&cannot_listen)?;
    let addr = listener.local_addr().context(&cannot_listen)?;
    let mut session = watch::Session::start(issue, config_path, clock.now())
        .context("cannot watch files for changes")?;
    let runtime = super::runtime()?;
    let listener = listener
        .set_nonblocking(true)
        .and_then(|()| runtime.block_on(async { tokio::net::TcpListener::from_std(listener) }))
        .context(&cannot_listen)?;
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
                r = server::serve(listener, shared) => r,
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
        Ok(result) => result.context("the preview server stopped")?,
        Err(_) => return Err(CliError::input("the preview server crashed")),
    }
    eprintln!("stopped");
    Ok(exit::OK)
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
