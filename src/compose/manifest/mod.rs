//! The issue manifest: `issue.toml` plus the Markdown files it names.
//!
//! [`parse`] is pure (text in, issue or problems out; body files come through
//! a reader function); [`load`] reads from disk. Both report every problem at
//! once, each with file, line and column.

pub mod raw;
pub mod translation;
pub mod validate;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::diagnostic::{Diagnostic, Diagnostics, Location, SourceFile};
use crate::input::{self, InputError};
use crate::model::{Audience, Issue};

/// Reads a body file; injected so [`parse`] stays pure.
pub type ReadFile<'a> = dyn Fn(&Path) -> std::io::Result<Vec<u8>> + 'a;

/// Every `issue.toml` one or two folders below `dir`, sorted by path.
pub fn find_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let direct = dir.join("issue.toml");
    if direct.is_file() {
        out.push(direct);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let m = path.join("issue.toml");
        if m.is_file() {
            out.push(m);
        }
    }
    out.sort();
    Ok(out)
}

/// An issue read from a manifest, with what lints need to point at lines.
#[derive(Debug, Clone)]
pub struct LoadedIssue {
    /// The validated issue.
    pub issue: Issue,
    /// Warnings found while reading (errors would have stopped it).
    pub warnings: Diagnostics,
    /// Where model fields were written, by dotted field path.
    pub locations: Locations,
    /// The manifest path.
    pub manifest: PathBuf,
    /// The manifest's text, for pointing at lines.
    pub source: Arc<SourceFile>,
    /// Body files the manifest named.
    pub body_files: Vec<PathBuf>,
    /// Blocks for some readers only (`only_for`, `except_for`).
    pub audiences: Vec<Audience>,
    /// The issue in other languages (`issue.de.toml`), sorted by language;
    /// always empty in a translation itself.
    pub translations: Vec<LoadedIssue>,
}

impl LoadedIssue {
    /// Every edition: the main one first, then the translations.
    pub fn editions(&self) -> impl Iterator<Item = &LoadedIssue> + Clone {
        std::iter::once(self).chain(&self.translations)
    }

    /// The edition in `language` (or its base language: `de-AT` finds
    /// `de`), if the issue has one.
    pub fn edition(&self, language: &str) -> Option<&LoadedIssue> {
        crate::model::best_language_match(language, self.editions(), |e| &e.issue.language)
    }
}

/// Field path (`subject`, `articles[1].title`, `closing.image`) to the place
/// it was written.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    map: HashMap<String, Location>,
}

impl Locations {
    /// Renames `list[old]…` entries to `list[new]…` after the list was
    /// reordered: `order[new]` is the 0-based old index of the new item.
    pub fn reorder(&mut self, list: &str, order: &[usize]) {
        let prefix = format!("{list}[");
        let (moved, kept): (HashMap<_, _>, HashMap<_, _>) = std::mem::take(&mut self.map)
            .into_iter()
            .partition(|(k, _)| k.starts_with(&prefix));
        self.map = kept;
        for (new, &old) in order.iter().enumerate() {
            let from = format!("{list}[{}]", old + 1);
            let to = format!("{list}[{}]", new + 1);
            for (k, loc) in &moved {
                if let Some(rest) = k.strip_prefix(&from)
                    && (rest.is_empty() || rest.starts_with('.'))
                {
                    self.map.insert(format!("{to}{rest}"), loc.clone());
                }
            }
        }
    }

    /// Adds the entries of `other` not already here.
    pub fn extend(&mut self, other: Locations) {
        for (k, v) in other.map {
            self.map.entry(k).or_insert(v);
        }
    }

    /// Records where a field was written.
    pub fn insert(&mut self, field: &str, file: Arc<SourceFile>, span: Option<Range<usize>>) {
        self.map
            .entry(field.to_string())
            .or_insert(Location { file, span });
    }

