//! Several newsletters in one repository.
//!
//! `[newsletters]` in config.toml names one file per further newsletter
//! (`europe = "newsletters/europe.toml"`). Such a file holds only what
//! differs from config.toml, in the same tables: its config is config.toml
//! with the file laid over it key by key (arrays replace). The result goes
//! through the same checks as config.toml, and every problem points at the
//! newsletter's file when the key is written there, else at config.toml.
//!
//! What must not be shared is refused rather than inherited: the List-Id,
//! the recipient lists, the unsubscribe and archive addresses and the name
//! must be a newsletter's own; its ledger (the unsubscribe scope), archive
//! folder and issues folder default to ones named after its id.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Config;
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};

/// The id of the newsletter config.toml itself describes, unless
/// `newsletter.id` names it.
pub const MAIN_ID: &str = "main";

/// Keys a newsletter must write in its own file: inheriting them would mix
/// two newsletters' readers, unsubscribes or archives.
const OWN_KEYS: &[(&str, &str)] = &[
    ("newsletter.name", "the name readers see"),
    (
        "sender.list_id",
        "List-Id tells mail clients which list a message is from",
    ),
    ("send.lists", "its readers"),
    ("unsubscribe.base_url", "its unsubscribes are its own"),
    ("newsletter.archive_base_url", "its issues' web pages"),
];

/// Reads every newsletter `root` names into `root.others`; problems go to `out`.
pub(super) fn load_all(root: &mut Config, root_text: &str, out: &mut Diagnostics) {
    let Ok(mut base) = root_text.parse::<toml::Table>() else {
        return;
    };
    base.remove("newsletters");
    base.remove("issues");
    let root_file = root.file.clone();
    let main_id = root.id().to_string();
    for (id, path) in root.newsletters.clone() {
        let at_entry = |d: Diagnostic| match &root_file {
            Some(f) => d.at(f, super::key_span(&f.text, &format!("newsletters.{id}"))),
            None => d,
        };
        if !valid_id(&id) || id == main_id {
            out.push(at_entry(
                Diagnostic::error(format!(
                    "`{id}` cannot name a newsletter, expected lowercase letters, digits and `-`, other than `{main_id}` (config.toml's own)"
                ))
                .field(format!("newsletters.{id}")),
            ));
            continue;
        }
        match load_one(root, &base, &id, &path) {
            Ok(config) => root.others.push(config),
            Err(Problem::Read(msg)) => out.push(at_entry(
                Diagnostic::error(msg).field(format!("newsletters.{id}")),
            )),
            Err(Problem::Invalid(d)) => out.extend(d),
        }
    }
    check_distinct(root, out);
}

/// Why one newsletter's config could not be had.
enum Problem {
    /// Its file could not be read (reported at its `[newsletters]` entry).
    Read(String),
    /// Its file or the merged config is wrong.
    Invalid(Diagnostics),
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn load_one(root: &Config, base: &toml::Table, id: &str, path: &Path) -> Result<Config, Problem> {
    let resolved = root.resolve(path);
    let text = crate::input::read_text(&resolved, crate::input::CONFIG_LIMIT)
        .map_err(|e| Problem::Read(format!("cannot read newsletter `{id}`'s config: {e}")))?;
    let file = SourceFile::new(&resolved, &text);
    let single = |d: Diagnostic| {
        let mut all = Diagnostics::new();
        all.push(d);
        Problem::Invalid(all)
    };
    let own: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| single(super::toml_error(&file, &e)))?;
    let mut problems = Diagnostics::new();
    if own.contains_key("newsletters") {
        problems.push(
            Diagnostic::error(
                "a newsletter's file cannot name further newsletters, expected them in config.toml's [newsletters]",
            )
            .field("newsletters")
            .at(&file, super::key_span(&text, "newsletters")),
        );
    }
    for (key, why) in OWN_KEYS {
        if lookup(&own, key).is_none() {
            problems.push(
                Diagnostic::error(format!(
                    "newsletter `{id}` has no `{key}` of its own, expected one in this file ({why})"
                ))
                .field(*key)
                .at(&file, None),
            );
        }
    }
    if let Some(written) = lookup(&own, "newsletter.id").and_then(toml::Value::as_str)
        && written != id
    {
        problems.push(
            Diagnostic::error(format!(
                "newsletter.id is `{written}` but config.toml's [newsletters] calls this newsletter `{id}`, expected the same id or none"
            ))
            .field("newsletter.id")
            .at(&file, super::key_span(&text, "newsletter.id")),
        );
    }
    if problems.has_errors() {
        return Err(Problem::Invalid(problems));
    }
    let mut merged = base.clone();
    defaults(&mut merged, &own, id);
    overlay(&mut merged, own);
    let synthetic =
        toml::to_string(&merged).map_err(|e| Problem::Read(format!("newsletter `{id}`: {e}")))?;
    let root_file = root.file.clone();
    let mut config = Config::parse_single(&synthetic, &resolved.to_string_lossy(), &root.base_dir)
        .map_err(|d| Problem::Invalid(remap(d, &synthetic, &file, root_file.as_ref())))?;
    config.file = Some(file);
    config.inherited = root_file;
    config.own_id = Some(id.to_string());
    Ok(config)
}

