//! Self-tests of the SMTP test harness (tests/support): a real aiosmtpd
//! server in a subprocess, driven by lettre as the client.
//!
//! No test sleeps to synchronise: the server stores a message before it
//! answers 250, so after a successful send it is already in `received()`.

mod support;

use std::time::Duration;

use lettre::message::{Mailbox, Message, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use support::{Envelope, ServerOptions, SmtpServer};

const FROM: &str = "news@briefing.example.org";

fn plain_transport(server: &SmtpServer) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port)
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

fn tls_transport(
    server: &SmtpServer,
    credentials: Option<Credentials>,
) -> AsyncSmtpTransport<Tokio1Executor> {
    let ca = Certificate::from_pem(&support::ca_pem()).expect("test CA parses");
    let tls = TlsParameters::builder("localhost".to_string())
        .add_root_certificate(ca)
        .build_rustls()
        .expect("TLS parameters");
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port)
        .timeout(Some(Duration::from_secs(10)))
        .tls(Tls::Required(tls));
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    builder.build()
}

fn message(to: &str, subject: &str) -> Message {
    Message::builder()
        .from(Mailbox::new(
            Some("China Brief".into()),
            FROM.parse().unwrap(),
        ))
        .to(to.parse().unwrap())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        // ASCII only, so it goes as 7bit and the leading dot must be dot-stuffed.
        .body(format!("Hello {to},\r\n.leading dot\r\n"))
        .unwrap()
}

fn envelope(to: &str) -> Envelope {
    Envelope {
        mail_from: FROM.into(),
        rcpt_tos: vec![to.into()],
        peer: None,
        tls: false,
        auth_user: None,
        dropped: false,
    }
}

/// The envelope without the (random) peer port.
fn without_peer(mut env: Envelope) -> Envelope {
    let peer = env.peer.take().expect("peer recorded");
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    env
}

#[tokio::test]
async fn plain_smtp_stores_messages_in_order_with_envelopes() {
    let server = SmtpServer::start(ServerOptions::new());
    assert_eq!(
        server.url(),
        format!("smtp://127.0.0.1:{}?tls=none", server.port)
    );
    let transport = plain_transport(&server);
    let recipients = ["ada@example.org", "grace@example.org", "linus@example.org"];
    for (i, to) in recipients.iter().enumerate() {
        let subject = format!("Grüße aus 北京 — Ausgabe {}", i + 1);
        transport
            .send(message(to, &subject))
            .await
            .unwrap_or_else(|e| panic!("send to {to}: {e}\n{}", server.log()));
    }

    let got = server.received();
    assert_eq!(got.len(), 3, "{}", server.log());
    for (i, (received, to)) in got.iter().zip(recipients).enumerate() {
        assert_eq!(received.seq, i as u64 + 1);
        assert_eq!(without_peer(received.envelope.clone()), envelope(to));
        let msg = received.parsed();
        assert_eq!(
            msg.subject(),
            Some(format!("Grüße aus 北京 — Ausgabe {}", i + 1).as_str())
        );
        // header() gives the raw (still encoded) text; the subject is non-ASCII.
        let raw_subject = support::header(&msg, "subject").unwrap();
        assert!(raw_subject.starts_with("=?utf-8?"), "{raw_subject}");
        assert_eq!(
            support::header(&msg, "To").as_deref(),
            Some(to),
            "{}",
            received.text()
        );
        let text = support::text_part(&msg);
        assert!(text.contains(&format!("Hello {to},")), "{text}");
        // Dot-stuffing was undone by the server.
        assert!(text.contains("\n.leading dot"), "{text}");
        assert!(received.text().contains("\r\n.leading dot\r\n"));
        assert!(!support::has_bare_line_ending(&received.raw));
        assert!(
            support::max_line_len(&received.raw) <= 78,
            "{}",
            received.text()
        );
    }
    // Already stored, so this returns at once.
    assert_eq!(server.wait_for_count(3, Duration::from_secs(5)).len(), 3);
}

#[tokio::test]
async fn tempfail_first_fails_once_then_accepts() {
    let flaky = "flaky@example.org";
    let server = SmtpServer::start(ServerOptions::new().tempfail_first(vec![flaky.into()]));
    let transport = plain_transport(&server);

    // Unlisted addresses are unaffected.
    transport
        .send(message("ok@example.org", "first"))
        .await
        .unwrap();

    let err = transport
        .send(message(flaky, "try 1"))
        .await
        .expect_err("first attempt must be deferred");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(451), "{err}");
    assert!(err.to_string().contains("4.3.0 Try again later"), "{err}");

    transport.send(message(flaky, "try 2")).await.unwrap();
    transport.send(message(flaky, "try 3")).await.unwrap();

    let got = server.received();
    let subjects: Vec<_> = got
        .iter()
        .map(|r| r.parsed().subject().unwrap().to_string())
        .collect();
    assert_eq!(subjects, ["first", "try 2", "try 3"]);
    assert_eq!(got[1].envelope.rcpt_tos, [flaky]);
}

#[tokio::test]
async fn reject_is_permanent_550() {
    let gone = "gone@example.org";
    let server = SmtpServer::start(ServerOptions::new().reject(vec![gone.into()]));
    let transport = plain_transport(&server);

    for _ in 0..2 {
        let err = transport
            .send(message(gone, "never"))
            .await
            .expect_err("rejected recipient");
        assert!(err.is_permanent(), "{err:?}");
        assert_eq!(err.status().map(u16::from), Some(550), "{err}");
        assert!(
            err.to_string()
                .contains("5.1.1 <gone@example.org>: Recipient address rejected: User unknown"),
            "{err}"
        );
    }
    transport
        .send(message("here@example.org", "fine"))
        .await
        .unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.rcpt_tos, ["here@example.org"]);
}

