//! How messages leave: an outbox folder, SMTP (with STARTTLS or implicit
//! TLS) or the local sendmail.
//!
//! SMTP connections are opened here rather than by lettre's pool: lettre
//! never sets TCP_NODELAY, and its end-of-data write then waits on Nagle plus
//! the server's delayed ACK (about 40 ms a message). Each send worker owns one
//! [`Connection`] and reconnects it when it breaks.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use crate::config::Config;

/// Why a transport URL or its settings are unusable.
#[derive(Debug, thiserror::Error)]
#[error("transport `{url}`: {message}")]
pub struct TransportError {
    /// The URL as given (without any password).
    pub url: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// How SMTP is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// STARTTLS, and refuse to go on without it.
    Required,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// TLS from the first byte (smtps, port 465).
    Implicit,
    /// No TLS at all: loopback hosts only.
    None,
}

/// SMTP settings, resolved from URL and config.
#[derive(Clone)]
pub struct SmtpSettings {
    /// Server host name or IP.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS mode.
    pub tls: Tls,
    /// User and password, if the server wants AUTH.
    pub credentials: Option<Credentials>,
    /// Extra CA certificate (PEM) to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// Timeout per command.
    pub timeout: Duration,
    /// Messages over one connection before it is renewed.
    pub per_connection: usize,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("auth", &self.credentials.is_some())
            .finish()
    }
}

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Transport {
    /// One `.eml` per recipient under `DIR/<issue-slug>/`.
    Outbox(PathBuf),
    /// An SMTP server.
    Smtp(SmtpSettings),
    /// The local MTA's sendmail program.
    Sendmail(PathBuf),
    /// Nowhere (dry runs): everything is accepted.
    Null,
}

impl Transport {
    /// Parses a transport URL with the config's transport settings.
    pub fn from_url(url: &str, config: &Config) -> Result<Self, TransportError> {
        let bad = |message: String| TransportError {
            url: redact(url),
            message,
        };
        if let Some(dir) = url.strip_prefix("outbox:") {
            let dir = dir.trim();
            if dir.is_empty() {
                return Err(bad("no folder, expected outbox:DIR".into()));
            }
            let dir = config.resolve(Path::new(dir));
            // Two newsletters may both have an issue `2025-01-17`.
            return Ok(Transport::Outbox(match &config.own_id {
                Some(id) => dir.join(id),
                None => dir,
            }));
        }
        if let Some(path) = url.strip_prefix("sendmail:") {
            let path = if path.trim().is_empty() {
                "/usr/sbin/sendmail"
            } else {
                path.trim()
            };
            return Ok(Transport::Sendmail(PathBuf::from(path)));
        }
        let parsed = url::Url::parse(url).map_err(|e| {
            bad(format!(
                "not a transport URL ({e}); expected outbox:DIR, smtp://host:port, smtps://host:port or sendmail:/usr/sbin/sendmail"
            ))
        })?;
        smtp_settings(&parsed, config)
            .map(Transport::Smtp)
            .map_err(bad)
    }

    /// A description for confirmations and logs (never with a password).
    pub fn describe(&self) -> String {
        match self {
            Transport::Outbox(d) => format!("outbox {}", d.display()),
            Transport::Smtp(s) => format!(
                "SMTP {}:{} ({}{})",
                s.host,
                s.port,
                match s.tls {
                    Tls::Required => "STARTTLS required",
                    Tls::Opportunistic => "STARTTLS if offered",
                    Tls::Implicit => "implicit TLS",
                    Tls::None => "no TLS, loopback",
                },
                if s.credentials.is_some() {
                    ", AUTH"
                } else {
                    ""
                }
            ),
            Transport::Sendmail(p) => format!("sendmail {}", p.display()),
            Transport::Null => "nowhere (dry run)".into(),
        }
    }

    /// A fresh connection for one worker (opened lazily on first send).
    pub fn connection(&self, folder: &str) -> Connection {
        match self {
            Transport::Outbox(d) => Connection::Outbox(d.join(folder)),
            Transport::Smtp(s) => Connection::Smtp(Box::new(SmtpSession {
                settings: s.clone(),
                conn: None,
                sent: 0,
                pipelining: false,
                data: String::new(),
            })),
            Transport::Sendmail(p) => Connection::Sendmail(p.clone()),
            Transport::Null => Connection::Null,
        }
    }
}

