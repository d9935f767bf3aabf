//! Translations: `issue.de.toml` beside `issue.toml` holds the German text
//! of the same issue. The structure (send time, events' times and links,
//! images, audiences, authors and sources) comes only from the main
//! manifest, so editions cannot drift apart; a translation that lacks a
//! section or item of the main edition, or adds one, is an error at its line.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::raw::{At, RawIssue};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};

/// The language of a translation file: `de` for `issue.de.toml`, `pt-BR`
/// for `issue.pt-BR.toml`; `None` for the main manifest or other files.
pub fn language_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let lang = name.strip_prefix("issue.")?.strip_suffix(".toml")?;
    valid_language(lang).then(|| lang.to_string())
}

/// A BCP 47-shaped tag: a 2–3 letter language, then optional subtags.
pub fn valid_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The translation files beside a main manifest, sorted by language.
pub fn find(main: &Path) -> Vec<(String, std::path::PathBuf)> {
    let dir = main.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| main.with_file_name(e.file_name()))
        .filter(|p| p.is_file())
        .filter_map(|p| language_of(&p).map(|l| (l, p)))
        .collect();
    found.sort();
    found
}

/// What [`merge`] needs to point at both files.
pub struct Pair<'a> {
    /// The main manifest as read.
    pub main: &'a RawIssue,
    /// Its file, for naming the main item a translation lacks.
    pub main_file: &'a Arc<SourceFile>,
    /// The translation as read.
    pub tr: &'a RawIssue,
    /// Its file, where problems are reported.
    pub tr_file: &'a Arc<SourceFile>,
}

impl Pair<'_> {
    /// `issue.toml:21`, where the main edition wrote something.
    fn main_at(&self, span: &Range<usize>) -> String {
        let (line, _) = self.main_file.line_col(span.start);
        format!("{}:{line}", self.main_file.path.display())
    }

    /// `news item 2 “Rail freight slows”`: the main item, by title.
    fn named(noun: &str, n: usize, title: Option<&At<String>>) -> String {
        match title {
            Some(t) => format!("{noun} {n} “{}”", t.value),
            None => format!("{noun} {n}"),
        }
    }

    fn missing(
        &self,
        out: &mut Diagnostics,
        field: &str,
        what: &str,
        main_span: &Range<usize>,
        at: Range<usize>,
    ) {
        out.push(
            Diagnostic::error(format!(
                "the translation has no {what} ({}), expected a translation of every section and item of the main edition",
                self.main_at(main_span)
            ))
            .field(field)
            .at(self.tr_file, Some(at)),
        );
    }

    fn extra(&self, out: &mut Diagnostics, field: &str, what: &str, span: &Range<usize>) {
        out.push(
            Diagnostic::error(format!(
                "{what} has no counterpart in the main edition ({}), expected only the sections and items it has",
                self.main_file.path.display()
            ))
            .field(field)
            .at(self.tr_file, Some(span.clone())),
        );
    }
}

/// The main issue with the translation's text in place: structure from the
/// main manifest, every translatable text from the translation (optional
/// one-line texts it leaves out keep the main edition's). Missing and
/// extra sections and items are reported to `out`.
pub fn merge(p: &Pair<'_>, out: &mut Diagnostics) -> RawIssue {
    let (main, tr) = (p.main, p.tr);
    let mut m = main.clone();
    m.subject = tr.subject.clone();
    m.preheader = tr.preheader.clone();
    m.labels = tr.labels.clone();
    // The order is the main edition's; its spans point into the main file.
    m.language = None;
    m.editorial = section(
        p,
        out,
        "editorial",
        &main.editorial,
        &tr.editorial,
        |m, t| {
            m.signature = t.signature.clone().or(m.signature.take());
            m.body = t.body.clone();
        },
    );
    m.column = section(p, out, "column", &main.column, &tr.column, |m, t| {
        m.kicker = t.kicker.clone().or(m.kicker.take());
        m.title = t.title.clone();
        m.body = t.body.clone();
    });
    m.closing = section(p, out, "closing", &main.closing, &tr.closing, |m, t| {
        m.title = t.title.clone();
        m.body = t.body.clone();
        if let (Some((_, img)), Some((_, timg))) = (&mut m.image, &t.image) {
            img.alt = timg.alt.clone();
        }
    });
    m.heads = section(p, out, "heads", &main.heads, &tr.heads, |m, t| {
        m.call_to_action = t.call_to_action.clone();
    });
    if let (Some((_, mh)), Some((_, th))) = (&mut m.heads, &tr.heads) {
        let people = list(p, out, "heads.people", "person", &mh.people, &th.people);
        for (mp, tp) in mh.people.iter_mut().zip(people) {
            mp.role = tp.role.clone().or(mp.role.take());
            mp.body = tp.body.clone();
            mp.span = tp.span.clone();
        }
    }
    merge_lists(p, &mut m, out);
    m
}

