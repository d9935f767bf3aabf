//! The manifest as written: values with their byte spans, types checked,
//! unknown keys reported, nothing else yet.
//!
//! A small reader walks the spanned TOML tree instead of serde so that every
//! problem (missing key, wrong type, unknown key) is collected in one pass,
//! and so that the keys a table accepts are exactly the keys the reader asks
//! for: the list used for "did you mean" can never drift from the code.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, closest};
use crate::model::{BlockRef, SectionKind};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    /// The value.
    pub value: T,
    /// Byte range of the value in the manifest.
    pub span: Range<usize>,
}

/// A TOML date, time or date-time as written (`2025-01-17`,
/// `2025-01-17T06:00:00`, `2025-01-17T05:00:00Z`).
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// A TOML datetime literal, in its canonical text form.
    Literal(String),
    /// A string such as `2025-01-17T06:00:00[Europe/Berlin]`.
    Text(String),
}

/// A body given inline (`body = "…"`) or as a file (`body_file = "a.md"`).
#[derive(Debug, Clone, Default)]
pub struct RawBody {
    /// Inline Markdown.
    pub inline: Option<At<String>>,
    /// Path relative to the manifest.
    pub file: Option<At<String>>,
}

/// Issue-level keys and every section, as written.
#[derive(Debug, Clone, Default)]
pub struct RawIssue {
    /// Overrides the configured newsletter name.
    pub newsletter: Option<At<String>>,
    /// Issue number.
    pub number: Option<At<i64>>,
    /// Publication date.
    pub date: Option<At<When>>,
    /// Subject line.
    pub subject: Option<At<String>>,
    /// Inbox preview line.
    pub preheader: Option<At<String>>,
    /// Scheduled send time.
    pub send_at: Option<At<When>>,
    /// Zone for local times in this manifest.
    pub time_zone: Option<At<String>>,
    /// Language override.
    pub language: Option<At<String>>,
    /// Identifier override (default: the manifest's folder name).
    pub slug: Option<At<String>>,
    /// Section order override.
    pub order: Option<At<Vec<At<String>>>>,
    /// Section label overrides.
    pub labels: Vec<(At<String>, At<String>)>,
    /// `[editorial]`, with the span of its header.
    pub editorial: Option<(Range<usize>, RawEditorial)>,
    /// `[[articles]]`, with the span of the array.
    pub articles: Option<(Range<usize>, Vec<RawArticle>)>,
    /// `[[events]]`.
    pub events: Option<(Range<usize>, Vec<RawEvent>)>,
    /// `[[news]]`.
    pub news: Option<(Range<usize>, Vec<RawNews>)>,
    /// `[column]`.
    pub column: Option<(Range<usize>, RawColumn)>,
    /// `[heads]`.
    pub heads: Option<(Range<usize>, RawHeads)>,
    /// `[closing]`.
    pub closing: Option<(Range<usize>, RawClosing)>,
    /// `only_for` / `except_for` conditions, wherever they were written.
    pub audiences: Vec<RawAudience>,
}

/// `only_for = { plan = "premium" }` or `except_for = { … }` on a block:
/// each column must hold one of the values.
#[derive(Debug, Clone, Default)]
pub struct RawAudience {
    /// The block, set by the reader of its table.
    pub block: Option<BlockRef>,
    /// True for `except_for`.
    pub except: bool,
    /// Where the condition was written.
    pub span: Range<usize>,
    /// Dotted field path of the condition, for messages.
    pub field: String,
    /// Column name and the values that match.
    pub columns: Vec<(At<String>, Vec<At<String>>)>,
}

/// `[editorial]` as written.
#[derive(Debug, Clone, Default)]
pub struct RawEditorial {
    /// Author.
    pub author: Option<At<String>>,
    /// Sign-off line.
    pub signature: Option<At<String>>,
    /// The letter.
    pub body: RawBody,
}

/// One `[[articles]]` entry as written.
#[derive(Debug, Clone, Default)]
pub struct RawArticle {
    /// Span of the entry.
    pub span: Range<usize>,
    /// Kicker.
    pub kicker: Option<At<String>>,
    /// Title.
    pub title: Option<At<String>>,
    /// Teaser.
    pub teaser: Option<At<String>>,
    /// Author.
    pub author: Option<At<String>>,
    /// Text.
    pub body: RawBody,
}

