//! The plain-text alternative, rendered from the same model as the HTML.
//!
//! Prose is hard-wrapped at [`WIDTH`] columns. Links become numbered
//! references (`text [3]`) listed at the end of each section, numbered across
//! the whole issue. Per-recipient parts stay slot markers, which the wrapper
//! treats as unbreakable words [`SLOT_WRAP_WIDTH`] columns wide.

use textwrap::WordSeparator;
use textwrap::core::Word;
use textwrap::wrap_algorithms::wrap_first_fit;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::compose::calendar;
use crate::compose::render::{Escape, Marks, SLOT_WRAP_WIDTH, Slot, Template, nobreak};
use crate::compose::timefmt;
use crate::model::{
    Article, Block, Body, Closing, Column, Editorial, Event, Heads, Inline, Issue, NewsItem,
    Section, SectionContent, Words, plain_text,
};

/// Column at which prose wraps.
pub const WIDTH: usize = 72;

/// Longest line allowed, except a line that carries a single URL.
pub const MAX_LINE: usize = 78;

// Deeply nested lists and quotes still get a readable measure; they may then
// run past WIDTH, which is better than one word a line.
const MIN_WIDTH: usize = 24;

// Mirrors the private markers in `render`; a test below fails if they drift.
const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';

// Holds a link's `[n]` to the word before it while wrapping, so a reference
// never starts a line on its own; it becomes a space afterwards. Private-use,
// like the slot markers, and stripped from user text for the same reason.
const GLUE: char = '\u{E002}';

// Bracket text that must not be broken inside, such as news initials
// (`rtr/grz` would otherwise break after the slash); removed after wrapping.
const KEEP_OPEN: char = '\u{E003}';
const KEEP_CLOSE: char = '\u{E004}';

const URL_STARTS: [&str; 4] = ["https://", "http://", "mailto:", "www."];

/// Renders the issue's plain text once, with slots for per-recipient parts.
pub fn render(issue: &Issue) -> Template {
    let marks = Marks::new();
    let mut links = LinkList::new();
    let mut parts = vec![header(issue, &marks, &mut links), contents(issue)];
    for s in &issue.sections {
        parts.push(section_with_links(s, issue, &marks, &mut links));
    }
    parts.push(footer(issue, &marks));
    // Two blank lines between top-level parts, one inside them.
    let text = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n\n");
    marks.into_template(&text, Escape::None)
}

/// Link references, numbered across the issue and listed per section.
#[derive(Debug, Default)]
pub struct LinkList {
    count: usize,
    pending: Vec<(usize, String)>,
}

impl LinkList {
    /// An empty list whose first reference will be `[1]`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number for `url`; a URL cited twice in one section keeps one number.
    pub fn cite(&mut self, url: &str) -> usize {
        let url = clean_url(url);
        if let Some((n, _)) = self.pending.iter().find(|(_, u)| *u == url) {
            return *n;
        }
        self.count += 1;
        self.pending.push((self.count, url));
        self.count
    }

    /// The lines `[n] url` cited since the last call, which are then cleared.
    pub fn drain_lines(&mut self) -> Vec<String> {
        // Kept on one line however long: clients only link an unbroken URL.
        self.pending
            .drain(..)
            .map(|(n, url)| format!("[{n}] {url}"))
            .collect()
    }
}

/// The issue header: name, number and date, the web link, the salutation.
pub fn header(issue: &Issue, marks: &Marks, links: &mut LinkList) -> String {
    let mut title = wrap(&clean(&issue.newsletter), WIDTH, "", "");
    title.extend(wrap(
        &format!(
            "{} {} \u{b7} {}",
            issue.publisher.words.issue,
            issue.number,
            timefmt::long_date(issue.date, &issue.language)
        ),
        WIDTH,
        "",
        "",
    ));
    let title = underlined(title, '=', WIDTH);
    let web = view_in_browser(issue);
    let salutation = wrap(
        &inline_text(&issue.publisher.salutation, marks, links),
        WIDTH,
        "",
        "",
    );
    finish(join_blocks(vec![
        title,
        web,
        salutation,
        links.drain_lines(),
    ]))
}

/// The table of contents: section labels, article titles and teasers, news titles.
pub fn contents(issue: &Issue) -> String {
    if issue.sections.is_empty() {
        return String::new();
    }
    let mut lines = underlined(
        vec![issue.publisher.words.in_this_issue.clone()],
        '-',
        WIDTH,
    );
    lines.push(String::new());
    for s in &issue.sections {
        lines.extend(wrap(&clean(&s.label), WIDTH, "", ""));
        match &s.content {
            SectionContent::Articles(articles) => {
                for a in articles {
                    let head = match clean(&a.kicker) {
                        k if k.is_empty() => clean(&a.title),
                        k => format!("{k}: {}", clean(&a.title)),
                    };
                    lines.extend(wrap(&head, WIDTH, "  - ", "    "));
                    lines.extend(wrap(&clean(&a.teaser), WIDTH, "      ", "      "));
                }
            }
            SectionContent::News(items) => {
                for n in items {
                    lines.extend(wrap(&clean(&n.title), WIDTH, "  - ", "    "));
                }
            }
            _ => {}
        }
    }
    finish(lines)
}