/// The SMTP settings of an `smtp://` or `smtps://` URL; the error says
/// what is wrong with it.
fn smtp_settings(parsed: &url::Url, config: &Config) -> Result<SmtpSettings, String> {
    let implicit = match parsed.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => {
            return Err(format!(
                "unknown scheme `{other}`, expected outbox:, smtp://, smtps:// or sendmail:"
            ));
        }
    };
    if parsed.password().is_some() {
        return Err(
            "a password in the URL would end up in shell history and logs; expected it in the \
             environment variable named by transport.password_env (default BRIEFING_SMTP_PASSWORD) \
             or in transport.password_file"
                .into(),
        );
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "no host, expected smtp://host:port".to_string())?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed.port().unwrap_or(if implicit { 465 } else { 587 });
    let tls = tls_mode(parsed, implicit)?;
    if tls == Tls::None && !is_loopback(&host) {
        return Err(format!(
            "tls=none to {host} would send passwords and subscriber data in clear text; \
             it is allowed only for loopback hosts (127.0.0.1, ::1, localhost)"
        ));
    }
    let t = &config.transport;
    Ok(SmtpSettings {
        host,
        port,
        tls,
        credentials: credentials(parsed, config)?,
        ca_pem: ca_pem(config)?,
        timeout: Duration::from_secs(t.timeout_seconds.max(1)),
        per_connection: t.messages_per_connection.max(1),
    })
}

/// The TLS mode: implicit for smtps, else the `tls=` parameter (default
/// `required`); any other parameter is an error.
fn tls_mode(parsed: &url::Url, implicit: bool) -> Result<Tls, String> {
    let mut tls = if implicit {
        Tls::Implicit
    } else {
        Tls::Required
    };
    for (k, v) in parsed.query_pairs() {
        match (k.as_ref(), v.as_ref()) {
            ("tls", _) if implicit => {
                return Err("smtps:// always uses TLS; drop the tls parameter".into());
            }
            ("tls", "starttls") => tls = Tls::Opportunistic,
            ("tls", "required") => tls = Tls::Required,
            ("tls", "none") => tls = Tls::None,
            ("tls", other) => {
                return Err(format!(
                    "tls={other}, expected tls=starttls, tls=required or tls=none"
                ));
            }
            (other, _) => return Err(format!("unknown parameter `{other}`, expected tls=…")),
        }
    }
    Ok(tls)
}

/// User (from the URL or `transport.username`) and password, if a user is
/// set.
fn credentials(parsed: &url::Url, config: &Config) -> Result<Option<Credentials>, String> {
    let user = if parsed.username().is_empty() {
        config.transport.username.clone()
    } else {
        Some(
            percent_decode(parsed.username())
                .map_err(|e| format!("user name is not valid UTF-8 ({e})"))?,
        )
    };
    match user {
        None => Ok(None),
        Some(user) => Ok(Some(Credentials::new(user, password(config)?))),
    }
}

/// The contents of `transport.ca_file`, if set.
fn ca_pem(config: &Config) -> Result<Option<Vec<u8>>, String> {
    let Some(p) = &config.transport.ca_file else {
        return Ok(None);
    };
    let path = config.resolve(p);
    std::fs::read(&path)
        .map(Some)
        .map_err(|e| format!("cannot read transport.ca_file {}: {e}", path.display()))
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn percent_decode(s: &str) -> Result<String, std::str::Utf8Error> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The SMTP password: from the variable in `transport.password_env`
/// (default `BRIEFING_SMTP_PASSWORD`) or the first line of
/// `transport.password_file`.
fn password(config: &Config) -> Result<String, String> {
    let var = config
        .transport
        .password_env
        .clone()
        .unwrap_or_else(|| "BRIEFING_SMTP_PASSWORD".into());
    if let Ok(v) = std::env::var(&var)
        && !v.is_empty()
    {
        return Ok(v);
    }
    if let Some(p) = &config.transport.password_file {
        let path = config.resolve(p);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read transport.password_file {}: {e}",
                path.display()
            )
        })?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    Err(format!(
        "a user name is set but no password: expected it in the environment variable {var} or in transport.password_file"
    ))
}

