//! DKIM signatures checked by an independent verifier (dkimpy, through
//! `tests/support/dkim_verify.py`), on a message built the way `briefing`
//! builds them: lettre, non-ASCII names, list headers, multipart/alternative.
//!
//! Needs `python3` with `pip install dkimpy pynacl`; without them these tests
//! fail (they do not skip), since the point is the outside opinion.
//! `BRIEFING_PYTHON` names another interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use briefing::deliver::dkim::Signer;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

const DOMAIN: &str = "briefing.example.org";
const RSA_SELECTOR: &str = "rsa2026";
const ED_SELECTOR: &str = "ed2026";
const UNSUBSCRIBE: &str = "https://briefing.example.org/unsubscribe?t=tok3n42";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkim")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).expect("fixture")
}

fn signer() -> Signer {
    Signer::new(
        DOMAIN,
        RSA_SELECTOR,
        &fixture("rsa2048.pem"),
        Some((ED_SELECTOR, &fixture("ed25519.pem"))),
    )
    .expect("fixture keys load")
}

/// A message like the ones `briefing send` produces, CRLF, unsigned.
fn message(body_lines: usize) -> Vec<u8> {
    message_with(body_lines, false, true)
}

/// [`message`] with or without the optional Reply-To and Feedback-ID.
fn message_with(body_lines: usize, reply_to: bool, feedback_id: bool) -> Vec<u8> {
    let raw = |name: &'static str, value: &str| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_owned())
    };
    let from: Mailbox = "China Brief <news@briefing.example.org>".parse().unwrap();
    let to = Mailbox::new(
        Some("Zoë Müller-Łukasiewicz 张伟".into()),
        "zoe@example.net".parse().unwrap(),
    );
    let mut text = String::from("Dear Zoë,\n\nThis week: 春节特刊 and more.\n");
    let mut html = String::from("<!doctype html><html><body><p>Dear Zoë,</p>");
    for i in 0..body_lines {
        text.push_str(&format!(
            "{i}. Trade figures for the quarter, with commentary — “quotes” and 中文.\n"
        ));
        html.push_str(&format!(
            "<p style=\"margin:0 0 12px\">{i}. Trade figures, commentary — “quotes” and 中文.</p>"
        ));
    }
    html.push_str("</body></html>");
    let mut b = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject("中国简报 第12期：春节特刊 — The China Brief")
        .date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000))
        .message_id(Some(
            "<issue-12.0123456789abcdef@briefing.example.org>".into(),
        ))
        .raw_header(raw(
            "List-Id",
            "China Brief <china-brief.briefing.example.org>",
        ))
        .raw_header(raw("List-Unsubscribe", &format!("<{UNSUBSCRIBE}>")))
        .raw_header(raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"));
    if reply_to {
        b = b.reply_to("Editors <editors@briefing.example.org>".parse().unwrap());
    }
    if feedback_id {
        b = b.raw_header(raw(
            "Feedback-ID",
            "issue12:china-brief:newsletter:briefing",
        ));
    }
    b.multipart(MultiPart::alternative_plain_html(text, html))
        .expect("message builds")
        .formatted()
}

/// One verdict line of `dkim_verify.py`.
#[derive(Debug)]
struct Verdict {
    /// Index of the message in the slice given to [`verify`].
    message: usize,
    algo: String,
    pass: bool,
    h: Vec<String>,
    line: String,
}

