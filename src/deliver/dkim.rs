//! DKIM signing (RFC 6376): a mandatory RSA-SHA256 signature and an optional
//! Ed25519-SHA256 one (RFC 8463).
//!
//! A [`Signer`] parses its keys once per send; [`Signer::sign`] then signs
//! each finished message (the CRLF bytes of lettre's `Message::formatted()`)
//! and returns it with the `DKIM-Signature` fields prepended, ready for
//! `send_raw`. Signing must be the very last step: any header added or body
//! byte changed afterwards breaks the signatures.
//!
//! Choices, with the reasons (see `email-standards.md` §3 A1/A2):
//!
//! * `c=relaxed/relaxed`: `simple` header canonicalization breaks as soon as
//!   a relay re-folds a header.
//! * No `l=` tag: a body length lets anyone append content that still
//!   verifies (RFC 6376 §8.2).
//! * `h=` lists the fields of [`SIGNED_HEADERS`] that the message has, in
//!   that order (a field present more than once is signed in every instance),
//!   then a second, empty instance of those in [`OVERSIGNED_HEADERS`] that are
//!   present. The extra instance ("oversigning", RFC 6376 §5.4.2) makes a
//!   copy added later, e.g. a second `From` or `List-Unsubscribe`, break the
//!   signature. Fields the message lacks are left out of `h=`: signing an
//!   absent field is legal and would forbid adding it, but relays (an ESP
//!   adding `Feedback-ID` or `List-Unsubscribe`, say) do add such fields, and
//!   a broken signature costs more than the protection buys.
//! * Order: the RSA signature is the topmost field, the Ed25519 one below it.
//!   Both sign the same unsigned message, so neither covers the other and
//!   verifiers can check them in any order; RSA goes first because it is the
//!   one every verifier understands (Debian 12's Mail::DKIM reports
//!   Ed25519 as an unsupported algorithm).
//!
//! * The body is hashed once per message, for both signatures.
//!
//! mail-auth (0.7) does the header canonicalization, writes the field and
//! does the cryptography; this module selects the fields, hashes the body
//! and assembles the signature itself instead of using `DkimSigner`, which
//! hashes the body once per key, one byte per call, and puts every listed
//! but absent field into `h=`. It also works around two mail-auth defects
//! that make dkimpy reject the signature: the field folded right before its
//! final `;` (see `write_field`), and whitespace-only lines at the end of
//! the body kept by the relaxed body canonicalization (see
//! `relaxed_body_hash`).
//!
//! # Why not a newer mail-auth (checked with 0.13.3, 0.14 and 0.15.1)
//!
//! Signing with each version's own `DkimSigner` (RSA-2048 and Ed25519,
//! relaxed/relaxed, `h=` as here with oversigning) and verifying with
//! dkimpy 1.1.8, over the messages of `tests/dkim.rs` (lettre multiparts
//! of 0 to 300 lines, with and without Reply-To and Feedback-ID, a long
//! folded Subject, bodies ending in blank lines, the whitespace edge cases,
//! an empty body, a repeated Subject) and one message for each of the
//! 2,048 subsets of [`SIGNED_HEADERS`] beyond `From`:
//!
//! * 0.13.3, the newest that builds on rustc 1.95: both defects remain.
//!   135 of the 2,079 messages get `b=...\r\n\t;` and their RSA
//!   signature fails ("signature does not verify"); bodies ending in
//!   `" \r\n"` or `" \t\r\n"` lines fail both signatures ("body hash
//!   mismatch").
//! * 0.15.1 fixes both (it folds only before a character, and 0.15.0
//!   fixed the body, mail-auth #62): all 4,158 signatures pass. But 0.14
//!   and later need mail-parser 1.0, whose `rust-version` is 1.98, so cargo
//!   refuses them on our 1.95 (the check above was built with
//!   `--ignore-rust-version`). They also:
//!   - compile in a DNS resolver (hickory; `compile_error!` without one);
//!   - with the aws-lc-rs backend (the other is the slow pure-Rust `rsa`),
//!     build a second aws-lc-sys (0.46) beside aws-lc-rs 1.19's (0.47);
//!   - set `t=` from the system clock only (the variants taking a time are
//!     crate-private), so `t=` would stop following `BRIEFING_NOW`;
//!   - make the canonicalization functions used here crate-private;
//!   - hash the body once per key in `DkimSigner`: on a 142 KB message,
//!     RSA + Ed25519 ran at 1,380 signings per CPU-second against 1,950
//!     here (RSA alone 1,920 against 2,100; both on aws-lc-rs).
//!
//! When the toolchain reaches 1.98, the switch is `DkimSigner` per message
//! with a borrowed key, giving up the injected `t=` and one body hash; the
//! tests `no_folding_before_the_final_semicolon` and
//! `mail_auth_keeps_trailing_whitespace_lines` fail once an upgrade makes a
//! workaround unnecessary.
//!
//! Keys: RSA in PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8
//! (`BEGIN PRIVATE KEY`) PEM, at least [`MIN_RSA_BITS`] bits; Ed25519 in
//! PKCS#8 PEM as `openssl genpkey -algorithm ed25519` writes it. Encrypted
//! keys are refused.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Algorithm, Ed25519Key, Sha256, SigningKey};
use mail_auth::common::headers::{Writable, Writer};
use mail_auth::dkim::{Canonicalization, Signature};
use sha2::Digest;

use crate::config::Config;

/// Header fields signed when present, in the order they are listed in `h=`.
///
/// `from` is required by RFC 6376 §5.4; the list fields are recommended by
/// §5.4.1; the rest are what a reader sees or a client acts on.
pub const SIGNED_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "reply-to",
    "feedback-id",
    "content-type",
];

