//! Per-recipient cost of building complete MIME messages from a rendered
//! issue, against a reference that builds each message from scratch with
//! lettre (filling the templates and quoted-printable encoding both bodies
//! per recipient). Run with `cargo bench --bench compose`; `benches/run.sh`
//! runs it with the other figures.

use std::path::Path;
use std::time::{Instant, SystemTime};

use briefing::audience::recipient::Recipient;
use briefing::audience::token::Secret;
use briefing::config::Config;
use briefing::deliver::dkim::Signer;
use briefing::deliver::message::{Personal, PreparedIssue, Sender};

fn main() {
    // BENCH_recipients and BENCH_ONLY_OURS shrink the run for profilers.
    let recipients: usize = std::env::var("BENCH_recipients")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let only_ours = std::env::var_os("BENCH_ONLY_OURS").is_some();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = Config::load(Some(&root.join("config.toml"))).expect("config.toml is valid");
    let loaded =
        briefing::compose::manifest::load(&root.join("issues/2025-01-17/issue.toml"), &config)
            .expect("the sample issue is valid");
    let rendered = briefing::compose::render::render(&loaded.issue);
    let sender = Sender::from_config(&config).expect("sender is valid");
    let prepared = PreparedIssue::new(&loaded.issue, &rendered, sender.clone());
    let secret = Secret::new("bench");
    let people: Vec<Recipient> = (0..recipients)
        .map(|i| {
            let mut r = Recipient::new(
                format!("reader{i}@example.org"),
                format!("Reader Nummer {i}"),
            );
            r.fields.push(("company".into(), format!("Firma {i} GmbH")));
            r
        })
        .collect();
    let date = SystemTime::now();

    // One recipient's complete message, as `send` builds it.
    let build = |r: &Recipient| {
        let token = secret.token(&config.sender.list_id, &r.email);
        let url = format!("https://briefing.example.org/unsubscribe/{token}");
        prepared
            .message(&Personal {
                recipient: r,
                unsubscribe_url: &url,
                unsubscribe_token: &token,
                message_id: prepared.new_message_id(),
                date,
                test: false,
            })
            .expect("message builds")
    };

    // briefing: shared parts encoded once, slots per recipient.
    let start = Instant::now();
    let mut bytes = 0usize;
    for r in &people {
        bytes += build(r).len();
    }
    let ours = recipients as f64 / start.elapsed().as_secs_f64();
    let avg = bytes / recipients;
    if only_ours {
        println!("briefing: {ours:.0} messages/s, {avg} bytes a message");
        return;
    }

    // Reference: the whole message built per recipient with lettre.
    let start = Instant::now();
    for r in &people {
        let token = secret.token(&config.sender.list_id, &r.email);
        let url = format!("https://briefing.example.org/unsubscribe/{token}");
        let text = rendered.text.fill(r, &url);
        let html = rendered.html.fill(r, &url);
        let m = lettre::Message::builder()
            .from(sender.from.clone())
            .to(briefing::deliver::message::mailbox(Some(&r.name), &r.email).expect("valid"))
            .subject(loaded.issue.subject.clone())
            .date(date)
            .message_id(Some(prepared.new_message_id()))
            .multipart(lettre::message::MultiPart::alternative_plain_html(
                text, html,
            ))
            .expect("message builds");
        bytes += m.formatted().len();
    }
    let reference = recipients as f64 / start.elapsed().as_secs_f64();

    println!("personalisation, {recipients} recipients, {avg} bytes a message, one core:");
    println!("  briefing (encode once, splice slots)  {ours:>10.0} messages/s   target > 20,000");
    println!(
        "  reference (lettre, full build each)   {reference:>10.0} messages/s   ratio {:.1}x",
        ours / reference
    );

    // DKIM on top (RSA-2048 + Ed25519), the other per-message CPU cost.
    let rsa =
        std::fs::read_to_string(root.join("tests/fixtures/dkim/rsa2048.pem")).expect("test key");
    let ed =
        std::fs::read_to_string(root.join("tests/fixtures/dkim/ed25519.pem")).expect("test key");
    let signer =
        Signer::new("briefing.example.org", "rsa", &rsa, Some(("ed", &ed))).expect("keys parse");
    let rsa_only = Signer::new("briefing.example.org", "rsa", &rsa, None).expect("keys parse");
    let n = 1_000;
    for (label, s) in [("RSA-2048", &rsa_only), ("RSA-2048 + Ed25519", &signer)] {
        let start = Instant::now();
        for r in people.iter().take(n) {
            let signed = s
                .sign(&build(r), jiff::Timestamp::UNIX_EPOCH)
                .expect("signs");
            bytes += signed.len();
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!("  build + DKIM {label:<19}     {rate:>10.0} messages/s");
    }
    std::hint::black_box(bytes);
}