/// Runs the verifier on `messages` and returns its verdicts and whether it
/// exited 0 (every signature passed).
fn verify(messages: &[&[u8]]) -> (Vec<Verdict>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let path = dir.path().join(format!("{i}.eml"));
            std::fs::write(&path, m).unwrap();
            path
        })
        .collect();
    let python = std::env::var("BRIEFING_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_verify.py");
    let key = |sel: &str, file: &str| format!("{sel}={}", fixtures().join(file).display());
    let out = Command::new(&python)
        .arg(&script)
        .args(["--key", &key(RSA_SELECTOR, "rsa2048.txt")])
        .args(["--key", &key(ED_SELECTOR, "ed25519.txt")])
        .args(&files)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): install Python 3, then `pip install dkimpy pynacl`")
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0 | 1) => {}
        Some(3) => {
            panic!("the DKIM verifier needs dkimpy: run `pip install dkimpy pynacl`\n{stderr}")
        }
        other => panic!("dkim_verify.py failed ({other:?}):\n{stdout}\n{stderr}"),
    }
    let verdicts: Vec<Verdict> = stdout
        .lines()
        .map(|line| {
            // FILE IDX ALGO PASS|FAIL h=... s=... d=... [(reason)]
            let mut words = line.split_whitespace();
            let file = words.next().unwrap_or_default();
            let message = files
                .iter()
                .position(|f| f.to_str() == Some(file))
                .unwrap_or_else(|| panic!("unknown file in {line}"));
            let mut words = words.skip(1);
            let algo = words.next().unwrap_or_default().to_owned();
            let pass = words.next() == Some("PASS");
            let h = words
                .next()
                .and_then(|w| w.strip_prefix("h="))
                .unwrap_or_default()
                .split(':')
                .map(str::to_owned)
                .collect();
            Verdict {
                message,
                algo,
                pass,
                h,
                line: line.to_owned(),
            }
        })
        .collect();
    // The exit status must agree with the lines.
    assert_eq!(
        out.status.success(),
        !verdicts.is_empty() && verdicts.iter().all(|v| v.pass),
        "{stdout}{stderr}"
    );
    (verdicts, out.status.success())
}

/// Offset of the first occurrence of `needle`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not in message", String::from_utf8_lossy(needle)))
}

/// Asserts the verifier rejects every signature of `tampered`, giving
/// `reason`.
fn assert_all_fail(tampered: &[u8], what: &str, reason: &str) {
    let (verdicts, ok) = verify(&[tampered]);
    assert!(!ok, "{what}: verifier exited 0\n{verdicts:#?}");
    assert_eq!(verdicts.len(), 2, "{what}: {verdicts:#?}");
    for v in &verdicts {
        assert!(!v.pass, "{what}: {} still passes: {}", v.algo, v.line);
        assert!(
            v.line.contains(reason),
            "{what}: want {reason:?}: {}",
            v.line
        );
    }
}

#[test]
fn both_signatures_pass_an_independent_verifier() {
    let unsigned = message(40);
    let signed = signer()
        .sign(&unsigned, jiff::Timestamp::UNIX_EPOCH)
        .unwrap();
    assert!(signed.ends_with(&unsigned), "signatures are prepended only");
    let head = String::from_utf8_lossy(&signed[..signed.len() - unsigned.len()]);
    assert!(head.starts_with("DKIM-Signature: "), "{head}");
    assert!(!head.contains("l="), "no body length tag: {head}");

    let (verdicts, ok) = verify(&[&signed]);
    assert!(ok, "{verdicts:#?}");
    let algos: Vec<_> = verdicts.iter().map(|v| v.algo.as_str()).collect();
    assert_eq!(algos, ["rsa-sha256", "ed25519-sha256"], "RSA on top");
    for v in &verdicts {
        assert!(v.pass, "{}", v.line);
        for name in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
            "mime-version",
            "feedback-id",
            "content-type",
        ] {
            assert!(
                v.h.iter().any(|h| h == name),
                "{name} not signed: {}",
                v.line
            );
        }
        // Absent fields are not signed; From and the list fields are
        // oversigned (listed once more than they occur).
        assert!(!v.h.iter().any(|h| h == "reply-to"), "{}", v.line);
        for name in ["from", "list-unsubscribe", "list-unsubscribe-post"] {
            assert_eq!(v.h.iter().filter(|h| *h == name).count(), 2, "{}", v.line);
        }
    }
}

