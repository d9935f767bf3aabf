//! `briefing serve` and `briefing suppress …`.

use std::path::PathBuf;

use briefing::clock::Clock;
use briefing::config::Config;

use crate::SharedClock;

/// Arguments of `briefing serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: serve.listen in the config).
    #[arg(long)]
    pub listen: Option<String>,
}

/// `briefing suppress` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SuppressCommand {
    /// Add an address to the suppression list.
    Add {
        /// The address.
        email: String,
        /// unsubscribed, hard-bounce, complaint or manual.
        #[arg(long, default_value = "manual")]
        reason: String,
    },
    /// Remove an address from the suppression list.
    Remove {
        /// The address.
        email: String,
    },
    /// List the suppression list.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Import a CSV export of bounces or complaints (email, reason, timestamp).
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Apply mailto unsubscribe requests found in an mbox file or Maildir.
    ImportMbox {
        /// The mbox file or Maildir folder.
        path: PathBuf,
    },
}

/// Runs `briefing serve`.
pub fn serve(_args: ServeArgs, _config: &Config, _clock: SharedClock) -> u8 {
    eprintln!("error: serve is not available yet");
    crate::exit::BAD_INPUT
}

/// Runs `briefing suppress …`.
pub fn suppress(_cmd: SuppressCommand, _config: &Config, _clock: &dyn Clock) -> u8 {
    eprintln!("error: suppress is not available yet");
    crate::exit::BAD_INPUT
}
