//! Blocks for some readers: which blocks a reader sees (their variant),
//! and the issue as that variant shows it. An issue is rendered once per
//! variant that occurs in the list, never per reader; the table of
//! contents, the text part and the link numbers follow, because the
//! renderers draw the filtered issue like any other.

use std::sync::Arc;

use crate::compose::manifest::LoadedIssue;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Audience, BlockRef, Issue, MergeFields, SectionContent};

/// Which of an issue's restricted blocks a reader sees, one flag per
/// [`Audience`] in manifest order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant(Vec<bool>);

impl Variant {
    /// The variant of a reader with these fields.
    pub fn of(audiences: &[Audience], reader: &dyn MergeFields) -> Self {
        Self(audiences.iter().map(|a| a.shows(reader)).collect())
    }

    /// What every reader sees: no restricted block at all (the archive's).
    pub fn public(audiences: &[Audience]) -> Self {
        Self(vec![false; audiences.len()])
    }

    /// A short name for logs and previews: `+` shown, `-` hidden, per block.
    pub fn name(&self) -> String {
        if self.0.is_empty() {
            return "all".into();
        }
        self.0.iter().map(|s| if *s { '+' } else { '-' }).collect()
    }
}

/// The issue as readers of `variant` see it.
pub fn issue_for(issue: &Issue, audiences: &[Audience], variant: &Variant) -> Issue {
    let hidden: Vec<BlockRef> = audiences
        .iter()
        .zip(&variant.0)
        .filter(|(_, shown)| !**shown)
        .map(|(a, _)| a.block)
        .collect();
    if hidden.is_empty() {
        return issue.clone();
    }
    let mut out = issue.clone();
    out.sections.retain_mut(|s| {
        if hidden.contains(&BlockRef::Section(s.kind)) {
            return false;
        }
        keep_items(&mut s.content, &hidden)
    });
    out
}

/// Drops hidden items; false when nothing is left of the section.
fn keep_items(content: &mut SectionContent, hidden: &[BlockRef]) -> bool {
    fn retain<T>(items: &mut Vec<T>, hidden: &[BlockRef], block: fn(usize) -> BlockRef) -> bool {
        let mut i = 0;
        items.retain(|_| {
            i += 1;
            !hidden.contains(&block(i - 1))
        });
        !items.is_empty()
    }
    match content {
        SectionContent::Articles(list) => retain(list, hidden, BlockRef::Article),
        SectionContent::News(list) => retain(list, hidden, BlockRef::News),
        SectionContent::Heads(h) => retain(&mut h.people, hidden, BlockRef::Person),
        _ => true,
    }
}

/// Rendered issues by variant, made the first time a variant is needed.
pub struct Variants<T> {
    audiences: Vec<Audience>,
    made: std::sync::Mutex<std::collections::BTreeMap<Variant, Arc<T>>>,
}

impl<T> Variants<T> {
    /// No variant made yet.
    pub fn new(audiences: Vec<Audience>) -> Self {
        Self {
            audiences,
            made: Default::default(),
        }
    }

    /// The conditions variants are made from.
    pub fn audiences(&self) -> &[Audience] {
        &self.audiences
    }

    /// The variant for a reader and what `make` built for it (once).
    pub fn get(&self, reader: &dyn MergeFields, make: impl FnOnce(&Variant) -> T) -> Arc<T> {
        let v = Variant::of(&self.audiences, reader);
        let Ok(mut made) = self.made.lock() else {
            return Arc::new(make(&v));
        };
        Arc::clone(made.entry(v.clone()).or_insert_with(|| Arc::new(make(&v))))
    }

    /// How many distinct variants were made.
    pub fn count(&self) -> usize {
        self.made.lock().map_or(0, |m| m.len())
    }
}

/// A condition on a column no list has can never match: an error at its
/// line, like a merge tag no list can fill.
pub fn lint_columns(loaded: &LoadedIssue, columns: Option<&[String]>) -> Diagnostics {
    let mut out = Diagnostics::new();
    let Some(columns) = columns else {
        return out;
    };
    for a in &loaded.audiences {
        for (column, _) in &a.columns {
            if columns.iter().any(|c| c == column) {
                continue;
            }
            let d = Diagnostic::error(format!(
                "no recipient list has a `{column}` column, so this condition never matches; expected one of: {}",
                columns.join(", ")
            ));
            out.push(
                loaded
                    .locations
                    .locate(d.field(a.field.clone()), &a.field, &loaded.source),
            );
        }
    }
    out
}