/// Lays `own` over `base`: tables merge key by key, anything else replaces.
fn overlay(base: &mut toml::Table, own: toml::Table) {
    for (key, value) in own {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => overlay(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// A newsletter's own ledger, archive and issues folder unless its file
/// names them: shared, they would share unsubscribes and pages. On a
/// PostgreSQL ledger "its own" is a schema named after it in the same
/// database.
fn defaults(merged: &mut toml::Table, own: &toml::Table, id: &str) {
    let on_postgres = lookup(merged, "send.ledger")
        .and_then(toml::Value::as_str)
        .is_some_and(|l| l.starts_with("postgres://") || l.starts_with("postgresql://"));
    let mut owned = vec![("archive", "out", format!("site/{id}"))];
    if lookup(own, "send.ledger").is_none() {
        if on_postgres {
            owned.push(("send", "ledger_schema", id.replace('-', "_")));
        } else {
            owned.push(("send", "ledger", format!("state/{id}.sqlite")));
        }
    }
    for (table, key, value) in owned {
        if lookup(own, &format!("{table}.{key}")).is_some() {
            continue;
        }
        let t = merged
            .entry(table)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = t {
            t.insert(key.to_string(), toml::Value::String(value));
        }
    }
    if !own.contains_key("issues") {
        merged.insert("issues".into(), toml::Value::String(format!("issues/{id}")));
    }
}

fn lookup<'a>(table: &'a toml::Table, dotted: &str) -> Option<&'a toml::Value> {
    let mut parts = dotted.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// Points problems found in the merged text back at the file each key came
/// from: the newsletter's own file when written there, else config.toml.
fn remap(
    found: Diagnostics,
    synthetic: &str,
    own: &Arc<SourceFile>,
    root: Option<&Arc<SourceFile>>,
) -> Diagnostics {
    let places = spans(synthetic);
    let own_places = spans(&own.text);
    let root_places = root.map(|r| spans(&r.text)).unwrap_or_default();
    let mut out = Diagnostics::new();
    for mut d in found.into_vec() {
        if let Some(loc) = &d.location {
            let path = loc
                .span
                .as_ref()
                .and_then(|s| innermost(&places, s.start))
                .map(|p| (p.path.clone(), p.is_key));
            d = match path {
                Some((path, is_key)) => match find(&own_places, &path, is_key) {
                    Some(span) => d.at(own, Some(span)),
                    None => match (root, find(&root_places, &path, is_key)) {
                        (Some(r), Some(span)) => d.at(r, Some(span)),
                        _ => d.at(own, None),
                    },
                },
                None => d.at(own, None),
            };
        }
        out.push(d);
    }
    out
}

/// Where one key or value is written.
#[derive(Debug, Clone)]
struct Place {
    path: String,
    is_key: bool,
    span: Range<usize>,
}

fn spans(text: &str) -> Vec<Place> {
    let mut out = Vec::new();
    if let Ok(root) = toml::de::DeTable::parse(text) {
        walk(root.get_ref(), "", &mut out);
    }
    out
}

fn walk(table: &toml::de::DeTable<'_>, prefix: &str, out: &mut Vec<Place>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.push(Place {
            path: path.clone(),
            is_key: true,
            span: key.span(),
        });
        walk_value(value, path, out);
    }
}

fn walk_value(value: &toml::Spanned<toml::de::DeValue<'_>>, path: String, out: &mut Vec<Place>) {
    match value.get_ref() {
        toml::de::DeValue::Table(t) => walk(t, &path, out),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(item, format!("{path}[{i}]"), out);
            }
            out.push(Place {
                path,
                is_key: false,
                span: value.span(),
            });
        }
        _ => out.push(Place {
            path,
            is_key: false,
            span: value.span(),
        }),
    }
}

fn innermost(places: &[Place], offset: usize) -> Option<&Place> {
    places
        .iter()
        .filter(|p| p.span.start <= offset && offset < p.span.end.max(p.span.start + 1))
        .min_by_key(|p| p.span.len())
}

fn find(places: &[Place], path: &str, is_key: bool) -> Option<Range<usize>> {
    places
        .iter()
        .find(|p| p.path == path && p.is_key == is_key)
        .or_else(|| places.iter().find(|p| p.path == path))
        .map(|p| p.span.clone())
}

/// Two newsletters with the same List-Id, ledger, addresses or folders
/// would read each other's readers, unsubscribes or pages.
fn check_distinct(root: &Config, out: &mut Diagnostics) {
    type Pick = fn(&Config) -> String;
    let keys: &[(&str, Pick)] = &[
        ("newsletter.name", |c| c.newsletter.name.clone()),
        ("sender.list_id", |c| c.sender.list_id.to_lowercase()),
        ("unsubscribe.base_url", |c| c.unsubscribe.base_url.clone()),
        ("newsletter.archive_base_url", |c| {
            c.newsletter
                .archive_base_url
                .trim_end_matches('/')
                .to_string()
        }),
        ("send.ledger", |c| {
            let schema = c.send.ledger_schema.as_deref().unwrap_or("");
            format!("{} {schema}", c.ledger_path().display())
        }),
        ("archive.out", |c| {
            c.resolve(&c.archive.out).to_string_lossy().into_owned()
        }),
        ("issues", |c| c.issues_dir().to_string_lossy().into_owned()),
    ];
    let all: Vec<&Config> = root.all().collect();
    for (i, later) in all.iter().enumerate().skip(1) {
        for (key, pick) in keys {
            let value = pick(later);
            if let Some(earlier) = all[..i].iter().find(|c| pick(c) == value) {
                out.push(later.problem(
                    key,
                    Diagnostic::error(format!(
                        "newsletter `{}` has the same {key} as `{}` (`{value}`), expected its own",
                        later.id(),
                        earlier.id()
                    )),
                ));
            }
        }
    }
}

/// The folder an issue path is in, made absolute where it exists, so that
/// `issues/europe/x` and `./issues/europe/x/issue.toml` compare alike.
pub(super) fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}
