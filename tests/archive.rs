//! `briefing archive` as a publisher runs it: issues sent for real through
//! the outbox, then the static site built from the ledger, checked with an
//! independent feed parser, for dead links, for leaked personal data and
//! for byte-for-byte repeatable output.

mod support;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};

use support::cli::{copy_dir, repo, show};

const BASE: &str = "https://news.example.net/archive";
const SUBSCRIBE: &str = "https://news.example.net/subscribe";
/// The one subscriber; neither name nor address may reach the site.
const NAME: &str = "Zebulon Quaxworth";
const EMAIL: &str = "zebulon.quaxworth@example.net";

const SENT: [(&str, &str, &str); 2] = [
    (
        "2025-03-07",
        "Four new cranes for the container terminal",
        "2025-03-07T05:01:00Z",
    ),
    (
        "2025-03-14",
        "Ferry line 62 gets a ten-minute timetable",
        "2025-03-14T05:02:00Z",
    ),
];
const DRAFT: (&str, &str) = (
    "2025-03-21",
    "DRAFT-ONLY subject that must never be archived",
);
const SCHEDULED: (&str, &str) = ("2025-03-28", "Scheduled issue about the harbour birthday");
/// After both sends, before the scheduled issue's send_at.
const LATER: &str = "2025-03-20T12:00:00Z";