/// `[[articles]]`, `[[events]]` and `[[news]]`, item by item in order.
fn merge_lists(p: &Pair<'_>, m: &mut RawIssue, out: &mut Diagnostics) {
    let (main, tr) = (p.main, p.tr);
    m.articles = section(p, out, "articles", &main.articles, &tr.articles, |_, _| {});
    if let (Some((_, ma)), Some((_, ta))) = (&mut m.articles, &tr.articles) {
        let items = list(p, out, "articles", "article", ma, ta);
        for (a, t) in ma.iter_mut().zip(items) {
            a.kicker = t.kicker.clone().or(a.kicker.take());
            a.teaser = t.teaser.clone().or(a.teaser.take());
            a.title = t.title.clone();
            a.body = t.body.clone();
            a.span = t.span.clone();
        }
    }
    m.events = section(p, out, "events", &main.events, &tr.events, |_, _| {});
    if let (Some((_, me)), Some((_, te))) = (&mut m.events, &tr.events) {
        let items = list(p, out, "events", "event", me, te);
        for (e, t) in me.iter_mut().zip(items) {
            e.kind = t.kind.clone().or(e.kind.take());
            e.title = t.title.clone();
            e.span = t.span.clone();
        }
    }
    m.news = section(p, out, "news", &main.news, &tr.news, |_, _| {});
    if let (Some((_, mn)), Some((_, tn))) = (&mut m.news, &tr.news) {
        let items = list(p, out, "news", "news item", mn, tn);
        for (n, t) in mn.iter_mut().zip(items) {
            n.title = t.title.clone();
            n.body = t.body.clone();
            n.span = t.span.clone();
        }
    }
}

type Sect<T> = Option<(Range<usize>, T)>;

/// One section: present in both (translated by `apply`, span from the
/// translation), or reported as missing or extra.
fn section<T: Clone>(
    p: &Pair<'_>,
    out: &mut Diagnostics,
    key: &str,
    main: &Sect<T>,
    tr: &Sect<T>,
    apply: impl FnOnce(&mut T, &T),
) -> Sect<T> {
    match (main, tr) {
        (Some((mspan, _)), None) => {
            p.missing(out, key, &format!("[{key}]"), mspan, 0..0);
            main.clone()
        }
        (None, Some((tspan, _))) => {
            p.extra(out, key, &format!("[{key}]"), tspan);
            None
        }
        (Some((_, mv)), Some((tspan, tv))) => {
            let mut v = mv.clone();
            apply(&mut v, tv);
            Some((tspan.clone(), v))
        }
        (None, None) => None,
    }
}

/// The translated items paired with the main ones by position; a missing
/// item names the main one, an extra one is reported at its line.
fn list<'t, T: Item>(
    p: &Pair<'_>,
    out: &mut Diagnostics,
    key: &str,
    noun: &str,
    main: &[T],
    tr: &'t [T],
) -> Vec<&'t T> {
    // A missing item is reported where the translation's list ends.
    let at = tr.last().map_or(0..0, |t| t.span().clone());
    for (i, item) in main.iter().enumerate().skip(tr.len()) {
        let what = Pair::named(noun, i + 1, item.title());
        let field = format!("{key}[{}]", i + 1);
        p.missing(out, &field, &what, item.span(), at.clone());
    }
    for (i, item) in tr.iter().enumerate().skip(main.len()) {
        let what = Pair::named(noun, i + 1, item.title());
        p.extra(out, &format!("{key}[{}]", i + 1), &what, item.span());
    }
    tr.iter().take(main.len()).collect()
}

/// An entry of a list section, as [`list`] pairs them.
trait Item {
    fn span(&self) -> &Range<usize>;
    fn title(&self) -> Option<&At<String>>;
}

macro_rules! item {
    ($t:ty, $title:ident) => {
        impl Item for $t {
            fn span(&self) -> &Range<usize> {
                &self.span
            }
            fn title(&self) -> Option<&At<String>> {
                self.$title.as_ref()
            }
        }
    };
}

item!(super::raw::RawArticle, title);
item!(super::raw::RawEvent, title);
item!(super::raw::RawNews, title);
item!(super::raw::RawPerson, name);
