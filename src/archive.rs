//! The static web archive: a page per published issue, paged indexes and an
//! Atom feed.
//!
//! [`entry`] decides whether an issue belongs in the archive, [`build`]
//! turns the chosen issues into a [`Site`] (relative paths and bytes, no
//! disk, no clock), and [`Site::write`] puts it into a folder, touching only
//! files whose bytes changed and removing only files an earlier build wrote.
//! Same issues and ledger in, same bytes out: nothing depends on when or
//! where the archive is built.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use maud::{DOCTYPE, Markup, html};

use crate::compose::calendar;
use crate::compose::render::html::{WebLinks, render_web};
use crate::compose::timefmt;
use crate::config::Config;
use crate::deliver::ledger::{SendRecord, SendState};
use crate::model::{Issue, SectionContent};

/// The file in the output folder that lists what the archive wrote, so a
/// later build removes its own stale files and nothing else.
pub const MANIFEST_FILE: &str = ".briefing-archive";

/// Names at the top of the site that are the archive's own, never a slug.
const RESERVED: [&str; 4] = ["page", "feed.xml", "index.html", MANIFEST_FILE];

/// Why an issue is in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its real send finished.
    Published,
    /// Scheduled or under way, shown only with `--all`.
    Scheduled,
}

/// An issue chosen for the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The issue.
    pub issue: Issue,
    /// The feed's `updated` for it: when its send finished, else its
    /// `send_at`, else 06:00 on its date in the newsletter's zone.
    pub updated: Timestamp,
    /// Published or only scheduled.
    pub standing: Standing,
}

/// Why the archive could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Two manifests share a slug, so they would share a page.
    #[error("issues {first} and {second} both have the slug `{slug}`, expected one page per slug")]
    DuplicateSlug {
        /// The slug.
        slug: String,
        /// The first issue (its subject).
        first: String,
        /// The second issue (its subject).
        second: String,
    },
    /// A slug names one of the archive's own files.
    #[error(
        "the issue “{subject}” has the slug `{slug}`, which the archive uses itself; expected another slug"
    )]
    ReservedSlug {
        /// The slug.
        slug: String,
        /// The issue's subject.
        subject: String,
    },
    /// The Atom feed could not be serialised.
    #[error("cannot write the Atom feed: {0}")]
    Feed(String),
}

/// The archive entry for an issue, or `None` when it stays out: drafts
/// never appear, scheduled issues only when `include_scheduled` is set.
pub fn entry(
    issue: Issue,
    record: Option<&SendRecord>,
    config: &Config,
    include_scheduled: bool,
) -> Option<Entry> {
    let done = record.is_some_and(|r| r.state == SendState::Done);
    let standing = if done {
        Standing::Published
    } else if include_scheduled && (issue.send_at.is_some() || record.is_some()) {
        // A send that stopped half-way has readers whose "view in browser"
        // link should work, so it counts as scheduled even without send_at.
        Standing::Scheduled
    } else {
        return None;
    };
    let finished = record
        .filter(|_| done)
        .and_then(|r| r.finished_at.as_deref())
        .and_then(|t| t.parse::<Timestamp>().ok());
    let updated = finished
        .or_else(|| issue.send_at.as_ref().map(|z| z.timestamp()))
        .unwrap_or_else(|| morning_of(&issue, config));
    Some(Entry {
        issue,
        updated,
        standing,
    })
}

/// 06:00 on the issue's date in the newsletter's zone.
fn morning_of(issue: &Issue, config: &Config) -> Timestamp {
    let zone = TimeZone::get(&config.newsletter.time_zone).unwrap_or(TimeZone::UTC);
    issue
        .date
        .at(6, 0, 0, 0)
        .to_zoned(zone)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The slug a manifest that does not load would most likely have: its
/// `slug` key if the TOML still parses, else its folder's name.
pub fn slug_hint(manifest: &Path) -> Option<String> {
    let from_key = std::fs::read_to_string(manifest)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("slug").and_then(|v| v.as_str()).map(str::to_string));
    from_key.or_else(|| {
        let dir = manifest.parent()?;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Some(dir.file_name()?.to_string_lossy().into_owned())
    })
}

