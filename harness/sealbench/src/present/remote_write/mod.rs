//! `run --remote-write URL`: pushes the driver's metrics to a Prometheus remote-write
//! receiver (remote write 1.0: a protobuf `WriteRequest`, snappy block-compressed, over
//! HTTP POST) every `--remote-write-interval`, and once more when the run ends — for a
//! driver that no Prometheus can scrape (behind NAT, a short Kubernetes Job).
//!
//! What is pushed is exactly what `/metrics` serves: [`LiveMetrics::encode`]'s exposition,
//! its sample lines turned into series ([`exposition`]), stamped with the push's time, with
//! the labels a scrape would have added — `job="sealbench"`, `instance` the host's name —
//! and `part="I/N"` for a part of a split run, so the pods of a split run push apart.
//!
//! Why it cannot slow the run: the run only publishes each second into a [`LiveMetrics`]
//! (a pointer swap); a thread of its own, with a one-thread runtime, takes the latest
//! second when its interval comes round, encodes and pushes it. The queue is that one
//! latest snapshot: a push slower than the interval makes the pusher skip the intervals
//! it missed (counted as `skipped`) instead of piling up. Every push has a timeout; a
//! failure is counted, the first error kept, and the run goes on. [`RemoteWrite::finish`]
//! makes the last push and returns the counts, which `run` prints.

pub mod exposition;
pub mod proto;

use super::prometheus::LiveMetrics;
use crate::scenario::Part;
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use prost::Message;
use proto::Label;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Longest one push may take (connect, send, answer) before it counts as failed.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the pusher did, for the final output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Pushes the receiver accepted (2xx).
    pub ok: u64,
    /// Pushes that failed (no connection, timeout, non-2xx answer).
    pub failed: u64,
    /// Intervals skipped because the push before was still under way.
    pub skipped: u64,
    /// The first failure, as said.
    pub first_error: Option<String>,
}

impl std::fmt::Display for PushStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} pushes accepted, {} failed, {} intervals skipped", self.ok, self.failed, self.skipped)?;
        if let Some(e) = &self.first_error {
            write!(f, " (first failure: {e})")?;
        }
        Ok(())
    }
}

/// Where and how often.
#[derive(Debug, Clone)]
struct Target {
    uri: Uri,
    authority: String,
    host: String,
    port: u16,
    interval: Duration,
    labels: Vec<Label>,
}