/// One `[[events]]` entry as written.
#[derive(Debug, Clone, Default)]
pub struct RawEvent {
    /// Span of the entry.
    pub span: Range<usize>,
    /// Start.
    pub start: Option<At<When>>,
    /// Zone of a local start.
    pub zone: Option<At<String>>,
    /// Organiser.
    pub organizer: Option<At<String>>,
    /// Kind (Webinar, ...).
    pub kind: Option<At<String>>,
    /// Title.
    pub title: Option<At<String>>,
    /// Link.
    pub url: Option<At<String>>,
}

/// One `[[news]]` entry as written.
#[derive(Debug, Clone, Default)]
pub struct RawNews {
    /// Span of the entry.
    pub span: Range<usize>,
    /// Title.
    pub title: Option<At<String>>,
    /// Source initials.
    pub source: Option<At<String>>,
    /// Text.
    pub body: RawBody,
}

/// `[column]` as written.
#[derive(Debug, Clone, Default)]
pub struct RawColumn {
    /// Column name.
    pub kicker: Option<At<String>>,
    /// Title.
    pub title: Option<At<String>>,
    /// Columnist.
    pub author: Option<At<String>>,
    /// Text.
    pub body: RawBody,
}

/// `[heads]` as written.
#[derive(Debug, Clone, Default)]
pub struct RawHeads {
    /// Call to action (inline Markdown).
    pub call_to_action: Option<At<String>>,
    /// `[[heads.people]]`.
    pub people: Vec<RawPerson>,
}

/// One `[[heads.people]]` entry as written.
#[derive(Debug, Clone, Default)]
pub struct RawPerson {
    /// Span of the entry.
    pub span: Range<usize>,
    /// Name.
    pub name: Option<At<String>>,
    /// Role.
    pub role: Option<At<String>>,
    /// Organisation.
    pub organisation: Option<At<String>>,
    /// Note.
    pub body: RawBody,
}

/// `[closing]` as written.
#[derive(Debug, Clone, Default)]
pub struct RawClosing {
    /// Title.
    pub title: Option<At<String>>,
    /// Text.
    pub body: RawBody,
    /// `[closing.image]`, with its span.
    pub image: Option<(Range<usize>, RawImage)>,
}

/// `[closing.image]` as written.
#[derive(Debug, Clone, Default)]
pub struct RawImage {
    /// URL.
    pub url: Option<At<String>>,
    /// Alt text.
    pub alt: Option<At<String>>,
    /// Width in pixels.
    pub width: Option<At<i64>>,
    /// Height in pixels.
    pub height: Option<At<i64>>,
}

/// Reads manifest text into a [`RawIssue`], collecting problems.
pub fn read(file: &Arc<SourceFile>, out: &mut Diagnostics) -> Option<RawIssue> {
    let root = match DeTable::parse(&file.text) {
        Ok(root) => root,
        Err(e) => {
            out.push(
                Diagnostic::error(format!(
                    "not valid TOML: {}",
                    e.message().trim().trim_end_matches('.')
                ))
                .at(file, e.span()),
            );
            return None;
        }
    };
    let span = root.span();
    let t = Table::new(file, root.get_ref(), span, "");
    let raw = read_issue(&t, out);
    t.finish(out);
    Some(raw)
}

