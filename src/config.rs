//! `config.toml`: who publishes, how sections are labelled, how mail leaves.
//!
//! Unknown keys are errors (a misspelt `rate_per_hour` must not silently
//! mean "no limit"). A copy of the repository's `config.toml` is built into
//! the binary, so a fresh checkout works without one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, closest};

/// The configuration built into the binary, used when no file is given and
/// `./config.toml` does not exist.
pub const EMBEDDED: &str = include_str!("../config.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Publisher identity and footer.
    pub newsletter: NewsletterConfig,
    /// Envelope and header identity.
    pub sender: SenderConfig,
    /// Default section order and labels.
    #[serde(default)]
    pub sections: SectionsConfig,
    /// Lint thresholds for `briefing check`.
    #[serde(default)]
    pub check: CheckConfig,
    /// Where recipients come from and where state goes.
    #[serde(default)]
    pub send: SendConfig,
    /// How messages leave: outbox, SMTP or sendmail, with limits.
    #[serde(default)]
    pub transport: TransportConfig,
    /// DKIM signing keys.
    #[serde(default)]
    pub dkim: Option<DkimConfig>,
    /// Unsubscribe links and tokens.
    pub unsubscribe: UnsubscribeConfig,
    /// The unsubscribe endpoint (`briefing serve`).
    #[serde(default)]
    pub serve: ServeConfig,
    /// The static web archive (`briefing archive`).
    #[serde(default)]
    pub archive: ArchiveConfig,
    /// Folder that relative paths in this config are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where this config came from (a path, or `<embedded config.toml>`).
    #[serde(skip)]
    pub source: String,
}

/// Publisher identity, shown in every issue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsletterConfig {
    /// Name in the header and the From display name default.
    pub name: String,
    /// BCP 47 language of the issues (`lang` attribute).
    #[serde(default = "default_language")]
    pub language: String,
    /// Zone for manifest times that name none (`send_at`, events).
    pub time_zone: String,
    /// Zones every event time is shown in, the first leading.
    pub event_zones: Vec<String>,
    /// Postal address for the footer (required in bulk mail).
    pub postal_address: String,
    /// Why the reader receives the newsletter.
    pub reason: String,
    /// Greeting above the issue; may hold merge tags.
    #[serde(default = "default_salutation")]
    pub salutation: String,
    /// Base of the web archive; an issue's page is `<base>/<slug>/`.
    pub archive_base_url: String,
    /// Where readers subscribe (archive pages link it instead of unsubscribe).
    #[serde(default)]
    pub subscribe_url: Option<String>,
    /// CSS for the email's `<style>` block; default `templates/email.css`,
    /// or the copy built into the binary when that file is absent.
    #[serde(default)]
    pub stylesheet: Option<PathBuf>,
}

fn default_language() -> String {
    "en".into()
}

fn default_salutation() -> String {
    "Dear {{ name | default: \"reader\" }},".into()
}

/// Sender identity for headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderConfig {
    /// From display name (defaults to the newsletter name).
    #[serde(default)]
    pub from_name: Option<String>,
    /// From address, e.g. `news@briefing.example.org`.
    pub from_address: String,
    /// Where replies go.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Envelope sender (Return-Path) for bounces; defaults to from_address.
    #[serde(default)]
    pub envelope_from: Option<String>,
    /// Stable list identifier for `List-Id`, e.g. `china-brief.example.org`.
    pub list_id: String,
    /// Gmail Feedback-ID value (`campaign:customer:type:SenderId`).
    #[serde(default)]
    pub feedback_id: Option<String>,
}

/// Section order and labels (an issue may override both).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SectionsConfig {
    /// Section keys in reading order.
    #[serde(default)]
    pub order: Option<Vec<String>>,
    /// Heading per section key.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Thresholds for `briefing check`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// HTML size (bytes) above which check fails; Gmail clips near 102 KB.
    #[serde(default = "default_html_limit")]
    pub max_html_bytes: usize,
    /// Subject length (characters) above which check warns.
    #[serde(default = "default_subject_limit")]
    pub max_subject_chars: usize,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            max_html_bytes: default_html_limit(),
            max_subject_chars: default_subject_limit(),
        }
    }
}

