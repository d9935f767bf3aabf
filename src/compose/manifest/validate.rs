//! From the manifest as written ([`RawIssue`]) to the model ([`Issue`]):
//! required keys, times and zones, URLs, bodies from files, anchors.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Zoned;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::raw::*;
use super::{Locations, ReadFile};
use crate::compose::{markdown, strings};
use crate::config::Config;
use crate::diagnostic::{Diagnostic, Diagnostics, Severity, SourceFile, closest};
use crate::model::strip_marks;
use crate::model::*;

/// Everything validation needs besides the raw issue.
pub struct Context<'a> {
    /// The manifest file (for locations).
    pub file: &'a Arc<SourceFile>,
    /// Folder that `body_file` paths are relative to.
    pub base_dir: &'a Path,
    /// Reads body files.
    pub read: &'a ReadFile<'a>,
    /// Publisher settings.
    pub config: &'a Config,
    /// Name of the manifest's folder, the default slug.
    pub folder_name: Option<String>,
    /// The language of a translation being validated; `None` for the main
    /// manifest, whose language is its own `language` or the config's.
    pub edition: Option<&'a str>,
}

/// What validation produced besides the issue.
pub struct Extra {
    /// Where each model field was written.
    pub locations: Locations,
    /// Body files read, for watchers and diagnostics.
    pub body_files: Vec<PathBuf>,
}

struct V<'a> {
    cx: &'a Context<'a>,
    out: &'a mut Diagnostics,
    locations: Locations,
    body_files: Vec<PathBuf>,
    zone_name: String,
    zone: TimeZone,
    language: String,
}

/// Validates a raw issue; problems go to `out`, and `None` comes back when
/// any of them is an error.
pub fn validate(raw: &RawIssue, cx: &Context<'_>, out: &mut Diagnostics) -> Option<(Issue, Extra)> {
    let (zone_name, zone) = match &raw.time_zone {
        Some(z) => match TimeZone::get(&z.value) {
            Ok(tz) => (z.value.clone(), tz),
            Err(_) => {
                out.push(bad_zone(cx.file, "time_zone", z));
                fallback_zone(cx.config)
            }
        },
        None => fallback_zone(cx.config),
    };
    let mut v = V {
        cx,
        out,
        locations: Locations::default(),
        body_files: Vec::new(),
        zone_name,
        zone,
        language: String::new(),
    };
    let issue = v.issue(raw);
    let extra = Extra {
        locations: v.locations,
        body_files: v.body_files,
    };
    if out.has_errors() {
        None
    } else {
        issue.map(|i| (i, extra))
    }
}

fn fallback_zone(config: &Config) -> (String, TimeZone) {
    let name = config.newsletter.time_zone.clone();
    let tz = TimeZone::get(&name).unwrap_or(TimeZone::UTC);
    (name, tz)
}

fn bad_zone(file: &Arc<SourceFile>, field: &str, z: &At<String>) -> Diagnostic {
    Diagnostic::error(format!(
        "unknown time zone `{}`, expected an IANA zone name such as `Europe/Berlin` or `Asia/Shanghai`",
        z.value
    ))
    .field(field)
    .at(file, Some(z.span.clone()))
}

