//! The live preview's web server: axum on loopback, showing the latest
//! [`Snapshot`] of a [`super::watch::Session`].
//!
//! | route | what |
//! | --- | --- |
//! | `/` | the wrapper page: check output, the email at 640 and 375 px side by side, the plain text, and the only script (the reload) |
//! | `/email.html` | the email alone (or the problems while it does not load), with scripts forbidden by CSP |
//! | `/text.txt` | the plain-text alternative |
//! | `/events` | Server-Sent Events: a `reload` event with the new version after every rendering |
//!
//! Every request first passes `guard`: only loopback `Host` names and
//! only GET.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{Stream, StreamExt, stream};
use maud::{DOCTYPE, PreEscaped, html};
use tokio::net::TcpListener;

use super::watch::{Shared, Snapshot};

/// How often an idle event stream gets a comment: writing is how a closed
/// page is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a page waits before reconnecting a dropped event stream.
const RETRY: Duration = Duration::from_millis(500);

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// True when every address `listen` names is a loopback one.
pub fn is_loopback(listen: &str) -> bool {
    use std::net::ToSocketAddrs;
    match listen.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// Serves the preview until the listener fails; run it with a shutdown
/// signal in `tokio::select!`.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) -> io::Result<()> {
    axum::serve(listener, router(shared)).await
}

/// The preview's routes, behind a guard that refuses other hosts and methods.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(wrapper))
        .route("/email.html", get(email))
        .route("/text.txt", get(text))
        .route("/events", get(events))
        .fallback(|| async { plain(StatusCode::NOT_FOUND, "not found\n") })
        .layer(middleware::from_fn(guard))
        .with_state(shared)
}

/// Refuses what the preview must not answer, and marks every answer as
/// not to be cached or sniffed.
///
/// A page elsewhere could point its own name at 127.0.0.1 (DNS rebinding)
/// and read the unpublished issue, so only loopback `Host` names pass.
async fn guard(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let mut response = if !host.is_some_and(is_loopback_host) {
        plain(StatusCode::FORBIDDEN, "loopback only\n")
    } else if request.method() != Method::GET {
        plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n")
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body).into_response()
}

async fn wrapper(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, HTML)],
        wrapper_page(&shared.current()),
    )
        .into_response()
}

async fn email(State(shared): State<Arc<Shared>>) -> Response {
    let snap = shared.current();
    let body = match &snap.email {
        Some(html) => html.clone(),
        None => problems_page(&snap),
    };
    // The email must behave as in an inbox, where no script runs.
    let headers = [
        (header::CONTENT_TYPE, HTML),
        (header::CONTENT_SECURITY_POLICY, "script-src 'none'"),
    ];
    (headers, body).into_response()
}

async fn text(State(shared): State<Arc<Shared>>) -> Response {
    let snap = shared.current();
    let body = snap.text.clone().unwrap_or_else(|| snap.problems.clone());
    ([(header::CONTENT_TYPE, TEXT)], body).into_response()
}

/// `/events?since=VERSION`: the page says which rendering it shows.
async fn events(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let since = query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("since="))
            .and_then(|v| v.parse::<u64>().ok())
    });
    Sse::new(reloads(&shared, since))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

/// The event stream: a first event that confirms it (so that a client can
/// wait for it before changing a file), a `reload` at once when the page is
/// older than the snapshot, then one after every rendering.
fn reloads(
    shared: &Shared,
    since: Option<u64>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + use<> {
    // Subscribed before the first event goes out, so no rendering after it
    // can slip by unseen.
    let mut rx = shared.subscribe();
    let now = *rx.borrow_and_update();
    let mut first = vec![Event::default().retry(RETRY).comment("connected")];
    if since.is_some_and(|v| v != now) {
        first.push(reload_event(now));
    }
    let changes = stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let version = *rx.borrow_and_update();
        Some((reload_event(version), rx))
    });
    stream::iter(first).chain(changes).map(Ok)
}

