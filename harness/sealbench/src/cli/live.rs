//! `run`'s flags for watching a run while it goes on (flattened into [`super::RunArgs`]).

use crate::results::stream::StreamTarget;
use clap::Args;

/// Live figures during a run: `/metrics`, JSON lines, the terminal view.
#[derive(Debug, Clone, Default, Args)]
pub struct LiveArgs {
    /// Serve the driver's live figures at http://ADDR:PORT/metrics for Prometheus (latency
    /// as histograms that add up across pods; OpenMetrics or the classic text format, as the
    /// scraper's Accept header asks; port 0 picks a free port, printed at start). Every
    /// metric: docs/RESULTS.md.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,

    /// After the run, keep `--metrics` up until a scrape has taken the final figures, at
    /// most DURATION (for a Kubernetes Job, whose pod ends with the run: give at least two
    /// scrape intervals, e.g. 60s). Default: the endpoint ends with the command.
    #[arg(long, value_name = "DURATION", requires = "metrics", value_parser = crate::results::figure::parse_duration)]
    pub metrics_linger: Option<std::time::Duration>,
    /// Serve a live page at http://ADDR:PORT/ (port 0 picks a free port, printed at start):
    /// rates, latency per traffic class, clients and errors drawn each second, then the final
    /// report. Self-contained (nothing fetched from elsewhere); its data is the
    /// `--json-stream` record as server-sent events at /events. docs/RESULTS.md.
    #[arg(long, value_name = "ADDR:PORT")]
    pub dashboard: Option<std::net::SocketAddr>,

    /// Push the `/metrics` samples to a Prometheus remote-write receiver at URL
    /// (`http://HOST:9090/api/v1/write`; Prometheus needs --web.enable-remote-write-receiver)
    /// every --remote-write-interval and at the end. A failed push is counted, never fatal.
    #[arg(long, value_name = "URL")]
    pub remote_write: Option<String>,

    /// How often --remote-write pushes.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = crate::results::figure::parse_duration)]
    pub remote_write_interval: std::time::Duration,

    /// Write one JSON object per completed second to FILE, or to standard output with `-`
    /// (then the human output, progress and final table, goes to standard error). Every
    /// field: docs/RESULTS.md.
    #[arg(long, value_name = "FILE|-", value_parser = parse_stream)]
    pub json_stream: Option<StreamTarget>,

    /// No progress and no live view while running (the final table is still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_stream(text: &str) -> Result<StreamTarget, String> {
    if text.is_empty() {
        return Err("give a file name, or `-` for standard output".to_owned());
    }
    Ok(StreamTarget::parse(text))
}
