//! Blocks for some readers: the sample issue's last news item is
//! `only_for = { plan = "premium" }`. A premium reader's preview holds it
//! in both parts; a free reader's holds no trace of it; `check` refuses a
//! condition on a column no list has, at its line; the archive shows what
//! every reader sees.

mod support;

use std::path::Path;
use std::process::Command;

use mail_parser::MessageParser;
use support::cli::{Out, repo, run};

const SAMPLE: &str = "issues/2025-01-17/issue.toml";
const PREMIUM_TITLE: &str = "Quake in Tibet leaves five dams damaged";

fn briefing(args: &[&str]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_briefing"));
    cmd.current_dir(repo())
        .env_remove("BRIEFING_NOW")
        .env_remove("BRIEFING_CONFIG")
        .args(["--config", "config.toml"])
        .args(args);
    run(cmd)
}

/// The text and HTML parts of the preview `.eml` for one reader.
fn preview_for(email: &str, out: &Path) -> (String, String) {
    let o = briefing(&[
        "preview",
        SAMPLE,
        "--out",
        out.to_str().unwrap(),
        "--recipient",
        email,
    ]);
    assert_eq!(o.code, Some(0), "{o}");
    let raw = std::fs::read(out.join("2025-01-17.eml")).unwrap();
    let msg = MessageParser::default()
        .parse(&raw)
        .expect("a MIME message");
    let text = msg.body_text(0).unwrap().into_owned();
    let html = msg.body_html(0).unwrap().into_owned();
    (text, html)
}

/// The `[n]` references of a text part, in order of first use.
fn references(text: &str) -> Vec<u32> {
    let mut seen = Vec::new();
    for part in text.split('[').skip(1) {
        if let Some((n, _)) = part.split_once(']')
            && let Ok(n) = n.parse::<u32>()
            && !seen.contains(&n)
        {
            seen.push(n);
        }
    }
    seen
}

#[test]
fn premium_readers_get_the_block_and_free_readers_no_trace_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let (text, html) = preview_for("anna.keller@example.org", dir.path());
    assert!(text.contains(PREMIUM_TITLE) && html.contains(PREMIUM_TITLE));

    let (text, html) = preview_for("zoe.brandt@example.org", dir.path());
    assert!(
        !text.contains(PREMIUM_TITLE),
        "free text part has the block"
    );
    assert!(
        !html.contains(PREMIUM_TITLE),
        "free HTML part has the block"
    );
    assert!(!html.contains("hydropower reservoirs"), "nor its body");
    let refs = references(&text);
    let want: Vec<u32> = (1..=refs.len() as u32).collect();
    assert_eq!(refs, want, "link numbers run on without a gap");
}

#[test]
fn a_condition_on_a_column_no_list_has_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("no-plan.csv");
    std::fs::write(&list, "email,name\na@example.org,A\n").unwrap();
    let config = dir.path().join("config.toml");
    support::cli::write_config(
        &config,
        &[("lists", format!("[{}]", support::cli::toml_path(&list)))],
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_briefing"));
    cmd.current_dir(repo())
        .args(["--config", config.to_str().unwrap(), "check", SAMPLE]);
    let o = run(cmd);
    assert_eq!(o.code, Some(2), "{o}");
    let line = std::fs::read_to_string(repo().join(SAMPLE))
        .unwrap()
        .lines()
        .position(|l| l.starts_with("only_for"))
        .unwrap()
        + 1;
    assert!(
        o.stderr.contains(&format!("issue.toml:{line}:"))
            && o.stderr.contains("no recipient list has a `plan` column"),
        "{o}"
    );
}

#[test]
fn the_archive_shows_what_every_reader_sees() {
    let dir = tempfile::tempdir().unwrap();
    let o = briefing(&["archive", "--all", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{o}");
    let page = std::fs::read_to_string(dir.path().join("2025-01-17/index.html")).unwrap();
    assert!(
        !page.contains(PREMIUM_TITLE),
        "a premium block on the public page"
    );
    assert!(page.contains("Apple"), "the other news items are there");
}

#[test]
fn a_send_over_smtp_gives_each_reader_their_variant_exactly_once() {
    let server = support::SmtpServer::start(support::ServerOptions::new());
    let dir = tempfile::tempdir().unwrap();
    let world =
        support::cli::outbox_config(dir.path(), &[], &[("url", format!("\"{}\"", server.url()))]);
    let mut csv = String::from("email,name,plan\n");
    for i in 0..12usize {
        let plan = if i.is_multiple_of(3) {
            "premium"
        } else {
            "free"
        };
        csv.push_str(&format!("{},Reader {i},{plan}\n", support::cli::email(i)));
    }
    std::fs::write(dir.path().join("list.csv"), csv).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_briefing"));
    cmd.current_dir(repo())
        .env_remove("BRIEFING_NOW")
        .env("BRIEFING_UNSUBSCRIBE_SECRET", "variants-test-secret")
        .args([
            "--config",
            world.config.to_str().unwrap(),
            "send",
            SAMPLE,
            "--yes",
        ]);
    let o = run(cmd);
    assert_eq!(o.code, Some(0), "{o}");
    assert!(o.stdout.contains("variants: 2 versions"), "{o}");
    let got = server.received();
    assert_eq!(got.len(), 12, "one message per reader");
    let mut seen = std::collections::BTreeSet::new();
    for r in &got {
        let to = r.envelope.rcpt_tos[0].to_lowercase();
        assert!(seen.insert(to.clone()), "{to} got the issue twice");
        let i: usize = to
            .trim_start_matches("reader")
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let msg = MessageParser::default()
            .parse(&r.raw)
            .expect("a MIME message");
        let text = msg.body_text(0).unwrap();
        let html = msg.body_html(0).unwrap();
        let premium = i.is_multiple_of(3);
        assert_eq!(text.contains(PREMIUM_TITLE), premium, "{to}: text part");
        assert_eq!(html.contains(PREMIUM_TITLE), premium, "{to}: HTML part");
    }
}
