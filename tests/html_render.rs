//! The HTML alternative: snapshots of each section's view and of a whole
//! small issue, and the email-safety properties every rendered issue keeps.

use briefing::audience::recipient::Recipient;
use briefing::compose::render::html::{self, break_lines};
use briefing::compose::render::{Marks, Part, Slot, Template};
use briefing::model::{
    Article, Block, Body, Closing, Column, Editorial, Event, Field, Heads, Image, Inline, Issue,
    Link, NewsItem, Person, Publisher, Section, SectionContent, SectionKind,
};
use jiff::civil::date;
use jiff::tz::TimeZone;

// ---------------------------------------------------------------- fixtures

fn text(s: &str) -> Inline {
    Inline::Text(s.into())
}

fn para(s: &str) -> Block {
    Block::Paragraph(vec![text(s)])
}

fn body(paras: &[&str]) -> Body {
    Body {
        blocks: paras.iter().map(|p| para(p)).collect(),
    }
}

fn link(url: &str, label: &str) -> Inline {
    Inline::Link(Link {
        url: url.into(),
        content: vec![text(label)],
    })
}

fn name_tag() -> Field {
    Field {
        name: "name".into(),
        fallback: Some("reader".into()),
    }
}

fn section(kind: SectionKind, anchor: &str, content: SectionContent) -> Section {
    Section {
        kind,
        label: kind.default_label().into(),
        anchor: anchor.into(),
        content,
    }
}

fn publisher() -> Publisher {
    Publisher {
        postal_address: "Harbour Press Ltd\nQuay Street 4\n20457 Hamburg, Germany".into(),
        reason: "You get this because you subscribed at harbour.example.org.".into(),
        salutation: vec![text("Dear "), Inline::Field(name_tag()), text(",")],
        web_url: "https://harbour.example.org/issues/42".into(),
        event_zones: vec![
            TimeZone::get("Europe/Berlin").unwrap(),
            TimeZone::get("Asia/Shanghai").unwrap(),
        ],
        zone_labels: Default::default(),
        stylesheet: briefing::compose::stylesheet::prepare_stylesheet(
            briefing::compose::stylesheet::DEFAULT_STYLESHEET,
        )
        .unwrap(),
        words: briefing::compose::strings::english().words,
    }
}

fn editorial() -> Section {
    section(
        SectionKind::Editorial,
        "editorial",
        SectionContent::Editorial(Editorial {
            author: "Mara Lind".into(),
            body: Body {
                blocks: vec![
                    para(
                        "Two long reads this week: a look at the port’s new cranes and a profile of the night shift.",
                    ),
                    Block::Paragraph(vec![
                        text("Tell us what you think in "),
                        link("https://harbour.example.org/survey", "our short survey"),
                        text(" – it takes three minutes."),
                    ]),
                ],
            },
            signature: Some("Mara Lind, Editor".into()),
        }),
    )
}

fn articles() -> Section {
    section(
        SectionKind::Articles,
        "articles",
        SectionContent::Articles(vec![
            Article {
                kicker: "Analysis".into(),
                title: "Why the cranes came late".into(),
                teaser: "A supplier’s strike and a missed ship explain a year’s delay.".into(),
                author: "Jon Berg".into(),
                body: Body {
                    blocks: vec![
                        para("The first of six cranes arrived in March, eleven months late."),
                        Block::Heading(2, vec![text("The supplier")]),
                        Block::List {
                            ordered: false,
                            items: vec![
                                vec![para("a strike in the steel works")],
                                vec![para("a ship that sailed without its cargo")],
                            ],
                        },
                        Block::Quote(vec![para(
                            "“We planned for one delay, not two,” the port said.",
                        )]),
                    ],
                },
                anchor: "why-the-cranes-came-late".into(),
            },
            Article {
                kicker: "Feature".into(),
                title: "A night on the quay".into(),
                teaser: "Eight hours with the crew that unloads 小红书-famous fruit.".into(),
                author: "Ida Holm".into(),
                body: body(&["At two in the morning the quay is brighter than the town."]),
                anchor: "a-night-on-the-quay".into(),
            },
        ]),
    )
}