/// One section on its own, its link references numbered from `[1]`.
pub fn section(section: &Section, issue: &Issue, marks: &Marks) -> String {
    section_with_links(section, issue, marks, &mut LinkList::new())
}

/// One section, numbering its links on from `links` and listing them at its end.
pub fn section_with_links(
    section: &Section,
    issue: &Issue,
    marks: &Marks,
    links: &mut LinkList,
) -> String {
    let w = &issue.publisher.words;
    let mut blocks = vec![heading(&section.label, '=')];
    match &section.content {
        SectionContent::Editorial(e) => blocks.extend(editorial(e, marks, links)),
        SectionContent::Articles(articles) => {
            for a in articles {
                blocks.extend(article(a, w, marks, links));
            }
        }
        SectionContent::Events(events) => {
            for e in events {
                blocks.push(event(e, issue, links));
            }
        }
        SectionContent::News(items) => {
            for n in items {
                blocks.extend(news(n, marks, links));
            }
        }
        SectionContent::Column(c) => blocks.extend(column(c, w, marks, links)),
        SectionContent::Heads(h) => blocks.extend(heads(h, marks, links)),
        SectionContent::Closing(c) => blocks.extend(closing(c, w, marks, links)),
    }
    blocks.push(links.drain_lines());
    finish(join_blocks(blocks))
}

/// A body wrapped at [`WIDTH`], its links cited in `links` (not listed).
pub fn body(body: &Body, marks: &Marks, links: &mut LinkList) -> String {
    finish(blocks_lines(&body.blocks, WIDTH, marks, links))
}

/// The footer: reason, postal address, web link and unsubscribe slot.
pub fn footer(issue: &Issue, marks: &Marks) -> String {
    // Both are config text whose line breaks the HTML keeps too.
    let p = &issue.publisher;
    let mut identity = Vec::new();
    for line in p.reason.lines().chain(p.postal_address.lines()) {
        identity.extend(wrap(&clean(line), WIDTH, "", ""));
    }
    let mut links = view_in_browser(issue);
    // The filled URL is ~90 columns: it gets a line of its own (P1).
    links.push(format!("{}:", p.words.unsubscribe));
    links.push(marks.mark(Slot::UnsubscribeUrl));
    let mut lines = vec!["-".repeat(WIDTH)];
    lines.extend(join_blocks(vec![identity, links]));
    finish(lines)
}

/// `View in browser: URL`, wrapped so a long URL gets a line of its own.
fn view_in_browser(issue: &Issue) -> Vec<String> {
    match safe_url(&issue.publisher.web_url) {
        Some(url) => wrap(
            &format!("{}: {url}", issue.publisher.words.view_in_browser),
            WIDTH,
            "",
            "",
        ),
        None => Vec::new(),
    }
}

fn editorial(e: &Editorial, marks: &Marks, links: &mut LinkList) -> Vec<Vec<String>> {
    // Without a sign-off line the letter is still signed, by its author.
    let sign = e.signature.as_deref().unwrap_or(&e.author);
    vec![
        blocks_lines(&e.body.blocks, WIDTH, marks, links),
        wrap(&clean(sign), WIDTH, "", ""),
    ]
}

fn article(a: &Article, w: &Words, marks: &Marks, links: &mut LinkList) -> Vec<Vec<String>> {
    vec![
        titled(&a.kicker, &a.title, &w.by, &a.author),
        blocks_lines(&a.body.blocks, WIDTH, marks, links),
    ]
}

fn column(c: &Column, w: &Words, marks: &Marks, links: &mut LinkList) -> Vec<Vec<String>> {
    vec![
        titled(&c.kicker, &c.title, &w.by, &c.author),
        blocks_lines(&c.body.blocks, WIDTH, marks, links),
    ]
}

/// Kicker, underlined title and byline, as articles and the column open.
fn titled(kicker: &str, title: &str, by: &str, author: &str) -> Vec<String> {
    let mut lines = wrap(&clean(kicker), WIDTH, "", "");
    lines.extend(heading(title, '-'));
    let author = clean(author);
    if !author.is_empty() {
        lines.extend(wrap(&format!("{by} {author}"), WIDTH, "", ""));
    }
    lines
}