fn read_issue(t: &Table<'_, '_>, out: &mut Diagnostics) -> RawIssue {
    let mut raw = RawIssue {
        newsletter: t.string("newsletter", out),
        number: t.integer("number", out),
        date: t.when("date", out),
        subject: t.string("subject", out),
        preheader: t.string("preheader", out),
        send_at: t.when("send_at", out),
        time_zone: t.string("time_zone", out),
        language: t.string("language", out),
        slug: t.string("slug", out),
        ..RawIssue::default()
    };
    if let Some(sections) = t.table("sections", out) {
        read_section_order(&sections, &mut raw, out);
        sections.finish(out);
    }
    raw.editorial = t.table("editorial", out).map(|ed| {
        audiences(
            &ed,
            BlockRef::Section(SectionKind::Editorial),
            &mut raw.audiences,
            out,
        );
        let v = RawEditorial {
            author: ed.string("author", out),
            signature: ed.string("signature", out),
            body: ed.body(out),
        };
        ed.finish(out);
        (ed.span.clone(), v)
    });
    read_lists(t, &mut raw, out);
    raw.column = t.table("column", out).map(|c| {
        audiences(
            &c,
            BlockRef::Section(SectionKind::Column),
            &mut raw.audiences,
            out,
        );
        let v = RawColumn {
            kicker: c.string("kicker", out),
            title: c.string("title", out),
            author: c.string("author", out),
            body: c.body(out),
        };
        c.finish(out);
        (c.span.clone(), v)
    });
    raw.heads = t
        .table("heads", out)
        .map(|h| read_heads(&h, &mut raw.audiences, out));
    raw.closing = t.table("closing", out).map(|c| {
        audiences(
            &c,
            BlockRef::Section(SectionKind::Closing),
            &mut raw.audiences,
            out,
        );
        read_closing(&c, out)
    });
    raw
}

/// The sections that are lists of tables: `[[articles]]`, `[[events]]`,
/// `[[news]]`.
fn read_lists(t: &Table<'_, '_>, raw: &mut RawIssue, out: &mut Diagnostics) {
    raw.articles = t.tables("articles", out).map(|(span, list)| {
        let items = list
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                audiences(&a, BlockRef::Article(i), &mut raw.audiences, out);
                read_article(&a, out)
            })
            .collect();
        (span, items)
    });
    raw.events = t.tables("events", out).map(|(span, list)| {
        let items = list.into_iter().map(|e| read_event(&e, out)).collect();
        (span, items)
    });
    raw.news = t.tables("news", out).map(|(span, list)| {
        let items = list
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                audiences(&n, BlockRef::News(i), &mut raw.audiences, out);
                read_news(&n, out)
            })
            .collect();
        (span, items)
    });
}

fn read_section_order(sections: &Table<'_, '_>, raw: &mut RawIssue, out: &mut Diagnostics) {
    raw.order = sections.string_array("order", out);
    if let Some(labels) = sections.table("labels", out) {
        for key in labels.keys() {
            if let Some(v) = labels.string(&key.value, out) {
                raw.labels.push((key, v));
            }
        }
        labels.finish(out);
    }
}

/// Reads `only_for` and `except_for` of a block's table.
fn audiences(
    t: &Table<'_, '_>,
    block: BlockRef,
    found: &mut Vec<RawAudience>,
    out: &mut Diagnostics,
) {
    for (key, except) in [("only_for", false), ("except_for", true)] {
        let Some(cond) = t.table(key, out) else {
            continue;
        };
        let mut a = RawAudience {
            block: Some(block),
            except,
            span: cond.span.clone(),
            field: cond.path.clone(),
            columns: Vec::new(),
        };
        for column in cond.keys() {
            if let Some(values) = cond.strings(&column.value, out) {
                a.columns.push((column, values));
            }
        }
        cond.finish(out);
        found.push(a);
    }
}

fn read_article(a: &Table<'_, '_>, out: &mut Diagnostics) -> RawArticle {
    let v = RawArticle {
        span: a.span.clone(),
        kicker: a.string("kicker", out),
        title: a.string("title", out),
        teaser: a.string("teaser", out),
        author: a.string("author", out),
        body: a.body(out),
    };
    a.finish(out);
    v
}

fn read_event(e: &Table<'_, '_>, out: &mut Diagnostics) -> RawEvent {
    let v = RawEvent {
        span: e.span.clone(),
        start: e.when("start", out),
        zone: e.string("zone", out),
        organizer: e.string("organizer", out),
        kind: e.string("kind", out),
        title: e.string("title", out),
        url: e.string("url", out),
    };
    e.finish(out);
    v
}

fn read_news(n: &Table<'_, '_>, out: &mut Diagnostics) -> RawNews {
    let v = RawNews {
        span: n.span.clone(),
        title: n.string("title", out),
        source: n.string("source", out),
        body: n.body(out),
    };
    n.finish(out);
    v
}

