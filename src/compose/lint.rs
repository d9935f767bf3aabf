//! Pre-flight checks on a valid issue: what would hurt it in inboxes.
//!
//! Validation refuses what cannot be rendered; lints find what renders but
//! should not go out like this (an HTML part Gmail would clip, a merge tag no
//! recipient column can fill, an event already over).

use std::sync::Arc;

use jiff::Timestamp;

use crate::compose::manifest::LoadedIssue;
use crate::compose::render::{RenderedIssue, Slot};
use crate::config::Config;
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use crate::model::{Body, SectionContent, SectionKind, collect_inline_fields};

/// What the lints look at besides the issue.
pub struct LintInput<'a> {
    /// The issue as loaded, with field locations.
    pub loaded: &'a LoadedIssue,
    /// Its renderings.
    pub rendered: &'a RenderedIssue,
    /// Thresholds and section order.
    pub config: &'a Config,
    /// The current time.
    pub now: Timestamp,
    /// Columns of the recipient lists (`email`, `name`, ...), when readable.
    pub recipient_fields: Option<Vec<String>>,
}

/// Runs every lint.
pub fn lint(input: &LintInput<'_>) -> Diagnostics {
    let cx = Cx {
        input,
        manifest: manifest_file(input.loaded),
    };
    let mut out = Diagnostics::new();
    for found in [
        html_size_and_controls(&cx),
        subject_and_preheader(&cx),
        past_events_and_unsized_images(&cx),
        missing_sections(&cx),
        links_without_text(&cx),
        unfillable_merge_tags(&cx),
    ] {
        for d in found {
            out.push(d);
        }
    }
    out
}

/// What every lint reads: the input and the manifest its fields point into.
struct Cx<'a> {
    input: &'a LintInput<'a>,
    manifest: Arc<SourceFile>,
}

impl Cx<'_> {
    /// `d` pointed at `field` of the manifest (or the body file it names).
    fn at(&self, d: Diagnostic, field: &str) -> Diagnostic {
        self.input.loaded.locations.locate(d, field, &self.manifest)
    }
}

/// Gmail clips HTML past about 102 KB, cutting off the unsubscribe link,
/// and clips any message with a C0/C1 control character in it.
fn html_size_and_controls(cx: &Cx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let probe = [
        ("email", "firstname.lastname@example.org"),
        ("name", "Firstname Lastname"),
    ];
    let html = cx.input.rendered.html.fill(&probe, &"u".repeat(120));
    let size = html.len();
    let limit = cx.input.config.check.max_html_bytes;
    if size > limit {
        out.push(cx.at(
            Diagnostic::error(format!(
                "the HTML part is {} KB, over the {} KB limit (Gmail clips messages near 102 KB); expected a shorter issue",
                size / 1024,
                limit / 1024
            )),
            "subject",
        ));
    } else if size * 100 > limit * 85 {
        out.push(cx.at(
            Diagnostic::warning(format!(
                "the HTML part is {} KB, close to the {} KB limit",
                size / 1024,
                limit / 1024
            )),
            "subject",
        ));
    }
    if let Some(c) = html
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        out.push(cx.at(
            Diagnostic::error(format!(
                "the issue contains the invisible control character U+{:04X} (often pasted from a word processor), which makes Gmail clip the message; expected plain text",
                u32::from(c)
            )),
            "subject",
        ));
    }
    out
}

/// What the inbox list shows: a subject it can show whole and that does not
/// pose as a reply, and a preheader of a length inboxes use.
fn subject_and_preheader(cx: &Cx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let issue = &cx.input.loaded.issue;
    let max_subject = cx.input.config.check.max_subject_chars;
    let subject_chars = issue.subject.chars().count();
    if subject_chars > max_subject {
        out.push(cx.at(
            Diagnostic::warning(format!(
                "the subject is {subject_chars} characters, expected at most {max_subject} so inboxes show it whole"
            )),
            "subject",
        ));
    }
    let lower = issue.subject.to_lowercase();
    if lower.starts_with("re:") || lower.starts_with("fwd:") || lower.starts_with("fw:") {
        out.push(cx.at(
            Diagnostic::warning("the subject starts like a reply or forward, which spam filters punish; expected a plain subject"),
            "subject",
        ));
    }
    let pre = issue.preheader.chars().count();
    if pre > 0 && !(35..=140).contains(&pre) {
        out.push(cx.at(
            Diagnostic::warning(format!(
                "the preheader is {pre} characters, expected 35 to 140 (inboxes show about 40 to 100)"
            )),
            "preheader",
        ));
    }
    out
}

