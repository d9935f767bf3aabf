//! `config.toml`: who publishes, how sections are labelled, how mail leaves.
//!
//! Unknown keys are errors (a misspelt `rate_per_hour` must not silently
//! mean "no limit"). A copy of the repository's `config.toml` is built into
//! the binary, so a fresh checkout works without one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;
use unicode_width::UnicodeWidthStr;

use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, closest};

mod newsletters;
pub use newsletters::MAIN_ID;

/// The configuration built into the binary, used when no file is given and
/// `./config.toml` does not exist.
pub const EMBEDDED: &str = include_str!("../config.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folder of this newsletter's issues (default `issues/`; for one named
    /// under `[newsletters]`, `issues/<id>/`).
    #[serde(default)]
    pub issues: Option<PathBuf>,
    /// Further newsletters of this repository: id and the file holding what
    /// differs from this config.
    #[serde(default)]
    pub newsletters: BTreeMap<String, PathBuf>,
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
    /// The config's text, so later stages can point at a key's line.
    #[serde(skip)]
    pub file: Option<Arc<SourceFile>>,
    /// For a newsletter under `[newsletters]`: config.toml, where the keys
    /// its own file does not write come from.
    #[serde(skip)]
    pub inherited: Option<Arc<SourceFile>>,
    /// For a newsletter under `[newsletters]`: its id there.
    #[serde(skip)]
    pub own_id: Option<String>,
    /// The newsletters `[newsletters]` names, each a whole config.
    #[serde(skip)]
    pub others: Vec<Config>,
}

/// Publisher identity, shown in every issue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsletterConfig {
    /// Short id for `--newsletter` (default `main`; a newsletter under
    /// `[newsletters]` has the id it is listed by).
    #[serde(default)]
    pub id: Option<String>,
    /// Name in the header and the From display name default.
    pub name: String,
    /// BCP 47 language of the issues (`lang` attribute).
    #[serde(default = "default_language")]
    pub language: String,
    /// Zone for manifest times that name none (`send_at`, events).
    pub time_zone: String,
    /// Zones every event time is shown in, the first leading.
    pub event_zones: Vec<String>,
    /// What readers see for an event zone in place of its abbreviation, by
    /// IANA name: `"Asia/Shanghai" = "Beijing time"`. Spans locate errors.
    #[serde(default)]
    pub zone_labels: BTreeMap<Spanned<String>, Spanned<String>>,
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
    /// Per-language settings of translated editions (`[newsletter.editions.de]`);
    /// the keys above stay the main language's.
    #[serde(default)]
    pub editions: BTreeMap<String, EditionConfig>,
}

