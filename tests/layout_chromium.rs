//! Layout in a real engine: headless Chromium opens the rendered issue at
//! phone (375 px) and column (600 px) widths, nothing may stick out, and no
//! time or number with its unit may wrap.
//!
//! The fixture is built to break a careless layout: a 120-character URL as
//! link text, a long unbroken word, CJK paragraphs without spaces, a long
//! preformatted line and a photo 1,200 px wide. Every body also holds a
//! paragraph that repeats times and numbers with units behind fillers of
//! changing length, so that at any width some of them meet a line's end;
//! event times run in three zones, one of them labelled. The email goes into
//! an iframe of the width under test (headless Chromium will not open a
//! window narrower than 500 px), and a measuring script in the surrounding
//! test page reports what sticks out and which phrases a line break split;
//! the email itself never carries a script.
//!
//! Needs `chromium` (`apt-get install -y chromium`); set
//! `BRIEFING_SKIP_BROWSER=1` to skip where no browser can be installed.

use std::collections::BTreeMap;
use std::path::Path;

mod support;

use support::browser::{chromium, headless};

use briefing::audience::recipient::Recipient;
use briefing::compose::render::html;
use briefing::compose::timefmt;
use briefing::model::{
    Article, Block, Body, Closing, Column, Editorial, Event, Heads, Image, Inline, Issue, Link,
    NewsItem, Person, Publisher, Section, SectionContent, SectionKind,
};
use jiff::civil::date;
use jiff::tz::TimeZone;

const LONG_URL: &str = "https://very-long-subdomain-for-testing.harbour.example.org/archive/2025/01/17/\
                        cranes-cargo-and-contracts-full-report.html";
const LONG_WORD: &str =
    "Hafenkranwartungsunternehmensgesellschaftsvertragsverhandlungsergebnisprotokoll";
const CJK: &str = "小红书上的用户越来越多地讨论港口的新起重机以及夜班工人的生活这段文字没有空格因此浏览器必须在字符之间换行否则页面会变宽";
const IMAGE_HOST: &str = "https://images.harbour.example.org/";
const WIDTHS: [u32; 2] = [375, 600];
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
const EVENT_ZONES: [&str; 3] = ["Europe/Berlin", "Asia/Shanghai", "America/New_York"];

// ---------------------------------------------------------------- fixture

fn text(s: &str) -> Inline {
    Inline::Text(s.into())
}

fn long_link() -> Inline {
    Inline::Link(Link {
        url: LONG_URL.into(),
        content: vec![text(LONG_URL)],
    })
}

/// Prose in which every unit phrase sits behind fillers of every length
/// from one to nine letters.
fn units_paragraph() -> Block {
    let mut prose = String::new();
    for i in 0..UNIT_PHRASES.len() * 9 {
        let filler = "w".repeat(1 + i % 9);
        prose.push_str(&format!(
            "{filler} {} ",
            UNIT_PHRASES[i % UNIT_PHRASES.len()]
        ));
    }
    Block::Paragraph(vec![text(prose.trim_end())])
}

