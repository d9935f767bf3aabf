//! Unsubscribe tokens: HMAC-SHA256 over the list id and the address.
//!
//! A token reveals nothing without the secret; the ledger keeps which
//! address each token was issued to, so the unsubscribe endpoint can look the
//! address up and verify the token against it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;

/// The secret behind unsubscribe tokens.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
    /// True when no secret was configured and a fixed development one is used.
    pub development: bool,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// Why no unsubscribe secret could be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Neither the environment variable nor a secret file is set.
    #[error(
        "no unsubscribe secret: set {var} (e.g. `export {var}=$(openssl rand -hex 32)`) or unsubscribe.secret_file in the config"
    )]
    Missing {
        /// The variable the config names.
        var: String,
    },
    /// The secret file cannot be read.
    #[error("cannot read the unsubscribe secret file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The secret file's first line is blank.
    #[error("the unsubscribe secret file {} is empty", .0.display())]
    Empty(PathBuf),
}

/// Used only for previews and the outbox when no secret is configured, so
/// the README's first command works on a fresh machine.
const DEVELOPMENT_SECRET: &[u8] = b"briefing-development-secret-not-for-real-sends";

impl Secret {
    /// A secret from raw bytes.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            development: false,
        }
    }

    /// The configured secret: the environment variable named in config, else
    /// the secret file; with `allow_development`, a fixed stand-in.
    pub fn from_config(config: &Config, allow_development: bool) -> Result<Self, SecretError> {
        let var = &config.unsubscribe.secret_env;
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return Ok(Self::new(v.trim().as_bytes()));
        }
        if let Some(file) = &config.unsubscribe.secret_file {
            let path = config.resolve(file);
            return read_secret_file(&path).map(Self::new);
        }
        if allow_development {
            return Ok(Self {
                key: DEVELOPMENT_SECRET.to_vec(),
                development: true,
            });
        }
        Err(SecretError::Missing { var: var.clone() })
    }

    /// The token for one address on one list.
    pub fn token(&self, list_id: &str, email: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(list_id.as_bytes());
        mac.update(b"\n");
        mac.update(email.trim().to_lowercase().as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// True when `token` was issued for this address and list (constant time).
    pub fn verify(&self, list_id: &str, email: &str, token: &str) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(list_id.as_bytes());
        mac.update(b"\n");
        mac.update(email.trim().to_lowercase().as_bytes());
        mac.verify_slice(&bytes).is_ok()
    }
}

/// Length of a token: 32 HMAC-SHA256 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// True when `s` has the shape of a token, so malformed input can be turned
/// away before any database lookup.
pub fn looks_like_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The current secret and earlier ones whose tokens still verify.
#[derive(Debug, Clone)]
pub struct Keyring {
    /// Issues and verifies tokens.
    pub current: Secret,
    /// Only verify: mail sent before a rotation is still in inboxes.
    pub previous: Vec<Secret>,
}

impl Keyring {
    /// The configured secret (as [`Secret::from_config`]) and the earlier
    /// ones listed, comma-separated, in `unsubscribe.previous_secrets_env`.
    pub fn from_config(config: &Config, allow_development: bool) -> Result<Self, SecretError> {
        let current = Secret::from_config(config, allow_development)?;
        let previous = std::env::var(&config.unsubscribe.previous_secrets_env)
            .map(|v| parse_previous(&v))
            .unwrap_or_default();
        Ok(Self { current, previous })
    }

    /// True when `token` was issued for this address and list with any of
    /// the secrets.
    pub fn verify(&self, list_id: &str, email: &str, token: &str) -> bool {
        // Every key is tried even after a match, so the time taken does not
        // tell which secret (or whether an old one) signed the token.
        std::iter::once(&self.current)
            .chain(&self.previous)
            .fold(false, |ok, s| s.verify(list_id, email, token) | ok)
    }
}

/// Earlier secrets from a comma-separated list; blanks are skipped.
fn parse_previous(v: &str) -> Vec<Secret> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Secret::new(s.as_bytes()))
        .collect()
}

fn read_secret_file(path: &Path) -> Result<Vec<u8>, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(SecretError::Empty(path.to_path_buf()));
    }
    Ok(line.as_bytes().to_vec())
}

/// A recipient's unsubscribe URL from the configured base and a token.
pub fn unsubscribe_url(config: &Config, token: &str) -> String {
    format!(
        "{}/{token}",
        config.unsubscribe.base_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_address_and_list() {
        let s = Secret::new("k");
        let t = s.token("list.example.org", "Anna@Example.org");
        assert!(s.verify("list.example.org", "anna@example.org", &t));
        assert!(!s.verify("list.example.org", "bob@example.org", &t));
        assert!(!s.verify("other.example.org", "anna@example.org", &t));
        assert!(!Secret::new("k2").verify("list.example.org", "anna@example.org", &t));
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn a_keyring_accepts_tokens_of_previous_secrets_only_for_their_address() {
        let old = Secret::new("old");
        let t = old.token("list.example.org", "anna@example.org");
        let ring = Keyring {
            current: Secret::new("new"),
            previous: parse_previous(" , other ,old,"),
        };
        assert_eq!(ring.previous.len(), 2);
        assert!(ring.verify("list.example.org", "anna@example.org", &t));
        assert!(!ring.verify("list.example.org", "bob@example.org", &t));
        assert!(!ring.verify("other.example.org", "anna@example.org", &t));
        let fresh = Keyring {
            current: Secret::new("new"),
            previous: Vec::new(),
        };
        assert!(!fresh.verify("list.example.org", "anna@example.org", &t));
    }

    #[test]
    fn token_shape_is_checked_before_lookup() {
        let t = Secret::new("k").token("l", "a@example.org");
        assert!(looks_like_token(&t));
        assert!(!looks_like_token(&t[1..]));
        assert!(!looks_like_token(&format!("{}=", &t[1..])));
        assert!(!looks_like_token(""));
    }
}