fn events() -> Section {
    let at = |d: i8, h: i8| {
        date(2025, 1, d)
            .at(h, 0, 0, 0)
            .in_tz("Europe/Berlin")
            .unwrap()
    };
    section(
        SectionKind::Events,
        "events",
        SectionContent::Events(vec![
            Event {
                start: at(23, 11),
                organizer: "Port Institute".into(),
                kind: "Webinar".into(),
                title: "Cranes, Cargo & Contracts".into(),
                url: "https://events.example.org/cranes".into(),
            },
            Event {
                start: at(23, 18),
                organizer: "Shipping Circle".into(),
                kind: "Conference".into(),
                title: "Ports after the boom".into(),
                url: "https://events.example.org/ports".into(),
            },
        ]),
    )
}

fn news() -> Section {
    section(
        SectionKind::News,
        "news",
        SectionContent::News(vec![
            NewsItem {
                title: "Ferry fares rise".into(),
                body: body(&[
                    "Fares on the harbour ferry rise by ten percent in April.",
                    "Season tickets stay at last year’s price.",
                ]),
                source: "rtr".into(),
                anchor: "ferry-fares-rise".into(),
            },
            NewsItem {
                title: "New berth opens".into(),
                body: Body {
                    blocks: vec![
                        para("Berth 7 takes its first ship next week."),
                        Block::List {
                            ordered: true,
                            items: vec![vec![para("dredging done")], vec![para("cranes tested")]],
                        },
                    ],
                },
                source: "rtr/grz".into(),
                anchor: "new-berth-opens".into(),
            },
        ]),
    )
}

fn column() -> Section {
    section(
        SectionKind::Column,
        "column",
        SectionContent::Column(Column {
            kicker: "Harbour View".into(),
            title: "Quiet water is not calm water".into(),
            author: "Lena Voss".into(),
            body: body(&[
                "A port that stops growing starts shrinking, slowly and then all at once.",
            ]),
        }),
    )
}

fn heads() -> Section {
    section(
        SectionKind::Heads,
        "heads",
        SectionContent::Heads(Heads {
            people: vec![
                Person {
                    name: "Tove Ek".into(),
                    role: Some("Harbour Master".into()),
                    organisation: Some("Port Authority".into()),
                    body: body(&["Ek ran the pilots’ office for six years."]),
                },
                Person {
                    name: "Ola Dahl".into(),
                    role: None,
                    organisation: None,
                    body: body(&["Dahl retires after forty years on the tugs."]),
                },
            ],
            call_to_action: Body {
                blocks: vec![Block::Paragraph(vec![
                    text("New job? Tell us at "),
                    link(
                        "mailto:heads@harbour.example.org",
                        "heads@harbour.example.org",
                    ),
                    text("!"),
                ])],
            },
        }),
    )
}

fn closing() -> Section {
    section(
        SectionKind::Closing,
        "dessert",
        SectionContent::Closing(Closing {
            title: "The gull that rides the ferry".into(),
            body: body(&[
                "Every morning at seven one gull boards the ferry and leaves at the fish market.",
            ]),
            image: Some(Image {
                url: "https://harbour.example.org/img/gull.jpg".into(),
                alt: "A gull on the ferry’s railing".into(),
                width: Some(1200),
                height: Some(800),
            }),
        }),
    )
}

fn small_issue() -> Issue {
    Issue {
        slug: "2025-01-17".into(),
        newsletter: "Harbour Brief".into(),
        number: 42,
        date: date(2025, 1, 17),
        subject: "Harbour Brief #42: Why the cranes came late".into(),
        preheader:
            "The crane delay explained, a night on the quay, and a gull that rides the ferry."
                .into(),
        language: "en".into(),
        send_at: None,
        sections: vec![
            editorial(),
            articles(),
            events(),
            news(),
            column(),
            heads(),
            closing(),
        ],
        publisher: publisher(),
    }
}

