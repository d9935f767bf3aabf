//! The whole sample issue composed end to end: manifest → model → both
//! renderings → one recipient's filled parts and MIME message.
//!
//! Everything here runs on `issues/2025-01-17/` with the repository's
//! `config.toml`, so a change anywhere in the pipeline shows up as a change in
//! what a reader would get.

mod support;

use std::collections::BTreeMap;

use briefing::audience::recipient::Recipient;
use briefing::audience::token::{Secret, unsubscribe_url};
use briefing::compose::manifest::{self, LoadedIssue};
use briefing::compose::render::{self, Escape, Part, RenderedIssue, Slot, Template};
use briefing::config::Config;
use briefing::model::{Issue, SectionContent};
use briefing::preview::{self, Preview};
use jiff::Timestamp;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use support::cli::repo;
use unicode_width::UnicodeWidthStr;

// ---------------------------------------------------------------- fixtures

fn config() -> Config {
    match Config::load(Some(&repo().join("config.toml"))) {
        Ok(c) => c,
        Err(d) => panic!("config.toml does not load:\n{}", d.render()),
    }
}

struct Sample {
    config: Config,
    loaded: LoadedIssue,
    rendered: RenderedIssue,
}

impl Sample {
    fn issue(&self) -> &Issue {
        &self.loaded.issue
    }
}

fn sample() -> Sample {
    let config = config();
    let path = repo().join("issues/2025-01-17/issue.toml");
    let loaded = match manifest::load(&path, &config) {
        Ok(l) => l,
        Err(d) => panic!("the sample issue does not load:\n{}", d.render()),
    };
    let rendered = render::render(&loaded.issue);
    Sample {
        config,
        loaded,
        rendered,
    }
}

fn anna() -> Recipient {
    Recipient::new("anna@example.org", "Anna Keller")
}

fn secret() -> Secret {
    Secret::new("test")
}

/// The unsubscribe URL the send step would give `r`.
fn unsubscribe_for(config: &Config, r: &Recipient) -> String {
    let token = secret().token(&config.sender.list_id, &r.email);
    unsubscribe_url(config, &token)
}

/// Both parts filled for one recipient: (html, text, unsubscribe URL).
fn filled(s: &Sample, r: &Recipient) -> (String, String, String) {
    let url = unsubscribe_for(&s.config, r);
    (
        s.rendered.html.fill(r, &url),
        s.rendered.text.fill(r, &url),
        url,
    )
}

fn fixed_now() -> Timestamp {
    "2025-01-17T05:01:00Z".parse().unwrap()
}

fn preview_for(s: &Sample, r: &Recipient) -> Preview {
    preview::build(s.issue(), &s.rendered, &s.config, r, &secret(), fixed_now())
        .expect("the preview builds")
}