fn reload_event(version: u64) -> Event {
    Event::default().event("reload").data(version.to_string())
}

const WRAPPER_STYLE: &str = "\
body{margin:0;padding:16px;background:#e8e8e8;color:#1a1a1a;font:15px/1.4 Helvetica,Arial,sans-serif}\n\
h1{margin:0;font-size:20px}\n\
h2{margin:24px 0 8px;font-size:16px}\n\
.status{margin:4px 0 0;color:#555}\n\
.bad{color:#a61c1c}\n\
.frames{display:flex;gap:24px;align-items:flex-start;overflow-x:auto;margin-top:16px}\n\
figure{margin:0}\n\
figcaption{margin:0 0 4px;color:#555;font-size:13px}\n\
iframe{display:block;height:85vh;border:1px solid #bbb;background:#fff}\n\
pre{margin:0;padding:12px;background:#fff;border:1px solid #bbb;white-space:pre-wrap;overflow-wrap:anywhere;\
font:13px/1.45 Menlo,Consolas,monospace}\n";

/// Reloads on a `reload` event and keeps the scroll position across it.
fn reload_script(version: u64) -> String {
    format!(
        "(function(){{var k='briefing-preview-scroll',y=sessionStorage.getItem(k);\
if(y!==null){{sessionStorage.removeItem(k);window.scrollTo(0,+y);}}\
var es=new EventSource('/events?since={version}');\
es.addEventListener('reload',function(){{es.close();sessionStorage.setItem(k,String(window.scrollY));location.reload();}});}})();"
    )
}

/// The page around the email, the only one with a script.
fn wrapper_page(snap: &Snapshot) -> String {
    let bad = snap.errors > 0;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { "Preview: " (snap.title) }
                style { (PreEscaped(WRAPPER_STYLE)) }
            }
            body {
                header {
                    h1 { (snap.title) }
                    p.status.bad[bad] { (snap.status()) " · rendering " (snap.version) }
                }
                @if !snap.problems.is_empty() {
                    h2 { "Check" }
                    pre { (snap.problems) }
                }
                @if snap.email.is_some() {
                    div.frames {
                        figure {
                            figcaption { "Desktop, 640 px" }
                            iframe src={ "/email.html?v=" (snap.version) } width="640" title="Email at desktop width"
                                sandbox="allow-popups allow-popups-to-escape-sandbox" style="width:640px" {}
                        }
                        figure {
                            figcaption { "Phone, 375 px" }
                            iframe src={ "/email.html?v=" (snap.version) } width="375" title="Email at phone width"
                                sandbox="allow-popups allow-popups-to-escape-sandbox" style="width:375px" {}
                        }
                    }
                }
                @if let Some(text) = &snap.text {
                    h2 { "Plain text" }
                    pre { (text) }
                }
                script { (PreEscaped(reload_script(snap.version))) }
            }
        }
    }
    .into_string()
}