/// An issue as long as the reference briefing: long articles, five news
/// items, a column; the words are filler, the proportions are real.
fn full_issue() -> Issue {
    let sentence = "The port authority said on Tuesday that the new cranes would double \
                    the terminal’s capacity by the end of next year, “if nothing else goes wrong.” ";
    let paragraph = sentence.repeat(4);
    let paras = |n: usize| Body {
        blocks: (0..n).map(|_| para(&paragraph)).collect(),
    };
    let mut issue = small_issue();
    for s in &mut issue.sections {
        match &mut s.content {
            SectionContent::Editorial(e) => e.body = paras(5),
            SectionContent::Articles(list) => list.iter_mut().for_each(|a| a.body = paras(12)),
            SectionContent::News(items) => {
                let template = items[0].clone();
                *items = (0..5)
                    .map(|i| NewsItem {
                        anchor: format!("news-{i}"),
                        body: paras(3),
                        ..template.clone()
                    })
                    .collect();
            }
            SectionContent::Column(c) => c.body = paras(10),
            SectionContent::Heads(h) => h.people.iter_mut().for_each(|p| p.body = paras(1)),
            SectionContent::Closing(c) => c.body = paras(1),
            SectionContent::Events(_) => {}
        }
    }
    issue
}

fn sample(kind: SectionKind) -> Section {
    let issue = small_issue();
    issue.sections.into_iter().find(|s| s.kind == kind).unwrap()
}

fn section_html(kind: SectionKind) -> String {
    let issue = small_issue();
    let marks = Marks::new();
    let markup = html::section(&sample(kind), &issue, &marks);
    break_lines(&markup.into_string())
}

fn filled(t: &Template) -> String {
    t.fill(
        &Recipient::new("a@example.org", "Anna"),
        "https://example.org/u/x",
    )
}

// --------------------------------------------------------------- snapshots

#[test]
fn editorial_section_snapshot() {
    insta::assert_snapshot!(section_html(SectionKind::Editorial));
}

#[test]
fn articles_section_snapshot() {
    insta::assert_snapshot!(section_html(SectionKind::Articles));
}

#[test]
fn events_section_snapshot() {
    insta::assert_snapshot!(section_html(SectionKind::Events));
}

#[test]
fn news_section_snapshot() {
    insta::assert_snapshot!(section_html(SectionKind::News));
}

#[test]
fn column_section_snapshot() {
    insta::assert_snapshot!(section_html(SectionKind::Column));
}

#[test]
fn heads_section_snapshot() {
    insta::assert_snapshot!(section_html(SectionKind::Heads));
}

#[test]
fn closing_section_snapshot() {
    insta::assert_snapshot!(section_html(SectionKind::Closing));
}

#[test]
fn body_snapshot() {
    let marks = Marks::new();
    let b = Body {
        blocks: vec![
            Block::Heading(3, vec![text("Small heading")]),
            Block::Paragraph(vec![
                text("Hello "),
                Inline::Field(name_tag()),
                text(", "),
                Inline::Emphasis(vec![text("this")]),
                text(" is "),
                Inline::Strong(vec![text("bold")]),
                text(" and "),
                Inline::Code("code".into()),
                Inline::LineBreak,
                link("https://example.org/?a=1&b=2", "a link"),
            ]),
            Block::Code("let x = 1 < 2;".into()),
            Block::Rule,
        ],
    };
    insta::assert_snapshot!(break_lines(&html::body(&b, &marks).into_string()));
}

#[test]
fn whole_issue_snapshot() {
    insta::assert_snapshot!(html::render(&small_issue()).with_placeholders());
}

// -------------------------------------------------------------- properties

fn issues() -> Vec<(&'static str, Issue)> {
    vec![("small", small_issue()), ("full", full_issue())]
}

#[test]
fn no_element_or_css_that_email_clients_strip() {
    for (name, issue) in issues() {
        let out = filled(&html::render(&issue)).to_lowercase();
        for banned in [
            "<script",
            "<form",
            "<iframe",
            "<svg",
            "<video",
            "<object",
            "<embed",
            "<main",
            "<nav",
            "<section",
            "<article",
            "display:flex",
            "display:grid",
            "position:",
            "margin:auto",
            "margin:0 auto",
            "border-radius",
            "background-image",
            "url(",
            " onclick=",
            " onload=",
            " onerror=",
        ] {
            assert!(!out.contains(banned), "{name}: found {banned}");
        }
    }
}

