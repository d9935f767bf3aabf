//! The validated issue: what the renderers draw, with every check passed.
//!
//! Values here are plain data. They know nothing of TOML, files, SMTP or
//! recipients; a field that the send step fills per recipient appears as an
//! [`Inline::Field`] (a merge tag) and is left to [`crate::compose::render`].

use std::collections::BTreeMap;

use jiff::Zoned;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// One issue of the newsletter, ready to render.
#[derive(Debug, Clone)]
pub struct Issue {
    /// Short name used for preview files, the outbox folder and the ledger,
    /// e.g. `2025-01-17`.
    pub slug: String,
    /// Newsletter name shown in the header, e.g. "China Brief".
    pub newsletter: String,
    /// Issue number shown in the header.
    pub number: u32,
    /// Publication date shown in the header.
    pub date: Date,
    /// The email subject.
    pub subject: String,
    /// The inbox preview line, hidden at the top of the HTML.
    pub preheader: String,
    /// BCP 47 language tag for `lang`, e.g. `en`.
    pub language: String,
    /// When a scheduled send may start, if the issue is scheduled.
    pub send_at: Option<Zoned>,
    /// The sections in the order readers see them.
    pub sections: Vec<Section>,
    /// Publisher details for header and footer, taken from `config.toml`.
    pub publisher: Publisher,
}

/// Who publishes the newsletter and how its footer reads.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// Postal address required in bulk mail footers.
    pub postal_address: String,
    /// Why the reader gets this email ("You subscribed at ...").
    pub reason: String,
    /// Greeting line at the top, may hold merge tags such as `{{ name }}`.
    pub salutation: Vec<Inline>,
    /// Link to this issue's web version ("view in browser").
    pub web_url: String,
    /// Zones in which every event's start is shown, the first one leading.
    pub event_zones: Vec<TimeZone>,
    /// Names readers see for some of those zones ("Beijing time"), by IANA
    /// name; a zone without one shows its unambiguous default.
    pub zone_labels: BTreeMap<String, String>,
    /// Progressive-enhancement CSS for the email's `<style>` block, checked
    /// and without comments (from `templates/email.css`).
    pub stylesheet: String,
    /// briefing's own words in the edition's language.
    pub words: Words,
}

/// The words briefing itself adds around an issue, in one language
/// (`templates/strings/<language>.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Words {
    /// Heading of the table of contents.
    pub in_this_issue: String,
    /// Link to the web version.
    pub view_in_browser: String,
    /// Link from an archive page to the archive's index.
    pub all_issues: String,
    /// Word before the issue number in the masthead.
    pub issue: String,
    /// Word before an author's name in a byline.
    pub by: String,
    /// Link to an event's iCalendar file.
    pub add_to_calendar: String,
    /// Footer link to unsubscribe.
    pub unsubscribe: String,
    /// Archive link to subscribe.
    pub subscribe: String,
    /// Stands in the text part for an image without alt text.
    pub image: String,
}

/// A section as readers see it: a label, an anchor and its content.
#[derive(Debug, Clone)]
pub struct Section {
    /// Which part of the issue this is.
    pub kind: SectionKind,
    /// The heading shown to readers, e.g. "Dessert".
    pub label: String,
    /// Anchor id used by the table of contents, e.g. `news`.
    pub anchor: String,
    /// What the section holds.
    pub content: SectionContent,
}

/// The kinds of section an issue can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// Letter from the editor.
    Editorial,
    /// Long articles (Analysis, Feature).
    Articles,
    /// Events calendar.
    Events,
    /// Short news items.
    News,
    /// Opinion column.
    Column,
    /// Personnel notes.
    Heads,
    /// The closing item ("Dessert").
    Closing,
}

impl SectionKind {
    /// Every kind, in the default reading order.
    pub const ALL: [SectionKind; 7] = [
        SectionKind::Editorial,
        SectionKind::Articles,
        SectionKind::Events,
        SectionKind::News,
        SectionKind::Column,
        SectionKind::Heads,
        SectionKind::Closing,
    ];

