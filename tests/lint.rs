//! Every lint of `briefing check` on one issue built to trip them all: the
//! messages and where they point are pinned by a snapshot.

use std::path::Path;

use briefing::compose::lint::{self, LintInput};
use briefing::compose::manifest;
use briefing::compose::render;
use briefing::config::{Config, EMBEDDED};
use jiff::Timestamp;

const MANIFEST: &str = r#"number = 7
date = 2025-01-17
subject = "Re: a subject far too long for any inbox to show whole, which goes on and on and on"
preheader = "Too short."
time_zone = "Europe/Berlin"

[editorial]
author = "Mara Lind"
body = """
Dear {{ company }}, greetings to {{ city | default: "your city" }}.

A link with no words: [](https://example.org/empty).
"""

[[events]]
start = 2025-01-10T10:00:00
organizer = "Port Institute"
kind = "Webinar"
title = "Cranes, cargo and contracts"
url = "https://events.example.org/cranes"

[closing]
title = "A quay at night"
body = "The last ferry leaves at 11 p.m."

[closing.image]
url = "https://images.example.org/quay.jpg"
alt = "The quay at night"
width = 600
"#;

fn config(max_html_bytes: usize) -> Config {
    let text = EMBEDDED.replace(
        "max_html_bytes = 92160",
        &format!("max_html_bytes = {max_html_bytes}"),
    );
    Config::parse(&text, "config.toml", Path::new(".")).unwrap()
}

/// What `briefing check` reports for the issue under `config`.
fn problems(config: &Config) -> String {
    let no_files = |_: &Path| Err(std::io::Error::other("no body files here"));
    let loaded = manifest::parse(MANIFEST, Path::new("lint/issue.toml"), config, &no_files)
        .unwrap_or_else(|d| panic!("the fixture does not validate:\n{}", d.render()));
    let rendered = render::render(&loaded.issue);
    lint::lint(&LintInput {
        loaded: &loaded,
        rendered: &rendered,
        config,
        now: "2025-01-17T05:01:00Z".parse::<Timestamp>().unwrap(),
        recipient_fields: Some(vec!["email".into(), "name".into()]),
    })
    .render()
}

#[test]
fn every_lint_reports_its_problem_where_it_lies() {
    insta::assert_snapshot!(problems(&config(1024)));
}

#[test]
fn an_html_part_within_15_percent_of_the_limit_is_a_warning() {
    let over = problems(&config(1024));
    let kb: usize = over
        .split("the HTML part is ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {over}"));
    assert!(kb >= 7, "the fixture is {kb} KB, too small for this test");
    // The size lies within the last KB below this limit: over 85 % of it.
    let near = problems(&config((kb + 1) * 1024));
    assert!(
        near.contains(&format!(
            "warning: subject: the HTML part is {kb} KB, close to the {} KB limit",
            kb + 1
        )),
        "{near}"
    );
    assert!(!near.contains("over the"), "{near}");
}
