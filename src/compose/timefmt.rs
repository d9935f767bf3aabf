//! How dates and event times read in an issue: in English AP style, as in
//! the reference briefing (`Jan. 23, 2025; 6 p.m. CET (Jan 24, 1 a.m.
//! UTC+8)`); in other languages their own CLDR style through ICU4X
//! (`23. Januar 2025, 18 Uhr MEZ (24. Januar, 1 Uhr GMT+8)`).

use std::collections::BTreeMap;

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
    format!("{}, {}", ap_month_day(d), d.year())
}

/// `Jan. 23`.
fn ap_month_day(d: Date) -> String {
    format!("{} {}", MONTHS_AP[month_index(d)], d.day())
}

/// `January 17, 2025` (or `17. Januar 2025`), for issue headers.
pub fn long_date(d: Date, language: &str) -> String {
    match Cldr::for_language(language) {
        Some(cldr) => cldr.date(d),
        None => format!("{} {}, {}", MONTHS_LONG[month_index(d)], d.day(), d.year()),
    }
}

/// Whether a language is written in the built-in English house style.
fn is_english(language: &str) -> bool {
    crate::model::base_language(language).eq_ignore_ascii_case("en")
}

/// CLDR formats for a language other than English: ICU4X with its
/// compiled data, so month names, the order of day and month and the
/// clock ("18 Uhr", "18:30") are the language's own.
struct Cldr {
    locale: icu_datetime::DateTimeFormatterPreferences,
}

impl Cldr {
    /// `None` for English (house style) or a tag ICU cannot read.
    fn for_language(language: &str) -> Option<Self> {
        if is_english(language) {
            return None;
        }
        let locale: icu_locale_core::Locale = language.parse().ok()?;
        Some(Self {
            locale: (&locale).into(),
        })
    }

    fn date(&self, d: Date) -> String {
        use icu_datetime::{DateTimeFormatter, fieldsets::YMD};
        DateTimeFormatter::try_new(self.locale, YMD::long())
            .map(|f| f.format(&d).to_string())
            .unwrap_or_else(|_| d.to_string())
    }

    fn month_day(&self, d: Date) -> String {
        use icu_datetime::{DateTimeFormatter, fieldsets::MD};
        DateTimeFormatter::try_new(self.locale, MD::long())
            .map(|f| f.format(&d).to_string())
            .unwrap_or_else(|_| d.to_string())
    }

    /// `18 Uhr MEZ`, `18:30 Uhr …`: the hour alone when the minutes are
    /// zero, the zone by `label` or else by CLDR's short name for it.
    fn clock(&self, z: &Zoned, label: Option<&str>) -> String {
        use icu_datetime::options::TimePrecision;
        use icu_datetime::{DateTimeFormatter, NoCalendarFormatter, fieldsets};
        let precision = if z.minute() == 0 {
            TimePrecision::Hour
        } else {
            TimePrecision::Minute
        };
        let time = fieldsets::T::short().with_time_precision(precision);
        let fallback = || format!("{:02}:{:02}", z.hour(), z.minute());
        match label {
            Some(label) => {
                let t = NoCalendarFormatter::try_new(self.locale, time)
                    .map(|f| f.format(&z.time()).to_string())
                    .unwrap_or_else(|_| fallback());
                format!("{t} {label}")
            }
            None => DateTimeFormatter::try_new(
                self.locale,
                time.with_zone(fieldsets::zone::SpecificShort),
            )
            .map(|f| f.format(z).to_string())
            .unwrap_or_else(|_| fallback()),
        }
    }
}