/// Text as maud writes it into HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// An attribute value back to its text (only the entities we write).
fn unesc(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Runs of whitespace (line breaks from wrapping, indentation, the
/// no-break spaces that hold a time or a unit together) as one space.
fn squash(s: &str) -> String {
    s.replace("&nbsp;", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every `href="…"` value in our own HTML, unescaped.
fn hrefs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("href=\"") {
        let after = &rest[at + "href=\"".len()..];
        let Some(end) = after.find('"') else { break };
        out.push(unesc(&after[..end]));
        rest = &after[end..];
    }
    out
}

/// Everything an editor named in the sample that a reader must find in
/// both parts: (what it is, the text).
fn named_things(issue: &Issue) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |what: &str, text: &str| out.push((what.to_string(), text.to_string()));
    for s in &issue.sections {
        push("section label", &s.label);
        match &s.content {
            SectionContent::Editorial(e) => {
                push("editorial author", &e.author);
                if let Some(sig) = &e.signature {
                    push("editorial signature", sig);
                }
            }
            SectionContent::Articles(list) => {
                for a in list {
                    push("article kicker", &a.kicker);
                    push("article title", &a.title);
                    push("article author", &a.author);
                }
            }
            SectionContent::Events(list) => {
                for e in list {
                    push("event title", &e.title);
                    push("event organizer", &e.organizer);
                    push("event kind", &e.kind);
                }
            }
            SectionContent::News(list) => {
                for n in list {
                    push("news title", &n.title);
                    push("news source", &n.source);
                }
            }
            SectionContent::Column(c) => {
                push("column kicker", &c.kicker);
                push("column title", &c.title);
                push("column author", &c.author);
            }
            SectionContent::Heads(h) => {
                for p in &h.people {
                    push("heads name", &p.name);
                    if let Some(role) = &p.role {
                        push("heads role", role);
                    }
                    if let Some(org) = &p.organisation {
                        push("heads organisation", org);
                    }
                }
            }
            SectionContent::Closing(c) => push("closing title", &c.title),
        }
    }
    push("newsletter name", &issue.newsletter);
    push("postal address", &issue.publisher.postal_address);
    push("reason", &issue.publisher.reason);
    out
}

/// The header block of a raw message (before the first empty line).
fn header_block(eml: &[u8]) -> &[u8] {
    let end = eml
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the message has a header block ended by an empty line");
    &eml[..end]
}

/// Header field names in order (continuation lines belong to the field above).
fn header_names(eml: &[u8]) -> Vec<String> {
    let block = String::from_utf8_lossy(header_block(eml)).into_owned();
    block
        .split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .map(|l| {
            l.split_once(':')
                .map_or(l, |(name, _)| name)
                .to_ascii_lowercase()
        })
        .collect()
}

fn count_names(names: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

fn parse(eml: &[u8]) -> Message<'_> {
    MessageParser::default()
        .parse(eml)
        .expect("mail-parser reads the .eml")
}

fn lf(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// Panics at the first line where two bodies differ (modulo CRLF and a
/// final line break), showing only that line.
fn assert_same_body(got: &str, want: &str, what: &str) {
    let got = lf(got);
    let (got, want) = (got.trim_end_matches('\n'), want.trim_end_matches('\n'));
    if got == want {
        return;
    }
    let (g, w): (Vec<&str>, Vec<&str>) = (got.split('\n').collect(), want.split('\n').collect());
    let n = g
        .iter()
        .zip(&w)
        .position(|(a, b)| a != b)
        .unwrap_or(g.len().min(w.len()));
    panic!(
        "{what}: first difference at line {}:\n  .eml:    {:?}\n  preview: {:?}\n({} vs {} lines)",
        n + 1,
        g.get(n),
        w.get(n),
        g.len(),
        w.len()
    );
}

/// The text part must be more than a placeholder before its content can be
/// judged; this makes a stub fail with one clear message.
fn assert_text_is_not_a_stub(s: &Sample) {
    let text = s.rendered.text.with_placeholders();
    assert!(
        text.lines().count() > 20 && text.contains("{{ unsubscribe_url }}"),
        "the text part looks like a stub (it should carry the whole issue and an unsubscribe \
         slot), got:\n{text}"
    );
}

// ------------------------------------------------------ 1. whole-issue views

#[test]
fn sample_html_snapshot() {
    let s = sample();
    insta::assert_snapshot!("sample_html", s.rendered.html.with_placeholders());
}

#[test]
fn sample_text_snapshot() {
    let s = sample();
    assert_text_is_not_a_stub(&s);
    insta::assert_snapshot!("sample_text", s.rendered.text.with_placeholders());
}

// ------------------------------------- 2. same content in both alternatives

#[test]
fn every_named_thing_appears_in_the_html() {
    let s = sample();
    let (html, _, _) = filled(&s, &anna());
    let html = squash(&html);
    let missing: Vec<_> = named_things(s.issue())
        .into_iter()
        .filter(|(_, t)| !html.contains(&squash(&esc(t))))
        .collect();
    assert!(missing.is_empty(), "missing from the HTML: {missing:#?}");
}

#[test]
fn every_named_thing_appears_in_the_text() {
    let s = sample();
    let (_, text, _) = filled(&s, &anna());
    let text = squash(&text);
    let missing: Vec<_> = named_things(s.issue())
        .into_iter()
        .filter(|(_, t)| !text.contains(&squash(t)))
        .collect();
    assert!(
        missing.is_empty(),
        "missing from the text part: {missing:#?}"
    );
}

// ----------------------------------------------- 3. every link in the text

#[test]
fn every_html_link_appears_in_the_text() {
    let s = sample();
    let (html, text, unsub) = filled(&s, &anna());
    let links = hrefs(&html);
    // Sanity: the scan sees the links we know are there.
    let web = &s.issue().publisher.web_url;
    assert!(
        links.contains(web),
        "no view-in-browser link {web} in {links:#?}"
    );
    assert!(
        links.contains(&unsub),
        "no unsubscribe link {unsub} in {links:#?}"
    );
    assert!(
        links.iter().any(|l| l == "mailto:heads@example.org"),
        "{links:#?}"
    );
    assert!(
        links
            .iter()
            .any(|l| l == "https://www.example.org/survey/reader-2025"),
        "{links:#?}"
    );
    let mut missing = Vec::new();
    for link in &links {
        // In-message anchors (the table of contents) have no text form.
        if link.starts_with('#') {
            continue;
        }
        // A mail link may be written as the bare address in plain text.
        let found = match link.strip_prefix("mailto:") {
            Some(addr) => text.contains(link.as_str()) || text.contains(addr),
            None => text.contains(link.as_str()),
        };
        if !found {
            missing.push(link.clone());
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "links in the HTML but not in the text part (URLs must not be broken across lines): \
         {missing:#?}"
    );
}

// ------------------------------------------------------------- 4. events

#[test]
fn reference_events_read_exactly_as_printed() {
    let s = sample();
    let (html, text, _) = filled(&s, &anna());
    // `_` marks a no-break space: `&nbsp;` in the HTML, U+00A0 in the text.
    for when in [
        "Jan._23, 2025; 11_a.m._CET (6_p.m._Beijing_time)",
        "Jan._23, 2025; 6_p.m._CET (Jan_24, 1_a.m._Beijing_time)",
        "Jan._24, 2025; 5_p.m._CET (Jan_25, 12_a.m._Beijing_time)",
    ] {
        let in_html = format!(">{}</time>", when.replace('_', "&nbsp;"));
        assert!(html.contains(&in_html), "HTML lacks {in_html:?}");
        let in_text = when.replace('_', "\u{a0}");
        assert!(text.contains(&in_text), "text part lacks {in_text:?}");
    }
    // The machine-readable time travels with the visible one.
    assert!(html.contains("datetime=\"2025-01-23T11:00:00+01:00\""));
    assert!(html.contains("datetime=\"2025-01-23T18:00:00+01:00\""));
}

// ------------------------------------------------------ 5. personalisation

fn recipients() -> [Recipient; 3] {
    [
        anna(),
        Recipient::new("nobody@example.org", ""),
        Recipient::new("bold@example.org", "Bo <b>Bold</b> & Co"),
    ]
}

#[test]
fn salutation_uses_the_name_or_the_configured_fallback() {
    let s = sample();
    let [anna, anon, bold] = recipients();

    let (html, text, _) = filled(&s, &anna);
    assert!(html.contains("Dear Anna Keller,"), "HTML");
    assert!(text.contains("Dear Anna Keller,"), "text part");

    let (html, text, _) = filled(&s, &anon);
    assert!(html.contains("Dear reader,"), "HTML");
    assert!(text.contains("Dear reader,"), "text part");
    assert!(!html.contains("Dear ,") && !text.contains("Dear ,"));

    let (html, text, _) = filled(&s, &bold);
    assert!(
        html.contains("Dear Bo &lt;b&gt;Bold&lt;/b&gt; &amp; Co,"),
        "HTML must escape the name"
    );
    assert!(
        !html.contains("<b>Bold"),
        "raw markup from a name reached the HTML"
    );
    assert!(
        text.contains("Dear Bo <b>Bold</b> & Co,"),
        "the text part shows the name as written"
    );
}

#[test]
fn unsubscribe_url_differs_per_recipient_in_both_parts() {
    let s = sample();
    for (what, t) in [("HTML", &s.rendered.html), ("text", &s.rendered.text)] {
        assert!(
            t.slots().any(|sl| *sl == Slot::UnsubscribeUrl),
            "the {what} part has no unsubscribe slot"
        );
    }
    let filled: Vec<_> = recipients().iter().map(|r| filled(&s, r)).collect();
    for (i, (html, text, url)) in filled.iter().enumerate() {
        assert!(
            html.contains(&format!("href=\"{}\"", esc(url))),
            "HTML #{i}"
        );
        assert!(
            text.contains(url.as_str()),
            "text #{i} lacks its own URL {url}"
        );
        for (j, (_, _, other)) in filled.iter().enumerate() {
            if i != j {
                assert_ne!(url, other);
                assert!(!html.contains(other.as_str()) && !text.contains(other.as_str()));
            }
        }
    }
}

/// Walks a filled body along its template: every static part must come back
/// verbatim and every slot as this recipient's (escaped) value, so nothing
/// but the slots can differ between recipients.
fn assert_fill_follows_template(t: &Template, r: &Recipient, url: &str, filled: &str) {
    let mut at = 0;
    for (i, part) in t.parts.iter().enumerate() {
        let expected = match part {
            Part::Static(s) => s.clone(),
            Part::Slot(slot) => {
                let mut v = String::new();
                render::push_escaped(&mut v, &render::slot_value(slot, r, url), t.escape);
                v
            }
        };
        assert!(
            filled[at..].starts_with(&expected),
            "part #{i} ({part:?}) differs for {}",
            r.email
        );
        at += expected.len();
    }
    assert_eq!(at, filled.len(), "trailing text after the last part");
}

#[test]
fn static_parts_are_shared_and_only_slots_vary() {
    let s = sample();
    // Rendering is pure: a second rendering gives the same templates.
    let again = render::render(s.issue());
    assert_eq!(s.rendered.html, again.html);
    assert_eq!(s.rendered.text, again.text);
    assert_eq!(s.rendered.html.escape, Escape::Html);
    assert_eq!(s.rendered.text.escape, Escape::None);

    for r in recipients() {
        let (html, text, url) = filled(&s, &r);
        assert_fill_follows_template(&s.rendered.html, &r, &url, &html);
        assert_fill_follows_template(&s.rendered.text, &r, &url, &text);
    }

    // Nothing recipient-specific is baked into the shared parts, and the
    // only slots are the salutation's name and the unsubscribe URL.
    for (what, t) in [("HTML", &s.rendered.html), ("text", &s.rendered.text)] {
        for part in &t.parts {
            if let Part::Static(st) = part {
                assert!(
                    !st.contains('\u{E000}') && !st.contains('\u{E001}'),
                    "{what}: marker"
                );
                assert!(
                    !st.contains("/unsubscribe/"),
                    "{what}: a baked unsubscribe URL"
                );
            }
        }
        let mut kinds: Vec<String> = t
            .slots()
            .map(|sl| match sl {
                Slot::Field(f) => format!("field {} | {:?}", f.name, f.fallback),
                Slot::UnsubscribeUrl => "unsubscribe".into(),
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds,
            vec![
                "field name | Some(\"reader\")".to_string(),
                "unsubscribe".to_string()
            ],
            "{what} slots"
        );
    }
}

// ------------------------------------------------------------- 6. the .eml

#[test]
fn eml_structure_is_multipart_alternative_text_then_html() {
    let s = sample();
    let p = preview_for(&s, &anna());
    let msg = parse(&p.eml);

    let root = msg.root_part();
    let ct = root.content_type().expect("top-level Content-Type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("alternative"));
    let boundary = ct.attribute("boundary").expect("a boundary");
    assert!((1..=70).contains(&boundary.len()), "boundary {boundary:?}");

    let children = root.sub_parts().expect("multipart children");
    assert_eq!(children.len(), 2, "exactly two alternatives");
    let kinds = [("text", "plain"), ("text", "html")];
    for (id, (ty, sub)) in children.iter().zip(kinds) {
        let part = &msg.parts[*id as usize];
        let ct = part.content_type().expect("part Content-Type");
        assert_eq!(
            (ct.ctype(), ct.subtype()),
            (ty, Some(sub)),
            "order: plain first, html last"
        );
        assert_eq!(
            ct.attribute("charset")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("utf-8"),
            "{sub} charset"
        );
        assert_eq!(
            part.content_transfer_encoding()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("quoted-printable"),
            "{sub} transfer encoding"
        );
        // Encoded lines of at most 76 characters (RFC 2045 §6.7 rule 5).
        let raw = &p.eml[part.raw_body_offset() as usize..part.raw_end_offset() as usize];
        for (n, line) in raw.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(
                line.len() <= 76,
                "{sub} QP line {n} is {} characters: {:?}",
                line.len(),
                String::from_utf8_lossy(line)
            );
        }
    }

    let text = &msg.parts[children[0] as usize];
    let html = &msg.parts[children[1] as usize];
    let PartType::Text(text) = &text.body else {
        panic!("first part is not text: {:?}", text.body)
    };
    let PartType::Html(html) = &html.body else {
        panic!("last part is not HTML: {:?}", html.body)
    };
    assert_same_body(text, &p.text, "decoded text part");
    assert_same_body(html, &p.html, "decoded HTML part");
}

#[test]
fn eml_lines_are_crlf_short_and_7bit() {
    let s = sample();
    for r in [
        anna(),
        Recipient::new("zoe.brandt@example.org", "Zoë Brandt"),
        Recipient::new("wang.fang@example.org", "王芳"),
    ] {
        assert_eml_lines_are_crlf_short_and_7bit(&preview_for(&s, &r).eml);
    }
}

fn assert_eml_lines_are_crlf_short_and_7bit(eml: &[u8]) {
    assert!(
        header_block(eml).iter().all(u8::is_ascii),
        "the header block is not 7-bit:\n{}",
        String::from_utf8_lossy(header_block(eml))
    );
    assert!(eml.iter().all(u8::is_ascii), "the message is not 7-bit");
    // RFC 5322 §2.3 allows no NUL in a message (the bodies are built in the
    // place of NUL-marked stand-ins).
    assert!(!eml.contains(&0), "the message holds a NUL byte");
    for (n, line) in eml.split(|b| *b == b'\n').enumerate() {
        let Some(line) = line.strip_suffix(b"\r") else {
            // Only the very end may lack a CR (no trailing newline at all).
            assert!(line.is_empty(), "line {n} ends in a bare LF");
            continue;
        };
        assert!(!line.contains(&b'\r'), "line {n} holds a bare CR");
        assert!(line.len() <= 998, "line {n} is {} octets", line.len());
    }
}

#[test]
fn eml_headers_identify_sender_recipient_and_list() {
    let s = sample();
    let r = anna();
    let p = preview_for(&s, &r);
    let msg = parse(&p.eml);

    let from = msg.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.name(), Some("China Brief"));
    assert_eq!(from.address(), Some("news@briefing.example.org"));
    let to = msg.to().and_then(|a| a.first()).expect("To");
    assert_eq!(
        to.name(),
        Some("Anna Keller"),
        "To carries the display name"
    );
    assert_eq!(to.address(), Some("anna@example.org"));

    assert_eq!(msg.subject(), Some(s.issue().subject.as_str()));
    assert!(s.issue().subject.contains('—') && s.issue().subject.contains("小红书"));

    let date = msg.date().expect("Date");
    assert!(
        String::from_utf8_lossy(header_block(&p.eml))
            .contains("Date: Fri, 17 Jan 2025 05:01:00 +0000"),
        "Date with a numeric zone"
    );
    assert_eq!(
        date.to_timestamp(),
        fixed_now().as_second(),
        "Date is {date}"
    );

    let names = header_names(&p.eml);
    let raw = String::from_utf8_lossy(header_block(&p.eml)).into_owned();
    let unfolded = raw.replace("\r\n ", " ").replace("\r\n\t", " ");
    let field = |name: &str| -> String {
        unfolded
            .split("\r\n")
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} header in\n{raw}"))
    };

    let mid = field("Message-ID");
    assert!(
        mid.starts_with('<') && mid.ends_with("@briefing.example.org>") && !mid.contains(' '),
        "Message-ID {mid}"
    );
    assert!(mid.len() <= 500);
    assert_eq!(field("MIME-Version"), "1.0");
    assert_eq!(
        field("List-Id"),
        "China Brief <china-brief.briefing.example.org>"
    );
    let unsub = field("List-Unsubscribe");
    assert!(unsub.starts_with("<https://"), "List-Unsubscribe: {unsub}");
    assert!(unsub.contains("<mailto:"), "List-Unsubscribe: {unsub}");
    assert!(
        unsub.starts_with(&format!("<{}>", unsubscribe_for(&s.config, &r))),
        "List-Unsubscribe leads with this recipient's URL: {unsub}"
    );
    assert!(
        !unsub.contains("=?"),
        "List-Unsubscribe must not be RFC 2047-encoded"
    );
    assert_eq!(field("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");

    let counts = count_names(&names);
    for one in [
        "date",
        "from",
        "to",
        "subject",
        "message-id",
        "mime-version",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert_eq!(counts.get(one), Some(&1), "{one} header count in {names:?}");
    }
    for never in ["bcc", "cc"] {
        assert!(!counts.contains_key(never), "{never} header present");
    }
}

// --------------------------------------------------- 7. header injection

#[test]
fn a_name_with_crlf_adds_no_header() {
    let s = sample();
    let plain = preview_for(&s, &Recipient::new("eve@example.org", "Eve"));
    let evil = preview_for(
        &s,
        &Recipient::new("eve@example.org", "Eve\r\nBcc: victim@example.org"),
    );
    let before = header_names(&plain.eml);
    let after = header_names(&evil.eml);
    assert_eq!(
        count_names(&before),
        count_names(&after),
        "header fields changed:\n{}",
        String::from_utf8_lossy(header_block(&evil.eml))
    );
    assert!(!after.iter().any(|n| n == "bcc"));
    // No line anywhere in the message starts a Bcc field.
    let raw = String::from_utf8_lossy(&evil.eml).into_owned();
    assert!(
        !raw.split("\r\n")
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "{raw}"
    );
    let msg = parse(&evil.eml);
    assert!(msg.bcc().is_none());
    let to = msg.to().and_then(|a| a.first()).expect("To");
    assert_eq!(to.address(), Some("eve@example.org"));
    assert!(
        !to.name().unwrap_or("").contains(['\r', '\n']),
        "{:?}",
        to.name()
    );
}

// Known to fail (see the test report): `Template::fill`, which makes the
// preview's .txt and .html, keeps CR/LF from a value, while the MIME step
// (`EncodedBody::write`) turns them into spaces, so the preview files are not
// what the recipient gets. Names from CSV lose control characters on load,
// but other columns used as merge tags keep them.
#[test]
fn preview_files_match_the_eml_even_for_values_with_line_breaks() {
    let s = sample();
    let p = preview_for(
        &s,
        &Recipient::new("eve@example.org", "Eve\r\nBcc: victim@example.org"),
    );
    let msg = parse(&p.eml);
    let text = msg.body_text(0).expect("a text part");
    let html = msg.body_html(0).expect("an HTML part");
    assert_same_body(&text, &p.text, "the preview .txt vs the .eml's text part");
    assert_same_body(&html, &p.html, "the preview .html vs the .eml's HTML part");
}

// ------------------------------------------- 8. size and plain-text hygiene

#[test]
fn html_part_stays_under_the_clip_budget() {
    let s = sample();
    let (html, _, _) = filled(&s, &anna());
    assert!(
        html.len() < 90 * 1024,
        "the HTML part is {} bytes, over 90 KB",
        html.len()
    );
}

/// A line that is a URL and nothing else (maybe in `<…>` or after a
/// reference number like `[3]`), which may run past the wrap width.
fn is_lone_url(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let url = match words.as_slice() {
        [u] => *u,
        [n, u] if n.starts_with('[') && n.ends_with(']') => *u,
        _ => return false,
    };
    let url = url.trim_start_matches('<').trim_end_matches('>');
    url.starts_with("https://") || url.starts_with("http://") || url.starts_with("mailto:")
}

#[test]
fn text_part_lines_fit_78_columns() {
    let s = sample();
    assert_text_is_not_a_stub(&s);
    let (_, text, _) = filled(&s, &anna());
    let long: Vec<(usize, usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.width(), l))
        .filter(|(_, w, l)| *w > 78 && !is_lone_url(l))
        .collect();
    assert!(long.is_empty(), "lines over 78 columns: {long:#?}");
}

#[test]
fn text_part_is_clean_plain_text() {
    let s = sample();
    assert_text_is_not_a_stub(&s);
    let (_, text, _) = filled(&s, &anna());
    for bad in [
        "&amp;", "&nbsp;", "&quot;", "&#", "**", "](", "<a ", "<p", "<br",
    ] {
        assert!(!text.contains(bad), "the text part contains {bad:?}");
    }
    // Any other named entity.
    let entity = text.match_indices('&').find(|(i, _)| {
        let rest = &text[i + 1..];
        let name: String = rest
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with(';')
    });
    assert!(entity.is_none(), "an HTML entity at byte {entity:?}");
    let invisible = |c: char| {
        matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{034F}'
            | '\u{00AD}'
            | '\u{FEFF}'
            | '\u{E000}'..='\u{F8FF}')
    };
    let found: Vec<(usize, char)> = text.char_indices().filter(|(_, c)| invisible(*c)).collect();
    assert!(found.is_empty(), "invisible characters: {found:?}");
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t')),
        "control characters in the text part"
    );
}