#[test]
fn header_variants_and_body_sizes_all_pass() {
    // `h=` length decides where mail-auth folds the field; each variant
    // moves the end of `b=` (see `write_field` in src/dkim.rs).
    let s = signer();
    let mut signed = Vec::new();
    for (lines, reply_to, feedback_id) in [
        (0, false, false),
        (1, true, false),
        (5, false, true),
        (300, true, true),
    ] {
        signed.push(
            s.sign(
                &message_with(lines, reply_to, feedback_id),
                jiff::Timestamp::UNIX_EPOCH,
            )
            .unwrap(),
        );
    }
    let refs: Vec<&[u8]> = signed.iter().map(Vec::as_slice).collect();
    let (verdicts, ok) = verify(&refs);
    assert!(ok, "{verdicts:#?}");
    assert_eq!(verdicts.len(), 2 * signed.len(), "{verdicts:#?}");
    for v in verdicts.iter().filter(|v| v.message == 1) {
        assert!(v.h.iter().any(|h| h == "reply-to"), "{}", v.line);
    }
}

#[test]
fn hand_written_edge_cases_pass() {
    // Whitespace runs, folded fields, a field name that merely starts like
    // a signed one, whitespace-only lines at the end of the body (mail-auth's
    // own body canonicalization gets those wrong), and an empty body.
    let edge = concat!(
        "From: \"A  B\" <a@briefing.example.org>\r\n",
        "To:   x@example.net\r\n",
        "Subject: tabs\tand   spaces  \r\n",
        "\tfolded\r\n",
        "List-Unsubscribe:\r\n",
        " <https://u.example/x>\r\n",
        "From-Not: x\r\n",
        "\r\n",
        "line with trailing space   \r\n",
        "\t leading wsp\r\n",
        "\r\n",
        "   \r\n",
        " \t\r\n",
        "\r\n",
    );
    let empty = "From: a@briefing.example.org\r\nSubject: nothing\r\n\r\n";
    let s = signer();
    let signed = [
        s.sign(edge.as_bytes(), jiff::Timestamp::UNIX_EPOCH)
            .unwrap(),
        s.sign(empty.as_bytes(), jiff::Timestamp::UNIX_EPOCH)
            .unwrap(),
    ];
    let (verdicts, ok) = verify(&[&signed[0], &signed[1]]);
    assert!(ok, "{verdicts:#?}");
    assert_eq!(verdicts.len(), 4, "{verdicts:#?}");
    assert!(
        verdicts
            .iter()
            .all(|v| !v.h.iter().any(|h| h == "from-not"))
    );
}

#[test]
fn relaxed_canonicalization_survives_refolding() {
    let signed = signer()
        .sign(&message(3), jiff::Timestamp::UNIX_EPOCH)
        .unwrap();
    // What a relay may do: change the whitespace after a colon.
    let at = find(&signed, b"List-Id: ") + b"List-Id:".len();
    let mut refolded = signed[..at].to_vec();
    refolded.extend_from_slice(b"   \r\n\t");
    refolded.extend_from_slice(&signed[at + 1..]);
    let (verdicts, ok) = verify(&[&refolded]);
    assert!(ok, "{verdicts:#?}");
}

#[test]
fn changed_subject_fails() {
    let mut signed = signer()
        .sign(&message(3), jiff::Timestamp::UNIX_EPOCH)
        .unwrap();
    // The encoded word's first base64 character after `?b?`.
    let at = find(&signed, b"\r\nSubject: ");
    let at = at + find(&signed[at..], b"?b?") + 3;
    signed[at] = if signed[at] == b'A' { b'B' } else { b'A' };
    assert_all_fail(&signed, "changed Subject", "signature does not verify");
}

#[test]
fn changed_unsubscribe_url_fails() {
    let mut signed = signer()
        .sign(&message(3), jiff::Timestamp::UNIX_EPOCH)
        .unwrap();
    let at = find(&signed, b"tok3n42") + 6;
    signed[at] = b'3';
    assert_all_fail(
        &signed,
        "changed List-Unsubscribe",
        "signature does not verify",
    );
}