/// Fields signed once more than they occur, so that adding another instance
/// breaks the signature: the ones a client shows or acts on, where a second
/// copy could change what the reader sees (or which unsubscribe link the
/// mailbox provider uses).
pub const OVERSIGNED_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "reply-to",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// The smallest RSA modulus accepted. RFC 8301 allows 1024 bits, but Gmail
/// and RFC 8301 §3.2 recommend 2048, and a 1024-bit key is within reach of
/// a well-funded attacker.
pub const MIN_RSA_BITS: usize = 2048;

/// What went wrong loading keys or signing.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// The key file could not be read.
    #[error("cannot read DKIM key file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The key file's content is not the key that was expected.
    #[error("DKIM key {file}: {problem}; expected {expected}")]
    BadKey {
        /// The file (or a description of where the PEM came from).
        file: String,
        /// What was found.
        problem: String,
        /// What the file should hold.
        expected: &'static str,
    },
    /// The RSA key is shorter than [`MIN_RSA_BITS`].
    #[error(
        "DKIM key {file}: the RSA key has {bits} bits, at least {min} are required \
         (make a new one with `openssl genrsa -out new.pem 2048` and publish it under a new selector)",
        min = MIN_RSA_BITS
    )]
    WeakKey {
        /// The file.
        file: String,
        /// Size of its modulus.
        bits: usize,
    },
    /// The domain or a selector is not a DNS name.
    #[error("DKIM {what} {value:?} is not a valid DNS name (letters, digits, '-', '_' and '.')")]
    BadName {
        /// `domain`, `rsa_selector` or `ed25519_selector`.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// Only one of `ed25519_selector` and `ed25519_key_file` is set.
    #[error("[dkim] ed25519_selector and ed25519_key_file must be set together (or both left out)")]
    IncompleteEd25519,
    /// The message has no `From` field, which DKIM must sign.
    #[error("cannot DKIM-sign a message without a From header field")]
    NoFrom,
    /// The message has no blank line ending its header.
    #[error("cannot DKIM-sign the message: no blank line ends its header")]
    Malformed,
    /// mail-auth refused to sign.
    #[error("DKIM signing with {algorithm} failed: {error}")]
    Sign {
        /// `rsa-sha256` or `ed25519-sha256`.
        algorithm: &'static str,
        /// mail-auth's error.
        error: mail_auth::Error,
    },
}

/// Expected content of an RSA key file, for error messages.
const EXPECT_RSA: &str = "an unencrypted RSA private key in PEM \
    (`BEGIN RSA PRIVATE KEY` or `BEGIN PRIVATE KEY`, as `openssl genrsa 2048` writes)";

/// Expected content of an Ed25519 key file, for error messages.
const EXPECT_ED25519: &str = "an unencrypted Ed25519 private key in PKCS#8 PEM \
    (`BEGIN PRIVATE KEY`, as `openssl genpkey -algorithm ed25519` writes)";

/// Signs messages with the configured keys. Build it once per send; it is
/// `Send + Sync`, so one instance can serve every worker.
pub struct Signer {
    domain: String,
    rsa_selector: String,
    rsa: RsaKey,
    ed25519: Option<(String, Ed25519Key)>,
}

impl fmt::Debug for Signer {
    // Hand-written so that key material never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("domain", &self.domain)
            .field("rsa_selector", &self.rsa_selector)
            .field(
                "ed25519_selector",
                &self.ed25519.as_ref().map(|(s, _)| s.as_str()),
            )
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The signer for `config.dkim`, or `None` when DKIM is not configured.
    /// Key paths are resolved against the config's folder.
    pub fn from_config(config: &Config) -> Result<Option<Signer>, DkimError> {
        let Some(dkim) = &config.dkim else {
            return Ok(None);
        };
        let rsa_path = config.resolve(&dkim.rsa_key_file);
        let rsa_pem = read_key(&rsa_path)?;
        let ed = match (&dkim.ed25519_selector, &dkim.ed25519_key_file) {
            (Some(selector), Some(file)) => {
                let path = config.resolve(file);
                let pem = read_key(&path)?;
                Some((selector.as_str(), path, pem))
            }
            (None, None) => None,
            _ => return Err(DkimError::IncompleteEd25519),
        };
        Self::build(
            &dkim.domain,
            &dkim.rsa_selector,
            &rsa_pem,
            &rsa_path.display().to_string(),
            ed.as_ref()
                .map(|(s, path, pem)| (*s, pem.as_str(), path.display().to_string())),
        )
        .map(Some)
    }

    /// A signer from PEM text: the RSA key (required) and optionally an
    /// Ed25519 `(selector, pem)`. Errors name the key as "RSA key" or
    /// "Ed25519 key" with its selector, since there is no file.
    pub fn new(
        domain: &str,
        rsa_selector: &str,
        rsa_pem: &str,
        ed25519: Option<(&str, &str)>,
    ) -> Result<Signer, DkimError> {
        Self::build(
            domain,
            rsa_selector,
            rsa_pem,
            &format!("<RSA key for selector {rsa_selector:?}>"),
            ed25519.map(|(s, pem)| (s, pem, format!("<Ed25519 key for selector {s:?}>"))),
        )
    }