/// How a delivery attempt went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// Worth retrying: a 4xx reply, or the connection failed before the
    /// end of data was written (so the server cannot have the message).
    Transient(String),
    /// Refused for good (5xx); `unknown_user` for 5.1.1-style replies.
    Permanent {
        /// The server's reply.
        reply: String,
        /// The mailbox does not exist: suppress the address.
        unknown_user: bool,
    },
    /// The end of data was written but no reply came (timeout, reset,
    /// EOF): the server may have the message. Never retried by itself.
    Lost(String),
    /// The relay cannot be reached or will not open a session now
    /// (connection refused, DNS, TLS handshake, 421 at greeting, AUTH 4xx,
    /// a timeout before MAIL FROM): the message never reached it, and the
    /// next one would fare no better. The send pauses and backs off.
    Outage(String),
    /// The transport itself is unusable (a certificate or password the
    /// server refuses, no STARTTLS, outbox not writable): stop the send.
    Fatal(String),
    /// The end-of-data mark could not be recorded, so the message was
    /// abandoned before its final `.`: stop the send.
    Unmarked(String),
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliveryError::Transient(s)
            | DeliveryError::Lost(s)
            | DeliveryError::Outage(s)
            | DeliveryError::Fatal(s)
            | DeliveryError::Unmarked(s) => f.write_str(s),
            DeliveryError::Permanent { reply, .. } => f.write_str(reply),
        }
    }
}

/// One worker's link to the transport.
pub enum Connection {
    /// Writes files into this folder.
    Outbox(PathBuf),
    /// An SMTP session, opened on demand (boxed: it is large and most
    /// connections of other kinds never hold one).
    Smtp(Box<SmtpSession>),
    /// Hands each message to sendmail.
    Sendmail(PathBuf),
    /// Accepts everything.
    Null,
}

impl Connection {
    /// Delivers one message; `name` names the outbox file. `mark` is called
    /// (and awaited) just before the message becomes deliverable: before
    /// SMTP's final `.`, before sendmail gets it. Outbox files are
    /// rewritten under the same name on a retry, so they need no mark.
    /// `message` comes in pieces written one after the other (the DKIM
    /// fields, then the message they sign). Returns the server's reply.
    pub async fn send<F, Fut, E>(
        &mut self,
        envelope: &Envelope,
        message: &[&[u8]],
        name: &str,
        mark: F,
    ) -> Result<String, DeliveryError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        match self {
            Connection::Null => Ok("250 dry run".into()),
            Connection::Outbox(dir) => write_outbox(dir, name, message).await,
            Connection::Sendmail(path) => {
                mark().await.map_err(unmarked)?;
                sendmail(path, envelope, &message.concat()).await
            }
            Connection::Smtp(session) => session.send(envelope, message, mark).await,
        }
    }

    /// Ends the session politely.
    pub async fn close(&mut self) {
        if let Connection::Smtp(session) = self {
            session.close().await;
        }
    }
}

fn unmarked(e: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::Unmarked(format!(
        "{e}; the message was abandoned before its end of data"
    ))
}

async fn sendmail(
    path: &Path,
    envelope: &Envelope,
    message: &[u8],
) -> Result<String, DeliveryError> {
    use lettre::AsyncTransport;
    let t = lettre::AsyncSendmailTransport::<lettre::Tokio1Executor>::new_with_command(
        path.as_os_str(),
    );
    // sendmail exits non-zero when it did not queue the message: a failed
    // try, not a lost one.
    t.send_raw(envelope, message)
        .await
        .map(|()| "accepted by sendmail".to_string())
        .map_err(|e| DeliveryError::Transient(format!("sendmail: {e}")))
}

/// One worker's SMTP session to the relay, opened on first use and renewed
/// when broken or after `per_connection` messages.
pub struct SmtpSession {
    settings: SmtpSettings,
    conn: Option<Box<AsyncSmtpConnection>>,
    sent: usize,
    /// The server offered PIPELINING (RFC 2920) on this connection.
    pipelining: bool,
    /// The dot-stuffed DATA of the current message, kept between messages
    /// so a 90 KB buffer is not allocated (and its pages faulted in) anew
    /// for each one.
    data: String,
}