fn read_heads(
    h: &Table<'_, '_>,
    found: &mut Vec<RawAudience>,
    out: &mut Diagnostics,
) -> (Range<usize>, RawHeads) {
    audiences(h, BlockRef::Section(SectionKind::Heads), found, out);
    let mut v = RawHeads {
        call_to_action: h.string("call_to_action", out),
        people: Vec::new(),
    };
    if let Some((_, people)) = h.tables("people", out) {
        for (i, p) in people.into_iter().enumerate() {
            audiences(&p, BlockRef::Person(i), found, out);
            v.people.push(RawPerson {
                span: p.span.clone(),
                name: p.string("name", out),
                role: p.string("role", out),
                organisation: p.string("organisation", out),
                body: p.body(out),
            });
            p.finish(out);
        }
    }
    h.finish(out);
    (h.span.clone(), v)
}

fn read_closing(c: &Table<'_, '_>, out: &mut Diagnostics) -> (Range<usize>, RawClosing) {
    let mut v = RawClosing {
        title: c.string("title", out),
        body: c.body(out),
        image: None,
    };
    if let Some(img) = c.table("image", out) {
        v.image = Some((
            img.span.clone(),
            RawImage {
                url: img.string("url", out),
                alt: img.string("alt", out),
                width: img.integer("width", out),
                height: img.integer("height", out),
            },
        ));
        img.finish(out);
    }
    c.finish(out);
    (c.span.clone(), v)
}

/// A table being read: remembers which keys were asked for, so the rest
/// can be reported as unknown.
struct Table<'a, 'i> {
    file: &'a Arc<SourceFile>,
    table: &'a DeTable<'i>,
    span: Range<usize>,
    path: String,
    asked: RefCell<Vec<String>>,
}

impl<'a, 'i> Table<'a, 'i> {
    fn new(
        file: &'a Arc<SourceFile>,
        table: &'a DeTable<'i>,
        span: Range<usize>,
        path: &str,
    ) -> Self {
        Self {
            file,
            table,
            span,
            path: path.to_string(),
            asked: RefCell::new(Vec::new()),
        }
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.asked.borrow_mut().push(key.to_string());
        self.table.get(key)
    }

    fn type_error(
        &self,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        expected: &str,
        out: &mut Diagnostics,
    ) {
        out.push(
            Diagnostic::error(format!(
                "found {}, expected {expected}",
                article(v.get_ref().type_str())
            ))
            .field(self.field(key))
            .at(self.file, Some(v.span())),
        );
    }