/// A built site: file contents by path relative to the output folder
/// (with `/` separators), in sorted order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// Every file of the site.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// What [`Site::write`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Files created or whose bytes changed.
    pub written: usize,
    /// Files already holding the same bytes, left alone.
    pub unchanged: usize,
    /// Files of an earlier build that are no longer part of the site.
    pub removed: usize,
}

/// Builds the site for `entries`, in any order.
pub fn build(entries: &[Entry], config: &Config) -> Result<Site, ArchiveError> {
    build_editions(entries, &[], config)
}

/// One translation's issues, published under `<language>/` with its own
/// index pages and feed.
#[derive(Debug, Clone)]
pub struct Edition {
    /// The language tag, as in `issue.<language>.toml`.
    pub language: String,
    /// Its issues, in any order.
    pub entries: Vec<Entry>,
}

/// Builds the site: the main edition at the root, each translation under
/// its language's folder, every page linking its other editions
/// (`hreflang`).
pub fn build_editions(
    main: &[Entry],
    translations: &[Edition],
    config: &Config,
) -> Result<Site, ArchiveError> {
    let main_site = SiteInfo::new(config, None);
    let mut sites = vec![(main_site, main.iter().collect::<Vec<_>>())];
    for t in translations {
        sites.push((
            SiteInfo::new(config, Some(&t.language)),
            t.entries.iter().collect(),
        ));
    }
    let alternates = Alternates::of(&sites);
    let mut files = BTreeMap::new();
    for (site, entries) in &sites {
        for (path, bytes) in build_one(entries, site, &alternates, config)? {
            let path = match site.folder {
                Some(f) => format!("{f}/{path}"),
                None => path,
            };
            files.insert(path, bytes);
        }
    }
    Ok(Site { files })
}

/// Every edition's URL of each issue and of the archive itself, for the
/// `hreflang` links between editions.
struct Alternates {
    /// Language and archive root URL of each edition, the main one first.
    roots: Vec<(String, String)>,
    /// Language and page URL of each edition of a slug.
    issues: BTreeMap<String, Vec<(String, String)>>,
}

