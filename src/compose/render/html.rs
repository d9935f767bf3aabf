//! The HTML alternative, built with maud for email clients.
//!
//! The layout is the one the Word engine of classic Outlook still draws:
//! nested presentation tables, a 600 px column that goes fluid on phones,
//! every style inline. The single `<style>` block only adds progressive
//! enhancements (phone padding, dark mode) that clients may drop.

use std::borrow::Cow;

use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

use crate::compose::calendar;
use crate::compose::render::{Escape, Marks, Slot, Template, nobreak};
use crate::compose::timefmt;
use crate::model::strip_marks;
use crate::model::{
    Article, Block, Body, Closing, Column, Editorial, Event, Heads, Image, Inline, Issue, NewsItem,
    Person, Section, SectionContent, collect_inline_fields,
};

// Colours, all at least 4.5:1 against the backgrounds they are used on.
macro_rules! ink {
    () => {
        "#1a1a1a"
    };
}
macro_rules! muted {
    () => {
        "#555555"
    };
}
macro_rules! link {
    () => {
        "#0b5394"
    };
}
macro_rules! accent {
    () => {
        "#a61c1c"
    };
}
macro_rules! paper {
    () => {
        "#ffffff"
    };
}
macro_rules! page {
    () => {
        "#f2f2f2"
    };
}
macro_rules! rule {
    () => {
        "#d6d6d6"
    };
}
macro_rules! serif {
    () => {
        "Georgia,'Times New Roman',serif"
    };
}
macro_rules! sans {
    () => {
        "Helvetica,Arial,sans-serif"
    };
}
macro_rules! mono {
    () => {
        "Menlo,Consolas,'Courier New',monospace"
    };
}
// Text cells must let long words and URLs break, or a single unbroken run
// widens the table past a phone screen.
macro_rules! wrap {
    () => {
        "word-break:break-word;overflow-wrap:anywhere"
    };
}

const INK: &str = ink!();
const LINK: &str = link!();
const SERIF: &str = serif!();
const SANS: &str = sans!();
const MONO: &str = mono!();

// Width inside a content cell (the 600 px column minus its side padding).
const CONTENT_WIDTH: u32 = 552;