fn default_html_limit() -> usize {
    90 * 1024
}

fn default_subject_limit() -> usize {
    78
}

/// Recipients and state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendConfig {
    /// Recipient CSV files used when `--list` is not given.
    #[serde(default = "default_lists")]
    pub lists: Vec<PathBuf>,
    /// Addresses never to mail (CSV with an `email` column).
    #[serde(default = "default_suppressed")]
    pub suppressed: PathBuf,
    /// The send ledger database.
    #[serde(default = "default_ledger")]
    pub ledger: PathBuf,
    /// How long after `send_at` `send --due` still sends, in minutes.
    #[serde(default = "default_late_after")]
    pub late_after_minutes: u64,
    /// How long a recipient whose server keeps answering 4xx stays
    /// deferred (retried by later runs) before it fails, in hours: an MTA's
    /// queue lifetime.
    #[serde(default = "default_give_up_after")]
    pub give_up_after_hours: u64,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            lists: default_lists(),
            suppressed: default_suppressed(),
            ledger: default_ledger(),
            late_after_minutes: default_late_after(),
            give_up_after_hours: default_give_up_after(),
        }
    }
}

fn default_lists() -> Vec<PathBuf> {
    vec![PathBuf::from("recipients/sample.csv")]
}
fn default_suppressed() -> PathBuf {
    PathBuf::from("recipients/suppressed.csv")
}
fn default_ledger() -> PathBuf {
    PathBuf::from("state/briefing.sqlite")
}
fn default_late_after() -> u64 {
    360
}
fn default_give_up_after() -> u64 {
    72
}

/// How messages leave, and how fast.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {
    /// `outbox:DIR`, `smtp://host:port`, `smtps://host:port`,
    /// `sendmail:/usr/sbin/sendmail`.
    #[serde(default = "default_transport")]
    pub url: String,
    /// SMTP user name (may also be in the URL).
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the SMTP password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the SMTP password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file of a private CA to trust besides the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Parallel SMTP connections.
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// Messages sent over one connection before it is renewed.
    #[serde(default = "default_per_connection")]
    pub messages_per_connection: usize,
    /// Provider quota per second (0: unlimited).
    #[serde(default)]
    pub rate_per_second: f64,
    /// Provider quota per hour (0: unlimited).
    #[serde(default)]
    pub rate_per_hour: u64,
    /// Seconds to wait for the server before a try counts as failed.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Tries per recipient for transient failures.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay in milliseconds, doubled each try, with jitter.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// How long one run waits out a relay it cannot reach (refused, DNS,
    /// TLS, 421, AUTH 4xx) before it stops with everything unsent still
    /// pending, in seconds.
    #[serde(default = "default_outage_wait")]
    pub outage_wait_seconds: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            url: default_transport(),
            username: None,
            password_env: None,
            password_file: None,
            ca_file: None,
            pool_size: default_pool(),
            messages_per_connection: default_per_connection(),
            rate_per_second: 0.0,
            rate_per_hour: 0,
            timeout_seconds: default_timeout(),
            max_attempts: default_attempts(),
            backoff_ms: default_backoff(),
            outage_wait_seconds: default_outage_wait(),
        }
    }
}

fn default_transport() -> String {
    "outbox:outbox".into()
}
fn default_pool() -> usize {
    4
}
fn default_per_connection() -> usize {
    1000
}
fn default_timeout() -> u64 {
    30
}
fn default_attempts() -> u32 {
    5
}
fn default_backoff() -> u64 {
    500
}
fn default_outage_wait() -> u64 {
    300
}

/// DKIM signing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// Signing domain (`d=`), aligned with the From domain.
    pub domain: String,
    /// Selector of the RSA key (`s=`).
    pub rsa_selector: String,
    /// PEM file of the RSA-2048 private key.
    pub rsa_key_file: PathBuf,
    /// Selector of the optional Ed25519 key.
    #[serde(default)]
    pub ed25519_selector: Option<String>,
    /// PKCS#8 PEM file of the optional Ed25519 key.
    #[serde(default)]
    pub ed25519_key_file: Option<PathBuf>,
}