    fn string(&self, key: &str, out: &mut Diagnostics) -> Option<At<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                span: v.span(),
            }),
            _ => {
                self.type_error(key, v, "a string in quotes", out);
                None
            }
        }
    }

    fn integer(&self, key: &str, out: &mut Diagnostics) -> Option<At<i64>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(value) => Some(At {
                    value,
                    span: v.span(),
                }),
                Err(_) => {
                    out.push(
                        Diagnostic::error(format!(
                            "{} is out of range, expected a whole number below 2^63",
                            i.as_str()
                        ))
                        .field(self.field(key))
                        .at(self.file, Some(v.span())),
                    );
                    None
                }
            },
            _ => {
                self.type_error(key, v, "a whole number", out);
                None
            }
        }
    }

    fn when(&self, key: &str, out: &mut Diagnostics) -> Option<At<When>> {
        let v = self.get(key)?;
        let value = match v.get_ref() {
            DeValue::Datetime(d) => When::Literal(d.to_string()),
            DeValue::String(s) => When::Text(s.to_string()),
            _ => {
                self.type_error(
                    key,
                    v,
                    "a date or date-time such as 2025-01-17T06:00:00",
                    out,
                );
                return None;
            }
        };
        Some(At {
            value,
            span: v.span(),
        })
    }

    /// A string or a list of strings.
    fn strings(&self, key: &str, out: &mut Diagnostics) -> Option<Vec<At<String>>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(vec![At {
                value: s.to_string(),
                span: v.span(),
            }]),
            DeValue::Array(_) => self.string_array(key, out).map(|a| a.value),
            _ => {
                self.type_error(key, v, "a string or a list of strings", out);
                None
            }
        }
    }

    fn string_array(&self, key: &str, out: &mut Diagnostics) -> Option<At<Vec<At<String>>>> {
        let v = self.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.type_error(key, v, "a list of strings", out);
            return None;
        };
        let mut list = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => list.push(At {
                    value: s.to_string(),
                    span: item.span(),
                }),
                _ => self.type_error(key, item, "a string in quotes", out),
            }
        }
        Some(At {
            value: list,
            span: v.span(),
        })
    }

    fn table(&self, key: &str, out: &mut Diagnostics) -> Option<Table<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => {
                let span = self.key_span(key).unwrap_or_else(|| v.span());
                Some(Table::new(self.file, t, span, &self.field(key)))
            }
            _ => {
                self.type_error(key, v, &format!("a table `[{}]`", self.field(key)), out);
                None
            }
        }
    }

    fn tables(
        &self,
        key: &str,
        out: &mut Diagnostics,
    ) -> Option<(Range<usize>, Vec<Table<'a, 'i>>)> {
        let v = self.get(key)?;
        let expected = format!("tables `[[{}]]`", self.field(key));
        let DeValue::Array(items) = v.get_ref() else {
            self.type_error(key, v, &expected, out);
            return None;
        };
        let mut list = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(t) => {
                    list.push(Table::new(
                        self.file,
                        t,
                        item.span(),
                        &format!("{}[{}]", self.field(key), i + 1),
                    ));
                }
                _ => self.type_error(key, item, &expected, out),
            }
        }
        let span = self.key_span(key).unwrap_or_else(|| v.span());
        Some((span, list))
    }

    fn body(&self, out: &mut Diagnostics) -> RawBody {
        RawBody {
            inline: self.string("body", out),
            file: self.string("body_file", out),
        }
    }

    fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(k, _)| k.span())
    }

    /// All keys of a free-form table (labels), each counted as asked for.
    fn keys(&self) -> Vec<At<String>> {
        self.table
            .iter()
            .map(|(k, _)| At {
                value: k.get_ref().to_string(),
                span: k.span(),
            })
            .collect()
    }

    /// Reports keys nobody asked for, with the closest known key.
    fn finish(&self, out: &mut Diagnostics) {
        let asked = self.asked.borrow();
        let mut known: Vec<&str> = asked.iter().map(String::as_str).collect();
        known.sort_unstable();
        known.dedup();
        let mut unknown = self
            .table
            .iter()
            .filter(|(k, _)| known.binary_search(&k.get_ref().as_ref()).is_err());
        for (k, _) in unknown.by_ref().take(MAX_UNKNOWN_KEYS) {
            let key = k.get_ref();
            let mut d = Diagnostic::error(format!(
                "unknown key `{key}` {}, expected one of: {}",
                self.place(),
                known.join(", ")
            ))
            .field(self.field(key))
            .at(self.file, Some(k.span()));
            if let Some(s) = closest(key, known.iter().copied()) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            out.push(d);
        }
        if let Some((first, _)) = unknown.next() {
            let more = 1 + unknown.count();
            out.push(
                Diagnostic::error(format!(
                    "{more} more unknown keys {}, not listed one by one (this is the first)",
                    self.place()
                ))
                .field(self.field(first.get_ref()))
                .at(self.file, Some(first.span())),
            );
        }
    }

    fn place(&self) -> String {
        if self.path.is_empty() {
            "at the top of the issue".to_string()
        } else {
            format!("in [{}]", self.path)
        }
    }
}

/// Unknown keys reported one by one per table; a manifest with thousands
/// gets a count for the rest.
const MAX_UNKNOWN_KEYS: usize = 20;

fn article(type_str: &str) -> String {
    match type_str.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_str}"),
        _ => format!("a {type_str}"),
    }
}

