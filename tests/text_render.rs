//! The plain-text part: snapshots of each section and of a whole issue, and
//! properties checked over many generated issues.

use std::collections::HashSet;

use briefing::compose::render::text::{self, LinkList, MAX_LINE};
use briefing::compose::render::{Escape, Marks, Part, SLOT_WRAP_WIDTH, Slot, Template};
use briefing::model::*;
use jiff::Zoned;
use jiff::tz::TimeZone;
use unicode_width::UnicodeWidthStr;

// ---------------------------------------------------------------- builders

fn t(s: &str) -> Inline {
    Inline::Text(s.to_string())
}

fn a(url: &str, s: &str) -> Inline {
    Inline::Link(Link {
        url: url.to_string(),
        content: vec![t(s)],
    })
}

fn p(inl: Vec<Inline>) -> Block {
    Block::Paragraph(inl)
}

fn body(blocks: Vec<Block>) -> Body {
    Body { blocks }
}

fn berlin(day: i8, hour: i8) -> Zoned {
    jiff::civil::date(2025, 1, day)
        .at(hour, 0, 0, 0)
        .in_tz("Europe/Berlin")
        .unwrap()
}

fn publisher() -> Publisher {
    Publisher {
        postal_address: "Example Media GmbH\nBeispielstraße 7, 10115 Berlin, Germany".into(),
        reason: "You receive this briefing because you signed up for China Brief at \
                 example.com or were added by your organisation."
            .into(),
        salutation: vec![
            t("Dear "),
            Inline::Field(Field {
                name: "name".into(),
                fallback: Some("reader".into()),
            }),
            t(","),
        ],
        web_url: "https://example.com/briefs/2025-01-17".into(),
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

fn section(kind: SectionKind, content: SectionContent) -> Section {
    Section {
        kind,
        label: kind.default_label().into(),
        anchor: kind.key().into(),
        content,
    }
}

/// A small issue in the shape of the reference briefing, in our own words.
fn sample_issue() -> Issue {
    let editorial = Editorial {
        author: "Mara Lindqvist".into(),
        body: body(vec![
            p(vec![t(
                "A sale of German car plants to Chinese buyers would reverse forty years \
                 of money flowing one way. Jonas Feld looks at what such a deal would \
                 mean for suppliers and unions alike.",
            )]),
            p(vec![
                t("We would like to know what you read first. Please "),
                a(
                    "https://example.com/survey?src=brief&id=42",
                    "tell us in two minutes",
                ),
                t(" \u{2013} it helps us plan next year\u{2019}s coverage."),
            ]),
        ]),
        signature: Some("Mara Lindqvist, Editor".into()),
    };
    let articles = vec![
        Article {
            kicker: "Analysis".into(),
            title: "Why a Chinese buyer for German car plants would mark a turn".into(),
            teaser: "For decades capital went east. A plant sale would send it west, \
                     and Berlin has no playbook for that."
                .into(),
            author: "Jonas Feld".into(),
            body: body(vec![
                p(vec![
                    t("The talks are "),
                    Inline::Emphasis(vec![t("early")]),
                    t(", people familiar with them say, and "),
                    Inline::Strong(vec![t("nothing is signed")]),
                    t(". Three things would decide the outcome:"),
                ]),
                Block::List {
                    ordered: true,
                    items: vec![
                        vec![p(vec![t(
                            "whether the works council accepts a buyer whose home \
                             market is itself shrinking;",
                        )])],
                        vec![p(vec![t("the review under the foreign trade rules;")])],
                        vec![p(vec![
                            t("and the "),
                            a("https://example.org/reports/ev-2024.pdf", "2024 EV report"),
                            t("\u{2019}s cost figures."),
                        ])],
                    ],
                },
                Block::Quote(vec![p(vec![t(
                    "\u{201c}We would rather keep the lines running under a new owner \
                     than close them,\u{201d} a union official said.",
                )])]),
            ]),
            anchor: "chinese-buyer".into(),
        },
        Article {
            kicker: "Feature".into(),
            title: "Leaving TikTok for 小红书".into(),
            teaser: "American users are trying a Chinese app they cannot read.".into(),
            author: "Ilka Brandt".into(),
            body: body(vec![p(vec![t(
                "The app calls itself 小红书 (Xiaohongshu, \u{201c}little red book\u{201d}); \
                 new users learn words like 维吾尔 from comment threads and ask for \
                 translations in naïve but friendly English.",
            )])]),
            anchor: "leaving-tiktok".into(),
        },
    ];
    let events = vec![
        Event {
            start: berlin(23, 11),
            organizer: "Institute for Area Studies".into(),
            kind: "Webinar".into(),
            title: "Power shifts: China at the United Nations".into(),
            url: "https://example.net/events/un-power-shifts".into(),
        },
        Event {
            start: berlin(23, 18),
            organizer: "Trade Advisors & Partners".into(),
            kind: "Webinar".into(),
            title: "Tariffs 2.0: what US-Asia trade looks like next".into(),
            url: "https://example.net/events/tariffs-2".into(),
        },
    ];
    let news = vec![
        NewsItem {
            title: "iPhone sales drop by a quarter".into(),
            body: body(vec![
                p(vec![t(
                    "Apple sold a quarter fewer phones in China in the fourth quarter \
                     than a year earlier, a market researcher found.",
                )]),
                p(vec![t("Local brands gained four percent more.")]),
            ]),
            source: "rtr".into(),
            anchor: "iphone".into(),
        },
        NewsItem {
            title: "Privacy group files complaints over data transfers".into(),
            body: body(vec![p(vec![
                t("Six complaints were filed in four EU states, "),
                a("https://example.org/noyb-complaints", "the group said"),
                t("."),
            ])]),
            source: "rtr/grz".into(),
            anchor: "privacy".into(),
        },
    ];
    let column = Column {
        kicker: "China Perspective".into(),
        title: "A softer tone before the inauguration".into(),
        author: "Wen Hao".into(),
        body: body(vec![p(vec![t(
            "State media have turned down the volume on American disasters. The \
             change is deliberate, and it is not the first time.",
        )])]),
    };
    let heads = Heads {
        people: vec![
            Person {
                name: "Vera Takács".into(),
                role: Some("Regional Operations Manager".into()),
                organisation: Some("Example Motors Europe".into()),
                body: body(vec![p(vec![t(
                    "Takács runs operations for south-eastern Europe from Amsterdam.",
                )])]),
            },
            Person {
                name: "Li Wei".into(),
                role: None,
                organisation: Some("Harbour Trading".into()),
                body: body(vec![p(vec![t("Li joins the board in March.")])]),
            },
        ],
        call_to_action: body(vec![p(vec![
            t("Is something changing in your organisation? Write to "),
            a("mailto:heads@example.com", "heads@example.com"),
            t("!"),
        ])]),
    };
    let closing = Closing {
        title: "A house in Xintiandi".into(),
        body: body(vec![p(vec![t(
            "Since visas were dropped, Korean visitors queue at a small brick house in \
             Shanghai where an exile government met in 1919.",
        )])]),
        image: Some(Image {
            url: "https://example.com/img/xintiandi.jpg".into(),
            alt: "A narrow lane of brick houses in Shanghai".into(),
            width: Some(600),
            height: Some(400),
        }),
    };
    Issue {
        slug: "2025-01-17".into(),
        newsletter: "China Brief".into(),
        number: 42,
        date: jiff::civil::date(2025, 1, 17),
        subject: "China Brief: a turn for German car plants".into(),
        preheader: "Plus: leaving TikTok, new heads, and a house in Shanghai".into(),
        language: "en".into(),
        send_at: None,
        sections: vec![
            section(SectionKind::Editorial, SectionContent::Editorial(editorial)),
            section(SectionKind::Articles, SectionContent::Articles(articles)),
            section(SectionKind::Events, SectionContent::Events(events)),
            section(SectionKind::News, SectionContent::News(news)),
            section(SectionKind::Column, SectionContent::Column(column)),
            section(SectionKind::Heads, SectionContent::Heads(heads)),
            section(SectionKind::Closing, SectionContent::Closing(closing)),
        ],
        publisher: publisher(),
    }
}

/// A section rendered alone, its slots shown as `{{ name }}`.
fn section_text(issue: &Issue, kind: SectionKind) -> String {
    let s = issue
        .sections
        .iter()
        .find(|s| s.kind == kind)
        .expect("sample has every kind");
    let marks = Marks::new();
    let out = text::section(s, issue, &marks);
    marks.into_template(&out, Escape::None).with_placeholders()
}

// --------------------------------------------------------------- snapshots

#[test]
fn snapshot_header() {
    let issue = sample_issue();
    let marks = Marks::new();
    let out = text::header(&issue, &marks, &mut LinkList::new());
    insta::assert_snapshot!(marks.into_template(&out, Escape::None).with_placeholders());
}

#[test]
fn snapshot_contents() {
    insta::assert_snapshot!(text::contents(&sample_issue()));
}

#[test]
fn snapshot_editorial() {
    insta::assert_snapshot!(section_text(&sample_issue(), SectionKind::Editorial));
}

#[test]
fn snapshot_articles() {
    insta::assert_snapshot!(section_text(&sample_issue(), SectionKind::Articles));
}

#[test]
fn snapshot_events() {
    insta::assert_snapshot!(section_text(&sample_issue(), SectionKind::Events));
}

#[test]
fn snapshot_news() {
    insta::assert_snapshot!(section_text(&sample_issue(), SectionKind::News));
}

#[test]
fn snapshot_column() {
    insta::assert_snapshot!(section_text(&sample_issue(), SectionKind::Column));
}

#[test]
fn snapshot_heads() {
    insta::assert_snapshot!(section_text(&sample_issue(), SectionKind::Heads));
}

#[test]
fn snapshot_closing() {
    insta::assert_snapshot!(section_text(&sample_issue(), SectionKind::Closing));
}

#[test]
fn snapshot_footer() {
    let issue = sample_issue();
    let marks = Marks::new();
    let out = text::footer(&issue, &marks);
    insta::assert_snapshot!(marks.into_template(&out, Escape::None).with_placeholders());
}

#[test]
fn snapshot_whole_issue() {
    insta::assert_snapshot!(text::render(&sample_issue()).with_placeholders());
}

// ------------------------------------------------------ exact expectations

#[test]
fn evening_event_in_berlin_rolls_over_to_the_next_day_in_china() {
    // `_` marks a no-break space; China's CST, which US Central shares,
    // reads as its offset when the config names no label.
    let out = text::render(&sample_issue())
        .with_placeholders()
        .replace('\u{a0}', "_");
    assert!(
        out.lines()
            .any(|l| l == "Jan._23, 2025; 6_p.m._CET (Jan_24, 1_a.m._UTC+8)"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l == "Jan._23, 2025; 11_a.m._CET (6_p.m._UTC+8)")
    );
}

#[test]
fn template_slots_are_the_salutation_field_and_the_unsubscribe_url() {
    let tpl = text::render(&sample_issue());
    let slots: Vec<&Slot> = tpl.slots().collect();
    assert_eq!(slots.len(), 2, "{slots:?}");
    assert!(matches!(slots[0], Slot::Field(f) if f.name == "name"));
    assert_eq!(slots[1], &Slot::UnsubscribeUrl);
    assert_eq!(tpl.escape, Escape::None);
    let filled = tpl.fill(
        &briefing::audience::recipient::Recipient::new("a@example.org", "Anna"),
        "https://example.com/u/abc",
    );
    assert!(filled.contains("Dear Anna,\n"), "{filled}");
    assert!(filled.contains("\nUnsubscribe:\nhttps://example.com/u/abc\n"));
}

#[test]
fn references_run_across_the_issue_and_each_is_listed_once() {
    let out = text::render(&sample_issue()).with_placeholders();
    let listed: Vec<(usize, &str)> = out.lines().filter_map(reference_line).collect();
    let numbers: Vec<usize> = listed.iter().map(|(n, _)| *n).collect();
    let expected: Vec<usize> = (1..=9).collect();
    assert_eq!(numbers, expected, "{out}");
    assert!(
        listed.contains(&(8, "mailto:heads@example.com")),
        "{listed:?}"
    );
    for n in expected {
        let cite = format!(" [{n}]");
        assert_eq!(out.matches(&cite).count(), 1, "[{n}] cited other than once");
    }
}

/// `(n, url)` for a line of a reference list, `[n] url`.
fn reference_line(line: &str) -> Option<(usize, &str)> {
    let (n, url) = line.strip_prefix('[')?.split_once("] ")?;
    let is_url = url.starts_with("https://") || url.starts_with("mailto:");
    (is_url && !url.contains(' ')).then_some((n.parse().ok()?, url))
}

// -------------------------------------------------------------- properties

/// Small deterministic generator (xorshift64*), so failures reproduce by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const WORDS: &[&str] = &[
    "the",
    "trade",
    "ministry",
    "said",
    "on",
    "Thursday",
    "naïve",
    "\u{201c}quoted\u{201d}",
    "percent,",
    "well-known",
    "AT&T",
    "5\u{a0}km",
    "小红书",
    "维吾尔自治区的新闻",
    "Überseehandelsgesellschaften",
    "—",
    "x<y",
    "2.0:",
];

struct Gen {
    rng: Rng,
    urls: Vec<String>,
    serial: usize,
}

impl Gen {
    fn url(&mut self) -> String {
        self.serial += 1;
        let path = "segment-".repeat(self.rng.below(20));
        let url = format!(
            "https://example.com/{}/{path}{}",
            self.serial,
            self.rng.next()
        );
        self.urls.push(url.clone());
        url
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| self.rng.pick(WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn inlines(&mut self, depth: usize) -> Vec<Inline> {
        let mut out = Vec::new();
        for _ in 0..1 + self.rng.below(8) {
            let n = 1 + self.rng.below(12);
            let inl = match self.rng.below(if depth > 1 { 3 } else { 10 }) {
                0..=2 => t(&self.words(n)),
                3 => Inline::Emphasis(self.inlines(depth + 1)),
                4 => Inline::Strong(self.inlines(depth + 1)),
                5 => Inline::Code(self.words(2)),
                6 => {
                    let url = self.url();
                    Inline::Link(Link {
                        url,
                        content: self.inlines(depth + 1),
                    })
                }
                7 => {
                    let url = self.url();
                    a(&url, &url)
                }
                8 => Inline::LineBreak,
                _ => Inline::Field(Field {
                    name: "name".into(),
                    fallback: None,
                }),
            };
            out.push(inl);
            out.push(t(" "));
        }
        out
    }

    fn blocks(&mut self, depth: usize) -> Vec<Block> {
        let mut out = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            let b = match self.rng.below(if depth > 2 { 2 } else { 7 }) {
                0 | 1 => p(self.inlines(0)),
                2 => Block::List {
                    ordered: self.rng.below(2) == 0,
                    items: (0..1 + self.rng.below(4))
                        .map(|_| self.blocks(depth + 1))
                        .collect(),
                },
                3 => Block::Quote(self.blocks(depth + 1)),
                4 => Block::Heading(2, self.inlines(0)),
                5 => Block::Code(format!("let s = \"{}\";\n\t{}", self.words(20), self.url())),
                _ => Block::Rule,
            };
            out.push(b);
        }
        out
    }

    fn body(&mut self) -> Body {
        body(self.blocks(0))
    }

    fn title(&mut self) -> String {
        let n = 2 + self.rng.below(20);
        self.words(n)
    }

    /// A body whose last block is a plain paragraph, so the news initials
    /// follow text we can find again.
    fn news_body(&mut self) -> (Body, String) {
        let mut b = self.body();
        let last = self.words(6);
        b.blocks.push(p(vec![t(&last)]));
        (b, last)
    }
}

struct Generated {
    issue: Issue,
    urls: Vec<String>,
    news_tails: Vec<(String, String)>,
}

fn generated_issue(seed: u64) -> Generated {
    let mut g = Gen {
        rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        urls: Vec::new(),
        serial: 0,
    };
    let mut issue = sample_issue();
    let mut news_tails = Vec::new();
    for s in &mut issue.sections {
        match &mut s.content {
            SectionContent::Editorial(e) => e.body = g.body(),
            SectionContent::Articles(list) => {
                for a in list {
                    a.title = g.title();
                    a.teaser = g.title();
                    a.body = g.body();
                }
            }
            SectionContent::Events(list) => {
                for e in list {
                    e.title = g.title();
                    e.url = g.url();
                }
            }
            SectionContent::News(list) => {
                for n in list {
                    n.title = g.title();
                    let (b, last) = g.news_body();
                    n.body = b;
                    news_tails.push((last, n.source.clone()));
                }
            }
            SectionContent::Column(c) => {
                c.title = g.title();
                c.body = g.body();
            }
            SectionContent::Heads(h) => {
                for person in &mut h.people {
                    person.body = g.body();
                }
                h.call_to_action = g.body();
            }
            SectionContent::Closing(c) => {
                c.title = g.title();
                c.body = g.body();
                if let Some(img) = &mut c.image {
                    img.url = g.url();
                    img.alt = g.title();
                }
            }
        }
    }
    Generated {
        issue,
        urls: g.urls,
        news_tails,
    }
}

/// The text as a recipient sees it, every slot standing in at the width the
/// wrapper assumed.
fn filled(tpl: &Template) -> String {
    tpl.parts
        .iter()
        .map(|part| match part {
            Part::Static(s) => s.clone(),
            Part::Slot(_) => "X".repeat(SLOT_WRAP_WIDTH),
        })
        .collect()
}

/// A line that carries one URL and nothing else but indentation, quote or
/// list markers and reference numbers.
fn is_url_line(line: &str) -> bool {
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let is_decoration = |tok: &str| {
        let reference = tok
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .is_some_and(|(n, rest)| {
                is_number(n) && rest.chars().all(|c| c.is_ascii_punctuation())
            });
        tok == ">" || tok == "-" || tok.strip_suffix('.').is_some_and(is_number) || reference
    };
    let (urls, rest): (Vec<&str>, Vec<&str>) = line
        .split_whitespace()
        .partition(|tok| tok.starts_with("https://") || tok.starts_with("mailto:"));
    urls.len() == 1 && rest.into_iter().all(is_decoration)
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn check_text_invariants(out: &str, context: &str) {
    assert!(out.ends_with('\n'), "{context}: no final newline");
    assert!(!out.contains('\r'), "{context}: CR in text");
    for line in out.lines() {
        let w = line.width();
        assert!(
            w <= MAX_LINE || is_url_line(line),
            "{context}: {w} columns: {line:?}"
        );
        assert!(line.len() < 998, "{context}: {} bytes", line.len());
        assert_eq!(line.trim_end(), line, "{context}: trailing space");
        assert!(!line.contains('\t'), "{context}: tab in {line:?}");
        assert!(
            !line.chars().any(|c| matches!(c,
                '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}' | '\u{034f}' | '\u{feff}'
                    | '\u{e000}'..='\u{f8ff}')),
            "{context}: invisible or private character in {line:?}"
        );
        for entity in ["&amp;", "&nbsp;", "&lt;", "&gt;", "&quot;", "&#"] {
            assert!(!line.contains(entity), "{context}: {entity} in {line:?}");
        }
        for syntax in ["**", "__", "`"] {
            assert!(!line.contains(syntax), "{context}: {syntax} in {line:?}");
        }
    }
}

fn check_issue(g: &Generated, context: &str) {
    let out = filled(&text::render(&g.issue));
    check_text_invariants(&out, context);
    let flat = squeeze(&out);
    let issue = &g.issue;
    let words: HashSet<&str> = out.split_whitespace().collect();
    for url in g.urls.iter().chain([&issue.publisher.web_url]) {
        assert!(
            words.contains(url.as_str()),
            "{context}: {url} missing or broken"
        );
    }
    let mut must = vec![issue.newsletter.clone()];
    for s in &issue.sections {
        must.push(s.label.clone());
        match &s.content {
            SectionContent::Articles(list) => {
                for a in list {
                    must.extend([a.kicker.clone(), a.title.clone(), a.teaser.clone()]);
                    must.push(format!("By {}", a.author));
                }
            }
            SectionContent::Events(list) => must.extend(list.iter().map(|e| e.title.clone())),
            SectionContent::News(list) => must.extend(list.iter().map(|n| n.title.clone())),
            SectionContent::Column(c) => {
                must.extend([
                    c.kicker.clone(),
                    c.title.clone(),
                    format!("By {}", c.author),
                ]);
            }
            SectionContent::Heads(h) => must.extend(h.people.iter().map(|p| p.name.clone())),
            SectionContent::Closing(c) => must.push(c.title.clone()),
            SectionContent::Editorial(e) => must.extend(e.signature.clone()),
        }
    }
    for m in must {
        assert!(flat.contains(&squeeze(&m)), "{context}: {m:?} missing");
    }
    for (tail, source) in &g.news_tails {
        // Held to the paragraph's last word: never alone on a line.
        let suffix = format!(" {source}");
        assert!(
            out.lines()
                .any(|l| l.ends_with(&suffix) && l.len() > suffix.len()),
            "{context}: initials {source} do not close a paragraph line"
        );
        let closed = squeeze(&format!("{tail} {source}\n"));
        assert!(flat.contains(&closed), "{context}: {tail} {source}");
    }
}

#[test]
fn sample_issue_holds_every_property() {
    let g = Generated {
        issue: sample_issue(),
        urls: vec![
            "https://example.com/survey?src=brief&id=42".into(),
            "https://example.org/reports/ev-2024.pdf".into(),
            "https://example.net/events/un-power-shifts".into(),
            "https://example.net/events/tariffs-2".into(),
            "https://example.org/noyb-complaints".into(),
            "mailto:heads@example.com".into(),
            "https://example.com/img/xintiandi.jpg".into(),
        ],
        news_tails: vec![
            (
                "Local brands gained four percent more.".into(),
                "rtr".into(),
            ),
            ("the group said [7].".into(), "rtr/grz".into()),
        ],
    };
    check_issue(&g, "sample");
}

#[test]
fn generated_issues_hold_every_property() {
    for seed in 1..=120 {
        check_issue(&generated_issue(seed), &format!("seed {seed}"));
    }
}

#[test]
fn generated_sections_never_leak_references_between_each_other() {
    // Every reference cited in a section is listed in that same section.
    for seed in 1..=60 {
        let g = generated_issue(seed);
        let marks = Marks::new();
        let mut links = LinkList::new();
        let mut next = 1;
        for s in &g.issue.sections {
            let out = text::section_with_links(s, &g.issue, &marks, &mut links);
            let listed: Vec<usize> = out
                .lines()
                .filter_map(reference_line)
                .map(|(n, _)| n)
                .collect();
            let cited = out
                .lines()
                .filter(|l| reference_line(l).is_none())
                .collect::<Vec<_>>()
                .join("\n");
            for n in &listed {
                assert!(
                    cited.contains(&format!("[{n}]")),
                    "seed {seed}: [{n}] not cited in {out}"
                );
            }
            for (i, n) in listed.iter().enumerate() {
                assert_eq!(*n, next + i, "seed {seed}: numbering skips in {out}");
            }
            next += listed.len();
        }
        assert!(links.drain_lines().is_empty(), "seed {seed}: unlisted refs");
    }
}

/// Numbers with units and times as editors write them in prose.
const UNIT_PHRASES: [&str; 8] = [
    "$50/kWh",
    "5 %",
    "30 GW",
    "11 p.m. CST",
    "6:30 a.m. UTC+8",
    "USD 52.7 bn",
    "120 km/h",
    "-3 °C",
];

/// How often `phrase` occurs within single lines, and in the whole text,
/// both without whitespace: the two differ when a line break splits an
/// occurrence, at a space or not (`$50/` and `kWh`).
fn whole_and_all(out: &str, phrase: &str) -> (usize, usize) {
    let phrase = squeeze(phrase);
    let within = out
        .lines()
        .map(|l| squeeze(l).matches(&phrase).count())
        .sum();
    (within, squeeze(out).matches(&phrase).count())
}

/// Words of `w` exactly `n` columns long (`n` ≥ 1).
fn filler(n: usize) -> String {
    let mut out = String::new();
    while n - out.len() > 10 {
        out.push_str("wwwwwwwww ");
    }
    out.push_str(&"w".repeat(n - out.len()));
    out
}

#[test]
fn times_and_numbers_with_units_never_wrap_in_the_text_part() {
    // Each phrase starts a paragraph's first line at every column from
    // where it just fits to where it would straddle the line's end; the
    // same paragraphs sit in a list item (narrower) and, run together, in
    // a teaser of the contents (indented).
    let mut paragraphs = Vec::new();
    for phrase in UNIT_PHRASES {
        for k in 0..=phrase.len() + 1 {
            paragraphs.push(format!("{} {phrase} end.", filler(text::WIDTH - k)));
        }
    }
    let url = format!("https://example.org/{}", "long-path/".repeat(9));
    let mut issue = sample_issue();
    for s in &mut issue.sections {
        match &mut s.content {
            SectionContent::Editorial(e) => {
                let mut blocks: Vec<Block> = paragraphs.iter().map(|x| p(vec![t(x)])).collect();
                blocks.push(Block::List {
                    ordered: false,
                    items: paragraphs.iter().map(|x| vec![p(vec![t(x)])]).collect(),
                });
                blocks.push(p(vec![t(&paragraphs.join(" ")), t(" "), a(&url, &url)]));
                e.body = body(blocks);
            }
            SectionContent::Articles(list) => list[0].teaser = paragraphs.join(" "),
            _ => {}
        }
    }
    let out = filled(&text::render(&issue));
    check_text_invariants(&out, "units");
    assert!(out.split_whitespace().any(|w| w == url), "{url} broken");
    // A no-break space looks like a space to the reader.
    let read = out.replace('\u{a0}', " ");
    let mut phrases: Vec<String> = UNIT_PHRASES.iter().map(|p| p.to_string()).collect();
    phrases.extend([
        "6 p.m. CET".into(),
        "1 a.m. UTC+8".into(),
        "11 a.m. CET".into(),
    ]);
    for phrase in phrases {
        let (within, all) = whole_and_all(&read, &phrase);
        assert!(all > 0, "{phrase:?} is not in the text part");
        assert_eq!(within, all, "a line break splits {phrase:?}:\n{read}");
    }
}