    fn build(
        domain: &str,
        rsa_selector: &str,
        rsa_pem: &str,
        rsa_file: &str,
        ed25519: Option<(&str, &str, String)>,
    ) -> Result<Signer, DkimError> {
        // These go verbatim into the DKIM-Signature field, so anything but
        // a DNS name (a `;`, a CRLF) would corrupt or inject header content.
        check_dns_name("domain", domain)?;
        check_dns_name("rsa_selector", rsa_selector)?;
        let rsa = parse_rsa(rsa_pem, rsa_file)?;
        let ed25519 = match ed25519 {
            Some((selector, pem, file)) => {
                check_dns_name("ed25519_selector", selector)?;
                Some((selector.to_owned(), parse_ed25519(pem, &file)?))
            }
            None => None,
        };
        Ok(Signer {
            domain: domain.to_owned(),
            rsa_selector: rsa_selector.to_owned(),
            rsa,
            ed25519,
        })
    }

    /// The signing domain (`d=`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Signs `message` (CRLF line endings, complete headers and body) at
    /// `now` (the `t=` tag) and returns it with the `DKIM-Signature` fields
    /// prepended: RSA first, then Ed25519 when configured.
    pub fn sign(&self, message: &[u8], now: jiff::Timestamp) -> Result<Vec<u8>, DkimError> {
        let mut out = self.signature(message, now)?;
        out.extend_from_slice(message);
        Ok(out)
    }

    /// The `DKIM-Signature` fields for `message`, to go in front of it: a
    /// send writes them and the message as two pieces, so signing never
    /// copies the 90 KB message.
    pub fn signature(&self, message: &[u8], now: jiff::Timestamp) -> Result<Vec<u8>, DkimError> {
        let t = u64::try_from(now.as_second()).unwrap_or(0);
        let (fields, body) = split_message(message)?;
        let (signed, h) = select_fields(&fields)?;
        // Both signatures use relaxed body canonicalization and SHA-256, so
        // they share one body hash (the bulk of the work on a 90 KB issue
        // after the RSA operation itself).
        let bh = STANDARD.encode(relaxed_body_hash(body)).into_bytes();
        let template = Signature {
            v: 1,
            d: self.domain.clone(),
            bh,
            h,
            t,
            ch: Canonicalization::Relaxed,
            cb: Canonicalization::Relaxed,
            ..Signature::default()
        };
        // One signature field is about 600 bytes for RSA-2048.
        let mut out = Vec::with_capacity(1024);
        let rsa = sign_one(&self.rsa, &self.rsa_selector, &template, &signed)?;
        write_field(&rsa, &mut out);
        if let Some((selector, key)) = &self.ed25519 {
            let ed = sign_one(key, selector, &template, &signed)?;
            write_field(&ed, &mut out);
        }
        Ok(out)
    }
}

/// An RSA private key signed with aws-lc-rs: RSA-2048 there runs at about
/// the speed of OpenSSL (3,900 signatures/s on one core here), against
/// ~1,600 for ring and ~650 for the pure-Rust `rsa` crate, and signing is
/// the largest per-message cost of a send.
struct RsaKey(aws_lc_rs::signature::RsaKeyPair);

impl SigningKey for RsaKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl mail_auth::common::headers::Writable) -> mail_auth::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(1024);
        input.write(&mut data);
        let mut signature = vec![0; self.0.public_modulus_len()];
        self.0
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                &data,
                &mut signature,
            )
            .map_err(|e| mail_auth::Error::CryptoError(e.to_string()))?;
        Ok(signature)
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::RsaSha256
    }
}

/// Completes `template` for `key` and signs it (RFC 6376 §3.7).
///
/// This does not go through mail-auth's `DkimSigner`, which owns its key,
/// fixes `h=` when built, hashes the body once per signature and one byte
/// per call, and always adds an `h=` entry for each listed field the
/// message lacks. mail-auth still does the header canonicalization, the
/// serialization of the field and the cryptography.
fn sign_one<K: SigningKey>(
    key: &K,
    selector: &str,
    template: &Signature,
    signed: &[Field<'_>],
) -> Result<Signature, DkimError> {
    let mut sig = template.clone();
    sig.a = key.algorithm();
    sig.s = selector.to_owned();
    let b = key
        .sign(SigningInput {
            fields: signed,
            sig: &sig,
        })
        .map_err(|error| DkimError::Sign {
            algorithm: match sig.a {
                Algorithm::Ed25519Sha256 => "ed25519-sha256",
                _ => "rsa-sha256",
            },
            error,
        })?;
    sig.b = STANDARD.encode(b).into_bytes();
    Ok(sig)
}

/// What the signature covers: the signed fields in `h=` order, then the
/// DKIM-Signature field itself with an empty `b=` and no final CRLF, all
/// in relaxed canonical form.
struct SigningInput<'a> {
    fields: &'a [Field<'a>],
    sig: &'a Signature,
}

impl Writable for SigningInput<'_> {
    fn write(self, writer: &mut impl Writer) {
        Canonicalization::Relaxed.canonicalize_headers(self.fields.iter().copied(), writer);
        // `as_header = false` writes the field already in relaxed form
        // (lower-case name, single spaces instead of folds), as mail-auth
        // itself hashes it; valid because `c=` is always relaxed here.
        self.sig.write(writer, false);
    }
}

/// Appends `sig` as a header field, without folding between the `b=` value
/// and the final `;`.
///
/// mail-auth folds the field every 76 columns, also right after the last
/// character of `b=`, giving `b=...==\r\n\t;`. The signature covers the
/// field as `b=;`, and RFC 6376 §3.7 deletes the `b=` value with its
/// surrounding whitespace, but dkimpy deletes only the value and hashes
/// `b= ;`, so the signature fails there. Whether the fold lands there
/// depends only on the length of `h=` (`t=`, `bh=` and `b=` have fixed
/// lengths for a key), so some sets of headers would fail every time.
fn write_field(sig: &Signature, out: &mut Vec<u8>) {
    let start = out.len();
    sig.write(out, true);
    if let Some(value) = out[start..].strip_suffix(b";\r\n") {
        let kept = value.trim_ascii_end().len();
        if kept < value.len() {
            out.truncate(start + kept);
            out.extend_from_slice(b";\r\n");
        }
    }
}