fn long_body() -> Body {
    Body {
        blocks: vec![
            units_paragraph(),
            Block::Paragraph(vec![
                text("Read the full report at "),
                long_link(),
                text("."),
            ]),
            Block::Paragraph(vec![text(&format!(
                "The {LONG_WORD} was signed on Friday."
            ))]),
            Block::Paragraph(vec![text(&CJK.repeat(3))]),
            Block::List {
                ordered: false,
                items: vec![vec![Block::Paragraph(vec![long_link()])]],
            },
            Block::Quote(vec![Block::Paragraph(vec![text(CJK)])]),
            Block::Code(format!(
                "curl --fail {LONG_URL}?with=query&and=more&parameters=true"
            )),
        ],
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

/// An issue whose every text field holds something hard to wrap; the
/// closing photo is 1,200 px wide, with or without size attributes.
fn long_issue(image_size: Option<(u32, u32)>) -> Issue {
    let event = |start: jiff::Zoned| Event {
        start,
        organizer: LONG_WORD.into(),
        kind: "Webinar".into(),
        title: LONG_URL.into(),
        url: LONG_URL.into(),
    };
    Issue {
        slug: "2025-01-17".into(),
        newsletter: format!("Harbour {LONG_WORD}"),
        number: 42,
        date: date(2025, 1, 17),
        subject: format!("{LONG_WORD} {CJK}"),
        preheader: "Cranes, contracts and a very long word, checked at phone width.".into(),
        language: "en".into(),
        send_at: None,
        sections: vec![
            section(
                SectionKind::Editorial,
                SectionContent::Editorial(Editorial {
                    author: LONG_WORD.into(),
                    body: long_body(),
                    signature: Some(format!("{LONG_WORD}, Editor")),
                }),
            ),
            section(
                SectionKind::Articles,
                SectionContent::Articles(vec![Article {
                    kicker: LONG_WORD.into(),
                    title: format!("{LONG_WORD} {CJK}"),
                    teaser: format!("{LONG_URL} {CJK} {}", UNIT_PHRASES.join(" and ")),
                    author: LONG_WORD.into(),
                    body: long_body(),
                    anchor: "long-article".into(),
                }]),
            ),
            section(
                SectionKind::Events,
                SectionContent::Events(event_starts().into_iter().map(event).collect()),
            ),
            section(
                SectionKind::News,
                SectionContent::News(vec![NewsItem {
                    title: LONG_WORD.into(),
                    body: long_body(),
                    source: "rtr/grz".into(),
                    anchor: "long-news".into(),
                }]),
            ),
            section(
                SectionKind::Column,
                SectionContent::Column(Column {
                    kicker: LONG_WORD.into(),
                    title: CJK.into(),
                    author: LONG_WORD.into(),
                    body: long_body(),
                }),
            ),
            section(
                SectionKind::Heads,
                SectionContent::Heads(Heads {
                    people: vec![Person {
                        name: LONG_WORD.into(),
                        role: Some(LONG_WORD.into()),
                        organisation: Some(CJK.into()),
                        body: long_body(),
                    }],
                    call_to_action: long_body(),
                }),
            ),
            section(
                SectionKind::Closing,
                SectionContent::Closing(Closing {
                    title: LONG_WORD.into(),
                    body: long_body(),
                    image: Some(Image {
                        url: format!("{IMAGE_HOST}wide.svg"),
                        alt: "A wide photo of the quay at night".into(),
                        width: image_size.map(|(w, _)| w),
                        height: image_size.map(|(_, h)| h),
                    }),
                }),
            ),
        ],
        publisher: Publisher {
            postal_address: format!("{LONG_WORD}\n{CJK}"),
            reason: format!("You subscribed at {LONG_URL}."),
            salutation: vec![
                text("Dear "),
                Inline::Field(briefing::model::Field {
                    name: "name".into(),
                    fallback: Some("reader".into()),
                }),
                text(","),
            ],
            web_url: LONG_URL.into(),
            event_zones: EVENT_ZONES.map(|z| TimeZone::get(z).unwrap()).to_vec(),
            zone_labels: zone_labels(),
            stylesheet: briefing::compose::stylesheet::prepare_stylesheet(
                briefing::compose::stylesheet::DEFAULT_STYLESHEET,
            )
            .unwrap(),
            words: briefing::compose::strings::english().words,
        },
    }
}

fn zone_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("Asia/Shanghai".to_string(), "Beijing time".to_string())])
}

/// Evening, midnight and noon somewhere, and a half hour.
fn event_starts() -> Vec<jiff::Zoned> {
    [(18, 0), (17, 0), (12, 0), (6, 30)]
        .map(|(h, m)| {
            date(2025, 1, 23)
                .at(h, m, 0, 0)
                .in_tz("Europe/Berlin")
                .unwrap()
        })
        .to_vec()
}

/// Every phrase a reader must see on one line: the unit phrases, and each
/// event's time with its zone, as the time formatting words them.
fn unbroken_phrases() -> Vec<String> {
    let mut out: Vec<String> = UNIT_PHRASES.iter().map(|p| p.to_string()).collect();
    for start in event_starts() {
        for zone in EVENT_ZONES {
            let tz = TimeZone::get(zone).unwrap();
            let local = start.timestamp().to_zoned(tz.clone());
            let label = timefmt::labelled_zone(&tz, start.timestamp(), &zone_labels());
            out.push(format!("{} {label}", timefmt::clock(&local)));
        }
    }
    out.sort();
    out.dedup();
    out
}

// ------------------------------------------------------------------ tests

#[test]
fn nothing_overflows_and_no_time_or_unit_wraps_at_phone_or_column_width() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A local stand-in for the remote photo, so the page loads offline with
    // the photo's real intrinsic width.
    std::fs::write(
        dir.path().join("wide.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"800\">\
         <rect width=\"1200\" height=\"800\" fill=\"#88aacc\"/></svg>",
    )
    .unwrap();
    for (variant, size) in [("sized", Some((1200, 800))), ("unsized", None)] {
        let email = recipient_copy(&long_issue(size), dir.path());
        for width in WIDTHS {
            let page = dir.path().join(format!("{variant}-{width}.html"));
            std::fs::write(&page, harness(&email, width)).unwrap();
            let layout = measure(&chromium, &page, dir.path());
            assert_eq!(layout.inner, width, "{variant}: frame width not applied");
            assert!(
                layout.scroll <= layout.inner,
                "{variant} at {width}px: page scrolls sideways ({} > {}); too wide: {:#?}",
                layout.scroll,
                layout.inner,
                layout.over
            );
            assert!(
                layout.over.is_empty(),
                "{variant} at {width}px: elements past the right edge: {:#?}",
                layout.over
            );
            assert!(
                layout.images_loaded,
                "{variant}: the test photo did not load"
            );
            for phrase in unbroken_phrases() {
                let seen = layout.found.iter().filter(|f| **f == phrase).count();
                assert!(seen > 0, "{variant}: {phrase:?} is not in the email");
            }
            assert!(
                layout.split.is_empty(),
                "{variant} at {width}px: a line break splits {:#?}",
                layout.split
            );
        }
    }
}