#[test]
fn every_table_is_a_presentation_table() {
    for (name, issue) in issues() {
        let out = filled(&html::render(&issue));
        let tables = out.matches("<table").count();
        assert!(tables >= 3, "{name}");
        assert_eq!(
            tables,
            out.matches("<table role=\"presentation\"").count(),
            "{name}"
        );
    }
}

#[test]
fn document_declares_language_direction_and_meta() {
    let out = filled(&html::render(&small_issue()));
    assert!(out.starts_with("<!DOCTYPE html>"));
    assert!(out.contains("<html lang=\"en\" dir=\"ltr\""));
    assert!(out.contains("<meta charset=\"utf-8\">"));
    assert!(out.contains("<meta name=\"x-apple-disable-message-reformatting\">"));
    assert!(out.contains("<meta name=\"color-scheme\" content=\"light dark\">"));
    assert!(out.contains("<title>Harbour Brief #42: Why the cranes came late</title>"));
    assert!(out.contains(
        "<div class=\"e\" role=\"article\" aria-roledescription=\"email\" \
         aria-label=\"Harbour Brief #42: Why the cranes came late\" lang=\"en\" dir=\"ltr\""
    ));
}

#[test]
fn the_preheader_is_the_first_text_and_hidden() {
    let issue = small_issue();
    let out = filled(&html::render(&issue));
    let body = &out[out.find("<body").unwrap()..];
    let first = text_nodes(body).into_iter().next().unwrap();
    assert_eq!(first.text, issue.preheader);
    assert!(
        first
            .style
            .starts_with("display:none;max-height:0;overflow:hidden;mso-hide:all")
    );
    assert!(out.contains(&format!(
        "<meta name=\"description\" content=\"{}\">",
        issue.preheader
    )));
}

#[test]
fn every_image_has_alt_text() {
    for (name, issue) in issues() {
        let out = filled(&html::render(&issue));
        let imgs: Vec<&str> = out.split("<img").skip(1).collect();
        assert!(!imgs.is_empty(), "{name}");
        for img in imgs {
            let tag = &img[..img.find('>').unwrap()];
            assert!(tag.contains(" alt=\""), "{name}: {tag}");
            assert!(tag.contains("max-width:"), "{name}: {tag}");
        }
    }
}

#[test]
fn style_block_stays_far_under_gmails_limit() {
    let out = filled(&html::render(&small_issue()));
    let styles: Vec<&str> = out
        .split("<style>")
        .skip(1)
        .map(|s| &s[..s.find("</style>").unwrap()])
        .collect();
    assert_eq!(styles.len(), 1);
    assert!(styles.iter().map(|s| s.len()).sum::<usize>() < 16384);
    assert!(styles[0].len() < 2048);
    let head_end = out.find("</head>").unwrap();
    assert!(out.find("<style>").unwrap() < head_end);
}

#[test]
fn every_visible_text_has_inline_colour_and_font() {
    for (name, issue) in issues() {
        let out = filled(&html::render(&issue));
        let body = &out[out.find("<body").unwrap()..];
        for node in text_nodes(body) {
            assert!(
                node.style.contains("color:") && node.style.contains("font-family:"),
                "{name}: <{}> holding {:?} lacks colour or font",
                node.tag,
                node.text
            );
        }
    }
}

#[test]
fn every_font_stack_ends_with_a_generic_family() {
    let out = filled(&html::render(&small_issue()));
    for stack in out.split("font-family:").skip(1) {
        let stack = &stack[..stack.find([';', '"']).unwrap()];
        assert!(
            ["serif", "sans-serif", "monospace"]
                .iter()
                .any(|g| stack.ends_with(g)),
            "{stack}"
        );
    }
}

#[test]
fn every_content_cell_sets_background_and_colour() {
    let out = filled(&html::render(&full_issue()));
    for td in out.split("<td").skip(1) {
        let tag = &td[..td.find('>').unwrap()];
        if tag.contains("style=") {
            assert!(
                tag.contains("background-color:") && tag.contains(";color:"),
                "{tag}"
            );
        }
    }
}

