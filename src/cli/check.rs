//! `briefing check`: every problem of an issue, with file, line and column.

use std::path::PathBuf;

use briefing::audience::lists;
use briefing::clock::Clock;
use briefing::compose;
use briefing::config::Config;

use super::{CliError, CliResult, exit};

/// Arguments of `briefing check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The issue manifest, e.g. issues/2025-01-17/issue.toml.
    issue: PathBuf,
    /// Treat warnings as errors (exit 2).
    #[arg(long)]
    strict: bool,
}

impl CheckArgs {
    /// The issue manifest named.
    pub fn issue(&self) -> &std::path::Path {
        &self.issue
    }
}

/// Runs `briefing check`: exit 0 clean, 1 warnings only, 2 errors.
pub fn run(args: &CheckArgs, config: &Config, clock: &dyn Clock) -> CliResult {
    let path = &args.issue;
    let columns = lists::columns(&config.lists()).ok();
    let checked =
        compose::check(path, config, clock.now(), columns).map_err(CliError::Diagnostics)?;
    let issue = &checked.loaded.issue;
    if checked.problems.is_empty() {
        println!(
            "{}: issue {} “{}” is ready: {} sections, no problems",
            path.display(),
            issue.number,
            issue.subject,
            issue.sections.len()
        );
        return Ok(exit::OK);
    }
    if checked.problems.has_errors() || args.strict {
        return Err(CliError::Diagnostics(checked.problems));
    }
    eprint!("{}", checked.problems.render());
    Ok(exit::SOME_FAILED)
}