/// A header field as `(name, value)`: the name as written (before the
/// colon), the value from after the colon through the field's final CRLF.
type Field<'m> = (&'m [u8], &'m [u8]);

/// The header fields as `(name, value)`, where the value runs from after
/// the colon to the field's final CRLF inclusive (as mail-auth's header
/// canonicalization expects), and the body after the blank line.
///
/// Continuation lines (starting with space or tab) belong to the field
/// above; a line without a colon is not a field and is skipped.
fn split_message(message: &[u8]) -> Result<(Vec<Field<'_>>, &[u8]), DkimError> {
    let mut fields: Vec<Field<'_>> = Vec::with_capacity(24);
    // Start of the current field's first line, and its colon.
    let mut current: Option<(usize, Option<usize>)> = None;
    let mut pos = 0;
    loop {
        let Some(len) = message[pos..].iter().position(|&b| b == b'\n') else {
            // The header never ended: no blank line before the end.
            return Err(DkimError::Malformed);
        };
        let line = &message[pos..pos + len];
        let next = pos + len + 1;
        let line_text = line.strip_suffix(b"\r").unwrap_or(line);
        let continuation = matches!(line_text.first(), Some(b' ' | b'\t'));
        if !continuation {
            if let Some((start, Some(colon))) = current.take() {
                fields.push((&message[start..colon], &message[colon + 1..pos]));
            }
            if line_text.is_empty() {
                return Ok((fields, &message[next..]));
            }
            current = Some((pos, line.iter().position(|&b| b == b':').map(|c| pos + c)));
        }
        pos = next;
    }
}

/// The fields to sign and the `h=` list, per RFC 6376 §5.4.2: for each name
/// of [`SIGNED_HEADERS`], every instance from the bottom up (the order a
/// verifier takes them in); then each present [`OVERSIGNED_HEADERS`] name
/// once more, which the verifier finds no instance for and so treats as
/// empty. A field added later takes that slot and breaks the signature.
fn select_fields<'m>(fields: &[Field<'m>]) -> Result<(Vec<Field<'m>>, Vec<String>), DkimError> {
    let mut signed = Vec::with_capacity(SIGNED_HEADERS.len());
    let mut h = Vec::with_capacity(SIGNED_HEADERS.len() + OVERSIGNED_HEADERS.len());
    for &name in SIGNED_HEADERS {
        for &(field, value) in fields.iter().rev() {
            if field.trim_ascii().eq_ignore_ascii_case(name.as_bytes()) {
                signed.push((field, value));
                h.push(name.to_owned());
            }
        }
    }
    if !h.iter().any(|n| n == "from") {
        return Err(DkimError::NoFrom);
    }
    let present: Vec<&str> = OVERSIGNED_HEADERS
        .iter()
        .copied()
        .filter(|o| h.iter().any(|n| n == o))
        .collect();
    h.extend(present.into_iter().map(str::to_owned));
    Ok((signed, h))
}

/// SHA-256 of the body in relaxed canonical form (RFC 6376 §3.4.4): runs
/// of spaces and tabs become one space, those at line ends are dropped,
/// empty lines at the end are dropped, and a non-empty body ends in CRLF.
///
/// Rewrites only the lines that need it and hashes the rest straight from
/// the body. mail-auth's own version
/// (not used) feeds the hash one byte per call, and keeps whitespace-only
/// lines at the end of the body as empty lines, against the RFC and
/// dkimpy, whose verification then fails with "body hash mismatch".
fn relaxed_body_hash(body: &[u8]) -> sha2::digest::Output<sha2::Sha256> {
    relaxed_body_hash_patched(body).unwrap_or_else(|| relaxed_body_hash_by_line(body))
}

/// [`relaxed_body_hash`] for a body whose line ends are all CRLF (ours
/// always are): lines needing a rewrite are found with SIMD searches for a
/// tab, two spaces and a space before CR, and only those are rewritten;
/// the runs between them are hashed straight from the body. `None` for
/// other bodies.
///
/// A quoted-printable body is nearly all canonical, but a plain-text part
/// with indented lines is not: looking at each of its ~1,600 lines in turn
/// cost more than hashing it.
fn relaxed_body_hash_patched(body: &[u8]) -> Option<sha2::digest::Output<sha2::Sha256>> {
    use memchr::memmem;
    if !body.ends_with(b"\r\n") {
        return None;
    }
    let crlf = memmem::find_iter(body, b"\r\n").count();
    if memchr::memchr_iter(b'\n', body).count() != crlf
        || memchr::memchr_iter(b'\r', body).count() != crlf
    {
        return None;
    }
    let body = &body[..content_end(body)];
    let line_start = |at: usize| memchr::memrchr(b'\n', &body[..at]).map_or(0, |n| n + 1);
    let mut rewrite: Vec<usize> = memchr::memchr_iter(b'\t', body)
        .chain(memmem::find_iter(body, b"  "))
        .chain(memmem::find_iter(body, b" \r"))
        .map(line_start)
        .collect();
    rewrite.sort_unstable();
    rewrite.dedup();
    let mut hasher = sha2::Sha256::new();
    let mut buf = Vec::new();
    let mut hashed = 0;
    for start in rewrite {
        // Every line of `body` ends in CRLF, so the search finds one.
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |n| start + n + 1);
        hasher.update(&body[hashed..start]);
        buf.clear();
        push_relaxed_line(&body[start..end.saturating_sub(2).max(start)], &mut buf);
        hasher.update(&buf);
        hashed = end;
    }
    hasher.update(&body[hashed..]);
    Some(hasher.finalize())
}

