//! `run --dashboard ADDR`: a live page in the browser. `GET /` is one self-contained HTML
//! file ([`PAGE`]: its script and style inline, no CDN, nothing fetched from elsewhere)
//! that draws its plots from `GET /events`, a server-sent event stream of the run:
//!
//! - `second` — each completed second, the very [`LiveSecond`] JSON that `--json-stream`
//!   writes as a line (one serialiser, so the page and the stream never disagree);
//! - `report` — when the run has ended: `summary.json`'s content and where the results are;
//! - `lag` — how many events this browser missed by falling behind ([`feed`]);
//! - `end` — the server is going away (the page closes its stream instead of retrying).
//!
//! Why a thread of its own with a one-thread runtime, as `/metrics` ([`super::metrics_http`]):
//! no browser, however slow or many, can delay a message; the run only ever appends to the
//! [`Feed`] once a second. Why bind before the run: a taken port is a usage error (exit 2)
//! before any client connects.

pub mod feed;

use super::server_thread::ServerThread;
use crate::results::live::LiveSecond;
use crate::results::summary::Summary;
use anyhow::Result;
use bytes::Bytes;
use feed::{Event, Feed, Subscription};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The page: HTML, CSS and the plotting script in one file, built into the binary.
pub const PAGE: &str = include_str!("index.html");

/// How long the server, once the run is over, waits for open streams to take their last
/// events before it stops.
const LINGER: Duration = Duration::from_secs(2);

/// A running dashboard; dropping it sends `end` and stops the server.
#[derive(Debug)]
pub struct DashboardServer {
    feed: Feed,
    server: ServerThread,
}

impl DashboardServer {
    /// Binds `addr` now and serves from a thread of its own ([`ServerThread`]).
    ///
    /// # Errors
    /// When `addr` cannot be bound; the message names the flag and the address.
    pub fn bind(addr: SocketAddr) -> Result<Self> {
        let feed = Feed::default();
        let served = feed.clone();
        let server = ServerThread::bind("--dashboard", addr, "sealbench-dashboard", move |listener, stopped| {
            serve(listener, served, stopped)
        })?;
        Ok(DashboardServer { feed, server })
    }

    /// The address served (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// A new run starts (the next of a batch): its timeline starts empty.
    pub fn begin(&self) {
        self.feed.restart();
    }

    /// Sends one completed second to every browser.
    pub fn second(&self, sec: &LiveSecond) {
        if let Ok(json) = serde_json::to_string(sec) {
            self.feed.publish(Event::new("second", &json));
        }
    }

    /// Sends the run's final figures: `summary` and the results directory `dir`.
    pub fn report(&self, summary: &Summary, dir: &Path) {
        let report = dir.join("report.html");
        let data = serde_json::json!({
            "dir": dir.display().to_string(),
            "report": report.is_file().then(|| report.display().to_string()),
            "summary": summary,
        });
        self.feed.publish(Event::new("report", &data.to_string()));
    }
}

impl Drop for DashboardServer {
    /// `end` to every browser; then the server, dropped with the fields, stops (after
    /// its linger).
    fn drop(&mut self) {
        self.feed.publish(Event { last: true, ..Event::new("end", "{}") });
    }
}

async fn serve(listener: std::net::TcpListener, feed: Feed, stopped: tokio::sync::oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let feed = feed.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(req, feed.clone()));
                    // One response per connection: nothing idles open, so the server can
                    // stop as soon as the streams have their `end`.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // New connections are refused from now on; open streams get their last events.
    drop(listener);
    let _ = tokio::time::timeout(LINGER, async { while connections.join_next().await.is_some() {} }).await;
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(req: Request<Incoming>, feed: Feed) -> Result<Response<Body>, Infallible> {
    let (status, ctype, body) = match req.uri().path() {
        "/" | "/index.html" => (StatusCode::OK, "text/html; charset=utf-8", Full::from(PAGE).boxed()),
        "/events" => (StatusCode::OK, "text/event-stream", events(feed.subscribe())),
        "/healthz" => (StatusCode::OK, "text/plain", Full::from("ok\n").boxed()),
        _ => (StatusCode::NOT_FOUND, "text/plain", Full::from("not found: try / or /events\n").boxed()),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
    h.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The event stream of one browser: the history, then each new event as it comes, until
/// the `end` event (or the feed is gone).
fn events(sub: Subscription) -> Body {
    let start = (sub.history.into_iter(), sub.rx, false);
    let stream = futures_util::stream::unfold(start, |(mut history, mut rx, done)| async move {
        if done {
            return None;
        }
        let event = match history.next() {
            Some(e) => e,
            None => match rx.as_mut()?.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => Event::new("lag", &n.to_string()),
                Err(RecvError::Closed) => return None,
            },
        };
        let last = event.last;
        Some((Ok(Frame::data(event.bytes)), (history, rx, last)))
    });
    StreamBody::new(stream).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    }

    #[test]
    fn serves_the_page_and_a_stream_that_ends_and_refuses_a_taken_port() -> anyhow::Result<()> {
        let server = DashboardServer::bind("127.0.0.1:0".parse()?)?;
        let addr = server.addr();
        let page = get(addr, "/")?;
        assert!(page.starts_with("HTTP/1.1 200") && page.contains("text/html"), "{page}");
        assert!(!page.contains("http://") && !page.contains("https://"), "nothing fetched from elsewhere");
        server.feed.publish(Event::new("second", "{\"t\":1}"));
        // A stream opened now gets the history, then what follows, until `end`.
        let reader = std::thread::spawn(move || get(addr, "/events"));
        std::thread::sleep(Duration::from_millis(200));
        server.feed.publish(Event::new("second", "{\"t\":2}"));
        let e = DashboardServer::bind(addr).map(|_| ()).unwrap_err();
        assert!(format!("{e:#}").contains(&format!("--dashboard {addr}: cannot listen there")), "{e:#}");
        drop(server);
        let text = reader.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
        assert!(text.contains("text/event-stream"), "{text}");
        let t1 = text.find("data: {\"t\":1}").unwrap_or(usize::MAX);
        let t2 = text.find("data: {\"t\":2}").unwrap_or(usize::MAX);
        let end = text.find("event: end").unwrap_or(usize::MAX);
        assert!(t1 < t2 && t2 < end && end < usize::MAX, "history, then live, then end:\n{text}");
        Ok(())
    }
}
