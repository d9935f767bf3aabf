//! `briefing serve`: one-click unsubscribe (RFC 8058) and its pages.
//!
//! `POST /unsubscribe/<token>` with `List-Unsubscribe=One-Click` (from a
//! mail client's button or from our confirmation page) puts the token's
//! address on the suppression list. `GET` only shows a page with a button:
//! link scanners fetch every URL in a message and must not unsubscribe
//! anyone. No answer is ever a redirect (RFC 8058 §3.2).
//!
//! The service answers every bad token alike (400), so it cannot be used to
//! learn whether an address is on the list, and its request log never holds
//! an address or a token, only a short hash of the token.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use jiff::Timestamp;

use crate::audience::suppression::MailtoRequest;
use crate::audience::token::Keyring;
use crate::audience::token::looks_like_token;
use crate::clock::Clock;
use crate::config::Config;
use crate::deliver::ledger::{Ledger, LedgerError, Suppression};

/// What the service needs from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The list id tokens are made for.
    pub list_id: String,
    /// The newsletter's name, shown on every page.
    pub name: String,
    /// `lang` of the pages.
    pub language: String,
    /// Where readers can write (reply-to, else from).
    pub contact: String,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
}

impl Settings {
    /// Takes the settings from the config.
    pub fn from_config(config: &Config) -> Self {
        Self {
            list_id: config.sender.list_id.clone(),
            name: config.newsletter.name.clone(),
            language: config.newsletter.language.clone(),
            contact: config
                .sender
                .reply_to
                .clone()
                .unwrap_or_else(|| config.sender.from_address.clone()),
            max_body_bytes: config.serve.max_body_bytes,
        }
    }
}

/// One answered request, for the log: no address, no token.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// HTTP method.
    pub method: Method,
    /// The route, with the token left out (`/unsubscribe/{token}`).
    pub route: &'static str,
    /// First 8 hex digits of the token's SHA-256, to relate requests.
    pub token_hash: Option<String>,
    /// Status sent.
    pub status: StatusCode,
    /// What the request did (`unsubscribed`, `already`, `invalid-token`, ...).
    pub outcome: Option<&'static str>,
    /// The failure behind a 500, for the operator.
    pub error: Option<String>,
    /// Time from request to response.
    pub elapsed: Duration,
}

impl RequestLog {
    /// `ERROR` for server failures, else `INFO`.
    pub fn level(&self) -> &'static str {
        if self.status.is_server_error() {
            "ERROR"
        } else {
            "INFO"
        }
    }
}

impl fmt::Display for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.method, self.route, self.status.as_u16())?;
        if let Some(h) = &self.token_hash {
            write!(f, " token#{h}")?;
        }
        if let Some(o) = self.outcome {
            write!(f, " {o}")?;
        }
        write!(f, " {:.1}ms", self.elapsed.as_secs_f64() * 1000.0)?;
        if let Some(e) = &self.error {
            write!(f, " error: {e}")?;
        }
        Ok(())
    }
}

type Logger = Box<dyn Fn(&RequestLog) + Send + Sync>;

/// The running service's state.
pub struct Service {
    // One connection: requests are short, and SQLite takes one writer at a
    // time anyway; `busy_timeout` waits out a concurrent `briefing send`.
    ledger: Mutex<Ledger>,
    keyring: Keyring,
    settings: Settings,
    clock: Arc<dyn Clock>,
    log: Logger,
}

impl Service {
    /// A service over an open ledger; `log` gets one call per request.
    pub fn new(
        ledger: Ledger,
        keyring: Keyring,
        settings: Settings,
        clock: Arc<dyn Clock>,
        log: impl Fn(&RequestLog) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            ledger: Mutex::new(ledger),
            keyring,
            settings,
            clock,
            log: Box::new(log),
        })
    }

    /// Runs ledger work off the async threads: a concurrent send may hold
    /// SQLite's write lock for a while.
    async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Service, &Ledger) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, Response> {
        let s = Arc::clone(self);
        let joined = tokio::task::spawn_blocking(move || {
            let ledger = s
                .ledger
                .lock()
                .map_err(|_| "the ledger lock is poisoned".to_string())?;
            f(&s, &ledger).map_err(|e| e.to_string())
        })
        .await;
        let error = match joined {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(e) => format!("ledger task failed: {e}"),
        };
        let mut r = plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The unsubscribe service failed. Please try again later.\n",
        );
        r.extensions_mut().insert(Outcome {
            word: "error",
            error: Some(error),
        });
        Err(r)
    }

    /// The verified address of a token and its suppression, if any.
    async fn lookup(
        self: &Arc<Self>,
        token: String,
    ) -> Result<Option<(String, Option<Suppression>)>, Response> {
        self.db(move |s, l| {
            let Some(email) = verified_address(l, &s.keyring, &s.settings.list_id, &token)? else {
                return Ok(None);
            };
            let existing = l.suppression(&email)?;
            Ok(Some((email, existing)))
        })
        .await
    }
}

