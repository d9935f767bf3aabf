//! `briefing archive`: the static web archive of published issues.

use std::path::{Path, PathBuf};

use briefing::archive::{self, Edition, Entry, Standing};
use briefing::compose::manifest;
use briefing::compose::variants::{self, Variant};
use briefing::config::Config;
use briefing::deliver::ledger::{Ledger, SendKind, SendRecord};

use super::{CliError, CliResult, Context, Newsletters, exit};

/// Arguments of `briefing archive`.
#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    /// Output folder (default: archive.out in the config, `site/`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also include scheduled issues, not only sent ones.
    #[arg(long)]
    all: bool,
    /// Folder of issues (default: the newsletter's, `issues/`).
    #[arg(long)]
    issues: Option<PathBuf>,
}

/// Runs `briefing archive`: one newsletter's (that of `--issues` or
/// `--newsletter`), else every newsletter's into its own `archive.out`.
pub fn run(args: &ArchiveArgs, newsletters: &Newsletters<'_>) -> CliResult {
    if let Some(issues) = &args.issues {
        return build_one(args, issues, newsletters.for_issue(issues));
    }
    let each = newsletters.each();
    if each.len() > 1 && args.out.is_some() {
        return Err(CliError::input(
            "--out names one folder, but this repository has several newsletters; expected --newsletter ID with it",
        ));
    }
    let mut code = exit::OK;
    for config in each {
        code = code.max(build_one(args, &config.issues_dir(), config)?);
    }
    Ok(code)
}

/// Builds one newsletter's archive from the issues under `issues`.
fn build_one(args: &ArchiveArgs, issues: &Path, config: &Config) -> CliResult {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| config.resolve(&config.archive.out));
    let manifests = manifest::find_all(issues)
        .context(format_args!("cannot list issues in {}", issues.display()))?;
    let ledger = Ledger::open_existing_config(config)?;
    let record = |slug: &str| match &ledger {
        Some(l) => l.send_record(slug, SendKind::Real),
        None => Ok(None),
    };
    let previous = archive::previous_files(&out).context(format_args!(
        "cannot read {}",
        out.join(archive::MANIFEST_FILE).display()
    ))?;
    let mut entries = Vec::new();
    let mut translations: Vec<Edition> = Vec::new();
    let mut broken_published = false;
    for m in &manifests {
        let loaded = match manifest::load(m, config) {
            Ok(l) => l,
            Err(d) => {
                eprint!("{}", d.render());
                broken_published |= lost_page(m, &record, &previous)?;
                continue;
            }
        };
        let rec = record(&loaded.issue.slug)?;
        for edition in loaded.editions() {
            // The public page shows what every reader sees.
            let issue = if config.archive.show_restricted {
                edition.issue.clone()
            } else {
                variants::issue_for(
                    &edition.issue,
                    &edition.audiences,
                    &Variant::public(&edition.audiences),
                )
            };
            let Some(e) = archive::entry(issue, rec.as_ref(), config, args.all) else {
                continue;
            };
            if std::ptr::eq(edition, &loaded) {
                entries.push(e);
            } else {
                let language = edition.issue.language.clone();
                match translations
                    .iter_mut()
                    .find(|t: &&mut Edition| t.language == language)
                {
                    Some(t) => t.entries.push(e),
                    None => translations.push(Edition {
                        language,
                        entries: vec![e],
                    }),
                }
            }
        }
    }
    if broken_published {
        return Err(CliError::input(format!(
            "nothing was written to {}",
            out.display()
        )));
    }
    translations.sort_by(|a, b| a.language.cmp(&b.language));
    let site = archive::build_editions(&entries, &translations, config)?;
    let report = site.write(&out).context(format_args!(
        "cannot write the archive to {}",
        out.display()
    ))?;
    print_report(
        &out,
        &entries,
        report.written,
        report.unchanged,
        report.removed,
    );
    Ok(exit::OK)
}

/// A draft being edited may be broken; a published issue that no longer
/// loads would silently lose its page. True in that second case.
fn lost_page<E: std::error::Error>(
    manifest: &Path,
    record: &dyn Fn(&str) -> Result<Option<SendRecord>, E>,
    previous: &std::collections::BTreeSet<String>,
) -> Result<bool, CliError> {
    let slug = archive::slug_hint(manifest);
    let sent = match slug.as_deref() {
        Some(s) => record(s).map_err(CliError::input)?.is_some(),
        None => false,
    };
    let was_archived = slug
        .as_deref()
        .is_some_and(|s| previous.contains(&format!("{s}/index.html")));
    if sent || was_archived {
        eprintln!(
            "error: {} was sent or archived before and no longer loads; fix it, or the archive would lose its page",
            manifest.display()
        );
        return Ok(true);
    }
    eprintln!(
        "note: skipped {}: it does not load (a draft?)",
        manifest.display()
    );
    Ok(false)
}

fn print_report(out: &Path, entries: &[Entry], written: usize, unchanged: usize, removed: usize) {
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
        written,
        unchanged,
        removed
    );
}