fn event(e: &Event, issue: &Issue, links: &mut LinkList) -> Vec<String> {
    let mut lines = wrap(
        &timefmt::event_time(
            &e.start,
            &issue.publisher.event_zones,
            &issue.publisher.zone_labels,
            &issue.language,
        ),
        WIDTH,
        "",
        "",
    );
    let mut what = [clean(&e.organizer), clean(&e.kind)]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    let title = clean(&e.title);
    if !what.is_empty() && !title.is_empty() {
        what.push_str(": ");
    }
    what.push_str(&title);
    if safe_url(&e.url).is_some() {
        push_reference(&mut what, links, &e.url);
    }
    lines.extend(wrap(&what, WIDTH, "", ""));
    if let Some(n) = calendar::number_of(issue, e) {
        let mut add = issue.publisher.words.add_to_calendar.clone();
        push_reference(&mut add, links, &calendar::event_url(issue, n));
        lines.extend(wrap(&add, WIDTH, "", ""));
    }
    lines
}

fn news(n: &NewsItem, marks: &Marks, links: &mut LinkList) -> Vec<Vec<String>> {
    // The initials close the last paragraph, as in print ("... more. rtr"),
    // held to its last word so they never dangle on a line of their own.
    let (init, mut tail) = match n.body.blocks.split_last() {
        Some((Block::Paragraph(inl), init)) => (init, inline_text(inl, marks, links)),
        _ => (n.body.blocks.as_slice(), String::new()),
    };
    let init = blocks_lines(init, WIDTH, marks, links);
    let source = clean(&n.source);
    if !source.is_empty() {
        push_held(&mut tail, &source);
    }
    vec![heading(&n.title, '-'), init, wrap(&tail, WIDTH, "", "")]
}

fn heads(h: &Heads, marks: &Marks, links: &mut LinkList) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    for p in &h.people {
        let mut lines = wrap(&clean(&p.name), WIDTH, "", "");
        let role = [p.role.as_deref(), p.organisation.as_deref()]
            .into_iter()
            .flatten()
            .map(clean)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        lines.extend(wrap(&role, WIDTH, "", ""));
        blocks.push(lines);
        blocks.push(blocks_lines(&p.body.blocks, WIDTH, marks, links));
    }
    blocks.push(blocks_lines(&h.call_to_action.blocks, WIDTH, marks, links));
    blocks
}

fn closing(c: &Closing, w: &Words, marks: &Marks, links: &mut LinkList) -> Vec<Vec<String>> {
    let mut blocks = vec![heading(&c.title, '-')];
    // Where the HTML shows the photo; its URL is cited too, so text readers
    // can still open it. The HTML drops an image it may not link, so do we.
    if let Some(img) = &c.image
        && safe_url(&img.url).is_some()
    {
        let mut alt = match clean(&img.alt) {
            a if a.is_empty() => format!("[{}]", w.image),
            a => format!("[{}: {a}]", w.image),
        };
        push_reference(&mut alt, links, &img.url);
        blocks.push(wrap(&alt, WIDTH, "", ""));
    }
    blocks.push(blocks_lines(&c.body.blocks, WIDTH, marks, links));
    blocks
}

/// A heading wrapped at [`WIDTH`] and underlined with `ch`.
fn heading(text: &str, ch: char) -> Vec<String> {
    underlined(wrap(&clean(text), WIDTH, "", ""), ch, WIDTH)
}

/// `lines` with a rule of `ch` under them, as wide as the widest line but
/// no wider than `width` (a long URL in a heading may run past it).
fn underlined(mut lines: Vec<String>, ch: char, width: usize) -> Vec<String> {
    let w = lines
        .iter()
        .map(|l| display_width(l))
        .max()
        .unwrap_or(0)
        .min(width);
    if w > 0 {
        lines.push(ch.to_string().repeat(w));
    }
    lines
}

fn blocks_lines(
    blocks: &[Block],
    width: usize,
    marks: &Marks,
    links: &mut LinkList,
) -> Vec<String> {
    let rendered = blocks
        .iter()
        .map(|b| block_lines(b, width, marks, links))
        .collect();
    join_blocks(rendered)
}

fn block_lines(block: &Block, width: usize, marks: &Marks, links: &mut LinkList) -> Vec<String> {
    match block {
        Block::Paragraph(inl) => wrap(&inline_text(inl, marks, links), width, "", ""),
        Block::Heading(_, inl) => {
            // Titles take `=` and `-`; a subheading inside a body ranks below.
            underlined(
                wrap(&inline_text(inl, marks, links), width, "", ""),
                '~',
                width,
            )
        }
        Block::List { ordered, items } => {
            let loose = items.iter().any(|item| item.len() > 1);
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let marker = if *ordered {
                    format!("{}. ", i + 1)
                } else {
                    "- ".to_string()
                };
                let inner = blocks_lines(item, narrower(width, marker.len()), marks, links);
                if loose && i > 0 {
                    out.push(String::new());
                }
                if inner.is_empty() {
                    out.push(marker.trim_end().to_string());
                }
                let pad = " ".repeat(marker.len());
                for (j, line) in inner.into_iter().enumerate() {
                    out.push(match (j, line.is_empty()) {
                        (0, _) => format!("{marker}{line}"),
                        (_, true) => line,
                        (_, false) => format!("{pad}{line}"),
                    });
                }
            }
            out
        }
        Block::Quote(inner) => blocks_lines(inner, narrower(width, 2), marks, links)
            .into_iter()
            .map(|l| {
                if l.is_empty() {
                    ">".into()
                } else {
                    format!("> {l}")
                }
            })
            .collect(),
        Block::Code(code) => code_lines(code, width),
        Block::Rule => vec!["---".to_string()],
    }
}