const BODY_STYLE: &str = concat!(
    "margin:0;padding:0;word-spacing:normal;background-color:",
    page!(),
    ";color:",
    ink!()
);
const WRAPPER: &str = concat!(
    "background-color:",
    page!(),
    ";color:",
    ink!(),
    ";font-family:",
    sans!()
);
const PREHEADER: &str = concat!(
    "display:none;max-height:0;overflow:hidden;mso-hide:all;color:",
    ink!(),
    ";font-family:",
    sans!()
);
const OUTER_TABLE: &str = concat!("background-color:", page!());
const GUTTER: &str = concat!(
    "padding:24px 8px;background-color:",
    page!(),
    ";color:",
    ink!()
);
const COLUMN: &str = concat!("width:100%;max-width:600px;background-color:", paper!());
const HEAD_CELL: &str = concat!(
    "padding:24px 24px 16px;background-color:",
    paper!(),
    ";color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";border-bottom:3px solid ",
    ink!(),
    ";",
    wrap!()
);
const CELL: &str = concat!(
    "padding:24px 24px 8px;background-color:",
    paper!(),
    ";color:",
    ink!(),
    ";font-family:",
    serif!(),
    ";font-size:16px;line-height:26px;",
    wrap!()
);
const SECTION_CELL: &str = concat!(
    "padding:24px 24px 8px;background-color:",
    paper!(),
    ";color:",
    ink!(),
    ";font-family:",
    serif!(),
    ";font-size:16px;line-height:26px;border-top:1px solid ",
    rule!(),
    ";",
    wrap!()
);
const FOOT_CELL: &str = concat!(
    "padding:24px;background-color:",
    page!(),
    ";color:",
    muted!(),
    ";font-family:",
    sans!(),
    ";font-size:14px;line-height:20px;",
    wrap!()
);
const TOPLINE: &str = concat!(
    "margin:0 0 12px;color:",
    muted!(),
    ";font-family:",
    sans!(),
    ";font-size:14px;line-height:20px;text-align:right"
);
const H1: &str = concat!(
    "margin:0;color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";font-size:30px;line-height:36px;font-weight:bold"
);
const META: &str = concat!(
    "margin:4px 0 0;color:",
    muted!(),
    ";font-family:",
    sans!(),
    ";font-size:14px;line-height:20px"
);
const LABEL: &str = concat!(
    "margin:0 0 16px;color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";font-size:20px;line-height:26px;font-weight:bold"
);
const KICKER: &str = concat!(
    "margin:8px 0 4px;color:",
    accent!(),
    ";font-family:",
    sans!(),
    ";font-size:14px;line-height:20px;font-weight:bold;letter-spacing:1px;text-transform:uppercase"
);
const KICKER_SPAN: &str = concat!(
    "color:",
    accent!(),
    ";font-family:",
    sans!(),
    ";font-size:14px;font-weight:bold;letter-spacing:1px;text-transform:uppercase"
);
const TITLE: &str = concat!(
    "margin:0 0 8px;color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";font-size:24px;line-height:30px;font-weight:bold"
);
const BYLINE: &str = concat!(
    "margin:0 0 16px;color:",
    muted!(),
    ";font-family:",
    sans!(),
    ";font-size:15px;line-height:22px"
);
const H3: &str = concat!(
    "margin:24px 0 8px;color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";font-size:18px;line-height:24px;font-weight:bold"
);
const H4: &str = concat!(
    "margin:16px 0 8px;color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";font-size:16px;line-height:22px;font-weight:bold"
);
const P: &str = concat!(
    "margin:0 0 16px;color:",
    ink!(),
    ";font-family:",
    serif!(),
    ";font-size:16px;line-height:26px"
);
const SANS_P: &str = concat!(
    "margin:0 0 8px;color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";font-size:16px;line-height:24px"
);
const TEASER: &str = concat!(
    "color:",
    muted!(),
    ";font-family:",
    sans!(),
    ";font-size:15px"
);
const LIST: &str = concat!(
    "margin:0 0 16px;padding:0 0 0 24px;color:",
    ink!(),
    ";font-family:",
    serif!(),
    ";font-size:16px;line-height:26px"
);
const TOC_LIST: &str = concat!(
    "margin:0 0 16px;padding:0 0 0 24px;color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";font-size:16px;line-height:24px"
);
const LI: &str = concat!(
    "margin:0 0 8px;color:",
    ink!(),
    ";font-family:",
    serif!(),
    ";font-size:16px;line-height:26px"
);
const TOC_LI: &str = concat!(
    "margin:0 0 4px;color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";font-size:16px;line-height:24px"
);
const QUOTE: &str = concat!(
    "margin:0 0 16px;padding:0 0 0 16px;border-left:4px solid ",
    rule!(),
    ";color:",
    ink!(),
    ";font-family:",
    serif!()
);
const PRE: &str = concat!(
    "margin:0 0 16px;padding:12px;background-color:#f4f4f4;color:",
    ink!(),
    ";font-family:",
    mono!(),
    ";font-size:14px;line-height:20px;white-space:pre-wrap;",
    wrap!()
);
const HR: &str = concat!("margin:24px 0;border:0;border-top:1px solid ", rule!());
const EVENT_TIME: &str = concat!(
    "margin:16px 0 2px;color:",
    ink!(),
    ";font-family:",
    sans!(),
    ";font-size:15px;line-height:22px;font-weight:bold"
);
const TIME: &str = concat!("color:", ink!(), ";font-family:", sans!());
const SOURCE: &str = concat!(
    "color:",
    muted!(),
    ";font-family:",
    sans!(),
    ";font-size:14px"
);
const FOOT_P: &str = concat!(
    "margin:0 0 8px;color:",
    muted!(),
    ";font-family:",
    sans!(),
    ";font-size:14px;line-height:20px"
);
const LINK_SERIF: &str = concat!(
    "color:",
    link!(),
    ";text-decoration:underline;font-family:",
    serif!()
);
const LINK_SANS: &str = concat!(
    "color:",
    link!(),
    ";text-decoration:underline;font-family:",
    sans!()
);
const LINK_BOLD: &str = concat!(
    "color:",
    link!(),
    ";text-decoration:underline;font-family:",
    sans!(),
    ";font-weight:bold"
);

// Outlook on Windows scales attribute sizes at 120 dpi unless told 96.
const MSO_HEAD: &str = "<!--[if mso]><noscript><xml><o:OfficeDocumentSettings>\
<o:PixelsPerInch>96</o:PixelsPerInch></o:OfficeDocumentSettings></xml></noscript><![endif]-->";
// Outlook ignores max-width on the fluid column, so it gets a fixed table.
const MSO_OPEN: &str = "<!--[if mso]><table role=\"presentation\" cellpadding=\"0\" \
cellspacing=\"0\" border=\"0\" width=\"600\" align=\"center\"><tr><td><![endif]-->";
const MSO_CLOSE: &str = "<!--[if mso]></td></tr></table><![endif]-->";

// The MIME step re-encodes lines holding slots for every recipient, so
// they, and all prose lines, are kept this short (counting text, not tags).
/// Characters of text after which [`break_lines`] breaks a line at a space.
pub const WRAP_WIDTH: usize = 200;

/// Renders the issue's HTML once, with slots for per-recipient parts.
pub fn render(issue: &Issue) -> Template {
    let marks = Marks::new();
    let markup = document(issue, &marks, Mode::Email);
    marks.into_template(&break_lines(&markup.into_string()), Escape::Html)
}

/// Links the public web version shows in place of the email's personal ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebLinks<'a> {
    /// The archive's list of issues, shown where the email has "View in browser".
    pub archive: Option<&'a str>,
    /// Where readers subscribe, shown where the email has "Unsubscribe".
    pub subscribe: Option<&'a str>,
}

/// Renders the public web version of the issue: nothing per recipient.
///
/// Merge tags show their fallback, a salutation with a tag that has none is
/// left out, and the footer offers subscribing instead of unsubscribing.
pub fn render_web(issue: &Issue, links: &WebLinks<'_>) -> String {
    let marks = Marks::new();
    let markup = document(issue, &marks, Mode::Web(links));
    let template = marks.into_template(&break_lines(&markup.into_string()), Escape::Html);
    // A reader with no fields gets every fallback; the web footer holds no
    // unsubscribe slot, so the URL is never used.
    template.fill(&(), "")
}

