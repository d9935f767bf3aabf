//! "Add to calendar": the issue's events as iCalendar files (RFC 5545),
//! one per event and one with all of them, published beside the issue's
//! archive page (`<slug>/events/<n>.ics`, `<slug>/events.ics`).
//!
//! Pure: the same issue gives the same bytes, so archive builds stay
//! byte-identical. Times are written in UTC, which every client reads the
//! same way and which needs no VTIMEZONE.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event as IcsEvent, EventLike, Property};
use sha2::{Digest, Sha256};

use crate::model::{Event, Issue, SectionContent};

/// The events of an issue, in the order readers see them.
pub fn events(issue: &Issue) -> Vec<&Event> {
    issue
        .sections
        .iter()
        .filter_map(|s| match &s.content {
            SectionContent::Events(list) => Some(list.iter()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The 1-based number of `event` among the issue's events (the `n` of its
/// calendar file).
pub fn number_of(issue: &Issue, event: &Event) -> Option<usize> {
    events(issue)
        .iter()
        .position(|e| std::ptr::eq(*e, event))
        .map(|i| i + 1)
}

/// Path of event `n` (1-based) below the issue's archive folder.
pub fn event_path(n: usize) -> String {
    format!("events/{n}.ics")
}

/// Path of the file with every event, below the issue's archive folder.
pub const ALL_EVENTS_PATH: &str = "events.ics";

/// The public URL of event `n` (1-based), next to the issue's web page.
pub fn event_url(issue: &Issue, n: usize) -> String {
    format!(
        "{}/{}",
        issue.publisher.web_url.trim_end_matches('/'),
        event_path(n)
    )
}

/// One calendar file per event (path, text), then the file with all.
pub fn files(issue: &Issue) -> Vec<(String, String)> {
    let all = events(issue);
    let mut out: Vec<(String, String)> = all
        .iter()
        .enumerate()
        .map(|(i, e)| (event_path(i + 1), calendar(issue, &[e])))
        .collect();
    if !all.is_empty() {
        out.push((ALL_EVENTS_PATH.to_string(), calendar(issue, &all)));
    }
    out
}

fn calendar(issue: &Issue, events: &[&Event]) -> String {
    let mut cal = Calendar::new();
    cal.name(&format!("{} {}", issue.newsletter, issue.number));
    for e in events {
        cal.push(vevent(issue, e));
    }
    cal.done().to_string()
}

fn vevent(issue: &Issue, e: &Event) -> IcsEvent {
    let start = utc(e.start.timestamp());
    let mut organizer = Property::new("ORGANIZER", &e.url);
    organizer.add_parameter("CN", &quoted_param(&e.organizer));
    IcsEvent::new()
        .uid(&uid(issue, e))
        .timestamp(dtstamp(issue))
        .starts(start)
        .summary(&format!("{}: {}", e.kind, e.title))
        .url(&e.url)
        .append_property(organizer)
        .done()
}

/// A parameter value as RFC 5545 §3.2 allows it: quoted when it holds
/// `,`, `;` or `:`, and never with a quote inside.
fn quoted_param(v: &str) -> String {
    let v = v.replace('"', "'");
    if v.contains([',', ';', ':']) {
        format!("\"{v}\"")
    } else {
        v
    }
}

/// Stable across rebuilds and reorderings: the issue, the start and the
/// title say which event it is.
fn uid(issue: &Issue, e: &Event) -> String {
    let mut h = Sha256::new();
    h.update(issue.slug.as_bytes());
    h.update(b"\n");
    h.update(e.start.timestamp().to_string().as_bytes());
    h.update(b"\n");
    h.update(e.title.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let host = issue
        .publisher
        .web_url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("briefing.invalid");
    format!("{}-{hex}@{host}", issue.slug)
}

/// When the calendar data was made: the issue's send time, else its date.
/// Never the build's clock, so rebuilds give the same bytes.
fn dtstamp(issue: &Issue) -> DateTime<Utc> {
    let at = match &issue.send_at {
        Some(z) => z.timestamp(),
        None => issue
            .date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    };
    utc(at)
}

fn utc(t: jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), 0).unwrap_or_default()
}
