//! Per-recipient MIME messages from a rendered issue.
//!
//! The expensive part of a message, quoted-printable encoding two bodies of
//! tens of kilobytes, is done once per issue in [`PreparedIssue::new`]: every
//! line without a slot is encoded then, and only the few lines holding a
//! recipient's name or unsubscribe link are encoded per recipient.
//! Quoted-printable is line-local, so the spliced result is byte-for-byte what
//! encoding the whole filled body would give.
//!
//! Headers and the multipart structure are lettre's: `multipart/alternative`
//! with `text/plain` first and `text/html` last, both UTF-8.

use std::time::SystemTime;

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::audience::recipient::Recipient;
use crate::compose::render::{Escape, Part, RenderedIssue, Template, push_escaped, slot_value};
use crate::config::Config;
use std::sync::Arc;

use crate::compose::variants::{self, Variants};
use crate::model::{Audience, Issue};

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// An address in the config or the recipient list is not valid.
    #[error("`{address}` is not a valid email address ({reason})")]
    Address {
        /// The address as given.
        address: String,
        /// What the parser said.
        reason: String,
    },
    /// lettre refused to build the message.
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
    /// lettre's frame of the message lost a body's place-holder.
    #[error("cannot build the message: the {0} body has no place in lettre's output")]
    Frame(&'static str),
}

/// Stand-ins for the two bodies while lettre lays out the message: the
/// bodies are then written straight into the message in their place, so a
/// 95 KB message is built in one buffer of the right size instead of being
/// copied from two body buffers into one that lettre grows from empty.
/// NUL cannot occur in lettre's headers or MIME part headers.
const TEXT_SLOT: &[u8] = b"\0briefing text body\0";
const HTML_SLOT: &[u8] = b"\0briefing html body\0";

/// Header identity shared by every message of a newsletter.
#[derive(Debug, Clone)]
pub struct Sender {
    /// `From` mailbox.
    pub from: Mailbox,
    /// `Reply-To` mailbox.
    pub reply_to: Option<Mailbox>,
    /// `List-Id` value, e.g. `China Brief <china-brief.example.org>`.
    pub list_id: String,
    /// `Feedback-ID` value, if configured.
    pub feedback_id: Option<String>,
    /// Right-hand side of Message-IDs: the sender's domain.
    pub domain: String,
    /// Mailbox for mailto unsubscribes, if any.
    pub unsubscribe_mailto: Option<String>,
}

impl Sender {
    /// Takes the sender identity from the config.
    pub fn from_config(config: &Config) -> Result<Self, MessageError> {
        let from = mailbox(Some(config.from_name()), &config.sender.from_address)?;
        let reply_to = config
            .sender
            .reply_to
            .as_deref()
            .map(|a| mailbox(None, a))
            .transpose()?;
        let domain = config
            .sender
            .from_address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let list_name: String = config
            .newsletter
            .name
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .filter(|c| !matches!(c, '<' | '>' | '"' | '\\'))
            .collect();
        Ok(Self {
            from,
            reply_to,
            list_id: format!("{} <{}>", list_name.trim(), config.sender.list_id),
            feedback_id: config.sender.feedback_id.clone(),
            domain,
            unsubscribe_mailto: config.unsubscribe.mailto.clone(),
        })
    }
}

/// A mailbox from a display name and an address, validated by lettre.
pub fn mailbox(name: Option<&str>, address: &str) -> Result<Mailbox, MessageError> {
    let addr = wire_address(address)?;
    let name = name
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .trim()
                .to_string()
        })
        .filter(|n| !n.is_empty());
    Ok(Mailbox::new(name, addr))
}

/// An address as it can travel without SMTPUTF8: an internationalised
/// domain becomes its A-label (`bücher.example` → `xn--bcher-kva.example`),
/// which every server accepts and which means the same mailbox. A non-ASCII
/// local part cannot be converted and is left for servers with SMTPUTF8.
pub fn wire_address(address: &str) -> Result<lettre::Address, MessageError> {
    let address = address.trim();
    let bad = |reason: String| MessageError::Address {
        address: address.to_string(),
        reason,
    };
    let ascii = match address.rsplit_once('@') {
        Some((local, domain)) if !domain.is_ascii() => {
            let domain = idna::domain_to_ascii(domain).map_err(|e| bad(e.to_string()))?;
            format!("{local}@{domain}")
        }
        _ => address.to_string(),
    };
    ascii
        .parse::<lettre::Address>()
        .map_err(|e| bad(e.to_string()))
}