impl Alternates {
    fn of(sites: &[(SiteInfo<'_>, Vec<&Entry>)]) -> Self {
        let mut issues: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut roots = Vec::new();
        for (site, entries) in sites {
            roots.push((site.language.to_string(), site.url("")));
            for e in entries {
                issues
                    .entry(e.issue.slug.clone())
                    .or_default()
                    .push((site.language.to_string(), e.issue.publisher.web_url.clone()));
            }
        }
        Self { roots, issues }
    }

    /// The `hreflang` links of a page that has `editions`: none when it has
    /// only itself; else every edition and `x-default`, the main one.
    fn links(editions: &[(String, String)]) -> Markup {
        html! {
            @if editions.len() > 1 {
                @for (lang, url) in editions {
                    link rel="alternate" hreflang=(lang) href=(url);
                    "\n"
                }
                link rel="alternate" hreflang="x-default" href=(editions[0].1);
                "\n"
            }
        }
    }
}

/// One edition's pages, index and feed, with paths relative to its folder.
fn build_one(
    entries: &[&Entry],
    site: &SiteInfo<'_>,
    alternates: &Alternates,
    config: &Config,
) -> Result<BTreeMap<String, Vec<u8>>, ArchiveError> {
    let mut sorted: Vec<&Entry> = entries.to_vec();
    // Newest first; the slug only breaks ties, so the order never depends
    // on how the issues were found.
    sorted.sort_by(|a, b| {
        (b.issue.date, b.issue.number, &a.issue.slug).cmp(&(
            a.issue.date,
            a.issue.number,
            &b.issue.slug,
        ))
    });
    check_slugs(&sorted, alternates)?;
    let mut files = BTreeMap::new();
    for e in &sorted {
        let others = alternates
            .issues
            .get(&e.issue.slug)
            .map(Vec::as_slice)
            .unwrap_or_default();
        files.insert(
            format!("{}/index.html", e.issue.slug),
            issue_page(&e.issue, site, others).into_bytes(),
        );
        for (path, text) in calendar::files(&e.issue) {
            files.insert(format!("{}/{path}", e.issue.slug), text.into_bytes());
        }
    }
    let per_page = config.archive.per_page.max(1);
    let pages: Vec<&[&Entry]> = sorted.chunks(per_page).collect();
    let count = pages.len().max(1);
    for n in 1..=count {
        let list = pages.get(n - 1).copied().unwrap_or(&[]);
        let roots = if n == 1 {
            alternates.roots.as_slice()
        } else {
            &[]
        };
        files.insert(
            page_path(n),
            index_page(list, n, count, site, roots).into_bytes(),
        );
    }
    files.insert("feed.xml".to_string(), feed(&sorted, site)?);
    Ok(files)
}

fn check_slugs(sorted: &[&Entry], alternates: &Alternates) -> Result<(), ArchiveError> {
    let mut seen: BTreeMap<&str, &Issue> = BTreeMap::new();
    for e in sorted {
        let slug = e.issue.slug.as_str();
        // A translation's folder is named after its language.
        let is_language = alternates.roots.iter().skip(1).any(|(l, _)| l == slug);
        if RESERVED.contains(&slug) || is_language {
            return Err(ArchiveError::ReservedSlug {
                slug: slug.to_string(),
                subject: e.issue.subject.clone(),
            });
        }
        if let Some(first) = seen.insert(slug, &e.issue) {
            return Err(ArchiveError::DuplicateSlug {
                slug: slug.to_string(),
                first: format!("{} “{}”", first.number, first.subject),
                second: format!("{} “{}”", e.issue.number, e.issue.subject),
            });
        }
    }
    Ok(())
}

/// What every page needs to know about the newsletter.
struct SiteInfo<'a> {
    name: &'a str,
    language: &'a str,
    /// A translation's folder below the archive's root (its language).
    folder: Option<&'a str>,
    /// This edition's base URL without a trailing slash.
    base: String,
    subscribe: Option<&'a str>,
}

impl<'a> SiteInfo<'a> {
    fn new(config: &'a Config, translation: Option<&'a str>) -> Self {
        let root = config.newsletter.archive_base_url.trim_end_matches('/');
        Self {
            name: &config.newsletter.name,
            language: translation.unwrap_or(&config.newsletter.language),
            folder: translation,
            base: match translation {
                Some(lang) => format!("{root}/{lang}"),
                None => root.to_string(),
            },
            subscribe: config
                .newsletter
                .subscribe_url
                .as_deref()
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
        }
    }

    /// The public URL of a folder of the site (`""` for the root).
    fn url(&self, folder: &str) -> String {
        if folder.is_empty() {
            format!("{}/", self.base)
        } else {
            format!("{}/{folder}/", self.base)
        }
    }
}

/// Where index page `n` (1-based) lives.
fn page_path(n: usize) -> String {
    if n == 1 {
        "index.html".to_string()
    } else {
        format!("page/{n}/index.html")
    }
}

/// The folder of index page `n`, as in its URL.
fn page_folder(n: usize) -> String {
    if n == 1 {
        String::new()
    } else {
        format!("page/{n}")
    }
}

/// The link from index page `from` to index page `to`.
fn page_link(from: usize, to: usize) -> String {
    match (from, to) {
        (1, 1) => "./".to_string(),
        (_, 1) => root_from(from).to_string(),
        _ => format!("{}page/{to}/", root_from(from)),
    }
}

/// The relative way back to the site's root from index page `n`.
fn root_from(n: usize) -> &'static str {
    if n == 1 { "" } else { "../../" }
}