#[test]
fn footer_carries_address_reason_and_a_working_unsubscribe_link() {
    let t = html::render(&small_issue());
    assert_eq!(t.slots().filter(|s| **s == Slot::UnsubscribeUrl).count(), 1);
    let out = filled(&t);
    assert!(out.contains("<a href=\"https://example.org/u/x\" style=\"color:#0b5394"));
    assert!(out.contains(">Unsubscribe</a>"));
    assert!(out.contains("Harbour Press Ltd<br>Quay Street 4<br>20457 Hamburg, Germany"));
    assert!(out.contains("You get this because you subscribed at harbour.example.org."));
    assert!(out.contains(">Dear Anna,</p>"));
    assert_eq!(
        out.matches("href=\"https://harbour.example.org/issues/42\"")
            .count(),
        2
    );
}

#[test]
fn header_and_contents_link_every_section_and_article() {
    let issue = small_issue();
    let out = filled(&html::render(&issue));
    assert!(out.contains(">Harbour Brief</h1>"));
    assert!(out.contains(">Issue 42 · January 17, 2025</p>"));
    for s in &issue.sections {
        assert!(
            out.contains(&format!("href=\"#{}\"", s.anchor)),
            "{}",
            s.anchor
        );
        assert!(
            out.contains(&format!("id=\"{}\"", s.anchor)),
            "{}",
            s.anchor
        );
        assert!(
            out.contains(&format!("name=\"{}\"", s.anchor)),
            "{}",
            s.anchor
        );
    }
    for anchor in [
        "why-the-cranes-came-late",
        "a-night-on-the-quay",
        "ferry-fares-rise",
    ] {
        assert!(out.contains(&format!("href=\"#{anchor}\"")), "{anchor}");
        assert!(out.contains(&format!("id=\"{anchor}\"")), "{anchor}");
        assert!(out.contains(&format!("name=\"{anchor}\"")), "{anchor}");
    }
}

#[test]
fn events_carry_machine_readable_times_and_link_their_titles() {
    let out = filled(&html::render(&small_issue()));
    assert!(out.contains(
        "<time datetime=\"2025-01-23T18:00:00+01:00\" style=\"color:#1a1a1a;font-family:Helvetica,Arial,sans-serif\">\
         Jan.&nbsp;23, 2025; 6&nbsp;p.m.&nbsp;CET (Jan&nbsp;24, 1&nbsp;a.m.&nbsp;UTC+8)</time>"
    ));
    // The title is the link text, so no client needs an aria-label to
    // tell where it goes.
    assert!(out.contains(
        "Port Institute, Webinar: <a href=\"https://events.example.org/cranes\" \
         style=\"color:#0b5394;text-decoration:underline;font-family:Georgia,'Times New Roman',serif\">\
         Cranes, Cargo &amp; Contracts</a>"
    ));
    assert!(!out.contains(">More</a>"));
    assert_eq!(out.matches("aria-label=").count(), 1, "only the wrapper's");
}

