//! Exit codes and the one error type every command returns: `main` prints
//! it once and exits with its code.

use std::fmt;

use briefing::diagnostic::Diagnostics;

/// Exit codes, documented in the README.
pub mod exit {
    /// Clean: nothing to report, or everything delivered.
    pub const OK: u8 = 0;
    /// Warnings only (check), or some recipients failed (send).
    pub const SOME_FAILED: u8 = 1;
    /// Bad input or config: nothing was sent.
    pub const BAD_INPUT: u8 = 2;
    /// Another run holds the issue, or it was already sent.
    pub const BUSY: u8 = 3;
    /// Interrupted by Ctrl-C after finishing in-flight messages.
    pub const INTERRUPTED: u8 = 130;
}

/// Why a command stopped; [`CliError::code`] is its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Problems with file, line and column (manifest, config, lints).
    Diagnostics(Diagnostics),
    /// One message, printed as `error: …`, and the exit code it means.
    Message {
        /// The exit code.
        code: u8,
        /// What went wrong and what was expected.
        text: String,
    },
    /// Already reported line by line (as `send --due` does); only the code
    /// is left.
    Reported(u8),
}

impl CliError {
    /// Bad input or config (exit 2).
    pub fn input(text: impl fmt::Display) -> Self {
        Self::Message {
            code: exit::BAD_INPUT,
            text: text.to_string(),
        }
    }

    /// Another run holds the issue, or it was already sent (exit 3).
    pub fn busy(text: impl fmt::Display) -> Self {
        Self::Message {
            code: exit::BUSY,
            text: text.to_string(),
        }
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            Self::Diagnostics(_) => exit::BAD_INPUT,
            Self::Message { code, .. } => *code,
            Self::Reported(code) => *code,
        }
    }

    /// Prints the error on stderr.
    pub fn print(&self) {
        match self {
            Self::Diagnostics(d) => eprint!("{}", d.render()),
            Self::Message { text, .. } => eprintln!("error: {text}"),
            Self::Reported(_) => {}
        }
    }
}

/// Any library error is bad input unless a command says otherwise.
impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> Self {
        Self::input(e)
    }
}

/// Adds what was being done to an error, e.g. `--reason: …`.
pub trait Context<T> {
    /// The error as bad input, its message after `what: `.
    fn context(self, what: impl fmt::Display) -> Result<T, CliError>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, CliError> {
        self.map_err(|e| CliError::input(format!("{what}: {e}")))
    }
}

/// What a command returns: its exit code, or why it stopped.
pub type CliResult = Result<u8, CliError>;
