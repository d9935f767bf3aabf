//! Delivering an issue: per-recipient messages, DKIM, the transports, the
//! ledger that makes a send exactly-once and resumable (with its durable
//! end-of-data marks), the per-issue lock, and the schedule.

pub mod breaker;
pub mod dkim;
pub mod durable;
pub mod engine;
pub mod ledger;
pub mod lock;
pub mod message;
pub mod plan;
pub mod schedule;
pub mod transport;
