//! `briefing send` and `briefing status`.

use std::path::PathBuf;

use briefing::clock::Clock;
use briefing::config::Config;

use crate::SharedClock;

/// Arguments of `briefing send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The issue manifest (or, with --due, a folder of issues).
    pub issue: Option<PathBuf>,
    /// Recipient lists (CSV); default: the configured lists.
    #[arg(long = "list")]
    pub lists: Vec<PathBuf>,
    /// Send a [TEST] copy to these addresses only.
    #[arg(long = "to")]
    pub to: Vec<String>,
    /// Transport URL for this run (outbox:DIR, smtp://, smtps://, sendmail:).
    #[arg(long, env = "BRIEFING_TRANSPORT")]
    pub transport: Option<String>,
    /// Render, sign and count, but send nothing and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Send to at most N recipients in this run.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Also send to recipients whose earlier send is uncertain.
    #[arg(long)]
    pub resend_uncertain: bool,
    /// Send every issue under the folder whose send_at has passed.
    #[arg(long)]
    pub due: bool,
    /// Say what --due decided even when nothing is due.
    #[arg(long)]
    pub verbose: bool,
}

/// Arguments of `briefing status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// An issue manifest, or a folder of issues (default issues/).
    pub target: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Runs `briefing send`.
pub fn send(_args: SendArgs, _config: &Config, _clock: SharedClock) -> u8 {
    eprintln!("error: send is not available yet");
    crate::exit::BAD_INPUT
}

/// Runs `briefing status`.
pub fn status(_args: StatusArgs, _config: &Config, _clock: &dyn Clock) -> u8 {
    eprintln!("error: status is not available yet");
    crate::exit::BAD_INPUT
}