/// Unsubscribe links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeConfig {
    /// Public base URL; a recipient's link is `<base>/<token>`.
    pub base_url: String,
    /// Address for mailto unsubscribes (token in the subject).
    #[serde(default)]
    pub mailto: Option<String>,
    /// Environment variable holding the token secret.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// File holding the token secret (used when the variable is unset).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable with earlier secrets, comma-separated: tokens
    /// made with them still verify while mail sent before a rotation is
    /// in inboxes.
    #[serde(default = "default_previous_env")]
    pub previous_secrets_env: String,
}

fn default_previous_env() -> String {
    "BRIEFING_UNSUBSCRIBE_PREVIOUS_SECRETS".into()
}

/// `briefing serve`: the one-click unsubscribe endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on (behind a reverse proxy).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Request bodies larger than this are refused (413).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> usize {
    4096
}

/// `briefing archive`: the static web archive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Output folder.
    #[serde(default = "default_archive_out")]
    pub out: PathBuf,
    /// Issues per index page.
    #[serde(default = "default_per_page")]
    pub per_page: usize,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            out: default_archive_out(),
            per_page: default_per_page(),
        }
    }
}

fn default_archive_out() -> PathBuf {
    PathBuf::from("site")
}
fn default_per_page() -> usize {
    50
}

fn default_secret_env() -> String {
    "BRIEFING_UNSUBSCRIBE_SECRET".into()
}

impl Config {
    /// Parses config text; `path` names it in diagnostics, `base_dir`
    /// anchors its relative paths.
    pub fn parse(text: &str, path: &str, base_dir: &Path) -> Result<Config, Diagnostics> {
        let file = SourceFile::new(path, text);
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let mut d = Diagnostics::new();
            d.push(toml_error(&file, &e));
            d
        })?;
        config.base_dir = base_dir.to_path_buf();
        config.source = path.to_string();
        let mut problems = Diagnostics::new();
        config.check_values(&file, &mut problems);
        if problems.has_errors() {
            return Err(problems);
        }
        Ok(config)
    }

    /// Reads `path`, or the embedded default when `path` is `None` and
    /// `./config.toml` does not exist.
    pub fn load(path: Option<&Path>) -> Result<Config, Diagnostics> {
        let chosen = match path {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let p = PathBuf::from("config.toml");
                p.exists().then_some(p)
            }
        };
        match chosen {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    let mut d = Diagnostics::new();
                    d.push(
                        Diagnostic::error(format!("cannot read config: {e}"))
                            .at(&SourceFile::new(&p, ""), None),
                    );
                    d
                })?;
                let base = p
                    .parent()
                    .map(Path::to_path_buf)
                    .filter(|b| !b.as_os_str().is_empty())
                    .unwrap_or_else(|| PathBuf::from("."));
                Config::parse(&text, &p.to_string_lossy(), &base)
            }
            None => Config::parse(EMBEDDED, "<embedded config.toml>", Path::new(".")),
        }
    }

    /// A path from the config, resolved against the config's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The configured recipient lists, resolved against the config's folder.
    pub fn lists(&self) -> Vec<PathBuf> {
        self.send.lists.iter().map(|l| self.resolve(l)).collect()
    }

    /// The ledger's path, resolved against the config's folder.
    pub fn ledger_path(&self) -> PathBuf {
        self.resolve(&self.send.ledger)
    }

    /// The From display name.
    pub fn from_name(&self) -> &str {
        self.sender
            .from_name
            .as_deref()
            .unwrap_or(&self.newsletter.name)
    }

    fn check_values(&self, file: &Arc<SourceFile>, out: &mut Diagnostics) {
        let at = |needle: &str| span_of_key(&file.text, needle);
        for (key, zone) in std::iter::once(("newsletter.time_zone", &self.newsletter.time_zone))
            .chain(
                self.newsletter
                    .event_zones
                    .iter()
                    .map(|z| ("newsletter.event_zones", z)),
            )
        {
            if jiff::tz::TimeZone::get(zone).is_err() {
                out.push(
                    Diagnostic::error(format!(
                        "unknown time zone `{zone}`, expected an IANA name such as `Europe/Berlin`"
                    ))
                    .field(key)
                    .at(file, at(zone)),
                );
            }
        }
        if self.newsletter.event_zones.is_empty() {
            out.push(
                Diagnostic::error("no event zones, expected at least one IANA zone name")
                    .field("newsletter.event_zones")
                    .at(file, at("event_zones")),
            );
        }
        for (key, url) in [
            (
                "newsletter.archive_base_url",
                &self.newsletter.archive_base_url,
            ),
            ("unsubscribe.base_url", &self.unsubscribe.base_url),
        ] {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                out.push(
                    Diagnostic::error(format!("`{url}` is not a web address, expected https://…"))
                        .field(key)
                        .at(file, at(url)),
                );
            }
        }
        for (key, addr) in [
            ("sender.from_address", Some(&self.sender.from_address)),
            ("sender.reply_to", self.sender.reply_to.as_ref()),
            ("sender.envelope_from", self.sender.envelope_from.as_ref()),
        ] {
            if let Some(addr) = addr
                && addr.parse::<lettre::Address>().is_err()
            {
                out.push(
                    Diagnostic::error(format!(
                        "`{addr}` is not an email address, expected name@domain"
                    ))
                    .field(key)
                    .at(file, at(addr)),
                );
            }
        }
        if let Some(order) = &self.sections.order {
            for key in order {
                check_section_key(key, "sections.order", file, out);
            }
        }
        for key in self.sections.labels.keys() {
            check_section_key(key, "sections.labels", file, out);
        }
        if self.transport.pool_size == 0 {
            out.push(
                Diagnostic::error("pool_size is 0, expected at least 1 connection")
                    .field("transport.pool_size")
                    .at(file, at("pool_size")),
            );
        }
    }
}