#[tokio::test]
async fn drop_every_resets_the_connection_and_stores_nothing() {
    let server = SmtpServer::start(ServerOptions::new().drop_every(2));
    let transport = plain_transport(&server);

    transport
        .send(message("a@example.org", "one"))
        .await
        .unwrap();
    let err = transport
        .send(message("b@example.org", "two"))
        .await
        .expect_err("DATA #2 is dropped");
    // No SMTP reply at all: neither a transient nor a permanent status.
    assert!(!err.is_transient() && !err.is_permanent(), "{err:?}");
    assert_eq!(err.status(), None, "{err:?}");
    assert_eq!(
        server.received().len(),
        1,
        "dropped message must not be stored"
    );

    // The retry is DATA #3 on a new connection: stored. DATA #4 drops again.
    transport
        .send(message("b@example.org", "two"))
        .await
        .unwrap();
    transport
        .send(message("c@example.org", "three"))
        .await
        .expect_err("DATA #4 is dropped");

    let got = server.received();
    let rcpts: Vec<_> = got
        .iter()
        .map(|r| r.envelope.rcpt_tos[0].as_str())
        .collect();
    assert_eq!(rcpts, ["a@example.org", "b@example.org"]);
}

#[tokio::test]
async fn starttls_and_auth_record_tls_and_user() {
    let server = SmtpServer::start(
        ServerOptions::new()
            .starttls(true)
            .auth("sender", "s3cret pass"),
    );
    assert_eq!(
        server.url(),
        format!("smtp://127.0.0.1:{}?tls=starttls", server.port)
    );
    let (user, pass) = server.credentials().unwrap();
    let transport = tls_transport(
        &server,
        Some(Credentials::new(user.to_string(), pass.to_string())),
    );
    transport
        .send(message("secure@example.org", "über TLS"))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", server.log()));

    let got = server.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].envelope.tls);
    assert_eq!(got[0].envelope.auth_user.as_deref(), Some("sender"));
    assert_eq!(got[0].parsed().subject(), Some("über TLS"));

    let wrong = tls_transport(
        &server,
        Some(Credentials::new("sender".into(), "wrong".into())),
    );
    let err = wrong
        .send(message("secure@example.org", "nope"))
        .await
        .expect_err("wrong password");
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(535), "{err}");

    let anonymous = tls_transport(&server, None);
    let err = anonymous
        .send(message("secure@example.org", "nope"))
        .await
        .expect_err("AUTH required");
    assert_eq!(err.status().map(u16::from), Some(530), "{err}");
    assert!(err.to_string().contains("Authentication required"), "{err}");
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn require_tls_refuses_mail_in_plain_text() {
    let server = SmtpServer::start(ServerOptions::new().starttls(true));
    let err = plain_transport(&server)
        .send(message("a@example.org", "plain"))
        .await
        .expect_err("MAIL before STARTTLS");
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.to_string()
            .contains("5.7.0 Must issue a STARTTLS command first"),
        "{err}"
    );

    tls_transport(&server, None)
        .send(message("a@example.org", "tls"))
        .await
        .unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].envelope.tls);
    assert_eq!(got[0].envelope.auth_user, None);
}

#[tokio::test]
async fn auth_without_starttls_works_in_plain_text() {
    let server = SmtpServer::start(ServerOptions::new().auth("plain", "pw"));
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port)
        .credentials(Credentials::new("plain".into(), "pw".into()))
        .build();
    transport
        .send(message("a@example.org", "auth"))
        .await
        .unwrap();
    let got = server.received();
    assert_eq!(got[0].envelope.auth_user.as_deref(), Some("plain"));
    assert!(!got[0].envelope.tls);
}

#[tokio::test]
async fn slow_reply_lets_a_client_give_up_and_the_abandoned_message_is_not_stored() {
    let server = SmtpServer::start(ServerOptions::new().slow_ms(1500));
    // lettre's own `timeout` only covers connecting in the async transport,
    // so give up the way an interrupted sender would: drop the send future,
    // which closes the connection while the server is delaying its reply.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        plain_transport(&server).send(message("a@example.org", "abandoned")),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "the reply must come after 300 ms: {gave_up:?}"
    );

    // The server saw the client hang up during the delay and discarded that
    // message; the next one waits out the delay and is stored.
    let started = std::time::Instant::now();
    plain_transport(&server)
        .send(message("b@example.org", "patient"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let got = server.received();
    assert_eq!(got.len(), 1, "{}", server.log());
    assert_eq!(got[0].envelope.rcpt_tos, ["b@example.org"]);
}

#[test]
fn helpers_measure_lines_and_headers() {
    assert_eq!(support::max_line_len(b"ab\r\nabcd\r\n\r\nx"), 4);
    assert_eq!(support::max_line_len(b""), 0);
    assert!(support::has_bare_line_ending(b"a\r\nb\nc"));
    assert!(support::has_bare_line_ending(b"a\rb"));
    assert!(!support::has_bare_line_ending(b"a\r\nb\r\n"));

    let raw = b"Subject: a\r\n folded\r\n\tsubject\r\nX-Two: 1\r\nx-two: 2\r\n\r\nbody\r\n";
    let msg = mail_parser::MessageParser::default().parse(raw).unwrap();
    assert_eq!(
        support::header(&msg, "SUBJECT").as_deref(),
        Some("a folded\tsubject")
    );
    assert_eq!(support::header_all(&msg, "x-two"), ["1", "2"]);
    assert_eq!(support::header(&msg, "missing"), None);
}
