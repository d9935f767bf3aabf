//! Where a line must never break: between a number and its unit, and
//! between the parts of a time of day. "30 / GW" or "11 / p.m. CST" at the
//! end of a phone line reads as two separate things.
//!
//! Held together, when only spaces separate them:
//!
//! * a number and a unit *symbol* after it: `5 %`, `30 GW`, `120 km/h`,
//!   `-3 °C`, `52.7 bn`, `290 €`, `50 USD`;
//! * a currency before a number: `USD 50`, `€ 290`, `CHF 1,200`;
//! * a clock time and `a.m.`/`p.m.`, and those and a zone abbreviation or
//!   UTC offset after them: `6 p.m.`, `11 p.m. CST`, `6:30 a.m. UTC+8`.
//!
//! A number that meets a unit at a slash (`$50/kWh`, `€0.30/kWh`) is one
//! run as well: browsers do not break there, but the text part's Unicode
//! line breaking does.
//!
//! Units are symbols, not words. A symbol alone at the start of a line is
//! meaningless, while "17 percent" or "200 yuan" still read across a break;
//! the SI Brochure (5.4.3) asks for a no-break space between a number and its
//! unit symbol for the same reason. Words are left to wrap, so that a count
//! followed by an ordinary noun ("in 2022 A new plant …") stays breakable.

use std::borrow::Cow;
use std::ops::Range;

/// The no-break space the HTML writes as `&nbsp;` and the text part keeps.
pub const NO_BREAK_SPACE: char = '\u{a0}';

/// Unit symbols written after a number. Single capitals that are also
/// English words ("A" for ampere) are left out.
const UNITS: &[&str] = &[
    // shares and rates
    "%", "‰", "‱", "pp", "bp", "bps", "ppm", "ppb", // temperature
    "°", "°C", "°F", "K", // length, area, volume
    "nm", "µm", "mm", "cm", "m", "km", "m²", "km²", "m³", "ha", "l", "L", "ml", "mL", "hl",
    // mass
    "mg", "g", "kg", "t", "kt", "Mt", "Gt", // time and speed
    "ms", "s", "min", "h", "km/h", "mph", "kn", "m/s", // power and energy
    "W", "kW", "MW", "GW", "TW", "Wh", "kWh", "MWh", "GWh", "TWh", "J", "kJ", "MJ", "GJ", "PJ",
    "EJ", "kcal", "Btu", "kWp", "MWp", "GWp", // electricity and frequency
    "V", "kV", "mA", "kA", "Hz", "kHz", "MHz", "GHz", "Pa", "kPa", "hPa", "bar", // data
    "B", "kB", "KB", "MB", "GB", "TB", "PB", "bit", "kbit/s", "Mbit/s", "Gbit/s", "kbps", "Mbps",
    "Gbps", "px", "pt", // money in newsroom shorthand
    "k", "mn", "bn", "tn", "mpg",
];

/// Currencies, written before or after a number.
const CURRENCIES: &[&str] = &[
    "$", "€", "£", "¥", "₩", "₹", "₽", "₺", "US$", "HK$", "NT$", "S$", "A$", "C$", "R$", "USD",
    "EUR", "CNY", "RMB", "JPY", "GBP", "CHF", "HKD", "TWD", "KRW", "INR", "RUB", "AUD", "CAD",
    "SGD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "BRL", "MXN", "ZAR", "TRY", "AED", "SAR",
];

const OPENERS: &[char] = &['(', '[', '{', '“', '"', '‘', '\'', '„', '«', '‹'];
const CLOSERS: &[char] = &[
    ')', ']', '}', ',', ';', ':', '!', '?', '”', '"', '’', '\'', '»', '›', '.',
];