/// Reads a translation (`issue.de.toml`): only the text a translator
/// writes. Structure keys (times, links, images, audiences) are unknown
/// keys here, so a translation cannot make its edition drift from the main
/// one; everything not written is `None` and [`super::translation`] fills
/// the structure from the main manifest.
pub fn read_translation(file: &Arc<SourceFile>, out: &mut Diagnostics) -> Option<RawIssue> {
    let root = match DeTable::parse(&file.text) {
        Ok(root) => root,
        Err(e) => {
            out.push(
                Diagnostic::error(format!(
                    "not valid TOML: {}",
                    e.message().trim().trim_end_matches('.')
                ))
                .at(file, e.span()),
            );
            return None;
        }
    };
    let t = Table::new(file, root.get_ref(), root.span(), "");
    let mut raw = RawIssue {
        subject: t.string("subject", out),
        preheader: t.string("preheader", out),
        ..RawIssue::default()
    };
    if let Some(sections) = t.table("sections", out) {
        if let Some(labels) = sections.table("labels", out) {
            for key in labels.keys() {
                if let Some(v) = labels.string(&key.value, out) {
                    raw.labels.push((key, v));
                }
            }
            labels.finish(out);
        }
        sections.finish(out);
    }
    read_translated_sections(&t, &mut raw, out);
    t.finish(out);
    Some(raw)
}

/// Each section's translatable keys; the rest stay `None`.
fn read_translated_sections(t: &Table<'_, '_>, raw: &mut RawIssue, out: &mut Diagnostics) {
    let finish = |tb: &Table<'_, '_>, out: &mut Diagnostics| {
        tb.finish(out);
        tb.span.clone()
    };
    raw.editorial = t.table("editorial", out).map(|ed| {
        let v = RawEditorial {
            signature: ed.string("signature", out),
            body: ed.body(out),
            ..RawEditorial::default()
        };
        (finish(&ed, out), v)
    });
    raw.articles = t.tables("articles", out).map(|(span, list)| {
        let items = list
            .iter()
            .map(|a| {
                let v = RawArticle {
                    span: a.span.clone(),
                    kicker: a.string("kicker", out),
                    title: a.string("title", out),
                    teaser: a.string("teaser", out),
                    body: a.body(out),
                    ..RawArticle::default()
                };
                a.finish(out);
                v
            })
            .collect();
        (span, items)
    });
    raw.events = t.tables("events", out).map(|(span, list)| {
        let items = list
            .iter()
            .map(|e| {
                let v = RawEvent {
                    span: e.span.clone(),
                    kind: e.string("kind", out),
                    title: e.string("title", out),
                    ..RawEvent::default()
                };
                e.finish(out);
                v
            })
            .collect();
        (span, items)
    });
    raw.news = t.tables("news", out).map(|(span, list)| {
        let items = list
            .iter()
            .map(|n| {
                let v = RawNews {
                    span: n.span.clone(),
                    title: n.string("title", out),
                    body: n.body(out),
                    ..RawNews::default()
                };
                n.finish(out);
                v
            })
            .collect();
        (span, items)
    });
    read_translated_tail(t, raw, out);
}

/// `[column]`, `[heads]` and `[closing]` of a translation.
fn read_translated_tail(t: &Table<'_, '_>, raw: &mut RawIssue, out: &mut Diagnostics) {
    raw.column = t.table("column", out).map(|c| {
        let v = RawColumn {
            kicker: c.string("kicker", out),
            title: c.string("title", out),
            body: c.body(out),
            ..RawColumn::default()
        };
        c.finish(out);
        (c.span.clone(), v)
    });
    raw.heads = t.table("heads", out).map(|h| {
        let mut v = RawHeads {
            call_to_action: h.string("call_to_action", out),
            people: Vec::new(),
        };
        if let Some((_, people)) = h.tables("people", out) {
            for p in &people {
                v.people.push(RawPerson {
                    span: p.span.clone(),
                    role: p.string("role", out),
                    body: p.body(out),
                    ..RawPerson::default()
                });
                p.finish(out);
            }
        }
        h.finish(out);
        (h.span.clone(), v)
    });
    raw.closing = t.table("closing", out).map(|c| {
        let mut v = RawClosing {
            title: c.string("title", out),
            body: c.body(out),
            image: None,
        };
        if let Some(img) = c.table("image", out) {
            v.image = Some((
                img.span.clone(),
                RawImage {
                    alt: img.string("alt", out),
                    ..RawImage::default()
                },
            ));
            img.finish(out);
        }
        c.finish(out);
        (c.span.clone(), v)
    });
}
