//! The README's manifest example is a real, valid issue: it is read with the
//! repository's config, with its body files taken from the sample issue.

use std::path::{Path, PathBuf};

use briefing::config::Config;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first ```toml block after the "## The issue manifest" heading.
fn readme_manifest() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = &readme[readme.find("## The issue manifest").expect("section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = section[start..].find("```").expect("closed block");
    section[start..start + end].to_string()
}

#[test]
fn the_readme_manifest_example_is_a_valid_issue_with_every_section() {
    let config = Config::load(Some(&repo().join("config.toml"))).unwrap();
    let sample = repo().join("issues/2025-01-17");
    // Body files named by the example are read from the sample issue.
    let read = |p: &Path| {
        let rel = p.strip_prefix("/readme").unwrap_or(p);
        std::fs::read(sample.join(rel))
    };
    let loaded = briefing::compose::manifest::parse(
        &readme_manifest(),
        Path::new("/readme/issue.toml"),
        &config,
        &read,
    )
    .unwrap_or_else(|d| panic!("the README example does not validate:\n{}", d.render()));
    assert_eq!(loaded.issue.sections.len(), 7, "every section is shown");
    // Read as a reader does: the no-break spaces holding each time together
    // look like spaces.
    let text = briefing::compose::render::render(&loaded.issue)
        .text
        .with_placeholders()
        .replace('\u{a0}', " ");
    let manifest = readme_manifest();
    let renders = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("# renders: "))
        .expect("a `# renders:` comment under the event");
    assert!(
        text.contains(renders),
        "the event renders as the README comment says: {renders:?}"
    );
}

/// The first ```toml block after the "### Translations" heading.
fn readme_translation() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = &readme[readme.find("### Translations").expect("section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = section[start..].find("```").expect("closed block");
    section[start..start + end].to_string()
}

#[test]
fn the_readme_translation_example_translates_the_manifest_example() {
    let config = Config::load(Some(&repo().join("config.toml"))).unwrap();
    let sample = repo().join("issues/2025-01-17");
    let read = |p: &Path| {
        let rel = p.strip_prefix("/readme").unwrap_or(p);
        std::fs::read(sample.join(rel))
    };
    let (main, raw) = briefing::compose::manifest::parse_main(
        &readme_manifest(),
        Path::new("/readme/issue.toml"),
        &config,
        &read,
    )
    .unwrap_or_else(|d| panic!("the README example does not validate:\n{}", d.render()));
    let de = briefing::compose::manifest::parse_translation(
        (&main, &raw),
        &readme_translation(),
        Path::new("/readme/issue.de.toml"),
        "de",
        &config,
        &read,
    )
    .unwrap_or_else(|d| panic!("the README translation does not validate:\n{}", d.render()));
    assert_eq!(de.issue.language, "de");
    assert_eq!(de.issue.sections.len(), main.issue.sections.len());
    let text = briefing::compose::render::render(&de.issue)
        .text
        .with_placeholders()
        .replace('\u{a0}', " ");
    let renders = readme_translation()
        .lines()
        .find_map(|l| l.trim().strip_prefix("# renders: "))
        .expect("a `# renders:` comment under the event")
        .to_string();
    assert!(text.contains(&renders), "{renders:?} not in:\n{text}");
    assert!(text.contains("Zum Schluss"), "the translation's own label");
}
