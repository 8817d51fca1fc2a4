//! The observability endpoint: `GET /metrics` and `GET /healthz`.
//!
//! `/metrics` answers in the format the scraper asks for by `Accept`: OpenMetrics 1.0 (what
//! the metrics library writes; the default, and what Prometheus asks for first), or the
//! classic Prometheus text format 0.0.4 when the request asks for `text/plain` and not for
//! OpenMetrics — a classic parser reading OpenMetrics would split every counter into an
//! empty family and an untyped `_total` one. The classic text is made from the OpenMetrics
//! text ([`classic_text`]): counters' families take their `_total` name, `# UNIT` and
//! `# EOF` go.

use super::metrics::RelayMetrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the relay's metrics on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, metrics: Arc<RelayMetrics>, shutdown: impl Future<Output = ()>) {
    serve_text(listener, move || metrics.encode(), shutdown).await;
}

/// Serves `GET /metrics` (OpenMetrics text from `render`, called per scrape) and
/// `GET /healthz` on `listener` until `shutdown` completes: the relay's endpoint and the
/// driver's (`run --metrics`) alike.
pub async fn serve_text(
    listener: TcpListener,
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let render = render.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, render.clone()));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}

/// True when `accept` asks for the classic text format rather than OpenMetrics.
fn wants_classic(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("text/plain") && !a.contains("application/openmetrics-text"))
}

/// OpenMetrics text as the classic Prometheus text format 0.0.4: a counter family `x`
/// (samples `x_total`) is declared as `x_total`, an info family `x` (sample `x_info`, a
/// type the classic format lacks: its parser refuses the whole exposition) as the gauge
/// `x_info` (value 1, as Prometheus stores an info metric), `# UNIT` lines and `# EOF` are
/// dropped, `unknown` is `untyped`; everything else reads the same in both.
pub fn classic_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<(&str, &str)> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = rest.split_once(' ') {
                help = Some((name, text));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                k => (name.to_owned(), k),
            };
            if let Some((_, text)) = help.take().filter(|(h, _)| rest.starts_with(h)) {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

async fn answer(req: Request<Incoming>, render: impl Fn() -> String) -> Result<Response<Full<Bytes>>, Infallible> {
    let accept = req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok());
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" if wants_classic(accept) => {
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", classic_text(&render()))
        }
        "/metrics" => (StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", render()),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics or /healthz\n".to_owned()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_becomes_classic_text_by_accept() {
        let om = "# HELP x_routed Frames routed.\n# TYPE x_routed counter\nx_routed_total 5\n\
                  # HELP x_conns Open.\n# TYPE x_conns gauge\nx_conns 2\n\
                  # HELP x_sent Bytes.\n# TYPE x_sent_bytes counter\n# UNIT x_sent_bytes bytes\nx_sent_bytes_total 9\n\
                  # HELP x_phase Now.\n# TYPE x_phase info\nx_phase_info{phase=\"steady\"} 1\n# EOF\n";
        let text = classic_text(om);
        assert!(
            text.contains("# HELP x_routed_total Frames routed.\n# TYPE x_routed_total counter\nx_routed_total 5\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE x_conns gauge\nx_conns 2\n"), "{text}");
        assert!(text.contains("# TYPE x_sent_bytes_total counter\nx_sent_bytes_total 9\n"), "{text}");
        assert!(
            text.contains("# HELP x_phase_info Now.\n# TYPE x_phase_info gauge\nx_phase_info{phase=\"steady\"} 1\n")
        );
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
        assert!(wants_classic(Some("text/plain;version=0.0.4")));
        let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(!wants_classic(Some(prometheus)) && !wants_classic(None) && !wants_classic(Some("*/*")));
    }
}