/// Byte ranges of `s` to keep on one line, in order and not overlapping.
pub fn held_runs(s: &str) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    // Every run has a number in it; most prose lines have none.
    if !has_digit(s) {
        return runs;
    }
    let mut prev: Option<Range<usize>> = None;
    let mut held_before = false;
    // An empty range after the last word lets the loop settle that word.
    for tok in tokens(s).chain(std::iter::once(s.len()..s.len())) {
        let Some(left) = prev.replace(tok.clone()) else {
            continue;
        };
        let held = !tok.is_empty() && holds(&s[left.clone()], &s[tok.clone()], held_before);
        match runs.last_mut() {
            Some(run) if held_before => run.end = left.end,
            _ if held || is_slash_compound(&s[left.clone()]) => runs.push(left),
            _ => {}
        }
        held_before = held;
    }
    runs
}

/// Whether `s` holds an ASCII digit, without which nothing is held.
pub fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// `s` with the spaces inside every held run replaced by one
/// [`NO_BREAK_SPACE`] each.
pub fn join_held(s: &str) -> Cow<'_, str> {
    if !has_digit(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for run in held_runs(s) {
        out.push_str(&s[at..run.start]);
        push_joined(&mut out, &s[run.clone()]);
        at = run.end;
    }
    out.push_str(&s[at..]);
    Cow::Owned(out)
}

/// Appends `run` with each of its runs of spaces as one no-break space.
pub fn push_joined(out: &mut String, run: &str) {
    let mut gap = false;
    for c in run.chars() {
        if is_gap(c) {
            if !gap {
                out.push(NO_BREAK_SPACE);
            }
            gap = true;
        } else {
            out.push(c);
            gap = false;
        }
    }
}

/// Spaces a line may break at (a no-break space is part of a token).
fn is_gap(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// The byte ranges of the words of `s` (what lies between gaps).
fn tokens(s: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + s[at..].find(|c| !is_gap(c))?;
        let end = s[start..].find(is_gap).map_or(s.len(), |e| start + e);
        at = end;
        Some(start..end)
    })
}

/// Whether the space between `left` and `right` is held; `left_held` says
/// whether `left` is itself held to the token before it.
fn holds(left: &str, right: &str, left_held: bool) -> bool {
    if !left_held && !has_digit(left) && !has_digit(right) {
        return false;
    }
    let l = left.trim_start_matches(OPENERS);
    let r = trim_end(right);
    (is_number(l) && is_unit(r))
        || (CURRENCIES.contains(&l) && is_number(r))
        || (is_clock(l) && is_meridiem(r))
        || (left_held && is_meridiem(l) && is_zone(r))
}

/// `right` without closing punctuation, keeping the dot of `a.m.`/`p.m.`.
fn trim_end(mut w: &str) -> &str {
    while let Some(c) = w.chars().next_back() {
        if !CLOSERS.contains(&c) || (c == '.' && is_meridiem(w)) {
            break;
        }
        w = &w[..w.len() - c.len_utf8()];
    }
    w
}

/// `5`, `-3`, `2,200`, `52.7`, `5–10`, `$50`, `US$1.5`, `€0.30`.
fn is_number(w: &str) -> bool {
    let w = w.strip_prefix(['+', '-', '−', '±', '~', '≈']).unwrap_or(w);
    let w = CURRENCIES
        .iter()
        .filter(|c| !c.chars().all(|ch| ch.is_ascii_uppercase()))
        .find_map(|c| w.strip_prefix(c))
        .unwrap_or(w);
    let digit_ends =
        w.starts_with(|c: char| c.is_ascii_digit()) && w.ends_with(|c: char| c.is_ascii_digit());
    digit_ends
        && w.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ',' | '.' | '\'' | '’' | '–' | '-'))
}

/// A unit symbol or currency, or units joined by slashes (`km/h`, `€/MWh`).
fn is_unit(w: &str) -> bool {
    let one = |u: &str| UNITS.contains(&u) || CURRENCIES.contains(&u);
    one(w) || (w.contains('/') && w.split('/').all(one))
}

