//! Markdown bodies (CommonMark via pulldown-cmark) into [`Body`] values.
//!
//! Raw HTML in a body is kept as visible text, never passed through: an
//! editor's `<script>` must arrive as the characters `<script>`. Links must be
//! http(s) or mailto. `{{ field }}` and `{{ field | default: "text" }}` are
//! merge tags.

use std::ops::Range;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::diagnostic::Severity;
use crate::model::strip_marks;
use crate::model::{Block, Body, Field, Inline, Link};

/// A problem in a Markdown text, at a byte range of that text.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Byte range in the Markdown source.
    pub span: Range<usize>,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Parses a Markdown body; problems point into `source`.
pub fn parse(source: &str) -> (Body, Vec<Problem>) {
    let mut b = Builder::default();
    let parser = Parser::new_ext(source, Options::empty()).into_offset_iter();
    for (event, range) in parser {
        b.event(event, range);
    }
    b.flush_text();
    while b.stack.len() > 1 {
        b.close();
    }
    let blocks = b.stack.pop().map(|f| f.blocks).unwrap_or_default();
    let mut problems = b.problems;
    problems.extend(tags_in_link_targets(source));
    // The Markdown parser drops or replaces these without a word; a body
    // of NULs would go out as an empty paragraph.
    if let Some((i, c)) = source
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        let count = source
            .chars()
            .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            .count();
        problems.push(Problem {
            severity: Severity::Error,
            span: i..i + c.len_utf8(),
            message: format!(
                "the text contains the control character U+{:04X} ({count} in all), expected plain text",
                u32::from(c)
            ),
        });
    }
    (Body { blocks }, problems)
}

/// Merge tags inside `](…)`: in a link's target (or in what would be one,
/// had the tag's spaces not stopped Markdown from reading it as a link).
fn tags_in_link_targets(source: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = source[from..].find("](") {
        let start = from + i + 2;
        let end = source[start..]
            .find([')', '\n'])
            .map_or(source.len(), |e| start + e);
        let target = &source[start..end];
        if target.contains("{{") {
            out.push(Problem {
                severity: Severity::Error,
                span: start..end,
                message: UrlError::MergeTag(target.trim().to_string()).to_string(),
            });
        }
        from = end;
    }
    out
}

/// Parses a single line of inline Markdown (salutations, calls to action)
/// into inlines; block structure is flattened.
pub fn parse_inline(source: &str) -> (Vec<Inline>, Vec<Problem>) {
    let (body, problems) = parse(source);
    let mut out = Vec::new();
    for block in body.blocks {
        if let Block::Paragraph(inl) | Block::Heading(_, inl) = block {
            if !out.is_empty() {
                out.push(Inline::Text(" ".into()));
            }
            out.extend(inl);
        }
    }
    (out, problems)
}

/// Why a link target cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// `mailto:` without an address.
    #[error("`{0}` has no address, expected mailto:name@domain")]
    NoAddress(String),
    /// Neither a web nor a mail link.
    #[error("`{0}` is not a web or mail link, expected https://…, http://… or mailto:…")]
    Scheme(String),
    /// No host after the scheme.
    #[error("`{0}` has no host, expected https://host/…")]
    NoHost(String),
    /// A merge tag in the target: a reader's data would travel to whoever
    /// the link points at.
    #[error(
        "`{0}` holds a merge tag; merge tags go in the text of a link, never in its target, so no reader's data travels to another host"
    )]
    MergeTag(String),
    /// Unencoded white space.
    #[error("`{0}` contains spaces, expected them as %20")]
    Spaces(String),
    /// The URL parser refuses it.
    #[error("`{url}` is not a valid URL ({reason})")]
    Invalid {
        /// The target as written.
        url: String,
        /// The parser's complaint.
        reason: String,
    },
}