/// How far a transaction got: what a failure can have left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// MAIL, RCPT, DATA: nothing deliverable yet.
    Envelope,
    /// The end-of-data mark is being recorded; the message not finished.
    Marking,
    /// The message and its final `.` are being written, or were: the
    /// server may have it.
    Content,
}

/// Why a transaction failed.
enum TxError {
    Smtp(lettre::transport::smtp::Error),
    Unmarked(String),
    /// A pipelined envelope was refused, yet the server answered DATA with
    /// 354: it now reads message text, so the session cannot be reused.
    Desync(lettre::transport::smtp::Error),
}

impl SmtpSession {
    async fn send<F, Fut, E>(
        &mut self,
        envelope: &Envelope,
        message: &[&[u8]],
        mark: F,
    ) -> Result<String, DeliveryError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        self.renew().await?;
        let Some(c) = self.conn.as_mut() else {
            return Err(DeliveryError::Outage("no connection".into()));
        };
        let limit = self.settings.timeout * 4;
        let mut phase = Phase::Envelope;
        let tx = Tx {
            envelope,
            message,
            pipelining: self.pipelining,
            data: &mut self.data,
        };
        let result = tokio::time::timeout(limit, transaction(c, tx, &mut phase, mark)).await;
        match result {
            Ok(Ok(resp)) => {
                self.sent += 1;
                Ok(format!(
                    "{} {}",
                    resp.code(),
                    resp.message().collect::<Vec<_>>().join(" ")
                ))
            }
            Ok(Err(TxError::Unmarked(e))) => {
                // In DATA there is no way back but dropping the connection,
                // which makes the server discard the unfinished message.
                self.conn = None;
                Err(unmarked(e))
            }
            Ok(Err(TxError::Smtp(e))) => Err(self.failed(&e, phase).await),
            Ok(Err(TxError::Desync(e))) => {
                self.conn = None;
                Err(classify(&e, phase))
            }
            Err(_) => {
                self.conn = None;
                let what = format!(
                    "no reply from {}:{} within {} s",
                    self.settings.host,
                    self.settings.port,
                    limit.as_secs()
                );
                Err(match phase {
                    Phase::Content => DeliveryError::Lost(format!("{what} after the end of data")),
                    _ => DeliveryError::Transient(what),
                })
            }
        }
    }

    /// A connection that can take the next message: the current one, or a
    /// new one when there is none, it broke, or it carried its share.
    async fn renew(&mut self) -> Result<(), DeliveryError> {
        if self
            .conn
            .as_ref()
            .is_some_and(|c| c.has_broken() || self.sent >= self.settings.per_connection)
            && let Some(mut c) = self.conn.take()
        {
            let _ = tokio::time::timeout(self.settings.timeout, c.quit()).await;
        }
        if self.conn.is_none() {
            let (conn, pipelining) = connect(&self.settings).await?;
            self.conn = Some(Box::new(conn));
            self.pipelining = pipelining;
            self.sent = 0;
        }
        Ok(())
    }

    /// Classifies a failed transaction and readies the session for the
    /// next message.
    async fn failed(&mut self, e: &lettre::transport::smtp::Error, phase: Phase) -> DeliveryError {
        let err = classify(e, phase);
        // A failed transaction leaves the session in an unknown state:
        // start the next message on a fresh one, unless a plain refusal.
        if let Some(mut c) = self.conn.take()
            && !c.has_broken()
        {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                c.command(lettre::transport::smtp::commands::Rset),
            )
            .await;
            if matches!(err, DeliveryError::Permanent { .. }) {
                self.conn = Some(c);
            }
        }
        err
    }

    async fn close(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = tokio::time::timeout(self.settings.timeout, c.quit()).await;
        }
    }
}

/// One message for [`transaction`]: its envelope and bytes, whether the
/// connection pipelines, and the buffer for its DATA.
struct Tx<'a> {
    envelope: &'a Envelope,
    message: &'a [&'a [u8]],
    pipelining: bool,
    data: &'a mut String,
}