impl V<'_> {
    fn err(&mut self, field: &str, span: Range<usize>, msg: impl Into<String>) {
        self.out.push(
            Diagnostic::error(msg)
                .field(field)
                .at(self.cx.file, Some(span)),
        );
    }

    fn warn(&mut self, field: &str, span: Range<usize>, msg: impl Into<String>) {
        self.out.push(
            Diagnostic::warning(msg)
                .field(field)
                .at(self.cx.file, Some(span)),
        );
    }

    /// True when the reader already reported this field (a wrong type), so
    /// its absence here is not news.
    fn reported(&self, field: &str) -> bool {
        self.out.iter().any(|d| d.field.as_deref() == Some(field))
    }

    fn note(&mut self, field: &str, span: &Range<usize>) {
        self.locations
            .insert(field, Arc::clone(self.cx.file), Some(span.clone()));
    }

    /// A required one-line text: present, not blank, no control characters.
    fn text(
        &mut self,
        v: &Option<At<String>>,
        field: &str,
        within: &Range<usize>,
        what: &str,
    ) -> Option<String> {
        match v {
            None if self.reported(field) => None,
            None => {
                self.err(
                    field,
                    within.clone(),
                    format!("missing `{}`, expected {what}", leaf(field)),
                );
                None
            }
            Some(at) => self.line_text(at, field, what),
        }
    }

    /// An optional one-line text.
    fn opt_text(&mut self, v: &Option<At<String>>, field: &str, what: &str) -> Option<String> {
        v.as_ref().and_then(|at| self.line_text(at, field, what))
    }

    fn line_text(&mut self, at: &At<String>, field: &str, what: &str) -> Option<String> {
        self.note(field, &at.span);
        let value = strip_marks(at.value.trim());
        if value.is_empty() {
            self.err(
                field,
                at.span.clone(),
                format!("`{}` is empty, expected {what}", leaf(field)),
            );
            return None;
        }
        if let Some(c) = value.chars().find(|c| is_invisible(*c)) {
            self.err(
                field,
                at.span.clone(),
                format!(
                    "`{}` contains the invisible character U+{:04X}, expected only visible text (it can hide a misspelling or a spoof)",
                    leaf(field),
                    u32::from(c)
                ),
            );
            return None;
        }
        if let Some(c) = value
            .chars()
            .find(|c| c.is_control() || is_bidi_control(*c))
        {
            self.err(
                field,
                at.span.clone(),
                format!(
                    "`{}` contains the control character U+{:04X}, expected one line of plain text",
                    leaf(field),
                    u32::from(c)
                ),
            );
            return None;
        }
        Some(value)
    }

    fn url(
        &mut self,
        v: &Option<At<String>>,
        field: &str,
        within: &Range<usize>,
    ) -> Option<String> {
        let value = self.text(v, field, within, "a link such as https://example.org/page")?;
        let span = v.as_ref().map_or(within.clone(), |a| a.span.clone());
        match markdown::check_url(&value) {
            Ok(()) => Some(value),
            Err(msg) => {
                self.err(field, span, msg.to_string());
                None
            }
        }
    }

    fn issue(&mut self, raw: &RawIssue) -> Option<Issue> {
        let top = 0..0;
        let cfg = self.cx.config;
        let newsletter = self
            .opt_text(&raw.newsletter, "newsletter", "the newsletter's name")
            .unwrap_or_else(|| cfg.newsletter.name.clone());
        let number = self.number(raw);
        let date = match &raw.date {
            None if self.reported("date") => None,
            None => {
                self.err(
                    "date",
                    top.clone(),
                    "missing `date`, expected the publication date, e.g. date = 2025-01-17",
                );
                None
            }
            Some(d) => self.date(d, "date"),
        };
        let subject = self.text(
            &raw.subject,
            "subject",
            &top,
            "the email subject, e.g. subject = \"VW plants for sale\"",
        );
        let preheader = self.preheader(raw);
        let language = match self.cx.edition {
            Some(lang) => lang.to_string(),
            None => self
                .opt_text(&raw.language, "language", "a language tag such as `en`")
                .unwrap_or_else(|| cfg.newsletter.language.clone()),
        };
        self.language.clone_from(&language);
        let send_at = raw.send_at.as_ref().and_then(|s| {
            self.note("send_at", &s.span);
            let (name, zone) = (self.zone_name.clone(), self.zone.clone());
            self.when(s, "send_at", &name, &zone)
        });
        let slug = match &raw.slug {
            Some(s) => self.slug(s),
            None => self
                .cx
                .folder_name
                .clone()
                .filter(|n| valid_slug(n))
                .or_else(|| date.map(|d| d.to_string())),
        };

        let sections = self.sections(raw);
        let publisher = self.publisher(slug.as_deref().unwrap_or("issue"), &newsletter);
        Some(Issue {
            slug: slug?,
            newsletter,
            number: number?,
            date: date?,
            subject: subject?,
            preheader: preheader?,
            language,
            send_at,
            sections: sections?,
            publisher: publisher?,
        })
    }

    fn number(&mut self, raw: &RawIssue) -> Option<u32> {
        let top = 0..0;
        match &raw.number {
            None if self.reported("number") => None,
            None => {
                self.err(
                    "number",
                    top.clone(),
                    "missing `number`, expected the issue number, e.g. number = 1042",
                );
                None
            }
            Some(n) if n.value < 1 || n.value > i64::from(u32::MAX) => {
                self.err(
                    "number",
                    n.span.clone(),
                    format!(
                        "{} is not an issue number, expected a whole number from 1",
                        n.value
                    ),
                );
                None
            }
            Some(n) => {
                self.note("number", &n.span);
                u32::try_from(n.value).ok()
            }
        }
    }

    /// The inbox preview line; missing or blank is only a warning.
    fn preheader(&mut self, raw: &RawIssue) -> Option<String> {
        let top = 0..0;
        match &raw.preheader {
            None => {
                self.warn(
                    "preheader",
                    top.clone(),
                    "missing `preheader`; inboxes will show the first words of the issue instead",
                );
                Some(String::new())
            }
            Some(p) if p.value.trim().is_empty() => {
                self.note("preheader", &p.span);
                self.warn(
                    "preheader",
                    p.span.clone(),
                    "empty `preheader`; inboxes will show the first words of the issue instead",
                );
                Some(String::new())
            }
            Some(_) => self.opt_text(&raw.preheader, "preheader", "the inbox preview line"),
        }
    }

    fn slug(&mut self, s: &At<String>) -> Option<String> {
        self.note("slug", &s.span);
        if valid_slug(&s.value) {
            Some(s.value.clone())
        } else {
            self.err(
                "slug",
                s.span.clone(),
                format!(
                    "`{}` cannot name files, expected letters, digits, `-`, `_` or `.`",
                    s.value
                ),
            );
            None
        }
    }

    fn date(&mut self, d: &At<When>, field: &str) -> Option<Date> {
        self.note(field, &d.span);
        let text = match &d.value {
            When::Literal(s) | When::Text(s) => s,
        };
        match text.parse::<Date>() {
            Ok(date) if text.len() == 10 && (MIN_YEAR..=MAX_YEAR).contains(&date.year()) => {
                Some(date)
            }
            Ok(date) if text.len() == 10 => {
                self.err(
                    field,
                    d.span.clone(),
                    format!(
                        "{date} is out of range, expected a date between {MIN_YEAR} and {MAX_YEAR}"
                    ),
                );
                None
            }
            _ => {
                self.err(
                    field,
                    d.span.clone(),
                    format!("`{text}` is not a date, expected a date such as 2025-01-17"),
                );
                None
            }
        }
    }

    /// A point in time from a local date-time in `zone`, or an instant.
    fn when(
        &mut self,
        at: &At<When>,
        field: &str,
        zone_name: &str,
        zone: &TimeZone,
    ) -> Option<Zoned> {
        let z = self.when_any(at, field, zone_name, zone)?;
        // Far-off years overflow once shown in other zones or a day later,
        // and no issue needs them: say so rather than fail later in silence.
        if !(MIN_YEAR..=MAX_YEAR).contains(&z.year()) {
            self.err(
                field,
                at.span.clone(),
                format!(
                    "{} is out of range, expected a date between {MIN_YEAR} and {MAX_YEAR}",
                    z.date()
                ),
            );
            return None;
        }
        Some(z)
    }

    fn when_any(
        &mut self,
        at: &At<When>,
        field: &str,
        zone_name: &str,
        zone: &TimeZone,
    ) -> Option<Zoned> {
        let text = match &at.value {
            When::Literal(s) | When::Text(s) => s.trim().to_string(),
        };
        const EXPECTED: &str = "expected a local date-time such as 2025-01-17T06:00:00 \
                                (read in the issue's time_zone) or an RFC 3339 instant such as 2025-01-17T05:00:00Z";
        if let Ok(z) = text.parse::<Zoned>() {
            // jiff resolves a bracketed zone without an offset "compatibly"
            // (a gap moves forward, a fold takes the first); editors must
            // say which time they mean, as with the plain form below.
            let explicit_offset = text
                .split('[')
                .next()
                .is_some_and(|head| head.parse::<jiff::Timestamp>().is_ok());
            if explicit_offset {
                return Some(z);
            }
            let tz_name = z.time_zone().iana_name().unwrap_or(zone_name).to_string();
            let civil = text
                .split('[')
                .next()
                .and_then(|h| h.parse::<DateTime>().ok());
            return match civil {
                Some(dt) => self.resolve_local(at, field, dt, &tz_name, z.time_zone()),
                None => Some(z),
            };
        }
        if let Ok(ts) = text.parse::<jiff::Timestamp>() {
            return Some(ts.to_zoned(zone.clone()));
        }
        let has_time = text.contains('T') || text.contains(' ');
        let dt = match text.parse::<DateTime>() {
            Ok(dt) if has_time => dt,
            _ => {
                self.err(
                    field,
                    at.span.clone(),
                    format!("`{text}` is not a date-time, {EXPECTED}"),
                );
                return None;
            }
        };
        self.resolve_local(at, field, dt, zone_name, zone)
    }

    /// A local date-time in a zone, refusing times that do not exist or
    /// happen twice there.
    fn resolve_local(
        &mut self,
        at: &At<When>,
        field: &str,
        dt: DateTime,
        zone_name: &str,
        zone: &TimeZone,
    ) -> Option<Zoned> {
        let amb = zone.to_ambiguous_zoned(dt);
        match amb.offset() {
            AmbiguousOffset::Unambiguous { .. } => match amb.unambiguous() {
                Ok(z) => Some(z),
                Err(_) => {
                    self.err(
                        field,
                        at.span.clone(),
                        format!(
                            "{dt} in {zone_name} is out of range, expected a date between {MIN_YEAR} and {MAX_YEAR}"
                        ),
                    );
                    None
                }
            },
            AmbiguousOffset::Gap { before, after } => {
                self.err(
                    field,
                    at.span.clone(),
                    format!(
                        "{dt} does not exist in {zone_name}: clocks jump from UTC{before} to UTC{after} that night; \
                         expected a time outside the daylight-saving gap"
                    ),
                );
                None
            }
            AmbiguousOffset::Fold { before, after } => {
                self.err(
                    field,
                    at.span.clone(),
                    format!(
                        "{dt} happens twice in {zone_name} (clocks go back from UTC{before} to UTC{after}); \
                         expected an RFC 3339 time with an offset, e.g. {dt}{before}"
                    ),
                );
                None
            }
        }
    }

    fn body(&mut self, raw: &RawBody, field: &str, within: &Range<usize>) -> Option<Body> {
        let (source, file, offset_base): (String, Arc<SourceFile>, Option<usize>) =
            match (&raw.inline, &raw.file) {
                (Some(_), Some(f)) => {
                    self.err(
                        &format!("{field}_file"),
                        f.span.clone(),
                        "both `body` and `body_file` are given, expected only one",
                    );
                    return None;
                }
                (None, None) if self.reported(field) || self.reported(&format!("{field}_file")) => {
                    return None;
                }
                (None, None) => {
                    self.err(
                        field,
                        within.clone(),
                        format!(
                            "missing `{}`, expected `body = \"…\"` or `body_file = \"file.md\"`",
                            leaf(field)
                        ),
                    );
                    return None;
                }
                (Some(b), None) => {
                    self.note(field, &b.span);
                    let slice = self.cx.file.text.get(b.span.clone()).unwrap_or_default();
                    let base = slice.find(b.value.as_str()).map(|i| b.span.start + i);
                    (b.value.clone(), Arc::clone(self.cx.file), base)
                }
                (None, Some(f)) => self.body_file(f, field)?,
            };
        let (body, problems) = markdown::parse(&source);
        for p in problems {
            let span = match offset_base {
                Some(base) => Some(base + p.span.start..base + p.span.end),
                None => raw.inline.as_ref().map(|b| b.span.clone()),
            };
            let d = match p.severity {
                Severity::Error => Diagnostic::error(p.message),
                Severity::Warning => Diagnostic::warning(p.message),
            };
            self.out.push(d.field(field).at(&file, span));
        }
        if body.is_empty() {
            let span = raw
                .inline
                .as_ref()
                .or(raw.file.as_ref())
                .map_or(within.clone(), |a| a.span.clone());
            self.err(
                field,
                span,
                format!("`{}` is empty, expected some text", leaf(field)),
            );
            return None;
        }
        Some(body)
    }

    /// The text of a `body_file`, its source for diagnostics, and offset 0.
    fn body_file(
        &mut self,
        f: &At<String>,
        field: &str,
    ) -> Option<(String, Arc<SourceFile>, Option<usize>)> {
        let file_field = format!("{field}_file");
        self.note(&file_field, &f.span);
        if !crate::input::stays_inside(Path::new(&f.value)) {
            self.err(
                &file_field,
                f.span.clone(),
                format!(
                    "`{}` is outside the issue's folder ({}); expected a Markdown file inside it, such as articles/story.md",
                    f.value,
                    self.cx.base_dir.display()
                ),
            );
            return None;
        }
        let path = self.cx.base_dir.join(&f.value);
        let bytes = match (self.cx.read)(&path) {
            Ok(b) => b,
            Err(e) => {
                self.err(
                    &file_field,
                    f.span.clone(),
                    format!(
                        "cannot read `{}` ({}): {e}; expected a Markdown file relative to the manifest",
                        f.value,
                        path.display()
                    ),
                );
                return None;
            }
        };
        self.body_files.push(path.clone());
        match String::from_utf8(bytes) {
            Ok(text) => {
                let sf = SourceFile::new(&path, text.clone());
                self.locations.insert(field, Arc::clone(&sf), None);
                Some((text, sf, Some(0)))
            }
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let sf = SourceFile::new(&path, lossy);
                self.out.push(
                    Diagnostic::error(format!(
                        "`{}` is not UTF-8 text (invalid byte at offset {at}), expected a UTF-8 Markdown file",
                        f.value
                    ))
                    .field(file_field)
                    .at(&sf, Some(at..at + '\u{fffd}'.len_utf8())),
                );
                None
            }
        }
    }

    fn sections(&mut self, raw: &RawIssue) -> Option<Vec<Section>> {
        let mut ok = true;
        let order = self.section_order(raw, &mut ok);
        let labels = self.section_labels(raw, &mut ok);
        let mut contents = self.section_contents(raw);
        if contents.is_empty() {
            self.err("sections", 0..0, "the issue has no sections, expected at least one of [editorial], [[articles]], [[events]], [[news]], [column], [heads], [closing]");
            return None;
        }
        for (kind, span, _) in &contents {
            self.note(kind.key(), span);
            if !order.contains(kind) {
                self.err(
                    kind.key(),
                    span.clone(),
                    format!(
                        "[{}] is written but the section order leaves it out, expected `{}` in sections.order",
                        kind.key(),
                        kind.key()
                    ),
                );
                ok = false;
            }
        }
        let mut sections = Vec::new();
        for kind in order {
            let Some(pos) = contents.iter().position(|(k, _, _)| *k == kind) else {
                continue;
            };
            let (_, _, content) = contents.swap_remove(pos);
            match content {
                Some(content) => sections.push(Section {
                    kind,
                    label: labels
                        .get(&kind)
                        .cloned()
                        .unwrap_or_else(|| kind.default_label().to_string()),
                    anchor: kind.key().to_string(),
                    content,
                }),
                None => ok = false,
            }
        }
        ok.then_some(sections)
    }

    /// Order: the issue's override, else the config's, else the built-in one.
    fn section_order(&mut self, raw: &RawIssue, ok: &mut bool) -> Vec<SectionKind> {
        let Some(list) = &raw.order else {
            return self.cx.config.section_order();
        };
        let mut kinds = Vec::new();
        for item in &list.value {
            match SectionKind::from_key(&item.value) {
                Some(k) if !kinds.contains(&k) => kinds.push(k),
                Some(_) => {
                    self.err(
                        "sections.order",
                        item.span.clone(),
                        format!(
                            "`{}` is listed twice, expected each section once",
                            item.value
                        ),
                    );
                    *ok = false;
                }
                None => {
                    self.unknown_section("sections.order", item);
                    *ok = false;
                }
            }
        }
        kinds
    }

    /// Headings: the language's built-in ones, then the config's (for the
    /// main edition `[sections.labels]`, for a translation its
    /// `[newsletter.editions.<language>]`), then the issue's.
    fn section_labels(&mut self, raw: &RawIssue, ok: &mut bool) -> HashMap<SectionKind, String> {
        let cfg = self.cx.config;
        let configured = match self.cx.edition {
            None => Some(&cfg.sections.labels),
            Some(lang) => cfg.newsletter.editions.get(lang).map(|e| &e.labels),
        };
        let builtin = strings::for_language(&self.language).labels;
        let mut labels: HashMap<SectionKind, String> = builtin
            .iter()
            .chain(configured.into_iter().flatten())
            .filter_map(|(k, v)| SectionKind::from_key(k).map(|k| (k, v.clone())))
            .collect();
        for (key, label) in &raw.labels {
            match SectionKind::from_key(&key.value) {
                Some(k) => {
                    if let Some(l) = self.line_text(
                        label,
                        &format!("sections.labels.{}", key.value),
                        "a section heading",
                    ) {
                        labels.insert(k, l);
                    }
                }
                None => {
                    self.unknown_section("sections.labels", key);
                    *ok = false;
                }
            }
        }
        labels
    }

    /// Every section written, in manifest order, validated (`None` content
    /// when it has errors).
    fn section_contents(
        &mut self,
        raw: &RawIssue,
    ) -> Vec<(SectionKind, Range<usize>, Option<SectionContent>)> {
        let mut anchors: HashMap<String, (String, Range<usize>)> = HashMap::new();
        for k in SectionKind::ALL {
            anchors.insert(
                k.key().to_string(),
                (format!("the {} section", k.key()), 0..0),
            );
        }
        let mut contents = Vec::new();
        let mut add = |kind, span: &Range<usize>, c| contents.push((kind, span.clone(), c));
        if let Some((span, ed)) = &raw.editorial {
            add(
                SectionKind::Editorial,
                span,
                self.editorial(ed, span).map(SectionContent::Editorial),
            );
        }
        if let Some((span, list)) = &raw.articles {
            let c = self.articles(list, span, &mut anchors);
            add(SectionKind::Articles, span, c.map(SectionContent::Articles));
        }
        if let Some((span, list)) = &raw.events {
            add(
                SectionKind::Events,
                span,
                self.events(list, span).map(SectionContent::Events),
            );
        }
        if let Some((span, list)) = &raw.news {
            let c = self.news(list, span, &mut anchors);
            add(SectionKind::News, span, c.map(SectionContent::News));
        }
        if let Some((span, col)) = &raw.column {
            add(
                SectionKind::Column,
                span,
                self.column(col, span).map(SectionContent::Column),
            );
        }
        if let Some((span, heads)) = &raw.heads {
            add(
                SectionKind::Heads,
                span,
                self.heads(heads, span).map(SectionContent::Heads),
            );
        }
        if let Some((span, closing)) = &raw.closing {
            let c = self.closing(closing, span);
            add(SectionKind::Closing, span, c.map(SectionContent::Closing));
        }
        contents
    }

    fn unknown_section(&mut self, field: &str, item: &At<String>) {
        let keys = SectionKind::ALL.map(SectionKind::key);
        let mut d = Diagnostic::error(format!(
            "unknown section `{}`, expected one of {}",
            item.value,
            keys.join(", ")
        ))
        .field(field)
        .at(self.cx.file, Some(item.span.clone()));
        if let Some(s) = closest(&item.value, keys) {
            d = d.help(format!("did you mean `{s}`?"));
        }
        self.out.push(d);
    }

    fn editorial(&mut self, ed: &RawEditorial, span: &Range<usize>) -> Option<Editorial> {
        let author = self.text(&ed.author, "editorial.author", span, "the editor's name");
        let signature = self.opt_text(&ed.signature, "editorial.signature", "a sign-off line");
        let body = self.body(&ed.body, "editorial.body", span);
        Some(Editorial {
            author: author?,
            body: body?,
            signature,
        })
    }

    fn articles(
        &mut self,
        list: &[RawArticle],
        span: &Range<usize>,
        anchors: &mut HashMap<String, (String, Range<usize>)>,
    ) -> Option<Vec<Article>> {
        if list.is_empty() {
            self.err(
                "articles",
                span.clone(),
                "the articles section is empty, expected at least one [[articles]] entry",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, a) in list.iter().enumerate() {
            let f = |k: &str| format!("articles[{}].{k}", i + 1);
            let kicker = self.text(
                &a.kicker,
                &f("kicker"),
                &a.span,
                "a kicker such as \"Analysis\" or \"Feature\"",
            );
            let title = self.text(&a.title, &f("title"), &a.span, "the headline");
            let teaser = self.text(
                &a.teaser,
                &f("teaser"),
                &a.span,
                "one or two sentences for the table of contents",
            );
            let author = self.text(&a.author, &f("author"), &a.span, "the author's name");
            let body = self.body(&a.body, &f("body"), &a.span);
            let anchor = title
                .as_ref()
                .and_then(|t| self.anchor(t, "", a.title.as_ref(), &f("title"), anchors));
            match (kicker, title, teaser, author, body, anchor) {
                (
                    Some(kicker),
                    Some(title),
                    Some(teaser),
                    Some(author),
                    Some(body),
                    Some(anchor),
                ) => {
                    out.push(Article {
                        kicker,
                        title,
                        teaser,
                        author,
                        body,
                        anchor,
                    });
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A unique anchor for a title; a clash is an error at the later title.
    fn anchor(
        &mut self,
        title: &str,
        prefix: &str,
        at: Option<&At<String>>,
        field: &str,
        anchors: &mut HashMap<String, (String, Range<usize>)>,
    ) -> Option<String> {
        let base = slugify(title);
        let anchor = if base.is_empty() {
            format!("{prefix}item-{}", anchors.len() + 1)
        } else {
            format!("{prefix}{base}")
        };
        let span = at.map_or(0..0, |a| a.span.clone());
        if let Some((other, other_span)) = anchors.get(&anchor) {
            let place = if other_span.is_empty() {
                String::new()
            } else {
                format!(" (line {})", self.cx.file.line_col(other_span.start).0)
            };
            self.err(
                field,
                span,
                format!(
                    "the title “{title}” gives the same anchor `#{anchor}` as {other}{place}; expected distinct titles"
                ),
            );
            return None;
        }
        anchors.insert(anchor.clone(), (format!("“{title}”"), span));
        Some(anchor)
    }

    fn events(&mut self, list: &[RawEvent], span: &Range<usize>) -> Option<Vec<Event>> {
        if list.is_empty() {
            self.err(
                "events",
                span.clone(),
                "the events section is empty, expected at least one [[events]] entry",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, e) in list.iter().enumerate() {
            let f = |k: &str| format!("events[{}].{k}", i + 1);
            let (zone_name, zone) = match &e.zone {
                Some(z) => match TimeZone::get(&z.value) {
                    Ok(tz) => (z.value.clone(), Some(tz)),
                    Err(_) => {
                        self.out.push(bad_zone(self.cx.file, &f("zone"), z));
                        (z.value.clone(), None)
                    }
                },
                None => (self.zone_name.clone(), Some(self.zone.clone())),
            };
            let start = match (&e.start, zone) {
                (None, _) => {
                    self.err(
                        &f("start"),
                        e.span.clone(),
                        "missing `start`, expected a date-time such as 2025-01-23T11:00:00",
                    );
                    None
                }
                (Some(s), Some(tz)) => {
                    self.note(&f("start"), &s.span);
                    self.when(s, &f("start"), &zone_name, &tz)
                }
                (Some(_), None) => None,
            };
            let organizer = self.text(&e.organizer, &f("organizer"), &e.span, "who runs the event");
            let kind = self.text(
                &e.kind,
                &f("kind"),
                &e.span,
                "a kind such as \"Webinar\" or \"Conference\"",
            );
            let title = self.text(&e.title, &f("title"), &e.span, "the event's title");
            let url = self.url(&e.url, &f("url"), &e.span);
            match (start, organizer, kind, title, url) {
                (Some(start), Some(organizer), Some(kind), Some(title), Some(url)) => {
                    out.push((
                        i,
                        Event {
                            start,
                            organizer,
                            kind,
                            title,
                            url,
                        },
                    ));
                }
                _ => ok = false,
            }
        }
        if !ok {
            return None;
        }
        // Readers see events in time order; lints that name `events[n]`
        // afterwards must still point at the event's own lines.
        out.sort_by_key(|(_, e)| e.start.timestamp());
        let order: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
        self.locations.reorder("events", &order);
        Some(out.into_iter().map(|(_, e)| e).collect())
    }

    fn news(
        &mut self,
        list: &[RawNews],
        span: &Range<usize>,
        anchors: &mut HashMap<String, (String, Range<usize>)>,
    ) -> Option<Vec<NewsItem>> {
        if list.is_empty() {
            self.err(
                "news",
                span.clone(),
                "the news section is empty, expected at least one [[news]] entry",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, n) in list.iter().enumerate() {
            let f = |k: &str| format!("news[{}].{k}", i + 1);
            let title = self.text(&n.title, &f("title"), &n.span, "the headline");
            let source = self.text(
                &n.source,
                &f("source"),
                &n.span,
                "agency or author initials such as rtr, grz or rtr/grz",
            );
            if let (Some(s), Some(at)) = (&source, &n.source)
                && !s
                    .split('/')
                    .all(|p| !p.is_empty() && p.chars().all(char::is_alphanumeric))
            {
                self.warn(
                    &f("source"),
                    at.span.clone(),
                    format!("`{s}` does not look like initials, expected e.g. rtr, grz or rtr/grz"),
                );
            }
            let body = self.body(&n.body, &f("body"), &n.span);
            let anchor = title
                .as_ref()
                .and_then(|t| self.anchor(t, "news-", n.title.as_ref(), &f("title"), anchors));
            match (title, source, body, anchor) {
                (Some(title), Some(source), Some(body), Some(anchor)) => {
                    out.push(NewsItem {
                        title,
                        body,
                        source,
                        anchor,
                    });
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn column(&mut self, c: &RawColumn, span: &Range<usize>) -> Option<Column> {
        let kicker = self.text(
            &c.kicker,
            "column.kicker",
            span,
            "the column's name, e.g. \"China Perspective\"",
        );
        let title = self.text(&c.title, "column.title", span, "the headline");
        let author = self.text(&c.author, "column.author", span, "the columnist's name");
        let body = self.body(&c.body, "column.body", span);
        Some(Column {
            kicker: kicker?,
            title: title?,
            author: author?,
            body: body?,
        })
    }

    fn heads(&mut self, h: &RawHeads, span: &Range<usize>) -> Option<Heads> {
        if h.people.is_empty() {
            self.err(
                "heads.people",
                span.clone(),
                "the heads section is empty, expected at least one [[heads.people]] entry",
            );
        }
        let mut people = Vec::new();
        let mut ok = !h.people.is_empty();
        for (i, p) in h.people.iter().enumerate() {
            let f = |k: &str| format!("heads.people[{}].{k}", i + 1);
            let name = self.text(&p.name, &f("name"), &p.span, "the person's name");
            let role = self.opt_text(&p.role, &f("role"), "the new role");
            let organisation =
                self.opt_text(&p.organisation, &f("organisation"), "the organisation");
            let body = self.body(&p.body, &f("body"), &p.span);
            match (name, body) {
                (Some(name), Some(body)) => people.push(Person {
                    name,
                    role,
                    organisation,
                    body,
                }),
                _ => ok = false,
            }
        }
        let call_to_action = match &h.call_to_action {
            Some(_) => {
                let raw = RawBody {
                    inline: h.call_to_action.clone(),
                    file: None,
                };
                match self.body(&raw, "heads.call_to_action", span) {
                    Some(b) => b,
                    None => {
                        ok = false;
                        Body::default()
                    }
                }
            }
            None => Body::default(),
        };
        ok.then_some(Heads {
            people,
            call_to_action,
        })
    }

    fn closing(&mut self, c: &RawClosing, span: &Range<usize>) -> Option<Closing> {
        let title = self.text(&c.title, "closing.title", span, "the headline");
        let body = self.body(&c.body, "closing.body", span);
        let mut image_ok = true;
        let image = c.image.as_ref().and_then(|(ispan, img)| {
            self.note("closing.image", ispan);
            let url = self.text(&img.url, "closing.image.url", ispan, "the image's https address");
            let url = url.and_then(|u| {
                let at = img.url.as_ref().map_or(ispan.clone(), |a| a.span.clone());
                if !u.to_ascii_lowercase().starts_with("https://") || markdown::check_url(&u).is_err() {
                    self.err("closing.image.url", at, format!("`{u}` is not an https address, expected https://… (mail clients block others)"));
                    None
                } else {
                    Some(u)
                }
            });
            let alt = self.text(&img.alt, "closing.image.alt", ispan, "alt text describing the image for readers with images off");
            let mut dim = |v: &Option<At<i64>>, name: &str| -> Option<u32> {
                let at = v.as_ref()?;
                match u32::try_from(at.value) {
                    Ok(n) if (1..=4000).contains(&n) => Some(n),
                    _ => {
                        self.err(&format!("closing.image.{name}"), at.span.clone(), format!("{} is not a size in pixels, expected 1 to 4000", at.value));
                        image_ok = false;
                        None
                    }
                }
            };
            let width = dim(&img.width, "width");
            let height = dim(&img.height, "height");
            match (url, alt) {
                (Some(url), Some(alt)) => Some(Image { url, alt, width, height }),
                _ => {
                    image_ok = false;
                    None
                }
            }
        });
        if !image_ok {
            return None;
        }
        Some(Closing {
            title: title?,
            body: body?,
            image,
        })
    }

    fn publisher(&mut self, slug: &str, newsletter: &str) -> Option<Publisher> {
        let cfg = self.cx.config;
        let config_file = SourceFile::new(&cfg.source, "");
        let words = self.words(newsletter);
        let (salutation, problems) = markdown::parse_inline(&words.salutation);
        for p in problems {
            self.out.push(
                Diagnostic::error(p.message)
                    .field("newsletter.salutation")
                    .at(&config_file, None),
            );
        }
        let event_zones = cfg
            .newsletter
            .event_zones
            .iter()
            .filter_map(|z| TimeZone::get(z).ok())
            .collect();
        // Keyed by the name the zone itself reports, which is what the
        // renderers look up, whatever case the config spelt it in.
        let edition_zones = self
            .cx
            .edition
            .and_then(|lang| cfg.newsletter.editions.get(lang))
            .map(|e| e.zone_labels.iter().collect::<Vec<_>>())
            .unwrap_or_default();
        // The main edition's names are in its own language, so a
        // translation uses only its own, else the language's CLDR name.
        let main_zones: Vec<(&String, &String)> = match self.cx.edition {
            Some(_) => Vec::new(),
            None => cfg
                .newsletter
                .zone_labels
                .iter()
                .map(|(z, l)| (z.get_ref(), l.get_ref()))
                .collect(),
        };
        let zone_labels = main_zones
            .into_iter()
            .chain(edition_zones)
            .filter_map(|(zone, label)| {
                let tz = TimeZone::get(zone).ok()?;
                Some((tz.iana_name()?.to_string(), label.trim().to_string()))
            })
            .collect();
        let stylesheet = self.stylesheet()?;
        Some(Publisher {
            postal_address: cfg.newsletter.postal_address.clone(),
            reason: words.reason,
            salutation,
            // A translation's page is in its language's folder of the
            // archive (`<base>/de/<slug>/`), beside the main edition's.
            web_url: match self.cx.edition {
                Some(lang) => format!(
                    "{}/{lang}/{}/",
                    cfg.newsletter.archive_base_url.trim_end_matches('/'),
                    slug
                ),
                None => format!(
                    "{}/{}/",
                    cfg.newsletter.archive_base_url.trim_end_matches('/'),
                    slug
                ),
            },
            event_zones,
            zone_labels,
            stylesheet,
            words: words.words,
        })
    }

    /// The edition's strings: built in for its language, the reason and
    /// greeting from the config (`[newsletter]` for the main edition,
    /// `[newsletter.editions.<language>]` for a translation) where it has
    /// them.
    fn words(&self, newsletter: &str) -> strings::Strings {
        let cfg = &self.cx.config.newsletter;
        let mut s = strings::for_language(&self.language);
        s.reason = s.reason.replace("{newsletter}", newsletter);
        match self.cx.edition {
            None => {
                s.reason.clone_from(&cfg.reason);
                s.salutation.clone_from(&cfg.salutation);
            }
            Some(lang) => {
                if let Some(e) = cfg.editions.get(lang) {
                    s.reason = e.reason.clone().unwrap_or(s.reason);
                    s.salutation = e.salutation.clone().unwrap_or(s.salutation);
                }
            }
        }
        s
    }

    /// The email's stylesheet: the configured file, else
    /// `templates/email.css` beside the config, else the built-in copy.
    fn stylesheet(&mut self) -> Option<String> {
        use crate::compose::stylesheet::{DEFAULT_STYLESHEET, prepare_stylesheet};
        let cfg = self.cx.config;
        let (path, required) = match &cfg.newsletter.stylesheet {
            Some(p) => (cfg.resolve(p), true),
            None => (cfg.resolve(Path::new("templates/email.css")), false),
        };
        let text = match (self.cx.read)(&path) {
            Ok(bytes) => {
                self.body_files.push(path.clone());
                match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(_) => {
                        self.out.push(
                            Diagnostic::error(
                                "the stylesheet is not UTF-8 text, expected a UTF-8 CSS file",
                            )
                            .field("newsletter.stylesheet")
                            .at(&SourceFile::new(&path, ""), None),
                        );
                        return None;
                    }
                }
            }
            Err(e) if required => {
                self.out.push(
                    Diagnostic::error(format!("cannot read the stylesheet: {e}"))
                        .field("newsletter.stylesheet")
                        .at(&SourceFile::new(&cfg.source, ""), None),
                );
                return None;
            }
            Err(_) => DEFAULT_STYLESHEET.to_string(),
        };
        match prepare_stylesheet(&text) {
            Ok(css) => Some(css),
            Err(why) => {
                self.out.push(
                    Diagnostic::error(format!("the email stylesheet cannot be used: {why}"))
                        .field("newsletter.stylesheet")
                        .at(&SourceFile::new(&path, text), None),
                );
                None
            }
        }
    }
}

/// Years an issue's dates may fall in.
const MIN_YEAR: i16 = 1970;
/// See [`MIN_YEAR`].
const MAX_YEAR: i16 = 2200;

fn leaf(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

/// Characters that take no space and have no use in a one-line field
/// (zero-width joiners stay: emoji and several scripts need them).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}' | '\u{180e}' | '\u{200b}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
    )
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// True for names usable as file and folder names.
pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A URL fragment from a title: ASCII letters and digits joined by `-`.
pub fn slugify(title: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in title.chars() {
        let c = fold_latin(c);
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
    }
    out.truncate(60);
    out.trim_end_matches('-').to_string()
}

fn fold_latin(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ç' | 'Ç' => 'c',
        'ñ' | 'Ñ' => 'n',
        'ß' => 's',
        c => c,
    }
}

/// Used by lints: section keys present in a set.
pub fn present_kinds(issue: &Issue) -> HashSet<SectionKind> {
    issue.sections.iter().map(|s| s.kind).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_fold_accents_and_drop_cjk() {
        assert_eq!(
            slugify("Chinese money for VW’s Osnabrück plant?"),
            "chinese-money-for-vw-s-osnabruck-plant"
        );
        assert_eq!(slugify("小红书"), "");
    }
}
