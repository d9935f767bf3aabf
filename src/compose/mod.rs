//! Composing an issue: the manifest and its Markdown files become a
//! validated [`crate::model::Issue`], rendered once to HTML and text, and
//! checked before it goes out.

pub mod calendar;
pub mod lint;
pub mod manifest;
pub mod markdown;
pub mod render;
pub mod strings;
pub mod stylesheet;
pub mod timefmt;
pub mod variants;

use std::path::Path;

use jiff::Timestamp;

use crate::config::Config;
use crate::diagnostic::Diagnostics;
use manifest::LoadedIssue;
use render::RenderedIssue;

/// An issue loaded, rendered once and checked: where `check`, `send` and
/// the live preview all start.
#[derive(Debug, Clone)]
pub struct CheckedIssue {
    /// The issue as loaded, with field locations.
    pub loaded: LoadedIssue,
    /// Both renderings.
    pub rendered: RenderedIssue,
    /// Warnings from loading, then every lint (errors and warnings).
    pub problems: Diagnostics,
}

/// Loads, renders and lints an issue. `recipient_fields` are the columns of
/// the lists it goes to, when they can be read (merge tags are checked
/// against them). Errors in the manifest stop it; lint errors do not, they
/// are in [`CheckedIssue::problems`] for the caller to weigh.
pub fn check(
    path: &Path,
    config: &Config,
    now: Timestamp,
    recipient_fields: Option<Vec<String>>,
) -> Result<CheckedIssue, Diagnostics> {
    let loaded = manifest::load(path, config)?;
    let rendered = render::render(&loaded.issue);
    let mut problems = loaded.warnings.clone();
    for t in &loaded.translations {
        problems.extend(t.warnings.clone());
    }
    problems.extend(variants::lint_columns(&loaded, recipient_fields.as_deref()));
    problems.extend(lint::lint(&lint::LintInput {
        loaded: &loaded,
        rendered: &rendered,
        config,
        now,
        recipient_fields,
    }));
    Ok(CheckedIssue {
        loaded,
        rendered,
        problems,
    })
}