    /// Where a field was written, if known.
    pub fn get(&self, field: &str) -> Option<&Location> {
        self.map.get(field)
    }

    /// Points a diagnostic at a field's place (or at the manifest's start).
    pub fn locate(&self, d: Diagnostic, field: &str, manifest: &Arc<SourceFile>) -> Diagnostic {
        let d = d.field(field);
        match self.get(field) {
            Some(loc) => d.at(&loc.file, loc.span.clone()),
            None => d.at(manifest, Some(0..0)),
        }
    }
}

/// Parses manifest text. `path` names the manifest in diagnostics and
/// anchors `body_file` paths; `read` fetches body files.
pub fn parse(
    text: &str,
    path: &Path,
    config: &Config,
    read: &ReadFile<'_>,
) -> Result<LoadedIssue, Diagnostics> {
    parse_main(text, path, config, read).map(|(loaded, _)| loaded)
}

/// [`parse`], keeping the manifest as written for its translations.
pub fn parse_main(
    text: &str,
    path: &Path,
    config: &Config,
    read: &ReadFile<'_>,
) -> Result<(LoadedIssue, raw::RawIssue), Diagnostics> {
    let file = SourceFile::new(path, text);
    let mut out = Diagnostics::new();
    let Some(raw) = raw::read(&file, &mut out) else {
        return Err(out);
    };
    let cx = context(&file, path, config, read, None);
    let validated = validate::validate(&raw, &cx, &mut out);
    let mut locations = Locations::default();
    let audiences = audiences(&raw, &file, &mut locations, &mut out);
    match validated {
        Some((issue, mut extra)) if !out.has_errors() => {
            extra.locations.extend(locations);
            let loaded = LoadedIssue {
                issue,
                warnings: out,
                locations: extra.locations,
                manifest: path.to_path_buf(),
                source: Arc::clone(&file),
                body_files: extra.body_files,
                audiences,
                translations: Vec::new(),
            };
            Ok((loaded, raw))
        }
        _ => Err(out),
    }
}

fn context<'a>(
    file: &'a Arc<SourceFile>,
    path: &'a Path,
    config: &'a Config,
    read: &'a ReadFile<'a>,
    edition: Option<&'a str>,
) -> validate::Context<'a> {
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let folder_name = std::fs::canonicalize(base_dir)
        .ok()
        .as_deref()
        .unwrap_or(base_dir)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    validate::Context {
        file,
        base_dir,
        read,
        config,
        folder_name,
        edition,
    }
}

/// A translation of `main` in `language`: its text over the main
/// manifest's structure (see [`translation`]), validated like a manifest.
pub fn parse_translation(
    main: (&LoadedIssue, &raw::RawIssue),
    text: &str,
    path: &Path,
    language: &str,
    config: &Config,
    read: &ReadFile<'_>,
) -> Result<LoadedIssue, Diagnostics> {
    let (main, main_raw) = main;
    let file = SourceFile::new(path, text);
    let mut out = Diagnostics::new();
    let Some(tr) = raw::read_translation(&file, &mut out) else {
        return Err(out);
    };
    if super::strings::find(language).is_none() {
        let known: Vec<&str> = super::strings::languages().collect();
        out.push(
            Diagnostic::warning(format!(
                "briefing has no words of its own in `{language}`, so its labels and links stay English; expected one of: {}, or [newsletter.editions.{language}] in config.toml",
                known.join(", ")
            ))
            .at(&file, Some(0..0)),
        );
    }
    let pair = translation::Pair {
        main: main_raw,
        main_file: &main.source,
        tr: &tr,
        tr_file: &file,
    };
    let merged = translation::merge(&pair, &mut out);
    let cx = context(&file, path, config, read, Some(language));
    let validated = validate::validate(&merged, &cx, &mut out);
    match validated {
        Some((mut issue, extra)) if !out.has_errors() => {
            // The slug names the issue, not an edition: archive pages and
            // calendar links of all editions hang off the same one.
            issue.slug.clone_from(&main.issue.slug);
            Ok(LoadedIssue {
                issue,
                warnings: out,
                locations: extra.locations,
                manifest: path.to_path_buf(),
                source: file,
                body_files: extra.body_files,
                audiences: main.audiences.clone(),
                translations: Vec::new(),
            })
        }
        _ => Err(out),
    }
}

