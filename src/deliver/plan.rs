//! From "send this issue" to a ready [`SendJob`]: the issue checked against
//! the lists it goes to, and the transport, secret, signer, sender and
//! per-issue lock that the config names. Everything that can refuse a send
//! refuses here, before a single message is built.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::audience::lists::{self, ListError};
use crate::audience::token::{Secret, SecretError};
use crate::clock::Clock;
use crate::compose::{self, CheckedIssue};
use crate::config::Config;
use crate::deliver::dkim::{DkimError, Signer};
use crate::deliver::engine::SendJob;
use crate::deliver::ledger::{Location, SendKind};
use crate::deliver::lock::{self, IssueLock, LockError};
use crate::deliver::message::{MessageError, PreparedIssue, Sender, VariantMessages};
use crate::deliver::transport::{Transport, TransportError};
use crate::diagnostic::{Diagnostic, Diagnostics};

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Recipient lists; empty means the configured ones.
    pub lists: Vec<PathBuf>,
    /// Test copies to these addresses only.
    pub to: Vec<String>,
    /// Transport URL for this run instead of the config's.
    pub transport: Option<String>,
    /// Build, sign and count, but send nothing and record nothing.
    pub dry_run: bool,
    /// At most this many new recipients in this run.
    pub limit: Option<u64>,
    /// Put uncertain recipients back in the queue.
    pub resend_uncertain: bool,
    /// Put failed recipients whose failure was not a 5xx back in the queue.
    pub retry_failed: bool,
}

