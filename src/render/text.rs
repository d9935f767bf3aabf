//! The plain-text alternative, rendered from the same model as the HTML.

use crate::model::Issue;
use crate::render::{Escape, Marks, Template};

/// Renders the issue's plain text once, with slots for per-recipient parts.
pub fn render(issue: &Issue) -> Template {
    let marks = Marks::new();
    marks.into_template(&issue.subject, Escape::None)
}