/// The end of the last line of a CRLF-only `body` that holds anything but
/// spaces and tabs: what follows becomes empty lines, which relaxed
/// canonicalization drops.
fn content_end(body: &[u8]) -> usize {
    let mut end = body.len();
    while end > 0 {
        let start = memchr::memrchr(b'\n', &body[..end - 1]).map_or(0, |n| n + 1);
        if body[start..end].iter().any(|b| !b" \t\r\n".contains(b)) {
            break;
        }
        end = start;
    }
    end
}

/// `line` (without its line end) in relaxed form, with CRLF: runs of
/// spaces and tabs become one space, and none stay at the end.
fn push_relaxed_line(line: &[u8], buf: &mut Vec<u8>) {
    let mut text = trim_wsp_end(line);
    while let Some(ws) = text.iter().position(|&b| b == b' ' || b == b'\t') {
        buf.extend_from_slice(&text[..ws]);
        buf.push(b' ');
        let run = text[ws..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        text = &text[ws + run..];
    }
    buf.extend_from_slice(text);
    buf.extend_from_slice(b"\r\n");
}

/// [`relaxed_body_hash`] for a body that needs rewriting, line by line.
fn relaxed_body_hash_by_line(body: &[u8]) -> sha2::digest::Output<sha2::Sha256> {
    // Most lines of a quoted-printable body are already canonical (CRLF, no
    // tabs, no runs of spaces, nothing trailing): such runs of lines are
    // hashed straight from the message, and only the others are rewritten.
    let mut hasher = sha2::Sha256::new();
    let mut buf: Vec<u8> = Vec::new();
    let double_space = memchr::memmem::Finder::new(b"  ");
    // Empty lines seen but not yet written: they count only if a
    // non-empty line follows.
    let mut pending_empty = 0usize;
    // Start of the run of canonical lines not yet hashed.
    let mut run_start = 0usize;
    let mut pos = 0usize;
    while pos < body.len() {
        let (raw_end, next) = match memchr::memchr(b'\n', &body[pos..]) {
            Some(n) => (pos + n, pos + n + 1),
            None => (body.len(), body.len()),
        };
        let raw = &body[pos..raw_end];
        let has_cr = raw.last() == Some(&b'\r');
        let line = if has_cr { &raw[..raw.len() - 1] } else { raw };
        let trimmed = trim_wsp_end(line);
        let canonical = has_cr
            && next <= body.len()
            && raw_end < body.len()
            && trimmed.len() == line.len()
            && !line.is_empty()
            && !line.contains(&b'\t')
            && double_space.find(line).is_none();
        if canonical && pending_empty == 0 {
            pos = next;
            continue;
        }
        hasher.update(&body[run_start..pos]);
        if trimmed.is_empty() {
            pending_empty += 1;
        } else {
            for _ in 0..pending_empty {
                hasher.update(b"\r\n");
            }
            pending_empty = 0;
            if canonical {
                // The run restarts at this line, which needs no rewriting.
                run_start = pos;
                pos = next;
                continue;
            }
            buf.clear();
            push_relaxed_line(trimmed, &mut buf);
            hasher.update(&buf);
        }
        run_start = next;
        pos = next;
    }
    hasher.update(&body[run_start..pos.min(body.len())]);
    hasher.finalize()
}

/// `line` without trailing spaces and tabs (not other whitespace: RFC 6376
/// canonicalization knows only WSP).
fn trim_wsp_end(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &line[..end]
}

fn check_dns_name(what: &'static str, value: &str) -> Result<(), DkimError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(DkimError::BadName {
            what,
            value: value.to_owned(),
        })
    }
}

