"""Reads iCalendar files with Python's icalendar package (an independent
parser) and prints their events as JSON, for tests/calendar.rs.

Usage: ics_read.py FILE...  ->  {"FILE": [{"uid": ..., "start": ...}, ...]}
"""
import json
import sys

from icalendar import Calendar


def events(path):
    with open(path, "rb") as f:
        raw = f.read()
    cal = Calendar.from_ical(raw)
    out = []
    for ev in cal.walk("VEVENT"):
        start = ev.decoded("DTSTART")
        organizer = ev.get("ORGANIZER")
        out.append({
            "uid": str(ev.get("UID")),
            "start": start.isoformat(),
            "stamp": ev.decoded("DTSTAMP").isoformat(),
            "summary": str(ev.get("SUMMARY")),
            "url": str(ev.get("URL")),
            "organizer": str(organizer),
            "organizer_cn": str(organizer.params.get("CN")) if organizer is not None else None,
        })
    return {
        "crlf": b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b""),
        "longest_line": max(len(l) for l in raw.split(b"\r\n")),
        "events": out,
    }


if __name__ == "__main__":
    print(json.dumps({p: events(p) for p in sys.argv[1:]}))