#[test]
fn changed_body_fails() {
    let mut signed = signer()
        .sign(&message(3), jiff::Timestamp::UNIX_EPOCH)
        .unwrap();
    let at = find(&signed, b"Trade figures") + 1;
    signed[at] = b'X';
    assert_all_fail(&signed, "changed body", "body hash mismatch");
}

#[test]
fn added_second_list_unsubscribe_fails() {
    // Oversigning: a second instance of a signed field breaks the signature.
    let signed = signer()
        .sign(&message(3), jiff::Timestamp::UNIX_EPOCH)
        .unwrap();
    let at = find(&signed, b"\r\n\r\n") + 2;
    let mut tampered = signed[..at].to_vec();
    tampered.extend_from_slice(b"List-Unsubscribe: <https://evil.example/u>\r\n");
    tampered.extend_from_slice(&signed[at..]);
    assert_all_fail(
        &tampered,
        "added List-Unsubscribe",
        "signature does not verify",
    );
}

#[test]
fn rsa_only_signer_adds_one_signature() {
    let s = Signer::new(DOMAIN, RSA_SELECTOR, &fixture("rsa2048-pkcs8.pem"), None).unwrap();
    let signed = s.sign(&message(3), jiff::Timestamp::UNIX_EPOCH).unwrap();
    let (verdicts, ok) = verify(&[&signed]);
    assert!(ok, "{verdicts:#?}");
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].algo, "rsa-sha256");
}

/// Signatures per second. Run in release mode:
/// `cargo test --release --test dkim -- --ignored --nocapture throughput`
#[test]
#[ignore = "benchmark; run by hand in release mode"]
fn throughput() {
    use base64::Engine;
    use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
    use mail_auth::dkim::DkimSigner;

    fn rate(label: &str, msg: &[u8], mut f: impl FnMut(&[u8])) {
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < Duration::from_secs(2) {
            f(msg);
            n += 1;
        }
        let per_s = f64::from(n) / start.elapsed().as_secs_f64();
        println!("{label:<48} {:>6} KB  {per_s:>9.0}/s", msg.len() / 1024);
    }

    let both = signer();
    let rsa_only = Signer::new(DOMAIN, RSA_SELECTOR, &fixture("rsa2048.pem"), None).unwrap();
    // mail-auth DkimSigner directly: the baseline, and the only way to time
    // Ed25519 alone (Signer always includes RSA).
    let der = fixture("rsa2048.pem")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    let raw_rsa = DkimSigner::from_key(
        RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs1(der.clone().into()))
            .unwrap(),
    )
    .domain(DOMAIN)
    .selector(RSA_SELECTOR)
    .headers(["from", "to", "subject", "list-unsubscribe"]);
    let ed_der = fixture("ed25519.pem")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let ed_der = base64::engine::general_purpose::STANDARD
        .decode(ed_der)
        .unwrap();
    let raw_ed = DkimSigner::from_key(Ed25519Key::from_pkcs8_maybe_unchecked_der(&ed_der).unwrap())
        .domain(DOMAIN)
        .selector(ED_SELECTOR)
        .headers(["from", "to", "subject", "list-unsubscribe"]);

    for lines in [0, 400] {
        let msg = message(lines);
        rate("Signer RSA-2048", &msg, |m| {
            rsa_only.sign(m, jiff::Timestamp::UNIX_EPOCH).unwrap();
        });
        rate("Signer RSA-2048 + Ed25519", &msg, |m| {
            both.sign(m, jiff::Timestamp::UNIX_EPOCH).unwrap();
        });
        rate("mail-auth DkimSigner RSA-2048 alone", &msg, |m| {
            raw_rsa.sign(m).unwrap();
        });
        rate("mail-auth DkimSigner Ed25519 alone", &msg, |m| {
            raw_ed.sign(m).unwrap();
        });
    }
}