fn read_key(path: &Path) -> Result<String, DkimError> {
    std::fs::read_to_string(path).map_err(|error| DkimError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// DER OID contents of rsaEncryption (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// DER OID contents of id-Ed25519 (1.3.101.112).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// What a PKCS#8 `PrivateKeyInfo` holds.
enum Pkcs8<'a> {
    /// The PKCS#1 `RSAPrivateKey` DER.
    Rsa(&'a [u8]),
    /// An Ed25519 key whose seed is well formed (32 bytes).
    Ed25519,
    /// Another algorithm.
    Other,
}

fn parse_rsa(pem: &str, file: &str) -> Result<RsaKey, DkimError> {
    let bad = |problem: String| DkimError::BadKey {
        file: file.to_owned(),
        problem,
        expected: EXPECT_RSA,
    };
    let (label, der) = pem_block(pem).map_err(bad)?;
    let pkcs1 = match label.as_str() {
        "RSA PRIVATE KEY" => der,
        "PRIVATE KEY" => match pkcs8(&der).ok_or_else(|| bad("malformed PKCS#8 key".into()))? {
            Pkcs8::Rsa(inner) => inner.to_vec(),
            Pkcs8::Ed25519 => return Err(bad("found an Ed25519 key".into())),
            Pkcs8::Other => return Err(bad("found a key of another algorithm".into())),
        },
        other => return Err(bad(found_label(other))),
    };
    let bits = rsa_modulus_bits(&pkcs1).ok_or_else(|| bad("malformed RSA key".into()))?;
    if bits < MIN_RSA_BITS {
        return Err(DkimError::WeakKey {
            file: file.to_owned(),
            bits,
        });
    }
    aws_lc_rs::signature::RsaKeyPair::from_der(&pkcs1)
        .map(RsaKey)
        .map_err(|e| bad(format!("invalid RSA key ({e})")))
}

fn parse_ed25519(pem: &str, file: &str) -> Result<Ed25519Key, DkimError> {
    let bad = |problem: String| DkimError::BadKey {
        file: file.to_owned(),
        problem,
        expected: EXPECT_ED25519,
    };
    let (label, der) = pem_block(pem).map_err(bad)?;
    match label.as_str() {
        "PRIVATE KEY" => {}
        "RSA PRIVATE KEY" => return Err(bad("found an RSA key".into())),
        other => return Err(bad(found_label(other))),
    }
    match pkcs8(&der).ok_or_else(|| bad("malformed PKCS#8 key".into()))? {
        // OpenSSL writes PKCS#8 v1 (no public key), which ring reads only
        // through its "maybe unchecked" constructor.
        Pkcs8::Ed25519 => Ed25519Key::from_pkcs8_maybe_unchecked_der(&der)
            .map_err(|e| bad(format!("invalid Ed25519 key ({e})"))),
        Pkcs8::Rsa(_) => Err(bad("found an RSA key".into())),
        Pkcs8::Other => Err(bad("found a key of another algorithm".into())),
    }
}

fn found_label(label: &str) -> String {
    match label {
        "ENCRYPTED PRIVATE KEY" => {
            "the key is encrypted (decrypt it with `openssl pkey -in KEY -out PLAIN`)".into()
        }
        l if l.contains("PUBLIC KEY") => "found a public key, not the private key".into(),
        l => format!("found a PEM block `BEGIN {l}`"),
    }
}

/// The label and decoded DER of the first PEM block in `text`.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| "no PEM block (`-----BEGIN ...-----`) found".to_owned())?;
    let end = format!("-----END {label}-----");
    let mut b64 = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        // RFC 1421 headers such as `Proc-Type: 4,ENCRYPTED` mark an
        // OpenSSL-encrypted traditional key.
        if line.contains(':') {
            return Err(
                "the key is encrypted (decrypt it with `openssl pkey -in KEY -out PLAIN`)".into(),
            );
        }
        b64.push_str(line);
    }
    if !ended {
        return Err(format!("the PEM block has no `{end}` line"));
    }
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("the PEM block is not valid base64 ({e})"))?;
    Ok((label.to_owned(), der))
}

/// A minimal DER reader: just enough to look inside PKCS#1 and PKCS#8 keys
/// (mail-auth reads only PKCS#1 RSA keys and raw Ed25519 seeds, and says
/// nothing about key size).
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The contents of the next element, which must have tag `tag`.
    fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, rest) = self.0.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (len_bytes, after) = rest.split_at(n);
            rest = after;
            len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if rest.len() < len {
            return None;
        }
        let (content, after) = rest.split_at(len);
        self.0 = after;
        Some(content)
    }
}

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// Splits a PKCS#8 `PrivateKeyInfo` (RFC 5208 / RFC 5958).
fn pkcs8(der: &[u8]) -> Option<Pkcs8<'_>> {
    let mut info = Der(Der(der).take(TAG_SEQUENCE)?);
    info.take(TAG_INTEGER)?; // version
    let mut alg = Der(info.take(TAG_SEQUENCE)?);
    let oid = alg.take(TAG_OID)?;
    let key = info.take(TAG_OCTET_STRING)?;
    Some(if oid == OID_RSA {
        Pkcs8::Rsa(key)
    } else if oid == OID_ED25519 {
        // RFC 8410: the key is itself an OCTET STRING holding the seed.
        let seed = Der(key).take(TAG_OCTET_STRING)?;
        if seed.len() != 32 {
            return None;
        }
        Pkcs8::Ed25519
    } else {
        Pkcs8::Other
    })
}