/// Checks a link target: absolute http(s) or mailto.
pub fn check_url(url: &str) -> Result<(), UrlError> {
    if url.contains("{{") {
        return Err(UrlError::MergeTag(url.into()));
    }
    let lower = url.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("mailto:") {
        if rest.contains('@') {
            return Ok(());
        }
        return Err(UrlError::NoAddress(url.into()));
    }
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(UrlError::Scheme(url.into()));
    }
    // The url crate reads `https:///x` as host `x`; editors mean a typo.
    if lower
        .split_once("://")
        .is_some_and(|(_, rest)| rest.starts_with('/'))
    {
        return Err(UrlError::NoHost(url.into()));
    }
    match url::Url::parse(url) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => {
            if url.chars().any(char::is_whitespace) {
                Err(UrlError::Spaces(url.into()))
            } else {
                Ok(())
            }
        }
        Ok(_) => Err(UrlError::NoHost(url.into())),
        Err(e) => Err(UrlError::Invalid {
            url: url.into(),
            reason: e.to_string(),
        }),
    }
}

#[derive(Debug)]
enum Frame {
    Root,
    Paragraph,
    Heading(u8),
    List(bool),
    Item,
    Quote,
    Emphasis,
    Strong,
    Link(String),
    Image(String),
    Code,
}

#[derive(Debug)]
struct Level {
    frame: Frame,
    blocks: Vec<Block>,
    inlines: Vec<Inline>,
    items: Vec<Vec<Block>>,
    code: String,
}

impl Level {
    fn new(frame: Frame) -> Self {
        Self {
            frame,
            blocks: Vec::new(),
            inlines: Vec::new(),
            items: Vec::new(),
            code: String::new(),
        }
    }
}

struct Builder {
    stack: Vec<Level>,
    text: String,
    text_start: usize,
    problems: Vec<Problem>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            stack: vec![Level::new(Frame::Root)],
            text: String::new(),
            text_start: 0,
            problems: Vec::new(),
        }
    }
}