/// Events that already started, and a closing image Outlook cannot size.
fn past_events_and_unsized_images(cx: &Cx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for section in &cx.input.loaded.issue.sections {
        match &section.content {
            SectionContent::Events(events) => {
                for (i, e) in events.iter().enumerate() {
                    if e.start.timestamp() < cx.input.now {
                        out.push(cx.at(
                            Diagnostic::warning(format!(
                                "the event “{}” started on {}, before now; expected only upcoming events",
                                e.title,
                                e.start.strftime("%Y-%m-%d %H:%M %Z")
                            )),
                            &format!("events[{}].start", i + 1),
                        ));
                    }
                }
            }
            SectionContent::Closing(c) => {
                if let Some(img) = &c.image
                    && (img.width.is_none() || img.height.is_none())
                {
                    out.push(cx.at(
                        Diagnostic::warning(
                            "the image has no width or height, expected both so Outlook keeps the layout",
                        ),
                        "closing.image",
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Sections the config's order lists that this issue lacks.
fn missing_sections(cx: &Cx<'_>) -> Vec<Diagnostic> {
    let issue = &cx.input.loaded.issue;
    let order: Vec<SectionKind> = cx.input.config.section_order();
    order
        .into_iter()
        .filter(|kind| !issue.sections.iter().any(|s| s.kind == *kind))
        .map(|kind| {
            Diagnostic::warning(format!(
                "the issue has no {} section, expected one as the config's section order lists it",
                kind.key()
            ))
            .field(kind.key())
            .at(&cx.manifest, Some(0..0))
        })
        .collect()
}

/// Links a reader cannot see to click.
fn links_without_text(cx: &Cx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (field, body) in bodies(cx.input.loaded) {
        for link in body.links() {
            if crate::model::plain_text(&link.content).trim().is_empty() {
                out.push(cx.at(
                    Diagnostic::warning(format!(
                        "a link to {} has no text, expected words readers can click",
                        link.url
                    )),
                    &field,
                ));
            }
        }
    }
    out
}

/// Merge tags no recipient column fills: an error without a fallback, a
/// warning with one (every reader sees the fallback). Only when the lists'
/// columns could be read.
fn unfillable_merge_tags(cx: &Cx<'_>) -> Vec<Diagnostic> {
    let Some(columns) = &cx.input.recipient_fields else {
        return Vec::new();
    };
    let loaded = cx.input.loaded;
    let mut out = Vec::new();
    for (field, f) in merge_tags(cx.input) {
        let known = matches!(f.name.as_str(), "email" | "name") || columns.contains(&f.name);
        if !known && f.fallback.is_none() {
            let d = Diagnostic::error(format!(
                "the merge tag {{{{ {} }}}} has no recipient column to fill it (columns: {}); expected one of them or a fallback: {{{{ {} | default: \"…\" }}}}",
                f.name,
                columns.join(", "),
                f.name
            ));
            out.push(if field == "newsletter.salutation" {
                d.field(field)
                    .at(&SourceFile::new(&cx.input.config.source, ""), None)
            } else {
                at_tag(loaded, d, &field, &f.name, &cx.manifest)
            });
        } else if !known {
            out.push(at_tag(
                loaded,
                Diagnostic::warning(format!(
                    "no recipient column `{}`: every reader will see the fallback",
                    f.name
                )),
                &field,
                &f.name,
                &cx.manifest,
            ));
        }
    }
    out
}

/// Every merge tag of the issue with the field it was written under: the
/// bodies', the configured salutation's, then any other the text part holds.
fn merge_tags(input: &LintInput<'_>) -> Vec<(String, crate::model::Field)> {
    let mut fields: Vec<(String, crate::model::Field)> = Vec::new();
    for (field, body) in bodies(input.loaded) {
        fields.extend(
            body.fields()
                .into_iter()
                .map(|f| (field.clone(), f.clone())),
        );
    }
    let mut salutation = Vec::new();
    collect_inline_fields(&input.loaded.issue.publisher.salutation, &mut salutation);
    fields.extend(
        salutation
            .into_iter()
            .map(|f| ("newsletter.salutation".to_string(), f.clone())),
    );
    for slot in input.rendered.text.slots() {
        if let Slot::Field(f) = slot
            && !fields.iter().any(|(_, g)| g == f)
        {
            fields.push(("body".into(), f.clone()));
        }
    }
    fields
}

/// Points a diagnostic at the first `{{ name … }}` tag inside a body's
/// source, falling back to the body's own location.
fn at_tag(
    loaded: &LoadedIssue,
    d: Diagnostic,
    field: &str,
    name: &str,
    manifest: &Arc<SourceFile>,
) -> Diagnostic {
    let Some(loc) = loaded.locations.get(field) else {
        return loaded.locations.locate(d, field, manifest);
    };
    let region = loc.span.clone().unwrap_or(0..loc.file.text.len());
    let text = loc.file.text.get(region.clone()).unwrap_or("");
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|i| i + from) {
        let Some(close) = text[open..].find("}}").map(|i| i + open) else {
            break;
        };
        if crate::compose::markdown::parse_tag(&text[open + 2..close]).is_ok_and(|t| t.name == name)
        {
            let start = region.start + open;
            return d
                .field(field)
                .at(&loc.file, Some(start..region.start + close + 2));
        }
        from = close + 2;
    }
    loaded.locations.locate(d, field, manifest)
}

fn manifest_file(loaded: &LoadedIssue) -> Arc<SourceFile> {
    loaded.source.clone()
}

/// Every body of the issue with the field path it was written under.
pub fn bodies(loaded: &LoadedIssue) -> Vec<(String, &Body)> {
    let mut out = Vec::new();
    for s in &loaded.issue.sections {
        match &s.content {
            SectionContent::Editorial(e) => out.push(("editorial.body".to_string(), &e.body)),
            SectionContent::Articles(list) => out.extend(
                list.iter()
                    .enumerate()
                    .map(|(i, a)| (format!("articles[{}].body", i + 1), &a.body)),
            ),
            SectionContent::Events(_) => {}
            SectionContent::News(list) => out.extend(
                list.iter()
                    .enumerate()
                    .map(|(i, n)| (format!("news[{}].body", i + 1), &n.body)),
            ),
            SectionContent::Column(c) => out.push(("column.body".to_string(), &c.body)),
            SectionContent::Heads(h) => {
                out.extend(
                    h.people
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (format!("heads.people[{}].body", i + 1), &p.body)),
                );
                out.push(("heads.call_to_action".to_string(), &h.call_to_action));
            }
            SectionContent::Closing(c) => out.push(("closing.body".to_string(), &c.body)),
        }
    }
    out
}