fn narrower(width: usize, by: usize) -> usize {
    width.saturating_sub(by).max(MIN_WIDTH)
}

/// Code keeps its lines; only a line that would pass [`MAX_LINE`] is cut.
fn code_lines(code: &str, width: usize) -> Vec<String> {
    const INDENT: &str = "    ";
    let limit = (width + (MAX_LINE - WIDTH))
        .saturating_sub(INDENT.len())
        .max(MIN_WIDTH);
    let mut out = Vec::new();
    for raw in code.lines() {
        let line = expand_tabs(&clean_keep_spaces(raw));
        let line = line.trim_end();
        if line.is_empty() {
            out.push(String::new());
        } else if display_width(line) <= limit || is_lone_url(line.trim_start()) {
            out.push(format!("{INDENT}{line}"));
        } else {
            let pieces = chunks(line, limit).into_iter();
            out.extend(pieces.map(|c| format!("{INDENT}{}", c.trim_end())));
        }
    }
    trim_blank_ends(out)
}

fn expand_tabs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut col = 0;
    for c in s.chars() {
        if c == '\t' {
            let n = 4 - col % 4;
            out.extend(std::iter::repeat_n(' ', n));
            col += n;
        } else {
            out.push(c);
            col += c.width().unwrap_or(0);
        }
    }
    out
}

/// Splits `s` into pieces at most `limit` columns wide (at least one char).
fn chunks(s: &str, limit: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut w) = (0, 0);
    for (i, c) in s.char_indices() {
        let cw = c.width().unwrap_or(0);
        if w + cw > limit && i > start {
            out.push(&s[start..i]);
            start = i;
            w = 0;
        }
        w += cw;
    }
    out.push(&s[start..]);
    out
}

/// The text of a run of inlines, with link references cited in `links`,
/// merge tags as slot markers and hard breaks as `\n`.
fn inline_text(inl: &[Inline], marks: &Marks, links: &mut LinkList) -> String {
    let mut out = String::new();
    push_inlines(&mut out, inl, marks, links);
    out
}

fn push_inlines(out: &mut String, inl: &[Inline], marks: &Marks, links: &mut LinkList) {
    for i in inl {
        match i {
            Inline::Text(t) => push_clean(out, t),
            // Code is copied as written: no no-break spaces in a command.
            Inline::Code(t) => push_plain(out, t),
            Inline::Emphasis(c) | Inline::Strong(c) => push_inlines(out, c, marks, links),
            Inline::Link(l) => match safe_url(&l.url) {
                // An autolink already shows its URL; a reference would repeat it.
                Some(url) if plain_text(&l.content).trim() == l.url.trim() => {
                    push_plain(out, &url);
                }
                Some(_) => {
                    push_inlines(out, &l.content, marks, links);
                    push_reference(out, links, &l.url);
                }
                // As in the HTML: a scheme no email may link to shows its text only.
                None => push_inlines(out, &l.content, marks, links),
            },
            Inline::LineBreak => {
                trim_end_spaces(out);
                out.push('\n');
            }
            Inline::Field(f) => out.push_str(&marks.mark(Slot::Field(f.clone()))),
        }
    }
}

/// Appends ` [n]` for `url`, held to the preceding word (even a URL, which
/// then carries its reference on its own line) so a reference never starts
/// a line, where it would read like an entry of the reference list.
fn push_reference(out: &mut String, links: &mut LinkList, url: &str) {
    let n = links.cite(url);
    trim_end_spaces(out);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push(GLUE);
    }
    out.push_str(&format!("[{n}]"));
}

/// Appends ` tail`, unbroken and held to the last word so it never dangles
/// on a line of its own; but not to a URL, whose line may already be full.
fn push_held(out: &mut String, tail: &str) {
    trim_end_spaces(out);
    if !out.is_empty() && !out.ends_with('\n') {
        let last_word = out.rsplit([' ', '\n']).next().unwrap_or("");
        out.push(if url_start(last_word).is_some() {
            ' '
        } else {
            GLUE
        });
    }
    // One bracket around the whole tail; brackets inside it would end it early.
    out.push(KEEP_OPEN);
    out.push_str(&tail.replace([KEEP_OPEN, KEEP_CLOSE], ""));
    out.push(KEEP_CLOSE);
}

fn trim_end_spaces(out: &mut String) {
    out.truncate(out.trim_end_matches(' ').len());
}

/// Characters that must never reach the text part: invisible format and
/// bidi controls (P4), preheader padding, and our own private markers.
fn is_banned(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | MARK_OPEN
            | MARK_CLOSE
            | GLUE
            | KEEP_OPEN
            | KEEP_CLOSE
    )
}

