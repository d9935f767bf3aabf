//! Layout in a real engine: headless Chromium opens the rendered issue at
//! phone (375 px) and column (600 px) widths, and nothing may stick out.
//!
//! The fixture is built to break a careless layout: a 120-character URL as
//! link text, a long unbroken word, CJK paragraphs without spaces, a long
//! preformatted line and a photo 1,200 px wide. The email goes into an
//! iframe of the width under test (headless Chromium will not open a window
//! narrower than 500 px), and a measuring script in the surrounding test
//! page reports what sticks out; the email itself never carries a script.
//!
//! Needs `chromium` (`apt-get install -y chromium`); set
//! `BRIEFING_SKIP_BROWSER=1` to skip where no browser can be installed.

use std::path::Path;

mod support;

use support::browser::{chromium, headless};

use briefing::audience::recipient::Recipient;
use briefing::compose::render::html;
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

fn long_body() -> Body {
    Body {
        blocks: vec![
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
    let start = date(2025, 1, 23)
        .at(18, 0, 0, 0)
        .in_tz("Europe/Berlin")
        .unwrap();
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
                    teaser: format!("{LONG_URL} {CJK}"),
                    author: LONG_WORD.into(),
                    body: long_body(),
                    anchor: "long-article".into(),
                }]),
            ),
            section(
                SectionKind::Events,
                SectionContent::Events(vec![Event {
                    start,
                    organizer: LONG_WORD.into(),
                    kind: "Webinar".into(),
                    title: LONG_URL.into(),
                    url: LONG_URL.into(),
                }]),
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
            event_zones: vec![
                TimeZone::get("Europe/Berlin").unwrap(),
                TimeZone::get("Asia/Shanghai").unwrap(),
            ],
            zone_labels: Default::default(),
            stylesheet: briefing::compose::stylesheet::prepare_stylesheet(
                briefing::compose::stylesheet::DEFAULT_STYLESHEET,
            )
            .unwrap(),
        },
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn nothing_overflows_at_phone_or_column_width() {
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
    format!(
        "<!DOCTYPE html><html><body style=\"margin:0\">\n\
         <iframe id=\"mail\" style=\"width:{width}px;height:900px;border:0\" srcdoc=\"{srcdoc}\"></iframe>\n\
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
  var imgs = doc.images, loaded = imgs.length > 0;
  for (var j = 0; j < imgs.length; j++) { loaded = loaded && imgs[j].naturalWidth > 0; }
  var out = document.createElement('pre');
  out.id = 'layout-result';
  out.textContent = 'inner=' + w + '\nscroll=' + doc.documentElement.scrollWidth +
    '\nimages=' + loaded + '\n' + over.map(function (o) { return 'over=' + o; }).join('\n');
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
    Layout {
        inner: value("inner=").parse().unwrap(),
        scroll: value("scroll=").parse().unwrap(),
        images_loaded: value("images=") == "true",
        over: result
            .lines()
            .filter_map(|l| l.strip_prefix("over="))
            .map(|l| l.replace("&amp;", "&"))
            .collect(),
    }
}
