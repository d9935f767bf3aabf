//! The one place that knows what time it is.
//!
//! Everything else takes a [`Clock`], so tests and rehearsals can set the
//! time with `BRIEFING_NOW=2025-01-17T05:01:00Z`.

use std::sync::Arc;

use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// The environment variable that stops the clock for tests and rehearsals.
pub const NOW_VAR: &str = "BRIEFING_NOW";

/// `BRIEFING_NOW` holds something that is not an instant.
#[derive(Debug, thiserror::Error)]
#[error("{NOW_VAR}=`{value}` is not an RFC 3339 instant such as 2025-01-17T05:01:00Z ({source})")]
pub struct ClockError {
    /// What the variable holds.
    pub value: String,
    /// The parser's complaint.
    pub source: jiff::Error,
}

/// The system clock, or a fixed one when `BRIEFING_NOW` holds an RFC 3339
/// instant.
pub fn from_env() -> Result<Arc<dyn Clock>, ClockError> {
    match std::env::var(NOW_VAR) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<Timestamp>()
            .map(|t| Arc::new(FixedClock(t)) as Arc<dyn Clock>)
            .map_err(|source| ClockError {
                value: v.clone(),
                source,
            }),
        _ => Ok(Arc::new(SystemClock)),
    }
}

/// A [`Timestamp`] as the `SystemTime` lettre wants for `Date`.
pub fn system_time(t: Timestamp) -> std::time::SystemTime {
    std::time::SystemTime::from(t)
}