/// Why a send cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The manifest has errors.
    #[error("the issue has errors")]
    Invalid(Diagnostics),
    /// Lints found errors (the same as `briefing check`).
    #[error("`briefing check {}` finds errors; nothing was sent", .path.display())]
    Check {
        /// The manifest.
        path: PathBuf,
        /// Everything the check found.
        problems: Diagnostics,
    },
    /// A config value is wrong, with its `config.toml` line.
    #[error("the config has errors")]
    Config(Diagnostics),
    /// The transport URL is wrong.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// No unsubscribe secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The DKIM key cannot be used.
    #[error(transparent)]
    Dkim(#[from] DkimError),
    /// The sender in the config is wrong.
    #[error("config: {0}")]
    Sender(#[from] MessageError),
    /// Another run holds the issue's lock.
    #[error("{source}")]
    Busy {
        /// The issue.
        slug: String,
        /// Who holds it.
        source: LockError,
    },
    /// The lock folder cannot be used.
    #[error(transparent)]
    Lock(LockError),
    /// A recipient list cannot be read.
    #[error(transparent)]
    List(#[from] ListError),
}

/// A send ready to run: the checked issue, the job, and the lock held
/// until the plan is dropped.
pub struct SendPlan {
    /// The issue as checked for this send.
    pub checked: CheckedIssue,
    /// What the engine runs.
    pub job: SendJob,
    /// Held for the whole send (none for a dry run).
    pub lock: Option<IssueLock>,
    /// Things the operator should know that do not stop the send.
    pub notes: Vec<String>,
}

impl SendPlan {
    /// Set to stop taking new recipients (Ctrl-C).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.job.stop)
    }
}

/// Checks the issue against the lists of this send and readies everything
/// the engine needs.
pub fn plan(
    path: &Path,
    opts: &SendOptions,
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<SendPlan, PlanError> {
    let lists = if opts.lists.is_empty() {
        config.lists()
    } else {
        opts.lists.clone()
    };
    // The same checks as `briefing check`, against the lists of this send:
    // a merge tag none of them can fill would go out blank.
    let checked = compose::check(path, config, clock.now(), lists::columns(&lists).ok())
        .map_err(PlanError::Invalid)?;
    if checked.problems.has_errors() {
        return Err(PlanError::Check {
            path: path.to_path_buf(),
            problems: checked.problems,
        });
    }
    let kind = if opts.to.is_empty() {
        SendKind::Real
    } else {
        SendKind::Test
    };
    let transport = if opts.dry_run {
        Transport::Null
    } else {
        match &opts.transport {
            Some(url) => Transport::from_url(url, config)?,
            // A wrong URL in the config is pointed at in the config.
            None => Transport::from_url(&config.transport.url, config).map_err(|e| {
                let mut d = Diagnostics::new();
                d.push(config.problem("transport.url", Diagnostic::error(e.to_string())));
                PlanError::Config(d)
            })?,
        }
    };
    let local = matches!(transport, Transport::Null | Transport::Outbox(_));
    let secret = Secret::from_config(config, local)?;
    let signer = Signer::from_config(config)?.map(Arc::new);
    let mut notes = Vec::new();
    if secret.development && !opts.dry_run {
        notes.push(format!(
            "note: no unsubscribe secret set ({}); using a development secret, fine for the outbox only",
            config.unsubscribe.secret_env
        ));
    }
    if signer.is_none() && !local {
        notes.push(
            "warning: no [dkim] key configured; Gmail and Yahoo junk or refuse unsigned bulk mail"
                .into(),
        );
    }
    let sender = Sender::from_config(config)?;
    let slug = &checked.loaded.issue.slug;
    let lock = (!opts.dry_run)
        .then(|| lock_issue(slug, kind, config, clock.as_ref()))
        .transpose()?;
    let loaded = &checked.loaded;
    let multiple = !loaded.audiences.is_empty() || !loaded.translations.is_empty();
    let variants = multiple.then(|| {
        let translations = loaded.translations.iter().map(|t| t.issue.clone());
        Arc::new(
            VariantMessages::new(
                loaded.issue.clone(),
                loaded.audiences.clone(),
                sender.clone(),
            )
            .with_translations(translations.collect()),
        )
    });
    notes.extend(language_warnings(loaded, &lists));
    let job = SendJob {
        prepared: Arc::new(PreparedIssue::new(
            &checked.loaded.issue,
            &checked.rendered,
            sender,
        )),
        variants,
        kind,
        lists,
        to: opts.to.clone(),
        transport,
        dry_run: opts.dry_run,
        limit: opts.limit,
        resend_uncertain: opts.resend_uncertain,
        retry_failed: opts.retry_failed,
        secret,
        signer,
        clock,
        stop: Arc::new(AtomicBool::new(false)),
    };
    Ok(SendPlan {
        checked,
        job,
        lock,
        notes,
    })
}

/// Takes the issue's lock, naming this process and host as its holder.
fn lock_issue(
    slug: &str,
    kind: SendKind,
    config: &Config,
    clock: &dyn Clock,
) -> Result<IssueLock, PlanError> {
    let holder = format!(
        "pid {} on {} since {}",
        std::process::id(),
        host_name(),
        clock.now()
    );
    // Test copies lock apart, so a rehearsal never holds up the real send.
    let name = match kind {
        SendKind::Real => slug.to_string(),
        SendKind::Test => format!("{slug}.test"),
    };
    let location = Location::from_config(config).map_err(|e| {
        PlanError::Lock(LockError::Io {
            path: PathBuf::from("send.ledger"),
            source: std::io::Error::other(e.to_string()),
        })
    })?;
    let taken = match &location {
        Location::Postgres(t) => lock::try_pg_lock(t, &name, &holder),
        Location::Sqlite(_) => lock::try_lock(&lock::lock_dir(config), &name, &holder),
    };
    taken.map_err(|e| match e {
        LockError::Busy { .. } => PlanError::Busy {
            slug: slug.to_string(),
            source: e,
        },
        e => PlanError::Lock(e),
    })
}

/// This machine's name, for lock holders; blank where it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A reader whose `language` has no edition of this issue gets the main
/// one; each such row is named by its list and line.
/// Only an issue with translations is checked: without any, every reader
/// gets the one edition and a `language` column is no news. At most
/// [`MAX_LANGUAGE_WARNINGS`] rows are named, then a count.
fn language_warnings(loaded: &compose::manifest::LoadedIssue, lists: &[PathBuf]) -> Vec<String> {
    if loaded.translations.is_empty() {
        return Vec::new();
    }
    let main = &loaded.issue.language;
    let known = loaded
        .editions()
        .map(|e| e.issue.language.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = Vec::new();
    let mut more = 0u64;
    for list in lists {
        // An unreadable list is reported by the send itself.
        let _ = lists::for_each_language(list, |line, lang| {
            if loaded.edition(lang).is_some() {
                return;
            }
            if out.len() < MAX_LANGUAGE_WARNINGS {
                out.push(format!(
                    "warning: {}:{line}: language `{lang}` has no edition of this issue, expected one of: {known}; this reader gets the main edition ({main})",
                    list.display(),
                ));
            } else {
                more += 1;
            }
        });
    }
    if more > 0 {
        out.push(format!(
            "warning: {more} more reader(s) name a language without an edition of this issue; they get the main edition ({main})"
        ));
    }
    out
}

/// How many readers without an edition in their language are named one by one.
const MAX_LANGUAGE_WARNINGS: usize = 20;
