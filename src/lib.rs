//! `briefing` composes, checks and sends an email newsletter.
//!
//! # Architecture: data flows one way
//!
//! ```text
//! issue.toml + *.md ──► validated model ──► rendered issue ──► per-recipient message ──► transport
//!   (manifest)            (model)             (render)            (message)               (transport)
//! ```
//!
//! 1. [`manifest`] reads the issue manifest and the Markdown files it names,
//!    collecting every problem as a [`diagnostic::Diagnostic`] with file, line
//!    and column, and validates it into a [`model::Issue`] (with [`markdown`]
//!    for bodies and [`config`] for publisher settings).
//! 2. [`model`] is plain data: what an editor wrote, checked. It knows nothing
//!    of TOML, SMTP or recipients.
//! 3. [`render`] turns the model into HTML ([`render::html`], maud) and plain
//!    text ([`render::text`]) once per issue. Per-recipient parts (merge tags,
//!    the unsubscribe link) stay as slots in a [`render::Template`].
//! 4. [`message`] builds each recipient's MIME message from the rendered
//!    issue, encoding the shared parts once and only the slots per recipient.
//! 5. The transport hands messages to an outbox folder, SMTP or sendmail.
//!
//! [`lint`] checks a rendered issue before it goes out; [`preview`] writes
//! previews to disk. Only `main.rs` prints, reads the terminal or exits.

pub mod archive;
pub mod audience;
pub mod clock;
pub mod compose;
pub mod config;
pub mod deliver;
pub mod diagnostic;
pub mod model;
pub mod preview;
pub mod unsubscribe;
