//! Headless Chromium for tests that need a real layout engine.

use std::path::PathBuf;

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
