//! `briefing` composes, checks and sends an email newsletter.
//!
//! # Architecture: data flows one way
//!
//! ```text
//! issue.toml + *.md ─► model::Issue ─► RenderedIssue ─► per-recipient message ─► transport
//!      compose::manifest       compose::render     deliver::message        deliver::transport
//!                                                        ▲
//!                          recipient lists ─► audience ──┘   (ledger: deliver::ledger)
//! ```
//!
//! The modules are stages. A module may use the stages above its own in
//! this table, never one below it; audience and compose know nothing of
//! each other; and no modules import each other in a cycle
//! (`tests/layering.rs` checks all three):
//!
//! | stage | module | what it owns |
//! |---|---|---|
//! | foundation | [`clock`] | the only place that reads the time (`BRIEFING_NOW` fixes it) |
//! | | [`config`] | `config.toml`: publisher, sender, lists, transport, DKIM, serve, archive; further newsletters laid over it (`config/newsletters.rs`) |
//! | | [`diagnostic`] | problems with file, line and column, rendered with a caret |
//! | | [`input`] | reading files: regular files only, size limits, folder boundaries |
//! | | [`model`] | the validated issue as plain data, and what merge tags fill from |
//! | audience | [`audience::recipient`] | a recipient, its fields, and the address rules |
//! | | [`audience::lists`] | recipient lists (CSV), streamed row by row |
//! | | [`audience::token`] | unsubscribe tokens (HMAC) and the secret keyring |
//! | | [`audience::suppression`] | provider bounce exports and mailto requests, parsed |
//! | compose | [`compose::manifest`] | `issue.toml` and its Markdown files into a [`model::Issue`]; translations (`issue.<lang>.toml`) into editions |
//! | | [`compose::strings`] | briefing's own words per language (`templates/strings/<lang>.toml`) |
//! | | [`compose::markdown`] | Markdown bodies and merge tags into the model |
//! | | [`compose::stylesheet`] | the `<style>` block and Gmail's limits on it |
//! | | [`compose::render`] | HTML (maud) and text, once per issue, with per-recipient slots |
//! | | [`compose::calendar`] | the issue's events as iCalendar files ("Add to calendar") |
//! | | [`compose::timefmt`] | event times and dates as readers see them |
//! | | [`compose::variants`] | blocks for some readers: a reader's variant, and the issue it shows |
//! | | [`compose::lint`] | what renders but should not go out like this |
//! | | [`compose::check`] | load + render + lint: what `check`, `send` and the live preview share |
//! | deliver | [`deliver::plan`] | config + issue into a ready send: lint gate, transport, signer, lock |
//! | | [`deliver::engine`] | the pool of workers that claim, build, sign, send and record |
//! | | [`deliver::message`] | each recipient's MIME message from the issue encoded once |
//! | | [`deliver::dkim`] | DKIM signatures (RSA via aws-lc-rs, Ed25519) |
//! | | [`deliver::transport`] | outbox folder, SMTP (STARTTLS, implicit TLS), sendmail |
//! | | [`deliver::ledger`] | SQLite or PostgreSQL: sends, deliveries, suppressions, tokens; exactly-once |
//! | | [`deliver::lock`] | one lock per issue: an OS file lock, or a PostgreSQL advisory lock |
//! | | [`deliver::schedule`] | where each issue stands, and what `send --due` sends |
//! | publishing | [`preview`] | previews on disk, and the live preview ([`preview::watch`]) |
//! | | [`archive`] | the static web archive and its Atom feed |
//! | | [`unsubscribe`] | the one-click unsubscribe service and mailto requests |
//!
//! The binary (`src/main.rs`, `src/cli/`) is the only place that prints,
//! reads the terminal or chooses exit codes; the library returns values and
//! typed errors.

pub mod archive;
pub mod audience;
pub mod clock;
pub mod compose;
pub mod config;
pub mod deliver;
pub mod diagnostic;
pub mod input;
pub mod model;
pub mod preview;
pub mod unsubscribe;