fn issue_page(issue: &Issue, site: &SiteInfo<'_>, editions: &[(String, String)]) -> String {
    let html = render_web(
        issue,
        &WebLinks {
            archive: Some("../"),
            subscribe: site.subscribe,
        },
    );
    // The "view in browser" link of every email sent is the issue's
    // web_url, so the canonical URL is that, never one built here.
    let canonical = &issue.publisher.web_url;
    let image = issue.sections.iter().find_map(|s| match &s.content {
        SectionContent::Closing(c) => c
            .image
            .as_ref()
            .map(|i| i.url.trim())
            .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
        _ => None,
    });
    let head = html! {
        link rel="canonical" href=(canonical);
        "\n"
        link rel="alternate" type="application/atom+xml" title=(site.name) href="../feed.xml";
        "\n"
        (Alternates::links(editions))
        meta property="og:type" content="article";
        "\n"
        meta property="og:site_name" content=(site.name);
        "\n"
        meta property="og:title" content=(issue.subject);
        "\n"
        meta property="og:description" content=(issue.preheader);
        "\n"
        meta property="og:url" content=(canonical);
        "\n"
        @if let Some(url) = image {
            meta property="og:image" content=(url);
            "\n"
        }
    };
    // The renderer escapes all user text, so the first `</head>` is the
    // document's own.
    match html.find("</head>") {
        Some(at) => format!("{}{}{}", &html[..at], head.into_string(), &html[at..]),
        None => html,
    }
}

// A plain web page, not an email: the index may use ordinary CSS.
const INDEX_STYLE: &str = "\
:root{color-scheme:light dark}\n\
body{margin:0;background:#f2f2f2;color:#1a1a1a;font:16px/1.5 Helvetica,Arial,sans-serif}\n\
main{max-width:640px;margin:0 auto;padding:24px 16px;background:#fff}\n\
h1{margin:0 0 4px;font-size:30px;line-height:36px}\n\
h2{margin:0 0 8px;font-size:22px;line-height:28px}\n\
a{color:#0b5394}\n\
.m{color:#555;font-size:14px}\n\
article{padding:16px 0;border-top:1px solid #d6d6d6}\n\
ul{margin:8px 0 0;padding-left:20px}\n\
li{margin:0 0 8px}\n\
nav{display:flex;justify-content:space-between;padding:16px 0;border-top:1px solid #d6d6d6}\n\
@media (prefers-color-scheme:dark){body{background:#000;color:#e6e6e6}main{background:#121212}\
a{color:#8ab4f8}.m{color:#b3b3b3}}\n";

fn index_page(
    list: &[&Entry],
    n: usize,
    count: usize,
    site: &SiteInfo<'_>,
    editions: &[(String, String)],
) -> String {
    let root = root_from(n);
    let title = if n == 1 {
        format!("{} — archive", site.name)
    } else {
        format!("{} — archive, page {n} of {count}", site.name)
    };
    let newer = (n > 1).then(|| page_link(n, n - 1));
    let older = (n < count).then(|| page_link(n, n + 1));
    let description = format!("Every issue of {}, newest first.", site.name);
    let markup: Markup = html! {
        (DOCTYPE)
        html lang=(site.language) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) }
                meta name="description" content=(description);
                link rel="canonical" href=(site.url(&page_folder(n)));
                (Alternates::links(editions))
                link rel="alternate" type="application/atom+xml" title=(site.name)
                    href={ (root) "feed.xml" };
                @if let Some(href) = &newer { link rel="prev" href=(href); }
                @if let Some(href) = &older { link rel="next" href=(href); }
                style { (maud::PreEscaped(INDEX_STYLE)) }
            }
            body {
                main {
                    header {
                        h1 { (site.name) }
                        p.m {
                            "Archive"
                            @if count > 1 { " · page " (n) " of " (count) }
                            " · "
                            a href={ (root) "feed.xml" } { "Atom feed" }
                            @if let Some(url) = site.subscribe {
                                " · "
                                a href=(url) { "Subscribe" }
                            }
                        }
                    }
                    @if list.is_empty() {
                        p { "No issues yet." }
                    }
                    @for e in list {
                        (index_item(&e.issue, root))
                    }
                    @if newer.is_some() || older.is_some() {
                        nav {
                            span {
                                @if let Some(href) = &newer { a href=(href) { "← Newer issues" } }
                            }
                            span {
                                @if let Some(href) = &older { a href=(href) { "Older issues →" } }
                            }
                        }
                    }
                }
            }
        }
    };
    lines_after_tags(&markup.into_string())
}