impl Builder {
    fn top(&mut self) -> &mut Level {
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    fn push_inline(&mut self, i: Inline) {
        self.flush_text();
        self.inline_sink().push(i);
    }

    /// Where inline content goes: the innermost frame. Text directly in a
    /// container (tight list items) becomes a paragraph when it closes.
    fn inline_sink(&mut self) -> &mut Vec<Inline> {
        &mut self.top().inlines
    }

    fn add_text(&mut self, s: &str, start: usize) {
        if self.text.is_empty() {
            self.text_start = start;
        }
        self.text.push_str(&strip_marks(s));
    }

    /// Turns buffered text into inlines, splitting out merge tags.
    fn flush_text(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        let start = self.text_start;
        let mut rest = text.as_str();
        let mut offset = 0;
        let mut out = Vec::new();
        while let Some(open) = rest.find("{{") {
            let Some(close_rel) = rest[open..].find("}}") else {
                self.problems.push(Problem {
                    severity: Severity::Error,
                    span: start + offset + open..start + offset + rest.len(),
                    message: "merge tag is not closed, expected `}}`".into(),
                });
                break;
            };
            if open > 0 {
                out.push(Inline::Text(rest[..open].to_string()));
            }
            let inner = &rest[open + 2..open + close_rel];
            match parse_tag(inner) {
                Ok(field) => out.push(Inline::Field(field)),
                Err(msg) => self.problems.push(Problem {
                    severity: Severity::Error,
                    span: start + offset + open..start + offset + open + close_rel + 2,
                    message: msg.to_string(),
                }),
            }
            let consumed = open + close_rel + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            out.push(Inline::Text(rest.to_string()));
        }
        let sink = self.inline_sink();
        for i in out {
            match (sink.last_mut(), i) {
                (Some(Inline::Text(prev)), Inline::Text(t)) => prev.push_str(&t),
                (_, i) => sink.push(i),
            }
        }
    }

    fn open(&mut self, frame: Frame) {
        self.flush_text();
        self.stack.push(Level::new(frame));
    }

    /// Closes the innermost frame and attaches what it built to its parent.
    fn close(&mut self) {
        self.flush_text();
        let Some(mut level) = self.stack.pop() else {
            return;
        };
        if self.stack.is_empty() {
            self.stack.push(level);
            return;
        }
        // Loose text left in a container becomes a paragraph.
        if !level.inlines.is_empty()
            && matches!(level.frame, Frame::Item | Frame::Quote | Frame::Root)
        {
            let inl = std::mem::take(&mut level.inlines);
            level.blocks.push(Block::Paragraph(inl));
        }
        match level.frame {
            Frame::Root => {}
            Frame::Paragraph => self.attach_block(Block::Paragraph(level.inlines)),
            Frame::Heading(n) => self.attach_block(Block::Heading(n, level.inlines)),
            Frame::List(ordered) => self.attach_block(Block::List {
                ordered,
                items: level.items,
            }),
            Frame::Item => self.top().items.push(level.blocks),
            Frame::Quote => self.attach_block(Block::Quote(level.blocks)),
            Frame::Code => self.attach_block(Block::Code(level.code)),
            Frame::Emphasis => self.top().inlines.push(Inline::Emphasis(level.inlines)),
            Frame::Strong => self.top().inlines.push(Inline::Strong(level.inlines)),
            Frame::Link(url) => self.top().inlines.push(Inline::Link(Link {
                url,
                content: level.inlines,
            })),
            Frame::Image(url) => {
                let alt = level.inlines;
                self.top()
                    .inlines
                    .push(Inline::Link(Link { url, content: alt }));
            }
        }
    }

    fn attach_block(&mut self, block: Block) {
        let top = self.top();
        if !top.inlines.is_empty() {
            let inl = std::mem::take(&mut top.inlines);
            top.blocks.push(Block::Paragraph(inl));
        }
        top.blocks.push(block);
    }

    /// A link target, trimmed; an error at `range` if it cannot be used.
    fn checked_url(&mut self, dest: &str, range: &Range<usize>) -> String {
        let url = dest.trim().to_string();
        // `tags_in_link_targets` has reported these, links or not.
        if let Err(e) = check_url(&url).or_else(|e| match e {
            UrlError::MergeTag(_) => Ok(()),
            e => Err(e),
        }) {
            self.problems.push(Problem {
                severity: Severity::Error,
                span: range.clone(),
                message: e.to_string(),
            });
        }
        url
    }

    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Paragraph => self.open(Frame::Paragraph),
                Tag::Heading { level, .. } => self.open(Frame::Heading(heading_level(level))),
                Tag::BlockQuote(_) => self.open(Frame::Quote),
                Tag::CodeBlock(_) => self.open(Frame::Code),
                Tag::List(start) => self.open(Frame::List(start.is_some())),
                Tag::Item => self.open(Frame::Item),
                Tag::Emphasis => self.open(Frame::Emphasis),
                Tag::Strong => self.open(Frame::Strong),
                Tag::Link { dest_url, .. } => {
                    let url = self.checked_url(&dest_url, &range);
                    self.open(Frame::Link(url));
                }
                Tag::Image { dest_url, .. } => {
                    self.problems.push(Problem {
                        severity: Severity::Warning,
                        span: range.clone(),
                        message: "images inside a body show as a link; put a photo in \
                                  [closing.image] instead"
                            .into(),
                    });
                    let url = self.checked_url(&dest_url, &range);
                    self.open(Frame::Image(url));
                }
                Tag::HtmlBlock => self.open(Frame::Paragraph),
                _ => {}
            },
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::BlockQuote(_)
                | TagEnd::CodeBlock
                | TagEnd::List(_)
                | TagEnd::Item
                | TagEnd::Emphasis
                | TagEnd::Strong
                | TagEnd::Link
                | TagEnd::Image
                | TagEnd::HtmlBlock,
            ) => self.close(),
            Event::Text(t) => {
                if matches!(self.top().frame, Frame::Code) {
                    self.top().code.push_str(&strip_marks(&t));
                } else {
                    self.add_text(&t, range.start);
                }
            }
            Event::Code(t) => self.push_inline(Inline::Code(strip_marks(&t))),
            // Raw HTML is shown as the text the editor typed.
            Event::Html(t) | Event::InlineHtml(t) => {
                let t = t.trim_end_matches('\n');
                self.add_text(t, range.start);
            }
            Event::SoftBreak => self.add_text(" ", range.start),
            Event::HardBreak => self.push_inline(Inline::LineBreak),
            Event::Rule => {
                self.flush_text();
                self.attach_block(Block::Rule);
            }
            _ => {}
        }
    }
}