/// One SMTP transaction: MAIL, RCPT, DATA, the end-of-data mark, and the
/// message with its final `.`.
///
/// The mark goes after the server's 354 and right before the one write
/// that carries the message and its final `.`: lettre writes a command in
/// one piece (`AsyncSmtpConnection::command`) and offers no way to write
/// data without reading a reply, so this is the last point before the `.`
/// we can reach. A crash in between counts as uncertain, erring away from
/// a second copy.
///
/// lettre's own `send` dot-stuffs the message one byte at a time, which
/// profiles showed as a seventh of a send's CPU; an ASCII message (ours are
/// always 7-bit: quoted-printable bodies, encoded headers) is stuffed here
/// with a search for line-initial dots and written in one piece. Anything
/// else goes through lettre's `send`, marked before it starts since its
/// stages are hidden.
async fn transaction<F, Fut, E>(
    c: &mut AsyncSmtpConnection,
    tx: Tx<'_>,
    phase: &mut Phase,
    mark: F,
) -> Result<lettre::transport::smtp::response::Response, TxError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let Tx {
        envelope,
        message,
        pipelining,
        data,
    } = tx;
    let ascii_envelope = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .all(|a| AsRef::<str>::as_ref(a).is_ascii());
    let text: Option<Vec<&str>> = message
        .iter()
        .map(|piece| std::str::from_utf8(piece).ok().filter(|t| t.is_ascii()))
        .collect();
    let Some(text) = text.filter(|_| ascii_envelope) else {
        *phase = Phase::Marking;
        mark().await.map_err(|e| TxError::Unmarked(e.to_string()))?;
        *phase = Phase::Content;
        return c
            .send(envelope, &message.concat())
            .await
            .map_err(TxError::Smtp);
    };
    // Stuffed before the envelope goes out, so only the write itself lies
    // between the mark and the final `.`.
    dot_stuff(&text, data);
    if pipelining {
        pipelined_envelope(c, envelope).await?;
    } else {
        stepwise_envelope(c, envelope).await?;
    }
    *phase = Phase::Marking;
    mark().await.map_err(|e| TxError::Unmarked(e.to_string()))?;
    *phase = Phase::Content;
    c.command(Verbatim(data)).await.map_err(TxError::Smtp)
}

/// MAIL, each RCPT and DATA, each waiting for its reply.
async fn stepwise_envelope(
    c: &mut AsyncSmtpConnection,
    envelope: &Envelope,
) -> Result<(), TxError> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    c.command(Mail::new(envelope.from().cloned(), Vec::new()))
        .await
        .map_err(TxError::Smtp)?;
    for to in envelope.to() {
        c.command(Rcpt::new(to.clone(), Vec::new()))
            .await
            .map_err(TxError::Smtp)?;
    }
    c.command(Data).await.map_err(TxError::Smtp)?;
    Ok(())
}

/// MAIL, RCPT and DATA in one write (RFC 2920), then their replies in
/// order: one round trip and one wake-up per message instead of three.
///
/// Every reply is read even after a refusal, so the session stays in step
/// for the RSET that follows; the first refusal is the transaction's.
async fn pipelined_envelope(
    c: &mut AsyncSmtpConnection,
    envelope: &Envelope,
) -> Result<(), TxError> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    use std::fmt::Write as _;
    let mut commands = Mail::new(envelope.from().cloned(), Vec::new()).to_string();
    for to in envelope.to() {
        // Writing to a String cannot fail.
        let _ = write!(commands, "{}", Rcpt::new(to.clone(), Vec::new()));
    }
    let _ = write!(commands, "{Data}");
    let mut refused = c.command(Verbatim(&commands)).await.err();
    for _ in envelope.to() {
        let reply = c.read_response().await;
        refused = refused.or(reply.err());
    }
    match (refused, c.read_response().await) {
        (None, Ok(_)) => Ok(()),
        (None, Err(e)) | (Some(e), Err(_)) => Err(TxError::Smtp(e)),
        (Some(e), Ok(_)) => Err(TxError::Desync(e)),
    }
}

/// Text that is already a complete command (here: stuffed DATA content).
struct Verbatim<'a>(&'a str);