    /// The key used in manifests and config (`editorial`, `articles`, ...).
    pub fn key(self) -> &'static str {
        match self {
            SectionKind::Editorial => "editorial",
            SectionKind::Articles => "articles",
            SectionKind::Events => "events",
            SectionKind::News => "news",
            SectionKind::Column => "column",
            SectionKind::Heads => "heads",
            SectionKind::Closing => "closing",
        }
    }

    /// The kind for a manifest key.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == key)
    }

    /// The label used when neither config nor issue names one.
    pub fn default_label(self) -> &'static str {
        match self {
            SectionKind::Editorial => "Editorial",
            SectionKind::Articles => "Articles",
            SectionKind::Events => "Events",
            SectionKind::News => "News",
            SectionKind::Column => "Column",
            SectionKind::Heads => "Heads",
            SectionKind::Closing => "Dessert",
        }
    }
}

/// Which block a condition restricts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockRef {
    /// A whole single-table section (`[editorial]`, `[column]`, `[heads]`,
    /// `[closing]`).
    Section(SectionKind),
    /// Article `n` (0-based) of `[[articles]]`.
    Article(usize),
    /// News item `n` (0-based).
    News(usize),
    /// Person `n` (0-based) of `[[heads.people]]`.
    Person(usize),
}

/// Who a block is for: `only_for` shows it to readers whose columns hold
/// one of the listed values (every listed column must match),
/// `except_for` to everyone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    /// The block.
    pub block: BlockRef,
    /// True for `except_for`.
    pub except: bool,
    /// Column name and the values that match (compared without case).
    pub columns: Vec<(String, Vec<String>)>,
    /// Where it was written, as a dotted field path (`articles[2].only_for`).
    pub field: String,
}

impl Audience {
    /// True when a reader with these fields sees the block.
    pub fn shows(&self, reader: &dyn MergeFields) -> bool {
        let matches = self.columns.iter().all(|(column, values)| {
            reader.field(column).is_some_and(|v| {
                values
                    .iter()
                    .any(|want| want.trim().eq_ignore_ascii_case(v.trim()))
            })
        });
        matches != self.except
    }
}

/// What a section holds.
#[derive(Debug, Clone)]
pub enum SectionContent {
    /// The editor's letter.
    Editorial(Editorial),
    /// One or more long articles.
    Articles(Vec<Article>),
    /// Calendar entries, sorted by start.
    Events(Vec<Event>),
    /// Short items.
    News(Vec<NewsItem>),
    /// The opinion column.
    Column(Column),
    /// Personnel notes.
    Heads(Heads),
    /// The closing item.
    Closing(Closing),
}

/// The editor's letter.
#[derive(Debug, Clone)]
pub struct Editorial {
    /// Who wrote it.
    pub author: String,
    /// The letter.
    pub body: Body,
    /// Sign-off line under the letter, e.g. "Christiane Kuhrt, Editor".
    pub signature: Option<String>,
}

/// A long article.
#[derive(Debug, Clone)]
pub struct Article {
    /// Label above the title: "Analysis", "Feature".
    pub kicker: String,
    /// Headline.
    pub title: String,
    /// One or two sentences, used in the table of contents.
    pub teaser: String,
    /// Byline.
    pub author: String,
    /// The text.
    pub body: Body,
    /// Anchor id, unique in the issue, derived from the title.
    pub anchor: String,
}

/// A calendar entry.
#[derive(Debug, Clone)]
pub struct Event {
    /// Start, in the zone the organiser announced it in.
    pub start: Zoned,
    /// Who runs it.
    pub organizer: String,
    /// "Webinar", "Conference", ...
    pub kind: String,
    /// What it is called.
    pub title: String,
    /// Where to read more or register.
    pub url: String,
}

/// A short news item closed by its source initials.
#[derive(Debug, Clone)]
pub struct NewsItem {
    /// Headline.
    pub title: String,
    /// Two or three paragraphs.
    pub body: Body,
    /// Agency or author initials: `rtr`, `grz`, `rtr/grz`.
    pub source: String,
    /// Anchor id, unique in the issue.
    pub anchor: String,
}

/// The opinion column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name, e.g. "China Perspective".
    pub kicker: String,
    /// Headline.
    pub title: String,
    /// Columnist.
    pub author: String,
    /// The text.
    pub body: Body,
}

/// Personnel notes and the section's call to action.
#[derive(Debug, Clone)]
pub struct Heads {
    /// One entry per person.
    pub people: Vec<Person>,
    /// Closing line asking readers for news, e.g. with a mailto link.
    pub call_to_action: Body,
}