/// Spaces that must not become break opportunities.
fn is_nonbreaking_space(c: char) -> bool {
    matches!(c, '\u{00A0}' | '\u{2007}' | '\u{202F}' | '\u{3000}')
}

/// Appends user prose as [`push_plain`] does, with each number and its
/// unit, and each time, made one unbreakable run (see [`nobreak`]): its
/// spaces become no-break spaces, which a client re-wrapping the text on a
/// phone honours too, and the run is bracketed so the wrapper never breaks
/// inside it (not even after the slash of `$50/kWh`).
fn push_clean(out: &mut String, s: &str) {
    if !nobreak::has_digit(s) {
        return push_plain(out, s);
    }
    let start = out.len();
    push_plain(out, s);
    let added = out.split_off(start);
    let mut at = 0;
    for run in nobreak::held_runs(&added) {
        out.push_str(&added[at..run.start]);
        out.push(KEEP_OPEN);
        nobreak::push_joined(out, &added[run.clone()]);
        out.push(KEEP_CLOSE);
        at = run.end;
    }
    out.push_str(&added[at..]);
}

/// Appends user text with whitespace collapsed to single spaces, as HTML
/// shows it, and banned and control characters dropped.
fn push_plain(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_whitespace() && !is_nonbreaking_space(c) {
            if !out.is_empty() && !out.ends_with(' ') && !out.ends_with('\n') {
                out.push(' ');
            }
        } else if !c.is_control() && !is_banned(c) {
            out.push(c);
        }
    }
}

/// User text for a single-line field (title, name, label).
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_clean(&mut out, s);
    trim_end_spaces(&mut out);
    out
}

/// Like [`clean`] but keeps spaces as they are, for code.
fn clean_keep_spaces(s: &str) -> String {
    s.chars()
        .filter(|&c| c == '\t' || !(c.is_control() || is_banned(c)))
        .collect()
}

/// A URL with anything that could split it or hide in it removed.
fn clean_url(s: &str) -> String {
    s.chars()
        .filter(|&c| !(c.is_whitespace() || c.is_control() || is_banned(c)))
        .collect()
}

/// The URL, cleaned, when its scheme is one an email may link to (the same
/// rule as the HTML's).
fn safe_url(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, _) = url.split_once(':')?;
    ["https", "http", "mailto"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
        .then(|| clean_url(url))
}

fn is_lone_url(s: &str) -> bool {
    !s.contains(char::is_whitespace) && url_start(s) == Some(0)
}

/// Byte offset where the first URL in a space-free token starts.
fn url_start(token: &str) -> Option<usize> {
    let lower = token.to_ascii_lowercase();
    URL_STARTS.iter().filter_map(|p| lower.find(p)).min()
}

/// Display width with each slot marker counted as [`SLOT_WRAP_WIDTH`].
fn display_width(s: &str) -> usize {
    if s.contains([KEEP_OPEN, KEEP_CLOSE]) {
        return display_width(&s.replace([KEEP_OPEN, KEEP_CLOSE], ""));
    }
    let mut w = 0;
    let mut rest = s;
    while let Some(open) = rest.find(MARK_OPEN) {
        w += rest[..open].width();
        match rest[open..].find(MARK_CLOSE) {
            Some(close) => {
                w += SLOT_WRAP_WIDTH;
                rest = &rest[open + close + MARK_CLOSE.len_utf8()..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    w + rest.width()
}

/// Wraps `text` at `width` columns, `\n` being a hard break. The first line
/// starts with `first`, all others with `rest`. URLs, slot markers and a
/// link's reference are never split; a word too long for any line (not a
/// URL) is cut so no line runs past the measure.
fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let text = text.trim_matches(|c| c == ' ' || c == '\n');
    let mut out: Vec<String> = Vec::new();
    if text.is_empty() {
        return out;
    }
    let avail = |indent: &str| width.saturating_sub(display_width(indent)) as f64;
    for hard in text.split('\n') {
        let hard = hard.trim_matches(' ');
        if hard.is_empty() {
            out.push(String::new());
            continue;
        }
        let indent_now = if out.is_empty() { first } else { rest };
        let widths = [avail(indent_now), avail(rest)];
        let words = cut_overlong(find_words(hard), width.saturating_sub(display_width(rest)));
        for line in wrap_first_fit(&words, &widths) {
            let mut s = if out.is_empty() { first } else { rest }.to_string();
            for (i, w) in line.iter().enumerate() {
                s.push_str(w.word);
                if i + 1 < line.len() {
                    s.push_str(w.whitespace);
                }
            }
            let s = s.replace(GLUE, " ").replace([KEEP_OPEN, KEEP_CLOSE], "");
            out.push(s.trim_end().to_string());
        }
    }
    out
}

/// Words of one hard line: space-separated tokens, split further at Unicode
/// line-break opportunities (for CJK), except inside a URL or slot marker
/// or before a reference.
fn find_words(line: &str) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let end = rest.find(' ').unwrap_or(rest.len());
        let ws_end = rest.len() - rest[end..].trim_start_matches(' ').len();
        push_token_words(&rest[..end], &rest[end..ws_end], &mut words);
        rest = &rest[ws_end..];
    }
    words
}

fn push_token_words<'a>(token: &'a str, whitespace: &'a str, words: &mut Vec<Word<'a>>) {
    let url = url_start(token);
    // Checking each break costs a scan of the token; a long CJK run with
    // nothing to protect skips it.
    let plain = url.is_none() && !token.contains([MARK_OPEN, GLUE, KEEP_OPEN]);
    let mut cuts = Vec::new();
    let mut at = 0;
    for w in WordSeparator::UnicodeBreakProperties.find_words(token) {
        at += w.word.len() + w.whitespace.len();
        if at < token.len() && (plain || may_break(token, at, url)) {
            cuts.push(at);
        }
    }
    cuts.push(token.len());
    let mut start = 0;
    for cut in cuts {
        let word = &token[start..cut];
        words.push(Word {
            word,
            whitespace: if cut == token.len() { whitespace } else { "" },
            penalty: "",
            width: display_width(word),
        });
        start = cut;
    }
}