/// A newsletter's folder: config, one subscriber, four issues.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("tests/fixtures/archive"), dir.path());
        let config = dir.path().join("config.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let outbox = dir.path().join("outbox");
        std::fs::write(
            &config,
            text.replace("OUTBOX_DIR", outbox.to_str().unwrap()),
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `briefing --config <world>/config.toml <args>` run in the world's
    /// folder with the clock stopped at `now`.
    fn run(&self, now: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_briefing"))
            .current_dir(self.dir.path())
            .env_remove("BRIEFING_CONFIG")
            .env_remove("BRIEFING_TRANSPORT")
            .env("BRIEFING_UNSUBSCRIBE_SECRET", "s")
            .env("BRIEFING_NOW", now)
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(args)
            .output()
            .expect("the briefing binary runs")
    }

    fn send_both(&self) {
        for (slug, _, at) in SENT {
            let o = self.run(at, &["send", &format!("issues/{slug}/issue.toml"), "--yes"]);
            assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        }
    }

    fn archive(&self, out: &str, extra: &[&str]) -> String {
        let out = self.path(out);
        let mut args = vec!["archive", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = self.run(LATER, &args);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// Every file under `root`, by relative path, with its bytes.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of the first `name="…"` attribute after `from` in `html`.
fn attr_after<'a>(html: &'a str, from: usize, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = html[from..].find(&key)? + from + key.len();
    let end = html[start..].find('"')? + start;
    Some(&html[start..end])
}

/// Every `href` and `src` value in a file, entity-decoded.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for key in [" href=\"", " src=\""] {
        let mut from = 0;
        while let Some(i) = text[from..].find(key) {
            let start = from + i + key.len();
            let end = text[start..].find('"').map_or(text.len(), |e| start + e);
            out.push(text[start..end].replace("&amp;", "&"));
            from = end;
        }
    }
    out
}

/// The file a link in `file` (relative to `site`) leads to, if it is
/// internal: relative, or under the archive's base URL.
fn target(site: &Path, file: &Path, link: &str) -> Option<PathBuf> {
    let link = link.split(['#', '?']).next().unwrap_or("");
    let (base, rest) = if let Some(rest) = link.strip_prefix(BASE) {
        (site.to_path_buf(), rest.trim_start_matches('/'))
    } else if link.is_empty() || link.contains(':') || link.starts_with("//") {
        // Fragments on the same page, other sites and mailto: links.
        return None;
    } else if let Some(rest) = link.strip_prefix('/') {
        (site.to_path_buf(), rest)
    } else {
        (file.parent().unwrap().to_path_buf(), link)
    };
    let mut path = base;
    for c in Path::new(rest).components() {
        match c {
            Component::ParentDir => {
                path.pop();
            }
            Component::Normal(n) => path.push(n),
            _ => {}
        }
    }
    if rest.is_empty() || rest.ends_with('/') || path.is_dir() {
        path.push("index.html");
    }
    Some(path)
}

/// Tokens from the List-Unsubscribe headers of every message in the outbox.
fn outbox_tokens(outbox: &Path) -> Vec<String> {
    let mut tokens = Vec::new();
    for (rel, bytes) in tree(outbox) {
        assert!(rel.ends_with(".eml"), "{rel}");
        let msg = mail_parser::MessageParser::default()
            .parse(&bytes)
            .expect("a message");
        let header = msg
            .header_raw("List-Unsubscribe")
            .expect("List-Unsubscribe");
        let url = header
            .split(['<', '>'])
            .find(|s| s.starts_with("https://"))
            .expect("an https unsubscribe URL");
        let token = url.rsplit('/').next().unwrap().trim().to_string();
        assert!(token.len() >= 16, "{header}");
        tokens.push(token);
    }
    tokens
}

/// The feed as Python's feedparser reads it, as JSON.
fn feedparser(feed: &Path) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, sys
try:
    import feedparser
except ImportError:
    sys.exit(3)
d = feedparser.parse(sys.argv[1])
print(json.dumps({
    "bozo": bool(d.bozo),
    "problem": str(d.get("bozo_exception", "")),
    "version": d.version,
    "title": d.feed.get("title"),
    "id": d.feed.get("id"),
    "updated": d.feed.get("updated"),
    "links": sorted([l.get("rel"), l.get("href")] for l in d.feed.get("links", [])),
    "entries": [{"id": e.get("id"), "title": e.get("title"), "link": e.get("link"),
                 "updated": e.get("updated"), "summary": e.get("summary")} for e in d.entries],
}))
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(feed)
        .output()
        .expect("python3 runs (install Python 3 to run this test)");
    assert_ne!(
        o.status.code(),
        Some(3),
        "the feed test needs Python's feedparser: python3 -m pip install feedparser (tests/run.sh installs it)"
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    serde_json::from_slice(&o.stdout).expect("feedparser's JSON")
}

#[test]
fn archive_publishes_sent_issues_only_with_a_valid_feed_and_no_dead_links() {
    let w = World::new();
    w.send_both();
    let printed = w.archive("site", &[]);
    assert!(
        printed.contains("2 issues (2 published, 0 scheduled)"),
        "{printed}"
    );
    let site = w.path("site");

    for (slug, subject, _) in SENT {
        let page = read(&site.join(slug).join("index.html"));
        let url = format!("{BASE}/{slug}/");
        assert!(
            page.contains(&format!("<title>{subject}</title>")),
            "{page}"
        );
        assert!(
            page.contains(&format!("<link rel=\"canonical\" href=\"{url}\">")),
            "{page}"
        );
        assert!(
            page.contains(&format!("<meta property=\"og:url\" content=\"{url}\">")),
            "{page}"
        );
        assert!(page.contains(&format!(
            "<meta property=\"og:title\" content=\"{subject}\">"
        )));
        assert!(page.contains("<meta property=\"og:type\" content=\"article\">"));
        assert!(page.contains("<meta property=\"og:description\" content=\"Harbour traffic"));
        assert!(page.contains("<meta name=\"description\" content=\"Harbour traffic"));
        assert!(
            page.contains(&format!("<a href=\"{SUBSCRIBE}\"")),
            "a subscribe link: {page}"
        );
        assert!(!page.contains("Unsubscribe"), "{page}");
        assert!(!page.contains("View in browser"), "{page}");
        assert!(
            page.contains("Dear reader,"),
            "the salutation falls back: {page}"
        );
    }
    let with_image = read(&site.join("2025-03-07/index.html"));
    assert!(with_image.contains(
        "<meta property=\"og:image\" content=\"https://images.example.net/2025/03/seals.jpg\">"
    ));
    assert!(!read(&site.join("2025-03-14/index.html")).contains("og:image"));

    assert!(!site.join(DRAFT.0).exists(), "the draft has no page");
    assert!(
        !site.join(SCHEDULED.0).exists(),
        "the scheduled issue waits for --all"
    );
    let index = read(&site.join("index.html"));
    let newer = index
        .find(SENT[1].1)
        .expect("the newer subject in the index");
    let older = index
        .find(SENT[0].1)
        .expect("the older subject in the index");
    assert!(newer < older, "newest first: {index}");
    for needle in [
        "href=\"2025-03-14/\"",
        "March 14, 2025",
        "Night shift on the quay, 2025-03-07",
        "A night with the lashers who secure containers before a storm.",
        "href=\"2025-03-07/#cranes-for-2025-03-07\"",
    ] {
        assert!(index.contains(needle), "{needle} in {index}");
    }

    let feed = feedparser(&site.join("feed.xml"));
    assert_eq!(feed["bozo"], false, "{feed}");
    assert_eq!(feed["version"], "atom10", "{feed}");
    assert_eq!(feed["title"], "Harbour Notes");
    assert_eq!(feed["id"], format!("{BASE}/"));
    assert_eq!(
        feed["updated"], "2025-03-14T05:02:00+00:00",
        "the newest entry's"
    );
    let links = feed["links"].as_array().unwrap();
    assert!(
        links.contains(&serde_json::json!(["self", format!("{BASE}/feed.xml")])),
        "{feed}"
    );
    assert!(
        links.contains(&serde_json::json!(["alternate", format!("{BASE}/")])),
        "{feed}"
    );
    let entries = feed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{feed}");
    for (entry, (slug, subject, sent_at)) in entries.iter().zip(SENT.iter().rev()) {
        let url = format!("{BASE}/{slug}/");
        assert_eq!(entry["title"], *subject);
        assert_eq!(entry["link"], url);
        assert_eq!(entry["id"], url);
        assert_eq!(
            entry["updated"],
            sent_at.replace('Z', "+00:00"),
            "when its send finished"
        );
        assert!(
            entry["summary"]
                .as_str()
                .unwrap()
                .starts_with("Harbour traffic")
        );
    }

    let files = tree(&site);
    let mut checked = 0;
    for rel in files
        .keys()
        .filter(|r| r.ends_with(".html") || r.ends_with(".xml"))
    {
        let file = site.join(rel);
        for link in links_in(&file) {
            if let Some(path) = target(&site, &file, &link) {
                assert!(
                    path.is_file(),
                    "{rel} links to {link}, but {} is missing",
                    path.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} internal links found");

    let tokens = outbox_tokens(&w.path("outbox"));
    assert_eq!(tokens.len(), 2);
    for (rel, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for secret in [
            NAME,
            EMAIL,
            "Zebulon",
            "news.example.net/unsubscribe",
            DRAFT.1,
        ]
        .into_iter()
        .chain(tokens.iter().map(String::as_str))
        {
            assert!(!text.contains(secret), "{rel} contains {secret}");
        }
    }
}

fn links_in(file: &Path) -> Vec<String> {
    links(&read(file))
}

#[test]
fn the_emails_view_in_browser_link_is_the_pages_canonical_url() {
    let w = World::new();
    w.send_both();
    w.archive("site", &[]);
    for (slug, _, _) in SENT {
        let eml = std::fs::read(w.path(&format!("outbox/{slug}/{EMAIL}.eml"))).unwrap();
        let msg = mail_parser::MessageParser::default().parse(&eml).unwrap();
        let html = msg.body_html(0).expect("an HTML part");
        let at = html
            .find("View in browser")
            .expect("a view-in-browser link");
        let open = html[..at].rfind("<a ").unwrap();
        let in_email = attr_after(&html, open, "href").unwrap().to_string();
        let page = read(&w.path(&format!("site/{slug}/index.html")));
        let at = page.find("<link rel=\"canonical\"").unwrap();
        let canonical = attr_after(&page, at, "href").unwrap();
        assert_eq!(in_email, canonical);
        assert_eq!(canonical, format!("{BASE}/{slug}/"));
    }
}

#[test]
fn builds_are_byte_identical_and_rebuilds_touch_nothing() {
    let w = World::new();
    w.send_both();
    w.archive("site", &[]);
    w.archive("other", &[]);
    let (a, b) = (tree(&w.path("site")), tree(&w.path("other")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (rel, bytes) in &a {
        assert!(bytes == &b[rel], "{rel} differs between two builds");
    }

    let index = w.path("site/index.html");
    let before = std::fs::metadata(&index).unwrap().modified().unwrap();
    let again = w.archive("site", &[]);
    assert!(
        again.contains("written 0, unchanged 4, removed 0"),
        "{again}"
    );
    assert_eq!(
        std::fs::metadata(&index).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(tree(&w.path("site")), a);
}

#[test]
fn all_adds_scheduled_issues_and_a_later_build_removes_them_again() {
    let w = World::new();
    w.send_both();
    // Something of the publisher's own beside the archive's files.
    std::fs::create_dir_all(w.path("site")).unwrap();
    std::fs::write(w.path("site/robots.txt"), "User-agent: *\n").unwrap();

    let printed = w.archive("site", &["--all"]);
    assert!(
        printed.contains("3 issues (2 published, 1 scheduled)"),
        "{printed}"
    );
    let page = w.path(&format!("site/{}/index.html", SCHEDULED.0));
    assert!(read(&page).contains(SCHEDULED.1));
    assert!(read(&w.path("site/index.html")).contains(SCHEDULED.1));
    assert!(
        !w.path(&format!("site/{}", DRAFT.0)).exists(),
        "drafts never appear"
    );
    let feed = feedparser(&w.path("site/feed.xml"));
    let entries = feed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["title"], SCHEDULED.1);
    // Not sent yet: its send_at (06:00 in Berlin) stands in.
    assert_eq!(entries[0]["updated"], "2025-03-28T05:00:00+00:00");

    let printed = w.archive("site", &[]);
    assert!(printed.contains("removed 1"), "{printed}");
    assert!(
        !w.path(&format!("site/{}", SCHEDULED.0)).exists(),
        "the stale folder is gone"
    );
    assert!(!read(&w.path("site/index.html")).contains(SCHEDULED.1));
    assert!(
        w.path("site/robots.txt").is_file(),
        "files the archive did not write stay"
    );
}

#[test]
fn a_broken_draft_is_skipped_but_a_broken_sent_issue_stops_the_build() {
    let w = World::new();
    w.send_both();
    w.archive("site", &[]);
    let draft = w.path(&format!("issues/{}/issue.toml", DRAFT.0));
    std::fs::write(
        &draft,
        read(&draft).replace("number = 103", "number = \"x\""),
    )
    .unwrap();
    let o = w.run(
        LATER,
        &["archive", "--out", w.path("site").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("skipped"),
        "{}",
        show(&o)
    );

    let sent = w.path(&format!("issues/{}/issue.toml", SENT[0].0));
    std::fs::write(&sent, read(&sent).replace("number = 101", "number = \"x\"")).unwrap();
    let before = tree(&w.path("site"));
    let o = w.run(
        LATER,
        &["archive", "--out", w.path("site").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no longer loads"),
        "{}",
        show(&o)
    );
    assert_eq!(
        tree(&w.path("site")),
        before,
        "nothing was written or removed"
    );
}

/// The sample issue, which has a German edition, sent through the outbox
/// to an English and a German reader.
fn bilingual_world() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let c = support::cli::outbox_config(dir.path(), &[], &[]);
    std::fs::write(
        dir.path().join("list.csv"),
        "email,name,plan,language\nen.reader@example.org,En Reader,free,en\nde.reader@example.org,De Reader,free,de\n",
    )
    .unwrap();
    copy_dir(
        &repo().join("issues/2025-01-17"),
        &dir.path().join("issues/2025-01-17"),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_briefing"))
        .current_dir(dir.path())
        .env_remove("BRIEFING_CONFIG")
        .env_remove("BRIEFING_TRANSPORT")
        .env("BRIEFING_UNSUBSCRIBE_SECRET", "s")
        .env("BRIEFING_NOW", "2025-01-17T05:30:00Z")
        .arg("--config")
        .arg(&c.config)
        .args(["send", "issues/2025-01-17/issue.toml", "--yes"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_briefing"))
        .current_dir(dir.path())
        .env_remove("BRIEFING_CONFIG")
        .env("BRIEFING_NOW", "2025-01-18T12:00:00Z")
        .arg("--config")
        .arg(&c.config)
        .args(["archive", "--out", "site"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    (dir, c.outbox)
}

/// `hreflang` → `href` of a page's alternate links.
fn hreflangs(page: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut from = 0;
    while let Some(at) = page[from..].find("hreflang=\"") {
        let at = from + at;
        let open = page[..at].rfind("<link").unwrap();
        let lang = attr_after(page, open, "hreflang").unwrap().to_string();
        let href = attr_after(page, open, "href").unwrap().to_string();
        out.insert(lang, href);
        from = at + 1;
    }
    out
}

#[test]
fn each_edition_has_its_own_pages_and_feed_linked_by_hreflang() {
    let (dir, outbox) = bilingual_world();
    let site = dir.path().join("site");
    let base = "https://briefing.example.org/archive";
    let en = read(&site.join("2025-01-17/index.html"));
    let de = read(&site.join("de/2025-01-17/index.html"));
    assert!(en.contains("<html lang=\"en\""), "{}", &en[..200]);
    assert!(de.contains("<html lang=\"de\""), "{}", &de[..200]);
    let expected: BTreeMap<String, String> = [
        ("de", format!("{base}/de/2025-01-17/")),
        ("en", format!("{base}/2025-01-17/")),
        ("x-default", format!("{base}/2025-01-17/")),
    ]
    .into_iter()
    .map(|(l, u)| (l.to_string(), u))
    .collect();
    assert_eq!(hreflangs(&en), expected);
    assert_eq!(hreflangs(&de), expected);
    let at = de.find("<link rel=\"canonical\"").unwrap();
    let canonical = attr_after(&de, at, "href").unwrap();
    assert_eq!(canonical, format!("{base}/de/2025-01-17/"));
    // The indexes link each other too.
    let index = hreflangs(&read(&site.join("de/index.html")));
    assert_eq!(index.get("en"), Some(&format!("{base}/")));
    assert_eq!(index.get("de"), Some(&format!("{base}/de/")));

    // The German reader's "view in browser" is the German page.
    let eml = std::fs::read(outbox.join("2025-01-17/de.reader@example.org.eml")).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&eml).unwrap();
    let html = msg.body_html(0).expect("an HTML part");
    let at = html
        .find("Im Browser ansehen")
        .expect("a German view-in-browser link");
    let open = html[..at].rfind("<a ").unwrap();
    assert_eq!(attr_after(&html, open, "href"), Some(canonical));

    // A feed per language, each read by an independent parser.
    let feed = feedparser(&site.join("de/feed.xml"));
    assert_eq!(feed["bozo"], false, "{feed:#}");
    assert_eq!(feed["id"], format!("{base}/de/"));
    assert_eq!(
        feed["entries"][0]["link"],
        format!("{base}/de/2025-01-17/"),
        "{feed:#}"
    );
    let main_feed = feedparser(&site.join("feed.xml"));
    assert_eq!(
        main_feed["entries"][0]["link"],
        format!("{base}/2025-01-17/")
    );
    // The German calendar files sit beside the German page its links name.
    assert!(site.join("de/2025-01-17/events.ics").is_file());
}