/// The router: unsubscribe, resubscribe and a health check.
pub fn router(service: Arc<Service>) -> Router {
    let limit = service.settings.max_body_bytes;
    Router::new()
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .route("/resubscribe/{token}", post(resubscribe))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&service),
            log_and_harden,
        ))
        .with_state(service)
}

/// What a handler did, passed to the log in the response's extensions.
#[derive(Debug, Clone)]
struct Outcome {
    word: &'static str,
    error: Option<String>,
}

fn with_outcome(mut r: Response, word: &'static str) -> Response {
    r.extensions_mut().insert(Outcome { word, error: None });
    r
}

fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

fn invalid_link() -> Response {
    with_outcome(
        plain(
            StatusCode::BAD_REQUEST,
            "This unsubscribe link is not valid. Please use the link from the newsletter \
             exactly as it is, or reply to the newsletter and ask to be removed.\n",
        ),
        "invalid-token",
    )
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n")
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "Not found.\n")
}

/// Logs each request without addresses and adds headers that keep tokens
/// out of referrers and caches and the pages out of frames.
async fn log_and_harden(State(s): State<Arc<Service>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let (route, token_hash) = route_of(req.uri().path());
    let mut resp = next.run(req).await;
    let outcome = resp.extensions_mut().remove::<Outcome>();
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::HeaderName::from_static("x-robots-tag"), "noindex"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    (s.log)(&RequestLog {
        method,
        route,
        token_hash,
        status: resp.status(),
        outcome: outcome.as_ref().map(|o| o.word),
        error: outcome.and_then(|o| o.error),
        elapsed: start.elapsed(),
    });
    resp
}

/// The route template of a path and a short hash of its token; unknown
/// paths are not logged as sent (they might hold anything).
fn route_of(path: &str) -> (&'static str, Option<String>) {
    let hash = |t: &str| {
        let d = Sha256::digest(t.as_bytes());
        d.iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    if let Some(t) = path.strip_prefix("/unsubscribe/") {
        ("/unsubscribe/{token}", Some(hash(t)))
    } else if let Some(t) = path.strip_prefix("/resubscribe/") {
        ("/resubscribe/{token}", Some(hash(t)))
    } else if path == "/healthz" {
        ("/healthz", None)
    } else {
        ("(other)", None)
    }
}

/// Browsers (our confirmation form) get a page; mail clients' one-click
/// POSTs, which do not ask for HTML, get a line of text.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// The body's form fields, urlencoded or multipart, read within the body
/// limit (413 beyond it).
async fn form_fields(req: Request) -> Result<Vec<(String, String)>, Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = Bytes::from_request(req, &()).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            with_outcome(
                plain(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large.\n"),
                "too-large",
            )
        } else {
            with_outcome(
                plain(StatusCode::BAD_REQUEST, "Cannot read the request body.\n"),
                "bad-body",
            )
        }
    })?;
    let malformed = || {
        with_outcome(
            plain(StatusCode::BAD_REQUEST, "Malformed multipart body.\n"),
            "bad-body",
        )
    };
    match content_type {
        Some(ct)
            if ct
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data") =>
        {
            // The body is already in memory and within the limit; multer
            // parses it from there.
            let req = Request::builder()
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(bytes))
                .map_err(|_| malformed())?;
            let mut mp = Multipart::from_request(req, &())
                .await
                .map_err(|_| malformed())?;
            let mut fields = Vec::new();
            while let Some(field) = mp.next_field().await.map_err(|_| malformed())? {
                let name = field.name().unwrap_or_default().to_string();
                let value = field.text().await.map_err(|_| malformed())?;
                fields.push((name, value));
            }
            Ok(fields)
        }
        // RFC 8058 bodies are urlencoded; a missing or odd content type is
        // read the same way rather than refusing a real unsubscribe.
        _ => Ok(url::form_urlencoded::parse(&bytes).into_owned().collect()),
    }
}