fn may_break(token: &str, at: usize, url: Option<usize>) -> bool {
    let (before, after) = token.split_at(at);
    let in_marker = before.rfind(MARK_OPEN) > before.rfind(MARK_CLOSE);
    let in_keep = before.rfind(KEEP_OPEN) > before.rfind(KEEP_CLOSE);
    let in_url = url.is_some_and(|u| u < at);
    !in_marker && !in_keep && !in_url && !after.starts_with(GLUE) && !before.ends_with(GLUE)
}

/// Cuts plain words wider than `limit` into pieces that fit.
fn cut_overlong(words: Vec<Word<'_>>, limit: usize) -> Vec<Word<'_>> {
    let limit = limit.max(1);
    let mut out = Vec::with_capacity(words.len());
    for w in words {
        let protected =
            w.word.contains([MARK_OPEN, GLUE, KEEP_OPEN]) || url_start(w.word).is_some();
        if w.width <= limit || protected {
            out.push(w);
            continue;
        }
        let pieces = chunks(w.word, limit);
        let last = pieces.len() - 1;
        for (i, p) in pieces.into_iter().enumerate() {
            out.push(Word {
                word: p,
                whitespace: if i == last { w.whitespace } else { "" },
                penalty: "",
                width: display_width(p),
            });
        }
    }
    out
}

/// Joins blocks of lines with one blank line, skipping empty blocks.
fn join_blocks(blocks: Vec<Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in blocks.into_iter().map(trim_blank_ends) {
        if b.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(String::new());
        }
        out.extend(b);
    }
    out
}

fn trim_blank_ends(mut lines: Vec<String>) -> Vec<String> {
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let lead = lines.iter().take_while(|l| l.is_empty()).count();
    lines.drain(..lead);
    lines
}

