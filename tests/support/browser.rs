//! Headless Chromium for tests that need a real layout engine.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Chromium binary, or `None` when the caller asked to skip; a missing
/// browser fails the test otherwise, so CI cannot pass without checking.
pub fn chromium() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
    });
    let found = Some(PathBuf::from("/usr/bin/chromium"))
        .filter(|p| p.is_file())
        .or(on_path);
    if found.is_none() && std::env::var("BRIEFING_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("browser test skipped: BRIEFING_SKIP_BROWSER=1 and no chromium");
        return None;
    }
    assert!(
        found.is_some(),
        "chromium not found at /usr/bin/chromium or on PATH: run `apt-get install -y chromium` \
         (or set BRIEFING_SKIP_BROWSER=1 to skip this test)"
    );
    found
}

/// Headless Chromium as these tests run it: no sandbox (root in CI), no
/// background network (the machine is offline), local files may load each
/// other, a fresh profile in `profile`, and an 800×1000 window.
pub fn headless(chromium: &Path, profile: &Path) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",
        "--window-size=800,1000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}