fn is_one_click(fields: &[(String, String)]) -> bool {
    fields.iter().any(|(k, v)| {
        k.trim().eq_ignore_ascii_case("List-Unsubscribe")
            && v.trim().eq_ignore_ascii_case("One-Click")
    })
}

async fn unsubscribe(
    State(s): State<Arc<Service>>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let html = wants_html(req.headers());
    let fields = match form_fields(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !is_one_click(&fields) {
        return with_outcome(
            plain(
                StatusCode::BAD_REQUEST,
                "Expected List-Unsubscribe=One-Click in the request body.\n",
            ),
            "not-one-click",
        );
    }
    let now = s.clock.now();
    let result = s
        .db(move |s, l| {
            let Some(email) = verified_address(l, &s.keyring, &s.settings.list_id, &token)? else {
                return Ok(None);
            };
            // Read first: a repeated POST then needs no write lock.
            let existing = l.suppression(&email)?;
            if existing.is_none() {
                l.suppress(&email, "unsubscribed", "one-click", now)?;
            }
            Ok(Some((email, existing, token)))
        })
        .await;
    let (email, existing, token) = match result {
        Ok(Some(found)) => found,
        Ok(None) => return invalid_link(),
        Err(r) => return r,
    };
    let word = if existing.is_some() {
        "already"
    } else {
        "unsubscribed"
    };
    let r = if html {
        let can_resubscribe = existing.as_ref().is_none_or(|e| e.reason == "unsubscribed");
        page(
            StatusCode::OK,
            unsubscribed_page(&s.settings, &email, &token, can_resubscribe),
        )
    } else {
        plain(
            StatusCode::OK,
            format!("Unsubscribed: no more issues of {}.\n", s.settings.name),
        )
    };
    with_outcome(r, word)
}

async fn unsubscribe_page(State(s): State<Arc<Service>>, Path(token): Path<String>) -> Response {
    let found = match s.lookup(token.clone()).await {
        Ok(Some(found)) => found,
        Ok(None) => return invalid_link(),
        Err(r) => return r,
    };
    let set = &s.settings;
    match found {
        (email, None) => with_outcome(
            page(StatusCode::OK, confirm_page(set, &email)),
            "confirm-page",
        ),
        (email, Some(sup)) if sup.reason == "unsubscribed" => with_outcome(
            page(StatusCode::OK, unsubscribed_page(set, &email, &token, true)),
            "already-page",
        ),
        (email, Some(sup)) => with_outcome(
            page(StatusCode::OK, blocked_page(set, &email, &sup.reason)),
            "blocked-page",
        ),
    }
}

async fn resubscribe(
    State(s): State<Arc<Service>>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    // The body means nothing here, but it is read so the size limit holds.
    if let Err(r) = form_fields(req).await {
        return r;
    }
    let result = s
        .db(move |s, l| {
            let Some(email) = verified_address(l, &s.keyring, &s.settings.list_id, &token)? else {
                return Ok(None);
            };
            let blocked = match l.suppression(&email)? {
                // Only the reader's own unsubscribe can be undone by the
                // reader; bounces and complaints stay.
                Some(sup) if sup.reason != "unsubscribed" => Some(sup.reason),
                Some(_) => {
                    l.unsuppress_if(&email, "unsubscribed")?;
                    None
                }
                None => None,
            };
            Ok(Some((email, blocked, token)))
        })
        .await;
    match result {
        Ok(Some((email, None, token))) => with_outcome(
            page(
                StatusCode::OK,
                resubscribed_page(&s.settings, &email, &token),
            ),
            "resubscribed",
        ),
        Ok(Some((email, Some(reason), _))) => with_outcome(
            page(
                StatusCode::CONFLICT,
                blocked_page(&s.settings, &email, &reason),
            ),
            "resubscribe-refused",
        ),
        Ok(None) => invalid_link(),
        Err(r) => r,
    }
}

// Colours of the newsletter (src/render/html.rs); each text colour is at
// least 4.5:1 on white (WCAG AA), the button's white on blue 7.4:1.
const CSS: &str = "\
html{background:#ffffff;color:#1a1a1a}\
body{margin:0;font:18px/1.55 Georgia,'Times New Roman',serif}\
main{max-width:34rem;margin:0 auto;padding:2.5rem 1.25rem}\
.name{margin:0 0 2rem;padding-bottom:.75rem;border-bottom:1px solid #d6d6d6;\
font:700 .95rem/1.2 Helvetica,Arial,sans-serif;letter-spacing:.05em;text-transform:uppercase;color:#a61c1c}\
h1{font-size:1.6rem;line-height:1.25;margin:0 0 1rem}\
p{margin:0 0 1rem}\
.note{color:#555555;font-size:1rem}\
form{margin:1.5rem 0}\
button{font:700 1rem/1 Helvetica,Arial,sans-serif;padding:.9rem 1.4rem;border:2px solid #0b5394;\
border-radius:4px;background:#0b5394;color:#ffffff;cursor:pointer}\
button.quiet{background:#ffffff;color:#0b5394}\
button:focus-visible,a:focus-visible{outline:3px solid #1a1a1a;outline-offset:2px}\
a{color:#0b5394}";

fn layout(set: &Settings, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(set.language) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                meta name="color-scheme" content="light";
                title { (title) " – " (set.name) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    p.name { (set.name) }
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

fn one_click_form(action: Option<&str>, label: &str, quiet: bool) -> Markup {
    html! {
        form method="post" action=[action] {
            input type="hidden" name="List-Unsubscribe" value="One-Click";
            button type="submit" class=[quiet.then_some("quiet")] { (label) }
        }
    }
}

fn confirm_page(set: &Settings, email: &str) -> Markup {
    layout(
        set,
        "Unsubscribe?",
        html! {
            p { "Stop sending " (set.name) " to " strong { (email) } "?" }
            // No action: the form posts to this page's own address, the
            // same URL a mail client's unsubscribe button uses.
            (one_click_form(None, "Unsubscribe", false))
            p.note { "Nothing changes until you press the button." }
        },
    )
}

fn unsubscribed_page(set: &Settings, email: &str, token: &str, can_resubscribe: bool) -> Markup {
    layout(
        set,
        "You are unsubscribed",
        html! {
            p { (set.name) " will no longer be sent to " strong { (email) } "." }
            @if can_resubscribe {
                p.note { "Unsubscribed by mistake?" }
                // Relative, so it works under whatever prefix the proxy uses.
                form method="post" action={ "../resubscribe/" (token) } {
                    button type="submit" class="quiet" { "Resubscribe" }
                }
            }
        },
    )
}

fn resubscribed_page(set: &Settings, email: &str, token: &str) -> Markup {
    let action = format!("../unsubscribe/{token}");
    layout(
        set,
        "You are subscribed again",
        html! {
            p { (set.name) " will be sent to " strong { (email) } " again, starting with the next issue." }
            (one_click_form(Some(&action), "Unsubscribe again", true))
        },
    )
}

fn blocked_page(set: &Settings, email: &str, reason: &str) -> Markup {
    let why = match reason {
        "hard-bounce" => "messages to it could not be delivered",
        "complaint" => "a message to it was reported as spam",
        _ => "the editors took it off the list",
    };
    layout(
        set,
        "This address receives no more issues",
        html! {
            p { (set.name) " is no longer sent to " strong { (email) } " because " (why) "." }
            p {
                "To receive it again, write to "
                a href={ "mailto:" (set.contact) } { (set.contact) }
                "."
            }
        },
    )
}

/// The address an unsubscribe token stands for, if the token has the right
/// shape, was issued by a send recorded in `ledger` and verifies for
/// `list_id` with one of the keyring's secrets.
///
/// Every failure gives `None`, so callers cannot tell an unknown token from
/// a forged one and neither can whoever sent it.
pub fn verified_address(
    ledger: &Ledger,
    keyring: &Keyring,
    list_id: &str,
    token: &str,
) -> Result<Option<String>, LedgerError> {
    if !looks_like_token(token) {
        return Ok(None);
    }
    let Some(email) = ledger.email_for_token(token)? else {
        return Ok(None);
    };
    // The ledger is the only way from token to address, but it is not
    // trusted on its own: rows written under another list id or a retired
    // secret must not unsubscribe anyone.
    Ok(keyring.verify(list_id, &email, token).then_some(email))
}

/// What applying mailto requests did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailtoReport {
    /// Addresses newly suppressed.
    pub unsubscribed: usize,
    /// Requests for addresses already on the list (repeats, reruns).
    pub already: usize,
    /// Requests whose token did not verify.
    pub invalid: Vec<MailtoRequest>,
}

/// Suppresses the address of every request whose token verifies (reason
/// `unsubscribed`, source `mailto`).
pub fn apply_mailto(
    ledger: &Ledger,
    keyring: &Keyring,
    list_id: &str,
    requests: &[MailtoRequest],
    now: Timestamp,
) -> Result<MailtoReport, LedgerError> {
    let mut report = MailtoReport::default();
    for r in requests {
        match verified_address(ledger, keyring, list_id, &r.token)? {
            Some(email) => {
                if ledger.suppress(&email, "unsubscribed", "mailto", now)? {
                    report.unsubscribed += 1;
                } else {
                    report.already += 1;
                }
            }
            None => report.invalid.push(r.clone()),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::recipient::Recipient;
    use crate::audience::token::Secret;
    use crate::deliver::ledger::SendKind;

    fn now() -> Timestamp {
        "2025-01-17T05:00:00Z".parse().unwrap()
    }

    fn settings() -> Settings {
        Settings {
            list_id: "l".into(),
            name: "China <Brief>".into(),
            language: "en".into(),
            contact: "editors@example.org".into(),
            max_body_bytes: 4096,
        }
    }

    #[test]
    fn logged_routes_hold_no_token() {
        let t = "A".repeat(43);
        let (route, hash) = route_of(&format!("/unsubscribe/{t}"));
        assert_eq!(route, "/unsubscribe/{token}");
        let hash = hash.unwrap();
        assert_eq!(hash.len(), 8);
        assert!(!hash.contains('A'));
        assert_eq!(route_of("/x/someone@example.org"), ("(other)", None));
    }

    #[test]
    fn one_click_field_is_required() {
        let f = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(is_one_click(&f("List-Unsubscribe", "One-Click")));
        assert!(is_one_click(&f("list-unsubscribe", "one-click ")));
        assert!(!is_one_click(&f("List-Unsubscribe", "")));
        assert!(!is_one_click(&[]));
    }

    #[test]
    fn pages_escape_and_post_to_relative_urls() {
        let p = unsubscribed_page(&settings(), "a<b>@example.org", "TOK", true).into_string();
        assert!(p.contains("a&lt;b&gt;@example.org"), "{p}");
        assert!(p.contains("China &lt;Brief&gt;"));
        assert!(p.contains(r#"action="../resubscribe/TOK""#));
        let c = confirm_page(&settings(), "a@example.org").into_string();
        assert!(c.contains(r#"<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">"#), "{c}");
        assert!(!c.contains("http"), "no external resources: {c}");
    }

    #[test]
    fn only_tokens_of_this_list_and_its_secrets_verify() {
        let current = Secret::new("new");
        let old = Secret::new("old");
        let mut l = Ledger::in_memory().unwrap();
        let t_new = current.token("list", "a@example.org");
        let t_old = old.token("list", "b@example.org");
        let t_other = current.token("other-list", "c@example.org");
        l.begin("i", SendKind::Real, "S", now()).unwrap();
        l.import("i", SendKind::Real, |add| {
            add(&Recipient::new("a@example.org", ""), &t_new)?;
            add(&Recipient::new("b@example.org", ""), &t_old)?;
            add(&Recipient::new("c@example.org", ""), &t_other)?;
            Ok((0, 0))
        })
        .unwrap();
        let ring = Keyring {
            current: current.clone(),
            previous: vec![old],
        };
        let check = |t: &str| verified_address(&l, &ring, "list", t).unwrap();
        assert_eq!(check(&t_new).as_deref(), Some("a@example.org"));
        assert_eq!(check(&t_old).as_deref(), Some("b@example.org"));
        assert_eq!(check(&t_other), None);
        assert_eq!(check(&t_new[1..]), None);
        let unknown = current.token("list", "nobody@example.org");
        assert_eq!(check(&unknown), None);
    }
}