/// A running pusher; [`RemoteWrite::finish`] (or dropping it) makes the last push.
#[derive(Debug)]
pub struct RemoteWrite {
    metrics: LiveMetrics,
    stats: Arc<Mutex<PushStats>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RemoteWrite {
    /// Checks `url` (`http://HOST:PORT/PATH`) and starts pushing every `interval`; `part`:
    /// this process's part of a split run.
    ///
    /// # Errors
    /// A URL that is not `http://` with a host, or a zero interval; the message names the flag.
    pub fn start(url: &str, interval: Duration, part: Option<Part>) -> Result<Self> {
        let mut target = Target::parse(url, interval)?;
        target.labels = own_labels(part);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("--remote-write: starting the pusher's runtime")?;
        let metrics = LiveMetrics::default();
        let stats = Arc::new(Mutex::new(PushStats::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (m, s) = (metrics.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name("sealbench-remote-write".into())
            .spawn(move || rt.block_on(push_loop(target, m, s, stopped)))
            .context("--remote-write: starting the pusher's thread")?;
        Ok(RemoteWrite { metrics, stats, stop: Some(stop), thread: Some(thread) })
    }

    /// Where the run publishes each second ([`LiveMetrics::publish`]).
    pub fn metrics(&self) -> &LiveMetrics {
        &self.metrics
    }

    /// Makes the last push (of the last published second) and returns what was done.
    pub fn finish(mut self) -> PushStats {
        self.stop_and_join();
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RemoteWrite {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl Target {
    fn parse(url: &str, interval: Duration) -> Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("--remote-write {url}: not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--remote-write {url}: give an http:// URL (https is not supported; a local proxy can add TLS)");
        }
        let authority = uri.authority().ok_or_else(|| anyhow!("--remote-write {url}: no host"))?;
        if interval.is_zero() {
            bail!("--remote-write-interval: give a duration above zero (e.g. 5s)");
        }
        Ok(Target {
            authority: authority.to_string(),
            host: authority.host().trim_matches(['[', ']']).to_owned(),
            port: authority.port_u16().unwrap_or(80),
            uri,
            interval,
            labels: Vec::new(),
        })
    }
}

/// `job`, `instance` (the host's name) and, for a part of a split run, `part`.
fn own_labels(part: Option<Part>) -> Vec<Label> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned());
    let host = host.ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".to_owned());
    let mut labels = vec![("job", "sealbench".to_owned()), ("instance", host)];
    labels.extend(part.map(|p| ("part", p.to_string())));
    labels.into_iter().map(|(name, value)| Label { name: name.to_owned(), value }).collect()
}

async fn push_loop(
    target: Target,
    metrics: LiveMetrics,
    stats: Arc<Mutex<PushStats>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut next = Instant::now() + target.interval;
    loop {
        let stop = tokio::select! {
            _ = &mut stopped => true,
            () = tokio::time::sleep_until(next.into()) => false,
        };
        let result = push(&target, &metrics.encode()).await;
        let Ok(mut s) = stats.lock() else { return };
        match result {
            Ok(()) => s.ok += 1,
            Err(e) => {
                s.failed += 1;
                s.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        if stop {
            return;
        }
        next += target.interval;
        while next < Instant::now() {
            next += target.interval;
            s.skipped += 1;
        }
    }
}

/// Pushes the sample lines of `exposition`, stamped now.
async fn push(target: &Target, exposition: &str) -> Result<()> {
    let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let timeseries = exposition::series(exposition, now_ms, &target.labels)?;
    let body = proto::WriteRequest { timeseries }.encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&body).context("snappy")?;
    tokio::time::timeout(PUSH_TIMEOUT, post(target, body))
        .await
        .map_err(|_| anyhow!("{}: no answer within {PUSH_TIMEOUT:?}", target.uri))?
}

async fn post(target: &Target, body: Vec<u8>) -> Result<()> {
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("{}: cannot connect", target.uri))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let path = target.uri.path_and_query().map_or("/", |p| p.as_str());
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, &target.authority)
        .header(hyper::header::CONTENT_ENCODING, "snappy")
        .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
        .header(hyper::header::USER_AGENT, concat!("sealbench/", env!("CARGO_PKG_VERSION")))
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(Full::new(Bytes::from(body)))?;
    let resp = sender.send_request(req).await.with_context(|| format!("{}: sending", target.uri))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[..text.len().min(200)]).trim().to_owned();
    Err(anyhow!("{}: answered {status}: {text}", target.uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_and_a_positive_interval() {
        let t = Target::parse("http://127.0.0.1:9090/api/v1/write", Duration::from_secs(5)).expect("valid");
        assert_eq!((t.host.as_str(), t.port, t.authority.as_str()), ("127.0.0.1", 9090, "127.0.0.1:9090"));
        for (url, secs, says) in [
            ("https://x/api/v1/write", 5, "give an http:// URL"),
            ("/api/v1/write", 5, "give an http:// URL"),
            ("http://x/", 0, "--remote-write-interval"),
        ] {
            let e = Target::parse(url, Duration::from_secs(secs)).map(|_| ()).unwrap_err();
            assert!(format!("{e:#}").contains(says), "{url}: {e:#}");
        }
    }

    #[test]
    fn a_failed_push_is_counted_and_named_and_the_run_is_not_held_up() -> Result<()> {
        // A port nobody listens on: every push fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}/api/v1/write");
        let rw = RemoteWrite::start(&url, Duration::from_millis(50), None)?;
        std::thread::sleep(Duration::from_millis(180));
        let stats = rw.finish();
        assert_eq!(stats.ok, 0);
        assert!(stats.failed >= 2, "{stats}");
        assert!(stats.first_error.as_deref().is_some_and(|e| e.contains("cannot connect")), "{stats}");
        Ok(())
    }
}