/// `11 a.m.`, `6:30 p.m.`, `noon`, `12 a.m.`.
///
/// Midnight is written `12 a.m.`, never "midnight": AP style, which these
/// times follow, counts midnight as the end of a day, so "midnight" under
/// March 25 can be read as the night into March 26, while `12 a.m.` can
/// only start the day it is printed under. Noon stays `noon`, which cannot
/// be placed on the wrong day, and which readers take more surely than
/// `12 p.m.` (often mistaken for midnight).
pub fn clock(z: &Zoned) -> String {
    let (h, m) = (z.hour(), z.minute());
    if (h, m) == (12, 0) {
        return "noon".into();
    }
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

/// Abbreviations the tz database gives to zones on different UTC offsets
/// (checked against the bundled database by a test): `CST` is US Central,
/// Cuba and China; `IST` India, Ireland and Israel; `PST` the US Pacific
/// and the Philippines; `CDT` US Central and Cuba in summer.
pub const AMBIGUOUS_ABBREVIATIONS: [&str; 4] = ["CDT", "CST", "IST", "PST"];

/// What a zone is called at an instant when the publisher names it
/// nothing: its tzdb abbreviation (`CET`, `CEST`, `EDT`), or the UTC offset
/// (`UTC+8`, `UTC+5:30`) when the abbreviation is numeric or one that
/// [`AMBIGUOUS_ABBREVIATIONS`] lists. The offset is exact in any language
/// and needs no table of city names that could go stale.
pub fn zone_label(tz: &TimeZone, at: Timestamp) -> String {
    let info = tz.to_offset_info(at);
    let abbr = info.abbreviation();
    let numeric = abbr.starts_with('+') || abbr.starts_with('-') || abbr.is_empty();
    if numeric || AMBIGUOUS_ABBREVIATIONS.contains(&abbr) {
        utc_offset(info.offset().seconds())
    } else {
        abbr.to_string()
    }
}

/// `UTC+8`, `UTC-5`, `UTC+5:30`.
fn utc_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let secs = seconds.abs();
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    if m == 0 {
        format!("UTC{sign}{h}")
    } else {
        format!("UTC{sign}{h}:{m:02}")
    }
}

/// The publisher's label for `tz` (from `[newsletter.zone_labels]`, by IANA
/// name), shown all year, else [`zone_label`].
pub fn labelled_zone(tz: &TimeZone, at: Timestamp, labels: &BTreeMap<String, String>) -> String {
    tz.iana_name()
        .and_then(|name| labels.get(name))
        .cloned()
        .unwrap_or_else(|| zone_label(tz, at))
}

/// `text` with its spaces made no-break spaces, so it stays on one line.
fn held(text: &str) -> String {
    text.replace(' ', "\u{a0}")
}

/// An event's start in every configured zone: the first zone gives the date,
/// the others follow in parentheses, with their own date when the day rolls
/// over: `Jan. 23, 2025; 6 p.m. CET (Jan 24, 1 a.m. Beijing time)`.
///
/// Each time with its zone, and each month with its day, is joined by
/// no-break spaces: a line may break only after `;`, `,` or before `(`.
pub fn event_time(
    start: &Zoned,
    zones: &[TimeZone],
    labels: &BTreeMap<String, String>,
    language: &str,
) -> String {
    if let Some(cldr) = Cldr::for_language(language) {
        return cldr_event_time(&cldr, start, zones, labels);
    }
    let ts = start.timestamp();
    let lead_tz = zones
        .first()
        .cloned()
        .unwrap_or_else(|| start.time_zone().clone());
    let lead = ts.to_zoned(lead_tz.clone());
    let at =
        |z: &Zoned, tz: &TimeZone| held(&format!("{} {}", clock(z), labelled_zone(tz, ts, labels)));
    let d = lead.date();
    let day = held(&ap_month_day(d));
    let mut out = format!("{day}, {}; {}", d.year(), at(&lead, &lead_tz));
    let others: Vec<String> = zones
        .iter()
        .skip(1)
        .map(|tz| {
            let z = ts.to_zoned(tz.clone());
            let day = if z.date() != lead.date() {
                let month = MONTHS_SHORT[month_index(z.date())];
                format!("{}, ", held(&format!("{month} {}", z.date().day())))
            } else {
                String::new()
            };
            format!("{day}{}", at(&z, tz))
        })
        .collect();
    if !others.is_empty() {
        out.push_str(" (");
        out.push_str(&others.join(", "));
        out.push(')');
    }
    out
}