impl std::fmt::Display for Verbatim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The pieces of `text`, one after the other, as DATA content in `out`:
/// lines starting with `.` get a second one (RFC 5321 §4.5.2), then the
/// end marker.
///
/// `out` is sized once up front, and only line-initial dots are searched
/// for (`\n.` with a SIMD pair search): the former per-line search and
/// the doubling growth of a fresh string were a tenth of a send's CPU.
fn dot_stuff(text: &[&str], out: &mut String) {
    out.clear();
    let len: usize = text.iter().map(|t| t.len()).sum();
    out.reserve(len + 8 + len / 64);
    let mut line_start = true;
    for piece in text.iter().filter(|t| !t.is_empty()) {
        if line_start && piece.starts_with('.') {
            out.push('.');
        }
        let mut start = 0;
        for nl in memchr::memmem::find_iter(piece.as_bytes(), b"\n.") {
            out.push_str(&piece[start..=nl]);
            out.push('.');
            start = nl + 1;
        }
        out.push_str(&piece[start..]);
        line_start = piece.ends_with('\n');
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
}

/// The server's reply as `550 5.1.1 <x>: …` (lettre's own text would say
/// `550 permanent error (550): …`), or lettre's description of a failure
/// that is no reply.
fn reply_text(e: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    match (e.status(), e.source()) {
        (Some(code), Some(msg)) => format!("{code} {msg}").trim().to_string(),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// A reply is what it says (5xx permanent, 4xx temporary); any other
/// failure is a lost message once its end of data may have been written,
/// and a temporary one before.
fn classify(e: &lettre::transport::smtp::Error, phase: Phase) -> DeliveryError {
    let text = reply_text(e);
    if e.is_permanent() {
        let lower = text.to_ascii_lowercase();
        let unknown_user =
            text.contains("5.1.1") || text.contains("5.1.10") || lower.contains("user unknown");
        DeliveryError::Permanent {
            reply: text,
            unknown_user,
        }
    } else if e.is_transient() || phase != Phase::Content {
        DeliveryError::Transient(text)
    } else {
        DeliveryError::Lost(format!("{text} after the end of data"))
    }
}

/// Whether a TLS failure is the server's certificate being refused: a
/// setting to fix (`transport.ca_file`), not an outage to wait out.
fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_certificate_error(inner)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A TLS failure: fatal for a refused certificate, else an outage.
fn tls_error(what: String, e: &(dyn std::error::Error + 'static)) -> DeliveryError {
    let msg = format!("{what}: {e}");
    if is_certificate_error(e) {
        DeliveryError::Fatal(msg)
    } else {
        DeliveryError::Outage(msg)
    }
}

/// A TCP connection to the server with TCP_NODELAY set: without it every
/// message waits ~40 ms on Nagle plus the server's delayed ACK.
async fn connect_tcp(s: &SmtpSettings) -> Result<tokio::net::TcpStream, DeliveryError> {
    let tcp = tokio::time::timeout(
        s.timeout,
        tokio::net::TcpStream::connect((s.host.as_str(), s.port)),
    )
    .await
    .map_err(|_| {
        DeliveryError::Outage(format!(
            "cannot connect to {}:{}: timed out",
            s.host, s.port
        ))
    })?
    .map_err(|e| DeliveryError::Outage(format!("cannot connect to {}:{}: {e}", s.host, s.port)))?;
    // Without this every message waits ~40 ms on Nagle + delayed ACK.
    tcp.set_nodelay(true)
        .map_err(|e| DeliveryError::Outage(format!("cannot set TCP_NODELAY: {e}")))?;
    Ok(tcp)
}

/// rustls settings for implicit TLS: the system's roots plus
/// `transport.ca_file`.
fn rustls_config(s: &SmtpSettings) -> Result<rustls::ClientConfig, DeliveryError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = &s.ca_pem {
        use rustls::pki_types::pem::PemObject as _;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                DeliveryError::Fatal(format!("transport.ca_file is not a PEM certificate: {e}"))
            })?;
            roots.add(cert).map_err(|e| {
                DeliveryError::Fatal(format!("transport.ca_file cannot be used: {e}"))
            })?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DeliveryError::Fatal(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A rustls stream lettre can drive (its trait, our type).
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl lettre::transport::smtp::client::AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// Opens a session: TCP (and TLS), greeting, EHLO, STARTTLS, AUTH.
/// A session ready for MAIL, and whether it offers PIPELINING.
async fn connect(s: &SmtpSettings) -> Result<(AsyncSmtpConnection, bool), DeliveryError> {
    let hello = ClientId::Domain(hello_name());
    let mut conn = if s.tls == Tls::Implicit {
        connect_implicit(s, &hello).await?
    } else {
        connect_plain(s, &hello).await?
    };
    // lettre cannot see the TLS we added for smtps, so it says unencrypted.
    let encrypted = conn.is_encrypted() || s.tls == Tls::Implicit;
    if s.credentials.is_some() && !encrypted && !is_loopback(&s.host) {
        return Err(DeliveryError::Fatal(format!(
            "{}:{} offers no STARTTLS, so the password would cross the network in clear text; \
             expected a server with STARTTLS (tls=required) or smtps://",
            s.host, s.port
        )));
    }
    let pipelining = offers_pipelining(s, &mut conn, &hello).await?;
    if let Some(creds) = &s.credentials {
        conn.auth(&[Mechanism::Plain, Mechanism::Login], creds)
            .await
            .map_err(|e| auth_error(s, &e))?;
    }
    Ok((conn, pipelining))
}

/// Whether the server offers PIPELINING (RFC 2920), asked with a second
/// EHLO: lettre keeps only the EHLO keywords it knows, and PIPELINING is
/// not one. Asked before AUTH, since a new EHLO may end a login.
async fn offers_pipelining(
    s: &SmtpSettings,
    conn: &mut AsyncSmtpConnection,
    hello: &ClientId,
) -> Result<bool, DeliveryError> {
    let ehlo = lettre::transport::smtp::commands::Ehlo::new(hello.clone());
    let reply = tokio::time::timeout(s.timeout, conn.command(ehlo))
        .await
        .map_err(|_| DeliveryError::Outage(format!("{}:{} did not answer EHLO", s.host, s.port)))?
        .map_err(|e| connect_error(s, &e))?;
    Ok(reply.message().any(|line| {
        line.split_ascii_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
    }))
}

/// smtps: our own TCP stream (with TCP_NODELAY, see `connect_tcp`) wrapped
/// in rustls, since lettre's implicit-TLS connect opens one without.
async fn connect_implicit(
    s: &SmtpSettings,
    hello: &ClientId,
) -> Result<AsyncSmtpConnection, DeliveryError> {
    let tcp = connect_tcp(s).await?;
    let config = rustls_config(s)?;
    let name = rustls::pki_types::ServerName::try_from(s.host.clone()).map_err(|e| {
        DeliveryError::Fatal(format!("`{}` is not a valid TLS server name: {e}", s.host))
    })?;
    let tls = tokio::time::timeout(
        s.timeout,
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| DeliveryError::Outage(format!("TLS with {}:{} timed out", s.host, s.port)))?
    .map_err(|e| tls_error(format!("TLS with {}:{} failed", s.host, s.port), &e))?;
    greet(s, Box::new(TlsTcp(tls)), hello).await
}

/// smtp: TCP, then STARTTLS as `tls=` asks.
async fn connect_plain(
    s: &SmtpSettings,
    hello: &ClientId,
) -> Result<AsyncSmtpConnection, DeliveryError> {
    let tcp = connect_tcp(s).await?;
    let mut conn = greet(s, Box::new(tcp), hello).await?;
    match s.tls {
        Tls::Required | Tls::Opportunistic if conn.can_starttls() => {
            let starttls = tokio::time::timeout(s.timeout, conn.starttls(tls_params(s)?, hello));
            starttls
                .await
                .map_err(|_| DeliveryError::Outage(format!("STARTTLS with {} timed out", s.host)))?
                .map_err(|e| tls_error(format!("STARTTLS with {} failed", s.host), &e))?;
        }
        Tls::Required => {
            return Err(DeliveryError::Fatal(format!(
                "{}:{} does not offer STARTTLS; expected a server that does, or tls=none for a loopback relay",
                s.host, s.port
            )));
        }
        _ => {}
    }
    Ok(conn)
}

/// lettre's STARTTLS settings: its roots plus `transport.ca_file`.
fn tls_params(s: &SmtpSettings) -> Result<TlsParameters, DeliveryError> {
    let mut b = TlsParameters::builder(s.host.clone());
    if let Some(pem) = &s.ca_pem {
        let cert = Certificate::from_pem(pem).map_err(|e| {
            DeliveryError::Fatal(format!("transport.ca_file is not a PEM certificate: {e}"))
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls()
        .map_err(|e| DeliveryError::Fatal(format!("cannot set up TLS: {e}")))
}

/// The greeting and EHLO over an open stream.
async fn greet(
    s: &SmtpSettings,
    stream: Box<dyn lettre::transport::smtp::client::AsyncTokioStream>,
    hello: &ClientId,
) -> Result<AsyncSmtpConnection, DeliveryError> {
    tokio::time::timeout(
        s.timeout,
        AsyncSmtpConnection::connect_with_transport(stream, hello),
    )
    .await
    .map_err(|_| DeliveryError::Outage(format!("{}:{} sent no greeting", s.host, s.port)))?
    .map_err(|e| connect_error(s, &e))
}

/// A greeting or EHLO refused for good (5xx: this relay will not take our
/// mail) is fatal; 421 "try later", a reset or garbage is an outage.
fn connect_error(s: &SmtpSettings, e: &lettre::transport::smtp::Error) -> DeliveryError {
    let msg = format!(
        "cannot open an SMTP session with {}:{}: {}",
        s.host,
        s.port,
        reply_text(e)
    );
    if e.is_permanent() {
        DeliveryError::Fatal(msg)
    } else {
        DeliveryError::Outage(msg)
    }
}

/// AUTH refused for good (535: wrong password) is fatal; a temporary
/// refusal (454) or a dropped connection is an outage.
fn auth_error(s: &SmtpSettings, e: &lettre::transport::smtp::Error) -> DeliveryError {
    let msg = format!("AUTH at {} refused: {}", s.host, reply_text(e));
    if e.is_permanent() || e.is_client() {
        DeliveryError::Fatal(msg)
    } else {
        DeliveryError::Outage(msg)
    }
}

fn hello_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "localhost".into())
}

async fn write_outbox(dir: &Path, name: &str, message: &[&[u8]]) -> Result<String, DeliveryError> {
    let fatal = |e: std::io::Error| {
        DeliveryError::Fatal(format!("cannot write to the outbox {}: {e}", dir.display()))
    };
    tokio::fs::create_dir_all(dir).await.map_err(fatal)?;
    let file = dir.join(format!("{name}.eml"));
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    tokio::fs::write(&tmp, message.concat())
        .await
        .map_err(fatal)?;
    tokio::fs::rename(&tmp, &file).await.map_err(fatal)?;
    Ok(format!("written to {}", file.display()))
}

/// A file name for a recipient's outbox copy.
pub fn outbox_name(email: &str) -> String {
    email
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '@' | '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(crate::config::EMBEDDED, "config.toml", Path::new(".")).unwrap()
    }

    #[test]
    fn tls_none_is_refused_for_remote_hosts() {
        let err =
            Transport::from_url("smtp://mail.example.org:25?tls=none", &config()).unwrap_err();
        assert!(err.message.contains("only for loopback"), "{err}");
        assert!(Transport::from_url("smtp://127.0.0.1:2525?tls=none", &config()).is_ok());
    }

    #[test]
    fn passwords_in_urls_are_refused_and_never_echoed() {
        let err =
            Transport::from_url("smtp://user:hunter2@mail.example.org:587", &config()).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_the_data() {
        let stuffed = |t: &str| {
            let mut out = "left over from the last message".to_string();
            dot_stuff(&[t], &mut out);
            out
        };
        assert_eq!(stuffed("a\r\n.b\r\n..c\r\n"), "a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(stuffed(".x"), "..x\r\n.\r\n");
        assert_eq!(stuffed(".\r\n.\r\n"), "..\r\n..\r\n.\r\n");
        assert_eq!(stuffed(""), "\r\n.\r\n");
        // A piece that starts a line is stuffed like the rest.
        let mut out = String::new();
        dot_stuff(&["DKIM: x\r\n", ".y\r\n"], &mut out);
        assert_eq!(out, "DKIM: x\r\n..y\r\n.\r\n");
        dot_stuff(&["a", ".b\r\n", ""], &mut out);
        assert_eq!(out, "a.b\r\n.\r\n");
    }

    #[test]
    fn outbox_names_are_safe_file_names() {
        assert_eq!(outbox_name("Zoë/../x@Example.org"), "zoë_.._x@example.org");
    }
}
