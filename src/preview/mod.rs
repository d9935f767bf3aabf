//! Previews on disk: the HTML for a browser, the text, and the `.eml` a mail
//! client opens, all exactly as one recipient would get them.
//!
//! The live preview (`preview --watch`) is [`watch`] (render, watch the
//! files, render again) and [`server`] (show the latest rendering in the
//! browser and tell it to reload).

pub mod server;
pub mod watch;

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::audience::recipient::Recipient;
use crate::audience::token::{Secret, unsubscribe_url};
use crate::compose::render::RenderedIssue;
use crate::config::Config;
use crate::deliver::message::{MessageError, Personal, PreparedIssue, Sender};
use crate::model::Issue;

/// One recipient's copy of an issue in its three forms.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Issue slug, the files' base name.
    pub slug: String,
    /// The filled HTML alternative.
    pub html: String,
    /// The filled text alternative.
    pub text: String,
    /// The complete MIME message, as the send step builds it.
    pub eml: Vec<u8>,
}

/// Paths of written preview files.
#[derive(Debug, Clone)]
pub struct Written {
    /// `<slug>.html`
    pub html: PathBuf,
    /// `<slug>.txt`
    pub text: PathBuf,
    /// `<slug>.eml`
    pub eml: PathBuf,
}

/// Builds a recipient's preview.
pub fn build(
    issue: &Issue,
    rendered: &RenderedIssue,
    config: &Config,
    recipient: &Recipient,
    secret: &Secret,
    now: Timestamp,
) -> Result<Preview, MessageError> {
    let token = secret.token(&config.sender.list_id, &recipient.email);
    let url = unsubscribe_url(config, &token);
    let prepared = PreparedIssue::new(issue, rendered, Sender::from_config(config)?);
    let eml = prepared.message(&Personal {
        recipient,
        unsubscribe_url: &url,
        unsubscribe_token: &token,
        message_id: prepared.new_message_id(),
        date: crate::clock::system_time(now),
        test: false,
    })?;
    Ok(Preview {
        slug: issue.slug.clone(),
        html: rendered.html.fill(recipient, &url),
        text: rendered.text.fill(recipient, &url),
        eml,
    })
}

/// Writes the three files into `dir` (created if missing).
pub fn write(preview: &Preview, dir: &Path) -> std::io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let written = Written {
        html: dir.join(format!("{}.html", preview.slug)),
        text: dir.join(format!("{}.txt", preview.slug)),
        eml: dir.join(format!("{}.eml", preview.slug)),
    };
    std::fs::write(&written.html, &preview.html)?;
    std::fs::write(&written.text, &preview.text)?;
    std::fs::write(&written.eml, &preview.eml)?;
    Ok(written)
}