/// What differs per recipient besides the body slots.
#[derive(Debug, Clone)]
pub struct Personal<'a> {
    /// Who the message is for.
    pub recipient: &'a Recipient,
    /// The recipient's unsubscribe URL (https).
    pub unsubscribe_url: &'a str,
    /// The recipient's unsubscribe token, for the mailto variant.
    pub unsubscribe_token: &'a str,
    /// `Message-ID`, with angle brackets.
    pub message_id: String,
    /// `Date`: when the message is handed to the transport.
    pub date: SystemTime,
    /// A test copy: subject gets a `[TEST] ` prefix.
    pub test: bool,
}

/// An issue encoded once, ready to become any recipient's message.
#[derive(Debug, Clone)]
pub struct PreparedIssue {
    /// Issue slug, used in Message-IDs.
    pub slug: String,
    /// Subject line.
    pub subject: String,
    /// The edition's language, sent as `Content-Language`.
    pub language: String,
    text: EncodedBody,
    html: EncodedBody,
    sender: Sender,
}

impl PreparedIssue {
    /// Encodes the shared parts of both alternatives.
    pub fn new(issue: &Issue, rendered: &RenderedIssue, sender: Sender) -> Self {
        Self {
            slug: issue.slug.clone(),
            subject: issue.subject.clone(),
            language: issue.language.clone(),
            text: EncodedBody::new(&rendered.text),
            html: EncodedBody::new(&rendered.html),
            sender,
        }
    }

    /// The sender identity.
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// A fresh Message-ID on the sender's domain.
    pub fn new_message_id(&self) -> String {
        let r: u128 = rand::random();
        format!("<{}.{:032x}@{}>", self.slug, r, self.sender.domain)
    }

    /// The complete RFC 5322 message for one recipient, CRLF line endings.
    pub fn message(&self, p: &Personal<'_>) -> Result<Vec<u8>, MessageError> {
        let to = mailbox(Some(&p.recipient.name), &p.recipient.email)?;
        let subject = if p.test {
            format!("[TEST] {}", self.subject)
        } else {
            self.subject.clone()
        };
        let mut b = lettre::Message::builder()
            .from(self.sender.from.clone())
            .to(to)
            .subject(subject)
            .date(p.date)
            .message_id(Some(p.message_id.clone()))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Id"),
                self.sender.list_id.clone(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                list_unsubscribe(
                    p.unsubscribe_url,
                    self.sender.unsubscribe_mailto.as_deref(),
                    p.unsubscribe_token,
                ),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Precedence"),
                "bulk".into(),
            ))
            // RFC 3282: the edition's language, for clients and filters.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Content-Language"),
                self.language.clone(),
            ));
        if let Some(r) = &self.sender.reply_to {
            b = b.reply_to(r.clone());
        }
        if let Some(f) = &self.sender.feedback_id {
            b = b.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Feedback-ID"),
                f.clone(),
            ));
        }
        let alt = MultiPart::alternative()
            .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(
                Body::dangerous_pre_encoded(
                    TEXT_SLOT.to_vec(),
                    ContentTransferEncoding::QuotedPrintable,
                ),
            ))
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(
                Body::dangerous_pre_encoded(
                    HTML_SLOT.to_vec(),
                    ContentTransferEncoding::QuotedPrintable,
                ),
            ));
        let frame = b.multipart(alt)?.formatted();
        let (text, html) = slots(&frame)?;
        let mut out = Vec::with_capacity(frame.len() + self.text.len_hint() + self.html.len_hint());
        out.extend_from_slice(&frame[..text]);
        self.text.write(p.recipient, p.unsubscribe_url, &mut out);
        out.extend_from_slice(&frame[text + TEXT_SLOT.len()..html]);
        self.html.write(p.recipient, p.unsubscribe_url, &mut out);
        out.extend_from_slice(&frame[html + HTML_SLOT.len()..]);
        Ok(out)
    }
}