/// Who the document is for.
#[derive(Debug, Clone, Copy)]
enum Mode<'a> {
    /// One recipient's email, with slots.
    Email,
    /// The public archive page.
    Web(&'a WebLinks<'a>),
}

fn document(issue: &Issue, marks: &Marks, mode: Mode<'_>) -> Markup {
    let web = match mode {
        Mode::Email => safe_url(&issue.publisher.web_url),
        Mode::Web(_) => None,
    };
    html! {
        (DOCTYPE)
        html lang=(Txt(&issue.language)) dir="ltr" xmlns="http://www.w3.org/1999/xhtml"
            xmlns:o="urn:schemas-microsoft-com:office:office" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                meta name="x-apple-disable-message-reformatting";
                meta name="color-scheme" content="light dark";
                meta name="supported-color-schemes" content="light dark";
                meta name="description" content=(Txt(&issue.preheader));
                title { (Txt(&issue.subject)) }
                (PreEscaped(MSO_HEAD))
                style { (PreEscaped(issue.publisher.stylesheet.as_str())) }
            }
            body style=(BODY_STYLE) {
                div.e role="article" aria-roledescription="email" aria-label=(Txt(&issue.subject))
                    lang=(Txt(&issue.language)) dir="ltr" style=(WRAPPER) {
                    div style=(PREHEADER) { (Txt(&issue.preheader)) }
                    table role="presentation" cellpadding="0" cellspacing="0" border="0"
                        width="100%" style=(OUTER_TABLE) {
                        tr {
                            td.g align="center" style=(GUTTER) {
                                (PreEscaped(MSO_OPEN))
                                table role="presentation" cellpadding="0" cellspacing="0"
                                    border="0" width="600" align="center" style=(COLUMN) {
                                    (masthead(issue, web, mode))
                                    (salutation(issue, marks, mode))
                                    (contents(issue))
                                    @for s in &issue.sections {
                                        (section(s, issue, marks))
                                    }
                                    (footer(issue, web, marks, mode))
                                }
                                (PreEscaped(MSO_CLOSE))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn masthead(issue: &Issue, web: Option<&str>, mode: Mode<'_>) -> Markup {
    let words = &issue.publisher.words;
    let archive = match mode {
        Mode::Email => None,
        Mode::Web(links) => links.archive,
    };
    html! {
        tr {
            td.px style=(HEAD_CELL) {
                @if let Some(url) = web {
                    p.m style=(TOPLINE) {
                        a href=(Txt(url)) style=(LINK_SANS) { (Prose(&words.view_in_browser)) }
                    }
                }
                @if let Some(url) = archive {
                    p.m style=(TOPLINE) {
                        a href=(Txt(url)) style=(LINK_SANS) { (Prose(&words.all_issues)) }
                    }
                }
                h1 style=(H1) { (Prose(&issue.newsletter)) }
                p.m style=(META) {
                    (Prose(&words.issue)) " " (issue.number) " · " (timefmt::long_date(issue.date, &issue.language))
                }
            }
        }
    }
}

fn salutation(issue: &Issue, marks: &Marks, mode: Mode<'_>) -> Markup {
    let greeting = &issue.publisher.salutation;
    // "Dear ," reads worse on the web than no greeting at all.
    let shown = match mode {
        Mode::Email => true,
        Mode::Web(_) => {
            let mut fields = Vec::new();
            collect_inline_fields(greeting, &mut fields);
            fields.iter().all(|f| f.fallback.is_some())
        }
    };
    html! {
        @if shown && !greeting.is_empty() {
            tr {
                td.px style=(CELL) {
                    p style=(P) { (inlines(greeting, SERIF_INK, marks)) }
                }
            }
        }
    }
}

fn contents(issue: &Issue) -> Markup {
    html! {
        @if !issue.sections.is_empty() {
            tr {
                td.px style=(SECTION_CELL) {
                    h2 style=(LABEL) { (Prose(&issue.publisher.words.in_this_issue)) }
                    @for s in &issue.sections {
                        p style=(SANS_P) {
                            a href={ "#" (Txt(&s.anchor)) } style=(LINK_BOLD) { (Prose(&s.label)) }
                        }
                        @match &s.content {
                            SectionContent::Articles(articles) => {
                                @for a in articles {
                                    p style=(SANS_P) {
                                        span.k style=(KICKER_SPAN) { (Prose(&a.kicker)) }
                                        br;
                                        a href={ "#" (Txt(&a.anchor)) } style=(LINK_SANS) {
                                            (Prose(&a.title))
                                        }
                                        br;
                                        span.m style=(TEASER) { (Prose(&a.teaser)) }
                                    }
                                }
                            }
                            SectionContent::News(items) if !items.is_empty() => {
                                ul style=(TOC_LIST) {
                                    @for n in items {
                                        li style=(TOC_LI) {
                                            a href={ "#" (Txt(&n.anchor)) } style=(LINK_SANS) {
                                                (Prose(&n.title))
                                            }
                                        }
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

/// One section of the issue as a row of the content column.
pub fn section(section: &Section, issue: &Issue, marks: &Marks) -> Markup {
    html! {
        tr {
            td.px style=(SECTION_CELL) {
                h2 style=(LABEL) { (target(&section.anchor)) (Prose(&section.label)) }
                @match &section.content {
                    SectionContent::Editorial(e) => (editorial(e, marks)),
                    SectionContent::Articles(articles) => {
                        @for (i, a) in articles.iter().enumerate() {
                            @if i > 0 { hr style=(HR); }
                            (article(a, &issue.publisher.words.by, marks))
                        }
                    }
                    SectionContent::Events(events) => {
                        @for e in events { (event(e, issue)) }
                    }
                    SectionContent::News(items) => {
                        @for n in items { (news_item(n, marks)) }
                    }
                    SectionContent::Column(c) => (column(c, &issue.publisher.words.by, marks)),
                    SectionContent::Heads(h) => (heads(h, marks)),
                    SectionContent::Closing(c) => (closing(c, marks)),
                }
            }
        }
    }
}

fn editorial(e: &Editorial, marks: &Marks) -> Markup {
    let sign_off = e.signature.as_deref().unwrap_or(&e.author);
    html! {
        (body(&e.body, marks))
        @if !sign_off.trim().is_empty() {
            p.m style=(BYLINE) { (Prose(sign_off)) }
        }
    }
}

fn article(a: &Article, by: &str, marks: &Marks) -> Markup {
    html! {
        p.k style=(KICKER) { (Prose(&a.kicker)) }
        h2 style=(TITLE) { (target(&a.anchor)) (Prose(&a.title)) }
        p.m style=(BYLINE) { (Prose(by)) " " (Prose(&a.author)) }
        (body(&a.body, marks))
    }
}

fn event(e: &Event, issue: &Issue) -> Markup {
    let when = timefmt::event_time(
        &e.start,
        &issue.publisher.event_zones,
        &issue.publisher.zone_labels,
        &issue.language,
    );
    html! {
        p style=(EVENT_TIME) {
            time datetime=(timefmt::rfc3339(&e.start)) style=(TIME) { (Prose(&when)) }
        }
        // The title is the link: its own words say where it goes in every
        // client, where a "More" link needs an aria-label that Yahoo, AOL
        // and Windows Mail drop.
        p style=(P) {
            (Prose(&e.organizer)) ", " (Prose(&e.kind)) ": "
            @if let Some(url) = safe_url(&e.url) {
                a href=(Txt(url)) style=(LINK_SERIF) { (Prose(&e.title)) }
            } @else {
                (Prose(&e.title))
            }
            // Beside its title, so the link's purpose is clear in context.
            @if let Some(n) = calendar::number_of(issue, e) {
                " · "
                a href=(Txt(&calendar::event_url(issue, n))) style=(LINK_SERIF) {
                    (Prose(&issue.publisher.words.add_to_calendar))
                }
            }
        }
    }
}

fn news_item(n: &NewsItem, marks: &Marks) -> Markup {
    let has_source = !n.source.trim().is_empty();
    let source = html! {
        @if has_source { span.m style=(SOURCE) { (Prose(&n.source)) } }
    };
    // The initials close the item's last paragraph, as in print; a list or
    // quote at the end gets them on a line of their own instead.
    let (last, rest) = match n.body.blocks.split_last() {
        Some((Block::Paragraph(inl), rest)) => (Some(inl), rest),
        _ => (None, n.body.blocks.as_slice()),
    };
    html! {
        h3 style=(H3) { (target(&n.anchor)) (Prose(&n.title)) }
        (blocks(rest, marks))
        @if let Some(inl) = last {
            p style=(P) {
                (inlines(inl, SERIF_INK, marks))
                @if has_source { " " }
                (source)
            }
        } @else if has_source {
            p style=(P) { (source) }
        }
    }
}

fn column(c: &Column, by: &str, marks: &Marks) -> Markup {
    html! {
        p.k style=(KICKER) { (Prose(&c.kicker)) }
        h3 style=(TITLE) { (Prose(&c.title)) }
        p.m style=(BYLINE) { (Prose(by)) " " (Prose(&c.author)) }
        (body(&c.body, marks))
    }
}

fn heads(h: &Heads, marks: &Marks) -> Markup {
    html! {
        @for p in &h.people { (person(p, marks)) }
        (body(&h.call_to_action, marks))
    }
}

fn person(p: &Person, marks: &Marks) -> Markup {
    let position: Vec<&str> = [p.role.as_deref(), p.organisation.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect();
    html! {
        p style=(SANS_P) {
            strong style=(ink_style(SANS_INK, "font-weight:bold;")) { (Prose(&p.name)) }
            @if !position.is_empty() {
                br;
                span.m style=(TEASER) { (Prose(&position.join(", "))) }
            }
        }
        (body(&p.body, marks))
    }
}

fn closing(c: &Closing, marks: &Marks) -> Markup {
    html! {
        h3 style=(H3) { (Prose(&c.title)) }
        @if let Some(img) = &c.image { (image(img)) }
        (body(&c.body, marks))
    }
}

fn image(img: &Image) -> Markup {
    let Some(src) = safe_url(&img.url) else {
        return html! {};
    };
    // Outlook sizes images by their attributes alone, so a wide photo is
    // given the column's width (and a matching height) rather than its own.
    let width = img.width.filter(|w| *w > 0);
    let shown = width.map(|w| w.min(CONTENT_WIDTH));
    let height = match (img.height, width, shown) {
        (Some(h), Some(w), Some(s)) if s < w => Some(
            u32::try_from((u64::from(h) * u64::from(s) + u64::from(w) / 2) / u64::from(w))
                .unwrap_or(h),
        ),
        (h, _, _) => h,
    };
    let style = match shown {
        Some(s) => {
            format!("display:block;width:100%;max-width:{s}px;height:auto;border:0;margin:0 0 16px")
        }
        None => "display:block;width:100%;max-width:100%;height:auto;border:0;margin:0 0 16px"
            .to_string(),
    };
    html! {
        img src=(Txt(src)) alt=(Txt(&img.alt)) width=[shown] height=[height] style=(style);
    }
}

fn footer(issue: &Issue, web: Option<&str>, marks: &Marks, mode: Mode<'_>) -> Markup {
    let p = &issue.publisher;
    let words = &p.words;
    // Why "you" receive it is only true in a subscriber's inbox.
    let reason = matches!(mode, Mode::Email) && !p.reason.trim().is_empty();
    html! {
        tr {
            td.px.m style=(FOOT_CELL) {
                @if reason {
                    p.m style=(FOOT_P) { (lines(&p.reason)) }
                }
                @if let Some(url) = web {
                    p.m style=(FOOT_P) {
                        a href=(Txt(url)) style=(LINK_SANS) { (Prose(&words.view_in_browser)) }
                    }
                }
                @match mode {
                    Mode::Email => {
                        p.m style=(FOOT_P) {
                            a href=(PreEscaped(marks.mark(Slot::UnsubscribeUrl))) style=(LINK_SANS) {
                                (Prose(&p.words.unsubscribe))
                            }
                        }
                    }
                    Mode::Web(links) => {
                        @if let Some(url) = links.subscribe.and_then(safe_url) {
                            p.m style=(FOOT_P) {
                                a href=(Txt(url)) style=(LINK_SANS) { (Prose(&p.words.subscribe)) }
                            }
                        }
                    }
                }
                @if !p.postal_address.trim().is_empty() {
                    p.m style=(FOOT_P) { (lines(&p.postal_address)) }
                }
            }
        }
    }
}

/// Multi-line config text (an address) with its line breaks kept.
fn lines(s: &str) -> Markup {
    html! {
        @for (i, line) in s.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
            @if i > 0 { br; }
            (Prose(line))
        }
    }
}

/// A rich-text body as email-safe block elements.
pub fn body(body: &Body, marks: &Marks) -> Markup {
    blocks(&body.blocks, marks)
}

fn blocks(bs: &[Block], marks: &Marks) -> Markup {
    html! {
        @for b in bs { (block(b, marks)) }
    }
}

fn block(b: &Block, marks: &Marks) -> Markup {
    match b {
        Block::Paragraph(inl) => html! { p style=(P) { (inlines(inl, SERIF_INK, marks)) } },
        // The issue's own headings take h1 and h2, so a body's sit below them.
        Block::Heading(level, inl) if *level <= 2 => {
            html! { h3 style=(H3) { (inlines(inl, SANS_INK, marks)) } }
        }
        Block::Heading(_, inl) => html! { h4 style=(H4) { (inlines(inl, SANS_INK, marks)) } },
        Block::List { ordered, items } => {
            let items = html! {
                @for item in items { li style=(LI) { (list_item(item, marks)) } }
            };
            if *ordered {
                html! { ol style=(LIST) { (items) } }
            } else {
                html! { ul style=(LIST) { (items) } }
            }
        }
        Block::Quote(inner) => html! { blockquote style=(QUOTE) { (blocks(inner, marks)) } },
        Block::Code(code) => html! { pre style=(PRE) { (Txt(code)) } },
        Block::Rule => html! { hr style=(HR); },
    }
}

/// A tight list item (one paragraph) goes in the `<li>` without a `<p>`,
/// whose margins would space the list out like separate paragraphs.
fn list_item(item: &[Block], marks: &Marks) -> Markup {
    match item {
        [Block::Paragraph(inl)] => inlines(inl, SERIF_INK, marks),
        _ => blocks(item, marks),
    }
}

/// The colour and face inline elements repeat, so that clients that drop
/// inheritance (or restyle bare elements) still draw them as intended.
#[derive(Debug, Clone, Copy)]
struct Ink {
    color: &'static str,
    font: &'static str,
}

const SERIF_INK: Ink = Ink {
    color: INK,
    font: SERIF,
};
const SANS_INK: Ink = Ink {
    color: INK,
    font: SANS,
};

fn ink_style(ink: Ink, extra: &str) -> String {
    format!("{extra}color:{};font-family:{}", ink.color, ink.font)
}

fn link_style(ink: Ink) -> &'static str {
    if ink.font == SANS {
        LINK_SANS
    } else {
        LINK_SERIF
    }
}

fn inlines(inl: &[Inline], ink: Ink, marks: &Marks) -> Markup {
    html! {
        @for i in inl { (inline(i, ink, marks)) }
    }
}

fn inline(i: &Inline, ink: Ink, marks: &Marks) -> Markup {
    match i {
        Inline::Text(t) => html! { (Prose(t)) },
        Inline::Emphasis(c) => {
            html! { em style=(ink_style(ink, "font-style:italic;")) { (inlines(c, ink, marks)) } }
        }
        Inline::Strong(c) => html! {
            strong style=(ink_style(ink, "font-weight:bold;")) { (inlines(c, ink, marks)) }
        },
        Inline::Code(t) => html! {
            code style={ "background-color:#f4f4f4;font-size:15px;color:" (ink.color)
                ";font-family:" (MONO) } { (Txt(t)) }
        },
        Inline::Link(l) => match safe_url(&l.url) {
            Some(url) => {
                let inner = Ink {
                    color: LINK,
                    font: ink.font,
                };
                html! {
                    a href=(Txt(url)) style=(link_style(ink)) { (inlines(&l.content, inner, marks)) }
                }
            }
            // Validation allows only web and mail links; anything else
            // (javascript:, data:) is shown as its text, never as a link.
            None => inlines(&l.content, ink, marks),
        },
        Inline::LineBreak => html! { br; },
        Inline::Field(f) => html! { (PreEscaped(marks.mark(Slot::Field(f.clone())))) },
    }
}

/// The URL when its scheme is one an email may link to.
fn safe_url(url: &str) -> Option<&str> {
    let url = url.trim();
    let scheme = url.split_once(':')?.0;
    ["https", "http", "mailto"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
        .then_some(url)
}

/// User text on its way into the HTML: maud escapes it, and the slot
/// markers and control characters are dropped first, since a marker would
/// turn into a slot and a C1 control makes Gmail clip the message.
struct Txt<'a>(&'a str);

impl Render for Txt<'_> {
    fn render_to(&self, buffer: &mut String) {
        clean(self.0).as_ref().render_to(buffer);
    }
}

/// User text in element content: like [`Txt`], and a number and its unit
/// or the parts of a time are joined by `&nbsp;` (see [`nobreak`]), which
/// every client honours, unlike `white-space:nowrap`. Never for attributes:
/// a URL must stay as written.
struct Prose<'a>(&'a str);

impl Render for Prose<'_> {
    fn render_to(&self, buffer: &mut String) {
        let cleaned = clean(self.0);
        let joined = nobreak::join_held(&cleaned);
        if !joined.contains(nobreak::NO_BREAK_SPACE) {
            return joined.as_ref().render_to(buffer);
        }
        for (i, piece) in joined.split(nobreak::NO_BREAK_SPACE).enumerate() {
            if i > 0 {
                buffer.push_str("&nbsp;");
            }
            piece.render_to(buffer);
        }
    }
}

/// The target of a contents link, first inside its heading. Gmail on the
/// desktop, Outlook for Windows and Yahoo jump only to an empty `<a>` with
/// a `name`; other clients follow the `id`. Both sit on this element, since
/// HTML allows a `name` to equal no id but its own element's.
fn target(anchor: &str) -> Markup {
    html! { a id=(Txt(anchor)) name=(Txt(anchor)) {} }
}

fn clean(s: &str) -> Cow<'_, str> {
    let keep = |c: char| !c.is_control() || c == '\n' || c == '\t';
    let unmarked = strip_marks(s);
    if unmarked.len() == s.len() && s.chars().all(keep) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(unmarked.chars().filter(|c| keep(*c)).collect())
    }
}

const BLOCK_ENDS: [&str; 18] = [
    "</tr>",
    "</td>",
    "</table>",
    "</p>",
    "</h1>",
    "</h2>",
    "</h3>",
    "</h4>",
    "</li>",
    "</div>",
    "</ul>",
    "</ol>",
    "</blockquote>",
    "</pre>",
    "</head>",
    "</title>",
    "</style>",
    "-->",
];

// Only whitespace between words changes, which HTML reads the same, and
// never inside a tag or <pre>.
/// Ends a line after every block element and breaks long lines of text.
pub fn break_lines(html: &str) -> String {
    let mut ended = String::with_capacity(html.len() + html.len() / 32);
    let mut rest = html;
    while let Some(at) = rest.find(['<', '-']) {
        let (head, tail) = rest.split_at(at);
        ended.push_str(head);
        let end = match BLOCK_ENDS.iter().find(|e| tail.starts_with(*e)) {
            Some(end) => Some(end.len()),
            None if starts_with_tag(tail, &LINE_AFTER) => tail.find('>').map(|gt| gt + 1),
            None => None,
        };
        let step = end.unwrap_or_else(|| tail.chars().next().map_or(1, char::len_utf8));
        ended.push_str(&tail[..step]);
        rest = &tail[step..];
        if end.is_some() && !rest.starts_with('\n') {
            ended.push('\n');
        }
    }
    ended.push_str(rest);
    wrap(&ended, WRAP_WIDTH)
}

/// Start tags (void or document-level) that also end a line.
const LINE_AFTER: [&str; 6] = ["<!DOCTYPE", "<html", "<head", "<body", "<meta", "<hr"];

fn starts_with_tag(s: &str, names: &[&str]) -> bool {
    names.iter().any(|n| {
        s.strip_prefix(n)
            .is_some_and(|r| r.starts_with([' ', '>', '\n']))
    })
}

fn wrap(s: &str, width: usize) -> String {
    let mut out = String::with_capacity(s.len());
    // Only text counts towards the width: a line that is long because of
    // its tags is still short to read, and tags cannot be split anyway.
    let mut text = 0;
    // The last space a line may break at, and the text before it.
    let mut space: Option<(usize, usize)> = None;
    let (mut in_tag, mut in_quote, mut in_pre) = (false, false, false);
    let mut prev_ascii = false;
    for (i, c) in s.char_indices() {
        let was_in_tag = in_tag;
        match c {
            '\n' => {
                out.push('\n');
                text = 0;
                space = None;
                continue;
            }
            '<' if !in_quote => {
                in_tag = true;
                let tail = &s[i..];
                if tail.starts_with("</pre>") {
                    in_pre = false;
                } else if tail.starts_with("<pre>") || tail.starts_with("<pre ") {
                    in_pre = true;
                }
            }
            '>' if in_tag && !in_quote => in_tag = false,
            '"' if in_tag => in_quote = !in_quote,
            // A break between two CJK characters may be dropped rather than
            // shown as a space, so only spaces after ASCII text qualify.
            ' ' if !in_tag && !in_pre && prev_ascii && text > 0 => {
                if text >= width {
                    out.push('\n');
                    text = 0;
                    space = None;
                    continue;
                }
                space = Some((out.len(), text));
            }
            _ => {}
        }
        out.push(c);
        if !was_in_tag && !in_tag {
            text += c.len_utf8();
            prev_ascii = c.is_ascii();
        }
        if text > width
            && let Some((at, before)) = space.take()
        {
            out.replace_range(at..=at, "\n");
            text -= before + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::render::Part;
    use crate::compose::stylesheet::{DEFAULT_STYLESHEET, prepare_stylesheet};
    use crate::model::{Field, Link};

    fn text(s: &str) -> Inline {
        Inline::Text(s.into())
    }

    fn para(inl: Vec<Inline>) -> Block {
        Block::Paragraph(inl)
    }

    fn render_body(blocks: Vec<Block>) -> Template {
        let marks = Marks::new();
        let html = body(&Body { blocks }, &marks).into_string();
        marks.into_template(&break_lines(&html), Escape::Html)
    }

    fn name_field() -> Field {
        Field {
            name: "name".into(),
            fallback: Some("reader".into()),
        }
    }

    #[test]
    fn every_block_kind_becomes_its_email_element() {
        let t = render_body(vec![
            para(vec![text("One.")]),
            Block::Heading(1, vec![text("Big")]),
            Block::Heading(4, vec![text("Small")]),
            Block::List {
                ordered: false,
                items: vec![vec![para(vec![text("a")])], vec![para(vec![text("b")])]],
            },
            Block::List {
                ordered: true,
                items: vec![vec![para(vec![text("first")]), para(vec![text("more")])]],
            },
            Block::Quote(vec![para(vec![text("quoted")])]),
            Block::Code("fn main() {\n    x < y\n}".into()),
            Block::Rule,
        ]);
        let html = t.with_placeholders();
        assert!(html.contains(">One.</p>"), "{html}");
        assert!(html.contains(">Big</h3>"), "{html}");
        assert!(html.contains(">Small</h4>"), "{html}");
        assert!(html.contains("<ul style="), "{html}");
        assert!(html.contains(">a</li>"), "tight item has no <p>: {html}");
        assert!(html.contains("<ol style="), "{html}");
        assert!(html.contains(">more</p>\n</li>"), "{html}");
        assert!(html.contains(
            "<blockquote style=\"margin:0 0 16px;padding:0 0 0 16px;border-left:4px solid"
        ));
        assert!(
            html.contains("white-space:pre-wrap;word-break:break-word"),
            "{html}"
        );
        assert!(
            html.contains(">fn main() {\n    x &lt; y\n}</pre>"),
            "{html}"
        );
        assert!(html.contains("<hr style="), "{html}");
        assert!(!html.contains("<h1") && !html.contains("<h2"), "{html}");
    }

    #[test]
    fn every_inline_kind_becomes_its_email_element() {
        let t = render_body(vec![para(vec![
            Inline::Emphasis(vec![text("em")]),
            Inline::Strong(vec![text("strong")]),
            Inline::Code("a<b".into()),
            Inline::LineBreak,
            Inline::Link(Link {
                url: "https://example.org/a?b=1&c=2".into(),
                content: vec![text("site")],
            }),
        ])]);
        let html = t.with_placeholders();
        assert!(
            html.contains("<em style=\"font-style:italic;color:#1a1a1a;font-family:"),
            "{html}"
        );
        assert!(html.contains(">em</em>"), "{html}");
        assert!(html.contains("<strong style=\"font-weight:bold;"), "{html}");
        assert!(html.contains(">a&lt;b</code>"), "{html}");
        assert!(html.contains("<br>"), "{html}");
        assert!(
            html.contains("<a href=\"https://example.org/a?b=1&amp;c=2\" style=\"color:#0b5394;text-decoration:underline;"),
            "{html}"
        );
    }

    #[test]
    fn links_keep_their_url_and_unsafe_schemes_lose_the_link() {
        let t = render_body(vec![para(vec![
            Inline::Link(Link {
                url: "mailto:heads@example.org".into(),
                content: vec![text("write")],
            }),
            Inline::Link(Link {
                url: "javascript:alert(1)".into(),
                content: vec![text("trap")],
            }),
        ])]);
        let html = t.with_placeholders();
        assert!(html.contains("href=\"mailto:heads@example.org\""), "{html}");
        assert!(!html.contains("javascript"), "{html}");
        assert!(html.contains("trap"), "{html}");
    }

    #[test]
    fn merge_tags_become_slots() {
        let t = render_body(vec![para(vec![
            text("Dear "),
            Inline::Field(name_field()),
            text(","),
        ])]);
        assert_eq!(
            t.slots().collect::<Vec<_>>(),
            vec![&Slot::Field(name_field())]
        );
        let anna = [("email", "a@example.org"), ("name", "Anna & Co")];
        assert!(t.fill(&anna, "u").contains(">Dear Anna &amp; Co,</p>"));
    }

    #[test]
    fn script_in_text_is_escaped() {
        let evil = "<script>alert(1)</script>";
        let t = render_body(vec![
            para(vec![text(evil)]),
            Block::Heading(2, vec![text(evil)]),
            Block::Code(evil.into()),
            para(vec![Inline::Link(Link {
                url: format!("https://example.org/\"><script>{evil}"),
                content: vec![text(evil)],
            })]),
        ]);
        let html = t.with_placeholders();
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn slot_markers_and_controls_in_user_text_are_dropped() {
        let t = render_body(vec![para(vec![text("a\u{E000}0\u{E001}b\u{92}c")])]);
        assert_eq!(t.slots().count(), 0);
        assert!(t.with_placeholders().contains(">a0bc</p>"));
    }

    #[test]
    fn long_lines_break_between_words_but_not_in_tags_or_pre() {
        let words = "word ".repeat(100);
        let html = format!("<p title=\"{words}\">{words}</p><pre>{words}</pre>");
        let out = break_lines(&html);
        assert!(out.contains(&format!("<p title=\"{words}\">")), "{out}");
        assert!(out.contains(&format!("<pre>{words}</pre>")), "{out}");
        let outside_tags = |l: &str| {
            l.split('<')
                .map(|s| s.split_once('>').map_or(s, |(_, t)| t).len())
                .sum::<usize>()
        };
        let prose: Vec<&str> = out.lines().filter(|l| !l.starts_with("<pre>")).collect();
        assert!(prose.len() > 2, "{out}");
        assert!(prose.iter().all(|l| outside_tags(l) <= WRAP_WIDTH), "{out}");
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            html.replace("</p>", "</p> ")
                .split_whitespace()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn lines_with_slots_stay_short_even_in_long_paragraphs() {
        let long = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(40);
        let t = render_body(vec![para(vec![
            text(&long),
            Inline::Field(name_field()),
            text(&long),
        ])]);
        let mut line = String::new();
        let mut slot_lines = Vec::new();
        let mut has_slot = false;
        for part in &t.parts {
            match part {
                Part::Static(s) => {
                    for (i, piece) in s.split('\n').enumerate() {
                        if i > 0 {
                            if has_slot {
                                slot_lines.push(line.len());
                            }
                            line.clear();
                            has_slot = false;
                        }
                        line.push_str(piece);
                    }
                }
                Part::Slot(_) => {
                    has_slot = true;
                    line.push_str("xxxxxxxxxxxx");
                }
            }
        }
        if has_slot {
            slot_lines.push(line.len());
        }
        assert_eq!(slot_lines.len(), 1);
        assert!(slot_lines.iter().all(|n| *n < 1000), "{slot_lines:?}");
    }

    #[test]
    fn wide_images_are_sized_to_the_column() {
        let html = image(&Image {
            url: "https://example.org/a.jpg".into(),
            alt: "A photo".into(),
            width: Some(1200),
            height: Some(800),
        })
        .into_string();
        assert!(html.contains("width=\"552\" height=\"368\""), "{html}");
        assert!(html.contains("max-width:552px;height:auto"), "{html}");
        let bare = image(&Image {
            url: "https://example.org/a.jpg".into(),
            alt: String::new(),
            width: None,
            height: None,
        })
        .into_string();
        assert!(
            !bare.contains("width=") && !bare.contains("height="),
            "{bare}"
        );
        assert!(bare.contains("alt=\"\""), "{bare}");
    }

    #[test]
    fn style_block_is_small_and_flat() {
        let style = prepare_stylesheet(DEFAULT_STYLESHEET).unwrap();
        assert!(style.len() < 2048);
        assert!(!style.contains("/*"), "comments are stripped");
        // One level of braces only inside each @media: no nested at-rules.
        for media in style.split("@media").skip(1) {
            let body = media.split_once('{').map_or("", |(_, b)| b);
            let end = body.find("}}").unwrap_or(body.len());
            assert!(!body[..end].contains('@'), "{media}");
        }
        assert!(prepare_stylesheet("@media x{@media y{a{b:c}}}").is_err());
        assert!(prepare_stylesheet("a{content:\"</style>\"}").is_err());
        assert!(prepare_stylesheet("/* open").is_err());
    }
}