#[test]
fn script_in_every_text_field_comes_out_escaped() {
    let evil = "<script>alert(1)</script>";
    let mut issue = small_issue();
    issue.newsletter = evil.into();
    issue.subject = evil.into();
    issue.preheader = evil.into();
    issue.language = format!("en\"{evil}");
    issue.publisher.postal_address = evil.into();
    issue.publisher.reason = evil.into();
    issue.publisher.salutation = vec![text(evil)];
    issue.publisher.web_url = format!("https://x.example/\"{evil}");
    for s in &mut issue.sections {
        s.label = evil.into();
        s.anchor = format!("a\"{evil}");
        match &mut s.content {
            SectionContent::Editorial(e) => {
                e.author = evil.into();
                e.signature = Some(evil.into());
            }
            SectionContent::Articles(list) => {
                for a in list {
                    a.kicker = evil.into();
                    a.title = evil.into();
                    a.teaser = evil.into();
                    a.author = evil.into();
                    a.anchor = evil.into();
                }
            }
            SectionContent::Events(list) => {
                for e in list {
                    e.organizer = evil.into();
                    e.kind = evil.into();
                    e.title = evil.into();
                    e.url = format!("https://x.example/{evil}");
                }
            }
            SectionContent::News(list) => {
                for n in list {
                    n.title = evil.into();
                    n.source = evil.into();
                    n.anchor = evil.into();
                    n.body = body(&[evil]);
                }
            }
            SectionContent::Column(c) => {
                c.kicker = evil.into();
                c.title = evil.into();
                c.author = evil.into();
            }
            SectionContent::Heads(h) => {
                for p in &mut h.people {
                    p.name = evil.into();
                    p.role = Some(evil.into());
                    p.organisation = Some(evil.into());
                }
            }
            SectionContent::Closing(c) => {
                c.title = evil.into();
                if let Some(img) = &mut c.image {
                    img.alt = evil.into();
                    img.url = format!("https://x.example/\"{evil}");
                }
            }
        }
    }
    let evil_recipient = Recipient::new("a@example.org", evil);
    let out = html::render(&issue).fill(&evil_recipient, "https://example.org/u/\"<script>");
    assert!(!out.contains("<script"), "{out}");
    assert!(out.contains("&lt;script&gt;"));
}

#[test]
fn lines_holding_slots_are_short() {
    for (name, issue) in issues() {
        let t = html::render(&issue);
        for line in slot_lines(&t) {
            assert!(line.len() < 1000, "{name}: {} bytes: {line}", line.len());
        }
    }
}

#[test]
fn no_line_approaches_the_smtp_limit() {
    let out = filled(&html::render(&full_issue()));
    let longest = out.lines().map(str::len).max().unwrap();
    assert!(longest < 998, "{longest}");
}

#[test]
fn a_full_issue_stays_under_the_gmail_clip_budget() {
    let out = filled(&html::render(&full_issue()));
    assert!(out.len() < 90 * 1024, "{} bytes", out.len());
    assert!(
        !out.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "control characters clip Gmail"
    );
}

// ----------------------------------------------------------------- helpers

/// A run of visible text with the tag and `style` of its nearest element.
#[derive(Debug)]
struct TextNode {
    tag: String,
    style: String,
    text: String,
}

/// Text nodes of an HTML fragment in document order, skipping comments and
/// whitespace (a tiny tag-stack parser; enough for the renderer's output).
fn text_nodes(html: &str) -> Vec<TextNode> {
    const VOID: [&str; 6] = ["br", "hr", "img", "meta", "link", "input"];
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = &after[after.find("-->").unwrap() + 3..];
        } else if let Some(after) = rest.strip_prefix("</") {
            stack.pop();
            rest = &after[after.find('>').unwrap() + 1..];
        } else if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>').unwrap();
            let tag = &after[..end];
            let name = tag.split([' ', '\n']).next().unwrap().to_string();
            let style = tag
                .split_once("style=\"")
                .map(|(_, s)| s[..s.find('"').unwrap()].to_string())
                .unwrap_or_default();
            if !VOID.contains(&name.as_str()) {
                stack.push((name, style));
            }
            rest = &after[end + 1..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let t = rest[..end].trim();
            if !t.is_empty() {
                let (tag, style) = stack.last().cloned().unwrap_or_default();
                out.push(TextNode {
                    tag,
                    style,
                    text: t.replace("&amp;", "&"),
                });
            }
            rest = &rest[end..];
        }
    }
    out
}

/// The lines of a template that hold at least one slot, slots shown as
/// twelve bytes.
fn slot_lines(t: &Template) -> Vec<String> {
    let mut lines = Vec::new();
    let (mut line, mut has_slot) = (String::new(), false);
    for part in &t.parts {
        match part {
            Part::Static(s) => {
                for (i, piece) in s.split('\n').enumerate() {
                    if i > 0 {
                        if has_slot {
                            lines.push(std::mem::take(&mut line));
                        }
                        line.clear();
                        has_slot = false;
                    }
                    line.push_str(piece);
                }
            }
            Part::Slot(_) => {
                has_slot = true;
                line.push_str("{{ slot    }}");
            }
        }
    }
    if has_slot {
        lines.push(line);
    }
    lines
}