/// Where the text and the HTML stand-ins are in lettre's frame, looked
/// for only after the message header (which holds the subject and names).
fn slots(frame: &[u8]) -> Result<(usize, usize), MessageError> {
    use memchr::memmem::find;
    let body = find(frame, b"\r\n\r\n").ok_or(MessageError::Frame("text"))? + 4;
    let text = body + find(&frame[body..], TEXT_SLOT).ok_or(MessageError::Frame("text"))?;
    let after = text + TEXT_SLOT.len();
    let html = after + find(&frame[after..], HTML_SLOT).ok_or(MessageError::Frame("HTML"))?;
    Ok((text, html))
}

/// The `List-Unsubscribe` value: the https URL first (RFC 8058 one-click),
/// then a mailto carrying the token in its subject.
fn list_unsubscribe(url: &str, mailto: Option<&str>, token: &str) -> String {
    match mailto {
        Some(m) => format!("<{url}>, <mailto:{m}?subject=unsubscribe%20{token}>"),
        None => format!("<{url}>"),
    }
}

/// A body whose shared lines are already quoted-printable encoded.
#[derive(Debug, Clone)]
struct EncodedBody {
    chunks: Vec<Chunk>,
    escape: Escape,
}

#[derive(Debug, Clone)]
enum Chunk {
    /// Encoded lines, each ending in CRLF.
    Encoded(Vec<u8>),
    /// One line with slots, encoded per recipient.
    Line(Vec<Part>),
}

impl EncodedBody {
    fn new(t: &Template) -> Self {
        // Split the parts into lines; a line is static unless it holds a slot.
        let mut lines: Vec<Vec<Part>> = vec![Vec::new()];
        for part in &t.parts {
            match part {
                Part::Static(s) => {
                    let mut pieces = s.split('\n');
                    if let Some(first) = pieces.next() {
                        push_static(lines.last_mut(), first);
                    }
                    for piece in pieces {
                        lines.push(Vec::new());
                        push_static(lines.last_mut(), piece);
                    }
                }
                Part::Slot(_) => {
                    if let Some(l) = lines.last_mut() {
                        l.push(part.clone());
                    }
                }
            }
        }
        if lines.last().is_some_and(Vec::is_empty) {
            lines.pop();
        }
        let mut chunks = Vec::new();
        let mut pending = String::new();
        for line in lines {
            if line.iter().all(|p| matches!(p, Part::Static(_))) {
                for p in &line {
                    if let Part::Static(s) = p {
                        pending.push_str(s.trim_end_matches('\r'));
                    }
                }
                pending.push_str("\r\n");
            } else {
                if !pending.is_empty() {
                    chunks.push(Chunk::Encoded(quoted_printable::encode(&pending)));
                    pending.clear();
                }
                chunks.push(Chunk::Line(line));
            }
        }
        if !pending.is_empty() {
            chunks.push(Chunk::Encoded(quoted_printable::encode(&pending)));
        }
        Self {
            chunks,
            escape: t.escape,
        }
    }