/// One personnel note.
#[derive(Debug, Clone)]
pub struct Person {
    /// Full name.
    pub name: String,
    /// New role, if given.
    pub role: Option<String>,
    /// Organisation, if given.
    pub organisation: Option<String>,
    /// The note.
    pub body: Body,
}

/// The closing item ("Dessert").
#[derive(Debug, Clone)]
pub struct Closing {
    /// Headline.
    pub title: String,
    /// One paragraph, usually.
    pub body: Body,
    /// A photo, if any.
    pub image: Option<Image>,
}

/// An image hosted on the web (never embedded).
#[derive(Debug, Clone)]
pub struct Image {
    /// Absolute https URL.
    pub url: String,
    /// Text shown when images are off; required.
    pub alt: String,
    /// Width in CSS pixels, if given.
    pub width: Option<u32>,
    /// Height in CSS pixels, if given.
    pub height: Option<u32>,
}

/// Rich text parsed from Markdown: blocks of inline runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Body {
    /// The paragraphs, lists and quotes, in order.
    pub blocks: Vec<Block>,
}

impl Body {
    /// True when the body holds no visible text.
    pub fn is_empty(&self) -> bool {
        self.blocks.iter().all(Block::is_empty)
    }

    /// Every link in the body, in reading order.
    pub fn links(&self) -> Vec<&Link> {
        let mut out = Vec::new();
        for b in &self.blocks {
            b.collect_links(&mut out);
        }
        out
    }

    /// Every merge tag in the body, in reading order.
    pub fn fields(&self) -> Vec<&Field> {
        let mut out = Vec::new();
        for b in &self.blocks {
            b.collect_fields(&mut out);
        }
        out
    }
}

/// A block of rich text.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A paragraph.
    Paragraph(Vec<Inline>),
    /// A subheading inside a body (level 1-6 as written; renderers demote).
    Heading(u8, Vec<Inline>),
    /// A bulleted (`ordered: false`) or numbered list; each item is blocks.
    List {
        /// Numbered rather than bulleted.
        ordered: bool,
        /// The items.
        items: Vec<Vec<Block>>,
    },
    /// A block quotation.
    Quote(Vec<Block>),
    /// Preformatted text.
    Code(String),
    /// A thematic break.
    Rule,
}

impl Block {
    fn is_empty(&self) -> bool {
        match self {
            Block::Paragraph(inl) | Block::Heading(_, inl) => inlines_empty(inl),
            Block::List { items, .. } => items.iter().all(|i| i.iter().all(Block::is_empty)),
            Block::Quote(blocks) => blocks.iter().all(Block::is_empty),
            Block::Code(s) => s.trim().is_empty(),
            Block::Rule => true,
        }
    }

    fn collect_links<'a>(&'a self, out: &mut Vec<&'a Link>) {
        match self {
            Block::Paragraph(inl) | Block::Heading(_, inl) => collect_inline_links(inl, out),
            Block::List { items, .. } => items.iter().flatten().for_each(|b| b.collect_links(out)),
            Block::Quote(blocks) => blocks.iter().for_each(|b| b.collect_links(out)),
            Block::Code(_) | Block::Rule => {}
        }
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a Field>) {
        match self {
            Block::Paragraph(inl) | Block::Heading(_, inl) => collect_inline_fields(inl, out),
            Block::List { items, .. } => items.iter().flatten().for_each(|b| b.collect_fields(out)),
            Block::Quote(blocks) => blocks.iter().for_each(|b| b.collect_fields(out)),
            Block::Code(_) | Block::Rule => {}
        }
    }
}

fn inlines_empty(inl: &[Inline]) -> bool {
    inl.iter().all(|i| match i {
        Inline::Text(t) | Inline::Code(t) => t.trim().is_empty(),
        Inline::Emphasis(c) | Inline::Strong(c) => inlines_empty(c),
        Inline::Link(l) => inlines_empty(&l.content),
        Inline::LineBreak => true,
        Inline::Field(_) => false,
    })
}

/// Links found in a run of inlines, in reading order.
pub fn collect_inline_links<'a>(inl: &'a [Inline], out: &mut Vec<&'a Link>) {
    for i in inl {
        match i {
            Inline::Link(l) => {
                out.push(l);
                collect_inline_links(&l.content, out);
            }
            Inline::Emphasis(c) | Inline::Strong(c) => collect_inline_links(c, out),
            _ => {}
        }
    }
}