/// Lines joined, each ending in `\n`.
fn finish(lines: Vec<String>) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::render::Part;
    use crate::model::strip_marks;
    use crate::model::{Field, Link};

    fn text(s: &str) -> Inline {
        Inline::Text(s.to_string())
    }

    fn link(url: &str, s: &str) -> Inline {
        Inline::Link(Link {
            url: url.to_string(),
            content: vec![text(s)],
        })
    }

    fn field(name: &str) -> Inline {
        Inline::Field(Field {
            name: name.to_string(),
            fallback: Some("reader".to_string()),
        })
    }

    fn para(inl: Vec<Inline>) -> Body {
        Body {
            blocks: vec![Block::Paragraph(inl)],
        }
    }

    fn render_body(b: &Body) -> (String, Vec<String>) {
        let marks = Marks::new();
        let mut links = LinkList::new();
        let s = body(b, &marks, &mut links);
        (s, links.drain_lines())
    }

    const LOREM: &str = "The possible sale of Volkswagen plants in Germany to \
        Chinese investors would be a turning point. For decades, it was the other way \
        around. Money flowed from Germany to the People’s Republic, which BMW, Mercedes \
        and other manufacturers used to build plants there.";

    #[test]
    fn marker_characters_match_render_module() {
        let m = Marks::new().mark(Slot::UnsubscribeUrl);
        assert!(m.starts_with(MARK_OPEN) && m.ends_with(MARK_CLOSE), "{m:?}");
        assert_eq!(strip_marks(&m), "0");
    }

    #[test]
    fn prose_wraps_at_72_without_losing_words() {
        let (s, _) = render_body(&para(vec![text(LOREM)]));
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines.len() >= 4, "{s}");
        for l in &lines {
            assert!(l.width() <= WIDTH, "{l:?}");
        }
        // First fit: the next word would not have fitted on the line.
        for pair in lines.windows(2) {
            let next = pair[1].split(' ').next().unwrap_or("");
            assert!(pair[0].width() + 1 + next.width() > WIDTH, "{pair:?}");
        }
        let words: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(words, LOREM.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn long_url_goes_on_its_own_line_unbroken() {
        let url = format!("https://example.com/{}", "a-b/c".repeat(20));
        let (s, _) = render_body(&para(vec![text("See "), link(&url, &url), text(" now.")]));
        assert!(s.lines().any(|l| l == url), "{s}");
        assert_eq!(s, format!("See\n{url}\nnow.\n"));
    }

    #[test]
    fn url_that_fits_stays_in_the_line_and_hyphens_do_not_split_it() {
        let url = "https://ex.com/a-very-long-path-with-many-hyphens-in-it";
        let inl = vec![text("x ".repeat(30).trim_end()), text(" "), link(url, url)];
        let (s, _) = render_body(&para(inl));
        assert_eq!(s.lines().nth(1), Some(url), "{s}");
    }

    #[test]
    fn cjk_counts_double_width() {
        let cjk = "小红书维吾尔".repeat(10);
        let (s, _) = render_body(&para(vec![text(&cjk)]));
        let lines: Vec<&str> = s.lines().collect();
        // 60 ideographs are 120 columns: 36 a line at width 72.
        assert_eq!(lines.len(), 2, "{s}");
        assert_eq!(lines[0].chars().count(), 36);
        assert_eq!(lines[0].width(), 72);
        assert_eq!(lines.concat(), cjk);
    }

    #[test]
    fn underline_matches_display_width() {
        assert_eq!(heading("小红书 app", '-'), vec!["小红书 app", "----------"]);
        assert_eq!(heading("naïve", '='), vec!["naïve", "====="]);
    }

    #[test]
    fn references_are_numbered_across_sections_and_listed() {
        let marks = Marks::new();
        let mut links = LinkList::new();
        let b1 = para(vec![
            link("https://a.example/", "one"),
            text(" and "),
            link("https://b.example/", "two"),
            text(" and "),
            link("https://a.example/", "one again"),
        ]);
        let s1 = body(&b1, &marks, &mut links);
        assert_eq!(s1, "one [1] and two [2] and one again [1]\n");
        assert_eq!(
            links.drain_lines(),
            vec!["[1] https://a.example/", "[2] https://b.example/"]
        );
        let b2 = para(vec![link("mailto:heads@example.org", "heads@example.org")]);
        let s2 = body(&b2, &marks, &mut links);
        assert_eq!(s2, "heads@example.org [3]\n");
        assert_eq!(links.drain_lines(), vec!["[3] mailto:heads@example.org"]);
        assert!(links.drain_lines().is_empty());
    }

    #[test]
    fn links_the_html_would_not_make_show_their_text_only() {
        let inl = vec![
            link("javascript:alert(1)", "click"),
            text(" or "),
            link(" HTTPS://a.example/x ", "this"),
        ];
        let (s, refs) = render_body(&para(inl));
        assert_eq!(s, "click or this [1]\n");
        assert_eq!(refs, vec!["[1] HTTPS://a.example/x"]);
    }

    #[test]
    fn reference_never_starts_a_line() {
        for n in 60..75 {
            let inl = vec![
                text(&"x".repeat(n)),
                text(" "),
                link("https://a.example/", "word"),
            ];
            let (s, _) = render_body(&para(inl));
            assert!(s.contains("word [1]"), "{s}");
            assert!(s.lines().all(|l| !l.starts_with('[')), "{s}");
        }
        let cjk = "小红书".repeat(11);
        let (s, _) = render_body(&para(vec![link("https://a.example/", &cjk)]));
        assert!(s.lines().all(|l| !l.starts_with('[')), "{s}");
    }

    #[test]
    fn markdown_syntax_and_entities_never_leak() {
        let b = Body {
            blocks: vec![
                Block::Heading(2, vec![text("Sub"), Inline::Strong(vec![text("head")])]),
                Block::Paragraph(vec![
                    Inline::Emphasis(vec![text("soft")]),
                    text(" and "),
                    Inline::Strong(vec![text("loud "), Inline::Emphasis(vec![text("both")])]),
                    text(" with "),
                    Inline::Code("x + y".to_string()),
                    text(" at AT&T\u{a0}Inc."),
                    Inline::LineBreak,
                    text("next"),
                ]),
            ],
        };
        let (s, _) = render_body(&b);
        assert_eq!(
            s,
            "Subhead\n~~~~~~~\n\nsoft and loud both with x + y at AT&T\u{a0}Inc.\nnext\n"
        );
        for bad in ["*", "_", "`", "&amp;", "&nbsp;", "<", ">"] {
            assert!(!s.contains(bad), "{bad} in {s}");
        }
    }

    #[test]
    fn invisible_controls_tabs_and_our_markers_are_dropped() {
        let dirty = "a\u{200b}b\u{202e}c\u{2066}d\u{feff}e\u{ad}f\u{e000}g\u{e002}h\ti\u{1b}[1mj";
        let (s, _) = render_body(&para(vec![text(dirty)]));
        assert_eq!(s, "abcdefgh i[1mj\n");
    }

    #[test]
    fn lists_quotes_and_code_are_laid_out() {
        let long = "word ".repeat(20);
        let b = Body {
            blocks: vec![
                Block::List {
                    ordered: false,
                    items: vec![
                        vec![Block::Paragraph(vec![text(&long)])],
                        vec![Block::Paragraph(vec![text("short")])],
                    ],
                },
                Block::List {
                    ordered: true,
                    items: vec![vec![Block::Paragraph(vec![text("first")])]],
                },
                Block::Quote(vec![
                    Block::Paragraph(vec![text(&long)]),
                    Block::Paragraph(vec![text("end")]),
                ]),
                Block::Code("fn main() {\n\tlet x = 1;  \n}\n".to_string()),
                Block::Rule,
            ],
        };
        let (s, _) = render_body(&b);
        let expected = "\
- word word word word word word word word word word word word word word
  word word word word word word
- short

1. first

> word word word word word word word word word word word word word word
> word word word word word word
>
> end

    fn main() {
        let x = 1;
    }

---
";
        assert_eq!(s, expected);
    }

    #[test]
    fn overlong_code_lines_are_cut_but_urls_are_not() {
        let url = format!("https://example.com/{}", "x".repeat(100));
        let code = format!("{}\n{url}\n", "y".repeat(100));
        let (s, _) = render_body(&Body {
            blocks: vec![Block::Code(code)],
        });
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1].trim(), "y".repeat(100 - (MAX_LINE - 4)));
        assert_eq!(lines[2], format!("    {url}"));
    }

    #[test]
    fn overlong_plain_word_is_cut_to_fit() {
        let word = "Donaudampfschifffahrt".repeat(5);
        let (s, _) = render_body(&para(vec![text(&word)]));
        assert!(s.lines().all(|l| l.width() <= WIDTH), "{s}");
        assert_eq!(s.replace('\n', ""), word);
    }

    #[test]
    fn slot_markers_stay_whole_when_wrapping() {
        let marks = Marks::new();
        let mut links = LinkList::new();
        let mut inl = Vec::new();
        for i in 0..40 {
            inl.push(text(&format!("w{i} ")));
            inl.push(field("name"));
            inl.push(text(if i % 2 == 0 { ", " } else { "小红书" }));
        }
        let s = body(&para(inl), &marks, &mut links);
        for line in s.lines() {
            assert!(display_width(line) <= WIDTH, "{line:?}");
            assert_eq!(
                line.matches(MARK_OPEN).count(),
                line.matches(MARK_CLOSE).count()
            );
        }
        let t = marks.into_template(&s, Escape::None);
        assert_eq!(t.slots().count(), 40);
        for p in &t.parts {
            if let Part::Static(st) = p {
                assert!(!st.contains([MARK_OPEN, MARK_CLOSE]), "{st:?}");
            }
        }
    }

    #[test]
    fn no_break_inside_a_slot_url_or_kept_text_nor_before_a_reference() {
        let slot = Marks::new().mark(Slot::UnsubscribeUrl);
        let t = format!("小{slot}红");
        assert!(may_break(&t, '小'.len_utf8(), None));
        assert!(!may_break(&t, '小'.len_utf8() + MARK_OPEN.len_utf8(), None));
        let t = "见https://a.cn/b";
        assert!(may_break(t, '见'.len_utf8(), url_start(t)));
        assert!(!may_break(t, t.len() - 2, url_start(t)));
        let t = format!("书{GLUE}[3]");
        assert!(!may_break(&t, '书'.len_utf8(), None));
        let t = format!("x{GLUE}{KEEP_OPEN}rtr/grz{KEEP_CLOSE}");
        let slash = t.find('/').map_or(0, |i| i + 1);
        assert!(!may_break(&t, slash, None));
        assert!(may_break("rtr/grz", 4, None));
    }

    #[test]
    fn slot_counts_as_slot_wrap_width() {
        // 59 x, a space and a slot are 72 columns; one more x is too many.
        for (n, lines) in [(60, 1), (61, 2)] {
            let marks = Marks::new();
            let mut links = LinkList::new();
            let inl = vec![text(&"x".repeat(n - 1)), text(" "), field("name")];
            let s = body(&para(inl), &marks, &mut links);
            assert_eq!(s.lines().count(), lines, "{n}: {s:?}");
        }
    }

    #[test]
    fn no_trailing_spaces_even_around_breaks() {
        let inl = vec![
            text("a  "),
            Inline::LineBreak,
            text("  b \u{3000}"),
            Inline::LineBreak,
            Inline::LineBreak,
            text("c   "),
        ];
        let (s, _) = render_body(&para(inl));
        assert_eq!(s, "a\nb\n\nc\n");
    }
}
