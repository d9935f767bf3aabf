//! Rendering: a validated [`Issue`] becomes an HTML and a plain-text
//! [`Template`], once per issue.
//!
//! Rendering is pure: no files, no clock, no recipients. What differs per
//! recipient (merge tags, the unsubscribe link) is left in the output as a
//! [`Slot`], which [`Template::fill`] or the MIME builder in
//! [`crate::deliver::message`] fills in cheaply for each recipient.

pub mod html;
pub mod nobreak;
pub mod text;

use std::cell::RefCell;

use crate::model::MergeFields;
use crate::model::{Field, Issue};

/// A hole in a rendered issue, filled per recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Slot {
    /// A merge tag such as `{{ name }}`.
    Field(Field),
    /// The recipient's own unsubscribe URL.
    UnsubscribeUrl,
}

/// How slot values are escaped when filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Values are HTML-escaped (`&`, `<`, `>`, `"`, `'`).
    Html,
    /// Values go in as they are.
    None,
}

/// One piece of a rendered issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text that is the same for every recipient.
    Static(String),
    /// A hole filled per recipient.
    Slot(Slot),
}

/// A rendered body (HTML or text) with its per-recipient holes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Static text and slots, in order.
    pub parts: Vec<Part>,
    /// How values are escaped when filled in.
    pub escape: Escape,
}

/// Both renderings of an issue, made once and shared by every recipient.
#[derive(Debug, Clone)]
pub struct RenderedIssue {
    /// The HTML alternative.
    pub html: Template,
    /// The plain-text alternative.
    pub text: Template,
}

/// Renders both alternatives of an issue.
pub fn render(issue: &Issue) -> RenderedIssue {
    RenderedIssue {
        html: html::render(issue),
        text: text::render(issue),
    }
}

use crate::model::{SLOT_MARK_CLOSE as MARK_CLOSE, SLOT_MARK_OPEN as MARK_OPEN};

/// Hands out slot markers while a renderer runs, and turns its marked output
/// into a [`Template`] afterwards.
#[derive(Debug, Default)]
pub struct Marks {
    slots: RefCell<Vec<Slot>>,
}

impl Marks {
    /// No slots yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A marker string standing for `slot` in the renderer's output.
    pub fn mark(&self, slot: Slot) -> String {
        let mut slots = self.slots.borrow_mut();
        slots.push(slot);
        format!("{MARK_OPEN}{}{MARK_CLOSE}", slots.len() - 1)
    }

    /// Splits marked output into static parts and slots.
    pub fn into_template(self, marked: &str, escape: Escape) -> Template {
        let slots = self.slots.into_inner();
        let mut parts = Vec::new();
        let mut rest = marked;
        while let Some(open) = rest.find(MARK_OPEN) {
            let after = &rest[open + MARK_OPEN.len_utf8()..];
            let Some(close) = after.find(MARK_CLOSE) else {
                break;
            };
            let slot = after[..close]
                .parse::<usize>()
                .ok()
                .and_then(|i| slots.get(i).cloned());
            let Some(slot) = slot else {
                break;
            };
            if open > 0 {
                parts.push(Part::Static(rest[..open].to_string()));
            }
            parts.push(Part::Slot(slot));
            rest = &after[close + MARK_CLOSE.len_utf8()..];
        }
        if !rest.is_empty() {
            parts.push(Part::Static(rest.to_string()));
        }
        Template { parts, escape }
    }
}

/// Width a slot is assumed to take when text is wrapped before filling.
pub const SLOT_WRAP_WIDTH: usize = 12;

impl Template {
    /// The template with every slot filled for one reader.
    pub fn fill(&self, reader: &dyn MergeFields, unsubscribe_url: &str) -> String {
        let mut out = String::with_capacity(self.static_len() + 256);
        for part in &self.parts {
            match part {
                Part::Static(s) => out.push_str(s),
                Part::Slot(slot) => {
                    let value = slot_value(slot, reader, unsubscribe_url);
                    push_escaped(&mut out, &value, self.escape);
                }
            }
        }
        out
    }

    /// Bytes of static text (the size every copy shares).
    pub fn static_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Static(s) => s.len(),
                Part::Slot(_) => 0,
            })
            .sum()
    }

    /// Every slot, in order.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.parts.iter().filter_map(|p| match p {
            Part::Slot(s) => Some(s),
            Part::Static(_) => None,
        })
    }

    /// The text with slots shown as `{{ name }}` (for previews of structure).
    pub fn with_placeholders(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Static(s) => out.push_str(s),
                Part::Slot(Slot::Field(f)) => {
                    out.push_str("{{ ");
                    out.push_str(&f.name);
                    out.push_str(" }}");
                }
                Part::Slot(Slot::UnsubscribeUrl) => out.push_str("{{ unsubscribe_url }}"),
            }
        }
        out
    }
}

/// What a slot becomes for one reader (unescaped). Line breaks and other
/// control characters become spaces: a value must never add lines to a
/// message, and previews must show what the message holds.
pub fn slot_value(slot: &Slot, reader: &dyn MergeFields, unsubscribe_url: &str) -> String {
    let v = match slot {
        Slot::UnsubscribeUrl => unsubscribe_url,
        Slot::Field(f) => match reader.field(&f.name) {
            Some(v) => v,
            None => f.fallback.as_deref().unwrap_or_default(),
        },
    };
    v.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Appends `value` to `out`, escaped as `escape` says.
pub fn push_escaped(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::None => out.push_str(value),
        Escape::Html => {
            for c in value.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_split_into_static_parts_and_slots() {
        let marks = Marks::new();
        let name = Slot::Field(Field {
            name: "name".into(),
            fallback: Some("reader".into()),
        });
        let s = format!(
            "Dear {},\n<a href=\"{}\">x</a>",
            marks.mark(name.clone()),
            marks.mark(Slot::UnsubscribeUrl)
        );
        let t = marks.into_template(&s, Escape::Html);
        assert_eq!(
            t.parts,
            vec![
                Part::Static("Dear ".into()),
                Part::Slot(name),
                Part::Static(",\n<a href=\"".into()),
                Part::Slot(Slot::UnsubscribeUrl),
                Part::Static("\">x</a>".into()),
            ]
        );
    }

    #[test]
    fn fill_escapes_html_values_and_uses_fallbacks() {
        let marks = Marks::new();
        let s = format!(
            "Hi {}!",
            marks.mark(Slot::Field(Field {
                name: "name".into(),
                fallback: Some("reader".into()),
            }))
        );
        let t = marks.into_template(&s, Escape::Html);
        let anna = [("email", "anna@example.org"), ("name", "Anna <B>")];
        assert_eq!(t.fill(&anna, "u"), "Hi Anna &lt;B&gt;!");
        let anon = [("email", "x@example.org"), ("name", "")];
        assert_eq!(t.fill(&anon, "u"), "Hi reader!");
    }
}