/// [`event_time`] in a CLDR language: `23. Januar 2025, 18 Uhr MEZ
/// (24. Januar, 1 Uhr Pekinger Zeit)`.
fn cldr_event_time(
    cldr: &Cldr,
    start: &Zoned,
    zones: &[TimeZone],
    labels: &BTreeMap<String, String>,
) -> String {
    let ts = start.timestamp();
    let lead_tz = zones
        .first()
        .cloned()
        .unwrap_or_else(|| start.time_zone().clone());
    let at = |tz: &TimeZone| {
        let z = ts.to_zoned(tz.clone());
        let label = tz.iana_name().and_then(|n| labels.get(n));
        (held(&cldr.clock(&z, label.map(String::as_str))), z)
    };
    let (lead_clock, lead) = at(&lead_tz);
    let mut out = format!("{}, {lead_clock}", held(&cldr.date(lead.date())));
    let others: Vec<String> = zones
        .iter()
        .skip(1)
        .map(|tz| {
            let (clock, z) = at(tz);
            if z.date() == lead.date() {
                clock
            } else {
                format!("{}, {clock}", held(&cldr.month_day(z.date())))
            }
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

    fn no_labels() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `s` with every `_` a no-break space, so expectations show where a
    /// line may not break.
    fn nb(s: &str) -> String {
        s.replace('_', "\u{a0}")
    }

    fn local(zone: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Zoned {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .in_tz(zone)
            .unwrap()
    }

    fn berlin(y: i16, mo: i8, d: i8, h: i8) -> Zoned {
        local("Europe/Berlin", y, mo, d, h, 0)
    }

    #[test]
    fn reference_issue_events_read_exactly_as_printed() {
        assert_eq!(
            event_time(&berlin(2025, 1, 23, 11), &zones(), &no_labels(), "en"),
            nb("Jan._23, 2025; 11_a.m._CET (6_p.m._UTC+8)")
        );
        assert_eq!(
            event_time(&berlin(2025, 1, 23, 18), &zones(), &no_labels(), "en"),
            nb("Jan._23, 2025; 6_p.m._CET (Jan_24, 1_a.m._UTC+8)")
        );
    }

    #[test]
    fn a_configured_label_replaces_the_abbreviation_all_year() {
        let l = labels(&[
            ("Asia/Shanghai", "Beijing time"),
            ("Europe/Berlin", "Berlin"),
        ]);
        assert_eq!(
            event_time(&berlin(2025, 1, 23, 18), &zones(), &l, "en"),
            nb("Jan._23, 2025; 6_p.m._Berlin (Jan_24, 1_a.m._Beijing_time)")
        );
        assert_eq!(
            event_time(&berlin(2025, 7, 23, 18), &zones(), &l, "en"),
            nb("July_23, 2025; 6_p.m._Berlin (Jul_24, 12_a.m._Beijing_time)")
        );
        // A label for another zone changes nothing here.
        let other = labels(&[("America/Chicago", "Chicago time")]);
        assert_eq!(
            event_time(&berlin(2025, 1, 23, 11), &zones(), &other, "en"),
            nb("Jan._23, 2025; 11_a.m._CET (6_p.m._UTC+8)")
        );
    }

    #[test]
    fn us_eu_dst_gap_in_march_2026_is_five_hours() {
        // New York switched to EDT on 8 March, Berlin stays on CET until 29 March.
        let ny = local("America/New_York", 2026, 3, 12, 12, 30);
        let zones = vec![
            TimeZone::get("Europe/Berlin").unwrap(),
            TimeZone::get("America/New_York").unwrap(),
        ];
        assert_eq!(
            event_time(&ny, &zones, &no_labels(), "en"),
            nb("March_12, 2026; 5:30_p.m._CET (12:30_p.m._EDT)")
        );
    }

    #[test]
    fn clashing_abbreviations_become_utc_offsets_and_others_stay() {
        let winter = local("UTC", 2025, 1, 15, 12, 0).timestamp();
        let summer = local("UTC", 2025, 7, 15, 12, 0).timestamp();
        let label = |zone: &str, at| zone_label(&TimeZone::get(zone).unwrap(), at);
        for (zone, january, july) in [
            ("Asia/Shanghai", "UTC+8", "UTC+8"),
            ("America/Chicago", "UTC-6", "UTC-5"),
            ("America/Havana", "UTC-5", "UTC-4"),
            ("Asia/Kolkata", "UTC+5:30", "UTC+5:30"),
            ("Europe/Dublin", "GMT", "UTC+1"),
            ("Asia/Jerusalem", "UTC+2", "IDT"),
            ("America/Los_Angeles", "UTC-8", "PDT"),
            ("Asia/Manila", "UTC+8", "UTC+8"),
            ("America/New_York", "EST", "EDT"),
            ("Europe/London", "GMT", "BST"),
            ("Europe/Berlin", "CET", "CEST"),
            ("Asia/Tokyo", "JST", "JST"),
            ("America/Sao_Paulo", "UTC-3", "UTC-3"),
        ] {
            assert_eq!(label(zone, winter), january, "{zone} in January");
            assert_eq!(label(zone, summer), july, "{zone} in July");
        }
    }

    #[test]
    fn the_ambiguous_list_is_what_the_bundled_tz_database_says() {
        // Every abbreviation in use in 2025 and 2026 that names two offsets.
        let mut offsets: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for name in jiff::tz::db().available() {
            let tz = TimeZone::get(name.as_str()).unwrap();
            for (y, mo) in [(2025, 1), (2025, 7), (2026, 1), (2026, 7)] {
                let info = tz.to_offset_info(local("UTC", y, mo, 15, 12, 0).timestamp());
                let seen = offsets.entry(info.abbreviation().to_string()).or_default();
                if !seen.contains(&info.offset().seconds()) {
                    seen.push(info.offset().seconds());
                }
            }
        }
        let clashing: Vec<&str> = offsets
            .iter()
            .filter(|(abbr, offs)| offs.len() > 1 && !abbr.starts_with(['+', '-']))
            .map(|(abbr, _)| abbr.as_str())
            .collect();
        assert_eq!(clashing, AMBIGUOUS_ABBREVIATIONS);
    }

    #[test]
    fn midnight_and_noon_read_unambiguously_in_every_zone() {
        let zones: Vec<TimeZone> = ["Europe/Berlin", "Asia/Shanghai", "America/New_York"]
            .iter()
            .map(|z| TimeZone::get(z).unwrap())
            .collect();
        let l = labels(&[("Asia/Shanghai", "Beijing time")]);
        let expected = [
            // Midnight and noon where each zone's clock shows them.
            (
                local("Europe/Berlin", 2025, 3, 25, 0, 0),
                "March_25, 2025; 12_a.m._CET (7_a.m._Beijing_time, Mar_24, 7_p.m._EDT)",
            ),
            (
                local("Asia/Shanghai", 2025, 3, 25, 0, 0),
                "March_24, 2025; 5_p.m._CET (Mar_25, 12_a.m._Beijing_time, noon_EDT)",
            ),
            (
                local("America/New_York", 2025, 3, 25, 0, 0),
                "March_25, 2025; 5_a.m._CET (noon_Beijing_time, 12_a.m._EDT)",
            ),
            (
                local("Europe/Berlin", 2025, 3, 25, 12, 0),
                "March_25, 2025; noon_CET (7_p.m._Beijing_time, 7_a.m._EDT)",
            ),
            (
                local("Asia/Shanghai", 2025, 3, 25, 12, 0),
                "March_25, 2025; 5_a.m._CET (noon_Beijing_time, 12_a.m._EDT)",
            ),
            (
                local("America/New_York", 2025, 3, 25, 12, 0),
                "March_25, 2025; 5_p.m._CET (Mar_26, 12_a.m._Beijing_time, noon_EDT)",
            ),
        ];
        for (start, want) in expected {
            let got = event_time(&start, &zones, &l, "en");
            assert_eq!(got, nb(want), "{start}");
            assert!(!got.contains("midnight"), "{got}");
        }
    }

    #[test]
    fn clock_names_noon_and_writes_midnight_as_12_am() {
        assert_eq!(clock(&berlin(2025, 1, 1, 12)), "noon");
        assert_eq!(clock(&berlin(2025, 1, 1, 0)), "12 a.m.");
        assert_eq!(
            clock(&local("Europe/Berlin", 2025, 1, 1, 0, 30)),
            "12:30 a.m."
        );
        assert_eq!(
            clock(&local("Europe/Berlin", 2025, 1, 1, 12, 5)),
            "12:05 p.m."
        );
    }

    #[test]
    fn german_dates_and_times_are_cldr_german() {
        let l = labels(&[("Asia/Shanghai", "Pekinger Zeit")]);
        assert_eq!(
            event_time(&berlin(2025, 1, 23, 11), &zones(), &no_labels(), "de"),
            nb("23._Januar_2025, 11_Uhr_MEZ (18_Uhr_GMT+8)")
        );
        assert_eq!(
            event_time(&berlin(2025, 1, 23, 18), &zones(), &l, "de"),
            nb("23._Januar_2025, 18_Uhr_MEZ (24._Januar, 01_Uhr_Pekinger_Zeit)")
        );
        assert_eq!(
            event_time(
                &local("Europe/Berlin", 2025, 7, 3, 9, 30),
                &zones(),
                &no_labels(),
                "de"
            ),
            nb("3._Juli_2025, 09:30_MESZ (15:30_GMT+8)")
        );
        assert_eq!(
            long_date(jiff::civil::date(2025, 1, 17), "de"),
            "17. Januar 2025"
        );
        assert_eq!(
            long_date(jiff::civil::date(2025, 1, 17), "en-GB"),
            "January 17, 2025"
        );
    }
}
