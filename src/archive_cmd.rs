//! `briefing archive` and `briefing preview --watch`.

use std::path::{Path, PathBuf};

use briefing::clock::Clock;
use briefing::config::Config;

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
pub fn archive(_args: ArchiveArgs, _config: &Config, _clock: &dyn Clock) -> u8 {
    eprintln!("error: archive is not available yet");
    crate::exit::BAD_INPUT
}

/// Runs `briefing preview ISSUE --watch`.
pub fn watch(_issue: &Path, _listen: &str, _config_path: Option<&Path>, _clock: &dyn Clock) -> u8 {
    eprintln!("error: preview --watch is not available yet");
    crate::exit::BAD_INPUT
}