// ---------------------------------------------------------------- helpers

/// The issue as one recipient gets it, with the photo served from `dir`.
fn recipient_copy(issue: &Issue, dir: &Path) -> String {
    let html = html::render(issue).fill(
        &Recipient::new("a@example.org", "Anna"),
        "https://example.org/u/x",
    );
    assert!(
        !html.contains("<script"),
        "the email itself must carry no script"
    );
    html.replace(IMAGE_HOST, &format!("file://{}/", dir.display()))
}

/// A test page showing `email` in a frame `width` px wide, with the
/// measuring script. `srcdoc` keeps the frame same-origin, so the script
/// may look inside it.
fn harness(email: &str, width: u32) -> String {
    let srcdoc = email.replace('&', "&amp;").replace('"', "&quot;");
    let phrases = serde_json::to_string(&unbroken_phrases()).unwrap();
    format!(
        "<!DOCTYPE html><html><body style=\"margin:0\">\n\
         <iframe id=\"mail\" style=\"width:{width}px;height:900px;border:0\" srcdoc=\"{srcdoc}\"></iframe>\n\
         <script type=\"application/json\" id=\"phrases\">{phrases}</script>\n\
         {MEASURE}</body></html>\n"
    )
}

// Runs once the frame has loaded (images sized), lists every box whose
// right edge passes the frame's viewport, and leaves the result in the
// page for --dump-dom.
const MEASURE: &str = r#"<script>
document.getElementById('mail').addEventListener('load', function () {
  var win = this.contentWindow, doc = this.contentDocument;
  var w = win.innerWidth, over = [], all = doc.body.getElementsByTagName('*');
  for (var i = 0; i < all.length; i++) {
    var r = all[i].getBoundingClientRect();
    if (r.width > 0 && r.right > w + 1) {
      over.push(all[i].tagName.toLowerCase() + ' right=' + Math.round(r.right) + ' ' +
        (all[i].textContent || all[i].getAttribute('src') || '').slice(0, 40));
    }
  }
  // Each phrase, wherever a text node holds it (no-break spaces read as
  // spaces): on how many lines do its letters lie?
  var phrases = JSON.parse(document.getElementById('phrases').textContent);
  var found = [], split = [];
  var walker = doc.createTreeWalker(doc.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    var node = walker.currentNode, t = node.data.replace(/\u00a0/g, ' ');
    phrases.forEach(function (p) {
      for (var at = t.indexOf(p); at >= 0; at = t.indexOf(p, at + 1)) {
        var range = doc.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + p.length);
        var rects = range.getClientRects(), tops = {};
        for (var k = 0; k < rects.length; k++) {
          if (rects[k].width > 0) { tops[Math.round(rects[k].top)] = true; }
        }
        var lines = Object.keys(tops).length;
        if (lines > 0) { found.push(p); }
        if (lines > 1) { split.push(p + ' in <' + node.parentNode.tagName.toLowerCase() + '>'); }
      }
    });
  }
  var imgs = doc.images, loaded = imgs.length > 0;
  for (var j = 0; j < imgs.length; j++) { loaded = loaded && imgs[j].naturalWidth > 0; }
  var out = document.createElement('pre');
  out.id = 'layout-result';
  out.textContent = 'inner=' + w + '\nscroll=' + doc.documentElement.scrollWidth +
    '\nimages=' + loaded + '\n' + over.map(function (o) { return 'over=' + o; }).join('\n') +
    '\n' + found.map(function (f) { return 'found=' + f; }).join('\n') +
    '\n' + split.map(function (f) { return 'split=' + f; }).join('\n');
  document.body.appendChild(out);
});
</script>
"#;

/// What the measuring script found.
#[derive(Debug)]
struct Layout {
    inner: u32,
    scroll: u32,
    images_loaded: bool,
    over: Vec<String>,
    /// Each visible occurrence of a phrase that must not wrap.
    found: Vec<String>,
    /// Those a line break runs through.
    split: Vec<String>,
}

fn measure(chromium: &Path, page: &Path, dir: &Path) -> Layout {
    let output = headless(chromium, &dir.join("profile"))
        .arg("--hide-scrollbars")
        .arg("--virtual-time-budget=2000")
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom.find("<pre id=\"layout-result\"").unwrap_or_else(|| {
        panic!(
            "no layout result from chromium (status {}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let result = &dom[start..];
    let result = &result[result.find('>').unwrap() + 1..result.find("</pre>").unwrap()];
    let value = |key: &str| {
        result
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_default()
            .to_string()
    };
    let lines_with = |key: &str| {
        result
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(|l| {
                l.replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
            })
            .collect()
    };
    Layout {
        inner: value("inner=").parse().unwrap(),
        scroll: value("scroll=").parse().unwrap(),
        images_loaded: value("images=") == "true",
        over: lines_with("over="),
        found: lines_with("found="),
        split: lines_with("split="),
    }
}
