//! "Add to calendar": `briefing archive` publishes one iCalendar file per
//! event and one with all of them, and an independent parser (Python's
//! `icalendar`) reads back the times, in UTC, including an event in the
//! weeks when New York already keeps summer time and Berlin does not, and
//! one that falls on the next day in Shanghai.

mod support;

use std::path::Path;
use std::process::Command;

use support::cli::{repo, run};

/// Archives the calendar fixture and reads every `.ics` file it wrote.
fn archive_and_read(out: &Path) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_briefing"));
    cmd.current_dir(repo())
        .env_remove("BRIEFING_NOW")
        .args(["--config", "config.toml", "archive", "--all", "--issues"])
        .arg(repo().join("tests/fixtures/calendar"))
        .arg("--out")
        .arg(out);
    let o = run(cmd);
    assert_eq!(o.code, Some(0), "{o}");
    let folder = out.join("2026-03-20");
    let files = [
        folder.join("events/1.ics"),
        folder.join("events/2.ics"),
        folder.join("events/3.ics"),
        folder.join("events.ics"),
    ];
    let py = Command::new("python3")
        .arg(repo().join("tests/support/ics_read.py"))
        .args(&files)
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    serde_json::from_slice(&py.stdout).unwrap()
}

fn file<'a>(all: &'a serde_json::Value, out: &Path, name: &str) -> &'a serde_json::Value {
    &all[out.join("2026-03-20").join(name).to_str().unwrap()]
}

#[test]
fn every_event_round_trips_through_an_independent_parser() {
    let dir = tempfile::tempdir().unwrap();
    let all = archive_and_read(dir.path());
    let want = [
        // 09:00 in New York on 24 March 2026: EDT already, UTC-4.
        (
            "events/1.ics",
            "2026-03-24T13:00:00+00:00",
            "Online talk: Tariffs after the summit: what changes for importers",
        ),
        // 18:30 in Berlin, still CET (UTC+1): 01:30 the next day in Shanghai.
        (
            "events/2.ics",
            "2026-03-26T17:30:00+00:00",
            "Webinar: Late freight: the evening briefing for Asia desks",
        ),
        (
            "events/3.ics",
            "2026-04-14T02:00:00+00:00",
            "Trade fair: Canton spring fair opens",
        ),
    ];
    for (name, start, summary) in want {
        let f = file(&all, dir.path(), name);
        assert_eq!(f["crlf"], true, "{name}: lines end in CRLF");
        assert!(
            f["longest_line"].as_u64().unwrap() <= 75,
            "{name}: folded at 75 octets"
        );
        let events = f["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{name}");
        let e = &events[0];
        assert_eq!(e["start"], start, "{name}");
        assert_eq!(e["summary"], summary, "{name}");
        assert_eq!(
            e["stamp"], "2026-03-20T05:00:00+00:00",
            "{name}: DTSTAMP is the send time"
        );
        assert!(
            e["url"]
                .as_str()
                .unwrap()
                .starts_with("https://events.example."),
            "{name}"
        );
        assert!(
            e["uid"].as_str().unwrap().starts_with("2026-03-20-"),
            "{name}"
        );
    }
    let first = &file(&all, dir.path(), "events/1.ics")["events"][0];
    assert_eq!(first["organizer_cn"], "Atlantic Trade Roundtable, Inc.");
    let together = file(&all, dir.path(), "events.ics")["events"]
        .as_array()
        .unwrap();
    assert_eq!(together.len(), 3);
}

#[test]
fn uids_and_bytes_are_the_same_on_every_rebuild() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let first = archive_and_read(a.path());
    let second = archive_and_read(b.path());
    for name in ["events/1.ics", "events/2.ics", "events/3.ics", "events.ics"] {
        assert_eq!(
            file(&first, a.path(), name)["events"],
            file(&second, b.path(), name)["events"],
            "{name}"
        );
        let bytes = |d: &Path| std::fs::read(d.join("2026-03-20").join(name)).unwrap();
        assert_eq!(bytes(a.path()), bytes(b.path()), "{name}");
    }
    let uids: std::collections::BTreeSet<String> = file(&first, a.path(), "events.ics")["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(uids.len(), 3, "each event has its own UID");
}
