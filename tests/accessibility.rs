//! WCAG 2 A/AA in a real engine: axe-core (the rules behind most
//! accessibility audits) runs over the sample issue as a recipient gets it,
//! in headless Chromium, in light and dark colour schemes. Any violation
//! (contrast, missing alt text, layout tables without a role, links without
//! names, missing `lang`) fails the test.
//!
//! Needs `chromium` and axe-core (`npm install --prefix tests/.node
//! axe-core@4`, which `tests/run.sh` does); `AXE_CORE_JS` may point at
//! another `axe.min.js`.

mod support;

use std::path::{Path, PathBuf};

use briefing::audience::recipient::Recipient;
use briefing::config::Config;
use support::browser::{chromium, headless};
use support::cli::repo;

fn axe_js() -> PathBuf {
    let path = std::env::var_os("AXE_CORE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("tests/.node/node_modules/axe-core/axe.min.js"));
    assert!(
        path.is_file(),
        "axe-core not found at {}: run `npm install --prefix tests/.node axe-core@4` \
         (tests/run.sh does)",
        path.display()
    );
    path
}

/// The sample issue's HTML, filled for one reader.
fn sample_email() -> String {
    let config = Config::load(Some(&repo().join("config.toml"))).unwrap();
    let loaded =
        briefing::compose::manifest::load(&repo().join("issues/2025-01-17/issue.toml"), &config)
            .unwrap();
    let html = briefing::compose::render::render(&loaded.issue).html.fill(
        &Recipient::new("anna.keller@example.org", "Anna Keller"),
        "https://briefing.example.org/unsubscribe/token",
    );
    assert!(!html.contains("<script"), "the email carries no script");
    html
}

// Added to the test copy only: runs axe once the page has loaded and leaves
// the violations in the page for --dump-dom. Images are remote and never
// load here, which is also how many readers see the issue.
const RUN_AXE: &str = r#"<script>
window.addEventListener('load', function () {
  axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } })
    .then(function (r) {
      var out = document.createElement('pre');
      out.id = 'axe-result';
      out.textContent = r.violations.map(function (v) {
        return v.id + ' (' + v.impact + '): ' + v.nodes.length + ' element(s), first ' +
          JSON.stringify(v.nodes[0].target) + ' ' + (v.nodes[0].failureSummary || '').split('\n').join(' ');
      }).join('\n') + '\nchecked ' + r.passes.length + ' rules';
      document.body.appendChild(out);
    });
});
</script>
"#;

fn violations(chromium: &Path, scheme: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(axe_js(), dir.path().join("axe.min.js")).unwrap();
    let page = sample_email().replace(
        "</body>",
        &format!("<script src=\"axe.min.js\"></script>{RUN_AXE}</body>"),
    );
    let file = dir.path().join("email.html");
    std::fs::write(&file, page).unwrap();
    let output = headless(chromium, &dir.path().join("profile"))
        .arg("--virtual-time-budget=10000")
        .arg(format!("--blink-settings=preferredColorScheme={scheme}"))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom.find("<pre id=\"axe-result\">").unwrap_or_else(|| {
        panic!(
            "axe produced no result (status {}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let body = &dom[start + "<pre id=\"axe-result\">".len()..];
    let body = &body[..body.find("</pre>").unwrap()];
    let lines: Vec<String> = body.lines().map(|l| l.replace("&gt;", ">")).collect();
    let checked = lines.last().cloned().unwrap_or_default();
    assert!(
        checked.starts_with("checked ") && !checked.starts_with("checked 0 "),
        "axe checked nothing: {body}"
    );
    lines[..lines.len() - 1]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .cloned()
        .collect()
}

#[test]
fn the_sample_issue_has_no_wcag_a_or_aa_violations_in_light_or_dark_mode() {
    let Some(chromium) = chromium() else {
        return;
    };
    // Blink's preferredColorScheme: 1 is light, 0 is dark.
    for (scheme, name) in [("1", "light"), ("0", "dark")] {
        let found = violations(&chromium, scheme);
        assert!(
            found.is_empty(),
            "{name} mode: axe reports\n{}",
            found.join("\n")
        );
    }
}
