//! What commands print while they run: timestamped log lines (cron reads
//! them) and the send's progress, as a bar on a terminal or lines in a log.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use briefing::clock::Clock;
use briefing::deliver::engine::{Event, Progress};

use super::SharedClock;

/// A line on stdout: RFC 3339 timestamp first, as cron logs need.
pub fn log(clock: &dyn Clock, msg: &str) {
    println!("{} {msg}", stamp(clock));
}

/// A timestamped line on stderr.
pub fn elog(clock: &dyn Clock, msg: &str) {
    eprintln!("{} {msg}", stamp(clock));
}

fn stamp(clock: &dyn Clock) -> String {
    clock.now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Progress on a terminal (a bar) or in a log (a line per 1,000 messages
/// and per failure class).
pub struct Reporter {
    clock: SharedClock,
    bar: Option<indicatif::ProgressBar>,
    delivered: AtomicU64,
    failed: AtomicU64,
    seen_classes: Mutex<Vec<String>>,
}

impl Reporter {
    /// A bar on a terminal, else log lines.
    pub fn new(clock: SharedClock) -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} sent, {msg} {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        Self {
            clock,
            bar,
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            seen_classes: Mutex::new(Vec::new()),
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn line(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => log(self.clock.as_ref(), msg),
        }
    }
}

impl Progress for Reporter {
    fn event(&self, e: &Event) {
        match e {
            Event::Skipped(row) => {
                let msg = format!("skipped {row}");
                match &self.bar {
                    Some(b) => b.println(msg),
                    None => elog(self.clock.as_ref(), &msg),
                }
            }
            Event::Uncertain(n) => self.line(&format!(
                "{n} message(s) were with the server when an earlier run stopped: marked uncertain, not resent"
            )),
            Event::Requeued(_)
            | Event::RetriedFailed(_)
            | Event::Outage { .. }
            | Event::Recovered(_)
            | Event::Deferred { .. }
            | Event::Lost { .. } => self.resilience_event(e),
            Event::Started { pending, total, importing } => {
                if let Some(b) = &self.bar {
                    b.set_length(*total);
                    b.set_position(total - pending);
                }
                // The total is not known until the lists are read: say so,
                // and give it when it is (Imported).
                if *importing && *total == 0 {
                    self.line("reading the lists into the ledger while sending");
                } else if *importing {
                    self.line(&format!(
                        "{pending} of {total} recipients read so far to go; reading the rest of the lists while sending"
                    ));
                } else {
                    self.line(&format!("{pending} of {total} recipients to go"));
                }
            }
            Event::Imported { total, done } => {
                if let Some(b) = &self.bar {
                    b.set_length(*total);
                }
                if *done {
                    self.line(&format!("lists read: {total} recipients in this send"));
                }
            }
            Event::Delivered => {
                let n = self.delivered.fetch_add(1, Ordering::Relaxed) + 1;
                match &self.bar {
                    Some(b) => b.inc(1),
                    None if n.is_multiple_of(1000) => log(self.clock.as_ref(), &format!("{n} sent")),
                    None => {}
                }
            }
            Event::Suppressed => {}
            Event::Retry { email: _, attempt, error } => {
                let class = failure_class(error);
                if self.first_of_class(&format!("retry {class}")) {
                    self.line(&format!("retrying after try {attempt}: {error} (further {class} retries not logged)"));
                }
            }
            Event::Failed { email, reply } => {
                let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(b) = &self.bar {
                    b.set_message(format!("{n} failed,"));
                }
                let class = failure_class(reply);
                if self.first_of_class(&format!("fail {class}")) {
                    let msg = format!("failed {email}: {reply} (further {class} failures counted in the summary)");
                    match &self.bar {
                        Some(b) => b.println(msg),
                        None => elog(self.clock.as_ref(), &msg),
                    }
                }
            }
        }
    }
}

impl Reporter {
    /// Outages, deferrals, lost replies and the queue repairs of a resume.
    fn resilience_event(&self, e: &Event) {
        match e {
            Event::Requeued(n) => self.line(&format!(
                "{n} message(s) were being sent when an earlier run stopped, before their end of data: back in the queue"
            )),
            Event::RetriedFailed(n) => self.line(&format!(
                "--retry-failed: {n} failed recipient(s) whose failure was not a permanent (5xx) refusal are back in the queue"
            )),
            Event::Outage { reason, retry_in, lasted, limit } => {
                let msg = format!(
                    "relay unavailable: {reason}; pausing the send, next try in {:.1} s (down {:.0} s, giving up after {} s)",
                    retry_in.as_secs_f64(),
                    lasted.as_secs_f64(),
                    limit.as_secs()
                );
                self.eline(&msg);
            }
            Event::Recovered(after) => self.line(&format!(
                "relay reachable again after {:.1} s: resuming",
                after.as_secs_f64()
            )),
            Event::Deferred { email, reply, next_attempt } => {
                let class = failure_class(reply);
                if self.first_of_class(&format!("defer {class}")) {
                    self.line(&format!(
                        "deferred {email}: {reply}; next attempt at {next_attempt} (further {class} deferrals counted in the summary)"
                    ));
                }
            }
            Event::Lost { email, reply } => {
                let msg = format!("uncertain {email}: {reply}; not resent (see --resend-uncertain)");
                self.eline(&msg);
            }
            _ => {}
        }
    }

    /// A line on stderr (or above the bar).
    fn eline(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => elog(self.clock.as_ref(), msg),
        }
    }

    fn first_of_class(&self, class: &str) -> bool {
        let Ok(mut seen) = self.seen_classes.lock() else {
            return false;
        };
        if seen.iter().any(|c| c == class) {
            return false;
        }
        seen.push(class.to_string());
        true
    }
}

/// The reply code (`451`, `550 5.1.1`) or the error's first words.
fn failure_class(reply: &str) -> String {
    let words: Vec<&str> = reply.split_whitespace().take(2).collect();
    match words.as_slice() {
        [code, ext, ..]
            if code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()) && ext.contains('.') =>
        {
            format!("{code} {ext}")
        }
        [code, ..] if code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()) => {
            code.to_string()
        }
        _ => words.join(" "),
    }
}