fn heading_level(l: HeadingLevel) -> u8 {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// A merge tag that is neither `{{ field }}` nor `{{ field | default: "text" }}`;
/// holds what stood between the braces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "malformed merge tag `{{{{{0}}}}}`, expected {{{{ field }}}} or {{{{ field | default: \"text\" }}}}"
)]
pub struct TagError(pub String);

/// Parses the inside of `{{ … }}`.
pub fn parse_tag(inner: &str) -> Result<Field, TagError> {
    let (name, rest) = match inner.split_once('|') {
        Some((n, r)) => (n.trim(), Some(r.trim())),
        None => (inner.trim(), None),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(TagError(inner.to_string()));
    }
    let fallback = match rest {
        None => None,
        Some(r) => {
            let value = r.strip_prefix("default:").map(str::trim).and_then(|v| {
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| {
                        v.strip_prefix('\u{201c}')
                            .and_then(|v| v.strip_suffix('\u{201d}'))
                    })
            });
            match value {
                Some(v) => Some(v.to_string()),
                None => {
                    return Err(TagError(inner.to_string()));
                }
            }
        }
    };
    Ok(Field {
        name: name.to_string(),
        fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn para(body: &Body) -> &[Inline] {
        match &body.blocks[0] {
            Block::Paragraph(i) => i,
            other => panic!("expected paragraph, got {other:?}"),
        }
    }

    #[test]
    fn raw_html_is_kept_as_text() {
        let (body, problems) = parse("Hello <script>alert(1)</script> world");
        assert!(problems.is_empty());
        assert_eq!(
            model_text(para(&body)),
            "Hello <script>alert(1)</script> world"
        );
    }

    fn model_text(inl: &[Inline]) -> String {
        crate::model::plain_text(inl)
    }

    #[test]
    fn merge_tags_become_fields() {
        let (body, problems) = parse("Dear {{ name | default: \"reader\" }}, hi {{company}}.");
        assert!(problems.is_empty(), "{problems:?}");
        let inl = para(&body);
        assert_eq!(
            inl[1],
            Inline::Field(Field {
                name: "name".into(),
                fallback: Some("reader".into())
            })
        );
        assert_eq!(
            inl[3],
            Inline::Field(Field {
                name: "company".into(),
                fallback: None
            })
        );
    }

    #[test]
    fn javascript_links_are_errors_with_their_span() {
        let src = "See [this](javascript:alert(1)) now.";
        let (_, problems) = parse(src);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("not a web or mail link"));
        assert_eq!(
            &src[problems[0].span.clone()],
            "[this](javascript:alert(1))"
        );
    }

    #[test]
    fn lists_quotes_and_emphasis_nest() {
        let (body, _) = parse("- one *two*\n- **three**\n\n> quoted\n");
        assert!(
            matches!(&body.blocks[0], Block::List { ordered: false, items } if items.len() == 2)
        );
        assert!(matches!(&body.blocks[1], Block::Quote(b) if b.len() == 1));
    }

    #[test]
    fn cjk_and_typography_pass_through() {
        let (body, _) = parse("“Little red book” — 小红书, naïve");
        assert_eq!(model_text(para(&body)), "“Little red book” — 小红书, naïve");
    }

    #[test]
    fn malformed_tag_is_an_error() {
        let (_, problems) = parse("Hi {{ name | fallback }}");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("malformed merge tag"));
    }
}