fn check_section_key(key: &str, field: &str, file: &Arc<SourceFile>, out: &mut Diagnostics) {
    use crate::model::SectionKind;
    if SectionKind::from_key(key).is_none() {
        let mut d = Diagnostic::error(format!(
            "unknown section `{key}`, expected one of {}",
            SectionKind::ALL.map(|k| k.key()).join(", ")
        ))
        .field(field)
        .at(file, span_of_key(&file.text, key));
        if let Some(s) = closest(key, SectionKind::ALL.map(|k| k.key())) {
            d = d.help(format!("did you mean `{s}`?"));
        }
        out.push(d);
    }
}

/// Byte range of the first occurrence of `needle` in `text` (a best effort
/// for values serde does not give spans for).
fn span_of_key(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    text.find(needle).map(|i| i..i + needle.len())
}

/// Turns a toml/serde error into a diagnostic with the span it carries and,
/// for unknown keys, a suggestion.
pub fn toml_error(file: &Arc<SourceFile>, e: &toml::de::Error) -> Diagnostic {
    let msg = e.message().trim().to_string();
    let mut d = Diagnostic::error(msg.clone()).at(file, e.span());
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((unknown, expected)) = rest.split_once("`, expected ")
    {
        let candidates: Vec<&str> = expected
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        d.message = format!("unknown key `{unknown}`, expected {expected}");
        if let Some(s) = closest(unknown, candidates) {
            d = d.help(format!("did you mean `{s}`?"));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_is_valid() {
        let c = Config::parse(EMBEDDED, "config.toml", Path::new(".")).unwrap();
        assert!(c.transport.url.starts_with("outbox:"));
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let text = EMBEDDED.replace("[transport]", "[transport]\nrate_per_houre = 5");
        let err = Config::parse(&text, "config.toml", Path::new(".")).unwrap_err();
        let d = err.iter().next().unwrap();
        assert!(
            d.message.contains("unknown key `rate_per_houre`"),
            "{}",
            d.message
        );
        assert_eq!(d.help.as_deref(), Some("did you mean `rate_per_hour`?"));
        assert!(d.position().is_some());
    }
}