/// `[newsletter.editions.<language>]`: the publisher's words in one
/// language, over the built-in `templates/strings/<language>.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditionConfig {
    /// The footer's reason line in this language.
    #[serde(default)]
    pub reason: Option<String>,
    /// The greeting in this language; may hold merge tags.
    #[serde(default)]
    pub salutation: Option<String>,
    /// Section headings in this language, by section key.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Zone names in this language ("Pekinger Zeit"), by IANA name.
    #[serde(default)]
    pub zone_labels: BTreeMap<String, String>,
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
    /// The send ledger: a SQLite file, or a `postgres://` URL (without
    /// its password).
    #[serde(default = "default_ledger")]
    pub ledger: PathBuf,
    /// Variable holding a PostgreSQL ledger's password (default
    /// `BRIEFING_LEDGER_PASSWORD`, then `PGPASSWORD`).
    #[serde(default)]
    pub ledger_password_env: Option<String>,
    /// File holding a PostgreSQL ledger's password (first line).
    #[serde(default)]
    pub ledger_password_file: Option<PathBuf>,
    /// Schema of a PostgreSQL ledger's tables, e.g. one per newsletter
    /// sharing a database (created if missing).
    #[serde(default)]
    pub ledger_schema: Option<String>,
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
            ledger_password_env: None,
            ledger_password_file: None,
            ledger_schema: None,
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
    /// Also publish blocks meant for some readers only (`only_for`);
    /// by default the archive shows what every reader sees.
    #[serde(default)]
    pub show_restricted: bool,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            out: default_archive_out(),
            per_page: default_per_page(),
            show_restricted: false,
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
        let mut config = Config::parse_single(text, path, base_dir)?;
        let mut problems = Diagnostics::new();
        newsletters::load_all(&mut config, text, &mut problems);
        if problems.has_errors() {
            return Err(problems);
        }
        Ok(config)
    }

    /// One newsletter's config, without the ones `[newsletters]` names.
    fn parse_single(text: &str, path: &str, base_dir: &Path) -> Result<Config, Diagnostics> {
        let file = SourceFile::new(path, text);
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let mut d = Diagnostics::new();
            d.push(toml_error(&file, &e));
            d
        })?;
        config.base_dir = base_dir.to_path_buf();
        config.source = path.to_string();
        config.file = Some(Arc::clone(&file));
        let mut problems = Diagnostics::new();
        config.check_values(&file, &mut problems);
        config.check_ranges(&mut problems);
        config.check_header_values(&mut problems);
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
                let text =
                    crate::input::read_text(&p, crate::input::CONFIG_LIMIT).map_err(|e| {
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

    /// The configured section order, else the built-in one.
    pub fn section_order(&self) -> Vec<crate::model::SectionKind> {
        use crate::model::SectionKind;
        self.sections
            .order
            .as_ref()
            .map(|o| o.iter().filter_map(|k| SectionKind::from_key(k)).collect())
            .unwrap_or_else(|| SectionKind::ALL.to_vec())
    }

    /// The From display name.
    pub fn from_name(&self) -> &str {
        self.sender
            .from_name
            .as_deref()
            .unwrap_or(&self.newsletter.name)
    }

    /// A problem with the value of `key` (dotted, e.g. `transport.url`),
    /// pointing at its line in this config (for a newsletter that inherits
    /// the key, at config.toml's line).
    pub fn problem(&self, key: &str, d: Diagnostic) -> Diagnostic {
        let d = d.field(key);
        let own = self
            .file
            .as_ref()
            .and_then(|f| key_span(&f.text, key).map(|s| (f, s)));
        let inherited = || {
            self.inherited
                .as_ref()
                .and_then(|f| key_span(&f.text, key).map(|s| (f, s)))
        };
        match own.or_else(inherited) {
            Some((file, span)) => d.at(file, Some(span)),
            None => match &self.file {
                Some(file) => d.at(file, None),
                None => d,
            },
        }
    }

    /// This newsletter's id (`--newsletter`).
    pub fn id(&self) -> &str {
        self.own_id
            .as_deref()
            .or(self.newsletter.id.as_deref())
            .unwrap_or(MAIN_ID)
    }

    /// Every newsletter of the repository: this one, then those
    /// `[newsletters]` names, in id order.
    pub fn all(&self) -> impl Iterator<Item = &Config> {
        std::iter::once(self).chain(self.others.iter())
    }

    /// True when `[newsletters]` names further newsletters.
    pub fn has_several(&self) -> bool {
        !self.others.is_empty()
    }

    /// The newsletter with this id.
    pub fn by_id(&self, id: &str) -> Option<&Config> {
        self.all().find(|c| c.id() == id)
    }

    /// The ids of every newsletter, for messages that ask for one.
    pub fn ids(&self) -> Vec<&str> {
        self.all().map(Config::id).collect()
    }

    /// The folder of this newsletter's issues. config.toml's own default
    /// stays `issues/` in the working folder, as before newsletters.
    pub fn issues_dir(&self) -> PathBuf {
        match &self.issues {
            Some(p) => self.resolve(p),
            None => PathBuf::from("issues"),
        }
    }

    /// The newsletter an issue (manifest or folder) belongs to: the one
    /// whose issues folder holds it, else config.toml's own.
    pub fn for_issue(&self, path: &Path) -> &Config {
        let at = newsletters::absolute(path);
        self.others
            .iter()
            .find(|c| at.starts_with(newsletters::absolute(&c.issues_dir())))
            .unwrap_or(self)
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
        check_zone_labels(&self.newsletter, file, out);
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
    }
}

/// The documented range of every number in the config (README,
/// "Configuration"): outside it a value is a typo, not a wish, and some
/// (a rate of `1e-300`) would overflow a duration.
const RANGES: &[(&str, f64, f64)] = &[
    ("transport.pool_size", 1.0, 64.0),
    ("transport.messages_per_connection", 1.0, 1_000_000.0),
    ("transport.rate_per_second", 0.0, 100_000.0),
    ("transport.rate_per_hour", 0.0, 1_000_000_000.0),
    ("transport.timeout_seconds", 1.0, 3_600.0),
    ("transport.max_attempts", 1.0, 100.0),
    ("transport.backoff_ms", 0.0, 3_600_000.0),
    ("send.late_after_minutes", 0.0, 525_600.0),
    ("check.max_html_bytes", 1_024.0, 10_485_760.0),
    ("check.max_subject_chars", 10.0, 998.0),
    ("serve.max_body_bytes", 64.0, 1_048_576.0),
    ("archive.per_page", 1.0, 10_000.0),
];

/// Rates below this many messages per second mean a gap of over a day
/// between messages: surely a typo, and not a duration we can sleep for.
const MIN_RATE_PER_SECOND: f64 = 1e-5;

impl Config {
    /// A number the config holds, by its key in [`RANGES`].
    fn number(&self, key: &str) -> Option<f64> {
        let t = &self.transport;
        Some(match key {
            "transport.pool_size" => t.pool_size as f64,
            "transport.messages_per_connection" => t.messages_per_connection as f64,
            "transport.rate_per_second" => t.rate_per_second,
            "transport.rate_per_hour" => t.rate_per_hour as f64,
            "transport.timeout_seconds" => t.timeout_seconds as f64,
            "transport.max_attempts" => f64::from(t.max_attempts),
            "transport.backoff_ms" => t.backoff_ms as f64,
            "send.late_after_minutes" => self.send.late_after_minutes as f64,
            "check.max_html_bytes" => self.check.max_html_bytes as f64,
            "check.max_subject_chars" => self.check.max_subject_chars as f64,
            "serve.max_body_bytes" => self.serve.max_body_bytes as f64,
            "archive.per_page" => self.archive.per_page as f64,
            _ => return None,
        })
    }

    fn check_ranges(&self, out: &mut Diagnostics) {
        for &(key, min, max) in RANGES {
            let Some(v) = self.number(key) else { continue };
            let rate_too_small =
                key == "transport.rate_per_second" && v > 0.0 && v < MIN_RATE_PER_SECOND;
            if v.is_finite() && (min..=max).contains(&v) && !rate_too_small {
                continue;
            }
            let expected = if key == "transport.rate_per_second" {
                format!("0 (no limit) or a number from {MIN_RATE_PER_SECOND} to {max}")
            } else {
                format!("a number from {min} to {max}")
            };
            out.push(self.problem(
                key,
                Diagnostic::error(format!("{v} is out of range, expected {expected}")),
            ));
        }
    }

    /// Values that go into message headers must stay on one line: a line
    /// break there would add a header of its own.
    fn check_header_values(&self, out: &mut Diagnostics) {
        let s = &self.sender;
        let values = [
            ("newsletter.name", Some(&self.newsletter.name)),
            ("sender.from_address", Some(&s.from_address)),
            ("sender.from_name", s.from_name.as_ref()),
            ("sender.reply_to", s.reply_to.as_ref()),
            ("sender.envelope_from", s.envelope_from.as_ref()),
            ("sender.list_id", Some(&s.list_id)),
            ("sender.feedback_id", s.feedback_id.as_ref()),
            ("unsubscribe.base_url", Some(&self.unsubscribe.base_url)),
            ("unsubscribe.mailto", self.unsubscribe.mailto.as_ref()),
        ];
        for (key, value) in values {
            if let Some(v) = value
                && let Some(c) = v.chars().find(|c| c.is_control())
            {
                out.push(self.problem(
                    key,
                    Diagnostic::error(format!(
                        "contains the control character U+{:04X}, expected one line of text (it goes into a message header)",
                        u32::from(c)
                    )),
                ));
            }
        }
    }
}

/// Display columns a zone label may take. The label and a time such as
/// "12:30 p.m." are held on one line, and at 375 px an event's bold time
/// line holds about 36 columns.
pub const MAX_ZONE_LABEL_WIDTH: usize = 24;

/// Each zone label names a zone that event times show, in a few words.
fn check_zone_labels(newsletter: &NewsletterConfig, file: &Arc<SourceFile>, out: &mut Diagnostics) {
    const FIELD: &str = "newsletter.zone_labels";
    let shown: Vec<String> = newsletter
        .event_zones
        .iter()
        .filter_map(|z| jiff::tz::TimeZone::get(z).ok())
        .filter_map(|tz| tz.iana_name().map(str::to_string))
        .collect();
    for (zone, label) in &newsletter.zone_labels {
        let at = |d: Diagnostic, span: std::ops::Range<usize>| d.field(FIELD).at(file, Some(span));
        match jiff::tz::TimeZone::get(zone.get_ref()) {
            Err(_) => out.push(at(
                Diagnostic::error(format!(
                    "unknown time zone `{}`, expected an IANA name such as `Asia/Shanghai`",
                    zone.get_ref()
                )),
                zone.span(),
            )),
            Ok(tz) if !tz.iana_name().is_some_and(|n| shown.iter().any(|s| s == n)) => {
                out.push(at(
                    Diagnostic::error(format!(
                        "`{}` is not one of newsletter.event_zones ({}), expected a zone event times are shown in",
                        zone.get_ref(),
                        newsletter.event_zones.join(", ")
                    )),
                    zone.span(),
                ));
            }
            Ok(_) => {}
        }
        let text = label.get_ref();
        let problem = if text.trim().is_empty() {
            Some("the label is empty, expected the name readers should see, such as \"Beijing time\"".to_string())
        } else if text.chars().any(char::is_control) {
            Some("the label holds a control character, expected plain text".to_string())
        } else if text.width() > MAX_ZONE_LABEL_WIDTH {
            Some(format!(
                "the label is {} columns wide, expected at most {MAX_ZONE_LABEL_WIDTH} so a time and its zone fit on one line of a phone screen",
                text.width()
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            out.push(at(Diagnostic::error(message), label.span()));
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

/// Byte range of a dotted key's value (`transport.url`), read from the
/// TOML tree itself; `None` when the key is not written (a default).
pub fn key_span(text: &str, dotted: &str) -> Option<std::ops::Range<usize>> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = table.get(part)?;
        if parts.peek().is_none() {
            return Some(value.span());
        }
        match value.get_ref() {
            toml::de::DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    None
}

/// Byte range of the first occurrence of `needle` in `text` (a best effort
/// for values serde does not give spans for).
fn span_of_key(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    text.find(needle).map(|i| i..i + needle.len())
}

/// Turns a toml/serde error into a diagnostic with the span it carries and,
/// for unknown keys, a suggestion; a wrong type names the key it is for.
pub fn toml_error(file: &Arc<SourceFile>, e: &toml::de::Error) -> Diagnostic {
    let msg = e.message().trim().to_string();
    let mut d = Diagnostic::error(msg.clone()).at(file, e.span());
    if (msg.starts_with("invalid type") || msg.starts_with("invalid value"))
        && let Some(key) = e.span().and_then(|s| key_before(&file.text, s.start))
    {
        d.message = format!("{key}: {msg}");
        d = d.field(key);
    }
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

/// The key of a `key = value` line whose value starts at `offset`.
fn key_before(text: &str, offset: usize) -> Option<String> {
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text.get(line_start..offset)?.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.contains(['[', '{', ','])).then(|| key.to_string())
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

    /// The embedded config with `key = value` set in `[section]`.
    fn with(section: &str, line: &str) -> String {
        let key = line.split(' ').next().unwrap();
        match EMBEDDED
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
        {
            Some(old) => EMBEDDED.replacen(old, line, 1),
            None => EMBEDDED.replace(&format!("[{section}]"), &format!("[{section}]\n{line}")),
        }
    }

    fn problems_with(section: &str, line: &str) -> Vec<String> {
        let text = with(section, line);
        match Config::parse(&text, "config.toml", Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(d) => d
                .iter()
                .map(|d| {
                    let l = d.position().map_or(0, |(_, l, _)| l);
                    format!("{}:{l}: {}", d.field.clone().unwrap_or_default(), d.message)
                })
                .collect(),
        }
    }

    #[test]
    fn numbers_out_of_range_are_errors_at_their_line() {
        let line_of = |section: &str, line: &str| {
            with(section, line).lines().position(|l| l == line).unwrap() + 1
        };
        for (section, line) in [
            ("transport", "rate_per_second = 1e-300"),
            ("transport", "rate_per_second = -1.0"),
            ("transport", "rate_per_second = nan"),
            ("transport", "rate_per_second = inf"),
            ("transport", "pool_size = 0"),
            ("transport", "max_attempts = 0"),
            ("transport", "timeout_seconds = 0"),
        ] {
            let got = problems_with(section, line);
            let key = line.split(' ').next().unwrap();
            let want = format!("{section}.{key}:{}: ", line_of(section, line));
            assert!(
                got.len() == 1 && got[0].starts_with(&want) && got[0].contains("out of range"),
                "{line}: {got:?}"
            );
        }
        assert!(problems_with("transport", "rate_per_second = 0.5").is_empty());
    }

    #[test]
    fn a_wrong_type_names_its_key() {
        let got = problems_with("transport", "pool_size = \"four\"");
        assert!(
            got[0].starts_with("pool_size:") && got[0].contains("pool_size: invalid type"),
            "{got:?}"
        );
    }

    #[test]
    fn header_values_must_be_one_line() {
        let text = EMBEDDED.replacen(
            "list_id = \"",
            "list_id = \"evil\\r\\nBcc: x@example.org ",
            1,
        );
        let err = Config::parse(&text, "config.toml", Path::new(".")).unwrap_err();
        let d = err.iter().next().unwrap();
        assert_eq!(d.field.as_deref(), Some("sender.list_id"));
        assert!(d.message.contains("U+000D"), "{}", d.message);
        assert!(d.position().is_some());
    }

    /// The embedded config with its zone labels replaced by `labels`.
    fn with_labels(labels: &str) -> Result<Config, Diagnostics> {
        let text = EMBEDDED.replace(
            "\"Asia/Shanghai\" = \"Beijing time\"\n",
            &format!("{labels}\n"),
        );
        assert_ne!(text, EMBEDDED, "the embedded config labels Asia/Shanghai");
        Config::parse(&text, "config.toml", Path::new("."))
    }

    /// Each problem as `line: message`.
    fn problems(d: &Diagnostics) -> Vec<String> {
        d.iter()
            .map(|d| format!("{}: {}", d.position().map_or(0, |(_, l, _)| l), d.message))
            .collect()
    }

    fn line_of(needle: &str, labels: &str) -> usize {
        let text = EMBEDDED.replace("\"Asia/Shanghai\" = \"Beijing time\"", labels);
        let at = text.rfind(needle).unwrap();
        text[..at].matches('\n').count() + 1
    }

    #[test]
    fn zone_labels_are_read_by_iana_name() {
        let c = with_labels("\"Asia/Shanghai\" = \"Beijing time\"\n\"Europe/Berlin\" = \"Berlin\"")
            .unwrap();
        let labels: Vec<(&str, &str)> = c
            .newsletter
            .zone_labels
            .iter()
            .map(|(k, v)| (k.get_ref().as_str(), v.get_ref().as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("Asia/Shanghai", "Beijing time"),
                ("Europe/Berlin", "Berlin")
            ]
        );
        assert!(with_labels("").unwrap().newsletter.zone_labels.is_empty());
    }

    #[test]
    fn bad_zone_labels_are_errors_at_their_line() {
        let labels = "\"Asia/Shanghia\" = \"Beijing time\"\n\
                      \"America/Chicago\" = \"Chicago time\"\n\
                      \"Europe/Berlin\" = \" \"";
        let err = with_labels(labels).unwrap_err();
        assert_eq!(
            problems(&err),
            [
                format!(
                    "{}: `America/Chicago` is not one of newsletter.event_zones (Europe/Berlin, Asia/Shanghai), expected a zone event times are shown in",
                    line_of("\"America/Chicago\"", labels)
                ),
                format!(
                    "{}: unknown time zone `Asia/Shanghia`, expected an IANA name such as `Asia/Shanghai`",
                    line_of("\"Asia/Shanghia\"", labels)
                ),
                format!(
                    "{}: the label is empty, expected the name readers should see, such as \"Beijing time\"",
                    line_of("\" \"", labels)
                ),
            ]
        );
        assert!(err.render().contains("config.toml:"), "{}", err.render());
    }

    #[test]
    fn a_zone_label_must_fit_a_phone_line_beside_its_time() {
        let fits = format!(
            "\"Asia/Shanghai\" = \"{}\"",
            "x".repeat(MAX_ZONE_LABEL_WIDTH)
        );
        assert!(with_labels(&fits).is_ok());
        let wide = "\"Asia/Shanghai\" = \"北京时间北京时间北京时间北京时间\"";
        let err = with_labels(wide).unwrap_err();
        assert_eq!(
            problems(&err),
            [format!(
                "{}: the label is 32 columns wide, expected at most 24 so a time and its zone fit on one line of a phone screen",
                line_of("\"北京", wide)
            )]
        );
        let unknown = EMBEDDED.replace("[newsletter.zone_labels]", "[newsletter.zone_label]");
        assert!(Config::parse(&unknown, "config.toml", Path::new(".")).is_err());
    }
}