fn index_item(issue: &Issue, root: &str) -> Markup {
    let href = format!("{root}{}/", issue.slug);
    html! {
        article {
            p.m {
                time datetime=(issue.date.to_string()) { (timefmt::long_date(issue.date, &issue.language)) }
                " · Issue " (issue.number)
            }
            h2 { a href=(href) { (issue.subject) } }
            @for s in &issue.sections {
                @if let SectionContent::Articles(articles) = &s.content {
                    ul {
                        @for a in articles {
                            li {
                                a href={ (href) "#" (a.anchor) } { strong { (a.title) } }
                                @if !a.teaser.trim().is_empty() {
                                    br;
                                    span.m { (a.teaser) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Ends a line after block-level closing tags and head elements, so the
/// index diffs and reads line by line.
fn lines_after_tags(html: &str) -> String {
    const ENDS: [&str; 12] = [
        "</article>",
        "</header>",
        "</nav>",
        "</main>",
        "</head>",
        "</title>",
        "</style>",
        "</p>",
        "</h1>",
        "</h2>",
        "</li>",
        "</ul>",
    ];
    const VOID: [&str; 2] = ["<meta ", "<link "];
    let mut out = String::with_capacity(html.len() + html.len() / 16);
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = match ENDS.iter().find(|e| tail.starts_with(*e)) {
            Some(e) => Some(e.len()),
            // maud escapes `>` in attribute values, so the first one ends the tag.
            None if VOID.iter().any(|v| tail.starts_with(v)) => tail.find('>').map(|i| i + 1),
            None => None,
        };
        match end {
            Some(n) => {
                out.push_str(&tail[..n]);
                out.push('\n');
                rest = &tail[n..];
            }
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn feed(sorted: &[&Entry], site: &SiteInfo<'_>) -> Result<Vec<u8>, ArchiveError> {
    use atom_syndication::{Feed, FixedDateTime, Link, Person, Text, WriteConfig};
    let at = |t: Timestamp| {
        FixedDateTime::parse_from_rfc3339(&t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .map_err(|e| ArchiveError::Feed(e.to_string()))
    };
    let link = |href: String, rel: &str, mime: Option<&str>| Link {
        href,
        rel: rel.to_string(),
        mime_type: mime.map(str::to_string),
        ..Link::default()
    };
    let mut entries = Vec::with_capacity(sorted.len());
    for e in sorted {
        let url = e.issue.publisher.web_url.clone();
        entries.push(atom_syndication::Entry {
            title: Text::plain(e.issue.subject.clone()),
            id: url.clone(),
            updated: at(e.updated)?,
            links: vec![link(url, "alternate", Some("text/html"))],
            summary: (!e.issue.preheader.trim().is_empty())
                .then(|| Text::plain(e.issue.preheader.clone())),
            ..atom_syndication::Entry::default()
        });
    }
    // An empty feed has no newest entry; the epoch keeps the file the same
    // on every build instead of stamping it with the build time.
    let updated = sorted
        .iter()
        .map(|e| e.updated)
        .max()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let feed = Feed {
        title: Text::plain(site.name.to_string()),
        id: site.url(""),
        updated: at(updated)?,
        authors: vec![Person {
            name: site.name.to_string(),
            ..Person::default()
        }],
        links: vec![
            link(
                format!("{}/feed.xml", site.base),
                "self",
                Some("application/atom+xml"),
            ),
            link(site.url(""), "alternate", Some("text/html")),
        ],
        lang: Some(site.language.to_string()),
        entries,
        ..Feed::default()
    };
    let mut out = feed
        .write_with_config(
            Vec::new(),
            WriteConfig {
                write_document_declaration: true,
                indent_size: Some(2),
            },
        )
        .map_err(|e| ArchiveError::Feed(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

impl Site {
    /// Writes the site into `out`: files whose bytes are already there are
    /// not touched (their modification times stay), and files an earlier
    /// build listed in [`MANIFEST_FILE`] that are no longer part of the
    /// site are removed, with folders they leave empty.
    pub fn write(&self, out: &Path) -> io::Result<Report> {
        std::fs::create_dir_all(out)?;
        let previous = previous_files(out)?;
        // Recorded before any file is written, so that a run that dies
        // half-way still knows about everything it may have left behind.
        let union: BTreeSet<&str> = previous
            .iter()
            .map(String::as_str)
            .chain(self.files.keys().map(String::as_str))
            .collect();
        write_if_changed(&out.join(MANIFEST_FILE), manifest_text(union).as_bytes())?;
        let mut report = Report::default();
        for (rel, bytes) in &self.files {
            if write_if_changed(&out.join(rel), bytes)? {
                report.written += 1;
            } else {
                report.unchanged += 1;
            }
        }
        for rel in previous.iter().filter(|p| !self.files.contains_key(*p)) {
            let path = out.join(rel);
            match std::fs::remove_file(&path) {
                Ok(()) => report.removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            remove_empty_parents(&path, out);
        }
        write_if_changed(
            &out.join(MANIFEST_FILE),
            manifest_text(self.files.keys().map(String::as_str)).as_bytes(),
        )?;
        Ok(report)
    }
}

fn manifest_text<'a>(paths: impl IntoIterator<Item = &'a str>) -> String {
    let mut text = String::from(
        "# Files written by `briefing archive`; it removes them when they go stale.\n",
    );
    for p in paths {
        text.push_str(p);
        text.push('\n');
    }
    text
}

/// Files a previous build wrote into `out`, from its [`MANIFEST_FILE`]
/// (empty when there is none). Lines that could point outside `out` are
/// ignored, so a tampered list cannot make a build delete other files.
pub fn previous_files(out: &Path) -> io::Result<BTreeSet<String>> {
    let text = match std::fs::read_to_string(out.join(MANIFEST_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| is_inside(l))
        .map(str::to_string)
        .collect())
}

/// True for a relative path made only of ordinary names.
fn is_inside(rel: &str) -> bool {
    !rel.contains('\\')
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Writes `bytes` to `path` unless it already holds them; true if written.
/// A new file goes in by rename, so a web server never sees half of it.
fn write_if_changed(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    match std::fs::read(path) {
        Ok(old) if old == bytes => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.briefing-tmp"));
    std::fs::write(&tmp, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(true)
}

/// Removes the folders above `path` that are now empty, up to `root`.
fn remove_empty_parents(path: &Path, root: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        // Fails, as intended, when the folder still holds anything.
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::manifest;
    use crate::config::EMBEDDED;

    fn config(per_page: usize) -> Config {
        let mut c = Config::parse(EMBEDDED, "config.toml", Path::new(".")).unwrap();
        c.archive.per_page = per_page;
        c
    }

    fn issue(slug: &str, number: u32, date: &str, config: &Config) -> Issue {
        let text = format!(
            "number = {number}\ndate = {date}\nsubject = \"Issue {number}\"\n\
             preheader = \"A preheader long enough for the inbox preview line.\"\n\
             [editorial]\nauthor = \"Ed\"\nbody = \"Hello.\"\n"
        );
        let path = PathBuf::from(format!("no-such-dir/{slug}/issue.toml"));
        manifest::parse(&text, &path, config, &|_| {
            Err(io::ErrorKind::NotFound.into())
        })
        .map(|l| l.issue)
        .unwrap_or_else(|d| panic!("{}", d.render()))
    }

    fn published(issue: Issue) -> Entry {
        Entry {
            updated: issue
                .date
                .at(6, 0, 0, 0)
                .to_zoned(TimeZone::UTC)
                .unwrap()
                .timestamp(),
            issue,
            standing: Standing::Published,
        }
    }

    #[test]
    fn pages_hold_per_page_issues_newest_first_with_prev_and_next() {
        let c = config(2);
        let entries: Vec<Entry> = [
            ("a", 1, "2025-01-03"),
            ("b", 2, "2025-01-10"),
            ("c", 3, "2025-01-17"),
        ]
        .into_iter()
        .map(|(s, n, d)| published(issue(s, n, d, &c)))
        .collect();
        let site = build(&entries, &c).unwrap();
        let keys: Vec<&str> = site.files.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "a/index.html",
                "b/index.html",
                "c/index.html",
                "feed.xml",
                "index.html",
                "page/2/index.html"
            ]
        );
        let first = String::from_utf8(site.files["index.html"].clone()).unwrap();
        assert!(
            first.find("Issue 3").unwrap() < first.find("Issue 2").unwrap(),
            "{first}"
        );
        assert!(!first.contains("Issue 1<"), "{first}");
        assert!(first.contains("href=\"page/2/\""), "{first}");
        let second = String::from_utf8(site.files["page/2/index.html"].clone()).unwrap();
        assert!(second.contains("href=\"../../a/\""), "{second}");
        assert!(second.contains("<a href=\"../../\">"), "{second}");
    }

    #[test]
    fn duplicate_and_reserved_slugs_are_refused() {
        let c = config(50);
        let twice = [
            published(issue("x", 1, "2025-01-03", &c)),
            published(issue("x", 2, "2025-01-10", &c)),
        ];
        assert!(matches!(
            build(&twice, &c),
            Err(ArchiveError::DuplicateSlug { .. })
        ));
        let page = [published(issue("page", 1, "2025-01-03", &c))];
        assert!(matches!(
            build(&page, &c),
            Err(ArchiveError::ReservedSlug { .. })
        ));
    }

    #[test]
    fn drafts_stay_out_and_scheduled_issues_need_all() {
        let c = config(50);
        let draft = issue("d", 1, "2025-01-03", &c);
        assert!(entry(draft.clone(), None, &c, true).is_none());
        let done = SendRecord {
            issue: "d".into(),
            kind: "real".into(),
            state: SendState::Done,
            subject: String::new(),
            started_at: "2025-01-03T05:00:00Z".into(),
            finished_at: Some("2025-01-03T05:07:00Z".into()),
            invalid: 0,
            duplicates: 0,
            imported: true,
            import_rows: 0,
        };
        let e = entry(draft.clone(), Some(&done), &c, false).unwrap();
        assert_eq!(e.standing, Standing::Published);
        assert_eq!(e.updated.to_string(), "2025-01-03T05:07:00Z");
        let running = SendRecord {
            state: SendState::Stopped,
            finished_at: None,
            ..done
        };
        assert!(entry(draft.clone(), Some(&running), &c, false).is_none());
        let e = entry(draft, Some(&running), &c, true).unwrap();
        assert_eq!(e.standing, Standing::Scheduled);
        // 06:00 in Berlin in winter.
        assert_eq!(e.updated.to_string(), "2025-01-03T05:00:00Z");
    }

    #[test]
    fn web_pages_drop_a_salutation_that_has_no_fallback() {
        let mut c = config(50);
        c.newsletter.salutation = "Dear {{ name }},".into();
        let site = build(&[published(issue("a", 1, "2025-01-03", &c))], &c).unwrap();
        let page = String::from_utf8(site.files["a/index.html"].clone()).unwrap();
        assert!(!page.contains("Dear"), "{page}");
        assert!(page.contains(">Subscribe</a>"), "{page}");
        assert!(!page.contains("Unsubscribe"), "{page}");
    }

    #[test]
    fn an_empty_archive_still_has_an_index_and_a_stable_feed() {
        let c = config(50);
        let site = build(&[], &c).unwrap();
        let index = String::from_utf8(site.files["index.html"].clone()).unwrap();
        assert!(index.contains("No issues yet."), "{index}");
        let feed = String::from_utf8(site.files["feed.xml"].clone()).unwrap();
        assert!(
            feed.contains("<updated>1970-01-01T00:00:00+00:00</updated>"),
            "{feed}"
        );
        assert_eq!(build(&[], &c).unwrap(), site);
    }

    #[test]
    fn previous_files_ignore_paths_leaving_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "# comment\na/index.html\n../escape.html\n/etc/passwd\npage/2/index.html\n",
        )
        .unwrap();
        let files = previous_files(dir.path()).unwrap();
        assert_eq!(
            files.into_iter().collect::<Vec<_>>(),
            ["a/index.html", "page/2/index.html"]
        );
    }
}
