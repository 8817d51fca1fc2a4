//! An external relay's CPU time, read from its `/metrics` (`relay.metrics`): the standard
//! `process_cpu_seconds_total` that `sealbench relay --metrics` serves (and most servers'
//! exporters do), scraped at the start and the end of sending, so that a run against an
//! external relay reports the relay's CPU per message as a run with the embedded one does.
//!
//! Hand-written on purpose: one plain-HTTP GET, twice a run, from the sampler's own
//! thread, which has no async runtime (an HTTP client crate would bring one, or a second
//! TLS stack, for two requests). Only `http://` is read; the answer is searched for one
//! sample line. Anything unexpected gives `None` and the figure is absent, never guessed.
//! A leaf: the scenario's plan checks the URL with it, the driver's sampler reads with it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where to scrape: `host:port` and the path of an `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsUrl {
    /// `host:port` (port 80 when the URL has none).
    pub authority: String,
    /// The path, `/metrics` when the URL has none.
    pub path: String,
}

impl MetricsUrl {
    /// Parses an `http://host[:port][/path]` URL.
    ///
    /// # Errors
    /// Any other scheme (named), or no host.
    pub fn parse(url: &str) -> Result<MetricsUrl, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("`{url}`: give the relay's metrics as http://HOST:PORT/metrics (plain HTTP only)")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        if authority.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        Ok(MetricsUrl { authority, path: path.to_owned() })
    }
}

/// The process CPU seconds the endpoint reports now, or `None` (not reachable within a
/// second, not an HTTP 200, no `process_cpu_seconds_total` sample).
pub fn process_cpu_seconds(url: &MetricsUrl) -> Option<f64> {
    let text = get(url)?;
    sample(&text, "process_cpu_seconds_total")
}

fn get(url: &MetricsUrl) -> Option<String> {
    let addr = url.authority.to_socket_addrs().ok()?.next()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let host = url.authority.as_str();
    write!(s, "GET {} HTTP/1.0\r\nHost: {host}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n", url.path).ok()?;
    let mut body = String::new();
    s.take(16 << 20).read_to_string(&mut body).ok()?;
    let (head, rest) = body.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then_some(())?;
    (head.split_whitespace().nth(1)? == "200").then(|| rest.to_owned())
}

/// The value of the unlabelled sample `name` in a Prometheus text or OpenMetrics body.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_samples_parse() {
        let u = MetricsUrl::parse("http://127.0.0.1:9100/metrics").unwrap();
        assert_eq!((u.authority.as_str(), u.path.as_str()), ("127.0.0.1:9100", "/metrics"));
        let u = MetricsUrl::parse("http://relay").unwrap();
        assert_eq!((u.authority.as_str(), u.path.as_str()), ("relay:80", "/metrics"));
        assert!(MetricsUrl::parse("https://relay/metrics").unwrap_err().contains("plain HTTP"));
        let body =
            "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total 12.5\nprocess_cpu_seconds_created 1\n";
        assert_eq!(sample(body, "process_cpu_seconds_total"), Some(12.5));
        assert_eq!(sample("x_total 1\n", "process_cpu_seconds_total"), None);
    }

    #[test]
    fn the_reference_relays_cpu_is_read_from_its_metrics() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let http = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = http.local_addr().unwrap();
        let metrics = std::sync::Arc::new(crate::relay::metrics::RelayMetrics::new());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = std::thread::spawn(move || {
            rt.block_on(crate::relay::http::serve(http, metrics, async move {
                let _ = rx.await;
            }))
        });
        let url = MetricsUrl::parse(&format!("http://{addr}/metrics")).unwrap();
        let cpu = process_cpu_seconds(&url);
        let _ = stop.send(());
        let _ = server.join();
        assert!(cpu.is_some_and(|c| c > 0.0), "{cpu:?}");
    }
}