    fn len_hint(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| match c {
                Chunk::Encoded(b) => b.len(),
                Chunk::Line(_) => 256,
            })
            .sum()
    }

    fn write(&self, r: &Recipient, unsubscribe_url: &str, out: &mut Vec<u8>) {
        let mut line = String::new();
        for chunk in &self.chunks {
            match chunk {
                Chunk::Encoded(b) => out.extend_from_slice(b),
                Chunk::Line(parts) => {
                    line.clear();
                    for p in parts {
                        match p {
                            Part::Static(s) => line.push_str(s.trim_end_matches('\r')),
                            Part::Slot(slot) => {
                                let v = slot_value(slot, r, unsubscribe_url);
                                push_escaped(&mut line, &v, self.escape);
                            }
                        }
                    }
                    out.extend_from_slice(&quoted_printable::encode(&line));
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
}

fn push_static(line: Option<&mut Vec<Part>>, s: &str) {
    if let Some(line) = line
        && !s.is_empty()
    {
        line.push(Part::Static(s.to_string()));
    }
}

/// An issue with blocks for some readers or in several languages: one
/// [`PreparedIssue`] per edition and variant that occurs in the list,
/// rendered and encoded the first time a reader of that kind comes up,
/// never per reader.
pub struct VariantMessages {
    /// The main edition first, then the translations.
    editions: Vec<(Issue, Variants<PreparedIssue>)>,
    sender: Sender,
}

impl VariantMessages {
    /// The issue, its `only_for` / `except_for` conditions and its sender.
    pub fn new(issue: Issue, audiences: Vec<Audience>, sender: Sender) -> Self {
        Self {
            editions: vec![(issue, Variants::new(audiences))],
            sender,
        }
    }

    /// Adds the translations: a reader whose `language` column names one
    /// gets it, everyone else the main edition.
    pub fn with_translations(mut self, translations: Vec<Issue>) -> Self {
        let audiences = self.editions[0].1.audiences().to_vec();
        for t in translations {
            self.editions.push((t, Variants::new(audiences.clone())));
        }
        self
    }

    /// The edition for a reader's `language` (`de-AT` finds `de`).
    fn edition(&self, reader: &Recipient) -> &(Issue, Variants<PreparedIssue>) {
        reader
            .field("language")
            .and_then(|lang| {
                crate::model::best_language_match(lang, self.editions.iter(), |(i, _)| &i.language)
            })
            .unwrap_or(&self.editions[0])
    }

    /// The prepared issue as this reader sees it.
    pub fn for_reader(&self, reader: &Recipient) -> Arc<PreparedIssue> {
        let (issue, variants) = self.edition(reader);
        variants.get(reader, |v| {
            let issue = variants::issue_for(issue, variants.audiences(), v);
            let rendered = crate::compose::render::render(&issue);
            PreparedIssue::new(&issue, &rendered, self.sender.clone())
        })
    }

    /// How many variants were prepared so far, over all editions.
    pub fn count(&self) -> usize {
        self.editions.iter().map(|(_, v)| v.count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::render::{Marks, Slot};
    use crate::model::Field;

    fn template(escape: Escape) -> Template {
        let marks = Marks::new();
        let long = "x".repeat(200);
        let s = format!(
            "Über {long}\nDear {},\n  trailing space \n<a href=\"{}\">unsubscribe</a>\n",
            marks.mark(Slot::Field(Field {
                name: "name".into(),
                fallback: Some("reader".into())
            })),
            marks.mark(Slot::UnsubscribeUrl)
        );
        marks.into_template(&s, escape)
    }

    #[test]
    fn internationalised_domains_travel_as_a_labels() {
        let a = wire_address("anna@bücher.example").unwrap();
        assert_eq!(a.to_string(), "anna@xn--bcher-kva.example");
        let m = mailbox(Some("Anna Müller"), "anna@bücher.example").unwrap();
        assert_eq!(m.email.to_string(), "anna@xn--bcher-kva.example");
        assert!(wire_address("not an address").is_err());
    }

    #[test]
    fn a_frame_without_its_stand_ins_is_an_error_not_a_panic() {
        assert!(matches!(
            slots(b"To: x\r\n\r\nbody"),
            Err(MessageError::Frame("text"))
        ));
        let mut frame = b"Subject: x\r\n\r\n".to_vec();
        frame.extend_from_slice(TEXT_SLOT);
        assert!(matches!(slots(&frame), Err(MessageError::Frame("HTML"))));
        frame.extend_from_slice(b"\r\n--b\r\n");
        frame.extend_from_slice(HTML_SLOT);
        assert_eq!(slots(&frame).unwrap(), (14, 14 + TEXT_SLOT.len() + 7));
    }

    #[test]
    fn spliced_encoding_equals_encoding_the_filled_body() {
        for escape in [Escape::Html, Escape::None] {
            let t = template(escape);
            let r = Recipient::new("zoe@example.org", "Zoë <Brandt>");
            let body = EncodedBody::new(&t);
            let mut spliced = Vec::new();
            body.write(&r, "https://x.example/u/abc", &mut spliced);
            let filled = t.fill(&r, "https://x.example/u/abc").replace('\n', "\r\n");
            assert_eq!(
                String::from_utf8(spliced).unwrap(),
                String::from_utf8(quoted_printable::encode(&filled)).unwrap()
            );
        }
    }
}