/// The `only_for` / `except_for` conditions, checked: at least one column,
/// each with at least one non-blank value.
fn audiences(
    raw: &raw::RawIssue,
    file: &Arc<SourceFile>,
    locations: &mut Locations,
    out: &mut Diagnostics,
) -> Vec<Audience> {
    let mut found = Vec::new();
    for a in &raw.audiences {
        let Some(block) = a.block else { continue };
        locations.insert(&a.field, Arc::clone(file), Some(a.span.clone()));
        let mut columns = Vec::new();
        for (column, values) in &a.columns {
            let values: Vec<String> = values
                .iter()
                .map(|v| v.value.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                out.push(
                    Diagnostic::error(format!(
                        "`{}` lists no value, expected e.g. {} = \"premium\" or [\"a\", \"b\"]",
                        column.value, column.value
                    ))
                    .field(format!("{}.{}", a.field, column.value))
                    .at(file, Some(column.span.clone())),
                );
                continue;
            }
            columns.push((column.value.trim().to_lowercase(), values));
        }
        if a.columns.is_empty() {
            out.push(
                Diagnostic::error(
                    "the condition names no column, expected e.g. { plan = \"premium\" }",
                )
                .field(a.field.clone())
                .at(file, Some(a.span.clone())),
            );
            continue;
        }
        found.push(Audience {
            block,
            except: a.except,
            columns,
            field: a.field.clone(),
        });
    }
    found
}

/// Reads and validates the manifest at `path`.
pub fn load(path: &Path, config: &Config) -> Result<LoadedIssue, Diagnostics> {
    let text = read_manifest(path)?;
    // Body files stay inside the issue's folder (checked as written, in
    // `validate`); here links are followed too, and the stylesheet may also
    // come from the config's folder.
    let issue_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let read = |p: &Path| -> std::io::Result<Vec<u8>> {
        input::within(p, &[&issue_dir, &config.base_dir])
            .and_then(|()| input::read_limited(p, input::BODY_FILE_LIMIT))
            .map_err(|e| match e {
                InputError::Io { source, .. } => source,
                other => std::io::Error::other(other),
            })
    };
    let (mut main, raw) = parse_main(&text, path, config, &read)?;
    let mut problems = Diagnostics::new();
    for (language, tr_path) in translation::find(path) {
        let parsed = read_manifest(&tr_path).and_then(|text| {
            parse_translation((&main, &raw), &text, &tr_path, &language, config, &read)
        });
        match parsed {
            Ok(t) => main.translations.push(t),
            Err(d) => problems.extend(d),
        }
    }
    if problems.has_errors() {
        problems.extend(main.warnings);
        return Err(problems);
    }
    Ok(main)
}

/// A manifest's text, or the problem reading it.
fn read_manifest(path: &Path) -> Result<String, Diagnostics> {
    let bytes = input::read_limited(path, input::MANIFEST_LIMIT).map_err(|e| {
        let why = match e {
            InputError::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        let mut d = Diagnostics::new();
        d.push(
            Diagnostic::error(format!(
                "cannot read the issue manifest: {why}; expected a path such as issues/2025-01-17/issue.toml"
            ))
            .at(&SourceFile::new(path, ""), None),
        );
        d
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let mut d = Diagnostics::new();
            d.push(
                Diagnostic::error("the manifest is not UTF-8 text, expected a UTF-8 TOML file").at(
                    &SourceFile::new(path, lossy),
                    Some(at..at + '\u{fffd}'.len_utf8()),
                ),
            );
            return Err(d);
        }
    };
    Ok(text)
}
