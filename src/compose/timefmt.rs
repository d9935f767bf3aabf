//! How dates and event times read in an issue (AP-style, as in the
//! reference briefing): `Jan. 23, 2025; 6 p.m. CET (Jan 24, 1 a.m. CST)`.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

const MONTHS_AP: [&str; 12] = [
    "Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.",
    "Dec.",
];
const MONTHS_SHORT: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MONTHS_LONG: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn month_index(d: Date) -> usize {
    usize::try_from(d.month() - 1).unwrap_or(0).min(11)
}

/// `Jan. 23, 2025` (AP month abbreviations).
pub fn ap_date(d: Date) -> String {
    format!("{} {}, {}", MONTHS_AP[month_index(d)], d.day(), d.year())
}

/// `January 17, 2025`, for issue headers.
pub fn long_date(d: Date) -> String {
    format!("{} {}, {}", MONTHS_LONG[month_index(d)], d.day(), d.year())
}

/// `11 a.m.`, `6:30 p.m.`, `noon`, `midnight`.
pub fn clock(z: &Zoned) -> String {
    let (h, m) = (z.hour(), z.minute());
    match (h, m) {
        (12, 0) => "noon".into(),
        (0, 0) => "midnight".into(),
        _ => {
            let suffix = if h < 12 { "a.m." } else { "p.m." };
            let h12 = match h % 12 {
                0 => 12,
                x => x,
            };
            if m == 0 {
                format!("{h12} {suffix}")
            } else {
                format!("{h12}:{m:02} {suffix}")
            }
        }
    }
}

/// The zone's abbreviation at an instant (`CET`, `CEST`, `CST`), or
/// `UTC+8` when the database has only a numeric one.
pub fn zone_label(tz: &TimeZone, at: Timestamp) -> String {
    let info = tz.to_offset_info(at);
    let abbr = info.abbreviation();
    if abbr.starts_with('+') || abbr.starts_with('-') || abbr.is_empty() {
        let secs = info.offset().seconds();
        let sign = if secs < 0 { '-' } else { '+' };
        let secs = secs.abs();
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        if m == 0 {
            format!("UTC{sign}{h}")
        } else {
            format!("UTC{sign}{h}:{m:02}")
        }
    } else {
        abbr.to_string()
    }
}

/// An event's start in every configured zone: the first zone gives the date,
/// the others follow in parentheses, with their own date when the day rolls
/// over: `Jan. 23, 2025; 6 p.m. CET (Jan 24, 1 a.m. CST)`.
pub fn event_time(start: &Zoned, zones: &[TimeZone]) -> String {
    let ts = start.timestamp();
    let lead_tz = zones
        .first()
        .cloned()
        .unwrap_or_else(|| start.time_zone().clone());
    let lead = ts.to_zoned(lead_tz.clone());
    let mut out = format!(
        "{}; {} {}",
        ap_date(lead.date()),
        clock(&lead),
        zone_label(&lead_tz, ts)
    );
    let others: Vec<String> = zones
        .iter()
        .skip(1)
        .map(|tz| {
            let z = ts.to_zoned(tz.clone());
            let day = if z.date() != lead.date() {
                format!(
                    "{} {}, ",
                    MONTHS_SHORT[month_index(z.date())],
                    z.date().day()
                )
            } else {
                String::new()
            };
            format!("{day}{} {}", clock(&z), zone_label(tz, ts))
        })
        .collect();
    if !others.is_empty() {
        out.push_str(" (");
        out.push_str(&others.join(", "));
        out.push(')');
    }
    out
}

/// RFC 3339 form with offset, for `<time datetime>`.
pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Vec<TimeZone> {
        vec![
            TimeZone::get("Europe/Berlin").unwrap(),
            TimeZone::get("Asia/Shanghai").unwrap(),
        ]
    }

    fn berlin(y: i16, mo: i8, d: i8, h: i8) -> Zoned {
        jiff::civil::date(y, mo, d)
            .at(h, 0, 0, 0)
            .in_tz("Europe/Berlin")
            .unwrap()
    }

    #[test]
    fn reference_issue_events_read_exactly_as_printed() {
        assert_eq!(
            event_time(&berlin(2025, 1, 23, 11), &zones()),
            "Jan. 23, 2025; 11 a.m. CET (6 p.m. CST)"
        );
        assert_eq!(
            event_time(&berlin(2025, 1, 23, 18), &zones()),
            "Jan. 23, 2025; 6 p.m. CET (Jan 24, 1 a.m. CST)"
        );
    }

    #[test]
    fn us_eu_dst_gap_in_march_2026_is_five_hours() {
        // New York switched to EDT on 8 March, Berlin stays on CET until 29 March.
        let ny = jiff::civil::date(2026, 3, 12)
            .at(12, 30, 0, 0)
            .in_tz("America/New_York")
            .unwrap();
        let zones = vec![
            TimeZone::get("Europe/Berlin").unwrap(),
            TimeZone::get("America/New_York").unwrap(),
        ];
        assert_eq!(
            event_time(&ny, &zones),
            "March 12, 2026; 5:30 p.m. CET (12:30 p.m. EDT)"
        );
    }

    #[test]
    fn clock_names_noon_and_midnight() {
        assert_eq!(clock(&berlin(2025, 1, 1, 12)), "noon");
        assert_eq!(clock(&berlin(2025, 1, 1, 0)), "midnight");
    }
}