/// Size in bits of the modulus of a PKCS#1 `RSAPrivateKey`.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let mut key = Der(Der(der).take(TAG_SEQUENCE)?);
    key.take(TAG_INTEGER)?; // version
    let n = key.take(TAG_INTEGER)?;
    // Skip the sign-padding zero bytes of the big-endian integer.
    let start = n.iter().position(|&b| b != 0)?;
    let first = n[start];
    Some((n.len() - start) * 8 - first.leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dkim");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{DIR}/{name}")).expect("fixture")
    }

    fn config_with(rsa_key_file: &str, ed: Option<&str>) -> Config {
        let mut config = Config::parse(crate::config::EMBEDDED, "<embedded>", Path::new(DIR))
            .expect("embedded config");
        config.dkim = Some(crate::config::DkimConfig {
            domain: "briefing.example.org".into(),
            rsa_selector: "rsa2026".into(),
            rsa_key_file: rsa_key_file.into(),
            ed25519_selector: ed.map(|_| "ed2026".into()),
            ed25519_key_file: ed.map(Into::into),
        });
        config
    }

    #[test]
    fn weak_rsa_key_refused() {
        let err = Signer::new("example.org", "s", &fixture("rsa1024.pem"), None).unwrap_err();
        assert!(
            matches!(err, DkimError::WeakKey { bits: 1024, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("1024 bits"), "{err}");
        assert!(err.to_string().contains("2048"), "{err}");
    }

    #[test]
    fn weak_key_error_names_the_file() {
        let err = Signer::from_config(&config_with("rsa1024.pem", None)).unwrap_err();
        assert!(err.to_string().contains("rsa1024.pem"), "{err}");
    }

    #[test]
    fn pem_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.pem");
        std::fs::write(
            &path,
            "-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = Signer::from_config(&config_with(path.to_str().unwrap(), None)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("garbage.pem"), "{msg}");
        assert!(msg.contains("malformed RSA key"), "{msg}");
        assert!(
            msg.contains("expected an unencrypted RSA private key"),
            "{msg}"
        );

        std::fs::write(&path, "hello").unwrap();
        let msg = Signer::from_config(&config_with(path.to_str().unwrap(), None))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("garbage.pem") && msg.contains("no PEM block"),
            "{msg}"
        );
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = Signer::from_config(&config_with("nope.pem", None)).unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }

    #[test]
    fn both_rsa_encodings_and_ed25519_load() {
        for rsa in ["rsa2048.pem", "rsa2048-pkcs8.pem"] {
            let s = Signer::from_config(&config_with(rsa, Some("ed25519.pem")))
                .unwrap()
                .unwrap();
            assert_eq!(s.domain(), "briefing.example.org");
        }
    }

    #[test]
    fn keys_in_the_wrong_slot_are_named() {
        let err = Signer::from_config(&config_with("ed25519.pem", None)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ed25519.pem") && msg.contains("found an Ed25519 key"),
            "{msg}"
        );

        let err = Signer::from_config(&config_with("rsa2048.pem", Some("rsa2048-pkcs8.pem")))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("rsa2048-pkcs8.pem") && msg.contains("found an RSA key"),
            "{msg}"
        );
        assert!(msg.contains("expected an unencrypted Ed25519"), "{msg}");
    }

    #[test]
    fn no_dkim_section_means_no_signer() {
        let mut config = config_with("rsa2048.pem", None);
        config.dkim = None;
        assert!(Signer::from_config(&config).unwrap().is_none());
    }

    #[test]
    fn half_an_ed25519_config_is_an_error() {
        let mut config = config_with("rsa2048.pem", None);
        if let Some(d) = config.dkim.as_mut() {
            d.ed25519_selector = Some("ed".into());
        }
        assert!(matches!(
            Signer::from_config(&config),
            Err(DkimError::IncompleteEd25519)
        ));
    }

    #[test]
    fn selector_and_domain_cannot_inject() {
        let pem = fixture("rsa2048.pem");
        for (domain, selector) in [
            ("example.org\r\nBcc: x@y", "s"),
            ("example.org", "s; h=from"),
            ("", "s"),
        ] {
            let err = Signer::new(domain, selector, &pem, None).unwrap_err();
            assert!(matches!(err, DkimError::BadName { .. }), "{err}");
        }
    }

    #[test]
    fn encrypted_key_refused_with_hint() {
        let pem =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let msg = Signer::new("example.org", "s", pem, None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("encrypted"), "{msg}");
    }

    #[test]
    fn h_tag_lists_present_fields_and_oversigns() {
        let msg = b"Subject: x\r\n y\r\nFrom: a@example.org\r\nX-Other: 1\r\nList-Unsubscribe: <https://u>\r\nSubject: second\r\n\r\nFrom: body@example.org\r\n";
        let (fields, _) = split_message(msg).unwrap();
        let (signed, h) = select_fields(&fields).unwrap();
        assert_eq!(
            h,
            [
                "from",
                "subject",
                "subject",
                "list-unsubscribe",
                "from",
                "subject",
                "list-unsubscribe"
            ]
        );
        // Repeated fields bottom-up, as a verifier picks them.
        let values: Vec<&[u8]> = signed.iter().map(|(_, v)| *v).collect();
        assert_eq!(
            values,
            [
                &b" a@example.org\r\n"[..],
                b" second\r\n",
                b" x\r\n y\r\n",
                b" <https://u>\r\n"
            ]
        );
        let (fields, _) = split_message(b"Subject: x\r\n\r\nbody").unwrap();
        assert!(matches!(select_fields(&fields), Err(DkimError::NoFrom)));
    }

    #[test]
    fn no_folding_before_the_final_semicolon() {
        // The header set moves where `b=` ends; some sets make mail-auth
        // fold right before the final `;`.
        let s = Signer::new(
            "briefing.example.org",
            "rsa2026",
            &fixture("rsa2048.pem"),
            Some(("ed2026", &fixture("ed25519.pem"))),
        )
        .unwrap();
        let optional = &SIGNED_HEADERS[1..];
        let mut folded_before = 0;
        // Prefixes of the list, and the whole list less one field each.
        let full = (1u32 << optional.len()) - 1;
        let masks = (0..=optional.len())
            .map(|k| (1u32 << k) - 1)
            .chain((0..optional.len()).map(|i| full & !(1 << i)));
        for mask in masks {
            let mut msg = b"From: a@example.org\r\n".to_vec();
            for (i, name) in optional.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    msg.extend_from_slice(format!("{name}: x\r\n").as_bytes());
                }
            }
            msg.extend_from_slice(b"\r\nbody\r\n");
            let signed = s.sign(&msg, jiff::Timestamp::UNIX_EPOCH).unwrap();
            let head = &signed[..signed.len() - msg.len()];
            assert!(
                !head.windows(4).any(|w| w == b"\t;\r\n"),
                "{}",
                String::from_utf8_lossy(head)
            );
            // The field as mail-auth writes it, before `write_field`.
            let (fields, _) = split_message(&msg).unwrap();
            let (signed, h) = select_fields(&fields).unwrap();
            let template = Signature {
                v: 1,
                d: s.domain.clone(),
                bh: vec![b'x'; 44],
                h,
                t: 1_800_000_000,
                ..Signature::default()
            };
            let mut raw = Vec::new();
            sign_one(&s.rsa, "rsa2026", &template, &signed)
                .unwrap()
                .write(&mut raw, true);
            if raw.ends_with(b"\t;\r\n") {
                folded_before += 1;
            }
        }
        // The case exists, so the test above is not vacuous.
        assert!(folded_before > 0);
    }

    fn sha(bytes: &[u8]) -> sha2::digest::Output<sha2::Sha256> {
        sha2::Sha256::digest(bytes)
    }

    #[test]
    fn relaxed_body_rfc_examples() {
        // RFC 6376 §3.4.6, example 1.
        assert_eq!(
            relaxed_body_hash(b" C \r\nD \t E\r\n\r\n\r\n"),
            sha(b" C\r\nD E\r\n")
        );
        // Empty body: nothing at all (not even a CRLF).
        assert_eq!(relaxed_body_hash(b""), sha(b""));
        assert_eq!(relaxed_body_hash(b"\r\n\r\n"), sha(b""));
        // Whitespace-only lines at the end are empty lines, so dropped.
        assert_eq!(relaxed_body_hash(b"a\r\n \t\r\n\r\n \r\n"), sha(b"a\r\n"));
        // Inner empty and whitespace-only lines stay, as empty lines.
        assert_eq!(
            relaxed_body_hash(b"a\r\n\r\n \r\nb"),
            sha(b"a\r\n\r\n\r\nb\r\n")
        );
    }

    #[test]
    fn relaxed_body_agrees_with_mail_auth() {
        // Pseudo-random bodies from a small alphabet that stresses the rules
        // (runs of WSP, empty lines, lines of WSP). mail-auth keeps trailing
        // whitespace-only lines (see `relaxed_body_hash`), so bodies are
        // cut so that they end with a line that has text.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let mut body = Vec::new();
            let len = (seed % 300) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let piece: &[u8] = match seed % 7 {
                    0 => b" ",
                    1 => b"\t",
                    2 | 3 => b"\r\n",
                    4 => b"x",
                    5 => b"=20",
                    _ => "中".as_bytes(),
                };
                body.extend_from_slice(piece);
            }
            body.extend_from_slice(b"end\r\n");
            let mut canonical: Vec<u8> = Vec::new();
            Canonicalization::Relaxed
                .canonical_body(&body, u64::MAX)
                .write(&mut canonical);
            assert_eq!(
                relaxed_body_hash(&body),
                sha2::Sha256::digest(&canonical),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn the_patched_hash_agrees_with_the_line_by_line_hash() {
        // Bodies with CRLF line ends only take the patched way (SIMD
        // searches for the lines to rewrite); those with a bare CR or LF
        // go line by line.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut shortcut = 0;
        for _ in 0..2000 {
            let mut body = Vec::new();
            for _ in 0..(seed % 200) as usize {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let piece: &[u8] = match seed % 23 {
                    0..=5 => b"ab",
                    6..=9 => b" ",
                    10..=14 => b"\r\n",
                    15..=19 => b"=3D.",
                    20 => b"\t",
                    21 => b"\n",
                    _ => b"\r",
                };
                body.extend_from_slice(piece);
            }
            if !seed.is_multiple_of(3) {
                body.extend_from_slice(b"\r\n\r\n");
            }
            shortcut += usize::from(relaxed_body_hash_patched(&body).is_some());
            assert_eq!(
                relaxed_body_hash(&body),
                relaxed_body_hash_by_line(&body),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
        assert!(shortcut > 100, "only {shortcut} bodies took the shortcut");
        assert_eq!(content_end(b"\r\n\r\n"), 0);
        assert_eq!(content_end(b"a b\r\n\r\n \t\r\n"), 5);
        // Indented and tabbed lines, as in a plain-text table of contents.
        let toc = b"Contents\r\n  - One\r\n\t- Two  \r\nEnd\r\n";
        assert_eq!(
            relaxed_body_hash_patched(toc),
            Some(sha(b"Contents\r\n - One\r\n - Two\r\nEnd\r\n"))
        );
    }

    #[test]
    fn mail_auth_keeps_trailing_whitespace_lines() {
        // The defect `relaxed_body_hash` exists for (RFC 6376 §3.4.4 drops
        // these lines). When this fails, mail-auth's canonicalization is
        // right and can replace ours.
        for body in [&b"a\r\n \r\n"[..], b"a\r\n\t \r\n\r\n"] {
            let mut canonical: Vec<u8> = Vec::new();
            Canonicalization::Relaxed
                .canonical_body(body, u64::MAX)
                .write(&mut canonical);
            assert_eq!(relaxed_body_hash(body), sha(b"a\r\n"));
            assert_ne!(
                sha2::Sha256::digest(&canonical),
                relaxed_body_hash(body),
                "{:?}",
                String::from_utf8_lossy(&canonical)
            );
        }
    }

    #[test]
    fn fields_are_split_with_continuations() {
        let msg = b"From: a@example.org\r\nSubject: one\r\n two\r\nno colon here\r\nTo : b@example.org\r\n\r\nbody: not a field\r\n";
        let (fields, body) = split_message(msg).unwrap();
        assert_eq!(
            fields,
            [
                (&b"From"[..], &b" a@example.org\r\n"[..]),
                (b"Subject", b" one\r\n two\r\n"),
                (b"To ", b" b@example.org\r\n"),
            ]
        );
        assert_eq!(body, b"body: not a field\r\n");
        assert!(matches!(
            split_message(b"From: a@example.org\r\n"),
            Err(DkimError::Malformed)
        ));
        assert_eq!(split_message(b"From: a\r\n\r\n").unwrap().1, b"");
    }

    #[test]
    fn signer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Signer>();
    }

    #[test]
    fn modulus_bits_ignores_sign_padding() {
        // SEQUENCE { INTEGER 0, INTEGER 0x00 0x80 0x00 }: a 16-bit modulus.
        let der = [0x30, 0x08, 0x02, 0x01, 0x00, 0x02, 0x03, 0x00, 0x80, 0x00];
        assert_eq!(rsa_modulus_bits(&der), Some(16));
        assert_eq!(rsa_modulus_bits(&der[..6]), None);
    }
}