/// `6`, `11`, `6:30`.
fn is_clock(w: &str) -> bool {
    let (h, m) = w.split_once(':').unwrap_or((w, "00"));
    let digits =
        |s: &str, n: Range<usize>| n.contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit());
    digits(h, 1..3) && digits(m, 2..3)
}

fn is_meridiem(w: &str) -> bool {
    matches!(w, "a.m." | "p.m.")
}

/// `CET`, `CEST`, `EDT`, `UTC`, `GMT+1`, `UTC+5:30`, `UTC-3`.
fn is_zone(w: &str) -> bool {
    let abbreviation = (2..=5).contains(&w.len())
        && w.chars().all(|c| c.is_ascii_uppercase())
        && (w.ends_with('T') || w == "UTC");
    let offset = ["UTC", "GMT"].iter().any(|base| {
        w.strip_prefix(base)
            .and_then(|o| o.strip_prefix(['+', '-', '−']))
            .is_some_and(is_clock)
    });
    abbreviation || offset
}

/// `$50/kWh`: a number and a unit meeting at a slash, with no space.
fn is_slash_compound(token: &str) -> bool {
    if !token.contains('/') || !has_digit(token) {
        return false;
    }
    let t = trim_end(token.trim_start_matches(OPENERS));
    t.split_once('/')
        .is_some_and(|(number, unit)| is_number(number) && is_unit(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(s: &str) -> Vec<&str> {
        held_runs(s).into_iter().map(|r| &s[r]).collect()
    }

    #[test]
    fn numbers_hold_to_the_unit_symbol_after_them() {
        assert_eq!(
            runs("Output rose 5 % to 30 GW, or 2.5 °C (-3 °C at night) and 120 km/h."),
            vec!["5 %", "30 GW,", "2.5 °C", "(-3 °C", "120 km/h."]
        );
        assert_eq!(
            runs("shipments of 52.7 bn and 290 €"),
            vec!["52.7 bn", "290 €"]
        );
    }

    #[test]
    fn currencies_hold_on_either_side_and_chain_with_a_scale() {
        assert_eq!(
            runs("worth USD 50 bn, € 290 or 1,750 CNY"),
            vec!["USD 50 bn,", "€ 290", "1,750 CNY"]
        );
        assert_eq!(runs("a $50 bn plan"), vec!["$50 bn"]);
    }

    #[test]
    fn times_hold_with_their_meridiem_and_zone() {
        assert_eq!(
            runs("at 11 p.m. CST, or 6:30 a.m. UTC+8; noon at 12 p.m."),
            vec!["11 p.m. CST,", "6:30 a.m. UTC+8;", "12 p.m."]
        );
        // A capitalised word after the time is the next sentence, not a zone.
        assert_eq!(runs("until 6 p.m. The vote"), vec!["6 p.m."]);
    }

    #[test]
    fn a_number_and_unit_at_a_slash_is_one_run() {
        assert_eq!(
            runs("costs $50/kWh or €0.30/kWh now"),
            vec!["$50/kWh", "€0.30/kWh"]
        );
        assert_eq!(runs("and/or 2024/25"), Vec::<&str>::new());
    }

    #[test]
    fn words_and_unrelated_numbers_stay_breakable() {
        for s in [
            "down 17 percent to 200 yuan",
            "in 2022 A new plant opened",
            "five of the 14 dams",
            "on Jan. 23, 2025 at noon",
            "5, % of them",
        ] {
            assert_eq!(runs(s), Vec::<&str>::new(), "{s}");
        }
    }

    #[test]
    fn join_held_puts_one_no_break_space_in_each_gap() {
        assert_eq!(
            join_held("at 11  p.m.\nCST, 30 GW and 5 apples"),
            "at 11\u{a0}p.m.\u{a0}CST, 30\u{a0}GW and 5 apples"
        );
        assert_eq!(join_held("nothing to hold"), "nothing to hold");
    }
}