/// Merge tags found in a run of inlines, in reading order.
pub fn collect_inline_fields<'a>(inl: &'a [Inline], out: &mut Vec<&'a Field>) {
    for i in inl {
        match i {
            Inline::Field(f) => out.push(f),
            Inline::Link(l) => collect_inline_fields(&l.content, out),
            Inline::Emphasis(c) | Inline::Strong(c) => collect_inline_fields(c, out),
            _ => {}
        }
    }
}

/// A run of text inside a block.
#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    /// Plain text (may hold any Unicode: curly quotes, CJK).
    Text(String),
    /// Emphasised text.
    Emphasis(Vec<Inline>),
    /// Strong text.
    Strong(Vec<Inline>),
    /// Inline code.
    Code(String),
    /// A hyperlink.
    Link(Link),
    /// A hard line break.
    LineBreak,
    /// A merge tag filled per recipient, e.g. `{{ name | default: "reader" }}`.
    Field(Field),
}

/// A hyperlink with a checked URL (http, https or mailto).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The target.
    pub url: String,
    /// The link text.
    pub content: Vec<Inline>,
}

/// A merge tag: a recipient field with an optional fallback.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// Recipient field name: `name`, `email`, or any CSV column.
    pub name: String,
    /// Text used when the recipient's field is empty or missing.
    pub fallback: Option<String>,
}

// Private-use code points never survive validation in user text, so the
// renderers can mark slots with them inside the strings they produce.
/// Opens a slot marker in rendered text.
pub const SLOT_MARK_OPEN: char = '\u{E000}';
/// Closes a slot marker in rendered text.
pub const SLOT_MARK_CLOSE: char = '\u{E001}';

/// Removes the characters used as slot markers from user text.
pub fn strip_marks(s: &str) -> String {
    s.chars()
        .filter(|c| *c != SLOT_MARK_OPEN && *c != SLOT_MARK_CLOSE)
        .collect()
}

/// What merge tags are filled from: a reader's fields by name (`email`,
/// `name` or a list column), present and not blank.
pub trait MergeFields {
    /// The value of a field, if the reader has one.
    fn field(&self, name: &str) -> Option<&str>;
}

/// No reader at all (the web archive): every merge tag shows its fallback.
impl MergeFields for () {
    fn field(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// Fields as name–value pairs (probes and tests).
impl<K: AsRef<str>, V: AsRef<str>, const N: usize> MergeFields for [(K, V); N] {
    fn field(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref().trim())
            .filter(|v| !v.is_empty())
    }
}

/// Plain text of a run of inlines, merge tags shown by their fallback or
/// their name in braces (for tables of contents, alt text and lints).
pub fn plain_text(inl: &[Inline]) -> String {
    let mut out = String::new();
    fn walk(inl: &[Inline], out: &mut String) {
        for i in inl {
            match i {
                Inline::Text(t) | Inline::Code(t) => out.push_str(t),
                Inline::Emphasis(c) | Inline::Strong(c) => walk(c, out),
                Inline::Link(l) => walk(&l.content, out),
                Inline::LineBreak => out.push(' '),
                Inline::Field(f) => match &f.fallback {
                    Some(fb) => out.push_str(fb),
                    None => {
                        out.push_str("{{ ");
                        out.push_str(&f.name);
                        out.push_str(" }}");
                    }
                },
            }
        }
    }
    walk(inl, &mut out);
    out
}

/// A language tag's base language: `de` for `de-AT`.
pub fn base_language(tag: &str) -> &str {
    tag.split('-').next().unwrap_or(tag)
}

/// The item whose language tag best fits `wanted`: the same tag, else its
/// base language (`de-AT` finds `de`), ignoring case as BCP 47 does.
pub fn best_language_match<T>(
    wanted: &str,
    items: impl Iterator<Item = T> + Clone,
    tag_of: impl Fn(&T) -> &str,
) -> Option<T> {
    [wanted, base_language(wanted)].into_iter().find_map(|l| {
        items
            .clone()
            .find(|item| tag_of(item).eq_ignore_ascii_case(l))
    })
}