/// What `/email.html` shows while the issue does not load.
fn problems_page(snap: &Snapshot) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (snap.title) } }
            body { pre { (snap.problems) } }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    use super::*;

    /// A preview server on a free loopback port; it stops with the runtime.
    struct Running {
        url: String,
        shared: Arc<Shared>,
        /// Takes error statuses as answers, and never a proxy.
        agent: ureq::Agent,
        _runtime: tokio::runtime::Runtime,
    }

    fn start(first: Snapshot) -> Running {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared::new(first));
        let listener = {
            let _in_runtime = runtime.enter();
            TcpListener::from_std(listener).unwrap()
        };
        runtime.spawn(serve(listener, Arc::clone(&shared)));
        let config = ureq::Agent::config_builder().http_status_as_error(false);
        Running {
            url,
            shared,
            agent: config.proxy(None).build().into(),
            _runtime: runtime,
        }
    }

    fn header(r: &ureq::http::Response<ureq::Body>, name: &str) -> String {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// Status, body, and the headers every answer must carry.
    fn check(mut r: ureq::http::Response<ureq::Body>) -> (u16, String) {
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        let body = r.body_mut().read_to_string().unwrap();
        (r.status().as_u16(), body)
    }

    #[test]
    fn only_loopback_names_and_addresses_pass() {
        assert!(is_loopback_host("127.0.0.1:4000"));
        assert!(is_loopback_host("localhost:4000"));
        assert!(is_loopback_host("[::1]:4000"));
        assert!(!is_loopback_host("evil.example:4000"));
        assert!(!is_loopback_host("192.168.1.2:4000"));
        assert!(is_loopback("127.0.0.1:0"));
        assert!(!is_loopback("0.0.0.0:4000"));
    }

    #[test]
    fn the_email_page_never_gets_the_reload_script() {
        let snap = Snapshot::for_test(3, "T <b>", "<!DOCTYPE html><p>mail</p>");
        let page = wrapper_page(&snap);
        assert!(page.contains("EventSource('/events?since=3')"), "{page}");
        assert!(page.contains("T &lt;b&gt;"), "{page}");
        assert!(!snap.email.unwrap().contains("EventSource"));
    }

    #[test]
    fn routes_and_refusals() {
        let s = start(Snapshot::for_test(1, "T", "<p>mail</p>"));
        let a = &s.agent;
        let r = a.get(format!("{}/email.html?v=1", s.url)).call().unwrap();
        assert_eq!(header(&r, "content-security-policy"), "script-src 'none'");
        assert_eq!(check(r), (200, "<p>mail</p>".into()));
        let r = a.get(format!("{}/text.txt", s.url)).call().unwrap();
        assert!(header(&r, "content-type").starts_with("text/plain"));
        assert_eq!(check(r), (200, "text".into()));
        let r = a.get(format!("{}/", s.url)).call().unwrap();
        assert!(check(r).1.contains("Desktop, 640 px"));

        let r = a.get(format!("{}/nope", s.url)).call().unwrap();
        assert_eq!(check(r), (404, "not found\n".into()));
        let r = a.post(format!("{}/", s.url)).send_empty().unwrap();
        assert_eq!(check(r), (405, "GET only\n".into()));
        // The Host check comes first, for every path and method.
        for path in ["/", "/events", "/nope"] {
            let r = a
                .get(format!("{}{path}", s.url))
                .header("Host", "rebound.example.com:4000")
                .call()
                .unwrap();
            assert_eq!(check(r), (403, "loopback only\n".into()), "{path}");
        }
        let r = a
            .post(format!("{}/", s.url))
            .header("Host", "rebound.example.com")
            .send_empty()
            .unwrap();
        assert_eq!(check(r), (403, "loopback only\n".into()));
    }

    /// The event stream's lines, read on a thread so waits stay bounded.
    fn events(s: &Running, query: &str) -> mpsc::Receiver<String> {
        let r = s
            .agent
            .get(format!("{}/events{query}", s.url))
            .call()
            .unwrap();
        assert!(header(&r, "content-type").starts_with("text/event-stream"));
        assert_eq!(header(&r, "cache-control"), "no-store");
        let reader = BufReader::new(r.into_body().into_reader());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    }

    fn next_lines(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect()
    }

    #[test]
    fn a_page_older_than_the_snapshot_reloads_at_once_then_on_each_rendering() {
        let s = start(Snapshot::for_test(2, "T", "<p>mail</p>"));
        let stale = events(&s, "?since=1");
        assert_eq!(
            next_lines(&stale, 6),
            [
                "retry: 500",
                ": connected",
                "",
                "event: reload",
                "data: 2",
                ""
            ]
        );
        let fresh = events(&s, "?since=2");
        assert_eq!(next_lines(&fresh, 3), ["retry: 500", ": connected", ""]);
        s.shared.publish(Snapshot::for_test(3, "T", "<p>new</p>"));
        // The fresh page got no reload for the rendering it already shows.
        for rx in [&stale, &fresh] {
            assert_eq!(next_lines(rx, 3), ["event: reload", "data: 3", ""]);
        }
    }
}
